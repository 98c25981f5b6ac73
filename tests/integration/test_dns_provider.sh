#!/usr/bin/env bash
# The dns-proxy provider end to end: the real netextd, netext-testdns (and -raw) as the
# provider, dig as the client, dnsmasq as the upstream servers. A provider that answers,
# refuses, drops, rewrites upstream answers, forwards to a named server, works on raw bytes,
# answers LATER; the asking process it sees; a hung provider with each fail policy (deadline);
# kill -9 of the extension under a loop of digs with each fail policy, and recovery.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/lib/daemon.sh"
: "${NETEXT_TESTDNS:?}" "${NETEXT_TESTDNS_RAW:?}"
for tool in dig dnsmasq; do
	command -v "$tool" >/dev/null || skip "needs $tool"
done

H=$(ns_add h) || fail "ns h"
S=$(ns_add s) || fail "ns s"
ns_link "$H" "$S" 1
vb="vB1-$$"
ip -n "$S" addr add 198.18.1.3/24 dev "${vb:0:15}" || fail "second server address"
T=$NS_TMPDIR

# Two upstream servers in S: the default route (198.18.1.2) and a named one (198.18.1.3).
upstream() { # upstream ADDR ANSWER
	ns_spawn "$S" dnsmasq --keep-in-foreground --no-resolv --no-hosts --bind-interfaces \
		--listen-address="$1" --except-interface=lo --user=root --pid-file= \
		--address="/example/$2" --address="/test/$2" --log-queries --log-facility="$T/dnsmasq-$1.log"
}
upstream 198.18.1.2 203.0.113.1
upstream 198.18.1.3 203.0.113.2
wait_for ns_exec "$S" dig +short +time=1 +tries=1 @198.18.1.3 up.example || fail "upstream servers did not start"

D_CONF_EXTRA=$'[dns]\ndefault = 198.18.1.2'
daemon_start "$H"
ctl dev register com.example.testdns "$NETEXT_TESTDNS" >/dev/null || fail "register testdns"
ctl dev register com.example.testdnsraw "$NETEXT_TESTDNS_RAW" >/dev/null || fail "register testdns-raw"

# q NAME [dig options]: the first answer line's address, or the status (REFUSED, SERVFAIL …),
# or "timeout" when no answer came.
q() {
	local name=$1 out
	shift
	out=$(ns_exec "$H" dig +time=2 +tries=1 "$@" @198.18.1.2 "$name" A 2>&1)
	if grep -q "status: NOERROR" <<<"$out"; then
		awk '$4 == "A" { print $5; exit }' <<<"$out" | grep . || echo nodata
	elif grep -q "status:" <<<"$out"; then
		sed -n 's/.*status: \([A-Z]*\),.*/\1/p' <<<"$out" | head -1
	else
		echo timeout
	fi
}
expect() { # expect WANT NAME [dig options]
	local want=$1 got
	shift
	got=$(q "$@")
	[ "$got" = "$want" ] || { tail -30 "$D_LOG"; fail "$1: expected $want, got $got"; }
}
config() { # config NAME EXTENSION POLICY OPTIONS...
	local name=$1 ext=$2 policy=$3
	shift 3
	local opts=()
	for o in "$@"; do opts+=(--option "$o"); done
	ctl config add "$name" --extension "$ext" --provider dns-proxy --"$policy" "${opts[@]}" >/dev/null ||
		fail "config add $name"
	ctl start "$name" >/dev/null || { tail -20 "$D_LOG"; fail "start $name"; }
}
unconfig() { ctl stop "$1" >/dev/null; ctl config remove "$1" >/dev/null; }

# 0. Without a provider the routes answer.
expect 203.0.113.1 plain.example

# 1. answer (one domain), the rest forwarded; the provider sees dig.
config a com.example.testdns fail-closed mode=answer answer_addr=192.0.2.99 match=answer.test log_queries=1
expect 192.0.2.99 www.answer.test
expect 192.0.2.99 www.answer.test +tcp
expect 203.0.113.1 other.example
wait_for grep -q "query www.answer.test A from /usr/bin/dig pid [1-9]" "$D_LOG" ||
	fail "the provider did not see dig as the asking process"
unconfig a

# 2. refuse, 3. drop.
config r com.example.testdns fail-closed mode=refuse
expect REFUSED x.example
unconfig r
config d com.example.testdns fail-closed mode=drop
expect timeout x.example
unconfig d

# 4. upstream answers rewritten, and dropped.
config w com.example.testdns fail-closed mode=pass responses=rewrite:192.0.2.77
expect 192.0.2.77 rw.example
unconfig w
config wd com.example.testdns fail-closed mode=pass responses=drop
expect timeout rwd.example
unconfig wd

# 5. forwarded to a named server.
config n com.example.testdns fail-closed mode=route:198.18.1.3
expect 203.0.113.2 named.example
grep -q "named.example" "$T/dnsmasq-198.18.1.3.log" || fail "the named server was not asked"
unconfig n

# 6. raw mode: bytes forwarded unchanged; an answer built by the provider.
config rw com.example.testdnsraw fail-closed mode=pass
expect 203.0.113.1 raw.example
unconfig rw
config ra com.example.testdnsraw fail-closed mode=answer answer_addr=192.0.2.98
expect 192.0.2.98 raw.example
unconfig ra

# 7. LATER, resumed by the provider with an answer.
config l com.example.testdns fail-closed mode=later delay_ms=100 then=answer answer_addr=192.0.2.97
expect 192.0.2.97 later.example
unconfig l

# 8. A hung provider (SIGSTOP) misses the deadline: fail-open resolves by the routes,
#    fail-closed answers SERVFAIL.
hung() { # hung POLICY WANT
	config h com.example.testdns "$1" mode=answer answer_addr=192.0.2.96 verdict_timeout_ms=300
	expect 192.0.2.96 hung.example
	local pid
	pid=$(ext_pid com.example.testdns)
	kill -STOP "$pid"
	expect "$2" hung.example
	kill -CONT "$pid"
	expect 192.0.2.96 hung.example
	unconfig h
}
hung fail-open 203.0.113.1
hung fail-closed SERVFAIL

# 9. kill -9 of the extension under a loop of digs. The provider takes a second to start
#    (start_delay_ms), so queries certainly arrive while it is not running: fail-open answers
#    them by the routes, fail-closed with SERVFAIL; none goes unanswered, and the provider
#    answers again once it has restarted.
killed() { # killed POLICY WANT-MEANWHILE
	config k com.example.testdns "$1" mode=answer answer_addr=192.0.2.95 start_delay_ms=1000
	expect 192.0.2.95 k.example
	local pid i=0
	pid=$(ext_pid com.example.testdns)
	( while :; do q "k$((i++)).example"; done ) > "$T/loop" 2>/dev/null &
	local loop=$!
	wait_for grep -q . "$T/loop" || fail "$1: the dig loop does not run"
	kill -KILL "$pid"
	WAIT_TRIES=200 wait_for sh -c "tail -n +2 '$T/loop' | grep -q -x -e '$2'" ||
		{ kill $loop; tail -30 "$D_LOG"; fail "$1: no $2 while the extension was down"; }
	WAIT_TRIES=200 wait_for sh -c "tail -n 1 '$T/loop' | grep -q -x 192.0.2.95" ||
		{ kill $loop; tail -30 "$D_LOG"; fail "$1: the provider did not answer again after its restart"; }
	kill $loop
	wait $loop 2>/dev/null
	grep -v -x -e 192.0.2.95 -e "$2" "$T/loop" && fail "$1: unexpected results under kill -9"
	[ "$(ext_pid com.example.testdns)" != "$pid" ] || fail "$1: extension not restarted"
	unconfig k
}
killed fail-open 203.0.113.1
killed fail-closed SERVFAIL

# The daemon is still healthy and stops cleanly.
expect 203.0.113.1 end.example
daemon_stop
echo "ok"

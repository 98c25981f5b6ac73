#!/usr/bin/env bash
# DNS proxy and bad input: truncated messages, compression loops and forward pointers, long
# labels and names, counts larger than the message, short messages, zero-length, short and
# oversized TCP frames, slow-loris TCP clients, too many TCP clients, pipelined TCP queries,
# and an upstream server that answers from the wrong source, with the wrong id, with garbage
# and with another question before its real answer. Each case gets FORMERR, silence or a
# closed connection as DNS practice says, moves its counter, and a normal query still works
# right after (tests/tools/dnsbad.c makes the input).
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/lib/daemon.sh"
: "${NETEXT_DNSBAD:?}"
for tool in dig dnsmasq python3; do
	command -v "$tool" >/dev/null || skip "needs $tool"
done
fail() {
	echo "FAIL: $*" >&2
	[ -n "${D_LOG:-}" ] && [ -f "$D_LOG" ] && tail -25 "$D_LOG" >&2
	exit 1
}

H=$(ns_add h) || fail "ns h"
B=$(ns_add b) || fail "ns b"
F=$(ns_add f) || fail "ns f"
ns_link "$H" "$B" 2
ns_link "$H" "$F" 3
ip -n "$F" addr add 198.18.3.3/24 dev "$(ip -n "$F" -o link show type veth | awk -F': ' '{print $2}' | cut -d@ -f1)"
ip -n "$H" route add default via 198.18.2.2 || fail "default route"
T=$NS_TMPDIR

ns_spawn "$B" dnsmasq --no-daemon --no-resolv --no-hosts --bind-interfaces --port=53 \
	--listen-address=198.18.2.2 --address=/example.org/198.18.2.3 --address=/corp.example/198.18.2.2 \
	--log-facility=- -q >"$T/b.log" 2>&1
wait_for ns_exec "$B" sh -c "ss -Hlun 'sport = :53' | grep -q ." || fail "dnsmasq did not start"
ns_spawn "$F" "$NETEXT_DNSBAD" fake-upstream 198.18.3.2 198.18.3.3 >"$T/fake.log" 2>&1
wait_for grep -q ready "$T/fake.log" || fail "fake upstream did not start"

D_CONF_EXTRA="[dns]
route = bad.test 198.18.3.2
default = 198.18.2.2
tcp_idle_ms = 1000
max_tcp_clients = 4"
daemon_start "$H"

counter() {
	ctl_json raw dns.status '{}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["engine"]["counters"][sys.argv[1]])' "$1"
}
bad() { ns_exec "$H" "$NETEXT_DNSBAD" "$@"; }
still_works() {
	local got
	got=$(ns_exec "$H" dig +time=3 +tries=1 +short @192.0.2.1 example.org 2>&1)
	[ "$got" = 198.18.2.3 ] || fail "after $1: dig gave '$got'"
	got=$(ns_exec "$H" dig +tcp +time=3 +tries=1 +short @192.0.2.1 example.org 2>&1)
	[ "$got" = 198.18.2.3 ] || fail "after $1: dig +tcp gave '$got'"
}
# expect PROTO CASE WANT COUNTER: the reply is WANT and COUNTER grew by one.
expect() {
	local proto=$1 c=$2 want=$3 ctr=$4 before after got
	before=$(counter "$ctr")
	got=$(bad "$proto" 192.0.2.1 "$c")
	[ "$got" = "$want" ] || fail "$proto $c: got '$got', want '$want'"
	after=$(counter "$ctr")
	[ "$after" = $((before + 1)) ] || fail "$proto $c: $ctr went from $before to $after"
	still_works "$proto $c"
}

still_works "start"
bad udp 192.0.2.1 good | grep -x "rcode=0 id=ok" >/dev/null || fail "a good query through dnsbad failed"
for proto in udp tcp; do
	expect "$proto" truncated "rcode=1 id=ok" formerr
	expect "$proto" loop "rcode=1 id=ok" formerr
	expect "$proto" forward "rcode=1 id=ok" formerr
	expect "$proto" longlabel "rcode=1 id=ok" formerr
	expect "$proto" longname "rcode=1 id=ok" formerr
	expect "$proto" counts "rcode=1 id=ok" formerr
	expect "$proto" noquestion "rcode=1 id=ok" formerr
	expect "$proto" notimp "rcode=4 id=ok" notimp
done
# No header: nothing to answer (UDP: silence; TCP: the frame is garbage, the connection goes).
expect udp short noreply dropped_short
expect tcp shortframe closed tcp_short_frame
# Answers sent to the proxy are never answered (no loops, no reflection).
expect udp qr noreply dropped_response
expect tcp zero closed tcp_zero_frame
expect tcp oversized closed tcp_oversized

# Slow loris: one byte and silence; closed after tcp_idle_ms.
before=$(counter tcp_idle_closed)
got=$(bad slowloris 192.0.2.1)
[ "$got" = closed ] || fail "slow-loris connection: $got"
[ "$(counter tcp_idle_closed)" -gt "$before" ] || fail "tcp_idle_closed did not move"
still_works "slow loris"

# At most max_tcp_clients connections: the fifth is closed at once.
before=$(counter tcp_refused)
got=$(bad hold 192.0.2.1 5)
[ "$got" = "closed=1" ] || fail "five connections with max_tcp_clients = 4: $got"
[ "$(counter tcp_refused)" = $((before + 1)) ] || fail "tcp_refused did not move by one"
wait_for sh -c "NETEXT_SOCKET=$D_SOCK $NETEXTCTL --json raw dns.status '{}' | grep -q '\"tcp_clients\": 0'" \
	|| fail "TCP clients not gone"
still_works "too many clients"

# Pipelining: 20 queries in one write, 20 answers (any order, ids intact); IPv4 and IPv6.
got=$(bad pipeline 192.0.2.1 20)
[ "$got" = "answers=20" ] || fail "pipelined queries: $got"
ip -n "$H" -6 route add default via fd00:198:18:2::2 || fail "default route v6"
got=$(bad pipeline 2001:db8::1 20)
[ "$got" = "answers=20" ] || fail "pipelined queries (IPv6): $got"

# The fake upstream: only its last, correct answer is taken.
for c in wrong_source wrong_id malformed_answer mismatch; do
	eval "b_$c=\$(counter $c)"
done
got=$(ns_exec "$H" dig +time=3 +tries=1 +short @192.0.2.1 host.bad.test 2>&1)
[ "$got" = 198.18.9.9 ] || fail "the fake upstream's real answer was not taken: '$got'"
[ "$(counter wrong_source)" = $((b_wrong_source + 2)) ] || fail "wrong_source: $b_wrong_source → $(counter wrong_source)"
[ "$(counter wrong_id)" = $((b_wrong_id + 1)) ] || fail "wrong_id: $b_wrong_id → $(counter wrong_id)"
[ "$(counter malformed_answer)" = $((b_malformed_answer + 1)) ] || fail "malformed_answer did not move"
[ "$(counter mismatch)" = $((b_mismatch + 1)) ] || fail "mismatch did not move"
still_works "the fake upstream"

# A server that does not answer: timeouts, retries, then SERVFAIL; the proxy goes on.
kill "$(pgrep -f "dnsbad fake-upstream" | head -1)" 2>/dev/null
before=$(counter timeouts)
got=$(ns_exec "$H" dig +time=10 +tries=1 @192.0.2.1 host.bad.test 2>&1 | grep -o 'status: [A-Z]*')
[ "$got" = "status: SERVFAIL" ] || fail "a dead upstream: '$got'"
[ "$(counter timeouts)" = $((before + 3)) ] || fail "timeouts: $before → $(counter timeouts), want 3 tries"
still_works "a dead upstream"

[ "$(ctl_json raw dns.status '{}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["engine"]["in_flight"])')" = 0 ] \
	|| fail "queries left in flight"
# The counters, for the log.
ctl_json raw dns.status '{}' | python3 -c 'import json,sys; c=json.load(sys.stdin)["engine"]["counters"]; print(" ".join(f"{k}={v}" for k,v in c.items() if v))'
daemon_stop
echo "dns bad input: ok"

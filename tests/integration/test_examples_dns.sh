#!/usr/bin/env bash
# The example DNS proxies, registered in developer mode, against real resolvers and dig:
#   splitdns: corp.example names go to server A, an exempted name and everything else to the
#     default (the "system resolver", netextd's default route); a per-app rule sends the
#     queries of a copy of dig (appdig) to A whatever the name; stats count each kind; a bad rule file fails the start
#     with its line; reload replaces the rules, a bad reload keeps them.
#   dnsblock: with the 100,000-name list of make-list.sh, ads.test and sub.ads.test get
#     NXDOMAIN (and never reach a server), example.org passes, a name whose CNAME leads to a
#     listed name is blocked; in sinkhole mode A gets 0.0.0.0 and AAAA gets ::.
# H holds the daemon and the clients; S the resolvers: D (198.18.1.2, the default) and A
# (198.18.1.3, the company's). They answer the same names with different addresses, so an
# answer tells which server gave it; their query logs tell who was asked at all.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/lib/daemon.sh"
: "${NETEXT_SPLITDNS:?}" "${NETEXT_DNSBLOCK:?}" "${MAKE_LIST:?}"
for tool in dig dnsmasq python3; do
	command -v "$tool" >/dev/null || skip "needs $tool"
done

H=$(ns_add h) || fail "ns h"
S=$(ns_add s) || fail "ns s"
ns_link "$H" "$S" 1
vs=$(ip -n "$S" -o link show type veth | awk -F': ' '{print $2}' | cut -d@ -f1)
ip -n "$S" addr add 198.18.1.3/24 dev "$vs" || fail "addr .3"
T=$NS_TMPDIR
chmod 755 "$T" # the extensions run as nobody and read their files here

# --- S: two resolvers -------------------------------------------------------------------------
# D answers corp names with 198.18.9.1, A with 198.18.9.2; example.org: D .10, A .20.
# D also has cdn.example.org, a CNAME for x.tracker.test (a listed domain).
cat > "$T/hosts.d" <<EOF
198.18.9.1 host.corp.example www.corp.example
198.18.9.10 example.org
198.18.9.11 x.tracker.test
EOF
cat > "$T/hosts.a" <<EOF
198.18.9.2 host.corp.example www.corp.example
198.18.9.20 example.org
EOF
# resolver NAME ADDRESS HOSTS [dnsmasq options]
resolver() {
	ns_spawn "$S" dnsmasq --no-daemon --no-resolv --no-hosts --addn-hosts="$3" \
		--listen-address="$2" --bind-interfaces --port=53 --log-queries \
		--log-facility="$T/$1.log" "${@:4}" 2>>"$T/$1.err"
}
resolver d 198.18.1.2 "$T/hosts.d" --cname=cdn.example.org,x.tracker.test
resolver a 198.18.1.3 "$T/hosts.a"
wait_for ns_exec "$S" sh -c "ss -Hlun 'sport = :53' | grep -c . | grep -qx 2" || fail "resolvers did not start"

# The default route: D. (netextd would otherwise use the host's /etc/resolv.conf.)
D_CONF_EXTRA=$'[dns]\ndefault = 198.18.1.2'
daemon_start "$H"
ctl dev register com.example.splitdns "$NETEXT_SPLITDNS" >/dev/null || fail "register splitdns"
ctl dev register com.example.dnsblock "$NETEXT_DNSBLOCK" >/dev/null || fail "register dnsblock"

DIG=$(readlink -f "$(command -v dig)")
mkdir "$T/bin" && cp "$DIG" "$T/bin/appdig" && chmod 755 "$T/bin/appdig"
# q [dig options...] NAME: the answer's addresses, one a line, or the status when not NOERROR.
# The client asks D directly; netextd diverts the query whatever its destination.
q() {
	ns_exec "$H" dig +time=3 +tries=1 @198.18.1.2 "$@" > "$T/dig.out" 2>&1
	local status
	status=$(sed -n 's/.*status: \([A-Z]*\),.*/\1/p' "$T/dig.out")
	if [ "$status" = NOERROR ]; then
		awk '!/^;/ && NF >= 5 && ($4 == "A" || $4 == "AAAA") { print $5 }' "$T/dig.out"
	else
		echo "${status:-timeout}"
	fi
}
# expect WANT [dig options...] NAME
expect() {
	local want=$1 got
	shift
	got=$(q "$@")
	[ "$got" = "$want" ] || { cat "$T/dig.out"; tail -20 "$D_LOG"; fail "dig $*: '$got', want '$want'"; }
}
# asked LOG NAME: whether resolver LOG got a query for NAME.
asked() { grep -q "query\[[A-Z]*\] $2 from" "$T/$1.log"; }

# === without a provider: everything goes to the default ======================================
expect 198.18.9.1 host.corp.example

# === splitdns ==================================================================================
cat > "$T/splitdns.conf" <<EOF
# Company names go to the company's resolver (A); everything else to the default (D).
route corp.example 198.18.1.3
exempt www.corp.example        # the public site
app $T/bin/appdig 198.18.1.3:53   # appdig asks A for every name
EOF
chmod 644 "$T/splitdns.conf"
ctl config add splitdns --extension com.example.splitdns --provider dns-proxy --fail-closed \
	--option config="$T/splitdns.conf" >/dev/null || fail "config add splitdns"
ctl start splitdns >/dev/null || { tail -20 "$D_LOG"; fail "start splitdns"; }
grep -q "splitdns: 1 routes, 1 exemptions, 1 app rules from $T/splitdns.conf" "$D_LOG" \
	|| fail "splitdns did not log its rules"

expect 198.18.9.2 host.corp.example          # route: A
expect 198.18.9.2 HOST.Corp.Example.         # the same name in another case
expect 198.18.9.1 www.corp.example           # exempt: D
expect 198.18.9.10 example.org               # no rule: D
expect 198.18.9.10 +tcp example.org          # over TCP too
# Per app: appdig's queries go to A, even for example.org.
ns_exec "$H" "$T/bin/appdig" +time=3 +tries=1 +short @198.18.1.2 example.org > "$T/appdig.out" 2>&1
[ "$(cat "$T/appdig.out")" = 198.18.9.20 ] || { cat "$T/appdig.out"; fail "appdig's query did not go to A"; }
ctl message splitdns stats > "$T/stats"
python3 - "$T/stats" <<'EOF' || { cat "$T/stats"; fail "splitdns stats"; }
import json, sys
s = json.load(open(sys.argv[1]))
assert s["route"] >= 2 and s["exempt"] >= 1 and s["system"] >= 2 and s["app"] >= 1, s
assert s["queries"] == s["route"] + s["exempt"] + s["system"] + s["app"], s
EOF
# The decision log (debug level) names the program and the rule.
wait_for grep -q "host.corp.example A from $DIG\[[0-9]*\]: route corp.example (line 2) -> 198.18.1.3" "$D_LOG" \
	|| { grep splitdns "$D_LOG" | tail; fail "no decision log line"; }

# Reload: a bad file keeps the running rules; a good one replaces them.
echo "route bad.example 198.18.1.300" >> "$T/splitdns.conf"
ctl message splitdns reload | gq "^error: $T/splitdns.conf:5: '198.18.1.300' is not a server" \
	|| fail "bad reload not refused"
expect 198.18.9.2 host.corp.example
printf 'route example.org 198.18.1.3\n' > "$T/splitdns.conf"
[ "$(ctl message splitdns reload)" = "ok: 1 rules from $T/splitdns.conf" ] || fail "reload"
expect 198.18.9.20 example.org               # now routed to A
expect 198.18.9.1 host.corp.example          # no rule any more: D
ctl stop splitdns >/dev/null

# A bad rule file fails the start and names the line.
printf 'route corp.example 198.18.1.3\n\nroute\n' > "$T/bad.conf"
chmod 644 "$T/bad.conf"
ctl config add splitdns2 --extension com.example.splitdns --provider dns-proxy --fail-open \
	--option config="$T/bad.conf" >/dev/null || fail "config add splitdns2"
out=$(ctl start splitdns2 2>&1) && fail "started with a bad rule file"
echo "$out" | gq "bad.conf:3: route needs a domain" || fail "start error does not name the line: $out"
ctl config remove splitdns2 >/dev/null
ctl config remove splitdns >/dev/null

# === dnsblock ==================================================================================
sh "$MAKE_LIST" 100000 > "$T/block.list" || fail "make-list.sh"
chmod 644 "$T/block.list"
ctl config add block --extension com.example.dnsblock --provider dns-proxy --fail-closed \
	--option list="$T/block.list" >/dev/null || fail "config add block"
ctl start block >/dev/null || { tail -20 "$D_LOG"; fail "start block"; }
grep -Eq "block: 100000 names from $T/block.list in [0-9.]+ ms, [0-9.]+ MiB; [0-9]+ lines, 0 invalid" "$D_LOG" \
	|| { grep dnsblock "$D_LOG"; fail "dnsblock did not log the load"; }
expect NXDOMAIN ads.test
expect NXDOMAIN sub.ads.test
expect NXDOMAIN AAAA deep.sub.ads.test
expect NXDOMAIN +tcp tracker.test
expect 198.18.9.10 example.org
expect 198.18.9.10 +tcp example.org
# Blocked names never reach a resolver.
! asked d ads.test && ! asked d sub.ads.test && ! asked a ads.test || fail "a blocked query reached a resolver"
asked d example.org || fail "example.org did not reach D"
# CNAME cloaking: cdn.example.org is a CNAME for x.tracker.test at D.
expect NXDOMAIN cdn.example.org
asked d cdn.example.org || fail "cdn.example.org was not forwarded"
[ "$(ctl message block "check a.b.ads.test")" = "blocked by ads.test" ] || fail "check"
ctl message block stats > "$T/stats"
python3 - "$T/stats" <<'EOF' || { cat "$T/stats"; fail "dnsblock stats"; }
import json, sys
s = json.load(open(sys.argv[1]))
assert s["listed"] == 100000 and s["invalid"] == 0 and s["mode"] == "nxdomain", s
assert s["blocked"] >= 4 and s["cname_blocked"] >= 1 and s["passed"] >= 3, s
EOF
ctl stop block >/dev/null

# Sinkhole mode, with its default addresses and a TTL.
ctl config add sink --extension com.example.dnsblock --provider dns-proxy --fail-closed \
	--option list="$T/block.list" --option mode=sinkhole --option ttl=30 >/dev/null || fail "config add sink"
ctl start sink >/dev/null || { tail -20 "$D_LOG"; fail "start sink"; }
expect 0.0.0.0 ads.test
expect 0.0.0.0 sub.ads.test
expect :: AAAA sub.ads.test
expect "" TXT ads.test                       # NODATA: NOERROR, no records
expect 198.18.9.10 example.org
grep -Eq "^ads\.test\.[[:space:]]+30[[:space:]]+IN[[:space:]]+TXT" "$T/dig.out" && fail "a TXT record in NODATA"
q ads.test > /dev/null
grep -Eq "^ads\.test\.[[:space:]]+30[[:space:]]+IN[[:space:]]+A[[:space:]]+0\.0\.0\.0" "$T/dig.out" \
	|| { cat "$T/dig.out"; fail "sinkhole record without the ttl"; }
ctl stop sink >/dev/null

daemon_stop
echo "examples dns: ok"

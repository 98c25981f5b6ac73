#!/usr/bin/env bash
# A tunnel's DNS settings become split-DNS routes (source tunnel:NAME). Two DNS servers
# (dnsmasq): the "system" resolver on S's transport address 198.18.1.2 (outside the tunnel),
# and the tunnel's resolver on the peer's tunnel address 198.19.1.2, reachable only through
# the tunnel. Both know corp.test, with different answers.
#   - before the tunnel: corp.test gets the system resolver's answer;
#   - with the tunnel (dns=198.19.1.2 match=corp.test): `netextctl dns route list` shows
#     corp.test → 198.19.1.2 with source tunnel:td; an unmodified client (dig) asking the
#     system resolver gets the tunnel resolver's answer for corp.test and its subdomains,
#     over UDP and TCP (netextd intercepts and routes the query), and the system resolver's
#     answer for other names, which never reach the tunnel's resolver (its query log);
#   - after stop: the route is gone and corp.test is the system resolver's again.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/lib/daemon.sh"
. "$here/lib/tunnel.sh"
[ -n "${NETEXT_TESTTUNNEL:-}" ] || skip "netext-testtunnel is not built (wt-lib)"
for tool in dig dnsmasq; do command -v $tool >/dev/null || skip "needs $tool"; done

T=$NS_TMPDIR
echo "nameserver $S4" > "$T/resolv.conf"
D_CONF_EXTRA="[dns]
default = $S4
resolv_conf = $T/resolv.conf"
tun_setup
PIF=td$$
PIF=${PIF:0:15}
tun_peer_udptun "$PIF" 51820 1

dnsmasq_in() { # NAME ADDR [extra…]
	local name=$1 addr=$2
	shift 2
	ns_spawn "$S" dnsmasq --no-daemon --no-resolv --no-hosts --bind-interfaces --port=53 \
		--listen-address="$addr" --log-queries --log-facility=- --pid-file="$T/$name.pid" \
		"$@" >"$T/$name.log" 2>&1
}
dnsmasq_in system $S4 --address=/corp.test/198.18.9.9 --address=/other.test/198.18.9.8
dnsmasq_in tunnel 198.19.1.2 --address=/corp.test/198.19.100.53 --address=/other.test/198.19.100.99
wait_for ns_exec "$S" sh -c "ss -Hlun 'sport = :53' | grep -q '$S4'" || fail "system dnsmasq did not start"
wait_for ns_exec "$S" sh -c "ss -Hlun 'sport = :53' | grep -q '198.19.1.2'" || fail "tunnel dnsmasq did not start"

ask() { # NAME [+tcp]: the first A record, from C, asking the system resolver
	ns_exec "$C" dig +short +time=2 +tries=2 ${2:-} @$S4 "$1" A 2>/dev/null | head -1
}
[ "$(ask corp.test)" = 198.18.9.9 ] || fail "before the tunnel, corp.test is '$(ask corp.test)'"

tconfig td peer=$S4:51820 addresses=198.19.1.1/24,2001:db8:1::1/64 routes=198.19.100.0/24 \
	dns=198.19.1.2 match=corp.test search=corp.test
tstart td
twait td connected
IF=$(tiface td)
ctl dns route list > "$T/routes" || fail "dns route list"
grep -Eq '^corp\.test +198\.19\.1\.2 +tunnel:td' "$T/routes" || { cat "$T/routes"; fail "no corp.test route from tunnel:td"; }
ctl_json dns route list > "$T/routes.json" || fail "dns route list --json"
"$PY" -c '
import json, sys
r = {x["suffix"]: x for x in json.load(open(sys.argv[1]))["routes"]}
assert r["corp.test"]["source"] == "tunnel:td", r
assert r["corp.test"]["servers"] == ["198.19.1.2"], r' "$T/routes.json" || { cat "$T/routes.json"; fail "route list --json"; }
echo "ok: dns route list: corp.test → 198.19.1.2 (tunnel:td)"

rx0=$(link_pkts "$S" "$PIF" rx)
for q in corp.test www.corp.test; do
	for tcp in "" +tcp; do
		got=$(ask $q $tcp)
		[ "$got" = 198.19.100.53 ] || fail "$q ${tcp:-udp}: '$got', want the tunnel resolver's 198.19.100.53"
	done
done
rx1=$(link_pkts "$S" "$PIF" rx)
[ $((rx1 - rx0)) -ge 4 ] || fail "the queries for corp.test did not cross the tunnel ($((rx1 - rx0)) packets)"
grep -q 'query\[A\] www.corp.test' "$T/tunnel.log" || { cat "$T/tunnel.log"; fail "the tunnel resolver did not see www.corp.test"; }
echo "ok: corp.test and www.corp.test (UDP and TCP) answered by the tunnel's resolver, through the tunnel"
for tcp in "" +tcp; do
	got=$(ask other.test $tcp)
	[ "$got" = 198.18.9.8 ] || fail "other.test ${tcp:-udp}: '$got', want the system resolver's 198.18.9.8"
done
grep -q 'other.test' "$T/tunnel.log" && { cat "$T/tunnel.log"; fail "other.test reached the tunnel's resolver"; }
echo "ok: other.test answered by the system resolver, never sent to the tunnel's"

tstop td
twait td disconnected
tun_assert_clean "$IF"
ctl dns route list | gq corp.test && fail "corp.test route left after stop"
[ "$(ask corp.test)" = 198.18.9.9 ] || fail "after stop, corp.test is '$(ask corp.test)'"
echo "ok: after stop the tunnel's route is gone; corp.test is the system resolver's again"

daemon_stop
tun_assert_clean "$IF"
echo "ok"

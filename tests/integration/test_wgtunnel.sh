#!/usr/bin/env bash
# examples/wgtunnel (netext-wgtunnel, a WireGuard provider) under netextd in C against
# wireguard-go in S (Debian's, the reference implementation), over the veth 198.18.1.0/24.
# Inside the tunnel C is 198.19.1.1 / 2001:db8:1::1, S 198.19.1.2 / 2001:db8:1::2, and S's
# loopback has the peer-only 198.19.100.1 / 2001:db8:100::1.
#   1. interop, handshake from C: S knows no endpoint, so only C can start; ping and ping -6
#      both ways, to the peer-only addresses too; wireguard-go reports a handshake;
#   2. iperf3 TCP both directions, IPv4 and IPv6 (3 s each; only that data went through);
#   3. handshake from S: wireguard-go restarted with C's endpoint, and S pings first;
#   4. malformed packets to wgtunnel's UDP port from S: short, unknown type, an initiation
#      with a bad MAC, random 148-byte initiations, a transport packet for no session, a
#      cookie reply for nobody: the tunnel keeps working and the drop counters of the app
#      message `stats` grew;
#   5. rekey (option time_scale=40: wgtunnel's protocol clock 40 times faster, so rekeying
#      comes after 3 s): two more handshakes complete while pings go on, and traffic
#      continues both ways;
#   6. the kill switch (include_all_networks=yes): O outside the tunnel is dropped, the
#      tunnel (and so its UDP transport) works;
#   7. a file as users write them: the peer's Endpoint is a host name (resolved at start by
#      the system resolver, which this test serves with dnsmasq at resolv.conf's first
#      nameserver address inside the namespaces, here to S's IPv6 transport address) and the
#      tunnel has a DNS match domain: the log names the address, wireguard-go sees C over
#      IPv6, ping works, and an unmodified client's query for the match domain is answered by
#      the DNS server behind the tunnel; a name that does not resolve fails the start with
#      the file's line; with the kill switch on, kill -9: the restarted extension (new
#      cgroup) looks the name up again through the held kill switch and reconnects;
#   8. stop: nothing left.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/lib/daemon.sh"
. "$here/lib/tunnel.sh"
[ -n "${NETEXT_WGTUNNEL:-}" ] && [ -x "$NETEXT_WGTUNNEL" ] || skip "netext-wgtunnel is not built (examples/wgtunnel)"
for tool in wireguard-go wg iperf3 ping nc; do command -v $tool >/dev/null || skip "needs $tool"; done
WG_ID=${WG_ID:-com.example.wgtunnel}

tun_setup
tun_add_outside
ctl dev register "$WG_ID" "$NETEXT_WGTUNNEL" >/dev/null || fail "register wgtunnel"
wg_keys cli
wg_keys srv
WIF=wgs$$
WIF=${WIF:0:15}
CPORT=51821
ALLOWED="198.19.1.0/24, 2001:db8:1::/64, 198.19.100.0/24, 2001:db8:100::/64"
wg_client_conf "$T/wg.conf" $CPORT "$S4:51820" "$ALLOWED" "DNS = 198.19.1.2"
tun_peer_wggo "$WIF" 51820 "$(cat "$T/cli.pub")" 1
TEXT=$WG_ID tconfig wg config=$T/wg.conf

pings() { # NS DST...: 3 pings each
	local ns=$1 dst
	shift
	for dst in "$@"; do
		ns_exec "$ns" ping -c 3 -i 0.2 -W 2 "$dst" >"$T/ping" 2>&1 || { cat "$T/ping"; fail "ping from $ns to $dst"; }
	done
}

# 1. Handshake initiated by C.
tstart wg
twait wg connected
IF=$(tiface wg)
pings "$C" 198.19.1.2 2001:db8:1::2 $P4 $P6
hs1=$(wg_handshake "$S" "$WIF")
[ -n "$hs1" ] && [ "$hs1" -gt 0 ] || fail "wireguard-go reports no handshake"
pings "$S" 198.19.1.1 2001:db8:1::1
ns_exec "$S" wg show "$WIF" endpoints | gq "$C4:$CPORT" || { ns_exec "$S" wg show "$WIF"; fail "wireguard-go did not learn C's endpoint"; }
echo "ok: handshake from C; ping v4/v6 both ways with wireguard-go on $WIF, wgtunnel on $IF"

# 2. iperf3, both directions, v4 and v6.
ns_spawn "$S" iperf3 -s -B 198.19.1.2 -p 5201 >"$T/iperf3-s4.log" 2>&1
ns_spawn "$S" iperf3 -s -B 2001:db8:1::2 -p 5202 >"$T/iperf3-s6.log" 2>&1
wait_for ns_exec "$S" sh -c "ss -Hlnt 'sport = :5202' | grep -q ." || fail "iperf3 servers"
wait_for ns_exec "$S" sh -c "ss -Hlnt 'sport = :5201' | grep -q ." || fail "iperf3 servers"
iperf() { # DST PORT [-R]
	ns_exec "$C" timeout 30 iperf3 -J -c "$1" -p "$2" -t 3 ${3:-} > "$T/iperf.json" 2>&1 ||
		{ tail -5 "$T/iperf.json"; fail "iperf3 -c $1 ${3:-}"; }
	"$PY" -c '
import json, sys
r = json.load(open(sys.argv[1]))["end"]["sum_received"]
assert r["bytes"] > 1 << 20, r
print("%.0f Mbit/s" % (r["bits_per_second"] / 1e6))' "$T/iperf.json" || fail "iperf3 to $1 ${3:-} moved (almost) nothing"
}
for d in "198.19.1.2 5201" "2001:db8:1::2 5202"; do
	set -- $d
	up=$(iperf "$1" "$2")
	down=$(iperf "$1" "$2" -R)
	echo "ok: iperf3 TCP to $1: C → S $up, S → C $down"
done

# 3. Handshake initiated by S: a fresh wireguard-go that knows C's endpoint pings first.
kill -TERM "$WG_PID"
wait "$WG_PID" 2>/dev/null
wait_for sh -c "! ip -n $S link show dev $WIF" || fail "wireguard-go's $WIF did not go"
tun_peer_wggo "$WIF" 51820 "$(cat "$T/cli.pub")" 1 "$C4:$CPORT"
[ -z "$(wg_handshake "$S" "$WIF")" ] || [ "$(wg_handshake "$S" "$WIF")" = 0 ] || fail "the new wireguard-go has a handshake already"
pings "$S" 198.19.1.1 2001:db8:1::1
hs2=$(wg_handshake "$S" "$WIF")
[ -n "$hs2" ] && [ "$hs2" -gt 0 ] || fail "no handshake initiated by wireguard-go"
pings "$C" 198.19.1.2 2001:db8:1::2
echo "ok: handshake from S (wireguard-go); ping v4/v6 both ways"

# 4. Malformed packets to wgtunnel's port.
stats_sum() { # the sum of the stats counters named drop*/invalid*/bad* (or all "drop" ones)
	ext_msg wg stats 2>/dev/null | "$PY" -c '
import re, sys
t = sys.stdin.read()
print(sum(int(v) for k, v in re.findall(r"(?m)^\s*([A-Za-z0-9_.]+)\s*[=:]\s*(\d+)\s*$", t)
          if re.search(r"drop|invalid|bad|malformed|reject", k)))'
}
ext_msg wg stats > "$T/stats0" 2>&1 || fail "app message stats: $(cat "$T/stats0")"
d0=$(stats_sum)
ns_exec "$S" "$PY" - $C4 $CPORT <<'EOF' || fail "sending garbage"
import os, socket, struct, sys
dst = (sys.argv[1], int(sys.argv[2]))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
pkts = [b"", b"\x01", b"\x01\x00\x00", b"\x09\x00\x00\x00" + os.urandom(28),  # short, wrong type
        b"\x01\x00\x00\x00" + os.urandom(144),                                 # initiation, bad MAC1
        b"\x02\x00\x00\x00" + os.urandom(88),                                  # response for nobody
        b"\x03\x00\x00\x00" + os.urandom(60),                                  # cookie reply for nobody
        b"\x04\x00\x00\x00" + os.urandom(12 + 16 + 64),                        # transport, no session
        b"\x04\x00\x00\x00" + os.urandom(8)]                                   # transport, short
pkts += [os.urandom(148) for _ in range(20)]                                  # random 148 bytes
pkts += [b"\x01\x00\x00\x00" + os.urandom(144) for _ in range(20)]
for p in pkts:
    s.sendto(p, dst)
print(len(pkts), "datagrams")
EOF
pings "$C" 198.19.1.2 $P6
pings "$S" 198.19.1.1
d1=$(stats_sum)
ext_msg wg stats > "$T/stats1" 2>&1
# stat FILE KEY
stat() { sed -n "s/^$2=\([0-9]*\)\$/\1/p" "$1" | head -1; }
[ "$d1" -ge $((d0 + 49)) ] || { cat "$T/stats0" "$T/stats1"; fail "49 malformed datagrams, but the drop counters moved by $((d1 - d0))"; }
[ "$(stat "$T/stats1" drop_mac1)" -ge $(($(stat "$T/stats0" drop_mac1) + 21)) ] ||
	{ cat "$T/stats1"; fail "drop_mac1 did not count the 21 initiations with a bad MAC"; }
[ "$(stat "$T/stats1" drop_short)" -ge $(($(stat "$T/stats0" drop_short) + 3)) ] ||
	{ cat "$T/stats1"; fail "drop_short did not count the short datagrams"; }
echo "ok: 49 malformed datagrams dropped and counted (drops $d0 → $d1: drop_mac1 $(stat "$T/stats1" drop_mac1), drop_short $(stat "$T/stats1" drop_short)), the tunnel still works"
grep '^drop_' "$T/stats1" | tr '\n' ' ' | sed 's/^/    /'
echo

# 5. Rekey: time_scale=40 runs wgtunnel's protocol clock 40 times faster, so it rekeys after
# 120 s / 40 = 3 s. While pings run, new handshakes complete (wgtunnel's counter and
# wireguard-go's latest handshake) and traffic continues both ways.
tstop wg
twait wg disconnected
tstart wg --option time_scale=40
twait wg connected
pings "$C" 198.19.1.2
hs_a=$(wg_handshake "$S" "$WIF")
n_a=$(ext_stat wg handshakes_completed)
ns_spawn "$C" ping -i 0.2 -W 1 198.19.1.2 >"$T/ping-rekey" 2>&1
pp=$NS_PID
rekeyed() { [ "$(ext_stat wg handshakes_completed)" -ge $((n_a + 2)) ] && [ "$(wg_handshake "$S" "$WIF")" -gt "$hs_a" ]; }
WAIT_TRIES=300 wait_for rekeyed || fail "no two new handshakes with time_scale=40 (completed $n_a → $(ext_stat wg handshakes_completed))"
kill -INT "$pp"
wait "$pp" 2>/dev/null
pings "$C" 198.19.1.2 2001:db8:1::2
pings "$S" 198.19.1.1
echo "ok: rekey: handshakes completed $n_a → $(ext_stat wg handshakes_completed), wireguard-go's latest $hs_a → $(wg_handshake "$S" "$WIF"); traffic continues ($(grep -o '[0-9]* received, [0-9.]*% packet loss' "$T/ping-rekey") during the rekeys)"
tstop wg
twait wg disconnected
tun_assert_clean "$IF"

# 6. The kill switch with wgtunnel.
TEXT=$WG_ID tconfig wgks config=$T/wg.conf include_all_networks=yes
for dst in $O4 $O6; do ns_exec "$C" ping -c 1 -W 1 "$dst" >/dev/null || fail "O $dst before the kill switch"; done
tstart wgks
twait wgks connected
IF=$(tiface wgks)
pings "$C" 198.19.1.2 2001:db8:1::2 $P4
for dst in $O4 $O6; do
	ns_exec "$C" ping -c 2 -i 0.2 -W 1 "$dst" >/dev/null 2>&1 && fail "kill switch: O $dst reachable"
done
pings "$S" 198.19.1.1
echo "ok: kill switch with wgtunnel: O dropped, the tunnel and its transport work"
tstop wgks
twait wgks disconnected
tun_assert_clean "$IF"
for dst in $O4 $O6; do ns_exec "$C" ping -c 1 -W 1 "$dst" >/dev/null || fail "O $dst after the kill switch"; done

# 7. Endpoint by host name, over IPv6, and a DNS match domain.
NSIP=$(awk '$1 == "nameserver" { print $2; exit }' /etc/resolv.conf)
case "$NSIP" in
127.*) RNS=$C ;;                                        # a local stub: serve it inside C
[0-9]*.*.*.*) RNS=$S                                    # served by S, routed there from C
	ns_exec "$S" ip addr add "$NSIP/32" dev lo || fail "resolver address in S"
	ns_exec "$C" ip route add "$NSIP/32" via $S4 || fail "route to the resolver" ;;
*) RNS= ;;
esac
if [ -z "$RNS" ] || ! command -v dnsmasq >/dev/null || ! command -v dig >/dev/null; then
	echo "ok: 7 skipped (needs dnsmasq, dig and an IPv4 nameserver in /etc/resolv.conf, not '$NSIP')"
else
	ns_spawn "$RNS" dnsmasq --no-daemon --no-resolv --no-hosts --bind-interfaces --port=53 \
		--listen-address="$NSIP" --local=/wg.test/ --host-record=peer.wg.test,$S6 \
		--pid-file="$T/dnsmasq-sys.pid" >"$T/dnsmasq-sys.log" 2>&1
	ns_spawn "$S" dnsmasq --no-daemon --no-resolv --no-hosts --bind-interfaces --port=53 \
		--listen-address=198.19.1.2 --local=/wg.test/ --host-record=www.wg.test,198.19.100.1 \
		--log-queries --log-facility=- --pid-file="$T/dnsmasq-tun.pid" >"$T/dnsmasq-tun.log" 2>&1
	wait_for ns_exec "$RNS" sh -c "ss -Hlun 'sport = :53' | grep -q '$NSIP'" || fail "resolver dnsmasq"
	wait_for ns_exec "$S" sh -c "ss -Hlun 'sport = :53' | grep -q '198.19.1.2'" || fail "tunnel dnsmasq"
	wg_client_conf "$T/wg-name.conf" $CPORT "peer.wg.test:51820" "$ALLOWED" "DNS = 198.19.1.2"
	TEXT=$WG_ID tconfig wgn config=$T/wg-name.conf match=wg.test include_all_networks=yes
	tstart wgn
	twait wgn connected
	IF=$(tiface wgn)
	gq "Endpoint peer.wg.test is \[$S6\]:51820" "$D_LOG" || { grep -i endpoint "$D_LOG"; fail "the log does not show peer.wg.test resolved to [$S6]:51820"; }
	pings "$C" 198.19.1.2 2001:db8:1::2 $P4
	ns_exec "$S" wg show "$WIF" endpoints | gq "\[$C6\]:$CPORT" ||
		{ ns_exec "$S" wg show "$WIF" endpoints; fail "wireguard-go does not see C over IPv6"; }
	ctl dns route list | gq -E '^wg\.test +198\.19\.1\.2 +tunnel:wgn' || { ctl dns route list; fail "no wg.test route from tunnel:wgn"; }
	ans=$(ns_exec "$C" dig +short +time=2 +tries=2 @$S4 www.wg.test A 2>/dev/null | head -1)
	[ "$ans" = 198.19.100.1 ] || { cat "$T/dnsmasq-tun.log"; fail "www.wg.test through the tunnel's DNS server: '$ans'"; }
	gq "query\[A\] www.wg.test from 198.19.1.1" "$T/dnsmasq-tun.log" ||
		{ cat "$T/dnsmasq-tun.log"; fail "the query did not reach the tunnel's DNS server through the tunnel"; }
	echo "ok: Endpoint peer.wg.test resolved to [$S6]:51820, traffic over the IPv6 transport, www.wg.test answered through the tunnel ($ans)"
	# kill -9 under the kill switch: the switch is held, the restarted extension (in a new
	# cgroup) resolves the name again through it and reconnects.
	pid=$(ext_pid_wait "$WG_ID") || fail "no pid for $WG_ID"
	kill -KILL "$pid"
	new_pid() { local p; p=$(ext_pid "$WG_ID"); [ -n "$p" ] && [ "$p" != 0 ] && [ "$p" != "$pid" ]; }
	WAIT_TRIES=100 wait_for new_pid || fail "wgtunnel was not restarted after kill -9"
	TWAIT_TRIES=300 twait wgn connected
	[ "$(grep -c "Endpoint peer.wg.test is" "$D_LOG")" -ge 2 ] || fail "the restarted extension did not resolve peer.wg.test again"
	pings "$C" 198.19.1.2 2001:db8:1::2
	for dst in $O4 $O6; do
		ns_exec "$C" ping -c 2 -i 0.2 -W 1 "$dst" >/dev/null 2>&1 && fail "kill switch after the restart: O $dst reachable"
	done
	echo "ok: kill -9 with the kill switch on: the restarted wgtunnel resolved peer.wg.test through the held switch and reconnected"
	tstop wgn
	twait wgn disconnected
	tun_assert_clean "$IF"
	# A name that does not resolve: the start fails and says which line.
	wg_client_conf "$T/wg-bad.conf" $CPORT "nothere.wg.test:51820" "$ALLOWED"
	TEXT=$WG_ID tconfig wgb config=$T/wg-bad.conf
	ctl tunnel start wgb >"$T/out" 2>&1
	WAIT_TRIES=100 wait_for sh -c "NETEXT_SOCKET=$D_SOCK $NETEXTCTL tunnel status wgb | grep -q 'nothere.wg.test'" ||
		{ cat "$T/out"; ctl tunnel status wgb; fail "the failed start does not name the host"; }
	ctl tunnel status wgb | gq "wg-bad.conf:[0-9]*: Endpoint nothere.wg.test" ||
		{ ctl tunnel status wgb; fail "the error does not name the file's line"; }
	[ "$(tstate wgb)" = disconnected ] || fail "wgb: state $(tstate wgb) after a failed start"
	echo "ok: an Endpoint that does not resolve: $(ctl tunnel status wgb | sed -n 's/.*last error //p')"
	tun_assert_clean
fi

daemon_stop
tun_assert_clean "$IF"
echo "ok"

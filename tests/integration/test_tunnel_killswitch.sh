#!/usr/bin/env bash
# includeAllNetworks (the kill switch) and excludeLocalNetworks with netext-testtunnel and
# udptun. O is a host outside the tunnel on a second veth of C (198.18.2.2 / fd00:198:18:2::2).
#   1. without the kill switch, a tunnel with the default routes and O's network excluded:
#      O is reached outside the tunnel (the excluded routes work);
#   2. the same with include_all=yes: ping and TCP to O are dropped (the route still points
#      at the veth, so it is the kill switch that drops them, and the status counts them in
#      kill_switch_drops), while ping and TCP through the
#      tunnel work, the transport (UDP to S outside the tunnel) keeps flowing, loopback works,
#      and DHCP (UDP 68 → 67) still leaves;
#   2b. kill -9 of the extension with the kill switch on: the switch is held (O stays
#      unreachable, loopback works) while the supervisor cannot restart it yet; once it is
#      back, the restarted provider's settings take over and the tunnel works; a second kill
#      -9 followed by `tunnel stop` while the extension is down lets go: O is reachable and
#      nothing is left;
#   3. include_all=yes with exclude_local=yes: O's directly connected network is reachable;
#   4. after stop, O is reachable again and nothing of the tunnel is left.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/lib/daemon.sh"
. "$here/lib/tunnel.sh"
[ -n "${NETEXT_TESTTUNNEL:-}" ] || skip "netext-testtunnel is not built (wt-lib)"
: "${UDPECHO:?}"
for tool in nc ping; do command -v $tool >/dev/null || skip "needs $tool"; done

# A copy of netext-testtunnel, so that the test can hold the supervisor's restart back
# (chmod -x; each refused exec counts as a crash, hence restart_max = 20).
tun_private_testtunnel
D_CONF_EXTRA="restart_max = 20"
tun_setup
tun_add_outside
PIF=tk$$
PIF=${PIF:0:15}
tun_peer_udptun "$PIF" 51820 1
OIF=$(ns_exec "$C" ip -o route get $O4 | sed -n 's/.* dev \([^ ]*\).*/\1/p')
# answer_server NS WORD: a TCP server on port 8000 (v4 and v6) in NS that answers WORD.
answer_server() {
	ns_spawn "$1" "$PY" -c '
import socket, sys
s = socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", 8000)); s.listen(16)
while True:
    c, _ = s.accept(); c.sendall(sys.argv[1].encode() + b"\n"); c.close()' "$2"
	wait_for ns_exec "$1" sh -c "ss -Hlnt 'sport = :8000' | grep -q ." || fail "answer server in $1"
}
answer_server "$O" outside
answer_server "$S" peer

# reach DST: 0 when ping and a TCP connection to DST:8000 both work (the answer in $T/answer).
reach() {
	ns_exec "$C" ping -c 1 -W 1 "$1" >/dev/null 2>&1 || return 1
	ns_exec "$C" timeout 3 nc -w 2 "$1" 8000 > "$T/answer" 2>/dev/null </dev/null || return 1
	[ -s "$T/answer" ]
}
# unreachable DST: neither ping nor TCP gets through.
unreachable() {
	ns_exec "$C" ping -c 2 -i 0.2 -W 1 "$1" >/dev/null 2>&1 && return 1
	ns_exec "$C" timeout 3 nc -w 2 "$1" 8000 > "$T/answer" 2>/dev/null </dev/null
	[ ! -s "$T/answer" ]
}
through_tunnel() { # the peer-only addresses and the peer's tunnel address, answered by S
	local dst
	for dst in $P4 $P6 198.19.1.2; do
		reach "$dst" || fail "$1: $dst not reachable through the tunnel"
		[ "$(cat "$T/answer")" = peer ] || fail "$1: $dst answered '$(cat "$T/answer")'"
	done
}
for dst in $O4 $O6; do reach "$dst" || fail "O ($dst) not reachable before the tunnel"; done
# Loopback and the transport link for later.
answer_server "$C" loopback

OPTS=(peer=$S4:51820 addresses=198.19.1.1/24,2001:db8:1::1/64 routes=0.0.0.0/0,::/0
	excluded=198.18.2.0/24,fd00:198:18:2::/64)

# 1. Default routes into the tunnel, O's network excluded, no kill switch: O is reached
# outside the tunnel.
tconfig ks "${OPTS[@]}"
tstart ks
twait ks connected
IF=$(tiface ks)
through_tunnel "default routes"
for dst in $O4 $O6; do
	ns_exec "$C" ip route get "$dst" | gq "dev $OIF" || { ns_exec "$C" ip route get "$dst"; fail "excluded $dst is not routed to $OIF"; }
	reach "$dst" || fail "excluded $dst not reachable (no kill switch)"
	[ "$(cat "$T/answer")" = outside ] || fail "$dst answered '$(cat "$T/answer")'"
done
echo "ok: default routes into $IF, O's excluded network reached outside the tunnel"
tstop ks
twait ks disconnected
tun_assert_clean "$IF"

# 2. The kill switch.
tstart ks --option include_all=yes
twait ks connected
IF=$(tiface ks)
tx0=$(link_pkts "$C" "$(ns_exec "$C" ip -o route get $S4 | sed -n 's/.* dev \([^ ]*\).*/\1/p')" tx)
through_tunnel "kill switch"
tx1=$(link_pkts "$C" "$(ns_exec "$C" ip -o route get $S4 | sed -n 's/.* dev \([^ ]*\).*/\1/p')" tx)
[ $((tx1 - tx0)) -ge 6 ] || fail "kill switch: the transport sent $((tx1 - tx0)) packets on the link to S"
[ "$(tfield ks kill_switch)" = true ] || fail "status: kill_switch is '$(tfield ks kill_switch)'"
k0=$(tfield ks kill_switch_drops.packets)
for dst in $O4 $O6; do
	ns_exec "$C" ip route get "$dst" | gq "dev $OIF" || { ns_exec "$C" ip route get "$dst"; fail "kill switch: $dst is not routed to $OIF"; }
	unreachable "$dst" || { ns_exec "$C" nft list ruleset; fail "kill switch: $dst ($OIF, outside the tunnel) is reachable"; }
done
k1=$(tfield ks kill_switch_drops.packets)
[ "${k1:-0}" -ge $((${k0:-0} + 4)) ] || fail "kill switch: status kill_switch_drops.packets ${k0:-?} → ${k1:-?} after 4 pings and 2 connects to O"
echo "ok: kill switch: O dropped (kill_switch_drops ${k0:-0} → $k1), the tunnel and its transport work ($((tx1 - tx0)) transport packets)"
for dst in 127.0.0.1 ::1; do
	reach "$dst" || fail "kill switch: loopback $dst"
	[ "$(cat "$T/answer")" = loopback ] || fail "loopback $dst answered '$(cat "$T/answer")'"
done
echo "ok: kill switch: loopback works"
# DHCP: a client's UDP from port 68 to a server's port 67 leaves through the veth.
ns_spawn "$O" "$UDPECHO" recv 0.0.0.0 67 -n 3 -t 3000 > "$T/dhcp"
rl=$NS_PID
wait_for ns_exec "$O" sh -c "ss -Hlnu 'sport = :67' | grep -q ." || fail "receiver on 67"
ns_exec "$C" "$UDPECHO" send $O4 67 -n 3 -s 68 -p dhcp >/dev/null || fail "udpecho send 68 → 67"
wait "$rl" 2>/dev/null
[ "$(wc -l < "$T/dhcp")" -eq 3 ] || fail "kill switch: DHCP (UDP 68 → 67) to O dropped ($(wc -l < "$T/dhcp") of 3 arrived)"
# ... but other UDP to O is dropped.
ns_spawn "$O" "$UDPECHO" recv 0.0.0.0 6000 -n 3 -t 1500 > "$T/udp"
rl=$NS_PID
wait_for ns_exec "$O" sh -c "ss -Hlnu 'sport = :6000' | grep -q ." || fail "receiver on 6000"
ns_exec "$C" "$UDPECHO" send $O4 6000 -n 3 -p other >/dev/null 2>&1
wait "$rl" 2>/dev/null
[ "$(wc -l < "$T/udp")" -eq 0 ] || fail "kill switch: UDP to O port 6000 got through"
echo "ok: kill switch: DHCP leaves, other UDP to O does not"
tstop ks
twait ks disconnected
tun_assert_clean "$IF"
for dst in $O4 $O6; do reach "$dst" || fail "O ($dst) not reachable after the kill switch went"; done
echo "ok: after stop, O is reachable again and nothing is left"

# 2b. The kill switch across a crash of the extension.
held() { tks_held ks; }
pid_of() { ext_pid_wait $TT_ID; }
tstart ks --option include_all=yes
twait ks connected
pid=$(pid_of) || fail "no pid for $TT_ID"
chmod 644 "$NETEXT_TESTTUNNEL"
kill -KILL "$pid"
twait ks disconnected connecting
[ "$(held)" = true ] || { ctl tunnel status ks; fail "kill -9: kill_switch_held is '$(held)'"; }
ctl tunnel status ks | gq "kill switch held" || fail "kill -9: the text status does not say the kill switch is held"
unreachable $O4 || { ns_exec "$C" nft list ruleset; fail "kill -9: O ($O4) reachable while the extension is down"; }
unreachable $O6 || fail "kill -9: O ($O6) reachable while the extension is down"
reach 127.0.0.1 || fail "kill -9: loopback blocked while the kill switch is held"
echo "ok: kill -9: the kill switch is held while the extension is down (O dropped, loopback works)"
chmod 755 "$NETEXT_TESTTUNNEL"
TWAIT_TRIES=400 twait ks connected
[ "$(held)" = false ] || fail "restart: kill_switch_held is '$(held)'"
[ "$(tfield ks kill_switch)" = true ] || fail "restart: the restarted provider's kill switch is off"
IF=$(tiface ks)
through_tunnel "after the restart"
unreachable $O4 || fail "restart: O ($O4) reachable with the restarted provider's kill switch"
echo "ok: restarted: the provider's own kill switch took over, the tunnel works"
pid=$(pid_of) || fail "no pid after the restart"
chmod 644 "$NETEXT_TESTTUNNEL"
kill -KILL "$pid"
twait ks disconnected connecting
[ "$(held)" = true ] || fail "second kill -9: kill_switch_held is '$(held)'"
tstop ks
twait ks disconnected
[ "$(held)" = false ] || fail "stop: kill_switch_held is '$(held)'"
tun_assert_clean "$IF"
for dst in $O4 $O6; do reach "$dst" || fail "O ($dst) not reachable after stopping the crashed tunnel"; done
chmod 755 "$NETEXT_TESTTUNNEL"
pid_of >/dev/null || fail "the extension did not come back after the test let it"
echo "ok: tunnel stop while the extension is down: the kill switch went, nothing left"

# 3. Kill switch with exclude_local=yes: no excluded routes this time; O's network is
# directly connected, so it stays outside the tunnel and reachable.
tconfig kl peer=$S4:51820 addresses=198.19.1.1/24,2001:db8:1::1/64 routes=0.0.0.0/0,::/0 \
	include_all=yes exclude_local=yes
tstart kl
twait kl connected
IF=$(tiface kl)
through_tunnel "exclude_local"
for dst in $O4 $O6; do
	ns_exec "$C" ip route get "$dst" | gq "dev $OIF" || { ns_exec "$C" ip route get "$dst"; fail "exclude_local: $dst is not routed to $OIF"; }
	reach "$dst" || { ns_exec "$C" nft list ruleset; fail "exclude_local: the local network's $dst is not reachable"; }
	[ "$(cat "$T/answer")" = outside ] || fail "$dst answered '$(cat "$T/answer")'"
done
echo "ok: kill switch with exclude_local: the connected network (O) stays reachable"
tstop kl
twait kl disconnected
tun_assert_clean "$IF"
for dst in $O4 $O6; do reach "$dst" || fail "O ($dst) not reachable after stop"; done

daemon_stop
tun_assert_clean "$IF"
echo "ok"

#!/usr/bin/env bash
# Two tunnels at once: two configurations of netext-testtunnel, two udptun peers in S (UDP
# ports 51820 and 51821, TUN devices A and B), different tunnel networks (198.19.1.0/24,
# 198.19.2.0/24) and different routes (t1: 198.19.101.0/24, t2: 198.19.102.0/24, both
# answered by S's loopback). t2 names its device with the configuration option interface=.
#   - both connected, on different devices, slots, tables and rule priorities;
#   - traffic for each route crosses its own tunnel (the peers' TUN counters), IPv4 and IPv6;
#   - stopping t1 removes t1's device, rules and table and leaves t2 working;
#   - stopping t2 leaves nothing.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/lib/daemon.sh"
. "$here/lib/tunnel.sh"
[ -n "${NETEXT_TESTTUNNEL:-}" ] || skip "netext-testtunnel is not built (wt-lib)"
for tool in nc ping; do command -v $tool >/dev/null || skip "needs $tool"; done

tun_setup
PA=tma$$
PA=${PA:0:15}
PB=tmb$$
PB=${PB:0:15}
tun_peer_udptun "$PA" 51820 1
tun_peer_udptun "$PB" 51821 2
for n in 101 102; do
	ip -n "$S" addr add 198.19.$n.1/32 dev lo || fail "198.19.$n.1 on S"
	ip -n "$S" -6 addr add 2001:db8:$n::1/128 dev lo nodad || fail "2001:db8:$n::1 on S"
done
NAME2=ntb$$
NAME2=${NAME2:0:15}
# netext-testtunnel keeps one tunnel per process: the second configuration uses a second
# registration of it (its own extension process), as two VPN apps would be.
ctl dev register $TT_ID.two "$NETEXT_TESTTUNNEL" >/dev/null || fail "register $TT_ID.two"
tconfig t1 peer=$S4:51820 addresses=198.19.1.1/24,2001:db8:1::1/64 routes=198.19.101.0/24,2001:db8:101::/64
TEXT=$TT_ID.two tconfig t2 peer=$S4:51821 addresses=198.19.2.1/24,2001:db8:2::1/64 routes=198.19.102.0/24,2001:db8:102::/64 \
	interface=$NAME2
tstart t1
tstart t2
twait t1 connected
twait t2 connected
IF1=$(tiface t1)
IF2=$(tiface t2)
[[ $IF1 =~ ^netext[0-9]+$ ]] || fail "t1's interface '$IF1' is not netext<slot>"
[ "$IF2" = "$NAME2" ] || fail "t2's interface is '$IF2', want $NAME2 (option interface=)"

# Each tunnel's table holds its own routes; find the slots from the tables.
slot_of() { # ROUTE IF
	local t
	for t in $(seq 7160 7174); do
		ns_exec "$C" ip route show table "$t" 2>/dev/null | gq "^$1 dev $2" && { echo $((t - 7160)); return 0; }
	done
	return 1
}
s1=$(slot_of 198.19.101.0/24 "$IF1") || { tun_leftovers; fail "no table with t1's route via $IF1"; }
s2=$(slot_of 198.19.102.0/24 "$IF2") || { tun_leftovers; fail "no table with t2's route via $IF2"; }
[ "$s1" != "$s2" ] || fail "both tunnels use slot $s1"
[ "$IF1" = "netext$s1" ] || fail "t1's interface $IF1 does not match its slot $s1"
ns_exec "$C" ip route show table $((7160 + s1)) | gq 198.19.102 && fail "t1's table has t2's route"
ns_exec "$C" ip route show table $((7160 + s2)) | gq 198.19.101 && fail "t2's table has t1's route"
for s in $s1 $s2; do
	for f in -4 -6; do
		ns_exec "$C" ip "$f" rule show | gq -E "^$((7160 + s)):.*lookup $((7160 + s))" ||
			{ ns_exec "$C" ip "$f" rule show; fail "no rule ($f) at priority $((7160 + s))"; }
	done
done
echo "ok: t1 on $IF1 (slot $s1), t2 on $IF2 (slot $s2): own tables and rule priorities"

# via DST PEER_IF OTHER_IF: ping DST; the packets cross PEER_IF and not OTHER_IF.
via() {
	local a0 b0 a1 b1
	a0=$(link_pkts "$S" "$2" rx)
	b0=$(link_pkts "$S" "$3" rx)
	ns_exec "$C" ping -c 5 -i 0.2 -W 2 "$1" >/dev/null 2>&1 || fail "ping $1"
	a1=$(link_pkts "$S" "$2" rx)
	b1=$(link_pkts "$S" "$3" rx)
	[ $((a1 - a0)) -ge 5 ] || fail "ping $1: $2 counted $((a1 - a0)) packets, want ≥ 5"
	[ $((b1 - b0)) -lt 5 ] || fail "ping $1: $3 (the other tunnel) counted $((b1 - b0)) packets"
}
check_both() {
	via 198.19.101.1 "$PA" "$PB"
	via 2001:db8:101::1 "$PA" "$PB"
	via 198.19.102.1 "$PB" "$PA"
	via 2001:db8:102::1 "$PB" "$PA"
}
check_both
head -c $((2 << 20)) /dev/urandom > "$T/2m"
tcp_xfer 198.19.101.1 7001 "$T/2m"
tcp_xfer 198.19.102.1 7002 "$T/2m"
echo "ok: each route through its own tunnel (ping v4/v6, 2 MB TCP)"

tstop t1
twait t1 disconnected
ns_exec "$C" ip link show dev "$IF1" >/dev/null 2>&1 && fail "t1's device $IF1 left after stop"
[ -z "$(ns_exec "$C" ip route show table $((7160 + s1)))" ] || fail "t1's table $((7160 + s1)) not empty after stop"
ns_exec "$C" ip rule show | gq -E "^($((7160 + s1))|$((7180 + s1))):" && fail "t1's rules left after stop"
[ "$(tstate t2)" = connected ] || fail "t2 is '$(tstate t2)' after t1 stopped"
via 198.19.102.1 "$PB" "$PA"
via 2001:db8:102::1 "$PB" "$PA"
ns_exec "$C" ping -c 1 -W 1 198.19.101.1 >/dev/null 2>&1 && fail "t1's route still works after stop"
echo "ok: t1 stopped and gone, t2 still works"

# t1 again, next to t2.
tstart t1
twait t1 connected
IF1=$(tiface t1)
check_both
echo "ok: t1 restarted next to t2"
tstop t2
tstop t1
twait t1 disconnected
twait t2 disconnected
tun_assert_clean "$IF1" "$IF2"
daemon_stop
tun_assert_clean "$IF1" "$IF2"
echo "ok"

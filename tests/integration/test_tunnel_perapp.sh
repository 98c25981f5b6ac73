#!/usr/bin/env bash
# Per-app tunnel routing by cgroup (configuration option apps=CGROUP). The peer-only
# addresses (198.19.100.1, 2001:db8:100::1) exist twice: on S behind the tunnel, whose server
# answers "tunnel", and on O, outside it, reached by C's main routing table, whose server
# answers "direct". So the answer says which way a connection went:
#   - a client in the configured cgroup gets "tunnel", IPv4 and IPv6, and the peer's TUN
#     counts its packets; ping from the cgroup goes through the tunnel too;
#   - the same client outside the cgroup gets "direct" (its pings reach O);
#   - the tunnel has a per-app rule (priority 7130 + slot, fwmark) and no whole-host rules;
#   - after stop the cgroup's client goes direct, and nothing is left.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/lib/daemon.sh"
. "$here/lib/tunnel.sh"
[ -n "${NETEXT_TESTTUNNEL:-}" ] || skip "netext-testtunnel is not built (wt-lib)"
CG_MNT=$(awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo)
[ -n "$CG_MNT" ] || skip "no cgroup2 mount"
CG=netext-test-tunapp-$$
mkdir "$CG_MNT/$CG" || fail "mkdir $CG_MNT/$CG"
cleanup_cg() {
	local p
	# Our clients are short-lived; kill any that is left, then remove the cgroup.
	for p in $(cat "$CG_MNT/$CG/cgroup.procs" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
	for _ in $(seq 20); do rmdir "$CG_MNT/$CG" 2>/dev/null && break; sleep 0.1; done
}
trap "cleanup_cg; daemon_cleanup; ns_cleanup" EXIT

tun_setup
tun_add_outside
PIF=ta$$
PIF=${PIF:0:15}
tun_peer_udptun "$PIF" 51820 1
ip -n "$O" addr add $P4/32 dev lo || fail "P4 on O"
ip -n "$O" -6 addr add $P6/128 dev lo nodad || fail "P6 on O"
ip -n "$C" route add 198.19.100.0/24 via $O4 || fail "route via O"
ip -n "$C" -6 route add 2001:db8:100::/64 via $O6 || fail "route6 via O"
# O answers C's tunnel addresses too (a client in the cgroup may pick them as source).
ip -n "$O" route add 198.19.1.0/24 via 198.18.2.1
ip -n "$O" -6 route add 2001:db8:1::/64 via fd00:198:18:2::1
server() { # NS ANSWER
	ns_spawn "$1" "$PY" -c '
import socket, sys
s = socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", 8000)); s.listen(16)
while True:
    c, _ = s.accept(); c.sendall(sys.argv[1].encode() + b"\n"); c.close()' "$2"
	wait_for ns_exec "$1" sh -c "ss -Hlnt 'sport = :8000' | grep -q ." || fail "server in $1"
}
server "$S" tunnel
server "$O" direct

# ask DST [cgroup]: the answer of the server at DST:8000, asked from C (in our cgroup with
# "cgroup"). nsenter, not ip netns exec: nft's cgroup paths need the host's /sys.
ask() {
	if [ "${2:-}" = cgroup ]; then
		nsenter --net=/run/netns/"$C" sh -c 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' \
			sh "$CG_MNT/$CG" timeout 5 nc -w 3 "$1" 8000 </dev/null 2>/dev/null
	else
		ns_exec "$C" timeout 5 nc -w 3 "$1" 8000 </dev/null 2>/dev/null
	fi
}
ping_from() { # DST [cgroup]
	if [ "${2:-}" = cgroup ]; then
		nsenter --net=/run/netns/"$C" sh -c 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' \
			sh "$CG_MNT/$CG" ping -c 3 -i 0.2 -W 2 "$1" >/dev/null 2>&1
	else
		ns_exec "$C" ping -c 3 -i 0.2 -W 2 "$1" >/dev/null 2>&1
	fi
}
for dst in $P4 $P6; do
	[ "$(ask "$dst")" = direct ] || fail "before the tunnel, $dst did not answer direct"
	[ "$(ask "$dst" cgroup)" = direct ] || fail "before the tunnel, $dst from the cgroup did not answer direct"
done

tconfig pa peer=$S4:51820 addresses=198.19.1.1/24,2001:db8:1::1/64 \
	routes=198.19.100.0/24,2001:db8:100::/64 apps=/$CG
tstart pa
twait pa connected
IF=$(tiface pa)
slot=${IF#netext}
[[ $slot =~ ^[0-9]+$ ]] || fail "interface '$IF' is not netext<slot>"
# Only a per-app rule: fwmark → the tunnel's table; nothing at the whole-host priorities.
for f in -4 -6; do
	ns_exec "$C" ip "$f" rule show | grep -E "^$((7130 + slot)):.*fwmark.*lookup $((7160 + slot))" >/dev/null ||
		{ ns_exec "$C" ip "$f" rule show; fail "no per-app rule ($f) at priority $((7130 + slot))"; }
	ns_exec "$C" ip "$f" rule show | grep -E "^($((7160 + slot))|$((7180 + slot))):" &&
		fail "a per-app tunnel has whole-host rules ($f)"
done
echo "ok: per-app rule at $((7130 + slot)) into table $((7160 + slot))"

for dst in $P4 $P6; do
	rx0=$(link_pkts "$S" "$PIF" rx)
	got=$(ask "$dst" cgroup)
	rx1=$(link_pkts "$S" "$PIF" rx)
	[ "$got" = tunnel ] || fail "a client in $CG asked $dst and got '$got', want tunnel"
	[ $((rx1 - rx0)) -ge 3 ] || fail "the client in $CG: the peer's TUN counted $((rx1 - rx0)) packets"
	got=$(ask "$dst")
	[ "$got" = direct ] || fail "a client outside $CG asked $dst and got '$got', want direct"
	echo "ok: $dst: in $CG through the tunnel, outside it direct"
done
rx0=$(link_pkts "$S" "$PIF" rx)
ping_from $P4 cgroup || fail "ping from the cgroup through the tunnel"
rx1=$(link_pkts "$S" "$PIF" rx)
[ $((rx1 - rx0)) -ge 3 ] || fail "ping from the cgroup: the peer's TUN counted $((rx1 - rx0)) packets"
# Outside the cgroup the echo requests reach O (whose link counts them); the kernel's own
# IPv6 router solicitations may cross the tunnel at any time, so S's count is not compared.
OVETH=$(ns_exec "$O" ip -o route get 198.18.2.1 | sed -n 's/.* dev \([^ ]*\).*/\1/p')
rx0=$(link_pkts "$O" "$OVETH" rx)
ping_from $P4 || fail "ping from outside the cgroup (direct)"
rx1=$(link_pkts "$O" "$OVETH" rx)
[ $((rx1 - rx0)) -ge 3 ] || fail "ping from outside the cgroup: O's link counted $((rx1 - rx0)) packets"
echo "ok: ping: from the cgroup through the tunnel, from outside direct"

tstop pa
twait pa disconnected
tun_assert_clean "$IF"
for dst in $P4 $P6; do
	[ "$(ask "$dst" cgroup)" = direct ] || fail "after stop, $dst from the cgroup did not answer direct"
done
echo "ok: after stop the cgroup goes direct, nothing left"

daemon_stop
tun_assert_clean "$IF"
echo "ok"

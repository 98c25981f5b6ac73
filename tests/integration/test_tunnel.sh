#!/usr/bin/env bash
# The packet-tunnel provider end to end: netext-testtunnel (a plaintext provider: each IP
# packet one UDP datagram) in C under netextd, udptun as its peer in S (tests/lib/tunnel.sh).
#   - `netextctl tunnel start` → connected, with a device of the netext<slot> form carrying
#     the tunnel's addresses; the routes to the peer-only addresses go through it; its DNS
#     match domain is a split-DNS route of source tunnel:t1;
#   - ping and ping -6 to the peer's tunnel addresses and to the peer-only addresses, and the
#     packets really cross the tunnel (the peer's TUN counts them);
#   - a few MB over TCP (nc) both ways, IPv4 and IPv6, byte for byte;
#   - seed 002: a server and a client on the host itself, on the tunnel's own IPv6 address;
#   - a large TCP transfer: the kernel hands the provider ~64 KiB TCP segments (vnet header,
#     TSO), which the library cuts into MTU-sized packets with valid checksums; the peer gets
#     the data byte for byte and its TUN saw no packet bigger than the MTU;
#   - `tunnel stop` → disconnected, no device, rule, route table, nft rule or DNS route left;
#   - bad settings (a bad CIDR) → the start fails with a message naming it, the status has
#     the error, nothing is left; a good start afterwards works;
#   - a transport port below 1024 is refused unless the configuration says privileged_ports=yes.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/lib/daemon.sh"
. "$here/lib/tunnel.sh"
[ -n "${NETEXT_TESTTUNNEL:-}" ] || skip "netext-testtunnel is not built (wt-lib)"
for tool in nc ping; do command -v $tool >/dev/null || skip "needs $tool"; done

tun_setup
PIF=tp$$
PIF=${PIF:0:15}
tun_peer_udptun "$PIF" 51820 1
tconfig t1 peer=$S4:51820 addresses=198.19.1.1/24,2001:db8:1::1/64 \
	routes=198.19.100.0/24,2001:db8:100::/64 mtu=1400 dns=198.19.1.2 match=t1.test

# 1. start → connected, the device and its addresses, the routes.
[ "$(tstate t1)" = disconnected ] || fail "t1 before start: state '$(tstate t1)', want disconnected"
tstart t1
twait t1 connected
IF=$(tiface t1)
[[ $IF =~ ^netext[0-9]+$ ]] || fail "interface '$IF' is not netext<slot>"
ns_exec "$C" ip -o addr show dev "$IF" | gq 'inet 198.19.1.1/24' || { ns_exec "$C" ip addr show dev "$IF"; fail "$IF lacks 198.19.1.1/24"; }
ns_exec "$C" ip -o addr show dev "$IF" | gq 'inet6 2001:db8:1::1/64' || { ns_exec "$C" ip addr show dev "$IF"; fail "$IF lacks 2001:db8:1::1/64"; }
for dst in $P4 $P6; do
	ns_exec "$C" ip route get "$dst" | gq "dev $IF" || { ns_exec "$C" ip route get "$dst"; fail "route to $dst is not via $IF"; }
done
ctl tunnel status t1 > "$T/status" || fail "tunnel status t1"
grep -q connected "$T/status" && grep -q "$IF" "$T/status" || { cat "$T/status"; fail "human status lacks the state or the interface"; }
ctl dns route list | gq -E '^t1\.test +198\.19\.1\.2 +tunnel:t1' || { ctl dns route list; fail "no DNS route t1.test from tunnel:t1"; }
echo "ok: t1 connected on $IF, DNS route t1.test → 198.19.1.2 (tunnel:t1)"

# 2. ping and ping -6, through the tunnel.
rx0=$(link_pkts "$S" "$PIF" rx)
for dst in 198.19.1.2 2001:db8:1::2 $P4 $P6; do
	ns_exec "$C" ping -c 3 -i 0.2 -W 2 "$dst" >"$T/ping" 2>&1 || { cat "$T/ping"; fail "ping $dst through the tunnel"; }
done
rx1=$(link_pkts "$S" "$PIF" rx)
[ $((rx1 - rx0)) -ge 12 ] || fail "the peer's TUN received $((rx1 - rx0)) packets for 12 pings"
echo "ok: ping / ping -6 to the peer and the peer-only addresses ($((rx1 - rx0)) packets over the tunnel)"

# 3. A few MB over TCP, both ways, IPv4 and IPv6, byte for byte.
head -c $((4 << 20)) /dev/urandom > "$T/4m"
tcp_xfer $P4 7001 "$T/4m"
tcp_xfer $P6 7002 "$T/4m"
tcp_xfer 198.19.1.1 7003 "$T/4m" "$S" "$C"
tcp_xfer 2001:db8:1::1 7004 "$T/4m" "$S" "$C"
echo "ok: 4 MB over TCP through the tunnel, C → S and S → C, IPv4 and IPv6"

# 4. Seed 002: a socket on the host binds to and connects to the tunnel's own IPv6 address.
echo "seed 002 $(date)" > "$T/seed"
tcp_xfer 2001:db8:1::1 7005 "$T/seed" "$C" "$C"
ns_exec "$C" ping -6 -c 1 -W 2 2001:db8:1::1 >/dev/null || fail "ping -6 to the tunnel's own address"
echo "ok: seed 002: nc -6 to the tunnel's own IPv6 address on the host"

# 5. Large TCP: the kernel hands the provider TCP segments of up to ~64 KiB (TSO on the
# device); the library cuts them into packets of at most the MTU (1400) with valid checksums.
# The peer's udptun reports the largest datagram (= packet) it received.
head -c $((48 << 20)) /dev/urandom > "$T/48m"
tcp_xfer $P4 7006 "$T/48m"
tcp_xfer $P6 7007 "$T/48m"
kill -USR1 "$UDPTUN_PID"
wait_for grep -q max_rx "$T/udptun-$PIF.log" || fail "udptun did not report"
max_rx=$(sed -n 's/.*max_rx=\([0-9]*\).*/\1/p' "$T/udptun-$PIF.log" | tail -1)
[ -n "$max_rx" ] && [ "$max_rx" -le 1400 ] && [ "$max_rx" -ge 1300 ] ||
	fail "the largest packet out of the tunnel was ${max_rx:-?} bytes, want full-sized packets ≤ the MTU 1400"
echo "ok: 48 MB over TCP, IPv4 and IPv6, byte for byte; largest packet $max_rx bytes (MTU 1400)"

# 6. stop → disconnected, nothing left.
tstop t1
twait t1 disconnected
tun_assert_clean "$IF"
ns_exec "$C" ping -c 1 -W 1 $P4 >/dev/null 2>&1 && fail "the peer-only address is still reachable after stop"
echo "ok: stopped: no device, rule, table, chain or DNS route left"

# 7. Bad settings: the start fails with a message, nothing is left; then a good start works.
rc=0
ctl tunnel start t1 --option addresses=198.19.1.1/33 >"$T/out" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || { cat "$T/out"; fail "a start with addresses=198.19.1.1/33 succeeded"; }
grep -Eqi 'address|198\.19\.1\.1/33|invalid|prefix' "$T/out" || { cat "$T/out"; fail "the failed start does not say what was wrong"; }
echo "ok: bad CIDR refused: $(head -1 "$T/out")"
twait t1 disconnected invalid
tun_assert_clean "$IF"
rc=0
ctl tunnel start t1 --option routes=198.19.100.0/99 >"$T/out" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || { cat "$T/out"; fail "a start with routes=198.19.100.0/99 succeeded"; }
twait t1 disconnected invalid
tun_assert_clean "$IF"
echo "ok: bad route refused: $(head -1 "$T/out")"
# A transport port below 1024 needs the administrator's privileged_ports=yes.
rc=0
ctl tunnel start t1 --option port=853 >"$T/out" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || { cat "$T/out"; fail "a provider bound port 853 without privileged_ports=yes"; }
grep -q 'privileged_ports' "$T/out" || { cat "$T/out"; fail "the refused port does not say what to do"; }
twait t1 disconnected invalid
tun_assert_clean "$IF"
tstart t1 --option port=853 --option privileged_ports=yes
twait t1 connected
ns_exec "$C" ss -Hlnu 'sport = :853' | gq . || fail "the transport is not bound to port 853"
ns_exec "$C" ping -c 1 -W 2 $P4 >/dev/null || fail "ping with the transport on port 853"
tstop t1
twait t1 disconnected
echo "ok: transport port 853 refused without privileged_ports=yes, bound with it"
tstart t1
twait t1 connected
ns_exec "$C" ping -c 1 -W 2 $P4 >/dev/null || fail "ping after a failed start and a good one"
tstop t1
twait t1 disconnected
tun_assert_clean "$IF"
echo "ok: a good start after the failed ones"

daemon_stop
tun_assert_clean "$IF"
echo "ok"

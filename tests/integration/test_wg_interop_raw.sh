#!/usr/bin/env bash
# The wgtunnel WireGuard engine (through tests/tools/wgraw: a plain TUN device and UDP
# socket, no netext) against wireguard-go, in two namespaces: A runs wgraw, B wireguard-go
# configured with `wg`. Checked: ping and ping -6 both ways, iperf3 TCP both directions, a
# handshake initiated by wgraw and one initiated by wireguard-go, roaming (wireguard-go
# moves to another port, then to IPv6 transport; wgraw follows), and cookies: wgraw "under
# load" answers wireguard-go's initiation with a cookie reply, and wireguard-go's next
# initiation carries a MAC2 wgraw accepts.
# Needs root, wireguard-go, wg, iperf3 and /dev/net/tun (skips with 77 otherwise).
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/lib/netns.sh"

[ -n "${WGRAW:-}" ] && [ -x "$WGRAW" ] || skip "WGRAW is not set (meson test sets it)"
for c in wireguard-go wg iperf3 ping; do
	command -v "$c" >/dev/null || skip "needs $c"
done
[ -c /dev/net/tun ] || skip "needs /dev/net/tun"
ns_init
export WG_HIDE_KEYS=never

A=$(ns_add wga) || fail "ns a"
B=$(ns_add wgb) || fail "ns b"
ns_link "$A" "$B" 1
A4=198.18.1.1 B4=198.18.1.2 A6=fd00:198:18:1::1
T=$NS_TMPDIR
TUN="wgr$$"; TUN=${TUN:0:15}
WGIF="wgg$$"; WGIF=${WGIF:0:15}
WGSOCK=/var/run/wireguard/$WGIF.sock
trap 'ns_cleanup; rm -f "$WGSOCK"' EXIT

umask 077
wg genkey >"$T/a.key" && wg genkey >"$T/b.key" || fail "wg genkey"
APUB=$(wg pubkey <"$T/a.key") BPUB=$(wg pubkey <"$T/b.key")
wg genpsk >"$T/psk" || fail "wg genpsk"

# $1: with or without the Endpoint line (wgraw as responder only).
write_conf() {
	cat >"$T/a.conf" <<-EOF
	# wgraw's side
	[Interface]
	PrivateKey = $(cat "$T/a.key")
	ListenPort = 51820
	Address = 10.77.0.1/24, fd77::1/64   # set by this script with ip; wgraw ignores it
	Table = off

	[Peer]
	PublicKey = $BPUB
	PresharedKey = $(cat "$T/psk")
	AllowedIPs = 10.77.0.2/32, fd77::2/128
	EOF
	[ "$1" = endpoint ] && echo "Endpoint = $B4:51821" >>"$T/a.conf"
}

WGRAW_PID=""
start_wgraw() {
	write_conf "$1"
	ns_spawn "$A" "$WGRAW" -c "$T/a.conf" -i "$TUN" ${2:-} 2>>"$T/wgraw.log"
	WGRAW_PID=$NS_PID
	wait_for ns_exec "$A" ip link show "$TUN" || { cat "$T/wgraw.log"; fail "wgraw did not create $TUN"; }
	ip -n "$A" addr add 10.77.0.1/24 dev "$TUN" || fail "addr on $TUN"
	ip -n "$A" -6 addr add fd77::1/64 dev "$TUN" nodad || fail "addr6 on $TUN"
	ip -n "$A" link set "$TUN" up mtu 1420 || fail "$TUN up"
}

# A clean exit on SIGTERM (and, in the sanitizer build, no leaks or errors).
stop_wgraw() {
	local rc
	kill -TERM "$WGRAW_PID" 2>/dev/null
	wait "$WGRAW_PID" 2>/dev/null
	rc=$?
	[ "$rc" = 0 ] || { tail -n 30 "$T/wgraw.log"; fail "wgraw exited with $rc"; }
}

# wgraw's status (counters, endpoint) into its log; echoes the log.
wgraw_status() {
	kill -USR1 "$WGRAW_PID" 2>/dev/null
	sleep 0.3
	cat "$T/wgraw.log"
}

add_b_peer() {
	ns_exec "$B" wg set "$WGIF" peer "$APUB" preshared-key "$T/psk" \
		allowed-ips 10.77.0.1/32,fd77::1/128 endpoint "$A4:51820" || fail "wg set peer"
}

ping_ok() { # ns, address: the first ping may wait for a handshake
	wait_for ns_exec "$1" ping -c 1 -W 1 "$2" || return 1
	ns_exec "$1" ping -c 3 -i 0.2 -W 2 "$2" >/dev/null
}

# --- wireguard-go in B, wgraw in A ---
ns_spawn "$B" wireguard-go -f "$WGIF" 2>"$T/wggo.log" >&2
wait_for test -S "$WGSOCK" || { cat "$T/wggo.log"; fail "wireguard-go did not start"; }
ns_exec "$B" wg set "$WGIF" private-key "$T/b.key" listen-port 51821 || fail "wg set"
add_b_peer
ip -n "$B" addr add 10.77.0.2/24 dev "$WGIF" || fail "addr on $WGIF"
ip -n "$B" -6 addr add fd77::2/64 dev "$WGIF" nodad || fail "addr6 on $WGIF"
ip -n "$B" link set "$WGIF" up mtu 1420 || fail "$WGIF up"
start_wgraw endpoint
grep -q "Table is wg-quick's and is ignored" "$T/wgraw.log" || fail "no warning for Table"

# 1. wgraw initiates: ping from A, both families, then from B.
ping_ok "$A" 10.77.0.2 || { wgraw_status; fail "ping A→B (v4)"; }
grep -q "session (initiator)" "$T/wgraw.log" || { cat "$T/wgraw.log"; fail "wgraw did not initiate"; }
ping_ok "$A" fd77::2 || fail "ping A→B (v6)"
ping_ok "$B" 10.77.0.1 || fail "ping B→A (v4)"
ping_ok "$B" fd77::1 || fail "ping B→A (v6)"
ns_exec "$B" wg show "$WGIF" latest-handshakes | gq "$APUB	[1-9]" || fail "wg shows no handshake"
echo "ok: handshake initiated by wgraw; ping and ping -6 both ways"

# 2. iperf3 TCP both directions (hang guards only: throughput is reported, not asserted).
ns_spawn "$B" iperf3 -s -B 10.77.0.2 >/dev/null 2>&1
# Not a probe connection: iperf3's server takes a bare connect for a broken test.
iperf_listening() { ns_exec "$B" ss -Hltn "sport = :5201" | gq .; }
wait_for iperf_listening || fail "iperf3 server"
for dir in "" "-R"; do
	out=$(ns_exec "$A" timeout 30 iperf3 -c 10.77.0.2 -t 3 -f m $dir 2>&1) ||
		{ echo "$out"; fail "iperf3 $dir"; }
	rate=$(echo "$out" | awk '/receiver/ {print $(NF-2), $(NF-1)}')
	echo "ok: iperf3 TCP ${dir:-(A→B)} ${dir:+(B→A)}: $rate"
done

# 3. wireguard-go initiates: wgraw restarts without an Endpoint (it can only answer) and B
#    forgets its session.
stop_wgraw
start_wgraw noendpoint
ns_exec "$B" wg set "$WGIF" peer "$APUB" remove || fail "wg peer remove"
add_b_peer
mark=$(wc -l <"$T/wgraw.log")
ping_ok "$B" 10.77.0.1 || { wgraw_status; fail "ping B→A after restart"; }
tail -n +"$mark" "$T/wgraw.log" | gq "session (responder" || fail "wgraw did not respond"
tail -n +"$mark" "$T/wgraw.log" | gq "session confirmed" || fail "session not confirmed"
ping_ok "$A" fd77::2 || fail "ping A→B as responder"
echo "ok: handshake initiated by wireguard-go"

# 4. Roaming: B moves to another port, then to IPv6 transport; wgraw must follow, which the
#    replies to B's pings prove (the old port is closed), and its status must show it.
ns_exec "$B" wg set "$WGIF" listen-port 51822 || fail "listen-port"
ping_ok "$B" 10.77.0.1 || fail "ping B→A after B changed port"
ping_ok "$A" 10.77.0.2 || fail "ping A→B after B changed port"
wgraw_status | gq "endpoint $B4:51822 " || fail "wgraw did not roam to $B4:51822"
ns_exec "$B" wg set "$WGIF" peer "$APUB" endpoint "[$A6]:51820" || fail "v6 endpoint"
ping_ok "$B" fd77::1 || fail "ping B→A over IPv6 transport"
ping_ok "$A" 10.77.0.2 || fail "ping A→B over IPv6 transport"
wgraw_status | gq "endpoint \[fd00:198:18:1::2\]:51822 " || fail "wgraw did not roam to IPv6"
echo "ok: roaming (port change, IPv4 → IPv6 transport)"

# Nothing was dropped for bad MACs or sources; replays are possible on a real link.
st=$(wgraw_status | grep "wgraw: total" | tail -1)
echo "$st" | gq "mac1 0 cookie 0 decrypt 0 " || fail "unexpected drops: $st"
echo "$st" | gq "allowed_ip 0 " || fail "unexpected source drops: $st"

# 5. Cookies: wgraw under load (-L) demands MAC2. wireguard-go's first initiation gets a
#    cookie reply, its retransmission (REKEY_TIMEOUT later) carries MAC2 and succeeds.
stop_wgraw
start_wgraw noendpoint -L
ns_exec "$B" wg set "$WGIF" peer "$APUB" remove || fail "wg peer remove"
add_b_peer
WAIT_TRIES=150 ping_ok "$B" 10.77.0.1 || { wgraw_status; fail "ping B→A with cookies"; }
st=$(wgraw_status | grep "wgraw: total" | tail -1)
echo "$st" | gq "cookies sent [1-9]" || fail "no cookie reply sent: $st"
echo "$st" | gq "handshakes sent [0-9]* received [1-9]" || fail "no handshake after the cookie: $st"
echo "ok: cookie reply accepted by wireguard-go, its MAC2 accepted by wgraw"
stop_wgraw
echo "PASS: wgraw interoperates with wireguard-go"

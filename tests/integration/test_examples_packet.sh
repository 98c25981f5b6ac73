#!/usr/bin/env bash
# The example filter-packet extensions, registered in developer mode, against real traffic
# between two namespaces (netextd in H, receivers in S):
#   rewriter match=hello replace="HELLO, WORLD" on a TCP port: 400 lines with "hello" sent
#     with nc, IPv4 and IPv6; what S receives is the input with every hello replaced (the
#     stream grows by 7 bytes per hello, so netextd shifts the flow's sequence numbers).
#     The rewriter works per packet: a "hello" split across two segments would stay as it
#     was. The sender therefore writes one line every 5 ms, so each segment carries whole
#     lines (small writes, the previous one acknowledged), and the comparison is exact.
#     A UDP port too: each datagram rewritten. Without match it allows all.
#   shaper delay_ms=200: a TCP connect and a request/response over an established connection
#     take at least 200 ms more than without it (no upper bound is asserted).
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/lib/daemon.sh"
. "$here/lib/packet.sh"
: "${NETEXT_REWRITER:?}" "${NETEXT_SHAPER:?}"
pkt_setup
ctl dev register com.example.rewriter "$NETEXT_REWRITER" >/dev/null || fail "register rewriter"
ctl dev register com.example.shaper "$NETEXT_SHAPER" >/dev/null || fail "register shaper"

# === rewriter ==================================================================================
"$PY" - "$T/hello.txt" <<'EOF'
import sys
with open(sys.argv[1], "w") as f:
    for i in range(400):
        f.write("line %03d: hello world, and hello again%s\n" % (i, " hello" * (i % 4)))
EOF
"$PY" -c 'import sys; d = open(sys.argv[1]).read(); open(sys.argv[2], "w").write(d.replace("hello", "HELLO, WORLD"))' \
	"$T/hello.txt" "$T/want.txt"
n_hello=$(grep -o hello "$T/hello.txt" | wc -l)

PEXT=com.example.rewriter pconfig rw open match=hello "replace=HELLO, WORLD" protocol=tcp port=6301
for dst in $S4 $S6; do
	fam=-4
	[[ $dst == *:* ]] && fam=-6
	: > "$T/got.txt"
	ns_spawn "$S" timeout 60 nc $fam -d -l "$dst" 6301 > "$T/got.txt"
	rl=$NS_PID
	wait_for ns_exec "$S" sh -c "ss -Hlnt 'sport = :6301' | grep -q ." || fail "listener on $dst"
	m0=$(pcount modified)
	"$PY" -c '
import sys, time
for line in open(sys.argv[1], "rb"):
    sys.stdout.buffer.write(line); sys.stdout.buffer.flush(); time.sleep(0.005)' "$T/hello.txt" |
		ns_exec "$H" timeout 60 nc -N "$dst" 6301 || fail "rewriter: nc to $dst failed"
	wait "$rl" 2>/dev/null
	cmp -s "$T/want.txt" "$T/got.txt" ||
		{ diff "$T/want.txt" "$T/got.txt" | head -10; tail -20 "$D_LOG"; fail "rewriter: what $dst received is not the input with hello -> HELLO, WORLD"; }
	expect_count modified ge $((m0 + 100)) "rewriter to $dst"
	echo "ok: rewriter TCP to $dst: $n_hello x hello -> HELLO, WORLD, $(wc -c < "$T/got.txt") bytes exact"
done
expect_count refused eq 0 "rewriter"
punconfig rw

# UDP: each datagram rewritten.
PEXT=com.example.rewriter pconfig rwu open match=hello "replace=HELLO, WORLD" protocol=udp port=6302
for dst in $S4 $S6; do
	udp_run "$H" "$dst" 6302 20 "hello there" "$T/rx"
	[ "$(wc -l < "$T/rx")" = 20 ] && [ "$(cut -d' ' -f3- "$T/rx" | sort -u)" = "HELLO, WORLD there" ] ||
		{ cat "$T/rx"; fail "rewriter: UDP to $dst not rewritten"; }
done
punconfig rwu
echo "ok: rewriter UDP v4/v6"

# Without match: allow-all.
PEXT=com.example.rewriter pconfig rwa open protocol=tcp port=6303
tcp_run "$H" "$S" $S4 6303 "$T/hello.txt" "$T/got.txt" 30 || fail "rewriter without match: TCP failed"
cmp -s "$T/hello.txt" "$T/got.txt" || fail "rewriter without match changed the data"
punconfig rwa
echo "ok: rewriter without match allows all"

# === shaper ====================================================================================
ns_spawn "$S" "$PY" -c '
import socket, threading
s = socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", 6304)); s.listen(16)
def echo(c):
    while d := c.recv(4096):
        c.sendall(d)
while True:
    c, _ = s.accept(); threading.Thread(target=echo, args=(c,), daemon=True).start()'
wait_for ns_exec "$S" sh -c "ss -Hlnt 'sport = :6304' | grep -q ." || fail "echo server"
# rtt DST: "CONNECT_MS ECHO_MS" (median echo of 5)
rtt() {
	ns_exec "$H" "$PY" -c '
import socket, sys, time
t = time.monotonic()
s = socket.create_connection((sys.argv[1], 6304), timeout=10)
c = (time.monotonic() - t) * 1000
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
e = []
for i in range(5):
    t = time.monotonic(); s.sendall(b"x"); s.recv(1); e.append((time.monotonic() - t) * 1000)
print("%d %d" % (c, sorted(e)[2]))' "$1"
}
for dst in $S4 $S6; do
	read -r c0 e0 < <(rtt "$dst")
	PEXT=com.example.shaper pconfig shp open delay_ms=200 protocol=tcp port=6304
	read -r c1 e1 < <(rtt "$dst")
	punconfig shp
	[ -n "$c1" ] && [ "$c1" -ge 200 ] || fail "shaper: connect to $dst took ${c1:-?} ms with delay_ms=200 (without: $c0 ms)"
	[ -n "$e1" ] && [ "$e1" -ge 200 ] || fail "shaper: echo RTT to $dst ${e1:-?} ms with delay_ms=200 (without: $e0 ms)"
	echo "ok: shaper to $dst: connect $c0 -> $c1 ms, echo RTT $e0 -> $e1 ms (delay_ms=200)"
done

daemon_stop
assert_clean_after_stop
echo "ok"

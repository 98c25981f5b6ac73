#!/usr/bin/env bash
# The filter-packet provider end to end: the real netextd in H, netext-testpacket as the
# provider, udpecho and nc as clients, receivers in S.
#   allow (UDP and TCP, IPv4 and IPv6, outbound; inbound UDP), drop (UDP and TCP, outbound
#   and inbound), delay then allow (every datagram arrives, no earlier than the delay; a TCP
#   connect takes at least the delay), multi-queue (queues=4: per-flow order and one queue per
#   flow in the provider's record, order at the receiver), and nothing left behind after the
#   daemon stops (no table, no bound queue, no extension).
# Behaviour only: counters and bytes. Timeouts are hang guards.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/lib/daemon.sh"
. "$here/lib/packet.sh"
pkt_setup

# 1. allow: outbound UDP v4/v6, all datagrams in order; counters move.
pconfig allow open mode=allow protocol=udp port=6001
for dst in $S4 $S6; do
	udp_run "$H" "$dst" 6001 50 "allow ping" "$T/rx"
	[ "$(udp_seqs "$T/rx" | tr '\n' ' ')" = "$(seq 0 49 | tr '\n' ' ')" ] ||
		{ cat "$T/rx"; fail "allow: datagrams to $dst missing or out of order"; }
	grep -q " allow ping$" "$T/rx" || fail "allow: payload changed"
done
expect_count received ge 100 "allow udp"
expect_count to_provider ge 100 "allow udp"
expect_count allowed ge 100 "allow udp"
expect_count dropped eq 0 "allow udp"
punconfig allow
echo "ok: allow UDP v4/v6"

# TCP allow, v4/v6: 200 KB arrive intact.
stream_file "$T/in.txt" 3000 "allow"
pconfig allowt open mode=allow protocol=tcp port=6002
for dst in $S4 $S6; do
	tcp_run "$H" "$S" "$dst" 6002 "$T/in.txt" "$T/out.txt" 30 || fail "allow: TCP to $dst did not complete"
	cmp -s "$T/in.txt" "$T/out.txt" || fail "allow: TCP data to $dst differs"
done
expect_count allowed ge 10 "allow tcp"
punconfig allowt
echo "ok: allow TCP v4/v6"

# Inbound: datagrams from S to H, selected on H's local port.
ri=$(record_file rec-in)
pconfig allowin open mode=allow direction=in protocol=udp local_port=6003 record="$ri"
udp_run "$S" "$H4" 6003 20 "inbound" "$T/rx"
[ "$(wc -l < "$T/rx")" = 20 ] || fail "inbound allow: $(wc -l < "$T/rx") of 20 arrived"
[ "$(grep -c "proto=udp src=$S4:[0-9]* dst=$H4:6003 " "$ri")" -ge 20 ] || { cat "$ri"; fail "inbound: the provider did not see the datagrams"; }
punconfig allowin
echo "ok: allow inbound UDP"

# 2. drop: UDP and TCP blocked, counted.
d0=$(pcount dropped)
pconfig drop closed mode=drop protocol=udp port=6004
udp_run "$H" $S4 6004 10 "drop" "$T/rx"
[ ! -s "$T/rx" ] || fail "drop: datagrams arrived: $(head -3 "$T/rx")"
expect_count dropped ge $((d0 + 10)) "drop udp"
punconfig drop
pconfig dropt closed mode=drop protocol=tcp port=6005
echo x > "$T/x.txt"
tcp_run "$H" "$S" $S4 6005 "$T/x.txt" "$T/out.txt" 4 && fail "drop: TCP connection completed"
[ ! -s "$T/out.txt" ] || fail "drop: TCP data arrived"
expect_count dropped ge $((d0 + 11)) "drop tcp"
punconfig dropt
pconfig dropin closed mode=drop direction=in protocol=udp local_port=6006
udp_run "$S" "$H4" 6006 10 "drop-in" "$T/rx"
[ ! -s "$T/rx" ] || fail "drop inbound: datagrams arrived"
punconfig dropin
# Without the configuration the same traffic passes again.
udp_run "$H" $S4 6004 5 "again" "$T/rx"
[ "$(wc -l < "$T/rx")" = 5 ] || fail "after drop: traffic does not pass"
echo "ok: drop UDP/TCP, outbound and inbound"

# 3. delay 300 ms then allow: everything arrives, each no earlier than the delay.
dl0=$(pcount delayed)
pconfig delay open mode=delay delay_ms=300 protocol=udp port=6007
for dst in $S4 $S6; do
	start=$(date +%s%N)
	udp_run "$H" "$dst" 6007 20 "delayed" "$T/rx" 0
	elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
	[ "$(udp_seqs "$T/rx" | tr '\n' ' ')" = "$(seq 0 19 | tr '\n' ' ')" ] ||
		{ cat "$T/rx"; fail "delay: datagrams to $dst missing or out of order"; }
	[ "$elapsed" -ge 300 ] || fail "delay: 20 datagrams arrived after $elapsed ms, delay 300 ms"
	echo "ok: delay to $dst: $elapsed ms for 20 datagrams"
done
expect_count delayed ge $((dl0 + 40)) "delay"
[ "$(ctl message delay stats | sed -n 's/.*resume_errors=\([0-9]*\).*/\1/p')" = 0 ] ||
	fail "delay: ne_packet_resume failed: $(ctl message delay stats)"
punconfig delay
pconfig delayt open mode=delay delay_ms=250 protocol=tcp port=6008
ns_spawn "$S" timeout 20 nc -d -l $S4 6008 >/dev/null
wait_for ns_exec "$S" sh -c "ss -Hlnt 'sport = :6008' | grep -q ." || fail "listener 6008"
ms=$(ns_exec "$H" "$PY" -c '
import socket, time
t = time.monotonic()
s = socket.create_connection(("198.18.1.2", 6008), timeout=10)
print(int((time.monotonic() - t) * 1000))')
[ -n "$ms" ] && [ "$ms" -ge 250 ] || fail "delay: TCP connect took ${ms:-?} ms, delay 250 ms"
echo "ok: delay TCP connect $ms ms (delay 250 ms)"
punconfig delayt

# 4. multi-queue: 8 flows to 8 addresses with queues=4; each flow on one queue and in order,
#    in the provider's record and at the receivers.
vb="vB1-$$"
for i in $(seq 10 17); do ip -n "$S" addr add 198.18.1.$i/24 dev "${vb:0:15}" || fail "addr .$i"; done
rq=$(record_file rec-mq)
pconfig mq open mode=allow protocol=udp port=6009 queues=4 record="$rq"
pids=()
for i in $(seq 10 17); do
	ns_spawn "$S" "$UDPECHO" recv 198.18.1.$i 6009 -n 200 -t 3000 > "$T/mq.$i"
	pids+=("$NS_PID")
done
wait_for ns_exec "$S" sh -c "[ \$(ss -Hlnu 'sport = :6009' | wc -l) = 8 ]" || fail "mq receivers"
senders=()
for i in $(seq 10 17); do
	ns_exec "$H" timeout 60 "$UDPECHO" send 198.18.1.$i 6009 -n 200 -p "flow$i" -i 200 >/dev/null &
	senders+=("$!")
done
for p in "${senders[@]}" "${pids[@]}"; do wait "$p" 2>/dev/null; done
for i in $(seq 10 17); do
	[ "$(udp_seqs "$T/mq.$i" | tr '\n' ' ')" = "$(seq 0 199 | tr '\n' ' ')" ] ||
		fail "multi-queue: flow to .$i lost or reordered datagrams ($(wc -l < "$T/mq.$i") arrived)"
done
"$PY" - "$rq" <<'EOF' || { head -20 "$rq"; fail "multi-queue: the provider's record"; }
import re, sys
flows, queues = {}, set()
for line in open(sys.argv[1]):
    m = re.match(r"q=(\d+) proto=udp src=(\S+) dst=(\S+) len=\d+ gso=\d hex=(\S+)", line)
    if not m:
        continue
    q, src, dst, hx = m.groups()
    seq = int(bytes.fromhex(hx)[:6])
    f = flows.setdefault((src, dst), {"q": set(), "seq": []})
    f["q"].add(int(q)); f["seq"].append(seq); queues.add(int(q))
assert len(flows) == 8, "flows seen: %d" % len(flows)
for k, f in flows.items():
    assert len(f["q"]) == 1, "flow %s on queues %s" % (k, f["q"])
    assert f["seq"] == sorted(f["seq"]) and len(f["seq"]) == 200, "flow %s: order %s..." % (k, f["seq"][:10])
assert len(queues) >= 2, "all flows on queue(s) %s" % queues
assert all(0 <= q < 4 for q in queues), queues
print("ok: multi-queue: 8 flows over queues %s, per-flow order kept" % sorted(queues))
EOF
punconfig mq

# 5. Stop: nothing left behind.
pconfig last open mode=allow protocol=udp port=6010
daemon_stop
assert_clean_after_stop
echo "ok"

#!/usr/bin/env bash
# Modify verdicts end to end (netext-testpacket modify-same / -grow / -shrink):
#   UDP, IPv4 and IPv6, same length, longer and shorter: the receiver gets exactly the
#   rewritten datagrams, in order. The receiving kernel drops a datagram whose checksum is
#   wrong, so their arrival proves that netextd rebuilt the checksums (tcpdump -vv in S
#   confirms it when installed).
#   TCP, IPv4 and IPv6, shorter ("pingping" -> "p"): a 2 MB stream of lines with markers
#   arrives complete and rewritten, which needs netextd's sequence/acknowledgement shift for
#   the rest of the flow. In large GSO packets (the veth's gso_max_size lowered to 32000 so
#   that a grown packet stays below 64 KiB), and in MSS-sized segments (gso_max_segs 1:
#   ~2,900 packets, each rewritten). Longer TCP segments: test_packet_seqadj.sh (this script
#   with --tcp-only).
# How the TCP output is checked: the provider rewrites per packet, so a marker split across two
# segments stays as it was. The replacement never contains the marker, so applying the
# rewrite to the output again must give the rewritten input exactly, and at least 90 % of the
# markers must have been rewritten by netextd.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/lib/daemon.sh"
. "$here/lib/packet.sh"
pkt_setup
va="vA1-$$"
va=${va:0:15}
vb="vB1-$$"
vb=${vb:0:15}

TCP_ONLY=
[ "${1:-}" = --tcp-only ] && TCP_ONLY=1 # test_packet_seqadj.sh

CAP=
if [ -z "$TCP_ONLY" ] && command -v tcpdump >/dev/null; then
	ns_spawn "$S" tcpdump -n -vv -l -i any udp port 6101 > "$T/cap.txt" 2>/dev/null
	CAP=$NS_PID
	sleep 0.5
fi

# udp_modify MODE PAYLOAD EXPECTED
udp_modify() {
	local mode=$1 payload=$2 want=$3 dst m0
	m0=$(pcount modified)
	pconfig "u$mode" open mode="$mode" protocol=udp port=6101
	for dst in $S4 $S6; do
		udp_run "$H" "$dst" 6101 30 "$payload" "$T/rx"
		[ "$(udp_seqs "$T/rx" | tr '\n' ' ')" = "$(seq 0 29 | tr '\n' ' ')" ] ||
			{ cat "$T/rx"; tail -20 "$D_LOG"; fail "$mode: datagrams to $dst missing or out of order"; }
		[ "$(cut -d' ' -f3- "$T/rx" | sort -u)" = "$want" ] ||
			{ head -3 "$T/rx"; fail "$mode: to $dst got '$(cut -d' ' -f3- "$T/rx" | sort -u | head -2)', want '$want'"; }
	done
	expect_count modified ge $((m0 + 60)) "$mode udp"
	expect_count refused eq 0 "$mode udp"
	punconfig "u$mode"
	echo "ok: UDP $mode v4/v6: '$payload' -> '$want'"
}
if [ -z "$TCP_ONLY" ]; then
	udp_modify modify-same "ping and ping" "PONG and PONG"
	udp_modify modify-grow "ping and ping" "PINGPONG and PINGPONG"
	udp_modify modify-shrink "pingping and pingping!" "p and p!"
fi

if [ -n "$CAP" ]; then
	sleep 0.5
	kill "$CAP"
	wait "$CAP" 2>/dev/null
	n=$(grep -c "UDP, length" "$T/cap.txt")
	[ "$n" -ge 150 ] || echo "note: tcpdump saw only $n datagrams"
	grep -Ei "bad (udp )?cksum|incorrect" "$T/cap.txt" && fail "tcpdump reports bad checksums"
	echo "ok: tcpdump -vv in S: $n datagrams, no bad checksum"
elif [ -z "$TCP_ONLY" ]; then
	echo "note: tcpdump not installed; checksums proven by arrival only"
fi

# tcp_modify MODE MARKER REPLACEMENT SIZES: the 2 MB stream v4 and v6, in large GSO packets
# and/or MSS-sized segments. S advertises an MSS of 1000, so that a grown segment stays below
# the veth's MTU: a non-GSO packet grown beyond it is dropped by the sending kernel, and so is
# every retransmission of it (rewritten the same way), which stalls the stream.
tcp_modify() {
	local mode=$1 marker=$2 repl=$3 sizes=$4 dst gso m0
	stream_file "$T/in.txt" 35000 "$marker"
	pconfig "t$mode" open mode="$mode" protocol=tcp port=6102
	# Even with GSO, TCP sends single MSS-sized segments too; S's routes (the kernel's own,
	# metric 0 / 256) advertise MSS 1000.
	ip -n "$S" route replace 198.18.1.0/24 dev "$vb" advmss 1000 || fail "advmss"
	ip -n "$S" -6 route replace fd00:198:18:1::/64 dev "$vb" metric 256 advmss 1000 || fail "advmss6"
	for gso in $sizes; do
		if [ $gso = large ]; then
			ip -n "$H" link set dev "$va" gso_max_size 32000 gso_max_segs 65535 || fail "gso_max_size"
		else
			ip -n "$H" link set dev "$va" gso_max_segs 1 || fail "gso_max_segs"
		fi
		for dst in $S4 $S6; do
			m0=$(pcount modified)
			tcp_run "$H" "$S" "$dst" 6102 "$T/in.txt" "$T/out.txt" 60 ||
				{ ctl packet status; ns_exec "$S" nstat -a | grep -E "BeyondWindow|OFOQueue|DSACK"; fail "$mode: TCP stream to $dst ($gso) did not complete: $(wc -c < "$T/out.txt") bytes arrived"; }
			"$PY" - "$T/in.txt" "$T/out.txt" "$marker" "$repl" <<'EOF' || { ctl packet status; fail "$mode: TCP stream to $dst ($gso) not rewritten as expected"; }
import sys
inp, out = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read()
m, r = sys.argv[3].encode(), sys.argv[4].encode()
want = inp.replace(m, r)
total = inp.count(m)
left = out.count(m)
assert out.replace(m, r) == want, "output differs from the rewritten input: %d of %d bytes, first difference at %d" % (
    len(out), len(want), next((i for i in range(min(len(out), len(want))) if out[i] != want[i]), min(len(out), len(want))))
assert left <= total // 10, "only %d of %d markers rewritten" % (total - left, total)
print("   %d bytes in, %d out, %d of %d markers rewritten by netextd" % (len(inp), len(out), total - left, total))
EOF
			expect_count modified gt "$m0" "$mode tcp"
			echo "ok: TCP $mode to $dst ($gso segments)"
		done
	done
	ip -n "$H" link set dev "$va" gso_max_size 65536 gso_max_segs 65535 2>/dev/null
	expect_count refused eq 0 "$mode tcp"
	punconfig "t$mode"
}
if [ -n "$TCP_ONLY" ]; then
	tcp_modify modify-grow ping PINGPONG "large mss"
else
	tcp_modify modify-shrink pingping p "large mss"
fi

daemon_stop
assert_clean_after_stop
echo "ok"

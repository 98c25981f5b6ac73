#!/usr/bin/env bash
# The filter-packet provider's failures and the fail policy:
#   malformed replacements (another IP version, a length field that does not add up, 70000
#   bytes): refused and counted; fail_policy open lets the original through unchanged,
#   closed drops it;
#   a hung provider (SIGSTOP) with verdict_timeout_ms=300: open passes, closed drops, counted
#   as timeouts; it answers again after SIGCONT;
#   kill -9 of the extension in the middle of a stream of numbered datagrams (and a TCP
#   stream): open: every datagram arrives in order and the TCP stream completes intact;
#   closed: datagrams are lost while it is down (it takes start_delay_ms=1500 to start again),
#   then flow again once it is back; the extension was restarted.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/lib/daemon.sh"
. "$here/lib/packet.sh"
pkt_setup

# 1. Malformed replacements.
bad() { # bad MODE POLICY
	local mode=$1 policy=$2 r0 f0 dst
	r0=$(pcount refused)
	f0=$(pcount fail_policy_applied)
	pconfig "b$mode$policy" "$policy" mode="$mode" protocol=udp port=6201
	for dst in $S4 $S6; do
		udp_run "$H" "$dst" 6201 10 "ping original" "$T/rx"
		if [ "$policy" = open ]; then
			[ "$(udp_seqs "$T/rx" | tr '\n' ' ')" = "$(seq 0 9 | tr '\n' ' ')" ] ||
				{ cat "$T/rx"; tail -20 "$D_LOG"; fail "$mode/open: the originals to $dst did not all arrive"; }
			[ "$(cut -d' ' -f3- "$T/rx" | sort -u)" = "ping original" ] || fail "$mode/open: payload changed"
		else
			[ ! -s "$T/rx" ] || { cat "$T/rx"; fail "$mode/closed: datagrams to $dst arrived"; }
		fi
	done
	expect_count refused ge $((r0 + 20)) "$mode/$policy"
	expect_count fail_policy_applied ge $((f0 + 20)) "$mode/$policy"
	punconfig "b$mode$policy"
	echo "ok: $mode refused, fail policy $policy applied"
}
for mode in bad-version bad-length oversize; do
	bad "$mode" open
	bad "$mode" closed
done

# 2. A hung provider: verdict_timeout_ms decides.
hung() { # hung POLICY
	local policy=$1 pid t0
	pconfig "h$policy" "$policy" mode=allow protocol=udp port=6202 verdict_timeout_ms=300
	udp_run "$H" $S4 6202 5 "before" "$T/rx"
	[ "$(wc -l < "$T/rx")" = 5 ] || fail "hung/$policy: no traffic before the hang"
	pid=$(tp_pid) || fail "hung/$policy: no extension pid"
	t0=$(pcount timeouts)
	kill -STOP "$pid"
	udp_run "$H" $S4 6202 10 "hung" "$T/rx"
	if [ "$policy" = open ]; then
		[ "$(wc -l < "$T/rx")" = 10 ] || { kill -CONT "$pid"; fail "hung/open: $(wc -l < "$T/rx") of 10 passed"; }
	else
		[ ! -s "$T/rx" ] || { kill -CONT "$pid"; fail "hung/closed: datagrams passed"; }
	fi
	kill -CONT "$pid" 2>/dev/null # the daemon may have restarted it (heartbeat timeout)
	expect_count timeouts ge $((t0 + 10)) "hung/$policy"
	udp_run "$H" $S4 6202 5 "after" "$T/rx"
	[ "$(wc -l < "$T/rx")" = 5 ] || fail "hung/$policy: no traffic after SIGCONT"
	punconfig "h$policy"
	echo "ok: hung provider, fail policy $policy"
}
hung open
hung closed

# 3. kill -9 under a stream of numbered datagrams (10 ms apart, 6 s).
killed() { # killed POLICY
	local policy=$1 pid rl sender f0 n
	f0=$(pcount fail_policy_applied)
	pconfig "k$policy" "$policy" mode=allow protocol=udp port=6203 start_delay_ms=1500
	pid=$(tp_pid) || fail "killed/$policy: no extension pid"
	: > "$T/rx"
	ns_spawn "$S" "$UDPECHO" recv $S4 6203 -n 600 -t 5000 > "$T/rx"
	rl=$NS_PID
	wait_for ns_exec "$S" sh -c "ss -Hlnu 'sport = :6203' | grep -q ." || fail "receiver 6203"
	ns_exec "$H" timeout 60 "$UDPECHO" send $S4 6203 -n 600 -p "stream" -i 10000 >/dev/null &
	sender=$!
	wait_for sh -c "[ \$(wc -l < '$T/rx') -ge 50 ]" || fail "killed/$policy: the stream does not flow"
	kill -KILL "$pid"
	wait "$sender"
	wait "$rl" 2>/dev/null
	n=$(wc -l < "$T/rx")
	if [ "$policy" = open ]; then
		[ "$(udp_seqs "$T/rx" | tr '\n' ' ')" = "$(seq 0 599 | tr '\n' ' ')" ] ||
			{ ctl packet status; fail "killed/open: $n of 600 datagrams arrived (or out of order); missing: $(udp_seqs "$T/rx" | sort -n | comm -13 - <(seq 0 599 | sort -n) | sort -n | tr '\n' ' ')"; }
	else
		[ "$n" -lt 600 ] || fail "killed/closed: all 600 datagrams arrived while the extension was down"
		# The last 50 were sent well after the restart (1.5 s start, the stream lasts 6 s).
		[ "$(udp_seqs "$T/rx" | tail -50 | tr '\n' ' ')" = "$(seq 550 599 | tr '\n' ' ')" ] ||
			{ tail -20 "$D_LOG"; fail "killed/closed: traffic did not flow again after the restart"; }
		"$PY" -c 'import sys; s = [int(l.split()[1]) for l in open(sys.argv[1])]; assert s == sorted(s), "reordered"' "$T/rx" ||
			fail "killed/closed: datagrams out of order"
	fi
	[ "$(tp_pid)" != "$pid" ] || fail "killed/$policy: extension not restarted"
	expect_count fail_policy_applied gt "$f0" "killed/$policy"
	punconfig "k$policy"
	echo "ok: kill -9 with fail policy $policy: $n of 600 datagrams arrived"
}
killed open
killed closed

# A TCP stream through a kill -9 with fail policy open completes intact.
stream_file "$T/in.txt" 20000 "kill"
pconfig ktcp open mode=allow protocol=tcp port=6204
pid=$(tp_pid) || fail "ktcp: no extension pid"
: > "$T/out.txt"
ns_spawn "$S" timeout 60 nc -4 -d -l $S4 6204 > "$T/out.txt"
rl=$NS_PID
wait_for ns_exec "$S" sh -c "ss -Hlnt 'sport = :6204' | grep -q ." || fail "listener 6204"
# Paced: 40 lines every 10 ms (about 5 s in all), so that the kill lands in the middle.
"$PY" -c '
import sys, time
lines = open(sys.argv[1], "rb").readlines()
out = sys.stdout.buffer
for i in range(0, len(lines), 40):
    out.write(b"".join(lines[i:i + 40])); out.flush(); time.sleep(0.01)' "$T/in.txt" |
	ns_exec "$H" timeout 60 nc -N $S4 6204 &
sender=$!
wait_for sh -c "[ \$(wc -c < '$T/out.txt') -ge 100000 ]" || fail "ktcp: the stream does not flow"
kill -KILL "$pid"
wait "$sender" || fail "ktcp: the sender failed"
wait "$rl" 2>/dev/null
cmp -s "$T/in.txt" "$T/out.txt" || fail "ktcp: the TCP stream did not arrive intact ($(wc -c < "$T/out.txt") of $(wc -c < "$T/in.txt") bytes)"
punconfig ktcp
echo "ok: kill -9 under a TCP stream, fail open: intact"

daemon_stop
assert_clean_after_stop
echo "ok"

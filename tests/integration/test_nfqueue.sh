#!/bin/bash
# nfq_loop end to end: real UDP and TCP traffic (IPv4 and IPv6) between two namespaces goes
# through the in-process NFQUEUE loop; after SIGKILL the leftover table's bypass flag lets
# traffic pass; after SIGTERM the loop removes its table. Root only (77 otherwise).
set -u
. "$(dirname "$0")/../lib/netns.sh"

NFQ_LOOP=${NFQ_LOOP:-}
[ -x "$NFQ_LOOP" ] || fail "NFQ_LOOP must point to the nfq_loop binary"
ns_init
for tool in nc nft ss timeout; do
	command -v "$tool" >/dev/null || skip "needs $tool"
done

A=$(ns_add snd) || fail "ns_add snd"
B=$(ns_add rcv) || fail "ns_add rcv"
ns_link "$A" "$B" 1
T=$NS_TMPDIR
TABLE=nfqtest
QUEUE=7
UDP=5301
TCP=5302
DST4=198.18.1.2
DST6=fd00:198:18:1::2
LOOP=""

table_present() {
	ns_exec "$A" nft list tables | gq "^table inet $TABLE\$"
}

start_loop() {
	ns_spawn "$A" "$NFQ_LOOP" --table "$TABLE" --queue "$QUEUE" --udp-dport "$UDP" \
		--tcp-dport "$TCP" --count-file "$T/count" --bypass >"$T/loop.out" 2>"$T/loop.err"
	LOOP=$NS_PID
	wait_for table_present || { cat "$T/loop.err" >&2; fail "nfq_loop did not install table $TABLE"; }
}

listening() { # proto port
	ns_exec "$B" ss -Hln"$1" "sport = :$2" | gq .
}

udp_try() { # dst tag
	printf '%s\n' "$2" | ns_exec "$A" nc -u -w0 "$1" "$UDP"
	grep -qx "$2" "$T/rx"
}

# A datagram may be lost before neighbour discovery completes: send until one arrives.
udp_transfer() { # dst tag
	local fam=-4
	[[ $1 == *:* ]] && fam=-6
	: >"$T/rx"
	ns_spawn "$B" timeout 10 nc "$fam" -u -l "$1" "$UDP" >"$T/rx"
	local l=$NS_PID
	wait_for listening u "$UDP" || fail "udp listener on $1"
	wait_for udp_try "$1" "$2" || fail "UDP to $1 ($2) did not arrive"
	kill "$l" 2>/dev/null
	wait "$l" 2>/dev/null
	echo "ok: UDP $2 via $1"
}

tcp_try() { # dst tag
	printf '%s\n' "$2" | ns_exec "$A" timeout 5 nc -N "$1" "$TCP"
}

tcp_transfer() { # dst tag
	local fam=-4
	[[ $1 == *:* ]] && fam=-6
	: >"$T/rx"
	ns_spawn "$B" timeout 10 nc "$fam" -l "$1" "$TCP" >"$T/rx"
	local l=$NS_PID
	wait_for listening t "$TCP" || fail "tcp listener on $1"
	tcp_try "$1" "$2" || fail "TCP connect to $1 ($2) failed"
	wait "$l" 2>/dev/null
	grep -qx "$2" "$T/rx" || fail "TCP data to $1 ($2) did not arrive"
	echo "ok: TCP $2 via $1"
}

all_transfers() { # tag
	udp_transfer "$DST4" "$1-udp4"
	udp_transfer "$DST6" "$1-udp6"
	tcp_transfer "$DST4" "$1-tcp4"
	tcp_transfer "$DST6" "$1-tcp6"
}

counter() { # name file
	sed -n "s/.*\\b$1=\\([0-9]*\\).*/\\1/p" "$2"
}

# 1. Traffic through the loop.
start_loop
all_transfers queued
sleep 0.3 # the count file is written at most every 200 ms
rcv=$(counter received "$T/count")
acc=$(counter accepted "$T/count")
[ "${rcv:-0}" -gt 0 ] && [ "${acc:-0}" -gt 0 ] || fail "loop counters: received=$rcv accepted=$acc"
echo "ok: loop counted received=$rcv accepted=$acc"

# 2. SIGKILL leaves the table; its bypass flag lets traffic pass without a reader.
kill -KILL "$LOOP"
wait "$LOOP" 2>/dev/null
table_present || fail "table $TABLE vanished after SIGKILL"
all_transfers bypass
echo "ok: fail-open with the table left behind"

# 3. A new loop replaces the leftover table; SIGTERM removes it and prints the counters.
start_loop
udp_transfer "$DST4" "again-udp4"
kill -TERM "$LOOP"
wait "$LOOP" || fail "nfq_loop exited with $? after SIGTERM"
grep -Eq '^received=[1-9][0-9]* accepted=[1-9][0-9]*$' "$T/loop.out" || fail "bad output: $(cat "$T/loop.out")"
table_present && fail "table $TABLE still present after SIGTERM"
echo "ok: SIGTERM removed the table ($(cat "$T/loop.out"))"
exit 0

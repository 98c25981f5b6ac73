# Helpers for the filter-packet integration tests. Source after daemon.sh.
#
#   pkt_setup                    namespaces H (netextd, senders) and S (receivers) over a veth:
#                                H 198.18.1.1 / fd00:198:18:1::1, S .2 / ::2; netextd in H;
#                                netext-testpacket registered as $TP_ID
#   pconfig NAME POLICY OPT...   config add (--provider filter-packet --fail-POLICY) + start,
#                                waits for the provider's queue rule
#   punconfig NAME               stop + remove, waits until the queue rule is gone
#   pcount COUNTER               a counter of `netextctl --json packet status`
#   udp_run NS DST PORT N PAYLOAD RX [INTERVAL_US]
#                                a receiver in the other namespace, N datagrams from NS; the
#                                receiver's lines ("SRCPORT NNNNNN PAYLOAD") in RX
#   tcp_run FROM TO DST PORT IN OUT [TIMEOUT]
#                                IN sent with nc from FROM to a listener in TO; OUT what arrived
#   stream_file FILE LINES MARKER   text lines with MARKER in each
: "${NETEXT_TESTPACKET:?}" "${UDPECHO:?}"
command -v nc >/dev/null || skip "needs nc"
command -v nft >/dev/null || skip "needs nft"
[ -x /usr/bin/python3 ] || skip "needs /usr/bin/python3"
PY=/usr/bin/python3
TP_ID=com.example.testpacket
H4=198.18.1.1
S4=198.18.1.2
H6=fd00:198:18:1::1
S6=fd00:198:18:1::2

pkt_setup() {
	H=$(ns_add h) || fail "ns h"
	S=$(ns_add s) || fail "ns s"
	ns_link "$H" "$S" 1
	T=$NS_TMPDIR
	chmod 755 "$T" # the extension (nobody) writes its record files here
	daemon_start "$H"
	ctl dev register $TP_ID "$NETEXT_TESTPACKET" >/dev/null || fail "register testpacket"
	# Neighbour discovery first, so that no test datagram waits on it.
	ns_exec "$H" "$UDPECHO" send $S4 9 -n 1 >/dev/null
	ns_exec "$H" "$UDPECHO" send $S6 9 -n 1 >/dev/null
	sleep 0.2
}

# grep -c, not -q: under pipefail, grep -q's early exit fails nft with SIGPIPE.
queue_rule() { [ "$(ns_exec "$H" nft list ruleset 2>/dev/null | grep -c "queue")" -gt 0 ]; }

# A record file the extension (nobody) may append to.
record_file() { # record_file NAME: echoes the path
	local f=$T/$1
	: > "$f"
	chmod 666 "$f"
	echo "$f"
}

pconfig() { # pconfig NAME open|closed OPTION...
	local name=$1 policy=$2 o opts=()
	shift 2
	for o in "$@"; do opts+=(--option "$o"); done
	ctl config add "$name" --extension "${PEXT:-$TP_ID}" --provider filter-packet --fail-"$policy" \
		"${opts[@]}" >/dev/null || fail "config add $name"
	ctl start "$name" >/dev/null || { tail -20 "$D_LOG"; fail "start $name"; }
	WAIT_TRIES=100 wait_for queue_rule || { tail -20 "$D_LOG"; ns_exec "$H" nft list ruleset; fail "$name: no queue rule"; }
}

punconfig() {
	ctl stop "$1" >/dev/null
	ctl config remove "$1" >/dev/null
	WAIT_TRIES=100 wait_for sh -c "[ \$(nsenter --net=/run/netns/$H nft list ruleset 2>/dev/null | grep -c queue) = 0 ]" ||
		fail "$1: queue rule still there after stop"
}

# The first counter named $1 in the status (breadth first: totals before per-queue figures).
pcount() {
	ctl_json packet status | "$PY" -c '
import json, sys
want = sys.argv[1]
todo = [json.load(sys.stdin)]
while todo:
    v = todo.pop(0)
    if isinstance(v, dict):
        if want in v and isinstance(v[want], int):
            print(v[want]); sys.exit(0)
        todo.extend(v.values())
    elif isinstance(v, list):
        todo.extend(v)
print(0)' "$1"
}

# expect_count COUNTER OP VALUE [what]
expect_count() {
	local got
	got=$(pcount "$1")
	[ "$got" -"$2" "$3" ] || { ctl packet status; tail -20 "$D_LOG"; fail "${4:-}: $1 = $got, want -$2 $3"; }
}

other_ns() { [ "$1" = "$H" ] && echo "$S" || echo "$H"; }

udp_run() { # udp_run FROM DST PORT N PAYLOAD RX [INTERVAL_US]
	local from=$1 dst=$2 port=$3 n=$4 payload=$5 rx=$6 iv=${7:-1000} to rl
	to=$(other_ns "$from")
	: > "$rx"
	ns_spawn "$to" "$UDPECHO" recv "$dst" "$port" -n "$n" -t 3000 > "$rx"
	rl=$NS_PID
	wait_for ns_exec "$to" sh -c "ss -Hlnu 'sport = :$port' | grep -q ." || fail "udp receiver on $dst:$port"
	ns_exec "$from" timeout 60 "$UDPECHO" send "$dst" "$port" -n "$n" -p "$payload" -i "$iv" >/dev/null ||
		fail "udpecho send to $dst:$port"
	wait "$rl" 2>/dev/null
}

# The sequence numbers of an RX file, one per line.
udp_seqs() { awk '{ print $2 + 0 }' "$1"; }

tcp_run() { # tcp_run FROM TO DST PORT IN OUT [TIMEOUT]: 0 when nc completed
	local from=$1 to=$2 dst=$3 port=$4 in=$5 out=$6 tmo=${7:-60} fam=-4 rl rc=0
	[[ $dst == *:* ]] && fam=-6
	: > "$out"
	ns_spawn "$to" timeout "$tmo" nc "$fam" -d -l "$dst" "$port" > "$out"
	rl=$NS_PID
	wait_for ns_exec "$to" sh -c "ss -Hlnt 'sport = :$port' | grep -q ." || fail "tcp listener on $dst:$port"
	ns_exec "$from" timeout "$tmo" nc -N "$dst" "$port" < "$in" || rc=1
	wait "$rl" 2>/dev/null || rc=1
	return $rc
}

stream_file() { # stream_file FILE LINES MARKER
	"$PY" - "$1" "$2" "$3" <<'EOF'
import sys
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        f.write("line %07d %s some filler text to make the line longer %s end\n" % (i, sys.argv[3], "x" * (i % 37)))
EOF
}

# The extension's pid, waiting until it runs.
tp_pid() { ext_pid_wait "${1:-$TP_ID}"; }

# No table, no bound queue, no extension left in H after the daemon stopped.
assert_clean_after_stop() {
	local t
	t=$(ns_exec "$H" nft list tables 2>/dev/null)
	[ -z "$t" ] || fail "tables left after the daemon stopped: $t"
	t=$(ns_exec "$H" cat /proc/net/netfilter/nfnetlink_queue 2>/dev/null)
	[ -z "$t" ] || fail "queues still bound after the daemon stopped: $t"
	pgrep -f "$NETEXT_TESTPACKET" >/dev/null && fail "an extension process outlived the daemon"
	return 0
}

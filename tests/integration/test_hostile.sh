#!/usr/bin/env bash
# Hostile input: malformed, random, oversized, out-of-order and fd-carrying frames from an
# extension, log floods, and 10,000 malformed control requests. The daemon must stay up,
# answer typed errors, restart the faulty extension, and return to its fd count.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/lib/daemon.sh"
: "${NETEXT_BADEXT:?}" "${NETEXT_CTLFLOOD:?}"

daemon_test_start
ns=$D_NS
dpid=$(daemon_pid)
# Warm up: sd-event creates its per-clock timerfd lazily with the first timer, so the
# baseline is taken after one well-behaved extension has come and gone.
ctl dev register warmup "$NETEXT_HELLO" >/dev/null || fail "register warmup failed"
WAIT_TRIES=100 WAIT_DELAY=0.05 wait_for sh -c "NETEXT_SOCKET=$D_SOCK $NETEXTCTL list | grep -q running" || fail "warmup not running"
ctl dev unregister warmup >/dev/null
WAIT_TRIES=100 WAIT_DELAY=0.05 wait_for sh -c "NETEXT_SOCKET=$D_SOCK $NETEXTCTL list | grep -q 'no extensions'" || fail "warmup not removed"
fds0=$(fd_count "$dpid")

# A wrapper per mode: the daemon runs executables without arguments.
mkwrap() {
	local f="$D_DIR/badext-$1"
	printf '#!/bin/sh\nexec %s %s\n' "$NETEXT_BADEXT" "$*" > "$f"
	chmod 755 "$f"
	echo "$f"
}

for mode in "random 10000" "malformed 10000" "oversize" "fds" "outoforder"; do
	set -- $mode
	id=bad-$1
	ctl dev register "$id" "$(mkwrap "$@")" >/dev/null || fail "register $id failed"
	WAIT_TRIES=100 WAIT_DELAY=0.05 wait_for grep -q "extension $id: protocol fault" "$D_LOG" \
		|| { tail -20 "$D_LOG"; fail "no protocol fault logged for $mode"; }
	ctl status >/dev/null || fail "daemon stopped answering after $mode"
	echo "$mode: $(grep -m1 "extension $id: protocol fault" "$D_LOG" | sed 's/.*protocol fault: //')"
	# It is restarted (and faults again): the restart counter grows.
	WAIT_TRIES=100 WAIT_DELAY=0.05 wait_for sh -c "NETEXT_SOCKET=$D_SOCK $NETEXTCTL --json list | python3 -c 'import json,sys; e=[x for x in json.load(sys.stdin)[\"extensions\"] if x[\"identifier\"]==\"$id\"][0]; sys.exit(0 if e[\"restarts\"]>=1 else 1)'" \
		|| fail "$id not restarted after its fault"
	ctl dev unregister "$id" >/dev/null || fail "unregister $id failed"
done

# A silent extension (HELLO, then never answers pings) is killed as hung.
ctl dev register bad-silent "$(mkwrap silent)" >/dev/null
WAIT_TRIES=100 WAIT_DELAY=0.05 wait_for grep -q "extension bad-silent: hung" "$D_LOG" || fail "silent extension not detected as hung"
ctl dev unregister bad-silent >/dev/null

# A log flood is rate-limited, not fatal.
ctl dev register bad-flood "$(mkwrap flood 100000)" >/dev/null
WAIT_TRIES=100 WAIT_DELAY=0.05 wait_for grep -q "extension bad-flood: .* log lines suppressed" "$D_LOG" || sleep 2
ctl status >/dev/null || fail "daemon not answering during a log flood"
ctl dev unregister bad-flood >/dev/null

# 10,000 malformed control requests.
"$NETEXT_CTLFLOOD" "$D_SOCK" 10000 || fail "malformed control requests not all answered with typed errors"
ctl status >/dev/null || fail "daemon not answering after the control flood"

WAIT_TRIES=100 WAIT_DELAY=0.05 wait_for sh -c "NETEXT_SOCKET=$D_SOCK $NETEXTCTL list | grep -q 'no extensions'" || fail "extensions not removed"
fds1=$(fd_count "$dpid")
echo "daemon fds: $fds0 before, $fds1 after"
[ "$fds1" -le "$fds0" ] || { ls -l /proc/"$dpid"/fd; fail "daemon leaked file descriptors ($fds0 -> $fds1)"; }
kill -0 "$dpid" || fail "daemon died"
daemon_stop
echo "hostile: ok"

#!/usr/bin/env bash
# Authorisation by SO_PEERCRED: anyone reads status; changes need root or the admin group.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/lib/daemon.sh"
: "${NETEXT_HELLO:?}"

daemon_test_start
ns=$D_NS
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups env NETEXT_SOCKET="$D_SOCK" "$NETEXTCTL" "$@"; }

as_nobody status >/dev/null || fail "status must be open to everyone"
as_nobody list >/dev/null || fail "list must be open to everyone"
as_nobody dev register x.y "$NETEXT_HELLO" >/dev/null 2>&1; rc=$?
[ "$rc" -eq 4 ] || fail "register by nobody: expected exit 4 (permission denied), got $rc"
as_nobody logs >/dev/null 2>&1; [ $? -eq 4 ] || fail "logs must need admin"
ctl dev register x.y "$NETEXT_HELLO" >/dev/null || fail "root must be allowed"
ctl list | gq x.y || fail "root's registration missing"
daemon_stop

# Without developer mode, unsigned registration is forbidden even for root.
daemon_start "$ns"
kill -TERM "$D_PID"; wait "$D_PID"; D_PID=
mkdir -p "$D_DIR/run"
nsenter --net=/run/netns/"$ns" "$NETEXTD" --state-dir "$D_DIR/state" --run-dir "$D_DIR/run" \
	--cgroup "$D_CGROUP" --config "$D_DIR/netextd.conf" >>"$D_LOG" 2>&1 &
D_PID=$!
WAIT_TRIES=200 WAIT_DELAY=0.05 wait_for ctl status || fail "daemon without --developer did not start"
ctl dev register z.z "$NETEXT_HELLO" >/dev/null 2>&1; [ $? -eq 4 ] || fail "unsigned registration without developer mode must be forbidden (exit 4)"
daemon_stop
echo "permissions: ok"

#!/usr/bin/env bash
# A daemon killed with SIGKILL leaves its table; the next start removes it. Its extensions
# die with it (PR_SET_PDEATHSIG), and a second daemon in the same namespace is refused.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/lib/daemon.sh"
: "${NETEXT_HELLO:?}"

daemon_test_start
ns=$D_NS
ctl dev register com.example.hello "$NETEXT_HELLO" >/dev/null
WAIT_TRIES=50 WAIT_DELAY=0.05 wait_for sh -c "NETEXT_SOCKET=$D_SOCK $NETEXTCTL list | grep -q running" || fail "extension not running"
expid=$(ext_pid com.example.hello)

# A second instance in the same namespace must refuse to start.
mkdir -p "$D_DIR/state2" "$D_DIR/run2"
nsenter --net=/run/netns/"$ns" "$NETEXTD" --state-dir "$D_DIR/state2" --run-dir "$D_DIR/run2" \
	--cgroup "$D_CGROUP-2" > "$D_DIR/second.log" 2>&1 && fail "second daemon in one namespace started"
grep -q "another netextd manages this network namespace" "$D_DIR/second.log" || { cat "$D_DIR/second.log"; fail "no clear error for the second daemon"; }

daemon_kill9
WAIT_TRIES=50 WAIT_DELAY=0.05 wait_for sh -c "! kill -0 $expid 2>/dev/null" || fail "extension survived the daemon's SIGKILL"
nsenter --net=/run/netns/"$ns" nft list tables | gq "inet netext" || fail "expected the stale table to remain after SIGKILL"

daemon_start "$ns"
grep -q "removing stale table inet netext" "$D_LOG" || fail "stale table not reported"
nsenter --net=/run/netns/"$ns" nft list tables | grep -c "inet netext" | gq -x 1 || fail "table not recreated once"
WAIT_TRIES=50 WAIT_DELAY=0.05 wait_for sh -c "NETEXT_SOCKET=$D_SOCK $NETEXTCTL list | grep -q running" || fail "extension not restarted from the saved state"
daemon_stop
nsenter --net=/run/netns/"$ns" nft list tables | gq netext && fail "table left after SIGTERM"
echo "stale: ok"

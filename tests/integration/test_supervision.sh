#!/usr/bin/env bash
# Supervision: kill -9, crash, hang and crash loops, while the control socket keeps
# answering. Restart latency is printed here and measured by bench/restart; this test
# only proves the behaviour (no timing thresholds in tests).
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/lib/daemon.sh"
: "${NETEXT_HELLO:?}"

daemon_test_start
ns=$D_NS
ctl dev register com.example.hello "$NETEXT_HELLO" >/dev/null || fail "register failed"
ctl config add demo --extension com.example.hello --provider message --option allow-faults=1 >/dev/null
ctl start demo >/dev/null || { cat "$D_LOG"; fail "start failed"; }

wait_running() { # wait for a running process other than $1
	WAIT_TRIES=100 WAIT_DELAY=0.05 wait_for sh -c "p=\$(NETEXT_SOCKET=$D_SOCK $NETEXTCTL --json list | python3 -c 'import json,sys; e=json.load(sys.stdin)[\"extensions\"][0]; print(e[\"pid\"] if e[\"state\"]==\"running\" else 0)'); [ \"\$p\" != 0 ] && [ \"\$p\" != \"$1\" ]"
}

# 1. kill -9 while a client hammers the control socket.
pid=$(ext_pid com.example.hello)
( for _ in $(seq 200); do ctl status >/dev/null || echo FAIL; done ) > "$D_DIR/status.out" &
poller=$!
t0=$(date +%s%N)
kill -9 "$pid"
wait_running "$pid" || { cat "$D_LOG"; fail "extension not restarted after kill -9"; }
t1=$(date +%s%N)
echo "restart after kill -9: $(( (t1 - t0) / 1000000 )) ms (informational; see bench/restart)"
wait "$poller"
grep -q FAIL "$D_DIR/status.out" && fail "control requests failed while the extension restarted"
WAIT_TRIES=50 WAIT_DELAY=0.05 wait_for sh -c "NETEXT_SOCKET=$D_SOCK $NETEXTCTL message demo ping 2>/dev/null | grep -q pong" \
	|| fail "provider not restarted with its extension"

# 2. a crash (abort) from inside a callback.
pid=$(ext_pid com.example.hello)
ctl message demo crash >/dev/null 2>&1
wait_running "$pid" || fail "extension not restarted after abort"
grep -q "killed by signal Aborted" "$D_LOG" || fail "crash cause not logged"

# 3. a hang: heartbeat deadline (1.5 s in tests/lib/daemon.sh) kills it.
pid=$(ext_pid com.example.hello)
WAIT_TRIES=50 WAIT_DELAY=0.05 wait_for sh -c "NETEXT_SOCKET=$D_SOCK $NETEXTCTL message demo ping 2>/dev/null | grep -q pong" || fail "not serving"
ctl message demo hang >/dev/null 2>&1 &
wait_running "$pid" || { cat "$D_LOG"; fail "hung extension not killed and restarted"; }
grep -q "hung: no heartbeat answer" "$D_LOG" || fail "hang not detected by heartbeat"

# 4. crash loop: restart_max (5) crashes in the window mark it failed.
for _ in $(seq 6); do
	WAIT_TRIES=100 WAIT_DELAY=0.05 wait_for sh -c "NETEXT_SOCKET=$D_SOCK $NETEXTCTL message demo ping 2>/dev/null | grep -q pong" || break
	ctl message demo crash >/dev/null 2>&1
done
WAIT_TRIES=100 WAIT_DELAY=0.05 wait_for sh -c "NETEXT_SOCKET=$D_SOCK $NETEXTCTL list | grep -q failed" || { ctl list; fail "crash loop not marked failed"; }
ctl start demo >/dev/null 2>&1; [ $? -eq 1 ] || true
ctl restart com.example.hello >/dev/null || fail "restart of a failed extension refused"
wait_running 0 || fail "failed extension did not come back after netextctl restart"
ctl status >/dev/null || fail "daemon not answering at the end"
daemon_stop
echo "supervision: ok"

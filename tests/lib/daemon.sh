# Runs a private netextd inside a test namespace. Sourcing it sources netns.sh and runs
# ns_init (so it exits 77 without root). Needs NETEXTD, NETEXTCTL (set by meson) and
# creates its state and run dirs under a temp dir removed at exit.
#
#   daemon_test_start [options]               a fresh namespace (D_NS) with a daemon in it
#   daemon_start NS [extra netextd options]   start; waits for the control socket
#   ctl ARGS...                               netextctl against this daemon
#   ctl_json ARGS...                          same with --json
#   daemon_stop                               SIGTERM, wait, check exit status 0
#   daemon_kill9                              SIGKILL (the stale-state case)
#   daemon_pid / ext_pid ID                   pids
#   ext_pid_wait ID                           ext_pid once it runs (up to 10 s)
#   D_NS D_DIR D_SOCK D_LOG D_CGROUP          what the last daemon_start set
#   D_DEVELOPER=0                             start without --developer (default 1)
#   D_CONF_EXTRA=$'[dns]\nroute = …'            lines appended to netextd.conf

. "$(dirname "${BASH_SOURCE[0]}")/netns.sh"
ns_init
: "${NETEXTD:?NETEXTD not set}" "${NETEXTCTL:?NETEXTCTL not set}"

D_DIR=$(mktemp -d /tmp/netext-test.XXXXXX)
chmod 755 "$D_DIR"
D_PID=
D_CGROUP=netext-test-$$-$RANDOM

daemon_cleanup() {
	if [ -n "$D_PID" ] && kill -0 "$D_PID" 2>/dev/null; then
		kill -TERM "$D_PID" 2>/dev/null
		for _ in $(seq 50); do kill -0 "$D_PID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$D_PID" 2>/dev/null
	fi
	local mnt
	mnt=$(awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo)
	if [ -n "$mnt" ] && [ -d "$mnt/$D_CGROUP" ]; then
		find "$mnt/$D_CGROUP" -depth -type d -exec rmdir {} \; 2>/dev/null
	fi
	rm -rf "$D_DIR"
}
# Chain our cleanup before the namespace cleanup.
trap "daemon_cleanup; ns_cleanup" EXIT
trap "exit 130" INT TERM

daemon_start() {
	D_NS=$1
	shift
	mkdir -p "$D_DIR/state" "$D_DIR/run"
	D_SOCK=$D_DIR/run/netextd.sock
	D_LOG=$D_DIR/netextd.log
	cat > "$D_DIR/netextd.conf" <<CONF
# written by tests/lib/daemon.sh
extension_user = nobody
heartbeat_interval_ms = 200
heartbeat_timeout_ms = 1500
stop_timeout_ms = 2000
restart_window_s = 30
CONF
	# Extra lines (e.g. a [dns] section) from the test.
	[ -z "${D_CONF_EXTRA:-}" ] || printf '%s\n' "$D_CONF_EXTRA" >> "$D_DIR/netextd.conf"
	nsenter --net=/run/netns/"$D_NS" "$NETEXTD" --config "$D_DIR/netextd.conf" \
		--state-dir "$D_DIR/state" --run-dir "$D_DIR/run" --cgroup "$D_CGROUP" \
		$([ "${D_DEVELOPER:-1}" = 1 ] && echo --developer) -v "$@" >>"$D_LOG" 2>&1 &
	D_PID=$!
	# The socket file may be a dead instance's: wait for an answer, not for the file.
	WAIT_TRIES=200 WAIT_DELAY=0.05 wait_for ctl status || { cat "$D_LOG"; fail "netextd did not start"; }
}

daemon_test_start() {
	local ns
	ns=$(ns_add host) || fail "cannot create a namespace"
	daemon_start "$ns" "$@"
}

ctl() { NETEXT_SOCKET=$D_SOCK "$NETEXTCTL" "$@"; }
ctl_json() { NETEXT_SOCKET=$D_SOCK "$NETEXTCTL" --json "$@"; }

daemon_stop() {
	local rc=0
	kill -TERM "$D_PID"
	wait "$D_PID" || rc=$?
	D_PID=
	[ "$rc" -eq 0 ] || { tail -30 "$D_LOG"; fail "netextd exited with status $rc after SIGTERM"; }
}

daemon_kill9() {
	kill -KILL "$D_PID"
	wait "$D_PID" 2>/dev/null
	D_PID=
}

daemon_pid() { echo "$D_PID"; }

# The pid of extension ID as the daemon reports it (0 when not running).
ext_pid() {
	ctl_json list | jq_get ".extensions[] | select(.identifier == \"$1\") | .pid"
}

# ext_pid_wait ID: the extension's pid once it runs (up to 10 s); fails without one.
ext_pid_wait() {
	local p
	for _ in $(seq 100); do
		p=$(ext_pid "$1")
		[ -n "$p" ] && [ "$p" != 0 ] && { echo "$p"; return 0; }
		sleep 0.1
	done
	return 1
}

# A tiny JSON query: python3 ships with meson, which every build here has.
jq_get() {
	python3 -c '
import json, sys
expr = sys.argv[1]
data = json.load(sys.stdin)
# supports ".a.b", ".a[]", "select(.k == \"v\")" pipelines, enough for tests
def run(vals, step):
    step = step.strip()
    out = []
    for v in vals:
        if step.startswith("select("):
            k, want = step[len("select(."):-1].split(" == ")
            if str(v.get(k)) == json.loads(want): out.append(v)
        else:
            cur = [v]
            for part in [p for p in step.split(".") if p]:
                nxt = []
                for c in cur:
                    if part.endswith("[]"):
                        c = c.get(part[:-2]) if part[:-2] else c
                        nxt.extend(c or [])
                    else:
                        nxt.append(c.get(part) if isinstance(c, dict) else None)
                cur = nxt
            out.extend(cur)
    return out
vals = [data]
for step in expr.split("|"):
    vals = run(vals, step)
for v in vals:
    print(json.dumps(v) if isinstance(v, (dict, list)) else ("" if v is None else str(v).lower() if isinstance(v, bool) else v))
' "$1"
}

fd_count() { ls "/proc/$1/fd" | wc -l; }

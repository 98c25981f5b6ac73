#!/usr/bin/env bash
# The whole life of an extension under a real netextd in a fresh network namespace:
# register, sandbox, provider start with options, app messages, stop with a reason,
# and a clean daemon exit that leaves no table, cgroup or process behind.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/lib/daemon.sh"
: "${NETEXT_HELLO:?}"

daemon_test_start
ns=$D_NS

ctl status | gq "table inet netext" || fail "status does not show the datapath table"
nsenter --net=/run/netns/"$ns" nft list table inet netext >/dev/null \
	|| fail "table inet netext missing inside the namespace"

ctl dev register com.example.hello "$NETEXT_HELLO" --user nobody || fail "register failed"
WAIT_TRIES=50 WAIT_DELAY=0.05 wait_for sh -c "[ \"\$(NETEXT_SOCKET=$D_SOCK $NETEXTCTL --json list | grep -c '\"running\"')\" -ge 1 ]" \
	|| { cat "$D_LOG"; fail "extension did not reach running"; }
ctl list -v | grep -E "^com.example.hello +running" || fail "list does not show the running extension"

ctl config add demo --extension com.example.hello --provider message --option greeting=bonjour \
	|| fail "config add failed"
ctl start demo | gq "running" || { cat "$D_LOG"; fail "start did not report running"; }
[ "$(ctl message demo ping)" = "pong" ] || fail "app message ping did not get pong"
[ "$(ctl message demo world)" = "bonjour, world" ] || fail "start options did not reach the provider"

# The sandbox, as the extension itself sees it.
who=$(ctl message demo whoami)
echo "whoami: $who"
case "$who" in *"uid=65534 "*) ;; *) fail "extension does not run as nobody: $who" ;; esac
case "$who" in *"nnp=1"*) ;; *) fail "no_new_privs not set: $who" ;; esac
case "$who" in *"caps=0000000000000000"*) ;; *) fail "extension has capabilities: $who" ;; esac
case "$who" in *"$D_CGROUP/ext-com.example.hello"*) ;; *) fail "extension not in its cgroup: $who" ;; esac
grep -q "^Seccomp:[[:space:]]*2" /proc/"$(ext_pid com.example.hello)"/status || fail "no seccomp filter"

# Faults are refused without allow-faults.
ctl message demo crash >/dev/null 2>&1 && fail "crash must be refused without allow-faults"

ctl stop demo | gq stopped || fail "stop did not report stopped"
ctl logs -n 200 | gq "stopping (user-initiated)" || { ctl logs; fail "stop reason not logged by the provider"; }
ctl message demo ping >/dev/null 2>&1; [ $? -eq 1 ] || fail "message to a stopped configuration must fail with exit 1"
ctl --json configs | gq '"enabled": false' || fail "stopped configuration must be disabled"

# Errors are typed and mapped to exit codes.
ctl start nosuch >/dev/null 2>&1; [ $? -eq 5 ] || fail "unknown configuration must exit 5"
ctl config add bad --extension com.example.hello --provider transparent-proxy >/dev/null 2>&1 \
	&& fail "unsupported provider type accepted"
ctl config add demo --extension com.example.hello --provider message >/dev/null 2>&1 \
	&& fail "duplicate configuration accepted"

# Restart of the daemon keeps state: the configuration comes back enabled when started.
ctl start demo >/dev/null || fail "restart of provider failed"
expid=$(ext_pid com.example.hello)
daemon_stop
kill -0 "$expid" 2>/dev/null && fail "extension pid $expid outlived the daemon"
grep -q "stopping (daemon-shutdown)" "$D_LOG" || fail "provider did not get the daemon-shutdown stop reason"
nsenter --net=/run/netns/"$ns" nft list tables | gq netext && fail "table left after SIGTERM"
mnt=$(awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo)
[ -d "$mnt/$D_CGROUP" ] && fail "cgroup $D_CGROUP left after SIGTERM"

daemon_start "$ns"
WAIT_TRIES=50 WAIT_DELAY=0.05 wait_for sh -c "NETEXT_SOCKET=$D_SOCK $NETEXTCTL message demo ping 2>/dev/null | grep -q pong" \
	|| { cat "$D_LOG"; fail "enabled configuration did not come back after daemon restart"; }
ctl dev unregister com.example.hello || fail "unregister failed"
WAIT_TRIES=50 WAIT_DELAY=0.05 wait_for sh -c "! NETEXT_SOCKET=$D_SOCK $NETEXTCTL list | grep -q com.example.hello" \
	|| fail "extension still listed after unregister"
ctl configs | gq "no configurations" || fail "configurations of a removed extension remain"
daemon_stop
echo "lifecycle: ok"

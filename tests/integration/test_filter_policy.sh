#!/usr/bin/env bash
# Content filter verdict paths: pause and resume (by a person with netextctl and by the
# provider over app messages), the UDP pause limit, two filters in order (a drop from any
# wins), verdict deadlines with each fail policy, kill -9 of the extension under load with
# each fail policy (no flow stuck, the policy honoured, recovery), and a daemon killed with
# -9 whose successor removes the stale table.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/lib/daemon.sh"
: "${NETEXT_TESTFILTER:?}"
for tool in python3 nft; do
	command -v "$tool" >/dev/null || skip "needs $tool"
done

H=$(ns_add h) || fail "ns h"
S=$(ns_add s) || fail "ns s"
ns_link "$H" "$S" 1
T=$NS_TMPDIR

# Echo servers in S: TCP 7000-7003, UDP 6000.
ns_spawn "$S" python3 -c '
import socket, threading
def tcp(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(128)
    while True:
        c, _ = s.accept(); c.sendall(b"ok\n"); c.close()
for p in (7000, 7001, 7002, 7003):
    threading.Thread(target=tcp, args=(p,), daemon=True).start()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", 6000))
while True:
    d, a = u.recvfrom(100); u.sendto(d, a)'
wait_for ns_exec "$S" sh -c "ss -Hltn 'sport = :7003' | grep -q ." || fail "servers did not start"

# tcp PORT [TIMEOUT]: one connection from H; prints ok or an error name.
tcp() {
	ns_exec "$H" python3 -c '
import socket, sys
try:
    s = socket.create_connection(("198.18.1.2", int(sys.argv[1])), timeout=float(sys.argv[2]))
    print(s.recv(10).decode().strip())
except Exception as e:
    print(type(e).__name__)' "$1" "${2:-3}"
}
flow_field() { # flow_field PORT FIELD: of the newest flow to that port
	ctl_json flows | python3 -c '
import json, sys
f = [f for f in json.load(sys.stdin)["flows"] if f["remote"].endswith(":" + sys.argv[1])]
print(f[0].get(sys.argv[2], "") if f else "")' "$1" "$2"
}
pending_id() { # the id of a pending or paused flow to PORT
	ctl_json flows --pending | python3 -c '
import json, sys
f = [f for f in json.load(sys.stdin)["flows"] if f["remote"].endswith(":" + sys.argv[1])]
print(f[0]["id"] if f else "")' "$1"
}
config() { # config NAME ORDER POLICY OPTIONS...
	local name=$1 order=$2 policy=$3
	shift 3
	local opts=()
	for o in "$@"; do opts+=(--option "$o"); done
	ctl config add "$name" --extension com.example.testfilter --provider filter-data \
		--"$policy" --option order="$order" "${opts[@]}" >/dev/null || fail "config add $name"
	ctl start "$name" >/dev/null || { tail -20 "$D_LOG"; fail "start $name"; }
}
unconfig() { ctl stop "$1" >/dev/null; ctl config remove "$1" >/dev/null; }

daemon_start "$H"
ctl dev register com.example.testfilter "$NETEXT_TESTFILTER" >/dev/null || fail "register"

# 1. pause; a person allows it with netextctl, the connection completes.
config p 10 fail-closed default=allow ask_port=7000 verdict=pause
tcp 7000 8 > "$T/c1" &
c1=$!
WAIT_TRIES=50 wait_for sh -c "[ -n \"\$(NETEXT_SOCKET=$D_SOCK $NETEXTCTL --json flows --pending | grep 7000)\" ]" || fail "no pending flow"
id=$(pending_id 7000)
[ "$(flow_field 7000 state)" = paused ] || fail "flow not paused: $(flow_field 7000 state)"
ctl flows allow "$id" >/dev/null || fail "flows allow $id"
wait $c1
[ "$(cat "$T/c1")" = ok ] || fail "paused connection did not complete after allow: $(cat "$T/c1")"
# The provider hears of it: a RESOLVED report, logged by the test extension.
wait_for grep -q "report resolved $id allow .*netextctl (uid 0)" "$D_LOG" || fail "provider got no RESOLVED report"
[ -z "$(pending_id 7000)" ] || fail "flow still pending after allow"

# 2. pause; a person drops it.
tcp 7000 3 > "$T/c2" &
c2=$!
WAIT_TRIES=50 wait_for sh -c "[ -n \"\$(NETEXT_SOCKET=$D_SOCK $NETEXTCTL --json flows --pending | grep 7000)\" ]" || fail "no pending flow (2)"
ctl flows drop "$(pending_id 7000)" >/dev/null || fail "flows drop"
wait $c2
[ "$(cat "$T/c2")" != ok ] || fail "dropped connection completed"
ctl flows allow 999999999 >/dev/null 2>&1; [ $? -eq 5 ] || fail "deciding an unknown flow is not 'not found'"

# 3. the provider resumes (an app asking a person over app messages).
tcp 7000 8 > "$T/c3" &
c3=$!
WAIT_TRIES=50 wait_for sh -c "NETEXT_SOCKET=$D_SOCK $NETEXTCTL message p pending | grep -q ." || fail "provider has nothing pending"
id=$(ctl message p pending | head -1)
ctl message p "allow $id" | gq ok || fail "provider could not resume $id"
wait $c3
[ "$(cat "$T/c3")" = ok ] || fail "connection resumed by the provider did not complete"

# 4. UDP pause limit: dropped after 10 s.
ns_exec "$H" python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("198.18.1.1", 6100))
s.sendto(b"x", ("198.18.1.2", 7000))' # udp to a paused port (ask_port=7000)
WAIT_TRIES=20 wait_for sh -c "NETEXT_SOCKET=$D_SOCK $NETEXTCTL --json flows --pending | grep -q udp" || fail "UDP flow not paused"
sleep 10.5
ctl_json flows | python3 -c '
import json, sys
f = [f for f in json.load(sys.stdin)["flows"] if f["protocol"] == "udp" and f["remote"].endswith(":7000")]
assert f and f[0]["state"] == "dropped" and "udp-pause-limit" in f[0]["decided_by"], f
' || fail "UDP flow not dropped at the pause limit"
unconfig p

# 5. two filters: a allows everything (order 10), b drops port 7001 (order 20).
config a 10 fail-closed default=allow
config b 20 fail-closed default=allow ask_port=7001 verdict=drop
[ "$(tcp 7002)" = ok ] || fail "two filters: port 7002 blocked"
[ "$(tcp 7001 2)" != ok ] || fail "two filters: b's drop did not win"
case "$(flow_field 7001 decided_by)" in b:*) ;; *) fail "drop not attributed to b: $(flow_field 7001 decided_by)" ;; esac
ctl_json filter | python3 -c '
import json, sys
names = [c["configuration"] for c in json.load(sys.stdin)["filters"]]
assert names == ["a", "b"], names' || fail "filters not in order"
unconfig a
unconfig b

# 6. verdict deadline: a provider that never answers gets its configuration's policy.
config slow 10 fail-closed default=ask verdict=never verdict_timeout_ms=300
[ "$(tcp 7002 3)" != ok ] || fail "fail-closed deadline let the flow through"
case "$(flow_field 7002 decided_by)" in *verdict-deadline*) ;; *) fail "not decided by the deadline: $(flow_field 7002 decided_by)" ;; esac
unconfig slow
config slow2 10 fail-open default=ask verdict=never verdict_timeout_ms=300
[ "$(tcp 7002 3)" = ok ] || fail "fail-open deadline did not let the flow through"
unconfig slow2

# 7. kill -9 under load, each policy: every flow ends (none stuck), the policy holds while
#    the extension is away, and flows are asked again once it is back.
for policy in fail-closed fail-open; do
	config k 10 "$policy" default=ask verdict=allow verdict_timeout_ms=300
	# A hung extension (stopped): new flows get the policy within the deadline.
	pid=$(ext_pid com.example.testfilter)
	kill -STOP "$pid"
	r=$(tcp 7003 0.9)
	if [ "$policy" = fail-closed ]; then
		[ "$r" != ok ] || fail "fail-closed: a flow passed while the extension was hung"
	else
		[ "$r" = ok ] || fail "fail-open: a flow was blocked while the extension was hung ($r)"
	fi
	kill -KILL "$pid"
	WAIT_TRIES=100 WAIT_DELAY=0.05 wait_for sh -c "[ \"\$(NETEXT_SOCKET=$D_SOCK $NETEXTCTL --json filter | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"filters\"][0][\"running\"])')\" = True ]" \
		|| fail "$policy: provider not back after kill -9 of the hung extension"
	[ "$(tcp 7003)" = ok ] || fail "$policy: no recovery after the hung extension was replaced"
	( for _ in $(seq 60); do tcp 7003 2; done ) > "$T/load.$policy" &
	load=$!
	sleep 0.5
	pid=$(ext_pid com.example.testfilter)
	kill -9 "$pid"
	wait $load
	WAIT_TRIES=100 WAIT_DELAY=0.05 wait_for sh -c "[ \"\$(NETEXT_SOCKET=$D_SOCK $NETEXTCTL --json filter | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"filters\"][0][\"running\"])')\" = True ]" \
		|| fail "$policy: provider not back after kill -9"
	[ "$(ctl_json filter | python3 -c 'import json,sys; print(json.load(sys.stdin)["waiting"])')" = 0 ] || fail "$policy: flows left waiting"
	[ -z "$(ctl_json flows --pending | grep remote)" ] || fail "$policy: pending flows after the kill"
	oks=$(grep -c '^ok$' "$T/load.$policy")
	echo "$policy: $oks of 60 connections completed across kill -9 (informational)"
	[ "$(tcp 7003)" = ok ] || fail "$policy: no recovery after the extension came back"
	grep -q "filter k: provider gone" "$D_LOG" || fail "$policy: provider loss not logged"
	unconfig k
done

# 8. a daemon killed with -9 leaves its table; the next one replaces it and filters again.
config z 10 fail-open default=ask verdict=allow
daemon_kill9
ns_exec "$H" nft list tables | gq "inet netext" || fail "expected the stale table after kill -9"
[ "$(tcp 7002)" = ok ] || fail "fail-open configuration: traffic blocked while netextd is dead (bypass)"
daemon_start "$H"
grep -q "removing stale table" "$D_LOG" || fail "stale table not noticed"
WAIT_TRIES=100 WAIT_DELAY=0.05 wait_for sh -c "NETEXT_SOCKET=$D_SOCK $NETEXTCTL --json filter | grep -q '\"running\": true'" || fail "filter not running after restart"
[ "$(tcp 7002)" = ok ] || fail "no traffic after the restart"
daemon_stop
if ns_exec "$H" nft list tables | gq netext; then fail "table left after stop"; fi
echo "filter policy: ok"

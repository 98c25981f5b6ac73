#!/usr/bin/env bash
# The example filter extensions, registered in developer mode, against real traffic:
#   simplefirewall: an inbound TCP connection to the guarded port waits paused; it completes
#     only after `flows allow` (or the app message "allow ID") and fails after `flows drop`;
#     the provider lists it ("pending") and forgets it once decided; other ports pass.
#   appfirewall: rules from a rule file drop by executable, by hostname and by uid, allow by
#     executable+hostname; unmatched flows are asked and logged; rules added and removed at
#     run time by app messages; the flows' state, process, user and hostname in --json flows.
# H holds the daemon and the clients, S a DNS server (dnsmasq) and a web server.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/lib/daemon.sh"
: "${NETEXT_SIMPLEFIREWALL:?}" "${NETEXT_APPFIREWALL:?}"
for tool in curl dnsmasq python3 nft; do
	command -v "$tool" >/dev/null || skip "needs $tool"
done

# The system's python3 for clients: nobody must be able to run it (not a pyenv under /root).
[ -x /usr/bin/python3 ] || skip "needs /usr/bin/python3"
PY=$(readlink -f /usr/bin/python3)

H=$(ns_add h) || fail "ns h"
S=$(ns_add s) || fail "ns s"
ns_link "$H" "$S" 1
vs=$(ip -n "$S" -o link show type veth | awk -F': ' '{print $2}' | cut -d@ -f1)
# The DNS server has an address of its own (.2): a hostname rule matches addresses, so a
# name on the server's address would catch the DNS queries too.
for a in 3 4 5; do
	ip -n "$S" addr add 198.18.1.$a/24 dev "$vs" || fail "addr .$a"
done
T=$NS_TMPDIR
chmod 755 "$T" # the extensions run as nobody and read the rule file here

# --- S: DNS and web ---------------------------------------------------------------------------
cat > "$T/hosts" <<EOF
198.18.1.3 web.test
198.18.1.4 blocked.test
198.18.1.5 other.test
EOF
ns_spawn "$S" dnsmasq --no-daemon --no-resolv --no-hosts --addn-hosts="$T/hosts" \
	--listen-address=198.18.1.2 --bind-interfaces --port=53 --log-facility=- -q 2>"$T/dnsmasq.log"
mkdir "$T/www" && echo "web ok" > "$T/www/index.html"
ns_spawn "$S" python3 -m http.server 8080 --bind 0.0.0.0 --directory "$T/www" >/dev/null 2>&1
wait_for ns_exec "$S" sh -c "ss -Hltn 'sport = :8080' | grep -q ." || fail "web server did not start"
echo "nameserver 198.18.1.2" > "$T/resolv.conf"

# client [--nobody] CMD...: in H, with S's resolver (a private mount namespace).
client() {
	local who=root
	[ "$1" = --nobody ] && { who=nobody; shift; }
	nsenter --net=/run/netns/"$H" unshare -m sh -c '
		mount --bind "$1" /etc/resolv.conf || exit 90
		[ "$2" = root ] && shift 2 && exec "$@"
		shift 2
		exec setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"' sh "$T/resolv.conf" "$who" "$@"
}
# get URL [CURL]: prints the page, or "failed".
get() { client "${2:-curl}" -sS --max-time 3 --connect-timeout 2 "$1" 2>/dev/null || echo failed; }
# pyget [--nobody] HOST: the same with python3 (another executable), by name.
pyget() {
	local opt=()
	[ "$1" = --nobody ] && { opt=(--nobody); shift; }
	client "${opt[@]}" "$PY" -c '
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], 8080), timeout=2)
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    reply = b""
    while chunk := s.recv(4096):
        reply += chunk
    print(reply.decode().split("\r\n\r\n", 1)[1].strip())
except Exception as e:
    print("failed")' "$1"
}
# flow_check REMOTE PYTHON-ASSERTIONS: on f, the newest TCP flow to REMOTE (its id: $T/flow_id).
flow_check() {
	ctl_json flows > "$T/flows.json"
	python3 - "$T/flows.json" "$1" "$2" "$T/flow_id" <<'EOF' || { cat "$T/flows.json"; fail "flow to $1: $2"; }
import json, sys
flows = [f for f in json.load(open(sys.argv[1]))["flows"] if f["remote"] == sys.argv[2]
         and f["protocol"] == "tcp"]
assert flows, "no flow"
f = flows[0]
p = f["process"]
exe = p.get("executable", "")
assert eval(sys.argv[3]), (sys.argv[3], f)
open(sys.argv[4], "w").write("%d\n" % f["id"])
print("ok:", f["id"], f["state"], f["decided_by"], exe, f.get("uid"), f.get("hostname"))
EOF
}

daemon_start "$H"
ctl dev register com.example.simplefirewall "$NETEXT_SIMPLEFIREWALL" >/dev/null || fail "register sfw"
ctl dev register com.example.appfirewall "$NETEXT_APPFIREWALL" >/dev/null || fail "register afw"

# === simplefirewall ===========================================================================
ctl config add sfw --extension com.example.simplefirewall --provider filter-data --fail-closed \
	--option port=8888 >/dev/null || fail "config add sfw"
ctl start sfw >/dev/null || { tail -20 "$D_LOG"; fail "start sfw"; }
grep -q "guarding inbound TCP port 8888" "$D_LOG" || fail "sfw did not log its port"

# A listener in H on 8888 and 8889 (not guarded).
ns_spawn "$H" python3 -c '
import socket, threading
def serve(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(16)
    while True:
        c, _ = s.accept(); c.sendall(b"hello from %d\n" % port); c.close()
threading.Thread(target=serve, args=(8889,), daemon=True).start()
serve(8888)'
wait_for ns_exec "$H" sh -c "ss -Hltn 'sport = :8888' | grep -q ." || fail "listener"
# connect PORT TIMEOUT: from S; prints the greeting or an error name.
connect() {
	ns_exec "$S" python3 -c '
import socket, sys
try:
    s = socket.create_connection(("198.18.1.1", int(sys.argv[1])), timeout=float(sys.argv[2]))
    print(s.recv(64).decode().strip())
except Exception as e:
    print(type(e).__name__)' "$1" "$2"
}
paused_id() {
	ctl_json flows --pending | python3 -c '
import json, sys
f = [f for f in json.load(sys.stdin)["flows"] if f["local"].endswith(":8888") and f["state"] == "paused"]
print(f[0]["id"] if f else "")'
}
wait_paused() { WAIT_TRIES=80 wait_for sh -c "NETEXT_SOCKET=$D_SOCK $NETEXTCTL --json flows --pending | grep -q ':8888'"; }

[ "$(connect 8889 3)" = "hello from 8889" ] || fail "unguarded port 8889 did not pass"

# 1. paused; the connection waits; `flows allow` lets it complete.
connect 8888 10 > "$T/c1" &
c1=$!
wait_paused || fail "no paused flow to 8888"
id=$(paused_id)
[ -n "$id" ] || fail "no paused id"
sleep 0.5
kill -0 $c1 2>/dev/null || fail "the paused connection finished before a decision: $(cat "$T/c1")"
ctl message sfw pending | grep -Eq "^$id tcp in .*:8888 .*python3.*\[[0-9]+\] uid 0" \
	|| { ctl message sfw pending; fail "sfw pending does not list flow $id"; }
grep -q "paused flow $id: tcp in" "$D_LOG" || fail "sfw did not log the paused flow"
ctl flows allow "$id" >/dev/null || fail "flows allow $id"
wait $c1
[ "$(cat "$T/c1")" = "hello from 8888" ] || fail "allowed connection did not complete: $(cat "$T/c1")"
wait_for grep -q "flow $id allowed by netextctl" "$D_LOG" || fail "sfw got no RESOLVED report"
[ -z "$(ctl message sfw pending)" ] || fail "sfw still lists flow $id after the decision"

# 2. paused; `flows drop`: the connection fails.
connect 8888 4 > "$T/c2" &
c2=$!
wait_paused || fail "no paused flow (2)"
id=$(paused_id)
ctl flows drop "$id" >/dev/null || fail "flows drop $id"
wait $c2
[ "$(cat "$T/c2")" != "hello from 8888" ] || fail "dropped connection completed"
[ "$(ctl_json flows | python3 -c "
import json, sys
print([f['state'] for f in json.load(sys.stdin)['flows'] if f['id'] == $id][0])")" = dropped ] \
	|| fail "flow $id not dropped"

# 3. the app's answer over an app message.
connect 8888 10 > "$T/c3" &
c3=$!
wait_paused || fail "no paused flow (3)"
id=$(paused_id)
[ "$(ctl message sfw "allow $id")" = ok ] || fail "sfw allow $id"
wait $c3
[ "$(cat "$T/c3")" = "hello from 8888" ] || fail "connection allowed by the app did not complete"
ctl message sfw "allow $id" | gq "^error: no paused flow" || fail "deciding twice not refused"
ctl stop sfw >/dev/null
ctl config remove sfw >/dev/null

# === appfirewall ==============================================================================
CURL=$(readlink -f "$(command -v curl)")
mkdir "$T/bin" && cp "$CURL" "$T/bin/badcurl" && chmod 755 "$T/bin/badcurl"
cat > "$T/rules.conf" <<EOF
# test rules
default=ask
drop exe=$T/bin/badcurl
drop host=blocked.test   # anyone
drop uid=65534 host=other.test
allow exe=$CURL host=WEB.test
EOF
chmod 644 "$T/rules.conf"
ctl config add afw --extension com.example.appfirewall --provider filter-data --fail-closed \
	--option rules="$T/rules.conf" --option unknown=allow >/dev/null || fail "config add afw"
ctl start afw >/dev/null || { tail -20 "$D_LOG"; fail "start afw"; }
grep -q "afw: 4 rules from $T/rules.conf, default ask, unknown=allow" "$D_LOG" || fail "afw start not logged"

# 1. by executable: a copy of curl named badcurl, by address (no DNS).
[ "$(get http://198.18.1.3:8080/ "$T/bin/badcurl")" = failed ] || fail "badcurl was not dropped"
flow_check 198.18.1.3:8080 "f['state'] == 'dropped' and f['decided_by'] == 'afw: rule 1' and exe == '$T/bin/badcurl'"
# 2. by hostname: curl to blocked.test.
[ "$(get http://blocked.test:8080/)" = failed ] || fail "blocked.test was not dropped"
flow_check 198.18.1.4:8080 "f['state'] == 'dropped' and f['decided_by'] == 'afw: rule 2' and f['hostname'] == 'blocked.test' and exe == '$CURL'"
# 3. allowed by rule: curl to web.test (the rule's host was written in upper case).
[ "$(get http://web.test:8080/)" = "web ok" ] || fail "curl to web.test failed"
# The last allow names its rule; the rule decided without asking the provider, which
# therefore never logs it.
flow_check 198.18.1.3:8080 "f['state'] == 'allowed' and f['decided_by'].startswith('afw: rule ') and f['hostname'] == 'web.test' and exe == '$CURL' and f['uid'] == 0"
id=$(cat "$T/flow_id")
! grep -Eq "flow $id (allow|drop|paused): " "$D_LOG" || fail "the provider was asked about flow $id, which a rule allows"
# 4. by uid: python3 as nobody to other.test; as root it is asked, allowed and logged.
[ "$(pyget --nobody other.test)" = failed ] || fail "nobody to other.test was not dropped"
flow_check 198.18.1.5:8080 "f['state'] == 'dropped' and f['decided_by'] == 'afw: rule 3' and f['uid'] == 65534"
[ "$(pyget other.test)" = "web ok" ] || { ctl flows; fail "root to other.test failed"; }
flow_check 198.18.1.5:8080 "f['state'] == 'allowed' and f['uid'] == 0 and exe == '$PY' and f['hostname'] == 'other.test'"
wait_for grep -Eq "flow [0-9]+ allow: $PY\[[0-9]+\] uid 0 -> other.test \(198.18.1.5:8080 tcp out\), no rule, unknown=allow" "$D_LOG" \
	|| { grep appfirewall "$D_LOG" | tail; fail "afw did not log the unmatched flow"; }

# 5. rules at run time: add a drop before the file's rules, list, remove.
[ "$(ctl message afw "add drop exe=$CURL host=web.test port=8080")" = "ok: rule 1" ] || fail "add"
[ "$(get http://web.test:8080/)" = failed ] || fail "the added rule did not drop"
flow_check 198.18.1.3:8080 "f['state'] == 'dropped' and f['decided_by'] == 'afw: rule 1'"
ctl message afw list > "$T/list"
grep -q "^default=ask unknown=allow rules=$T/rules.conf$" "$T/list" || { cat "$T/list"; fail "list header"; }
grep -q "^1 runtime drop exe=$CURL host=web.test port=8080$" "$T/list" || { cat "$T/list"; fail "list: run-time rule"; }
grep -q "^5 file    allow exe=$CURL host=web.test$" "$T/list" || { cat "$T/list"; fail "list: file rule"; }
ctl message afw "remove 2" | gq "^error: .*not a run-time rule" || fail "a file rule was removable"
ctl message afw "add drop exe=relative" | gq "^error: exe must be an absolute path" || fail "bad rule accepted"
ctl message afw "add allow" | gq "^error: a rule needs" || fail "empty rule accepted"
[ "$(ctl message afw "remove 1")" = ok ] || fail "remove 1"
[ "$(get http://web.test:8080/)" = "web ok" ] || fail "curl to web.test failed after remove"
[ "$(ctl message afw list | wc -l)" = 5 ] || fail "list after remove"

# 6. a bad rule file fails the start with the line.
echo "drop colour=blue" > "$T/bad.conf"
chmod 644 "$T/bad.conf"
ctl config add afw2 --extension com.example.appfirewall --provider filter-data --fail-open \
	--option rules="$T/bad.conf" >/dev/null || fail "config add afw2"
out=$(ctl start afw2 2>&1) && fail "started with a bad rule file"
echo "$out" | gq "bad.conf:1: unknown match 'colour'" || fail "start error does not name the line: $out"

# 7. the sample rule file of the example parses.
cp "$here/../examples/appfirewall/rules.conf" "$T/sample.conf" && chmod 644 "$T/sample.conf"
ctl config add afw3 --extension com.example.appfirewall --provider filter-data --fail-open \
	--option rules="$T/sample.conf" >/dev/null || fail "config add afw3"
ctl start afw3 >/dev/null || { tail -5 "$D_LOG"; fail "the sample rules.conf does not load"; }
ctl message afw3 list | gq "^6 file    drop exe=/usr/bin/curl$" || { ctl message afw3 list; fail "sample rules"; }
ctl stop afw3 >/dev/null

ctl stop afw >/dev/null
daemon_stop
echo "examples filter: ok"

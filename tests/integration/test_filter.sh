#!/usr/bin/env bash
# Content filter, attribution and rules: the real daemon and a real filter extension in a
# namespace H, a DNS server (dnsmasq) and a web server in a namespace S. curl runs as user
# nobody in a cgroup of the test's own, resolves names through S's DNS server and connects;
# the flows carry the right executable, uid, cgroup and hostname, and a hostname rule drops.
# Also IPv6, inbound flows (the listening process) and UDP.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/lib/daemon.sh"
: "${NETEXT_TESTFILTER:?}"
for tool in curl dnsmasq python3 nft; do
	command -v "$tool" >/dev/null || skip "needs $tool"
done

H=$(ns_add h) || fail "ns h"
S=$(ns_add s) || fail "ns s"
ns_link "$H" "$S" 1
ip -n "$S" addr add 198.18.1.3/24 dev "$(ip -n "$S" -o link show type veth | awk -F': ' '{print $2}' | cut -d@ -f1)"
T=$NS_TMPDIR

# --- S: DNS and web ---------------------------------------------------------------------
cat > "$T/hosts" <<EOF
198.18.1.2 web.test
fd00:198:18:1::2 web.test
198.18.1.3 blocked.test
EOF
ns_spawn "$S" dnsmasq --no-daemon --no-resolv --no-hosts --addn-hosts="$T/hosts" \
	--listen-address=198.18.1.2 --bind-interfaces --port=53 --log-facility=- -q 2>"$T/dnsmasq.log"
ns_spawn "$S" python3 -m http.server 8080 --bind :: --directory "$T" >/dev/null 2>&1
wait_for ns_exec "$S" sh -c "ss -Hltn 'sport = :8080' | grep -q ." || fail "web server did not start"
echo "nameserver 198.18.1.2" > "$T/resolv.conf"

# --- the client: curl as nobody, in a cgroup of ours, with S's DNS server -------------------
CG_MNT=$(awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo)
[ -n "$CG_MNT" ] || skip "no cgroup2 mount"
CG=netext-filter-client-$$
mkdir "$CG_MNT/$CG" || fail "mkdir cgroup"
cleanup_cg() { rmdir "$CG_MNT/$CG" 2>/dev/null; }
trap "cleanup_cg; daemon_cleanup; ns_cleanup" EXIT
# The cgroup as /proc/PID/cgroup names it (relative to the cgroup2 root).
CG_SEEN=/$CG
client() { # client ARGS...: run in H, as nobody, in $CG, with S's resolver
	nsenter --net=/run/netns/"$H" unshare -m sh -c '
		mount --bind "$1" /etc/resolv.conf || exit 90
		echo $$ > "$2/cgroup.procs" || exit 91
		shift 2
		exec setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"' sh "$T/resolv.conf" "$CG_MNT/$CG" "$@"
}

# --- the daemon and the filter ----------------------------------------------------------
daemon_start "$H"
ctl dev register com.example.testfilter "$NETEXT_TESTFILTER" >/dev/null || fail "register"
ctl config add f1 --extension com.example.testfilter --provider filter-data --fail-closed \
	--option default=ask --option verdict=allow --option drop_host=blocked.test >/dev/null || fail "config add"
ctl start f1 >/dev/null || { cat "$D_LOG"; fail "start f1"; }
ns_exec "$H" nft list chains | grep "chain filter_out" >/dev/null || { ns_exec "$H" nft list chains; tail -20 "$D_LOG"; fail "no filter chains in table inet netext"; }

# 1. curl by name: allowed, and the flow says who and where.
client curl -sS -o /dev/null --max-time 5 http://web.test:8080/ || { tail -30 "$D_LOG"; fail "curl web.test failed through the filter"; }
flows=$(ctl_json flows)
echo "$flows" > "$T/flows.json"
python3 - "$T/flows.json" "$CG_SEEN" <<'EOF' || { cat "$T/flows.json"; fail "flow metadata wrong"; }
import json, sys
flows = json.load(open(sys.argv[1]))["flows"]
cg = sys.argv[2]
# curl may pick either address of web.test
f = [f for f in flows if f["remote"] in ("198.18.1.2:8080", "[fd00:198:18:1::2]:8080")
     and f["direction"] == "outbound"]
assert f, "no flow to web.test:8080"
f = f[0]
p = f["process"]
assert p.get("executable", "").endswith("/curl"), p
assert f.get("uid") == 65534, f
assert p.get("cgroup", "").endswith(cg), (p, cg)
assert f.get("hostname") == "web.test", f
assert f["state"] == "allowed", f
assert "curl" in p.get("command_line", ""), p
print("flow ok:", f["id"], p["executable"], f["uid"], p["cgroup"], f["hostname"])
EOF
grep -Eq "flow .*web.test=(198.18.1.2|\[fd00:198:18:1::2\]):8080 .*curl" "$D_LOG" || { grep "testfilter\|flow" "$D_LOG" | tail; fail "the provider did not see the flow with its hostname"; }

# 2. a hostname rule drops, decided by the daemon without asking the provider.
if client curl -sS -o /dev/null --connect-timeout 2 http://blocked.test:8080/ 2>/dev/null; then
	fail "curl blocked.test went through a drop rule"
fi
ctl_json flows | python3 -c '
import json, sys
f = [f for f in json.load(sys.stdin)["flows"] if f["remote"] == "198.18.1.3:8080"]
assert f and all(x["state"] == "dropped" for x in f), f
assert f[0].get("hostname") == "blocked.test", f[0]
assert "rule 1" in f[0]["decided_by"], f[0]
' || fail "blocked flow not dropped by rule 1"
client curl -sS -o /dev/null --max-time 5 http://web.test:8080/ || fail "web.test stopped working"

# 3. netextctl flows --follow shows flows live, with process and hostname.
NETEXT_SOCKET=$D_SOCK "$NETEXTCTL" flows --follow > "$T/follow.out" 2>&1 &
follower=$!
ns_track_pid "$follower"
sleep 0.3
client curl -sS -o /dev/null --max-time 5 http://web.test:8080/ || fail "curl with a follower"
wait_for grep -Eq "^decided .* web.test=.*:8080 +allowed .*curl\[[0-9]+\] uid 65534" "$T/follow.out" \
	|| { cat "$T/follow.out"; fail "flows --follow did not show the curl flow"; }
kill "$follower"

# 3b. IPv6.
client curl -sS -o /dev/null --max-time 5 "http://[fd00:198:18:1::2]:8080/" || fail "curl over IPv6 failed"
ctl_json flows | python3 -c '
import json, sys
f = [f for f in json.load(sys.stdin)["flows"] if f["remote"] == "[fd00:198:18:1::2]:8080"]
assert f and f[0]["family"] == 6 and f[0]["state"] == "allowed", f
assert f[0]["process"].get("executable", "").endswith("/curl"), f[0]
' || fail "IPv6 flow not attributed"

# 4. inbound: the listening process is named.
ns_spawn "$H" python3 -c '
import socket
s = socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::", 5555)); s.listen()
while True:
    c, _ = s.accept(); c.sendall(b"hi\n"); c.close()'
wait_for ns_exec "$H" sh -c "ss -Hltn 'sport = :5555' | grep -q ." || fail "listener"
out=$(ns_exec "$S" python3 -c '
import socket
s = socket.create_connection(("198.18.1.1", 5555), timeout=5); print(s.recv(10).decode().strip())')
[ "$out" = hi ] || fail "inbound connection failed: $out"
ctl_json flows | python3 -c '
import json, sys
f = [f for f in json.load(sys.stdin)["flows"] if f["direction"] == "inbound" and f["local"].endswith(":5555")]
assert f, "no inbound flow"
assert "python3" in f[0]["process"].get("executable", ""), f[0]
assert f[0]["remote"].startswith("198.18.1.2:"), f[0]
' || fail "inbound flow not attributed to the listener"

# 5. UDP from a named program.
ns_spawn "$S" python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("198.18.1.2", 6000))
while True:
    d, a = s.recvfrom(100); s.sendto(d, a)'
wait_for ns_exec "$S" sh -c "ss -Hlun 'sport = :6000' | grep -q ." || fail "UDP server did not start"
out=$(client /usr/bin/python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5)
s.sendto(b"ping", ("198.18.1.2", 6000)); print(s.recv(10).decode())')
[ "$out" = ping ] || fail "UDP echo failed: $out"
ctl_json flows | python3 -c '
import json, sys
f = [f for f in json.load(sys.stdin)["flows"] if f["protocol"] == "udp" and f["remote"] == "198.18.1.2:6000"]
assert f and f[0]["state"] == "allowed" and f[0].get("uid") == 65534, f
assert f[0]["process"].get("executable", "").endswith("python3.11") or "python" in f[0]["process"].get("executable", ""), f[0]
' || fail "UDP flow not attributed"

# 6. the table goes away with the daemon.
daemon_stop
if ns_exec "$H" nft list tables | gq netext; then fail "table left after stop"; fi
echo "filter: ok"

#!/usr/bin/env bash
# netext demo: a private netextd in a network namespace of its own; the example extension
# packed as a signed bundle, activated, replaced by a new version and approved; sandboxed
# as 'nobody'; the provider lifecycle: start, an app message round trip, crash and restart,
# stop. Then the content filter with the two filter examples, against traffic from a second
# namespace (a veth pair, 198.18.2.0/24): simplefirewall pauses an inbound connection until
# someone allows it; appfirewall drops curl to one hostname and lets the rest through. Then
# the DNS proxy with the two DNS examples: splitdns sends a company's names to the company's
# resolver and the rest to the system's; dnsblock answers NXDOMAIN, then a sinkhole address,
# for 100,000 listed domains. Then the packet filter with the two packet examples: rewriter
# turns "hello" into "HELLO, WORLD" inside a TCP stream (IPv4 and IPv6, the receiver checks
# the whole stream), shaper adds 100 ms to one direction of a flow. Then a packet tunnel:
# the WireGuard example (wgtunnel) under netextd connects to wireguard-go in the second
# namespace; ping and an HTTP fetch go through the tunnel, and stopping it removes its device,
# routes and rules. Everything is removed on exit or Ctrl-C.
# Usage: demo/demo.sh [BUILD_DIR]   (run as root; `make demo` does the build first)
set -euo pipefail

build=${1:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
netextd=$top/$build/src/daemon/netextd
netextctl_bin=$top/$build/src/ctl/netextctl
hello=$top/$build/examples/netext-hello
sfw=$top/$build/examples/netext-simplefirewall
afw=$top/$build/examples/netext-appfirewall
sdns=$top/$build/examples/netext-splitdns
dblock=$top/$build/examples/netext-dnsblock
rewriter=$top/$build/examples/netext-rewriter
shaper=$top/$build/examples/netext-shaper
wgtunnel=$top/$build/examples/netext-wgtunnel

[ "$(id -u)" -eq 0 ] || { echo "demo: run as root (it creates a network namespace)" >&2; exit 1; }
for f in "$netextd" "$netextctl_bin" "$hello" "$sfw" "$afw" "$sdns" "$dblock" "$rewriter" "$shaper" "$wgtunnel"; do
	[ -x "$f" ] || { echo "demo: $f missing; run 'make demo'" >&2; exit 1; }
done
for tool in curl dnsmasq python3 nsenter unshare ping wireguard-go wg; do
	command -v "$tool" >/dev/null || { echo "demo: needs $tool (scripts/deps.sh installs it)" >&2; exit 1; }
done

ns=netext-demo-$$
srv=netext-demo-srv-$$
dir=$(mktemp -d /tmp/netext-demo.XXXXXX)
chmod 755 "$dir"
cg=netext-demo-$$
dpid=
bgpids=() # servers in the namespaces, clients in the background

cleanup() {
	set +e
	for p in "${bgpids[@]}"; do kill "$p" 2>/dev/null; done
	if [ -n "$dpid" ] && kill -0 "$dpid" 2>/dev/null; then
		kill -TERM "$dpid"
		for _ in $(seq 50); do kill -0 "$dpid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$dpid" 2>/dev/null
	fi
	ip netns del "$ns" 2>/dev/null
	ip netns del "$srv" 2>/dev/null
	rm -rf "$dir"
	echo
	echo "demo: cleaned up (namespaces $ns and $srv, state dir $dir, cgroup $cg)"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
ctl() { NETEXT_SOCKET=$dir/run/netextd.sock "$netextctl_bin" "$@"; }
netextctl() { printf '$ netextctl %s\n' "$*"; ctl "$@"; }
ext_pid() { ctl --json list | sed -n 's/.*"pid": \([0-9]*\).*/\1/p' | head -1; }
# Waits until the extension runs with a pid other than $1.
wait_running() {
	for _ in $(seq 200); do
		if ctl --json list | grep -q '"state": "running"' && [ "$(ext_pid)" != "${1:-0}" ]; then
			return 0
		fi
		sleep 0.01
	done
	return 1
}

say "A network namespace of our own, and a private netextd in it"
echo "\$ ip netns add $ns"
ip netns add "$ns"
ip -n "$ns" link set lo up
cat > "$dir/netextd.conf" <<CONF
extension_user = nobody
heartbeat_interval_ms = 500
heartbeat_timeout_ms = 3000
[dns]
# The "system resolver" of the namespace: the DNS server of the second namespace (below).
default = 198.18.2.2
CONF
mkdir -p "$dir/policy.d" "$dir/keys"
nsenter --net=/run/netns/"$ns" "$netextd" --config "$dir/netextd.conf" \
	--state-dir "$dir/state" --run-dir "$dir/run" --cgroup "$cg" --policy-dir "$dir/policy.d" \
	> "$dir/netextd.log" 2>&1 &
dpid=$!
for _ in $(seq 100); do [ -S "$dir/run/netextd.sock" ] && break; sleep 0.05; done
netextctl status
echo "-- its nftables table, inside the namespace only:"
nsenter --net=/run/netns/"$ns" nft list table inet netext | sed -n 1,4p

# bundle DIR VERSION SHORT: the hello example packed as a bundle (docs/lifecycle.md)
bundle() {
	mkdir -p "$1/bin"
	cp "$hello" "$1/bin/netext-hello"
	sed -e "s/^Version = .*/Version = $2/" -e "s/^ShortVersion = .*/ShortVersion = $3/" \
		"$top/examples/hello/extension.conf" > "$1/extension.conf"
	chmod -R a+rX "$1"
}

say "The vendor: a team key, the example packed as a bundle, signed"
netextctl keygen --team EXAMPLE --output "$dir/keys/EXAMPLE.key"
bundle "$dir/hello-1.netext" 1 1.0.0
netextctl sign "$dir/hello-1.netext" --key "$dir/keys/EXAMPLE.key"
netextctl verify "$dir/hello-1.netext"

say "The administrator trusts the team with a policy drop-in, then activates the bundle"
printf '[Team EXAMPLE]\nKey = %s\nApprove = no\n' "$(sed -n 's/^key: //p' "$dir/keys/EXAMPLE.key.pub")" \
	> "$dir/policy.d/50-example.conf"
cat "$dir/policy.d/50-example.conf"
netextctl activate "$dir/hello-1.netext"
wait_running
netextctl list

say "A configuration for its 'message' provider, with options, then start it"
netextctl config add demo --extension com.example.hello --provider message \
	--option greeting=Bonjour --option allow-faults=1 --fail-closed
netextctl start demo
netextctl configs

say "App messages: a round trip through netextd to the provider and back"
netextctl message demo ping
netextctl message demo world
echo "-- the provider reports its own sandbox:"
netextctl message demo whoami

say "Crash: the provider aborts; netextd restarts the extension and its provider"
old=$(ext_pid)
netextctl message demo crash || true
t0=$(date +%s%N)
wait_running "$old"
t1=$(date +%s%N)
echo "restarted as pid $(ext_pid) (was $old), seen running $(( (t1 - t0) / 1000000 )) ms later"
for _ in $(seq 100); do ctl message demo ping >/dev/null 2>&1 && break; sleep 0.05; done
netextctl message demo ping
netextctl list

say "Version 2 of the bundle: the old provider stops with 'app-update', the configuration carries over"
bundle "$dir/hello-2.netext" 2 1.1.0
ctl sign "$dir/hello-2.netext" --key "$dir/keys/EXAMPLE.key" >/dev/null
old=$(ext_pid)
netextctl activate --replace "$dir/hello-2.netext"
wait_running "$old"
for _ in $(seq 100); do ctl message demo ping >/dev/null 2>&1 && break; sleep 0.05; done
netextctl message demo ping
netextctl logs -n 40 | grep -E "app-update|now version" || true
netextctl list

say "Someone who is not an administrator asks for version 3: it waits for approval"
bundle "$dir/hello-3.netext" 3 1.2.0
ctl sign "$dir/hello-3.netext" --key "$dir/keys/EXAMPLE.key" >/dev/null
echo "\$ setpriv --reuid=nobody ... netextctl activate $dir/hello-3.netext"
setpriv --reuid=65534 --regid=65534 --clear-groups \
	env NETEXT_SOCKET="$dir/run/netextd.sock" "$netextctl_bin" activate "$dir/hello-3.netext"
netextctl list
old=$(ext_pid)
netextctl approve com.example.hello
wait_running "$old"
for _ in $(seq 100); do ctl message demo ping >/dev/null 2>&1 && break; sleep 0.05; done
netextctl properties com.example.hello

say "Stop the provider (its stop callback gets the reason)"
netextctl stop demo
netextctl logs -n 14

# --- the content filter: the two filter examples ------------------------------------------

# bundle_example DIR EXECUTABLE MANIFEST [FILE...]: a bundle of one of the examples, signed.
bundle_example() {
	local b=$1 exe=$2 conf=$3
	shift 3
	mkdir -p "$b/bin"
	cp "$exe" "$b/bin/"
	cp "$conf" "$@" "$b/"
	chmod -R a+rX "$b"
	ctl sign "$b" --key "$dir/keys/EXAMPLE.key" >/dev/null
}
# wait_ext ID: until extension ID runs.
wait_ext() {
	for _ in $(seq 200); do
		ctl --json list | python3 -c '
import json, sys
sys.exit(not any(e.get("identifier") == sys.argv[1] and e.get("state") == "running"
                 for e in json.load(sys.stdin).get("extensions", [])))' "$1" && return 0
		sleep 0.02
	done
	return 1
}
# web_flows [N]: the newest N (default all) flows to port 8080 as netextctl --json flows has them.
web_flows() {
	ctl --json flows | python3 -c '
import json, sys
flows = [f for f in json.load(sys.stdin)["flows"] if f["remote"].endswith(":8080")]
for f in flows[:int(sys.argv[1])]:
    print("  flow %d: %s uid %s -> %s: %s (%s)" % (f["id"], f["process"].get("executable", "?"),
          f.get("uid", "?"), f.get("hostname"), f["state"], f["decided_by"]))' "${1:-100}"
}
in_ns() { nsenter --net=/run/netns/"$1" -- "${@:2}"; }
# bg_in_ns NS CMD...: in the background; nsenter execs CMD, so $! is CMD's pid (cleanup kills it).
bg_in_ns() { nsenter --net=/run/netns/"$1" -- "${@:2}" & bgpids+=($!); }
# client CMD...: in our namespace, with the server namespace's DNS server as resolver (a
# private mount namespace binds our resolv.conf over /etc/resolv.conf for CMD only).
client() {
	nsenter --net=/run/netns/"$ns" unshare -m sh -c 'mount --bind "$1" /etc/resolv.conf && shift && exec "$@"' \
		sh "$dir/resolv.conf" "$@"
}
# wait_port NS PORT: until something listens on TCP PORT in NS.
wait_port() {
	for _ in $(seq 100); do
		in_ns "$1" ss -Hltn "sport = :$2" | grep -q . && return 0
		sleep 0.05
	done
	return 1
}

say "A second namespace for the other end of the traffic: a veth pair, a DNS server, a web server"
echo "\$ ip netns add $srv; ip link add ... type veth ...  ($ns 198.18.2.1 <-> $srv 198.18.2.2-4)"
ip netns add "$srv"
ip -n "$srv" link set lo up
ip -n "$ns" link add nxdemo0 type veth peer name nxdemo1 netns "$srv"
ip -n "$ns" addr add 198.18.2.1/24 dev nxdemo0
ip -n "$srv" addr add 198.18.2.2/24 dev nxdemo1 # the DNS server
ip -n "$srv" addr add 198.18.2.3/24 dev nxdemo1 # web.test
ip -n "$srv" addr add 198.18.2.4/24 dev nxdemo1 # blocked.test
ip -n "$ns" link set nxdemo0 up
ip -n "$srv" link set nxdemo1 up
printf '198.18.2.3 web.test\n198.18.2.4 blocked.test\n' > "$dir/hosts"
echo "nameserver 198.18.2.2" > "$dir/resolv.conf"
bg_in_ns "$srv" dnsmasq --no-daemon --no-resolv --no-hosts --addn-hosts="$dir/hosts" \
	--listen-address=198.18.2.2 --bind-interfaces --log-facility="$dir/dnsmasq.log" 2>>"$dir/dnsmasq.log"
mkdir "$dir/www" && echo "hello from web.test" > "$dir/www/index.html"
bg_in_ns "$srv" python3 -m http.server 8080 --bind 0.0.0.0 --directory "$dir/www" >/dev/null 2>&1
wait_port "$srv" 8080 && wait_port "$srv" 53
cat "$dir/hosts"

say "simplefirewall (Apple's SimpleFirewall): inbound TCP to port 8888 waits for a person"
bundle_example "$dir/simplefirewall.netext" "$sfw" "$top/examples/simplefirewall/extension.conf"
netextctl activate "$dir/simplefirewall.netext"
wait_ext com.example.simplefirewall
netextctl config add sfw --extension com.example.simplefirewall --provider filter-data \
	--fail-closed --option port=8888
netextctl start sfw
echo "-- a server in our namespace listens on 8888; a client in $srv connects (in the background):"
bg_in_ns "$ns" python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8888)); s.listen(4)
while True:
    c, a = s.accept(); c.sendall(b"hello %s, you were let in\n" % a[0].encode()); c.close()'
wait_port "$ns" 8888
t0=$(date +%s%N)
bg_in_ns "$srv" python3 -c '
import socket
s = socket.create_connection(("198.18.2.1", 8888), timeout=30)
print(s.recv(100).decode().strip())' > "$dir/sfw-client.out" 2>&1
client_pid=$!
for _ in $(seq 100); do ctl --json flows --pending | grep -q ':8888' && break; sleep 0.05; done
netextctl flows --pending
echo "-- the provider's view (what an app would show the user):"
netextctl message sfw pending
id=$(ctl message sfw pending | awk 'NR == 1 { print $1 }')
sleep 1
echo "-- the client is still waiting: $(kill -0 "$client_pid" 2>/dev/null && echo "yes, connecting" || echo no)"
netextctl flows allow "$id"
wait "$client_pid" || true
echo "-- the client received, $(( ($(date +%s%N) - t0) / 1000000 )) ms after it connected:"
cat "$dir/sfw-client.out"
netextctl logs -n 20 | grep "ext:com.example.simplefirewall" | tail -3 || true
netextctl stop sfw

say "appfirewall (LuLu, OpenSnitch): rules by program, user and hostname; curl may not reach blocked.test"
curl_exe=$(readlink -f "$(command -v curl)")
cat > "$dir/rules.conf" <<RULES
# appfirewall rules for the demo (examples/appfirewall/README.md)
default=ask                          # unmatched flows: the provider logs and decides
allow port=53                        # DNS
drop exe=$curl_exe host=blocked.test
RULES
bundle_example "$dir/appfirewall.netext" "$afw" "$top/examples/appfirewall/extension.conf" "$dir/rules.conf"
echo "\$ cat $dir/appfirewall.netext/rules.conf"
cat "$dir/appfirewall.netext/rules.conf"
netextctl activate "$dir/appfirewall.netext"
wait_ext com.example.appfirewall
netextctl config add afw --extension com.example.appfirewall --provider filter-data \
	--fail-open --option unknown=allow
netextctl start afw
netextctl message afw list
echo "-- curl to blocked.test (dropped by the rule), then to web.test as root and as nobody (asked, allowed):"
echo "\$ curl http://blocked.test:8080/"
client curl -sS --connect-timeout 2 http://blocked.test:8080/ 2>&1 || true
echo "\$ curl http://web.test:8080/"
client curl -sS --max-time 5 http://web.test:8080/
echo "\$ setpriv --reuid=nobody ... curl http://web.test:8080/"
client setpriv --reuid=65534 --regid=65534 --clear-groups curl -sS --max-time 5 http://web.test:8080/
echo "-- netextd's flows: process, user, hostname and verdict (DNS queries to 198.18.2.2:53 too):"
netextctl flows | grep -v ':8888 '
web_flows
echo "-- the provider logged the flows it was asked about (the rules decided the others):"
netextctl logs -n 30 | grep "ext:com.example.appfirewall: flow" | grep ':8080' || true
echo "-- a rule added at run time, by an app message (kept in memory: extensions have no writable store):"
netextctl message afw "add drop uid=65534 host=web.test"
echo "\$ setpriv --reuid=nobody ... curl http://web.test:8080/"
client setpriv --reuid=65534 --regid=65534 --clear-groups curl -sS --connect-timeout 2 http://web.test:8080/ 2>&1 || true
web_flows 1
netextctl stop afw

# --- the DNS proxy: the two DNS examples ---------------------------------------------------

# dns_status: the lines of `netextctl dns status` that tell the story.
dns_status() {
	echo "\$ netextctl dns status   # (some of its lines)"
	ctl dns status | grep -E '^intercepting|configuration:|queries:|answered:|forwarded:|rewritten:' || true
}
# ask NAME [TYPE]: dig from our namespace (netextd diverts the query whatever server it names).
ask() {
	local out status
	echo "\$ dig ${2:-A} $1"
	out=$(in_ns "$ns" dig +time=3 +tries=1 @198.18.2.2 "$1" "${2:-A}" 2>&1) || true
	status=$(printf '%s\n' "$out" | sed -n 's/.*status: \([A-Z]*\),.*/\1/p')
	printf '  %s' "${status:-no answer}"
	printf '%s\n' "$out" | awk '!/^;/ && NF >= 5 { printf "  %s %s", $4, $5 }'
	echo
}

if ! command -v dig >/dev/null; then
	say "DNS proxy: skipped (needs dig: apt-get install bind9-dnsutils)"
else
say "A company resolver for corp.example next to the system resolver (both in $srv)"
ip -n "$srv" addr add 198.18.2.5/24 dev nxdemo1 # the company's DNS server
printf '198.18.2.53 wiki.corp.example\n' > "$dir/hosts.corp"
bg_in_ns "$srv" dnsmasq --no-daemon --no-resolv --no-hosts --addn-hosts="$dir/hosts.corp" \
	--listen-address=198.18.2.5 --bind-interfaces --log-facility="$dir/dnsmasq-corp.log" 2>>"$dir/dnsmasq-corp.log"
for _ in $(seq 100); do in_ns "$srv" ss -Hlun 'sport = :53' | grep -q '198.18.2.5' && break; sleep 0.05; done
echo "system resolver 198.18.2.2: web.test, blocked.test; company resolver 198.18.2.5: wiki.corp.example"
echo "-- the system resolver knows no corp.example names:"
ask wiki.corp.example

say "splitdns (the seed's split DNS): corp.example to the company, the rest to the system resolver"
cat > "$dir/splitdns.conf" <<RULES
# Company names go to the company's resolver; everything else to the system resolver.
route corp.example      198.18.2.5
exempt www.corp.example            # the public site: system resolver
RULES
chmod 644 "$dir/splitdns.conf"
echo "\$ cat $dir/splitdns.conf" && cat "$dir/splitdns.conf"
bundle_example "$dir/splitdns.netext" "$sdns" "$top/examples/splitdns/extension.conf"
netextctl activate "$dir/splitdns.netext"
wait_ext com.example.splitdns
netextctl config add splitdns --extension com.example.splitdns --provider dns-proxy \
	--fail-open --option config="$dir/splitdns.conf"
netextctl start splitdns
ask wiki.corp.example
ask web.test
netextctl message splitdns stats
echo "(netextd alone does the same with: netextctl dns route add corp.example 198.18.2.5)"
dns_status
netextctl stop splitdns

say "dnsblock: 100,000 listed domains and everything below them get NXDOMAIN"
sh "$top/examples/dnsblock/make-list.sh" 100000 > "$dir/dnsblock.list"
chmod 644 "$dir/dnsblock.list"
echo "\$ examples/dnsblock/make-list.sh 100000 > dnsblock.list   # $(wc -l < "$dir/dnsblock.list") lines:"
sed -n '9,11p;13,15p' "$dir/dnsblock.list"
bundle_example "$dir/dnsblock.netext" "$dblock" "$top/examples/dnsblock/extension.conf"
netextctl activate "$dir/dnsblock.netext"
wait_ext com.example.dnsblock
netextctl config add dnsblock --extension com.example.dnsblock --provider dns-proxy \
	--fail-open --option list="$dir/dnsblock.list"
netextctl start dnsblock
ctl logs -n 20 | grep "names from" | tail -1 || true
ask ads.test
ask sub.ads.test
ask web.test
netextctl message dnsblock stats
netextctl stop dnsblock

say "dnsblock as a sinkhole: A gets 0.0.0.0, AAAA gets ::"
netextctl config add sinkhole --extension com.example.dnsblock --provider dns-proxy \
	--fail-open --option list="$dir/dnsblock.list" --option mode=sinkhole
netextctl start sinkhole
ask ads.test
ask tracker.test AAAA
ask web.test
dns_status
netextctl stop sinkhole
fi

# --- the packet filter: the two packet examples ---------------------------------------------

say "rewriter (seed 001): 'hello' becomes 'HELLO, WORLD' inside a TCP stream, IPv4 and IPv6"
ip -n "$ns" addr add fd00:198:18:2::1/64 dev nxdemo0 nodad
ip -n "$srv" addr add fd00:198:18:2::2/64 dev nxdemo1 nodad
# The receiver: reads each connection to its end, then sends everything back and closes.
cat > "$dir/sink.py" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", int(sys.argv[1]))); s.listen(8)
while True:
    c, _ = s.accept(); data = b""
    while True:
        b = c.recv(65536)
        if not b: break
        data += b
    c.sendall(data); c.close()
PY
# The sender: lines with "hello" in each, as one message per line ("chat") or in one piece
# ("bulk": TCP cuts the stream into segments as it likes). It checks that the receiver read
# the whole stream, in order, each "hello" either rewritten or, when a segment boundary cut
# through it, as it was sent (the rewriting is per packet).
cat > "$dir/send.py" <<'PY'
import socket, sys, time
host, port, mode, lines = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
msgs = [b"line %d: hello from the client, hello again\n" % i for i in range(lines)]
data = b"".join(msgs)
c = socket.create_connection((host, port), timeout=10)
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
got = b""
try:
    if mode == "chat":
        for m in msgs:
            c.sendall(m); time.sleep(0.002)
    else:
        c.sendall(data)
    c.shutdown(socket.SHUT_WR)
    while True:
        b = c.recv(65536)
        if not b: break
        got += b
except socket.timeout:
    print("  %s %s: the connection stalled after the receiver sent back %d bytes" % (host, mode, len(got)))
    sys.exit(1)
ok = got.replace(b"HELLO, WORLD", b"hello") == data
print("  %s %s: sent %d bytes with %d 'hello'; the receiver read %d bytes: %s, %d rewritten" % (
      host, mode, len(data), data.count(b"hello"), len(got),
      "the whole stream in order" if ok else "NOT the stream that was sent", got.count(b"HELLO, WORLD")))
print("  its first line: %s" % got.split(b"\n")[0].decode())
sys.exit(0 if ok else 1)
PY
bg_in_ns "$srv" python3 "$dir/sink.py" 9000
wait_port "$srv" 9000
bundle_example "$dir/rewriter.netext" "$rewriter" "$top/examples/rewriter/extension.conf"
netextctl activate "$dir/rewriter.netext"
wait_ext com.example.rewriter
netextctl config add rw --extension com.example.rewriter --provider filter-packet --fail-open \
	--option match=hello --option "replace=HELLO, WORLD" --option protocol=tcp --option port=9000 \
	--option direction=outbound
netextctl start rw
for _ in $(seq 100); do ctl packet status | grep -q 'settings applied' && break; sleep 0.05; done
echo "-- 200 lines sent one by one (a segment each), over IPv4 and IPv6:"
in_ns "$ns" python3 "$dir/send.py" 198.18.2.2 9000 chat 200 || true
in_ns "$ns" python3 "$dir/send.py" fd00:198:18:2::2 9000 chat 200 || true
# (send.py ... bulk 2000 sends the lines in one piece: TCP then cuts the stream as it likes,
# and a 'hello' cut by a segment boundary stays as it was. Bulk streams whose segments grow
# still stall now and then in netextd's sequence shifting, so the demo leaves them out.)
netextctl message rw stats
echo "\$ netextctl packet status   # (some of its lines)"
ctl packet status | grep -E '^configuration|received|to_provider|modified|refused|seqadj_flows|seqadj_applied|fail_policy' || true
netextctl stop rw

say "shaper: 100 ms more on the way out, for one port (a slow link, per flow)"
cat > "$dir/echo.py" <<'PY'
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(8)
while True:
    c, _ = s.accept(); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while True:
        b = c.recv(100)
        if not b: break
        c.sendall(b)
    c.close()
PY
cat > "$dir/rtt.py" <<'PY'
import socket, sys, time
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
rtts = []
for i in range(5):
    t = time.monotonic(); c.sendall(b"ping"); c.recv(100); rtts.append((time.monotonic() - t) * 1000)
print("  5 round trips over TCP: " + ", ".join("%.1f" % r for r in rtts) + " ms")
PY
bg_in_ns "$srv" python3 "$dir/echo.py" 9001
wait_port "$srv" 9001
echo "-- without the shaper:"
in_ns "$ns" python3 "$dir/rtt.py" 198.18.2.2 9001
bundle_example "$dir/shaper.netext" "$shaper" "$top/examples/shaper/extension.conf"
netextctl activate "$dir/shaper.netext"
wait_ext com.example.shaper
netextctl config add slow --extension com.example.shaper --provider filter-packet --fail-open \
	--option delay_ms=100 --option protocol=tcp --option port=9001 --option direction=outbound
netextctl start slow
for _ in $(seq 100); do ctl packet status | grep -q 'configuration slow.*settings applied' && break; sleep 0.05; done
echo "-- with it:"
in_ns "$ns" python3 "$dir/rtt.py" 198.18.2.2 9001
netextctl message slow stats
netextctl stop slow

# --- the packet tunnel: the WireGuard example against wireguard-go ---------------------------

say "wgtunnel: a WireGuard VPN client as a packet-tunnel provider, against wireguard-go"
wgif=wgdemo$$
wgif=${wgif:0:15}
(umask 077; wg genkey > "$dir/client.key"; wg genkey > "$dir/server.key")
wg pubkey < "$dir/client.key" > "$dir/client.pub"
wg pubkey < "$dir/server.key" > "$dir/server.pub"
echo "-- the server in $srv: wireguard-go (Debian's userspace WireGuard) on $wgif, 198.19.7.2, UDP 51820:"
echo "\$ wireguard-go -f $wgif; wg set $wgif private-key server.key listen-port 51820 peer CLIENT allowed-ips 198.19.7.1/32"
bg_in_ns "$srv" env WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 LOG_LEVEL=error wireguard-go -f "$wgif" \
	>"$dir/wireguard-go.log" 2>&1
for _ in $(seq 100); do [ -S "/var/run/wireguard/$wgif.sock" ] && break; sleep 0.05; done
in_ns "$srv" wg set "$wgif" private-key "$dir/server.key" listen-port 51820 \
	peer "$(cat "$dir/client.pub")" allowed-ips 198.19.7.1/32
ip -n "$srv" addr add 198.19.7.2/24 dev "$wgif"
ip -n "$srv" link set "$wgif" mtu 1420 up
mkdir -p "$dir/vpnwww" && echo "hello from the other end of the tunnel (198.19.7.2)" > "$dir/vpnwww/index.html"
bg_in_ns "$srv" python3 -m http.server 8081 --bind 198.19.7.2 --directory "$dir/vpnwww" >/dev/null 2>&1
wait_port "$srv" 8081
# The client's configuration: a standard wg-quick file, readable by the extension's user.
cat > "$dir/wg0.conf" <<WGCONF
[Interface]
PrivateKey = $(cat "$dir/client.key")
Address = 198.19.7.1/24
MTU = 1420

[Peer]
PublicKey = $(cat "$dir/server.pub")
Endpoint = 198.18.2.2:51820
AllowedIPs = 198.19.7.0/24
PersistentKeepalive = 25
WGCONF
chmod 644 "$dir/wg0.conf"
echo "\$ cat wg0.conf   # (the private key elided)"
sed 's/^PrivateKey = .*/PrivateKey = (elided)/' "$dir/wg0.conf"
bundle_example "$dir/wgtunnel.netext" "$wgtunnel" "$top/examples/wgtunnel/extension.conf"
netextctl activate "$dir/wgtunnel.netext"
wait_ext com.example.wgtunnel
netextctl config add vpn --extension com.example.wgtunnel --provider packet-tunnel --option config="$dir/wg0.conf"
netextctl tunnel start vpn
netextctl tunnel status vpn
echo "-- the device, its route and rules (netextd made them; the extension cannot):"
in_ns "$ns" ip -br addr show dev netext0 || true
in_ns "$ns" ip route show table 7160 || true
in_ns "$ns" ip rule | grep -E '^71[68]0:' || true
echo "\$ ping -c 3 198.19.7.2"
in_ns "$ns" ping -c 3 -i 0.2 198.19.7.2 | sed -n '2,4p' || true
echo "\$ curl http://198.19.7.2:8081/"
in_ns "$ns" curl -sS --max-time 5 http://198.19.7.2:8081/ || true
echo "-- wireguard-go's view of the peer:"
in_ns "$srv" wg show "$wgif" | grep -E 'endpoint|handshake|transfer' || true
netextctl message vpn stats | grep -E '^(rx_packets|tx_packets|handshakes_completed|drop_mac1)=' || true
netextctl tunnel stop vpn
echo "-- after stop: device netext0 $(in_ns "$ns" ip link show dev netext0 >/dev/null 2>&1 && echo "still there (!)" || echo gone)," \
	"rules at 7130-7194: $(in_ns "$ns" ip rule | awk -F: '$1 >= 7130 && $1 <= 7194' | wc -l)," \
	"routes in table 7160: $(in_ns "$ns" ip route show table 7160 2>/dev/null | wc -l)"
echo "\$ curl --max-time 2 http://198.19.7.2:8081/"
in_ns "$ns" curl -sS --max-time 2 http://198.19.7.2:8081/ 2>&1 | sed 's/^/  /' || true

say "Stop netextd: running providers would get 'daemon-shutdown'; the extension exits, the table and cgroup go away"
echo "\$ kill -TERM $dpid"
kill -TERM "$dpid"
wait "$dpid" || true
dpid=
tail -4 "$dir/netextd.log"
echo "-- nftables tables left in the namespace: $(nsenter --net=/run/netns/"$ns" nft list tables | wc -l)"

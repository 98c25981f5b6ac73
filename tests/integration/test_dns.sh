#!/usr/bin/env bash
# DNS proxy: interception and split DNS with the real daemon in a namespace H and two DNS
# servers (dnsmasq) in namespaces A and B, over veth, IPv4 and IPv6. netextd.conf routes
# corp.example to A, exempts pub.corp.example and sends everything else to B. Unmodified
# clients (dig, kdig, getaddrinfo) ask any address on port 53 and get A's or B's answer as the
# routes say, over UDP and TCP. The filter's flows learn names from the proxy, keyed by the
# asking process; a local stub resolver's own upstream query is not intercepted a second time;
# rules, routes and listeners go with the daemon.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/lib/daemon.sh"
: "${NETEXT_TESTFILTER:?}"
for tool in dig kdig dnsmasq python3 nft ss; do
	command -v "$tool" >/dev/null || skip "needs $tool"
done

# On failure, show what the daemon said.
fail() {
	echo "FAIL: $*" >&2
	[ -n "${D_LOG:-}" ] && [ -f "$D_LOG" ] && tail -25 "$D_LOG" >&2
	exit 1
}

H=$(ns_add h) || fail "ns h"
A=$(ns_add a) || fail "ns a"
B=$(ns_add b) || fail "ns b"
ns_link "$H" "$A" 1
ns_link "$H" "$B" 2
T=$NS_TMPDIR
# Addresses outside the links (192.0.2.1, 2001:db8::1) are routed towards B, so that a client
# can send to them; the proxy answers before anything leaves H.
ip -n "$H" route add default via 198.18.2.2 || fail "default route"
ip -n "$H" -6 route add default via fd00:198:18:2::2 || fail "default route v6"

# --- A: corp.example's server; B: everything else. Each answers with its own addresses. ----
BIG=$(printf 'x%.0s' $(seq 250))
dnsmasq_in() { # NS NAME V4 V6 [extra…]
	local ns=$1 name=$2 v4=$3 v6=$4
	shift 4
	ns_spawn "$ns" dnsmasq --no-daemon --no-resolv --no-hosts --bind-interfaces --port=53 \
		--listen-address="$v4" --listen-address="$v6" --log-queries --log-facility=- \
		--pid-file="$T/$name.pid" "$@" >"$T/$name.log" 2>&1
}
dnsmasq_in "$A" a 198.18.1.2 fd00:198:18:1::2 \
	--address=/corp.example/198.18.1.2 --address=/corp.example/fd00:198:18:1::2 \
	--address=/example.org/198.18.1.3 --local-ttl=300 \
	--txt-record=big.corp.example,"1$BIG" --txt-record=big.corp.example,"2$BIG" \
	--txt-record=big.corp.example,"3$BIG"
dnsmasq_in "$B" b 198.18.2.2 fd00:198:18:2::2 \
	--address=/corp.example/198.18.2.2 --address=/corp.example/fd00:198:18:2::2 \
	--address=/example.org/198.18.2.3 --address=/example.org/fd00:198:18:2::3
for ns in "$A" "$B"; do
	wait_for ns_exec "$ns" sh -c "ss -Hlun 'sport = :53' | grep ." >/dev/null || fail "dnsmasq in $ns did not start"
done
ns_spawn "$A" python3 -m http.server 8080 --bind 198.18.1.2 --directory "$T" >/dev/null 2>&1
echo "nameserver 192.0.2.53" > "$T/resolv.conf"

# --- the daemon -------------------------------------------------------------------------
D_CONF_EXTRA="[dns]
route = corp.example 198.18.1.2 fd00:198:18:1::2
exempt = pub.corp.example
default = 198.18.2.2 fd00:198:18:2::2
resolv_conf = $T/resolv.conf"
daemon_start "$H"
dns_status() { ctl_json raw dns.status '{}'; }
counter() { dns_status | python3 -c 'import json,sys; print(json.load(sys.stdin)["engine"]["counters"][sys.argv[1]])' "$1"; }
dns_status | grep '"intercepting": true' >/dev/null || { dns_status; tail -20 "$D_LOG"; fail "not intercepting with a split route"; }
ns_exec "$H" nft list chains | grep "chain dns_tproxy" >/dev/null || fail "no dns_tproxy chain"
ns_exec "$H" ip rule | grep "fwmark 0x400000/0x400000 lookup 7153" >/dev/null || fail "no fwmark rule"
ns_exec "$H" ip -6 rule | grep "fwmark 0x400000/0x400000 lookup 7153" >/dev/null || fail "no fwmark rule (v6)"
ns_exec "$H" ip route show table 7153 | grep "local default dev lo" >/dev/null || fail "no local route"

# --- 1. split DNS, UDP and TCP, IPv4 and IPv6, to any address on port 53 ----------------
q() { # expected, then dig arguments (run in H)
	local want=$1 got
	shift
	got=$(ns_exec "$H" dig +time=3 +tries=1 +short "$@" 2>&1 | head -5)
	[ "$got" = "$want" ] || { tail -20 "$D_LOG"; dns_status; fail "dig $* gave '$got', want '$want'"; }
}
for tcp in +notcp +tcp; do
	for server in 198.18.2.2 192.0.2.1 198.18.1.2 fd00:198:18:2::2 2001:db8::1; do
		q 198.18.1.2 @"$server" $tcp host.corp.example A
		q fd00:198:18:1::2 @"$server" $tcp host.corp.example AAAA
		q 198.18.2.3 @"$server" $tcp example.org A
		q 198.18.2.2 @"$server" $tcp pub.corp.example A     # exempt: the default route
		q 198.18.2.2 @"$server" $tcp x.pub.corp.example A
	done
done
# A's log saw only corp.example names; B's never saw host.corp.example.
grep -q "query\[A\] host.corp.example" "$T/a.log" || fail "A did not see host.corp.example"
if grep -q "host.corp.example" "$T/b.log"; then fail "B saw a corp.example query"; fi
if grep -q "query\[A\] example.org" "$T/a.log"; then fail "A saw example.org"; fi

# kdig, IPv4 and IPv6, UDP and TCP.
for args in "@198.18.2.2" "@fd00:198:18:2::2" "@192.0.2.1 +tcp" "@2001:db8::1 +tcp"; do
	got=$(ns_exec "$H" kdig +time=3 +retry=0 +short $args host.corp.example A 2>&1)
	[ "$got" = 198.18.1.2 ] || fail "kdig $args: '$got'"
done

# getaddrinfo through a resolv.conf naming an address nobody serves.
client() { # run in H with $T/resolv.conf as /etc/resolv.conf
	nsenter --net=/run/netns/"$H" unshare -m sh -c 'mount --bind "$1" /etc/resolv.conf || exit 90
		shift; exec "$@"' sh "$T/resolv.conf" "$@"
}
got=$(client /usr/bin/python3 -c '
import socket
print(sorted({a[4][0] for a in socket.getaddrinfo("host.corp.example", 80, socket.AF_INET, socket.SOCK_STREAM)})[0])')
[ "$got" = 198.18.1.2 ] || fail "getaddrinfo host.corp.example: '$got'"

# The proxy counted what it did; the answers came from the daemon's upstream queries, not
# from the clients' own packets leaving H.
fwd=$(counter forwarded)
[ "$fwd" -ge 40 ] || { dns_status; fail "only $fwd queries forwarded"; }
[ "$(counter servfail)" = 0 ] || { dns_status; fail "SERVFAIL answers"; }

# Truncation: an answer too big for the client's 512 bytes comes over TCP from A (TC
# fallback), reaches the client truncated (TC set) over UDP, and whole over TCP.
before=$(counter tcp_fallbacks)
out=$(ns_exec "$H" dig +noedns +ignore +time=3 +tries=1 @192.0.2.1 big.corp.example TXT)
echo "$out" | grep -E "flags: qr (aa )?tc" >/dev/null || { echo "$out"; fail "no TC to a 512-byte client"; }
[ "$(counter tcp_fallbacks)" = $((before + 1)) ] || fail "tcp_fallbacks did not move"
[ "$(ns_exec "$H" dig +tcp +short @192.0.2.1 big.corp.example TXT | wc -l)" = 3 ] || fail "big answer over TCP"
[ "$(ns_exec "$H" dig +short @192.0.2.1 big.corp.example TXT | wc -l)" = 3 ] || fail "big answer after dig's own TCP retry"

# --- 2. learning: a content filter's flow carries the name the process resolved -----------
ctl dev register com.example.testfilter "$NETEXT_TESTFILTER" >/dev/null || fail "register"
ctl config add f1 --extension com.example.testfilter --provider filter-data \
	--option default=allow --option verdict=allow >/dev/null || fail "config add"
ctl start f1 >/dev/null || { tail -20 "$D_LOG"; fail "start f1"; }
wait_for sh -c "NETEXT_SOCKET=$D_SOCK $NETEXTCTL --json raw dns.status '{}' | grep -q '\"attribution\": true'" \
	|| { dns_status; fail "attribution not on with a filter"; }
# Keyed by the asking process: X resolves web.corp.example, then Y resolves
# other.corp.example to the same address, then X connects: X's flow is named by X's answer,
# not by the latest answer of anyone. A follower makes the filter attribute flows.
NETEXT_SOCKET=$D_SOCK "$NETEXTCTL" flows --follow > "$T/follow.out" 2>&1 &
follower=$!
ns_track_pid "$follower"
mkfifo "$T/go"
client /usr/bin/python3 -c '
import socket, sys
a = socket.getaddrinfo("web.corp.example", 8080, socket.AF_INET, socket.SOCK_STREAM)[0][4]
open(sys.argv[1] + "/resolved", "w").close()
open(sys.argv[1] + "/go").read()
s = socket.create_connection(a, timeout=5); s.sendall(b"GET / HTTP/1.0\r\n\r\n"); s.recv(10)' "$T" &
x=$!
wait_for test -e "$T/resolved" || fail "X did not resolve"
got=$(client /usr/bin/python3 -c '
import socket
print(socket.getaddrinfo("other.corp.example", 80, socket.AF_INET, socket.SOCK_STREAM)[0][4][0])')
[ "$got" = 198.18.1.2 ] || fail "Y resolved other.corp.example to '$got'"
echo go > "$T/go"
wait "$x" || fail "X's connection to web.corp.example failed"
ctl_json flows | python3 -c '
import json, sys
f = [f for f in json.load(sys.stdin)["flows"] if f["remote"] == "198.18.1.2:8080"]
assert f, "no flow to 198.18.1.2:8080"
assert "python" in f[0]["process"].get("executable", ""), f[0]
assert f[0].get("hostname") == "web.corp.example", f[0]
print("learned:", f[0]["hostname"], f[0]["process"]["executable"])
' || fail "the flow did not get the name its own process resolved"
kill "$follower"
ctl stop f1 >/dev/null

# --- 3. the daemon takes its rules, routes and listeners with it --------------------------
daemon_stop
if ns_exec "$H" ip rule | grep "lookup 7153" >/dev/null; then fail "fwmark rule left"; fi
if ns_exec "$H" ip -6 rule | grep "lookup 7153" >/dev/null; then fail "fwmark rule (v6) left"; fi
[ -z "$(ns_exec "$H" ip route show table 7153)" ] || fail "table 7153 not empty"
[ -z "$(ns_exec "$H" ip -6 route show table 7153)" ] || fail "table 7153 (v6) not empty"
[ -z "$(ns_exec "$H" ss -Hlnut 'sport = :7153')" ] || fail "listeners left"
if ns_exec "$H" nft list tables | grep netext >/dev/null; then fail "table left after stop"; fi
# Without the proxy, a query to a bogus address is not answered.
if ns_exec "$H" dig +time=1 +tries=1 +short @192.0.2.1 example.org >/dev/null 2>&1; then
	fail "a query to 192.0.2.1 was answered without the proxy"
fi

# --- 3b. the default route follows resolv.conf while queries are in flight ------------------
# Four clients query in a loop while resolv.conf switches from B to A: every query is
# answered, first by B, then by A.
echo "nameserver 198.18.2.2" > "$T/resolv-dyn.conf"
D_CONF_EXTRA="[dns]
route = corp.example 198.18.1.2
resolv_conf = $T/resolv-dyn.conf"
daemon_start "$H"
loop() { # FILE: query until A has answered 5 times (at most 2000 queries)
	local i a=0 got
	for ((i = 0; i < 2000 && a < 5; i++)); do
		got=$(ns_exec "$H" dig +time=3 +tries=1 +short @192.0.2.1 example.org 2>&1)
		echo "$got" >> "$1"
		[ "$got" = 198.18.1.3 ] && a=$((a + 1))
	done
}
pids=()
for k in 1 2 3 4; do
	loop "$T/loop$k" &
	pids+=($!)
done
wait_for sh -c "[ \$(cat $T/loop1 $T/loop2 $T/loop3 $T/loop4 2>/dev/null | wc -l) -ge 40 ]" || fail "the query loops did not run"
echo "nameserver 198.18.1.2" > "$T/resolv-dyn.new" && mv "$T/resolv-dyn.new" "$T/resolv-dyn.conf"
for p in "${pids[@]}"; do wait "$p"; done
sort "$T"/loop? | uniq -c
bad=$(grep -v -x -e 198.18.2.3 -e 198.18.1.3 "$T"/loop? | head -3)
[ -z "$bad" ] || fail "queries failed while the default route changed: $bad"
for k in 1 2 3 4; do
	[ "$(tail -1 "$T/loop$k")" = 198.18.1.3 ] || fail "loop $k never got A's answer"
	head -1 "$T/loop$k" | grep -x 198.18.2.3 >/dev/null || fail "loop $k did not start with B's answer"
done
daemon_stop

# --- 4. a local stub resolver (dnsmasq on 127.0.0.53, in a cgroup of its own) -------------
CG_MNT=$(awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo)
[ -n "$CG_MNT" ] || skip "no cgroup2 mount"
CG=netext-dns-stub-$$
mkdir "$CG_MNT/$CG" || fail "mkdir cgroup"
# The stub must be gone (ns_cleanup waits for it) before its cgroup can be removed.
trap 'daemon_cleanup; ns_cleanup; rmdir "$CG_MNT/$CG" 2>/dev/null' EXIT
# nsenter and sh exec in place: $! is the stub's pid.
nsenter --net=/run/netns/"$H" sh -c 'echo $$ > "$1/cgroup.procs" && exec dnsmasq --no-daemon \
	--no-resolv --no-hosts --bind-interfaces --listen-address=127.0.0.53 --port=53 \
	--server=198.18.2.2 --cache-size=0 --log-queries --log-facility=- >"$2/stub.log" 2>&1' \
	sh "$CG_MNT/$CG" "$T" &
stub_pid=$!
ns_track_pid "$stub_pid"
wait_for ns_exec "$H" sh -c "ss -Hlun 'sport = :53' | grep 127.0.0.53" >/dev/null || fail "stub did not start"
echo "nameserver 127.0.0.53" > "$T/resolv-stub.conf"
D_CONF_EXTRA="[dns]
route = corp.example 198.18.1.2
resolv_conf = $T/resolv-stub.conf
cache_bytes = 65536"
daemon_start "$H"
wait_for sh -c "NETEXT_SOCKET=$D_SOCK $NETEXTCTL --json raw dns.status '{}' | grep -q '\"stub_resolver\": \".*cgroup /$CG'" \
	|| { dns_status; tail -20 "$D_LOG"; fail "the stub resolver was not found and exempted"; }
before=$(counter queries_udp)
q 198.18.2.3 @127.0.0.53 example.org A
after=$(counter queries_udp)
# One query intercepted: the application's. The stub's own (to B) went out directly.
[ $((after - before)) = 1 ] || { dns_status; cat "$T/stub.log"; fail "the proxy saw $((after - before)) queries, want 1"; }
grep -q "query\[A\] example.org from 127.0.0.1" "$T/stub.log" || { cat "$T/stub.log"; fail "the stub did not get the query from the proxy"; }
grep -q "query\[A\] example.org" "$T/b.log" || fail "B did not get the stub's query"
# The split route still applies to queries sent to the stub.
q 198.18.1.2 @127.0.0.53 host.corp.example A

# --- 5. the cache (cache_bytes in this configuration) --------------------------------------
cache_counter() { dns_status | python3 -c 'import json,sys; print(json.load(sys.stdin)["engine"]["cache"][sys.argv[1]])' "$1"; }
hits=$(cache_counter cache_hits)
ttl1=$(ns_exec "$H" dig +noall +answer @192.0.2.1 cached.corp.example A | awk '{print $2}')
sleep 1.2
ttl2=$(ns_exec "$H" dig +noall +answer @192.0.2.1 CACHED.corp.example A | awk '{print $2}')
out=$(ns_exec "$H" dig +noall +answer @192.0.2.1 CACHED.corp.example A)
[ "$(cache_counter cache_hits)" = $((hits + 2)) ] || fail "cache_hits did not move by two"
[ "$(grep -c "query\[A\] cached.corp.example" "$T/a.log")" = 1 ] || fail "A was asked more than once"
[ "$ttl1" = 300 ] && [ "$ttl2" -lt 300 ] || fail "cached TTLs: $ttl1 then $ttl2"
echo "$out" | grep "^CACHED.corp.example" >/dev/null || fail "the cached answer lost the asker's spelling: $out"
# The counters, for the log.
ctl_json raw dns.status '{}' | python3 -c 'import json,sys; c=json.load(sys.stdin)["engine"]["counters"]; print(" ".join(f"{k}={v}" for k,v in c.items() if v))'
daemon_stop
echo "dns: ok"

#!/usr/bin/env bash
# netext demo: a private netextd in a network namespace of its own; the example extension
# packed as a signed bundle, activated, replaced by a new version and approved; sandboxed
# as 'nobody'; the provider lifecycle: start, an app message round trip, crash and restart,
# stop. Everything is removed on exit or Ctrl-C.
# Usage: demo/demo.sh [BUILD_DIR]   (run as root; `make demo` does the build first)
set -euo pipefail

build=${1:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
netextd=$top/$build/src/daemon/netextd
netextctl_bin=$top/$build/src/ctl/netextctl
hello=$top/$build/examples/netext-hello

[ "$(id -u)" -eq 0 ] || { echo "demo: run as root (it creates a network namespace)" >&2; exit 1; }
for f in "$netextd" "$netextctl_bin" "$hello"; do
	[ -x "$f" ] || { echo "demo: $f missing; run 'make demo'" >&2; exit 1; }
done

ns=netext-demo-$$
dir=$(mktemp -d /tmp/netext-demo.XXXXXX)
chmod 755 "$dir"
cg=netext-demo-$$
dpid=

cleanup() {
	set +e
	if [ -n "$dpid" ] && kill -0 "$dpid" 2>/dev/null; then
		kill -TERM "$dpid"
		for _ in $(seq 50); do kill -0 "$dpid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$dpid" 2>/dev/null
	fi
	ip netns del "$ns" 2>/dev/null
	rm -rf "$dir"
	echo
	echo "demo: cleaned up (namespace $ns, state dir $dir, cgroup $cg)"
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

say "Stop netextd: running providers would get 'daemon-shutdown'; the extension exits, the table and cgroup go away"
echo "\$ kill -TERM $dpid"
kill -TERM "$dpid"
wait "$dpid" || true
dpid=
tail -4 "$dir/netextd.log"
echo "-- nftables tables left in the namespace: $(nsenter --net=/run/netns/"$ns" nft list tables | wc -l)"

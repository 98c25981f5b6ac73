# Shared library for netext integration tests. Source it, then call ns_init first.
#
#   ns_init                      unique prefix, cleanup trap; exit 77 (skip) without root/netns
#   ns_add NAME                  new namespace with lo up; echoes its full name
#   ns_link NS_A NS_B IDX        veth A<->B: 198.18.IDX.1/24 + fd00:198:18:IDX::1/64 on A, .2/::2 on B
#   ns_exec NS CMD...            run CMD in NS (nsenter, not `ip netns exec`: that remounts /sys)
#   ns_spawn NS CMD...           same, in the background; pid in $NS_PID, killed on cleanup
#   ns_track_pid PID             kill PID on cleanup
#   ns_cleanup                   kill tracked pids, delete our namespaces; idempotent
#   fail MSG                     print and exit 1
#   wait_for CMD...              retry CMD until it succeeds ($WAIT_TRIES x $WAIT_DELAY s)
#   gq PATTERN...                grep -q for pipelines (see below)
#
# Tests only make traffic inside namespaces they create, with 198.18.0.0/15 and
# fd00:198:18::/64 addresses. Nothing here touches the host's own network namespace.

NS_PREFIX=""
NS_CREATED=()
NS_PIDS=()
NS_PID=""
NS_TMPDIR=""
WAIT_TRIES=${WAIT_TRIES:-50}
WAIT_DELAY=${WAIT_DELAY:-0.1}

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# `producer | gq ` fails under pipefail when grep exits at the first match while the
# producer still writes (SIGPIPE): a longer log or listing makes such a test flaky. gq reads
# everything instead. (Inside `sh -c "..."` there is no pipefail; grep -q is fine there.)
gq() { grep "$@" >/dev/null; }

skip() {
	echo "SKIP: $*" >&2
	exit 77
}

ns_cleanup() {
	local pid ns
	for pid in "${NS_PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null
	done
	for pid in "${NS_PIDS[@]}"; do
		# Give each a moment to clean up after itself, then insist.
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	NS_PIDS=()
	# ns_add usually runs in a command substitution, whose NS_CREATED is lost: the unique
	# prefix finds those too.
	if [ -n "$NS_PREFIX" ]; then
		for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
			case "$ns" in "$NS_PREFIX"-*) NS_CREATED+=("$ns") ;; esac
		done
	fi
	for ns in "${NS_CREATED[@]}"; do
		ip netns del "$ns" 2>/dev/null
	done
	NS_CREATED=()
	if [ -n "$NS_TMPDIR" ]; then
		rm -rf -- "$NS_TMPDIR"
		NS_TMPDIR=""
	fi
}

ns_init() {
	[ "$(id -u)" = 0 ] || skip "needs root"
	command -v ip >/dev/null && command -v nsenter >/dev/null || skip "needs ip and nsenter"
	NS_PREFIX="ne$$-$(printf '%04x' $((RANDOM % 65536)))"
	trap 'ns_cleanup' EXIT
	trap 'ns_cleanup; exit 130' INT
	trap 'ns_cleanup; exit 143' TERM
	# Probe once: some sandboxes allow root but not new namespaces.
	if ! ip netns add "$NS_PREFIX-probe" 2>/dev/null; then
		skip "ip netns add is not permitted here"
	fi
	ip netns del "$NS_PREFIX-probe"
	NS_TMPDIR=$(mktemp -d "/tmp/$NS_PREFIX.XXXXXX") || fail "mktemp"
}

# Echoes the full name; use as: A=$(ns_add a) || fail "...".
ns_add() {
	local name="$NS_PREFIX-$1"
	ip netns add "$name" || fail "ip netns add $name"
	NS_CREATED+=("$name")
	ip -n "$name" link set lo up || fail "lo up in $name"
	echo "$name"
}

ns_link() {
	local a="$1" b="$2" idx="$3" va vb
	va="vA$idx-$$"
	vb="vB$idx-$$"
	va=${va:0:15}
	vb=${vb:0:15}
	ip -n "$a" link add "$va" type veth peer name "$vb" netns "$b" || fail "veth $a-$b"
	ip -n "$a" addr add "198.18.$idx.1/24" dev "$va" || fail "addr on $a"
	ip -n "$b" addr add "198.18.$idx.2/24" dev "$vb" || fail "addr on $b"
	ip -n "$a" -6 addr add "fd00:198:18:$idx::1/64" dev "$va" nodad || fail "addr6 on $a"
	ip -n "$b" -6 addr add "fd00:198:18:$idx::2/64" dev "$vb" nodad || fail "addr6 on $b"
	ip -n "$a" link set "$va" up || fail "link up $va"
	ip -n "$b" link set "$vb" up || fail "link up $vb"
}

ns_exec() {
	local ns="$1"
	shift
	nsenter --net="/run/netns/$ns" -- "$@"
}

ns_track_pid() {
	NS_PIDS+=("$1")
}

# nsenter execs the command in place, so $! is the command's own pid.
ns_spawn() {
	local ns="$1"
	shift
	nsenter --net="/run/netns/$ns" -- "$@" &
	NS_PID=$!
	ns_track_pid "$NS_PID"
}

wait_for() {
	local i
	for ((i = 0; i < WAIT_TRIES; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep "$WAIT_DELAY"
	done
	return 1
}

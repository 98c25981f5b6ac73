# Helpers for the packet-tunnel integration tests. Source after daemon.sh.
#
# Topology (tun_setup):
#   C  the client: netextd, the tunnel provider, the clients (ping, nc, dig, iperf3)
#   S  the server / VPN peer (udptun or wireguard-go), linked to C by a veth:
#        C 198.18.1.1 / fd00:198:18:1::1   S 198.18.1.2 / fd00:198:18:1::2   (transport)
#   O  (tun_add_outside) a host outside the tunnel, linked to C by a second veth:
#        C 198.18.2.1 / fd00:198:18:2::1   O 198.18.2.2 / fd00:198:18:2::2
# Inside the tunnel (tun_peer_udptun / tun_peer_wggo): C 198.19.1.1/24, 2001:db8:1::1/64;
# the peer 198.19.1.2, 2001:db8:1::2 and, only behind the tunnel, 198.19.100.1 and
# 2001:db8:100::1 on S's loopback ($P4 / $P6: "the peer-only addresses").
#
#   tun_setup                        C, S, the daemon in C, testtunnel registered (if built)
#   tun_add_outside                  O, linked to C
#   tun_peer_udptun IF PORT [N]      udptun in S on IF and UDP PORT, tunnel network N (default
#                                    1: 198.19.N.2/24, 2001:db8:N::2/64), the peer-only
#                                    addresses routed back over IF
#   tconfig NAME OPTION...           config add NAME (packet-tunnel, testtunnel unless $TEXT)
#   tstart NAME [--option K=V]...    netextctl tunnel start; fails the test if it fails
#   tstop NAME                       netextctl tunnel stop
#   tfield NAME FIELD                a field of NAME's entry in `tunnel status --json`
#   tks_held NAME                    true or false: NAME's kill_switch_held
#   tun_private_testtunnel           a copy of netext-testtunnel the test may chmod (before
#                                    tun_setup)
#   twait NAME STATE...              until NAME's state is one of STATE (20 s, or
#                                    TWAIT_TRIES tenths)
#   tiface NAME                      NAME's interface, once it has one
#   tun_assert_clean [IF]...         nothing of any tunnel left in C (devices, rules, tables,
#                                    rules in tunnel chains, DNS routes)
#   ext_msg NAME MSG                 an app message to NAME's provider, its answer on stdout
#   ext_stat NAME KEY                KEY's value in the answer to the `stats` message
#   link_pkts NS IF rx|tx            packets counted by IF in NS
#   wg_keys NAME                     $T/NAME.key and $T/NAME.pub (wg genkey / wg pubkey)
#   tun_peer_wggo IF PORT PEERPUB [N] [ENDPOINT]
#                                    wireguard-go -f in S with key $T/srv.key, peer PEERPUB
#                                    (allowed 198.19.N.0/24, 2001:db8:N::/64), addresses as
#                                    for udptun; $WG_PID is its pid
#   wg_handshake NS IF               the latest handshake time (unix s) wireguard-go reports
: "${UDPTUN:?UDPTUN not set}"
command -v nft >/dev/null || skip "needs nft"
[ -x /usr/bin/python3 ] || skip "needs /usr/bin/python3"
PY=/usr/bin/python3
TT_ID=com.example.testtunnel
C4=198.18.1.1
S4=198.18.1.2
C6=fd00:198:18:1::1
S6=fd00:198:18:1::2
O4=198.18.2.2
O6=fd00:198:18:2::2
P4=198.19.100.1
P6=2001:db8:100::1

# On failure, show what the daemon said and the tunnels' status.
fail() {
	echo "FAIL: $*" >&2
	if [ -n "${D_SOCK:-}" ] && [ -S "$D_SOCK" ]; then
		echo "--- netextctl tunnel status:" >&2
		ctl tunnel status >&2 2>&1
	fi
	[ -n "${D_LOG:-}" ] && [ -f "$D_LOG" ] && { echo "--- netextd log:" >&2; tail -30 "$D_LOG" >&2; }
	exit 1
}


tun_setup() {
	C=$(ns_add c) || fail "ns c"
	S=$(ns_add s) || fail "ns s"
	ns_link "$C" "$S" 1
	T=$NS_TMPDIR
	chmod 755 "$T" # the extension (nobody) reads its files here
	daemon_start "$C"
	if [ -n "${NETEXT_TESTTUNNEL:-}" ]; then
		[ -x "$NETEXT_TESTTUNNEL" ] || skip "netext-testtunnel is not built"
		ctl dev register $TT_ID "$NETEXT_TESTTUNNEL" >/dev/null || fail "register testtunnel"
	fi
	# Neighbour discovery on the transport link first.
	ns_exec "$C" ping -c1 -W2 $S4 >/dev/null 2>&1
	ns_exec "$C" ping -6 -c1 -W2 $S6 >/dev/null 2>&1
}

tun_add_outside() {
	O=$(ns_add o) || fail "ns o"
	ns_link "$C" "$O" 2
	ns_exec "$C" ping -c1 -W2 $O4 >/dev/null 2>&1 || fail "O is not reachable before any tunnel"
}

# The peer's tunnel addresses and the peer-only ones, on IF in S.
tun_peer_addrs() { # IF N
	local ifc=$1 n=$2
	ip -n "$S" addr add "198.19.$n.2/24" dev "$ifc" || fail "addr on $ifc"
	ip -n "$S" -6 addr add "2001:db8:$n::2/64" dev "$ifc" nodad || fail "addr6 on $ifc"
	ip -n "$S" link set "$ifc" up || fail "$ifc up"
	if ! ip -n "$S" addr show dev lo | gq "$P4"; then
		ip -n "$S" addr add "$P4/32" dev lo || fail "peer-only address"
		ip -n "$S" -6 addr add "$P6/128" dev lo nodad || fail "peer-only address v6"
	fi
}

tun_peer_udptun() { # IF PORT [N]
	local ifc=$1 port=$2 n=${3:-1}
	ns_spawn "$S" "$UDPTUN" -i "$ifc" -l "$port" 2>>"$T/udptun-$ifc.log"
	UDPTUN_PID=$NS_PID
	wait_for ip -n "$S" link show dev "$ifc" || fail "udptun did not make $ifc"
	tun_peer_addrs "$ifc" "$n"
}

tconfig() { # NAME OPTION...
	local name=$1 o opts=()
	shift
	for o in "$@"; do opts+=(--option "$o"); done
	ctl config add "$name" --extension "${TEXT:-$TT_ID}" --provider packet-tunnel "${opts[@]}" \
		>"$T/out" 2>&1 || { cat "$T/out"; fail "config add $name"; }
}

tstart() { # NAME [--option K=V]...
	ctl tunnel start "$@" >"$T/out" 2>&1 || { cat "$T/out"; fail "tunnel start $1"; }
}

tstop() {
	ctl tunnel stop "$1" >"$T/out" 2>&1 || { cat "$T/out"; fail "tunnel stop $1"; }
}

# jq when there is one: python starts slowly on a loaded machine, and twait polls.
tfield() { # NAME FIELD
	if command -v jq >/dev/null; then
		ctl_json tunnel status "$1" 2>/dev/null |
			jq -r --arg n "$1" ".tunnels[] | select(.configuration == \$n) | .$2 // empty" 2>/dev/null
	else
		ctl_json tunnel status "$1" 2>/dev/null | jq_get ".tunnels[] | select(.configuration == \"$1\") | .$2" 2>/dev/null
	fi
}

tstate() { tfield "$1" state; }

# tks_held NAME: true or false, the status's kill_switch_held (jq's // empty would hide false).
tks_held() {
	ctl_json tunnel status "$1" | "$PY" -c '
import json, sys
t = [x for x in json.load(sys.stdin)["tunnels"] if x["configuration"] == sys.argv[1]]
print(json.dumps(t[0]["kill_switch_held"]) if t else "")' "$1"
}

# tun_private_testtunnel: use a copy of netext-testtunnel in the test's directory (call before
# tun_setup), so that the test can hold the supervisor's restart back with chmod 644 (each
# refused exec counts as a crash: set restart_max in D_CONF_EXTRA to suit).
tun_private_testtunnel() {
	mkdir -p "$NS_TMPDIR/bin"
	cp "$NETEXT_TESTTUNNEL" "$NS_TMPDIR/bin/netext-testtunnel" || fail "copy netext-testtunnel"
	chmod 755 "$NS_TMPDIR" "$NS_TMPDIR/bin" "$NS_TMPDIR/bin/netext-testtunnel"
	NETEXT_TESTTUNNEL=$NS_TMPDIR/bin/netext-testtunnel
}

twait() { # NAME STATE...
	local name=$1 s
	shift
	for _ in $(seq "${TWAIT_TRIES:-200}"); do
		s=$(tstate "$name")
		for want in "$@"; do [ "$s" = "$want" ] && return 0; done
		sleep 0.1
	done
	fail "tunnel $name: state '$s', want $*"
}

tiface() { tfield "$1" interface; }

# Rules at the tunnel priorities, routes in the tunnel tables, rules in tunnel chains, devices, routes.
tun_leftovers() { # [IF]...
	local f ifc
	for f in -4 -6; do
		ns_exec "$C" ip "$f" rule show | awk -F: '$1 >= 7130 && $1 <= 7194 { print "rule: " $0 }'
		ns_exec "$C" ip "$f" route show table all 2>/dev/null |
			awk '{ for (i = 1; i < NF; i++) if ($i == "table" && $(i + 1) >= 7160 && $(i + 1) <= 7174) { print "route: " $0; break } }'
	done
	ns_exec "$C" ip -o link show | awk -F': ' '$2 ~ /^netext[0-9]+(@|$)/ { print "device: " $2 }'
	for ifc in "$@"; do
		ns_exec "$C" ip link show dev "$ifc" >/dev/null 2>&1 && echo "device: $ifc"
	done
	# netextd keeps a base chain it no longer needs, empty, until it stops (deleting one would
	# drop every queued packet, see dp_nft.h): rules left in the tunnel's chains count.
	ns_exec "$C" nft list table inet netext 2>/dev/null | awk '
		$1 == "chain" { c = $2; next }
		$1 == "}" { c = ""; next }
		c ~ /(tun|kill)/ && $1 != "type" && NF { print "nft: " c ": " $0 }'
	ctl dns route list 2>/dev/null | grep -F 'tunnel:' | sed 's/^/dns route: /'
	return 0
}

tun_assert_clean() { # [IF]...
	local left
	# Teardown follows the state change closely, not necessarily before it.
	for _ in $(seq 50); do
		left=$(tun_leftovers "$@")
		[ -z "$left" ] && return 0
		sleep 0.1
	done
	fail "left behind after the tunnel went away:
$left"
}

ext_msg() { # NAME MSG
	ctl message "$1" "$2"
}

ext_stat() { # NAME KEY: from "KEY=VALUE" or "KEY: VALUE" lines, or JSON
	ext_msg "$1" stats 2>/dev/null | "$PY" -c '
import json, re, sys
want, text = sys.argv[1], sys.stdin.read()
try:
    d = json.loads(text)
    todo = [d]
    while todo:
        v = todo.pop(0)
        if isinstance(v, dict):
            if want in v: print(v[want]); sys.exit(0)
            todo.extend(v.values())
except ValueError:
    pass
for m in re.finditer(r"(?m)(?:^|\s)" + re.escape(want) + r"\s*[=:]\s*(\d+)", text):
    print(m.group(1)); sys.exit(0)
print(0)' "$2"
}

# (Not /sys/class/net: nsenter keeps the host's /sys, which shows the host's devices.)
link_pkts() { # NS IF rx|tx
	if command -v jq >/dev/null; then
		ip -n "$1" -j -s link show dev "$2" 2>/dev/null | jq -r ".[0].stats64.$3.packets // 0" 2>/dev/null || echo 0
		return
	fi
	ip -n "$1" -j -s link show dev "$2" 2>/dev/null | "$PY" -c '
import json, sys
try:
    print(json.load(sys.stdin)[0]["stats64"][sys.argv[1]]["packets"])
except Exception:
    print(0)' "$3"
}

# A TCP transfer of FILE from C to a listener in S at DST:PORT; the received bytes are
# compared with FILE.
tcp_xfer() { # DST PORT FILE [FROM_NS] [TO_NS]
	local dst=$1 port=$2 file=$3 from=${4:-$C} to=${5:-$S} fam=-4 rl
	[[ $dst == *:* ]] && fam=-6
	: > "$T/rx.bin"
	ns_spawn "$to" timeout 60 nc "$fam" -d -l "$dst" "$port" > "$T/rx.bin"
	rl=$NS_PID
	wait_for ns_exec "$to" sh -c "ss -Hlnt 'sport = :$port' | grep -q ." || fail "listener on $dst:$port"
	ns_exec "$from" timeout 60 nc -N "$dst" "$port" < "$file" || fail "nc to $dst:$port failed"
	wait "$rl" 2>/dev/null
	cmp -s "$file" "$T/rx.bin" ||
		fail "TCP to $dst:$port: received $(wc -c < "$T/rx.bin") bytes, not the $(wc -c < "$file") sent"
}

# --- WireGuard ---------------------------------------------------------------------------------
wg_keys() {
	(umask 077; wg genkey > "$T/$1.key") || fail "wg genkey"
	wg pubkey < "$T/$1.key" > "$T/$1.pub" || fail "wg pubkey"
	chmod 644 "$T/$1.key" # the extension (nobody) reads its configuration
}

tun_peer_wggo() { # IF PORT PEERPUB [N] [ENDPOINT]
	local ifc=$1 port=$2 pub=$3 n=${4:-1} ep=${5:-} args=()
	ns_spawn "$S" env WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 LOG_LEVEL=error \
		wireguard-go -f "$ifc" >>"$T/wireguard-go-$ifc.log" 2>&1
	WG_PID=$NS_PID
	wait_for test -S "/var/run/wireguard/$ifc.sock" || fail "wireguard-go did not make $ifc"
	[ -n "$ep" ] && args=(endpoint "$ep")
	ns_exec "$S" wg set "$ifc" private-key "$T/srv.key" listen-port "$port" \
		peer "$pub" allowed-ips "198.19.$n.0/24,2001:db8:$n::/64" "${args[@]}" ||
		fail "wg set $ifc"
	tun_peer_addrs "$ifc" "$n"
}

wg_handshake() { # NS IF
	ns_exec "$1" wg show "$2" latest-handshakes 2>/dev/null | awk '{ print $2; exit }'
}

# A wg-quick style file for netext-wgtunnel: client key $T/cli.key, server $T/srv.pub.
wg_client_conf() { # FILE PORT ENDPOINT ALLOWED [EXTRA_INTERFACE_LINES]
	cat > "$1" <<EOF
[Interface]
PrivateKey = $(cat "$T/cli.key")
Address = 198.19.1.1/24, 2001:db8:1::1/64
ListenPort = $2
MTU = 1420
${5:-}

[Peer]
PublicKey = $(cat "$T/srv.pub")
Endpoint = $3
AllowedIPs = $4
EOF
	chmod 644 "$1"
}

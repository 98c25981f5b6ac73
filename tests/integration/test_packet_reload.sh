#!/usr/bin/env bash
# Packets a filter-packet provider holds survive changes of netextd's nftables table.
# The kernel drops every packet queued to any NFQUEUE of the namespace whenever a netfilter
# hook is unregistered (nfqnl_nf_hook_drop), so replacing the table wholesale loses them.
# netextd therefore updates its table in place, base chains kept: this test holds datagrams
# in the provider (mode delay) while
#   1. a split-DNS route turns DNS interception on (new chains and rules), and
#   2. its removal turns interception off again (those chains' rules go),
# and expects every held datagram to arrive, in order. It also checks that a chain whose rules
# did not change keeps its rules (same handles), and that nothing is left after the daemon stops.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/lib/daemon.sh"
. "$here/lib/packet.sh"
pkt_setup

dns_rules() { ns_exec "$H" nft list table inet netext 2>/dev/null | grep -c "dport 53"; }

# held N PORT DELAY_MS TRIGGER...: N datagrams held DELAY_MS by the provider while TRIGGER
# runs (it must change the table before they are released); all must arrive in order.
held() {
	local n=$1 port=$2 delay=$3 rl t0 t1
	shift 3
	pconfig "hold$port" open mode=delay delay_ms="$delay" protocol=udp port="$port" \
		verdict_timeout_ms=60000 delay_max_ms=60000
	: > "$T/rx"
	ns_spawn "$S" "$UDPECHO" recv $S4 "$port" -n "$n" -t $((delay + 8000)) > "$T/rx"
	rl=$NS_PID
	wait_for ns_exec "$S" sh -c "ss -Hlnu 'sport = :$port' | grep -q ." || fail "receiver $port"
	t0=$(date +%s%N)
	ns_exec "$H" "$UDPECHO" send $S4 "$port" -n "$n" -p "held" -i 1000 >/dev/null || fail "send to $port"
	"$@"
	t1=$(date +%s%N)
	[ -s "$T/rx" ] && fail "$*: datagrams arrived before the table changed (delay too short to test)"
	[ $(((t1 - t0) / 1000000)) -lt "$delay" ] ||
		fail "$*: the table change took longer than the provider holds the datagrams"
	wait "$rl" 2>/dev/null
	[ "$(udp_seqs "$T/rx" | tr '\n' ' ')" = "$(seq 0 $((n - 1)) | tr '\n' ' ')" ] ||
		{ ctl packet status; tail -20 "$D_LOG"; fail "$*: $(wc -l < "$T/rx") of $n held datagrams arrived"; }
	punconfig "hold$port"
	echo "ok: $n held datagrams survived: $*"
}

route_add() {
	ctl dns route add reload.example $S4 >/dev/null || fail "dns route add"
	WAIT_TRIES=40 WAIT_DELAY=0.05 wait_for sh -c "[ \$(nsenter --net=/run/netns/$H nft list table inet netext | grep -c 'dport 53') -gt 0 ]" ||
		{ ns_exec "$H" nft list table inet netext; fail "no DNS interception rules after the route was added"; }
}
route_del() {
	ctl dns route del reload.example >/dev/null || fail "dns route del"
	# Interception drains for 3 s, then its rules go.
	WAIT_TRIES=100 WAIT_DELAY=0.1 wait_for sh -c "[ \$(nsenter --net=/run/netns/$H nft list table inet netext | grep -c 'dport 53') = 0 ]" ||
		{ ns_exec "$H" nft list table inet netext; fail "DNS interception rules still there after the route went"; }
}

[ "$(dns_rules)" = 0 ] || fail "DNS interception before any route"
held 20 6301 2500 route_add
held 20 6302 8000 route_del

# A chain whose rules did not change is not touched: after an unrelated change (a DNS route)
# the packet filter's rules in pkt_out have the same handles (so counters would carry on too).
pconfig count open mode=allow protocol=udp port=6303
udp_run "$H" $S4 6303 10 "counted" "$T/rx"
c0=$(ns_exec "$H" nft list chain inet netext pkt_out | grep -c "queue")
h0=$(ns_exec "$H" nft -a list chain inet netext pkt_out | grep "queue" | head -1 | sed 's/.*# handle //')
route_add
h1=$(ns_exec "$H" nft -a list chain inet netext pkt_out | grep "queue" | head -1 | sed 's/.*# handle //')
[ -n "$h0" ] && [ "$h0" = "$h1" ] || { ns_exec "$H" nft -a list table inet netext; fail "pkt_out's rules were replaced by an unrelated change (handle $h0 -> $h1)"; }
[ "$(ns_exec "$H" nft list chain inet netext pkt_out | grep -c "queue")" = "$c0" ] || fail "pkt_out changed"
echo "ok: an unchanged chain keeps its rules (handle $h0)"
punconfig count
ctl dns route del reload.example >/dev/null

daemon_stop
assert_clean_after_stop
echo "ok"

#!/usr/bin/env bash
# The packet filter's daemon side without a packet provider: configurations of type
# filter-packet are accepted (fail policy open by default), only the first by order is
# active, nothing is queued before a provider applies settings, packet status answers in
# text and JSON, and removing the configurations leaves nothing behind. The traffic tests
# are test_packet*.sh.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/lib/daemon.sh"


daemon_test_start
ns=$D_NS
# An extension that never says HELLO: its configurations are enabled without a provider.
printf '#!/bin/sh\nexec sleep 60\n' > "$D_DIR/silent"
chmod 755 "$D_DIR/silent"
ctl dev register com.example.nothing "$D_DIR/silent" --user nobody >/dev/null || fail "register"

status_field() { ctl_json packet status | python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

[ "$(status_field '["enabled"]')" = False ] || fail "packet status: enabled without a configuration"
[ "$(status_field '["counters"]["received"]')" = 0 ] || fail "packet status: counters missing"

ctl config add pf-b --extension com.example.nothing --provider filter-packet --option order=20 \
	--option verdict_timeout_ms=500 >/dev/null || fail "config add filter-packet refused"
ctl config add pf-a --extension com.example.nothing --provider filter-packet --fail-closed \
	--option order=10 --option ring_kib=100 >/dev/null || fail "config add (closed)"
ctl_json configs | gq '"pf-b".*"fail_policy": *"open"\|"fail_policy": *"open".*"pf-b"' ||
	ctl_json configs | python3 -c '
import json, sys
c = {x["name"]: x for x in json.load(sys.stdin)["configurations"]}
assert c["pf-b"]["fail_policy"] == "open", c["pf-b"]
assert c["pf-a"]["fail_policy"] == "closed", c["pf-a"]' || fail "filter-packet fail policy defaults"
ctl start pf-b >/dev/null || fail "start pf-b"
ctl start pf-a >/dev/null || fail "start pf-a"
WAIT_TRIES=50 WAIT_DELAY=0.1 wait_for sh -c "NETEXT_SOCKET=$D_SOCK $NETEXTCTL --json packet status | grep -q '\"pf-a\"'" ||
	{ ctl packet status; fail "pf-a (order 10) is not the active configuration"; }
[ "$(status_field '["standby"]')" = "['pf-b']" ] || fail "pf-b does not wait behind pf-a"
[ "$(status_field '["fail_policy"]')" = closed ] || fail "pf-a fail policy"
[ "$(status_field '["ring_kib"]')" = 4096 ] || fail "ring_kib 100 (not a power of two) was not replaced by the default"
[ "$(status_field '["n_queues"]')" = 0 ] || fail "queues bound before any settings"
ctl packet status | gq "^configuration pf-a: provider" || fail "packet status text"
nsenter --net=/run/netns/"$ns" nft list table inet netext | gq "pkt_" &&
	fail "packet chains exist before a provider applied settings"

ctl stop pf-a >/dev/null 2>&1
WAIT_TRIES=50 WAIT_DELAY=0.1 wait_for sh -c "NETEXT_SOCKET=$D_SOCK $NETEXTCTL --json packet status | grep -q '\"configuration\": *\"pf-b\"'" ||
	{ ctl packet status; fail "pf-b did not take over after pf-a stopped"; }
ctl config remove pf-a >/dev/null || fail "remove pf-a"
ctl config remove pf-b >/dev/null || fail "remove pf-b"
[ "$(status_field '["enabled"]')" = False ] || fail "packet status: still enabled after removal"
ctl packet bogus >/dev/null 2>&1; [ $? = 2 ] || fail "packet bogus: not a usage error"

daemon_stop
nsenter --net=/run/netns/"$ns" nft list tables | gq netext && fail "table left after exit"
grep -q "7200" /proc/net/netfilter/nfnetlink_queue 2>/dev/null && fail "queue left bound"
echo ok

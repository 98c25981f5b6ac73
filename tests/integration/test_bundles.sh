#!/usr/bin/env bash
# The system-extension lifecycle with real signed bundles, a real netextd (not in
# developer mode) and netextctl as root and as an unprivileged user: activation,
# replacement with configurations kept, decisions, approval across a restart, rejection,
# superseding, deactivation, re-activation and managed policy.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/lib/daemon.sh"
. "$here/lib/bundle.sh"

ID=com.acme.hello
keygen ACME
keygen OTHER
policy_team ACME no
policy_team OTHER no
start() { D_DEVELOPER=0 daemon_start "$D_NS" --policy-dir "$POLICY_DIR"; }
D_NS=$(ns_add host) || fail "cannot create a namespace"
start

running_version() {
	[ "$(ext_field "$ID" state)" = running ] && [ "$(ext_field "$ID" version)" = "$1" ]
}

for v in 1 2 3 4 5 6; do
	make_bundle "$B_DIR/v$v.netext" "$ID" "$v" "1.$v.0" ACME
	sign_bundle "$B_DIR/v$v.netext" ACME
done
ctl verify "$B_DIR/v1.netext" --key "$B_DIR/ACME.key.pub" >/dev/null || fail "verify of a signed bundle failed"

echo "== an administrator's activation completes at once"
ctl activate "$B_DIR/v1.netext" || { tail -20 "$D_LOG"; fail "activate v1 failed"; }
WAIT_TRIES=100 WAIT_DELAY=0.05 wait_for running_version 1 || { ctl list; tail -20 "$D_LOG"; fail "v1 not running"; }
[ "$(ext_field "$ID" team)" = ACME ] || fail "team not recorded"
[ "$(ext_field "$ID" short_version)" = 1.1.0 ] || fail "short version not recorded"
[ "$(ext_field "$ID" lifecycle)" = enabled ] || fail "lifecycle is not enabled"
ctl list | grep "$ID" | gq ACME || { ctl list; fail "list does not show team and identifier"; }
[ "$(store_count)" -eq 1 ] || fail "store should hold one bundle"
ctl config add demo --extension "$ID" --provider message --option greeting=hi || fail "config add failed"
ctl start demo >/dev/null || fail "start demo failed"
[ "$(ctl message demo ping)" = pong ] || fail "provider in the bundle does not answer"
who=$(ctl message demo whoami)
case "$who" in *"uid=65534 "*) ;; *) fail "bundle does not run as the extension user: $who" ;; esac
pid1=$(ext_pid "$ID")
# The source directory can change now: what runs is the store's copy.
echo garbage > "$B_DIR/v1.netext/bin/netext-hello"
ctl restart "$ID" >/dev/null
WAIT_TRIES=100 WAIT_DELAY=0.05 wait_for running_version 1 || fail "restart from the store copy failed"
make_bundle "$B_DIR/v1.netext" "$ID" 1 1.1.0 ACME
sign_bundle "$B_DIR/v1.netext" ACME
pid1=$(ext_pid "$ID")

echo "== the same bundle again changes nothing"
ctl activate "$B_DIR/v1.netext" >/dev/null || fail "re-activating the same version failed"
[ "$(ext_pid "$ID")" = "$pid1" ] || fail "re-activating the same version restarted it"
[ "$(store_count)" -eq 1 ] || fail "re-activating the same version left a copy"

echo "== replacement: app-update stop, configuration kept and started in the new version"
ctl activate --replace "$B_DIR/v2.netext" || { tail -20 "$D_LOG"; fail "replace with v2 failed"; }
WAIT_TRIES=100 WAIT_DELAY=0.05 wait_for running_version 2 || { ctl list; fail "v2 not running"; }
kill -0 "$pid1" 2>/dev/null && fail "version 1 (pid $pid1) still runs"
ctl logs -n 500 | gq "stopping (app-update)" || { ctl logs -n 50; fail "old provider did not get app-update"; }
WAIT_TRIES=100 WAIT_DELAY=0.05 wait_for sh -c "[ \"\$(NETEXT_SOCKET=$D_SOCK $NETEXTCTL message demo ping 2>/dev/null)\" = pong ]" \
	|| fail "configuration demo did not start again in version 2"
[ "$(store_count)" -eq 1 ] || fail "old bundle not removed from the store after replacement"

echo "== --no-replace cancels and changes nothing"
expect_error 1 request-cancelled ctl activate --no-replace "$B_DIR/v3.netext"
running_version 2 || fail "a cancelled request changed the extension"
[ "$(store_count)" -eq 1 ] || fail "a cancelled request left its copy"

echo "== a non-administrator's request waits for approval, also across a restart"
out=$(as_user activate "$B_DIR/v3.netext" 2>&1) || fail "request by nobody failed: $out"
echo "$out"
case "$out" in *approve*) ;; *) fail "requester not told that approval is needed: $out" ;; esac
[ "$(ctl_json list | jq_get ".requests[] | select(.identifier == \"$ID\") | .version")" = 3 ] \
	|| { ctl_json list; fail "request not listed"; }
ctl list | grep -i "awaiting" >/dev/null || { ctl list; fail "list does not show the waiting request"; }
ctl_json properties "$ID" | gq '"awaiting_approval": true' || fail "properties do not show awaiting approval"
running_version 2 || fail "a waiting request changed the extension"
daemon_stop
start
[ "$(ctl_json list | jq_get ".requests[] | select(.identifier == \"$ID\") | .version")" = 3 ] \
	|| fail "the request did not survive a daemon restart"
ctl approve "$ID" || { tail -20 "$D_LOG"; fail "approve failed"; }
WAIT_TRIES=100 WAIT_DELAY=0.05 wait_for running_version 3 || { ctl list; fail "approved v3 not running"; }
[ -z "$(ctl_json list | jq_get '.requests[]')" ] || fail "approved request still listed"
[ "$(store_count)" -eq 1 ] || fail "store should hold only version 3"
# The provider may still be starting in the new version: a stop must be answered anyway.
ctl stop demo | gq stopped || fail "stop right after a replacement was not answered"
ctl start demo | gq running || fail "demo did not start again"

echo "== rejection"
as_user activate "$B_DIR/v4.netext" >/dev/null 2>&1 || fail "request v4 failed"
ctl reject "$ID" || fail "reject failed"
[ -z "$(ctl_json list | jq_get '.requests[]')" ] || fail "rejected request still listed"
[ "$(store_count)" -eq 1 ] || fail "rejected request left its copy"
running_version 3 || fail "rejection changed the extension"
expect_error 5 extension-not-found ctl approve "$ID"

echo "== a waiting requester is told each step"
as_user activate --wait --replace "$B_DIR/v4.netext" > "$B_DIR/wait.out" 2>&1 &
waiter=$!
WAIT_TRIES=100 WAIT_DELAY=0.05 wait_for sh -c "NETEXT_SOCKET=$D_SOCK $NETEXTCTL --json list | grep -q '\"request\"'" \
	|| fail "--wait request never queued"
ctl approve "$ID" >/dev/null || fail "approve v4 failed"
wait "$waiter" || { cat "$B_DIR/wait.out"; fail "activate --wait did not succeed"; }
cat "$B_DIR/wait.out"
grep -qi "approv" "$B_DIR/wait.out" || fail "--wait did not report that approval was needed"
grep -q "4" "$B_DIR/wait.out" || fail "--wait did not report the new version"
WAIT_TRIES=100 WAIT_DELAY=0.05 wait_for running_version 4 || fail "v4 not running"

echo "== a newer request supersedes a waiting one"
as_user activate --wait "$B_DIR/v5.netext" > "$B_DIR/super.out" 2>&1 &
waiter=$!
WAIT_TRIES=100 WAIT_DELAY=0.05 wait_for sh -c "NETEXT_SOCKET=$D_SOCK $NETEXTCTL --json list | grep -q '\"request\"'" \
	|| fail "v5 request never queued"
as_user activate "$B_DIR/v6.netext" >/dev/null 2>&1 || fail "request v6 failed"
wait "$waiter" && fail "superseded requester exited 0"
grep -q request-superseded "$B_DIR/super.out" || { cat "$B_DIR/super.out"; fail "requester not told request-superseded"; }
[ "$(ctl_json list | jq_get ".requests[] | select(.identifier == \"$ID\") | .version")" = 6 ] \
	|| fail "the newer request is not the one waiting"
ctl reject "$ID" >/dev/null || fail "reject v6 failed"
[ "$(store_count)" -eq 1 ] || fail "superseded copies left in the store"

echo "== another team cannot take the identifier"
make_bundle "$B_DIR/other.netext" "$ID" 9 9.0.0 OTHER
sign_bundle "$B_DIR/other.netext" OTHER
expect_error 1 duplicate-identifier ctl activate --replace "$B_DIR/other.netext"

echo "== policy: downgrades and removal"
printf '[Policy]\nAllowDowngrade = no\nNonRemovable = %s\n' "$ID" > "$POLICY_DIR/30-fleet.conf"
expect_error 4 forbidden-by-policy ctl activate --replace "$B_DIR/v2.netext"
expect_error 4 forbidden-by-policy ctl deactivate "$ID"
rm "$POLICY_DIR/30-fleet.conf"
[ "$(store_count)" -eq 1 ] || fail "refused requests left copies"

echo "== deactivation"
expect_error 4 authorization-required as_user deactivate "$ID"
pid4=$(ext_pid "$ID")
ctl deactivate "$ID" || fail "deactivate failed"
WAIT_TRIES=100 WAIT_DELAY=0.05 wait_for sh -c "! kill -0 $pid4 2>/dev/null" || fail "process survived deactivation"
[ -z "$(ext_field "$ID" identifier)" ] || fail "deactivated extension still listed"
[ -z "$(ctl_json configs | jq_get '.configurations[]')" ] || fail "configurations survived deactivation"
[ "$(store_count)" -eq 0 ] || fail "bundle left in the store after deactivation"
ctl logs -n 500 | gq "stopping (configuration-removed)" || fail "provider not stopped with configuration-removed"
expect_error 5 extension-not-found ctl deactivate "$ID"

echo "== re-activation"
ctl activate "$B_DIR/v1.netext" >/dev/null || fail "re-activation failed"
WAIT_TRIES=100 WAIT_DELAY=0.05 wait_for running_version 1 || fail "re-activated v1 not running"

echo "== managed policy approves without anyone present"
policy_team ACME yes "Extensions = com.acme.fleet com.acme.later"
make_bundle "$B_DIR/fleet.netext" com.acme.fleet 1 1.0.0 ACME
sign_bundle "$B_DIR/fleet.netext" ACME
as_user activate "$B_DIR/fleet.netext" || fail "policy-approved request failed"
WAIT_TRIES=100 WAIT_DELAY=0.05 wait_for sh -c "NETEXT_SOCKET=$D_SOCK $NETEXTCTL --json list | grep -q '\"identifier\": \"com.acme.fleet\"'" \
	|| fail "policy-approved extension not installed"
# An identifier the policy does not list still waits.
make_bundle "$B_DIR/manual.netext" com.acme.manual 1 1.0.0 ACME
sign_bundle "$B_DIR/manual.netext" ACME
as_user activate "$B_DIR/manual.netext" >/dev/null 2>&1 || fail "request for com.acme.manual failed"
[ "$(ctl_json list | jq_get '.requests[] | select(.identifier == "com.acme.manual") | .version')" = 1 ] \
	|| fail "a request outside the policy's Extensions did not wait"
# A request made before the policy allowed it goes ahead once the policy does (SIGHUP).
make_bundle "$B_DIR/later.netext" com.acme.later 1 1.0.0 ACME
sign_bundle "$B_DIR/later.netext" ACME
policy_team ACME no
as_user activate "$B_DIR/later.netext" >/dev/null 2>&1 || fail "request for com.acme.later failed"
[ "$(ctl_json list | jq_get '.requests[] | select(.identifier == "com.acme.later") | .version')" = 1 ] \
	|| fail "com.acme.later should wait while the policy says Approve = no"
policy_team ACME yes "Extensions = com.acme.fleet com.acme.later"
kill -HUP "$(daemon_pid)"
WAIT_TRIES=100 WAIT_DELAY=0.05 wait_for sh -c "NETEXT_SOCKET=$D_SOCK $NETEXTCTL --json list | grep -q '\"identifier\": \"com.acme.later\"'" \
	|| { tail -20 "$D_LOG"; fail "policy did not approve the waiting request"; }

echo "== someone who is not an administrator cannot queue requests without bound"
n=0
for i in $(seq 12); do
	make_bundle "$B_DIR/q$i.netext" "com.acme.q$i" 1 1.0.0 ACME
	sign_bundle "$B_DIR/q$i.netext" ACME
	out=$(as_user activate "$B_DIR/q$i.netext" 2>&1) || break
	n=$((n + 1))
done
case "$out" in *busy*) ;; *) fail "request $((n + 1)) was not refused as busy: $out" ;; esac
mine=$(ctl_json list | jq_get '.requests[] | select(.requester_uid == "65534") | .identifier' | wc -l)
[ "$mine" -eq 8 ] || fail "nobody has $mine waiting requests, the limit is 8"
ctl activate "$B_DIR/q$i.netext" >/dev/null || fail "the limit must not apply to administrators"

daemon_stop
echo "PASS"

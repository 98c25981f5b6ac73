#!/usr/bin/env bash
# Bad bundles get a typed error and leave nothing in the store; kill -9 of the daemon in the
# middle of activations and replacements leaves the old state or the new one, never half.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/lib/daemon.sh"
. "$here/lib/bundle.sh"

ID=com.acme.bad
keygen ACME
keygen ROGUE
policy_team ACME no
start() { D_DEVELOPER=${1:-0} daemon_start "$D_NS" --policy-dir "$POLICY_DIR"; }
D_NS=$(ns_add host) || fail "cannot create a namespace"
start

good() { # DIR: a fresh, signed, valid bundle
	make_bundle "$1" "$ID" 1 1.0.0 ACME
	sign_bundle "$1" ACME
}
refused() { # EXIT CODE DIR [activate options]: refused with nothing installed or stored
	local rc=$1 code=$2 dir=$3
	shift 3
	expect_error "$rc" "$code" ctl activate "$@" "$dir"
	[ "$(store_count)" -eq 0 ] || { ls -la "$D_DIR/state/bundles"; fail "$code: something was left in the store"; }
	[ -z "$(ctl_json list | jq_get '.extensions[]')" ] || fail "$code: something was installed"
	[ -z "$(ctl_json list | jq_get '.requests[]')" ] || fail "$code: a request was queued"
}
B=$B_DIR/b.netext

echo "== signatures"
make_bundle "$B" "$ID" 1 1.0.0 ACME
refused 1 signature-invalid "$B"
good "$B"
printf '\x01' | dd of="$B/bin/netext-hello" bs=1 seek=4000 conv=notrunc status=none
refused 1 signature-invalid "$B"
expect_error 1 signature-invalid ctl verify "$B"
good "$B"
echo extra > "$B/share/added"
refused 1 signature-invalid "$B"
good "$B"
rm "$B/share/README"
refused 1 signature-invalid "$B"
good "$B"
echo "# edited" >> "$B/extension.conf"
refused 1 signature-invalid "$B"
make_bundle "$B" "$ID" 1 1.0.0 ROGUE
sign_bundle "$B" ROGUE
refused 1 signature-invalid "$B"
# Signed by ACME's key but claiming another team.
make_bundle "$B" "$ID" 1 1.0.0 ROGUE
ctl sign "$B" --key "$B_DIR/ACME.key" >/dev/null 2>&1 && fail "signing for another team must fail"
good "$B"
truncate -s 100 "$B/netext.sig"
refused 1 signature-invalid "$B"

echo "== manifests"
good "$B"; sed -i '/^Identifier/d' "$B/extension.conf"; refused 1 missing-identifier "$B"
good "$B"; sed -i 's/^Providers.*/Providers = message teleport/' "$B/extension.conf"; refused 1 unknown-provider-type "$B"
good "$B"; sed -i 's/^Version.*/Version = three/' "$B/extension.conf"; refused 1 validation-failed "$B"
good "$B"; echo "Color = blue" >> "$B/extension.conf"; refused 1 validation-failed "$B"
good "$B"; printf '[Extension]\nIdentifier = %s\n' "$ID" > "$B/extension.conf"; refused 1 validation-failed "$B"
good "$B"; rm "$B/extension.conf"; refused 5 extension-not-found "$B"

echo "== files"
good "$B"; sed -i 's|^Executable.*|Executable = ../../bin/sh|' "$B/extension.conf"; refused 1 validation-failed "$B"
good "$B"; sed -i 's|^Executable.*|Executable = /bin/sh|' "$B/extension.conf"; refused 1 validation-failed "$B"
good "$B"; sed -i 's|^Executable.*|Executable = bin/missing|' "$B/extension.conf"; refused 1 validation-failed "$B"
good "$B"; chmod 644 "$B/bin/netext-hello"; refused 1 validation-failed "$B"
good "$B"; ln -s ../../../../etc/shadow "$B/share/shadow"; refused 1 validation-failed "$B"
good "$B"; ln -s /etc/passwd "$B/share/passwd"; refused 1 validation-failed "$B"
good "$B"; mkfifo "$B/share/fifo"; refused 1 validation-failed "$B"
good "$B"; truncate -s 300M "$B/share/huge"; refused 1 validation-failed "$B"
good "$B"; for i in $(seq 4100); do : > "$B/share/f$i"; done; refused 1 validation-failed "$B"
expect_error 5 "" ctl activate "$B_DIR/does-not-exist.netext"
# Someone who is not an administrator cannot have the daemon copy what they cannot read.
good "$B"
echo secret > "$B/share/secret"; chmod 600 "$B/share/secret"
expect_error 1 validation-failed as_user activate "$B"
[ "$(store_count)" -eq 0 ] || fail "unreadable file: something was left in the store"

echo "== developer mode accepts unsigned bundles, never unknown teams"
daemon_stop
start 1
make_bundle "$B" "$ID" 1 1.0.0 ACME
ctl activate "$B" >/dev/null || { tail "$D_LOG"; fail "developer mode refused an unsigned bundle"; }
ctl deactivate "$ID" >/dev/null || fail "deactivate failed"
# reset (developer mode only) removes installed extensions and waiting requests alike.
ctl activate "$B" >/dev/null || fail "re-activating the unsigned bundle failed"
make_bundle "$B_DIR/w.netext" com.acme.waiting 1 1.0.0 ACME
as_user activate "$B_DIR/w.netext" >/dev/null || fail "request as nobody failed"
ctl reset --yes >/dev/null || fail "reset failed"
WAIT_TRIES=100 WAIT_DELAY=0.05 wait_for sh -c "[ -z \"\$(NETEXT_SOCKET=$D_SOCK $NETEXTCTL --json list | grep identifier)\" ]" \
	|| { ctl list; fail "reset left extensions or requests"; }
[ "$(store_count)" -eq 0 ] || fail "reset left bundles in the store"
make_bundle "$B" "$ID" 1 1.0.0 ROGUE
sign_bundle "$B" ROGUE
refused 1 signature-invalid "$B"
daemon_stop
start

echo "== kill -9 in the middle of activations and replacements"
# A large bundle makes the copy and hash take long enough to be interrupted.
for v in 1 2; do
	make_bundle "$B_DIR/big$v.netext" "$ID" "$v" "1.$v.0" ACME
	head -c $((48 << 20)) /dev/urandom > "$B_DIR/big$v.netext/share/blob"
	chmod 644 "$B_DIR/big$v.netext/share/blob"
	sign_bundle "$B_DIR/big$v.netext" ACME
done
ctl activate "$B_DIR/big1.netext" >/dev/null || fail "activation of big1 failed"
cur=1
for delay in 0.02 0.1 0.2 0.4 0.7 1.0 1.5; do
	next=$((3 - cur))
	ctl activate --replace "$B_DIR/big$next.netext" >/dev/null 2>&1 &
	act=$!
	sleep "$delay"
	daemon_kill9
	wait "$act" 2>/dev/null
	start
	v=$(ext_field "$ID" version)
	dirname=$(ext_field "$ID" bundle)
	echo "kill after ${delay}s: version ${v:-none}, store: $(ls -A "$D_DIR/state/bundles" | tr '\n' ' ')"
	case "$v" in "$cur"|"$next") ;; *) fail "after kill -9 the version is '$v', want $cur or $next" ;; esac
	[ "$(store_count)" -eq 1 ] || fail "after kill -9 the store holds $(store_count) entries"
	[ -d "$D_DIR/state/bundles/$dirname" ] || fail "the installed bundle $dirname is missing"
	WAIT_TRIES=100 WAIT_DELAY=0.05 wait_for sh -c "[ \"\$(NETEXT_SOCKET=$D_SOCK $NETEXTCTL --json list | grep -c '\"running\"')\" -ge 1 ]" \
		|| { tail -20 "$D_LOG"; fail "the extension does not run after kill -9"; }
	cur=$v
done
# A kill in the middle of a deactivation finishes it at the next start.
ctl deactivate "$ID" >/dev/null &
sleep 0.01
daemon_kill9
start
if [ -n "$(ext_field "$ID" identifier)" ]; then
	[ "$(ext_field "$ID" lifecycle)" = enabled ] || fail "half-deactivated extension after restart"
fi
[ "$(store_count)" -le 1 ] || fail "store not cleaned after an interrupted deactivation"

daemon_stop
echo "PASS"

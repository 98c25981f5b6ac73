# Bundles for the lifecycle tests, made from the hello example and signed with keys made
# here. Source after daemon.sh (it uses D_DIR, ctl and fail).
#
#   keygen TEAM                          $B_DIR/TEAM.key and TEAM.key.pub
#   make_bundle DIR ID VERSION SHORT TEAM [Providers]   a valid, unsigned bundle
#   sign_bundle DIR TEAM
#   policy_team TEAM yes|no [LINE]...    a policy drop-in trusting TEAM's key
#   as_user ARGS...                      netextctl as nobody (not an administrator)
#   expect_error EXIT CODE ARGS...       netextctl must fail with EXIT and print CODE
#   store_count                          directories in the bundle store
#   ext_field ID FIELD                   a field of `netextctl --json list` for ID
: "${NETEXT_HELLO:?NETEXT_HELLO not set}"

B_DIR=$D_DIR/work
POLICY_DIR=$D_DIR/policy.d
mkdir -p "$B_DIR" "$POLICY_DIR"
chmod 755 "$B_DIR"

keygen() {
	"$NETEXTCTL" keygen --team "$1" --output "$B_DIR/$1.key" >/dev/null || fail "keygen $1 failed"
}

make_bundle() {
	local dir=$1 id=$2 ver=$3 short=$4 team=$5 providers=${6:-message}
	rm -rf "$dir"
	mkdir -p "$dir/bin" "$dir/share"
	cp "$NETEXT_HELLO" "$dir/bin/netext-hello"
	echo "version $ver of $id" > "$dir/share/README"
	cat > "$dir/extension.conf" <<CONF
# $id, made by tests/lib/bundle.sh
[Extension]
Identifier = $id
Version = $ver
ShortVersion = $short
Team = $team
Executable = bin/netext-hello
Description = The hello example, version $short
Providers = $providers
CONF
	chmod -R a+rX "$dir"
}

sign_bundle() {
	"$NETEXTCTL" sign "$1" --key "$B_DIR/$2.key" >/dev/null || fail "sign $1 with $2 failed"
	chmod -R a+rX "$1"
}

pubkey() { sed -n 's/^key: //p' "$B_DIR/$1.key.pub"; }

policy_team() {
	local team=$1 approve=$2
	shift 2
	{
		printf '[Team %s]\nKey = %s\nApprove = %s\n' "$team" "$(pubkey "$team")" "$approve"
		[ $# -gt 0 ] && printf '%s\n' "$@"
	} > "$POLICY_DIR/20-$team.conf"
}

as_user() {
	setpriv --reuid=65534 --regid=65534 --clear-groups \
		env NETEXT_SOCKET="$D_SOCK" "$NETEXTCTL" "$@"
}

expect_error() {
	local want_rc=$1 code=$2 out rc
	shift 2
	out=$("$@" 2>&1)
	rc=$?
	[ "$rc" -eq "$want_rc" ] || fail "'$*' exited $rc, want $want_rc: $out"
	case "$out" in *"$code"*) ;; *) fail "'$*' did not report $code: $out" ;; esac
	echo "ok: $code: $out" | head -3
}

store_count() { ls -A "$D_DIR/state/bundles" | wc -l; }

ext_field() {
	ctl_json list | jq_get ".extensions[] | select(.identifier == \"$1\") | .$2"
}

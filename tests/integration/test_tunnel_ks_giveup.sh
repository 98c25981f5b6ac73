#!/usr/bin/env bash
# The kill switch held across a crash lets go when no restart will come: the supervisor
# gives up on an extension that keeps failing (restart_max = 3; the copy of
# netext-testtunnel is made non-executable, so every restart fails).
#   - kill -9 with the kill switch on: held (O, outside the tunnel, unreachable);
#   - the supervisor gives up (extension state "failed"): the hold goes, O is reachable,
#     the status says no kill switch, nothing of the tunnel is left;
#   - `netextctl restart` of the extension (executable again) brings the tunnel back with
#     its own kill switch.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/lib/daemon.sh"
. "$here/lib/tunnel.sh"
[ -n "${NETEXT_TESTTUNNEL:-}" ] || skip "netext-testtunnel is not built (wt-lib)"
for tool in ping; do command -v $tool >/dev/null || skip "needs $tool"; done

tun_private_testtunnel
D_CONF_EXTRA="restart_max = 3"
tun_setup
tun_add_outside
PIF=tg$$
PIF=${PIF:0:15}
tun_peer_udptun "$PIF" 51820 1

held() { tks_held kg; }
ext_state() {
	ctl_json list | jq_get ".extensions[] | select(.identifier == \"$TT_ID\") | .state"
}
o_reachable() { ns_exec "$C" ping -c 1 -W 1 $O4 >/dev/null 2>&1; }

tconfig kg peer=$S4:51820 addresses=198.19.1.1/24,2001:db8:1::1/64 routes=0.0.0.0/0,::/0 include_all=yes
tstart kg
twait kg connected
IF=$(tiface kg)
ns_exec "$C" ping -c 2 -i 0.2 -W 2 $P4 >/dev/null || fail "ping through the tunnel"
o_reachable && fail "kill switch: O reachable"

pid=$(ext_pid_wait $TT_ID) || fail "no pid for $TT_ID"
chmod 644 "$NETEXT_TESTTUNNEL"
kill -KILL "$pid"
twait kg disconnected connecting
# The supervisor retries 3 times (0, 100, 200 ms apart) and gives up: the hold may be gone
# already. Held first, then the state: not held is only right if it gave up by then.
h=$(held)
st=$(ext_state)
[ "$h" = true ] || [ "$st" = failed ] || fail "kill -9: the kill switch is not held (extension $st)"
WAIT_TRIES=100 wait_for sh -c "NETEXT_SOCKET=$D_SOCK $NETEXTCTL --json list | grep -q '\"state\": *\"failed\"'" ||
	{ ctl list; fail "the supervisor did not give up on $TT_ID"; }
WAIT_TRIES=50 wait_for sh -c "[ \"\$(NETEXT_SOCKET=$D_SOCK $NETEXTCTL --json tunnel status kg | grep -c '\"kill_switch_held\": *false')\" = 1 ]" ||
	{ ctl tunnel status kg; fail "the kill switch is still held after the supervisor gave up"; }
o_reachable || { ns_exec "$C" nft list table inet netext; fail "O unreachable after the supervisor gave up"; }
tun_assert_clean "$IF"
gq "no restart will come (extension given up on): the kill switch goes" "$D_LOG" ||
	{ grep "tunnel kg" "$D_LOG"; fail "the log does not say why the kill switch went"; }
echo "ok: the supervisor gave up: the held kill switch went, O reachable, nothing left"

chmod 755 "$NETEXT_TESTTUNNEL"
ctl restart $TT_ID >/dev/null || fail "restart $TT_ID"
TWAIT_TRIES=300 twait kg connected
ns_exec "$C" ping -c 2 -i 0.2 -W 2 $P4 >/dev/null || fail "ping after the restart"
o_reachable && fail "after the restart: O reachable (the provider's kill switch is off)"
[ "$(held)" = false ] || fail "after the restart: kill_switch_held is '$(held)'"
echo "ok: netextctl restart: connected again, with the provider's own kill switch"

tstop kg
twait kg disconnected
tun_assert_clean "$IF"
o_reachable || fail "O unreachable after stop"
daemon_stop
tun_assert_clean "$IF"
echo "ok"

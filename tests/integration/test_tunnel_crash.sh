#!/usr/bin/env bash
# kill -9 of a packet-tunnel extension. netext-testtunnel runs from a copy in the test's
# directory, so the test can keep the supervisor from restarting it (chmod -x) and look at
# the moment between the death and the restart:
#   - after kill -9: the status leaves connected (disconnected, or connecting while the
#     supervisor retries); no device, rule, route table, nft rule or DNS route is left;
#     the peer-only address is unreachable;
#     (restart_max = 20: the refused execs count as crashes);
#   - once the executable is back, the supervisor's restart reconnects the tunnel: connected
#     again, on a device with the tunnel's address, and ping and TCP work;
#   - a second kill -9 without holding the restart: connected again with a new pid;
#   - then stop leaves nothing.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/lib/daemon.sh"
. "$here/lib/tunnel.sh"
[ -n "${NETEXT_TESTTUNNEL:-}" ] || skip "netext-testtunnel is not built (wt-lib)"
for tool in nc ping; do command -v $tool >/dev/null || skip "needs $tool"; done

tun_private_testtunnel
# Each refused exec counts as a crash; the back-off doubles from 100 ms, so 20 allowed
# crashes leave the supervisor retrying while the test looks (restart_max is 5 by default).
D_CONF_EXTRA="restart_max = 20"
tun_setup
PIF=tc$$
PIF=${PIF:0:15}
tun_peer_udptun "$PIF" 51820 1
tconfig tc peer=$S4:51820 addresses=198.19.1.1/24,2001:db8:1::1/64 routes=198.19.100.0/24,2001:db8:100::/64 \
	dns=198.19.1.2 match=crash.test
tstart tc
twait tc connected
IF=$(tiface tc)
ns_exec "$C" ping -c 2 -i 0.2 -W 2 $P4 >/dev/null || fail "ping before the crash"
ctl dns route list | gq 'tunnel:tc' || fail "no DNS route of the tunnel before the crash"

pid_of() { ext_pid_wait $TT_ID; }

# 1. kill -9 with the restart held back.
pid=$(pid_of) || fail "no pid for $TT_ID"
chmod 644 "$NETEXT_TESTTUNNEL"
kill -KILL "$pid"
twait tc disconnected connecting
tun_assert_clean "$IF"
ns_exec "$C" ping -c 1 -W 1 $P4 >/dev/null 2>&1 && fail "the peer-only address is reachable with the extension dead"
echo "ok: kill -9: state $(tstate tc), nothing left between the death and the restart"

# 2. The supervisor's restart reconnects.
chmod 755 "$NETEXT_TESTTUNNEL"
TWAIT_TRIES=400 twait tc connected
pid2=$(pid_of) || fail "no pid after the restart"
[ "$pid2" != "$pid" ] || fail "the pid did not change ($pid)"
IF=$(tiface tc)
ns_exec "$C" ip -o addr show dev "$IF" | gq 'inet 198.19.1.1/24' || fail "the new device $IF lacks 198.19.1.1"
ns_exec "$C" ping -c 2 -i 0.2 -W 2 $P4 >/dev/null || fail "ping after the restart"
ns_exec "$C" ping -6 -c 2 -i 0.2 -W 2 $P6 >/dev/null || fail "ping -6 after the restart"
head -c $((1 << 20)) /dev/urandom > "$T/1m"
tcp_xfer $P4 7001 "$T/1m"
ctl dns route list | gq 'tunnel:tc' || fail "the DNS route did not come back with the tunnel"
echo "ok: restarted as pid $pid2, connected on $IF, ping and TCP work"

# 3. kill -9 again, the supervisor free to restart at once.
kill -KILL "$pid2"
new_pid() { local p; p=$(ext_pid $TT_ID); [ -n "$p" ] && [ "$p" != 0 ] && [ "$p" != "$pid2" ]; }
WAIT_TRIES=300 wait_for new_pid || fail "no restart after the second kill -9"
TWAIT_TRIES=400 twait tc connected
IF=$(tiface tc)
ns_exec "$C" ping -c 2 -i 0.2 -W 2 $P4 >/dev/null || fail "ping after the second restart"
echo "ok: second kill -9: connected again as pid $(pid_of)"

tstop tc
twait tc disconnected
tun_assert_clean "$IF"
daemon_stop
tun_assert_clean "$IF"
echo "ok"

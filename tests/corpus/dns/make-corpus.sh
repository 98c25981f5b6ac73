#!/usr/bin/env bash
# Regenerates the DNS corpus in this directory (committed; the build does not run this).
#
#   tests/corpus/dns/make-corpus.sh
#
# 1. Hand-built messages (gen-corpus.c with tests/unit/dns_build.h): valid ones, malformed
#    ones and the ones where our parser and ldns legitimately differ (ok-*, bad-*, diff-*).
# 2. As root: real answers (real-*) from nsd (authoritative, zone below) and dnsmasq
#    (forwarding to nsd, so both a forwarded and a cached answer) running in a network
#    namespace this script creates and deletes; queries are sent with gen-corpus's own
#    builder over UDP. Without root only step 1 runs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../../.." && pwd)
tmp=$(mktemp -d)
ns=ne-corpus-$$
pids=()

cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	ip netns del "$ns" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

cc -std=c17 -O1 -D_GNU_SOURCE -Wall -Wextra -I"$src/src/common" -I"$src/tests/unit" \
	-o "$tmp/gen-corpus" "$here/gen-corpus.c" "$src/src/common/dns.c" "$src/src/common/dnsbuild.c"

rm -f "$here"/ok-*.bin "$here"/bad-*.bin "$here"/diff-*.bin
"$tmp/gen-corpus" hand "$here"

if [ "$(id -u)" -ne 0 ]; then
	echo "make-corpus.sh: not root: kept the real-* captures as they are" >&2
	exit 0
fi

cat >"$tmp/corpus.test.zone" <<'EOF'
$ORIGIN corpus.test.
$TTL 300
@         IN SOA   ns1 hostmaster 2024010101 7200 3600 1209600 60
@         IN NS    ns1
@         IN MX    10 mail
@         IN MX    20 mail2.example.net.
ns1       IN A     127.0.0.1
www       IN A     192.0.2.10
www       IN AAAA  2001:db8::10
alias     IN CNAME chain1
chain1    IN CNAME chain2
chain2    IN CNAME www
mail      IN A     192.0.2.25
_sip._tcp IN SRV   0 5 5060 sip
sip       IN A     192.0.2.50
ptr       IN PTR   www.corpus.test.
txt       IN TXT   "hello world" "second string" ""
long      IN TXT   "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789" "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789" "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
svc       IN HTTPS 1 . alpn=h2,h3 port=8443
svc       IN SVCB  2 www.corpus.test. alpn=h2
unk       IN TYPE65280 \# 4 0a0b0c0d
caa       IN CAA   0 issue "letsencrypt.org"
*.wild    IN A     192.0.2.99
Mixed.Case IN A    192.0.2.77
EOF
for i in $(seq 1 60); do
	echo "multi     IN A     198.51.100.$i" >>"$tmp/corpus.test.zone"
done

cat >"$tmp/nsd.conf" <<EOF
server:
	ip-address: 127.0.0.1
	port: 53
	username: ""
	chroot: ""
	database: ""
	zonelistfile: "$tmp/zone.list"
	xfrdfile: "$tmp/xfrd.state"
	pidfile: "$tmp/nsd.pid"
	zonesdir: "$tmp"
	verbosity: 0
	hide-version: yes
	minimal-responses: no
remote-control:
	control-enable: no
zone:
	name: corpus.test
	zonefile: corpus.test.zone
EOF

ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" addr add 127.0.0.2/8 dev lo 2>/dev/null || true
ip netns exec "$ns" nsd -d -c "$tmp/nsd.conf" >"$tmp/nsd.log" 2>&1 &
pids+=($!)
ip netns exec "$ns" dnsmasq --keep-in-foreground --no-resolv --no-hosts --bind-interfaces \
	--listen-address=127.0.0.2 --port=53 --server=/corpus.test/127.0.0.1 --user=root \
	--pid-file="$tmp/dnsmasq.pid" --log-facility="$tmp/dnsmasq.log" \
	--mx-host=mx.local,mail.local,5 --txt-record=txt.local,"local text" \
	--srv-host=_ldap._tcp.local,ldap.local,389 --address=/blocked.local/0.0.0.0 &
pids+=($!)
sleep 1

q() { # server name type mode tag
	local out="$here/real-$5.bin"
	ip netns exec "$ns" "$tmp/gen-corpus" query "$1" "$2" "$3" "$4" "$out" ||
		{ echo "make-corpus.sh: no answer for $*" >&2; return 1; }
}
rm -f "$here"/real-nsd-*.bin "$here"/real-dnsmasq-*.bin
for mode in plain edns; do
	q 127.0.0.1 www.corpus.test 1 $mode nsd-a-$mode
	q 127.0.0.1 www.corpus.test 28 $mode nsd-aaaa-$mode
	q 127.0.0.1 alias.corpus.test 1 $mode nsd-cname-chain-$mode
	q 127.0.0.1 corpus.test 15 $mode nsd-mx-$mode
	q 127.0.0.1 multi.corpus.test 1 $mode nsd-multi-$mode   # plain: over 512, truncated
done
q 127.0.0.1 wWw.CoRpUs.TeSt 1 edns nsd-a-0x20
q 127.0.0.1 _sip._tcp.corpus.test 33 edns nsd-srv
q 127.0.0.1 corpus.test 6 edns nsd-soa
q 127.0.0.1 corpus.test 2 edns nsd-ns
q 127.0.0.1 ptr.corpus.test 12 edns nsd-ptr
q 127.0.0.1 txt.corpus.test 16 edns nsd-txt
q 127.0.0.1 long.corpus.test 16 edns nsd-txt-long
q 127.0.0.1 svc.corpus.test 65 edns nsd-https
q 127.0.0.1 svc.corpus.test 64 edns nsd-svcb
q 127.0.0.1 unk.corpus.test 65280 edns nsd-unknown-type
q 127.0.0.1 caa.corpus.test 257 edns nsd-caa
q 127.0.0.1 x.wild.corpus.test 1 edns nsd-wildcard
q 127.0.0.1 mixed.case.corpus.test 1 edns nsd-mixed-case
q 127.0.0.1 nope.corpus.test 1 edns nsd-nxdomain
q 127.0.0.1 www.corpus.test 15 edns nsd-nodata
q 127.0.0.1 corpus.test 255 do nsd-any-do
q 127.0.0.1 other.example 1 edns nsd-refused
for run in 1 2; do # forwarded, then from dnsmasq's cache
	q 127.0.0.2 alias.corpus.test 1 edns dnsmasq-cname-chain-$run
	q 127.0.0.2 corpus.test 15 plain dnsmasq-mx-$run
	q 127.0.0.2 nope.corpus.test 1 edns dnsmasq-nxdomain-$run
	q 127.0.0.2 www.corpus.test 28 plain dnsmasq-aaaa-$run
done
q 127.0.0.2 mx.local 15 edns dnsmasq-local-mx
q 127.0.0.2 txt.local 16 edns dnsmasq-local-txt
q 127.0.0.2 _ldap._tcp.local 33 edns dnsmasq-local-srv
q 127.0.0.2 blocked.local 1 plain dnsmasq-local-blocked
echo "make-corpus.sh: $(ls "$here"/*.bin | wc -l) messages in $here"

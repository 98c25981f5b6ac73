#!/bin/sh
# Writes a deterministic blocklist of COUNT names (default 100000) to standard output, in the
# formats real lists use: hosts-file lines ("0.0.0.0 name", "127.0.0.1 name", several names on
# one line), plain names, comments, blank lines, and the hosts-file boilerplate that
# netext-dnsblock ignores (localhost, broadcasthost, ...). The same COUNT gives the same file,
# byte for byte, on every machine: names come from a Park-Miller generator, not from $RANDOM.
#
# The first names are fixed, for tests and the demo: ads.test, tracker.test,
# metrics.tracker.test (covered by tracker.test already; counted once as a name).
#
# Usage: examples/dnsblock/make-list.sh [COUNT] > dnsblock.list
set -eu
count=${1:-100000}
case $count in '' | *[!0-9]*) echo "usage: $0 [COUNT]" >&2; exit 2 ;; esac
[ "$count" -ge 3 ] || { echo "make-list: COUNT must be at least 3" >&2; exit 2; }

awk -v count="$count" 'BEGIN {
	print "# netext-dnsblock test list: " count " names (examples/dnsblock/make-list.sh " count ")"
	print "# Hosts-file boilerplate, ignored by the blocker:"
	print "127.0.0.1 localhost"
	print "127.0.0.1 localhost.localdomain"
	print "255.255.255.255 broadcasthost"
	print "::1 localhost ip6-localhost ip6-loopback"
	print ""
	print "# Fixed names for the tests and the demo"
	print "0.0.0.0 ads.test"
	print "tracker.test"
	print "0.0.0.0 metrics.tracker.test      # below tracker.test: blocked twice over"
	print ""
	nw = split("ad ads adserver analytics banner beacon click collect count metrics pixel " \
		   "promo stats tag telemetry track tracker log events insights", w, " ")
	nd = split("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima " \
		   "mike november oscar papa quebec romeo sierra tango uniform victor whiskey " \
		   "xray yankee zulu", d, " ")
	nt = split("example invalid test", t, " ")
	x = 20240601                      # Park-Miller: x * 16807 stays below 2^53
	n = 3
	for (i = 1; n < count; i++) {
		x = (x * 16807) % 2147483647
		# The number in the first label makes every name distinct (words have no digits).
		name = w[x % nw + 1] i "." d[int(x / nw) % nd + 1] "-" (x % 97) "." t[int(x / 7) % nt + 1]
		if (i % 1000 == 0)
			print "# section " i / 1000
		if (i % 500 == 0)
			print ""
		if (i % 7 == 0 && n + 1 < count) {  # two names on one hosts line
			x = (x * 16807) % 2147483647
			print "0.0.0.0 " name " cdn" i "." d[x % nd + 1] ".example"
			n += 2
		} else if (i % 3 == 0) {
			print "0.0.0.0 " name
			n++
		} else if (i % 3 == 1) {
			print name
			n++
		} else {
			print "127.0.0.1 " toupper(substr(name, 1, 1)) substr(name, 2) "."
			n++
		}
	}
}'

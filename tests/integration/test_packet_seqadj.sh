#!/usr/bin/env bash
# TCP segments made longer, MSS-sized (gso_max_segs 1 on H's veth, S advertises an MSS of 1000
# so that a grown segment stays below the MTU): test_packet_modify.sh's 2 MB stream with
# modify-grow ("ping" -> "PINGPONG"), IPv4 and IPv6. Every one of ~2,900 segments is longer
# than the sender wrote it, so every segment and every acknowledgement goes through
# netextd's sequence shift; a single lost or reordered segment must be retransmitted and
# shifted consistently for the stream to complete.
here=$(cd "$(dirname "$0")" && pwd)
GROW_SIZES=mss exec "$here/test_packet_modify.sh" --tcp-only

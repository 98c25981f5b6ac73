#!/usr/bin/env bash
# Installs the Debian packages netext needs to build, test and run its demo,
# but only those that are missing. Safe to run repeatedly; needs root for apt.
set -euo pipefail

BUILD_PKGS=(
  meson ninja-build pkg-config gcc clang libclang-rt-14-dev
  libsystemd-dev libmnl-dev libnftnl-dev libnetfilter-queue-dev
  libsqlite3-dev libseccomp-dev libjansson-dev libcmocka-dev
  libsodium-dev libinih-dev libnetfilter-conntrack-dev
  libb2-dev
)
RUN_PKGS=(iproute2 nftables util-linux procps psmisc)
# demo/demo.sh's web client and DNS server (its content filter part), and its tunnel's peer.
DEMO_PKGS=(curl dnsmasq-base bind9-dnsutils iputils-ping wireguard-go wireguard-tools)
TEST_PKGS=(curl netcat-openbsd bind9-dnsutils knot-dnsutils dnsmasq-base iperf3 libldns-dev
  iputils-ping wireguard-go wireguard-tools jq)

want=("${BUILD_PKGS[@]}" "${RUN_PKGS[@]}" "${DEMO_PKGS[@]}")
case "${1:-}" in
  --test) want+=("${TEST_PKGS[@]}") ;;
esac

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep '^install ok installed' >/dev/null \
    || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "deps.sh: missing packages: ${missing[*]}" >&2
  echo "deps.sh: run as root, or: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

#!/usr/bin/env bash
# Install what Batchy and Waitsy need to build, run and test (the test suite
# also uses clang with its fuzzer runtime, cppcheck and clang-tidy) and, with
# the argument `bench`, to benchmark, on Debian or Ubuntu. Does nothing when
# everything is there already. Without root or sudo it prints the exact
# command to run instead.
set -euo pipefail

packages=(build-essential pkg-config libhiredis-dev libmicrohttpd-dev libyaml-dev
          libcjson-dev libmimalloc-dev liburiparser-dev libcurl4-openssl-dev libcmocka-dev redis-server redis-tools
          redis-sentinel  # the failover tests
          python3 python3-yaml curl valgrind faketime
          clang libclang-rt-14-dev cppcheck clang-tidy
          prometheus   # its promtool checks /metrics
          chromium chromium-driver python3-selenium   # the dashboard's tests
          mandoc systemd debhelper dpkg-dev)  # man pages, the unit, the package
# `scripts/deps.sh bench`: also the load generator of scripts/bench.sh.
[ "${1:-}" = bench ] && packages+=(wrk)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null; then
    echo "deps: this is not a Debian-like system; install these (or their equivalents):" >&2
    echo "  ${missing[*]}" >&2
    exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo=(sudo)
else
    echo "deps: missing packages; run as root:" >&2
    echo "  apt-get update && apt-get install -y ${missing[*]}" >&2
    exit 1
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq >&2
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2

#!/usr/bin/env bash
# Measure Batchy on this machine against the limits of HTTP and Redis here:
# install what is missing (wrk, redis-benchmark), build, then run
# tests/bench/bench.py, which starts its own redis-server, batchy and a
# minimal libmicrohttpd server, prints one table and writes it as JSON to
# var/bench/. About 17 minutes.
#
#   scripts/bench.sh                  # everything
#   BENCH_SECONDS=2 BENCH_ROUNDS=1 BENCH_LONG=0 scripts/bench.sh   # a quick look
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh bench
make -s -j2 all build/bench/minimal
exec python3 tests/bench/bench.py

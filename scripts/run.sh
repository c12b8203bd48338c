#!/usr/bin/env bash
# Run Batchy: install what is missing, build (batchy, and waitsy beside it
# in build/), and start Batchy on 127.0.0.1:5000 with the workflows in cfg/.
#
# Without a Redis URL (--redis, BATCHY_REDIS_URL or REDIS_URL) it starts a
# private redis-server for Batchy, its data and append-only file under
# ./var (appendfsync always: a close answered 200 survives a crash), on
# 127.0.0.1:${BATCHY_REDIS_PORT:-6379} and the socket var/redis.sock. That
# Redis stops when Batchy stops; the state stays in ./var.
#
#   scripts/run.sh                      # everything local
#   scripts/run.sh --listen 0.0.0.0:5000 --token s3cret
#   BATCHY_REDIS_URL=redis://db:6379/2 scripts/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
make -s -j2 build/batchy build/waitsy

own_redis=1
[ -n "${BATCHY_REDIS_URL:-}${REDIS_URL:-}" ] && own_redis=0
for a in "$@"; do case "$a" in -r|--redis|--redis=*) own_redis=0 ;; esac; done

args=()
if [ "$own_redis" = 1 ]; then
    port=${BATCHY_REDIS_PORT:-6379}
    mkdir -p var
    if redis-cli -s var/redis.sock ping >/dev/null 2>&1; then
        echo "run: using the private Redis already running (var/redis.sock)" >&2
    else
        if redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1; then
            echo "run: port $port is taken by another Redis; set BATCHY_REDIS_PORT, or pass" >&2
            echo "     --redis redis://127.0.0.1:$port/0 to use that one" >&2
            exit 1
        fi
        redis-server --bind 127.0.0.1 --port "$port" --unixsocket "$PWD/var/redis.sock" \
            --dir "$PWD/var" --appendonly yes --appendfsync always --save "" \
            --daemonize yes --pidfile "$PWD/var/redis.pid" --logfile "$PWD/var/redis.log"
        for _ in $(seq 50); do
            redis-cli -s var/redis.sock ping >/dev/null 2>&1 && break
            sleep 0.1
        done
        trap 'redis-cli -s var/redis.sock shutdown >/dev/null 2>&1 || true' EXIT
        echo "run: private Redis on 127.0.0.1:$port, data in ./var (redis-cli -p $port)" >&2
    fi
    args+=(--redis "unix://$PWD/var/redis.sock")
fi

# Not exec: the trap above stops the private Redis when Batchy ends.
build/batchy "${args[@]}" "$@" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null' INT TERM
wait $pid || true
wait $pid 2>/dev/null

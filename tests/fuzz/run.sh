#!/usr/bin/env bash
# Run libFuzzer targets built by `make fuzz`, one after the other, each for
# a bounded time, and print one line per target:
#
#   tests/fuzz/run.sh SECONDS TARGET...     # e.g. 60 cfgload times
#
# For each target: replay every file of tests/fuzz/regressions/<target>/
# once, then fuzz for SECONDS seconds on build-fuzz/corpus/<target>/, a
# scratch corpus seeded from tests/fuzz/corpus/<target>/ (the committed seeds
# never change; what the fuzzer finds stays in build-fuzz/ for the next
# run). The full log goes to build-fuzz/logs/<target>.log, crash inputs to
# build-fuzz/artifacts/<target>/. Exit status 1 if any target failed, and
# then the tail of its log is printed.
set -uo pipefail
cd "$(dirname "$0")/../.."

seconds=${1:?usage: run.sh SECONDS TARGET...}
shift
out=build-fuzz
# Per input: a slow input is a bug too (billion laughs, quadratic paths).
timeout_s=10
# Well above what one input may use (a workflow file of 250,000 values),
# well below the machine's memory.
rss_mb=2048
failed=0

# UBSan reports with stacks; leaks are failures (libFuzzer's default).
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

show_failure() { # name log
    echo "---- $1: what failed, then the last lines of $2"
    grep -a -m 3 -E 'fuzz check failed|ERROR: |SUMMARY: ' "$2" | sed 's/^/    /'
    echo "    ..."
    tail -n 30 "$2" | cut -c 1-240 | sed 's/^/    /'
    failed=1
}

for t in "$@"; do
    bin=$out/fuzz_$t
    log=$out/logs/$t.log
    corpus=$out/corpus/$t
    artifacts=$out/artifacts/$t/
    mkdir -p "$corpus" "$artifacts" "$out/logs"
    if [ -d "tests/fuzz/corpus/$t" ]; then
        cp -p tests/fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null
    fi

    regressions=()
    if [ -d "tests/fuzz/regressions/$t" ]; then
        for f in tests/fuzz/regressions/"$t"/*; do
            [ -f "$f" ] && regressions+=("$f")
        done
    fi
    if [ ${#regressions[@]} -gt 0 ] &&
        ! "$bin" -timeout=$timeout_s -rss_limit_mb=$rss_mb -artifact_prefix="$artifacts" \
            "${regressions[@]}" >"$out/logs/$t.regressions.log" 2>&1; then
        printf '%-8s regressions FAILED (%d inputs replayed)\n' "$t" ${#regressions[@]}
        show_failure "$t" "$out/logs/$t.regressions.log"
        continue
    fi

    dict=()
    [ -f "tests/fuzz/$t.dict" ] && dict=(-dict="tests/fuzz/$t.dict")
    "$bin" -max_total_time="$seconds" -timeout=$timeout_s -rss_limit_mb=$rss_mb \
        -artifact_prefix="$artifacts" -print_final_stats=1 "${dict[@]}" "$corpus" >"$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    # libFuzzer's own count: the inputs it keeps, not every file written.
    size=$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' "$log" | tail -n 1)
    if [ $rc -eq 0 ]; then
        result=ok
    else
        crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
        result="FAILED (exit $rc${crash:+, input $crash})"
    fi
    printf '%-8s %10s runs  corpus %5s  %3d regressions  %s\n' "$t" "${runs:-?}" "${size:-?}" \
        ${#regressions[@]} "$result"
    [ $rc -eq 0 ] || show_failure "$t" "$log"
done
exit $failed

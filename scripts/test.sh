#!/usr/bin/env bash
# Run every test of Batchy and Waitsy: install what is missing, build, lint
# (cppcheck, clang-tidy), check the binaries' hardening, then
#   1. unit tests (cmocka) and integration tests (a throw-away redis-server on
#      a free port and a real batchy process per test module, over HTTP,
#      and real waitsy processes against them; two test processes at once);
#      in between, each libFuzzer target of tests/fuzz/ for 10 s (make fuzz);
#      the dashboard's tests drive a headless Chromium (Selenium), the
#      failover tests a Redis Sentinel set;
#   2. the same with the ASan+UBSan build (but those two, end to end);
#   3. unit and integration tests under valgrind (no leaks, no errors; but
#      those two).
# Ends with one line "total: N passed, N failed". Exit status 0 only when
# every step passed.
#
#   scripts/test.sh            # everything
#   scripts/test.sh quick      # step 1 only
set -uo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh || exit 1
# Debian's python3, whose python3-selenium drives the browser (a python3
# earlier on PATH may lack it).
py=/usr/bin/python3
log=$(mktemp)
trap 'rm -f "$log"' EXIT
failed_steps=()

step() { # name command...
    local name=$1; shift
    echo "=== $name"
    if ! "$@" 2>&1 | tee -a "$log"; then
        failed_steps+=("$name")
    fi
}

unit() { # build-dir [valgrind]
    local rc=0 wrap=()
    [ "${2:-}" = valgrind ] && wrap=(valgrind -q --leak-check=full --show-leak-kinds=definite,indirect
                                     --errors-for-leak-kinds=definite,indirect --error-exitcode=99)
    for t in "$1"/tests/test_*; do
        "${wrap[@]}" "$t" || rc=1
    done
    return $rc
}

build() { make -s -j2 "$@" all; }

step "build" build || true
step "lint" make -s lint
step "hardening" scripts/check-hardening.sh build/batchy build/waitsy
step "unit" unit build
step "fuzz (10 s per target)" make -s fuzz FUZZ_SECONDS=10
step "integration" env BATCHY_BIN=build/batchy WAITSY_BIN=build/waitsy $py tests/integration/run.py -j 2
if [ "${1:-}" != quick ]; then
    step "build (ASan+UBSan)" build SAN=1
    step "unit (ASan+UBSan)" unit build-san
    step "integration (ASan+UBSan)" env BATCHY_BIN=build-san/batchy WAITSY_BIN=build-san/waitsy \
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 BATCHY_END_TO_END=0 \
        $py tests/integration/run.py -j 2
    step "unit (valgrind)" unit build valgrind
    step "integration (valgrind)" env BATCHY_BIN=build/batchy WAITSY_BIN=build/waitsy BATCHY_VALGRIND=1 \
        BATCHY_END_TO_END=0 $py tests/integration/run.py -j 2
fi

# Sum what the runners reported: cmocka's "[  PASSED  ] N test(s)." and
# "[  FAILED  ] N test(s)...", and the integration runner's "N passed, N failed".
read -r passed failed < <(awk '
    /^\[  PASSED  \] [0-9]+ test/ { p += $4 }
    /^\[  FAILED  \] [0-9]+ test/ { f += $4 }
    /^[0-9]+ passed, [0-9]+ failed/ { p += $1; f += $3 }
    END { print p + 0, f + 0 }' "$log")
if [ ${#failed_steps[@]} -gt 0 ]; then
    # Each failed test's report above holds its traceback, what it printed,
    # how long it took under what load, and the tails of the batchy and
    # redis-server logs: enough to tell a slow machine from a real defect.
    # Each with what it raised and how long it took, so that the end of
    # the log alone says what failed and why.
    echo "failed tests (reports above):"
    awk '
        function flush() { if (name != "") print "    " name (why != "" ? "\n        " why : "") (took != "" ? "\n        " took : ""); name = why = took = "" }
        /^\[  FAILED  \] [a-z_]/ { flush(); print "    " $0; next }
        /^(FAIL|ERROR): / { flush(); name = $0; next }
        /^(=+|-+)$/ && why != "" { flush(); next }
        name != "" && why == "" && /^[A-Za-z_.]*(Error|Exception|Expired|Exit)(: |$)/ { why = substr($0, 1, 400) }
        name != "" && took == "" && /^--- .* took [0-9.]+s in the / { took = substr($0, 5, 200) }
        END { flush() }' "$log" | awk '!seen[$0]++ || /^        /'
    echo "failed steps: ${failed_steps[*]}"
    [ "$failed" -eq 0 ] && failed=1
fi
echo "total: $passed passed, $failed failed"
[ ${#failed_steps[@]} -eq 0 ]

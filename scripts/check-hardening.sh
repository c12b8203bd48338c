#!/usr/bin/env bash
# Check that binaries were built with the hardening flags of the Makefile,
# by reading their ELF headers with readelf (binutils):
#   PIE               ELF type DYN (-fPIE -pie)
#   full RELRO        a GNU_RELRO segment (-z relro) and BIND_NOW (-z now)
#   stack protector   __stack_chk_fail imported (-fstack-protector-strong)
#   FORTIFY           at least one __*_chk libc function imported
#                     (-D_FORTIFY_SOURCE=2)
#   no exec stack     a GNU_STACK segment without the E flag (-z noexecstack)
# Prints one line per binary and property; exits 1 when any is missing,
# 2 on a usage error or a file that is not an ELF binary.
#
#   scripts/check-hardening.sh build/batchy build/waitsy
set -uo pipefail

if [ $# -eq 0 ]; then
    echo "usage: $0 BINARY..." >&2
    exit 2
fi
if ! command -v readelf >/dev/null; then
    echo "check-hardening: readelf not found (install binutils)" >&2
    exit 2
fi

missing=0
report() { # binary property ok(0/1) detail
    local verdict=ok
    if [ "$3" -ne 1 ]; then
        verdict=MISSING
        missing=1
    fi
    printf '%-8s %s: %s (%s)\n' "$verdict" "$1" "$2" "$4"
}

for bin in "$@"; do
    if ! header=$(readelf -hW "$bin" 2>/dev/null); then
        echo "check-hardening: $bin: missing or not an ELF file" >&2
        exit 2
    fi
    segments=$(readelf -lW "$bin" 2>/dev/null)
    dynamic=$(readelf -dW "$bin" 2>/dev/null)
    # Undefined dynamic symbols: what the binary imports, without versions.
    imports=$(readelf --dyn-syms -W "$bin" 2>/dev/null |
        awk '$7 == "UND" && $8 != "" { sub(/@.*/, "", $8); print $8 }' | sort -u)

    type=$(awk -F': *' '$1 ~ /^ *Type$/ { print $2 }' <<<"$header")
    ok=0; [[ $type == DYN* ]] && ok=1
    report "$bin" "PIE" $ok "ELF type ${type:-unknown}"

    relro=no; grep -q 'GNU_RELRO' <<<"$segments" && relro=yes
    now=no; grep -Eq '\(BIND_NOW\)|\(FLAGS\).*BIND_NOW|\(FLAGS_1\).*NOW' <<<"$dynamic" && now=yes
    ok=0; [ $relro = yes ] && [ $now = yes ] && ok=1
    report "$bin" "full RELRO" $ok "GNU_RELRO segment: $relro, BIND_NOW: $now"

    ok=0; detail="no __stack_chk_fail import"
    if grep -qx '__stack_chk_fail' <<<"$imports"; then
        ok=1; detail="imports __stack_chk_fail"
    fi
    report "$bin" "stack protector" $ok "$detail"

    # __stack_chk_fail has the same shape but comes from the stack protector.
    chk=$(grep -E '^__[A-Za-z0-9_]+_chk$' <<<"$imports" | grep -vx '__stack_chk_fail' | paste -sd, -)
    ok=0; detail="no __*_chk import"
    if [ -n "$chk" ]; then
        ok=1; detail="imports ${chk//,/, }"
    fi
    report "$bin" "FORTIFY" $ok "$detail"

    # Without a GNU_STACK segment the kernel makes the stack executable.
    stack=$(awk '$1 == "GNU_STACK" { print $7 }' <<<"$segments")
    ok=0; [ -n "$stack" ] && [[ $stack != *E* ]] && ok=1
    report "$bin" "no exec stack" $ok "GNU_STACK flags ${stack:-absent}"
done
exit $missing

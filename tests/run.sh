#!/usr/bin/env bash
# Runs every test binary given as arguments and every tests/*.sh script,
# counting test cases: cmocka's "[       OK ]" / "[  FAILED  ]" / "[  SKIPPED ]"
# lines for binaries, one case per script. A binary that crashes or exits
# non-zero without a FAILED line counts as one failure. A script (or a
# binary without cmocka output) that cannot run on this machine, e.g. for
# lack of a tool, prints why and exits 77 (the automake convention): it
# counts as skipped, not passed or failed. Ends with
# "N passed, N failed, N skipped"; exits non-zero if any failed.
set -u
cd "$(dirname "$0")/.."
pass=0; fail=0; skip=0; failed=()
logdir=${RLHF_BUILD:-build/default}/test-logs
mkdir -p "$logdir"
export RLHF_BIN=${RLHF_BIN:-build/default/rlhf}
export PYTHON=${PYTHON:-/usr/bin/python3}
# undefined behaviour fails the test in sanitizer builds
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
# leaks inside libhdf5 itself (on its error paths, reading damaged files) are
# not the project's: tests/lsan.supp
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp}

run_one() {  # name, command...
    local name=$1; shift
    local log="$logdir/$name.log" t0=$SECONDS
    "$@" >"$log" 2>&1
    local rc=$? ok bad skipped
    ok=$(grep -c '^\[       OK \]' "$log")
    # cmocka names a failed or skipped test twice (as it happens and in the
    # summary, whose count line starts with a digit)
    bad=$(grep -E '^\[  FAILED  \] [A-Za-z_]' "$log" | sort -u | wc -l)
    skipped=$(grep -E '^\[  SKIPPED \] [A-Za-z_]' "$log" | sort -u | wc -l)
    if [ "$ok" -eq 0 ] && [ "$bad" -eq 0 ] && [ "$skipped" -eq 0 ]; then  # a script: one case
        case $rc in
            0) ok=1 ;;
            77) skipped=1 ;;
            *) bad=1 ;;
        esac
    elif [ $rc -ne 0 ] && [ "$bad" -eq 0 ]; then
        bad=1
    fi
    pass=$((pass + ok)); fail=$((fail + bad)); skip=$((skip + skipped))
    if [ "$bad" -gt 0 ]; then
        failed+=("$name")
        printf '  FAIL %-28s %3ds  (%d ok, %d failed; log: %s)\n' "$name" $((SECONDS - t0)) "$ok" "$bad" "$log"
        grep -E '^\[  (FAILED|ERROR) +\]|error|FAIL' "$log" | head -8 | sed 's/^/       /'
    elif [ "$ok" -eq 0 ]; then  # nothing ran: say why (a script's last line)
        printf '  skip %-28s %3ds  (%d skipped; log: %s)\n' "$name" $((SECONDS - t0)) "$skipped" "$log"
        tail -1 "$log" | sed 's/^/       /'
    elif [ "$skipped" -gt 0 ]; then
        printf '  ok   %-28s %3ds  (%d, %d skipped)\n' "$name" $((SECONDS - t0)) "$ok" "$skipped"
    else
        printf '  ok   %-28s %3ds  (%d)\n' "$name" $((SECONDS - t0)) "$ok"
    fi
}

for bin in "$@"; do run_one "$(basename "$bin")" "$bin"; done
for sh in tests/*.sh; do
    [ "$sh" = tests/run.sh ] && continue
    [ -e "$sh" ] || continue
    run_one "$(basename "$sh" .sh)" bash "$sh"
done
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]

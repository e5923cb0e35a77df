#!/usr/bin/env bash
# Runs each libFuzzer harness given for FUZZ_SECONDS (default 60) on its
# committed seeds (fuzz/corpus/NAME, read only) and its own growing corpus
# (build/fuzz/corpus/NAME), and prints one line per harness: executions,
# coverage (edges) and features at the end. A crash leaves its input as
# build/fuzz/crash-NAME-* and fails the run. Leaks inside libhdf5 itself (on
# its error paths) are suppressed (fuzz/lsan.supp); the project's are not.
set -u
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-60}
fail=0
for bin in "$@"; do
    name=$(basename "$bin")
    corpus=build/fuzz/corpus/$name
    mkdir -p "$corpus"
    log=build/fuzz/$name.log
    LSAN_OPTIONS=suppressions=fuzz/lsan.supp "$bin" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 \
        -artifact_prefix="build/fuzz/crash-$name-" "$corpus" "fuzz/corpus/$name" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1)
    if [ $rc -ne 0 ]; then
        fail=1
        printf '  FAIL %-18s exit %d after %s executions; log %s\n' "$name" $rc "${execs:-?}" "$log"
        grep -m3 -E 'ERROR|SUMMARY|fuzz check failed' "$log" | sed 's/^/       /'
    else
        printf '  ok   %-18s %ss  %10s executions  %s  corpus %s files\n' "$name" "$secs" \
            "$execs" "$cov" "$(ls "$corpus" | wc -l)"
    fi
done
exit $fail

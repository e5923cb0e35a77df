#!/usr/bin/env bash
# Runs each libFuzzer harness given for FUZZ_SECONDS (default 60) on its
# committed seeds (fuzz/corpus/NAME, read only) and its own growing corpus
# (build/fuzz/corpus/NAME), in fork mode so that one finding does not end
# the run, and prints one line per harness: executions, coverage (edges)
# and features at the end, findings. A finding is an input saved as
# build/fuzz/crash-NAME-* (crash, leak, timeout): each is run again, and one
# that ends with the checkpoint reader's watchdog line is a known HDF5 hang
# on damaged metadata, ended cleanly, and one whose sanitizer report starts
# in HDF5's H5HG_read is HDF5 copying a damaged global-heap object past its
# buffer, which the reader's fault guard ends with one line in the normal
# builds (both counted, not failures); any other fails the run. Leaks inside libhdf5 itself (on its error paths) are
# suppressed (tests/lsan.supp); the project's are not.
set -u
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-60}
export LSAN_OPTIONS=suppressions=tests/lsan.supp RLHF_WATCHDOG_SECONDS=5
fail=0
for bin in "$@"; do
    name=$(basename "$bin")
    corpus=build/fuzz/corpus/$name
    mkdir -p "$corpus"
    log=build/fuzz/$name.log
    before=$(ls build/fuzz/crash-"$name"-* 2>/dev/null | wc -l)
    "$bin" -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 -max_total_time="$secs" \
        -rss_limit_mb=2048 -timeout=20 -artifact_prefix="build/fuzz/crash-$name-" \
        "$corpus" "fuzz/corpus/$name" >"$log" 2>&1
    execs=$(grep -Eo '^#[0-9]+' "$log" | tail -1 | tr -d '#')
    cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1)
    known=0 heap=0 bad=0
    for f in $(ls build/fuzz/crash-"$name"-* 2>/dev/null | tail -n +$((before + 1))); do
        "$bin" "$f" >build/fuzz/replay.log 2>&1
        if grep -q 'HDF5 did not finish reading its metadata' build/fuzz/replay.log; then
            known=$((known + 1))
        elif grep -A2 'ERROR: AddressSanitizer' build/fuzz/replay.log | grep -q ' in H5HG_read '; then
            heap=$((heap + 1))   # HDF5's own overread of a damaged global heap (guarded)
        else
            bad=$((bad + 1))
            echo "       finding: $f"
        fi
    done
    [ $bad -eq 0 ] || fail=1
    printf '  %s %-16s %ss  %9s executions  %s  corpus %s  HDF5 hangs ended %d  HDF5 heap overreads %d  findings %d\n' \
        "$([ $bad -eq 0 ] && echo 'ok  ' || echo FAIL)" "$name" "$secs" "${execs:-?}" "$cov" \
        "$(ls "$corpus" | wc -l)" $known $heap $bad
done
exit $fail

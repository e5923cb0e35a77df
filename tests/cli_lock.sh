#!/usr/bin/env bash
# One run per run directory: while a run holds checkpoint.dir, a second run
# into it (fresh or --resume) is refused at once with the holder's pid, and
# leaves every file as it was; a run killed with SIGKILL leaves no lock
# behind that blocks the next.
. "$(dirname "$0")/cli_pipeline.bash"
pipeline_build
L=$D/locked
# a long run (stopped below), saving every step
"$R" pretrain "$CFG" --checkpoint.dir="$L" --train.max_steps=1000000 --checkpoint.every=1 \
    --checkpoint.keep=2 >"$D/long.out" 2>"$D/long.err" &
pid=$!
for _ in $(seq 200); do [ -e "$L/latest.h5" ] && break; sleep 0.05; done
[ -e "$L/latest.h5" ] || { kill -9 $pid; fail "the long run saved nothing: $(tail -2 "$D/long.err")"; }
[ "$(cat "$L/.lock")" = "$pid" ] || { kill -9 $pid; fail "the lock file does not hold pid $pid: $(cat "$L/.lock")"; }
for args in "" "--resume" "--resume --train.max_steps=2"; do
    t0=$(date +%s%N)
    # shellcheck disable=SC2086
    "$R" pretrain "$CFG" --checkpoint.dir="$L" $args >"$D/out" 2>"$D/err"
    rc=$?
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    [ $rc -eq 1 ] || { kill -9 $pid; fail "second run ($args) into a held directory: exit $rc"; }
    [ "$(wc -l <"$D/err")" -eq 1 ] && grep -q "^rlhf: error: checkpoint.dir '$L' is in use by another run (pid $pid); hint" "$D/err" ||
        { kill -9 $pid; fail "second run ($args): $(cat "$D/err")"; }
    # refused before any model is built or data read: well under a second
    [ $ms -lt 3000 ] || { kill -9 $pid; fail "second run ($args) took $ms ms to be refused"; }
done
kill -0 $pid 2>/dev/null || fail "the first run died: $(tail -2 "$D/long.err")"
# SIGKILL: no cleanup runs, the kernel drops the lock; the run resumes
kill -9 $pid
wait $pid 2>/dev/null
step=$("$PY" -c "import h5py,sys; print(h5py.File(sys.argv[1])['/'].attrs['step'])" "$L/latest.h5")
run "$R" pretrain "$CFG" --checkpoint.dir="$L" --resume --train.max_steps=$((step + 2))
grep -q "resuming .* at step $step" "$D/out" || fail "no resume at step $step: $(head -3 "$D/out")"
# a fresh run into a directory whose lock file was left by a finished run
run "$R" pretrain "$CFG" --checkpoint.dir="$D/second" --train.max_steps=1
run "$R" pretrain "$CFG" --checkpoint.dir="$D/second" --resume --train.max_steps=2
echo "cli_lock: ok"

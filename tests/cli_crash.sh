#!/usr/bin/env bash
# Crash safety of the run directory: a pretrain run writing a checkpoint
# every step (most of its time goes to writes) is SIGKILLed six times, once
# as soon as the first step_*.tmp appears and then at random moments, and
# resumed after each kill. The random moments are counted from when the
# first write began (measured on the first kill), so a slower build (the
# sanitizers) is killed as often inside its writes as a fast one. After every kill: every step file and latest.h5
# load (`rlhf inspect`, `rlhf sample`), latest.h5 never names a .tmp, a
# leftover .tmp fails cleanly if opened; at the end, the run resumed five
# times equals an uninterrupted one bit for bit, and no .tmp is left.
# Not covered: power loss (fsync ordering is beyond a userspace test).
cd "$(dirname "$0")/.."
source tests/cli_pipeline.bash
pipeline_build
N=120
RUN=$D/crash
ARGS=("$CFG" --checkpoint.dir="$RUN" --train.max_steps=$N --checkpoint.every=1
      --checkpoint.keep=2 --train.eval_interval=40 --train.log_interval=10)

# check_dir WHAT: what is on disk after a kill must load
in_write=0
check_dir() {
    local what=$1 f
    for f in "$RUN"/step_*.h5; do
        [ -e "$f" ] || continue
        "$R" inspect "$f" >"$D/out" 2>"$D/err" || fail "$what: $f does not load: $(cat "$D/err")"
    done
    if [ -e "$RUN/latest.h5" ] || [ -L "$RUN/latest.h5" ]; then
        local target
        target=$(readlink -f "$RUN/latest.h5")
        [ -f "$target" ] || fail "$what: latest.h5 dangles ($(readlink "$RUN/latest.h5"))"
        case $target in *.tmp) fail "$what: latest.h5 points at a .tmp: $target" ;; esac
        "$R" inspect "$RUN/latest.h5" >"$D/out" 2>"$D/err" ||
            fail "$what: inspect latest.h5: $(cat "$D/err")"
        "$R" sample "$RUN/latest.h5" --max_new_tokens 5 >"$D/out" 2>"$D/err" ||
            fail "$what: sample latest.h5: $(cat "$D/err")"
    fi
    for f in "$RUN"/*.tmp; do
        [ -e "$f" ] || continue
        in_write=$((in_write + 1))
        # a half-written file: loads or not, but never crashes the reader
        "$R" inspect "$f" >"$D/out" 2>"$D/err"
        local rc=$?
        [ $rc -le 1 ] || fail "$what: inspect of the leftover $f exits $rc: $(tail -2 "$D/err")"
    done
}

# start_and_kill HOW MODE: runs pretrain (MODE: fresh | resume) in the
# background and SIGKILLs it: HOW = tmp (when a step .tmp first shows) or
# a delay in seconds. Sets finished=1 if the run ended before the kill.
finished=0
first_write_ms=0   # how long the first run took to start its first checkpoint write
start_and_kill() {
    local how=$1 mode=$2 extra=()
    [ "$mode" = resume ] && extra=(--resume)
    "$R" pretrain "${ARGS[@]}" "${extra[@]}" >"$D/run.log" 2>&1 &
    local pid=$! t0=$SECONDS t0_ns
    t0_ns=$(date +%s%N)
    if [ "$how" = tmp ]; then
        until compgen -G "$RUN/step_*.h5.tmp" >/dev/null; do
            kill -0 $pid 2>/dev/null || break
            [ $((SECONDS - t0)) -lt 60 ] || { kill -KILL $pid; fail "no .tmp seen in 60 s"; }
        done
        first_write_ms=$((($(date +%s%N) - t0_ns) / 1000000))
    else
        sleep "$how"
    fi
    kill -KILL $pid 2>/dev/null
    { wait $pid; } 2>/dev/null   # no "Killed" note from the shell
    local rc=$?
    if [ $rc -eq 0 ]; then finished=1; return; fi
    [ $rc -eq 137 ] || { tail -3 "$D/run.log"; fail "pretrain ($mode) exited $rc before the kill"; }
}

# 1: killed inside the first checkpoint write
start_and_kill tmp fresh
check_dir "kill in the first write"
if [ ! -e "$RUN/latest.h5" ]; then
    # nothing complete: --resume says so in one line, a fresh start is allowed
    "$R" pretrain "${ARGS[@]}" --resume >"$D/out" 2>"$D/err"
    [ $? -eq 1 ] && [ "$(wc -l <"$D/err")" -eq 1 ] && grep -q '^rlhf: error: ' "$D/err" ||
        fail "--resume without latest.h5: $(cat "$D/err")"
    start_and_kill 0.3 fresh
    check_dir "kill after a fresh restart"
fi

# 2..6: random moments (30..600 ms after the first write began, as timed by
# kill 1), each resumed from what is there
kills=""
for i in 1 2 3 4 5; do
    [ $finished -eq 1 ] && break
    ms=$((first_write_ms + 30 + RANDOM % 570))
    delay=$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))
    kills="$kills $delay"
    if [ -e "$RUN/latest.h5" ]; then start_and_kill "$delay" resume; else start_and_kill "$delay" fresh; fi
    check_dir "kill $i after ${delay}s (kills so far:$kills)"
    kills="$kills($(readlink "$RUN/latest.h5" 2>/dev/null | sed 's/^step_0*\([0-9]*\)\.h5$/\1/'))"
done
[ $in_write -ge 1 ] || fail "no kill landed inside a checkpoint write (kills at$kills s)"

# the last resume runs to the end and matches a run never interrupted
"$R" pretrain "${ARGS[@]}" --resume >"$D/run.log" 2>&1 || { tail -3 "$D/run.log"; fail "final resume"; }
compgen -G "$RUN/*.tmp" >/dev/null && fail "leftover .tmp after the run ended: $(ls "$RUN")"
[ "$(readlink "$RUN/latest.h5")" = "$(printf 'step_%06d.h5' $N)" ] || fail "latest.h5 is not step $N"
"$R" pretrain "$CFG" --checkpoint.dir="$D/ref" --train.max_steps=$N --checkpoint.every=0 \
    --train.eval_interval=40 --train.log_interval=10 >"$D/ref.log" 2>&1 || fail "reference run"
"$PY" - "$RUN/latest.h5" "$D/ref/latest.h5" <<'EOF' || fail "the killed and resumed run differs from an uninterrupted one (kills at$kills s)"
import h5py, sys
import numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:3])
names = []
a.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
bad = []
for n in names:
    if n in ("metrics/time_s", "metrics/tokens_per_s"):
        continue
    u, v = a[n][()], b[n][()]
    if u.shape != v.shape or not np.array_equal(u, v, equal_nan=u.dtype.kind == "f"):
        bad.append(n)
missing = [n for n in ("model/transformer.wte.weight", "optimizer/m/transformer.wte.weight",
                       "state/data", "metrics/loss") if n not in names]
print("differ:", bad, "missing:", missing) if bad or missing else None
sys.exit(1 if bad or missing else 0)
EOF
echo "cli_crash: ok ($in_write of the kills left a .tmp; random kills at$kills s, with the step of latest.h5)"

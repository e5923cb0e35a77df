#!/usr/bin/env bash
# Data-parallel training under mpirun, two ranks of one thread on loopback:
#  - np=2 reproduces the np=1 runs of the tiny pipeline (pretrain, sft,
#    reward, ppo) and of dpo and grpo: every step's loss (and PPO's reward
#    and KL, the held-out losses) within a relative 1e-4 (the ranks sum the
#    same gradient in another order; seen: below 1e-6); the sharded
#    evaluation's accuracies (greedy task accuracy of sft, ppo and dpo,
#    overall and per family; the reward model's test-pair accuracy)
#    exactly, and the reward model's scores of its test pairs (margin and
#    std) and of PPO's greedy answers within a relative 1e-4 of their size;
#  - np=2 twice gives the same bits (every dataset of the final checkpoint);
#  - np=2 resumes exactly (stopped at step 2 of 5, against one go), and a
#    checkpoint of np=2 resumes with np=1, saying so;
#  - a failure on one rank (rank 0 refusing a directory that holds a run)
#    and a SIGKILLed rank end the whole job, non-zero, and latest.h5 stays
#    loadable and resumable;
#  - a command that does not train refuses mpirun;
#  - test_evaluate's checks of greedy answers and pair scores hold on two
#    ranks, which decode and score their shares of each batch.
# Skipped (77) without mpirun or with a build without MPI (NO_MPI=1).
cd "$(dirname "$0")/.."
command -v mpirun >/dev/null || { echo "skip: no mpirun (apt-get install openmpi-bin)"; exit 77; }
source tests/cli_pipeline.bash
REAL=$(realpath "$R")
# root needs Open MPI's consent; shared-memory transport without the
# single-copy mechanism that containers often forbid; 2 ranks even on 1 core
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# In a sanitizer build, Open MPI's plug-ins (loaded and unloaded with
# dlopen, so their frames have no module to suppress by name) leave
# allocations that LeakSanitizer reports at exit. Leaks are checked by the
# one-process tests; here the sanitizers still catch every memory error.
case ${RLHF_BUILD:-} in *asan*) export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 ;; esac
MPI=(mpirun -np 2 --oversubscribe --bind-to none --mca btl self,vader
     --mca btl_vader_single_copy_mechanism none)
"${MPI[@]}" "$REAL" pretrain --help >"$D/probe" 2>&1
grep -q "built without MPI" "$D/probe" && { echo "skip: rlhf built with NO_MPI=1"; exit 77; }
# the sharded evaluation's unit checks on two ranks: every rank ends with
# every greedy answer and every pair's score (tests/test_evaluate.c)
UNIT=${RLHF_BUILD:-build/default}/tests/test_evaluate
if [ -x "$UNIT" ]; then
    timeout 120 "${MPI[@]}" "$UNIT" >"$D/unit.log" 2>&1 ||
        { tail -20 "$D/unit.log"; fail "test_evaluate under mpirun -np 2"; }
else
    echo "note: $UNIT not built; its np=2 run left out"
fi
pipeline_build
# R2: the binary as two ranks (resume_case runs "$R2 STAGE ...")
R2=$D/rlhf_np2
printf '#!/bin/sh\nexec %s %s "$@"\n' "${MPI[*]}" "$REAL" >"$R2"
chmod +x "$R2"

# close_csv A B COLS...: every row's COLS agree within a relative 1e-4
close_csv() {
    "$PY" - "$@" <<'EOF'
import csv, sys
a, b = (list(csv.DictReader(open(p))) for p in sys.argv[1:3])
assert len(a) == len(b) and a, f"{len(a)} rows vs {len(b)}"
for col in sys.argv[3:]:
    for x, y in zip(a, b):
        u, v = x.get(col, ""), y.get(col, "")
        if u == v:
            continue
        assert u and v, f"{col} at step {x['step']}: {u!r} vs {v!r}"
        u, v = float(u), float(v)
        assert abs(u - v) <= 1e-4 * max(1.0, abs(u)), f"{col} at step {x['step']}: {u} vs {v}"
EOF
}

# rel_csv A B COLS...: every row's COLS agree within a relative 1e-4 of
# their size, however small (close_csv allows 1e-4 of at least 1): scores
# of the same answers, gathered from the ranks that computed them, by
# weights that differ only in rounding (seen: below 2e-7), where a lost or
# misplaced row moves them by a good part of a score
rel_csv() {
    "$PY" - "$@" <<'EOF'
import csv, sys
a, b = (list(csv.DictReader(open(p))) for p in sys.argv[1:3])
assert len(a) == len(b) and a, f"{len(a)} rows vs {len(b)}"
for col in sys.argv[3:]:
    seen = 0
    for x, y in zip(a, b):
        u, v = x.get(col, ""), y.get(col, "")
        assert bool(u) == bool(v), f"{col} at step {x['step']}: {u!r} vs {v!r}"
        if not u:
            continue
        u, v = float(u), float(v)
        assert abs(u - v) <= 1e-4 * abs(u), f"{col} at step {x['step']}: {u} vs {v}"
        seen += 1
    assert seen, f"no {col} logged"
EOF
}

# exact_csv A B PREFIX: the columns named PREFIX or PREFIX_<anything> (an
# accuracy and its per-family ones) are the same in both files, A has at
# least one value in them, and every row agrees in them as text: counts of
# right answers, which sharded evaluation must reproduce exactly
exact_csv() {
    "$PY" - "$@" <<'EOF'
import csv, sys
a, b = (list(csv.DictReader(open(p))) for p in sys.argv[1:3])
pre = sys.argv[3]
cols = lambda rows: sorted(c for c in rows[0] if c == pre or c.startswith(pre + "_"))
ca, cb = cols(a), cols(b)
assert ca == cb, f"columns {ca} vs {cb}"
assert any(r[c] for r in a for c in ca), f"no {pre} logged"
assert len(a) == len(b), f"{len(a)} rows vs {len(b)}"
for c in ca:
    for x, y in zip(a, b):
        assert x[c] == y[c], f"{c} at step {x['step']}: {x[c]!r} vs {y[c]!r}"
print(" ".join(ca))
EOF
}

# np=2 against the pipeline's np=1 runs, the same arguments; evaluation
# (held-out losses, task accuracy, reward-model test pairs) is sharded too
SFT=(--checkpoint.init="$D/sft/latest.h5")
np2_case() {  # STAGE REFERENCE_DIR COLS ACCURACY_PREFIX [overrides...]
    local stage=$1 ref=$2 cols=$3 acc=$4
    shift 4
    "$R2" "$stage" "$CFG" --checkpoint.dir="$D/$stage.np2" "$@" >"$D/$stage.np2.log" 2>&1 ||
        { tail -5 "$D/$stage.np2.log"; fail "$stage: np=2 run"; }
    # shellcheck disable=SC2086
    close_csv "$ref/metrics.csv" "$D/$stage.np2/metrics.csv" $cols ||
        fail "$stage: np=2 differs from np=1"
    [ -z "$acc" ] || exact_csv "$ref/metrics.csv" "$D/$stage.np2/metrics.csv" "$acc" >"$D/exact" ||
        fail "$stage: np=2's $acc differs from np=1's"
}
np2_case pretrain "$D/pretrain" "loss grad_norm val_loss" ""
np2_case sft "$D/sft" "loss grad_norm test_loss" accuracy --checkpoint.init="$D/pretrain/latest.h5"
# greedy answers of every task family graded: one column per family
[ "$(wc -w <"$D/exact")" -ge 2 ] || fail "sft: no per-family accuracy compared: $(cat "$D/exact")"
np2_case reward "$D/reward" "loss grad_norm accuracy margin" test_accuracy "${SFT[@]}"
# not the mean reward: what the loss leaves undetermined (README, Data-parallel training)
rel_csv "$D/reward/metrics.csv" "$D/reward.np2/metrics.csv" test_margin reward_std ||
    fail "reward: np=2's test-pair scores differ from np=1's"
np2_case ppo "$D/ppo" "loss reward value_loss policy_loss entropy eval_reward" \
    eval_accuracy "${SFT[@]}"
# the reward model's scores of the greedy answers (the task accuracy of a
# 4-step model is 0 whatever it answers): answers decoded and scored by
# rows on two ranks are the ones one process decodes and scores
rel_csv "$D/ppo/metrics.csv" "$D/ppo.np2/metrics.csv" eval_reward_raw ||
    fail "ppo: np=2's greedy answers or their scores differ from np=1's"
grep -q '^# mpi: 2 ranks; float sums (gradients; PPO: also rollout scores) sent' "$D/ppo.np2.log" || fail "ppo: no mpi summary line"
[ "$(grep -cE '^step +[0-9]+/4 ' "$D/ppo.np2.log")" -eq 4 ] || fail "ppo: progress printed by more than rank 0"
# dpo and grpo: np=1 here
DPO=("${SFT[@]}" --dpo.train_file="$D/tasks/pref_train.jsonl" --dpo.test_file="$D/tasks/pref_test.jsonl")
GRPO=("${SFT[@]}" --ppo.advantage=grpo --ppo.group_size=2 --ppo.reward=grader --ppo.reward_model=)
run "$R" dpo "$CFG" --checkpoint.dir="$D/dpo" "${DPO[@]}"
np2_case dpo "$D/dpo" "loss grad_norm eval_loss" eval_accuracy "${DPO[@]}"
run "$R" ppo "$CFG" --checkpoint.dir="$D/grpo" "${GRPO[@]}"
"$R2" ppo "$CFG" --checkpoint.dir="$D/grpo.np2" "${GRPO[@]}" >"$D/grpo.np2.log" 2>&1 ||
    { tail -5 "$D/grpo.np2.log"; fail "grpo: np=2 run"; }
# not the KL: GRPO's first update starts at the reference, where groups of
# equal grades leave gradient elements of rounding size; Adam scales them to
# full steps whatever their sign, and a KL as small as those steps then
# differs beyond 1e-4 (seen: eval_kl_k1 -0.0054 vs -0.0083) while the loss,
# reward and entropy agree
close_csv "$D/grpo/metrics.csv" "$D/grpo.np2/metrics.csv" loss reward policy_loss entropy ||
    fail "grpo: np=2 differs from np=1"
# dynamic sampling: both ranks keep the same groups, so they sample as
# many batches as one process does
DYN=("${GRPO[@]}" --ppo.dynamic_sampling=true --ppo.max_sample_batches=8 --ppo.no_eot_penalty=-1
     --ppo.max_new_tokens=4)
run "$R" ppo "$CFG" --checkpoint.dir="$D/dyn" "${DYN[@]}"
"$R2" ppo "$CFG" --checkpoint.dir="$D/dyn.np2" "${DYN[@]}" >"$D/dyn.np2.log" 2>&1 ||
    { tail -5 "$D/dyn.np2.log"; fail "grpo, dynamic sampling: np=2 run"; }
close_csv "$D/dyn/metrics.csv" "$D/dyn.np2/metrics.csv" loss reward policy_loss entropy \
    sampled_batches sampled_zero_spread || fail "grpo, dynamic sampling: np=2 differs from np=1"
# SFT with shifted positions: every rank draws the whole batch's positions
# from the data order and runs its rows at theirs
SHIFT=(--checkpoint.init="$D/pretrain/latest.h5" --sft.shift_positions=0.5 --train.max_steps=4
       --train.eval_interval=0)
run "$R" sft "$CFG" --checkpoint.dir="$D/shift" "${SHIFT[@]}"
"$R2" sft "$CFG" --checkpoint.dir="$D/shift.np2" "${SHIFT[@]}" >"$D/shift.np2.log" 2>&1 ||
    { tail -5 "$D/shift.np2.log"; fail "sft, shifted positions: np=2 run"; }
close_csv "$D/shift/metrics.csv" "$D/shift.np2/metrics.csv" loss grad_norm ||
    fail "sft, shifted positions: np=2 differs from np=1"

# np=2 twice: the same bits; the checkpoint records the world size
"$R2" pretrain "$CFG" --checkpoint.dir="$D/pretrain.np2b" >"$D/np2b.log" 2>&1 || fail "np=2 rerun"
same_ckpt "$D/pretrain.np2/latest.h5" "$D/pretrain.np2b/latest.h5" || fail "pretrain: np=2 twice differs"
"$R2" ppo "$CFG" --checkpoint.dir="$D/ppo.np2b" "${SFT[@]}" >"$D/ppo.np2b.log" 2>&1 || fail "ppo np=2 rerun"
same_ckpt "$D/ppo.np2/latest.h5" "$D/ppo.np2b/latest.h5" || fail "ppo: np=2 twice differs"
"$PY" -c "import h5py, sys; sys.exit(int(h5py.File(sys.argv[1], 'r')['state/world_size'][0] != 2))" \
    "$D/pretrain.np2/latest.h5" || fail "no /state/world_size = 2 in an np=2 checkpoint"

# np=2 exact resume (resume_case: tests/cli_pipeline.bash)
R_ONE=$R
R=$R2
resume_case pretrain2 pretrain 5 2
resume_case ppo2 ppo 5 2 "${SFT[@]}"
R=$R_ONE
# another world size resumes, and says so
cp -r "$D/pretrain2.res" "$D/pretrain1.res"
run "$R" pretrain "$CFG" --checkpoint.dir="$D/pretrain1.res" --train.max_steps=6 --resume
grep -q '^# note: saved by 2 process(es), resuming with 1' "$D/out" || fail "no world-size note"

# one rank fails: rank 0 alone refuses a directory that holds a run; the
# whole job ends with its message, and the run is untouched
before=$(sha256sum "$D/pretrain.np2/latest.h5")
timeout 60 "$R2" pretrain "$CFG" --checkpoint.dir="$D/pretrain.np2" >"$D/out" 2>"$D/err"
rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "a failing rank: exit $rc (124: the job hung)"
grep -q "^rlhf: error: rank 0 of 2: .*already holds a run" "$D/err" || fail "no error line: $(head -3 "$D/err")"
[ "$before" = "$(sha256sum "$D/pretrain.np2/latest.h5")" ] || fail "a failed job changed latest.h5"

# a killed rank: rank 1 is SIGKILLed while rank 0 writes a checkpoint every
# step; mpirun ends the job, latest.h5 loads and resumes
KD=$D/killed
"$R2" pretrain "$CFG" --checkpoint.dir="$KD" --train.max_steps=100000 --checkpoint.every=1 \
    --train.eval_interval=0 --train.log_interval=50 >"$D/kill.log" 2>&1 &
job=$!
t0=$SECONDS
# the step latest.h5 names (step files come and go: checkpoint.keep)
latest_step() {
    local l
    l=$(readlink "$KD/latest.h5" 2>/dev/null) || { echo 0; return; }
    l=${l#step_}
    echo $((10#${l%.h5}))
}
until [ "$(latest_step)" -ge 3 ]; do
    sleep 0.1
    [ $((SECONDS - t0)) -lt 120 ] || { kill -KILL $job; fail "no checkpoint in 120 s"; }
done
rank1=
for p in $(pgrep -P $job); do
    grep -qz '^OMPI_COMM_WORLD_RANK=1$' /proc/$p/environ 2>/dev/null && rank1=$p
done
[ -n "$rank1" ] || { kill -KILL $job; fail "rank 1 not found among mpirun's children"; }
kill -KILL "$rank1"
t0=$SECONDS
while kill -0 $job 2>/dev/null; do
    sleep 0.2
    [ $((SECONDS - t0)) -lt 60 ] || { kill -KILL $job; fail "the job outlived its killed rank by 60 s"; }
done
wait $job && fail "the job of a killed rank exited 0"
run "$R" inspect "$KD/latest.h5"
step=$("$PY" -c "import h5py, sys; print(int(h5py.File(sys.argv[1], 'r').attrs['step']))" "$KD/latest.h5")
run "$R" pretrain "$CFG" --checkpoint.dir="$KD" --train.max_steps=$((step + 1)) --resume

# commands that do not train run as one process
"${MPI[@]}" "$REAL" inspect "$KD/latest.h5" >"$D/out" 2>"$D/err" && fail "inspect ran under mpirun"
grep -q "runs as one process" "$D/err" || fail "no refusal line: $(head -2 "$D/err")"
echo "ok: np=2 matches np=1 (6 stages), repeats bit for bit, resumes exactly; failures end the job"

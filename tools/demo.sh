#!/usr/bin/env bash
# make demo: the whole pipeline on the bundled defaults, then one table.
#   data -> pretrain -> SFT -> rank (the SFT model's own answers, ranked by
#   the task graders) -> reward model on those comparisons -> PPO -> eval of
#   every stage, plus PPO on the graders' reward, best-of-8 with the reward
#   model, DPO (on the ranked comparisons) and GRPO (graders' reward), all
#   from the same SFT model
# Runs go to checkpoints/demo/ (a previous demo is moved to checkpoints/demo.old).
# Set DEMO_FAST=1 for a quick smoke run of the same pipeline (few steps),
# DEMO_PRECISION=fp32|bf16 for the precision of every stage
# (train.precision; unset: bf16 where this CPU has a bf16 matmul, fp32
# elsewhere),
# DEMO_PTX=1 to keep the fortunes in the mix against forgetting them (SFT
# with sft.pretrain_mix, PPO and GRPO with ppo.ptx_coef, as the recipes'
# comments give them), DEMO_DIR to put the runs elsewhere than
# checkpoints/demo, and DEMO_DRY_RUN=1 to print the precision taken and
# every stage's command without running any or touching DEMO_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
RLHF=${RLHF_BIN:-./rlhf}
D=${DEMO_DIR:-checkpoints/demo}
dry=${DEMO_DRY_RUN:-0}
# bf16 where the CPU multiplies bf16 natively (AVX512_BF16, AMX): the demo
# in about half the time (README compares the two precisions' tables).
# On AVX-512 without AVX512_BF16, oneDNN's bf16 matmul (gemm:jit) converts
# to fp32 and is slower than OpenBLAS (the small model's step 1.4x as long,
# measured): fp32 there.
bf16_matmul=$("$RLHF" env | sed -n 's/^matmul: .*; bf16 \(.*\); train\.precision .*/\1/p')
precision=${DEMO_PRECISION:-}
if [ -z "$precision" ]; then
    precision=fp32
    case "$bf16_matmul" in oneDNN*bf16* | oneDNN*amx*) precision=bf16 ;; esac
fi
case "$precision" in
    fp32 | bf16) ;;
    *) echo "demo: DEMO_PRECISION=$precision is not a precision; hint: fp32, bf16, or unset to let the CPU choose" >&2
       exit 2 ;;
esac
case "$precision:$bf16_matmul" in
    bf16:oneDNN*) ;;
    bf16:*) echo "demo: DEMO_PRECISION=bf16 cannot run here (bf16 matmul $bf16_matmul); hint: DEMO_PRECISION=fp32, or unset" >&2
            exit 2 ;;
esac
log=/dev/null
if [ "$dry" != 1 ]; then
    if [ -d "$D" ]; then rm -rf "$D.old"; mv "$D" "$D.old"; fi
    mkdir -p "$D"
    log=$D/demo.log
fi
prec=(--train.precision="$precision")
echo "demo: every stage in $precision (bf16 matmul on this CPU: $bf16_matmul)" | tee -a "$log"
steps=()
if [ "${DEMO_FAST:-0}" = 1 ]; then
    steps=(--train.max_steps=20 --train.epochs=0 --train.eval_interval=10)
fi
# the recipes' commented values: a quarter of every SFT batch from the
# fortunes, for a third more steps (the same examples as without), and
# half the pretraining gradient of 8 windows in every RL update
sft_ptx=() rl_ptx=()
if [ "${DEMO_PTX:-0}" = 1 ]; then
    sft_ptx=(--sft.pretrain_mix=0.25 --train.max_steps=8000)
    rl_ptx=(--ppo.ptx_coef=0.5 --ppo.ptx_batch=8)
fi
t_all=$SECONDS
stage() {  # name, command...: runs one stage, logs it, prints its wall time
    local name=$1; shift
    local t0=$SECONDS
    echo "== $name: $* ${prec[*]}" | tee -a "$log"
    [ "$dry" = 1 ] && return
    if ! "$@" "${prec[@]}" >>"$log" 2>&1; then
        echo "demo: stage '$name' failed; the last lines of $log:" >&2
        tail -n 15 "$log" >&2
        exit 1
    fi
    echo "   $name done in $((SECONDS - t0)) s" | tee -a "$log"
}

[ "$dry" = 1 ] || RLHF_BIN=$RLHF ./tools/data.sh | tee -a "$log"
stage pretrain "$RLHF" pretrain configs/pretrain_fortunes.ini --checkpoint.dir=$D/pretrain "${steps[@]}"
stage sft "$RLHF" sft configs/sft_tasks.ini --checkpoint.init=$D/pretrain/latest.h5 \
    --checkpoint.dir=$D/sft "${sft_ptx[@]}" "${steps[@]}"
rank_n=()
[ "${DEMO_FAST:-0}" = 1 ] && rank_n=(--rank.n_prompts=256)
stage rank "$RLHF" rank $D/sft/latest.h5 configs/rank_tasks.ini --rank.out_file=$D/rank/train.jsonl \
    "${rank_n[@]}"
stage "rank test" "$RLHF" rank $D/sft/latest.h5 configs/rank_tasks.ini \
    --rank.prompts_file=data/gen/tasks/ppo_test.jsonl --rank.n_prompts=500 \
    --rank.out_file=$D/rank/test.jsonl
stage reward "$RLHF" reward configs/reward_tasks.ini --checkpoint.init=$D/sft/latest.h5 \
    --reward.train_file=$D/rank/train.jsonl --reward.test_file=$D/rank/test.jsonl \
    --checkpoint.dir=$D/reward "${steps[@]}"
ppo_steps=()
[ "${DEMO_FAST:-0}" = 1 ] && ppo_steps=(--train.max_steps=4 --train.eval_interval=2)
stage ppo "$RLHF" ppo configs/ppo_tasks.ini --checkpoint.init=$D/sft/latest.h5 \
    --ppo.reward_model=$D/reward/latest.h5 --checkpoint.dir=$D/ppo \
    --ppo.dump_rollouts=$D/ppo/rollouts.h5 "${rl_ptx[@]}" "${ppo_steps[@]}"

stage "ppo grader" "$RLHF" ppo configs/ppo_tasks.ini --checkpoint.init=$D/sft/latest.h5 \
    --ppo.reward=grader --ppo.reward_model= --checkpoint.dir=$D/ppo_grader "${rl_ptx[@]}" \
    "${ppo_steps[@]}"
stage dpo "$RLHF" dpo configs/dpo_tasks.ini --checkpoint.init=$D/sft/latest.h5 \
    --dpo.train_file=$D/rank/train.jsonl --dpo.test_file=$D/rank/test.jsonl \
    --checkpoint.dir=$D/dpo "${steps[@]}"
stage grpo "$RLHF" ppo configs/grpo_tasks.ini --checkpoint.init=$D/sft/latest.h5 \
    --checkpoint.dir=$D/grpo "${rl_ptx[@]}" "${ppo_steps[@]}"

# one evaluation per stage on held-out data, all with the same settings;
# the SFT model's also takes the reward model's best of 8 answers
for s in pretrain sft reward ppo ppo_grader dpo grpo; do
    best=()
    [ $s = sft ] && best=(--best_of 8)
    stage "eval $s" "$RLHF" eval $D/$s/latest.h5 configs/eval_tasks.ini "${best[@]}" \
        --ppo.reward_model=$D/reward/latest.h5 --reward.test_file=$D/rank/test.jsonl \
        --ref=$D/sft/latest.h5 --json $D/eval_$s.json
    [ "$dry" = 1 ] || grep '^RESULT' "$log" | tail -n 1 >"$D/eval_$s.result"
done
[ "$dry" = 1 ] && exit 0
./tools/demo_table.sh "$D" | tee "$D/table.md"
echo "demo: done in $((SECONDS - t_all)) s; logs in $log, checkpoints in $D/"

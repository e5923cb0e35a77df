#!/usr/bin/env bash
# Exact resume through the command line, for every training stage: a run of
# N steps in one go against the same run stopped at step k (its step_k file
# made latest.h5 of a fresh directory) and continued with --resume to N. The
# final checkpoints must be bit-identical in every dataset (model, heads,
# optimizer moments and attributes, critic, state, tokenizer) and in every
# logged metric except wall-clock ones; PPO in each advantage mode. Not
# covered: resuming with another thread count (documented as not
# bit-exact).
cd "$(dirname "$0")/.."
source tests/cli_pipeline.bash
pipeline_build   # the checkpoints each stage starts from (D, CFG, R)
# same_ckpt, same_csv, resume_case: tests/cli_pipeline.bash

# small training sets, so that 5 steps of 4 cross epoch boundaries (the
# resume at step 2 lands inside the second epoch of the epoch order)
head -n 6 "$D/tasks/sft_train.jsonl" >"$D/sft6.jsonl"
head -n 6 "$D/tasks/pref_train.jsonl" >"$D/pref6.jsonl"
head -n 6 "$D/tasks/ppo_train.jsonl" >"$D/ppo6.jsonl"

resume_case pretrain pretrain 5 2
# sequential windows and gradient accumulation carry their own cursor
resume_case pretrain_seq pretrain 5 3 --train.shuffle=false --train.grad_accum=2
resume_case sft sft 5 2 --checkpoint.init="$D/pretrain/latest.h5" --sft.train_file="$D/sft6.jsonl"
resume_case reward reward 5 2 --checkpoint.init="$D/sft/latest.h5" --reward.train_file="$D/pref6.jsonl"
# grouped comparisons of the SFT model's own answers (rlhf rank), a few groups
"$R" rank "$D/sft/latest.h5" "$CFG" --rank.prompts_file="$D/tasks/ppo_train.jsonl" \
    --rank.max_new_tokens=8 --rank.k=6 --rank.batch=24 --rank.n_prompts=16 \
    --rank.out_file="$D/groups.jsonl" >"$D/rank.log" 2>&1 || fail "rank: $(tail -1 "$D/rank.log")"
resume_case reward_groups reward 5 2 --checkpoint.init="$D/sft/latest.h5" \
    --reward.train_file="$D/groups.jsonl"
# adaptive KL: the coefficient after step k is state the resume must restore
resume_case ppo ppo 5 2 --checkpoint.init="$D/sft/latest.h5" --ppo.prompts_file="$D/ppo6.jsonl" \
    --ppo.adaptive_kl=true --ppo.kl_target=0.01 --ppo.kl_horizon=10
# the adaptive coefficient did move, so the check above compared a live value
"$PY" -c "import h5py, sys; sys.exit(int(h5py.File(sys.argv[1], 'r')['state/kl_coef'][0] == 0.05))" \
    "$D/ppo.full/step_000005.h5" || fail "ppo: kl_coef never adapted (test would not see it)"
# each advantage mode: GRPO (the graders' reward without a reward model,
# KL as k3 in the loss, per-sequence loss, two epochs of minibatches), RLOO
# (no KL penalty, so no reference), REINFORCE (both rewards), and GAE on the
# graders' reward with a critic grown from the SFT model; the group methods'
# checkpoints hold no critic
GR=(--checkpoint.init="$D/sft/latest.h5" --ppo.prompts_file="$D/ppo6.jsonl")
resume_case grpo ppo 5 2 "${GR[@]}" --ppo.advantage=grpo --ppo.group_size=2 --ppo.reward=grader \
    --ppo.reward_model= --ppo.kl_in_loss=true --ppo.loss_norm=sequence --ppo.ppo_epochs=2
resume_case rloo ppo 5 2 "${GR[@]}" --ppo.advantage=rloo --ppo.group_size=4 --ppo.kl_coef=0
resume_case reinforce ppo 5 2 "${GR[@]}" --ppo.advantage=reinforce --ppo.group_size=2 \
    --ppo.reward=model+grader
resume_case gae_grader ppo 5 2 "${GR[@]}" --ppo.reward=grader --ppo.reward_model=
# dynamic sampling: a step samples a varying number of batches
resume_case grpo_dyn ppo 5 2 "${GR[@]}" --ppo.advantage=grpo --ppo.group_size=2 --ppo.reward=grader \
    --ppo.reward_model= --ppo.kl_in_loss=true --ppo.dynamic_sampling=true --ppo.max_sample_batches=4 \
    --ppo.no_eot_penalty=-1 --ppo.max_new_tokens=4
"$PY" - "$D" <<'EOF' || fail "which checkpoints hold a critic"
import h5py, sys
for name, critic in (("grpo", 0), ("rloo", 0), ("reinforce", 0), ("gae_grader", 1)):
    f = h5py.File(f"{sys.argv[1]}/{name}.res/step_000005.h5", "r")
    assert ("critic" in f) == bool(critic), name
EOF
# pretraining windows (PPO-ptx, sft.pretrain_mix): their stream is state
# of its own; GAE with the reward model, GRPO on the graders, SFT with
# gradient accumulation. The streams draw once per update (ppo: 2
# minibatches x 1 epoch per step) or per micro-batch (sft: grad_accum 2).
resume_case ppo_ptx ppo 5 2 --checkpoint.init="$D/sft/latest.h5" --ppo.prompts_file="$D/ppo6.jsonl" \
    --ppo.ptx_coef=0.5 --ppo.ptx_batch=2
resume_case grpo_ptx ppo 5 2 "${GR[@]}" --ppo.advantage=grpo --ppo.group_size=2 --ppo.reward=grader \
    --ppo.reward_model= --ppo.ptx_coef=1
resume_case sft_mix sft 5 2 --checkpoint.init="$D/pretrain/latest.h5" --sft.train_file="$D/sft6.jsonl" \
    --sft.pretrain_mix=0.25 --train.grad_accum=2
"$PY" - "$D" <<'EOF' || fail "the pretraining streams did not run as configured"
import csv, h5py, sys
for name, cursor in (("ppo_ptx", 10), ("grpo_ptx", 10), ("sft_mix", 10)):
    f = h5py.File(f"{sys.argv[1]}/{name}.res/step_000005.h5", "r")
    assert f["state/ptx"][4] == cursor, (name, f["state/ptx"][()])
    assert f["state/ptx_shard"].size > 0, name
    rows = list(csv.DictReader(open(f"{sys.argv[1]}/{name}.res/metrics.csv")))
    assert all(float(r["ptx_loss"]) > 0 for r in rows if r["step"] != "0"), name
EOF
# ptx_coef = 0 and pretrain_mix = 0 are the runs without the keys, bit for bit
ident() {  # name stage key=0 overrides...: the run with key=0 vs without it
    local name=$1 stage=$2 zero=$3
    shift 3
    local args=("$CFG" --train.max_steps=3 --checkpoint.every=3 "$@")
    "$R" "$stage" "${args[@]}" --checkpoint.dir="$D/$name.off" >"$D/$name.off.log" 2>&1 &&
        "$R" "$stage" "${args[@]}" "$zero" --checkpoint.dir="$D/$name.zero" >"$D/$name.zero.log" 2>&1 ||
        fail "$name: a run failed"
    same_ckpt "$D/$name.off/latest.h5" "$D/$name.zero/latest.h5" || fail "$name: $zero changed the run"
    same_csv "$D/$name.off/metrics.csv" "$D/$name.zero/metrics.csv" || fail "$name: metrics differ"
}
ident ppo_ptx0 ppo --ppo.ptx_coef=0 --checkpoint.init="$D/sft/latest.h5"
ident sft_mix0 sft --sft.pretrain_mix=0 --checkpoint.init="$D/pretrain/latest.h5"
# sft.shift_positions: the rows' positions are drawn from the data order,
# so resume (with gradient accumulation) repeats them; 0 is the plain run,
# and shifting does change the run
resume_case sft_shift sft 5 2 --checkpoint.init="$D/pretrain/latest.h5" --sft.train_file="$D/sft6.jsonl" \
    --sft.shift_positions=0.5 --train.grad_accum=2
ident sft_shift0 sft --sft.shift_positions=0 --checkpoint.init="$D/pretrain/latest.h5"
"$R" sft "$CFG" --train.max_steps=3 --checkpoint.every=3 --checkpoint.init="$D/pretrain/latest.h5" \
    --sft.shift_positions=1 --checkpoint.dir="$D/sft_shift1" >"$D/sft_shift1.log" 2>&1 ||
    fail "sft_shift1: the run failed"
grep -q '^# sft shift_positions: 1 of the examples' "$D/sft_shift1.log" || fail "sft_shift1: no header line"
same_csv "$D/sft_shift0.off/metrics.csv" "$D/sft_shift1/metrics.csv" 2>/dev/null &&
    fail "sft.shift_positions=1 ran the plain run"
echo "cli_resume: ok"

#!/usr/bin/env bash
# train.epochs: sft, reward and dpo set train.max_steps to
# ceil(epochs * items / (items per micro-batch * grad_accum)) from the size
# of their training sets (examples, prompt groups, pairs), say so, record
# the steps in the checkpoint's config and resume exactly; a resumed run
# past its epochs is refused; stages without a fixed list of items
# (pretrain, ppo) refuse the key with one line; so does a negative value.
cd "$(dirname "$0")/.."
source tests/cli_pipeline.bash
pipeline_build
SFT=$D/sft/latest.h5
head -n 30 "$D/tasks/sft_train.jsonl" >"$D/sft30.jsonl"

# check_steps STAGE WANT EPOCHS PER ITEMS NAME: the announced line, the last
# metrics row and the checkpoint's config all say WANT steps
check_steps() {
    local stage=$1 want=$2 epochs=$3 per=$4 items=$5 name=$6 dir=$D/$1_ep
    grep -qx "# train.epochs = $epochs: $want steps of $per $name ($items in the training set)" \
        "$D/out" || fail "$stage: epochs line: $(grep 'train.epochs' "$D/out")"
    [ "$(tail -n 1 "$dir/metrics.csv" | cut -d, -f1)" = "$want" ] ||
        fail "$stage: metrics.csv ends at step $(tail -n 1 "$dir/metrics.csv" | cut -d, -f1), not $want"
    [ "$(readlink "$dir/latest.h5")" = "$(printf 'step_%06d.h5' "$want")" ] ||
        fail "$stage: latest.h5 is $(readlink "$dir/latest.h5")"
    "$PY" - "$dir/latest.h5" "$want" "$epochs" <<'PY' || fail "$stage: the checkpoint's config"
import json, sys
import h5py
with h5py.File(sys.argv[1], "r") as f:
    cfg = json.loads(f.attrs["config"])
assert cfg["train"]["max_steps"] == int(sys.argv[2]), cfg["train"]
assert cfg["train"]["epochs"] == float(sys.argv[3]), cfg["train"]
PY
}

# sft: 1.5 passes over n examples, 4 per micro-batch, 2 micro-batches a step
run "$R" sft "$CFG" --checkpoint.init="$D/pretrain/latest.h5" --sft.train_file="$D/sft30.jsonl" \
    --train.epochs=1.5 --train.grad_accum=2 --checkpoint.dir="$D/sft_ep"
n=$(sed -n 's/^# sft train: \([0-9]*\) examples.*/\1/p' "$D/out")
[ -n "$n" ] && [ "$n" -gt 8 ] || fail "sft: no example count: $(grep '^# sft train' "$D/out")"
check_steps sft $(((3 * n + 15) / 16)) 1.5 8 "$n" examples

# reward: one pass over its prompt groups, 4 a step
run "$R" reward "$CFG" --checkpoint.init="$SFT" --train.epochs=1 --checkpoint.dir="$D/reward_ep"
g=$(sed -n 's/^# reward pairs: train [0-9]* in \([0-9]*\) groups.*/\1/p' "$D/out")
[ -n "$g" ] || fail "reward: no group count: $(grep '^# reward pairs' "$D/out")"
check_steps reward $(((g + 3) / 4)) 1 4 "$g" "prompt groups"

# dpo: a quarter pass over its pairs
run "$R" dpo "$CFG" --checkpoint.init="$SFT" --train.epochs=0.25 --checkpoint.dir="$D/dpo_ep" \
    --dpo.train_file="$D/tasks/pref_train.jsonl" --dpo.test_file="$D/tasks/pref_test.jsonl"
p=$(sed -n 's/^# dpo pairs: train \([0-9]*\) .*/\1/p' "$D/out")
[ -n "$p" ] || fail "dpo: no pair count: $(grep '^# dpo pairs' "$D/out")"
check_steps dpo $(((p + 15) / 16)) 0.25 4 "$p" pairs

# exact resume: the steps come from the data again, not from a stale count
steps=$(((3 * n + 15) / 16))
[ "$steps" -ge 3 ] || fail "sft: $steps steps are too few to resume in the middle"
full=$D/ep.full res=$D/ep.res
args=("$CFG" --checkpoint.init="$D/pretrain/latest.h5" --sft.train_file="$D/sft30.jsonl"
      --train.epochs=1.5 --train.grad_accum=2 --checkpoint.every=2 --checkpoint.keep=9)
run "$R" sft "${args[@]}" --checkpoint.dir="$full"
mkdir -p "$res" && cp "$full/step_000002.h5" "$res/" && ln -s step_000002.h5 "$res/latest.h5"
run "$R" sft "${args[@]}" --checkpoint.dir="$res" --resume
last=$(printf 'step_%06d.h5' "$steps")
same_ckpt "$full/$last" "$res/$last" || fail "sft with epochs: resumed run differs"
same_csv "$full/metrics.csv" "$res/metrics.csv" || fail "sft with epochs: metrics.csv differs"
# fewer epochs than the checkpoint has done: refused, nothing written
run_fails "$R" sft "${args[@]}" --checkpoint.dir="$res" --resume --train.epochs=0.1
grep -q "past train.max_steps = 1;" "$D/err" || fail "resume past the epochs: $(cat "$D/err")"
[ "$(readlink "$res/latest.h5")" = "$last" ] || fail "the refused resume moved latest.h5"

# stages without a list of items, and bad values
run_fails "$R" pretrain "$CFG" --train.epochs=1 --checkpoint.dir="$D/pre_ep"
grep -q "rlhf pretrain has no fixed list of training items" "$D/err" || fail "pretrain: $(cat "$D/err")"
[ ! -e "$D/pre_ep/latest.h5" ] || fail "pretrain with epochs wrote a checkpoint"
run_fails "$R" ppo "$CFG" --checkpoint.init="$SFT" --train.epochs=1 --checkpoint.dir="$D/ppo_ep"
grep -q "rlhf ppo has no fixed list" "$D/err" || fail "ppo: $(cat "$D/err")"
run_fails "$R" sft "$CFG" --checkpoint.init="$D/pretrain/latest.h5" --train.epochs=-1 \
    --checkpoint.dir="$D/sft_neg"
grep -q "train.epochs" "$D/err" || fail "negative epochs: $(cat "$D/err")"
echo "cli_epochs: ok"

#!/usr/bin/env bash
# rlhf eval reproduces what each stage measured on its final checkpoint
# (val loss, task accuracy, RM pairwise accuracy and margin, PPO held-out
# reward and KL: same data, batches, seeds and thread count), ranks the
# preference pairs by a language model's own likelihood, scores --text
# files token by token, writes --json in agreement with the RESULT line, and
# fails with one line on bad input.
cd "$(dirname "$0")/.."
source tests/cli_pipeline.bash
pipeline_build

# --- pretrain: the val loss `rlhf pretrain` logged at its last step -------------
run "$R" eval "$D/pretrain/latest.h5" "$CFG"
want=$(metric "$D/pretrain/metrics.csv" val_loss)
got=$(result_key val_loss)
# same windows and batches; only the order of summing differs: 1e-5 relative
close "$got" "$want" 1e-5 || fail "pretrain val_loss $got, the run logged $want"
grep -q '^lm loss .* 576 tokens in 12 windows of 48' "$D/out" || fail "eval_steps x batch_size windows"
ppl=$(result_key ppl)
"$PY" -c "import math, sys; sys.exit(abs(math.exp($got) - $ppl) > 1e-4 * $ppl)" || fail "ppl != exp(loss)"
# one window per forward gives the same loss as four
run "$R" eval "$D/pretrain/latest.h5" "$CFG" --train.batch_size=1 --train.eval_steps=12
close "$(result_key val_loss)" "$got" 1e-5 || fail "val_loss depends on the batch size"

# --- sft: task accuracy as the run graded it -------------------------------------------
# (RESULT prints 6 significant digits: 1e-5 relative for exact values)
run "$R" eval "$D/sft/latest.h5" "$CFG" --json "$D/sft.json"
close "$(result_key accuracy)" "$(metric "$D/sft/metrics.csv" accuracy)" 1e-5 || fail "sft accuracy"
grep -q '^  all ' "$D/out" || fail "per-family table"
grep -q "^reward .*scored by $D/reward/latest.h5" "$D/out" || fail "an sft policy gets an RM reward"
grep -q '^kl .*skipped: no reference' "$D/out" || fail "no reference for an sft checkpoint"
[ -z "$(result_key kl)" ] || fail "kl reported without a reference"
# a language model ranks the preference pairs by its own likelihood
grep -q "^likelihood   $D/tasks/pref_test.jsonl: .* pairs .*ranks chosen above rejected in" \
    "$D/out" || fail "likelihood ranking of the pairs"
"$PY" -c "import sys; sys.exit(not 0 <= float(sys.argv[1]) <= 1)" "$(result_key likelihood_accuracy)" ||
    fail "likelihood_accuracy in [0, 1]"
# the JSON file holds the RESULT values
"$PY" - "$D/sft.json" "$(grep '^RESULT ' "$D/out")" <<'EOF' || fail "--json disagrees with RESULT"
import json, sys
j = json.load(open(sys.argv[1]))
kv = dict(f.split("=", 1) for f in sys.argv[2].split()[1:])
assert j["stage"] == kv.pop("stage") == "sft"
for k, v in kv.items():
    assert abs(j[k] - float(v)) <= 1e-5 * max(1, abs(j[k])), k
assert j["task_graded"] == 12 and set(j["accuracy_by_family"]) <= {
    "reverse", "upper", "add", "sort", "count", "sequence", "repeat", "initials"}
EOF

# --- reward model: the test accuracy and margin of `rlhf reward` ----------------------
run "$R" eval "$D/reward/latest.h5" "$CFG"
close "$(result_key rm_accuracy)" "$(metric "$D/reward/metrics.csv" test_accuracy)" 1e-5 ||
    fail "rm_accuracy"
close "$(result_key rm_margin)" "$(metric "$D/reward/metrics.csv" test_margin)" 1e-5 ||
    fail "rm_margin"
# both score through evaluate_pairs in batches of 2 x batch_size: the same
# numbers, equal in the 9 significant digits the CSV and the JSON hold
run "$R" eval "$D/reward/latest.h5" "$CFG" --json "$D/rm.json"
"$PY" - "$D/rm.json" "$D/reward/metrics.csv" <<'EOF' || fail "rm numbers"
import csv, json, sys
j = json.load(open(sys.argv[1]))
last = [r for r in csv.DictReader(open(sys.argv[2])) if r["test_margin"] != ""][-1]
for jk, mk in (("rm_accuracy", "test_accuracy"), ("rm_margin", "test_margin"),
               ("rm_reward_mean", "reward_mean"), ("rm_reward_std", "reward_std")):
    assert j[jk] == float(last[mk]), (jk, j[jk], last[mk])
EOF
[ -z "$(result_key val_loss)" ] || fail "a reward model gets no LM loss"
grep -q '^  rejected ' "$D/out" || fail "accuracy by rejection kind"

# --- ppo: held-out reward (raw and normalised) and KL to the parent ---------------
run "$R" eval "$D/ppo/latest.h5" "$CFG" --json "$D/ppo.json"
grep -Eq "^kl .*to $(realpath "$D")/sft/step_0*4.h5 \(the parent in the lineage, sha256 matches\)" "$D/out" ||
    fail "reference = the parent"
"$PY" - "$D/ppo.json" "$D/ppo/metrics.csv" "$D/reward/latest.h5" <<'EOF' || fail "ppo numbers"
import csv, h5py, json, sys
j = json.load(open(sys.argv[1]))
last = [r for r in csv.DictReader(open(sys.argv[2])) if r["eval_kl_k1"] != ""][-1]
mean, std = h5py.File(sys.argv[3], "r")["state/reward_norm"][...]
# same prompts, batches, seed and threads as the run's last evaluation
assert abs(j["reward_raw"] - float(last["eval_reward_raw"])) <= 1e-6, (j["reward_raw"], last["eval_reward_raw"])
assert abs(j["reward"] - float(last["eval_reward"])) <= 1e-6, (j["reward"], last["eval_reward"])
assert abs(j["sample_accuracy"] - float(last["eval_sample_accuracy"])) <= 1e-9
assert abs(j["sample_reward"] - float(last["eval_sample_reward"])) <= 1e-5
assert abs(j["kl"] - float(last["eval_kl_k1"])) <= 1e-5, (j["kl"], last["eval_kl_k1"])
assert abs(j["kl_k3"] - float(last["eval_kl_k3"])) <= 1e-5
# the normalisation is affine, so the mean normalises like one score
assert abs(j["reward"] - (j["reward_raw"] - mean) / std) <= 1e-4 * max(1, abs(j["reward"]))
EOF
# a prompt is kept when it leaves room for max_new_tokens: len + 8 <= 48
# (<|user|> + 38 characters + <|assistant|> = 40 ids fits, 41 does not)
a38=$(printf 'a%.0s' {1..38})
printf '{"prompt": "%s"}\n{"prompt": "%sa"}\n' "$a38" "$a38" >"$D/edge.jsonl"
run "$R" eval "$D/ppo/latest.h5" "$CFG" --ppo.test_file="$D/edge.jsonl"
grep -q '^reward .*: 1 prompts (1 skipped as too long)' "$D/out" || fail "len + max_new <= T"
grep -q '^kl .* on 1 responses' "$D/out" || fail "KL on the prompt that fits"
run_fails "$R" eval "$D/ppo/latest.h5" "$CFG" --ref "$D/reward/latest.h5"   # not a policy
run "$R" eval "$D/ppo/latest.h5" "$CFG" --ref "$D/sft/step_000002.h5"
grep -q "^kl .*to $D/sft/step_000002.h5 (--ref)" "$D/out" || fail "--ref"

# --- --text: every token of the file is scored -------------------------------------
printf 'reverse: cat -> tac\nadd: 2 + 3 -> 5\n%.0s' {1..7} >"$D/text.txt"   # 245 bytes
run "$R" eval "$D/sft/latest.h5" "$CFG" --text "$D/text.txt" --json "$D/text.json"
"$PY" -c "import json, os, sys; j = json.load(open(sys.argv[1])); sys.exit(j['lm_tokens'] != os.path.getsize(sys.argv[2]))" \
    "$D/text.json" "$D/text.txt" || fail "char tokenizer: one scored token per byte"
printf 'caf\xc3\xa9 \x01\n' >"$D/bad.txt"
run_fails "$R" eval "$D/sft/latest.h5" "$CFG" --text "$D/bad.txt"
: >"$D/empty.txt"
run_fails "$R" eval "$D/sft/latest.h5" "$CFG" --text "$D/empty.txt"

# --- what is missing is skipped with a note, not an error ----------------------------
run "$R" eval "$D/sft/latest.h5" "$CFG" --data.dir="$D/none" --sft.test_file="$D/none.jsonl" \
    --reward.test_file="$D/none.jsonl" --sft.chat_test_file="$D/none.jsonl" --ppo.reward_model=
grep -q '^lm loss .*skipped: no token shard' "$D/out" || fail "no shard note"
grep -q '^tasks .*skipped' "$D/out" || fail "no test file note"
[ "$(grep '^RESULT ' "$D/out")" = "RESULT stage=sft" ] || fail "RESULT with nothing measured"
rm "$D/sft/"step_*.h5
run "$R" eval "$D/ppo/latest.h5" "$CFG"
grep -q '^kl .*skipped: the parent .* no longer exists' "$D/out" || fail "missing parent note"

# --- bad input: one line, a hint, exit 1 -------------------------------------------
run_fails "$R" eval
run_fails "$R" eval "$D/ppo/latest.h5"
run_fails "$R" eval "$D/ppo/latest.h5" "$D/none.ini"
run_fails "$R" eval "$D/ppo/latest.h5" "$CFG" --bogus
run_fails "$R" eval "$D/ppo/latest.h5" "$CFG" --train.bogus=1
run_fails "$R" eval "$D/data/tokenizer.h5" "$CFG"
run_fails "$R" eval "$D/nope.h5" "$CFG"
run_fails "$R" eval "$D/ppo/latest.h5" "$CFG" --sft.test_file="$CFG"   # not JSONL
run_fails "$R" eval "$D/pretrain/latest.h5" "$CFG" --ppo.reward_model="$D/pretrain/latest.h5"
run_fails "$R" eval "$D/ppo/latest.h5" "$CFG" --json "$D/none/out.json"
echo "cli_eval: ok"

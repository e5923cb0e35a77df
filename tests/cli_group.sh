#!/usr/bin/env bash
# The group methods through `rlhf ppo`: GRPO with the graders' reward and
# no reward model trains the policy alone (no /critic in its checkpoints),
# samples group_size responses per prompt in consecutive rows, logs the
# group statistics and pass@1 / pass@group_size, and its reward is the
# graders' verdict (the batch's reward equals its rollout accuracy; a prompt
# without a task family earns 0 and is counted); kl_coef = 0 loads no
# reference at all; a resume that needs a critic or reward model the run
# never had is refused; dynamic sampling fills a step with the groups
# that carry a signal. Exact resume of each advantage mode is in
# cli_resume.sh, bad combinations of keys in cli_badinput.sh.
cd "$(dirname "$0")/.."
source tests/cli_pipeline.bash
pipeline_build

G=(--checkpoint.init="$D/sft/latest.h5" --train.max_steps=3 --train.eval_interval=3
   --ppo.advantage=grpo --ppo.group_size=2 --ppo.reward=grader --ppo.reward_model=)

run "$R" ppo "$CFG" "${G[@]}" --checkpoint.dir="$D/grpo" --ppo.kl_in_loss=true \
    --ppo.loss_norm=sequence --ppo.dump_rollouts="$D/grpo.h5"
grep -q "^# ppo: advantage grpo, reward grader, 2 response(s) per prompt, 4 per batch; critic none; reference loaded; KL k3 in the loss$" "$D/out" ||
    fail "grpo: no summary line: $(grep '^# ppo:' "$D/out")"
grep -q "^step 3: held-out greedy accuracy .* | pass@1 .* pass@2 " "$D/err" ||
    fail "grpo: no pass@ in the evaluation line: $(grep '^step 3:' "$D/err")"
run "$PY" - "$D/grpo/latest.h5" "$D/grpo/metrics.csv" "$D/grpo.h5" <<'EOF'
import csv, sys
import h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
assert "critic" not in f and "model" in f and "optimizer" in f, list(f)
assert "reward_model" not in f["state"] and "reward_norm" not in f["state"], list(f["state"])
rows = list(csv.DictReader(open(sys.argv[2])))
cols = rows[0].keys()
for c in ("group_reward_mean", "group_reward_std", "group_zero_spread", "eval_pass_at_1",
          "eval_pass_at_g", "rollout_ungraded", "policy_kl_k3", "kl_k1"):
    assert c in cols, c
for c in ("value_loss", "explained_variance", "reward_raw", "rollout_rm_auc", "eval_reward"):
    assert c not in cols, c
steps = [r for r in rows if r["reward"] != ""]
assert len(steps) == 3
for r in steps:
    # the graders' verdict: every task prompt is gradable, so reward = accuracy
    assert abs(float(r["reward"]) - float(r["rollout_accuracy"])) <= 1e-12, r
    assert float(r["rollout_ungraded"]) == 0
    assert 0 <= float(r["group_zero_spread"]) <= 1
    assert float(r["policy_kl_k3"]) >= 0
ev = [r for r in rows if r["eval_pass_at_1"] != ""]
assert len(ev) == 2  # before the first step and at the last
for r in ev:
    assert 0 <= float(r["eval_pass_at_1"]) <= float(r["eval_pass_at_g"]) <= 1
# consecutive rows of a batch answer the same prompt
d = h5py.File(sys.argv[3], "r")
for s in d:
    tok, qlen = d[s]["tokens"][:], d[s]["qlen"][:, 0]
    assert tok.shape[0] == 4
    for b in (0, 2):
        assert qlen[b] == qlen[b + 1] and (tok[b, :qlen[b]] == tok[b + 1, :qlen[b]]).all()
    assert (d[s]["values"][:] == 0).all() and (d[s]["returns"][:] == 0).all()
    adv, m = d[s]["advantages"][:], d[s]["masks"][:]
    for b in range(4):  # one advantage per response
        assert len(set(adv[b][m[b] == 1].tolist())) == 1
EOF

# resuming it with settings that need what it never had: one line each
run_fails "$R" ppo "$CFG" "${G[@]}" --checkpoint.dir="$D/grpo" --resume --train.max_steps=4 \
    --ppo.advantage=gae --ppo.group_size=1
grep -q "has no /critic to resume, but this config trains one" "$D/err" || fail "$(cat "$D/err")"
run_fails "$R" ppo "$CFG" "${G[@]}" --checkpoint.dir="$D/grpo" --resume --train.max_steps=4 \
    --ppo.reward=model
grep -q "ppo.reward = model needs a reward model, and this run has none" "$D/err" || fail "$(cat "$D/err")"

# prompts without a task family: nothing to grade, every row earns 0 and is counted
"$PY" -c "
import json, sys
for line in open(sys.argv[1]):
    print(json.dumps({'prompt': json.loads(line)['prompt']}))" "$D/tasks/ppo_train.jsonl" >"$D/nofamily.jsonl"
run "$R" ppo "$CFG" "${G[@]}" --checkpoint.dir="$D/nofamily" --ppo.prompts_file="$D/nofamily.jsonl"
[ "$(metric "$D/nofamily/metrics.csv" rollout_ungraded)" = 4 ] || fail "ungraded rows not counted"
[ "$(metric "$D/nofamily/metrics.csv" reward)" = 0 ] || fail "ungraded rows earned a reward"

# dynamic sampling: batches are sampled until their groups with spread
# (graders' scores that differ) fill the step's rows, or 16 batches were
# sampled; the groups with spread come first, so in the dumped rollouts a
# group with a nonzero advantage never follows one without; a step that
# sampled fewer than 16 batches holds only groups with spread; the prompt
# cursor advanced by 2 prompts per batch sampled. The tiny model answers
# nothing right: the spread comes from the no-end penalty (short answers
# end or not)
run "$R" ppo "$CFG" "${G[@]}" --checkpoint.dir="$D/dyn" --ppo.kl_in_loss=true \
    --ppo.dynamic_sampling=true --ppo.max_sample_batches=16 \
    --ppo.dump_rollouts="$D/dyn.h5" --train.max_steps=4 --ppo.no_eot_penalty=-1 \
    --ppo.max_new_tokens=4
run "$PY" - "$D/dyn/latest.h5" "$D/dyn/metrics.csv" "$D/dyn.h5" <<'EOF'
import csv, sys
import h5py, numpy as np
rows = [r for r in csv.DictReader(open(sys.argv[2])) if r["reward"] != ""]
assert len(rows) == 4
d = h5py.File(sys.argv[3], "r")
total = 0
for r, s in zip(rows, sorted(d)):
    n = int(float(r["sampled_batches"]))
    assert 1 <= n <= 16, r
    total += n
    z = float(r["sampled_zero_spread"])
    assert 0 <= z <= 1
    adv, m = d[s]["advantages"][:], d[s]["masks"][:]
    signal = [bool((adv[b][m[b] == 1] != 0).any() or (adv[b + 1][m[b + 1] == 1] != 0).any())
              for b in (0, 2)]
    assert signal == sorted(signal, reverse=True), (s, signal)
    if n < 16:
        assert all(signal) and float(r["group_zero_spread"]) == 0, (s, signal, r)
    if z == 0:
        assert n == 1
with h5py.File(sys.argv[1], "r") as f:
    cursor = int(f["state/data"][4])  # rng[0..4), cursor
assert cursor == 2 * total, (cursor, total)
EOF

# dynamic sampling with the learned reward: a group has spread when its
# answers differ (equal answers score alike), so the kept groups come
# first, hold two different answers each, and carry the step's only
# nonzero advantages
run "$R" ppo "$CFG" "${G[@]}" --checkpoint.dir="$D/dynrm" --ppo.kl_in_loss=true \
    --ppo.reward=model --ppo.reward_model="$D/reward/latest.h5" \
    --ppo.dynamic_sampling=true --ppo.max_sample_batches=16 \
    --ppo.dump_rollouts="$D/dynrm.h5" --train.max_steps=4 --ppo.max_new_tokens=4 \
    --ppo.no_eot_penalty=0
run "$PY" - "$D/dynrm/metrics.csv" "$D/dynrm.h5" <<'EOF'
import csv, sys
import h5py, numpy as np
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["reward"] != ""]
assert len(rows) == 4
d = h5py.File(sys.argv[2], "r")
ns = []
for r, s in zip(rows, sorted(d)):
    n = int(float(r["sampled_batches"]))
    assert 1 <= n <= 16, r
    tok, qlen, rlen = d[s]["tokens"][:], d[s]["qlen"][:, 0], d[s]["rlen"][:, 0]
    adv, m = d[s]["advantages"][:], d[s]["masks"][:]
    differ, signal = [], []
    for b in (0, 2):
        a = tok[b, qlen[b]:qlen[b] + rlen[b]]
        c = tok[b + 1, qlen[b + 1]:qlen[b + 1] + rlen[b + 1]]
        differ.append(bool(rlen[b] != rlen[b + 1] or not (a == c).all()))
        signal.append(bool((adv[b][m[b] == 1] != 0).any() or (adv[b + 1][m[b + 1] == 1] != 0).any()))
    assert differ == signal, (s, differ, signal)
    assert differ == sorted(differ, reverse=True), (s, differ)
    if n < 16:
        assert all(differ) and float(r["group_zero_spread"]) == 0, (s, differ, r)
    ns.append(n)
# the tiny model's sampled answers differ in most groups (with the graders'
# criterion none would have spread: it answers nothing right, and no
# penalty tells ended from unended answers here)
assert min(ns) < 16, ns
EOF

# no KL penalty: no reference is loaded, and nothing about KL is logged
run "$R" ppo "$CFG" "${G[@]}" --checkpoint.dir="$D/nokl" --ppo.advantage=rloo --ppo.kl_coef=0
grep -q "reference none (kl_coef = 0); KL none$" "$D/out" || fail "rloo, kl_coef 0: $(grep '^# ppo:' "$D/out")"
head -n 1 "$D/nokl/metrics.csv" | grep -q "kl_k1" && fail "kl_k1 logged without a reference"
echo "cli_group: ok"

#!/usr/bin/env bash
# Conversations through the command line, on the tiny pipeline (whose SFT
# data mixes conversations into the single-turn lines): the SFT run trims
# the long ones and records what its data held (/state/sft_data); `rlhf
# eval` reports accuracy by turn (RESULT accuracy_turnK, JSON); multi-turn
# prompts (history + last user turn, in the "messages" and TRL forms) flow
# through ppo (the rollouts hold the history, the graders read the last
# turn), grpo, reward and dpo; chat holds the history or answers one message
# at a time as the SFT data of the checkpoint's lineage says, unless told.
cd "$(dirname "$0")/.."
source tests/cli_pipeline.bash
pipeline_build
SFT=$D/sft/latest.h5
EV=(--sft.chat_test_file="$D/tasks/chat_test.jsonl" --ppo.reward_model=)

# --- SFT data ----------------------------------------------------------------------
grep -q '^# sft train: .* conversations trimmed to their newest turns' "$D/sft.log" ||
    fail "sft does not report trimmed conversations"
run "$PY" - "$SFT" "$D/tasks/sft_train.jsonl" <<'PY'
import json, sys
import h5py
ckpt, data = sys.argv[1:3]
lines = [json.loads(l) for l in open(data)]
conv = sum(1 for l in lines if "messages" in l)
assert conv == 50, conv  # 200 single-turn lines, chat_share 0.2
with h5py.File(ckpt, "r") as f:
    d = json.loads(bytes(f["state/sft_data"][:]).decode())["sft_data"]
assert d["conversations"] == conv and d["max_user_turns"] == 4, d
assert d["file"].endswith("sft_train.jsonl"), d
PY

run "$R" inspect "$SFT"
grep -q '^  sft_data .*"conversations":50,"max_user_turns":4' "$D/out" || fail "inspect: $(grep sft_data "$D/out")"

# --- eval: accuracy by turn ----------------------------------------------------------
run "$R" eval "$SFT" "$CFG" "${EV[@]}" --json "$D/e.json"
for k in 1 2 3 4; do
    [ -n "$(result_key accuracy_turn$k)" ] || fail "RESULT lacks accuracy_turn$k: $(grep RESULT "$D/out")"
done
[ -z "$(result_key accuracy_turn5)" ] || fail "no fifth turn in the data"
grep -q '^by turn .*chat_test.jsonl: first 24 conversations' "$D/out" || fail "by-turn line: $(grep 'by turn' "$D/out")"
# each family by turn: the table's counts add up to the turns graded
"$PY" - "$D/out" <<'PY' || fail "the table of families by turn"
import re, sys
lines = open(sys.argv[1]).read().split("\n")
i = next(i for i, l in enumerate(lines) if l.startswith("by turn "))
assert re.match(r"^  family +turn 1 +turn 2 +turn 3 +turn 4 *$", lines[i + 1]), lines[i + 1]
per_turn = [0, 0, 0, 0]
for l in lines[i + 2:]:
    m = re.match(r"^  ([a-z]+) +(.*)$", l)
    if not m or m.group(1) == "all":
        break
    cells = re.findall(r"(-|\d\.\d{3} \((\d+)/(\d+)\))", m.group(2))
    assert len(cells) == 4, l
    for k, (cell, right, total) in enumerate(cells):
        if cell != "-":
            assert int(right) <= int(total)
            per_turn[k] += int(total)
assert per_turn == [24, 24, 16, 8], per_turn
PY
# the demo's table shows them
grep '^RESULT' "$D/out" >"$D/eval_sft.result"
tools/demo_table.sh "$D" >"$D/table.md" || fail "demo_table.sh"
grep -q '^| stage | turn 1 | turn 2 | turn 3 | turn 4 |$' "$D/table.md" || fail "no table by turn: $(cat "$D/table.md")"
grep -Eq '^\| sft( \| [0-9.]+%){4} \|$' "$D/table.md" || fail "no sft row by turn: $(cat "$D/table.md")"
run "$PY" - "$D/e.json" <<'PY'
import json, sys
e = json.load(open(sys.argv[1]))
# 24 conversations of 2, 3, 4 turns in turn
assert e["turn_graded"] == [24, 24, 16, 8], e["turn_graded"]
assert e["chat_conversations"] == 24
for k in range(1, 5):
    assert 0.0 <= e["accuracy_turn%d" % k] <= 1.0
PY
run "$R" eval "$SFT" "$CFG" "${EV[@]}" --sft.chat_eval_examples=3 --json "$D/e3.json"
"$PY" -c "import json,sys; e=json.load(open(sys.argv[1])); sys.exit(e['turn_graded'] != [3, 3, 2, 1])" "$D/e3.json" ||
    fail "chat_eval_examples=3 does not take the first three conversations"
run "$R" eval "$SFT" "$CFG" "${EV[@]}" --sft.chat_eval_examples=0
[ -z "$(result_key accuracy_turn1)" ] || fail "chat_eval_examples=0 still asks conversations"
run "$R" eval "$SFT" "$CFG" --sft.chat_test_file="$D/nope.jsonl" --ppo.reward_model=
grep -q 'by turn      skipped: sft.chat_test_file' "$D/out" || fail "a missing chat file is not said"

# --- multi-turn prompts and pairs ------------------------------------------------------
# from the held-out conversations: the history, then the last user turn to
# answer ({"messages"} and {"prompt": [...]} in turn); pairs in TRL's form
run "$PY" - "$D/tasks/chat_test.jsonl" "$D/mt_prompts.jsonl" "$D/mt_pairs.jsonl" <<'PY'
import json, sys
src, prompts, pairs = sys.argv[1:4]
with open(prompts, "w") as p, open(pairs, "w") as q:
    for i, line in enumerate(open(src)):
        msgs = json.loads(line)["messages"]
        ctx, answer = msgs[:-1], msgs[-1]["content"]
        if i % 2:
            p.write(json.dumps({"messages": ctx, "answer": answer}) + "\n")
        else:
            p.write(json.dumps({"prompt": ctx, "answer": answer}) + "\n")
        q.write(json.dumps({"prompt": ctx, "chosen": [{"role": "assistant", "content": answer}],
                            "rejected": answer + answer[-1]}) + "\n")
PY
MT=(--ppo.prompts_file="$D/mt_prompts.jsonl" --ppo.test_file="$D/mt_prompts.jsonl")
run "$R" ppo "$CFG" --checkpoint.dir="$D/ppo_mt" --checkpoint.init="$SFT" "${MT[@]}" \
    --train.max_steps=2 --ppo.dump_rollouts="$D/mt_rollouts.h5"
run "$PY" - "$D/mt_rollouts.h5" "$SFT" <<'PY'
import sys
import h5py, numpy as np
dump, ckpt = sys.argv[1:3]
with h5py.File(ckpt, "r") as f:
    user = int(f["tokenizer"].attrs["user"])
with h5py.File(dump, "r") as f:
    tok = np.concatenate([f[b]["tokens"][:] for b in f])
# prompts hold their history (in the 48-token context most lose their
# oldest exchanges; prompts_encode's exact encoding is checked in
# test_multiturn): a row with two <|user|> turns or more
users = (tok == user).sum(axis=1)
assert users.min() >= 1 and users.max() >= 2, users
PY
run "$R" ppo "$CFG" --checkpoint.dir="$D/grpo_mt" --checkpoint.init="$SFT" "${MT[@]}" \
    --train.max_steps=2 --ppo.reward=grader --ppo.advantage=grpo --ppo.group_size=2 --ppo.reward_model=
[ "$(metric "$D/grpo_mt/metrics.csv" rollout_ungraded)" = 0 ] ||
    fail "the graders could not read the last user turn of multi-turn prompts"
PAIRS=(--reward.train_file="$D/mt_pairs.jsonl" --reward.test_file="$D/mt_pairs.jsonl"
       --dpo.train_file="$D/mt_pairs.jsonl" --dpo.test_file="$D/mt_pairs.jsonl")
run "$R" reward "$CFG" --checkpoint.dir="$D/reward_mt" --checkpoint.init="$SFT" "${PAIRS[@]}" \
    --train.max_steps=2
run "$R" dpo "$CFG" --checkpoint.dir="$D/dpo_mt" --checkpoint.init="$SFT" "${PAIRS[@]}" \
    --train.max_steps=2
[ -n "$(metric "$D/dpo_mt/metrics.csv" eval_rewards/accuracies)" ] || fail "dpo: no held-out pairs scored"
run "$R" eval "$D/dpo_mt/latest.h5" "$CFG" "${PAIRS[@]}" "${MT[@]}" --ppo.reward_model="$D/reward_mt/latest.h5"
grep -q '^likelihood   .*mt_pairs.jsonl: 2[0-9] pairs' "$D/out" || fail "eval of multi-turn pairs: $(grep likelihood "$D/out")"
grep -q '^reward       .*mt_prompts.jsonl: 8 prompts' "$D/out" || fail "eval of multi-turn prompts: $(grep '^reward' "$D/out")"

# --- chat: history or not ------------------------------------------------------------
# replies to "reverse: dog" alone, and after "reverse: cat"
alone=$(printf 'reverse: dog\n' | "$R" chat "$SFT" --temperature 0 2>/dev/null)
both=$(printf 'reverse: cat\nreverse: dog\n' | "$R" chat "$SFT" --temperature 0 --single_turn 2>"$D/err")
[ "$(printf '%s\n' "$both" | tail -n 1)" = "$alone" ] || fail "--single_turn keeps the history"
grep -q 'held no conversation' "$D/err" && fail "a note for a model trained on conversations"
# an SFT run on single-turn data: chat answers one message at a time, and
# so does a PPO policy of that lineage; --multi_turn keeps the history
run "$R" tasks --out "$D/single" --n_train 200 --n_test 24 --seed 3 --chat_share 0
run "$R" sft "$CFG" --checkpoint.dir="$D/sft1" --checkpoint.init="$D/pretrain/latest.h5" \
    --sft.train_file="$D/single/sft_train.jsonl" --train.max_steps=2
run "$R" ppo "$CFG" --checkpoint.dir="$D/ppo1" --checkpoint.init="$D/sft1/latest.h5" --train.max_steps=1
for C in "$D/sft1/latest.h5" "$D/ppo1/latest.h5"; do
    alone=$(printf 'reverse: dog\n' | "$R" chat "$C" --temperature 0 2>/dev/null)
    both=$(printf 'reverse: cat\nreverse: dog\n' | "$R" chat "$C" --temperature 0 2>"$D/err")
    [ "$(printf '%s\n' "$both" | tail -n 1)" = "$alone" ] || fail "$C: the history was kept"
    [ "$(grep -c 'held no conversation' "$D/err")" -eq 1 ] || fail "$C: no note: $(cat "$D/err")"
    printf 'reverse: cat\n' | "$R" chat "$C" --temperature 0 --multi_turn >/dev/null 2>"$D/err" ||
        fail "--multi_turn"
    grep -q 'held no conversation' "$D/err" && fail "$C: a note despite --multi_turn"
done
run_fails "$R" chat "$SFT" --single_turn --multi_turn
run_fails "$R" tasks --out "$D/x" --chat_share 0.7
run_fails "$R" tasks --out "$D/x" --chat_share abc
echo "cli_multiturn: ok"

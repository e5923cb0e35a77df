#!/usr/bin/env bash
# Every stage with data.tokenizer = gpt2 (vocabulary 50260): the tiny
# pipeline (prepare, pretrain, sft, reward, ppo) on GPT-2's tokenizer, then
# DPO, GRPO, eval, sample and chat. The checkpoints carry the gpt2
# tokenizer (loading needs no outside file), and what sample and chat print
# is valid UTF-8 even where a token boundary cuts a character.
cd "$(dirname "$0")/.."
set -u
R=${RLHF_BIN:-build/default/rlhf}
PY=${PYTHON:-/usr/bin/python3}
D=$(mktemp -d /tmp/rlhf_gpt2pipe.XXXXXX)
trap 'rm -rf "$D"' EXIT
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
fail() { echo "FAIL: $*" >&2; exit 1; }
run() { "$@" >"$D/out" 2>"$D/err" || { local rc=$?; tail -3 "$D/err" >&2; fail "exit $rc from: $*"; }; }
utf8() { "$PY" -c "import sys; sys.stdin.buffer.read().decode('utf-8')" <"$1" || fail "$2 printed bytes that are not UTF-8"; }

TINY_LAYERS=1 TINY_DUMP=0 TINY_BPE=0 TINY_TOKENIZER=gpt2 RLHF_BIN=$R tools/tiny_pipeline.sh "$D" 2 ||
    fail "tiny pipeline with gpt2 (logs in $D)"
CFG=$D/tiny.ini
grep -q "tokenizer: gpt2, 50260 tokens" "$D/prepare.log" || fail "prepare: $(tail -2 "$D/prepare.log")"
for s in pretrain sft reward ppo; do
    "$PY" - "$D/$s/latest.h5" <<'PYEOF' || fail "$s checkpoint does not hold the gpt2 tokenizer"
import h5py, sys
f = h5py.File(sys.argv[1], "r")
t = f["tokenizer"]
assert t.attrs["type"] in (b"gpt2", "gpt2"), t.attrs["type"]
assert t.attrs["vocab_size"] == 50260 and t.attrs["eot"] == 50256 and t.attrs["pad"] == 50259
assert t["merges"].shape == (50000, 2)
PYEOF
done
export RLHF_GPT2_DIR=$D/nowhere  # from here on GPT-2's files are not needed
run "$R" dpo "$CFG" --checkpoint.dir="$D/dpo" --checkpoint.init="$D/sft/latest.h5" \
    --dpo.train_file="$D/tasks/pref_train.jsonl" --dpo.test_file="$D/tasks/pref_test.jsonl" \
    --dpo.eval_pairs=8
run "$R" ppo "$CFG" --checkpoint.dir="$D/grpo" --checkpoint.init="$D/sft/latest.h5" \
    --ppo.advantage=grpo --ppo.reward=grader --ppo.group_size=2 --ppo.reward_model=
run "$R" eval "$D/ppo/latest.h5" "$CFG"
"$R" sample "$D/sft/latest.h5" --prompt "naïve café 日本語 🎉" --num_samples 3 --max_new_tokens 40 \
    --temperature 2 >"$D/sample.txt" 2>"$D/err" || fail "sample: $(cat "$D/err")"
utf8 "$D/sample.txt" sample
grep -q "naïve café 日本語 🎉" "$D/sample.txt" || fail "sample lost its prompt"
printf 'hello 日本語\nwhat is 2+3?\n' | "$R" chat "$D/sft/latest.h5" --max_new_tokens 30 --temperature 2 \
    >"$D/chat.txt" 2>"$D/err" || fail "chat: $(cat "$D/err")"
utf8 "$D/chat.txt" chat
[ "$(grep -c '^bot> ' "$D/chat.txt")" -eq 2 ] || fail "chat did not answer twice: $(cat "$D/chat.txt")"
echo ok

#!/usr/bin/env bash
# make data: the default corpus (Debian's fortunes, tokenized into
# data/gen/fortunes) and the task data (data/gen/tasks). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
RLHF=${RLHF_BIN:-./rlhf}
# chat_test.jsonl came with the conversations: older task data is rewritten
# (its single-turn lines stay the same bytes)
if [ ! -f data/gen/tasks/sft_train.jsonl ] || [ ! -f data/gen/tasks/chat_test.jsonl ]; then
    "$RLHF" tasks --out data/gen/tasks --n_train 60000
fi
if [ ! -f data/gen/fortunes/train.h5 ]; then
    "$RLHF" prepare configs/pretrain_fortunes.ini | grep '^# \(corpus\|tokenizer\|wrote\)'
fi
echo "data: data/gen/fortunes (corpus shards) and data/gen/tasks (SFT with conversations, preference, PPO JSONL) ready"

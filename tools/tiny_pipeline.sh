#!/usr/bin/env bash
# tiny_pipeline.sh DIR [STEPS]: builds a whole tiny pipeline in DIR for the
# notebooks (tests/notebooks.sh, notebooks/render.sh) and the CLI tests
# (tests/cli_pipeline.bash): task data, a char tokenizer and shards from the
# task text, pretrain -> sft -> reward -> ppo (STEPS steps each, default 4),
# every stage reading DIR/tiny.ini and logging to DIR/STAGE.log. One thread,
# seconds. Knobs (environment):
#   TINY_LAYERS=N  layers of the model (default 2)
#   TINY_DUMP=0    no rollout dump (default: ppo dumps to DIR/ppo/rollouts.h5)
#   TINY_BPE=0     no BPE run (default: a small BPE pretrain in DIR/bpe_pretrain)
#   TINY_TOKENIZER=gpt2  GPT-2's tokenizer instead of char (default char)
set -euo pipefail
D=${1:?usage: tiny_pipeline.sh DIR [STEPS]}
STEPS=${2:-4}
R=${RLHF_BIN:-build/default/rlhf}
DUMP=
[ "${TINY_DUMP:-1}" = 1 ] && DUMP="dump_rollouts = $D/ppo/rollouts.h5"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
mkdir -p "$D"
EVAL=$(( STEPS / 2 > 0 ? STEPS / 2 : 1 ))

step() {  # name, command...: runs one stage with its output in DIR/NAME.log
    local name=$1; shift
    "$@" >"$D/$name.log" 2>&1 || { tail -n 5 "$D/$name.log" >&2; echo "tiny_pipeline: $name failed" >&2; exit 1; }
}

step tasks "$R" tasks --out "$D/tasks" --n_train 200 --n_test 24 --seed 3
# a corpus of task lines, one document each
sed 's/$/\n/' "$D/tasks/sft_train.jsonl" >"$D/corpus.txt"
CFG=$D/tiny.ini
cat >"$CFG" <<INI
[model]
n_layer = ${TINY_LAYERS:-2}
n_head = 2
n_embd = 16
block_size = 48
[data]
corpus = $D/corpus.txt
dir = $D/data
tokenizer = ${TINY_TOKENIZER:-char}
[train]
batch_size = 4
max_steps = $STEPS
eval_interval = $EVAL
eval_steps = 3
log_interval = 1
threads = 1
[optim]
warmup_steps = 1
[sft]
train_file = $D/tasks/sft_train.jsonl
test_file = $D/tasks/sft_test.jsonl
chat_test_file = $D/tasks/chat_test.jsonl
eval_examples = 12
max_new_tokens = 8
[reward]
train_file = $D/tasks/pref_train.jsonl
test_file = $D/tasks/pref_test.jsonl
[ppo]
prompts_file = $D/tasks/ppo_train.jsonl
test_file = $D/tasks/ppo_test.jsonl
reward_model = $D/reward/latest.h5
rollout_batch = 4
minibatches = 2
ppo_epochs = 1
max_new_tokens = 8
eval_prompts = 8
$DUMP
[checkpoint]
every = $EVAL
INI
step prepare "$R" prepare "$CFG"
step pretrain "$R" pretrain "$CFG" --checkpoint.dir="$D/pretrain"
step sft "$R" sft "$CFG" --checkpoint.dir="$D/sft" --checkpoint.init="$D/pretrain/latest.h5"
step reward "$R" reward "$CFG" --checkpoint.dir="$D/reward" --checkpoint.init="$D/sft/latest.h5"
step ppo "$R" ppo "$CFG" --checkpoint.dir="$D/ppo" --checkpoint.init="$D/sft/latest.h5"
[ "${TINY_BPE:-1}" = 1 ] || exit 0
step prepare_bpe "$R" prepare "$CFG" --data.dir="$D/bpe" --data.tokenizer=bpe --data.vocab_size=300
step pretrain_bpe "$R" pretrain "$CFG" --data.dir="$D/bpe" --checkpoint.dir="$D/bpe_pretrain" \
    --train.max_steps=2 --train.eval_interval=2

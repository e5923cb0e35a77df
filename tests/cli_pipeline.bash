# Sourced by tests/cli_*.sh (not a test itself): builds a whole tiny
# pipeline in a fresh temp dir, in a few seconds: task data, a char
# tokenizer and shards made from the task text, then pretrain -> sft ->
# reward -> ppo, each a few steps of a 1-layer model on one thread (so
# numbers are reproducible). Sets D (the dir, removed on exit), CFG (the
# INI every stage and `rlhf eval` read) and R (the binary).
set -u
R=${RLHF_BIN:-build/default/rlhf}
PY=${PYTHON:-/usr/bin/python3}
D=$(mktemp -d /tmp/rlhf_cli.XXXXXX)
# one thread everywhere: on a busy machine, OpenMP barriers of a tiny model
# wait for descheduled threads far longer than the work takes
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
trap 'rm -rf "$D"' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
# run CMD...: runs it with output in $D/out and $D/err; fails unless it exits 0
run() { "$@" >"$D/out" 2>"$D/err" || { cat "$D/err" >&2; fail "exit $? from: $*"; }; }
# run_fails CMD...: must exit 1 with exactly one line on stderr
run_fails() {
    "$@" >"$D/out" 2>"$D/err"
    local rc=$?
    [ $rc -eq 1 ] || fail "expected exit 1, got $rc from: $*"
    [ "$(wc -l <"$D/err")" -eq 1 ] || { cat "$D/err" >&2; fail "expected one error line from: $*"; }
    grep -q 'hint' "$D/err" || fail "error without a hint from: $*: $(cat "$D/err")"
}

pipeline_build() {
    "$R" tasks --out "$D/tasks" --n_train 200 --n_test 24 --seed 3 >/dev/null ||
        fail "rlhf tasks"
    # a corpus of task lines, one document each: every character the tasks use
    sed 's/$/\n/' "$D/tasks/sft_train.jsonl" >"$D/corpus.txt"
    CFG=$D/tiny.ini
    cat >"$CFG" <<EOF
[model]
n_layer = 1
n_head = 2
n_embd = 16
block_size = 48
[data]
corpus = $D/corpus.txt
dir = $D/data
tokenizer = char
[train]
batch_size = 4
max_steps = 4
eval_interval = 2
eval_steps = 3
log_interval = 1
threads = 1
[optim]
warmup_steps = 1
[sft]
train_file = $D/tasks/sft_train.jsonl
test_file = $D/tasks/sft_test.jsonl
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
[checkpoint]
every = 2
EOF
    "$R" prepare "$CFG" >"$D/prepare.log" 2>&1 || { tail -3 "$D/prepare.log"; fail "prepare"; }
    "$R" pretrain "$CFG" --checkpoint.dir="$D/pretrain" >"$D/pretrain.log" 2>&1 ||
        { tail -3 "$D/pretrain.log"; fail "pretrain"; }
    "$R" sft "$CFG" --checkpoint.dir="$D/sft" --checkpoint.init="$D/pretrain/latest.h5" \
        >"$D/sft.log" 2>&1 || { tail -3 "$D/sft.log"; fail "sft"; }
    "$R" reward "$CFG" --checkpoint.dir="$D/reward" --checkpoint.init="$D/sft/latest.h5" \
        >"$D/reward.log" 2>&1 || { tail -3 "$D/reward.log"; fail "reward"; }
    "$R" ppo "$CFG" --checkpoint.dir="$D/ppo" --checkpoint.init="$D/sft/latest.h5" \
        >"$D/ppo.log" 2>&1 || { tail -3 "$D/ppo.log"; fail "ppo"; }
}

# metric CSV COLUMN: the column's value in the last row that has one
metric() {
    "$PY" - "$1" "$2" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
vals = [r[sys.argv[2]] for r in rows if r.get(sys.argv[2], "") != ""]
print(vals[-1] if vals else "")
EOF
}

# result_key KEY: the value of KEY on the RESULT line of $D/out
result_key() {
    grep '^RESULT ' "$D/out" | tr ' ' '\n' | sed -n "s/^$1=//p"
}

# close A B TOL: |A - B| <= TOL * max(1, |B|)
close() {
    "$PY" -c "import sys; a, b, t = map(float, sys.argv[1:]); sys.exit(abs(a - b) > t * max(1.0, abs(b)))" "$1" "$2" "$3"
}

#!/usr/bin/env bash
# Bad input of every kind through the command line: each must give exit 1,
# exactly one stderr line "rlhf: error: ..." naming the problem, no crash
# (no signal, no sanitizer report), and leave every file already on disk
# (a whole pipeline's run directories, data and task files) byte-identical.
# Covers corpora, configs, overrides, checkpoints (truncated, random,
# foreign, forged), JSONL, run directories, commands and a NaN loss.
cd "$(dirname "$0")/.."
source tests/cli_pipeline.bash
pipeline_build

# snapshot: sha256 of every file (and the target of every link) already on
# disk; stamp: the same files' inode, size and mtime (cheap, after every call:
# a write or a replacement changes one of them). A run directory's .lock is
# left out: a run that takes the lock and is then refused writes its pid there.
OLD=(pretrain sft reward ppo data tasks corpus.txt tiny.ini)
snapshot() {
    (cd "$D" && {
        find "${OLD[@]}" -type f ! -name .lock -print0 | xargs -0 sha256sum
        find "${OLD[@]}" -type l -printf '%p -> %l\n'
    } | sort)
}
stamp() { (cd "$D" && find "${OLD[@]}" ! -name .lock -printf '%p %i %s %T@ %l\n' | sort); }
snapshot >"$D/before"
stamp >"$D/stamp"
[ "$(grep -c 'step_000004.h5' "$D/before")" -ge 8 ] || fail "snapshot misses the checkpoints"

# bad PATTERN CMD...: exit 1, one stderr line "rlhf: error: " matching the
# extended regex PATTERN, nothing on disk changed
n_bad=0
bad() {
    local pattern=$1
    shift
    n_bad=$((n_bad + 1))
    "$@" >"$D/out" 2>"$D/err" </dev/null
    local rc=$?
    # IGNORE: a regex of stderr lines that are not the program's (see the OOM case)
    if [ -n "${IGNORE:-}" ]; then grep -Ev "$IGNORE" "$D/err" >"$D/err2"; mv "$D/err2" "$D/err"; fi
    [ $rc -lt 128 ] || fail "crash (exit $rc) from: $*: $(tail -3 "$D/err")"
    [ $rc -eq 1 ] || fail "expected exit 1, got $rc from: $*: $(tail -3 "$D/err")"
    [ "$(wc -l <"$D/err")" -eq 1 ] || { cat "$D/err" >&2; fail "expected one stderr line from: $*"; }
    grep -q '^rlhf: error: ' "$D/err" || fail "no 'rlhf: error: ' prefix from: $*: $(cat "$D/err")"
    grep -Eq -- "$pattern" "$D/err" || fail "error from: $* does not match '$pattern': $(cat "$D/err")"
    stamp | cmp -s - "$D/stamp" ||
        fail "files on disk changed after: $*: $(stamp | diff "$D/stamp" - | head -4)"
}
T=$D/tiny.ini
P=$D/pretrain/latest.h5
S=$D/sft/latest.h5

# --- corpora (prepare into the existing data dir: it must stay as it is) -------
: >"$D/empty.txt"
printf '\n\n   \n\n' >"$D/blank.txt"
mkdir "$D/bindir"
head -c 4096 /dev/urandom | tr -d '\n' | tr '\001' '\000' >"$D/bindir/blob.bin"
printf '\000binary' >>"$D/bindir/blob.bin"
gzip -c "$D/corpus.txt" | head -c 1500 >"$D/cut.gz"
head -c 500 /dev/urandom >"$D/noise.gz"
bad "corpus path '$D/missing.txt' does not exist" "$R" prepare "$T" --data.corpus="$D/missing.txt"
bad 'holds no documents' "$R" prepare "$T" --data.corpus="$D/empty.txt"
bad 'holds no documents' "$R" prepare "$T" --data.corpus="$D/blank.txt"
bad 'holds no documents \(0 files read, 1 skipped\)' "$R" prepare "$T" --data.corpus="$D/bindir"
bad 'looks binary' "$R" prepare "$T" --data.corpus="$D/bindir/blob.bin"
bad 'truncated gzip' "$R" prepare "$T" --data.corpus="$D/cut.gz"
bad 'gzip' "$R" prepare "$T" --data.corpus="$D/noise.gz"
# a bpe vocabulary larger than the text can give
bad 'vocab_size 100000 is more than this text allows' \
    "$R" prepare "$T" --data.tokenizer=bpe --data.vocab_size=100000

# --- configs and overrides --------------------------------------------------
printf '[model]\nn_layer = 1\nn_lyer = 2\n' >"$D/key.ini"
printf '[model]\nn_layer = 1\n[modle]\nn_head = 2\n' >"$D/sec.ini"
printf '[train]\nbatch_size = four\n' >"$D/type.ini"
printf '[optim]\nlr = 1e-3x\n' >"$D/float.ini"
printf '[train]\nshuffle = maybe\n' >"$D/bool.ini"
printf 'n_layer = 1\n' >"$D/nosec.ini"
printf '[model]\nn_layer = 1\nn_layer = 2\n' >"$D/dup.ini"
for stage in prepare pretrain sft reward ppo; do
    bad "key.ini:3: unknown key 'n_lyer' in \[model\]" "$R" $stage "$D/key.ini"
done
bad "sec.ini:3: unknown section \[modle\]" "$R" pretrain "$D/sec.ini"
bad "type.ini:2: .*batch_size = 'four' is not an integer" "$R" pretrain "$D/type.ini"
bad "float.ini:2: .*lr = '1e-3x'" "$R" pretrain "$D/float.ini"
bad "bool.ini:2: .*'maybe' is not a boolean" "$R" pretrain "$D/bool.ini"
bad "nosec.ini:1: " "$R" pretrain "$D/nosec.ini"
bad "dup.ini:3: .*set twice" "$R" pretrain "$D/dup.ini"
bad "$D/tasks: .*directory" "$R" pretrain "$D/tasks"           # a directory as config
bad "$D/none.ini: cannot open" "$R" sft "$D/none.ini"
bad "holds a NUL byte" "$R" pretrain "$P"                     # a checkpoint as config
bad "/dev/zero: cannot read config file: it is not a regular file" "$R" pretrain /dev/zero
bad "larger than 1 MiB" "$R" pretrain <(head -c 2000000 /dev/zero | tr "\\0" "a")
bad "unknown key 'bogus' in \[train\]" "$R" pretrain "$T" --train.bogus=1 --checkpoint.dir="$D/x"
bad "unknown section \[bogus\]" "$R" sft "$T" --bogus.key=1 --checkpoint.dir="$D/x"
bad "max_steps = '1.5' is not an integer" "$R" pretrain "$T" --train.max_steps=1.5 --checkpoint.dir="$D/x"
bad "'nan' is not a finite number" "$R" pretrain "$T" --optim.lr=nan --checkpoint.dir="$D/x"
bad "n_embd = 17 is not a multiple of model.n_head = 2" \
    "$R" pretrain "$T" --model.n_embd=17 --checkpoint.dir="$D/x"
bad "batch_size = 0" "$R" reward "$T" --train.batch_size=0 --checkpoint.dir="$D/x"
bad "unknown option '--nope'" "$R" pretrain "$T" --nope
bad "train.threads = 100000 is more than 4 per CPU" \
    "$R" pretrain "$T" --train.threads=100000 --checkpoint.dir="$D/x"
# a thread count whose OpenBLAS buffers (129 MiB each) exceed the address-space
# limit: OpenBLAS would retry its allocation forever (sanitizer builds cannot
# run under ulimit -v)
if [[ $R != *asan* ]]; then
    nt=$((4 * $(nproc)))
    bad "train.threads = $nt needs about .* GiB of address space" timeout 60 \
        bash -c 'ulimit -v $1 && shift && exec "$@"' _ $((nt * 129 * 1024)) \
        "$R" pretrain "$T" --train.threads=$nt --checkpoint.dir="$D/x"
fi
# ppo keys that do not go together (tiny.ini: rollout_batch 4)
X=(--checkpoint.init="$S" --checkpoint.dir="$D/x")
bad "ppo.advantage = 'ppo' is not one of gae\|grpo\|rloo\|reinforce" "$R" ppo "$T" "${X[@]}" --ppo.advantage=ppo
bad "ppo.reward = 'rm' is not one of model\|grader\|model\+grader" "$R" ppo "$T" "${X[@]}" --ppo.reward=rm
bad "ppo.loss_norm = 'seq' is not one of token\|sequence" "$R" ppo "$T" "${X[@]}" --ppo.loss_norm=seq
bad "ppo.scale_rewards = 'std' is not one of" "$R" ppo "$T" "${X[@]}" --ppo.scale_rewards=std
bad "ppo.group_size = 0" "$R" ppo "$T" "${X[@]}" --ppo.group_size=0
bad "ppo.rollout_batch = 4 is not a multiple of ppo.group_size = 3" \
    "$R" ppo "$T" "${X[@]}" --ppo.advantage=grpo --ppo.group_size=3
bad "ppo.advantage = grpo compares the responses to one prompt, but ppo.group_size = 1" \
    "$R" ppo "$T" "${X[@]}" --ppo.advantage=grpo
bad "ppo.advantage = rloo compares the responses to one prompt" "$R" ppo "$T" "${X[@]}" --ppo.advantage=rloo
bad "ppo.scale_rewards = batch applies to ppo.advantage = grpo only, not rloo" \
    "$R" ppo "$T" "${X[@]}" --ppo.advantage=rloo --ppo.group_size=2 --ppo.scale_rewards=batch
bad "ppo.adaptive_kl adapts the KL penalty in the reward, but ppo.kl_in_loss" \
    "$R" ppo "$T" "${X[@]}" --ppo.adaptive_kl=true --ppo.kl_in_loss=true
bad "ppo.dynamic_sampling keeps the groups whose scores differ, so it needs groups of answers to one prompt, not ppo.group_size = 1" \
    "$R" ppo "$T" "${X[@]}" --ppo.dynamic_sampling=true --ppo.reward=grader
bad "ppo.max_sample_batches = 0" "$R" ppo "$T" "${X[@]}" --ppo.max_sample_batches=0
bad "ppo.adaptive_kl scales ppo.kl_coef, which is 0" \
    "$R" ppo "$T" "${X[@]}" --ppo.adaptive_kl=true --ppo.kl_coef=0
bad "ppo.reward_model is empty; hint: .*--ppo.reward=grader" \
    "$R" ppo "$T" "${X[@]}" --ppo.reward=model+grader --ppo.reward_model=
# a resume that would drop the run's critic, or grow one it never had
bad "latest.h5 trains a /critic, but this config does not" \
    "$R" ppo "$T" --checkpoint.init="$S" --checkpoint.dir="$D/ppo" --resume --ppo.advantage=reinforce
# pretraining windows (PPO-ptx, sft.pretrain_mix): ranges, the shard
# (missing, another tokenizer, changed under a run), a resume that turns
# them on or off
Y=(--checkpoint.init="$P" --checkpoint.dir="$D/x")
bad "ppo.ptx_coef = -0.5 must be >= 0" "$R" ppo "$T" "${X[@]}" --ppo.ptx_coef=-0.5
bad "ppo.ptx_batch = 0" "$R" ppo "$T" "${X[@]}" --ppo.ptx_coef=1 --ppo.ptx_batch=0
bad "sft.pretrain_mix = 1 must be in \[0, 1\)" "$R" sft "$T" "${Y[@]}" --sft.pretrain_mix=1
bad "sft.pretrain_mix = -0.25 must be in \[0, 1\)" "$R" sft "$T" "${Y[@]}" --sft.pretrain_mix=-0.25
bad "sft.pretrain_mix = 0.1 of train.batch_size = 4 rows gives no pretraining window" \
    "$R" sft "$T" "${Y[@]}" --sft.pretrain_mix=0.1
bad "sft.pretrain_mix = 0.9 of train.batch_size = 4 rows gives no example" \
    "$R" sft "$T" "${Y[@]}" --sft.pretrain_mix=0.9
bad "ppo.ptx_coef needs the pretraining shard $D/none/train.h5, which is missing" \
    "$R" ppo "$T" "${X[@]}" --ppo.ptx_coef=1 --data.dir="$D/none"
bad "sft.pretrain_mix needs the pretraining shard $D/none/train.h5, which is missing" \
    "$R" sft "$T" "${Y[@]}" --sft.pretrain_mix=0.25 --data.dir="$D/none"
run "$R" prepare "$T" --data.dir="$D/bpe" --data.tokenizer=bpe --data.vocab_size=300
bad "ppo.ptx_coef: the pretraining shard $D/bpe/train.h5 was made with another tokenizer" \
    "$R" ppo "$T" "${X[@]}" --ppo.ptx_coef=1 --data.dir="$D/bpe"
bad "sft.pretrain_mix: the pretraining shard $D/bpe/train.h5 was made with another tokenizer" \
    "$R" sft "$T" "${Y[@]}" --sft.pretrain_mix=0.5 --data.dir="$D/bpe"
bad "ppo.ptx_coef: the run being resumed was trained without pretraining windows" \
    "$R" ppo "$T" --checkpoint.init="$S" --checkpoint.dir="$D/ppo" --resume --ppo.ptx_coef=1
cp -r "$D/data" "$D/data2"
run "$R" ppo "$T" --checkpoint.init="$S" --checkpoint.dir="$D/ptx" --train.max_steps=1 \
    --ppo.ptx_coef=1 --data.dir="$D/data2"
bad "ppo.ptx_coef: the run being resumed was trained with pretraining windows" \
    "$R" ppo "$T" --checkpoint.init="$S" --checkpoint.dir="$D/ptx" --resume --train.max_steps=2
run "$R" prepare "$T" --data.dir="$D/data2" --data.val_fraction=0.2
bad "the pretraining shard .*/data2/train.h5 changed since this run started" \
    "$R" ppo "$T" --checkpoint.init="$S" --checkpoint.dir="$D/ptx" --resume --train.max_steps=2 \
    --ppo.ptx_coef=1
bad "unexpected argument" "$R" pretrain "$T" "$T"
# a model too large for memory is refused, not crashed on (sanitizer builds
# abort on such requests unless told to return NULL like malloc does, and
# then say so in a warning line of their own)
IGNORE='^==[0-9]+==WARNING: AddressSanitizer failed to allocate' \
    bad "out of memory" env ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}allocator_may_return_null=1" \
    "$R" pretrain "$T" --model.n_embd=65536 --model.n_layer=4096 --model.n_head=1 --checkpoint.dir="$D/x"
[ -e "$D/x/latest.h5" ] && fail "a failed start left a checkpoint in $D/x"

# --- sample: a prompt longer than the context (T = 48) ----------------------
long=$(printf 'a%.0s' {1..200})
bad "prompt is 200 tokens, the context holds 48" "$R" sample "$P" --prompt "$long"
bad "not in the vocabulary" "$R" sample "$P" --prompt "$(printf 'caf\xc3\xa9')"
bad "top_p = 2" "$R" sample "$P" --top_p 2

# --- output files an option names: never an input, never an existing file ------
# (--force replaces an existing file that is not an input)
bad "--logits $P: is the input $P itself" "$R" sample "$P" --logits "$P"
bad "--logits $D/pretrain/step_000004.h5: is the input $P itself" \
    "$R" sample "$P" --logits "$D/pretrain/step_000004.h5" --force
bad "--logits $T: already exists; hint: .*--force" "$R" sample "$P" --logits "$T"
bad "--logits $D/tasks: is a directory" "$R" sample "$P" --logits "$D/tasks" --force
bad "--force applies to --logits FILE only" "$R" sample "$P" --force
bad "--json $P: is the input $P itself" "$R" eval "$P" "$T" --json "$P" --force
bad "--json $T: is the input $T itself" "$R" eval "$P" "$T" --json "$T" --force
bad "--json $D/tasks/sft_test.jsonl: already exists" "$R" eval "$P" "$T" --json "$D/tasks/sft_test.jsonl"
bad "--force applies to --json FILE only" "$R" eval "$P" "$T" --force
echo old >"$D/old.txt"
run "$R" sample "$P" --logits "$D/old.txt" --force
grep -q '^# next-token logits' "$D/old.txt" || fail "--logits --force did not replace the file"
run "$R" eval "$P" "$T" --json "$D/old.txt" --force
"$PY" -c "import json,sys; json.load(open(sys.argv[1]))" "$D/old.txt" || fail "--json --force did not replace the file"
compgen -G "$D/*.tmp" >/dev/null && fail "an output left a .tmp behind"

# --- checkpoints: truncated, random bytes, foreign and forged HDF5 ------------
head -c 30000 "$P" >"$D/trunc.h5"
head -c 100 "$P" >"$D/head.h5"
: >"$D/zero.h5"
head -c 50000 /dev/urandom >"$D/random.h5"
"$PY" - "$D" "$D/pretrain/step_000004.h5" <<'EOF' || fail "h5py could not write the forged files"
import h5py, shutil, sys
import numpy as np
d, src = sys.argv[1:3]
with h5py.File(d + "/foreign.h5", "w") as f:   # plausible names, no rlhf.c attributes
    f.attrs["stage"] = "pretrain"
    f["model/transformer.wte.weight"] = np.zeros((101, 16), "f4")
def forge(name, edit, unseal=True):
    # unseal: the root checksum removed too (a file written before checksums),
    # so that the checks behind it are reached
    shutil.copy(src, d + "/" + name)
    with h5py.File(d + "/" + name, "r+") as f:
        edit(f)
        if unseal and "checksum" in f.attrs:
            del f.attrs["checksum"]
def reshape(f):
    del f["model/transformer.wte.weight"]
    f["model/transformer.wte.weight"] = np.zeros((101, 17), "f4")
def nan(f):
    w = f["model/transformer.h.0.mlp.c_fc.weight"]
    a = w[...]
    a[3, 2], a[0, 0] = np.nan, np.inf
    w[...] = a
forge("shape.h5", reshape)
forge("notensor.h5", lambda f: f.__delitem__("model/transformer.ln_f.bias"))
forge("huge.h5", lambda f: f["model"].attrs.__setitem__("n_layer", 1000000))
forge("version.h5", lambda f: f.attrs.__setitem__("format_version", 99))
forge("notok.h5", lambda f: f.__delitem__("tokenizer"))
forge("nan.h5", nan)
forge("banana.h5", lambda f: f.attrs.__setitem__("stage", "banana"))
forge("negstep.h5", lambda f: f.attrs.__setitem__("step", np.int64(-5)))
def one_byte(f):  # of the config JSON: n_layer 1 -> 2, checksum kept
    c = f.attrs["config"]
    assert '"n_layer":1,' in c
    f.attrs["config"] = c.replace('"n_layer":1,', '"n_layer":2,', 1)
forge("config.h5", one_byte, False)
forge("eot.h5", lambda f: f["tokenizer"].attrs.__setitem__("eot", np.int32(3)), False)
EOF
declare -A why=([trunc.h5]='truncated' [head.h5]='truncated' [zero.h5]='not an HDF5 file'
    [random.h5]='not an HDF5 file' [foreign.h5]='foreign HDF5'
    [shape.h5]='wte.weight has shape \[101, 17\], expected \[101, 16\]'
    [notensor.h5]='ln_f.bias is missing' [huge.h5]='invalid config' [version.h5]='format_version 99'
    [notok.h5]='tokenizer is missing' [nan.h5]='c_fc.weight holds 2 non-finite values \(NaN or Inf\)'
    [banana.h5]="stage 'banana' is not one rlhf.c writes" [negstep.h5]='step -5 is negative'
    [config.h5]='do not match their checksum' [eot.h5]='do not match their checksum')
for f in "${!why[@]}"; do
    w=${why[$f]}
    bad "$w" "$R" sample "$D/$f" --max_new_tokens 5
    bad "$w" "$R" inspect "$D/$f"
    bad "$w" "$R" eval "$D/$f" "$T"
    bad "$w" "$R" chat "$D/$f"
    bad "$w" "$R" sft "$T" --checkpoint.init="$D/$f" --checkpoint.dir="$D/x"
done
for f in trunc.h5 random.h5 foreign.h5; do
    w=${why[$f]}
    bad "$w" "$R" reward "$T" --checkpoint.init="$D/$f" --checkpoint.dir="$D/x"
    bad "$w" "$R" ppo "$T" --checkpoint.init="$D/$f" --checkpoint.dir="$D/x"
    bad "$w" "$R" ppo "$T" --checkpoint.init="$S" --ppo.reward_model="$D/$f" --checkpoint.dir="$D/x"
    bad "$w" "$R" eval "$D/ppo/latest.h5" "$T" --ppo.reward_model="$D/$f"
done
bad "is a directory" "$R" sample "$D/pretrain"
# a tokenizer file whose global heap (variable-length strings, no checksum
# in HDF5) was damaged so that HDF5 1.10.8 loops forever reading an attribute
# (found by fuzz/fuzz_checkpoint): the watchdog ends it with one line
for cmd in inspect sample; do
    bad "tests/fixtures/heap_loop.h5: HDF5 did not finish reading its metadata in 2 s" \
        env RLHF_WATCHDOG_SECONDS=2 "$R" $cmd tests/fixtures/heap_loop.h5
done
# a file whose global heap states a size far past its collection: HDF5
# 1.10.8 copies that many bytes and faults (found by fuzz/fuzz_checkpoint);
# the guard ends it with one line. (A sanitizer build reports HDF5's overread
# itself before any fault, so the case runs in the other builds.)
case ${RLHF_BUILD:-} in *asan*) ;; *)
    for cmd in inspect sample; do
        bad "tests/fixtures/heap_fault.h5: HDF5 faulted reading attribute 'stage'" \
            "$R" $cmd tests/fixtures/heap_fault.h5
    done
    bad "heap_fault.h5: HDF5 faulted" "$R" sft "$T" --checkpoint.init=tests/fixtures/heap_fault.h5 \
        --checkpoint.dir="$D/x" ;;
esac
bad "no value head" "$R" ppo "$T" --checkpoint.init="$S" --ppo.reward_model="$S" --checkpoint.dir="$D/x"
[ -e "$D/x/latest.h5" ] && fail "a failed start left a checkpoint in $D/x"

# --- JSONL: the message names FILE:LINE ----------------------------------------
{ head -n 3 "$D/tasks/sft_train.jsonl"; echo '{"prompt": "x", "response": '; } >"$D/s_json.jsonl"
{ head -n 2 "$D/tasks/sft_train.jsonl"; echo '{"prompt": "x"}'; } >"$D/s_field.jsonl"
{ head -n 2 "$D/tasks/pref_train.jsonl"; echo '{"prompt": "x", "chosen": "y"}'; } >"$D/p_field.jsonl"
{ head -n 4 "$D/tasks/pref_train.jsonl"; echo 'not json'; } >"$D/p_json.jsonl"
{ head -n 1 "$D/tasks/ppo_train.jsonl"; echo '{"answer": "4"}'; } >"$D/q_field.jsonl"
{ head -n 2 "$D/tasks/ppo_train.jsonl"; echo '["prompt"]'; } >"$D/q_array.jsonl"
{ head -n 2 "$D/tasks/ppo_train.jsonl"; echo '{"prompt": 5}'; } >"$D/q_type.jsonl"
: >"$D/none.jsonl"
SI=(--checkpoint.init="$P" --checkpoint.dir="$D/x")
RI=(--checkpoint.init="$S" --checkpoint.dir="$D/x")
bad "$D/s_json.jsonl:4: bad JSON" "$R" sft "$T" "${SI[@]}" --sft.train_file="$D/s_json.jsonl"
bad "$D/s_field.jsonl:3: missing field \"response\"" "$R" sft "$T" "${SI[@]}" --sft.train_file="$D/s_field.jsonl"
bad "$D/s_field.jsonl:3: " "$R" sft "$T" "${SI[@]}" --sft.test_file="$D/s_field.jsonl"
bad "$D/none.jsonl:1: no examples" "$R" sft "$T" "${SI[@]}" --sft.train_file="$D/none.jsonl"
bad "$D/p_field.jsonl:3: missing field \"rejected\"" "$R" reward "$T" "${RI[@]}" --reward.train_file="$D/p_field.jsonl"
bad "$D/p_json.jsonl:5: bad JSON" "$R" reward "$T" "${RI[@]}" --reward.test_file="$D/p_json.jsonl"
bad "$D/q_field.jsonl:2: missing field \"prompt\"" "$R" ppo "$T" "${RI[@]}" --ppo.prompts_file="$D/q_field.jsonl"
bad "$D/q_array.jsonl:3: .*array" "$R" ppo "$T" "${RI[@]}" --ppo.prompts_file="$D/q_array.jsonl"
bad "$D/q_type.jsonl:3: .*number" "$R" ppo "$T" "${RI[@]}" --ppo.test_file="$D/q_type.jsonl"
{ head -n 2 "$D/tasks/pref_train.jsonl"; echo '{"prompt": "x", "chosen": "y", "rejected": "y"}'; } >"$D/p_same.jsonl"
{ head -n 1 "$D/tasks/sft_train.jsonl"; printf '%.0s[' {1..1500}; echo; } >"$D/s_deep.jsonl"
bad "$D/p_same.jsonl:3: \"chosen\" and \"rejected\" are the same text" \
    "$R" reward "$T" "${RI[@]}" --reward.train_file="$D/p_same.jsonl"
bad "$D/s_deep.jsonl:2: JSON nested deeper than 1000 levels \(cJSON's limit\)" \
    "$R" sft "$T" "${SI[@]}" --sft.train_file="$D/s_deep.jsonl"
# a reward model is not a language model to start SFT or PPO from
for stage in sft ppo dpo; do
    bad "checkpoint.init .* is a reward model \(stage 'reward', with a value head\)" \
        "$R" $stage "$T" --checkpoint.init="$D/reward/latest.h5" --checkpoint.dir="$D/x"
done
# a key holding an escaped line break: the message stays one line (found by fuzz/fuzz_jsonl)
printf '{"instruction\\n": "x", "input": "", "output": "y"}\n' >"$D/s_key.jsonl"
bad "$D/s_key.jsonl:1: missing field \"instruction\" \(the object has: instruction\?, input, output\)" \
    "$R" sft "$T" "${SI[@]}" --sft.train_file="$D/s_key.jsonl"
bad "$D/missing.jsonl: cannot open" "$R" reward "$T" "${RI[@]}" --reward.train_file="$D/missing.jsonl"
# the same with --resume in the existing run directories: still nothing touched
bad "$D/s_field.jsonl:3: " "$R" sft "$T" --checkpoint.dir="$D/sft" --resume --sft.train_file="$D/s_field.jsonl"
bad "$D/p_field.jsonl:3: " "$R" reward "$T" --checkpoint.dir="$D/reward" --resume --reward.train_file="$D/p_field.jsonl"
bad "$D/q_field.jsonl:2: " "$R" ppo "$T" --checkpoint.dir="$D/ppo" --checkpoint.init="$S" --resume --ppo.prompts_file="$D/q_field.jsonl"
[ -e "$D/x/latest.h5" ] && fail "a failed start left a checkpoint in $D/x"

# --- run directories ------------------------------------------------------------
for stage in pretrain sft reward ppo; do
    bad "cannot resume.*no such file" "$R" $stage "$T" --checkpoint.init="$S" --checkpoint.dir="$D/none_$stage" --resume
    [ -e "$D/none_$stage/latest.h5" ] && fail "$stage --resume without a run made a checkpoint"
    # a fresh start where a run already is: refused, the old files untouched (snapshot)
    bad "'$D/$stage' already holds a run \(latest.h5\); hint: pass --resume" \
        "$R" $stage "$T" --checkpoint.init="$S" --checkpoint.dir="$D/$stage"
done
# a resume keeps its model's shape and cannot go back in steps (runs are at step 4)
bad "cannot resume: model.n_layer = 2 on the command line, but the run's model in $D/pretrain/latest.h5 has 1" \
    "$R" pretrain "$T" --checkpoint.dir="$D/pretrain" --resume --model.n_layer=2
bad "cannot resume: model.n_embd = 32 on the command line" \
    "$R" sft "$T" --checkpoint.dir="$D/sft" --resume --model.n_embd=32
bad "cannot resume: model.n_head = 4 in the config" \
    "$R" pretrain <(sed 's/^n_head = 2/n_head = 4/' "$T") --checkpoint.dir="$D/pretrain" --resume
bad "cannot resume: the run is at step 4, past train.max_steps = 2" \
    "$R" pretrain "$T" --checkpoint.dir="$D/pretrain" --resume --train.max_steps=2
bad "cannot resume.*holds a 'pretrain' checkpoint, this is 'sft'" \
    "$R" sft "$T" --checkpoint.dir="$D/pretrain" --resume
# a run whose latest.h5 is damaged or dangles: --resume says so, nothing written
mkdir "$D/broken" "$D/dangling"
cp "$D/trunc.h5" "$D/broken/step_000004.h5"
ln -s step_000004.h5 "$D/broken/latest.h5"
ln -s step_000009.h5 "$D/dangling/latest.h5"
bad "cannot resume.*truncated" "$R" pretrain "$T" --checkpoint.dir="$D/broken" --resume
bad "cannot resume.*no such file" "$R" pretrain "$T" --checkpoint.dir="$D/dangling" --resume
cmp -s "$D/trunc.h5" "$D/broken/step_000004.h5" || fail "a failed resume changed the damaged file"
# (its lock file apart: the resume holds the directory while it reads)
[ "$(ls -A "$D/broken")" = "$(printf '.lock\nlatest.h5\nstep_000004.h5')" ] || fail "a failed resume wrote into its directory: $(ls -A "$D/broken")"

# --- commands -------------------------------------------------------------------
bad "unknown command 'bogus'; hint: run 'rlhf help'" "$R" bogus
bad "unknown command" "$R" --resume
bad "usage: rlhf pretrain" "$R" pretrain
bad "usage: rlhf sample" "$R" sample

# --- NaN loss: lr 1e30 makes the second step's loss NaN -------------------------
# (progress lines come first on stderr; the error is the last line and the only one)
cp -a "$D/pretrain" "$D/nan"   # a copy of a finished run, continued to 8 steps
(cd "$D/nan" && sha256sum step_*.h5) >"$D/nan.sums"
for args in "--checkpoint.dir=$D/nanfresh --checkpoint.every=1" \
            "--checkpoint.dir=$D/nan --resume --train.max_steps=8"; do
    # shellcheck disable=SC2086
    "$R" pretrain "$T" --optim.lr=1e30 $args >"$D/out" 2>"$D/err"
    rc=$?
    grep -Eq 'Sanitizer|runtime error' "$D/err" &&
        fail "NaN loss ($args): sanitizer report: $(grep -Em1 'Sanitizer|runtime error' "$D/err")"
    [ $rc -eq 1 ] || fail "NaN loss ($args): exit $rc: $(tail -2 "$D/err")"
    [ "$(grep -c '^rlhf: error: ' "$D/err")" -eq 1 ] && tail -n 1 "$D/err" | grep -q '^rlhf: error: loss is -\?nan at step' ||
        fail "NaN loss ($args): $(tail -2 "$D/err")"
done
# the fresh run kept its finite step 1 and nothing after it
[ "$(readlink "$D/nanfresh/latest.h5")" = step_000001.h5 ] || fail "NaN run: latest.h5 is not step 1"
compgen -G "$D/nanfresh/*.tmp" >/dev/null && fail "NaN run left a .tmp"
run "$R" inspect "$D/nanfresh/latest.h5"
# the continued run kept every checkpoint it had, bit for bit
(cd "$D/nan" && sha256sum -c --quiet "$D/nan.sums") || fail "NaN loss changed an existing checkpoint"
[ "$(readlink "$D/nan/latest.h5")" = step_000004.h5 ] || fail "NaN loss moved latest.h5"

snapshot | cmp -s - "$D/before" || fail "files on disk changed: $(snapshot | diff "$D/before" - | head -4)"
echo "cli_badinput: ok ($n_bad bad inputs refused)"

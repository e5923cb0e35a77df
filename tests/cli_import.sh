#!/usr/bin/env bash
# rlhf import / export against Hugging Face GPT-2 directories written by
# numpy alone (tests/hf_gpt2.py writes safetensors by hand):
#  - a random GPT-2 (2 layers, C=64, V=50257, T=128; hub-style names with
#    attn.bias buffers) imports, and our forward's logits match
#    notebooks/gpt_numpy.py's float64 forward on the Hugging Face tensors
#    within LOGIT_TOL (fp32 against float64);
#  - export(import(hf)): every tensor bit-identical to the original (wte's
#    original rows; the chat rows are the mean rule), config.json as
#    transformers expects, and the numpy forward of the export identical;
#  - import(export(ckpt)): /model bit-identical to the first import;
#  - "transformer."-prefixed names with lm_head.weight, and F16 weights;
#  - hostile files and unsupported configs: exit 1, one line, OUT not created;
#  - OUT and the export's files are replaced only with --force.
# RLHF_SLOW=1 adds the 124M shape (12 layers, C=768, T=1024).
# Needs GPT-2's tokenizer files (installed by `make deps`): skipped without.
cd "$(dirname "$0")/.."
set -u
R=${RLHF_BIN:-build/default/rlhf}
B=${RLHF_BUILD:-build/default}
PY=${PYTHON:-/usr/bin/python3}
H="$PY tests/hf_gpt2.py"
LOGITS=$B/tests/tools/logits
# |C fp32 - numpy float64| over every logit; observed ~1e-5 at these scales
# (logits up to ~10): 1e-4 leaves room for BLAS kernels' summation orders
LOGIT_TOL=${LOGIT_TOL:-1e-4}
D=$(mktemp -d /tmp/rlhf_import.XXXXXX)
trap 'rm -rf "$D"' EXIT
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

fail() { echo "FAIL: $*" >&2; exit 1; }
run() { "$@" >"$D/out" 2>"$D/err" || { cat "$D/err" >&2; fail "exit $? from: $*"; }; }
# refused WANT OUT CMD...: exit 1, one line on stderr matching WANT, OUT absent
refused() {
    local want=$1 out=$2; shift 2
    "$@" >"$D/out" 2>"$D/err"
    local rc=$?
    [ $rc -eq 1 ] || { cat "$D/err" >&2; fail "expected exit 1, got $rc from: $*"; }
    [ "$(wc -l <"$D/err")" -eq 1 ] || { cat "$D/err" >&2; fail "expected one error line: $*"; }
    grep -q -- "$want" "$D/err" || fail "expected '$want', got: $(cat "$D/err")"
    [ -e "$out" ] && fail "$out was created by: $*"
    ls "$(dirname "$out")" | grep -q '\.tmp$' && fail "a .tmp file was left by: $*"
    return 0
}

GPT2=${RLHF_GPT2_DIR:-data/gpt2}
[ -f "$GPT2/encoder.json" ] && [ -f "$GPT2/vocab.bpe" ] ||
    { echo "GPT-2's tokenizer files are not in $GPT2 (make deps installs them)"; exit 77; }
[ -x "$LOGITS" ] || fail "$LOGITS not built (make)"

# --- hub-style names, attn.bias buffers, no lm_head -------------------------------
$H make "$D/hf" --buffers --ids "$D/ids" 128 || fail "writing the HF directory"
run "$R" import "$D/hf" "$D/a.h5"
grep -q 'vocab 50260 (chat tokens: mean embedding)' "$D/out" || fail "import summary: $(cat "$D/out")"
run "$R" inspect "$D/a.h5"
grep -q 'stage import' "$D/out" || fail "inspect: stage import"
grep -q '^tokenizer  gpt2, 50260 tokens' "$D/out" || fail "inspect: gpt2 tokenizer"
# the lineage ends at the imported file (its sha256 re-checked), not "from scratch"
grep -q "^  <- imported from $D/hf/model.safetensors  sha256 matches$" "$D/out" ||
    fail "inspect: the import's source: $(sed -n '/^lineage/,/^config/p' "$D/out")"
grep -q 'no parent recorded' "$D/out" && fail "inspect: an import is not 'started from scratch'"
grep -q "^  import          weights $D/hf/model.safetensors sha256:$(sha256sum "$D/hf/model.safetensors" | cut -d' ' -f1)$" "$D/out" ||
    fail "inspect: /state/import/weights: $(sed -n '/^state/,$p' "$D/out")"
grep -q "^                  tokenizer $(realpath "$GPT2")/encoder.json$" "$D/out" || fail "inspect: /state/import/tokenizer"
"$PY" -c 'import h5py, sys; t = h5py.File(sys.argv[1], "r")["tokenizer"].attrs["type"]
sys.exit((t.decode() if isinstance(t, bytes) else t) != "gpt2")' "$D/a.h5" || fail "/tokenizer type is not gpt2"
"$LOGITS" "$D/a.h5" "$D/ids" "$D/a.logits" || fail "forward of the import"
$H logits "$D/hf" "$D/ids" "$D/a.logits" "$LOGIT_TOL" || fail "import logits"

# --- export, and back -------------------------------------------------------------
run "$R" export "$D/a.h5" "$D/ex"
$H export "$D/hf" "$D/ex" || fail "export differs"
run "$R" import "$D/ex" "$D/b.h5"
$H same-model "$D/a.h5" "$D/b.h5" || fail "import(export(ckpt))"
# sampling from an import works (the tokenizer came along)
run "$R" sample "$D/a.h5" --prompt "Hello" --max_new_tokens 4 --seed 1

# --- prefixed names with a tied lm_head.weight; F16 weights --------------------------
$H make "$D/hfp" --prefix --lm-head --seed 2 --layers 1 --embd 32 --heads 2 --ctx 64 ||
    fail "writing the prefixed directory"
run "$R" import "$D/hfp" "$D/p.h5"
run "$R" export "$D/p.h5" "$D/exp"
$H export "$D/hfp" "$D/exp" || fail "prefixed export differs"
$H make "$D/hf16" --dtype f16 --seed 3 --layers 1 --embd 32 --heads 2 --ctx 64 || fail "f16"
run "$R" import "$D/hf16" "$D/h.h5"
run "$R" export "$D/h.h5" "$D/ex16"
# F16 -> float32 is exact, so the export equals the F16 values bit for bit
$H export "$D/hf16" "$D/ex16" || fail "f16 export differs"

# --- refusals: nothing written ------------------------------------------------------
$H make "$D/small" --seed 4 --layers 1 --embd 32 --heads 2 --ctx 64 --prefix || fail "small"
cases=(
         "header_past_end:runs past the end of the file" "huge_header:exceeds" \
         "not_json:not a JSON object" "truncated:past the end of the data" \
         "out_of_range:past the end of the data" "overlap:overlaps" \
         "size_mismatch:needs" "wrong_dtype:dtype I32" "unknown_dtype:unknown dtype" \
         "missing_tensor:no tensor 'ln_f.bias'" "wrong_shape:has shape \[96, 32\]" \
         "extra_tensor:not part of a GPT-2" "untied_head:lm_head.weight differs" \
         "duplicate:both with and without" "config_eps:layer_norm_epsilon" \
         "config_act:activation_function relu" "config_inner:n_inner 100" \
         "config_vocab:vocab_size 1000" "config_type:model_type is llama" \
         "config_untied:tie_word_embeddings" "config_heads:not a multiple of n_head" \
         "config_missing:cannot open" "config_garbage:not a JSON object" \
         "no_weights:cannot open" "nan:tensor h.0.mlp.c_fc.bias holds NaN" \
         "config_huge:far fewer than the")
$H hostile "$D/small" "$D/bad" "${cases[@]%%:*}" || fail "making the hostile cases"
for c in "${cases[@]}"; do
    refused "${c#*:}" "$D/bad.h5" "$R" import "$D/bad_${c%%:*}" "$D/bad.h5"
done

# --- overwriting: only with --force ---------------------------------------------------
refused "already exists" "$D/none.h5" "$R" import "$D/small" "$D/p.h5"
cp "$D/p.h5" "$D/p_before.h5"
refused "already exists" "$D/none.h5" "$R" import "$D/small" "$D/p.h5"
cmp -s "$D/p.h5" "$D/p_before.h5" || fail "a refused import changed OUT"
run "$R" import "$D/small" "$D/p.h5" --force
cmp -s "$D/p.h5" "$D/p_before.h5" && fail "--force did not replace OUT"
refused "already exists" "$D/ex/none" "$R" export "$D/a.h5" "$D/ex"
run "$R" export "$D/b.h5" "$D/ex" --force
refused "is the input" "$D/none.h5" "$R" import "$D/small" "$D/small/model.safetensors" --force
# an OUT that appears while the import runs is kept: config.json is a FIFO, so
# the import waits on it after checking OUT, and OUT is made right then
mkdir "$D/slow"
cp "$D/small/model.safetensors" "$D/slow/"
mkfifo "$D/slow/config.json"
"$R" import "$D/slow" "$D/late.h5" >"$D/out" 2>"$D/err" &
pid=$!
# opening the FIFO returns once the import has opened it for reading
timeout 60 bash -c 'exec 3>"$1"; echo "written meanwhile" >"$2"; cat "$3" >&3' _ \
    "$D/slow/config.json" "$D/late.h5" "$D/small/config.json" ||
    { kill $pid 2>/dev/null; fail "the import never read its config.json: $(cat "$D/err")"; }
wait $pid
rc=$?
[ $rc -eq 1 ] || { cat "$D/err" >&2; fail "an OUT that appeared meanwhile: exit $rc, expected 1"; }
grep -q 'late.h5: appeared while it was being written, and is kept' "$D/err" ||
    fail "an OUT that appeared meanwhile: $(cat "$D/err")"
[ "$(cat "$D/late.h5")" = "written meanwhile" ] || fail "the import replaced an OUT that appeared meanwhile"
ls "$D" | grep -q '\.tmp$' && fail "a .tmp file was left by the import that found OUT taken"

# --- a run started from an import: inspect follows its lineage to the source file ------
cat >"$D/pre.ini" <<INI
[model]
n_layer = 1
n_head = 2
n_embd = 32
block_size = 64
[data]
corpus = $D/corpus.txt
dir = $D/data
tokenizer = gpt2
[train]
batch_size = 1
max_steps = 1
eval_steps = 1
threads = 1
[checkpoint]
dir = $D/pre
init = $D/p.h5
INI
cat /usr/share/common-licenses/Apache-2.0 /usr/share/common-licenses/GPL-3 >"$D/corpus.txt"
run "$R" prepare "$D/pre.ini"
run "$R" pretrain "$D/pre.ini"
run "$R" inspect "$D/pre/latest.h5"
sed -n '/^lineage/,/^config/p' "$D/out" >"$D/lineage"
grep -q "^  <- import    step 0       $D/p.h5  sha256 matches$" "$D/lineage" &&
    grep -q "^  <- imported from $D/small/model.safetensors  sha256 matches$" "$D/lineage" ||
    fail "inspect: lineage of a run from an import: $(cat "$D/lineage")"
grep -q '^  world_size      1 process' "$D/out" || fail "inspect: /state/world_size"
printf 'x' >>"$D/small/model.safetensors"
run "$R" inspect "$D/pre/latest.h5"
grep -q "^  <- imported from $D/small/model.safetensors  sha256 DIFFERS" "$D/out" ||
    fail "inspect: a changed import source: $(sed -n '/^lineage/,/^config/p' "$D/out")"
rm "$D/small/model.safetensors"
run "$R" inspect "$D/p.h5"
grep -q "^  <- imported from $D/small/model.safetensors  (missing now)$" "$D/out" ||
    fail "inspect: a missing import source: $(sed -n '/^lineage/,/^config/p' "$D/out")"

# --- the 124M shape, when asked for ------------------------------------------------------
if [ "${RLHF_SLOW:-0}" = 1 ]; then
    rm -rf "$D/hf" "$D/ex" "$D/a.h5" "$D/b.h5"
    t0=$SECONDS
    $H make "$D/big" --layers 12 --embd 768 --heads 12 --ctx 1024 --buffers --ids "$D/bids" 64 ||
        fail "writing the 124M directory"
    t1=$SECONDS
    run "$R" import "$D/big" "$D/big.h5"
    t2=$SECONDS
    "$LOGITS" "$D/big.h5" "$D/bids" "$D/big.logits" || fail "forward of the 124M import"
    $H logits "$D/big" "$D/bids" "$D/big.logits" "$LOGIT_TOL" || fail "124M import logits"
    t3=$SECONDS
    run "$R" export "$D/big.h5" "$D/bigex"
    $H export "$D/big" "$D/bigex" || fail "124M export differs"
    run "$R" import "$D/bigex" "$D/big2.h5"
    $H same-model "$D/big.h5" "$D/big2.h5" || fail "124M import(export(ckpt))"
    echo "124M: make $((t1 - t0))s, import $((t2 - t1))s, logits check $((t3 - t2))s, round trip $((SECONDS - t3))s"
fi
echo "ok"

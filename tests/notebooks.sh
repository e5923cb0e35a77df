#!/usr/bin/env bash
# The notebooks run headless end to end: each is executed with Debian's
# nbconvert under /usr/bin/python3 against a tiny pipeline (a failing cell
# fails the test), notebook 01 twice (char and BPE tokenizer), and the
# numpy checks inside them must have run. Also: committed notebooks carry
# no outputs.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-/usr/bin/python3}
RLHF_BIN=$(realpath "${RLHF_BIN:-build/default/rlhf}")
export RLHF_BIN
D=$(mktemp -d /tmp/rlhf_nb.XXXXXX)
trap 'rm -rf "$D"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# --- committed notebooks: no outputs, no execution counts ---------------------
"$PY" - notebooks/*.ipynb <<'PYEOF' || fail "strip the outputs of the notebooks before committing"
import json, sys
bad = []
for path in sys.argv[1:]:
    for i, cell in enumerate(json.load(open(path))["cells"]):
        if cell["cell_type"] == "code" and (cell.get("outputs") or cell.get("execution_count") is not None):
            bad.append("%s cell %d" % (path, i))
print("\n".join(bad))
sys.exit(1 if bad else 0)
PYEOF

"$PY" -c "import nbconvert, ipykernel, matplotlib, h5py, numpy" 2>/dev/null ||
    fail "notebook packages missing; hint: make deps (Debian: jupyter-nbconvert python3-ipykernel python3-matplotlib python3-h5py python3-numpy)"

tools/tiny_pipeline.sh "$D/run" || fail "tiny pipeline"
export RLHF_CKPT_DIR=$D/run OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
export PYDEVD_DISABLE_FILE_VALIDATION=1  # quiets the kernel's debugger note

# --- rlhf sample --logits: two sections of V values; bad use is one line + hint
CK=$D/run/sft/latest.h5
"$RLHF_BIN" sample "$CK" --prompt "abc" --logits "$D/logits.txt" >"$D/out.txt" 2>&1 ||
    fail "sample --logits: $(cat "$D/out.txt")"
[ ! -s "$D/out.txt" ] || fail "sample --logits printed text (it must not sample)"
V=$("$PY" -c "import h5py, sys; print(h5py.File(sys.argv[1], 'r')['model'].attrs['vocab_size'])" "$CK")
[ "$(grep -vc '^#' "$D/logits.txt")" -eq $((2 * V)) ] || fail "logits file: expected 2 x $V values"
[ "$(grep -c '^# \(full forward\|kv cache\)' "$D/logits.txt")" -eq 2 ] || fail "logits file sections"
for bad in "--logits" "--logits=" "--logits $D/no/such/dir/x.txt"; do
    # shellcheck disable=SC2086  # split on purpose
    "$RLHF_BIN" sample "$CK" $bad >"$D/out.txt" 2>"$D/err.txt" && fail "sample $bad succeeded"
    [ "$(wc -l <"$D/err.txt")" -eq 1 ] && grep -q hint "$D/err.txt" ||
        fail "sample $bad: expected one line with a hint, got: $(cat "$D/err.txt")"
done
[ ! -e "$D/no" ] || fail "a failed --logits left files"

# execute NOTEBOOK OUTNAME: runs it into $D/out/OUTNAME.ipynb; fails on any error
execute() {
    "$PY" -m nbconvert --to notebook --execute --ExecutePreprocessor.timeout=120 \
        --ExecutePreprocessor.kernel_name=python3 --output-dir "$D/out" --output "$2" \
        "notebooks/$1.ipynb" >"$D/$2.log" 2>&1 || { tail -n 30 "$D/$2.log" >&2; fail "notebook $1 ($2)"; }
}
# has OUTNAME TEXT: the executed notebook's outputs contain TEXT
has() { grep -q -- "$2" "$D/out/$1.ipynb" || fail "$1: no '$2' in the outputs"; }

execute 01_checkpoint 01_char
has 01_char "AGREE: numpy forward matches rlhf"
has 01_char "sha256 matches"
RLHF_CKPT=$D/run/bpe_pretrain/latest.h5 RLHF_PROMPT="reverse:  ab  12 345 HELLO!! world..." \
    execute 01_checkpoint 01_bpe
has 01_bpe "type bpe"
has 01_bpe "AGREE: numpy forward matches rlhf"
execute 02_pretraining 02
has 02 "val_loss  last"
[ "$(grep -c '"image/png"' "$D/out/02.ipynb")" -ge 3 ] || fail "02: expected 3 figures"
execute 03_rlhf 03
has 03 "4 rollout batches, 4 rows each"
has 03 "REF_LOGP AGREE"
has 03 "SFT greedy"
has 03 "PAIRS: [0-9]* of "
echo "notebooks: 4 executions ok"

#!/usr/bin/env bash
# make notebooks: executes notebooks/*.ipynb and writes them with their
# outputs (and an HTML copy) into notebooks/out/. Reads $RLHF_CKPT_DIR, else
# checkpoints/demo/ (make demo), else a tiny pipeline built in notebooks/out/tiny.
# The notebooks in notebooks/ stay without outputs.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-/usr/bin/python3}
RLHF_BIN=$(realpath "${RLHF_BIN:-build/default/rlhf}")
export RLHF_BIN
export PYDEVD_DISABLE_FILE_VALIDATION=1  # quiets the kernel's debugger note
OUT=notebooks/out
mkdir -p "$OUT"
"$PY" -c "import nbconvert, ipykernel, matplotlib, h5py, numpy" 2>/dev/null || {
    echo "render: notebook packages missing; hint: make deps (Debian: jupyter-nbconvert" \
        "python3-ipykernel python3-matplotlib python3-h5py python3-numpy)" >&2
    exit 1
}
if [ -n "${RLHF_CKPT_DIR:-}" ]; then
    RLHF_CKPT_DIR=$(realpath "$RLHF_CKPT_DIR")
elif [ -d checkpoints/demo ]; then
    RLHF_CKPT_DIR=$PWD/checkpoints/demo
else
    echo "render: no checkpoints/demo (make demo builds it); using a tiny pipeline in $OUT/tiny"
    rm -rf "$OUT/tiny"
    tools/tiny_pipeline.sh "$OUT/tiny" 40
    RLHF_CKPT_DIR=$PWD/$OUT/tiny
fi
export RLHF_CKPT_DIR
echo "render: checkpoints from $RLHF_CKPT_DIR"
for nb in notebooks/*.ipynb; do
    name=$(basename "$nb" .ipynb)
    t0=$SECONDS
    "$PY" -m nbconvert --to notebook --execute --ExecutePreprocessor.timeout=1200 \
        --ExecutePreprocessor.kernel_name=python3 --output-dir "$OUT" "$nb" \
        >"$OUT/$name.log" 2>&1 || { tail -n 30 "$OUT/$name.log" >&2; echo "render: $nb failed" >&2; exit 1; }
    "$PY" -m nbconvert --to html --output-dir "$OUT" "$OUT/$name.ipynb" >>"$OUT/$name.log" 2>&1 ||
        echo "render: no HTML for $name (see $OUT/$name.log)" >&2
    echo "render: $OUT/$name.ipynb ($((SECONDS - t0)) s)"
done

#!/usr/bin/env bash
# make bench-gpt2: training steps of the GPT-2 124M shape (V=50257, L=12,
# H=12, C=768, block_size 1024; random weights, random tokens) at B=4 and
# T=256, then T=1024, in fp32 and bf16 (where this CPU has a bf16 matmul;
# bf16 with the tied LM head in fp32, the default, and in bf16):
# ms/step (median and min), tokens/s, MFU and the peak resident memory of
# each, one process per shape and precision so that each peak is its own.
# Minutes per step on 2 cores: STEPS (default 3) after WARMUP (default 1),
# for each T in TS (default "256 1024").
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BENCH_BIN:-build/fast/bench/bench_train}
STEPS=${STEPS:-3}
WARMUP=${WARMUP:-1}
TS=${TS:-256 1024}
mkdir -p bench/out
out=bench/out/gpt2-$(date +%Y%m%d-%H%M%S).txt
{
    echo "# $(date -Is) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
    echo "# OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset} load: $(cut -d' ' -f1-3 /proc/loadavg)"
    for T in $TS; do
        # bf16 twice: the LM head in fp32 (train.fp32_lm_head, the default)
        # and in bf16, a third of this shape's products
        for p in fp32:fp32 bf16:fp32 bf16:bf16; do
            prec=${p%:*} head=${p#*:}
            echo; echo "## GPT-2 124M, B=4 T=$T, $prec (LM head $head): $STEPS steps after $WARMUP warm-up"
            "$B" --config gpt2 --precision "$prec" --lm_head "$head" --T "$T" --B 4 \
                --steps "$STEPS" --warmup "$WARMUP" --decode 0
        done
    done
} | tee "$out"
echo "saved $out"

#!/usr/bin/env bash
# make bench: the CPU's peaks (fp32 FMA, bf16), sgemm and bf16 matmul rates,
# then training-step throughput and MFU for the tiny and small shapes in
# fp32 and bf16 (bf16 where this CPU has a bf16 matmul). The GPT-2 124M
# shape takes minutes: make bench-gpt2 (bench/gpt2.sh).
# Runs 1-4 are under the machine's OpenBLAS settings, as tests and CI use
# (run 4 with a busy-looping process beside it, as on a machine in use);
# run 5 unsets OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE for that command alone, so
# that the kernels are OpenBLAS's pick, or rlhf's when that pick is weaker
# than the CPU. Each run measures its own peaks: compare within a run.
set -euo pipefail
cd "$(dirname "$0")/.."
B=build/fast/bench/bench_train
mkdir -p bench/out
out=bench/out/bench-$(date +%Y%m%d-%H%M%S).txt
{
    echo "# $(date -Is) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
    echo "# OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset} OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE:-unset}"
    echo; echo "## 1. default: all cores, libgomp's default wait policy"
    "$B" --steps 20
    echo; echo "## 2. OMP_WAIT_POLICY=passive (threads sleep at once between parallel regions)"
    OMP_WAIT_POLICY=passive "$B" --steps 20
    echo; echo "## 3. one thread"
    OMP_NUM_THREADS=1 "$B" --steps 10
    echo; echo "## 4. a competing process keeps one core busy: default wait policy, then passive"
    sh -c 'while :; do :; done' & hog=$!
    "$B" --steps 10 || true
    OMP_WAIT_POLICY=passive "$B" --steps 10 || true
    kill $hog; wait $hog 2>/dev/null || true
    echo; echo "## 5. OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (kernels chosen for the CPU)"
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$B" --steps 20
} | tee "$out"
echo "saved $out"

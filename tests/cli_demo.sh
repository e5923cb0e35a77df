#!/usr/bin/env bash
# make demo's choices, through DEMO_DRY_RUN=1 (tools/demo.sh prints its
# precision and every stage's command, runs none, touches nothing): unset,
# DEMO_PRECISION follows `rlhf env`'s bf16 matmul (bf16 only where oneDNN
# names a native bf16 or AMX kernel; ONEDNN_MAX_CPU_ISA makes the real
# binary answer as older CPUs would, a stub stands for an AMX CPU); a
# user's fp32 or bf16 is kept, bf16 where oneDNN has no bf16 matmul and
# anything else refused in one line with nothing moved; every stage
# carries the precision taken.
set -u
cd "$(dirname "$0")/.."
R=${RLHF_BIN:-build/default/rlhf}
case $R in /*) ;; *) R=$PWD/$R ;; esac
D=$(mktemp -d /tmp/rlhf_demo.XXXXXX)
trap 'rm -rf "$D"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

mkdir -p "$D/runs/pretrain"
echo keep >"$D/runs/pretrain/latest.h5"
# (under a timeout: a demo.sh that ran its stages after all would take half
# an hour, not the second a dry run takes)
dry() {  # env assignments...: the dry run's output in $D/out, its status returned
    timeout 60 env "$@" DEMO_DRY_RUN=1 DEMO_DIR="$D/runs" ./tools/demo.sh >"$D/out" 2>&1
}
taken() { sed -n '1s/^demo: every stage in \([a-z0-9]*\) (bf16 matmul on this CPU: .*)$/\1/p' "$D/out"; }
untouched() {
    [ "$(cat "$D/runs/pretrain/latest.h5" 2>/dev/null)" = keep ] && [ ! -e "$D/runs.old" ] &&
        [ ! -e "$D/runs/demo.log" ] || fail "$1: DEMO_DIR touched: $(ls -R "$D")"
}
check() {  # what: want, then env assignments
    local what=$1 want=$2; shift 2
    dry "$@" || fail "$what: dry run failed: $(cat "$D/out")"
    [ "$(taken)" = "$want" ] || fail "$what: wanted $want: $(head -1 "$D/out")"
    local n
    n=$(grep -c '^== ' "$D/out")
    [ "$n" -eq 16 ] || fail "$what: $n stages, wanted 16: $(cat "$D/out")"
    [ "$(grep -c -- "^== .* --train.precision=$want\$" "$D/out")" -eq 16 ] ||
        fail "$what: a stage without --train.precision=$want: $(cat "$D/out")"
    untouched "$what"
}

# 1. the real binary on this CPU: bf16 exactly where its kernel is native
native=$("$R" env | sed -n 's/^matmul: .*; bf16 \(.*\); train\.precision .*/\1/p')
[ -n "$native" ] || fail "no matmul line in rlhf env: $("$R" env)"
case $native in oneDNN*bf16* | oneDNN*amx*) want=bf16 ;; *) want=fp32 ;; esac
check "this CPU ($native)" $want RLHF_BIN="$R"

# 2. as a CPU without AVX-512 would answer (no bf16 matmul), and as one with
# AVX-512 but not AVX512_BF16 (oneDNN's converting gemm): fp32 both
check "AVX2 only" fp32 RLHF_BIN="$R" ONEDNN_MAX_CPU_ISA=AVX2
grep -q 'bf16 matmul on this CPU: unavailable' "$D/out" || fail "AVX2: $(head -1 "$D/out")"
check "AVX-512 without bf16" fp32 RLHF_BIN="$R" ONEDNN_MAX_CPU_ISA=AVX512_CORE

# 3. an AMX CPU, through a stub answering `env` as one would
cat >"$D/stub" <<'SH'
#!/bin/sh
[ "$1" = env ] || { echo "stub: only env" >&2; exit 1; }
echo "matmul: fp32 OpenBLAS sgemm (core SapphireRapids); bf16 oneDNN 2.6.3 matmul brg:avx512_core_amx; train.precision fp32"
SH
chmod +x "$D/stub"
check "AMX" bf16 RLHF_BIN="$D/stub"
# the stub's path is in every command: the demo runs what RLHF_BIN names
grep -q "^== pretrain: $D/stub pretrain " "$D/out" || fail "RLHF_BIN not used: $(cat "$D/out")"

# 4. the user's choice is kept either way
check "DEMO_PRECISION=fp32 on AMX" fp32 RLHF_BIN="$D/stub" DEMO_PRECISION=fp32
# (bf16 asked for where oneDNN's bf16 matmul is only its converting one:
# slow, but it runs; on a CPU without AVX-512 it is refused below)
if ONEDNN_MAX_CPU_ISA=AVX512_CORE "$R" env | grep -q '^matmul: .*; bf16 oneDNN'; then
    check "DEMO_PRECISION=bf16, AVX-512 without bf16" bf16 RLHF_BIN="$R" \
        ONEDNN_MAX_CPU_ISA=AVX512_CORE DEMO_PRECISION=bf16
fi

# 5. bad values: one line, non-zero, nothing moved, even without a dry run
# (bf16 where oneDNN has no bf16 matmul would fail at the first stage)
refused() {  # what, the line's start, env assignments...
    local what=$1 line=$2; shift 2
    if timeout 60 env "$@" DEMO_DIR="$D/runs" ./tools/demo.sh >"$D/out" 2>&1; then
        fail "$what accepted: $(cat "$D/out")"
    fi
    [ "$(wc -l <"$D/out")" -eq 1 ] && grep -q "^$line.*; hint: " "$D/out" || fail "$what: $(cat "$D/out")"
    untouched "$what"
}
refused "bf16 on AVX2" "demo: DEMO_PRECISION=bf16 cannot run here (bf16 matmul unavailable" \
    RLHF_BIN="$R" ONEDNN_MAX_CPU_ISA=AVX2 DEMO_PRECISION=bf16

for bad in fp16 BF16 " "; do
    refused "DEMO_PRECISION='$bad'" "demo: DEMO_PRECISION=$bad is not a precision" RLHF_BIN="$R" \
        DEMO_PRECISION="$bad"
done
echo "demo choices: this CPU $want ($native); AVX2, AVX-512 without bf16: fp32; AMX: bf16; bad values refused"

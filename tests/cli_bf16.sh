#!/usr/bin/env bash
# bf16 mixed precision through the command line (train.precision = bf16):
# two runs give the same bits (one thread and two), a bf16 run differs from
# the fp32 one (the setting takes effect), every training stage resumes
# exactly in bf16, sampling and eval run in bf16, and the run header names
# the precision and the matmul backend. Skipped (exit 77) where this CPU has
# no bf16 matmul; then train.precision = bf16 must be refused in one line.
cd "$(dirname "$0")/.."
source tests/cli_pipeline.bash
if ! "$R" env | grep -q '^matmul: .* bf16 oneDNN'; then
    run_fails "$R" pretrain /dev/null --train.precision=bf16
    grep -q 'bf16' "$D/err" || fail "refusal does not name bf16: $(cat "$D/err")"
    echo "no bf16 matmul on this CPU: $("$R" env | grep '^matmul')"
    exit 77
fi
pipeline_build
BF=(--train.precision=bf16)

# the run header: machine, BLAS core, backend and precision
run "$R" pretrain "$CFG" "${BF[@]}" --train.max_steps=3 --checkpoint.dir="$D/a"
grep -q '^# cpu: .*features: ' "$D/out" || fail "no cpu line in the header"
grep -q '^# blas: OpenBLAS .* core ' "$D/out" || fail "no blas line in the header"
grep -q '^# matmul: .*bf16 oneDNN .*train.precision bf16$' "$D/out" || fail "no matmul line"
run "$R" pretrain "$CFG" "${BF[@]}" --train.max_steps=3 --checkpoint.dir="$D/b"
same_ckpt "$D/a/latest.h5" "$D/b/latest.h5" || fail "two bf16 runs differ"
# two threads, twice
T2=(--train.threads=2)
OMP_NUM_THREADS=2 run "$R" pretrain "$CFG" "${BF[@]}" "${T2[@]}" --train.max_steps=3 --checkpoint.dir="$D/c"
OMP_NUM_THREADS=2 run "$R" pretrain "$CFG" "${BF[@]}" "${T2[@]}" --train.max_steps=3 --checkpoint.dir="$D/d"
same_ckpt "$D/c/latest.h5" "$D/d/latest.h5" || fail "two bf16 runs on two threads differ"
# fp32 is another run
run "$R" pretrain "$CFG" --train.max_steps=3 --checkpoint.dir="$D/f"
"$PY" - "$D/a/latest.h5" "$D/f/latest.h5" <<'PY' || fail "bf16 and fp32 runs are the same: precision not applied"
import h5py, sys, numpy as np
a, b = (h5py.File(p, "r")["model/transformer.h.0.mlp.c_fc.weight"][...] for p in sys.argv[1:3])
sys.exit(0 if not np.array_equal(a, b) and np.abs(a - b).max() < 0.05 else 1)
PY

# exact resume of every stage in bf16
head -n 6 "$D/tasks/sft_train.jsonl" >"$D/sft6.jsonl"
head -n 6 "$D/tasks/pref_train.jsonl" >"$D/pref6.jsonl"
head -n 6 "$D/tasks/ppo_train.jsonl" >"$D/ppo6.jsonl"
resume_case pretrain pretrain 5 2 "${BF[@]}"
resume_case sft sft 5 2 "${BF[@]}" --checkpoint.init="$D/pretrain/latest.h5" --sft.train_file="$D/sft6.jsonl"
resume_case reward reward 5 2 "${BF[@]}" --checkpoint.init="$D/sft/latest.h5" --reward.train_file="$D/pref6.jsonl"
resume_case ppo ppo 5 2 "${BF[@]}" --checkpoint.init="$D/sft/latest.h5" --ppo.prompts_file="$D/ppo6.jsonl"

# sampling and eval in bf16
run "$R" sample "$D/sft/latest.h5" --max_new_tokens 8 --seed 1 --train.precision=bf16
[ -s "$D/out" ] || fail "bf16 sample printed nothing"
run "$R" eval "$D/sft/latest.h5" "$CFG" "${BF[@]}"
echo "cli_bf16: ok"

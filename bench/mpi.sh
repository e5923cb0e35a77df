#!/usr/bin/env bash
# bench/mpi.sh [ROUNDS]: data-parallel processes against threads on this
# machine. Pretraining on the fortunes corpus (char tokenizer) in the tiny
# and small shapes of bench_train (L, H, C, T, B: 4 4 128 64 12 and
# 6 6 384 256 16), each as 1 process x 1 thread, 1 process x 2 threads and
# 2 ranks x 1 thread (mpirun), the same global batch. Modes alternate
# within each round (ROUNDS, default 2) so that a machine's changing load
# hits them alike; tokens/s over the steps after the first (metrics.csv
# time_s), the median over rounds. Also the gradient bytes each rank sent
# per step (the run's "# mpi:" line).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-2}
R=$(realpath "${RLHF_BIN:-build/default/rlhf}")
PY=${PYTHON:-/usr/bin/python3}
W=$(mktemp -d /tmp/rlhf_mpi_bench.XXXXXX)
trap 'rm -rf "$W"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPI=(mpirun -np 2 --oversubscribe --bind-to none --mca btl self,vader
     --mca btl_vader_single_copy_mechanism none)
CFG=configs/tiny/pretrain.ini
"$R" prepare "$CFG" --data.dir="$W/data" >"$W/prepare.log" 2>&1 || { cat "$W/prepare.log"; exit 1; }

echo "# $(date -Is) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
# shape: name L H C T B steps
SHAPES=("tiny 4 4 128 64 12 30" "small 6 6 384 256 16 5")
for s in "${SHAPES[@]}"; do
    read -r name L H C T B steps <<<"$s"
    args=("$CFG" --data.dir="$W/data" --model.n_layer="$L" --model.n_head="$H" --model.n_embd="$C"
          --model.block_size="$T" --train.batch_size="$B" --train.max_steps="$steps"
          --train.log_interval=1 --train.eval_interval=0 --train.eval_steps=1
          --checkpoint.every=0)
    for round in $(seq "$ROUNDS"); do
        for mode in 1x1 1x2 2x1; do
            dir=$W/$name.$mode.$round
            case $mode in
                1x1) "$R" pretrain "${args[@]}" --train.threads=1 --checkpoint.dir="$dir" ;;
                1x2) "$R" pretrain "${args[@]}" --train.threads=2 --checkpoint.dir="$dir" ;;
                2x1) "${MPI[@]}" "$R" pretrain "${args[@]}" --train.threads=1 --checkpoint.dir="$dir" ;;
            esac >"$dir.log" 2>&1 || { tail -5 "$dir.log"; exit 1; }
        done
    done
    "$PY" - "$W" "$name" "$ROUNDS" "$B" "$T" <<'EOF'
import csv, re, statistics, sys
w, name, rounds, B, T = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
rates = {}
for mode in ("1x1", "1x2", "2x1"):
    rs = []
    for r in range(1, rounds + 1):
        rows = list(csv.DictReader(open(f"{w}/{name}.{mode}.{r}/metrics.csv")))
        t = [float(x["time_s"]) for x in rows]
        rs.append(B * T * (len(t) - 1) / (t[-1] - t[0]))
    rates[mode] = statistics.median(rs)
log = open(f"{w}/{name}.2x1.1.log").read()
m = re.search(r"# mpi: 2 ranks; float sums .* sent ([0-9.]+) MB per rank per step", log)
params = re.search(r"([0-9.]+)M parameters", log).group(1)
print(f"{name:6s} ({params}M params, {B * T} tokens/step): tokens/s 1x1 {rates['1x1']:8.0f} | "
      f"1x2 {rates['1x2']:8.0f} ({rates['1x2'] / rates['1x1']:.2f}x) | 2 ranks x1 "
      f"{rates['2x1']:8.0f} ({rates['2x1'] / rates['1x1']:.2f}x) | sent {m.group(1)} MB/rank/step")
EOF
done
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

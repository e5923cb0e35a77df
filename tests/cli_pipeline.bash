# Sourced by tests/cli_*.sh (not a test itself): builds a whole tiny
# pipeline in a fresh temp dir with tools/tiny_pipeline.sh, in a few
# seconds: task data, a char tokenizer and shards made from the task text,
# then pretrain -> sft -> reward -> ppo, each 4 steps of a 1-layer model on
# one thread (so numbers are reproducible). Sets D (the dir, removed on
# exit), CFG (the INI every stage and `rlhf eval` read) and R (the binary).
# Also the comparisons of exact-resume tests: same_ckpt, same_csv and
# resume_case (N steps in one go against k steps and a --resume).
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
    TINY_LAYERS=1 TINY_DUMP=0 TINY_BPE=0 RLHF_BIN=$R tools/tiny_pipeline.sh "$D" 4 ||
        fail "tiny pipeline (logs in $D)"
    CFG=$D/tiny.ini
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

# same_ckpt A B: every dataset and attribute equal, bit for bit; on failure
# names each differing dataset with its largest difference
same_ckpt() {
    "$PY" - "$1" "$2" <<'EOF'
import h5py, json, sys
import numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:3])
timing = {"metrics/time_s", "metrics/tokens_per_s", "metrics/generate_s"}
bad = []

def names(f):
    out = {}
    f.visititems(lambda n, o: out.__setitem__(n, o))
    return out

na, nb = names(a), names(b)
for n in sorted(set(na) ^ set(nb)):
    bad.append(f"{n}: only in {'first' if n in na else 'second'}")
for n in sorted(set(na) & set(nb)):
    x, y = na[n], nb[n]
    if isinstance(x, h5py.Dataset):
        if n in timing:
            continue
        u, v = x[()], y[()]
        if u.shape != v.shape or u.dtype != v.dtype:
            bad.append(f"{n}: {u.shape} {u.dtype} vs {v.shape} {v.dtype}")
        elif not np.array_equal(u, v, equal_nan=u.dtype.kind == "f"):
            d = np.abs(u.astype(np.float64) - v.astype(np.float64))
            bad.append(f"{n}: {int((u != v).sum())} of {u.size} values differ, max |diff| "
                       f"{np.nanmax(d):.3g}")
    for k in set(x.attrs) | set(y.attrs):
        if k not in x.attrs or k not in y.attrs or not np.array_equal(x.attrs[k], y.attrs[k]):
            bad.append(f"{n} attr {k}: {x.attrs.get(k)} vs {y.attrs.get(k)}")
# root: the stored config differs only in checkpoint.dir
ca, cb = (json.loads(f.attrs["config"]) for f in (a, b))
ca["checkpoint"].pop("dir"); cb["checkpoint"].pop("dir")
if ca != cb:
    bad.append("config differs beyond checkpoint.dir")
for k in ("stage", "step", "parent", "format", "format_version"):
    if a.attrs[k] != b.attrs[k]:
        bad.append(f"root attr {k}: {a.attrs[k]} vs {b.attrs[k]}")
for line in bad:
    print("  " + line)
sys.exit(1 if bad else 0)
EOF
}

# same_csv A B: the metrics CSVs agree in every column but wall-clock ones
same_csv() {
    "$PY" - "$1" "$2" <<'EOF'
import csv, sys
timing = {"time_s", "tokens_per_s", "generate_s"}
a, b = ([{k: v for k, v in r.items() if k not in timing} for r in csv.DictReader(open(p))]
        for p in sys.argv[1:3])
sys.exit(0 if a == b else 1)
EOF
}

# resume_case NAME STAGE N K [overrides...]: STAGE N steps in $D/NAME.full
# (a checkpoint every K) vs step K copied into $D/NAME.res and resumed to N
resume_case() {
    local name=$1 stage=$2 n=$3 k=$4
    shift 4
    local full=$D/$name.full res=$D/$name.res
    local args=("$CFG" --train.max_steps="$n" --checkpoint.every="$k" --checkpoint.keep=5 "$@")
    "$R" "$stage" "${args[@]}" --checkpoint.dir="$full" >"$D/$name.full.log" 2>&1 ||
        { tail -3 "$D/$name.full.log"; fail "$name: the uninterrupted run"; }
    local kf
    kf=$(printf 'step_%06d.h5' "$k")
    [ -f "$full/$kf" ] || fail "$name: no $kf in the uninterrupted run"
    mkdir -p "$res"
    cp "$full/$kf" "$res/"
    ln -s "$kf" "$res/latest.h5"
    "$R" "$stage" "${args[@]}" --checkpoint.dir="$res" --resume >"$D/$name.res.log" 2>&1 ||
        { tail -3 "$D/$name.res.log"; fail "$name: the resumed run"; }
    grep -q "^# resuming .* at step $k\$" "$D/$name.res.log" || fail "$name: no resume note"
    local nf
    nf=$(printf 'step_%06d.h5' "$n")
    [ "$(readlink "$res/latest.h5")" = "$nf" ] || fail "$name: latest.h5 is not $nf"
    same_ckpt "$full/$nf" "$res/$nf" ||
        fail "$name: $stage resumed at step $k differs from the uninterrupted run at step $n"
    same_csv "$full/metrics.csv" "$res/metrics.csv" || fail "$name: metrics.csv differs"
}

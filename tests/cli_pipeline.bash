# Sourced by tests/cli_*.sh (not a test itself): builds a whole tiny
# pipeline in a fresh temp dir with tools/tiny_pipeline.sh, in a few
# seconds: task data, a char tokenizer and shards made from the task text,
# then pretrain -> sft -> reward -> ppo, each 4 steps of a 1-layer model on
# one thread (so numbers are reproducible). Sets D (the dir, removed on
# exit), CFG (the INI every stage and `rlhf eval` read) and R (the binary).
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

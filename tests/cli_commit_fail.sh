#!/usr/bin/env bash
# A checkpoint that cannot be put in place (here: a directory already sits
# at DIR/step_000002.h5, so the final rename fails) ends the run with one
# error line and exit 1: no crash, no .tmp left behind.
. "$(dirname "$0")/cli_pipeline.bash"
pipeline_build
mkdir -p "$D/pf/step_000002.h5"
"$R" pretrain "$CFG" --checkpoint.dir="$D/pf" >"$D/out" 2>"$D/err"
rc=$?
[ $rc -eq 1 ] || fail "expected exit 1, got $rc: $(tail -2 "$D/err")"
# progress lines come first on stderr; the error is the one and last error line
[ "$(grep -c '^rlhf: error: ' "$D/err")" -eq 1 ] || fail "not one error line: $(cat "$D/err")"
tail -n 1 "$D/err" | grep -q "^rlhf: error: .*step_000002.h5.*hint" ||
    fail "the error does not name the file: $(tail -n 1 "$D/err")"
compgen -G "$D/pf/*.tmp" >/dev/null && fail "a .tmp was left behind"
[ ! -e "$D/pf/latest.h5" ] || fail "latest.h5 points at a checkpoint that was never written"
echo "cli_commit_fail: ok"

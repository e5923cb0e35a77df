#!/usr/bin/env bash
# What every command-line user relies on: `--help` / `-h` on every command
# print its usage on stdout and exit 0, `rlhf --version` prints the version,
# an unknown help topic is an error, and output that never arrives (stdout
# on a full disk, or closed) makes the exit status 1 with one error line,
# without stdout's text landing in a file the command writes.
. "$(dirname "$0")/cli_pipeline.bash"
pipeline_build
P=$D/pretrain/latest.h5

for cmd in prepare pretrain sft reward ppo dpo sample chat eval inspect tasks import export; do
    for h in --help -h; do
        "$R" $cmd $h >"$D/out" 2>"$D/err" </dev/null || fail "rlhf $cmd $h: exit $?: $(cat "$D/err")"
        [ -s "$D/err" ] && fail "rlhf $cmd $h wrote to stderr: $(cat "$D/err")"
        grep -q "^usage: rlhf $cmd" "$D/out" || fail "rlhf $cmd $h: no usage on stdout: $(head -2 "$D/out")"
    done
done
# --help wins wherever it stands as an option, also after other arguments
run "$R" sample "$P" --top_k 3 --help
grep -q '^usage: rlhf sample' "$D/out" || fail "sample CKPT ... --help"
# (a value that happens to be "--help" is a value: the prompt here)
"$R" sample "$P" --prompt --help --max_new_tokens 1 >"$D/out" 2>"$D/err"
grep -q '^usage' "$D/out" && fail "--prompt --help printed the usage"
for h in --help -h help; do
    run "$R" $h
    grep -q '^usage: rlhf <command>' "$D/out" || fail "rlhf $h"
done
run "$R" --version
grep -Eq '^rlhf.c [0-9.]+ \(checkpoint format_version 1\)$' "$D/out" || fail "--version: $(cat "$D/out")"
run_fails "$R" help bogus
grep -q "unknown help topic 'bogus'" "$D/err" || fail "help bogus: $(cat "$D/err")"

# stdout that cannot be written
[ -w /dev/full ] || { echo "cli_conventions: skipped: no /dev/full"; exit 77; }
for args in "inspect $P" "sample $P --max_new_tokens 4" "help" "--version" "help config" "tasks --help"; do
    # shellcheck disable=SC2086
    "$R" $args >/dev/full 2>"$D/err"
    rc=$?
    [ $rc -eq 1 ] || fail "rlhf $args >/dev/full: exit $rc"
    [ "$(wc -l <"$D/err")" -eq 1 ] && grep -q '^rlhf: error: cannot write to standard output (No space left on device)' "$D/err" ||
        fail "rlhf $args >/dev/full: $(cat "$D/err")"
done
# a closed stdout: the same, and its text does not go into the --json file
"$R" eval "$P" "$CFG" --json "$D/e.json" >&- 2>"$D/err"
rc=$?
[ $rc -eq 1 ] || fail "eval with stdout closed: exit $rc: $(cat "$D/err")"
grep -q '^rlhf: error: cannot write to standard output' "$D/err" || fail "closed stdout: $(cat "$D/err")"
"$PY" -c "import json, sys; json.load(open(sys.argv[1]))" "$D/e.json" || fail "the --json file holds other text"
echo "cli_conventions: ok"

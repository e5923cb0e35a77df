#!/usr/bin/env bash
# README's command list is `rlhf --help`'s command table, line for line:
# the first indented block after "## Commands" holds exactly the lines that
# follow "commands:" in the help, up to its blank line (4 spaces added for
# Markdown). A command added, renamed or reworded in one and not the other
# fails here.
cd "$(dirname "$0")/.."
set -u
R=${RLHF_BIN:-build/default/rlhf}
fail() { echo "FAIL: $*" >&2; exit 1; }
D=$(mktemp -d /tmp/rlhf_readme.XXXXXX)
trap 'rm -rf "$D"' EXIT
"$R" --help >"$D/help" || fail "rlhf --help exited $?"
sed -n '/^commands:$/,/^$/p' "$D/help" | sed '1d;$d' >"$D/want"
[ "$(wc -l <"$D/want")" -ge 10 ] || fail "no command table in rlhf --help: $(cat "$D/help")"
# README: after "## Commands", skip to the first indented line, take the run
awk '/^## Commands$/ { on = 1; next }
     on && /^    / { print substr($0, 5); seen = 1; next }
     on && seen { exit }' README.md >"$D/have"
[ -s "$D/have" ] || fail "README.md has no indented command list under '## Commands'"
diff -u "$D/want" "$D/have" >"$D/diff" ||
    { cat "$D/diff" >&2; fail "README.md's command list differs from rlhf --help (- help, + README)"; }
echo ok

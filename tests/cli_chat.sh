#!/usr/bin/env bash
# rlhf chat without a terminal: one "bot> " line per message, greedy replies
# equal to the greedy answers `rlhf eval` grades, /reset and /quit, messages
# that cannot be answered (too long, not encodable) skipped with a note, the
# note about dropped turns given once, seeded sampling reproducible.
cd "$(dirname "$0")/.."
source tests/cli_pipeline.bash
pipeline_build
C=$D/sft/latest.h5

echo "reverse: cat" | "$R" chat "$C" --temperature 0 >"$D/out" 2>"$D/err" || fail "chat exit status"
[ "$(wc -l <"$D/out")" -eq 1 ] || fail "one reply line expected: $(cat "$D/out")"
grep -q '^bot> ' "$D/out" || fail "reply starts with 'bot> '"
grep -q 'you> ' "$D/out" && fail "no 'you> ' prompt without a terminal"

# greedy replies = the answers `rlhf eval --show` graded (same template,
# same max_new_tokens; KV cache with one row vs batched generation)
run "$R" eval "$C" "$CFG" --show 4 --json "$D/e.json" --ppo.reward_model=
"$PY" - "$D/e.json" >"$D/pairs" <<'EOF' || fail "reading --json examples"
import json, sys
for e in json.load(open(sys.argv[1]))["examples"]:
    print(e["prompt"] + "\t" + e["response"])
EOF
[ "$(wc -l <"$D/pairs")" -eq 4 ] || fail "four examples shown"
while IFS=$'\t' read -r prompt want; do
    got=$(printf '%s\n' "$prompt" | "$R" chat "$C" --temperature 0 --max_new_tokens 8 2>/dev/null)
    [ "$got" = "bot> $want" ] || fail "chat '$prompt': '$got', eval answered '$want'"
done <"$D/pairs"

# conversation controls
printf 'reverse: cat\nupper: dog\n/reset\nadd: 2 + 3\n\n/quit\nsort the letters: cab\n' |
    "$R" chat "$C" --temperature 0 >"$D/out" 2>"$D/err" || fail "chat with commands"
[ "$(grep -c '^bot> ' "$D/out")" -eq 3 ] || fail "three replies before /quit: $(cat "$D/out")"
grep -q 'forgotten' "$D/err" || fail "/reset acknowledged"

# a message longer than the context, and one the char tokenizer cannot
# encode: a note each, and the loop goes on
long=$(printf 'word %.0s' {1..40})
printf '%s\ncaf\xc3\xa9 \x01\nreverse: dog\n' "$long" |
    "$R" chat "$C" --temperature 0 >"$D/out" 2>"$D/err" || fail "chat after bad messages"
[ "$(grep -c '^bot> ' "$D/out")" -eq 1 ] || fail "one reply after two skipped messages"
grep -q 'the context holds 48' "$D/err" || fail "too-long note: $(cat "$D/err")"
grep -q 'cannot encode' "$D/err" || fail "encoding note: $(cat "$D/err")"

# a long conversation in a 48-token context: older turns dropped, said once
for i in 1 2 3 4 5 6; do echo "reverse: abc$i"; done |
    "$R" chat "$C" --temperature 0 --max_new_tokens 8 >"$D/out" 2>"$D/err" || fail "long chat"
[ "$(grep -c '^bot> ' "$D/out")" -eq 6 ] || fail "six replies"
[ "$(grep -c 'oldest turns are dropped' "$D/err")" -eq 1 ] || fail "drop note once: $(cat "$D/err")"

# sampling: the seed decides
s1=$(printf 'upper: dog\nadd: 1 + 1\n' | "$R" chat "$C" --temperature 1 --seed 7 2>/dev/null)
s2=$(printf 'upper: dog\nadd: 1 + 1\n' | "$R" chat "$C" --temperature 1 --seed 7 2>/dev/null)
[ "$s1" = "$s2" ] || fail "same seed, different replies"

# bad input: one line, a hint, exit 1
run_fails "$R" chat
run_fails "$R" chat "$D/nope.h5"
run_fails "$R" chat "$D/data/tokenizer.h5"
run_fails "$R" chat "$C" --bogus 1
run_fails "$R" chat "$C" --temperature
run_fails "$R" chat "$C" "$C"
# rlhf sample reads its options the same way (options.h)
run_fails "$R" sample
run_fails "$R" sample "$C" --temperature
run_fails "$R" sample "$C" "$C"
echo "cli_chat: ok"

#!/usr/bin/env bash
# rlhf rank through the command line, on the tiny pipeline's SFT model:
# the labeler's ranks re-derived from the prompts' answers by an
# independent implementation (right answer 0, else edit distance, never
# ending 1000), every pair of differently ranked answers written once per
# group with the better one chosen, the same bytes for the same seed,
# label noise flipping a share of comparisons within binomial bounds; a
# reward model trains on the groups (and resumes exactly: cli_resume.sh),
# with reward.center_coef adding to its loss and not to its accuracy;
# bad input refused in one line, an existing output never overwritten.
cd "$(dirname "$0")/.."
source tests/cli_pipeline.bash
pipeline_build

RK=(rank "$D/sft/latest.h5" "$CFG" --rank.prompts_file="$D/tasks/ppo_train.jsonl"
    --rank.max_new_tokens=8 --rank.k=6 --rank.batch=24)
run "$R" "${RK[@]}" --rank.n_prompts=60 --rank.out_file="$D/c1.jsonl"
grep -q '^wrote [0-9]* comparisons' "$D/out" || fail "no summary line: $(cat "$D/out")"
run "$R" "${RK[@]}" --rank.n_prompts=60 --rank.out_file="$D/c2.jsonl"
cmp -s "$D/c1.jsonl" "$D/c2.jsonl" || fail "rank is not deterministic for a seed"

"$PY" - "$D/c1.jsonl" "$D/tasks/ppo_train.jsonl" <<'PYEOF' || fail "ranks or pairs wrong"
import json, sys
from collections import defaultdict
answers = {}
for line in open(sys.argv[2]):
    e = json.loads(line)
    answers[e["prompt"]] = e["answer"]

def dist(a, b):
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]

def rank(prompt, text, ended):
    if not ended:
        return 1000
    t, a = text.strip(), answers[prompt].strip()
    return 0 if t == a else min(dist(t.encode(), a.encode()), 999)

groups = defaultdict(list)
for line in open(sys.argv[1]):
    e = json.loads(line)
    groups[e["group"]].append(e)
    rc, rr = e["ranks"]
    assert rc == rank(e["prompt"], e["chosen"], True), e
    assert rr == rank(e["prompt"], e["rejected"], not e["rejected_no_eot"]), e
    assert rc < rr, e  # no noise: the better answer is chosen
assert len(groups) >= 5, len(groups)
for g, lines in groups.items():
    assert len({e["prompt"] for e in lines}) == 1
    # the group's answers and their ranks: every differently ranked pair of
    # distinct answers appears (as often as the answers were sampled)
    seen = {}
    for e in lines:
        seen[(e["chosen"], False)] = e["ranks"][0]
        seen[(e["rejected"], e["rejected_no_eot"])] = e["ranks"][1]
    keyed = {(min(a, b), max(a, b)) for a in seen for b in seen if seen[a] != seen[b]}
    pairs = {(min(x, y), max(x, y)) for e in lines
             for x, y in [((e["chosen"], False), (e["rejected"], e["rejected_no_eot"]))]}
    assert pairs == keyed, (g, pairs ^ keyed)
print(len(groups), "groups")
PYEOF

# label noise (its rate against binomial bounds: test_tasks): the
# comparisons written with the worse answer chosen are the ones reported
# flipped, and each is of two answers that ended
run "$R" "${RK[@]}" --rank.n_prompts=60 --rank.noise=0.3 --rank.out_file="$D/noisy.jsonl"
read -r flipped of < <(sed -n 's/.*noise flipped \([0-9]*\) of \([0-9]*\) flippable.*/\1 \2/p' "$D/out")
[ -n "$of" ] || fail "no noise count: $(cat "$D/out")"
"$PY" - "$D/noisy.jsonl" "$flipped" <<'PYEOF' || fail "noisy comparisons"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
flipped = [e for e in lines if e["ranks"][0] > e["ranks"][1]]
assert len(flipped) == int(sys.argv[2]), (len(flipped), sys.argv[2])
assert all(not e["rejected_no_eot"] and e["ranks"][0] < 1000 for e in flipped)
PYEOF

# a reward model on the groups: one batch element per prompt
run "$R" reward "$CFG" --checkpoint.init="$D/sft/latest.h5" --checkpoint.dir="$D/rg" \
    --reward.train_file="$D/c1.jsonl" --reward.test_file="$D/noisy.jsonl"
grep -q '^# reward pairs: train [0-9]* in [0-9]* groups' "$D/out" || fail "no group count"
[ -n "$(metric "$D/rg/metrics.csv" test_accuracy_wrong_wrong)" ] ||
    fail "no accuracy on pairs of two wrong answers"
# reward.center_coef: the same run with the centring term. The value head
# starts at zero, so step 1 (every reward 0) is the same to the bit; step 2
# sees the same batch and weights, so its loss is the Bradley-Terry one plus
# c times a mean of squares: larger, while its accuracy and margin are equal
run "$R" reward "$CFG" --checkpoint.init="$D/sft/latest.h5" --checkpoint.dir="$D/rgc" \
    --reward.train_file="$D/c1.jsonl" --reward.test_file="$D/noisy.jsonl" --reward.center_coef=0.5
"$PY" - "$D/rg/metrics.csv" "$D/rgc/metrics.csv" <<'PYEOF' || fail "reward.center_coef"
import csv, sys
(a1, a2), (b1, b2) = (list(csv.DictReader(open(p)))[:2] for p in sys.argv[1:3])
assert a1["step"] == b1["step"] == "1" and a2["step"] == b2["step"] == "2", (a1, b1)
assert a1["loss"] == b1["loss"], (a1["loss"], b1["loss"])
assert float(b2["loss"]) > float(a2["loss"]), (a2["loss"], b2["loss"])
assert a2["accuracy"] == b2["accuracy"] and a2["margin"] == b2["margin"], (a2, b2)
PYEOF
run_fails "$R" reward "$CFG" --checkpoint.init="$D/sft/latest.h5" --checkpoint.dir="$D/rgn" \
    --reward.train_file="$D/c1.jsonl" --reward.center_coef=-1
grep -q "reward.center_coef" "$D/err" || fail "negative center_coef: $(cat "$D/err")"

# best-of-N with that reward model: the three accuracies, ordered as they
# must be (the picked answer is one of the N, so best <= any right)
run "$R" eval "$D/sft/latest.h5" "$CFG" --best_of 4 --ppo.reward_model="$D/rg/latest.h5" \
    --ref "$D/sft/latest.h5"
b=$(result_key best_of_accuracy) s=$(result_key best_of_sample_accuracy) p=$(result_key best_of_pass)
[ -n "$b" ] && [ -n "$s" ] && [ -n "$p" ] || fail "best-of-4 keys missing: $(grep RESULT "$D/out")"
"$PY" -c "import sys; b, s, p = map(float, sys.argv[1:]); sys.exit(not (b <= p and s <= p))" "$b" "$s" "$p" ||
    fail "best-of-4: best $b, one sample $s, any right $p"
# the reward model's AUC over all of those answers (reward_auc_families,
# unit-tested), on as many answers as were sampled, and within prompts
n=$(sed -n 's/^best-of-4 *\([0-9]*\) prompts.*/\1/p' "$D/out")
[ -n "$n" ] && grep -q "^best-of auc  over all 4 x $n answers, " "$D/out" ||
    fail "best-of AUC line: $(grep '^best-of' "$D/out")"
grep -q "^best-of auc  the same answers, a right one above a wrong one to the same prompt: " \
    "$D/out" || fail "best-of AUC within prompts: $(grep '^best-of' "$D/out")"
run_fails "$R" eval "$D/sft/latest.h5" "$CFG" --best_of 1

# refusals: an existing output, plain pairs mixed with groups, a bad rank
run_fails "$R" "${RK[@]}" --rank.n_prompts=5 --rank.out_file="$D/c1.jsonl"
cmp -s "$D/c1.jsonl" "$D/c2.jsonl" || fail "an existing output was touched"
run_fails "$R" "${RK[@]}" --rank.k=1 --rank.out_file="$D/c3.jsonl"
run_fails "$R" rank "$D/reward/latest.h5" "$CFG" --rank.out_file="$D/c3.jsonl"
run_fails "$R" "${RK[@]}" --rank.max_new_tokens=4000 --rank.out_file="$D/c3.jsonl"
grep -q 'no prompt leaves room for rank.max_new_tokens=4000.*hint: lower rank.max_new_tokens' \
    "$D/err" || fail "answers longer than the context: $(cat "$D/err")"
{ head -n 2 "$D/c1.jsonl"; head -n 1 "$D/tasks/pref_train.jsonl"; } >"$D/mixed.jsonl"
run_fails "$R" reward "$CFG" --checkpoint.init="$D/sft/latest.h5" --checkpoint.dir="$D/rm" \
    --reward.train_file="$D/mixed.jsonl"
grep -q 'mixed.jsonl:3:' "$D/err" || fail "mixed file: $(cat "$D/err")"
head -n 1 "$D/c1.jsonl" | sed 's/"ranks":\[[0-9]*,/"ranks":[1000,/; s/"ranks":\[1000,\([0-9]*\)\]/"ranks":[\1,\1]/' >"$D/tie.jsonl"
run_fails "$R" reward "$CFG" --checkpoint.init="$D/sft/latest.h5" --checkpoint.dir="$D/rm" \
    --reward.train_file="$D/tie.jsonl"
[ ! -e "$D/c3.jsonl" ] || fail "a refused rank left a file"
echo "cli_rank: ok"

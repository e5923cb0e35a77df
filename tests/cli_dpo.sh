#!/usr/bin/env bash
# rlhf dpo through the command line, on the tiny pipeline: a run from the
# SFT checkpoint logs TRL's names (rewards/chosen ... logps/rejected) in
# metrics.csv and as nested /metrics datasets, with a first held-out
# evaluation where the policy is its reference (implicit rewards exactly 0,
# loss exactly log 2; IPO's 1/(4 beta^2)), and so is the first training
# batch's; the reference's log-probs of the training pairs computed as
# batches reach them and stored in /state/dpo_ref_logp (NaN for pairs not
# reached); RPO's NLL term; --resume from a mid-run checkpoint reuses the
# stored log-probs and ends bit-identical to the uninterrupted run, and is
# refused once the training file changed; the reference is
# reloaded from the recorded lineage and refused once it changed; eval,
# inspect and chat take a dpo checkpoint as a policy; bad input stops with
# one line.
cd "$(dirname "$0")/.."
source tests/cli_pipeline.bash
pipeline_build
SFT=$D/sft/latest.h5
PAIRS=(--dpo.train_file="$D/tasks/pref_train.jsonl" --dpo.test_file="$D/tasks/pref_test.jsonl")

# --- a run ---------------------------------------------------------------------------
run "$R" dpo "$CFG" --checkpoint.dir="$D/dpo" --checkpoint.init="$SFT" "${PAIRS[@]}"
first='^before DPO (step 0, the SFT model): held-out pairs loss 0.6931, reward accuracy 0.0%, '
grep -q "${first}margin 0.0000" "$D/err" || fail "no step-0 evaluation line: $(grep -m1 before "$D/err")"
grep -q '^step 4: train loss .* task accuracy' "$D/err" || fail "no final evaluation line"
grep -q '^# reference .*sft/step_000004.h5: log-probs of the [0-9]* held-out sequences in .* s; of the [0-9]* training sequences as batches reach them (0 known from the checkpoint)$' "$D/out" ||
    fail "the reference's log-probs: $(grep '^# reference' "$D/out")"
run "$PY" - "$D/dpo" "$(readlink -f "$SFT")" <<'PY'
import csv, math, sys
import h5py, numpy as np
sys.path.insert(0, "notebooks")
import gpt_numpy
run, sft = sys.argv[1:3]
names = ["rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins",
         "logps/chosen", "logps/rejected", "nll_loss"]
rows = list(csv.DictReader(open(run + "/metrics.csv")))
header = list(rows[0])
for n in names + ["eval_" + n for n in names] + ["loss", "lr", "grad_norm", "eval_loss",
                                                  "eval_accuracy"]:
    assert n in header, (n, header)
# TRL's group order, kept together
i = header.index("rewards/chosen")
assert header[i:i + 7] == names, header
assert [r["step"] for r in rows] == ["0", "1", "2", "3", "4"], [r["step"] for r in rows]
with h5py.File(run + "/latest.h5", "r") as f:
    assert f.attrs["stage"] == "dpo"
    assert f.attrs["parent"].startswith(sft + " sha256:"), f.attrs["parent"]
    assert "heads" not in f and "critic" not in f
    m = f["metrics"]
    assert isinstance(m["rewards"], h5py.Group)
    assert m["rewards/chosen"].shape == (5,)
    # step 0: the policy is the reference, scored in the same batches
    assert abs(m["eval_loss"][0] - math.log(2)) <= 1e-15, m["eval_loss"][0]  # a mean of log 2s
    for k in ("chosen", "rejected", "margins", "accuracies"):
        assert m["eval_rewards/" + k][0] == 0.0, k
    # step 1: the policy is still the reference, whose log-probs of the
    # batch were computed in the batch's own shape
    for k in ("chosen", "rejected", "margins", "accuracies"):
        assert m["rewards/" + k][1] == 0.0, (k, m["rewards/" + k][1])
    assert abs(m["loss"][1] - math.log(2)) <= 1e-15, m["loss"][1]
    # the reference's log-probs of the training sequences: those of the 4
    # batches of 4 pairs (the tiny config) known, the others NaN
    ref = f["state/dpo_ref_logp"][()]
    known = ref[~np.isnan(ref)]
    assert ref.ndim == 1 and 0 < len(known) <= 4 * 2 * 4 and len(known) % 2 == 0, len(known)
    assert np.all(known < 0), known
    # the training rows: finite, margins = chosen - rejected
    c, r, g = (m["rewards/" + k][1:] for k in ("chosen", "rejected", "margins"))
    assert np.all(np.isfinite(c)) and np.allclose(g, c - r, atol=1e-12)
    assert m["eval_rewards/margins"][4] != 0.0  # the policy moved
    # the CSV and the checkpoint hold the same numbers
    assert float(rows[4]["rewards/margins"]) == float("%.9g" % m["rewards/margins"][4])
back = gpt_numpy.read_metrics(run + "/latest.h5")
assert list(back) == header, (list(back), header)
PY

# IPO and conservative DPO: the same step-0 arithmetic
run "$R" dpo "$CFG" --checkpoint.dir="$D/ipo" --checkpoint.init="$SFT" "${PAIRS[@]}" \
    --dpo.loss=ipo --dpo.beta=0.25 --train.max_steps=2
grep -q 'before DPO.*held-out pairs loss 4.0000, reward accuracy 0.0%, margin 0.0000' "$D/err" ||
    fail "IPO at step 0: $(grep before "$D/err")"
run "$R" dpo "$CFG" --checkpoint.dir="$D/cdpo" --checkpoint.init="$SFT" "${PAIRS[@]}" \
    --dpo.label_smoothing=0.1 --train.max_steps=2
grep -q 'before DPO.*held-out pairs loss 0.6931, reward accuracy 0.0%' "$D/err" ||
    fail "cDPO at step 0: $(grep before "$D/err")"

# RPO: the chosen answers' NLL per token joins the loss, and at step 1 (the
# policy is the reference) the loss is log 2 + alpha * nll_loss
run "$R" dpo "$CFG" --checkpoint.dir="$D/rpo" --checkpoint.init="$SFT" "${PAIRS[@]}" \
    --dpo.rpo_alpha=0.5 --train.max_steps=2
grep -q 'rpo_alpha 0.5$' "$D/out" || fail "rpo_alpha not in the run header"
run "$PY" - "$D/rpo/latest.h5" <<'PY'
import math, sys
import h5py
with h5py.File(sys.argv[1], "r") as f:
    m = f["metrics"]
    nll, loss = m["nll_loss"][1], m["loss"][1]
    assert nll > 0 and abs(loss - (math.log(2) + 0.5 * nll)) <= 1e-12 * loss, (loss, nll)
PY

# the bundled recipes load (their data paths overridden): one step each
for ini in configs/dpo_tasks.ini configs/tiny/dpo.ini; do
    run "$R" dpo "$ini" --checkpoint.dir="$D/recipe_$(basename "$(dirname "$ini")")" \
        --checkpoint.init="$SFT" "${PAIRS[@]}" --sft.test_file="$D/tasks/sft_test.jsonl" \
        --train.max_steps=1 --train.epochs=0 --train.batch_size=4 --train.threads=1
done

# --- exact resume ----------------------------------------------------------------------
# six training pairs: 5 steps of 4 pairs cross epochs, the resume at 2 lands in the second
head -n 6 "$D/tasks/pref_train.jsonl" >"$D/pref6.jsonl"
ARGS=("$CFG" --checkpoint.init="$SFT" --dpo.train_file="$D/pref6.jsonl"
      --dpo.test_file="$D/tasks/pref_test.jsonl" --train.max_steps=5 --checkpoint.every=2
      --checkpoint.keep=5)
run "$R" dpo "${ARGS[@]}" --checkpoint.dir="$D/full"
mkdir -p "$D/res"
cp "$D/full/step_000002.h5" "$D/res/"
ln -s step_000002.h5 "$D/res/latest.h5"
run "$R" dpo "${ARGS[@]}" --checkpoint.dir="$D/res" --resume
grep -q '^# resuming .* at step 2$' "$D/out" || fail "no resume note"
grep -q '^# reference .*training sequences as batches reach them ([1-9][0-9]* known from the checkpoint)$' "$D/out" ||
    fail "the resumed run did not reuse the stored log-probs: $(grep '^# reference' "$D/out")"
for g in /model /optimizer; do
    h5diff "$D/full/step_000005.h5" "$D/res/step_000005.h5" "$g" "$g" >"$D/h5diff" 2>&1 ||
        { head -5 "$D/h5diff"; fail "resumed $g differs from the uninterrupted run"; }
done
run "$PY" - "$D/full" "$D/res" <<'PY'
import csv, sys
import h5py, numpy as np
a, b = sys.argv[1:3]
timing = {"time_s", "tokens_per_s"}
fa, fb = (h5py.File(d + "/step_000005.h5", "r") for d in (a, b))
assert fa.attrs["parent"] == fb.attrs["parent"]
names = []
fa["metrics"].visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
for n in names:
    if n not in timing:
        assert np.array_equal(fa["metrics"][n][()], fb["metrics"][n][()], equal_nan=True), n
ra, rb = ([{k: v for k, v in r.items() if k not in timing}
           for r in csv.DictReader(open(d + "/metrics.csv"))] for d in (a, b))
assert ra == rb, "metrics.csv differs"
PY

# a resume with another training file: refused, the run untouched
head -n 5 "$D/tasks/pref_train.jsonl" >"$D/pref5.jsonl"
run_fails "$R" dpo "${ARGS[@]}" --checkpoint.dir="$D/res" --resume --train.max_steps=6 \
    --dpo.train_file="$D/pref5.jsonl"
grep -q 'dpo_ref_logp.*hint: resume with the dpo.train_file this run started with (10 sequences now)' "$D/err" ||
    fail "changed train file: $(cat "$D/err")"
[ "$(readlink "$D/res/latest.h5")" = step_000005.h5 ] || fail "the refused resume touched the run"

# --- eval, inspect and chat take a dpo checkpoint as a policy ---------------------------
run "$R" eval "$D/dpo/latest.h5" "$CFG"
grep -q '^RESULT stage=dpo .*accuracy=.* kl=' "$D/out" || fail "eval: $(grep RESULT "$D/out")"
grep -q '^tasks ' "$D/out" || fail "eval graded no tasks"
grep -q 'the parent in the lineage, sha256 matches' "$D/out" || fail "eval: KL not to the SFT parent"
run "$R" inspect "$D/dpo/latest.h5"
grep -q '^  stage dpo, step 4' "$D/out" || fail "inspect: stage"
grep -q '^  rewards/chosen ' "$D/out" || fail "inspect: metrics with '/'"
grep -q 'batches of pairs drawn' "$D/out" || fail "inspect: data cursor"
echo "reverse: cat" | "$R" chat "$D/dpo/latest.h5" --temperature 0 >"$D/out" 2>"$D/err" ||
    fail "chat exit status"
grep -q '^bot> ' "$D/out" || fail "chat reply"
grep -q 'note:.*checkpoint' "$D/err" && fail "chat treats a dpo checkpoint as a non-policy"

# --- lineage: the recorded reference, never what checkpoint.init names later ----------------
cp "$(readlink -f "$SFT")" "$D/sft_copy.h5"
run "$R" dpo "$CFG" --checkpoint.dir="$D/lin" --checkpoint.init="$D/sft_copy.h5" "${PAIRS[@]}" \
    --train.max_steps=2
run "$R" dpo "$CFG" --checkpoint.dir="$D/lin" --checkpoint.init="$D/pretrain/latest.h5" \
    "${PAIRS[@]}" --train.max_steps=3 --resume
grep -q "^# reference $D/sft_copy.h5:" "$D/out" || fail "resume did not reload the recorded reference"
printf 'x' >>"$D/sft_copy.h5"
run_fails "$R" dpo "$CFG" --checkpoint.dir="$D/lin" --checkpoint.init="$D/sft_copy.h5" \
    "${PAIRS[@]}" --train.max_steps=4 --resume
grep -q "the reference .*sft_copy.h5 changed since this run started" "$D/err" || fail "$(cat "$D/err")"
[ "$(readlink "$D/lin/latest.h5")" = step_000003.h5 ] || fail "the refused resume touched the run"

# --- bad input: one line, non-zero exit, no run directory left behind ------------------------
: >"$D/empty.jsonl"
bad() {  # WHAT-THE-ERROR-SAYS overrides...
    local want=$1
    shift
    rm -rf "$D/bad"
    run_fails "$R" dpo "$CFG" --checkpoint.dir="$D/bad" "${PAIRS[@]}" "$@"
    grep -q -- "$want" "$D/err" || fail "expected '$want', got: $(cat "$D/err")"
    [ ! -e "$D/bad/latest.h5" ] || fail "a failed run left $D/bad/latest.h5"
}
bad "checkpoint.init is empty" --checkpoint.init=
bad "cannot resolve '$D/nope.h5'" --checkpoint.init="$D/nope.h5"
bad "is a reward model" --checkpoint.init="$D/reward/latest.h5"
bad "dpo.train_file is empty" --checkpoint.init="$SFT" --dpo.train_file=
bad "dpo.test_file is empty" --checkpoint.init="$SFT" --dpo.test_file=
bad "empty.jsonl" --checkpoint.init="$SFT" --dpo.train_file="$D/empty.jsonl"
bad "sigmoid|ipo" --checkpoint.init="$SFT" --dpo.loss=hinge
bad "sigmoid only" --checkpoint.init="$SFT" --dpo.loss=ipo --dpo.label_smoothing=0.1
bad "dpo.beta" --checkpoint.init="$SFT" --dpo.beta=0
bad "dpo.rpo_alpha" --checkpoint.init="$SFT" --dpo.rpo_alpha=-1
echo "cli_dpo: ok"

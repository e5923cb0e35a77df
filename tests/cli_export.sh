#!/usr/bin/env bash
# rlhf export of the tiny pipeline's checkpoints (char tokenizer): the
# weights and config.json are written in GPT2LMHeadModel's layout and the
# command says that the tokenizer files are not; they load into the numpy
# forward with the checkpoint's own logits. A reward model (value head) and
# a missing checkpoint are refused with one line, nothing written.
# (GPT-2-tokenizer models: tests/cli_import.sh.)
cd "$(dirname "$0")/.."
source tests/cli_pipeline.bash
pipeline_build

run "$R" export "$D/sft/latest.h5" "$D/ex"
grep -q '^note: the checkpoint.s tokenizer is char, which has no Hugging Face GPT-2 form: only the weights and config.json were written$' "$D/out" ||
    fail "export note: $(cat "$D/out")"
[ -f "$D/ex/model.safetensors" ] && [ -f "$D/ex/config.json" ] || fail "weights or config missing"
[ -e "$D/ex/vocab.json" ] || [ -e "$D/ex/merges.txt" ] && fail "tokenizer files written for char"
"$PY" - "$D/sft/latest.h5" "$D/ex" <<'PYEOF' || fail "exported weights"
import json, os, sys
import numpy as np
sys.path.insert(0, "tests"); sys.path.insert(0, "notebooks")
import gpt_numpy, hf_gpt2
ck = gpt_numpy.Checkpoint(sys.argv[1])
ex = hf_gpt2.HfModel(sys.argv[2])
cfg = json.load(open(os.path.join(sys.argv[2], "config.json")))
assert cfg["vocab_size"] == ck.shape["vocab_size"] and cfg["n_positions"] == ck.shape["block_size"]
assert set(ex.params) == set(ck.params), sorted(set(ex.params) ^ set(ck.params))
for k, v in ck.params.items():
    assert np.array_equal(ex.params[k].view(np.uint32), v.view(np.uint32)), k
ids = list(range(min(8, ck.shape["vocab_size"])))
assert np.array_equal(gpt_numpy.forward(ex, ids)["logits"], gpt_numpy.forward(ck, ids)["logits"])
PYEOF

run_fails "$R" export "$D/reward/latest.h5" "$D/rm"
grep -q 'is a reward model' "$D/err" || fail "reward model export: $(cat "$D/err")"
[ -e "$D/rm" ] && fail "a refused export created its directory"
run_fails "$R" export "$D/nothing.h5" "$D/none"
[ -e "$D/none" ] && fail "a refused export created its directory"
echo ok

#!/usr/bin/env bash
# The whole tiny pipeline through the command line, checked from outside
# with h5py: tasks -> prepare (token counts, decodable shards) -> pretrain
# -> sample (seeds) -> sft -> reward -> ppo (rollout dump layout and its
# invariants) -> eval -> inspect; every checkpoint's root attributes,
# lineage (parent path + sha256, chained back to pretrain), nanoGPT names
# and shapes, optimizer moments, and /metrics against metrics.csv.
cd "$(dirname "$0")/.."
source tests/cli_pipeline.bash
pipeline_build   # tasks, prepare, pretrain, sft, reward, ppo: 4 steps each, C=16, T=48

# --- tasks: the files the stages read, reproducible from the seed -------------
"$PY" - "$D/tasks" <<'EOF' || fail "task files"
import json, sys
need = {"sft": {"prompt", "response"}, "pref": {"prompt", "chosen", "rejected"}, "ppo": {"prompt"}}
for kind, fields in need.items():
    for split, n in (("train", 200), ("test", 24)):
        rows = [json.loads(l) for l in open(f"{sys.argv[1]}/{kind}_{split}.jsonl")]
        if kind == "sft" and split == "train":  # then 50 conversations (chat_share 0.2)
            conv = rows[n:]
            rows = rows[:n]
            assert len(conv) == 50 and all(2 <= len(r["messages"]) // 2 <= 4 for r in conv)
        assert len(rows) == n, (kind, split, len(rows))
        assert all(fields <= set(r) and all(isinstance(r[k], str) and r[k] for k in fields)
                   for r in rows), (kind, split)
chat = [json.loads(l) for l in open(f"{sys.argv[1]}/chat_test.jsonl")]
assert [len(r["messages"]) // 2 for r in chat] == [2, 3, 4] * 8
EOF
run "$R" tasks --out "$D/tasks2" --n_train 200 --n_test 24 --seed 3
diff -r "$D/tasks" "$D/tasks2" >/dev/null || fail "rlhf tasks with the same seed differs"
run "$R" tasks --out "$D/tasks3" --n_train 200 --n_test 24 --seed 4
cmp -s "$D/tasks/sft_train.jsonl" "$D/tasks3/sft_train.jsonl" && fail "rlhf tasks ignores --seed"

# --- prepare: the shards hold every document once, eot before each ---------------
"$PY" - "$D/data" "$D/tasks/sft_train.jsonl" <<'EOF' || fail "token shards"
import h5py, sys
import numpy as np
d, src = sys.argv[1:3]
tk = h5py.File(d + "/tokenizer.h5", "r")
assert tk.attrs["format"] == "rlhf.c" and tk.attrs["stage"] == "tokenizer"
t = tk["tokenizer"]
V, eot = int(t.attrs["vocab_size"]), int(t.attrs["eot"])
assert t.attrs["type"] == "char" and len({int(t.attrs[k]) for k in ("eot", "user", "assistant", "pad")}) == 4
vb, vo = t["vocab_bytes"][()], t["vocab_offsets"][()]
assert vo.shape == (V + 1,)
docs = []
for split in ("train", "val"):
    f = h5py.File(f"{d}/{split}.h5", "r")
    assert f["tokens"].dtype == np.uint16 and int(f.attrs["vocab_size"]) == V
    x = f["tokens"][()].astype(np.int64)
    assert x[0] == eot and x.max() < V
    text = b"".join(b"\0" if i == eot else bytes(vb[vo[i]:vo[i + 1]]) for i in x)
    docs += text.split(b"\0")[1:]
    hashes = f.attrs["tokenizer_hash"] if split == "train" else hashes
    assert f.attrs["tokenizer_hash"] == hashes
# the corpus is one document per line of sft_train.jsonl
lines = open(src, "rb").read().split(b"\n")[:-1]
assert sorted(docs) == sorted(lines), (len(docs), len(lines))
EOF
run "$R" prepare "$CFG" --data.dir="$D/data2"
"$PY" -c "
import h5py, sys, numpy as np
for s in ('train', 'val'):
    a, b = (h5py.File(f'{d}/{s}.h5', 'r')['tokens'][()] for d in sys.argv[1:])
    sys.exit(0 if np.array_equal(a, b) else 1)" "$D/data" "$D/data2" || fail "prepare is not reproducible"

# --- sample: the seed decides; greedy ignores it --------------------------------
P=$D/pretrain/latest.h5
s7=$("$R" sample "$P" --seed 7 --max_new_tokens 40 2>&1) || fail "sample: $s7"
s7b=$("$R" sample "$P" --seed 7 --max_new_tokens 40 2>&1) || fail "sample"
s8=$("$R" sample "$P" --seed 8 --max_new_tokens 40 2>&1) || fail "sample"
[ "$s7" = "$s7b" ] || fail "same seed, different text: '$s7' vs '$s7b'"
[ "$s7" != "$s8" ] || fail "seeds 7 and 8 gave the same text: '$s7'"
g1=$("$R" sample "$P" --seed 1 --temperature 0 --max_new_tokens 20 2>&1) || fail "greedy sample"
g2=$("$R" sample "$P" --seed 2 --temperature 0 --max_new_tokens 20 2>&1) || fail "greedy sample"
[ "$g1" = "$g2" ] || fail "greedy sampling depends on the seed"
run "$R" sample "$P" --prompt 'reverse: ' --max_new_tokens 10 --num_samples 2
[ "$(head -c 9 "$D/out")" = 'reverse: ' ] || fail "sample does not echo the prompt: $(cat "$D/out")"
grep -qx -- '---' "$D/out" || fail "two samples are not separated by ---"
[ "$(grep -c '^reverse: ' "$D/out")" -eq 2 ] || fail "--num_samples 2: $(cat "$D/out")"
# top-k 1 is greedy whatever the temperature
k1=$("$R" sample "$P" --seed 5 --temperature 1.5 --top_k 1 --max_new_tokens 20 2>&1) || fail "top_k"
[ "$k1" = "$g1" ] || fail "top_k=1 differs from greedy: '$k1' vs '$g1'"

# --- ppo with a rollout dump: the same run, plus the file ----------------------
run "$R" ppo "$CFG" --checkpoint.dir="$D/ppo_dump" --checkpoint.init="$D/sft/latest.h5" \
    --ppo.dump_rollouts="$D/rollouts.h5"
"$PY" - "$D/rollouts.h5" "$D/reward/latest.h5" "$D/ppo/latest.h5" "$D/ppo_dump/latest.h5" <<'EOF' ||
import h5py, json, sys
import numpy as np
f = h5py.File(sys.argv[1], "r")
mean, std = h5py.File(sys.argv[2], "r")["state/reward_norm"][()]
ppo = h5py.File(sys.argv[3], "r")
cfg = json.loads(ppo.attrs["config"])
Pn, T = cfg["ppo"]["rollout_batch"], cfg["model"]["block_size"]
kl, max_new = cfg["ppo"]["kl_coef"], cfg["ppo"]["max_new_tokens"]
tk = ppo["tokenizer"].attrs
assert sorted(f) == [f"batch_{s:06d}" for s in range(1, 5)], sorted(f)
for name, g in f.items():
    assert g.attrs["step"] == int(name[6:])
    shapes = {k: g[k].shape for k in g}
    for k in ("logp", "ref_logp", "values", "advantages", "returns", "rewards", "masks"):
        assert shapes[k] == (Pn, T), (k, shapes[k])
    assert shapes["tokens"] == (Pn, T + 1)
    assert shapes["qlen"] == shapes["rlen"] == shapes["score_raw"] == (Pn, 1)
    assert g["tokens"].dtype == g["masks"].dtype == np.int32 and g["logp"].dtype == np.float32
    tok, m = g["tokens"][()], g["masks"][()]
    q, r = g["qlen"][()][:, 0], g["rlen"][()][:, 0]
    lp, rl, rw = g["logp"][()], g["ref_logp"][()], g["rewards"][()]
    assert ((m == 0) | (m == 1)).all() and (1 <= r).all() and (r <= max_new).all()
    for b in range(Pn):
        # position t predicts token t+1: the response tokens q..q+r-1
        want = np.zeros(T, np.int32)
        want[q[b] - 1:q[b] + r[b] - 1] = 1
        assert np.array_equal(m[b], want), (name, b)
        assert tok[b, 0] == tk["user"] and tok[b, q[b] - 1] == tk["assistant"]
        assert (tok[b, q[b] + r[b]:] == tk["pad"]).all()
    # what the losses read is zero off the mask (logp, ref_logp and values
    # there are whatever the padded minibatch computed: mask them)
    for k in ("advantages", "returns", "rewards"):
        assert (g[k][()][m == 0] == 0).all(), k
    assert (lp[m == 1] < 0).all() and (rl[m == 1] < 0).all()
    # rewards: -kl_coef * (logp - ref_logp) per token, plus the normalised
    # score on the last one (float32 sums: 1e-4)
    score = (g["score_raw"][()][:, 0] - mean) / std
    got = rw.sum(1) + kl * ((lp - rl) * m).sum(1)
    assert np.allclose(got, score, atol=1e-4), (got, score)
    # whitened advantages: returns - values, standardised over response tokens
    a = g["advantages"][()][m == 1]
    u = (g["returns"][()] - g["values"][()])[m == 1]
    assert abs(a.mean()) < 1e-5 and abs(a.std() - 1) < 1e-4
    assert np.allclose(a, (u - u.mean()) / u.std(), atol=1e-4)
# the dump is a side output: training is the same with and without it
d = h5py.File(sys.argv[4], "r")
for grp in ("model", "critic/model", "optimizer/m"):
    for k in ppo[grp]:
        assert np.array_equal(ppo[grp][k][()], d[grp][k][()]), (grp, k)
EOF
    fail "rollout dump"
# a fresh run refuses to write into an existing dump, which stays as it was
sum_before=$(sha256sum <"$D/rollouts.h5")
run_fails "$R" ppo "$CFG" --checkpoint.dir="$D/ppo_dump2" --checkpoint.init="$D/sft/latest.h5" \
    --ppo.dump_rollouts="$D/rollouts.h5"
grep -q "already exists" "$D/err" || fail "fresh ppo over a dump: $(cat "$D/err")"
[ "$(sha256sum <"$D/rollouts.h5")" = "$sum_before" ] || fail "a refused ppo run changed the dump"

# --- every checkpoint from outside: attributes, lineage, names, shapes, metrics --
"$PY" - "$D" <<'EOF' || fail "checkpoint contents"
import csv, glob, hashlib, json, math, os, re, sys
import h5py
import numpy as np
D = sys.argv[1]
L, H, C, T = 1, 2, 16, 48

def sha(p):
    return hashlib.sha256(open(p, "rb").read()).hexdigest()

def params(V):
    out = {"transformer.wte.weight": (V, C), "transformer.wpe.weight": (T, C),
           "transformer.ln_f.weight": (C,), "transformer.ln_f.bias": (C,)}
    for i in range(L):
        p = f"transformer.h.{i}."
        out.update({p + "ln_1.weight": (C,), p + "ln_1.bias": (C,),
                    p + "attn.c_attn.weight": (3 * C, C), p + "attn.c_attn.bias": (3 * C,),
                    p + "attn.c_proj.weight": (C, C), p + "attn.c_proj.bias": (C,),
                    p + "ln_2.weight": (C,), p + "ln_2.bias": (C,),
                    p + "mlp.c_fc.weight": (4 * C, C), p + "mlp.c_fc.bias": (4 * C,),
                    p + "mlp.c_proj.weight": (C, 4 * C), p + "mlp.c_proj.bias": (C,)})
    return out

HEAD = {"value.weight": (C,), "value.bias": (1,)}

def check_model(f, prefix, head, V, t_want, where):
    g = f[prefix + "model"]
    assert {k: int(g.attrs[k]) for k in ("n_layer", "n_head", "n_embd", "block_size", "vocab_size")} == \
        dict(n_layer=L, n_head=H, n_embd=C, block_size=T, vocab_size=V), where
    want = params(V)
    got = {k: g[k].shape for k in g}
    assert got == want, (where, set(got) ^ set(want))
    assert all(g[k].dtype == np.float32 for k in g)
    assert all(np.isfinite(g[k][()]).all() for k in g), where
    assert (prefix + "heads" in f) == head, (where, "heads")
    if head:
        assert {k: f[prefix + "heads"][k].shape for k in f[prefix + "heads"]} == HEAD, where
    o = f[prefix + "optimizer"]
    full = dict(want, **(HEAD if head else {}))
    for mv in ("m", "v"):
        assert {k: o[mv][k].shape for k in o[mv]} == full, (where, mv)
    assert (o["v"]["transformer.wte.weight"][()] >= 0).all()
    assert int(o.attrs["t"]) == t_want, (where, int(o.attrs["t"]), t_want)
    for k in ("lr", "beta1", "beta2", "eps", "weight_decay"):
        assert k in o.attrs, (where, k)

def metrics(f, where):
    m = f["metrics"]
    n = {k: m[k].shape for k in m}
    assert len(set(n.values())) == 1 and len(next(iter(n.values()))) == 1, (where, n)
    return {k: m[k][()] for k in m}

def same_as_csv(mt, path):
    rows = list(csv.DictReader(open(path)))
    assert set(rows[0]) == set(mt), (path, set(rows[0]) ^ set(mt))
    for k, col in mt.items():
        assert len(rows) == len(col), (path, k)
        for r, v in zip(rows, col):
            if r[k] == "":
                assert math.isnan(v), (path, k, v)
            else:  # %.9g in the CSV
                assert abs(float(r[k]) - v) <= 1e-8 * abs(v), (path, k, r[k], v)

updates = {"pretrain": 1, "sft": 1, "reward": 1, "ppo": 2}   # ppo: minibatches x epochs
n_files = 0
for run, stage in (("pretrain", "pretrain"), ("sft", "sft"), ("reward", "reward"),
                   ("ppo", "ppo"), ("ppo_dump", "ppo")):
    files = sorted(glob.glob(f"{D}/{run}/step_*.h5"))
    assert [os.path.basename(p) for p in files] == ["step_000002.h5", "step_000004.h5"], files
    assert os.readlink(f"{D}/{run}/latest.h5") == "step_000004.h5"
    for p in files:
        n_files += 1
        f = h5py.File(p, "r")
        step = int(p[-9:-3])
        a = f.attrs
        assert a["format"] == "rlhf.c" and a["format_version"] == 1, p
        assert a["stage"] == stage and a["step"] == step, (p, a["stage"], a["step"])
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", a["created"]), a["created"]
        cfg = json.loads(a["config"])
        assert cfg["checkpoint"]["dir"] == f"{D}/{run}" and cfg["model"]["n_layer"] == L, p
        tk = f["tokenizer"].attrs
        V = int(tk["vocab_size"])
        check_model(f, "", stage == "reward", V, step * updates[stage], p)
        if stage == "ppo":
            check_model(f, "critic/", True, V, step * updates[stage], p + " critic")
            assert f["state/kl_coef"].shape == (1,) and f["state/reward_norm"].shape == (2,)
        assert f["state/data"].shape == (5,) and f["state/threads"][0] == 1
        mt = metrics(f, p)
        steps = mt["step"]
        assert steps[-1] == step and (np.diff(steps) > 0).all(), (p, steps)
        assert "loss" in mt or "policy_loss" in mt
        csv_path = f"{D}/{run}/metrics.csv"
        if step == 4:
            same_as_csv(mt, csv_path)
        else:  # an earlier checkpoint holds the CSV's first rows
            rows = [r for r in csv.DictReader(open(csv_path)) if float(r["step"]) <= step]
            assert len(rows) == len(steps), p
        # lineage: parent = the starting checkpoint's path and its sha256
        parent = a["parent"]
        want = {"pretrain": None, "sft": "pretrain", "reward": "sft", "ppo": "sft"}[stage]
        if want is None:
            assert parent == "", (p, parent)
        else:
            path, hexd = parent.rsplit(" sha256:", 1)
            # the init path as given (DIR/latest.h5) or the step file it names
            assert os.path.realpath(path) == os.path.realpath(f"{D}/{want}/latest.h5"), (p, parent)
            assert hexd == sha(path), (p, "parent sha256 does not match the file")
# the chains back to the root
for run, chain in (("ppo", ["ppo", "sft", "pretrain"]), ("reward", ["reward", "sft", "pretrain"])):
    p, got = f"{D}/{run}/latest.h5", []
    while p:
        f = h5py.File(p, "r")
        got.append(f.attrs["stage"])
        p = f.attrs["parent"].rsplit(" sha256:", 1)[0] if f.attrs["parent"] else ""
    assert got == chain, (run, got)
assert n_files == 10
EOF

# --- eval and inspect on every stage's checkpoint ------------------------------------
for stage in pretrain sft reward ppo; do
    run "$R" eval "$D/$stage/latest.h5" "$CFG"
    grep -q "^RESULT stage=$stage " "$D/out" || fail "eval $stage: $(grep RESULT "$D/out")"
    run "$R" inspect "$D/$stage/latest.h5"
    grep -q "^  stage $stage, step 4, created " "$D/out" || fail "inspect $stage header"
done
run "$R" eval "$D/pretrain/latest.h5" "$CFG"
"$PY" -c "import sys; sys.exit(0 if 0 < float(sys.argv[1]) < 10 else 1)" "$(result_key val_loss)" ||
    fail "pretrain val_loss out of range: $(grep RESULT "$D/out")"
echo "cli_pipeline: ok"

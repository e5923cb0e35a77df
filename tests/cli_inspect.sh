#!/usr/bin/env bash
# rlhf inspect on every kind of file a pipeline writes: stage and lineage
# (sha256 re-checked, a changed or missing parent reported), config, the
# parameter table (one row per named tensor, statistics checked against
# h5py), tokenizer, metrics and state; and one-line errors for bad files.
cd "$(dirname "$0")/.."
source tests/cli_pipeline.bash
pipeline_build

# --- pretrain: lineage root, config, table, statistics ---------------------------
run "$R" inspect "$D/pretrain/latest.h5"
grep -q '^  stage pretrain, step 4, created ' "$D/out" || fail "pretrain header"
grep -q 'format rlhf.c, format_version 1' "$D/out" || fail "format line"
grep -q "^  attributes sealed: their sha256 checksum verified$" "$D/out" || fail "attributes line"
grep -q 'no parent recorded' "$D/out" || fail "pretrain has no parent"
grep -Eq '^    n_layer = 1 +; default 4$' "$D/out" || fail "config shows n_layer = 1 with its default"
grep -q '^  \[checkpoint\]$' "$D/out" || fail "config sections"
# 1 layer: wte, wpe, 12 block tensors, ln_f weight and bias; no value head
rows=$(grep -c '^  transformer\.' "$D/out")
[ "$rows" -eq 16 ] || fail "expected 16 tensor rows, got $rows"
grep -q '^  heads/' "$D/out" && fail "pretrain model has no value head"
grep -q 'value head: no' "$D/out" || fail "value head: no"
grep -Eq '^  transformer\.h\.0\.attn\.c_attn\.weight +\[48, 16\] +768 ' "$D/out" || fail "c_attn row"
grep -q 'optimizer  AdamW t=4' "$D/out" || fail "optimizer step count"
grep -q 'tokenizer  char' "$D/out" || fail "tokenizer type"
grep -Eq '^metrics +[0-9]+ columns, 4 rows' "$D/out" || fail "metrics rows"
grep -Eq '^  val_loss +[0-9.]+$' "$D/out" || fail "last val_loss"
grep -q 'data cursor' "$D/out" || fail "data cursor state"
# mean / std / max|x| of two tensors against h5py (printed with 4 digits)
for name in transformer.wte.weight transformer.h.0.mlp.c_fc.weight; do
    line=$(grep -E "^  $name " "$D/out")
    "$PY" - "$D/pretrain/latest.h5" "$name" "$line" <<'EOF' || fail "statistics of $name: $line"
import sys, h5py, numpy as np
x = h5py.File(sys.argv[1], "r")["model/" + sys.argv[2]][...].astype(np.float64)
mean, std, mx = (float(v) for v in sys.argv[3].split()[-3:])
want = (x.mean(), x.std(), np.abs(x).max())
# 4 significant digits printed: 1e-3 relative, and 1e-6 absolute for a mean near 0
ok = all(abs(a - b) <= 1e-3 * abs(b) + 1e-6 for a, b in zip((mean, std, mx), want))
sys.exit(0 if ok else 1)
EOF
done

# --- ppo: critic with its head, lineage ppo <- sft <- pretrain, state ---------
run "$R" inspect "$D/ppo/latest.h5"
grep -Eq '^     ppo +step 4 ' "$D/out" || fail "ppo lineage head"
grep -Eq "^  <- sft +step 4 +$(realpath "$D")/sft/step_0*4.h5  sha256 matches" "$D/out" || fail "sft ancestor"
grep -Eq "^  <- pretrain +step 4 +$(realpath "$D")/pretrain/step_0*4.h5  sha256 matches" "$D/out" ||
    fail "pretrain ancestor"
grep -q '^critic     L=1 H=2 C=16 T=48 V=[0-9]*, value head: yes' "$D/out" || fail "critic section"
[ "$(grep -c '^  heads/value\.' "$D/out")" -eq 2 ] || fail "critic value head rows"
grep -q '^critic optimizer AdamW' "$D/out" || fail "critic optimizer"
grep -Eq '^  kl_coef +0\.05$' "$D/out" || fail "kl_coef state"
grep -q '^  reward_norm     mean ' "$D/out" || fail "reward_norm state"

# --- reward: value head on the main model ------------------------------------------
run "$R" inspect "$D/reward/latest.h5"
grep -q '^model      L=1 .*value head: yes' "$D/out" || fail "reward model head"
grep -q '^  reward_norm     mean ' "$D/out" || fail "reward_norm"

# --- tokenizer file: no model; a bpe tokenizer shows merges ---------------------
run "$R" inspect "$D/data/tokenizer.h5"
grep -q '^  stage tokenizer, step 0' "$D/out" || fail "tokenizer stage"
grep -q '^model      none' "$D/out" || fail "tokenizer file has no model"
grep -q "^  characters: '" "$D/out" || fail "char vocabulary shown"
"$R" prepare "$CFG" --data.dir="$D/bpe" --data.tokenizer=bpe --data.vocab_size=300 >/dev/null 2>&1 ||
    fail "bpe prepare"
run "$R" inspect "$D/bpe/tokenizer.h5"
grep -q 'tokenizer  bpe, 300 tokens: 256 bytes + 40 merges + 4 specials' "$D/out" || fail "bpe line"
grep -Eq "^ +0: '.*' \+ '.*' -> '.*'$" "$D/out" || fail "first merge decoded"

# --- lineage: a parent that changed, then one that is gone ------------------------
# (an edited attribute is caught by the checksum; without it, the file reads as
# one written before checksums, whose sha256 differs)
"$PY" -c "import h5py, sys; f = h5py.File(sys.argv[1], 'r+'); f.attrs['created'] = '2000-01-01T00:00:00Z'" \
    "$D/sft/latest.h5" || fail "h5py edit"
run "$R" inspect "$D/ppo/latest.h5"
grep -Eq "^  <- .*sft.*not a readable checkpoint: .*do not match their checksum" "$D/out" ||
    fail "edited parent not reported"
"$PY" -c "import h5py, sys; f = h5py.File(sys.argv[1], 'r+'); del f.attrs['checksum']" \
    "$D/sft/latest.h5" || fail "h5py edit"
run "$R" inspect "$D/ppo/latest.h5"
grep -Eq "^  <- sft .*sha256 DIFFERS" "$D/out" || fail "changed parent not reported"
rm "$D/pretrain/"step_*.h5
run "$R" inspect "$D/reward/latest.h5"
grep -Eq "<- $(realpath "$D")/pretrain/step_0*4.h5  \(missing" "$D/out" || fail "missing ancestor not reported"

# --- optimizer state: absent is "none stored", damaged is an error -----------------
"$PY" - "$D/sft/latest.h5" "$D/noopt.h5" "$D/badopt.h5" <<'EOF' || fail "h5py optimizer edit"
import h5py, shutil, sys
shutil.copy(sys.argv[1], sys.argv[2])
shutil.copy(sys.argv[1], sys.argv[3])
del h5py.File(sys.argv[2], "r+")["optimizer"]
del h5py.File(sys.argv[3], "r+")["optimizer/v"]
EOF
run "$R" inspect "$D/noopt.h5"
grep -q '^optimizer  none stored' "$D/out" || fail "absent optimizer: $(grep optimizer "$D/out")"
run_fails "$R" inspect "$D/badopt.h5"

# --- bad input: one line, a hint, exit 1 ---------------------------------------------
run_fails "$R" inspect "$D/nope.h5"
run_fails "$R" inspect "$D/corpus.txt"
run_fails "$R" inspect "$D/data/val.h5"          # HDF5, but a token shard
run_fails "$R" inspect "$D"                      # a directory
head -c 20000 "$D/reward/latest.h5" >"$D/short.h5"
run_fails "$R" inspect "$D/short.h5"
# flip one byte inside the first parameter tensor's data: the checksum must catch it
"$PY" - "$D/reward/latest.h5" "$D/flip.h5" <<'EOF' || fail "flip"
import h5py, shutil, sys
shutil.copy(sys.argv[1], sys.argv[2])
off = h5py.File(sys.argv[2], "r")["model/transformer.wte.weight"].id.get_chunk_info(0).byte_offset
with open(sys.argv[2], "r+b") as f:
    f.seek(off + 10); b = f.read(1); f.seek(off + 10); f.write(bytes([b[0] ^ 0xFF]))
EOF
run_fails "$R" inspect "$D/flip.h5"
grep -q 'wte' "$D/err" || fail "the damaged tensor is named: $(cat "$D/err")"
run_fails "$R" inspect
run_fails "$R" inspect "$D/reward/latest.h5" extra
run_fails "$R" inspect --bogus "$D/reward/latest.h5"
echo "cli_inspect: ok"

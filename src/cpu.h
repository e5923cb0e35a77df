// What the CPU can do (cpuid, with the operating system's consent) and
// which OpenBLAS kernels run on it. Debian's OpenBLAS is built for every
// x86 core (DYNAMIC_ARCH) and picks one by CPU model number; on a model it
// does not know it falls back to old SSE3 kernels (Prescott), 5x slower on
// an AVX-512 CPU. cpu_choose_blas_core picks by features instead, unless
// the user set OPENBLAS_CORETYPE. No numerics here.
#ifndef RLHF_CPU_H
#define RLHF_CPU_H

#include <stddef.h>
#include <stdio.h>

// Each flag is 1 only when both the CPU has the instructions and the
// operating system saves their registers (XCR0); AMX additionally needs the
// per-process permission that cpu_amx_enable asks for.
typedef struct {
    int avx2, fma;
    int avx512f, avx512bw, avx512vl;
    int avx512_bf16;  // VDPBF16PS
    int amx_tile, amx_bf16;
} CpuFeatures;

void cpu_features(CpuFeatures *f);

// "avx2 fma avx512f ..." (the flags that are set, in struct order), or
// "none"; writes at most n bytes into buf and returns buf.
const char *cpu_features_string(const CpuFeatures *f, char *buf, size_t n);

// The CPU's model name from /proc/cpuinfo, or "unknown x86 CPU" (static).
const char *cpu_model_name(void);

// Asks Linux for the AMX tile state (arch_prctl ARCH_REQ_XCOMP_PERM).
// Returns 1 when AMX can be used by this process, 0 otherwise.
int cpu_amx_enable(void);

// The decision, as a pure function: the OpenBLAS core to set, or NULL to
// leave things as they are. user_core is OPENBLAS_CORETYPE as the user set
// it (NULL when unset): any value is kept. Otherwise, when `picked` (what
// openblas_get_corename() says) is known to be weaker than the features
// allow: AVX-512 F+BW+VL -> "Cooperlake" with AVX512_BF16, else "SkylakeX";
// AVX2+FMA -> "Haswell". A core name it does not know is left alone.
const char *cpu_blas_core_choice(const CpuFeatures *f, const char *picked,
                                 const char *user_core);

// Called first in main, before any BLAS work: when cpu_blas_core_choice
// says so, sets OPENBLAS_CORETYPE and re-executes the program once
// (/proc/self/exe, same argv), OpenBLAS choosing its kernels as it loads.
// RLHF_BLAS_REEXEC marks the second run (it holds OpenBLAS's own pick) and
// is removed from the environment there; it never re-executes twice.
void cpu_choose_blas_core(char **argv);

// The OpenBLAS core in use ("Haswell", ...) and where it came from:
// "set by the user (OPENBLAS_CORETYPE)", "set by rlhf for this CPU
// (OpenBLAS picked Prescott)" or "OpenBLAS's pick".
const char *cpu_blas_core(void);
const char *cpu_blas_core_origin(void);

// Lines "<prefix>cpu: ...", "<prefix>blas: ..." describing the machine:
// model, threads, features, OpenBLAS core and its origin.
void cpu_print_report(FILE *out, const char *prefix);

#endif

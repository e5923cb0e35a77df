// bf16 matrix products for mixed-precision training: operands rounded to
// bfloat16, products accumulated and written in fp32, through oneDNN's
// matmul primitive (AMX, AVX512_BF16, or oneDNN's AVX-512 emulation). One
// primitive per shape, created on first use and kept. The only file that
// includes oneDNN's headers is bf16.c.
//
// Threads: Debian's oneDNN runs on OpenMP (libgomp, as rlhf.c does) and
// uses omp_get_max_threads() threads; the thread count is part of a cached
// primitive's key. Same shape, operands and thread count give the same bits.
// Not thread-safe: call from outside OpenMP parallel regions (asserted).
#ifndef RLHF_BF16_H
#define RLHF_BF16_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef uint16_t bf16;

// fp32 -> bf16, round to nearest even; a NaN stays a (quiet) NaN.
static inline bf16 bf16_from_float(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    return (bf16)(((u & 0x7fffffffu) > 0x7f800000u) ? ((u >> 16) | 0x40u) : r);
}

static inline float bf16_to_float(bf16 h) {
    uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

// dst (n) = bf16 of src (n), OpenMP-parallel when large.
void bf16_round(bf16 *dst, const float *src, size_t n);

// dst (cols,rows) = bf16 of the transpose of src (rows,cols), row-major.
void bf16_round_transposed(bf16 *dst, const float *src, int rows, int cols);

// 1 when oneDNN has a bf16 matmul for this CPU that is not its reference
// (scalar) code; probed once.
int bf16_available(void);

// What runs bf16 products here: "oneDNN 2.6.3 brg:avx512_core_bf16", or
// "unavailable: <why>" (static string).
const char *bf16_backend(void);

// Row-major C (M,N) = beta * C + op(A) op(B), beta 0 or 1, where op(A) is
// (M,K): A itself with row stride lda, or (trans_a) the transpose of A
// stored (K,M) with row stride lda; likewise op(B) (K,N) with ldb. C is
// fp32 with row stride ldc. Requires bf16_available().
void bf16_gemm(int trans_a, int trans_b, int M, int N, int K, const bf16 *A, int lda,
               const bf16 *B, int ldb, float beta, float *C, int ldc);

// Releases every cached primitive (tests; the process exit does it too).
void bf16_release(void);

#endif

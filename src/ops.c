// Forward and backward passes of each GPT layer; see ops.h for contracts.
// Reductions run in a fixed order that does not depend on OpenMP scheduling,
// so a given thread count always gives the same bits.
#include "ops.h"

#include <cblas.h>
#include <math.h>
#include <string.h>
#include <stdlib.h>

#include "bf16.h"
#include "common.h"

#ifdef _OPENMP
#include <omp.h>
#endif


void thread_range(int n, int *lo, int *hi) {
    int nth = 1, ith = 0;
#ifdef _OPENMP
    nth = omp_get_num_threads();
    ith = omp_get_thread_num();
#endif
    *lo = (int)((long)n * ith / nth);
    *hi = (int)((long)n * (ith + 1) / nth);
}

void encoder_forward(float *out, const int *inp, const int *pos0, const float *wte,
                     const float *wpe, int B, int T, int C) {
#pragma omp parallel for collapse(2) schedule(static) if (omp_worth((long)B * T * C))
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            float *o = out + ((size_t)b * T + t) * C;
            const float *we = wte + (size_t)inp[b * T + t] * C;
            const float *pe = wpe + (size_t)((pos0 ? pos0[b] : 0) + t) * C;
#pragma omp simd
            for (int i = 0; i < C; i++) o[i] = we[i] + pe[i];
        }
    }
}

void encoder_backward(float *dwte, float *dwpe, const float *dout, const int *inp,
                      const int *pos0, int B, int T, int C) {
    // Scatter-add into rows chosen by token id: threads split the channels,
    // never the rows, so no two threads touch one float and order is fixed.
#pragma omp parallel if (omp_worth((long)B * T * C))
    {
        int c0, c1;
        thread_range(C, &c0, &c1);
        for (int b = 0; b < B; b++) {
            for (int t = 0; t < T; t++) {
                const float *d = dout + ((size_t)b * T + t) * C;
                float *we = dwte + (size_t)inp[b * T + t] * C;
                float *pe = dwpe + (size_t)((pos0 ? pos0[b] : 0) + t) * C;
#pragma omp simd
                for (int i = c0; i < c1; i++) {
                    we[i] += d[i];
                    pe[i] += d[i];
                }
            }
        }
    }
}

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                       const float *weight, const float *bias, int N, int C) {
#pragma omp parallel for schedule(static) if (omp_worth((long)N * C))
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int i = 0; i < C; i++) s += x[i];
        float m = s / C;
        float v = 0.0f;
#pragma omp simd reduction(+ : v)
        for (int i = 0; i < C; i++) v += (x[i] - m) * (x[i] - m);
        float r = 1.0f / sqrtf(v / C + 1e-5f);
        float *o = out + (size_t)n * C;
#pragma omp simd
        for (int i = 0; i < C; i++) o[i] = (x[i] - m) * r * weight[i] + bias[i];
        mean[n] = m;
        rstd[n] = r;
    }
}

void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const float *mean,
                        const float *rstd, int N, int C) {
    // pass 1, parallel over rows: the input gradient
#pragma omp parallel for schedule(static) if (omp_worth((long)N * C))
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        const float *d = dout + (size_t)n * C;
        float m = mean[n], r = rstd[n];
        float sum_dn = 0.0f, sum_dn_norm = 0.0f;
#pragma omp simd reduction(+ : sum_dn, sum_dn_norm)
        for (int i = 0; i < C; i++) {
            float dn = d[i] * weight[i];
            sum_dn += dn;
            sum_dn_norm += dn * (x[i] - m) * r;
        }
        sum_dn /= C;
        sum_dn_norm /= C;
        float *di = dinp + (size_t)n * C;
#pragma omp simd
        for (int i = 0; i < C; i++) {
            float norm = (x[i] - m) * r;
            di[i] += (d[i] * weight[i] - sum_dn - norm * sum_dn_norm) * r;
        }
    }
    // pass 2, parallel over channels: weight and bias gradients, each a sum
    // over rows in row order
#pragma omp parallel if (omp_worth((long)N * C))
    {
        int c0, c1;
        thread_range(C, &c0, &c1);
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * C;
            const float *d = dout + (size_t)n * C;
            float m = mean[n], r = rstd[n];
#pragma omp simd
            for (int i = c0; i < c1; i++) {
                dweight[i] += d[i] * (x[i] - m) * r;
                dbias[i] += d[i];
            }
        }
    }
}

// out (N,OC) = add + bias (either may be NULL); returns the beta with which
// a product must then be added (0 when there was nothing to fill in).
static float matmul_prefill(float *out, const float *add, const float *bias, int N, int OC) {
    if (!add && !bias) return 0.0f;
#pragma omp parallel for schedule(static) if (omp_worth((long)N * OC))
    for (int n = 0; n < N; n++) {
        float *o = out + (size_t)n * OC;
        const float *a = add ? add + (size_t)n * OC : NULL;
        if (a && bias) {
#pragma omp simd
            for (int i = 0; i < OC; i++) o[i] = a[i] + bias[i];
        } else if (a) {
            if (a != o) memcpy(o, a, (size_t)OC * sizeof(float));
        } else {
            memcpy(o, bias, (size_t)OC * sizeof(float));
        }
    }
    return 1.0f;
}

void matmul_forward(float *out, const float *add, const float *inp, const float *weight,
                    const float *bias, int N, int C, int OC) {
    // Fill out with add + bias, then let sgemm accumulate onto it.
    float beta = matmul_prefill(out, add, bias, N, OC);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, weight, C,
                beta, out, OC);
}

// Growable bf16 scratch for the rounded activations of one call (two
// slots: backward needs dout and inp at once). Not thread-safe, like
// bf16_gemm.
static bf16 *bf16_scratch(int slot, size_t n) {
    static bf16 *buf[2];
    static size_t cap[2];
    if (n > cap[slot]) {
        free(buf[slot]);
        buf[slot] = alignedCheck(n * sizeof(bf16));
        cap[slot] = n;
    }
    return buf[slot];
}

void matmul_forward_bf16(float *out, const float *add, const float *inp, const uint16_t *weight,
                         const float *bias, int N, int C, int OC) {
    float beta = matmul_prefill(out, add, bias, N, OC);
    bf16 *x = bf16_scratch(0, (size_t)N * C);
    bf16_round(x, inp, (size_t)N * C);
    bf16_gemm(0, 1, N, OC, C, x, C, weight, C, beta, out, OC);
}

// dbias (OC) += column sums of dout (N,OC); threads split the columns.
static void column_sums_add(float *dbias, const float *dout, int N, int OC) {
#pragma omp parallel if (omp_worth((long)N * OC))
    {
        int c0, c1;
        thread_range(OC, &c0, &c1);
        for (int n = 0; n < N; n++) {
            const float *d = dout + (size_t)n * OC;
#pragma omp simd
            for (int i = c0; i < c1; i++) dbias[i] += d[i];
        }
    }
}

void matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                     const float *inp, const float *weight, int N, int C, int OC) {
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC,
                    weight, C, 0.0f, dinp, C);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, inp, C,
                1.0f, dweight, C);
    if (dbias) column_sums_add(dbias, dout, N, OC);
}

void matmul_backward_bf16(float *dinp, float *dweight, float *dbias, const float *dout,
                          const float *inp, const uint16_t *weight, int N, int C, int OC) {
    matmul_backward_bf16_blocks(dinp, dweight, dbias, dout, inp, weight, N, C, OC,
                                BF16_DOUT_BLOCK);
}

void matmul_backward_bf16_blocks(float *dinp, float *dweight, float *dbias, const float *dout,
                                 const float *inp, const uint16_t *weight, int N, int C, int OC,
                                 size_t block) {
    // dout is rounded in blocks of rows of at most `block` elements: the
    // lm_head's dout (N,V) would otherwise need a bf16 copy of half the
    // logits' size (400 MB at GPT-2's V, B=4, T=1024). Products this small
    // (every layer of the models trained so far) are one block, one call.
    const int rows = (size_t)N * OC <= block ? N
                   : (int)(block / (size_t)OC > 0 ? block / (size_t)OC : 1);
    bf16 *d = bf16_scratch(0, (size_t)rows * OC), *x = bf16_scratch(1, (size_t)N * C);
    bf16_round(x, inp, (size_t)N * C);
    for (int r0 = 0; r0 < N; r0 += rows) {
        const int R = N - r0 < rows ? N - r0 : rows;
        bf16_round(d, dout + (size_t)r0 * OC, (size_t)R * OC);
        if (dinp) bf16_gemm(0, 0, R, C, OC, d, OC, weight, C, 0.0f, dinp + (size_t)r0 * C, C);
        bf16_gemm(1, 0, OC, C, R, d, OC, x + (size_t)r0 * C, C, 1.0f, dweight, C);
    }
    if (dbias) column_sums_add(dbias, dout, N, OC);
}

// Softmax of row[0..n) in place, the rest of the row [n, T) set to zero.
static inline void causal_softmax_row(float *row, int n, int T) {
    float mx = -INFINITY;
    for (int j = 0; j < n; j++) mx = row[j] > mx ? row[j] : mx;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j < n; j++) {
        float e = fast_expf(row[j] - mx);
        row[j] = e;
        sum += e;
    }
    float inv = 1.0f / sum;
#pragma omp simd
    for (int j = 0; j < n; j++) row[j] *= inv;
    for (int j = n; j < T; j++) row[j] = 0.0f;
}

// Causal attention skips the blocks above the diagonal: rows are taken in
// blocks of ATT_BLOCK, and row block [r0, r1) needs keys [0, r1) only. At
// T = 256 this does 5/8 of the full T x T work (what MFU counts).
#define ATT_BLOCK 64

void attention_forward(float *out, float *att, const float *qkv, int B, int T, int C,
                       int NH) {
    int hs = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    // One (batch, head) pair per task; sgemm runs single-threaded inside an
    // OpenMP region, so the pairs spread over the threads.
#pragma omp parallel for collapse(2) schedule(static) if (omp_worth((long)B * NH * T * T))
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            const float *q = qkv + (size_t)b * T * C3 + h * hs;
            const float *k = q + C;
            const float *v = q + 2 * C;
            float *a = att + ((size_t)b * NH + h) * T * T;
            float *o = out + (size_t)b * T * C + h * hs;
            for (int r0 = 0; r0 < T; r0 += ATT_BLOCK) {
                int r1 = r0 + ATT_BLOCK < T ? r0 + ATT_BLOCK : T, M = r1 - r0;
                float *ar = a + (size_t)r0 * T;
                // scores of rows [r0, r1) against keys [0, r1): scale * q @ k^T
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, r1, hs, scale,
                            q + (size_t)r0 * C3, C3, k, C3, 0.0f, ar, T);
                for (int t = r0; t < r1; t++) causal_softmax_row(a + (size_t)t * T, t + 1, T);
                // o[r0:r1] (M,hs) = a[r0:r1, 0:r1] @ v[0:r1]
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, hs, r1, 1.0f, ar, T, v,
                            C3, 0.0f, o + (size_t)r0 * C, C);
            }
        }
    }
}

void attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                        const float *att, int B, int T, int C, int NH) {
    int hs = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel for collapse(2) schedule(static) if (omp_worth((long)B * NH * T * T))
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            int ith = 0;
#ifdef _OPENMP
            ith = omp_get_thread_num();
#endif
            float *ds = scratch + (size_t)ith * T * T;  // (T,T)
            const float *q = qkv + (size_t)b * T * C3 + h * hs;
            const float *k = q + C;
            const float *v = q + 2 * C;
            float *dq = dqkv + (size_t)b * T * C3 + h * hs;
            float *dk = dq + C;
            float *dv = dq + 2 * C;
            const float *a = att + ((size_t)b * NH + h) * T * T;
            const float *dy = dout + (size_t)b * T * C + h * hs;
            for (int r0 = 0; r0 < T; r0 += ATT_BLOCK) {
                int r1 = r0 + ATT_BLOCK < T ? r0 + ATT_BLOCK : T, M = r1 - r0;
                // da[r0:r1, 0:r1] = dy @ v^T, then through the softmax:
                // ds = a * (da - sum_j a * da), scaled as the scores were
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, r1, hs, 1.0f,
                            dy + (size_t)r0 * C, C, v, C3, 0.0f, ds + (size_t)r0 * T, T);
                for (int t = r0; t < r1; t++) {
                    float *r = ds + (size_t)t * T;
                    const float *ar = a + (size_t)t * T;
                    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
                    for (int j = 0; j <= t; j++) dot += ar[j] * r[j];
#pragma omp simd
                    for (int j = 0; j <= t; j++) r[j] = scale * ar[j] * (r[j] - dot);
                    for (int j = t + 1; j < T; j++) r[j] = 0.0f;
                }
                // dq[r0:r1] = ds[r0:r1, 0:r1] @ k[0:r1]
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, hs, r1, 1.0f,
                            ds + (size_t)r0 * T, T, k, C3, 0.0f, dq + (size_t)r0 * C3, C3);
            }
            // keys and values [c0, c1) are seen by queries [c0, T) only:
            // dv = a^T @ dy and dk = ds^T @ q over those rows
            for (int c0 = 0; c0 < T; c0 += ATT_BLOCK) {
                int c1 = c0 + ATT_BLOCK < T ? c0 + ATT_BLOCK : T, M = c1 - c0, K = T - c0;
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, M, hs, K, 1.0f,
                            a + (size_t)c0 * T + c0, T, dy + (size_t)c0 * C, C, 0.0f,
                            dv + (size_t)c0 * C3, C3);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, M, hs, K, 1.0f,
                            ds + (size_t)c0 * T + c0, T, q + (size_t)c0 * C3, C3, 0.0f,
                            dk + (size_t)c0 * C3, C3);
            }
        }
    }
}

// gelu(x) = 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3).
// tanh(u) = 1 - 2 / (1 + exp(2u)) keeps the loop free of libm calls.
#define GELU_K 0.7978845608028654f
#define GELU_A 0.044715f

static inline float tanh_via_exp(float u) { return 1.0f - 2.0f / (1.0f + fast_expf(2.0f * u)); }

void gelu_forward(float *out, const float *inp, long N) {
#pragma omp parallel for simd schedule(static) if (parallel : omp_worth(N))
    for (long i = 0; i < N; i++) {
        float x = inp[i];
        float th = tanh_via_exp(GELU_K * (x + GELU_A * x * x * x));
        out[i] = 0.5f * x * (1.0f + th);
    }
}

void gelu_backward(float *dinp, const float *inp, const float *dout, long N) {
#pragma omp parallel for simd schedule(static) if (parallel : omp_worth(N))
    for (long i = 0; i < N; i++) {
        float x = inp[i];
        float th = tanh_via_exp(GELU_K * (x + GELU_A * x * x * x));
        float sech2 = 1.0f - th * th;
        float g = 0.5f * (1.0f + th) + 0.5f * x * sech2 * GELU_K * (1.0f + 3.0f * GELU_A * x * x);
        dinp[i] = dout[i] * g;
    }
}

// log(sum(exp(row))) with the max subtracted, for one row of V logits
static inline float logsumexp_row(const float *row, int V) {
    float mx = -INFINITY;
    for (int j = 0; j < V; j++) mx = row[j] > mx ? row[j] : mx;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j < V; j++) sum += fast_expf(row[j] - mx);
    return mx + logf(sum);
}

void crossentropy_forward(float *losses, const float *logits, const int *targets, int N,
                          int V) {
#pragma omp parallel for schedule(static) if (omp_worth((long)N * V))
    for (int n = 0; n < N; n++) {
        const float *row = logits + (size_t)n * V;
        losses[n] = targets[n] < 0 ? 0.0f : logsumexp_row(row, V) - row[targets[n]];
    }
}

void crossentropy_backward(float *dlogits, const float *logits, const int *targets,
                           const float *dlosses, int N, int V) {
#pragma omp parallel for schedule(static) if (omp_worth((long)N * V))
    for (int n = 0; n < N; n++) {
        const float *row = logits + (size_t)n * V;
        float *d = dlogits + (size_t)n * V;
        float dl = targets[n] < 0 ? 0.0f : dlosses[n];
        if (dl == 0.0f) {
            memset(d, 0, (size_t)V * sizeof(float));
            continue;
        }
        float lse = logsumexp_row(row, V);
#pragma omp simd
        for (int j = 0; j < V; j++) d[j] = dl * fast_expf(row[j] - lse);
        d[targets[n]] -= dl;
    }
}

void crossentropy_fused(float *losses, float *logits, const int *targets, const float *dlosses,
                        int N, int V) {
#pragma omp parallel for schedule(static) if (omp_worth((long)N * V))
    for (int n = 0; n < N; n++) {
        float *row = logits + (size_t)n * V;
        const int t = targets[n];
        if (t < 0) {
            losses[n] = 0.0f;
            memset(row, 0, (size_t)V * sizeof(float));
            continue;
        }
        const float lse = logsumexp_row(row, V), dl = dlosses[n];
        losses[n] = lse - row[t];  // read before the row becomes its gradient
        if (dl == 0.0f) {
            memset(row, 0, (size_t)V * sizeof(float));
            continue;
        }
#pragma omp simd
        for (int j = 0; j < V; j++) row[j] = dl * fast_expf(row[j] - lse);
        row[t] -= dl;
    }
}

void value_forward(float *out, const float *inp, const float *weight, const float *bias,
                   int N, int C) {
#pragma omp parallel for schedule(static) if (omp_worth((long)N * C))
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int i = 0; i < C; i++) s += x[i] * weight[i];
        out[n] = s + bias[0];
    }
}

void value_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                    const float *inp, const float *weight, int N, int C) {
#pragma omp parallel for schedule(static) if (omp_worth((long)N * C))
    for (int n = 0; n < N; n++) {
        float *di = dinp + (size_t)n * C;
        float d = dout[n];
#pragma omp simd
        for (int i = 0; i < C; i++) di[i] += d * weight[i];
    }
    // weight and bias sums in row order (cheap: N*C)
    float db = 0.0f;
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float d = dout[n];
        db += d;
        if (d == 0.0f) continue;
#pragma omp simd
        for (int i = 0; i < C; i++) dweight[i] += d * x[i];
    }
    dbias[0] += db;
}

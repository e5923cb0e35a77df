// The layers of a GPT, each a forward/backward pair of free functions with
// outputs first. Forward passes cache what their backward needs (said at
// each pair). Matrix products go through OpenBLAS sgemm; everything else is
// an OpenMP loop. N = B*T rows where the op does not care about time.
//
// Gradient convention: parameter gradients (dweight, dbias, dwte, ...) always
// accumulate (+=), the caller zeroes them. Activation gradients are written
// as each function states: "writes" overwrites, "adds" accumulates.
#ifndef RLHF_OPS_H
#define RLHF_OPS_H

#include <stddef.h>
#include <stdint.h>

// out (B,T,C) = wte[inp] + wpe[pos0[b] + t]; pos0 (B) is each row's first
// position, NULL for 0 (the caller keeps pos0[b] + T within wpe)
void encoder_forward(float *out, const int *inp, const int *pos0, const float *wte,
                     const float *wpe, int B, int T, int C);
// dwte (V,C), dwpe (block_size,C) += scatter of dout (B,T,C), rows placed as
// encoder_forward placed them
void encoder_backward(float *dwte, float *dwpe, const float *dout, const int *inp,
                      const int *pos0, int B, int T, int C);

// out (N,C) = (inp - mean) * rstd * weight + bias; caches mean, rstd (N)
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                       const float *weight, const float *bias, int N, int C);
// adds to dinp (N,C); dweight, dbias (C) +=
void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const float *mean,
                        const float *rstd, int N, int C);

// out (N,OC) = add + inp (N,C) @ weight^T + bias; weight is (OC,C) as
// nn.Linear stores it. bias and add (N,OC) may be NULL; add may alias out.
void matmul_forward(float *out, const float *add, const float *inp, const float *weight,
                    const float *bias, int N, int C, int OC);
// writes dinp (N,C) = dout @ weight (skipped when dinp is NULL);
// dweight (OC,C) += dout^T @ inp; dbias (OC) += column sums (when not NULL)
void matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                     const float *inp, const float *weight, int N, int C, int OC);

// The same two in bf16 (bf16.h): weight is a bf16 copy of the (OC,C)
// matrix; inp and dout are rounded to bf16 on each call (into scratch these
// functions own), products accumulate in fp32, bias and add are fp32.
// Call from outside OpenMP parallel regions. Backward rounds dout in blocks
// of whole rows of at most BF16_DOUT_BLOCK elements (dweight then adds one
// product per block, in row order: a result, deterministic, that differs
// in rounding from one product over all rows); below it, one block.
#define BF16_DOUT_BLOCK ((size_t)1 << 24)
void matmul_forward_bf16(float *out, const float *add, const float *inp, const uint16_t *weight,
                         const float *bias, int N, int C, int OC);
void matmul_backward_bf16(float *dinp, float *dweight, float *dbias, const float *dout,
                          const float *inp, const uint16_t *weight, int N, int C, int OC);
// matmul_backward_bf16 with blocks of at most `block` elements of dout (tests
// use small blocks to cover the blocked path).
void matmul_backward_bf16_blocks(float *dinp, float *dweight, float *dbias, const float *dout,
                                 const float *inp, const uint16_t *weight, int N, int C, int OC,
                                 size_t block);

// Causal multi-head self-attention. qkv (B,T,3C) holds q, k, v; head h uses
// channels [h*hs, (h+1)*hs) of each. Writes out (B,T,C) and caches the
// probabilities att (B,NH,T,T), zero above the diagonal.
void attention_forward(float *out, float *att, const float *qkv, int B, int T, int C,
                       int NH);
// writes dqkv (B,T,3C); scratch holds T*T floats per OpenMP thread
void attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                        const float *att, int B, int T, int C, int NH);

// GELU, tanh form (as GPT-2). out (N) = gelu(inp); nothing cached but inp.
void gelu_forward(float *out, const float *inp, long N);
// writes dinp (N) = dout * gelu'(inp); dinp may alias dout
void gelu_backward(float *dinp, const float *inp, const float *dout, long N);

// losses (N) = -log softmax(logits)[target]; rows with target < 0 get 0.
void crossentropy_forward(float *losses, const float *logits, const int *targets, int N,
                          int V);
// writes dlogits (N,V) = dlosses[n] * (softmax(logits[n]) - onehot(target));
// dlosses must not be NULL; rows with target < 0 or dlosses[n] == 0 get
// exactly zero gradient
void crossentropy_backward(float *dlogits, const float *logits, const int *targets,
                           const float *dlosses, int N, int V);
// Both in one pass per row, in place: losses (N) as crossentropy_forward,
// then each row of logits (N,V) overwritten by its gradient as
// crossentropy_backward writes it (the same bits as the two calls, one
// log-sum-exp per row instead of two). The training step's LM head then
// holds one (N,V) buffer, not two.
void crossentropy_fused(float *losses, float *logits, const int *targets, const float *dlosses,
                        int N, int V);

// Scalar head: out (N) = inp (N,C) @ weight (C) + bias[0]
void value_forward(float *out, const float *inp, const float *weight, const float *bias,
                   int N, int C);
// adds dinp (N,C) += dout * weight; dweight += dout @ inp; dbias += sum dout
void value_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                    const float *inp, const float *weight, int N, int C);

// [lo, hi): this thread's even share of n items inside a parallel region
// (all of them outside one). Used where threads split columns so that every
// sum runs over rows in row order, whatever the thread count.
void thread_range(int n, int *lo, int *hi);

// Whether a loop of `work` (roughly floats touched) is worth waking the
// OpenMP threads: below this a parallel region costs more in wake-up and
// barrier than it saves, and on a loaded machine much more. Used in `if`
// clauses, so results never depend on it (no reduction crosses threads).
// On `parallel for simd` the clause must say `if (parallel : ...)`: a bare
// `if` applies to the simd part too and runs small loops scalar.
#define OMP_MIN_WORK 32768L
static inline int omp_worth(long work) { return work >= OMP_MIN_WORK; }

// Vectorisable exp for float, relative error below 2e-7 on [-87, 88];
// saturates outside. Used by softmax and GELU so that OpenMP SIMD loops
// need no libm call.
static inline float fast_expf(float x) {
    // exp(x) = 2^n * exp(r), n = round(x / ln 2), |r| <= ln2 / 2
    const float in = x;
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    x = x == x ? x : 0.0f;  // NaN: compute on 0 (no undefined int conversion) ...
    const float shifter = 12582912.0f;  // 1.5 * 2^23: adding it rounds to int
    float n = (x * 1.44269504088896341f + shifter) - shifter;
    float r = x - n * 0.693145751953125f;  // ln2 split in two for accuracy
    r = r - n * 1.428606765330187045e-06f;
    // minimax polynomial for exp(r) on [-ln2/2, ln2/2]
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    // scale by 2^n through the exponent bits
    union { float f; int i; } u = {p};
    u.i += (int)n * (1 << 23);  // |n| <= 127: no overflow, no shift of a negative
    return in == in ? u.f : in;  // ... and hand the NaN back, so NaN losses show
}

#endif

// Test-only reference GPT in double precision: plain loops, no BLAS, no
// OpenMP, written from the math (GPT-2 block, tanh GELU, tied lm_head) and not
// from src/. It reads parameters in gpt.h's flat layout (ParamInfo offsets)
// but as doubles, so tests can perturb them far below float resolution.
// Also a small private RNG, so test data never depends on src/rng.c.
#ifndef RLHF_REF_GPT_H
#define RLHF_REF_GPT_H

#include <stdint.h>

#include "gpt.h"

// splitmix64-based generator for test data; independent of src/rng.c.
typedef struct {
    uint64_t s;
} RefRng;

void ref_rng_init(RefRng *r, uint64_t seed);
// Uniform in [0, 1), 53 bits.
double ref_rng_uniform(RefRng *r);
// Standard normal (Box-Muller).
double ref_rng_normal(RefRng *r);
// Uniform integer in [0, n), n > 0 (tiny modulo bias is irrelevant here).
int ref_rng_int(RefRng *r, int n);

// Fills every present parameter of m with "test-scale" values that keep
// activations O(1) and make attention far from uniform (so mistakes in
// masking, scaling or head layout show up): 2-D weights N(0, s^2/in) with
// s = 1 (wte, wpe: N(0, 0.3^2)), biases N(0, 0.1^2), LayerNorm weights
// 1 + N(0, 0.1^2), value head N(0, 1/C) and N(0, 0.1^2).
void ref_randomize_params(GPT *m, uint64_t seed);

// A new double copy of the model's float parameters (caller frees).
double *ref_params_to_double(const GPT *m);

// Forward of the GPT described by c with parameters `params` (doubles, in
// the flat layout of info) over inputs (B,T). Writes logits (B,T,V) and
// values (B,T) when those pointers are not NULL (values need a value head).
// Returns sum_n w_n * CE_n over rows with targets[n] >= 0, w = weights or
// 1/(B*T) each (gpt_lm_loss's contract); 0 when targets is NULL.
double ref_gpt_forward(const GPTConfig *c, const ParamInfo info[NUM_PARAM_TENSORS],
                       const double *params, const int *inputs, const int *targets,
                       const float *weights, int B, int T, double *logits, double *values);

// One random-direction gradient check of a whole loss: the model's
// accumulated gradient g (m->train) along d (num_params; zero outside the
// tensors tested) against the 5-point central difference of f(params + t d)
// with t = 1e-3, where f(ctx, x) evaluates the loss in double at parameters
// x. Passes when |g.d - fd| <= 1e-4 max(|g.d|, |fd|) + 1e-6 |g| |d|.
// Prints `what` with the numbers on failure (and with RLHF_TEST_VERBOSE).
int ref_check_direction(const char *what, const GPT *m, const double *params, const double *d,
                        double (*f)(const void *ctx, const double *x), const void *ctx);
// The same with the tolerance given: passes when |g.d - fd| <= rtol
// max(|g.d|, |fd|) + atol |g| |d| (for gradients computed in bf16).
int ref_check_direction_tol(const char *what, const GPT *m, const double *params,
                            const double *d, double (*f)(const void *ctx, const double *x),
                            const void *ctx, double rtol, double atol);

#endif

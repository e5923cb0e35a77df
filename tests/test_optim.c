// Checks src/optim.c: AdamW steps against values computed by hand in double
// (bias correction, eps placement, decoupled weight decay on 2-D weights
// only), grad_norm, grad_clip and lr_schedule.
// Does not train a model (test_gpt.c does).
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "gpt.h"
#include "optim.h"
#include "ref_gpt.h"

// Sanitizer build (make BUILD=asan): make undefined behaviour fatal, so it
// fails this binary instead of printing a line that nobody reads.
#if defined(__SANITIZE_ADDRESS__)
const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void) { return "halt_on_error=1:print_stacktrace=1"; }
#endif

#define PI 3.14159265358979323846

// A model with every kind of tensor (value head included), small enough to
// check element by element.
static GPTConfig opt_config(void) {
    return (GPTConfig){.n_layer = 2, .n_head = 2, .n_embd = 4, .block_size = 3,
                       .vocab_size = 5, .value_head = 1};
}

// Decay set written out by tensor, not derived from ParamInfo.ndim: the
// matrices (wte, wpe, c_attn, c_proj, c_fc, mlp c_proj) decay; biases,
// LayerNorm weights and the value head (stored 1-D, [C] and [1]) do not.
static int decays(int p) {
    return p == PARAM_wte || p == PARAM_wpe || p == PARAM_qkvw || p == PARAM_attprojw ||
           p == PARAM_fcw || p == PARAM_fcprojw;
}

static void fill_grads(GPT *m, RefRng *r) {
    // magnitudes spread over 1e-5..1, so eps = 1e-4 matters for some
    // elements and not for others (its placement is visible)
    for (size_t i = 0; i < m->num_params; i++) {
        double mag = pow(10.0, -5.0 * ref_rng_uniform(r));
        m->train->grads_memory[i] = (float)(ref_rng_uniform(r) < 0.5 ? -mag : mag);
    }
}

// Two AdamW steps with different gradients and learning rates, against the
// update rule evaluated in double from the same float inputs:
//   m_t = b1 m + (1-b1) g, v_t = b2 v + (1-b2) g^2,
//   w -= lr * (m_t/(1-b1^t) / (sqrt(v_t/(1-b2^t)) + eps) + wd * w)  [wd on matrices]
// Tolerances: m and v are a few float operations: 1e-6 relative to the
// terms summed (m can cancel to near zero when g changes sign). For w, the
// float bias correction 1 - b2^t loses relative accuracy u / (1 - b2^t)
// (~3e-5 at t = 2 with b2 = 0.999), so the step is good to ~2e-5; we allow
// 1e-4 of lr (the Adam step is <= lr * (1 + wd |w|) in size) plus 2e-7 of
// |w| for storing w in float. A missing bias correction, eps inside the
// sqrt, or decay on a bias all miss by more than 1e-2 of lr.
static void test_adamw_two_steps_by_hand(void **state) {
    (void)state;
    GPTConfig c = opt_config();
    GPT m;
    gpt_build(&m, &c);
    gpt_train_build(&m);
    ref_randomize_params(&m, 1);
    gpt_zero_grad(&m);
    const size_t P = m.num_params;
    const float b1 = 0.9f, b2 = 0.999f, eps = 1e-4f, wd = 0.1f;
    const float lrs[2] = {0.1f, 0.05f};
    AdamW opt;
    adamw_build(&opt, P, b1, b2, eps, wd);
    double *w = mallocCheck(P * sizeof(double)), *mm = callocCheck(P, sizeof(double));
    double *vv = callocCheck(P, sizeof(double)), *mtol = callocCheck(P, sizeof(double));
    for (size_t i = 0; i < P; i++) w[i] = m.params_memory[i];
    RefRng rng;
    ref_rng_init(&rng, 2);
    for (int t = 1; t <= 2; t++) {
        fill_grads(&m, &rng);
        const double lr = lrs[t - 1];
        const double bc1 = 1.0 - pow((double)b1, t), bc2 = 1.0 - pow((double)b2, t);
        for (int p = 0; p < NUM_PARAM_TENSORS; p++) {
            const ParamInfo *pi = &m.info[p];
            for (size_t i = pi->offset; i < pi->offset + pi->size; i++) {
                double g = m.train->grads_memory[i];
                mtol[i] = 1e-6 * (fabs(b1 * mm[i]) + fabs((1.0 - b1) * g));
                mm[i] = b1 * mm[i] + (1.0 - b1) * g;
                vv[i] = b2 * vv[i] + (1.0 - b2) * g * g;
                double step = (mm[i] / bc1) / (sqrt(vv[i] / bc2) + eps);
                w[i] -= lr * (step + (decays(p) ? wd * w[i] : 0.0));
            }
        }
        adamw_step(&opt, &m, (float)lr);
        assert_int_equal(opt.t, t);
        for (int p = 0; p < NUM_PARAM_TENSORS; p++) {
            const ParamInfo *pi = &m.info[p];
            for (size_t i = pi->offset; i < pi->offset + pi->size; i++) {
                int ok = fabs(opt.m[i] - mm[i]) <= mtol[i] &&
                         fabs(opt.v[i] - vv[i]) <= 1e-6 * fabs(vv[i]) &&
                         fabs(m.params_memory[i] - w[i]) <= 1e-4 * lr + 2e-7 * fabs(w[i]);
                if (!ok) {
                    fprintf(stderr, "%s [%zu] t=%d: w %.9g want %.9g, m %.6g want %.6g, v %.6g want %.6g\n",
                            pi->name, i - pi->offset, t, m.params_memory[i], w[i], opt.m[i],
                            mm[i], opt.v[i], vv[i]);
                    fail();
                }
            }
        }
    }
    free(w);
    free(mm);
    free(vv);
    free(mtol);
    adamw_free(&opt);
    gpt_free(&m);
}

// With zero gradients the Adam term is exactly 0, so one step leaves every
// non-decayed tensor bit-identical and scales each matrix by (1 - lr wd)
// (one float multiply-add: 1e-6 relative). Names the tensors the contract
// lists: a bias, a LayerNorm weight and bias, the value head.
static void test_adamw_decay_only_on_matrices(void **state) {
    (void)state;
    GPTConfig c = opt_config();
    GPT m;
    gpt_build(&m, &c);
    gpt_train_build(&m);
    ref_randomize_params(&m, 3);
    gpt_zero_grad(&m);
    float *before = mallocCheck(m.num_params * sizeof(float));
    memcpy(before, m.params_memory, m.num_params * sizeof(float));
    AdamW opt;
    adamw_build(&opt, m.num_params, 0.9f, 0.95f, 1e-8f, 0.5f);
    const float lr = 0.2f;
    adamw_step(&opt, &m, lr);
    const int no_decay[] = {PARAM_qkvb, PARAM_ln1w, PARAM_ln1b, PARAM_lnfw, PARAM_lnfb, PARAM_vb};
    for (size_t k = 0; k < sizeof no_decay / sizeof no_decay[0]; k++) assert_false(decays(no_decay[k]));
    for (int p = 0; p < NUM_PARAM_TENSORS; p++) {
        const ParamInfo *pi = &m.info[p];
        const float *w = m.params_memory + pi->offset, *w0 = before + pi->offset;
        if (!decays(p)) {
            if (memcmp(w, w0, pi->size * sizeof(float)) != 0) {
                fprintf(stderr, "%s changed with zero gradient (decayed?)\n", pi->name);
                fail();
            }
            continue;
        }
        for (size_t i = 0; i < pi->size; i++) {
            double want = w0[i] * (1.0 - (double)lr * 0.5);
            assert_true(fabs(w[i] - want) <= 1e-6 * fabs(want));
        }
    }
    free(before);
    adamw_free(&opt);
    gpt_free(&m);
}

// grad_norm against a double sum (result is a float: 1e-6 relative).
static void test_grad_norm(void **state) {
    (void)state;
    GPTConfig c = opt_config();
    c.n_embd = 32;  // enough floats (~30k) that the blocked sum has many blocks
    c.vocab_size = 50;
    GPT m;
    gpt_build(&m, &c);
    gpt_train_build(&m);
    gpt_zero_grad(&m);
    assert_true(grad_norm(&m) == 0.0f);
    RefRng rng;
    ref_rng_init(&rng, 6);
    for (size_t i = 0; i < m.num_params; i++) m.train->grads_memory[i] = (float)ref_rng_normal(&rng);
    double s = 0;
    for (size_t i = 0; i < m.num_params; i++) s += (double)m.train->grads_memory[i] * m.train->grads_memory[i];
    assert_true(fabs(grad_norm(&m) - sqrt(s)) <= 1e-6 * sqrt(s));
    gpt_free(&m);
}

static double norm_double(const GPT *m) {
    double s = 0;
    for (size_t i = 0; i < m->num_params; i++) s += (double)m->train->grads_memory[i] * m->train->grads_memory[i];
    return sqrt(s);
}

// Above max_norm: grad_clip returns the norm before clipping, the norm
// after is max_norm within 1e-6 relative (a float scale and float products:
// ~1e-7), and the direction is kept (every element scaled by the same
// factor, 1e-6). Checked for gradient norms from 0.05 to 500 and limits
// from 0.01 to 100: small norms are common late in training.
static void test_grad_clip_above_limit(void **state) {
    (void)state;
    GPTConfig c = opt_config();
    GPT m;
    gpt_build(&m, &c);
    gpt_train_build(&m);
    gpt_zero_grad(&m);
    RefRng rng;
    ref_rng_init(&rng, 7);
    float *g0 = mallocCheck(m.num_params * sizeof(float));
    const double norms[] = {0.05, 1.5, 20.0, 500.0};
    const double fractions[] = {0.2, 0.9};
    for (int a = 0; a < 4; a++) {
        for (int b = 0; b < 2; b++) {
            for (size_t i = 0; i < m.num_params; i++) m.train->grads_memory[i] = (float)ref_rng_normal(&rng);
            double n0 = norm_double(&m);
            for (size_t i = 0; i < m.num_params; i++) m.train->grads_memory[i] *= (float)(norms[a] / n0);
            n0 = norm_double(&m);
            memcpy(g0, m.train->grads_memory, m.num_params * sizeof(float));
            const float max_norm = (float)(n0 * fractions[b]);
            float ret = grad_clip(&m, max_norm);
            assert_true(fabs(ret - n0) <= 1e-6 * n0);
            double n1 = norm_double(&m);
            if (!(fabs(n1 - max_norm) <= 1e-6 * max_norm)) {
                fprintf(stderr, "grad_clip: norm %.9g clipped to %.9g, want %.9g (rel err %.2e)\n",
                        n0, n1, max_norm, fabs(n1 - max_norm) / max_norm);
                fail();
            }
            const double scale = max_norm / n0;
            for (size_t i = 0; i < m.num_params; i++)
                assert_true(fabs(m.train->grads_memory[i] - scale * g0[i]) <= 1e-6 * fabs(scale * g0[i]) + 1e-30);
        }
    }
    free(g0);
    gpt_free(&m);
}

// At or below max_norm, or with max_norm <= 0 (clipping off), the gradients
// are untouched bit for bit and the norm is still returned.
static void test_grad_clip_noop(void **state) {
    (void)state;
    GPTConfig c = opt_config();
    GPT m;
    gpt_build(&m, &c);
    gpt_train_build(&m);
    gpt_zero_grad(&m);
    RefRng rng;
    ref_rng_init(&rng, 8);
    for (size_t i = 0; i < m.num_params; i++) m.train->grads_memory[i] = (float)ref_rng_normal(&rng);
    float *g0 = mallocCheck(m.num_params * sizeof(float));
    memcpy(g0, m.train->grads_memory, m.num_params * sizeof(float));
    const float n = grad_norm(&m);
    const float limits[] = {2.0f * n, n, 0.0f, -1.0f};
    for (int k = 0; k < 4; k++) {
        assert_true(grad_clip(&m, limits[k]) == n);
        assert_memory_equal(m.train->grads_memory, g0, m.num_params * sizeof(float));
    }
    free(g0);
    gpt_free(&m);
}

// Warmup: lr * (step + 1) / warmup; then cosine from lr down to min_lr at
// max_steps; min_lr afterwards. Floats of O(lr): 1e-6 relative.
static void test_lr_schedule(void **state) {
    (void)state;
    const double lr = 6e-4, min_lr = 6e-5;
    const int64_t W = 100, M = 1100;
#define CLOSE(got, want) assert_true(fabs((double)(got) - (want)) <= 1e-6 * fabs(want))
    CLOSE(lr_schedule(0, W, M, (float)lr, (float)min_lr), lr / W);
    CLOSE(lr_schedule(49, W, M, (float)lr, (float)min_lr), lr * 50 / W);
    CLOSE(lr_schedule(W - 1, W, M, (float)lr, (float)min_lr), lr);
    CLOSE(lr_schedule(W, W, M, (float)lr, (float)min_lr), lr);  // cosine starts at the top
    CLOSE(lr_schedule(W + (M - W) / 2, W, M, (float)lr, (float)min_lr), (lr + min_lr) / 2);
    CLOSE(lr_schedule(W + (M - W) / 4, W, M, (float)lr, (float)min_lr),
          min_lr + (lr - min_lr) * 0.5 * (1.0 + cos(PI / 4)));
    CLOSE(lr_schedule(M, W, M, (float)lr, (float)min_lr), min_lr);
    CLOSE(lr_schedule(M + 12345, W, M, (float)lr, (float)min_lr), min_lr);
    // the decay phase never rises and never leaves [min_lr, lr]
    float prev = lr_schedule(W, W, M, (float)lr, (float)min_lr);
    for (int64_t s = W + 1; s <= M + 5; s++) {
        float cur = lr_schedule(s, W, M, (float)lr, (float)min_lr);
        assert_true(cur <= prev && cur >= (float)min_lr);
        prev = cur;
    }
    // no warmup: full lr at step 0
    CLOSE(lr_schedule(0, 0, M, (float)lr, (float)min_lr), lr);
#undef CLOSE
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adamw_two_steps_by_hand),
        cmocka_unit_test(test_adamw_decay_only_on_matrices),
        cmocka_unit_test(test_grad_norm),
        cmocka_unit_test(test_grad_clip_above_limit),
        cmocka_unit_test(test_grad_clip_noop),
        cmocka_unit_test(test_lr_schedule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

// Checks bf16 mixed precision (src/bf16.c, the bf16 ops and a bf16 GPT):
// rounding to bf16; each bf16 product (forward, both backward products)
// against a double reference, two ways: on the bf16-rounded operands (only
// fp32 accumulation error is allowed) and on the fp32 operands (the bf16
// bound); the whole model's gradient in bf16 against central differences
// of the double reference model along random directions; bit-identical
// repeated bf16 training; the bf16 copy rounded anew after AdamW; oneDNN
// keeping to the OpenMP thread count.
// On a CPU without a bf16 matmul (bf16_available) every case but the
// rounding one is skipped, and says so.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bf16.h"
#include "common.h"
#include "gpt.h"
#include "ops.h"
#include "optim.h"
#include "ref_gpt.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__SANITIZE_ADDRESS__)
const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void) { return "halt_on_error=1:print_stacktrace=1"; }
#endif

// Per element, |a b - bf16(a) bf16(b)| <= (2u + u^2) |a b| with u = 2^-8
// (each operand rounded to nearest with 8 significant bits): a sum of K
// such products is off by at most BF16_REL * sum |a b|. On top, fp32
// accumulation in any order: ACC_REL * sum |a b| is generous for K <= 1000.
#define BF16_REL (2.0 / 256 + 1.0 / (256.0 * 256))
#define ACC_REL 1e-5

#define SKIP_WITHOUT_BF16()                                                     \
    do {                                                                        \
        if (!bf16_available()) {                                                \
            fprintf(stderr, "skipped: no bf16 matmul here (%s)\n", bf16_backend()); \
            skip();                                                             \
        }                                                                       \
    } while (0)

static void test_round(void **state) {
    (void)state;
    // exact values survive; halfway cases go to even; NaN stays NaN
    const float exact[] = {0.0f, -0.0f, 1.0f, -2.5f, 65536.0f, INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++) {
        float r = bf16_to_float(bf16_from_float(exact[i]));
        assert_memory_equal(&r, &exact[i], sizeof r);
    }
    // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: to even (1)
    assert_true(bf16_to_float(bf16_from_float(1.0f + 1.0f / 256)) == 1.0f);
    // 1 + 3*2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: to even (1 + 2^-6)
    assert_true(bf16_to_float(bf16_from_float(1.0f + 3.0f / 256)) == 1.0f + 1.0f / 64);
    assert_true(bf16_to_float(bf16_from_float(1.0f + 1.0f / 256 + 1.0f / 4096)) ==
                1.0f + 1.0f / 128);
    assert_true(isnan(bf16_to_float(bf16_from_float(NAN))));
    // the largest float rounds to infinity, as round-to-nearest says
    assert_true(isinf(bf16_to_float(bf16_from_float(3.4028235e38f))));
    // relative error of rounding stays within u = 2^-8 over many normal values
    RefRng r;
    ref_rng_init(&r, 5);
    float src[1000];
    bf16 dst[1000];
    for (int i = 0; i < 1000; i++)
        src[i] = (float)(ref_rng_normal(&r) * exp(5 * ref_rng_normal(&r)));
    bf16_round(dst, src, 1000);
    for (int i = 0; i < 1000; i++)
        assert_true(fabs(bf16_to_float(dst[i]) - src[i]) <= fabs(src[i]) / 256.0);
    // the transposing variant is the same rounding, transposed
    bf16 t[1000];
    bf16_round_transposed(t, src, 40, 25);
    for (int i = 0; i < 40; i++)
        for (int j = 0; j < 25; j++) assert_int_equal(t[j * 40 + i], dst[i * 25 + j]);
}

// Threads of this process (entries of /proc/self/task).
static int count_threads(void) {
    DIR *d = opendir("/proc/self/task");
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

// oneDNN runs on the OpenMP thread count rlhf sets (train.threads through
// omp_set_num_threads), not on one of its own: with 1 set, a large bf16
// product starts no thread; with 2, it does (so the count can tell). Runs
// first, before anything else here has started OpenMP's threads.
static void test_threads_respected(void **state) {
    (void)state;
    SKIP_WITHOUT_BF16();
#ifndef _OPENMP
    fprintf(stderr, "skipped: built without OpenMP\n");
    skip();
#else
    if (count_threads() != 1 || omp_get_num_procs() < 2) {
        fprintf(stderr, "skipped: %d threads already, %d processors\n", count_threads(),
                omp_get_num_procs());
        skip();
    }
    enum { n = 512 };
    bf16 *a = calloc((size_t)n * n, sizeof(bf16));
    float *c = calloc((size_t)n * n, sizeof(float));
    omp_set_num_threads(1);
    bf16_gemm(0, 0, n, n, n, a, n, a, n, 0.0f, c, n);
    assert_int_equal(count_threads(), 1);
    omp_set_num_threads(2);
    bf16_gemm(0, 0, n, n, n, a, n, a, n, 0.0f, c, n);
    assert_int_equal(count_threads(), 2);
    free(a);
    free(c);
#endif
}

static float *random_floats(RefRng *r, size_t n, double scale) {
    float *x = mallocCheck(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = (float)(scale * ref_rng_normal(r));
    return x;
}

static float rounded(float x) { return bf16_to_float(bf16_from_float(x)); }

// y (M,N) = sum_k a(m,k) b(k,n) in double, with a and b read through
// strides (so transposes are the caller's choice), on rounded operands or
// not; s receives sum_k |a b| per element.
static void ref_product(double *y, double *s, const float *a, long am, long ak, const float *b,
                        long bk, long bn, int M, int N, int K, int round) {
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double acc = 0.0, mag = 0.0;
            for (int k = 0; k < K; k++) {
                double x = a[m * am + k * ak], w = b[k * bk + n * bn];
                if (round) x = rounded((float)x), w = rounded((float)w);
                acc += x * w;
                mag += fabs(x * w);
            }
            y[(size_t)m * N + n] = acc;
            s[(size_t)m * N + n] = mag;
        }
}

// got (M,N) against base + products of both references: within ACC_REL of
// the rounded one and BF16_REL + ACC_REL of the exact one.
static void check_product(const char *what, const float *got, const float *base, const float *a,
                          long am, long ak, const float *b, long bk, long bn, int M, int N,
                          int K) {
    size_t MN = (size_t)M * N;
    double *yr = mallocCheck(MN * sizeof(double)), *ye = mallocCheck(MN * sizeof(double));
    double *s = mallocCheck(MN * sizeof(double)), *se = mallocCheck(MN * sizeof(double));
    ref_product(yr, s, a, am, ak, b, bk, bn, M, N, K, 1);
    ref_product(ye, se, a, am, ak, b, bk, bn, M, N, K, 0);
    double worst_r = 0.0, worst_e = 0.0;
    for (size_t i = 0; i < MN; i++) {
        double b0 = base ? base[i] : 0.0;
        double er = fabs(got[i] - (b0 + yr[i])) / (ACC_REL * (s[i] + fabs(b0)) + 1e-30);
        double ee = fabs(got[i] - (b0 + ye[i])) /
                    ((BF16_REL + ACC_REL) * (se[i] + fabs(b0)) + 1e-30);
        worst_r = fmax(worst_r, er);
        worst_e = fmax(worst_e, ee);
    }
    if (getenv("RLHF_TEST_VERBOSE") || worst_r > 1 || worst_e > 1)
        fprintf(stderr, "  %-28s %dx%dx%d: %.3f of the fp32-accumulation bound, %.3f of the bf16 "
                        "bound\n", what, M, N, K, worst_r, worst_e);
    assert_true(worst_r <= 1.0);
    assert_true(worst_e <= 1.0);
    free(yr);
    free(ye);
    free(s);
    free(se);
}

static void check_linear(int N, int C, int OC, uint64_t seed) {
    RefRng r;
    ref_rng_init(&r, seed);
    float *inp = random_floats(&r, (size_t)N * C, 1.0), *w = random_floats(&r, (size_t)OC * C, 0.1);
    float *bias = random_floats(&r, OC, 0.5), *add = random_floats(&r, (size_t)N * OC, 1.0);
    float *dout = random_floats(&r, (size_t)N * OC, 1.0);
    float *dw0 = random_floats(&r, (size_t)OC * C, 1.0);  // accumulated onto
    bf16 *wb = mallocCheck((size_t)OC * C * sizeof(bf16));
    bf16_round(wb, w, (size_t)OC * C);
    float *out = mallocCheck((size_t)N * OC * sizeof(float));
    float *base = mallocCheck((size_t)N * OC * sizeof(float));
    // forward: out = add + bias + inp w^T
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) base[(size_t)n * OC + o] = add[(size_t)n * OC + o] + bias[o];
    matmul_forward_bf16(out, add, inp, wb, bias, N, C, OC);
    check_product("forward X W^T + add + bias", out, base, inp, C, 1, w, 1, C, N, OC, C);
    // forward without add and bias, and with add aliasing out
    matmul_forward_bf16(out, NULL, inp, wb, NULL, N, C, OC);
    check_product("forward X W^T", out, NULL, inp, C, 1, w, 1, C, N, OC, C);
    memcpy(out, add, (size_t)N * OC * sizeof(float));
    matmul_forward_bf16(out, out, inp, wb, NULL, N, C, OC);
    check_product("forward in place", out, add, inp, C, 1, w, 1, C, N, OC, C);
    // backward: dinp = dout w (written), dw += dout^T inp, dbias += column sums
    float *dinp = mallocCheck((size_t)N * C * sizeof(float));
    float *dw = mallocCheck((size_t)OC * C * sizeof(float));
    float *dbias = calloc(OC, sizeof(float));
    for (size_t i = 0; i < (size_t)N * C; i++) dinp[i] = 1e30f;  // must be overwritten
    memcpy(dw, dw0, (size_t)OC * C * sizeof(float));
    matmul_backward_bf16(dinp, dw, dbias, dout, inp, wb, N, C, OC);
    check_product("backward dX = dY W", dinp, NULL, dout, OC, 1, w, C, 1, N, C, OC);
    check_product("backward dW += dY^T X", dw, dw0, dout, 1, OC, inp, C, 1, OC, C, N);
    for (int o = 0; o < OC; o++) {
        double sum = 0.0, mag = 0.0;
        for (int n = 0; n < N; n++) {
            sum += dout[(size_t)n * OC + o];
            mag += fabs(dout[(size_t)n * OC + o]);
        }
        assert_true(fabs(dbias[o] - sum) <= 1e-5 * mag);  // fp32, no rounding to bf16
    }
    // dout rounded in blocks of rows (as the lm_head's at a 50k vocabulary):
    // 2 rows a block, the last one short when N is odd, then one row a block
    // (a block smaller than a row); same bounds
    const size_t blocks[2] = {2 * (size_t)OC + 1, 1};
    for (int k = 0; k < 2; k++) {
        for (size_t i = 0; i < (size_t)N * C; i++) dinp[i] = 1e30f;
        memcpy(dw, dw0, (size_t)OC * C * sizeof(float));
        matmul_backward_bf16_blocks(dinp, dw, NULL, dout, inp, wb, N, C, OC, blocks[k]);
        check_product("blocked dX = dY W", dinp, NULL, dout, OC, 1, w, C, 1, N, C, OC);
        check_product("blocked dW += dY^T X", dw, dw0, dout, 1, OC, inp, C, 1, OC, C, N);
    }
    // dinp may be skipped
    matmul_backward_bf16(NULL, dw, NULL, dout, inp, wb, N, C, OC);
    free(inp), free(w), free(bias), free(add), free(dout), free(dw0), free(wb);
    free(out), free(base), free(dinp), free(dw), free(dbias);
}

static void test_linear_products(void **state) {
    (void)state;
    SKIP_WITHOUT_BF16();
    check_linear(7, 5, 3, 1);       // below any blocking
    check_linear(37, 45, 29, 2);    // odd sizes
    check_linear(96, 128, 384, 3);  // a small model's qkv shape
    check_linear(64, 256, 65, 4);   // lm_head-like, K larger than N
}

// --- whole model ---------------------------------------------------------------

static const GPTConfig cfg = {.n_layer = 2, .n_head = 2, .n_embd = 32, .block_size = 8,
                              .vocab_size = 37, .value_head = 0};
enum { B = 3, T = 8 };

typedef struct {
    const GPTConfig *c;
    const ParamInfo *info;
    const int *inputs, *targets;
} Objective;

static double lm_loss_at(const void *ctx, const double *x) {
    const Objective *o = ctx;
    return ref_gpt_forward(o->c, o->info, x, o->inputs, o->targets, NULL, B, T, NULL, NULL);
}

static void random_tokens(int *x, int n, uint64_t seed) {
    RefRng r;
    ref_rng_init(&r, seed);
    for (int i = 0; i < n; i++) x[i] = ref_rng_int(&r, cfg.vocab_size);
}

// The bf16 model's gradient of the mean LM loss along random directions
// (one per 2-D tensor, one over all parameters) against the 5-point central
// difference of the double reference loss. The tolerance is bf16's: every
// product's operands carry a relative rounding error up to 2^-8, and the
// gradient passes through 2L + 1 products forward and back, so each
// component of g is off by a few percent: allowed |g.d - fd| <= 4e-2
// max(|g.d|, |fd|) + 1e-3 |g| |d|. Measured on this model: at most 0.36
// of that (wte; 0.02 over all parameters), while a wrong product (a
// transpose, a missing term) is off by O(1).
static void check_gradient_direction(int lm_head_fp32) {
    SKIP_WITHOUT_BF16();
    GPT m;
    gpt_build(&m, &cfg);
    gpt_set_precision(&m, PRECISION_BF16);
    m.lm_head_fp32 = lm_head_fp32;
    gpt_train_build(&m);
    ref_randomize_params(&m, 11);
    int in[B * T], tg[B * T];
    random_tokens(in, B * T, 12);
    random_tokens(tg, B * T, 13);
    gpt_forward(&m, in, B, T, 1);
    float loss = gpt_lm_loss(&m, tg, NULL);
    gpt_zero_grad(&m);
    gpt_backward(&m, m.train->dlogits, NULL);
    double *params = ref_params_to_double(&m);
    Objective o = {&cfg, m.info, in, tg};
    double ref = lm_loss_at(&o, params);
    // the loss itself: within bf16's reach of the exact one
    if (getenv("RLHF_TEST_VERBOSE"))
        fprintf(stderr, "  loss bf16 %.6f, double reference %.6f\n", loss, ref);
    assert_true(fabs(loss - ref) <= 1e-2 * fabs(ref));
    RefRng rng;
    ref_rng_init(&rng, 14);
    const size_t P = m.num_params;
    double *d = mallocCheck(P * sizeof(double));
    int ok = 1;
    for (int p = 0; p <= NUM_PARAM_TENSORS; p++) {
        size_t lo = 0, hi = P;
        if (p < NUM_PARAM_TENSORS) {
            if (!m.info[p].size || m.info[p].ndim != 2) continue;
            lo = m.info[p].offset;
            hi = lo + m.info[p].size;
        }
        memset(d, 0, P * sizeof(double));
        double n2 = 0.0;
        for (size_t i = lo; i < hi; i++) d[i] = ref_rng_normal(&rng), n2 += d[i] * d[i];
        for (size_t i = lo; i < hi; i++) d[i] /= sqrt(n2);
        ok &= ref_check_direction_tol(p < NUM_PARAM_TENSORS ? m.info[p].name : "all parameters",
                                      &m, params, d, lm_loss_at, &o, 4e-2, 1e-3);
    }
    assert_true(ok);
    free(d);
    free(params);
    gpt_free(&m);
}

// the whole model in bf16, and with its LM head in fp32 (the default)
static void test_model_gradient_direction(void **state) {
    (void)state;
    check_gradient_direction(0);
}

static void test_model_gradient_direction_fp32_head(void **state) {
    (void)state;
    check_gradient_direction(1);
}

// train.fp32_lm_head: a bf16 model's logits are the fp32 sgemm of its final
// hidden states against wte, bit for bit, and with the head in bf16 the
// bf16 product of the same states (the rest of the model bf16 either way).
static void test_lm_head_precision(void **state) {
    (void)state;
    SKIP_WITHOUT_BF16();
    GPT m;
    gpt_build(&m, &cfg);
    gpt_set_precision(&m, PRECISION_BF16);
    gpt_init_weights(&m, 31);
    int in[B * T];
    random_tokens(in, B * T, 32);
    const int N = B * T, C = cfg.n_embd, V = cfg.vocab_size;
    float *want = mallocCheck((size_t)N * V * sizeof(float));
    uint16_t *wte = mallocCheck((size_t)V * C * sizeof(uint16_t));
    bf16_round(wte, m.params.wte, (size_t)V * C);
    for (int head = 0; head < 2; head++) {
        m.lm_head_fp32 = head;
        gpt_forward(&m, in, B, T, 1);
        if (head)
            matmul_forward(want, NULL, m.acts.lnf, m.params.wte, NULL, N, C, V);
        else
            matmul_forward_bf16(want, NULL, m.acts.lnf, wte, NULL, N, C, V);
        assert_memory_equal(m.acts.logits, want, (size_t)N * V * sizeof(float));
    }
    free(want);
    free(wte);
    gpt_free(&m);
}

// A few AdamW steps of a bf16 model from a fixed start; params out.
static void train_steps(float *out, int steps) {
    GPT m;
    gpt_build(&m, &cfg);
    gpt_set_precision(&m, PRECISION_BF16);
    gpt_train_build(&m);
    gpt_init_weights(&m, 21);
    AdamW opt;
    adamw_build(&opt, m.num_params, 0.9f, 0.95f, 1e-8f, 0.1f);
    int in[B * T], tg[B * T];
    for (int s = 0; s < steps; s++) {
        random_tokens(in, B * T, 100 + s);
        random_tokens(tg, B * T, 200 + s);
        gpt_forward(&m, in, B, T, 1);
        gpt_lm_loss(&m, tg, NULL);
        gpt_zero_grad(&m);
        gpt_backward(&m, m.train->dlogits, NULL);
        grad_clip(&m, 1.0f);
        adamw_step(&opt, &m, 1e-2f);
    }
    memcpy(out, m.params_memory, m.num_params * sizeof(float));
    adamw_free(&opt);
    gpt_free(&m);
}

static void test_bit_identical_training(void **state) {
    (void)state;
    SKIP_WITHOUT_BF16();
    GPT probe;
    gpt_build(&probe, &cfg);
    size_t P = probe.num_params;
    gpt_free(&probe);
    float *a = mallocCheck(P * sizeof(float)), *b = mallocCheck(P * sizeof(float));
    float *f = mallocCheck(P * sizeof(float));
    train_steps(a, 5);
    train_steps(b, 5);
    assert_memory_equal(a, b, P * sizeof(float));
    // and the steps did move the weights (a test that could not fail otherwise)
    train_steps(f, 0);
    assert_memory_not_equal(a, f, P * sizeof(float));
    free(a), free(b), free(f);
}

// After AdamW changes the fp32 weights, the next forward uses them: the
// logits equal those of a model built fresh from the new weights.
static void test_copy_follows_updates(void **state) {
    (void)state;
    SKIP_WITHOUT_BF16();
    GPT m, fresh;
    gpt_build(&m, &cfg);
    gpt_set_precision(&m, PRECISION_BF16);
    gpt_train_build(&m);
    gpt_init_weights(&m, 3);
    int in[B * T], tg[B * T];
    random_tokens(in, B * T, 4);
    random_tokens(tg, B * T, 5);
    AdamW opt;
    adamw_build(&opt, m.num_params, 0.9f, 0.95f, 1e-8f, 0.0f);
    gpt_forward(&m, in, B, T, 1);
    gpt_lm_loss(&m, tg, NULL);
    gpt_zero_grad(&m);
    gpt_backward(&m, m.train->dlogits, NULL);
    adamw_step(&opt, &m, 1e-2f);
    gpt_forward(&m, in, B, T, 1);
    gpt_build(&fresh, &cfg);
    gpt_set_precision(&fresh, PRECISION_BF16);
    memcpy(fresh.params_memory, m.params_memory, m.num_params * sizeof(float));
    gpt_params_changed(&fresh);
    gpt_forward(&fresh, in, B, T, 1);
    size_t n = (size_t)B * T * cfg.vocab_size;
    assert_memory_equal(m.acts.logits, fresh.acts.logits, n * sizeof(float));
    // and the fp32 model differs (the bf16 products are in use)
    gpt_set_precision(&fresh, PRECISION_FP32);
    gpt_forward(&fresh, in, B, T, 1);
    assert_memory_not_equal(m.acts.logits, fresh.acts.logits, n * sizeof(float));
    adamw_free(&opt);
    gpt_free(&m);
    gpt_free(&fresh);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads_respected),  // first: no OpenMP threads yet
        cmocka_unit_test(test_round),
        cmocka_unit_test(test_linear_products),
        cmocka_unit_test(test_model_gradient_direction),
        cmocka_unit_test(test_model_gradient_direction_fp32_head),
        cmocka_unit_test(test_lm_head_precision),
        cmocka_unit_test(test_bit_identical_training),
        cmocka_unit_test(test_copy_follows_updates),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    bf16_release();
    return rc;
}

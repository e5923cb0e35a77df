// Checks every layer of src/ops.c: each backward against central finite
// differences of a scalar loss, each backward's write/accumulate contract,
// forward outputs against naive double loops, and fast_expf against exp().
// Does not test the model wiring (test_gpt.c does).
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "common.h"
#include "ops.h"
#include "ref_gpt.h"

// Sanitizer build (make BUILD=asan): make undefined behaviour fatal, so it
// fails this binary instead of printing a line that nobody reads.
#if defined(__SANITIZE_ADDRESS__)
const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void) { return "halt_on_error=1:print_stacktrace=1"; }
#endif

// ---------------------------------------------------------------------------
// Finite differences.
//
// Every gradient test uses the scalar loss L = sum_i r_i * out_i with a fixed
// random r ~ U(-1,1), computed by the op under test in float and summed in
// double. Each input element x is set to x+eps and x-eps (in float) and the
// numerical derivative is (L+ - L-) / (x+ - x-), using the float values that
// were actually stored. Inputs are O(1).
//
// eps = 1e-2. Truncation error of the central difference is eps^2/6 * |L'''|,
// about 2e-5 * |L'''|; for these ops at O(1) inputs L''' is O(1..10) (GELU,
// softmax, LayerNorm), so <= 2e-4 relative to an O(1) derivative. Rounding:
// one perturbation changes at most a few dozen float outputs, each carrying a
// few ulp (~1e-7 relative) of error that does not cancel between L+ and L-;
// that is ~1e-6 absolute in L+ - L-, i.e. ~5e-5 after dividing by 2 eps.
// Hence |analytic - numeric| <= FD_ATOL + FD_RTOL * max(|a|, |n|) with
// FD_ATOL = 5e-4 and FD_RTOL = 1e-3: 10x above those error estimates, and
// still 1000x below what a wrong term, sign, factor or index produces.
// ---------------------------------------------------------------------------
#define FD_EPS 1e-2f
#define FD_ATOL 5e-4
#define FD_RTOL 1e-3

typedef double (*loss_fn)(void *ctx);

static double dot_rd(const float *r, const float *out, long n) {
    double s = 0.0;
    for (long i = 0; i < n; i++) s += (double)r[i] * out[i];
    return s;
}

// Compares grad (n) with central differences of f w.r.t. x (n floats).
static void check_grad(const char *what, float *x, const float *grad, long n, loss_fn f,
                       void *ctx) {
    double worst = 0.0;  // largest error / allowed error
    long worst_i = -1;
    double worst_a = 0.0, worst_n = 0.0;
    for (long i = 0; i < n; i++) {
        float x0 = x[i];
        float xp = x0 + FD_EPS, xm = x0 - FD_EPS;
        x[i] = xp;
        double lp = f(ctx);
        x[i] = xm;
        double lm = f(ctx);
        x[i] = x0;
        double num = (lp - lm) / ((double)xp - (double)xm);
        double a = grad[i];
        double err = fabs(a - num);
        double allowed = FD_ATOL + FD_RTOL * fmax(fabs(a), fabs(num));
        if (err / allowed > worst) {
            worst = err / allowed;
            worst_i = i;
            worst_a = a;
            worst_n = num;
        }
    }
    if (worst > 1.0) {
        fprintf(stderr, "%s: gradient mismatch at [%ld]: analytic %.8g numeric %.8g\n", what,
                worst_i, worst_a, worst_n);
        fail();
    }
    if (getenv("RLHF_TEST_VERBOSE"))
        fprintf(stderr, "%s: worst error %.3f of allowed at [%ld] (a %.6g n %.6g)\n", what,
                worst, worst_i, worst_a, worst_n);
}

static float *fvec(long n) { return callocCheck((size_t)n, sizeof(float)); }

static void fill_normal(float *x, long n, RefRng *r, double mean, double std) {
    for (long i = 0; i < n; i++) x[i] = (float)(mean + std * ref_rng_normal(r));
}

static void fill_uniform(float *x, long n, RefRng *r, double lo, double hi) {
    for (long i = 0; i < n; i++) x[i] = (float)(lo + (hi - lo) * ref_rng_uniform(r));
}

static void fill_value(float *x, long n, float v) {
    for (long i = 0; i < n; i++) x[i] = v;
}

// Accumulation contract: `got` was computed starting from `start`, `fresh`
// from zeros; got must equal start + fresh up to the rounding of one float
// addition per accumulated term (2e-6 relative of the magnitudes involved).
static void check_accumulated(const char *what, const float *got, const float *start,
                              const float *fresh, long n) {
    for (long i = 0; i < n; i++) {
        double want = (double)start[i] + fresh[i];
        double tol = 2e-6 * (fabs(start[i]) + fabs(fresh[i])) + 1e-30;
        if (!(fabs(got[i] - want) <= tol)) {
            fprintf(stderr, "%s: does not accumulate at [%ld]: got %.8g want %.8g + %.8g\n",
                    what, i, got[i], start[i], fresh[i]);
            fail();
        }
    }
}

// Overwrite contract: `got` was computed into a buffer full of NaN, `fresh`
// into zeros; the op must not read its output, so they are bit-identical.
static void check_overwritten(const char *what, const float *got, const float *fresh, long n) {
    if (memcmp(got, fresh, (size_t)n * sizeof(float)) != 0) {
        for (long i = 0; i < n; i++)
            if (memcmp(&got[i], &fresh[i], sizeof(float)) != 0) {
                fprintf(stderr, "%s: output not overwritten at [%ld]: %g vs %g\n", what, i,
                        got[i], fresh[i]);
                break;
            }
        fail();
    }
}

static int max_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

// ---------------------------------------------------------------------------
// encoder
// ---------------------------------------------------------------------------
enum { EB = 2, ET = 3, EC = 5, EV = 4, EP = ET + 2 };  // EP: wpe rows (block_size)

typedef struct {
    float *out, *wte, *wpe, *r;
    int inp[EB * ET];
    const int *pos0;
} EncCtx;

static double enc_loss(void *p) {
    EncCtx *c = p;
    encoder_forward(c->out, c->inp, c->pos0, c->wte, c->wpe, EB, ET, EC);
    return dot_rd(c->r, c->out, EB * ET * EC);
}

// Both gradients by central differences, rows at position 0 (pos0 NULL) or
// shifted (row 0 by 2, row 1 not): wpe rows no row reaches get nothing.
static void check_encoder_backward(const int *pos0, const int *wpe_unused, int n_unused) {
    RefRng rng;
    ref_rng_init(&rng, 1);
    // token 2 repeats (also across rows), token 3 never appears: the scatter
    // must accumulate repeats and leave unused rows at their start value
    EncCtx c = {.inp = {2, 0, 2, 1, 2, 0}, .pos0 = pos0};
    c.out = fvec(EB * ET * EC);
    c.wte = fvec(EV * EC);
    c.wpe = fvec(EP * EC);
    c.r = fvec(EB * ET * EC);
    fill_normal(c.wte, EV * EC, &rng, 0, 1);
    fill_normal(c.wpe, EP * EC, &rng, 0, 1);
    fill_uniform(c.r, EB * ET * EC, &rng, -1, 1);

    float *dwte = fvec(EV * EC), *dwpe = fvec(EP * EC);
    encoder_backward(dwte, dwpe, c.r, c.inp, pos0, EB, ET, EC);
    check_grad("encoder dwte", c.wte, dwte, EV * EC, enc_loss, &c);
    check_grad("encoder dwpe", c.wpe, dwpe, EP * EC, enc_loss, &c);
    for (int i = 0; i < EC; i++) assert_true(dwte[3 * EC + i] == 0.0f);
    for (int u = 0; u < n_unused; u++)
        for (int i = 0; i < EC; i++) assert_true(dwpe[wpe_unused[u] * EC + i] == 0.0f);

    // += contract for both parameter gradients
    float *s1 = fvec(EV * EC), *s2 = fvec(EP * EC), *g1 = fvec(EV * EC), *g2 = fvec(EP * EC);
    fill_normal(s1, EV * EC, &rng, 0, 1);
    fill_normal(s2, EP * EC, &rng, 0, 1);
    memcpy(g1, s1, EV * EC * sizeof(float));
    memcpy(g2, s2, EP * EC * sizeof(float));
    encoder_backward(g1, g2, c.r, c.inp, pos0, EB, ET, EC);
    check_accumulated("encoder dwte", g1, s1, dwte, EV * EC);
    check_accumulated("encoder dwpe", g2, s2, dwpe, EP * EC);

    free(c.out); free(c.wte); free(c.wpe); free(c.r);
    free(dwte); free(dwpe); free(s1); free(s2); free(g1); free(g2);
}

static void test_encoder_backward_fd(void **state) {
    (void)state;
    static const int unused_plain[] = {3, 4}, shift[EB] = {2, 0};
    check_encoder_backward(NULL, unused_plain, 2);
    check_encoder_backward(shift, NULL, 0);  // row 0 covers 2..4, row 1 0..2
}

static void test_encoder_forward_exact(void **state) {
    (void)state;
    RefRng rng;
    ref_rng_init(&rng, 2);
    int inp[EB * ET] = {3, 1, 0, 0, 2, 3};
    static const int shift[EB] = {0, 2};
    float *out = fvec(EB * ET * EC), *wte = fvec(EV * EC), *wpe = fvec(EP * EC);
    fill_normal(wte, EV * EC, &rng, 0, 1);
    fill_normal(wpe, EP * EC, &rng, 0, 1);
    // one float addition per element: exact equality with the same addition
    for (int shifted = 0; shifted < 2; shifted++) {
        encoder_forward(out, inp, shifted ? shift : NULL, wte, wpe, EB, ET, EC);
        for (int b = 0; b < EB; b++)
            for (int t = 0; t < ET; t++)
                for (int i = 0; i < EC; i++)
                    assert_true(out[(b * ET + t) * EC + i] ==
                                wte[inp[b * ET + t] * EC + i] +
                                    wpe[((shifted ? shift[b] : 0) + t) * EC + i]);
    }
    free(out); free(wte); free(wpe);
}

// ---------------------------------------------------------------------------
// layernorm
// ---------------------------------------------------------------------------
enum { LN_N = 4, LN_C = 8 };

typedef struct {
    float *out, *mean, *rstd, *inp, *w, *b, *r;
} LnCtx;

static double ln_loss(void *p) {
    LnCtx *c = p;
    layernorm_forward(c->out, c->mean, c->rstd, c->inp, c->w, c->b, LN_N, LN_C);
    return dot_rd(c->r, c->out, LN_N * LN_C);
}

static void test_layernorm_backward_fd(void **state) {
    (void)state;
    RefRng rng;
    ref_rng_init(&rng, 3);
    const int NC = LN_N * LN_C;
    LnCtx c = {fvec(NC), fvec(LN_N), fvec(LN_N), fvec(NC), fvec(LN_C), fvec(LN_C), fvec(NC)};
    fill_normal(c.inp, NC, &rng, 0.5, 1.0);  // nonzero mean: the mean path matters
    fill_normal(c.w, LN_C, &rng, 1.0, 0.3);
    fill_normal(c.b, LN_C, &rng, 0.0, 0.3);
    fill_uniform(c.r, NC, &rng, -1, 1);
    ln_loss(&c);  // caches mean, rstd for the backward

    float *dinp = fvec(NC), *dw = fvec(LN_C), *db = fvec(LN_C);
    layernorm_backward(dinp, dw, db, c.r, c.inp, c.w, c.mean, c.rstd, LN_N, LN_C);
    check_grad("layernorm dinp", c.inp, dinp, NC, ln_loss, &c);
    check_grad("layernorm dweight", c.w, dw, LN_C, ln_loss, &c);
    check_grad("layernorm dbias", c.b, db, LN_C, ln_loss, &c);

    // all three outputs accumulate ("adds to dinp", dweight/dbias +=)
    ln_loss(&c);
    float *si = fvec(NC), *sw = fvec(LN_C), *sb = fvec(LN_C);
    float *gi = fvec(NC), *gw = fvec(LN_C), *gb = fvec(LN_C);
    fill_normal(si, NC, &rng, 0, 1);
    fill_normal(sw, LN_C, &rng, 0, 1);
    fill_normal(sb, LN_C, &rng, 0, 1);
    memcpy(gi, si, NC * sizeof(float));
    memcpy(gw, sw, LN_C * sizeof(float));
    memcpy(gb, sb, LN_C * sizeof(float));
    layernorm_backward(gi, gw, gb, c.r, c.inp, c.w, c.mean, c.rstd, LN_N, LN_C);
    check_accumulated("layernorm dinp", gi, si, dinp, NC);
    check_accumulated("layernorm dweight", gw, sw, dw, LN_C);
    check_accumulated("layernorm dbias", gb, sb, db, LN_C);

    free(c.out); free(c.mean); free(c.rstd); free(c.inp); free(c.w); free(c.b); free(c.r);
    free(dinp); free(dw); free(db); free(si); free(sw); free(sb); free(gi); free(gw); free(gb);
}

static void test_layernorm_forward_naive(void **state) {
    (void)state;
    RefRng rng;
    ref_rng_init(&rng, 4);
    enum { N = 7, C = 37 };
    float *out = fvec(N * C), *mean = fvec(N), *rstd = fvec(N), *inp = fvec(N * C);
    float *w = fvec(C), *b = fvec(C);
    fill_normal(inp, N * C, &rng, 3.0, 2.0);
    fill_normal(w, C, &rng, 1.0, 0.5);
    fill_normal(b, C, &rng, 0.0, 0.5);
    layernorm_forward(out, mean, rstd, inp, w, b, N, C);
    for (int n = 0; n < N; n++) {
        double mu = 0, var = 0;
        for (int i = 0; i < C; i++) mu += inp[n * C + i];
        mu /= C;
        for (int i = 0; i < C; i++) var += (inp[n * C + i] - mu) * (inp[n * C + i] - mu);
        var /= C;
        double rs = 1.0 / sqrt(var + 1e-5);
        // float sums over C = 37 terms: a few 1e-7 relative; 1e-5 leaves margin
        assert_true(fabs(mean[n] - mu) <= 1e-5 * (fabs(mu) + 1.0));
        assert_true(fabs(rstd[n] - rs) <= 1e-5 * rs);
        for (int i = 0; i < C; i++) {
            double want = (inp[n * C + i] - mu) * rs * w[i] + b[i];
            assert_true(fabs(out[n * C + i] - want) <= 1e-5 * (fabs(want) + 1.0));
        }
    }
    free(out); free(mean); free(rstd); free(inp); free(w); free(b);
}

// ---------------------------------------------------------------------------
// matmul
// ---------------------------------------------------------------------------
enum { MM_N = 5, MM_C = 7, MM_OC = 6 };

typedef struct {
    float *out, *add, *inp, *w, *b, *r;
} MmCtx;

static double mm_loss(void *p) {
    MmCtx *c = p;
    matmul_forward(c->out, c->add, c->inp, c->w, c->b, MM_N, MM_C, MM_OC);
    return dot_rd(c->r, c->out, MM_N * MM_OC);
}

static void test_matmul_backward_fd(void **state) {
    (void)state;
    RefRng rng;
    ref_rng_init(&rng, 5);
    const int NI = MM_N * MM_C, NO = MM_N * MM_OC, NW = MM_OC * MM_C;
    MmCtx c = {fvec(NO), fvec(NO), fvec(NI), fvec(NW), fvec(MM_OC), fvec(NO)};
    fill_normal(c.add, NO, &rng, 0, 1);
    fill_normal(c.inp, NI, &rng, 0, 1);
    fill_normal(c.w, NW, &rng, 0, 0.5);
    fill_normal(c.b, MM_OC, &rng, 0, 0.5);
    fill_uniform(c.r, NO, &rng, -1, 1);

    float *dinp = fvec(NI), *dw = fvec(NW), *db = fvec(MM_OC);
    matmul_backward(dinp, dw, db, c.r, c.inp, c.w, MM_N, MM_C, MM_OC);
    check_grad("matmul dinp", c.inp, dinp, NI, mm_loss, &c);
    check_grad("matmul dweight", c.w, dw, NW, mm_loss, &c);
    check_grad("matmul dbias", c.b, db, MM_OC, mm_loss, &c);
    // out = add + ...: d L / d add must be r itself (the caller routes it)
    check_grad("matmul d add", c.add, c.r, NO, mm_loss, &c);

    // contract: dinp written, dweight/dbias accumulated
    float *gi = fvec(NI), *sw = fvec(NW), *sb = fvec(MM_OC), *gw = fvec(NW), *gb = fvec(MM_OC);
    fill_value(gi, NI, NAN);
    fill_normal(sw, NW, &rng, 0, 1);
    fill_normal(sb, MM_OC, &rng, 0, 1);
    memcpy(gw, sw, NW * sizeof(float));
    memcpy(gb, sb, MM_OC * sizeof(float));
    matmul_backward(gi, gw, gb, c.r, c.inp, c.w, MM_N, MM_C, MM_OC);
    check_overwritten("matmul dinp", gi, dinp, NI);
    check_accumulated("matmul dweight", gw, sw, dw, NW);
    check_accumulated("matmul dbias", gb, sb, db, MM_OC);

    // NULL dinp and dbias are skipped; dweight still accumulates
    memcpy(gw, sw, NW * sizeof(float));
    matmul_backward(NULL, gw, NULL, c.r, c.inp, c.w, MM_N, MM_C, MM_OC);
    check_accumulated("matmul dweight (NULL dinp, dbias)", gw, sw, dw, NW);

    free(c.out); free(c.add); free(c.inp); free(c.w); free(c.b); free(c.r);
    free(dinp); free(dw); free(db); free(gi); free(sw); free(sb); free(gw); free(gb);
}

// out vs a double loop, for every combination of bias / add / add aliasing
// out. Float dot products of K terms carry an error of at most ~K * 6e-8 of
// sum |terms| (K = 45 here, ~3e-6), usually sqrt(K) times less; so the bound
// is 1e-5 of sum |terms| (a relative error measured against the magnitudes
// that enter the sum, which is what float accuracy depends on).
static void test_matmul_forward_naive(void **state) {
    (void)state;
    RefRng rng;
    ref_rng_init(&rng, 6);
    enum { N = 33, C = 45, OC = 17 };
    float *out = fvec(N * OC), *add = fvec(N * OC), *inp = fvec(N * C), *w = fvec(OC * C);
    float *b = fvec(OC);
    fill_normal(inp, N * C, &rng, 0, 1);
    fill_normal(w, OC * C, &rng, 0, 1);
    fill_normal(b, OC, &rng, 0, 1);
    for (int mode = 0; mode < 6; mode++) {
        int use_bias = mode & 1, use_add = mode >= 2, alias = mode >= 4;
        fill_normal(add, N * OC, &rng, 0, 1);
        float *addcopy = fvec(N * OC);
        memcpy(addcopy, add, N * OC * sizeof(float));
        if (alias) memcpy(out, add, N * OC * sizeof(float));
        else fill_value(out, N * OC, NAN);  // out is write-only unless aliased
        matmul_forward(out, use_add ? (alias ? out : add) : NULL, inp, w,
                       use_bias ? b : NULL, N, C, OC);
        for (int n = 0; n < N; n++)
            for (int o = 0; o < OC; o++) {
                double s = 0, mag = 0;
                for (int i = 0; i < C; i++) {
                    s += (double)inp[n * C + i] * w[o * C + i];
                    mag += fabs((double)inp[n * C + i] * w[o * C + i]);
                }
                if (use_bias) { s += b[o]; mag += fabs(b[o]); }
                if (use_add) { s += addcopy[n * OC + o]; mag += fabs(addcopy[n * OC + o]); }
                double got = out[n * OC + o];
                if (!(fabs(got - s) <= 1e-5 * mag)) {
                    fprintf(stderr, "matmul mode %d [%d,%d]: %.8g vs %.8g\n", mode, n, o, got, s);
                    fail();
                }
            }
        free(addcopy);
    }
    free(out); free(add); free(inp); free(w); free(b);
}

// ---------------------------------------------------------------------------
// attention
// ---------------------------------------------------------------------------
enum { AB = 2, AT = 5, AC = 8, ANH = 2 };

typedef struct {
    float *out, *att, *qkv, *r;
} AttCtx;

static double att_loss(void *p) {
    AttCtx *c = p;
    attention_forward(c->out, c->att, c->qkv, AB, AT, AC, ANH);
    return dot_rd(c->r, c->out, AB * AT * AC);
}

static void test_attention_backward_fd(void **state) {
    (void)state;
    RefRng rng;
    ref_rng_init(&rng, 7);
    const int NQ = AB * AT * 3 * AC, NO = AB * AT * AC;
    // q, k ~ N(0, 1): scores q.k / sqrt(hs) are O(1), so the softmax is far
    // from uniform and far from one-hot
    AttCtx c = {fvec(NO), fvec(AB * ANH * AT * AT), fvec(NQ), fvec(NO)};
    fill_normal(c.qkv, NQ, &rng, 0, 1);
    fill_uniform(c.r, NO, &rng, -1, 1);
    att_loss(&c);

    float *scratch = fvec((long)max_threads() * AT * AT);
    float *dqkv = fvec(NQ);
    attention_backward(dqkv, scratch, c.r, c.qkv, c.att, AB, AT, AC, ANH);
    check_grad("attention dqkv", c.qkv, dqkv, NQ, att_loss, &c);

    // dqkv is written, not accumulated
    float *g = fvec(NQ);
    fill_value(g, NQ, NAN);
    fill_value(scratch, (long)max_threads() * AT * AT, NAN);
    attention_backward(g, scratch, c.r, c.qkv, c.att, AB, AT, AC, ANH);
    check_overwritten("attention dqkv", g, dqkv, NQ);

    free(c.out); free(c.att); free(c.qkv); free(c.r); free(scratch); free(dqkv); free(g);
}

// The same check across row blocks (T = 150 > ATT_BLOCK = 64, last block
// partial): dq from the row blocks, dk and dv from the column blocks.
enum { LB = 1, LT = 150, LC = 4, LNH = 1 };

static double att_long_loss(void *p) {
    AttCtx *c = p;
    attention_forward(c->out, c->att, c->qkv, LB, LT, LC, LNH);
    return dot_rd(c->r, c->out, LB * LT * LC);
}

static void test_attention_backward_fd_blocks(void **state) {
    (void)state;
    RefRng rng;
    ref_rng_init(&rng, 17);
    const int NQ = LB * LT * 3 * LC, NO = LB * LT * LC;
    AttCtx c = {fvec(NO), fvec((long)LB * LNH * LT * LT), fvec(NQ), fvec(NO)};
    fill_normal(c.qkv, NQ, &rng, 0, 1);
    fill_uniform(c.r, NO, &rng, -1, 1);
    att_long_loss(&c);
    float *scratch = fvec((long)max_threads() * LT * LT), *dqkv = fvec(NQ);
    attention_backward(dqkv, scratch, c.r, c.qkv, c.att, LB, LT, LC, LNH);
    check_grad("attention dqkv (3 blocks)", c.qkv, dqkv, NQ, att_long_loss, &c);
    free(c.out); free(c.att); free(c.qkv); free(c.r); free(scratch); free(dqkv);
}

// Causality: with the loss on position t0 only, nothing at a later position
// (its q, k or v) may receive gradient, and changing a later position's qkv
// must not change any output at positions <= t0. Both must hold exactly:
// the masked probabilities are exact zeros.
static void test_attention_causal(void **state) {
    (void)state;
    RefRng rng;
    ref_rng_init(&rng, 8);
    const int NQ = AB * AT * 3 * AC, NO = AB * AT * AC;
    AttCtx c = {fvec(NO), fvec(AB * ANH * AT * AT), fvec(NQ), fvec(NO)};
    fill_normal(c.qkv, NQ, &rng, 0, 1);
    float *scratch = fvec((long)max_threads() * AT * AT), *dqkv = fvec(NQ);
    for (int t0 = 0; t0 < AT; t0++) {
        memset(c.r, 0, NO * sizeof(float));
        for (int b = 0; b < AB; b++)
            for (int i = 0; i < AC; i++) c.r[(b * AT + t0) * AC + i] = (float)(ref_rng_uniform(&rng) - 0.5);
        att_loss(&c);
        // probabilities above the diagonal are exact zeros, rows sum to 1
        for (int bh = 0; bh < AB * ANH; bh++)
            for (int t = 0; t < AT; t++) {
                double s = 0;
                for (int j = 0; j < AT; j++) {
                    float a = c.att[((size_t)bh * AT + t) * AT + j];
                    if (j > t) assert_true(a == 0.0f);
                    s += a;
                }
                assert_true(fabs(s - 1.0) <= 1e-6);  // AT float terms of <= 1
            }
        attention_backward(dqkv, scratch, c.r, c.qkv, c.att, AB, AT, AC, ANH);
        for (int b = 0; b < AB; b++)
            for (int t = t0 + 1; t < AT; t++)
                for (int i = 0; i < 3 * AC; i++)
                    assert_true(dqkv[(b * AT + t) * 3 * AC + i] == 0.0f);
        // and the gradient before t0 is not all zero (the test can see a leak)
        double mass = 0;
        for (int b = 0; b < AB; b++)
            for (int i = 0; i < 3 * AC; i++) mass += fabs(dqkv[(b * AT + t0) * 3 * AC + i]);
        assert_true(mass > 0.0);
    }
    // forward: scramble the last position, earlier outputs stay bit-identical
    float *out0 = fvec(NO);
    attention_forward(out0, c.att, c.qkv, AB, AT, AC, ANH);
    for (int b = 0; b < AB; b++)
        for (int i = 0; i < 3 * AC; i++) c.qkv[(b * AT + AT - 1) * 3 * AC + i] += 3.0f;
    attention_forward(c.out, c.att, c.qkv, AB, AT, AC, ANH);
    for (int b = 0; b < AB; b++)
        assert_memory_equal(c.out + b * AT * AC, out0 + b * AT * AC, (AT - 1) * AC * sizeof(float));
    free(out0); free(c.out); free(c.att); free(c.qkv); free(c.r); free(scratch); free(dqkv);
}

// Forward against a double loop: out and the cached probabilities. Terms are
// probabilities (<= 1) times O(1) values; float softmax with fast_expf
// (2e-7) and sgemm sums of T terms give ~1e-6 relative error, so 1e-5 of
// (sum_j p_j |v_j|) for out and 1e-5 absolute for probabilities in [0, 1].
// T = 11 is one row block; T = 150 spans three blocks of the causal
// blocking in attention_forward (ATT_BLOCK = 64), the last one partial.
static void attention_forward_naive_case(int B, int T, int C, int NH, uint64_t seed) {
    RefRng rng;
    ref_rng_init(&rng, seed);
    const int hs = C / NH;
    float *out = fvec(B * T * C), *att = fvec((long)B * NH * T * T), *qkv = fvec(B * T * 3 * C);
    fill_normal(qkv, B * T * 3 * C, &rng, 0, 1.2);
    fill_value(out, B * T * C, NAN);
    fill_value(att, B * NH * T * T, NAN);
    attention_forward(out, att, qkv, B, T, C, NH);
    double *p = calloc((size_t)T, sizeof(double));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const float *q = qkv + (b * T + t) * 3 * C + h * hs;
                double mx = -INFINITY, z = 0;
                for (int j = 0; j <= t; j++) {
                    const float *k = qkv + (b * T + j) * 3 * C + C + h * hs;
                    double s = 0;
                    for (int i = 0; i < hs; i++) s += (double)q[i] * k[i];
                    p[j] = s / sqrt((double)hs);
                    mx = fmax(mx, p[j]);
                }
                for (int j = 0; j <= t; j++) z += (p[j] = exp(p[j] - mx));
                for (int j = 0; j < T; j++) {
                    double want = j <= t ? p[j] / z : 0.0;
                    float got = att[((b * NH + h) * T + t) * T + j];
                    assert_true(fabs(got - want) <= 1e-5);
                }
                for (int i = 0; i < hs; i++) {
                    double s = 0, mag = 0;
                    for (int j = 0; j <= t; j++) {
                        double v = qkv[(b * T + j) * 3 * C + 2 * C + h * hs + i];
                        s += p[j] / z * v;
                        mag += p[j] / z * fabs(v);
                    }
                    float got = out[(b * T + t) * C + h * hs + i];
                    if (!(fabs(got - s) <= 1e-5 * mag)) {
                        fprintf(stderr, "attention out [%d,%d,%d,%d]: %.8g vs %.8g\n", b, h, t, i, got, s);
                        fail();
                    }
                }
            }
    free(p); free(out); free(att); free(qkv);
}

static void test_attention_forward_naive(void **state) {
    (void)state;
    attention_forward_naive_case(3, 11, 12, 3, 9);
    attention_forward_naive_case(2, 150, 8, 2, 19);
}

// ---------------------------------------------------------------------------
// GELU
// ---------------------------------------------------------------------------
enum { GN = 64 };

typedef struct {
    float *out, *inp, *r;
} GeluCtx;

static double gelu_loss(void *p) {
    GeluCtx *c = p;
    gelu_forward(c->out, c->inp, GN);
    return dot_rd(c->r, c->out, GN);
}

static double gelu_ref(double x) {
    return 0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
}

static void test_gelu_backward_fd(void **state) {
    (void)state;
    RefRng rng;
    ref_rng_init(&rng, 10);
    GeluCtx c = {fvec(GN), fvec(GN), fvec(GN)};
    fill_uniform(c.inp, GN, &rng, -4, 4);
    c.inp[0] = 0.0f;  // the cancellation point of tanh = 1 - 2/(1+e^2u)
    c.inp[1] = 12.0f;  // saturated on both sides
    c.inp[2] = -12.0f;
    fill_uniform(c.r, GN, &rng, -1, 1);
    float *dinp = fvec(GN);
    gelu_backward(dinp, c.inp, c.r, GN);
    check_grad("gelu dinp", c.inp, dinp, GN, gelu_loss, &c);

    // dinp is written; it may alias dout
    float *g = fvec(GN);
    fill_value(g, GN, NAN);
    gelu_backward(g, c.inp, c.r, GN);
    check_overwritten("gelu dinp", g, dinp, GN);
    memcpy(g, c.r, GN * sizeof(float));
    gelu_backward(g, c.inp, g, GN);
    check_overwritten("gelu dinp aliasing dout", g, dinp, GN);
    free(c.out); free(c.inp); free(c.r); free(dinp); free(g);
}

// Forward against tanh() in double on [-10, 10]. fast_expf is within 2e-7
// relative, and 1 - 2/(1 + e^2u) keeps tanh to a few 1e-8 absolute (it
// loses relative accuracy only near 0, where 0.5 x (1 + tanh) does not
// care). So |error| <= ~1e-7 |x|; the bound 2e-6 * max(|x|, 1e-2) is ~20
// float ulps of x, while a wrong constant (sqrt(2/pi), 0.044715) or the erf
// form of GELU differ by >= 1e-4 somewhere on the grid.
static void test_gelu_forward_naive(void **state) {
    (void)state;
    enum { N = 20001 };
    float *x = fvec(N), *y = fvec(N);
    for (int i = 0; i < N; i++) x[i] = -10.0f + 20.0f * (float)i / (N - 1);
    gelu_forward(y, x, N);
    for (int i = 0; i < N; i++) {
        double want = gelu_ref(x[i]);
        if (!(fabs(y[i] - want) <= 2e-6 * fmax(fabs(x[i]), 1e-2))) {
            fprintf(stderr, "gelu(%.8g) = %.9g, want %.9g\n", x[i], y[i], want);
            fail();
        }
    }
    free(x); free(y);
}

// ---------------------------------------------------------------------------
// cross-entropy
// ---------------------------------------------------------------------------
enum { CE_N = 6, CE_V = 7 };

typedef struct {
    float *losses, *logits, *r;
    int targets[CE_N];
} CeCtx;

static double ce_loss(void *p) {
    CeCtx *c = p;
    crossentropy_forward(c->losses, c->logits, c->targets, CE_N, CE_V);
    return dot_rd(c->r, c->losses, CE_N);
}

static void test_crossentropy_backward_fd(void **state) {
    (void)state;
    RefRng rng;
    ref_rng_init(&rng, 11);
    // rows 1 and 4 masked (target < 0); row 3 valid but weight 0
    CeCtx c = {fvec(CE_N), fvec(CE_N * CE_V), fvec(CE_N), {3, -1, 0, 6, -100, 2}};
    fill_normal(c.logits, CE_N * CE_V, &rng, 0, 2);
    fill_uniform(c.r, CE_N, &rng, 0.1, 1.0);  // per-row weights (dlosses)
    c.r[3] = 0.0f;
    float *dl = fvec(CE_N * CE_V);
    fill_value(dl, CE_N * CE_V, NAN);  // also checks that every row is written
    crossentropy_backward(dl, c.logits, c.targets, c.r, CE_N, CE_V);
    check_grad("crossentropy dlogits", c.logits, dl, CE_N * CE_V, ce_loss, &c);
    for (int n = 0; n < CE_N; n++) {
        if (c.targets[n] >= 0 && c.r[n] != 0.0f) continue;
        for (int j = 0; j < CE_V; j++) assert_true(dl[n * CE_V + j] == 0.0f);  // exact zeros
    }
    // masked rows have loss exactly 0, whatever their logits
    ce_loss(&c);
    assert_true(c.losses[1] == 0.0f && c.losses[4] == 0.0f);
    // the gradient of a valid row sums to zero (softmax minus one-hot): 1e-6
    // covers V float terms of size <= weight
    for (int n = 0; n < CE_N; n++) {
        double s = 0;
        for (int j = 0; j < CE_V; j++) s += dl[n * CE_V + j];
        assert_true(fabs(s) <= 1e-6);
    }
    free(c.losses); free(c.logits); free(c.r); free(dl);
}

// losses vs log-sum-exp in double, including large logits (max subtraction);
// 1e-5 absolute + 1e-6 relative: log of a sum of V fast_expf terms
static void test_crossentropy_forward_naive(void **state) {
    (void)state;
    RefRng rng;
    ref_rng_init(&rng, 12);
    enum { N = 9, V = 50 };
    float *logits = fvec(N * V), *losses = fvec(N);
    int targets[N];
    fill_normal(logits, N * V, &rng, 0, 3);
    for (int j = 0; j < V; j++) logits[8 * V + j] += 1000.0f;  // would overflow expf
    for (int n = 0; n < N; n++) targets[n] = ref_rng_int(&rng, V);
    targets[2] = -1;
    crossentropy_forward(losses, logits, targets, N, V);
    for (int n = 0; n < N; n++) {
        if (targets[n] < 0) { assert_true(losses[n] == 0.0f); continue; }
        double mx = -INFINITY, z = 0;
        for (int j = 0; j < V; j++) mx = fmax(mx, logits[n * V + j]);
        for (int j = 0; j < V; j++) z += exp((double)logits[n * V + j] - mx);
        double want = mx + log(z) - logits[n * V + targets[n]];
        assert_true(isfinite(losses[n]));
        assert_true(fabs(losses[n] - want) <= 1e-5 + 1e-6 * fabs(mx));
    }
    free(logits); free(losses);
}

// crossentropy_fused is crossentropy_forward + crossentropy_backward done in
// place: the same bits for the losses and the gradient (which the finite
// difference check above covers), on rows of every kind: masked (target
// < 0), weight 0, huge logits, and a V that is not a multiple of the vector
// width.
static void test_crossentropy_fused_same_bits(void **state) {
    (void)state;
    RefRng rng;
    ref_rng_init(&rng, 13);
    enum { N = 9, V = 1001 };
    float *logits = fvec(N * V), *losses = fvec(N), *dl = fvec(N * V), *w = fvec(N);
    float *fused = fvec(N * V), *losses2 = fvec(N);
    int targets[N];
    fill_normal(logits, N * V, &rng, 0, 3);
    for (int j = 0; j < V; j++) logits[8 * V + j] += 1000.0f;
    for (int n = 0; n < N; n++) targets[n] = ref_rng_int(&rng, V);
    fill_uniform(w, N, &rng, 0.1, 1.0);
    targets[2] = -1;
    w[5] = 0.0f;
    crossentropy_forward(losses, logits, targets, N, V);
    crossentropy_backward(dl, logits, targets, w, N, V);
    memcpy(fused, logits, (size_t)N * V * sizeof(float));
    fill_value(losses2, N, NAN);
    crossentropy_fused(losses2, fused, targets, w, N, V);
    assert_memory_equal(losses2, losses, N * sizeof(float));
    assert_memory_equal(fused, dl, (size_t)N * V * sizeof(float));
    free(logits); free(losses); free(dl); free(w); free(fused); free(losses2);
}

// ---------------------------------------------------------------------------
// value head
// ---------------------------------------------------------------------------
enum { VN = 5, VC = 6 };

typedef struct {
    float *out, *inp, *w, *b, *r;
} ValCtx;

static double val_loss(void *p) {
    ValCtx *c = p;
    value_forward(c->out, c->inp, c->w, c->b, VN, VC);
    return dot_rd(c->r, c->out, VN);
}

static void test_value_backward_fd(void **state) {
    (void)state;
    RefRng rng;
    ref_rng_init(&rng, 13);
    ValCtx c = {fvec(VN), fvec(VN * VC), fvec(VC), fvec(1), fvec(VN)};
    fill_normal(c.inp, VN * VC, &rng, 0, 1);
    fill_normal(c.w, VC, &rng, 0, 1);
    c.b[0] = 0.7f;
    fill_uniform(c.r, VN, &rng, -1, 1);
    c.r[2] = 0.0f;  // a zero dout row (the code has a shortcut for it)
    float *di = fvec(VN * VC), *dw = fvec(VC), *db = fvec(1);
    value_backward(di, dw, db, c.r, c.inp, c.w, VN, VC);
    check_grad("value dinp", c.inp, di, VN * VC, val_loss, &c);
    check_grad("value dweight", c.w, dw, VC, val_loss, &c);
    check_grad("value dbias", c.b, db, 1, val_loss, &c);

    // forward against a double loop (C = 6 terms: 1e-6 relative to sum |terms|)
    val_loss(&c);  // check_grad left out at a perturbed input
    for (int n = 0; n < VN; n++) {
        double s = c.b[0], mag = fabs(c.b[0]);
        for (int i = 0; i < VC; i++) {
            s += (double)c.inp[n * VC + i] * c.w[i];
            mag += fabs((double)c.inp[n * VC + i] * c.w[i]);
        }
        assert_true(fabs(c.out[n] - s) <= 1e-6 * mag);
    }

    // all three accumulate
    float *si = fvec(VN * VC), *sw = fvec(VC), *sb = fvec(1);
    float *gi = fvec(VN * VC), *gw = fvec(VC), *gb = fvec(1);
    fill_normal(si, VN * VC, &rng, 0, 1);
    fill_normal(sw, VC, &rng, 0, 1);
    sb[0] = -0.3f;
    memcpy(gi, si, VN * VC * sizeof(float));
    memcpy(gw, sw, VC * sizeof(float));
    gb[0] = sb[0];
    value_backward(gi, gw, gb, c.r, c.inp, c.w, VN, VC);
    check_accumulated("value dinp", gi, si, di, VN * VC);
    check_accumulated("value dweight", gw, sw, dw, VC);
    check_accumulated("value dbias", gb, sb, db, 1);

    free(c.out); free(c.inp); free(c.w); free(c.b); free(c.r);
    free(di); free(dw); free(db); free(si); free(sw); free(sb); free(gi); free(gw); free(gb);
}

// ---------------------------------------------------------------------------
// fast_expf
// ---------------------------------------------------------------------------

// The header promises relative error below 2e-7 on [-87, 88] and saturation
// outside. Checked on 4M evenly spaced points, the ends, and points around
// every multiple of ln 2 / 2 (where the range reduction switches n).
static void test_fast_expf_accuracy(void **state) {
    (void)state;
    double worst = 0.0;
    float worst_x = 0.0f;
    const long M = 1L << 22;
    for (long i = 0; i <= M; i++) {
        float x = (float)(-87.0 + 175.0 * (double)i / M);
        if (x < -87.0f || x > 88.0f) continue;
        double want = exp((double)x);
        double rel = fabs((double)fast_expf(x) - want) / want;
        if (rel > worst) { worst = rel; worst_x = x; }
    }
    for (int k = -251; k <= 253; k++) {
        float x0 = (float)(k * 0.34657359027997264);
        float x = x0;
        for (int s = 0; s < 8; s++) x = nextafterf(x, -INFINITY);
        for (int s = 0; s < 16; s++, x = nextafterf(x, INFINITY)) {
            if (x < -87.0f || x > 88.0f) continue;
            double want = exp((double)x);
            double rel = fabs((double)fast_expf(x) - want) / want;
            if (rel > worst) { worst = rel; worst_x = x; }
        }
    }
    if (getenv("RLHF_TEST_VERBOSE")) fprintf(stderr, "fast_expf worst rel %.3g at %.9g\n", worst, worst_x);
    if (!(worst < 2e-7)) {
        fprintf(stderr, "fast_expf: relative error %.3g at x = %.9g (promised < 2e-7)\n", worst,
                worst_x);
        fail();
    }
    // saturation: clamped, finite, positive, monotone at the ends
    assert_true(fast_expf(-1000.0f) == fast_expf(-87.0f));
    assert_true(fast_expf(1000.0f) == fast_expf(88.0f));
    assert_true(isfinite(fast_expf(1000.0f)) && fast_expf(-1000.0f) > 0.0f);
    assert_true(fast_expf(0.0f) == 1.0f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fast_expf_accuracy),
        cmocka_unit_test(test_encoder_forward_exact),
        cmocka_unit_test(test_encoder_backward_fd),
        cmocka_unit_test(test_layernorm_forward_naive),
        cmocka_unit_test(test_layernorm_backward_fd),
        cmocka_unit_test(test_matmul_forward_naive),
        cmocka_unit_test(test_matmul_backward_fd),
        cmocka_unit_test(test_attention_forward_naive),
        cmocka_unit_test(test_attention_backward_fd),
        cmocka_unit_test(test_attention_backward_fd_blocks),
        cmocka_unit_test(test_attention_causal),
        cmocka_unit_test(test_gelu_forward_naive),
        cmocka_unit_test(test_gelu_backward_fd),
        cmocka_unit_test(test_crossentropy_forward_naive),
        cmocka_unit_test(test_crossentropy_backward_fd),
        cmocka_unit_test(test_crossentropy_fused_same_bits),
        cmocka_unit_test(test_value_backward_fd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

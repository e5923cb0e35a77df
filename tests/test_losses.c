// Checks src/losses.c against independent double computations written here:
// log-probs and entropy, the Bradley-Terry loss (alone and through a GPT's
// value head, against the double reference model), the KL estimators, GAE,
// whitening, the adaptive KL controller, the PPO clipped policy and value
// objectives with their gradients by central differences, the group
// methods' policy loss (k3 KL in the loss, per-sequence normalisation) and
// their advantages (GRPO, RLOO, REINFORCE) against hand-computed values. The PPO
// engine that calls these lives in test_ppo.c.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "evaluate.h"
#include "gpt.h"
#include "losses.h"
#include "ref_gpt.h"

// Sanitizer build: undefined behaviour fails this binary.
#if defined(__SANITIZE_ADDRESS__)
const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void) { return "halt_on_error=1:print_stacktrace=1"; }
#endif

static int verbose(void) { return getenv("RLHF_TEST_VERBOSE") != NULL; }

// log softmax of row / temperature in double, into lp (V); returns entropy.
static double ref_log_softmax(double *lp, const double *row, int V, double temperature) {
    double mx = -INFINITY, s = 0.0, h = 0.0;
    for (int j = 0; j < V; j++) mx = fmax(mx, row[j] / temperature);
    for (int j = 0; j < V; j++) s += exp(row[j] / temperature - mx);
    for (int j = 0; j < V; j++) lp[j] = row[j] / temperature - mx - log(s);
    for (int j = 0; j < V; j++) h -= exp(lp[j]) * lp[j];
    return h;
}

// ---------------------------------------------------------------------------
// log-probs and entropy
// ---------------------------------------------------------------------------

// Against double at temperatures 0.7 and 1.6, rows of O(1..3) logits plus a
// row of huge logits (~1300 after the temperature: stability). z = logit / T
// and its log-sum-exp are floats, so logp and entropy carry a few ulp of
// max |z|: the bound is 2e-6 + 8 FLT_EPSILON max|z| (2e-6 for the O(1)
// rows, 1.2e-3 for the huge one, whose logp is -10: still finite and right
// to 1e-5 relative). Masked rows give 0.
static void test_logprobs_entropy_match_double(void **state) {
    (void)state;
    enum { N = 6, V = 11 };
    RefRng r;
    ref_rng_init(&r, 11);
    float logits[N * V];
    int actions[N];
    for (int i = 0; i < N * V; i++) logits[i] = (float)(2.0 * ref_rng_normal(&r));
    for (int j = 0; j < V; j++) logits[4 * V + j] = 900.0f + (float)j;  // overflow bait
    for (int n = 0; n < N; n++) actions[n] = ref_rng_int(&r, V);
    actions[4] = 3;
    const unsigned char mask[N] = {1, 1, 0, 1, 1, 1};
    const float temps[] = {0.7f, 1.6f};
    for (int k = 0; k < 2; k++) {
        float logp[N], ent[N], logp2[N];
        memset(logp, 0x7f, sizeof logp);  // garbage that must be overwritten
        logprobs_from_logits(logp, ent, logits, actions, mask, N, V, temps[k]);
        logprobs_from_logits(logp2, NULL, logits, actions, NULL, N, V, temps[k]);
        for (int n = 0; n < N; n++) {
            double row[V], lp[V];
            for (int j = 0; j < V; j++) row[j] = logits[n * V + j];
            double h = ref_log_softmax(lp, row, V, temps[k]);
            if (verbose())
                fprintf(stderr, "T=%.1f n=%d logp %.8f ref %.8f H %.8f ref %.8f\n", temps[k], n,
                        logp2[n], lp[actions[n]], ent[n], h);
            double zmax = 0.0;
            for (int j = 0; j < V; j++) zmax = fmax(zmax, fabs(row[j] / temps[k]));
            const double tol = 2e-6 + 8 * FLT_EPSILON * zmax;
            assert_true(isfinite(logp2[n]) && isfinite(ent[n]));
            assert_true(fabs(logp2[n] - lp[actions[n]]) <= tol);
            if (!mask[n]) {
                assert_true(logp[n] == 0.0f && ent[n] == 0.0f);
                continue;
            }
            assert_true(logp[n] == logp2[n]);  // the mask changes nothing else
            assert_true(fabs(ent[n] - h) <= tol);
        }
    }
}

// ---------------------------------------------------------------------------
// Bradley-Terry
// ---------------------------------------------------------------------------

static double softplus_d(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }

// The grouped Bradley-Terry loss in double: mean over groups of the mean
// over a group's pairs of -log sigmoid(r_c - r_r - margin) + center (r_c +
// r_r)^2.
static double ref_bt_group(const double *r, const int *chosen, const int *rejected,
                           const int *pair_off, int n_groups, double margin, double center) {
    double s = 0.0;
    for (int g = 0; g < n_groups; g++) {
        double sg = 0.0;
        for (int p = pair_off[g]; p < pair_off[g + 1]; p++) {
            const double sum = r[chosen[p]] + r[rejected[p]];
            sg += softplus_d(-(r[chosen[p]] - r[rejected[p]] - margin)) + center * sum * sum;
        }
        s += sg / (pair_off[g + 1] - pair_off[g]);
    }
    return s / n_groups;
}

// Checks bt_group_loss on rewards r (n rows): value within 1e-6 relative of
// the double reference; every dr against central differences of the
// double loss (h = 1e-5: truncation h^2/6 |f'''| < 1e-11, rounding
// 1e-16/h = 1e-11), within 1e-6 absolute (a row's gradient is a sum of a
// few terms of size at most 1 that come out as floats: ~1e-7). Returns
// the loss.
static float check_bt_group(const float *r, int n, const int *chosen, const int *rejected,
                            const int *pair_off, int n_groups, float margin, float center,
                            float *dr, float *acc, float *mm) {
    enum { MAXR = 16 };
    assert_true(n <= MAXR);
    float loss = bt_group_loss(r, n, chosen, rejected, pair_off, n_groups, margin, center, dr,
                               acc, mm);
    double d[MAXR];
    for (int i = 0; i < n; i++) d[i] = r[i];
    const double want = ref_bt_group(d, chosen, rejected, pair_off, n_groups, margin, center);
    if (verbose()) fprintf(stderr, "bt loss %.9g ref %.9g\n", loss, want);
    assert_true(fabs(loss - want) <= 1e-6 * want);
    const double h = 1e-5;
    for (int i = 0; i < n; i++) {
        const double save = d[i];
        d[i] = save + h;
        const double fp = ref_bt_group(d, chosen, rejected, pair_off, n_groups, margin, center);
        d[i] = save - h;
        const double fm = ref_bt_group(d, chosen, rejected, pair_off, n_groups, margin, center);
        d[i] = save;
        const double fd = (fp - fm) / (2 * h);
        if (verbose()) fprintf(stderr, "  row %d dr %.9g fd %.9g\n", i, dr[i], fd);
        assert_true(fabs(dr[i] - fd) <= 1e-6);
    }
    return loss;
}

// Plain pairs (a group each; rows: the n chosen, then the n rejected),
// including pairs far apart (+-60: no overflow, gradient 0 or -1/n), a pair
// exactly at the margin (loss log 2) and a tie. Accuracy counts rc > rr
// (the margin plays no part; a tie is wrong); mean margin is the mean of
// rc - rr.
static void test_bt_loss_value_gradient_stats(void **state) {
    (void)state;
    enum { n = 6 };
    const float margin = 0.5f;
    // pair 4 sits exactly on the margin: rc - rr = 0.5
    const float r[2 * n] = {1.25f, -0.5f, 60.0f, -30.0f, 0.75f, 0.3f,
                            0.5f,  0.25f, 0.0f,  30.0f,  0.25f, 0.3f};
    int chosen[n], rejected[n], off[n + 1];
    for (int i = 0; i < n; i++) chosen[i] = i, rejected[i] = n + i, off[i] = i;
    off[n] = n;
    float dr[2 * n], acc = -1, mm = -1;
    float loss = check_bt_group(r, 2 * n, chosen, rejected, off, n, margin, 0.0f, dr, &acc, &mm);
    // hand value: the pair on the margin contributes log 2, the +-60 pairs
    // 60.5 and ~e^-59.5
    assert_true(loss > (log(2.0) + 60.5) / n);
    assert_true(fabs(dr[4] - (-0.5 / n)) <= 1e-7);  // sigmoid(0) / n
    assert_true(fabs(dr[3] - (-1.0 / n)) <= 1e-7);  // far wrong: full gradient
    assert_true(fabs(dr[2]) <= 1e-7);               // far right: none
    for (int i = 0; i < n; i++) assert_true(dr[i] == -dr[n + i]);
    // rc > rr in pairs 0, 2, 4 (pair 4 although below the margin; 5 is a tie)
    assert_true(acc == 3.0f / n);
    double gap = 0.0;
    for (int i = 0; i < n; i++) gap += (double)r[i] - r[n + i];
    assert_true(fabs(mm - gap / n) <= 1e-6);
    // stats are optional
    float loss2 = bt_group_loss(r, 2 * n, chosen, rejected, off, n, margin, 0.0f, dr, NULL, NULL);
    assert_true(loss2 == loss);
    // margin 0 is plain -log sigmoid(rc - rr)
    const float z[2] = {0.0f, 0.0f};
    const int c0[1] = {0}, r0[1] = {1}, o1[2] = {0, 1};
    assert_true(fabs(bt_group_loss(z, 2, c0, r0, o1, 1, 0.0f, 0.0f, dr, NULL, NULL) - log(2.0)) <=
                1e-7);
}

// Three prompts' ranked responses (rows 0-3, 4-5, 6-8) and their pairs,
// for the grouped tests below.
static const float grp_r[9] = {0.9f, -0.2f, 0.4f, -1.1f, 0.3f, 0.8f, 2.0f, -0.7f, 1.5f};
static const int grp_chosen[6] = {0, 0, 2, 4, 6, 6};
static const int grp_rejected[6] = {1, 3, 3, 5, 7, 8};
static const int grp_off[4] = {0, 3, 4, 6};

// Grouped comparisons: three prompts with 4, 2 and 3 ranked responses
// (rows 0-3, 4-5, 6-8) giving 3, 1 and 2 pairs (equal ranks give none), a
// row in several pairs, and one label against the rewards. Value and
// gradient as above; by hand, each group weighs 1/3 whatever its pair
// count, so the single pair of group 1 gets gradient sigmoid(-x)/3 and each
// pair of group 0 sigmoid(-x)/9.
static void test_bt_group_loss(void **state) {
    (void)state;
    const float *r = grp_r;
    const int *chosen = grp_chosen, *rejected = grp_rejected, *off = grp_off;
    float dr[9], acc, mm;
    float loss = check_bt_group(r, 9, chosen, rejected, off, 3, 0.1f, 0.0f, dr, &acc, &mm);
    assert_true(loss > 0.0f);
    const double x = (double)0.3f - 0.8f - 0.1f;  // group 1's pair, against its rewards
    assert_true(fabs(dr[4] - (-1.0 / (1.0 + exp(x)) / 3)) <= 1e-7);
    const double x01 = (double)0.9f - (-0.2f) - 0.1f;
    assert_true(fabs(dr[1] - 1.0 / (1.0 + exp(x01)) / 9) <= 1e-7);
    assert_true(acc == 5.0f / 6);  // all but group 1's pair
    // within a group the gradients sum to zero (row 0, chosen twice, sums both)
    assert_true(fabs(dr[0] + dr[1] + dr[2] + dr[3]) <= 1e-7);
    // the same pairs counted flat would not weigh the groups equally
    const int each[7] = {0, 1, 2, 3, 4, 5, 6};
    float dr2[9];
    float flat = bt_group_loss(r, 9, chosen, rejected, each, 6, 0.1f, 0.0f, dr2, NULL, NULL);
    assert_true(fabs(flat - loss) > 1e-3);
}

// The center term (reward.center_coef) on the same groups: value and
// gradient against the double reference and central differences; by hand,
// a single pair of equal rewards a scores log 2 + c (2a)^2 with gradients
// -1/2 + 4ca (chosen) and 1/2 + 4ca (rejected); the stats ignore it; a
// group's gradients no longer sum to zero unless its rewards do.
static void test_bt_group_center(void **state) {
    (void)state;
    const float *r = grp_r;
    const int *chosen = grp_chosen, *rejected = grp_rejected, *off = grp_off;
    float dr[9], acc, mm, dr0[9], acc0, mm0;
    const float c = 0.05f;
    float loss = check_bt_group(r, 9, chosen, rejected, off, 3, 0.1f, c, dr, &acc, &mm);
    float loss0 = bt_group_loss(r, 9, chosen, rejected, off, 3, 0.1f, 0.0f, dr0, &acc0, &mm0);
    assert_true(loss > loss0);
    assert_true(acc == acc0 && mm == mm0);
    const float a = 0.75f, z[2] = {a, a};
    const int c0[1] = {0}, r0[1] = {1}, o1[2] = {0, 1};
    float d2[2];
    float l1 = bt_group_loss(z, 2, c0, r0, o1, 1, 0.0f, c, d2, NULL, NULL);
    assert_true(fabs(l1 - (log(2.0) + (double)c * 4 * a * a)) <= 1e-6);
    assert_true(fabs(d2[0] - (-0.5 + 4.0 * c * a)) <= 1e-7);
    assert_true(fabs(d2[1] - (0.5 + 4.0 * c * a)) <= 1e-7);
    assert_true(fabs(dr[4] + dr[5] - 2.0 * c * 2.0 * (0.3 + 0.8) / 3) <= 1e-6);
}

// ---------------------------------------------------------------------------
// The pairwise loss through the value head
//
// Two preference pairs of different lengths in one right-padded batch
// (rows: chosen 0, chosen 1, rejected 0, rejected 1); each row's reward is
// the value at its last real token; loss = bt_group_loss, a group per pair. The gradient from
// gpt_backward(dvalues) is compared with a 5-point finite difference of the
// whole loss computed by the double reference model (tests/ref_gpt.c),
// e = 1e-3, along random unit directions: over all parameters, over the
// value head's weight and over two trunk tensors. The value head's bias
// cancels in rc - rr, so its gradient must vanish (drc + drr = 0 per pair,
// float rounding: |g| <= 1e-6) instead of being checked along a direction. Bound as in
// test_gpt.c: |g.d - fd| <= 1e-4 max(|g.d|, |fd|) + 1e-6 |g_P| |d| (float
// activations give ~1e-6 relative noise per component; a wrong gradient
// misses by O(|g_P|)).
// ---------------------------------------------------------------------------

enum { PL = 2, PNH = 2, PC = 16, PT = 8, PV = 13, PPAD = 12, NPAIR = 2 };
// a group per pair: rows chosen 0, chosen 1, rejected 0, rejected 1
static const int pair_chosen[NPAIR] = {0, 1}, pair_rejected[NPAIR] = {2, 3};
static const int pair_off[NPAIR + 1] = {0, 1, 2};

typedef struct {
    const GPTConfig *c;
    const ParamInfo *info;
    const int *inputs;  // (2*NPAIR, PT)
    const int *last;    // (2*NPAIR)
    float margin;
} PairObjective;

static double pair_objective(const PairObjective *o, const double *params) {
    double values[2 * NPAIR * PT], rc[NPAIR], rr[NPAIR];
    ref_gpt_forward(o->c, o->info, params, o->inputs, NULL, NULL, 2 * NPAIR, PT, NULL, values);
    for (int i = 0; i < NPAIR; i++) {
        rc[i] = values[i * PT + o->last[i]];
        rr[i] = values[(NPAIR + i) * PT + o->last[NPAIR + i]];
    }
    double r[2 * NPAIR];
    for (int i = 0; i < NPAIR; i++) r[i] = rc[i], r[NPAIR + i] = rr[i];
    return ref_bt_group(r, pair_chosen, pair_rejected, pair_off, NPAIR, o->margin, 0.0);
}

static double pair_objective_at(const void *o, const double *x) { return pair_objective(o, x); }

static void test_bt_loss_through_value_head(void **state) {
    (void)state;
    GPTConfig c = {.n_layer = PL, .n_head = PNH, .n_embd = PC, .block_size = PT,
                   .vocab_size = PV, .value_head = 1};
    GPT m;
    gpt_build(&m, &c);
    gpt_train_build(&m);
    ref_randomize_params(&m, 501);
    RefRng r;
    ref_rng_init(&r, 502);
    // chosen 0, chosen 1, rejected 0, rejected 1; every row has padding
    const int lens[2 * NPAIR] = {6, 3, 5, 7};
    int inputs[2 * NPAIR * PT], last[2 * NPAIR];
    for (int b = 0; b < 2 * NPAIR; b++) {
        for (int t = 0; t < PT; t++) inputs[b * PT + t] = t < lens[b] ? ref_rng_int(&r, PPAD) : PPAD;
        last[b] = lens[b] - 1;
    }
    const float margin = 0.25f;
    gpt_forward(&m, inputs, 2 * NPAIR, PT, 0);
    float v[2 * NPAIR], dv[2 * NPAIR];
    values_at(&m, last, v);
    float loss = bt_group_loss(v, 2 * NPAIR, pair_chosen, pair_rejected, pair_off, NPAIR, margin,
                               0.0f, dv, NULL, NULL);
    float dvalues[2 * NPAIR * PT] = {0};
    for (int i = 0; i < 2 * NPAIR; i++) dvalues[i * PT + last[i]] = dv[i];
    gpt_zero_grad(&m);
    gpt_backward(&m, NULL, dvalues);

    double *params = ref_params_to_double(&m);
    PairObjective o = {&c, m.info, inputs, last, margin};
    double want = pair_objective(&o, params);
    if (verbose()) fprintf(stderr, "pairwise loss %.9g ref %.9g\n", loss, want);
    assert_true(want > 0.05);  // not saturated: the gradient is worth checking
    assert_true(fabs(loss - want) <= 1e-5 * want);

    // the value head and the trunk both receive gradient; the bias none
    assert_true(fabs(m.train->grads.vb[0]) <= 1e-6);
    const int tensors[] = {PARAM_vw, PARAM_qkvw, PARAM_fcprojw, PARAM_wte};
    for (int k = 0; k < 4; k++) {
        const ParamInfo *pi = &m.info[tensors[k]];
        double s = 0.0;
        for (size_t i = 0; i < pi->size; i++) s += fabs(m.train->grads_memory[pi->offset + i]);
        assert_true(s > 0.0);
    }
    // padding is inert: position PT-1 is padding in every row, so its wpe
    // row gets exactly no gradient, while the last real position's does
    double g6 = 0.0;
    for (size_t i = 0; i < (size_t)PC; i++) {
        assert_true(m.train->grads.wpe[(PT - 1) * PC + i] == 0.0f);
        g6 += fabs(m.train->grads.wpe[(PT - 2) * PC + i]);
    }
    assert_true(g6 > 0.0);

    const size_t P = m.num_params;
    double *d = mallocCheck(P * sizeof(double));
    int ok = 1;
    for (int k = 0; k <= 4; k++) {
        size_t lo = 0, hi = P;
        const char *what = "all parameters";
        if (k < 4) {
            lo = m.info[tensors[k]].offset;
            hi = lo + m.info[tensors[k]].size;
            what = m.info[tensors[k]].name;
        }
        memset(d, 0, P * sizeof(double));
        double n2 = 0.0;
        for (size_t i = lo; i < hi; i++) {
            d[i] = ref_rng_normal(&r);
            n2 += d[i] * d[i];
        }
        for (size_t i = lo; i < hi; i++) d[i] /= sqrt(n2);
        ok &= ref_check_direction(what, &m, params, d, pair_objective_at, &o);
    }
    assert_true(ok);
    free(d);
    free(params);
    gpt_free(&m);
}

// ---------------------------------------------------------------------------
// KL estimators, GAE, whitening, KL controller: hand-computed values
// ---------------------------------------------------------------------------

// k1 = logp - ref, k3 = e^(ref - logp) - 1 - (ref - logp), to float
// rounding (1e-7 relative); both exactly 0 when equal; k3 >= 0 everywhere,
// including differences of 1 ulp where a naive exp(d) - 1 - d cancels.
static void test_kl_estimators(void **state) {
    (void)state;
    assert_true(kl_k1(-1.2f, -0.7f) == -1.2f - -0.7f);
    assert_true(fabs(kl_k3(-1.2f, -0.7f) - 0.148721270700128) <= 1e-7);  // e^.5 - 1.5
    assert_true(fabs(kl_k1(-0.3f, -2.3f) - 2.0) <= 1e-6);
    assert_true(fabs(kl_k3(-0.3f, -2.3f) - 1.135335283236613) <= 2e-7);  // e^-2 + 1
    const float same[] = {0.0f, -1e-30f, -0.5f, -3.25f, -40.0f};
    for (int i = 0; i < 5; i++) {
        assert_true(kl_k1(same[i], same[i]) == 0.0f);
        assert_true(kl_k3(same[i], same[i]) == 0.0f);
    }
    RefRng r;
    ref_rng_init(&r, 21);
    for (int i = 0; i < 2000; i++) {
        float a = (float)(-5.0 * ref_rng_uniform(&r)), b;
        if (i % 2) b = nextafterf(a, i % 4 == 1 ? 0.0f : -10.0f);
        else b = (float)(-5.0 * ref_rng_uniform(&r));
        assert_true(kl_k3(a, b) >= 0.0f);
        double dd = (double)b - a, k3 = exp(dd) - 1.0 - dd;
        if (fabs(dd) > 1e-3) assert_true(fabs(kl_k3(a, b) - k3) <= 1e-6 * k3 + 1e-12);
    }
}

// Hand-computed (4 tokens r = .1 -.2 0 1, v = .5 .3 -.4 .8):
//   gamma 1, lam .95: deltas -.1 -.9 1.2 .2, A = .299475 .4205 1.39 .2
//   gamma .9, lam .5: deltas -.13 -.86 1.12 .2, A = -.271975 -.3155 1.21 .2
// returns = A + v. Floats of O(1) values: 1e-6.
static void test_gae_hand_values(void **state) {
    (void)state;
    const float r[4] = {0.1f, -0.2f, 0.0f, 1.0f}, v[4] = {0.5f, 0.3f, -0.4f, 0.8f};
    const double a1[4] = {0.299475, 0.4205, 1.39, 0.2}, ret1[4] = {0.799475, 0.7205, 0.99, 1.0};
    const double a2[4] = {-0.271975, -0.3155, 1.21, 0.2}, ret2[4] = {0.228025, -0.0155, 0.81, 1.0};
    float adv[4], ret[4];
    gae(adv, ret, r, v, 4, 1.0f, 0.95f);
    for (int t = 0; t < 4; t++) {
        assert_true(fabs(adv[t] - a1[t]) <= 1e-6);
        assert_true(fabs(ret[t] - ret1[t]) <= 1e-6);
    }
    gae(adv, ret, r, v, 4, 0.9f, 0.5f);
    for (int t = 0; t < 4; t++) {
        assert_true(fabs(adv[t] - a2[t]) <= 1e-6);
        assert_true(fabs(ret[t] - ret2[t]) <= 1e-6);
    }
    // 3 tokens of the same data (r .1 -.2 0, v .5 .3 -.4), gamma 1, lam .95:
    // deltas -.1 -.9 .4, A2 = .4, A1 = -.9 + .38 = -.52, A0 = -.1 - .494 = -.594
    gae(adv, ret, r, v, 3, 1.0f, 0.95f);
    const double a3[3] = {-0.594, -0.52, 0.4};
    for (int t = 0; t < 3; t++) {
        assert_true(fabs(adv[t] - a3[t]) <= 1e-6);
        assert_true(fabs(ret[t] - (a3[t] + v[t])) <= 1e-6);
    }
    // one token: A = r - v, return = r
    gae(adv, ret, r + 3, v + 3, 1, 0.9f, 0.5f);
    assert_true(fabs(adv[0] - 0.2) <= 1e-6 && fabs(ret[0] - 1.0) <= 1e-6);
}

// x = 1 2 3 4 [100 masked] 5: mean 3, population var 2. Whitened: mean 0
// and variance 1 over the mask to 1e-6 (float storage; the 1e-8 inside the
// sqrt moves the variance by 5e-9); the masked entry is bit-identical.
// shift_mean = 0 keeps the mean 3 and still scales the spread to 1.
static void test_whiten(void **state) {
    (void)state;
    const float x0[6] = {1, 2, 3, 4, 100, 5};
    const unsigned char mask[6] = {1, 1, 1, 1, 0, 1};
    for (int shift = 1; shift >= 0; shift--) {
        float x[6];
        memcpy(x, x0, sizeof x);
        assert_int_equal(whiten(x, mask, 6, shift), 5);
        assert_true(x[4] == 100.0f);
        double mean = 0.0, var = 0.0;
        for (int i = 0; i < 6; i++)
            if (mask[i]) mean += x[i] / 5.0;
        for (int i = 0; i < 6; i++)
            if (mask[i]) var += (x[i] - mean) * (x[i] - mean) / 5.0;
        assert_true(fabs(mean - (shift ? 0.0 : 3.0)) <= 1e-6);
        assert_true(fabs(var - 1.0) <= 1e-6);
        // hand values: (x - 3) / sqrt 2 (+ 3)
        for (int i = 0; i < 6; i++)
            if (mask[i])
                assert_true(fabs(x[i] - ((x0[i] - 3.0) / sqrt(2.0) + (shift ? 0.0 : 3.0))) <= 1e-6);
    }
    // no mask: every entry counts
    float y[4] = {2, 4, 4, 6};  // mean 4, var 2
    assert_int_equal(whiten(y, NULL, 4, 1), 4);
    assert_true(fabs(y[0] + sqrt(2.0)) <= 1e-6 && fabs(y[1]) <= 1e-6 && fabs(y[3] - sqrt(2.0)) <= 1e-6);
    // nothing masked in: untouched, count 0
    float z[3] = {1, 2, 3};
    const unsigned char none[3] = {0, 0, 0};
    assert_int_equal(whiten(z, none, 3, 1), 0);
    assert_true(z[0] == 1 && z[1] == 2 && z[2] == 3);
}

// coef 0.2, target 6, horizon 10000, 256 steps per update:
//   kl 6.6: e = 0.1  -> 0.2 * (1 + 0.1 * 0.0256) = 0.200512
//   kl 12 : e = 1 clipped to 0.2  -> x 1.00512
//   kl 0  : e = -1 clipped to -0.2 -> x 0.99488
//   kl 6  : e = 0 -> unchanged
// In double: 1e-12.
static void test_kl_controller_hand_values(void **state) {
    (void)state;
    KLController kc = {.coef = 0.2, .target = 6.0, .horizon = 10000.0};
    kl_controller_update(&kc, 6.6, 256);
    assert_true(fabs(kc.coef - 0.200512) <= 1e-12);
    kc.coef = 0.2;
    kl_controller_update(&kc, 12.0, 256);
    assert_true(fabs(kc.coef - 0.2 * 1.00512) <= 1e-12);
    kc.coef = 0.2;
    kl_controller_update(&kc, 0.0, 256);
    assert_true(fabs(kc.coef - 0.2 * 0.99488) <= 1e-12);
    kc.coef = 0.2;
    kl_controller_update(&kc, 6.0, 256);
    assert_true(kc.coef == 0.2);
    // just inside the clip: kl 7.08 -> e = 0.18
    kc.coef = 0.2;
    kl_controller_update(&kc, 7.08, 100);
    assert_true(fabs(kc.coef - 0.2 * (1.0 + 0.18 * 0.01)) <= 1e-12);
    assert_true(kc.target == 6.0 && kc.horizon == 10000.0);
}

// ---------------------------------------------------------------------------
// PPO clipped policy loss
//
// Six masked rows, one in each regime, plus a masked-out row:
//   0: A > 0, ratio 0.93 (inside)        1: A < 0, ratio 1.08 (inside)
//   2: A > 0, ratio 1.60 (clipped: const) 3: A > 0, ratio 0.50 (unclipped)
//   4: A < 0, ratio 1.50 (unclipped)      5: A < 0, ratio 0.60 (clipped: const)
//   6: off the mask (garbage inputs)
// with cliprange 0.2; old_logp = logp - log(ratio) puts each ratio there, at
// least 0.1 from a kink. The double reference below is written from the
// formula in losses.h.
// ---------------------------------------------------------------------------

enum { QN = 7, QV = 7 };

typedef struct {
    const int *actions;
    const float *old_logp, *adv;
    const unsigned char *mask;
    double temperature, cliprange, ent_coef, norm;
} PolicyCase;

// loss and, if stats != NULL, per-regime statistics in double
static double ref_policy_loss(const PolicyCase *pc, const double *logits, double *stats) {
    double loss = 0.0, ent = 0.0, clipped = 0.0, akl = 0.0, ratios = 0.0;
    for (int n = 0; n < QN; n++) {
        if (!pc->mask[n]) continue;
        double lp[QV];
        double h = ref_log_softmax(lp, logits + n * QV, QV, pc->temperature);
        double lr = lp[pc->actions[n]] - pc->old_logp[n], ratio = exp(lr), A = pc->adv[n];
        double rc = fmin(fmax(ratio, 1.0 - pc->cliprange), 1.0 + pc->cliprange);
        double l1 = -A * ratio, l2 = -A * rc;
        loss += fmax(l1, l2) - pc->ent_coef * h;
        ent += h;
        clipped += l2 > l1;
        akl += 0.5 * lr * lr;
        ratios += ratio;
    }
    if (stats) {
        stats[0] = loss;
        stats[1] = ent;
        stats[2] = clipped;
        stats[3] = akl;
        stats[4] = ratios;
    }
    return loss / pc->norm;
}

static double policy_loss_at(const void *pc, const double *logits) {
    return ref_policy_loss(pc, logits, NULL);
}

// dlogits (QN,QV) against central differences (h = 1e-5) of the double
// reference loss f at logits dlog: every entry within 2e-5 of the largest
// |gradient|, which must exceed 1e-2 (a test that moves the loss).
static void check_logit_gradient(const float *dlogits, double *dlog,
                                 double (*f)(const void *ctx, const double *logits),
                                 const void *ctx) {
    const double h = 1e-5;
    double fd[QN * QV], fmaxabs = 0.0;
    for (int i = 0; i < QN * QV; i++) {
        double save = dlog[i];
        dlog[i] = save + h;
        double fp = f(ctx, dlog);
        dlog[i] = save - h;
        double fm = f(ctx, dlog);
        dlog[i] = save;
        fd[i] = (fp - fm) / (2 * h);
        fmaxabs = fmax(fmaxabs, fabs(fd[i]));
    }
    assert_true(fmaxabs > 1e-2);
    double worst = 0.0;
    for (int i = 0; i < QN * QV; i++) {
        double err = fabs(dlogits[i] - fd[i]);
        worst = fmax(worst, err / fmaxabs);
        if (!(err <= 2e-5 * fmaxabs))
            fprintf(stderr, "row %d logit %d: dlogits %.9g fd %.9g\n", i / QV, i % QV, dlogits[i],
                    fd[i]);
        assert_true(err <= 2e-5 * fmaxabs);
    }
    if (verbose()) fprintf(stderr, "  worst gradient error %.3g of max |g| %.3g\n", worst, fmaxabs);
}

// Gradient against central differences of the double loss, one logit at a
// time (h = 1e-5 moves a ratio by ~2e-5, far from any kink; truncation and
// rounding ~1e-11). The float gradient comes from float log-probs (a few
// ulp of a log-sum-exp of O(5): ~1e-6 relative), so the bound is
// 2e-5 * max_j |fd_j| per component; a wrong term (temperature factor,
// entropy sign, clipped branch carrying gradient) misses by > 1e-3 of it.
// Rows off the mask: exactly zero gradient and no effect on the loss. The
// loss and the stats (sums added to what the struct held) follow from
// log-probs within ~1e-6 absolute: a ratio within 1e-6 relative, so the
// loss within 2e-6 of S = sum |A| ratio + ent_coef sum H (the terms that
// cancel in it), approx_kl within 1e-6 per row, entropy 2e-6 per row;
// clipfrac counts rows 2 and 5 exactly, tokens 6.
static void test_ppo_policy_loss_gradient_all_regimes(void **state) {
    (void)state;
    const double ratios[QN] = {0.93, 1.08, 1.60, 0.50, 1.50, 0.60, 1.0};
    const float adv[QN] = {1.3f, -0.7f, 0.8f, 0.8f, -1.1f, -1.1f, 5.0f};
    const unsigned char mask[QN] = {1, 1, 1, 1, 1, 1, 0};
    const float temps[3] = {0.7f, 1.3f, 1.0f}, ents[3] = {0.05f, 0.01f, 0.0f};
    RefRng r;
    ref_rng_init(&r, 31);
    for (int k = 0; k < 3; k++) {
        float logits[QN * QV];
        double dlog[QN * QV];
        int actions[QN];
        float old_logp[QN];
        for (int i = 0; i < QN * QV; i++) dlog[i] = logits[i] = (float)(1.5 * ref_rng_normal(&r));
        for (int n = 0; n < QN; n++) {
            actions[n] = ref_rng_int(&r, QV);
            double lp[QV];
            ref_log_softmax(lp, dlog + n * QV, QV, temps[k]);
            old_logp[n] = (float)(lp[actions[n]] - log(ratios[n]));
        }
        old_logp[QN - 1] = NAN;  // off the mask: must not leak anywhere
        PolicyCase pc = {actions, old_logp, adv, mask, temps[k], 0.2, ents[k], 9.0};
        float dlogits[QN * QV];
        for (int i = 0; i < QN * QV; i++) dlogits[i] = 1234.0f;
        PPOStats st = {.policy_loss = 1.0, .entropy = 2.0, .clipfrac = 3.0, .approx_kl = 4.0,
                       .ratio = 5.0, .tokens = 6.0, .value_loss = 7.0};
        float loss = ppo_policy_loss(dlogits, logits, actions, old_logp, adv, mask, QN, QV,
                                     temps[k], 0.2f, ents[k], 9.0, &st);
        double hs[5];
        double want = ref_policy_loss(&pc, dlog, hs);
        if (verbose()) fprintf(stderr, "T=%.1f ent %.2f: loss %.9g ref %.9g\n", temps[k], ents[k], loss, want);
        // S = sum |A| ratio + ent_coef H: the scale of the terms that cancel
        double S = 0.0;
        for (int n = 0; n < QN - 1; n++) S += fabs(adv[n]) * ratios[n];
        S += ents[k] * hs[1];
        assert_true(fabs(loss - want) <= 2e-6 * S / 9.0);
        // every ratio sits at least 0.1 from a kink (guards the test data)
        for (int n = 0; n < QN - 1; n++) {
            double lp[QV];
            ref_log_softmax(lp, dlog + n * QV, QV, temps[k]);
            double ratio = exp(lp[actions[n]] - old_logp[n]);
            assert_true(fabs(ratio - ratios[n]) <= 1e-5);
            assert_true(fabs(ratio - 0.8) >= 0.1 && fabs(ratio - 1.2) >= 0.1);
        }
        check_logit_gradient(dlogits, dlog, policy_loss_at, &pc);
        // clipped rows carry only the entropy gradient: with ent_coef 0 none
        if (ents[k] == 0.0f)
            for (int j = 0; j < QV; j++) assert_true(dlogits[2 * QV + j] == 0.0f && dlogits[5 * QV + j] == 0.0f);
        // the masked-out row: exactly zero, and its logits do not matter
        for (int j = 0; j < QV; j++) assert_true(dlogits[6 * QV + j] == 0.0f);
        for (int j = 0; j < QV; j++) logits[6 * QV + j] = NAN;
        float dl2[QN * QV];
        float loss2 = ppo_policy_loss(dl2, logits, actions, old_logp, adv, mask, QN, QV, temps[k],
                                      0.2f, ents[k], 9.0, NULL);
        assert_true(loss2 == loss);
        assert_true(memcmp(dl2, dlogits, sizeof dl2) == 0);
        // in place (dlogits == logits): the same bits
        memcpy(dl2, logits, sizeof dl2);
        float loss3 = ppo_policy_loss(dl2, dl2, actions, old_logp, adv, mask, QN, QV, temps[k],
                                      0.2f, ents[k], 9.0, NULL);
        assert_true(loss3 == loss);
        assert_true(memcmp(dl2, dlogits, sizeof dl2) == 0);
        // stats: sums added to the previous contents
        if (verbose())
            fprintf(stderr, "  stats loss %.9g/%.9g ent %.9g/%.9g akl %.9g/%.9g ratio %.9g/%.9g\n",
                    st.policy_loss - 1.0, hs[0], st.entropy - 2.0, hs[1], st.approx_kl - 4.0, hs[3],
                    st.ratio - 5.0, hs[4]);
        assert_true(fabs(st.policy_loss - 1.0 - hs[0]) <= 2e-6 * S);
        assert_true(fabs(st.entropy - 2.0 - hs[1]) <= 6 * 2e-6);
        assert_true(st.clipfrac == 3.0 + 2.0 && hs[2] == 2.0);
        assert_true(fabs(st.approx_kl - 4.0 - hs[3]) <= 6e-6);
        // approx_kl by hand: 0.5 sum log(ratio)^2 over the six rows
        double akl = 0.0;
        for (int n = 0; n < QN - 1; n++) akl += 0.5 * log(ratios[n]) * log(ratios[n]);
        assert_true(fabs(hs[3] - akl) <= 1e-5);
        assert_true(fabs(st.ratio - 5.0 - (0.93 + 1.08 + 1.60 + 0.50 + 1.50 + 0.60)) <= 1e-5);
        assert_true(st.tokens == 6.0 + 6.0);
        assert_true(st.value_loss == 7.0);  // not the policy loss's business
    }
}

// ---------------------------------------------------------------------------
// The group methods' policy loss: k3 KL in the loss, per-sequence norms
//
// The six regimes of the test above, each row with a reference log-prob
// that puts x = ref_logp - logp at {0.3, -0.5, 0.15, -0.25, 0.6, -0.4}
// (k3 = e^x - 1 - x from 0.01 to 0.22), the masked-out row 6 with NaN
// inputs. Two normalisations: tokens (norms NULL: every row / 6), and
// sequences: rows 0-1 one sequence, rows 2-5 another, so norms are
// 2 * 2 = 4 and 4 * 2 = 8 (row 6: 0, which must not be used). The double
// reference is written from losses.h:
//   sum_mask [max(-A r, -A clip(r)) - ent_coef H + kl_coef k3] / den_n.
// Tolerances as above (h = 1e-5, the same float log-probs): gradient
// within 2e-5 max_j |fd_j|, loss within 2e-6 S / min den with S the sum of
// the terms that cancel, k3 sum within 6 * 2e-6 (k3 of a float logp).
// With kl_coef 0 and norms NULL, ppo_policy_loss_kl is ppo_policy_loss bit
// for bit, loss and gradient.
// ---------------------------------------------------------------------------

typedef struct {
    PolicyCase pc;
    const float *ref_logp, *norms;
    double kl_coef;
} KLCase;

static double ref_policy_loss_kl(const KLCase *kc, const double *logits, double *k3_sum) {
    const PolicyCase *pc = &kc->pc;
    double loss = 0.0, k3s = 0.0;
    for (int n = 0; n < QN; n++) {
        if (!pc->mask[n]) continue;
        double lp[QV];
        double h = ref_log_softmax(lp, logits + n * QV, QV, pc->temperature);
        double logp = lp[pc->actions[n]], ratio = exp(logp - pc->old_logp[n]), A = pc->adv[n];
        double rc = fmin(fmax(ratio, 1.0 - pc->cliprange), 1.0 + pc->cliprange);
        double x = kc->ref_logp[n] - logp, k3 = exp(x) - 1.0 - x;
        double den = kc->norms ? kc->norms[n] : pc->norm;
        loss += (fmax(-A * ratio, -A * rc) - pc->ent_coef * h + kc->kl_coef * k3) / den;
        k3s += k3;
    }
    if (k3_sum) *k3_sum = k3s;
    return loss;
}

static double policy_loss_kl_at(const void *kc, const double *logits) {
    return ref_policy_loss_kl(kc, logits, NULL);
}

static void test_ppo_policy_loss_kl_gradient(void **state) {
    (void)state;
    const double ratios[QN] = {0.93, 1.08, 1.60, 0.50, 1.50, 0.60, 1.0};
    const double xs[QN] = {0.3, -0.5, 0.15, -0.25, 0.6, -0.4, 0.0};
    const float adv[QN] = {1.3f, -0.7f, 0.8f, 0.8f, -1.1f, -1.1f, 5.0f};
    const unsigned char mask[QN] = {1, 1, 1, 1, 1, 1, 0};
    const float seq_norms[QN] = {4, 4, 8, 8, 8, 8, 0};
    const float temps[2] = {0.7f, 1.0f}, ents[2] = {0.01f, 0.0f}, kls[2] = {0.1f, 0.04f};
    RefRng r;
    ref_rng_init(&r, 37);
    for (int k = 0; k < 2; k++) {
        float logits[QN * QV], old_logp[QN], ref_logp[QN];
        double dlog[QN * QV];
        int actions[QN];
        for (int i = 0; i < QN * QV; i++) dlog[i] = logits[i] = (float)(1.5 * ref_rng_normal(&r));
        for (int n = 0; n < QN; n++) {
            actions[n] = ref_rng_int(&r, QV);
            double lp[QV];
            ref_log_softmax(lp, dlog + n * QV, QV, temps[k]);
            old_logp[n] = (float)(lp[actions[n]] - log(ratios[n]));
            ref_logp[n] = (float)(lp[actions[n]] + xs[n]);
        }
        old_logp[QN - 1] = ref_logp[QN - 1] = NAN;  // off the mask
        for (int mode = 0; mode < 2; mode++) {
            const float *norms = mode ? seq_norms : NULL;
            KLCase kc = {{actions, old_logp, adv, mask, temps[k], 0.2, ents[k], 6.0}, ref_logp,
                         norms, kls[k]};
            float dlogits[QN * QV];
            PPOStats st = {.kl_k3 = 1.0};
            float loss = ppo_policy_loss_kl(dlogits, logits, actions, old_logp, adv, ref_logp,
                                            mask, QN, QV, temps[k], 0.2f, ents[k], kls[k], norms,
                                            6.0, &st);
            double k3_sum, want = ref_policy_loss_kl(&kc, dlog, &k3_sum);
            double S = 0.0;
            for (int n = 0; n < QN - 1; n++) S += fabs(adv[n]) * ratios[n] + 1.0;
            if (verbose())
                fprintf(stderr, "T=%.1f kl %.2f %s: loss %.9g ref %.9g k3 %.9g ref %.9g\n",
                        temps[k], kls[k], mode ? "sequence" : "token", loss, want,
                        st.kl_k3 - 1.0, k3_sum);
            assert_true(fabs(loss - want) <= 2e-6 * S / 4.0);
            assert_true(fabs(st.kl_k3 - 1.0 - k3_sum) <= 6 * 2e-6);
            assert_true(k3_sum > 0.05);  // the KL term is exercised
            check_logit_gradient(dlogits, dlog, policy_loss_kl_at, &kc);
            for (int j = 0; j < QV; j++) assert_true(dlogits[6 * QV + j] == 0.0f);
            // in place (dlogits == logits, as a model being trained calls it):
            // the same loss, stats and gradient bits
            float z[QN * QV];
            memcpy(z, logits, sizeof z);
            PPOStats st2 = {.kl_k3 = 1.0};
            float loss2 = ppo_policy_loss_kl(z, z, actions, old_logp, adv, ref_logp, mask, QN, QV,
                                             temps[k], 0.2f, ents[k], kls[k], norms, 6.0, &st2);
            assert_true(loss2 == loss && memcmp(z, dlogits, sizeof z) == 0);
            assert_true(memcmp(&st2, &st, sizeof st) == 0);
        }
        // without the KL term and per-token norms: ppo_policy_loss, bit for bit
        float d1[QN * QV], d2[QN * QV];
        PPOStats s1 = {0}, s2 = {0};
        float l1 = ppo_policy_loss(d1, logits, actions, old_logp, adv, mask, QN, QV, temps[k],
                                   0.2f, ents[k], 6.0, &s1);
        float l2 = ppo_policy_loss_kl(d2, logits, actions, old_logp, adv, NULL, mask, QN, QV,
                                      temps[k], 0.2f, ents[k], 0.0f, NULL, 6.0, &s2);
        assert_true(l1 == l2 && memcmp(d1, d2, sizeof d1) == 0);
        assert_true(memcmp(&s1, &s2, sizeof s1) == 0 && s2.kl_k3 == 0.0);
    }
}

// ---------------------------------------------------------------------------
// Group advantages
//
// Three groups of G = 4 rewards, worked by hand:
//   g0 {1, 0, 0, 1}      mean 0.5,   sample std sqrt(1/3)
//   g1 {1, 1, 1, 1}      mean 1,     std 0: zero spread
//   g2 {0.5, -1, 2, 0}   mean 0.375, std 1.25 (squares 4.6875 / 3)
//   batch: mean 0.625, sample std sqrt(6.5625 / 11) (squared deviations
//   1.0625 + 0.5625 + 4.9375)
// GRPO (r - group mean) / (s + 1e-4) with s the group std, the batch std,
// or s + eps = 1 (none); RLOO r_i - (group sum - r_i) / 3; REINFORCE
// r - 0.625, whatever G (G = 1 gives the same). Computed in double and
// stored as float: within 1e-6 relative. The zero-spread group gets
// exactly 0 from GRPO (every scale) and RLOO. Statistics: mean 0.625,
// mean group std (sqrt(1/3) + 0 + 1.25) / 3, zero spread 1/3.
// ---------------------------------------------------------------------------

static void expect_advantages(const float *got, const double *want, int n, const char *what) {
    for (int i = 0; i < n; i++) {
        if (verbose()) fprintf(stderr, "%s[%d] %.9g hand %.9g\n", what, i, got[i], want[i]);
        if (!(fabs(got[i] - want[i]) <= 1e-6 * fmax(1.0, fabs(want[i]))))
            fprintf(stderr, "%s[%d]: %.9g, by hand %.9g\n", what, i, got[i], want[i]);
        assert_true(fabs(got[i] - want[i]) <= 1e-6 * fmax(1.0, fabs(want[i])));
    }
}

static void test_group_advantages_hand_values(void **state) {
    (void)state;
    enum { NG = 3, G = 4, N = NG * G };
    const float r[N] = {1, 0, 0, 1, 1, 1, 1, 1, 0.5f, -1, 2, 0};
    const double s0 = sqrt(1.0 / 3.0), sb = sqrt(6.5625 / 11.0), e = GROUP_ADV_EPS;
    const double dev[N] = {0.5, -0.5, -0.5, 0.5, 0, 0, 0, 0, 0.125, -1.375, 1.625, -0.375};
    double want[N];
    float adv[N];

    for (int i = 0; i < N; i++) want[i] = dev[i] / (i < 4 ? s0 + e : 1.25 + e);
    for (int i = 4; i < 8; i++) want[i] = 0.0;
    group_advantages(adv, r, NG, G, ADV_GRPO, GROUP_SCALE_GROUP);
    expect_advantages(adv, want, N, "grpo/group");
    for (int i = 4; i < 8; i++) assert_true(adv[i] == 0.0f);

    for (int i = 0; i < N; i++) want[i] = dev[i] / (sb + e);
    group_advantages(adv, r, NG, G, ADV_GRPO, GROUP_SCALE_BATCH);
    expect_advantages(adv, want, N, "grpo/batch");
    for (int i = 4; i < 8; i++) assert_true(adv[i] == 0.0f);

    group_advantages(adv, r, NG, G, ADV_GRPO, GROUP_SCALE_NONE);
    expect_advantages(adv, dev, N, "grpo/none");
    for (int i = 4; i < 8; i++) assert_true(adv[i] == 0.0f);

    const double rloo[N] = {1 - 1.0 / 3, 0 - 2.0 / 3, 0 - 2.0 / 3, 1 - 1.0 / 3, 0, 0, 0, 0,
                            0.5 - 1.0 / 3, -1 - 2.5 / 3, 2 + 0.5 / 3, 0 - 1.5 / 3};
    group_advantages(adv, r, NG, G, ADV_RLOO, GROUP_SCALE_GROUP);
    expect_advantages(adv, rloo, N, "rloo");
    for (int i = 4; i < 8; i++) assert_true(adv[i] == 0.0f);

    for (int i = 0; i < N; i++) want[i] = r[i] - 0.625;
    group_advantages(adv, r, NG, G, ADV_REINFORCE, GROUP_SCALE_GROUP);
    expect_advantages(adv, want, N, "reinforce");
    float adv1[N];
    group_advantages(adv1, r, N, 1, ADV_REINFORCE, GROUP_SCALE_GROUP);
    assert_true(memcmp(adv, adv1, sizeof adv) == 0);

    GroupStats st;
    group_reward_stats(r, NG, G, &st);
    assert_true(fabs(st.mean - 0.625) <= 1e-12);
    assert_true(fabs(st.std - (s0 + 1.25) / 3.0) <= 1e-12);
    assert_true(st.zero_spread == 1.0 / 3.0);
    group_reward_stats(r, N, 1, &st);  // singletons: no spread anywhere
    assert_true(st.std == 0.0 && st.zero_spread == 1.0);
}

// ---------------------------------------------------------------------------
// PPO clipped value loss
// ---------------------------------------------------------------------------

static double ref_value_loss(const double *v, const float *old, const float *R,
                             const unsigned char *mask, int N, double c, double vf, double norm) {
    double s = 0.0;
    for (int n = 0; n < N; n++) {
        if (!mask[n]) continue;
        double vc = old[n] + fmin(fmax(v[n] - old[n], -c), c);
        s += 0.5 * fmax((v[n] - R[n]) * (v[n] - R[n]), (vc - R[n]) * (vc - R[n]));
    }
    return vf * s / norm;
}

// cliprange 0.2, vf_coef 0.5, norm 7:
//   0: inside (v - old = 0.1): g = v - R
//   1: above, clipped branch larger (v 1.5, old 1, R 2): constant, g = 0
//   2: above, unclipped larger (R 0): g = v - R
//   3: below, clipped larger (v .2, old 1, R -1): g = 0
//   4: below, unclipped larger (R 1.5): g = v - R
//   5: inside, R below: g = v - R          6: off the mask
// Against central differences of the double loss (quadratic: exact up to
// rounding, h = 1e-4 keeps every row in its regime), within 1e-6 absolute
// (gradients are O(0.1), floats); by hand: vf * (v - R) / norm or 0.
static void test_ppo_value_loss_gradient(void **state) {
    (void)state;
    enum { N = 7 };
    const float v[N] = {1.0f, 1.5f, 1.5f, 0.2f, 0.2f, -0.35f, 3.0f};
    const float old[N] = {0.9f, 1.0f, 1.0f, 1.0f, 1.0f, -0.3f, NAN};
    const float R[N] = {2.0f, 2.0f, 0.0f, -1.0f, 1.5f, -2.0f, 0.0f};
    const unsigned char mask[N] = {1, 1, 1, 1, 1, 1, 0};
    const double c = 0.2, vf = 0.5, norm = 7.0;
    float dv[N];
    for (int n = 0; n < N; n++) dv[n] = 99.0f;
    PPOStats st = {.value_loss = 1.0, .value_clipfrac = 2.0, .policy_loss = 3.0};
    float loss = ppo_value_loss(dv, v, old, R, mask, N, 0.2f, 0.5f, norm, &st);
    double vd[N];
    for (int n = 0; n < N; n++) vd[n] = v[n];
    double want = ref_value_loss(vd, old, R, mask, N, c, vf, norm);
    assert_true(fabs(loss - want) <= 1e-6 * want);
    const double expect[N] = {1.0 - 2.0, 0.0, 1.5, 0.0, 0.2 - 1.5, -0.35 + 2.0, 0.0};
    for (int n = 0; n < N; n++) {
        double h = 1e-4, save = vd[n];
        vd[n] = save + h;
        double fp = ref_value_loss(vd, old, R, mask, N, c, vf, norm);
        vd[n] = save - h;
        double fm = ref_value_loss(vd, old, R, mask, N, c, vf, norm);
        vd[n] = save;
        double fd = (fp - fm) / (2 * h);
        if (verbose()) fprintf(stderr, "row %d dv %.9g fd %.9g hand %.9g\n", n, dv[n], fd, vf * expect[n] / norm);
        assert_true(fabs(dv[n] - fd) <= 1e-6);
        assert_true(fabs(dv[n] - vf * expect[n] / norm) <= 1e-7);
    }
    assert_true(dv[1] == 0.0f && dv[3] == 0.0f && dv[6] == 0.0f);
    // stats: vf * 0.5 * sum of the larger squares, clipfrac counts rows 1, 3
    assert_true(fabs(st.value_loss - 1.0 - want * norm) <= 1e-6);
    assert_true(st.value_clipfrac == 2.0 + 2.0);
    assert_true(st.policy_loss == 3.0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_logprobs_entropy_match_double),
        cmocka_unit_test(test_bt_loss_value_gradient_stats),
        cmocka_unit_test(test_bt_group_loss),
        cmocka_unit_test(test_bt_group_center),
        cmocka_unit_test(test_bt_loss_through_value_head),
        cmocka_unit_test(test_kl_estimators),
        cmocka_unit_test(test_gae_hand_values),
        cmocka_unit_test(test_whiten),
        cmocka_unit_test(test_kl_controller_hand_values),
        cmocka_unit_test(test_ppo_policy_loss_gradient_all_regimes),
        cmocka_unit_test(test_ppo_policy_loss_kl_gradient),
        cmocka_unit_test(test_group_advantages_hand_values),
        cmocka_unit_test(test_ppo_value_loss_gradient),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

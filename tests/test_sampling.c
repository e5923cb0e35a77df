// Checks src/sampling.c: greedy choice and its tie rule, top-k, top-p and
// temperature as distributions (counted over many draws), seeding and rng
// consumption; and batched generation with the KV cache: stopping at
// end-of-text, -1 padding, lockstep rows equal to rows run alone, and
// greedy tokens equal to the argmax of a full forward pass.
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
#include "ref_gpt.h"
#include "rng.h"
#include "sampling.h"

#if defined(__SANITIZE_ADDRESS__)
const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void) { return "halt_on_error=1:print_stacktrace=1"; }
#endif

static int verbose(void) { return getenv("RLHF_TEST_VERBOSE") != NULL; }

// ---------------------------------------------------------------------------
// sample_token
// ---------------------------------------------------------------------------

// Greedy (temperature 0) is the argmax, the lowest id among equal maxima,
// and draws nothing from the rng.
static void test_greedy_argmax_lowest_on_ties(void **state) {
    (void)state;
    Sampler s;
    sampler_build(&s, 5);
    SamplerParams g = {0.0f, 0, 1.0f};
    Rng rng, before;
    rng_init(&rng, 1);
    before = rng;
    const float tie[5] = {1.0f, 3.0f, 3.0f, 2.0f, -1.0f};
    assert_int_equal(sample_token(&s, tie, &g, &rng), 1);
    const float flat[5] = {0.5f, 0.5f, 0.5f, 0.5f, 0.5f};
    assert_int_equal(sample_token(&s, flat, &g, &rng), 0);
    const float last[5] = {-9.0f, -8.0f, -7.0f, -6.0f, -5.0f};
    assert_int_equal(sample_token(&s, last, &g, &rng), 4);
    RefRng r;
    ref_rng_init(&r, 2);
    for (int k = 0; k < 200; k++) {
        float x[5];
        int best = 0;
        for (int i = 0; i < 5; i++) {
            x[i] = (float)ref_rng_normal(&r);
            if (x[i] > x[best]) best = i;
        }
        assert_int_equal(sample_token(&s, x, &g, &rng), best);
    }
    assert_memory_equal(&rng, &before, sizeof rng);
    sampler_free(&s);
}

// top_k = 1 at temperatures 0.5, 1 and 2 picks the greedy token (ties
// included: the lowest id), on random rows and on the tie row above.
static void test_top_k_one_is_greedy(void **state) {
    (void)state;
    enum { V = 17 };
    Sampler s;
    sampler_build(&s, V);
    SamplerParams g = {0.0f, 0, 1.0f};
    Rng rng;
    rng_init(&rng, 3);
    RefRng r;
    ref_rng_init(&r, 4);
    const float temps[3] = {0.5f, 1.0f, 2.0f};
    for (int k = 0; k < 300; k++) {
        float x[V];
        for (int i = 0; i < V; i++) x[i] = (float)(2.0 * ref_rng_normal(&r));
        if (k % 10 == 0) x[3] = x[11] = 10.0f;  // a tie at the top
        SamplerParams sp = {temps[k % 3], 1, 1.0f};
        int want = sample_token(&s, x, &g, &rng);
        if (k % 10 == 0) assert_int_equal(want, 3);
        assert_int_equal(sample_token(&s, x, &sp, &rng), want);
    }
    sampler_free(&s);
}

// Draws n tokens and returns Pearson's chi-square of the counts against
// the probabilities want (V, zeros allowed: a token of probability 0 that
// is drawn fails at once). The bound used with it: for df = (tokens with
// probability > 0) - 1 <= 9, P(chi2 > 35) < 1e-4 for a correct sampler
// (the 1e-4 critical value is 33.7 at df 9 and smaller below), while a
// wrong set or wrong weights give chi2 in the hundreds at n = 20000.
static double draw_chi2(Sampler *s, const float *logits, const SamplerParams *sp, Rng *rng,
                        const double *want, int V, int n) {
    long counts[64] = {0};
    for (int k = 0; k < n; k++) {
        int t = sample_token(s, logits, sp, rng);
        assert_true(t >= 0 && t < V);
        counts[t]++;
    }
    double chi2 = 0.0;
    for (int i = 0; i < V; i++) {
        if (want[i] == 0.0) {
            if (counts[i]) fprintf(stderr, "token %d has probability 0 but was drawn %ld times\n", i, counts[i]);
            assert_int_equal(counts[i], 0);
            continue;
        }
        double e = want[i] * n;
        chi2 += (counts[i] - e) * (counts[i] - e) / e;
    }
    if (verbose()) {
        fprintf(stderr, "  counts:");
        for (int i = 0; i < V; i++) fprintf(stderr, " %ld/%.0f", counts[i], want[i] * n);
        fprintf(stderr, "  chi2 %.2f\n", chi2);
    }
    return chi2;
}

// p = .05 .40 .10 .25 .20 (logits log p). Sorted: 1 (.40), 3 (.25),
// 4 (.20), 2 (.10), 0 (.05); cumulative .40 .65 .85 .95 1. The smallest
// nucleus with mass >= top_p: 0.3 -> {1}; 0.6 -> {1,3}; 0.8 -> {1,3,4};
// 0.9 -> {1,3,4,2}; 0.99 -> all. Inside the nucleus the draws follow p
// renormalised. Every top_p sits >= 0.04 from a cumulative mass, far
// beyond float rounding.
static void test_top_p_smallest_nucleus(void **state) {
    (void)state;
    enum { V = 5 };
    const double p[V] = {0.05, 0.40, 0.10, 0.25, 0.20};
    float logits[V];
    for (int i = 0; i < V; i++) logits[i] = (float)log(p[i]);
    Sampler s;
    sampler_build(&s, V);
    Rng rng;
    rng_init(&rng, 5);
    const float tops[5] = {0.3f, 0.6f, 0.8f, 0.9f, 0.99f};
    const int keep[5][V] = {{0, 1, 0, 0, 0}, {0, 1, 0, 1, 0}, {0, 1, 0, 1, 1}, {0, 1, 1, 1, 1}, {1, 1, 1, 1, 1}};
    for (int k = 0; k < 5; k++) {
        double want[V], mass = 0.0;
        for (int i = 0; i < V; i++) mass += keep[k][i] * p[i];
        for (int i = 0; i < V; i++) want[i] = keep[k][i] * p[i] / mass;
        SamplerParams sp = {1.0f, 0, tops[k]};
        if (verbose()) fprintf(stderr, "top_p %.2f\n", tops[k]);
        assert_true(draw_chi2(&s, logits, &sp, &rng, want, V, 20000) < 35.0);
    }
    sampler_free(&s);
}

// top_k = 3 of 10 random logits at temperature 1.3: only the three most
// likely tokens, in proportion to their probabilities; top_k >= V is off
// (all 10 tokens, df 9).
static void test_top_k_restricts(void **state) {
    (void)state;
    enum { V = 10 };
    RefRng r;
    ref_rng_init(&r, 6);
    float logits[V];
    for (int i = 0; i < V; i++) logits[i] = (float)(0.8 * ref_rng_normal(&r));
    const double T = 1.3;
    double p[V], z = 0.0;
    for (int i = 0; i < V; i++) z += p[i] = exp(logits[i] / T);
    for (int i = 0; i < V; i++) p[i] /= z;
    int order[V];
    for (int i = 0; i < V; i++) order[i] = i;
    for (int i = 0; i < V; i++)  // selection sort, descending p
        for (int j = i + 1; j < V; j++)
            if (p[order[j]] > p[order[i]]) {
                int t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
    Sampler s;
    sampler_build(&s, V);
    Rng rng;
    rng_init(&rng, 7);
    double want[V] = {0}, mass = p[order[0]] + p[order[1]] + p[order[2]];
    for (int i = 0; i < 3; i++) want[order[i]] = p[order[i]] / mass;
    SamplerParams sp = {(float)T, 3, 1.0f};
    assert_true(draw_chi2(&s, logits, &sp, &rng, want, V, 20000) < 35.0);
    SamplerParams all = {(float)T, V, 1.0f};
    assert_true(draw_chi2(&s, logits, &all, &rng, p, V, 20000) < 35.0);
    sampler_free(&s);
}

// Temperature t draws from softmax(logits / t): checked at 0.5, 1 and 2.5
// (top_k and top_p off) on 6 logits spread over [-2, 1.5].
static void test_temperature_distribution(void **state) {
    (void)state;
    enum { V = 6 };
    const float logits[V] = {-2.0f, 0.5f, 1.5f, -0.5f, 1.0f, 0.0f};
    const float temps[3] = {0.5f, 1.0f, 2.5f};
    Sampler s;
    sampler_build(&s, V);
    Rng rng;
    rng_init(&rng, 8);
    for (int k = 0; k < 3; k++) {
        double p[V], z = 0.0;
        for (int i = 0; i < V; i++) z += p[i] = exp(logits[i] / temps[k]);
        for (int i = 0; i < V; i++) p[i] /= z;
        SamplerParams sp = {temps[k], 0, 1.0f};
        if (verbose()) fprintf(stderr, "temperature %.1f\n", temps[k]);
        assert_true(draw_chi2(&s, logits, &sp, &rng, p, V, 20000) < 35.0);
    }
    sampler_free(&s);
}

// Equal seeds give equal draws; every non-greedy call consumes exactly one
// rng_float (plain, top-k and top-p paths), so the generator afterwards
// equals one advanced by that many rng_float calls.
static void test_seed_and_rng_consumption(void **state) {
    (void)state;
    enum { V = 9, N = 500 };
    RefRng r;
    ref_rng_init(&r, 9);
    float logits[V];
    for (int i = 0; i < V; i++) logits[i] = (float)ref_rng_normal(&r);
    Sampler s;
    sampler_build(&s, V);
    const SamplerParams kinds[3] = {{1.0f, 0, 1.0f}, {0.7f, 4, 1.0f}, {1.2f, 0, 0.7f}};
    for (int k = 0; k < 3; k++) {
        Rng a, b, c;
        rng_init(&a, 10 + k);
        rng_init(&b, 10 + k);
        rng_init(&c, 10 + k);
        int first[N], distinct = 0;
        for (int i = 0; i < N; i++) {
            first[i] = sample_token(&s, logits, &kinds[k], &a);
            distinct |= first[i] != first[0];
        }
        for (int i = 0; i < N; i++) assert_int_equal(sample_token(&s, logits, &kinds[k], &b), first[i]);
        for (int i = 0; i < N; i++) rng_float(&c);
        assert_memory_equal(&a, &c, sizeof a);
        assert_true(distinct);  // really random draws
    }
    sampler_free(&s);
}

// ---------------------------------------------------------------------------
// generate
// ---------------------------------------------------------------------------

enum { GT = 24, GV = 13 };

static void tiny_model(GPT *m, uint64_t seed) {
    GPTConfig c = {.n_layer = 2, .n_head = 2, .n_embd = 16, .block_size = GT, .vocab_size = GV,
                   .value_head = 0};
    gpt_build(m, &c);
    ref_randomize_params(m, seed);
}

// Generates greedily for one prompt alone; returns out_len.
static int generate_alone(GPT *m, const int *prompt, int len, int max_new, int eot, int *out) {
    KVCache kv;
    kvcache_build(&kv, &m->config, 1, GT);
    Sampler s;
    sampler_build(&s, GV);
    SamplerParams g = {0.0f, 0, 1.0f};
    Rng rng;
    rng_init(&rng, 0);
    int n;
    generate(m, &kv, &s, &prompt, &len, 1, max_new, eot, &g, &rng, out, &n);
    sampler_free(&s);
    kvcache_free(&kv);
    return n;
}

// Without an end-of-text id a row runs max_new tokens; each greedy token is
// the argmax of a full (uncached) forward over prompt ++ tokens so far
// (no near-ties here: the top two logits differ by > 1e-3, checked, while
// the cache and the full pass agree to ~1e-6). With eot = the first token
// that appears for the first time at k >= 1, the row stops right after it:
// out_len k + 1, the eot kept, the same tokens before, -1 after; with
// eot = the first token, after one token.
static void test_generate_stops_at_eot(void **state) {
    (void)state;
    GPT m;
    tiny_model(&m, 701);
    const int prompt[3] = {1, 2, 3};
    enum { MAXN = 10 };
    int out[MAXN];
    assert_int_equal(generate_alone(&m, prompt, 3, MAXN, -1, out), MAXN);
    int seq[3 + MAXN];
    memcpy(seq, prompt, sizeof prompt);
    for (int k = 0; k < MAXN; k++) {
        assert_true(out[k] >= 0 && out[k] < GV);
        gpt_forward(&m, seq, 1, 3 + k, 1);
        const float *l = m.acts.logits + (size_t)(3 + k - 1) * GV;
        int best = 0;
        for (int j = 1; j < GV; j++) best = l[j] > l[best] ? j : best;
        float second = -INFINITY;
        for (int j = 0; j < GV; j++)
            if (j != best) second = fmaxf(second, l[j]);
        assert_true(l[best] - second > 1e-3f);
        assert_int_equal(out[k], best);
        seq[3 + k] = out[k];
    }
    int k = 1;
    for (; k < MAXN; k++) {
        int seen = 0;
        for (int j = 0; j < k; j++) seen |= out[j] == out[k];
        if (!seen) break;
    }
    assert_true(k < MAXN);  // the continuation holds a token that is new at k
    const int eot = out[k];
    int out2[MAXN];
    assert_int_equal(generate_alone(&m, prompt, 3, MAXN, eot, out2), k + 1);
    for (int j = 0; j <= k; j++) assert_int_equal(out2[j], out[j]);
    for (int j = k + 1; j < MAXN; j++) assert_int_equal(out2[j], -1);
    // the very first token may end the row
    assert_int_equal(generate_alone(&m, prompt, 3, MAXN, out[0], out2), 1);
    assert_int_equal(out2[0], out[0]);
    for (int j = 1; j < MAXN; j++) assert_int_equal(out2[j], -1);
    gpt_free(&m);
}

// Four prompts of lengths 1, 6, 3, 6 in one lockstep batch (greedy, with an
// end-of-text id that makes some rows stop early) give, row by row, the
// same tokens and lengths as each prompt generated alone; rows are padded
// with -1. Batched decoding runs other sgemm shapes (~1e-6 differences), so
// this relies on greedy margins > 1e-3, which the previous test checks for
// this model family; any misalignment of positions changes tokens outright.
static void test_generate_lockstep_equals_alone(void **state) {
    (void)state;
    GPT m;
    tiny_model(&m, 711);
    enum { B = 4, MAXN = 8 };
    const int p0[1] = {5}, p1[6] = {1, 2, 3, 4, 5, 6}, p2[3] = {7, 0, 9}, p3[6] = {9, 9, 8, 1, 0, 2};
    const int *prompts[B] = {p0, p1, p2, p3};
    const int lens[B] = {1, 6, 3, 6};
    // as eot, the lowest token that some rows emit and others do not
    int alone[B][MAXN], alone_len[B], eot = -1;
    for (int b = 0; b < B; b++) generate_alone(&m, prompts[b], lens[b], MAXN, -1, alone[b]);
    for (int t = 0; t < GV && eot < 0; t++) {
        int rows = 0;
        for (int b = 0; b < B; b++) {
            int has = 0;
            for (int i = 0; i < MAXN; i++) has |= alone[b][i] == t;
            rows += has;
        }
        if (rows >= 1 && rows < B) eot = t;
    }
    assert_true(eot >= 0);
    int n_short = 0;
    for (int b = 0; b < B; b++) {
        alone_len[b] = generate_alone(&m, prompts[b], lens[b], MAXN, eot, alone[b]);
        n_short += alone_len[b] < MAXN;
    }
    if (verbose()) fprintf(stderr, "eot %d, %d rows stop early\n", eot, n_short);
    assert_true(n_short >= 1 && n_short < B);
    KVCache kv;
    kvcache_build(&kv, &m.config, B, GT);
    Sampler s;
    sampler_build(&s, GV);
    SamplerParams g = {0.0f, 0, 1.0f};
    Rng rng;
    rng_init(&rng, 0);
    int out[B * MAXN], out_len[B];
    generate(&m, &kv, &s, prompts, lens, B, MAXN, eot, &g, &rng, out, out_len);
    for (int b = 0; b < B; b++) {
        assert_int_equal(out_len[b], alone_len[b]);
        for (int j = 0; j < MAXN; j++)
            assert_int_equal(out[b * MAXN + j], j < alone_len[b] ? alone[b][j] : -1);
        if (out_len[b] < MAXN) assert_int_equal(out[b * MAXN + out_len[b] - 1], eot);
    }
    sampler_free(&s);
    kvcache_free(&kv);
    gpt_free(&m);
}

// generate_rows with one stream per row (rng_split): sampled rows come out
// the same whether the batch is generated whole or as two halves (as ranks
// of a data-parallel job generate it), and two rows with the same prompt
// draw different tokens.
static void test_generate_rows_split(void **state) {
    (void)state;
    GPT m;
    tiny_model(&m, 731);
    enum { B = 4, MAXN = 10 };
    const int p0[2] = {1, 2}, p1[3] = {3, 4, 5}, p2[1] = {7};
    const int *prompts[B] = {p0, p1, p2, p1};
    const int lens[B] = {2, 3, 1, 3};
    KVCache kv;
    kvcache_build(&kv, &m.config, B, GT);
    Sampler s;
    sampler_build(&s, GV);
    SamplerParams sp = {1.0f, 0, 1.0f};
    Rng rng, rows[B], halves[B];
    rng_init(&rng, 5);
    rng_split(&rng, rows, B);
    memcpy(halves, rows, sizeof rows);
    int whole[B * MAXN], whole_len[B], part[B * MAXN], part_len[B];
    generate_rows(&m, &kv, &s, prompts, lens, B, MAXN, -1, &sp, rows, whole, whole_len);
    generate_rows(&m, &kv, &s, prompts, lens, 2, MAXN, -1, &sp, halves, part, part_len);
    generate_rows(&m, &kv, &s, prompts + 2, lens + 2, 2, MAXN, -1, &sp, halves + 2,
                  part + 2 * MAXN, part_len + 2);
    for (int b = 0; b < B; b++) {
        assert_int_equal(whole_len[b], part_len[b]);
        for (int j = 0; j < MAXN; j++) assert_int_equal(whole[b * MAXN + j], part[b * MAXN + j]);
    }
    int same = 1;
    for (int j = 0; j < MAXN; j++) same &= whole[1 * MAXN + j] == whole[3 * MAXN + j];
    assert_false(same);
    sampler_free(&s);
    kvcache_free(&kv);
    gpt_free(&m);
}

// Sampled generation (temperature 1, top-p 0.9): the same seed gives the
// same tokens and lengths; another seed gives other tokens.
static void test_generate_seeded(void **state) {
    (void)state;
    GPT m;
    tiny_model(&m, 721);
    enum { B = 3, MAXN = 10 };
    const int p0[2] = {1, 2}, p1[4] = {3, 4, 5, 6}, p2[1] = {7};
    const int *prompts[B] = {p0, p1, p2};
    const int lens[B] = {2, 4, 1};
    KVCache kv;
    kvcache_build(&kv, &m.config, B, GT);
    Sampler s;
    sampler_build(&s, GV);
    SamplerParams sp = {1.0f, 0, 0.9f};
    int out[3][B * MAXN], len[3][B];
    const uint64_t seeds[3] = {42, 42, 43};
    for (int k = 0; k < 3; k++) {
        Rng rng;
        rng_init(&rng, seeds[k]);
        generate(&m, &kv, &s, prompts, lens, B, MAXN, 11, &sp, &rng, out[k], len[k]);
    }
    assert_memory_equal(out[0], out[1], sizeof out[0]);
    assert_memory_equal(len[0], len[1], sizeof len[0]);
    assert_true(memcmp(out[0], out[2], sizeof out[0]) != 0);
    sampler_free(&s);
    kvcache_free(&kv);
    gpt_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_argmax_lowest_on_ties),
        cmocka_unit_test(test_top_k_one_is_greedy),
        cmocka_unit_test(test_top_p_smallest_nucleus),
        cmocka_unit_test(test_top_k_restricts),
        cmocka_unit_test(test_temperature_distribution),
        cmocka_unit_test(test_seed_and_rng_consumption),
        cmocka_unit_test(test_generate_stops_at_eot),
        cmocka_unit_test(test_generate_lockstep_equals_alone),
        cmocka_unit_test(test_generate_seeded),
        cmocka_unit_test(test_generate_rows_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

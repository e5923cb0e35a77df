// Unit tests of src/evaluate.c: reward_auc against hand-counted pairs and
// against counting every pair; and
// greedy task answers and preference-pair scores of a small random model,
// against each prompt decoded alone and the pairs scored by reward_scores.
// The latter two also run under mpirun (tests/cli_mpi.sh), where each rank
// decodes or scores its share of every batch and must end with every
// answer and every score.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "common.h"
#include "dist.h"
#include "evaluate.h"
#include "ref_gpt.h"
#include "rng.h"
#include "sampling.h"
#include "tasks.h"

// Two families: in family 0 the correct answer (0.9) beats one wrong answer
// (0.1) and loses to the other (1.5); in family 1 it ties (0.5 = 0.5).
// Cross-family pairs and ungraded rows do not count: (1 + 0 + 0.5) / 3.
static void test_reward_auc_pairs(void **state) {
    (void)state;
    const float score[] = {0.9f, 0.1f, 1.5f, 0.5f, 0.5f, 9.0f};
    const int grade[] = {1, 0, 0, 1, 0, -1};
    const int group[] = {0, 0, 0, 1, 1, 0};
    assert_float_equal(reward_auc(score, grade, group, 6), 1.5 / 3.0, 1e-12);
}

// Perfect and inverted rankings give 1 and 0; no wrong (or no correct)
// response leaves nothing to compare: NaN.
static void test_reward_auc_extremes(void **state) {
    (void)state;
    const float up[] = {3.0f, 2.0f, 1.0f, 0.0f};
    const float down[] = {0.0f, 1.0f, 2.0f, 3.0f};
    const int grade[] = {1, 1, 0, 0};
    const int group[] = {7, 7, 7, 7};
    assert_float_equal(reward_auc(up, grade, group, 4), 1.0, 0.0);
    assert_float_equal(reward_auc(down, grade, group, 4), 0.0, 0.0);
    const int all_right[] = {1, 1, 1, 1};
    assert_true(isnan(reward_auc(up, all_right, group, 4)));
    assert_true(isnan(reward_auc(up, grade, group, 0)));
}

// By family: family 0 as in test_reward_auc_pairs (1.5 of 3 pairs, 2
// wrong), family 2 has one right answer above one of its two wrong ones
// (1 of 2), family 1 only a wrong answer (no AUC, and no base: nothing to
// rank it below), family 3 only right answers (no AUC, 0 wrong); the pooled
// AUC counts the 5 pairs. Within prompts (group: two prompts in families 0
// and 2 each, one of which has no right answer), family 0 keeps its one
// pair a right answer wins (1 of 1), family 2 its one it loses (0 of 1),
// each with a base of one wrong answer; pooled 1 of 2.
static void test_reward_auc_families(void **state) {
    (void)state;
    const float score[] = {0.9f, 0.1f, 1.5f, 0.2f, 2.0f, 1.0f, 3.0f, 4.0f, 5.0f, 0.0f};
    const int grade[] = {1, 0, 0, 0, 1, 0, 0, 1, 1, -1};
    const int family[] = {0, 0, 0, 1, 2, 2, 2, 3, 3, 1};
    RewardAuc a;
    reward_auc_families(score, grade, family, NULL, 10, &a);
    assert_float_equal(a.all, 2.5 / 5.0, 1e-12);
    assert_float_equal(a.family[0], 1.5 / 3.0, 1e-12);
    assert_float_equal(a.family[2], 1.0 / 2.0, 1e-12);
    assert_true(isnan(a.family[1]) && isnan(a.family[3]) && isnan(a.family[4]));
    const int wrong[] = {2, 0, 2, 0, 0};
    for (int f = 0; f < 5; f++) assert_int_equal(a.wrong[f], wrong[f]);
    const int prompt[] = {0, 0, 1, 5, 2, 3, 2, 4, 4, 5};
    reward_auc_families(score, grade, family, prompt, 10, &a);
    assert_float_equal(a.all, 1.0 / 2.0, 1e-12);
    assert_float_equal(a.family[0], 1.0, 0.0);
    assert_float_equal(a.family[2], 0.0, 0.0);
    assert_true(isnan(a.family[1]) && isnan(a.family[3]) && isnan(a.family[4]));
    const int within[] = {1, 0, 1, 0, 0};
    for (int f = 0; f < 5; f++) assert_int_equal(a.wrong[f], within[f]);
    reward_auc_families(NULL, NULL, NULL, NULL, 0, &a);
    assert_true(isnan(a.all) && isnan(a.family[0]) && a.wrong[0] == 0);
}

// reward_auc counts pairs by sorting; here every pair is counted one by one,
// on random data with many ties (scores from 7 values), a NaN now and then,
// ungraded rows and groups interleaved: the same value to the bit (both
// sums are of halves, exact in a double).
static double auc_pairwise(const float *score, const int *grade, const int *group, long n) {
    double wins = 0.0, pairs = 0.0;
    for (long i = 0; i < n; i++)
        for (long j = 0; j < n; j++) {
            if (grade[i] != 1 || grade[j] != 0 || group[i] != group[j]) continue;
            wins += score[i] > score[j] ? 1.0 : (score[i] == score[j] ? 0.5 : 0.0);
            pairs += 1.0;
        }
    return pairs > 0 ? wins / pairs : NAN;
}

static void test_reward_auc_sorted_equals_pairwise(void **state) {
    (void)state;
    enum { N = 600 };
    static float score[N];
    static int grade[N], group[N];
    Rng rng;
    rng_init(&rng, 7);
    for (int trial = 0; trial < 50; trial++) {
        const long n = 1 + (long)rng_below(&rng, N);
        for (long i = 0; i < n; i++) {
            const float u = rng_float(&rng);
            score[i] = u < 0.02f ? NAN : u < 0.04f ? -0.0f : (float)((int)(u * 7) - 3) * 0.5f;
            grade[i] = (int)rng_below(&rng, 4) - 1;  // -1, 0, 1, 2: 0 and 1 graded
            group[i] = (int)rng_below(&rng, 1 + trial % 5) - 1;
        }
        const double want = auc_pairwise(score, grade, group, n);
        const double got = reward_auc(score, grade, group, n);
        if (isnan(want)) assert_true(isnan(got));
        else assert_true(got == want);
    }
}

// --- a small random model on task prompts --------------------------------------

enum { NP = 13, BATCH = 4, MAXN = 8, CT = 64 };  // 13 rows: batches of 4, 4, 4 and 1

typedef struct {
    Tokenizer tok;
    TaskExample ex[NP];
    const char *prompts[NP], *families[NP];
} TaskData;

// NP task prompts of every family in turn, and a char tokenizer of their text
static void task_data(TaskData *d) {
    Rng rng;
    rng_init(&rng, 17);
    char *corpus = mallocCheck((size_t)NP * 2 * TASKS_TEXT_MAX + 64);
    strcpy(corpus, "abcdefghijklmnopqrstuvwxyz0123456789 ");
    for (int i = 0; i < NP; i++) {
        const int f = i % tasks_n_families;
        tasks_generate(&rng, f, &d->ex[i]);
        d->prompts[i] = d->ex[i].prompt;
        d->families[i] = tasks_families[f].name;
        strcat(corpus, d->ex[i].prompt);
        strcat(corpus, d->ex[i].answer);
    }
    if (tokenizer_train(&d->tok, TOKENIZER_CHAR, (const uint8_t *)corpus, strlen(corpus), 0) != 0)
        fail_msg("tokenizer_train: %s", rlhf_errmsg);
    free(corpus);
}

static void random_model(GPT *m, int vocab, int value_head, uint64_t seed) {
    GPTConfig c = {.n_layer = 2, .n_head = 2, .n_embd = 16, .block_size = CT, .vocab_size = vocab,
                   .value_head = value_head};
    gpt_build(m, &c);
    ref_randomize_params(m, seed);
}

// evaluate_tasks in batches of 4 answers every prompt as that prompt decoded
// greedily alone does (the text, whether it ended, NULL for a prompt without
// room for max_new tokens), and tallies exactly those answers. Greedy
// answers of batched rows rely on margins far above the ~1e-6 that other
// matrix shapes move a logit (as test_sampling's lockstep test does).
static void test_tasks_answers(void **state) {
    (void)state;
    TaskData d;
    task_data(&d);
    GPT m;
    random_model(&m, d.tok.vocab_size, 0, 901);
    TasksTally tally;
    tasks_tally_init(&tally);
    char *responses[NP];
    int ended[NP];
    // collective under mpirun: every rank makes the same calls before any check
    evaluate_tasks(&m, &d.tok, d.prompts, d.families, NP, MAXN, BATCH, &tally, responses, ended);
    TasksTally want;
    tasks_tally_init(&want);
    KVCache kv;
    kvcache_build(&kv, &m.config, 1, CT);
    Sampler smp;
    sampler_build(&smp, m.config.vocab_size);
    const SamplerParams greedy = {0.0f, 0, 1.0f};
    Rng rng;
    rng_init(&rng, 0);
    int ids[CT], out[MAXN], out_len, answered = 0;
    for (int i = 0; i < NP; i++) {
        ChatPrompt p = chat_prompt(d.prompts[i]);
        const long len = chat_encode_context(&d.tok, &p, ids, CT);
        if (len < 0 || len + MAXN > CT) {
            want.ungraded++;
            assert_null(responses[i]);
            continue;
        }
        const int *row = ids, l = (int)len;
        generate(&m, &kv, &smp, &row, &l, 1, MAXN, d.tok.eot, &greedy, &rng, out, &out_len);
        const int has_eot = out_len > 0 && out[out_len - 1] == d.tok.eot;
        char *text = tokenizer_decode(&d.tok, out, out_len - has_eot, 0);
        tasks_tally_add(&want, d.families[i], d.prompts[i], text);
        assert_non_null(responses[i]);
        assert_string_equal(responses[i], text);
        assert_int_equal(ended[i], has_eot);
        free(text);
        free(responses[i]);
        answered++;
    }
    assert_true(answered >= NP - 2);  // the prompts fit, but for a long one or two
    assert_memory_equal(&tally, &want, sizeof tally);
    sampler_free(&smp);
    kvcache_free(&kv);
    gpt_free(&m);
    tokenizer_free(&d.tok);
}

// evaluate_pairs scores every pair as reward_scores scores its chosen and
// its rejected sides (one process, the same batches: the same bits; under
// mpirun, rows of a batch on two ranks run other matrix shapes: within a
// relative 1e-5), and its statistics are those of the scores it returns.
static void test_pairs_scores(void **state) {
    (void)state;
    TaskData d;
    task_data(&d);
    GPT m;
    random_model(&m, d.tok.vocab_size, 1, 902);
    PrefExample ex[NP];
    char rejected[NP][TASKS_TEXT_MAX + 2];
    const char *chosen[NP], *rej[NP];
    int no_eot[NP];
    for (int i = 0; i < NP; i++) {
        snprintf(rejected[i], sizeof rejected[i], "%sx", d.ex[i].answer);
        ex[i] = (PrefExample){.prompt = d.ex[i].prompt, .chosen = d.ex[i].answer,
                              .rejected = rejected[i], .family = "", .rejected_kind = "",
                              .rejected_no_eot = i % 3 == 0, .group = -1, .ranks = {-1, -1},
                              .line = i + 1};
        chosen[i] = d.ex[i].answer;
        rej[i] = rejected[i];
        no_eot[i] = ex[i].rejected_no_eot;
    }
    PrefSet set = {ex, NP, "pairs"};
    PairResult res;
    PairScores ps;
    const int rc = evaluate_pairs(&m, &d.tok, &set, 0, BATCH, &res, &ps);  // collective
    assert_int_equal(rc, 0);
    assert_int_equal(res.skipped, 0);  // every pair fits
    assert_int_equal(res.pairs, NP);
    assert_int_equal(ps.n, NP);
    float want_c[NP], want_r[NP];
    reward_scores(&m, &d.tok, d.prompts, chosen, NULL, NP, BATCH, want_c, NULL);
    reward_scores(&m, &d.tok, d.prompts, rej, no_eot, NP, BATCH, want_r, NULL);
    const double tol = dist_size() > 1 ? 1e-5 : 0.0;
    double right = 0, margin = 0, sum = 0, sq = 0;
    for (int i = 0; i < NP; i++) {
        assert_int_equal(ps.example[i], i);
        assert_float_equal(ps.chosen[i], want_c[i], tol * fabsf(want_c[i]));
        assert_float_equal(ps.rejected[i], want_r[i], tol * fabsf(want_r[i]));
        right += ps.chosen[i] > ps.rejected[i];
        margin += (double)ps.chosen[i] - ps.rejected[i];
        sum += (double)ps.chosen[i] + ps.rejected[i];
    }
    const double mean = sum / (2.0 * NP);
    for (int i = 0; i < NP; i++)
        sq += (ps.chosen[i] - mean) * (ps.chosen[i] - mean) +
              (ps.rejected[i] - mean) * (ps.rejected[i] - mean);
    assert_true(res.accuracy == right / NP);
    assert_true(res.margin == margin / NP);
    assert_true(res.mean == mean);
    assert_true(res.std == sqrt(sq / (2.0 * NP)));
    assert_true(res.std > 1e-3);  // the scores differ: a lost row would show
    pair_scores_free(&ps);
    gpt_free(&m);
    tokenizer_free(&d.tok);
}

int main(void) {
    if (dist_init() != 0) {  // under mpirun: the model tests run on every rank
        fprintf(stderr, "%s\n", rlhf_errmsg);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reward_auc_pairs),
        cmocka_unit_test(test_reward_auc_extremes),
        cmocka_unit_test(test_reward_auc_families),
        cmocka_unit_test(test_reward_auc_sorted_equals_pairwise),
        cmocka_unit_test(test_tasks_answers),
        cmocka_unit_test(test_pairs_scores),
    };
    const int failed = cmocka_run_group_tests(tests, NULL, NULL);
    dist_finalize();
    return failed;
}

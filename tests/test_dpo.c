// Checks DPO (src/losses.c, src/objectives.c, src/evaluate.c, src/seqs.c)
// against independent double computations written here: the sigmoid, IPO
// and cDPO losses, their gradients with respect to the four log-probabilities
// by central differences, their statistics and saturation; sequence
// log-probabilities and their backward; the loss flags of preference pairs
// (response and end-of-text, never the prompt); the whole DPO step's
// gradient with respect to the model's parameters along random directions
// (5-point stencil of the double reference model, tests/ref_gpt.c); and a
// policy equal to its reference: implicit rewards exactly 0, sigmoid loss
// exactly log 2.
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
#include <unistd.h>

#include "chat.h"
#include "common.h"
#include "evaluate.h"
#include "gpt.h"
#include "jsonl.h"
#include "losses.h"
#include "objectives.h"
#include "ref_gpt.h"
#include "seqs.h"
#include "tokenizer.h"

#if defined(__SANITIZE_ADDRESS__)
const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void) { return "halt_on_error=1:print_stacktrace=1"; }
#endif

static int verbose(void) { return getenv("RLHF_TEST_VERBOSE") != NULL; }

// ---------------------------------------------------------------------------
// The losses on log-probabilities
// ---------------------------------------------------------------------------

// Mean over n pairs, straight from the definitions (README, losses.h), in
// double: sigmoid -(1-eps) log s(h) - eps log s(-h) with s(x) = 1/(1+e^-x),
// h = beta d; IPO (d - 1/(2 beta))^2; d = (pc - rc) - (pr - rr); plus RPO's
// alpha * (-pc / nc), nc the chosen answer's tokens.
static double ref_dpo(const double *pc, const double *pr, const double *rc, const double *rr,
                      const double *nc, int n, const DpoParams *p) {
    double s = 0.0;
    for (int i = 0; i < n; i++) {
        double d = (pc[i] - rc[i]) - (pr[i] - rr[i]);
        if (p->type == DPO_IPO) {
            s += pow(d - 1.0 / (2.0 * p->beta), 2.0);
        } else {
            double h = p->beta * d;
            s += -(1.0 - p->label_smoothing) * log(1.0 / (1.0 + exp(-h))) -
                 p->label_smoothing * log(1.0 / (1.0 + exp(h)));
        }
        s += p->rpo_alpha * (-pc[i] / nc[i]);
    }
    return s / n;
}

static const DpoParams VARIANTS[] = {
    {DPO_SIGMOID, 0.1, 0.0, 0.0},  // DPO
    {DPO_SIGMOID, 0.5, 0.2, 0.0},  // cDPO
    {DPO_IPO, 0.1, 0.0, 0.0},      // IPO
    {DPO_IPO, 2.0, 0.0, 0.0},
    {DPO_SIGMOID, 0.1, 0.0, 1.0},  // RPO
    {DPO_IPO, 0.5, 0.0, 0.3},      // IPO with the NLL term
};
static const char *variant_name(const DpoParams *p) {
    if (p->rpo_alpha > 0) return p->type == DPO_IPO ? "ipo+nll" : "rpo";
    return p->type == DPO_IPO ? "ipo" : p->label_smoothing > 0 ? "cdpo" : "sigmoid";
}

// Value within 1e-12 relative of the double reference. Gradients with
// respect to each of the 4n inputs against central differences of the
// reference, step 1e-5 (log-probs are O(10)): truncation delta^2/6 |f'''|
// < 1e-11 (zero for IPO, a quadratic), rounding ~1e-16 |f| / delta = 1e-11
// |f|; bound 1e-8 max(1, |f|), while a wrong gradient misses by O(beta/n) =
// 1e-2. d loss / d rc = -d loss / d pc and d loss / d rr = -d loss / d pr by
// construction, so all four are checked. Statistics: sums of beta (pc - rc),
// beta (pr - rr), the pairs with the chosen reward above (a tie counts as
// wrong), the policy's log-probs. Pairs include a tie (policy = reference
// on both sides) and a badly ranked one.
static void test_losses_match_double(void **state) {
    (void)state;
    enum { n = 6 };
    RefRng r;
    ref_rng_init(&r, 7);
    double pc[n], pr[n], rc[n], rr[n], nc[n];
    for (int i = 0; i < n; i++) {
        nc[i] = 1 + (int)(12 * ref_rng_uniform(&r));
        rc[i] = -20.0 + 4.0 * ref_rng_normal(&r);
        rr[i] = -20.0 + 4.0 * ref_rng_normal(&r);
        pc[i] = rc[i] + 3.0 * ref_rng_normal(&r);
        pr[i] = rr[i] + 3.0 * ref_rng_normal(&r);
    }
    pc[2] = rc[2], pr[2] = rr[2];            // a tie: d = 0
    pc[4] = rc[4] - 9.0, pr[4] = rr[4] + 9;  // ranked badly: d = -18
    for (size_t v = 0; v < sizeof VARIANTS / sizeof VARIANTS[0]; v++) {
        const DpoParams *p = &VARIANTS[v];
        double g[4][n];
        DpoStats st = {0};
        double loss = dpo_loss(pc, pr, rc, rr, nc, n, p, g[0], g[1], g[2], g[3], &st);
        double want = ref_dpo(pc, pr, rc, rr, nc, n, p);
        if (verbose())
            fprintf(stderr, "%s beta %g: loss %.17g ref %.17g\n", variant_name(p), p->beta, loss,
                    want);
        assert_true(fabs(loss - want) <= 1e-12 * fmax(1.0, fabs(want)));
        double *in[4] = {pc, pr, rc, rr};
        const double delta = 1e-5, tol = 1e-8 * fmax(1.0, fabs(want));
        for (int k = 0; k < 4; k++)
            for (int i = 0; i < n; i++) {
                double save = in[k][i];
                in[k][i] = save + delta;
                double fp = ref_dpo(pc, pr, rc, rr, nc, n, p);
                in[k][i] = save - delta;
                double fm = ref_dpo(pc, pr, rc, rr, nc, n, p);
                in[k][i] = save;
                double fd = (fp - fm) / (2 * delta);
                if (verbose())
                    fprintf(stderr, "  input %d pair %d: %+.12e fd %+.12e\n", k, i, g[k][i], fd);
                assert_true(fabs(g[k][i] - fd) <= tol);
            }
        // statistics
        double wc = 0, wr = 0, right = 0, lc = 0, lr = 0, nll = 0;
        for (int i = 0; i < n; i++) {
            nll += -pc[i] / nc[i];
            wc += p->beta * (pc[i] - rc[i]);
            wr += p->beta * (pr[i] - rr[i]);
            right += p->beta * (pc[i] - rc[i]) > p->beta * (pr[i] - rr[i]);
            lc += pc[i];
            lr += pr[i];
        }
        assert_true(st.pairs == n);
        assert_true(fabs(st.loss / n - want) <= 1e-12 * fmax(1.0, fabs(want)));
        assert_true(fabs(st.reward_chosen - wc) <= 1e-12 * fmax(1.0, fabs(wc)));
        assert_true(fabs(st.reward_rejected - wr) <= 1e-12 * fmax(1.0, fabs(wr)));
        assert_true(st.correct == right && right < n);  // the tie and pair 4 are wrong
        assert_true(fabs(st.logp_chosen - lc) <= 1e-12 * fabs(lc));
        assert_true(fabs(st.logp_rejected - lr) <= 1e-12 * fabs(lr));
        assert_true(fabs(st.nll - nll) <= 1e-12 * fabs(nll));
        // gradients and statistics are optional; statistics add up
        assert_true(dpo_loss(pc, pr, rc, rr, nc, n, p, NULL, NULL, NULL, NULL, &st) == loss);
        assert_true(st.pairs == 2 * n);
    }
}

// Far from the decision boundary (|h| = 800, where exp overflows): finite
// values, and the limits by hand: sigmoid loss 0 with gradient 0 when the
// chosen side wins by far, loss |h| with d loss / d pc = -beta / n when it
// loses by far; cDPO keeps eps |h| and a gradient of eps beta / n pulling
// back a pair won by far (the label may be wrong). IPO stays quadratic.
static void test_losses_saturate(void **state) {
    (void)state;
    const double pc[2] = {0.0, -800.0}, pr[2] = {-800.0, 0.0}, rc[2] = {0, 0}, rr[2] = {0, 0};
    double g[2], gr[2];
    const DpoParams dpo = {DPO_SIGMOID, 1.0, 0.0, 0.0}, cdpo = {DPO_SIGMOID, 1.0, 0.1, 0.0},
                    ipo = {DPO_IPO, 0.5, 0.0, 0.0};
    double l = dpo_loss(pc, pr, rc, rr, NULL, 2, &dpo, g, gr, NULL, NULL, NULL);
    assert_true(isfinite(l) && fabs(l - 800.0 / 2) <= 1e-12);
    assert_true(g[0] == 0.0 && gr[0] == 0.0);
    assert_true(fabs(g[1] - (-0.5)) <= 1e-15 && fabs(gr[1] - 0.5) <= 1e-15);
    l = dpo_loss(pc, pr, rc, rr, NULL, 2, &cdpo, g, gr, NULL, NULL, NULL);
    assert_true(isfinite(l) && fabs(l - (0.1 * 800 + 0.9 * 800) / 2) <= 1e-10);
    assert_true(fabs(g[0] - 0.1 / 2) <= 1e-15 && fabs(g[1] - (-0.9 / 2)) <= 1e-15);
    l = dpo_loss(pc, pr, rc, rr, NULL, 2, &ipo, g, gr, NULL, NULL, NULL);
    assert_true(fabs(l - (pow(800 - 1.0, 2) + pow(-800 - 1.0, 2)) / 2) <= 1e-9);
    assert_true(fabs(g[0] - 2 * (800 - 1.0) / 2) <= 1e-12);
}

// Policy = reference, exactly: every implicit reward is 0, no pair counts as
// right (ties), the sigmoid loss is log 2 to the last bit (softplus(0) =
// log1p(1)) with d loss / d pc = -beta / (2n); cDPO's is log 2 to rounding;
// IPO's is 1 / (4 beta^2).
static void test_equal_policy_and_reference(void **state) {
    (void)state;
    enum { n = 5 };
    RefRng r;
    ref_rng_init(&r, 9);
    double pc[n], pr[n], nc[n], g[n];
    double nll = 0.0;  // RPO's term: the mean NLL per token of the chosen answers
    for (int i = 0; i < n; i++) {
        pc[i] = -30 * ref_rng_uniform(&r);
        pr[i] = -30 * ref_rng_uniform(&r);
        nc[i] = 1 + i;
        nll += -pc[i] / nc[i] / n;
    }
    for (size_t v = 0; v < sizeof VARIANTS / sizeof VARIANTS[0]; v++) {
        const DpoParams *p = &VARIANTS[v];
        DpoStats st = {0};
        double l = dpo_loss(pc, pr, pc, pr, nc, n, p, g, NULL, NULL, NULL, &st);
        assert_true(st.reward_chosen == 0.0 && st.reward_rejected == 0.0 && st.correct == 0.0);
        const double extra = p->rpo_alpha * nll;
        if (p->type == DPO_IPO) {
            const double want = 1.0 / (4 * p->beta * p->beta) + extra;
            assert_true(fabs(l - want) <= 1e-15 * want);
        } else if (p->label_smoothing == 0.0 && p->rpo_alpha == 0.0) {
            assert_true(l == log(2.0));
            for (int i = 0; i < n; i++) assert_true(g[i] == -p->beta / 2 / n);
        } else {
            assert_true(fabs(l - (log(2.0) + extra)) <= 8 * DBL_EPSILON * (1 + extra));
        }
    }
}

// ---------------------------------------------------------------------------
// Sequence log-probabilities
// ---------------------------------------------------------------------------

// sum_r g[r] logp[r] from double logits (R,T,V): the quantity whose
// gradient seq_logprobs_backward writes.
static double ref_seq_objective(const double *logits, const int *targets,
                                const unsigned char *mask, const double *g, int R, int T, int V,
                                double *logp) {
    double f = 0.0;
    for (int r = 0; r < R; r++) {
        double sum = 0.0;
        for (int t = 0; t < T; t++) {
            const int n = r * T + t;
            if (!mask[n]) continue;
            const double *row = logits + (size_t)n * V;
            double mx = -INFINITY, s = 0.0;
            for (int j = 0; j < V; j++) mx = fmax(mx, row[j]);
            for (int j = 0; j < V; j++) s += exp(row[j] - mx);
            sum += row[targets[n]] - mx - log(s);
        }
        if (logp) logp[r] = sum;
        f += g[r] * sum;
    }
    return f;
}

// seq_logprobs against double log-softmax sums: each float log-prob carries
// a few ulp of max |logit| (~4, so 2e-6 per token); 4 masked tokens a row,
// bound 1e-5. Targets off the mask (here -1, padding) are never read. The
// backward against central differences of the double objective sum_r g[r]
// logp[r] (step 1e-4 on O(1) logits: truncation 2e-9, rounding 1e-12),
// within 1e-6 (float output); rows off the mask get exactly zero.
static void test_seq_logprobs_and_backward(void **state) {
    (void)state;
    enum { R = 3, T = 5, V = 7 };
    RefRng r;
    ref_rng_init(&r, 21);
    float logits[R * T * V];
    double dl[R * T * V];
    int targets[R * T];
    unsigned char mask[R * T];
    for (int i = 0; i < R * T * V; i++) dl[i] = logits[i] = (float)(2.0 * ref_rng_normal(&r));
    for (int n = 0; n < R * T; n++) {
        mask[n] = (n % T) >= 1;  // the first position of each row is "prompt"
        targets[n] = mask[n] ? ref_rng_int(&r, V) : -1;
    }
    mask[2 * T + 3] = 0, targets[2 * T + 3] = -1;  // a hole inside a row
    const double g[R] = {0.5, -1.25, 2.0};
    double logp[R], want[R];
    seq_logprobs(logp, logits, targets, mask, R, T, V);
    ref_seq_objective(dl, targets, mask, g, R, T, V, want);
    for (int k = 0; k < R; k++) {
        if (verbose()) fprintf(stderr, "row %d: logp %.9f ref %.9f\n", k, logp[k], want[k]);
        assert_true(fabs(logp[k] - want[k]) <= 1e-5);
    }
    float dlogits[R * T * V];
    memset(dlogits, 0x7f, sizeof dlogits);  // garbage that must be overwritten
    seq_logprobs_backward(dlogits, logits, targets, mask, g, R, T, V);
    const double h = 1e-4;
    for (int i = 0; i < R * T * V; i++) {
        if (!mask[i / V]) {
            assert_true(dlogits[i] == 0.0f);
            continue;
        }
        double save = dl[i];
        dl[i] = save + h;
        double fp = ref_seq_objective(dl, targets, mask, g, R, T, V, NULL);
        dl[i] = save - h;
        double fm = ref_seq_objective(dl, targets, mask, g, R, T, V, NULL);
        dl[i] = save;
        assert_true(fabs(dlogits[i] - (fp - fm) / (2 * h)) <= 1e-6);
    }
    // in place (dlogits == logits, as dpo_accumulate calls it): the same bits
    float z[R * T * V];
    memcpy(z, logits, sizeof z);
    seq_logprobs_backward(z, z, targets, mask, g, R, T, V);
    assert_memory_equal(z, dlogits, sizeof z);
}

// ---------------------------------------------------------------------------
// Preference pairs on a model
// ---------------------------------------------------------------------------

enum { RT = 48 };  // context of the models below

static const char CORPUS[] =
    "what is 2+3? 5. what is 7+1? 8. the quick brown fox jumps over the lazy dog.\n"
    "say hello. hello! say bye. bye! what is the capital of france? paris.\n"
    "what is 4+4? 8. the dog sleeps. the fox runs. hello there, how are you?\n";

static const char PAIRS[] =
    "{\"prompt\":\"say bye.\",\"chosen\":\"bye!\",\"rejected\":\"hello!\"}\n"
    "{\"prompt\":\"what is 4+4?\",\"chosen\":\"8.\",\"rejected\":\"the dog sleeps. the fox "
    "runs.\",\"rejected_no_eot\":true}\n"
    "{\"prompt\":\"what is the capital of france?\",\"chosen\":\"paris.\",\"rejected\":"
    "\"the fox.\"}\n"
    "{\"prompt\":\"say hello.\",\"chosen\":\"hello there, how are you?\",\"rejected\":"
    "\"the quick brown fox jumps over the lazy dog. the dog sleeps.\"}\n"  // too long: skipped
    "{\"prompt\":\"what is 2+3?\",\"chosen\":\"5.\",\"rejected\":\"8.\"}\n";

typedef struct {
    Tokenizer tok;
    PrefSet set;
    SeqSet seqs;  // pairs that fit RT tokens: 2i chosen, 2i+1 rejected
    long skipped;
    GPT m;
} World;

static void world_build(World *w, uint64_t seed) {
    memset(w, 0, sizeof *w);
    if (tokenizer_train(&w->tok, TOKENIZER_CHAR, (const uint8_t *)CORPUS, sizeof CORPUS - 1,
                        256 + 20 + 4))
        fail_msg("tokenizer_train: %s", rlhf_errmsg);
    char path[] = "/tmp/rlhf_test_dpo_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs(PAIRS, f);
    fclose(f);
    if (jsonl_read_prefs(path, &w->set)) fail_msg("%s", rlhf_errmsg);
    remove(path);
    if (seqs_from_prefs(&w->set, &w->tok, RT, &w->seqs, &w->skipped)) fail_msg("%s", rlhf_errmsg);
    GPTConfig c = {.n_layer = 2, .n_head = 2, .n_embd = 16, .block_size = RT,
                   .vocab_size = w->tok.vocab_size};
    gpt_build(&w->m, &c);
    gpt_train_build(&w->m);
    ref_randomize_params(&w->m, seed);
}

static void world_free(World *w) {
    gpt_free(&w->m);
    seqs_free(&w->seqs);
    jsonl_free_prefs(&w->set);
    tokenizer_free(&w->tok);
}

// Loss flags of a pair: the response tokens and the end-of-text of each
// side (none for a rejected_no_eot side, which ends in a response token),
// never the prompt <|user|>...<|assistant|>; the ids are chat_encode_pair's.
// The pair longer than the context is skipped and counted.
static void test_pair_loss_flags(void **state) {
    (void)state;
    World w;
    world_build(&w, 1);
    assert_int_equal(w.skipped, 1);
    assert_int_equal(w.seqs.n, 8);
    const long example[4] = {0, 1, 2, 4};
    for (long i = 0; i < 4; i++) {
        const PrefExample *e = &w.set.ex[example[i]];
        int ids[RT + 1], pids[RT + 1];
        long pl = chat_encode_prompt(&w.tok, e->prompt, pids, RT + 1);
        for (int side = 0; side < 2; side++) {
            const long s = 2 * i + side;
            long n = chat_encode_pair(&w.tok, e->prompt, side ? e->rejected : e->chosen,
                                      side ? e->rejected_no_eot : 0, ids, RT + 1);
            assert_int_equal(seqs_len(&w.seqs, s), n);
            const int *got = w.seqs.ids + w.seqs.off[s];
            const unsigned char *loss = w.seqs.loss + w.seqs.off[s];
            assert_memory_equal(got, ids, (size_t)n * sizeof(int));
            for (long t = 0; t < n; t++) assert_int_equal(loss[t], t >= pl);
            const int ends_eot = got[n - 1] == w.tok.eot;
            assert_int_equal(ends_eot, !(side && e->rejected_no_eot));
        }
    }
    world_free(&w);
}

// evaluate_seq_logprobs: the sum of log p over each sequence's flagged
// tokens, against the double reference forward (as test_chat.c's
// likelihood test: 1e-5 per unit of |logp|); the same quantity `rlhf eval`
// ranks pairs by (evaluate_pairs of a language model, float: 1e-5); and
// within 1e-5 whatever the batch (padding changes sgemm shapes, not the
// math).
static void test_seq_logprobs_of_pairs(void **state) {
    (void)state;
    World w;
    world_build(&w, 611);
    const long n = w.seqs.n;
    double lp4[8], lp1[8], lp3[8];
    evaluate_seq_logprobs(&w.m, &w.seqs, n, 4, w.tok.pad, lp4);
    evaluate_seq_logprobs(&w.m, &w.seqs, n, 1, w.tok.pad, lp1);
    evaluate_seq_logprobs(&w.m, &w.seqs, n, 3, w.tok.pad, lp3);
    double *params = ref_params_to_double(&w.m);
    for (long s = 0; s < n; s++) {
        const long L = seqs_len(&w.seqs, s);
        const int *ids = w.seqs.ids + w.seqs.off[s];
        const unsigned char *loss = w.seqs.loss + w.seqs.off[s];
        int targets[RT];
        float wt[RT];
        for (long t = 0; t + 1 < L; t++) {
            targets[t] = loss[t + 1] ? ids[t + 1] : -1;
            wt[t] = 1.0f;
        }
        double ll = -ref_gpt_forward(&w.m.config, w.m.info, params, ids, targets, wt, 1,
                                     (int)L - 1, NULL, NULL);
        if (verbose())
            fprintf(stderr, "seq %ld: %.7f (batch 1: %.7f) ref %.7f\n", s, lp4[s], lp1[s], ll);
        assert_true(fabs(lp4[s] - ll) <= 1e-5 * fmax(1.0, fabs(ll)));
        assert_true(fabs(lp1[s] - lp4[s]) <= 1e-5 * fmax(1.0, fabs(ll)));
        assert_true(fabs(lp3[s] - lp4[s]) <= 1e-5 * fmax(1.0, fabs(ll)));
    }
    PairResult pr;
    PairScores ps;
    assert_int_equal(evaluate_pairs(&w.m, &w.tok, &w.set, 0, 4, &pr, &ps), 0);
    assert_int_equal(ps.n, 4);
    for (long i = 0; i < 4; i++) {
        const double c = lp4[2 * i], rj = lp4[2 * i + 1];
        assert_true(fabs(ps.chosen[i] - c) <= 1e-5 * fmax(1.0, fabs(c)));
        assert_true(fabs(ps.rejected[i] - rj) <= 1e-5 * fmax(1.0, fabs(rj)));
    }
    pair_scores_free(&ps);
    free(params);
    world_free(&w);
}

// The step of `rlhf dpo` with the policy equal to its reference. The
// reference log-probs of the batch's rows computed by dpo_reference, on a
// second GPT holding the same parameters, as the stage does for rows no
// earlier batch held: the rows given as NaN are filled, the others kept,
// and a second call runs nothing. They make every implicit reward exactly
// 0 and the loss exactly log 2 (the reference's no-gradient forward and the
// policy's training forward give the same bits); IPO's loss is then
// 1 / (4 beta^2). The held-out evaluation, with the reference's log-probs
// cached by evaluate_seq_logprobs in the batches it scores in, gives
// exactly 0 too.
static void test_step_with_policy_equal_reference(void **state) {
    (void)state;
    World w;
    world_build(&w, 71);
    const int B = 2, V = w.m.config.vocab_size;
    const long rows[4] = {0, 2, 1, 3};  // chosen of pairs 0, 1, then their rejected
    int x[4 * RT], y[4 * RT];
    unsigned char mask[4 * RT];
    const int T = seqs_batch(&w.seqs, rows, 2 * B, w.tok.pad, x, y, mask);
    GPT ref_model;
    gpt_build(&ref_model, &w.m.config);
    memcpy(ref_model.params_memory, w.m.params_memory, w.m.num_params * sizeof(float));
    gpt_params_changed(&ref_model);
    // the rows' log-probs by the policy's own forward, for the kept row
    gpt_forward(&w.m, x, 2 * B, T, 1);
    double own[4], ref[4], logp[4], dlogp[4];
    seq_logprobs(own, w.m.acts.logits, y, mask, 2 * B, T, V);
    for (int r = 0; r < 4; r++) ref[r] = NAN;
    ref[1] = own[1] - 0.25;  // known from an earlier batch: kept
    assert_int_equal(dpo_reference(&ref_model, x, y, mask, B, T, ref), 3);
    assert_true(ref[1] == own[1] - 0.25);
    ref[1] = NAN;
    assert_int_equal(dpo_reference(&ref_model, x, y, mask, B, T, ref), 1);
    assert_memory_equal(ref, own, sizeof ref);
    assert_int_equal(dpo_reference(&ref_model, x, y, mask, B, T, ref), 0);
    for (size_t v = 0; v < sizeof VARIANTS / sizeof VARIANTS[0]; v++) {
        const DpoParams *p = &VARIANTS[v];
        DpoStats st = {0};
        gpt_zero_grad(&w.m);
        double loss = dpo_accumulate(&w.m, x, y, mask, B, T, ref, p, 1, logp, dlogp, &st);
        assert_memory_equal(logp, ref, sizeof ref);
        assert_true(st.reward_chosen == 0.0 && st.reward_rejected == 0.0 && st.correct == 0.0);
        const double extra = p->rpo_alpha * st.nll / B;
        if (p->type == DPO_IPO)
            assert_true(fabs(loss - (1 / (4 * p->beta * p->beta) + extra)) <= 1e-12);
        else if (p->label_smoothing == 0 && p->rpo_alpha == 0) assert_true(loss == log(2.0));
        else assert_true(fabs(loss - (log(2.0) + extra)) <= 1e-12);
    }
    // the held-out view, as the stage computes it
    double cache[8];
    evaluate_seq_logprobs(&ref_model, &w.seqs, 8, 4, w.tok.pad, cache);
    DpoStats st;
    evaluate_dpo_pairs(&w.m, &w.seqs, 4, cache, &VARIANTS[0], 4, w.tok.pad, &st);
    assert_true(st.pairs == 4 && st.reward_chosen == 0.0 && st.reward_rejected == 0.0);
    assert_true(st.correct == 0.0 && fabs(st.loss / 4 - log(2.0)) <= 4 * DBL_EPSILON);
    gpt_free(&ref_model);
    world_free(&w);
}

// ---------------------------------------------------------------------------
// The whole step's gradient against the double reference model
//
// Two pairs of different lengths in one right-padded batch (rows chosen 0,
// chosen 1, rejected 0, rejected 1, prompt tokens and padding unflagged).
// The reference log-probs are the policy's own plus N(0, 0.7^2) noise, so
// that the pairs sit at different points of each loss. The gradient from
// dpo_accumulate is compared with the 5-point stencil of the whole loss
// computed by the double reference model, e = 1e-3, along random unit
// directions: over all parameters and over five tensors. Bound as in
// test_gpt.c: |g.d - fd| <= 1e-4 max(|g.d|, |fd|) + 1e-6 |g_P| |d| (float
// activations give ~1e-6 relative noise per component; a wrong gradient
// misses by O(|g_P|)). The loss itself matches the double one within 1e-5
// relative. With accum = 2 the gradient is exactly half.
// ---------------------------------------------------------------------------

typedef struct {
    const GPT *m;
    const int *x, *y;
    const unsigned char *mask;
    int B, T;
    const double *ref;
    const DpoParams *p;
} StepObjective;

static double step_objective(const StepObjective *o, const double *params) {
    const int R = 2 * o->B, V = o->m->config.vocab_size;
    double *logits = mallocCheck((size_t)R * o->T * V * sizeof(double));
    ref_gpt_forward(&o->m->config, o->m->info, params, o->x, NULL, NULL, R, o->T, logits, NULL);
    double ones[8] = {1, 1, 1, 1, 1, 1, 1, 1}, lp[8], nc[4];
    ASSERT(R <= 8);
    ref_seq_objective(logits, o->y, o->mask, ones, R, o->T, V, lp);
    free(logits);
    for (int i = 0; i < o->B; i++) {  // tokens of each chosen answer
        nc[i] = 0;
        for (int t = 0; t < o->T; t++) nc[i] += o->mask[i * o->T + t] != 0;
    }
    return ref_dpo(lp, lp + o->B, o->ref, o->ref + o->B, nc, o->B, o->p);
}

static double step_objective_at(const void *o, const double *x) { return step_objective(o, x); }

static void test_step_gradient(void **state) {
    (void)state;
    World w;
    world_build(&w, 501);
    GPT *m = &w.m;
    const int B = 2, V = m->config.vocab_size;
    const long rows[4] = {0, 2, 1, 3};
    int x[4 * RT], y[4 * RT];
    unsigned char mask[4 * RT];
    const int T = seqs_batch(&w.seqs, rows, 2 * B, w.tok.pad, x, y, mask);
    assert_true(T > seqs_len(&w.seqs, 0) - 1);  // some rows are padded
    gpt_forward(m, x, 2 * B, T, 1);
    double ref[4], logp[4], dlogp[4];
    seq_logprobs(ref, m->acts.logits, y, mask, 2 * B, T, V);
    RefRng r;
    ref_rng_init(&r, 502);
    for (int i = 0; i < 4; i++) ref[i] += 0.7 * ref_rng_normal(&r);
    double *params = ref_params_to_double(m);
    const int tensors[] = {PARAM_wte, PARAM_wpe, PARAM_qkvw, PARAM_fcprojw, PARAM_lnfw};
    const size_t P = m->num_params;
    double *d = mallocCheck(P * sizeof(double));
    float *g1 = mallocCheck(P * sizeof(float));
    const DpoParams variants[] = {{DPO_SIGMOID, 0.5, 0.0, 0.0}, {DPO_SIGMOID, 0.5, 0.25, 0.0},
                                  {DPO_IPO, 0.1, 0.0, 0.0}, {DPO_SIGMOID, 0.5, 0.0, 1.0}};
    int ok = 1;
    for (int v = 0; v < 4; v++) {
        const DpoParams *p = &variants[v];
        gpt_zero_grad(m);
        double loss = dpo_accumulate(m, x, y, mask, B, T, ref, p, 1, logp, dlogp, NULL);
        StepObjective o = {m, x, y, mask, B, T, ref, p};
        double want = step_objective(&o, params);
        if (verbose()) fprintf(stderr, "%s: loss %.9g ref %.9g\n", variant_name(p), loss, want);
        assert_true(fabs(loss - want) <= 1e-5 * fmax(1.0, fabs(want)));
        for (int k = 0; k <= 5; k++) {
            size_t lo = 0, hi = P;
            const char *what = "all parameters";
            if (k < 5) {
                lo = m->info[tensors[k]].offset;
                hi = lo + m->info[tensors[k]].size;
                what = m->info[tensors[k]].name;
            }
            memset(d, 0, P * sizeof(double));
            double n2 = 0.0;
            for (size_t i = lo; i < hi; i++) {
                d[i] = ref_rng_normal(&r);
                n2 += d[i] * d[i];
            }
            for (size_t i = lo; i < hi; i++) d[i] /= sqrt(n2);
            ok &= ref_check_direction(what, m, params, d, step_objective_at, &o);
        }
        // one of two micro-batches: exactly half the gradient
        memcpy(g1, m->train->grads_memory, P * sizeof(float));
        gpt_zero_grad(m);
        dpo_accumulate(m, x, y, mask, B, T, ref, p, 2, logp, dlogp, NULL);
        for (size_t i = 0; i < P; i++) assert_true(2.0f * m->train->grads_memory[i] == g1[i]);
    }
    assert_true(ok);
    free(g1);
    free(d);
    free(params);
    world_free(&w);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_losses_match_double),
        cmocka_unit_test(test_losses_saturate),
        cmocka_unit_test(test_equal_policy_and_reference),
        cmocka_unit_test(test_seq_logprobs_and_backward),
        cmocka_unit_test(test_pair_loss_flags),
        cmocka_unit_test(test_seq_logprobs_of_pairs),
        cmocka_unit_test(test_step_with_policy_equal_reference),
        cmocka_unit_test(test_step_gradient),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

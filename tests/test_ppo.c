// Checks the PPO engine of src/ppo.c on tiny random GPTs: rollout layout
// and masks after ppo_generate, the log-probs, values and scores of
// ppo_score against the double reference model, exact zero KL and exact
// unit ratios when the policy equals the reference, the rewards, GAE and
// whitening of ppo_advantages, and the direction of one PPO update; the
// graders' reward, the group methods' advantages in a rollout and their
// update's gradient through the whole policy against the double reference.
// The loss formulas themselves are checked in test_losses.c.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "gpt.h"
#include "losses.h"
#include "optim.h"
#include "ppo.h"
#include "ref_gpt.h"
#include "rng.h"
#include "sampling.h"

#if defined(__SANITIZE_ADDRESS__)
const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void) { return "halt_on_error=1:print_stacktrace=1"; }
#endif

static int verbose(void) { return getenv("RLHF_TEST_VERBOSE") != NULL; }

// Vocabulary: plain tokens 0..9, end-of-text 10, 11 unused, pad 12.
enum { ML = 2, MNH = 2, MC = 16, MT = 16, MV = 13, EOT = 10, PAD = 12, NP = 6, MAX_NEW = 6 };

static GPTConfig model_config(int value_head) {
    return (GPTConfig){.n_layer = ML, .n_head = MNH, .n_embd = MC, .block_size = MT,
                       .vocab_size = MV, .value_head = value_head};
}

// The four models; the policy and the critic have training states. The
// reference gets the policy's parameters when ref_seed == policy_seed.
typedef struct {
    GPT policy, ref, critic, rm;
} Models;

static void models_build(Models *M, uint64_t policy_seed, uint64_t ref_seed) {
    GPTConfig lm = model_config(0), vh = model_config(1);
    gpt_build(&M->policy, &lm);
    gpt_train_build(&M->policy);
    gpt_build(&M->ref, &lm);
    gpt_build(&M->critic, &vh);
    gpt_train_build(&M->critic);
    gpt_build(&M->rm, &vh);
    ref_randomize_params(&M->policy, policy_seed);
    ref_randomize_params(&M->ref, ref_seed);
    ref_randomize_params(&M->critic, 901);
    ref_randomize_params(&M->rm, 902);
}

static void models_free(Models *M) {
    gpt_free(&M->policy);
    gpt_free(&M->ref);
    gpt_free(&M->critic);
    gpt_free(&M->rm);
}

static PPOParams default_params(void) {
    return (PPOParams){.sampling = {.temperature = 0.9f, .top_k = 0, .top_p = 1.0f},
                       .max_new = MAX_NEW, .gamma = 1.0f, .lam = 0.95f, .cliprange = 0.2f,
                       .cliprange_value = 0.2f, .vf_coef = 0.5f, .ent_coef = 0.01f,
                       .whiten = 1, .no_eot_penalty = -1.5f, .reward_mean = 0.3f,
                       .reward_std = 2.0f};
}

// NP prompts of lengths 1..5 over the plain tokens.
typedef struct {
    int ids[NP][8];
    int lens[NP];
    const int *rows[NP];
} Prompts;

static void prompts_make(Prompts *p, uint64_t seed) {
    RefRng r;
    ref_rng_init(&r, seed);
    const int lens[NP] = {3, 5, 1, 4, 2, 5};
    for (int b = 0; b < NP; b++) {
        p->lens[b] = lens[b];
        for (int t = 0; t < lens[b]; t++) p->ids[b][t] = ref_rng_int(&r, EOT);
        p->rows[b] = p->ids[b];
    }
}

// Fills a rollout for the prompts: generation with the policy at rng seed.
static void rollout_generate(Rollout *ro, Models *M, const Prompts *p, const PPOParams *pp,
                             uint64_t seed) {
    KVCache kv;
    kvcache_build(&kv, &M->policy.config, NP, MT);
    Sampler s;
    sampler_build(&s, MV);
    Rng rng;
    rng_init(&rng, seed);
    ppo_generate(ro, &M->policy, &kv, &s, p->rows, p->lens, NP, pp, &rng);
    sampler_free(&s);
    kvcache_free(&kv);
}

// ---------------------------------------------------------------------------
// ppo_generate: layout and masks
// ---------------------------------------------------------------------------

// Row b holds prompt ++ response, then pad up to L+1 tokens; the response
// is what generate() draws with the same seed; it stops at end-of-text
// (kept, ended = 1) or after max_new tokens (ended = 0). mask[t] = 1
// exactly where token t+1 is a response token (t in [q-1, q+r-2]): no
// prompt or padding position. The seed gives both ended and unended rows.
// One clipped update as the trainer applies it: the minibatch gradients,
// then clipping and AdamW for the policy and the critic.
static void train_minibatch(Rollout *ro, const long *rows, int n, const PPOParams *pp,
                            GPT *policy, AdamW *popt, float lr, GPT *critic, AdamW *copt,
                            float critic_lr, float max_norm, PPOStats *st) {
    gpt_zero_grad(policy);
    gpt_zero_grad(critic);
    if (!ppo_minibatch_grads(ro, rows, n, pp, policy, critic, st)) return;
    grad_clip(policy, max_norm);
    adamw_step(popt, policy, lr);
    grad_clip(critic, max_norm);
    adamw_step(copt, critic, critic_lr);
}

static void test_generate_layout_and_masks(void **state) {
    (void)state;
    Models M;
    models_build(&M, 801, 801);
    Prompts p;
    prompts_make(&p, 802);
    PPOParams pp = default_params();
    pp.sampling.temperature = 1.0f;
    Rollout ro;
    rollout_build(&ro, NP, MT, EOT, PAD);
    rollout_generate(&ro, &M, &p, &pp, 803);
    assert_int_equal(ro.n, NP);

    // the same draws from generate_rows itself, a stream per row
    KVCache kv;
    kvcache_build(&kv, &M.policy.config, NP, MT);
    Sampler s;
    sampler_build(&s, MV);
    Rng rng, rows[NP];
    rng_init(&rng, 803);
    rng_split(&rng, rows, NP);
    int out[NP * MAX_NEW], out_len[NP];
    generate_rows(&M.policy, &kv, &s, p.rows, p.lens, NP, MAX_NEW, EOT, &pp.sampling, rows, out,
                  out_len);

    int n_ended = 0, n_open = 0;
    for (int b = 0; b < NP; b++) {
        const int *row = ro.tokens + (size_t)b * (MT + 1);
        const unsigned char *m = ro.mask + (size_t)b * MT;
        const int q = ro.qlen[b], r = ro.rlen[b];
        if (verbose()) {
            fprintf(stderr, "row %d q=%d r=%d ended=%d:", b, q, r, ro.ended[b]);
            for (int t = 0; t <= MT; t++) fprintf(stderr, " %d", row[t]);
            fprintf(stderr, "\n");
        }
        assert_int_equal(q, p.lens[b]);
        assert_int_equal(r, out_len[b]);
        assert_true(r >= 1 && r <= MAX_NEW);
        for (int t = 0; t < q; t++) assert_int_equal(row[t], p.ids[b][t]);
        for (int j = 0; j < r; j++) assert_int_equal(row[q + j], out[b * MAX_NEW + j]);
        for (int t = q + r; t <= MT; t++) assert_int_equal(row[t], PAD);
        // end-of-text only as the last response token
        for (int j = 0; j < r - 1; j++) assert_int_not_equal(row[q + j], EOT);
        assert_int_equal(ro.ended[b], row[q + r - 1] == EOT);
        if (!ro.ended[b]) assert_int_equal(r, MAX_NEW);
        n_ended += ro.ended[b];
        n_open += !ro.ended[b];
        int count = 0;
        for (int t = 0; t < MT; t++) {
            int response_target = t + 1 >= q && t + 1 < q + r;
            assert_int_equal(m[t], response_target);
            count += m[t];
        }
        assert_int_equal(count, r);
    }
    assert_true(n_ended > 0 && n_open > 0);  // both kinds of row are covered
    sampler_free(&s);
    kvcache_free(&kv);
    rollout_free(&ro);
    models_free(&M);
}

// ---------------------------------------------------------------------------
// ppo_score against the double reference
// ---------------------------------------------------------------------------

// On an order that mixes rows into minibatches of 4 (the last one short):
// logp[t] and ref_logp[t] = log softmax(logits_t / temperature)[token t+1]
// of the policy and the reference, values[t] the critic at t (masked
// positions), score_raw the reward model at the row's final token (eot
// included), score = (raw - mean) / std + penalty when the row has no eot.
// All against the double reference model run on each row alone: 1e-4
// absolute (model outputs agree to 1e-4, test_gpt.c; a log-softmax adds
// no more than its logits' error). An off-by-one in any position misses by
// O(1).
static void test_score_matches_reference(void **state) {
    (void)state;
    Models M;
    models_build(&M, 811, 812);
    Prompts p;
    prompts_make(&p, 813);
    PPOParams pp = default_params();
    Rollout ro;
    rollout_build(&ro, NP, MT, EOT, PAD);
    rollout_generate(&ro, &M, &p, &pp, 817);
    const long order[NP] = {4, 1, 5, 0, 3, 2};
    ppo_score(&ro, &M.policy, &M.ref, &M.critic, &M.rm, &pp, order, 4);

    double *pp_pol = ref_params_to_double(&M.policy), *pp_ref = ref_params_to_double(&M.ref);
    double *pp_cr = ref_params_to_double(&M.critic), *pp_rm = ref_params_to_double(&M.rm);
    double logits[(MT + 1) * MV], values[MT + 1];
    int n_open = 0, n_ended = 0;
    for (int b = 0; b < NP; b++) {
        const int *row = ro.tokens + (size_t)b * (MT + 1);
        const int q = ro.qlen[b], r = ro.rlen[b], len = q + r;
        const float *lp = ro.logp + (size_t)b * MT, *rlp = ro.ref_logp + (size_t)b * MT;
        const float *val = ro.values + (size_t)b * MT;
        const unsigned char *m = ro.mask + (size_t)b * MT;
        for (int which = 0; which < 2; which++) {
            const GPT *g = which ? &M.ref : &M.policy;
            ref_gpt_forward(&g->config, g->info, which ? pp_ref : pp_pol, row, NULL, NULL, 1,
                            len - 1, logits, NULL);
            for (int t = 0; t < len - 1; t++) {
                if (!m[t]) continue;
                double mx = -INFINITY, s = 0.0, T = pp.sampling.temperature;
                for (int j = 0; j < MV; j++) mx = fmax(mx, logits[t * MV + j] / T);
                for (int j = 0; j < MV; j++) s += exp(logits[t * MV + j] / T - mx);
                double want = logits[t * MV + row[t + 1]] / T - mx - log(s);
                float got = which ? rlp[t] : lp[t];
                if (!(fabs(got - want) <= 1e-4))
                    fprintf(stderr, "row %d pos %d %s logp %.7f ref %.7f\n", b, t,
                            which ? "reference" : "policy", got, want);
                assert_true(fabs(got - want) <= 1e-4);
            }
        }
        ref_gpt_forward(&M.critic.config, M.critic.info, pp_cr, row, NULL, NULL, 1, len - 1, NULL,
                        values);
        for (int t = 0; t < len - 1; t++)
            if (m[t]) assert_true(fabs(val[t] - values[t]) <= 1e-4);
        ref_gpt_forward(&M.rm.config, M.rm.info, pp_rm, row, NULL, NULL, 1, len, NULL, values);
        double raw = values[len - 1];
        double score = (raw - pp.reward_mean) / pp.reward_std + (ro.ended[b] ? 0.0 : pp.no_eot_penalty);
        if (verbose())
            fprintf(stderr, "row %d ended %d raw %.7f ref %.7f score %.7f ref %.7f\n", b,
                    ro.ended[b], ro.score_raw[b], raw, ro.score[b], score);
        assert_true(fabs(ro.score_raw[b] - raw) <= 1e-4);
        assert_true(fabs(ro.score[b] - score) <= 1e-4);
        n_open += !ro.ended[b];
        n_ended += ro.ended[b];
    }
    assert_true(n_open > 0 && n_ended > 0);  // with and without the no-eot penalty
    free(pp_pol);
    free(pp_ref);
    free(pp_cr);
    free(pp_rm);
    rollout_free(&ro);
    models_free(&M);
}

// ---------------------------------------------------------------------------
// Policy == reference: exact zeros and ones
// ---------------------------------------------------------------------------

// Two GPTs with identical parameters: after ppo_generate + ppo_score, every
// masked logp equals its ref_logp bit for bit, so k1 and k3 are exactly 0
// per token and per sequence (rollout_kl). The first PPO minibatch (same
// order and size as ppo_score's) sees ratios of exactly 1: ratio ==
// tokens, approx_kl == 0, clipfrac == 0. Checked with one minibatch of all
// rows and with minibatches of 4 (the first of them); after the first
// update, the second minibatch's ratios move (guards against a check that
// holds for any policy).
static void test_policy_equals_reference_exact(void **state) {
    (void)state;
    const int sizes[2] = {NP, 4};
    for (int k = 0; k < 2; k++) {
        const int mb = sizes[k];
        Models M;
        models_build(&M, 821, 821);
        assert_true(memcmp(M.policy.params_memory, M.ref.params_memory,
                           M.policy.num_params * sizeof(float)) == 0);
        Prompts p;
        prompts_make(&p, 822);
        PPOParams pp = default_params();
        Rollout ro;
        rollout_build(&ro, NP, MT, EOT, PAD);
        rollout_generate(&ro, &M, &p, &pp, 823);
        const long order[NP] = {2, 5, 0, 3, 1, 4};
        ppo_score(&ro, &M.policy, &M.ref, &M.critic, &M.rm, &pp, order, mb);
        for (int b = 0; b < NP; b++)
            for (int t = 0; t < MT; t++) {
                size_t i = (size_t)b * MT + t;
                if (!ro.mask[i]) continue;
                assert_true(ro.logp[i] < 0.0f);  // a real log-prob was written
                assert_true(ro.logp[i] == ro.ref_logp[i]);
                assert_true(kl_k1(ro.logp[i], ro.ref_logp[i]) == 0.0f);
                assert_true(kl_k3(ro.logp[i], ro.ref_logp[i]) == 0.0f);
            }
        float k1[NP], k3[NP];
        rollout_kl(&ro, k1, k3);
        for (int b = 0; b < NP; b++) assert_true(k1[b] == 0.0f && k3[b] == 0.0f);

        ppo_advantages(&ro, &pp, 0.1f);
        AdamW popt, copt;
        adamw_build(&popt, M.policy.num_params, 0.9f, 0.95f, 1e-8f, 0.0f);
        adamw_build(&copt, M.critic.num_params, 0.9f, 0.95f, 1e-8f, 0.0f);
        PPOStats st = {0};
        train_minibatch(&ro, order, mb, &pp, &M.policy, &popt, 1e-2f, &M.critic, &copt,
                            1e-2f, 1.0f, &st);
        double tokens = 0.0;
        for (int i = 0; i < mb; i++)
            for (int t = 0; t < MT; t++) tokens += ro.mask[(size_t)order[i] * MT + t];
        if (verbose())
            fprintf(stderr, "mb %d: tokens %g ratio %.9g approx_kl %g clipfrac %g\n", mb,
                    st.tokens, st.ratio, st.approx_kl, st.clipfrac);
        assert_true(st.tokens == tokens);
        assert_true(st.ratio / st.tokens == 1.0);
        assert_true(st.approx_kl == 0.0);
        assert_true(st.clipfrac == 0.0);
        assert_true(st.value_clipfrac == 0.0);  // the critic starts at its old values too
        if (mb < NP) {
            PPOStats st2 = {0};
            train_minibatch(&ro, order + mb, NP - mb, &pp, &M.policy, &popt, 1e-2f,
                                &M.critic, &copt, 1e-2f, 1.0f, &st2);
            if (verbose()) fprintf(stderr, "  second minibatch approx_kl %g\n", st2.approx_kl);
            assert_true(st2.approx_kl > 0.0);
        }
        adamw_free(&popt);
        adamw_free(&copt);
        rollout_free(&ro);
        models_free(&M);
    }
}

// ---------------------------------------------------------------------------
// ppo_advantages
// ---------------------------------------------------------------------------

// Policy != reference. Without whitening: per response token
// rewards = -kl_coef (logp - ref_logp), plus the normalised score at the
// last response token; advantages and returns equal a GAE written here in
// double (gamma 0.9, lam 0.8) on every row, within 1e-5 (float storage of
// O(1) sums of <= 6 terms). Off the mask everything is exactly 0. With
// whitening: the same advantages, shifted and scaled over the masked
// positions of all rows (mean 0, variance 1 to 1e-5), returns unchanged.
static void test_advantages_rewards_gae_whiten(void **state) {
    (void)state;
    Models M;
    models_build(&M, 831, 832);
    Prompts p;
    prompts_make(&p, 833);
    PPOParams pp = default_params();
    pp.gamma = 0.9f;
    pp.lam = 0.8f;
    Rollout ro;
    rollout_build(&ro, NP, MT, EOT, PAD);
    rollout_generate(&ro, &M, &p, &pp, 834);
    const long order[NP] = {0, 1, 2, 3, 4, 5};
    ppo_score(&ro, &M.policy, &M.ref, &M.critic, &M.rm, &pp, order, NP);
    const float kl_coef = 0.07f;
    pp.whiten = 0;
    // stale contents must not survive
    for (int i = 0; i < NP * MT; i++) ro.rewards[i] = ro.advantages[i] = ro.returns[i] = 7.0f;
    ppo_advantages(&ro, &pp, kl_coef);

    double hand_adv[NP * MT] = {0};
    double mean = 0.0, var = 0.0;
    long count = 0;
    int kl_nonzero = 0;
    for (int b = 0; b < NP; b++) {
        const int q = ro.qlen[b], r = ro.rlen[b];
        const size_t base = (size_t)b * MT + q - 1;
        double rew[MAX_NEW], A[MAX_NEW];
        for (int j = 0; j < r; j++) {
            double k1 = (double)ro.logp[base + j] - ro.ref_logp[base + j];
            kl_nonzero |= k1 != 0.0;
            rew[j] = -kl_coef * k1 + (j == r - 1 ? ro.score[b] : 0.0);
        }
        double next_a = 0.0;
        for (int j = r - 1; j >= 0; j--) {
            double next_v = j + 1 < r ? ro.values[base + j + 1] : 0.0;
            double delta = rew[j] + pp.gamma * next_v - ro.values[base + j];
            A[j] = next_a = delta + pp.gamma * pp.lam * next_a;
        }
        for (int t = 0; t < MT; t++) {
            size_t i = (size_t)b * MT + t;
            if (!ro.mask[i]) {
                assert_true(ro.rewards[i] == 0.0f && ro.advantages[i] == 0.0f && ro.returns[i] == 0.0f);
                continue;
            }
            int j = t - (q - 1);
            assert_true(j >= 0 && j < r);
            assert_true(fabs(ro.rewards[i] - rew[j]) <= 1e-6 * (1.0 + fabs(rew[j])));
            assert_true(fabs(ro.advantages[i] - A[j]) <= 1e-5);
            assert_true(fabs(ro.returns[i] - (A[j] + ro.values[i])) <= 1e-5);
            hand_adv[i] = A[j];
            mean += A[j];
            count++;
        }
        if (verbose()) fprintf(stderr, "row %d: score %.5f last reward %.5f A0 %.5f\n", b, ro.score[b], rew[r - 1], A[0]);
    }
    assert_true(kl_nonzero);  // the KL term was exercised
    mean /= count;
    for (int i = 0; i < NP * MT; i++)
        if (ro.mask[i]) var += (hand_adv[i] - mean) * (hand_adv[i] - mean) / count;
    float returns0[NP * MT];
    memcpy(returns0, ro.returns, sizeof returns0);

    pp.whiten = 1;
    ppo_advantages(&ro, &pp, kl_coef);
    double m2 = 0.0, v2 = 0.0;
    for (int i = 0; i < NP * MT; i++) {
        if (!ro.mask[i]) {
            assert_true(ro.advantages[i] == 0.0f);
            continue;
        }
        assert_true(fabs(ro.advantages[i] - (hand_adv[i] - mean) / sqrt(var)) <= 1e-5);
        m2 += ro.advantages[i] / count;
    }
    for (int i = 0; i < NP * MT; i++)
        if (ro.mask[i]) v2 += (ro.advantages[i] - m2) * (ro.advantages[i] - m2) / count;
    assert_true(fabs(m2) <= 1e-5 && fabs(v2 - 1.0) <= 1e-5);
    assert_true(memcmp(returns0, ro.returns, sizeof returns0) == 0);
    rollout_free(&ro);
    models_free(&M);
}

// ---------------------------------------------------------------------------
// One PPO update moves the policy the right way
// ---------------------------------------------------------------------------

// A hand-made one-row rollout: prompt 1 2 3, response 4 5 eot. Advantage
// +1 (or -1) on the position predicting token 4, 0 elsewhere: after one
// one update the log-prob of token 4 there rises (falls). The
// first AdamW step moves each parameter by ~lr sign(g), a descent step on
// -A ratio, so the sign is certain for a small lr (1e-3) even though
// the token's share of the loss is a third. The critic, given a return 1
// above its value at that position (others equal), raises that value.
static void test_update_follows_advantage(void **state) {
    (void)state;
    const int row[6] = {1, 2, 3, 4, 5, EOT};
    PPOParams pp = default_params();
    pp.ent_coef = 0.0f;
    for (int sign = -1; sign <= 1; sign += 2) {
        Models M;
        models_build(&M, 841, 841);
        Rollout ro;
        rollout_build(&ro, 1, MT, EOT, PAD);
        int *tok = ro.tokens;
        for (int t = 0; t <= MT; t++) tok[t] = t < 6 ? row[t] : PAD;
        ro.n = 1;
        ro.qlen[0] = 3;
        ro.rlen[0] = 3;
        ro.ended[0] = 1;
        for (int t = 0; t < MT; t++) ro.mask[t] = t >= 2 && t <= 4;
        const long order[1] = {0};
        ppo_score(&ro, &M.policy, &M.ref, &M.critic, &M.rm, &pp, order, 1);
        const float logp0 = ro.logp[2], value0 = ro.values[2];
        memset(ro.advantages, 0, MT * sizeof(float));
        ro.advantages[2] = (float)sign;
        for (int t = 0; t < MT; t++) ro.returns[t] = ro.values[t];
        ro.returns[2] = ro.values[2] + 1.0f;
        AdamW popt, copt;
        adamw_build(&popt, M.policy.num_params, 0.9f, 0.95f, 1e-8f, 0.0f);
        adamw_build(&copt, M.critic.num_params, 0.9f, 0.95f, 1e-8f, 0.0f);
        PPOStats st = {0};
        train_minibatch(&ro, order, 1, &pp, &M.policy, &popt, 1e-3f, &M.critic, &copt, 1e-3f,
                            0.0f, &st);
        assert_true(st.tokens == 3.0);
        ppo_score(&ro, &M.policy, &M.ref, &M.critic, &M.rm, &pp, order, 1);
        if (verbose())
            fprintf(stderr, "A=%+d: logp %.6f -> %.6f, value %.6f -> %.6f\n", sign, logp0,
                    ro.logp[2], value0, ro.values[2]);
        if (sign > 0) assert_true(ro.logp[2] > logp0 + 1e-4);
        else assert_true(ro.logp[2] < logp0 - 1e-4);
        assert_true(ro.values[2] > value0 + 1e-4);
        adamw_free(&popt);
        adamw_free(&copt);
        rollout_free(&ro);
        models_free(&M);
    }
}

// ---------------------------------------------------------------------------
// A response that fills the context
// ---------------------------------------------------------------------------

// A row that fills the context: ppo_generate accepts plens[b] + max_new <= T
// (ppo.h; the ppo driver keeps exactly those prompts), and a response that
// never ends (no end-of-text id) runs max_new tokens, so a prompt of
// T - max_new tokens gives a row of exactly T tokens. Its score is the
// reward model at position T - 1 (double reference, 1e-4).
static void test_score_row_filling_context(void **state) {
    (void)state;
    PPOParams pp = default_params();
    Models M;
    models_build(&M, 851, 851);
    const int Q = MT - MAX_NEW;
    int prompt[MT];
    for (int t = 0; t < Q; t++) prompt[t] = t % EOT;
    const int *rows[1] = {prompt};
    const int lens[1] = {Q};
    Rollout ro;
    rollout_build(&ro, 1, MT, -1, PAD);  // no end-of-text: max_new tokens
    KVCache kv;
    kvcache_build(&kv, &M.policy.config, 1, MT);
    Sampler s;
    sampler_build(&s, MV);
    Rng rng;
    rng_init(&rng, 852);
    ppo_generate(&ro, &M.policy, &kv, &s, rows, lens, 1, &pp, &rng);
    assert_int_equal(ro.qlen[0] + ro.rlen[0], MT);
    const long order[1] = {0};
    ppo_score(&ro, &M.policy, &M.ref, &M.critic, &M.rm, &pp, order, 1);
    double *prm = ref_params_to_double(&M.rm), values[MT];
    ref_gpt_forward(&M.rm.config, M.rm.info, prm, ro.tokens, NULL, NULL, 1, MT, NULL, values);
    assert_true(fabs(ro.score_raw[0] - values[MT - 1]) <= 1e-4);
    assert_true(isfinite(ro.score[0]));
    free(prm);
    sampler_free(&s);
    kvcache_free(&kv);
    rollout_free(&ro);
    models_free(&M);
}

// ---------------------------------------------------------------------------
// ppo.reward: the graders' score
// ---------------------------------------------------------------------------

// reward = grader: each row's score is exactly its grade (1 right, 0 wrong,
// 0 for a prompt no grader reads, which is counted), plus the no-end
// penalty on a response that never ends; with no penalty, exactly the
// grade. model+grader: the reward model's normalised score plus the grade,
// exactly that float sum. model: the scores stay as ppo_score left them.
// Then, with kl_coef 0, the reward at a row's last response token is its
// score, bit for bit, and 0 at every other position.
static void test_grader_reward_exact(void **state) {
    (void)state;
    Models M;
    models_build(&M, 861, 862);
    Prompts p;
    prompts_make(&p, 863);
    PPOParams pp = default_params();
    Rollout ro;
    rollout_build(&ro, NP, MT, EOT, PAD);
    rollout_generate(&ro, &M, &p, &pp, 864);
    const long order[NP] = {0, 1, 2, 3, 4, 5};
    const int grades[NP] = {1, 0, -1, 1, 0, 1};
    ppo_score(&ro, &M.policy, &M.ref, NULL, &M.rm, &pp, order, NP);
    float model[NP];
    memcpy(model, ro.score, sizeof model);

    pp.reward = PPO_REWARD_MODEL;
    assert_int_equal(ppo_task_rewards(&ro, grades, &pp), 1);
    assert_true(memcmp(model, ro.score, sizeof model) == 0);

    pp.reward = PPO_REWARD_MODEL_GRADER;
    assert_int_equal(ppo_task_rewards(&ro, grades, &pp), 1);
    for (int b = 0; b < NP; b++) assert_true(ro.score[b] == model[b] + (grades[b] == 1 ? 1.0f : 0.0f));

    pp.reward = PPO_REWARD_GRADER;
    int open = 0;
    assert_int_equal(ppo_task_rewards(&ro, grades, &pp), 1);
    for (int b = 0; b < NP; b++) {
        open += !ro.ended[b];
        assert_true(ro.score[b] == (grades[b] == 1 ? 1.0f : 0.0f) + (ro.ended[b] ? 0.0f : pp.no_eot_penalty));
    }
    assert_true(open > 0);  // the penalty was exercised
    pp.no_eot_penalty = 0.0f;
    ppo_score(&ro, &M.policy, &M.ref, NULL, NULL, &pp, order, NP);  // no reward model at all
    ppo_task_rewards(&ro, grades, &pp);
    for (int b = 0; b < NP; b++) {
        assert_true(ro.score[b] == (grades[b] == 1 ? 1.0f : 0.0f));
        assert_true(ro.score_raw[b] == 0.0f);
    }
    for (int adv = ADV_GAE; adv <= ADV_REINFORCE; adv++) {
        pp.advantage = adv;
        pp.group_size = adv == ADV_REINFORCE || adv == ADV_GAE ? 1 : 2;
        ppo_advantages(&ro, &pp, 0.0f);
        for (int b = 0; b < NP; b++) {
            const int last = ro.qlen[b] + ro.rlen[b] - 2;
            for (int t = 0; t < MT; t++) {
                const float want = t == last ? (grades[b] == 1 ? 1.0f : 0.0f) : 0.0f;
                assert_true(ro.rewards[(size_t)b * MT + t] == want);
            }
        }
    }
    rollout_free(&ro);
    models_free(&M);
}

// ---------------------------------------------------------------------------
// Group methods in ppo_advantages
// ---------------------------------------------------------------------------

// Policy != reference, KL in the reward (kl_coef 0.07), G = 3 (two groups
// of the six rows), scores set by hand {1, 0, 1, 0.5, 0.5, 0.5} (the second
// group flat). Each row's sequence reward is the sum of its per-token
// rewards, score - kl_coef * k1 (double, within 1e-6); every response
// token of the row carries group_advantages of those sums, bit for bit;
// off the mask and in `returns` everything is exactly 0. With kl_coef 0
// the flat group gets advantages of exactly 0 (GRPO, RLOO) and
// group_reward_stats counts it as the half without spread.
static void test_group_advantages_in_rollout(void **state) {
    (void)state;
    enum { G = 3 };
    Models M;
    models_build(&M, 871, 872);
    Prompts p;
    prompts_make(&p, 873);
    PPOParams pp = default_params();
    pp.group_size = G;
    Rollout ro;
    rollout_build(&ro, NP, MT, EOT, PAD);
    rollout_generate(&ro, &M, &p, &pp, 874);
    const long order[NP] = {0, 1, 2, 3, 4, 5};
    ppo_score(&ro, &M.policy, &M.ref, NULL, NULL, &pp, order, NP);
    const float scores[NP] = {1.0f, 0.0f, 1.0f, 0.5f, 0.5f, 0.5f};
    const int kinds[3] = {ADV_GRPO, ADV_RLOO, ADV_REINFORCE};
    for (int k = 0; k < 3; k++) {
        for (int with_kl = 1; with_kl >= 0; with_kl--) {
            const float kl_coef = with_kl ? 0.07f : 0.0f;
            memcpy(ro.score, scores, sizeof scores);
            pp.advantage = kinds[k];
            for (int i = 0; i < NP * MT; i++) ro.rewards[i] = ro.advantages[i] = ro.returns[i] = 7.0f;
            ppo_advantages(&ro, &pp, kl_coef);
            float seq[NP], want[NP];
            for (int b = 0; b < NP; b++) {
                const size_t base = (size_t)b * MT + ro.qlen[b] - 1;
                double sum = scores[b];
                for (int j = 0; j < ro.rlen[b]; j++)
                    sum -= kl_coef * ((double)ro.logp[base + j] - ro.ref_logp[base + j]);
                assert_true(fabs(ro.seq_reward[b] - sum) <= 1e-6);
                seq[b] = ro.seq_reward[b];
            }
            group_advantages(want, seq, NP / G, G, kinds[k], pp.scale_rewards);
            for (int b = 0; b < NP; b++)
                for (int t = 0; t < MT; t++) {
                    const size_t i = (size_t)b * MT + t;
                    assert_true(ro.returns[i] == 0.0f);
                    assert_true(ro.advantages[i] == (ro.mask[i] ? want[b] : 0.0f));
                    if (!ro.mask[i]) assert_true(ro.rewards[i] == 0.0f);
                }
            if (!with_kl && kinds[k] != ADV_REINFORCE)
                for (int b = G; b < NP; b++) assert_true(want[b] == 0.0f);
            if (verbose())
                fprintf(stderr, "kind %d kl %.2f: A %.5f %.5f %.5f | %.5f %.5f %.5f\n", kinds[k],
                        kl_coef, want[0], want[1], want[2], want[3], want[4], want[5]);
        }
    }
    GroupStats st;
    group_reward_stats(scores, NP / G, G, &st);
    assert_true(st.zero_spread == 0.5);
    rollout_free(&ro);
    models_free(&M);
}

// ---------------------------------------------------------------------------
// The group update's gradient through the whole policy
// ---------------------------------------------------------------------------

// ppo_minibatch_grads without a critic, with the k3 KL in the loss
// (kl_loss_coef 0.1 against a reference != policy) and GRPO advantages of
// hand-set scores, under both normalisations (token, sequence), one
// minibatch of all six rows in a shuffled order: the policy gradient along
// random unit directions over all parameters against the 5-point stencil
// of the same loss computed from the DOUBLE reference model (the loss
// written here from losses.h, the rollout's log-probs as old and reference
// log-probs). Bound as test_gpt.c's (DESIGN.md, 1e-4 relative):
//   |g.d - fd| <= 1e-4 max(|g.d|, |fd|) + 1e-6 |g| |d|.
// The ratios start at 1 (the rollout's own policy), far from the clip.
typedef struct {
    const Rollout *ro;
    const PPOParams *pp;
    const GPT *policy;
    const long *rows;
    int n;
} GroupObjective;

static double group_objective(const GroupObjective *o, const double *params) {
    const Rollout *ro = o->ro;
    const PPOParams *pp = o->pp;
    const double T = pp->sampling.temperature, c = pp->cliprange;
    double tokens = 0.0;
    for (int i = 0; i < o->n; i++) tokens += ro->rlen[o->rows[i]];
    double logits[(MT + 1) * MV], f = 0.0;
    for (int i = 0; i < o->n; i++) {
        const long b = o->rows[i];
        const int *row = ro->tokens + (size_t)b * (MT + 1);
        const int len = ro->qlen[b] + ro->rlen[b];
        ref_gpt_forward(&o->policy->config, o->policy->info, params, row, NULL, NULL, 1, len - 1,
                        logits, NULL);
        for (int t = 0; t < len - 1; t++) {
            const size_t k = (size_t)b * MT + t;
            if (!ro->mask[k]) continue;
            double mx = -INFINITY, s = 0.0, h = 0.0;
            for (int j = 0; j < MV; j++) mx = fmax(mx, logits[t * MV + j] / T);
            for (int j = 0; j < MV; j++) s += exp(logits[t * MV + j] / T - mx);
            for (int j = 0; j < MV; j++) {
                double lp = logits[t * MV + j] / T - mx - log(s);
                h -= exp(lp) * lp;
            }
            double logp = logits[t * MV + row[t + 1]] / T - mx - log(s);
            double ratio = exp(logp - ro->logp[k]), A = ro->advantages[k];
            double rc = fmin(fmax(ratio, 1.0 - c), 1.0 + c);
            double x = ro->ref_logp[k] - logp, k3 = exp(x) - 1.0 - x;
            double den = pp->seq_norm ? (double)ro->rlen[b] * o->n : tokens;
            f += (fmax(-A * ratio, -A * rc) - pp->ent_coef * h + pp->kl_loss_coef * k3) / den;
        }
    }
    return f;
}

static void test_group_update_gradient_matches_reference(void **state) {
    (void)state;
    for (int seq_norm = 0; seq_norm <= 1; seq_norm++) {
        Models M;
        models_build(&M, 881, 882);
        Prompts p;
        prompts_make(&p, 883);
        PPOParams pp = default_params();
        pp.advantage = ADV_GRPO;
        pp.group_size = 3;
        pp.kl_loss_coef = 0.1f;
        pp.seq_norm = seq_norm;
        Rollout ro;
        rollout_build(&ro, NP, MT, EOT, PAD);
        rollout_generate(&ro, &M, &p, &pp, 884);
        const long order[NP] = {3, 0, 5, 1, 4, 2};
        ppo_score(&ro, &M.policy, &M.ref, NULL, NULL, &pp, order, NP);
        const float scores[NP] = {1.0f, 0.0f, 0.3f, 0.0f, 1.0f, 1.0f};
        memcpy(ro.score, scores, sizeof scores);
        ppo_advantages(&ro, &pp, 0.0f);
        gpt_zero_grad(&M.policy);
        PPOStats st = {0};
        assert_true(ppo_minibatch_grads(&ro, order, NP, &pp, &M.policy, NULL, &st));
        assert_true(st.kl_k3 > 0.0 && st.value_loss == 0.0);
        double *params = ref_params_to_double(&M.policy);
        const size_t P = M.policy.num_params;
        double *d = mallocCheck(P * sizeof(double)), *x = mallocCheck(P * sizeof(double));
        GroupObjective o = {&ro, &pp, &M.policy, order, NP};
        RefRng rng;
        ref_rng_init(&rng, 885);
        for (int k = 0; k < 3; k++) {
            double n2 = 0.0, gd = 0.0, g2 = 0.0;
            for (size_t i = 0; i < P; i++) {
                d[i] = ref_rng_normal(&rng);
                n2 += d[i] * d[i];
            }
            for (size_t i = 0; i < P; i++) {
                d[i] /= sqrt(n2);
                gd += (double)M.policy.train->grads_memory[i] * d[i];
                g2 += (double)M.policy.train->grads_memory[i] * M.policy.train->grads_memory[i];
            }
            const double e = 1e-3, steps[4] = {e, -e, 2 * e, -2 * e};
            double f[4];
            for (int q = 0; q < 4; q++) {
                for (size_t i = 0; i < P; i++) x[i] = params[i] + steps[q] * d[i];
                f[q] = group_objective(&o, x);
            }
            double fd = (8.0 * (f[0] - f[1]) - (f[2] - f[3])) / (12.0 * e);
            double err = fabs(gd - fd), allowed = 1e-4 * fmax(fabs(gd), fabs(fd)) + 1e-6 * sqrt(g2);
            if (verbose())
                fprintf(stderr, "%s norm, direction %d: g.d %+.9e fd %+.9e (%.3f of allowed)\n",
                        seq_norm ? "sequence" : "token", k, gd, fd, err / allowed);
            assert_true(sqrt(g2) > 1e-3);
            assert_true(err <= allowed);
        }
        free(d);
        free(x);
        free(params);
        rollout_free(&ro);
        models_free(&M);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate_layout_and_masks),
        cmocka_unit_test(test_score_matches_reference),
        cmocka_unit_test(test_policy_equals_reference_exact),
        cmocka_unit_test(test_advantages_rewards_gae_whiten),
        cmocka_unit_test(test_update_follows_advantage),
        cmocka_unit_test(test_score_row_filling_context),
        cmocka_unit_test(test_grader_reward_exact),
        cmocka_unit_test(test_group_advantages_in_rollout),
        cmocka_unit_test(test_group_update_gradient_matches_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

// PPO rollouts and updates; see ppo.h. The formulas are in losses.c; this
// file moves data between the rollout buffer and the four models.
#include "ppo.h"

#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "common.h"
#include "dist.h"
#include "gpt.h"

void rollout_build(Rollout *ro, int P, int T, int eot, int pad) {
    memset(ro, 0, sizeof *ro);
    ro->P = P;
    ro->L = T;
    ro->eot = eot;
    ro->pad = pad;
    size_t PL = (size_t)P * T;
    ro->tokens = mallocCheck((size_t)P * (T + 1) * sizeof(int));
    ro->qlen = mallocCheck((size_t)P * sizeof(int));
    ro->rlen = mallocCheck((size_t)P * sizeof(int));
    ro->ended = mallocCheck((size_t)P * sizeof(int));
    ro->mask = mallocCheck(PL);
    float **f[] = {&ro->logp,    &ro->ref_logp, &ro->values,    &ro->rewards, &ro->advantages,
                   &ro->returns, &ro->mb_out,   &ro->mb_old,    &ro->mb_target, &ro->mb_grad,
                   &ro->mb_ref,  &ro->mb_norm};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) *f[i] = callocCheck(PL, sizeof(float));
    ro->seq = callocCheck((size_t)4 * T, sizeof(float));
    ro->score_raw = mallocCheck((size_t)P * sizeof(float));
    ro->score = mallocCheck((size_t)P * sizeof(float));
    ro->seq_reward = callocCheck((size_t)P, sizeof(float));
    ro->seq_adv = callocCheck((size_t)P, sizeof(float));
    ro->mb_inputs = mallocCheck((size_t)P * (T + 1) * sizeof(int));
    ro->mb_actions = mallocCheck(PL * sizeof(int));
    ro->mb_mask = mallocCheck(PL);
}

void rollout_free(Rollout *ro) {
    void *p[] = {ro->tokens,  ro->qlen,       ro->rlen,     ro->ended,      ro->mask,
                 ro->logp,    ro->ref_logp,   ro->values,   ro->rewards,    ro->advantages,
                 ro->returns, ro->score_raw,  ro->score,    ro->mb_inputs,  ro->mb_actions,
                 ro->mb_mask, ro->mb_out,     ro->mb_old,   ro->mb_target,  ro->mb_grad,
                 ro->seq,     ro->mb_ref,     ro->mb_norm,  ro->seq_reward, ro->seq_adv};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) free(p[i]);
    memset(ro, 0, sizeof *ro);
}

static inline int *row_tokens(const Rollout *ro, int b) { return ro->tokens + (size_t)b * (ro->L + 1); }

void ppo_generate(Rollout *ro, GPT *policy, KVCache *kv, Sampler *s,
                  const int *const *prompts, const int *plens, int P, const PPOParams *pp,
                  Rng *rng) {
    ASSERT(P <= ro->P);
    const int L = ro->L, max_new = pp->max_new;
    // row b samples from a stream of its own, seeded from one draw of rng:
    // its response does not depend on which process samples it
    Rng *rngs = mallocCheck((size_t)P * sizeof(Rng));
    rng_split(rng, rngs, P);
    long lo, hi;
    dist_share(P, &lo, &hi);
    int *out = callocCheck((size_t)P * max_new, sizeof(int));
    memset(ro->rlen, 0, (size_t)P * sizeof(int));
    if (hi > lo)
        generate_rows(policy, kv, s, prompts + lo, plens + lo, (int)(hi - lo), max_new, ro->eot,
                      &pp->sampling, rngs + lo, out + (size_t)lo * max_new, ro->rlen + lo);
    // other ranks' rows are 0 here: the sums hold every row
    dist_sum_i32(out, (size_t)P * max_new);
    dist_sum_i32(ro->rlen, (size_t)P);
    for (int b = 0; b < P; b++) {
        int *row = row_tokens(ro, b);
        const int q = plens[b], r = ro->rlen[b];
        ASSERT(q + r <= L && r >= 1);
        memcpy(row, prompts[b], (size_t)q * sizeof(int));
        memcpy(row + q, out + (size_t)b * max_new, (size_t)r * sizeof(int));
        for (int t = q + r; t <= L; t++) row[t] = ro->pad;
        ro->qlen[b] = q;
        ro->ended[b] = row[q + r - 1] == ro->eot;
        unsigned char *m = ro->mask + (size_t)b * L;
        for (int t = 0; t < L; t++) m[t] = t >= q - 1 && t <= q + r - 2;
    }
    ro->n = P;
    free(out);
    free(rngs);
}

// Positions a row needs: its last target is token qlen+rlen-1.
static inline int row_positions(const Rollout *ro, long b) { return ro->qlen[b] + ro->rlen[b] - 1; }

// Copies rows[0..n) into the minibatch inputs (n, Lm + extra), actions and
// mask (n, Lm); returns Lm. extra = 1 also feeds each row's final token.
static int gather_rows(Rollout *ro, const long *rows, int n, int extra) {
    int Lm = 1;
    for (int i = 0; i < n; i++) Lm = row_positions(ro, rows[i]) > Lm ? row_positions(ro, rows[i]) : Lm;
    const int W = Lm + extra;
    for (int i = 0; i < n; i++) {
        const int *row = row_tokens(ro, (int)rows[i]);
        const unsigned char *m = ro->mask + (size_t)rows[i] * ro->L;
        for (int t = 0; t < W; t++) ro->mb_inputs[i * W + t] = row[t];
        for (int t = 0; t < Lm; t++) {
            ro->mb_actions[i * Lm + t] = row[t + 1];
            ro->mb_mask[i * Lm + t] = m[t];
        }
    }
    return Lm;
}

// dst (n, Lm) <- src rows (P, L) / src rows <- dst, for per-position arrays
static void gather_f(const Rollout *ro, float *dst, const float *src, const long *rows, int n, int Lm) {
    for (int i = 0; i < n; i++)
        memcpy(dst + (size_t)i * Lm, src + (size_t)rows[i] * ro->L, (size_t)Lm * sizeof(float));
}
static void scatter_f(const Rollout *ro, float *dst, const float *src, const long *rows, int n, int Lm) {
    for (int i = 0; i < n; i++)
        memcpy(dst + (size_t)rows[i] * ro->L, src + (size_t)i * Lm, (size_t)Lm * sizeof(float));
}

static float logprob_temperature(const PPOParams *pp) {
    return pp->sampling.temperature > 0 ? pp->sampling.temperature : 1.0f;
}

// Log-probs of the minibatch's actions under m into out (n, Lm). Scoring
// only: m keeps no activations for a backward pass.
static void minibatch_logp(Rollout *ro, GPT *m, int n, int Lm, const PPOParams *pp, float *out) {
    gpt_forward_nograd(m, ro->mb_inputs, n, Lm, 1);
    logprobs_from_logits(out, NULL, m->acts.logits, ro->mb_actions, ro->mb_mask, n * Lm,
                         m->config.vocab_size, logprob_temperature(pp));
}

void ppo_score(Rollout *ro, GPT *policy, GPT *ref, GPT *critic, GPT *rm, const PPOParams *pp,
               const long *order, int mb) {
    int *last = mallocCheck((size_t)mb * sizeof(int));
    // positions off the mask stay 0, whatever earlier batches left there
    const size_t PL = (size_t)ro->n * ro->L;
    memset(ro->logp, 0, PL * sizeof(float));
    memset(ro->ref_logp, 0, PL * sizeof(float));
    memset(ro->values, 0, PL * sizeof(float));
    for (int b = 0; b < ro->n; b++) {
        ro->score_raw[b] = 0.0f;
        ro->score[b] = rm || ro->ended[b] ? 0.0f : pp->no_eot_penalty;
    }
    for (int i0 = 0; i0 < ro->n; i0 += mb) {
        // this rank's share of the minibatch (as ppo_minibatch_grads takes it)
        long lo, hi;
        dist_share(ro->n - i0 < mb ? ro->n - i0 : mb, &lo, &hi);
        const long *rows = order + i0 + lo;
        const int n = (int)(hi - lo);
        if (n == 0) continue;
        int Lm = gather_rows(ro, rows, n, 0);
        minibatch_logp(ro, policy, n, Lm, pp, ro->mb_out);
        scatter_f(ro, ro->logp, ro->mb_out, rows, n, Lm);
        if (ref) {
            minibatch_logp(ro, ref, n, Lm, pp, ro->mb_out);
            scatter_f(ro, ro->ref_logp, ro->mb_out, rows, n, Lm);
        }
        if (critic) {
            gpt_forward_nograd(critic, ro->mb_inputs, n, Lm, 0);
            for (int i = 0; i < n * Lm; i++)
                ro->mb_out[i] = ro->mb_mask[i] ? critic->acts.values[i] : 0.0f;
            scatter_f(ro, ro->values, ro->mb_out, rows, n, Lm);
        }
        if (!rm) continue;
        // the reward model reads the whole sequence, final token included
        int W = gather_rows(ro, rows, n, 1) + 1;
        for (int i = 0; i < n; i++) last[i] = row_positions(ro, rows[i]);
        gpt_forward_nograd(rm, ro->mb_inputs, n, W, 0);
        for (int i = 0; i < n; i++) {
            long b = rows[i];
            float raw = rm->acts.values[(size_t)i * W + last[i]];
            ro->score_raw[b] = raw;
            ro->score[b] = (raw - pp->reward_mean) / pp->reward_std +
                           (ro->ended[b] ? 0.0f : pp->no_eot_penalty);
        }
    }
    free(last);
    // each row was scored by one rank, the others hold 0 there: the sums
    // are the rows (exact in any order)
    dist_sum_f32(ro->logp, PL);
    if (ref) dist_sum_f32(ro->ref_logp, PL);
    if (critic) dist_sum_f32(ro->values, PL);
    if (rm) {
        dist_sum_f32(ro->score_raw, (size_t)ro->n);
        dist_sum_f32(ro->score, (size_t)ro->n);
    }
}

float ppo_grader_score(const PPOParams *pp, int grade, int ended) {
    return (grade == 1 ? 1.0f : 0.0f) + (ended ? 0.0f : pp->no_eot_penalty);
}

int ppo_task_rewards(Rollout *ro, const int *grades, const PPOParams *pp) {
    int ungraded = 0;
    for (int b = 0; b < ro->n; b++) {
        ungraded += grades[b] < 0;
        if (pp->reward == PPO_REWARD_GRADER)
            ro->score[b] = ppo_grader_score(pp, grades[b], ro->ended[b]);
        else if (pp->reward == PPO_REWARD_MODEL_GRADER)
            ro->score[b] += grades[b] == 1 ? 1.0f : 0.0f;
    }
    return ungraded;
}

void rollout_copy_row(Rollout *dst, int i, const Rollout *src, int j) {
    ASSERT(dst->L == src->L && i < dst->P && j < src->n);
    const int L = src->L;
    memcpy(row_tokens(dst, i), row_tokens(src, j), (size_t)(L + 1) * sizeof(int));
    memcpy(dst->mask + (size_t)i * L, src->mask + (size_t)j * L, (size_t)L);
    dst->qlen[i] = src->qlen[j];
    dst->rlen[i] = src->rlen[j];
    dst->ended[i] = src->ended[j];
}

// A group method's advantages: one per row from the sum of its rewards,
// the same for every response token of the row.
static void group_method_advantages(Rollout *ro, const PPOParams *pp) {
    const int G = pp->group_size > 0 ? pp->group_size : 1;
    ASSERT(ro->n % G == 0);
    for (int b = 0; b < ro->n; b++) {
        const size_t base = (size_t)b * ro->L + ro->qlen[b] - 1;
        double sum = 0.0;
        for (int j = 0; j < ro->rlen[b]; j++) sum += ro->rewards[base + j];
        ro->seq_reward[b] = (float)sum;
    }
    group_advantages(ro->seq_adv, ro->seq_reward, ro->n / G, G, pp->advantage, pp->scale_rewards);
    for (int b = 0; b < ro->n; b++) {
        const size_t base = (size_t)b * ro->L + ro->qlen[b] - 1;
        for (int j = 0; j < ro->rlen[b]; j++) ro->advantages[base + j] = ro->seq_adv[b];
    }
}

void ppo_advantages(Rollout *ro, const PPOParams *pp, float kl_coef) {
    const int L = ro->L;
    float *r = ro->seq, *v = r + L, *adv = v + L, *ret = adv + L;
    memset(ro->rewards, 0, (size_t)ro->n * L * sizeof(float));
    memset(ro->advantages, 0, (size_t)ro->n * L * sizeof(float));
    memset(ro->returns, 0, (size_t)ro->n * L * sizeof(float));
    for (int b = 0; b < ro->n; b++) {
        // the response occupies positions [q-1, q+r-2]
        const int t0 = ro->qlen[b] - 1, n = ro->rlen[b];
        const size_t base = (size_t)b * L + t0;
        for (int j = 0; j < n; j++) {
            r[j] = -kl_coef * kl_k1(ro->logp[base + j], ro->ref_logp[base + j]);
            v[j] = ro->values[base + j];
        }
        r[n - 1] += ro->score[b];
        if (pp->advantage != ADV_GAE) {  // advantages come from the whole batch, below
            memcpy(ro->rewards + base, r, (size_t)n * sizeof(float));
            continue;
        }
        gae(adv, ret, r, v, n, pp->gamma, pp->lam);
        memcpy(ro->rewards + base, r, (size_t)n * sizeof(float));
        memcpy(ro->advantages + base, adv, (size_t)n * sizeof(float));
        memcpy(ro->returns + base, ret, (size_t)n * sizeof(float));
    }
    if (pp->advantage != ADV_GAE) group_method_advantages(ro, pp);
    else if (pp->whiten) whiten(ro->advantages, ro->mask, (long)ro->n * L, 1);
}

int ppo_minibatch_grads(Rollout *ro, const long *rows_all, int n_all, const PPOParams *pp,
                        GPT *policy, GPT *critic, PPOStats *stats) {
    // the minibatch's response tokens (every rank holds every row)
    double tokens = 0.0;
    for (int i = 0; i < n_all; i++) {
        const unsigned char *m = ro->mask + (size_t)rows_all[i] * ro->L;
        for (int t = 0; t < ro->L; t++) tokens += m[t];
    }
    if (tokens == 0.0) return 0;
    // this rank's share of the rows, normalised as a part of the minibatch
    long lo, hi;
    dist_share(n_all, &lo, &hi);
    const long *rows = rows_all + lo;
    const int n = (int)(hi - lo);
    PPOStats local;
    memset(&local, 0, sizeof local);
    if (n > 0) {
        const int Lm = gather_rows(ro, rows, n, 0);
        const int N = n * Lm;
        gather_f(ro, ro->mb_old, ro->logp, rows, n, Lm);
        gather_f(ro, ro->mb_target, ro->advantages, rows, n, Lm);
        const float *ref_logp = NULL, *norms = NULL;
        if (pp->kl_loss_coef != 0.0f) {
            gather_f(ro, ro->mb_ref, ro->ref_logp, rows, n, Lm);
            ref_logp = ro->mb_ref;
        }
        if (pp->seq_norm) {  // every token by (its row's tokens) * (rows)
            for (int i = 0; i < n; i++) {
                int row_tokens = 0;
                for (int t = 0; t < Lm; t++) row_tokens += ro->mb_mask[i * Lm + t];
                for (int t = 0; t < Lm; t++)
                    ro->mb_norm[i * Lm + t] = (float)row_tokens * (float)n_all;
            }
            norms = ro->mb_norm;
        }
        gpt_forward(policy, ro->mb_inputs, n, Lm, 1);
        float *z = gpt_logits_to_grad(policy);  // the gradient is written over the logits
        ppo_policy_loss_kl(z, z, ro->mb_actions, ro->mb_old, ro->mb_target, ref_logp,
                           ro->mb_mask, N, policy->config.vocab_size, logprob_temperature(pp),
                           pp->cliprange, pp->ent_coef, pp->kl_loss_coef, norms, tokens, &local);
        gpt_backward(policy, z, NULL);
        if (critic) {
            gather_f(ro, ro->mb_old, ro->values, rows, n, Lm);
            gather_f(ro, ro->mb_target, ro->returns, rows, n, Lm);
            gpt_forward(critic, ro->mb_inputs, n, Lm, 0);
            ppo_value_loss(ro->mb_grad, critic->acts.values, ro->mb_old, ro->mb_target,
                           ro->mb_mask, N, pp->cliprange_value, pp->vf_coef, tokens, &local);
            gpt_backward(critic, NULL, ro->mb_grad);
        }
    }
    // the minibatch's statistics: every rank's, summed in rank order
    _Static_assert(sizeof(PPOStats) % sizeof(double) == 0, "PPOStats holds doubles only");
    double *sums = (double *)&local, *acc = (double *)stats;
    const size_t k = sizeof(PPOStats) / sizeof(double);
    dist_sum_f64(sums, k);
    for (size_t i = 0; i < k; i++) acc[i] += sums[i];
    return 1;
}

void rollout_kl(const Rollout *ro, float *k1, float *k3) {
    for (int b = 0; b < ro->n; b++) {
        const size_t base = (size_t)b * ro->L + ro->qlen[b] - 1;
        double s1 = 0.0, s3 = 0.0;
        for (int j = 0; j < ro->rlen[b]; j++) {
            s1 += kl_k1(ro->logp[base + j], ro->ref_logp[base + j]);
            s3 += kl_k3(ro->logp[base + j], ro->ref_logp[base + j]);
        }
        if (k1) k1[b] = (float)s1;
        if (k3) k3[b] = (float)s3;
    }
}

void rollout_stats(const Rollout *ro, const float *k1, const float *k3, RolloutStats *st) {
    const int P = ro->n;
    memset(st, 0, sizeof *st);
    for (int b = 0; b < P; b++) {
        st->reward_raw += ro->score_raw[b] / P;
        st->reward += ro->score[b] / P;
        st->kl_k1 += k1[b] / P;
        st->kl_k3 += k3[b] / P;
        st->length += (double)ro->rlen[b] / P;
        st->eot_rate += (double)ro->ended[b] / P;
    }
    double ret_sum = 0, ret_sq = 0, res_sum = 0, res_sq = 0, tokens = 0;
    for (long i = 0; i < (long)P * ro->L; i++) {
        if (!ro->mask[i]) continue;
        double R = ro->returns[i], res = R - ro->values[i];
        ret_sum += R;
        ret_sq += R * R;
        res_sum += res;
        res_sq += res * res;
        tokens++;
    }
    double var_ret = ret_sq / tokens - (ret_sum / tokens) * (ret_sum / tokens);
    double var_res = res_sq / tokens - (res_sum / tokens) * (res_sum / tokens);
    st->explained_variance = var_ret > 0 ? 1.0 - var_res / var_ret : 0.0;
    st->tokens = tokens;
}

int rollout_dump(const char *path, int64_t step, const Rollout *ro) {
    const long PL = (long)ro->n * ro->L;
    int *mask = mallocCheck((size_t)PL * sizeof(int));
    for (long i = 0; i < PL; i++) mask[i] = ro->mask[i];
    DumpColumn cols[] = {
        {"tokens", 1, ro->tokens, NULL, ro->L + 1},   {"logp", 0, NULL, ro->logp, 0},
        {"ref_logp", 0, NULL, ro->ref_logp, 0},       {"values", 0, NULL, ro->values, 0},
        {"advantages", 0, NULL, ro->advantages, 0},   {"returns", 0, NULL, ro->returns, 0},
        {"rewards", 0, NULL, ro->rewards, 0},         {"qlen", 1, ro->qlen, NULL, 1},
        {"rlen", 1, ro->rlen, NULL, 1},               {"score_raw", 0, NULL, ro->score_raw, 1},
        {"masks", 1, mask, NULL, 0},
    };
    int rc = rollout_dump_append(path, step, ro->n, ro->L, cols, (int)(sizeof cols / sizeof cols[0]));
    free(mask);
    return rc;
}

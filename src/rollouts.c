// PPO rollout batches; see rollouts.h.
#include "rollouts.h"

#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "ppo.h"

// The index of value in choices[0..n) (config_validate allowed only those).
static int choice_index(const char *value, const char *const *choices, int n) {
    for (int i = 0; i < n; i++)
        if (strcmp(value, choices[i]) == 0) return i;
    ASSERT(0 && "config_validate checks the choices");
    return 0;
}

PPOParams ppo_params_from_config(const Config *cfg, const double reward_norm[2]) {
    return (PPOParams){
        .sampling = {(float)cfg->ppo.temperature, (int)cfg->ppo.top_k, (float)cfg->ppo.top_p},
        .max_new = (int)cfg->ppo.max_new_tokens,
        .gamma = (float)cfg->ppo.gamma,
        .lam = (float)cfg->ppo.lam,
        .cliprange = (float)cfg->ppo.cliprange,
        .cliprange_value = (float)cfg->ppo.cliprange_value,
        .vf_coef = (float)cfg->ppo.vf_coef,
        .ent_coef = (float)cfg->ppo.ent_coef,
        .whiten = cfg->ppo.whiten_advantages,
        .no_eot_penalty = (float)cfg->ppo.no_eot_penalty,
        .reward_mean = (float)reward_norm[0],
        .reward_std = (float)reward_norm[1],
        .reward = choice_index(cfg->ppo.reward, (const char *const[]){"model", "grader",
                               "model+grader"}, 3),
        .advantage = choice_index(cfg->ppo.advantage, (const char *const[]){"gae", "grpo",
                                  "rloo", "reinforce"}, 4),
        .group_size = (int)cfg->ppo.group_size,
        .scale_rewards = choice_index(cfg->ppo.scale_rewards, (const char *const[]){"group",
                                      "batch", "none"}, 3),
        .kl_loss_coef = cfg->ppo.kl_in_loss ? (float)cfg->ppo.kl_coef : 0.0f,
        .seq_norm = strcmp(cfg->ppo.loss_norm, "sequence") == 0,
    };
}

void rollouts_build(Rollouts *r, const Config *cfg, const PPOParams *pp,
                    const EncodedPrompts *prompts, const GPTConfig *c, const Tokenizer *tok) {
    r->pp = *pp;
    r->P = (int)cfg->ppo.rollout_batch;
    r->G = (int)cfg->ppo.group_size;
    ASSERT(r->G >= 1 && r->P % r->G == 0);
    r->mb = r->P / (int)cfg->ppo.minibatches;
    r->prompts = prompts;
    const int P = r->P, T = c->block_size, V = c->vocab_size;
    epoch_order_init(&r->prompt_order, prompts->n, (uint64_t)cfg->train.seed);
    rollout_build(&r->ro, P, T, tok->eot, tok->pad);
    kvcache_build(&r->kv, c, P, T);
    sampler_build(&r->smp, V);
    rng_init(&r->rng, (uint64_t)cfg->train.seed);
    r->order = mallocCheck((size_t)P * sizeof(long));
    r->ids = mallocCheck((size_t)P * sizeof(int *));
    r->lens = mallocCheck((size_t)P * sizeof(int));
    r->ex = mallocCheck((size_t)P * sizeof(PromptExample *));
    r->k1 = mallocCheck((size_t)P * sizeof(float));
    r->k3 = mallocCheck((size_t)P * sizeof(float));
    r->grades = mallocCheck((size_t)P * sizeof(int));
    r->families = mallocCheck((size_t)P * sizeof(int));
    r->dynamic = cfg->ppo.dynamic_sampling;
    r->max_batches = r->dynamic ? (int)cfg->ppo.max_sample_batches : 1;
    if (r->dynamic) {
        rollout_build(&r->cand, P, T, tok->eot, tok->pad);
        r->cids = mallocCheck((size_t)P * sizeof(int *));
        r->clens = mallocCheck((size_t)P * sizeof(int));
        r->cex = mallocCheck((size_t)P * sizeof(PromptExample *));
        r->cgrades = mallocCheck((size_t)P * sizeof(int));
        r->cfamilies = mallocCheck((size_t)P * sizeof(int));
        r->ctaken = mallocCheck((size_t)(P / r->G));
    }
}

void rollouts_free(Rollouts *r) {
    if (!r->order) return;  // never built
    epoch_order_free(&r->prompt_order);
    rollout_free(&r->ro);
    kvcache_free(&r->kv);
    sampler_free(&r->smp);
    void *p[] = {r->order, r->ids, r->lens, r->ex, r->k1, r->k3, r->grades, r->families,
                 r->cids, r->clens, r->cex, r->cgrades, r->cfamilies, r->ctaken};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) free(p[i]);
    if (r->dynamic) rollout_free(&r->cand);
}

// The next P / G prompts in epoch order, each for G consecutive rows.
static void next_prompts(Rollouts *r, uint64_t *cursor, const int **ids, int *lens,
                         const PromptExample **ex) {
    for (int b = 0; b < r->P; b += r->G) {
        long i = epoch_order_at(&r->prompt_order, (int64_t)(*cursor)++);
        for (int j = b; j < b + r->G; j++) {
            ids[j] = r->prompts->ids[i];
            lens[j] = r->prompts->lens[i];
            ex[j] = r->prompts->ex[i];
        }
    }
}

// Group g of the sampled batch (cand) into rows at..at+G of the step's.
static void take_group(Rollouts *r, int at, int g) {
    for (int k = 0; k < r->G; k++) {
        const int j = g * r->G + k;
        rollout_copy_row(&r->ro, at + k, &r->cand, j);
        r->ids[at + k] = r->cids[j];
        r->lens[at + k] = r->clens[j];
        r->ex[at + k] = r->cex[j];
    }
}

// Whether row j of cand answered as row i did: the same tokens, ended alike.
static int same_answer(const Rollout *ro, int i, int j) {
    if (ro->rlen[i] != ro->rlen[j] || ro->ended[i] != ro->ended[j]) return 0;
    const int *a = ro->tokens + (size_t)i * (ro->L + 1) + ro->qlen[i];
    const int *b = ro->tokens + (size_t)j * (ro->L + 1) + ro->qlen[j];
    return memcmp(a, b, (size_t)ro->rlen[i] * sizeof(int)) == 0;
}

// Whether group g of cand can carry a learning signal: with the graders'
// reward, its scores differ; with a learned one (alone or plus the
// graders'), its answers differ, since equal answers score alike.
static int group_spread(const Rollouts *r, int g) {
    const int G = r->G, i = g * G;
    const int graders = r->pp.reward == PPO_REWARD_GRADER;
    const float s0 = ppo_grader_score(&r->pp, r->cgrades[i], r->cand.ended[i]);
    for (int k = 1; k < G; k++)
        if (graders ? ppo_grader_score(&r->pp, r->cgrades[i + k], r->cand.ended[i + k]) != s0
                    : !same_answer(&r->cand, i, i + k))
            return 1;
    return 0;
}

// Dynamic sampling (rollouts.h). Every rank samples and grades the same
// rows (ppo_generate is collective), so all make the same choices.
static void sample_dynamic(Rollouts *r, uint64_t *cursor, GPT *policy, const Tokenizer *tok) {
    const int P = r->P, G = r->G, n_groups = P / G;
    int kept = 0, seen = 0, flat = 0;
    unsigned char *taken = r->ctaken;
    r->sampled_batches = 0;
    while (kept < P && r->sampled_batches < r->max_batches) {
        next_prompts(r, cursor, r->cids, r->clens, r->cex);
        ppo_generate(&r->cand, policy, &r->kv, &r->smp, r->cids, r->clens, P, &r->pp, &r->rng);
        r->sampled_batches++;
        rollout_grade(&r->cand, tok, r->cex, r->cgrades, r->cfamilies);
        for (int g = 0; g < n_groups; g++) {
            const int spread = group_spread(r, g);
            seen++;
            flat += !spread;
            taken[g] = spread && kept < P;
            if (taken[g]) {
                take_group(r, kept, g);
                kept += G;
            }
        }
    }
    for (int g = 0; g < n_groups && kept < P; g++)  // the last batch's other groups
        if (!taken[g]) {
            take_group(r, kept, g);
            kept += G;
        }
    r->ro.n = P;
    r->sampled_zero_spread = (double)flat / seen;
}

void rollouts_collect(Rollouts *r, uint64_t *cursor, GPT *policy, GPT *ref, GPT *critic, GPT *rm,
                      float kl_coef, const Tokenizer *tok) {
    const double t0 = now_seconds();
    if (r->dynamic) {
        sample_dynamic(r, cursor, policy, tok);
    } else {
        next_prompts(r, cursor, r->ids, r->lens, r->ex);
        ppo_generate(&r->ro, policy, &r->kv, &r->smp, r->ids, r->lens, r->P, &r->pp, &r->rng);
    }
    r->generate_s = now_seconds() - t0;
    r->has_ref = ref != NULL;
    r->has_critic = critic != NULL;
    r->has_rm = rm != NULL;
    for (int b = 0; b < r->P; b++) r->order[b] = b;
    rollouts_shuffle(r);
    ppo_score(&r->ro, policy, ref, critic, rm, &r->pp, r->order, r->mb);
    r->accuracy = rollout_grade(&r->ro, tok, r->ex, r->grades, r->families);
    r->ungraded = ppo_task_rewards(&r->ro, r->grades, &r->pp);
    ppo_advantages(&r->ro, &r->pp, kl_coef);
    rollout_kl(&r->ro, r->k1, r->k3);
    rollout_stats(&r->ro, r->k1, r->k3, &r->stats);
    group_reward_stats(r->ro.score, r->P / r->G, r->G, &r->groups);
    // does the reward model rank the policy's own right answers above its
    // wrong ones (same family)? 0.5 = it cannot tell them apart
    r->rm_auc = reward_auc(r->ro.score_raw, r->grades, r->families, r->P);
}

void rollouts_metrics(const Rollouts *r, double kl_coef, const PPOStats *st, Metrics *mt) {
    if (r->has_rm) metrics_set(mt, "reward_raw", r->stats.reward_raw);
    metrics_set(mt, "reward", r->stats.reward);
    if (r->has_ref) {
        metrics_set(mt, "kl_k1", r->stats.kl_k1);
        metrics_set(mt, "kl_k3", r->stats.kl_k3);
    }
    metrics_set(mt, "kl_coef", kl_coef);
    metrics_set(mt, "entropy", st->entropy / st->tokens);
    metrics_set(mt, "clipfrac", st->clipfrac / st->tokens);
    metrics_set(mt, "approx_kl", st->approx_kl / st->tokens);
    metrics_set(mt, "policy_loss", st->policy_loss / st->tokens);
    if (r->pp.kl_loss_coef != 0.0f) metrics_set(mt, "policy_kl_k3", st->kl_k3 / st->tokens);
    if (r->has_critic) {
        metrics_set(mt, "value_loss", st->value_loss / st->tokens);
        metrics_set(mt, "value_clipfrac", st->value_clipfrac / st->tokens);
    }
    metrics_set(mt, "ratio", st->ratio / st->tokens);
    if (r->has_critic) metrics_set(mt, "explained_variance", r->stats.explained_variance);
    metrics_set(mt, "response_length", r->stats.length);
    metrics_set(mt, "eot_rate", r->stats.eot_rate);
    metrics_set(mt, "rollout_accuracy", r->accuracy);
    if (r->has_rm) metrics_set(mt, "rollout_rm_auc", r->rm_auc);
    if (r->pp.reward != PPO_REWARD_MODEL) metrics_set(mt, "rollout_ungraded", r->ungraded);
    if (r->G > 1) {
        metrics_set(mt, "group_reward_mean", r->groups.mean);
        metrics_set(mt, "group_reward_std", r->groups.std);
        metrics_set(mt, "group_zero_spread", r->groups.zero_spread);
    }
    if (r->dynamic) {
        metrics_set(mt, "sampled_batches", r->sampled_batches);
        metrics_set(mt, "sampled_zero_spread", r->sampled_zero_spread);
    }
}

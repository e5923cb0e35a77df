// The rollout half of a PPO step: the next batch of prompts in epoch order,
// responses sampled from the policy (KV cache), scored by the reference,
// critic and reward model, advantages, the batch's statistics and its
// ground-truth grades. The update half is ppo_minibatch_grads, which the
// stage runs over `order` and the trainer applies.
#ifndef RLHF_ROLLOUTS_H
#define RLHF_ROLLOUTS_H

#include <stdint.h>

#include "config.h"
#include "evaluate.h"
#include "ppo.h"
#include "seqs.h"

typedef struct {
    PPOParams pp;
    int P, mb;                     // rows per batch, rows per minibatch
    const EncodedPrompts *prompts; // not owned
    EpochOrder prompt_order;
    Rollout ro;
    KVCache kv;
    Sampler smp;
    Rng rng;                       // sampling and minibatch order; resumable
    long *order;                   // (P) rows in minibatch order
    const int **ids;               // (P) the batch's prompts
    int *lens;
    const PromptExample **ex;
    float *k1, *k3;                // (P) per-sequence KL
    int *grades, *families;        // (P)
    // of the last batch
    RolloutStats stats;
    double accuracy;               // graded rows answered right (NaN: none graded)
    double rm_auc;                 // reward model's ranking of right over wrong answers
    double generate_s;             // time spent sampling
} Rollouts;

// PPO's settings from [ppo], with the reward model's normalisation.
PPOParams ppo_params_from_config(const Config *cfg, const double reward_norm[2]);

// Buffers for batches of cfg->ppo.rollout_batch prompts of `prompts`
// (which must outlive r) for a model of shape c; RNG and prompt order from
// train.seed.
void rollouts_build(Rollouts *r, const Config *cfg, const PPOParams *pp,
                    const EncodedPrompts *prompts, const GPTConfig *c, const Tokenizer *tok);
void rollouts_free(Rollouts *r);

// One batch: the prompts at *cursor onward (advanced), sampled, scored,
// advantages with kl_coef, statistics, grades; `order` shuffled for the
// first epoch.
void rollouts_collect(Rollouts *r, uint64_t *cursor, GPT *policy, GPT *ref, GPT *critic, GPT *rm,
                      float kl_coef, const Tokenizer *tok);

// The metrics of a PPO step: the last batch's statistics, the KL
// coefficient it was scored with, and the means of its updates' stats.
void rollouts_metrics(const Rollouts *r, double kl_coef, const PPOStats *st, Metrics *mt);

// A fresh minibatch order for the next epoch.
static inline void rollouts_shuffle(Rollouts *r) { rng_shuffle_long(&r->rng, r->order, r->P); }

#endif

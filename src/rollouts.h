// The rollout half of a PPO step: the next batch of prompts in epoch order
// (each sampled group_size times, in consecutive rows), responses sampled
// from the policy (KV cache), scored by the reference, critic, reward model
// and task graders, advantages, the batch's statistics and its ground-truth
// grades. The update half is ppo_minibatch_grads, which the stage runs over
// `order` and the trainer applies.
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
    int G;                         // rows per prompt (ppo.group_size); P / G prompts
    int has_ref, has_critic, has_rm;  // models the last batch was scored with
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
    int ungraded;                  // rows whose prompt no grader could read
    GroupStats groups;             // of the scores, per group of G rows
    double generate_s;             // time spent sampling
    // dynamic sampling (ppo.dynamic_sampling): each sampled batch lands in
    // cand, and its groups with spread (graders' scores that differ, or
    // with a learned reward answers that differ) go to ro
    int dynamic, max_batches;
    Rollout cand;
    const int **cids;
    int *clens, *cgrades, *cfamilies;
    unsigned char *ctaken;         // (P / G) groups of cand moved to ro
    const PromptExample **cex;
    int sampled_batches;           // batches sampled for the last step
    double sampled_zero_spread;    // share of their groups without spread
} Rollouts;

// PPO's settings from [ppo], with the reward model's normalisation.
PPOParams ppo_params_from_config(const Config *cfg, const double reward_norm[2]);

// Buffers for batches of cfg->ppo.rollout_batch rows, that is
// rollout_batch / group_size prompts of `prompts` (which must outlive r),
// for a model of shape c; RNG and prompt order from train.seed.
void rollouts_build(Rollouts *r, const Config *cfg, const PPOParams *pp,
                    const EncodedPrompts *prompts, const GPTConfig *c, const Tokenizer *tok);
void rollouts_free(Rollouts *r);

// One batch: the prompts at *cursor onward (advanced by P / G), each
// sampled G times (with dynamic sampling, as DAPO: batches of P / G prompts
// are sampled until P rows of groups with spread (the graders' scores
// differ; with a learned reward, the answers differ), those
// with a learning signal, are found or max_sample_batches were sampled;
// the last batch's other groups fill what is left, in order; the cursor
// advances by P / G per batch sampled), scored (ref, critic and rm may be NULL), graded, the
// score made what pp.reward says, advantages with kl_coef (the per-token
// k1 penalty in the reward), statistics; `order` shuffled for the first
// epoch.
void rollouts_collect(Rollouts *r, uint64_t *cursor, GPT *policy, GPT *ref, GPT *critic, GPT *rm,
                      float kl_coef, const Tokenizer *tok);

// The metrics of a PPO step: the last batch's statistics, the KL
// coefficient it was scored with, and the means of its updates' stats.
// What a model that is not there would measure is not logged (KL without
// a reference, values without a critic, reward-model scores without one);
// group statistics when G > 1, ungraded rows when the graders score.
void rollouts_metrics(const Rollouts *r, double kl_coef, const PPOStats *st, Metrics *mt);

// A fresh minibatch order for the next epoch.
static inline void rollouts_shuffle(Rollouts *r) { rng_shuffle_long(&r->rng, r->order, r->P); }

#endif

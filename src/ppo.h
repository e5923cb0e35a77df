// PPO for RLHF, as a sequence of steps over one rollout batch:
//   ppo_generate   sample responses from the policy (KV cache)
//   ppo_score      policy / reference log-probs, critic values, reward score
//   ppo_advantages per-token KL penalty + score, GAE, whitening
//   ppo_train_minibatch   clipped policy and value updates
// Policy, reference, critic and reward model are four GPTs of one type.
// Positions: a row holds prompt ++ response; position t predicts token
// t+1, and mask[t] = 1 where that token is a response token. Values,
// log-probs, rewards and advantages live at those positions.
#ifndef RLHF_PPO_H
#define RLHF_PPO_H

#include "gpt.h"
#include "losses.h"
#include "optim.h"
#include "sampling.h"

typedef struct {
    SamplerParams sampling;  // rollout sampling (temperature also scales log-probs)
    int max_new;             // longest response
    float gamma, lam;        // GAE
    float cliprange, cliprange_value, vf_coef, ent_coef;
    int whiten;              // whiten advantages over the batch
    float no_eot_penalty;    // added to the score of a response that never ends
    float reward_mean, reward_std;  // reward-model normalisation
} PPOParams;

typedef struct {
    int P, L;              // row capacity, positions per row (the context T)
    int n;                 // rows filled by the last ppo_generate
    int eot, pad;
    int *tokens;           // (P, L+1) prompt ++ response, pad after
    int *qlen, *rlen;      // (P) prompt and response lengths
    int *ended;            // (P) response ends with end-of-text
    unsigned char *mask;   // (P, L) position predicts a response token
    float *logp;           // (P, L) policy log-prob of the token (rollout time)
    float *ref_logp;       // (P, L) reference log-prob
    float *values;         // (P, L) critic value at the position
    float *rewards;        // (P, L) -kl_coef * k1, plus the score at the last one
    float *advantages;     // (P, L)
    float *returns;        // (P, L)
    float *score_raw;      // (P) reward-model output
    float *score;          // (P) normalised, with the no-end penalty
    // minibatch scratch
    int *mb_inputs, *mb_actions;
    unsigned char *mb_mask;
    float *mb_a, *mb_b, *mb_c, *mb_d, *mb_grad;
} Rollout;

// Buffers for P rows of up to T positions, V-sized gradient scratch.
void rollout_build(Rollout *ro, int P, int T, int V, int eot, int pad);
void rollout_free(Rollout *ro);

// Samples a response for each of P <= ro->P prompts (prompts[b], plens[b]
// tokens, plens[b] + max_new <= T, so that the reward model can read every
// token of the longest row) and fills tokens, qlen, rlen, ended,
// mask; sets ro->n = P. The functions below work on those n rows.
void ppo_generate(Rollout *ro, GPT *policy, KVCache *kv, Sampler *s,
                  const int *const *prompts, const int *plens, int P, const PPOParams *pp,
                  Rng *rng);

// Fills logp (policy), ref_logp (reference), values (critic) and the
// scores (reward model), running each model over the rows in the order
// and minibatch size given (order has ro->n entries) — the same shapes the
// first PPO epoch uses, so a policy equal to its rollout self gives
// ratios of exactly 1. critic and rm may be NULL (no values, no scores).
// No model keeps activations for a backward pass (gpt_forward_nograd).
void ppo_score(Rollout *ro, GPT *policy, GPT *ref, GPT *critic, GPT *rm, const PPOParams *pp,
               const long *order, int mb);

// Rewards (-kl_coef * k1 per token, score added at each row's last
// response token), GAE advantages and returns, then whitening.
void ppo_advantages(Rollout *ro, const PPOParams *pp, float kl_coef);

// One clipped update of the policy (and of the critic, when critic is not
// NULL) on rows[0..n): forward, loss, backward, clip, AdamW. Adds to stats.
// Both models need a training state (gpt_train_build).
void ppo_train_minibatch(Rollout *ro, const long *rows, int n, const PPOParams *pp,
                         GPT *policy, AdamW *popt, float lr, GPT *critic, AdamW *copt,
                         float critic_lr, float max_norm, PPOStats *stats);

// Per-sequence sums over the response of k1 and k3 (ro->n each, may be NULL).
void rollout_kl(const Rollout *ro, float *k1, float *k3);

#endif

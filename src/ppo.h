// PPO for RLHF, as a sequence of steps over one rollout batch:
//   ppo_generate   sample responses from the policy (KV cache)
//   ppo_score      policy / reference log-probs, critic values, reward score
//   ppo_advantages per-token KL penalty + score, GAE, whitening
//   ppo_minibatch_grads   gradients of the clipped policy and value losses
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
    // minibatch scratch, (P, L) each unless said
    int *mb_inputs;        // (P, L+1) the rows' tokens
    int *mb_actions;       // tokens each position predicts
    unsigned char *mb_mask;
    float *mb_out;         // a scoring pass's log-probs or values, before they go to the rows
    float *mb_old;         // rollout-time log-probs (policy update) or values (critic update)
    float *mb_target;      // advantages (policy update) or returns (critic update)
    float *mb_grad;        // value-loss gradient
    float *seq;            // (4, L) one response's rewards, values, advantages, returns
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
void ppo_score(Rollout *ro, GPT *policy, GPT *ref, GPT *critic, GPT *rm, const PPOParams *pp,
               const long *order, int mb);

// Rewards (-kl_coef * k1 per token, score added at each row's last
// response token), GAE advantages and returns, then whitening.
void ppo_advantages(Rollout *ro, const PPOParams *pp, float kl_coef);

// The gradients of one clipped update on rows[0..n): the policy's (and the
// critic's, when critic is not NULL) forward, loss and backward, added to
// their gradients; the caller clips and applies them. Adds to stats.
// Returns 0 (nothing accumulated) when the rows hold no response token.
int ppo_minibatch_grads(Rollout *ro, const long *rows, int n, const PPOParams *pp, GPT *policy,
                        GPT *critic, PPOStats *stats);

// Per-sequence sums over the response of k1 and k3 (ro->n each, may be NULL).
void rollout_kl(const Rollout *ro, float *k1, float *k3);

// Appends the batch of `step` to the HDF5 dump at path (see
// rollout_dump_append): tokens, log-probs, reference log-probs, values,
// advantages, returns, rewards, prompt and response lengths, raw scores and
// the mask (int32, for h5py users). -1 with a reason on failure.
int rollout_dump(const char *path, int64_t step, const Rollout *ro);

// What one scored rollout batch looked like, as PPO logs it every step.
typedef struct {
    double reward_raw, reward;  // mean score: raw, and normalised with the no-end penalty
    double kl_k1, kl_k3;        // mean per-sequence KL to the reference (from rollout_kl)
    double length, eot_rate;    // mean response length; share ending with end-of-text
    double explained_variance;  // 1 - Var(returns - values) / Var(returns), response tokens
    double tokens;              // response tokens
} RolloutStats;

// The statistics of the ro->n rows after ppo_advantages; k1, k3 as
// rollout_kl wrote them.
void rollout_stats(const Rollout *ro, const float *k1, const float *k3, RolloutStats *st);

#endif

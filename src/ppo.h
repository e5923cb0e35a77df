// PPO for RLHF, as a sequence of steps over one rollout batch:
//   ppo_generate   sample responses from the policy (KV cache)
//   ppo_score      policy / reference log-probs, critic values, reward score
//   ppo_task_rewards   the graders' part of the score (ppo.reward)
//   ppo_advantages per-token KL penalty + score, GAE and whitening, or the
//                  per-sequence advantages of a group method (GRPO, RLOO,
//                  REINFORCE)
//   ppo_minibatch_grads   gradients of the clipped policy and value losses
// Policy, reference, critic and reward model are four GPTs of one type;
// the group methods run without a critic, and without a reference when
// there is no KL penalty.
// Positions: a row holds prompt ++ response; position t predicts token
// t+1, and mask[t] = 1 where that token is a response token. Values,
// log-probs, rewards and advantages live at those positions.
#ifndef RLHF_PPO_H
#define RLHF_PPO_H

#include "gpt.h"
#include "losses.h"
#include "sampling.h"

typedef struct {
    SamplerParams sampling;  // rollout sampling (temperature also scales log-probs)
    int max_new;             // longest response
    float gamma, lam;        // GAE
    float cliprange, cliprange_value, vf_coef, ent_coef;
    int whiten;              // whiten advantages over the batch
    float no_eot_penalty;    // added to the score of a response that never ends
    float reward_mean, reward_std;  // reward-model normalisation
    int reward;              // PPO_REWARD_*: what a response's score is made of
    int advantage;           // ADV_GAE, ADV_GRPO, ADV_RLOO or ADV_REINFORCE (losses.h)
    int group_size;          // G: rows sampled from one prompt, consecutive
    int scale_rewards;       // GRPO's GROUP_SCALE_* (losses.h)
    float kl_loss_coef;      // k3 KL penalty in the policy loss (0: none)
    int seq_norm;            // policy loss: mean of per-sequence token means
} PPOParams;

// The score of a response (ppo.reward): the reward model's normalised
// score, the graders' verdict (1 right, 0 wrong or ungradable), or both.
enum { PPO_REWARD_MODEL, PPO_REWARD_GRADER, PPO_REWARD_MODEL_GRADER };

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
    float *returns;        // (P, L) (0 for the group methods: no critic)
    float *score_raw;      // (P) reward-model output (0 without a reward model)
    float *score;          // (P) what ppo.reward makes it, with the no-end penalty
    float *seq_reward;     // (P) group methods: a row's rewards summed
    float *seq_adv;        // (P) group methods: its advantage
    // minibatch scratch, (P, L) each unless said
    int *mb_inputs;        // (P, L+1) the rows' tokens
    int *mb_actions;       // tokens each position predicts
    unsigned char *mb_mask;
    float *mb_out;         // a scoring pass's log-probs or values, before they go to the rows
    float *mb_old;         // rollout-time log-probs (policy update) or values (critic update)
    float *mb_target;      // advantages (policy update) or returns (critic update)
    float *mb_grad;        // value-loss gradient
    float *mb_ref;         // reference log-probs (KL in the loss)
    float *mb_norm;        // per-token denominators (loss_norm = sequence)
    float *seq;            // (4, L) one response's rewards, values, advantages, returns
} Rollout;

// Buffers for P rows of up to T positions.
void rollout_build(Rollout *ro, int P, int T, int eot, int pad);
void rollout_free(Rollout *ro);
// Row j of src as ppo_generate left it (tokens, lengths, end, mask) into
// row i of dst.
void rollout_copy_row(Rollout *dst, int i, const Rollout *src, int j);

// Samples a response for each of P <= ro->P prompts (prompts[b], plens[b]
// tokens, plens[b] + max_new <= T, so that the reward model can read every
// token of the longest row) and fills tokens, qlen, rlen, ended,
// mask; sets ro->n = P. The functions below work on those n rows. Row b
// samples from its own stream, seeded from one draw of rng (one draw per
// call), so that ranks can sample shares of the rows: each rank samples
// its share (dist_share) and every rank ends with every row.
void ppo_generate(Rollout *ro, GPT *policy, KVCache *kv, Sampler *s,
                  const int *const *prompts, const int *plens, int P, const PPOParams *pp,
                  Rng *rng);

// Fills logp (policy), ref_logp (reference), values (critic) and the
// scores (reward model), running each model over the rows in the order
// and minibatch size given (order has ro->n entries) — the same shapes the
// first PPO epoch uses, so a policy equal to its rollout self gives
// ratios of exactly 1. ref, critic and rm may be NULL (ref_logp and
// values stay 0; score_raw 0 and score just the no-end penalty). No model
// keeps activations for a backward pass (gpt_forward_nograd). Each rank
// scores its share of every minibatch (the share ppo_minibatch_grads
// takes); every rank ends with every row's results.
void ppo_score(Rollout *ro, GPT *policy, GPT *ref, GPT *critic, GPT *rm, const PPOParams *pp,
               const long *order, int mb);

// The graders' score of one response (ppo.reward = grader): 1 for a right
// answer, 0 otherwise, plus no_eot_penalty when it never ended.
float ppo_grader_score(const PPOParams *pp, int grade, int ended);

// After ppo_score, the graders' part of each row's score for pp->reward:
// GRADER makes score[b] = (grades[b] == 1) plus the no-end penalty;
// MODEL_GRADER adds (grades[b] == 1) to the reward model's score; MODEL
// leaves the scores alone. grades[b] as rollout_grade writes them (-1, an
// ungradable prompt, earns 0). Returns the rows graded -1.
int ppo_task_rewards(Rollout *ro, const int *grades, const PPOParams *pp);

// Rewards (-kl_coef * k1 per token, score added at each row's last
// response token), then advantages: for ADV_GAE, GAE advantages and
// returns, then whitening (pp->whiten); for a group method, the sum of a
// row's rewards is its sequence reward (undiscounted), group_advantages
// (pp->group_size consecutive rows a group) gives each row one advantage
// for all its tokens, and returns stay 0. ro->n must divide by G.
void ppo_advantages(Rollout *ro, const PPOParams *pp, float kl_coef);

// The gradients of one clipped update on rows[0..n): the policy's (and the
// critic's, when critic is not NULL) forward, loss and backward, added to
// their gradients; the caller clips and applies them. The policy loss is
// ppo_policy_loss_kl with pp->kl_loss_coef (against ref_logp) and, for
// pp->seq_norm, every token divided by (its row's tokens) * n, else by the
// minibatch's token count. Adds to stats. Returns 0 (nothing accumulated)
// when the rows hold no response token. Both models need a training state
// (gpt_train_build). Each rank computes its share of the rows (dist_share of
// n), normalised by the whole minibatch; stats receive the whole
// minibatch's sums.
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

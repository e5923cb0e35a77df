// Losses above the model's outputs and the RLHF arithmetic around them:
// log-probabilities and entropy from logits, the Bradley-Terry pairwise loss
// of reward models, DPO and its relatives (IPO, cDPO) on sequence
// log-probabilities, and PPO (KL estimators, GAE, whitening, the adaptive KL
// controller, the clipped policy and value objectives). Each loss returns
// its value and writes the gradient with respect to its inputs; gradients
// are overwritten, never accumulated. Rows are positions (N = B*T); `mask`
// marks the rows that count (response tokens), all others get zero
// gradient. A loss that writes dlogits from logits takes the same buffer for
// both (each row is read whole before it is overwritten): a model being
// trained holds one (N,V) buffer (gpt_logits_to_grad).
#ifndef RLHF_LOSSES_H
#define RLHF_LOSSES_H

#include <stdint.h>

// logp[n] = log softmax(logits[n] / temperature)[actions[n]] and, if
// entropy is not NULL, entropy[n] of that distribution; rows with
// mask[n] == 0 (mask may be NULL = all) get 0.
void logprobs_from_logits(float *logp, float *entropy, const float *logits, const int *actions,
                          const unsigned char *mask, int N, int V, float temperature);

// Bradley-Terry on comparisons grouped by prompt (InstructGPT's reward
// loss): r holds the rewards of n_rows responses; pair p says row chosen[p]
// is better than row rejected[p]; group g owns pairs pair_off[g] ..
// pair_off[g+1]) (at least one). The loss is the mean over the n_groups
// groups of the mean over a group's pairs of -log sigmoid(r_c - r_r -
// margin) + center * (r_c + r_r)^2, so a prompt with many comparisons
// weighs as much as one with a single pair; plain pairs are groups of one.
// The center term (TRL's center_rewards_coefficient; 0: none) pulls each
// pair's rewards to sum to 0, so that scores of different prompts' answers
// share one zero. Writes dr (n_rows) = d loss / d r. Stats (may be NULL),
// over pairs: accuracy (share with r_c > r_r; a tie is wrong) and mean
// margin r_c - r_r.
float bt_group_loss(const float *r, int n_rows, const int *chosen, const int *rejected,
                    const int *pair_off, int n_groups, float margin, float center, float *dr,
                    float *accuracy, float *mean_margin);

// Log-probabilities of whole sequences from logits (R,T,V): logp[r] = the
// sum over positions t of row r with mask[r*T+t] of log softmax(logits[r,t])
// [targets[r*T+t]], in double (targets off the mask are not read).
void seq_logprobs(double *logp, const float *logits, const int *targets,
                  const unsigned char *mask, int R, int T, int V);
// Writes dlogits (R,T,V) = d/dlogits of sum_r g[r] logp[r]: g[r] (onehot -
// softmax) at masked positions, exactly 0 elsewhere. dlogits may be logits.
void seq_logprobs_backward(float *dlogits, const float *logits, const int *targets,
                           const unsigned char *mask, const double *g, int R, int T, int V);

// Direct preference optimisation (DPO) on n pairs, from the log-probabilities
// of whole responses: pc, pr the policy's of the chosen and the rejected
// response, rc, rr a frozen reference's. With d = (pc - rc) - (pr - rr) and
// h = beta d:
//   DPO_SIGMOID  -(1 - eps) log sigmoid(h) - eps log sigmoid(-h), eps =
//                label_smoothing (eps > 0: conservative DPO, cDPO)
//   DPO_IPO      (d - 1 / (2 beta))^2
// The implicit rewards are beta (pc - rc) and beta (pr - rr).
typedef enum { DPO_SIGMOID, DPO_IPO } DpoLossType;
typedef struct {
    DpoLossType type;
    double beta;             // > 0
    double label_smoothing;  // eps in [0, 0.5), DPO_SIGMOID only
    double rpo_alpha;        // >= 0: weight of the chosen answers' NLL per token (RPO)
} DpoParams;

// Sums over the pairs scored (divide by `pairs` for means): the loss, the
// implicit rewards of chosen and rejected, the pairs whose chosen reward is
// the larger (a tie counts as wrong), the policy's log-probabilities, and
// the chosen answers' negative log-likelihood per token (-pc / nc).
typedef struct {
    double loss, reward_chosen, reward_rejected, correct, logp_chosen, logp_rejected, nll,
        pairs;
} DpoStats;

// Returns the mean loss over the n pairs and writes its gradient with
// respect to each input (dpc, dpr, drc, drr: n each; any may be NULL).
// nc[i] (> 0) counts the tokens pc[i] sums over; with rpo_alpha > 0 each
// pair's loss gains rpo_alpha * (-pc / nc), the chosen answer's mean NLL
// per token (RPO: it keeps DPO from lowering the chosen answers with the
// rejected ones). nc may be NULL when rpo_alpha is 0. Adds the pairs to
// stats (may be NULL). Computed in double.
double dpo_loss(const double *pc, const double *pr, const double *rc, const double *rr,
                const double *nc, int n, const DpoParams *p, double *dpc, double *dpr,
                double *drc, double *drr, DpoStats *stats);

// Per-token KL estimators of the policy against the reference at sampled
// tokens, from the log-probabilities: k1 = logp - ref_logp,
// k3 = exp(ref_logp - logp) - 1 - (ref_logp - logp) (non-negative).
static inline float kl_k1(float logp, float ref_logp) { return logp - ref_logp; }
float kl_k3(float logp, float ref_logp);

// Generalised advantage estimation along one response of n tokens:
// delta_t = r_t + gamma v_{t+1} - v_t (v_n = 0), A_t = delta_t + gamma lam A_{t+1},
// returns_t = A_t + v_t.
void gae(float *advantages, float *returns, const float *rewards, const float *values, int n,
         float gamma, float lam);

// Whitens x[i] where mask[i] (mask may be NULL): (x - mean) / sqrt(var + 1e-8)
// with the population variance, computed in double. shift_mean = 0 keeps the
// mean (rescales only). Returns the number of masked entries.
long whiten(float *x, const unsigned char *mask, long n, int shift_mean);

// Adaptive KL coefficient (proportional controller): with
// e = clip(kl / target - 1, -0.2, 0.2), coef *= 1 + e * n_steps / horizon.
typedef struct {
    double coef;
    double target;
    double horizon;
} KLController;
void kl_controller_update(KLController *kc, double kl, double n_steps);

// Statistics of PPO updates: sums over the masked tokens of every minibatch
// added (the per-token loss, entropy, clipped indicator, approximate KL,
// ratio, and the k3 KL to the reference when it is in the loss), and the
// count of those tokens; divide by `tokens` for means.
typedef struct {
    double policy_loss, value_loss, entropy, clipfrac, approx_kl, value_clipfrac;
    double ratio, tokens;
    double kl_k3;
} PPOStats;

// Clipped surrogate on logits (N,V) at temperature T:
//   ratio = exp(logp - old_logp),
//   loss = mean_mask max(-A ratio, -A clip(ratio, 1-c, 1+c)) - ent_coef * mean_mask H
// where mean_mask divides by `norm` (the masked token count of the whole
// minibatch, so micro-batches add up). Writes dlogits (N,V) (zero rows off
// the mask; dlogits may be logits) and returns the loss; adds to stats.
float ppo_policy_loss(float *dlogits, const float *logits, const int *actions,
                      const float *old_logp, const float *advantages,
                      const unsigned char *mask, int N, int V, float temperature,
                      float cliprange, float ent_coef, double norm, PPOStats *stats);

// The same clipped surrogate with the two options of the group methods
// (GRPO and its kin):
//  - a KL penalty in the loss instead of the reward: kl_coef * k3(logp,
//    ref_logp) per token, k3 as kl_k3 (ref_logp may be NULL when kl_coef
//    is 0); stats->kl_k3 adds the k3 sum;
//  - a denominator per token: loss = sum_mask l_t / norms[t], so that
//    norms[t] = (tokens of t's sequence) * (sequences) makes the loss the
//    mean over sequences of per-sequence token means (GRPO); norms NULL
//    divides every token by `norm` (the token mean over the minibatch,
//    DAPO-style), exactly as ppo_policy_loss does.
// stats->policy_loss sums the surrogate and entropy terms, as above.
float ppo_policy_loss_kl(float *dlogits, const float *logits, const int *actions,
                         const float *old_logp, const float *advantages, const float *ref_logp,
                         const unsigned char *mask, int N, int V, float temperature,
                         float cliprange, float ent_coef, float kl_coef, const float *norms,
                         double norm, PPOStats *stats);

// Advantages of the group methods, one per sequence, from the sequence
// rewards r of n_groups groups of G consecutive samples of one prompt
// (computed in double):
//   GRPO        (r_i - mean of its group) / (s + eps), eps = GROUP_ADV_EPS,
//               s the group's sample std (scale GROUP_SCALE_GROUP), the
//               sample std of the whole batch (GROUP_SCALE_BATCH) or none,
//               s + eps = 1 (GROUP_SCALE_NONE, Dr. GRPO);
//   RLOO        r_i - mean of the G - 1 others of its group;
//   REINFORCE   r_i - mean of the whole batch (G may be 1).
// Sample std: divided by count - 1. GRPO and RLOO need G >= 2; a group
// whose rewards are all equal gets advantages of exactly 0.
enum { ADV_GAE, ADV_GRPO, ADV_RLOO, ADV_REINFORCE };
enum { GROUP_SCALE_GROUP, GROUP_SCALE_BATCH, GROUP_SCALE_NONE };
#define GROUP_ADV_EPS 1e-4
void group_advantages(float *adv, const float *r, int n_groups, int G, int kind, int scale);

// What the rewards r of n_groups groups of G looked like: their mean, the
// mean over groups of each group's sample std (0 when G = 1), and the
// share of groups whose rewards are all equal (no learning signal for
// GRPO and RLOO).
typedef struct {
    double mean, std, zero_spread;
} GroupStats;
void group_reward_stats(const float *r, int n_groups, int G, GroupStats *st);

// Clipped value loss: v_clip = old + clip(v - old, -c, c),
// loss = vf_coef * 0.5 * mean_mask max((v - R)^2, (v_clip - R)^2).
// Writes dvalues (N) and returns the loss; adds to stats.
float ppo_value_loss(float *dvalues, const float *values, const float *old_values,
                     const float *returns, const unsigned char *mask, int N, float cliprange,
                     float vf_coef, double norm, PPOStats *stats);

#endif

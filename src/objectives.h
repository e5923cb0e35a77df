// What each training stage optimises, as one forward + loss + backward on a
// model: next-token loss (pretrain, SFT with loss weights), the
// Bradley-Terry loss of preference pairs through the value head (reward)
// and DPO on the response log-probabilities of preference pairs (dpo).
// Each accumulates (+=) the model's gradients and returns its loss; the
// trainer zeroes, clips and updates. PPO's objective lives in ppo.h.
// Data-parallel (dist.h): these are collective. Every rank passes the whole
// batch; each computes the gradient of its share of the rows (pairs,
// groups), weighted as a part of the whole batch, and the returned loss and
// statistics are the whole batch's (summed over ranks in rank order). The
// trainer sums the gradients. One process: exactly the plain computation.
#ifndef RLHF_OBJECTIVES_H
#define RLHF_OBJECTIVES_H

#include "config.h"
#include "gpt.h"
#include "losses.h"

// Weighted next-token cross-entropy of inputs x (B,T) against targets y
// (B,T): returns sum_t w[t] * loss_t and adds its gradient. w = NULL (the
// mean over the batch) only in a single process. pos0 (B): each row's
// first position (gpt_forward_at), NULL for 0.
double lm_accumulate(GPT *m, const int *x, const int *y, const float *w, const int *pos0, int B,
                     int T);

// Loss weights of one SFT micro-batch: w[i] = share * mask[i] / n_loss,
// where n_loss counts the loss-carrying tokens of the whole optimizer step
// (so micro-batches add up to share times the mean over the step's
// response tokens; share is 1 unless pretraining windows take the rest).
void sft_loss_weights(float *w, const unsigned char *mask, int n, double n_loss, double share);

// Bradley-Terry on comparisons grouped by prompt (bt_group_loss) over the
// n rows of x (n,T): last[r] is row r's last token, where its reward is
// read; pair p ranks row chosen[p] above row rejected[p]; group g owns
// pairs pair_off[g] .. pair_off[g+1]; a group's rows are consecutive, the
// groups' in group order, as seqs_from_groups lays them out: ranks split
// the groups); center as bt_group_loss. Adds the gradient of loss / accum
// (one of accum micro-batches) and returns the loss of these groups; acc
// and gap receive the share of pairs ranked right and the mean reward
// margin. Scratch: r and dr (n), dvalues (n,T).
float groups_accumulate(GPT *m, const int *x, const int *last, int n, int T, const int *chosen,
                        const int *rejected, const int *pair_off, int n_groups, float margin,
                        float center, int accum, float *r, float *dr, float *dvalues, float *acc,
                        float *gap);

// DPO (with RPO's NLL term when p->rpo_alpha > 0) on B pairs laid out as 2B rows of inputs x, targets y and loss mask
// (2B,T) (seqs_batch): B chosen, then B rejected. A row's log-probability
// is the sum of log p(target) where mask is set: the response and its
// end-of-text, never the prompt. ref (2B) holds the frozen reference's
// log-probabilities of the same rows. Adds the gradient of loss / accum
// (one of accum micro-batches) and returns the mean loss of these pairs;
// logp and dlogp (2B) are scratch (the policy's log-probabilities of this
// rank's rows and their gradients); the pairs are added to st (may be
// NULL). The model has no value head.
double dpo_accumulate(GPT *m, const int *x, const int *y, const unsigned char *mask, int B,
                      int T, const double *ref, const DpoParams *p, int accum, double *logp,
                      double *dlogp, DpoStats *st);

// The frozen reference's log-probabilities of the batch's rows (as
// dpo_accumulate lays them out) where ref_logp (2B) holds NaN, the mark of
// a row not computed yet; rows already known are kept. Each process runs
// the reference on its own share of the pairs, in the shape dpo_accumulate
// runs the policy in, and the shares are summed across processes, so every
// rank ends with the same values. Returns the rows computed (0: none, and
// no forward ran).
int dpo_reference(GPT *ref, const int *x, const int *y, const unsigned char *mask, int B, int T,
                  double *ref_logp);

// The [dpo] keys as DpoParams (the config is validated: loss is a known name).
DpoParams dpo_params_from_config(const Config *cfg);

#endif

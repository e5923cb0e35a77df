// What each training stage optimises, as one forward + loss + backward on a
// model: next-token loss (pretrain, SFT with loss weights) and the
// Bradley-Terry loss of preference pairs through the value head (reward).
// Each accumulates (+=) the model's gradients and returns its loss; the
// trainer zeroes, clips and updates. PPO's objective lives in ppo.h.
#ifndef RLHF_OBJECTIVES_H
#define RLHF_OBJECTIVES_H

#include "gpt.h"

// Weighted next-token cross-entropy of inputs x (B,T) against targets y
// (B,T): returns sum_t w[t] * loss_t and adds its gradient.
double lm_accumulate(GPT *m, const int *x, const int *y, const float *w, int B, int T);

// Loss weights of one SFT micro-batch: w[i] = mask[i] / n_loss, where
// n_loss counts the loss-carrying tokens of the whole optimizer step (so
// micro-batches add up to a mean over the step's response tokens).
void sft_loss_weights(float *w, const unsigned char *mask, int n, double n_loss);

// Bradley-Terry on B pairs laid out as 2B rows of x (2B,T): B chosen, then
// B rejected; last[r] is row r's last token, where its reward is read.
// Adds the gradient of loss / accum (one of accum micro-batches) and
// returns the mean loss of these pairs; acc and gap receive the share of
// pairs ranked right and the mean reward margin. Scratch: r and dr (2B),
// dvalues (2B,T).
float pairs_accumulate(GPT *m, const int *x, const int *last, int B, int T, float margin,
                       int accum, float *r, float *dr, float *dvalues, float *acc, float *gap);

#endif

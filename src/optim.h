// AdamW with decoupled weight decay, gradient-norm clipping and the
// learning-rate schedule (linear warmup, cosine decay to a floor). Works on
// the flat parameter and gradient buffers of a GPT being trained (one with
// a training state, gpt_train_build); moments m and v share their layout.
#ifndef RLHF_OPTIM_H
#define RLHF_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "gpt.h"

typedef struct {
    float lr;  // set per step from the schedule
    float beta1, beta2, eps, weight_decay;
    int64_t t;      // steps taken
    size_t n;       // floats in m and v (== model num_params)
    float *m, *v;   // owned, zero-initialised
} AdamW;

void adamw_build(AdamW *opt, size_t n, float beta1, float beta2, float eps,
                 float weight_decay);
void adamw_free(AdamW *opt);

// One update of the model's params from its grads at learning rate lr.
// Weight decay applies to 2-D weights (matrices and embeddings) only: not to
// biases, LayerNorm parameters or the value head.
void adamw_step(AdamW *opt, GPT *model, float lr);

// Global L2 norm of the gradients (in double, fixed order).
float grad_norm(const GPT *model);
// Scales grads so their norm is at most max_norm (no-op if max_norm <= 0).
// Returns the norm before clipping.
float grad_clip(GPT *model, float max_norm);

// Learning rate at `step` (0-based): linear warmup over warmup_steps to lr,
// then cosine decay to min_lr at max_steps; min_lr after that.
float lr_schedule(int64_t step, int64_t warmup_steps, int64_t max_steps, float lr,
                  float min_lr);

#endif

// AdamW, clipping and LR schedule; see optim.h.
#include "optim.h"

#include <math.h>
#include <string.h>

#include "common.h"
#include "ops.h"

void adamw_build(AdamW *opt, size_t n, float beta1, float beta2, float eps,
                 float weight_decay) {
    memset(opt, 0, sizeof *opt);
    opt->beta1 = beta1;
    opt->beta2 = beta2;
    opt->eps = eps;
    opt->weight_decay = weight_decay;
    opt->n = n;
    opt->m = alignedCheck(n * sizeof(float));
    opt->v = alignedCheck(n * sizeof(float));
    memset(opt->m, 0, n * sizeof(float));
    memset(opt->v, 0, n * sizeof(float));
}

void adamw_free(AdamW *opt) {
    free(opt->m);
    free(opt->v);
    memset(opt, 0, sizeof *opt);
}

void adamw_step(AdamW *opt, GPT *model, float lr) {
    ASSERT(opt->n == model->num_params && model->train);
    opt->t++;
    opt->lr = lr;
    const float b1 = opt->beta1, b2 = opt->beta2, eps = opt->eps;
    const float bc1 = (float)(1.0 - pow(b1, (double)opt->t)), bc2 = (float)(1.0 - pow(b2, (double)opt->t));
    // one parallel region for all tensors; threads move on without waiting
    // at the end of each tensor (every element is touched by one thread)
#pragma omp parallel if (omp_worth((long)model->num_params))
    for (int p = 0; p < NUM_PARAM_TENSORS; p++) {
        const ParamInfo *pi = &model->info[p];
        if (!pi->size) continue;
        const float wd = pi->ndim == 2 ? opt->weight_decay : 0.0f;
        float *w = model->params_memory + pi->offset;
        float *g = model->train->grads_memory + pi->offset;
        float *m = opt->m + pi->offset, *v = opt->v + pi->offset;
        const long n = (long)pi->size;
#pragma omp for simd schedule(static) nowait
        for (long i = 0; i < n; i++) {
            float gi = g[i];
            float mi = b1 * m[i] + (1.0f - b1) * gi;
            float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
            m[i] = mi;
            v[i] = vi;
            float mhat = mi / bc1, vhat = vi / bc2;
            w[i] -= lr * (mhat / (sqrtf(vhat) + eps) + wd * w[i]);
        }
    }
    gpt_params_changed(model);  // a bf16 model rounds its copy once, before its next product
}

float grad_norm(const GPT *model) {
    // A fixed number of blocks summed in order: the same bits for any thread
    // count, and no allocation.
    enum { NBLK = 256 };
    double partial[NBLK];
    ASSERT(model->train);
    const float *g = model->train->grads_memory;
    const long n = (long)model->num_params, blk = (n + NBLK - 1) / NBLK;
#pragma omp parallel for schedule(static) if (omp_worth(n))
    for (long b = 0; b < NBLK; b++) {
        long lo = b * blk, hi = lo + blk < n ? lo + blk : n;
        double s = 0.0;
        for (long i = lo; i < hi; i++) s += (double)g[i] * g[i];
        partial[b] = s;
    }
    double total = 0.0;
    for (long b = 0; b < NBLK; b++) total += partial[b];
    return (float)sqrt(total);
}

float grad_clip(GPT *model, float max_norm) {
    float norm = grad_norm(model);
    if (max_norm > 0.0f && norm > max_norm) {
        float s = max_norm / norm;  // norm > max_norm > 0 here
        float *g = model->train->grads_memory;
        const long n = (long)model->num_params;
#pragma omp parallel for simd schedule(static) if (parallel : omp_worth(n))
        for (long i = 0; i < n; i++) g[i] *= s;
    }
    return norm;
}

float lr_schedule(int64_t step, int64_t warmup_steps, int64_t max_steps, float lr,
                  float min_lr) {
    if (step < warmup_steps) return lr * (float)(step + 1) / (float)warmup_steps;
    if (step >= max_steps) return min_lr;
    double progress = (double)(step - warmup_steps) / (double)(max_steps - warmup_steps);
    double coeff = 0.5 * (1.0 + cos(3.14159265358979323846 * progress));
    return min_lr + (float)coeff * (lr - min_lr);
}

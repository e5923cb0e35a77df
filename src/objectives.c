// The stage objectives on a GPT; see objectives.h.
#include "objectives.h"

#include <string.h>

#include "common.h"
#include "evaluate.h"
#include "losses.h"

double lm_accumulate(GPT *m, const int *x, const int *y, const float *w, int B, int T) {
    gpt_forward(m, x, B, T, 1);
    const float loss = gpt_lm_loss(m, y, w);
    gpt_backward(m, m->train->dlogits, NULL);
    return loss;
}

void sft_loss_weights(float *w, const unsigned char *mask, int n, double n_loss, double share) {
    // share = 1: exactly mask / n_loss, the weights without pretraining windows
    for (int i = 0; i < n; i++) w[i] = (float)(share * mask[i] / n_loss);
}

float groups_accumulate(GPT *m, const int *x, const int *last, int n, int T, const int *chosen,
                        const int *rejected, const int *pair_off, int n_groups, float margin,
                        int accum, float *r, float *dr, float *dvalues, float *acc, float *gap) {
    ASSERT(m->config.value_head);
    gpt_forward(m, x, n, T, 0);
    values_at(m, last, r);
    const float loss =
        bt_group_loss(r, n, chosen, rejected, pair_off, n_groups, margin, dr, acc, gap);
    // the loss touches only each row's last position
    memset(dvalues, 0, (size_t)n * T * sizeof(float));
    for (int i = 0; i < n; i++) dvalues[i * T + last[i]] = dr[i] / accum;
    gpt_backward(m, NULL, dvalues);
    return loss;
}

double dpo_accumulate(GPT *m, const int *x, const int *y, const unsigned char *mask, int B,
                      int T, const double *ref, const DpoParams *p, int accum, double *logp,
                      double *dlogp, DpoStats *st) {
    ASSERT(!m->config.value_head);
    const int R = 2 * B, V = m->config.vocab_size;
    gpt_forward(m, x, R, T, 1);
    seq_logprobs(logp, m->acts.logits, y, mask, R, T, V);
    const double loss = dpo_loss(logp, logp + B, ref, ref + B, B, p, dlogp, dlogp + B, NULL, NULL,
                                 st);
    for (int r = 0; r < R; r++) dlogp[r] /= accum;
    float *z = gpt_logits_to_grad(m);  // the gradient is written over the logits
    seq_logprobs_backward(z, z, y, mask, dlogp, R, T, V);
    gpt_backward(m, z, NULL);
    return loss;
}

DpoParams dpo_params_from_config(const Config *cfg) {
    DpoParams p = {DPO_SIGMOID, cfg->dpo.beta, cfg->dpo.label_smoothing};
    if (strcmp(cfg->dpo.loss, "ipo") == 0) p.type = DPO_IPO;
    else ASSERT(strcmp(cfg->dpo.loss, "sigmoid") == 0);
    return p;
}

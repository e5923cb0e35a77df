// The stage objectives on a GPT; see objectives.h.
#include "objectives.h"

#include <math.h>
#include <string.h>

#include "common.h"
#include "dist.h"
#include "evaluate.h"
#include "losses.h"

double lm_accumulate(GPT *m, const int *x, const int *y, const float *w, const int *pos0, int B,
                     int T) {
    // w = NULL weighs by this process's rows: right only when it has them all
    ASSERT(w || dist_size() == 1);
    long lo, hi;
    dist_share(B, &lo, &hi);
    double loss = 0.0;
    if (hi > lo) {
        const size_t off = (size_t)lo * T;
        gpt_forward_at(m, x + off, pos0 ? pos0 + lo : NULL, (int)(hi - lo), T, 1);
        loss = gpt_lm_loss(m, y + off, w ? w + off : NULL);
        gpt_backward(m, m->train->dlogits, NULL);
    }
    dist_sum_f64(&loss, 1);
    return loss;
}

void sft_loss_weights(float *w, const unsigned char *mask, int n, double n_loss, double share) {
    // share = 1: exactly mask / n_loss, the weights without pretraining windows
    for (int i = 0; i < n; i++) w[i] = (float)(share * mask[i] / n_loss);
}

float groups_accumulate(GPT *m, const int *x, const int *last, int n, int T, const int *chosen,
                        const int *rejected, const int *pair_off, int n_groups, float margin,
                        float center, int accum, float *r, float *dr, float *dvalues, float *acc,
                        float *gap) {
    ASSERT(m->config.value_head);
    // this process's groups [g0, g1) own the rows [r0, r1) their pairs name
    // (a group's rows are consecutive, groups in order)
    long g0, g1;
    dist_share(n_groups, &g0, &g1);
    const int p0 = pair_off[g0], p1 = pair_off[g1];
    int r0 = n, r1 = 0;
    for (int p = p0; p < p1; p++) {
        const int lo = chosen[p] < rejected[p] ? chosen[p] : rejected[p];
        const int hi = chosen[p] > rejected[p] ? chosen[p] : rejected[p];
        r0 = lo < r0 ? lo : r0;
        r1 = hi + 1 > r1 ? hi + 1 : r1;
    }
    // sums over the groups: loss (by group), right and margin (by pair)
    double sums[3] = {0.0, 0.0, 0.0};
    if (g1 > g0) {
        const int rows = r1 - r0, G = (int)(g1 - g0), P = p1 - p0;
        int *c = mallocCheck((size_t)P * sizeof(int)), *j = mallocCheck((size_t)P * sizeof(int));
        int *off = mallocCheck(((size_t)G + 1) * sizeof(int));
        for (int p = 0; p < P; p++) {
            c[p] = chosen[p0 + p] - r0;
            j[p] = rejected[p0 + p] - r0;
        }
        for (int g = 0; g <= G; g++) off[g] = pair_off[g0 + g] - p0;
        gpt_forward(m, x + (size_t)r0 * T, rows, T, 0);
        values_at(m, last + r0, r);
        float a_acc, a_gap;
        const float loss = bt_group_loss(r, rows, c, j, off, G, margin, center, dr, &a_acc,
                                         &a_gap);
        // bt_group_loss is the mean over these G groups; the batch's is over n_groups
        const float share = (float)G / (float)n_groups;
        // the loss touches only each row's last position
        memset(dvalues, 0, (size_t)rows * T * sizeof(float));
        for (int i = 0; i < rows; i++) dvalues[i * T + last[r0 + i]] = dr[i] * share / accum;
        gpt_backward(m, NULL, dvalues);
        sums[0] = (double)loss * G;
        sums[1] = (double)a_acc * P;
        sums[2] = (double)a_gap * P;
        free(c);
        free(j);
        free(off);
    }
    dist_sum_f64(sums, 3);
    const double pairs = pair_off[n_groups];
    if (acc) *acc = (float)(sums[1] / pairs);
    if (gap) *gap = (float)(sums[2] / pairs);
    return (float)(sums[0] / n_groups);
}

// This process's pairs [b0, b0 + n) of a batch of B pairs (2B rows: B
// chosen, then B rejected) as 2n rows: their chosen, then their rejected.
// With every pair (one process) the batch itself; else a gathered copy.
typedef struct {
    const int *x, *y;
    const unsigned char *mask;
    int *gx, *gy;
    unsigned char *gm;
} PairShare;

static void pair_share(PairShare *s, const int *x, const int *y, const unsigned char *mask,
                       int B, int T, long b0, int n) {
    memset(s, 0, sizeof *s);
    s->x = x, s->y = y, s->mask = mask;
    if (n == B) return;
    const size_t nT = (size_t)n * T;
    s->gx = mallocCheck(2 * nT * sizeof(int));
    s->gy = mallocCheck(2 * nT * sizeof(int));
    s->gm = mallocCheck(2 * nT);
    for (int side = 0; side < 2; side++) {
        const size_t from = ((size_t)side * B + b0) * T, to = (size_t)side * nT;
        memcpy(s->gx + to, x + from, nT * sizeof(int));
        memcpy(s->gy + to, y + from, nT * sizeof(int));
        memcpy(s->gm + to, mask + from, nT);
    }
    s->x = s->gx, s->y = s->gy, s->mask = s->gm;
}

static void pair_share_free(PairShare *s) {
    free(s->gx);
    free(s->gy);
    free(s->gm);
}

double dpo_accumulate(GPT *m, const int *x, const int *y, const unsigned char *mask, int B,
                      int T, const double *ref, const DpoParams *p, int accum, double *logp,
                      double *dlogp, DpoStats *st) {
    ASSERT(!m->config.value_head);
    const int V = m->config.vocab_size;
    // this process's pairs [b0, b1): their chosen rows, then their rejected
    long b0, b1;
    dist_share(B, &b0, &b1);
    const int n = (int)(b1 - b0), R = 2 * n;
    DpoStats local = {0};
    double loss = 0.0;
    if (n > 0) {
        PairShare sh;
        pair_share(&sh, x, y, mask, B, T, b0, n);
        const double *refs = ref;
        double *gref = NULL, *nc = mallocCheck((size_t)n * sizeof(double));
        if (n < B) {  // this rank's pairs: their chosen, then their rejected
            gref = mallocCheck((size_t)R * sizeof(double));
            for (int side = 0; side < 2; side++)
                memcpy(gref + side * n, ref + side * B + b0, (size_t)n * sizeof(double));
            refs = gref;
        }
        for (int i = 0; i < n; i++) {  // tokens of each chosen answer (RPO's mean)
            long c = 0;
            for (int t = 0; t < T; t++) c += sh.mask[(size_t)i * T + t] != 0;
            nc[i] = c > 0 ? (double)c : 1.0;
        }
        gpt_forward(m, sh.x, R, T, 1);
        seq_logprobs(logp, m->acts.logits, sh.y, sh.mask, R, T, V);
        loss = dpo_loss(logp, logp + n, refs, refs + n, nc, n, p, dlogp, dlogp + n, NULL, NULL,
                        &local);
        // dpo_loss is the mean over these n pairs; the batch's is over B
        const double share = (double)n / B;
        for (int r = 0; r < R; r++) dlogp[r] = dlogp[r] * share / accum;
        float *z = gpt_logits_to_grad(m);  // the gradient is written over the logits
        seq_logprobs_backward(z, z, sh.y, sh.mask, dlogp, R, T, V);
        gpt_backward(m, z, NULL);
        loss *= share;
        free(gref);
        free(nc);
        pair_share_free(&sh);
    }
    double sums[9] = {loss, local.loss, local.reward_chosen, local.reward_rejected,
                      local.correct, local.logp_chosen, local.logp_rejected, local.nll,
                      local.pairs};
    dist_sum_f64(sums, 9);
    if (st) {
        st->loss += sums[1];
        st->reward_chosen += sums[2];
        st->reward_rejected += sums[3];
        st->correct += sums[4];
        st->logp_chosen += sums[5];
        st->logp_rejected += sums[6];
        st->nll += sums[7];
        st->pairs += sums[8];
    }
    return sums[0];
}

int dpo_reference(GPT *ref, const int *x, const int *y, const unsigned char *mask, int B, int T,
                  double *ref_logp) {
    int missing = 0;
    for (int r = 0; r < 2 * B; r++) missing += isnan(ref_logp[r]);
    if (missing == 0) return 0;
    long b0, b1;
    dist_share(B, &b0, &b1);
    const int n = (int)(b1 - b0);
    // each process's rows in place, zeros elsewhere: the sum over processes
    // is every row's value exactly
    double *v = mallocCheck((size_t)2 * B * sizeof(double));
    memset(v, 0, (size_t)2 * B * sizeof(double));
    if (n > 0) {
        PairShare sh;
        pair_share(&sh, x, y, mask, B, T, b0, n);
        double *lp = mallocCheck((size_t)2 * n * sizeof(double));
        gpt_forward_nograd(ref, sh.x, 2 * n, T, 1);
        seq_logprobs(lp, ref->acts.logits, sh.y, sh.mask, 2 * n, T, ref->config.vocab_size);
        for (int side = 0; side < 2; side++)
            memcpy(v + side * B + b0, lp + side * n, (size_t)n * sizeof(double));
        free(lp);
        pair_share_free(&sh);
    }
    dist_sum_f64(v, (size_t)2 * B);
    for (int r = 0; r < 2 * B; r++)
        if (isnan(ref_logp[r])) ref_logp[r] = v[r];
    free(v);
    return missing;
}

DpoParams dpo_params_from_config(const Config *cfg) {
    DpoParams p = {DPO_SIGMOID, cfg->dpo.beta, cfg->dpo.label_smoothing, cfg->dpo.rpo_alpha};
    if (strcmp(cfg->dpo.loss, "ipo") == 0) p.type = DPO_IPO;
    else ASSERT(strcmp(cfg->dpo.loss, "sigmoid") == 0);
    return p;
}

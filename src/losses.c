// Pairwise reward loss, DPO and PPO arithmetic; see losses.h for the formulas.
// Everything per token is computed in float with double accumulators.
#include "losses.h"

#include <math.h>
#include <string.h>

#include "common.h"
#include "ops.h"

// log-sum-exp of z = row / temperature
static float row_lse(const float *row, int V, float inv_t) {
    float mx = -INFINITY;
    for (int j = 0; j < V; j++) mx = row[j] * inv_t > mx ? row[j] * inv_t : mx;
    double s = 0.0;
    for (int j = 0; j < V; j++) s += exp((double)(row[j] * inv_t - mx));
    return mx + (float)log(s);
}

// entropy of softmax(z), z = row / temperature, given its log-sum-exp
static float row_entropy(const float *row, int V, float inv_t, float lse) {
    double h = 0.0;
    for (int j = 0; j < V; j++) {
        double lp = (double)(row[j] * inv_t - lse);
        h -= exp(lp) * lp;
    }
    return (float)h;
}

void logprobs_from_logits(float *logp, float *entropy, const float *logits, const int *actions,
                          const unsigned char *mask, int N, int V, float temperature) {
    const float inv_t = 1.0f / temperature;
#pragma omp parallel for schedule(static) if (omp_worth((long)N * V))
    for (int n = 0; n < N; n++) {
        if (mask && !mask[n]) {
            logp[n] = 0.0f;
            if (entropy) entropy[n] = 0.0f;
            continue;
        }
        const float *row = logits + (size_t)n * V;
        float lse = row_lse(row, V, inv_t);
        logp[n] = row[actions[n]] * inv_t - lse;
        if (entropy) entropy[n] = row_entropy(row, V, inv_t, lse);
    }
}

// log(1 + exp(x)) without overflow
static double softplus(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }

float bt_group_loss(const float *r, int n_rows, const int *chosen, const int *rejected,
                    const int *pair_off, int n_groups, float margin, float center, float *dr,
                    float *accuracy, float *mean_margin) {
    ASSERT(n_groups > 0 && pair_off[0] == 0);
    memset(dr, 0, (size_t)n_rows * sizeof(float));
    double loss = 0.0, correct = 0.0, gap = 0.0;
    for (int g = 0; g < n_groups; g++) {
        const int n = pair_off[g + 1] - pair_off[g];
        ASSERT(n > 0);
        double group_loss = 0.0;
        for (int p = pair_off[g]; p < pair_off[g + 1]; p++) {
            const int c = chosen[p], j = rejected[p];
            ASSERT(c >= 0 && c < n_rows && j >= 0 && j < n_rows && c != j);
            const double x = (double)r[c] - r[j] - margin, sum = (double)r[c] + r[j];
            group_loss += softplus(-x) + center * sum * sum;  // -log sigmoid(x) + center s^2
            const double w = 1.0 / ((double)n * n_groups);
            const double d = w / (1.0 + exp(x));  // sigmoid(-x) / (n G)
            const double dc = w * 2.0 * center * sum;
            dr[c] += (float)(dc - d);
            dr[j] += (float)(dc + d);
            correct += r[c] > r[j];
            gap += (double)r[c] - r[j];
        }
        loss += group_loss / n;
    }
    const int pairs = pair_off[n_groups];
    if (accuracy) *accuracy = (float)(correct / pairs);
    if (mean_margin) *mean_margin = (float)(gap / pairs);
    return (float)(loss / n_groups);
}

void seq_logprobs(double *logp, const float *logits, const int *targets,
                  const unsigned char *mask, int R, int T, int V) {
#pragma omp parallel for schedule(static) if (omp_worth((long)R * T * V))
    for (int r = 0; r < R; r++) {
        double sum = 0.0;
        for (int t = 0; t < T; t++) {
            const size_t n = (size_t)r * T + t;
            if (!mask[n]) continue;
            const float *row = logits + n * V;
            sum += (double)(row[targets[n]] - row_lse(row, V, 1.0f));
        }
        logp[r] = sum;
    }
}

void seq_logprobs_backward(float *dlogits, const float *logits, const int *targets,
                           const unsigned char *mask, const double *g, int R, int T, int V) {
    const long N = (long)R * T;
#pragma omp parallel for schedule(static) if (omp_worth(N * V))
    for (long n = 0; n < N; n++) {
        float *d = dlogits + (size_t)n * V;
        if (!mask[n]) {
            memset(d, 0, (size_t)V * sizeof(float));
            continue;
        }
        const float *row = logits + (size_t)n * V;
        const double lse = row_lse(row, V, 1.0f), gr = g[n / T];
        for (int j = 0; j < V; j++) d[j] = (float)(gr * ((j == targets[n]) - exp(row[j] - lse)));
    }
}

// sigmoid(x) without overflow
static double sigmoid(double x) {
    return x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x));
}

double dpo_loss(const double *pc, const double *pr, const double *rc, const double *rr,
                const double *nc, int n, const DpoParams *p, double *dpc, double *dpr,
                double *drc, double *drr, DpoStats *stats) {
    ASSERT(n > 0 && p->beta > 0 && p->rpo_alpha >= 0 && (nc || p->rpo_alpha == 0));
    const double beta = p->beta, eps = p->label_smoothing;
    double loss = 0.0;
    for (int i = 0; i < n; i++) {
        const double d = (pc[i] - rc[i]) - (pr[i] - rr[i]);
        double l, g;  // the pair's loss and d l / d d
        if (p->type == DPO_IPO) {
            const double e = d - 1.0 / (2.0 * beta);
            l = e * e;
            g = 2.0 * e;
        } else {
            // -log sigmoid(h) = softplus(-h); at eps = 0 the second terms are exact zeros
            const double h = beta * d;
            l = (1.0 - eps) * softplus(-h) + eps * softplus(h);
            g = beta * (eps * sigmoid(h) - (1.0 - eps) * sigmoid(-h));
        }
        // RPO: the chosen answer's NLL per token; exactly 0 when alpha is 0
        const double nll = nc ? -pc[i] / nc[i] : 0.0;
        double gc = g;
        if (p->rpo_alpha > 0) {
            l += p->rpo_alpha * nll;
            gc -= p->rpo_alpha / nc[i];
        }
        loss += l;
        g /= n;
        if (dpc) dpc[i] = gc / n;
        if (dpr) dpr[i] = -g;
        if (drc) drc[i] = -g;
        if (drr) drr[i] = g;
        if (stats) {
            const double wc = beta * (pc[i] - rc[i]), wr = beta * (pr[i] - rr[i]);
            stats->loss += l;
            stats->reward_chosen += wc;
            stats->reward_rejected += wr;
            stats->correct += wc > wr;
            stats->logp_chosen += pc[i];
            stats->logp_rejected += pr[i];
            stats->nll += nll;
            stats->pairs += 1.0;
        }
    }
    return loss / n;
}

float kl_k3(float logp, float ref_logp) {
    double d = (double)ref_logp - logp;
    return (float)(expm1(d) - d);
}

void gae(float *advantages, float *returns, const float *rewards, const float *values, int n,
         float gamma, float lam) {
    double next_value = 0.0, next_adv = 0.0;
    for (int t = n - 1; t >= 0; t--) {
        double delta = rewards[t] + gamma * next_value - values[t];
        next_adv = delta + gamma * lam * next_adv;
        advantages[t] = (float)next_adv;
        returns[t] = (float)(next_adv + values[t]);
        next_value = values[t];
    }
}

long whiten(float *x, const unsigned char *mask, long n, int shift_mean) {
    double sum = 0.0, sq = 0.0;
    long count = 0;
    for (long i = 0; i < n; i++) {
        if (mask && !mask[i]) continue;
        sum += x[i];
        count++;
    }
    if (count == 0) return 0;
    double mean = sum / count;
    for (long i = 0; i < n; i++) {
        if (mask && !mask[i]) continue;
        sq += (x[i] - mean) * (x[i] - mean);
    }
    double inv = 1.0 / sqrt(sq / count + 1e-8);
    for (long i = 0; i < n; i++) {
        if (mask && !mask[i]) continue;
        double v = (x[i] - mean) * inv;
        x[i] = (float)(shift_mean ? v : v + mean);
    }
    return count;
}

void kl_controller_update(KLController *kc, double kl, double n_steps) {
    double e = kl / kc->target - 1.0;
    e = e < -0.2 ? -0.2 : (e > 0.2 ? 0.2 : e);
    kc->coef *= 1.0 + e * n_steps / kc->horizon;
}

// ppo_policy_loss and ppo_policy_loss_kl: with kl_coef == 0 and norms ==
// NULL the arithmetic is ppo_policy_loss's, bit for bit.
static float clipped_policy_loss(float *dlogits, const float *logits, const int *actions,
                                 const float *old_logp, const float *advantages,
                                 const float *ref_logp, const unsigned char *mask, int N, int V,
                                 float temperature, float cliprange, float ent_coef,
                                 float kl_coef, const float *norms, double norm,
                                 PPOStats *stats) {
    const float inv_t = 1.0f / temperature;
    double loss = 0.0, ent = 0.0, clipped = 0.0, akl = 0.0, ratios = 0.0, tokens = 0.0;
    double kl = 0.0, weighted = 0.0;  // k3 sum; sum of l_t / norms[t]
    // rows are independent; the sums are combined in row order below
    for (int n = 0; n < N; n++) {
        float *d = dlogits + (size_t)n * V;
        if (!mask[n]) {
            memset(d, 0, (size_t)V * sizeof(float));
            continue;
        }
        const float *row = logits + (size_t)n * V;
        const int a = actions[n];
        float lse = row_lse(row, V, inv_t);
        float logp = row[a] * inv_t - lse;
        float h = row_entropy(row, V, inv_t, lse);
        double ratio = exp((double)logp - old_logp[n]);
        double A = advantages[n];
        double lo = 1.0 - cliprange, hi = 1.0 + cliprange;
        double r_clip = ratio < lo ? lo : (ratio > hi ? hi : ratio);
        double l1 = -A * ratio, l2 = -A * r_clip;
        // d loss_t / d logp: the unclipped branch carries the gradient;
        // where the clipped one is larger it is constant in logp
        double g = l1 >= l2 ? -A * ratio : 0.0;
        double lt = (l1 > l2 ? l1 : l2) - ent_coef * h;
        if (kl_coef != 0.0f) {
            // k3 = e^x - 1 - x with x = ref_logp - logp: d k3 / d logp = -(e^x - 1)
            double x = (double)ref_logp[n] - logp, k3 = expm1(x) - x;
            g -= kl_coef * expm1(x);
            kl += k3;
            lt += kl_coef * k3;
        }
        const double den = norms ? (double)norms[n] : norm;
        for (int j = 0; j < V; j++) {
            double lp = (double)(row[j] * inv_t - lse), p = exp(lp);
            double dz = g * ((j == a) - p) + ent_coef * p * (lp + h);
            d[j] = (float)(dz * inv_t / den);
        }
        loss += (l1 > l2 ? l1 : l2) - ent_coef * h;
        weighted += lt / den;
        ent += h;
        clipped += l2 > l1;
        akl += 0.5 * ((double)logp - old_logp[n]) * ((double)logp - old_logp[n]);
        ratios += ratio;
        tokens += 1.0;
    }
    if (stats) {
        stats->policy_loss += loss;
        stats->entropy += ent;
        stats->clipfrac += clipped;
        stats->approx_kl += akl;
        stats->ratio += ratios;
        stats->tokens += tokens;
        stats->kl_k3 += kl;
    }
    if (norms) return (float)weighted;
    return (float)(kl_coef != 0.0f ? (loss + kl_coef * kl) / norm : loss / norm);
}

float ppo_policy_loss(float *dlogits, const float *logits, const int *actions,
                      const float *old_logp, const float *advantages,
                      const unsigned char *mask, int N, int V, float temperature,
                      float cliprange, float ent_coef, double norm, PPOStats *stats) {
    return clipped_policy_loss(dlogits, logits, actions, old_logp, advantages, NULL, mask, N, V,
                               temperature, cliprange, ent_coef, 0.0f, NULL, norm, stats);
}

float ppo_policy_loss_kl(float *dlogits, const float *logits, const int *actions,
                         const float *old_logp, const float *advantages, const float *ref_logp,
                         const unsigned char *mask, int N, int V, float temperature,
                         float cliprange, float ent_coef, float kl_coef, const float *norms,
                         double norm, PPOStats *stats) {
    ASSERT(kl_coef == 0.0f || ref_logp);
    return clipped_policy_loss(dlogits, logits, actions, old_logp, advantages, ref_logp, mask, N,
                               V, temperature, cliprange, ent_coef, kl_coef, norms, norm, stats);
}

float ppo_value_loss(float *dvalues, const float *values, const float *old_values,
                     const float *returns, const unsigned char *mask, int N, float cliprange,
                     float vf_coef, double norm, PPOStats *stats) {
    double loss = 0.0, clipped = 0.0;
    for (int n = 0; n < N; n++) {
        if (!mask[n]) {
            dvalues[n] = 0.0f;
            continue;
        }
        double v = values[n], old = old_values[n], R = returns[n];
        double diff = v - old;
        int inside = diff > -cliprange && diff < cliprange;
        double v_clip = inside ? v : old + (diff < 0 ? -cliprange : cliprange);
        double l1 = (v - R) * (v - R), l2 = (v_clip - R) * (v_clip - R);
        double g = l1 >= l2 ? (v - R) : (inside ? (v_clip - R) : 0.0);
        dvalues[n] = (float)(vf_coef * g / norm);
        loss += 0.5 * (l1 > l2 ? l1 : l2);
        clipped += l2 > l1;
    }
    if (stats) {
        stats->value_loss += vf_coef * loss;
        stats->value_clipfrac += clipped;
    }
    return (float)(vf_coef * loss / norm);
}

// --- group methods -------------------------------------------------------------

// mean and sample std (count - 1; 0 for one value) of r[0..n)
static void mean_std(const float *r, int n, double *mean, double *std) {
    double s = 0.0, q = 0.0;
    for (int i = 0; i < n; i++) s += r[i];
    *mean = s / n;
    for (int i = 0; i < n; i++) q += (r[i] - *mean) * (r[i] - *mean);
    *std = n > 1 ? sqrt(q / (n - 1)) : 0.0;
}

void group_advantages(float *adv, const float *r, int n_groups, int G, int kind, int scale) {
    ASSERT(n_groups > 0 && G >= 1);
    ASSERT(kind == ADV_REINFORCE || (G >= 2 && (kind == ADV_GRPO || kind == ADV_RLOO)));
    const int n = n_groups * G;
    double batch_mean, batch_std;
    mean_std(r, n, &batch_mean, &batch_std);
    for (int g = 0; g < n_groups; g++) {
        const float *rg = r + (size_t)g * G;
        float *ag = adv + (size_t)g * G;
        double mean, std, sum = 0.0;
        mean_std(rg, G, &mean, &std);
        for (int i = 0; i < G; i++) sum += rg[i];
        for (int i = 0; i < G; i++) {
            double a;
            if (kind == ADV_GRPO) {
                double s = scale == GROUP_SCALE_GROUP ? std + GROUP_ADV_EPS
                         : scale == GROUP_SCALE_BATCH ? batch_std + GROUP_ADV_EPS : 1.0;
                a = (rg[i] - mean) / s;
            } else if (kind == ADV_RLOO) {
                a = rg[i] - (sum - rg[i]) / (G - 1);
            } else {
                a = rg[i] - batch_mean;
            }
            ag[i] = (float)a;
        }
    }
}

void group_reward_stats(const float *r, int n_groups, int G, GroupStats *st) {
    double std_sum = 0.0, flat = 0.0, mean, std;
    for (int g = 0; g < n_groups; g++) {
        const float *rg = r + (size_t)g * G;
        mean_std(rg, G, &mean, &std);
        std_sum += std;
        int same = 1;
        for (int i = 1; i < G; i++) same &= rg[i] == rg[0];
        flat += same;
    }
    mean_std(r, n_groups * G, &mean, &std);
    st->mean = mean;
    st->std = std_sum / n_groups;
    st->zero_spread = flat / n_groups;
}

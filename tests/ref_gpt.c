// Double-precision reference GPT (see ref_gpt.h): one token row at a time,
// naive loops, libm tanh/exp/log. Slow on purpose and simple enough to check
// by eye; used only by tests. Does no backward pass: tests differentiate it
// numerically.
#include "ref_gpt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#define REF_PI 3.14159265358979323846

void ref_rng_init(RefRng *r, uint64_t seed) { r->s = seed * 0x2545F4914F6CDD1DULL + 12345; }

static uint64_t ref_rng_next(RefRng *r) {
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

double ref_rng_uniform(RefRng *r) { return (double)(ref_rng_next(r) >> 11) / 9007199254740992.0; }

double ref_rng_normal(RefRng *r) {
    double u1 = 1.0 - ref_rng_uniform(r);  // (0, 1]
    double u2 = ref_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * REF_PI * u2);
}

int ref_rng_int(RefRng *r, int n) { return (int)(ref_rng_next(r) % (uint64_t)n); }

void ref_randomize_params(GPT *m, uint64_t seed) {
    RefRng r;
    ref_rng_init(&r, seed);
    const int C = m->config.n_embd;
    for (int p = 0; p < NUM_PARAM_TENSORS; p++) {
        const ParamInfo *pi = &m->info[p];
        float *w = m->params_memory + pi->offset;
        double mean = 0.0, std;
        if (p == PARAM_wte || p == PARAM_wpe) {
            std = 0.3;
        } else if (p == PARAM_vw) {
            std = 1.0 / sqrt((double)C);
        } else if (pi->ndim == 2) {
            std = 1.0 / sqrt((double)pi->cols);  // cols = fan-in ([out, in] storage)
        } else if (p == PARAM_ln1w || p == PARAM_ln2w || p == PARAM_lnfw) {
            mean = 1.0;
            std = 0.1;
        } else {
            std = 0.1;
        }
        for (size_t i = 0; i < pi->size; i++) w[i] = (float)(mean + std * ref_rng_normal(&r));
    }
    gpt_params_changed(m);
}

double *ref_params_to_double(const GPT *m) {
    double *d = mallocCheck(m->num_params * sizeof(double));
    for (size_t i = 0; i < m->num_params; i++) d[i] = m->params_memory[i];
    return d;
}

// Parameter tensor p of layer l (l = 0 for tensors that are not per layer).
static const double *P(const ParamInfo *info, const double *params, int p, int l) {
    const ParamInfo *pi = &info[p];
    return params + pi->offset + (size_t)l * pi->rows * pi->cols;
}

// y (n) = LayerNorm(x (n)) * w + b, biased variance, eps 1e-5 inside the sqrt
static void ref_layernorm(double *y, const double *x, const double *w, const double *b, int n) {
    double mu = 0.0, var = 0.0;
    for (int i = 0; i < n; i++) mu += x[i];
    mu /= n;
    for (int i = 0; i < n; i++) var += (x[i] - mu) * (x[i] - mu);
    var /= n;
    double inv = 1.0 / sqrt(var + 1e-5);
    for (int i = 0; i < n; i++) y[i] = (x[i] - mu) * inv * w[i] + b[i];
}

// y (out) = W (out, in) x (in) + b (out; may be NULL)
static void ref_linear(double *y, const double *x, const double *W, const double *b, int in,
                       int out) {
    for (int o = 0; o < out; o++) {
        double s = b ? b[o] : 0.0;
        for (int i = 0; i < in; i++) s += W[(size_t)o * in + i] * x[i];
        y[o] = s;
    }
}

static double ref_gelu(double x) {
    return 0.5 * x * (1.0 + tanh(sqrt(2.0 / REF_PI) * (x + 0.044715 * x * x * x)));
}

double ref_gpt_forward(const GPTConfig *c, const ParamInfo info[NUM_PARAM_TENSORS],
                       const double *params, const int *inputs, const int *targets,
                       const float *weights, int B, int T, double *logits, double *values) {
    const int L = c->n_layer, C = c->n_embd, NH = c->n_head, V = c->vocab_size;
    const int hs = C / NH;
    // residual stream x (T,C) and per-position keys/values of one sequence
    double *x = mallocCheck((size_t)T * C * sizeof(double));
    double *h = mallocCheck((size_t)T * C * sizeof(double));     // a LayerNorm output
    double *qkv = mallocCheck((size_t)T * 3 * C * sizeof(double));
    double *y = mallocCheck((size_t)T * C * sizeof(double));     // attention output
    double *tmp = mallocCheck((size_t)4 * C * sizeof(double));
    double *tmp2 = mallocCheck((size_t)4 * C * sizeof(double));
    double *p = mallocCheck((size_t)T * sizeof(double));
    double *lg = mallocCheck((size_t)V * sizeof(double));
    double loss = 0.0;

    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            int tok = inputs[b * T + t];
            for (int i = 0; i < C; i++)
                x[t * C + i] = P(info, params, PARAM_wte, 0)[(size_t)tok * C + i] +
                               P(info, params, PARAM_wpe, 0)[(size_t)t * C + i];
        }
        for (int l = 0; l < L; l++) {
            // attention block
            for (int t = 0; t < T; t++) {
                ref_layernorm(h + t * C, x + t * C, P(info, params, PARAM_ln1w, l),
                              P(info, params, PARAM_ln1b, l), C);
                ref_linear(qkv + t * 3 * C, h + t * C, P(info, params, PARAM_qkvw, l),
                           P(info, params, PARAM_qkvb, l), C, 3 * C);
            }
            for (int t = 0; t < T; t++) {
                for (int hd = 0; hd < NH; hd++) {
                    const double *q = qkv + t * 3 * C + hd * hs;
                    double mx = -INFINITY;
                    for (int j = 0; j <= t; j++) {  // causal: keys 0..t only
                        const double *k = qkv + j * 3 * C + C + hd * hs;
                        double s = 0.0;
                        for (int i = 0; i < hs; i++) s += q[i] * k[i];
                        p[j] = s / sqrt((double)hs);
                        if (p[j] > mx) mx = p[j];
                    }
                    double z = 0.0;
                    for (int j = 0; j <= t; j++) {
                        p[j] = exp(p[j] - mx);
                        z += p[j];
                    }
                    for (int i = 0; i < hs; i++) {
                        double s = 0.0;
                        for (int j = 0; j <= t; j++) s += p[j] / z * qkv[j * 3 * C + 2 * C + hd * hs + i];
                        y[t * C + hd * hs + i] = s;
                    }
                }
            }
            for (int t = 0; t < T; t++) {
                ref_linear(tmp, y + t * C, P(info, params, PARAM_attprojw, l),
                           P(info, params, PARAM_attprojb, l), C, C);
                for (int i = 0; i < C; i++) x[t * C + i] += tmp[i];
            }
            // MLP block
            for (int t = 0; t < T; t++) {
                ref_layernorm(h + t * C, x + t * C, P(info, params, PARAM_ln2w, l),
                              P(info, params, PARAM_ln2b, l), C);
                ref_linear(tmp, h + t * C, P(info, params, PARAM_fcw, l),
                           P(info, params, PARAM_fcb, l), C, 4 * C);
                for (int i = 0; i < 4 * C; i++) tmp[i] = ref_gelu(tmp[i]);
                ref_linear(tmp2, tmp, P(info, params, PARAM_fcprojw, l),
                           P(info, params, PARAM_fcprojb, l), 4 * C, C);
                for (int i = 0; i < C; i++) x[t * C + i] += tmp2[i];
            }
        }
        for (int t = 0; t < T; t++) {
            const int n = b * T + t;
            double *hf = h + t * C;
            ref_layernorm(hf, x + t * C, P(info, params, PARAM_lnfw, 0),
                          P(info, params, PARAM_lnfb, 0), C);
            // tied lm_head: logits = wte (V,C) @ hf
            ref_linear(lg, hf, P(info, params, PARAM_wte, 0), NULL, C, V);
            if (logits) memcpy(logits + (size_t)n * V, lg, (size_t)V * sizeof(double));
            if (values) {
                ASSERT(c->value_head);
                double s = P(info, params, PARAM_vb, 0)[0];
                for (int i = 0; i < C; i++) s += P(info, params, PARAM_vw, 0)[i] * hf[i];
                values[n] = s;
            }
            if (targets && targets[n] >= 0) {
                double mx = -INFINITY, z = 0.0;
                for (int j = 0; j < V; j++) mx = lg[j] > mx ? lg[j] : mx;
                for (int j = 0; j < V; j++) z += exp(lg[j] - mx);
                double ce = mx + log(z) - lg[targets[n]];
                double w = weights ? (double)weights[n] : 1.0 / ((double)B * T);
                loss += w * ce;
            }
        }
    }
    free(x);
    free(h);
    free(qkv);
    free(y);
    free(tmp);
    free(tmp2);
    free(p);
    free(lg);
    return loss;
}

int ref_check_direction(const char *what, const GPT *m, const double *params, const double *d,
                        double (*f)(const void *ctx, const double *x), const void *ctx) {
    return ref_check_direction_tol(what, m, params, d, f, ctx, 1e-4, 1e-6);
}

int ref_check_direction_tol(const char *what, const GPT *m, const double *params,
                            const double *d, double (*f)(const void *ctx, const double *x),
                            const void *ctx, double rtol, double atol) {
    const size_t P = m->num_params;
    const float *g = m->train->grads_memory;
    double *x = mallocCheck(P * sizeof(double));
    double gd = 0.0, g2 = 0.0, d2 = 0.0;
    for (size_t i = 0; i < P; i++) {
        if (d[i] == 0.0) continue;
        gd += (double)g[i] * d[i];
        g2 += (double)g[i] * g[i];
        d2 += d[i] * d[i];
    }
    const double e = 1e-3, steps[4] = {e, -e, 2 * e, -2 * e};
    double fs[4];
    for (int s = 0; s < 4; s++) {
        for (size_t i = 0; i < P; i++) x[i] = params[i] + steps[s] * d[i];
        fs[s] = f(ctx, x);
    }
    free(x);
    const double fd = (8.0 * (fs[0] - fs[1]) - (fs[2] - fs[3])) / (12.0 * e);
    const double err = fabs(gd - fd);
    const double allowed = rtol * fmax(fabs(gd), fabs(fd)) + atol * sqrt(g2 * d2);
    if (getenv("RLHF_TEST_VERBOSE"))
        fprintf(stderr, "  %-34s g.d %+.9e fd %+.9e |g| %.3e (%.3f of allowed)\n", what, gd, fd,
                sqrt(g2), err / allowed);
    if (!(err <= allowed)) {
        fprintf(stderr, "%s: gradient g.d = %.9e but finite difference %.9e (|g| = %.3e)\n",
                what, gd, fd, sqrt(g2));
        return 0;
    }
    return 1;
}

// GPT memory layout, initialisation, forward/backward wiring and KV-cached
// decoding. Layer math is in ops.c; see gpt.h for the contracts.
#include "gpt.h"

#include <math.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "bf16.h"
#include "common.h"
#include "ops.h"
#include "rng.h"

static Precision default_precision = PRECISION_FP32;
static int default_lm_head_fp32 = 1;

size_t gpt_param_layout(const GPTConfig *c, ParamInfo info[NUM_PARAM_TENSORS]) {
    const int V = c->vocab_size, T = c->block_size, C = c->n_embd, H = c->value_head != 0;
    const int L = c->n_layer;
    size_t offset = 0;
    int i = 0;
#define X(member, group_, name_, per_layer_, ndim_, rows_, cols_, present_)              \
    info[i] = (ParamInfo){.group = group_, .name = name_, .per_layer = per_layer_,       \
                          .ndim = ndim_, .rows = rows_, .cols = cols_, .offset = offset};  \
    info[i].size = (present_) ? (size_t)(rows_) * (cols_) * ((per_layer_) ? L : 1) : 0;  \
    offset += info[i].size;                                                              \
    i++;
    GPT_PARAMS(X)
#undef X
    (void)H;
    return offset;
}

void gpt_point_params(ParamTensors *t, float *memory, const ParamInfo info[NUM_PARAM_TENSORS]) {
#define X(member, ...) t->member = info[PARAM_##member].size ? memory + info[PARAM_##member].offset : NULL;
    GPT_PARAMS(X)
#undef X
}

void gpt_build(GPT *m, const GPTConfig *c) {
    ASSERT(c->n_layer > 0 && c->n_head > 0 && c->n_embd > 0 && c->n_embd % c->n_head == 0);
    ASSERT(c->block_size > 0 && c->vocab_size > 0);
    memset(m, 0, sizeof *m);
    m->config = *c;
    m->num_params = gpt_param_layout(c, m->info);
    m->params_memory = alignedCheck(m->num_params * sizeof(float));
    memset(m->params_memory, 0, m->num_params * sizeof(float));
    gpt_point_params(&m->params, m->params_memory, m->info);
    m->lm_head_fp32 = default_lm_head_fp32;
    if (default_precision != PRECISION_FP32) gpt_set_precision(m, default_precision);
}

void gpt_set_default_precision(Precision p) { default_precision = p; }
void gpt_set_default_lm_head_fp32(int on) { default_lm_head_fp32 = !!on; }
Precision gpt_default_precision(void) { return default_precision; }

void gpt_set_precision(GPT *m, Precision p) {
    free(m->params_bf16);
    m->params_bf16 = NULL;
    m->precision = p;
    if (p == PRECISION_BF16) {
        ASSERT(bf16_available());
        m->params_bf16 = alignedCheck(m->num_params * sizeof(bf16));
    }
    gpt_params_changed(m);
}

// The bf16 copy of weight w (a pointer into params_memory), rounded anew
// first when the parameters changed.
static const bf16 *weight_bf16(GPT *m, const float *w) {
    if (m->bf16_stale) {
        bf16_round(m->params_bf16, m->params_memory, m->num_params);
        m->bf16_stale = 0;
    }
    ASSERT(w >= m->params_memory && w < m->params_memory + m->num_params);
    return m->params_bf16 + (w - m->params_memory);
}

// The model's matrix products, in its precision (ops.h's contracts).
static void linear_forward(GPT *m, float *out, const float *add, const float *inp,
                           const float *w, const float *bias, int N, int C, int OC) {
    if (m->precision == PRECISION_BF16)
        matmul_forward_bf16(out, add, inp, weight_bf16(m, w), bias, N, C, OC);
    else
        matmul_forward(out, add, inp, w, bias, N, C, OC);
}

static void linear_backward(GPT *m, float *dinp, float *dw, float *dbias, const float *dout,
                            const float *inp, const float *w, int N, int C, int OC) {
    if (m->precision == PRECISION_BF16)
        matmul_backward_bf16(dinp, dw, dbias, dout, inp, weight_bf16(m, w), N, C, OC);
    else
        matmul_backward(dinp, dw, dbias, dout, inp, w, N, C, OC);
}

// The tied LM head's products, (N,C) hidden states against wte (V,C): in
// fp32 when the model keeps its head there (train.fp32_lm_head), else in the
// model's precision.
static void lm_head_forward(GPT *m, float *logits, const float *hidden, int N) {
    const int C = m->config.n_embd, V = m->config.vocab_size;
    if (m->lm_head_fp32) matmul_forward(logits, NULL, hidden, m->params.wte, NULL, N, C, V);
    else linear_forward(m, logits, NULL, hidden, m->params.wte, NULL, N, C, V);
}

static void lm_head_backward(GPT *m, float *dhidden, const float *dlogits, const float *hidden,
                             int N) {
    const int C = m->config.n_embd, V = m->config.vocab_size;
    float *dwte = m->train->grads.wte;
    if (m->lm_head_fp32)
        matmul_backward(dhidden, dwte, NULL, dlogits, hidden, m->params.wte, N, C, V);
    else
        linear_backward(m, dhidden, dwte, NULL, dlogits, hidden, m->params.wte, N, C, V);
}

void gpt_train_build(GPT *m) {
    ASSERT(m->params_memory && !m->train);  // gpt_build first, and only once
    GPTTrain *t = callocCheck(1, sizeof *t);
    t->grads_memory = alignedCheck(m->num_params * sizeof(float));
    memset(t->grads_memory, 0, m->num_params * sizeof(float));
    gpt_point_params(&t->grads, t->grads_memory, m->info);
    m->train = t;
}

void gpt_free(GPT *m) {
    if (m->train) {
        free(m->train->grads_memory);
        free(m->train->memory);
        free(m->train->inputs);
        free(m->train->pos0);
        free(m->train);
    }
    free(m->params_memory);
    free(m->params_bf16);
    free(m->acts_memory);
    memset(m, 0, sizeof *m);
}

void gpt_init_weights(GPT *m, unsigned long long seed) {
    const GPTConfig *c = &m->config;
    Rng rng;
    rng_init(&rng, seed);
    float resid_std = 0.02f / sqrtf(2.0f * c->n_layer);
    for (int p = 0; p < NUM_PARAM_TENSORS; p++) {
        const ParamInfo *pi = &m->info[p];
        float *w = m->params_memory + pi->offset;
        if (p == PARAM_vw || p == PARAM_vb) {
            memset(w, 0, pi->size * sizeof(float));
        } else if (pi->ndim == 2) {
            float std = (p == PARAM_attprojw || p == PARAM_fcprojw) ? resid_std : 0.02f;
            for (size_t i = 0; i < pi->size; i++) w[i] = std * rng_normal(&rng);
        } else {
            // LayerNorm weights start at 1, every bias at 0
            int is_ln_weight = p == PARAM_ln1w || p == PARAM_ln2w || p == PARAM_lnfw;
            for (size_t i = 0; i < pi->size; i++) w[i] = is_ln_weight ? 1.0f : 0.0f;
        }
    }
    gpt_params_changed(m);
}

size_t gpt_num_flop_params(const GPT *m) {
    return m->num_params - m->info[PARAM_wpe].size - m->info[PARAM_vw].size -
           m->info[PARAM_vb].size;
}

double gpt_flops_per_token(const GPT *m, int T) {
    const GPTConfig *c = &m->config;
    return 6.0 * (double)gpt_num_flop_params(m) + 12.0 * c->n_layer * (double)T * c->n_embd;
}

static int num_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

typedef struct {
    float **ptr;
    size_t n;  // floats; 0 leaves *ptr NULL
} ArenaPart;

// Points each part into *memory, every part on a 64-byte boundary (16
// floats), growing the arena (contents not kept) when it is too small.
static void arena_layout(float **memory, size_t *capacity, ArenaPart *parts, int nparts) {
    size_t total = 0;
    for (int i = 0; i < nparts; i++) total += (parts[i].n + 15) / 16 * 16;
    if (total > *capacity) {
        free(*memory);
        *memory = alignedCheck(total * sizeof(float));
        *capacity = total;
    }
    float *p = *memory;
    for (int i = 0; i < nparts; i++) {
        *parts[i].ptr = parts[i].n ? p : NULL;
        p += (parts[i].n + 15) / 16 * 16;
    }
}

// Lays the activation arena out for (B, T) with D layers kept.
static void acts_layout(GPT *m, int B, int T, int D, int with_logits) {
    const GPTConfig *c = &m->config;
    size_t C = c->n_embd, NH = c->n_head, V = c->vocab_size;
    size_t BT = (size_t)B * T, DBT = (size_t)D * BT;
    Activations *a = &m->acts;
    ArenaPart parts[] = {
        {&a->encoded, BT * C},
        {&a->ln1, DBT * C},
        {&a->ln1_mean, DBT},
        {&a->ln1_rstd, DBT},
        {&a->qkv, DBT * 3 * C},
        {&a->att, DBT * NH * T},
        {&a->atty, DBT * C},
        {&a->residual2, DBT * C},
        {&a->ln2, DBT * C},
        {&a->ln2_mean, DBT},
        {&a->ln2_rstd, DBT},
        {&a->fch, DBT * 4 * C},
        {&a->fch_gelu, DBT * 4 * C},
        {&a->residual3, DBT * C},
        {&a->lnf, BT * C},
        {&a->lnf_mean, BT},
        {&a->lnf_rstd, BT},
        {&a->logits, with_logits ? BT * V : 0},
        {&a->values, c->value_head ? BT : 0},
        {&a->losses, BT},
        {&a->dlosses, BT},
    };
    arena_layout(&m->acts_memory, &m->acts_capacity, parts, (int)(sizeof parts / sizeof parts[0]));
    m->B = B;
    m->T = T;
}

// Lays the training state's arena out for (B, T) and keeps a copy of the
// inputs (the embedding's backward reads them).
static void train_layout(GPT *m, const int *inputs, const int *pos0, int B, int T) {
    const GPTConfig *c = &m->config;
    GPTTrain *t = m->train;
    size_t C = c->n_embd, BT = (size_t)B * T;
    ArenaPart parts[] = {
        {&t->dresidual, BT * C},
        {&t->dln, BT * C},
        {&t->datty, BT * C},
        {&t->dqkv, BT * 3 * C},
        {&t->dfch, BT * 4 * C},
        {&t->datt, (size_t)num_threads() * T * T},
    };
    arena_layout(&t->memory, &t->capacity, parts, (int)(sizeof parts / sizeof parts[0]));
    if (BT > t->inputs_capacity) {  // pos0 needs B <= BT
        free(t->inputs);
        free(t->pos0);
        t->inputs = mallocCheck(BT * sizeof(int));
        t->pos0 = mallocCheck(BT * sizeof(int));
        t->inputs_capacity = BT;
    }
    memcpy(t->inputs, inputs, BT * sizeof(int));
    t->has_pos0 = pos0 != NULL;
    if (pos0) memcpy(t->pos0, pos0, (size_t)B * sizeof(int));
}

// The forward pass. keep: all L layers' activations stay for gpt_backward;
// else one layer's buffers serve every layer (layer l lives in slot l % D).
static void forward(GPT *m, const int *inputs, const int *pos0, int B, int T, int with_logits,
                    int keep) {
    const GPTConfig *c = &m->config;
    const int L = c->n_layer, C = c->n_embd, NH = c->n_head, V = c->vocab_size;
    ASSERT(T >= 1 && T <= c->block_size && B >= 1);
    for (int b = 0; pos0 && b < B; b++) ASSERT(pos0[b] >= 0 && pos0[b] <= c->block_size - T);
    ASSERT(!keep || m->train);
    for (long i = 0; i < (long)B * T; i++) ASSERT(inputs[i] >= 0 && inputs[i] < V);
    const int D = keep ? L : 1;
    acts_layout(m, B, T, D, with_logits);
    if (keep) train_layout(m, inputs, pos0, B, T);
    if (m->train) {
        m->train->kept = keep;
        m->train->dlogits = NULL;
    }
    const int N = B * T;
    const size_t NC = (size_t)N * C;
    Activations *a = &m->acts;
    ParamTensors *p = &m->params;

    encoder_forward(a->encoded, inputs, pos0, p->wte, p->wpe, B, T, C);
    for (int l = 0; l < L; l++) {
        const int k = l % D;
        const float *residual = l == 0 ? a->encoded : a->residual3 + (size_t)((l - 1) % D) * NC;
        float *ln1 = a->ln1 + k * NC, *qkv = a->qkv + k * 3 * NC, *atty = a->atty + k * NC;
        float *att = a->att + (size_t)k * B * NH * T * T;
        float *residual2 = a->residual2 + k * NC, *ln2 = a->ln2 + k * NC;
        float *fch = a->fch + k * 4 * NC, *fch_gelu = a->fch_gelu + k * 4 * NC;
        float *residual3 = a->residual3 + k * NC;

        layernorm_forward(ln1, a->ln1_mean + k * N, a->ln1_rstd + k * N, residual,
                          p->ln1w + l * C, p->ln1b + l * C, N, C);
        linear_forward(m, qkv, NULL, ln1, p->qkvw + (size_t)l * 3 * C * C, p->qkvb + l * 3 * C,
                       N, C, 3 * C);
        attention_forward(atty, att, qkv, B, T, C, NH);
        linear_forward(m, residual2, residual, atty, p->attprojw + (size_t)l * C * C,
                       p->attprojb + l * C, N, C, C);
        layernorm_forward(ln2, a->ln2_mean + k * N, a->ln2_rstd + k * N, residual2,
                          p->ln2w + l * C, p->ln2b + l * C, N, C);
        linear_forward(m, fch, NULL, ln2, p->fcw + (size_t)l * 4 * C * C, p->fcb + l * 4 * C, N,
                       C, 4 * C);
        gelu_forward(fch_gelu, fch, (long)N * 4 * C);
        linear_forward(m, residual3, residual2, fch_gelu, p->fcprojw + (size_t)l * 4 * C * C,
                       p->fcprojb + l * C, N, 4 * C, C);
    }
    layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, a->residual3 + (size_t)((L - 1) % D) * NC,
                      p->lnfw, p->lnfb, N, C);
    m->has_logits = with_logits;
    if (with_logits) lm_head_forward(m, a->logits, a->lnf, N);
    if (c->value_head) value_forward(a->values, a->lnf, p->vw, p->vb, N, C);
}

void gpt_forward(GPT *m, const int *inputs, int B, int T, int with_logits) {
    forward(m, inputs, NULL, B, T, with_logits, m->train != NULL);
}

void gpt_forward_at(GPT *m, const int *inputs, const int *pos0, int B, int T, int with_logits) {
    forward(m, inputs, pos0, B, T, with_logits, m->train != NULL);
}

void gpt_forward_nograd(GPT *m, const int *inputs, int B, int T, int with_logits) {
    forward(m, inputs, NULL, B, T, with_logits, 0);
}

float gpt_lm_loss(GPT *m, const int *targets, const float *weights) {
    ASSERT(m->has_logits);  // a forward with logits, not yet turned into a gradient
    const int N = m->B * m->T, V = m->config.vocab_size;
    Activations *a = &m->acts;
    for (int n = 0; n < N; n++) a->dlosses[n] = weights ? weights[n] : 1.0f / N;
    if (m->train && m->train->kept)
        crossentropy_fused(a->losses, gpt_logits_to_grad(m), targets, a->dlosses, N, V);
    else
        crossentropy_forward(a->losses, a->logits, targets, N, V);
    double loss = 0.0;
    for (int n = 0; n < N; n++)
        if (targets[n] >= 0) loss += (double)a->dlosses[n] * a->losses[n];
    return (float)loss;
}

float *gpt_logits_to_grad(GPT *m) {
    ASSERT(m->train && m->train->kept);  // after a gpt_forward of a model being trained
    ASSERT(m->has_logits);               // with logits, not yet handed over
    m->has_logits = 0;
    m->train->dlogits = m->acts.logits;
    return m->acts.logits;
}

void gpt_zero_grad(GPT *m) {
    ASSERT(m->train);  // gpt_train_build first
    memset(m->train->grads_memory, 0, m->num_params * sizeof(float));
}

void gpt_backward(GPT *m, const float *dlogits, const float *dvalues) {
    const GPTConfig *c = &m->config;
    const int L = c->n_layer, C = c->n_embd, NH = c->n_head;
    const int B = m->B, T = m->T, N = B * T;
    const size_t NC = (size_t)N * C;
    GPTTrain *s = m->train;
    ASSERT(s && s->kept);  // a model with a training state, after a forward
    ASSERT(!dlogits || m->acts.logits);  // the forward computed logits (lnf feeds the head)
    ASSERT(!dvalues || c->value_head);
    const Activations *a = &m->acts;
    const ParamTensors *p = &m->params, *g = &s->grads;

    // heads -> dln = d loss / d lnf
    float *dlnf = s->dln;
    if (dlogits)
        lm_head_backward(m, dlnf, dlogits, a->lnf, N);
    else
        memset(dlnf, 0, NC * sizeof(float));
    if (dvalues) value_backward(dlnf, g->vw, g->vb, dvalues, a->lnf, p->vw, N, C);

    float *dres = s->dresidual;  // gradient of the residual stream, walked down
    memset(dres, 0, NC * sizeof(float));
    layernorm_backward(dres, g->lnfw, g->lnfb, dlnf, a->residual3 + (L - 1) * NC, p->lnfw,
                       a->lnf_mean, a->lnf_rstd, N, C);

    for (int l = L - 1; l >= 0; l--) {
        const float *residual = l == 0 ? a->encoded : a->residual3 + (l - 1) * NC;
        const float *ln1 = a->ln1 + l * NC, *qkv = a->qkv + l * 3 * NC;
        const float *atty = a->atty + l * NC, *att = a->att + (size_t)l * B * NH * T * T;
        const float *residual2 = a->residual2 + l * NC, *ln2 = a->ln2 + l * NC;
        const float *fch = a->fch + l * 4 * NC, *fch_gelu = a->fch_gelu + l * 4 * NC;

        // MLP block: dres holds d residual3
        linear_backward(m, s->dfch, g->fcprojw + (size_t)l * 4 * C * C, g->fcprojb + l * C, dres,
                        fch_gelu, p->fcprojw + (size_t)l * 4 * C * C, N, 4 * C, C);
        gelu_backward(s->dfch, fch, s->dfch, (long)N * 4 * C);
        linear_backward(m, s->dln, g->fcw + (size_t)l * 4 * C * C, g->fcb + l * 4 * C, s->dfch,
                        ln2, p->fcw + (size_t)l * 4 * C * C, N, C, 4 * C);
        layernorm_backward(dres, g->ln2w + l * C, g->ln2b + l * C, s->dln, residual2,
                           p->ln2w + l * C, a->ln2_mean + l * N, a->ln2_rstd + l * N, N, C);
        // attention block: dres now holds d residual2
        linear_backward(m, s->datty, g->attprojw + (size_t)l * C * C, g->attprojb + l * C, dres,
                        atty, p->attprojw + (size_t)l * C * C, N, C, C);
        attention_backward(s->dqkv, s->datt, s->datty, qkv, att, B, T, C, NH);
        linear_backward(m, s->dln, g->qkvw + (size_t)l * 3 * C * C, g->qkvb + l * 3 * C, s->dqkv,
                        ln1, p->qkvw + (size_t)l * 3 * C * C, N, C, 3 * C);
        layernorm_backward(dres, g->ln1w + l * C, g->ln1b + l * C, s->dln, residual,
                           p->ln1w + l * C, a->ln1_mean + l * N, a->ln1_rstd + l * N, N, C);
    }
    encoder_backward(g->wte, g->wpe, dres, s->inputs, s->has_pos0 ? s->pos0 : NULL, B, T, C);
}

void kvcache_build(KVCache *kv, const GPTConfig *c, int B, int T) {
    ASSERT(B >= 1 && T >= 1 && T <= c->block_size);
    memset(kv, 0, sizeof *kv);
    kv->L = c->n_layer;
    kv->B = B;
    kv->T = T;
    kv->C = c->n_embd;
    size_t C = c->n_embd, cache = (size_t)c->n_layer * B * T * C;
    kv->k = alignedCheck(cache * sizeof(float));
    kv->v = alignedCheck(cache * sizeof(float));
    kv->x = alignedCheck((size_t)B * C * sizeof(float));
    kv->ln = alignedCheck((size_t)B * C * sizeof(float));
    kv->qkv = alignedCheck((size_t)B * 3 * C * sizeof(float));
    kv->atty = alignedCheck((size_t)B * C * sizeof(float));
    kv->fch = alignedCheck((size_t)B * 4 * C * sizeof(float));
    kv->att = alignedCheck((size_t)B * c->n_head * T * sizeof(float));
    kv->stats = alignedCheck((size_t)2 * B * sizeof(float));
    kv->hidden = alignedCheck((size_t)B * C * sizeof(float));
    kv->logits = alignedCheck((size_t)B * c->vocab_size * sizeof(float));
}

void kvcache_free(KVCache *kv) {
    float *bufs[] = {kv->k,    kv->v,   kv->x,     kv->ln,     kv->qkv,   kv->atty,
                     kv->fch,  kv->att, kv->stats, kv->hidden, kv->logits};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    memset(kv, 0, sizeof *kv);
}

// Attention of one new query per row against cached keys/values [0, pos].
static void attention_decode(float *out, float *att, const float *qkv, const float *kc,
                             const float *vc, int B, int T, int C, int NH, int pos) {
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel for collapse(2) schedule(static) if (omp_worth((long)B * (pos + 1) * C))
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            const float *q = qkv + (size_t)b * 3 * C + h * hs;
            float *s = att + ((size_t)b * NH + h) * T;
            float mx = -INFINITY;
            for (int j = 0; j <= pos; j++) {
                const float *k = kc + ((size_t)b * T + j) * C + h * hs;
                float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
                for (int i = 0; i < hs; i++) dot += q[i] * k[i];
                s[j] = dot * scale;
                mx = s[j] > mx ? s[j] : mx;
            }
#pragma omp simd
            for (int j = 0; j <= pos; j++) s[j] = fast_expf(s[j] - mx);
            float sum = 0.0f;  // in order
            for (int j = 0; j <= pos; j++) sum += s[j];
            float *o = out + (size_t)b * C + h * hs;
            for (int i = 0; i < hs; i++) o[i] = 0.0f;
            for (int j = 0; j <= pos; j++) {
                const float *v = vc + ((size_t)b * T + j) * C + h * hs;
                float w = s[j] / sum;
#pragma omp simd
                for (int i = 0; i < hs; i++) o[i] += w * v[i];
            }
        }
    }
}

// One decode step for cache rows [b0, b0 + nb); the other rows are not read
// or written, so threads may run disjoint ranges at once.
static void decode_rows(GPT *m, KVCache *kv, const int *tokens, int pos, int b0, int nb) {
    const GPTConfig *c = &m->config;
    const int L = c->n_layer, C = c->n_embd, NH = c->n_head, V = c->vocab_size, B = kv->B;
    const int T = kv->T;
    ParamTensors *p = &m->params;
    float *x = kv->x + (size_t)b0 * C, *ln = kv->ln + (size_t)b0 * C;
    float *qkv = kv->qkv + (size_t)b0 * 3 * C, *atty = kv->atty + (size_t)b0 * C;
    float *fch = kv->fch + (size_t)b0 * 4 * C, *att = kv->att + (size_t)b0 * NH * T;
    float *mean = kv->stats + b0, *rstd = kv->stats + B + b0;
    for (int b = 0; b < nb; b++) {
        const int tok = tokens[b0 + b];
        ASSERT(tok >= 0 && tok < V);
        const float *we = p->wte + (size_t)tok * C, *pe = p->wpe + (size_t)pos * C;
        for (int i = 0; i < C; i++) x[(size_t)b * C + i] = we[i] + pe[i];
    }
    for (int l = 0; l < L; l++) {
        float *kc = kv->k + ((size_t)l * B + b0) * T * C;
        float *vc = kv->v + ((size_t)l * B + b0) * T * C;
        layernorm_forward(ln, mean, rstd, x, p->ln1w + l * C, p->ln1b + l * C, nb, C);
        linear_forward(m, qkv, NULL, ln, p->qkvw + (size_t)l * 3 * C * C, p->qkvb + l * 3 * C,
                       nb, C, 3 * C);
        for (int b = 0; b < nb; b++) {
            memcpy(kc + ((size_t)b * T + pos) * C, qkv + (size_t)b * 3 * C + C,
                   (size_t)C * sizeof(float));
            memcpy(vc + ((size_t)b * T + pos) * C, qkv + (size_t)b * 3 * C + 2 * C,
                   (size_t)C * sizeof(float));
        }
        attention_decode(atty, att, qkv, kc, vc, nb, T, C, NH, pos);
        linear_forward(m, x, x, atty, p->attprojw + (size_t)l * C * C, p->attprojb + l * C, nb,
                       C, C);
        layernorm_forward(ln, mean, rstd, x, p->ln2w + l * C, p->ln2b + l * C, nb, C);
        linear_forward(m, fch, NULL, ln, p->fcw + (size_t)l * 4 * C * C, p->fcb + l * 4 * C, nb,
                       C, 4 * C);
        gelu_forward(fch, fch, (long)nb * 4 * C);
        linear_forward(m, x, x, fch, p->fcprojw + (size_t)l * 4 * C * C, p->fcprojb + l * C, nb,
                       4 * C, C);
    }
    float *hidden = kv->hidden + (size_t)b0 * C;
    layernorm_forward(hidden, mean, rstd, x, p->lnfw, p->lnfb, nb, C);
    lm_head_forward(m, kv->logits + (size_t)b0 * V, hidden, nb);
}

void kvcache_move_row(KVCache *kv, int dst, int src, int npos) {
    ASSERT(dst >= 0 && dst < kv->B && src >= 0 && src < kv->B && npos >= 0 && npos <= kv->T);
    if (dst == src) return;
    const size_t row = (size_t)kv->T * kv->C, n = (size_t)npos * kv->C * sizeof(float);
    for (int l = 0; l < kv->L; l++) {
        const size_t layer = (size_t)l * kv->B * row;
        memcpy(kv->k + layer + dst * row, kv->k + layer + src * row, n);
        memcpy(kv->v + layer + dst * row, kv->v + layer + src * row, n);
    }
}

void gpt_decode_step(GPT *m, KVCache *kv, const int *tokens, int pos) {
    gpt_decode_rows(m, kv, tokens, pos, kv->B);
}

void gpt_decode_rows(GPT *m, KVCache *kv, const int *tokens, int pos, int n) {
    const GPTConfig *c = &m->config;
    ASSERT(pos >= 0 && pos < kv->T && kv->C == c->n_embd && kv->L == c->n_layer);
    ASSERT(n >= 1 && n <= kv->B);
    // In fp32 the threads split the rows, each running the whole step on its
    // share with one-thread products: a step's products are too small to
    // split well, and each split costs a wake-up and a barrier. The split
    // depends on n and the thread count alone, so the bits do too. bf16 runs
    // the step whole: oneDNN is called outside parallel regions.
    if (m->precision == PRECISION_FP32 && n >= 2 && num_threads() > 1) {
#pragma omp parallel
        {
            int b0, b1;
            thread_range(n, &b0, &b1);
            if (b1 > b0) decode_rows(m, kv, tokens, pos, b0, b1 - b0);
        }
    } else {
        decode_rows(m, kv, tokens, pos, 0, n);
    }
}

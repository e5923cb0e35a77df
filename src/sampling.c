// Token choice and batched generation; see sampling.h.
#include "sampling.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

void sampler_build(Sampler *s, int V) {
    s->V = V;
    s->probs = mallocCheck((size_t)V * sizeof(float));
    s->idx = mallocCheck((size_t)V * sizeof(int));
}

void sampler_free(Sampler *s) {
    free(s->probs);
    free(s->idx);
    memset(s, 0, sizeof *s);
}

void token_stream_build(TokenStream *s, const GPTConfig *c, int T, SamplerParams sp,
                        uint64_t seed) {
    s->sp = sp;
    rng_init(&s->rng, seed);
    kvcache_build(&s->kv, c, 1, T);
    sampler_build(&s->smp, c->vocab_size);
}

void token_stream_free(TokenStream *s) {
    sampler_free(&s->smp);
    kvcache_free(&s->kv);
}

static const float *sort_probs;  // qsort has no context argument

// descending probability, ascending id on ties: a total order, so the
// result does not depend on the sort algorithm
static int by_prob_desc(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    if (sort_probs[i] != sort_probs[j]) return sort_probs[i] > sort_probs[j] ? -1 : 1;
    return (i > j) - (i < j);
}

int sample_token(Sampler *s, const float *logits, const SamplerParams *sp, Rng *rng) {
    const int V = s->V;
    if (sp->temperature <= 0.0f) {
        int best = 0;
        for (int i = 1; i < V; i++)
            if (logits[i] > logits[best]) best = i;
        return best;
    }
    float *p = s->probs;
    float mx = -INFINITY;
    for (int i = 0; i < V; i++) mx = logits[i] > mx ? logits[i] : mx;
    double sum = 0.0;
    for (int i = 0; i < V; i++) {
        p[i] = expf((logits[i] - mx) / sp->temperature);
        sum += p[i];
    }
    for (int i = 0; i < V; i++) p[i] = (float)(p[i] / sum);
    float u = rng_float(rng);
    int k = V;
    if ((sp->top_k > 0 && sp->top_k < V) || sp->top_p < 1.0f) {
        int *idx = s->idx;
        for (int i = 0; i < V; i++) idx[i] = i;
        sort_probs = p;
        qsort(idx, (size_t)V, sizeof(int), by_prob_desc);
        if (sp->top_k > 0 && sp->top_k < k) k = sp->top_k;
        double mass = 0.0;
        if (sp->top_p < 1.0f) {
            for (int i = 0; i < k; i++) {
                mass += p[idx[i]];
                if (mass >= sp->top_p) {
                    k = i + 1;
                    break;
                }
            }
        }
        mass = 0.0;
        for (int i = 0; i < k; i++) mass += p[idx[i]];
        double target = u * mass, cdf = 0.0;
        for (int i = 0; i < k; i++) {
            cdf += p[idx[i]];
            if (target < cdf) return idx[i];
        }
        return idx[k - 1];
    }
    double cdf = 0.0;
    for (int i = 0; i < V; i++) {
        cdf += p[i];
        if (u < cdf) return i;
    }
    // rounding left u above the total: take the last token with mass
    for (int i = V - 1; i > 0; i--)
        if (p[i] > 0.0f) return i;
    return 0;
}

// generate and generate_rows: row b draws from rng[per_row ? b : 0].
static void generate_impl(GPT *m, KVCache *kv, Sampler *s, const int *const *prompts,
                          const int *lens, int B, int max_new, int eot, const SamplerParams *sp,
                          Rng *rng, int per_row, int *out, int *out_len) {
    int max_len = 0;
    for (int b = 0; b < B; b++) {
        ASSERT(lens[b] >= 1);
        max_len = lens[b] > max_len ? lens[b] : max_len;
    }
    ASSERT(B <= kv->B && max_len + max_new - 1 <= kv->T);
    const int V = m->config.vocab_size;
    int *feed = mallocCheck((size_t)kv->B * sizeof(int));
    int *done = callocCheck((size_t)B, sizeof(int));
    // Finished rows leave the batch: row b decodes in cache row slot[b]
    // (-1 once it has left), row_at maps back, and the first n cache rows
    // are the ones still decoding. A row that finishes hands its cache row
    // to the last one, whose cache moves in.
    int *slot = mallocCheck((size_t)B * sizeof(int));
    int *row_at = mallocCheck((size_t)B * sizeof(int));
    for (int b = 0; b < B; b++) slot[b] = row_at[b] = b;
    for (int i = 0; i < B * max_new; i++) out[i] = -1;
    for (int b = 0; b < B; b++) out_len[b] = 0;
    int n = B;
    // Each row feeds its prompt, then its own samples; every row shares the
    // position, so one decode step serves all. A row's first sample comes
    // from the logits after its last prompt token. Rows sample in row order,
    // whatever their cache rows, so a shared rng is drawn in the same order.
    for (int pos = 0; n > 0 && pos < max_len + max_new - 1; pos++) {
        for (int i = 0; i < n; i++) {
            const int b = row_at[i];
            feed[i] = pos < lens[b] ? prompts[b][pos] : out[b * max_new + out_len[b] - 1];
        }
        gpt_decode_rows(m, kv, feed, pos, n);
        for (int b = 0; b < B; b++) {
            if (done[b] || pos < lens[b] - 1) continue;
            const float *logits = kv->logits + (size_t)slot[b] * V;
            int tok = sample_token(s, logits, sp, per_row ? rng + b : rng);
            out[b * max_new + out_len[b]++] = tok;
            if ((eot >= 0 && tok == eot) || out_len[b] == max_new) done[b] = 1;
        }
        for (int b = 0; b < B; b++) {
            if (!done[b] || slot[b] < 0) continue;
            const int free_row = slot[b], last = row_at[n - 1];
            kvcache_move_row(kv, free_row, n - 1, pos + 1);
            row_at[free_row] = last;
            slot[last] = free_row;
            slot[b] = -1;
            n--;
        }
    }
    free(feed);
    free(done);
    free(slot);
    free(row_at);
}

void generate(GPT *m, KVCache *kv, Sampler *s, const int *const *prompts, const int *lens,
              int B, int max_new, int eot, const SamplerParams *sp, Rng *rng, int *out,
              int *out_len) {
    generate_impl(m, kv, s, prompts, lens, B, max_new, eot, sp, rng, 0, out, out_len);
}

void generate_rows(GPT *m, KVCache *kv, Sampler *s, const int *const *prompts, const int *lens,
                   int B, int max_new, int eot, const SamplerParams *sp, Rng *rngs, int *out,
                   int *out_len) {
    generate_impl(m, kv, s, prompts, lens, B, max_new, eot, sp, rngs, 1, out, out_len);
}

// Choosing tokens from logits (greedy, temperature, top-k, top-p) and batched
// generation with the KV cache. Used by `sample`, `chat`, `eval` and PPO
// rollouts alike.
#ifndef RLHF_SAMPLING_H
#define RLHF_SAMPLING_H

#include "gpt.h"
#include "rng.h"

typedef struct {
    float temperature;  // 0 = greedy (argmax, lowest id on ties)
    int top_k;          // keep the k most likely tokens; 0 = off
    float top_p;        // keep the smallest set with this much mass; 1 = off
} SamplerParams;

// Scratch for sample_token: V floats and V ints. init/free pair.
typedef struct {
    int V;
    float *probs;
    int *idx;
} Sampler;

void sampler_build(Sampler *s, int V);
void sampler_free(Sampler *s);

// Draws one token id from logits (V). Consumes exactly one rng_float unless
// greedy, so runs with equal seeds stay in step.
int sample_token(Sampler *s, const float *logits, const SamplerParams *sp, Rng *rng);

// One stream of tokens from one model (`sample`, `chat`): the sampling
// settings and their RNG, a one-row KV cache of T positions, and the
// sampler's scratch. build/free pair.
typedef struct {
    SamplerParams sp;
    Rng rng;
    KVCache kv;
    Sampler smp;
} TokenStream;

void token_stream_build(TokenStream *s, const GPTConfig *c, int T, SamplerParams sp,
                        uint64_t seed);
void token_stream_free(TokenStream *s);
// The next token, drawn from the logits of the last gpt_decode_step on s->kv.
static inline int token_stream_sample(TokenStream *s) {
    return sample_token(&s->smp, s->kv.logits, &s->sp, &s->rng);
}

// Generates up to max_new tokens after each of B prompts, all rows in
// lockstep through kv (built for at least B rows and max(lens)+max_new-1
// positions). prompts[b] has lens[b] >= 1 tokens. A row stops after it
// emits `eot` (when eot >= 0); the eot token is kept in its output.
// out (B,max_new) receives the tokens (rest of a row filled with -1) and
// out_len[b] how many were generated. Rows are sampled in order b = 0..B-1
// at each step from the one rng.
void generate(GPT *m, KVCache *kv, Sampler *s, const int *const *prompts, const int *lens,
              int B, int max_new, int eot, const SamplerParams *sp, Rng *rng, int *out,
              int *out_len);

// generate with one stream per row: rngs[b] (B of them) draws row b's
// tokens, so that a row's response does not depend on the other rows of
// the batch (nor on how a batch is split across processes).
void generate_rows(GPT *m, KVCache *kv, Sampler *s, const int *const *prompts, const int *lens,
                   int B, int max_new, int eot, const SamplerParams *sp, Rng *rngs, int *out,
                   int *out_len);

#endif

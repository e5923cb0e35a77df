// Task accuracy and reward scoring over held-out data; see evaluate.h.
#include "evaluate.h"

#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "common.h"
#include "sampling.h"

void evaluate_tasks(GPT *m, const Tokenizer *tok, const char *const *prompts,
                    const char *const *families, long n, int max_new, int batch,
                    TasksTally *tally, char **responses, int *ended) {
    const int T = m->config.block_size;
    if (max_new > T - 2) max_new = T - 2;
    KVCache kv;
    kvcache_build(&kv, &m->config, batch, T);
    Sampler smp;
    sampler_build(&smp, m->config.vocab_size);
    SamplerParams greedy = {0.0f, 0, 1.0f};
    Rng rng;
    rng_init(&rng, 0);  // unused by greedy decoding
    int *ids = mallocCheck((size_t)batch * T * sizeof(int));
    const int **rows = mallocCheck((size_t)batch * sizeof(int *));
    int *lens = mallocCheck((size_t)batch * sizeof(int));
    long *which = mallocCheck((size_t)batch * sizeof(long));
    int *out = mallocCheck((size_t)batch * max_new * sizeof(int));
    int *out_len = mallocCheck((size_t)batch * sizeof(int));
    long i = 0;
    while (i < n) {
        int b = 0, longest = 0;
        // fill a batch with prompts that leave room for max_new tokens
        for (; i < n && b < batch; i++) {
            long len = chat_encode_prompt(tok, prompts[i], ids + (size_t)b * T, T);
            if (responses) responses[i] = NULL;
            if (ended) ended[i] = 0;
            if (len < 0 || len + max_new > T) {
                tally->ungraded++;
                continue;
            }
            rows[b] = ids + (size_t)b * T;
            lens[b] = (int)len;
            which[b] = i;
            longest = len > longest ? (int)len : longest;
            b++;
        }
        if (b == 0) break;
        int room = T - longest + 1 < max_new ? T - longest + 1 : max_new;
        generate(m, &kv, &smp, rows, lens, b, room, tok->eot, &greedy, &rng, out, out_len);
        for (int r = 0; r < b; r++) {
            int k = out_len[r];
            int has_eot = k > 0 && out[r * room + k - 1] == tok->eot;
            if (has_eot) k--;  // graded text excludes it
            if (ended) ended[which[r]] = has_eot;
            char *text = tokenizer_decode(tok, out + (size_t)r * room, k, 0);
            tasks_tally_add(tally, families[which[r]], prompts[which[r]], text);
            if (responses) responses[which[r]] = text;
            else free(text);
        }
    }
    free(ids);
    free(rows);
    free(lens);
    free(which);
    free(out);
    free(out_len);
    sampler_free(&smp);
    kvcache_free(&kv);
}

void values_at(const GPT *m, const int *last, float *out) {
    for (int b = 0; b < m->B; b++) out[b] = m->acts.values[(size_t)b * m->T + last[b]];
}

void reward_scores(GPT *rm, const Tokenizer *tok, const char *const *prompts,
                   const char *const *responses, const int *no_eot, long n, int batch,
                   float *scores, long *n_truncated) {
    const int T = rm->config.block_size;
    ASSERT(rm->config.value_head);
    int *ids = mallocCheck((size_t)batch * T * sizeof(int));
    int *inputs = mallocCheck((size_t)batch * T * sizeof(int));
    int *last = mallocCheck((size_t)batch * sizeof(int));
    if (n_truncated) *n_truncated = 0;
    for (long i0 = 0; i0 < n; i0 += batch) {
        int b = (int)(n - i0 < batch ? n - i0 : batch), longest = 1;
        for (int r = 0; r < b; r++) {
            long len = chat_encode_pair(tok, prompts[i0 + r], responses[i0 + r],
                                        no_eot ? no_eot[i0 + r] : 0, ids + (size_t)r * T, T);
            if (len < 0) len = 1;  // unencodable text: score a stub, never crash
            if (len > T) {
                len = T;
                if (n_truncated) (*n_truncated)++;
            }
            last[r] = (int)len - 1;
            longest = len > longest ? (int)len : longest;
        }
        // right-pad every row to the longest in this batch
        for (int r = 0; r < b; r++)
            for (int t = 0; t < longest; t++)
                inputs[r * longest + t] = t <= last[r] ? ids[(size_t)r * T + t] : tok->pad;
        gpt_forward(rm, inputs, b, longest, 0);
        values_at(rm, last, scores + i0);
    }
    free(ids);
    free(inputs);
    free(last);
}

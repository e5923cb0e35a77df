// rlhf sample CKPT [--prompt TEXT] [--max_new_tokens N] [--temperature T]
//                  [--top_k K] [--top_p P] [--seed S] [--num_samples N]
// Streams text from a checkpoint with the KV cache. Options are the keys of
// the [sample] config section. Generation longer than the context keeps
// going: the cache is refilled from the last half-context of tokens.
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "common.h"
#include "config.h"
#include "gpt.h"
#include "run.h"
#include "sampling.h"
#include "tokenizer.h"

int cmd_sample(int argc, char **argv) {
    Config cfg;
    config_init(&cfg);
    const char *ckpt = NULL;
    if (parse_options(&cfg, "sample", argc, argv, &ckpt, 1) != 1)
        die("usage: rlhf sample CKPT [--prompt TEXT] [--max_new_tokens N] [--temperature T] "
            "[--top_k K] [--top_p P] [--seed S] [--num_samples N]");
    if (config_validate(&cfg) != 0) die_last();
    GPT m;
    Tokenizer tok = {0};
    if (load_model_file(ckpt, &m, 0, &tok, NULL) != 0) die_last();
    const int T = m.config.block_size, V = m.config.vocab_size;

    const char *prompt = cfg.sample.prompt;
    size_t plen = strlen(prompt);
    int *ids = mallocCheck(((size_t)T + 1) * sizeof(int));
    int n;
    if (plen == 0) {
        ids[0] = tok.eot;  // an empty prompt starts a fresh document
        n = 1;
    } else {
        long total = tokenizer_encode(&tok, (const uint8_t *)prompt, plen, ids, T);
        if (total < 0) die_last();
        if (total >= T)
            die("prompt is %ld tokens, the context holds %d with room to generate; hint: "
                "shorten the prompt", total, T);
        n = (int)total;
    }
    SamplerParams sp = {(float)cfg.sample.temperature, (int)cfg.sample.top_k,
                        (float)cfg.sample.top_p};
    Rng rng;
    rng_init(&rng, (uint64_t)cfg.sample.seed);
    KVCache kv;
    kvcache_build(&kv, &m.config, 1, T);
    Sampler smp;
    sampler_build(&smp, V);
    int *window = mallocCheck((size_t)T * sizeof(int));
    for (int s = 0; s < cfg.sample.num_samples; s++) {
        if (s > 0) printf("\n---\n");
        if (plen) fwrite(prompt, 1, plen, stdout);
        // ctx: the tokens in the cache; refilled from the tail when full
        int len = n;
        memcpy(window, ids, (size_t)n * sizeof(int));
        int pos = 0;
        for (int64_t g = 0; g < cfg.sample.max_new_tokens; g++) {
            for (; pos < len; pos++) gpt_decode_step(&m, &kv, &window[pos], pos);
            int next = sample_token(&smp, kv.logits, &sp, &rng);
            if (next == tok.eot) break;
            int blen;
            const uint8_t *bytes = tokenizer_token_bytes(&tok, next, &blen);
            if (next != tok.pad && next != tok.user && next != tok.assistant)
                fwrite(bytes, 1, (size_t)blen, stdout);
            fflush(stdout);
            if (len == T) {  // context full: keep the last half and re-prefill
                int keep = T / 2;
                memmove(window, window + len - keep, (size_t)keep * sizeof(int));
                len = keep;
                pos = 0;
            }
            window[len++] = next;
        }
        printf("\n");
    }
    free(window);
    free(ids);
    sampler_free(&smp);
    kvcache_free(&kv);
    tokenizer_free(&tok);
    gpt_free(&m);
    config_free(&cfg);
    return 0;
}

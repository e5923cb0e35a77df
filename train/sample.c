// rlhf sample CKPT [--prompt TEXT] [--max_new_tokens N] [--temperature T]
//                  [--top_k K] [--top_p P] [--seed S] [--num_samples N]
// Streams text from a checkpoint with the KV cache. Options are the keys of
// the [sample] config section. Generation longer than the context keeps
// going: the cache is refilled from the last half-context of tokens.
// `--logits FILE` instead writes the next-token logits after the prompt (for
// checking the model outside C, e.g. notebooks/01_checkpoint.ipynb) and exits.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "common.h"
#include "config.h"
#include "gpt.h"
#include "options.h"
#include "run.h"
#include "sampling.h"
#include "tokenizer.h"

#define USAGE                                                                              \
    "usage: rlhf sample CKPT [--prompt TEXT] [--max_new_tokens N] [--temperature T] "       \
    "[--top_k K] [--top_p P] [--seed S] [--num_samples N] [--logits FILE [--force]]"

// Writes the next-token logits after ids[0..n) to path, one value per line
// (%.9g, enough digits to round-trip a float): first from a full forward
// (last position), then from the KV-cache path, each section under a '#'
// line. Written atomically (PATH.tmp, fsync, rename), so no partial file is
// left; an existing file only with force, the checkpoint never.
static int write_logits(const char *path, int force, const char *ckpt, GPT *m, const int *ids,
                        int n) {
    const int V = m->config.vocab_size;
    gpt_forward(m, ids, 1, n, 1);
    const float *full = m->acts.logits + (size_t)(n - 1) * V;
    KVCache kv;
    kvcache_build(&kv, &m->config, 1, n);
    for (int pos = 0; pos < n; pos++) gpt_decode_step(m, &kv, &ids[pos], pos);
    AtomicFile af;
    const char *inputs[] = {ckpt};
    int rc = output_open(&af, path, "--logits", force, inputs, 1);
    if (rc == 0) {
        fprintf(af.f, "# next-token logits after a prompt of %d tokens, V=%d\n", n, V);
        fprintf(af.f, "# full forward, last position\n");
        for (int v = 0; v < V; v++) fprintf(af.f, "%.9g\n", full[v]);
        fprintf(af.f, "# kv cache\n");
        for (int v = 0; v < V; v++) fprintf(af.f, "%.9g\n", kv.logits[v]);
        rc = atomic_commit(&af);
    }
    kvcache_free(&kv);
    return rc;
}

int cmd_sample(int argc, char **argv) {
    Config cfg;
    config_init(&cfg);
    // the options are the keys of [sample], and --logits
    static const OptionSpec spec = {
        .usage = USAGE,
        .positional = {"checkpoint"},
        .required = 1,
        .options = {{"logits", 1, 0}, {"force", 0, 0}},
        .section = "sample",
    };
    Options opts;
    if (options_parse(&opts, &spec, argc, argv) != 0 || options_apply(&opts, &cfg) != 0)
        die_last();
    const char *ckpt = opts.positional[0], *logits_path = options_get(&opts, "logits");
    if (logits_path && !logits_path[0]) die("--logits needs a file name; hint: %s", USAGE);
    const int force = options_get(&opts, "force") != NULL;
    const char *inputs[] = {ckpt};
    if (force && !logits_path) die("--force applies to --logits FILE only; hint: %s", USAGE);
    if (logits_path && output_check(logits_path, "--logits", force, inputs, 1) != 0) die_last();
    if (config_validate(&cfg) != 0 || run_set_precision(&cfg) != 0) die_last();
    GPT m;
    Tokenizer tok = {0};
    if (load_model_file(ckpt, &m, 0, &tok, NULL) != 0) die_last();
    const int T = m.config.block_size;

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
    if (logits_path) {
        int rc = write_logits(logits_path, force, ckpt, &m, ids, n);
        free(ids);
        tokenizer_free(&tok);
        gpt_free(&m);
        config_free(&cfg);
        options_free(&opts);
        if (rc != 0) die_last();
        return 0;
    }
    TokenStream ts;
    token_stream_build(&ts, &m.config, T,
                       (SamplerParams){(float)cfg.sample.temperature, (int)cfg.sample.top_k,
                                       (float)cfg.sample.top_p},
                       (uint64_t)cfg.sample.seed);
    int *window = mallocCheck((size_t)T * sizeof(int));
    for (int s = 0; s < cfg.sample.num_samples; s++) {
        if (s > 0) printf("\n---\n");
        if (plen) fwrite(prompt, 1, plen, stdout);
        // ctx: the tokens in the cache; refilled from the tail when full
        int len = n;
        memcpy(window, ids, (size_t)n * sizeof(int));
        int pos = 0;
        Utf8Stream utf8 = {{0}, 0};  // a character cut by a token boundary waits for its end
        uint8_t *text = NULL;
        for (int64_t g = 0; g < cfg.sample.max_new_tokens; g++) {
            for (; pos < len; pos++) gpt_decode_step(&m, &ts.kv, &window[pos], pos);
            int next = token_stream_sample(&ts);
            if (next == tok.eot) break;
            int blen;
            const uint8_t *bytes = tokenizer_token_bytes(&tok, next, &blen);
            if (next != tok.pad && next != tok.user && next != tok.assistant) {
                text = reallocCheck(text, 3 * ((size_t)blen + 4));
                fwrite(text, 1, (size_t)utf8_stream_push(&utf8, bytes, blen, text), stdout);
            }
            fflush(stdout);
            if (len == T) {  // context full: keep the last half and re-prefill
                int keep = T / 2;
                memmove(window, window + len - keep, (size_t)keep * sizeof(int));
                len = keep;
                pos = 0;
            }
            window[len++] = next;
        }
        uint8_t tail[3];
        fwrite(tail, 1, (size_t)utf8_stream_finish(&utf8, tail), stdout);
        free(text);
        printf("\n");
    }
    free(window);
    free(ids);
    token_stream_free(&ts);
    tokenizer_free(&tok);
    gpt_free(&m);
    config_free(&cfg);
    options_free(&opts);
    return 0;
}

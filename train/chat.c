// rlhf chat CKPT [--temperature T] [--top_k K] [--top_p P] [--seed S] [--max_new_tokens N]
// A conversation with an SFT or PPO checkpoint: each line read from stdin is
// a user turn; the reply streams out after "bot> " until end-of-text, the
// token budget or the end of the context. The conversation so far is the
// model's input, in the chat template; when it no longer leaves room for a
// reply (at least min(max_new_tokens, block_size/4) tokens), the oldest
// turns are dropped. The KV cache keeps the longest unchanged prefix between
// turns, so only new tokens are fed. "/reset" forgets the conversation,
// "/quit" or end of input ends. Options are the keys of [sample] (and any
// --section.key=value; --train.threads=N sets the thread count).
#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "chat.h"
#include "checkpoint.h"
#include "commands.h"
#include "common.h"
#include "config.h"
#include "gpt.h"
#include "run.h"
#include "sampling.h"
#include "tokenizer.h"

#define USAGE                                                                        \
    "usage: rlhf chat CKPT [--temperature T] [--top_k K] [--top_p P] [--seed S] "     \
    "[--max_new_tokens N]"

// One exchange in template form: <|user|> prompt <|assistant|> reply <|endoftext|>
typedef struct {
    int *ids;  // owned
    int n;
} Exchange;

typedef struct {
    Exchange *ex;
    int n, cap;
    int tokens;  // sum of ex[i].n
} History;

static void history_add(History *h, const int *ids, int n) {
    if (h->n == h->cap) h->ex = reallocCheck(h->ex, (size_t)(h->cap = h->cap ? 2 * h->cap : 8) * sizeof *h->ex);
    Exchange *e = &h->ex[h->n++];
    e->ids = mallocCheck((size_t)n * sizeof(int));
    memcpy(e->ids, ids, (size_t)n * sizeof(int));
    e->n = n;
    h->tokens += n;
}

static void history_drop_oldest(History *h) {
    ASSERT(h->n > 0);
    h->tokens -= h->ex[0].n;
    free(h->ex[0].ids);
    memmove(h->ex, h->ex + 1, (size_t)(h->n - 1) * sizeof *h->ex);
    h->n--;
}

static void history_clear(History *h) {
    while (h->n) history_drop_oldest(h);
}

static void history_free(History *h) {
    history_clear(h);
    free(h->ex);
    memset(h, 0, sizeof *h);
}

int cmd_chat(int argc, char **argv) {
    Config cfg;
    config_init(&cfg);
    const char *ckpt = NULL;
    if (parse_options(&cfg, "sample", argc, argv, &ckpt, 1, USAGE) != 1)
        die("no checkpoint given; hint: %s", USAGE);
    if (config_validate(&cfg) != 0) die_last();
    run_set_threads(&cfg);
    // a tokenizer file opens fine but holds no model: say so plainly
    CkptMeta meta = {0};
    Ckpt *ck = ckpt_open(ckpt, &meta);
    if (!ck) die_last();
    int has_model = ckpt_has_model(ck, "");
    ckpt_close(ck);
    if (!has_model)
        die("%s is a '%s' file without a model; hint: chat with an sft or ppo checkpoint", ckpt,
            meta.stage);
    GPT m;
    Tokenizer tok = {0};
    if (load_model_file(ckpt, &m, 0, &tok, NULL) != 0) die_last();
    const int T = m.config.block_size;
    const int max_new = (int)cfg.sample.max_new_tokens;
    const int tty = isatty(STDIN_FILENO);
    if (strcmp(meta.stage, "sft") != 0 && strcmp(meta.stage, "ppo") != 0)
        fprintf(stderr, "note: %s is a '%s' checkpoint; the chat template was learned in sft "
                "(replies may not follow it)\n", ckpt, meta.stage);
    if (tty)
        fprintf(stderr, "chatting with %s (stage %s, step %lld, context %d tokens); /reset "
                "forgets the conversation, /quit or Ctrl-D ends\n", ckpt, meta.stage,
                (long long)meta.step, T);

    TokenStream ts;
    token_stream_build(&ts, &m.config, T,
                       (SamplerParams){(float)cfg.sample.temperature, (int)cfg.sample.top_k,
                                       (float)cfg.sample.top_p},
                       (uint64_t)cfg.sample.seed);
    int *cached = mallocCheck((size_t)T * sizeof(int));  // tokens whose K/V the cache holds
    int ncached = 0;
    int *seq = mallocCheck((size_t)T * sizeof(int));      // this turn's input
    int *prompt = mallocCheck((size_t)T * sizeof(int));
    int *reply = mallocCheck((size_t)(max_new + 1) * sizeof(int));
    int *turn = mallocCheck(((size_t)T + max_new + 1) * sizeof(int));
    History hist = {0};
    int warned_drop = 0;
    char *line = NULL;
    size_t line_cap = 0;

    for (;;) {
        if (tty) {
            fputs("you> ", stdout);
            fflush(stdout);
        }
        ssize_t got = getline(&line, &line_cap, stdin);
        if (got < 0) {
            if (tty) fputc('\n', stdout);
            break;
        }
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = '\0';
        if (got == 0) continue;
        if (!strcmp(line, "/quit")) break;
        if (!strcmp(line, "/reset")) {
            history_clear(&hist);
            fprintf(stderr, "(conversation forgotten)\n");
            continue;
        }
        if (line[0] == '/') {
            fprintf(stderr, "unknown command '%s'; hint: /reset or /quit\n", line);
            continue;
        }
        long pl = chat_encode_prompt(&tok, line, prompt, T);
        if (pl < 0) {
            fprintf(stderr, "cannot encode that message: %s\n", rlhf_errmsg);
            continue;
        }
        if (pl >= T) {
            fprintf(stderr, "that message is %ld tokens with the template; the context holds %d "
                    "including the reply; hint: shorten it\n", pl, T);
            continue;
        }
        // room for a reply decides how much of the conversation stays
        int reserve = max_new < T / 4 ? max_new : T / 4;
        if (reserve > T - (int)pl) reserve = T - (int)pl;
        if (reserve < 1) reserve = 1;
        while (hist.n > 0 && hist.tokens + pl + reserve > T) {
            history_drop_oldest(&hist);
            if (!warned_drop) {
                fprintf(stderr, "(the conversation no longer fits in the %d-token context: the "
                        "oldest turns are dropped from now on)\n", T);
                warned_drop = 1;
            }
        }
        int n0 = 0;
        for (int i = 0; i < hist.n; i++) {
            memcpy(seq + n0, hist.ex[i].ids, (size_t)hist.ex[i].n * sizeof(int));
            n0 += hist.ex[i].n;
        }
        memcpy(seq + n0, prompt, (size_t)pl * sizeof(int));
        n0 += (int)pl;

        // feed what the cache does not hold yet (at least the last token,
        // whose logits give the first reply token)
        int p = 0;
        while (p < ncached && p < n0 && cached[p] == seq[p]) p++;
        if (p >= n0) p = n0 - 1;
        for (; p < n0; p++) {
            gpt_decode_step(&m, &ts.kv, &seq[p], p);
            cached[p] = seq[p];
        }
        ncached = n0;

        // the last reply token is never fed, so positions up to T-1 allow
        // T - n0 + 1 tokens
        int budget = max_new < T - n0 + 1 ? max_new : T - n0 + 1;
        int g = 0, ended = 0;
        fputs("bot> ", stdout);
        for (; g < budget; g++) {
            int next = token_stream_sample(&ts);
            reply[g] = next;
            if (next == tok.eot) {
                ended = 1;
                g++;
                break;
            }
            if (next != tok.user && next != tok.assistant && next != tok.pad) {
                int blen;
                const uint8_t *bytes = tokenizer_token_bytes(&tok, next, &blen);
                fwrite(bytes, 1, (size_t)blen, stdout);
                fflush(stdout);
            }
            if (g + 1 == budget) {
                g++;
                break;
            }
            gpt_decode_step(&m, &ts.kv, &next, ncached);
            cached[ncached++] = next;
        }
        fputc('\n', stdout);
        fflush(stdout);
        if (!ended)
            fprintf(stderr, "(reply cut: %s)\n", budget == max_new
                                                      ? "max_new_tokens reached"
                                                      : "the context is full");
        // the exchange as the template has it: the reply always closes
        memcpy(turn, prompt, (size_t)pl * sizeof(int));
        memcpy(turn + pl, reply, (size_t)g * sizeof(int));
        int tn = (int)pl + g;
        if (!ended) turn[tn++] = tok.eot;
        history_add(&hist, turn, tn);
    }

    free(line);
    history_free(&hist);
    free(cached);
    free(seq);
    free(prompt);
    free(reply);
    free(turn);
    token_stream_free(&ts);
    tokenizer_free(&tok);
    gpt_free(&m);
    ckpt_meta_free(&meta);
    config_free(&cfg);
    return 0;
}

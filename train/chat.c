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
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat.h"
#include "checkpoint.h"
#include "commands.h"
#include "common.h"
#include "config.h"
#include "conversation.h"
#include "gpt.h"
#include "run.h"
#include "sampling.h"
#include "tokenizer.h"

#define USAGE                                                                        \
    "usage: rlhf chat CKPT [--temperature T] [--top_k K] [--top_p P] [--seed S] "     \
    "[--max_new_tokens N]"

// Prints a reply token as it is drawn; the template's specials stay silent.
static void print_token(int token, void *ctx) {
    const Tokenizer *tok = ctx;
    if (token == tok->user || token == tok->assistant || token == tok->pad) return;
    int blen;
    const uint8_t *bytes = tokenizer_token_bytes(tok, token, &blen);
    fwrite(bytes, 1, (size_t)blen, stdout);
    fflush(stdout);
}

int cmd_chat(int argc, char **argv) {
    Config cfg;
    config_init(&cfg);
    const char *ckpt = NULL;
    int npos = parse_options(&cfg, "sample", argc, argv, &ckpt, 1, USAGE);
    if (npos < 0) die_last();
    if (npos != 1) die("no checkpoint given; hint: %s", USAGE);
    if (config_validate(&cfg) != 0) die_last();
    if (run_set_threads(&cfg) != 0) die_last();
    // a tokenizer file opens fine but holds no model: say so plainly
    CkptMeta meta = {0};
    Ckpt *ck = ckpt_open(ckpt, &meta);
    if (!ck) die_last();
    int has_model = ckpt_has_model(ck, "");
    ckpt_close(ck);
    if (!has_model)
        die("%s is a '%s' file without a model; hint: chat with an sft, ppo or dpo checkpoint",
            ckpt, meta.stage);
    GPT m;
    Tokenizer tok = {0};
    if (load_model_file(ckpt, &m, 0, &tok, NULL) != 0) die_last();
    const int T = m.config.block_size;
    const int max_new = (int)cfg.sample.max_new_tokens;
    const int tty = isatty(STDIN_FILENO);
    if (strcmp(meta.stage, "sft") != 0 && strcmp(meta.stage, "ppo") != 0 &&
        strcmp(meta.stage, "dpo") != 0)
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
    Conversation conv;
    conversation_init(&conv, T);
    int *prompt = mallocCheck((size_t)T * sizeof(int));
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
            conversation_clear(&conv);
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
        if (conversation_begin_turn(&conv, prompt, (int)pl, max_new) > 0 && !warned_drop) {
            fprintf(stderr, "(the conversation no longer fits in the %d-token context: the "
                    "oldest turns are dropped from now on)\n", T);
            warned_drop = 1;
        }
        fputs("bot> ", stdout);
        ChatReplyEnd end;
        conversation_reply(&conv, &m, &ts, max_new, tok.eot, print_token, &tok, &end);
        fputc('\n', stdout);
        fflush(stdout);
        if (end != CHAT_REPLY_EOT)
            fprintf(stderr, "(reply cut: %s)\n", end == CHAT_REPLY_MAX_NEW
                                                      ? "max_new_tokens reached"
                                                      : "the context is full");
    }

    free(line);
    conversation_free(&conv);
    free(prompt);
    token_stream_free(&ts);
    tokenizer_free(&tok);
    gpt_free(&m);
    ckpt_meta_free(&meta);
    config_free(&cfg);
    return 0;
}

// rlhf chat CKPT [--temperature T] [--top_k K] [--top_p P] [--seed S] [--max_new_tokens N]
//                [--single_turn | --multi_turn]
// A conversation with an SFT or PPO checkpoint: each line read from stdin is
// a user turn; the reply streams out after "bot> " until end-of-text, the
// token budget or the end of the context. The conversation so far is the
// model's input, in the chat template; when it no longer leaves room for a
// reply (at least min(max_new_tokens, block_size/4) tokens), the oldest
// turns are dropped (said once). The KV cache keeps the longest unchanged
// prefix between turns, so only new tokens are fed. With --single_turn each
// message is answered on its own, without the history: the default for a
// model whose SFT data held no conversation (its checkpoint's
// /state/sft_data, or that of the nearest checkpoint of its lineage that
// has one: a PPO or DPO policy's SFT model). "/reset" forgets the
// conversation, "/quit" or end of input ends. Options are the keys of
// [sample] (and any --section.key=value; --train.threads=N sets the thread
// count).
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
#include "jsonl.h"
#include "options.h"
#include "run.h"
#include "sampling.h"
#include "tokenizer.h"

#define USAGE                                                                        \
    "usage: rlhf chat CKPT [--temperature T] [--top_k K] [--top_p P] [--seed S] "     \
    "[--max_new_tokens N] [--single_turn | --multi_turn]"

// How many ancestors chat looks through for an SFT data description.
#define LINEAGE_DEPTH 8

// The SFT data description (/state/sft_data, JSON) of the checkpoint at
// path or, when it has none, of its nearest ancestor that has one, each
// parent followed while its file exists with the recorded sha256. Returns
// the text (caller frees) with the checkpoint it came from in from[n], or
// NULL when none is found or a file cannot be read.
static char *find_sft_data(const char *path, char *from, size_t n) {
    char cur[4096], next[4096], want[65], have[65];
    snprintf(cur, sizeof cur, "%s", path);
    for (int depth = 0; depth < LINEAGE_DEPTH; depth++) {
        CkptMeta meta = {0};
        Ckpt *ck = ckpt_open(cur, &meta);
        if (!ck) return NULL;
        char *text = NULL;
        int has = ckpt_has_state(ck, "sft_data");
        if (has && ckpt_read_str(ck, "sft_data", &text) != 0) text = NULL;
        ckpt_close(ck);
        int parent = !has && meta.parent[0] &&
                     lineage_split(meta.parent, next, sizeof next, want) == 0;
        ckpt_meta_free(&meta);
        if (has) {
            if (text) snprintf(from, n, "%s", cur);
            return text;
        }
        if (!parent || file_sha256(next, have) != 0 || strcmp(have, want) != 0) return NULL;
        memcpy(cur, next, sizeof cur);
    }
    return NULL;
}

// Conversations in the SFT data a description reports: -1 when unknown.
static long sft_conversations(const char *desc) {
    JsonEntries es;
    if (!desc || json_entries_parse(desc, &es) != 0) return -1;
    const JsonEntry *e = json_entries_find(&es, "sft_data", "conversations");
    long n = -1;
    if (e) {
        char *end;
        n = strtol(e->value, &end, 10);
        if (end == e->value || *end || n < 0) n = -1;
    }
    json_entries_free(&es);
    return n;
}

typedef struct {
    const Tokenizer *tok;
    Utf8Stream utf8;  // a character cut by a token boundary waits for its end
} Printer;

// Prints a reply token as it is drawn; the template's specials stay silent.
// token < 0 ends the reply (what is held of a cut character is printed).
static void print_token(int token, void *ctx) {
    Printer *p = ctx;
    const Tokenizer *tok = p->tok;
    if (token == tok->user || token == tok->assistant || token == tok->pad) return;
    int blen;
    const uint8_t *bytes = token < 0 ? NULL : tokenizer_token_bytes(tok, token, &blen);
    uint8_t *out = mallocCheck(3 * ((size_t)(token < 0 ? 0 : blen) + 4));
    int k = token < 0 ? utf8_stream_finish(&p->utf8, out) : utf8_stream_push(&p->utf8, bytes, blen, out);
    fwrite(out, 1, (size_t)k, stdout);
    free(out);
    fflush(stdout);
}

int cmd_chat(int argc, char **argv) {
    Config cfg;
    config_init(&cfg);
    static const OptionSpec spec = {
        .usage = USAGE,
        .positional = {"checkpoint"},
        .required = 1,
        .options = {{"single_turn", 0, 0}, {"multi_turn", 0, 0}},
        .section = "sample",
    };
    Options opts;
    if (options_parse(&opts, &spec, argc, argv) != 0 || options_apply(&opts, &cfg) != 0)
        die_last();
    const char *ckpt = opts.positional[0];
    const int force_single = options_get(&opts, "single_turn") != NULL;
    const int force_multi = options_get(&opts, "multi_turn") != NULL;
    if (force_single && force_multi)
        die("--single_turn and --multi_turn contradict each other; hint: give one of them");
    if (config_validate(&cfg) != 0) die_last();
    if (run_set_threads(&cfg) != 0) die_last();
    if (run_set_precision(&cfg) != 0) die_last();
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
    // with history, unless asked otherwise or the model never saw one
    char desc_from[4096] = "";
    char *desc = find_sft_data(ckpt, desc_from, sizeof desc_from);
    const long conversations = sft_conversations(desc);
    int single = force_single;
    if (!force_single && !force_multi && conversations == 0) {
        single = 1;
        fprintf(stderr, "note: the SFT data of %s (recorded in %s) held no conversation: each "
                "message is answered on its own (--multi_turn keeps the history)\n", ckpt,
                desc_from);
    }
    free(desc);
    if (strcmp(meta.stage, "sft") != 0 && strcmp(meta.stage, "ppo") != 0 &&
        strcmp(meta.stage, "dpo") != 0)
        fprintf(stderr, "note: %s is a '%s' checkpoint; the chat template was learned in sft "
                "(replies may not follow it)\n", ckpt, meta.stage);
    if (tty)
        fprintf(stderr, "chatting with %s (stage %s, step %lld, context %d tokens, %s); "
                "/reset forgets the conversation, /quit or Ctrl-D ends\n", ckpt, meta.stage,
                (long long)meta.step, T, single ? "one message at a time" : "with history");

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
        if (single) conversation_clear(&conv);  // the cache stays: the template prefix is reused
        if (conversation_begin_turn(&conv, prompt, (int)pl, max_new) > 0 && !warned_drop) {
            fprintf(stderr, "(the conversation no longer fits in the %d-token context: the "
                    "oldest turns are dropped from now on)\n", T);
            warned_drop = 1;
        }
        fputs("bot> ", stdout);
        ChatReplyEnd end;
        Printer printer = {&tok, {{0}, 0}};
        conversation_reply(&conv, &m, &ts, max_new, tok.eot, print_token, &printer, &end);
        print_token(-1, &printer);
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
    options_free(&opts);
    config_free(&cfg);
    return 0;
}

// Multi-turn data end to end, with char and BPE tokenizers trained here:
// the SFT loss mask of a conversation as the trainer sees it (seqs_from_sft
// + seqs_batch: loss on every assistant turn's tokens and its end-of-text,
// never on user text or specials); conversations longer than the context
// trimmed from the oldest exchange, whole; multi-turn prompts (history +
// last user turn) for PPO (prompts_encode) and preference pairs
// (seqs_from_prefs, evaluate_pairs), read from their JSONL forms; and the
// accuracy by turn of `rlhf eval` (evaluate_chat_turns) against the
// conversation `rlhf chat` holds, reply for reply.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat.h"
#include "common.h"
#include "conversation.h"
#include "evaluate.h"
#include "gpt.h"
#include "jsonl.h"
#include "ref_gpt.h"
#include "sampling.h"
#include "seqs.h"
#include "tasks.h"
#include "tokenizer.h"

#if defined(__SANITIZE_ADDRESS__)
const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void) { return "halt_on_error=1:print_stacktrace=1"; }
#endif

// Every printable ASCII character, so that task prompts encode with the
// char tokenizer; some words, so that BPE learns merges.
static char corpus[4096];

static void build_corpus(void) {
    size_t n = 0;
    for (int r = 0; r < 3; r++) {
        for (int c = 32; c < 127; c++) corpus[n++] = (char)c;
        n += (size_t)snprintf(corpus + n, sizeof corpus - n,
                              "\nreverse: cat tac what is 2 + 3? 5 uppercase: big dog BIG DOG "
                              "sort: garden adegnr count e in: between 3\n");
    }
    corpus[n] = '\0';
}

static Tokenizer train(int type) {
    Tokenizer tok;
    if (!corpus[0]) build_corpus();
    if (tokenizer_train(&tok, type, (const uint8_t *)corpus, strlen(corpus), 256 + 40 + 4) != 0)
        fail_msg("tokenizer_train: %s", rlhf_errmsg);
    return tok;
}

static char tmpdir[64];

static int setup(void **state) {
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/rlhf_test_multiturn_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    return system(cmd);
}

static const char *write_file(const char *name, const char *text) {
    static char path[160];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    fclose(f);
    return path;
}

// Token counts of a text alone.
static long ntok(const Tokenizer *tok, const char *text) {
    int none[1];
    long n = tokenizer_encode(tok, (const uint8_t *)text, strlen(text), none, 0);
    assert_true(n >= 1);
    return n;
}

static const Turn CONV[8] = {
    {TURN_USER, "reverse: cat", "reverse"},        {TURN_ASSISTANT, "tac", NULL},
    {TURN_USER, "what is 2 + 3?", "add"},          {TURN_ASSISTANT, "5", NULL},
    {TURN_USER, "uppercase: big dog", "upper"},    {TURN_ASSISTANT, "BIG DOG", NULL},
    {TURN_USER, "count e in: between", "count"},   {TURN_ASSISTANT, "3", NULL},
};

// The training mask of a four-exchange conversation through seqs_from_sft
// and seqs_batch (targets = ids shifted by one): a target carries loss
// exactly when it is an assistant turn's token or the end-of-text closing
// it; user text, <|user|> and <|assistant|> never do. The loss-carrying
// targets number the replies' tokens plus one end-of-text per reply, and
// every reply token (and end-of-text) of the conversation is among them.
static void test_sft_loss_mask_every_assistant_turn(void **state) {
    (void)state;
    for (int type = 0; type < 2; type++) {
        Tokenizer tok = train(type == 0 ? TOKENIZER_CHAR : TOKENIZER_BPE);
        Turn turns[8];
        memcpy(turns, CONV, sizeof turns);
        SftExample ex = {turns, 8, "", "", 1};
        SftSet set = {&ex, 1, "mem"};
        SeqSet s;
        long skipped, truncated, trimmed;
        assert_int_equal(seqs_from_sft(&set, &tok, 255, 0, &s, &skipped, &truncated, &trimmed),
                         0);
        assert_true(s.n == 1 && skipped == 0 && truncated == 0 && trimmed == 0);
        const long L = seqs_len(&s, 0);
        int x[256], y[256];
        unsigned char mask[256];
        const long row = 0;
        const int Tb = seqs_batch(&s, &row, 1, tok.pad, x, y, mask);
        assert_int_equal(Tb, L - 1);
        // walk the template: which token of ids is assistant text
        unsigned char is_reply[256] = {0};
        long at = 0, replies = 0;
        for (int t = 0; t < 8; t++) {
            const long k = ntok(&tok, turns[t].text);
            if (turns[t].role == TURN_USER) {
                at += 1 + k + 1;  // <|user|> text <|assistant|>
            } else {
                for (long i = 0; i <= k; i++) is_reply[at + i] = 1;  // text + end-of-text
                at += k + 1;
                replies += k + 1;
            }
        }
        assert_int_equal(at, L);
        long with_loss = 0;
        for (int t = 0; t < Tb; t++) {
            const int target = y[t];
            assert_int_equal(mask[t], is_reply[t + 1]);
            if (target == tok.user || target == tok.assistant) assert_int_equal(mask[t], 0);
            if (target == tok.eot) assert_int_equal(mask[t], 1);
            with_loss += mask[t];
        }
        assert_int_equal(with_loss, replies);
        seqs_free(&s);
        tokenizer_free(&tok);
    }
}

// A conversation longer than the context loses its oldest exchanges,
// whole, only as many as needed: the sequence kept equals the encoding of
// the newest exchanges alone, starts with <|user|>, and its loss flags are
// theirs. When the newest exchange alone does not fit, the overlong policy
// decides as for a single turn (skip, or truncate at the end); a
// single-turn example is never trimmed.
static void test_sft_trims_oldest_exchange_whole(void **state) {
    (void)state;
    for (int type = 0; type < 2; type++) {
        Tokenizer tok = train(type == 0 ? TOKENIZER_CHAR : TOKENIZER_BPE);
        Turn turns[8];
        memcpy(turns, CONV, sizeof turns);
        long ex_len[4];  // tokens of each exchange
        for (int e = 0; e < 4; e++)
            ex_len[e] = 3 + ntok(&tok, turns[2 * e].text) + ntok(&tok, turns[2 * e + 1].text);
        const long full = ex_len[0] + ex_len[1] + ex_len[2] + ex_len[3];
        int checked = 0;
        // every context from the whole conversation down to below its last
        // exchange, while that exchange keeps a reply token when truncated
        const long last_user = 2 + ntok(&tok, turns[6].text);
        for (long T1 = full + 2; T1 > last_user; T1--) {
            SftExample ex = {turns, 8, "", "", 7};
            SftSet set = {&ex, 1, "mem"};
            int keep = 0;  // exchanges that fit, newest first
            long used = 0;
            while (keep < 4 && used + ex_len[3 - keep] <= T1) used += ex_len[3 - keep++];
            for (int truncate = 0; truncate < 2; truncate++) {
                SeqSet s;
                long skipped, truncated, trimmed;
                int rc = seqs_from_sft(&set, &tok, (int)T1 - 1, truncate, &s, &skipped,
                                       &truncated, &trimmed);
                assert_int_equal(trimmed, keep < 4);
                if (keep == 0 && !truncate) {  // even the last exchange is too long
                    assert_int_equal(rc, -1);      // no example fits: an error
                    assert_int_equal(skipped, 1);
                    seqs_free(&s);
                    continue;
                }
                assert_int_equal(rc, 0);
                assert_int_equal(s.n, 1);
                const int first = keep > 0 ? 4 - keep : 3;
                SftExample tail = {turns + 2 * first, 8 - 2 * first, "", "", 7};
                int want[256];
                unsigned char wl[256];
                const long n = chat_encode_example(&tok, &tail, want, wl, 256);
                const long L = seqs_len(&s, 0);
                assert_int_equal(L, keep > 0 ? n : T1);
                assert_int_equal(truncated, keep == 0);
                assert_memory_equal(s.ids, want, (size_t)L * sizeof(int));
                assert_memory_equal(s.loss, wl, (size_t)L);
                assert_int_equal(s.ids[0], tok.user);
                if (keep > 0) assert_int_equal(s.ids[L - 1], tok.eot);
                seqs_free(&s);
                checked++;
            }
        }
        assert_true(checked > 10);
        // one exchange: the overlong policy alone (here it cuts the end-of-text)
        SftExample one = {turns + 4, 2, "", "", 3};
        SftSet set1 = {&one, 1, "mem"};
        SeqSet s;
        long skipped, truncated, trimmed;
        assert_int_equal(seqs_from_sft(&set1, &tok, (int)ex_len[2] - 2, 1, &s, &skipped,
                                       &truncated, &trimmed), 0);
        assert_true(trimmed == 0 && truncated == 1);
        seqs_free(&s);
        tokenizer_free(&tok);
    }
}

// The context of a multi-turn prompt is the conversation's template up to
// the last <|assistant|>: the prefix of chat_encode_example of the same
// turns plus an answer. chat_prompt_fit drops the oldest exchanges, whole,
// only as many as the limit needs, and never the prompt.
static void test_context_encoding_and_fit(void **state) {
    (void)state;
    for (int type = 0; type < 2; type++) {
        Tokenizer tok = train(type == 0 ? TOKENIZER_CHAR : TOKENIZER_BPE);
        SftExample ex = {(Turn *)CONV, 8, "", "", 1};
        int full[256], ids[256];
        unsigned char loss[256];
        const long nf = chat_encode_example(&tok, &ex, full, loss, 256);
        ChatPrompt p = {CONV, 6, CONV[6].text};
        const long nc = chat_encode_context(&tok, &p, ids, 256);
        assert_int_equal(nc, nf - ntok(&tok, CONV[7].text) - 1);
        assert_memory_equal(ids, full, (size_t)nc * sizeof(int));
        assert_int_equal(ids[nc - 1], tok.assistant);
        const long np = chat_encode_context_pair(&tok, &p, CONV[7].text, 0, ids, 256);
        assert_int_equal(np, nf);
        assert_memory_equal(ids, full, (size_t)nf * sizeof(int));
        // no history: the single-turn template
        ChatPrompt q = chat_prompt(CONV[0].text);
        int one[64];
        assert_int_equal(chat_encode_context(&tok, &q, ids, 256),
                         chat_encode_prompt(&tok, CONV[0].text, one, 64));
        assert_memory_equal(ids, one, (size_t)chat_encode_prompt(&tok, CONV[0].text, one, 64) *
                                          sizeof(int));
        // fitting
        long ex_len[3];
        for (int e = 0; e < 3; e++)
            ex_len[e] = 3 + ntok(&tok, CONV[2 * e].text) + ntok(&tok, CONV[2 * e + 1].text);
        const long last = 2 + ntok(&tok, CONV[6].text);
        for (long limit = nc + 3; limit >= 1; limit--) {
            ChatPrompt f = {CONV, 6, CONV[6].text};
            const int d = chat_prompt_fit(&tok, &f, 2, limit);
            long kept = last;
            for (int e = d; e < 3; e++) kept += ex_len[e];
            assert_true(d >= 0 && d <= 3);
            assert_int_equal(f.n_history, 6 - 2 * d);
            assert_ptr_equal(f.history, CONV + 2 * d);
            assert_string_equal(f.text, CONV[6].text);
            assert_int_equal(chat_encode_context(&tok, &f, ids, 256), kept);
            if (d < 3) assert_true(kept + 2 <= limit);
            if (d > 0) assert_true(kept + ex_len[d - 1] + 2 > limit);
        }
        tokenizer_free(&tok);
    }
}

// Multi-turn preference pairs in TRL's conversational form: the history
// and prompt are the context of both sides and carry no loss (not even its
// assistant turns); the response and its end-of-text do. A short context
// drops the oldest exchanges of both sides alike; the pair is skipped only
// when the last exchange alone does not fit. evaluate_pairs scores the
// pair in the same context (a language model: its own log-likelihood of
// each side, as a forward pass of that sequence gives it).
static void test_multiturn_preference_pairs(void **state) {
    (void)state;
    const char *path = write_file(
        "prefs.jsonl",
        "{\"prompt\":[{\"role\":\"user\",\"content\":\"reverse: cat\"},{\"role\":\"assistant\","
        "\"content\":\"tac\"},{\"role\":\"user\",\"content\":\"what is 2 + 3?\",\"family\":"
        "\"add\"}],\"chosen\":[{\"role\":\"assistant\",\"content\":\"5\"}],\"rejected\":\"6\"}\n"
        "{\"prompt\":\"sort: garden\",\"chosen\":\"adegnr\",\"rejected\":\"adgenr\"}\n");
    PrefSet set;
    assert_int_equal(jsonl_read_prefs(path, &set), 0);
    assert_int_equal(set.n, 2);
    assert_int_equal(set.ex[0].n_history, 2);
    assert_string_equal(set.ex[0].history[1].text, "tac");
    assert_string_equal(set.ex[0].prompt, "what is 2 + 3?");
    assert_string_equal(set.ex[0].family, "add");  // from the last user message
    assert_string_equal(set.ex[0].chosen, "5");
    assert_null(set.ex[1].history);
    for (int type = 0; type < 2; type++) {
        Tokenizer tok = train(type == 0 ? TOKENIZER_CHAR : TOKENIZER_BPE);
        Turn conv[4] = {{TURN_USER, "reverse: cat", NULL}, {TURN_ASSISTANT, "tac", NULL},
                        {TURN_USER, "what is 2 + 3?", NULL}, {TURN_ASSISTANT, "5", NULL}};
        SftExample ex = {conv, 4, "", "", 1};
        int want[128];
        unsigned char wl[128];
        const long n = chat_encode_example(&tok, &ex, want, wl, 128);
        const long first = 3 + ntok(&tok, "reverse: cat") + ntok(&tok, "tac");
        SeqSet s;
        long skipped;
        assert_int_equal(seqs_from_prefs(&set, &tok, 100, &s, &skipped), 0);
        assert_true(s.n == 4 && skipped == 0);
        assert_int_equal(seqs_len(&s, 0), n);
        assert_memory_equal(s.ids, want, (size_t)n * sizeof(int));
        const long resp = ntok(&tok, "5") + 1;
        for (long t = 0; t < n; t++) assert_int_equal(s.loss[t], t >= n - resp);  // the reply only
        // the rejected side: the same context, no loss on it
        assert_memory_equal(s.ids + s.off[1], want, (size_t)(n - resp) * sizeof(int));
        for (long t = 0; t < seqs_len(&s, 1); t++)
            assert_int_equal(s.loss[s.off[1] + t], t >= n - resp);
        seqs_free(&s);
        // a context too short for the history: the oldest exchange goes
        assert_int_equal(seqs_from_prefs(&set, &tok, (int)(n - first), &s, &skipped), 0);
        const long lc = 3 + ntok(&tok, "sort: garden") + ntok(&tok, "adegnr");
        const long lr = 3 + ntok(&tok, "sort: garden") + ntok(&tok, "adgenr");
        assert_int_equal(skipped, (long)(lc > n - first || lr > n - first));
        assert_int_equal(seqs_len(&s, 0), n - first);
        assert_memory_equal(s.ids, want + first, (size_t)(n - first) * sizeof(int));
        seqs_free(&s);
        // too short for the last exchange: skipped
        long a, b;
        int ids[128], ids2[128];
        ChatPrompt kept;
        assert_int_equal(pref_encode(&set, 0, &tok, (int)(n - first) - 1, ids, &a, ids2, &b,
                                     &kept), 0);
        assert_int_equal(kept.n_history, 0);
        assert_int_equal(pref_encode(&set, 0, &tok, 100, ids, &a, ids2, &b, &kept), 1);
        assert_int_equal(kept.n_history, 2);
        // scored in context: the sum of log p over the reply and its end-of-text
        GPTConfig c = {.n_layer = 1, .n_head = 2, .n_embd = 16, .block_size = 64,
                       .vocab_size = tok.vocab_size};
        GPT m;
        gpt_build(&m, &c);
        ref_randomize_params(&m, 77);
        PairResult pr;
        PairScores ps;
        assert_int_equal(evaluate_pairs(&m, &tok, &set, 1, 4, &pr, &ps), 0);
        assert_int_equal(pr.pairs, 1);
        double logp[2];
        assert_int_equal(seqs_from_prefs(&set, &tok, 64, &s, &skipped), 0);
        evaluate_seq_logprobs(&m, &s, 2, 1, tok.pad, logp);
        assert_true(fabs(ps.chosen[0] - logp[0]) < 1e-4 * (1 + fabs(logp[0])));
        assert_true(fabs(ps.rejected[0] - logp[1]) < 1e-4 * (1 + fabs(logp[1])));
        pair_scores_free(&ps);
        seqs_free(&s);
        gpt_free(&m);
        tokenizer_free(&tok);
    }
    jsonl_free_prefs(&set);
}

// PPO prompts as messages ({"messages"} or {"prompt": [...]}) encode as the
// conversation's context; a short context drops the oldest exchanges
// (counted as trimmed) and a prompt whose last turn alone leaves no room
// for max_new tokens is skipped. The family of the last user message is
// the prompt's unless the line gives one.
static void test_multiturn_ppo_prompts(void **state) {
    (void)state;
    const char *path = write_file(
        "prompts.jsonl",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"reverse: cat\"},{\"role\":\"assistant\","
        "\"content\":\"tac\"},{\"role\":\"user\",\"content\":\"uppercase: big dog\",\"family\":"
        "\"upper\"}],\"answer\":\"BIG DOG\"}\n"
        "{\"prompt\":[{\"role\":\"user\",\"content\":\"sort: garden\"}],\"family\":\"sort\"}\n"
        "{\"prompt\":\"what is 2 + 3?\",\"family\":\"add\"}\n");
    PromptSet set;
    assert_int_equal(jsonl_read_prompts(path, &set), 0);
    assert_int_equal(set.n, 3);
    assert_int_equal(set.ex[0].n_history, 2);
    assert_string_equal(set.ex[0].prompt, "uppercase: big dog");
    assert_string_equal(set.ex[0].family, "upper");
    assert_string_equal(set.ex[0].answer, "BIG DOG");
    assert_int_equal(set.ex[1].n_history, 0);
    assert_null(set.ex[1].history);
    assert_string_equal(set.ex[1].prompt, "sort: garden");
    assert_string_equal(set.ex[1].family, "sort");
    Tokenizer tok = train(TOKENIZER_CHAR);
    EncodedPrompts p;
    assert_int_equal(prompts_encode(&set, &tok, 64, 8, "max_new", 0, &p), 0);
    assert_true(p.n == 3 && p.skipped == 0 && p.trimmed == 0);
    int want[64];
    ChatPrompt cp = {set.ex[0].history, 2, set.ex[0].prompt};
    const long n0 = chat_encode_context(&tok, &cp, want, 64);
    assert_int_equal(p.lens[0], n0);
    assert_memory_equal(p.ids[0], want, (size_t)n0 * sizeof(int));
    prompts_free(&p);
    // room for the last turn only
    const long last = 2 + ntok(&tok, "uppercase: big dog");
    assert_int_equal(prompts_encode(&set, &tok, (int)last + 8, 8, "max_new", 0, &p), 0);
    assert_true(p.n == 3 && p.trimmed == 1);
    assert_int_equal(p.lens[0], last);
    assert_int_equal(p.ids[0][0], tok.user);
    prompts_free(&p);
    assert_int_equal(prompts_encode(&set, &tok, (int)last + 7, 8, "max_new", 0, &p), 0);
    assert_int_equal(p.skipped, 1);
    prompts_free(&p);
    jsonl_free_prompts(&set);
    // a prompt's messages must end with the question; a pair's response is
    // one assistant message
    path = write_file("bad.jsonl", "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},"
                                   "{\"role\":\"assistant\",\"content\":\"b\"}]}\n");
    assert_int_equal(jsonl_read_prompts(path, &set), -1);
    assert_non_null(strstr(rlhf_errmsg, "end with the user message"));
    path = write_file("bad2.jsonl", "{\"prompt\":[{\"role\":\"user\",\"content\":\"a\"}],"
                                    "\"chosen\":[{\"role\":\"user\",\"content\":\"b\"}],"
                                    "\"rejected\":\"c\"}\n");
    PrefSet ps;
    assert_int_equal(jsonl_read_prefs(path, &ps), -1);
    assert_non_null(strstr(rlhf_errmsg, "bad2.jsonl:1: field \"chosen\""));
    path = write_file("bad3.jsonl", "{\"prompt\":\"a\",\"messages\":[{\"role\":\"user\","
                                    "\"content\":\"a\"}]}\n");
    assert_int_equal(jsonl_read_prompts(path, &set), -1);
    assert_non_null(strstr(rlhf_errmsg, "both"));
    tokenizer_free(&tok);
}

static void collect(int token, void *ctx) {
    int *buf = ctx;  // buf[0] counts, tokens follow
    buf[1 + buf[0]++] = token;
}

// evaluate_chat_turns asks each turn as `rlhf chat` does: on held-out
// conversations from the task generator and a random model with a 64-token
// context, every reply equals the one a Conversation with a greedy
// TokenStream (conversation_reply) gives when fed the same messages in
// turn, whatever the batch; the graded answers of turn k are the
// conversations that have a turn k; turns answered after dropping older
// exchanges are counted (the short context makes some).
static void test_chat_turns_as_chat(void **state) {
    (void)state;
    char dir[128];
    snprintf(dir, sizeof dir, "%s/tasks", tmpdir);
    TasksSpec spec = {.out_dir = dir, .seed = 3, .n_train = 40, .n_test = 15, .chat_share = 0.2};
    spec.n_families = tasks_parse_families(NULL, spec.families);
    TasksReport rep;
    assert_int_equal(tasks_write_data(&spec, &rep), 0);
    char path[192];
    snprintf(path, sizeof path, "%s/%s", dir, tasks_file_names[TASKS_CHAT_TEST]);
    SftSet set;
    assert_int_equal(jsonl_read_sft(path, &set), 0);
    assert_int_equal(set.n, 15);
    Tokenizer tok = train(TOKENIZER_CHAR);
    enum { T = 64 };
    GPTConfig c = {.n_layer = 2, .n_head = 2, .n_embd = 16, .block_size = T,
                   .vocab_size = tok.vocab_size};
    GPT m;
    gpt_build(&m, &c);
    ref_randomize_params(&m, 5);
    const long n = set.n;
    char **replies = mallocCheck((size_t)n * EVAL_MAX_TURNS * sizeof(char *));
    for (int run = 0; run < 4; run++) {
        const int max_new = run < 2 ? 6 : 16, batch = run % 2 ? 4 : 1;  // max_new <= T/4
        TasksTally tally[EVAL_MAX_TURNS];
        ChatEvalStats st;
        evaluate_chat_turns(&m, &tok, &set, n, max_new, batch, tally, &st, replies);
        long turns = 0, trimmed = 0, per_turn[EVAL_MAX_TURNS] = {0};
        for (long i = 0; i < n; i++) {
            Conversation cv;
            conversation_init(&cv, T);
            TokenStream ts;
            token_stream_build(&ts, &m.config, T, (SamplerParams){0.0f, 0, 1.0f}, 1);
            for (int k = 0; 2 * k < set.ex[i].n_turns; k++) {
                int prompt[T], got[T + 2] = {0};
                const int pl = (int)chat_encode_prompt(&tok, set.ex[i].turns[2 * k].text,
                                                       prompt, T);
                assert_true(pl > 2 && pl < T);
                conversation_begin_turn(&cv, prompt, pl, max_new);
                trimmed += cv.n_ex < k;
                ChatReplyEnd end;
                conversation_reply(&cv, &m, &ts, max_new, tok.eot, collect, got, &end);
                char *text = tokenizer_decode(&tok, got + 1, got[0], 0);
                const char *mine = replies[i * EVAL_MAX_TURNS + k];
                assert_non_null(mine);
                if (strcmp(text, mine) != 0)
                    fail_msg("run %d, conversation %ld turn %d: chat '%s', eval '%s'", run, i,
                             k + 1, text, mine);
                free(text);
                free(replies[i * EVAL_MAX_TURNS + k]);
                turns++;
                per_turn[k]++;
            }
            for (int k = set.ex[i].n_turns / 2; k < EVAL_MAX_TURNS; k++)
                assert_null(replies[i * EVAL_MAX_TURNS + k]);
            token_stream_free(&ts);
            conversation_free(&cv);
        }
        assert_int_equal(st.conversations, n);
        assert_int_equal(st.turns, turns);
        assert_int_equal(st.trimmed_turns, trimmed);
        if (max_new == 16) assert_true(trimmed > 0);
        // 15 conversations of 2, 3, 4 turns in turn
        const long want[4] = {15, 15, 10, 5};
        for (int k = 0; k < EVAL_MAX_TURNS; k++) {
            long graded = 0;
            for (int f = 0; f < tasks_n_families; f++) graded += tally[k].total[f];
            assert_int_equal(graded + tally[k].ungraded, per_turn[k]);
            assert_int_equal(tally[k].ungraded, 0);
            assert_int_equal(per_turn[k], k < 4 ? want[k] : 0);
        }
    }
    free(replies);
    gpt_free(&m);
    tokenizer_free(&tok);
    jsonl_free_sft(&set);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sft_loss_mask_every_assistant_turn),
        cmocka_unit_test(test_sft_trims_oldest_exchange_whole),
        cmocka_unit_test(test_context_encoding_and_fit),
        cmocka_unit_test(test_multiturn_preference_pairs),
        cmocka_unit_test(test_multiturn_ppo_prompts),
        cmocka_unit_test(test_chat_turns_as_chat),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

// Checks the chat template of src/chat.c with char and BPE tokenizers
// trained here: token layout and loss flags of single- and multi-turn
// examples, prompts and scoring pairs, truncated output, encoding errors;
// reward_scores of src/evaluate.c, whose score must not depend on the
// padding its batch adds, and a language model's likelihood of a pair; and
// the conversation of `rlhf chat` (src/conversation.c): trimming whole
// exchanges oldest first, the KV cache's reused prefix, replies equal to
// generation from a fresh cache.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "common.h"
#include "conversation.h"
#include "evaluate.h"
#include "gpt.h"
#include "jsonl.h"
#include "ref_gpt.h"
#include "rng.h"
#include "sampling.h"
#include "tokenizer.h"

#if defined(__SANITIZE_ADDRESS__)
const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void) { return "halt_on_error=1:print_stacktrace=1"; }
#endif

static const char CORPUS[] =
    "what is 2+3? 5. what is 7+1? 8. the quick brown fox jumps over the lazy dog.\n"
    "say hello. hello! say bye. bye! what is the capital of france? paris.\n"
    "what is 4+4? 8. the dog sleeps. the fox runs. hello there, how are you?\n";

static Tokenizer train(int type) {
    Tokenizer tok;
    const size_t n = sizeof CORPUS - 1;
    if (tokenizer_train(&tok, type, (const uint8_t *)CORPUS, n, 256 + 20 + 4) != 0)
        fail_msg("tokenizer_train: %s", rlhf_errmsg);
    return tok;
}

// Encodes text alone into a fresh array (caller frees); *n gets the length.
static int *encode(const Tokenizer *tok, const char *text, long *n) {
    *n = tokenizer_encode(tok, (const uint8_t *)text, strlen(text), NULL, 0);
    assert_true(*n >= 1);
    int *ids = mallocCheck((size_t)*n * sizeof(int));
    assert_int_equal(tokenizer_encode(tok, (const uint8_t *)text, strlen(text), ids, *n), *n);
    return ids;
}

// Builds the expected ids and loss flags of a conversation by hand:
// user turns are <|user|> text <|assistant|> (no loss), assistant turns
// are text <|endoftext|> (loss on every token, the end-of-text included).
static long expected(const Tokenizer *tok, const Turn *turns, int n_turns, int *ids,
                     unsigned char *loss) {
    long n = 0, k;
    for (int t = 0; t < n_turns; t++) {
        int user = turns[t].role == TURN_USER;
        if (user) ids[n] = tok->user, loss[n++] = 0;
        int *x = encode(tok, turns[t].text, &k);
        for (long i = 0; i < k; i++) ids[n] = x[i], loss[n++] = !user;
        free(x);
        if (user) ids[n] = tok->assistant, loss[n++] = 0;
        else ids[n] = tok->eot, loss[n++] = 1;
    }
    return n;
}

// The four specials are distinct (pad never equals end-of-text) and lie
// outside the plain vocabulary, for both tokenizer types; text that spells
// a special's name encodes to plain tokens.
static void test_specials_distinct(void **state) {
    (void)state;
    for (int type = 0; type < 2; type++) {
        Tokenizer tok = train(type == 0 ? TOKENIZER_CHAR : TOKENIZER_BPE);
        const int sp[4] = {tok.eot, tok.user, tok.assistant, tok.pad};
        for (int i = 0; i < 4; i++) {
            assert_true(sp[i] >= 0 && sp[i] < tok.vocab_size);
            for (int j = i + 1; j < 4; j++) assert_int_not_equal(sp[i], sp[j]);
        }
        assert_int_not_equal(tok.pad, tok.eot);
        long n;
        int *x = encode(&tok, "<|endoftext|><|pad|><|user|><|assistant|>", &n);
        for (long i = 0; i < n; i++)
            for (int j = 0; j < 4; j++) assert_int_not_equal(x[i], sp[j]);
        free(x);
        tokenizer_free(&tok);
    }
}

// One turn: <|user|> prompt <|assistant|> response <|endoftext|>, loss on
// the response tokens and the end-of-text only. chat_encode_prompt gives
// the prefix up to <|assistant|>; chat_encode_pair the same ids as the
// example (with the end-of-text) or without it (no_eot).
static void test_single_turn_layout(void **state) {
    (void)state;
    for (int type = 0; type < 2; type++) {
        Tokenizer tok = train(type == 0 ? TOKENIZER_CHAR : TOKENIZER_BPE);
        Turn turns[2] = {{TURN_USER, "what is 2+3?", NULL}, {TURN_ASSISTANT, "5.", NULL}};
        SftExample ex = {.turns = turns, .n_turns = 2, .family = "", .answer = ""};
        int want[128], ids[128];
        unsigned char wl[128], loss[128];
        long n = expected(&tok, turns, 2, want, wl);
        long got = chat_encode_example(&tok, &ex, ids, loss, 128);
        assert_int_equal(got, n);
        assert_memory_equal(ids, want, (size_t)n * sizeof(int));
        assert_memory_equal(loss, wl, (size_t)n);
        // shape by hand: first <|user|>, then <|assistant|> at q-1, last <|endoftext|>
        long q = chat_encode_prompt(&tok, "what is 2+3?", ids, 128);
        assert_true(q >= 3 && q < n);
        assert_int_equal(ids[0], tok.user);
        assert_int_equal(ids[q - 1], tok.assistant);
        assert_memory_equal(ids, want, (size_t)q * sizeof(int));
        for (long i = 0; i < n; i++) assert_int_equal(wl[i], i >= q);
        assert_int_equal(want[n - 1], tok.eot);
        // scoring pairs
        assert_int_equal(chat_encode_pair(&tok, "what is 2+3?", "5.", 0, ids, 128), n);
        assert_memory_equal(ids, want, (size_t)n * sizeof(int));
        assert_int_equal(chat_encode_pair(&tok, "what is 2+3?", "5.", 1, ids, 128), n - 1);
        assert_memory_equal(ids, want, (size_t)(n - 1) * sizeof(int));
        // an empty response is just the end-of-text
        assert_int_equal(chat_encode_pair(&tok, "what is 2+3?", "", 0, ids, 128), q + 1);
        assert_int_equal(ids[q], tok.eot);
        tokenizer_free(&tok);
    }
}

// Three exchanges: each user turn opens with <|user|> and closes with
// <|assistant|>, each response ends with <|endoftext|>; loss on responses
// and their end-of-text only (the flags are hand-built, expected()). The
// count of loss tokens equals the sum of the responses' lengths + 3.
static void test_multi_turn_layout(void **state) {
    (void)state;
    for (int type = 0; type < 2; type++) {
        Tokenizer tok = train(type == 0 ? TOKENIZER_CHAR : TOKENIZER_BPE);
        Turn turns[6] = {{TURN_USER, "say hello.", NULL},  {TURN_ASSISTANT, "hello!", NULL},
                         {TURN_USER, "what is 7+1?", NULL}, {TURN_ASSISTANT, "8.", NULL},
                         {TURN_USER, "say bye.", NULL},     {TURN_ASSISTANT, "bye!", NULL}};
        SftExample ex = {.turns = turns, .n_turns = 6, .family = "", .answer = ""};
        int want[256], ids[256];
        unsigned char wl[256], loss[256];
        long n = expected(&tok, turns, 6, want, wl);
        assert_int_equal(chat_encode_example(&tok, &ex, ids, loss, 256), n);
        assert_memory_equal(ids, want, (size_t)n * sizeof(int));
        assert_memory_equal(loss, wl, (size_t)n);
        int users = 0, assistants = 0, eots = 0;
        long with_loss = 0, resp = 0;
        for (long i = 0; i < n; i++) {
            users += ids[i] == tok.user;
            assistants += ids[i] == tok.assistant;
            eots += ids[i] == tok.eot;
            with_loss += loss[i];
            if (ids[i] == tok.eot) assert_int_equal(loss[i], 1);
            if (ids[i] == tok.user || ids[i] == tok.assistant) assert_int_equal(loss[i], 0);
        }
        for (int t = 1; t < 6; t += 2) {
            long k;
            free(encode(&tok, turns[t].text, &k));
            resp += k;
        }
        assert_true(users == 3 && assistants == 3 && eots == 3);
        assert_int_equal(with_loss, resp + 3);
        tokenizer_free(&tok);
    }
}

// Output buffers of every size below the full length: each function
// returns the full length, writes exactly the first max ids (and flags),
// and nothing past them; max 0 with NULL buffers measures.
static void test_truncated_output(void **state) {
    (void)state;
    for (int type = 0; type < 2; type++) {
        Tokenizer tok = train(type == 0 ? TOKENIZER_CHAR : TOKENIZER_BPE);
        Turn turns[4] = {{TURN_USER, "what is 4+4?", NULL}, {TURN_ASSISTANT, "8.", NULL},
                         {TURN_USER, "the dog sleeps.", NULL}, {TURN_ASSISTANT, "the fox runs.", NULL}};
        SftExample ex = {.turns = turns, .n_turns = 4, .family = "", .answer = ""};
        int full[256], ids[260];
        unsigned char fl[256], loss[260];
        const long n = chat_encode_example(&tok, &ex, full, fl, 256);
        const long np = chat_encode_pair(&tok, "hello there, how are you?", "bye!", 0, NULL, 0);
        const long nq = chat_encode_prompt(&tok, "hello there, how are you?", NULL, 0);
        assert_true(n > 8 && np > 8 && nq > 4);
        assert_int_equal(chat_encode_example(&tok, &ex, NULL, NULL, 0), n);
        int fp[256], fq[256];
        assert_int_equal(chat_encode_pair(&tok, "hello there, how are you?", "bye!", 0, fp, 256), np);
        assert_int_equal(chat_encode_prompt(&tok, "hello there, how are you?", fq, 256), nq);
        for (long max = 0; max < n; max++) {
            for (int i = 0; i < 260; i++) ids[i] = -7, loss[i] = 0xAB;
            assert_int_equal(chat_encode_example(&tok, &ex, ids, loss, max), n);
            for (long i = 0; i < max; i++) assert_true(ids[i] == full[i] && loss[i] == fl[i]);
            for (long i = max; i < 260; i++) assert_true(ids[i] == -7 && loss[i] == 0xAB);
        }
        for (long max = 0; max < np; max++) {
            for (int i = 0; i < 260; i++) ids[i] = -7;
            assert_int_equal(chat_encode_pair(&tok, "hello there, how are you?", "bye!", 0, ids, max), np);
            for (long i = 0; i < max; i++) assert_int_equal(ids[i], fp[i]);
            for (long i = max; i < 260; i++) assert_int_equal(ids[i], -7);
        }
        for (long max = 0; max < nq; max++) {
            for (int i = 0; i < 260; i++) ids[i] = -7;
            assert_int_equal(chat_encode_prompt(&tok, "hello there, how are you?", ids, max), nq);
            for (long i = 0; i < max; i++) assert_int_equal(ids[i], fq[i]);
            for (long i = max; i < 260; i++) assert_int_equal(ids[i], -7);
        }
        tokenizer_free(&tok);
    }
}

// A char tokenizer lacks bytes its corpus never held (here 0x01 and the
// UTF-8 of "é"): every encoder returns -1 with a reason, in a prompt and
// in a response.
static void test_encoding_error(void **state) {
    (void)state;
    Tokenizer tok = train(TOKENIZER_CHAR);
    int ids[64];
    unsigned char loss[64];
    rlhf_errmsg[0] = '\0';
    assert_int_equal(chat_encode_prompt(&tok, "caf\xc3\xa9", ids, 64), -1);
    assert_true(rlhf_errmsg[0] != '\0');
    assert_int_equal(chat_encode_pair(&tok, "ok", "a\x01", 0, ids, 64), -1);
    Turn turns[2] = {{TURN_USER, "fine", NULL}, {TURN_ASSISTANT, "caf\xc3\xa9", NULL}};
    SftExample ex = {.turns = turns, .n_turns = 2, .family = "", .answer = ""};
    assert_int_equal(chat_encode_example(&tok, &ex, ids, loss, 64), -1);
    tokenizer_free(&tok);
}

// ---------------------------------------------------------------------------
// reward_scores: the reward is read at the same position whatever the padding
// ---------------------------------------------------------------------------

enum { RT = 48 };

// A random 2-layer model over tok's vocabulary with context RT.
static GPT random_model(const Tokenizer *tok, int value_head, uint64_t seed) {
    GPTConfig c = {.n_layer = 2, .n_head = 2, .n_embd = 16, .block_size = RT,
                   .vocab_size = tok->vocab_size, .value_head = value_head};
    GPT m;
    gpt_build(&m, &c);
    ref_randomize_params(&m, seed);
    return m;
}

// A random reward model over the char vocabulary. The score of a pair is
// the value at its last token (the end-of-text unless no_eot): the same
// when scored alone, in batches with longer pairs (more right padding,
// batch sizes 2 and 4), and as gpt_forward of its ids alone. Causal
// attention makes padding invisible in exact arithmetic; in floats the
// padded forward runs other sgemm shapes, so the bound is 1e-5 (values
// O(1), float accumulation over C = 16 channels and two layers) and
// bit-identity is reported in verbose mode. no_eot changes the score
// (another last token); a pair longer than the context is scored on its
// first RT tokens and counted as truncated.
static void test_reward_scores_padding_invariant(void **state) {
    (void)state;
    Tokenizer tok = train(TOKENIZER_CHAR);
    GPT rm = random_model(&tok, 1, 601);
    const char *prompts[4] = {"say bye.", "what is the capital of france?", "say hello.",
                              "the quick brown fox jumps over the lazy dog, twice over."};
    const char *responses[4] = {"bye!", "paris, it is.", "hello!",
                                "the lazy dog sleeps on and on and on and on."};
    const int no_eot[4] = {0, 0, 1, 0};
    float alone[4], batched[4], pairs2[4];
    long trunc = -1;
    for (int i = 0; i < 4; i++) reward_scores(&rm, &tok, prompts + i, responses + i, no_eot + i, 1, 1, alone + i, NULL);
    reward_scores(&rm, &tok, prompts, responses, no_eot, 4, 4, batched, &trunc);
    assert_int_equal(trunc, 1);  // the last pair exceeds RT tokens
    reward_scores(&rm, &tok, prompts, responses, no_eot, 4, 2, pairs2, NULL);
    int identical = 1;
    for (int i = 0; i < 4; i++) {
        if (getenv("RLHF_TEST_VERBOSE"))
            fprintf(stderr, "pair %d: alone %.9g batch4 %.9g batch2 %.9g\n", i, alone[i], batched[i], pairs2[i]);
        assert_true(fabsf(alone[i] - batched[i]) <= 1e-5f);
        assert_true(fabsf(alone[i] - pairs2[i]) <= 1e-5f);
        identical &= alone[i] == batched[i] && alone[i] == pairs2[i];
    }
    if (getenv("RLHF_TEST_VERBOSE")) fprintf(stderr, "bit-identical: %s\n", identical ? "yes" : "no");
    // direct: the value at the last token of the encoded pair
    for (int i = 0; i < 4; i++) {
        int ids[256];
        long n = chat_encode_pair(&tok, prompts[i], responses[i], no_eot[i], ids, 256);
        assert_true(n > 1);
        if (i < 3) assert_true(n <= RT);
        else assert_true(n > RT);
        int T = n < RT ? (int)n : RT;
        gpt_forward(&rm, ids, 1, T, 0);
        assert_true(fabsf(rm.acts.values[T - 1] - alone[i]) <= 1e-5f);
        if (!no_eot[i]) assert_int_equal(ids[n - 1], tok.eot);
    }
    // the end-of-text is part of what is scored
    const int with_eot[1] = {0};
    float s_eot;
    reward_scores(&rm, &tok, prompts + 2, responses + 2, with_eot, 1, 1, &s_eot, NULL);
    assert_true(fabsf(s_eot - alone[2]) > 1e-4f);
    float s_null;
    reward_scores(&rm, &tok, prompts + 2, responses + 2, NULL, 1, 1, &s_null, NULL);
    assert_true(s_null == s_eot);
    gpt_free(&rm);
    tokenizer_free(&tok);
}

// evaluate_pairs with a language model (no value head): each side's score
// is its log-likelihood, the sum of log p(token) over the response and its
// end-of-text (none for a rejected_no_eot side), whatever the batch adds as
// padding. Checked against the double reference forward (tests/ref_gpt.c):
// scores are sums of ~10-25 log-probs of O(1) logits computed in float, so
// the bound is 1e-5 per unit of |score| (seen: ~1e-7).
static void test_likelihood_pairs(void **state) {
    (void)state;
    Tokenizer tok = train(TOKENIZER_CHAR);
    GPT m = random_model(&tok, 0, 611);
    char path[] = "/tmp/rlhf_test_pairs_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs("{\"prompt\":\"say bye.\",\"chosen\":\"bye!\",\"rejected\":\"hello!\"}\n"
          "{\"prompt\":\"what is 4+4?\",\"chosen\":\"8.\",\"rejected\":\"the dog sleeps. the "
          "fox runs.\",\"rejected_no_eot\":true}\n"
          "{\"prompt\":\"what is the capital of france?\",\"chosen\":\"paris.\",\"rejected\":"
          "\"the fox.\"}\n", f);
    fclose(f);
    PrefSet set;
    assert_int_equal(jsonl_read_prefs(path, &set), 0);
    PairResult pr;
    PairScores ps;
    assert_int_equal(evaluate_pairs(&m, &tok, &set, 0, 4, &pr, &ps), 0);
    assert_int_equal(pr.pairs, 3);
    assert_int_equal(ps.n, 3);
    double *params = ref_params_to_double(&m);
    double right = 0;
    for (long i = 0; i < 3; i++) {
        const PrefExample *e = &set.ex[i];
        for (int side = 0; side < 2; side++) {
            int ids[RT], targets[RT];
            float w[RT];
            long n = chat_encode_pair(&tok, e->prompt, side ? e->rejected : e->chosen,
                                      side ? e->rejected_no_eot : 0, ids, RT);
            long pl = chat_encode_prompt(&tok, e->prompt, targets, RT);
            assert_true(n <= RT && pl > 0 && pl < n);
            for (long t = 0; t < n; t++) {
                targets[t] = t >= pl - 1 && t + 1 < n ? ids[t + 1] : -1;
                w[t] = 1.0f;
            }
            double ll = -ref_gpt_forward(&m.config, m.info, params, ids, targets, w, 1, (int)n, NULL, NULL);
            float got = side ? ps.rejected[i] : ps.chosen[i];
            if (getenv("RLHF_TEST_VERBOSE"))
                fprintf(stderr, "pair %ld side %d: %.6f vs reference %.6f\n", i, side, got, ll);
            assert_true(fabs(got - ll) <= 1e-5 * fmax(1.0, fabs(ll)));
        }
        right += ps.chosen[i] > ps.rejected[i];
    }
    assert_true(fabs(pr.accuracy - right / 3) < 1e-12);
    free(params);
    pair_scores_free(&ps);
    jsonl_free_prefs(&set);
    remove(path);
    gpt_free(&m);
    tokenizer_free(&tok);
}

// --- the conversation of `rlhf chat` (src/conversation.c) -----------------------

// Reply room by hand: min(max_new, T/4), within what the prompt leaves, at
// least 1.
static void test_reply_room(void **state) {
    (void)state;
    assert_int_equal(chat_reply_room(48, 10, 8), 8);
    assert_int_equal(chat_reply_room(48, 10, 100), 12);
    assert_int_equal(chat_reply_room(48, 40, 100), 8);
    assert_int_equal(chat_reply_room(48, 45, 100), 3);
    assert_int_equal(chat_reply_room(48, 47, 100), 1);
    assert_int_equal(chat_reply_room(48, 10, 0), 1);
    assert_int_equal(chat_reply_room(7, 2, 5), 1);  // T/4 = 1
}

// Random exchanges (1..30 tokens, each token naming its exchange) and
// prompts (1..T-1 tokens) in a 40-token context: each turn drops the oldest
// exchanges and only as many as it must (one fewer would not leave the
// reply room), keeps the rest whole and in order, and its input is the
// kept exchanges back to back, then the prompt. /reset forgets them all.
static void test_conversation_trims_oldest_whole(void **state) {
    (void)state;
    enum { T = 40, N = 400 };
    static int len[N];
    int prompt[T], ex[30];
    RefRng r;
    ref_rng_init(&r, 71);
    Conversation c;
    conversation_init(&c, T);
    int total = 0, first = 0, dropped_any = 0;
    for (int turn = 0; turn < N; turn++) {
        if (turn == N / 2) {  // /reset
            conversation_clear(&c);
            assert_int_equal(c.n_ex, 0);
            assert_int_equal(c.ex_tokens, 0);
            first = total;
        }
        const int pl = 1 + ref_rng_int(&r, T - 1), max_new = 1 + ref_rng_int(&r, 20);
        for (int i = 0; i < pl; i++) prompt[i] = -1 - i;
        const int dropped = conversation_begin_turn(&c, prompt, pl, max_new);
        assert_true(dropped >= 0 && dropped <= total - first);
        dropped_any += dropped > 0;
        const int room = chat_reply_room(T, pl, max_new);
        // the oldest went, only as many as needed
        int kept = 0;
        for (int k = first + dropped; k < total; k++) kept += len[k];
        assert_int_equal(c.ex_tokens, kept);
        assert_true(c.n_ex == 0 || kept + pl + room <= T);
        if (dropped > 0) assert_true(kept + len[first + dropped - 1] + pl + room > T);
        first += dropped;
        assert_int_equal(c.n_ex, total - first);
        // whole exchanges, in order, then the prompt
        int at = 0;
        for (int i = 0; i < c.n_ex; i++) {
            assert_int_equal(c.ex[i].n, len[first + i]);
            for (int j = 0; j < c.ex[i].n; j++) {
                assert_int_equal(c.ex[i].ids[j], first + i);
                assert_int_equal(c.seq[at++], first + i);
            }
        }
        assert_int_equal(c.n_prompt, pl);
        assert_int_equal(c.n_seq, at + pl);
        assert_memory_equal(c.seq + at, prompt, (size_t)pl * sizeof(int));
        // the turn's exchange
        len[total] = 1 + ref_rng_int(&r, 30);
        for (int j = 0; j < len[total]; j++) ex[j] = total;
        conversation_add(&c, ex, len[total]);
        total++;
    }
    assert_true(dropped_any > N / 4);
    conversation_free(&c);
}

// The reused prefix: as long as cache and input agree, never the whole
// input (its last token must be fed for the logits).
static void test_cache_reuse_prefix(void **state) {
    (void)state;
    const int cached[4] = {5, 6, 7, 8};
    assert_int_equal(chat_cache_reuse(cached, 4, (const int[]){5, 6, 7, 8, 9, 1}, 6), 4);
    assert_int_equal(chat_cache_reuse(cached, 4, (const int[]){5, 6, 9, 8, 9}, 5), 2);
    assert_int_equal(chat_cache_reuse(cached, 4, (const int[]){9, 6, 7, 8, 9}, 5), 0);
    assert_int_equal(chat_cache_reuse(cached, 4, (const int[]){5, 6, 7, 8}, 4), 3);
    assert_int_equal(chat_cache_reuse(cached, 4, (const int[]){5, 6}, 2), 1);
    assert_int_equal(chat_cache_reuse(cached, 4, (const int[]){5}, 1), 0);
    assert_int_equal(chat_cache_reuse(cached, 0, (const int[]){5, 6, 7}, 3), 0);
    assert_int_equal(chat_cache_reuse(cached, 2, (const int[]){5, 6, 7, 8, 9}, 5), 2);
}

static void collect_token(int token, void *ctx) {
    int *buf = ctx;  // buf[0] counts, tokens follow
    buf[1 + buf[0]++] = token;
}

// A conversation with a random model over the char vocabulary in the
// 48-token context, greedy and sampled, with a /reset in the middle: each
// reply (tokens, emitted tokens, why it ended) equals what `generate`
// draws from a fresh KV cache fed the whole input, with an rng in step;
// a turn that dropped nothing reuses everything the cache held; the
// exchange recorded is prompt + reply, closed with end-of-text when cut.
// Every way a reply ends occurs.
static void test_conversation_reply_equals_fresh(void **state) {
    (void)state;
    Tokenizer tok = train(TOKENIZER_CHAR);
    GPT m = random_model(&tok, 0, 621);
    const char *msgs[] = {"say hello.", "what is 2+3?", "the dog sleeps.", "say bye.",
                          "what is 4+4?", "hello there, how are you?", "the fox runs.", "8."};
    const int n_msgs = (int)(sizeof msgs / sizeof *msgs);
    int seen[3] = {0, 0, 0};
    for (int run = 0; run < 6; run++) {
        const float temp = run < 2 ? 0.0f : 1.0f;
        const int max_new = run % 2 ? 30 : 6;
        const SamplerParams sp = {temp, 0, 1.0f};
        TokenStream ts;
        token_stream_build(&ts, &m.config, RT, sp, 100 + (uint64_t)run);
        Rng rng;
        rng_init(&rng, 100 + (uint64_t)run);
        Sampler smp;
        sampler_build(&smp, tok.vocab_size);
        Conversation c;
        conversation_init(&c, RT);
        for (int turn = 0; turn < 2 * n_msgs; turn++) {
            if (turn == n_msgs) conversation_clear(&c);
            int prompt[RT], cached[RT], out[RT], emitted[RT + 1] = {0};
            const int pl = (int)chat_encode_prompt(&tok, msgs[turn % n_msgs], prompt, RT);
            assert_true(pl > 2 && pl < RT);
            const int n_cached = c.n_cached, had = c.n_ex;
            memcpy(cached, c.cached, (size_t)n_cached * sizeof(int));
            const int dropped = conversation_begin_turn(&c, prompt, pl, max_new);
            const int budget = conversation_reply_budget(&c, max_new);
            assert_true(budget >= 1 && budget <= max_new && c.n_seq + budget - 1 <= RT);
            ChatReplyEnd end;
            const int g = conversation_reply(&c, &m, &ts, max_new, tok.eot, collect_token,
                                             emitted, &end);
            // what the cache kept
            assert_int_equal(c.reused, chat_cache_reuse(cached, n_cached, c.seq, c.n_seq));
            if (turn == 0) assert_int_equal(c.reused, 0);
            if (had > 0 && dropped == 0) assert_int_equal(c.reused, n_cached);
            // a fresh cache fed the whole input
            KVCache kv;
            kvcache_build(&kv, &m.config, 1, RT);
            const int *rows[1] = {c.seq};
            int out_len;
            generate(&m, &kv, &smp, rows, &c.n_seq, 1, budget, tok.eot, &sp, &rng, out, &out_len);
            kvcache_free(&kv);
            assert_int_equal(g, out_len);
            const ChatExchange *e = &c.ex[c.n_ex - 1];
            assert_memory_equal(e->ids, prompt, (size_t)pl * sizeof(int));
            assert_memory_equal(e->ids + pl, out, (size_t)g * sizeof(int));
            const int ended = out[g - 1] == tok.eot;
            assert_int_equal(e->n, pl + g + !ended);
            assert_int_equal(e->ids[e->n - 1], tok.eot);
            assert_int_equal(emitted[0], g - ended);
            assert_memory_equal(emitted + 1, out, (size_t)(g - ended) * sizeof(int));
            if (ended) assert_int_equal(end, CHAT_REPLY_EOT);
            else assert_int_equal(end, budget == max_new ? CHAT_REPLY_MAX_NEW : CHAT_REPLY_CONTEXT);
            if (!ended) assert_int_equal(g, budget);
            seen[end]++;
            assert_int_equal(c.n_cached, c.n_seq + g - 1);
        }
        if (getenv("RLHF_TEST_VERBOSE"))
            fprintf(stderr, "run %d: ended %d, max_new %d, context %d\n", run, seen[0], seen[1],
                    seen[2]);
        conversation_free(&c);
        sampler_free(&smp);
        token_stream_free(&ts);
    }
    for (int i = 0; i < 3; i++) assert_true(seen[i] > 0);
    gpt_free(&m);
    tokenizer_free(&tok);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_specials_distinct),
        cmocka_unit_test(test_single_turn_layout),
        cmocka_unit_test(test_multi_turn_layout),
        cmocka_unit_test(test_truncated_output),
        cmocka_unit_test(test_encoding_error),
        cmocka_unit_test(test_reward_scores_padding_invariant),
        cmocka_unit_test(test_likelihood_pairs),
        cmocka_unit_test(test_reply_room),
        cmocka_unit_test(test_conversation_trims_oldest_whole),
        cmocka_unit_test(test_cache_reuse_prefix),
        cmocka_unit_test(test_conversation_reply_equals_fresh),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

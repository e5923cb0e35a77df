// Checks the token-window loader of src/data.c (windows and shifted
// targets, the sequential sweep and its wrap, shuffled draws and their
// reproducibility from the saved state, the too-short shard error) and the
// ragged sequences of src/seqs.c (padded batches, loss masks, the epoch
// order's permutations and their reproducibility from the position alone).
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat.h"
#include "common.h"
#include "data.h"
#include "jsonl.h"
#include "seqs.h"
#include "tokenizer.h"

#if defined(__SANITIZE_ADDRESS__)
const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void) { return "halt_on_error=1:print_stacktrace=1"; }
#endif

// tokens[i] = 1000 + i, so a token names its own offset
static int *make_tokens(size_t n) {
    int *t = mallocCheck(n * sizeof(int));
    for (size_t i = 0; i < n; i++) t[i] = 1000 + (int)i;
    return t;
}

// Every row of a batch is a window: inputs tokens[o .. o+T), targets
// tokens[o+1 .. o+T]. Returns the offsets through offs (B).
static void check_windows(const int *inputs, const int *targets, int B, int T, size_t n,
                          int *offs) {
    for (int b = 0; b < B; b++) {
        int o = inputs[b * T] - 1000;
        assert_true(o >= 0 && (size_t)o + T < n);  // the last target exists
        for (int t = 0; t < T; t++) {
            assert_int_equal(inputs[b * T + t], 1000 + o + t);
            assert_int_equal(targets[b * T + t], 1000 + o + t + 1);
        }
        offs[b] = o;
    }
}

// n = 19, T = 4: valid offsets 0..14. The sweep takes 0 4 8 12, then 16
// would overrun and it wraps to 0 (within a batch too). n = 20 has offsets
// 0..15: 16 still wraps. A shard of exactly T+1 tokens has one window.
// Rewind starts the sweep over.
static void test_sequential_sweep_wraps(void **state) {
    (void)state;
    enum { T = 4, B = 3 };
    const size_t sizes[2] = {19, 20};
    for (int k = 0; k < 2; k++) {
        int *tok = make_tokens(sizes[k]);
        DataLoader dl;
        assert_int_equal(dataloader_init(&dl, tok, sizes[k], B, T, 0, 1), 0);
        int in[B * T], tg[B * T], offs[B];
        const int want[3][B] = {{0, 4, 8}, {12, 0, 4}, {8, 12, 0}};
        for (int i = 0; i < 3; i++) {
            dataloader_next(&dl, in, tg);
            check_windows(in, tg, B, T, sizes[k], offs);
            for (int b = 0; b < B; b++) assert_int_equal(offs[b], want[i][b]);
        }
        dataloader_rewind(&dl);
        dataloader_next(&dl, in, tg);
        check_windows(in, tg, B, T, sizes[k], offs);
        assert_true(offs[0] == 0 && offs[1] == 4 && offs[2] == 8);
        free(tok);
    }
    int *tok = make_tokens(T + 1);
    DataLoader dl;
    assert_int_equal(dataloader_init(&dl, tok, T + 1, 2, T, 0, 1), 0);
    int in[2 * T], tg[2 * T], offs[2];
    for (int i = 0; i < 3; i++) {
        dataloader_next(&dl, in, tg);
        check_windows(in, tg, 2, T, T + 1, offs);
        assert_true(offs[0] == 0 && offs[1] == 0);
    }
    assert_int_equal(dataloader_init(&dl, tok, T + 1, 2, T, 1, 1), 0);  // shuffled: same
    dataloader_next(&dl, in, tg);
    check_windows(in, tg, 2, T, T + 1, offs);
    assert_true(offs[0] == 0 && offs[1] == 0);
    free(tok);
}

// Fewer than T+1 tokens: -1 with a one-line reason naming block_size.
static void test_too_short_shard(void **state) {
    (void)state;
    int *tok = make_tokens(8);
    DataLoader dl;
    rlhf_errmsg[0] = '\0';
    assert_int_equal(dataloader_init(&dl, tok, 8, 2, 8, 0, 1), -1);
    assert_non_null(strstr(rlhf_errmsg, "block_size"));
    assert_null(strchr(rlhf_errmsg, '\n'));
    assert_int_equal(dataloader_init(&dl, tok, 0, 1, 1, 1, 1), -1);
    assert_int_equal(dataloader_init(&dl, tok, 8, 2, 7, 1, 1), 0);
    free(tok);
}

// Shuffled (n = 50, T = 5: offsets 0..44): every row is a window, 200
// batches of 3 reach every offset (a miss has probability ~1e-4 for a
// uniform draw; the seed is fixed), equal seeds give equal batches, and a
// loader set to the state saved after 3 batches (with another seed) draws
// the same next 5 batches. The sequential sweep resumes the same way.
static void test_shuffled_reproducible_from_state(void **state) {
    (void)state;
    enum { N = 50, T = 5, B = 3 };
    int *tok = make_tokens(N);
    DataLoader a, b;
    assert_int_equal(dataloader_init(&a, tok, N, B, T, 1, 7), 0);
    assert_int_equal(dataloader_init(&b, tok, N, B, T, 1, 7), 0);
    int in[B * T], tg[B * T], in2[B * T], tg2[B * T], offs[B];
    int seen[N] = {0};
    for (int i = 0; i < 200; i++) {
        dataloader_next(&a, in, tg);
        dataloader_next(&b, in2, tg2);
        check_windows(in, tg, B, T, N, offs);
        assert_memory_equal(in, in2, sizeof in);
        for (int k = 0; k < B; k++) seen[offs[k]]++;
    }
    for (int o = 0; o < N - T; o++) assert_true(seen[o] > 0);
    for (int shuffle = 1; shuffle >= 0; shuffle--) {
        assert_int_equal(dataloader_init(&a, tok, N, B, T, shuffle, 11), 0);
        for (int i = 0; i < 3; i++) dataloader_next(&a, in, tg);
        DataState st;
        dataloader_get_state(&a, &st);
        if (shuffle) assert_int_equal(st.cursor, 3);  // cursor counts batches drawn
        int want[5][B * T];
        for (int i = 0; i < 5; i++) {
            dataloader_next(&a, in, tg);
            memcpy(want[i], in, sizeof in);
            check_windows(in, tg, B, T, N, offs);
        }
        assert_int_equal(dataloader_init(&b, tok, N, B, T, shuffle, 999), 0);
        dataloader_set_state(&b, &st);
        for (int i = 0; i < 5; i++) {
            dataloader_next(&b, in2, tg2);
            assert_memory_equal(in2, want[i], sizeof in2);
            check_windows(in2, tg2, B, T, N, offs);
        }
    }
    free(tok);
}

// Sequences 1 2 3 4 5 (loss on 3 4 5), 6 7 (loss on 7), 8 (loss on 8), 9 10
// without flags. Batch rows {1, 0, 2, 3}: T = 5 - 1 = 4; by hand:
//   inputs  6 7 P P | 1 2 3 4 | 8 P P P | 9 10 P P
//   targets 7 -1..  | 2 3 4 5 | -1 ...  | 10 -1 ..
//   mask    1 0 0 0 | 0 1 1 1 | 0 0 0 0 | 0 0 0 0
// (the only target of "8" does not exist, so its flag never shows).
static void test_seqs_batch_padding(void **state) {
    (void)state;
    SeqSet s;
    seqs_init(&s);
    const int a[5] = {1, 2, 3, 4, 5}, b[2] = {6, 7}, c[1] = {8}, d[2] = {9, 10};
    const unsigned char la[5] = {0, 0, 1, 1, 1}, lb[2] = {0, 1}, lc[1] = {1};
    seqs_add(&s, a, la, 5);
    seqs_add(&s, b, lb, 2);
    seqs_add(&s, c, lc, 1);
    seqs_add(&s, d, NULL, 2);
    assert_int_equal(s.n, 4);
    assert_int_equal(seqs_len(&s, 0), 5);
    assert_int_equal(seqs_len(&s, 2), 1);
    enum { P = 99 };
    const long rows[4] = {1, 0, 2, 3};
    int in[32], tg[32];
    unsigned char m[32];
    assert_int_equal(seqs_batch(&s, rows, 4, P, in, tg, m), 4);
    const int want_in[16] = {6, 7, P, P, 1, 2, 3, 4, 8, P, P, P, 9, 10, P, P};
    const int want_tg[16] = {7, -1, -1, -1, 2, 3, 4, 5, -1, -1, -1, -1, 10, -1, -1, -1};
    const unsigned char want_m[16] = {1, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0};
    assert_memory_equal(in, want_in, sizeof want_in);
    assert_memory_equal(tg, want_tg, sizeof want_tg);
    assert_memory_equal(m, want_m, sizeof want_m);
    // a batch of one-token sequences still has one position
    const long one[1] = {2};
    assert_int_equal(seqs_batch(&s, one, 1, P, in, tg, m), 1);
    assert_true(in[0] == 8 && tg[0] == -1 && m[0] == 0);
    // growth past the initial capacities keeps every sequence intact
    for (int i = 0; i < 3000; i++) {
        int x[7];
        for (int t = 0; t < 7; t++) x[t] = i * 10 + t;
        seqs_add(&s, x, NULL, 1 + i % 7);
    }
    assert_int_equal(s.n, 3004);
    for (int i = 0; i < 3000; i++) {
        assert_int_equal(seqs_len(&s, 4 + i), 1 + i % 7);
        for (int t = 0; t < 1 + i % 7; t++) assert_int_equal(s.ids[s.off[4 + i] + t], i * 10 + t);
    }
    assert_int_equal(s.ids[s.off[0] + 4], 5);
    seqs_free(&s);
}

// n = 7: stream positions [7e, 7e+7) are a permutation of 0..6 for each
// epoch e; the epochs are not all the same order; a fresh EpochOrder asked
// for positions in a scrambled order (jumping back across epochs) gives
// the same items, so k alone is the state; another seed gives another
// stream; n = 1 is always item 0.
static void test_epoch_order(void **state) {
    (void)state;
    enum { N = 7, E = 6 };
    EpochOrder o;
    epoch_order_init(&o, N, 5);
    long seq[N * E];
    int differs = 0;
    for (int e = 0; e < E; e++) {
        int hit[N] = {0};
        for (int i = 0; i < N; i++) {
            seq[e * N + i] = epoch_order_at(&o, (int64_t)e * N + i);
            assert_true(seq[e * N + i] >= 0 && seq[e * N + i] < N);
            hit[seq[e * N + i]]++;
        }
        for (int i = 0; i < N; i++) assert_int_equal(hit[i], 1);
        if (e > 0) differs |= memcmp(seq + e * N, seq, N * sizeof(long)) != 0;
    }
    assert_true(differs);
    epoch_order_free(&o);
    EpochOrder f, g;
    epoch_order_init(&f, N, 5);
    epoch_order_init(&g, N, 6);
    int other = 0;
    for (int i = 0; i < N * E; i++) {
        int k = (i * 17 + 5) % (N * E);  // 17 is coprime with 42: visits all
        assert_int_equal(epoch_order_at(&f, k), seq[k]);
        other |= epoch_order_at(&g, k) != seq[k];
    }
    assert_true(other);
    epoch_order_free(&f);
    epoch_order_free(&g);
    EpochOrder one;
    epoch_order_init(&one, 1, 3);
    for (int k = 0; k < 5; k++) assert_int_equal(epoch_order_at(&one, k), 0);
    epoch_order_free(&one);
}

// Length-grouped batches: batch k depends on k alone; a group of G batches
// holds exactly the G*B items of its stretch of the epoch-order stream; each
// batch is a run of the group sorted by length, so lengths within a batch
// spread far less than in stream-order batches.
static void test_batch_stream(void **state) {
    (void)state;
    enum { N = 103, B = 4, G = 5, K = 60 };
    int lengths[N];
    for (int i = 0; i < N; i++) lengths[i] = 10 + (int)((i * 37u) % 50u);
    BatchStream bs;
    batch_stream_init(&bs, N, lengths, B, G, 99);
    long rows[K][B];
    for (int k = 0; k < K; k++) batch_stream_get(&bs, k, rows[k]);
    // any query order gives the same batches
    BatchStream again;
    batch_stream_init(&again, N, lengths, B, G, 99);
    for (int k = K - 1; k >= 0; k -= 7) {
        long r[B];
        batch_stream_get(&again, k, r);
        assert_memory_equal(r, rows[k], sizeof r);
    }
    // groups are permutations of their stream positions
    EpochOrder order;
    epoch_order_init(&order, N, 99);
    for (int g = 0; g < K / G; g++) {
        long want[G * B], got[G * B];
        for (int i = 0; i < G * B; i++) want[i] = epoch_order_at(&order, (int64_t)g * G * B + i);
        for (int b = 0; b < G; b++) memcpy(got + b * B, rows[g * G + b], sizeof rows[0]);
        for (int i = 0; i < G * B; i++) {
            int found = 0;
            for (int j = 0; j < G * B && !found; j++)
                if (got[j] == want[i]) {
                    got[j] = -1;  // each stream position used once
                    found = 1;
                }
            assert_true(found);
        }
    }
    // spread of lengths inside batches: sorted runs beat stream order
    double spread = 0, spread_stream = 0;
    for (int k = 0; k < K; k++) {
        int lo = 1 << 30, hi = 0, slo = 1 << 30, shi = 0;
        for (int i = 0; i < B; i++) {
            int L = lengths[rows[k][i]], S = lengths[epoch_order_at(&order, (int64_t)k * B + i)];
            lo = L < lo ? L : lo;
            hi = L > hi ? L : hi;
            slo = S < slo ? S : slo;
            shi = S > shi ? S : shi;
        }
        spread += hi - lo;
        spread_stream += shi - slo;
    }
    assert_true(spread < 0.5 * spread_stream);
    epoch_order_free(&order);
    batch_stream_free(&bs);
    batch_stream_free(&again);
}

// Grouped comparisons for the reward model (seqs_from_groups), from a file
// written here: groups in order of id whatever the line order; each
// distinct answer (text and end-of-text) one sequence, encoded as the chat
// template does; pairs renumbered to those sequences; a pair too long for
// the context skipped and counted; plain pairs one group each; a group
// mixing prompts and a pair of an answer with itself refused with their
// line.
static int groups_from(const char *text, const Tokenizer *tok, int T, PrefSet *set, SeqSet *s,
                       PrefGroups *g, long *skipped) {
    char path[] = "/tmp/rlhf_test_groups_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
    int rc = jsonl_read_prefs(path, set);
    remove(path);
    if (rc) return -2;  // the reader refused it
    return seqs_from_groups(set, tok, T, s, g, skipped);
}

static void test_seqs_from_groups(void **state) {
    (void)state;
    static const char corpus[] = "abcdefghijklmnopqrstuvwxyz 0123456789";
    Tokenizer tok;
    if (tokenizer_train(&tok, TOKENIZER_CHAR, (const uint8_t *)corpus, sizeof corpus - 1, 300))
        fail_msg("%s", rlhf_errmsg);
    const int T = 16;
    PrefSet set;
    SeqSet s;
    PrefGroups g;
    long skipped;
    const char *lines =
        "{\"prompt\":\"pp\",\"chosen\":\"a\",\"rejected\":\"b\",\"group\":5,\"ranks\":[0,2]}\n"
        "{\"prompt\":\"q\",\"chosen\":\"x\",\"rejected\":\"y\",\"group\":2,\"ranks\":[1,3]}\n"
        "{\"prompt\":\"pp\",\"chosen\":\"a\",\"rejected\":\"c\",\"group\":5,\"ranks\":[0,4]}\n"
        "{\"prompt\":\"pp\",\"chosen\":\"b\",\"rejected\":\"c\",\"group\":5,\"ranks\":[2,4]}\n"
        "{\"prompt\":\"pp\",\"chosen\":\"b\",\"rejected\":\"abcdefghijklmnop\",\"group\":5,"
        "\"ranks\":[2,9]}\n"
        "{\"prompt\":\"pp\",\"chosen\":\"a\",\"rejected\":\"b\",\"rejected_no_eot\":true,"
        "\"group\":5,\"ranks\":[0,1000]}\n";
    assert_int_equal(groups_from(lines, &tok, T, &set, &s, &g, &skipped), 0);
    assert_int_equal(skipped, 1);
    assert_int_equal(g.n, 2);
    // group 2 (line 2): x, y; group 5: a, b, c, b without end-of-text
    const long row_off[3] = {0, 2, 6}, pair_off[3] = {0, 1, 5};
    const long chosen[5] = {0, 2, 2, 3, 2}, rejected[5] = {1, 3, 4, 4, 5};
    assert_memory_equal(g.row_off, row_off, sizeof row_off);
    assert_memory_equal(g.pair_off, pair_off, sizeof pair_off);
    assert_memory_equal(g.chosen, chosen, sizeof chosen);
    assert_memory_equal(g.rejected, rejected, sizeof rejected);
    assert_int_equal(g.max_rows, 4);
    assert_int_equal(g.max_pairs, 4);
    assert_int_equal(s.n, 6);
    const char *answer[6] = {"x", "y", "a", "b", "c", "b"};
    const int no_eot[6] = {0, 0, 0, 0, 0, 1};
    int ids[32];
    for (int r = 0; r < 6; r++) {
        long len = chat_encode_pair(&tok, r < 2 ? "q" : "pp", answer[r], no_eot[r], ids, 32);
        assert_int_equal(seqs_len(&s, r), len);
        assert_memory_equal(s.ids + s.off[r], ids, (size_t)len * sizeof(int));
    }
    seqs_free(&s);
    pref_groups_free(&g);
    jsonl_free_prefs(&set);

    // plain pairs: a group each, in line order
    assert_int_equal(groups_from("{\"prompt\":\"q\",\"chosen\":\"x\",\"rejected\":\"y\"}\n"
                                 "{\"prompt\":\"q\",\"chosen\":\"x\",\"rejected\":\"z\"}\n",
                                 &tok, T, &set, &s, &g, &skipped), 0);
    assert_int_equal(g.n, 2);
    assert_int_equal(s.n, 4);  // x is scored once per group
    seqs_free(&s);
    pref_groups_free(&g);
    jsonl_free_prefs(&set);

    assert_int_equal(groups_from(
        "{\"prompt\":\"pp\",\"chosen\":\"a\",\"rejected\":\"b\",\"group\":1,\"ranks\":[0,2]}\n"
        "{\"prompt\":\"qq\",\"chosen\":\"a\",\"rejected\":\"c\",\"group\":1,\"ranks\":[0,4]}\n",
        &tok, T, &set, &s, &g, &skipped), -1);
    assert_non_null(strstr(rlhf_errmsg, ":2: group 1 has another prompt on line 1"));
    jsonl_free_prefs(&set);
    // one group id for far too many responses: refused at the line that
    // goes past PREF_GROUP_MAX_ROWS (two new answers per line)
    char *many = mallocCheck(200 * 80);
    size_t at = 0;
    for (int i = 0; i < 200; i++)
        at += (size_t)snprintf(many + at, 80, "{\"prompt\":\"q\",\"chosen\":\"a%d\",\"rejected\":"
                                              "\"b%d\",\"group\":3,\"ranks\":[0,1]}\n", i, i);
    assert_int_equal(groups_from(many, &tok, T, &set, &s, &g, &skipped), -1);
    assert_non_null(strstr(rlhf_errmsg, ":129: group 3 holds more than 256 different responses"));
    jsonl_free_prefs(&set);
    free(many);
    // the same answer on both sides: the reader refuses the text, and the
    // grouping the encoded ids (two spellings of one answer would meet here)
    assert_int_equal(groups_from("{\"prompt\":\"q\",\"chosen\":\"x\",\"rejected\":\"x\"}\n", &tok, T,
                                 &set, &s, &g, &skipped), -2);
    assert_non_null(strstr(rlhf_errmsg, "are the same text"));
    tokenizer_free(&tok);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sequential_sweep_wraps),
        cmocka_unit_test(test_too_short_shard),
        cmocka_unit_test(test_shuffled_reproducible_from_state),
        cmocka_unit_test(test_seqs_batch_padding),
        cmocka_unit_test(test_epoch_order),
        cmocka_unit_test(test_batch_stream),
        cmocka_unit_test(test_seqs_from_groups),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

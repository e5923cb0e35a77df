// Tests of the char and BPE tokenizers: round trips (random bytes, invalid
// UTF-8), BPE training and encoding against a naive reference, determinism,
// compression, special tokens, and the consistency check of tokenizer_finish.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "rng.h"
#include "tokenizer.h"

// ~n bytes of English-like text from a fixed seed: a skewed draw from a few
// real words (with UTF-8, digits, an apostrophe) and 400 made-up ones, with
// punctuation, newlines and tabs between them. Caller frees.
static uint8_t *make_text(size_t n, uint64_t seed) {
    static const char *fixed[] = {"the", "a", "and", "of", "is", "café", "naïve", "日本", "42",
                                  "1999", "don't", "--", "(see", "below)", "Hello", "World"};
    static const char *seps[] = {" ", " ", " ", " ", ", ", ". ", "\n", "\n\n", "\t", "  ", "! "};
    static const char *syl[] = {"ka", "ro", "mi", "ten", "sa", "lo", "ve", "dra", "qu", "is",
                                "ne", "th", "pu", "gor", "an", "el", "wy", "bi", "st", "ou"};
    enum { N_MADE = 400, N_FIXED = sizeof fixed / sizeof *fixed };
    char made[N_MADE][16];
    Rng rng;
    rng_init(&rng, 1000);  // the same made-up words for every seed
    for (int w = 0; w < N_MADE; w++) {
        made[w][0] = '\0';
        int ns = 1 + (int)rng_below(&rng, 4);
        for (int k = 0; k < ns; k++) strcat(made[w], syl[rng_below(&rng, 20)]);
    }
    rng_init(&rng, seed);
    uint8_t *t = malloc(n + 64);
    size_t len = 0;
    while (len < n) {
        // small indices far more often than large ones (roughly Zipf-like)
        uint64_t i = rng_below(&rng, 1 + rng_below(&rng, N_FIXED + N_MADE));
        const char *w = i < N_FIXED ? fixed[i] : made[i - N_FIXED];
        const char *s = seps[rng_below(&rng, sizeof seps / sizeof *seps)];
        memcpy(t + len, w, strlen(w));
        len += strlen(w);
        memcpy(t + len, s, strlen(s));
        len += strlen(s);
    }
    return t;  // n <= len < n + 64
}

static Tokenizer train_ok(int type, const uint8_t *text, size_t n, int vocab_size) {
    Tokenizer tok;
    int rc = tokenizer_train(&tok, type, text, n, vocab_size);
    if (rc != 0) fail_msg("training failed: %s", rlhf_errmsg);
    return tok;
}

// Encodes and decodes (with specials) and checks the bytes come back exactly;
// the decoded length comes from the token lengths since text may hold NULs.
static void assert_round_trip(const Tokenizer *tok, const uint8_t *text, size_t n) {
    long m = tokenizer_encode(tok, text, n, NULL, 0);
    assert_true(m >= 0);
    int *ids = malloc((size_t)(m ? m : 1) * sizeof *ids);
    assert_int_equal(tokenizer_encode(tok, text, n, ids, m), m);
    size_t total = 0;
    for (long i = 0; i < m; i++) {
        assert_true(ids[i] >= 0 && ids[i] < tok->vocab_size);
        assert_true(ids[i] != tok->eot && ids[i] != tok->user && ids[i] != tok->assistant &&
                    ids[i] != tok->pad);
        int len;
        tokenizer_token_bytes(tok, ids[i], &len);
        total += (size_t)len;
    }
    assert_int_equal(total, n);
    char *back = tokenizer_decode(tok, ids, m, 1);
    assert_memory_equal(back, text, n);
    assert_int_equal(back[n], '\0');
    free(back);
    free(ids);
}

static void test_bpe_round_trip_random_bytes(void **state) {
    (void)state;
    size_t n = 40000;
    uint8_t *text = make_text(n, 1);
    Tokenizer tok = train_ok(TOKENIZER_BPE, text, n, 600);
    Rng rng;
    rng_init(&rng, 7);
    uint8_t buf[3000];
    for (int trial = 0; trial < 50; trial++) {
        size_t len = 1 + rng_below(&rng, sizeof buf);
        for (size_t i = 0; i < len; i++) {
            // mix uniform bytes with spaces and letters so chunks of every
            // kind (and pieces the merges apply to) occur
            uint64_t k = rng_below(&rng, 4);
            buf[i] = k == 0 ? ' ' : k == 1 ? text[rng_below(&rng, n)] : (uint8_t)rng_below(&rng, 256);
        }
        assert_round_trip(&tok, buf, len);
    }
    // edge cases: NULs, 0xFF, lone continuation bytes, a truncated and an
    // overlong UTF-8 sequence, a surrogate encoding
    const uint8_t odd[] = {0x00, 0x00, 'a', 0xFF, 0xFE, 0x80, 0xBF, ' ', 0xC3, ' ', 0xE6, 0x97,
                           'x', 0xC0, 0x80, 0xED, 0xA0, 0x80, 0xF4, 0x90, 0x80, 0x80, '\n', 0xFF};
    assert_round_trip(&tok, odd, sizeof odd);
    // runs longer than the pre-tokenizer's longest chunk (letters, UTF-8
    // letters, digits, symbols, whitespace)
    const uint8_t fill[] = {'a', 0xE9, '7', '-', '\n'};
    for (size_t f = 0; f < sizeof fill; f++) {
        memset(buf, fill[f], sizeof buf);
        assert_round_trip(&tok, buf, sizeof buf);
    }
    for (size_t i = 0; i + 3 <= sizeof buf; i += 3) memcpy(buf + i, "\xe6\x97\xa5", 3);  // 日 x 1000
    assert_round_trip(&tok, buf, sizeof buf);
    assert_round_trip(&tok, (const uint8_t *)"", 0);
    tokenizer_free(&tok);
    free(text);
}

// --- naive reference: texts of lowercase words separated by single spaces,
// where a chunk is a word with its leading space. Training recounts every
// pair from scratch at each step; encoding applies the merges in rank order.

typedef struct {
    int *sym;
    int len;
} Seq;

static int split_words(const uint8_t *t, size_t n, Seq *seqs) {
    int ns = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && t[j] != ' ') j++;
        seqs[ns].sym = malloc((j - i) * sizeof(int));
        seqs[ns].len = (int)(j - i);
        for (size_t k = i; k < j; k++) seqs[ns].sym[k - i] = t[k];
        ns++;
        i = j;
    }
    return ns;
}

static void seq_merge(Seq *s, int a, int b, int id) {
    int k = 0;
    for (int i = 0; i < s->len;) {
        if (i + 1 < s->len && s->sym[i] == a && s->sym[i + 1] == b) {
            s->sym[k++] = id;
            i += 2;
        } else {
            s->sym[k++] = s->sym[i++];
        }
    }
    s->len = k;
}

// Trains up to max_merges merges into merges[]; returns how many.
static int reference_train(const uint8_t *t, size_t n, int max_merges, int *merges) {
    Seq *seqs = malloc(n * sizeof *seqs);
    int ns = split_words(t, n, seqs), V = 256 + max_merges, r;
    int *count = malloc((size_t)V * V * sizeof *count);
    for (r = 0; r < max_merges; r++) {
        memset(count, 0, (size_t)V * V * sizeof *count);
        for (int s = 0; s < ns; s++)
            for (int k = 0; k + 1 < seqs[s].len; k++) count[seqs[s].sym[k] * V + seqs[s].sym[k + 1]]++;
        int best = 0;  // scanning (left, right) ascending, keep the first maximum
        for (int p = 1; p < V * V; p++)
            if (count[p] > count[best]) best = p;
        if (count[best] < 2) break;
        merges[2 * r] = best / V;
        merges[2 * r + 1] = best % V;
        for (int s = 0; s < ns; s++) seq_merge(&seqs[s], best / V, best % V, 256 + r);
    }
    for (int s = 0; s < ns; s++) free(seqs[s].sym);
    free(seqs);
    free(count);
    return r;
}

static uint8_t *make_words(size_t n_words, const char *alphabet, uint64_t seed, size_t *n) {
    Rng rng;
    rng_init(&rng, seed);
    size_t na = strlen(alphabet);
    uint8_t *t = malloc(n_words * 8);
    size_t len = 0;
    for (size_t w = 0; w < n_words; w++) {
        if (w > 0) t[len++] = ' ';
        int wl = 1 + (int)rng_below(&rng, 6);
        for (int k = 0; k < wl; k++) t[len++] = (uint8_t)alphabet[rng_below(&rng, na)];
    }
    *n = len;
    return t;
}

static void test_bpe_matches_reference(void **state) {
    (void)state;
    // a three-letter alphabet makes many equal counts, so the tie-breaking
    // by smallest (left, right) is exercised too
    size_t n;
    uint8_t *text = make_words(3000, "abc", 3, &n);
    int want = 80, ref[2 * 80];
    assert_int_equal(reference_train(text, n, want, ref), want);
    Tokenizer tok = train_ok(TOKENIZER_BPE, text, n, 260 + want);
    assert_int_equal(tok.n_merges, want);
    assert_memory_equal(tok.merges, ref, sizeof ref);

    // encoding new text of the same kind equals applying merges in rank order
    size_t n2;
    uint8_t *other = make_words(500, "abcd", 4, &n2);
    Seq *seqs = malloc(n2 * sizeof *seqs);
    int ns = split_words(other, n2, seqs);
    for (int r = 0; r < want; r++)
        for (int s = 0; s < ns; s++) seq_merge(&seqs[s], ref[2 * r], ref[2 * r + 1], 256 + r);
    long m = tokenizer_encode(&tok, other, n2, NULL, 0);
    int *ids = malloc((size_t)m * sizeof *ids);
    tokenizer_encode(&tok, other, n2, ids, m);
    long k = 0;
    for (int s = 0; s < ns; s++) {
        for (int j = 0; j < seqs[s].len; j++, k++) {
            assert_true(k < m);
            assert_int_equal(ids[k], seqs[s].sym[j]);
        }
        free(seqs[s].sym);
    }
    assert_int_equal(k, m);
    free(ids);
    free(seqs);
    free(other);
    free(text);
    tokenizer_free(&tok);
}

static void test_bpe_ties(void **state) {
    (void)state;
    // chunks "xyxz" and " xyxz": (x,y), (y,x), (x,z) occur twice each and
    // the smallest pair, (x,y), goes first. Then (N,x) and (x,z) tie, N=256:
    // (x,z) has the smaller left id. Then (xy, xz) twice; then only pairs
    // seen once remain, so 3 merges is the most.
    const uint8_t *text = (const uint8_t *)"xyxz xyxz";
    Tokenizer tok = train_ok(TOKENIZER_BPE, text, 9, 263);
    const int want[] = {'x', 'y', 'x', 'z', 256, 257};
    assert_int_equal(tok.n_merges, 3);
    assert_memory_equal(tok.merges, want, sizeof want);
    tokenizer_free(&tok);
    assert_int_equal(tokenizer_train(&tok, TOKENIZER_BPE, text, 9, 264), -1);
    assert_non_null(strstr(rlhf_errmsg, "vocab_size <= 263"));
}

static void test_bpe_deterministic(void **state) {
    (void)state;
    size_t n = 30000;
    uint8_t *text = make_text(n, 5);
    Tokenizer a = train_ok(TOKENIZER_BPE, text, n, 500);
    Tokenizer b = train_ok(TOKENIZER_BPE, text, n, 500);
    assert_int_equal(a.n_merges, b.n_merges);
    assert_memory_equal(a.merges, b.merges, 2 * (size_t)a.n_merges * sizeof(int));
    assert_int_equal(a.vocab_offsets[a.vocab_size], b.vocab_offsets[b.vocab_size]);
    assert_memory_equal(a.vocab_bytes, b.vocab_bytes, (size_t)a.vocab_offsets[a.vocab_size]);
    assert_true(tokenizer_hash(&a) == tokenizer_hash(&b));
    // a different text, and a different vocabulary size, give other hashes
    uint8_t *text2 = make_text(n, 6);
    Tokenizer c = train_ok(TOKENIZER_BPE, text2, n, 500);
    Tokenizer d = train_ok(TOKENIZER_BPE, text, n, 499);
    assert_true(tokenizer_hash(&a) != tokenizer_hash(&c));
    assert_true(tokenizer_hash(&a) != tokenizer_hash(&d));
    tokenizer_free(&a);
    tokenizer_free(&b);
    tokenizer_free(&c);
    tokenizer_free(&d);
    free(text);
    free(text2);
}

static void test_bpe_compresses(void **state) {
    (void)state;
    size_t n = 50000;
    uint8_t *text = make_text(n, 8);
    Tokenizer tok = train_ok(TOKENIZER_BPE, text, n, 512);
    long m = tokenizer_encode(&tok, text, n, NULL, 0);
    // 252 merges cover the frequent words and syllables: measured 3.0 bytes
    // per token here, and 2.0 is the bar (1.0 would be no compression)
    assert_true(m > 0);
    assert_true((double)n / (double)m > 2.0);
    // unseen text of the same kind compresses too
    uint8_t *other = make_text(n, 9);
    long m2 = tokenizer_encode(&tok, other, n, NULL, 0);
    assert_true((double)n / (double)m2 > 2.0);
    // a truncated output buffer still reports the full count
    int ids[10];
    assert_int_equal(tokenizer_encode(&tok, text, n, ids, 10), m);
    tokenizer_free(&tok);
    free(text);
    free(other);
}

static void test_char_round_trip(void **state) {
    (void)state;
    const char *train = "hello, world!\nthe end\n";
    Tokenizer tok = train_ok(TOKENIZER_CHAR, (const uint8_t *)train, strlen(train), 12345);
    // printable ASCII (95), tab and newline are always in: 97 ids, then 4 specials
    assert_int_equal(tok.vocab_size, 97 + 4);
    assert_int_equal(tok.eot, 97);
    assert_int_equal(tok.user, 98);
    assert_int_equal(tok.assistant, 99);
    assert_int_equal(tok.pad, 100);
    int prev = -1;
    for (int id = 0; id < 97; id++) {  // vocabulary sorted by byte value
        int len;
        const uint8_t *b = tokenizer_token_bytes(&tok, id, &len);
        assert_int_equal(len, 1);
        assert_true((int)b[0] > prev);
        assert_int_equal(tok.byte_to_id[b[0]], id);
        prev = b[0];
    }
    // bytes outside that set join only when the text holds them
    const uint8_t latin[] = {'a', 0xC3, 0xA9, '\n'};
    Tokenizer tok2 = train_ok(TOKENIZER_CHAR, latin, sizeof latin, 0);
    assert_int_equal(tok2.vocab_size, 97 + 2 + 4);
    assert_round_trip(&tok2, latin, sizeof latin);
    tokenizer_free(&tok2);
    const char *msg = "the world, hello!\n\nwhere on";
    assert_round_trip(&tok, (const uint8_t *)msg, strlen(msg));
    assert_round_trip(&tok, (const uint8_t *)train, strlen(train));
    tokenizer_free(&tok);
}

static void test_char_unknown_byte(void **state) {
    (void)state;
    const char *train = "abc def";
    Tokenizer tok = train_ok(TOKENIZER_CHAR, (const uint8_t *)train, strlen(train), 0);
    int ids[16];
    rlhf_errmsg[0] = '\0';
    // any printable ASCII encodes, even if the training text lacked it
    assert_int_equal(tokenizer_encode(&tok, (const uint8_t *)"fade x+9", 8, ids, 16), 8);
    const uint8_t utf8[] = {'a', 0xC3, 0xA9};
    assert_int_equal(tokenizer_encode(&tok, utf8, sizeof utf8, ids, 16), -1);
    assert_non_null(strstr(rlhf_errmsg, "0xC3"));
    assert_non_null(strstr(rlhf_errmsg, "bpe"));
    const uint8_t ctrl[] = {'a', 0x01};
    assert_int_equal(tokenizer_encode(&tok, ctrl, sizeof ctrl, ids, 16), -1);
    assert_non_null(strstr(rlhf_errmsg, "0x01"));
    tokenizer_free(&tok);
    // empty text cannot make a char vocabulary
    assert_int_equal(tokenizer_train(&tok, TOKENIZER_CHAR, (const uint8_t *)"", 0, 0), -1);
    assert_int_equal(tokenizer_train(&tok, 7, (const uint8_t *)"ab", 2, 0), -1);
}

static void test_specials_never_from_text(void **state) {
    (void)state;
    const char *specials = "<|endoftext|> <|user|>hi<|assistant|><|pad|>";
    size_t n = 20000;
    uint8_t *text = make_text(n, 10);
    // put the names into the training text many times: they still must not
    // encode to the special ids
    for (size_t i = 0; i + 200 < n; i += 1000) memcpy(text + i, specials, strlen(specials));
    Tokenizer bpe = train_ok(TOKENIZER_BPE, text, n, 400);
    Tokenizer chr = train_ok(TOKENIZER_CHAR, text, n, 0);
    assert_round_trip(&bpe, (const uint8_t *)specials, strlen(specials));
    assert_round_trip(&chr, (const uint8_t *)specials, strlen(specials));
    tokenizer_free(&bpe);
    tokenizer_free(&chr);
    free(text);
}

static void test_decode_specials(void **state) {
    (void)state;
    size_t n = 10000;
    uint8_t *text = make_text(n, 11);
    Tokenizer tok = train_ok(TOKENIZER_BPE, text, n, 300);
    int ids[64];
    long m = 0;
    ids[m++] = tok.user;
    m += tokenizer_encode(&tok, (const uint8_t *)"the dog", 7, ids + m, 64 - m);
    ids[m++] = tok.assistant;
    m += tokenizer_encode(&tok, (const uint8_t *)"jumps", 5, ids + m, 64 - m);
    ids[m++] = tok.eot;
    ids[m++] = tok.pad;
    char *with = tokenizer_decode(&tok, ids, m, 1);
    char *without = tokenizer_decode(&tok, ids, m, 0);
    assert_string_equal(with, "<|user|>the dog<|assistant|>jumps<|endoftext|><|pad|>");
    assert_string_equal(without, "the dogjumps");
    free(with);
    free(without);
    int len;
    const uint8_t *b = tokenizer_token_bytes(&tok, tok.eot, &len);
    assert_int_equal(len, 13);
    assert_memory_equal(b, "<|endoftext|>", 13);
    tokenizer_free(&tok);
    free(text);
}

static void test_vocab_too_large(void **state) {
    (void)state;
    const char *text = "abab abab abcabc";
    size_t n = strlen(text);
    Tokenizer tok;
    rlhf_errmsg[0] = '\0';
    assert_int_equal(tokenizer_train(&tok, TOKENIZER_BPE, (const uint8_t *)text, n, 5000), -1);
    const char *at = strstr(rlhf_errmsg, "vocab_size <= ");
    assert_non_null(at);
    int largest = atoi(at + strlen("vocab_size <= "));
    assert_true(largest > 260 && largest < 5000);
    // the size it names works, one more does not
    tok = train_ok(TOKENIZER_BPE, (const uint8_t *)text, n, largest);
    tokenizer_free(&tok);
    assert_int_equal(tokenizer_train(&tok, TOKENIZER_BPE, (const uint8_t *)text, n, largest + 1), -1);
    // below bytes + specials
    assert_int_equal(tokenizer_train(&tok, TOKENIZER_BPE, (const uint8_t *)text, n, 259), -1);
    assert_non_null(strstr(rlhf_errmsg, "260"));
    // exactly bytes + specials needs no merges, even on empty text
    tok = train_ok(TOKENIZER_BPE, (const uint8_t *)"", 0, 260);
    assert_int_equal(tok.n_merges, 0);
    assert_round_trip(&tok, (const uint8_t *)"xyz\xff", 4);
    tokenizer_free(&tok);
}

// A field-by-field copy, as a checkpoint reader would fill one.
static Tokenizer copy_fields(const Tokenizer *src) {
    Tokenizer t;
    memset(&t, 0, sizeof t);
    t.type = src->type;
    t.vocab_size = src->vocab_size;
    size_t nb = (size_t)src->vocab_offsets[src->vocab_size];
    t.vocab_bytes = malloc(nb);
    memcpy(t.vocab_bytes, src->vocab_bytes, nb);
    t.vocab_offsets = malloc((size_t)(src->vocab_size + 1) * sizeof(int));
    memcpy(t.vocab_offsets, src->vocab_offsets, (size_t)(src->vocab_size + 1) * sizeof(int));
    t.n_merges = src->n_merges;
    t.merges = malloc((size_t)(2 * src->n_merges + 1) * sizeof(int));
    if (src->n_merges > 0) memcpy(t.merges, src->merges, 2 * (size_t)src->n_merges * sizeof(int));
    t.eot = src->eot;
    t.user = src->user;
    t.assistant = src->assistant;
    t.pad = src->pad;
    return t;
}

// Copies src, breaks one field with `edit`, and expects tokenizer_finish to
// fail with a message holding `needle`.
static void expect_rejected(const Tokenizer *src, void (*edit)(Tokenizer *), const char *needle) {
    Tokenizer t = copy_fields(src);
    edit(&t);
    rlhf_errmsg[0] = '\0';
    assert_int_equal(tokenizer_finish(&t), -1);
    if (!strstr(rlhf_errmsg, needle)) fail_msg("'%s' lacks '%s'", rlhf_errmsg, needle);
    tokenizer_free(&t);
}

static void pad_is_eot(Tokenizer *t) { t->pad = t->eot; }
static void merge_uses_later_id(Tokenizer *t) { t->merges[2 * 3 + 1] = 256 + 5; }
static void offsets_decrease(Tokenizer *t) { t->vocab_offsets[100] = t->vocab_offsets[99] - 1; }
static void special_out_of_range(Tokenizer *t) { t->user = t->vocab_size; }
static void special_inside_merges(Tokenizer *t) { t->assistant = 300; }
static void token_bytes_wrong(Tokenizer *t) { t->vocab_bytes[t->vocab_offsets[300]] ^= 1; }
static void merge_repeated(Tokenizer *t) {
    // the last merge (no other merge uses its id) becomes a copy of an
    // earlier merge whose token has as many bytes, so that only the repeat
    // itself is wrong
    int last = t->n_merges - 1, id = 256 + last, len = t->vocab_offsets[id + 1] - t->vocab_offsets[id];
    for (int r = 0; r < last; r++) {
        if (t->vocab_offsets[257 + r] - t->vocab_offsets[256 + r] != len) continue;
        t->merges[2 * last] = t->merges[2 * r];
        t->merges[2 * last + 1] = t->merges[2 * r + 1];
        memcpy(t->vocab_bytes + t->vocab_offsets[id], t->vocab_bytes + t->vocab_offsets[256 + r], (size_t)len);
        return;
    }
    fail_msg("no earlier merge of %d bytes", len);
}
static void size_mismatch(Tokenizer *t) { t->n_merges -= 1; }
static void char_token_two_bytes(Tokenizer *t) { t->vocab_offsets[1] = 2; }

static void test_finish_rejects_inconsistent(void **state) {
    (void)state;
    size_t n = 20000;
    uint8_t *text = make_text(n, 12);
    Tokenizer tok = train_ok(TOKENIZER_BPE, text, n, 400);
    // the untouched copy is accepted and hashes the same
    Tokenizer ok = copy_fields(&tok);
    assert_int_equal(tokenizer_finish(&ok), 0);
    assert_true(tokenizer_hash(&ok) == tokenizer_hash(&tok));
    assert_round_trip(&ok, text, 2000);
    assert_int_equal(tokenizer_finish(&ok), 0);  // finishing twice is fine
    tokenizer_free(&ok);

    expect_rejected(&tok, pad_is_eot, "pad");
    expect_rejected(&tok, merge_uses_later_id, "merge 3");
    expect_rejected(&tok, offsets_decrease, "offsets");
    expect_rejected(&tok, special_out_of_range, "<|user|>");
    expect_rejected(&tok, special_inside_merges, "<|assistant|>");
    expect_rejected(&tok, token_bytes_wrong, "token 300");
    expect_rejected(&tok, merge_repeated, "repeats merge");
    expect_rejected(&tok, size_mismatch, "merges");
    tokenizer_free(&tok);

    Tokenizer chr = train_ok(TOKENIZER_CHAR, text, n, 0);
    expect_rejected(&chr, pad_is_eot, "pad");
    expect_rejected(&chr, char_token_two_bytes, "token 0");
    tokenizer_free(&chr);
    free(text);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bpe_round_trip_random_bytes),
        cmocka_unit_test(test_bpe_matches_reference),
        cmocka_unit_test(test_bpe_ties),
        cmocka_unit_test(test_bpe_deterministic),
        cmocka_unit_test(test_bpe_compresses),
        cmocka_unit_test(test_char_round_trip),
        cmocka_unit_test(test_char_unknown_byte),
        cmocka_unit_test(test_specials_never_from_text),
        cmocka_unit_test(test_decode_specials),
        cmocka_unit_test(test_vocab_too_large),
        cmocka_unit_test(test_finish_rejects_inconsistent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

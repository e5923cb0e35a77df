// Tests of corpus_read on temporary files and directories: document
// splitting (percent, blank, none, auto), gzip by name and by magic bytes,
// skipping binaries and duplicate paths, and the error cases; the seeded
// train/val split of documents and their layout as tokens.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "common.h"
#include "corpus.h"

// --- temporary files --------------------------------------------------------

static char tmpdir[64];

static int setup_tmpdir(void **state) {
    (void)state;
    strcpy(tmpdir, "/tmp/rlhf_test_corpus_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

// Removes a tree without following symlinks.
static void rm_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char child[512];
            snprintf(child, sizeof child, "%s/%s", path, e->d_name);
            rm_tree(child);
        }
        if (d) closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static int teardown_tmpdir(void **state) {
    (void)state;
    rm_tree(tmpdir);
    return 0;
}

// tmpdir/name, in a static buffer (one at a time).
static const char *tmp_path(const char *name) {
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/%s", tmpdir, name);
    return buf;
}

static void write_file(const char *name, const void *data, size_t n) {
    FILE *f = fopen(tmp_path(name), "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}

static void write_text(const char *name, const char *text) { write_file(name, text, strlen(text)); }

static void write_gzip(const char *name, const char *text) {
    gzFile gz = gzopen(tmp_path(name), "wb");
    assert_non_null(gz);
    assert_int_equal(gzwrite(gz, text, (unsigned)strlen(text)), (int)strlen(text));
    assert_int_equal(gzclose(gz), Z_OK);
}

static uint8_t *read_file(const char *name, size_t *n) {
    FILE *f = fopen(tmp_path(name), "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    rewind(f);
    uint8_t *b = malloc(*n);
    assert_int_equal(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

// Checks c holds exactly the documents in want (NULL-terminated).
static void assert_docs(const Corpus *c, const char *const *want) {
    size_t n = 0, total = 0;
    while (want[n]) total += strlen(want[n++]);
    if (c->n_docs != n) {
        for (size_t d = 0; d < c->n_docs; d++) {
            size_t len;
            const uint8_t *p = corpus_doc(c, d, &len);
            print_message("doc %zu: [%.*s]\n", d, (int)len, (const char *)p);
        }
    }
    assert_int_equal(c->n_docs, n);
    assert_int_equal(c->n_bytes, total);
    for (size_t d = 0; d < n; d++) {
        size_t len;
        const uint8_t *p = corpus_doc(c, d, &len);
        if (len != strlen(want[d]) || memcmp(p, want[d], len))
            fail_msg("doc %zu is [%.*s], want [%s]", d, (int)len, (const char *)p, want[d]);
    }
    assert_int_equal(c->text[c->n_bytes], '\0');
}

static void read_ok(Corpus *c, const char *path, const char *split) {
    if (corpus_read(c, path, split) != 0) fail_msg("corpus_read failed: %s", rlhf_errmsg);
}

static void read_fails(const char *path, const char *split, const char *needle) {
    Corpus c;
    rlhf_errmsg[0] = '\0';
    if (corpus_read(&c, path, split) != -1) fail_msg("%s: reading succeeded (%zu docs)", path, c.n_docs);
    if (!strstr(rlhf_errmsg, needle)) fail_msg("'%s' lacks '%s'", rlhf_errmsg, needle);
    assert_int_equal(c.n_docs, 0);  // left empty
    assert_null(c.text);
    corpus_free(&c);
}

// --- tests ------------------------------------------------------------------

static void test_directory(void **state) {
    (void)state;
    // a fortune file: leading blank lines of a document go, its indentation
    // stays; "%%" lines in a row give no empty document
    write_text("a_fortunes", "First one\nline two\n%\n\n  Second, indented\n%\n%\nThird\n%\n");
    write_text("b_notes.txt", "para one\nstill one\n\n\n \t\npara two\n");  // no '%': blank
    write_file("c_data.bin", "text\0more\n", 10);                             // binary: skipped
    write_gzip("d_packed.gz", "gz doc one\n%\ngz doc two\n");
    assert_int_equal(symlink("a_fortunes", tmp_path("e_link")), 0);  // duplicate: skipped
    write_text(".hidden", "never read\n");
    assert_int_equal(mkdir(tmp_path("sub"), 0755), 0);
    write_text("sub/f.txt", "nested doc\n\n\n");
    assert_int_equal(symlink("..", tmp_path("sub/up")), 0);  // a loop: skipped

    Corpus c;
    read_ok(&c, tmpdir, "auto");
    const char *want[] = {"First one\nline two", "  Second, indented", "Third",
                          "para one\nstill one", "para two",
                          "gz doc one", "gz doc two",
                          "nested doc", NULL};
    assert_docs(&c, want);
    assert_int_equal(c.n_files_read, 4);     // a_fortunes, b_notes.txt, d_packed.gz, sub/f.txt
    assert_int_equal(c.n_files_skipped, 3);  // c_data.bin, e_link, sub/up
    corpus_free(&c);
    corpus_free(&c);  // a second free is harmless
}

static void test_split_modes(void **state) {
    (void)state;
    // CRLF line ends; a "%" line and a blank line
    write_text("mixed.txt", "x\r\n\r\ny\r\n%\r\nz\r\n");
    Corpus c;
    read_ok(&c, tmp_path("mixed.txt"), "percent");
    assert_docs(&c, (const char *[]){"x\r\n\r\ny", "z", NULL});
    corpus_free(&c);
    read_ok(&c, tmp_path("mixed.txt"), "auto");
    assert_docs(&c, (const char *[]){"x\r\n\r\ny", "z", NULL});
    corpus_free(&c);
    read_ok(&c, tmp_path("mixed.txt"), "blank");
    assert_docs(&c, (const char *[]){"x", "y\r\n%\r\nz", NULL});
    corpus_free(&c);
    read_ok(&c, tmp_path("mixed.txt"), "none");
    assert_docs(&c, (const char *[]){"x\r\n\r\ny\r\n%\r\nz", NULL});
    corpus_free(&c);
    // "%" inside a line, or "%%", does not split
    write_text("pct.txt", "50% off\n%%\nstill one\n");
    read_ok(&c, tmp_path("pct.txt"), "auto");
    assert_docs(&c, (const char *[]){"50% off\n%%\nstill one", NULL});
    corpus_free(&c);
    // no trailing newline, text right up to the end of the file
    write_text("tail.txt", "one\n\ntwo");
    read_ok(&c, tmp_path("tail.txt"), "blank");
    assert_docs(&c, (const char *[]){"one", "two", NULL});
    assert_int_equal(c.n_files_read, 1);
    corpus_free(&c);
    read_fails(tmp_path("tail.txt"), "paragraph", "doc_split");
}

static void test_gzip_by_magic(void **state) {
    (void)state;
    // gzip data under a plain name is still decompressed
    write_gzip("looks_plain.txt", "hidden gzip\n\nsecond\n");
    Corpus c;
    read_ok(&c, tmp_path("looks_plain.txt"), "auto");
    assert_docs(&c, (const char *[]){"hidden gzip", "second", NULL});
    corpus_free(&c);
    // a long gzip file (several read blocks) round-trips exactly
    size_t n = 300000;
    char *big = malloc(n + 1);
    for (size_t i = 0; i < n; i++) big[i] = (char)('a' + i % 26);
    big[n] = '\0';
    write_gzip("big.gz", big);
    read_ok(&c, tmp_path("big.gz"), "none");
    assert_docs(&c, (const char *[]){big, NULL});
    corpus_free(&c);
    free(big);
}

static void test_corrupt_gzip(void **state) {
    (void)state;
    write_gzip("good.gz", "some text that compresses, some text that compresses\n");
    size_t n;
    uint8_t *gz = read_file("good.gz", &n);
    // cut before the end: truncated stream
    write_file("cut.gz", gz, n / 2);
    read_fails(tmp_path("cut.gz"), "auto", "truncated");
    // a flipped bit in the CRC trailer: the data check fails
    gz[n - 6] ^= 0x10;
    write_file("crc.gz", gz, n);
    read_fails(tmp_path("crc.gz"), "auto", "not valid gzip");
    // a .gz name on plain text
    write_text("fake.gz", "just text\n");
    read_fails(tmp_path("fake.gz"), "auto", "gzip magic");
    // a corrupt file inside a directory is an error too, not a skip
    assert_int_equal(mkdir(tmp_path("d"), 0755), 0);
    write_text("d/a.txt", "fine\n");
    write_file("d/b.gz", gz, n);
    read_fails(tmp_path("d"), "auto", "b.gz");
    free(gz);
}

static void test_missing_and_empty(void **state) {
    (void)state;
    read_fails(tmp_path("no_such_file"), "auto", "does not exist");
    read_fails("", "auto", "no corpus");
    // an empty directory, then one holding only blank text and a binary
    assert_int_equal(mkdir(tmp_path("empty"), 0755), 0);
    read_fails(tmp_path("empty"), "auto", "no documents");
    write_text("empty/blank.txt", "\n\n  \n%\n\n");
    write_file("empty/x.bin", "\0\1\2", 3);
    read_fails(tmp_path("empty"), "auto", "no documents (1 files read, 1 skipped)");
    // a binary file named directly is an error, not a skip
    read_fails(tmp_path("empty/x.bin"), "auto", "binary");
}

// The installed fortune files, when present: each text file has a .dat
// index (binary) and a .u8 symlink to it, which must both be skipped.
static void test_fortunes_directory(void **state) {
    (void)state;
    const char *dir = "/usr/share/games/fortunes";
    struct stat st;
    if (stat(dir, &st) != 0) skip();
    Corpus c;
    read_ok(&c, dir, "auto");
    assert_true(c.n_files_read > 10);
    assert_int_equal(c.n_files_skipped, 2 * c.n_files_read);
    assert_true(c.n_docs > 1000);
    for (size_t d = 0; d < c.n_docs; d++) {  // trimmed, never empty, no '%' lines left
        size_t len;
        const uint8_t *p = corpus_doc(&c, d, &len);
        assert_true(len > 0 && p[len - 1] != '\n' && p[0] != '\n');
        assert_false(len == 1 && p[0] == '%');
    }
    corpus_free(&c);
}

// --- train/val split and token streams ------------------------------------------

// Checks a split of n documents: every document in exactly one set, each set
// ascending, the sizes adding up.
static void assert_partition(const CorpusSplit *s, size_t n) {
    assert_int_equal(s->n_val + s->n_train, n);
    unsigned char *seen = calloc(n, 1);
    const int *sets[2] = {s->val, s->train};
    const size_t sizes[2] = {s->n_val, s->n_train};
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < sizes[k]; i++) {
            assert_true(sets[k][i] >= 0 && (size_t)sets[k][i] < n);
            if (i > 0) assert_true(sets[k][i - 1] < sets[k][i]);
            seen[sets[k][i]]++;
        }
    for (size_t d = 0; d < n; d++) assert_int_equal(seen[d], 1);
    free(seen);
}

// The held-out count is val_fraction of the documents rounded half up, at
// least one (sizes by hand); the split partitions the documents, the same
// seed gives the same split and other seeds others, every document is held
// out under some seed; a split that leaves either set empty is an error.
static void test_train_val_split(void **state) {
    (void)state;
    const struct { size_t n; double f; size_t n_val; } cases[] = {
        {10, 0.1, 1},  {10, 0.25, 3},   {7, 0.1, 1},     {100, 0.005, 1}, {100, 0.004, 1},
        {3, 0.5, 2},   {1001, 0.1, 100}, {2, 0.5, 1},    {5000, 0.9, 4500}, {10, 0.94, 9},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        CorpusSplit s, t;
        assert_int_equal(corpus_split(&s, cases[i].n, cases[i].f, 1337), 0);
        assert_int_equal(s.n_val, cases[i].n_val);
        assert_partition(&s, cases[i].n);
        assert_int_equal(corpus_split(&t, cases[i].n, cases[i].f, 1337), 0);
        assert_int_equal(t.n_val, s.n_val);
        assert_memory_equal(t.val, s.val, cases[i].n * sizeof(int));
        corpus_split_free(&t);
        corpus_split_free(&s);
        corpus_split_free(&s);  // a second free is harmless
    }
    // seeds: 100 documents, 10 held out; other seeds choose other sets, and
    // over 200 seeds each of 10 documents (2 held out) is held out at least once
    CorpusSplit a, b;
    assert_int_equal(corpus_split(&a, 100, 0.1, 1), 0);
    int differ = 0;
    for (uint64_t seed = 2; seed < 6; seed++) {
        assert_int_equal(corpus_split(&b, 100, 0.1, seed), 0);
        assert_partition(&b, 100);
        differ += memcmp(a.val, b.val, a.n_val * sizeof(int)) != 0;
        corpus_split_free(&b);
    }
    assert_int_equal(differ, 4);
    corpus_split_free(&a);
    int held[10] = {0};
    for (uint64_t seed = 0; seed < 200; seed++) {
        assert_int_equal(corpus_split(&a, 10, 0.2, seed), 0);
        for (size_t i = 0; i < a.n_val; i++) held[a.val[i]]++;
        corpus_split_free(&a);
    }
    for (int d = 0; d < 10; d++) assert_true(held[d] > 10);
    // nothing held out, nothing left to train on, a single document
    const struct { size_t n; double f; const char *msg; } bad[] = {
        {10, 0.0, "leaves 0 for validation and 10 for training"},
        {10, 0.96, "leaves 10 for validation and 0 for training"},
        {1, 0.5, "of 1 documents leaves 1 for validation and 0 for training"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        rlhf_errmsg[0] = '\0';
        assert_int_equal(corpus_split(&a, bad[i].n, bad[i].f, 1), -1);
        if (!strstr(rlhf_errmsg, bad[i].msg)) fail_msg("'%s' lacks '%s'", rlhf_errmsg, bad[i].msg);
        assert_non_null(strstr(rlhf_errmsg, "hint"));
        assert_null(a.val);
        assert_int_equal(a.n_val + a.n_train, 0);
    }
}

// Documents as the tokenizer's training text (each followed by a blank
// line) and as tokens: an end-of-text before each listed document, in the
// order listed; a document the tokenizer cannot encode is named.
static void test_encode_documents(void **state) {
    (void)state;
    write_text("docs.txt", "ab\n\n\ncaf\xc3\xa9\n\nab\ncd\n");
    Corpus c;
    read_ok(&c, tmp_path("docs.txt"), "blank");
    const char *want[] = {"ab", "caf\xc3\xa9", "ab\ncd", NULL};
    assert_docs(&c, want);
    size_t len;
    uint8_t *text = corpus_joined_text(&c, &len);
    const char joined[] = "ab\n\ncaf\xc3\xa9\n\nab\ncd\n\n";
    assert_int_equal(len, sizeof joined - 1);
    assert_memory_equal(text, joined, len);
    Tokenizer tok;
    assert_int_equal(tokenizer_train(&tok, TOKENIZER_CHAR, text, len, 0), 0);
    free(text);
    const int docs[3] = {2, 0, 1};
    int *ids;
    size_t n;
    assert_int_equal(corpus_encode(&c, &tok, docs, 3, &ids, &n), 0);
    int want_ids[32];
    size_t k = 0;
    for (int i = 0; i < 3; i++) {
        want_ids[k++] = tok.eot;
        long m = tokenizer_encode(&tok, (const uint8_t *)want[docs[i]], strlen(want[docs[i]]),
                                  want_ids + k, 32 - (long)k);
        assert_true(m > 0);
        k += (size_t)m;
    }
    assert_int_equal(n, k);
    assert_int_equal(n, 3 + 2 + 5 + 5);  // a char tokenizer: a token per byte
    assert_memory_equal(ids, want_ids, k * sizeof(int));
    free(ids);
    assert_int_equal(corpus_encode(&c, &tok, docs, 0, &ids, &n), 0);
    assert_int_equal(n, 0);
    free(ids);
    tokenizer_free(&tok);
    // a tokenizer trained without "é" (a char tokenizer always holds printable ASCII)
    assert_int_equal(tokenizer_train(&tok, TOKENIZER_CHAR, (const uint8_t *)"abcd\n", 5, 0), 0);
    rlhf_errmsg[0] = '\0';
    assert_int_equal(corpus_encode(&c, &tok, docs, 3, &ids, &n), -1);
    assert_null(ids);
    if (!strstr(rlhf_errmsg, "document 1")) fail_msg("'%s' lacks 'document 1'", rlhf_errmsg);
    tokenizer_free(&tok);
    corpus_free(&c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_directory, setup_tmpdir, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_split_modes, setup_tmpdir, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_gzip_by_magic, setup_tmpdir, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_corrupt_gzip, setup_tmpdir, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_missing_and_empty, setup_tmpdir, teardown_tmpdir),
        cmocka_unit_test(test_fortunes_directory),
        cmocka_unit_test(test_train_val_split),
        cmocka_unit_test_setup_teardown(test_encode_documents, setup_tmpdir, teardown_tmpdir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

// Tests of corpus_read on temporary files and directories: document
// splitting (percent, blank, none, auto), gzip by name and by magic bytes,
// skipping binaries and duplicate paths, and the error cases.
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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_directory, setup_tmpdir, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_split_modes, setup_tmpdir, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_gzip_by_magic, setup_tmpdir, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_corrupt_gzip, setup_tmpdir, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_missing_and_empty, setup_tmpdir, teardown_tmpdir),
        cmocka_unit_test(test_fortunes_directory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

// Corpus reading: walks a file or directory, reads plain or gzip text through
// zlib (gzread passes plain files through unchanged), skips binaries and
// duplicate paths, and cuts each file into trimmed documents; then the
// seeded train/val split and the layout of documents as tokens. See corpus.h.
#include "corpus.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "common.h"
#include "rng.h"

#define BINARY_PROBE 4096  // a NUL byte in this many leading bytes => binary

typedef enum { SPLIT_AUTO, SPLIT_PERCENT, SPLIT_BLANK, SPLIT_NONE } SplitMode;

// (device, inode) of each file and directory visited, in an open-addressing
// set, so that a second path to the same file is skipped and symlinked
// directories cannot loop.
typedef struct {
    dev_t dev;
    ino_t ino;
    int used;
} SeenSlot;

typedef struct {
    Corpus *c;
    SplitMode mode;
    size_t cap_bytes, cap_docs;
    SeenSlot *seen;
    size_t seen_cap, seen_len;  // cap a power of two, at most half full
} Reader;

static size_t seen_hash(dev_t dev, ino_t ino, size_t mask) {
    uint64_t x = (uint64_t)ino * 0x9e3779b97f4a7c15ULL ^ (uint64_t)dev;
    x ^= x >> 31;
    return (size_t)(x * 0xbf58476d1ce4e5b9ULL >> 17) & mask;
}

// Marks (dev, ino) as seen; returns 1 if it already was.
static int reader_seen(Reader *r, dev_t dev, ino_t ino) {
    if (2 * (r->seen_len + 1) > r->seen_cap) {
        size_t cap = r->seen_cap ? 2 * r->seen_cap : 64;
        SeenSlot *slots = callocCheck(cap, sizeof *slots);
        for (size_t i = 0; i < r->seen_cap; i++) {
            if (!r->seen[i].used) continue;
            size_t j = seen_hash(r->seen[i].dev, r->seen[i].ino, cap - 1);
            while (slots[j].used) j = (j + 1) & (cap - 1);
            slots[j] = r->seen[i];
        }
        free(r->seen);
        r->seen = slots;
        r->seen_cap = cap;
    }
    size_t mask = r->seen_cap - 1, i = seen_hash(dev, ino, mask);
    for (; r->seen[i].used; i = (i + 1) & mask)
        if (r->seen[i].dev == dev && r->seen[i].ino == ino) return 1;
    r->seen[i] = (SeenSlot){dev, ino, 1};
    r->seen_len++;
    return 0;
}

// --- documents ---------------------------------------------------------------

static int is_blank_byte(uint8_t b) {
    return b == ' ' || b == '\t' || b == '\r' || b == '\n' || b == '\v' || b == '\f';
}

// End of the line starting at s[i] (index of its '\n', or n).
static size_t line_end(const uint8_t *s, size_t n, size_t i) {
    const uint8_t *nl = memchr(s + i, '\n', n - i);
    return nl ? (size_t)(nl - s) : n;
}

static int line_is_percent(const uint8_t *s, size_t begin, size_t end) {
    if (end > begin && s[end - 1] == '\r') end--;  // CRLF files
    return end - begin == 1 && s[begin] == '%';
}

static int line_is_blank(const uint8_t *s, size_t begin, size_t end) {
    for (size_t i = begin; i < end; i++)
        if (!is_blank_byte(s[i])) return 0;
    return 1;
}

// Appends s[begin, end) as a document after dropping its leading blank lines
// and trailing whitespace (indentation of the first line is kept); nothing if
// that leaves it empty.
static void reader_add_doc(Reader *r, const uint8_t *s, size_t begin, size_t end) {
    while (begin < end) {
        size_t e = line_end(s, end, begin);
        if (!line_is_blank(s, begin, e)) break;
        begin = e < end ? e + 1 : end;
    }
    while (end > begin && is_blank_byte(s[end - 1])) end--;
    if (end == begin) return;
    Corpus *c = r->c;
    size_t len = end - begin;
    if (c->n_bytes + len + 1 > r->cap_bytes) {
        while (c->n_bytes + len + 1 > r->cap_bytes) r->cap_bytes = r->cap_bytes ? 2 * r->cap_bytes : 1 << 16;
        c->text = reallocCheck(c->text, r->cap_bytes);
    }
    if (c->n_docs + 2 > r->cap_docs) {
        r->cap_docs = r->cap_docs ? 2 * r->cap_docs : 1024;
        c->doc_start = reallocCheck(c->doc_start, r->cap_docs * sizeof *c->doc_start);
    }
    memcpy(c->text + c->n_bytes, s + begin, len);
    c->n_bytes += len;
    c->text[c->n_bytes] = '\0';
    c->doc_start[c->n_docs] = c->n_bytes - len;
    c->doc_start[++c->n_docs] = c->n_bytes;
}

// Cuts one file's bytes into documents by the reader's mode.
static void reader_split(Reader *r, const uint8_t *s, size_t n) {
    SplitMode mode = r->mode;
    if (mode == SPLIT_AUTO) {
        mode = SPLIT_BLANK;
        for (size_t i = 0; i < n; i = line_end(s, n, i) + 1)
            if (line_is_percent(s, i, line_end(s, n, i))) {
                mode = SPLIT_PERCENT;
                break;
            }
    }
    if (mode == SPLIT_NONE) {
        reader_add_doc(r, s, 0, n);
        return;
    }
    size_t doc = 0;  // start of the current document
    for (size_t i = 0; i < n;) {
        size_t e = line_end(s, n, i);
        int sep = mode == SPLIT_PERCENT ? line_is_percent(s, i, e) : line_is_blank(s, i, e);
        if (sep) {
            reader_add_doc(r, s, doc, i);
            doc = e < n ? e + 1 : n;
        }
        i = e + 1;
    }
    if (doc < n) reader_add_doc(r, s, doc, n);
}

// --- files ---------------------------------------------------------------------

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

// Reads a whole file, decompressing gzip. *binary is set (and reading stops)
// when the first BINARY_PROBE bytes hold a NUL. The caller frees *out.
static int file_load(const char *path, uint8_t **out, size_t *n, int *binary) {
    *out = NULL;
    *n = 0;
    *binary = 0;
    errno = 0;
    gzFile gz = gzopen(path, "rb");
    if (!gz)
        return rlhf_fail("cannot open corpus file '%s': %s; hint: check that it is readable",
                         path, errno ? strerror(errno) : "out of memory");
    size_t cap = BINARY_PROBE, len = 0;
    uint8_t *buf = mallocCheck(cap + 1);
    int checked = 0, got;
    for (;;) {
        if (len == cap) {
            cap *= 2;
            buf = reallocCheck(buf, cap + 1);
        }
        size_t want = cap - len > (1u << 30) ? (1u << 30) : cap - len;
        got = gzread(gz, buf + len, (unsigned)want);
        if (got <= 0) break;
        len += (size_t)got;
        if (!checked && len >= BINARY_PROBE) {
            checked = 1;
            if (memchr(buf, 0, BINARY_PROBE)) break;
        }
    }
    int err = Z_OK;
    const char *msg = gzerror(gz, &err);
    int direct = gzdirect(gz);
    int rc = 0;
    if (got < 0 && err == Z_ERRNO)
        rc = rlhf_fail("cannot read corpus file '%s': %s; hint: check the file and the disk",
                       path, strerror(errno));
    else if (err == Z_BUF_ERROR)
        rc = rlhf_fail("corpus file '%s' is a truncated gzip file; hint: download it again "
                       "(gzip -t shows the damage)", path);
    else if (got < 0 || (err != Z_OK && err != Z_STREAM_END))
        rc = rlhf_fail("corpus file '%s' is not valid gzip data (%s); hint: download it again "
                       "(gzip -t shows the damage)", path, msg);
    else if (direct && len > 0 && ends_with(path, ".gz"))
        rc = rlhf_fail("corpus file '%s' is named .gz but does not start with the gzip magic "
                       "bytes; hint: rename it or fetch it again", path);
    int close_rc = gzclose(gz);
    if (rc == 0 && close_rc == Z_BUF_ERROR)
        rc = rlhf_fail("corpus file '%s' is a truncated gzip file; hint: download it again "
                       "(gzip -t shows the damage)", path);
    if (rc != 0) {
        free(buf);
        return -1;
    }
    *binary = memchr(buf, 0, len < BINARY_PROBE ? len : BINARY_PROBE) != NULL;
    buf[len] = '\0';
    *out = buf;
    *n = len;
    return 0;
}

static int name_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

// Visits path: a regular file is read and split, a directory walked in
// sorted order. top: path is the one the user named, so problems that would
// only skip an entry inside a directory are errors.
static int reader_visit(Reader *r, const char *path, int top) {
    struct stat st;
    if (stat(path, &st) != 0) {
        if (!top) {  // e.g. a dangling symlink inside the directory
            r->c->n_files_skipped++;
            return 0;
        }
        if (errno == ENOENT)
            return rlhf_fail("corpus path '%s' does not exist; hint: set [data] corpus to a text "
                             "file, .gz file or directory (`make data` fetches the default)", path);
        return rlhf_fail("cannot access corpus path '%s': %s; hint: check its permissions",
                         path, strerror(errno));
    }
    if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) {
        if (top)
            return rlhf_fail("corpus path '%s' is neither a file nor a directory; hint: give a "
                             "text file, .gz file or directory", path);
        r->c->n_files_skipped++;
        return 0;
    }
    if (reader_seen(r, st.st_dev, st.st_ino)) {
        r->c->n_files_skipped++;
        return 0;
    }

    if (S_ISREG(st.st_mode)) {
        uint8_t *buf;
        size_t n;
        int binary;
        if (file_load(path, &buf, &n, &binary) != 0) return -1;
        if (binary) {
            free(buf);
            if (top)
                return rlhf_fail("corpus file '%s' looks binary (a NUL byte in its first %d "
                                 "bytes); hint: give UTF-8 text or a .gz of it", path, BINARY_PROBE);
            r->c->n_files_skipped++;
            return 0;
        }
        r->c->n_files_read++;
        reader_split(r, buf, n);
        free(buf);
        return 0;
    }

    DIR *dir = opendir(path);
    if (!dir)
        return rlhf_fail("cannot open corpus directory '%s': %s; hint: check its permissions",
                         path, strerror(errno));
    char **names = NULL;
    size_t n_names = 0, cap_names = 0;
    struct dirent *ent;
    while ((ent = readdir(dir))) {
        if (ent->d_name[0] == '.') continue;  // ".", ".." and hidden files
        if (n_names == cap_names) {
            cap_names = cap_names ? 2 * cap_names : 64;
            names = reallocCheck(names, cap_names * sizeof *names);
        }
        names[n_names++] = strdup_check(ent->d_name);
    }
    closedir(dir);
    if (n_names > 1) qsort(names, n_names, sizeof *names, name_cmp);
    int rc = 0;
    for (size_t i = 0; i < n_names; i++) {
        if (rc == 0) {
            size_t len = strlen(path) + strlen(names[i]) + 2;
            char *child = mallocCheck(len);
            snprintf(child, len, "%s%s%s", path, ends_with(path, "/") ? "" : "/", names[i]);
            rc = reader_visit(r, child, 0);
            free(child);
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

int corpus_read(Corpus *c, const char *path, const char *doc_split) {
    memset(c, 0, sizeof *c);
    Reader r = {.c = c};
    if (!strcmp(doc_split, "auto")) r.mode = SPLIT_AUTO;
    else if (!strcmp(doc_split, "percent")) r.mode = SPLIT_PERCENT;
    else if (!strcmp(doc_split, "blank")) r.mode = SPLIT_BLANK;
    else if (!strcmp(doc_split, "none")) r.mode = SPLIT_NONE;
    else
        return rlhf_fail("doc_split '%s' is unknown; hint: use auto, percent, blank or none",
                         doc_split);
    if (!path || !path[0])
        return rlhf_fail("no corpus given; hint: set [data] corpus to a text file, .gz file or "
                         "directory");
    int rc = reader_visit(&r, path, 1);
    free(r.seen);
    if (rc == 0 && c->n_docs == 0)
        rc = rlhf_fail("corpus '%s' holds no documents (%d files read, %d skipped); hint: point "
                       "[data] corpus at UTF-8 text with at least one non-blank document",
                       path, c->n_files_read, c->n_files_skipped);
    if (rc != 0) {
        corpus_free(c);
        return -1;
    }
    return 0;
}

void corpus_free(Corpus *c) {
    if (!c) return;
    free(c->text);
    free(c->doc_start);
    memset(c, 0, sizeof *c);
}

const uint8_t *corpus_doc(const Corpus *c, size_t d, size_t *len) {
    ASSERT(d < c->n_docs);
    *len = c->doc_start[d + 1] - c->doc_start[d];
    return c->text + c->doc_start[d];
}

// --- train/val split and token streams ------------------------------------------

uint8_t *corpus_joined_text(const Corpus *c, size_t *len) {
    uint8_t *text = mallocCheck(c->n_bytes + 2 * c->n_docs);
    size_t at = 0;
    for (size_t d = 0; d < c->n_docs; d++) {
        size_t dlen;
        const uint8_t *doc = corpus_doc(c, d, &dlen);
        memcpy(text + at, doc, dlen);
        at += dlen;
        text[at++] = '\n';
        text[at++] = '\n';
    }
    *len = at;
    return text;
}

int corpus_encode(const Corpus *c, const Tokenizer *tok, const int *docs, size_t n, int **ids,
                  size_t *n_ids) {
    size_t cap = 1024, len = 0;
    int *out = mallocCheck(cap * sizeof(int));
    *ids = NULL;
    *n_ids = 0;
    for (size_t i = 0; i < n; i++) {
        size_t dlen;
        const uint8_t *doc = corpus_doc(c, (size_t)docs[i], &dlen);
        // a token per byte at most, plus the end-of-text
        while (len + dlen + 1 > cap) out = reallocCheck(out, (cap *= 2) * sizeof(int));
        out[len++] = tok->eot;
        long k = tokenizer_encode(tok, doc, dlen, out + len, (long)(cap - len));
        if (k < 0) {
            free(out);
            return rlhf_fail("document %d: %s", docs[i], rlhf_errmsg);
        }
        len += (size_t)k;
    }
    *ids = out;
    *n_ids = len;
    return 0;
}

static int cmp_int(const void *a, const void *b) {
    return (*(const int *)a > *(const int *)b) - (*(const int *)a < *(const int *)b);
}

int corpus_split(CorpusSplit *s, size_t n_docs, double val_fraction, uint64_t seed) {
    memset(s, 0, sizeof *s);
    size_t n_val = (size_t)(val_fraction * (double)n_docs + 0.5);
    if (val_fraction > 0 && n_val == 0) n_val = 1;
    if (n_val == 0 || n_val >= n_docs)
        return rlhf_fail("data.val_fraction=%g of %zu documents leaves %zu for validation and "
                         "%zu for training; hint: both need at least one document", val_fraction,
                         n_docs, n_val, n_docs - n_val);
    ASSERT(n_docs <= (size_t)INT_MAX);  // indices are int (rng_shuffle)
    // a seeded choice of the held-out documents, then both sets in corpus order
    int *order = mallocCheck(n_docs * sizeof(int));
    for (size_t i = 0; i < n_docs; i++) order[i] = (int)i;
    Rng rng;
    rng_init(&rng, seed);
    rng_shuffle(&rng, order, (int)n_docs);
    qsort(order, n_val, sizeof(int), cmp_int);
    qsort(order + n_val, n_docs - n_val, sizeof(int), cmp_int);
    s->val = order;
    s->train = order + n_val;
    s->n_val = n_val;
    s->n_train = n_docs - n_val;
    return 0;
}

void corpus_split_free(CorpusSplit *s) {
    if (!s) return;
    free(s->val);
    memset(s, 0, sizeof *s);
}

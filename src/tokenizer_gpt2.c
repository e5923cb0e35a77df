// GPT-2's tokenizer files: reading encoder.json + vocab.bpe into a
// TOKENIZER_GPT2 tokenizer, and writing vocab.json + merges.txt back.
// Both files spell every token through GPT-2's byte-to-unicode map (each
// byte is one printable character; see gpt2_byte_map), which is undone
// here: the Tokenizer holds raw bytes like the other kinds.
#include "tokenizer.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "common.h"

#define GPT2_FILES_HINT "hint: run 'make deps' to install GPT-2's files into " GPT2_DIR_DEFAULT \
                        " (or set RLHF_GPT2_DIR)"

static const char *const GPT2_SPECIALS[4] = {"<|endoftext|>", "<|user|>", "<|assistant|>", "<|pad|>"};

// Largest file accepted (GPT-2's are 1.0 and 0.5 MB).
#define GPT2_FILE_MAX ((size_t)256 << 20)

const char *gpt2_dir(void) {
    const char *d = getenv("RLHF_GPT2_DIR");
    return d && *d ? d : GPT2_DIR_DEFAULT;
}

// GPT-2's byte-to-unicode map: the printable bytes '!'..'~', 0xA1..0xAC and
// 0xAE..0xFF stand for themselves; the other 68 bytes, in increasing order,
// take the code points 256, 257, ... (so ' ' is U+0120 'Ġ').
static void gpt2_byte_map(int cp_of_byte[256]) {
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        cp_of_byte[b] = printable ? b : 256 + n++;
    }
}

#define GPT2_CP_LIMIT (256 + 68)

// Decodes one token string (UTF-8 of byte-map code points) into bytes.
// Returns the byte count, or -1 if it is not such a string.
static int gpt2_unmap(const char *s, const int byte_of_cp[GPT2_CP_LIMIT], uint8_t *out, int cap) {
    int n = 0;
    const uint8_t *p = (const uint8_t *)s;
    while (*p) {
        int cp;
        if (p[0] < 0x80) {
            cp = p[0];
            p += 1;
        } else if ((p[0] & 0xE0) == 0xC0 && (p[1] & 0xC0) == 0x80) {
            cp = ((p[0] & 0x1F) << 6) | (p[1] & 0x3F);
            p += 2;
        } else {
            return -1;  // every map code point is below U+0800
        }
        if (cp >= GPT2_CP_LIMIT || byte_of_cp[cp] < 0 || n == cap) return -1;
        out[n++] = (uint8_t)byte_of_cp[cp];
    }
    return n;
}

static char *read_small_file(const char *path, const char *what, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        rlhf_fail("cannot open GPT-2's %s %s: %s; " GPT2_FILES_HINT, what, path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 20, n = 0;
    char *buf = mallocCheck(cap + 1);
    for (;;) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap) break;
        if (cap >= GPT2_FILE_MAX) {
            free(buf);
            fclose(f);
            rlhf_fail("GPT-2's %s %s is larger than %zu MB; hint: is it the right file?", what, path,
                      GPT2_FILE_MAX >> 20);
            return NULL;
        }
        cap *= 2;
        buf = reallocCheck(buf, cap + 1);
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        rlhf_fail("cannot read GPT-2's %s %s; hint: check the file", what, path);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

// bytes -> id over the plain tokens, open addressing (FNV-1a hashes).
typedef struct {
    int *slot;  // id + 1, 0 = free
    size_t mask;
} ByteIndex;

static uint64_t fnv1a(const uint8_t *p, int n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (int i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

static int index_find(const ByteIndex *ix, const Tokenizer *tok, const uint8_t *b, int n) {
    size_t i = fnv1a(b, n) & ix->mask;
    for (; ix->slot[i]; i = (i + 1) & ix->mask) {
        int id = ix->slot[i] - 1, len;
        const uint8_t *t = tokenizer_token_bytes(tok, id, &len);
        if (len == n && !memcmp(t, b, (size_t)n)) return id;
    }
    return -(int)i - 1;  // the free slot where it belongs
}

// Fills tok's vocabulary from the parsed encoder.json. Returns -1 with a reason.
static int vocab_from_json(Tokenizer *tok, const cJSON *root, const char *path) {
    if (!cJSON_IsObject(root))
        return rlhf_fail("GPT-2's encoder %s is not a JSON object of token -> id; " GPT2_FILES_HINT,
                         path);
    int cp_of_byte[256], byte_of_cp[GPT2_CP_LIMIT];
    gpt2_byte_map(cp_of_byte);
    for (int c = 0; c < GPT2_CP_LIMIT; c++) byte_of_cp[c] = -1;
    for (int b = 0; b < 256; b++) byte_of_cp[cp_of_byte[b]] = b;

    // first pass: the ids, the specials, the largest id
    int n_entries = 0, special_id[4] = {-1, -1, -1, -1}, max_id = -1;
    for (const cJSON *e = root->child; e; e = e->next) {
        double v = e->valuedouble;
        if (!cJSON_IsNumber(e) || v < 0 || v >= (1 << 24) || v != (double)(int)v)
            return rlhf_fail("GPT-2's encoder %s: token '%.40s' has no id in [0, 2^24); "
                             GPT2_FILES_HINT, path, e->string);
        n_entries++;
        if ((int)v > max_id) max_id = (int)v;
        for (int k = 0; k < 4; k++)
            if (!strcmp(e->string, GPT2_SPECIALS[k])) special_id[k] = (int)v;
    }
    int eot = special_id[0];
    if (eot < 256)
        return rlhf_fail("GPT-2's encoder %s has no <|endoftext|> after the 256 byte tokens; "
                         GPT2_FILES_HINT, path);
    int chat = special_id[1] >= 0 || special_id[2] >= 0 || special_id[3] >= 0;
    for (int k = 1; k < 4 && chat; k++)
        if (special_id[k] != eot + k)
            return rlhf_fail("GPT-2's encoder %s: %s has id %d, expected %d (the chat specials "
                             "follow <|endoftext|> in the order user, assistant, pad); hint: check "
                             "the file", path, GPT2_SPECIALS[k], special_id[k], eot + k);
    int V = eot + 4;
    if (n_entries != (chat ? V : eot + 1) || max_id != (chat ? V - 1 : eot))
        return rlhf_fail("GPT-2's encoder %s has %d entries with ids up to %d; expected ids 0..%d "
                         "each once, <|endoftext|> last; " GPT2_FILES_HINT, path, n_entries, max_id,
                         chat ? V - 1 : eot);

    // second pass: the bytes of every token, by id
    int *len = callocCheck((size_t)V, sizeof *len);
    const char **name = callocCheck((size_t)V, sizeof *name);
    size_t total = 0;
    uint8_t buf[1024];
    int rc = 0;
    for (const cJSON *e = root->child; e && rc == 0; e = e->next) {
        int id = e->valueint;
        if (name[id]) {
            rc = rlhf_fail("GPT-2's encoder %s gives id %d to both '%.40s' and '%.40s'; "
                           GPT2_FILES_HINT, path, id, name[id], e->string);
            break;
        }
        name[id] = e->string;
        if (id >= eot) {
            len[id] = (int)strlen(e->string);
        } else {
            len[id] = gpt2_unmap(e->string, byte_of_cp, buf, sizeof buf);
            if (len[id] <= 0)
                rc = rlhf_fail("GPT-2's encoder %s: token %d '%.40s' is not spelt in GPT-2's "
                               "byte-to-unicode characters; " GPT2_FILES_HINT, path, id, e->string);
        }
        total += (size_t)len[id];
    }
    for (int k = 1; k < 4 && rc == 0; k++) {
        if (!chat) {
            name[eot + k] = GPT2_SPECIALS[k];
            len[eot + k] = (int)strlen(GPT2_SPECIALS[k]);
            total += (size_t)len[eot + k];
        }
    }
    if (rc == 0) {
        tok->vocab_size = V;
        tok->vocab_offsets = mallocCheck((size_t)(V + 1) * sizeof *tok->vocab_offsets);
        tok->vocab_bytes = mallocCheck(total ? total : 1);
        tok->vocab_offsets[0] = 0;
        for (int id = 0; id < V; id++) {
            uint8_t *dst = tok->vocab_bytes + tok->vocab_offsets[id];
            if (id >= eot) memcpy(dst, name[id], (size_t)len[id]);
            else gpt2_unmap(name[id], byte_of_cp, dst, len[id]);
            tok->vocab_offsets[id + 1] = tok->vocab_offsets[id] + len[id];
        }
        tok->eot = eot;
        tok->user = eot + 1;
        tok->assistant = eot + 2;
        tok->pad = eot + 3;
    }
    free(len);
    free(name);
    return rc;
}

// Fills tok->merges from vocab.bpe's text (tok's vocabulary is set).
static int merges_from_text(Tokenizer *tok, char *text, const char *path) {
    int cp_of_byte[256], byte_of_cp[GPT2_CP_LIMIT];
    gpt2_byte_map(cp_of_byte);
    for (int c = 0; c < GPT2_CP_LIMIT; c++) byte_of_cp[c] = -1;
    for (int b = 0; b < 256; b++) byte_of_cp[cp_of_byte[b]] = b;

    int n_plain = tok->eot, want = n_plain - 256;
    ByteIndex ix;
    size_t cap = 16;
    while (cap < 2 * (size_t)n_plain) cap <<= 1;
    ix.slot = callocCheck(cap, sizeof *ix.slot);
    ix.mask = cap - 1;
    int rc = 0;
    for (int id = 0; id < n_plain && rc == 0; id++) {
        int len;
        const uint8_t *b = tokenizer_token_bytes(tok, id, &len);
        int at = index_find(&ix, tok, b, len);
        if (at >= 0)
            rc = rlhf_fail("GPT-2's encoder gives the same bytes to tokens %d and %d; "
                           GPT2_FILES_HINT, at, id);
        else ix.slot[-at - 1] = id + 1;
    }
    tok->merges = mallocCheck((size_t)(want > 0 ? want : 1) * 2 * sizeof *tok->merges);
    int r = 0, line = 0;
    uint8_t a[1024], b[1024];
    for (char *p = text, *eol; rc == 0 && *p; p = eol + (*eol != '\0')) {
        eol = strchr(p, '\n');
        if (!eol) eol = p + strlen(p);
        line++;
        size_t n = (size_t)(eol - p);
        if (n > 0 && p[n - 1] == '\r') n--;
        if (n == 0 || (line == 1 && n >= 8 && !memcmp(p, "#version", 8))) continue;
        char *sp = memchr(p, ' ', n);
        char saved = p[n];
        p[n] = '\0';
        int la = -1, lb = -1;
        if (sp && sp > p && sp + 1 < p + n && !memchr(sp + 1, ' ', (size_t)(p + n - sp - 1))) {
            *sp = '\0';
            la = gpt2_unmap(p, byte_of_cp, a, sizeof a);
            lb = gpt2_unmap(sp + 1, byte_of_cp, b, sizeof b);
            *sp = ' ';
        }
        if (la <= 0 || lb <= 0) {
            rc = rlhf_fail("%s:%d: expected a merge 'LEFT RIGHT' of two tokens in GPT-2's "
                           "byte-to-unicode characters, got '%.60s'; " GPT2_FILES_HINT, path, line, p);
        } else if (r == want) {
            rc = rlhf_fail("%s:%d: more merges than the encoder's %d tokens allow (%d); "
                           GPT2_FILES_HINT, path, line, n_plain, want);
        } else {
            int ia = index_find(&ix, tok, a, la), ib = index_find(&ix, tok, b, lb);
            if (ia < 0 || ib < 0)
                rc = rlhf_fail("%s:%d: merge '%.60s' joins a token the encoder lacks; "
                               GPT2_FILES_HINT, path, line, p);
            tok->merges[2 * r] = ia;
            tok->merges[2 * r + 1] = ib;
            r++;
        }
        p[n] = saved;
    }
    free(ix.slot);
    if (rc == 0 && r != want)
        rc = rlhf_fail("%s has %d merges but the encoder has %d tokens before <|endoftext|> "
                       "(256 bytes + %d merges expected); " GPT2_FILES_HINT, path, r, n_plain, want);
    tok->n_merges = r;
    return rc;
}

int tokenizer_gpt2_load(Tokenizer *tok, const char *encoder_json, const char *vocab_bpe) {
    memset(tok, 0, sizeof *tok);
    size_t n_json, n_bpe;
    char *json = read_small_file(encoder_json, "encoder", &n_json);
    if (!json) return -1;
    char *bpe = read_small_file(vocab_bpe, "merges", &n_bpe);
    if (!bpe) {
        free(json);
        return -1;
    }
    int rc = 0;
    cJSON *root = cJSON_ParseWithLength(json, n_json);
    if (!root)
        rc = rlhf_fail("GPT-2's encoder %s is not valid JSON; " GPT2_FILES_HINT, encoder_json);
    tok->type = TOKENIZER_GPT2;
    if (rc == 0) rc = vocab_from_json(tok, root, encoder_json);
    if (rc == 0 && strlen(bpe) != n_bpe)
        rc = rlhf_fail("GPT-2's merges %s holds a NUL byte; " GPT2_FILES_HINT, vocab_bpe);
    if (rc == 0) rc = merges_from_text(tok, bpe, vocab_bpe);
    cJSON_Delete(root);
    free(json);
    free(bpe);
    if (rc == 0 && tokenizer_finish(tok) != 0) {
        char why[sizeof rlhf_errmsg];
        memcpy(why, rlhf_errmsg, sizeof why);
        rc = rlhf_fail("GPT-2's files %s and %s do not form a tokenizer: %s", encoder_json, vocab_bpe,
                       why);
    }
    if (rc != 0) tokenizer_free(tok);
    return rc;
}

int tokenizer_gpt2_load_default(Tokenizer *tok) {
    const char *d = gpt2_dir();
    size_t n = strlen(d) + 16;
    char *enc = mallocCheck(n), *bpe = mallocCheck(n);
    snprintf(enc, n, "%s/encoder.json", d);
    snprintf(bpe, n, "%s/vocab.bpe", d);
    int rc = tokenizer_gpt2_load(tok, enc, bpe);
    free(enc);
    free(bpe);
    return rc;
}

// --- writing ---------------------------------------------------------------------

// Writes the token's bytes in the byte-to-unicode spelling, as a JSON string
// body when json (quote and backslash escaped, non-ASCII as \uXXXX) or raw UTF-8.
static void put_mapped(FILE *f, const uint8_t *b, int n, const int cp_of_byte[256], int json) {
    for (int i = 0; i < n; i++) {
        int cp = cp_of_byte[b[i]];
        if (cp < 0x80) {
            if (json && (cp == '"' || cp == '\\')) fputc('\\', f);
            fputc(cp, f);
        } else if (json) {
            fprintf(f, "\\u%04x", cp);
        } else {
            fputc(0xC0 | (cp >> 6), f);
            fputc(0x80 | (cp & 0x3F), f);
        }
    }
}

int tokenizer_gpt2_put(const Tokenizer *tok, FILE *vocab_json, FILE *merges_txt) {
    if (tok->type != TOKENIZER_GPT2)
        return rlhf_fail("only a gpt2 tokenizer can be written as vocab.json + merges.txt; hint: "
                         "this model uses its own tokenizer (data.tokenizer = gpt2 makes one that can)");
    int cp_of_byte[256];
    gpt2_byte_map(cp_of_byte);
    fputc('{', vocab_json);
    for (int id = 0; id < tok->vocab_size; id++) {
        int len;
        const uint8_t *b = tokenizer_token_bytes(tok, id, &len);
        fputs(id ? ", \"" : "\"", vocab_json);
        if (id == tok->eot || id == tok->user || id == tok->assistant || id == tok->pad)
            fwrite(b, 1, (size_t)len, vocab_json);  // printable ASCII names
        else put_mapped(vocab_json, b, len, cp_of_byte, 1);
        fprintf(vocab_json, "\": %d", id);
    }
    fputs("}", vocab_json);
    fputs("#version: 0.2\n", merges_txt);
    for (int r = 0; r < tok->n_merges; r++) {
        for (int k = 0; k < 2; k++) {
            int len;
            const uint8_t *b = tokenizer_token_bytes(tok, tok->merges[2 * r + k], &len);
            put_mapped(merges_txt, b, len, cp_of_byte, 0);
            fputc(k ? '\n' : ' ', merges_txt);
        }
    }
    return 0;  // write errors show when the files are committed
}

int tokenizer_gpt2_write(const Tokenizer *tok, const char *vocab_json, const char *merges_txt,
                         int no_replace) {
    AtomicFile af[2];
    if (atomic_open(&af[0], vocab_json) != 0) return -1;
    if (atomic_open(&af[1], merges_txt) != 0) {
        atomic_abort(&af[0]);
        return -1;
    }
    af[0].no_replace = af[1].no_replace = no_replace;
    if (tokenizer_gpt2_put(tok, af[0].f, af[1].f) != 0) {
        atomic_abort(&af[0]);
        atomic_abort(&af[1]);
        return -1;
    }
    return atomic_commit_set(af, 2);
}

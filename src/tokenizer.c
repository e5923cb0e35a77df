// Char-level and byte-level BPE tokenizers: training, encoding, decoding, and
// the consistency check of a tokenizer read back from a checkpoint. No file
// I/O here (checkpoint.c stores the fields; tokenizer_gpt2.c reads GPT-2's
// files). The trained BPE's pre-tokenizer is the small hand-written splitter
// chunk_end(); GPT-2's is its own regex, run by PCRE2.
#include "tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

// Names of the specials, in id order (eot, user, assistant, pad); they take
// the four ids after the ordinary tokens.
#define N_SPECIALS 4
static const char *const SPECIAL_NAMES[N_SPECIALS] = {"<|endoftext|>", "<|user|>",
                                                      "<|assistant|>", "<|pad|>"};
#define BPE_MIN_VOCAB (256 + N_SPECIALS)

// Longest pre-tokenizer chunk. A longer run (a megabyte without a space) is
// cut, near a UTF-8 character boundary, so that training and encoding stay
// linear in the text on such input. Training and encoding cut the same way.
#define CHUNK_MAX 256

static int gpt2_pretok_compile(Tokenizer *tok);

#define CORRUPT_HINT "hint: the checkpoint is damaged or was not written by rlhf.c"

// ---------------------------------------------------------------------------
// (left, right) pair -> int: open addressing with linear probing. Serves as
// the merge index of an encoder (value = rank) and as the pair table of the
// trainer (value = pair number).

typedef struct {
    uint64_t *keys;  // PAIRMAP_EMPTY marks a free slot
    int *vals;
    size_t cap;      // power of two, at most half full
    size_t len;
} PairMap;

#define PAIRMAP_EMPTY UINT64_MAX

static uint64_t pair_key(int a, int b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; }

static size_t hash_u64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return (size_t)x;
}

static void pairmap_init(PairMap *m, size_t expected) {
    size_t cap = 16;
    while (cap < 2 * expected) cap <<= 1;
    m->keys = mallocCheck(cap * sizeof *m->keys);
    memset(m->keys, 0xff, cap * sizeof *m->keys);
    m->vals = mallocCheck(cap * sizeof *m->vals);
    m->cap = cap;
    m->len = 0;
}

static void pairmap_free(PairMap *m) {
    if (!m) return;
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

// The slot holding key, or the free slot where it belongs.
static size_t pairmap_slot(const PairMap *m, uint64_t key) {
    size_t mask = m->cap - 1, i = hash_u64(key) & mask;
    while (m->keys[i] != PAIRMAP_EMPTY && m->keys[i] != key) i = (i + 1) & mask;
    return i;
}

// The value stored for key, or -1.
static int pairmap_get(const PairMap *m, uint64_t key) {
    size_t i = pairmap_slot(m, key);
    return m->keys[i] == key ? m->vals[i] : -1;
}

static void pairmap_grow(PairMap *m) {
    PairMap bigger;
    pairmap_init(&bigger, m->cap);  // twice the slots
    for (size_t i = 0; i < m->cap; i++) {
        if (m->keys[i] == PAIRMAP_EMPTY) continue;
        size_t j = pairmap_slot(&bigger, m->keys[i]);
        bigger.keys[j] = m->keys[i];
        bigger.vals[j] = m->vals[i];
    }
    bigger.len = m->len;
    pairmap_free(m);
    *m = bigger;
}

// Returns the value of key, first storing val if key is absent (*created = 1).
static int pairmap_intern(PairMap *m, uint64_t key, int val, int *created) {
    if (2 * (m->len + 1) > m->cap) pairmap_grow(m);
    size_t i = pairmap_slot(m, key);
    *created = m->keys[i] != key;
    if (*created) {
        m->keys[i] = key;
        m->vals[i] = val;
        m->len++;
    }
    return m->vals[i];
}

// ---------------------------------------------------------------------------
// Pre-tokenizer, GPT-2-like: an optional single space followed by a run of
// letters (ASCII letters and every byte >= 0x80, so UTF-8 characters stay
// whole), a run of digits, or a run of other non-space bytes; whitespace runs
// are chunks of their own, except that the last space of a run is left to
// lead the next word ("a  b" -> "a", " ", " b").

enum { CLASS_SPACE, CLASS_LETTER, CLASS_DIGIT, CLASS_OTHER };

static int byte_class(uint8_t c) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f')
        return CLASS_SPACE;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80) return CLASS_LETTER;
    if (c >= '0' && c <= '9') return CLASS_DIGIT;
    return CLASS_OTHER;
}

// End (exclusive) of the chunk that starts at s[i], i < n. Scans at most
// CHUNK_MAX + 1 bytes, so cutting a long run costs no more than the chunk.
static size_t chunk_end(const uint8_t *s, size_t n, size_t i) {
    size_t lim = n - i > CHUNK_MAX ? i + CHUNK_MAX + 1 : n;
    size_t j = i;
    int cls = byte_class(s[i]);
    if (s[i] == ' ' && i + 1 < n && byte_class(s[i + 1]) != CLASS_SPACE) {
        j = i + 1;  // a leading space joins the run after it
        cls = byte_class(s[j]);
        while (j < lim && byte_class(s[j]) == cls) j++;
    } else if (cls == CLASS_SPACE) {
        while (j < lim && byte_class(s[j]) == CLASS_SPACE) j++;
        // the run ended before a non-space: leave its last space to that word
        if (j < n && byte_class(s[j]) != CLASS_SPACE && j - i > 1 && s[j - 1] == ' ') j--;
    } else {
        while (j < lim && byte_class(s[j]) == cls) j++;
    }
    if (j - i > CHUNK_MAX) {
        j = i + CHUNK_MAX;
        // step back onto the lead byte of a UTF-8 character (at most 3 bytes)
        for (int k = 0; k < 3 && j > i + 1 && (s[j] & 0xC0) == 0x80; k++) j--;
    }
    return j;
}

// ---------------------------------------------------------------------------
// Building the stored fields.

// Fills vocab_bytes/offsets of a tokenizer whose type, n_merges, merges and
// vocab_size are set; `chars` lists the byte tokens of a char tokenizer
// (n_chars of them), ignored for BPE. Sets the special ids.
static void tokenizer_build_vocab(Tokenizer *tok, const uint8_t *chars, int n_chars) {
    int n_plain = tok->type == TOKENIZER_BPE ? 256 + tok->n_merges : n_chars;
    ASSERT(tok->vocab_size == n_plain + N_SPECIALS);
    int *off = mallocCheck((size_t)(tok->vocab_size + 1) * sizeof *off);
    // token lengths first, then the bytes
    off[0] = 0;
    for (int id = 0; id < tok->vocab_size; id++) {
        int len;
        if (id >= n_plain) len = (int)strlen(SPECIAL_NAMES[id - n_plain]);
        else if (tok->type == TOKENIZER_CHAR || id < 256) len = 1;
        else {
            int r = id - 256, a = tok->merges[2 * r], b = tok->merges[2 * r + 1];
            len = (off[a + 1] - off[a]) + (off[b + 1] - off[b]);
        }
        off[id + 1] = off[id] + len;
    }
    uint8_t *bytes = mallocCheck((size_t)off[tok->vocab_size]);
    for (int id = 0; id < tok->vocab_size; id++) {
        uint8_t *dst = bytes + off[id];
        if (id >= n_plain) {
            memcpy(dst, SPECIAL_NAMES[id - n_plain], (size_t)(off[id + 1] - off[id]));
        } else if (tok->type == TOKENIZER_CHAR) {
            dst[0] = chars[id];
        } else if (id < 256) {
            dst[0] = (uint8_t)id;
        } else {
            int r = id - 256, a = tok->merges[2 * r], b = tok->merges[2 * r + 1];
            int la = off[a + 1] - off[a];
            memcpy(dst, bytes + off[a], (size_t)la);
            memcpy(dst + la, bytes + off[b], (size_t)(off[b + 1] - off[b]));
        }
    }
    tok->vocab_offsets = off;
    tok->vocab_bytes = bytes;
    tok->eot = n_plain;
    tok->user = n_plain + 1;
    tok->assistant = n_plain + 2;
    tok->pad = n_plain + 3;
}

static int train_char(Tokenizer *tok, const uint8_t *text, size_t n) {
    if (n == 0)
        return rlhf_fail("cannot train a char tokenizer on empty text; "
                         "hint: check that the corpus holds documents");
    // printable ASCII, tab and newline always belong to the vocabulary (task
    // prompts and chat input must encode whatever the corpus lacked), plus
    // every other byte the text holds
    int present[256] = {0};
    for (int c = 0x20; c < 0x7f; c++) present[c] = 1;
    present['\t'] = present['\n'] = 1;
    for (size_t i = 0; i < n; i++) present[text[i]] = 1;
    uint8_t chars[256];
    int n_chars = 0;
    for (int c = 0; c < 256; c++)
        if (present[c]) chars[n_chars++] = (uint8_t)c;
    tok->type = TOKENIZER_CHAR;
    tok->vocab_size = n_chars + N_SPECIALS;
    tok->n_merges = 0;
    tok->merges = NULL;
    tokenizer_build_vocab(tok, chars, n_chars);
    return 0;
}

// ---------------------------------------------------------------------------
// BPE training. The text is cut into chunks and equal chunks are counted
// ("words" with a frequency). Every adjacent pair of symbols has a count (sum
// of the frequencies of its occurrences) and a list of the words it may occur
// in (lists may hold stale entries; merging a word that no longer holds the
// pair is a no-op). A max-heap keyed by (count desc, left asc, right asc)
// finds the next merge; its entries are validated lazily when popped. A pair
// count only grows in the merge step that creates the pair (a new pair always
// holds the new id), so an entry's count is never below the pair's current
// count and a stale entry is simply re-pushed with the current one.

typedef struct {
    int *v;
    int len, cap;
} IntVec;

typedef struct {
    int64_t count;
    int left, right, pair;
} HeapEntry;

typedef struct {
    // words: symbols of word w are sym[word_off[w] .. word_off[w] + word_len[w])
    int *sym;
    size_t *word_off;
    int *word_len;
    int64_t *word_freq;
    int n_words;
    // pairs, numbered in order of creation
    PairMap index;  // (left, right) -> pair number
    int *left, *right;
    int64_t *count;
    IntVec *words;  // words that may hold the pair
    int n_pairs, cap_pairs;
    // pairs created during the current merge step, pushed when it ends
    IntVec created;
    HeapEntry *heap;
    size_t heap_len, heap_cap;
} BpeTrainer;

static void intvec_push(IntVec *v, int x) {
    if (v->len == v->cap) {
        v->cap = v->cap ? 2 * v->cap : 4;
        v->v = reallocCheck(v->v, (size_t)v->cap * sizeof *v->v);
    }
    v->v[v->len++] = x;
}

static int heap_above(const HeapEntry *a, const HeapEntry *b) {
    if (a->count != b->count) return a->count > b->count;
    if (a->left != b->left) return a->left < b->left;
    return a->right < b->right;
}

static void heap_push(BpeTrainer *t, HeapEntry e) {
    if (t->heap_len == t->heap_cap) {
        t->heap_cap = t->heap_cap ? 2 * t->heap_cap : 1024;
        t->heap = reallocCheck(t->heap, t->heap_cap * sizeof *t->heap);
    }
    size_t i = t->heap_len++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!heap_above(&e, &t->heap[parent])) break;
        t->heap[i] = t->heap[parent];
        i = parent;
    }
    t->heap[i] = e;
}

static HeapEntry heap_pop(BpeTrainer *t) {
    ASSERT(t->heap_len > 0);
    HeapEntry top = t->heap[0], last = t->heap[--t->heap_len];
    size_t i = 0, n = t->heap_len;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && heap_above(&t->heap[c + 1], &t->heap[c])) c++;
        if (!heap_above(&t->heap[c], &last)) break;
        t->heap[i] = t->heap[c];
        i = c;
    }
    if (n > 0) t->heap[i] = last;
    return top;
}

static void trainer_push_pair(BpeTrainer *t, int p) {
    if (t->count[p] > 0)
        heap_push(t, (HeapEntry){t->count[p], t->left[p], t->right[p], p});
}

// count(a, b) += f, noting that word w holds the pair.
static void trainer_add(BpeTrainer *t, int a, int b, int w, int64_t f) {
    int created;
    int p = pairmap_intern(&t->index, pair_key(a, b), t->n_pairs, &created);
    if (created) {
        if (t->n_pairs == t->cap_pairs) {
            t->cap_pairs = t->cap_pairs ? 2 * t->cap_pairs : 1024;
            size_t c = (size_t)t->cap_pairs;
            t->left = reallocCheck(t->left, c * sizeof *t->left);
            t->right = reallocCheck(t->right, c * sizeof *t->right);
            t->count = reallocCheck(t->count, c * sizeof *t->count);
            t->words = reallocCheck(t->words, c * sizeof *t->words);
        }
        t->n_pairs++;
        t->left[p] = a;
        t->right[p] = b;
        t->count[p] = 0;
        t->words[p] = (IntVec){0};
        intvec_push(&t->created, p);
    }
    t->count[p] += f;
    IntVec *ws = &t->words[p];
    if (ws->len == 0 || ws->v[ws->len - 1] != w) intvec_push(ws, w);
}

static void trainer_sub(BpeTrainer *t, int a, int b, int64_t f) {
    int p = pairmap_get(&t->index, pair_key(a, b));
    ASSERT(p >= 0 && t->count[p] >= f);
    t->count[p] -= f;
}

// Replaces every (a, b) in word w by id, left to right, updating the counts
// of the pairs around each replacement. The left neighbour is read after its
// own replacement and the right one before, so overlapping runs ("aaa" with
// (a, a) -> "Na") come out right.
static void trainer_merge_word(BpeTrainer *t, int w, int a, int b, int id) {
    int *s = t->sym + t->word_off[w];
    int len = t->word_len[w], k = 0, i = 0;
    int64_t f = t->word_freq[w];
    while (i < len) {
        if (i + 1 < len && s[i] == a && s[i + 1] == b) {
            if (k > 0) {
                trainer_sub(t, s[k - 1], a, f);
                trainer_add(t, s[k - 1], id, w, f);
            }
            if (i + 2 < len) {
                trainer_sub(t, b, s[i + 2], f);
                trainer_add(t, id, s[i + 2], w, f);
            }
            trainer_sub(t, a, b, f);
            s[k++] = id;
            i += 2;
        } else {
            s[k++] = s[i++];
        }
    }
    t->word_len[w] = k;
}

// Cuts text into chunks and fills the trainer's words with the distinct
// chunks and their frequencies.
static void trainer_count_words(BpeTrainer *t, const uint8_t *text, size_t n) {
    // open-addressing table of distinct chunks: slot -> word number + 1
    size_t cap = 1024;
    int *slots = callocCheck(cap, sizeof *slots);
    size_t *pos = NULL;        // first occurrence of each word in text
    uint64_t *hashes = NULL;
    int n_words = 0, cap_words = 0;
    size_t total_len = 0;
    for (size_t i = 0, j; i < n; i = j) {
        j = chunk_end(text, n, i);
        int len = (int)(j - i);
        uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a
        for (size_t k = i; k < j; k++) h = (h ^ text[k]) * 0x100000001b3ULL;
        size_t mask = cap - 1, s = hash_u64(h) & mask;
        while (slots[s]) {
            int w = slots[s] - 1;
            if (hashes[w] == h && t->word_len[w] == len && !memcmp(text + pos[w], text + i, (size_t)len))
                break;
            s = (s + 1) & mask;
        }
        if (slots[s]) {
            t->word_freq[slots[s] - 1]++;
            continue;
        }
        if (n_words == cap_words) {
            cap_words = cap_words ? 2 * cap_words : 1024;
            size_t c = (size_t)cap_words;
            pos = reallocCheck(pos, c * sizeof *pos);
            hashes = reallocCheck(hashes, c * sizeof *hashes);
            t->word_len = reallocCheck(t->word_len, c * sizeof *t->word_len);
            t->word_freq = reallocCheck(t->word_freq, c * sizeof *t->word_freq);
        }
        pos[n_words] = i;
        hashes[n_words] = h;
        t->word_len[n_words] = len;
        t->word_freq[n_words] = 1;
        slots[s] = ++n_words;
        total_len += (size_t)len;
        if (2 * (size_t)n_words > cap) {  // rehash into twice the slots
            free(slots);
            cap *= 2;
            slots = callocCheck(cap, sizeof *slots);
            for (int w = 0; w < n_words; w++) {
                size_t q = hash_u64(hashes[w]) & (cap - 1);
                while (slots[q]) q = (q + 1) & (cap - 1);
                slots[q] = w + 1;
            }
        }
    }
    t->n_words = n_words;
    t->word_off = mallocCheck((size_t)(n_words ? n_words : 1) * sizeof *t->word_off);
    t->sym = mallocCheck((total_len ? total_len : 1) * sizeof *t->sym);
    size_t off = 0;
    for (int w = 0; w < n_words; w++) {
        t->word_off[w] = off;
        for (int k = 0; k < t->word_len[w]; k++) t->sym[off + (size_t)k] = text[pos[w] + (size_t)k];
        off += (size_t)t->word_len[w];
    }
    free(slots);
    free(pos);
    free(hashes);
}

static void trainer_free(BpeTrainer *t) {
    free(t->sym);
    free(t->word_off);
    free(t->word_len);
    free(t->word_freq);
    pairmap_free(&t->index);
    for (int p = 0; p < t->n_pairs; p++) free(t->words[p].v);
    free(t->words);
    free(t->left);
    free(t->right);
    free(t->count);
    free(t->created.v);
    free(t->heap);
}

static int train_bpe(Tokenizer *tok, const uint8_t *text, size_t n, int vocab_size) {
    if (vocab_size < BPE_MIN_VOCAB)
        return rlhf_fail("bpe vocab_size %d is below the minimum %d (256 bytes + %d special "
                         "tokens); hint: set [data] vocab_size >= %d",
                         vocab_size, BPE_MIN_VOCAB, N_SPECIALS, BPE_MIN_VOCAB);
    int target = vocab_size - BPE_MIN_VOCAB;  // merges wanted
    BpeTrainer t = {0};
    trainer_count_words(&t, text, n);
    pairmap_init(&t.index, 1024);
    for (int w = 0; w < t.n_words; w++) {
        const int *s = t.sym + t.word_off[w];
        for (int k = 0; k + 1 < t.word_len[w]; k++) trainer_add(&t, s[k], s[k + 1], w, t.word_freq[w]);
    }
    for (int p = 0; p < t.n_pairs; p++) trainer_push_pair(&t, p);
    t.created.len = 0;

    int *merges = mallocCheck((size_t)(target ? target : 1) * 2 * sizeof *merges);
    int r;
    for (r = 0; r < target; r++) {
        int best = -1;
        while (t.heap_len > 0) {
            HeapEntry e = heap_pop(&t);
            int64_t cur = t.count[e.pair];
            if (cur == e.count) {
                best = e.pair;
                break;
            }
            ASSERT(cur < e.count);
            trainer_push_pair(&t, e.pair);
        }
        if (best < 0 || t.count[best] < 2) break;
        int a = t.left[best], b = t.right[best], id = 256 + r;
        merges[2 * r] = a;
        merges[2 * r + 1] = b;
        IntVec ws = t.words[best];  // detached: merging never re-creates (a, b)
        t.words[best] = (IntVec){0};
        for (int k = 0; k < ws.len; k++) trainer_merge_word(&t, ws.v[k], a, b, id);
        free(ws.v);
        ASSERT(t.count[best] == 0);
        for (int k = 0; k < t.created.len; k++) trainer_push_pair(&t, t.created.v[k]);
        t.created.len = 0;
    }
    trainer_free(&t);
    if (r < target) {
        free(merges);
        return rlhf_fail("bpe vocab_size %d is more than this text allows: after %d merges no "
                         "pair of tokens occurs twice; hint: use vocab_size <= %d or a larger corpus",
                         vocab_size, r, BPE_MIN_VOCAB + r);
    }
    tok->type = TOKENIZER_BPE;
    tok->n_merges = target;
    tok->merges = merges;
    tok->vocab_size = vocab_size;
    tokenizer_build_vocab(tok, NULL, 0);
    return 0;
}

int tokenizer_train(Tokenizer *tok, int type, const uint8_t *text, size_t n, int vocab_size) {
    memset(tok, 0, sizeof *tok);
    int rc;
    if (type == TOKENIZER_CHAR) rc = train_char(tok, text, n);
    else if (type == TOKENIZER_BPE) rc = train_bpe(tok, text, n, vocab_size);
    else rc = rlhf_fail("tokenizer type %d is unknown; hint: use char or bpe", type);
    if (rc == 0) rc = tokenizer_finish(tok);
    if (rc != 0) tokenizer_free(tok);
    return rc;
}

// ---------------------------------------------------------------------------
// Consistency of the stored fields, and the derived lookups.

static int token_is(const Tokenizer *tok, int id, const uint8_t *bytes, int len) {
    int have = tok->vocab_offsets[id + 1] - tok->vocab_offsets[id];
    return have == len && !memcmp(tok->vocab_bytes + tok->vocab_offsets[id], bytes, (size_t)len);
}

// Checks everything a reader could have got wrong; the message names the
// first violation.
static int tokenizer_check(const Tokenizer *tok) {
    int V = tok->vocab_size;
    if (tok->type != TOKENIZER_CHAR && tok->type != TOKENIZER_BPE && tok->type != TOKENIZER_GPT2)
        return rlhf_fail("tokenizer type %d is unknown; " CORRUPT_HINT, tok->type);
    if (V < 1 + N_SPECIALS || !tok->vocab_bytes || !tok->vocab_offsets)
        return rlhf_fail("tokenizer vocabulary is missing or has %d tokens; " CORRUPT_HINT, V);
    if (tok->vocab_offsets[0] != 0)
        return rlhf_fail("tokenizer vocab_offsets[0] is %d, not 0; " CORRUPT_HINT, tok->vocab_offsets[0]);
    for (int i = 0; i < V; i++)
        if (tok->vocab_offsets[i + 1] < tok->vocab_offsets[i])
            return rlhf_fail("tokenizer vocab_offsets decrease at token %d; " CORRUPT_HINT, i);

    const int sp[N_SPECIALS] = {tok->eot, tok->user, tok->assistant, tok->pad};
    if (tok->pad == tok->eot)
        return rlhf_fail("tokenizer pad id equals end-of-text id (%d); " CORRUPT_HINT, tok->pad);
    for (int k = 0; k < N_SPECIALS; k++) {
        if (sp[k] < 0 || sp[k] >= V)
            return rlhf_fail("tokenizer special %s has id %d, outside [0, %d); " CORRUPT_HINT,
                             SPECIAL_NAMES[k], sp[k], V);
        for (int j = 0; j < k; j++)
            if (sp[j] == sp[k])
                return rlhf_fail("tokenizer specials %s and %s share id %d; " CORRUPT_HINT,
                                 SPECIAL_NAMES[j], SPECIAL_NAMES[k], sp[k]);
        if (!token_is(tok, sp[k], (const uint8_t *)SPECIAL_NAMES[k], (int)strlen(SPECIAL_NAMES[k])))
            return rlhf_fail("tokenizer token %d should be %s; " CORRUPT_HINT, sp[k], SPECIAL_NAMES[k]);
    }

    if (tok->type == TOKENIZER_CHAR) {
        if (tok->n_merges != 0)
            return rlhf_fail("char tokenizer has %d merges; " CORRUPT_HINT, tok->n_merges);
        int seen[256] = {0};
        for (int id = 0; id < V; id++) {
            if (id == tok->eot || id == tok->user || id == tok->assistant || id == tok->pad) continue;
            int len = tok->vocab_offsets[id + 1] - tok->vocab_offsets[id];
            if (len != 1)
                return rlhf_fail("char tokenizer token %d has %d bytes, not 1; " CORRUPT_HINT, id, len);
            uint8_t c = tok->vocab_bytes[tok->vocab_offsets[id]];
            if (seen[c]++)
                return rlhf_fail("char tokenizer holds byte 0x%02X twice; " CORRUPT_HINT, c);
        }
        return 0;
    }

    int n_plain = 256 + tok->n_merges;
    if (tok->n_merges < 0 || (tok->n_merges > 0 && !tok->merges) || V != n_plain + N_SPECIALS)
        return rlhf_fail("bpe tokenizer has %d merges but %d tokens (expected 256 + merges + %d); "
                         CORRUPT_HINT, tok->n_merges, V, N_SPECIALS);
    for (int k = 0; k < N_SPECIALS; k++)
        if (sp[k] < n_plain)
            return rlhf_fail("bpe special %s has id %d, inside the byte/merge range [0, %d); "
                             CORRUPT_HINT, SPECIAL_NAMES[k], sp[k], n_plain);
    int seen[256] = {0};
    for (int id = 0; id < 256; id++) {
        uint8_t c = (uint8_t)id;
        if (tok->type == TOKENIZER_BPE && !token_is(tok, id, &c, 1))
            return rlhf_fail("bpe token %d should be the single byte 0x%02X; " CORRUPT_HINT, id, id);
        // GPT-2: ids 0..255 are the 256 bytes in some order, each once
        if (tok->vocab_offsets[id + 1] - tok->vocab_offsets[id] != 1)
            return rlhf_fail("gpt2 token %d should be a single byte; " CORRUPT_HINT, id);
        if (seen[tok->vocab_bytes[tok->vocab_offsets[id]]]++)
            return rlhf_fail("gpt2 tokenizer holds byte 0x%02X twice among ids 0..255; " CORRUPT_HINT,
                             tok->vocab_bytes[tok->vocab_offsets[id]]);
    }
    for (int r = 0; r < tok->n_merges; r++) {
        int a = tok->merges[2 * r], b = tok->merges[2 * r + 1], id = 256 + r;
        if (a < 0 || a >= id || b < 0 || b >= id)
            return rlhf_fail("bpe merge %d joins ids %d and %d, but may only use ids below %d; "
                             CORRUPT_HINT, r, a, b, id);
        const int *off = tok->vocab_offsets;
        int la = off[a + 1] - off[a], lb = off[b + 1] - off[b];
        if (off[id + 1] - off[id] != la + lb ||
            memcmp(tok->vocab_bytes + off[id], tok->vocab_bytes + off[a], (size_t)la) ||
            memcmp(tok->vocab_bytes + off[id] + la, tok->vocab_bytes + off[b], (size_t)lb))
            return rlhf_fail("bpe token %d is not the bytes of tokens %d and %d joined; " CORRUPT_HINT,
                             id, a, b);
    }
    return 0;
}

// The stored arrays must come from malloc (tokenizer_free frees them) and
// merge_index must be NULL or from an earlier finish: a reader zeroes the
// struct before filling it.
int tokenizer_finish(Tokenizer *tok) {
    if (tok->merge_index) {
        pairmap_free(tok->merge_index);
        free(tok->merge_index);
        tok->merge_index = NULL;
    }
    if (tok->pretok) {
        pcre2_code_free(tok->pretok);
        tok->pretok = NULL;
    }
    if (tokenizer_check(tok) != 0) return -1;
    for (int c = 0; c < 256; c++) tok->byte_to_id[c] = tok->type == TOKENIZER_BPE ? c : -1;
    if (tok->type == TOKENIZER_GPT2) {
        for (int id = 0; id < 256; id++) tok->byte_to_id[tok->vocab_bytes[tok->vocab_offsets[id]]] = id;
        if (gpt2_pretok_compile(tok) != 0) return -1;
    }
    if (tok->type == TOKENIZER_CHAR) {
        for (int id = 0; id < tok->vocab_size; id++) {
            if (id == tok->eot || id == tok->user || id == tok->assistant || id == tok->pad) continue;
            tok->byte_to_id[tok->vocab_bytes[tok->vocab_offsets[id]]] = id;
        }
        return 0;
    }
    PairMap *index = mallocCheck(sizeof *index);
    pairmap_init(index, (size_t)tok->n_merges);
    for (int r = 0; r < tok->n_merges; r++) {
        int created;
        int first = pairmap_intern(index, pair_key(tok->merges[2 * r], tok->merges[2 * r + 1]), r, &created);
        if (!created) {
            pairmap_free(index);
            free(index);
            return rlhf_fail("bpe merge %d repeats merge %d; " CORRUPT_HINT, r, first);
        }
    }
    tok->merge_index = index;
    return 0;
}

const char *tokenizer_type_name(int type) {
    return type == TOKENIZER_GPT2 ? "gpt2" : type == TOKENIZER_BPE ? "bpe" : "char";
}

void tokenizer_free(Tokenizer *tok) {
    if (!tok) return;
    free(tok->vocab_bytes);
    free(tok->vocab_offsets);
    free(tok->merges);
    if (tok->merge_index) {
        pairmap_free(tok->merge_index);
        free(tok->merge_index);
    }
    if (tok->pretok) pcre2_code_free(tok->pretok);
    memset(tok, 0, sizeof *tok);
}

// ---------------------------------------------------------------------------
// Encoding and decoding.

static int merge_rank(const PairMap *index, int a, int b) {
    int r = pairmap_get(index, pair_key(a, b));
    return r < 0 ? INT_MAX : r;
}

// Encodes one chunk (len <= CHUNK_MAX) into ids, returning their number:
// repeatedly joins every occurrence of the lowest-rank pair present. Only the
// pairs next to a joined token are looked up again.
static int bpe_encode_chunk(const Tokenizer *tok, const uint8_t *s, int len, int *ids) {
    const PairMap *index = tok->merge_index;
    int rank_a[CHUNK_MAX], rank_b[CHUNK_MAX], src[CHUNK_MAX];
    uint8_t fresh[CHUNK_MAX];
    int *rank = rank_a, *next = rank_b;  // rank[i]: rank of pair (ids[i], ids[i+1])
    for (int i = 0; i < len; i++) ids[i] = tok->byte_to_id[s[i]];
    for (int i = 0; i + 1 < len; i++) rank[i] = merge_rank(index, ids[i], ids[i + 1]);
    while (len > 1) {
        int best = INT_MAX;
        for (int i = 0; i + 1 < len; i++)
            if (rank[i] < best) best = rank[i];
        if (best == INT_MAX) break;
        int k = 0;
        for (int i = 0; i < len; k++) {
            if (i + 1 < len && rank[i] == best) {
                ids[k] = 256 + best;
                fresh[k] = 1;
                i += 2;
            } else {
                ids[k] = ids[i];
                fresh[k] = 0;
                src[k] = i;
                i++;
            }
        }
        // two untouched neighbours were neighbours before: keep their rank
        for (int i = 0; i + 1 < k; i++)
            next[i] = fresh[i] || fresh[i + 1] ? merge_rank(index, ids[i], ids[i + 1]) : rank[src[i]];
        int *tmp = rank;
        rank = next;
        next = tmp;
        len = k;
    }
    return len;
}

// ---------------------------------------------------------------------------
// GPT-2: the pre-tokenizer regex, and BPE of pre-tokens of any length.

// GPT-2's pattern, unchanged. With UCP, \p{L}, \p{N} and \s follow Unicode
// (\s: the White_Space characters). MATCH_INVALID_UTF lets the subject hold
// bytes that are not UTF-8: they match nothing, and encode_gpt2 makes each
// run of them between two matches a pre-token of its own.
static const char GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static int gpt2_pretok_compile(Tokenizer *tok) {
    int err;
    PCRE2_SIZE at;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)GPT2_PATTERN, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &at, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return rlhf_fail("gpt2 pre-tokenizer regex does not compile at offset %zu: %s; hint: "
                         "libpcre2-8 10.34 or newer is needed", (size_t)at, (const char *)msg);
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);  // interpreted when JIT is unavailable
    tok->pretok = re;
    return 0;
}

typedef struct {
    int rank, pos;
    int left, right;  // the ids the pair had when pushed (a stale entry differs)
} MergeEntry;

static int merge_before(const MergeEntry *a, const MergeEntry *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void merge_push(MergeEntry *h, int *n, MergeEntry e) {
    int i = (*n)++;
    while (i > 0 && merge_before(&e, &h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = e;
}

static MergeEntry merge_pop(MergeEntry *h, int *n) {
    MergeEntry top = h[0], last = h[--*n];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && merge_before(&h[c + 1], &h[c])) c++;
        if (!merge_before(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n > 0) h[i] = last;
    return top;
}

// BPE of a pre-token of any length in O(len log len): a linked list of
// symbols and a heap of the pairs present, lowest rank first and leftmost
// first among equal ranks. That is the order of the rank-by-rank passes of
// bpe_encode_chunk: a merge only creates pairs holding its new id 256 + r,
// whose ranks exceed r (a merge joins ids below its own). Writes ids to out
// (room for len) and returns their number.
static int bpe_encode_long(const Tokenizer *tok, const uint8_t *s, int len, int *out) {
    const PairMap *index = tok->merge_index;
    int *ids = mallocCheck((size_t)len * sizeof *ids);
    int *prev = mallocCheck((size_t)len * sizeof *prev), *next = mallocCheck((size_t)len * sizeof *next);
    // every merge removes one symbol and pushes at most two entries
    MergeEntry *heap = mallocCheck((size_t)(3 * len) * sizeof *heap);
    int n_heap = 0;
    for (int i = 0; i < len; i++) {
        ids[i] = tok->byte_to_id[s[i]];
        prev[i] = i - 1;
        next[i] = i + 1 < len ? i + 1 : -1;
    }
    for (int i = 0; i + 1 < len; i++) {
        int r = merge_rank(index, ids[i], ids[i + 1]);
        if (r != INT_MAX) merge_push(heap, &n_heap, (MergeEntry){r, i, ids[i], ids[i + 1]});
    }
    while (n_heap > 0) {
        MergeEntry e = merge_pop(heap, &n_heap);
        int p = e.pos, q = next[p];
        // a removed symbol has prev = -2; ids only grow, so equal ids mean
        // the pair is still there
        if (prev[p] == -2 || q < 0 || ids[p] != e.left || ids[q] != e.right) continue;
        ids[p] = 256 + e.rank;
        next[p] = next[q];
        if (next[q] >= 0) prev[next[q]] = p;
        prev[q] = -2;
        if (prev[p] >= 0) {
            int r = merge_rank(index, ids[prev[p]], ids[p]);
            if (r != INT_MAX) merge_push(heap, &n_heap, (MergeEntry){r, prev[p], ids[prev[p]], ids[p]});
        }
        if (next[p] >= 0) {
            int r = merge_rank(index, ids[p], ids[next[p]]);
            if (r != INT_MAX) merge_push(heap, &n_heap, (MergeEntry){r, p, ids[p], ids[next[p]]});
        }
    }
    int k = 0;
    for (int i = 0; i >= 0 && len > 0; i = next[i]) out[k++] = ids[i];
    free(ids);
    free(prev);
    free(next);
    free(heap);
    return k;
}

// Appends the ids of one pre-token to out (as far as max_out allows).
static int gpt2_piece(const Tokenizer *tok, const uint8_t *s, size_t len, int *out, long max_out,
                       long *total) {
    if (len == 0) return 0;
    int small[CHUNK_MAX];
    int *ids = small, m;
    if (len <= CHUNK_MAX) {
        m = bpe_encode_chunk(tok, s, (int)len, small);
    } else {
        if (len > INT_MAX / 3)
            return rlhf_fail("gpt2 tokenizer: a pre-token of %zu bytes (no space or punctuation "
                             "in it) is too long; hint: split the text", len);
        ids = mallocCheck(len * sizeof *ids);
        m = bpe_encode_long(tok, s, (int)len, ids);
    }
    for (int k = 0; k < m; k++, (*total)++)
        if (*total < max_out) out[*total] = ids[k];
    if (ids != small) free(ids);
    return 0;
}

static long encode_gpt2(const Tokenizer *tok, const uint8_t *text, size_t n, int *out, long max_out) {
    ASSERT(tok->pretok && tok->merge_index);
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(tok->pretok, NULL);
    if (!md) die("out of memory creating the gpt2 pre-tokenizer's match data");
    long total = 0;
    size_t at = 0;
    while (at < n) {
        int rc = pcre2_match(tok->pretok, text, n, at, 0, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            pcre2_match_data_free(md);
            return rlhf_fail("gpt2 pre-tokenizer failed at byte %zu: %s", at, (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        ASSERT(ov[0] >= at && ov[1] > ov[0] && ov[1] <= n);
        // the bytes before the match are not UTF-8: a pre-token of their own
        if (gpt2_piece(tok, text + at, ov[0] - at, out, max_out, &total) ||
            gpt2_piece(tok, text + ov[0], ov[1] - ov[0], out, max_out, &total)) {
            pcre2_match_data_free(md);
            return -1;
        }
        at = ov[1];
    }
    pcre2_match_data_free(md);
    if (gpt2_piece(tok, text + at, n - at, out, max_out, &total)) return -1;
    return total;
}

static long encode_char(const Tokenizer *tok, const uint8_t *text, size_t n, int *out, long max_out) {
    for (size_t i = 0; i < n; i++) {
        int id = tok->byte_to_id[text[i]];
        if (id < 0) {
            uint8_t c = text[i];
            if (c >= 0x20 && c < 0x7f)
                return rlhf_fail("char tokenizer: byte '%c' (0x%02X) at offset %zu is not in the "
                                 "vocabulary; hint: use tokenizer = bpe, or add text holding it to the corpus",
                                 c, c, i);
            return rlhf_fail("char tokenizer: byte 0x%02X at offset %zu is not in the vocabulary; "
                             "hint: use tokenizer = bpe, or add text holding it to the corpus", c, i);
        }
        if ((long)i < max_out) out[i] = id;
    }
    return (long)n;
}

long tokenizer_encode(const Tokenizer *tok, const uint8_t *text, size_t n, int *out, long max_out) {
    if (tok->type == TOKENIZER_CHAR) return encode_char(tok, text, n, out, max_out);
    if (tok->type == TOKENIZER_GPT2) return encode_gpt2(tok, text, n, out, max_out);
    ASSERT(tok->type == TOKENIZER_BPE && tok->merge_index);
    long total = 0;
    int ids[CHUNK_MAX];
    for (size_t i = 0, j; i < n; i = j) {
        j = chunk_end(text, n, i);
        int m = bpe_encode_chunk(tok, text + i, (int)(j - i), ids);
        for (int k = 0; k < m; k++, total++)
            if (total < max_out) out[total] = ids[k];
    }
    return total;
}

const uint8_t *tokenizer_token_bytes(const Tokenizer *tok, int id, int *len) {
    ASSERT(id >= 0 && id < tok->vocab_size);
    *len = tok->vocab_offsets[id + 1] - tok->vocab_offsets[id];
    return tok->vocab_bytes + tok->vocab_offsets[id];
}

static int is_special(const Tokenizer *tok, int id) {
    return id == tok->eot || id == tok->user || id == tok->assistant || id == tok->pad;
}

char *tokenizer_decode(const Tokenizer *tok, const int *ids, long n, int with_specials) {
    size_t total = 0;
    int len;
    for (long i = 0; i < n; i++) {
        if (!with_specials && is_special(tok, ids[i])) continue;
        tokenizer_token_bytes(tok, ids[i], &len);
        total += (size_t)len;
    }
    char *s = mallocCheck(total + 1), *p = s;
    for (long i = 0; i < n; i++) {
        if (!with_specials && is_special(tok, ids[i])) continue;
        const uint8_t *b = tokenizer_token_bytes(tok, ids[i], &len);
        memcpy(p, b, (size_t)len);
        p += len;
    }
    *p = '\0';
    return s;
}

// ---------------------------------------------------------------------------
// Streaming UTF-8 output.

// Bytes a character starting with lead byte c has (0: c cannot start one),
// and the range its second byte must lie in (RFC 3629: no overlongs, no
// surrogates, nothing above U+10FFFF).
static int utf8_lead(uint8_t c, uint8_t *lo, uint8_t *hi) {
    *lo = 0x80;
    *hi = 0xBF;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return 2;
    if (c >= 0xE0 && c <= 0xEF) {
        if (c == 0xE0) *lo = 0xA0;
        if (c == 0xED) *hi = 0x9F;
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (c == 0xF0) *lo = 0x90;
        if (c == 0xF4) *hi = 0x8F;
        return 4;
    }
    return 0;
}

static int put_replacement(uint8_t *out) {
    out[0] = 0xEF;
    out[1] = 0xBF;
    out[2] = 0xBD;
    return 3;
}

// Emits the complete characters of p[0..n), holding back an incomplete valid
// tail (at most 3 bytes) in s.
static int utf8_emit(Utf8Stream *s, const uint8_t *p, int n, uint8_t *out) {
    int k = 0, i = 0;
    while (i < n) {
        uint8_t lo, hi;
        int len = utf8_lead(p[i], &lo, &hi), ok = len > 0, j = 1;
        for (; ok && j < len && i + j < n; j++)
            ok = j == 1 ? p[i + 1] >= lo && p[i + 1] <= hi : (p[i + j] & 0xC0) == 0x80;
        if (!ok) {  // invalid lead, or a byte that breaks the sequence
            k += put_replacement(out + k);
            i++;
        } else if (i + len > n) {  // valid so far, the rest comes later
            s->n_held = n - i;
            memcpy(s->held, p + i, (size_t)s->n_held);
            return k;
        } else {
            memcpy(out + k, p + i, (size_t)len);
            k += len;
            i += len;
        }
    }
    return k;
}

int utf8_stream_push(Utf8Stream *s, const uint8_t *in, int n, uint8_t *out) {
    ASSERT(s->n_held >= 0 && s->n_held < 4 && n >= 0);
    uint8_t local[256];
    int total = s->n_held + n;
    uint8_t *buf = total <= (int)sizeof local ? local : mallocCheck((size_t)total);
    memcpy(buf, s->held, (size_t)s->n_held);
    if (n) memcpy(buf + s->n_held, in, (size_t)n);
    s->n_held = 0;
    int k = utf8_emit(s, buf, total, out);
    if (buf != local) free(buf);
    return k;
}

int utf8_stream_finish(Utf8Stream *s, uint8_t *out) {
    int k = s->n_held ? put_replacement(out) : 0;
    s->n_held = 0;
    return k;
}

// FNV-1a 64 over the stored fields, each int as 4 little-endian bytes, so the
// hash is the same on every machine.
static uint64_t fnv_bytes(uint64_t h, const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

static uint64_t fnv_int(uint64_t h, int x) {
    uint32_t u = (uint32_t)x;
    const uint8_t b[4] = {(uint8_t)u, (uint8_t)(u >> 8), (uint8_t)(u >> 16), (uint8_t)(u >> 24)};
    return fnv_bytes(h, b, 4);
}

uint64_t tokenizer_hash(const Tokenizer *tok) {
    uint64_t h = 0xcbf29ce484222325ULL;
    h = fnv_int(h, tok->type);
    h = fnv_int(h, tok->vocab_size);
    for (int i = 0; i <= tok->vocab_size; i++) h = fnv_int(h, tok->vocab_offsets[i]);
    h = fnv_bytes(h, tok->vocab_bytes, (size_t)tok->vocab_offsets[tok->vocab_size]);
    h = fnv_int(h, tok->n_merges);
    for (int i = 0; i < 2 * tok->n_merges; i++) h = fnv_int(h, tok->merges[i]);
    h = fnv_int(h, tok->eot);
    h = fnv_int(h, tok->user);
    h = fnv_int(h, tok->assistant);
    h = fnv_int(h, tok->pad);
    return h;
}

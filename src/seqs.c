// Ragged token sequences and padded batches; see seqs.h.
#include "seqs.h"

#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "common.h"
#include "rng.h"

void seqs_init(SeqSet *s) {
    memset(s, 0, sizeof *s);
    s->off_cap = 1024;
    s->off = mallocCheck((size_t)s->off_cap * sizeof(long));
    s->off[0] = 0;
}

void seqs_free(SeqSet *s) {
    free(s->off);
    free(s->ids);
    free(s->loss);
    memset(s, 0, sizeof *s);
}

void seqs_add(SeqSet *s, const int *ids, const unsigned char *loss, long len) {
    long end = s->off[s->n];
    if (end + len > s->cap) {
        s->cap = (end + len) * 2 + 1024;
        s->ids = reallocCheck(s->ids, (size_t)s->cap * sizeof(int));
        s->loss = reallocCheck(s->loss, (size_t)s->cap);
    }
    memcpy(s->ids + end, ids, (size_t)len * sizeof(int));
    if (loss) memcpy(s->loss + end, loss, (size_t)len);
    else memset(s->loss + end, 0, (size_t)len);
    if (s->n + 2 > s->off_cap)
        s->off = reallocCheck(s->off, (size_t)(s->off_cap *= 2) * sizeof(long));
    s->off[++s->n] = end + len;
}

int seqs_batch(const SeqSet *s, const long *rows, int B, int pad, int *inputs, int *targets,
               unsigned char *lossmask) {
    long longest = 2;
    for (int b = 0; b < B; b++) longest = seqs_len(s, rows[b]) > longest ? seqs_len(s, rows[b]) : longest;
    int T = (int)longest - 1;
    for (int b = 0; b < B; b++) {
        const int *ids = s->ids + s->off[rows[b]];
        const unsigned char *loss = s->loss + s->off[rows[b]];
        long L = seqs_len(s, rows[b]);
        pad_row(inputs + b * T, T, ids, L, pad);
        for (int t = 0; t < T; t++) {
            int real = t + 1 < L;  // target t exists
            targets[b * T + t] = real ? ids[t + 1] : -1;
            lossmask[b * T + t] = real ? loss[t + 1] : 0;
        }
    }
    return T;
}

void pad_row(int *dst, int T, const int *src, long len, int pad) {
    for (int t = 0; t < T; t++) dst[t] = t < len ? src[t] : pad;
}

int seqs_pad_rows(const SeqSet *s, const long *rows, int n, int pad, int *x, int *last) {
    long longest = 1;
    for (int r = 0; r < n; r++) longest = seqs_len(s, rows[r]) > longest ? seqs_len(s, rows[r]) : longest;
    const int T = (int)longest;
    for (int r = 0; r < n; r++) {
        const long L = seqs_len(s, rows[r]);
        pad_row(x + (size_t)r * T, T, s->ids + s->off[rows[r]], L, pad);
        last[r] = (int)L - 1;
    }
    return T;
}

int seqs_from_sft(const SftSet *set, const Tokenizer *tok, int T, int truncate, SeqSet *seqs,
                  long *skipped, long *truncated, long *trimmed) {
    int *ids = mallocCheck(((size_t)T + 1) * sizeof(int));
    unsigned char *loss = mallocCheck((size_t)T + 1);
    *skipped = *truncated = 0;
    if (trimmed) *trimmed = 0;
    seqs_init(seqs);
    int rc = 0;
    for (long i = 0; i < set->n; i++) {
        SftExample ex = set->ex[i];  // a view: trimming moves its first turn
        long len = chat_encode_example(tok, &ex, ids, loss, T + 1);
        if (len > T + 1 && ex.n_turns > 2) {
            // a conversation loses its oldest exchanges, whole, until the
            // rest fits: the model learns to answer from a recent history
            while (len > T + 1 && ex.n_turns > 2) {
                ex.turns += 2;
                ex.n_turns -= 2;
                len = chat_encode_example(tok, &ex, ids, loss, T + 1);
            }
            if (trimmed) (*trimmed)++;
        }
        if (len < 0) {
            rc = rlhf_fail("%s:%d: %s", set->path, set->ex[i].line, rlhf_errmsg);
            break;
        }
        if (len > T + 1) {
            if (!truncate) {
                (*skipped)++;
                continue;
            }
            len = T + 1;
            (*truncated)++;
        }
        int any = 0;
        for (long t = 1; t < len; t++) any |= loss[t];
        if (!any) {  // truncation cut every response token
            (*skipped)++;
            continue;
        }
        seqs_add(seqs, ids, loss, len);
    }
    free(ids);
    free(loss);
    if (rc == 0 && seqs->n == 0)
        rc = rlhf_fail("%s: no example fits in block_size=%d tokens; hint: raise "
                       "model.block_size or use sft.overlong=truncate", set->path, T);
    return rc;
}

int pref_encode(const PrefSet *set, long i, const Tokenizer *tok, int T, int *chosen, long *a,
                int *rejected, long *b, ChatPrompt *kept) {
    const PrefExample *e = &set->ex[i];
    ChatPrompt p = {e->history, e->n_history, e->prompt};
    for (;;) {
        *a = chat_encode_context_pair(tok, &p, e->chosen, 0, chosen, T + 1);
        *b = chat_encode_context_pair(tok, &p, e->rejected, e->rejected_no_eot, rejected, T + 1);
        if (*a < 0 || *b < 0) return rlhf_fail("%s:%d: %s", set->path, e->line, rlhf_errmsg);
        if ((*a <= T && *b <= T) || p.n_history == 0) break;
        p.history += 2;  // the oldest exchange goes, whole
        p.n_history -= 2;
    }
    if (kept) *kept = p;
    return *a <= T && *b <= T;  // the score must be read inside the context
}

int seqs_from_prefs(const PrefSet *set, const Tokenizer *tok, int T, SeqSet *seqs,
                    long *skipped) {
    int *ids = mallocCheck(((size_t)T + 1) * sizeof(int));
    int *ids2 = mallocCheck(((size_t)T + 1) * sizeof(int));
    int *scratch = mallocCheck(((size_t)T + 1) * sizeof(int));
    unsigned char *loss = mallocCheck((size_t)T + 1);
    seqs_init(seqs);
    *skipped = 0;
    int rc = 0;
    for (long i = 0; i < set->n; i++) {
        long a, b;
        ChatPrompt p;
        int fits = pref_encode(set, i, tok, T, ids, &a, ids2, &b, &p);
        if (fits < 0) {
            rc = -1;
            break;
        }
        if (!fits) {
            (*skipped)++;
            continue;
        }
        // both sides start with the same context (history and prompt), which
        // carries no loss
        long pl = chat_encode_context(tok, &p, scratch, T + 1);
        if (pl < 0) {
            rc = rlhf_fail("%s:%d: %s", set->path, set->ex[i].line, rlhf_errmsg);
            break;
        }
        for (long t = 0; t <= T; t++) loss[t] = t >= pl;
        seqs_add(seqs, ids, loss, a);
        seqs_add(seqs, ids2, loss, b);
    }
    free(ids);
    free(ids2);
    free(scratch);
    free(loss);
    if (rc == 0 && seqs->n == 0)
        rc = rlhf_fail("%s: no preference pair fits in block_size=%d tokens; hint: raise "
                       "model.block_size", set->path, T);
    return rc;
}

void pref_groups_free(PrefGroups *g) {
    free(g->row_off);
    free(g->pair_off);
    free(g->chosen);
    free(g->rejected);
    memset(g, 0, sizeof *g);
}

// Order of the lines of a preference file by (group, line): a plain pair is
// its own group, keyed by its index.
typedef struct {
    long key, index;
} GroupKey;

static int group_key_cmp(const void *a, const void *b) {
    const GroupKey *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

// The sequence equal to ids (len) among the current group's rows
// [first, seqs->n), added if new: a response is scored once per group.
static long group_row(SeqSet *seqs, long first, const int *ids, long len) {
    for (long r = first; r < seqs->n; r++)
        if (seqs_len(seqs, r) == len &&
            memcmp(seqs->ids + seqs->off[r], ids, (size_t)len * sizeof(int)) == 0)
            return r;
    seqs_add(seqs, ids, NULL, len);
    return seqs->n - 1;
}

// Whether two preference lines ask the same thing: last turn and history.
static int same_prompt(const PrefExample *a, const PrefExample *b) {
    if (strcmp(a->prompt, b->prompt) != 0 || a->n_history != b->n_history) return 0;
    for (int i = 0; i < a->n_history; i++)
        if (a->history[i].role != b->history[i].role ||
            strcmp(a->history[i].text, b->history[i].text) != 0)
            return 0;
    return 1;
}

int seqs_from_groups(const PrefSet *set, const Tokenizer *tok, int T, SeqSet *seqs,
                     PrefGroups *g, long *skipped) {
    memset(g, 0, sizeof *g);
    seqs_init(seqs);
    *skipped = 0;
    const long n = set->n;
    GroupKey *keys = mallocCheck((size_t)n * sizeof(GroupKey));
    for (long i = 0; i < n; i++) keys[i] = (GroupKey){set->ex[i].group >= 0 ? set->ex[i].group : i, i};
    qsort(keys, (size_t)n, sizeof(GroupKey), group_key_cmp);
    g->row_off = mallocCheck(((size_t)n + 1) * sizeof(long));
    g->pair_off = mallocCheck(((size_t)n + 1) * sizeof(long));
    g->chosen = mallocCheck((size_t)n * sizeof(long));
    g->rejected = mallocCheck((size_t)n * sizeof(long));
    g->row_off[0] = g->pair_off[0] = 0;
    int *a_ids = mallocCheck(((size_t)T + 1) * sizeof(int));
    int *b_ids = mallocCheck(((size_t)T + 1) * sizeof(int));
    int rc = 0;
    long pairs = 0;
    for (long k0 = 0, k1; k0 < n && rc == 0; k0 = k1) {
        for (k1 = k0 + 1; k1 < n && keys[k1].key == keys[k0].key; k1++) {}
        const long first = seqs->n;
        const PrefExample *head = &set->ex[keys[k0].index];
        for (long k = k0; k < k1; k++) {
            const long i = keys[k].index;
            const PrefExample *e = &set->ex[i];
            if (!same_prompt(e, head)) {
                rc = rlhf_fail("%s:%d: group %ld has another prompt on line %d; hint: a group "
                               "holds the comparisons of one prompt's responses", set->path,
                               e->line, e->group, head->line);
                break;
            }
            long a, b;
            const int fits = pref_encode(set, i, tok, T, a_ids, &a, b_ids, &b, NULL);
            if (fits < 0) {
                rc = -1;
                break;
            }
            if (!fits) {
                (*skipped)++;
                continue;
            }
            const long c = group_row(seqs, first, a_ids, a);
            const long r = group_row(seqs, first, b_ids, b);
            if (c == r) {
                rc = rlhf_fail("%s:%d: chosen and rejected are the same response; hint: a "
                               "comparison needs two different responses", set->path, e->line);
                break;
            }
            if (seqs->n - first > PREF_GROUP_MAX_ROWS) {
                rc = rlhf_fail("%s:%d: group %ld holds more than %d different responses; hint: "
                               "a group is one prompt's ranked answers ('rlhf rank' writes at "
                               "most 64), so give other prompts other group ids", set->path,
                               e->line, e->group, PREF_GROUP_MAX_ROWS);
                break;
            }
            g->chosen[pairs] = c;
            g->rejected[pairs] = r;
            pairs++;
        }
        if (rc == 0 && pairs > g->pair_off[g->n]) {  // a group with no pair that fits is dropped
            g->n++;
            g->row_off[g->n] = seqs->n;
            g->pair_off[g->n] = pairs;
            if (seqs->n - first > g->max_rows) g->max_rows = (int)(seqs->n - first);
            if (pairs - g->pair_off[g->n - 1] > g->max_pairs)
                g->max_pairs = (int)(pairs - g->pair_off[g->n - 1]);
        }
    }
    free(keys);
    free(a_ids);
    free(b_ids);
    if (rc == 0 && g->n == 0)
        rc = rlhf_fail("%s: no preference pair fits in block_size=%d tokens; hint: raise "
                       "model.block_size", set->path, T);
    if (rc != 0) {
        seqs_free(seqs);
        pref_groups_free(g);
    }
    return rc;
}

void epoch_order_init(EpochOrder *o, long n, uint64_t seed) {
    ASSERT(n > 0);
    o->n = n;
    o->seed = seed;
    o->perm = mallocCheck((size_t)n * sizeof(int));
    o->epoch = -1;
}

void epoch_order_free(EpochOrder *o) {
    free(o->perm);
    memset(o, 0, sizeof *o);
}

long epoch_order_at(EpochOrder *o, int64_t k) {
    int64_t epoch = k / o->n;
    if (o->epoch != epoch) {
        for (long i = 0; i < o->n; i++) o->perm[i] = (int)i;
        Rng rng;
        rng_init(&rng, o->seed ^ (0x9e3779b97f4a7c15ULL * (uint64_t)(epoch + 1)));
        rng_shuffle(&rng, o->perm, (int)o->n);
        o->epoch = epoch;
    }
    return o->perm[k % o->n];
}

void batch_stream_init(BatchStream *bs, long n, const int *lengths, int B, int G, uint64_t seed) {
    ASSERT(B >= 1 && G >= 1);
    epoch_order_init(&bs->order, n, seed);
    bs->lengths = lengths;
    bs->B = B;
    bs->G = G;
    bs->seed = seed;
    bs->items = mallocCheck((size_t)G * B * sizeof(long));
    bs->keys = mallocCheck((size_t)G * B * sizeof(int64_t));
    bs->pool = mallocCheck((size_t)G * B * sizeof(long));
    bs->perm = mallocCheck((size_t)G * sizeof(int));
    bs->group = -1;
}

void batch_stream_free(BatchStream *bs) {
    epoch_order_free(&bs->order);
    free(bs->items);
    free(bs->keys);
    free(bs->pool);
    free(bs->perm);
    memset(bs, 0, sizeof *bs);
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

void batch_stream_get(BatchStream *bs, int64_t k, long *rows) {
    const int64_t group = k / bs->G, per_group = (int64_t)bs->G * bs->B;
    if (bs->group != group) {
        // key = length * per_group + position in the stream: distinct keys,
        // so the sorted order is unique whatever qsort does with ties
        for (int64_t i = 0; i < per_group; i++) {
            bs->pool[i] = epoch_order_at(&bs->order, group * per_group + i);
            bs->keys[i] = (int64_t)bs->lengths[bs->pool[i]] * per_group + i;
        }
        qsort(bs->keys, (size_t)per_group, sizeof(int64_t), cmp_i64);
        for (int64_t i = 0; i < per_group; i++) bs->items[i] = bs->pool[bs->keys[i] % per_group];
        for (int g = 0; g < bs->G; g++) bs->perm[g] = g;
        Rng rng;
        rng_init(&rng, bs->seed ^ (0xd1b54a32d192ed03ULL * (uint64_t)(group + 1)));
        rng_shuffle(&rng, bs->perm, bs->G);
        bs->group = group;
    }
    memcpy(rows, bs->items + (size_t)bs->perm[k % bs->G] * bs->B, (size_t)bs->B * sizeof(long));
}

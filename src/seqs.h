// Variable-length token sequences (tokenized SFT examples, preference
// pairs) and their right-padded batches. A sequence of L tokens trains on
// L-1 positions: inputs ids[0..L-1), targets ids[1..L). Padding positions
// get the pad token as input and target -1 (no loss).
#ifndef RLHF_SEQS_H
#define RLHF_SEQS_H

#include <stddef.h>
#include <stdint.h>

#include "chat.h"
#include "jsonl.h"
#include "tokenizer.h"

typedef struct {
    long n;               // sequences
    long *off;            // n + 1 offsets into ids / loss
    int *ids;
    unsigned char *loss;  // 1: this token is predicted with loss
    long cap, off_cap;  // allocated tokens, offsets
} SeqSet;

void seqs_init(SeqSet *s);
void seqs_free(SeqSet *s);
// Appends a sequence (copies it); loss may be NULL (no token carries loss).
void seqs_add(SeqSet *s, const int *ids, const unsigned char *loss, long len);
static inline long seqs_len(const SeqSet *s, long i) { return s->off[i + 1] - s->off[i]; }
// Tokens of sequence i predicted with loss (a response and its end-of-text).
static inline long seqs_loss_tokens(const SeqSet *s, long i) {
    long c = 0;
    for (long k = s->off[i]; k < s->off[i + 1]; k++) c += s->loss[k] != 0;
    return c;
}

// Builds a (B,T) batch from sequences rows[0..B), T = longest length - 1.
// inputs and targets get (B,T) ids, lossmask (B,T) the loss flag of each
// target (0 on padding). Buffers hold at least B*max_T entries. Returns T.
int seqs_batch(const SeqSet *s, const long *rows, int B, int pad, int *inputs, int *targets,
               unsigned char *lossmask);

// Right-pads one row: dst[t] = src[t] for t < len, pad for len <= t < T.
void pad_row(int *dst, int T, const int *src, long len, int pad);

// Right-pads sequences rows[0..n) into x (n,T) with T the longest length;
// last[r] = index of row r's last token (where a reward head reads).
// Returns T.
int seqs_pad_rows(const SeqSet *s, const long *rows, int n, int pad, int *x, int *last);

// SFT examples through the chat template, loss on every response token
// and each response's closing end-of-text (never on user text or the
// <|user|> / <|assistant|> specials). A conversation longer than T+1
// tokens first drops its oldest exchanges (user turn + reply), whole,
// until it fits or one exchange is left, counted in *trimmed (may be
// NULL); never a part of a turn. An example still longer than T+1 tokens
// is truncated to T+1 (truncate) or skipped, and counted; so is one whose
// truncation cut every response token. Returns -1 with "PATH:LINE:
// reason" when an example does not encode, or when no example fits.
int seqs_from_sft(const SftSet *set, const Tokenizer *tok, int T, int truncate, SeqSet *seqs,
                  long *skipped, long *truncated, long *trimmed);

// Encodes a preference pair (its chosen and rejected sides, each the
// context (history and prompt) then the response, at most T+1 ids each,
// lengths in *a and *b). A multi-turn prompt whose sides do not fit T
// tokens drops its oldest exchanges, whole, until they fit or no history
// is left; kept (may be NULL) receives the prompt as encoded. Returns 1
// when both fit a context of T tokens (so the reward is read inside it),
// 0 when one does not, -1 with "PATH:LINE: reason" when a side does not
// encode.
int pref_encode(const PrefSet *set, long i, const Tokenizer *tok, int T, int *chosen, long *a,
                int *rejected, long *b, ChatPrompt *kept);

// Preference pairs that fit T tokens as sequences 2i (chosen) and 2i+1
// (rejected); the others are counted in *skipped. Loss flags mark each
// side's response tokens and its end-of-text (none for a rejected_no_eot
// side), never the prompt: the tokens a response's log-probability sums
// over. -1 as pref_encode, or when no pair fits.
int seqs_from_prefs(const PrefSet *set, const Tokenizer *tok, int T, SeqSet *seqs,
                    long *skipped);

// Preference comparisons grouped by prompt, for the reward model: group
// g's responses are sequences row_off[g] .. row_off[g+1]) of a SeqSet, each
// distinct encoded response once, and its comparisons
// are pairs pair_off[g] .. pair_off[g+1]) of (chosen, rejected) sequence
// indices. Lines with the same "group" form one group (all pairs of a
// prompt train as one batch element); a plain pair is a group of its own.
typedef struct {
    long n;                   // groups
    long *row_off, *pair_off; // (n + 1)
    long *chosen, *rejected;  // (pairs)
    int max_rows, max_pairs;  // of one group
} PrefGroups;

// The most different responses one group may hold: a batch holds
// train.batch_size groups, so this bounds its rows.
#define PREF_GROUP_MAX_ROWS 256

// Groups the pairs of set that fit T tokens (pref_encode; the others are
// counted in *skipped, a group left without pairs is dropped), in order of
// group id (plain pairs: of line). The sequences carry no loss flags.
// Returns -1 with "PATH:LINE: reason" when a pair does not encode, a group
// mixes prompts or holds more than PREF_GROUP_MAX_ROWS responses, a pair
// compares a response with itself, or no pair fits.
int seqs_from_groups(const PrefSet *set, const Tokenizer *tok, int T, SeqSet *seqs,
                     PrefGroups *g, long *skipped);
void pref_groups_free(PrefGroups *g);

// Epoch order over n items: stream position k maps to item perm_e[k % n],
// with a fresh permutation for each epoch e = k / n seeded by (seed, e). The
// position k is all the state a resumed run needs.
typedef struct {
    long n;
    uint64_t seed;
    int *perm;      // owned
    int64_t epoch;  // epoch of perm, -1 before the first use
} EpochOrder;

void epoch_order_init(EpochOrder *o, long n, uint64_t seed);
void epoch_order_free(EpochOrder *o);
long epoch_order_at(EpochOrder *o, int64_t k);

// Batches of items of similar length, so that right-padding wastes little:
// the epoch-order stream of items is cut into groups of G batches; each
// group's G*B items are sorted by length (ties by stream position) and cut
// into G batches, which are served in a seeded random order. On the task
// data this takes the share of real tokens from ~60% (random batches) to
// ~90%. Batch k depends on k alone, so k is all the state a resume needs.
typedef struct {
    EpochOrder order;
    const int *lengths;  // per item, not owned
    int B, G;
    uint64_t seed;
    long *items;         // (G*B) the current group, sorted by length
    int64_t *keys;       // (G*B) sort keys (scratch)
    long *pool;          // (G*B) the group in stream order (scratch)
    int *perm;           // (G) serving order of its batches
    int64_t group;       // group held in items, -1 before the first
} BatchStream;

void batch_stream_init(BatchStream *bs, long n, const int *lengths, int B, int G, uint64_t seed);
void batch_stream_free(BatchStream *bs);
// Writes the B items of batch k into rows.
void batch_stream_get(BatchStream *bs, int64_t k, long *rows);

#endif

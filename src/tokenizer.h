// Tokenizers: char-level (one token per byte value: printable ASCII, tab,
// newline and every other byte seen in the corpus) and
// byte-level BPE trained on the corpus. Both reserve the four special tokens
// of the chat template; plain text never encodes to a special token, so a
// user typing "<|endoftext|>" gets those characters, not the token.
// The tokenizer is plain data here; checkpoint.c stores and restores it.
#ifndef RLHF_TOKENIZER_H
#define RLHF_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

enum { TOKENIZER_CHAR = 0, TOKENIZER_BPE = 1 };

typedef struct {
    int type;           // TOKENIZER_CHAR | TOKENIZER_BPE
    int vocab_size;     // every id in [0, vocab_size), specials included
    // id -> bytes: token i is vocab_bytes[vocab_offsets[i] .. vocab_offsets[i+1])
    // (special tokens hold their printable names, e.g. "<|user|>")
    uint8_t *vocab_bytes;
    int *vocab_offsets;  // vocab_size + 1
    // BPE: merges in rank order; merge r joins ids merges[2r], merges[2r+1]
    // into id 256 + r. Empty for char.
    int n_merges;
    int *merges;
    // special token ids (distinct; pad != eot)
    int eot, user, assistant, pad;
    // derived at build/load time, not stored
    int byte_to_id[256];  // char: id of each byte, -1 if not in the vocabulary
    void *merge_index;    // BPE: (left,right) -> rank lookup
} Tokenizer;

// Trains a tokenizer on `text` (n bytes). type is TOKENIZER_CHAR or
// TOKENIZER_BPE; vocab_size is the BPE target (specials included), ignored
// for char. Deterministic: the same text gives the same tokenizer.
// Returns -1 with a reason (e.g. vocabulary larger than the corpus allows).
int tokenizer_train(Tokenizer *tok, int type, const uint8_t *text, size_t n, int vocab_size);

// Builds the derived lookups after the stored fields were filled (by
// checkpoint loading). Returns -1 if the fields are inconsistent.
int tokenizer_finish(Tokenizer *tok);

void tokenizer_free(Tokenizer *tok);

// Encodes n bytes of plain text. Writes at most max_out ids to out and
// returns how many the full encoding has (may exceed max_out), or -1 with a
// reason (char tokenizer: a byte not in the vocabulary).
long tokenizer_encode(const Tokenizer *tok, const uint8_t *text, size_t n, int *out,
                      long max_out);

// Bytes of one token (special tokens give their names). *len receives the
// length; the pointer is into the tokenizer.
const uint8_t *tokenizer_token_bytes(const Tokenizer *tok, int id, int *len);

// Decodes ids into a NUL-terminated malloc'd buffer (caller frees); special
// tokens are written by name when with_specials, otherwise dropped.
char *tokenizer_decode(const Tokenizer *tok, const int *ids, long n, int with_specials);

// A hash of the stored fields, to tie token shards to their tokenizer.
uint64_t tokenizer_hash(const Tokenizer *tok);

#endif

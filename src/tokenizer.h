// Tokenizers: char-level (one token per byte value: printable ASCII, tab,
// newline and every other byte seen in the corpus),
// byte-level BPE trained on the corpus, and GPT-2's own byte-level BPE read
// from its two files (encoder.json, vocab.bpe). All reserve the four special tokens
// of the chat template; plain text never encodes to a special token, so a
// user typing "<|endoftext|>" gets those characters, not the token.
// The tokenizer is plain data here; checkpoint.c stores and restores it.
#ifndef RLHF_TOKENIZER_H
#define RLHF_TOKENIZER_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

enum { TOKENIZER_CHAR = 0, TOKENIZER_BPE = 1, TOKENIZER_GPT2 = 2 };  // checkpoint /tokenizer type "gpt2"


typedef struct {
    int type;           // TOKENIZER_CHAR | TOKENIZER_BPE | TOKENIZER_GPT2
    int vocab_size;     // every id in [0, vocab_size), specials included
    // id -> bytes: token i is vocab_bytes[vocab_offsets[i] .. vocab_offsets[i+1])
    // (special tokens hold their printable names, e.g. "<|user|>")
    uint8_t *vocab_bytes;
    int *vocab_offsets;  // vocab_size + 1
    // BPE and GPT-2: merges in rank order; merge r joins ids merges[2r],
    // merges[2r+1] into id 256 + r. Empty for char. BPE's ids 0..255 are the
    // bytes 0..255; GPT-2's are the 256 single bytes in GPT-2's own order.
    int n_merges;
    int *merges;
    // special token ids (distinct; pad != eot)
    int eot, user, assistant, pad;
    // derived at build/load time, not stored
    int byte_to_id[256];  // id of each byte; char: -1 if not in the vocabulary
    void *merge_index;    // BPE, GPT-2: (left,right) -> rank lookup
    void *pretok;         // GPT-2: the compiled pre-tokenizer regex
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

// "char", "bpe" or "gpt2": the name of a type in configs and checkpoints.
const char *tokenizer_type_name(int type);

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

// --- GPT-2 ---------------------------------------------------------------------
// GPT-2's byte-level BPE from its two files: encoder.json (= Hugging Face
// vocab.json: token string -> id) and vocab.bpe (= merges.txt: "#version"
// line, then one merge "a b" per line in rank order). Ids 0..50256 are
// GPT-2's own (50256 = <|endoftext|> = tok->eot); the chat specials follow:
// <|user|> 50257, <|assistant|> 50258, <|pad|> 50259, so vocab_size = 50260.
// A vocab.json that already lists those three after <|endoftext|> (as
// tokenizer_gpt2_write writes it) loads to the same tokenizer.
// Text is cut by GPT-2's regex (PCRE2, UTF + UCP); bytes that are not valid
// UTF-8 match no part of it and form pre-tokens of their own, so every byte
// sequence encodes and decodes back exactly.
// Returns -1 with a one-line reason (via rlhf_fail) on a missing/malformed file.
int tokenizer_gpt2_load(Tokenizer *tok, const char *encoder_json, const char *vocab_bpe);
// Writes vocab.json (every id, specials included, token strings in GPT-2's
// byte-to-unicode form) and merges.txt (with the "#version: 0.2" first line)
// for a TOKENIZER_GPT2 tokenizer, together atomically (atomic_commit_set).
// With no_replace (names output_check passed without --force) a file that
// has appeared at either name meanwhile is kept and the call fails.
int tokenizer_gpt2_write(const Tokenizer *tok, const char *vocab_json, const char *merges_txt,
                         int no_replace);
// The same into two open streams (an export commits them with its other
// files); fails only for a tokenizer that is not gpt2.
int tokenizer_gpt2_put(const Tokenizer *tok, FILE *vocab_json, FILE *merges_txt);
// Where the deps step installs GPT-2's files (relative to the repo root;
// overridable by env RLHF_GPT2_DIR): data/gpt2/encoder.json, data/gpt2/vocab.bpe
#define GPT2_DIR_DEFAULT "data/gpt2"
#define GPT2_VOCAB_SIZE 50260  // GPT-2's 50257 + the three chat specials
const char *gpt2_dir(void);
// tokenizer_gpt2_load of gpt2_dir()'s encoder.json and vocab.bpe.
int tokenizer_gpt2_load_default(Tokenizer *tok);

// Streaming output of token bytes (sample, chat): a UTF-8 character that a
// token boundary cuts is held back until its last byte arrives, and bytes
// that cannot be UTF-8 come out as U+FFFD, so a terminal never shows half a
// character. push writes at most 3 * (n + 4) bytes to out and returns how
// many; finish writes (at most 3 bytes) a U+FFFD for a character left
// incomplete and resets the state.
typedef struct {
    uint8_t held[4];
    int n_held;
} Utf8Stream;
int utf8_stream_push(Utf8Stream *s, const uint8_t *in, int n, uint8_t *out);
int utf8_stream_finish(Utf8Stream *s, uint8_t *out);

// A hash of the stored fields, to tie token shards to their tokenizer.
uint64_t tokenizer_hash(const Tokenizer *tok);

#endif

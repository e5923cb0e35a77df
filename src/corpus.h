// Reads a text corpus (a UTF-8 file, a .gz file, or a directory of them)
// into documents: their bytes back to back plus the boundaries; splits the
// documents into train and validation sets and lays them out as token
// streams with an end-of-text token before each document, for `prepare`.
// Tokenizing itself is tokenizer.c's, writing shards checkpoint.c's.
#ifndef RLHF_CORPUS_H
#define RLHF_CORPUS_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

typedef struct {
    // document d is text[doc_start[d] .. doc_start[d + 1]); documents are
    // never empty and carry no separators or trailing newlines
    uint8_t *text;       // n_bytes bytes plus a NUL (not counted); owned
    size_t n_bytes;
    size_t *doc_start;   // n_docs + 1 offsets; owned
    size_t n_docs;
    int n_files_read;    // files that were read (even if they held no document)
    int n_files_skipped; // binary files, second paths to a file already read,
                         // and entries that are neither files nor directories
} Corpus;

// Reads path into c. A directory is walked in sorted name order, recursing
// into subdirectories and ignoring names that start with '.'; a file whose
// first 4 KiB (after decompression) hold a NUL byte is skipped as binary,
// as is any path to a file (or directory) already seen, e.g. a symlink.
// Gzip is recognised by its magic bytes, whatever the name.
//
// doc_split says where documents end, decided per file:
//   "percent"  lines that are exactly "%" (fortune files)
//   "blank"    one or more blank (whitespace-only) lines
//   "none"     each file is one document
//   "auto"     "percent" if the file has a line that is exactly "%", else "blank"
// Each document loses its leading blank lines and its trailing whitespace;
// documents left empty are dropped.
//
// Returns 0, or -1 with a one-line reason (missing path, unreadable file,
// corrupt gzip, a named file that is binary, no documents at all, unknown
// doc_split); on failure c is left empty. Free with corpus_free.
int corpus_read(Corpus *c, const char *path, const char *doc_split);

// Frees the buffers and zeroes c; safe on a zeroed or freed corpus.
void corpus_free(Corpus *c);

// Document d (d < n_docs): a pointer into c->text, its length in *len.
const uint8_t *corpus_doc(const Corpus *c, size_t d, size_t *len);

// Every document followed by a blank line ("\n\n"): the text a tokenizer
// is trained on. *len receives its length; the caller frees the result.
uint8_t *corpus_joined_text(const Corpus *c, size_t *len);

// Encodes documents docs[0..n), in that order, as
// <|endoftext|> d0 <|endoftext|> d1 ... into *ids (malloc'd, the caller
// frees), *n_ids tokens. Returns 0, or -1 with a reason naming the document
// that does not encode (*ids is then NULL).
int corpus_encode(const Corpus *c, const Tokenizer *tok, const int *docs, size_t n, int **ids,
                  size_t *n_ids);

// A train/validation split of n_docs documents, by index.
typedef struct {
    int *val;        // n_val indices, ascending; owned (train shares its allocation)
    int *train;      // n_train indices, ascending
    size_t n_val, n_train;
} CorpusSplit;

// Holds out round(val_fraction * n_docs) documents, at least one when
// val_fraction > 0, chosen by a shuffle seeded with seed (the same seed
// gives the same split); every document lands in exactly one set, and each
// set keeps corpus order. Returns 0, or -1 with a reason (and s empty)
// when either set would be empty. Free with corpus_split_free.
int corpus_split(CorpusSplit *s, size_t n_docs, double val_fraction, uint64_t seed);

// Frees the indices and zeroes s; safe on a zeroed or freed split.
void corpus_split_free(CorpusSplit *s);

#endif

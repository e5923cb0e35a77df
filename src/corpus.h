// Reads a text corpus (a UTF-8 file, a .gz file, or a directory of them)
// into documents: their bytes back to back plus the boundaries, so that
// `prepare` can put an end-of-text token between documents and split
// train/val by document. No tokenization here.
#ifndef RLHF_CORPUS_H
#define RLHF_CORPUS_H

#include <stddef.h>
#include <stdint.h>

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

#endif

// All HDF5 I/O of the project: checkpoints (layout in DESIGN.md), token
// shards and rollout dumps. This is the only file that includes hdf5.h.
//
// Writing is crash-safe: everything goes to PATH.tmp, which is closed,
// fsync'd, renamed over PATH, and the directory fsync'd. Every dataset is
// chunked with shuffle + deflate + fletcher32, so reading detects flipped
// bytes. Reading checks format, version and shapes and says what is wrong.
// Functions return 0 or -1 with a one-line reason in rlhf_errmsg.
#ifndef RLHF_CHECKPOINT_H
#define RLHF_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "data.h"
#include "gpt.h"
#include "metrics.h"
#include "optim.h"
#include "tokenizer.h"

#define CKPT_FORMAT "rlhf.c"
#define CKPT_FORMAT_VERSION 1

// Root attributes.
typedef struct {
    char stage[32];      // "init" | "pretrain" | "sft" | "reward" | "ppo" | "dpo"
    int64_t step;
    char *config_json;   // resolved config; owned
    char *parent;        // "PATH sha256:HEX" of the starting checkpoint, or ""; owned
    char created[40];    // ISO 8601 UTC, filled by ckpt_create if empty
    int sealed;          // read: the file's attributes carry a checksum, verified on open
                         // (0: written before checksums, read unverified)
} CkptMeta;

// The stages a checkpoint may name; ckpt_stage_known says whether it is one.
#define CKPT_STAGES "init, pretrain, sft, reward, ppo, dpo, import, tokenizer"
int ckpt_stage_known(const char *stage);

void ckpt_meta_free(CkptMeta *meta);

typedef struct Ckpt Ckpt;  // an open checkpoint, for writing or reading

// --- writing -------------------------------------------------------------
// Starts PATH.tmp (replacing a stale one) and writes the root attributes.
Ckpt *ckpt_create(const char *path, const CkptMeta *meta);
// Model parameters under PREFIX/model (nanoGPT names, [out, in] shapes) and
// PREFIX/heads, with /model attrs n_layer, n_head, n_embd, block_size,
// vocab_size. prefix is "" for the main model, e.g. "critic" for another.
int ckpt_write_model(Ckpt *ck, const char *prefix, const GPT *m);
// AdamW moments under PREFIX/optimizer/{m,v}/<name> with attrs t, lr,
// beta1, beta2, eps, weight_decay.
int ckpt_write_optimizer(Ckpt *ck, const char *prefix, const AdamW *opt, const GPT *m);
int ckpt_write_tokenizer(Ckpt *ck, const Tokenizer *tok);
// /metrics/<column> float64 datasets, one row per logged step; a column
// named "a/b" is dataset b of group /metrics/a (groups keep creation order).
int ckpt_write_metrics(Ckpt *ck, const Metrics *mt);
// Arbitrary state under /state (rng, data cursor, KL controller...):
// NAME may contain '/' for subgroups.
int ckpt_write_i64(Ckpt *ck, const char *name, const int64_t *data, size_t n);
int ckpt_write_u64(Ckpt *ck, const char *name, const uint64_t *data, size_t n);
int ckpt_write_f64(Ckpt *ck, const char *name, const double *data, size_t n);
// Seals every attribute with a root checksum (sha256), closes, fsyncs,
// renames PATH.tmp to PATH, fsyncs the directory, frees ck
// (also on failure, after removing PATH.tmp: never ckpt_abort after it).
int ckpt_commit(Ckpt *ck);
// Makes ckpt_commit refuse to replace a file at PATH: for an output a
// command line names, checked by output_check without --force, so that a
// file that appears there while the checkpoint is written is kept (the
// commit then fails and removes PATH.tmp).
void ckpt_no_replace(Ckpt *ck);
// Closes and removes PATH.tmp; frees ck. Safe on NULL.
void ckpt_abort(Ckpt *ck);

// --- reading -------------------------------------------------------------
// Opens and verifies the attributes' checksum (see checkpoint.c), format,
// format_version and the root attributes (a known stage, step >= 0).
Ckpt *ckpt_open(const char *path, CkptMeta *meta);
void ckpt_close(Ckpt *ck);
// Whether PREFIX/model exists (e.g. does this file hold a critic?).
int ckpt_has_model(Ckpt *ck, const char *prefix);
// Reads /model attrs; value_head is set when PREFIX/heads exists.
int ckpt_read_model_config(Ckpt *ck, const char *prefix, GPTConfig *c);
// Reads parameters into m, which must be built with a matching config.
// If the file has no value head but m does, the head is left as it is
// (zero after gpt_build) when allow_missing_head, an error otherwise.
int ckpt_read_model(Ckpt *ck, const char *prefix, GPT *m, int allow_missing_head);
// Whether PREFIX/optimizer exists (a file written without AdamW state has none).
int ckpt_has_optimizer(Ckpt *ck, const char *prefix);
// Reads moments into an AdamW built for m (opt->n == m->num_params).
int ckpt_read_optimizer(Ckpt *ck, const char *prefix, AdamW *opt, const GPT *m);
// Reads and finishes a tokenizer (tokenizer_finish).
int ckpt_read_tokenizer(Ckpt *ck, Tokenizer *tok);
// Reads all /metrics columns into mt (initialised by the caller), nested
// groups as "group/name" columns, in the order they were written.
int ckpt_read_metrics(Ckpt *ck, Metrics *mt);
// Reads exactly n values of /state/NAME; an absent or wrong-size dataset is
// an error naming it.
int ckpt_read_i64(Ckpt *ck, const char *name, int64_t *data, size_t n);
int ckpt_read_u64(Ckpt *ck, const char *name, uint64_t *data, size_t n);
int ckpt_read_f64(Ckpt *ck, const char *name, double *data, size_t n);
// A text under /state (stored as its bytes, uint8); read returns a malloc'd
// NUL-terminated copy (caller frees).
int ckpt_write_str(Ckpt *ck, const char *name, const char *text);
int ckpt_read_str(Ckpt *ck, const char *name, char **text);
// Whether /state/NAME exists.
int ckpt_has_state(Ckpt *ck, const char *name);
// A stage's data stream as /state/data: five uint64, the rng words then the
// cursor.
int ckpt_write_data_state(Ckpt *ck, const DataState *d);
int ckpt_read_data_state(Ckpt *ck, DataState *d);

// sha256 of a file as 64 hex chars + NUL into out[65]; -1 on read failure.
int file_sha256(const char *path, char out[65]);

// --- token shards ----------------------------------------------------------
// /tokens (uint16 when vocab_size < 65536, else uint32) with attrs
// vocab_size and tokenizer_hash; written atomically like checkpoints.
int shard_write(const char *path, const int *tokens, size_t n, int vocab_size,
                uint64_t tokenizer_hash);
// Reads a whole shard; *tokens is malloc'd (caller frees).
int shard_read(const char *path, int **tokens, size_t *n, int *vocab_size,
               uint64_t *tokenizer_hash);
// DIR/NAME, which must have been made with tok (else -1 with a hint to run
// prepare again).
int shard_read_for(const char *dir, const char *name, const Tokenizer *tok, int **tokens,
                   size_t *n);

// --- rollout dumps (PPO) ---------------------------------------------------
// Appends one batch as group /batch_NNNNNN with 2-D datasets (rows, cols)
// of the given names; int32 for tokens/masks, float32 otherwise; a column
// may have its own width. The file is created if missing; batches already
// there at `step` or later are dropped first (a resumed run rewrites them).
// Atomic: the file is copied to PATH.tmp, appended to there and renamed
// over PATH, so a failed append leaves the dump as it was.
typedef struct {
    const char *name;
    int is_int;           // 1: int32 data in `i`, 0: float32 data in `f`
    const int *i;
    const float *f;
    int cols;             // this dataset's columns; 0 = the call's cols
} DumpColumn;
int rollout_dump_append(const char *path, int64_t step, int rows, int cols,
                        const DumpColumn *columns, int ncolumns);

#endif

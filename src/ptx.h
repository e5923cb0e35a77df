// Pretraining windows mixed into fine-tuning, against the alignment tax:
// PPO-ptx (ppo.ptx_coef) and SFT's pretrain_mix. The windows come from the
// pretraining shard data.dir/train.h5, which must have been made with the
// policy's tokenizer; they are drawn uniformly at random (block_size
// tokens each) by a data stream of their own, whose RNG a checkpoint keeps
// at /state/ptx (five uint64, as /state/data), with the shard's path and
// sha256 at /state/ptx_shard, so that a resumed run draws the same windows
// from the same file. No loss code here: the windows go through
// lm_accumulate.
#ifndef RLHF_PTX_H
#define RLHF_PTX_H

#include "checkpoint.h"
#include "config.h"
#include "data.h"
#include "gpt.h"
#include "tokenizer.h"

typedef struct {
    int on;               // 0: no shard, no state, nothing drawn
    int *tokens;          // the shard (owned)
    size_t n;
    DataLoader dl;        // B windows of T tokens per draw
    int *x, *y;           // (B,T)
    float *w;             // (B,T)
    char *record;         // "PATH sha256:HEX" of the shard (owned)
} Ptx;

// Sets up the stream when `on` (B windows of T tokens per draw), else
// leaves p off. `key` names the setting that asked for it in messages
// ("ppo.ptx_coef"). A fresh run (resume NULL) reads data.dir/train.h5 and
// seeds the stream from train.seed; a resumed run reads the shard it
// recorded (the same path and sha256) and continues its stream. Refused
// with one line: a missing or unreadable shard, one made with another
// tokenizer than tok, one shorter than a window, a resume that turns the
// mix on or off midway (p is then left off, holding nothing).
int ptx_setup(Ptx *p, int on, const Config *cfg, const Tokenizer *tok, int B, int T,
              const char *key, Ckpt *resume);

// Draws the next B windows and adds the gradient of w_token times the sum
// of their next-token losses, i.e. with w_token = c / (B T) exactly c
// times the gradient of their mean loss. Returns that mean loss (the
// windows' plain mean, whatever w_token is).
double ptx_accumulate(Ptx *p, GPT *m, float w_token);

// The stream's state and the shard's record under /state (nothing when off).
int ptx_save(const Ptx *p, Ckpt *ck);
void ptx_free(Ptx *p);

#endif

// One trainer for every training stage. A stage describes *what* it
// optimises: the models it trains, its data, the gradients of one step, its
// held-out evaluation and the state of its own a checkpoint must carry. The
// trainer owns *how* a run goes: the command line and config, building or
// loading the trained models and their AdamW state, the step plan (learning
// rate schedule, gradient clipping, the update), the evaluation, logging and
// checkpoint cadence, metrics, and exact resume. A driver in train/ fills a
// Stage and calls trainer_main; it holds no math and no plumbing.
//
// Data-parallel under mpirun (dist.h): every rank runs the same loop on the
// same batches (same data cursor and RNG streams); the objectives compute
// each rank's share of every batch and return the whole batch's losses,
// trainer_update sums the gradients, so every rank applies the same
// update. Rank 0 alone locks and writes the run directory (checkpoints,
// metrics.csv) and prints; every rank reads the same checkpoint on resume.
#ifndef RLHF_TRAINER_H
#define RLHF_TRAINER_H

#include <stdint.h>

#include "checkpoint.h"
#include "data.h"
#include "gpt.h"
#include "optim.h"
#include "run.h"
#include "tokenizer.h"

// A model the stage trains, with its optimizer. The first is "the model"
// (checkpoint groups /model, /optimizer); others live under their prefix
// (a PPO critic under /critic).
typedef struct {
    GPT model;
    AdamW opt;
    const char *prefix;  // "" for the first model, else the checkpoint group
    float peak_lr;       // its own peak learning rate; 0 = optim.lr's schedule
} TrainedModel;

#define TRAINER_MAX_MODELS 2

typedef struct Stage Stage;

typedef struct {
    Run run;             // config, metrics, lineage, progress, run directory
    const Stage *stage;
    void *ctx;           // the stage's own state
    Tokenizer tok;
    TrainedModel trained[TRAINER_MAX_MODELS];
    int n_trained;
    int64_t step;        // optimizer steps done
    DataState data;      // restored on resume; the stage keeps it current
    float lr;            // this step's scheduled learning rate
    // One pass over the training data, for train.epochs: set in setup by
    // the stages that draw a fixed list of items in epoch order
    // (trainer_set_epoch); 0 for the others.
    int64_t epoch_items;     // items in the training set
    int64_t micro_items;     // items one micro-batch draws
    const char *item_name;   // what an item is, for the log ("examples")
} Trainer;

// What one step reports back to the trainer.
typedef struct {
    double loss;         // logged as `loss`, shown on the progress line
    double tokens;       // tokens processed, for tokens/s
    double seconds;      // the step's wall time (set by the trainer)
    float grad_norm;     // of the first model, before clipping (set by the update)
    int updated;         // the stage ran its own updates (trainer_update)
    char extra[160];     // appended to the progress line
} StepResult;

struct Stage {
    const char *name;          // the command and the checkpoint's stage
    // NULL: a fresh run may start from scratch (a GPT-2 init of [model]);
    // else checkpoint.init is required and its error suggests this path.
    const char *init_example;
    int value_head;            // the first model carries a scalar head
    int n_trained;             // models trained (1, or 2 with prefixes below)
    const char *prefix[TRAINER_MAX_MODELS];
    // Models trained as the run's config decides (1..n_trained, the first
    // ones of prefix[]); NULL: always n_trained.
    int (*count_trained)(const Config *cfg);
    int eval_at_start;         // evaluate before the first step of a fresh run

    // Fresh runs with more than one trained model: build them (and record
    // lineage) in t->trained. NULL: the trainer builds the first model.
    int (*init_models)(Trainer *t, void *ctx);
    // After the trained models exist: read data, build frozen models, set
    // up scratch. `resume` is the checkpoint being resumed (NULL on a
    // fresh run) to read the stage's own state from.
    int (*setup)(Trainer *t, void *ctx, Ckpt *resume);
    // One optimizer step at t->lr: accumulate the gradients of every
    // trained model (zeroed by the trainer) and fill res; a stage that
    // updates more than once per step calls trainer_update itself and sets
    // res->updated.
    void (*step)(Trainer *t, void *ctx, StepResult *res);
    // Metrics of a logged step, beside or instead of trainer_log_common;
    // may write res->extra for the progress line.
    void (*log)(Trainer *t, void *ctx, StepResult *res);
    // Held-out evaluation after step t->step + 1 (res: that step's result,
    // NULL before the first step): set metrics, print a line. last: the
    // final step.
    void (*evaluate)(Trainer *t, void *ctx, const StepResult *res, int last);
    // The stage's own checkpoint state, after the trainer's (may be NULL).
    int (*save)(Trainer *t, void *ctx, Ckpt *ck, int last);
    void (*free)(void *ctx);
};

// The whole run of a training command: parse argv, build or resume, loop,
// log, evaluate, save, free. Returns the exit status; dies with one line
// on bad input.
int trainer_main(const Stage *stage, void *ctx, int argc, char **argv);

// Sums the gradients of every trained model across ranks (dist_sum_f32),
// clips them to optim.grad_clip and applies
// one AdamW update at the model's learning rate for t->lr, then zeroes the
// gradients for the next step. Returns the first model's norm before
// clipping. The one place where gradients become updates.
float trainer_update(Trainer *t);

// The first trained model (the one a stage's loss is about).
static inline GPT *trainer_model(Trainer *t) { return &t->trained[0].model; }

// Called from a stage's setup: its training set holds `items` items (of
// `name`), drawn `per_micro_batch` at a time in epoch order. With
// train.epochs > 0 the trainer then sets train.max_steps to
// ceil(epochs * items / (per_micro_batch * train.grad_accum)).
void trainer_set_epoch(Trainer *t, int64_t items, int64_t per_micro_batch, const char *name);

// The metrics every single-model stage logs: loss, lr, grad_norm,
// tokens_per_s, time_s (after `step`, which the trainer sets).
void trainer_log_common(Trainer *t, const StepResult *res);

// The learning rate of trained model i at this step: t->lr, or for a model
// with its own peak_lr the schedule scaled to that peak.
float trainer_model_lr(const Trainer *t, int i);

#endif

// rlhf pretrain CONFIG [--resume] [--section.key=value ...]
// Next-token training on the token shards that `prepare` wrote: sampled (or
// sequential) windows of the train shard, each step's loss a mean over
// grad_accum micro-batches; validation loss on the first windows of the val
// shard. The trainer does the rest (schedule, clipping, AdamW, checkpoints,
// exact resume).
#include <math.h>
#include <stdlib.h>

#include "commands.h"
#include "common.h"
#include "data.h"
#include "evaluate.h"
#include "objectives.h"
#include "trainer.h"

typedef struct {
    int *train, *val;     // token shards
    size_t n_train, n_val;
    DataLoader dl;
    int B, T, accum;
    int *x, *y;           // (B,T) one micro-batch
    float *w;             // (B,T) loss weight of every token: 1 / (B T accum)
} Pretrain;

static int setup(Trainer *t, void *ctx, Ckpt *resume) {
    Pretrain *p = ctx;
    const Config *cfg = &t->run.cfg;
    p->B = (int)cfg->train.batch_size;
    p->T = (int)cfg->model.block_size;
    p->accum = (int)cfg->train.grad_accum;
    if (shard_read_for(cfg->data.dir, "train.h5", &t->tok, &p->train, &p->n_train) != 0 ||
        shard_read_for(cfg->data.dir, "val.h5", &t->tok, &p->val, &p->n_val) != 0)
        return -1;
    if (p->n_val < (size_t)p->T + 1)
        return rlhf_fail("val.h5 has %zu tokens, fewer than one window of block_size+1 = %d; "
                         "hint: use a larger corpus or a smaller model.block_size", p->n_val,
                         p->T + 1);
    if (dataloader_init(&p->dl, p->train, p->n_train, p->B, p->T, cfg->train.shuffle,
                        (uint64_t)cfg->train.seed) != 0)
        return -1;
    if (resume) dataloader_set_state(&p->dl, &t->data);
    print_model_summary(trainer_model(t), &t->tok);
    printf("# train %zu tokens, val %zu tokens, %d tokens per step\n", p->n_train, p->n_val,
           p->B * p->T * p->accum);
    const size_t n = (size_t)p->B * p->T;
    p->x = mallocCheck(n * sizeof(int));
    p->y = mallocCheck(n * sizeof(int));
    p->w = mallocCheck(n * sizeof(float));
    for (size_t i = 0; i < n; i++) p->w[i] = 1.0f / ((float)p->B * p->T * p->accum);
    return 0;
}

static void step(Trainer *t, void *ctx, StepResult *res) {
    Pretrain *p = ctx;
    for (int micro = 0; micro < p->accum; micro++) {
        dataloader_next(&p->dl, p->x, p->y);
        res->loss += lm_accumulate(trainer_model(t), p->x, p->y, p->w, NULL, p->B, p->T);
    }
    res->tokens = (double)p->B * p->T * p->accum;
    dataloader_get_state(&p->dl, &t->data);
}

static void log_step(Trainer *t, void *ctx, StepResult *res) {
    trainer_log_common(t, res);
    snprintf(res->extra, sizeof res->extra, "norm %.2f", res->grad_norm);
}

static void evaluate(Trainer *t, void *ctx, const StepResult *res, int last) {
    Pretrain *p = ctx;
    const Config *cfg = &t->run.cfg;
    double vl = evaluate_lm_loss(trainer_model(t), p->val, p->n_val, p->B,
                                 cfg->train.eval_steps * p->B, LM_WRAP, NULL, NULL);
    metrics_set(&t->run.metrics, "val_loss", vl);
    run_print(&t->run, "step %lld: train loss %.4f, val loss %.4f (ppl %.2f)",
              (long long)t->step + 1, res->loss, vl, exp(vl));
}

static void pretrain_free(void *ctx) {
    Pretrain *p = ctx;
    free(p->x);
    free(p->y);
    free(p->w);
    free(p->train);
    free(p->val);
}

int cmd_pretrain(int argc, char **argv) {
    static const Stage stage = {
        .name = "pretrain",
        .setup = setup,
        .step = step,
        .log = log_step,
        .evaluate = evaluate,
        .free = pretrain_free,
    };
    Pretrain p = {0};
    return trainer_main(&stage, &p, argc, argv);
}

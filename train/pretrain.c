// rlhf pretrain CONFIG [--resume] [--section.key=value ...]
// Next-token training on the token shards that `prepare` wrote: sampled (or
// sequential) windows, AdamW with warmup + cosine decay, clipping, gradient
// accumulation, periodic validation and checkpoints, exact resume.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "commands.h"
#include "common.h"
#include "data.h"
#include "gpt.h"
#include "optim.h"
#include "run.h"

typedef struct {
    int *tokens;
    size_t n;
} Shard;

static int load_shard(const char *dir, const char *name, const Tokenizer *tok, Shard *s) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int vocab;
    uint64_t hash;
    if (shard_read(path, &s->tokens, &s->n, &vocab, &hash) != 0) return -1;
    if (vocab != tok->vocab_size || hash != tokenizer_hash(tok))
        return rlhf_fail("%s was not made with the tokenizer of this run (vocab %d vs %d); "
                         "hint: run 'rlhf prepare' again for data.dir=%s", path, vocab,
                         tok->vocab_size, dir);
    return 0;
}

// Mean loss over eval_steps sequential batches of the validation shard.
static double evaluate(GPT *m, DataLoader *val, int *x, int *y, int steps) {
    dataloader_rewind(val);
    double sum = 0.0;
    for (int i = 0; i < steps; i++) {
        dataloader_next(val, x, y);
        gpt_forward(m, x, val->B, val->T, 1);
        sum += gpt_lm_loss(m, y, NULL);
    }
    return sum / steps;
}

int cmd_pretrain(int argc, char **argv) {
    Run run;
    if (run_init(&run, "pretrain", argc, argv) != 0) die_last();
    Config *cfg = &run.cfg;
    const int B = (int)cfg->train.batch_size, T = (int)cfg->model.block_size;
    const int accum = (int)cfg->train.grad_accum;

    GPT model;
    Tokenizer tok = {0};
    AdamW opt;
    int64_t step = 0;
    uint64_t data_state[DATALOADER_STATE_U64];
    if (start_training(&run, &model, &opt, &tok, 0, NULL, &step, data_state) != 0) die_last();
    if (T > model.config.block_size)
        die("model.block_size %d exceeds the checkpoint's context %d; hint: lower it", T,
            model.config.block_size);

    Shard train = {0}, valset = {0};
    if (load_shard(cfg->data.dir, "train.h5", &tok, &train) != 0 ||
        load_shard(cfg->data.dir, "val.h5", &tok, &valset) != 0)
        die_last();
    DataLoader dl, val;
    if (dataloader_init(&dl, train.tokens, train.n, B, T, cfg->train.shuffle,
                        (uint64_t)cfg->train.seed) != 0 ||
        dataloader_init(&val, valset.tokens, valset.n, B, T, 0, 0) != 0)
        die_last();
    if (run.resume) dataloader_set_state(&dl, data_state);
    if (run_begin(&run, step) != 0) die_last();
    print_model_summary(&model, &tok);
    printf("# train %zu tokens, val %zu tokens, %d tokens per step\n", train.n, valset.n,
           B * T * accum);

    int *x = mallocCheck((size_t)B * T * sizeof(int)), *y = mallocCheck((size_t)B * T * sizeof(int));
    const int64_t max_steps = cfg->train.max_steps;
    const float weight = 1.0f / ((float)B * T * accum);
    float *weights = mallocCheck((size_t)B * T * sizeof(float));
    for (int i = 0; i < B * T; i++) weights[i] = weight;

    for (; step < max_steps; step++) {
        double t0 = now_seconds();
        float lr = lr_schedule(step, cfg->optim.warmup_steps, max_steps, (float)cfg->optim.lr,
                               (float)cfg->optim.min_lr);
        gpt_zero_grad(&model);
        double loss = 0.0;
        for (int micro = 0; micro < accum; micro++) {
            dataloader_next(&dl, x, y);
            gpt_forward(&model, x, B, T, 1);
            loss += gpt_lm_loss(&model, y, weights);
            gpt_backward(&model, model.train->dlogits, NULL);
        }
        if (!isfinite(loss))
            die("loss is %f at step %lld; nothing was saved past the last checkpoint; hint: "
                "lower optim.lr (or optim.grad_clip)", loss, (long long)step + 1);
        float norm = grad_clip(&model, (float)cfg->optim.grad_clip);
        adamw_step(&opt, &model, lr);
        double dt = now_seconds() - t0;
        double tok_s = (double)B * T * accum / dt;

        StepPlan plan = run_step_plan(&run, step);
        if (plan.log) run_log_step(&run, step + 1, loss, lr, norm, tok_s);
        char extra[64] = "";
        if (plan.eval) {
            double vl = evaluate(&model, &val, x, y, (int)cfg->train.eval_steps);
            metrics_set(&run.metrics, "val_loss", vl);
            run_print(&run, "step %lld: train loss %.4f, val loss %.4f (ppl %.2f)",
                      (long long)step + 1, loss, vl, exp(vl));
        }
        if (plan.log) {
            metrics_commit(&run.metrics);
            snprintf(extra, sizeof extra, "norm %.2f", norm);
            run_progress(&run, step, max_steps, loss, lr, tok_s, extra);
        }
        if (plan.save) {
            dataloader_get_state(&dl, data_state);
            if (save_training(&run, step + 1, &model, &opt, &tok, data_state) != 0) die_last();
        }
    }
    run_print(&run, "done: %lld steps, %.1f s; checkpoints in %s", (long long)max_steps,
              now_seconds() - run.t_start, cfg->checkpoint.dir);
    free(x);
    free(y);
    free(weights);
    free(train.tokens);
    free(valset.tokens);
    adamw_free(&opt);
    tokenizer_free(&tok);
    gpt_free(&model);
    run_free(&run);
    return 0;
}

// rlhf sft CONFIG [--resume] [--section.key=value ...]
// Supervised fine-tuning from a pretrained checkpoint on JSONL examples put
// through the chat template. Loss falls only on response tokens and their
// closing end-of-text; examples are right-padded to the longest in each
// micro-batch, so none attends to another. Held-out task accuracy (greedy,
// graded per family) every eval_interval steps.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "commands.h"
#include "common.h"
#include "evaluate.h"
#include "jsonl.h"
#include "optim.h"
#include "run.h"
#include "seqs.h"

// Tokenizes examples into seqs; over-long ones are skipped or truncated
// per sft.overlong, with counts. Returns -1 on an encoding error.
static int tokenize_set(const SftSet *set, const Tokenizer *tok, int T, int truncate,
                        SeqSet *seqs, long *skipped, long *truncated) {
    int *ids = mallocCheck(((size_t)T + 1) * sizeof(int));
    unsigned char *loss = mallocCheck((size_t)T + 1);
    *skipped = *truncated = 0;
    seqs_init(seqs);
    for (long i = 0; i < set->n; i++) {
        long len = chat_encode_example(tok, &set->ex[i], ids, loss, T + 1);
        if (len < 0) {
            free(ids);
            free(loss);
            return rlhf_fail("%s:%d: %s", set->path, set->ex[i].line, rlhf_errmsg);
        }
        if (len > T + 1) {
            if (!truncate) {
                (*skipped)++;
                continue;
            }
            len = T + 1;
            (*truncated)++;
        }
        int any = 0;
        for (long t = 1; t < len; t++) any |= loss[t];
        if (!any) {  // truncation cut every response token
            (*skipped)++;
            continue;
        }
        seqs_add(seqs, ids, loss, len);
    }
    free(ids);
    free(loss);
    if (seqs->n == 0)
        return rlhf_fail("%s: no example fits in block_size=%d tokens; hint: raise "
                         "model.block_size or use sft.overlong=truncate", set->path, T);
    return 0;
}

// Teacher-forced loss per response token over the whole held-out set.
static double test_loss(GPT *m, const SeqSet *s, int B, int pad, int *x, int *y,
                        unsigned char *mask, float *w, long *rows) {
    double sum = 0.0, count = 0.0;
    for (long i0 = 0; i0 < s->n; i0 += B) {
        int b = (int)(s->n - i0 < B ? s->n - i0 : B);
        for (int r = 0; r < b; r++) rows[r] = i0 + r;
        int T = seqs_batch(s, rows, b, pad, x, y, mask);
        for (int i = 0; i < b * T; i++) {
            w[i] = mask[i];
            count += mask[i];
        }
        gpt_forward(m, x, b, T, 1);
        sum += gpt_lm_loss(m, y, w);
    }
    return count > 0 ? sum / count : 0.0;
}

int cmd_sft(int argc, char **argv) {
    Run run;
    if (run_init(&run, "sft", argc, argv) != 0) die_last();
    Config *cfg = &run.cfg;
    const int B = (int)cfg->train.batch_size, accum = (int)cfg->train.grad_accum;

    GPT model;
    Tokenizer tok = {0};
    AdamW opt;
    int64_t step = 0;
    uint64_t data_state[5];
    if (start_training(&run, &model, &opt, &tok, 0, "checkpoints/pretrain/latest.h5", &step,
                       data_state) != 0)
        die_last();
    const int T = model.config.block_size;
    SftSet train_set, test_set;
    if (jsonl_read_sft(cfg->sft.train_file, &train_set) != 0 ||
        jsonl_read_sft(cfg->sft.test_file, &test_set) != 0)
        die_last();
    int truncate = strcmp(cfg->sft.overlong, "truncate") == 0;
    SeqSet train, test;
    long skipped, truncated, tskipped, ttruncated;
    if (tokenize_set(&train_set, &tok, T, truncate, &train, &skipped, &truncated) != 0 ||
        tokenize_set(&test_set, &tok, T, truncate, &test, &tskipped, &ttruncated) != 0)
        die_last();
    if (run_begin(&run, step) != 0) die_last();
    print_model_summary(&model, &tok);
    printf("# sft train: %ld examples (%ld skipped, %ld truncated as longer than %d tokens); "
           "test: %ld (%ld skipped, %ld truncated)\n", train.n, skipped, truncated, T + 1,
           test.n, tskipped, ttruncated);
    fflush(stdout);

    // held-out prompts for accuracy: the first eval_examples test examples
    long n_eval = test_set.n < cfg->sft.eval_examples ? test_set.n : cfg->sft.eval_examples;
    const char **eval_prompts = mallocCheck((size_t)(n_eval ? n_eval : 1) * sizeof(char *));
    const char **eval_families = mallocCheck((size_t)(n_eval ? n_eval : 1) * sizeof(char *));
    for (long i = 0; i < n_eval; i++) {
        eval_prompts[i] = test_set.ex[i].turns[0].text;
        eval_families[i] = test_set.ex[i].family;
    }

    const size_t cap = (size_t)B * T;
    int *x = mallocCheck((size_t)accum * cap * sizeof(int));
    int *y = mallocCheck((size_t)accum * cap * sizeof(int));
    unsigned char *mask = mallocCheck((size_t)accum * cap);
    float *w = mallocCheck(cap * sizeof(float));
    long *rows = mallocCheck((size_t)B * sizeof(long));
    int *Ts = mallocCheck((size_t)accum * sizeof(int));
    // batches of similar lengths (8 batches per group) waste little on padding
    int *lengths = mallocCheck((size_t)train.n * sizeof(int));
    for (long i = 0; i < train.n; i++) lengths[i] = (int)seqs_len(&train, i);
    BatchStream stream;
    batch_stream_init(&stream, train.n, lengths, B, 8, (uint64_t)cfg->train.seed);
    int64_t cursor = (int64_t)data_state[4];
    const int64_t max_steps = cfg->train.max_steps;

    for (; step < max_steps; step++) {
        double t0 = now_seconds();
        float lr = lr_schedule(step, cfg->optim.warmup_steps, max_steps, (float)cfg->optim.lr,
                               (float)cfg->optim.min_lr);
        // assemble the step's micro-batches first: the loss is a mean over
        // every loss-carrying token of the step
        double n_loss = 0.0, n_tokens = 0.0;
        for (int a = 0; a < accum; a++) {
            batch_stream_get(&stream, cursor++, rows);
            Ts[a] = seqs_batch(&train, rows, B, tok.pad, x + a * cap, y + a * cap, mask + a * cap);
            for (int i = 0; i < B * Ts[a]; i++) n_loss += mask[a * cap + i];
            n_tokens += (double)B * Ts[a];
        }
        gpt_zero_grad(&model);
        double loss = 0.0;
        for (int a = 0; a < accum; a++) {
            for (int i = 0; i < B * Ts[a]; i++) w[i] = (float)(mask[a * cap + i] / n_loss);
            gpt_forward(&model, x + a * cap, B, Ts[a], 1);
            loss += gpt_lm_loss(&model, y + a * cap, w);
            gpt_backward(&model, model.train->dlogits, NULL);
        }
        if (!isfinite(loss))
            die("loss is %f at step %lld; hint: lower optim.lr", loss, (long long)step + 1);
        float norm = grad_clip(&model, (float)cfg->optim.grad_clip);
        adamw_step(&opt, &model, lr);
        double tok_s = n_tokens / (now_seconds() - t0);

        StepPlan plan = run_step_plan(&run, step);
        if (plan.log) {
            run_log_step(&run, step + 1, loss, lr, norm, tok_s);
            metrics_set(&run.metrics, "loss_token_frac", n_loss / n_tokens);
        }
        if (plan.eval) {
            double tl = test_loss(&model, &test, B, tok.pad, x, y, mask, w, rows);
            TasksTally tally;
            tasks_tally_init(&tally);
            evaluate_tasks(&model, &tok, eval_prompts, eval_families, n_eval,
                           (int)cfg->sft.max_new_tokens, 64, &tally, NULL, NULL);
            double acc = tasks_tally_accuracy(&tally, -1);
            metrics_set(&run.metrics, "test_loss", tl);
            metrics_set(&run.metrics, "accuracy", acc);
            for (int f = 0; f < tasks_n_families; f++) {
                if (!tally.total[f]) continue;
                char name[64];
                snprintf(name, sizeof name, "accuracy_%s", tasks_families[f].name);
                metrics_set(&run.metrics, name, tasks_tally_accuracy(&tally, f));
            }
            run_print(&run, "step %lld: train loss %.4f, test loss %.4f, task accuracy %.1f%% "
                      "(%ld graded)", (long long)step + 1, loss, tl, 100 * acc, n_eval - tally.ungraded);
            if (plan.last) tasks_tally_print(&tally, stdout);
        }
        if (plan.log) {
            metrics_commit(&run.metrics);
            char extra[64];
            snprintf(extra, sizeof extra, "loss tokens %.0f%%", 100 * n_loss / n_tokens);
            run_progress(&run, step, max_steps, loss, lr, tok_s, extra);
        }
        if (plan.save) {
            data_state[4] = (uint64_t)cursor;
            if (save_training(&run, step + 1, &model, &opt, &tok, data_state) != 0) die_last();
        }
    }
    run_print(&run, "done: %lld steps, %.1f s; checkpoints in %s", (long long)max_steps,
              now_seconds() - run.t_start, cfg->checkpoint.dir);
    free(x);
    free(y);
    free(mask);
    free(w);
    free(rows);
    free(Ts);
    batch_stream_free(&stream);
    free(lengths);
    free(eval_prompts);
    free(eval_families);
    seqs_free(&train);
    seqs_free(&test);
    jsonl_free_sft(&train_set);
    jsonl_free_sft(&test_set);
    adamw_free(&opt);
    tokenizer_free(&tok);
    gpt_free(&model);
    run_free(&run);
    return 0;
}

// rlhf reward CONFIG [--resume] [--section.key=value ...]
// Reward model: the GPT trunk of an SFT checkpoint plus a scalar head read
// at the last token of <|user|>prompt<|assistant|>response<|endoftext|>,
// trained on preference pairs with the Bradley-Terry loss
// -log sigmoid(r_chosen - r_rejected - margin). Saves the mean and std of
// its rewards on the training responses for PPO to normalise with.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "commands.h"
#include "common.h"
#include "evaluate.h"
#include "jsonl.h"
#include "losses.h"
#include "optim.h"
#include "run.h"
#include "seqs.h"

// Pair i is sequences 2i (chosen) and 2i+1 (rejected).
static int tokenize_pairs(const PrefSet *set, const Tokenizer *tok, int T, SeqSet *seqs,
                          long *skipped) {
    int *ids = mallocCheck(((size_t)T + 1) * sizeof(int));
    int *ids2 = mallocCheck(((size_t)T + 1) * sizeof(int));
    seqs_init(seqs);
    *skipped = 0;
    for (long i = 0; i < set->n; i++) {
        const PrefExample *e = &set->ex[i];
        long a = chat_encode_pair(tok, e->prompt, e->chosen, 0, ids, T + 1);
        long b = chat_encode_pair(tok, e->prompt, e->rejected, e->rejected_no_eot, ids2, T + 1);
        if (a < 0 || b < 0) {
            free(ids);
            free(ids2);
            return rlhf_fail("%s:%d: %s", set->path, e->line, rlhf_errmsg);
        }
        if (a > T || b > T) {  // the score must be read inside the context
            (*skipped)++;
            continue;
        }
        seqs_add(seqs, ids, NULL, a);
        seqs_add(seqs, ids2, NULL, b);
    }
    free(ids);
    free(ids2);
    if (seqs->n == 0)
        return rlhf_fail("%s: no preference pair fits in block_size=%d tokens; hint: raise "
                         "model.block_size", set->path, T);
    return 0;
}

// Right-pads sequences rows[0..n) into x (n,T); last[r] = index of the last
// token. Returns T.
static int pad_rows(const SeqSet *s, const long *rows, int n, int pad, int *x, int *last) {
    long longest = 1;
    for (int r = 0; r < n; r++) longest = seqs_len(s, rows[r]) > longest ? seqs_len(s, rows[r]) : longest;
    int T = (int)longest;
    for (int r = 0; r < n; r++) {
        const int *ids = s->ids + s->off[rows[r]];
        long L = seqs_len(s, rows[r]);
        for (int t = 0; t < T; t++) x[r * T + t] = t < L ? ids[t] : pad;
        last[r] = (int)L - 1;
    }
    return T;
}

int cmd_reward(int argc, char **argv) {
    Run run;
    if (run_init(&run, "reward", argc, argv) != 0) die_last();
    Config *cfg = &run.cfg;
    const int B = (int)cfg->train.batch_size, accum = (int)cfg->train.grad_accum;

    GPT model;
    Tokenizer tok = {0};
    AdamW opt;
    int64_t step = 0;
    uint64_t data_state[5];
    if (start_training(&run, &model, &opt, &tok, 1, "checkpoints/sft/latest.h5", &step,
                       data_state) != 0)
        die_last();
    if (!model.config.value_head) die("%s has no value head", cfg->checkpoint.init);
    const int T = model.config.block_size;
    PrefSet train_set, test_set;
    if (jsonl_read_prefs(cfg->reward.train_file, &train_set) != 0 ||
        jsonl_read_prefs(cfg->reward.test_file, &test_set) != 0)
        die_last();
    // the test pairs are tokenized only to check them up front and count
    // those that fit; evaluate_pairs encodes them again when it scores
    SeqSet train, test;
    long skipped, tskipped;
    if (tokenize_pairs(&train_set, &tok, T, &train, &skipped) != 0 ||
        tokenize_pairs(&test_set, &tok, T, &test, &tskipped) != 0)
        die_last();
    const long n_pairs = train.n / 2, n_test = test.n / 2;
    seqs_free(&test);
    if (run_begin(&run, step) != 0) die_last();
    print_model_summary(&model, &tok);
    printf("# reward pairs: train %ld (%ld skipped as longer than %d tokens), test %ld (%ld "
           "skipped)\n", n_pairs, skipped, T, n_test, tskipped);
    fflush(stdout);

    int *x = mallocCheck((size_t)2 * B * T * sizeof(int));
    int *last = mallocCheck((size_t)2 * B * sizeof(int));
    long *rows = mallocCheck((size_t)2 * B * sizeof(long));
    float *r = mallocCheck((size_t)2 * B * sizeof(float));
    float *dr = mallocCheck((size_t)2 * B * sizeof(float));
    float *dvalues = mallocCheck((size_t)2 * B * T * sizeof(float));
    // batches of pairs of similar lengths (8 batches per group), little padding
    int *lengths = mallocCheck((size_t)n_pairs * sizeof(int));
    for (long p = 0; p < n_pairs; p++) {
        long a = seqs_len(&train, 2 * p), b = seqs_len(&train, 2 * p + 1);
        lengths[p] = (int)(a > b ? a : b);
    }
    long *pairs = mallocCheck((size_t)B * sizeof(long));
    BatchStream stream;
    batch_stream_init(&stream, n_pairs, lengths, B, 8, (uint64_t)cfg->train.seed);
    int64_t cursor = (int64_t)data_state[4];
    const int64_t max_steps = cfg->train.max_steps;
    const float margin = (float)cfg->reward.margin;

    for (; step < max_steps; step++) {
        double t0 = now_seconds();
        float lr = lr_schedule(step, cfg->optim.warmup_steps, max_steps, (float)cfg->optim.lr,
                               (float)cfg->optim.min_lr);
        gpt_zero_grad(&model);
        double loss = 0.0, acc = 0.0, gap = 0.0, tokens = 0.0;
        for (int a = 0; a < accum; a++) {
            // rows: B chosen then B rejected
            batch_stream_get(&stream, cursor++, pairs);
            for (int i = 0; i < B; i++) {
                rows[i] = 2 * pairs[i];
                rows[B + i] = 2 * pairs[i] + 1;
            }
            int Tb = pad_rows(&train, rows, 2 * B, tok.pad, x, last);
            gpt_forward(&model, x, 2 * B, Tb, 0);
            values_at(&model, last, r);
            float a_acc, a_gap;
            loss += bt_loss(r, r + B, B, margin, dr, dr + B, &a_acc, &a_gap) / accum;
            acc += a_acc / accum;
            gap += a_gap / accum;
            // the loss touches only each row's last position
            memset(dvalues, 0, (size_t)2 * B * Tb * sizeof(float));
            for (int i = 0; i < 2 * B; i++) dvalues[i * Tb + last[i]] = dr[i] / accum;
            gpt_backward(&model, NULL, dvalues);
            tokens += 2.0 * B * Tb;
        }
        if (!isfinite(loss))
            die("loss is %f at step %lld; hint: lower optim.lr", loss, (long long)step + 1);
        float norm = grad_clip(&model, (float)cfg->optim.grad_clip);
        adamw_step(&opt, &model, lr);
        double tok_s = tokens / (now_seconds() - t0);

        StepPlan plan = run_step_plan(&run, step);
        if (plan.log) {
            run_log_step(&run, step + 1, loss, lr, norm, tok_s);
            metrics_set(&run.metrics, "accuracy", acc);
            metrics_set(&run.metrics, "margin", gap);
        }
        if (plan.eval) {
            PairResult ts;
            if (evaluate_pairs(&model, &tok, &test_set, 0, 2 * B, &ts, NULL) != 0) die_last();
            metrics_set(&run.metrics, "test_accuracy", ts.accuracy);
            metrics_set(&run.metrics, "test_margin", ts.margin);
            metrics_set(&run.metrics, "reward_mean", ts.mean);
            metrics_set(&run.metrics, "reward_std", ts.std);
            run_print(&run, "step %lld: train loss %.4f acc %.1f%%, test accuracy %.1f%%, margin "
                      "%.3f, reward mean %.3f std %.3f", (long long)step + 1, loss, 100 * acc,
                      100 * ts.accuracy, ts.margin, ts.mean, ts.std);
        }
        if (plan.log) {
            metrics_commit(&run.metrics);
            char extra[64];
            snprintf(extra, sizeof extra, "acc %.0f%% margin %.2f", 100 * acc, gap);
            run_progress(&run, step, max_steps, loss, lr, tok_s, extra);
        }
        if (plan.save) {
            // normalisation for PPO: rewards of (up to 2000 of) the training pairs
            PairResult ns;
            if (evaluate_pairs(&model, &tok, &train_set, 2000, 2 * B, &ns, NULL) != 0) die_last();
            double norm_stats[2] = {ns.mean, ns.std > 1e-6 ? ns.std : 1.0};
            data_state[4] = (uint64_t)cursor;
            Ckpt *ck = run_ckpt_begin(&run, step + 1);
            if (!ck) die_last();
            if (write_training_state(ck, &model, &opt, &tok, data_state) != 0 ||
                ckpt_write_f64(ck, "reward_norm", norm_stats, 2) != 0) {
                ckpt_abort(ck);
                die_last();
            }
            if (run_ckpt_end(&run, ck, step + 1) != 0) die_last();
            if (plan.last)
                printf("# reward normalisation (train, %ld pairs): mean %.4f std %.4f\n", ns.pairs,
                       norm_stats[0], norm_stats[1]);
        }
    }
    run_print(&run, "done: %lld steps, %.1f s; checkpoints in %s", (long long)max_steps,
              now_seconds() - run.t_start, cfg->checkpoint.dir);
    free(x);
    free(last);
    free(rows);
    free(r);
    free(dr);
    free(dvalues);
    batch_stream_free(&stream);
    free(lengths);
    free(pairs);
    seqs_free(&train);
    jsonl_free_prefs(&train_set);
    jsonl_free_prefs(&test_set);
    adamw_free(&opt);
    tokenizer_free(&tok);
    gpt_free(&model);
    run_free(&run);
    return 0;
}

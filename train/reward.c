// rlhf reward CONFIG [--resume] [--section.key=value ...]
// Reward model: the GPT trunk of an SFT checkpoint plus a scalar head read
// at the last token of <|user|>prompt<|assistant|>response<|endoftext|>,
// trained on preference pairs with the Bradley-Terry loss
// -log sigmoid(r_chosen - r_rejected - margin). Each checkpoint stores the
// mean and std of its rewards on the training responses, for PPO to
// normalise with.
#include <stdlib.h>

#include "commands.h"
#include "common.h"
#include "evaluate.h"
#include "jsonl.h"
#include "objectives.h"
#include "seqs.h"
#include "trainer.h"

typedef struct {
    PrefSet train_set, test_set;
    SeqSet train;          // pair i: sequences 2i (chosen) and 2i+1 (rejected)
    BatchStream stream;    // batches of pairs of similar lengths
    int *lengths;
    int B, accum;
    float margin;
    int *x, *last;         // (2B,T) rows: B chosen then B rejected; (2B)
    long *rows, *pairs;    // (2B), (B)
    float *r, *dr, *dvalues;  // (2B), (2B), (2B,T)
    double acc, gap;       // of the last step
} Reward;

static int setup(Trainer *t, void *ctx, Ckpt *resume) {
    Reward *w = ctx;
    const Config *cfg = &t->run.cfg;
    const int T = trainer_model(t)->config.block_size;
    w->B = (int)cfg->train.batch_size;
    w->accum = (int)cfg->train.grad_accum;
    w->margin = (float)cfg->reward.margin;
    // the test pairs are encoded here only to check them and count those
    // that fit; evaluate_pairs encodes them again when it scores
    SeqSet test;
    long skipped, tskipped;
    if (jsonl_read_prefs(cfg->reward.train_file, &w->train_set) != 0 ||
        jsonl_read_prefs(cfg->reward.test_file, &w->test_set) != 0 ||
        seqs_from_prefs(&w->train_set, &t->tok, T, &w->train, &skipped) != 0 ||
        seqs_from_prefs(&w->test_set, &t->tok, T, &test, &tskipped) != 0)
        return -1;
    const long n_pairs = w->train.n / 2;
    print_model_summary(trainer_model(t), &t->tok);
    printf("# reward pairs: train %ld (%ld skipped as longer than %d tokens), test %ld (%ld "
           "skipped)\n", n_pairs, skipped, T, test.n / 2, tskipped);
    fflush(stdout);
    seqs_free(&test);

    const int B = w->B;
    w->x = mallocCheck((size_t)2 * B * T * sizeof(int));
    w->last = mallocCheck((size_t)2 * B * sizeof(int));
    w->rows = mallocCheck((size_t)2 * B * sizeof(long));
    w->pairs = mallocCheck((size_t)B * sizeof(long));
    w->r = mallocCheck((size_t)2 * B * sizeof(float));
    w->dr = mallocCheck((size_t)2 * B * sizeof(float));
    w->dvalues = mallocCheck((size_t)2 * B * T * sizeof(float));
    w->lengths = mallocCheck((size_t)n_pairs * sizeof(int));
    for (long p = 0; p < n_pairs; p++) {
        long a = seqs_len(&w->train, 2 * p), b = seqs_len(&w->train, 2 * p + 1);
        w->lengths[p] = (int)(a > b ? a : b);
    }
    batch_stream_init(&w->stream, n_pairs, w->lengths, B, 8, (uint64_t)cfg->train.seed);
    (void)resume;  // the cursor in t->data is all the state
    return 0;
}

static void step(Trainer *t, void *ctx, StepResult *res) {
    Reward *w = ctx;
    const int B = w->B;
    float loss = 0.0f;
    w->acc = w->gap = 0.0;
    double acc = 0.0, gap = 0.0, l = 0.0;
    for (int a = 0; a < w->accum; a++) {
        batch_stream_get(&w->stream, (int64_t)t->data.cursor++, w->pairs);
        for (int i = 0; i < B; i++) {
            w->rows[i] = 2 * w->pairs[i];
            w->rows[B + i] = 2 * w->pairs[i] + 1;
        }
        const int Tb = seqs_pad_rows(&w->train, w->rows, 2 * B, t->tok.pad, w->x, w->last);
        float a_acc, a_gap;
        loss = pairs_accumulate(trainer_model(t), w->x, w->last, B, Tb, w->margin, w->accum,
                                w->r, w->dr, w->dvalues, &a_acc, &a_gap);
        l += loss / w->accum;
        acc += a_acc / w->accum;
        gap += a_gap / w->accum;
        res->tokens += 2.0 * B * Tb;
    }
    res->loss = l;
    w->acc = acc;
    w->gap = gap;
}

static void log_step(Trainer *t, void *ctx, StepResult *res) {
    Reward *w = ctx;
    trainer_log_common(t, res);
    metrics_set(&t->run.metrics, "accuracy", w->acc);
    metrics_set(&t->run.metrics, "margin", w->gap);
    snprintf(res->extra, sizeof res->extra, "acc %.0f%% margin %.2f", 100 * w->acc, w->gap);
}

static void evaluate(Trainer *t, void *ctx, const StepResult *res, int last) {
    Reward *w = ctx;
    PairResult ts;
    if (evaluate_pairs(trainer_model(t), &t->tok, &w->test_set, 0, 2 * w->B, &ts, NULL) != 0)
        die_last();
    metrics_set(&t->run.metrics, "test_accuracy", ts.accuracy);
    metrics_set(&t->run.metrics, "test_margin", ts.margin);
    metrics_set(&t->run.metrics, "reward_mean", ts.mean);
    metrics_set(&t->run.metrics, "reward_std", ts.std);
    run_print(&t->run, "step %lld: train loss %.4f acc %.1f%%, test accuracy %.1f%%, margin "
              "%.3f, reward mean %.3f std %.3f", (long long)t->step + 1, res->loss, 100 * w->acc,
              100 * ts.accuracy, ts.margin, ts.mean, ts.std);
}

// The normalisation PPO reads: mean and std of the rewards of (up to 2000
// of) the training pairs.
static int save(Trainer *t, void *ctx, Ckpt *ck, int last) {
    Reward *w = ctx;
    PairResult ns;
    if (evaluate_pairs(trainer_model(t), &t->tok, &w->train_set, 2000, 2 * w->B, &ns, NULL) != 0)
        return -1;
    double norm[2] = {ns.mean, ns.std > 1e-6 ? ns.std : 1.0};
    if (ckpt_write_f64(ck, "reward_norm", norm, 2) != 0) return -1;
    if (last)
        printf("# reward normalisation (train, %ld pairs): mean %.4f std %.4f\n", ns.pairs,
               norm[0], norm[1]);
    return 0;
}

static void reward_free(void *ctx) {
    Reward *w = ctx;
    free(w->x);
    free(w->last);
    free(w->rows);
    free(w->pairs);
    free(w->r);
    free(w->dr);
    free(w->dvalues);
    if (w->lengths) batch_stream_free(&w->stream);
    free(w->lengths);
    seqs_free(&w->train);
    jsonl_free_prefs(&w->train_set);
    jsonl_free_prefs(&w->test_set);
}

int cmd_reward(int argc, char **argv) {
    static const Stage stage = {
        .name = "reward",
        .init_example = "checkpoints/sft/latest.h5",
        .value_head = 1,
        .setup = setup,
        .step = step,
        .log = log_step,
        .evaluate = evaluate,
        .save = save,
        .free = reward_free,
    };
    Reward w = {0};
    return trainer_main(&stage, &w, argc, argv);
}

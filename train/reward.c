// rlhf reward CONFIG [--resume] [--section.key=value ...]
// Reward model: the GPT trunk of an SFT checkpoint plus a scalar head read
// at the last token of <|user|>prompt<|assistant|>response<|endoftext|>,
// trained with the Bradley-Terry loss -log sigmoid(r_chosen - r_rejected -
// margin) on preference pairs or on the grouped comparisons of `rlhf rank`
// (InstructGPT: all comparisons of one prompt are one batch element, the
// loss averaged over its pairs, each response scored once). A batch holds
// train.batch_size groups; a plain pair is a group of one. Each checkpoint
// stores the mean and std of its rewards on the training responses (for
// ranked SFT samples: the SFT policy's own), for PPO to normalise with, so
// that the policy it starts from scores mean 0.
#include <math.h>
#include <stdlib.h>

#include "commands.h"
#include "common.h"
#include "evaluate.h"
#include "jsonl.h"
#include "objectives.h"
#include "seqs.h"
#include "trainer.h"

// Responses of the training groups that set the reward normalisation.
#define NORM_ROWS 4000

typedef struct {
    PrefSet train_set, test_set;
    SeqSet train;          // every group's distinct responses
    PrefGroups groups;
    BatchStream stream;    // batches of groups of similar lengths
    int *lengths;          // (groups) the longest response of each
    int B, accum;
    float margin, center;  // reward.margin, reward.center_coef
    int *x, *last;         // (B * max_rows, T), (B * max_rows)
    int *chosen, *rejected, *pair_off;  // of one micro-batch, rows local to it
    long *items, *rows;    // (B) groups, (B * max_rows) their sequences
    float *r, *dr, *dvalues;
    double acc, gap;       // of the last step
} Reward;

static int setup(Trainer *t, void *ctx, Ckpt *resume) {
    Reward *w = ctx;
    const Config *cfg = &t->run.cfg;
    const int T = trainer_model(t)->config.block_size;
    w->B = (int)cfg->train.batch_size;
    w->accum = (int)cfg->train.grad_accum;
    w->margin = (float)cfg->reward.margin;
    w->center = (float)cfg->reward.center_coef;
    // the test pairs are encoded here only to check them and count those
    // that fit; evaluate_pairs encodes them again when it scores
    SeqSet test;
    long skipped, tskipped;
    if (jsonl_read_prefs(cfg->reward.train_file, &w->train_set) != 0 ||
        jsonl_read_prefs(cfg->reward.test_file, &w->test_set) != 0 ||
        seqs_from_groups(&w->train_set, &t->tok, T, &w->train, &w->groups, &skipped) != 0 ||
        seqs_from_prefs(&w->test_set, &t->tok, T, &test, &tskipped) != 0)
        return -1;
    const PrefGroups *g = &w->groups;
    print_model_summary(trainer_model(t), &t->tok);
    printf("# reward pairs: train %ld in %ld groups (%ld responses; %ld skipped as longer than "
           "%d tokens), test %ld (%ld skipped)\n", g->pair_off[g->n], g->n, w->train.n, skipped,
           T, test.n / 2, tskipped);
    fflush(stdout);
    seqs_free(&test);

    const size_t R = (size_t)w->B * g->max_rows, P = (size_t)w->B * g->max_pairs;
    w->x = mallocCheck(R * T * sizeof(int));
    w->last = mallocCheck(R * sizeof(int));
    w->rows = mallocCheck(R * sizeof(long));
    w->items = mallocCheck((size_t)w->B * sizeof(long));
    w->chosen = mallocCheck(P * sizeof(int));
    w->rejected = mallocCheck(P * sizeof(int));
    w->pair_off = mallocCheck(((size_t)w->B + 1) * sizeof(int));
    w->r = mallocCheck(R * sizeof(float));
    w->dr = mallocCheck(R * sizeof(float));
    w->dvalues = mallocCheck(R * T * sizeof(float));
    w->lengths = mallocCheck((size_t)g->n * sizeof(int));
    for (long k = 0; k < g->n; k++) {
        long longest = 0;
        for (long s = g->row_off[k]; s < g->row_off[k + 1]; s++)
            if (seqs_len(&w->train, s) > longest) longest = seqs_len(&w->train, s);
        w->lengths[k] = (int)longest;
    }
    batch_stream_init(&w->stream, g->n, w->lengths, w->B, 8, (uint64_t)cfg->train.seed);
    trainer_set_epoch(t, g->n, w->B, "prompt groups");
    (void)resume;  // the cursor in t->data is all the state
    return 0;
}

// The rows and pairs of micro-batch k: the responses of its B groups in
// order, pairs renumbered to those rows. Returns the row count.
static int gather(Reward *w, int64_t k) {
    const PrefGroups *g = &w->groups;
    batch_stream_get(&w->stream, k, w->items);
    int n = 0, p = 0;
    w->pair_off[0] = 0;
    for (int i = 0; i < w->B; i++) {
        const long grp = w->items[i], first = g->row_off[grp];
        for (long q = g->pair_off[grp]; q < g->pair_off[grp + 1]; q++, p++) {
            w->chosen[p] = n + (int)(g->chosen[q] - first);
            w->rejected[p] = n + (int)(g->rejected[q] - first);
        }
        for (long s = first; s < g->row_off[grp + 1]; s++) w->rows[n++] = s;
        w->pair_off[i + 1] = p;
    }
    return n;
}

static void step(Trainer *t, void *ctx, StepResult *res) {
    Reward *w = ctx;
    double acc = 0.0, gap = 0.0, l = 0.0;
    for (int a = 0; a < w->accum; a++) {
        const int n = gather(w, (int64_t)t->data.cursor++);
        const int Tb = seqs_pad_rows(&w->train, w->rows, n, t->tok.pad, w->x, w->last);
        float a_acc, a_gap;
        const float loss = groups_accumulate(trainer_model(t), w->x, w->last, n, Tb, w->chosen,
                                             w->rejected, w->pair_off, w->B, w->margin,
                                             w->center, w->accum,
                                             w->r, w->dr, w->dvalues, &a_acc, &a_gap);
        l += loss / w->accum;
        acc += a_acc / w->accum;
        gap += a_gap / w->accum;
        res->tokens += (double)n * Tb;
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
    if (ts.n_right_wrong) metrics_set(&t->run.metrics, "test_accuracy_right_wrong", ts.acc_right_wrong);
    if (ts.n_wrong_wrong) metrics_set(&t->run.metrics, "test_accuracy_wrong_wrong", ts.acc_wrong_wrong);
    metrics_set(&t->run.metrics, "reward_mean", ts.mean);
    metrics_set(&t->run.metrics, "reward_std", ts.std);
    run_print(&t->run, "step %lld: train loss %.4f acc %.1f%%, test accuracy %.1f%%, margin "
              "%.3f, reward mean %.3f std %.3f", (long long)t->step + 1, res->loss, 100 * w->acc,
              100 * ts.accuracy, ts.margin, ts.mean, ts.std);
}

// The normalisation PPO reads: mean and std of the rewards of the first
// NORM_ROWS training responses.
static int save(Trainer *t, void *ctx, Ckpt *ck, int last) {
    Reward *w = ctx;
    const long n = w->train.n < NORM_ROWS ? w->train.n : NORM_ROWS;
    float *r = mallocCheck((size_t)n * sizeof(float));
    evaluate_seq_rewards(trainer_model(t), &w->train, n, 2 * w->B, t->tok.pad, r);
    double sum = 0.0, sq = 0.0;
    for (long i = 0; i < n; i++) sum += r[i];
    const double mean = sum / n;
    for (long i = 0; i < n; i++) sq += (r[i] - mean) * (r[i] - mean);
    free(r);
    const double std = sqrt(sq / n);
    double norm[2] = {mean, std > 1e-6 ? std : 1.0};
    if (ckpt_write_f64(ck, "reward_norm", norm, 2) != 0) return -1;
    if (last)
        printf("# reward normalisation (%ld training responses): mean %.4f std %.4f\n", n,
               norm[0], norm[1]);
    return 0;
}

static void reward_free(void *ctx) {
    Reward *w = ctx;
    free(w->x);
    free(w->last);
    free(w->rows);
    free(w->items);
    free(w->chosen);
    free(w->rejected);
    free(w->pair_off);
    free(w->r);
    free(w->dr);
    free(w->dvalues);
    if (w->lengths) batch_stream_free(&w->stream);
    free(w->lengths);
    seqs_free(&w->train);
    pref_groups_free(&w->groups);
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

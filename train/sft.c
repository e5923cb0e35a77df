// rlhf sft CONFIG [--resume] [--section.key=value ...]
// Supervised fine-tuning from a pretrained checkpoint on JSONL examples put
// through the chat template. Loss falls only on response tokens and their
// closing end-of-text, averaged over the step's micro-batches; examples are
// right-padded to the longest in each micro-batch, batches grouped by length.
// Held-out loss and task accuracy (greedy, graded per family) every
// eval_interval steps.
//
// sft.pretrain_mix = m keeps some pretraining in the mix (against
// forgetting): k = round(m * batch_size) rows of every micro-batch are
// windows of block_size tokens from data.dir/train.h5 (ptx.h) instead of
// examples, and the step's loss is
//     (1 - k/B) * (mean loss over the step's response tokens)
//   + (k/B)     * (mean loss over all tokens of the step's windows),
// so windows weigh as much per row as examples do on average, whatever the
// response lengths. m = 0 is the plain SFT step, bit for bit.
//
// sft.shift_positions = s places a share s of the examples elsewhere in the
// context: such a row of a micro-batch padded to T tokens runs at positions
// p .. p + T - 1 instead of 0 .. T - 1, p uniform in [0, block_size - T].
// A question asked after earlier turns of a chat sits at such a later
// position; with learned position embeddings a skill trained only at
// position 0 need not carry over there. The draws depend on the seed and
// the micro-batch's place in the data order only, so resume and data
// parallelism see the same ones. s = 0 is the plain SFT step, bit for bit.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "common.h"
#include "evaluate.h"
#include "jsonl.h"
#include "objectives.h"
#include "ptx.h"
#include "rng.h"
#include "seqs.h"
#include "trainer.h"

typedef struct {
    SftSet train_set, test_set;
    SeqSet train, test;
    BatchStream stream;    // batches of similar lengths
    int *lengths;
    long n_eval;           // held-out prompts graded: the first eval_examples
    const char **eval_prompts, **eval_families;
    int B, T, accum;
    int Bs, Bw;            // rows per micro-batch: examples, pretraining windows
    Ptx ptx;               // the windows (off when sft.pretrain_mix = 0)
    double ptx_loss;       // the last step's mean window loss
    int *x, *y;            // (accum,B,T) the step's micro-batches
    unsigned char *mask;   // (accum,B,T)
    float *w;              // (B,T)
    long *rows;            // (B)
    int *Ts;               // (accum) each micro-batch's length
    int *pos0;             // (accum,B) each row's first position (sft.shift_positions)
    double shift;          // sft.shift_positions
    double loss_token_frac;
    char *data_desc;       // /state/sft_data: what the training data holds (JSON)
} Sft;

// The training data as `rlhf chat` reads it back from the checkpoint:
// {"sft_data":{"file","examples","conversations","max_user_turns",
// "trimmed"}}. conversations counts examples of two user turns or more;
// a model trained without any is chatted with turn by turn.
static char *describe_data(const SftSet *set, long examples, long trimmed) {
    long conversations = 0, max_user = 0;
    for (long i = 0; i < set->n; i++) {
        const long users = (set->ex[i].n_turns + 1) / 2;
        conversations += users >= 2;
        max_user = users > max_user ? users : max_user;
    }
    JsonOut *root = json_out_object();
    JsonOut *d = json_out_add_object(root, "sft_data");
    json_out_add_string(d, "file", set->path);
    json_out_add_int(d, "examples", examples);
    json_out_add_int(d, "conversations", conversations);
    json_out_add_int(d, "max_user_turns", max_user);
    json_out_add_int(d, "trimmed", trimmed);
    char *text = json_out_print(root);
    json_out_free(root);
    return text;
}

static int setup(Trainer *t, void *ctx, Ckpt *resume) {
    Sft *s = ctx;
    const Config *cfg = &t->run.cfg;
    s->B = (int)cfg->train.batch_size;
    s->accum = (int)cfg->train.grad_accum;
    s->T = trainer_model(t)->config.block_size;
    const int truncate = strcmp(cfg->sft.overlong, "truncate") == 0;
    long skipped, truncated, trimmed, tskipped, ttruncated, ttrimmed;
    if (jsonl_read_sft(cfg->sft.train_file, &s->train_set) != 0 ||
        jsonl_read_sft(cfg->sft.test_file, &s->test_set) != 0 ||
        seqs_from_sft(&s->train_set, &t->tok, s->T, truncate, &s->train, &skipped, &truncated,
                      &trimmed) ||
        seqs_from_sft(&s->test_set, &t->tok, s->T, truncate, &s->test, &tskipped, &ttruncated,
                      &ttrimmed))
        return -1;
    s->Bw = (int)lround(cfg->sft.pretrain_mix * s->B);
    s->Bs = s->B - s->Bw;
    if (cfg->sft.pretrain_mix > 0 && s->B < 2)
        return rlhf_fail("sft.pretrain_mix needs micro-batches of at least 2 rows (an example "
                         "and a window), but train.batch_size = 1; hint: raise train.batch_size");
    if (cfg->sft.pretrain_mix > 0 && (s->Bw == 0 || s->Bs == 0))
        return rlhf_fail("sft.pretrain_mix = %g of train.batch_size = %d rows gives %s; hint: "
                         "choose a mix from %g to %g (1 to %d windows per micro-batch)",
                         cfg->sft.pretrain_mix, s->B,
                         s->Bw == 0 ? "no pretraining window" : "no example", 1.0 / s->B,
                         (s->B - 1.0) / s->B, s->B - 1);
    if (ptx_setup(&s->ptx, s->Bw > 0, cfg, &t->tok, s->Bw, s->T, "sft.pretrain_mix", resume) != 0)
        return -1;
    print_model_summary(trainer_model(t), &t->tok);
    if (s->ptx.on)
        printf("# sft pretrain_mix: %d examples + %d windows of %d tokens per micro-batch from %s "
               "(%zu tokens); windows carry %g of the loss\n", s->Bs, s->Bw, s->T, s->ptx.record,
               s->ptx.n, (double)s->Bw / s->B);
    printf("# sft train: %ld examples (%ld skipped, %ld truncated as longer than %d tokens; "
           "%ld conversations trimmed to their newest turns); test: %ld (%ld skipped, %ld "
           "truncated, %ld trimmed)\n", s->train.n, skipped, truncated, s->T + 1, trimmed,
           s->test.n, tskipped, ttruncated, ttrimmed);
    if (cfg->sft.shift_positions > 0)
        printf("# sft shift_positions: %g of the examples start at a random position in "
               "[0, %d - width of their micro-batch]\n", cfg->sft.shift_positions, s->T);
    s->data_desc = describe_data(&s->train_set, s->train.n, trimmed);
    printf("# sft data: %s\n", s->data_desc);
    fflush(stdout);

    s->n_eval = s->test_set.n < cfg->sft.eval_examples ? s->test_set.n : cfg->sft.eval_examples;
    s->eval_prompts = mallocCheck((size_t)(s->n_eval ? s->n_eval : 1) * sizeof(char *));
    s->eval_families = mallocCheck((size_t)(s->n_eval ? s->n_eval : 1) * sizeof(char *));
    for (long i = 0; i < s->n_eval; i++) {
        s->eval_prompts[i] = s->test_set.ex[i].turns[0].text;
        s->eval_families[i] = s->test_set.ex[i].family;
    }
    const size_t cap = (size_t)s->B * s->T;
    s->x = mallocCheck((size_t)s->accum * cap * sizeof(int));
    s->y = mallocCheck((size_t)s->accum * cap * sizeof(int));
    s->mask = mallocCheck((size_t)s->accum * cap);
    s->w = mallocCheck(cap * sizeof(float));
    s->rows = mallocCheck((size_t)s->B * sizeof(long));
    s->Ts = mallocCheck((size_t)s->accum * sizeof(int));
    s->pos0 = mallocCheck((size_t)s->accum * s->B * sizeof(int));
    s->shift = cfg->sft.shift_positions;
    s->lengths = mallocCheck((size_t)s->train.n * sizeof(int));
    for (long i = 0; i < s->train.n; i++) s->lengths[i] = (int)seqs_len(&s->train, i);
    batch_stream_init(&s->stream, s->train.n, s->lengths, s->Bs, 8, (uint64_t)cfg->train.seed);
    trainer_set_epoch(t, s->train.n, s->Bs, "examples");
    return 0;  // the cursor in t->data is all the examples' state
}

// First positions of the Bs rows of a micro-batch T tokens wide, the one at
// `cursor` in the data order: each row shifted with probability s->shift.
static void shift_rows(const Sft *s, int64_t cursor, uint64_t seed, int T, int *pos0) {
    Rng rng;
    rng_init(&rng, seed * 0x9E3779B97F4A7C15ULL ^ ((uint64_t)cursor + 1) * 0xD1B54A32D192ED03ULL);
    for (int b = 0; b < s->Bs; b++) {
        const int shifted = rng_float(&rng) < s->shift;
        const uint64_t p = rng_below(&rng, (uint64_t)(s->T - T) + 1);  // s->T: block_size
        pos0[b] = shifted ? (int)p : 0;
    }
}

static void step(Trainer *t, void *ctx, StepResult *res) {
    Sft *s = ctx;
    const size_t cap = (size_t)s->B * s->T;
    const int Bs = s->Bs;
    // the step's micro-batches first: its loss is a mean over all of their
    // loss-carrying tokens
    double n_loss = 0.0;
    for (int a = 0; a < s->accum; a++) {
        const int64_t cursor = (int64_t)t->data.cursor++;
        batch_stream_get(&s->stream, cursor, s->rows);
        s->Ts[a] = seqs_batch(&s->train, s->rows, Bs, t->tok.pad, s->x + a * cap,
                              s->y + a * cap, s->mask + a * cap);
        if (s->shift > 0) shift_rows(s, cursor, (uint64_t)t->run.cfg.train.seed, s->Ts[a],
                                     s->pos0 + a * s->B);
        for (int i = 0; i < Bs * s->Ts[a]; i++) n_loss += s->mask[a * cap + i];
        res->tokens += (double)Bs * s->Ts[a];
    }
    s->loss_token_frac = n_loss / res->tokens;
    const double share = (double)s->Bw / s->B;  // the windows' share of rows and loss
    for (int a = 0; a < s->accum; a++) {
        sft_loss_weights(s->w, s->mask + a * cap, Bs * s->Ts[a], n_loss, 1.0 - share);
        res->loss += lm_accumulate(trainer_model(t), s->x + a * cap, s->y + a * cap, s->w,
                                   s->shift > 0 ? s->pos0 + a * s->B : NULL, Bs, s->Ts[a]);
    }
    if (!s->ptx.on) return;
    // the windows as micro-batches of their own (they would pad the
    // examples' micro-batches to block_size): share / (accum Bw T) on every
    // window token makes them `share` times the mean over the step's windows
    const float w = (float)(share / ((double)s->accum * s->Bw * s->T));
    double ptx = 0.0;
    for (int a = 0; a < s->accum; a++) ptx += ptx_accumulate(&s->ptx, trainer_model(t), w);
    s->ptx_loss = ptx / s->accum;
    res->loss += share * s->ptx_loss;
    res->tokens += (double)s->accum * s->Bw * s->T;
}

static void log_step(Trainer *t, void *ctx, StepResult *res) {
    Sft *s = ctx;
    trainer_log_common(t, res);
    metrics_set(&t->run.metrics, "loss_token_frac", s->loss_token_frac);
    int n = snprintf(res->extra, sizeof res->extra, "loss tokens %.0f%%", 100 * s->loss_token_frac);
    if (s->ptx.on) {
        metrics_set(&t->run.metrics, "ptx_loss", s->ptx_loss);
        snprintf(res->extra + n, sizeof res->extra - n, " | ptx %.3f", s->ptx_loss);
    }
}

static void evaluate(Trainer *t, void *ctx, const StepResult *res, int last) {
    Sft *s = ctx;
    GPT *m = trainer_model(t);
    double tl = evaluate_sft_loss(m, &s->test, s->B, t->tok.pad);
    TasksTally tally;
    tasks_tally_init(&tally);
    evaluate_tasks(m, &t->tok, s->eval_prompts, s->eval_families, s->n_eval,
                   (int)t->run.cfg.sft.max_new_tokens, EVAL_TASK_BATCH, &tally, NULL, NULL);
    double acc = tasks_tally_accuracy(&tally, -1);
    metrics_set(&t->run.metrics, "test_loss", tl);
    metrics_set(&t->run.metrics, "accuracy", acc);
    tally_metrics(&t->run.metrics, "accuracy_", &tally);
    run_print(&t->run, "step %lld: train loss %.4f, test loss %.4f, task accuracy %.1f%% "
              "(%ld graded)", (long long)t->step + 1, res->loss, tl, 100 * acc,
              s->n_eval - tally.ungraded);
    if (last) tasks_tally_print(&tally, stdout);
}

static int save(Trainer *t, void *ctx, Ckpt *ck, int last) {
    Sft *s = ctx;
    (void)t;
    (void)last;
    if (ckpt_write_str(ck, "sft_data", s->data_desc) != 0) return -1;
    return ptx_save(&s->ptx, ck);
}

static void sft_free(void *ctx) {
    Sft *s = ctx;
    free(s->data_desc);
    free(s->x);
    free(s->y);
    free(s->mask);
    free(s->w);
    free(s->rows);
    free(s->Ts);
    free(s->pos0);
    if (s->lengths) batch_stream_free(&s->stream);
    free(s->lengths);
    free(s->eval_prompts);
    free(s->eval_families);
    ptx_free(&s->ptx);
    seqs_free(&s->train);
    seqs_free(&s->test);
    jsonl_free_sft(&s->train_set);
    jsonl_free_sft(&s->test_set);
}

int cmd_sft(int argc, char **argv) {
    static const Stage stage = {
        .name = "sft",
        .init_example = "checkpoints/pretrain/latest.h5",
        .setup = setup,
        .step = step,
        .log = log_step,
        .evaluate = evaluate,
        .save = save,
        .free = sft_free,
    };
    Sft s = {0};
    return trainer_main(&stage, &s, argc, argv);
}

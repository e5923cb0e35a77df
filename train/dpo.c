// rlhf dpo CONFIG [--resume] [--section.key=value ...]
// Direct preference optimisation: the policy starts from the SFT
// checkpoint.init and learns from preference pairs against a frozen
// reference, that same file, recorded as the run's parent (path + sha256)
// and reloaded from that record on --resume, whatever checkpoint.init names
// by then. The reference's log-probabilities of a training pair are
// computed once, in the first batch that holds the pair (in the shape the
// policy runs that batch in, so the first step's implicit rewards are 0),
// kept for later epochs and stored in each checkpoint (/state/dpo_ref_logp,
// NaN where not computed yet), so that a resumed run reuses them; the
// held-out pairs' at setup. dpo.loss = sigmoid (DPO; cDPO with
// dpo.label_smoothing) | ipo, plus dpo.rpo_alpha times the chosen answers'
// NLL per token (RPO). Held-out evaluation before the first step and every
// eval_interval steps: implicit-reward accuracy and margin on the test
// pairs, and greedy task accuracy on sft.test_file, so the first line is
// the SFT model's.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "common.h"
#include "evaluate.h"
#include "jsonl.h"
#include "objectives.h"
#include "seqs.h"
#include "trainer.h"

typedef struct {
    PrefSet train_set, test_set;
    SeqSet train, test;    // pair i: sequences 2i (chosen) and 2i+1 (rejected)
    GPT ref_model;         // the frozen reference
    int have_ref;
    double *ref_train;     // (train.n) the reference's log-probs, NaN until a batch needs one
    double *ref_test;      // (2 n_eval), at setup
    long n_eval;           // held-out pairs scored: the first dpo.eval_pairs that fit
    SftSet task_set;       // sft.test_file: task accuracy of greedy answers
    long n_tasks;
    const char **task_prompts, **task_families;
    BatchStream stream;    // batches of pairs of similar lengths
    int *lengths;
    DpoParams p;
    int B, accum;
    int *x, *y;            // (2B,T) rows: B chosen then B rejected
    unsigned char *mask;   // (2B,T) response tokens and their end-of-text
    long *rows, *pairs;    // (2B), (B)
    double *ref, *logp, *dlogp;  // (2B)
    DpoStats st;           // of the last step
} Dpo;

// A fresh run: the policy from checkpoint.init, recorded (path + sha256) as
// the parent, which is the reference.
static int init_models(Trainer *t, void *ctx) {
    (void)ctx;
    char path[4096];
    if (run_set_parent(&t->run, t->run.cfg.checkpoint.init) != 0 ||
        lineage_check(t->run.parent, "checkpoint.init", path, sizeof path) != 0 ||
        load_policy_file(path, trainer_model(t), &t->tok, "checkpoint.init") != 0)
        return -1;
    return 0;
}

// The reference, reloaded from the run's record; its log-probabilities of
// the held-out pairs evaluated (in the batches evaluate_dpo_pairs scores
// them in, so that a policy equal to the reference has implicit rewards of
// exactly 0 there); those of the training pairs from the checkpoint being
// resumed, NaN (not computed yet) for a fresh run.
static int load_reference(Trainer *t, Dpo *d, Ckpt *resume) {
    const GPT *policy = trainer_model(t);
    char path[4096];
    Tokenizer rtok = {0};
    if (lineage_check(t->run.parent, "the reference", path, sizeof path) != 0 ||
        load_policy_file(path, &d->ref_model, &rtok, "the reference") != 0)
        return -1;
    d->have_ref = 1;
    const uint64_t h = tokenizer_hash(&rtok);
    tokenizer_free(&rtok);
    if (h != tokenizer_hash(&t->tok) ||
        d->ref_model.config.vocab_size != policy->config.vocab_size ||
        d->ref_model.config.block_size != policy->config.block_size)
        return rlhf_fail("the reference %s has another tokenizer or context than the policy; "
                         "hint: resume with the checkpoint directory of this run", path);
    d->ref_train = mallocCheck((size_t)d->train.n * sizeof(double));
    for (long i = 0; i < d->train.n; i++) d->ref_train[i] = NAN;
    if (resume && ckpt_read_f64(resume, "dpo_ref_logp", d->ref_train, (size_t)d->train.n) != 0)
        return rlhf_fail("%s; hint: resume with the dpo.train_file this run started with "
                         "(%ld sequences now)", rlhf_errmsg, d->train.n);
    long known = 0;
    for (long i = 0; i < d->train.n; i++) known += !isnan(d->ref_train[i]);
    const double t0 = now_seconds();
    d->ref_test = mallocCheck((size_t)(2 * d->n_eval + 1) * sizeof(double));
    evaluate_seq_logprobs(&d->ref_model, &d->test, 2 * d->n_eval, 2 * d->B, t->tok.pad,
                          d->ref_test);
    printf("# reference %s: log-probs of the %ld held-out sequences in %.1f s; of the %ld "
           "training sequences as batches reach them (%ld known from the checkpoint)\n", path,
           2 * d->n_eval, now_seconds() - t0, d->train.n, known);
    return 0;
}

static int setup(Trainer *t, void *ctx, Ckpt *resume) {
    Dpo *d = ctx;
    const Config *cfg = &t->run.cfg;
    const int T = trainer_model(t)->config.block_size;
    d->B = (int)cfg->train.batch_size;
    d->accum = (int)cfg->train.grad_accum;
    d->p = dpo_params_from_config(cfg);
    if (!cfg->dpo.train_file[0] || !cfg->dpo.test_file[0])
        return rlhf_fail("dpo.%s is empty; hint: --dpo.%s=data/gen/tasks/pref_%s.jsonl "
                         "(preference JSONL, as 'rlhf tasks' writes)",
                         cfg->dpo.train_file[0] ? "test_file" : "train_file",
                         cfg->dpo.train_file[0] ? "test_file" : "train_file",
                         cfg->dpo.train_file[0] ? "test" : "train");
    long skipped, tskipped;
    if (jsonl_read_prefs(cfg->dpo.train_file, &d->train_set) != 0 ||
        jsonl_read_prefs(cfg->dpo.test_file, &d->test_set) != 0 ||
        seqs_from_prefs(&d->train_set, &t->tok, T, &d->train, &skipped) != 0 ||
        seqs_from_prefs(&d->test_set, &t->tok, T, &d->test, &tskipped) != 0)
        return -1;
    const long n_pairs = d->train.n / 2;
    d->n_eval = d->test.n / 2 < cfg->dpo.eval_pairs ? d->test.n / 2 : cfg->dpo.eval_pairs;
    if (cfg->sft.eval_examples > 0) {
        if (jsonl_read_sft(cfg->sft.test_file, &d->task_set) != 0)
            return rlhf_fail("sft.test_file (task prompts graded at each evaluation; "
                             "sft.eval_examples = 0 skips them): %s", rlhf_errmsg);
        d->n_tasks = d->task_set.n < cfg->sft.eval_examples ? d->task_set.n
                                                             : cfg->sft.eval_examples;
    }
    print_model_summary(trainer_model(t), &t->tok);
    printf("# dpo pairs: train %ld (%ld skipped as longer than %d tokens), test %ld (%ld "
           "skipped), evaluating on %ld; loss %s, beta %g, label_smoothing %g, rpo_alpha %g\n",
           n_pairs, skipped, T, d->test.n / 2, tskipped, d->n_eval, cfg->dpo.loss, d->p.beta,
           d->p.label_smoothing, d->p.rpo_alpha);
    fflush(stdout);
    if (load_reference(t, d, resume) != 0) return -1;
    fflush(stdout);

    const size_t room = (size_t)(d->n_tasks ? d->n_tasks : 1);
    d->task_prompts = mallocCheck(room * sizeof(char *));
    d->task_families = mallocCheck(room * sizeof(char *));
    for (long i = 0; i < d->n_tasks; i++) {
        d->task_prompts[i] = d->task_set.ex[i].turns[0].text;
        d->task_families[i] = d->task_set.ex[i].family;
    }
    const int B = d->B;
    d->x = mallocCheck((size_t)2 * B * T * sizeof(int));
    d->y = mallocCheck((size_t)2 * B * T * sizeof(int));
    d->mask = mallocCheck((size_t)2 * B * T);
    d->rows = mallocCheck((size_t)2 * B * sizeof(long));
    d->pairs = mallocCheck((size_t)B * sizeof(long));
    d->ref = mallocCheck((size_t)2 * B * sizeof(double));
    d->logp = mallocCheck((size_t)2 * B * sizeof(double));
    d->dlogp = mallocCheck((size_t)2 * B * sizeof(double));
    d->lengths = mallocCheck((size_t)n_pairs * sizeof(int));
    for (long i = 0; i < n_pairs; i++) {
        long a = seqs_len(&d->train, 2 * i), b = seqs_len(&d->train, 2 * i + 1);
        d->lengths[i] = (int)(a > b ? a : b);
    }
    batch_stream_init(&d->stream, n_pairs, d->lengths, B, 8, (uint64_t)cfg->train.seed);
    trainer_set_epoch(t, n_pairs, B, "pairs");
    return 0;  // the cursor in t->data and the reference's log-probs are all the state
}

static void step(Trainer *t, void *ctx, StepResult *res) {
    Dpo *d = ctx;
    const int B = d->B;
    memset(&d->st, 0, sizeof d->st);
    for (int a = 0; a < d->accum; a++) {
        batch_stream_get(&d->stream, (int64_t)t->data.cursor++, d->pairs);
        for (int i = 0; i < B; i++) {
            d->rows[i] = 2 * d->pairs[i];
            d->rows[B + i] = 2 * d->pairs[i] + 1;
        }
        for (int r = 0; r < 2 * B; r++) d->ref[r] = d->ref_train[d->rows[r]];
        const int Tb = seqs_batch(&d->train, d->rows, 2 * B, t->tok.pad, d->x, d->y, d->mask);
        if (dpo_reference(&d->ref_model, d->x, d->y, d->mask, B, Tb, d->ref) > 0)
            for (int r = 0; r < 2 * B; r++) d->ref_train[d->rows[r]] = d->ref[r];
        res->loss += dpo_accumulate(trainer_model(t), d->x, d->y, d->mask, B, Tb, d->ref, &d->p,
                                    d->accum, d->logp, d->dlogp, &d->st) / d->accum;
        res->tokens += 2.0 * B * Tb;
    }
}

static int save(Trainer *t, void *ctx, Ckpt *ck, int last) {
    (void)t, (void)last;
    Dpo *d = ctx;
    return ckpt_write_f64(ck, "dpo_ref_logp", d->ref_train, (size_t)d->train.n);
}

static void log_step(Trainer *t, void *ctx, StepResult *res) {
    Dpo *d = ctx;
    trainer_log_common(t, res);
    dpo_metrics(&t->run.metrics, "", &d->st);
    snprintf(res->extra, sizeof res->extra, "acc %.0f%% margin %.3f",
             100 * d->st.correct / d->st.pairs,
             (d->st.reward_chosen - d->st.reward_rejected) / d->st.pairs);
}

// The held-out pairs (eval_loss, eval_rewards/..., eval_logps/...) and
// greedy task accuracy (eval_accuracy, eval_accuracy_<family>).
static void evaluate(Trainer *t, void *ctx, const StepResult *res, int last) {
    Dpo *d = ctx;
    GPT *m = trainer_model(t);
    Metrics *mt = &t->run.metrics;
    DpoStats es;
    evaluate_dpo_pairs(m, &d->test, d->n_eval, d->ref_test, &d->p, 2 * d->B, t->tok.pad, &es);
    metrics_set(mt, "eval_loss", es.loss / es.pairs);
    dpo_metrics(mt, "eval_", &es);
    TasksTally tally;
    tasks_tally_init(&tally);
    double acc = 0.0;
    if (d->n_tasks > 0) {
        evaluate_tasks(m, &t->tok, d->task_prompts, d->task_families, d->n_tasks,
                       (int)t->run.cfg.sft.max_new_tokens, EVAL_TASK_BATCH, &tally, NULL, NULL);
        acc = tasks_tally_accuracy(&tally, -1);
        metrics_set(mt, "eval_accuracy", acc);
        tally_metrics(mt, "eval_accuracy_", &tally);
    }
    char when[96];
    if (res) snprintf(when, sizeof when, "step %lld: train loss %.4f,", (long long)t->step + 1,
                      res->loss);
    else snprintf(when, sizeof when, "before DPO (step 0, the SFT model):");
    char tasks[96] = "";
    if (d->n_tasks > 0)
        snprintf(tasks, sizeof tasks, " | task accuracy %.1f%% (%ld graded)", 100 * acc,
                 d->n_tasks - tally.ungraded);
    run_print(&t->run, "%s held-out pairs loss %.4f, reward accuracy %.1f%%, margin %.4f "
              "(chosen %.4f, rejected %.4f)%s", when, es.loss / es.pairs,
              100 * es.correct / es.pairs, (es.reward_chosen - es.reward_rejected) / es.pairs,
              es.reward_chosen / es.pairs, es.reward_rejected / es.pairs, tasks);
    if (last && d->n_tasks > 0) tasks_tally_print(&tally, stdout);
}

static void dpo_free(void *ctx) {
    Dpo *d = ctx;
    free(d->x);
    free(d->y);
    free(d->mask);
    free(d->rows);
    free(d->pairs);
    free(d->ref);
    free(d->logp);
    free(d->dlogp);
    if (d->lengths) batch_stream_free(&d->stream);
    free(d->lengths);
    free(d->ref_train);
    free(d->ref_test);
    if (d->have_ref) gpt_free(&d->ref_model);
    free(d->task_prompts);
    free(d->task_families);
    seqs_free(&d->train);
    seqs_free(&d->test);
    jsonl_free_prefs(&d->train_set);
    jsonl_free_prefs(&d->test_set);
    jsonl_free_sft(&d->task_set);
}

int cmd_dpo(int argc, char **argv) {
    static const Stage stage = {
        .name = "dpo",
        .init_example = "checkpoints/sft/latest.h5",
        .eval_at_start = 1,
        .init_models = init_models,
        .setup = setup,
        .step = step,
        .log = log_step,
        .evaluate = evaluate,
        .save = save,
        .free = dpo_free,
    };
    Dpo d;
    memset(&d, 0, sizeof d);
    return trainer_main(&stage, &d, argc, argv);
}

// The one training loop behind every stage; see trainer.h. What a run does
// with files, schedules, updates and metrics lives here once; what a stage
// computes lives in its Stage callbacks.
#include "trainer.h"

#include <math.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "common.h"
#include "dist.h"

// The threads a run used, stored so that a resume can say when it differs.
static int64_t thread_count(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static void build_optimizer(Trainer *t, int i) {
    const Config *cfg = &t->run.cfg;
    adamw_build(&t->trained[i].opt, t->trained[i].model.num_params, (float)cfg->optim.beta1,
                (float)cfg->optim.beta2, (float)cfg->optim.eps, (float)cfg->optim.weight_decay);
}

// A fresh single-model run: checkpoint.init when set (shape and tokenizer
// from the file, lineage recorded), else a GPT-2 init of the [model] shape
// with the tokenizer of data.dir/tokenizer.h5.
static int init_first_model(Trainer *t) {
    Run *r = &t->run;
    const Config *cfg = &r->cfg;
    GPT *m = trainer_model(t);
    const int value_head = t->stage->value_head;
    if (cfg->checkpoint.init[0]) {
        // a language model starts from a language model, never a reward model's trunk
        const char *init = cfg->checkpoint.init;
        int rc = value_head ? load_model_file(init, m, 1, &t->tok, NULL)
                            : load_policy_file(init, m, &t->tok, "checkpoint.init");
        if (rc != 0) return -1;
        if (run_set_parent(r, cfg->checkpoint.init) != 0) return -1;
        const GPTConfig *c = &m->config;
        if (c->n_layer != cfg->model.n_layer || c->n_head != cfg->model.n_head ||
            c->n_embd != cfg->model.n_embd || c->block_size != cfg->model.block_size)
            printf("# note: [model] comes from %s (L=%d H=%d C=%d T=%d), not the config\n",
                   cfg->checkpoint.init, c->n_layer, c->n_head, c->n_embd, c->block_size);
        return 0;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.h5", cfg->data.dir);
    if (load_tokenizer_file(path, &t->tok) != 0)
        return rlhf_fail("%s (run 'rlhf prepare' with this config first)", rlhf_errmsg);
    GPTConfig c = {.n_layer = (int)cfg->model.n_layer, .n_head = (int)cfg->model.n_head,
                   .n_embd = (int)cfg->model.n_embd, .block_size = (int)cfg->model.block_size,
                   .vocab_size = t->tok.vocab_size, .value_head = value_head};
    gpt_build(m, &c);
    gpt_init_weights(m, (unsigned long long)cfg->train.seed);
    return 0;
}

static int start_fresh(Trainer *t) {
    const Stage *s = t->stage;
    if (s->init_example && !t->run.cfg.checkpoint.init[0])
        return rlhf_fail("%s starts from a checkpoint, but checkpoint.init is empty; hint: "
                         "--checkpoint.init=%s", s->name, s->init_example);
    if (s->init_models ? s->init_models(t, t->ctx) : init_first_model(t)) return -1;
    for (int i = 0; i < t->n_trained; i++) build_optimizer(t, i);
    t->step = 0;
    memset(&t->data, 0, sizeof t->data);
    return 0;
}

// A resumed run keeps its model's shape: a [model] key that the command line
// sets, or that the config decides (a run built from [model], not from
// checkpoint.init), must agree with the stored model.
static int resume_shape_check(const Trainer *t, const GPTConfig *c, const char *path) {
    const Config *cfg = &t->run.cfg;
    const int from_config = !t->stage->init_example && !cfg->checkpoint.init[0];
    const struct {
        const char *key;
        int64_t want;
        int have;
    } keys[] = {{"model.n_layer", cfg->model.n_layer, c->n_layer},
                {"model.n_head", cfg->model.n_head, c->n_head},
                {"model.n_embd", cfg->model.n_embd, c->n_embd},
                {"model.block_size", cfg->model.block_size, c->block_size}};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        if (keys[k].want == keys[k].have) continue;
        const int given = run_overridden(&t->run, keys[k].key);
        if (!given && !from_config) continue;
        return rlhf_fail("cannot resume: %s = %lld %s, but the run's model in %s has %d; hint: "
                         "a run keeps its model's shape: %s, or start a new run in another "
                         "checkpoint.dir", keys[k].key, (long long)keys[k].want,
                         given ? "on the command line" : "in the config", path, keys[k].have,
                         given ? "drop the override" : "restore the config's value");
    }
    return 0;
}

// Everything of DIR/latest.h5 that an exact resume needs: every trained
// model and its AdamW state, the tokenizer, step, data state, metrics and
// lineage. Leaves the checkpoint open in *ck for the stage's own state.
static int start_resumed(Trainer *t, Ckpt **ck_out) {
    Run *r = &t->run;
    CkptMeta meta = {0};
    char *path;
    Ckpt *ck = run_open_resume(r, &meta, &path);
    int rc = ck ? 0 : -1;
    // a model the run trained that this config would drop (or lacks, below)
    for (int i = t->n_trained; rc == 0 && i < TRAINER_MAX_MODELS; i++)
        if (t->stage->prefix[i] && ckpt_has_model(ck, t->stage->prefix[i]))
            rc = rlhf_fail("%s trains a /%s, but this config does not; hint: resume with the "
                           "settings the run started with", path, t->stage->prefix[i]);
    for (int i = 0; rc == 0 && i < t->n_trained; i++) {
        TrainedModel *tm = &t->trained[i];
        GPTConfig c;
        if (tm->prefix[0] && !ckpt_has_model(ck, tm->prefix)) {
            rc = rlhf_fail("%s has no /%s to resume, but this config trains one; hint: resume "
                           "with the settings the run started with", path, tm->prefix);
            break;
        }
        rc = ckpt_read_model_config(ck, tm->prefix, &c);
        if (rc != 0) break;
        if (i == 0 && (rc = resume_shape_check(t, &c, path)) != 0) break;
        gpt_build(&tm->model, &c);
        build_optimizer(t, i);
        rc = ckpt_read_model(ck, tm->prefix, &tm->model, 0);
        if (rc == 0) rc = ckpt_read_optimizer(ck, tm->prefix, &tm->opt, &tm->model);
    }
    if (rc == 0) rc = ckpt_read_tokenizer(ck, &t->tok);
    if (rc == 0) rc = ckpt_read_data_state(ck, &t->data);
    if (rc == 0) rc = ckpt_read_metrics(ck, &r->metrics);
    if (rc == 0) run_adopt_resume(r, &meta, path, &t->step);
    ckpt_meta_free(&meta);
    free(path);
    if (rc != 0 && ck) {
        ckpt_close(ck);
        ck = NULL;
    }
    *ck_out = ck;
    return rc;
}

// DIR/step_NNNNNN.h5 after `step` steps: the trainer's state, then the
// stage's own.
static int save(Trainer *t, int64_t step, int last) {
    Run *r = &t->run;
    Ckpt *ck = run_ckpt_begin(r, step);
    if (!ck) return -1;
    const int64_t threads = thread_count(), world = dist_size();
    int rc = 0;
    for (int i = 0; rc == 0 && i < t->n_trained; i++) {
        const TrainedModel *tm = &t->trained[i];
        rc = ckpt_write_model(ck, tm->prefix, &tm->model) ||
             ckpt_write_optimizer(ck, tm->prefix, &tm->opt, &tm->model) ? -1 : 0;
    }
    if (rc == 0)
        rc = ckpt_write_tokenizer(ck, &t->tok) || ckpt_write_data_state(ck, &t->data) ||
             ckpt_write_i64(ck, "threads", &threads, 1) ||
             ckpt_write_i64(ck, "world_size", &world, 1) ? -1 : 0;
    if (rc == 0 && t->stage->save) rc = t->stage->save(t, t->ctx, ck, last);
    if (rc != 0) {
        ckpt_abort(ck);
        return -1;
    }
    return run_ckpt_end(r, ck, step);
}

float trainer_model_lr(const Trainer *t, int i) {
    const TrainedModel *tm = &t->trained[i];
    if (tm->peak_lr <= 0) return t->lr;
    return t->lr * tm->peak_lr / (float)t->run.cfg.optim.lr;
}

float trainer_update(Trainer *t) {
    const float max_norm = (float)t->run.cfg.optim.grad_clip;
    float first = 0.0f;
    for (int i = 0; i < t->n_trained; i++) {
        GPT *m = &t->trained[i].model;
        // every rank holds the gradient of its share of the batch: the sum,
        // the same bits everywhere, makes every rank's update the same
        dist_sum_f32(m->train->grads_memory, m->num_params);
        float norm = grad_clip(m, max_norm);
        if (i == 0) first = norm;
        adamw_step(&t->trained[i].opt, m, trainer_model_lr(t, i));
        gpt_zero_grad(m);
    }
    return first;
}

void trainer_log_common(Trainer *t, const StepResult *res) {
    run_log_step(&t->run, t->step + 1, res->loss, t->lr, res->grad_norm,
                 res->tokens / res->seconds);
}

void trainer_set_epoch(Trainer *t, int64_t items, int64_t per_micro_batch, const char *name) {
    ASSERT(items > 0 && per_micro_batch > 0 && name);
    t->epoch_items = items;
    t->micro_items = per_micro_batch;
    t->item_name = name;
}

// train.epochs > 0: max_steps from the size of the training set, before the
// run's config is recorded (so checkpoints and metrics carry the steps run)
static int apply_epochs(Trainer *t) {
    Config *cfg = &t->run.cfg;
    if (cfg->train.epochs <= 0) return 0;
    if (t->epoch_items <= 0)
        return rlhf_fail("train.epochs = %g: rlhf %s has no fixed list of training items to pass "
                         "over; hint: give train.max_steps instead (and train.epochs = 0)",
                         cfg->train.epochs, t->stage->name);
    const double per_step = (double)t->micro_items * (double)cfg->train.grad_accum;
    const double steps = ceil(cfg->train.epochs * (double)t->epoch_items / per_step);
    if (steps > 1e12)
        return rlhf_fail("train.epochs = %g gives %.3g steps; hint: choose fewer epochs",
                         cfg->train.epochs, steps);
    cfg->train.max_steps = steps < 1 ? 1 : (int64_t)steps;
    if (dist_is_root()) {
        printf("# train.epochs = %g: %lld steps of %lld %s (%lld in the training set)\n",
               cfg->train.epochs, (long long)cfg->train.max_steps, (long long)per_step,
               t->item_name, (long long)t->epoch_items);
        fflush(stdout);
    }
    return 0;
}

static void trainer_free(Trainer *t) {
    if (t->stage->free) t->stage->free(t->ctx);
    for (int i = 0; i < t->n_trained; i++) {
        gpt_free(&t->trained[i].model);
        adamw_free(&t->trained[i].opt);
    }
    tokenizer_free(&t->tok);
    run_free(&t->run);
}

int trainer_main(const Stage *stage, void *ctx, int argc, char **argv) {
    Trainer t;
    memset(&t, 0, sizeof t);
    t.stage = stage;
    t.ctx = ctx;
    if (run_init(&t.run, stage->name, argc, argv) != 0) die_last();
    Run *r = &t.run;
    const Config *cfg = &r->cfg;
    const int most = stage->n_trained > 0 ? stage->n_trained : 1;
    t.n_trained = stage->count_trained ? stage->count_trained(cfg) : most;
    ASSERT(t.n_trained >= 1 && t.n_trained <= most && most <= TRAINER_MAX_MODELS);
    for (int i = 0; i < t.n_trained; i++) t.trained[i].prefix = stage->prefix[i] ? stage->prefix[i] : "";

    // rank 0 alone owns the run directory (lock, checkpoints, metrics.csv)
    if (dist_is_root() && run_lock(r) != 0) die_last();
    Ckpt *resume = NULL;
    if ((r->resume ? start_resumed(&t, &resume) : start_fresh(&t)) != 0) die_last();
    run_adopt_model(r, &trainer_model(&t)->config);
    for (int i = 0; i < t.n_trained; i++) gpt_train_build(&t.trained[i].model);
    int rc = stage->setup ? stage->setup(&t, ctx, resume) : 0;
    if (resume) ckpt_close(resume);
    if (rc != 0 || apply_epochs(&t) != 0) die_last();
    if (t.step > cfg->train.max_steps)
        die("cannot resume: the run is at step %lld, past train.max_steps = %lld; hint: give "
            "a train.max_steps (or train.epochs) that goes past step %lld", (long long)t.step,
            (long long)cfg->train.max_steps, (long long)t.step);
    if (run_begin(r, t.step) != 0) die_last();
    size_t saved_rows = r->metrics.nrows;  // metrics rows in the newest checkpoint

    const int64_t max_steps = cfg->train.max_steps;
    if (stage->eval_at_start && t.step == 0 && stage->evaluate) {
        metrics_set(&r->metrics, "step", 0);
        stage->evaluate(&t, ctx, NULL, 0);
        metrics_commit(&r->metrics);
    }
    for (; t.step < max_steps; t.step++) {
        const double t0 = now_seconds();
        t.lr = lr_schedule(t.step, cfg->optim.warmup_steps, max_steps, (float)cfg->optim.lr,
                           (float)cfg->optim.min_lr);
        StepResult res = {0};
        stage->step(&t, ctx, &res);
        if (!isfinite(res.loss))
            die("loss is %f at step %lld; nothing was saved past the last checkpoint; hint: "
                "lower optim.lr (or optim.grad_clip)", res.loss, (long long)t.step + 1);
        if (!res.updated) res.grad_norm = trainer_update(&t);
        res.seconds = now_seconds() - t0;

        const StepPlan plan = run_step_plan(r, t.step);
        if (plan.log) {
            metrics_set(&r->metrics, "step", (double)(t.step + 1));
            if (stage->log) stage->log(&t, ctx, &res);
            else trainer_log_common(&t, &res);
        }
        if (plan.eval && stage->evaluate) stage->evaluate(&t, ctx, &res, plan.last);
        if (plan.log) {
            metrics_commit(&r->metrics);
            run_progress(r, t.step, max_steps, res.loss, t.lr, res.tokens / res.seconds,
                         res.extra[0] ? res.extra : NULL);
        }
        if (plan.save && dist_is_root()) {
            if (save(&t, t.step + 1, plan.last) != 0) {
                // metrics.csv goes back to latest.h5's rows (it must not run ahead)
                char why[sizeof rlhf_errmsg];
                snprintf(why, sizeof why, "%s", rlhf_errmsg);
                if (metrics_keep_rows(&r->metrics, saved_rows) != 0)
                    fprintf(stderr, "rlhf: warning: %s\n", rlhf_errmsg);
                die("%s", why);
            }
            saved_rows = r->metrics.nrows;
        }
    }
    run_print(r, "done: %lld steps, %.1f s; checkpoints in %s", (long long)max_steps,
              now_seconds() - r->t_start, cfg->checkpoint.dir);
    const int64_t steps = max_steps - r->start_step;
    if (dist_size() > 1 && steps > 0)
        printf("# mpi: %d ranks; float sums (gradients; PPO: also rollout scores) sent %.3f MB "
               "per rank per step and took %.2f s of rank 0's %.1f s\n", dist_size(),
               dist_bytes_sent() / 1e6 / (double)steps, dist_seconds(), now_seconds() - r->t_start);
    trainer_free(&t);
    return 0;
}

// rlhf ppo CONFIG [--resume] [--section.key=value ...]
// RLHF with PPO and the group methods. Trained: the policy (from the SFT
// checkpoint.init) and, with GAE advantages only, a critic (from
// ppo.reward_model, or from the SFT model with a zero value head when there
// is none); frozen: a reference copy of the SFT model (unless kl_coef is 0)
// and the reward model (unless ppo.reward = grader and none is given).
// Each step samples one rollout batch (group_size responses per prompt),
// scores it, and runs ppo_epochs passes of minibatch updates. Held-out
// evaluation (greedy and sampled task accuracy, reward-model reward, KL to
// the reference, pass@1 and pass@group_size) before the first step and
// every eval_interval steps. A resumed run reloads exactly the reference
// and reward model it recorded (checked by sha256), whatever the config
// names now. With ppo.ptx_coef (PPO-ptx), every update also adds ptx_coef
// times the gradient of the mean next-token loss of ppo.ptx_batch windows
// of the pretraining shard (ptx.h).
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "common.h"
#include "dist.h"
#include "jsonl.h"
#include "ptx.h"
#include "rollouts.h"
#include "trainer.h"

typedef struct {
    GPT ref, rm;                 // frozen, when has_ref / has_rm
    int has_ref, has_rm;
    double reward_norm[2];       // {0, 1} without a reward model
    char *rm_record;             // "PATH sha256:HEX" of the reward model (NULL: none)
    KLController kl;
    double kl_coef_used;         // by the last step
    PromptSet train_set, test_set;
    EncodedPrompts train, test;
    long n_eval;
    Rollouts r;
    PPOStats st;                 // of the last step's updates
    Ptx ptx;                     // PPO-ptx windows (off when ptx_coef = 0)
    double ptx_loss;             // the last step's mean over its updates
} Ppo;

// The critic learns values for GAE; the group methods compare the
// responses to one prompt instead and train the policy alone.
static int count_trained(const Config *cfg) { return strcmp(cfg->ppo.advantage, "gae") ? 1 : 2; }

// ppo.reward = model or model+grader: the reward model is required.
static int reward_needs_model(const Config *cfg) { return strcmp(cfg->ppo.reward, "grader") != 0; }

// A fresh run: policy from checkpoint.init, the critic (GAE) from
// ppo.reward_model or, without one, from the SFT model with a zero value
// head; the files recorded by resolved path and sha256.
static int init_models(Trainer *t, void *ctx) {
    Ppo *p = ctx;
    const Config *cfg = &t->run.cfg;
    if (!cfg->ppo.reward_model[0] && reward_needs_model(cfg))
        return rlhf_fail("ppo.reward_model is empty; hint: "
                         "--ppo.reward_model=checkpoints/reward/latest.h5 (or --ppo.reward=grader)");
    char ref_path[4096], rm_path[4096] = "";
    if (run_set_parent(&t->run, cfg->checkpoint.init) != 0 ||
        (cfg->ppo.reward_model[0] && !(p->rm_record = lineage_record(cfg->ppo.reward_model))) ||
        lineage_check(t->run.parent, "the SFT model", ref_path, sizeof ref_path) != 0 ||
        (p->rm_record &&
         lineage_check(p->rm_record, "the reward model", rm_path, sizeof rm_path) != 0) ||
        load_policy_file(ref_path, &t->trained[0].model, &t->tok, "checkpoint.init") != 0)
        return -1;
    if (t->n_trained > 1 &&
        load_model_file(rm_path[0] ? rm_path : ref_path, &t->trained[1].model, 1, NULL, NULL) != 0)
        return -1;
    return 0;
}

// The frozen models and the data, on a fresh or a resumed run.
static int setup(Trainer *t, void *ctx, Ckpt *resume) {
    Ppo *p = ctx;
    const Config *cfg = &t->run.cfg;
    const GPT *policy = trainer_model(t);
    const int T = policy->config.block_size;
    p->kl = (KLController){cfg->ppo.kl_coef, cfg->ppo.kl_target, (double)cfg->ppo.kl_horizon};
    // a resumed run has the reward model it recorded, if any
    if (resume && ((ckpt_has_state(resume, "reward_model") &&
                    ckpt_read_str(resume, "reward_model", &p->rm_record) != 0) ||
                   ckpt_read_f64(resume, "kl_coef", &p->kl.coef, 1) != 0))
        return -1;
    if (!p->rm_record && reward_needs_model(cfg))
        return rlhf_fail("ppo.reward = %s needs a reward model, and this run has none; hint: "
                         "resume with --ppo.reward=grader", cfg->ppo.reward);
    p->has_rm = p->rm_record != NULL;
    p->has_ref = p->kl.coef > 0;  // no KL penalty: no reference at all
    char ref_path[4096], rm_path[4096];
    int has_norm;
    if (p->has_ref && (lineage_check(t->run.parent, "the SFT model", ref_path, sizeof ref_path) != 0 ||
                       load_model_file(ref_path, &p->ref, 0, NULL, NULL) != 0))
        return -1;
    p->reward_norm[0] = 0.0;
    p->reward_norm[1] = 1.0;
    if (p->has_rm) {
        if (lineage_check(p->rm_record, "the reward model", rm_path, sizeof rm_path) != 0 ||
            load_reward_model(rm_path, &t->tok, T, &p->rm, p->reward_norm, &has_norm) != 0)
            return -1;
        if (!has_norm)
            return rlhf_fail("ppo.reward_model %s has no /state/reward_norm; hint: give a "
                             "checkpoint written by 'rlhf reward'", rm_path);
    }
    if (t->n_trained > 1)
        t->trained[1].peak_lr = cfg->ppo.critic_lr > 0 ? (float)cfg->ppo.critic_lr
                                                       : (float)cfg->optim.lr;
    PPOParams pp = ppo_params_from_config(cfg, p->reward_norm);
    if (cfg->ppo.kl_in_loss) pp.kl_loss_coef = (float)p->kl.coef;  // the coefficient resumed
    if (pp.max_new >= T)
        return rlhf_fail("ppo.max_new_tokens=%d must be below the context %d; hint: lower it",
                         pp.max_new, T);
    // a fresh run never writes into another run's dump; a resumed one
    // continues its own (rollout_dump_append drops the batches it redoes)
    if (cfg->ppo.dump_rollouts[0] && !resume && access(cfg->ppo.dump_rollouts, F_OK) == 0)
        return rlhf_fail("ppo.dump_rollouts: '%s' already exists; hint: move it away, choose "
                         "another file, or pass --resume to continue the run that wrote it",
                         cfg->ppo.dump_rollouts);
    if (jsonl_read_prompts(cfg->ppo.prompts_file, &p->train_set) != 0 ||
        jsonl_read_prompts(cfg->ppo.test_file, &p->test_set) != 0 ||
        prompts_encode(&p->train_set, &t->tok, T, pp.max_new, "ppo.max_new_tokens", 0,
                       &p->train) != 0 ||
        prompts_encode(&p->test_set, &t->tok, T, pp.max_new, "ppo.max_new_tokens", 0,
                       &p->test) != 0 ||
        ptx_setup(&p->ptx, cfg->ppo.ptx_coef > 0, cfg, &t->tok, (int)cfg->ppo.ptx_batch, T,
                  "ppo.ptx_coef", resume) != 0)
        return -1;
    p->n_eval = p->test.n < cfg->ppo.eval_prompts ? p->test.n : cfg->ppo.eval_prompts;
    print_model_summary(policy, &t->tok);
    printf("# ppo prompts: train %ld (%ld skipped as too long), test %ld (%ld skipped), "
           "evaluating on %ld; reward normalisation mean %.4f std %.4f\n", p->train.n,
           p->train.skipped, p->test.n, p->test.skipped, p->n_eval, pp.reward_mean, pp.reward_std);
    printf("# ppo: advantage %s, reward %s, %lld response(s) per prompt, %lld per batch; "
           "critic %s; reference %s; KL %s\n", cfg->ppo.advantage, cfg->ppo.reward,
           (long long)cfg->ppo.group_size, (long long)cfg->ppo.rollout_batch,
           t->n_trained > 1 ? "trained" : "none", p->has_ref ? "loaded" : "none (kl_coef = 0)",
           !p->has_ref ? "none" : cfg->ppo.kl_in_loss ? "k3 in the loss" : "k1 in the reward");
    if (p->ptx.on)
        printf("# ppo-ptx: each update adds %g x the LM gradient of %lld windows of %d tokens "
               "from %s (%zu tokens)\n", cfg->ppo.ptx_coef, (long long)cfg->ppo.ptx_batch, T,
               p->ptx.record, p->ptx.n);
    fflush(stdout);

    rollouts_build(&p->r, cfg, &pp, &p->train, &policy->config, &t->tok);
    if (resume) memcpy(p->r.rng.s, t->data.rng, sizeof p->r.rng.s);
    return 0;
}

// Rollouts of one batch of prompts, scored; then ppo_epochs passes of
// clipped minibatch updates.
static void step(Trainer *t, void *ctx, StepResult *res) {
    Ppo *p = ctx;
    const Config *cfg = &t->run.cfg;
    GPT *policy = trainer_model(t), *critic = t->n_trained > 1 ? &t->trained[1].model : NULL;
    Rollouts *r = &p->r;
    // the KL penalty goes into the reward unless it is in the loss
    const float reward_kl = cfg->ppo.kl_in_loss ? 0.0f : (float)p->kl.coef;
    rollouts_collect(r, &t->data.cursor, policy, p->has_ref ? &p->ref : NULL, critic,
                     p->has_rm ? &p->rm : NULL, reward_kl, &t->tok);
    memset(&p->st, 0, sizeof p->st);
    // PPO-ptx: ptx_coef / (ptx_batch T) on every window token makes the
    // added gradient exactly ptx_coef times that of their mean loss
    const float ptx_w = p->ptx.on ? (float)(cfg->ppo.ptx_coef /
                                            ((double)cfg->ppo.ptx_batch * policy->config.block_size))
                                  : 0.0f;
    double ptx_sum = 0.0;
    int updates = 0;
    for (int e = 0; e < cfg->ppo.ppo_epochs; e++) {
        if (e > 0) rollouts_shuffle(r);
        for (int i0 = 0; i0 < r->P; i0 += r->mb)
            if (ppo_minibatch_grads(&r->ro, r->order + i0, r->mb, &r->pp, policy, critic, &p->st)) {
                if (p->ptx.on) ptx_sum += ptx_accumulate(&p->ptx, policy, ptx_w);
                updates++;
                trainer_update(t);
            }
    }
    p->ptx_loss = updates ? ptx_sum / updates : NAN;
    res->updated = 1;
    res->loss = isfinite(p->st.value_loss) ? p->st.policy_loss / p->st.tokens : NAN;
    res->tokens = r->stats.tokens * cfg->ppo.ppo_epochs;
    p->kl_coef_used = p->kl.coef;
    if (cfg->ppo.adaptive_kl) kl_controller_update(&p->kl, r->stats.kl_k1, r->P);
    memcpy(t->data.rng, r->rng.s, sizeof t->data.rng);
    if (cfg->ppo.dump_rollouts[0] && dist_is_root() &&
        rollout_dump(cfg->ppo.dump_rollouts, t->step + 1, &r->ro) != 0)
        die_last();
}

// Every step's metrics: the rollouts, then the updates (means over tokens).
static void log_step(Trainer *t, void *ctx, StepResult *res) {
    Ppo *p = ctx;
    Metrics *mt = &t->run.metrics;
    const Rollouts *r = &p->r;
    rollouts_metrics(r, p->kl_coef_used, &p->st, mt);
    metrics_set(mt, "lr", t->lr);
    metrics_set(mt, "time_s", now_seconds() - t->run.t_start);
    metrics_set(mt, "generate_s", r->generate_s);
    if (p->ptx.on) metrics_set(mt, "ptx_loss", p->ptx_loss);
    // the reward model's raw reward when there is one, else the score
    int n = snprintf(res->extra, sizeof res->extra, "reward %.3f | kl %.3f | acc %.0f%% | "
                     "len %.1f | clip %.2f", p->has_rm ? r->stats.reward_raw : r->stats.reward,
                     p->has_ref ? r->stats.kl_k1 : 0.0,
                     isnan(r->accuracy) ? 0.0 : 100 * r->accuracy, r->stats.length,
                     p->st.clipfrac / p->st.tokens);
    if (p->ptx.on)
        snprintf(res->extra + n, sizeof res->extra - n, " | ptx %.3f", p->ptx_loss);
}

// Greedy answers graded and scored by the reward model (eval_reward
// normalised, eval_reward_raw not); sampled answers graded, scored and
// compared with the reference (KL); with groups, group_size answers
// sampled per prompt, graded (pass@1, pass@group_size). Without a reward
// model or reference, what it would measure is left out.
static void evaluate(Trainer *t, void *ctx, const StepResult *res, int last) {
    Ppo *p = ctx;
    Metrics *mt = &t->run.metrics;
    const Config *cfg = &t->run.cfg;
    const uint64_t seed = eval_seed(cfg->train.seed);
    EvalPolicyResult e;
    TasksTally tally;
    evaluate_policy(trainer_model(t), p->has_ref ? &p->ref : NULL, p->has_rm ? &p->rm : NULL,
                    &t->tok, &p->test, p->n_eval, &p->r.pp.sampling, p->r.pp.max_new, p->r.P,
                    seed, p->reward_norm, &e, &tally);
    evaluate_policy_metrics(mt, &e, &tally);
    char when[64];
    if (res) snprintf(when, sizeof when, "step %lld", (long long)t->step + 1);
    else snprintf(when, sizeof when, "before PPO (step 0)");
    char line[512];
    int n = snprintf(line, sizeof line, "%s: held-out greedy accuracy %.1f%%", when,
                     100 * e.accuracy);
    if (p->has_rm) n += snprintf(line + n, sizeof line - n, " reward %.3f", e.reward);
    if (p->has_ref) {
        n += snprintf(line + n, sizeof line - n, " | sampled accuracy %.1f%%",
                      100 * e.sample_accuracy);
        if (p->has_rm) n += snprintf(line + n, sizeof line - n, " reward %.3f", e.sample_reward);
        n += snprintf(line + n, sizeof line - n, " | KL k1 %.3f k3 %.3f, length %.1f", e.kl_k1,
                      e.kl_k3, e.length);
    }
    if (p->r.G > 1) {
        PassAtK pk;
        evaluate_pass_at_k(trainer_model(t), &t->tok, &p->test, p->n_eval, p->r.G,
                           &p->r.pp.sampling, p->r.pp.max_new, p->r.P, seed, &pk);
        metrics_set(mt, "eval_pass_at_1", pk.pass_1);
        metrics_set(mt, "eval_pass_at_g", pk.pass_k);
        snprintf(line + n, sizeof line - n, " | pass@1 %.1f%% pass@%d %.1f%% (%ld prompts)",
                 100 * pk.pass_1, p->r.G, 100 * pk.pass_k, pk.graded);
    }
    run_print(&t->run, "%s", line);
    if (last) tasks_tally_print(&tally, stdout);
}

static int save(Trainer *t, void *ctx, Ckpt *ck, int last) {
    Ppo *p = ctx;
    if (ckpt_write_f64(ck, "kl_coef", &p->kl.coef, 1) != 0 || ptx_save(&p->ptx, ck) != 0)
        return -1;
    if (!p->has_rm) return 0;
    return ckpt_write_f64(ck, "reward_norm", p->reward_norm, 2) != 0 ||
           ckpt_write_str(ck, "reward_model", p->rm_record) != 0 ? -1 : 0;
}

static void ppo_free(void *ctx) {
    Ppo *p = ctx;
    rollouts_free(&p->r);
    prompts_free(&p->train);
    prompts_free(&p->test);
    jsonl_free_prompts(&p->train_set);
    jsonl_free_prompts(&p->test_set);
    gpt_free(&p->ref);
    gpt_free(&p->rm);
    free(p->rm_record);
    ptx_free(&p->ptx);
}

int cmd_ppo(int argc, char **argv) {
    static const Stage stage = {
        .name = "ppo",
        .init_example = "checkpoints/sft/latest.h5",
        .n_trained = 2,
        .prefix = {"", "critic"},
        .count_trained = count_trained,
        .eval_at_start = 1,
        .init_models = init_models,
        .setup = setup,
        .step = step,
        .log = log_step,
        .evaluate = evaluate,
        .save = save,
        .free = ppo_free,
    };
    Ppo p;
    memset(&p, 0, sizeof p);
    return trainer_main(&stage, &p, argc, argv);
}

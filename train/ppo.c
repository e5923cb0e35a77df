// rlhf ppo CONFIG [--resume] [--section.key=value ...]
// RLHF with PPO: policy from an SFT checkpoint (checkpoint.init), a frozen
// reference copy of it, a critic and a reward model both from
// ppo.reward_model. Each step samples one rollout batch, scores it, and
// runs ppo_epochs passes of minibatch updates. Held-out evaluation (greedy
// task accuracy, reward-model reward, KL to the reference) runs before the
// first step and every eval_interval steps.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "commands.h"
#include "common.h"
#include "evaluate.h"
#include "jsonl.h"
#include "ppo.h"
#include "run.h"
#include "seqs.h"

// The four models and what trains them.
typedef struct {
    GPT policy, ref, critic, rm;
    AdamW popt, copt;
    Tokenizer tok;
    KLController kl;
    double reward_norm[2];
    char *rm_record;  // "PATH sha256:HEX" of the reward model (the parent names the reference)
} Models;

// The frozen reward model (and its normalisation) from a checked file.
static int load_reward_model(const char *path, Models *M) {
    Tokenizer rm_tok = {0};
    CkptMeta meta = {0};
    Ckpt *ck = ckpt_open(path, &meta);
    if (!ck) return -1;
    GPTConfig rc;
    int rc_ok = ckpt_read_model_config(ck, "", &rc);
    if (rc_ok == 0 && !rc.value_head)
        rc_ok = rlhf_fail("%s has no value head (stage '%s'); hint: ppo.reward_model must be a "
                          "checkpoint written by 'rlhf reward'", path, meta.stage);
    if (rc_ok == 0) {
        gpt_build(&M->rm, &rc);
        rc_ok = ckpt_read_model(ck, "", &M->rm, 0);
    }
    if (rc_ok == 0) rc_ok = ckpt_read_tokenizer(ck, &rm_tok);
    if (rc_ok == 0) rc_ok = ckpt_read_f64(ck, "reward_norm", M->reward_norm, 2);
    ckpt_close(ck);
    ckpt_meta_free(&meta);
    if (rc_ok == 0 && tokenizer_hash(&rm_tok) != tokenizer_hash(&M->tok))
        rc_ok = rlhf_fail("the reward model %s uses another tokenizer than the SFT model; hint: "
                          "train the reward model from this SFT lineage", path);
    tokenizer_free(&rm_tok);
    if (rc_ok == 0 && M->rm.config.block_size != M->ref.config.block_size)
        rc_ok = rlhf_fail("the reward model's context %d differs from the policy's %d; hint: "
                          "train the reward model from this SFT lineage",
                          M->rm.config.block_size, M->ref.config.block_size);
    return rc_ok;
}

// Policy, reference, critic and reward model. A fresh run takes the files
// of checkpoint.init and ppo.reward_model and records them by resolved path
// and sha256; a resumed run reloads exactly those files (checked unchanged)
// plus its own state, whatever the config's names point at now.
static int load_models(Run *run, Models *M, int64_t *step, uint64_t data_state[5]) {
    const Config *cfg = &run->cfg;
    if (!cfg->checkpoint.init[0])
        return rlhf_fail("ppo starts from an SFT model: checkpoint.init is empty; hint: "
                         "--checkpoint.init=checkpoints/sft/latest.h5");
    if (!cfg->ppo.reward_model[0])
        return rlhf_fail("ppo.reward_model is empty; hint: "
                         "--ppo.reward_model=checkpoints/reward/latest.h5");
    const float beta1 = (float)cfg->optim.beta1, beta2 = (float)cfg->optim.beta2;
    const float eps = (float)cfg->optim.eps, wd = (float)cfg->optim.weight_decay;
    M->kl = (KLController){cfg->ppo.kl_coef, cfg->ppo.kl_target, (double)cfg->ppo.kl_horizon};
    char ref_path[4096], rm_path[4096];

    if (!run->resume) {
        if (run_set_parent(run, cfg->checkpoint.init) != 0 ||
            !(M->rm_record = lineage_record(cfg->ppo.reward_model)) ||
            lineage_check(run->parent, "the SFT model", ref_path, sizeof ref_path) != 0 ||
            lineage_check(M->rm_record, "the reward model", rm_path, sizeof rm_path) != 0 ||
            load_model_file(ref_path, &M->ref, 0, &M->tok, NULL) != 0 ||
            load_reward_model(rm_path, M) != 0 ||
            load_model_file(ref_path, &M->policy, 0, NULL, NULL) != 0 ||
            load_model_file(rm_path, &M->critic, 1, NULL, NULL) != 0)
            return -1;
        adamw_build(&M->popt, M->policy.num_params, beta1, beta2, eps, wd);
        adamw_build(&M->copt, M->critic.num_params, beta1, beta2, eps, wd);
        run_adopt_model(run, &M->policy.config);
        *step = 0;
        return 0;
    }
    CkptMeta meta = {0};
    char *path;
    Ckpt *ck = run_open_resume(run, &meta, &path);
    GPTConfig pc, cc;
    int rc2 = ck ? 0 : -1;
    if (rc2 == 0) rc2 = ckpt_read_str(ck, "reward_model", &M->rm_record);
    if (rc2 == 0) rc2 = lineage_check(meta.parent, "the SFT model", ref_path, sizeof ref_path);
    if (rc2 == 0) rc2 = lineage_check(M->rm_record, "the reward model", rm_path, sizeof rm_path);
    if (rc2 == 0) rc2 = load_model_file(ref_path, &M->ref, 0, &M->tok, NULL);
    if (rc2 == 0) rc2 = load_reward_model(rm_path, M);
    if (rc2 == 0) rc2 = ckpt_read_model_config(ck, "", &pc);
    if (rc2 == 0) rc2 = ckpt_read_model_config(ck, "critic", &cc);
    if (rc2 == 0) {
        gpt_build(&M->policy, &pc);
        gpt_build(&M->critic, &cc);
        adamw_build(&M->popt, M->policy.num_params, beta1, beta2, eps, wd);
        adamw_build(&M->copt, M->critic.num_params, beta1, beta2, eps, wd);
        rc2 = ckpt_read_model(ck, "", &M->policy, 0);
    }
    if (rc2 == 0) rc2 = ckpt_read_model(ck, "critic", &M->critic, 0);
    if (rc2 == 0) rc2 = ckpt_read_optimizer(ck, "", &M->popt, &M->policy);
    if (rc2 == 0) rc2 = ckpt_read_optimizer(ck, "critic", &M->copt, &M->critic);
    if (rc2 == 0) rc2 = ckpt_read_u64(ck, "data", data_state, 5);
    if (rc2 == 0) rc2 = ckpt_read_f64(ck, "kl_coef", &M->kl.coef, 1);
    if (rc2 == 0) rc2 = ckpt_read_metrics(ck, &run->metrics);
    if (rc2 == 0) {
        run_adopt_model(run, &M->policy.config);
        run_adopt_resume(run, &meta, path, step);
    }
    if (ck) ckpt_close(ck);
    ckpt_meta_free(&meta);
    free(path);
    return rc2;
}

static int save_ppo(Run *run, int64_t step, const Models *M, const uint64_t data_state[5]) {
    Ckpt *ck = run_ckpt_begin(run, step);
    if (!ck) return -1;
    if (write_training_state(ck, &M->policy, &M->popt, &M->tok, data_state) != 0 ||
        ckpt_write_model(ck, "critic", &M->critic) != 0 ||
        ckpt_write_optimizer(ck, "critic", &M->copt, &M->critic) != 0 ||
        ckpt_write_f64(ck, "kl_coef", &M->kl.coef, 1) != 0 ||
        ckpt_write_f64(ck, "reward_norm", M->reward_norm, 2) != 0 ||
        ckpt_write_str(ck, "reward_model", M->rm_record) != 0) {
        ckpt_abort(ck);
        return -1;
    }
    return run_ckpt_end(run, ck, step);
}

// Held-out evaluation (evaluate_policy): greedy answers graded and scored
// by the reward model (eval_reward normalised, eval_reward_raw not), and
// sampled answers graded, scored and compared with the reference (KL).
static void log_eval(Run *run, const char *when, const EvalPolicyResult *e, const TasksTally *t) {
    metrics_set(&run->metrics, "eval_accuracy", e->accuracy);
    metrics_set(&run->metrics, "eval_reward", e->reward);
    metrics_set(&run->metrics, "eval_reward_raw", e->reward_raw);
    metrics_set(&run->metrics, "eval_kl_k1", e->kl_k1);
    metrics_set(&run->metrics, "eval_kl_k3", e->kl_k3);
    metrics_set(&run->metrics, "eval_sample_accuracy", e->sample_accuracy);
    metrics_set(&run->metrics, "eval_sample_reward", e->sample_reward);
    for (int f = 0; f < tasks_n_families; f++) {
        if (!t->total[f]) continue;
        char name[64];
        snprintf(name, sizeof name, "eval_accuracy_%s", tasks_families[f].name);
        metrics_set(&run->metrics, name, tasks_tally_accuracy(t, f));
    }
    run_print(run, "%s: held-out greedy accuracy %.1f%% reward %.3f | sampled accuracy %.1f%% "
              "reward %.3f | KL k1 %.3f k3 %.3f, length %.1f", when, 100 * e->accuracy,
              e->reward, 100 * e->sample_accuracy, e->sample_reward, e->kl_k1, e->kl_k3,
              e->length);
}

int cmd_ppo(int argc, char **argv) {
    Run run;
    if (run_init(&run, "ppo", argc, argv) != 0) die_last();
    const Config *cfg = &run.cfg;
    Models M;
    memset(&M, 0, sizeof M);
    int64_t step = 0;
    uint64_t data_state[5] = {0};
    if (load_models(&run, &M, &step, data_state) != 0) die_last();
    gpt_train_build(&M.policy);  // the reference and the reward model stay frozen
    gpt_train_build(&M.critic);
    const int T = M.policy.config.block_size, V = M.policy.config.vocab_size;
    const int P = (int)cfg->ppo.rollout_batch, mb = P / (int)cfg->ppo.minibatches;
    PPOParams pp = {
        .sampling = {(float)cfg->ppo.temperature, (int)cfg->ppo.top_k, (float)cfg->ppo.top_p},
        .max_new = (int)cfg->ppo.max_new_tokens,
        .gamma = (float)cfg->ppo.gamma,
        .lam = (float)cfg->ppo.lam,
        .cliprange = (float)cfg->ppo.cliprange,
        .cliprange_value = (float)cfg->ppo.cliprange_value,
        .vf_coef = (float)cfg->ppo.vf_coef,
        .ent_coef = (float)cfg->ppo.ent_coef,
        .whiten = cfg->ppo.whiten_advantages,
        .no_eot_penalty = (float)cfg->ppo.no_eot_penalty,
        .reward_mean = (float)M.reward_norm[0],
        .reward_std = (float)M.reward_norm[1],
    };
    if (pp.max_new >= T)
        die("ppo.max_new_tokens=%d must be below the context %d; hint: lower it", pp.max_new, T);
    // a fresh run never writes into another run's dump; a resumed one
    // continues its own (rollout_dump_append drops the batches it redoes)
    if (cfg->ppo.dump_rollouts[0] && !run.resume && access(cfg->ppo.dump_rollouts, F_OK) == 0)
        die("ppo.dump_rollouts: '%s' already exists; hint: move it away, choose another file, "
            "or pass --resume to continue the run that wrote it", cfg->ppo.dump_rollouts);

    PromptSet train_set, test_set;
    if (jsonl_read_prompts(cfg->ppo.prompts_file, &train_set) != 0 ||
        jsonl_read_prompts(cfg->ppo.test_file, &test_set) != 0)
        die_last();
    EncodedPrompts train, test;
    if (prompts_encode(&train_set, &M.tok, T, pp.max_new, 0, &train) != 0 ||
        prompts_encode(&test_set, &M.tok, T, pp.max_new, 0, &test) != 0)
        die_last();
    const long n_eval = test.n < cfg->ppo.eval_prompts ? test.n : cfg->ppo.eval_prompts;
    if (run_begin(&run, step) != 0) die_last();
    print_model_summary(&M.policy, &M.tok);
    printf("# ppo prompts: train %ld (%ld skipped as too long), test %ld (%ld skipped), "
           "evaluating on %ld; reward normalisation mean %.4f std %.4f\n", train.n, train.skipped,
           test.n, test.skipped, n_eval, pp.reward_mean, pp.reward_std);
    fflush(stdout);

    Rollout ro;
    rollout_build(&ro, P, T, V, M.tok.eot, M.tok.pad);
    KVCache kv;
    kvcache_build(&kv, &M.policy.config, P, T);
    Sampler smp;
    sampler_build(&smp, V);
    Rng rng;
    rng_init(&rng, (uint64_t)cfg->train.seed);
    if (run.resume) memcpy(rng.s, data_state, sizeof rng.s);
    EpochOrder prompt_order;
    epoch_order_init(&prompt_order, train.n, (uint64_t)cfg->train.seed);
    int64_t cursor = (int64_t)data_state[4];
    const int **batch_ids = mallocCheck((size_t)P * sizeof(int *));
    int *batch_lens = mallocCheck((size_t)P * sizeof(int));
    long *batch_src = mallocCheck((size_t)P * sizeof(long));
    long *order = mallocCheck((size_t)P * sizeof(long));
    float *k1 = mallocCheck((size_t)P * sizeof(float)), *k3 = mallocCheck((size_t)P * sizeof(float));
    int *grades = mallocCheck((size_t)P * sizeof(int)), *families = mallocCheck((size_t)P * sizeof(int));
    const int64_t max_steps = cfg->train.max_steps;
    const float critic_lr_peak = cfg->ppo.critic_lr > 0 ? (float)cfg->ppo.critic_lr : (float)cfg->optim.lr;
    TasksTally tally;
    const uint64_t eval_seed = (uint64_t)cfg->train.seed + 1;  // `rlhf eval` uses it too

    if (step == 0) {
        EvalPolicyResult e0;
        evaluate_policy(&M.policy, &M.ref, &M.rm, &M.tok, &test, n_eval, &pp, P, eval_seed,
                        M.reward_norm, &e0, &tally);
        metrics_set(&run.metrics, "step", 0);
        log_eval(&run, "before PPO (step 0)", &e0, &tally);
        metrics_commit(&run.metrics);
    }
    for (; step < max_steps; step++) {
        double t0 = now_seconds();
        float lr = lr_schedule(step, cfg->optim.warmup_steps, max_steps, (float)cfg->optim.lr,
                               (float)cfg->optim.min_lr);
        float clr = lr * critic_lr_peak / (float)cfg->optim.lr;
        for (int b = 0; b < P; b++) {
            long i = epoch_order_at(&prompt_order, cursor++);
            batch_ids[b] = train.ids[i];
            batch_lens[b] = train.lens[i];
            batch_src[b] = i;
        }
        ppo_generate(&ro, &M.policy, &kv, &smp, batch_ids, batch_lens, P, &pp, &rng);
        double t_gen = now_seconds() - t0;
        for (int b = 0; b < P; b++) order[b] = b;
        rng_shuffle_long(&rng, order, P);
        ppo_score(&ro, &M.policy, &M.ref, &M.critic, &M.rm, &pp, order, mb);
        ppo_advantages(&ro, &pp, (float)M.kl.coef);

        // rollout statistics
        rollout_kl(&ro, k1, k3);
        double raw = 0, nrm = 0, kl1 = 0, kl3 = 0, len = 0, ended = 0, correct = 0, graded = 0;
        double ret_sum = 0, ret_sq = 0, res_sum = 0, res_sq = 0, tokens = 0;
        for (int b = 0; b < P; b++) {
            raw += ro.score_raw[b] / P;
            nrm += ro.score[b] / P;
            kl1 += k1[b] / P;
            kl3 += k3[b] / P;
            len += (double)ro.rlen[b] / P;
            ended += (double)ro.ended[b] / P;
            const PromptExample *ex = train.ex[batch_src[b]];
            grades[b] = -1;
            families[b] = ex->family[0] ? tasks_family_by_name(ex->family) : -1;
            if (families[b] >= 0) {
                const int *resp = ro.tokens + (size_t)b * (ro.L + 1) + ro.qlen[b];
                char *text = tokenizer_decode(&M.tok, resp, ro.rlen[b] - ro.ended[b], 0);
                grades[b] = tasks_grade_index(families[b], ex->prompt, text);
                free(text);
                if (grades[b] >= 0) {
                    correct += grades[b];
                    graded++;
                }
            }
        }
        // does the reward model rank the policy's own right answers above
        // its wrong ones (same family)? 0.5 = it cannot tell them apart
        double rm_auc = reward_auc(ro.score_raw, grades, families, P);
        for (long i = 0; i < (long)P * ro.L; i++) {
            if (!ro.mask[i]) continue;
            double R = ro.returns[i], res = R - ro.values[i];
            ret_sum += R;
            ret_sq += R * R;
            res_sum += res;
            res_sq += res * res;
            tokens++;
        }
        double var_ret = ret_sq / tokens - (ret_sum / tokens) * (ret_sum / tokens);
        double var_res = res_sq / tokens - (res_sum / tokens) * (res_sum / tokens);
        double explained_var = var_ret > 0 ? 1.0 - var_res / var_ret : 0.0;

        PPOStats st = {0};
        for (int e = 0; e < cfg->ppo.ppo_epochs; e++) {
            if (e > 0) rng_shuffle_long(&rng, order, P);
            for (int i0 = 0; i0 < P; i0 += mb)
                ppo_train_minibatch(&ro, order + i0, mb, &pp, &M.policy, &M.popt, lr, &M.critic,
                                    &M.copt, clr, (float)cfg->optim.grad_clip, &st);
        }
        if (!isfinite(st.policy_loss) || !isfinite(st.value_loss))
            die("PPO loss is not finite at step %lld; hint: lower optim.lr", (long long)step + 1);
        double kl_coef_used = M.kl.coef;
        if (cfg->ppo.adaptive_kl) kl_controller_update(&M.kl, kl1, P);
        double dt = now_seconds() - t0;

        const int64_t s1 = step + 1;
        StepPlan plan = run_step_plan(&run, step);
        metrics_set(&run.metrics, "step", (double)s1);
        metrics_set(&run.metrics, "reward_raw", raw);
        metrics_set(&run.metrics, "reward", nrm);
        metrics_set(&run.metrics, "kl_k1", kl1);
        metrics_set(&run.metrics, "kl_k3", kl3);
        metrics_set(&run.metrics, "kl_coef", kl_coef_used);
        metrics_set(&run.metrics, "entropy", st.entropy / st.tokens);
        metrics_set(&run.metrics, "clipfrac", st.clipfrac / st.tokens);
        metrics_set(&run.metrics, "approx_kl", st.approx_kl / st.tokens);
        metrics_set(&run.metrics, "policy_loss", st.policy_loss / st.tokens);
        metrics_set(&run.metrics, "value_loss", st.value_loss / st.tokens);
        metrics_set(&run.metrics, "value_clipfrac", st.value_clipfrac / st.tokens);
        metrics_set(&run.metrics, "ratio", st.ratio_mean / st.tokens);
        metrics_set(&run.metrics, "explained_variance", explained_var);
        metrics_set(&run.metrics, "response_length", len);
        metrics_set(&run.metrics, "eot_rate", ended);
        metrics_set(&run.metrics, "rollout_accuracy", graded > 0 ? correct / graded : NAN);
        metrics_set(&run.metrics, "rollout_rm_auc", rm_auc);
        metrics_set(&run.metrics, "lr", lr);
        metrics_set(&run.metrics, "time_s", now_seconds() - run.t_start);
        metrics_set(&run.metrics, "generate_s", t_gen);
        if (plan.eval) {
            EvalPolicyResult e;
            evaluate_policy(&M.policy, &M.ref, &M.rm, &M.tok, &test, n_eval, &pp, P, eval_seed,
                            M.reward_norm, &e, &tally);
            char when[64];
            snprintf(when, sizeof when, "step %lld", (long long)s1);
            log_eval(&run, when, &e, &tally);
            if (plan.last) tasks_tally_print(&tally, stdout);
        }
        // a row (and a progress line) every log_interval steps; the values of
        // the other steps are overwritten before the next row is committed
        if (plan.log) {
            metrics_commit(&run.metrics);
            char extra[160];
            snprintf(extra, sizeof extra, "reward %.3f | kl %.3f | acc %.0f%% | len %.1f | clip %.2f",
                     raw, kl1, graded > 0 ? 100 * correct / graded : 0.0, len,
                     st.clipfrac / st.tokens);
            run_progress(&run, step, max_steps, st.policy_loss / st.tokens, lr,
                         tokens * cfg->ppo.ppo_epochs / dt, extra);
        }

        if (cfg->ppo.dump_rollouts[0]) {
            DumpColumn cols[] = {
                {"tokens", 1, ro.tokens, NULL, ro.L + 1},   {"logp", 0, NULL, ro.logp, 0},
                {"ref_logp", 0, NULL, ro.ref_logp, 0},     {"values", 0, NULL, ro.values, 0},
                {"advantages", 0, NULL, ro.advantages, 0}, {"returns", 0, NULL, ro.returns, 0},
                {"rewards", 0, NULL, ro.rewards, 0},       {"qlen", 1, ro.qlen, NULL, 1},
                {"rlen", 1, ro.rlen, NULL, 1},             {"score_raw", 0, NULL, ro.score_raw, 1},
            };
            // the mask as int32 for h5py users
            int *mask = mallocCheck((size_t)P * ro.L * sizeof(int));
            for (long i = 0; i < (long)P * ro.L; i++) mask[i] = ro.mask[i];
            DumpColumn all[sizeof cols / sizeof cols[0] + 1];
            memcpy(all, cols, sizeof cols);
            all[sizeof cols / sizeof cols[0]] = (DumpColumn){"masks", 1, mask, NULL, 0};
            if (rollout_dump_append(cfg->ppo.dump_rollouts, s1, P, ro.L, all,
                                    (int)(sizeof all / sizeof all[0])) != 0)
                die_last();
            free(mask);
        }
        if (plan.save) {
            memcpy(data_state, rng.s, sizeof rng.s);
            data_state[4] = (uint64_t)cursor;
            if (save_ppo(&run, s1, &M, data_state) != 0) die_last();
        }
    }
    run_print(&run, "done: %lld steps, %.1f s; checkpoints in %s", (long long)max_steps,
              now_seconds() - run.t_start, cfg->checkpoint.dir);
    free(batch_ids);
    free(batch_lens);
    free(batch_src);
    free(order);
    free(k1);
    free(k3);
    free(grades);
    free(families);
    epoch_order_free(&prompt_order);
    sampler_free(&smp);
    kvcache_free(&kv);
    rollout_free(&ro);
    prompts_free(&train);
    prompts_free(&test);
    jsonl_free_prompts(&train_set);
    jsonl_free_prompts(&test_set);
    gpt_free(&M.policy);
    gpt_free(&M.ref);
    gpt_free(&M.critic);
    gpt_free(&M.rm);
    adamw_free(&M.popt);
    adamw_free(&M.copt);
    tokenizer_free(&M.tok);
    free(M.rm_record);
    run_free(&run);
    return 0;
}

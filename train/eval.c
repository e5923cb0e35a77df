// rlhf eval CKPT CONFIG [--text FILE] [--ref CKPT] [--json FILE] [--show N]
//                       [--section.key=value ...]
// Held-out measurements of one checkpoint, chosen from what it is and what
// the config points at: language-model loss and perplexity (data.dir/val.h5
// or --text), greedy task accuracy (sft.test_file) and its accuracy by turn
// in conversations (sft.chat_test_file), reward-model pairwise
// accuracy (reward.test_file), and for a policy the reward-model reward of
// its greedy answers and its KL to a reference (ppo.*). Each measurement is
// the one the training stage logs, computed the same way, so a fresh eval of
// a final checkpoint reproduces the stage's last evaluation. Ends with one
// machine-readable line: RESULT stage=... key=value ... (measured keys only).
// Never writes a checkpoint; --json writes the results atomically.
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint.h"
#include "commands.h"
#include "common.h"
#include "config.h"
#include "evaluate.h"
#include "gpt.h"
#include "jsonl.h"
#include "options.h"
#include "run.h"
#include "tasks.h"
#include "tokenizer.h"

#define USAGE                                                                               \
    "usage: rlhf eval CKPT CONFIG [--text FILE] [--ref CKPT] [--json FILE [--force]] "      \
    "[--show N] [--best_of N] [--section.key=value ...]"

// Logits of one LM batch stay under this many floats (B is lowered for
// large vocabularies and contexts).
#define LM_LOGITS_BUDGET (1L << 26)

typedef struct {
    const char *ckpt, *config, *text, *ref, *json;
    int force;      // --force: --json may replace an existing file
    long show;      // held-out task examples to print with the model's answers
    long best_of;   // answers sampled per prompt for best-of-N (0: off)
    Options opts;   // what the strings point into, and the config overrides
} EvalArgs;

// What was measured; NaN = not measured.
typedef struct {
    double val_loss, ppl, lm_tokens;
    double accuracy, task_graded;
    double family_acc[TASKS_MAX_FAMILIES];
    long family_total[TASKS_MAX_FAMILIES];
    double rm_accuracy, rm_margin, rm_mean, rm_std, rm_pairs;
    double rm_acc_right_wrong, rm_acc_wrong_wrong;  // ranked comparisons only
    double lik_accuracy;  // a language model's own ranking of the pairs
    double reward, reward_raw, policy_accuracy, reward_prompts;
    double kl, kl_k3, kl_length;
    double sample_accuracy, sample_reward;  // responses sampled at ppo.temperature
    RewardAuc rm_auc;                       // the reward model on those: right over wrong
    double best_of_accuracy, best_of_mean, best_of_pass;  // --best_of
    RewardAuc best_of_auc;                  // the reward model on all best-of answers
    RewardAuc best_of_auc_within;           // the same, within each prompt
    // held-out conversations: accuracy of turn k+1, asked after the model's
    // own earlier answers; NaN for a turn without graded answers
    double turn_acc[EVAL_MAX_TURNS], turn_graded[EVAL_MAX_TURNS];
    double chat_conversations, chat_trimmed_turns;
    // the first --show task examples: owned strings
    long n_shown;
    char **shown_prompt, **shown_expected, **shown_response, **shown_family;
    int *shown_correct;
} Results;

static void results_init(Results *r) {
    memset(r, 0, sizeof *r);
    r->val_loss = r->ppl = r->lm_tokens = NAN;
    r->accuracy = r->task_graded = NAN;
    r->rm_accuracy = r->rm_margin = r->rm_mean = r->rm_std = r->rm_pairs = NAN;
    r->rm_acc_right_wrong = r->rm_acc_wrong_wrong = NAN;
    r->best_of_accuracy = r->best_of_mean = r->best_of_pass = NAN;
    reward_auc_families(NULL, NULL, NULL, NULL, 0, &r->rm_auc);  // all NaN
    r->best_of_auc = r->best_of_auc_within = r->rm_auc;
    r->lik_accuracy = NAN;
    r->reward = r->reward_raw = r->policy_accuracy = r->reward_prompts = NAN;
    r->kl = r->kl_k3 = r->kl_length = NAN;
    r->sample_accuracy = r->sample_reward = NAN;
    for (int k = 0; k < EVAL_MAX_TURNS; k++) r->turn_acc[k] = r->turn_graded[k] = NAN;
    r->chat_conversations = r->chat_trimmed_turns = NAN;
}

static void results_free(Results *r) {
    for (long i = 0; i < r->n_shown; i++) {
        free(r->shown_prompt[i]);
        free(r->shown_expected[i]);
        free(r->shown_response[i]);
        free(r->shown_family[i]);
    }
    free(r->shown_prompt);
    free(r->shown_expected);
    free(r->shown_response);
    free(r->shown_family);
    free(r->shown_correct);
    memset(r, 0, sizeof *r);
}

// --- arguments -------------------------------------------------------------------

static int args_parse(EvalArgs *a, int argc, char **argv) {
    static const OptionSpec spec = {
        .usage = USAGE,
        .positional = {"checkpoint", "CONFIG"},
        .required = 2,
        .options = {{"text", 1, 0}, {"ref", 1, 0}, {"json", 1, 0}, {"show", 1, 0}, {"force", 0, 0},
                    {"best_of", 1, 0}},
        .overrides = 1,
    };
    memset(a, 0, sizeof *a);
    if (options_parse(&a->opts, &spec, argc, argv) != 0) return -1;
    a->ckpt = a->opts.positional[0];
    a->config = a->opts.positional[1];
    a->text = options_get(&a->opts, "text");
    a->ref = options_get(&a->opts, "ref");
    a->json = options_get(&a->opts, "json");
    const char *best_of = options_get(&a->opts, "best_of");
    if (best_of) {
        char *end;
        a->best_of = strtol(best_of, &end, 10);
        if (end == best_of || *end || a->best_of < 2 || a->best_of > 64)
            return rlhf_fail("--best_of '%s' is not a count from 2 to 64; hint: --best_of 8 "
                             "keeps the reward model's best of 8 sampled answers", best_of);
    }
    a->force = options_get(&a->opts, "force") != NULL;
    if (a->force && !a->json)
        return rlhf_fail("--force applies to --json FILE only; hint: %s", USAGE);
    // the files this command reads (the config's data files are read-only
    // to it as well, but a --json onto one of them is caught as existing)
    const char *inputs[] = {a->ckpt, a->config, a->text, a->ref};
    if (a->json && output_check(a->json, "--json", a->force, inputs, 4) != 0) return -1;
    const char *show = options_get(&a->opts, "show");
    if (show) {
        char *end;
        a->show = strtol(show, &end, 10);
        if (end == show || *end || a->show < 0)
            return rlhf_fail("--show '%s' is not a count; hint: --show 5 prints five examples",
                             show);
    }
    return 0;
}

static int file_exists(const char *path) {
    struct stat st;
    return path[0] && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

// --- models ------------------------------------------------------------------------

// Loads the model of a checkpoint as stored (with its value head when it has
// one), its tokenizer, and /state/reward_norm when present.
static int load_eval_model(const char *path, GPT *m, Tokenizer *tok, CkptMeta *meta,
                           double reward_norm[2], int *has_norm) {
    Ckpt *ck = ckpt_open(path, meta);
    if (!ck) return -1;
    int rc = 0;
    GPTConfig c;
    if (!ckpt_has_model(ck, ""))
        rc = rlhf_fail("%s is a '%s' file without a model; hint: give a checkpoint written by "
                       "pretrain, sft, reward, ppo or dpo", path, meta->stage);
    if (rc == 0) rc = ckpt_read_model_config(ck, "", &c);
    if (rc == 0) {
        gpt_build(m, &c);
        rc = ckpt_read_model(ck, "", m, 0);
        if (rc != 0) gpt_free(m);
    }
    if (rc == 0 && (rc = ckpt_read_tokenizer(ck, tok)) != 0) gpt_free(m);
    *has_norm = 0;
    if (rc == 0 && ckpt_has_state(ck, "reward_norm")) {
        if (ckpt_read_f64(ck, "reward_norm", reward_norm, 2) == 0) {
            *has_norm = 1;
        } else {
            gpt_free(m);
            tokenizer_free(tok);
            rc = -1;
        }
    }
    ckpt_close(ck);
    if (rc != 0) ckpt_meta_free(meta);
    return rc;
}

// --- language-model loss -----------------------------------------------------------

// Rows per LM batch: the config's batch size, lowered to keep the logits small.
static int lm_batch(const GPT *m, const Config *cfg) {
    long per_row = (long)m->config.block_size * m->config.vocab_size;
    long B = cfg->train.batch_size, cap = LM_LOGITS_BUDGET / per_row;
    if (cap < 1) cap = 1;
    return (int)(B < cap ? B : cap);
}

static int eval_lm_text(GPT *m, const Tokenizer *tok, const Config *cfg, const char *path,
                        Results *res) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return rlhf_fail("--text %s: cannot open: %s; hint: check the path", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    uint8_t *text = mallocCheck(cap);
    size_t got;
    while ((got = fread(text + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) text = reallocCheck(text, cap *= 2);
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(text);
        return rlhf_fail("--text %s: read error; hint: check the file", path);
    }
    if (n == 0) {
        free(text);
        return rlhf_fail("--text %s: the file is empty; hint: give a text file to score", path);
    }
    // the text is one document: it starts after an end-of-text token, as
    // documents do in the training shards; every text token is predicted
    int *ids = mallocCheck((n + 1) * sizeof(int));
    ids[0] = tok->eot;
    long k = tokenizer_encode(tok, text, n, ids + 1, (long)n);
    free(text);
    if (k < 0) {
        free(ids);
        return rlhf_fail("--text %s does not encode with this checkpoint's tokenizer: %s", path,
                         rlhf_errmsg);
    }
    ASSERT(k <= (long)n);
    long windows;
    size_t predicted;
    double loss = evaluate_lm_loss(m, ids, (size_t)k + 1, lm_batch(m, cfg), 0, LM_PARTIAL, &windows,
                                   &predicted);
    free(ids);
    res->val_loss = loss;
    res->ppl = exp(loss);
    res->lm_tokens = (double)predicted;
    printf("lm loss      %s: %zu tokens in %ld windows of up to %d: loss %.4f, perplexity %.3f\n",
           path, predicted, windows, m->config.block_size, loss, exp(loss));
    return 0;
}

static int eval_lm_shard(GPT *m, const Tokenizer *tok, const Config *cfg, Results *res) {
    char path[4096];
    snprintf(path, sizeof path, "%s/val.h5", cfg->data.dir);
    if (!file_exists(path)) {
        printf("lm loss      skipped: no token shard %s (hint: set data.dir to the directory "
               "'rlhf prepare' wrote, or pass --text FILE)\n", path);
        return 0;
    }
    int *tokens, vocab;
    size_t n;
    uint64_t hash;
    if (shard_read(path, &tokens, &n, &vocab, &hash) != 0) return -1;
    const int T = m->config.block_size;
    if (vocab != tok->vocab_size || hash != tokenizer_hash(tok)) {
        printf("lm loss      skipped: %s was made with another tokenizer (vocab %d, this "
               "checkpoint's %d) (hint: set data.dir to this lineage's data)\n", path, vocab,
               tok->vocab_size);
    } else if (n < (size_t)T + 1) {
        printf("lm loss      skipped: %s holds %zu tokens, fewer than one window of %d\n", path, n,
               T + 1);
    } else {
        // sequential, non-overlapping: the windows `rlhf pretrain` evaluates on
        const int B = lm_batch(m, cfg);
        long windows;
        size_t predicted;
        double loss = evaluate_lm_loss(m, tokens, n, B, cfg->train.eval_steps * cfg->train.batch_size, LM_STOP,
                              &windows, &predicted);
        res->val_loss = loss;
        res->ppl = exp(loss);
        res->lm_tokens = (double)predicted;
        size_t all = (n - 1) / (size_t)T;
        printf("lm loss      %s: %zu tokens in %ld windows of %d (%s; train.eval_steps x "
               "batch_size = %lld): loss %.4f, perplexity %.3f\n", path, predicted, windows, T,
               (size_t)windows >= all ? "the whole shard" : "a prefix of the shard",
               (long long)(cfg->train.eval_steps * cfg->train.batch_size), loss, exp(loss));
    }
    free(tokens);
    return 0;
}

// --- task accuracy ------------------------------------------------------------------

static int eval_tasks(GPT *m, const Tokenizer *tok, const Config *cfg, long show, Results *res) {
    SftSet set;
    if (jsonl_read_sft(cfg->sft.test_file, &set) != 0) return -1;
    long n = set.n < cfg->sft.eval_examples ? set.n : cfg->sft.eval_examples;
    const char **prompts = mallocCheck((size_t)n * sizeof(char *));
    const char **families = mallocCheck((size_t)n * sizeof(char *));
    for (long i = 0; i < n; i++) {
        prompts[i] = set.ex[i].turns[0].text;
        families[i] = set.ex[i].family;
    }
    TasksTally tally;
    tasks_tally_init(&tally);
    char **responses = show > 0 ? mallocCheck((size_t)(n ? n : 1) * sizeof(char *)) : NULL;
    evaluate_tasks(m, tok, prompts, families, n, (int)cfg->sft.max_new_tokens, EVAL_TASK_BATCH, &tally,
                   responses, NULL);
    long graded = 0, correct = 0;
    for (int f = 0; f < TASKS_MAX_FAMILIES; f++) {
        graded += tally.total[f];
        correct += tally.correct[f];
        res->family_total[f] = tally.total[f];
        res->family_acc[f] = tasks_tally_accuracy(&tally, f);
    }
    res->accuracy = tasks_tally_accuracy(&tally, -1);
    res->task_graded = (double)graded;
    printf("tasks        %s: first %ld examples, greedy, up to %lld new tokens: accuracy "
           "%.1f%% (%ld/%ld graded", cfg->sft.test_file, n, (long long)cfg->sft.max_new_tokens,
           100 * res->accuracy, correct, graded);
    if (tally.ungraded) printf("; %ld ungraded: no task family or too long", tally.ungraded);
    printf(")\n");
    tasks_tally_print(&tally, stdout);
    if (responses) {
        long k = show < n ? show : n;
        res->n_shown = k;
        res->shown_prompt = mallocCheck((size_t)(k ? k : 1) * sizeof(char *));
        res->shown_expected = mallocCheck((size_t)(k ? k : 1) * sizeof(char *));
        res->shown_response = mallocCheck((size_t)(k ? k : 1) * sizeof(char *));
        res->shown_family = mallocCheck((size_t)(k ? k : 1) * sizeof(char *));
        res->shown_correct = mallocCheck((size_t)(k ? k : 1) * sizeof(int));
        printf("first %ld answers:\n", k);
        for (long i = 0; i < n; i++) {
            if (i >= k) {
                free(responses[i]);
                continue;
            }
            const SftExample *e = &set.ex[i];
            const char *expected = e->answer[0] ? e->answer : e->turns[1].text;
            // NULL: the prompt did not fit with room for an answer
            int g = responses[i] ? tasks_grade(e->family, prompts[i], responses[i]) : -1;
            res->shown_prompt[i] = strdup_check(prompts[i]);
            res->shown_expected[i] = strdup_check(expected);
            res->shown_response[i] = responses[i] ? responses[i] : strdup_check("");
            res->shown_family[i] = strdup_check(e->family);
            res->shown_correct[i] = g;
            printf("  %-5s [%s] %s => %s%s%s\n", g == 1 ? "ok" : g == 0 ? "wrong" : "-",
                   e->family[0] ? e->family : "?", prompts[i], res->shown_response[i],
                   g == 0 ? "   expected: " : "", g == 0 ? expected : "");
        }
        free(responses);
    }
    free(prompts);
    free(families);
    jsonl_free_sft(&set);
    return 0;
}

// Accuracy by turn on sft.chat_test_file: the first chat_eval_examples
// conversations, each turn asked after the model's own earlier answers.
static int eval_chat(GPT *m, const Tokenizer *tok, const Config *cfg, Results *res) {
    SftSet set;
    if (jsonl_read_sft(cfg->sft.chat_test_file, &set) != 0) return -1;
    const long n = set.n < cfg->sft.chat_eval_examples ? set.n : cfg->sft.chat_eval_examples;
    TasksTally tally[EVAL_MAX_TURNS];
    ChatEvalStats st;
    evaluate_chat_turns(m, tok, &set, n, (int)cfg->sft.max_new_tokens, EVAL_TASK_BATCH, tally,
                        &st, NULL);
    res->chat_conversations = (double)st.conversations;
    res->chat_trimmed_turns = (double)st.trimmed_turns;
    printf("by turn      %s: first %ld conversations, each turn asked after the model's own "
           "greedy answers (%ld turns, %ld of them with older turns dropped to fit the "
           "context):", cfg->sft.chat_test_file, n, st.turns, st.trimmed_turns);
    for (int k = 0; k < EVAL_MAX_TURNS; k++) {
        long graded = 0, correct = 0;
        for (int f = 0; f < TASKS_MAX_FAMILIES; f++) {
            graded += tally[k].total[f];
            correct += tally[k].correct[f];
        }
        if (graded == 0 && tally[k].ungraded == 0) continue;
        if (graded > 0) {
            res->turn_acc[k] = tasks_tally_accuracy(&tally[k], -1);
            res->turn_graded[k] = (double)graded;
        }
        printf(" turn %d %.1f%% (%ld/%ld", k + 1, 100 * tasks_tally_accuracy(&tally[k], -1),
               correct, graded);
        if (tally[k].ungraded) printf(", %ld ungraded", tally[k].ungraded);
        printf(")");
    }
    printf("\n");
    // each family by turn: a skill lost in later turns shows here
    int turns = 0;
    for (int k = 0; k < EVAL_MAX_TURNS; k++)
        for (int f = 0; f < tasks_n_families; f++)
            if (tally[k].total[f]) turns = k + 1;
    if (turns > 0) printf("  %-10s", "family");
    for (int k = 0; k < turns; k++) printf(k + 1 < turns ? "  turn %-9d" : "  turn %d", k + 1);
    if (turns > 0) printf("\n");
    for (int f = 0; f < tasks_n_families; f++) {
        long any = 0;
        for (int k = 0; k < turns; k++) any += tally[k].total[f];
        if (!any) continue;
        printf("  %-10s", tasks_families[f].name);
        for (int k = 0; k < turns; k++) {
            const int w = k + 1 < turns ? 14 : 0;  // no trailing blanks
            if (!tally[k].total[f]) {
                printf("  %-*s", w, "-");
                continue;
            }
            char cell[32];
            snprintf(cell, sizeof cell, "%.3f (%ld/%ld)", tasks_tally_accuracy(&tally[k], f),
                     tally[k].correct[f], tally[k].total[f]);
            printf("  %-*s", w, cell);
        }
        printf("\n");
    }
    jsonl_free_sft(&set);
    return 0;
}

// --- preference pairs ---------------------------------------------------------------

// Pairwise accuracy on the held-out preference pairs (batches of
// 2 * train.batch_size), then accuracy by rejection kind. A reward model:
// margin and reward statistics as `rlhf reward` logs them. A language model:
// how its own log-likelihood ranks the pairs, a yardstick for a reward
// model built on its trunk.
static int eval_pairs(GPT *m, const Tokenizer *tok, const Config *cfg, const double *norm,
                      Results *res) {
    PrefSet set;
    if (jsonl_read_prefs(cfg->reward.test_file, &set) != 0) return -1;
    const int T = m->config.block_size, is_rm = m->config.value_head;
    const char *what = is_rm ? "reward model" : "likelihood  ";
    PairResult pr;
    PairScores ps;
    if (evaluate_pairs(m, tok, &set, 0, 2 * (int)cfg->train.batch_size, &pr, &ps) != 0) {
        jsonl_free_prefs(&set);
        if (is_rm) return -1;
        printf("likelihood   skipped: %s\n", rlhf_errmsg);  // optional for a language model
        return 0;
    }
    if (pr.pairs == 0) {
        printf("%s skipped: no pair of %s fits in the context of %d tokens\n", what,
               cfg->reward.test_file, T);
    } else if (is_rm) {
        res->rm_accuracy = pr.accuracy;
        res->rm_margin = pr.margin;
        res->rm_mean = pr.mean;
        res->rm_std = pr.std;
        res->rm_pairs = (double)pr.pairs;
        printf("reward model %s: %ld pairs (%ld skipped as longer than %d tokens): pairwise "
               "accuracy %.1f%%, mean margin %.4f; rewards mean %.4f std %.4f", cfg->reward.test_file,
               pr.pairs, pr.skipped, T, 100 * pr.accuracy, pr.margin, pr.mean, pr.std);
        if (norm) printf(" (stored normalisation: mean %.4f std %.4f)", norm[0], norm[1]);
        printf("\n");
        if (pr.n_right_wrong || pr.n_wrong_wrong) {
            res->rm_acc_right_wrong = pr.acc_right_wrong;
            res->rm_acc_wrong_wrong = pr.acc_wrong_wrong;
            printf("  ranked comparisons: a right answer above a wrong one %.1f%% (%ld pairs), "
                   "the closer of two wrong ones above the other %.1f%% (%ld pairs)\n",
                   100 * pr.acc_right_wrong, pr.n_right_wrong, 100 * pr.acc_wrong_wrong,
                   pr.n_wrong_wrong);
        }
    } else {
        res->lik_accuracy = pr.accuracy;
        printf("likelihood   %s: %ld pairs (%ld skipped as longer than %d tokens): the model's "
               "own log-likelihood ranks chosen above rejected in %.1f%%, mean margin %.3f nats\n",
               cfg->reward.test_file, pr.pairs, pr.skipped, T, 100 * pr.accuracy, pr.margin);
    }
    if (pr.pairs > 0) {
        // accuracy by how the rejected answer is wrong: which mistakes the model sees
        const char *kinds[32];
        long kright[32] = {0}, ktotal[32] = {0};
        int nk = 0;
        for (long i = 0; i < ps.n; i++) {
            const PrefExample *e = &set.ex[ps.example[i]];
            const char *k = e->rejected_kind[0] ? e->rejected_kind : "(unknown)";
            int j = 0;
            while (j < nk && strcmp(kinds[j], k) != 0) j++;
            if (j == nk) {
                if (nk == 32) continue;
                kinds[nk++] = k;
            }
            ktotal[j]++;
            kright[j] += ps.chosen[i] > ps.rejected[i];
        }
        // (ranked comparisons and most outside files do not say how an answer is wrong)
        for (int j = 0; j < nk && !(nk == 1 && !strcmp(kinds[0], "(unknown)")); j++)
            printf("  rejected %-16s %.3f  (%ld/%ld)\n", kinds[j], (double)kright[j] / ktotal[j],
                   kright[j], ktotal[j]);
    }
    pair_scores_free(&ps);
    jsonl_free_prefs(&set);
    return 0;
}

// --- policy: reward-model reward and KL to a reference ----------------------------


// The reference for the KL: --ref, else the parent of a ppo or dpo
// checkpoint (the SFT model it started from) while its file exists. Fills path (empty: none, with a note printed) and
// want (the recorded sha256, empty for --ref); *how says which it was.
static void reference_choose(const char *ref_arg, const char *stage, const char *parent,
                             char *path, size_t n, char want[65], const char **how) {
    path[0] = want[0] = '\0';
    *how = "--ref";
    if (ref_arg) {
        snprintf(path, n, "%s", ref_arg);
    } else if ((!strcmp(stage, "ppo") || !strcmp(stage, "dpo")) && parent[0] &&
               lineage_split(parent, path, n, want) == 0) {
        *how = "the parent in the lineage";
        if (!file_exists(path)) {
            printf("kl           skipped: the parent %s no longer exists (hint: pass --ref CKPT)\n",
                   path);
            path[0] = '\0';
        }
    } else {
        printf("kl           skipped: no reference (hint: pass --ref CKPT, e.g. the SFT "
               "checkpoint this policy started from)\n");
    }
}

// Loads a reference policy that can stand beside the checkpoint's.
static int load_reference(const char *path, const Tokenizer *tok, const GPT *policy, GPT *ref) {
    Tokenizer rtok = {0};
    CkptMeta meta = {0};
    double unused[2];
    int unused_norm;
    if (load_eval_model(path, ref, &rtok, &meta, unused, &unused_norm) != 0)
        return rlhf_fail("reference: %s", rlhf_errmsg);
    int rc = 0;
    if (ref->config.value_head)
        rc = rlhf_fail("reference %s is a reward model or critic (stage '%s'); hint: pass --ref "
                       "with the SFT checkpoint the policy started from", path, meta.stage);
    else if (tokenizer_hash(&rtok) != tokenizer_hash(tok) ||
             ref->config.vocab_size != policy->config.vocab_size ||
             ref->config.block_size != policy->config.block_size)
        rc = rlhf_fail("reference %s has another tokenizer or context than the checkpoint; hint: "
                       "pass --ref with a checkpoint of this lineage", path);
    tokenizer_free(&rtok);
    ckpt_meta_free(&meta);
    if (rc != 0) gpt_free(ref);
    return rc;
}

// "0.861; add 0.913 (7 wrong) ...": pooled, then each family with both
static void print_auc(const RewardAuc *a) {
    if (isnan(a->all)) printf("– (no family with both)");
    else printf("%.3f;", a->all);
    for (int f = 0; f < tasks_n_families; f++)
        if (!isnan(a->family[f]))
            printf(" %s %.3f (%d wrong)", tasks_families[f].name, a->family[f], a->wrong[f]);
    printf("\n");
}

// For a policy and ppo.reward_model: the reward of its greedy answers to
// ppo.test_file prompts and, with a reference, its KL to it. Same batches
// (ppo.rollout_batch), seed and order as the held-out evaluation of
// `rlhf ppo`, so a final ppo checkpoint reproduces its last eval_reward
// (raw) and eval_kl_k1.
static int eval_policy(GPT *policy, const Tokenizer *tok, const Config *cfg, const char *parent,
                       const char *ref_arg, const char *stage, long best_of, Results *res) {
    const int T = policy->config.block_size, P = (int)cfg->ppo.rollout_batch;
    const SamplerParams sampling = {(float)cfg->ppo.temperature, (int)cfg->ppo.top_k,
                                    (float)cfg->ppo.top_p};
    const int max_new = (int)cfg->ppo.max_new_tokens;
    if (max_new >= T)
        return rlhf_fail("ppo.max_new_tokens=%d must be below the context %d; hint: lower it",
                         max_new, T);
    GPT rm;
    double norm[2] = {0.0, 1.0};
    int has_norm;
    if (load_reward_model(cfg->ppo.reward_model, tok, T, &rm, norm, &has_norm) != 0) return -1;
    if (!has_norm)
        printf("note: %s has no /state/reward_norm; rewards are reported unnormalised\n",
               cfg->ppo.reward_model);
    PromptSet set;
    EncodedPrompts pp;
    if (jsonl_read_prompts(cfg->ppo.test_file, &set) != 0) {
        gpt_free(&rm);
        return -1;
    }
    if (prompts_encode(&set, tok, T, max_new, "ppo.max_new_tokens", cfg->ppo.eval_prompts,
                       &pp) != 0) {
        jsonl_free_prompts(&set);
        gpt_free(&rm);
        return -1;
    }
    const uint64_t seed = eval_seed(cfg->train.seed);  // as `rlhf ppo` seeds its evaluation
    char ref_path[4096], want[65];
    const char *how;
    reference_choose(ref_arg, stage, parent, ref_path, sizeof ref_path, want, &how);
    int rc = 0, have_ref = 0;
    GPT ref;
    if (ref_path[0]) have_ref = (rc = load_reference(ref_path, tok, policy, &ref)) == 0;
    // one pass: greedy answers for accuracy and reward, sampled ones for KL
    EvalPolicyResult e;
    evaluate_policy(policy, have_ref ? &ref : NULL, &rm, tok, &pp, pp.n, &sampling, max_new, P,
                    seed, norm, &e, NULL);
    res->reward = e.reward;
    res->reward_raw = e.reward_raw;
    res->reward_prompts = (double)e.scored;
    res->policy_accuracy = e.accuracy;
    printf("reward       %s: %ld prompts (%ld skipped as too long), greedy answers scored by %s: "
           "reward %.4f normalised (raw %.4f); their task accuracy %.1f%%\n", cfg->ppo.test_file,
           e.scored, pp.skipped, cfg->ppo.reward_model, res->reward, res->reward_raw,
           100 * res->policy_accuracy);
    if (have_ref) {
        char have[65];
        const char *check = "";
        if (want[0])
            check = file_sha256(ref_path, have) == 0 && !strcmp(have, want)
                        ? ", sha256 matches"
                        : ", sha256 DIFFERS from the lineage record: the file changed since";
        res->kl = e.kl_k1;
        res->kl_k3 = e.kl_k3;
        res->kl_length = e.length;
        res->sample_accuracy = e.sample_accuracy;
        res->sample_reward = e.sample_reward;
        printf("kl           to %s (%s%s): k1 %.4f per sequence (k3 %.4f) on %ld responses "
               "sampled at temperature %g, mean length %.1f tokens\n", ref_path, how, check,
               res->kl, res->kl_k3, pp.n, cfg->ppo.temperature, res->kl_length);
        printf("sampled      the same responses: task accuracy %.1f%%, reward %.4f normalised\n",
               100 * res->sample_accuracy, res->sample_reward);
        res->rm_auc = e.rm_auc;
        printf("rm auc       the reward model ranks a right sampled answer above a wrong one of "
               "the same family: ");
        print_auc(&res->rm_auc);
        gpt_free(&ref);
    }
    if (best_of > 0) {
        BestOfK bo;
        const int batch = P / (int)best_of * (int)best_of;
        evaluate_best_of(policy, &rm, tok, &pp, pp.n, (int)best_of, &sampling, max_new,
                         batch > 0 ? batch : (int)best_of, seed, &bo);
        res->best_of_accuracy = bo.best_accuracy;
        res->best_of_mean = bo.sample_accuracy;
        res->best_of_pass = bo.pass_k;
        printf("best-of-%ld   %ld prompts, %ld answers each sampled at temperature %g, the reward "
               "model's best graded: accuracy %.1f%% (one sample %.1f%%, any of them right "
               "%.1f%%)\n", best_of, bo.graded, best_of, cfg->ppo.temperature,
               100 * bo.best_accuracy, 100 * bo.sample_accuracy, 100 * bo.pass_k);
        res->best_of_auc = bo.rm_auc;
        printf("best-of auc  over all %ld x %ld answers, a right one above a wrong one of the "
               "same family: ", best_of, bo.graded);
        print_auc(&res->best_of_auc);
        res->best_of_auc_within = bo.rm_auc_within;
        printf("best-of auc  the same answers, a right one above a wrong one to the same "
               "prompt: ");
        print_auc(&res->best_of_auc_within);
    }
    fflush(stdout);
    gpt_free(&rm);
    prompts_free(&pp);
    jsonl_free_prompts(&set);
    return rc;
}

// --- output ------------------------------------------------------------------------------

typedef struct {
    const char *key;
    double value;
} Field;

// The RESULT keys, in order; the JSON file has these and a few more.
// accuracy_turnK: turn K of the held-out conversations.
#define MAX_FIELDS (18 + EVAL_MAX_TURNS)
static int result_fields(const Results *r, Field *out) {
    Field all[MAX_FIELDS] = {{"val_loss", r->val_loss},       {"ppl", r->ppl},
                             {"accuracy", r->accuracy},       {"rm_accuracy", r->rm_accuracy},
                             {"rm_margin", r->rm_margin},     {"reward", r->reward},
                             {"kl", r->kl},                   {"sample_accuracy", r->sample_accuracy},
                             {"sample_reward", r->sample_reward},
                             {"likelihood_accuracy", r->lik_accuracy},
                             {"rm_accuracy_right_wrong", r->rm_acc_right_wrong},
                             {"rm_accuracy_wrong_wrong", r->rm_acc_wrong_wrong},
                             {"rm_auc", r->rm_auc.all},
                             {"best_of_accuracy", r->best_of_accuracy},
                             {"best_of_sample_accuracy", r->best_of_mean},
                             {"best_of_pass", r->best_of_pass},
                             {"best_of_rm_auc", r->best_of_auc.all},
                             {"best_of_rm_auc_within", r->best_of_auc_within.all}};
    static const char *const turn_keys[EVAL_MAX_TURNS] = {
        "accuracy_turn1", "accuracy_turn2", "accuracy_turn3", "accuracy_turn4",
        "accuracy_turn5", "accuracy_turn6", "accuracy_turn7", "accuracy_turn8"};
    for (int k = 0; k < EVAL_MAX_TURNS; k++) all[18 + k] = (Field){turn_keys[k], r->turn_acc[k]};
    int n = 0;
    for (int i = 0; i < MAX_FIELDS; i++)
        if (!isnan(all[i].value)) out[n++] = all[i];
    return n;
}

// Numbers carry 9 significant digits, as the metrics CSV does.
#define JSON_DIGITS 9

// A RewardAuc's families (those with both right and wrong answers) under
// key, and their wrong answers under wrong_key; nothing when it was not measured.
static void json_add_auc(JsonOut *root, const char *key, const char *wrong_key,
                         const RewardAuc *a) {
    if (isnan(a->all)) return;
    JsonOut *by_family = json_out_add_object(root, key);
    JsonOut *wrong = json_out_add_object(root, wrong_key);
    for (int fam = 0; fam < tasks_n_families; fam++) {
        if (isnan(a->family[fam])) continue;
        json_out_add_number(by_family, tasks_families[fam].name, a->family[fam], JSON_DIGITS);
        json_out_add_int(wrong, tasks_families[fam].name, a->wrong[fam]);
    }
}

static int write_json(const char *path, const EvalArgs *a, const CkptMeta *meta, const Results *r) {
    JsonOut *root = json_out_object();
    json_out_add_string(root, "checkpoint", a->ckpt);
    json_out_add_string(root, "config", a->config);
    json_out_add_string(root, "stage", meta->stage);
    json_out_add_int(root, "step", meta->step);
    Field main_fields[MAX_FIELDS];
    int n = result_fields(r, main_fields);
    for (int i = 0; i < n; i++)  // a perplexity that overflows is null
        json_out_add_number(root, main_fields[i].key, main_fields[i].value, JSON_DIGITS);
    Field extra[] = {{"lm_tokens", r->lm_tokens},           {"task_graded", r->task_graded},
                     {"rm_pairs", r->rm_pairs},             {"rm_reward_mean", r->rm_mean},
                     {"rm_reward_std", r->rm_std},          {"reward_raw", r->reward_raw},
                     {"reward_prompts", r->reward_prompts}, {"reward_prompts_accuracy", r->policy_accuracy},
                     {"kl_k3", r->kl_k3},                   {"kl_response_length", r->kl_length},
                     {"chat_conversations", r->chat_conversations},
                     {"chat_trimmed_turns", r->chat_trimmed_turns}};
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++)
        if (!isnan(extra[i].value))
            json_out_add_number(root, extra[i].key, extra[i].value, JSON_DIGITS);
    if (!isnan(r->accuracy)) {
        JsonOut *by_family = json_out_add_object(root, "accuracy_by_family");
        for (int fam = 0; fam < tasks_n_families; fam++)
            if (r->family_total[fam])
                json_out_add_number(by_family, tasks_families[fam].name, r->family_acc[fam],
                                    JSON_DIGITS);
    }
    json_add_auc(root, "rm_auc_by_family", "rm_auc_wrong_by_family", &r->rm_auc);
    json_add_auc(root, "best_of_rm_auc_by_family", "best_of_wrong_by_family", &r->best_of_auc);
    json_add_auc(root, "best_of_rm_auc_within_by_family", "best_of_within_wrong_by_family",
                 &r->best_of_auc_within);
    if (!isnan(r->chat_conversations)) {
        JsonOut *graded = json_out_add_array(root, "turn_graded");  // answers per turn
        for (int k = 0; k < EVAL_MAX_TURNS && !isnan(r->turn_graded[k]); k++)
            json_out_add_int(graded, NULL, (int64_t)r->turn_graded[k]);
    }
    if (r->n_shown > 0) {
        JsonOut *examples = json_out_add_array(root, "examples");
        for (long i = 0; i < r->n_shown; i++) {
            JsonOut *e = json_out_add_object(examples, NULL);
            json_out_add_string(e, "family", r->shown_family[i]);
            json_out_add_string(e, "prompt", r->shown_prompt[i]);
            json_out_add_string(e, "expected", r->shown_expected[i]);
            json_out_add_string(e, "response", r->shown_response[i]);
            if (r->shown_correct[i] == 1 || r->shown_correct[i] == 0)
                json_out_add_bool(e, "correct", r->shown_correct[i]);
            else
                json_out_add_null(e, "correct");  // not graded
        }
    }
    char *text = json_out_print(root);
    json_out_free(root);
    AtomicFile af;
    const char *inputs[] = {a->ckpt, a->config, a->text, a->ref};
    int rc = output_open(&af, path, "--json", a->force, inputs, 4);
    if (rc == 0) {
        fprintf(af.f, "%s\n", text);
        rc = atomic_commit(&af);
    }
    free(text);
    return rc;
}

// --- the command ---------------------------------------------------------------------

int cmd_eval(int argc, char **argv) {
    EvalArgs a;
    if (args_parse(&a, argc, argv) != 0) die_last();
    Config cfg;
    config_init(&cfg);
    if (config_load(&cfg, a.config) != 0 || options_apply(&a.opts, &cfg) != 0 ||
        config_validate(&cfg) != 0)
        die_last();
    if (run_set_threads(&cfg) != 0) die_last();
    if (run_set_precision(&cfg) != 0) die_last();

    GPT m;
    Tokenizer tok = {0};
    CkptMeta meta = {0};
    double norm[2];
    int has_norm;
    if (load_eval_model(a.ckpt, &m, &tok, &meta, norm, &has_norm) != 0) die_last();
    const int is_rm = m.config.value_head;
    printf("# rlhf eval %s: stage %s, step %lld; config %s\n", a.ckpt, meta.stage,
           (long long)meta.step, a.config);
    print_model_summary(&m, &tok);
    fflush(stdout);

    Results r;
    results_init(&r);

    // language model: a reward model's trunk no longer predicts text
    if (a.text) {
        if (eval_lm_text(&m, &tok, &cfg, a.text, &r) != 0) die_last();
    } else if (is_rm) {
        printf("lm loss      skipped: a reward model (value head) is not a language model "
               "(pass --text FILE to measure it anyway)\n");
    } else if (eval_lm_shard(&m, &tok, &cfg, &r) != 0) {
        die_last();
    }
    fflush(stdout);

    if (!is_rm) {
        int policy = !strcmp(meta.stage, "sft") || !strcmp(meta.stage, "ppo") ||
                     !strcmp(meta.stage, "dpo");
        if (file_exists(cfg.sft.test_file)) {
            if (eval_tasks(&m, &tok, &cfg, a.show, &r) != 0) die_last();
        } else if (policy) {
            printf("tasks        skipped: sft.test_file '%s' not found (hint: set "
                   "--sft.test_file=DIR/sft_test.jsonl from 'rlhf tasks')\n", cfg.sft.test_file);
        }
        if (cfg.sft.chat_eval_examples > 0 && file_exists(cfg.sft.chat_test_file)) {
            if (eval_chat(&m, &tok, &cfg, &r) != 0) die_last();
        } else if (policy && cfg.sft.chat_eval_examples > 0) {
            printf("by turn      skipped: sft.chat_test_file '%s' not found (hint: set "
                   "--sft.chat_test_file=DIR/chat_test.jsonl from 'rlhf tasks')\n",
                   cfg.sft.chat_test_file);
        }
        fflush(stdout);
        if (file_exists(cfg.reward.test_file) && eval_pairs(&m, &tok, &cfg, NULL, &r) != 0)
            die_last();
        fflush(stdout);
        if (cfg.ppo.reward_model[0]) {
            if (!file_exists(cfg.ppo.test_file))
                printf("reward       skipped: ppo.test_file '%s' not found (hint: set "
                       "--ppo.test_file=DIR/ppo_test.jsonl from 'rlhf tasks')\n", cfg.ppo.test_file);
            else if (eval_policy(&m, &tok, &cfg, meta.parent, a.ref, meta.stage, a.best_of, &r) != 0)
                die_last();
        } else if (policy || a.best_of) {
            printf("reward       skipped: ppo.reward_model is empty (hint: "
                   "--ppo.reward_model=CKPT to score answers and measure the KL%s)\n",
                   a.best_of ? "; best-of-N needs it to pick" : "");
        }
    } else {
        if (file_exists(cfg.reward.test_file)) {
            if (eval_pairs(&m, &tok, &cfg, has_norm ? norm : NULL, &r) != 0) die_last();
        } else {
            printf("reward model skipped: reward.test_file '%s' not found (hint: set "
                   "--reward.test_file=DIR/pref_test.jsonl from 'rlhf tasks')\n",
                   cfg.reward.test_file);
        }
        if (a.ref) printf("note: --ref is ignored for a reward model\n");
    }

    Field fields[MAX_FIELDS];
    int nf = result_fields(&r, fields);
    printf("RESULT stage=%s", meta.stage);
    for (int i = 0; i < nf; i++) printf(" %s=%.6g", fields[i].key, fields[i].value);
    printf("\n");
    fflush(stdout);
    if (a.json && write_json(a.json, &a, &meta, &r) != 0) die_last();

    results_free(&r);
    options_free(&a.opts);
    ckpt_meta_free(&meta);
    tokenizer_free(&tok);
    gpt_free(&m);
    config_free(&cfg);
    return 0;
}

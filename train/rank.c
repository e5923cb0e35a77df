// rlhf rank CKPT CONFIG [--section.key=value ...]
// Comparison data as InstructGPT collected it: for each prompt, sample k
// responses from a policy (the SFT model), have a labeler rank them, and
// write every pair of differently ranked responses as a preference line
// with the prompt's group id and both ranks. The labeler is the task
// grader (tasks_rank): the right answer first, then wrong answers by their
// edit distance to the right one, answers that never end last; equal ranks
// give no pair. rank.noise flips each comparison with that probability, as
// labelers who disagree would (InstructGPT measured ~73% agreement); a
// flip needs both answers to have ended, since a chosen answer without
// end-of-text cannot be written. An answer that is not valid UTF-8 (half a
// character from an undertrained model) is left out, since JSON cannot
// hold it. Deterministic for a seed (train.seed).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "common.h"
#include "config.h"
#include "evaluate.h"
#include "jsonl.h"
#include "options.h"
#include "run.h"
#include "tasks.h"

#define USAGE "rlhf rank CKPT CONFIG [--section.key=value ...]"

typedef struct {
    const EncodedPrompts *prompts;
    JsonlWriter out;
    Rng noise_rng;
    double noise;
    int failed;          // a write failed; the rest is skipped
    long groups, ungraded, responses, right, no_end, pairs, no_pair;
    long right_wrong, flippable, flipped;
    long not_utf8;       // answers left out: not valid UTF-8
} Ranker;

static void rank_group(void *ctx, long i, char *const *all_texts, const int *all_ended, int k) {
    Ranker *rk = ctx;
    const PromptExample *ex = rk->prompts->ex[i];
    // an answer that is not valid UTF-8 (an untrained model can emit half a
    // character) cannot be written as JSON text: it is left out, and counted
    char *texts[64];
    int ended[64], ranks[64], n_ok = 0;
    ASSERT(k <= 64);
    for (int j = 0; j < k; j++) {
        if (utf8_invalid_at((const unsigned char *)all_texts[j], strlen(all_texts[j])) >= 0) {
            rk->not_utf8++;
            continue;
        }
        texts[n_ok] = all_texts[j];
        ended[n_ok++] = all_ended[j];
    }
    for (int j = 0; j < n_ok; j++) {
        ranks[j] = ex->family[0] ? tasks_rank(ex->family, ex->prompt, texts[j], ended[j]) : -1;
        if (ranks[j] < 0) {
            rk->ungraded++;
            return;
        }
    }
    rk->groups++;
    for (int j = 0; j < n_ok; j++) {
        rk->responses++;
        rk->right += ranks[j] == 0;
        rk->no_end += !ended[j];
    }
    int pairs[64 * 63 / 2][2];
    const int n = tasks_rank_pairs(ranks, ended, n_ok, rk->noise, &rk->noise_rng, pairs,
                                   &rk->flippable, &rk->flipped);
    for (int q = 0; q < n; q++) {
        const int c = pairs[q][0], r = pairs[q][1];
        rk->right_wrong += ranks[c] == 0 || ranks[r] == 0;
        const PrefExample p = {.prompt = ex->prompt,
                               .chosen = texts[c],
                               .rejected = texts[r],
                               .family = ex->family,
                               .rejected_kind = "",
                               .rejected_no_eot = !ended[r],
                               .group = i,
                               .ranks = {ranks[c], ranks[r]},
                               .history = ex->history,  // a multi-turn prompt keeps its turns
                               .n_history = ex->n_history};
        if (!rk->failed && jsonl_write_pref(&rk->out, &p) != 0) rk->failed = 1;
    }
    rk->pairs += n;
    rk->no_pair += n == 0;
}

int cmd_rank(int argc, char **argv) {
    static const OptionSpec spec = {
        .usage = USAGE,
        .positional = {"checkpoint", "CONFIG"},
        .required = 2,
        .overrides = 1,
    };
    Options opts;
    if (options_parse(&opts, &spec, argc, argv) != 0) die_last();
    const char *ckpt = opts.positional[0];
    Config cfg;
    config_init(&cfg);
    if (config_load(&cfg, opts.positional[1]) != 0 || options_apply(&opts, &cfg) != 0 ||
        config_validate(&cfg) != 0)
        die_last();
    if (run_set_threads(&cfg) != 0 || run_set_precision(&cfg) != 0) die_last();
    const char *out = cfg.rank.out_file;
    struct stat st;
    if (!out[0]) die("rank.out_file is empty; hint: --rank.out_file=FILE.jsonl");
    if (stat(out, &st) == 0)
        die("%s exists; hint: remove it or choose another --rank.out_file (comparisons are never "
            "overwritten)", out);

    GPT m;
    Tokenizer tok = {0};
    PromptSet set;
    EncodedPrompts prompts = {0};
    const int k = (int)cfg.rank.k, max_new = (int)cfg.rank.max_new_tokens;
    if (load_policy_file(ckpt, &m, &tok, "rank") != 0 ||
        jsonl_read_prompts(cfg.rank.prompts_file, &set) != 0 ||
        prompts_encode(&set, &tok, m.config.block_size, max_new, "rank.max_new_tokens",
                       cfg.rank.n_prompts, &prompts) != 0)
        die_last();
    const int batch = (int)(cfg.rank.batch / k * k);
    printf("# rlhf rank %s: %ld prompts of %s (%ld skipped: no room for %d new tokens), k = %d, "
           "noise %g, temperature %g, seed %lld -> %s\n", ckpt, prompts.n, cfg.rank.prompts_file,
           prompts.skipped, max_new, k, cfg.rank.noise, cfg.rank.temperature,
           (long long)cfg.train.seed, out);
    fflush(stdout);

    char *dir = strdup_check(out);  // the file's directory, created if missing
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        if (mkdir_p(dir) != 0) die_last();
    }
    free(dir);
    Ranker rk = {.prompts = &prompts, .noise = cfg.rank.noise};
    rng_init(&rk.noise_rng, (uint64_t)cfg.train.seed ^ 0x6e6f697365ULL);  // "noise"
    if (jsonl_writer_open(&rk.out, out) != 0) die_last();
    const SamplerParams sampling = {(float)cfg.rank.temperature, 0, 1.0f};
    const double t0 = now_seconds();
    sample_groups(&m, &tok, &prompts, prompts.n, k, &sampling, max_new, batch,
                  eval_seed(cfg.train.seed), rank_group, &rk);
    if (rk.failed) {
        jsonl_writer_abort(&rk.out);
        die("%s: writing failed; hint: check free disk space (nothing was written)", out);
    }
    if (rk.pairs == 0) {
        jsonl_writer_abort(&rk.out);
        die("no comparison: every prompt's %d responses ranked equal (or none could be graded); "
            "hint: raise rank.k or rank.temperature", k);
    }
    if (jsonl_writer_commit(&rk.out) != 0) die_last();
    const double secs = now_seconds() - t0;
    printf("ranked %ld prompts (%ld ungraded, left out) in %.1f s: %ld responses (%ld more left "
           "out: not valid UTF-8), %.1f%% right, %.1f%% without end-of-text\n", rk.groups,
           rk.ungraded, secs, rk.responses, rk.not_utf8,
           100.0 * rk.right / (rk.responses ? rk.responses : 1),
           100.0 * rk.no_end / (rk.responses ? rk.responses : 1));
    printf("wrote %ld comparisons (%.2f per prompt; %ld of a right and a wrong answer, %ld of two "
           "wrong ones); %ld prompts without any (all ranked equal); noise flipped %ld of %ld "
           "flippable (%.1f%%)\n", rk.pairs, (double)rk.pairs / (rk.groups ? rk.groups : 1),
           rk.right_wrong, rk.pairs - rk.right_wrong, rk.no_pair, rk.flipped, rk.flippable,
           100.0 * rk.flipped / (rk.flippable ? rk.flippable : 1));
    prompts_free(&prompts);
    jsonl_free_prompts(&set);
    tokenizer_free(&tok);
    gpt_free(&m);
    config_free(&cfg);
    options_free(&opts);
    return 0;
}

// `rlhf tasks`: writes the task data files (SFT, preference and PPO prompt
// splits, train and test) with the generators of src/tasks.c. Only reading
// the options (options.h) and printing live here; tasks_write_data does the
// work.
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "common.h"
#include "options.h"
#include "tasks.h"

static void tasks_usage(FILE *out) {
    fprintf(out,
            "usage: rlhf tasks [--out DIR] [--seed N] [--n_train N] [--n_test N] "
            "[--chat_share P] [--families a,b,c]\n"
            "  --out DIR        where the seven .jsonl files go (default data/gen/tasks)\n"
            "  --seed N         generator seed; the same seed writes the same bytes (default 1)\n"
            "  --n_train N      examples in each *_train file (default 20000)\n"
            "  --n_test N       examples in each *_test file (default 500); chat_test.jsonl\n"
            "                   holds N held-out conversations of 2-4 task questions\n"
            "  --chat_share P   share of sft_train.jsonl lines that are conversations of 2-4\n"
            "                   task questions, after the N single-turn lines (default 0.2;\n"
            "                   0: single-turn only; at most 0.5)\n"
            "  --families LIST  comma-separated, default all:\n");
    for (int f = 0; f < tasks_n_families; f++)
        fprintf(out, "                     %-9s %s\n", tasks_families[f].name,
                tasks_families[f].example);
}

// A whole-string decimal in [lo, hi].
static int parse_count(const char *opt, const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return rlhf_fail("%s: bad value '%s'; hint: give a whole number from %ld to %ld", opt, s,
                         lo, hi);
    *out = v;
    return 0;
}

static int parse_seed(const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-')
        return rlhf_fail("--seed: bad value '%s'; hint: give a non-negative whole number", s);
    *out = (uint64_t)v;
    return 0;
}

int cmd_tasks(int argc, char **argv) {
    static const OptionSpec cli = {
        .usage = "usage: rlhf tasks [--out DIR] [--seed N] [--n_train N] [--n_test N] "
                 "[--chat_share P] [--families a,b,c] (--help explains them)",
        .options = {{"help", 0, 'h'},
                    {"out", 1, 0},
                    {"seed", 1, 0},
                    {"n_train", 1, 0},
                    {"n_test", 1, 0},
                    {"chat_share", 1, 0},
                    {"families", 1, 0}},
    };
    Options opts;  // the values point into argv
    if (options_parse(&opts, &cli, argc, argv) != 0) die_last();
    if (options_get(&opts, "help")) {
        tasks_usage(stdout);
        options_free(&opts);
        return 0;
    }
    TasksSpec spec = {.out_dir = "data/gen/tasks", .seed = 1, .n_train = 20000, .n_test = 500,
                      .chat_share = 0.2};
    const char *v;
    if ((v = options_get(&opts, "out"))) {
        if (!v[0]) die("tasks: --out is empty; hint: give a directory");
        spec.out_dir = v;
    }
    if ((v = options_get(&opts, "seed")) && parse_seed(v, &spec.seed) != 0) die_last();
    if ((v = options_get(&opts, "n_train")) &&
        parse_count("--n_train", v, 1, 100000000, &spec.n_train) != 0)
        die_last();
    if ((v = options_get(&opts, "n_test")) &&
        parse_count("--n_test", v, 1, 100000000, &spec.n_test) != 0)
        die_last();
    if ((v = options_get(&opts, "chat_share"))) {
        char *end;
        errno = 0;
        spec.chat_share = strtod(v, &end);
        if (errno || end == v || *end || !(spec.chat_share >= 0.0 && spec.chat_share <= 0.5))
            die("--chat_share: bad value '%s'; hint: give a share from 0 to 0.5, e.g. 0.2", v);
    }
    spec.n_families = tasks_parse_families(options_get(&opts, "families"), spec.families);
    if (spec.n_families < 0) die_last();
    options_free(&opts);

    printf("tasks: seed %" PRIu64 ", %ld train / %ld test examples per file, chat share %g, "
           "families", spec.seed, spec.n_train, spec.n_test, spec.chat_share);
    for (int i = 0; i < spec.n_families; i++)
        printf("%s%s", i ? "," : " ", tasks_families[spec.families[i]].name);
    printf("\n");
    fflush(stdout);

    TasksReport report;
    if (tasks_write_data(&spec, &report)) die_last();
    for (int k = 0; k < TASKS_N_FILES; k++) {
        printf("  wrote %s/%s  %ld lines", spec.out_dir, tasks_file_names[k],
               report.written[k] + (k == TASKS_SFT_TRAIN ? report.written_chat : 0));
        if (k == TASKS_SFT_TRAIN && report.written_chat)
            printf(": %ld single-turn, then %ld conversations of %d-%d turns", report.written[k],
                   report.written_chat, TASKS_CHAT_MIN_TURNS, TASKS_CHAT_MAX_TURNS);
        if (k == TASKS_CHAT_TEST)
            printf(" (conversations of %d-%d turns)", TASKS_CHAT_MIN_TURNS, TASKS_CHAT_MAX_TURNS);
        if (report.dropped[k] && k == TASKS_SFT_TRAIN)
            printf(" (skipped %ld generated conversation prompts found in a test file)",
                   report.dropped[k]);
        else if (report.dropped[k])
            printf(" (skipped %ld generated prompts already in train or in this file)",
                   report.dropped[k]);
        printf("\n");
    }
    return 0;
}

// `rlhf tasks`: writes the task data files (SFT, preference and PPO prompt
// splits, train and test) with the generators of src/tasks.c. Only option
// parsing and printing live here; tasks_write_data does the work.
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "common.h"
#include "tasks.h"

static void tasks_usage(FILE *out) {
    fprintf(out,
            "usage: rlhf tasks [--out DIR] [--seed N] [--n_train N] [--n_test N] "
            "[--families a,b,c]\n"
            "  --out DIR        where the six .jsonl files go (default data/gen/tasks)\n"
            "  --seed N         generator seed; the same seed writes the same bytes (default 1)\n"
            "  --n_train N      examples in each *_train file (default 20000)\n"
            "  --n_test N       examples in each *_test file (default 500)\n"
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
    TasksSpec spec = {.out_dir = "data/gen/tasks", .seed = 1, .n_train = 20000, .n_test = 500};
    const char *families = NULL;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            tasks_usage(stdout);
            return 0;
        }
        // --key value or --key=value
        static const char *const keys[] = {"--out", "--seed", "--n_train", "--n_test",
                                           "--families"};
        int k = -1;
        const char *val = NULL;
        for (int j = 0; j < 5; j++) {
            size_t n = strlen(keys[j]);
            if (strncmp(arg, keys[j], n) != 0) continue;
            if (arg[n] == '=') val = arg + n + 1;
            else if (arg[n] == '\0' && i + 1 < argc) val = argv[++i];
            else if (arg[n] != '\0') continue;
            k = j;
            break;
        }
        int rc = 0;
        if (k < 0) {
            rc = rlhf_fail("tasks: unknown option '%s'; hint: run 'rlhf tasks --help' for the "
                           "options",
                           arg);
        } else if (!val) {
            rc = rlhf_fail("tasks: %s needs a value; hint: e.g. %s=...", keys[k], keys[k]);
        } else if (k == 0) {
            if (!val[0]) rc = rlhf_fail("tasks: --out is empty; hint: give a directory");
            spec.out_dir = val;
        } else if (k == 1) {
            rc = parse_seed(val, &spec.seed);
        } else if (k == 2) {
            rc = parse_count("--n_train", val, 1, 100000000, &spec.n_train);
        } else if (k == 3) {
            rc = parse_count("--n_test", val, 1, 100000000, &spec.n_test);
        } else {
            families = val;
        }
        if (rc) {
            fprintf(stderr, "rlhf: error: %s\n", rlhf_errmsg);
            return 1;
        }
    }
    spec.n_families = tasks_parse_families(families, spec.families);
    if (spec.n_families < 0) {
        fprintf(stderr, "rlhf: error: %s\n", rlhf_errmsg);
        return 1;
    }

    printf("tasks: seed %" PRIu64 ", %ld train / %ld test examples per file, families", spec.seed,
           spec.n_train, spec.n_test);
    for (int i = 0; i < spec.n_families; i++)
        printf("%s%s", i ? "," : " ", tasks_families[spec.families[i]].name);
    printf("\n");
    fflush(stdout);

    TasksReport report;
    if (tasks_write_data(&spec, &report)) {
        fprintf(stderr, "rlhf: error: %s\n", rlhf_errmsg);
        return 1;
    }
    for (int k = 0; k < TASKS_N_FILES; k++) {
        printf("  wrote %s/%s  %ld lines", spec.out_dir, tasks_file_names[k], report.written[k]);
        if (report.dropped[k])
            printf(" (skipped %ld generated prompts already in train or in this file)",
                   report.dropped[k]);
        printf("\n");
    }
    return 0;
}

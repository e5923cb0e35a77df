// Tests for options.c: positional arguments, flags, --name VALUE and
// --name=VALUE, one-letter aliases, --section.key=value overrides and the
// --key VALUE form of section-bound commands (applied in order), and the
// one-line errors with the usage as hint. Also parse_options (run.h), the
// form chat uses.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "common.h"
#include "config.h"
#include "options.h"
#include "run.h"

#define USAGE "usage: rlhf cmd CKPT CONFIG [--text FILE] [--verbose]"

static const OptionSpec eval_like = {
    .usage = USAGE,
    .positional = {"checkpoint", "CONFIG"},
    .required = 2,
    .options = {{"text", 1, 0}, {"verbose", 0, 'v'}, {"show", 1, 's'}},
    .overrides = 1,
};

static const OptionSpec sample_like = {
    .usage = USAGE,
    .positional = {"checkpoint"},
    .required = 1,
    .options = {{"logits", 1, 0}},
    .section = "sample",
};

// Parses a NULL-terminated argument list (argv[0] = "cmd").
static int parse(Options *o, const OptionSpec *spec, const char *const *args) {
    char *argv[32] = {"cmd"};
    int argc = 1;
    for (; args[argc - 1]; argc++) argv[argc] = (char *)args[argc - 1];
    return options_parse(o, spec, argc, argv);
}

// The parse fails with a message containing want and the usage hint.
static void expect_error(const OptionSpec *spec, const char *const *args, const char *want) {
    Options o;
    rlhf_errmsg[0] = '\0';
    assert_int_equal(parse(&o, spec, args), -1);
    options_free(&o);
    if (!strstr(rlhf_errmsg, want)) fail_msg("message \"%s\" lacks \"%s\"", rlhf_errmsg, want);
    char hint[200];
    snprintf(hint, sizeof hint, "; hint: %s", spec->usage);
    if (!strstr(rlhf_errmsg, hint)) fail_msg("message \"%s\" lacks the usage hint", rlhf_errmsg);
}

static void test_positional_and_options(void **state) {
    Options o;
    assert_int_equal(parse(&o, &eval_like,
                           (const char *[]){"a.h5", "--text", "t.txt", "c.ini", "--verbose",
                                            "--train.seed=3", "--show=-1", "-", NULL}),
                     -1);  // "-" alone is a positional: a third one
    options_free(&o);
    assert_int_equal(parse(&o, &eval_like,
                           (const char *[]){"a.h5", "--text", "--odd", "c.ini", "-v",
                                            "--train.seed=3", "--show=-1", "--text=u.txt",
                                            "--optim.lr=1e-3", NULL}),
                     0);
    assert_int_equal(o.n_positional, 2);
    assert_string_equal(o.positional[0], "a.h5");
    assert_string_equal(o.positional[1], "c.ini");
    assert_string_equal(options_get(&o, "text"), "u.txt");  // the last one wins
    assert_string_equal(options_get(&o, "verbose"), "");    // a flag given
    assert_string_equal(options_get(&o, "show"), "-1");     // values are taken as they are
    assert_int_equal(o.n_overrides, 2);
    assert_string_equal(o.overrides[0], "--train.seed=3");
    assert_string_equal(o.overrides[1], "--optim.lr=1e-3");
    Config cfg;
    config_init(&cfg);
    assert_int_equal(options_apply(&o, &cfg), 0);
    assert_int_equal(cfg.train.seed, 3);
    assert_true(cfg.optim.lr == 1e-3);
    config_free(&cfg);
    options_free(&o);

    assert_int_equal(parse(&o, &eval_like, (const char *[]){"a", "b", "-s", "4", NULL}), 0);
    assert_string_equal(options_get(&o, "show"), "4");  // an alias takes its value too
    assert_null(options_get(&o, "text"));
    assert_null(options_get(&o, "verbose"));
    options_free(&o);
}

static void test_errors(void **state) {
    expect_error(&eval_like, (const char *[]){NULL}, "no checkpoint given");
    expect_error(&eval_like, (const char *[]){"a.h5", NULL}, "no CONFIG given");
    expect_error(&eval_like, (const char *[]){"a", "b", "c", NULL}, "unexpected argument 'c'");
    expect_error(&eval_like, (const char *[]){"a", "b", "--bogus", NULL},
                 "unknown option '--bogus'");
    expect_error(&eval_like, (const char *[]){"a", "b", "-x", NULL}, "unknown option '-x'");
    expect_error(&eval_like, (const char *[]){"a", "b", "-vv", NULL}, "unknown option '-vv'");
    expect_error(&eval_like, (const char *[]){"a", "b", "--", NULL}, "unknown option '--'");
    expect_error(&eval_like, (const char *[]){"a", "b", "--text", NULL},
                 "option '--text' needs a value");
    expect_error(&eval_like, (const char *[]){"a", "b", "-s", NULL}, "option '-s' needs a value");
    expect_error(&eval_like, (const char *[]){"a", "b", "--verbose=1", NULL},
                 "option '--verbose' takes no value");
    // an override needs its section and '='; only commands that take them
    expect_error(&eval_like, (const char *[]){"a", "b", "--seed=3", NULL},
                 "unknown option '--seed=3'");
    expect_error(&eval_like, (const char *[]){"a", "b", "--train.seed", "3", NULL},
                 "unknown option '--train.seed'");
    OptionSpec no_overrides = eval_like;
    no_overrides.overrides = 0;
    expect_error(&no_overrides, (const char *[]){"a", "b", "--train.seed=3", NULL},
                 "unknown option '--train.seed=3'");
    // a bad override is found when applied
    Options o;
    assert_int_equal(parse(&o, &eval_like, (const char *[]){"a", "b", "--train.bogus=1", NULL}), 0);
    Config cfg;
    config_init(&cfg);
    assert_int_equal(options_apply(&o, &cfg), -1);
    assert_non_null(strstr(rlhf_errmsg, "override '--train.bogus=1': unknown key 'bogus'"));
    config_free(&cfg);
    options_free(&o);
}

// sample and chat: --key VALUE and --key=VALUE set [sample] keys, in order
// with --section.key=value.
static void test_section_options(void **state) {
    Options o;
    assert_int_equal(parse(&o, &sample_like,
                           (const char *[]){"--temperature", "0", "m.h5", "--top_k=5",
                                            "--sample.temperature=0.5", "--prompt", "--x",
                                            "--logits", "l.txt", NULL}),
                     0);
    assert_string_equal(o.positional[0], "m.h5");
    assert_string_equal(options_get(&o, "logits"), "l.txt");
    assert_int_equal(o.n_overrides, 4);
    assert_string_equal(o.overrides[0], "sample.temperature=0");
    assert_string_equal(o.overrides[1], "sample.top_k=5");
    assert_string_equal(o.overrides[2], "--sample.temperature=0.5");
    assert_string_equal(o.overrides[3], "sample.prompt=--x");
    Config cfg;
    config_init(&cfg);
    assert_int_equal(options_apply(&o, &cfg), 0);
    assert_true(cfg.sample.temperature == 0.5);
    assert_int_equal(cfg.sample.top_k, 5);
    assert_string_equal(cfg.sample.prompt, "--x");
    config_free(&cfg);
    options_free(&o);
    expect_error(&sample_like, (const char *[]){"m.h5", "--top_k", NULL},
                 "option '--top_k' needs a value");
    expect_error(&sample_like, (const char *[]){"m.h5", "--sample.top_k", "3", NULL},
                 "unknown option '--sample.top_k'");
    expect_error(&sample_like, (const char *[]){NULL}, "no checkpoint given");
}

static void test_parse_options(void **state) {
    Config cfg;
    config_init(&cfg);
    const char *pos[1] = {NULL};
    char *argv[] = {"chat", "--seed", "7", "m.h5", "--top_p=0.9", NULL};
    assert_int_equal(parse_options(&cfg, "sample", 5, argv, pos, 1, USAGE), 1);
    assert_string_equal(pos[0], "m.h5");
    assert_int_equal(cfg.sample.seed, 7);
    assert_true(cfg.sample.top_p == 0.9);
    char *none[] = {"chat", "--seed=1", NULL};
    assert_int_equal(parse_options(&cfg, "sample", 2, none, pos, 1, USAGE), 0);
    char *two[] = {"chat", "a", "b", NULL};
    rlhf_errmsg[0] = '\0';
    assert_int_equal(parse_options(&cfg, "sample", 3, two, pos, 1, USAGE), -1);  // no exit
    assert_non_null(strstr(rlhf_errmsg, "unexpected argument 'b'; hint: " USAGE));
    char *bad[] = {"chat", "m.h5", "--bogus", "1", NULL};
    assert_int_equal(parse_options(&cfg, "sample", 4, bad, pos, 1, USAGE), -1);
    assert_non_null(strstr(rlhf_errmsg, "unknown key 'bogus' in [sample]"));
    config_free(&cfg);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_positional_and_options),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_section_options),
        cmocka_unit_test(test_parse_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

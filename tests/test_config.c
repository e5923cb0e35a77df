// Tests for config.c: defaults, loading INI files, every kind of input error
// (with FILE:LINE in the message), --overrides, cross-key checks, and the
// INI / JSON / help printouts. INI files are written to a mkdtemp directory.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cJSON.h>

#include "common.h"
#include "config.h"

static char tmpdir[64];
static char ini_path[128];

static int group_setup(void **state) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/rlhf_test_config_XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    snprintf(ini_path, sizeof ini_path, "%s/run.ini", tmpdir);
    return 0;
}

static int group_teardown(void **state) {
    remove(ini_path);
    return rmdir(tmpdir);
}

// Writes text to ini_path and returns the path.
static const char *write_ini(const char *text) {
    FILE *f = fopen(ini_path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return ini_path;
}

// The last error message must contain `want` (printed when it does not).
static void assert_msg_has(const char *want) {
    if (!strstr(rlhf_errmsg, want))
        fail_msg("message \"%s\" lacks \"%s\"", rlhf_errmsg, want);
}

// Expects config_load of `text` to fail at `line` with `want` in the message.
static void expect_load_error(const char *text, int line, const char *want) {
    Config cfg;
    config_init(&cfg);
    rlhf_errmsg[0] = '\0';
    assert_int_equal(config_load(&cfg, write_ini(text)), -1);
    char where[200];
    snprintf(where, sizeof where, "%s:%d: ", ini_path, line);
    assert_msg_has(where);
    assert_msg_has(want);
    assert_non_null(strstr(rlhf_errmsg, "hint"));
    assert_null(strchr(rlhf_errmsg, '\n'));  // one line
    config_free(&cfg);
}

static void test_defaults(void **state) {
    Config cfg;
    config_init(&cfg);
    assert_int_equal(cfg.model.n_layer, 4);
    assert_int_equal(cfg.model.n_embd, 128);
    assert_int_equal(cfg.data.vocab_size, 512);
    assert_true(cfg.optim.lr == 1e-3);
    assert_true(cfg.optim.eps == 1e-8);
    assert_int_equal(cfg.train.shuffle, 1);
    assert_int_equal(cfg.ppo.adaptive_kl, 0);
    assert_string_equal(cfg.data.tokenizer, "char");
    assert_string_equal(cfg.checkpoint.dir, "checkpoints/run");
    assert_non_null(cfg.data.corpus);  // "" means unset, never NULL
    assert_string_equal(cfg.data.corpus, "");
    assert_string_equal(cfg.ppo.reward_model, "");
    assert_true(cfg.dpo.beta == 0.1 && cfg.dpo.label_smoothing == 0.0);
    assert_string_equal(cfg.dpo.loss, "sigmoid");
    assert_string_equal(cfg.dpo.train_file, "data/gen/tasks/pref_train.jsonl");
    assert_int_equal(config_validate(&cfg), 0);  // the defaults are a valid run
    config_free(&cfg);
}

static void test_load_good_file(void **state) {
    Config cfg;
    config_init(&cfg);
    cfg.train.seed = 7;  // not in the file: must survive the load
    const char *text =
        "# a comment\n"
        "; another comment\n"
        "[model]\n"
        "n_layer = 2\n"
        "  n_head = 2        ; indented, with an inline ';' comment\n"
        "  n_embd = 64       # and with '#'\n"
        "\n"
        "[optim]\n"
        "lr = 3e-4\n"
        "beta2=0.95\n"
        "[train]\n"
        "shuffle = No\n"
        "max_steps = -0\r\n"
        "[data]\n"
        "dir = \"my data # dir\"   # quoted, so '#' inside stays\n"
        "corpus = corpus.txt.gz\n"
        "tokenizer = 'bpe'\n"
        "[checkpoint]\n"
        "init =\n";
    assert_int_equal(config_load(&cfg, write_ini(text)), 0);
    assert_int_equal(cfg.model.n_layer, 2);
    assert_int_equal(cfg.model.n_head, 2);
    assert_int_equal(cfg.model.n_embd, 64);
    assert_int_equal(cfg.model.block_size, 128);  // default kept
    assert_true(cfg.optim.lr == 3e-4);
    assert_true(cfg.optim.beta2 == 0.95);
    assert_int_equal(cfg.train.shuffle, 0);
    assert_int_equal(cfg.train.max_steps, 0);
    assert_int_equal(cfg.train.seed, 7);
    assert_string_equal(cfg.data.dir, "my data # dir");
    assert_string_equal(cfg.data.corpus, "corpus.txt.gz");
    assert_string_equal(cfg.data.tokenizer, "bpe");
    assert_string_equal(cfg.checkpoint.init, "");
    config_free(&cfg);
}

static void test_load_bool_spellings(void **state) {
    static const char *const on[] = {"true", "1", "yes", "on", "TRUE", "Yes"};
    static const char *const off[] = {"false", "0", "no", "off", "False", "OFF"};
    char text[100];
    for (int i = 0; i < 6; i++) {
        Config cfg;
        config_init(&cfg);
        snprintf(text, sizeof text, "[ppo]\nadaptive_kl = %s\n[train]\nshuffle = %s\n", on[i],
                 off[i]);
        assert_int_equal(config_load(&cfg, write_ini(text)), 0);
        assert_int_equal(cfg.ppo.adaptive_kl, 1);
        assert_int_equal(cfg.train.shuffle, 0);
        config_free(&cfg);
    }
}

static void test_load_missing_file(void **state) {
    Config cfg;
    config_init(&cfg);
    char path[200];
    snprintf(path, sizeof path, "%s/no_such.ini", tmpdir);
    assert_int_equal(config_load(&cfg, path), -1);
    assert_msg_has(path);
    assert_msg_has("cannot open");
    // a directory opens but cannot be read as a file
    assert_int_equal(config_load(&cfg, tmpdir), -1);
    assert_msg_has(tmpdir);
    config_free(&cfg);
}

static void test_load_unknown_section(void **state) {
    expect_load_error("[model]\nn_layer = 2\n[modle]\nn_head = 2\n", 3, "did you mean [model]");
    // an unknown section with no keys is an error too, listing the valid ones
    expect_load_error("[model]\n[zzzzzz]\n", 2, "unknown section [zzzzzz]");
    expect_load_error("[zzzzzz]\n", 1, "[model], [data], [train]");
}

static void test_load_unknown_key(void **state) {
    expect_load_error("[model]\nn_layer = 2\nn_layr = 3\n", 3, "did you mean 'n_layer'");
    // far from every key: name them all
    expect_load_error("[model]\nwidth = 3\n", 2, "n_layer, n_head, n_embd, block_size");
    // a key of another section
    expect_load_error("[train]\nlr = 0.1\n", 2, "'lr' belongs in [optim]");
    // before any section
    expect_load_error("n_layer = 2\n", 1, "under [model]");
}

static void test_load_bad_int(void **state) {
    expect_load_error("[model]\n\nn_layer = 4x\n", 3, "'4x' is not an integer");
    expect_load_error("[model]\nn_layer = 2.5\n", 2, "not an integer");
    expect_load_error("[model]\nn_layer =\n", 2, "not an integer");
    expect_load_error("[train]\nseed = 99999999999999999999\n", 2, "out of range");
}

static void test_load_bad_float(void **state) {
    expect_load_error("[optim]\nlr = fast\n", 2, "'fast' is not a number");
    expect_load_error("[optim]\nlr = 1e-3x\n", 2, "not a number");
    expect_load_error("[optim]\nlr = nan\n", 2, "not a finite number");
    expect_load_error("[optim]\nlr = 1e999\n", 2, "not a finite number");
}

static void test_load_bad_bool(void **state) {
    expect_load_error("[train]\nshuffle = maybe\n", 2, "'maybe' is not a boolean");
}

static void test_load_duplicate_key(void **state) {
    expect_load_error("[model]\nn_layer = 2\nn_head = 2\nn_layer = 3\n", 4,
                      "set twice (first on line 2)");
    // the same key name in two sections is fine
    Config cfg;
    config_init(&cfg);
    const char *two = "[sft]\ntest_file = a\n[ppo]\ntest_file = b\n";
    assert_int_equal(config_load(&cfg, write_ini(two)), 0);
    assert_string_equal(cfg.sft.test_file, "a");
    assert_string_equal(cfg.ppo.test_file, "b");
    config_free(&cfg);
}

static void test_load_syntax_errors(void **state) {
    expect_load_error("[model]\nn_layer = 2\nthis is not ini\n", 3,
                      "cannot parse 'this is not ini'");
    expect_load_error("[model\nn_layer = 2\n", 1, "cannot parse");
    expect_load_error("[data]\ndir = \"unterminated\n", 2, "no closing quote");
    expect_load_error("[data]\ndir = \"a\" b\n", 2, "after the quoted value");
    // the first error wins, whichever part of the reader finds it
    expect_load_error("[model]\nbad line\nn_layr = 2\n", 2, "cannot parse");
    expect_load_error("[model]\nn_layr = 2\nbad line\n", 2, "unknown key");
    // a line longer than inih's buffer is refused, not cut
    char text[600];
    snprintf(text, sizeof text, "[data]\ndir = %0450d\n", 1);
    expect_load_error(text, 2, "longer than");
}

static void test_load_failure_leaves_config(void **state) {
    Config cfg;
    config_init(&cfg);
    const char *text = "[model]\nn_layer = 8\n[data]\ndir = x\nnope = 1\n";
    assert_int_equal(config_load(&cfg, write_ini(text)), -1);
    assert_int_equal(cfg.model.n_layer, 4);
    assert_string_equal(cfg.data.dir, "data/gen/fortunes");
    config_free(&cfg);
}

static void test_override_precedence(void **state) {
    Config cfg;
    config_init(&cfg);
    assert_int_equal(config_load(&cfg, write_ini("[model]\nn_layer = 8\n[optim]\nlr = 0.01\n")), 0);
    assert_int_equal(config_set(&cfg, "--model.n_layer=2"), 0);
    assert_int_equal(cfg.model.n_layer, 2);  // the override beats the file
    assert_true(cfg.optim.lr == 0.01);       // the file beats the default
    assert_int_equal(config_set(&cfg, "optim.lr=5e-4"), 0);  // "--" is optional
    assert_true(cfg.optim.lr == 5e-4);
    assert_int_equal(config_set(&cfg, "--sample.prompt=a=b # not a comment"), 0);
    assert_string_equal(cfg.sample.prompt, "a=b # not a comment");
    assert_int_equal(config_set(&cfg, "--data.dir=\"quoted\""), 0);
    assert_string_equal(cfg.data.dir, "quoted");
    assert_int_equal(config_set(&cfg, "--checkpoint.init="), 0);
    assert_string_equal(cfg.checkpoint.init, "");
    assert_int_equal(config_set(&cfg, "--train.shuffle=off"), 0);
    assert_int_equal(cfg.train.shuffle, 0);
    config_free(&cfg);
}

// data.vocab_size with data.tokenizer = gpt2: gpt2's vocabulary is fixed, so
// the key may be left unset or set to 50260, and any other value given in a
// file or an override is refused, the default's 512 included. A printed
// config (which gives every key) loads back as a valid one.
static void test_gpt2_vocab_size(void **state) {
    Config cfg;
    config_init(&cfg);
    assert_false(config_is_set(&cfg, "data", "vocab_size"));
    assert_false(config_is_set(&cfg, "data", "no_such_key"));
    assert_int_equal(config_load(&cfg, write_ini("[data]\ntokenizer = gpt2\n")), 0);
    assert_true(config_is_set(&cfg, "data", "tokenizer"));
    assert_false(config_is_set(&cfg, "data", "vocab_size"));
    if (config_validate(&cfg) != 0) fail_msg("gpt2, vocab_size unset: %s", rlhf_errmsg);
    // printed: gpt2's size, and it loads back valid
    FILE *f = fopen(ini_path, "w");
    assert_non_null(f);
    config_print(&cfg, f);
    fclose(f);
    Config back;
    config_init(&back);
    if (config_load(&back, ini_path) != 0) fail_msg("%s", rlhf_errmsg);
    assert_true(config_is_set(&back, "data", "vocab_size"));
    assert_int_equal(back.data.vocab_size, 50260);
    if (config_validate(&back) != 0) fail_msg("printed gpt2 config: %s", rlhf_errmsg);
    config_free(&back);
    assert_int_equal(config_set(&cfg, "--data.vocab_size=50260"), 0);
    assert_true(config_is_set(&cfg, "data", "vocab_size"));
    if (config_validate(&cfg) != 0) fail_msg("gpt2, vocab_size 50260: %s", rlhf_errmsg);
    // explicit 512 (the default's value) is refused from an override and from a file
    assert_int_equal(config_set(&cfg, "--data.vocab_size=512"), 0);
    rlhf_errmsg[0] = '\0';
    assert_int_equal(config_validate(&cfg), -1);
    assert_msg_has("data.vocab_size = 512 disagrees with data.tokenizer = gpt2");
    config_free(&cfg);
    config_init(&cfg);
    assert_int_equal(config_load(&cfg, write_ini("[data]\ntokenizer = gpt2\nvocab_size = 512\n")), 0);
    rlhf_errmsg[0] = '\0';
    assert_int_equal(config_validate(&cfg), -1);
    assert_msg_has("data.vocab_size = 512 disagrees with data.tokenizer = gpt2");
    config_free(&cfg);
    // the tokenizer from an override over a file that gave 512 for bpe
    config_init(&cfg);
    assert_int_equal(config_load(&cfg, write_ini("[data]\ntokenizer = bpe\nvocab_size = 512\n")), 0);
    assert_int_equal(config_validate(&cfg), 0);
    assert_int_equal(config_set(&cfg, "--data.tokenizer=gpt2"), 0);
    assert_int_equal(config_validate(&cfg), -1);
    config_free(&cfg);
}

// Expects config_set(assignment) to fail with the override and `want` named.
static void expect_set_error(const char *assignment, const char *want) {
    Config cfg;
    config_init(&cfg);
    rlhf_errmsg[0] = '\0';
    assert_int_equal(config_set(&cfg, assignment), -1);
    assert_msg_has(assignment);
    assert_msg_has(want);
    assert_msg_has("hint");
    config_free(&cfg);
}

static void test_override_errors(void **state) {
    expect_set_error("--model.n_layr=3", "did you mean 'n_layer'");
    expect_set_error("--modle.n_layer=3", "did you mean [model]");
    expect_set_error("--model.n_layer=three", "not an integer");
    expect_set_error("--optim.lr=inf", "not a finite number");
    expect_set_error("--train.shuffle=2", "not a boolean");
    expect_set_error("--model.n_layer", "--section.key=value");
    expect_set_error("--n_layer=3", "--section.key=value");
    Config cfg;
    config_init(&cfg);
    assert_int_equal(config_set(&cfg, "--model.n_layer=x"), -1);
    assert_int_equal(cfg.model.n_layer, 4);  // a failed override changes nothing
    config_free(&cfg);
}

static void test_validate(void **state) {
    // Each row: overrides on top of the defaults, and a phrase the error names.
    static const struct {
        const char *set1, *set2, *want;
    } bad[] = {
        {"model.n_embd=130", NULL, "not a multiple of model.n_head"},
        {"model.n_layer=0", NULL, "model.n_layer = 0"},
        {"model.n_head=-1", NULL, "model.n_head"},
        {"model.block_size=0", NULL, "model.block_size"},
        {"data.tokenizer=word", NULL, "char|bpe"},
        {"data.doc_split=lines", NULL, "auto|blank|percent|none"},
        {"data.val_fraction=1", NULL, "data.val_fraction"},
        {"data.val_fraction=-0.1", NULL, "data.val_fraction"},
        {"data.tokenizer=bpe", "data.vocab_size=259", "at least 260"},
        {"train.batch_size=0", NULL, "train.batch_size"},
        {"train.max_steps=0", NULL, "train.max_steps"},
        {"train.grad_accum=0", NULL, "train.grad_accum"},
        {"train.eval_steps=0", NULL, "train.eval_steps"},
        {"train.log_interval=0", NULL, "train.log_interval"},
        {"train.threads=-1", NULL, "train.threads"},
        {"optim.lr=0", NULL, "optim.lr"},
        {"optim.min_lr=-1e-5", NULL, "optim.min_lr"},
        {"optim.min_lr=0.01", NULL, "above optim.lr"},
        {"optim.beta1=1", NULL, "optim.beta1"},
        {"optim.beta2=-0.5", NULL, "optim.beta2"},
        {"optim.eps=0", NULL, "optim.eps"},
        {"optim.grad_clip=-1", NULL, "optim.grad_clip"},
        {"sft.overlong=wrap", NULL, "skip|truncate"},
        {"dpo.beta=0", NULL, "dpo.beta"},
        {"dpo.loss=hinge", NULL, "sigmoid|ipo"},
        {"dpo.label_smoothing=0.5", NULL, "dpo.label_smoothing"},
        {"dpo.label_smoothing=-0.1", NULL, "dpo.label_smoothing"},
        {"dpo.loss=ipo", "dpo.label_smoothing=0.1", "sigmoid only"},
        {"dpo.eval_pairs=0", NULL, "dpo.eval_pairs"},
        {"ppo.gamma=0", NULL, "ppo.gamma"},
        {"ppo.gamma=1.01", NULL, "ppo.gamma"},
        {"ppo.lam=1.5", NULL, "ppo.lam"},
        {"ppo.cliprange=0", NULL, "ppo.cliprange"},
        {"ppo.rollout_batch=0", NULL, "ppo.rollout_batch"},
        {"ppo.minibatches=0", NULL, "ppo.minibatches"},
        {"ppo.rollout_batch=10", NULL, "not a multiple of ppo.minibatches"},
        {"ppo.ppo_epochs=0", NULL, "ppo.ppo_epochs"},
        {"ppo.kl_coef=-0.1", NULL, "ppo.kl_coef"},
        {"ppo.temperature=-1", NULL, "ppo.temperature"},
        {"ppo.top_p=0", NULL, "ppo.top_p"},
        {"ppo.top_k=-1", NULL, "ppo.top_k"},
        {"sample.temperature=-0.1", NULL, "sample.temperature"},
        {"sample.top_p=1.5", NULL, "sample.top_p"},
        {"sample.top_k=-3", NULL, "sample.top_k"},
        {"checkpoint.keep=0", NULL, "checkpoint.keep"},
        {"checkpoint.every=-1", NULL, "checkpoint.every"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        Config cfg;
        config_init(&cfg);
        assert_int_equal(config_set(&cfg, bad[i].set1), 0);
        if (bad[i].set2) assert_int_equal(config_set(&cfg, bad[i].set2), 0);
        rlhf_errmsg[0] = '\0';
        if (config_validate(&cfg) != -1) fail_msg("%s passed validation", bad[i].set1);
        assert_msg_has(bad[i].want);
        assert_msg_has("hint");
        config_free(&cfg);
    }
    // edges that are allowed
    static const char *const good[] = {
        "ppo.gamma=1", "ppo.lam=0", "ppo.lam=1", "ppo.top_p=1", "sample.temperature=0",
        "data.val_fraction=0", "optim.grad_clip=0", "optim.min_lr=0", "checkpoint.every=0",
        "train.eval_interval=0", "ppo.kl_coef=0", "data.vocab_size=100",  // 100: char tokenizer
        "dpo.loss=ipo", "dpo.label_smoothing=0.49"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        Config cfg;
        config_init(&cfg);
        assert_int_equal(config_set(&cfg, good[i]), 0);
        if (config_validate(&cfg) != 0) fail_msg("%s: %s", good[i], rlhf_errmsg);
        config_free(&cfg);
    }
}

// Sets values that are awkward to print: inexact decimals, strings with
// comment characters, quotes and blanks at the ends.
static void set_awkward_values(Config *cfg) {
    cfg->optim.lr = 0.1 + 0.2;
    cfg->optim.eps = 1.0 / 3.0 * 1e-9;
    cfg->reward.margin = -2.5e-300;
    cfg->train.seed = INT64_MIN;
    cfg->data.vocab_size = INT64_MAX;
    cfg->train.shuffle = 0;
    cfg->ppo.adaptive_kl = 1;
    assert_int_equal(config_set(cfg, "--sample.prompt=Q: 1+1? # think; answer"), 0);
    assert_int_equal(config_set(cfg, "--data.corpus=  padded  "), 0);
    assert_int_equal(config_set(cfg, "--data.dir='\"starts with a quote'"), 0);
    assert_int_equal(config_set(cfg, "--checkpoint.init=it's"), 0);
}

static void test_print_load_round_trip(void **state) {
    Config a, b;
    config_init(&a);
    set_awkward_values(&a);
    FILE *f = fopen(ini_path, "w");
    assert_non_null(f);
    config_print(&a, f);
    fclose(f);
    config_init(&b);
    if (config_load(&b, ini_path) != 0) fail_msg("%s", rlhf_errmsg);
    assert_true(b.optim.lr == a.optim.lr);  // exact: printed with 17 digits
    assert_true(b.optim.eps == a.optim.eps);
    assert_true(b.reward.margin == a.reward.margin);
    assert_true(b.train.seed == INT64_MIN);
    assert_true(b.data.vocab_size == INT64_MAX);
    assert_string_equal(b.sample.prompt, a.sample.prompt);
    assert_string_equal(b.data.corpus, "  padded  ");
    assert_string_equal(b.data.dir, "\"starts with a quote");
    assert_string_equal(b.checkpoint.init, "it's");
    // every key: equal configs give equal JSON
    char *ja = config_to_json(&a), *jb = config_to_json(&b);
    assert_string_equal(ja, jb);
    free(ja);
    free(jb);
    config_free(&a);
    config_free(&b);
}

static void test_json(void **state) {
    Config cfg;
    config_init(&cfg);
    set_awkward_values(&cfg);
    assert_int_equal(config_set(&cfg, "--sample.prompt=say \"hi\" \\ now\x01\t\n"), 0);
    char *json = config_to_json(&cfg);
    cJSON *root = cJSON_Parse(json);
    if (!root) fail_msg("not JSON: %s", json);
    static const char *const sections[] = {"model", "data", "train", "optim", "sft",
                                           "reward", "ppo", "dpo", "rank", "sample",
                                           "checkpoint"};
    for (int i = 0; i < 11; i++)
        assert_true(cJSON_IsObject(cJSON_GetObjectItem(root, sections[i])));
    assert_int_equal(cJSON_GetArraySize(root), 11);
    cJSON *model = cJSON_GetObjectItem(root, "model");
    assert_int_equal(cJSON_GetArraySize(model), 4);
    assert_true(cJSON_GetNumberValue(cJSON_GetObjectItem(model, "n_layer")) == 4);
    cJSON *optim = cJSON_GetObjectItem(root, "optim");
    assert_true(cJSON_GetNumberValue(cJSON_GetObjectItem(optim, "lr")) == 0.1 + 0.2);  // exact
    cJSON *train = cJSON_GetObjectItem(root, "train");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(train, "shuffle")));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(root, "ppo"), "adaptive_kl")));
    cJSON *prompt = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "sample"), "prompt");
    assert_true(cJSON_IsString(prompt));
    assert_string_equal(cJSON_GetStringValue(prompt), "say \"hi\" \\ now\x01\t\n");
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(
                            cJSON_GetObjectItem(root, "checkpoint"), "dir")),
                        "checkpoints/run");
    assert_null(strchr(json, '\n'));  // control characters are escaped
    cJSON_Delete(root);
    free(json);
    config_free(&cfg);
}

static void test_print_help(void **state) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    config_print_help(f);
    fclose(f);
    // each key's line: name, type, default, help
    const char *lr = strstr(text, "\n  lr ");
    assert_non_null(lr);
    char key[32], type[16], dflt[64];
    assert_int_equal(sscanf(lr, " %31s %15s %63s", key, type, dflt), 3);
    assert_string_equal(type, "FLOAT");
    assert_string_equal(dflt, "0.001");
    const char *eol = strchr(lr + 1, '\n');
    const char *help = strstr(lr, "peak learning rate");
    assert_true(help && help < eol);
    assert_non_null(strstr(text, "[checkpoint]"));
    assert_non_null(strstr(text, "BOOL  true"));
    assert_non_null(strstr(text, "\"data/gen/fortunes\""));
    assert_non_null(strstr(text, "dump_rollouts"));
    free(text);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_load_good_file),
        cmocka_unit_test(test_load_bool_spellings),
        cmocka_unit_test(test_load_missing_file),
        cmocka_unit_test(test_load_unknown_section),
        cmocka_unit_test(test_load_unknown_key),
        cmocka_unit_test(test_load_bad_int),
        cmocka_unit_test(test_load_bad_float),
        cmocka_unit_test(test_load_bad_bool),
        cmocka_unit_test(test_load_duplicate_key),
        cmocka_unit_test(test_load_syntax_errors),
        cmocka_unit_test(test_load_failure_leaves_config),
        cmocka_unit_test(test_override_precedence),
        cmocka_unit_test(test_override_errors),
        cmocka_unit_test(test_gpt2_vocab_size),
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_print_load_round_trip),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_print_help),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

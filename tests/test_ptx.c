// Checks the pretraining windows of src/ptx.c (PPO-ptx, sft.pretrain_mix):
// the gradient they add is ptx_coef times the LM gradient of the same
// windows (bit for bit for a power-of-two coefficient) and agrees with
// central differences of the double reference GPT, their loss is the
// windows' mean, the stream is deterministic and resumes exactly from a
// checkpoint, and a missing, foreign or too short shard and a resume that
// switches the mix on or off are refused with one line. Also the SFT
// weights that share the loss with the windows.
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

#include "checkpoint.h"
#include "common.h"
#include "config.h"
#include "gpt.h"
#include "objectives.h"
#include "ptx.h"
#include "ref_gpt.h"
#include "tokenizer.h"

#if defined(__SANITIZE_ADDRESS__)
const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void) { return "halt_on_error=1:print_stacktrace=1"; }
#endif

static char tmpdir[64];

static const char *tmp_path(const char *name) {
    static char bufs[4][256];
    static int k;
    char *b = bufs[k++ % 4];
    snprintf(b, sizeof bufs[0], "%s/%s", tmpdir, name);
    return b;
}

#define assert_fails_with(call, needle)                                    \
    do {                                                                   \
        rlhf_errmsg[0] = '\0';                                             \
        assert_int_equal((call), -1);                                      \
        if (!strstr(rlhf_errmsg, (needle)) || !strstr(rlhf_errmsg, "hint") || \
            strchr(rlhf_errmsg, '\n'))                                     \
            fail_msg("error '%s' lacks '%s' or a hint, or is not one line", \
                     rlhf_errmsg, (needle));                               \
    } while (0)

static const char *TEXT =
    "A fortune a day keeps the doctor away.\n\nThe early bird gets the worm, "
    "but the second mouse gets the cheese.\n\nNever put off until tomorrow what "
    "you can do the day after tomorrow.\n";

// A char tokenizer of `text` and, in DIR/train.h5, the shard of TEXT
// encoded with it.
static void make_shard(const char *dir, const char *text, Tokenizer *tok) {
    assert_int_equal(tokenizer_train(tok, TOKENIZER_CHAR, (const uint8_t *)text, strlen(text), 0), 0);
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, dir);
    assert_int_equal(mkdir_p(path), 0);
    const size_t n = strlen(TEXT);
    int *ids = mallocCheck(n * sizeof(int));
    assert_int_equal(tokenizer_encode(tok, (const uint8_t *)TEXT, n, ids, (long)n), (long)n);
    snprintf(path, sizeof path, "%s/%s/train.h5", tmpdir, dir);
    assert_int_equal(shard_write(path, ids, n, tok->vocab_size, tokenizer_hash(tok)), 0);
    free(ids);
}

static void config_for(Config *cfg, const char *dir) {
    config_init(cfg);
    free(cfg->data.dir);
    cfg->data.dir = strdup_check(tmp_path(dir));
}

static void build_model(GPT *m, int V) {
    GPTConfig c = {.n_layer = 1, .n_head = 2, .n_embd = 16, .block_size = 8, .vocab_size = V};
    gpt_build(m, &c);
    gpt_init_weights(m, 7);
    gpt_train_build(m);
}

// ptx_accumulate with weight c / (B T) adds c times the gradient of the
// windows' mean loss, which lm_accumulate computes with the default
// weights 1/(B T) on the windows ptx drew (left in p.x, p.y). c = 1 and
// c = 0.5 must match bit for bit: c / (B T) rounds to exactly c times the
// rounded 1 / (B T), and the backward pass is linear in the loss weights,
// so a power-of-two factor passes through every product and sum without a
// new rounding. c = 0.3 rounds differently at each step; each gradient
// element is a float sum of at most B T C products, so it must agree
// within 1e-5 of the tensor's largest element (float eps 6e-8 times a few
// hundred roundings, with margin).
static void test_gradient_is_scaled_lm_gradient(void **state) {
    (void)state;
    Tokenizer tok;
    make_shard("grad", TEXT, &tok);
    Config cfg;
    config_for(&cfg, "grad");
    GPT m;
    build_model(&m, tok.vocab_size);
    const int B = 3, T = 8, N = B * T;
    const size_t P = m.num_params;
    float *g_ptx = mallocCheck(P * sizeof(float)), *g_ref = mallocCheck(P * sizeof(float));
    const double coefs[3] = {1.0, 0.5, 0.3};
    for (int k = 0; k < 3; k++) {
        Ptx p;
        assert_int_equal(ptx_setup(&p, 1, &cfg, &tok, B, T, "ppo.ptx_coef", NULL), 0);
        gpt_zero_grad(&m);
        const double loss = ptx_accumulate(&p, &m, (float)(coefs[k] / N));
        memcpy(g_ptx, m.train->grads_memory, P * sizeof(float));
        gpt_zero_grad(&m);
        const double ref_loss = lm_accumulate(&m, p.x, p.y, NULL, NULL, B, T);
        memcpy(g_ref, m.train->grads_memory, P * sizeof(float));
        // the windows' plain mean loss, whatever the weight
        assert_true(fabs(loss - ref_loss) <= 1e-6 * ref_loss);
        assert_true(loss > 0.5 * log((double)tok.vocab_size));  // an untrained model
        float gmax = 0.0f;
        for (size_t i = 0; i < P; i++) gmax = fmaxf(gmax, fabsf(g_ref[i]));
        assert_true(gmax > 0.0f);
        size_t bad = 0;
        for (size_t i = 0; i < P; i++) {
            const float want = (float)coefs[k] * g_ref[i];
            if (k < 2 ? g_ptx[i] != want : fabsf(g_ptx[i] - want) > 1e-5f * gmax) bad++;
        }
        if (bad) fail_msg("coef %g: %zu of %zu gradients differ from coef x the LM gradient",
                          coefs[k], bad, P);
        ptx_free(&p);
    }
    free(g_ptx);
    free(g_ref);
    gpt_free(&m);
    config_free(&cfg);
    tokenizer_free(&tok);
}

// The same gradient against central differences of the double-precision
// reference GPT (ref_gpt.c) of ptx_coef times the windows' mean loss, along
// one random direction over all parameters (ref_check_direction's
// tolerance: 1e-4 relative), at test-scale weights.
typedef struct {
    const GPT *m;
    const int *x, *y;
    const float *w;
    int B, T;
} PtxLoss;

static double ptx_loss_at(const void *ctx, const double *params) {
    const PtxLoss *o = ctx;
    return ref_gpt_forward(&o->m->config, o->m->info, params, o->x, o->y, o->w, o->B, o->T, NULL,
                           NULL);
}

static void test_gradient_finite_differences(void **state) {
    (void)state;
    Tokenizer tok;
    make_shard("fd", TEXT, &tok);
    Config cfg;
    config_for(&cfg, "fd");
    GPT m;
    build_model(&m, tok.vocab_size);
    ref_randomize_params(&m, 11);
    const int B = 2, T = 8;
    const double coef = 0.3;
    Ptx p;
    assert_int_equal(ptx_setup(&p, 1, &cfg, &tok, B, T, "ppo.ptx_coef", NULL), 0);
    gpt_zero_grad(&m);
    ptx_accumulate(&p, &m, (float)(coef / (B * T)));
    double *params = ref_params_to_double(&m);
    const size_t P = m.num_params;
    double *d = mallocCheck(P * sizeof(double)), n2 = 0.0;
    RefRng rng;
    ref_rng_init(&rng, 5);
    for (size_t i = 0; i < P; i++) {
        d[i] = ref_rng_normal(&rng);
        n2 += d[i] * d[i];
    }
    for (size_t i = 0; i < P; i++) d[i] /= sqrt(n2);
    const PtxLoss o = {&m, p.x, p.y, p.w, B, T};
    assert_true(ref_check_direction("ptx loss, all parameters", &m, params, d, ptx_loss_at, &o));
    free(d);
    free(params);
    ptx_free(&p);
    gpt_free(&m);
    config_free(&cfg);
    tokenizer_free(&tok);
}

// Windows come from the shard (targets shifted by one), the same seed draws
// the same windows, and a stream saved after two draws and set up again
// from that checkpoint continues with the draws of the uninterrupted one,
// from the shard it recorded.
static void test_stream_deterministic_and_resumes(void **state) {
    (void)state;
    Tokenizer tok;
    make_shard("stream", TEXT, &tok);
    Config cfg;
    config_for(&cfg, "stream");
    GPT m;
    build_model(&m, tok.vocab_size);
    const int B = 2, T = 8, N = B * T;
    Ptx a, b;
    assert_int_equal(ptx_setup(&a, 1, &cfg, &tok, B, T, "k", NULL), 0);
    assert_int_equal(ptx_setup(&b, 1, &cfg, &tok, B, T, "k", NULL), 0);
    int seen[4][2 * 8];
    for (int d = 0; d < 2; d++) {
        ptx_accumulate(&a, &m, 0.0f);
        ptx_accumulate(&b, &m, 0.0f);
        assert_memory_equal(a.x, b.x, N * sizeof(int));
        for (int r = 0; r < B; r++)
            for (int t = 0; t + 1 < T; t++) assert_int_equal(a.y[r * T + t], a.x[r * T + t + 1]);
    }
    // save b after two draws, resume it as c
    CkptMeta meta = {.stage = "ppo", .step = 2, .config_json = "{}", .parent = ""};
    const char *path = tmp_path("stream.h5");
    Ckpt *ck = ckpt_create(path, &meta);
    assert_non_null(ck);
    assert_int_equal(ptx_save(&b, ck), 0);
    assert_int_equal(ckpt_commit(ck), 0);
    ptx_free(&b);
    ck = ckpt_open(path, NULL);
    assert_non_null(ck);
    // data.dir changed since: the resumed stream reads the recorded shard
    free(cfg.data.dir);
    cfg.data.dir = strdup_check("/nonexistent");
    Ptx c;
    assert_int_equal(ptx_setup(&c, 1, &cfg, &tok, B, T, "k", ck), 0);
    // and a resume that turns the mix off is refused
    Ptx off;
    assert_fails_with(ptx_setup(&off, 0, &cfg, &tok, B, T, "ppo.ptx_coef", ck),
                      "trained with pretraining windows");
    ckpt_close(ck);
    for (int d = 2; d < 4; d++) {
        ptx_accumulate(&a, &m, 0.0f);
        ptx_accumulate(&c, &m, 0.0f);
        assert_memory_equal(a.x, c.x, N * sizeof(int));
        memcpy(seen[d], a.x, N * sizeof(int));
    }
    // later draws are not all the same window (the stream moves)
    assert_true(memcmp(seen[2], seen[3], N * sizeof(int)) != 0);
    ptx_free(&a);
    ptx_free(&c);
    gpt_free(&m);
    config_free(&cfg);
    tokenizer_free(&tok);
}

// A missing shard, one made with another tokenizer (same vocabulary size,
// other bytes: only the hash tells), one shorter than a window, and a
// resume that turns the mix on in a run that had none: refused in one
// line that names the key. Off, nothing is read at all.
static void test_bad_inputs_refused(void **state) {
    (void)state;
    Tokenizer tok, other;
    // the shard of "foreign" is encoded with other: a vocabulary of equal
    // size (one non-ASCII byte each) whose bytes differ
    make_shard("mine", "\xc3" "a", &tok);
    make_shard("foreign", "\xc4" "a", &other);
    assert_int_equal(tok.vocab_size, other.vocab_size);
    Config cfg;
    config_for(&cfg, "absent");
    Ptx p;
    assert_fails_with(ptx_setup(&p, 1, &cfg, &tok, 2, 8, "ppo.ptx_coef", NULL), "missing");
    assert_non_null(strstr(rlhf_errmsg, "ppo.ptx_coef"));
    assert_int_equal(ptx_setup(&p, 0, &cfg, &tok, 2, 8, "ppo.ptx_coef", NULL), 0);  // off
    assert_false(p.on);
    config_free(&cfg);
    config_for(&cfg, "foreign");
    assert_fails_with(ptx_setup(&p, 1, &cfg, &tok, 2, 8, "sft.pretrain_mix", NULL),
                      "another tokenizer");
    assert_non_null(strstr(rlhf_errmsg, "sft.pretrain_mix"));
    config_free(&cfg);
    config_for(&cfg, "mine");
    const int long_T = (int)strlen(TEXT);  // the shard holds exactly T tokens: no window
    assert_fails_with(ptx_setup(&p, 1, &cfg, &tok, 2, long_T, "ppo.ptx_coef", NULL),
                      "fewer than one window");
    // a checkpoint without ptx state resumed with the mix on
    CkptMeta meta = {.stage = "ppo", .step = 2, .config_json = "{}", .parent = ""};
    const char *path = tmp_path("none.h5");
    Ckpt *ck = ckpt_create(path, &meta);
    assert_non_null(ck);
    const int64_t one = 1;
    assert_int_equal(ckpt_write_i64(ck, "threads", &one, 1), 0);
    assert_int_equal(ckpt_commit(ck), 0);
    ck = ckpt_open(path, NULL);
    assert_non_null(ck);
    assert_fails_with(ptx_setup(&p, 1, &cfg, &tok, 2, 8, "ppo.ptx_coef", ck),
                      "trained without pretraining windows");
    assert_int_equal(ptx_setup(&p, 0, &cfg, &tok, 2, 8, "ppo.ptx_coef", ck), 0);
    ckpt_close(ck);
    config_free(&cfg);
    tokenizer_free(&tok);
    tokenizer_free(&other);
}

// The keys' ranges: ptx_coef >= 0, ptx_batch >= 1, pretrain_mix in [0, 1).
static void test_config_ranges(void **state) {
    (void)state;
    const char *bad[] = {"ppo.ptx_coef=-0.5", "ppo.ptx_coef=nan", "ppo.ptx_batch=0",
                         "sft.pretrain_mix=1", "sft.pretrain_mix=-0.1", "sft.pretrain_mix=1.5"};
    const char *good[] = {"ppo.ptx_coef=0", "ppo.ptx_coef=2", "sft.pretrain_mix=0",
                          "sft.pretrain_mix=0.999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        Config cfg;
        config_init(&cfg);
        if (config_set(&cfg, bad[i]) == 0 && config_validate(&cfg) == 0)
            fail_msg("%s was accepted", bad[i]);
        config_free(&cfg);
    }
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        Config cfg;
        config_init(&cfg);
        assert_int_equal(config_set(&cfg, good[i]), 0);
        assert_int_equal(config_validate(&cfg), 0);
        config_free(&cfg);
    }
}

// SFT's weights with windows taking share s of the loss: the response
// weights of a step sum to 1 - s, and share 1 is bit for bit the weights
// of a run without windows (mask / n_loss).
static void test_sft_weights_share(void **state) {
    (void)state;
    const unsigned char mask[7] = {0, 1, 1, 0, 1, 0, 1};
    float w[7], w1[7];
    sft_loss_weights(w1, mask, 7, 4.0, 1.0);
    for (int i = 0; i < 7; i++) assert_true(w1[i] == (float)(mask[i] / 4.0));
    sft_loss_weights(w, mask, 7, 4.0, 0.75);
    double sum = 0.0;
    for (int i = 0; i < 7; i++) sum += w[i];
    assert_true(fabs(sum - 0.75) < 1e-7);
    for (int i = 0; i < 7; i++) assert_true(mask[i] ? w[i] == 0.1875f : w[i] == 0.0f);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_ptx.XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradient_is_scaled_lm_gradient),
        cmocka_unit_test(test_gradient_finite_differences),
        cmocka_unit_test(test_stream_deterministic_and_resumes),
        cmocka_unit_test(test_bad_inputs_refused),
        cmocka_unit_test(test_config_ranges),
        cmocka_unit_test(test_sft_weights_share),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) rc = rc ? rc : 1;
    return rc;
}

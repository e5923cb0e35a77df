// Tests of checkpoint.c: bit-identical round trips of everything a checkpoint
// holds, one rejection test per kind of bad file, crash safety of commit and
// abort, h5py reading what C wrote, token shards, rollout dumps and sha256.
// The HDF5 API is used here only to forge bad files and inspect layouts.
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <hdf5.h>

#include "checkpoint.h"
#include "common.h"
#include "scratch.h"
#include "gpt.h"
#include "metrics.h"
#include "optim.h"
#include "tokenizer.h"


static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

// Asserts a call failed (-1) with a message containing `needle`.
#define assert_fails_with(call, needle)                                    \
    do {                                                                   \
        rlhf_errmsg[0] = '\0';                                             \
        assert_int_equal((call), -1);                                      \
        if (!strstr(rlhf_errmsg, (needle)))                                \
            fail_msg("message '%s' lacks '%s'", rlhf_errmsg, (needle));    \
    } while (0)

// --- a complete training state to save --------------------------------------------

static const char CORPUS[] =
    "the cat sat on the mat. the cat ate the rat. a rat sat on a hat.\n"
    "the hat sat on the cat. then the mat ate a hat; that rat! ";

typedef struct {
    GPT model;
    AdamW opt;
    Tokenizer tok;
    Metrics mt;
    CkptMeta meta;
    int64_t cursor[3];
    uint64_t rng[4];
    double kl[2];
} World;

// A tiny GPT (L=2 NH=2 C=n_embd T=8) on a char or BPE tokenizer, AdamW with
// nonzero moments, metrics with a NaN, and some state.
static void world_build(World *w, int tok_type, int n_embd, int value_head) {
    memset(w, 0, sizeof *w);
    int rc = tokenizer_train(&w->tok, tok_type, (const uint8_t *)CORPUS, strlen(CORPUS),
                             256 + 4 + 12);
    if (rc) fail_msg("tokenizer_train: %s", rlhf_errmsg);
    GPTConfig c = {.n_layer = 2, .n_head = 2, .n_embd = n_embd, .block_size = 8,
                   .vocab_size = w->tok.vocab_size, .value_head = value_head};
    gpt_build(&w->model, &c);
    gpt_init_weights(&w->model, 1234);
    // the value head starts at zero; give it values a round trip can lose
    for (size_t i = 0; i < w->model.info[PARAM_vw].size; i++) w->model.params.vw[i] = 0.01f * (float)i;
    if (value_head) w->model.params.vb[0] = -0.5f;
    adamw_build(&w->opt, w->model.num_params, 0.9f, 0.95f, 1e-8f, 0.1f);
    for (size_t i = 0; i < w->opt.n; i++) {
        w->opt.m[i] = sinf((float)i) * 1e-3f;
        w->opt.v[i] = 1e-6f * (float)(i % 97) + 1e-9f;
    }
    w->opt.t = 42;
    w->opt.lr = 3e-4f;
    metrics_init(&w->mt);
    double step[3] = {10, 20, 30}, loss[3] = {4.5, 3.25, NAN}, lr[3] = {1e-4, 2e-4, 3e-4};
    metrics_add_column(&w->mt, "step", step, 3);
    metrics_add_column(&w->mt, "loss", loss, 3);
    metrics_add_column(&w->mt, "lr", lr, 3);
    snprintf(w->meta.stage, sizeof w->meta.stage, "pretrain");
    w->meta.step = 30;
    w->meta.config_json = strdup_check("{\"model\": {\"n_layer\": 2}, \"note\": \"caf\xc3\xa9\"}");
    w->meta.parent = strdup_check("ckpt/init.h5 sha256:00ff");
    w->cursor[0] = -7, w->cursor[1] = 1LL << 40, w->cursor[2] = 3;
    w->rng[0] = UINT64_MAX, w->rng[1] = 1, w->rng[2] = 0x0123456789abcdefULL, w->rng[3] = 0;
    w->kl[0] = 0.1, w->kl[1] = -1e300;
}

static void world_free(World *w) {
    gpt_free(&w->model);
    adamw_free(&w->opt);
    tokenizer_free(&w->tok);
    metrics_free(&w->mt);
    ckpt_meta_free(&w->meta);
}

// Writes everything in w to PATH through the public API and commits.
static void world_save(const World *w, const char *path) {
    Ckpt *ck = ckpt_create(path, &w->meta);
    if (!ck) fail_msg("ckpt_create: %s", rlhf_errmsg);
    int rc = ckpt_write_model(ck, "", &w->model) ||
             ckpt_write_optimizer(ck, "", &w->opt, &w->model) ||
             ckpt_write_tokenizer(ck, &w->tok) || ckpt_write_metrics(ck, &w->mt) ||
             ckpt_write_i64(ck, "data/cursor", w->cursor, 3) ||
             ckpt_write_u64(ck, "rng", w->rng, 4) || ckpt_write_f64(ck, "ppo/kl/coef", w->kl, 2);
    if (rc) fail_msg("write: %s", rlhf_errmsg);
    if (ckpt_commit(ck)) fail_msg("commit: %s", rlhf_errmsg);
}

static Ckpt *open_ok(const char *path, CkptMeta *meta) {
    Ckpt *ck = ckpt_open(path, meta);
    if (!ck) fail_msg("ckpt_open: %s", rlhf_errmsg);
    return ck;
}

static void copy_file(const char *from, const char *to, long nbytes /* -1: all */) {
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char buf[4096];
    size_t n;
    long left = nbytes < 0 ? -1 : nbytes;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) {
        if (left >= 0 && (long)n > left) n = (size_t)left;
        assert_int_equal(fwrite(buf, 1, n, out), n);
        if (left >= 0 && (left -= (long)n) == 0) break;
    }
    fclose(in);
    fclose(out);
}

static long file_size(const char *path) {
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (long)st.st_size;
}

// --- round trips -------------------------------------------------------------------

static void test_roundtrip_bit_identical(void **state) {
    (void)state;
    World w;
    world_build(&w, TOKENIZER_BPE, 16, 0);
    assert_true(w.tok.n_merges > 0);  // exercises a non-empty merges dataset
    const char *path = scratch_path("full.h5");
    world_save(&w, path);
    assert_false(file_exists(scratch_path("full.h5.tmp")));

    CkptMeta meta;
    Ckpt *ck = open_ok(path, &meta);
    assert_string_equal(meta.stage, "pretrain");
    assert_int_equal(meta.step, 30);
    assert_string_equal(meta.config_json, w.meta.config_json);
    assert_string_equal(meta.parent, w.meta.parent);
    assert_int_equal(strlen(meta.created), 20);  // YYYY-MM-DDTHH:MM:SSZ
    assert_int_equal(meta.created[10], 'T');
    assert_int_equal(meta.created[19], 'Z');

    GPTConfig c;
    assert_int_equal(ckpt_read_model_config(ck, "", &c), 0);
    assert_memory_equal(&c, &w.model.config, sizeof c);
    assert_int_equal(ckpt_has_model(ck, ""), 1);
    assert_int_equal(ckpt_has_model(ck, "critic"), 0);

    GPT m;
    gpt_build(&m, &c);
    if (ckpt_read_model(ck, "", &m, 0)) fail_msg("%s", rlhf_errmsg);
    assert_memory_equal(m.params_memory, w.model.params_memory, m.num_params * sizeof(float));

    AdamW opt;
    adamw_build(&opt, m.num_params, 0, 0, 0, 0);
    if (ckpt_read_optimizer(ck, "", &opt, &m)) fail_msg("%s", rlhf_errmsg);
    assert_memory_equal(opt.m, w.opt.m, opt.n * sizeof(float));
    assert_memory_equal(opt.v, w.opt.v, opt.n * sizeof(float));
    assert_int_equal(opt.t, 42);
    assert_true(opt.lr == w.opt.lr && opt.beta1 == w.opt.beta1 && opt.beta2 == w.opt.beta2);
    assert_true(opt.eps == w.opt.eps && opt.weight_decay == w.opt.weight_decay);

    Tokenizer tok;
    if (ckpt_read_tokenizer(ck, &tok)) fail_msg("%s", rlhf_errmsg);
    assert_int_equal(tok.type, w.tok.type);
    assert_int_equal(tok.vocab_size, w.tok.vocab_size);
    assert_memory_equal(tok.vocab_offsets, w.tok.vocab_offsets,
                        (size_t)(tok.vocab_size + 1) * sizeof(int));
    assert_memory_equal(tok.vocab_bytes, w.tok.vocab_bytes, (size_t)tok.vocab_offsets[tok.vocab_size]);
    assert_int_equal(tok.n_merges, w.tok.n_merges);
    assert_memory_equal(tok.merges, w.tok.merges, (size_t)tok.n_merges * 2 * sizeof(int));
    assert_true(tok.eot == w.tok.eot && tok.user == w.tok.user &&
                tok.assistant == w.tok.assistant && tok.pad == w.tok.pad);
    assert_int_equal(tokenizer_hash(&tok), tokenizer_hash(&w.tok));
    assert_non_null(tok.merge_index);  // tokenizer_finish ran

    Metrics mt;
    metrics_init(&mt);
    if (ckpt_read_metrics(ck, &mt)) fail_msg("%s", rlhf_errmsg);
    assert_int_equal(mt.ncols, 3);
    assert_int_equal(mt.nrows, 3);
    for (int col = 0; col < 3; col++) {  // same order, same bits (NaN included)
        assert_string_equal(mt.names[col], w.mt.names[col]);
        assert_memory_equal(mt.cols[col], w.mt.cols[col], 3 * sizeof(double));
    }

    int64_t cursor[3];
    uint64_t rng[4];
    double kl[2];
    assert_int_equal(ckpt_read_i64(ck, "data/cursor", cursor, 3), 0);
    assert_int_equal(ckpt_read_u64(ck, "rng", rng, 4), 0);
    assert_int_equal(ckpt_read_f64(ck, "ppo/kl/coef", kl, 2), 0);
    assert_memory_equal(cursor, w.cursor, sizeof cursor);
    assert_memory_equal(rng, w.rng, sizeof rng);
    assert_memory_equal(kl, w.kl, sizeof kl);
    assert_int_equal(ckpt_has_state(ck, "rng"), 1);
    assert_int_equal(ckpt_has_state(ck, "ppo/kl/coef"), 1);
    assert_int_equal(ckpt_has_state(ck, "ppo/kl"), 0);  // a group, not a dataset
    assert_int_equal(ckpt_has_state(ck, "nope"), 0);

    ckpt_close(ck);
    ckpt_meta_free(&meta);
    metrics_free(&mt);
    tokenizer_free(&tok);
    adamw_free(&opt);
    gpt_free(&m);
    world_free(&w);
}

// A second model under a prefix, with a value head; an empty merges
// dataset (char tokenizer) and a metrics table with zero rows.
static void test_roundtrip_prefix_and_value_head(void **state) {
    (void)state;
    World w, critic;
    world_build(&w, TOKENIZER_CHAR, 16, 0);
    world_build(&critic, TOKENIZER_CHAR, 8, 1);
    assert_int_equal(w.tok.n_merges, 0);
    Metrics empty;
    metrics_init(&empty);
    metrics_add_column(&empty, "step", NULL, 0);
    const char *path = scratch_path("two.h5");
    Ckpt *ck = ckpt_create(path, &w.meta);
    assert_non_null(ck);
    assert_int_equal(ckpt_write_model(ck, "", &w.model), 0);
    assert_int_equal(ckpt_write_model(ck, "critic", &critic.model), 0);
    assert_int_equal(ckpt_write_optimizer(ck, "critic", &critic.opt, &critic.model), 0);
    assert_int_equal(ckpt_write_tokenizer(ck, &w.tok), 0);
    assert_int_equal(ckpt_write_metrics(ck, &empty), 0);
    assert_int_equal(ckpt_commit(ck), 0);

    ck = open_ok(path, NULL);
    assert_int_equal(ckpt_has_model(ck, "critic"), 1);
    GPTConfig c;
    assert_int_equal(ckpt_read_model_config(ck, "", &c), 0);
    assert_int_equal(c.value_head, 0);
    assert_int_equal(ckpt_read_model_config(ck, "critic", &c), 0);
    assert_int_equal(c.value_head, 1);
    assert_int_equal(c.n_embd, 8);
    GPT m;
    gpt_build(&m, &c);
    if (ckpt_read_model(ck, "critic", &m, 0)) fail_msg("%s", rlhf_errmsg);
    assert_memory_equal(m.params_memory, critic.model.params_memory, m.num_params * sizeof(float));
    assert_true(m.params.vb[0] == -0.5f);
    AdamW opt;
    adamw_build(&opt, m.num_params, 0, 0, 0, 0);
    if (ckpt_read_optimizer(ck, "critic", &opt, &m)) fail_msg("%s", rlhf_errmsg);
    assert_memory_equal(opt.m, critic.opt.m, opt.n * sizeof(float));
    assert_memory_equal(opt.v, critic.opt.v, opt.n * sizeof(float));
    // the main model has no optimizer in this file
    AdamW opt2;
    adamw_build(&opt2, w.model.num_params, 0, 0, 0, 0);
    assert_fails_with(ckpt_read_optimizer(ck, "", &opt2, &w.model), "/optimizer is missing");
    Tokenizer tok;
    if (ckpt_read_tokenizer(ck, &tok)) fail_msg("%s", rlhf_errmsg);
    assert_int_equal(tok.n_merges, 0);
    assert_int_equal(tok.vocab_size, w.tok.vocab_size);
    Metrics mt;
    metrics_init(&mt);
    assert_int_equal(ckpt_read_metrics(ck, &mt), 0);
    assert_int_equal(mt.ncols, 1);
    assert_int_equal(mt.nrows, 0);
    ckpt_close(ck);
    metrics_free(&mt);
    metrics_free(&empty);
    tokenizer_free(&tok);
    adamw_free(&opt);
    adamw_free(&opt2);
    gpt_free(&m);
    world_free(&w);
    world_free(&critic);
}

// A critic started from a policy checkpoint: the head is missing from the
// file; allowed, it stays at zero and the rest loads.
static void test_missing_value_head(void **state) {
    (void)state;
    World w;
    world_build(&w, TOKENIZER_CHAR, 16, 0);
    const char *path = scratch_path("policy.h5");
    world_save(&w, path);
    GPTConfig c = w.model.config;
    c.value_head = 1;
    GPT m;
    gpt_build(&m, &c);
    Ckpt *ck = open_ok(path, NULL);
    assert_fails_with(ckpt_read_model(ck, "", &m, 0), "no value head (/heads is missing)");
    assert_int_equal(ckpt_read_model(ck, "", &m, 1), 0);
    assert_memory_equal(m.params_memory, w.model.params_memory,
                        w.model.num_params * sizeof(float));  // the head comes last
    assert_true(m.params.vw[0] == 0.0f && m.params.vw[c.n_embd - 1] == 0.0f);
    assert_true(m.params.vb[0] == 0.0f);
    ckpt_close(ck);
    gpt_free(&m);
    world_free(&w);
}

// --- rejections ----------------------------------------------------------------------

static void test_reject_missing_file(void **state) {
    (void)state;
    rlhf_errmsg[0] = '\0';
    assert_null(ckpt_open(scratch_path("absent.h5"), NULL));
    assert_non_null(strstr(rlhf_errmsg, "no such file"));
    assert_non_null(strstr(rlhf_errmsg, "absent.h5"));
}

static void test_reject_truncated_file(void **state) {
    (void)state;
    World w;
    world_build(&w, TOKENIZER_CHAR, 16, 0);
    const char *good = scratch_path("good.h5"), *half = scratch_path("half.h5");
    world_save(&w, good);
    copy_file(good, half, file_size(good) / 2);
    rlhf_errmsg[0] = '\0';
    assert_null(ckpt_open(half, NULL));
    if (!strstr(rlhf_errmsg, "truncated")) fail_msg("message: %s", rlhf_errmsg);
    world_free(&w);
}

static void test_reject_random_bytes(void **state) {
    (void)state;
    const char *path = scratch_path("noise.h5");
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    uint32_t x = 12345;
    for (int i = 0; i < 8192; i++) {
        x = x * 1664525u + 1013904223u;
        fputc((int)(x >> 24), f);
    }
    fclose(f);
    rlhf_errmsg[0] = '\0';
    assert_null(ckpt_open(path, NULL));
    assert_non_null(strstr(rlhf_errmsg, "not an HDF5 file"));
}

static void test_reject_foreign_hdf5(void **state) {
    (void)state;
    const char *path = scratch_path("foreign.h5");
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(f >= 0);
    hsize_t dims[1] = {4};
    float data[4] = {1, 2, 3, 4};
    hid_t s = H5Screate_simple(1, dims, NULL);
    hid_t d = H5Dcreate2(f, "weights", H5T_IEEE_F32LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    H5Dclose(d);
    H5Sclose(s);
    H5Fclose(f);
    rlhf_errmsg[0] = '\0';
    assert_null(ckpt_open(path, NULL));
    assert_non_null(strstr(rlhf_errmsg, "foreign HDF5 file: no rlhf.c format attribute"));
    // a token shard is HDF5 too, but not a checkpoint
    int toks[3] = {1, 2, 3};
    assert_int_equal(shard_write(scratch_path("shard.h5"), toks, 3, 11, 7), 0);
    assert_null(ckpt_open(scratch_path("shard.h5"), NULL));
    assert_non_null(strstr(rlhf_errmsg, "foreign HDF5 file"));
}

// Replaces attribute NAME (an int) of object OBJ in an existing file; with
// unseal, also removes the root checksum, as in a file written before
// checksums, so that the checks behind the checksum are reached.
// (HDF5 1.10 cannot H5Awrite through H5Aopen_by_name: open the object.)
static void attr_edit(const char *path, const char *obj, const char *name, int value, int unseal) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t o = H5Oopen(f, obj, H5P_DEFAULT);
    hid_t a = H5Aopen(o, name, H5P_DEFAULT);
    assert_true(a >= 0);
    assert_true(H5Awrite(a, H5T_NATIVE_INT, &value) >= 0);
    H5Aclose(a);
    H5Oclose(o);
    if (unseal && H5Aexists_by_name(f, "/", "checksum", H5P_DEFAULT) > 0)
        assert_true(H5Adelete(f, "checksum") >= 0);
    H5Fclose(f);
}

static void set_int_attr(const char *path, const char *obj, const char *name, int value) {
    attr_edit(path, obj, name, value, 1);
}

// Any attribute edited in a sealed file is caught on open, whichever object
// holds it; a file without the checksum (older) opens, marked unsealed.
static void test_reject_edited_attributes(void **state) {
    (void)state;
    World w;
    world_build(&w, TOKENIZER_CHAR, 16, 0);
    const char *path = scratch_path("edited.h5");
    const char *edits[][2] = {{"/", "step"}, {"/model", "n_head"}, {"/tokenizer", "eot"}};
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        world_save(&w, path);
        CkptMeta meta = {0};
        Ckpt *ck = ckpt_open(path, &meta);
        assert_non_null(ck);
        assert_int_equal(meta.sealed, 1);
        ckpt_close(ck);
        ckpt_meta_free(&meta);
        attr_edit(path, edits[i][0], edits[i][1], 3, 0);
        assert_fails_with(ckpt_open(path, NULL) ? 0 : -1, "do not match their checksum");
        set_int_attr(path, "/", "format_version", 1);  // unsealed, otherwise as written
        ck = ckpt_open(path, &meta);
        assert_non_null(ck);
        assert_int_equal(meta.sealed, 0);
        ckpt_close(ck);
        ckpt_meta_free(&meta);
    }
    world_free(&w);
}

static void test_reject_wrong_format_version(void **state) {
    (void)state;
    World w;
    world_build(&w, TOKENIZER_CHAR, 16, 0);
    const char *path = scratch_path("v2.h5");
    world_save(&w, path);
    set_int_attr(path, "/", "format_version", 2);
    rlhf_errmsg[0] = '\0';
    assert_null(ckpt_open(path, NULL));
    assert_non_null(strstr(rlhf_errmsg, "format_version 2 is not supported"));
    assert_non_null(strstr(rlhf_errmsg, "reads format_version 1"));
    world_free(&w);
}

static void test_reject_wrong_shapes(void **state) {
    (void)state;
    World w;
    world_build(&w, TOKENIZER_CHAR, 16, 0);
    const int V = w.tok.vocab_size;
    char want[160];
    const char *path = scratch_path("shapes.h5");
    world_save(&w, path);
    Ckpt *ck = open_ok(path, NULL);

    // a model built with another n_embd: the first dataset that differs is named
    GPTConfig c = w.model.config;
    c.n_embd = 24;
    GPT wide;
    gpt_build(&wide, &c);
    snprintf(want, sizeof want, "/model/transformer.wte.weight has shape [%d, 16], expected [%d, 24]",
             V, V);
    assert_fails_with(ckpt_read_model(ck, "", &wide, 0), want);
    assert_non_null(strstr(rlhf_errmsg, path));
    assert_non_null(strstr(rlhf_errmsg, "n_embd=16"));  // the hint gives the file's config
    // n_head leaves no trace in the shapes: the config comparison catches it
    c = w.model.config;
    c.n_head = 4;
    GPT heads4;
    gpt_build(&heads4, &c);
    assert_fails_with(ckpt_read_model(ck, "", &heads4, 0), "n_head=4");
    // nothing was read into the model that failed
    for (size_t i = 0; i < heads4.num_params; i++) assert_true(heads4.params_memory[i] == 0.0f);
    // moments of a differently shaped model
    AdamW opt;
    adamw_build(&opt, wide.num_params, 0, 0, 0, 0);
    snprintf(want, sizeof want, "/optimizer/m/transformer.wte.weight has shape [%d, 16], "
             "expected [%d, 24]", V, V);
    assert_fails_with(ckpt_read_optimizer(ck, "", &opt, &wide), want);
    ckpt_close(ck);

    // one dataset forged with a wrong shape, then removed
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    const char *name = "/model/transformer.h.1.attn.c_attn.weight";
    assert_true(H5Ldelete(f, name, H5P_DEFAULT) >= 0);
    hsize_t dims[2] = {48, 8};
    hid_t s = H5Screate_simple(2, dims, NULL);
    hid_t d = H5Dcreate2(f, name, H5T_IEEE_F32LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(d >= 0);
    H5Dclose(d);
    H5Sclose(s);
    H5Fclose(f);
    GPT m;
    gpt_build(&m, &w.model.config);
    ck = open_ok(path, NULL);
    assert_fails_with(ckpt_read_model(ck, "", &m, 0),
                      "/model/transformer.h.1.attn.c_attn.weight has shape [48, 8], expected [48, 16]");
    ckpt_close(ck);
    f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(H5Ldelete(f, name, H5P_DEFAULT) >= 0);
    H5Fclose(f);
    ck = open_ok(path, NULL);
    assert_fails_with(ckpt_read_model(ck, "", &m, 0),
                      "/model/transformer.h.1.attn.c_attn.weight is missing");
    ckpt_close(ck);

    gpt_free(&m);
    adamw_free(&opt);
    gpt_free(&heads4);
    gpt_free(&wide);
    world_free(&w);
}

static void test_reject_wrong_dtype_and_bad_config(void **state) {
    (void)state;
    World w;
    world_build(&w, TOKENIZER_CHAR, 16, 0);
    const char *path = scratch_path("dtype.h5");
    world_save(&w, path);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    const char *bias = "/model/transformer.ln_f.bias";
    assert_true(H5Ldelete(f, bias, H5P_DEFAULT) >= 0);
    hsize_t n = 16;
    hid_t s = H5Screate_simple(1, &n, NULL);
    hid_t d = H5Dcreate2(f, bias, H5T_IEEE_F64LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dclose(d);
    H5Sclose(s);
    H5Fclose(f);
    GPT m;
    gpt_build(&m, &w.model.config);
    Ckpt *ck = open_ok(path, NULL);
    assert_fails_with(ckpt_read_model(ck, "", &m, 0),
                      "/model/transformer.ln_f.bias has type float64, expected float32");
    ckpt_close(ck);
    // attributes that disagree with the stored tensors
    set_int_attr(path, "/model", "n_head", 5);
    ck = open_ok(path, NULL);
    GPTConfig c;
    assert_fails_with(ckpt_read_model_config(ck, "", &c), "invalid config");
    ckpt_close(ck);
    set_int_attr(path, "/model", "n_head", 2);
    set_int_attr(path, "/model", "n_layer", 1);
    ck = open_ok(path, NULL);
    assert_fails_with(ckpt_read_model_config(ck, "", &c), "says n_layer=1 but holds /model/transformer.h.1.ln_1.weight");
    ckpt_close(ck);
    set_int_attr(path, "/model", "n_layer", 2);
    const int V = w.tok.vocab_size;
    char want[96];
    set_int_attr(path, "/model", "vocab_size", V + 1);
    ck = open_ok(path, NULL);
    snprintf(want, sizeof want, "has shape [%d, 16], expected [%d, 16]", V, V + 1);
    assert_fails_with(ckpt_read_model_config(ck, "", &c), want);
    ckpt_close(ck);
    gpt_free(&m);
    world_free(&w);
}

// Flips one byte in the middle of the stored (compressed) chunk of a
// dataset: fletcher32 must catch it.
static void test_reject_flipped_byte(void **state) {
    (void)state;
    World w;
    world_build(&w, TOKENIZER_CHAR, 16, 0);
    const char *path = scratch_path("flip.h5");
    world_save(&w, path);
    const char *name = "/model/transformer.h.1.mlp.c_fc.weight";
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    assert_true(d >= 0);
    hid_t s = H5Dget_space(d);
    hsize_t nchunks = 0, offset[2];
    unsigned mask;
    haddr_t addr;
    hsize_t size;
    assert_true(H5Dget_num_chunks(d, s, &nchunks) >= 0);
    assert_int_equal(nchunks, 1);  // [64, 16] fits one chunk
    assert_true(H5Dget_chunk_info(d, s, 0, offset, &mask, &addr, &size) >= 0);
    H5Sclose(s);
    H5Dclose(d);
    H5Fclose(f);
    assert_true(size > 64);
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    long at = (long)addr + (long)size / 2;
    fseek(fp, at, SEEK_SET);
    int byte = fgetc(fp);
    fseek(fp, at, SEEK_SET);
    fputc(byte ^ 0x10, fp);
    fclose(fp);

    Ckpt *ck = open_ok(path, NULL);  // metadata is intact
    GPT m;
    gpt_build(&m, &w.model.config);
    assert_fails_with(ckpt_read_model(ck, "", &m, 0),
                      "dataset /model/transformer.h.1.mlp.c_fc.weight is corrupt (checksum mismatch)");
    assert_non_null(strstr(rlhf_errmsg, "hint:"));
    ckpt_close(ck);
    gpt_free(&m);
    world_free(&w);
}

static void test_state_errors(void **state) {
    (void)state;
    World w;
    world_build(&w, TOKENIZER_CHAR, 16, 0);
    const char *path = scratch_path("state.h5");
    world_save(&w, path);
    Ckpt *ck = open_ok(path, NULL);
    int64_t i64[4];
    uint64_t u64[4];
    double f64[4];
    assert_fails_with(ckpt_read_i64(ck, "data/cursor", i64, 4),
                      "/state/data/cursor has shape [3], expected [4]");
    assert_fails_with(ckpt_read_f64(ck, "rng", f64, 4), "/state/rng has type uint64, expected float64");
    assert_fails_with(ckpt_read_i64(ck, "rng", i64, 4), "/state/rng has type uint64, expected int64");
    assert_fails_with(ckpt_read_u64(ck, "kl_ctl", u64, 1), "/state/kl_ctl is missing");
    assert_fails_with(ckpt_read_u64(ck, "ppo/kl", u64, 1), "/state/ppo/kl is not a dataset");
    ckpt_close(ck);
    world_free(&w);
}

// --- crash safety --------------------------------------------------------------------

static int64_t step_of(const char *path) {
    CkptMeta meta;
    Ckpt *ck = open_ok(path, &meta);
    int64_t step = meta.step;
    ckpt_close(ck);
    ckpt_meta_free(&meta);
    return step;
}

static void test_commit_replaces_only_when_complete(void **state) {
    (void)state;
    World w;
    world_build(&w, TOKENIZER_CHAR, 16, 0);
    const char *path = scratch_path("latest.h5"), *tmp = scratch_path("latest.h5.tmp");
    world_save(&w, path);  // step 30
    w.meta.step = 31;
    Ckpt *ck = ckpt_create(path, &w.meta);
    assert_non_null(ck);
    assert_int_equal(ckpt_write_model(ck, "", &w.model), 0);
    // mid-write: the old file is whole and readable, the new one is aside
    assert_true(file_exists(tmp));
    assert_int_equal(step_of(path), 30);
    assert_int_equal(ckpt_write_optimizer(ck, "", &w.opt, &w.model), 0);
    assert_int_equal(step_of(path), 30);
    assert_int_equal(ckpt_commit(ck), 0);
    assert_int_equal(step_of(path), 31);
    assert_false(file_exists(tmp));
    world_free(&w);
}

// ckpt_no_replace (an output checked without --force): a file that appears
// at PATH while the checkpoint is written is kept, and the commit fails.
static void test_no_replace_keeps_newcomer(void **state) {
    (void)state;
    World w;
    world_build(&w, TOKENIZER_CHAR, 16, 0);
    const char *path = scratch_path("out.h5"), *tmp = scratch_path("out.h5.tmp");
    Ckpt *ck = ckpt_create(path, &w.meta);
    assert_non_null(ck);
    ckpt_no_replace(ck);
    assert_int_equal(ckpt_write_model(ck, "", &w.model), 0);
    FILE *f = fopen(path, "wb");
    fputs("theirs", f);
    fclose(f);
    char before[65], after[65];
    assert_int_equal(file_sha256(path, before), 0);
    assert_fails_with(ckpt_commit(ck), "appeared while it was being written, and is kept");
    assert_int_equal(file_sha256(path, after), 0);
    assert_string_equal(before, after);
    assert_false(file_exists(tmp));
    // with nothing there it is put in place
    assert_int_equal(unlink(path), 0);
    ck = ckpt_create(path, &w.meta);
    assert_non_null(ck);
    ckpt_no_replace(ck);
    assert_int_equal(ckpt_write_model(ck, "", &w.model), 0);
    assert_int_equal(ckpt_commit(ck), 0);
    assert_int_equal(step_of(path), (int)w.meta.step);
    assert_false(file_exists(tmp));
    world_free(&w);
}

static void test_abort_keeps_old_file(void **state) {
    (void)state;
    World w;
    world_build(&w, TOKENIZER_CHAR, 16, 0);
    const char *path = scratch_path("keep.h5"), *tmp = scratch_path("keep.h5.tmp");
    world_save(&w, path);
    char before[65], after[65];
    assert_int_equal(file_sha256(path, before), 0);
    // a stale .tmp from a crashed run is replaced, not appended to
    FILE *f = fopen(tmp, "wb");
    fputs("junk from a crash", f);
    fclose(f);
    w.meta.step = 99;
    Ckpt *ck = ckpt_create(path, &w.meta);
    assert_non_null(ck);
    assert_int_equal(ckpt_write_model(ck, "", &w.model), 0);
    ckpt_abort(ck);
    assert_false(file_exists(tmp));
    assert_int_equal(file_sha256(path, after), 0);
    assert_string_equal(before, after);
    ckpt_abort(NULL);  // safe on NULL
    world_free(&w);
}

static void test_failed_writes_leave_nothing(void **state) {
    (void)state;
    World w;
    world_build(&w, TOKENIZER_CHAR, 16, 0);
    // no such directory
    rlhf_errmsg[0] = '\0';
    assert_null(ckpt_create(scratch_path("no/such/dir/x.h5"), &w.meta));
    assert_non_null(strstr(rlhf_errmsg, "cannot create"));
    assert_non_null(strstr(rlhf_errmsg, "No such file or directory"));
    // rename onto a non-empty directory fails at commit: tmp removed
    const char *dir = scratch_path("adir");
    assert_int_equal(mkdir(dir, 0755), 0);
    char inner[300];
    snprintf(inner, sizeof inner, "%s/x", dir);
    fclose(fopen(inner, "w"));
    Ckpt *ck = ckpt_create(dir, &w.meta);
    assert_non_null(ck);
    assert_int_equal(ckpt_write_model(ck, "", &w.model), 0);
    assert_fails_with(ckpt_commit(ck), "cannot rename");
    assert_false(file_exists(scratch_path("adir.tmp")));
    assert_true(file_exists(inner));
    // a failed write makes commit refuse: bad state names are input errors
    const char *path = scratch_path("refused.h5");
    ck = ckpt_create(path, &w.meta);
    int64_t x = 1;
    assert_fails_with(ckpt_write_i64(ck, "/abs", &x, 1), "bad state name '/abs'");
    assert_fails_with(ckpt_commit(ck), "bad state name");
    assert_false(file_exists(path));
    assert_false(file_exists(scratch_path("refused.h5.tmp")));
    world_free(&w);
}

// --- layout as other tools see it -------------------------------------------------------

typedef struct {
    int datasets, bad;
    char first_bad[256];
} LayoutCheck;

static herr_t layout_visit(hid_t obj, const char *name, const H5O_info_t *info, void *data) {
    LayoutCheck *lc = data;
    if (info->type != H5O_TYPE_DATASET) return 0;
    lc->datasets++;
    hid_t d = H5Dopen2(obj, name, H5P_DEFAULT);
    hid_t dcpl = H5Dget_create_plist(d);
    int ok = H5Pget_layout(dcpl) == H5D_CHUNKED && H5Pget_nfilters(dcpl) == 3;
    int have = 0;
    for (int i = 0; ok && i < 3; i++) {
        unsigned flags, cd[8];
        size_t ncd = 8;
        H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &ncd, cd, 0, NULL, NULL);
        have |= id == H5Z_FILTER_SHUFFLE ? 1 : id == H5Z_FILTER_DEFLATE ? 2 : id == H5Z_FILTER_FLETCHER32 ? 4 : 0;
    }
    if (!ok || have != 7) {
        if (!lc->bad++) snprintf(lc->first_bad, sizeof lc->first_bad, "%s", name);
    }
    H5Pclose(dcpl);
    H5Dclose(d);
    return 0;
}

static void test_every_dataset_chunked_with_checksums(void **state) {
    (void)state;
    World w;
    world_build(&w, TOKENIZER_CHAR, 16, 1);
    const char *path = scratch_path("layout.h5");
    world_save(&w, path);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    LayoutCheck lc = {0, 0, ""};
    assert_true(H5Ovisit(f, H5_INDEX_NAME, H5_ITER_INC, layout_visit, &lc) >= 0);
    // 2 layers x 12 + 4 model + 2 head tensors, twice more as moments,
    // 3 tokenizer, 3 metrics, 3 state
    int tensors = 2 * 12 + 4 + 2;
    assert_int_equal(lc.datasets, 3 * tensors + 3 + 3 + 3);
    if (lc.bad) fail_msg("%d datasets lack chunking/filters, first %s", lc.bad, lc.first_bad);
    // heads in nanoGPT-style shapes: value.weight [C], value.bias [1]
    hid_t d = H5Dopen2(f, "/heads/value.bias", H5P_DEFAULT);
    hid_t s = H5Dget_space(d);
    hsize_t dims[2];
    assert_int_equal(H5Sget_simple_extent_ndims(s), 1);
    H5Sget_simple_extent_dims(s, dims, NULL);
    assert_int_equal(dims[0], 1);
    H5Sclose(s);
    H5Dclose(d);
    H5Fclose(f);
    world_free(&w);
}

// h5py opens the file by name, gets the shapes and the values C wrote, and
// reads string attributes as str (not bytes).
static const char H5PY_CHECK[] =
    "import sys, json, h5py, numpy as np\n"
    "path, raw, V, C = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])\n"
    "with h5py.File(path, 'r') as f:\n"
    "    a = f.attrs\n"
    "    for k in ('format', 'stage', 'config', 'parent', 'created'):\n"
    "        assert isinstance(a[k], str), (k, type(a[k]))\n"
    "    assert a['format'] == 'rlhf.c' and int(a['format_version']) == 1, dict(a)\n"
    "    assert a['stage'] == 'pretrain' and int(a['step']) == 30, dict(a)\n"
    "    assert json.loads(a['config'])['note'] == 'caf\\u00e9'\n"
    "    w = f['model/transformer.wte.weight']\n"
    "    assert w.shape == (V, C) and w.dtype == np.float32, (w.shape, w.dtype)\n"
    "    assert np.array_equal(w[()], np.fromfile(raw, dtype='<f4').reshape(V, C))\n"
    "    assert f['model/transformer.h.1.mlp.c_fc.weight'].shape == (4 * C, C)\n"
    "    assert f['model/transformer.h.1.mlp.c_proj.weight'].shape == (C, 4 * C)\n"
    "    assert f['model/transformer.h.0.attn.c_attn.bias'].shape == (3 * C,)\n"
    "    assert int(f['model'].attrs['n_embd']) == C and int(f['model'].attrs['vocab_size']) == V\n"
    "    t = f['tokenizer']\n"
    "    assert t.attrs['type'] == 'bpe' and isinstance(t.attrs['type'], str)\n"
    "    assert t['merges'].shape[1] == 2 and t['vocab_offsets'].shape == (V + 1,)\n"
    "    assert f['optimizer/m/transformer.wte.weight'].shape == (V, C)\n"
    "    assert int(f['optimizer'].attrs['t']) == 42\n"
    "    assert f['metrics/loss'].dtype == np.float64 and f['metrics/loss'].shape == (3,)\n"
    "    assert list(f['state/rng'][()]) == [2**64 - 1, 1, 0x0123456789abcdef, 0]\n"
    "    print('h5py ok:', repr(a['stage']), w.shape)\n";

static void test_h5py_reads_checkpoint(void **state) {
    (void)state;
    const char *py = getenv("PYTHON") ? getenv("PYTHON") : "/usr/bin/python3";
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' -c 'import h5py' >/dev/null 2>&1", py);
    if (system(cmd) != 0) {
        print_message("h5py not importable by %s (install python3-h5py)\n", py);
        skip();
    }
    World w;
    world_build(&w, TOKENIZER_BPE, 16, 0);
    const char *path = scratch_path("h5py.h5"), *raw = scratch_path("wte.f32"),
               *script = scratch_path("check.py");
    world_save(&w, path);
    FILE *f = fopen(raw, "wb");
    size_t n = w.model.info[PARAM_wte].size;
    assert_int_equal(fwrite(w.model.params.wte, sizeof(float), n, f), n);  // host is little-endian
    fclose(f);
    f = fopen(script, "w");
    fputs(H5PY_CHECK, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "'%s' '%s' '%s' '%s' %d %d", py, script, path, raw,
             w.model.config.vocab_size, w.model.config.n_embd);
    assert_int_equal(system(cmd), 0);
    world_free(&w);
}

// Metrics columns named with '/' (as `rlhf dpo` logs TRL's "rewards/chosen")
// are nested datasets: /metrics/rewards/chosen. They read back under the
// same names, in the same order and bits, with the group's members in
// creation order (not name order); h5py reads them by path and the
// notebooks' read_metrics by their full names, in the same order. A name
// that cannot be a path is refused with one reason.
static const char H5PY_METRICS[] =
    "import sys, h5py, numpy as np\n"
    "sys.path.insert(0, 'notebooks')\n"
    "import gpt_numpy\n"
    "with h5py.File(sys.argv[1], 'r') as f:\n"
    "    assert list(f['metrics/rewards/chosen'][()]) == [0.5, -1.0], f['metrics/rewards/chosen'][()]\n"
    "    assert isinstance(f['metrics/rewards'], h5py.Group)\n"
    "    assert list(f['metrics/a/b/x'][()]) == [1.0, 2.0]\n"
    "m = gpt_numpy.read_metrics(sys.argv[1])\n"
    "assert list(m) == sys.argv[2].split(','), list(m)\n"
    "assert m['rewards/rejected'][1] == 0.25 and np.isnan(m['rewards/rejected'][0])\n"
    "print('h5py nested metrics ok')\n";

static void test_metrics_nested_names(void **state) {
    (void)state;
    Metrics w;
    metrics_init(&w);
    const double rows[2][8] = {{1, 4.5, 0.5, 9, -2, NAN, 1, 7}, {2, 3.5, -1, 8, -3, 0.25, 2, 6}};
    // "rewards/rejected", new in the second row, joins its group at index 3
    const char *order[] = {"step", "loss", "rewards/chosen", "zeta", "logps/chosen",
                           "rewards/rejected", "a/b/x", "a/y"};
    const char *want[] = {"step", "loss", "rewards/chosen", "rewards/rejected", "zeta",
                          "logps/chosen", "a/b/x", "a/y"};
    for (int r = 0; r < 2; r++) {
        for (int c = 0; c < 8; c++)
            if (!isnan(rows[r][c])) metrics_set(&w, order[c], rows[r][c]);
        metrics_commit(&w);
    }
    for (int c = 0; c < 8; c++) assert_string_equal(w.names[c], want[c]);
    CkptMeta meta = {.stage = "dpo", .step = 2, .config_json = "{}", .parent = ""};
    const char *path = scratch_path("nested.h5");
    Ckpt *ck = ckpt_create(path, &meta);
    assert_non_null(ck);
    assert_int_equal(ckpt_write_metrics(ck, &w), 0);
    assert_int_equal(ckpt_commit(ck), 0);

    CkptMeta rm;
    ck = open_ok(path, &rm);
    Metrics back;
    metrics_init(&back);
    if (ckpt_read_metrics(ck, &back)) fail_msg("%s", rlhf_errmsg);
    ckpt_close(ck);
    ckpt_meta_free(&rm);
    assert_int_equal(back.ncols, 8);
    assert_int_equal(back.nrows, 2);
    for (int c = 0; c < 8; c++) {
        assert_string_equal(back.names[c], want[c]);
        assert_memory_equal(back.cols[c], w.cols[c], 2 * sizeof(double));
    }

    const char *py = getenv("PYTHON") ? getenv("PYTHON") : "/usr/bin/python3";
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' -c 'import h5py' >/dev/null 2>&1", py);
    if (system(cmd) == 0) {
        const char *script = scratch_path("nested.py");
        FILE *f = fopen(script, "w");
        fputs(H5PY_METRICS, f);
        fclose(f);
        snprintf(cmd, sizeof cmd, "'%s' '%s' '%s' "
                 "step,loss,rewards/chosen,rewards/rejected,zeta,logps/chosen,a/b/x,a/y",
                 py, script, path);
        assert_int_equal(system(cmd), 0);
    } else {
        print_message("h5py not importable by %s: nested names checked in C only\n", py);
    }

    // a name that cannot be a path is refused when it is written
    Metrics odd;
    metrics_init(&odd);
    const double one = 1;
    metrics_add_column(&odd, "step", &one, 1);
    free(odd.names[0]);
    odd.names[0] = strdup_check("a//b");  // metrics_set would not take it
    ck = ckpt_create(scratch_path("odd.h5"), &meta);
    assert_non_null(ck);
    assert_fails_with(ckpt_write_metrics(ck, &odd), "cannot be a dataset path");
    ckpt_abort(ck);
    metrics_free(&odd);
    metrics_free(&back);
    metrics_free(&w);
}

// --- token shards ------------------------------------------------------------------------

static int stored_token_bytes(const char *path) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "/tokens", H5P_DEFAULT);
    hid_t t = H5Dget_type(d);
    int size = (int)H5Tget_size(t);
    assert_int_equal(H5Tget_sign(t), H5T_SGN_NONE);
    H5Tclose(t);
    H5Dclose(d);
    H5Fclose(f);
    return size;
}

static hsize_t stored_chunks(const char *path, const char *name) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    hid_t s = H5Dget_space(d);
    hsize_t n = 0;
    assert_true(H5Dget_num_chunks(d, s, &n) >= 0);
    H5Sclose(s);
    H5Dclose(d);
    H5Fclose(f);
    return n;
}

static void shard_roundtrip(int V, int want_bytes, size_t n) {
    const char *path = scratch_path("tokens.h5");
    int *toks = mallocCheck(n * sizeof *toks);
    for (size_t i = 0; i < n; i++) toks[i] = (int)((i * 7919u) % (unsigned)V);
    toks[0] = V - 1;
    toks[1] = 0;
    assert_int_equal(shard_write(path, toks, n, V, 0xfeedfacecafebeefULL), 0);
    assert_false(file_exists(scratch_path("tokens.h5.tmp")));
    assert_int_equal(stored_token_bytes(path), want_bytes);
    // chunks hold at most 2^20 elements
    assert_int_equal(stored_chunks(path, "/tokens"), (n + (1u << 20) - 1) >> 20);
    int *back, vocab;
    size_t nback;
    uint64_t hash;
    if (shard_read(path, &back, &nback, &vocab, &hash)) fail_msg("%s", rlhf_errmsg);
    assert_int_equal(nback, n);
    assert_int_equal(vocab, V);
    assert_true(hash == 0xfeedfacecafebeefULL);
    assert_memory_equal(back, toks, n * sizeof *toks);
    free(back);
    free(toks);
}

static void test_shard_roundtrip_uint16(void **state) {
    (void)state;
    shard_roundtrip(65535, 2, 5000);
}

static void test_shard_roundtrip_uint32(void **state) {
    (void)state;
    shard_roundtrip(65536, 4, 5000);
    shard_roundtrip(100000, 4, (1u << 20) + 1000);  // two chunks
}

// Every single-byte change of a token shard, at every offset (each byte
// inverted): the read either fails with one line or returns the very same
// tokens, never different ones and never a crash. (Files in HDF5's older
// format had no metadata checksums: fuzz/fuzz_checkpoint found a changed
// filter parameter that overflowed a buffer inside HDF5's decoder.)
static void test_shard_every_byte_flipped(void **state) {
    (void)state;
    const char *path = scratch_path("flip_src.h5"), *bad = scratch_path("flip.h5");
    int toks[64];
    for (int i = 0; i < 64; i++) toks[i] = (i * 37) % 300;
    assert_int_equal(shard_write(path, toks, 64, 300, 99), 0);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    uint8_t buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    assert_true(n > 0 && n < sizeof buf);
    long refused = 0, same = 0;
    for (size_t i = 0; i < n; i++) {
        buf[i] ^= 0xff;
        f = fopen(bad, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(buf, 1, n, f), n);
        fclose(f);
        buf[i] ^= 0xff;
        int *back = NULL;
        size_t count = 0;
        int V = 0;
        uint64_t hash = 0;
        if (shard_read(bad, &back, &count, &V, &hash) != 0) {
            assert_null(strchr(rlhf_errmsg, '\n'));
            refused++;
            continue;
        }
        if (count != 64 || V != 300 || hash != 99 || memcmp(back, toks, sizeof toks) != 0)
            fail_msg("byte %zu of %zu changed undetected: %zu tokens, vocab %d", i, n, count, V);
        free(back);
        same++;
    }
    print_message("%zu bytes: %ld changes refused, %ld harmless (unused bytes)\n", n, refused,
                  same);
}

static void test_shard_rejects_out_of_range(void **state) {
    (void)state;
    const char *path = scratch_path("bad_tokens.h5");
    int toks[4] = {0, 5, 299, 7};
    assert_fails_with(shard_write(path, toks, 4, 299, 1), "token 299 at position 2");
    assert_false(file_exists(path));
    // a valid shard whose vocab_size no longer covers its tokens
    assert_int_equal(shard_write(path, toks, 4, 300, 1), 0);
    set_int_attr(path, "/", "vocab_size", 200);
    int *back = (int *)1;
    size_t n = 1;
    assert_fails_with(shard_read(path, &back, &n, NULL, NULL),
                      "token 299 at position 2 is not below vocab_size 200");
    assert_null(back);
    assert_int_equal(n, 0);
    assert_fails_with(shard_read(scratch_path("nope.h5"), &back, &n, NULL, NULL), "no such file");
    // empty shards are legal
    assert_int_equal(shard_write(path, NULL, 0, 11, 1), 0);
    assert_int_equal(shard_read(path, &back, &n, NULL, NULL), 0);
    assert_int_equal(n, 0);
    free(back);
}

// --- rollout dumps and sha256 -------------------------------------------------------------

static void test_rollout_dump_append(void **state) {
    (void)state;
    const char *path = scratch_path("rollouts.h5");
    int toks[6] = {1, 2, 3, 4, 5, 6};
    float rew[6] = {0.5f, -1, 2, 0, 0, 3.25f};
    DumpColumn cols[2] = {{.name = "tokens", .is_int = 1, .i = toks},
                          {.name = "rewards", .is_int = 0, .f = rew}};
    assert_int_equal(rollout_dump_append(path, 3, 2, 3, cols, 2), 0);
    toks[0] = 100;
    assert_int_equal(rollout_dump_append(path, 4, 2, 3, cols, 2), 0);
    assert_int_equal(rollout_dump_append(path, 4, 2, 3, cols, 2), 0);  // a resumed run rewrites
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    int back[6];
    float fback[6];
    hid_t d = H5Dopen2(f, "/batch_000003/tokens", H5P_DEFAULT);
    hid_t s = H5Dget_space(d);
    hsize_t dims[2];
    H5Sget_simple_extent_dims(s, dims, NULL);
    assert_true(dims[0] == 2 && dims[1] == 3);
    assert_true(H5Dread(d, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, back) >= 0);
    assert_int_equal(back[0], 1);
    H5Sclose(s);
    H5Dclose(d);
    d = H5Dopen2(f, "/batch_000004/tokens", H5P_DEFAULT);
    assert_true(H5Dread(d, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, back) >= 0);
    assert_memory_equal(back, toks, sizeof toks);
    H5Dclose(d);
    d = H5Dopen2(f, "/batch_000004/rewards", H5P_DEFAULT);
    assert_true(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, fback) >= 0);
    assert_memory_equal(fback, rew, sizeof rew);
    H5Dclose(d);
    H5Fclose(f);
    // a 2-D dataset beyond one chunk is cut into row blocks: [1100, 1000]
    // is 1.1M elements, two chunks of 1048 rows
    int rows = 1100, ncols = 1000;
    float *big = mallocCheck((size_t)rows * ncols * sizeof *big);
    for (int i = 0; i < rows * ncols; i++) big[i] = (float)i * 0.5f;
    DumpColumn bigcol = {.name = "logprobs", .is_int = 0, .f = big};
    assert_int_equal(rollout_dump_append(path, 5, rows, ncols, &bigcol, 1), 0);
    assert_int_equal(stored_chunks(path, "/batch_000005/logprobs"), 2);
    float *bigback = mallocCheck((size_t)rows * ncols * sizeof *bigback);
    f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    d = H5Dopen2(f, "/batch_000005/logprobs", H5P_DEFAULT);
    assert_true(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, bigback) >= 0);
    assert_memory_equal(bigback, big, (size_t)rows * ncols * sizeof *big);
    H5Dclose(d);
    H5Fclose(f);
    free(big);
    free(bigback);
    // a resumed run dumping step 4 again drops the later batch 5 it will redo
    assert_int_equal(rollout_dump_append(path, 4, 2, 3, cols, 2), 0);
    f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(H5Lexists(f, "/batch_000003", H5P_DEFAULT) > 0);
    assert_true(H5Lexists(f, "/batch_000004", H5P_DEFAULT) > 0);
    assert_true(H5Lexists(f, "/batch_000005", H5P_DEFAULT) == 0);
    H5Fclose(f);
    // an append that cannot be written (a file-size limit, as on a full
    // disk): while copying the dump, then while adding to the copy. Each
    // fails and leaves the dump as it was, with no PATH.tmp.
    const long before = file_size(path);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    struct rlimit old;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    void (*was)(int) = signal(SIGXFSZ, SIG_IGN);
    const rlim_t limits[2] = {(rlim_t)before / 2, (rlim_t)before + 64};
    for (int k = 0; k < 2; k++) {
        struct rlimit lim = {limits[k], old.rlim_max};
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
        rlhf_errmsg[0] = '\0';
        int rc = rollout_dump_append(path, 6, 2, 3, cols, 2);
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
        assert_int_equal(rc, -1);
        assert_non_null(strstr(rlhf_errmsg, "hint: "));
        if (k == 0) assert_non_null(strstr(rlhf_errmsg, "cannot copy"));
        assert_int_equal(file_size(path), before);
        assert_int_equal(access(tmp, F_OK), -1);
        f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
        assert_true(f >= 0);
        assert_true(H5Lexists(f, "/batch_000004", H5P_DEFAULT) > 0);
        assert_true(H5Lexists(f, "/batch_000006", H5P_DEFAULT) == 0);
        H5Fclose(f);
    }
    signal(SIGXFSZ, was);
    assert_int_equal(rollout_dump_append(path, 6, 2, 3, cols, 2), 0);  // room again
    // appending to something that is not HDF5 is refused, the file untouched
    const char *txt = scratch_path("notes.txt");
    FILE *fp = fopen(txt, "w");
    fputs("hello\n", fp);
    fclose(fp);
    assert_fails_with(rollout_dump_append(txt, 1, 2, 3, cols, 2), "not an HDF5 file");
    assert_int_equal(file_size(txt), 6);
}

static void test_file_sha256(void **state) {
    (void)state;
    const char *path = scratch_path("abc.txt");
    FILE *f = fopen(path, "w");
    fputs("abc", f);
    fclose(f);
    char hex[65];
    assert_int_equal(file_sha256(path, hex), 0);
    // FIPS 180-2 test vector
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    f = fopen(path, "w");
    fclose(f);
    assert_int_equal(file_sha256(path, hex), 0);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_fails_with(file_sha256(scratch_path("absent"), hex), "cannot read");
}

// --- fixture ------------------------------------------------------------------------------

static int setup(void **state) {
    (void)state;
    if (scratch_make("checkpoint") != 0) return -1;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);  // forged files make HDF5 complain
    return 0;
}

static int teardown(void **state) {
    (void)state;
    return scratch_remove();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_bit_identical),
        cmocka_unit_test(test_roundtrip_prefix_and_value_head),
        cmocka_unit_test(test_missing_value_head),
        cmocka_unit_test(test_every_dataset_chunked_with_checksums),
        cmocka_unit_test(test_h5py_reads_checkpoint),
        cmocka_unit_test(test_metrics_nested_names),
        cmocka_unit_test(test_reject_missing_file),
        cmocka_unit_test(test_reject_truncated_file),
        cmocka_unit_test(test_reject_random_bytes),
        cmocka_unit_test(test_reject_foreign_hdf5),
        cmocka_unit_test(test_reject_wrong_format_version),
        cmocka_unit_test(test_reject_edited_attributes),
        cmocka_unit_test(test_reject_wrong_shapes),
        cmocka_unit_test(test_reject_wrong_dtype_and_bad_config),
        cmocka_unit_test(test_reject_flipped_byte),
        cmocka_unit_test(test_state_errors),
        cmocka_unit_test(test_commit_replaces_only_when_complete),
        cmocka_unit_test(test_no_replace_keeps_newcomer),
        cmocka_unit_test(test_abort_keeps_old_file),
        cmocka_unit_test(test_failed_writes_leave_nothing),
        cmocka_unit_test(test_shard_roundtrip_uint16),
        cmocka_unit_test(test_shard_roundtrip_uint32),
        cmocka_unit_test(test_shard_rejects_out_of_range),
        cmocka_unit_test(test_shard_every_byte_flipped),
        cmocka_unit_test(test_rollout_dump_append),
        cmocka_unit_test(test_file_sha256),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

// rlhf import DIR OUT.h5 [--force]
// A Hugging Face GPT-2 directory (config.json + model.safetensors, and
// vocab.json + merges.txt when it has them) -> a checkpoint of stage
// "import" that every stage takes as checkpoint.init and sample, chat, eval
// and inspect read. The tokenizer is GPT-2's, from DIR or else the installed
// files (gpt2_dir()); its chat specials make the vocabulary 50260, so a file
// with GPT-2's 50257 rows gets three more, each the mean of the file's rows
// (hf.h). Nothing is written unless every check passes; OUT is written
// atomically and an existing OUT is replaced only with --force (without it,
// an OUT that appears while the import runs is kept and the import fails).
#define _DEFAULT_SOURCE  // realpath
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint.h"
#include "commands.h"
#include "common.h"
#include "config.h"
#include "gpt.h"
#include "hf.h"
#include "options.h"
#include "run.h"
#include "safetensors.h"
#include "tokenizer.h"

#define USAGE "usage: rlhf import DIR OUT.h5 [--force]"

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = mallocCheck(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

// path resolved (as lineage records are), or as given if it cannot be
static char *resolved(const char *path) {
    char *real = realpath(path, NULL);
    return real ? real : strdup_check(path);
}

// GPT-2's tokenizer: DIR's vocab.json + merges.txt when DIR has either, else
// the installed encoder.json + vocab.bpe. *source names what was read.
static int load_tokenizer(const char *dir, Tokenizer *tok, char **source) {
    char *vocab = join(dir, "vocab.json"), *merges = join(dir, "merges.txt");
    int rc;
    if (file_exists(vocab) || file_exists(merges)) {
        rc = tokenizer_gpt2_load(tok, vocab, merges);
        *source = resolved(vocab);
    } else {
        char *enc = join(gpt2_dir(), "encoder.json"), *bpe = join(gpt2_dir(), "vocab.bpe");
        if (!file_exists(enc))
            rc = rlhf_fail("%s has no vocab.json and GPT-2's files are not installed (%s); "
                           "hint: run 'make deps', or set RLHF_GPT2_DIR", dir, enc);
        else rc = tokenizer_gpt2_load(tok, enc, bpe);
        *source = resolved(enc);
        free(enc);
        free(bpe);
    }
    free(vocab);
    free(merges);
    return rc;
}

// The checkpoint's config: the defaults with this model's shape and tokenizer.
static char *import_config_json(const GPTConfig *c) {
    Config cfg;
    config_init(&cfg);
    char set[96];
    snprintf(set, sizeof set, "model.n_layer=%d", c->n_layer);
    int rc = config_set(&cfg, set);
    snprintf(set, sizeof set, "model.n_head=%d", c->n_head);
    rc |= config_set(&cfg, set);
    snprintf(set, sizeof set, "model.n_embd=%d", c->n_embd);
    rc |= config_set(&cfg, set);
    snprintf(set, sizeof set, "model.block_size=%d", c->block_size);
    rc |= config_set(&cfg, set);
    rc |= config_set(&cfg, "data.tokenizer=gpt2");
    ASSERT(rc == 0);
    char *json = config_to_json(&cfg);
    config_free(&cfg);
    return json;
}

static int write_checkpoint(const char *out, int force, const GPT *m, const Tokenizer *tok,
                            const char *weights, const char *tok_source) {
    // "PATH sha256:HEX" with the resolved path, as a parent is recorded
    char *source = lineage_record(weights);
    if (!source) return -1;
    CkptMeta meta = {0};
    snprintf(meta.stage, sizeof meta.stage, "import");
    meta.config_json = import_config_json(&m->config);
    meta.parent = "";
    Ckpt *ck = ckpt_create(out, &meta);
    int rc = ck ? 0 : -1;
    if (rc == 0) {
        if (!force) ckpt_no_replace(ck);  // an OUT that appeared since output_check is kept
        rc = ckpt_write_model(ck, "", m) || ckpt_write_tokenizer(ck, tok) ||
             ckpt_write_str(ck, "import/weights", source) ||
             ckpt_write_str(ck, "import/tokenizer", tok_source);
        if (rc) ckpt_abort(ck);
        else rc = ckpt_commit(ck);
    }
    free(source);
    free(meta.config_json);
    return rc ? -1 : 0;
}

int cmd_import(int argc, char **argv) {
    static const OptionSpec spec = {
        .usage = USAGE,
        .positional = {"DIR", "OUT.h5"},
        .required = 2,
        .options = {{"force", 0, 0}},
    };
    Options opts;
    if (options_parse(&opts, &spec, argc, argv) != 0) die_last();
    const char *dir = opts.positional[0], *out = opts.positional[1];
    const int force = options_get(&opts, "force") != NULL;
    char *config_path = join(dir, "config.json"), *weights = join(dir, "model.safetensors");
    const char *inputs[] = {config_path, weights};
    if (output_check(out, "OUT.h5", force, inputs, 2) != 0) die_last();

    HfConfig hc;
    SafeTensors st;
    Tokenizer tok = {0};
    char *tok_source = NULL;
    if (hf_config_read(config_path, &hc) != 0) die_last();
    if (safetensors_open(&st, weights) != 0 || hf_check_size(&st, &hc) != 0) die_last();
    if (load_tokenizer(dir, &tok, &tok_source) != 0) die_last();
    // GPT-2's own rows (the specials get the mean), or all of ours (our export)
    if (hc.vocab_size != tok.vocab_size && hc.vocab_size != tok.eot + 1)
        die("%s: vocab_size %d fits neither GPT-2's vocabulary (%d tokens) nor it with rlhf.c's "
            "chat tokens (%d); hint: rlhf.c imports models with GPT-2's tokenizer",
            config_path, hc.vocab_size, tok.eot + 1, tok.vocab_size);
    GPTConfig c = {.n_layer = hc.n_layer, .n_head = hc.n_head, .n_embd = hc.n_embd,
                   .block_size = hc.n_positions, .vocab_size = tok.vocab_size};
    GPT m;
    gpt_build(&m, &c);
    if (hf_import_weights(&st, &hc, &m) != 0) die_last();
    safetensors_close(&st);
    if (write_checkpoint(out, force, &m, &tok, weights, tok_source) != 0) die_last();
    printf("imported %s: %d layers, %d heads, n_embd %d, block_size %d, vocab %d%s -> %s\n",
           dir, c.n_layer, c.n_head, c.n_embd, c.block_size, c.vocab_size,
           hc.vocab_size < c.vocab_size ? " (chat tokens: mean embedding)" : "", out);
    gpt_free(&m);
    tokenizer_free(&tok);
    free(tok_source);
    free(config_path);
    free(weights);
    options_free(&opts);
    return 0;
}

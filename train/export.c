// rlhf export CKPT DIR [--force]
// A checkpoint's language model -> a Hugging Face GPT-2 directory:
// config.json and model.safetensors (GPT2LMHeadModel's layout, hf.h), and,
// for a GPT-2 tokenizer, vocab.json + merges.txt; a char or BPE tokenizer
// has no Hugging Face form, so then only the weights and config are written
// and the command says so. DIR is created; each file is written atomically
// and an existing one is replaced only with --force (all four names are
// checked before anything is written). A reward model or critic (a value
// head) is refused: GPT2LMHeadModel has no place for it.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "commands.h"
#include "common.h"
#include "gpt.h"
#include "hf.h"
#include "options.h"
#include "run.h"
#include "tokenizer.h"

#define USAGE "usage: rlhf export CKPT DIR [--force]"

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = mallocCheck(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int write_weights(const char *path, int force, const char *ckpt, const GPT *m) {
    AtomicFile af;
    const char *inputs[] = {ckpt};
    if (output_open(&af, path, "DIR", force, inputs, 1) != 0) return -1;
    if (hf_export_weights(af.f, m) != 0) {
        atomic_abort(&af);
        return -1;
    }
    return atomic_commit(&af);
}

static int write_config(const char *path, int force, const char *ckpt, const GPT *m, int eot) {
    AtomicFile af;
    const char *inputs[] = {ckpt};
    if (output_open(&af, path, "DIR", force, inputs, 1) != 0) return -1;
    char *text = hf_config_json(m, eot);
    int ok = fputs(text, af.f) >= 0;
    free(text);
    if (!ok) {
        atomic_abort(&af);
        return rlhf_fail("%s: write failed; hint: check free disk space", path);
    }
    return atomic_commit(&af);
}

int cmd_export(int argc, char **argv) {
    static const OptionSpec spec = {
        .usage = USAGE,
        .positional = {"CKPT", "DIR"},
        .required = 2,
        .options = {{"force", 0, 0}},
    };
    Options opts;
    if (options_parse(&opts, &spec, argc, argv) != 0) die_last();
    const char *ckpt = opts.positional[0], *dir = opts.positional[1];
    const int force = options_get(&opts, "force") != NULL;
    char *paths[4] = {join(dir, "model.safetensors"), join(dir, "config.json"),
                      join(dir, "vocab.json"), join(dir, "merges.txt")};
    const char *inputs[] = {ckpt};

    GPT m;
    Tokenizer tok = {0};
    if (load_policy_file(ckpt, &m, &tok, "export: checkpoint") != 0) die_last();
    const int gpt2 = tok.type == TOKENIZER_GPT2, nfiles = gpt2 ? 4 : 2;
    if (mkdir_p(dir) != 0) die_last();
    for (int i = 0; i < nfiles; i++)
        if (output_check(paths[i], "DIR", force, inputs, 1) != 0) die_last();
    if (write_weights(paths[0], force, ckpt, &m) != 0 ||
        write_config(paths[1], force, ckpt, &m, tok.eot) != 0)
        die_last();
    if (gpt2 && tokenizer_gpt2_write(&tok, paths[2], paths[3], !force) != 0) die_last();
    printf("exported %s: %d layers, %d heads, n_embd %d, block_size %d, vocab %d -> %s/ "
           "(model.safetensors, config.json%s)\n", ckpt, m.config.n_layer, m.config.n_head,
           m.config.n_embd, m.config.block_size, m.config.vocab_size, dir,
           gpt2 ? ", vocab.json, merges.txt" : "");
    if (!gpt2)
        printf("note: the checkpoint's tokenizer is %s, which has no Hugging Face GPT-2 form: "
               "only the weights and config.json were written\n",
               tok.type == TOKENIZER_CHAR ? "char" : "bpe");
    for (int i = 0; i < 4; i++) free(paths[i]);
    gpt_free(&m);
    tokenizer_free(&tok);
    options_free(&opts);
    return 0;
}

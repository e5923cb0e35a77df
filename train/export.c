// rlhf export CKPT DIR [--force]
// A checkpoint's language model -> a Hugging Face GPT-2 directory:
// config.json and model.safetensors (GPT2LMHeadModel's layout, hf.h), and,
// for a GPT-2 tokenizer, vocab.json + merges.txt; a char or BPE tokenizer
// has no Hugging Face form, so then only the weights and config are written
// and the command says so. DIR is created; the files are written as one set
// (each in full before any is put in place) and an existing one is replaced
// only with --force (all four names are checked before anything is written). A reward model or critic (a value
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

// Every file of the set written in full before any is put in place
// (atomic_commit_set): a failed export leaves DIR as it was.
static int write_set(char *const *paths, int nfiles, int force, const char *ckpt, const GPT *m,
                     const Tokenizer *tok) {
    AtomicFile af[4];
    const char *inputs[] = {ckpt};
    int opened = 0, rc = 0;
    for (; opened < nfiles && rc == 0; opened++)
        rc = output_open(&af[opened], paths[opened], "DIR", force, inputs, 1);
    if (rc != 0) opened--;  // the failed one is left empty
    if (rc == 0) rc = hf_export_weights(af[0].f, m);
    if (rc == 0) {
        char *text = hf_config_json(m, tok->eot);
        fputs(text, af[1].f);  // a write error shows at the commit
        free(text);
    }
    if (rc == 0 && nfiles == 4) rc = tokenizer_gpt2_put(tok, af[2].f, af[3].f);
    if (rc == 0) return atomic_commit_set(af, nfiles);
    for (int i = 0; i < opened; i++) atomic_abort(&af[i]);
    return -1;
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
    if (write_set(paths, nfiles, force, ckpt, &m, &tok) != 0) die_last();
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

// rlhf prepare CONFIG [--section.key=value ...]
// Corpus -> tokenizer + token shards: reads data.corpus into documents,
// holds out data.val_fraction of them (chosen by seed), trains the
// tokenizer on the whole text, and writes DIR/tokenizer.h5, DIR/train.h5 and
// DIR/val.h5 with an end-of-text token before every document.
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "commands.h"
#include "common.h"
#include "corpus.h"
#include "rng.h"
#include "run.h"
#include "tokenizer.h"

// Encodes the documents listed in order[0..n) as eot d0 eot d1 ...; the
// result is malloc'd. Returns -1 if a document does not encode.
static int encode_docs(const Tokenizer *tok, const Corpus *c, const int *order, size_t n,
                       int **out, size_t *out_n) {
    size_t cap = 1024, len = 0;
    int *ids = mallocCheck(cap * sizeof(int));
    for (size_t i = 0; i < n; i++) {
        size_t dlen;
        const uint8_t *doc = corpus_doc(c, (size_t)order[i], &dlen);
        // a token per byte at most, plus the eot
        while (len + dlen + 1 > cap) ids = reallocCheck(ids, (cap *= 2) * sizeof(int));
        ids[len++] = tok->eot;
        long k = tokenizer_encode(tok, doc, dlen, ids + len, (long)(cap - len));
        if (k < 0) {
            free(ids);
            return rlhf_fail("document %d: %s", order[i], rlhf_errmsg);
        }
        len += (size_t)k;
    }
    *out = ids;
    *out_n = len;
    return 0;
}

static int cmp_int(const void *a, const void *b) {
    return (*(const int *)a > *(const int *)b) - (*(const int *)a < *(const int *)b);
}

int cmd_prepare(int argc, char **argv) {
    Run run;
    if (run_init(&run, "prepare", argc, argv) != 0) die_last();
    const Config *cfg = &run.cfg;
    if (!cfg->data.corpus[0])
        die("data.corpus is not set; hint: set it in the config or pass "
            "--data.corpus=PATH (a text file, .gz file or directory)");
    double t0 = now_seconds();
    Corpus corpus;
    if (corpus_read(&corpus, cfg->data.corpus, cfg->data.doc_split) != 0) die_last();
    printf("# corpus %s: %d files read, %d skipped, %zu documents, %zu bytes\n", cfg->data.corpus,
           corpus.n_files_read, corpus.n_files_skipped, corpus.n_docs, corpus.n_bytes);

    // held-out documents: a seeded choice, then both splits in corpus order
    size_t nd = corpus.n_docs;
    size_t n_val = (size_t)(cfg->data.val_fraction * (double)nd + 0.5);
    if (cfg->data.val_fraction > 0 && n_val == 0) n_val = 1;
    if (n_val == 0 || n_val >= nd)
        die("data.val_fraction=%g of %zu documents leaves %zu for validation and %zu for "
            "training; hint: both need at least one document", cfg->data.val_fraction, nd,
            n_val, nd - n_val);
    int *order = mallocCheck(nd * sizeof(int));
    for (size_t i = 0; i < nd; i++) order[i] = (int)i;
    Rng rng;
    rng_init(&rng, (uint64_t)cfg->train.seed);
    rng_shuffle(&rng, order, (int)nd);
    qsort(order, n_val, sizeof(int), cmp_int);
    qsort(order + n_val, nd - n_val, sizeof(int), cmp_int);

    // tokenizer trained on all documents, separated by blank lines
    size_t tlen = corpus.n_bytes + 2 * nd;
    uint8_t *text = mallocCheck(tlen);
    size_t at = 0;
    for (size_t d = 0; d < nd; d++) {
        size_t dlen;
        const uint8_t *doc = corpus_doc(&corpus, d, &dlen);
        memcpy(text + at, doc, dlen);
        at += dlen;
        text[at++] = '\n';
        text[at++] = '\n';
    }
    Tokenizer tok = {0};
    int type = strcmp(cfg->data.tokenizer, "bpe") == 0 ? TOKENIZER_BPE : TOKENIZER_CHAR;
    if (tokenizer_train(&tok, type, text, at, (int)cfg->data.vocab_size) != 0) die_last();
    free(text);

    int *val_ids, *train_ids;
    size_t n_val_ids, n_train_ids;
    if (encode_docs(&tok, &corpus, order, n_val, &val_ids, &n_val_ids) != 0 ||
        encode_docs(&tok, &corpus, order + n_val, nd - n_val, &train_ids, &n_train_ids) != 0)
        die_last();

    if (mkdir_p(cfg->data.dir) != 0) die_last();
    char path[4096];
    uint64_t hash = tokenizer_hash(&tok);
    char *json = config_to_json(cfg);
    snprintf(path, sizeof path, "%s/tokenizer.h5", cfg->data.dir);
    if (save_tokenizer_file(path, &tok, json) != 0) die_last();
    snprintf(path, sizeof path, "%s/train.h5", cfg->data.dir);
    if (shard_write(path, train_ids, n_train_ids, tok.vocab_size, hash) != 0) die_last();
    snprintf(path, sizeof path, "%s/val.h5", cfg->data.dir);
    if (shard_write(path, val_ids, n_val_ids, tok.vocab_size, hash) != 0) die_last();
    printf("# tokenizer: %s, %d tokens; %.2f bytes per token\n",
           type == TOKENIZER_BPE ? "bpe" : "char", tok.vocab_size,
           (double)corpus.n_bytes / (double)(n_train_ids + n_val_ids - nd));
    printf("# wrote %s/{tokenizer,train,val}.h5: train %zu documents, %zu tokens; val %zu "
           "documents, %zu tokens (%.1f s)\n", cfg->data.dir, nd - n_val, n_train_ids, n_val,
           n_val_ids, now_seconds() - t0);
    free(json);
    free(order);
    free(val_ids);
    free(train_ids);
    tokenizer_free(&tok);
    corpus_free(&corpus);
    run_free(&run);
    return 0;
}

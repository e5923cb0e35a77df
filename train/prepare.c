// rlhf prepare CONFIG [--section.key=value ...]
// Corpus -> tokenizer + token shards: reads data.corpus into documents,
// holds out data.val_fraction of them (chosen by seed), trains the
// tokenizer on the whole text (data.tokenizer = gpt2: reads GPT-2's files
// from data/gpt2 or $RLHF_GPT2_DIR instead), and writes DIR/tokenizer.h5, DIR/train.h5 and
// DIR/val.h5 with an end-of-text token before every document.
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "commands.h"
#include "common.h"
#include "corpus.h"
#include "run.h"
#include "tokenizer.h"

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

    CorpusSplit split;
    if (corpus_split(&split, corpus.n_docs, cfg->data.val_fraction,
                     (uint64_t)cfg->train.seed) != 0)
        die_last();

    // the tokenizer is trained on all documents
    size_t tlen;
    uint8_t *text = corpus_joined_text(&corpus, &tlen);
    Tokenizer tok = {0};
    int type = strcmp(cfg->data.tokenizer, "gpt2") == 0  ? TOKENIZER_GPT2
               : strcmp(cfg->data.tokenizer, "bpe") == 0 ? TOKENIZER_BPE
                                                         : TOKENIZER_CHAR;
    if (type == TOKENIZER_GPT2) {
        if (tokenizer_gpt2_load_default(&tok) != 0) die_last();
    } else if (tokenizer_train(&tok, type, text, tlen, (int)cfg->data.vocab_size) != 0) {
        die_last();
    }
    free(text);

    int *val_ids, *train_ids;
    size_t n_val_ids, n_train_ids;
    if (corpus_encode(&corpus, &tok, split.val, split.n_val, &val_ids, &n_val_ids) != 0 ||
        corpus_encode(&corpus, &tok, split.train, split.n_train, &train_ids, &n_train_ids) != 0)
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
           tokenizer_type_name(type), tok.vocab_size,
           (double)corpus.n_bytes / (double)(n_train_ids + n_val_ids - corpus.n_docs));
    printf("# wrote %s/{tokenizer,train,val}.h5: train %zu documents, %zu tokens; val %zu "
           "documents, %zu tokens (%.1f s)\n", cfg->data.dir, split.n_train, n_train_ids,
           split.n_val, n_val_ids, now_seconds() - t0);
    free(json);
    corpus_split_free(&split);
    free(val_ids);
    free(train_ids);
    tokenizer_free(&tok);
    corpus_free(&corpus);
    run_free(&run);
    return 0;
}

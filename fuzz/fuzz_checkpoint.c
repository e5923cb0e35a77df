// libFuzzer harness: the checkpoint and token-shard loaders on mutated real
// files (fuzz/corpus/fuzz_checkpoint holds small ones written by rlhf.c). Whatever the
// bytes, every read returns 0 or -1 with a one-line reason: no crash, no
// leak, no read out of bounds, no unbounded allocation.
#include "checkpoint.h"
#include "common.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    const char *path = fuzz_file("ckpt.h5", data, n);
    // the same bytes as a token shard
    int *tokens = NULL;
    size_t count = 0;
    int vocab = 0;
    uint64_t hash = 0;
    if (shard_read(path, &tokens, &count, &vocab, &hash) == 0) {
        for (size_t i = 0; i < count; i++) FUZZ_CHECK(tokens[i] >= 0 && tokens[i] < vocab);
        free(tokens);
    } else {
        FUZZ_CHECK(!tokens && !strchr(rlhf_errmsg, '\n'));
    }
    CkptMeta meta = {0};
    Ckpt *ck = ckpt_open(path, &meta);
    if (!ck) {
        FUZZ_CHECK(!strchr(rlhf_errmsg, '\n'));
        return 0;
    }
    GPTConfig c;
    // (a model of up to 2^24 parameters: a real file's size, not an allocation
    // the fuzzer would report as running out of memory)
    if (ckpt_has_model(ck, "") && ckpt_read_model_config(ck, "", &c) == 0 &&
        (double)c.n_layer * 12.0 * c.n_embd * c.n_embd +
                ((double)c.vocab_size + c.block_size) * c.n_embd < (double)(1 << 24)) {
        GPT m;
        gpt_build(&m, &c);
        if (ckpt_read_model(ck, "", &m, 1) == 0 && ckpt_has_optimizer(ck, "")) {
            AdamW opt;
            adamw_build(&opt, m.num_params, 0.9f, 0.95f, 1e-8f, 0.1f);
            ckpt_read_optimizer(ck, "", &opt, &m);
            adamw_free(&opt);
        }
        gpt_free(&m);
    }
    Tokenizer tok = {0};
    if (ckpt_read_tokenizer(ck, &tok) == 0) {
        static const uint8_t text[] = "hello, world\n";
        int ids[64];
        long k = tokenizer_encode(&tok, text, sizeof text - 1, ids, 64);
        if (k > 0 && k <= 64) free(tokenizer_decode(&tok, ids, k, 1));
        tokenizer_free(&tok);
    }
    Metrics mt;
    metrics_init(&mt);
    ckpt_read_metrics(ck, &mt);
    metrics_free(&mt);
    DataState d;
    ckpt_read_data_state(ck, &d);
    ckpt_close(ck);
    ckpt_meta_free(&meta);
    return 0;
}

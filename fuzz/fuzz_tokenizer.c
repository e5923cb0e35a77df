// libFuzzer harness: tokenizer training (char and a small BPE), encoding
// and decoding. Property: text a tokenizer was trained on encodes, and
// decodes back to the same bytes, for both kinds; and any bytes encode with
// GPT-2's tokenizer (when make deps installed its files) and decode back.
#include "common.h"
#include "fuzz_util.h"
#include "tokenizer.h"

static void roundtrip(int type, const uint8_t *data, size_t n) {
    Tokenizer tok = {0};
    // a vocabulary the text may or may not allow: -1 with a reason is fine
    if (tokenizer_train(&tok, type, data, n, 256 + 4 + 16) != 0) return;
    long need = tokenizer_encode(&tok, data, n, NULL, 0);
    FUZZ_CHECK(need >= 0 && (size_t)need <= n);
    int *ids = mallocCheck(((size_t)need + 1) * sizeof *ids);
    FUZZ_CHECK(tokenizer_encode(&tok, data, n, ids, need) == need);
    for (long i = 0; i < need; i++) FUZZ_CHECK(ids[i] >= 0 && ids[i] < tok.vocab_size);
    char *back = tokenizer_decode(&tok, ids, need, 1);
    FUZZ_CHECK(back && memcmp(back, data, n) == 0);
    free(back);
    free(ids);
    tokenizer_free(&tok);
}

static void roundtrip_gpt2(const uint8_t *data, size_t n) {
    static Tokenizer gpt2;
    static int state;  // 0: not tried, 1: loaded, -1: files absent
    if (state == 0) state = tokenizer_gpt2_load_default(&gpt2) == 0 ? 1 : -1;
    if (state < 0) return;
    long need = tokenizer_encode(&gpt2, data, n, NULL, 0);
    FUZZ_CHECK(need >= 0 && (size_t)need <= n);
    int *ids = mallocCheck(((size_t)need + 1) * sizeof *ids);
    FUZZ_CHECK(tokenizer_encode(&gpt2, data, n, ids, need) == need);
    for (long i = 0; i < need; i++) FUZZ_CHECK(ids[i] >= 0 && ids[i] < gpt2.eot);
    char *back = tokenizer_decode(&gpt2, ids, need, 1);
    FUZZ_CHECK(back && memcmp(back, data, n) == 0);
    free(back);
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    if (n > 4096) return 0;  // BPE training is quadratic-ish; small texts find the bugs
    roundtrip(TOKENIZER_CHAR, data, n);
    roundtrip(TOKENIZER_BPE, data, n);
    roundtrip_gpt2(data, n);
    return 0;
}

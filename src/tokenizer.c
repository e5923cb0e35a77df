// Char-level and byte-level BPE tokenizers (skeleton; filled in next).
#include "tokenizer.h"

#include <stdlib.h>
#include <string.h>

#include "common.h"

int tokenizer_train(Tokenizer *tok, int type, const uint8_t *text, size_t n, int vocab_size) {
    memset(tok, 0, sizeof *tok);
    return rlhf_fail("tokenizer training is not implemented yet");
}
int tokenizer_finish(Tokenizer *tok) { return rlhf_fail("tokenizer_finish is not implemented yet"); }
void tokenizer_free(Tokenizer *tok) { memset(tok, 0, sizeof *tok); }
long tokenizer_encode(const Tokenizer *tok, const uint8_t *text, size_t n, int *out, long max_out) {
    return rlhf_fail("tokenizer_encode is not implemented yet");
}
const uint8_t *tokenizer_token_bytes(const Tokenizer *tok, int id, int *len) {
    *len = 0;
    return NULL;
}
char *tokenizer_decode(const Tokenizer *tok, const int *ids, long n, int with_specials) {
    return strdup_check("");
}
uint64_t tokenizer_hash(const Tokenizer *tok) { return 0; }

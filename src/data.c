// Token-window batches for next-token training; see data.h.
#include "data.h"

#include <string.h>

#include "common.h"

int dataloader_init(DataLoader *dl, const int *tokens, size_t n, int B, int T, int shuffle,
                    uint64_t seed) {
    memset(dl, 0, sizeof *dl);
    if (n < (size_t)T + 1)
        return rlhf_fail("token shard has %zu tokens, fewer than one window of block_size+1 = %d; "
                         "hint: use a larger corpus or a smaller model.block_size", n, T + 1);
    dl->tokens = tokens;
    dl->n = n;
    dl->B = B;
    dl->T = T;
    dl->shuffle = shuffle;
    rng_init(&dl->rng, seed);
    return 0;
}

void dataloader_next(DataLoader *dl, int *inputs, int *targets) {
    const size_t T = (size_t)dl->T, windows = dl->n - T;  // valid offsets [0, windows)
    for (int b = 0; b < dl->B; b++) {
        size_t off;
        if (dl->shuffle) {
            off = (size_t)rng_below(&dl->rng, windows);
        } else {
            if ((size_t)dl->cursor >= windows) dl->cursor = 0;
            off = (size_t)dl->cursor;
            dl->cursor += (int64_t)T;
        }
        memcpy(inputs + b * T, dl->tokens + off, T * sizeof(int));
        memcpy(targets + b * T, dl->tokens + off + 1, T * sizeof(int));
    }
    if (dl->shuffle) dl->cursor++;
}

void dataloader_rewind(DataLoader *dl) { dl->cursor = 0; }

void dataloader_get_state(const DataLoader *dl, DataState *state) {
    memcpy(state->rng, dl->rng.s, sizeof state->rng);
    state->cursor = (uint64_t)dl->cursor;
}

void dataloader_set_state(DataLoader *dl, const DataState *state) {
    memcpy(dl->rng.s, state->rng, sizeof state->rng);
    dl->cursor = (int64_t)state->cursor;
}

// Batches of token windows from a token shard held in memory, for next-token
// training: inputs are tokens[o .. o+T), targets tokens[o+1 .. o+T].
// Shuffled loaders draw window offsets uniformly from their own RNG;
// sequential ones sweep the shard in order and wrap. The state (RNG and
// cursor) is two small arrays, so a resumed run draws the same batches.
#ifndef RLHF_DATA_H
#define RLHF_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "rng.h"

typedef struct {
    const int *tokens;  // not owned
    size_t n;
    int B, T;
    int shuffle;
    Rng rng;
    int64_t cursor;     // next window offset (sequential) / batches drawn (shuffled)
} DataLoader;

// Returns -1 with a reason when the shard is shorter than one window (T+1).
int dataloader_init(DataLoader *dl, const int *tokens, size_t n, int B, int T, int shuffle,
                    uint64_t seed);
// Fills inputs and targets, each (B,T).
void dataloader_next(DataLoader *dl, int *inputs, int *targets);
// Back to the first batch of a sequential sweep (evaluation passes).
void dataloader_rewind(DataLoader *dl);

// Where a training stage's data stream stands: the RNG it draws from (when
// it has one) and how many items (windows, batches, prompts) it consumed.
// Checkpoints store it as /state/data, five uint64: the rng words, then the
// cursor.
typedef struct {
    uint64_t rng[4];
    uint64_t cursor;
} DataState;

void dataloader_get_state(const DataLoader *dl, DataState *state);
void dataloader_set_state(DataLoader *dl, const DataState *state);

#endif

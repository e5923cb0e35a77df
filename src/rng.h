// Seeded pseudo-random numbers (xoshiro256**, seeded through splitmix64).
// The whole state is four 64-bit words, so checkpoints can store it and a
// resumed run draws exactly the numbers it would have drawn.
#ifndef RLHF_RNG_H
#define RLHF_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} Rng;

void rng_init(Rng *rng, uint64_t seed);
uint64_t rng_u64(Rng *rng);
// Uniform in [0, 1) with 24 random bits (exactly representable as float).
float rng_float(Rng *rng);
// Uniform integer in [0, n), n > 0, without modulo bias.
uint64_t rng_below(Rng *rng, uint64_t n);
// Standard normal (Box-Muller; uses two uniforms per call, keeps no cache).
float rng_normal(Rng *rng);
// Fisher-Yates shuffle of an int array.
void rng_shuffle(Rng *rng, int *a, int n);
void rng_shuffle_long(Rng *rng, long *a, long n);
// n independent streams out[0..n) seeded from one draw of rng (stream i
// from that draw and i), e.g. one per row of a batch.
void rng_split(Rng *rng, Rng *out, int n);

#endif

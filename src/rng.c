// xoshiro256** generator; algorithm by Blackman and Vigna (public domain
// reference), written here from the published description.
#include "rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void rng_init(Rng *rng, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) rng->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t rng_u64(Rng *rng) {
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float rng_float(Rng *rng) { return (float)(rng_u64(rng) >> 40) * (1.0f / 16777216.0f); }

uint64_t rng_below(Rng *rng, uint64_t n) {
    // rejection sampling on the top of the range removes modulo bias
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t r;
    do r = rng_u64(rng);
    while (r >= limit);
    return r % n;
}

float rng_normal(Rng *rng) {
    // u1 in (0, 1] so log() is finite
    double u1 = ((double)(rng_u64(rng) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
    double u2 = (double)(rng_u64(rng) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void rng_shuffle(Rng *rng, int *a, int n) {
    for (int i = n - 1; i > 0; i--) {
        int j = (int)rng_below(rng, (uint64_t)i + 1);
        int t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

void rng_shuffle_long(Rng *rng, long *a, long n) {
    for (long i = n - 1; i > 0; i--) {
        long j = (long)rng_below(rng, (uint64_t)i + 1);
        long t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

void rng_split(Rng *rng, Rng *out, int n) {
    const uint64_t base = rng_u64(rng);
    // rng_init's splitmix64 scrambles the seeds (golden-ratio steps apart)
    for (int i = 0; i < n; i++) rng_init(&out[i], base + 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1));
}

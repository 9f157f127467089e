/* base/rng.c: xoshiro256** (Blackman and Vigna), seeded by splitmix64. Chosen because its
 * output is fixed by the algorithm alone, so runs are reproducible across machines. */
#include "base.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
    return base_mix64(*x += 0x9e3779b97f4a7c15ull);
}

void base_rng_seed(base_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

uint64_t base_rng_u64(base_rng *r) {
    uint64_t *s = r->s;
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

float base_rng_uniform(base_rng *r) {
    return (float)(base_rng_u64(r) >> 40) * 0x1.0p-24f;
}

float base_rng_normal(base_rng *r) {
    /* Box-Muller in double; u1 is kept away from 0 so log() is finite. */
    double u1 = ((double)(base_rng_u64(r) >> 11) + 0.5) * 0x1.0p-53;
    double u2 = (double)(base_rng_u64(r) >> 11) * 0x1.0p-53;
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

uint64_t base_rng_below(base_rng *r, uint64_t n) {
    /* Rejection sampling removes the modulo bias. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = base_rng_u64(r);
    while (x >= limit);
    return x % n;
}

void base_rng_permute(base_rng *r, uint32_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = (uint32_t)i;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)base_rng_below(r, i);
        uint32_t t = p[i - 1];
        p[i - 1] = p[j];
        p[j] = t;
    }
}

/* rng.c — xoshiro256** seeded through splitmix64: identical streams on every
 * platform (init and sampling never use rand()). */
#include <math.h>

#include "core/internal.h"

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

void hydra_rng_seed(hydra_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t hydra_rng_next(hydra_rng *r) {
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

double hydra_rng_uniform(hydra_rng *r) { return (double)(hydra_rng_next(r) >> 11) * 0x1.0p-53; }

/* Box-Muller in double; one normal per call keeps the stream position simple. */
float hydra_rng_normal(hydra_rng *r) {
    double u1 = hydra_rng_uniform(r), u2 = hydra_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

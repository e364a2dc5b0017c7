/* simd.h — portable 16-lane float vectors (GCC vector extensions) for the
 * hot loops. Functions that use them are compiled with
 * target_clones("avx512f", "default"): the AVX-512 clone maps a vector to one
 * zmm register, the default clone to SSE pairs, so the library runs on any
 * x86-64. Written explicitly because GCC lowers `omp simd reduction` sums
 * poorly (a stack spill plus 16 scalar adds per reduction). */
#ifndef HYDRA_SIMD_H
#define HYDRA_SIMD_H

#pragma GCC diagnostic ignored "-Wpsabi" /* vectors never cross a non-inlined call */

typedef float hydra_v16 __attribute__((vector_size(64), aligned(4))); /* unaligned loads ok */
typedef int hydra_v16i __attribute__((vector_size(64), aligned(4)));
#define HYDRA_AI __attribute__((always_inline)) static inline
#if defined(__clang__) && __clang_major__ < 15
/* clang 14 names a target_clones function's ifunc "<name>.ifunc", so calls
 * from other files do not link; its only build here (the fuzz build, with
 * -march=native) goes without the clones. */
#define HYDRA_CLONES
#else
#define HYDRA_CLONES __attribute__((target_clones("avx512f", "default")))
#endif

HYDRA_AI float hydra_v16_hsum(hydra_v16 x) {
    x += __builtin_shufflevector(x, x, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7);
    x += __builtin_shufflevector(x, x, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11);
    x += __builtin_shufflevector(x, x, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
    x += __builtin_shufflevector(x, x, 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14);
    return x[0];
}

/* sum_i a[i] * b[i]: two independent accumulator chains, scalar tail. */
HYDRA_AI float hydra_dot(const float *a, const float *b, int n) {
    hydra_v16 s0 = {0}, s1 = {0};
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 += *(const hydra_v16 *)(a + i) * *(const hydra_v16 *)(b + i);
        s1 += *(const hydra_v16 *)(a + i + 16) * *(const hydra_v16 *)(b + i + 16);
    }
    if (i + 16 <= n) {
        s0 += *(const hydra_v16 *)(a + i) * *(const hydra_v16 *)(b + i);
        i += 16;
    }
    float s = hydra_v16_hsum(s0 + s1);
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

/* e^x for 16 lanes: x = n ln2 + r with |r| <= ln2/2, degree-6 Taylor/Horner
 * polynomial for e^r (relative error < 2e-7 on the clamped range), 2^n built
 * in the exponent bits. Inputs are clamped to [-87, 88]: no inf/denormals. */
#define HYDRA_VSEL(m, a, b) ((hydra_v16)(((hydra_v16i)(a) & (m)) | ((hydra_v16i)(b) & ~(m))))
HYDRA_AI hydra_v16 hydra_v16_exp(hydra_v16 x) {
    const hydra_v16 hi = x * 0.0f + 88.0f, lo = x * 0.0f - 87.0f;
    x = HYDRA_VSEL(x > hi, hi, x);
    x = HYDRA_VSEL(x < lo, lo, x); /* NaN compares false and stays NaN */
    hydra_v16 n = x * 1.44269504088896341f;
    /* round to nearest with the 1.5 * 2^23 trick (|n| < 2^22 here) */
    hydra_v16 nf = (n + 12582912.0f) - 12582912.0f;
    hydra_v16i ni = __builtin_convertvector(nf, hydra_v16i);
    hydra_v16 r = x - nf * 0.693359375f - nf * -2.12194440e-4f;
    hydra_v16 p = 1.0f / 720.0f + r * 0.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    hydra_v16i bits = (ni + 127) << 23;
    hydra_v16 scale;
    __builtin_memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

#endif /* HYDRA_SIMD_H */

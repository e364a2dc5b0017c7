/* alt_f32_activations.c — the design alternative measured for docs/quantization.md (not
 * shipped): f32 activations, int8 weights widened to f32 in registers, the
 * block scale applied after a block's 32 products, one row at a time like the
 * shipped kernel; timed against hydra_op_matmul_q (vnni) on the same matrices.
 * Build: gcc -O2 -fopenmp -Iinclude bench/quant/alt_f32_activations.c build/libhydralm.a \
 *   $(pkg-config --libs jansson) -L/usr/lib/x86_64-linux-gnu/blis-openmp -lblis -lm -o /tmp/alt
 * Run:   OMP_NUM_THREADS=1 /tmp/alt 4096 768; OMP_NUM_THREADS=1 /tmp/alt 768 2048 */
#include <immintrin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hydralm.h"
#include "hydralm_ops.h"
static inline float bf(uint16_t h) { uint32_t u = (uint32_t)h << 16; float f; memcpy(&f, &u, 4); return f; }
__attribute__((target("avx512f,avx512bw,avx512vl,fma")))
static void alt_int8(int N, int K, const float *x, const int8_t *W, const uint16_t *D, float *y) {
    const int nb = K / 32;
    for (int n = 0; n < N; n++) {
        const int8_t *w = W + (size_t)n * K; const uint16_t *d = D + (size_t)n * nb;
        __m512 acc = _mm512_setzero_ps();
        for (int b = 0; b < nb; b++) {
            __builtin_prefetch(w + b * 32 + 1024);
            __m512 w0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(w + b * 32))));
            __m512 w1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(w + b * 32 + 16))));
            __m512 p = _mm512_mul_ps(w0, _mm512_loadu_ps(x + b * 32));
            p = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x + b * 32 + 16), p);
            acc = _mm512_fmadd_ps(p, _mm512_set1_ps(bf(d[b])), acc);
        }
        y[n] = _mm512_reduce_add_ps(acc);
    }
}
int main(int argc, char **argv) {
    int N = atoi(argv[1]), K = atoi(argv[2]), reps = 200;
    int nm = (int)((400u << 20) / ((size_t)N * K * 4)); if (nm < 2) nm = 2;
    int8_t **q = malloc(nm * sizeof *q); uint16_t **d = malloc(nm * sizeof *d);
    float *W = malloc((size_t)N * K * 4), *x = malloc(K * 4), *y = malloc(N * 4), *y2 = malloc(N * 4);
    for (size_t j = 0; j < (size_t)N * K; j++) W[j] = (float)((j * 2654435761u) % 1000) / 1000.0f - 0.5f;
    for (int i = 0; i < nm; i++) { q[i] = malloc((size_t)N * K); d[i] = malloc((size_t)N * K / 32 * 2);
        hydra_quantize_rows(HYDRA_QUANT_INT8, N, K, W, q[i], d[i]); }
    for (int k = 0; k < K; k++) x[k] = (float)(k % 7) - 3;
    hydra_quant_set_kernel("vnni");
    for (int round = 0; round < 3; round++) {
        double t[2] = {0};
        for (int v = 0; v < 2; v++)
            for (int r = 0; r < reps; r++) {
                int i = r % nm; double t0 = hydra_now_seconds();
                if (v == 0) hydra_op_matmul_q(HYDRA_QUANT_INT8, 1, N, K, x, q[i], d[i], y, 0);
                else alt_int8(N, K, x, q[i], d[i], y2);
                t[v] += hydra_now_seconds() - t0;
            }
        double e = 0; for (int n = 0; n < N; n++) e = fmax(e, fabs(y[n] - y2[n]) / (1 + fabs(y2[n])));
        printf("N%d K%d: shipped (int8 activations, vpdpbusd) %.1f us   alternative (f32 activations, widened weights) %.1f us   max rel diff %.3g\n",
               N, K, t[0] * 1e6 / reps, t[1] * 1e6 / reps, e);
    }
    return 0;
}

/* delta_rule.c — gated delta rule recurrence (DESIGN §2), reference and fast.
 *
 * Per head h, token t, state S [dv, dk] (row i = value dim, contiguous over key dim):
 *   S' = exp(g_t) S;  p = S' k_t;  u = beta_t (v_t - p);  S = S' + u k_t^T;  o_t = S q_t
 *
 * Fast version. With A = S_{t-1} k_t and B = S_{t-1} q_t (both read from the
 * OLD state) the token needs only one read/write sweep of the state:
 *   alpha = exp(g_t);  p = alpha A;  u = beta (v - p);  o = alpha B + u (k_t . q_t)
 *   S_t = alpha S_{t-1} + u k_t^T
 * and the sweep that writes S_t also accumulates A, B for token t+1
 * (S_t k_{t+1}, S_t q_{t+1}), so each token costs one pass over S.
 *
 * Two kernels, chosen from T only (so the arithmetic per head never depends
 * on the thread count -> results are bit-identical for any thread count):
 *  - T >= DR_TRANSPOSE_MIN_T (prefill): the head's state is transposed into a
 *    per-thread scratch ST [dk, dvp] (dvp = dv rounded up to 16, zero padded),
 *    so S k and S q become column sums: accumulate row j of ST times the
 *    broadcast k_j / q_j into vector accumulators over the value dim — no
 *    horizontal reductions. Column blocks of 64 (4 x 16 floats) keep the
 *    accumulators in registers. Transposed back at the end.
 *  - otherwise (decode, T small): works in place on the [dv, dk] rows, 4 rows
 *    at a time (8 independent dot-product chains), one read + one write per row.
 * The hot loops are compiled twice with target_clones (AVX-512 and baseline
 * x86-64), selected at load time by the CPU.
 */
#include <math.h>
#include <omp.h>
#include <stdint.h>

#include "core/internal.h"

/* ------------------------------------------------------------ validation */
static hydra_status dr_check(const char *fn, int T, int H, int dk, int dv, const float *q,
                             const float *k, const float *v, const float *g, const float *beta,
                             const float *S, const float *o) {
    if (T < 0) return hydra_set_error(HYDRA_ERR_ARG, "%s: T must be >= 0 (got %d)", fn, T);
    if (H <= 0) return hydra_set_error(HYDRA_ERR_ARG, "%s: H must be > 0 (got %d)", fn, H);
    if (dk <= 0) return hydra_set_error(HYDRA_ERR_ARG, "%s: dk must be > 0 (got %d)", fn, dk);
    if (dv <= 0) return hydra_set_error(HYDRA_ERR_ARG, "%s: dv must be > 0 (got %d)", fn, dv);
    if (!S) return hydra_set_error(HYDRA_ERR_ARG, "%s: S is NULL", fn);
    if (T > 0) {
        if (!q) return hydra_set_error(HYDRA_ERR_ARG, "%s: q is NULL", fn);
        if (!k) return hydra_set_error(HYDRA_ERR_ARG, "%s: k is NULL", fn);
        if (!v) return hydra_set_error(HYDRA_ERR_ARG, "%s: v is NULL", fn);
        if (!g) return hydra_set_error(HYDRA_ERR_ARG, "%s: g is NULL", fn);
        if (!beta) return hydra_set_error(HYDRA_ERR_ARG, "%s: beta is NULL", fn);
        if (!o) return hydra_set_error(HYDRA_ERR_ARG, "%s: o is NULL", fn);
    }
    size_t n;
    if (!hydra_mul_ok((size_t)H, (size_t)dk, &n) || !hydra_mul_ok(n, (size_t)dv, &n) ||
        !hydra_mul_ok((size_t)T, (size_t)H * (size_t)(dk > dv ? dk : dv), &n) ||
        n > (size_t)PTRDIFF_MAX / sizeof(float))
        return hydra_set_error(HYDRA_ERR_ARG, "%s: sizes overflow (T=%d H=%d dk=%d dv=%d)", fn, T,
                               H, dk, dv);
    return HYDRA_OK;
}

/* ------------------------------------------------------------- reference */
hydra_status hydra_op_delta_rule_ref(int T, int H, int dk, int dv, const float *q, const float *k,
                                     const float *v, const float *g, const float *beta, float *S,
                                     float *o) {
    HYDRA_CHECK(dr_check("hydra_op_delta_rule_ref", T, H, dk, dv, q, k, v, g, beta, S, o));
    for (int t = 0; t < T; t++) {
        for (int h = 0; h < H; h++) {
            const float *qt = q + ((size_t)t * H + h) * dk;
            const float *kt = k + ((size_t)t * H + h) * dk;
            const float *vt = v + ((size_t)t * H + h) * dv;
            float alpha = expf(g[(size_t)t * H + h]);
            float b = beta[(size_t)t * H + h];
            float *Sh = S + (size_t)h * dv * dk;
            float *ot = o + ((size_t)t * H + h) * dv;
            /* Each row i of S only involves p_i, u_i, o_i: do the whole token row by row. */
            for (int i = 0; i < dv; i++) {
                float *row = Sh + (size_t)i * dk;
                for (int j = 0; j < dk; j++) row[j] *= alpha; /* S' = alpha S */
                float p = 0.0f;
                for (int j = 0; j < dk; j++) p += row[j] * kt[j]; /* p = S' k */
                float u = b * (vt[i] - p);                        /* u = beta (v - p) */
                for (int j = 0; j < dk; j++) row[j] += u * kt[j]; /* S = S' + u k^T */
                float acc = 0.0f;
                for (int j = 0; j < dk; j++) acc += row[j] * qt[j]; /* o = S q */
                ot[i] = acc;
            }
        }
    }
    return HYDRA_OK;
}

/* ---------------------------------------------------------- fast kernels */
#ifndef DR_TRANSPOSE_MIN_T
#define DR_TRANSPOSE_MIN_T 10      /* T at which the transposed kernel wins (measured, d = 64, H = 8: 1-2 threads) */
#endif
#define DR_STACK_FLOATS 1024      /* scratch this small lives on the stack */
#ifndef DR_PAR_MIN_WORK
#define DR_PAR_MIN_WORK (1 << 15)  /* T*H*dk*dv below this: run single-threaded */
#endif

#pragma GCC diagnostic ignored "-Wpsabi" /* v16 helpers are always inlined */
typedef float v16 __attribute__((vector_size(64)));
#define DR_AI __attribute__((always_inline)) static inline

typedef float v16u __attribute__((vector_size(64), aligned(4))); /* unaligned access */

DR_AI float dr_hsum(const v16 *xp) {
    v16 x = *xp;
    x += __builtin_shufflevector(x, x, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7);
    x += __builtin_shufflevector(x, x, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11);
    x += __builtin_shufflevector(x, x, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
    x += __builtin_shufflevector(x, x, 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14);
    return x[0];
}

/* Horizontal sums of 8 vectors at once (a transpose-and-add tree: 15 shuffles
 * instead of 32): returns r with r[2m] = sum of x[m]. */
DR_AI v16 dr_hsum8(const v16 *x) {
#define DR_LOHI(a, b)                                                                        \
    (__builtin_shufflevector(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) + \
     __builtin_shufflevector(a, b, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31))
#define DR_Q(a, b)                                                                           \
    (__builtin_shufflevector(a, b, 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27) + \
     __builtin_shufflevector(a, b, 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31))
#define DR_P(a, b)                                                                           \
    (__builtin_shufflevector(a, b, 0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29) + \
     __builtin_shufflevector(a, b, 2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31))
    v16 s01 = DR_LOHI(x[0], x[1]), s23 = DR_LOHI(x[2], x[3]);
    v16 s45 = DR_LOHI(x[4], x[5]), s67 = DR_LOHI(x[6], x[7]);
    /* s01: lanes 0-7 partial x0, 8-15 partial x1 */
    v16 t0 = DR_Q(s01, s23), t1 = DR_Q(s45, s67);
    /* t0: lanes 4m..4m+3 partial x[m], m = 0..3 */
    v16 w = DR_P(t0, t1);
    /* w: lanes 2m, 2m+1 partial x[m], m = 0..7 */
    return w + __builtin_shufflevector(w, w, 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14);
#undef DR_LOHI
#undef DR_Q
#undef DR_P
}

/* Horizontal sums of 16 vectors at once: lane l of the result = sum of x[l]
 * (transpose-and-add tree, 30 shuffles for 16 sums). */
DR_AI v16 dr_hsum16(const v16 *x) {
#define DR_LOHI(a, b)                                                                        \
    (__builtin_shufflevector(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) + \
     __builtin_shufflevector(a, b, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31))
#define DR_Q(a, b)                                                                           \
    (__builtin_shufflevector(a, b, 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27) + \
     __builtin_shufflevector(a, b, 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31))
#define DR_P(a, b)                                                                           \
    (__builtin_shufflevector(a, b, 0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29) + \
     __builtin_shufflevector(a, b, 2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31))
#define DR_E(a, b)                                                                           \
    (__builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30) + \
     __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31))
    v16 s[8], t[4], w[2];
    for (int p = 0; p < 8; p++) s[p] = DR_LOHI(x[2 * p], x[2 * p + 1]); /* 0-7: x2p, 8-15: x2p+1 */
    for (int p = 0; p < 4; p++) t[p] = DR_Q(s[2 * p], s[2 * p + 1]);     /* 4 lanes per x */
    for (int p = 0; p < 2; p++) w[p] = DR_P(t[2 * p], t[2 * p + 1]);     /* 2 lanes per x */
    return DR_E(w[0], w[1]);
#undef DR_LOHI
#undef DR_Q
#undef DR_P
#undef DR_E
}

DR_AI float dr_dot(const float *restrict a, const float *restrict b, int n) {
    v16 acc = {0};
    int j = 0;
    for (; j + 16 <= n; j += 16) acc += *(const v16u *)(a + j) * *(const v16u *)(b + j);
    float s = dr_hsum(&acc);
    for (; j < n; j++) s += a[j] * b[j];
    return s;
}

/* One sweep over columns [c0, c0 + 16*NV) of ST [dk, ld] (NV = 1, 2 or 4 vectors).
 * UPD: ST = alpha ST + k u^T.  ACC: A = ST kn, B = ST qn (after the update).
 * NV < 4 uses two accumulator sets (even/odd j) to hide FMA latency. */
DR_AI void dr_tblock(float *restrict ST, int ld, int dk, int c0, const int NV, const int UPD,
                     const int ACC, float alpha, const float *restrict k,
                     const float *restrict u, const float *restrict kn,
                     const float *restrict qn, float *restrict A, float *restrict B) {
    v16 uu[4], a0[4], b0[4], a1[4], b1[4];
    const v16 zero = {0};
    for (int c = 0; c < NV; c++) {
        if (UPD) uu[c] = *(const v16 *)(u + c0 + 16 * c);
        a0[c] = b0[c] = a1[c] = b1[c] = zero;
    }
    int j = 0;
    if (NV < 4) {
        for (; j + 1 < dk; j += 2) {
            v16 *r0 = (v16 *)(ST + (size_t)j * ld + c0);
            v16 *r1 = (v16 *)(ST + (size_t)(j + 1) * ld + c0);
            for (int c = 0; c < NV; c++) {
                v16 x0 = r0[c], x1 = r1[c];
                if (UPD) {
                    x0 = alpha * x0 + k[j] * uu[c];
                    x1 = alpha * x1 + k[j + 1] * uu[c];
                    r0[c] = x0;
                    r1[c] = x1;
                }
                if (ACC) {
                    a0[c] += x0 * kn[j];
                    b0[c] += x0 * qn[j];
                    a1[c] += x1 * kn[j + 1];
                    b1[c] += x1 * qn[j + 1];
                }
            }
        }
    }
    for (; j < dk; j++) {
        v16 *r = (v16 *)(ST + (size_t)j * ld + c0);
        for (int c = 0; c < NV; c++) {
            v16 x = r[c];
            if (UPD) {
                x = alpha * x + k[j] * uu[c];
                r[c] = x;
            }
            if (ACC) {
                a0[c] += x * kn[j];
                b0[c] += x * qn[j];
            }
        }
    }
    if (ACC)
        for (int c = 0; c < NV; c++) {
            *(v16 *)(A + c0 + 16 * c) = a0[c] + a1[c];
            *(v16 *)(B + c0 + 16 * c) = b0[c] + b1[c];
        }
}

/* One sweep over all columns of ST (blocks of 64, then 32, 16). The blocks are
 * independent (u_i, o_i and column i of S only involve column i), so while one
 * block's accumulators finish, the next block's work overlaps them. (Running
 * all T tokens per block instead, to keep a block in L1, was measured slower
 * at dk=128: each token then waits on the previous token's reductions.) */
DR_AI void dr_tsweep(float *restrict ST, int ld, int dk, const int UPD, const int ACC,
                     float alpha, const float *restrict k, const float *restrict u,
                     const float *restrict kn, const float *restrict qn, float *restrict A,
                     float *restrict B) {
    int c0 = 0;
    for (; c0 + 64 <= ld; c0 += 64) dr_tblock(ST, ld, dk, c0, 4, UPD, ACC, alpha, k, u, kn, qn, A, B);
    if (c0 + 32 <= ld) {
        dr_tblock(ST, ld, dk, c0, 2, UPD, ACC, alpha, k, u, kn, qn, A, B);
        c0 += 32;
    }
    if (c0 + 16 <= ld) dr_tblock(ST, ld, dk, c0, 1, UPD, ACC, alpha, k, u, kn, qn, A, B);
}

/* Transposed kernel for one head over T >= 1 tokens. Scratch (64-byte aligned):
 * ST [dk, ld] (ld = dvp), A, B, u [ld] each, al, kq [T] each. Sh: the head's
 * state [dv, dk]. */
__attribute__((target_clones("avx512f", "default"))) static void
dr_head_transposed(int T, int H, int dk, int dv, int ld, const float *restrict q,
                   const float *restrict k, const float *restrict v, const float *restrict g,
                   const float *restrict beta, float *restrict Sh, float *restrict o,
                   float *restrict ST) {
    float *restrict A = ST + (size_t)dk * ld, *restrict B = A + ld, *restrict u = B + ld;
    float *restrict al = u + ld, *restrict kq = al + T;
    const size_t sk = (size_t)H * dk;
    /* transpose in: ST[j][i] = S[i][j], pad columns zero */
    for (int j = 0; j < dk; j++) {
        float *r = ST + (size_t)j * ld;
        for (int i = 0; i < dv; i++) r[i] = Sh[(size_t)i * dk + j];
        for (int i = dv; i < ld; i++) r[i] = 0.0f;
    }
    for (int i = 0; i < ld; i++) u[i] = 0.0f;
    for (int t = 0; t < T; t++) {
        al[t] = expf(g[(size_t)t * H]);
        kq[t] = dr_dot(k + t * sk, q + t * sk, dk);
    }
    const size_t sv = (size_t)H * dv;
    /* A = S_0 k_0, B = S_0 q_0 */
    dr_tsweep(ST, ld, dk, 0, 1, 1.0f, k, u, k, q, A, B);
    for (int t = 0; t < T; t++) {
        const float *kt = k + t * sk, *vt = v + t * sv;
        float *ot = o + t * sv;
        const float alpha = al[t], b = beta[(size_t)t * H], kqt = kq[t];
#pragma omp simd
        for (int i = 0; i < dv; i++) {
            const float ui = b * (vt[i] - alpha * A[i]);
            u[i] = ui;
            ot[i] = alpha * B[i] + ui * kqt;
        }
        if (t + 1 < T)
            dr_tsweep(ST, ld, dk, 1, 1, alpha, kt, u, kt + sk, q + (t + 1) * sk, A, B);
        else
            dr_tsweep(ST, ld, dk, 1, 0, alpha, kt, u, NULL, NULL, A, B);
    }
    /* transpose out */
    for (int i = 0; i < dv; i++) {
        float *r = Sh + (size_t)i * dk;
        for (int j = 0; j < dk; j++) r[j] = ST[(size_t)j * ld + i];
    }
}

/* In-place row kernel for one head (used for small T, e.g. decode). Per token,
 * 8 rows at a time: both dot products (S k, S q) in one pass with 16 vector
 * accumulators folded by one transpose-add tree, then u, o for the 8 rows,
 * then the update of the 8 rows while they are still in L1. */
__attribute__((target_clones("avx512f", "default"))) static void
dr_head_rows(int T, int H, int dk, int dv, const float *restrict q, const float *restrict k,
             const float *restrict v, const float *restrict g, const float *restrict beta,
             float *restrict Sh, float *restrict o) {
    const size_t sk = (size_t)H * dk, sv = (size_t)H * dv;
    const int dk16 = dk & ~15;
    for (int t = 0; t < T; t++) {
        const float *restrict qt = q + t * sk, *restrict kt = k + t * sk, *vt = v + t * sv;
        float *ot = o + t * sv;
        const float alpha = expf(g[(size_t)t * H]), b = beta[(size_t)t * H];
        const float kq = dr_dot(kt, qt, dk);
        const v16 zero = {0};
        int i = 0;
        for (; i + 8 <= dv; i += 8) {
            float *restrict r = Sh + (size_t)i * dk;
            const int pf = i + 24 <= dv;
            v16 acc[16];
            for (int m = 0; m < 16; m++) acc[m] = zero;
            int j = 0;
            for (; j < dk16; j += 16) {
                const v16 kj = *(const v16u *)(kt + j), qj = *(const v16u *)(qt + j);
                for (int m = 0; m < 8; m++) {
#ifndef DR_NO_PREFETCH
                    /* two groups ahead, only inside this head: a prefetch for
                     * write into a head another thread owns would steal its lines */
                    if (pf) __builtin_prefetch(r + (size_t)(m + 16) * dk + j, 1, 3);
#endif
                    const v16 x = *(const v16u *)(r + (size_t)m * dk + j);
                    acc[m] += x * kj;
                    acc[8 + m] += x * qj;
                }
            }
            /* lanes 0-7: S k, lanes 8-15: S q of rows i..i+7 */
            v16 sum = dr_hsum16(acc);
            for (; j < dk; j++)
                for (int m = 0; m < 8; m++) {
                    sum[m] += r[(size_t)m * dk + j] * kt[j];
                    sum[8 + m] += r[(size_t)m * dk + j] * qt[j];
                }
            float u[8];
            for (int m = 0; m < 8; m++) {
                u[m] = b * (vt[i + m] - alpha * sum[m]);
                ot[i + m] = alpha * sum[8 + m] + u[m] * kq;
            }
            /* update the 8 rows while they are in L1 */
            for (j = 0; j < dk16; j += 16) {
                const v16 kj = *(const v16u *)(kt + j);
                for (int m = 0; m < 8; m++) {
                    v16u *p = (v16u *)(r + (size_t)m * dk + j);
                    *p = alpha * *p + u[m] * kj;
                }
            }
            for (; j < dk; j++)
                for (int m = 0; m < 8; m++)
                    r[(size_t)m * dk + j] = alpha * r[(size_t)m * dk + j] + u[m] * kt[j];
        }
        for (; i < dv; i++) {
            float *restrict r = Sh + (size_t)i * dk;
            const float ui = b * (vt[i] - alpha * dr_dot(r, kt, dk));
            ot[i] = alpha * dr_dot(r, qt, dk) + ui * kq;
            int j = 0;
            for (; j < dk16; j += 16) {
                v16u *p = (v16u *)(r + j);
                *p = alpha * *p + ui * *(const v16u *)(kt + j);
            }
            for (; j < dk; j++) r[j] = alpha * r[j] + ui * kt[j];
        }
    }
}

/* One head with whichever kernel fits; scratch: >= dr_scratch_floats() floats or NULL. */
static void dr_head(int T, int H, int dk, int dv, int ld, const float *q, const float *k,
                    const float *v, const float *g, const float *beta, float *Sh, float *o,
                    float *scratch) {
    if (T >= DR_TRANSPOSE_MIN_T) {
        dr_head_transposed(T, H, dk, dv, ld, q, k, v, g, beta, Sh, o, scratch);
    } else {
        dr_head_rows(T, H, dk, dv, q, k, v, g, beta, Sh, o);
    }
}

hydra_status hydra_op_delta_rule(int T, int H, int dk, int dv, const float *q, const float *k,
                                 const float *v, const float *g, const float *beta, float *S,
                                 float *o) {
    HYDRA_CHECK(dr_check("hydra_op_delta_rule", T, H, dk, dv, q, k, v, g, beta, S, o));
    if (T == 0) return HYDRA_OK;
    const double work = (double)T * H * dk * dv;
    const int par = work >= DR_PAR_MIN_WORK && H > 1 && omp_get_max_threads() > 1 &&
                    !omp_in_parallel();
    const int ld = (dv + 15) & ~15;
    /* transposed kernel: ST [dk, ld] + A, B, u [ld] + al, kq [T]; row kernel: none */
    const size_t nscratch = T >= DR_TRANSPOSE_MIN_T ? (size_t)dk * ld + 3 * (size_t)ld + 2 * (size_t)T
                                                    : 0;
    if (!par) {
        _Alignas(64) float stackbuf[DR_STACK_FLOATS];
        float *scratch = nscratch == 0                  ? NULL
                         : nscratch <= DR_STACK_FLOATS ? stackbuf
                                                        : hydra_aligned_alloc(nscratch * sizeof(float));
        if (nscratch && !scratch) return hydra_set_error(HYDRA_ERR_NOMEM, "hydra_op_delta_rule: scratch");
        for (int h = 0; h < H; h++)
            dr_head(T, H, dk, dv, ld, q + (size_t)h * dk, k + (size_t)h * dk, v + (size_t)h * dv,
                    g + h, beta + h, S + (size_t)h * dv * dk, o + (size_t)h * dv, scratch);
        if (scratch != stackbuf) hydra_aligned_free(scratch);
        return HYDRA_OK;
    }
    int nomem = 0;
#pragma omp parallel reduction(| : nomem)
    {
        _Alignas(64) float stackbuf[DR_STACK_FLOATS];
        float *scratch = nscratch == 0                  ? NULL
                         : nscratch <= DR_STACK_FLOATS ? stackbuf
                                                        : hydra_aligned_alloc(nscratch * sizeof(float));
        nomem = nscratch && !scratch;
        /* every thread takes part in the worksharing loop (it must); without
         * scratch it skips its heads and the call reports NOMEM */
#pragma omp for schedule(dynamic, 1)
        for (int h = 0; h < H; h++)
            if (!nomem)
                dr_head(T, H, dk, dv, ld, q + (size_t)h * dk, k + (size_t)h * dk,
                        v + (size_t)h * dv, g + h, beta + h, S + (size_t)h * dv * dk,
                        o + (size_t)h * dv, scratch);
        if (scratch != stackbuf) hydra_aligned_free(scratch);
    }
    if (nomem) return hydra_set_error(HYDRA_ERR_NOMEM, "hydra_op_delta_rule: scratch");
    return HYDRA_OK;
}

/* ================================================================ backward
 * DESIGN §2 recurrent backward, per head, tokens in reverse, with dS the
 * gradient w.r.t. the state after token t (starts at dS_T):
 *   S' = a S_{t-1}, p = S' k, u = b (v - p), S_t = S' + u k^T, o = S_t q
 *   D = dS + dO q^T;  dq = S_t^T dO;  du = D k;  dp = -b du
 *   dk = D^T u + S'^T dp;  dv = b du;  db = du . (v - p)
 *   dS' = D + dp k^T;  dg = a <dS', S_{t-1}>;  dS_{t-1} = a dS'
 */

/* ------------------------------------------------------------- reference */
hydra_status hydra_op_delta_rule_backward_ref(int T, int H, int dk, int dv, const float *q,
                                              const float *k, const float *v, const float *g,
                                              const float *beta, const float *S0, const float *dO,
                                              const float *dST, float *dq, float *dk_, float *dv_,
                                              float *dg, float *dbeta, float *dS0) {
    const char *fn = "hydra_op_delta_rule_backward_ref";
    HYDRA_CHECK(dr_check(fn, T, H, dk, dv, q, k, v, g, beta, dO ? dO : q, dO));
    if (T > 0 && (!dq || !dk_ || !dv_ || !dg || !dbeta))
        return hydra_set_error(HYDRA_ERR_ARG, "%s: an output gradient is NULL", fn);
    const size_t SN = (size_t)dv * dk;
    float *Ss = malloc((size_t)(T + 1) * SN * sizeof(float)); /* [T+1, dv, dk] every state of a head */
    float *dS = malloc(SN * sizeof(float)), *D = malloc(SN * sizeof(float)); /* [dv, dk] */
    float *p = malloc((size_t)dv * 3 * sizeof(float));                     /* p, u, du [dv] */
    if (!Ss || !dS || !D || !p) {
        free(Ss), free(dS), free(D), free(p);
        return hydra_set_error(HYDRA_ERR_NOMEM, "%s: out of memory", fn);
    }
    float *u = p + dv, *du = u + dv;
    for (int h = 0; h < H; h++) {
        /* forward, keeping S_0 .. S_T */
        for (size_t e = 0; e < SN; e++) Ss[e] = S0 ? S0[(size_t)h * SN + e] : 0.0f;
        for (int t = 0; t < T; t++) {
            const float *kt = k + ((size_t)t * H + h) * dk, *vt = v + ((size_t)t * H + h) * dv;
            const float a = expf(g[(size_t)t * H + h]), b = beta[(size_t)t * H + h];
            const float *Sp = Ss + (size_t)t * SN;
            float *Sn = Ss + (size_t)(t + 1) * SN;
            for (int i = 0; i < dv; i++) {
                float pi = 0.0f;
                for (int j = 0; j < dk; j++) pi += a * Sp[(size_t)i * dk + j] * kt[j];
                float ui = b * (vt[i] - pi);
                for (int j = 0; j < dk; j++) Sn[(size_t)i * dk + j] = a * Sp[(size_t)i * dk + j] + ui * kt[j];
            }
        }
        for (size_t e = 0; e < SN; e++) dS[e] = dST ? dST[(size_t)h * SN + e] : 0.0f;
        for (int t = T - 1; t >= 0; t--) {
            const size_t ik = ((size_t)t * H + h) * dk, iv = ((size_t)t * H + h) * dv;
            const float *qt = q + ik, *kt = k + ik, *vt = v + iv, *gt = dO + iv;
            const float a = expf(g[(size_t)t * H + h]), b = beta[(size_t)t * H + h];
            const float *Sprev = Ss + (size_t)t * SN, *Snew = Ss + (size_t)(t + 1) * SN;
            for (int i = 0; i < dv; i++) { /* p = S' k, u */
                float pi = 0.0f;
                for (int j = 0; j < dk; j++) pi += a * Sprev[(size_t)i * dk + j] * kt[j];
                p[i] = pi;
                u[i] = b * (vt[i] - pi);
            }
            for (int i = 0; i < dv; i++) /* D = dS + dO q^T */
                for (int j = 0; j < dk; j++) D[(size_t)i * dk + j] = dS[(size_t)i * dk + j] + gt[i] * qt[j];
            for (int j = 0; j < dk; j++) { /* dq = S_t^T dO */
                float s = 0.0f;
                for (int i = 0; i < dv; i++) s += Snew[(size_t)i * dk + j] * gt[i];
                dq[ik + j] = s;
            }
            float db = 0.0f;
            for (int i = 0; i < dv; i++) { /* du = D k, dv, dbeta */
                float s = 0.0f;
                for (int j = 0; j < dk; j++) s += D[(size_t)i * dk + j] * kt[j];
                du[i] = s;
                dv_[iv + i] = b * s;
                db += s * (vt[i] - p[i]);
            }
            dbeta[(size_t)t * H + h] = db;
            for (int j = 0; j < dk; j++) { /* dk = D^T u + S'^T dp, dp = -b du */
                float s = 0.0f;
                for (int i = 0; i < dv; i++)
                    s += D[(size_t)i * dk + j] * u[i] + a * Sprev[(size_t)i * dk + j] * (-b * du[i]);
                dk_[ik + j] = s;
            }
            float dga = 0.0f;
            for (int i = 0; i < dv; i++) /* dS' = D + dp k^T; dg; dS_{t-1} = a dS' */
                for (int j = 0; j < dk; j++) {
                    float x = D[(size_t)i * dk + j] + (-b * du[i]) * kt[j];
                    dga += x * Sprev[(size_t)i * dk + j];
                    dS[(size_t)i * dk + j] = a * x;
                }
            dg[(size_t)t * H + h] = a * dga;
        }
        if (dS0) memcpy(dS0 + (size_t)h * SN, dS, SN * sizeof(float));
    }
    free(Ss), free(dS), free(D), free(p);
    return HYDRA_OK;
}

/* ------------------------------------------------------------------ fast */
/* Sout = step(Sin) for one token of one head (Sout may equal Sin):
 * row i: u_i = b (v_i - a S_i.k);  Sout_i = a S_i + u_i k. */
DR_AI void drb_step(float *Sout, const float *Sin, int dk, int dv, const float *restrict k,
                    const float *restrict v, float a, float b) {
    const int dk16 = dk & ~15;
    for (int i = 0; i < dv; i++) {
        const float *si = Sin + (size_t)i * dk;
        float *so = Sout + (size_t)i * dk;
        const float ui = b * (v[i] - a * dr_dot(si, k, dk));
        int j = 0;
        for (; j < dk16; j += 16)
            *(v16u *)(so + j) = a * *(const v16u *)(si + j) + ui * *(const v16u *)(k + j);
        for (; j < dk; j++) so[j] = a * si[j] + ui * k[j];
    }
}

/* Backward of one token of one head, fused into one sweep over the rows of
 * S_{t-1} and dS (dS: in = grad of S_t, out = grad of S_{t-1}). Uses
 * S_t^T dO = a S_{t-1}^T dO + (u.dO) k and D^T u = dS^T u + (u.dO) q, so S_t is
 * never needed. acq, ack: [dk] scratch. */
DR_AI void drb_token(const float *restrict Sp, float *restrict dS, int dk, int dv,
                     const float *restrict q, const float *restrict k, const float *restrict v,
                     const float *restrict gO, float a, float b, float *restrict dq,
                     float *restrict dkk, float *restrict dvv, float *dg, float *db,
                     float *restrict acq, float *restrict ack) {
    const int dk16 = dk & ~15;
    for (int j = 0; j < dk; j++) acq[j] = ack[j] = 0.0f;
    const float qk = dr_dot(q, k, dk);
    float s = 0.0f, dbs = 0.0f;
    v16 dga = {0};
    float dgs = 0.0f;
    for (int i = 0; i < dv; i++) {
        const float *restrict si = Sp + (size_t)i * dk;
        float *restrict di = dS + (size_t)i * dk;
        const float p = a * dr_dot(si, k, dk);
        const float u = b * (v[i] - p);
        const float du = dr_dot(di, k, dk) + gO[i] * qk;
        dvv[i] = b * du;
        dbs += du * (v[i] - p);
        const float dp = -b * du, adp = a * dp, go = gO[i];
        s += go * u;
        int j = 0;
        for (; j < dk16; j += 16) {
            const v16 x = *(const v16u *)(si + j), y = *(const v16u *)(di + j);
            *(v16u *)(acq + j) += go * x;
            *(v16u *)(ack + j) += u * y + adp * x;
            const v16 dsp = y + go * *(const v16u *)(q + j) + dp * *(const v16u *)(k + j);
            dga += dsp * x;
            *(v16u *)(di + j) = a * dsp;
        }
        for (; j < dk; j++) {
            const float x = si[j], y = di[j];
            acq[j] += go * x;
            ack[j] += u * y + adp * x;
            const float dsp = y + go * q[j] + dp * k[j];
            dgs += dsp * x;
            di[j] = a * dsp;
        }
    }
    for (int j = 0; j < dk; j++) {
        dq[j] = a * acq[j] + s * k[j];
        dkk[j] = ack[j] + s * q[j];
    }
    *dg = a * (dr_hsum(&dga) + dgs);
    *db = dbs;
}

/* Scratch floats of one head: checkpoints [nch, dv, dk] + chunk states
 * [CK, dv, dk] + dS [dv, dk] + acq, ack [dk]. */
static size_t drb_scratch_floats(int T, int dk, int dv) {
    const size_t SN = (size_t)dv * dk, nch = T > 0 ? (size_t)(T + HYDRA_DR_CKPT - 1) / HYDRA_DR_CKPT : 1;
    return nch * SN + (size_t)HYDRA_DR_CKPT * SN + SN + 2 * (size_t)dk + 64;
}

/* One head. Pointers are at head h of token 0 (token rows are H*dk / H*dv /
 * H apart); S0h, dSTh, dS0h: this head's [dv, dk] or NULL. */
__attribute__((target_clones("avx512f", "default"))) static void
drb_head(int T, int H, int dk, int dv, const float *q, const float *k, const float *v,
         const float *g, const float *beta, const float *S0h, const float *dO, const float *dSTh,
         float *dq, float *dk_, float *dv_, float *dg, float *dbeta, float *dS0h, float *scratch) {
    const int CK = HYDRA_DR_CKPT, nch = (T + CK - 1) / CK;
    const size_t SN = (size_t)dv * dk, sk = (size_t)H * dk, sv = (size_t)H * dv;
    float *ck = scratch;                          /* [nch, dv, dk] S before token c*CK */
    float *buf = ck + (size_t)(nch > 0 ? nch : 1) * SN; /* [CK, dv, dk] S before each token of a chunk */
    float *dS = buf + (size_t)CK * SN;            /* [dv, dk] */
    float *acq = dS + SN, *ack = acq + dk;        /* [dk] each */
    /* forward: checkpoints at chunk starts */
    if (S0h) memcpy(ck, S0h, SN * sizeof(float));
    else memset(ck, 0, SN * sizeof(float));
    for (int c = 1; c < nch; c++) {
        float *S = ck + (size_t)c * SN;
        memcpy(S, S - SN, SN * sizeof(float));
        for (int t = (c - 1) * CK; t < c * CK; t++)
            drb_step(S, S, dk, dv, k + t * sk, v + t * sv, expf(g[(size_t)t * H]), beta[(size_t)t * H]);
    }
    if (dSTh) memcpy(dS, dSTh, SN * sizeof(float));
    else memset(dS, 0, SN * sizeof(float));
    for (int c = nch - 1; c >= 0; c--) {
        const int t0 = c * CK, n = T - t0 < CK ? T - t0 : CK;
        memcpy(buf, ck + (size_t)c * SN, SN * sizeof(float));
        for (int i = 1; i < n; i++) {
            const int t = t0 + i - 1;
            drb_step(buf + (size_t)i * SN, buf + (size_t)(i - 1) * SN, dk, dv, k + t * sk, v + t * sv,
                     expf(g[(size_t)t * H]), beta[(size_t)t * H]);
        }
        for (int t = t0 + n - 1; t >= t0; t--)
            drb_token(buf + (size_t)(t - t0) * SN, dS, dk, dv, q + t * sk, k + t * sk, v + t * sv,
                      dO + t * sv, expf(g[(size_t)t * H]), beta[(size_t)t * H], dq + t * sk,
                      dk_ + t * sk, dv_ + t * sv, dg + (size_t)t * H, dbeta + (size_t)t * H, acq, ack);
    }
    if (dS0h) memcpy(dS0h, dS, SN * sizeof(float));
}

hydra_status hydra_op_delta_rule_backward(int T, int H, int dk, int dv, const float *q,
                                          const float *k, const float *v, const float *g,
                                          const float *beta, const float *S0, const float *dO,
                                          const float *dST, float *dq, float *dk_, float *dv_,
                                          float *dg, float *dbeta, float *dS0) {
    const char *fn = "hydra_op_delta_rule_backward";
    HYDRA_CHECK(dr_check(fn, T, H, dk, dv, q, k, v, g, beta, dO ? dO : q, dO));
    if (T > 0 && (!dq || !dk_ || !dv_ || !dg || !dbeta))
        return hydra_set_error(HYDRA_ERR_ARG, "%s: an output gradient is NULL", fn);
    const size_t SN = (size_t)dv * dk, nscr = drb_scratch_floats(T, dk, dv);
    const int par = (double)T * H * dk * dv >= DR_PAR_MIN_WORK && H > 1 && omp_get_max_threads() > 1 &&
                    !omp_in_parallel();
    int nomem = 0;
#pragma omp parallel if (par) reduction(| : nomem)
    {
        float *scratch = hydra_aligned_alloc(nscr * sizeof(float));
        nomem = !scratch;
#pragma omp for schedule(dynamic, 1)
        for (int h = 0; h < H; h++)
            if (scratch)
                drb_head(T, H, dk, dv, q + (size_t)h * dk, k + (size_t)h * dk, v + (size_t)h * dv, g + h,
                         beta + h, S0 ? S0 + (size_t)h * SN : NULL, dO + (size_t)h * dv,
                         dST ? dST + (size_t)h * SN : NULL, dq + (size_t)h * dk, dk_ + (size_t)h * dk,
                         dv_ + (size_t)h * dv, dg + h, dbeta + h, dS0 ? dS0 + (size_t)h * SN : NULL,
                         scratch);
        hydra_aligned_free(scratch);
    }
    if (nomem) return hydra_set_error(HYDRA_ERR_NOMEM, "%s: scratch", fn);
    return HYDRA_OK;
}

/* ------------------------------------------------- batched (training) */
/* B sequences of T tokens, rows [B, T, H*d]: one work item per (sequence,
 * head), taken dynamically by the threads. Parallel over B*H pairs (32 at
 * d256 B8, 64 at d512 B8) instead of over B or H alone, which left 16
 * threads with 4 or 8 items; per-pair arithmetic is the single-head kernel's,
 * so results do not depend on the thread count. */
hydra_status hydra_delta_rule_batch(int B, int T, int H, int dk, int dv, const float *q, const float *k,
                                    const float *v, const float *g, const float *beta, float *S, float *o) {
    HYDRA_CHECK(dr_check("delta_rule_batch", T, H, dk, dv, q, k, v, g, beta, S, o));
    if (T == 0 || B <= 0) return HYDRA_OK;
    const int ld = (dv + 15) & ~15;
    const size_t nscratch = T >= DR_TRANSPOSE_MIN_T ? (size_t)dk * ld + 3 * (size_t)ld + 2 * (size_t)T : 0;
    const size_t sk = (size_t)T * H * dk, sv = (size_t)T * H * dv, sg = (size_t)T * H, SN = (size_t)dv * dk;
    int nomem = 0;
#pragma omp parallel if ((double)B * T * H * dk * dv >= DR_PAR_MIN_WORK && B * H > 1) reduction(| : nomem)
    {
        float *scratch = nscratch ? hydra_aligned_alloc(nscratch * sizeof(float)) : NULL;
        nomem = nscratch && !scratch;
#pragma omp for schedule(dynamic, 1)
        for (int bh = 0; bh < B * H; bh++) {
            const int b = bh / H, h = bh % H;
            if (!nomem)
                dr_head(T, H, dk, dv, ld, q + b * sk + (size_t)h * dk, k + b * sk + (size_t)h * dk,
                        v + b * sv + (size_t)h * dv, g + b * sg + h, beta + b * sg + h, S + (size_t)bh * SN,
                        o + b * sv + (size_t)h * dv, scratch);
        }
        hydra_aligned_free(scratch);
    }
    return nomem ? hydra_set_error(HYDRA_ERR_NOMEM, "delta_rule_batch: scratch") : HYDRA_OK;
}

/* Backward of hydra_delta_rule_batch from S_0 = 0 without a final-state
 * gradient (training), one (sequence, head) per work item. */
hydra_status hydra_delta_rule_backward_batch(int B, int T, int H, int dk, int dv, const float *q, const float *k,
                                             const float *v, const float *g, const float *beta, const float *dO,
                                             float *dq, float *dk_, float *dv_, float *dg, float *dbeta) {
    const char *fn = "delta_rule_backward_batch";
    HYDRA_CHECK(dr_check(fn, T, H, dk, dv, q, k, v, g, beta, dO ? dO : q, dO));
    if (T > 0 && (!dq || !dk_ || !dv_ || !dg || !dbeta))
        return hydra_set_error(HYDRA_ERR_ARG, "%s: an output gradient is NULL", fn);
    if (T == 0 || B <= 0) return HYDRA_OK;
    const size_t nscr = drb_scratch_floats(T, dk, dv);
    const size_t sk = (size_t)T * H * dk, sv = (size_t)T * H * dv, sg = (size_t)T * H;
    int nomem = 0;
#pragma omp parallel if ((double)B * T * H * dk * dv >= DR_PAR_MIN_WORK && B * H > 1) reduction(| : nomem)
    {
        float *scratch = hydra_aligned_alloc(nscr * sizeof(float));
        nomem = !scratch;
#pragma omp for schedule(dynamic, 1)
        for (int bh = 0; bh < B * H; bh++) {
            const int b = bh / H, h = bh % H;
            const size_t ok = b * sk + (size_t)h * dk, ov = b * sv + (size_t)h * dv, og = b * sg + h;
            if (scratch)
                drb_head(T, H, dk, dv, q + ok, k + ok, v + ov, g + og, beta + og, NULL, dO + ov, NULL, dq + ok,
                         dk_ + ok, dv_ + ov, dg + og, dbeta + og, NULL, scratch);
        }
        hydra_aligned_free(scratch);
    }
    return nomem ? hydra_set_error(HYDRA_ERR_NOMEM, "%s: scratch", fn) : HYDRA_OK;
}

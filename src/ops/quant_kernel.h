/* quant_kernel.h — the SIMD body of the quantised small-M matmul, included
 * twice by quant.c under different target pragmas: QK_VNNI 1 (AVX-512 VNNI,
 * 256-bit vpdpbusd) and QK_VNNI 0 (AVX2 vpmaddubsw). QK_SUFFIX names the copy.
 *
 * One 256-bit vector is one block of 32: its integer dot product (8 int32
 * lanes) is converted to f32 and added into the row's f32 accumulator times
 * d_w * d_x, so no horizontal sum happens before the end of the row.
 * vpdpbusd multiplies unsigned by signed bytes: int8 weights are read as
 * w + 128 (one xor) and int4 nibbles as q + 8, and the accumulator starts at
 * -128 (or -8) times the activation block's sum, which removes the offset
 * exactly. AVX2's vpmaddubsw saturates at 16 bits, so its int8 path uses
 * |w| times x with w's sign (products <= 127 * 127 * 2). */
#define QK_CAT2(a, b) a##b
#define QK_CAT(a, b) QK_CAT2(a, b)
#define QK(name) QK_CAT(name, QK_SUFFIX)
#define QK_LANE0(v) _mm256_setr_epi32((v), 0, 0, 0, 0, 0, 0, 0) /* one vmovd */

/* The integer dot product of one weight block (fmt INT8: 32 bytes, INT4: 16)
 * with one activation block, as 8 int32 lanes. */
static inline __attribute__((always_inline)) __m256i QK(qk_block)(const int fmt, const uint8_t *w, __m256i xv,
                                                                  int32_t xsum) {
    if (fmt == HYDRA_QUANT_INT8) {
        __m256i wv = _mm256_loadu_si256((const __m256i *)w);
#if QK_VNNI
        wv = _mm256_xor_si256(wv, _mm256_set1_epi8((char)0x80));
        return _mm256_dpbusd_epi32(QK_LANE0(-128 * xsum), wv, xv);
#else
        __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(xv, wv));
        return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
#endif
    }
    __m128i b = _mm_loadu_si128((const __m128i *)w);
    __m256i wv = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(b, 4), b), _mm256_set1_epi8(0x0f));
#if QK_VNNI
    return _mm256_dpbusd_epi32(QK_LANE0(-8 * xsum), wv, xv);
#else
    __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(wv, xv), _mm256_set1_epi16(1));
    return _mm256_add_epi32(p, QK_LANE0(-8 * xsum));
#endif
}

static inline __attribute__((always_inline)) float QK(qk_hsum)(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* acc + block b's integer dot product times d_w d_x. */
static inline __attribute__((always_inline)) __m256 QK(qk_acc)(const int fmt, const uint8_t *w, const int8_t *xq,
                                                               const int32_t *xs, const uint16_t *d, const float *xd,
                                                               int b, __m256 acc) {
    const size_t bb = fmt == HYDRA_QUANT_INT8 ? 32 : 16;
    __m256i s = QK(qk_block)(fmt, w + b * bb, _mm256_loadu_si256((const __m256i *)(xq + (size_t)b * 32)), xs[b]);
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(qk_bf16(d[b]) * xd[b]), acc);
}

/* One row against input m, blocks in order: one sequential stream. */
static inline __attribute__((always_inline)) void QK(qk_row)(const int fmt, int nb, const qk_act *a, int m,
                                                             const uint8_t *W, const uint16_t *D, int n, float *y,
                                                             int N, int accumulate) {
    const size_t bb = fmt == HYDRA_QUANT_INT8 ? 32 : 16;
    const int8_t *xq = a->q + (size_t)m * nb * 32;
    const float *xd = a->d + (size_t)m * nb;
    const int32_t *xs = a->s + (size_t)m * nb;
    const uint8_t *w = W + (size_t)n * nb * bb;
    const uint16_t *d = D + (size_t)n * nb;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps(); /* two FMA chains */
    int b = 0;
    for (; b + 2 <= nb; b += 2) {
        __builtin_prefetch(w + b * bb + 1024); /* ahead of the hardware prefetcher at a row's start */
        acc0 = QK(qk_acc)(fmt, w, xq, xs, d, xd, b, acc0);
        acc1 = QK(qk_acc)(fmt, w, xq, xs, d, xd, b + 1, acc1);
    }
    if (b < nb) acc0 = QK(qk_acc)(fmt, w, xq, xs, d, xd, b, acc0);
    float v = QK(qk_hsum)(_mm256_add_ps(acc0, acc1)), *dst = y + (size_t)m * N + n;
    *dst = accumulate ? *dst + v : v;
}

/* Rows [n0, n1) against all M inputs, a row at a time: each row is one
 * sequential stream, which the hardware prefetcher follows (4-row tiles that
 * share each activation load, as the f32 kernel uses, ran int8 2-3x slower:
 * four interleaved streams per tile) ; a row's later inputs find it in L1. */
static inline __attribute__((always_inline)) void QK(qk_rows_t)(const int fmt, int M, int N, int K, const qk_act *a,
                                                                const uint8_t *W, const uint16_t *D, float *y, int n0,
                                                                int n1, int accumulate) {
    const int nb = hydra_quant_row_blocks(K);
    for (int n = n0; n < n1; n++)
        for (int m = 0; m < M; m++) QK(qk_row)(fmt, nb, a, m, W, D, n, y, N, accumulate);
}

static void QK(qk_rows)(int fmt, int M, int N, int K, const qk_act *a, const uint8_t *W, const uint16_t *D,
                        float *y, int n0, int n1, int accumulate) {
    if (fmt == HYDRA_QUANT_INT8) QK(qk_rows_t)(HYDRA_QUANT_INT8, M, N, K, a, W, D, y, n0, n1, accumulate);
    else QK(qk_rows_t)(HYDRA_QUANT_INT4, M, N, K, a, W, D, y, n0, n1, accumulate);
}

#undef QK
#undef QK_LANE0
#undef QK_CAT
#undef QK_CAT2

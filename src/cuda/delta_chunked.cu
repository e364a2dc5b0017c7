/* delta_chunked.cu — the gated delta rule in chunks of 64 tokens (WY / UT
 * form, DESIGN §2 and §9), for prefill. Three kernels:
 *
 *  1. wy      (every chunk in parallel): G = prefix sum of g; the strictly
 *             lower L = diag(beta) (Gamma ⊙ K K^T), Gamma_ij = e^(G_i - G_j);
 *             then U = (I + L)^-1 (beta ⊙ V) and W = (I + L)^-1 (beta ⊙ gamma ⊙ K)
 *             by forward substitution in f32 (a thread per column, rows in
 *             order: no matrix inverse is formed).
 *  2. scan    (sequential over chunks, parallel over sequences, heads and
 *             16-row slices of S): stores each chunk's start state S_c, then
 *             V_new = U - W S_c^T and S_{c+1} = gamma_C S_c + V_new^T ((gamma_C / gamma) ⊙ K).
 *             Only this kernel walks the chunks in order; it keeps its slice
 *             of S in shared memory for the whole sequence.
 *  3. out     (every chunk in parallel): O = (gamma ⊙ Q) S_c^T + (Q K^T ⊙ Gamma ⊙ M) V_new,
 *             M the causal mask with its diagonal.
 *
 * All arithmetic is f32 (SIMT): this path is exact to rounding; it serves
 * the all-f32 mode, and the tests hold it to the CPU's token-by-token
 * recurrence at 1e-4. The BF16 precision runs the same algorithm on tensor
 * cores (delta_tc.cu). Shapes: q, k [BT, H, D]; v [BT, H, D];
 * g, beta [BT, H]; S[b] [H, D (value), D (key)]. D in {64, 128}; the last
 * chunk of a sequence may be short (padded with zero keys and values,
 * g = 0, beta = 0, which change nothing). */
#include "kernels.h"

namespace {

constexpr int CH = 64;      /* chunk length */
constexpr int THREADS = 256;
constexpr int RS = 16;      /* rows of S per scan block */

/* Scratch layout (floats), carved from the caller's work buffer. */
struct work {
    float *U, *W, *Vn; /* [BT, H, D] each */
    float *G;          /* [BT, H] cumulative log decay within the chunk */
    float *Sc;         /* [B, H, NC, D, D] chunk-start states */
};

__host__ __device__ inline size_t n_chunks(int T) { return (size_t)(T + CH - 1) / CH; }

/* a . b over D floats (two rows in shared memory) */
template <int D>
__device__ __forceinline__ float dot_rows(const float *a, const float *b) {
    float dot = 0.0f;
#pragma unroll 8
    for (int x = 0; x < D; x++) dot += a[x] * b[x];
    return dot;
}

work carve(void *base, int B, int T, int H, int D) {
    float *p = (float *)base;
    size_t n = (size_t)B * T * H * D;
    work w;
    w.U = p, p += n;
    w.W = p, p += n;
    w.Vn = p, p += n;
    w.G = p, p += (size_t)B * T * H;
    w.Sc = p;
    return w;
}

/* ------------------------------------------------------------------ 1: wy */
template <int D>
__global__ void __launch_bounds__(THREADS) wy_k(int T, int H, const float *__restrict__ k, const float *__restrict__ v,
                                               const float *__restrict__ g, const float *__restrict__ beta, work w) {
    extern __shared__ float sm[];
    float *Ks = sm;                      /* [CH][D + 1] */
    float *L = Ks + CH * (D + 1);        /* [CH][CH + 1] */
    float *Gs = L + CH * (CH + 1);       /* [CH] */
    float *Bs = Gs + CH;                 /* [CH] */
    const int c = blockIdx.x, h = blockIdx.y, b = blockIdx.z, tid = threadIdx.x;
    const int t0 = c * CH, Lc = min(CH, T - t0);
    const size_t HD = (size_t)H * D, r0 = (size_t)b * T + t0;
    for (int i = tid; i < CH * D; i += THREADS) {
        int r = i / D, col = i % D;
        Ks[r * (D + 1) + col] = r < Lc ? k[(r0 + r) * HD + (size_t)h * D + col] : 0.0f;
    }
    if (tid < CH) {
        Gs[tid] = tid < Lc ? g[(r0 + tid) * H + h] : 0.0f;
        Bs[tid] = tid < Lc ? beta[(r0 + tid) * H + h] : 0.0f;
    }
    __syncthreads();
    if (tid == 0)
        for (int i = 1; i < CH; i++) Gs[i] += Gs[i - 1];
    __syncthreads();
    /* L[i][j] = beta_i e^(G_i - G_j) k_i . k_j for j < i */
    for (int e = tid; e < CH * CH; e += THREADS) {
        int i = e / CH, j = e % CH;
        float val = 0.0f;
        if (j < i) {
            val = Bs[i] * expf(Gs[i] - Gs[j]) * dot_rows<D>(Ks + i * (D + 1), Ks + j * (D + 1));
        }
        L[i * (CH + 1) + j] = val;
    }
    __syncthreads();
    /* forward substitution, a thread per column: columns [0, D) solve for U
     * (right side beta v), [D, 2D) for W (right side beta gamma k) */
    for (int col = tid; col < 2 * D; col += THREADS) {
        const bool isU = col < D;
        const int cc = isU ? col : col - D;
        float *dst = (isU ? w.U : w.W) + (size_t)h * D + cc;
        float x[CH];
#pragma unroll
        for (int i = 0; i < CH; i++) {
            float rhs = 0.0f;
            if (i < Lc) rhs = isU ? Bs[i] * v[(r0 + i) * HD + (size_t)h * D + cc] : Bs[i] * expf(Gs[i]) * Ks[i * (D + 1) + cc];
            float acc = rhs;
#pragma unroll
            for (int j = 0; j < i; j++) acc -= L[i * (CH + 1) + j] * x[j];
            x[i] = acc;
            if (i < Lc) dst[(r0 + i) * HD] = acc;
        }
    }
    if (tid < Lc) w.G[(r0 + tid) * H + h] = Gs[tid];
}

/* ---------------------------------------------------------------- 2: scan */
template <int D>
__global__ void __launch_bounds__(THREADS) scan_k(int T, int H, const float *__restrict__ k, float *const *S, work w) {
    extern __shared__ float sm[];
    float *Ss = sm;                       /* [RS][D + 1]  this block's rows of S */
    float *Ws = Ss + RS * (D + 1);        /* [CH][D + 1]  W of the chunk */
    float *Kt = Ws + CH * (D + 1);        /* [CH][D + 1]  (gamma_C / gamma_i) k_i */
    float *Vn = Kt + CH * (D + 1);        /* [CH][RS + 1] V_new for this block's rows */
    const int rs0 = blockIdx.x * RS, h = blockIdx.y, b = blockIdx.z, tid = threadIdx.x;
    const size_t HD = (size_t)H * D, NC = n_chunks(T);
    float *Sg = S[b] + (size_t)h * D * D + (size_t)rs0 * D; /* rows rs0.. of [D (value), D (key)] */
    for (int i = tid; i < RS * D; i += THREADS) Ss[(i / D) * (D + 1) + i % D] = Sg[i];
    for (size_t c = 0; c < NC; c++) {
        const int t0 = (int)c * CH, Lc = min(CH, T - t0);
        const size_t r0 = (size_t)b * T + t0;
        __syncthreads();
        /* the chunk-start state for the output kernel */
        float *Sc = w.Sc + ((((size_t)b * H + h) * NC + c) * D + rs0) * D;
        for (int i = tid; i < RS * D; i += THREADS) Sc[i] = Ss[(i / D) * (D + 1) + i % D];
        const float Gc = w.G[(r0 + Lc - 1) * H + h];
        for (int i = tid; i < CH * D; i += THREADS) {
            int r = i / D, col = i % D;
            float wv = 0.0f, kv = 0.0f;
            if (r < Lc) {
                wv = w.W[(r0 + r) * HD + (size_t)h * D + col];
                kv = expf(Gc - w.G[(r0 + r) * H + h]) * k[(r0 + r) * HD + (size_t)h * D + col];
            }
            Ws[r * (D + 1) + col] = wv;
            Kt[r * (D + 1) + col] = kv;
        }
        __syncthreads();
        /* V_new[i][r] = U[i][rs0 + r] - W_i . S_r */
        for (int e = tid; e < CH * RS; e += THREADS) {
            int i = e / RS, r = e % RS;
            float val = 0.0f;
            if (i < Lc) {
                val = w.U[(r0 + i) * HD + (size_t)h * D + rs0 + r] - dot_rows<D>(Ws + i * (D + 1), Ss + r * (D + 1));
                w.Vn[(r0 + i) * HD + (size_t)h * D + rs0 + r] = val;
            }
            Vn[i * (RS + 1) + r] = val;
        }
        __syncthreads();
        /* S_r = gamma_C S_r + sum_i V_new[i][r] Kt_i */
        const float gC = expf(Gc);
        for (int e = tid; e < RS * D; e += THREADS) {
            int r = e / D, col = e % D;
            float acc = gC * Ss[r * (D + 1) + col];
#pragma unroll 8
            for (int i = 0; i < CH; i++) acc += Vn[i * (RS + 1) + r] * Kt[i * (D + 1) + col];
            Ss[r * (D + 1) + col] = acc;
        }
    }
    __syncthreads();
    for (int i = tid; i < RS * D; i += THREADS) Sg[i] = Ss[(i / D) * (D + 1) + i % D];
}

/* ----------------------------------------------------------------- 3: out */
template <int D>
__global__ void __launch_bounds__(THREADS) out_k(int T, int H, const float *__restrict__ q, const float *__restrict__ k,
                                                work w, float *__restrict__ o) {
    extern __shared__ float sm[];
    float *Qs = sm;                       /* [CH][D + 1] */
    float *Ks = Qs + CH * (D + 1);        /* [CH][D + 1]; reused for S_c rows */
    float *Vs = Ks + CH * (D + 1);        /* [CH][D + 1]  V_new */
    float *P = Vs + CH * (D + 1);         /* [CH][CH + 1] (Q K^T ⊙ Gamma ⊙ M) */
    float *Gs = P + CH * (CH + 1);        /* [CH] */
    const int c = blockIdx.x, h = blockIdx.y, b = blockIdx.z, tid = threadIdx.x;
    const int t0 = c * CH, Lc = min(CH, T - t0);
    const size_t HD = (size_t)H * D, r0 = (size_t)b * T + t0, NC = n_chunks(T);
    for (int i = tid; i < CH * D; i += THREADS) {
        int r = i / D, col = i % D;
        bool in = r < Lc;
        size_t at = (r0 + r) * HD + (size_t)h * D + col;
        Qs[r * (D + 1) + col] = in ? q[at] : 0.0f;
        Ks[r * (D + 1) + col] = in ? k[at] : 0.0f;
        Vs[r * (D + 1) + col] = in ? w.Vn[at] : 0.0f;
    }
    if (tid < CH) Gs[tid] = tid < Lc ? w.G[(r0 + tid) * H + h] : 0.0f;
    __syncthreads();
    for (int e = tid; e < CH * CH; e += THREADS) {
        int i = e / CH, j = e % CH;
        float val = 0.0f;
        if (j <= i && i < Lc) {
            val = dot_rows<D>(Qs + i * (D + 1), Ks + j * (D + 1)) * expf(Gs[i] - Gs[j]);
        }
        P[i * (CH + 1) + j] = val;
    }
    __syncthreads();
    /* intra-chunk part first, then the state part with S_c in Ks's place */
    constexpr int PER = CH * D / THREADS; /* outputs per thread */
    float acc[PER];
#pragma unroll
    for (int u = 0; u < PER; u++) {
        int e = tid + u * THREADS, i = e / D, col = e % D;
        float a = 0.0f;
        for (int j = 0; j <= i; j++) a += P[i * (CH + 1) + j] * Vs[j * (D + 1) + col];
        acc[u] = a;
    }
    __syncthreads();
    const float *Sc = w.Sc + (((size_t)b * H + h) * NC + c) * D * D; /* [D (value)][D (key)] */
    for (int rb = 0; rb < D; rb += CH) { /* S_c rows in blocks of CH (D = 128: two passes) */
        for (int i = tid; i < CH * D; i += THREADS) Ks[(i / D) * (D + 1) + i % D] = Sc[(size_t)(rb + i / D) * D + i % D];
        __syncthreads();
#pragma unroll
        for (int u = 0; u < PER; u++) {
            int e = tid + u * THREADS, i = e / D, col = e % D;
            if (col < rb || col >= rb + CH) continue;
            acc[u] += expf(Gs[i]) * dot_rows<D>(Qs + i * (D + 1), Ks + (col - rb) * (D + 1));
        }
        __syncthreads();
    }
#pragma unroll
    for (int u = 0; u < PER; u++) {
        int e = tid + u * THREADS, i = e / D, col = e % D;
        if (i < Lc) o[(r0 + i) * HD + (size_t)h * D + col] = acc[u];
    }
}

template <int D>
cudaError_t launch(cudaStream_t s, int B, int T, int H, const float *q, const float *k, const float *v, const float *g,
                   const float *beta, float *const *S, float *o, void *scratch) {
    work w = carve(scratch, B, T, H, D);
    const unsigned NC = (unsigned)n_chunks(T);
    const size_t sm1 = ((size_t)CH * (D + 1) + CH * (CH + 1) + 2 * CH) * 4;
    const size_t sm2 = ((size_t)RS * (D + 1) + 2 * CH * (D + 1) + CH * (RS + 1)) * 4;
    const size_t sm3 = ((size_t)3 * CH * (D + 1) + CH * (CH + 1) + CH) * 4;
    /* above 48 KiB a kernel must ask for its shared memory (per device, so every time) */
    cudaFuncSetAttribute(wy_k<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sm1);
    cudaFuncSetAttribute(scan_k<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sm2);
    cudaFuncSetAttribute(out_k<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sm3);
    wy_k<D><<<dim3(NC, H, B), THREADS, sm1, s>>>(T, H, k, v, g, beta, w);
    scan_k<D><<<dim3(D / RS, H, B), THREADS, sm2, s>>>(T, H, k, S, w);
    out_k<D><<<dim3(NC, H, B), THREADS, sm3, s>>>(T, H, q, k, w, o);
    return cudaGetLastError();
}

} // namespace

extern "C" size_t hk_delta_rule_chunked_scratch(int B, int T, int H, int d) {
    size_t BT = (size_t)B * T;
    size_t f32 = (3 * BT * H * d + BT * H + (size_t)B * H * n_chunks(T) * d * d) * sizeof(float);
    size_t tc = hk_delta_rule_tc_scratch(B, T, H, d);
    return f32 > tc ? f32 : tc;
}

extern "C" cudaError_t hk_delta_rule_chunked(cudaStream_t s, int B, int T, int H, int dk, int dv, const float *q,
                                             const float *k, const float *v, const float *g, const float *beta,
                                             float *const *S, float *o, void *scratch, int tc) {
    if (B <= 0 || T <= 0 || H <= 0 || dk != dv || !scratch) return cudaErrorInvalidValue;
    if (tc) return hk_delta_rule_tc(s, B, T, H, dk, q, k, v, g, beta, S, o, scratch, 0);
    switch (dk) {
    case 64: return launch<64>(s, B, T, H, q, k, v, g, beta, S, o, scratch);
    case 128: return launch<128>(s, B, T, H, q, k, v, g, beta, S, o, scratch);
    default: return cudaErrorNotSupported;
    }
}

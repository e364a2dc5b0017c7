/* sample.cu — token sampling on the device: src/infer/sample.c's
 * distribution (temperature, top-k, top-p) and its inverse-CDF draw, one
 * block per row of logits, so a decode step returns B token ids instead of
 * B x V logits.
 *
 * The CPU sorts the probabilities (descending, ties by ascending index) and
 * keeps a prefix of that order. The kept set is the same as "every key above
 * a cut key, plus the first few ties at the cut in index order", where a
 * key is the probability's bit pattern (monotone for floats >= 0). The cut
 * is found by an 8-ary search over keys on counts (top-k) and masses
 * (top-p), 11 passes over the row each, with no sort and no extra memory:
 * the same code for V = 256 and V = 128K. Sums are in double like the CPU's, in a
 * fixed order (deterministic run to run); they differ from the CPU's
 * sequential sums only in rounding (~1e-16 relative), so the token differs
 * only if a uniform or the top-p target falls within that of a boundary. */
#include <limits.h>
#include <math.h>

#include "sample.h"

namespace {

constexpr unsigned FULL = 0xffffffffu;
constexpr unsigned KEY_INF = 0x7f800000u; /* above every probability's key */

/* Block-wide reductions: a fixed order, and every thread gets the result.
 * Each starts with a barrier so the shared buffer of the previous one is
 * free (blockDim.x a multiple of 32). */
template <typename V> __device__ V block_sum(V x, V *sh) {
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(FULL, x, o);
    __syncthreads();
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = x;
    __syncthreads();
    V t = 0;
    for (int w = 0; w < (int)(blockDim.x >> 5); w++) t += sh[w];
    return t;
}

/* Sum of x over the threads before this one (thread order = index order). */
template <typename V> __device__ V block_excl_scan(V x, V *sh) {
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    V inc = x;
    for (int o = 1; o < 32; o <<= 1) {
        V y = __shfl_up_sync(FULL, inc, o);
        if (lane >= o) inc += y;
    }
    V exc = __shfl_up_sync(FULL, inc, 1);
    if (lane == 0) exc = 0;
    __syncthreads();
    if (lane == 31) sh[w] = inc;
    __syncthreads();
    V base = 0;
    for (int j = 0; j < w; j++) base += sh[j];
    return base + exc;
}

/* min (want_max = 0) or max of an int over the block. */
__device__ int block_minmax(int x, int want_max, int *sh) {
    for (int o = 16; o > 0; o >>= 1) {
        int y = __shfl_xor_sync(FULL, x, o);
        x = want_max ? max(x, y) : min(x, y);
    }
    __syncthreads();
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = x;
    __syncthreads();
    int t = sh[0];
    for (int w = 1; w < (int)(blockDim.x >> 5); w++) t = want_max ? max(t, sh[w]) : min(t, sh[w]);
    return t;
}

/* Passes that only sum or count stride over the row (coalesced loads: one
 * block works on a row alone, so the ~65 passes of the searches are bound
 * by its loads); passes that need index order (tie ranks, the draw) walk a
 * contiguous slice per thread, in thread order. */
struct row {
    float *p;   /* the row: logits in, probabilities after the softmax */
    int V;
    int lo, hi; /* this thread's contiguous slice [lo, hi) */
};
#define STRIDED(i, r) for (int i = threadIdx.x; i < (r).V; i += blockDim.x)

__device__ __forceinline__ unsigned key(float p) { return __float_as_uint(p); }

/* #{i : key_i >= t} and sum of p_i over them. */
__device__ int count_ge(const row &r, unsigned t, int *shi) {
    int c = 0;
    STRIDED(i, r) c += key(r.p[i]) >= t;
    return block_sum(c, shi);
}
__device__ double mass_ge(const row &r, unsigned t, double *shd) {
    double m = 0.0;
    STRIDED(i, r) if (key(r.p[i]) >= t) m += r.p[i];
    return block_sum(m, shd);
}

/* The searches below test NQ thresholds per pass over the row (an
 * (NQ+1)-ary search: 11 passes for 31 key bits instead of 31). */
constexpr int NQ = 7;

/* block_sum of each x[j], one pair of barriers for all; sh holds 32 * NQ. */
template <typename V> __device__ void block_sum_nq(V (&x)[NQ], V *sh) {
    for (int j = 0; j < NQ; j++)
        for (int o = 16; o > 0; o >>= 1) x[j] += __shfl_xor_sync(FULL, x[j], o);
    __syncthreads();
    if ((threadIdx.x & 31) == 0)
        for (int j = 0; j < NQ; j++) sh[j * 32 + (threadIdx.x >> 5)] = x[j];
    __syncthreads();
    for (int j = 0; j < NQ; j++) {
        V t = 0;
        for (int w = 0; w < (int)(blockDim.x >> 5); w++) t += sh[j * 32 + w];
        x[j] = t;
    }
}

/* Largest key t with f(t) >= target, f = count_ge (MASS false, target k in
 * 1..V: the k-th largest key) or mass_ge (MASS true, given mass_ge(0) >=
 * target > 0). f is non-increasing in t (a subset's sum of non-negative
 * terms, in the same order, rounds no higher), and f(KEY_INF) = 0. */
template <bool MASS, typename V> __device__ unsigned search_key(const row &r, V target, V *sh) {
    unsigned lo = 0, hi = KEY_INF; /* f(lo) >= target > f(hi) */
    while (hi - lo > 1) {
        const unsigned step = (hi - lo) / (NQ + 1) ? (hi - lo) / (NQ + 1) : 1;
        unsigned t[NQ];
        V f[NQ];
        for (int j = 0; j < NQ; j++) t[j] = min(lo + step * (j + 1), hi - 1), f[j] = 0;
        STRIDED(i, r) {
            const unsigned kk = key(r.p[i]);
            const V v = MASS ? (V)r.p[i] : (V)1;
            for (int j = 0; j < NQ; j++)
                if (kk >= t[j]) f[j] += v;
        }
        block_sum_nq(f, sh);
        unsigned nlo = lo, nhi = hi;
        for (int j = 0; j < NQ; j++) {
            if (f[j] < target) {
                nhi = t[j];
                break;
            }
            nlo = t[j];
        }
        lo = nlo, hi = nhi;
    }
    return lo;
}

/* Element with key kk is kept: above the cut, or one of the first `ties`
 * at the cut in index order (rank counts the cut's keys seen so far). */
__device__ __forceinline__ bool kept(unsigned kk, unsigned cut, int ties, int &rank) {
    if (kk != cut) return kk > cut;
    return rank++ < ties;
}

__global__ void __launch_bounds__(1024)
    sample_k(int V, float *logits, const hk_sample_params *par, const double *u, int32_t *tok) {
    __shared__ double shd[32];
    __shared__ int shi[32];
    __shared__ float shf[32];
    __shared__ double shd_nq[32 * NQ];
    __shared__ int shi_nq[32 * NQ];
    const int b = blockIdx.x, nt = blockDim.x;
    const int per = (V + nt - 1) / nt;
    row r;
    r.p = logits + (size_t)b * V;
    r.V = V;
    r.lo = min(V, (int)threadIdx.x * per);
    r.hi = min(V, r.lo + per);
    const hk_sample_params P = *par;

    /* max logit and its first index (the CPU's strict '>' scan); NaN check */
    float mx = -INFINITY;
    int best = INT_MAX, nan = 0;
    STRIDED(i, r) {
        float x = r.p[i];
        if (isnan(x)) nan = 1;
        else if (best == INT_MAX || x > mx) mx = x, best = i;
    }
    for (int o = 16; o > 0; o >>= 1) {
        float y = __shfl_xor_sync(FULL, mx, o);
        int j = __shfl_xor_sync(FULL, best, o);
        if (y > mx || (y == mx && j < best)) mx = y, best = j;
    }
    __syncthreads();
    if ((threadIdx.x & 31) == 0) shf[threadIdx.x >> 5] = mx, shi[threadIdx.x >> 5] = best;
    __syncthreads();
    mx = shf[0], best = shi[0];
    for (int w = 1; w < nt / 32; w++)
        if (shf[w] > mx || (shf[w] == mx && shi[w] < best)) mx = shf[w], best = shi[w];
    if (block_sum(nan, shi)) {
        if (threadIdx.x == 0) tok[b] = -1; /* the host reports the NaN */
        return;
    }
    if (P.temperature == 0.0f) { /* greedy */
        if (threadIdx.x == 0) tok[b] = best;
        return;
    }

    /* softmax as the CPU: float exp terms, a double sum, float quotients */
    double sum = 0.0;
    STRIDED(i, r) {
        double e = exp(((double)r.p[i] - (double)mx) / (double)P.temperature);
        r.p[i] = (float)e;
        sum += e;
    }
    sum = block_sum(sum, shd);
    STRIDED(i, r) r.p[i] = (float)((double)r.p[i] / sum);
    __syncthreads(); /* the slices below were written by other threads */

    /* the cut: keep the first `keep` of the sorted order */
    const int k = (P.top_k > 0 && P.top_k < V) ? P.top_k : V;
    const bool renorm = !(k == V && P.top_p >= 1.0f); /* the CPU returns early, unnormalised, otherwise */
    unsigned cut = 0;
    int ties = INT_MAX;
    double kept_mass = 1.0;
    if (renorm) {
        int keep = k;
        unsigned keep_key = k < V ? search_key<false>(r, k, shi_nq) : 0u;
        if (P.top_p < 1.0f) {
            const double tau = (double)P.top_p - 1e-6; /* the CPU's tolerance */
            int keep_p = V;
            unsigned pk = 0;
            if (tau <= 0.0) { /* the first element already reaches it */
                keep_p = 1;
                pk = key(r.p[best]); /* p is monotone in the logit: best holds the largest */
            } else if (mass_ge(r, 0u, shd) >= tau) {
                /* the crossing element's key; then the ties at it, in index
                 * order, add one p each until the running mass reaches tau */
                pk = search_key<true>(r, tau, shd_nq);
                const int c_gt = count_ge(r, pk + 1, shi), n_tie = count_ge(r, pk, shi) - c_gt;
                double cum = mass_ge(r, pk + 1, shd);
                const float pv = __uint_as_float(pk);
                int t = 0;
                while (t < n_tie) {
                    cum += pv;
                    t++;
                    if (cum >= tau) break;
                }
                keep_p = c_gt + (t ? t : 1);
            }
            if (keep_p < keep) keep = keep_p, keep_key = pk;
        }
        if (keep < V) {
            cut = keep_key;
            ties = keep - count_ge(r, cut + 1, shi);
        }
        /* kept mass; ranks of the ties at the cut continue across slices */
        int my_ties = 0;
        for (int i = r.lo; i < r.hi; i++) my_ties += key(r.p[i]) == cut;
        int rank = block_excl_scan(my_ties, shi);
        double m = 0.0;
        for (int i = r.lo; i < r.hi; i++)
            if (kept(key(r.p[i]), cut, ties, rank)) m += r.p[i];
        kept_mass = block_sum(m, shd);
        rank = block_excl_scan(my_ties, shi); /* again for the draw */
        /* the draw's probabilities, written back: 0 outside the kept set */
        for (int i = r.lo; i < r.hi; i++)
            r.p[i] = kept(key(r.p[i]), cut, ties, rank) ? (float)((double)r.p[i] / kept_mass) : 0.0f;
    }

    /* inverse CDF in index order over the non-zero probabilities */
    double mine = 0.0;
    int last = -1;
    for (int i = r.lo; i < r.hi; i++)
        if (r.p[i] > 0.0f) mine += r.p[i], last = i;
    double cum = block_excl_scan(mine, shd);
    const double uu = u[b];
    int hit = INT_MAX;
    for (int i = r.lo; i < r.hi && hit == INT_MAX; i++) {
        if (!(r.p[i] > 0.0f)) continue;
        cum += r.p[i];
        if (uu < cum) hit = i;
    }
    hit = block_minmax(hit, 0, shi);
    last = block_minmax(last, 1, shi);
    if (threadIdx.x == 0) tok[b] = hit != INT_MAX ? hit : (last >= 0 ? last : 0);
}

} // namespace

extern "C" cudaError_t hk_sample(cudaStream_t s, int B, int V, float *logits, const hk_sample_params *par,
                                 const double *u, int32_t *tok) {
    if (B <= 0) return cudaSuccess;
    /* one block per row; a wide block for a large vocabulary */
    int nt = V >= 16384 ? 1024 : 256;
    sample_k<<<B, nt, 0, s>>>(V, logits, par, u, tok);
    return cudaGetLastError();
}

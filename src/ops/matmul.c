/* matmul.c — y[M,N] = x[M,K] . W[N,K]^T, the only GEMM entry point of the
 * library. Large M goes to BLIS; small M (decode, speculative verify) to a
 * threaded GEMV-style kernel, because BLIS is slow there and single-threaded
 * for level-2 shapes (measured: M=4 at 1024x1024 ~9 GFLOP/s in BLIS). */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include <sched.h>

#include <blis.h>
#include <cblas.h>
#include <omp.h>
#include <pthread.h>
#include <time.h>

#include "core/internal.h"
#include "ops/simd.h"

/* ----------------------------------------------------------- runtime */
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static char g_blas_info[160];
static const char *g_arch = "auto";
static int g_threads = 0;

/* Default thread count: OMP_NUM_THREADS if set, else the CPUs this process
 * may run on (sched_getaffinity: taskset, cpusets), capped by a cgroup v2 CPU
 * quota (containers started with --cpus N), never the host's core count:
 * more threads than usable CPUs wait on each other's time slices. */
static int default_threads(void) {
    const char *env = getenv("OMP_NUM_THREADS");
    if (env && *env) return omp_get_max_threads();
    cpu_set_t set;
    int n = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : omp_get_num_procs();
    FILE *f = fopen("/sys/fs/cgroup/cpu.max", "r");
    if (f) {
        long long quota, period;
        if (fscanf(f, "%lld %lld", &quota, &period) == 2 && quota > 0 && period > 0) {
            long long q = (quota + period - 1) / period;
            if (q < n) n = (int)q;
        }
        fclose(f); /* "max 100000": no quota (fscanf stops at "max") */
    }
    return n > 0 ? n : 1;
}

/* BLIS picks its kernel set at its first call from BLIS_ARCH_TYPE. Debian's
 * build misdetects Sapphire Rapids-class CPUs and falls back to slow generic
 * kernels (DESIGN §7), so on AVX-512 CPUs we select "skx" ourselves — unless
 * the user already chose. Without AVX-512 we leave BLIS's own choice alone. */
static int g_backoff_off; /* HYDRA_BACKOFF=0: never back off (a dedicated machine, or to measure; below) */
static void runtime_init_once(void) {
    const char *user = getenv("BLIS_ARCH_TYPE");
    if (user && *user) {
        g_arch = user;
    } else if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")) {
        setenv("BLIS_ARCH_TYPE", "skx", 0);
        g_arch = "skx";
    }
    g_threads = default_threads();
    omp_set_num_threads(g_threads);
    const char *bo = getenv("HYDRA_BACKOFF");
    g_backoff_off = bo && !strcmp(bo, "0");
    bli_thread_set_num_threads(1); /* our threads split the products (sgemm below) */
    snprintf(g_blas_info, sizeof g_blas_info, "BLIS %s (arch %s, %d threads over 1-thread BLIS)",
             bli_info_get_version_str(), g_arch, g_threads);
}

void hydra_runtime_init(void) { pthread_once(&g_once, runtime_init_once); }

const char *hydra_blas_info(void) {
    hydra_runtime_init();
    snprintf(g_blas_info, sizeof g_blas_info, "BLIS %s (arch %s, %d threads over 1-thread BLIS)",
             bli_info_get_version_str(), g_arch, g_threads);
    return g_blas_info;
}

/* ---------------------------------------------------- contention back-off
 * The question is whether the threads pay: over a sliding window of regions
 * (~WIN_MAX, at least WIN_MIN), the regions' wall time against what one
 * thread on a free CPU would have taken. Each region reports its wall time
 * and that estimate: the leading thread times each of its own work items,
 * and its fastest rate (seconds per unit of work) times the region's work
 * is the region on one thread. The fastest item, not the leader's total:
 * when the leader itself shares a CPU with another program, its preempted
 * items would make one thread look slow, while one thread alone would get
 * the free CPU. When the window's wall time exceeds the estimate by more
 * than MARGIN_S, the library runs on one thread for a while (a back-off),
 * then tries its threads again with a fresh window. This catches a partner
 * descheduled behind another program (it holds a region's end for the rest
 * of that program's slice: ms, against regions of ~0.1-2 ms), and ignores
 * what the threads' gain covers: a vCPU woken late now and then, the first
 * region's thread start-up. (Sessions 9-17 counted single slow regions
 * instead, "3 in 64 waited > 0.5 ms": on a quiet 2-vCPU VM that backed off
 * decode every few seconds, and on a 16-vCPU VM it sent 16 threads to one
 * for seconds at a time.)
 * Contention that outlasts a back-off meets longer ones: a verdict within
 * RECENT_S of the last back-off's end starts the next twice as long
 * (BACKOFF_S up to 2^BACKOFF_MAX_LEVEL times it: 0.5 s to 8 s), so a lasting
 * hog costs one window per back-off; the first after a calm RECENT_S is
 * BACKOFF_S again. The price: up to 8 s on one thread after a hog leaves.
 * State is per process; concurrent callers only make the estimate noisier
 * (relaxed atomics, no locks). */
#define WIN_MIN 16
#define WIN_MAX 64
#define MARGIN_S 1e-3
#define BACKOFF_S 0.5
#define BACKOFF_MAX_LEVEL 4
#define RECENT_S 1.0
static long long g_win_n;             /* regions in the window */
static long long g_win_wall_ns;       /* their wall time */
static long long g_win_serial_ns;     /* their estimated one-thread time */
static long long g_backoff_until_us;  /* > 0: single-threaded until then (hydra_now_seconds, microseconds) */
static long long g_backoff_ended_us;  /* when the last back-off ended (0: none yet) */
static int g_backoff_level;           /* the last back-off lasted BACKOFF_S * 2^level */
static unsigned long long g_backoffs; /* back-offs started (hydra_backoff_stats) */
static double g_backoff_total_s;      /* their lengths as set when they started */

static void window_reset(void) {
    __atomic_store_n(&g_win_n, 0LL, __ATOMIC_RELAXED);
    __atomic_store_n(&g_win_wall_ns, 0LL, __ATOMIC_RELAXED);
    __atomic_store_n(&g_win_serial_ns, 0LL, __ATOMIC_RELAXED);
}

/* The thread count lives in each host thread's OpenMP settings, so every
 * region's caller brings its own in line with the shared back-off state
 * (a back-off started or ended from another host thread reaches it here). */
void hydra_par_enter(void) {
    long long until = __atomic_load_n(&g_backoff_until_us, __ATOMIC_RELAXED);
    const double now_us = until > 0 ? hydra_now_seconds() * 1e6 : 0.0;
    if (until > 0 && now_us >= (double)until) {
        __atomic_store_n(&g_backoff_until_us, 0LL, __ATOMIC_RELAXED);
        window_reset();
        __atomic_store_n(&g_backoff_ended_us, (long long)now_us, __ATOMIC_RELAXED);
        until = 0;
    }
    const int want = until > 0 || g_threads < 1 ? 1 : g_threads;
    if (omp_get_max_threads() != want) omp_set_num_threads(want);
}

void hydra_par_report(double total, double one_thread) {
    if (g_threads <= 1 || g_backoff_off || !(one_thread > 0)) return; /* 0: the leader ran no item, no estimate */
    long long n = __atomic_load_n(&g_win_n, __ATOMIC_RELAXED) + 1;
    long long wall = __atomic_load_n(&g_win_wall_ns, __ATOMIC_RELAXED) + (long long)(total * 1e9);
    long long serial = __atomic_load_n(&g_win_serial_ns, __ATOMIC_RELAXED) + (long long)(one_thread * 1e9);
    if (n >= WIN_MAX) n /= 2, wall /= 2, serial /= 2; /* slide: older regions weigh half */
    __atomic_store_n(&g_win_n, n, __ATOMIC_RELAXED);
    __atomic_store_n(&g_win_wall_ns, wall, __ATOMIC_RELAXED);
    __atomic_store_n(&g_win_serial_ns, serial, __ATOMIC_RELAXED);
    if (n < WIN_MIN || (double)(wall - serial) <= MARGIN_S * 1e9) return;
    const double now = hydra_now_seconds();
    const long long ended = __atomic_load_n(&g_backoff_ended_us, __ATOMIC_RELAXED);
    const int recent = ended > 0 && now - (double)ended * 1e-6 < RECENT_S;
    int level = recent ? __atomic_load_n(&g_backoff_level, __ATOMIC_RELAXED) + 1 : 0;
    if (level > BACKOFF_MAX_LEVEL) level = BACKOFF_MAX_LEVEL;
    __atomic_store_n(&g_backoff_level, level, __ATOMIC_RELAXED);
    __atomic_store_n(&g_backoff_until_us, (long long)((now + BACKOFF_S * (double)(1 << level)) * 1e6),
                     __ATOMIC_RELAXED);
    __atomic_fetch_add(&g_backoffs, 1ULL, __ATOMIC_RELAXED);
    g_backoff_total_s += BACKOFF_S * (double)(1 << level); /* a statistic: a lost update only blurs it */
    window_reset();
    omp_set_num_threads(1);
}

/* The leading thread's fastest work item (seconds per unit of work), the
 * back-off's one-thread estimate: the leader calls lead_item after each of
 * its items; tb holds the clock at that item's start (the region's start,
 * then the previous item's end). */
typedef struct {
    double best, tb;
} lead_rate;
static inline void lead_item(lead_rate *l, double units) {
    const double te = hydra_now_seconds(), r = (te - l->tb) / units;
    if (l->best == 0 || r < l->best) l->best = r;
    l->tb = te;
}

void hydra_backoff_stats(uint64_t *count, double *scheduled_s) {
    if (count) *count = __atomic_load_n(&g_backoffs, __ATOMIC_RELAXED);
    if (scheduled_s) *scheduled_s = g_backoff_total_s;
}

void hydra_set_num_threads(int n) {
    hydra_runtime_init();
    if (n < 1) n = 1;
    omp_set_num_threads(n);
    g_threads = n;
    __atomic_store_n(&g_backoff_until_us, 0LL, __ATOMIC_RELAXED); /* the caller's count holds from here */
    window_reset();
    __atomic_store_n(&g_backoff_ended_us, 0LL, __ATOMIC_RELAXED);
    __atomic_store_n(&g_backoff_level, 0, __ATOMIC_RELAXED);
}

int hydra_get_num_threads(void) {
    hydra_runtime_init();
    return g_threads;
}

/* ----------------------------------------------------------- profiling */
static int g_stats_on;
static hydra_matmul_stats g_stats;

void hydra_matmul_stats_enable(int on) { g_stats_on = on; }
void hydra_matmul_stats_get(hydra_matmul_stats *out) {
    if (out) *out = g_stats;
}
void hydra_matmul_stats_reset(void) { memset(&g_stats, 0, sizeof g_stats); }

/* ----------------------------------------------------------- kernels */
#define SMALL_M 16

#define LD16(p) (*(const hydra_v16 *)(p))

/* bf16 weights: the upper 16 bits of an f32, widened by a shift. */
typedef unsigned short hydra_v16h __attribute__((vector_size(32), aligned(2)));
typedef unsigned int hydra_v16u __attribute__((vector_size(64), aligned(4)));
HYDRA_AI hydra_v16 ld_bf16(const uint16_t *p) {
    hydra_v16u u = __builtin_convertvector(*(const hydra_v16h *)p, hydra_v16u) << 16;
    return (hydra_v16)u;
}
HYDRA_AI float bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
/* Weight vector / scalar k of row j: f32 (H = 0) or bf16 (H = 1) weights. */
#define LDW(H, w, off) ((H) ? ld_bf16((const uint16_t *)(w) + (off)) : LD16((const float *)(w) + (off)))
#define WAT(H, w, off) ((H) ? bf16_to_f32(((const uint16_t *)(w))[off]) : ((const float *)(w))[off])


/* One register tile: NR (4) weight rows against MB (1..6) inputs x + i*K
 * (both constants after inlining), MB x NR <= 24 accumulators; every vector
 * of W and x is loaded once per step, so the loop is FMA-bound rather than
 * load-bound. */
HYDRA_AI void gemv_tile(const int MB, const int NR, const int H, int K, const float *restrict x,
                        const void *restrict w, float *restrict y, int N, int accumulate, int prefetch) {
    const size_t es = H ? 2 : 4; /* bytes per weight */
    const int K16 = K & ~15;
    hydra_v16 a[6][4];
    for (int i = 0; i < MB; i++)
        for (int j = 0; j < NR; j++) a[i][j] = (hydra_v16){0};
    for (int k = 0; k < K16; k += 16) {
        /* the next tile's rows (contiguous after these): a few short streams
         * defeat the hardware prefetcher, so fetch one tile ahead by hand */
        if (prefetch)
            for (int j = NR; j < 2 * NR; j++) __builtin_prefetch((const char *)w + ((size_t)j * K + k) * es);
        hydra_v16 v[4];
        for (int j = 0; j < NR; j++) v[j] = LDW(H, w, (size_t)j * K + k);
        for (int i = 0; i < MB; i++) {
            hydra_v16 u = LD16(x + (size_t)i * K + k);
            for (int j = 0; j < NR; j++) a[i][j] += u * v[j];
        }
    }
    for (int i = 0; i < MB; i++)
        for (int j = 0; j < NR; j++) {
            float acc = hydra_v16_hsum(a[i][j]);
            for (int k = K16; k < K; k++) acc += x[(size_t)i * K + k] * WAT(H, w, (size_t)j * K + k);
            float *dst = y + (size_t)i * N + j;
            *dst = accumulate ? *dst + acc : acc;
        }
}

/* MB (1..6) inputs against NR rows: the constant-shape tiles. */
HYDRA_AI void gemv_tile_any(int MB, const int NR, const int H, int K, const float *x, const void *w, float *y,
                            int N, int accumulate, int prefetch) {
    switch (MB) {
    case 6: gemv_tile(6, NR, H, K, x, w, y, N, accumulate, prefetch); break;
    case 5: gemv_tile(5, NR, H, K, x, w, y, N, accumulate, prefetch); break;
    case 4: gemv_tile(4, NR, H, K, x, w, y, N, accumulate, prefetch); break;
    case 3: gemv_tile(3, NR, H, K, x, w, y, N, accumulate, prefetch); break;
    case 2: gemv_tile(2, NR, H, K, x, w, y, N, accumulate, prefetch); break;
    case 1: gemv_tile(1, NR, H, K, x, w, y, N, accumulate, prefetch); break;
    default: break;
    }
}

/* Rows [n0, n1) of W against all M inputs, in tiles of 4 rows x up to 6
 * inputs (24 accumulators + 4 weight vectors + 1 input: 29 of the 32 zmm
 * registers). Each W row comes from memory once for all M inputs: M <= 6 is
 * one pass, more is balanced passes of <= 6 whose later passes find the
 * tile's 4 rows in L1. So the speculative verify of k+1 tokens costs little
 * more than one decode step (measured: M = 6 costs 1.3x M = 1 on the whole
 * d512 model; 2-row tiles for M = 5..8 cost 1.7-2.7x). */
#define GEMV_MB 6
HYDRA_AI void gemv_block_t(const int H, int M, int N, int K, int n0, int n1, const float *restrict x,
                           const void *restrict W, float *restrict y, int accumulate) {
    const size_t es = H ? 2 : 4;
    const int NR = 4, passes = (M + GEMV_MB - 1) / GEMV_MB;
    int n = n0;
    for (; n + NR <= n1; n += NR) {
        const char *w = (const char *)W + (size_t)n * K * es;
        int pf = n + 2 * NR <= n1; /* prefetch in the first pass over these rows only */
        for (int p = 0; p < passes; p++, pf = 0) {
            int m = M * p / passes, mb = M * (p + 1) / passes - m;
            gemv_tile_any(mb, NR, H, K, x + (size_t)m * K, w, y + (size_t)m * N + n, N, accumulate, pf);
        }
    }
    for (; n < n1; n++) /* remaining weight rows */
        for (int m = 0; m < M; m++) {
            float acc = 0.0f;
            for (int k = 0; k < K; k++) acc += x[(size_t)m * K + k] * WAT(H, W, (size_t)n * K + k);
            float *dst = y + (size_t)m * N + n;
            *dst = accumulate ? *dst + acc : acc;
        }
}

HYDRA_CLONES
static void gemv_block(int M, int N, int K, int n0, int n1, const float *restrict x, const float *restrict W,
                       float *restrict y, int accumulate) {
    gemv_block_t(0, M, N, K, n0, n1, x, W, y, accumulate);
}

HYDRA_CLONES
static void gemv_block_bf16(int M, int N, int K, int n0, int n1, const float *restrict x,
                            const uint16_t *restrict W, float *restrict y, int accumulate) {
    gemv_block_t(1, M, N, K, n0, n1, x, W, y, accumulate);
}

/* W is f32, or bf16 when Wh is set (then W is NULL). */
#define GEMV_ROWS 16 /* fewest rows per block: a multiple of the 4-row tiles */
static void gemv_rows(int M, int N, int K, const float *x, const float *W, const uint16_t *Wh, float *y,
                      int accumulate) {
    /* One thread unless the time a split saves, work * (1 - 1/nt), beats a
     * region's cost: ~1 us with spinning partners, but a futex wake-up
     * (tens of us, more on a VM) once they sleep between the regions of a
     * decode step, and up to a scheduler slice when another program holds
     * one of our cores. Taken as the time of 256K multiply-adds (~50-100 us):
     * products under ~280K run on one thread at 16 threads, under 512K at 2
     * (the small model's whole decode: it ran at 0.2-0.3x with 2 threads on
     * the VM). */
    if (!omp_in_parallel()) hydra_par_enter();
    const int nthr = omp_get_max_threads();
    if (nthr < 2 || (double)M * N * K * (1.0 - 1.0 / nthr) < 262144.0) {
        if (Wh) gemv_block_bf16(M, N, K, 0, N, x, Wh, y, accumulate);
        else gemv_block(M, N, K, 0, N, x, W, y, accumulate);
        return;
    }
    /* About 4 blocks per thread (at least GEMV_ROWS rows each), taken
     * dynamically: a thread slowed by another program on its core then holds
     * up one block, not a static share, and 16 threads still get equal work
     * at N = 768. Blocks start on multiples of 4 rows, so every row sees the
     * same tiles as in a single-threaded call (bit-identical results). */
    const int nt = omp_get_max_threads();
    int rows = (N / (4 * nt) + 3) & ~3;
    if (rows < GEMV_ROWS) rows = GEMV_ROWS;
    const int nblk = (N + rows - 1) / rows;
    const double t0 = hydra_now_seconds();
    double rate = 0; /* the leader's fastest block, seconds per row (the back-off's one-thread estimate) */
    /* The whole team even when there are fewer blocks than threads: libgomp
     * re-forms its team whenever a region asks for a different size, which
     * cost more than the idle threads (measured at 16 threads: a 12-thread
     * region among 16-thread ones slowed the next regions 1.5-4x). */
#pragma omp parallel if (nblk > 1)
    {
        const int lead = omp_get_thread_num() == 0;
        lead_rate l = {0, lead ? hydra_now_seconds() : 0};
#pragma omp for schedule(dynamic, 1) nowait
        for (int bi = 0; bi < nblk; bi++) {
            int n0 = bi * rows, n1 = n0 + rows < N ? n0 + rows : N;
            if (Wh) gemv_block_bf16(M, N, K, n0, n1, x, Wh, y, accumulate);
            else gemv_block(M, N, K, n0, n1, x, W, y, accumulate);
            if (lead) lead_item(&l, n1 - n0);
        }
        if (lead) rate = l.best;
    }
    if (nblk > 1) hydra_par_report(hydra_now_seconds() - t0, rate * N);
}

/* One threading layer: BLIS always runs single-threaded and we split large
 * products into tiles of C that our OpenMP threads take dynamically. BLIS's
 * own threads partition a product statically and meet at spinning barriers
 * inside it, so one descheduled thread (another program on its core) stalls
 * the others for a scheduler slice at every barrier (measured: train at 0.04x
 * on a 2-core machine with one core busy, docs/threads.md). Tiles split M and
 * N only, never K, so every element of C is the same single-threaded BLIS
 * dot-product order whatever the tiling or thread count: results are
 * bit-identical across thread counts. Below this many multiply-adds one call
 * on the calling thread beats any split. */
#define BLAS_ONE_THREAD_MACS 2097152.0
#define TILE_MIN 64 /* smallest tile side (reached only with many threads): packing stays a few % of the work */

static void sgemm_one(int transA, int transB, int M, int N, int K, const float *A, int lda, const float *B,
                      int ldb, float *C, int ldc, int accumulate) {
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, M, N,
                K, 1.0f, A, lda, B, ldb, accumulate ? 1.0f : 0.0f, C, ldc);
}

static void sgemm(int transA, int transB, int M, int N, int K, const float *A, int lda, const float *B,
                  int ldb, float *C, int ldc, int accumulate) {
    if (!omp_in_parallel()) hydra_par_enter();
    const int nt = omp_in_parallel() ? 1 : omp_get_max_threads(); /* 1 during a contention back-off */
    if (nt <= 1 || (double)M * N * K < BLAS_ONE_THREAD_MACS) {
        sgemm_one(transA, transB, M, N, K, A, lda, B, ldb, C, ldc, accumulate);
        return;
    }
    /* Halve the longer tile side until there are >= 4 tiles per thread (a
     * thread slowed by another program then costs at most a few tiles) or
     * the sides reach TILE_MIN; sides are multiples of 16 (BLIS micro-tiles). */
    int bm = M, bn = N;
    while ((long long)((M + bm - 1) / bm) * ((N + bn - 1) / bn) < 4LL * nt) {
        if (bm >= bn && bm >= 2 * TILE_MIN) bm = (bm / 2 + 15) & ~15;
        else if (bn >= 2 * TILE_MIN) bn = (bn / 2 + 15) & ~15;
        else break;
    }
    const int tm = (M + bm - 1) / bm, tn = (N + bn - 1) / bn, ntile = tm * tn;
    if (ntile == 1) { /* sides already at TILE_MIN: a region would only hand the one tile to a partner */
        sgemm_one(transA, transB, M, N, K, A, lda, B, ldb, C, ldc, accumulate);
        return;
    }
    const double t0 = hydra_now_seconds();
    double rate = 0; /* the leader's fastest tile, seconds per element of C (the back-off's estimate) */
#pragma omp parallel num_threads(nt) /* the whole team: see gemv_rows */
    {
        const int lead = omp_get_thread_num() == 0;
        lead_rate l = {0, lead ? hydra_now_seconds() : 0};
#pragma omp for schedule(dynamic, 1) nowait
        for (int t = 0; t < ntile; t++) {
            const int i0 = (t / tn) * bm, j0 = (t % tn) * bn;
            const int mb = M - i0 < bm ? M - i0 : bm, nb = N - j0 < bn ? N - j0 : bn;
            const float *a = transA ? A + i0 : A + (size_t)i0 * lda;
            const float *b = transB ? B + (size_t)j0 * ldb : B + j0;
            sgemm_one(transA, transB, mb, nb, K, a, lda, b, ldb, C + (size_t)i0 * ldc + j0, ldc, accumulate);
            if (lead) lead_item(&l, (double)mb * nb);
        }
        if (lead) rate = l.best;
    }
    hydra_par_report(hydra_now_seconds() - t0, rate * ((double)M * N));
}

static void stats_add(double t0, int M, int N, int K) {
    if (!g_stats_on) return;
    g_stats.seconds += hydra_now_seconds() - t0;
    g_stats.flops += 2.0 * M * (double)N * K;
    g_stats.calls++;
}

uint16_t hydra_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* NaN stays NaN */
    u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest even */
    return (uint16_t)(u >> 16);
}

/* Large M with bf16 weights: rows of W converted to f32 per block, then one
 * GEMM per block. Prefill chunks are compute-bound, so the conversion (one
 * pass over the bf16 rows per call) costs little beside it. */
#define BF16_BLOCK_ROWS 64

/* y = x . W^T with W f32, or bf16 when Wh is set (W NULL): the small-M tiles
 * read either directly; large M goes to BLAS. */
static hydra_status matmul_any(const char *name, int M, int N, int K, const float *x, const float *W,
                               const uint16_t *Wh, float *y, int accumulate) {
    if (!x || !(W || Wh) || !y) return hydra_set_error(HYDRA_ERR_ARG, "%s: NULL pointer", name);
    if (M < 0 || N < 0 || K < 0) return hydra_set_error(HYDRA_ERR_ARG, "%s: negative dimension", name);
    if (M == 0 || N == 0) return HYDRA_OK;
    hydra_runtime_init();
    double t0 = g_stats_on ? hydra_now_seconds() : 0;
    if (M < SMALL_M) {
        gemv_rows(M, N, K, x, W, Wh, y, accumulate);
    } else if (!Wh) {
        sgemm(0, 1, M, N, K, x, K, W, K, y, N, accumulate);
    } else {
        float *blk = hydra_aligned_alloc((size_t)BF16_BLOCK_ROWS * K * sizeof(float));
        if (!blk) return hydra_set_error(HYDRA_ERR_NOMEM, "%s: out of memory", name);
        for (int n0 = 0; n0 < N; n0 += BF16_BLOCK_ROWS) {
            int nb = N - n0 < BF16_BLOCK_ROWS ? N - n0 : BF16_BLOCK_ROWS;
            const uint16_t *src = Wh + (size_t)n0 * K;
            for (size_t i = 0; i < (size_t)nb * K; i++) blk[i] = bf16_to_f32(src[i]);
            sgemm(0, 1, M, nb, K, x, K, blk, K, y + n0, N, accumulate);
        }
        hydra_aligned_free(blk);
    }
    stats_add(t0, M, N, K);
    return HYDRA_OK;
}

hydra_status hydra_op_matmul(int M, int N, int K, const float *x, const float *W, float *y, int accumulate) {
    return matmul_any("matmul", M, N, K, x, W, NULL, y, accumulate);
}

hydra_status hydra_op_matmul_bf16(int M, int N, int K, const float *x, const uint16_t *W, float *y,
                                  int accumulate) {
    return matmul_any("matmul_bf16", M, N, K, x, NULL, W, y, accumulate);
}

/* ------------------------------------------------ general GEMM (backward) */
/* Below this many multiply-adds a BLIS call costs more than the work
 * (measured: ~20 us single-threaded, ~0.5 ms with 2 threads on a busy host
 * for a 24x48x16 product): plain single-threaded loops instead. */
#define MATMUL_EX_SMALL 65536.0

static void gemm_small(int transA, int transB, int M, int N, int K, const float *A, int lda,
                       const float *B, int ldb, float *C, int ldc, int accumulate) {
    for (int i = 0; i < M; i++) {
        float *ci = C + (size_t)i * ldc;
        if (!accumulate)
            for (int j = 0; j < N; j++) ci[j] = 0.0f;
        for (int l = 0; l < K; l++) {
            const float a = transA ? A[(size_t)l * lda + i] : A[(size_t)i * lda + l];
            if (!transB) {
                const float *bl = B + (size_t)l * ldb;
                for (int j = 0; j < N; j++) ci[j] += a * bl[j];
            } else {
                for (int j = 0; j < N; j++) ci[j] += a * B[(size_t)j * ldb + l];
            }
        }
    }
}

/* C[M,N] (+)= op(A)[M,K] . op(B)[K,N], row-major with leading dimensions.
 * Used by the backward: dX = dY.W (no transposes) and dW += dY^T.X (transA).
 * Tiny products use plain loops, the rest BLAS; counted in the same stats. */
hydra_status hydra_op_matmul_ex(int transA, int transB, int M, int N, int K, const float *A,
                                int lda, const float *B, int ldb, float *C, int ldc,
                                int accumulate) {
    if (!A || !B || !C) return hydra_set_error(HYDRA_ERR_ARG, "matmul_ex: NULL pointer");
    if (M < 0 || N < 0 || K < 0) return hydra_set_error(HYDRA_ERR_ARG, "matmul_ex: negative dimension");
    if (lda < (transA ? (M > 1 ? M : 1) : (K > 1 ? K : 1)) ||
        ldb < (transB ? (K > 1 ? K : 1) : (N > 1 ? N : 1)) || ldc < (N > 1 ? N : 1))
        return hydra_set_error(HYDRA_ERR_ARG, "matmul_ex: leading dimension too small (lda %d ldb %d ldc %d)",
                               lda, ldb, ldc);
    if (M == 0 || N == 0) return HYDRA_OK;
    hydra_runtime_init();
    double t0 = g_stats_on ? hydra_now_seconds() : 0;
    if ((double)M * N * K < MATMUL_EX_SMALL) {
        gemm_small(transA, transB, M, N, K, A, lda, B, ldb, C, ldc, accumulate);
    } else {
        sgemm(transA, transB, M, N, K, A, lda, B, ldb, C, ldc, accumulate);
    }
    stats_add(t0, M, N, K);
    return HYDRA_OK;
}

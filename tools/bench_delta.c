/* bench_delta.c — delta-rule kernel benchmark (see bench/LOG.md).
 *
 * FLOP count used for GFLOP/s, per token per head: p = S'k (2 dk dv),
 * S = S' + u k^T (2 dk dv), o = S q (2 dk dv) => 6 dk dv. The decay (dk dv
 * multiplies) and the O(dv) vector work are not counted.
 *
 * Prefill: one call with T = 512 tokens from a fixed initial state.
 * Decode: T = 1 calls on a warm state (after a 512-token prefill), per-token
 * time = batch time / calls. Every figure is the median of >= 5 timed
 * repetitions after a warm-up, timed with CLOCK_MONOTONIC.
 * Published reference figures (the targets are >= 3x prefill, >= 2x decode):
 * 64x12: prefill 126K tok/s, decode 14.7 us/token; 128x16: prefill 20.7K tok/s. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "cli.h"
#include "hydralm_ops.h"

#define PREFILL_T 512
#define REPS 7
#define DECODE_CALLS 256

typedef hydra_status (*dr_fn)(int, int, int, int, const float *, const float *, const float *,
                              const float *, const float *, float *, float *);

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    int T, H, dk, dv;
    float *q, *k, *v, *g, *beta, *S0, *S, *o;
} dr_inputs;

static float rnd_normal(uint64_t *s) {
    /* xorshift64* + Box-Muller: deterministic, good enough for benchmark data */
    double u[2];
    for (int i = 0; i < 2; i++) {
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        u[i] = ((*s * 2685821657736338717ULL) >> 11) * (1.0 / 9007199254740992.0);
    }
    return (float)(sqrt(-2.0 * log(u[0] + 1e-300)) * cos(6.283185307179586 * u[1]));
}

/* Inputs shaped like the model's: q, k L2-normalised, q scaled by dk^-1/2,
 * g in [-1, 0], beta in (0, 1). */
static int inputs_make(dr_inputs *in, int T, int H, int d) {
    memset(in, 0, sizeof *in);
    in->T = T, in->H = H, in->dk = d, in->dv = d;
    size_t nk = (size_t)T * H * d, ns = (size_t)H * d * d;
    in->q = malloc(nk * sizeof(float));
    in->k = malloc(nk * sizeof(float));
    in->v = malloc(nk * sizeof(float));
    in->o = malloc(nk * sizeof(float));
    in->g = malloc((size_t)T * H * sizeof(float));
    in->beta = malloc((size_t)T * H * sizeof(float));
    in->S0 = malloc(ns * sizeof(float));
    in->S = malloc(ns * sizeof(float));
    if (!in->q || !in->k || !in->v || !in->o || !in->g || !in->beta || !in->S0 || !in->S) return 0;
    uint64_t s = 0x9E3779B97F4A7C15ULL;
    for (size_t r = 0; r < (size_t)T * H; r++) {
        float *qr = in->q + r * d, *kr = in->k + r * d, *vr = in->v + r * d;
        double nq = 0, nkk = 0;
        for (int j = 0; j < d; j++) {
            qr[j] = rnd_normal(&s), kr[j] = rnd_normal(&s), vr[j] = rnd_normal(&s);
            nq += (double)qr[j] * qr[j], nkk += (double)kr[j] * kr[j];
        }
        float sq = (float)(1.0 / (sqrt(nq) + 1e-6) / sqrt((double)d));
        float sk = (float)(1.0 / (sqrt(nkk) + 1e-6));
        for (int j = 0; j < d; j++) qr[j] *= sq, kr[j] *= sk;
        float x = rnd_normal(&s);
        in->g[r] = -(float)log1p(exp((double)x)) * 0.5f; /* -softplus/2 */
        if (in->g[r] < -1.0f) in->g[r] = -1.0f;
        in->beta[r] = (float)(1.0 / (1.0 + exp(-(double)rnd_normal(&s))));
    }
    for (size_t i = 0; i < ns; i++) in->S0[i] = 0.1f * rnd_normal(&s);
    return 1;
}

static void inputs_free(dr_inputs *in) {
    free(in->q), free(in->k), free(in->v), free(in->o);
    free(in->g), free(in->beta), free(in->S0), free(in->S);
}

/* tokens/s of one T-token call (median) */
static double time_prefill(dr_fn f, dr_inputs *in, int reps) {
    double t[REPS + 4];
    size_t ns = (size_t)in->H * in->dk * in->dv;
    for (int r = -1; r < reps; r++) { /* r = -1: warm-up */
        memcpy(in->S, in->S0, ns * sizeof(float));
        double t0 = now_s();
        f(in->T, in->H, in->dk, in->dv, in->q, in->k, in->v, in->g, in->beta, in->S, in->o);
        double t1 = now_s();
        if (r >= 0) t[r] = t1 - t0;
    }
    return in->T / hydra_median(t, reps);
}

/* seconds per token of T=1 calls on a warm state (median over reps batches) */
static double time_decode(dr_fn f, dr_inputs *in, int reps, int calls) {
    double t[REPS + 4];
    const int H = in->H, dk = in->dk, dv = in->dv;
    for (int r = -1; r < reps; r++) {
        double t0 = now_s();
        for (int c = 0; c < calls; c++) {
            size_t tt = (size_t)(c % in->T);
            f(1, H, dk, dv, in->q + tt * H * dk, in->k + tt * H * dk, in->v + tt * H * dv,
              in->g + tt * H, in->beta + tt * H, in->S, in->o);
        }
        double t1 = now_s();
        if (r >= 0) t[r] = (t1 - t0) / calls;
    }
    return hydra_median(t, reps);
}

void hydra_bench_delta_rule(FILE *out, int threads) {
    int saved = omp_get_max_threads();
    if (threads > 0) omp_set_num_threads(threads);
    static const struct {
        int d, H;
        double pub_prefill, pub_decode_us; /* published reference figures (0: none) */
    } cases[] = {{64, 12, 126e3, 14.7}, {128, 16, 20.7e3, 0.0}};

    fprintf(out, "delta-rule kernel, %d thread(s); FLOPs = 6*dk*dv per token per head\n",
            omp_get_max_threads());
    fprintf(out, "%-12s %-5s %13s %8s %8s %11s %11s %8s\n", "case", "kern", "prefill tok/s",
            "GFLOP/s", "x pub", "decode us/t", "decode t/s", "x pub");
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        dr_inputs in;
        if (!inputs_make(&in, PREFILL_T, cases[c].H, cases[c].d)) {
            fprintf(out, "out of memory\n");
            inputs_free(&in);
            break;
        }
        char name[32];
        snprintf(name, sizeof name, "%dx%d", cases[c].d, cases[c].H);
        double flops_tok = 6.0 * cases[c].d * cases[c].d * cases[c].H;
        for (int kern = 0; kern < 2; kern++) {
            dr_fn f = kern == 0 ? hydra_op_delta_rule : hydra_op_delta_rule_ref;
            double pre = time_prefill(f, &in, kern == 0 ? REPS : 5);
            /* warm state for decode: the prefill just ran into in.S */
            double dec = time_decode(f, &in, kern == 0 ? REPS : 5,
                                     kern == 0 ? DECODE_CALLS : DECODE_CALLS / 4);
            char xpre[16] = "-", xdec[16] = "-";
            if (cases[c].pub_prefill > 0) snprintf(xpre, sizeof xpre, "%.2f", pre / cases[c].pub_prefill);
            if (cases[c].pub_decode_us > 0)
                snprintf(xdec, sizeof xdec, "%.2f", cases[c].pub_decode_us / (dec * 1e6));
            fprintf(out, "%-12s %-5s %13.0f %8.1f %8s %11.2f %11.0f %8s\n", name,
                    kern == 0 ? "fast" : "ref", pre, pre * flops_tok * 1e-9, xpre, dec * 1e6,
                    1.0 / dec, xdec);
        }
        inputs_free(&in);
    }
    if (threads > 0) omp_set_num_threads(saved);
}

/* hydra bench — speed against the machine's ceilings (DESIGN §7), measured
 * side by side in one run: GEMM peak and memory bandwidth are measured here
 * first, then the model's prefill and decode are reported as fractions of
 * them. Medians of several repetitions. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "hydralm_ops.h"
#include "hydralm_spec.h"

/* Read bandwidth: threaded sum over a buffer much larger than the caches,
 * four independent 16-lane accumulators per thread so the adds keep up. */
typedef float bw_v16 __attribute__((vector_size(64), aligned(4)));
__attribute__((target_clones("avx512f", "default")))
static float sum_block(const float *x, size_t n) {
    bw_v16 a = {0}, b = {0}, c = {0}, d = {0};
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        a += *(const bw_v16 *)(x + i);
        b += *(const bw_v16 *)(x + i + 16);
        c += *(const bw_v16 *)(x + i + 32);
        d += *(const bw_v16 *)(x + i + 48);
    }
    a += b + c + d;
    float s = 0;
    for (int l = 0; l < 16; l++) s += a[l];
    for (; i < n; i++) s += x[i];
    return s;
}

static double measure_bandwidth(size_t bytes, int reps) {
    size_t n = bytes / sizeof(float);
    float *x = malloc(n * sizeof(float));
    if (!x) return 0;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) x[i] = 1.0f;
    double t[32];
    volatile float sink = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = hydra_now_seconds();
        float s = 0;
#pragma omp parallel reduction(+ : s)
        {
            int nt = omp_get_num_threads(), id = omp_get_thread_num();
            size_t i0 = n * (size_t)id / (size_t)nt, i1 = n * (size_t)(id + 1) / (size_t)nt;
            s += sum_block(x + i0, i1 - i0);
        }
        t[r] = hydra_now_seconds() - t0;
        sink += s;
    }
    (void)sink;
    free(x);
    return (double)bytes / hydra_median(t, reps) / 1e9;
}

typedef struct {
    const char *name;
    hydra_config cfg;
} bench_model;

static int bench_model_run(const bench_model *bm, int T, int decode_steps, int reps, double gemm_peak,
                           double bw) {
    hydra_model *m = NULL;
    hydra_status st = hydra_model_create(&bm->cfg, 1, &m);
    if (st) return cli_fail("bench", "creating model", st);
    hydra_state *s = NULL;
    if ((st = hydra_state_create(m, &s))) {
        hydra_model_free(m);
        return cli_fail("bench", "creating state", st);
    }
    int V = bm->cfg.vocab_size;
    int32_t *tok = malloc((size_t)T * sizeof *tok);
    float *logits = malloc((size_t)V * sizeof *logits);
    for (int i = 0; i < T; i++) tok[i] = (int32_t)((i * 7919u + 13u) % (unsigned)V);
    /* Prefill: T tokens from an empty state, logits of the last position. */
    double tp[32], gflops[32], share[32];
    hydra_forward(m, tok, 1, T, &s, HYDRA_LOGITS_LAST, logits); /* warm-up */
    for (int r = 0; r < reps; r++) {
        hydra_state_reset(s);
        hydra_matmul_stats_reset();
        hydra_matmul_stats_enable(1);
        double t0 = hydra_now_seconds();
        hydra_forward(m, tok, 1, T, &s, HYDRA_LOGITS_LAST, logits);
        tp[r] = hydra_now_seconds() - t0;
        hydra_matmul_stats_enable(0);
        hydra_matmul_stats ms;
        hydra_matmul_stats_get(&ms);
        gflops[r] = ms.flops / ms.seconds / 1e9;
        share[r] = ms.seconds / tp[r];
    }
    double prefill_tps = T / hydra_median(tp, reps), g = hydra_median(gflops, reps), sh = hydra_median(share, reps);
    /* Decode: one token at a time after the prefill. */
    double td[512];
    int steps = decode_steps < 512 ? decode_steps : 512;
    int32_t t = tok[T - 1];
    for (int i = 0; i < 3; i++) hydra_step(m, s, t, logits);
    for (int i = 0; i < steps; i++) {
        double t0 = hydra_now_seconds();
        hydra_step(m, s, t, logits);
        td[i] = hydra_now_seconds() - t0;
        t = (int32_t)((t * 31 + 7) % V);
    }
    double dec = hydra_median(td, steps);
    /* Bytes per decoded token: every weight once + the state read and written. */
    double bytes = 4.0 * (double)hydra_model_n_params(m) + 2.0 * (double)hydra_model_state_bytes(m);
    double gbs = bytes / dec / 1e9;
    char b1[32];
    printf("%-22s %9zu  %10.0f  %7.1f  %5.0f%%  %6.1f%%  %9.1f  %7.2f  %6.1f  %5.0f%%   %s\n", bm->name,
           hydra_model_n_params(m), prefill_tps, g, 100 * g / gemm_peak, 100 * sh, 1.0 / dec, 1e3 * dec, gbs,
           100 * gbs / bw, cli_bytes(bytes, b1, sizeof b1));
    free(tok);
    free(logits);
    hydra_state_free(s);
    hydra_model_free(m);
    return 0;
}

int cmd_bench(int argc, char **argv) {
    cli_spec s = {.usage = "hydra bench [--threads N] [--quick] [--only gemm|model|delta] | --train [--threads 1,2,4 | --device cuda] | --contention [--cpus A,B]",
                  .summary = "Measures, in one run: the sgemm peak and memory read bandwidth of this machine;\n"
                             "prefill (512 tokens) and decode speed of the default and a small model, with\n"
                             "GEMM GFLOP/s achieved inside the model's matmuls and decode GB/s against the\n"
                             "bandwidth roofline (bytes per token = fp32 weights + 2 x state); and the\n"
                             "gated delta-rule kernel. Reference ceilings (DESIGN §7, 2 threads): sgemm\n"
                             "~300 GFLOP/s, DRAM ~28 GB/s. Results go to stdout as a table."};
    int threads = 0, quick = 0;
    const char *only = NULL, *threads_s = NULL;
    cli_add(&s, "threads", OPT_STR, &threads_s,
            "threads (default: the CPUs this process may use); with --train a list, e.g. 1,2,4,8,16: one table");
    cli_add(&s, "quick", OPT_FLAG, &quick, "fewer repetitions (smoke test, noisier figures)");
    cli_add(&s, "only", OPT_STR, &only,
            "run one part: gemm, model or delta (with --device cuda: delta, model or sample; with --train --device cuda: "
            "step, the bf16 AdamW 16 x 2048 row alone; with --quant: quality, the table of --quant-model alone; with "
            "--contention: train, prefill, decode, ...)");
    uint64_t stream_tokens = 0;
    cli_add(&s, "stream-tokens", OPT_U64, &stream_tokens, "run only the streaming benchmark over N tokens (small + default model)");
    const char *spec_target = NULL, *spec_draft = NULL;
    cli_add(&s, "spec-target", OPT_STR, &spec_target, "run only the speculative-decoding benchmark: target checkpoint");
    cli_add(&s, "spec-draft", OPT_STR, &spec_draft, "draft checkpoint for --spec-target");
    const char *spec_adaptive = "0.3,0.5";
    cli_add(&s, "spec-adaptive", OPT_STR, &spec_adaptive,
            "adaptive-round thresholds for --spec-target, e.g. 0.3,0.5 (default; \"\" for none): rounds of up to "
            "--spec-adaptive-k proposals that end where the draft's top probability is below the threshold");
    int spec_adaptive_k = 8;
    cli_add(&s, "spec-adaptive-k", OPT_INT, &spec_adaptive_k, "the most proposals of an adaptive round (default 8)");
    int spec_reps = 0;
    cli_add(&s, "spec-reps", OPT_INT, &spec_reps,
            "repetitions for --spec-target (default 5, --quick 2); each runs 4 prompts plain, then speculative");
    int factbank = 0;
    const char *factbank_model = NULL;
    cli_add(&s, "factbank", OPT_FLAG, &factbank, "run only the FactBank benchmark (capacity curve; with --factbank-model, recall)");
    cli_add(&s, "factbank-model", OPT_STR, &factbank_model, "checkpoint trained on key-value recall for --factbank");
    const char *device = "cpu";
    cli_add(&s, "device", OPT_STR, &device, "cpu (default) or cuda / cuda:N: the GPU benchmark (ceilings, kernels, model)");
    int train = 0;
    cli_add(&s, "train", OPT_FLAG, &train, "run only the training-step benchmark (tokens/s, MFU, PyTorch peer)");
    int quant = 0;
    const char *quant_model = NULL, *quant_data = "data/tinyshakespeare.txt";
    cli_add(&s, "quant", OPT_FLAG, &quant, "run only the quantised-decode benchmark (f32 / bf16 / int8 / int4)");
    cli_add(&s, "quant-model", OPT_STR, &quant_model, "with --quant: also the quality of this trained checkpoint vs f32");
    cli_add(&s, "quant-data", OPT_STR, &quant_data, "text for --quant-model's validation split (default data/tinyshakespeare.txt)");
    int no_peer = 0;
    cli_add(&s, "no-peer", OPT_FLAG, &no_peer, "with --train: skip the PyTorch peer");
    int contention = 0;
    const char *cpus = NULL;
    cli_add(&s, "contention", OPT_FLAG, &contention,
            "run only the contention benchmark: train / prefill / decode at 1 and 2 threads, quiet and with a CPU hog "
            "on one of two CPUs (docs/threads.md)");
    cli_add(&s, "cpus", OPT_STR, &cpus, "with --contention: the two CPUs to pin to, A,B (hog on B; default: the first two)");
    int r = cli_parse(&s, argc, argv);
    if (r) return r > 0 ? 0 : 2;
    int tl[16], ntl = 0;
    for (const char *p = threads_s; p && *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 4096 || ntl == 16 || (*end && *end != ','))
            return fprintf(stderr, "hydra bench: --threads wants N or a list N1,N2,... of up to 16 counts >= 1\n"), 2;
        tl[ntl++] = (int)v;
        p = *end ? end + 1 : end;
    }
    if (ntl > 1 && !train)
        return fprintf(stderr, "hydra bench: a --threads list goes with --train only\n"), 2;
    if (contention) return hydra_bench_contention(stdout, cpus, only, quick);
    if (ntl == 1) threads = tl[0], hydra_set_num_threads(threads);
    if (strcmp(device, "cpu") && train) {
        if (only && strcmp(only, "step"))
            return fprintf(stderr, "hydra bench: --train --device %s takes --only step (got '%s')\n", device, only), 2;
        return hydra_bench_cuda_train(stdout, device, quick, only != NULL);
    }
    if (strcmp(device, "cpu") && !stream_tokens) return hydra_bench_cuda(stdout, device, quick, only);
    if (train) {
        if (!ntl) tl[ntl++] = hydra_get_num_threads();
        return hydra_bench_train(stdout, quick, tl, ntl, !no_peer), 0;
    }
    if (quant || quant_model)
        return hydra_bench_quant(stdout, quick, !(only && !strcmp(only, "quality")), quant_model, quant_data);
    if (spec_target || spec_draft) {
        if (!spec_target || !spec_draft) return fprintf(stderr, "hydra bench: --spec-target and --spec-draft go together\n"), 2;
        float min_ps[8];
        int n_min_ps = 0;
        for (const char *p = spec_adaptive; *p;) {
            char *end;
            double v = strtod(p, &end);
            if (end == p || !(v > 0 && v < 1) || n_min_ps == 8 || (*end && *end != ','))
                return fprintf(stderr, "hydra bench: --spec-adaptive wants up to 8 comma-separated values in (0, 1), got \"%s\"\n",
                               spec_adaptive), 2;
            min_ps[n_min_ps++] = (float)v;
            p = *end ? end + 1 : end;
        }
        if (spec_reps < 0 || spec_reps > 64) return fprintf(stderr, "hydra bench: --spec-reps must be in 1..64\n"), 2;
        if (!spec_reps) spec_reps = quick ? 2 : 5;
        if (spec_adaptive_k < 1 || spec_adaptive_k > HYDRA_SPEC_MAX_K)
            return fprintf(stderr, "hydra bench: --spec-adaptive-k must be in 1..%d\n", HYDRA_SPEC_MAX_K), 2;
        return hydra_bench_spec(stdout, spec_target, spec_draft, quick ? 64 : 256, min_ps, n_min_ps, spec_adaptive_k, spec_reps), 0;
    }
    if (stream_tokens) return hydra_bench_stream(stdout, (long long)stream_tokens, 1, device), 0;
    if (factbank_model) return hydra_bench_factbank_model(stdout, factbank_model, 8, quick ? 4 : 32, 1);
    if (factbank) return hydra_bench_factbank(stdout), 0;
    int reps = quick ? 3 : 7;
    printf("hydra bench — %s, %d threads\n\n", hydra_blas_info(), hydra_get_num_threads());
    double peak = 0, bw = 0;
    if (!only || strcmp(only, "delta")) {
        peak = cli_gemm_peak_gflops(1024, reps);
        bw = measure_bandwidth((size_t)1 << 30, quick ? 3 : 5);
        printf("machine   sgemm 1024^3 peak %.1f GFLOP/s (DESIGN ceiling 300: %.0f%%)   read bandwidth %.1f GB/s "
               "(DESIGN ceiling 28: %.0f%%)\n\n",
               peak, 100 * peak / 300, bw, 100 * bw / 28);
    }
    if (!only || !strcmp(only, "model")) {
        bench_model models[2];
        models[0].name = "default 768x12";
        models[0].cfg = hydra_config_default();
        models[1].name = "small 256x4";
        models[1].cfg = hydra_config_default();
        models[1].cfg.d_model = 256;
        models[1].cfg.n_layers = 4;
        models[1].cfg.n_heads = 4;
        models[1].cfg.head_dim = 64;
        printf("%-22s %9s  %10s  %7s  %6s  %7s  %9s  %7s  %6s  %6s   %s\n", "model", "params", "prefill t/s",
               "GEMM GF", "%peak", "%matmul", "decode t/s", "ms/tok", "GB/s", "%bw", "bytes/tok");
        for (int i = 0; i < 2; i++)
            if (bench_model_run(&models[i], 512, quick ? 16 : 64, reps, peak, bw)) return 1;
        printf("\n(prefill: 512 tokens, batch 1; GEMM GF = GFLOP/s inside the model's matmuls, %%peak vs the sgemm\n"
               " peak above, %%matmul = share of prefill time spent in matmuls; decode: median of single-token\n"
               " steps after the prefill; %%bw = decode GB/s vs the measured read bandwidth. Targets: prefill\n"
               " matmuls >= 50%% of GEMM peak, decode >= 60%% of the bandwidth roofline.)\n\n");
    }
    if (!only || !strcmp(only, "delta")) hydra_bench_delta_rule(stdout, threads);
    return 0;
}

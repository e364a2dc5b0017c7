/* bench_cuda.c — `hydra bench --device cuda`: the card's ceilings measured in
 * the same run (bf16 and f32 GEMM, device copy bandwidth), the delta-rule
 * kernels at fla-org's benchmark shapes, and the default model's prefill,
 * batch-1 decode and batch-64 decode in bf16 and f32, each against those
 * ceilings. The peers (fla-org's Triton kernel, the Python original) run in
 * the same call from scratch copies outside the repository (docs/gpu.md). */
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "cli.h"
#include "hydralm_cuda.h"

typedef struct {
    double gemm16, gemm32, copy; /* TFLOP/s, TFLOP/s, GB/s */
} ceilings;

/* FLOPs of one prefill token of m: 2 x every matrix parameter the token
 * passes (the embedding counted once, as the head product), plus attention
 * (QK^T and PV over the window: 4 W H d per SWA layer) and the delta rule
 * (about 6 d^2 per head: decay, S k, rank-1 update, S q). */
static double flops_per_token(const hydra_model *m, int T) {
    const hydra_config *c = hydra_model_config(m);
    double d = hydra_config_head_dim(c), H = c->n_heads, f = 2.0 * (double)hydra_model_n_params(m);
    for (int i = 0; i < c->n_layers; i++) {
        char k = hydra_config_layer_kind(c, i);
        double span = k == 'D' ? 0 : (k == 'S' && c->window && c->window < T ? c->window : T / 2.0);
        f += k == 'D' ? 6.0 * H * d * d : 4.0 * span * H * d;
    }
    return f;
}

static int bench_model(FILE *out, const char *device, hydra_precision prec, const ceilings *cl, int quick) {
    hydra_config cfg = hydra_config_default();
    hydra_model *m = NULL;
    hydra_status st = hydra_model_create(&cfg, 1, &m);
    if (!st) st = hydra_model_to_device(m, device, prec);
    if (st) {
        hydra_model_free(m);
        return cli_fail("bench", "default model on the GPU", st);
    }
    const int T = 4096, V = cfg.vocab_size, reps = quick ? 3 : 7, steps = quick ? 64 : 256, BB = 64;
    int32_t *tok = malloc((size_t)T * BB * sizeof *tok);
    float *logits = malloc((size_t)BB * V * sizeof *logits);
    hydra_state *s = NULL, *bs[64] = {0};
    int rc = 1;
    if (!tok || !logits || hydra_state_create(m, &s)) goto done;
    for (int i = 0; i < T * BB; i++) tok[i] = (int32_t)((i * 7919u + 13u) % (unsigned)V);
    /* prefill: T tokens from an empty state, batch 1 */
    double tp[16], td[512];
    for (int r = -1; r < reps; r++) { /* r = -1: warm-up (plans, workspace) */
        hydra_state_reset(s);
        double t0 = hydra_now_seconds();
        if ((st = hydra_forward(m, tok, 1, T, &s, HYDRA_LOGITS_LAST, logits))) goto fail;
        if (r >= 0) tp[r] = hydra_now_seconds() - t0;
    }
    double pre = hydra_median(tp, reps);
    double pre_tflops = flops_per_token(m, T) * T / pre / 1e12;
    /* greedy decode, batch 1: hydra_step + argmax on the host, per token */
    int32_t t = tok[T - 1];
    for (int i = -8; i < steps; i++) {
        double t0 = hydra_now_seconds();
        if ((st = hydra_step(m, s, t, logits))) goto fail;
        int best = 0;
        for (int v = 1; v < V; v++)
            if (logits[v] > logits[best]) best = v;
        t = best;
        if (i >= 0) td[i] = hydra_now_seconds() - t0;
    }
    double dec = hydra_median(td, steps);
    double wbytes = (prec == HYDRA_PRECISION_F32 ? 4.0 : 2.0) * (double)hydra_model_n_params(m) +
                    2.0 * (double)hydra_model_state_bytes(m);
    /* batched decode: 64 sequences, one [64, 1] forward per step */
    for (int b = 0; b < BB; b++)
        if ((st = hydra_state_create(m, &bs[b]))) goto fail;
    if ((st = hydra_forward(m, tok, BB, 64, bs, HYDRA_LOGITS_LAST, logits))) goto fail; /* 64-token prompts */
    for (int i = -4; i < steps / 4; i++) {
        double t0 = hydra_now_seconds();
        if ((st = hydra_forward(m, tok + i + 8, BB, 1, bs, HYDRA_LOGITS_LAST, logits))) goto fail;
        if (i >= 0) td[i] = hydra_now_seconds() - t0;
    }
    double bdec = hydra_median(td, steps / 4);
    char b1[32], b2[32];
    fprintf(out, "%-5s  %11.0f  %6.1f  %5.1f%%  %9.0f  %7.3f  %6.0f  %5.1f%%  %11.0f  %s + %s\n",
            prec == HYDRA_PRECISION_F32 ? "f32" : "bf16", T / pre, pre_tflops,
            100 * pre_tflops / (prec == HYDRA_PRECISION_F32 ? cl->gemm32 : cl->gemm16), 1.0 / dec, 1e3 * dec,
            wbytes / dec / 1e9, 100 * wbytes / dec / 1e9 / cl->copy, BB / bdec,
            cli_bytes((double)hydra_model_device_bytes(m), b1, sizeof b1),
            cli_bytes(65.0 * (double)hydra_model_state_bytes(m), b2, sizeof b2));
    rc = 0;
    goto done;
fail:
    cli_fail("bench", "default model on the GPU", st);
done:
    for (int b = 0; b < BB; b++) hydra_state_free(bs[b]);
    hydra_state_free(s);
    free(tok);
    free(logits);
    hydra_model_free(m);
    return rc;
}

/* The delta-rule kernels at fla-org's benchmark shapes and at decode shapes. */
static int bench_delta(FILE *out, int dev, int reps) {
    hydra_status st;
    fprintf(out, "delta rule forward (f32 state)        kernel              ms      M tokens/s\n");
    const struct { int B, T, H, d; } shapes[] = {{8, 4096, 12, 64}, {4, 8192, 16, 128}, {1, 4096, 12, 64}, {1, 1, 12, 64}, {64, 1, 12, 64}, {1, 4, 12, 64}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (int kc = 0; kc < 4; kc++) {
            const char *kern = kc == 3 ? "chunked-tc-bf16" : kc == 2 ? "chunked-tc" : kc ? "chunked" : "recurrent";
            if (kc && shapes[i].T < 64) continue; /* the chunked kernel is for prefill */
            double ms;
            if ((st = hydra_cuda_bench_delta_rule(dev, kern, shapes[i].B, shapes[i].T, shapes[i].H, shapes[i].d, reps, &ms)))
                return cli_fail("bench", "delta rule", st);
            fprintf(out, "  B %2d x T %4d x H %2d x d %3d       %-16s %8.4f  %10.2f\n", shapes[i].B, shapes[i].T,
                    shapes[i].H, shapes[i].d, kern, ms, shapes[i].B * (double)shapes[i].T / (ms * 1e-3) / 1e6);
        }
    /* training: forward (as the bf16 training step runs it) + backward, at the two fla shapes. The step's
     * forward keeps its per-chunk work for the backward (fwd-keep, bwd-kept); bwd-tc recomputes it. */
    fprintf(out, "\ndelta rule forward + backward (training)  fwd ms   bwd ms  bwd-tc ms  fwd-keep ms  bwd-kept ms  "
                 "fwd+bwd M tokens/s (as trained)\n");
    for (size_t i = 0; i < 2; i++) {
        double f, b, btc, fk, bk;
        if ((st = hydra_cuda_bench_delta_rule(dev, "chunked-tc", shapes[i].B, shapes[i].T, shapes[i].H, shapes[i].d, reps, &f)) ||
            (st = hydra_cuda_bench_delta_rule(dev, "backward", shapes[i].B, shapes[i].T, shapes[i].H, shapes[i].d, reps, &b)) ||
            (st = hydra_cuda_bench_delta_rule(dev, "backward-tc", shapes[i].B, shapes[i].T, shapes[i].H, shapes[i].d, reps, &btc)) ||
            (st = hydra_cuda_bench_delta_rule(dev, "chunked-tc-keep", shapes[i].B, shapes[i].T, shapes[i].H, shapes[i].d, reps, &fk)) ||
            (st = hydra_cuda_bench_delta_rule(dev, "backward-kept", shapes[i].B, shapes[i].T, shapes[i].H, shapes[i].d, reps, &bk)))
            return cli_fail("bench", "delta rule backward", st);
        fprintf(out, "  B %2d x T %4d x H %2d x d %3d        %8.3f %8.3f %10.3f %12.3f %12.3f %16.2f\n", shapes[i].B,
                shapes[i].T, shapes[i].H, shapes[i].d, f, b, btc, fk, bk,
                shapes[i].B * (double)shapes[i].T / ((fk + bk) * 1e-3) / 1e6);
    }
    return 0;
}

/* Sampled generation (temperature 0.8, top-k 50, top-p 0.9) of the default
 * model shape in bf16 with vocabularies of 256 and 32768: the device sampler
 * (the decode graph returns B token ids) against the same model sampling on
 * the host (HYDRA_CUDA_SAMPLE=0 when it is placed: B x V logits copied back,
 * hydra_sample per row). Batch 1 (hydra_generate, median of 3) and batch 64
 * (hydra_generate_batch, one run), after a warm-up; tokens/s include the
 * 16-token prompts' prefill. "same" counts batch-1 tokens equal in both. */
static int bench_sampling(FILE *out, const char *device, int quick) {
    const int vocabs[] = {256, 32768}, NP = 16, N1 = quick ? 32 : 64, N64 = quick ? 8 : 16, BB = 64;
    fprintf(out, "sampled generation (T 0.8, top-k 50, top-p 0.9), default model 768x12, bf16\n");
    fprintf(out, "%6s  %12s  %14s  %6s  %13s  %15s  %6s  %s\n", "vocab", "b1 host t/s", "b1 device t/s", "ratio",
            "b64 host t/s", "b64 device t/s", "ratio", "same");
    int32_t *prompts = malloc((size_t)BB * NP * sizeof *prompts), *outb = malloc((size_t)BB * N64 * sizeof *outb);
    int32_t o1[2][64];
    for (int vi = 0; vi < 2; vi++) {
        double tps[2][2]; /* [host, device][b1, b64] */
        for (int dv = 0; dv < 2; dv++) {
            hydra_config cfg = hydra_config_default();
            cfg.vocab_size = vocabs[vi];
            hydra_model *m = NULL;
            hydra_status st = hydra_model_create(&cfg, 1, &m);
            if (!dv) setenv("HYDRA_CUDA_SAMPLE", "0", 1);
            if (!st) st = hydra_model_to_device(m, device, HYDRA_PRECISION_BF16);
            unsetenv("HYDRA_CUDA_SAMPLE");
            for (int i = 0; i < BB * NP; i++) prompts[i] = (int32_t)((i * 7919u + 13u) % (unsigned)cfg.vocab_size);
            hydra_gen_opts g = hydra_gen_opts_default();
            g.sample.temperature = 0.8f, g.sample.top_k = 50, g.sample.top_p = 0.9f;
            g.seed = 1;
            double t[4];
            size_t n = 0;
            for (int r = -1; !st && r < 3; r++) { /* r = -1: warm-up (plans, graphs) */
                g.max_new_tokens = N1;
                double t0 = hydra_now_seconds();
                st = hydra_generate(m, NULL, prompts, NP, &g, o1[dv], 64, &n);
                if (r >= 0) t[r] = hydra_now_seconds() - t0;
            }
            if (!st) tps[dv][0] = (double)n / hydra_median(t, 3);
            for (int r = -1; !st && r < 1; r++) {
                g.max_new_tokens = N64;
                double t0 = hydra_now_seconds();
                st = hydra_generate_batch(m, prompts, BB, NP, &g, outb);
                t[0] = hydra_now_seconds() - t0;
            }
            if (!st) tps[dv][1] = (double)BB * N64 / t[0];
            hydra_model_free(m);
            if (st) {
                free(prompts), free(outb);
                return cli_fail("bench", "sampled generation on the GPU", st);
            }
        }
        int same = 0;
        for (int i = 0; i < N1; i++) same += o1[0][i] == o1[1][i];
        fprintf(out, "%6d  %12.0f  %14.0f  %5.2fx  %13.0f  %15.0f  %5.2fx  %d/%d\n", vocabs[vi], tps[0][0], tps[1][0],
                tps[1][0] / tps[0][0], tps[0][1], tps[1][1], tps[1][1] / tps[0][1], same, N1);
    }
    free(prompts), free(outb);
    return 0;
}

int hydra_bench_cuda(FILE *out, const char *device, int quick, const char *only) {
    const int kernels = !only || !strcmp(only, "delta"), model = !only || !strcmp(only, "model");
    const int sampling = only && !strcmp(only, "sample");
    if (!kernels && !model && !sampling)
        return fprintf(stderr, "hydra bench: --only is delta, model or sample with --device cuda\n"), 2;
    int dev = strncmp(device, "cuda:", 5) == 0 ? atoi(device + 5) : 0;
    char name[256];
    hydra_status st = hydra_cuda_device_name(dev, name, sizeof name);
    if (st) return cli_fail("bench", device, st);
    if (sampling) {
        fprintf(out, "hydra bench --device %s --only sample — %s\n\n", device, name);
        return bench_sampling(out, device, quick);
    }
    const int reps = quick ? 5 : 15;
    ceilings cl = {0};
    if ((st = hydra_cuda_bench_gemm(dev, 8192, 8192, 8192, 1, reps, &cl.gemm16)) ||
        (st = hydra_cuda_bench_gemm(dev, 4096, 4096, 4096, 0, reps, &cl.gemm32)) ||
        (st = hydra_cuda_bench_copy(dev, (size_t)2 << 30, reps, &cl.copy)))
        return cli_fail("bench", "measuring the card", st);
    fprintf(out, "hydra bench --device %s — %s\n\n", device, name);
    fprintf(out, "card      bf16 GEMM 8192^3 %.0f TFLOP/s   f32 GEMM 4096^3 (no TF32) %.1f TFLOP/s   "
                 "device copy %.0f GB/s (read + write)\n\n", cl.gemm16, cl.gemm32, cl.copy);

    if (kernels && bench_delta(out, dev, reps)) return 1;
    if (!model) return 0;
    fprintf(out, "\ndefault model 768x12 (DDDS x 3, window 512), %s\n", name);
    fprintf(out, "%-5s  %11s  %6s  %6s  %9s  %7s  %6s  %6s  %11s  %s\n", "prec", "prefill t/s", "TFLOP", "%GEMM",
            "decode t/s", "ms/tok", "GB/s", "%copy", "b64 dec t/s", "device memory (model + 65 states)");
    if (bench_model(out, device, HYDRA_PRECISION_BF16, &cl, quick)) return 1;
    if (bench_model(out, device, HYDRA_PRECISION_F32, &cl, quick)) return 1;
    fprintf(out, "\n(prefill: 4096 tokens, batch 1, median of %d; TFLOP = model FLOPs (2 x params + attention + delta\n"
                 " rule) per second, %%GEMM vs the GEMM ceiling above in the same precision; decode: greedy, batch 1,\n"
                 " hydra_step + argmax per token, median; GB/s = (weights + 2 x state) per token, %%copy vs the copy\n"
                 " ceiling; b64 dec = 64 sequences, one [64, 1] forward per step, tokens/s in all. Targets (issue):\n"
                 " prefill >= 500K t/s, decode >= 3,000 t/s, batch-64 decode >= 100K t/s, all in bf16.)\n",
            quick ? 3 : 7);
    return 0;
}

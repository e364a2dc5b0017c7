/* bench_cuda_train.c — `hydra bench --train --device cuda`: one full training
 * step (hydra_model_loss_grad + hydra_optimizer_step, the model, gradients,
 * master weights and moments on the GPU) of the default 768 x 12 hybrid
 * (DDDS x 3, window 512, vocab 256) at the shapes, against the bf16
 * cuBLAS GEMM peak measured in the same run:
 *
 *   tokens/s = B*T / median step seconds (after warm-up steps)
 *   TFLOP/s  = hydra_bench_train_flops (6 x matmul params x tokens + attention
 *              + delta-rule terms; bench_train.c) / step seconds
 *   MFU      = TFLOP/s / the 8192^3 bf16 GEMM peak of this card in this run
 *
 * Peers (fla-org's GatedDeltaNetForCausalLM, the Python original) run in the
 * same call from scratch copies outside the repository (docs/gpu.md). */
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "cli.h"
#include "hydralm_cuda.h"
#include "hydralm_train.h"

typedef struct {
    int B, T;
    hydra_optimizer_kind opt;
    hydra_precision prec;
} shape;

/* Median seconds of one step; 0 after reporting a failure. */
static double time_step(const char *device, const hydra_config *c, const shape *sh, int warm, int reps,
                        double *loss) {
    hydra_model *m = NULL;
    hydra_optimizer *opt = NULL;
    hydra_optim_opts oo = hydra_optim_opts_default(sh->opt);
    const size_t BT = (size_t)sh->B * sh->T;
    int32_t *in = malloc(BT * 4), *tg = malloc(BT * 4);
    double ts[32], sec = 0;
    hydra_status st = !in || !tg ? HYDRA_ERR_NOMEM : hydra_model_create(c, 1, &m);
    if (!st) st = hydra_model_to_device(m, device, sh->prec);
    if (!st) st = hydra_optimizer_create(m, &oo, &opt);
    uint64_t s = 0x243F6A8885A308D3ULL;
    for (size_t i = 0; !st && i < BT; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        in[i] = (int32_t)((s >> 33) % (uint64_t)c->vocab_size);
        tg[i] = (int32_t)((s >> 41) % (uint64_t)c->vocab_size);
    }
    for (int i = 0; !st && i < warm + reps; i++) {
        double t0 = hydra_now_seconds();
        st = hydra_model_loss_grad(m, in, tg, NULL, sh->B, sh->T, NULL, loss, NULL);
        if (!st) st = hydra_optimizer_step(opt, m, NULL, NULL, NULL); /* returns after the device finished */
        if (i >= warm) ts[i - warm] = hydra_now_seconds() - t0;
    }
    if (st) cli_fail("bench", "GPU training step", st);
    else sec = hydra_median(ts, reps);
    hydra_optimizer_free(opt);
    hydra_model_free(m);
    free(in), free(tg);
    return sec;
}

int hydra_bench_cuda_train(FILE *out, const char *device, int quick) {
    int dev = strncmp(device, "cuda:", 5) == 0 ? atoi(device + 5) : 0;
    char name[256];
    hydra_status st = hydra_cuda_device_name(dev, name, sizeof name);
    if (st) return cli_fail("bench", device, st);
    const int reps = quick ? 3 : 7, warm = 2;
    double peak = 0;
    if ((st = hydra_cuda_bench_gemm(dev, 8192, 8192, 8192, 1, quick ? 5 : 15, &peak)))
        return cli_fail("bench", "measuring the card", st);
    hydra_config c = hydra_config_default();
    fprintf(out, "hydra bench --train --device %s — %s\n\n", device, name);
    fprintf(out, "card: bf16 GEMM 8192^3 %.0f TFLOP/s (cuBLASLt, this run)\n\n", peak);
    fprintf(out, "default model %dx%d (%s), vocab %d, %zu-step medians after %d warm-up steps\n", c.d_model,
            c.n_layers, "DDDS x 3, window 512", c.vocab_size, (size_t)reps, warm);
    fprintf(out, "%-5s %-6s %10s %10s %12s %9s %7s %8s\n", "prec", "optim", "B x T", "step ms", "tokens/s", "TFLOP/s",
            "MFU", "loss");
    const shape shapes[] = {{16, 2048, HYDRA_OPT_ADAMW, HYDRA_PRECISION_BF16},
                            {16, 2048, HYDRA_OPT_MUON, HYDRA_PRECISION_BF16},
                            {8, 4096, HYDRA_OPT_ADAMW, HYDRA_PRECISION_BF16},
                            {4, 2048, HYDRA_OPT_ADAMW, HYDRA_PRECISION_F32}};
    int rc = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const shape *sh = &shapes[i];
        double loss = 0, n_mm;
        double sec = time_step(device, &c, sh, warm, reps, &loss);
        if (sec <= 0) {
            rc = 1;
            continue;
        }
        double tf = hydra_bench_train_flops(&c, sh->B, sh->T, &n_mm) / sec / 1e12;
        char bt[32];
        snprintf(bt, sizeof bt, "%d x %d", sh->B, sh->T);
        fprintf(out, "%-5s %-6s %10s %10.1f %12.0f %9.1f %6.1f%% %8.4f\n",
                sh->prec == HYDRA_PRECISION_F32 ? "f32" : "bf16", sh->opt == HYDRA_OPT_MUON ? "muon" : "adamw", bt,
                1e3 * sec, sh->B * (double)sh->T / sec, tf, 100.0 * tf / peak, loss);
        fflush(out);
    }
    fprintf(out, "\n(MFU = model TFLOP/s / the bf16 GEMM peak above, f32 rows too; target: >= 35%% in bf16 at the\n"
                 " largest B x T that fits. Peers: fla-org GatedDeltaNetForCausalLM and the Python original, same card,\n"
                 " same call: bench/peers in docs/gpu.md.)\n");
    return rc;
}

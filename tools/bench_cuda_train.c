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
#include "comm_nccl.h"
#include "hydralm_dist.h"
#include "hydralm_cuda.h"
#include "hydralm_train.h"

typedef struct {
    int B, T;
    hydra_optimizer_kind opt;
    hydra_precision prec;
} shape;

/* Median seconds of one step; 0 after reporting a failure. */
static double time_step(const char *device, const hydra_config *c, const shape *sh, int warm, int reps,
                        double *loss, double phase[5]) {
    hydra_model *m = NULL;
    hydra_optimizer *opt = NULL;
    hydra_optim_opts oo = hydra_optim_opts_default(sh->opt);
    const size_t BT = (size_t)sh->B * sh->T;
    int32_t *in = malloc(BT * 4), *tg = malloc(BT * 4);
    double ts[32], ph[5][32], sec = 0;
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
        double ms[5];
        if (!st && i >= warm) st = hydra_cuda_train_phases(m, ms);
        for (int k = 0; !st && i >= warm && k < 5; k++) ph[k][i - warm] = ms[k];
    }
    if (st) cli_fail("bench", "GPU training step", st);
    else sec = hydra_median(ts, reps);
    const char *rep = getenv("HYDRA_BENCH_GEMM_PLANS"); /* "1": the training products' cuBLASLt plans after the row */
    static char plans[16384];
    if (!st && rep && strcmp(rep, "1") == 0 && !hydra_cuda_train_gemm_report(m, plans, sizeof plans))
        fprintf(stderr, "gemm plans (%s %s %d x %d):\n%s", sh->prec == HYDRA_PRECISION_BF16 ? "bf16" : "f32",
                sh->opt == HYDRA_OPT_MUON ? "muon" : "adamw", sh->B, sh->T, plans);
    for (int k = 0; !st && k < 5; k++) phase[k] = hydra_median(ph[k], reps);
    hydra_optimizer_free(opt);
    hydra_model_free(m);
    free(in), free(tg);
    return sec;
}

/* ------------------------------------------- data parallel, world size 1 */
/* Random tokens, every position scored (the rows above use the same). */
static hydra_status random_batch(void *ctx, int split, hydra_rng *rng, int B, int T, int32_t *in, int32_t *tg,
                                 uint8_t *mask) {
    const int V = *(const int *)ctx;
    (void)split;
    for (size_t i = 0; i < (size_t)B * T; i++) {
        in[i] = (int32_t)(hydra_rng_next(rng) % (uint64_t)V);
        tg[i] = (int32_t)(hydra_rng_next(rng) % (uint64_t)V);
        mask[i] = 1;
    }
    return HYDRA_OK;
}

/* Median seconds of a trainer step (plain: comm NULL; else data-parallel
 * over comm), and the median seconds a step spent in collectives. */
static double time_trainer(const char *device, const hydra_config *c, const shape *sh, const hydra_comm *comm,
                           int warm, int reps, double *comm_s) {
    hydra_model *m = NULL;
    hydra_trainer *t = NULL;
    hydra_train_opts o;
    memset(&o, 0, sizeof o);
    o.optim = hydra_optim_opts_default(sh->opt);
    o.batch = sh->B, o.seq = sh->T, o.seed = 1;
    int V = c->vocab_size;
    hydra_task task = {"random tokens", &V, 1, random_batch};
    hydra_dist_opts d = {comm, 0, 0};
    double ts[32], cs[32], sec = 0;
    hydra_status st = hydra_model_create(c, 1, &m);
    if (!st) st = hydra_model_to_device(m, device, sh->prec);
    if (!st) st = hydra_trainer_create_dist(m, task, &o, &d, &t);
    for (int i = 0; !st && i < warm + reps; i++) {
        double t0 = hydra_now_seconds(), c0 = hydra_trainer_comm_seconds(t);
        st = hydra_trainer_step(t, NULL);
        if (i >= warm) ts[i - warm] = hydra_now_seconds() - t0, cs[i - warm] = hydra_trainer_comm_seconds(t) - c0;
    }
    if (st) cli_fail("bench", comm ? "data-parallel GPU step (NCCL)" : "GPU trainer step", st);
    else sec = hydra_median(ts, reps), *comm_s = hydra_median(cs, reps);
    hydra_trainer_free(t);
    hydra_model_free(m);
    return sec;
}

/* The NCCL path at world size 1 against the plain trainer, same shape, same
 * run: what the data-parallel machinery costs before there is anyone to
 * talk to (the layer-by-layer sums, the wait, the host loss sum). */
static int bench_nccl_world1(FILE *out, const char *device, int dev, const hydra_config *c, int warm, int reps) {
    const shape sh = {16, 2048, HYDRA_OPT_ADAMW, HYDRA_PRECISION_BF16};
    hydra_comm self = cli_comm_self(), nc;
    char err[400];
    fprintf(out, "\ndata parallel at world size 1 (bf16 AdamW %d x %d, trainer steps, %d-step medians):\n", sh.B,
            sh.T, reps);
    if (cli_nccl_init(&self, dev, 600, &nc, err, sizeof err) != 0) {
        fprintf(out, "  NCCL path not measured: %s\n", err);
        return 0;
    }
    double cp = 0, cn = 0;
    double plain = time_trainer(device, c, &sh, NULL, warm, reps, &cp);
    double nccl = time_trainer(device, c, &sh, &nc, warm, reps, &cn);
    cli_nccl_free(&nc);
    if (plain <= 0 || nccl <= 0) return 1;
    fprintf(out, "  %-34s %9.1f ms\n  %-34s %9.1f ms  (%.3fx the plain step; %.2f ms a step in collectives,\n"
                 "  %-34s              the wait for the last sums included)\n",
            "plain trainer", 1e3 * plain, "NCCL path (one rank, layer sums)", 1e3 * nccl, nccl / plain, 1e3 * cn, "");
    return 0;
}

int hydra_bench_cuda_train(FILE *out, const char *device, int quick, int step_only) {
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
    /* 16 x 2048: the peers' shape; 32 x 2048: twice the tokens a step (activations ~43 GB counted from the
       layout, docs/gpu.md: the largest power-of-two batch an 80 GB card holds) */
    const shape shapes[] = {{16, 2048, HYDRA_OPT_ADAMW, HYDRA_PRECISION_BF16},
                            {32, 2048, HYDRA_OPT_ADAMW, HYDRA_PRECISION_BF16},
                            {16, 2048, HYDRA_OPT_MUON, HYDRA_PRECISION_BF16},
                            {8, 4096, HYDRA_OPT_ADAMW, HYDRA_PRECISION_BF16},
                            {4, 2048, HYDRA_OPT_ADAMW, HYDRA_PRECISION_F32}};
    int rc = 0;
    for (size_t i = 0; i < (step_only ? 1 : sizeof shapes / sizeof shapes[0]); i++) {
        const shape *sh = &shapes[i];
        double loss = 0, n_mm, ph[5];
        double sec = time_step(device, &c, sh, warm, reps, &loss, ph);
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
        fprintf(out, "      device ms (events): forward %.1f, loss %.1f, backward %.1f, optimizer %.1f; step on the "
                     "device %.1f of %.1f wall\n",
                ph[0], ph[1], ph[2], ph[3], ph[4], 1e3 * sec);
        fflush(out);
    }
    if (!step_only) rc |= bench_nccl_world1(out, device, dev, &c, warm, reps);
    fprintf(out, "\n(MFU = model TFLOP/s / the bf16 GEMM peak above, f32 rows too; target: >= 35%% in bf16 at the\n"
                 " largest B x T that fits. Peers: fla-org GatedDeltaNetForCausalLM and the Python original, same card,\n"
                 " same call: bench/peers in docs/gpu.md.)\n");
    return rc;
}

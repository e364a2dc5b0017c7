/* bench_stream.c — streaming-engine benchmark (`hydra bench --stream-tokens N`):
 * streams N tokens through a model in chunks of 512 and reports throughput,
 * the state's byte size (start and end: it must not change), the process's
 * peak resident memory after warm-up and at the end, and the per-token time
 * around 4K tokens against the per-token time at the end of the stream
 * (medians over 16 chunks each, measured in the same run); then greedy
 * decode speed (64 tokens after the stream). Every model runs with f32 and
 * with bf16 weights (loaded with hydra_model_load_bf16), side by side. Each
 * row runs in its own process so that its peak RSS is its own. With a GPU
 * device the rows are the default model in the device's bf16 and f32
 * precisions, fed 4,096 tokens per call, and the table adds the device
 * memory the model and its state hold. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "cli.h"
#include "hydralm_stream.h"

#define BS_CHUNK_MAX 4096
#define BS_WIN 16

static void bench_one(FILE *out, const char *name, const char *path, long long tokens,
                      hydra_weights_precision weights, hydra_quant quant, const char *device) {
    hydra_model *m = NULL;
    hydra_stream *s = NULL;
    hydra_stream_opts so = hydra_stream_opts_default();
    const int gpu = strcmp(device, "cpu") != 0, BS_CHUNK = gpu ? 4096 : 512;
    so.chunk = BS_CHUNK;
    hydra_status st;
    if (gpu) { /* the device's precision decides; the host copy stays f32 */
        st = hydra_model_load(path, &m);
        if (!st) st = hydra_model_to_device(m, device, weights == HYDRA_WEIGHTS_BF16 ? HYDRA_PRECISION_BF16 : HYDRA_PRECISION_F32);
    } else {
        so.weights = weights;
        st = quant ? hydra_model_load_quant(path, quant, &m)
                   : weights == HYDRA_WEIGHTS_BF16 ? hydra_model_load_bf16(path, &m) : hydra_model_load(path, &m);
    }
    if (!st) st = hydra_stream_create(m, &so, &s);
    if (st) {
        fprintf(out, "%-16s  error: %s\n", name, hydra_last_error());
        hydra_model_free(m);
        return;
    }
    const int V = hydra_model_config(m)->vocab_size;
    static int32_t tok[BS_CHUNK_MAX];
    float *lg = malloc((size_t)V * sizeof *lg);
    long long n_chunks = tokens / BS_CHUNK;
    if (n_chunks < 1) n_chunks = 1;
    long long warm_at = n_chunks / 16 > 128 ? 128 : n_chunks / 16; /* 64K tokens, or 1/16 of a short run */
    double early[BS_WIN], late[BS_WIN];
    int n_early = 0, n_late = 0, nonfinite = 0;
    long hwm_warm = hydra_process_memory_kib("VmHWM");
    size_t bytes0 = hydra_state_bytes(hydra_stream_state(s)), bytes_max = bytes0;
    double t_start = hydra_now_seconds(), t_report = t_start;
    uint32_t x = 12345;
    for (long long ci = 0; ci < n_chunks; ci++) {
        for (int i = 0; i < BS_CHUNK; i++) {
            x = x * 1664525u + 1013904223u;
            tok[i] = (int32_t)((x >> 8) % (uint32_t)V);
        }
        double t0 = hydra_now_seconds();
        st = hydra_stream_feed(s, tok, BS_CHUNK);
        double dt = hydra_now_seconds() - t0;
        if (st) {
            fprintf(out, "%-16s  error after %lld tokens: %s\n", name, ci * BS_CHUNK, hydra_last_error());
            break;
        }
        long long done = (ci + 1) * BS_CHUNK;
        if (done > 4096 && n_early < BS_WIN) early[n_early++] = dt;
        if (ci >= n_chunks - BS_WIN) late[n_late++] = dt;
        size_t b = hydra_state_bytes(hydra_stream_state(s));
        if (b > bytes_max) bytes_max = b;
        if (hydra_stream_last_logits(s, lg) == HYDRA_OK)
            for (int i = 0; i < V; i++) nonfinite += !(lg[i] == lg[i] && lg[i] - lg[i] == 0);
        if (ci + 1 == warm_at) hwm_warm = hydra_process_memory_kib("VmHWM");
        if (hydra_now_seconds() - t_report > 30) {
            t_report = hydra_now_seconds();
            fprintf(stderr, "[bench stream] %s: %lld / %lld tokens, %.0f tokens/s\n", name, done,
                    n_chunks * BS_CHUNK, done / (t_report - t_start));
        }
    }
    hydra_stream_stats ss;
    hydra_stream_get_stats(s, &ss);
    long hwm_end = hydra_process_memory_kib("VmHWM");
    /* greedy decode after the stream */
    hydra_gen_opts g = hydra_gen_opts_default();
    g.sample.temperature = 0;
    g.max_new_tokens = 64;
    int32_t gen[64];
    size_t n_gen = 0;
    double td = hydra_now_seconds();
    if (!st) st = hydra_stream_extend_and_generate(s, tok, 1, &g, gen, 64, &n_gen);
    td = hydra_now_seconds() - td;
    double e = hydra_median(early, n_early) / BS_CHUNK, l = hydra_median(late, n_late) / BS_CHUNK;
    char b0[32], b1[32], r0[32], r1[32], wb[32];
    char label[48];
    snprintf(label, sizeof label, "%s %s", name, quant ? hydra_quant_name(quant) : weights == HYDRA_WEIGHTS_BF16 ? "bf16" : "f32");
    if (gpu) { /* device memory: the model's copy and workspace, plus the state's mirror */
        char db[32];
        fprintf(out, "%-20s device memory %s (model + workspace %s, state %s)\n", label,
                cli_bytes((double)(hydra_model_device_bytes(m) + bytes0), db, sizeof db),
                cli_bytes((double)hydra_model_device_bytes(m), wb, sizeof wb), cli_bytes((double)bytes0, b0, sizeof b0));
    }
    fprintf(out, "%-20s %10s %11llu  %8.1f  %9.0f  %10s  %10s  %9s  %9s  %8.2f  %8.2f  %6.3f  %9.1f  %s\n", label,
            cli_bytes((double)hydra_model_weight_bytes(m), wb, sizeof wb), (unsigned long long)ss.tokens, ss.seconds, ss.tokens_per_s, cli_bytes((double)bytes0, b0, sizeof b0),
            cli_bytes((double)bytes_max, b1, sizeof b1), cli_bytes(1024.0 * hwm_warm, r0, sizeof r0),
            cli_bytes(1024.0 * hwm_end, r1, sizeof r1), 1e6 * e, 1e6 * l, e > 0 ? l / e : 0,
            !st && td > 0 ? (double)n_gen / td : 0.0, nonfinite ? "NON-FINITE LOGITS" : "all finite");
    fflush(out);
    free(lg);
    hydra_stream_free(s);
    hydra_model_free(m);
}

/* Run fn in a child process (its own peak RSS); 0 if it exited cleanly. */
static int in_child(FILE *out, void (*fn)(void *), void *arg) {
    fflush(out), fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        fn(arg);
        fflush(out), fflush(stderr);
        _exit(0);
    }
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) return -1;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

typedef struct {
    FILE *out;
    const char *name, *path;
    const hydra_config *cfg;
    long long tokens;
    hydra_weights_precision weights;
    hydra_quant quant;
    const char *device;
} row_job;

static void save_model_job(void *a) {
    row_job *j = a;
    hydra_model *m = NULL;
    hydra_status st = hydra_model_create(j->cfg, 1, &m);
    if (!st) st = hydra_model_save(m, j->path);
    hydra_model_free(m);
    if (st) {
        fprintf(j->out, "%-20s error: %s\n", j->name, hydra_last_error());
        fflush(j->out);
        _exit(1);
    }
}
static void row_job_run(void *a) {
    row_job *j = a;
    bench_one(j->out, j->name, j->path, j->tokens, j->weights, j->quant, j->device);
}

/* Every precision of one config (f32, bf16; on the CPU also int8 and int4):
 * the seeded model is written to a temporary checkpoint once, then each row
 * loads it (as a user would) in its own process. */
static void bench_config(FILE *out, const char *name, const hydra_config *cfg, long long tokens, const char *device) {
    char path[64];
    snprintf(path, sizeof path, "/tmp/hydra-bench-stream-%d.safetensors", (int)getpid());
    row_job j = {out, name, path, cfg, tokens, HYDRA_WEIGHTS_F32, HYDRA_QUANT_NONE, device};
    const int cpu = strcmp(device, "cpu") == 0;
    if (in_child(out, save_model_job, &j) == 0)
        for (int r = 0; r < (cpu ? 4 : 2); r++) { /* on a GPU its default precision (bf16) first */
            j.weights = r < 2 && (r == 0) != cpu ? HYDRA_WEIGHTS_BF16 : HYDRA_WEIGHTS_F32;
            j.quant = r == 2 ? HYDRA_QUANT_INT8 : r == 3 ? HYDRA_QUANT_INT4 : HYDRA_QUANT_NONE;
            if (in_child(out, row_job_run, &j))
                fprintf(out, "%-20s error: the %s run failed\n", name,
                        j.quant ? hydra_quant_name(j.quant) : j.weights == HYDRA_WEIGHTS_BF16 ? "bf16" : "f32");
        }
    remove(path);
}

void hydra_bench_stream(FILE *out, long long tokens, int default_config, const char *device) {
    hydra_config small = hydra_config_default();
    small.d_model = 256;
    small.n_layers = 4;
    small.n_heads = 4;
    small.head_dim = 64;
    int gpu = strcmp(device, "cpu") != 0;
    fprintf(out, "streaming engine: %lld tokens per model, chunk %d, on %s (%s)\n", tokens, gpu ? 4096 : 512, device,
            hydra_blas_info());
    fprintf(out, "%-20s %10s %11s  %8s  %9s  %10s  %10s  %9s  %9s  %8s  %8s  %6s  %9s  %s\n", "model", "weights", "tokens",
            "seconds", "tokens/s", "state@0", "state max", "RSS@warm", "RSS@end", "us/t@4K", "us/t@end", "ratio",
            "decode/s", "logits");
    if (!gpu) bench_config(out, "small 256x4", &small, tokens, device);
    if (default_config || gpu) {
        hydra_config d = hydra_config_default();
        bench_config(out, "default 768x12", &d, tokens, device);
    }
    fprintf(out,
            "(weights = bytes of weights in memory; state@0 / state max: hydra_state_bytes at the start / largest seen; RSS = process peak resident\n"
            " memory (VmHWM) after warm-up (64K tokens) and at the end; us/t = median per-token time over %d\n"
            " chunks just after 4K tokens and over the last %d chunks; ratio = end / 4K; decode/s = greedy\n"
            " tokens/s of 64 tokens generated after the stream; bf16 = model loaded with hydra_model_load_bf16,\n"
            " int8 / int4 = with hydra_model_load_quant (docs/quantization.md)\n"
            " (on a GPU: the device's bf16 precision, f32 = its all-f32 mode);\n"
            " each row is its own process, reading the same seeded checkpoint.)\n",
            BS_WIN, BS_WIN);
}

/*
 * hydralm.h — public API of libhydralm, a hybrid Gated DeltaNet + sliding-window
 * attention language model in C11.
 *
 * Quick start (error checks elided):
 *
 *   hydra_config cfg = hydra_config_default();
 *   hydra_model *m;  hydra_model_create(&cfg, 0, &m);   // or hydra_model_load(path, &m)
 *   hydra_gen_opts g = hydra_gen_opts_default();
 *   g.max_new_tokens = 64; g.sample.temperature = 0.8f; g.on_token = my_print_cb;
 *   int32_t out[64]; size_t n_out;
 *   hydra_generate(m, NULL, prompt_ids, n_prompt, &g, out, 64, &n_out);
 *   hydra_model_free(m);
 *
 * Conventions: every function returns a hydra_status; on failure
 * hydra_last_error() describes what went wrong (thread-local). The library never
 * prints and never exits. Sizes are size_t. Tensors are row-major float32.
 * Shape notation: B batch, T tokens, C d_model, H heads, dk = dv = head_dim,
 * L layers, V vocab, W SWA window, K conv width, F SwiGLU hidden width.
 */
#ifndef HYDRALM_H
#define HYDRALM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HYDRA_VERSION_STRING "0.1.0"
#define HYDRA_MAX_LAYERS 256
/* The largest position (tokens consumed) a state may reach: 2^53, up to which
 * every position is exact in the double RoPE angle and no position
 * arithmetic can overflow. Loaders refuse a state or bank file beyond it; a
 * forward that would pass it fails with HYDRA_ERR_ARG and leaves the state
 * as it was (reset the state to go on). At 10^6 tokens/s that is 285 years. */
#define HYDRA_MAX_POSITION ((uint64_t)1 << 53)
/* The largest sliding window (config field `window`), in tokens: bounds the
 * ring a state allocates per SWA layer (2 x window x heads x head_dim floats). */
#define HYDRA_MAX_WINDOW 65536

/* ---------------------------------------------------------------- errors */
typedef enum {
    HYDRA_OK = 0,
    HYDRA_ERR_ARG = 1,      /* invalid argument (NULL, out of range, ...) */
    HYDRA_ERR_NOMEM = 2,    /* allocation failed */
    HYDRA_ERR_IO = 3,       /* file could not be read or written */
    HYDRA_ERR_FORMAT = 4,   /* file contents are malformed or inconsistent */
    HYDRA_ERR_CONFIG = 5,   /* invalid model configuration */
    HYDRA_ERR_MISMATCH = 6, /* objects that must agree do not (model vs state, ...) */
    HYDRA_ERR_DEVICE = 7,   /* a GPU call failed, no GPU is present, or this build has no GPU backend */
    HYDRA_ERR_CANCELLED = 8, /* a long call stopped early: its cancel flag was raised (7 is HYDRA_ERR_DEVICE, the GPU backend's) */
} hydra_status;

/* Message describing the most recent failure on this thread ("" if none). */
const char *hydra_last_error(void);
/* Short name of a status code ("ok", "invalid argument", ...). */
const char *hydra_status_str(hydra_status s);

/* Cooperative cancellation, per calling thread (like hydra_last_error). While
 * *flag is non-zero, the long calls made on this thread stop at their next
 * check and return HYDRA_ERR_CANCELLED: hydra_generate and
 * hydra_stream_extend_and_generate (per prompt chunk and per token),
 * hydra_stream_feed (per chunk), hydra_spec_generate (per round),
 * hydra_trainer_step (before the step) and hydra_claims_run (between claims).
 * Another thread raises the flag (e.g. a binding's Ctrl-C handler); the
 * library only reads it. NULL (the default) = never cancelled. Work already
 * done stays done: a cancelled feed keeps the chunks it consumed, a cancelled
 * generate the tokens it wrote (*n_out). */
void hydra_set_cancel_flag(const volatile int *flag);

/* ---------------------------------------------------------------- config */
/* Layer kinds in a pattern string. */
#define HYDRA_LAYER_DELTANET 'D' /* Gated DeltaNet */
#define HYDRA_LAYER_SWA 'S'      /* sliding-window attention (window = cfg.window) */
#define HYDRA_LAYER_ATTN 'A'     /* full causal attention (unbounded cache) */

typedef struct {
    int d_model;      /* C */
    int n_layers;     /* L */
    int n_heads;      /* H */
    int head_dim;     /* dk = dv; 0 in a config file means d_model / n_heads */
    int vocab_size;   /* V (256 = byte level) */
    int swa_every;    /* layer i is SWA when (i+1) % swa_every == 0; 0 = no SWA */
    char pattern[HYDRA_MAX_LAYERS + 1]; /* optional explicit schedule, e.g. "DDDS"; overrides swa_every */
    int window;       /* W, SWA window in tokens including the query; 0 = unbounded */
    int conv_width;   /* K, causal depthwise conv width in DeltaNet layers */
    int mlp_multiple; /* F = round_up(8*C/3, mlp_multiple) */
    float norm_eps;   /* RMSNorm epsilon (1e-5) */
    float l2_eps;     /* L2-norm epsilon for q/k in DeltaNet (1e-6) */
    int tie_embeddings; /* 1: logits = h . embed^T (no lm_head tensor) */
    float init_std;   /* std of linear/embedding init (0.02) */
    float rope_base;  /* RoPE base (10000) */
    /* DeltaNet decay-gate init: dt ~ logU(init_dt_min, init_dt_max) sets dt_bias
     * (1e-3, 1e-1 as in Mamba). Smaller dt = slower decay at init: recall over
     * hundreds of tokens (MQAR at L = 256) trains only when memories survive
     * that far from the start. */
    float init_dt_min, init_dt_max;
} hydra_config;

/* d_model 768, 12 layers, 12 heads, head_dim 64, swa_every 4, window 512, vocab 256. */
hydra_config hydra_config_default(void);
/* Checks every field; the error message names the offending field. */
hydra_status hydra_config_validate(const hydra_config *cfg);
/* Kind of layer i (HYDRA_LAYER_*), after applying pattern / swa_every. */
char hydra_config_layer_kind(const hydra_config *cfg, int layer);
/* Effective head dim, SwiGLU width F and the full layer schedule as a string. */
int hydra_config_head_dim(const hydra_config *cfg);
int hydra_config_mlp_hidden(const hydra_config *cfg);
/* Parse a JSON object (keys = field names above); missing keys keep *cfg's values. */
hydra_status hydra_config_from_json(const char *json, hydra_config *cfg);
hydra_status hydra_config_load_json(const char *path, hydra_config *cfg);
/* Serialise to a JSON string; free with hydra_free(). */
hydra_status hydra_config_to_json(const hydra_config *cfg, char **json_out);
void hydra_free(void *p);
/* Small utilities for timing (the library's benchmarks and the CLI share them):
 * a monotonic wall clock in seconds, and the median of x[n] (sorts x in
 * place; NAN for n <= 0). */
double hydra_now_seconds(void);
double hydra_median(double *x, int n);

/* ----------------------------------------------------------------- model */
typedef struct hydra_model hydra_model;

typedef struct {
    const char *name; /* checkpoint name, e.g. "blocks.0.gdn.q_proj.weight" */
    int ndim;
    int64_t shape[2];
    float *data;      /* points into the model's parameter arena */
    size_t numel;
} hydra_tensor;

/* Create a model with deterministic seeded initialisation (DESIGN §2). */
hydra_status hydra_model_create(const hydra_config *cfg, uint64_t seed, hydra_model **out);
void hydra_model_free(hydra_model *m);
const hydra_config *hydra_model_config(const hydra_model *m);
size_t hydra_model_n_params(const hydra_model *m);
int hydra_model_n_tensors(const hydra_model *m);
hydra_status hydra_model_tensor(const hydra_model *m, int i, hydra_tensor *out);
hydra_status hydra_model_find_tensor(const hydra_model *m, const char *name, hydra_tensor *out);
/* 64-bit FNV-1a hash of the config JSON and every weight byte. */
uint64_t hydra_model_fingerprint(const hydra_model *m);

/* Checkpoints: safetensors with the config in __metadata__["hydralm.config"].
 * A quantised model (hydra_model_load_quant) saves its quantised tensors and
 * scales (format_version 2; docs/formats.md), which hydra_model_load refuses. */
hydra_status hydra_model_save(const hydra_model *m, const char *path);
hydra_status hydra_model_load(const char *path, hydra_model **out);
/* Inference-only load: the matrices (projections, MLP, head) are read
 * straight into bf16 (round to nearest even) and never held in f32, about half
 * the memory of hydra_model_load; every forward multiplies by them (the
 * kernels of HYDRA_WEIGHTS_BF16). Training, saving, the reference forward and
 * reading those tensors are refused with an error. The fingerprint is the f32
 * file's, so state and bank files move freely between the two. */
hydra_status hydra_model_load_bf16(const char *path, hydra_model **out);
/* 1 if m holds its matrices in bf16 only (hydra_model_load_bf16), else 0. */
int hydra_model_is_bf16(const hydra_model *m);
/* Bytes of weights m holds in memory (its f32, bf16 and quantised arenas). */
size_t hydra_model_weight_bytes(const hydra_model *m);

/* Quantised matrices for CPU decode (docs/quantization.md): every matrix the
 * forward multiplies by (projections, MLP, head) held as int8 or int4 values
 * in blocks of HYDRA_QUANT_BLOCK along a row, one bf16 scale per block. */
typedef enum {
    HYDRA_QUANT_NONE = 0,
    HYDRA_QUANT_INT8 = 1, /* 34 bytes per 32 weights */
    HYDRA_QUANT_INT4 = 2, /* 18 bytes per 32 weights */
} hydra_quant;
#define HYDRA_QUANT_BLOCK 32
/* Inference-only load with quantised matrices. From an f32 checkpoint, q
 * (INT8 or INT4) quantises the matrices as they are read (the f32 matrices
 * are never held: peak memory is the quantised model + a row buffer); the
 * fingerprint is the f32 file's, like hydra_model_load_bf16. A quantised
 * checkpoint (hydra_model_save of such a model) loads with q = its format or
 * HYDRA_QUANT_NONE; q = NONE on an f32 checkpoint is plain hydra_model_load.
 * Training, the reference forward, reading the quantised tensors and moving
 * the model to a GPU are refused with an error. */
hydra_status hydra_model_load_quant(const char *path, hydra_quant q, hydra_model **out);
/* HYDRA_QUANT_INT8 / _INT4 if m holds its matrices quantised, else NONE. */
hydra_quant hydra_model_quant(const hydra_model *m);
/* "none", "int8", "int4"; and back (HYDRA_ERR_ARG for an unknown name). */
const char *hydra_quant_name(hydra_quant q);
hydra_status hydra_quant_parse(const char *name, hydra_quant *out);

/* --------------------------------------------------------------- devices */
/* A model lives on one device: "cpu" (always) or "cuda" / "cuda:N" (builds
 * with the CUDA backend, on a machine with an NVIDIA GPU). Every entry point
 * (hydra_forward, hydra_step, hydra_generate, the streaming engine,
 * speculative decoding, FactBank mounts) runs where the model lives; states
 * follow their model (a state used by a model on another device is moved
 * there on first use, so state files and banks load anywhere). The host copy
 * of the weights is kept (save, fingerprint, CPU fallbacks). */
typedef enum {
    HYDRA_PRECISION_DEFAULT = 0, /* bf16 on a GPU; f32 on the CPU */
    HYDRA_PRECISION_F32 = 1,     /* everything f32, tensor cores off (tests, exactness) */
    HYDRA_PRECISION_BF16 = 2,    /* bf16 weights and GEMM inputs, f32 accumulation, f32 state */
} hydra_precision;

/* Move m to `device` ("cpu", "cuda", "cuda:N") with the given precision
 * (ignored for "cpu"). Moving again re-uploads the host weights. Fails with
 * HYDRA_ERR_DEVICE and a clear message without a GPU or a CUDA build. */
hydra_status hydra_model_to_device(hydra_model *m, const char *device, hydra_precision precision);
/* "cpu" or "cuda:N". */
const char *hydra_model_device(const hydra_model *m);
/* HYDRA_PRECISION_F32 on the CPU; the device precision otherwise. */
hydra_precision hydra_model_precision(const hydra_model *m);
/* Bytes of device memory the model holds now (weights + workspace); 0 on the CPU. */
size_t hydra_model_device_bytes(const hydra_model *m);
/* 1 if this build has the CUDA backend. */
int hydra_cuda_compiled(void);
/* Number of usable CUDA devices (0 without a GPU or without the backend). */
int hydra_cuda_device_count(void);
/* "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, 79.1 GiB)" for device i. */
hydra_status hydra_cuda_device_name(int i, char *buf, size_t cap);

/* ----------------------------------------------------------------- state */
/* Everything a sequence needs to continue: per DeltaNet layer S [H,dv,dk] and
 * conv tails [K-1, channels]; per SWA layer a K/V ring [W,H,dk] x2; the
 * absolute position. Its size depends only on the config (full-attention
 * layers, window 0, are the exception: their cache grows with the context). */
typedef struct hydra_state hydra_state;

hydra_status hydra_state_create(const hydra_model *m, hydra_state **out);
void hydra_state_free(hydra_state *s);
void hydra_state_reset(hydra_state *s);
/* dst <- src (snapshot / restore). Both must belong to the same config. */
hydra_status hydra_state_copy(hydra_state *dst, const hydra_state *src);
size_t hydra_state_bytes(const hydra_state *s);
/* Bytes of a fresh state for this model (excluding growth of full-attention caches). */
size_t hydra_model_state_bytes(const hydra_model *m);
uint64_t hydra_state_position(const hydra_state *s);

/* --------------------------------------------------------------- forward */
typedef enum {
    HYDRA_LOGITS_NONE = 0, /* only advance the states */
    HYDRA_LOGITS_LAST = 1, /* logits [B, V] of the last position of each sequence */
    HYDRA_LOGITS_ALL = 2,  /* logits [B, T, V] */
} hydra_logits_mode;

/* Forward over B sequences of T tokens (tokens [B, T]). states: NULL (each
 * sequence starts from an empty state, nothing is kept) or B state pointers
 * that are read as the incoming state and overwritten with the outgoing one. */
hydra_status hydra_forward(const hydra_model *m, const int32_t *tokens, int B, int T,
                           hydra_state *const *states, hydra_logits_mode mode, float *logits);
/* One-token recurrent step: consumes token, advances st, writes logits [V]. */
hydra_status hydra_step(const hydra_model *m, hydra_state *st, int32_t token, float *logits);
/* Plain reference forward of one sequence from an empty state: naive loops,
 * token-by-token recurrence, no BLAS. For tests. logits [T, V]. */
hydra_status hydra_forward_reference(const hydra_model *m, const int32_t *tokens, int T,
                                     float *logits);

/* -------------------------------------------------------------- sampling */
typedef struct {
    uint64_t s[4]; /* xoshiro256** */
} hydra_rng;
void hydra_rng_seed(hydra_rng *r, uint64_t seed);
uint64_t hydra_rng_next(hydra_rng *r);
double hydra_rng_uniform(hydra_rng *r);  /* [0, 1) */
float hydra_rng_normal(hydra_rng *r);    /* N(0, 1) */

typedef struct {
    float temperature; /* 0 = greedy (argmax) */
    int top_k;         /* 0 = off */
    float top_p;       /* in (0, 1]; 1 = off */
} hydra_sample_opts;
hydra_sample_opts hydra_sample_opts_default(void); /* temperature 1, top_k 0, top_p 1 */
hydra_status hydra_sample_opts_validate(const hydra_sample_opts *o);

/* Turn logits [V] into the sampling distribution probs [V] (temperature,
 * top-k, top-p applied, renormalised). Greedy gives a one-hot. */
hydra_status hydra_sample_probs(const float *logits, int V, const hydra_sample_opts *o,
                                float *probs);
/* Sample one token id from logits [V]. */
hydra_status hydra_sample(const float *logits, int V, const hydra_sample_opts *o,
                          hydra_rng *rng, int32_t *token);

/* Called for every generated token; return non-zero to stop generation. */
typedef int (*hydra_token_cb)(int32_t token, void *user);

typedef struct {
    hydra_sample_opts sample;
    int max_new_tokens;
    uint64_t seed;
    int32_t stop_tokens[8]; /* generation stops after emitting any of these */
    int n_stop_tokens;
    hydra_token_cb on_token; /* optional streaming callback */
    void *user;
} hydra_gen_opts;
hydra_gen_opts hydra_gen_opts_default(void);

/* Prefill the prompt into st (NULL = a fresh internal state), then sample up
 * to max_new_tokens tokens into out[cap]. *n_out = tokens written. A stop
 * token is written and ends generation. n_prompt may be 0 only with a state
 * that has already consumed tokens. */
hydra_status hydra_generate(const hydra_model *m, hydra_state *st, const int32_t *prompt,
                            size_t n_prompt, const hydra_gen_opts *opts, int32_t *out,
                            size_t cap, size_t *n_out);

/* B sequences at once: prompts [B, n_prompt] (equal lengths) are prefilled
 * together, then every step samples one token per row and feeds the B tokens
 * as one [B, 1] forward, so the weights are read once per step for all rows
 * (throughput ~B x hydra_generate's on a memory-bound machine). Row b uses an
 * RNG seeded with opts->seed + b, so it equals hydra_generate(prompt b,
 * seed + b) up to the floating-point order of batched matmuls. Writes
 * out[B, max_new_tokens]. Stop tokens and on_token are not supported (rows
 * would end at different lengths) and are refused. */
hydra_status hydra_generate_batch(const hydra_model *m, const int32_t *prompts, int B, int n_prompt,
                                  const hydra_gen_opts *opts, int32_t *out);

/* ------------------------------------------------------------ tokenizer */
/* Byte-level: each byte of the text is one token id (0..255). */
hydra_status hydra_tokenize_bytes(const char *text, size_t len, int32_t *ids, size_t cap,
                                  size_t *n);

/* ------------------------------------------------------------- runtime */
/* Number of threads used by OpenMP regions and the GEMM tiles (BLIS itself
 * runs single-threaded inside them). Default: OMP_NUM_THREADS if set, else
 * the CPUs this process may use (affinity mask, cgroup CPU quota). */
void hydra_set_num_threads(int n);
int hydra_get_num_threads(void);
/* Contention back-offs (docs/threads.md): how many times since the process
 * started the library switched itself to one thread because, over a window
 * of parallel regions, its threads took longer than one thread would have
 * (a partner held up behind another program), and the total of those
 * back-offs' lengths as set when each started (a later
 * hydra_set_num_threads cuts one short). Either pointer may be NULL. For
 * benchmarks: a run whose count is not 0 ran partly on one thread. The
 * environment variable HYDRA_BACKOFF=0, read once at start-up, turns
 * back-offs off. */
void hydra_backoff_stats(uint64_t *count, double *scheduled_s);
/* Description of the BLAS backend in use, e.g. "BLIS 0.9.0 (arch skx, 2 threads)". */
const char *hydra_blas_info(void);

/* A memory field of this process from /proc/self/status, in KiB ("VmRSS"
 * resident now, "VmHWM" peak resident); -1 where unavailable (non-Linux). */
long hydra_process_memory_kib(const char *field);

/* Matmul profiling counters (process-wide, for benchmarks). */
typedef struct {
    double flops;    /* floating-point operations done by matmuls */
    double seconds;  /* wall time spent inside matmuls */
    uint64_t calls;
} hydra_matmul_stats;
void hydra_matmul_stats_enable(int on);
void hydra_matmul_stats_get(hydra_matmul_stats *out);
void hydra_matmul_stats_reset(void);

#ifdef __cplusplus
}
#endif
#endif /* HYDRALM_H */

/* internal.h — definitions shared inside libhydralm (not installed). */
#ifndef HYDRA_INTERNAL_H
#define HYDRA_INTERNAL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hydralm.h"
#include "hydralm_ops.h"

/* Record a formatted error message for hydra_last_error() and return `st`.
 * The arguments may include hydra_last_error() itself (to add context). */
hydra_status hydra_set_error(hydra_status st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void hydra_clear_error(void);
/* HYDRA_ERR_CANCELLED ("<what>: cancelled") if this thread's cancel flag
 * (hydra_set_cancel_flag) is raised, else HYDRA_OK. Long loops poll it. */
hydra_status hydra_check_cancel(const char *what);

#define HYDRA_CHECK(expr)                      \
    do {                                       \
        hydra_status st__ = (expr);            \
        if (st__ != HYDRA_OK) return st__;     \
    } while (0)

/* Overflow-checked size arithmetic: returns 0 on overflow. */
static inline int hydra_mul_ok(size_t a, size_t b, size_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}

/* 64-byte aligned allocation (for AVX-512 loads); free with hydra_aligned_free. */
void *hydra_aligned_alloc(size_t bytes);
void *hydra_aligned_calloc(size_t bytes);
void hydra_aligned_free(void *p);

/* FNV-1a 64-bit running hash. */
#define HYDRA_FNV_OFFSET 1469598103934665603ULL
uint64_t hydra_fnv1a(uint64_t h, const void *data, size_t n);


/* ------------------------------------------------------------ parameters */
/* A quantised matrix (hydra_model_load_quant): rows of hydra_quant_row_bytes
 * values and hydra_quant_row_blocks bf16 scales; NULL when not quantised. */
typedef struct {
    const uint8_t *q;
    const uint16_t *d;
} hydra_qmat;

/* Per-layer weight pointers into the model's parameter arena. Projections
 * that read the same input are adjacent in the arena so one GEMM computes
 * them all: for DeltaNet q|k|v|g|a|b rows, for attention q|k|v, for the MLP
 * gate|up. */
typedef struct {
    char kind;     /* HYDRA_LAYER_* */
    float *norm1;  /* [C] */
    float *norm2;  /* [C] */
    /* DeltaNet */
    float *in_proj;  /* [Hdk + Hdk + Hdv + Hdv + H + H, C] = q|k|v|g|a|b */
    float *A_log;    /* [H] */
    float *dt_bias;  /* [H] */
    float *q_conv, *k_conv, *v_conv; /* [H*dk, K], [H*dk, K], [H*dv, K] */
    float *o_norm;   /* [dv] */
    /* attention: in_proj = q|k|v [3*H*dk, C] */
    float *o_proj;   /* [C, H*dv] (both mixers) */
    /* MLP */
    float *gate_up;  /* [2F, C] = gate|up */
    float *down;     /* [C, F] */
    /* bf16 copies of the four matrices (a bf16 view model only; else NULL):
     * the forward uses them instead of the f32 ones when set */
    const uint16_t *in_proj_h, *o_proj_h, *gate_up_h, *down_h;
    /* quantised copies (a quantised model only; its f32 pointers are NULL) */
    hydra_qmat in_proj_q, o_proj_q, gate_up_q, down_q;
} hydra_layer_weights;

typedef struct {
    char name[64];
    int ndim;
    int64_t shape[2];
    size_t offset; /* in floats, into the logical f32 arena (file and fingerprint order) */
    size_t numel;
    int bf16;      /* held in the bf16 arena (a bf16-only model's matrices) */
    int quant;     /* held quantised (hydra_quant) in qdata / qscale */
    size_t store;  /* where it lives: float offset into params, bf16 offset into bf16, or byte offset into qdata */
    size_t qscale; /* quantised: offset of its scales in qscale */
} hydra_param_info;

/* Device mirrors (src/backend/backend.h); NULL on the CPU. */
typedef struct hydra_dev_model hydra_dev_model;
typedef struct hydra_dev_state hydra_dev_state;

struct hydra_model {
    hydra_config cfg;
    hydra_dev_model *dev;     /* the model's device copy when it lives on a GPU, else NULL */
    char device_name[16];     /* "cpu" or "cuda:N" */
    int dk, dv, F;            /* head dims, MLP width */
    float *params;            /* the f32 arena: n_params floats, or n_f32 for a bf16-only model */
    size_t n_params;          /* logical parameter count */
    size_t n_f32, n_bf16;     /* elements held in params / bf16 */
    hydra_param_info *info;   /* n_info entries, arena order */
    int n_info;
    float *embed;             /* [V, C] */
    float *norm_f;            /* [C] */
    float *lm_head;           /* [V, C]; == embed when tied */
    hydra_layer_weights *layers; /* [L] */
    /* bf16 view (hydra_model_bf16_view): the matrices in bf16, everything else
     * shared with the f32 model it was made from (which must outlive it) */
    const uint16_t *lm_head_h;
    uint16_t *bf16;            /* owned bf16 arena (a view, or a bf16-only model) */
    int is_view;               /* params, info, embed... belong to another model */
    /* bf16-only model (hydra_model_load_bf16): the matrices exist only in
     * bf16 (their f32 pointers are NULL); fingerprint is the f32 file's. */
    int bf16_only;
    /* quantised model (hydra_model_load_quant): the matrices exist only as
     * hydra_quant values + scales; fingerprint is the f32 model's. */
    int quant;                 /* hydra_quant */
    uint8_t *qdata;            /* quantised rows of every matrix, arena order */
    uint16_t *qscale;          /* their bf16 block scales */
    size_t n_qbytes, n_qscales;
    hydra_qmat lm_head_q;      /* the head (its own copy of a tied embedding) */
    uint64_t fingerprint;
};

/* How a model holds its matrices (hydra_model_plan's mode). */
enum { HYDRA_STORE_F32 = 0, HYDRA_STORE_BF16 = 1, HYDRA_STORE_INT8 = 2, HYDRA_STORE_INT4 = 3 };
static inline int hydra_store_of_quant(int q) { return q == HYDRA_QUANT_INT8 ? HYDRA_STORE_INT8 : HYDRA_STORE_INT4; }

/* HYDRA_OK, or a clear error when `what` needs f32 weights that a bf16-only
 * or quantised model does not hold (training, the reference forward; saving
 * a bf16-only model). */
hydra_status hydra_require_f32(const hydra_model *m, const char *what);
/* HYDRA_OK, or a clear error when `what` would change the host weights of a
 * model that lives on a GPU (its device copy would silently go stale):
 * training runs on the CPU until the GPU trainer exists. */
hydra_status hydra_require_cpu(const hydra_model *m, const char *what);
/* Which tensors a bf16-only model holds in bf16: the ones the forward
 * multiplies by (q/k/v/g/a/b/o projections, MLP, untied lm_head). */
int hydra_param_is_matrix(const char *name);
/* Fingerprint hash state after the config (hydra_model_fingerprint then
 * continues over every f32 weight byte in arena order). */
uint64_t hydra_fingerprint_begin(const hydra_config *cfg);

/* A model that runs the f32 model m's forward with its matrices (in_proj,
 * o_proj, gate_up, down, lm_head) in bf16: a copy of those only; vectors,
 * convs and the embedding lookup stay f32 and are shared with m. Free with
 * hydra_model_free; m must outlive it. For inference only. */
hydra_status hydra_model_bf16_view(const hydra_model *m, hydra_model **out);

/* Build the parameter table for cfg and allocate the (zeroed) arena; mode
 * HYDRA_STORE_*: the matrices get a bf16 arena (hydra_model_load_bf16) or
 * quantised ones (hydra_model_load_quant) instead. */
hydra_status hydra_model_alloc(const hydra_config *cfg, hydra_model **out);
hydra_status hydra_model_alloc_ex(const hydra_config *cfg, int mode, hydra_model **out);
/* The two halves of hydra_model_alloc_ex. plan: the validated parameter
 * table (names, shapes, offsets) and no arenas, so a loader can check a
 * file's tensor table against the config before allocating any weights.
 * alloc_arenas: the arenas (zeroed when `zero`; a loader that overwrites
 * every byte passes 0) and the layers' weight pointers into them. */
hydra_status hydra_model_plan(const hydra_config *cfg, int mode, hydra_model **out);
hydra_status hydra_model_alloc_arenas(hydra_model *m, int zero);
/* Deterministic init of all parameters (DESIGN §2). */
void hydra_model_init_params(hydra_model *m, uint64_t seed);
/* Width of the DeltaNet fused input projection. */
static inline int hydra_gdn_in_width(const hydra_model *m) {
    int H = m->cfg.n_heads;
    return 2 * H * m->dk + 2 * H * m->dv + 2 * H;
}

/* ----------------------------------------------------------------- state */
typedef struct {
    float *S;       /* DeltaNet: [H, dv, dk] */
    float *conv;    /* DeltaNet: [K-1, Hdk + Hdk + Hdv] tails of q|k|v conv inputs */
    float *kc, *vc; /* attention: [cap, H, dk] rotated keys, [cap, H, dv] values */
    size_t cap;     /* attention cache capacity in positions (W for SWA) */
} hydra_layer_state;

/* Which copy of a state is current: a state with a device mirror moves its
 * data only when the other side needs it (hydra_state_host_read/_write,
 * hydra_state_to_device). */
enum { HYDRA_STATE_HOST = 0, HYDRA_STATE_DEVICE = 1, HYDRA_STATE_BOTH = 2 };

struct hydra_state {
    hydra_config cfg;        /* copy: a state is tied to a config, not a model pointer */
    uint64_t pos;            /* tokens consumed (always kept on the host) */
    hydra_dev_state *dev;    /* device mirror, or NULL */
    int where;               /* HYDRA_STATE_*: which copy is current */
    hydra_layer_state *layers; /* [L] */
    float *arena;            /* fixed-size part (S, conv tails, SWA rings) */
    size_t arena_floats;
};

/* 1 if a layer of this kind keeps an unbounded (growing) attention cache:
 * full attention, or SWA with window 0. */
int hydra_layer_cache_unbounded(const hydra_config *c, char kind);
/* 1 if states of configs a and b have the same layout (layers, kinds, heads,
 * head dim, window, conv width): a state of one can be used with the other. */
int hydra_config_same_state_shape(const hydra_config *a, const hydra_config *b);

/* Before reading the host copy of s (download if only the device copy is
 * current) / before writing it (the same, then the device copy is stale). */
hydra_status hydra_state_host_read(const hydra_state *s);
hydra_status hydra_state_host_write(hydra_state *s);
/* Before a device forward on `device`: upload if the device copy is stale;
 * afterwards only the device copy is current. */
hydra_status hydra_state_to_device(hydra_state *s, int device);
/* HYDRA_OK if a state at position pos can take n more tokens without
 * passing HYDRA_MAX_POSITION; else HYDRA_ERR_ARG naming `who`. */
hydra_status hydra_position_check(const char *who, uint64_t pos, int64_t n);

/* Make sure full-attention caches can hold `positions` positions. */
hydra_status hydra_state_reserve(hydra_state *s, size_t positions);

/* One inverse-CDF draw from a sampling distribution probs [V] (from
 * hydra_sample_probs); never returns a zero-probability id. */
int32_t hydra_sample_draw(const float *probs, int V, hydra_rng *rng);

/* Largest probability of softmax(logits) (temperature 1, no truncation):
 * the draft's confidence for adaptive speculative rounds. */
double hydra_top_prob(const float *logits, int V);

/* Conv tail [K-1, C] <- the last K-1 rows of (tail ++ x[0..n)). */
void hydra_conv_tail_advance(float *tail, const float *x, int n, int K, size_t C);

/* ------------------------------------------------------------- runtime */
/* Called before the first BLAS call: picks the BLIS kernel set for this CPU. */
void hydra_runtime_init(void);

/* Contention back-off (docs/threads.md, "Backing off"). The main parallel
 * regions (GEMM tiles, the decode GEMV) report their wall time and what one
 * thread on a free CPU would have taken (the leading thread's fastest work
 * item, scaled to the region's work). When, over a window of regions, the
 * threads took longer than one thread would have (a partner descheduled
 * behind another program holds each region's end for that program's
 * slice), the library runs single-threaded for a while, then tries its
 * threads again. Results do not depend on the thread count, so this changes
 * speed only.
 * hydra_par_enter: before a region (ends a back-off that has run out);
 * hydra_par_report: after one that ran parallel, both in seconds (a
 * one-thread estimate of 0: none, the region is not counted). */
void hydra_par_enter(void);
void hydra_par_report(double total, double one_thread);

/* Training ops over B sequences of T tokens (rows [B, T, H*d]), one work
 * item per (sequence, head) taken dynamically by the threads; results do not
 * depend on the thread count (src/ops/delta_rule.c, src/ops/attention.c).
 * The delta rule starts from S = 0: forward states end in S [B, H, dv, dk];
 * the backward has no final-state gradient. */
hydra_status hydra_delta_rule_batch(int B, int T, int H, int dk, int dv, const float *q, const float *k,
                                    const float *v, const float *g, const float *beta, float *S, float *o);
hydra_status hydra_delta_rule_backward_batch(int B, int T, int H, int dk, int dv, const float *q, const float *k,
                                             const float *v, const float *g, const float *beta, const float *dO,
                                             float *dq, float *dk_, float *dv_, float *dg, float *dbeta);
hydra_status hydra_attention_backward_batch(int B, int T, int H, int d, int window, const float *q, const float *k,
                                            const float *v, const float *o, const float *dO, float *dq, float *dk,
                                            float *dv);
/* Causal depthwise conv over B sequences from zero tails (src/ops/conv.c):
 * x rows ldx apart, y / dy rows C apart, dx rows lddx; dw += the weight grads. */
hydra_status hydra_conv_batch(int B, int T, int C, int K, const float *x, size_t ldx, const float *w, float *y);
hydra_status hydra_conv_backward_batch(int B, int T, int C, int K, const float *x, size_t ldx, const float *w,
                                       const float *dy, float *dx, size_t lddx, float *dw);

/* ------------------------------------------ rollback journal (spec) */
/* Records what journaled forwards of one sequence change, so that its state
 * can return to "the base + the first n recorded tokens" touching only what
 * changed: per DeltaNet layer S and the conv tail at the base plus, per
 * position, the conv input, k, v, g and beta (rollback = restore S and the
 * tail, replay n rank-1 updates); per SWA layer the ring rows each position
 * overwrote (rollback = put them back, newest first); growing full-attention
 * caches need only the position. Speculative decoding's rollback: O(S + the
 * rows touched) per round instead of a full state copy per drafted token. */
typedef struct {
    float *S0, *conv0;              /* DeltaNet: S [H, dv, dk] and conv tail at the base */
    float *x, *k, *v, *g, *beta;    /* DeltaNet, per position: conv input [3Hd], k, v [Hd], g, beta [H] */
    float *kold, *vold;             /* SWA ring, per position: the rows it overwrote [Hd] */
} hydra_journal_layer;

typedef struct {
    hydra_config cfg;
    int dk, cap;     /* head dim; positions the journal can hold */
    int n;           /* positions recorded since hydra_journal_begin */
    int active;      /* begun */
    uint64_t pos0;   /* state position at the base */
    hydra_journal_layer *layers;
    float *scratch;  /* [cap, Hd] replay outputs */
    float *arena;
    /* A model on a GPU journals by snapshot and replay instead: begin copies
     * the state on the device (O(state) at memory speed), journaled forwards
     * record their tokens, rollback restores the copy and re-runs the kept
     * tokens in one forward (<= cap tokens: one decode-sized graph launch). */
    const hydra_model *m;
    int dev_mode;    /* this round journals by snapshot (the model lives on a GPU) */
    hydra_state *snap;
    int32_t *tok;    /* [cap] tokens recorded since begin */
} hydra_journal;

hydra_status hydra_journal_create(const hydra_model *m, int cap, hydra_journal **out);
void hydra_journal_free(hydra_journal *j);
/* Starts recording from s (O(DeltaNet S + conv tails)). */
hydra_status hydra_journal_begin(hydra_journal *j, const hydra_state *s);
/* s <- the base + the first n_keep recorded positions; the journal then
 * continues from there (n = n_keep). s must be the journaled state. */
hydra_status hydra_journal_rollback(hydra_journal *j, hydra_state *s, int n_keep);

/* hydra_forward of one sequence (B = 1) into state s, recording into the
 * begun journal j (NULL: plain hydra_forward). */
hydra_status hydra_forward_journaled(const hydra_model *m, const int32_t *tokens, int T, hydra_state *s,
                                     hydra_logits_mode mode, float *logits, hydra_journal *j);

/* A forward workspace kept between calls by a long-lived caller (the
 * streaming engine). Reusing one block matters for memory, not speed: when
 * every forward mallocs and frees its ~30 MB workspace (default model, 512
 * tokens), glibc's adaptive mmap threshold moves such blocks onto the heap,
 * where 0-2 extra copies stayed resident, so the peak RSS of identical runs
 * differed by up to 60 MB. The block grows to the largest T seen. */
typedef struct {
    float *block;
    size_t floats;
} hydra_fwd_scratch;
void hydra_fwd_scratch_free(hydra_fwd_scratch *ws);
/* hydra_forward of one sequence (B = 1) into state s, its workspace in ws. */
hydra_status hydra_forward_scratch(const hydra_model *m, const int32_t *tokens, int T, hydra_state *s,
                                   hydra_logits_mode mode, float *logits, hydra_fwd_scratch *ws);

/* Forward tokens [B, T] into states (all given) on a model that lives on a
 * device, and sample one next token per row from the last position's logits
 * on the device (row b with one uniform from rng[b], as hydra_sample would
 * draw): next[B] (may alias tokens) is all that comes back. */
hydra_status hydra_forward_sample(const hydra_model *m, const int32_t *tokens, int B, int T, hydra_state *const *states,
                                  const hydra_sample_opts *o, hydra_rng *rng, int32_t *next);

#endif /* HYDRA_INTERNAL_H */

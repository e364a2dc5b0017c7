/*
 * hydralm_factbank.h — FactBank: "write once, recall anywhere, no fine-tuning".
 *
 * Two levels, both built on the gated delta rule (DESIGN §2):
 *
 * 1. Vector memory (hydra_vecmem_*): the delta-rule associative memory on its
 *    own. d_key-dim keys map to d_value-dim values. Each of n_heads heads
 *    keeps S_h [d_value, d_key] and a fixed seeded random rotation R_h of key
 *    space; a key k is stored as  phi_h(k) = L2norm(f(R_h k))  (f = identity
 *    for HYDRA_VECMEM_LINEAR) with
 *        S_h <- alpha S_h + beta (v - alpha S_h phi) phi^T
 *    and recall(q) = mean_h S_h phi_h(q). With alpha = beta = 1 (defaults)
 *    the newest write of a key is recalled exactly and rewriting a key
 *    replaces its value. Size: n_heads * d_value * d_key floats, whatever the
 *    number of facts. See docs/factbank.md for the capacity curve.
 *
 * 2. Model-level bank (hydra_factbank_*): facts (token ids or text) are run
 *    through the model's own recurrence (hydra_forward, no gradients) from an
 *    empty state. The bank is that state: every DeltaNet layer's S [H,dv,dk]
 *    and conv tails, every SWA layer's K/V ring, and the position (= fact
 *    tokens written). Constant size. Mounting it into a live state makes the
 *    model continue as if it had just read the facts (see hydra_mount_mode).
 *    Bank files are tied to the model fingerprint (docs/factbank.md, format).
 *
 *   hydra_factbank *b;
 *   hydra_factbank_create(model, &b);
 *   hydra_factbank_write_text(b, facts, strlen(facts));
 *   hydra_factbank_save(b, "facts.hbk");
 *   ... another process ...
 *   hydra_factbank_load(model, "facts.hbk", &b);
 *   hydra_factbank_mount(b, live_state, HYDRA_MOUNT_RESTORE);
 *   hydra_generate(model, live_state, prompt, n_prompt, &g, out, cap, &n_out);
 */
#ifndef HYDRALM_FACTBANK_H
#define HYDRALM_FACTBANK_H

#include "hydralm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ========================================================= vector memory */
typedef enum {
    HYDRA_VECMEM_LINEAR = 0, /* phi_h(k) = L2norm(R_h k). The delta rule is equivariant under
                                rotations, so all heads hold the same memory up to rounding:
                                exact for orthogonal keys; capacity ~ d_key. */
    HYDRA_VECMEM_CUBIC = 1,  /* phi_h(k) = L2norm((R_h k)^3) elementwise: heads see different
                                (odd, nonlinear) features, so their interference differs and
                                averaging helps past d_key facts; orthogonal keys are no longer
                                exactly orthogonal features. */
} hydra_vecmem_feature;

typedef struct {
    int d_key;        /* dk >= 1 */
    int d_value;      /* dv >= 1 */
    int n_heads;      /* H >= 1 (default 4) */
    float alpha;      /* decay per write, (0, 1] (default 1: no forgetting) */
    float beta;       /* write strength, (0, 1] (default 1: newest write is exact) */
    hydra_vecmem_feature feature; /* default HYDRA_VECMEM_LINEAR */
    uint64_t seed;    /* rotations R_h (default 0x5eed) */
} hydra_vecmem_opts;

hydra_vecmem_opts hydra_vecmem_opts_default(int d_key, int d_value);
hydra_status hydra_vecmem_opts_validate(const hydra_vecmem_opts *o);

typedef struct hydra_vecmem hydra_vecmem;

hydra_status hydra_vecmem_create(const hydra_vecmem_opts *o, hydra_vecmem **out);
void hydra_vecmem_free(hydra_vecmem *vm);
const hydra_vecmem_opts *hydra_vecmem_get_opts(const hydra_vecmem *vm);
/* Write n facts in order: keys [n, d_key] (any non-zero norm; normalised
 * inside), values [n, d_value]. A key equal to an earlier one overwrites it. */
hydra_status hydra_vecmem_memorize(hydra_vecmem *vm, const float *keys, const float *values, size_t n);
/* out [n, d_value] = mean_h S_h phi_h(queries[i]) for queries [n, d_key]. */
hydra_status hydra_vecmem_recall(const hydra_vecmem *vm, const float *queries, size_t n, float *out);
/* Score n recalls [n, d] against the n true values [n, d] (any scale): *top1
 * = fraction whose nearest value by cosine is their own; *mean_cos (optional)
 * = mean cosine between each recall and its own value. */
hydra_status hydra_vecmem_score(const float *recalled, const float *values, size_t n, int d, double *top1,
                                double *mean_cos);
/* Forget everything (S = 0); rotations and options are kept. */
void hydra_vecmem_reset(hydra_vecmem *vm);
/* Facts written since create / reset / load (counts overwrites too). */
uint64_t hydra_vecmem_count(const hydra_vecmem *vm);
/* Bytes of the memory (the S matrices): n_heads * d_value * d_key * 4, constant. */
size_t hydra_vecmem_bytes(const hydra_vecmem *vm);
/* Atomic save / checked load. Format "HYDRAVEC" (docs/factbank.md). Load
 * refuses wrong magic/version, truncated files, trailing bytes, checksum
 * mismatches and non-finite values, with a message. */
hydra_status hydra_vecmem_save(const hydra_vecmem *vm, const char *path);
hydra_status hydra_vecmem_load(const char *path, hydra_vecmem **out);

/* ====================================================== model-level bank */
/* What mounting a bank does to a live state (created for the same model). */
typedef enum {
    /* live := bank, exactly: DeltaNet S and conv tails, SWA rings and the
     * position. The model continues bit-for-bit as if it had just read the
     * facts (in the chunks the bank was written with) immediately before
     * whatever comes next. Whatever the live state held is discarded. */
    HYDRA_MOUNT_RESTORE = 0,
    /* Hot swap of the long-term memory only: every DeltaNet layer's S is
     * replaced by the bank's; the live conv tails, SWA rings and position
     * (the live recent context) are kept. */
    HYDRA_MOUNT_REPLACE = 1,
    /* Merge: S_live += S_bank in every DeltaNet layer (superposition of two
     * delta-rule memories); everything else is kept. Approximate: the two
     * memories interfere like any two sets of associations written into one S. */
    HYDRA_MOUNT_ADD = 2,
} hydra_mount_mode;

/* Facts are fed to the model in forwards of at most this many tokens. */
#define HYDRA_FACTBANK_CHUNK 512

typedef struct hydra_factbank hydra_factbank;

/* An empty bank for model m (which must outlive it). Refused for models with
 * full-attention layers (pattern 'A' or window 0): their cache, and so the
 * bank, would grow with the facts. */
hydra_status hydra_factbank_create(const hydra_model *m, hydra_factbank **out);
void hydra_factbank_free(hydra_factbank *b);
/* Append facts: run tokens [n] (ids in [0, V)) through the model from the
 * bank's state in chunks of HYDRA_FACTBANK_CHUNK (no logits, no gradients).
 * Writing in several calls continues where the last one stopped. */
hydra_status hydra_factbank_write(hydra_factbank *b, const int32_t *tokens, size_t n);
/* Same with text: each byte is a token (byte-level vocabulary). */
hydra_status hydra_factbank_write_text(hydra_factbank *b, const char *text, size_t len);
/* Forget every fact (empty state). */
void hydra_factbank_reset(hydra_factbank *b);
/* Fact tokens written (= the position of the bank's state). */
uint64_t hydra_factbank_tokens(const hydra_factbank *b);
/* Bytes of the bank's payload (= hydra_model_state_bytes): constant. */
size_t hydra_factbank_bytes(const hydra_factbank *b);
/* The bank's state (borrowed, read-only). */
const hydra_state *hydra_factbank_state(const hydra_factbank *b);
const hydra_model *hydra_factbank_model(const hydra_factbank *b);

/* Mount the bank into live (created for the bank's model) per mode. */
hydra_status hydra_factbank_mount(const hydra_factbank *b, hydra_state *live, hydra_mount_mode mode);

/* Atomic save (temp file, fsync, rename). Computes the model fingerprint. */
hydra_status hydra_factbank_save(const hydra_factbank *b, const char *path);
/* Load a bank written for model m. Refuses, with a message: a missing file,
 * wrong magic or version, a truncated file or trailing bytes, a checksum
 * mismatch (flipped byte), another model's bank (fingerprint), a shape that
 * does not match m, non-finite values. */
hydra_status hydra_factbank_load(const hydra_model *m, const char *path, hydra_factbank **out);

/* Header of a bank file, checked (magic, version, size, checksum) without a model. */
typedef struct {
    uint32_t version;
    uint64_t fingerprint;   /* of the model that wrote it */
    uint64_t tokens;        /* fact tokens written */
    uint64_t payload_bytes; /* state bytes stored */
    uint64_t file_bytes;
    int n_layers, n_heads, head_dim, window, conv_width;
    char schedule[HYDRA_MAX_LAYERS + 1]; /* layer kinds, e.g. "DDSD" */
} hydra_factbank_info;
hydra_status hydra_factbank_read_info(const char *path, hydra_factbank_info *out);

#ifdef __cplusplus
}
#endif
#endif /* HYDRALM_FACTBANK_H */

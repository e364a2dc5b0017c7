/*
 * hydralm_claims.h — the claims gate: every headline claim of the project as a
 * measured, thresholded check (issue 6; docs/claims.md), plus the exact
 * enumeration of speculative decoding's output law that claim 4 uses.
 *
 *   hydra_claims_opts o = hydra_claims_opts_default(HYDRA_BUDGET_CI, seed);
 *   hydra_claim_result r[HYDRA_CLAIMS_MAX];
 *   int n;
 *   hydra_claims_run(&o, NULL, r, HYDRA_CLAIMS_MAX, &n);   // NULL = every claim
 *   for (int i = 0; i < n; i++) puts(r[i].summary);
 *
 * The library never prints: progress goes through opts.progress. A claim whose
 * measurement is not implemented yet reports HYDRA_CLAIM_NOT_IMPLEMENTED with
 * the reason in its summary; that is not a pass (hydra_claims_all_passed).
 */
#ifndef HYDRALM_CLAIMS_H
#define HYDRALM_CLAIMS_H

#include "hydralm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ===================================== exact enumeration of spec decoding
 * For a target/draft pair, a prompt, a vocabulary of V tokens and n output
 * tokens, computes exactly (no sampling) the probability of each of the V^n
 * output sequences under (a) plain sampling from the target and (b) the
 * speculative-decoding algorithm of hydralm_spec.h with k draft tokens per
 * round (accept min(1, p/q), residual norm(max(0, p - q)), bonus token from p:
 * the sampler's own accept / residual functions, src/infer/spec.c),
 * and reports their total variation distance. The forwards for every context
 * of length 0..n-1 are run once at create; each eval only redoes the cheap
 * probability algebra. Feasible for small V^n (<= 2^22 sequences). */
typedef enum {
    HYDRA_SPEC_EXACT_CORRECT = 0,          /* the algorithm as implemented in hydralm_spec.h */
    HYDRA_SPEC_EXACT_BROKEN_RESIDUAL = 1,  /* test hook: resample a rejection from p instead of
                                              norm(max(0, p - q)) (a classic bug) */
} hydra_spec_exact_variant;

typedef struct {
    double tvd;        /* TVD(spec law, target law) over all V^n sequences */
    double mass;       /* total mass of the spec law (1 up to rounding) */
    double tvd_draft;  /* TVD(draft law, target law): what an unverified draft would give */
    size_t n_sequences;/* V^n */
} hydra_spec_exact_result;

typedef struct hydra_spec_exact hydra_spec_exact;

/* n_tokens in [1, 8]; n_prompt >= 1; the models must share the vocabulary. */
hydra_status hydra_spec_exact_create(const hydra_model *target, const hydra_model *draft, const int32_t *prompt,
                                     size_t n_prompt, int n_tokens, hydra_spec_exact **out);
void hydra_spec_exact_free(hydra_spec_exact *e);
/* Exact laws under the sampling transform `sample` (hydra_sample_probs) with k
 * draft tokens per round (1..HYDRA_SPEC_MAX_K = 16). */
hydra_status hydra_spec_exact_eval(hydra_spec_exact *e, const hydra_sample_opts *sample, int k,
                                   hydra_spec_exact_variant variant, hydra_spec_exact_result *out);
/* The exact law of plain target sampling from the last eval: [V^n], sequence
 * s_1..s_n at index sum_t s_t V^(n-t). Valid until the next eval or free. */
const double *hydra_spec_exact_target_law(const hydra_spec_exact *e);
/* The same with adaptive rounds (hydra_spec_opts.min_draft_prob). */
hydra_status hydra_spec_exact_eval_adaptive(hydra_spec_exact *e, const hydra_sample_opts *sample, int k,
                                            float min_draft_prob, hydra_spec_exact_variant variant,
                                            hydra_spec_exact_result *out);

/* ============================================================ the gate */
#define HYDRA_CLAIMS_MAX 16
#define HYDRA_CLAIM_MAX_VALUES 64 /* claim 2 at the gpu budget: 3 sizes x 16 values */

/* ci: <= 5 min on 2 CPU cores; paper: larger samples (CPU); gpu: claims 1, 2
 * and 5 at sizes the CPU cannot reach, <= 10 min on one H100 (needs a cuda
 * device; the other claims are not part of it). */
typedef enum { HYDRA_BUDGET_CI = 0, HYDRA_BUDGET_PAPER = 1, HYDRA_BUDGET_GPU = 2 } hydra_claims_budget;

/* ERROR is 0: a result that nothing decided (zeroed, or a claim that returned
 * without a status) is an error, never a pass. */
typedef enum {
    HYDRA_CLAIM_ERROR = 0,           /* the measurement itself failed or decided nothing (message in summary) */
    HYDRA_CLAIM_PASS = 1,
    HYDRA_CLAIM_FAIL = 2,
    HYDRA_CLAIM_NOT_IMPLEMENTED = 3, /* registered, not measured: never a pass */
} hydra_claim_status;
#define HYDRA_CLAIM_N_STATUS 4

/* A named number: a measured value or a threshold. */
typedef struct {
    char name[40];
    double value;
    char op[4]; /* thresholds: the comparison the measured value must satisfy ("<", "<=", ">=", "=="); "" for values */
} hydra_claim_value;

/* A recorded curve, e.g. accuracy vs training step. */
#define HYDRA_CLAIM_MAX_CURVES 12
#define HYDRA_CLAIM_CURVE_POINTS 40
typedef struct {
    char name[64];
    int n;
    double x[HYDRA_CLAIM_CURVE_POINTS], y[HYDRA_CLAIM_CURVE_POINTS];
} hydra_claim_curve;

typedef struct {
    const char *name;        /* "claim_3_constant_state" (static storage) */
    const char *description; /* one sentence: the statement (static storage) */
    hydra_claim_status status;
    char summary[256];       /* the one-line result, e.g. "1048576 tok stable" or the failure/reason */
    double seconds;          /* wall time of the measurement */
    hydra_claim_value thresholds[HYDRA_CLAIM_MAX_VALUES];
    int n_thresholds;
    hydra_claim_value values[HYDRA_CLAIM_MAX_VALUES];
    int n_values;
    hydra_claim_curve curves[HYDRA_CLAIM_MAX_CURVES];
    int n_curves;
    int n_refused;           /* values/thresholds refused because the arrays were full: the claim
                                cannot be decided and reports ERROR */
    char nonstandard[200];   /* "" when run at the budget's standard sizes; else the size knobs that
                                differ ("stream_tokens=8192 (standard 1048576)"): a quick run, not the
                                claim — reports label it and never print the standard PASS line */
} hydra_claim_result;

/* Progress: claim name and a short message (e.g. "262144 / 1048576 tokens"). */
typedef void (*hydra_claims_progress_fn)(const char *claim, const char *msg, void *user);

/* Cross-process hook for claim 6: write the vector memory of
 * hydra_claims_vecbank_write(path, seed, n_facts, d, heads) in ANOTHER process
 * (the CLI spawns itself). Return 0 on success. NULL: written in-process (still
 * through a file and a freshly loaded memory; the result records cross_process 0). */
typedef int (*hydra_claims_vecbank_writer_fn)(const char *path, uint64_t seed, int n_facts, int d, int heads,
                                              void *user);

/* Cross-process hook for claim 6's model-level part: write the token ids
 * ids[n] into a bank file for the model at model_path in ANOTHER process
 * (`hydra factbank write --ids`). Return 0 on success. NULL: in-process. */
typedef int (*hydra_claims_bank_writer_fn)(const char *model_path, const int32_t *ids, int n,
                                           const char *bank_path, void *user);

typedef struct {
    hydra_claims_budget budget;
    uint64_t seed;
    const char *tmp_dir;  /* scratch files (default "/tmp") */
    hydra_claims_progress_fn progress;
    void *progress_user;
    /* Where the claims that train (1, 2, 5, 7) place every model they train or
     * evaluate: NULL or "cpu" = the CPU; "cuda" / "cuda:N" = that GPU
     * (hydra_model_to_device right after creation, default precision; the
     * trainer follows the model). Claims 3, 4 and 6 always run on the CPU.
     * HYDRA_BUDGET_GPU at its standard sizes refuses a CPU device. */
    const char *device;
    /* Size knobs. hydra_claims_opts_default sets every one to the budget's
     * standard value; 0 (or NULL) also means the standard value. Any other
     * value is a quick run: the claim's result is labelled non-standard
     * (hydra_claim_result.nonstandard). */
    /* claim 1 */
    int lengen_steps;        /* training steps per arm */
    float lengen_lr;         /* peak AdamW learning rate */
    int lengen_eval_len;     /* length of the long evaluation streams (default 32,768) */
    int lengen_streams;      /* long streams evaluated for the hybrid (the baseline gets 1) */
    int lengen_baseline;     /* 1 (default): also train and evaluate the full-attention baseline; -1: skip */
    int lengen_train_len;    /* training length T (default 256 ci/paper, 2,048 gpu) */
    /* claim 2 (0: the budget's recipe) */
    int mqar_steps;          /* training steps per arm */
    int mqar_size_div;       /* quick runs: every size's length, pairs, window, vocabulary and width divided by this (default 1) */
    /* claim 5 */
    int muon_steps;          /* steps per run (default 400) */
    int muon_d_model;        /* gpu budget (text): model width (default 768, the default config) */
    int muon_layers;         /* gpu budget (text): layers (default 12) */
    int muon_seq;            /* gpu budget (text): training length (default 512) */
    /* claim 7 */
    int spec_train_steps;    /* training steps of the target and of the draft (default 150) */
    const char *text_path;   /* the text both train on: NULL = "data/tinyshakespeare.txt" (relative to the
                                working directory: run from the repository root) */
    /* claim 3 */
    int64_t stream_tokens;   /* default 1,048,576 */
    int stream_chunk;        /* default 512 */
    int stream_win;          /* chunks per timing window (default 64 ci, 128 paper) */
    int64_t stream_test_leak; /* test hook: bytes allocated, touched and kept per chunk after the
                                 warm-up (a planted leak the memory threshold must catch); 0 */
    /* claim 4 */
    int spec_vocab;          /* default 8 */
    int spec_tokens;         /* sequence length n (default 5) */
    hydra_spec_exact_variant spec_variant; /* test hook: BROKEN_RESIDUAL must make claim 4 fail */
    /* claim 6 */
    int vec_facts;           /* default 1536 (1.5 vec_dim: the linear memory's measured capacity) */
    int vec_dim;             /* d_key = d_value (default 1024) */
    int vec_heads;           /* default 4 */
    hydra_claims_vecbank_writer_fn vec_writer;
    void *vec_writer_user;
    const char *factbank_model; /* an MQAR-trained checkpoint for the model-level part; NULL: the
                                   claim-2 hybrid (trained by claim 2 in this run, else here) */
    int factbank_pairs;      /* pairs per trial with factbank_model (default 8, the layout of
                                `hydra factbank train-mqar`); the claim-2 model uses its task's pairs */
    int factbank_trials;     /* trials (default 16 ci, 64 paper) */
    hydra_claims_bank_writer_fn bank_writer;
    void *bank_writer_user;
} hydra_claims_opts;

hydra_claims_opts hydra_claims_opts_default(hydra_claims_budget budget, uint64_t seed);

/* The registry: number of claims, and claim i's name / description. */
int hydra_claims_count(void);
const char *hydra_claim_name(int i);
const char *hydra_claim_description(int i);
/* 1 if claim i runs only under HYDRA_BUDGET_PAPER when every claim is run
 * (names == NULL); it can still be named explicitly. */
int hydra_claim_paper_only(int i);
/* 1 if claim i is part of `budget`: run when every claim is run. A claim that
 * is not part of HYDRA_BUDGET_GPU reports TODO ("not part of the gpu budget")
 * when named explicitly under it: never a pass. */
int hydra_claim_in_budget(int i, hydra_claims_budget budget);
/* "ci", "paper", "gpu" ("?" otherwise). */
const char *hydra_claims_budget_str(hydra_claims_budget budget);
/* Index of a claim by full name ("claim_4_spec_decoding_exact") or short
 * prefix ("claim_4"); -1 if none. */
int hydra_claim_find(const char *name);

/* Run one claim into *out. HYDRA_ERR_ARG for a bad index or options; a failed
 * measurement is reported in out (status HYDRA_CLAIM_ERROR), not as a status. */
hydra_status hydra_claim_run(int i, const hydra_claims_opts *o, hydra_claim_result *out);
/* Run the claims named in names[n_names] (NULL = all, in registry order;
 * under the ci budget "all" leaves out the paper-only claims) into
 * out[cap]; *n_out = results written. */
hydra_status hydra_claims_run(const hydra_claims_opts *o, const char *const *names, int n_names,
                              hydra_claim_result *out, int cap, int *n_out);
/* 1 if every result is HYDRA_CLAIM_PASS (and n > 0). */
int hydra_claims_all_passed(const hydra_claim_result *r, int n);
const char *hydra_claim_status_str(hydra_claim_status s); /* "PASS", "FAIL", "TODO", "ERROR" */
/* Re-decides r's status from its thresholds and values (a result read back
 * from JSON, e.g. by `hydra claims --merge`): PASS only if there is at least
 * one threshold and every one holds, FAIL (summary names the first broken
 * one) otherwise, ERROR if entries were refused. ERROR and TODO results are
 * left as they are. Returns 1 if the status changed. */
int hydra_claim_recheck(hydra_claim_result *r);
/* Measured value by name (NAN if absent). */
double hydra_claim_value_get(const hydra_claim_result *r, const char *name);

/* Claim 6's write step: n_facts Gaussian key/value pairs (d-dim) from seed,
 * written into a fresh vector memory (heads, linear features), saved to path.
 * The CLI runs it in a child process for the cross-process check. */
hydra_status hydra_claims_vecbank_write(const char *path, uint64_t seed, int n_facts, int d, int heads);

#ifdef __cplusplus
}
#endif
#endif /* HYDRALM_CLAIMS_H */

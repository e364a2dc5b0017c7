/* claims_internal.h — helpers shared by the claim implementations
 * (claims.c: registry, claims 3, 4, 6; claims_train.c: the claims that train
 * models, 1, 2, 5). Not installed. */
#ifndef HYDRA_CLAIMS_INTERNAL_H
#define HYDRA_CLAIMS_INTERNAL_H

#include "hydralm_claims.h"

void hydra_claims_progress(const hydra_claims_opts *o, const char *claim, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void hydra_claims_add_value(hydra_claim_result *r, const char *name, double v);
void hydra_claims_add_threshold(hydra_claim_result *r, const char *name, const char *op, double v);
/* 1 if every threshold names a measured value that satisfies it (NaN fails);
 * else 0 and first_bad names the first broken one. */
int hydra_claims_thresholds_hold(const hydra_claim_result *r, char *first_bad, size_t n);
/* Status from the thresholds; on failure the summary names the first broken one. */
void hydra_claims_decide(hydra_claim_result *r, const char *pass_summary);
void hydra_claims_set_error(hydra_claim_result *r, const char *what, hydra_status st);
/* 1 if o->device names a GPU ("cuda", "cuda:N"). */
int hydra_claims_on_gpu(const hydra_claims_opts *o);
/* m onto o->device (default precision); nothing for the CPU. Right after a
 * model is created or loaded: the trainer and every forward follow it. */
hydra_status hydra_claims_place(const hydra_claims_opts *o, hydra_model *m);

/* claims_train.c */
/* Claim 1's measurement per arm. Facts are planted at distances in
 * HYDRA_LENGEN_BUCKETS buckets (tokens): (0, 8] within the SWA window,
 * (8, T] beyond it within the training length (bucket HYDRA_LENGEN_AT_T),
 * then four buckets beyond T (hydra_claims_lengen_buckets). */
#define HYDRA_LENGEN_BUCKETS 6
#define HYDRA_LENGEN_AT_T 1
typedef struct {
    double bg_short, bg_long;            /* background recall loss: at T, and over the last 1,024 of N */
    double rc_short_loss, rc_short_acc;  /* planted answers at distances (8, T] in T-token streams */
    long rc_short_n;
    double loss[HYDRA_LENGEN_BUCKETS], acc[HYDRA_LENGEN_BUCKETS]; /* planted answers of the N-token streams */
    long n[HYDRA_LENGEN_BUCKETS];                                   /* answers per bucket (NaN above when 0) */
} hydra_lengen_scores;
/* Values, thresholds, curves, status and line of claim 1 from the arms'
 * scores (sc[0] hybrid, sc[1] attention if n_arms == 2); lnv = ln(value
 * band), pn = the background's renewal fraction. */
void hydra_claims_lengen_report(hydra_claim_result *r, const hydra_lengen_scores *sc, int n_arms, int N, int T,
                                double lnv, double pn, const int *bucket_hi);
/* Claim 1's distance buckets' upper bounds for o's budget and training length T:
 * ci/paper {8, 256, 1K, 4K, 16K, 32K}; gpu {8, T, 4T, 16T, 32T, 64T}. */
void hydra_claims_lengen_buckets(hydra_claims_budget budget, int T, int *bucket_hi);
void hydra_claim_length_generalisation(const hydra_claims_opts *o, hydra_claim_result *r);
void hydra_claim_mqar(const hydra_claims_opts *o, hydra_claim_result *r);
void hydra_claim_muon_speedup(const hydra_claims_opts *o, hydra_claim_result *r);
void hydra_claim_spec_speedup(const hydra_claims_opts *o, hydra_claim_result *r);

/* The claim-2 hybrid MQAR model as a checkpoint file for this seed and
 * budget: the one claim 2 saved earlier in this process, else trained now.
 * *pairs = its task's pairs per sequence. Release deletes the file. */
hydra_status hydra_claims_mqar_model(const hydra_claims_opts *o, char *path, size_t cap, int *pairs);
void hydra_claims_mqar_model_release(void);

#endif

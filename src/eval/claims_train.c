/* claims_train.c — the claims that train models from scratch inside the gate:
 *
 *   claim_1_length_generalisation  trained at T = 256 on a recurring-segment
 *                                  stream with planted facts, evaluated on
 *                                  32,768-token streams (recall by distance)
 *   claim_2_lossless_mqar          hybrid vs full attention on MQAR
 *   claim_5_muon_speedup           steps to a target loss, AdamW vs Muon
 *   claim_7_spec_decoding_speedup  a trained target/draft pair, decode speed
 *
 * Every model, token and seed comes from opts->seed; the recipes (shapes,
 * learning rates, steps) are fixed per budget and documented in
 * docs/claims.md. Library code: never prints. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "claims_internal.h"
#include "core/internal.h"
#include "hydralm_eval.h"
#include "hydralm_spec.h"
#include "hydralm_train.h"

static int pick(int v, int dflt) { return v > 0 ? v : dflt; }
static float pickf(float v, float dflt) { return v > 0 ? v : dflt; }

/* A small model for the synthetic claims: d_model 64, 2 heads x 32, SwiGLU 176. */
static hydra_config small_cfg(int vocab, const char *pattern, int window) {
    hydra_config c = hydra_config_default();
    c.vocab_size = vocab;
    c.d_model = 64;
    c.n_heads = 2;
    c.head_dim = 32;
    c.n_layers = (int)strlen(pattern);
    c.window = window;
    c.mlp_multiple = 16;
    snprintf(c.pattern, sizeof c.pattern, "%s", pattern);
    return c;
}

/* Train m on task for `steps` at [B, T] with a fresh optimizer (warmup 10%,
 * cosine to 0.1x); val_loss (optional): the loss on 16 validation batches after. */
static hydra_status train_phase(hydra_model *m, uint64_t seed, hydra_task task, int B, int T, int steps,
                                hydra_optimizer_kind kind, float lr, const hydra_claims_opts *o, const char *claim,
                                const char *arm, double *val_loss) {
    hydra_trainer *tr = NULL;
    hydra_train_opts to;
    memset(&to, 0, sizeof to);
    to.optim = hydra_optim_opts_default(kind);
    to.optim.lr = lr;
    to.optim.warmup_steps = steps / 10;
    to.optim.total_steps = steps;
    to.batch = B;
    to.seq = T;
    to.seed = seed;
    hydra_status st = hydra_trainer_create(m, task, &to, &tr);
    double loss = 0;
    for (int s = 1; !st && s <= steps; s++) {
        hydra_step_info info;
        if ((st = hydra_trainer_step(tr, &info))) break;
        loss += info.loss;
        if (s % 50 == 0 || s == steps) {
            hydra_claims_progress(o, claim, "%s (T=%d): step %d / %d, train loss %.3f", arm, T, s, steps,
                                  loss / (s % 50 ? s % 50 : 50));
            loss = 0;
        }
    }
    if (!st && val_loss) st = hydra_trainer_eval(tr, 16, val_loss);
    hydra_trainer_free(tr);
    return st;
}

/* A fresh model from cfg trained on task for `steps` at [B, T]. */
static hydra_status train_fresh(const hydra_config *cfg, uint64_t seed, hydra_task task, int B, int T, int steps,
                                hydra_optimizer_kind kind, float lr, const hydra_claims_opts *o, const char *claim,
                                const char *arm, double *val_loss, hydra_model **out) {
    hydra_model *m = NULL;
    hydra_status st = hydra_model_create(cfg, seed, &m);
    if (!st) st = hydra_claims_place(o, m);
    if (!st) st = train_phase(m, seed, task, B, T, steps, kind, lr, o, claim, arm, val_loss);
    if (st) {
        hydra_model_free(m);
        return st;
    }
    *out = m;
    return HYDRA_OK;
}

/* --------------------------------- claim 1: length generalisation */
static void curve_push(hydra_claim_curve *c, double x, double y) {
    if (c && c->n < HYDRA_CLAIM_CURVE_POINTS) c->x[c->n] = x, c->y[c->n++] = y;
}

#define LG_BUCKETS HYDRA_LENGEN_BUCKETS
void hydra_claims_lengen_buckets(hydra_claims_budget budget, int T, int *hi) {
    static const int cpu[LG_BUCKETS] = {8, 256, 1024, 4096, 16384, 32768};
    const int gpu[LG_BUCKETS] = {8, T, 4 * T, 16 * T, 32 * T, 64 * T}; /* 64 T = 131,072 at T = 2,048 */
    memcpy(hi, budget == HYDRA_BUDGET_GPU ? gpu : cpu, sizeof cpu);
}

/* "le8", "le256", "le1k", ..: a bucket's name in values. */
static void lg_tag(char *buf, size_t cap, int hi) {
    if (hi >= 1024 && hi % 1024 == 0) snprintf(buf, cap, "le%dk", hi / 1024);
    else snprintf(buf, cap, "le%d", hi);
}
#define LG_AT_T HYDRA_LENGEN_AT_T

/* One stream: its tokens, per-position loss and top-1 hit, and its facts. */
static hydra_status lengen_stream(const hydra_model *m, const hydra_plant_opts *po, hydra_rng *rng, size_t n,
                                  int chunk, int32_t *tok, float *pl, uint8_t *hit, hydra_plant_fact *facts,
                                  int cap, int *nf) {
    hydra_status st = hydra_plant_generate(po, rng, tok, n, facts, cap, nf);
    return st ? st : hydra_eval_stream_scores(m, tok, n, chunk, pl, hit);
}

/* At the training length: n_short fresh T-token streams; the background's
 * loss over positions [T/2, T) (the first half is the warm-up in which the
 * dictionary is first seen), the planted answers at distances (window, T].
 * At length N: n_long streams of N tokens fed in 512-token chunks with the
 * state carried; the background over the last `tail` positions, every
 * planted answer by its distance bucket. */
static hydra_status lengen_eval(const hydra_model *m, const hydra_plant_opts *po, uint64_t seed, int T, int n_short,
                                int N, int n_long, int tail, hydra_lengen_scores *sc) {
    const size_t cap = (size_t)(N > T ? N : T) + 1;
    const int fcap = (int)(cap / 6 + 1);
    int32_t *tok = malloc(cap * sizeof *tok);
    float *pl = malloc(cap * sizeof *pl);
    uint8_t *hit = malloc(cap);
    hydra_plant_fact *facts = malloc((size_t)fcap * sizeof *facts);
    hydra_status st = tok && pl && hit && facts ? HYDRA_OK : hydra_set_error(HYDRA_ERR_NOMEM, "out of memory");
    hydra_rng rng;
    hydra_rng_seed(&rng, seed);
    memset(sc, 0, sizeof *sc);
    double s1 = 0, s2 = 0;
    long n1 = 0, n2 = 0;
    int nf = 0;
    for (int i = 0; !st && i < n_short; i++) {
        if ((st = lengen_stream(m, po, &rng, (size_t)T + 1, T, tok, pl, hit, facts, fcap, &nf))) break;
        for (int t = T / 2; t < T; t++)
            if (hydra_plant_position_kind(po, tok, (size_t)t) == 1) s1 += pl[t], n1++;
        for (int f = 0; f < nf; f++)
            if (facts[f].bucket == LG_AT_T)
                sc->rc_short_loss += pl[facts[f].query_pos], sc->rc_short_acc += hit[facts[f].query_pos], sc->rc_short_n++;
    }
    for (int i = 0; !st && i < n_long; i++) {
        if ((st = lengen_stream(m, po, &rng, (size_t)N + 1, 512, tok, pl, hit, facts, fcap, &nf))) break;
        for (int t = N - tail; t < N; t++)
            if (hydra_plant_position_kind(po, tok, (size_t)t) == 1) s2 += pl[t], n2++;
        for (int f = 0; f < nf; f++) {
            const int b = facts[f].bucket;
            sc->loss[b] += pl[facts[f].query_pos], sc->acc[b] += hit[facts[f].query_pos], sc->n[b]++;
        }
    }
    free(tok), free(pl), free(hit), free(facts);
    if (st) return st;
    sc->bg_short = n1 ? s1 / (double)n1 : NAN, sc->bg_long = n2 ? s2 / (double)n2 : NAN;
    sc->rc_short_loss = sc->rc_short_n ? sc->rc_short_loss / (double)sc->rc_short_n : NAN;
    sc->rc_short_acc = sc->rc_short_n ? sc->rc_short_acc / (double)sc->rc_short_n : NAN;
    for (int b = 0; b < LG_BUCKETS; b++)
        sc->loss[b] = sc->n[b] ? sc->loss[b] / (double)sc->n[b] : NAN, sc->acc[b] = sc->n[b] ? sc->acc[b] / (double)sc->n[b] : NAN;
    return HYDRA_OK;
}

/* The per-bucket recall of one arm as curves (x = the bucket's upper bound in tokens). */
static void lengen_curves(hydra_claim_result *r, const char *arm, const hydra_lengen_scores *sc, const int *lg_bucket_hi) {
    const char *what[3] = {"recall_acc", "recall_loss", "recall_answers"};
    for (int k = 0; k < 3 && r->n_curves < HYDRA_CLAIM_MAX_CURVES; k++) {
        hydra_claim_curve *c = &r->curves[r->n_curves++];
        snprintf(c->name, sizeof c->name, "%s_%s_vs_distance", arm, what[k]);
        c->n = 0;
        for (int b = 0; b < LG_BUCKETS; b++)
            curve_push(c, lg_bucket_hi[b], k == 0 ? sc->acc[b] : k == 1 ? sc->loss[b] : (double)sc->n[b]);
    }
}

/* "8:.99 256:.97 1K:.51 ..": accuracy per bucket; a bucket without answers prints "-". */
static void lengen_bucket_line(char *buf, size_t cap, const double *acc, const int *lg_bucket_hi) {
    size_t l = 0;
    buf[0] = 0;
    for (int b = 0; b < LG_BUCKETS && l < cap; b++) {
        const int h = lg_bucket_hi[b];
        char x[16];
        if (isnan(acc[b])) snprintf(x, sizeof x, "-");
        else snprintf(x, sizeof x, "%.2f", acc[b]);
        const char *v = x[0] == '0' && x[1] == '.' ? x + 1 : x; /* ".67": the line has to fit */
        l += (size_t)snprintf(buf + l, cap - l, "%s%d%s:%s", b ? " " : "", h >= 1024 ? h / 1024 : h, h >= 1024 ? "K" : "",
                              v);
    }
}

/* Bucket b is thresholded when it lies beyond the training length and a
 * stream of N tokens can hold one of its distances. */
static int lengen_thresholded(int b, int N, const int *lg_bucket_hi) { return b > LG_AT_T && lg_bucket_hi[b - 1] + 3 < N; }

/* Claim 1's values, thresholds and line from the arms' scores (sc[0] the
 * hybrid, sc[1] the attention baseline when n_arms is 2): lnv = ln(band),
 * pn = the background's renewal fraction. */
void hydra_claims_lengen_report(hydra_claim_result *r, const hydra_lengen_scores *sc, int n_arms, int N, int T, double lnv,
                                double pn, const int *lg_bucket_hi) {
    const double memoryless = lnv, ideal = pn * lnv;
    char tag[16];
    const char *arms[2] = {"hybrid", "attention"};
    for (int a = 0; a < n_arms && a < 2; a++) {
        char name[40];
        const char *arm = arms[a];
#define ARM_VALUE(fmt, v) (snprintf(name, sizeof name, fmt, arm), hydra_claims_add_value(r, name, v))
        ARM_VALUE("%s_loss_at_train_len", sc[a].bg_short);
        ARM_VALUE("%s_loss_last1024", sc[a].bg_long);
        ARM_VALUE("%s_ratio", sc[a].bg_long / sc[a].bg_short);
        ARM_VALUE("%s_recall_loss_at_train_len", sc[a].rc_short_loss);
        ARM_VALUE("%s_recall_acc_at_train_len", sc[a].rc_short_acc);
#undef ARM_VALUE
        lengen_curves(r, arm, &sc[a], lg_bucket_hi);
    }
    /* The hybrid's recall in every bucket, and relative to its recall at
     * distances (window, T] at the training length for the buckets beyond T
     * that the evaluation length reaches (all of them at N = 32,768). */
    for (int b = 0; b < LG_BUCKETS; b++) {
        char name[40];
        lg_tag(tag, sizeof tag, lg_bucket_hi[b]);
        snprintf(name, sizeof name, "hybrid_recall_acc_%s", tag);
        hydra_claims_add_value(r, name, sc[0].acc[b]);
        if (!lengen_thresholded(b, N, lg_bucket_hi)) continue;
        snprintf(name, sizeof name, "hybrid_recall_rel_%s", tag);
        hydra_claims_add_value(r, name, sc[0].acc[b] / sc[0].rc_short_acc);
    }
    hydra_claims_add_threshold(r, "hybrid_ratio", "<=", 1.05);
    /* non-vacuous: at the training length the hybrid must recover at least
     * half of what memory can recover (from memoryless towards ideal), on
     * the background and on the planted facts */
    const double learned = 0.5 * (memoryless + ideal), learned_rc = 0.5 * lnv;
    hydra_claims_add_threshold(r, "hybrid_loss_at_train_len", "<=", learned);
    hydra_claims_add_threshold(r, "hybrid_recall_loss_at_train_len", "<=", learned_rc);
    /* recall beyond the training length keeps >= 90% of the recall within it
     * (a bucket without answers is NaN and fails) */
    for (int b = LG_AT_T + 1; b < LG_BUCKETS; b++) {
        char name[40];
        lg_tag(tag, sizeof tag, lg_bucket_hi[b]);
        snprintf(name, sizeof name, "hybrid_recall_rel_%s", tag);
        if (lengen_thresholded(b, N, lg_bucket_hi)) hydra_claims_add_threshold(r, name, ">=", 0.9);
    }
    char pass[400], base[200] = "", line[120];
    if (n_arms == 2) {
        /* the baseline's numbers mean something only if it learned the task (same rule as the hybrid) */
        const int ok = sc[1].bg_short <= learned && sc[1].rc_short_loss <= learned_rc;
        hydra_claims_add_value(r, "attention_learned", ok);
        lengen_bucket_line(line, sizeof line, sc[1].acc, lg_bucket_hi);
        if (ok)
            snprintf(base, sizeof base, "; full attention ratio %.2f, recall %s", sc[1].bg_long / sc[1].bg_short, line);
        else
            snprintf(base, sizeof base, "; full attention did not learn the task (loss %.2f/%.2f at T, needs <= %.2f/%.2f)",
                     sc[1].bg_short, sc[1].rc_short_loss, learned, learned_rc);
    }
    lengen_bucket_line(line, sizeof line, sc[0].acc, lg_bucket_hi);
    snprintf(pass, sizeof pass, "%d tok: ratio %.3f (loss %.3f at T=%d); recall@T %.2f, by distance %s%s", N,
             sc[0].bg_long / sc[0].bg_short, sc[0].bg_short, T, sc[0].rc_short_acc, line, base);
    hydra_claims_decide(r, pass);
}

void hydra_claim_length_generalisation(const hydra_claims_opts *o, hydra_claim_result *r) {
    const int paper = o->budget == HYDRA_BUDGET_PAPER, gpu = o->budget == HYDRA_BUDGET_GPU;
    const int T = pick(o->lengen_train_len, gpu ? 2048 : 256), B = 16, tail = 1024;
    const int steps = pick(o->lengen_steps, paper || gpu ? 1200 : 400);
    const float lr = pickf(o->lengen_lr, 1e-2f);
    const int N = pick(o->lengen_eval_len, gpu ? 131072 : 32768), n_long = pick(o->lengen_streams, paper ? 32 : 16);
    const int n_short = 64, window = 8;
    /* The background: "0 k v" emissions (k from [1, 32), v from [32, 64)) from
     * 8 live slots, a quarter renewed: recurrences sit 24 tokens apart on
     * average (77% of them beyond the 8-token window), and the live
     * associations fit a 2 x 32 DeltaNet state. Planted on it: 8 reserved keys,
     * each carrying a chain of write/query facts at distances drawn per bucket
     * (a T-token training stream holds only the two short buckets). */
    hydra_plant_opts po = {.base = {.vocab = 64, .n_slots = 8, .seg_len = 2, .new_every = 4, .score_recall_only = 1},
                           .n_keys = 8, .n_buckets = LG_BUCKETS, .gap_max = 32};
    int lg_bucket_hi[LG_BUCKETS];
    hydra_claims_lengen_buckets(o->budget, T, lg_bucket_hi);
    memcpy(po.bucket_hi, lg_bucket_hi, sizeof lg_bucket_hi);
    if (N < tail + T || T < 16 || T % 4) {
        hydra_claims_set_error(r, "options", hydra_set_error(HYDRA_ERR_ARG, "lengen_eval_len must be >= %d and the "
                                                                           "training length a multiple of 4 >= 16", tail + T));
        return;
    }
    /* reference points: a model that remembers nothing beyond the window
     * predicts a value uniformly over the band; one that remembers every live
     * segment pays only for the renewed ones, and a planted answer costs
     * nothing to a model that kept its fact */
    const int w = hydra_segstream_band(&po.base);
    const double lnv = log((double)w), pn = 1.0 / po.base.new_every;
    const double memoryless = lnv, ideal = pn * lnv;
    hydra_claims_add_value(r, "train_seq_len", T);
    hydra_claims_add_value(r, "eval_len", N);
    hydra_claims_add_value(r, "train_steps", steps);
    hydra_claims_add_value(r, "lr", lr);
    hydra_claims_add_value(r, "swa_window", window);
    hydra_claims_add_value(r, "mean_recurrence_distance", po.base.n_slots * (po.base.seg_len + 1));
    hydra_claims_add_value(r, "loss_memoryless_ref", memoryless);
    hydra_claims_add_value(r, "loss_ideal_ref", ideal);
    hydra_claims_add_value(r, "planted_keys", po.n_keys);
    hydra_claims_add_value(r, "recall_loss_memoryless_ref", lnv);
    struct {
        const char *arm, *pattern;
        int window, n_long;
    } arms[2] = {{"hybrid", "DS", window, n_long}, {"attention", "AA", 0, 1}};
    int n_arms = o->lengen_baseline < 0 ? 1 : 2;
    hydra_lengen_scores sc[2];
    for (int a = 0; a < n_arms; a++) {
        hydra_config cfg = small_cfg(hydra_plant_vocab(&po), arms[a].pattern, arms[a].window);
        cfg.init_std = 0.05f; /* as claim 2: with 0.02 most seeds sat on the plateau (bench/LOG.md) */
        /* sequence-length warm-up: the first half of the steps at T/4 (same
         * tokens per step), the second half at T with a fresh schedule */
        hydra_model *m = NULL;
        hydra_status st = train_fresh(&cfg, o->seed * 1000 + 11, hydra_plant_task(&po), 4 * B, T / 4, steps / 2,
                                      HYDRA_OPT_MUON, lr, o, r->name, arms[a].arm, NULL, &m);
        if (!st) st = train_phase(m, o->seed * 1000 + 13, hydra_plant_task(&po), B, T, steps - steps / 2,
                                  HYDRA_OPT_MUON, lr, o, r->name, arms[a].arm, NULL);
        if (!st) {
            hydra_claims_progress(o, r->name, "%s: evaluating %d x %d tokens", arms[a].arm, arms[a].n_long, N);
            st = lengen_eval(m, &po, o->seed * 1000 + 12, T, n_short, N, arms[a].n_long, tail, &sc[a]);
        }
        hydra_model_free(m);
        if (st) {
            hydra_claims_set_error(r, arms[a].arm, st);
            return;
        }
        char line[120];
        const char *arm = arms[a].arm;
        lengen_bucket_line(line, sizeof line, sc[a].acc, lg_bucket_hi);
        hydra_claims_progress(o, r->name, "%s: planted recall accuracy at T %.3f (%ld answers); by distance %s", arm,
                              sc[a].rc_short_acc, sc[a].rc_short_n, line);
    }
    hydra_claims_lengen_report(r, sc, n_arms, N, T, lnv, pn, lg_bucket_hi);
}

/* ------------------------------------------------ claim 2: MQAR */
/* Muon for the hidden matrices (lr 0.02), AdamW (1e-2) for the rest. */
static hydra_optim_opts muon_opts(void) {
    hydra_optim_opts p = hydra_optim_opts_default(HYDRA_OPT_MUON);
    p.lr = 1e-2f;
    p.muon_lr = 0.02f;
    return p;
}

/* The recipes (docs/claims.md, sweeps in bench/LOG.md). Both arms: two
 * layers, init std 0.05, Muon (lr 0.02) + AdamW (lr 1e-2) for the rest,
 * warmup 10%, cosine; same steps, batch, curriculum and data. The hybrid is
 * "DS" with window L/4; the baseline "AA" (full attention). Muon is what makes
 * the recipe fast: with AdamW both arms sit on MQAR's plateau for hundreds to
 * thousands of steps; the init std and AdamW lr are what the attention arm
 * needed to learn on every seed at L = 64.
 * Paper sizes (L = 256 / 16 pairs, L = 512 / 64 pairs) add two things, each
 * measured necessary: a curriculum of shorter MQAR tasks first (without it
 * the attention arm stayed at 0.10 (L 256) / 0.04 (L 512) accuracy after 600 /
 * 400 steps with any lr swept), and a slow-decay gate init for the DeltaNet
 * (dt in [1e-4, 1e-3]: with the default [1e-3, 0.1] memories fade within
 * ~100 tokens at init and the hybrid stayed at chance at L = 256). L = 512
 * with 64 pairs needs d_model 128 (2 heads x 64: a 64 x 64 state per head);
 * at d_model 64 the hybrid stayed at chance. */
#define MQAR_MAX_SIZES 3
#define MQAR_MAX_LRS 3
typedef struct {
    int vocab, len, pairs, window, steps, batch, eval_every;
    int d_model, head_dim; /* 2 heads */
    float dt_min, dt_max;  /* 0: the default gate init */
    hydra_mqar_stage stages[HYDRA_MQAR_MAX_STAGES];
    int n_stages;
    float muon_lrs[MQAR_MAX_LRS]; /* each arm trained at each, its best held-out accuracy kept (0: muon_opts' only) */
} mqar_recipe;

/* The gpu budget (issue 15): the Zoology grid's long end, L = 512 / 64 pairs
 * (the paper size), 1,024 / 128 and 2,048 / 256, window L/4. The d_model
 * grows with the pairs as at the paper sizes (a head_dim x head_dim state per
 * head must hold them: 2 x 64 x 64 for 64 pairs, 2 x 128 x 128 from 128
 * pairs); the vocabulary is 4 x pairs (the keys fill half of [1, V/2)). The
 * curriculum climbs by 4x in length as the paper recipe does. The step counts
 * are set from the estimated H100 speed (docs/claims.md).
 * Each arm is tuned over the Muon learning rate (0.02, 0.01, 0.005: the best
 * final held-out accuracy of the three is the arm's, and its lr is
 * reported). Session 13's sweep (bench/LOG.md) found the attention arm at
 * chance at L = 1,024 with 0.02 alone (the session-10 FAIL) and at 1.000
 * with 0.01, or init std 0.02, or d_model 128: a baseline left untuned. */
static const float k_mqar_gpu_lrs[MQAR_MAX_LRS] = {0.02f, 0.01f, 0.005f};
static int mqar_gpu_recipes(mqar_recipe *q) {
    q[0] = (mqar_recipe){.vocab = 256, .len = 512, .pairs = 64, .window = 128, .steps = 250, .batch = 16,
                         .eval_every = 50, .d_model = 128, .head_dim = 64, .dt_min = 1e-4f, .dt_max = 1e-3f};
    q[0].stages[0] = (hydra_mqar_stage){{256, 64, 4}, 300, 128};
    q[0].stages[1] = (hydra_mqar_stage){{256, 256, 16}, 150, 32};
    q[0].n_stages = 2;
    q[1] = (mqar_recipe){.vocab = 512, .len = 1024, .pairs = 128, .window = 256, .steps = 300, .batch = 16,
                         .eval_every = 100, .d_model = 256, .head_dim = 128, .dt_min = 1e-4f, .dt_max = 1e-3f};
    q[1].stages[0] = (hydra_mqar_stage){{512, 64, 4}, 300, 128};
    q[1].stages[1] = (hydra_mqar_stage){{512, 256, 32}, 200, 32};
    q[1].n_stages = 2;
    q[2] = (mqar_recipe){.vocab = 1024, .len = 2048, .pairs = 256, .window = 512, .steps = 400, .batch = 16,
                         .eval_every = 100, .d_model = 256, .head_dim = 128, .dt_min = 1e-4f, .dt_max = 1e-3f};
    q[2].stages[0] = (hydra_mqar_stage){{1024, 64, 4}, 300, 128};
    q[2].stages[1] = (hydra_mqar_stage){{1024, 512, 64}, 200, 32};
    q[2].n_stages = 2;
    for (int i = 0; i < 3; i++) memcpy(q[i].muon_lrs, k_mqar_gpu_lrs, sizeof k_mqar_gpu_lrs);
    return 3;
}

/* Quick runs: a task's length, pairs, window and vocabulary divided by div
 * (>= 1 pair, length >= 4 pairs, window >= 1, vocabulary >= 2 pairs + 2). */
static void mqar_shrink(hydra_mqar_opts *t, int *window, int div) {
    t->n_pairs = t->n_pairs / div > 0 ? t->n_pairs / div : 1;
    t->seq_len = t->seq_len / div >= 4 * t->n_pairs ? t->seq_len / div : 4 * t->n_pairs;
    if (window) *window = *window / div > 0 ? *window / div : 1;
    t->vocab = t->vocab / div >= 2 * t->n_pairs + 2 ? t->vocab / div : 2 * t->n_pairs + 2;
}

/* The task sizes of claim 2 for o's budget (1 for ci, 2 for paper, 3 for gpu). */
static int mqar_recipes_for(const hydra_claims_opts *o, mqar_recipe *q) {
    memset(q, 0, MQAR_MAX_SIZES * sizeof *q);
    int n = 1;
    if (o->budget == HYDRA_BUDGET_GPU) {
        n = mqar_gpu_recipes(q);
    } else if (o->budget != HYDRA_BUDGET_PAPER) {
        q[0] = (mqar_recipe){.vocab = 64, .len = 64, .pairs = 4, .window = 16, .steps = 400, .batch = 64, .eval_every = 50,
                             .d_model = 64, .head_dim = 32};
    } else {
        q[0] = (mqar_recipe){.vocab = 128, .len = 256, .pairs = 16, .window = 64, .steps = 200, .batch = 32,
                             .eval_every = 50, .d_model = 64, .head_dim = 32, .dt_min = 1e-4f, .dt_max = 1e-3f};
        q[0].stages[0] = (hydra_mqar_stage){{128, 64, 4}, 200, 128};
        q[0].n_stages = 1;
        q[1] = (mqar_recipe){.vocab = 256, .len = 512, .pairs = 64, .window = 128, .steps = 250, .batch = 16,
                             .eval_every = 50, .d_model = 128, .head_dim = 64, .dt_min = 1e-4f, .dt_max = 1e-3f};
        q[1].stages[0] = (hydra_mqar_stage){{256, 64, 4}, 300, 128}; /* 150: attention failed seed 3 */
        q[1].stages[1] = (hydra_mqar_stage){{256, 256, 16}, 150, 32};
        q[1].n_stages = 2;
        n = 2;
    }
    for (int i = 0; i < n && o->mqar_steps > 0; i++) /* quick runs: the main task only */
        q[i].steps = o->mqar_steps, q[i].eval_every = q[i].steps / 8 > 0 ? q[i].steps / 8 : 1, q[i].n_stages = 0;
    for (int i = 0; i < n && o->mqar_size_div > 1; i++) {
        hydra_mqar_opts t = {.vocab = q[i].vocab, .seq_len = q[i].len, .n_pairs = q[i].pairs};
        mqar_shrink(&t, &q[i].window, o->mqar_size_div);
        q[i].len = t.seq_len, q[i].pairs = t.n_pairs, q[i].vocab = t.vocab;
        q[i].d_model = q[i].d_model / o->mqar_size_div >= 32 ? q[i].d_model / o->mqar_size_div : 32; /* 2 heads */
        q[i].head_dim = q[i].d_model / 2;
        for (int k = 0; k < q[i].n_stages; k++) { /* the model's vocabulary is the main task's */
            mqar_shrink(&q[i].stages[k].task, NULL, o->mqar_size_div);
            q[i].stages[k].task.vocab = q[i].vocab;
        }
    }
    return n;
}

typedef struct {
    hydra_claim_curve *acc, *beyond, *loss; /* any may be NULL */
    const hydra_claims_opts *o;
    const char *claim, *arm;
    double stop_below; /* > 0: stop training once the held-out loss is <= this */
} mqar_cb;

static int mqar_on_point(const hydra_mqar_point *p, void *user) {
    mqar_cb *c = user;
    curve_push(c->acc, p->step, p->eval.accuracy);
    curve_push(c->beyond, p->step, p->eval.accuracy_beyond);
    curve_push(c->loss, p->step, p->eval.loss);
    if (c->stop_below > 0 && p->eval.loss <= c->stop_below) return 1;
    hydra_claims_progress(c->o, c->claim, "%s: step %d, accuracy %.3f (beyond window %.3f), %.0f s", c->arm, p->step,
                          p->eval.accuracy, p->eval.accuracy_beyond, p->seconds);
    return 0;
}

/* One MQAR training run of the recipe q with optimizer `optim` (lr schedule
 * filled in here); r (optional) receives the accuracy curves; fin (optional)
 * a final evaluation on fresh sequences (about 16K answers); m
 * (optional) the model. */
static hydra_status mqar_run(const hydra_claims_opts *o, const mqar_recipe *q, const char *pattern, int window,
                             hydra_optim_opts optim, uint64_t seed, const char *claim, const char *arm,
                             hydra_claim_result *r, hydra_claim_curve *loss_curve, double stop_below,
                             hydra_model **m, hydra_mqar_point *fin) {
    hydra_mqar_train_opts t = hydra_mqar_train_opts_default();
    t.cfg = small_cfg(q->vocab, pattern, window);
    t.cfg.d_model = q->d_model, t.cfg.head_dim = q->head_dim;
    t.cfg.init_std = 0.05f; /* with std 0.02 the attention arm often stalls at ~0.54 (bench/LOG.md) */
    if (q->dt_max > 0) t.cfg.init_dt_min = q->dt_min, t.cfg.init_dt_max = q->dt_max;
    memcpy(t.stages, q->stages, sizeof t.stages);
    t.n_stages = q->n_stages;
    t.init_seed = seed * 1000 + 21;
    t.task = (hydra_mqar_opts){.vocab = q->vocab, .seq_len = q->len, .n_pairs = q->pairs};
    t.train.optim = optim;
    t.train.optim.warmup_steps = q->steps / 10;
    t.train.optim.total_steps = q->steps;
    t.train.batch = q->batch;
    t.train.seed = seed * 1000 + 22;
    t.steps = q->steps;
    t.eval_every = q->eval_every;
    t.eval_batches = 4; /* the curve points: 256 sequences */
    t.eval_batch = 64;
    t.eval_seed = seed * 1000 + 23;
    t.window = q->window; /* "beyond" = beyond the hybrid's window, for both arms */
    t.device = o->device;
    mqar_cb cb = {NULL, NULL, loss_curve, o, claim, arm, stop_below};
    if (r && r->n_curves + 2 <= HYDRA_CLAIM_MAX_CURVES) {
        cb.acc = &r->curves[r->n_curves++];
        cb.beyond = &r->curves[r->n_curves++];
        snprintf(cb.acc->name, sizeof cb.acc->name, "%s_accuracy_vs_step", arm);
        snprintf(cb.beyond->name, sizeof cb.beyond->name, "%s_beyond_window_accuracy_vs_step", arm);
    }
    t.on_point = mqar_on_point;
    t.user = &cb;
    hydra_model *mm = NULL;
    hydra_status st = hydra_mqar_train(&t, &mm, NULL);
    /* the final, larger held-out evaluation (other sequences than the curve's) */
    hydra_mqar *task = NULL;
    if (!st && fin && !(st = hydra_mqar_create(&t.task, &task))) {
        memset(fin, 0, sizeof *fin);
        fin->step = q->steps;
        /* ~16K answers: 16 x 64 sequences at 4 and 16 pairs, 4 x 64 at 64 pairs */
        int nb = 16384 / (64 * q->pairs);
        nb = nb < 4 ? 4 : nb > 16 ? 16 : nb;
        st = hydra_mqar_eval(mm, task, seed * 1000 + 24, nb, 64, q->window, &fin->eval);
        hydra_mqar_free(task);
    }
    if (!st && m) *m = mm;
    else hydra_model_free(mm);
    return st;
}

/* the hybrid checkpoint shared with claim 6 */
static struct {
    char path[512];
    uint64_t seed;
    hydra_claims_budget budget;
    int pairs, valid;
} mqar_cache;

static void mqar_cache_store(const hydra_claims_opts *o, const hydra_model *m, int pairs) {
    hydra_claims_mqar_model_release();
    snprintf(mqar_cache.path, sizeof mqar_cache.path, "%s/hydra_claims_mqar_%d_%llu.safetensors",
             o->tmp_dir ? o->tmp_dir : "/tmp", (int)getpid(), (unsigned long long)o->seed);
    if (hydra_model_save(m, mqar_cache.path)) return; /* claim 6 will train its own */
    mqar_cache.seed = o->seed, mqar_cache.budget = o->budget, mqar_cache.pairs = pairs, mqar_cache.valid = 1;
}

void hydra_claims_mqar_model_release(void) {
    if (mqar_cache.valid) unlink(mqar_cache.path);
    mqar_cache.valid = 0;
}

hydra_status hydra_claims_mqar_model(const hydra_claims_opts *o, char *path, size_t cap, int *pairs) {
    mqar_recipe q[MQAR_MAX_SIZES];
    mqar_recipes_for(o, q); /* claim 6 uses the first size's hybrid */
    if (!(mqar_cache.valid && mqar_cache.seed == o->seed && mqar_cache.budget == o->budget)) {
        hydra_model *m = NULL;
        hydra_mqar_point fin;
        hydra_status st = mqar_run(o, &q[0], "DS", q[0].window, muon_opts(), o->seed, "claim_6_factbank_recall",
                                   "MQAR hybrid", NULL, NULL, 0, &m, &fin);
        if (!st) mqar_cache_store(o, m, q[0].pairs);
        hydra_model_free(m);
        if (st) return st;
        if (!mqar_cache.valid) return hydra_set_error(HYDRA_ERR_IO, "could not save the MQAR model under %s", o->tmp_dir);
    }
    snprintf(path, cap, "%s", mqar_cache.path);
    *pairs = mqar_cache.pairs;
    return HYDRA_OK;
}

/* One arm of a size (a: 0 hybrid, 1 attention), at each of the recipe's
 * Muon learning rates: the run with the best final held-out accuracy is
 * the arm's (the first on a tie); its curves go to r and, with several
 * rates, its lr as "<arm>_muon_lr". cache: keep its model for claim 6. */
static hydra_status mqar_arm(const hydra_claims_opts *o, const mqar_recipe *q, int a, const char *arm,
                             hydra_claim_result *r, int cache, hydra_mqar_point *best) {
    const int n_lr = q->muon_lrs[0] > 0 ? MQAR_MAX_LRS : 1;
    hydra_claim_result *tmp = calloc(1, sizeof *tmp); /* the curves of one run (kept when it is the best) */
    if (!tmp) return hydra_set_error(HYDRA_ERR_NOMEM, "claim 2: out of memory");
    hydra_claim_curve kept[2];
    float best_lr = 0;
    hydra_status st = HYDRA_OK;
    for (int i = 0; i < n_lr && !st; i++) {
        hydra_optim_opts opt = muon_opts();
        if (n_lr > 1) {
            if (q->muon_lrs[i] <= 0) continue;
            opt.muon_lr = q->muon_lrs[i];
        }
        char label[48];
        snprintf(label, sizeof label, n_lr > 1 ? "%s (muon lr %g)" : "%s", arm, (double)opt.muon_lr);
        tmp->n_curves = 0;
        hydra_model *m = NULL;
        hydra_mqar_point fin;
        st = mqar_run(o, q, a ? "AA" : "DS", a ? 0 : q->window, opt, o->seed, r->name, label, tmp, NULL, 0, &m, &fin);
        if (!st && (i == 0 || fin.eval.accuracy > best->eval.accuracy)) {
            *best = fin, best_lr = opt.muon_lr;
            memcpy(kept, tmp->curves, sizeof kept);
            if (cache) mqar_cache_store(o, m, q->pairs);
        }
        hydra_model_free(m);
    }
    free(tmp);
    if (st) return st;
    for (int k = 0; k < 2 && r->n_curves < HYDRA_CLAIM_MAX_CURVES; k++) {
        r->curves[r->n_curves] = kept[k];
        snprintf(r->curves[r->n_curves].name, sizeof r->curves[0].name, "%s_%s", arm,
                 k ? "beyond_window_accuracy_vs_step" : "accuracy_vs_step");
        r->n_curves++;
    }
    if (n_lr > 1) {
        char name[64];
        snprintf(name, sizeof name, "%s_muon_lr", arm);
        hydra_claims_add_value(r, name, best_lr);
    }
    return HYDRA_OK;
}

/* Every size: both arms trained, thresholds per size (a suffix "_L<len>"
 * names them when there are several sizes). */
void hydra_claim_mqar(const hydra_claims_opts *o, hydra_claim_result *r) {
    mqar_recipe qs[MQAR_MAX_SIZES];
    const int n_sizes = mqar_recipes_for(o, qs);
    char pass[256] = "", name[64], sfx[16] = "";
    for (int z = 0; z < n_sizes; z++) {
        const mqar_recipe *q = &qs[z];
        if (n_sizes > 1) snprintf(sfx, sizeof sfx, "_L%d", q->len);
#define ADD_VALUE(key, v) (snprintf(name, sizeof name, "%s%s", key, sfx), hydra_claims_add_value(r, name, v))
        ADD_VALUE("seq_len", q->len);
        ADD_VALUE("pairs", q->pairs);
        ADD_VALUE("vocab", q->vocab);
        ADD_VALUE("hybrid_window", q->window);
        ADD_VALUE("d_model", q->d_model);
        int stage_steps = 0;
        for (int i = 0; i < q->n_stages; i++) stage_steps += q->stages[i].steps;
        ADD_VALUE("curriculum_steps", stage_steps);
        ADD_VALUE("steps", q->steps);
        ADD_VALUE("batch", q->batch);
        const char *arms[2] = {"hybrid", "attention"};
        hydra_mqar_point fin[2];
        for (int a = 0; a < 2; a++) {
            char arm[32];
            snprintf(arm, sizeof arm, "%s%s", arms[a], sfx);
            hydra_status st = mqar_arm(o, q, a, arm, r, z == 0 && a == 0, &fin[a]);
            if (st) {
                hydra_claims_set_error(r, arm, st);
                return;
            }
            snprintf(name, sizeof name, "%s_accuracy", arm);
            hydra_claims_add_value(r, name, fin[a].eval.accuracy);
            snprintf(name, sizeof name, "%s_beyond_window_accuracy", arm);
            hydra_claims_add_value(r, name, fin[a].eval.accuracy_beyond);
        }
        ADD_VALUE("answers", (double)fin[0].eval.answers);
        ADD_VALUE("answers_beyond_window", (double)fin[0].eval.answers_beyond);
        double ratio = fin[0].eval.accuracy / fin[1].eval.accuracy;
        double ratio_b = fin[0].eval.accuracy_beyond / fin[1].eval.accuracy_beyond;
        ADD_VALUE("ratio", ratio);
        ADD_VALUE("ratio_beyond_window", ratio_b);
#undef ADD_VALUE
        snprintf(name, sizeof name, "ratio%s", sfx);
        hydra_claims_add_threshold(r, name, ">=", 0.9);
        snprintf(name, sizeof name, "ratio_beyond_window%s", sfx);
        hydra_claims_add_threshold(r, name, ">=", 0.9);
        snprintf(name, sizeof name, "attention%s_accuracy", sfx);
        hydra_claims_add_threshold(r, name, ">=", 0.9);
        size_t l = strlen(pass);
        if (n_sizes == 1)
            snprintf(pass, sizeof pass, "ratio=%.2f (beyond window %.2f; hybrid %.3f, attention %.3f; L=%d, %d pairs)",
                     ratio, ratio_b, fin[0].eval.accuracy, fin[1].eval.accuracy, q->len, q->pairs);
        else
            snprintf(pass + l, sizeof pass - l, "%sL=%d/%d pairs ratio=%.2f (beyond %.2f; attention %.3f)", z ? "; " : "",
                     q->len, q->pairs, ratio, ratio_b, fin[1].eval.accuracy);
    }
    hydra_claims_decide(r, pass);
}

/* ------------------------------------------- claim 5: Muon speedup */
/* First step at which a validation-loss curve reaches `target` (linear
 * interpolation between evaluation points); NAN if it never does. */
static double steps_to(const hydra_claim_curve *c, double target) {
    for (int i = 0; i < c->n; i++) {
        if (c->y[i] > target) continue;
        if (i == 0) return c->x[0];
        double f = (c->y[i - 1] - target) / (c->y[i - 1] - c->y[i]);
        return c->x[i - 1] + f * (c->x[i] - c->x[i - 1]);
    }
    return NAN;
}

/* One run of claim 5: optimizer k (0 AdamW, 1 Muon) at learning rate lr from
 * seed; cur receives the held-out loss vs step, and the run stops once that
 * is <= target. The MQAR and the text versions differ only here. */
#define MUON_N_LR 3
typedef struct {
    const char *what;                 /* the task, for the summary line */
    float lrs[2][MUON_N_LR];          /* the sweep: AdamW lr, Muon lr */
    int seeds, steps;
    hydra_status (*run)(const hydra_claims_opts *o, const void *ctx, int k, float lr, uint64_t seed, const char *claim,
                        const char *arm, double target, hydra_claim_curve *cur);
    const void *ctx;
} muon_setup;

static hydra_status muon_mqar_run(const hydra_claims_opts *o, const void *ctx, int k, float lr, uint64_t seed,
                                  const char *claim, const char *arm, double target, hydra_claim_curve *cur) {
    const mqar_recipe *q = ctx;
    hydra_optim_opts p = k ? muon_opts() : hydra_optim_opts_default(HYDRA_OPT_ADAMW);
    if (k) p.muon_lr = lr;
    else p.lr = lr;
    return mqar_run(o, q, "DS", q->window, p, seed, claim, arm, NULL, cur, target, NULL, NULL);
}

/* The text version (gpu budget): a fresh model of cfg on the shipped text at
 * [B, T]; held-out loss on 8 fixed validation batches every eval_every steps. */
typedef struct {
    hydra_text_data *text;
    hydra_config cfg;
    int B, T, steps, eval_every;
} muon_text;

static hydra_status muon_text_run(const hydra_claims_opts *o, const void *ctx, int k, float lr, uint64_t seed,
                                  const char *claim, const char *arm, double target, hydra_claim_curve *cur) {
    const muon_text *c = ctx;
    hydra_train_opts to;
    memset(&to, 0, sizeof to);
    to.optim = hydra_optim_opts_default(k ? HYDRA_OPT_MUON : HYDRA_OPT_ADAMW);
    if (k) to.optim.lr = 1e-3f, to.optim.muon_lr = lr; /* the rest: AdamW's middle rate */
    else to.optim.lr = lr;
    to.optim.warmup_steps = c->steps / 10;
    to.optim.total_steps = c->steps;
    to.batch = c->B, to.seq = c->T, to.seed = seed * 1000 + 52;
    hydra_model *m = NULL;
    hydra_trainer *tr = NULL;
    hydra_status st = hydra_model_create(&c->cfg, seed * 1000 + 51, &m);
    if (!st) st = hydra_claims_place(o, m);
    if (!st) st = hydra_trainer_create(m, hydra_text_data_task(c->text), &to, &tr);
    for (int s = 1; !st && s <= c->steps; s++) {
        hydra_step_info info;
        if ((st = hydra_trainer_step(tr, &info))) break;
        if (s % c->eval_every && s != c->steps) continue;
        double val = NAN;
        if ((st = hydra_trainer_eval(tr, 8, &val))) break;
        curve_push(cur, s, val);
        hydra_claims_progress(o, claim, "%s: step %d, held-out loss %.3f", arm, s, val);
        if (val <= target) break;
    }
    hydra_trainer_free(tr);
    hydra_model_free(m);
    return st;
}

/* The sweep, the rule and the report, shared by both versions:
 * - every run stops once it reaches the target fixed in advance;
 * - the same sweep for both optimizers, each at its best rate (fewest mean
 *   steps over the seeds);
 * - runs that never reach the target count as the run length (a lower bound
 *   of their steps): the AdamW mean is then a lower bound, so the speedup is
 *   one only if every Muon run reached the target (thresholded). */
static void muon_sweep(const hydra_claims_opts *o, hydra_claim_result *r, const muon_setup *ms, int lr_from, int lr_to,
                       double target) {
    const char *opt_name[2] = {"adamw", "muon"};
    hydra_claims_add_value(r, "seeds", ms->seeds);
    hydra_claims_add_value(r, "steps", ms->steps);
    hydra_claims_add_value(r, "target_val_loss", target);
    hydra_claims_add_value(r, "lrs_swept_per_optimizer", lr_to - lr_from + 1);
    double best_mean[2] = {INFINITY, INFINITY}, best_lr[2] = {0, 0};
    int best_reached[2] = {0, 0};
    hydra_claim_curve cur, best_curve[2];
    memset(best_curve, 0, sizeof best_curve);
    char name[40];
    for (int k = 0; k < 2; k++) {
        for (int li = lr_from; li <= lr_to; li++) {
            double sum = 0;
            int reached = 0;
            hydra_claim_curve seed0;
            for (int s = 0; s < ms->seeds; s++) {
                cur.n = 0;
                char arm[64];
                snprintf(arm, sizeof arm, "%s lr %g seed %d/%d", k ? "Muon" : "AdamW", (double)ms->lrs[k][li], s + 1,
                         ms->seeds);
                hydra_status st = ms->run(o, ms->ctx, k, ms->lrs[k][li], o->seed + 100 * (uint64_t)s, r->name, arm,
                                          target, &cur);
                if (st) {
                    hydra_claims_set_error(r, arm, st);
                    return;
                }
                double n = steps_to(&cur, target);
                reached += !isnan(n);
                sum += isnan(n) ? ms->steps : n;
                if (s == 0) seed0 = cur;
            }
            double mean = sum / ms->seeds;
            snprintf(name, sizeof name, "%s_lr%g_mean_steps", opt_name[k], (double)ms->lrs[k][li]);
            hydra_claims_add_value(r, name, mean);
            snprintf(name, sizeof name, "%s_lr%g_reached", opt_name[k], (double)ms->lrs[k][li]);
            hydra_claims_add_value(r, name, reached);
            if (mean < best_mean[k])
                best_mean[k] = mean, best_lr[k] = ms->lrs[k][li], best_reached[k] = reached, best_curve[k] = seed0;
        }
        snprintf(name, sizeof name, "%s_lr", opt_name[k]);
        hydra_claims_add_value(r, name, best_lr[k]);
        snprintf(name, sizeof name, "%s_steps_to_target", opt_name[k]);
        hydra_claims_add_value(r, name, best_mean[k]);
        snprintf(name, sizeof name, "%s_reached", opt_name[k]);
        hydra_claims_add_value(r, name, best_reached[k]);
    }
    const double speedup = best_mean[0] / best_mean[1];
    hydra_claims_add_value(r, "speedup", speedup);
    hydra_claims_add_threshold(r, "speedup", ">=", 1.3);
    hydra_claims_add_threshold(r, "muon_reached", "==", ms->seeds);
    for (int k = 0; k < 2 && r->n_curves < HYDRA_CLAIM_MAX_CURVES; k++) {
        r->curves[r->n_curves] = best_curve[k];
        snprintf(r->curves[r->n_curves++].name, sizeof r->curves[0].name, "%s_val_loss_vs_step_seed0", opt_name[k]);
    }
    char pass[256];
    snprintf(pass, sizeof pass,
             "speedup=%.2f on %s (steps to held-out loss %.3f: AdamW lr %g %.0f, %d/%d seeds reached; "
             "Muon lr %g %.0f, %d/%d; %d lr each)",
             speedup, ms->what, target, best_lr[0], best_mean[0], best_reached[0], ms->seeds, best_lr[1], best_mean[1],
             best_reached[1], ms->seeds, lr_to - lr_from + 1);
    hydra_claims_decide(r, pass);
}

/* gpu budget: the default config (768 x 12 unless the quick-run knobs say
 * otherwise) on the shipped tinyshakespeare (bytes; the last 10% held out),
 * B 16 x T 512, 2 seeds, AdamW lr 3e-4 / 1e-3 / 3e-3 and Muon lr 0.01 / 0.02
 * / 0.04 (its AdamW part at 1e-3), all six rates run. Target, fixed in advance
 * before any GPU run: held-out loss 1.70 nats/byte (memoryless over bytes:
 * ln 256 = 5.55; the d256 x 6 model of docs/optim.md reached 1.6 after 1M
 * tokens; 400 steps here are 3.3M). */
static void muon_speedup_text(const hydra_claims_opts *o, hydra_claim_result *r) {
    const char *path = o->text_path ? o->text_path : "data/tinyshakespeare.txt";
    muon_text c = {.B = 16, .T = pick(o->muon_seq, 512), .steps = o->muon_steps};
    c.eval_every = c.steps / 20 > 0 ? c.steps / 20 : 1;
    c.cfg = hydra_config_default();
    c.cfg.d_model = pick(o->muon_d_model, 768);
    c.cfg.n_layers = pick(o->muon_layers, 12);
    c.cfg.n_heads = c.cfg.d_model / 64 > 0 ? c.cfg.d_model / 64 : 1;
    c.cfg.head_dim = c.cfg.d_model / c.cfg.n_heads;
    /* the default layout (an SWA layer every swa_every) at any depth */
    hydra_status st = hydra_text_data_load(path, 0.1, &c.text);
    if (st) {
        hydra_claims_set_error(r, "claim 5 (gpu) trains on the shipped text (run from the repository root)", st);
        return;
    }
    char what[96];
    snprintf(what, sizeof what, "tinyshakespeare d%d x %d, B %d x T %d", c.cfg.d_model, c.cfg.n_layers, c.B, c.T);
    muon_setup ms = {what, {{3e-4f, 1e-3f, 3e-3f}, {0.01f, 0.02f, 0.04f}}, 2, c.steps, muon_text_run, &c};
    hydra_claims_add_value(r, "d_model", c.cfg.d_model);
    hydra_claims_add_value(r, "layers", c.cfg.n_layers);
    hydra_claims_add_value(r, "seq_len", c.T);
    hydra_claims_add_value(r, "loss_memoryless_ref", log(256.0));
    muon_sweep(o, r, &ms, 0, MUON_N_LR - 1, 1.70);
    hydra_text_data_free(c.text);
}

/* Claim 2's hybrid on claim 2's ci task, trained with AdamW and with Muon
 * (+ AdamW 1e-2 for the non-matrix parameters), same steps, batch, warmup,
 * cosine schedule, data and init per seed.
 * - Target, fixed in advance: held-out answer loss ln(P) / 4 = 0.347 (P = 4
 *   pairs). Memoryless: ln 32 = 3.47; knowing the context's values but not
 *   which key has which: ln 4 = 1.39.
 * - Learning rates: AdamW lr 3e-3 / 1e-2 / 3e-2, Muon lr 0.01 / 0.02 / 0.04:
 *   under the paper budget the sweep runs here on the claim's 4 seeds; under
 *   ci the middle rates, fixed in advance, run alone.
 * The gpu budget runs the text version above. */
void hydra_claim_muon_speedup(const hydra_claims_opts *o, hydra_claim_result *r) {
    if (o->budget == HYDRA_BUDGET_GPU) {
        muon_speedup_text(o, r);
        return;
    }
    const int paper = o->budget == HYDRA_BUDGET_PAPER;
    mqar_recipe q = {.vocab = 64, .len = 64, .pairs = 4, .window = 16, .batch = 64, .d_model = 64, .head_dim = 32}; /* claim 2's ci task */
    q.steps = o->muon_steps;
    q.eval_every = q.steps / 20 > 0 ? q.steps / 20 : 1;
    char what[64];
    snprintf(what, sizeof what, "MQAR L=%d/%d pairs", q.len, q.pairs);
    muon_setup ms = {what, {{3e-3f, 1e-2f, 3e-2f}, {0.01f, 0.02f, 0.04f}}, 4, q.steps, muon_mqar_run, &q};
    hydra_claims_add_value(r, "loss_memoryless_ref", log((double)(q.vocab - q.vocab / 2)));
    muon_sweep(o, r, &ms, paper ? 0 : 1, paper ? MUON_N_LR - 1 : 1, log((double)q.pairs) / 4);
}

/* --------------------------- claim 7: speculative decoding speedup */
/* A text pair, trained here on the shipped tinyshakespeare (bytes, vocab
 * 256; the last 10 % is the validation split, never trained on): a target
 * (d_model 512, 8 layers DDDS, 8 heads x 64, window 64) and a draft (d_model
 * 128, 2 layers DS, 2 heads x 64), AdamW (target lr 1e-3, draft 3e-3; Muon's
 * Newton-Schulz on 512-wide matrices costs more than the step at this
 * batch), `spec_train_steps` steps of 16 x 128 bytes each. Then
 * hydra_spec_measure_speed_prompts: 4 prompts of 64 bytes from the
 * validation split, 128 new tokens each, plain and speculative greedy
 * decoding interleaved, 5 repetitions; thresholded: the median of the
 * per-repetition paired decode-only ratios at k = 4, fixed in advance (the
 * best k of the tinyshakespeare bench, docs/spec-decoding.md). alpha is
 * measured on the same held-out prompts and printed beside it. Temperature
 * 0.7 at k = 4 is recorded, not thresholded. */
#define SPEC_CLAIM_K 4
#define SPEC_PROMPTS 4
#define SPEC_PROMPT_LEN 64
void hydra_claim_spec_speedup(const hydra_claims_opts *o, hydra_claim_result *r) {
    const int V = 256, T = 128, B = 16;
    const int t_steps = o->spec_train_steps, d_steps = t_steps;
    const char *path = o->text_path ? o->text_path : "data/tinyshakespeare.txt";
    hydra_text_data *text = NULL;
    hydra_model *tm = NULL, *dm = NULL;
    hydra_status st = hydra_text_data_load(path, 0.1, &text);
    if (st) {
        hydra_claims_set_error(r, "claim 7 trains on the shipped text (run from the repository root)", st);
        return;
    }
    hydra_config tc = small_cfg(V, "DDDS", 64), dc = small_cfg(V, "DS", 64);
    tc.d_model = 512, tc.n_heads = 8, tc.head_dim = 64, tc.n_layers = 8, tc.mlp_multiple = 64;
    dc.d_model = 128, dc.n_heads = 2, dc.head_dim = 64;
    double tval = NAN, dval = NAN;
    st = train_fresh(&tc, o->seed * 1000 + 72, hydra_text_data_task(text), B, T, t_steps, HYDRA_OPT_ADAMW, 1e-3f, o,
                     r->name, "target d512x8", &tval, &tm);
    if (!st)
        st = train_fresh(&dc, o->seed * 1000 + 73, hydra_text_data_task(text), B, T, d_steps, HYDRA_OPT_ADAMW, 3e-3f,
                         o, r->name, "draft d128x2", &dval, &dm);
    /* held-out prompts: seeded offsets into the validation split */
    int32_t pbuf[SPEC_PROMPTS][SPEC_PROMPT_LEN];
    const int32_t *prompts[SPEC_PROMPTS];
    size_t n_prompts[SPEC_PROMPTS];
    const size_t n_val = hydra_text_data_size(text, 1);
    const uint8_t *val = hydra_text_data_bytes(text, 1);
    hydra_rng rng;
    hydra_rng_seed(&rng, o->seed * 1000 + 74);
    if (!st && n_val < 4 * SPEC_PROMPT_LEN) st = hydra_set_error(HYDRA_ERR_ARG, "%s: validation split too small", path);
    for (int p = 0; !st && p < SPEC_PROMPTS; p++) {
        size_t off = hydra_rng_next(&rng) % (n_val - SPEC_PROMPT_LEN);
        for (int i = 0; i < SPEC_PROMPT_LEN; i++) pbuf[p][i] = val[off + (size_t)i];
        prompts[p] = pbuf[p], n_prompts[p] = SPEC_PROMPT_LEN;
    }
    double tt = NAN, td = NAN;
    if (!st) st = hydra_spec_step_seconds(tm, prompts[0], SPEC_PROMPT_LEN, 32, &tt);
    if (!st) st = hydra_spec_step_seconds(dm, prompts[0], SPEC_PROMPT_LEN, 32, &td);
    hydra_claims_add_value(r, "text_bytes", (double)(hydra_text_data_size(text, 0) + n_val));
    hydra_claims_add_value(r, "target_params", tm ? (double)hydra_model_n_params(tm) : NAN);
    hydra_claims_add_value(r, "draft_params", dm ? (double)hydra_model_n_params(dm) : NAN);
    hydra_claims_add_value(r, "train_steps", t_steps);
    hydra_claims_add_value(r, "target_val_loss", tval);
    hydra_claims_add_value(r, "draft_val_loss", dval);
    hydra_claims_add_value(r, "cost_ratio_c", td / tt);
    hydra_claims_add_value(r, "k", SPEC_CLAIM_K);
    hydra_spec_speed sp[2];
    for (int i = 0; i < 2 && !st; i++) {
        hydra_spec_opts so = hydra_spec_opts_default();
        so.k = SPEC_CLAIM_K;
        so.sample.temperature = i ? 0.7f : 0.0f;
        so.seed = o->seed + 1;
        so.max_new_tokens = 128;
        hydra_claims_progress(o, r->name, "timing k=%d at temperature %.1f on %d held-out prompts", so.k,
                              (double)so.sample.temperature, SPEC_PROMPTS);
        st = hydra_spec_measure_speed_prompts(tm, dm, prompts, n_prompts, SPEC_PROMPTS, &so, 5, &sp[i]);
    }
    hydra_model_free(tm);
    hydra_model_free(dm);
    hydra_text_data_free(text);
    if (st) {
        hydra_claims_set_error(r, "speculative decoding", st);
        return;
    }
    const char *tag[2] = {"t0", "t07"};
    char name[40];
    for (int i = 0; i < 2; i++) {
        snprintf(name, sizeof name, "%s_decode_speedup", tag[i]);
        hydra_claims_add_value(r, name, sp[i].decode_speedup);
        snprintf(name, sizeof name, "%s_decode_speedup_min", tag[i]);
        hydra_claims_add_value(r, name, sp[i].decode_speedup_min);
        snprintf(name, sizeof name, "%s_decode_speedup_max", tag[i]);
        hydra_claims_add_value(r, name, sp[i].decode_speedup_max);
        snprintf(name, sizeof name, "%s_alpha", tag[i]);
        hydra_claims_add_value(r, name, sp[i].alpha);
        snprintf(name, sizeof name, "%s_predicted", tag[i]);
        hydra_claims_add_value(r, name, hydra_spec_predicted_speedup(sp[i].alpha, td / tt, SPEC_CLAIM_K));
    }
    hydra_claims_add_value(r, "plain_decode_tokens_per_s", sp[0].plain_decode_tps);
    hydra_claims_add_threshold(r, "t0_decode_speedup", ">=", 2.0);
    char pass[256];
    snprintf(pass, sizeof pass,
             "%.2fx decode at temperature 0, k=%d fixed (median of 5; alpha %.2f on held-out prompts; c %.3f; "
             "tinyshakespeare target val loss %.2f, draft %.2f after %d steps)",
             sp[0].decode_speedup, SPEC_CLAIM_K, sp[0].alpha, td / tt, tval, dval, t_steps);
    hydra_claims_decide(r, pass);
}

/*
 * hydralm_train.h — training API of libhydralm: loss and gradients of the
 * whole model, optimizers (AdamW, Muon + AdamW), learning-rate schedule,
 * gradient clipping.
 *
 * Gradients live in one float arena with exactly the layout of the model's
 * parameter arena (hydra_model_n_params floats; tensor i of the table is at
 * the same offset), so optimizers are flat loops over both.
 */
#ifndef HYDRALM_TRAIN_H
#define HYDRALM_TRAIN_H

#include "hydralm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------ loss, gradients */
/* Mean cross-entropy of targets given inputs over the scored positions.
 * inputs, targets: [B, T] token ids; mask: [B, T], 1 = position is scored,
 * 0 = ignored (synthetic tasks score only answers); NULL scores every
 * position. Every sequence starts from an empty state. *loss = sum of
 * -log p(target) over scored positions / number scored (0 if none);
 * *n_scored (optional) = that number. */
hydra_status hydra_model_loss(const hydra_model *m, const int32_t *inputs, const int32_t *targets,
                              const uint8_t *mask, int B, int T, double *loss, int64_t *n_scored);

/* Same loss, plus its gradient with respect to every parameter written to
 * grads [n_params] (overwritten, not accumulated). A model on a GPU
 * (hydra_model_to_device) computes there and keeps the gradients on the
 * device for hydra_optimizer_step; grads may then be NULL (no host copy). */
hydra_status hydra_model_loss_grad(const hydra_model *m, const int32_t *inputs,
                                   const int32_t *targets, const uint8_t *mask, int B, int T,
                                   float *grads, double *loss, int64_t *n_scored);

/* hydra_model_loss_grad keeps its activation arena (per calling thread) for
 * the next call; this frees it. */
void hydra_train_free_cache(void);

/* Profile of hydra_model_loss_grad (benchmarks): while enabled, the wall time
 * of each call is split into phases (matmul, delta rule, attention,
 * conv+gates+l2, norms+act, loss, other) that sum to the call's time, added
 * up over calls. _get fills up to cap seconds / names and returns the number
 * of phases. Process-wide: not for concurrent loss_grad calls. */
void hydra_train_profile_enable(int on);
void hydra_train_profile_reset(void);
int hydra_train_profile_get(double *seconds, const char **names, int cap);

/* ------------------------------------------------------------ optimizers */
typedef enum { HYDRA_OPT_ADAMW = 0, HYDRA_OPT_MUON = 1 } hydra_optimizer_kind;
typedef enum { HYDRA_DECAY_COSINE = 0, HYDRA_DECAY_LINEAR = 1, HYDRA_DECAY_CONSTANT = 2 } hydra_lr_decay;

typedef struct {
    hydra_optimizer_kind kind;
    /* AdamW (all parameters under ADAMW; under MUON the ones Muon does not take) */
    float lr;            /* peak learning rate (default 3e-3) */
    float beta1, beta2;  /* 0.9, 0.95 */
    float eps;           /* 1e-8 */
    float weight_decay;  /* decoupled; 0.1; never applied to norms, gains, A_log, dt_bias, conv */
    /* Muon (2-D hidden matrices only) */
    float muon_lr;       /* peak Muon learning rate (default 0.02) */
    float muon_momentum; /* 0.95 */
    int muon_nesterov;   /* 1 */
    int muon_ns_steps;   /* 5 */
    int muon_rms_match;  /* 1: scale updates by 0.2*sqrt(max(rows, cols)) and use lr for Muon too;
                            0: scale by sqrt(max(1, rows/cols)) with muon_lr (default) */
    /* schedule: linear warmup to the peak, then decay to min_lr_ratio * peak at total_steps */
    int warmup_steps;    /* default 0 */
    int total_steps;     /* default 0 = no decay phase: the peak is held after warmup */
    hydra_lr_decay decay;
    float min_lr_ratio;  /* 0.1 */
    float grad_clip;     /* global L2 norm clip; 0 = off (default 1.0) */
} hydra_optim_opts;

hydra_optim_opts hydra_optim_opts_default(hydra_optimizer_kind kind);
hydra_status hydra_optim_opts_validate(const hydra_optim_opts *o);

/* Learning-rate multiplier in [0, 1] at a 0-based step (warmup, then decay). */
float hydra_lr_schedule(const hydra_optim_opts *o, int64_t step);

/* The routing rule: 1 if Muon updates this tensor under opts (2-D hidden
 * matrices: q/k/v/g/o projections of both mixers and the MLP matrices),
 * 0 if AdamW does (embedding, lm_head, norms, gains, A_log, dt_bias, conv,
 * a_proj/b_proj gate projections). Always 0 under HYDRA_OPT_ADAMW. */
int hydra_optim_uses_muon(const hydra_optim_opts *o, const char *tensor_name, int ndim);
/* 1 if weight decay applies to this tensor: every 2-D weight except the
 * *_conv.weight kernels (so the embedding / lm_head, a_proj/b_proj and all
 * Muon matrices decay; norms, A_log, dt_bias, conv never do). */
int hydra_optim_decays(const char *tensor_name, int ndim);

typedef struct hydra_optimizer hydra_optimizer;

hydra_status hydra_optimizer_create(const hydra_model *m, const hydra_optim_opts *o,
                                    hydra_optimizer **out);
void hydra_optimizer_free(hydra_optimizer *opt);
/* One update: global-norm clip of grads (in place), schedule, AdamW/Muon
 * updates of m's parameters, step += 1. Optional outputs: pre-clip global
 * grad norm and the learning rate used (AdamW's). A model on a GPU is
 * updated there (f32 master weights on the device; grads NULL = the
 * gradients the last hydra_model_loss_grad left there); the moments follow
 * the model between devices, and hydra_optimizer_buffer / hydra_model_save
 * see the device's current values. */
hydra_status hydra_optimizer_step(hydra_optimizer *opt, hydra_model *m, float *grads,
                                  float *grad_norm, float *lr_used);
int64_t hydra_optimizer_steps(const hydra_optimizer *opt);
const hydra_optim_opts *hydra_optimizer_opts(const hydra_optimizer *opt);

/* Optimizer state for checkpoints: the moment buffers as named float
 * tensors (e.g. "adam_m", "adam_v", "muon_momentum", each n_params floats,
 * same layout as the parameters) plus the step count. ADAMW has 2 buffers
 * (adam_m, adam_v), MUON 3 (plus muon_momentum). *data is writable: to
 * restore, copy the saved buffers into it and call set_steps. */
int hydra_optimizer_n_buffers(const hydra_optimizer *opt);
hydra_status hydra_optimizer_buffer(hydra_optimizer *opt, int i, const char **name, float **data,
                                    size_t *numel);
hydra_status hydra_optimizer_set_steps(hydra_optimizer *opt, int64_t steps);

/* Newton–Schulz orthogonalisation (quintic, coefficients 3.4445, -4.7750,
 * 2.0315; Frobenius-normalised first with eps 1e-7; tall inputs are
 * transposed internally). G, out: [rows, cols]; out may alias G. */
hydra_status hydra_newton_schulz(const float *G, int rows, int cols, int steps, float *out);


/* ------------------------------------------------------------------ data */
/* A task produces training batches: inputs/targets [B, T] and a loss mask
 * [B, T] (1 = scored). Text data scores every position; synthetic tasks
 * (MQAR, ...) score only some. split: 0 = train, 1 = validation. Sampling
 * must depend only on (split, rng) so that a resumed run draws the same
 * batches. */
typedef struct {
    const char *name;
    void *ctx;
    int min_vocab; /* the model's vocabulary must be at least this */
    hydra_status (*sample)(void *ctx, int split, hydra_rng *rng, int B, int T, int32_t *inputs,
                           int32_t *targets, uint8_t *mask);
} hydra_task;

/* Byte-level text: the file's bytes are token ids. The last val_fraction of
 * the file is the validation split. Batches are windows of T+1 bytes at
 * uniformly random offsets (targets = inputs shifted by one). */
typedef struct hydra_text_data hydra_text_data;
hydra_status hydra_text_data_load(const char *path, double val_fraction, hydra_text_data **out);
hydra_status hydra_text_data_from_memory(const void *bytes, size_t n, double val_fraction,
                                         hydra_text_data **out);
void hydra_text_data_free(hydra_text_data *d);
size_t hydra_text_data_size(const hydra_text_data *d, int split);
const uint8_t *hydra_text_data_bytes(const hydra_text_data *d, int split);
hydra_task hydra_text_data_task(hydra_text_data *d);

/* --------------------------------------------------------------- trainer */
typedef struct {
    hydra_optim_opts optim;
    int batch;        /* B */
    int seq;          /* T */
    uint64_t seed;    /* data-sampling seed (the model's init seed is separate) */
} hydra_train_opts;

typedef struct {
    int64_t step;       /* steps completed, after this one */
    double loss;        /* training loss of this step's batch */
    float grad_norm;    /* pre-clip global gradient norm */
    float lr;           /* AdamW learning rate used */
    double seconds;     /* wall time of this step */
    int64_t tokens;     /* scored tokens in this batch */
} hydra_step_info;

typedef struct hydra_trainer hydra_trainer;

/* The trainer borrows model and task (both must outlive it). */
hydra_status hydra_trainer_create(hydra_model *m, hydra_task task, const hydra_train_opts *o,
                                  hydra_trainer **out);
void hydra_trainer_free(hydra_trainer *t);
/* One optimisation step on a freshly sampled training batch. */
hydra_status hydra_trainer_step(hydra_trainer *t, hydra_step_info *info);
/* Mean loss over n_batches validation batches drawn from a fixed seed (the
 * same batches every call; does not disturb the training stream). */
hydra_status hydra_trainer_eval(hydra_trainer *t, int n_batches, double *loss);
int64_t hydra_trainer_steps(const hydra_trainer *t);
/* Training checkpoint in directory dir (created if needed): model.safetensors
 * (a normal checkpoint) + trainer.bin (optimizer moments, step, data RNG,
 * options; magic, model fingerprint, checksum). Atomic. */
hydra_status hydra_trainer_save(const hydra_trainer *t, const char *dir);
/* Resume: loads dir/model.safetensors into *model_out and restores the
 * trainer so that the next steps are bit-identical to an uninterrupted run. */
hydra_status hydra_trainer_resume(const char *dir, hydra_task task, hydra_model **model_out,
                                  hydra_trainer **out);
const hydra_train_opts *hydra_trainer_opts(const hydra_trainer *t);

/* ------------------------------------------------------------------ eval */
/* Stream tokens [n] through the model as one sequence (chunks of `chunk`
 * tokens, state carried) and write the loss of predicting token i+1 from the
 * prefix [0..i] into pos_loss[i], i = 0 .. n-2. */
hydra_status hydra_eval_stream_loss(const hydra_model *m, const int32_t *tokens, size_t n, int chunk,
                                    float *pos_loss);
/* The same, and pos_top1[i] (optional) = 1 if token i+1 has the largest logit
 * at position i (ties count as a hit). */
hydra_status hydra_eval_stream_scores(const hydra_model *m, const int32_t *tokens, size_t n, int chunk,
                                      float *pos_loss, uint8_t *pos_top1);

#ifdef __cplusplus
}
#endif
#endif /* HYDRALM_TRAIN_H */

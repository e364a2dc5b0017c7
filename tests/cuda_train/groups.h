/* groups.h — the test groups of test_cuda_train, one per file here. Each
 * runs its cmocka group and returns the number of failed tests. */
#ifndef HYDRA_TEST_CUDA_TRAIN_GROUPS_H
#define HYDRA_TEST_CUDA_TRAIN_GROUPS_H
int cuda_train_bwd_ops_tests(void);   /* bwd_ops.c: norms, conv, gates, SwiGLU, RoPE, embedding, loss */
int cuda_train_attn_bwd_tests(void);  /* attn_bwd.c: attention backward */
int cuda_train_delta_bwd_tests(void); /* delta_bwd.c: delta-rule backward */
int cuda_train_optim_tests(void);     /* optim.c: AdamW and Muon on the device */
int cuda_train_model_tests(void);     /* model.c: whole-model gradients, training runs, resume */
int cuda_train_dist_tests(void);      /* dist.c: data-parallel GPU ranks (device sums, NCCL at world size 1) */

/* Shared by model.c and dist.c (model.c): the test model's config (pattern
 * of D/S/A layers), a small repetitive text, the trainer's options, and the
 * model itself on the GPU. */
#include "hydralm_train.h"
hydra_config cuda_train_cfg(const char *pattern, int tied, int vocab);
hydra_text_data *cuda_train_text_data(void);
hydra_train_opts cuda_train_opts(hydra_optimizer_kind kind);
/* A fresh test model (pattern, tied head, vocab 256, seed 5) on cuda:0 in bf16. */
hydra_model *cuda_train_model(const char *pattern);
#endif

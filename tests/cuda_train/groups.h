/* groups.h — the test groups of test_cuda_train, one per file here. Each
 * runs its cmocka group and returns the number of failed tests. */
#ifndef HYDRA_TEST_CUDA_TRAIN_GROUPS_H
#define HYDRA_TEST_CUDA_TRAIN_GROUPS_H
int cuda_train_bwd_ops_tests(void);   /* bwd_ops.c: norms, conv, gates, SwiGLU, RoPE, embedding, loss */
int cuda_train_attn_bwd_tests(void);  /* attn_bwd.c: attention backward */
int cuda_train_delta_bwd_tests(void); /* delta_bwd.c: delta-rule backward */
int cuda_train_optim_tests(void);     /* optim.c: AdamW and Muon on the device */
int cuda_train_model_tests(void);     /* model.c: whole-model gradients, training runs, resume */
#endif

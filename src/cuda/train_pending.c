/* train_pending.c — TEMPORARY (session 9, while the GPU training pieces are
 * written in parallel): entry points not written yet answer "not written
 * yet" so the build links. Each block is deleted when its real code lands;
 * this file must be gone before the training path is called done. */
#include "backend/backend.h"
#include "cuda/kernels.h"

#define PENDING(what) hydra_set_error(HYDRA_ERR_DEVICE, "cuda: %s is not written yet", what)

/* ==== block: attn_bwd ==== */
size_t hk_attention_bwd_scratch(int B, int T, int H) { return 0; }
cudaError_t hk_attention_bwd(cudaStream_t s, int B, int T, int H, int d, int window, const float *q, const float *k,
                             const float *v, const float *o, const float *dO, float *dq, float *dk, float *dv,
                             void *scratch) { return cudaErrorNotSupported; }
hydra_status hydra_dev_op_attention_backward(int B, int T, int H, int d, int window, const float *q, const float *k,
                                             const float *v, const float *o, const float *dO, float *dq, float *dk,
                                             float *dv) { return PENDING("attention_backward"); }
/* ==== end block: attn_bwd ==== */

/* ==== block: delta_bwd ==== */
size_t hk_delta_rule_bwd_scratch(int B, int T, int H, int d) { return 0; }
cudaError_t hk_delta_rule_bwd(cudaStream_t s, int B, int T, int H, int d, const float *q, const float *k,
                              const float *v, const float *g, const float *beta, const float *dO, float *dq,
                              float *dk, float *dv, float *dg, float *dbeta, void *scratch, int tc) {
    return cudaErrorNotSupported;
}
hydra_status hydra_dev_op_delta_rule_backward(int tc, int B, int T, int H, int d, const float *q, const float *k,
                                              const float *v, const float *g, const float *beta, const float *dO,
                                              float *dq, float *dk, float *dv, float *dg, float *dbeta) {
    return PENDING("delta_rule_backward");
}
/* ==== end block: delta_bwd ==== */

/* ==== block: optim ==== */
hydra_status hydra_dev_optim_create(const hydra_model *m, const hydra_optim_opts *o, int device, int bf16_ns,
                                    hydra_dev_optim **out) {
    *out = NULL;
    return PENDING("the device optimizer");
}
void hydra_dev_optim_free(hydra_dev_optim *op) {}
hydra_status hydra_dev_optim_step(hydra_dev_optim *op, void *stream, float *params, float *grads, int64_t step,
                                  float *grad_norm, float *lr_used) { return PENDING("the device optimizer"); }
int hydra_dev_optim_n_buffers(const hydra_dev_optim *op) { return 0; }
hydra_status hydra_dev_optim_buffer_get(hydra_dev_optim *op, int i, float *host) { return PENDING("the device optimizer"); }
hydra_status hydra_dev_optim_buffer_set(hydra_dev_optim *op, int i, const float *host) {
    return PENDING("the device optimizer");
}
/* ==== end block: optim ==== */

/* ==== block: model (train.c) ==== */
hydra_status hydra_dev_loss_grad(const hydra_model *m, const int32_t *inputs, const int32_t *targets,
                                 const uint8_t *mask, int B, int T, float *grads_host, double *loss) {
    return PENDING("loss_grad");
}
hydra_status hydra_dev_train_arenas(const hydra_model *m, float **params, float **grads) { return PENDING("train"); }
hydra_status hydra_dev_train_sync(const hydra_model *m) { return PENDING("train"); }
hydra_status hydra_dev_train_download(hydra_model *m) { return PENDING("train"); }
void *hydra_dev_stream(const hydra_model *m) { return NULL; }
/* ==== end block: model ==== */

/* no_cuda.c — the device seam in a build without the CUDA backend (no CUDA
 * compiler was found, or -DHYDRA_CUDA=OFF): every device entry point says so
 * with HYDRA_ERR_DEVICE, and nothing ever holds a device mirror, so the
 * state and model hooks below are never reached with one. */
#include "backend/backend.h"
#include "hydralm_cuda.h"

#define NO_CUDA(what) hydra_set_error(HYDRA_ERR_DEVICE, "%s: this build of libhydralm has no CUDA backend " \
                                      "(rebuild on a machine with the CUDA toolkit)", what)

int hydra_dev_compiled(void) { return 0; }
int hydra_dev_count(void) { return 0; }
hydra_status hydra_dev_name(int device, char *buf, size_t cap) { return NO_CUDA("cuda"); }

hydra_status hydra_dev_model_create(const hydra_model *m, int device, hydra_precision precision, hydra_dev_model **out) {
    *out = NULL;
    return NO_CUDA("model_to_device");
}
void hydra_dev_model_free(hydra_dev_model *d) {}
int hydra_dev_model_device(const hydra_dev_model *d) { return -1; }
hydra_precision hydra_dev_model_precision(const hydra_dev_model *d) { return HYDRA_PRECISION_F32; }
size_t hydra_dev_model_bytes(const hydra_dev_model *d) { return 0; }

void hydra_dev_state_free(hydra_dev_state *d) {}
hydra_status hydra_dev_state_download(hydra_state *s) { return NO_CUDA("state"); }
hydra_status hydra_dev_state_upload(hydra_state *s, int device) { return NO_CUDA("state"); }
hydra_status hydra_dev_state_copy(hydra_state *dst, const hydra_state *src) { return NO_CUDA("state_copy"); }
hydra_status hydra_dev_state_reset(hydra_state *s) { return NO_CUDA("state_reset"); }
int hydra_dev_state_device(const hydra_dev_state *d) { return -1; }

hydra_status hydra_dev_forward(const hydra_model *m, const int32_t *tokens, int B, int T, hydra_state *const *states,
                               hydra_logits_mode mode, float *logits) {
    return NO_CUDA("forward");
}

hydra_status hydra_dev_op_delta_rule(int chunked, int T, int H, int dk, int dv, const float *q, const float *k,
                                     const float *v, const float *g, const float *beta, float *S, float *o) {
    return NO_CUDA("delta_rule");
}
hydra_status hydra_dev_op_attention(int T, int H, int d, int64_t pos0, int window, size_t cap, const float *q,
                                    const float *k, const float *v, const float *cache_k, const float *cache_v,
                                    float *o) {
    return NO_CUDA("attention");
}
hydra_status hydra_dev_op_rmsnorm(int M, int C, const float *x, const float *w, float eps, float *y) {
    return NO_CUDA("rmsnorm");
}
hydra_status hydra_dev_op_rope(int T, int H, int d, int64_t pos0, double base, float *x) { return NO_CUDA("rope"); }
hydra_status hydra_dev_op_matmul(int M, int N, int K, const float *x, const float *W, float *y, int acc, int bf16) {
    return NO_CUDA("matmul");
}
hydra_status hydra_dev_op_to_bf16_2d(int rows, int cols, const float *src, size_t lds, uint16_t *dst, size_t ldd) {
    return NO_CUDA("to_bf16_2d");
}
hydra_status hydra_dev_op_matmul_ex(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                                    float *C, int ldc, int acc, int bf16) {
    return NO_CUDA("matmul_ex");
}

hydra_status hydra_dev_op_matmul_choice(int choice, int ta, int tb, int M, int N, int K, const float *A, int lda,
                                        const float *B, int ldb, float *C, int ldc, int acc, int bf16, int info[3]) {
    return NO_CUDA("matmul_choice");
}

/* ---- training */
hydra_status hydra_dev_loss_grad(const hydra_model *m, const int32_t *inputs, const int32_t *targets,
                                 const uint8_t *mask, int B, int T, float *grads_host, const hydra_dev_grad_opts *dp,
                                 double *loss) {
    return NO_CUDA("loss_grad");
}
hydra_status hydra_dev_train_arenas(const hydra_model *m, float **params, float **grads) { return NO_CUDA("train"); }
hydra_status hydra_dev_train_sync(const hydra_model *m) { return NO_CUDA("train"); }
hydra_status hydra_dev_train_upload_grads(const hydra_model *m, const float *host) { return NO_CUDA("train"); }
hydra_status hydra_dev_train_download(hydra_model *m) { return NO_CUDA("train"); }
void *hydra_dev_stream(const hydra_model *m) { return NULL; }
hydra_status hydra_dev_optim_create(const hydra_model *m, const hydra_optim_opts *o, size_t lo, size_t hi,
                                    int device, int bf16_ns, hydra_dev_optim **out) {
    *out = NULL;
    return NO_CUDA("optimizer");
}
void hydra_dev_optim_free(hydra_dev_optim *op) {}
hydra_status hydra_dev_optim_step(hydra_dev_optim *op, void *stream, float *params, float *grads, int64_t step,
                                  float *grad_norm, float *lr_used) {
    return NO_CUDA("optimizer");
}
hydra_status hydra_dev_optim_sumsq(hydra_dev_optim *op, void *stream, const float *grads, double *sumsq) {
    return NO_CUDA("optimizer");
}
hydra_status hydra_dev_optim_apply(hydra_dev_optim *op, void *stream, float *params, float *grads, int64_t step,
                                   double sumsq, float *grad_norm, float *lr_used) {
    return NO_CUDA("optimizer");
}
int hydra_dev_optim_n_buffers(const hydra_dev_optim *op) { return 0; }
hydra_status hydra_dev_optim_buffer_get(hydra_dev_optim *op, int i, float *host) { return NO_CUDA("optimizer"); }
hydra_status hydra_dev_optim_buffer_set(hydra_dev_optim *op, int i, const float *host) { return NO_CUDA("optimizer"); }
hydra_status hydra_dev_op_optim_steps(const hydra_model *m, const hydra_optim_opts *o, int bf16_ns, int n_steps,
                                      float *params, const float *grads, float *grad_norms, float *lrs,
                                      float *buffers_out) {
    return NO_CUDA("optimizer");
}
hydra_status hydra_dev_op_optim_time(const hydra_model *m, const hydra_optim_opts *o, int bf16_ns, int reps,
                                     double *ms) {
    return NO_CUDA("optimizer");
}
hydra_status hydra_dev_op_rmsnorm_backward(int M, int C, const float *x, const float *w, float eps, const float *dy,
                                           float *dx, float *dw, int accumulate, int bf16_in) {
    return NO_CUDA("rmsnorm_backward");
}
hydra_status hydra_dev_op_conv_causal_backward(int B, int T, int C, int K, const float *x, const float *w,
                                               const float *dy, float *dx, float *dw) {
    return NO_CUDA("conv_backward");
}
hydra_status hydra_dev_op_rope_backward(int B, int T, int H, int d, double base, float *dx) {
    return NO_CUDA("rope_backward");
}
hydra_status hydra_dev_op_swiglu_backward(int M, int F, const float *gu, const float *dact, float *dgu, int bf16_in) {
    return NO_CUDA("swiglu_backward");
}
hydra_status hydra_dev_op_gated_onorm_backward(int BT, int H, int d, const float *o, const float *z, const float *w,
                                               float eps, const float *dy, float *dz, float *dO, float *dw) {
    return NO_CUDA("gated_onorm_backward");
}
hydra_status hydra_dev_op_gdn_prep_backward(int B, int T, int H, int d, int K, const float *proj, const float *convw,
                                            const float *A_log, const float *dt_bias, const float *g, const float *beta,
                                            float l2_eps, const float *dq, const float *dk, const float *dv,
                                            const float *dg, const float *dbeta, float *dconv, float *dproj,
                                            float *dA_log, float *ddt_bias) {
    return NO_CUDA("gdn_prep_backward");
}
hydra_status hydra_dev_op_embed_backward(int BT, int V, int C, const int32_t *tok, const float *dx, float *dE) {
    return NO_CUDA("embed_backward");
}
hydra_status hydra_dev_op_cross_entropy(int M, int V, const float *logits, const int32_t *targets,
                                        const uint8_t *mask, float scale, double *loss_sum, float *dlogits) {
    return NO_CUDA("cross_entropy");
}
hydra_status hydra_dev_op_attention_backward(int B, int T, int H, int d, int window, const float *q, const float *k,
                                             const float *v, const float *o, const float *dO, float *dq, float *dk,
                                             float *dv) {
    return NO_CUDA("attention_backward");
}
hydra_status hydra_dev_op_attention_tc(int B, int T, int H, int d, int window, const float *q, const float *k,
                                       const float *v, float *o, const float *dO, float *dq, float *dk, float *dv) {
    return NO_CUDA("attention_tc");
}
hydra_status hydra_dev_op_delta_rule_backward(int tc, int B, int T, int H, int d, const float *q, const float *k,
                                              const float *v, const float *g, const float *beta, const float *dO,
                                              float *dq, float *dk, float *dv, float *dg, float *dbeta) {
    return NO_CUDA("delta_rule_backward");
}

hydra_status hydra_cuda_bench_gemm(int device, int M, int N, int K, int bf16, int reps, double *tflops) {
    return NO_CUDA("bench_gemm");
}
hydra_status hydra_cuda_bench_copy(int device, size_t bytes, int reps, double *gbs) { return NO_CUDA("bench_copy"); }
hydra_status hydra_cuda_train_phases(const hydra_model *m, double ms[5]) { return NO_CUDA("train_phases"); }
hydra_status hydra_cuda_train_gemm_report(const hydra_model *m, char *buf, size_t cap) {
    return NO_CUDA("train_gemm_report");
}
hydra_status hydra_cuda_bench_delta_rule(int device, const char *kernel, int B, int T, int H, int d, int reps,
                                         double *ms) {
    return NO_CUDA("bench_delta_rule");
}

/* ---- sampling */
hydra_status hydra_dev_forward_sample(const hydra_model *m, const int32_t *tokens, int B, int T,
                                      hydra_state *const *states, const hydra_sample_opts *o, const double *u,
                                      int32_t *next) {
    return NO_CUDA("forward_sample");
}
int hydra_dev_sampling(const hydra_dev_model *d) { return 0; }
hydra_status hydra_dev_op_sample(int B, int V, const float *logits, const hydra_sample_opts *o, const double *u,
                                 int32_t *tokens) {
    return NO_CUDA("sample");
}

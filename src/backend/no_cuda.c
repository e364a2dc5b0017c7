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

hydra_status hydra_cuda_bench_gemm(int device, int M, int N, int K, int bf16, int reps, double *tflops) {
    return NO_CUDA("bench_gemm");
}
hydra_status hydra_cuda_bench_copy(int device, size_t bytes, int reps, double *gbs) { return NO_CUDA("bench_copy"); }
hydra_status hydra_cuda_bench_delta_rule(int device, const char *kernel, int B, int T, int H, int d, int reps,
                                         double *ms) {
    return NO_CUDA("bench_delta_rule");
}

/*
 * hydralm_cuda.h — measurements of the CUDA backend's building blocks, for
 * `hydra bench --device cuda` and for users sizing a card. Each runs on the
 * given device on data it makes itself (random, never zeros), warms up,
 * times with CUDA events and returns the median. In a build without the
 * CUDA backend, or without a GPU, each returns HYDRA_ERR_DEVICE.
 * (Placing a model on a GPU is hydra_model_to_device, in hydralm.h.)
 */
#ifndef HYDRALM_CUDA_H
#define HYDRALM_CUDA_H

#include "hydralm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* y[M,N] = x[M,K] W[N,K]^T through the backend's cuBLASLt path: bf16 (tensor
 * cores, f32 accumulation) or f32 (tensor cores off). TFLOP/s = 2MNK / t. */
hydra_status hydra_cuda_bench_gemm(int device, int M, int N, int K, int bf16, int reps, double *tflops);
/* Device-to-device copy of `bytes`; GB/s counts bytes read + bytes written. */
hydra_status hydra_cuda_bench_copy(int device, size_t bytes, int reps, double *gbs);
/* The gated delta rule forward over B x T tokens, H heads, dk = dv = d, f32
 * state: milliseconds per call. kernel: "recurrent" (token by token, the
 * state in registers; decode), "chunked" (WY form, chunks of 64, f32; prefill)
 * "chunked-tc" (the same on bf16 tensor cores, f32 q/k/v/o as the model
 * passes them), "chunked-tc-bf16" (q, k, v and o in bf16, as fla-org's
 * chunk_gated_delta_rule takes them) or "chunked-tc-keep" (training's
 * forward: from a zero state, keeping its per-chunk work for the backward);
 * and the backward from a zero state: "backward" (f32), "backward-tc"
 * (tensor cores, recomputing the forward's work) or "backward-kept" (tensor
 * cores, reading chunked-tc-keep's work: as the trainer runs it). d 64 or
 * 128 for the tensor-core kernels. */
hydra_status hydra_cuda_bench_delta_rule(int device, const char *kernel, int B, int T, int H, int d, int reps,
                                         double *ms);
/* Where the last training step of a model on a GPU spent its device time,
 * in milliseconds from CUDA events on the model's stream: ms[0] forward,
 * ms[1] loss, ms[2] backward (each summed over micro-batches), ms[3] from
 * the backward's end to the end of the optimizer step (gradient norm, the
 * update, the refresh of the forward's weights), ms[4] the whole step on the
 * device timeline (idle gaps between its work included). HYDRA_ERR_ARG
 * unless an optimizer step followed the model's last gradients on the GPU. */
hydra_status hydra_cuda_train_phases(const hydra_model *m, double ms[5]);
/* Diagnostic: the training products' cuBLASLt plans of m (one line each:
 * shape, the heuristic candidate taken, how many candidates computed other
 * bits than the first, and when timed the first candidate's and the taken
 * one's times) into buf (truncated to cap). HYDRA_ERR_ARG when m has not
 * trained on a GPU. */
hydra_status hydra_cuda_train_gemm_report(const hydra_model *m, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif
#endif /* HYDRALM_CUDA_H */

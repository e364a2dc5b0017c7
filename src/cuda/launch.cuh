/* launch.cuh — kernel launches with programmatic dependent launch (PDL,
 * sm_90): a kernel launched by hk_launch may be scheduled while the kernel
 * before it on the stream is still finishing, so a chain of small kernels
 * (a decode step is ~140 of them) does not pay the full launch gap between
 * each pair. Every kernel launched this way starts with hk_pdl_entry(): its
 * blocks wait there until the previous grid has completed and its writes are
 * visible (griddepcontrol.wait), then let the next grid be scheduled
 * (griddepcontrol.launch_dependents; it launches once every block of this
 * one has run that far, so it never takes the place of this grid's blocks).
 * Nothing is read or written before the wait, so there is no hazard in
 * either direction. Kernels launched with <<<>>> (cuBLASLt's, the chunked
 * prefill's) keep plain stream order; on older GPUs both are no-ops. */
#ifndef HYDRA_CUDA_LAUNCH_CUH
#define HYDRA_CUDA_LAUNCH_CUH

#include <cuda_runtime.h>

#include <utility>

__device__ __forceinline__ void hk_pdl_entry() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;\n" ::: "memory");
    asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

template <typename... P, typename... A>
inline cudaError_t hk_launch(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, cudaStream_t s, A &&...args) {
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = s;
    cfg.attrs = attr;
    cfg.numAttrs = 1;
    return cudaLaunchKernelEx(&cfg, kernel, std::forward<A>(args)...);
}

#endif /* HYDRA_CUDA_LAUNCH_CUH */

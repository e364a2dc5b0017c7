/* test_cuda_train.c — GPU training against the CPU code (issue "GPU backend,
 * part 2"): every backward kernel against the CPU backward on the same random
 * inputs, the device optimizers against the CPU optimizers, whole-model
 * gradients and short training runs GPU vs CPU, bit-exact resume.
 *
 * The groups live in tests/cuda_train/ (one file per kernel family); this
 * file runs them in order. Without a GPU (or without the CUDA backend) it
 * exits 77 — CTest's "skipped" — after checking a device call fails cleanly. */
#include <stdio.h>
#include <stdlib.h>

#include "backend/backend.h"
#include "cuda_train/groups.h"
#include "test_util.h"

int main(void) {
    if (hydra_cuda_device_count() == 0) {
        float x = 1, w = 1, dy = 1, dx;
        if (hydra_dev_op_rmsnorm_backward(1, 1, &x, &w, 1e-5f, &dy, &dx, NULL, 0, 0) != HYDRA_ERR_DEVICE) {
            fprintf(stderr, "a device backward op without a GPU did not fail cleanly: %s\n", hydra_last_error());
            return 1;
        }
        printf("SKIPPED: %s (device calls fail cleanly: checked)\n",
               hydra_cuda_compiled() ? "no CUDA device visible" : "this build has no CUDA backend");
        return 77;
    }
    char name[256];
    if (hydra_cuda_device_name(0, name, sizeof name) == HYDRA_OK) printf("device: %s\n", name);
    /* HYDRA_TEST_FILTER=pattern (cmocka's * and ? wildcards): run only the matching tests, e.g. one
     * test under a variant's environment on the GPU machine */
    const char *only = getenv("HYDRA_TEST_FILTER");
    if (only && *only) cmocka_set_test_filter(only);
    int failed = 0;
    failed += cuda_train_bwd_ops_tests();
    failed += cuda_train_attn_bwd_tests();
    failed += cuda_train_delta_bwd_tests();
    failed += cuda_train_optim_tests();
    failed += cuda_train_model_tests();
    failed += cuda_train_dist_tests();
    return failed ? 1 : 0;
}

/* test_util.h — helpers shared by the cmocka tests. */
#ifndef HYDRA_TEST_UTIL_H
#define HYDRA_TEST_UTIL_H
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "hydralm.h"
#include "hydralm_ops.h"

/* ||a - b|| / max(||b||, tiny) */
double rel_err(const float *a, const float *b, size_t n);
/* Fill x[n] with N(0, scale^2) from a seeded RNG. */
void fill_normal(float *x, size_t n, float scale, uint64_t seed);
/* n token ids uniform in [0, V) from a seeded RNG (malloc'd; free it). */
int32_t *random_tokens(size_t n, int V, uint64_t seed);
/* A tiny config used across tests (d_model 32, 4 layers "DDSD", window 8, vocab 64). */
hydra_config tiny_config(void);
/* The GPU tests' model: d_model 128, 2 heads x 64 (the GPU kernels' head
 * sizes), one layer per character of pattern ("DSDA"...), window 16, vocab
 * 64, init std 0.2. */
hydra_config cuda_test_config(const char *pattern);
/* Fail the test with hydra_last_error() if st != HYDRA_OK. */
#define HY_OK(expr)                                                             \
    do {                                                                        \
        hydra_status st_ = (expr);                                              \
        if (st_ != HYDRA_OK) fail_msg("%s -> %s: %s", #expr, hydra_status_str(st_), \
                                      hydra_last_error());                      \
    } while (0)
#define ASSERT_REL(a, b, n, tol)                                                \
    do {                                                                        \
        double e_ = rel_err((a), (b), (n));                                     \
        if (!(e_ <= (tol))) fail_msg("%s vs %s: rel err %.3g > %.3g", #a, #b, e_, (double)(tol)); \
    } while (0)
/* Path of a temp file unique to this process: returns a static buffer. */
const char *tmp_path(const char *name);
/* A Python interpreter that can import torch and numpy: $HYDRA_PYTHON, then
 * /usr/bin/python3, then python3 on PATH. NULL if none (tests then skip). */
const char *find_torch_python(void);
/* <HYDRA_SOURCE_DIR>/rel in a static buffer (the source tree, for python/ and data). */
const char *source_path(const char *rel);
#endif

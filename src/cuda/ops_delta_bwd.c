/* ops_delta_bwd.c — the delta-rule backward on host arrays (tests and
 * benchmarks hold the kernel against hydra_op_delta_rule_backward with it):
 * copy in, run hk_delta_rule_bwd on the default stream, copy out. tc = 2:
 * the training pair (hk_delta_rule_tc_keep, then hk_delta_rule_bwd_kept);
 * tc = 3: that pair on bf16 q, k, v and dO (the *16 entry points). */
#include "backend/backend.h"
#include "cuda/common.h"
#include "cuda/kernels.h"
#include "cuda/ops_util.h"

hydra_status hydra_dev_op_delta_rule_backward(int tc, int B, int T, int H, int d, const float *q, const float *k,
                                              const float *v, const float *g, const float *beta, const float *dO,
                                              float *dq, float *dk, float *dv, float *dg, float *dbeta) {
    HYDRA_CHECK(need_device());
    if (B <= 0 || T < 0 || H <= 0 || (d != 32 && d != 64 && d != 128))
        return hydra_set_error(HYDRA_ERR_ARG, "delta rule backward: B %d, T %d, H %d, d %d (d must be 32, 64 or 128)",
                               B, T, H, d);
    if (tc < 0 || tc > 3) return hydra_set_error(HYDRA_ERR_ARG, "delta rule backward: tc is 0 to 3 (got %d)", tc);
    if (tc && d == 32)
        return hydra_set_error(HYDRA_ERR_ARG, "delta rule backward: the tensor-core path needs d 64 or 128 (d 32: tc = 0)");
    if (T == 0) return HYDRA_OK;
    dbufs b = {0};
    hydra_status st = HYDRA_OK;
    const size_t n = (size_t)B * T * H * d * 4, ng = (size_t)B * T * H * 4;
    void *xq, *xk, *xv, *xg, *xb, *xo, *yq, *yk, *yv, *yg, *yb, *work;
    const int h16 = tc == 3; /* q, k, v, dO rounded to bf16 on the way in */
    OP_TRY(dput_as(&b, &xq, q, n / 4, h16));
    OP_TRY(dput_as(&b, &xk, k, n / 4, h16));
    OP_TRY(dput_as(&b, &xv, v, n / 4, h16));
    OP_TRY(dput(&b, &xg, g, ng));
    OP_TRY(dput(&b, &xb, beta, ng));
    OP_TRY(dput_as(&b, &xo, dO, n / 4, h16));
    OP_TRY(dput(&b, &yq, NULL, n));
    OP_TRY(dput(&b, &yk, NULL, n));
    OP_TRY(dput(&b, &yv, NULL, n));
    OP_TRY(dput(&b, &yg, NULL, ng));
    OP_TRY(dput(&b, &yb, NULL, ng));
    OP_TRY(dput(&b, &work, NULL, hk_delta_rule_bwd_scratch(B, T, H, d)));
    if (tc >= 2) { /* training's pair: the forward keeps its per-chunk work (its o is written to yq, then
                      overwritten by dq), the backward reads it; tc = 3 on bf16 q, k, v, dO */
        void *keep;
        OP_TRY(dput(&b, &keep, NULL, hk_delta_rule_keep_bytes(B, T, H, d)));
        if (h16) {
            OP_RUN(hk_delta_rule_tc_keep16(0, B, T, H, d, xq, xk, xv, xg, xb, yq, keep));
            OP_RUN(hk_delta_rule_bwd_kept16(0, B, T, H, d, xq, xk, xv, xg, xb, xo, yq, yk, yv, yg, yb, work, keep));
        } else {
            OP_RUN(hk_delta_rule_tc_keep(0, B, T, H, d, xq, xk, xv, xg, xb, yq, keep));
            OP_RUN(hk_delta_rule_bwd_kept(0, B, T, H, d, xq, xk, xv, xg, xb, xo, yq, yk, yv, yg, yb, work, keep));
        }
    } else OP_RUN(hk_delta_rule_bwd(0, B, T, H, d, xq, xk, xv, xg, xb, xo, yq, yk, yv, yg, yb, work, tc));
    OP_TRY(dget(dq, yq, n));
    OP_TRY(dget(dk, yk, n));
    OP_TRY(dget(dv, yv, n));
    OP_TRY(dget(dg, yg, ng));
    OP_TRY(dget(dbeta, yb, ng));
done:
    dbufs_free(&b);
    return st;
}

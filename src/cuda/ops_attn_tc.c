/* ops_attn_tc.c — hydra_dev_op_attention_tc: the tensor-core attention
 * forward (and, given dO, its backward on the same scratch) on host arrays
 * (copy in, run, copy out), for the tests. */
#include "cuda/kernels.h"
#include "cuda/ops_util.h"

hydra_status hydra_dev_op_attention_tc(int B, int T, int H, int d, int window, const float *q, const float *k,
                                       const float *v, float *o, const float *dO, float *dq, float *dk, float *dv) {
    if (B <= 0 || T <= 0 || H <= 0 || window < 0 || (d != 64 && d != 128) || (dO && (!dq || !dk || !dv)))
        return hydra_set_error(HYDRA_ERR_ARG, "attention_tc (cuda): bad shape B %d T %d H %d d %d window %d", B, T, H,
                               d, window);
    HYDRA_CHECK(need_device());
    dbufs b = {0};
    hydra_status st = HYDRA_OK;
    const size_t n = (size_t)B * T * H * d * sizeof(float);
    void *q_, *k_, *v_, *o_, *scr, *g_, *dq_, *dk_, *dv_;
    OP_TRY(dput(&b, &q_, q, n));
    OP_TRY(dput(&b, &k_, k, n));
    OP_TRY(dput(&b, &v_, v, n));
    OP_TRY(dput(&b, &o_, NULL, n));
    OP_TRY(dput(&b, &scr, NULL, hk_attention_tc_scratch(B, T, H)));
    OP_RUN(hk_attention_tc_fwd(0, B, T, H, d, window, q_, k_, v_, o_, scr));
    OP_TRY(dget(o, o_, n));
    if (dO) {
        OP_TRY(dput(&b, &g_, dO, n));
        OP_TRY(dput(&b, &dq_, NULL, n));
        OP_TRY(dput(&b, &dk_, NULL, n));
        OP_TRY(dput(&b, &dv_, NULL, n));
        OP_RUN(hk_attention_tc_bwd(0, B, T, H, d, window, q_, k_, v_, o_, g_, dq_, dk_, dv_, scr));
        OP_TRY(dget(dq, dq_, n));
        OP_TRY(dget(dk, dk_, n));
        OP_TRY(dget(dv, dv_, n));
    }
done:
    dbufs_free(&b);
    return st;
}

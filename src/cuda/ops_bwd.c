/* ops_bwd.c — single backward kernels (train_kernels.cu) on host arrays, for
 * tests/cuda_train/bwd_ops.c, which holds each against the CPU backward. Each
 * call copies its inputs in, runs on the default stream and copies the
 * outputs back: simple, not fast. Parameter gradients are copied in too, as
 * the kernels add to them. */
#include <math.h>
#include <stdlib.h>

#include "backend/backend.h"
#include "cuda/common.h"
#include "cuda/kernels.h"
#include "cuda/ops_util.h"

hydra_status hydra_dev_op_rmsnorm_backward(int M, int C, const float *x, const float *w, float eps, const float *dy,
                                           float *dx, float *dw, int accumulate, int bf16_in) {
    HYDRA_CHECK(need_device());
    if (M < 0 || C <= 0 || C > 8192)
        return hydra_set_error(HYDRA_ERR_ARG, "rmsnorm_backward: bad shape [%d, %d] (C <= 8192)", M, C);
    dbufs b = {0};
    hydra_status st = HYDRA_OK;
    const size_t n = (size_t)M * C * 4;
    void *px, *pw, *pdy, *pdx, *pdw = NULL, *work;
    OP_TRY(dput(&b, &px, x, n));
    OP_TRY(dput(&b, &pw, w, (size_t)C * 4));
    OP_TRY(dput_as(&b, &pdy, dy, (size_t)M * C, bf16_in));
    OP_TRY(dput(&b, &pdx, accumulate ? dx : NULL, n));
    if (dw) OP_TRY(dput(&b, &pdw, dw, (size_t)C * 4));
    OP_TRY(dput(&b, &work, NULL, hk_bwd_scratch_bytes((size_t)M, (size_t)C)));
    if (bf16_in) OP_RUN(hk_rmsnorm_bwd16(0, M, C, px, pw, eps, pdy, pdx, NULL, accumulate, pdw, work));
    else OP_RUN(hk_rmsnorm_bwd(0, M, C, px, pw, eps, pdy, pdx, NULL, accumulate, pdw, work));
    OP_TRY(dget(dx, pdx, n));
    if (dw) OP_TRY(dget(dw, pdw, (size_t)C * 4));
done:
    dbufs_free(&b);
    return st;
}

hydra_status hydra_dev_op_conv_causal_backward(int B, int T, int C, int K, const float *x, const float *w,
                                               const float *dy, float *dx, float *dw) {
    HYDRA_CHECK(need_device());
    if (B < 0 || T < 0 || C <= 0 || K < 1 || K > 64)
        return hydra_set_error(HYDRA_ERR_ARG, "conv_backward: bad shape B=%d T=%d C=%d K=%d", B, T, C, K);
    dbufs b = {0};
    hydra_status st = HYDRA_OK;
    const size_t BT = (size_t)B * T, n = BT * C * 4, nw = (size_t)C * K * 4;
    void *px, *pw, *pdy, *pdx, *pdw = NULL, *work;
    OP_TRY(dput(&b, &px, x, n));
    OP_TRY(dput(&b, &pw, w, nw));
    OP_TRY(dput(&b, &pdy, dy, n));
    OP_TRY(dput(&b, &pdx, NULL, n));
    if (dw) OP_TRY(dput(&b, &pdw, dw, nw));
    OP_TRY(dput(&b, &work, NULL, hk_bwd_scratch_bytes(BT, (size_t)C * K)));
    OP_RUN(hk_conv_bwd(0, B, T, C, K, px, C, pw, pdy, pdx, C, 0, pdw, work));
    OP_TRY(dget(dx, pdx, n));
    if (dw) OP_TRY(dget(dw, pdw, nw));
done:
    dbufs_free(&b);
    return st;
}

hydra_status hydra_dev_op_rope_backward(int B, int T, int H, int d, double base, float *dx) {
    HYDRA_CHECK(need_device());
    if (B < 0 || T < 0 || H <= 0 || d <= 0 || d > 4096 || (d & 1))
        return hydra_set_error(HYDRA_ERR_ARG, "rope_backward: bad shape (head dim %d must be even, <= 4096)", d);
    dbufs b = {0};
    hydra_status st = HYDRA_OK;
    const size_t n = (size_t)B * T * H * d * 4;
    double f[2048];
    for (int i = 0; i < d / 2; i++) f[i] = pow(base, -2.0 * i / d); /* as src/ops/rope.c */
    void *px, *pf;
    OP_TRY(dput(&b, &px, dx, n));
    OP_TRY(dput(&b, &pf, f, (size_t)(d / 2) * 8));
    OP_RUN(hk_rope_bwd(0, B, T, H, d, pf, px));
    OP_TRY(dget(dx, px, n));
done:
    dbufs_free(&b);
    return st;
}

hydra_status hydra_dev_op_swiglu_backward(int M, int F, const float *gu, const float *dact, float *dgu, int bf16_in) {
    HYDRA_CHECK(need_device());
    if (M < 0 || F <= 0) return hydra_set_error(HYDRA_ERR_ARG, "swiglu_backward: bad shape [%d, %d]", M, F);
    dbufs b = {0};
    hydra_status st = HYDRA_OK;
    const size_t n = (size_t)M * F * 4;
    void *pgu, *pda, *pdgu;
    OP_TRY(dput_as(&b, &pgu, gu, 2 * (size_t)M * F, bf16_in));
    OP_TRY(dput_as(&b, &pda, dact, (size_t)M * F, bf16_in));
    OP_TRY(dput(&b, &pdgu, NULL, 2 * n));
    if (bf16_in) OP_RUN(hk_swiglu16_bwd16(0, M, F, pgu, pda, pdgu, 0));
    else OP_RUN(hk_swiglu_bwd(0, M, F, pgu, pda, pdgu, 0));
    OP_TRY(dget(dgu, pdgu, 2 * n));
done:
    dbufs_free(&b);
    return st;
}

hydra_status hydra_dev_op_gated_onorm_backward(int BT, int H, int d, const float *o, const float *z, const float *w,
                                               float eps, const float *dy, float *dz, float *dO, float *dw) {
    HYDRA_CHECK(need_device());
    if (BT < 0 || H <= 0 || d <= 0 || d > 256)
        return hydra_set_error(HYDRA_ERR_ARG, "gated_onorm_backward: bad shape BT=%d H=%d d=%d (d <= 256)", BT, H, d);
    dbufs b = {0};
    hydra_status st = HYDRA_OK;
    const int Hd = H * d;
    const size_t n = (size_t)BT * Hd * 4;
    void *po, *pz, *pw, *pdy, *pdz, *pdO, *pdw = NULL, *work;
    OP_TRY(dput(&b, &po, o, n));
    OP_TRY(dput(&b, &pz, z, n));
    OP_TRY(dput(&b, &pw, w, (size_t)d * 4));
    OP_TRY(dput(&b, &pdy, dy, n));
    OP_TRY(dput(&b, &pdz, NULL, n));
    OP_TRY(dput(&b, &pdO, NULL, n));
    if (dw) OP_TRY(dput(&b, &pdw, dw, (size_t)d * 4));
    OP_TRY(dput(&b, &work, NULL, hk_bwd_scratch_bytes((size_t)BT * H, (size_t)d)));
    /* z alone is the "projection": row stride Hd, gate columns from 0 */
    OP_RUN(hk_gated_onorm_bwd(0, BT, H, d, po, pz, Hd, 0, pw, eps, pdy, pdz, 0, pdO, pdw, work));
    OP_TRY(dget(dz, pdz, n));
    OP_TRY(dget(dO, pdO, n));
    if (dw) OP_TRY(dget(dw, pdw, (size_t)d * 4));
done:
    dbufs_free(&b);
    return st;
}

hydra_status hydra_dev_op_gdn_prep_backward(int B, int T, int H, int d, int K, const float *proj, const float *convw,
                                            const float *A_log, const float *dt_bias, const float *g, const float *beta,
                                            float l2_eps, const float *dq, const float *dk, const float *dv,
                                            const float *dg, const float *dbeta, float *dconv, float *dproj,
                                            float *dA_log, float *ddt_bias) {
    HYDRA_CHECK(need_device());
    if (B < 0 || T < 0 || H <= 0 || d <= 0 || d > 256 || K < 1 || K > 64)
        return hydra_set_error(HYDRA_ERR_ARG, "gdn_prep_backward: bad shape B=%d T=%d H=%d d=%d K=%d", B, T, H, d, K);
    dbufs b = {0}; /* 16 buffers: ops_util.h's limit */
    hydra_status st = HYDRA_OK;
    const size_t BT = (size_t)B * T, Hd = (size_t)H * d, P = 4 * Hd + 2 * (size_t)H;
    const size_t nq = BT * Hd * 4, ng = BT * H * 4, nh = (size_t)H * 4;
    void *pp, *pcw, *pA, *pdt, *pg, *pb, *pdq, *pdk, *pdv, *pdg, *pdb, *pdc, *pdp, *pdA, *pddt, *work;
    OP_TRY(dput(&b, &pp, proj, BT * P * 4));
    OP_TRY(dput(&b, &pcw, convw, 3 * Hd * K * 4));
    OP_TRY(dput(&b, &pA, A_log, nh));
    OP_TRY(dput(&b, &pdt, dt_bias, nh));
    OP_TRY(dput(&b, &pg, g, ng));
    OP_TRY(dput(&b, &pb, beta, ng));
    OP_TRY(dput(&b, &pdq, dq, nq));
    OP_TRY(dput(&b, &pdk, dk, nq));
    OP_TRY(dput(&b, &pdv, dv, nq));
    OP_TRY(dput(&b, &pdg, dg, ng));
    OP_TRY(dput(&b, &pdb, dbeta, ng));
    OP_TRY(dput(&b, &pdc, NULL, 3 * nq));
    OP_TRY(dput(&b, &pdp, dproj, BT * P * 4));
    OP_TRY(dput(&b, &pdA, dA_log, nh));
    OP_TRY(dput(&b, &pddt, ddt_bias, nh));
    OP_TRY(dput(&b, &work, NULL, hk_bwd_scratch_bytes(BT, 2 * (size_t)H)));
    OP_RUN(hk_gdn_prep_bwd(0, B, T, H, d, K, pp, (int)P, pcw, pA, pdt, pg, pb, l2_eps, pdq, pdk, pdv, pdg, pdb, pdc,
                           pdp, 0, pdA, pddt, work));
    OP_TRY(dget(dconv, pdc, 3 * nq));
    OP_TRY(dget(dproj, pdp, BT * P * 4));
    OP_TRY(dget(dA_log, pdA, nh));
    OP_TRY(dget(ddt_bias, pddt, nh));
done:
    dbufs_free(&b);
    return st;
}

hydra_status hydra_dev_op_embed_backward(int BT, int V, int C, const int32_t *tok, const float *dx, float *dE) {
    HYDRA_CHECK(need_device());
    if (BT < 0 || V <= 0 || C <= 0) return hydra_set_error(HYDRA_ERR_ARG, "embed_backward: bad shape BT=%d V=%d C=%d", BT, V, C);
    for (int r = 0; r < BT; r++)
        if (tok[r] < 0 || tok[r] >= V)
            return hydra_set_error(HYDRA_ERR_ARG, "embed_backward: token %d at row %d is outside [0, %d)", tok[r], r, V);
    /* CSR by token: a counting sort keeps each token's rows in increasing order */
    int32_t *start = calloc((size_t)V + 1, sizeof *start), *rows = malloc(((size_t)BT + 1) * sizeof *rows),
            *fill = malloc((size_t)V * sizeof *fill);
    dbufs b = {0};
    hydra_status st = HYDRA_OK;
    if (!start || !rows || !fill) {
        st = hydra_set_error(HYDRA_ERR_NOMEM, "embed_backward: out of memory");
        goto done;
    }
    for (int r = 0; r < BT; r++) start[tok[r] + 1]++;
    for (int v = 0; v < V; v++) start[v + 1] += start[v];
    for (int v = 0; v < V; v++) fill[v] = start[v];
    for (int r = 0; r < BT; r++) rows[fill[tok[r]]++] = r;
    const size_t n = (size_t)BT * C * 4, nE = (size_t)V * C * 4;
    void *ps, *pr, *px, *pE;
    OP_TRY(dput(&b, &ps, start, ((size_t)V + 1) * 4));
    OP_TRY(dput(&b, &pr, rows, (size_t)BT * 4));
    OP_TRY(dput(&b, &px, dx, n));
    OP_TRY(dput(&b, &pE, dE, nE));
    OP_RUN(hk_embed_bwd(0, V, C, ps, pr, px, pE));
    OP_TRY(dget(dE, pE, nE));
done:
    free(start);
    free(rows);
    free(fill);
    dbufs_free(&b);
    return st;
}

hydra_status hydra_dev_op_cross_entropy(int M, int V, const float *logits, const int32_t *targets,
                                        const uint8_t *mask, float scale, double *loss_sum, float *dlogits) {
    HYDRA_CHECK(need_device());
    if (!logits || !targets || !loss_sum) return hydra_set_error(HYDRA_ERR_ARG, "cross_entropy: NULL pointer");
    if (M < 0 || V <= 0) return hydra_set_error(HYDRA_ERR_ARG, "cross_entropy: bad shape [%d, %d]", M, V);
    for (int r = 0; r < M; r++)
        if ((!mask || mask[r]) && (targets[r] < 0 || targets[r] >= V))
            return hydra_set_error(HYDRA_ERR_ARG, "cross_entropy: target %d at row %d is outside [0, %d)", targets[r],
                                   r, V);
    dbufs b = {0};
    hydra_status st = HYDRA_OK;
    const size_t n = (size_t)M * V * 4;
    void *pl, *pt, *pm = NULL, *pls, *work;
    OP_TRY(dput(&b, &pl, logits, n));
    OP_TRY(dput(&b, &pt, targets, (size_t)M * 4));
    if (mask) OP_TRY(dput(&b, &pm, mask, (size_t)M));
    OP_TRY(dput(&b, &pls, NULL, sizeof(double)));
    OP_TRY(dput(&b, &work, NULL, hk_bwd_scratch_bytes((size_t)M, 1)));
    OP_RUN(hk_cross_entropy(0, M, V, pl, pt, pm, scale, pls, NULL, work));
    OP_TRY(dget(loss_sum, pls, sizeof(double)));
    if (dlogits) OP_TRY(dget(dlogits, pl, n)); /* logits were read in above: dlogits may alias them */
done:
    dbufs_free(&b);
    return st;
}

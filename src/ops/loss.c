/* loss.c — masked cross-entropy over rows of logits (training). */
#include <math.h>

#include "core/internal.h"

/* Per row r (scored when mask == NULL or mask[r] != 0):
 *   loss_r = logsumexp(logits_r) - logits_r[target_r]   (max-shifted, sums in double)
 *   dlogits_r = (softmax(logits_r) - onehot(target_r)) * scale
 * Row losses are summed in row order after the parallel loop (deterministic). */
hydra_status hydra_op_cross_entropy(int M, int V, const float *logits, const int32_t *targets,
                                    const uint8_t *mask, float scale, double *loss_sum,
                                    float *dlogits) {
    if (!logits || !targets || !loss_sum) return hydra_set_error(HYDRA_ERR_ARG, "cross_entropy: NULL pointer");
    if (M < 0 || V <= 0) return hydra_set_error(HYDRA_ERR_ARG, "cross_entropy: bad shape [%d, %d]", M, V);
    for (int r = 0; r < M; r++)
        if ((!mask || mask[r]) && (targets[r] < 0 || targets[r] >= V))
            return hydra_set_error(HYDRA_ERR_ARG, "cross_entropy: target %d at row %d is outside [0, %d)",
                                   targets[r], r, V);
    *loss_sum = 0.0;
    if (M == 0) return HYDRA_OK;
    double *rl = malloc((size_t)M * sizeof(double)); /* [M] row losses */
    if (!rl) return hydra_set_error(HYDRA_ERR_NOMEM, "cross_entropy: out of memory");
#pragma omp parallel for schedule(dynamic, 8) if ((size_t)M * V >= 32768)
    for (int r = 0; r < M; r++) {
        const float *x = logits + (size_t)r * V;
        float *dx = dlogits ? dlogits + (size_t)r * V : NULL;
        if (mask && !mask[r]) {
            rl[r] = 0.0;
            if (dx) memset(dx, 0, (size_t)V * sizeof(float));
            continue;
        }
        float mx = x[0];
        for (int i = 1; i < V; i++) mx = x[i] > mx ? x[i] : mx;
        double sum = 0.0;
        for (int i = 0; i < V; i++) sum += exp((double)x[i] - mx);
        double lse = (double)mx + log(sum);
        const float xt = x[targets[r]];
        rl[r] = lse - (double)xt;
        if (dx) {
            const double inv = 1.0 / sum;
            for (int i = 0; i < V; i++) dx[i] = (float)(exp((double)x[i] - mx) * inv) * scale;
            dx[targets[r]] -= scale;
        }
    }
    double s = 0.0;
    for (int r = 0; r < M; r++) s += rl[r];
    *loss_sum = s;
    free(rl);
    return HYDRA_OK;
}

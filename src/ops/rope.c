/* rope.c — rotary position embedding, split-half rotation. Angles are
 * computed in double from the absolute position: positions pass 10^6 when
 * streaming and fp32 angles lose whole radians there. */
#include <math.h>

#include "core/internal.h"

hydra_status hydra_op_rope(int T, int H, int d, int64_t pos0, double base, float *x) {
    if (!x) return hydra_set_error(HYDRA_ERR_ARG, "rope: NULL pointer");
    if (T < 0 || H <= 0 || d <= 0 || (d & 1)) return hydra_set_error(HYDRA_ERR_ARG, "rope: bad shape (head dim %d must be even)", d);
    if (pos0 < 0) return hydra_set_error(HYDRA_ERR_ARG, "rope: negative position");
    int half = d / 2;
    for (int t = 0; t < T; t++) {
        double p = (double)(pos0 + t);
        for (int i = 0; i < half; i++) {
            double ang = p * pow(base, -2.0 * i / d);
            float c = (float)cos(ang), s = (float)sin(ang);
            for (int h = 0; h < H; h++) {
                float *xh = x + ((size_t)t * H + h) * d;
                float a = xh[i], b = xh[i + half];
                xh[i] = a * c - b * s;
                xh[i + half] = a * s + b * c;
            }
        }
    }
    return HYDRA_OK;
}

/* The rotation is orthogonal: its gradient is the inverse rotation
 * (a, b) -> (a c + b s, -a s + b c) with the same double-precision angles. */
hydra_status hydra_op_rope_backward(int T, int H, int d, int64_t pos0, double base, float *dx) {
    if (!dx) return hydra_set_error(HYDRA_ERR_ARG, "rope_backward: NULL pointer");
    if (T < 0 || H <= 0 || d <= 0 || (d & 1)) return hydra_set_error(HYDRA_ERR_ARG, "rope_backward: bad shape (head dim %d must be even)", d);
    if (pos0 < 0) return hydra_set_error(HYDRA_ERR_ARG, "rope_backward: negative position");
    int half = d / 2;
    for (int t = 0; t < T; t++) {
        double p = (double)(pos0 + t);
        for (int i = 0; i < half; i++) {
            double ang = p * pow(base, -2.0 * i / d);
            float c = (float)cos(ang), s = (float)sin(ang);
            for (int h = 0; h < H; h++) {
                float *xh = dx + ((size_t)t * H + h) * d;
                float a = xh[i], b = xh[i + half];
                xh[i] = a * c + b * s;
                xh[i + half] = -a * s + b * c;
            }
        }
    }
    return HYDRA_OK;
}

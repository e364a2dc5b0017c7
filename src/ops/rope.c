/* rope.c — rotary position embedding, split-half rotation. Angles are
 * computed in double from the absolute position: positions pass 10^6 when
 * streaming and fp32 angles lose whole radians there. */
#include <math.h>

#include "core/internal.h"

/* Rotate pairs (x_i, x_{i+half}) by sign * angle, angle = (pos0 + t) * base^(-2i/d).
 * sign = +1 is RoPE; sign = -1 its inverse, which is also its gradient
 * (the rotation is orthogonal). The frequencies are computed once per call. */
static hydra_status rotate(const char *fn, int T, int H, int d, int64_t pos0, double base, float sign,
                           float *x) {
    if (!x) return hydra_set_error(HYDRA_ERR_ARG, "%s: NULL pointer", fn);
    if (T < 0 || H <= 0 || d <= 0 || d > 4096 || (d & 1))
        return hydra_set_error(HYDRA_ERR_ARG, "%s: bad shape (head dim %d must be even, <= 4096)", fn, d);
    if (pos0 < 0) return hydra_set_error(HYDRA_ERR_ARG, "%s: negative position", fn);
    HYDRA_CHECK(hydra_position_check(fn, (uint64_t)pos0, T)); /* pos0 + t stays exact in double */
    const int half = d / 2;
    double inv_freq[2048];
    for (int i = 0; i < half; i++) inv_freq[i] = pow(base, -2.0 * i / d);
    for (int t = 0; t < T; t++) {
        double p = (double)(pos0 + t);
        for (int i = 0; i < half; i++) {
            double ang = p * inv_freq[i];
            float c = (float)cos(ang), sn = sign * (float)sin(ang);
            for (int h = 0; h < H; h++) {
                float *xh = x + ((size_t)t * H + h) * d;
                float a = xh[i], b = xh[i + half];
                xh[i] = a * c - b * sn;
                xh[i + half] = a * sn + b * c;
            }
        }
    }
    return HYDRA_OK;
}

hydra_status hydra_op_rope(int T, int H, int d, int64_t pos0, double base, float *x) {
    return rotate("rope", T, H, d, pos0, base, 1.0f, x);
}

hydra_status hydra_op_rope_backward(int T, int H, int d, int64_t pos0, double base, float *dx) {
    return rotate("rope_backward", T, H, d, pos0, base, -1.0f, dx);
}

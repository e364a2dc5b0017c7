/* plot_svg.c — a dependency-free loss-curve picture: train loss as a line,
 * validation loss as dots, linear axes with ticks. */
#include <math.h>
#include <stdio.h>

#include "cli.h"

static double nice_step(double range, int ticks) {
    double raw = range / ticks, mag = pow(10, floor(log10(raw))), f = raw / mag;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * mag;
}

int cli_write_loss_svg(const char *path, const char *title, const double *x, const double *y, int n,
                       const double *vx, const double *vy, int nv) {
    if (n + nv == 0) return 0;
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    const double W = 720, H = 420, L = 64, R = 20, Tm = 36, Bm = 48;
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int i = 0; i < n; i++) x0 = fmin(x0, x[i]), x1 = fmax(x1, x[i]), y0 = fmin(y0, y[i]), y1 = fmax(y1, y[i]);
    for (int i = 0; i < nv; i++) x0 = fmin(x0, vx[i]), x1 = fmax(x1, vx[i]), y0 = fmin(y0, vy[i]), y1 = fmax(y1, vy[i]);
    if (x1 <= x0) x1 = x0 + 1;
    if (y1 <= y0) y1 = y0 + 1;
    double pad = 0.05 * (y1 - y0);
    y0 -= pad, y1 += pad;
#define PX(v) (L + ((v) - x0) / (x1 - x0) * (W - L - R))
#define PY(v) (H - Bm - ((v) - y0) / (y1 - y0) * (H - Tm - Bm))
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n<text x=\"%.0f\" y=\"22\" font-size=\"15\">%s</text>\n", L, title);
    double xs = nice_step(x1 - x0, 6), ys = nice_step(y1 - y0, 6);
    for (double v = ceil(x0 / xs) * xs; v <= x1 + 1e-9; v += xs)
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/><text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>\n",
                PX(v), Tm, PX(v), H - Bm, PX(v), H - Bm + 16, v);
    for (double v = ceil(y0 / ys) * ys; v <= y1 + 1e-9; v += ys)
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/><text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.3g</text>\n",
                L, PY(v), W - R, PY(v), L - 6, PY(v) + 4, v);
    fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">step</text>\n", (L + W - R) / 2, H - 10);
    fprintf(f, "<text x=\"14\" y=\"%.0f\" transform=\"rotate(-90 14 %.0f)\" text-anchor=\"middle\">loss (nats/token)</text>\n", (Tm + H - Bm) / 2, (Tm + H - Bm) / 2);
    if (n > 0) {
        fprintf(f, "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.2\" points=\"");
        for (int i = 0; i < n; i++) fprintf(f, "%.1f,%.1f ", PX(x[i]), PY(y[i]));
        fprintf(f, "\"/>\n");
    }
    for (int i = 0; i < nv; i++) fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"#d62728\"/>\n", PX(vx[i]), PY(vy[i]));
    fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" fill=\"#1f77b4\">— train</text><text x=\"%.0f\" y=\"%.0f\" fill=\"#d62728\">● validation</text>\n",
            W - R - 170, Tm + 14, W - R - 90, Tm + 14);
    fprintf(f, "</svg>\n");
#undef PX
#undef PY
    return fclose(f) == 0 ? 0 : -1;
}

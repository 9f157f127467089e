/* base/plot.c: a small SVG line chart (loss curves), built in memory and written
 * atomically so a reader never sees half a picture. */
#include "base.h"

#include <math.h>

static const char *const colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"};

/* A "nice" tick step (1, 2 or 5 times a power of ten) giving about n ticks over span. */
static double nice_step(double span, int n) {
    double raw = span / n;
    double p = pow(10.0, floor(log10(raw)));
    double m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

int base_plot_svg(const char *path, const char *title, const char *xlabel, const char *ylabel,
                  const base_series *series, int nseries, base_err *e) {
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int s = 0; s < nseries; s++)
        for (size_t i = 0; i < series[s].n; i++) {
            double x = series[s].x[i], y = series[s].y[i];
            if (!isfinite(x) || !isfinite(y)) continue;
            x0 = fmin(x0, x), x1 = fmax(x1, x), y0 = fmin(y0, y), y1 = fmax(y1, y);
        }
    if (!(x0 <= x1)) x0 = 0, x1 = 1, y0 = 0, y1 = 1; /* nothing to draw: empty axes */
    if (x1 - x0 < 1e-12) x1 = x0 + 1;
    if (y1 - y0 < 1e-12) y0 -= 0.5, y1 += 0.5;
    double ypad = (y1 - y0) * 0.05;
    y0 -= ypad, y1 += ypad;

    const double W = 720, H = 440, L = 70, R = 20, T = 40, B = 50;
    const double pw = W - L - R, ph = H - T - B;
#define PX(x) (L + ((x)-x0) / (x1 - x0) * pw)
#define PY(y) (T + (1 - ((y)-y0) / (y1 - y0)) * ph)
    base_buf b = {0};
    base_buf_printf(&b,
                    "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
                    "font-family=\"sans-serif\" font-size=\"12\">\n"
                    "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
                    "<text x=\"%.0f\" y=\"24\" font-size=\"15\" text-anchor=\"middle\">%s</text>\n",
                    W, H, W / 2, title);
    double xs = nice_step(x1 - x0, 8), ys = nice_step(y1 - y0, 6);
    for (double t = ceil(x0 / xs) * xs; t <= x1 + 1e-9; t += xs)
        base_buf_printf(&b,
                        "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                        "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>\n",
                        PX(t), T, PX(t), T + ph, PX(t), T + ph + 16, t);
    for (double t = ceil(y0 / ys) * ys; t <= y1 + 1e-9; t += ys)
        base_buf_printf(&b,
                        "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                        "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.4g</text>\n",
                        L, PY(t), L + pw, PY(t), L - 6, PY(t) + 4, t);
    base_buf_printf(&b,
                    "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" "
                    "stroke=\"#333\"/>\n"
                    "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">%s</text>\n"
                    "<text x=\"16\" y=\"%.0f\" text-anchor=\"middle\" "
                    "transform=\"rotate(-90 16 %.0f)\">%s</text>\n",
                    L, T, pw, ph, L + pw / 2, H - 10, xlabel, T + ph / 2, T + ph / 2, ylabel);
    for (int s = 0; s < nseries; s++) {
        const char *c = colors[s % 5];
        base_buf_printf(&b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"",
                        c);
        for (size_t i = 0; i < series[s].n; i++)
            if (isfinite(series[s].x[i]) && isfinite(series[s].y[i]))
                base_buf_printf(&b, "%.1f,%.1f ", PX(series[s].x[i]), PY(series[s].y[i]));
        base_buf_printf(&b, "\"/>\n<text x=\"%.0f\" y=\"%.0f\" fill=\"%s\">%s</text>\n",
                        L + pw - 150, T + 18 + 16 * s, c, series[s].label);
    }
    base_buf_printf(&b, "</svg>\n");
#undef PX
#undef PY
    if (b.failed) {
        base_buf_free(&b);
        return base_fail(e, BASE_ENOMEM, "out of memory drawing %s", path);
    }
    int rc = base_write_atomic(path, b.data, b.len, e);
    base_buf_free(&b);
    return rc;
}

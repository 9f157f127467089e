/* tensor/ref.c: reference kernels. Plain single-threaded loops that follow the math
 * directly, accumulating in double where a sum is long; the fast kernels are tested against
 * these, and these against finite differences. */
#include "tensor.h"

#include <math.h>
#include <string.h>

void tensor_ref_embed_fwd(float *out, const int *tok, const float *wte, const float *wpe, int B,
                          int T, int C) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            float *o = out + ((size_t)b * T + t) * C;
            const float *e = wte + (size_t)tok[b * T + t] * C;
            for (int c = 0; c < C; c++) o[c] = e[c] + (wpe ? wpe[(size_t)t * C + c] : 0.0f);
        }
}

void tensor_ref_embed_bwd(float *dwte, float *dwpe, const float *dout, const int *tok, int B, int T,
                          int C) {
    if (!dwte) return;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const float *d = dout + ((size_t)b * T + t) * C;
            float *e = dwte + (size_t)tok[b * T + t] * C;
            for (int c = 0; c < C; c++) {
                e[c] += d[c];
                if (dwpe) dwpe[(size_t)t * C + c] += d[c];
            }
        }
}

void tensor_ref_layernorm_fwd(float *out, float *mean, float *rstd, const float *inp,
                              const float *w, const float *b, int N, int C, float eps) {
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        double m = 0, v = 0;
        for (int c = 0; c < C; c++) m += x[c];
        m /= C;
        for (int c = 0; c < C; c++) v += (x[c] - m) * (x[c] - m);
        v /= C;
        double s = 1.0 / sqrt(v + eps);
        for (int c = 0; c < C; c++)
            out[(size_t)n * C + c] = (float)((x[c] - m) * s * w[c] + (b ? b[c] : 0.0f));
        mean[n] = (float)m;
        rstd[n] = (float)s;
    }
}

void tensor_ref_layernorm_bwd(float *dinp, float *dw, float *db, const float *dout,
                              const float *inp, const float *w, const float *mean,
                              const float *rstd, int N, int C) {
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C, *d = dout + (size_t)n * C;
        double dnorm_mean = 0, dnorm_norm_mean = 0;
        for (int c = 0; c < C; c++) {
            double xhat = (x[c] - mean[n]) * rstd[n];
            double dn = (double)w[c] * d[c];
            dnorm_mean += dn;
            dnorm_norm_mean += dn * xhat;
        }
        dnorm_mean /= C;
        dnorm_norm_mean /= C;
        for (int c = 0; c < C; c++) {
            double xhat = (x[c] - mean[n]) * rstd[n];
            double dn = (double)w[c] * d[c];
            dinp[(size_t)n * C + c] +=
                (float)((dn - dnorm_mean - xhat * dnorm_norm_mean) * rstd[n]);
            if (dw) dw[c] += (float)(xhat * d[c]);
            if (dw && db) db[c] += d[c];
        }
    }
}

void tensor_ref_rmsnorm_fwd(float *out, float *rstd, const float *inp, const float *w, int N, int C,
                            float eps) {
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        double ss = 0;
        for (int c = 0; c < C; c++) ss += (double)x[c] * x[c];
        double s = 1.0 / sqrt(ss / C + eps);
        for (int c = 0; c < C; c++) out[(size_t)n * C + c] = (float)(x[c] * s * w[c]);
        rstd[n] = (float)s;
    }
}

void tensor_ref_rmsnorm_bwd(float *dinp, float *dw, const float *dout, const float *inp,
                            const float *w, const float *rstd, int N, int C) {
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C, *d = dout + (size_t)n * C;
        double s = rstd[n], dot = 0; /* dot = sum_c d_c w_c x_c */
        for (int c = 0; c < C; c++) dot += (double)d[c] * w[c] * x[c];
        for (int c = 0; c < C; c++) {
            dinp[(size_t)n * C + c] += (float)(s * d[c] * w[c] - s * s * s * x[c] * dot / C);
            if (dw) dw[c] += (float)(d[c] * x[c] * s);
        }
    }
}

void tensor_ref_matmul_fwd(float *out, const float *inp, const float *w, const float *b, int N,
                           int C, int OC) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double acc = b ? b[o] : 0.0;
            for (int c = 0; c < C; c++)
                acc += (double)inp[(size_t)n * C + c] * w[(size_t)o * C + c];
            out[(size_t)n * OC + o] = (float)acc;
        }
}

void tensor_ref_matmul_rows_fwd(float *out, const float *inp, const float *w, const float *b, int N,
                                int C, int OC) {
    tensor_ref_matmul_fwd(out, inp, w, b, N, C, OC); /* the same product */
}

void tensor_ref_matmul_bwd(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                           const float *w, int N, int C, int OC) {
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            double acc = 0;
            for (int o = 0; o < OC; o++)
                acc += (double)dout[(size_t)n * OC + o] * w[(size_t)o * C + c];
            dinp[(size_t)n * C + c] += (float)acc;
        }
    for (int o = 0; dw && o < OC; o++) {
        for (int c = 0; c < C; c++) {
            double acc = 0;
            for (int n = 0; n < N; n++)
                acc += (double)dout[(size_t)n * OC + o] * inp[(size_t)n * C + c];
            dw[(size_t)o * C + c] += (float)acc;
        }
        if (db) {
            double acc = 0;
            for (int n = 0; n < N; n++) acc += dout[(size_t)n * OC + o];
            db[o] += (float)acc;
        }
    }
}

void tensor_rope_table(float *cos_t, float *sin_t, int maxT, int HS, float theta) {
    int half = HS / 2;
    for (int t = 0; t < maxT; t++)
        for (int i = 0; i < half; i++) {
            double freq = pow((double)theta, -2.0 * i / HS);
            cos_t[(size_t)t * half + i] = (float)cos(t * freq);
            sin_t[(size_t)t * half + i] = (float)sin(t * freq);
        }
}

/* Rotates every head of rows (b,t) by +angle (dir = 1) or -angle (dir = -1). */
static void rope_ref(float *x, int B, int T, int NH, int HS, int stride, int pos0,
                     const float *cos_t, const float *sin_t, float dir) {
    int half = HS / 2;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < NH; h++) {
                float *v = x + ((size_t)b * T + t) * stride + (size_t)h * HS;
                const float *c = cos_t + (size_t)(pos0 + t) * half,
                            *s = sin_t + (size_t)(pos0 + t) * half;
                for (int i = 0; i < half; i++) {
                    float x1 = v[i], x2 = v[i + half], sn = dir * s[i];
                    v[i] = x1 * c[i] - x2 * sn;
                    v[i + half] = x2 * c[i] + x1 * sn;
                }
            }
}

void tensor_ref_rope_fwd(float *x, int B, int T, int NH, int HS, int stride, int pos0,
                         const float *cos_t, const float *sin_t) {
    rope_ref(x, B, T, NH, HS, stride, pos0, cos_t, sin_t, 1.0f);
}

void tensor_ref_rope_bwd(float *dx, int B, int T, int NH, int HS, int stride, int pos0,
                         const float *cos_t, const float *sin_t) {
    /* The rotation is orthogonal: its transpose is the rotation by -angle. */
    rope_ref(dx, B, T, NH, HS, stride, pos0, cos_t, sin_t, -1.0f);
}

static double dot_dv(const float *d, const float *v, int n) {
    double acc = 0;
    for (int i = 0; i < n; i++) acc += (double)d[i] * v[i];
    return acc;
}

/* scratch: the row's probabilities (T floats) */
void tensor_ref_attention_fwd(float *out, float *lse, float *scratch, const float *qkv, int B,
                              int T, int NH, int NKV, int HS) {
    int row = (NH + 2 * NKV) * HS, group = NH / NKV;
    double scale = 1.0 / sqrt((double)HS);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            int kvh = h / group;
            for (int t = 0; t < T; t++) {
                const float *q = qkv + ((size_t)b * T + t) * row + (size_t)h * HS;
                double mx = -INFINITY, sum = 0;
                for (int u = 0; u <= t; u++) {
                    double sc =
                        scale *
                        dot_dv(q, qkv + ((size_t)b * T + u) * row + (size_t)(NH + kvh) * HS, HS);
                    if (sc > mx) mx = sc;
                }
                for (int u = 0; u <= t; u++)
                    sum += exp(
                        scale * dot_dv(q, qkv + ((size_t)b * T + u) * row + (size_t)(NH + kvh) * HS,
                                       HS) -
                        mx);
                double l = mx + log(sum);
                lse[((size_t)b * NH + h) * T + t] = (float)l;
                for (int u = 0; u <= t; u++)
                    scratch[u] = (float)exp(
                        scale * dot_dv(q, qkv + ((size_t)b * T + u) * row + (size_t)(NH + kvh) * HS,
                                       HS) -
                        l);
                float *o = out + ((size_t)b * T + t) * NH * HS + (size_t)h * HS;
                for (int i = 0; i < HS; i++) {
                    double acc = 0;
                    for (int u = 0; u <= t; u++)
                        acc += (double)scratch[u] *
                               qkv[((size_t)b * T + u) * row + (size_t)(NH + NKV + kvh) * HS + i];
                    o[i] = (float)acc;
                }
            }
        }
}

void tensor_ref_attention_bwd(float *dqkv, float *scratch, const float *dout, const float *qkv,
                              const float *lse, int B, int T, int NH, int NKV, int HS) {
    (void)scratch; /* the reference recomputes the probabilities and their gradients */
    int row = (NH + 2 * NKV) * HS, group = NH / NKV;
    double scale = 1.0 / sqrt((double)HS);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            int kvh = h / group;
            size_t koff = (size_t)(NH + kvh) * HS, voff = (size_t)(NH + NKV + kvh) * HS;
            for (int t = 0; t < T; t++) {
                double l = lse[((size_t)b * NH + h) * T + t];
                const float *d = dout + ((size_t)b * T + t) * NH * HS + (size_t)h * HS;
                const float *q = qkv + ((size_t)b * T + t) * row + (size_t)h * HS;
                float *dq = dqkv + ((size_t)b * T + t) * row + (size_t)h * HS;
                /* a[u] = exp(q.k_u scale - lse); da[u] = d . v_u;
                 * dscore[u] = a[u] (da[u] - sum_w a[w] da[w]) */
                double dot_ada = 0;
                for (int u = 0; u <= t; u++) {
                    const float *ku = qkv + ((size_t)b * T + u) * row + koff;
                    dot_ada += exp(scale * dot_dv(q, ku, HS) - l) *
                               dot_dv(d, qkv + ((size_t)b * T + u) * row + voff, HS);
                }
                for (int u = 0; u <= t; u++) {
                    const float *k = qkv + ((size_t)b * T + u) * row + koff;
                    float *dk = dqkv + ((size_t)b * T + u) * row + koff;
                    float *dv = dqkv + ((size_t)b * T + u) * row + voff;
                    double a = exp(scale * dot_dv(q, k, HS) - l);
                    double da = dot_dv(d, qkv + ((size_t)b * T + u) * row + voff, HS);
                    double ds = a * (da - dot_ada) * scale;
                    for (int i = 0; i < HS; i++) {
                        dq[i] += (float)(ds * k[i]);
                        dk[i] += (float)(ds * q[i]);
                        dv[i] += (float)(a * d[i]);
                    }
                }
            }
        }
}

static const float GELU_S = 0.7978845608028654f; /* sqrt(2/pi) */

void tensor_ref_gelu_fwd(float *out, const float *inp, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double x = inp[i];
        out[i] = (float)(0.5 * x * (1.0 + tanh(GELU_S * (x + 0.044715 * x * x * x))));
    }
}

void tensor_ref_gelu_bwd(float *dinp, const float *inp, const float *dout, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double x = inp[i], u = GELU_S * (x + 0.044715 * x * x * x), th = tanh(u);
        double du = GELU_S * (1.0 + 3.0 * 0.044715 * x * x);
        double g = 0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * du;
        dinp[i] += (float)(g * dout[i]);
    }
}

void tensor_ref_swiglu_fwd(float *out, const float *inp, int N, int F) {
    for (int n = 0; n < N; n++)
        for (int f = 0; f < F; f++) {
            double g = inp[(size_t)n * 2 * F + f], u = inp[(size_t)n * 2 * F + F + f];
            out[(size_t)n * F + f] = (float)(g / (1.0 + exp(-g)) * u);
        }
}

void tensor_ref_swiglu_bwd(float *dinp, const float *inp, const float *dout, int N, int F) {
    for (int n = 0; n < N; n++)
        for (int f = 0; f < F; f++) {
            double g = inp[(size_t)n * 2 * F + f], u = inp[(size_t)n * 2 * F + F + f];
            double sg = 1.0 / (1.0 + exp(-g)), d = dout[(size_t)n * F + f];
            dinp[(size_t)n * 2 * F + f] += (float)(d * u * sg * (1.0 + g * (1.0 - sg)));
            dinp[(size_t)n * 2 * F + F + f] += (float)(d * g * sg);
        }
}

void tensor_ref_residual_fwd(float *out, const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void tensor_ref_residual_bwd(float *da, float *db, const float *dout, size_t n) {
    for (size_t i = 0; i < n; i++) {
        da[i] += dout[i];
        db[i] += dout[i];
    }
}

float tensor_ref_xent_fwd(float *probs, float *losses, const float *logits, const int *targets,
                          int N, int V, int ignore_index, int *n_valid) {
    double total = 0;
    int valid = 0;
    for (int n = 0; n < N; n++) {
        const float *l = logits + (size_t)n * V;
        float *p = probs + (size_t)n * V;
        double mx = -INFINITY, sum = 0;
        for (int v = 0; v < V; v++) mx = l[v] > mx ? l[v] : mx;
        for (int v = 0; v < V; v++) sum += exp(l[v] - mx);
        for (int v = 0; v < V; v++) p[v] = (float)(exp(l[v] - mx) / sum);
        if (targets[n] == ignore_index) {
            losses[n] = 0;
            continue;
        }
        losses[n] = (float)(log(sum) + mx - l[targets[n]]);
        total += losses[n];
        valid++;
    }
    *n_valid = valid;
    return valid ? (float)(total / valid) : 0.0f;
}

void tensor_ref_xent_bwd(float *dlogits, const float *probs, const int *targets, int N, int V,
                         int ignore_index, float scale) {
    for (int n = 0; n < N; n++) {
        if (targets[n] == ignore_index) continue;
        for (int v = 0; v < V; v++)
            dlogits[(size_t)n * V + v] +=
                scale * (probs[(size_t)n * V + v] - (v == targets[n] ? 1.0f : 0.0f));
    }
}

/* optim/adamw.c: AdamW, gradient clipping and the LR schedule. */
#include "optim.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

int optim_adamw_create(optim_adamw *o, size_t n, base_err *e) {
    memset(o, 0, sizeof *o);
    o->beta1 = 0.9f;
    o->beta2 = 0.95f;
    o->eps = 1e-8f;
    o->weight_decay = 0.1f;
    o->n = n;
    o->m = base_alloc_floats(n);
    o->v = base_alloc_floats(n);
    if (!o->m || !o->v) {
        optim_adamw_free(o);
        return base_fail(e, BASE_ENOMEM, "out of memory for optimizer state (%zu parameters)", n);
    }
    return BASE_OK;
}

void optim_adamw_free(optim_adamw *o) {
    free(o->m);
    free(o->v);
    o->m = o->v = NULL;
}

void optim_adamw_begin(optim_adamw *o) {
    o->t++;
}

/* noinline: one copy of the loop, so every caller (whole model or a shard) runs the same
 * instructions on each element. */
__attribute__((noinline)) void optim_adamw_span(const optim_adamw *o, float *p, const float *g,
                                                float *m, float *v, size_t n, int decay, float lr) {
    /* PyTorch's order: decay the weight, update the moments, then
     * p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps). */
    float b1 = o->beta1, b2 = o->beta2, eps = o->eps;
    float bc1 = 1.0f - powf(b1, (float)o->t), bc2 = 1.0f - powf(b2, (float)o->t);
    float step = lr / bc1, rbc2 = 1.0f / sqrtf(bc2);
    float keep = decay ? 1.0f - lr * o->weight_decay : 1.0f;
#pragma omp parallel for simd schedule(static)
    for (size_t j = 0; j < n; j++) {
        float gj = g[j];
        float mj = b1 * m[j] + (1.0f - b1) * gj;
        float vj = b2 * v[j] + (1.0f - b2) * gj * gj;
        m[j] = mj;
        v[j] = vj;
        p[j] = p[j] * keep - step * mj / (sqrtf(vj) * rbc2 + eps);
    }
}

void optim_adamw_step(optim_adamw *o, float *params, const float *grads, const nn_tensor *tensors,
                      int n_tensors, float lr) {
    optim_adamw_begin(o);
    for (int i = 0; i < n_tensors; i++) {
        size_t off = tensors[i].offset;
        optim_adamw_span(o, params + off, grads + off, o->m + off, o->v + off, tensors[i].numel,
                         tensors[i].decay, lr);
    }
}

float optim_clip_grad_norm(float *grads, size_t n, float max_norm) {
    /* Per-thread partial sums over static chunks, combined in thread order: the same
     * result on every run with the same thread count. */
    double partial[256] = {0};
    int nt = 1;
#pragma omp parallel
    {
        int t = omp_get_thread_num();
#pragma omp single
        nt = omp_get_num_threads() < 256 ? omp_get_num_threads() : 256;
        if (t < nt) {
            size_t per = (n + (size_t)nt - 1) / (size_t)nt, lo = (size_t)t * per;
            size_t hi = lo + per < n ? lo + per : n;
            double s = 0;
#pragma omp simd reduction(+ : s)
            for (size_t i = lo; i < hi; i++) s += (double)grads[i] * grads[i];
            partial[t] = s;
        }
    }
    double total = 0;
    for (int t = 0; t < nt; t++) total += partial[t];
    float norm = (float)sqrt(total);
    if (max_norm > 0 && norm > max_norm && isfinite(norm)) {
        float s = max_norm / (norm + 1e-6f);
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < n; i++) grads[i] *= s;
    }
    return norm;
}

float optim_lr_at(long step, long warmup, long total, float max_lr, float min_lr) {
    if (step < warmup) return max_lr * (float)(step + 1) / (float)warmup;
    if (step >= total) return min_lr;
    double span = (double)(total - warmup), frac = span > 0 ? (double)(step - warmup) / span : 1.0;
    return min_lr + (float)(0.5 * (1.0 + cos(M_PI * frac))) * (max_lr - min_lr);
}

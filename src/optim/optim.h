/* optim: AdamW (decoupled weight decay, bias correction, PyTorch's update order), global
 * gradient-norm clipping, and the linear-warmup + cosine-decay learning-rate schedule.
 * The optimizer owns its moment buffers (one allocation each, laid out like the
 * parameters, so a parameter at offset i has its moments at offset i). */
#ifndef HEARTH_OPTIM_H
#define HEARTH_OPTIM_H

#include "base/base.h"
#include "nn/nn.h"

typedef struct optim_adamw {
    float beta1, beta2, eps, weight_decay;
    size_t n;
    float *m, *v; /* (n) first and second moments */
    long t;       /* steps taken (for bias correction) */
} optim_adamw;

/* Allocates moments for n parameters; defaults beta1 0.9, beta2 0.95, eps 1e-8, wd 0.1. */
int optim_adamw_create(optim_adamw *o, size_t n, base_err *e);
void optim_adamw_free(optim_adamw *o);
/* One step over the tensors (spans of params/grads): weight decay only where decay is set. */
void optim_adamw_step(optim_adamw *o, float *params, const float *grads, const nn_tensor *tensors,
                      int n_tensors, float lr);

/* The two halves of optim_adamw_step, for a caller that updates spans itself (ZeRO-1: each rank
 * its shard, src/dist): begin advances the step count (bias correction) once per step; span
 * updates n parameters p with gradients g and their moments m, v (decay: weight decay applies).
 * optim_adamw_step is begin, then span over each tensor: the same arithmetic, element for
 * element, so a sharded update gives the same bits. */
void optim_adamw_begin(optim_adamw *o);
void optim_adamw_span(const optim_adamw *o, float *p, const float *g, float *m, float *v, size_t n,
                      int decay, float lr);

/* Scales grads so their global L2 norm is at most max_norm (if max_norm > 0); returns the
 * norm before clipping (non-finite if a gradient is). Summed in a fixed order. */
float optim_clip_grad_norm(float *grads, size_t n, float max_norm);

/* Learning rate at step (0-based): linear warmup over `warmup` steps to max_lr, then cosine
 * decay to min_lr at step `total`. */
float optim_lr_at(long step, long warmup, long total, float max_lr, float min_lr);

#endif

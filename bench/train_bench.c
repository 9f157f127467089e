/* bench/train_bench: hearth's training step on the GPT-2 124M shape (random init, random
 * tokens, AdamW, global-norm clipping), timed step by step; and this machine's OpenBLAS
 * sgemm throughput measured in the same process, to express hearth's achieved GFLOP/s as a
 * fraction of it. Run by `make bench` (bench/train_bench.sh), next to the PyTorch and llm.c
 * peers; never by the tests.
 *
 *   train_bench [--preset NAME] [--batch B] [--seq T] [--steps N] [--warmup N]
 *               [--threads N] [--json] [--profile] [--no-peak]
 *
 * --profile times every phase of the step (zero_grad, forward, backward, clip, AdamW) and
 * every kernel, by running the model through a copy of tensor_fast_ops whose entries time
 * the real kernels (the model calls its kernels through m->ops). */
#include "base/base.h"
#include "nn/nn.h"
#include "optim/optim.h"
#include "tensor/tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- kernel timing through a wrapped ops table */

enum {
#define KID(ret, name, args) K_##name,
    TENSOR_KERNELS(KID)
#undef KID
        K_COUNT
};
static const char *const k_names[K_COUNT] = {
#define KNAME(ret, name, args) #name,
    TENSOR_KERNELS(KNAME)
#undef KNAME
};
static double k_time[K_COUNT];
static long k_calls[K_COUNT];
static int k_on; /* record only while the timed steps run */

/* Per-call sgemm FLOPs, recorded by the matmul wrappers (forward and backward separately). */
static double mm_flops_fwd, mm_flops_bwd;

#define WRAP_VOID(name, params, callargs)                                                          \
    static void timed_##name params {                                                              \
        double t0 = base_now();                                                                    \
        tensor_##name callargs;                                                                    \
        if (k_on) {                                                                                \
            k_time[K_##name] += base_now() - t0;                                                   \
            k_calls[K_##name]++;                                                                   \
        }                                                                                          \
    }

WRAP_VOID(embed_fwd,
          (float *out, const int *tok, const float *wte, const float *wpe, int B, int T, int C),
          (out, tok, wte, wpe, B, T, C))
WRAP_VOID(embed_bwd,
          (float *dwte, float *dwpe, const float *dout, const int *tok, int B, int T, int C),
          (dwte, dwpe, dout, tok, B, T, C))
WRAP_VOID(layernorm_fwd,
          (float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
           int N, int C, float eps),
          (out, mean, rstd, inp, w, b, N, C, eps))
WRAP_VOID(layernorm_bwd,
          (float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
           const float *mean, const float *rstd, int N, int C),
          (dinp, dw, db, dout, inp, w, mean, rstd, N, C))
WRAP_VOID(rmsnorm_fwd,
          (float *out, float *rstd, const float *inp, const float *w, int N, int C, float eps),
          (out, rstd, inp, w, N, C, eps))
WRAP_VOID(rmsnorm_bwd,
          (float *dinp, float *dw, const float *dout, const float *inp, const float *w,
           const float *rstd, int N, int C),
          (dinp, dw, dout, inp, w, rstd, N, C))
WRAP_VOID(rope_fwd,
          (float *x, int B, int T, int NH, int HS, int stride, int pos0, const float *cos,
           const float *sin),
          (x, B, T, NH, HS, stride, pos0, cos, sin))
WRAP_VOID(rope_bwd,
          (float *dx, int B, int T, int NH, int HS, int stride, int pos0, const float *cos,
           const float *sin),
          (dx, B, T, NH, HS, stride, pos0, cos, sin))
WRAP_VOID(attention_fwd,
          (float *out, float *lse, float *scratch, const float *qkv, int B, int T, int NH, int NKV,
           int HS),
          (out, lse, scratch, qkv, B, T, NH, NKV, HS))
WRAP_VOID(attention_bwd,
          (float *dqkv, float *scratch, const float *dout, const float *qkv, const float *lse,
           int B, int T, int NH, int NKV, int HS),
          (dqkv, scratch, dout, qkv, lse, B, T, NH, NKV, HS))
WRAP_VOID(gelu_fwd, (float *out, const float *inp, size_t n), (out, inp, n))
WRAP_VOID(gelu_bwd, (float *dinp, const float *inp, const float *dout, size_t n),
          (dinp, inp, dout, n))
WRAP_VOID(swiglu_fwd, (float *out, const float *inp, int N, int F), (out, inp, N, F))
WRAP_VOID(swiglu_bwd, (float *dinp, const float *inp, const float *dout, int N, int F),
          (dinp, inp, dout, N, F))
WRAP_VOID(residual_fwd, (float *out, const float *a, const float *b, size_t n), (out, a, b, n))
WRAP_VOID(residual_bwd, (float *da, float *db, const float *dout, size_t n), (da, db, dout, n))
WRAP_VOID(xent_bwd,
          (float *dlogits, const float *probs, const int *targets, int N, int V, int ignore_index,
           float scale),
          (dlogits, probs, targets, N, V, ignore_index, scale))

/* The matmuls: timed, and split by output width so the profile names the layer. */
#define MM_SLOTS 8
static struct {
    int C, OC;
    double t_fwd, t_bwd;
    long calls_fwd, calls_bwd;
} mm[MM_SLOTS];
static int n_mm;

static int mm_slot(int C, int OC) {
    for (int i = 0; i < n_mm; i++)
        if (mm[i].C == C && mm[i].OC == OC) return i;
    if (n_mm == MM_SLOTS) return MM_SLOTS - 1;
    mm[n_mm].C = C;
    mm[n_mm].OC = OC;
    return n_mm++;
}

static void timed_matmul_fwd(float *out, const float *inp, const float *w, const float *b, int N,
                             int C, int OC) {
    double t0 = base_now();
    tensor_matmul_fwd(out, inp, w, b, N, C, OC);
    if (k_on) {
        double dt = base_now() - t0;
        int s = mm_slot(C, OC);
        k_time[K_matmul_fwd] += dt;
        k_calls[K_matmul_fwd]++;
        mm[s].t_fwd += dt;
        mm[s].calls_fwd++;
        mm_flops_fwd += 2.0 * N * C * (double)OC;
    }
}

/* Decoding's few-row product: training never calls it, but the table needs every entry. */
WRAP_VOID(matmul_rows_fwd,
          (float *out, const float *inp, const float *w, const float *b, int N, int C, int OC),
          (out, inp, w, b, N, C, OC))

static void timed_matmul_bwd(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                             const float *w, int N, int C, int OC) {
    double t0 = base_now();
    tensor_matmul_bwd(dinp, dw, db, dout, inp, w, N, C, OC);
    if (k_on) {
        double dt = base_now() - t0;
        int s = mm_slot(C, OC);
        k_time[K_matmul_bwd] += dt;
        k_calls[K_matmul_bwd]++;
        mm[s].t_bwd += dt;
        mm[s].calls_bwd++;
        mm_flops_bwd += (dinp ? 4.0 : 2.0) * N * C * (double)OC;
    }
}

static float timed_xent_fwd(float *probs, float *losses, const float *logits, const int *targets,
                            int N, int V, int ignore_index, int *n_valid) {
    double t0 = base_now();
    float r = tensor_xent_fwd(probs, losses, logits, targets, N, V, ignore_index, n_valid);
    if (k_on) {
        k_time[K_xent_fwd] += base_now() - t0;
        k_calls[K_xent_fwd]++;
    }
    return r;
}

static const tensor_ops timed_ops = {.name = "fast+timed",
#define KFIELD(ret, name, args) .name = timed_##name,
                                     TENSOR_KERNELS(KFIELD)
#undef KFIELD
};

/* ---- the benchmark */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void usage(void) {
    fprintf(stderr, "usage: train_bench [--preset NAME] [--batch B] [--seq T] [--steps N] "
                    "[--warmup N] [--threads N] [--json] [--profile] [--no-peak]\n");
}

enum { PH_ZERO, PH_FWD, PH_BWD, PH_CLIP, PH_OPT, PH_COUNT };
static const char *const ph_names[PH_COUNT] = {"zero_grad", "forward", "backward", "clip_grad",
                                               "adamw"};

int main(int argc, char **argv) {
    const char *preset = "gpt2-124m";
    int B = 4, T = 64, steps = 10, warmup = 2, threads = 2, json = 0, profile = 0, peak = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (!strcmp(a, "--preset") && has)
            preset = argv[++i];
        else if (!strcmp(a, "--batch") && has)
            B = atoi(argv[++i]);
        else if (!strcmp(a, "--seq") && has)
            T = atoi(argv[++i]);
        else if (!strcmp(a, "--steps") && has)
            steps = atoi(argv[++i]);
        else if (!strcmp(a, "--warmup") && has)
            warmup = atoi(argv[++i]);
        else if (!strcmp(a, "--threads") && has)
            threads = atoi(argv[++i]);
        else if (!strcmp(a, "--json"))
            json = 1;
        else if (!strcmp(a, "--profile"))
            profile = 1;
        else if (!strcmp(a, "--no-peak"))
            peak = 0;
        else {
            usage();
            return 2;
        }
    }
    if (B < 1 || T < 1 || steps < 1 || warmup < 0 || threads < 1) {
        usage();
        return 2;
    }
    tensor_set_threads(threads);

    base_err e = {0};
    nn_config c;
    nn_model *m = NULL;
    optim_adamw o;
    if (nn_config_preset(&c, preset, &e) || nn_model_create(&m, &c, B, T, &e) ||
        optim_adamw_create(&o, m->n_params, &e)) {
        fprintf(stderr, "train_bench: %s\n", e.msg);
        return 1;
    }
    nn_model_init(m, 1337);
    if (profile) m->ops = &timed_ops;

    int N = B * T;
    int *tok = malloc((size_t)(N + 1) * sizeof(int));
    int *tgt = malloc((size_t)N * sizeof(int));
    double *ms = malloc((size_t)steps * sizeof(double));
    double ph[PH_COUNT] = {0};
    float loss = 0, first_loss = 0;
    base_rng rng;
    base_rng_seed(&rng, 42);
    if (!tok || !tgt || !ms) {
        fprintf(stderr, "train_bench: out of memory\n");
        return 1;
    }

    for (int s = 0; s < warmup + steps; s++) {
        /* A fresh random batch per step (not timed): targets are the next tokens. */
        for (int i = 0; i <= N; i++) tok[i] = (int)base_rng_below(&rng, (uint64_t)c.vocab_size);
        memcpy(tgt, tok + 1, (size_t)N * sizeof(int));
        int timed = s >= warmup;
        k_on = profile && timed;
        double t[PH_COUNT + 1];
        t[0] = base_now();
        nn_zero_grad(m);
        t[1] = base_now();
        if (nn_forward(m, tok, tgt, B, T, &loss, &e)) {
            fprintf(stderr, "train_bench: %s\n", e.msg);
            return 1;
        }
        t[2] = base_now();
        nn_backward(m, 1.0f);
        t[3] = base_now();
        optim_clip_grad_norm(m->grads, m->n_params, 1.0f);
        t[4] = base_now();
        optim_adamw_step(&o, m->params, m->grads, m->tensors, m->n_tensors, 3e-4f);
        t[5] = base_now();
        if (s == 0) first_loss = loss;
        if (timed) {
            ms[s - warmup] = (t[5] - t[0]) * 1e3;
            for (int p = 0; p < PH_COUNT; p++) ph[p] += t[p + 1] - t[p];
        }
        if (!json)
            fprintf(stderr, "step %d%s: loss %.4f, %.1f ms\n", s, timed ? "" : " (warmup)", loss,
                    (t[5] - t[0]) * 1e3);
    }
    k_on = 0;

    double med = median(ms, steps), best = ms[0];
    double tok_s = N / (med * 1e-3);
    double fpt = nn_flops_per_token(&c, T);
    double gflops = 3.0 * fpt * N / (med * 1e-3) * 1e-9; /* training ~ 3x forward */
    double peak_g = 0;
    int peak_n = 0;
    if (peak) {
        /* Same process, same thread count, after training (the pool is warm). */
        int sizes[] = {1536, 2048};
        for (int i = 0; i < 2; i++) {
            double g = tensor_sgemm_peak_gflops(sizes[i], 6);
            if (g > peak_g) {
                peak_g = g;
                peak_n = sizes[i];
            }
        }
    }
    double frac = peak_g > 0 ? gflops / peak_g : 0;

    if (json) {
        printf("{\"impl\":\"hearth\",\"preset\":\"%s\",\"B\":%d,\"T\":%d,\"threads\":%d,"
               "\"steps\":%d,\"warmup\":%d,\"params\":%zu,\"median_ms\":%.2f,\"best_ms\":%.2f,"
               "\"tokens_per_s\":%.1f,\"flops_per_token_fwd\":%.0f,\"gflops\":%.2f,"
               "\"sgemm_peak_gflops\":%.2f,\"sgemm_peak_n\":%d,\"peak_fraction\":%.4f,"
               "\"first_loss\":%.4f,\"last_loss\":%.4f",
               preset, B, T, threads, steps, warmup, m->n_params, med, best, tok_s, fpt, gflops,
               peak_g, peak_n, frac, first_loss, loss);
        printf(",\"phases_ms\":{");
        for (int p = 0; p < PH_COUNT; p++)
            printf("%s\"%s\":%.2f", p ? "," : "", ph_names[p], ph[p] * 1e3 / steps);
        printf("}}\n");
    } else {
        printf("hearth %s B=%d T=%d threads=%d params=%zu (%d timed steps after %d warmup)\n",
               preset, B, T, threads, m->n_params, steps, warmup);
        printf("  median %.1f ms/step (best %.1f), %.0f tokens/s\n", med, best, tok_s);
        printf("  achieved %.1f GFLOP/s (3 x %.3g forward FLOPs/token)\n", gflops, fpt);
        if (peak)
            printf("  OpenBLAS sgemm peak %.1f GFLOP/s (n=%d) -> %.1f%% of peak\n", peak_g, peak_n,
                   100 * frac);
        printf("  loss %.4f -> %.4f\n", first_loss, loss);
    }

    if (profile) {
        /* Wall time per step by phase, then by kernel (medians would need per-step records;
         * these are means over the timed steps). */
        double step_s = 0;
        for (int p = 0; p < PH_COUNT; p++) step_s += ph[p];
        FILE *out = json ? stderr : stdout;
        fprintf(out, "\nprofile: mean ms/step over %d steps (of which %% of the step)\n", steps);
        for (int p = 0; p < PH_COUNT; p++)
            fprintf(out, "  %-10s %8.2f ms  %5.1f%%\n", ph_names[p], ph[p] * 1e3 / steps,
                    100 * ph[p] / step_s);
        fprintf(out, "  %-10s %8.2f ms\n", "total", step_s * 1e3 / steps);
        fprintf(out, "\nkernels: mean ms/step, calls/step, %% of the step\n");
        int order[K_COUNT];
        for (int i = 0; i < K_COUNT; i++) order[i] = i;
        for (int i = 0; i < K_COUNT; i++)
            for (int j = i + 1; j < K_COUNT; j++)
                if (k_time[order[j]] > k_time[order[i]]) {
                    int x = order[i];
                    order[i] = order[j];
                    order[j] = x;
                }
        double ksum = 0;
        for (int i = 0; i < K_COUNT; i++) {
            int k = order[i];
            ksum += k_time[k];
            if (!k_calls[k]) continue;
            fprintf(out, "  %-14s %8.2f ms  %4ld  %5.1f%%\n", k_names[k], k_time[k] * 1e3 / steps,
                    k_calls[k] / steps, 100 * k_time[k] / step_s);
        }
        fprintf(out, "  %-14s %8.2f ms\n", "(outside kernels, in fwd+bwd)",
                (ph[PH_FWD] + ph[PH_BWD] - ksum) * 1e3 / steps);
        fprintf(out, "\nmatmuls by shape (N=%d): fwd ms, bwd ms per step; GFLOP/s fwd, bwd\n", N);
        for (int i = 0; i < n_mm; i++) {
            double ffl = 2.0 * N * mm[i].C * (double)mm[i].OC;
            double gf = mm[i].t_fwd > 0 ? ffl * mm[i].calls_fwd / mm[i].t_fwd * 1e-9 : 0;
            double gb = mm[i].t_bwd > 0 ? 2 * ffl * mm[i].calls_bwd / mm[i].t_bwd * 1e-9 : 0;
            fprintf(out, "  C=%-5d OC=%-6d  %7.2f  %7.2f   %6.1f  %6.1f\n", mm[i].C, mm[i].OC,
                    mm[i].t_fwd * 1e3 / steps, mm[i].t_bwd * 1e3 / steps, gf, gb);
        }
        double tm = k_time[K_matmul_fwd] + k_time[K_matmul_bwd];
        fprintf(out, "  all matmuls: %.1f GFLOP/s (%.1f%% of the step)\n",
                (mm_flops_fwd + mm_flops_bwd) / tm * 1e-9, 100 * tm / step_s);
    }

    free(tok);
    free(tgt);
    free(ms);
    optim_adamw_free(&o);
    nn_model_free(m);
    return 0;
}

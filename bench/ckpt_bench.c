/* bench/ckpt_bench: checkpoint cost on the GPT-2 124M shape (random init, AdamW state).
 *   --mode save: times ckpt_save (model + optimizer, fsync'd) --reps times into DIR and prints
 *                the bytes written and MB/s (bench/ckpt_bench.sh compares with dd on the disk).
 *   --mode async: training step time (B=4, T=64) without a checkpoint, then with one in flight
 *                on ckpt_writer (the second checkpoint: the first waits for the writer's
 *                pre-faulting of its buffers): the training thread's stall (the submit and the
 *                wait for the snapshot copy before the optimizer step) and the steps that
 *                overlap the background copy and write, as fractions of a plain step.
 * The last line of output is one JSON object.
 *
 *   ckpt_bench --dir DIR [--mode save|async] [--reps N] [--steps N] [--threads N] */
#include "ckpt/ckpt.h"
#include "nn/nn.h"
#include "optim/optim.h"
#include "tensor/tensor.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Bytes of the regular files in dir (one checkpoint). */
static unsigned long long dir_bytes(const char *dir) {
    unsigned long long n = 0;
    DIR *d = opendir(dir);
    struct dirent *de;
    char p[4096];
    struct stat sb;
    while (d && (de = readdir(d))) {
        int k = snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        if (k > 0 && k < (int)sizeof p && stat(p, &sb) == 0 && S_ISREG(sb.st_mode))
            n += (unsigned long long)sb.st_size;
    }
    if (d) closedir(d);
    return n;
}

typedef struct bench {
    nn_config c;
    nn_model *m;
    optim_adamw o;
    int B, T, *tok, *tgt;
    base_rng rng;
    ckpt_writer *w; /* with a checkpoint in flight: its snapshot is waited for, as train does */
} bench;

/* One training step on a fresh random batch; returns its milliseconds. */
static double step(bench *b) {
    int N = b->B * b->T;
    for (int i = 0; i <= N; i++)
        b->tok[i] = (int)base_rng_below(&b->rng, (uint64_t)b->c.vocab_size);
    memcpy(b->tgt, b->tok + 1, (size_t)N * sizeof(int));
    double t0 = base_now();
    float loss;
    base_err e = {0};
    nn_zero_grad(b->m);
    if (nn_forward(b->m, b->tok, b->tgt, b->B, b->T, &loss, &e)) {
        fprintf(stderr, "ckpt_bench: %s\n", e.msg);
        exit(1);
    }
    nn_backward(b->m, 1.0f);
    optim_clip_grad_norm(b->m->grads, b->m->n_params, 1.0f);
    if (b->w) ckpt_writer_snapshot_wait(b->w);
    optim_adamw_step(&b->o, b->m->params, b->m->grads, b->m->tensors, b->m->n_tensors, 3e-4f);
    return (base_now() - t0) * 1e3;
}

int main(int argc, char **argv) {
    const char *dir = NULL, *mode = "save";
    int reps = 3, steps = 6, threads = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (!strcmp(a, "--dir") && has)
            dir = argv[++i];
        else if (!strcmp(a, "--mode") && has)
            mode = argv[++i];
        else if (!strcmp(a, "--reps") && has)
            reps = atoi(argv[++i]);
        else if (!strcmp(a, "--steps") && has)
            steps = atoi(argv[++i]);
        else if (!strcmp(a, "--threads") && has)
            threads = atoi(argv[++i]);
        else
            dir = NULL, reps = 0;
    }
    if (!dir || reps < 1 || reps > 100 || steps < 2 || steps > 1000 || threads < 1 ||
        (strcmp(mode, "save") && strcmp(mode, "async"))) {
        fprintf(stderr, "usage: ckpt_bench --dir DIR [--mode save|async] [--reps N] [--steps N] "
                        "[--threads N]\n");
        return 2;
    }
    tensor_set_threads(threads);
    bench b = {.B = 4, .T = 64};
    base_err e = {0};
    if (nn_config_preset(&b.c, "gpt2-124m", &e) || nn_model_create(&b.m, &b.c, b.B, b.T, &e) ||
        optim_adamw_create(&b.o, b.m->n_params, &e)) {
        fprintf(stderr, "ckpt_bench: %s\n", e.msg);
        return 1;
    }
    nn_model_init(b.m, 1337);
    base_rng_seed(&b.rng, 42);
    b.tok = malloc((size_t)(b.B * b.T + 1) * sizeof(int));
    b.tgt = malloc((size_t)(b.B * b.T) * sizeof(int));
    if (!b.tok || !b.tgt) return 1;
    step(&b); /* AdamW moments become non-zero, as in a real run */

    ckpt_trainer t = {.step = 1,
                      .steps = 1000,
                      .batch = b.B,
                      .seq = b.T,
                      .accum = 1,
                      .lr = 3e-4f,
                      .min_lr = 3e-5f,
                      .weight_decay = 0.1f,
                      .clip = 1.0f,
                      .seed = 1337};
    snprintf(t.data_identity, sizeof t.data_identity, "bench");
    if (!strcmp(mode, "save")) {
        double *ms = malloc((size_t)reps * sizeof(double));
        unsigned long long bytes = 0;
        char sd[4096];
        snprintf(sd, sizeof sd, "%s/step_%08ld", dir, t.step);
        for (int r = 0; r < reps; r++) {
            double t0 = base_now();
            if (ckpt_save(dir, b.m, &b.o, &t, &e)) {
                fprintf(stderr, "ckpt_bench: %s\n", e.msg);
                return 1;
            }
            ms[r] = (base_now() - t0) * 1e3;
            bytes = dir_bytes(sd);
            printf("ckpt_save %d: %llu bytes in %.0f ms = %.1f MB/s\n", r + 1, bytes, ms[r],
                   (double)bytes / (ms[r] * 1e3));
        }
        double med = median(ms, reps);
        printf("{\"bytes\":%llu,\"median_ms\":%.1f,\"mb_per_s\":%.1f,\"reps\":%d}\n", bytes, med,
               (double)bytes / (med * 1e3), reps);
        free(ms);
    } else {
        double *plain = malloc((size_t)steps * sizeof(double));
        double *fly = malloc((size_t)1000 * sizeof(double));
        step(&b); /* warmup */
        for (int s = 0; s < steps; s++) plain[s] = step(&b);
        double base = median(plain, steps);
        printf("plain steps: median %.1f ms\n", base);
        ckpt_writer *w = NULL;
        if (ckpt_writer_create(&w, dir, b.m, 0, 0, &e)) {
            fprintf(stderr, "ckpt_bench: %s\n", e.msg);
            return 1;
        }
        b.w = w;
        /* A first checkpoint, untimed but reported: it waits for the writer's pre-faulting of
         * its buffers (started at create) to finish. */
        double t0 = base_now();
        if (ckpt_writer_submit(w, b.m, &b.o, &t, NULL, &e)) {
            fprintf(stderr, "ckpt_bench: %s\n", e.msg);
            return 1;
        }
        double first_ms = (base_now() - t0) * 1e3;
        ckpt_write_result r0;
        ckpt_writer_wait(w, &r0);
        if (r0.rc) {
            fprintf(stderr, "ckpt_bench: background write: %s\n", r0.err.msg);
            return 1;
        }
        printf("first checkpoint (after the buffers' pre-faulting): submit %.1f ms\n", first_ms);
        t.step = 2;
        /* The timed one: the submit (snapshot), then steps until the write is done. */
        t0 = base_now();
        if (ckpt_writer_submit(w, b.m, &b.o, &t, NULL, &e)) {
            fprintf(stderr, "ckpt_bench: %s\n", e.msg);
            return 1;
        }
        double submit_ms = (base_now() - t0) * 1e3;
        int n = 0;
        double fly_sum = 0;
        do {
            fly[n] = step(&b);
            fly_sum += fly[n++];
        } while (!ckpt_writer_done(w) && n < 1000);
        ckpt_write_result r;
        ckpt_writer_wait(w, &r);
        if (r.rc) {
            fprintf(stderr, "ckpt_bench: background write: %s\n", r.err.msg);
            return 1;
        }
        ckpt_writer_free(w);
        b.w = NULL;
        /* the overlapping steps' slowdown, total ms (it includes the snapshot wait) */
        double extra = fly_sum - n * base;
        printf("checkpoint: submit %.1f ms, snapshot %.1f ms on the writer (the step waited %.1f "
               "ms for it), write %.0f ms in the background, %d steps overlapped it (mean %.1f "
               "ms)\n",
               submit_ms, r.snapshot_ms, r.wait_ms, r.write_ms, n, fly_sum / n);
        printf("{\"step_ms\":%.1f,\"submit_ms\":%.1f,\"snapshot_ms\":%.1f,\"wait_ms\":%.1f,"
               "\"write_ms\":%.0f,\"overlap_steps\":%d,\"overlap_mean_ms\":%.1f,"
               "\"stall_frac\":%.4f,\"slowdown_total_frac\":%.4f}\n",
               base, submit_ms, r.snapshot_ms, r.wait_ms, r.write_ms, n, fly_sum / n,
               (submit_ms + r.wait_ms) / base, (submit_ms + extra) / base);
        free(plain);
        free(fly);
    }
    optim_adamw_free(&b.o);
    nn_model_free(b.m);
    free(b.tok);
    free(b.tgt);
    return 0;
}

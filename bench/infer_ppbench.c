/* bench/infer_ppbench: hearth's engine measured as llama-bench measures llama.cpp's, for
 * bench/infer_bench.sh:
 *
 *   infer_ppbench MODEL.gguf [-p 512] [-n 128] [-t THREADS] [-r REPS] [--lora ADAPTER.gguf]
 *
 * pp: one forward of P random prompt tokens from an empty cache, logits of the last only
 * (llama-bench's pp512: one llama_decode of the batch). tg: N single-token decode forwards from
 * an empty cache, logits of each (llama-bench's tg128; the token fed is random, not sampled, as
 * there). One context of P + N positions, F16 KV cache, as llama-bench's defaults. A warm-up pp
 * and one decode first (llama-bench warms up too). Prints one line per test and repetition:
 * "pp512 1 12.34" (test, rep, tokens/s).
 *
 * --lora ADAPTER: what a LoRA adapter applied unmerged (as `hearth serve --lora` runs one) costs,
 * measured A/B inside the process so that a loaded machine's drift falls on both alike: each pp
 * is run without and with the adapter, alternately; tg's N tokens with and N without come in
 * alternating blocks of 4 over one context of 2N positions. Prints "pp512 1 base 12.34 lora
 * 11.98" (tokens/s of each). bench/lora_bench.sh runs it. */
#include "base/base.h"
#include "infer/infer.h"
#include "tensor/tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int pp(infer_engine *g, int V, int P, base_rng *r, float *logits, base_err *e) {
    int32_t *tok = malloc((size_t)P * sizeof *tok);
    int *slot = calloc((size_t)P, sizeof *slot), *pos = malloc((size_t)P * sizeof *pos);
    int rc = BASE_ENOMEM;
    if (tok && slot && pos) {
        for (int i = 0; i < P; i++) tok[i] = (int32_t)base_rng_below(r, (uint64_t)V), pos[i] = i;
        int last = P - 1;
        rc = infer_forward(g, tok, slot, pos, P, 0, &last, 1, logits, e);
    }
    free(tok), free(slot), free(pos);
    return rc;
}

static int tg_from(infer_engine *g, int V, int p0, int N, base_rng *r, float *logits, base_err *e) {
    for (int i = p0; i < p0 + N; i++) {
        int32_t t = (int32_t)base_rng_below(r, (uint64_t)V);
        int slot = 0, row = 0;
        int rc = infer_forward(g, &t, &slot, &i, 1, 1, &row, 1, logits, e);
        if (rc) return rc;
    }
    return 0;
}

static int tg(infer_engine *g, int V, int N, base_rng *r, float *logits, base_err *e) {
    return tg_from(g, V, 0, N, r, logits, e);
}

/* --lora: pp and tg, without and with the adapter a on slot 0, alternately. */
#define AB_BLOCK 4
static int ab(infer_engine *g, const infer_lora *a, int V, int P, int N, int R, base_rng *r,
              float *logits, base_err *e) {
    int rc = 0;
    for (int k = 0; !rc && k < R; k++) {
        double t[2] = {0, 0};
        for (int on = 0; !rc && on < 2; on++) {
            int which = (k + on) % 2; /* the order alternates between reps too */
            rc = infer_engine_set_lora(g, 0, which ? a : NULL, e);
            double t0 = base_now();
            if (!rc) rc = pp(g, V, P, r, logits, e);
            t[which] = base_now() - t0;
        }
        if (!rc) printf("pp%d %d base %.3f lora %.3f\n", P, k + 1, P / t[0], P / t[1]);
        fflush(stdout);
    }
    for (int k = 0; !rc && k < R; k++) {
        double t[2] = {0, 0};
        for (int p = 0; !rc && p < 2 * N; p += AB_BLOCK) {
            int which = (p / AB_BLOCK + k) % 2, n = 2 * N - p < AB_BLOCK ? 2 * N - p : AB_BLOCK;
            rc = infer_engine_set_lora(g, 0, which ? a : NULL, e);
            double t0 = base_now();
            if (!rc) rc = tg_from(g, V, p, n, r, logits, e);
            t[which] += base_now() - t0;
        }
        if (!rc) printf("tg%d %d base %.3f lora %.3f\n", N, k + 1, N / t[0], N / t[1]);
        fflush(stdout);
    }
    return rc;
}

static int usage(void) {
    fprintf(stderr, "usage: infer_ppbench MODEL.gguf [-p 512] [-n 128] [-t 2] [-r 1] [--lora F]\n");
    return 2;
}

int main(int argc, char **argv) {
    const char *model = NULL, *lora_path = NULL;
    int P = 512, N = 128, T = 2, R = 1;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && !strcmp(argv[i], "-p"))
            P = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "-n"))
            N = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "-t"))
            T = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "-r"))
            R = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--lora"))
            lora_path = argv[++i];
        else if (!model && argv[i][0] != '-')
            model = argv[i];
        else
            return usage();
    }
    if (!model || P < 1 || N < 1 || T < 1 || R < 1) return usage();
    tensor_set_threads(T);
    base_err e = {0};
    infer_model *m = NULL;
    infer_engine *g = NULL;
    infer_lora *lora = NULL;
    if (infer_model_load(&m, model, NULL, &e) ||
        infer_engine_create(&g, m, 1, P + 2 * N, P, INFER_KV_F16, &e) ||
        (lora_path && infer_lora_load(&lora, m, lora_path, 1.0f, &e))) {
        fprintf(stderr, "infer_ppbench: %s\n", e.msg);
        infer_engine_free(g);
        infer_lora_free(lora);
        infer_model_free(m);
        return 1;
    }
    int V = infer_model_config(m)->vocab_size;
    float *logits = malloc((size_t)V * sizeof *logits);
    base_rng r;
    base_rng_seed(&r, 1);
    int rc = !logits;
    if (!rc) rc = pp(g, V, P, &r, logits, &e) || tg(g, V, 1, &r, logits, &e); /* warm-up */
    if (!rc && lora) {
        rc = ab(g, lora, V, P, N, R, &r, logits, &e);
        R = 0;
    }
    for (int k = 0; !rc && k < R; k++) {
        double t0 = base_now();
        rc = pp(g, V, P, &r, logits, &e);
        double t1 = base_now();
        if (!rc) printf("pp%d %d %.3f\n", P, k + 1, P / (t1 - t0));
        fflush(stdout);
    }
    for (int k = 0; !rc && k < R; k++) {
        double t0 = base_now();
        rc = tg(g, V, N, &r, logits, &e);
        double t1 = base_now();
        if (!rc) printf("tg%d %d %.3f\n", N, k + 1, N / (t1 - t0));
        fflush(stdout);
    }
    if (rc) fprintf(stderr, "infer_ppbench: %s\n", logits ? e.msg : "out of memory");
    free(logits);
    infer_engine_free(g);
    infer_lora_free(lora);
    infer_model_free(m);
    return rc ? 1 : 0;
}

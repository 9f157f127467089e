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
 * "pp512 1 12.34" (test, rep, tokens/s). --lora: the sequence's rows go through a LoRA adapter
 * (unmerged, as `hearth serve --lora` runs one; bench/lora_bench.sh measures what it costs). */
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

static int tg(infer_engine *g, int V, int N, base_rng *r, float *logits, base_err *e) {
    for (int i = 0; i < N; i++) {
        int32_t t = (int32_t)base_rng_below(r, (uint64_t)V);
        int slot = 0, row = 0;
        int rc = infer_forward(g, &t, &slot, &i, 1, 1, &row, 1, logits, e);
        if (rc) return rc;
    }
    return 0;
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
        else {
            fprintf(stderr,
                    "usage: infer_ppbench MODEL.gguf [-p 512] [-n 128] [-t 2] [-r 1] [--lora F]\n");
            return 2;
        }
    }
    if (!model || P < 1 || N < 1 || T < 1 || R < 1) {
        fprintf(stderr,
                "usage: infer_ppbench MODEL.gguf [-p 512] [-n 128] [-t 2] [-r 1] [--lora F]\n");
        return 2;
    }
    tensor_set_threads(T);
    base_err e = {0};
    infer_model *m = NULL;
    infer_engine *g = NULL;
    infer_lora *lora = NULL;
    if (infer_model_load(&m, model, NULL, &e) ||
        infer_engine_create(&g, m, 1, P + N, P, INFER_KV_F16, &e) ||
        (lora_path && (infer_lora_load(&lora, m, lora_path, 1.0f, &e) ||
                       infer_engine_set_lora(g, 0, lora, &e)))) {
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

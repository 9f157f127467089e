/* cli/cmd_export.c: `hearth export` — a run's newest good checkpoint (or a given one) as one
 * standalone model file (ckpt_export). */
#include "ckpt/ckpt.h"
#include "ckpt/export.h"
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void usage(FILE *f) {
    fprintf(f, "usage: hearth export RUN|RUN/step_NNNNNNNN --format safetensors -o FILE\n"
               "       hearth export RUN|MODEL.safetensors --format gguf [--tokenizer F] -o FILE\n\n"
               "safetensors: writes the model of the run's newest checkpoint that verifies (or of\n"
               "the given checkpoint) to FILE, atomically: the tensors under Hugging Face names,\n"
               "and the model config and step in the file's __metadata__.\n"
               "gguf: the model and its tokenizer as one GGUF file for llama.cpp (architecture\n"
               "gpt2 or llama, float32 tensors under llama.cpp's names).\n");
}

int cli_export(int argc, char **argv) {
    const char *src = NULL, *fmt = NULL, *out = NULL, *tokenizer = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--format")) {
            if (!(fmt = cli_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--tokenizer")) {
            if (!(tokenizer = cli_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--out")) {
            if (!(out = cli_value(argc, argv, &i))) return 2;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "hearth: export: unknown option '%s'\n", a);
            return 2;
        } else if (!src) {
            src = a;
        } else {
            fprintf(stderr, "hearth: export: one run or checkpoint directory only ('%s')\n", a);
            return 2;
        }
    }
    if (!src || !fmt || !out) {
        fprintf(stderr, "hearth: export: RUN, --format and -o FILE are required\n");
        usage(stderr);
        return 2;
    }
    if (!strcmp(fmt, "gguf")) return cli_export_gguf(src, tokenizer, out);
    if (strcmp(fmt, "safetensors") != 0) {
        fprintf(stderr, "hearth: export: unknown format '%s' (known: safetensors, gguf)\n", fmt);
        return 2;
    }
    if (tokenizer) {
        fprintf(stderr, "hearth: export: --tokenizer is for --format gguf\n");
        return 2;
    }
    base_err e = {0};
    char *used = NULL;
    if (ckpt_export(src, out, &used, &e)) {
        fprintf(stderr, "hearth: export: %s\n", e.msg);
        return 1;
    }
    printf("exported %s -> %s\n", used, out);
    /* the run's tokenizer, when it has one, went beside it as the file's stem + .htok */
    char tok[4200];
    struct stat sb;
    if (!ckpt_tokenizer_beside(out, tok, sizeof tok) && stat(tok, &sb) == 0)
        printf("tokenizer -> %s\n", tok);
    free(used);
    return 0;
}

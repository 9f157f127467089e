/* cli/cmd_export.c: `hearth export` — a run's newest good checkpoint (or a given one) as one
 * standalone model file (ckpt_export). */
#include "ckpt/ckpt.h"
#include "ckpt/export.h"
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The format a file name asks for by its extension, or NULL. */
static const char *format_of(const char *path) {
    if (cli_ends_with(path, ".gguf")) return "gguf";
    if (cli_ends_with(path, ".safetensors")) return "safetensors";
    return NULL;
}

int cli_export(int argc, char **argv) {
    const char *fmt = NULL, *out = NULL, *tokenizer = NULL, *type = NULL;
    int pure = 0;
    const cli_opt opts[] = {
        CLI_OPT_STR("out", 'o', &out, "FILE", "the model file to write (atomically)"),
        CLI_OPT_STR("format", 0, &fmt, "F",
                    "safetensors or gguf (default: FILE's extension, .safetensors\n"
                    "or .gguf)"),
        CLI_OPT_STR("tokenizer", 0, &tokenizer, "F",
                    "gguf: the vocabulary to store (default: the model's own)"),
        CLI_OPT_STR("type", 0, &type, "T",
                    "gguf: the weights' type as llama-quantize names it: f32\n"
                    "(default), f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_k,\n"
                    "q3_k_s|m|l, q4_k_s|m, q5_k_s|m, q6_k (as `hearth quantize`)"),
        CLI_OPT_FLAG("pure", 0, &pure, "gguf --type: every matrix in T (llama-quantize --pure)"),
        CLI_OPT_END};
    const cli_cmd cmd = {
        .name = "export",
        .usage = "usage: hearth export RUN|RUN/step_NNNNNNNN -o FILE.safetensors\n"
                 "       hearth export RUN|MODEL.safetensors -o FILE.gguf [--tokenizer F] "
                 "[--type T]",
        .about =
            "safetensors: writes the model of the run's newest checkpoint that verifies (or of\n"
            "the given checkpoint) to FILE, atomically: the tensors under Hugging Face names,\n"
            "and the model config and step in the file's __metadata__; the run's tokenizer\n"
            "goes beside it as FILE's stem + .htok.\n"
            "gguf: the model and its tokenizer as one GGUF file for llama.cpp (architecture\n"
            "gpt2 or llama, tensors under llama.cpp's names) in F32, or with --type in the\n"
            "types llama-quantize gives that file type (see `hearth quantize --help`).",
        .opts = opts};
    int npos, st = cli_parse(&cmd, argc, argv, &npos);
    if (st >= 0) return st;
    if (npos > 1)
        return cli_usage_error(&cmd, "one run or checkpoint directory only ('%s')", argv[2]);
    const char *src = npos ? argv[1] : NULL;
    if (!src || !out) return cli_usage_error(&cmd, "RUN and -o FILE are required");
    const char *by_name = format_of(out);
    if (!fmt && !by_name)
        return cli_usage_error(&cmd,
                               "which format? -o %s has neither .safetensors nor .gguf at "
                               "its end: give --format safetensors|gguf",
                               out);
    if (!fmt) fmt = by_name;
    if (by_name && strcmp(fmt, by_name) != 0 &&
        (!strcmp(fmt, "gguf") || !strcmp(fmt, "safetensors")))
        return cli_usage_error(&cmd, "--format %s but -o %s names a %s file", fmt, out, by_name);
    if (!strcmp(fmt, "gguf")) return cli_export_gguf(src, tokenizer, out, type, pure);
    if (strcmp(fmt, "safetensors") != 0) {
        fprintf(stderr, "hearth: export: unknown format '%s' (known: safetensors, gguf)\n", fmt);
        return 2;
    }
    if (tokenizer || type || pure) {
        fprintf(stderr, "hearth: export: --%s is for --format gguf\n",
                tokenizer ? "tokenizer"
                : type    ? "type"
                          : "pure");
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

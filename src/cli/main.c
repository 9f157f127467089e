/* cli/main.c: `hearth` — dispatches to subcommands. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f, "usage: hearth <command> [options]\n\n"
               "commands:\n"
               "  tokenizer  train a BPE vocabulary; encode and decode text\n"
               "             (train|encode|decode|import|info)\n"
               "  prepare    text, directories or JSONL -> token shards for train --data DIR\n"
               "  train      train a GPT-2- or Llama-style transformer on the CPU\n"
               "  finetune   refine a GGUF model on your data: LoRA adapters or --full\n"
               "  merge      a base GGUF and a LoRA adapter -> one model (GGUF or safetensors)\n"
               "  export     a run's newest good checkpoint as one model file (safetensors, GGUF)\n"
               "  quantize   a float GGUF model to Q8_0, Q4_K, ... (llama.cpp's types)\n"
               "  inspect    what a file or checkpoint is: checksums verified, GGUF and\n"
               "             safetensors metadata and tensors\n"
               "  generate   stream a model's continuation of a prompt (TTFT, tokens/s)\n"
               "  chat       talk with a model in the terminal (its chat template, history)\n"
               "  serve      OpenAI-compatible HTTP server; also the vector-store API\n"
               "  vstore     vector-store collections and records on disk\n"
               "  ingest     documents (text, Markdown, HTML, PDF, DOCX, JSONL) into a collection\n"
               "  ask        answer a question from a collection, citing its sources\n"
               "  eval-retrieval  BM25 nDCG@10 / MAP / recall on a BEIR-format test set\n"
               "  embed      JSONL texts -> JSONL vectors with a BERT embedding model\n"
               "  digits     train a small MLP on the 8x8 handwritten digits (2, 4, 6, 8)\n"
               "  help       this message (also -h, --help); --version: the version\n\n"
               "`hearth <command> --help` lists a command's options.\n");
}

/* OpenMP's wait policy, chosen by the machine's load at start. libgomp's spinning workers make
 * the many short parallel regions of a decode step cheap on a machine of its own (decode of the
 * 1.1B Q4_0 model: 38-44 tokens/s spinning briefly, 24 passive, on 2 idle cores) and collapse
 * when other work takes the cores (a descheduled spinner stalls every region: 1-2 tokens/s
 * spinning against 10 passive under load 15; docs/BENCHMARKS.md). So: when the 1-minute load
 * average is below half the cores, spin for a while before sleeping (GOMP_SPINCOUNT=30000, what
 * llama.cpp's threads do with their default polling); otherwise sleep at once (passive). libgomp
 * reads these when it is loaded, before main, so setting them takes a re-exec; OMP_WAIT_POLICY
 * or GOMP_SPINCOUNT set by the user is kept, and a failed exec goes on with libgomp's default. */
static void omp_wait_default(char **argv) {
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return;
    double load = 1e9;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &load) != 1) load = 1e9;
        fclose(f);
    }
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int quiet = ncpu > 0 && load < ncpu / 2.0;
    if ((quiet ? setenv("GOMP_SPINCOUNT", "30000", 1) : setenv("OMP_WAIT_POLICY", "passive", 1)) ==
        0)
        execv("/proc/self/exe", argv);
}

int main(int argc, char **argv) {
    omp_wait_default(argv);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "train")) return cli_train(argc - 1, argv + 1);
    if (!strcmp(cmd, "digits")) return cli_digits(argc - 1, argv + 1);
    if (!strcmp(cmd, "tokenizer")) return cli_tokenizer(argc - 1, argv + 1);
    if (!strcmp(cmd, "prepare")) return cli_prepare(argc - 1, argv + 1);
    if (!strcmp(cmd, "finetune")) return cli_finetune(argc - 1, argv + 1);
    if (!strcmp(cmd, "merge")) return cli_merge(argc - 1, argv + 1);
    if (!strcmp(cmd, "export")) return cli_export(argc - 1, argv + 1);
    if (!strcmp(cmd, "inspect")) return cli_inspect(argc - 1, argv + 1);
    if (!strcmp(cmd, "quantize")) return cli_quantize(argc - 1, argv + 1);
    if (!strcmp(cmd, "generate")) return cli_generate(argc - 1, argv + 1);
    if (!strcmp(cmd, "chat")) return cli_chat(argc - 1, argv + 1);
    if (!strcmp(cmd, "serve")) return cli_serve(argc - 1, argv + 1);
    if (!strcmp(cmd, "vstore")) return cli_vstore(argc - 1, argv + 1);
    if (!strcmp(cmd, "eval-retrieval")) return cli_eval_retrieval(argc - 1, argv + 1);
    if (!strcmp(cmd, "ingest")) return cli_ingest(argc - 1, argv + 1);
    if (!strcmp(cmd, "ask")) return cli_ask(argc - 1, argv + 1);
    if (!strcmp(cmd, "embed")) return cli_embed(argc - 1, argv + 1);
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V") || !strcmp(cmd, "version")) {
        printf("%s\n", HEARTH_VERSION);
        return 0;
    }
    fprintf(stderr, "hearth: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}

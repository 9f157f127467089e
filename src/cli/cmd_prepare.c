/* cli/cmd_prepare.c: `hearth prepare` — text, directories and JSONL to token shards for
 * `hearth train --data DIR`. The work is data_prepare (src/data); this file parses flags,
 * draws the progress bar and prints the summary and warnings. */
#include "cli.h"

#include "data/data.h"
#include "tokenizer/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void help(FILE *f) {
    fprintf(f, "usage: hearth prepare --vocab FILE --out DIR [options] INPUTS...\n\n"
               "Encodes documents into token shards for `hearth train --data DIR`.\n"
               "INPUTS: text files (each one document), directories (every file in them,\n"
               "recursively, in sorted order; hidden entries skipped), and .jsonl files (one JSON\n"
               "object per line; its --field string is a document).\n\n"
               "  --vocab FILE        vocabulary (.htok or GGUF) with an end-of-text token\n"
               "  --out DIR           output: train_NNNNNN.bin, val_NNNNNN.bin, vocab.htok,\n"
               "                      prepare.json (DIR must not hold a prepared set already)\n"
               "  --field NAME        the JSONL field holding the text (default text)\n"
               "  --val-frac X        expected fraction of documents held out (default 0.01)\n"
               "  --shard-tokens N    tokens per shard (default 100000000)\n"
               "  --seed S            salts which documents go to val (default 1337)\n\n"
               "Identical documents are kept once. Malformed JSONL lines are skipped with a\n"
               "warning naming the line, and counted.\n");
}

typedef struct ui {
    int tty;
    int bar_shown;
    uint64_t warnings;
} ui;

#define MAX_WARNINGS 20

static void clear_bar(ui *u) {
    if (u->tty && u->bar_shown) fprintf(stderr, "\r\033[K");
    u->bar_shown = 0;
}

static void on_warn(const char *msg, void *user) {
    ui *u = user;
    if (++u->warnings > MAX_WARNINGS) return;
    clear_bar(u);
    fprintf(stderr, "hearth prepare: warning: %s\n", msg);
}

static void human(double x, char *buf, size_t n) {
    if (x >= 1e9)
        snprintf(buf, n, "%.2fG", x / 1e9);
    else if (x >= 1e6)
        snprintf(buf, n, "%.2fM", x / 1e6);
    else if (x >= 1e3)
        snprintf(buf, n, "%.1fK", x / 1e3);
    else
        snprintf(buf, n, "%.0f", x);
}

static void on_progress(const data_prepare_progress *p, void *user) {
    ui *u = user;
    if (!u->tty) return;
    double frac = p->bytes_total ? (double)p->bytes_done / (double)p->bytes_total : 1;
    if (frac > 1) frac = 1;
    double mbs = p->seconds > 0 ? (double)p->bytes_done / 1e6 / p->seconds : 0;
    char bar[31], docs[32], toks[32];
    int fill = (int)(frac * 30);
    for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
    bar[30] = 0;
    human((double)p->docs, docs, sizeof docs);
    human((double)p->tokens, toks, sizeof toks);
    fprintf(stderr, "\r\033[K[%s] %5.1f%% %.1f/%.1f MB %6.1f MB/s %s docs %s tokens", bar,
            100 * frac, (double)p->bytes_done / 1e6, (double)p->bytes_total / 1e6, mbs, docs, toks);
    u->bar_shown = 1;
    if (p->done) {
        fprintf(stderr, "\n");
        u->bar_shown = 0;
    }
}

int cli_prepare(int argc, char **argv) {
    data_prepare_opts o = {.val_frac = 0.01, .seed = 1337};
    const char *vocab_path = NULL;
    const char **inputs = calloc((size_t)argc + 1, sizeof *inputs);
    size_t ni = 0;
    long v;
    double x;
    if (!inputs) return 1;
    int rc = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help(stdout);
            rc = 0;
            goto done;
        }
        if (strncmp(a, "--", 2) != 0) {
            inputs[ni++] = a;
            continue;
        }
        if (!(val = cli_value(argc, argv, &i))) goto done;
        if (!strcmp(a, "--vocab"))
            vocab_path = val;
        else if (!strcmp(a, "--out"))
            o.out_dir = val;
        else if (!strcmp(a, "--field"))
            o.field = val;
        else if (!strcmp(a, "--val-frac")) {
            if (cli_float(a, val, 0, 0.99, &x)) goto done;
            o.val_frac = x;
        } else if (!strcmp(a, "--shard-tokens")) {
            if (cli_int(a, val, 1, 0x7fffffffffffffffL, &v)) goto done;
            o.shard_tokens = (uint64_t)v;
        } else if (!strcmp(a, "--seed")) {
            if (cli_int(a, val, 0, 0x7fffffffffffffffL, &v)) goto done;
            o.seed = (uint64_t)v;
        } else {
            fprintf(stderr, "hearth prepare: unknown option '%s' (see --help)\n", a);
            goto done;
        }
    }
    if (!vocab_path || !o.out_dir || ni == 0) {
        fprintf(stderr, "hearth prepare: --vocab FILE, --out DIR and at least one input are "
                        "required (see --help)\n");
        goto done;
    }
    base_err e = {0};
    tok_vocab *vocab = NULL;
    if (tok_load(vocab_path, &vocab, &e)) {
        fprintf(stderr, "hearth prepare: %s\n", e.msg);
        rc = 1;
        goto done;
    }
    ui u = {.tty = isatty(STDERR_FILENO)};
    o.vocab = vocab;
    o.inputs = inputs;
    o.n_inputs = ni;
    o.progress = on_progress;
    o.warn = on_warn;
    o.user = &u;
    data_prepare_stats st;
    int r = data_prepare(&o, &st, &e);
    clear_bar(&u);
    if (u.warnings > MAX_WARNINGS)
        fprintf(stderr, "hearth prepare: %llu more warnings not shown\n",
                (unsigned long long)(u.warnings - MAX_WARNINGS));
    if (r) {
        fprintf(stderr, "hearth prepare: %s\n", e.msg);
        tok_free(vocab);
        rc = 1;
        goto done;
    }
    printf("prepared %s: %llu documents from %llu files (%.1f MB); %llu duplicates, %llu empty, "
           "%llu malformed lines skipped\n",
           o.out_dir, (unsigned long long)st.docs, (unsigned long long)st.files,
           (double)st.bytes / 1e6, (unsigned long long)st.duplicates, (unsigned long long)st.empty,
           (unsigned long long)st.bad_lines);
    for (int s = 0; s < 2; s++)
        printf("  %-5s %llu documents, %llu tokens, %llu shard%s\n",
               s ? "val:" : "train:", (unsigned long long)st.split_docs[s],
               (unsigned long long)st.split_tokens[s], (unsigned long long)st.split_shards[s],
               st.split_shards[s] == 1 ? "" : "s");
    if (st.position_cut)
        printf("  one text, split by position: its first %llu bytes train, the last %llu val\n",
               (unsigned long long)st.position_cut,
               (unsigned long long)(st.bytes - st.position_cut));
    printf("  vocabulary %s (%s ids)\n", tok_identity(vocab),
           tok_vocab_size(vocab) <= 65536 ? "uint16" : "uint32");
    if (st.forced_cuts)
        printf("  %llu cuts in text with no safe cut point (lines over 8 MB): the ids next to "
               "them may differ from a whole encoding\n",
               (unsigned long long)st.forced_cuts);
    tok_free(vocab);
    rc = 0;
done:
    free(inputs);
    return rc;
}

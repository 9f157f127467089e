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
    if (!inputs) return 1;
    int rc = 2;
    const cli_opt opts[] = {CLI_OPT_STR("vocab", 0, &vocab_path, "FILE",
                                        "vocabulary (.htok or GGUF) with an end-of-text token"),
                            CLI_OPT_STR("out", 0, &o.out_dir, "DIR",
                                        "output: train_NNNNNN.bin, val_NNNNNN.bin, vocab.htok,\n"
                                        "prepare.json (DIR must not hold a prepared set already)"),
                            CLI_OPT_STR("field", 0, &o.field, "NAME",
                                        "the JSONL field holding the text (default text)"),
                            CLI_OPT_FLOAT("val-frac", 0, &o.val_frac, 0, 0.99, "X",
                                          "expected fraction of documents held out (default 0.01)"),
                            CLI_OPT_INT("shard-tokens", 0, &o.shard_tokens, 1, LONG_MAX, "N",
                                        "tokens per shard (default 100000000)"),
                            CLI_OPT_INT("seed", 0, &o.seed, 0, LONG_MAX, "S",
                                        "salts which documents go to val (default 1337)"),
                            CLI_OPT_END};
    const cli_cmd cmd = {
        .name = "prepare",
        .usage = "usage: hearth prepare --vocab FILE --out DIR [options] INPUTS...",
        .about =
            "Encodes documents into token shards for `hearth train --data DIR`.\n"
            "INPUTS: text files (each one document), directories (every file in them,\n"
            "recursively, in sorted order; hidden entries skipped), and .jsonl files (one JSON\n"
            "object per line; its --field string is a document).",
        .opts = opts,
        .notes = "Identical documents are kept once. Malformed JSONL lines are skipped with a\n"
                 "warning naming the line, and counted."};
    int npos, pst = cli_parse(&cmd, argc, argv, &npos);
    if (pst >= 0) {
        rc = pst;
        goto done;
    }
    for (int i = 0; i < npos; i++) inputs[ni++] = argv[1 + i];
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

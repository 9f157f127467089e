/* cli/cmd_embed.c: `hearth embed` — JSONL of texts in (a file or stdin), JSONL of L2-normalized
 * vectors out, through a BERT-family embedding model (src/embed). */
#include "base/base.h"
#include "cli.h"
#include "embed/embed.h"
#include "tensor/tensor.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char **text;
    size_t *len;
    json_t **id;
    long *line;
    size_t n, cap;
} batch;

static void batch_clear(batch *b) {
    for (size_t i = 0; i < b->n; i++) {
        free(b->text[i]);
        json_decref(b->id[i]);
    }
    b->n = 0;
}

static int batch_push(batch *b, const char *s, size_t n, json_t *id, long line) {
    if (b->n == b->cap) {
        size_t c = b->cap ? 2 * b->cap : 16;
        char **t = realloc(b->text, c * sizeof *t);
        if (t) b->text = t;
        size_t *l = realloc(b->len, c * sizeof *l);
        if (l) b->len = l;
        json_t **d = realloc(b->id, c * sizeof *d);
        if (d) b->id = d;
        long *ln = realloc(b->line, c * sizeof *ln);
        if (ln) b->line = ln;
        if (!t || !l || !d || !ln) return -1;
        b->cap = c;
    }
    b->text[b->n] = malloc(n + 1);
    if (!b->text[b->n]) return -1;
    memcpy(b->text[b->n], s, n);
    b->text[b->n][n] = 0;
    b->len[b->n] = n;
    b->id[b->n] = id ? json_incref(id) : NULL;
    b->line[b->n++] = line;
    return 0;
}

/* Writes one output line per text of b: the vectors (or the token ids with tokenize). */
static double t_embed; /* seconds inside embed_texts (--stats) */

static int batch_flush(const embed_model *m, batch *b, int tokenize, int truncate, FILE *out,
                       size_t *index) {
    int C = embed_dim(m);
    base_err e = {0};
    float *v = NULL;
    if (!tokenize && b->n) {
        v = malloc(b->n * (size_t)C * sizeof *v);
        if (!v) {
            fprintf(stderr, "hearth: embed: out of memory\n");
            return 1;
        }
        double t0 = base_now();
        int erc = embed_texts(m, (const char *const *)b->text, b->len, b->n, truncate, v, &e);
        t_embed += base_now() - t0;
        if (erc) {
            /* "input I ..." -> the line it came from */
            long line = 0;
            size_t i;
            if (sscanf(e.msg, "input %zu", &i) == 1 && i < b->n) line = b->line[i];
            if (line)
                fprintf(stderr, "hearth: embed: line %ld: %s\n", line, e.msg);
            else
                fprintf(stderr, "hearth: embed: %s\n", e.msg);
            free(v);
            return 1;
        }
    }
    for (size_t i = 0; i < b->n; i++, (*index)++) {
        int32_t *ids = NULL;
        size_t nid = 0;
        if (embed_tokenize(m, b->text[i], b->len[i], truncate, &ids, &nid, &e)) {
            fprintf(stderr, "hearth: embed: line %ld: %s\n", b->line[i], e.msg);
            free(v);
            return 1;
        }
        fprintf(out, "{\"index\":%zu", *index);
        if (b->id[i]) {
            char *s = json_dumps(b->id[i], JSON_ENCODE_ANY | JSON_COMPACT);
            fprintf(out, ",\"id\":%s", s ? s : "null");
            free(s);
        }
        fprintf(out, ",\"tokens\":%zu", nid);
        if (tokenize) {
            fputs(",\"ids\":[", out);
            for (size_t j = 0; j < nid; j++) fprintf(out, "%s%d", j ? "," : "", (int)ids[j]);
        } else {
            fputs(",\"embedding\":[", out);
            for (int j = 0; j < C; j++)
                fprintf(out, "%s%.9g", j ? "," : "", (double)v[i * (size_t)C + (size_t)j]);
        }
        fputs("]}\n", out);
        free(ids);
    }
    free(v);
    batch_clear(b);
    return ferror(out) ? (fprintf(stderr, "hearth: embed: write error\n"), 1) : 0;
}

int cli_embed(int argc, char **argv) {
    const char *model = NULL, *input = "-", *output = "-";
    int bsize = 32, threads = 0, tokenize = 0, no_truncate = 0, info = 0, stats = 0;
    const cli_opt opts[] = {
        CLI_OPT_STR("model", 'm', &model, "PATH",
                    "a GGUF bert file or a Hugging Face directory (required)"),
        CLI_OPT_STR("input", 'i', &input, "FILE", "JSONL to read (default -: stdin)"),
        CLI_OPT_STR("output", 'o', &output, "FILE", "JSONL to write (default -: stdout)"),
        CLI_OPT_INT("batch", 'b', &bsize, 1, 4096, "N", "texts embedded together (default 32)"),
        CLI_OPT_INT("threads", 't', &threads, 0, 1024, "N",
                    "threads (default 0: OMP_NUM_THREADS or every core)"),
        CLI_OPT_FLAG("tokenize", 0, &tokenize, "write each text's token ids instead of a vector"),
        CLI_OPT_FLAG("no-truncate", 0, &no_truncate,
                     "refuse a text longer than the model's maximum (default: cut it there)"),
        CLI_OPT_FLAG("info", 0, &info, "print the model's dimension, maximum tokens and pooling"),
        CLI_OPT_FLAG("stats", 0, &stats,
                     "print the texts, seconds and texts/s (tokenizing and the model)\non stderr"),
        CLI_OPT_END};
    const cli_cmd cmd = {
        .name = "embed",
        .usage = "usage: hearth embed --model PATH [--input FILE] [--output FILE] [options]",
        .about = "Each input line is a JSON string or an object with \"text\" (and an optional\n"
                 "\"id\", echoed); blank lines are skipped. Each output line is\n"
                 "{\"index\":I,\"id\":...,\"tokens\":N,\"embedding\":[...]} with the vector\n"
                 "L2-normalized (pooling as the model says: mean or CLS). A malformed line stops\n"
                 "the run with its line number (exit 1).",
        .opts = opts};
    int npos, st = cli_parse(&cmd, argc, argv, &npos);
    if (st >= 0) return st;
    if (npos) return cli_usage_error(&cmd, "unexpected argument '%s'", argv[1]);
    if (!model) return cli_usage_error(&cmd, "--model is required");
    if (threads) tensor_set_threads(threads);
    base_err e = {0};
    embed_model *m;
    if (embed_model_load(&m, model, &e)) {
        fprintf(stderr, "hearth: embed: %s\n", e.msg);
        return 1;
    }
    if (info) {
        static const char *const pn[] = {"none", "mean", "cls", "last"};
        printf("{\"model\":\"%s\",\"dim\":%d,\"max_tokens\":%d,\"pooling\":\"%s\",\"vocab\":%d}\n",
               embed_model_name(m), embed_dim(m), embed_max_tokens(m), pn[embed_pooling_of(m)],
               embed_vocab_size(m));
        embed_model_free(m);
        return 0;
    }
    FILE *in = strcmp(input, "-") ? fopen(input, "rb") : stdin;
    FILE *out = strcmp(output, "-") ? fopen(output, "wb") : stdout;
    if (!in || !out) {
        fprintf(stderr, "hearth: embed: cannot open %s\n", !in ? input : output);
        if (in && in != stdin) fclose(in);
        embed_model_free(m);
        return 1;
    }
    batch b = {0};
    char *line = NULL;
    size_t cap = 0, index = 0;
    ssize_t n;
    long lno = 0;
    int rc = 0;
    while (!rc && (n = getline(&line, &cap, in)) >= 0) {
        lno++;
        size_t l = (size_t)n;
        while (l && (line[l - 1] == '\n' || line[l - 1] == '\r')) l--;
        size_t sp = 0;
        while (sp < l && (line[sp] == ' ' || line[sp] == '\t')) sp++;
        if (sp == l) continue;
        json_error_t je;
        json_t *j = json_loadb(line, l, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
        json_t *t = json_is_string(j) ? j : json_object_get(j, "text");
        if (!j) {
            fprintf(stderr, "hearth: embed: %s: line %ld, column %d: %s\n", input, lno, je.column,
                    je.text);
            rc = 1;
        } else if (!json_is_string(t)) {
            fprintf(stderr,
                    "hearth: embed: %s: line %ld: expected a JSON string or an object with a "
                    "string \"text\"\n",
                    input, lno);
            rc = 1;
        } else if (batch_push(&b, json_string_value(t), json_string_length(t),
                              json_is_object(j) ? json_object_get(j, "id") : NULL, lno)) {
            fprintf(stderr, "hearth: embed: out of memory\n");
            rc = 1;
        }
        json_decref(j);
        if (!rc && b.n >= (size_t)bsize)
            rc = batch_flush(m, &b, tokenize, !no_truncate, out, &index);
    }
    if (!rc && ferror(in)) {
        fprintf(stderr, "hearth: embed: read error on %s\n", input);
        rc = 1;
    }
    if (!rc) rc = batch_flush(m, &b, tokenize, !no_truncate, out, &index);
    if (!rc && stats)
        fprintf(stderr, "hearth embed: %zu texts in %.3f s: %.1f texts/s\n", index, t_embed,
                t_embed > 0 ? (double)index / t_embed : 0.0);
    batch_clear(&b);
    free(b.text);
    free(b.len);
    free(b.id);
    free(b.line);
    free(line);
    if (in != stdin) fclose(in);
    if (out != stdout && fclose(out)) {
        fprintf(stderr, "hearth: embed: cannot write %s\n", output);
        rc = 1;
    }
    embed_model_free(m);
    return rc;
}

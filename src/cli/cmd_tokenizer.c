/* cli/cmd_tokenizer.c: `hearth tokenizer train|encode|decode|import|info` — byte-level BPE
 * training, text <-> ids on stdin/stdout, and importing tiktoken ranks. The work is in
 * src/tokenizer; this file parses flags, reads files and prints. */
#include "cli.h"

#include "tokenizer/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void help(FILE *f) {
    fprintf(
        f, "usage: hearth tokenizer <command> [options]\n\n"
           "  train --vocab-size N --out FILE [--pattern gpt2|cl100k] [--special TEXT]...\n"
           "        [--no-special] FILES...\n"
           "        learn a byte-level BPE vocabulary of N tokens (specials included) from FILES;\n"
           "        the special tokens default to <|endoftext|>\n"
           "  encode --vocab FILE [--special]\n"
           "        read text on stdin, print its token ids separated by spaces; --special\n"
           "        turns special-token text such as <|endoftext|> into its token\n"
           "  decode --vocab FILE [--skip-special]\n"
           "        read token ids on stdin, write the text they stand for\n"
           "  import --tiktoken RANKS --out FILE [--pattern gpt2|cl100k] [--special TEXT[=ID]]...\n"
           "        convert a tiktoken ranks file (BASE64 RANK per line) to hearth's format\n"
           "  info --vocab FILE\n"
           "        print the vocabulary's kind, size, special ids and identity\n\n"
           "FILE for --vocab is hearth's vocabulary file (.htok) or a GGUF file.\n");
}

static int fail(const base_err *e) {
    fprintf(stderr, "hearth tokenizer: %s\n", e->msg);
    return 1;
}

static int parse_pattern(const char *v, int *out) {
    if (!strcmp(v, "gpt2"))
        *out = TOK_PRETOK_GPT2;
    else if (!strcmp(v, "cl100k"))
        *out = TOK_PRETOK_CL100K;
    else {
        fprintf(stderr, "hearth tokenizer: --pattern must be gpt2 or cl100k, got '%s'\n", v);
        return -1;
    }
    return 0;
}

/* Reads all of stdin into a malloc'd buffer. */
static int read_stdin(char **data, size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf) return -1;
    for (;;) {
        size_t room = cap + 1; /* cap bytes and the NUL */
        if (base_grow(&buf, &room, n + 2, 1, SIZE_MAX)) {
            free(buf);
            return -1;
        }
        cap = room - 1;
        size_t got = fread(buf + n, 1, cap - n, stdin);
        n += got;
        if (got == 0) break;
    }
    if (ferror(stdin)) {
        free(buf);
        return -1;
    }
    buf[n] = 0;
    *data = buf;
    *len = n;
    return 0;
}

static int load(const char *path, tok_vocab **v) {
    base_err e = {0};
    if (!path) {
        fprintf(stderr, "hearth tokenizer: --vocab FILE is required\n");
        return -1;
    }
    if (tok_load(path, v, &e)) {
        fail(&e);
        return -1;
    }
    return 0;
}

static void progress(void *ctx, const char *stage, size_t done, size_t total) {
    (void)ctx;
    if (isatty(2)) fprintf(stderr, "\r%s: %zu/%zu", stage, done, total);
}

static int cmd_train(int argc, char **argv) {
    long vocab_size = 0;
    const char *out = NULL;
    int pattern = TOK_PRETOK_GPT2, no_special = 0;
    const char **specials = calloc((size_t)argc + 1, sizeof *specials);
    const char **files = calloc((size_t)argc + 1, sizeof *files);
    size_t ns = 0, nf = 0;
    int rc = 2;
    if (!specials || !files) goto done;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help(stdout);
            rc = 0;
            goto done;
        }
        if (!strcmp(a, "--no-special")) {
            no_special = 1;
            continue;
        }
        if (a[0] != '-' || !strcmp(a, "-")) {
            files[nf++] = a;
            continue;
        }
        if (!(val = cli_value(argc, argv, &i))) goto done;
        if (!strcmp(a, "--vocab-size")) {
            if (cli_int(a, val, 256, TOK_MAX_TOKENS, &vocab_size)) goto done;
        } else if (!strcmp(a, "--out"))
            out = val;
        else if (!strcmp(a, "--pattern")) {
            if (parse_pattern(val, &pattern)) goto done;
        } else if (!strcmp(a, "--special"))
            specials[ns++] = val;
        else {
            fprintf(stderr, "hearth tokenizer train: unknown option '%s' (see --help)\n", a);
            goto done;
        }
    }
    if (!vocab_size || !out || nf == 0) {
        fprintf(stderr, "hearth tokenizer train: --vocab-size N, --out FILE and at least one input "
                        "file are required\n");
        goto done;
    }
    if (no_special)
        ns = 0;
    else if (ns == 0)
        specials[ns++] = "<|endoftext|>";
    tok_train_opts o = {.vocab_size = (int32_t)vocab_size,
                        .pretok = pattern,
                        .specials = specials,
                        .n_specials = ns,
                        .progress = progress};
    base_err e = {0};
    tok_trainer *t = NULL;
    tok_vocab *v = NULL;
    rc = 1;
    if (tok_trainer_create(&o, &t, &e)) {
        fail(&e);
        goto done;
    }
    double t0 = base_now();
    size_t bytes = 0;
    for (size_t i = 0; i < nf; i++) {
        char *data;
        size_t len;
        if (base_read_file(files[i], &data, &len, &e) || tok_trainer_add(t, data, len, &e)) {
            free(data); /* NULL when the read failed */
            tok_trainer_free(t);
            fail(&e);
            goto done;
        }
        free(data);
        bytes += len;
    }
    uint64_t pieces, unique;
    tok_trainer_stats(t, &pieces, &unique);
    double t1 = base_now();
    fprintf(stderr, "counted %llu pieces (%llu distinct) in %.1f MB from %zu file%s in %.2f s\n",
            (unsigned long long)pieces, (unsigned long long)unique, (double)bytes / 1e6, nf,
            nf == 1 ? "" : "s", t1 - t0);
    int frc = tok_trainer_finish(t, &v, &e);
    tok_trainer_free(t);
    if (isatty(2)) fprintf(stderr, "\n");
    if (frc || tok_save(v, out, &e)) {
        tok_free(v);
        fail(&e);
        goto done;
    }
    fprintf(stderr, "merged in %.2f s; %d tokens%s\n", base_now() - t1, tok_vocab_size(v),
            tok_vocab_size(v) < vocab_size ? " (the text ran out of pairs before the size asked)"
                                           : "");
    printf("wrote %s (%s)\n", out, tok_identity(v));
    tok_free(v);
    rc = 0;
done:
    free(specials);
    free(files);
    return rc;
}

/* The front encode and decode share: --help, --vocab FILE and one boolean option `flag`,
 * then the vocabulary and all of stdin. Returns -1 to go on (*v and *in are the caller's to
 * free), or the exit status. */
static int open_stdin_job(const char *cmd, const char *flag, int argc, char **argv, int *flag_set,
                          tok_vocab **v, char **in, size_t *len) {
    const char *path = NULL;
    *flag_set = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help(stdout);
            return 0;
        }
        if (!strcmp(a, flag))
            *flag_set = 1;
        else if (!strcmp(a, "--vocab")) {
            if (!(path = cli_value(argc, argv, &i))) return 2;
        } else {
            fprintf(stderr, "hearth tokenizer %s: unknown option '%s' (see --help)\n", cmd, a);
            return 2;
        }
    }
    if (load(path, v)) return path ? 1 : 2;
    if (read_stdin(in, len)) {
        fprintf(stderr, "hearth tokenizer %s: cannot read stdin\n", cmd);
        tok_free(*v);
        return 1;
    }
    return -1;
}

static int cmd_encode(int argc, char **argv) {
    tok_vocab *v;
    char *text;
    size_t len;
    int special, st = open_stdin_job("encode", "--special", argc, argv, &special, &v, &text, &len);
    if (st >= 0) return st;
    tok_ids ids = {0};
    base_err e = {0};
    int rc = tok_encode(v, text, len, special, &ids, &e);
    free(text);
    tok_free(v);
    if (rc) {
        tok_ids_free(&ids);
        return fail(&e);
    }
    /* one buffered write: ids as decimal text */
    char *out = malloc(ids.len * 12 + 2);
    if (!out) {
        tok_ids_free(&ids);
        fprintf(stderr, "hearth tokenizer encode: out of memory\n");
        return 1;
    }
    size_t o = 0;
    for (size_t i = 0; i < ids.len; i++)
        o += (size_t)snprintf(out + o, 13, i ? " %d" : "%d", ids.data[i]);
    out[o++] = '\n';
    int wrc = fwrite(out, 1, o, stdout) == o && fflush(stdout) == 0 ? 0 : 1;
    free(out);
    tok_ids_free(&ids);
    if (wrc) fprintf(stderr, "hearth tokenizer encode: cannot write stdout\n");
    return wrc;
}

static int cmd_decode(int argc, char **argv) {
    tok_vocab *v;
    char *in;
    size_t len;
    int skip, st = open_stdin_job("decode", "--skip-special", argc, argv, &skip, &v, &in, &len);
    if (st >= 0) return st;
    int flags = skip ? TOK_DECODE_SKIP_SPECIAL : 0;
    tok_ids ids = {0};
    int rc = 0;
    for (char *p = in; !rc;) {
        while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r' || *p == ',') p++;
        if (!*p) break;
        char *end;
        long x = strtol(p, &end, 10);
        if (end == p || x < 0 || x > INT32_MAX || (*end && !strchr(" \n\t\r,", *end))) {
            int n = 0;
            while (p[n] && !strchr(" \n\t\r,", p[n]) && n < 20) n++;
            fprintf(stderr, "hearth tokenizer decode: '%.*s' is not a token id\n", n, p);
            rc = 1;
        } else if (tok_ids_push(&ids, (int32_t)x)) {
            fprintf(stderr, "hearth tokenizer decode: out of memory\n");
            rc = 1;
        }
        p = end;
    }
    free(in);
    char *text = NULL;
    size_t n = 0;
    base_err e = {0};
    if (!rc && tok_decode(v, ids.data, ids.len, flags, &text, &n, &e)) rc = fail(&e);
    if (!rc && fwrite(text, 1, n, stdout) != n) {
        fprintf(stderr, "hearth tokenizer decode: cannot write stdout\n");
        rc = 1;
    }
    free(text);
    tok_ids_free(&ids);
    tok_free(v);
    return rc;
}

static int cmd_import(int argc, char **argv) {
    const char *ranks = NULL, *out = NULL;
    int pattern = TOK_PRETOK_GPT2;
    tok_special *sp = calloc((size_t)argc + 1, sizeof *sp);
    char **texts = calloc((size_t)argc + 1, sizeof *texts);
    size_t ns = 0;
    int rc = 2;
    if (!sp || !texts) goto done;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help(stdout);
            rc = 0;
            goto done;
        }
        if (!(val = cli_value(argc, argv, &i))) goto done;
        if (!strcmp(a, "--tiktoken"))
            ranks = val;
        else if (!strcmp(a, "--out"))
            out = val;
        else if (!strcmp(a, "--pattern")) {
            if (parse_pattern(val, &pattern)) goto done;
        } else if (!strcmp(a, "--special")) {
            /* TEXT or TEXT=ID (the last '=' followed by digits only) */
            const char *eq = strrchr(val, '=');
            long id = -1;
            size_t tl = strlen(val);
            if (eq && eq[1] && strspn(eq + 1, "0123456789") == strlen(eq + 1)) {
                if (cli_int("--special id", eq + 1, 0, TOK_MAX_TOKENS - 1, &id)) goto done;
                tl = (size_t)(eq - val);
            }
            if (!(texts[ns] = strndup(val, tl))) goto done;
            sp[ns].text = texts[ns];
            sp[ns].id = (int32_t)id;
            ns++;
        } else {
            fprintf(stderr, "hearth tokenizer import: unknown option '%s' (see --help)\n", a);
            goto done;
        }
    }
    if (!ranks || !out) {
        fprintf(stderr, "hearth tokenizer import: --tiktoken RANKS and --out FILE are required\n");
        goto done;
    }
    base_err e = {0};
    tok_vocab *v;
    rc = 1;
    if (tok_import_tiktoken(ranks, pattern, sp, ns, &v, &e) || tok_save(v, out, &e)) {
        fail(&e);
        goto done;
    }
    printf("wrote %s (%s)\n", out, tok_identity(v));
    tok_free(v);
    rc = 0;
done:
    for (size_t i = 0; texts && i < ns; i++) free(texts[i]);
    free(texts);
    free(sp);
    return rc;
}

static int cmd_info(int argc, char **argv) {
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--vocab")) {
            if (!(path = cli_value(argc, argv, &i))) return 2;
        } else {
            fprintf(stderr, "hearth tokenizer info: unknown option '%s' (see --help)\n", argv[i]);
            return 2;
        }
    }
    tok_vocab *v;
    if (load(path, &v)) return path ? 1 : 2;
    printf("kind: %s\ntokens: %d\nend-of-text id: %d\nbeginning-of-text id: %d\nidentity: %s\n",
           tok_kind(v) == TOK_KIND_BPE ? "byte-level BPE" : "SentencePiece-style",
           tok_vocab_size(v), tok_eot_id(v), tok_bos_id(v), tok_identity(v));
    tok_free(v);
    return 0;
}

int cli_tokenizer(int argc, char **argv) {
    if (argc < 2) {
        help(stderr);
        return 2;
    }
    const char *c = argv[1];
    if (!strcmp(c, "train")) return cmd_train(argc - 1, argv + 1);
    if (!strcmp(c, "encode")) return cmd_encode(argc - 1, argv + 1);
    if (!strcmp(c, "decode")) return cmd_decode(argc - 1, argv + 1);
    if (!strcmp(c, "import")) return cmd_import(argc - 1, argv + 1);
    if (!strcmp(c, "info")) return cmd_info(argc - 1, argv + 1);
    if (!strcmp(c, "--help") || !strcmp(c, "-h") || !strcmp(c, "help")) {
        help(stdout);
        return 0;
    }
    fprintf(stderr, "hearth tokenizer: unknown command '%s'\n\n", c);
    help(stderr);
    return 2;
}

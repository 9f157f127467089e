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
    fprintf(f, "usage: hearth tokenizer <command> [options]\n\n"
               "  train    learn a byte-level BPE vocabulary from text files\n"
               "  encode   text on stdin -> token ids\n"
               "  decode   token ids on stdin -> text\n"
               "  import   a tiktoken ranks file -> hearth's format\n"
               "  info     a vocabulary's kind, size, special ids and identity\n\n"
               "`hearth tokenizer <command> --help` lists its options. FILE for --vocab is\n"
               "hearth's vocabulary file (.htok) or a GGUF file.\n");
}

/* --pattern gpt2|cl100k */
static int parse_pattern_opt(void *ud, const cli_opt *o, const char *v) {
    int *out = ud;
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

static int fail(const base_err *e) {
    fprintf(stderr, "hearth tokenizer: %s\n", e->msg);
    return 1;
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
        /* a file of another kind is named ("... bad magic; it is a GGUF file") */
        base_file_kind k;
        base_err ke = {0};
        if (e.code == BASE_EFORMAT && !base_file_kind_of(path, &k, &ke) && k != BASE_FILE_HTOK &&
            k != BASE_FILE_GGUF && k != BASE_FILE_UNKNOWN)
            fprintf(stderr, "hearth tokenizer: %s; it is %s\n", e.msg, base_file_kind_name(k));
        else
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
    int n_special = 0;
    const cli_opt opts[] = {CLI_OPT_INT("vocab-size", 0, &vocab_size, 256, TOK_MAX_TOKENS, "N",
                                        "tokens in the vocabulary, specials included"),
                            CLI_OPT_STR("out", 0, &out, "FILE", "the .htok file to write"),
                            CLI_OPT_CALL("pattern", 0, parse_pattern_opt, &pattern, "gpt2|cl100k",
                                         "the pre-tokenizer's split pattern (default gpt2)"),
                            CLI_OPT_MULTI("special", 0, specials, &n_special, LONG_MAX, "TEXT",
                                          "a special token (default <|endoftext|>)"),
                            CLI_OPT_FLAG("no-special", 0, &no_special, "no special tokens at all"),
                            CLI_OPT_END};
    const cli_cmd cmd = {.name = "tokenizer train",
                         .usage =
                             "usage: hearth tokenizer train --vocab-size N --out FILE [options] "
                             "FILES...",
                         .about = "Learns a byte-level BPE vocabulary of N tokens from FILES.",
                         .opts = opts};
    if (!specials || !files) goto done;
    int npos, pst = cli_parse(&cmd, argc, argv, &npos);
    if (pst >= 0) {
        rc = pst;
        goto done;
    }
    ns = (size_t)n_special;
    for (int i = 0; i < npos; i++) files[nf++] = argv[1 + i];
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

/* The front encode and decode share: --vocab FILE and one flag (flag, with its help), then
 * the vocabulary and all of stdin. Returns -1 to go on (*v and *in are the caller's to free),
 * or the exit status. */
static int open_stdin_job(const char *cmd_name, const char *flag, const char *flag_help,
                          const char *about, int argc, char **argv, int *flag_set, tok_vocab **v,
                          char **in, size_t *len, int *add_special) {
    const char *path = NULL;
    *flag_set = 0;
    int ignored = 0;
    if (add_special) *add_special = 0;
    char name[32], usage[160];
    snprintf(name, sizeof name, "tokenizer %s", cmd_name);
    snprintf(usage, sizeof usage, "usage: hearth tokenizer %s --vocab FILE [--%s]%s", cmd_name,
             flag, add_special ? " [--add-special]" : "");
    const cli_opt opts[] = {
        CLI_OPT_STR("vocab", 0, &path, "FILE", "hearth's vocabulary file (.htok) or a GGUF file"),
        CLI_OPT_FLAG(flag, 0, flag_set, flag_help),
        /* without add_special this entry has no name: it ends the table */
        CLI_OPT_FLAG(add_special ? "add-special" : NULL, 0, add_special ? add_special : &ignored,
                     "BOS first / EOS last as the vocabulary says (llama.cpp's add_special)"),
        CLI_OPT_END};
    const cli_cmd cmd = {.name = name, .usage = usage, .about = about, .opts = opts};
    int npos, pst = cli_parse(&cmd, argc, argv, &npos);
    if (pst >= 0) return pst;
    if (npos > 0) return cli_usage_error(&cmd, "unexpected argument '%s'", argv[1]);
    if (load(path, v)) return path ? 1 : 2;
    if (read_stdin(in, len)) {
        fprintf(stderr, "hearth tokenizer %s: cannot read stdin\n", cmd_name);
        tok_free(*v);
        return 1;
    }
    return -1;
}

static int cmd_encode(int argc, char **argv) {
    tok_vocab *v;
    char *text;
    size_t len;
    int special, add,
        st = open_stdin_job(
            "encode", "special",
            "special-token text such as <|endoftext|> becomes its token\n(default: it is text)",
            "Reads text on stdin, prints its token ids separated by spaces.", argc, argv, &special,
            &v, &text, &len, &add);
    if (st >= 0) return st;
    tok_ids ids = {0};
    base_err e = {0};
    int rc = tok_encode(v, text, len,
                        (special ? TOK_ENCODE_SPECIAL : 0) | (add ? TOK_ENCODE_ADD_SPECIAL : 0),
                        &ids, &e);
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
    int skip, st = open_stdin_job("decode", "skip-special", "special tokens decode to nothing",
                                  "Reads token ids on stdin, writes the text they stand for.", argc,
                                  argv, &skip, &v, &in, &len, NULL);
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

/* import's --special TEXT or TEXT=ID (the last '=' followed by digits only). */
typedef struct import_specials {
    tok_special *sp;
    char **texts; /* the TEXT parts, malloc'd */
    size_t n;
} import_specials;

static int add_special(void *ud, const cli_opt *o, const char *val) {
    import_specials *is = ud;
    const char *eq = strrchr(val, '=');
    long id = -1;
    size_t tl = strlen(val);
    if (eq && eq[1] && strspn(eq + 1, "0123456789") == strlen(eq + 1)) {
        char *end;
        id = strtol(eq + 1, &end, 10);
        if (id >= TOK_MAX_TOKENS) {
            fprintf(stderr,
                    "hearth tokenizer import: --special id must be an integer in [0, %d], got "
                    "'%s'\n",
                    TOK_MAX_TOKENS - 1, eq + 1);
            return -1;
        }
        tl = (size_t)(eq - val);
    }
    if (!(is->texts[is->n] = strndup(val, tl))) return -1;
    is->sp[is->n].text = is->texts[is->n];
    is->sp[is->n].id = (int32_t)id;
    is->n++;
    return 0;
}

static int cmd_import(int argc, char **argv) {
    const char *ranks = NULL, *out = NULL;
    int pattern = TOK_PRETOK_GPT2;
    tok_special *sp = calloc((size_t)argc + 1, sizeof *sp);
    char **texts = calloc((size_t)argc + 1, sizeof *texts);
    size_t ns = 0;
    int rc = 2;
    import_specials is = {sp, texts, 0};
    const cli_opt opts[] = {
        CLI_OPT_STR("tiktoken", 0, &ranks, "RANKS", "the ranks file (BASE64 RANK per line)"),
        CLI_OPT_STR("out", 0, &out, "FILE", "the .htok file to write"),
        CLI_OPT_CALL("pattern", 0, parse_pattern_opt, &pattern, "gpt2|cl100k",
                     "the pre-tokenizer's split pattern (default gpt2)"),
        CLI_OPT_CALL("special", 0, add_special, &is, "TEXT[=ID]",
                     "a special token, at ID or the next free id (repeatable)"),
        CLI_OPT_END};
    const cli_cmd cmd = {.name = "tokenizer import",
                         .usage =
                             "usage: hearth tokenizer import --tiktoken RANKS --out FILE [options]",
                         .about = "Converts a tiktoken ranks file to hearth's format.",
                         .opts = opts};
    if (!sp || !texts) goto done;
    int npos, pst = cli_parse(&cmd, argc, argv, &npos);
    ns = is.n;
    if (pst >= 0) {
        rc = pst;
        goto done;
    }
    if (npos > 0) {
        rc = cli_usage_error(&cmd, "unexpected argument '%s'", argv[1]);
        goto done;
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
    const cli_opt opts[] = {
        CLI_OPT_STR("vocab", 0, &path, "FILE", "hearth's vocabulary file (.htok) or a GGUF file"),
        CLI_OPT_END};
    const cli_cmd cmd = {.name = "tokenizer info",
                         .usage = "usage: hearth tokenizer info --vocab FILE",
                         .about = "Prints the vocabulary's kind, size, special ids and identity.",
                         .opts = opts};
    int npos, pst = cli_parse(&cmd, argc, argv, &npos);
    if (pst >= 0) return pst;
    if (npos > 0) return cli_usage_error(&cmd, "unexpected argument '%s'", argv[1]);
    tok_vocab *v;
    if (load(path, &v)) return path ? 1 : 2;
    cli_print_vocab(v);
    tok_free(v);
    return 0;
}

void cli_print_vocab(const tok_vocab *v) {
    printf("kind: %s\ntokens: %d\npre-tokenizer: %s\nend-of-text id: %d\n"
           "beginning-of-text id: %d\nend-of-turn id: %d\nprompt adds: %s%s%s\n"
           "end-of-generation ids:",
           tok_kind(v) == TOK_KIND_BPE ? "byte-level BPE" : "SentencePiece-style",
           tok_vocab_size(v), tok_pretok_name(tok_pretok(v)), tok_eot_id(v), tok_bos_id(v),
           tok_end_of_turn_id(v), tok_add_bos(v) ? "BOS" : "",
           tok_add_bos(v) && tok_add_eos(v) ? " and " : "",
           tok_add_eos(v)   ? "EOS"
           : tok_add_bos(v) ? ""
                            : "nothing");
    const int32_t *eog;
    size_t n = tok_eog_ids(v, &eog);
    for (size_t i = 0; i < n; i++) printf(" %d", eog[i]);
    printf("%s\nidentity: %s\n", n ? "" : " none", tok_identity(v));
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

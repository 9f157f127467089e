/* cli/opts.c: the one option parser of every `hearth` command. A command describes its options
 * in a table (cli.h, cli_opt); cli_parse reads argv against it, cli_help prints --help from it,
 * and both state an option's allowed range from the same numbers. */
#include "cli.h"

#include "base/base.h"
#include "infer/infer.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int is_end(const cli_opt *o) {
    return !o->name && !o->short_name;
}

/* The option's name as messages show it: "--max-tokens", "-n/--max-tokens" when it was given
 * as -n, or "-k" without a long one. */
static const char *opt_name(const cli_opt *o, int as_short, char *buf, size_t cap) {
    if (o->name && as_short)
        snprintf(buf, cap, "-%c/--%s", o->short_name, o->name);
    else if (o->name)
        snprintf(buf, cap, "--%s", o->name);
    else
        snprintf(buf, cap, "-%c", o->short_name);
    return buf;
}

/* The allowed values of an INT or FLOAT option: "[1, 256]", or ">= 0" with no upper bound. */
static void range_text(const cli_opt *o, char *buf, size_t cap) {
    if (o->kind == CLI_INT && o->hi == LONG_MAX)
        snprintf(buf, cap, ">= %ld", o->lo);
    else if (o->kind == CLI_INT)
        snprintf(buf, cap, "[%ld, %ld]", o->lo, o->hi);
    else
        snprintf(buf, cap, "[%g, %g]", o->flo, o->fhi);
}

/* "in [1, 256]" or ">= 0", for a message */
static const char *range_phrase(const cli_opt *o, char *buf, size_t cap) {
    char r[80];
    range_text(o, r, sizeof r);
    snprintf(buf, cap, "%s%s", r[0] == '[' ? "in " : "", r);
    return buf;
}

int cli_usage_error(const cli_cmd *c, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "hearth %s: ", c->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see hearth %s --help)\n", c->name);
    return 2;
}

/* Stores val into o's destination; 0, or 2 after the message. */
static int store(const cli_cmd *c, const cli_opt *o, const char *nm, const char *val) {
    char rg[96];
    char *end;
    errno = 0;
    switch (o->kind) {
    case CLI_FLAG:
        *(int *)o->dst = 1;
        return 0;
    case CLI_STR:
        *(const char **)o->dst = val;
        return 0;
    case CLI_MULTI:
        if (*o->count >= o->hi) {
            fprintf(stderr, "hearth %s: %s is given at most %ld times\n", c->name, nm, o->hi);
            return 2;
        }
        ((const char **)o->dst)[(*o->count)++] = val;
        return 0;
    case CLI_CALL:
        return o->fn(o->dst, o, val) ? 2 : 0;
    case CLI_INT: {
        long x = strtol(val, &end, 10);
        if (errno || end == val || *end || x < o->lo || x > o->hi) {
            fprintf(stderr, "hearth %s: %s must be an integer %s, got '%s'\n", c->name, nm,
                    range_phrase(o, rg, sizeof rg), val);
            return 2;
        }
        BASE_ASSERT(o->size == sizeof(long) || o->size == sizeof(int));
        if (o->size == sizeof(long))
            *(long *)o->dst = x;
        else
            *(int *)o->dst = (int)x; /* the range fits an int: the table says so */
        return 0;
    }
    case CLI_FLOAT: {
        double x = strtod(val, &end);
        if (errno || end == val || *end || !(x >= o->flo && x <= o->fhi)) {
            fprintf(stderr, "hearth %s: %s must be a number %s, got '%s'\n", c->name, nm,
                    range_phrase(o, rg, sizeof rg), val);
            return 2;
        }
        BASE_ASSERT(o->size == sizeof(double) || o->size == sizeof(float));
        if (o->size == sizeof(double))
            *(double *)o->dst = x;
        else
            *(float *)o->dst = (float)x;
        return 0;
    }
    }
    return 2;
}

int cli_parse(const cli_cmd *c, int argc, char **argv, int *npos) {
    int np = 0, only_pos = 0;
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (only_pos || a[0] != '-' || a[1] == 0) {
            argv[1 + np++] = a; /* 1 + np <= i: an argument already read */
            continue;
        }
        if (!strcmp(a, "--")) {
            only_pos = 1;
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            cli_help(c, stdout);
            return 0;
        }
        const cli_opt *o = c->opts;
        const char *inline_val = NULL;
        if (a[1] == '-') { /* --name or --name=value */
            const char *nm = a + 2, *eq = strchr(nm, '=');
            size_t n = eq ? (size_t)(eq - nm) : strlen(nm);
            for (; !is_end(o); o++)
                if (o->name && strlen(o->name) == n && !strncmp(o->name, nm, n)) break;
            if (eq) inline_val = eq + 1;
        } else if (a[2] == 0) { /* -x */
            for (; !is_end(o); o++)
                if (o->short_name == a[1]) break;
        } else {
            o = NULL;
        }
        if (!o || is_end(o)) return cli_usage_error(c, "unknown option '%s'", a);
        char nm[64];
        opt_name(o, a[1] != '-', nm, sizeof nm);
        const char *val = NULL;
        if (o->kind == CLI_FLAG) {
            if (inline_val) return cli_usage_error(c, "%s takes no value", nm);
        } else if (inline_val) {
            val = inline_val;
        } else if (i + 1 < argc) {
            val = argv[++i];
        } else {
            fprintf(stderr, "hearth %s: %s needs a value\n", c->name, nm);
            return 2;
        }
        if (store(c, o, nm, val)) return 2;
    }
    *npos = np;
    return -1;
}

/* Prints text, each line after the first indented by indent columns. */
static void print_lines(FILE *f, const char *text, int indent) {
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        int n = nl ? (int)(nl - p) : (int)strlen(p);
        fprintf(f, "%.*s", n, p);
        if (!nl) break;
        fprintf(f, "\n%*s", indent, "");
        p = nl + 1;
    }
}

void cli_help(const cli_cmd *c, FILE *f) {
    enum { COL = 26 };
    fprintf(f, "%s\n", c->usage);
    if (c->about) fprintf(f, "\n%s\n", c->about);
    int any = 0;
    for (const cli_opt *o = c->opts; o && !is_end(o); o++) {
        if (!o->help) continue;
        if (!any++) fprintf(f, "\n");
        char left[128];
        int n;
        if (o->short_name && o->name)
            n = snprintf(left, sizeof left, "  -%c, --%s", o->short_name, o->name);
        else if (o->name)
            n = snprintf(left, sizeof left, "      --%s", o->name);
        else
            n = snprintf(left, sizeof left, "  -%c", o->short_name);
        if (o->kind != CLI_FLAG && o->arg && n > 0 && (size_t)n < sizeof left)
            n += snprintf(left + n, sizeof left - (size_t)n, " %s", o->arg);
        fprintf(f, "%s", left);
        if (n >= COL - 1)
            fprintf(f, "\n%*s", COL, "");
        else
            fprintf(f, "%*s", COL - n, "");
        print_lines(f, o->help, COL);
        if (o->kind == CLI_INT || o->kind == CLI_FLOAT) {
            char rg[96];
            range_text(o, rg, sizeof rg);
            fprintf(f, rg[0] == '[' ? " %s" : " [%s]", rg);
        } else if (o->kind == CLI_MULTI && o->hi != LONG_MAX) {
            fprintf(f, " [repeatable, at most %ld]", o->hi);
        } else if (o->kind == CLI_MULTI) {
            fprintf(f, " [repeatable]");
        }
        fprintf(f, "\n");
    }
    if (c->notes) fprintf(f, "\n%s\n", c->notes);
}

int cli_ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcasecmp(s + n - k, suffix);
}

int cli_opt_kv_type(void *ud, const cli_opt *o, const char *val) {
    infer_kv_type *t = ud;
    if (!strcmp(val, "f16"))
        *t = INFER_KV_F16;
    else if (!strcmp(val, "f32"))
        *t = INFER_KV_F32;
    else {
        fprintf(stderr, "hearth: --%s must be f16 or f32, got '%s'\n", o->name, val);
        return 1;
    }
    return 0;
}

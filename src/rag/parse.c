/* rag/parse.c: documents -> structured text. Every format becomes one rag_doc: its text (blocks
 * separated by blank lines, whitespace collapsed) and the blocks in it (heading with its level,
 * or paragraph; the page for PDF), so the chunker can follow the document's structure.
 * Plain text and Markdown (md4c), HTML (libxml2's HTML parser: script, style, nav, header,
 * footer, aside, noscript, template and form dropped), PDF (poppler, page by page), DOCX (libzip
 * + libxml2: word/document.xml's paragraphs, Heading N / Title styles), JSONL (a text field per
 * line, its title as a heading). */
#include <glib.h>
#include <jansson.h>
#include <libxml/HTMLparser.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <md4c.h>
#include <poppler.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zip.h>

#include "rag/rag.h"

/* ---- building a doc */

/* Appends the text of one block (n bytes), whitespace runs collapsed to one space, trimmed;
 * empty text adds nothing. */
static int doc_add(rag_doc *d, int kind, int level, int page, const char *s, size_t n) {
    size_t i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r' || s[i] == '\f' ||
                     s[i] == '\v'))
        i++;
    if (i == n) return 0;
    if (base_grow(&d->blocks, &d->cap, d->n + 1, sizeof *d->blocks, SIZE_MAX)) return BASE_ENOMEM;
    if (d->text.len) base_buf_append(&d->text, "\n\n", 2);
    size_t start = d->text.len;
    bool space = false;
    for (; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool ws = c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
        if (c == 0xC2 && i + 1 < n && (unsigned char)s[i + 1] == 0xA0) { /* no-break space */
            ws = true;
            i++;
        }
        if (ws) {
            space = true;
            continue;
        }
        if (space) base_buf_append(&d->text, " ", 1);
        space = false;
        base_buf_append(&d->text, s + i, 1);
    }
    if (d->text.failed) return BASE_ENOMEM;
    d->blocks[d->n++] = (rag_block){kind, level, page, start, d->text.len};
    return 0;
}

void rag_doc_free(rag_doc *d) {
    if (!d) return;
    base_buf_free(&d->text);
    free(d->blocks);
    free(d->title);
    memset(d, 0, sizeof *d);
}

static void set_title(rag_doc *d, const char *s, size_t n) {
    if (d->title || n == 0) return;
    while (n && (*s == ' ' || *s == '\n' || *s == '\t')) s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\n' || s[n - 1] == '\t')) n--;
    if (!n) return;
    d->title = strndup(s, n);
}

/* ---- plain text: paragraphs are separated by blank lines */

static int parse_text(rag_doc *d, const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        size_t start = i;
        /* to the next blank line */
        while (i < n) {
            if (s[i] == '\n') {
                size_t j = i + 1;
                while (j < n && (s[j] == ' ' || s[j] == '\t' || s[j] == '\r')) j++;
                if (j >= n || s[j] == '\n') break;
            }
            i++;
        }
        int rc = doc_add(d, RAG_BLOCK_PARA, 0, 0, s + start, i - start);
        if (rc) return rc;
        while (i < n && (s[i] == '\n' || s[i] == ' ' || s[i] == '\t' || s[i] == '\r')) i++;
    }
    return 0;
}

/* ---- Markdown (md4c): headings, paragraphs, list items, code blocks, table cells */

typedef struct {
    rag_doc *d;
    base_buf cur;
    int depth_skip; /* inside raw HTML blocks */
    int rc;
} md_state;

static void md_flush(md_state *m, int kind, int level) {
    if (!m->cur.len) return;
    if (!m->rc) m->rc = doc_add(m->d, kind, level, 0, m->cur.data, m->cur.len);
    if (kind == RAG_BLOCK_HEADING && level == 1) set_title(m->d, m->cur.data, m->cur.len);
    m->cur.len = 0;
}

static int md_enter(MD_BLOCKTYPE t, void *detail, void *ud) {
    md_state *m = ud;
    if (t == MD_BLOCK_HTML) m->depth_skip++;
    if (t == MD_BLOCK_H || t == MD_BLOCK_P || t == MD_BLOCK_LI || t == MD_BLOCK_CODE ||
        t == MD_BLOCK_TR || t == MD_BLOCK_QUOTE)
        md_flush(m, RAG_BLOCK_PARA, 0);
    return 0;
}

static int md_leave(MD_BLOCKTYPE t, void *detail, void *ud) {
    md_state *m = ud;
    if (t == MD_BLOCK_HTML) m->depth_skip--;
    if (t == MD_BLOCK_H)
        md_flush(m, RAG_BLOCK_HEADING, (int)((MD_BLOCK_H_DETAIL *)detail)->level);
    else if (t == MD_BLOCK_P || t == MD_BLOCK_LI || t == MD_BLOCK_CODE || t == MD_BLOCK_TR)
        md_flush(m, RAG_BLOCK_PARA, 0);
    else if (t == MD_BLOCK_TD || t == MD_BLOCK_TH)
        base_buf_append(&m->cur, " ", 1);
    return 0;
}

static int md_span(MD_SPANTYPE t, void *detail, void *ud) {
    return 0;
}

static int md_text(MD_TEXTTYPE t, const MD_CHAR *s, MD_SIZE n, void *ud) {
    md_state *m = ud;
    if (m->depth_skip || t == MD_TEXT_HTML) return 0;
    if (t == MD_TEXT_BR || t == MD_TEXT_SOFTBR) {
        base_buf_append(&m->cur, " ", 1);
    } else if (t == MD_TEXT_ENTITY) {
        static const struct {
            const char *e, *c;
        } ents[] = {{"&amp;", "&"},   {"&lt;", "<"},  {"&gt;", ">"},
                    {"&quot;", "\""}, {"&#39;", "'"}, {"&nbsp;", " "}};
        const char *c = NULL;
        for (size_t i = 0; i < sizeof ents / sizeof *ents; i++)
            if (strlen(ents[i].e) == n && memcmp(ents[i].e, s, n) == 0) c = ents[i].c;
        if (c)
            base_buf_append(&m->cur, c, strlen(c));
        else
            base_buf_append(&m->cur, s, n);
    } else if (t == MD_TEXT_NULLCHAR) {
        base_buf_append(&m->cur, " ", 1);
    } else {
        base_buf_append(&m->cur, s, n);
    }
    return 0;
}

static int parse_markdown(rag_doc *d, const char *s, size_t n, base_err *e, const char *path) {
    md_state m = {.d = d};
    MD_PARSER p = {0};
    p.abi_version = 0;
    p.flags = MD_FLAG_TABLES | MD_FLAG_STRIKETHROUGH | MD_FLAG_PERMISSIVEAUTOLINKS;
    p.enter_block = md_enter;
    p.leave_block = md_leave;
    p.enter_span = md_span;
    p.leave_span = md_span;
    p.text = md_text;
    int r = md_parse(s, (MD_SIZE)n, &p, &m);
    md_flush(&m, RAG_BLOCK_PARA, 0);
    base_buf_free(&m.cur);
    if (r) return base_fail(e, BASE_EFORMAT, "%s: Markdown parser failed (%d)", path, r);
    if (m.rc || m.cur.failed) return base_fail(e, BASE_ENOMEM, "out of memory");
    return 0;
}

/* ---- HTML (libxml2) */

typedef struct {
    rag_doc *d;
    base_buf cur;
    int rc;
} html_state;

static bool name_in(const xmlChar *name, const char *const *list) {
    for (; *list; list++)
        if (strcasecmp((const char *)name, *list) == 0) return true;
    return false;
}

static void html_flush(html_state *h, int kind, int level) {
    if (!h->cur.len) return;
    if (!h->rc) h->rc = doc_add(h->d, kind, level, 0, h->cur.data, h->cur.len);
    h->cur.len = 0;
}

static void html_text_of(xmlNode *n, base_buf *b) {
    for (; n; n = n->next) {
        if (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) {
            if (n->content) base_buf_append(b, n->content, strlen((const char *)n->content));
        } else if (n->type == XML_ELEMENT_NODE) {
            static const char *const skip[] = {"script", "style", "noscript", "template", 0};
            if (!name_in(n->name, skip)) html_text_of(n->children, b);
            if (strcasecmp((const char *)n->name, "br") == 0) base_buf_append(b, " ", 1);
        }
    }
}

static void html_walk(html_state *h, xmlNode *n) {
    static const char *const drop[] = {"script", "style",    "nav",      "header", "footer",
                                       "aside",  "noscript", "template", "form",   "head",
                                       "svg",    "iframe",   "button",   "select", 0};
    static const char *const blocks[] = {
        "p",       "div",     "li",      "td",      "th",         "pre",    "blockquote",
        "dd",      "dt",      "section", "article", "main",       "tr",     "table",
        "ul",      "ol",      "dl",      "caption", "figcaption", "figure", "address",
        "details", "summary", "hr",      "br",      "body",       0};
    for (; n; n = n->next) {
        if (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) {
            if (n->content) base_buf_append(&h->cur, n->content, strlen((const char *)n->content));
            continue;
        }
        if (n->type != XML_ELEMENT_NODE) continue;
        const char *name = (const char *)n->name;
        if (strcasecmp(name, "title") == 0) { /* in <head>, which is dropped otherwise */
            base_buf t = {0};
            html_text_of(n->children, &t);
            if (t.len) set_title(h->d, t.data, t.len);
            base_buf_free(&t);
            continue;
        }
        if (name_in(n->name, drop)) {
            if (strcasecmp(name, "head") == 0) html_walk(h, n->children); /* for <title> */
            continue;
        }
        if (strlen(name) == 2 && (name[0] == 'h' || name[0] == 'H') && name[1] >= '1' &&
            name[1] <= '6') {
            html_flush(h, RAG_BLOCK_PARA, 0);
            html_text_of(n->children, &h->cur);
            if (name[1] == '1' && h->cur.len) set_title(h->d, h->cur.data, h->cur.len);
            html_flush(h, RAG_BLOCK_HEADING, name[1] - '0');
            continue;
        }
        bool block = name_in(n->name, blocks);
        if (block) html_flush(h, RAG_BLOCK_PARA, 0);
        html_walk(h, n->children);
        if (block) html_flush(h, RAG_BLOCK_PARA, 0);
    }
}

static int parse_html(rag_doc *d, const char *s, size_t n, base_err *e, const char *path) {
    if (n > INT32_MAX) return base_fail(e, BASE_EINVAL, "%s: too large for the HTML parser", path);
    htmlDocPtr doc = htmlReadMemory(s, (int)n, NULL, NULL,
                                    HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING |
                                        HTML_PARSE_NONET | HTML_PARSE_COMPACT);
    if (!doc) return base_fail(e, BASE_EFORMAT, "%s: not parsable as HTML", path);
    html_state h = {.d = d};
    html_walk(&h, xmlDocGetRootElement(doc));
    html_flush(&h, RAG_BLOCK_PARA, 0);
    int failed = h.rc || h.cur.failed;
    base_buf_free(&h.cur);
    xmlFreeDoc(doc);
    return failed ? base_fail(e, BASE_ENOMEM, "out of memory") : 0;
}

/* ---- PDF (poppler): each page's text, paragraphs at blank lines */

static int parse_pdf(rag_doc *d, const char *s, size_t n, base_err *e, const char *path) {
    GBytes *bytes = g_bytes_new_static(s, n);
    GError *ge = NULL;
    PopplerDocument *doc = poppler_document_new_from_bytes(bytes, NULL, &ge);
    if (!doc) {
        int rc = base_fail(e, BASE_EFORMAT, "%s: not a readable PDF: %s", path,
                           ge ? ge->message : "unknown error");
        if (ge) g_error_free(ge);
        g_bytes_unref(bytes);
        return rc;
    }
    char *title = poppler_document_get_title(doc);
    if (title) {
        set_title(d, title, strlen(title));
        g_free(title);
    }
    int rc = 0, pages = poppler_document_get_n_pages(doc);
    for (int i = 0; i < pages && !rc; i++) {
        PopplerPage *p = poppler_document_get_page(doc, i);
        if (!p) continue;
        char *t = poppler_page_get_text(p);
        if (t) {
            size_t tl = strlen(t), a = 0;
            /* paragraphs: split at blank lines (lines with only white space) */
            while (a < tl && !rc) {
                size_t b = a;
                while (b < tl) {
                    if (t[b] == '\n') {
                        size_t j = b + 1;
                        while (j < tl && (t[j] == ' ' || t[j] == '\t' || t[j] == '\r')) j++;
                        if (j >= tl || t[j] == '\n') break;
                    }
                    b++;
                }
                rc = doc_add(d, RAG_BLOCK_PARA, 0, i + 1, t + a, b - a);
                a = b;
                while (a < tl && (t[a] == '\n' || t[a] == ' ' || t[a] == '\r' || t[a] == '\t')) a++;
            }
            g_free(t);
        }
        g_object_unref(p);
    }
    g_object_unref(doc);
    g_bytes_unref(bytes);
    return rc ? base_fail(e, BASE_ENOMEM, "out of memory") : 0;
}

/* ---- DOCX: a zip with word/document.xml (WordprocessingML) */

#define DOCX_XML_MAX ((zip_uint64_t)256 << 20) /* a larger document.xml: refused (zip bomb) */

static bool is_w(xmlNode *n, const char *local) {
    return n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, local) == 0;
}

static void docx_text(xmlNode *n, base_buf *b) {
    for (; n; n = n->next) {
        if (n->type != XML_ELEMENT_NODE) continue;
        if (is_w(n, "t")) {
            xmlChar *c = xmlNodeGetContent(n);
            if (c) base_buf_append(b, c, strlen((const char *)c));
            xmlFree(c);
        } else if (is_w(n, "tab") || is_w(n, "br") || is_w(n, "cr")) {
            base_buf_append(b, " ", 1);
        } else if (!is_w(n, "pPr") && !is_w(n, "rPr") && !is_w(n, "instrText") &&
                   !is_w(n, "delText")) {
            docx_text(n->children, b);
        }
    }
}

/* The heading level of a paragraph's style (Heading1..9, Title: 1), 0 for body text. */
static int docx_level(xmlNode *p) {
    for (xmlNode *c = p->children; c; c = c->next) {
        if (!is_w(c, "pPr")) continue;
        for (xmlNode *s = c->children; s; s = s->next) {
            if (!is_w(s, "pStyle")) continue;
            xmlChar *v = NULL;
            for (xmlAttr *a = s->properties; a; a = a->next)
                if (strcmp((const char *)a->name, "val") == 0) v = xmlNodeGetContent((xmlNode *)a);
            int level = 0;
            if (v) {
                const char *t = (const char *)v;
                if (strncasecmp(t, "heading", 7) == 0 && t[7] >= '1' && t[7] <= '9')
                    level = t[7] - '0';
                else if (strcasecmp(t, "title") == 0)
                    level = 1;
                xmlFree(v);
            }
            return level;
        }
    }
    return 0;
}

static int docx_walk(rag_doc *d, xmlNode *n) {
    for (; n; n = n->next) {
        if (n->type != XML_ELEMENT_NODE) continue;
        if (is_w(n, "p")) {
            base_buf b = {0};
            docx_text(n->children, &b);
            int level = docx_level(n), rc = 0;
            if (b.len) {
                rc =
                    doc_add(d, level ? RAG_BLOCK_HEADING : RAG_BLOCK_PARA, level, 0, b.data, b.len);
                if (level == 1) set_title(d, b.data, b.len);
            }
            if (b.failed) rc = BASE_ENOMEM;
            base_buf_free(&b);
            if (rc) return rc;
        } else {
            int rc = docx_walk(d, n->children);
            if (rc) return rc;
        }
    }
    return 0;
}

static int parse_docx(rag_doc *d, const char *s, size_t n, base_err *e, const char *path) {
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *src = zip_source_buffer_create(s, n, 0, &ze);
    zip_t *z = src ? zip_open_from_source(src, ZIP_RDONLY, &ze) : NULL;
    if (!z) {
        int rc = base_fail(e, BASE_EFORMAT, "%s: not a readable DOCX (zip): %s", path,
                           zip_error_strerror(&ze));
        if (src) zip_source_free(src);
        zip_error_fini(&ze);
        return rc;
    }
    zip_error_fini(&ze);
    zip_int64_t idx = zip_name_locate(z, "word/document.xml", 0);
    zip_stat_t st;
    int rc = 0;
    char *xml = NULL;
    if (idx < 0 || zip_stat_index(z, (zip_uint64_t)idx, 0, &st) != 0 ||
        !(st.valid & ZIP_STAT_SIZE)) {
        rc = base_fail(e, BASE_EFORMAT, "%s: a zip without word/document.xml (not a DOCX)", path);
    } else if (st.size > DOCX_XML_MAX) {
        rc = base_fail(e, BASE_EFORMAT, "%s: word/document.xml is %llu bytes, above the limit",
                       path, (unsigned long long)st.size);
    } else if (!(xml = malloc(st.size + 1))) {
        rc = base_fail(e, BASE_ENOMEM, "out of memory");
    } else {
        zip_file_t *f = zip_fopen_index(z, (zip_uint64_t)idx, 0);
        zip_int64_t got = f ? zip_fread(f, xml, st.size) : -1;
        if (f) zip_fclose(f);
        if (got < 0 || (zip_uint64_t)got != st.size)
            rc = base_fail(e, BASE_EFORMAT, "%s: word/document.xml cannot be read from the zip",
                           path);
    }
    zip_close(z); /* read-only: discards, frees the source */
    if (rc) {
        free(xml);
        return rc;
    }
    xmlDocPtr doc = xmlReadMemory(xml, (int)st.size, "document.xml", NULL,
                                  XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    free(xml);
    if (!doc) return base_fail(e, BASE_EFORMAT, "%s: word/document.xml is not well-formed", path);
    rc = docx_walk(d, xmlDocGetRootElement(doc));
    xmlFreeDoc(doc);
    return rc ? base_fail(e, BASE_ENOMEM, "out of memory") : 0;
}

/* ---- JSONL: one record per line; "text" (or the field named) is a paragraph, "title" a
 * heading before it */

static int parse_jsonl(rag_doc *d, const char *s, size_t n, const char *field, base_err *e,
                       const char *path) {
    size_t line = 0, good = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && s[j] != '\n') j++;
        line++;
        if (j > i + 1 || (j == i + 1 && s[i] != '\r')) {
            json_error_t je;
            json_t *o = json_loadb(s + i, j - i, 0, &je);
            const char *t = o ? json_string_value(json_object_get(o, field)) : NULL;
            if (!t) {
                json_decref(o);
                return base_fail(e, BASE_EFORMAT, "%s:%zu: %s", path, line,
                                 o ? "no string field for the text" : je.text);
            }
            const char *title = json_string_value(json_object_get(o, "title"));
            int rc = 0;
            if (title) rc = doc_add(d, RAG_BLOCK_HEADING, 1, 0, title, strlen(title));
            if (!rc) rc = doc_add(d, RAG_BLOCK_PARA, 0, 0, t, strlen(t));
            json_decref(o);
            if (rc) return base_fail(e, BASE_ENOMEM, "out of memory");
            good++;
        }
        i = j + 1;
    }
    return 0;
}

/* ---- dispatch */

static bool ext_is(const char *path, const char *ext) {
    size_t n = strlen(path), m = strlen(ext);
    return n > m && strcasecmp(path + n - m, ext) == 0;
}

const char *rag_format_of(const char *path, const char *s, size_t n) {
    if (n >= 5 && memcmp(s, "%PDF-", 5) == 0) return "pdf";
    if (ext_is(path, ".docx")) return "docx";
    if (n >= 4 && memcmp(s, "PK\x03\x04", 4) == 0) return NULL; /* another zip */
    if (ext_is(path, ".md") || ext_is(path, ".markdown") || ext_is(path, ".mdown")) return "md";
    if (ext_is(path, ".html") || ext_is(path, ".htm") || ext_is(path, ".xhtml")) return "html";
    if (ext_is(path, ".jsonl") || ext_is(path, ".ndjson")) return "jsonl";
    if (ext_is(path, ".pdf")) return "pdf";
    /* anything else is text if it is: no NUL bytes in its first 8 KiB */
    size_t k = n < 8192 ? n : 8192;
    if (memchr(s, 0, k)) return NULL;
    if (k >= 15 && (strncasecmp(s, "<!doctype html", 14) == 0 || strncasecmp(s, "<html", 5) == 0))
        return "html";
    return "txt";
}

int rag_parse(const char *path, const char *data, size_t len, const char *jsonl_field, rag_doc *out,
              base_err *e) {
    memset(out, 0, sizeof *out);
    const char *f = rag_format_of(path, data, len);
    if (!f) return base_fail(e, BASE_EFORMAT, "%s: not a supported document (binary)", path);
    snprintf(out->format, sizeof out->format, "%s", f);
    int rc;
    if (!strcmp(f, "pdf"))
        rc = parse_pdf(out, data, len, e, path);
    else if (!strcmp(f, "docx"))
        rc = parse_docx(out, data, len, e, path);
    else if (!strcmp(f, "md"))
        rc = parse_markdown(out, data, len, e, path);
    else if (!strcmp(f, "html"))
        rc = parse_html(out, data, len, e, path);
    else if (!strcmp(f, "jsonl"))
        rc = parse_jsonl(out, data, len, jsonl_field ? jsonl_field : "text", e, path);
    else {
        rc = parse_text(out, data, len);
        if (rc) rc = base_fail(e, BASE_ENOMEM, "out of memory");
    }
    if (rc) rag_doc_free(out);
    return rc;
}

/* infer/model.c: a model for inference: the weights of a run's newest good checkpoint, of an
 * exported safetensors file (F32 parameters; the trainer's gradients and activations are freed
 * right after the load) or of a GGUF file (its tensors in their stored types, mapped, never
 * copied), its config, and the tokenizer stored with it. */
#include "infer_int.h"

#include "ckpt/ckpt.h"
#include "ckpt/gguf_model.h"
#include "ckpt/safetensors.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PATH_LEN 4096

struct infer_model {
    nn_model *nn;         /* F32 parameters only (grads, acts, dacts freed); NULL for GGUF */
    gguf_file *gguf;      /* the mapped GGUF file the weights point into, or NULL */
    infer_weights w;      /* what the engine computes with */
    float *small;         /* GGUF: the norms and biases widened to F32 */
    size_t mapped, alloc; /* bytes of weights mapped from the file and allocated */
    tok_vocab *vocab;
    char name[256];
    char source[PATH_LEN]; /* the checkpoint directory or file the weights came from */
    char run_vocab[192];   /* the vocabulary identity the run trained on (trainer.json), or "" */
    char *chat_template;   /* a GGUF's tokenizer.chat_template (malloc'd), or NULL */
};

/* nn_config from a JSON object of nn_config_json's fields, each through nn_config_set so the
 * checks and messages are the ones of `hearth train --set`. Every field must be present. */
static int config_from_json(nn_config *c, json_t *obj, const char *where, base_err *e) {
    if (!json_is_object(obj))
        return base_fail(e, BASE_EFORMAT, "%s: the config is not an object", where);
    memset(c, 0, sizeof *c);
    for (int i = 0; nn_config_fields[i]; i++) {
        const char *k = nn_config_fields[i];
        json_t *v = json_object_get(obj, k);
        char s[64];
        if (json_is_string(v))
            snprintf(s, sizeof s, "%s", json_string_value(v));
        else if (json_is_integer(v))
            snprintf(s, sizeof s, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        else if (json_is_real(v))
            snprintf(s, sizeof s, "%.9g", json_real_value(v));
        else
            return base_fail(e, BASE_EFORMAT, "%s: the config has no field '%s'", where, k);
        base_err fe;
        if (nn_config_set(c, k, s, &fe))
            return base_fail(e, BASE_EFORMAT, "%s: config: %s", where, fe.msg);
    }
    base_err ce;
    if (nn_config_check(c, &ce)) return base_fail(e, BASE_EFORMAT, "%s: config: %s", where, ce.msg);
    return BASE_OK;
}

static int config_from_string(nn_config *c, const char *json, const char *where, base_err *e) {
    json_error_t je;
    json_t *j = json_loads(json, JSON_REJECT_DUPLICATES, &je);
    if (!j) return base_fail(e, BASE_EFORMAT, "%s: config: %s", where, je.text);
    int rc = config_from_json(c, j, where, e);
    json_decref(j);
    return rc;
}

static int join(char *out, const char *a, const char *b, base_err *e) {
    int n = snprintf(out, PATH_LEN, "%s/%s", a, b);
    if (n < 0 || n >= PATH_LEN) return base_fail(e, BASE_EINVAL, "path too long: %s/%s", a, b);
    return BASE_OK;
}

static int file_exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* The last path component of p without a trailing slash and without ext (if it ends so). */
static void base_name(char *out, size_t cap, const char *p, const char *ext) {
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/') n--;
    size_t s = n;
    while (s > 0 && p[s - 1] != '/') s--;
    size_t len = n - s, el = ext ? strlen(ext) : 0;
    if (el && len > el && memcmp(p + n - el, ext, el) == 0) len -= el;
    if (len >= cap) len = cap - 1;
    memcpy(out, p + s, len);
    out[len] = 0;
}

/* A model of the config with parameters only: nn_model_create at batch 1x1 (the smallest
 * activation set), then the gradient and activation buffers go. */
static int params_only_model(nn_model **out, const nn_config *c, base_err *e) {
    int rc = nn_model_create(out, c, 1, 1, e);
    if (!rc) nn_model_drop_training(*out);
    return rc;
}

static int load_weights(infer_model *im, const char *st_path, const nn_config *c, base_err *e) {
    /* the model first: its transient gradient buffer is gone before the file is read in */
    ckpt_st *st = NULL;
    int rc = params_only_model(&im->nn, c, e);
    if (!rc) rc = ckpt_st_open(&st, st_path, e);
    if (!rc) {
        base_err re;
        rc = ckpt_st_read_model(st, im->nn, &re);
        if (rc) rc = base_fail(e, BASE_EFORMAT, "%s: %s", st_path, re.msg);
    }
    ckpt_st_free(st);
    return rc;
}

/* A checkpoint directory's config: trainer.json's "config"; *vocab (cap bytes) gets its
 * "run"."data", the identity of the vocabulary trained on ("bytes" for raw bytes), or "". */
static int read_trainer_config(const char *dir, nn_config *c, char *vocab, size_t cap,
                               base_err *e) {
    char p[PATH_LEN];
    int rc = join(p, dir, "trainer.json", e);
    if (rc) return rc;
    json_error_t je;
    json_t *j = json_load_file(p, JSON_REJECT_DUPLICATES, &je);
    if (!j) return base_fail(e, BASE_EFORMAT, "%s:%d: %s", p, je.line, je.text);
    rc = config_from_json(c, json_object_get(j, "config"), p, e);
    const char *d = json_string_value(json_object_get(json_object_get(j, "run"), "data"));
    snprintf(vocab, cap, "%s", d ? d : "");
    json_decref(j);
    return rc;
}

/* A `hearth finetune` run directory (RUN/finetune.json; or one of its checkpoints): its
 * checkpoints hold only what was trained, so the model is elsewhere. --full: RUN/model.gguf,
 * copied into file (returns 1). LoRA: the base plus RUN/adapter.gguf, which the caller names —
 * an error saying how. 0: not a fine-tuning run. */
static int finetune_run(const char *path, char *file, size_t cap, base_err *e) {
    char run[PATH_LEN], p[PATH_LEN];
    snprintf(run, sizeof run, "%s", path);
    if (join(p, run, "finetune.json", e)) return BASE_EINVAL;
    if (!file_exists(p)) { /* a checkpoint directory: its run is the parent */
        char *slash = strrchr(run, '/');
        if (!slash)
            snprintf(run, sizeof run, ".");
        else if (slash == run)
            run[1] = 0;
        else
            *slash = 0;
        if (join(p, run, "finetune.json", e)) return BASE_EINVAL;
        if (!file_exists(p)) return 0;
    }
    json_error_t je;
    json_t *j = json_load_file(p, 0, &je);
    if (!j) return base_fail(e, BASE_EFORMAT, "%s:%d: %s", p, je.line, je.text);
    const char *mode = json_string_value(json_object_get(j, "mode"));
    const char *base = json_string_value(json_object_get(j, "base"));
    int full = mode && strcmp(mode, "full") == 0;
    char out[PATH_LEN];
    int rc = join(out, run, full ? "model.gguf" : "adapter.gguf", e);
    if (!rc && !file_exists(out))
        rc = base_fail(e, BASE_ENOTFOUND,
                       "%s is a fine-tuning run that has not finished: no %s yet (rerun its "
                       "`hearth finetune` command to complete it)",
                       run, out);
    else if (!rc && full) { /* out fits: join keeps it under PATH_LEN, file's cap */
        snprintf(file, cap, "%s", out);
        rc = 1;
    } else if (!rc)
        rc = base_fail(e, BASE_EINVAL,
                       "%s is a LoRA fine-tuning run: give its base with the adapter (--model %s "
                       "--lora %s), or merge them into one model (hearth merge --base %s --lora "
                       "%s -o FILE)",
                       run, base ? base : "BASE", out, base ? base : "BASE", out);
    json_decref(j);
    return rc;
}

/* Loads from a run directory (its newest good checkpoint) or a checkpoint directory. *tok_path
 * gets where the stored tokenizer would be: RUN/tokenizer.htok. */
static int load_dir(infer_model *im, const char *path, char *tok_path, base_err *e) {
    char p[PATH_LEN], *dir = NULL, *run = NULL;
    int rc = ckpt_resolve(path, &dir, &run, e);
    if (rc) return rc;
    nn_config c;
    rc = read_trainer_config(dir, &c, im->run_vocab, sizeof im->run_vocab, e);
    if (!rc) rc = join(p, dir, "model.safetensors", e);
    if (!rc) rc = load_weights(im, p, &c, e);
    if (!rc) rc = join(tok_path, run, CKPT_RUN_TOKENIZER, e);
    if (!rc) {
        snprintf(im->source, sizeof im->source, "%s", dir);
        base_name(im->name, sizeof im->name, run, NULL);
    }
    free(dir);
    free(run);
    return rc;
}

/* Loads an exported safetensors file: the config is its "__metadata__" "config". *tok_path gets
 * FILE's stem + ".htok", where `hearth export` puts the tokenizer. */
static int load_file(infer_model *im, const char *path, char *tok_path, base_err *e) {
    ckpt_st *st = NULL;
    int rc = ckpt_st_open(&st, path, e);
    if (rc) return rc;
    nn_config c;
    const char *cj = ckpt_st_meta(st, "config");
    if (!cj)
        rc = base_fail(e, BASE_EFORMAT,
                       "%s: no \"config\" in __metadata__ (not a file of `hearth export`)", path);
    if (!rc) rc = config_from_string(&c, cj, path, e);
    if (!rc) rc = params_only_model(&im->nn, &c, e);
    if (!rc) {
        base_err re;
        rc = ckpt_st_read_model(st, im->nn, &re);
        if (rc) rc = base_fail(e, BASE_EFORMAT, "%s: %s", path, re.msg);
    }
    ckpt_st_free(st);
    if (rc) return rc;
    if (ckpt_tokenizer_beside(path, tok_path, PATH_LEN))
        return base_fail(e, BASE_EINVAL, "path too long: %s", path);
    snprintf(im->source, sizeof im->source, "%s", path);
    base_name(im->name, sizeof im->name, path, ".safetensors");
    return BASE_OK;
}

/* A file that is no model (by its first bytes): the message says what it is instead, and
 * where it belongs. BASE_OK for the two model formats, GGUF and safetensors. */
static int check_model_file(const char *path, base_file_kind *kind, base_err *e) {
    int rc = base_file_kind_of(path, kind, e);
    if (rc || *kind == BASE_FILE_GGUF || *kind == BASE_FILE_SAFETENSORS) return rc;
    const char *hint = " (a model is a safetensors or GGUF file, or a run or checkpoint "
                       "directory)";
    switch (*kind) {
    case BASE_FILE_HTOK:
        hint = "; pass it as --tokenizer";
        break;
    case BASE_FILE_HSHD:
    case BASE_FILE_TEXT:
    case BASE_FILE_JSON:
        hint = "; it is training data for `hearth prepare` / `hearth train --data`";
        break;
    case BASE_FILE_PYTORCH:
    case BASE_FILE_PICKLE:
    case BASE_FILE_ONNX:
        hint = "; hearth reads safetensors and GGUF models (convert it to one of those)";
        break;
    default:
        break;
    }
    return base_fail(e, BASE_EFORMAT, "%s is %s, not a model%s", path, base_file_kind_name(*kind),
                     hint);
}

/* Loads a GGUF model (llama.cpp's gpt2 and llama architectures: what `hearth export --format
 * gguf` writes, and such files from elsewhere, in every type quant.h computes with): the config
 * from its keys, the weights by llama.cpp's names as views into the mapped file, and its
 * tokenizer.ggml vocabulary, when it has one, into im->vocab. */
static int load_gguf(infer_model *im, const char *path, base_err *e) {
    gguf_file *g = NULL;
    int rc = gguf_open(path, &g, e);
    if (rc) return rc;
    im->gguf = g;
    nn_config c;
    base_err ge;
    if ((rc = ckpt_gguf_config(g, &c, &ge)))
        rc = base_fail(e, BASE_EFORMAT, "%s: %s", path, ge.msg);
    if (!rc &&
        (rc = infer_weights_from_gguf(&im->w, g, &c, &im->small, &im->mapped, &im->alloc, &ge)))
        rc = base_fail(e, rc, "%s: %s", path, ge.msg);
    if (!rc && gguf_find(g, "tokenizer.ggml.model") >= 0 &&
        (rc = tok_load_gguf(g, &im->vocab, &ge)))
        rc = base_fail(e, BASE_EFORMAT, "%s: %s", path, ge.msg);
    if (!rc && gguf_find(g, "tokenizer.chat_template") >= 0) {
        gguf_str t;
        if ((rc = gguf_get_str(g, "tokenizer.chat_template", &t, &ge)))
            rc = base_fail(e, BASE_EFORMAT, "%s: %s", path, ge.msg);
        else if (!(im->chat_template = malloc(t.len + 1)))
            rc = base_fail(e, BASE_ENOMEM, "out of memory");
        else
            memcpy(im->chat_template, t.ptr, t.len), im->chat_template[t.len] = 0;
    }
    if (rc) return rc;
    snprintf(im->source, sizeof im->source, "%s", path);
    base_name(im->name, sizeof im->name, path, ".gguf");
    return BASE_OK;
}

/* The byte-level vocabulary of a model trained on raw bytes (`hearth train --data FILE.txt`):
 * the 256 single bytes, no merges, no end-of-text token. */
static int byte_vocab(tok_vocab **out, base_err *e) {
    tok_train_opts o = {.vocab_size = 256, .pretok = TOK_PRETOK_GPT2};
    return tok_train(&o, "", 0, out, e);
}

/* The vocabulary the model was made with, when something records it: the GGUF file's own,
 * the tokenizer stored with the run or beside the exported file (tok_path), the byte vocabulary
 * of a run trained on bytes. *v NULL when none is: then *ident may still hold the identity the
 * run's trainer.json records. */
static int recorded_vocab(infer_model *im, const char *tok_path, tok_vocab **v, const char **ident,
                          base_err *e) {
    *v = NULL;
    *ident = im->run_vocab;
    if (im->vocab) { /* the GGUF file's own: handed over */
        *v = im->vocab;
        im->vocab = NULL;
        return BASE_OK;
    }
    if (!strcmp(im->run_vocab, "bytes")) return byte_vocab(v, e);
    if (tok_path[0] && file_exists(tok_path)) return tok_load(tok_path, v, e);
    return BASE_OK;
}

/* Whether b is a's vocabulary: the same kind and size and every id the same token. (Not
 * tok_identity: that also covers BOS/EOS choices a GGUF round trip changes.) */
static int same_vocab(const tok_vocab *a, const tok_vocab *b) {
    if (tok_kind(a) != tok_kind(b) || tok_vocab_size(a) != tok_vocab_size(b)) return 0;
    for (int32_t i = 0; i < tok_vocab_size(a); i++) {
        const char *ta, *tb;
        size_t la, lb;
        if (tok_token_text(a, i, &ta, &la, NULL) || tok_token_text(b, i, &tb, &lb, NULL) ||
            la != lb || memcmp(ta, tb, la) != 0 || tok_token_type(a, i) != tok_token_type(b, i))
            return 0;
    }
    return 1;
}

int infer_model_load(infer_model **out, const char *path, const char *tokenizer, base_err *e) {
    *out = NULL;
    if (!path || !*path) return base_fail(e, BASE_EINVAL, "no model path given");
    struct stat sb;
    if (stat(path, &sb) != 0)
        return base_fail(e, BASE_EIO, "cannot open model %s: %s", path, strerror(errno));
    infer_model *im = calloc(1, sizeof *im);
    if (!im) return base_fail(e, BASE_ENOMEM, "out of memory");
    char tok_path[PATH_LEN] = "";
    base_file_kind kind = BASE_FILE_DIR;
    char ft_model[PATH_LEN];
    int is_dir = S_ISDIR(sb.st_mode);
    int rc = is_dir ? finetune_run(path, ft_model, sizeof ft_model, e) : 0;
    if (rc == 1) { /* a --full fine-tuning run: its model.gguf, a file finetune_run found */
        path = ft_model;
        is_dir = 0;
        rc = 0;
    }
    if (!rc) rc = is_dir ? load_dir(im, path, tok_path, e) : check_model_file(path, &kind, e);
    if (!rc && !is_dir)
        rc = kind == BASE_FILE_GGUF ? load_gguf(im, path, e) : load_file(im, path, tok_path, e);
    if (!rc && im->nn) {
        rc = infer_weights_from_nn(&im->w, im->nn, e);
        im->alloc = im->nn->n_params * sizeof(float);
    }
    if (!rc) {
        if (tokenizer) {
            tok_vocab *own = NULL;
            const char *ident;
            rc = recorded_vocab(im, tok_path, &own, &ident, e);
            if (!rc) rc = tok_load(tokenizer, &im->vocab, e);
            if (!rc && (own ? !same_vocab(own, im->vocab)
                            : ident[0] && strcmp(ident, tok_identity(im->vocab)) != 0))
                rc = base_fail(e, BASE_EINVAL,
                               "the tokenizer %s (%s) is not the model's: %s was made with the "
                               "vocabulary %s (leave out --tokenizer to use it)",
                               tokenizer, tok_identity(im->vocab), path,
                               own ? tok_identity(own) : ident);
            tok_free(own);
        } else if (im->vocab) { /* the GGUF file's own */
        } else if (tok_path[0] && file_exists(tok_path)) {
            rc = tok_load(tok_path, &im->vocab, e);
        } else if (im->w.cfg.vocab_size == 256) {
            rc = byte_vocab(&im->vocab, e);
        } else {
            rc = base_fail(e, BASE_EINVAL,
                           "%s has no stored tokenizer%s%s%s and its vocabulary (%d) is not bytes: "
                           "give one with --tokenizer",
                           path, tok_path[0] ? " (" : "", tok_path, tok_path[0] ? ")" : "",
                           im->w.cfg.vocab_size);
        }
    }
    if (!rc && tok_vocab_size(im->vocab) > im->w.cfg.vocab_size)
        rc = base_fail(e, BASE_EFORMAT,
                       "the tokenizer has %d tokens but the model's vocabulary is %d",
                       (int)tok_vocab_size(im->vocab), im->w.cfg.vocab_size);
    if (rc) {
        infer_model_free(im);
        return rc;
    }
    *out = im;
    return BASE_OK;
}

void infer_model_free(infer_model *m) {
    if (!m) return;
    nn_model_free(m->nn);
    free(m->w.layers);
    free(m->small);
    gguf_close(m->gguf);
    tok_free(m->vocab);
    free(m->chat_template);
    free(m);
}

const nn_config *infer_model_config(const infer_model *m) {
    return &m->w.cfg;
}
tok_vocab *infer_model_vocab(const infer_model *m) {
    return m->vocab;
}
const char *infer_model_name(const infer_model *m) {
    return m->name;
}
nn_family infer_model_family(const infer_model *m) {
    return m->w.cfg.family;
}
const char *infer_model_chat_template(const infer_model *m) {
    return m->chat_template;
}
const nn_model *infer_model_nn(const infer_model *m) {
    return m->nn;
}
const char *infer_model_source(const infer_model *m) {
    return m->source;
}
const infer_weights *infer_model_weights(const infer_model *m) {
    return &m->w;
}
void infer_model_bytes(const infer_model *m, size_t *mapped, size_t *allocated) {
    *mapped = m->mapped;
    *allocated = m->alloc;
}

/* nn/config.c: transformer configurations: presets, overrides by field name, checks. */
#include "nn.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

typedef struct preset {
    const char *name;
    nn_config c;
} preset;

/* fields: family V maxT L NH NKV C F tied bias eps theta */
static const preset presets[] = {
    {"tiny", {NN_GPT2, 256, 128, 4, 4, 4, 64, 256, 1, 1, 1e-5f, 10000.0f}},
    {"small", {NN_GPT2, 256, 256, 6, 6, 6, 384, 1536, 1, 1, 1e-5f, 10000.0f}},
    {"gpt2-124m", {NN_GPT2, 50257, 1024, 12, 12, 12, 768, 3072, 1, 1, 1e-5f, 10000.0f}},
    {"llama-tiny", {NN_LLAMA, 256, 128, 4, 4, 2, 64, 192, 0, 0, 1e-5f, 10000.0f}},
    {"llama-small", {NN_LLAMA, 256, 256, 6, 6, 2, 384, 1024, 0, 0, 1e-5f, 10000.0f}},
    {"llama-124m", {NN_LLAMA, 32000, 1024, 12, 12, 4, 768, 2048, 0, 0, 1e-5f, 10000.0f}},
};

const char *const nn_presets[] = {"tiny",        "small",      "gpt2-124m", "llama-tiny",
                                  "llama-small", "llama-124m", NULL};

int nn_config_preset(nn_config *c, const char *name, base_err *e) {
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
        if (strcmp(presets[i].name, name) == 0) {
            *c = presets[i].c;
            return BASE_OK;
        }
    return base_fail(e, BASE_EINVAL,
                     "unknown preset '%s' (known: tiny, small, gpt2-124m, llama-tiny, "
                     "llama-small, llama-124m)",
                     name);
}

const char *const nn_config_fields[] = {"family",    "vocab_size", "max_seq", "n_layer", "n_head",
                                        "n_kv_head", "d_model",    "d_ff",    "tied",    "bias",
                                        "norm_eps",  "rope_theta", NULL};

static int parse_int(const char *key, const char *v, int lo, int hi, int *out, base_err *e) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi)
        return base_fail(e, BASE_EINVAL, "%s must be an integer in [%d, %d], got '%s'", key, lo, hi,
                         v);
    *out = (int)x;
    return BASE_OK;
}

static int parse_float(const char *key, const char *v, float *out, base_err *e) {
    char *end;
    errno = 0;
    float x = strtof(v, &end);
    if (errno || end == v || *end || !(x > 0) || x > 1e30f)
        return base_fail(e, BASE_EINVAL, "%s must be a positive number, got '%s'", key, v);
    *out = x;
    return BASE_OK;
}

int nn_config_set(nn_config *c, const char *key, const char *v, base_err *e) {
    const int big = 1 << 24;
    if (!strcmp(key, "family")) {
        if (!strcmp(v, "gpt2"))
            c->family = NN_GPT2;
        else if (!strcmp(v, "llama"))
            c->family = NN_LLAMA;
        else
            return base_fail(e, BASE_EINVAL, "family must be gpt2 or llama, got '%s'", v);
        return BASE_OK;
    }
    if (!strcmp(key, "vocab_size")) return parse_int(key, v, 1, big, &c->vocab_size, e);
    if (!strcmp(key, "max_seq")) return parse_int(key, v, 1, big, &c->max_seq, e);
    if (!strcmp(key, "n_layer")) return parse_int(key, v, 1, 4096, &c->n_layer, e);
    if (!strcmp(key, "n_head")) return parse_int(key, v, 1, 4096, &c->n_head, e);
    if (!strcmp(key, "n_kv_head")) return parse_int(key, v, 1, 4096, &c->n_kv_head, e);
    if (!strcmp(key, "d_model")) return parse_int(key, v, 1, big, &c->d_model, e);
    if (!strcmp(key, "d_ff")) return parse_int(key, v, 1, big, &c->d_ff, e);
    if (!strcmp(key, "tied")) return parse_int(key, v, 0, 1, &c->tied, e);
    if (!strcmp(key, "bias")) return parse_int(key, v, 0, 1, &c->bias, e);
    if (!strcmp(key, "norm_eps")) return parse_float(key, v, &c->norm_eps, e);
    if (!strcmp(key, "rope_theta")) return parse_float(key, v, &c->rope_theta, e);
    return base_fail(e, BASE_EINVAL, "unknown model field '%s'", key);
}

int nn_config_check(const nn_config *c, base_err *e) {
    if (c->family != NN_GPT2 && c->family != NN_LLAMA)
        return base_fail(e, BASE_EINVAL, "unknown model family %d", (int)c->family);
    if (c->vocab_size < 1 || c->max_seq < 1 || c->n_layer < 1 || c->n_head < 1 ||
        c->n_kv_head < 1 || c->d_model < 1 || c->d_ff < 1)
        return base_fail(e, BASE_EINVAL, "every model size must be positive");
    if (c->d_model % c->n_head)
        return base_fail(e, BASE_EINVAL, "n_head (%d) does not divide d_model (%d)", c->n_head,
                         c->d_model);
    if (c->n_head % c->n_kv_head)
        return base_fail(e, BASE_EINVAL, "n_kv_head (%d) does not divide n_head (%d)", c->n_kv_head,
                         c->n_head);
    if (c->family == NN_GPT2 && c->n_kv_head != c->n_head)
        return base_fail(e, BASE_EINVAL,
                         "the GPT-2 family has no grouped-query attention: n_kv_head (%d) must "
                         "equal n_head (%d)",
                         c->n_kv_head, c->n_head);
    if (c->family == NN_LLAMA && (c->d_model / c->n_head) % 2)
        return base_fail(e, BASE_EINVAL, "RoPE needs an even head size, got %d",
                         c->d_model / c->n_head);
    if (!(c->norm_eps > 0) || !(c->rope_theta > 0))
        return base_fail(e, BASE_EINVAL, "norm_eps and rope_theta must be positive");
    /* Every tensor's element count must fit comfortably: keep sizes well under 2^31 per
     * dimension product used as int in the kernels. */
    double biggest = (double)c->vocab_size * c->d_model;
    double ff = 2.0 * c->d_ff * c->d_model, seq = (double)c->max_seq * c->d_model;
    if (biggest > 2e9 || ff > 2e9 || seq > 2e9)
        return base_fail(e, BASE_EINVAL, "model too large for this build (a tensor over 2^31)");
    return BASE_OK;
}

json_t *nn_config_json(const nn_config *c) {
    return json_pack("{s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:f,s:f}", "family",
                     c->family == NN_GPT2 ? "gpt2" : "llama", "vocab_size", c->vocab_size,
                     "max_seq", c->max_seq, "n_layer", c->n_layer, "n_head", c->n_head, "n_kv_head",
                     c->n_kv_head, "d_model", c->d_model, "d_ff", c->d_ff, "tied", c->tied, "bias",
                     c->bias, "norm_eps", (double)c->norm_eps, "rope_theta", (double)c->rope_theta);
}

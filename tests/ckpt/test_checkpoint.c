/* tests/ckpt/test_checkpoint.c: CRC-32C against published vectors; safetensors round trip and
 * malformed files; the model under Hugging Face names; checkpoint save/load, damaged
 * checkpoints skipped for the previous good one, refused mismatches; bit-exact resume; models
 * and vocabularies as GGUF (llama.cpp's names and layouts) and back. */
#include "test.h"

#include "ckpt/ckpt.h"
#include "ckpt/crc32c.h"
#include "ckpt/gguf_model.h"
#include "ckpt/safetensors.h"
#include "nn/lora.h"
#include "tokenizer/tokenizer.h"
#include "train/train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void rm_rf(const char *path) {
    assert_int_equal(test_rm_rf(path), 0);
}

static void test_crc32c(void **state) {
    (void)state;
    uint32_t (*const fns[])(uint32_t, const void *, size_t) = {ckpt_crc32c, ckpt_crc32c_ref};
    for (int f = 0; f < 2; f++) { /* the dispatched (hardware where there is one), the table */
        uint32_t (*crc)(uint32_t, const void *, size_t) = fns[f];
        unsigned char b[32];
        assert_int_equal(crc(0, "123456789", 9), 0xE3069283u);
        memset(b, 0, 32);
        assert_int_equal(crc(0, b, 32), 0x8A9136AAu);
        memset(b, 0xff, 32);
        assert_int_equal(crc(0, b, 32), 0x62A8AB43u);
        for (int i = 0; i < 32; i++) b[i] = (unsigned char)i;
        assert_int_equal(crc(0, b, 32), 0x46DD794Eu);
        for (int i = 0; i < 32; i++) b[i] = (unsigned char)(31 - i);
        assert_int_equal(crc(0, b, 32), 0x113FDB5Cu);
        assert_int_equal(crc(0, b, 0), 0u);
        /* continuing in pieces of every split gives the whole CRC */
        for (size_t k = 0; k <= 9; k++)
            assert_int_equal(crc(crc(0, "123456789", k), "123456789" + k, 9 - k), 0xE3069283u);
    }
    /* every length and misalignment of random bytes: the two agree */
    base_rng r;
    base_rng_seed(&r, 7);
    unsigned char buf[300];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (unsigned char)base_rng_below(&r, 256);
    for (size_t off = 0; off < 9; off++)
        for (size_t n = 0; off + n <= sizeof buf; n++)
            assert_int_equal(ckpt_crc32c(5, buf + off, n), ckpt_crc32c_ref(5, buf + off, n));
}

/* A small file image: header JSON hdr, then data bytes of zeros. */
static int parse_image(const char *hdr, size_t data, uint64_t hlen_override, base_err *e) {
    size_t hl = strlen(hdr), len = 8 + hl + data;
    unsigned char *buf = calloc(1, len);
    assert_non_null(buf);
    uint64_t h = hlen_override ? hlen_override : hl;
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(h >> (8 * i));
    memcpy(buf + 8, hdr, hl);
    ckpt_st *st;
    int rc = ckpt_st_parse(&st, buf, len, "image", e);
    ckpt_st_free(st);
    return rc;
}

static void test_safetensors(void **state) {
    (void)state;
    char dir[] = "/tmp/hearth-st-XXXXXX", path[128];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/a.safetensors", dir);
    float a[6] = {1, 2, 3, 4, 5, 6}, s = 7.5f, z;
    ckpt_st_tensor t[3] = {{"a", 2, {2, 3}, a}, {"scalar", 0, {0}, &s}, {"empty", 1, {0}, &z}};
    const char *meta[] = {"k", "v \"quoted\"", NULL};
    base_err e;
    uint64_t size;
    uint32_t crc;
    assert_int_equal(ckpt_st_write(path, t, 3, meta, &size, &crc, &e), 0);
    char *buf;
    size_t len;
    assert_int_equal(base_read_file(path, &buf, &len, &e), 0);
    assert_int_equal(len, size);
    assert_int_equal(ckpt_crc32c(0, buf, len), crc);
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++) hl |= (uint64_t)(unsigned char)buf[i] << (8 * i);
    assert_int_equal((8 + hl) % 8, 0); /* data aligned */
    assert_int_equal(len, 8 + hl + 7 * 4);
    free(buf);
    ckpt_st *st;
    assert_int_equal(ckpt_st_open(&st, path, &e), 0);
    assert_int_equal(ckpt_st_count(st), 3);
    assert_string_equal(ckpt_st_meta(st, "k"), "v \"quoted\"");
    assert_null(ckpt_st_meta(st, "nope"));
    const ckpt_st_entry *en = ckpt_st_find(st, "a");
    assert_non_null(en);
    assert_int_equal(en->ndim, 2);
    assert_int_equal(en->shape[1], 3);
    float back[6];
    uint64_t shape[2] = {2, 3}, wrong[2] = {3, 2};
    assert_int_equal(ckpt_st_get_f32(st, "a", 2, shape, back, &e), 0);
    assert_memory_equal(back, a, sizeof a);
    assert_int_equal(ckpt_st_get_f32(st, "a", 2, wrong, back, &e), BASE_EFORMAT);
    assert_non_null(strstr(e.msg, "(2, 3)"));
    assert_int_equal(ckpt_st_get_f32(st, "scalar", 0, shape, back, &e), 0);
    assert_true(back[0] == 7.5f);
    assert_int_equal(ckpt_st_get_f32(st, "missing", 0, shape, back, &e), BASE_EFORMAT);
    ckpt_st_free(st);

    /* malformed images */
    const char *ok = "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    assert_int_equal(parse_image(ok, 8, 0, &e), 0);
    assert_int_equal(parse_image(ok, 4, 0, &e), BASE_EFORMAT); /* data truncated */
    assert_non_null(strstr(e.msg, "data_offsets"));
    assert_int_equal(parse_image(ok, 8, UINT64_MAX, &e), BASE_EFORMAT); /* length overflow */
    assert_int_equal(parse_image(ok, 8, UINT64_MAX - 4, &e), BASE_EFORMAT);
    assert_int_equal(parse_image(ok, 0, strlen(ok) + 1, &e), BASE_EFORMAT);
    assert_int_equal(
        parse_image("{\"x\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, 0, &e),
        BASE_EFORMAT);
    assert_non_null(strstr(e.msg, "F16"));
    assert_int_equal(
        parse_image("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 8, 0, &e),
        BASE_EFORMAT); /* outside the file */
    assert_int_equal(
        parse_image("{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, 0, &e),
        BASE_EFORMAT); /* size does not match the shape */
    assert_int_equal(
        parse_image("{\"x\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,0]}}", 8, 0, &e),
        BASE_EFORMAT);
    assert_int_equal(parse_image("{\"x\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,"
                                 "4294967296],\"data_offsets\":[0,8]}}",
                                 8, 0, &e),
                     BASE_EFORMAT); /* numel overflow */
    assert_int_equal(
        parse_image("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, 0, &e),
        BASE_EFORMAT);
    assert_int_equal(parse_image("[1,2]", 0, 0, &e), BASE_EFORMAT);
    assert_int_equal(parse_image("{\"x\":", 0, 0, &e), BASE_EFORMAT);
    assert_int_equal(parse_image("{\"__metadata__\":{\"a\":1}}", 0, 0, &e), BASE_EFORMAT);
    assert_int_equal(parse_image("{\"x\":{\"dtype\":\"F32\"}}", 0, 0, &e), BASE_EFORMAT);
    /* mutated and truncated copies of a good file: an error or a parse, never a crash (the
     * sanitizer build checks the reads) */
    char *good;
    size_t glen;
    assert_int_equal(base_read_file(path, &good, &glen, &e), 0);
    base_rng r;
    base_rng_seed(&r, 11);
    for (int it = 0; it < 3000; it++) {
        size_t n = it % 3 == 0 ? (size_t)base_rng_below(&r, glen + 1) : glen;
        unsigned char *m = malloc(glen + 1);
        assert_non_null(m);
        memcpy(m, good, glen);
        for (int k = 0; k < 1 + it % 4 && n > 0; k++)
            m[base_rng_below(&r, it % 2 ? n : (n < 120 ? n : 120))] =
                (unsigned char)base_rng_below(&r, 256);
        ckpt_st *ms;
        int rc = ckpt_st_parse(&ms, m, n, "mutant", &e);
        assert_true(rc == BASE_OK || rc == BASE_EFORMAT);
        if (rc == BASE_OK) {
            for (int i = 0; i < ckpt_st_count(ms); i++) {
                const ckpt_st_entry *me = ckpt_st_entry_at(ms, i);
                assert_true(me->data + me->numel * 4 <= (const unsigned char *)m + n);
            }
        }
        ckpt_st_free(ms);
    }
    free(good);
    unsigned char *tiny = malloc(4);
    ckpt_st *st2;
    assert_int_equal(ckpt_st_parse(&st2, tiny, 4, "tiny", &e), BASE_EFORMAT);
    assert_null(st2);
    rm_rf(dir);
}

static nn_model *make_model(const char *preset, uint64_t seed) {
    nn_config c;
    base_err e;
    assert_int_equal(nn_config_preset(&c, preset, &e), 0);
    c.vocab_size = 256;
    nn_model *m;
    assert_int_equal(nn_model_create(&m, &c, 2, 16, &e), 0);
    nn_model_init(m, seed);
    return m;
}

static void test_hf_names(void **state) {
    (void)state;
    char dir[] = "/tmp/hearth-hf-XXXXXX", path[128];
    assert_non_null(mkdtemp(dir));
    base_err e;
    const char *presets[] = {"tiny", "llama-tiny"};
    for (int k = 0; k < 2; k++) {
        nn_model *a = make_model(presets[k], 1), *b = make_model(presets[k], 2);
        snprintf(path, sizeof path, "%s/%s.safetensors", dir, presets[k]);
        assert_int_equal(ckpt_st_write_model(path, a, NULL, NULL, NULL, &e), 0);
        ckpt_st *st;
        assert_int_equal(ckpt_st_open(&st, path, &e), 0);
        const nn_config *c = &a->cfg;
        int HS = c->d_model / c->n_head;
        if (k == 0) {
            assert_non_null(ckpt_st_find(st, "wte.weight"));
            assert_non_null(ckpt_st_find(st, "wpe.weight"));
            const ckpt_st_entry *q = ckpt_st_find(st, "h.1.attn.c_attn.weight");
            assert_non_null(q);
            assert_int_equal(q->shape[0], 3 * c->d_model);
            assert_non_null(ckpt_st_find(st, "h.0.mlp.c_proj.bias"));
            assert_non_null(ckpt_st_find(st, "ln_f.bias"));
            /* layer 1's c_attn is the second block of hearth's qkvw */
            const nn_tensor *t = nn_model_tensor(a, "qkvw");
            size_t blk = (size_t)t->shape[1] * (size_t)t->shape[2];
            assert_memory_equal(q->data, a->params + t->offset + blk, blk * 4);
        } else {
            const ckpt_st_entry *q = ckpt_st_find(st, "model.layers.0.self_attn.q_proj.weight"),
                                *kk = ckpt_st_find(st, "model.layers.0.self_attn.k_proj.weight"),
                                *g = ckpt_st_find(st, "model.layers.0.mlp.gate_proj.weight"),
                                *u = ckpt_st_find(st, "model.layers.0.mlp.up_proj.weight");
            assert_non_null(q);
            assert_non_null(kk);
            assert_non_null(ckpt_st_find(st, "model.layers.0.self_attn.v_proj.weight"));
            assert_non_null(ckpt_st_find(st, "model.embed_tokens.weight"));
            assert_non_null(ckpt_st_find(st, "model.norm.weight"));
            assert_int_equal(q->shape[0], c->n_head * HS);
            assert_int_equal(kk->shape[0], c->n_kv_head * HS);
            /* k follows q in hearth's packed rows; up follows gate */
            const nn_tensor *t = nn_model_tensor(a, "qkvw"), *f = nn_model_tensor(a, "fcw");
            assert_memory_equal(kk->data,
                                a->params + t->offset + (size_t)c->n_head * HS * c->d_model,
                                (size_t)c->n_kv_head * HS * c->d_model * 4);
            assert_int_equal(g->shape[0], c->d_ff);
            assert_memory_equal(u->data, a->params + f->offset + (size_t)c->d_ff * c->d_model,
                                (size_t)c->d_ff * c->d_model * 4);
        }
        assert_int_equal(ckpt_st_read_model(st, b, &e), 0);
        assert_memory_equal(a->params, b->params, a->n_params * 4);
        ckpt_st_free(st);
        nn_model_free(a);
        nn_model_free(b);
    }
    /* a GPT-2 file does not load into a Llama model */
    nn_model *l = make_model("llama-tiny", 1);
    ckpt_st *st;
    snprintf(path, sizeof path, "%s/tiny.safetensors", dir);
    assert_int_equal(ckpt_st_open(&st, path, &e), 0);
    assert_int_equal(ckpt_st_read_model(st, l, &e), BASE_EFORMAT);
    assert_non_null(strstr(e.msg, "missing"));
    ckpt_st_free(st);
    nn_model_free(l);
    rm_rf(dir);
}

static void fill_trainer(ckpt_trainer *t) {
    memset(t, 0, sizeof *t);
    t->steps = 100, t->warmup = 5, t->accum = 1, t->batch = 2, t->seq = 16;
    t->lr = 1e-3f, t->min_lr = 1e-4f, t->weight_decay = 0.1f, t->clip = 1.0f;
    t->seed = 42;
    snprintf(t->data_identity, sizeof t->data_identity, "bytes");
}

typedef struct warns {
    int n;
    char last[1024];
} warns;

static void on_warn(const char *msg, void *user) {
    warns *w = user;
    w->n++;
    snprintf(w->last, sizeof w->last, "%s", msg);
}

/* Flips one byte at off (from the end if negative) or truncates by one byte. */
static void damage(const char *path, long off, int truncate_it) {
    char *buf;
    size_t len;
    base_err e;
    assert_int_equal(base_read_file(path, &buf, &len, &e), 0);
    if (truncate_it) {
        assert_int_equal(truncate(path, (off_t)len - 1), 0);
    } else {
        FILE *f = fopen(path, "r+b");
        assert_non_null(f);
        size_t at = off < 0 ? len - (size_t)-off : (size_t)off;
        fseek(f, (long)at, SEEK_SET);
        fputc(buf[at] ^ 0x10, f);
        fclose(f);
    }
    free(buf);
}

/* A model with LoRA adapters attached checkpoints its adapters and their AdamW moments, not the
 * base (fine-tuning's checkpoints), through the background writer as through ckpt_save, and
 * loads them back into adapters of the same shape only; the base is left alone. */
static void test_save_load_adapters(void **state) {
    (void)state;
    char dir[] = "/tmp/hearth-ck-XXXXXX", p[256];
    assert_non_null(mkdtemp(dir));
    base_err e;
    nn_model *a = make_model("llama-tiny", 3), *b = make_model("llama-tiny", 4);
    unsigned tg = (1u << NN_LORA_Q) | (1u << NN_LORA_V) | (1u << NN_LORA_DOWN);
    nn_lora *la, *lb, *lc;
    assert_int_equal(nn_lora_create(&la, a, 4, 8, 0, tg, 1, &e), 0);
    assert_int_equal(nn_lora_create(&lb, b, 4, 8, 0, tg, 2, &e), 0);
    assert_int_equal(nn_lora_create(&lc, b, 2, 8, 0, tg, 2, &e), 0);
    nn_lora_attach(a, la);
    nn_lora_attach(b, lb);
    base_rng r;
    base_rng_seed(&r, 6);
    test_fill(&r, la->params, la->n_params, -1, 1);
    optim_adamw oa = {0}, ob = {0};
    assert_int_equal(optim_adamw_create(&oa, la->n_params, &e), 0);
    assert_int_equal(optim_adamw_create(&ob, lb->n_params, &e), 0);
    test_fill(&r, oa.m, oa.n, -1, 1);
    test_fill(&r, oa.v, oa.n, 0, 1);
    oa.t = 7;
    ckpt_trainer t;
    fill_trainer(&t);
    t.step = 7;
    ckpt_writer *w;
    ckpt_write_result wr;
    assert_int_equal(ckpt_writer_create(&w, dir, a, 0, 0, &e), 0);
    assert_int_equal(ckpt_writer_submit(w, a, &oa, &t, NULL, &e), 0);
    ckpt_writer_wait(w, &wr);
    assert_int_equal(wr.rc, 0);
    ckpt_writer_free(w);
    t.step = 8; /* and synchronously */
    assert_int_equal(ckpt_save(dir, a, &oa, &t, &e), 0);
    /* model.safetensors holds the adapters under their names, nothing of the base */
    ckpt_st *st;
    snprintf(p, sizeof p, "%s/step_00000007/model.safetensors", dir);
    assert_int_equal(ckpt_st_open(&st, p, &e), 0);
    assert_int_equal(ckpt_st_count(st), la->n_tensors);
    assert_non_null(ckpt_st_find(st, "blk.0.attn_q.lora_a"));
    assert_string_equal(ckpt_st_meta(st, "format"), "hearth-lora");
    ckpt_st_free(st);
    float *base_b = malloc(b->n_params * sizeof(float));
    memcpy(base_b, b->params, b->n_params * sizeof(float));
    for (int step = 7; step <= 8; step++) {
        ckpt_trainer tb;
        fill_trainer(&tb);
        snprintf(p, sizeof p, "%s/step_%08d", dir, step);
        assert_int_equal(ckpt_load(p, b, &ob, &tb, &e), 0);
        assert_int_equal(tb.step, step);
        assert_memory_equal(la->params, lb->params, la->n_params * 4);
        assert_memory_equal(oa.m, ob.m, oa.n * 4);
        assert_memory_equal(oa.v, ob.v, oa.n * 4);
        assert_int_equal(ob.t, 7);
        assert_memory_equal(base_b, b->params, b->n_params * 4); /* the base untouched */
    }
    /* adapters of another rank: refused, naming the tensor's shape */
    nn_lora_attach(b, lc);
    optim_adamw oc = {0};
    assert_int_equal(optim_adamw_create(&oc, lc->n_params, &e), 0);
    ckpt_trainer tc;
    fill_trainer(&tc);
    assert_int_not_equal(ckpt_load(p, b, &oc, &tc, &e), 0);
    assert_non_null(strstr(e.msg, "lora"));
    free(base_b);
    optim_adamw_free(&oa), optim_adamw_free(&ob), optim_adamw_free(&oc);
    nn_lora_free(la), nn_lora_free(lb), nn_lora_free(lc);
    nn_model_free(a), nn_model_free(b);
    test_rm_rf(dir);
}

static void test_save_load(void **state) {
    (void)state;
    char dir[] = "/tmp/hearth-ck-XXXXXX", p[256];
    assert_non_null(mkdtemp(dir));
    base_err e;
    nn_model *a = make_model("llama-tiny", 3);
    optim_adamw oa = {0}, ob = {0};
    assert_int_equal(optim_adamw_create(&oa, a->n_params, &e), 0);
    assert_int_equal(optim_adamw_create(&ob, a->n_params, &e), 0);
    base_rng r;
    base_rng_seed(&r, 5);
    test_fill(&r, oa.m, oa.n, -1, 1);
    test_fill(&r, oa.v, oa.n, 0, 1);
    oa.t = 10;
    ckpt_trainer t;
    fill_trainer(&t);
    t.step = 10;
    t.pos = (data_pos){1, 0, 7};
    assert_int_equal(ckpt_save(dir, a, &oa, &t, &e), 0);
    /* the second checkpoint: different weights */
    a->params[0] += 1;
    oa.t = 20;
    t.step = 20;
    t.pos = (data_pos){2, 0, 3};
    assert_int_equal(ckpt_save(dir, a, &oa, &t, &e), 0);
    snprintf(p, sizeof p, "%s/.tmp-step_00000020", dir);
    assert_int_not_equal(access(p, F_OK), 0); /* no temporary left */
    char *latest;
    size_t ll;
    snprintf(p, sizeof p, "%s/latest", dir);
    assert_int_equal(base_read_file(p, &latest, &ll, &e), 0);
    assert_string_equal(latest, "step_00000020\n");
    free(latest);

    char *found;
    warns w = {0};
    assert_int_equal(ckpt_find_latest_good(dir, &found, on_warn, &w, &e), 0);
    assert_non_null(found);
    assert_non_null(strstr(found, "step_00000020"));
    assert_int_equal(w.n, 0);
    nn_model *b = make_model("llama-tiny", 9);
    ckpt_trainer tb;
    fill_trainer(&tb);
    assert_int_equal(ckpt_load(found, b, &ob, &tb, &e), 0);
    assert_memory_equal(a->params, b->params, a->n_params * 4);
    assert_memory_equal(oa.m, ob.m, oa.n * 4);
    assert_memory_equal(oa.v, ob.v, oa.n * 4);
    assert_int_equal(ob.t, 20);
    assert_int_equal(tb.step, 20);
    assert_int_equal(tb.pos.epoch, 2);
    assert_int_equal(tb.pos.window, 3);

    /* mismatches are refused, naming the field */
    fill_trainer(&tb);
    tb.seed = 43;
    assert_int_equal(ckpt_load(found, b, &ob, &tb, &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "seed"));
    fill_trainer(&tb);
    tb.lr = 2e-3f;
    assert_int_equal(ckpt_load(found, b, &ob, &tb, &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "lr"));
    fill_trainer(&tb);
    snprintf(tb.data_identity, sizeof tb.data_identity, "other");
    assert_int_equal(ckpt_load(found, b, &ob, &tb, &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "data"));
    nn_config c = b->cfg;
    c.n_layer = 1;
    nn_model *small;
    assert_int_equal(nn_model_create(&small, &c, 2, 16, &e), 0);
    optim_adamw os = {0};
    assert_int_equal(optim_adamw_create(&os, small->n_params, &e), 0);
    fill_trainer(&tb);
    assert_int_equal(ckpt_load(found, small, &os, &tb, &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "n_layer"));
    optim_adamw_free(&os);
    nn_model_free(small);

    /* each file damaged in turn: the newest is skipped (and reported), the older one used */
    const char *files[] = {"model.safetensors", "optimizer.safetensors", "trainer.json",
                           "manifest.json"};
    for (int f = 0; f < 4; f++)
        for (int how = 0; how < 3; how++) {
            char keep[256], cp[600];
            snprintf(keep, sizeof keep, "%s/keep", dir);
            snprintf(cp, sizeof cp, "cp -r '%s' '%s'", found, keep);
            assert_int_equal(system(cp), 0);
            snprintf(p, sizeof p, "%s/%s", found, files[f]);
            damage(p, how == 0 ? 3 : -2, how == 2);
            char *g;
            w.n = 0;
            assert_int_equal(ckpt_find_latest_good(dir, &g, on_warn, &w, &e), 0);
            assert_non_null(g);
            assert_non_null(strstr(g, "step_00000010"));
            assert_int_equal(w.n, 1);
            assert_non_null(strstr(w.last, "step_00000020"));
            free(g);
            assert_int_not_equal(ckpt_load(found, b, &ob, &tb, &e), 0);
            rm_rf(found);
            snprintf(cp, sizeof cp, "mv '%s' '%s'", keep, found);
            assert_int_equal(system(cp), 0);
        }
    /* an unknown version is refused, saying so */
    snprintf(p, sizeof p, "%s/manifest.json", found);
    char *mj;
    size_t ml;
    assert_int_equal(base_read_file(p, &mj, &ml, &e), 0);
    char *v = strstr(mj, "\"version\": 1");
    assert_non_null(v);
    v[11] = '7';
    assert_int_equal(base_write_atomic(p, mj, ml, &e), 0);
    free(mj);
    assert_int_equal(ckpt_verify(found, &e), BASE_EFORMAT);
    assert_non_null(strstr(e.msg, "version 7"));
    free(found);
    /* no checkpoint at all: not an error, *dir NULL */
    snprintf(p, sizeof p, "%s/empty", dir);
    assert_int_equal(base_mkdir_p(p, &e), 0);
    assert_int_equal(ckpt_find_latest_good(p, &found, NULL, NULL, &e), 0);
    assert_null(found);
    optim_adamw_free(&oa);
    optim_adamw_free(&ob);
    nn_model_free(a);
    nn_model_free(b);
    rm_rf(dir);
}

typedef struct run_seen {
    float loss[32];
    int step[32], n, notes;
    char note[1024];
} run_seen;

static void on_step(const train_progress *p, void *user) {
    run_seen *s = user;
    if (!p->is_eval && s->n < 32) s->step[s->n] = p->step, s->loss[s->n++] = p->loss;
}

static void on_note(const char *msg, void *user) {
    run_seen *s = user;
    s->notes++;
    if (strstr(msg, "skipping") || !s->note[0]) snprintf(s->note, sizeof s->note, "%s", msg);
}

static void train_opts_for(train_opts *o, const char *data, const char *out, int every) {
    memset(o, 0, sizeof *o);
    base_err e;
    assert_int_equal(nn_config_preset(&o->cfg, "tiny", &e), 0);
    train_opts_default(o);
    o->data = data;
    o->out_dir = out;
    o->batch = 2;
    o->seq = 16;
    o->steps = 12;
    o->eval_every = 5;
    o->eval_batches = 1;
    o->sample_tokens = 0;
    o->ckpt_every = every;
    o->note = on_note;
}

static void same_file(const char *a, const char *b) {
    char *x, *y;
    size_t nx, ny;
    base_err e;
    assert_int_equal(base_read_file(a, &x, &nx, &e), 0);
    assert_int_equal(base_read_file(b, &y, &ny, &e), 0);
    assert_int_equal(nx, ny);
    assert_memory_equal(x, y, nx);
    free(x);
    free(y);
}

/* Makes the temporary directory dir (a mkdtemp template) with a small corpus in it: data gets
 * its path, a and b (NULL-able) the paths of two run directories inside (not created). Each
 * buffer holds 128 bytes. */
static void test_run_dirs(char *dir, char *data, char *a, char *b) {
    assert_non_null(mkdtemp(dir));
    snprintf(data, 128, "%s/corpus.txt", dir);
    snprintf(a, 128, "%s/a", dir);
    if (b) snprintf(b, 128, "%s/b", dir);
    FILE *f = fopen(data, "w");
    assert_non_null(f);
    for (int i = 0; i < 300; i++) fprintf(f, "pack my box with %d dozen liquor jugs.\n", i % 7);
    fclose(f);
}

/* 12 steps straight vs. checkpoints every 4, the run "crashed" after step 9 (step 12's
 * checkpoint gone, step 8's damaged), resumed from step 4: the same losses, byte-identical
 * weights and optimizer state at the end. */
static void test_resume_bit_exact(void **state) {
    (void)state;
    char dir[] = "/tmp/hearth-resume-XXXXXX", data[128], a[128], b[128], p[256], q[256];
    test_run_dirs(dir, data, a, b);
    train_opts o;
    base_err e;
    run_seen ra = {0}, rb = {0}, rc2 = {0};
    train_opts_for(&o, data, a, 12);
    assert_int_equal(train_run(&o, on_step, &ra, NULL, &e), 0);
    assert_int_equal(ra.n, 12);
    assert_int_equal(ra.notes, 0);
    train_opts_for(&o, data, b, 4);
    assert_int_equal(train_run(&o, on_step, &rb, NULL, &e), 0);
    assert_memory_equal(ra.loss, rb.loss, sizeof ra.loss); /* checkpoints change nothing */
    /* the crash: step 12 never written, step 8 damaged, a stale temporary left behind */
    snprintf(p, sizeof p, "%s/step_00000012", b);
    rm_rf(p);
    snprintf(p, sizeof p, "%s/step_00000008/optimizer.safetensors", b);
    damage(p, 100, 0);
    snprintf(p, sizeof p, "%s/.tmp-step_00000012", b);
    assert_int_equal(base_mkdir_p(p, &e), 0);
    train_opts_for(&o, data, b, 4);
    assert_int_equal(train_run(&o, on_step, &rc2, NULL, &e), 0);
    assert_non_null(strstr(rc2.note, "step_00000008"));
    assert_non_null(strstr(rc2.note, "CRC"));
    assert_int_equal(rc2.n, 8);
    assert_int_equal(rc2.step[0], 5);
    assert_memory_equal(rc2.loss, ra.loss + 4, 8 * sizeof(float));
    const char *files[] = {"model.safetensors", "optimizer.safetensors"};
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/step_00000012/%s", a, files[i]);
        snprintf(q, sizeof q, "%s/step_00000012/%s", b, files[i]);
        same_file(p, q);
    }
    /* metrics.jsonl: steps 1..12 once each, in order, the dropped lines not repeated */
    snprintf(p, sizeof p, "%s/metrics.jsonl", b);
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    char line[512];
    int want = 1;
    while (fgets(line, sizeof line, f)) {
        int s;
        float v;
        if (sscanf(line, "{\"step\":%d,\"loss\":%f", &s, &v) == 2) {
            assert_int_equal(s, want);
            want++;
        }
    }
    fclose(f);
    assert_int_equal(want, 13);
    /* the same run directory with another seed: refused, naming it */
    train_opts_for(&o, data, b, 4);
    o.seed = 7;
    assert_int_equal(train_run(&o, on_step, &rc2, NULL, &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "seed"));
    /* an explicit --resume of a checkpoint directory, into a new run directory */
    run_seen rd = {0};
    train_opts_for(&o, data, a, 0);
    snprintf(p, sizeof p, "%s/step_00000004", b);
    snprintf(q, sizeof q, "%s/c", dir);
    o.out_dir = q;
    o.resume = p;
    assert_int_equal(train_run(&o, on_step, &rd, NULL, &e), 0);
    assert_int_equal(rd.n, 8);
    assert_memory_equal(rd.loss, ra.loss + 4, 8 * sizeof(float));
    /* --resume of a directory with nothing good in it is an error */
    snprintf(p, sizeof p, "%s/nothing", dir);
    assert_int_equal(base_mkdir_p(p, &e), 0);
    o.resume = p;
    assert_int_equal(train_run(&o, on_step, &rd, NULL, &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "nothing to resume"));
    rm_rf(dir);
}

/* A background write that fails (its temporary's name taken by a file: ckpt_save cannot clear
 * it) is reported; training goes on, the earlier checkpoint still verifies, the later ones are
 * written, and the losses are those of a run without checkpoints. */
static void test_async_write_failure(void **state) {
    (void)state;
    char dir[] = "/tmp/hearth-async-XXXXXX", data[128], a[128], b[128], p[256];
    test_run_dirs(dir, data, a, b);
    train_opts o;
    base_err e;
    run_seen ra = {0}, rb = {0};
    train_opts_for(&o, data, a, 0);
    assert_int_equal(train_run(&o, on_step, &ra, NULL, &e), 0);
    assert_int_equal(base_mkdir_p(b, &e), 0);
    snprintf(p, sizeof p, "%s/.tmp-step_00000008", b);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fclose(f);
    train_opts_for(&o, data, b, 4);
    assert_int_equal(train_run(&o, on_step, &rb, NULL, &e), 0);
    assert_int_equal(rb.n, 12);
    assert_memory_equal(ra.loss, rb.loss, sizeof ra.loss);
    assert_non_null(strstr(rb.note, "checkpoint step_00000008 failed"));
    snprintf(p, sizeof p, "%s/step_00000004", b);
    assert_int_equal(ckpt_verify(p, &e), 0);
    snprintf(p, sizeof p, "%s/step_00000012", b);
    assert_int_equal(ckpt_verify(p, &e), 0);
    snprintf(p, sizeof p, "%s/step_00000008", b);
    assert_int_not_equal(access(p, F_OK), 0);
    /* metrics.jsonl: a line per write, with its costs, and the failure */
    char *m;
    size_t len;
    snprintf(p, sizeof p, "%s/metrics.jsonl", b);
    assert_int_equal(base_read_file(p, &m, &len, &e), 0);
    assert_non_null(strstr(m, "{\"step\":4,\"ckpt\":\"step_00000004\",\"snapshot_ms\":"));
    assert_non_null(strstr(m, "\"write_ms\":"));
    assert_non_null(strstr(m, "{\"step\":8,\"ckpt\":\"step_00000008\",\"failed\":true}"));
    free(m);
    /* the writer on its own: a run directory under a regular file cannot be written */
    nn_model *mod;
    optim_adamw opt = {0};
    nn_config cfg;
    assert_int_equal(nn_config_preset(&cfg, "tiny", &e), 0);
    cfg.vocab_size = 256;
    assert_int_equal(nn_model_create(&mod, &cfg, 1, 8, &e), 0);
    assert_int_equal(optim_adamw_create(&opt, mod->n_params, &e), 0);
    ckpt_writer *w;
    snprintf(p, sizeof p, "%s/corpus.txt/run", dir);
    assert_int_equal(ckpt_writer_create(&w, p, mod, 0, 0, &e), 0);
    ckpt_trainer t = {.step = 1, .steps = 1, .batch = 1, .seq = 8};
    ckpt_write_result r;
    assert_int_equal(ckpt_writer_submit(w, mod, &opt, &t, &r, &e), 0);
    assert_int_equal(r.step, -1); /* nothing was in flight */
    ckpt_writer_wait(w, &r);
    assert_int_equal(r.step, 1);
    assert_int_not_equal(r.rc, 0);
    assert_non_null(strstr(r.err.msg, "corpus.txt/run"));
    ckpt_writer_wait(w, &r);
    assert_int_equal(r.step, -1);
    ckpt_writer_free(w);
    optim_adamw_free(&opt);
    nn_model_free(mod);
    rm_rf(dir);
}

/* The asynchronous snapshot's contract: once ckpt_writer_snapshot_wait returns, the state may
 * change at once, and the checkpoint still holds the state as it was at the submit. The small
 * preset (43 MB per buffer) makes the copy slow enough that a missing wait would be caught. */
static void test_async_snapshot(void **state) {
    (void)state;
    char dir[] = "/tmp/hearth-snap-XXXXXX", p[256];
    assert_non_null(mkdtemp(dir));
    base_err e;
    nn_model *a = make_model("small", 4), *b = make_model("small", 5);
    optim_adamw oa = {0}, ob = {0};
    assert_int_equal(optim_adamw_create(&oa, a->n_params, &e), 0);
    assert_int_equal(optim_adamw_create(&ob, a->n_params, &e), 0);
    base_rng r;
    base_rng_seed(&r, 9);
    test_fill(&r, oa.m, oa.n, -1, 1);
    test_fill(&r, oa.v, oa.n, 0, 1);
    oa.t = 3;
    size_t bytes = a->n_params * sizeof(float);
    float *p0 = malloc(bytes), *m0 = malloc(bytes), *v0 = malloc(bytes);
    assert_true(p0 && m0 && v0);
    memcpy(p0, a->params, bytes), memcpy(m0, oa.m, bytes), memcpy(v0, oa.v, bytes);
    ckpt_writer *w;
    assert_int_equal(ckpt_writer_create(&w, dir, a, 0, 0, &e), 0);
    ckpt_trainer t;
    fill_trainer(&t);
    t.step = 3;
    assert_int_equal(ckpt_writer_submit(w, a, &oa, &t, NULL, &e), 0);
    assert_true(ckpt_writer_snapshot_wait(w) >= 0);
    /* what an optimizer step would do next: every value changes */
    for (size_t i = 0; i < a->n_params; i++) a->params[i] += 1, oa.m[i] += 1, oa.v[i] += 1;
    ckpt_write_result res;
    ckpt_writer_wait(w, &res);
    assert_int_equal(res.rc, 0);
    assert_int_equal(res.step, 3);
    assert_true(res.snapshot_ms > 0 && res.wait_ms >= 0 && res.write_ms > 0);
    assert_true(ckpt_writer_snapshot_wait(w) == 0); /* none in flight: no wait */
    ckpt_writer_free(w);
    snprintf(p, sizeof p, "%s/step_00000003", dir);
    ckpt_trainer tb;
    fill_trainer(&tb);
    assert_int_equal(ckpt_load(p, b, &ob, &tb, &e), 0);
    assert_memory_equal(b->params, p0, bytes);
    assert_memory_equal(ob.m, m0, bytes);
    assert_memory_equal(ob.v, v0, bytes);
    assert_int_equal(ob.t, 3);
    free(p0), free(m0), free(v0);
    optim_adamw_free(&oa), optim_adamw_free(&ob);
    nn_model_free(a), nn_model_free(b);
    rm_rf(dir);
}

/* A model and a vocabulary to GGUF and back, for both families: the same config, the same
 * parameters bit for bit, the same encodings; Llama's q/k rows in llama.cpp's RoPE order in
 * the file; a truncated file refused. */
static void test_gguf_model(void **state) {
    (void)state;
    char dir[] = "/tmp/hearth-gguf-XXXXXX", p[256];
    assert_non_null(mkdtemp(dir));
    snprintf(p, sizeof p, "%s/m.gguf", dir);
    base_err e;
    size_t clen;
    char *corpus = test_read_corpus(&clen);
    const char *specials[] = {"<|endoftext|>"};
    tok_train_opts to = {
        .vocab_size = 300, .pretok = TOK_PRETOK_GPT2, .specials = specials, .n_specials = 1};
    tok_vocab *v;
    assert_int_equal(tok_train(&to, corpus, clen, &v, &e), 0);
    const char *presets[] = {"tiny", "llama-tiny"};
    for (int f = 0; f < 2; f++) {
        nn_model *a = make_model(presets[f], 11);
        gguf_writer *w;
        float *scratch;
        assert_int_equal(gguf_writer_create(&w, &e), 0);
        assert_int_equal(ckpt_gguf_add_model(w, a, "test model", NULL, &scratch, &e), 0);
        assert_int_equal(tok_gguf_set(v, w, &e), 0);
        assert_int_equal(gguf_writer_save(w, p, &e), 0);
        gguf_writer_free(w);
        free(scratch);
        gguf_file *g;
        assert_int_equal(gguf_open(p, &g, &e), 0);
        nn_config c;
        if (ckpt_gguf_config(g, &c, &e)) fail_msg("%s: %s", presets[f], e.msg);
        assert_int_equal(c.family, a->cfg.family);
        assert_int_equal(c.vocab_size, a->cfg.vocab_size);
        assert_int_equal(c.max_seq, a->cfg.max_seq);
        assert_int_equal(c.n_layer, a->cfg.n_layer);
        assert_int_equal(c.n_head, a->cfg.n_head);
        assert_int_equal(c.n_kv_head, a->cfg.n_kv_head);
        assert_int_equal(c.d_model, a->cfg.d_model);
        assert_int_equal(c.d_ff, a->cfg.d_ff);
        assert_int_equal(c.tied, a->cfg.tied);
        assert_int_equal(c.bias, a->cfg.bias);
        assert_true(c.norm_eps == a->cfg.norm_eps && c.rope_theta == a->cfg.rope_theta);
        nn_model *b;
        assert_int_equal(nn_model_create(&b, &c, 1, 8, &e), 0);
        if (ckpt_gguf_read_model(g, b, &e)) fail_msg("%s: %s", presets[f], e.msg);
        assert_memory_equal(a->params, b->params, a->n_params * sizeof(float));
        if (a->cfg.family == NN_LLAMA) { /* q row 1 of head 0 is hearth's row HS/2 */
            int64_t idx = -1;
            for (size_t i = 0; i < gguf_n_tensors(g); i++) {
                const gguf_tensor *t = gguf_tensor_at(g, i);
                if (t->name.len == 19 && !memcmp(t->name.ptr, "blk.0.attn_q.weight", 19))
                    idx = (int64_t)i;
            }
            assert_true(idx >= 0);
            const gguf_tensor *t = gguf_tensor_at(g, (size_t)idx);
            int C = a->cfg.d_model, HS = C / a->cfg.n_head;
            const float *row1 = (const float *)(gguf_data(g) + gguf_data_offset(g) + t->offset) + C;
            const float *q = a->params + nn_model_tensor(a, "qkvw")->offset;
            assert_memory_equal(row1, q + (size_t)(HS / 2) * C, (size_t)C * sizeof(float));
        }
        tok_vocab *v2;
        assert_int_equal(tok_load_gguf(g, &v2, &e), 0);
        tok_ids x = {0}, y = {0};
        /* a GGUF vocabulary reads invalid UTF-8 as llama.cpp does (U+FFFD): compare on the
         * corpus with its invalid bytes made '?' */
        char *valid = malloc(clen);
        for (size_t i = 0; i < clen;) {
            const unsigned char *u = (const unsigned char *)corpus + i;
            size_t k = u[0] < 0x80                   ? 1
                       : u[0] >= 0xC2 && u[0] < 0xE0 ? 2
                       : u[0] >= 0xE0 && u[0] < 0xF0 ? 3
                       : u[0] >= 0xF0 && u[0] < 0xF5 ? 4
                                                     : 0;
            for (size_t j = 1; j < k; j++)
                if (i + j >= clen || (u[j] & 0xC0) != 0x80) k = 0;
            if (k == 3 && ((u[0] == 0xE0 && u[1] < 0xA0) || (u[0] == 0xED && u[1] >= 0xA0))) k = 0;
            if (k == 4 && ((u[0] == 0xF0 && u[1] < 0x90) || (u[0] == 0xF4 && u[1] >= 0x90))) k = 0;
            if (k == 0)
                valid[i++] = '?';
            else
                memcpy(valid + i, u, k), i += k;
        }
        assert_int_equal(tok_encode(v, valid, clen, TOK_ENCODE_SPECIAL, &x, &e), 0);
        assert_int_equal(tok_encode(v2, valid, clen, TOK_ENCODE_SPECIAL, &y, &e), 0);
        free(valid);
        assert_int_equal(x.len, y.len);
        assert_memory_equal(x.data, y.data, x.len * sizeof *x.data);
        assert_int_equal(tok_eot_id(v2), tok_eot_id(v));
        tok_ids_free(&x), tok_ids_free(&y);
        tok_free(v2);
        /* cut inside the tensor data: the config may still read, the weights may not */
        size_t size = gguf_size(g);
        gguf_close(g);
        assert_int_equal(truncate(p, (off_t)(size - 100)), 0);
        if (gguf_open(p, &g, &e) == 0) {
            if (ckpt_gguf_config(g, &c, &e) == 0) {
                assert_int_equal(ckpt_gguf_read_model(g, b, &e), BASE_EFORMAT);
                assert_non_null(strstr(e.msg, "past the end"));
            }
            gguf_close(g);
        }
        nn_model_free(a), nn_model_free(b);
    }
    tok_free(v);
    free(corpus);
    rm_rf(dir);
}

/* --keep-last, --keep-every, --ckpt-every-min. keep_last 2, keep_every 6 over 12 steps with a
 * checkpoint every 2: steps 6, 10, 12 stay (6 forever, the newest two good ones); a damaged newest
 * one is not counted among the good, and `latest` is never deleted. */
static void test_keep_last(void **state) {
    (void)state;
    char dir[] = "/tmp/hearth-keep-XXXXXX", data[128], a[128], p[256];
    test_run_dirs(dir, data, a, NULL);
    train_opts o;
    base_err e;
    run_seen ra = {0};
    train_opts_for(&o, data, a, 2);
    o.keep_last = 2;
    o.keep_every = 6;
    assert_int_equal(train_run(&o, on_step, &ra, NULL, &e), 0);
    for (int s = 2; s <= 12; s += 2) {
        snprintf(p, sizeof p, "%s/step_%08d", a, s);
        int kept = s == 6 || s == 10 || s == 12;
        assert_int_equal(access(p, F_OK) == 0, kept);
        if (kept) assert_int_equal(ckpt_verify(p, &e), 0);
    }
    /* step 12 damaged: the good ones are 10 and 6, so nothing goes; with keep_last 1 and no
     * keep_every, 10 stays as the good one, 12 as newer than it, and 6 goes */
    snprintf(p, sizeof p, "%s/step_00000012/model.safetensors", a);
    damage(p, 10, 0);
    int removed = -1;
    assert_int_equal(ckpt_prune(a, 2, 6, &removed, &e), 0);
    assert_int_equal(removed, 0);
    assert_int_equal(ckpt_prune(a, 1, 0, &removed, &e), 0);
    assert_int_equal(removed, 1);
    snprintf(p, sizeof p, "%s/step_00000006", a);
    assert_int_not_equal(access(p, F_OK), 0);
    snprintf(p, sizeof p, "%s/step_00000010", a);
    assert_int_equal(access(p, F_OK), 0);
    snprintf(p, sizeof p, "%s/step_00000012", a);
    assert_int_equal(access(p, F_OK), 0);
    assert_int_equal(ckpt_prune(a, 0, 0, &removed, &e), 0); /* 0: keep all */
    assert_int_equal(removed, 0);
    /* by wall clock: every 1e-6 minutes is after every step; the newest 3 stay */
    run_seen rb = {0};
    snprintf(a, sizeof a, "%s/b", dir);
    train_opts_for(&o, data, a, 0);
    o.ckpt_every_min = 1e-6;
    o.keep_last = 3;
    assert_int_equal(train_run(&o, on_step, &rb, NULL, &e), 0);
    for (int s = 1; s <= 12; s++) {
        snprintf(p, sizeof p, "%s/step_%08d", a, s);
        assert_int_equal(access(p, F_OK) == 0, s >= 10);
    }
    rm_rf(dir);
}

/* The types ckpt_gguf_quant gives the tensors of an 8-layer Llama (token_embd; per layer attn_v,
 * ffn_down, attn_q, attn_norm; output unless tied), rows of `cols`, in the order written, into
 * types: llama.cpp's llama_tensor_get_type worked by hand (more(i, 8) holds for i = 0, 3, 6, 7). */
static void quant_plan_types(const char *type, int pure, int tied, int *types, int cols) {
    base_err e;
    ckpt_gguf_quant *q;
    assert_int_equal(ckpt_gguf_quant_create(&q, type, pure, 8, 8, 1, !tied, NULL, &e), 0);
    gguf_writer *w;
    assert_int_equal(gguf_writer_create(&w, &e), 0);
    static float src[2 * 256];
    uint64_t dims[2] = {(uint64_t)cols, 2};
    char nm[64];
    assert_int_equal(ckpt_gguf_quant_add(q, w, "token_embd.weight", 2, dims, 0, src, &e), 0);
    for (int l = 0; l < 8; l++) {
        snprintf(nm, sizeof nm, "blk.%d.attn_v.weight", l);
        assert_int_equal(ckpt_gguf_quant_add(q, w, nm, 2, dims, 0, src, &e), 0);
        snprintf(nm, sizeof nm, "blk.%d.ffn_down.weight", l);
        assert_int_equal(ckpt_gguf_quant_add(q, w, nm, 2, dims, 0, src, &e), 0);
        snprintf(nm, sizeof nm, "blk.%d.attn_q.weight", l);
        assert_int_equal(ckpt_gguf_quant_add(q, w, nm, 2, dims, 0, src, &e), 0);
        snprintf(nm, sizeof nm, "blk.%d.attn_norm.weight", l);
        assert_int_equal(ckpt_gguf_quant_add(q, w, nm, 1, dims, 0, src, &e), 0);
    }
    if (!tied) assert_int_equal(ckpt_gguf_quant_add(q, w, "output.weight", 2, dims, 0, src, &e), 0);
    char dir[] = "/tmp/hearth-gguf-XXXXXX", p[256];
    assert_non_null(mkdtemp(dir));
    snprintf(p, sizeof p, "%s/q.gguf", dir);
    assert_int_equal(gguf_writer_save(w, p, &e), 0);
    gguf_writer_free(w);
    ckpt_gguf_quant_free(q);
    gguf_file *g;
    assert_int_equal(gguf_open(p, &g, &e), 0);
    for (size_t i = 0; i < gguf_n_tensors(g); i++) types[i] = (int)gguf_tensor_at(g, i)->type;
    gguf_close(g);
    unlink(p);
    rmdir(dir);
}

static void test_gguf_quant_plan(void **state) {
    (void)state;
    enum { F32 = 0, F16 = 1, Q4_0 = 2, Q5_0 = 6, Q8_0 = 8, Q4_K = 12, Q5_K = 13, Q6_K = 14 };
    int t[64], u[64];
    /* Q4_K_M: token_embd Q4_K; attn_v and ffn_down Q6_K in layers 0, 3, 6, 7; output Q6_K */
    quant_plan_types("q4_k_m", 0, 0, t, 256);
    assert_int_equal(t[0], Q4_K);
    for (int l = 0; l < 8; l++) {
        int more = l == 0 || l == 3 || l == 6 || l == 7;
        assert_int_equal(t[1 + 4 * l], more ? Q6_K : Q4_K);
        assert_int_equal(t[2 + 4 * l], more ? Q6_K : Q4_K);
        assert_int_equal(t[3 + 4 * l], Q4_K);
        assert_int_equal(t[4 + 4 * l], F32);
    }
    assert_int_equal(t[33], Q6_K);
    /* Q4_K (llama-quantize's alias) is Q4_K_M; pure: every matrix Q4_K */
    quant_plan_types("Q4_K", 0, 0, u, 256);
    assert_memory_equal(t, u, 34 * sizeof(int));
    quant_plan_types("Q4_K", 1, 0, u, 256);
    for (int i = 0; i < 34; i++) assert_int_equal(u[i], i % 4 == 0 && i && i < 33 ? F32 : Q4_K);
    /* Q4_K_S: attn_v Q5_K in layers 0-3, ffn_down Q5_K in layer 0 */
    quant_plan_types("Q4_K_S", 0, 0, t, 256);
    for (int l = 0; l < 8; l++) {
        assert_int_equal(t[1 + 4 * l], l < 4 ? Q5_K : Q4_K);
        assert_int_equal(t[2 + 4 * l], l < 1 ? Q5_K : Q4_K);
    }
    /* Q4_0: the output Q6_K; a tied model's token_embd is its output */
    quant_plan_types("q4_0", 0, 0, t, 256);
    assert_int_equal(t[0], Q4_0);
    assert_int_equal(t[33], Q6_K);
    quant_plan_types("q4_0", 0, 1, t, 256);
    assert_int_equal(t[0], Q6_K);
    /* rows of 64: Q4_K -> Q5_0, Q6_K -> Q8_0; the output of a Q4_K_M file Q8_0 */
    quant_plan_types("q4_k_m", 0, 0, t, 64);
    assert_int_equal(t[0], Q5_0);
    assert_int_equal(t[1], Q8_0);
    assert_int_equal(t[5], Q5_0);
    assert_int_equal(t[33], Q8_0);
    /* rows of 48: no block of 32 fits: F16 */
    quant_plan_types("q8_0", 0, 0, t, 48);
    assert_int_equal(t[0], F16);
    assert_int_equal(t[4], F32);
    /* refusals: an unknown name, a type hearth does not write, a quantized input */
    base_err e;
    ckpt_gguf_quant *q;
    assert_int_equal(ckpt_gguf_quant_create(&q, "q9_9", 0, 1, 1, 1, 1, NULL, &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "unknown type 'q9_9'"));
    assert_int_equal(ckpt_gguf_quant_create(&q, "iq2_xs", 0, 1, 1, 1, 1, NULL, &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "IQ2_XS is not supported"));
    assert_int_equal(ckpt_gguf_quant_create(&q, "Q8_0", 0, 1, 1, 1, 1, NULL, &e), 0);
    gguf_writer *w;
    assert_int_equal(gguf_writer_create(&w, &e), 0);
    static uint8_t blocks[34 * 8];
    uint64_t dims[2] = {256, 1};
    assert_int_equal(ckpt_gguf_quant_add(q, w, "blk.0.attn_q.weight", 2, dims, Q8_0, blocks, &e),
                     BASE_EINVAL);
    assert_non_null(strstr(e.msg, "blk.0.attn_q.weight is Q8_0"));
    gguf_writer_free(w);
    ckpt_gguf_quant_free(q);
}

int test_checkpoint(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c),
        cmocka_unit_test(test_safetensors),
        cmocka_unit_test(test_hf_names),
        cmocka_unit_test(test_save_load),
        cmocka_unit_test(test_save_load_adapters),
        cmocka_unit_test(test_resume_bit_exact),
        cmocka_unit_test(test_async_write_failure),
        cmocka_unit_test(test_async_snapshot),
        cmocka_unit_test(test_gguf_model),
        cmocka_unit_test(test_keep_last),
        cmocka_unit_test(test_gguf_quant_plan),
    };
    return cmocka_run_group_tests_name("checkpoint", tests, NULL, NULL);
}

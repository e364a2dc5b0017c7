/* test_checkpoint.c — safetensors save/load: bit-exact round trips, and the
 * loader's refusal (with a clear message) of every kind of corrupt file. */
#include "test_util.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------- helpers */

typedef struct {
    unsigned char *bytes;
    size_t len;
} blob;

static blob read_file(const char *path) {
    blob b = {NULL, 0};
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    b.bytes = malloc((size_t)n + 1);
    assert_non_null(b.bytes);
    b.len = fread(b.bytes, 1, (size_t)n, f);
    assert_int_equal(b.len, (size_t)n);
    fclose(f);
    return b;
}

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n) assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* Write a safetensors file from a header string and a data buffer. The
 * length prefix is `prefix_len` (use (uint64_t)-1 for the true length). */
static void write_st_raw(const char *path, uint64_t prefix_len, const char *hdr, size_t hlen,
                         const void *data, size_t dlen) {
    if (prefix_len == (uint64_t)-1) prefix_len = hlen;
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    unsigned char pre[8];
    for (int i = 0; i < 8; i++) pre[i] = (unsigned char)(prefix_len >> (8 * i));
    assert_int_equal(fwrite(pre, 1, 8, f), 8);
    if (hlen) assert_int_equal(fwrite(hdr, 1, hlen, f), hlen);
    if (dlen) assert_int_equal(fwrite(data, 1, dlen, f), dlen);
    assert_int_equal(fclose(f), 0);
}

/* A parsed checkpoint: the JSON header and a private copy of the data. */
typedef struct {
    json_t *root;
    unsigned char *data;
    size_t dlen;
    uint64_t hlen;
} st_file;

static st_file parse_st(const char *path) {
    blob b = read_file(path);
    st_file s = {0};
    assert_true(b.len >= 8);
    for (int i = 0; i < 8; i++) s.hlen |= (uint64_t)b.bytes[i] << (8 * i);
    assert_true(8 + s.hlen <= b.len);
    json_error_t e;
    s.root = json_loadb((const char *)b.bytes + 8, (size_t)s.hlen, 0, &e);
    if (!s.root) fail_msg("saved header is not JSON: %s", e.text);
    s.dlen = b.len - 8 - (size_t)s.hlen;
    s.data = malloc(s.dlen + 64);
    assert_non_null(s.data);
    memcpy(s.data, b.bytes + 8 + s.hlen, s.dlen);
    free(b.bytes);
    return s;
}

static void free_st(st_file *s) {
    json_decref(s->root);
    free(s->data);
}

/* Serialise root (with a correct length prefix) and data [dlen] to path. */
static void write_st(const char *path, json_t *root, const void *data, size_t dlen) {
    char *h = json_dumps(root, JSON_COMPACT);
    assert_non_null(h);
    write_st_raw(path, (uint64_t)-1, h, strlen(h), data, dlen);
    free(h);
}

static json_t *tensor_entry(st_file *s, const char *name) {
    json_t *e = json_object_get(s->root, name);
    if (!e) fail_msg("no tensor %s in the saved header", name);
    return e;
}
static uint64_t off_of(st_file *s, const char *name, int which) {
    return (uint64_t)json_integer_value(json_array_get(json_object_get(tensor_entry(s, name), "data_offsets"), which));
}
static void set_offsets(st_file *s, const char *name, uint64_t b, uint64_t e) {
    json_t *o = json_pack("[II]", (json_int_t)b, (json_int_t)e);
    json_object_set_new(tensor_entry(s, name), "data_offsets", o);
}

/* Load must fail with `want` and a message containing every phrase. */
static void expect_fail_(const char *path, hydra_status want, const char *const *phrases, int n,
                         int line) {
    hydra_model *m = (hydra_model *)(uintptr_t)1;
    hydra_status st = hydra_model_load(path, &m);
    const char *msg = hydra_last_error();
    if (st != want)
        fail_msg("line %d: load returned %s, expected %s (message: %s)", line, hydra_status_str(st),
                 hydra_status_str(want), msg);
    if (m != NULL) fail_msg("line %d: *out not NULL after a failed load", line);
    for (int i = 0; i < n; i++)
        if (!strstr(msg, phrases[i]))
            fail_msg("line %d: message \"%s\" lacks \"%s\"", line, msg, phrases[i]);
}
#define EXPECT_FAIL(path, want, ...)                                                   \
    do {                                                                               \
        const char *const ph_[] = {__VA_ARGS__};                                       \
        expect_fail_((path), (want), ph_, (int)(sizeof ph_ / sizeof ph_[0]), __LINE__); \
    } while (0)

static void assert_same_model(const hydra_model *a, const hydra_model *b) {
    const hydra_config *ca = hydra_model_config(a), *cb = hydra_model_config(b);
    char *ja = NULL, *jb = NULL;
    HY_OK(hydra_config_to_json(ca, &ja));
    HY_OK(hydra_config_to_json(cb, &jb));
    assert_string_equal(ja, jb);
    hydra_free(ja);
    hydra_free(jb);
    assert_int_equal(ca->d_model, cb->d_model);
    assert_int_equal(ca->n_layers, cb->n_layers);
    assert_int_equal(ca->n_heads, cb->n_heads);
    assert_int_equal(ca->head_dim, cb->head_dim);
    assert_int_equal(ca->vocab_size, cb->vocab_size);
    assert_int_equal(ca->swa_every, cb->swa_every);
    assert_string_equal(ca->pattern, cb->pattern);
    assert_int_equal(ca->window, cb->window);
    assert_int_equal(ca->conv_width, cb->conv_width);
    assert_int_equal(ca->mlp_multiple, cb->mlp_multiple);
    assert_int_equal(ca->tie_embeddings, cb->tie_embeddings);
    assert_memory_equal(&ca->norm_eps, &cb->norm_eps, sizeof(float));
    assert_memory_equal(&ca->l2_eps, &cb->l2_eps, sizeof(float));
    assert_memory_equal(&ca->init_std, &cb->init_std, sizeof(float));
    assert_memory_equal(&ca->rope_base, &cb->rope_base, sizeof(float));
    assert_int_equal(hydra_model_n_tensors(a), hydra_model_n_tensors(b));
    assert_int_equal(hydra_model_n_params(a), hydra_model_n_params(b));
    for (int i = 0; i < hydra_model_n_tensors(a); i++) {
        hydra_tensor ta, tb;
        HY_OK(hydra_model_tensor(a, i, &ta));
        HY_OK(hydra_model_tensor(b, i, &tb));
        assert_string_equal(ta.name, tb.name);
        assert_int_equal(ta.ndim, tb.ndim);
        assert_int_equal(ta.shape[0], tb.shape[0]);
        assert_int_equal(ta.shape[1], tb.shape[1]);
        assert_int_equal(ta.numel, tb.numel);
        if (memcmp(ta.data, tb.data, ta.numel * sizeof(float)) != 0)
            fail_msg("tensor %s differs after the round trip", ta.name);
    }
    assert_true(hydra_model_fingerprint(a) == hydra_model_fingerprint(b));
}

/* Save a model of cfg, load it back, compare; returns nothing, cleans up. */
static void round_trip(const hydra_config *cfg, uint64_t seed, const char *file) {
    hydra_model *m = NULL, *l = NULL;
    HY_OK(hydra_model_create(cfg, seed, &m));
    const char *p = tmp_path(file);
    char path[512];
    snprintf(path, sizeof path, "%s", p);
    HY_OK(hydra_model_save(m, path));
    /* The data start is 8-byte aligned, and the file is exactly the size implied. */
    st_file s = parse_st(path);
    assert_int_equal(s.hlen % 8, 0);
    assert_int_equal(s.dlen, hydra_model_n_params(m) * sizeof(float));
    json_t *meta = json_object_get(s.root, "__metadata__");
    assert_string_equal(json_string_value(json_object_get(meta, "hydralm.format_version")), "1");
    assert_non_null(json_string_value(json_object_get(meta, "hydralm.config")));
    assert_int_equal(json_object_size(s.root), (size_t)hydra_model_n_tensors(m) + 1);
    free_st(&s);
    HY_OK(hydra_model_load(path, &l));
    assert_same_model(m, l);
    hydra_model_free(m);
    hydra_model_free(l);
    remove(path);
}

/* ------------------------------------------------------------ round trips */

static void test_round_trip_tiny(void **state) {
    (void)state;
    hydra_config c = tiny_config();
    round_trip(&c, 1, "rt_tiny.safetensors");
}

static void test_round_trip_untied(void **state) {
    (void)state;
    hydra_config c = tiny_config();
    c.tie_embeddings = 0;
    hydra_model *m = NULL;
    hydra_tensor t;
    HY_OK(hydra_model_create(&c, 2, &m));
    HY_OK(hydra_model_find_tensor(m, "lm_head.weight", &t));
    assert_int_equal(t.shape[0], c.vocab_size);
    assert_int_equal(t.shape[1], c.d_model);
    hydra_model_free(m);
    round_trip(&c, 2, "rt_untied.safetensors");
    /* and a schedule from swa_every instead of a pattern */
    c.pattern[0] = '\0';
    c.swa_every = 2;
    c.head_dim = 0;
    round_trip(&c, 3, "rt_swa_every.safetensors");
}

static void test_round_trip_full_attention(void **state) {
    (void)state;
    hydra_config c = tiny_config();
    snprintf(c.pattern, sizeof c.pattern, "DSAD");
    c.window = 4;
    round_trip(&c, 4, "rt_attn.safetensors");
}

/* Tensors may be listed in any order in the header and laid out in any order
 * in the data: here both are the reverse of the table order. */
static void test_any_order(void **state) {
    (void)state;
    hydra_config c = tiny_config();
    hydra_model *m = NULL, *l = NULL;
    HY_OK(hydra_model_create(&c, 5, &m));
    char path[512];
    snprintf(path, sizeof path, "%s", tmp_path("order.safetensors"));
    char *cj = NULL;
    HY_OK(hydra_config_to_json(&c, &cj));
    json_t *root = json_object();
    json_object_set_new(root, "__metadata__",
                        json_pack("{s:s,s:s}", "hydralm.config", cj, "hydralm.format_version", "1"));
    hydra_free(cj);
    size_t total = hydra_model_n_params(m) * sizeof(float), pos = 0;
    unsigned char *data = malloc(total);
    assert_non_null(data);
    for (int i = hydra_model_n_tensors(m) - 1; i >= 0; i--) {
        hydra_tensor t;
        HY_OK(hydra_model_tensor(m, i, &t));
        json_t *shape = t.ndim == 2 ? json_pack("[II]", (json_int_t)t.shape[0], (json_int_t)t.shape[1])
                                    : json_pack("[I]", (json_int_t)t.shape[0]);
        json_object_set_new(root, t.name,
                            json_pack("{s:o,s:s,s:[II]}", "shape", shape, "dtype", "F32", "data_offsets",
                                      (json_int_t)pos, (json_int_t)(pos + t.numel * 4)));
        memcpy(data + pos, t.data, t.numel * 4);
        pos += t.numel * 4;
    }
    write_st(path, root, data, total);
    HY_OK(hydra_model_load(path, &l));
    assert_same_model(m, l);
    hydra_model_free(l);
    json_decref(root);
    free(data);
    hydra_model_free(m);
    remove(path);
}

static void test_overwrite_is_atomic_replace(void **state) {
    (void)state;
    hydra_config c = tiny_config();
    hydra_model *a = NULL, *b = NULL, *l = NULL;
    HY_OK(hydra_model_create(&c, 10, &a));
    HY_OK(hydra_model_create(&c, 11, &b));
    char path[512], tmp[600];
    snprintf(path, sizeof path, "%s", tmp_path("overwrite.safetensors"));
    HY_OK(hydra_model_save(a, path));
    HY_OK(hydra_model_save(b, path));
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    assert_int_not_equal(access(tmp, F_OK), 0); /* no temp file left behind */
    HY_OK(hydra_model_load(path, &l));
    assert_same_model(b, l);
    hydra_model_free(a);
    hydra_model_free(b);
    hydra_model_free(l);
    remove(path);
}

/* ------------------------------------------------------------- save errors */

static void test_save_errors(void **state) {
    (void)state;
    hydra_config c = tiny_config();
    hydra_model *m = NULL;
    HY_OK(hydra_model_create(&c, 1, &m));
    assert_int_equal(hydra_model_save(m, "/nonexistent_dir/x.safetensors"), HYDRA_ERR_IO);
    assert_non_null(strstr(hydra_last_error(), "/nonexistent_dir/x.safetensors"));
    assert_int_equal(hydra_model_save(NULL, tmp_path("x.safetensors")), HYDRA_ERR_ARG);
    assert_int_equal(hydra_model_save(m, NULL), HYDRA_ERR_ARG);
    hydra_model *out = NULL;
    assert_int_equal(hydra_model_load(NULL, &out), HYDRA_ERR_ARG);
    assert_null(out);
    assert_int_equal(hydra_model_load(tmp_path("x.safetensors"), NULL), HYDRA_ERR_ARG);
    /* A model with a NaN weight is refused (it could never be loaded back). */
    hydra_tensor t;
    HY_OK(hydra_model_find_tensor(m, "norm_f.weight", &t));
    t.data[3] = NAN;
    char path[512];
    snprintf(path, sizeof path, "%s", tmp_path("nan_save.safetensors"));
    assert_int_equal(hydra_model_save(m, path), HYDRA_ERR_ARG);
    assert_non_null(strstr(hydra_last_error(), "NaN"));
    assert_int_not_equal(access(path, F_OK), 0);
    hydra_model_free(m);
}

/* ------------------------------------------------------------- load errors */

typedef struct {
    char base[512]; /* a valid checkpoint of tiny_config() */
    char bad[512];  /* scratch file for corrupt variants */
} fixture;

static int setup(void **state) {
    fixture *fx = calloc(1, sizeof *fx);
    if (!fx) return -1;
    snprintf(fx->base, sizeof fx->base, "%s", tmp_path("base.safetensors"));
    snprintf(fx->bad, sizeof fx->bad, "%s", tmp_path("bad.safetensors"));
    hydra_config c = tiny_config();
    hydra_model *m = NULL;
    if (hydra_model_create(&c, 7, &m) != HYDRA_OK) return -1;
    hydra_status st = hydra_model_save(m, fx->base);
    hydra_model_free(m);
    *state = fx;
    return st == HYDRA_OK ? 0 : -1;
}

static int teardown(void **state) {
    fixture *fx = *state;
    remove(fx->base);
    remove(fx->bad);
    free(fx);
    return 0;
}

static void test_missing_file(void **state) {
    (void)state;
    EXPECT_FAIL(tmp_path("does_not_exist.safetensors"), HYDRA_ERR_IO, "cannot open", "does_not_exist");
}

static void test_truncated(void **state) {
    fixture *fx = *state;
    blob b = read_file(fx->base);
    /* cut in the data */
    write_bytes(fx->bad, b.bytes, b.len - 10);
    EXPECT_FAIL(fx->bad, HYDRA_ERR_FORMAT, "truncated");
    /* cut inside the header */
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)b.bytes[i] << (8 * i);
    write_bytes(fx->bad, b.bytes, 8 + (size_t)hlen / 2);
    EXPECT_FAIL(fx->bad, HYDRA_ERR_FORMAT, "wrong header length", "truncated");
    /* shorter than the length prefix; empty */
    write_bytes(fx->bad, b.bytes, 5);
    EXPECT_FAIL(fx->bad, HYDRA_ERR_FORMAT, "too short");
    write_bytes(fx->bad, b.bytes, 0);
    EXPECT_FAIL(fx->bad, HYDRA_ERR_FORMAT, "too short");
    /* trailing bytes */
    unsigned char *longer = malloc(b.len + 4);
    assert_non_null(longer);
    memcpy(longer, b.bytes, b.len);
    memset(longer + b.len, 0, 4);
    write_bytes(fx->bad, longer, b.len + 4);
    EXPECT_FAIL(fx->bad, HYDRA_ERR_FORMAT, "trailing bytes");
    free(longer);
    free(b.bytes);
}

static void test_wrong_header_length(void **state) {
    fixture *fx = *state;
    st_file s = parse_st(fx->base);
    char *h = json_dumps(s.root, JSON_COMPACT);
    size_t hl = strlen(h);
    /* bigger than the file */
    write_st_raw(fx->bad, hl + s.dlen + 1, h, hl, s.data, s.dlen);
    EXPECT_FAIL(fx->bad, HYDRA_ERR_FORMAT, "wrong header length");
    /* absurdly large (past the 100 MB limit) */
    write_st_raw(fx->bad, (uint64_t)1 << 62, h, hl, s.data, s.dlen);
    EXPECT_FAIL(fx->bad, HYDRA_ERR_FORMAT, "wrong header length");
    /* zero */
    write_st_raw(fx->bad, 0, h, hl, s.data, s.dlen);
    EXPECT_FAIL(fx->bad, HYDRA_ERR_FORMAT, "wrong header length");
    /* smaller than the header: the JSON is cut short */
    write_st_raw(fx->bad, hl - 7, h, hl, s.data, s.dlen);
    EXPECT_FAIL(fx->bad, HYDRA_ERR_FORMAT, "invalid JSON");
    free(h);
    free_st(&s);
}

static void test_invalid_json(void **state) {
    fixture *fx = *state;
    const char *h = "{\"__metadata__\": {\"hydralm.config\": \"{}\",   ";
    write_st_raw(fx->bad, (uint64_t)-1, h, strlen(h), "\0\0\0\0", 4);
    EXPECT_FAIL(fx->bad, HYDRA_ERR_FORMAT, "invalid JSON");
    const char *arr = "[1, 2, 3]";
    write_st_raw(fx->bad, (uint64_t)-1, arr, strlen(arr), NULL, 0);
    EXPECT_FAIL(fx->bad, HYDRA_ERR_FORMAT, "not an object");
    /* duplicate keys are refused rather than silently resolved */
    const char *dup = "{\"a\": 1, \"a\": 2}";
    write_st_raw(fx->bad, (uint64_t)-1, dup, strlen(dup), NULL, 0);
    EXPECT_FAIL(fx->bad, HYDRA_ERR_FORMAT, "invalid JSON", "duplicate");
}

static void test_bad_metadata(void **state) {
    fixture *fx = *state;
    st_file s = parse_st(fx->base);
    json_t *meta = json_object_get(s.root, "__metadata__");
    json_t *saved_cfg = json_deep_copy(json_object_get(meta, "hydralm.config"));

    json_object_set_new(meta, "hydralm.format_version", json_string("2"));
    write_st(fx->bad, s.root, s.data, s.dlen);
    EXPECT_FAIL(fx->bad, HYDRA_ERR_FORMAT, "format_version");
    json_object_set_new(meta, "hydralm.format_version", json_string("1"));

    json_object_del(meta, "hydralm.config");
    write_st(fx->bad, s.root, s.data, s.dlen);
    EXPECT_FAIL(fx->bad, HYDRA_ERR_FORMAT, "hydralm.config");

    json_object_set_new(meta, "hydralm.config", json_integer(3)); /* must be a string */
    write_st(fx->bad, s.root, s.data, s.dlen);
    EXPECT_FAIL(fx->bad, HYDRA_ERR_FORMAT, "hydralm.config");

    json_object_set_new(meta, "hydralm.config", json_string("{not json"));
    write_st(fx->bad, s.root, s.data, s.dlen);
    EXPECT_FAIL(fx->bad, HYDRA_ERR_FORMAT, "hydralm.config");

    /* a config that fails validation */
    json_t *cfg = json_loads(json_string_value(saved_cfg), 0, NULL);
    json_object_set_new(cfg, "n_heads", json_integer(0));
    char *txt = json_dumps(cfg, JSON_COMPACT);
    json_object_set_new(meta, "hydralm.config", json_string(txt));
    free(txt);
    json_decref(cfg);
    write_st(fx->bad, s.root, s.data, s.dlen);
    EXPECT_FAIL(fx->bad, HYDRA_ERR_CONFIG, "n_heads");

    json_object_del(s.root, "__metadata__");
    write_st(fx->bad, s.root, s.data, s.dlen);
    EXPECT_FAIL(fx->bad, HYDRA_ERR_FORMAT, "__metadata__");

    json_decref(saved_cfg);
    free_st(&s);
}

static void test_config_disagrees_with_tensors(void **state) {
    fixture *fx = *state;
    st_file s = parse_st(fx->base);
    json_t *meta = json_object_get(s.root, "__metadata__");
    json_t *cfg = json_loads(json_string_value(json_object_get(meta, "hydralm.config")), 0, NULL);
    assert_non_null(cfg);
    json_object_set_new(cfg, "d_model", json_integer(48)); /* the tensors are 32 wide */
    char *txt = json_dumps(cfg, JSON_COMPACT);
    json_object_set_new(meta, "hydralm.config", json_string(txt));
    free(txt);
    write_st(fx->bad, s.root, s.data, s.dlen);
    EXPECT_FAIL(fx->bad, HYDRA_ERR_MISMATCH, "embed.weight", "[64, 48]", "[64,32]", "disagrees");

    /* a config far larger than the file: refused before allocating it */
    json_object_set_new(cfg, "d_model", json_integer(16384));
    json_object_set_new(cfg, "vocab_size", json_integer(1 << 20));
    txt = json_dumps(cfg, JSON_COMPACT);
    json_object_set_new(meta, "hydralm.config", json_string(txt));
    free(txt);
    write_st(fx->bad, s.root, s.data, s.dlen);
    EXPECT_FAIL(fx->bad, HYDRA_ERR_FORMAT, "describes", "truncated");
    json_object_set_new(cfg, "vocab_size", json_integer(64));

    /* untied in the config, but the file has no lm_head.weight */
    json_object_set_new(cfg, "d_model", json_integer(32));
    json_object_set_new(cfg, "tie_embeddings", json_integer(0));
    txt = json_dumps(cfg, JSON_COMPACT);
    json_object_set_new(meta, "hydralm.config", json_string(txt));
    free(txt);
    write_st(fx->bad, s.root, s.data, s.dlen);
    EXPECT_FAIL(fx->bad, HYDRA_ERR_MISMATCH, "missing tensor", "lm_head.weight");

    /* a different schedule: layer 1 becomes attention */
    json_object_set_new(cfg, "tie_embeddings", json_integer(1));
    json_object_set_new(cfg, "pattern", json_string("DSSD"));
    txt = json_dumps(cfg, JSON_COMPACT);
    json_object_set_new(meta, "hydralm.config", json_string(txt));
    free(txt);
    write_st(fx->bad, s.root, s.data, s.dlen);
    EXPECT_FAIL(fx->bad, HYDRA_ERR_MISMATCH, "unknown tensor", "blocks.1.gdn");
    json_decref(cfg);
    free_st(&s);
}

static void test_overlap(void **state) {
    fixture *fx = *state;
    st_file s = parse_st(fx->base);
    const char *n = "blocks.0.norm1.weight"; /* follows embed.weight */
    set_offsets(&s, n, off_of(&s, n, 0) - 4, off_of(&s, n, 1) - 4);
    write_st(fx->bad, s.root, s.data, s.dlen);
    EXPECT_FAIL(fx->bad, HYDRA_ERR_FORMAT, "overlap", "embed.weight", n);
    /* two tensors at the same place */
    free_st(&s);
    s = parse_st(fx->base);
    set_offsets(&s, n, off_of(&s, "embed.weight", 0), off_of(&s, "embed.weight", 0) + 4 * 32);
    write_st(fx->bad, s.root, s.data, s.dlen);
    EXPECT_FAIL(fx->bad, HYDRA_ERR_FORMAT, "overlap");
    free_st(&s);
}

static void test_gap(void **state) {
    fixture *fx = *state;
    st_file s = parse_st(fx->base);
    /* move the last tensor 4 bytes later and grow the data to match */
    const char *n = "norm_f.weight";
    set_offsets(&s, n, off_of(&s, n, 0) + 4, off_of(&s, n, 1) + 4);
    memset(s.data + s.dlen, 0, 4);
    write_st(fx->bad, s.root, s.data, s.dlen + 4);
    EXPECT_FAIL(fx->bad, HYDRA_ERR_FORMAT, "gap between", n, "blocks.3.mlp.down_proj.weight");
    free_st(&s);
    /* first tensor not at 0 */
    s = parse_st(fx->base);
    json_t *fresh = json_object();
    json_object_set(fresh, "__metadata__", json_object_get(s.root, "__metadata__"));
    const char *key;
    json_t *val;
    json_object_foreach(s.root, key, val) {
        if (strcmp(key, "__metadata__") == 0) continue;
        json_t *o = json_array_get(json_object_get(val, "data_offsets"), 0);
        json_t *e = json_array_get(json_object_get(val, "data_offsets"), 1);
        json_integer_set(o, json_integer_value(o) + 8);
        json_integer_set(e, json_integer_value(e) + 8);
        json_object_set(fresh, key, val);
    }
    unsigned char *shifted = calloc(1, s.dlen + 8);
    memcpy(shifted + 8, s.data, s.dlen);
    write_st(fx->bad, fresh, shifted, s.dlen + 8);
    EXPECT_FAIL(fx->bad, HYDRA_ERR_FORMAT, "gap before the first tensor", "embed.weight");
    free(shifted);
    json_decref(fresh);
    free_st(&s);
}

static void test_out_of_range(void **state) {
    fixture *fx = *state;
    st_file s = parse_st(fx->base);
    const char *n = "norm_f.weight";
    uint64_t len = off_of(&s, n, 1) - off_of(&s, n, 0);
    set_offsets(&s, n, s.dlen, s.dlen + len); /* end past the data */
    write_st(fx->bad, s.root, s.data, s.dlen);
    EXPECT_FAIL(fx->bad, HYDRA_ERR_FORMAT, "past the end", n);
    uint64_t huge = (uint64_t)1 << 60;
    set_offsets(&s, "embed.weight", huge, huge + off_of(&s, "embed.weight", 1));
    write_st(fx->bad, s.root, s.data, s.dlen);
    EXPECT_FAIL(fx->bad, HYDRA_ERR_FORMAT, "past the end");
    free_st(&s);
}

static void test_bad_offsets(void **state) {
    fixture *fx = *state;
    st_file s = parse_st(fx->base);
    const char *n = "blocks.0.gdn.A_log";
    uint64_t b = off_of(&s, n, 0), e = off_of(&s, n, 1);
    set_offsets(&s, n, b, e + 4); /* byte length != 4 * numel */
    write_st(fx->bad, s.root, s.data, s.dlen);
    EXPECT_FAIL(fx->bad, HYDRA_ERR_FORMAT, "byte length", n);
    set_offsets(&s, n, e, b); /* end before begin */
    write_st(fx->bad, s.root, s.data, s.dlen);
    EXPECT_FAIL(fx->bad, HYDRA_ERR_FORMAT, "end before", n);
    json_object_set_new(tensor_entry(&s, n), "data_offsets", json_pack("[if]", 0, 8.0));
    write_st(fx->bad, s.root, s.data, s.dlen);
    EXPECT_FAIL(fx->bad, HYDRA_ERR_FORMAT, "data_offsets", n);
    json_object_set_new(tensor_entry(&s, n), "data_offsets", json_pack("[ii]", -8, 0));
    write_st(fx->bad, s.root, s.data, s.dlen);
    EXPECT_FAIL(fx->bad, HYDRA_ERR_FORMAT, "data_offsets", n);
    json_object_del(tensor_entry(&s, n), "data_offsets");
    write_st(fx->bad, s.root, s.data, s.dlen);
    EXPECT_FAIL(fx->bad, HYDRA_ERR_FORMAT, "data_offsets", n);
    free_st(&s);
}

static void test_wrong_shape(void **state) {
    fixture *fx = *state;
    st_file s = parse_st(fx->base);
    json_object_set_new(tensor_entry(&s, "embed.weight"), "shape", json_pack("[ii]", 32, 64));
    write_st(fx->bad, s.root, s.data, s.dlen);
    EXPECT_FAIL(fx->bad, HYDRA_ERR_MISMATCH, "embed.weight", "shape [32,64]", "expects [64, 32]");
    json_object_set_new(tensor_entry(&s, "embed.weight"), "shape", json_pack("[ii]", 64, 32));
    json_object_set_new(tensor_entry(&s, "norm_f.weight"), "shape", json_pack("[ii]", 32, 1)); /* rank */
    write_st(fx->bad, s.root, s.data, s.dlen);
    EXPECT_FAIL(fx->bad, HYDRA_ERR_MISMATCH, "norm_f.weight", "shape");
    json_object_del(tensor_entry(&s, "norm_f.weight"), "shape");
    write_st(fx->bad, s.root, s.data, s.dlen);
    EXPECT_FAIL(fx->bad, HYDRA_ERR_MISMATCH, "norm_f.weight", "shape");
    free_st(&s);
}

static void test_missing_tensor(void **state) {
    fixture *fx = *state;
    st_file s = parse_st(fx->base);
    const char *n = "blocks.2.attn.v_proj.weight";
    json_object_del(s.root, n);
    write_st(fx->bad, s.root, s.data, s.dlen);
    EXPECT_FAIL(fx->bad, HYDRA_ERR_MISMATCH, "missing tensor", n);
    free_st(&s);
}

static void test_unknown_tensor(void **state) {
    fixture *fx = *state;
    st_file s = parse_st(fx->base);
    json_object_set_new(s.root, "blocks.9.gdn.q_proj.weight",
                        json_pack("{s:s,s:[ii],s:[II]}", "dtype", "F32", "shape", 32, 32, "data_offsets",
                                  (json_int_t)s.dlen, (json_int_t)(s.dlen + 4096)));
    write_st(fx->bad, s.root, s.data, s.dlen);
    EXPECT_FAIL(fx->bad, HYDRA_ERR_MISMATCH, "unknown tensor", "blocks.9.gdn.q_proj.weight");
    json_object_del(s.root, "blocks.9.gdn.q_proj.weight");
    /* lm_head.weight in a tied checkpoint */
    json_object_set_new(s.root, "lm_head.weight",
                        json_pack("{s:s,s:[ii],s:[II]}", "dtype", "F32", "shape", 64, 32, "data_offsets",
                                  (json_int_t)s.dlen, (json_int_t)(s.dlen + 64 * 32 * 4)));
    write_st(fx->bad, s.root, s.data, s.dlen);
    EXPECT_FAIL(fx->bad, HYDRA_ERR_MISMATCH, "unknown tensor", "lm_head.weight", "tie_embeddings");
    free_st(&s);
}

static void test_wrong_dtype(void **state) {
    fixture *fx = *state;
    st_file s = parse_st(fx->base);
    const char *n = "blocks.1.mlp.gate_proj.weight";
    json_object_set_new(tensor_entry(&s, n), "dtype", json_string("F16"));
    write_st(fx->bad, s.root, s.data, s.dlen);
    EXPECT_FAIL(fx->bad, HYDRA_ERR_FORMAT, "dtype F16", n);
    json_object_set_new(tensor_entry(&s, n), "dtype", json_integer(32));
    write_st(fx->bad, s.root, s.data, s.dlen);
    EXPECT_FAIL(fx->bad, HYDRA_ERR_FORMAT, "dtype", n);
    json_object_set_new(s.root, n, json_string("F32")); /* entry not an object */
    write_st(fx->bad, s.root, s.data, s.dlen);
    EXPECT_FAIL(fx->bad, HYDRA_ERR_FORMAT, "not an object", n);
    free_st(&s);
}

static void nonfinite_case(fixture *fx, float value, const char *word) {
    st_file s = parse_st(fx->base);
    const char *n = "blocks.1.mlp.up_proj.weight";
    size_t at = 37;
    uint64_t b = off_of(&s, n, 0);
    memcpy(s.data + b + at * 4, &value, 4);
    write_st(fx->bad, s.root, s.data, s.dlen);
    EXPECT_FAIL(fx->bad, HYDRA_ERR_FORMAT, n, "element 37", word);
    free_st(&s);
}

static void test_nan_weight(void **state) { nonfinite_case(*state, NAN, "NaN"); }
static void test_inf_weight(void **state) {
    nonfinite_case(*state, INFINITY, "Inf");
    nonfinite_case(*state, -INFINITY, "Inf");
}

/* The unmodified fixture still loads, and the metadata can carry extra keys
 * written by other tools. */
static void test_base_loads(void **state) {
    fixture *fx = *state;
    hydra_model *m = NULL;
    HY_OK(hydra_model_load(fx->base, &m));
    hydra_model_free(m);
    st_file s = parse_st(fx->base);
    json_object_set_new(json_object_get(s.root, "__metadata__"), "format", json_string("pt"));
    write_st(fx->bad, s.root, s.data, s.dlen);
    HY_OK(hydra_model_load(fx->bad, &m));
    hydra_model_free(m);
    free_st(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_tiny),
        cmocka_unit_test(test_round_trip_untied),
        cmocka_unit_test(test_round_trip_full_attention),
        cmocka_unit_test(test_any_order),
        cmocka_unit_test(test_overwrite_is_atomic_replace),
        cmocka_unit_test(test_save_errors),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_base_loads),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_wrong_header_length),
        cmocka_unit_test(test_invalid_json),
        cmocka_unit_test(test_bad_metadata),
        cmocka_unit_test(test_config_disagrees_with_tensors),
        cmocka_unit_test(test_overlap),
        cmocka_unit_test(test_gap),
        cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_bad_offsets),
        cmocka_unit_test(test_wrong_shape),
        cmocka_unit_test(test_missing_tensor),
        cmocka_unit_test(test_unknown_tensor),
        cmocka_unit_test(test_wrong_dtype),
        cmocka_unit_test(test_nan_weight),
        cmocka_unit_test(test_inf_weight),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

/* config.c — model hyperparameters: defaults, validation, JSON round trip. */
#include <float.h>
#include <jansson.h>
#include <math.h>

#include "core/fileio.h"
#include "core/internal.h"

hydra_config hydra_config_default(void) {
    hydra_config c;
    memset(&c, 0, sizeof c);
    c.d_model = 768;
    c.n_layers = 12;
    c.n_heads = 12;
    c.head_dim = 64;
    c.vocab_size = 256;
    c.swa_every = 4;
    c.window = 512;
    c.conv_width = 4;
    c.mlp_multiple = 64;
    c.norm_eps = 1e-5f;
    c.l2_eps = 1e-6f;
    c.tie_embeddings = 1;
    c.init_std = 0.02f;
    c.rope_base = 10000.0f;
    c.init_dt_min = 1e-3f;
    c.init_dt_max = 1e-1f;
    return c;
}

int hydra_config_head_dim(const hydra_config *c) {
    return c->head_dim > 0 ? c->head_dim : (c->n_heads > 0 ? c->d_model / c->n_heads : 0);
}

int hydra_config_mlp_hidden(const hydra_config *c) {
    /* 64-bit: a hostile mlp_multiple must not wrap to a width of 0; a config
     * that passes hydra_config_validate gives at most 196608. */
    int64_t m = c->mlp_multiple > 0 ? c->mlp_multiple : 1;
    int64_t f = (8 * (int64_t)c->d_model + 2) / 3; /* ceil(8C/3) */
    int64_t F = (f + m - 1) / m * m;
    return F > INT32_MAX ? INT32_MAX : (int)F;
}

char hydra_config_layer_kind(const hydra_config *c, int i) {
    if (c->pattern[0]) {
        size_t n = strlen(c->pattern);
        return c->pattern[(size_t)i % n]; /* a short pattern repeats */
    }
    if (c->swa_every > 0 && (i + 1) % c->swa_every == 0) return HYDRA_LAYER_SWA;
    return HYDRA_LAYER_DELTANET;
}

#define CFG_FAIL(...) return hydra_set_error(HYDRA_ERR_CONFIG, __VA_ARGS__)

hydra_status hydra_config_validate(const hydra_config *c) {
    if (!c) return hydra_set_error(HYDRA_ERR_ARG, "config is NULL");
    if (c->d_model <= 0 || c->d_model > 65536) CFG_FAIL("d_model must be in 1..65536 (got %d)", c->d_model);
    if (c->n_layers <= 0 || c->n_layers > HYDRA_MAX_LAYERS)
        CFG_FAIL("n_layers must be in 1..%d (got %d)", HYDRA_MAX_LAYERS, c->n_layers);
    if (c->n_heads <= 0 || c->n_heads > c->d_model)
        CFG_FAIL("n_heads must be in 1..d_model (got %d)", c->n_heads);
    if (c->head_dim < 0 || c->head_dim > 4096) CFG_FAIL("head_dim must be in 0..4096 (got %d)", c->head_dim);
    if (c->head_dim == 0 && c->d_model % c->n_heads != 0)
        CFG_FAIL("head_dim is 0 (auto) but d_model %d is not divisible by n_heads %d", c->d_model, c->n_heads);
    if (c->vocab_size <= 0 || c->vocab_size > (1 << 24)) CFG_FAIL("vocab_size must be in 1..16777216 (got %d)", c->vocab_size);
    if (c->swa_every < 0) CFG_FAIL("swa_every must be >= 0 (got %d)", c->swa_every);
    if (c->window < 0 || c->window > HYDRA_MAX_WINDOW)
        CFG_FAIL("window must be in 0..%d, 0 = unbounded (got %d)", HYDRA_MAX_WINDOW, c->window);
    if (c->conv_width < 1 || c->conv_width > 64) CFG_FAIL("conv_width must be in 1..64 (got %d)", c->conv_width);
    if (c->mlp_multiple < 1 || c->mlp_multiple > 65536)
        CFG_FAIL("mlp_multiple must be in 1..65536 (got %d)", c->mlp_multiple);
    if (!(c->norm_eps > 0 && c->norm_eps < 1)) CFG_FAIL("norm_eps must be in (0, 1) (got %g)", c->norm_eps);
    if (!(c->l2_eps > 0 && c->l2_eps < 1)) CFG_FAIL("l2_eps must be in (0, 1) (got %g)", c->l2_eps);
    if (c->tie_embeddings != 0 && c->tie_embeddings != 1) CFG_FAIL("tie_embeddings must be 0 or 1 (got %d)", c->tie_embeddings);
    if (!(c->init_std > 0 && c->init_std < 10)) CFG_FAIL("init_std must be in (0, 10) (got %g)", c->init_std);
    if (!(c->rope_base > 1 && isfinite(c->rope_base))) CFG_FAIL("rope_base must be finite and > 1 (got %g)", c->rope_base);
    if (!(c->init_dt_min >= 1e-6f && c->init_dt_min <= c->init_dt_max && c->init_dt_max <= 10))
        CFG_FAIL("init_dt_min, init_dt_max must satisfy 1e-6 <= min <= max <= 10 (got %g, %g)", c->init_dt_min, c->init_dt_max);
    size_t plen = strnlen(c->pattern, sizeof c->pattern);
    if (plen == sizeof c->pattern) CFG_FAIL("pattern is longer than %d layers", HYDRA_MAX_LAYERS);
    for (size_t i = 0; i < plen; i++) {
        char k = c->pattern[i];
        if (k != HYDRA_LAYER_DELTANET && k != HYDRA_LAYER_SWA && k != HYDRA_LAYER_ATTN)
            CFG_FAIL("pattern has invalid layer kind '%c' at %zu (use D, S or A)", k, i);
    }
    if (plen > 0 && plen != (size_t)c->n_layers && c->n_layers % (int)plen != 0)
        CFG_FAIL("pattern length %zu does not divide n_layers %d", plen, c->n_layers);
    /* RoPE rotates pairs: an odd head dim could be saved and loaded, but no
     * attention layer could ever run on it. */
    int hd = hydra_config_head_dim(c);
    for (int i = 0; hd % 2 && i < c->n_layers; i++)
        if (hydra_config_layer_kind(c, i) != HYDRA_LAYER_DELTANET)
            CFG_FAIL("head_dim %d is odd, but layer %d is attention (RoPE needs an even head dim)", hd, i);
    return HYDRA_OK;
}

/* ------------------------------------------------------------------ JSON */
typedef enum { F_INT, F_FLOAT } field_type;
typedef struct {
    const char *key;
    field_type type;
    size_t off;
} field_desc;

#define FI(name) {#name, F_INT, offsetof(hydra_config, name)}
#define FF(name) {#name, F_FLOAT, offsetof(hydra_config, name)}
static const field_desc k_fields[] = {
    FI(d_model), FI(n_layers), FI(n_heads), FI(head_dim), FI(vocab_size), FI(swa_every),
    FI(window), FI(conv_width), FI(mlp_multiple), FF(norm_eps), FF(l2_eps),
    FI(tie_embeddings), FF(init_std), FF(rope_base), FF(init_dt_min), FF(init_dt_max),
};
#define N_FIELDS (sizeof k_fields / sizeof k_fields[0])

hydra_status hydra_config_from_json(const char *text, hydra_config *c) {
    if (!text || !c) return hydra_set_error(HYDRA_ERR_ARG, "config_from_json: NULL argument");
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    if (!root) return hydra_set_error(HYDRA_ERR_FORMAT, "config JSON: %s (line %d)", jerr.text, jerr.line);
    hydra_status st = HYDRA_OK;
    if (!json_is_object(root)) {
        st = hydra_set_error(HYDRA_ERR_FORMAT, "config JSON must be an object");
        goto done;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "pattern") == 0 || strcmp(key, "format_version") == 0 ||
            strcmp(key, "layers") == 0)
            continue;
        size_t i = 0;
        while (i < N_FIELDS && strcmp(k_fields[i].key, key) != 0) i++;
        if (i == N_FIELDS) {
            st = hydra_set_error(HYDRA_ERR_CONFIG, "config JSON: unknown field \"%s\"", key);
            goto done;
        }
        char *dst = (char *)c + k_fields[i].off;
        if (k_fields[i].type == F_INT) {
            if (!json_is_integer(val) || json_integer_value(val) < -2147483647LL ||
                json_integer_value(val) > 2147483647LL) {
                st = hydra_set_error(HYDRA_ERR_CONFIG, "config JSON: field \"%s\" must be an integer", key);
                goto done;
            }
            *(int *)dst = (int)json_integer_value(val);
        } else {
            double d = json_is_number(val) ? json_number_value(val) : NAN;
            if (!(fabs(d) <= FLT_MAX)) { /* 1e39 would become float infinity (converting it is UB in C) */
                st = hydra_set_error(HYDRA_ERR_CONFIG, "config JSON: field \"%s\" must be a finite number within "
                                     "float range (|x| < 3.4e38)", key);
                goto done;
            }
            *(float *)dst = (float)d;
        }
    }
    json_t *pat = json_object_get(root, "pattern");
    if (pat) {
        if (!json_is_string(pat) || json_string_length(pat) > HYDRA_MAX_LAYERS) {
            st = hydra_set_error(HYDRA_ERR_CONFIG, "config JSON: field \"pattern\" must be a string of at most %d layer kinds", HYDRA_MAX_LAYERS);
            goto done;
        }
        snprintf(c->pattern, sizeof c->pattern, "%s", json_string_value(pat));
    }
    st = hydra_config_validate(c);
done:
    json_decref(root);
    return st;
}

hydra_status hydra_config_load_json(const char *path, hydra_config *c) {
    if (!path || !c) return hydra_set_error(HYDRA_ERR_ARG, "config_load_json: NULL argument");
    uint8_t *buf;
    size_t len;
    HYDRA_CHECK(hydra_read_file(path, "config", (size_t)64 << 20, &buf, &len));
    buf[len] = '\0'; /* hydra_read_file leaves room for it */
    hydra_status st = hydra_config_from_json((const char *)buf, c);
    free(buf);
    return st;
}

hydra_status hydra_config_to_json(const hydra_config *c, char **out) {
    if (!c || !out) return hydra_set_error(HYDRA_ERR_ARG, "config_to_json: NULL argument");
    *out = NULL;
    json_t *o = json_object();
    if (!o) return hydra_set_error(HYDRA_ERR_NOMEM, "out of memory");
    /* json_object_set_new fails (and frees nothing it was not given) when the
     * value is NULL: json_real refuses NaN/Inf, json_string invalid UTF-8.
     * Any failure fails the whole call: a field silently dropped here would
     * come back as its default on load. */
    int bad = json_object_set_new(o, "format_version", json_integer(1));
    for (size_t i = 0; i < N_FIELDS; i++) {
        const char *src = (const char *)c + k_fields[i].off;
        if (k_fields[i].type == F_INT)
            bad |= json_object_set_new(o, k_fields[i].key, json_integer(*(const int *)src));
        else /* float -> double is exact, and %.9g-style output round-trips */
            bad |= json_object_set_new(o, k_fields[i].key, json_real(*(const float *)src));
    }
    bad |= json_object_set_new(o, "pattern", json_string(c->pattern));
    /* The resolved schedule, for humans and other tools; ignored on load. */
    char layers[HYDRA_MAX_LAYERS + 1];
    int L = c->n_layers > 0 && c->n_layers <= HYDRA_MAX_LAYERS ? c->n_layers : 0;
    for (int i = 0; i < L; i++) layers[i] = hydra_config_layer_kind(c, i);
    layers[L] = '\0';
    bad |= json_object_set_new(o, "layers", json_string(layers));
    if (!bad) *out = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(o);
    if (bad)
        return hydra_set_error(HYDRA_ERR_CONFIG, "config_to_json: a field cannot be written as JSON (a float that "
                               "is NaN or Inf, or a pattern that is not text); validate the config first");
    if (!*out) return hydra_set_error(HYDRA_ERR_NOMEM, "out of memory");
    return HYDRA_OK;
}

/* safetensors.c — model checkpoints in the safetensors format (DESIGN §4).
 *
 * Layout:  [u64 LE header length N] [N bytes JSON header, space padded] [data]
 * Header:  { "__metadata__": { "hydralm.config": "<config JSON>",
 *                              "hydralm.format_version": "1" },
 *            "<tensor name>": { "dtype": "F32", "shape": [...],
 *                               "data_offsets": [begin, end] }, ... }
 * Offsets are in bytes relative to the start of the data region, which begins
 * at 8 + N; N is padded so that the data start is 8-byte aligned. Tensors are
 * written in parameter-table (arena) order, contiguous, as little-endian f32.
 *
 * The loader trusts nothing in the file: every length, offset, shape, name
 * and value is checked, and any inconsistency is reported as a message
 * (hydra_last_error) rather than a crash. See docs/formats.md. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "core/fileio.h"
#include "backend/backend.h"
#include "core/internal.h"

/* Tensor data is copied between the arena and the file byte for byte, which
 * is only correct on a little-endian host with IEEE-754 binary32 floats. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "safetensors.c assumes a little-endian host (data is written as LE f32)");
_Static_assert(sizeof(float) == 4, "float must be IEEE-754 binary32");

#define ST_FORMAT_VERSION "1"       /* f32 tensors */
#define ST_FORMAT_VERSION_QUANT "2" /* quantised matrices + scales (docs/formats.md) */
#define ST_MAX_HEADER 100000000ULL /* 100 MB, the safetensors reference limit */

/* ------------------------------------------------------- file tensors */
/* One tensor of a file: a parameter in f32, or a quantised matrix's values
 * (I8 for int8, U8 nibble pairs for int4: [rows, row bytes]) and its scales
 * (BF16 [rows, blocks], named "<matrix>.scale"). */
typedef struct {
    char name[80];
    const char *dtype;
    int ndim;
    int64_t shape[2];
    uint64_t nbytes;
    int info; /* parameter index */
    int part; /* 0: the tensor (f32 data or quantised values), 1: a quantised tensor's scales */
} st_entry;

/* The tensors of m's file, in arena order: quantised matrices as two entries
 * when `quant_file`, else every parameter as F32. Returns the count; out may
 * be NULL to count only. */
static int file_entries(const hydra_model *m, int quant_file, st_entry *out) {
    int n = 0;
    for (int i = 0; i < m->n_info; i++) {
        const hydra_param_info *p = &m->info[i];
        int q = quant_file && p->quant;
        for (int part = 0; part <= q; part++, n++) {
            if (!out) continue;
            st_entry *e = &out[n];
            snprintf(e->name, sizeof e->name, "%s%s", p->name, part ? ".scale" : "");
            e->info = i;
            e->part = part;
            e->ndim = p->ndim;
            e->shape[0] = p->shape[0];
            e->shape[1] = p->shape[1];
            if (!q) {
                e->dtype = "F32";
                e->nbytes = (uint64_t)p->numel * 4u;
                continue;
            }
            int K = (int)p->shape[1];
            e->dtype = part ? "BF16" : p->quant == HYDRA_QUANT_INT8 ? "I8" : "U8";
            e->shape[1] = part ? hydra_quant_row_blocks(K) : (int64_t)hydra_quant_row_bytes((hydra_quant)p->quant, K);
            e->nbytes = (uint64_t)e->shape[0] * (uint64_t)e->shape[1] * (part ? 2u : 1u);
        }
    }
    return n;
}

/* Where an entry's bytes live in the model. */
static void *entry_data(const hydra_model *m, const st_entry *e) {
    const hydra_param_info *p = &m->info[e->info];
    if (e->part) return m->qscale + p->qscale;
    return p->quant ? (void *)(m->qdata + p->store) : (void *)(m->params + p->store);
}

/* ------------------------------------------------------------------ save */

/* Scan a tensor for NaN/Inf by bit pattern (immune to -ffast-math).
 * Returns the index of the first non-finite element, or n if none; *is_nan
 * tells which kind it was. */
static size_t find_nonfinite(const float *x, size_t n, int *is_nan) {
    const uint32_t *u = (const uint32_t *)(const void *)x;
    for (size_t i = 0; i < n; i++) {
        if ((u[i] & 0x7f800000u) == 0x7f800000u) {
            *is_nan = (u[i] & 0x007fffffu) != 0;
            return i;
        }
    }
    return n;
}

/* Build the padded header text for model m. On success *out is malloc'd and
 * *len (a multiple of 8) is its length; the text is not NUL-terminated. */
static hydra_status build_header(const hydra_model *m, const st_entry *ents, int n_ent, char **out, size_t *len) {
    *out = NULL;
    char *cfg_json = NULL;
    HYDRA_CHECK(hydra_config_to_json(&m->cfg, &cfg_json));
    json_t *root = json_object(), *meta = json_object();
    hydra_status st = HYDRA_OK;
    int bad = !root || !meta;
    if (!bad) {
        bad |= json_object_set_new(meta, "hydralm.config", json_string(cfg_json));
        bad |= json_object_set_new(meta, "hydralm.format_version",
                                   json_string(m->quant ? ST_FORMAT_VERSION_QUANT : ST_FORMAT_VERSION));
        if (m->quant) { /* the f32 model's fingerprint: state files stay interchangeable */
            char fp[24];
            snprintf(fp, sizeof fp, "%016llx", (unsigned long long)m->fingerprint);
            bad |= json_object_set_new(meta, "hydralm.quant", json_string(hydra_quant_name((hydra_quant)m->quant)));
            bad |= json_object_set_new(meta, "hydralm.fingerprint", json_string(fp));
        }
        bad |= json_object_set(root, "__metadata__", meta);
    }
    hydra_free(cfg_json);
    uint64_t off = 0; /* bytes */
    for (int t = 0; !bad && t < n_ent; t++) {
        const st_entry *en = &ents[t];
        json_t *e = json_object(), *shape = json_array(), *offs = json_array();
        bad |= !e || !shape || !offs;
        if (!bad) {
            for (int d = 0; d < en->ndim; d++) bad |= json_array_append_new(shape, json_integer(en->shape[d]));
            uint64_t end = off + en->nbytes;
            bad |= json_array_append_new(offs, json_integer((json_int_t)off));
            bad |= json_array_append_new(offs, json_integer((json_int_t)end));
            bad |= json_object_set_new(e, "dtype", json_string(en->dtype));
            bad |= json_object_set(e, "shape", shape);
            bad |= json_object_set(e, "data_offsets", offs);
            bad |= json_object_set(root, en->name, e);
            off = end;
        }
        json_decref(e);
        json_decref(shape);
        json_decref(offs);
    }
    char *text = bad ? NULL : json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(meta);
    json_decref(root);
    if (!text) return hydra_set_error(HYDRA_ERR_NOMEM, "checkpoint: out of memory building the header");
    size_t n = strlen(text);
    size_t padded = (n + 7) & ~(size_t)7; /* 8 + padded is a multiple of 8 */
    char *buf = malloc(padded ? padded : 8);
    if (!buf) {
        free(text);
        return hydra_set_error(HYDRA_ERR_NOMEM, "checkpoint: out of memory building the header");
    }
    memcpy(buf, text, n);
    memset(buf + n, ' ', padded - n);
    free(text);
    *out = buf;
    *len = padded;
    return st;
}

hydra_status hydra_model_save(const hydra_model *m, const char *path) {
    if (!m || !path) return hydra_set_error(HYDRA_ERR_ARG, "model_save: NULL argument");
    if (!path[0]) return hydra_set_error(HYDRA_ERR_ARG, "model_save: empty path");
    if (!m->quant) HYDRA_CHECK(hydra_require_f32(m, "model_save")); /* a quantised model saves its own format */
    /* A model trained on a GPU holds its current weights there: the host
     * arena (a mirror, not the model's meaning) is refreshed first. */
    if (m->dev) HYDRA_CHECK(hydra_dev_train_download((hydra_model *)m));

    /* A checkpoint with NaN/Inf could never be loaded back: refuse it here
     * rather than atomically replacing a good file with an unloadable one. */
    for (int t = 0; t < m->n_info; t++) {
        const hydra_param_info *p = &m->info[t];
        if (p->quant) continue; /* finite by construction */
        int is_nan = 0;
        size_t i = find_nonfinite(m->params + p->store, p->numel, &is_nan);
        if (i < p->numel)
            return hydra_set_error(HYDRA_ERR_ARG,
                                   "model_save %s: tensor \"%s\" element %zu is %s; refusing to "
                                   "write a checkpoint that cannot be loaded",
                                   path, p->name, i, is_nan ? "NaN" : "Inf");
    }

    int n_ent = file_entries(m, 1, NULL);
    st_entry *ents = malloc((size_t)n_ent * sizeof *ents);
    if (!ents) return hydra_set_error(HYDRA_ERR_NOMEM, "model_save: out of memory");
    file_entries(m, 1, ents);
    char *header = NULL;
    size_t hlen = 0;
    hydra_status st = build_header(m, ents, n_ent, &header, &hlen);
    hydra_afile f;
    if (st == HYDRA_OK) st = hydra_afile_open(&f, path);
    if (st != HYDRA_OK) {
        free(header);
        free(ents);
        return st;
    }
    f.hashing = 0; /* safetensors has no checksum field */
    unsigned char prefix[8];
    for (int i = 0; i < 8; i++) prefix[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    hydra_afile_write(&f, prefix, 8);
    hydra_afile_write(&f, header, hlen);
    for (int t = 0; t < n_ent; t++) hydra_afile_write(&f, entry_data(m, &ents[t]), (size_t)ents[t].nbytes);
    free(header);
    free(ents);
    return hydra_afile_commit(&f);
}

/* ------------------------------------------------------------------ load */

/* One expected tensor, as found in the file. */
typedef struct {
    uint64_t begin, end; /* byte offsets into the data region */
    int seen;
} file_entry;

/* Sort records carry their own keys, so the comparators need no globals and
 * load stays thread-safe. */
typedef struct {
    const char *name;
    int idx;
} name_rec;
typedef struct {
    uint64_t begin, end;
    int idx;
} off_rec;

static int cmp_name(const void *a, const void *b) {
    return strcmp(((const name_rec *)a)->name, ((const name_rec *)b)->name);
}
static int cmp_off(const void *a, const void *b) {
    const off_rec *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x->idx - y->idx;
}

static void fmt_shape(char *buf, size_t cap, const int64_t *shape, int ndim) {
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < ndim && n < cap; d++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

static void fmt_json_shape(char *buf, size_t cap, const json_t *shape) {
    char *s = json_is_array(shape) ? json_dumps(shape, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    snprintf(buf, cap, "%s", s ? s : "(not an array)");
    free(s);
}

#define LOAD_FAIL(code, ...)                              \
    do {                                                  \
        st = hydra_set_error((code), __VA_ARGS__);        \
        goto done;                                        \
    } while (0)

/* Read the tensors of a bf16-only or quantised model from an f32 file in
 * arena order (seeking when the file orders them differently): f32 tensors
 * straight into the arena, matrices through a bounce buffer into bf16 or
 * their quantised rows (whole rows per chunk, since a block never spans two),
 * hashing the f32 bytes on the way so the fingerprint is the f32 file's.
 * Peak memory: the reduced model + a bounce buffer of max(64K floats, 1 row). */
#define BOUNCE_FLOATS 65536
static hydra_status read_reduced(FILE *f, const char *P, uint64_t data_start, const file_entry *ent, hydra_model *m) {
    size_t cap = BOUNCE_FLOATS;
    for (int i = 0; i < m->n_info; i++)
        if (m->info[i].quant && (size_t)m->info[i].shape[1] > cap) cap = (size_t)m->info[i].shape[1];
    float *bounce = malloc(cap * sizeof(float));
    if (!bounce) return hydra_set_error(HYDRA_ERR_NOMEM, "checkpoint %s: out of memory", P);
    uint64_t h = hydra_fingerprint_begin(&m->cfg);
    hydra_status st = HYDRA_OK;
    for (int i = 0; i < m->n_info && !st; i++) {
        const hydra_param_info *p = &m->info[i];
        const size_t K = p->quant ? (size_t)p->shape[1] : 1, chunk = cap / K * K;
        if (fseeko(f, (off_t)(data_start + ent[i].begin), SEEK_SET) != 0) {
            st = hydra_set_error(HYDRA_ERR_IO, "checkpoint %s: seek error in tensor \"%s\"", P, p->name);
            break;
        }
        for (size_t done = 0; done < p->numel && !st;) {
            size_t n = p->numel - done < chunk ? p->numel - done : chunk;
            float *dst = p->bf16 || p->quant ? bounce : m->params + p->store + done;
            int is_nan = 0;
            size_t bad;
            if (fread(dst, sizeof(float), n, f) != n)
                st = hydra_set_error(HYDRA_ERR_IO, "checkpoint %s: read error in tensor \"%s\"%s", P, p->name,
                                     feof(f) ? " (file shrank while reading?)" : "");
            else if ((bad = find_nonfinite(dst, n, &is_nan)) < n)
                st = hydra_set_error(HYDRA_ERR_FORMAT, "checkpoint %s: tensor \"%s\" element %zu is %s", P, p->name,
                                     done + bad, is_nan ? "NaN" : "Inf");
            else {
                h = hydra_fnv1a(h, dst, n * sizeof(float));
                if (p->bf16)
                    for (size_t j = 0; j < n; j++) m->bf16[p->store + done + j] = hydra_f32_to_bf16(bounce[j]);
                if (p->quant) {
                    size_t r0 = done / K;
                    hydra_quantize_rows((hydra_quant)p->quant, (int)(n / K), (int)K, bounce,
                                        m->qdata + p->store + r0 * hydra_quant_row_bytes((hydra_quant)p->quant, (int)K),
                                        m->qscale + p->qscale + r0 * (size_t)hydra_quant_row_blocks((int)K));
                }
                done += n;
            }
        }
    }
    free(bounce);
    if (st) return st;
    m->fingerprint = h;
    return HYDRA_OK;
}

/* A tied head's own bf16 or quantised copy of the (f32) embedding. */
static void tied_head_copy(hydra_model *m) {
    if (!m->cfg.tie_embeddings) return;
    const int V = m->cfg.vocab_size, C = m->cfg.d_model;
    if (m->bf16_only) {
        uint16_t *head = (uint16_t *)m->lm_head_h;
        for (size_t j = 0; j < (size_t)V * C; j++) head[j] = hydra_f32_to_bf16(m->embed[j]);
    }
    if (m->quant)
        hydra_quantize_rows((hydra_quant)m->quant, V, C, m->embed, (void *)m->lm_head_q.q, (uint16_t *)m->lm_head_q.d);
}

/* Check the bytes of one tensor as read: f32 finite, int8 values in
 * [-127, 127] (the AVX2 kernel negates them), bf16 scales finite. */
static hydra_status check_entry_data(const char *P, const st_entry *e, const void *data) {
    size_t n = (size_t)e->nbytes, i = 0;
    const char *what = NULL;
    int is_nan = 0;
    if (!strcmp(e->dtype, "F32")) {
        if ((i = find_nonfinite(data, n / 4, &is_nan)) < n / 4) what = is_nan ? "NaN" : "Inf";
    } else if (!strcmp(e->dtype, "I8")) {
        for (i = 0; i < n && !what; i++)
            if (((const int8_t *)data)[i] == -128) what = "-128 (int8 values are in [-127, 127])";
        i--;
    } else if (!strcmp(e->dtype, "BF16")) {
        for (i = 0; i < n / 2 && !what; i++)
            if ((((const uint16_t *)data)[i] & 0x7f80u) == 0x7f80u) what = "NaN or Inf";
        i--;
    }
    if (!what) return HYDRA_OK;
    return hydra_set_error(HYDRA_ERR_FORMAT, "checkpoint %s: tensor \"%s\" element %zu is %s", P, e->name, i, what);
}

/* want: HYDRA_STORE_* for the matrices, or -1: as the file holds them. */
static hydra_status load_impl(const char *path, int want, hydra_model **out) {
    if (!out) return hydra_set_error(HYDRA_ERR_ARG, "model_load: out pointer is NULL");
    *out = NULL;
    if (!path) return hydra_set_error(HYDRA_ERR_ARG, "model_load: path is NULL");

    hydra_status st = HYDRA_OK;
    FILE *f = NULL;
    char *header = NULL;
    json_t *root = NULL;
    hydra_model *m = NULL;
    file_entry *ent = NULL;
    st_entry *fe = NULL;
    name_rec *names = NULL;
    off_rec *order = NULL;
    int n_order = 0;
    const char *P = path;

    uint64_t fsize;
    if ((st = hydra_open_regular(path, "checkpoint", &f, &fsize)) != HYDRA_OK) goto done;

    /* ---- length prefix and header */
    if (fsize < 8)
        LOAD_FAIL(HYDRA_ERR_FORMAT,
                  "checkpoint %s: file is too short (%llu bytes; a safetensors file starts with an "
                  "8-byte header length)", P, (unsigned long long)fsize);
    unsigned char prefix[8];
    if (fread(prefix, 1, 8, f) != 8) LOAD_FAIL(HYDRA_ERR_IO, "checkpoint %s: read error", P);
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)prefix[i] << (8 * i);
    if (hlen == 0 || hlen > fsize - 8 || hlen > ST_MAX_HEADER)
        LOAD_FAIL(HYDRA_ERR_FORMAT,
                  "checkpoint %s: wrong header length %llu (%llu bytes follow the 8-byte prefix, "
                  "limit %llu; file truncated or not safetensors?)",
                  P, (unsigned long long)hlen, (unsigned long long)(fsize - 8), ST_MAX_HEADER);
    header = malloc((size_t)hlen);
    if (!header) LOAD_FAIL(HYDRA_ERR_NOMEM, "checkpoint %s: out of memory for a %llu-byte header", P, (unsigned long long)hlen);
    if (fread(header, 1, (size_t)hlen, f) != (size_t)hlen)
        LOAD_FAIL(HYDRA_ERR_IO, "checkpoint %s: read error in the header", P);
    uint64_t data_avail = fsize - 8 - hlen; /* bytes after the header */

    json_error_t jerr;
    root = json_loadb(header, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        LOAD_FAIL(HYDRA_ERR_FORMAT, "checkpoint %s: invalid JSON header: %s (at byte %d)", P, jerr.text,
                  jerr.position);
    if (!json_is_object(root)) LOAD_FAIL(HYDRA_ERR_FORMAT, "checkpoint %s: JSON header is not an object", P);

    /* ---- metadata and config */
    json_t *meta = json_object_get(root, "__metadata__");
    if (!meta) LOAD_FAIL(HYDRA_ERR_FORMAT, "checkpoint %s: no __metadata__ in the header (not a HydraLM checkpoint?)", P);
    if (!json_is_object(meta)) LOAD_FAIL(HYDRA_ERR_FORMAT, "checkpoint %s: __metadata__ is not an object", P);
    json_t *ver = json_object_get(meta, "hydralm.format_version");
    if (!ver || !json_is_string(ver))
        LOAD_FAIL(HYDRA_ERR_FORMAT, "checkpoint %s: __metadata__ has no string \"hydralm.format_version\"", P);
    int file_quant = HYDRA_QUANT_NONE;
    uint64_t file_fp = 0;
    if (strcmp(json_string_value(ver), ST_FORMAT_VERSION_QUANT) == 0) {
        json_t *qj = json_object_get(meta, "hydralm.quant"), *fj = json_object_get(meta, "hydralm.fingerprint");
        hydra_quant q = HYDRA_QUANT_NONE;
        if (!qj || !json_is_string(qj))
            LOAD_FAIL(HYDRA_ERR_FORMAT, "checkpoint %s: format_version 2 without a string \"hydralm.quant\"", P);
        if (hydra_quant_parse(json_string_value(qj), &q) != HYDRA_OK || q == HYDRA_QUANT_NONE)
            LOAD_FAIL(HYDRA_ERR_FORMAT, "checkpoint %s: unknown quantisation \"%.32s\" (this build reads int8 and int4)",
                      P, json_string_value(qj));
        char *end = NULL;
        const char *fs = fj && json_is_string(fj) ? json_string_value(fj) : "";
        file_fp = strtoull(fs, &end, 16);
        if (strlen(fs) != 16 || *end)
            LOAD_FAIL(HYDRA_ERR_FORMAT, "checkpoint %s: a quantised checkpoint needs \"hydralm.fingerprint\" "
                      "(16 hex digits: the f32 model's)", P);
        file_quant = q;
    } else if (strcmp(json_string_value(ver), ST_FORMAT_VERSION) != 0) {
        LOAD_FAIL(HYDRA_ERR_FORMAT, "checkpoint %s: unsupported hydralm.format_version \"%.32s\" (this build reads "
                  "\"%s\" and \"%s\" (quantised))", P, json_string_value(ver), ST_FORMAT_VERSION, ST_FORMAT_VERSION_QUANT);
    }
    int mode = want < 0 ? HYDRA_STORE_F32 : want;
    if (file_quant) {
        mode = hydra_store_of_quant(file_quant);
        if (want >= 0 && want != mode)
            LOAD_FAIL(HYDRA_ERR_MISMATCH,
                      "checkpoint %s holds %s-quantised matrices: it loads only as it is, for inference "
                      "(hydra_model_load_quant with HYDRA_QUANT_%s or NONE; hydra --quant %s); train, convert or "
                      "requantise from the f32 checkpoint", P, hydra_quant_name((hydra_quant)file_quant),
                      file_quant == HYDRA_QUANT_INT8 ? "INT8" : "INT4", hydra_quant_name((hydra_quant)file_quant));
    }
    json_t *cj = json_object_get(meta, "hydralm.config");
    if (!cj || !json_is_string(cj))
        LOAD_FAIL(HYDRA_ERR_FORMAT, "checkpoint %s: __metadata__ has no string \"hydralm.config\"", P);
    hydra_config cfg = hydra_config_default();
    st = hydra_config_from_json(json_string_value(cj), &cfg);
    if (st != HYDRA_OK) LOAD_FAIL(st, "checkpoint %s: bad hydralm.config: %s", P, hydra_last_error());
    /* The parameter table only: no weights are allocated until the file's
     * whole tensor table has been checked against it and found to tile the
     * data region exactly, so a weight allocation never exceeds the file. */
    st = hydra_model_plan(&cfg, mode, &m);
    if (st != HYDRA_OK) LOAD_FAIL(st, "checkpoint %s: %s", P, hydra_last_error());
    int n = file_entries(m, file_quant != HYDRA_QUANT_NONE, NULL);
    fe = malloc((size_t)n * sizeof *fe);
    if (!fe) LOAD_FAIL(HYDRA_ERR_NOMEM, "checkpoint %s: out of memory", P);
    file_entries(m, file_quant != HYDRA_QUANT_NONE, fe);
    /* A config far larger than the file gets one clear message up front;
     * smaller disagreements get the per-tensor diagnostics below. */
    uint64_t described = 0; /* <= 4 * n_params <= 2^40 */
    for (int i = 0; i < n; i++) described += fe[i].nbytes;
    if (described > data_avail && described > ((uint64_t)64 << 20))
        LOAD_FAIL(HYDRA_ERR_FORMAT,
                  "checkpoint %s: hydralm.config describes %llu bytes of weights but only %llu bytes follow "
                  "the header (file truncated, or the config disagrees with the tensors)", P,
                  (unsigned long long)described, (unsigned long long)data_avail);

    /* ---- tensor entries */
    ent = calloc((size_t)n, sizeof *ent);
    names = malloc((size_t)n * sizeof *names);
    order = malloc((size_t)n * sizeof *order);
    if (!ent || !names || !order) LOAD_FAIL(HYDRA_ERR_NOMEM, "checkpoint %s: out of memory", P);
    for (int i = 0; i < n; i++) names[i] = (name_rec){fe[i].name, i};
    qsort(names, (size_t)n, sizeof *names, cmp_name);

    const char *key;
    json_t *e;
    json_object_foreach(root, key, e) {
        if (strcmp(key, "__metadata__") == 0) continue;
        name_rec k = {key, 0}, *hit = bsearch(&k, names, (size_t)n, sizeof *names, cmp_name);
        if (!hit) {
            if (strcmp(key, "lm_head.weight") == 0 && cfg.tie_embeddings)
                LOAD_FAIL(HYDRA_ERR_MISMATCH,
                          "checkpoint %s: unknown tensor \"lm_head.weight\" (the config has tied "
                          "embeddings, tie_embeddings = 1)", P);
            LOAD_FAIL(HYDRA_ERR_MISMATCH, "checkpoint %s: unknown tensor \"%.100s\" (not in the model "
                      "described by hydralm.config%s)", P, key,
                      file_quant ? "" : "; a quantised checkpoint's scales need hydralm.format_version 2");
        }
        const st_entry *x = &fe[hit->idx];
        if (!json_is_object(e)) LOAD_FAIL(HYDRA_ERR_FORMAT, "checkpoint %s: entry for tensor \"%s\" is not an object", P, key);
        json_t *dt = json_object_get(e, "dtype");
        if (!dt || !json_is_string(dt))
            LOAD_FAIL(HYDRA_ERR_FORMAT, "checkpoint %s: tensor \"%s\" has no string dtype", P, key);
        if (strcmp(json_string_value(dt), x->dtype) != 0)
            LOAD_FAIL(HYDRA_ERR_FORMAT, "checkpoint %s: tensor \"%s\" has dtype %.16s; this build reads only %s here%s",
                      P, key, json_string_value(dt), x->dtype,
                      file_quant ? "" : " (quantised checkpoints say hydralm.format_version 2)");
        json_t *shape = json_object_get(e, "shape");
        int shape_ok = json_is_array(shape) && json_array_size(shape) == (size_t)x->ndim;
        for (int d = 0; shape_ok && d < x->ndim; d++) {
            json_t *v = json_array_get(shape, (size_t)d);
            shape_ok = json_is_integer(v) && json_integer_value(v) == x->shape[d];
        }
        if (!shape_ok) {
            char want_s[64], got[96];
            fmt_shape(want_s, sizeof want_s, x->shape, x->ndim);
            fmt_json_shape(got, sizeof got, shape);
            LOAD_FAIL(HYDRA_ERR_MISMATCH,
                      "checkpoint %s: tensor \"%s\" has shape %s but the config expects %s "
                      "(hydralm.config disagrees with the tensors?)", P, key, got, want_s);
        }
        json_t *offs = json_object_get(e, "data_offsets");
        json_t *jb = json_array_get(offs, 0), *je = json_array_get(offs, 1);
        if (!json_is_array(offs) || json_array_size(offs) != 2 || !json_is_integer(jb) ||
            !json_is_integer(je) || json_integer_value(jb) < 0 || json_integer_value(je) < 0)
            LOAD_FAIL(HYDRA_ERR_FORMAT, "checkpoint %s: tensor \"%s\": data_offsets must be two non-negative integers", P, key);
        uint64_t b = (uint64_t)json_integer_value(jb), en = (uint64_t)json_integer_value(je);
        if (b > en)
            LOAD_FAIL(HYDRA_ERR_FORMAT, "checkpoint %s: tensor \"%s\": data_offsets [%llu, %llu] end before they begin",
                      P, key, (unsigned long long)b, (unsigned long long)en);
        if (en - b != x->nbytes)
            LOAD_FAIL(HYDRA_ERR_FORMAT,
                      "checkpoint %s: tensor \"%s\": byte length %llu (data_offsets [%llu, %llu]) does "
                      "not match its %s shape: %llu bytes", P, key, (unsigned long long)(en - b),
                      (unsigned long long)b, (unsigned long long)en, x->dtype, (unsigned long long)x->nbytes);
        ent[hit->idx] = (file_entry){b, en, 1};
    }
    for (int i = 0; i < n; i++)
        if (!ent[i].seen)
            LOAD_FAIL(HYDRA_ERR_MISMATCH, "checkpoint %s: missing tensor \"%s\" (required by hydralm.config)", P,
                      fe[i].name);

    /* ---- the tensors must tile the data region exactly */
    uint64_t total = 0; /* sum of byte lengths; <= 4 * n_params, cannot overflow */
    for (int i = 0; i < n; i++) {
        order[n_order++] = (off_rec){ent[i].begin, ent[i].end, i};
        total += ent[i].end - ent[i].begin;
    }
    if (total > data_avail)
        LOAD_FAIL(HYDRA_ERR_FORMAT,
                  "checkpoint %s: file is truncated: the header describes %llu bytes of tensor data "
                  "but only %llu bytes follow it", P, (unsigned long long)total,
                  (unsigned long long)data_avail);
    for (int i = 0; i < n; i++)
        if (ent[i].end > data_avail)
            LOAD_FAIL(HYDRA_ERR_FORMAT,
                      "checkpoint %s: tensor \"%s\": data_offsets [%llu, %llu] point past the end of "
                      "the data (%llu bytes)", P, fe[i].name, (unsigned long long)ent[i].begin,
                      (unsigned long long)ent[i].end, (unsigned long long)data_avail);
    qsort(order, (size_t)n_order, sizeof *order, cmp_off);
    uint64_t pos = 0;
    for (int k = 0; k < n_order; k++) {
        const char *cur = fe[order[k].idx].name;
        if (order[k].begin != pos) {
            if (k == 0)
                LOAD_FAIL(HYDRA_ERR_FORMAT, "checkpoint %s: gap before the first tensor \"%s\" (it begins at byte %llu, not 0)",
                          P, cur, (unsigned long long)order[k].begin);
            const char *prev = fe[order[k - 1].idx].name;
            if (order[k].begin < pos)
                LOAD_FAIL(HYDRA_ERR_FORMAT,
                          "checkpoint %s: tensors \"%s\" and \"%s\" overlap (\"%s\" ends at byte %llu, "
                          "\"%s\" begins at byte %llu)", P, prev, cur, prev, (unsigned long long)pos,
                          cur, (unsigned long long)order[k].begin);
            LOAD_FAIL(HYDRA_ERR_FORMAT,
                      "checkpoint %s: gap between tensors \"%s\" and \"%s\" (\"%s\" ends at byte %llu, "
                      "\"%s\" begins at byte %llu)", P, prev, cur, prev, (unsigned long long)pos, cur,
                      (unsigned long long)order[k].begin);
        }
        pos = order[k].end;
    }
    /* pos == total now; the file must end exactly there. */
    if (pos != data_avail)
        LOAD_FAIL(HYDRA_ERR_FORMAT,
                  "checkpoint %s: %llu trailing bytes after the tensor data (file is %llu bytes, "
                  "expected 8 + %llu + %llu)", P, (unsigned long long)(data_avail - pos),
                  (unsigned long long)fsize, (unsigned long long)hlen, (unsigned long long)pos);

    /* ---- data: one sequential read per tensor, straight into the arena.
     * The tensors tile the file, so every arena byte is written: no zeroing. */
    if ((st = hydra_model_alloc_arenas(m, 0)) != HYDRA_OK) LOAD_FAIL(st, "checkpoint %s: %s", P, hydra_last_error());
    if (mode != HYDRA_STORE_F32 && !file_quant) {
        st = read_reduced(f, P, 8 + hlen, ent, m);
    } else {
        for (int k = 0; k < n_order && !st; k++) {
            const st_entry *x = &fe[order[k].idx];
            void *dst = entry_data(m, x);
            if (x->nbytes && fread(dst, 1, (size_t)x->nbytes, f) != x->nbytes)
                LOAD_FAIL(HYDRA_ERR_IO, "checkpoint %s: read error in tensor \"%s\"%s", P, x->name,
                          feof(f) ? " (file shrank while reading?)" : "");
            st = check_entry_data(P, x, dst);
        }
        m->fingerprint = file_fp;
    }
    if (!st) tied_head_copy(m);

done:
    if (f) fclose(f);
    free(header);
    json_decref(root);
    free(ent);
    free(fe);
    free(names);
    free(order);
    if (st != HYDRA_OK) {
        hydra_model_free(m);
        return st;
    }
    *out = m;
    return HYDRA_OK;
}

hydra_status hydra_model_load(const char *path, hydra_model **out) { return load_impl(path, HYDRA_STORE_F32, out); }
hydra_status hydra_model_load_bf16(const char *path, hydra_model **out) { return load_impl(path, HYDRA_STORE_BF16, out); }
hydra_status hydra_model_load_quant(const char *path, hydra_quant q, hydra_model **out) {
    if (q != HYDRA_QUANT_NONE && q != HYDRA_QUANT_INT8 && q != HYDRA_QUANT_INT4) {
        if (out) *out = NULL;
        return hydra_set_error(HYDRA_ERR_ARG, "model_load_quant: unknown quantisation %d", (int)q);
    }
    return load_impl(path, q == HYDRA_QUANT_NONE ? -1 : hydra_store_of_quant(q), out);
}

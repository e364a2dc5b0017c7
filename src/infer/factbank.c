/* factbank.c — the model-level FactBank (level 2): facts written through the
 * model's own recurrence into a constant-size bank, saved to a file tied to
 * the model fingerprint, mounted into any later session's live state.
 *
 * A bank is a hydra_state that has read the facts from empty, and nothing
 * else: per DeltaNet layer S [H,dv,dk] and conv tails [K-1, 3*H*d], per SWA
 * layer the K/V rings [W,H,d] x2, and the position (= fact tokens written).
 *
 * File layout (little-endian; docs/factbank.md):
 *   off  0 char[8] "HYDRABNK" | 8 u32 version (1) | 12 u64 model fingerprint
 *   20 u64 fact tokens written | 28 u32 n_layers L | 32 u32 n_heads | 36 u32 head_dim
 *   40 u32 window | 44 u32 conv_width | 48 u32 d_model | 52 u64 payload bytes P
 *   60 char[L] layer schedule ('D'/'S') | 60+L P bytes: the state's fixed arena (f32,
 *   layer order: DeltaNet S then conv tails; SWA K ring then V ring)
 *   60+L+P u64 FNV-1a 64 of bytes [0, 60+L+P)
 * Written atomically through core/fileio (temp file, fsync, rename). */
#include <math.h>

#include "core/fileio.h"
#include "core/internal.h"
#include "hydralm_factbank.h"

#define BNK_MAGIC "HYDRABNK"
#define BNK_VERSION 1u
#define BNK_FIXED 60u

struct hydra_factbank {
    const hydra_model *m;
    hydra_state *st; /* the facts, read from an empty state */
};

hydra_status hydra_factbank_create(const hydra_model *m, hydra_factbank **out) {
    if (!m || !out) return hydra_set_error(HYDRA_ERR_ARG, "factbank_create: NULL argument");
    *out = NULL;
    for (int i = 0; i < m->cfg.n_layers; i++)
        if (hydra_layer_cache_unbounded(&m->cfg, hydra_config_layer_kind(&m->cfg, i)))
            return hydra_set_error(HYDRA_ERR_ARG,
                                   "factbank: layer %d is full attention (unbounded cache): a bank must have a "
                                   "constant size, so only DeltaNet and sliding-window layers are supported", i);
    hydra_factbank *b = calloc(1, sizeof *b);
    if (!b) return hydra_set_error(HYDRA_ERR_NOMEM, "factbank: out of memory");
    b->m = m;
    hydra_status st = hydra_state_create(m, &b->st);
    if (st) {
        free(b);
        return st;
    }
    *out = b;
    return HYDRA_OK;
}

void hydra_factbank_free(hydra_factbank *b) {
    if (!b) return;
    hydra_state_free(b->st);
    free(b);
}

void hydra_factbank_reset(hydra_factbank *b) {
    if (b) hydra_state_reset(b->st);
}

uint64_t hydra_factbank_tokens(const hydra_factbank *b) { return b ? b->st->pos : 0; }
size_t hydra_factbank_bytes(const hydra_factbank *b) { return b ? b->st->arena_floats * sizeof(float) : 0; }
const hydra_state *hydra_factbank_state(const hydra_factbank *b) { return b ? b->st : NULL; }
const hydra_model *hydra_factbank_model(const hydra_factbank *b) { return b ? b->m : NULL; }

hydra_status hydra_factbank_write(hydra_factbank *b, const int32_t *tokens, size_t n) {
    if (!b || (n && !tokens)) return hydra_set_error(HYDRA_ERR_ARG, "factbank_write: NULL argument");
    const int V = b->m->cfg.vocab_size;
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            return hydra_set_error(HYDRA_ERR_ARG,
                                   "factbank_write: token id %d at index %zu is outside the vocabulary [0, %d); "
                                   "nothing was written", tokens[i], i, V);
    for (size_t i = 0; i < n; i += HYDRA_FACTBANK_CHUNK) {
        size_t c = n - i < HYDRA_FACTBANK_CHUNK ? n - i : HYDRA_FACTBANK_CHUNK;
        HYDRA_CHECK(hydra_forward(b->m, tokens + i, 1, (int)c, &b->st, HYDRA_LOGITS_NONE, NULL));
    }
    return HYDRA_OK;
}

hydra_status hydra_factbank_write_text(hydra_factbank *b, const char *text, size_t len) {
    if (!b || (len && !text)) return hydra_set_error(HYDRA_ERR_ARG, "factbank_write_text: NULL argument");
    if (b->m->cfg.vocab_size < 256)
        return hydra_set_error(HYDRA_ERR_ARG, "factbank_write_text: the model's vocabulary (%d) is not byte level",
                               b->m->cfg.vocab_size);
    int32_t ids[HYDRA_FACTBANK_CHUNK];
    for (size_t i = 0; i < len; i += HYDRA_FACTBANK_CHUNK) {
        size_t c = len - i < HYDRA_FACTBANK_CHUNK ? len - i : HYDRA_FACTBANK_CHUNK;
        for (size_t j = 0; j < c; j++) ids[j] = (int32_t)(unsigned char)text[i + j];
        HYDRA_CHECK(hydra_forward(b->m, ids, 1, (int)c, &b->st, HYDRA_LOGITS_NONE, NULL));
    }
    return HYDRA_OK;
}

hydra_status hydra_factbank_mount(const hydra_factbank *b, hydra_state *live, hydra_mount_mode mode) {
    if (!b || !live) return hydra_set_error(HYDRA_ERR_ARG, "factbank_mount: NULL argument");
    if (mode != HYDRA_MOUNT_RESTORE && mode != HYDRA_MOUNT_REPLACE && mode != HYDRA_MOUNT_ADD)
        return hydra_set_error(HYDRA_ERR_ARG, "factbank_mount: unknown mode %d", (int)mode);
    if (!hydra_config_same_state_shape(&live->cfg, &b->st->cfg))
        return hydra_set_error(HYDRA_ERR_MISMATCH,
                               "factbank_mount: the live state was created for a different model shape than the bank");
    if (mode == HYDRA_MOUNT_RESTORE) return hydra_state_copy(live, b->st);
    HYDRA_CHECK(hydra_state_host_read(b->st));
    HYDRA_CHECK(hydra_state_host_write(live)); /* a GPU state is fetched, changed here, uploaded at its next use */
    const hydra_config *c = &live->cfg;
    size_t sn = (size_t)c->n_heads * (size_t)hydra_config_head_dim(c) * (size_t)hydra_config_head_dim(c);
    for (int i = 0; i < c->n_layers; i++) {
        if (hydra_config_layer_kind(c, i) != HYDRA_LAYER_DELTANET) continue;
        float *dst = live->layers[i].S;              /* [H, dv, dk] */
        const float *src = b->st->layers[i].S;       /* [H, dv, dk] */
        if (mode == HYDRA_MOUNT_REPLACE) memcpy(dst, src, sn * sizeof(float));
        else
            for (size_t j = 0; j < sn; j++) dst[j] += src[j];
    }
    return HYDRA_OK;
}

/* ------------------------------------------------------------ save, load */
hydra_status hydra_factbank_save(const hydra_factbank *b, const char *path) {
    if (!b || !path || !path[0]) return hydra_set_error(HYDRA_ERR_ARG, "factbank_save: NULL argument or empty path");
    const hydra_config *c = &b->m->cfg;
    hydra_afile a;
    uint64_t fp = hydra_model_fingerprint(b->m);
    HYDRA_CHECK(hydra_state_host_read(b->st));
    HYDRA_CHECK(hydra_afile_open(&a, path));
    hydra_afile_write(&a, BNK_MAGIC, 8);
    hydra_afile_u32(&a, BNK_VERSION);
    hydra_afile_u64(&a, fp);
    hydra_afile_u64(&a, b->st->pos);
    hydra_afile_u32(&a, (uint32_t)c->n_layers);
    hydra_afile_u32(&a, (uint32_t)c->n_heads);
    hydra_afile_u32(&a, (uint32_t)hydra_config_head_dim(c));
    hydra_afile_u32(&a, (uint32_t)c->window);
    hydra_afile_u32(&a, (uint32_t)c->conv_width);
    hydra_afile_u32(&a, (uint32_t)c->d_model);
    hydra_afile_u64(&a, (uint64_t)hydra_factbank_bytes(b));
    for (int i = 0; i < c->n_layers; i++) {
        char k = hydra_config_layer_kind(c, i);
        hydra_afile_write(&a, &k, 1);
    }
    hydra_afile_write(&a, b->st->arena, hydra_factbank_bytes(b));
    hydra_afile_u64(&a, a.hash);
    return hydra_afile_commit(&a);
}

/* Read and check a bank file's framing. On success *buf (malloc'ed, caller
 * frees) holds the file and *payload points at the state bytes. */
static hydra_status read_checked(const char *path, hydra_factbank_info *info, uint8_t **buf,
                                 const uint8_t **payload) {
    size_t n = 0;
    *buf = NULL;
    memset(info, 0, sizeof *info);
    HYDRA_CHECK(hydra_read_file(path, "bank file", (size_t)1 << 36, buf, &n));
    const uint8_t *p = *buf;
    hydra_status st = HYDRA_OK;
#define BFAIL(code, ...)                           \
    do {                                           \
        st = hydra_set_error((code), __VA_ARGS__); \
        goto fail;                                 \
    } while (0)
    if (n >= 8 && memcmp(p, BNK_MAGIC, 8) != 0)
        BFAIL(HYDRA_ERR_FORMAT, "bank file %s: wrong magic (not a HydraLM FactBank file)", path);
    if (n < BNK_FIXED + 8)
        BFAIL(HYDRA_ERR_FORMAT, "bank file %s: file is truncated (%zu bytes; a bank file has at least %u)", path, n,
              BNK_FIXED + 8);
    info->version = hydra_get_u32(p + 8);
    if (info->version != BNK_VERSION)
        BFAIL(HYDRA_ERR_FORMAT, "bank file %s: unsupported format version %u (this build reads %u)", path,
              info->version, BNK_VERSION);
    info->fingerprint = hydra_get_u64(p + 12);
    info->tokens = hydra_get_u64(p + 20);
    uint32_t L = hydra_get_u32(p + 28);
    info->payload_bytes = hydra_get_u64(p + 52);
    info->file_bytes = n;
    uint64_t want = (uint64_t)BNK_FIXED + L + info->payload_bytes + 8;
    if (L > HYDRA_MAX_LAYERS || info->payload_bytes > n || want > n)
        BFAIL(HYDRA_ERR_FORMAT, "bank file %s: file is truncated (header announces %u layers and %llu payload "
              "bytes, file has %zu bytes)", path, L, (unsigned long long)info->payload_bytes, n);
    if (want < n)
        BFAIL(HYDRA_ERR_FORMAT, "bank file %s: %llu unexpected trailing bytes after the checksum", path,
              (unsigned long long)(n - want));
    size_t body = (size_t)want - 8;
    if (hydra_fnv1a(HYDRA_FNV_OFFSET, p, body) != hydra_get_u64(p + body))
        BFAIL(HYDRA_ERR_FORMAT, "bank file %s: checksum mismatch: file is corrupt", path);
    if (info->tokens > HYDRA_MAX_POSITION)
        BFAIL(HYDRA_ERR_FORMAT, "bank file %s: position %llu is beyond the limit of 2^53 (HYDRA_MAX_POSITION)", path,
              (unsigned long long)info->tokens);
    info->n_layers = (int)L;
    info->n_heads = (int)hydra_get_u32(p + 32);
    info->head_dim = (int)hydra_get_u32(p + 36);
    info->window = (int)hydra_get_u32(p + 40);
    info->conv_width = (int)hydra_get_u32(p + 44);
    memcpy(info->schedule, p + BNK_FIXED, L);
    info->schedule[L] = 0;
    *payload = p + BNK_FIXED + L;
    return HYDRA_OK;
fail:
#undef BFAIL
    free(*buf);
    *buf = NULL;
    return st;
}

hydra_status hydra_factbank_read_info(const char *path, hydra_factbank_info *out) {
    if (!path || !out) return hydra_set_error(HYDRA_ERR_ARG, "factbank_read_info: NULL argument");
    uint8_t *buf;
    const uint8_t *payload = NULL;
    HYDRA_CHECK(read_checked(path, out, &buf, &payload));
    free(buf);
    return HYDRA_OK;
}

hydra_status hydra_factbank_load(const hydra_model *m, const char *path, hydra_factbank **out) {
    if (!m || !path || !out) return hydra_set_error(HYDRA_ERR_ARG, "factbank_load: NULL argument");
    *out = NULL;
    hydra_factbank_info info;
    uint8_t *buf;
    const uint8_t *payload = NULL;
    HYDRA_CHECK(read_checked(path, &info, &buf, &payload));
    hydra_status st = HYDRA_OK;
    hydra_factbank *b = NULL;
    uint64_t mine = hydra_model_fingerprint(m);
    const hydra_config *c = &m->cfg;
    if (info.fingerprint != mine) {
        st = hydra_set_error(HYDRA_ERR_MISMATCH,
                             "bank file %s was written by a different model (fingerprint %016llx, this model %016llx)",
                             path, (unsigned long long)info.fingerprint, (unsigned long long)mine);
        goto done;
    }
    int shape_ok = info.n_layers == c->n_layers && info.n_heads == c->n_heads &&
                   info.head_dim == hydra_config_head_dim(c) && info.window == c->window &&
                   info.conv_width == c->conv_width;
    for (int i = 0; shape_ok && i < c->n_layers; i++) shape_ok = info.schedule[i] == hydra_config_layer_kind(c, i);
    if (!shape_ok) {
        st = hydra_set_error(HYDRA_ERR_FORMAT, "bank file %s: its shape (%d layers %s, %d heads x %d) does not match "
                             "the model", path, info.n_layers, info.schedule, info.n_heads, info.head_dim);
        goto done;
    }
    if (info.payload_bytes != hydra_model_state_bytes(m)) { /* checked before allocating the state */
        st = hydra_set_error(HYDRA_ERR_FORMAT, "bank file %s: payload is %llu bytes but this model's state is %zu",
                             path, (unsigned long long)info.payload_bytes, hydra_model_state_bytes(m));
        goto done;
    }
    if ((st = hydra_factbank_create(m, &b))) goto done;
    memcpy(b->st->arena, payload, (size_t)info.payload_bytes);
    for (size_t i = 0; i < b->st->arena_floats; i++)
        if (!isfinite(b->st->arena[i])) {
            st = hydra_set_error(HYDRA_ERR_FORMAT, "bank file %s: state value %zu is NaN or Inf", path, i);
            goto done;
        }
    b->st->pos = info.tokens;
    *out = b;
    b = NULL;
done:
    hydra_factbank_free(b);
    free(buf);
    return st;
}

/* state_io.c — session state files: save / load a hydra_state (DESIGN §3-4).
 *
 * Layout (all integers little-endian; docs/formats.md "Session state files"):
 *   off  0  char[8]  magic "HYDRASTA"
 *   off  8  u32      format version (1)
 *   off 12  u64      model fingerprint (hydra_model_fingerprint)
 *   off 20  u64      token count (state position)
 *   off 28  u64      payload length P in bytes
 *   off 36  P bytes  payload: the state's fixed arena (f32, layer order: DeltaNet
 *                    S [H,dv,dk] then conv tails [K-1, 3*H*d]; SWA K ring
 *                    [W,H,d] then V ring [W,H,d]), then for each full-attention
 *                    layer in layer order K [pos,H,d] then V [pos,H,d]
 *   off 36+P u64     FNV-1a 64 of bytes [0, 36+P)
 * Writes are atomic (temp file, fflush, fsync, rename, fsync of the directory).
 * Loads check everything and leave the destination untouched on failure. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/internal.h"
#include "hydralm_stream.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "state_io.c writes the host's f32 bytes as LE");
_Static_assert(sizeof(float) == 4, "float must be IEEE-754 binary32");

#define STA_MAGIC "HYDRASTA"
#define STA_VERSION 1u
#define STA_HEADER 36u
#define STA_TRAILER 8u
#define STA_IO_BLOCK ((size_t)1 << 20)

static int n_unbounded(const hydra_config *c) {
    int n = 0;
    for (int i = 0; i < c->n_layers; i++) n += hydra_layer_cache_unbounded(c, hydra_config_layer_kind(c, i));
    return n;
}

/* Payload bytes for a state of config c at position pos; 0 on overflow. */
static int payload_bytes(const hydra_config *c, size_t arena_floats, uint64_t pos, uint64_t *out) {
    size_t Hd = (size_t)c->n_heads * (size_t)hydra_config_head_dim(c);
    size_t kv = 0, total = 0;
    uint64_t nu = (uint64_t)n_unbounded(c);
    if (nu) {
        if (pos > SIZE_MAX) return 0;
        if (!hydra_mul_ok((size_t)pos, Hd, &kv) || !hydra_mul_ok(kv, (size_t)(2 * nu), &kv)) return 0;
    }
    if (__builtin_add_overflow(kv, arena_floats, &total) || !hydra_mul_ok(total, sizeof(float), &total)) return 0;
    *out = (uint64_t)total;
    return 1;
}

static void put_u32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put_u64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
/* ------------------------------------------------------------------ save */

hydra_status hydra_state_save(const hydra_state *st, const hydra_model *m, const char *path) {
    if (!st || !m || !path) return hydra_set_error(HYDRA_ERR_ARG, "state_save: NULL argument");
    if (!path[0]) return hydra_set_error(HYDRA_ERR_ARG, "state_save: empty path");
    if (!hydra_config_same_state_shape(&st->cfg, &m->cfg))
        return hydra_set_error(HYDRA_ERR_MISMATCH, "state_save %s: the state was created for a different model shape", path);
    const hydra_config *c = &st->cfg;
    HYDRA_CHECK(hydra_state_host_read(st)); /* a state current on a GPU is fetched first */
    uint64_t plen;
    if (!payload_bytes(c, st->arena_floats, st->pos, &plen))
        return hydra_set_error(HYDRA_ERR_ARG, "state_save %s: state too large", path);
    size_t Hd = (size_t)c->n_heads * (size_t)hydra_config_head_dim(c);

    unsigned char hdr[STA_HEADER];
    memcpy(hdr, STA_MAGIC, 8);
    put_u32(hdr + 8, STA_VERSION);
    put_u64(hdr + 12, hydra_model_fingerprint(m));
    put_u64(hdr + 20, st->pos);
    put_u64(hdr + 28, plen);

    hydra_afile f;
    HYDRA_CHECK(hydra_afile_open(&f, path));
    hydra_afile_write(&f, hdr, sizeof hdr);
    hydra_afile_write(&f, st->arena, st->arena_floats * sizeof(float));
    for (int i = 0; i < c->n_layers; i++) {
        if (!hydra_layer_cache_unbounded(c, hydra_config_layer_kind(c, i)) || !st->pos) continue;
        size_t bytes = (size_t)st->pos * Hd * sizeof(float);
        hydra_afile_write(&f, st->layers[i].kc, bytes);
        hydra_afile_write(&f, st->layers[i].vc, bytes);
    }
    unsigned char trailer[STA_TRAILER];
    put_u64(trailer, f.hash); /* FNV-1a of everything before the trailer */
    hydra_afile_write(&f, trailer, sizeof trailer);
    return hydra_afile_commit(&f);
}

/* ------------------------------------------------------------------ load */

#define LOAD_FAIL(code, ...)                       \
    do {                                           \
        r = hydra_set_error((code), __VA_ARGS__);  \
        goto done;                                 \
    } while (0)

/* Read exactly n bytes into p (p may be NULL: hash only) and hash them. */
static int read_hashed(FILE *f, void *p, size_t n, uint64_t *h, unsigned char *buf) {
    unsigned char *dst = p;
    while (n) {
        size_t k = n < STA_IO_BLOCK ? n : STA_IO_BLOCK;
        unsigned char *into = dst ? dst : buf;
        if (fread(into, 1, k, f) != k) return 0;
        *h = hydra_fnv1a(*h, into, k);
        if (dst) dst += k;
        n -= k;
    }
    return 1;
}

static size_t first_nonfinite(const float *x, size_t n) {
    const uint32_t *u = (const uint32_t *)(const void *)x;
    for (size_t i = 0; i < n; i++)
        if ((u[i] & 0x7f800000u) == 0x7f800000u) return i;
    return n;
}

hydra_status hydra_state_load(hydra_state *st, const hydra_model *m, const char *path) {
    if (!st || !m || !path) return hydra_set_error(HYDRA_ERR_ARG, "state_load: NULL argument");
    if (!hydra_config_same_state_shape(&st->cfg, &m->cfg))
        return hydra_set_error(HYDRA_ERR_MISMATCH, "state_load %s: the destination state was created for a different model shape", path);
    const char *P = path;
    hydra_status r = HYDRA_OK;
    hydra_state *tmp = NULL;
    unsigned char *buf = NULL;
    FILE *f = NULL;
    uint64_t fsize;
    if ((r = hydra_open_regular(path, "state file", &f, &fsize)) != HYDRA_OK) goto done;

    /* ---- header */
    unsigned char hdr[STA_HEADER];
    size_t got = fread(hdr, 1, sizeof hdr, f);
    if (got >= 8 && memcmp(hdr, STA_MAGIC, 8) != 0)
        LOAD_FAIL(HYDRA_ERR_FORMAT, "state file %s: wrong magic (not a HydraLM state file)", P);
    if (fsize < STA_HEADER + STA_TRAILER || got != sizeof hdr)
        LOAD_FAIL(HYDRA_ERR_FORMAT, "state file %s: file is truncated (%llu bytes; a state file has at least %u)", P,
                  (unsigned long long)fsize, STA_HEADER + STA_TRAILER);
    uint32_t version = hydra_get_u32(hdr + 8);
    if (version != STA_VERSION)
        LOAD_FAIL(HYDRA_ERR_FORMAT, "state file %s: unsupported format version %u (this build reads %u)", P, version,
                  STA_VERSION);
    uint64_t fp = hydra_get_u64(hdr + 12), pos = hydra_get_u64(hdr + 20), plen = hydra_get_u64(hdr + 28);
    uint64_t want_size = STA_HEADER + plen + STA_TRAILER;
    if (plen > fsize || want_size != fsize) {
        if (plen > fsize || want_size > fsize)
            LOAD_FAIL(HYDRA_ERR_FORMAT,
                      "state file %s: file is truncated (header announces %llu payload bytes, file has %llu bytes "
                      "in all)", P, (unsigned long long)plen, (unsigned long long)fsize);
        LOAD_FAIL(HYDRA_ERR_FORMAT, "state file %s: %llu unexpected trailing bytes after the checksum", P,
                  (unsigned long long)(fsize - want_size));
    }

    /* ---- pass 1: checksum over header + payload, before trusting any field */
    buf = malloc(STA_IO_BLOCK);
    if (!buf) LOAD_FAIL(HYDRA_ERR_NOMEM, "state_load: out of memory");
    uint64_t h = hydra_fnv1a(HYDRA_FNV_OFFSET, hdr, sizeof hdr);
    if (plen > SIZE_MAX || !read_hashed(f, NULL, (size_t)plen, &h, buf))
        LOAD_FAIL(HYDRA_ERR_IO, "state file %s: read error in the payload", P);
    unsigned char trailer[STA_TRAILER];
    if (fread(trailer, 1, sizeof trailer, f) != sizeof trailer)
        LOAD_FAIL(HYDRA_ERR_IO, "state file %s: read error in the checksum", P);
    if (hydra_get_u64(trailer) != h)
        LOAD_FAIL(HYDRA_ERR_FORMAT, "state file %s: checksum mismatch: file is corrupt", P);
    if (pos > HYDRA_MAX_POSITION)
        LOAD_FAIL(HYDRA_ERR_FORMAT, "state file %s: position %llu is beyond the limit of 2^53 (HYDRA_MAX_POSITION)", P,
                  (unsigned long long)pos);

    /* ---- model and shape */
    uint64_t mine = hydra_model_fingerprint(m);
    if (fp != mine)
        LOAD_FAIL(HYDRA_ERR_MISMATCH,
                  "state file %s: state file was written by a different model (fingerprint %016llx, this model "
                  "%016llx)", P, (unsigned long long)fp, (unsigned long long)mine);
    uint64_t want_plen = 0;
    if (!payload_bytes(&st->cfg, st->arena_floats, pos, &want_plen) || want_plen != plen)
        LOAD_FAIL(HYDRA_ERR_FORMAT,
                  "state file %s: payload is %llu bytes but this model's state at %llu tokens is %llu bytes "
                  "(shape mismatch)", P, (unsigned long long)plen, (unsigned long long)pos,
                  (unsigned long long)want_plen);

    /* ---- pass 2: read into a temporary state, then copy (st untouched on failure) */
    if ((r = hydra_state_create(m, &tmp)) != HYDRA_OK) goto done;
    if (n_unbounded(&tmp->cfg) && (r = hydra_state_reserve(tmp, (size_t)pos)) != HYDRA_OK) goto done;
    if (fseek(f, (long)STA_HEADER, SEEK_SET) != 0) LOAD_FAIL(HYDRA_ERR_IO, "state file %s: seek failed", P);
    uint64_t h2 = hydra_fnv1a(HYDRA_FNV_OFFSET, hdr, sizeof hdr);
    if (!read_hashed(f, tmp->arena, tmp->arena_floats * sizeof(float), &h2, buf))
        LOAD_FAIL(HYDRA_ERR_IO, "state file %s: read error in the payload", P);
    size_t Hd = (size_t)tmp->cfg.n_heads * (size_t)hydra_config_head_dim(&tmp->cfg);
    for (int i = 0; i < tmp->cfg.n_layers; i++) {
        if (!hydra_layer_cache_unbounded(&tmp->cfg, hydra_config_layer_kind(&tmp->cfg, i)) || !pos) continue;
        size_t bytes = (size_t)pos * Hd * sizeof(float);
        if (!read_hashed(f, tmp->layers[i].kc, bytes, &h2, buf) || !read_hashed(f, tmp->layers[i].vc, bytes, &h2, buf))
            LOAD_FAIL(HYDRA_ERR_IO, "state file %s: read error in the payload", P);
    }
    if (h2 != h) LOAD_FAIL(HYDRA_ERR_IO, "state file %s: the file changed while it was being read", P);
    size_t bad = first_nonfinite(tmp->arena, tmp->arena_floats);
    if (bad < tmp->arena_floats)
        LOAD_FAIL(HYDRA_ERR_FORMAT, "state file %s: state value %zu is NaN or Inf", P, bad);
    for (int i = 0; i < tmp->cfg.n_layers && pos; i++) {
        if (!hydra_layer_cache_unbounded(&tmp->cfg, hydra_config_layer_kind(&tmp->cfg, i))) continue;
        size_t n = (size_t)pos * Hd;
        if (first_nonfinite(tmp->layers[i].kc, n) < n || first_nonfinite(tmp->layers[i].vc, n) < n)
            LOAD_FAIL(HYDRA_ERR_FORMAT, "state file %s: attention cache of layer %d holds NaN or Inf", P, i);
    }
    tmp->pos = pos;
    r = hydra_state_copy(st, tmp);

done:
    if (f) fclose(f);
    free(buf);
    hydra_state_free(tmp);
    return r;
}

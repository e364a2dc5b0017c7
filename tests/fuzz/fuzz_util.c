/* fuzz_util.c — see fuzz_util.h. */
#include "fuzz_util.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void fz_put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

void fz_put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

void fz_fix_fnv_trailer(uint8_t *buf, size_t n) {
    if (n < 8) return;
    uint64_t h = 1469598103934665603ULL; /* FNV-1a 64, as core/fileio writes it */
    for (size_t i = 0; i < n - 8; i++) {
        h ^= buf[i];
        h *= 1099511628211ULL;
    }
    fz_put_u64(buf + n - 8, h);
}

int fz_patch_field(const char *src, const char *dst, size_t off, int width, uint64_t v) {
    size_t n;
    uint8_t *b = fz_read_file(src, &n);
    int rc = -1;
    if (b && n >= off + (size_t)width) {
        if (width == 8)
            fz_put_u64(b + off, v);
        else
            fz_put_u32(b + off, (uint32_t)v);
        fz_fix_fnv_trailer(b, n);
        rc = fz_write_file(dst, b, n);
    }
    free(b);
    return rc;
}

char *fz_scratch_path(const char *tag) {
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    size_t n = strlen(dir) + strlen(tag) + 48;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/hydra_fuzz_%d_%s", dir, (int)getpid(), tag);
    return p;
}

int fz_write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok ? 0 : -1;
}

uint8_t *fz_read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0, r;
    do {
        if (len + 65536 > cap) {
            uint8_t *nb = realloc(buf, cap = 2 * cap + 65536);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        r = fread(buf + len, 1, 65536, f);
        len += r;
    } while (r == 65536);
    fclose(f);
    *n = len;
    return buf;
}

hydra_config fz_model_config(const char *pattern) {
    hydra_config c = hydra_config_default();
    c.d_model = 8;
    c.n_heads = 2;
    c.head_dim = 4;
    c.vocab_size = 256;
    c.window = 4;
    c.mlp_multiple = 8;
    c.n_layers = (int)strlen(pattern);
    snprintf(c.pattern, sizeof c.pattern, "%s", pattern);
    return c;
}

const hydra_model *fz_model(const char *pattern) {
    static hydra_model *models[4];
    static char patterns[4][8];
    for (int i = 0; i < 4; i++) {
        if (models[i] && strcmp(patterns[i], pattern) == 0) return models[i];
        if (!models[i]) {
            hydra_set_num_threads(1); /* campaigns run on one core */
            hydra_config c = fz_model_config(pattern);
            if (hydra_model_create(&c, FZ_MODEL_SEED, &models[i]) != HYDRA_OK)
                fz_fail("cannot create the %s model: %s", pattern, hydra_last_error());
            snprintf(patterns[i], sizeof patterns[i], "%s", pattern);
            return models[i];
        }
    }
    fz_fail("more than 4 harness models");
}

const char *fz_input_file(const uint8_t *data, size_t size) {
    static char *path;
    if (!path && !(path = fz_scratch_path("input"))) fz_fail("out of memory");
    if (fz_write_file(path, data, size) != 0) fz_fail("cannot write %s", path);
    return path;
}

const char *fz_input_file_fixed(const uint8_t *data, size_t size) {
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) fz_fail("out of memory");
    memcpy(buf, data, size);
    fz_fix_fnv_trailer(buf, size);
    const char *path = fz_input_file(buf, size);
    free(buf);
    return path;
}

void fz_feed(const hydra_model *m, hydra_state *s) {
    if (hydra_model_state_bytes(m) > ((size_t)64 << 20)) return;
    const hydra_config *c = hydra_model_config(m);
    float *logits = malloc((size_t)c->vocab_size * sizeof(float));
    int32_t toks[2] = {0, c->vocab_size - 1};
    uint64_t pos = hydra_state_position(s);
    hydra_status st = logits ? hydra_forward(m, toks, 1, 2, &s, HYDRA_LOGITS_LAST, logits) : HYDRA_ERR_NOMEM;
    /* A loaded model and state must run: the only refusals allowed are the
     * position bound and running out of memory. */
    int allowed = st == HYDRA_ERR_NOMEM || (st == HYDRA_ERR_ARG && strstr(hydra_last_error(), "2^53"));
    if (st == HYDRA_OK ? hydra_state_position(s) != pos + 2 : !allowed)
        fz_fail("feeding a loaded state: %s (%s)", hydra_status_str(st), hydra_last_error());
    free(logits);
}

void fz_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("harness invariant failed: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

int fz_conv_heavy_checkpoint(const char *path, int layers) {
    char cfg[512];
    snprintf(cfg, sizeof cfg,
             "{\"d_model\":1,\"n_layers\":%d,\"n_heads\":1,\"head_dim\":4096,\"vocab_size\":1,\"swa_every\":0,"
             "\"window\":0,\"conv_width\":64,\"mlp_multiple\":1}", layers);
    json_t *root = json_pack("{s:{s:s,s:s},s:{s:s,s:[i,i],s:[i,i]}}", "__metadata__", "hydralm.format_version", "1",
                             "hydralm.config", cfg, "embed.weight", "dtype", "F32", "shape", 2, 2, "data_offsets", 0, 4);
    char *hdr = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    if (!hdr) return -1;
    size_t hl = strlen(hdr), n = 8 + hl + 4;
    uint8_t *buf = calloc(1, n);
    int rc = -1;
    if (buf) {
        fz_put_u64(buf, hl);
        memcpy(buf + 8, hdr, hl);
        rc = fz_write_file(path, buf, n);
    }
    free(buf);
    free(hdr);
    return rc;
}

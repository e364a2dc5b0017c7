/* fuzz_util.c — see fuzz_util.h. */
#include "fuzz_util.h"

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

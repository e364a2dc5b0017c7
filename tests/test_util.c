#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

double rel_err(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    if (isnan(num)) return INFINITY;
    return sqrt(num) / (den > 1e-30 ? sqrt(den) : 1e-15);
}

void fill_normal(float *x, size_t n, float scale, uint64_t seed) {
    hydra_rng r;
    hydra_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) x[i] = scale * hydra_rng_normal(&r);
}

hydra_config tiny_config(void) {
    hydra_config c = hydra_config_default();
    c.d_model = 32;
    c.n_layers = 4;
    c.n_heads = 2;
    c.head_dim = 16;
    c.vocab_size = 64;
    c.window = 8;
    c.mlp_multiple = 16;
    snprintf(c.pattern, sizeof c.pattern, "DDSD");
    return c;
}

hydra_config cuda_test_config(const char *pattern) {
    hydra_config c = hydra_config_default();
    c.d_model = 128;
    c.n_heads = 2;
    c.head_dim = 64;
    c.n_layers = (int)strlen(pattern);
    snprintf(c.pattern, sizeof c.pattern, "%s", pattern);
    c.window = 16;
    c.vocab_size = 64;
    c.init_std = 0.2f;
    return c;
}

const char *tmp_path(const char *name) {
    static char buf[512];
    snprintf(buf, sizeof buf, "/tmp/hydra_test_%d_%s", (int)getpid(), name);
    return buf;
}

static int python_has_torch(const char *py) {
    char cmd[700];
    snprintf(cmd, sizeof cmd, "'%s' -c 'import torch, numpy' >/dev/null 2>&1", py);
    return system(cmd) == 0;
}

const char *find_torch_python(void) {
    static char found[512];
    static int done = 0;
    if (done) return found[0] ? found : NULL;
    done = 1;
    const char *env = getenv("HYDRA_PYTHON");
    const char *cands[] = {env, "/usr/bin/python3", "python3"};
    for (size_t i = 0; i < sizeof cands / sizeof cands[0]; i++) {
        if (!cands[i] || !cands[i][0] || strchr(cands[i], '\'')) continue;
        if (python_has_torch(cands[i])) {
            snprintf(found, sizeof found, "%s", cands[i]);
            return found;
        }
    }
    return NULL;
}

const char *source_path(const char *rel) {
    static char buf[1024];
    const char *src = getenv("HYDRA_SOURCE_DIR");
    snprintf(buf, sizeof buf, "%s/%s", src && src[0] ? src : "..", rel);
    return buf;
}

int32_t *random_tokens(size_t n, int V, uint64_t seed) {
    int32_t *t = malloc((n ? n : 1) * sizeof *t);
    hydra_rng r;
    hydra_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) t[i] = (int32_t)(hydra_rng_next(&r) % (uint64_t)V);
    return t;
}

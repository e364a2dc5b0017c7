/* data.c — byte-level text data with a train/validation split and seeded
 * window sampling, exposed through the generic hydra_task interface. */
#include "core/fileio.h"
#include "core/internal.h"
#include "hydralm_train.h"

struct hydra_text_data {
    uint8_t *bytes; /* the whole file */
    size_t n;
    size_t n_train; /* [0, n_train) train, [n_train, n) validation */
};

hydra_status hydra_text_data_from_memory(const void *bytes, size_t n, double val_fraction,
                                         hydra_text_data **out) {
    if (!out || (!bytes && n)) return hydra_set_error(HYDRA_ERR_ARG, "text data: NULL argument");
    *out = NULL;
    if (!(val_fraction >= 0.0 && val_fraction < 1.0))
        return hydra_set_error(HYDRA_ERR_ARG, "text data: validation fraction must be in [0, 1) (got %g)", val_fraction);
    hydra_text_data *d = calloc(1, sizeof *d);
    if (!d) return hydra_set_error(HYDRA_ERR_NOMEM, "out of memory");
    d->bytes = malloc(n ? n : 1);
    if (!d->bytes) {
        free(d);
        return hydra_set_error(HYDRA_ERR_NOMEM, "out of memory for %zu bytes of text", n);
    }
    memcpy(d->bytes, bytes, n);
    d->n = n;
    d->n_train = n - (size_t)((double)n * val_fraction);
    *out = d;
    return HYDRA_OK;
}

hydra_status hydra_text_data_load(const char *path, double val_fraction, hydra_text_data **out) {
    if (!path || !out) return hydra_set_error(HYDRA_ERR_ARG, "text data: NULL argument");
    uint8_t *buf;
    size_t len;
    HYDRA_CHECK(hydra_read_file(path, "text data", (size_t)1 << 40, &buf, &len));
    hydra_status st = hydra_text_data_from_memory(buf, len, val_fraction, out);
    free(buf);
    return st;
}

void hydra_text_data_free(hydra_text_data *d) {
    if (!d) return;
    free(d->bytes);
    free(d);
}

size_t hydra_text_data_size(const hydra_text_data *d, int split) {
    if (!d) return 0;
    return split ? d->n - d->n_train : d->n_train;
}

const uint8_t *hydra_text_data_bytes(const hydra_text_data *d, int split) {
    if (!d) return NULL;
    return split ? d->bytes + d->n_train : d->bytes;
}

static hydra_status text_sample(void *ctx, int split, hydra_rng *rng, int B, int T, int32_t *inputs,
                                int32_t *targets, uint8_t *mask) {
    const hydra_text_data *d = ctx;
    size_t n = hydra_text_data_size(d, split);
    const uint8_t *x = hydra_text_data_bytes(d, split);
    if (n < (size_t)T + 1)
        return hydra_set_error(HYDRA_ERR_ARG, "the %s split has %zu bytes, fewer than seq+1 = %d",
                               split ? "validation" : "training", n, T + 1);
    for (int b = 0; b < B; b++) {
        size_t off = (size_t)(hydra_rng_next(rng) % (uint64_t)(n - (size_t)T));
        for (int t = 0; t < T; t++) {
            inputs[(size_t)b * T + t] = x[off + (size_t)t];
            targets[(size_t)b * T + t] = x[off + (size_t)t + 1];
            mask[(size_t)b * T + t] = 1;
        }
    }
    return HYDRA_OK;
}

hydra_task hydra_text_data_task(hydra_text_data *d) {
    hydra_task t = {"text", d, 256, text_sample};
    return t;
}

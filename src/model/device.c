/* device.c — where a model lives: hydra_model_to_device and friends. The
 * work itself is the backend's (src/backend/backend.h); this file only
 * parses device names and swaps the model's device copy. */
#include <errno.h>
#include <stdio.h>

#include "backend/backend.h"
#include "core/internal.h"

/* "cpu" -> -1; "cuda" -> 0; "cuda:N" -> N; anything else -> -2. */
static int parse_device(const char *s) {
    if (strcmp(s, "cpu") == 0) return -1;
    if (strcmp(s, "cuda") == 0) return 0;
    if (strncmp(s, "cuda:", 5) == 0 && s[5] >= '0' && s[5] <= '9') {
        char *end;
        errno = 0;
        long n = strtol(s + 5, &end, 10);
        if (!*end && !errno && n >= 0 && n < 1024) return (int)n;
    }
    return -2;
}

hydra_status hydra_model_to_device(hydra_model *m, const char *device, hydra_precision precision) {
    if (!m || !device) return hydra_set_error(HYDRA_ERR_ARG, "model_to_device: NULL argument");
    if (precision != HYDRA_PRECISION_DEFAULT && precision != HYDRA_PRECISION_F32 && precision != HYDRA_PRECISION_BF16)
        return hydra_set_error(HYDRA_ERR_ARG, "model_to_device: unknown precision %d", (int)precision);
    int dev = parse_device(device);
    if (dev == -2)
        return hydra_set_error(HYDRA_ERR_ARG, "model_to_device: unknown device \"%s\" (use cpu, cuda or cuda:N)", device);
    if (m->is_view && dev >= 0)
        return hydra_set_error(HYDRA_ERR_ARG, "model_to_device: move the f32 model, not its bf16 view");
    if (m->quant && dev >= 0) /* its f32 matrices do not exist: the upload would read what is not there */
        return hydra_set_error(HYDRA_ERR_ARG,
                               "model_to_device: a quantised model runs on the CPU only; load the f32 checkpoint for "
                               "the GPU (it has its own bf16 precision)");
    /* weights trained on the device come home before its copy goes */
    if (m->dev) HYDRA_CHECK(hydra_dev_train_download(m));
    hydra_dev_model *d = NULL;
    if (dev >= 0) HYDRA_CHECK(hydra_dev_model_create(m, dev, precision, &d));
    hydra_dev_model_free(m->dev);
    m->dev = d;
    if (dev >= 0) snprintf(m->device_name, sizeof m->device_name, "cuda:%d", dev);
    else snprintf(m->device_name, sizeof m->device_name, "cpu");
    return HYDRA_OK;
}

hydra_status hydra_require_cpu(const hydra_model *m, const char *what) {
    if (m->dev)
        return hydra_set_error(HYDRA_ERR_DEVICE,
                               "%s: the model lives on %s and training updates the host weights, so its device copy "
                               "would go stale; train on the CPU (hydra_model_to_device(m, \"cpu\", 0)) and move it "
                               "back afterwards",
                               what, m->device_name);
    return HYDRA_OK;
}

const char *hydra_model_device(const hydra_model *m) { return m && m->dev ? m->device_name : "cpu"; }

hydra_precision hydra_model_precision(const hydra_model *m) {
    return m && m->dev ? hydra_dev_model_precision(m->dev) : HYDRA_PRECISION_F32;
}

size_t hydra_model_device_bytes(const hydra_model *m) { return m && m->dev ? hydra_dev_model_bytes(m->dev) : 0; }

int hydra_cuda_compiled(void) { return hydra_dev_compiled(); }
int hydra_cuda_device_count(void) { return hydra_dev_count(); }

hydra_status hydra_cuda_device_name(int i, char *buf, size_t cap) {
    if (!buf || !cap) return hydra_set_error(HYDRA_ERR_ARG, "cuda_device_name: NULL buffer");
    buf[0] = 0;
    return hydra_dev_name(i, buf, cap);
}

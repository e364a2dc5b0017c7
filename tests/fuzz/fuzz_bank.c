/* fuzz_bank.c — bank files at both levels, told apart by their magic:
 * "HYDRAVEC" goes to hydra_vecmem_load (then a recall and a memorize),
 * anything else to hydra_factbank_load against a small D/S model (then the
 * bank is mounted in every mode, restore / replace / add, into a live state
 * that takes two tokens) and hydra_factbank_read_info. The checksum is fixed
 * up so mutations reach the checks behind it. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "hydralm_factbank.h"

static void vector_level(const char *path) {
    hydra_vecmem *vm = NULL;
    if (hydra_vecmem_load(path, &vm) != HYDRA_OK) return;
    const hydra_vecmem_opts *o = hydra_vecmem_get_opts(vm);
    float *k = calloc((size_t)o->d_key, sizeof(float)), *v = calloc((size_t)o->d_value, sizeof(float));
    if (k && v) {
        k[0] = 1.0f;
        if (hydra_vecmem_recall(vm, k, 1, v) != HYDRA_OK) fz_fail("recall on a loaded memory: %s", hydra_last_error());
        v[0] = 1.0f;
        if (hydra_vecmem_memorize(vm, k, v, 1) != HYDRA_OK) fz_fail("memorize on a loaded memory: %s", hydra_last_error());
    }
    free(k);
    free(v);
    hydra_vecmem_free(vm);
}

static void model_level(const char *path) {
    const hydra_model *m = fz_model("DS");
    hydra_factbank_info info;
    hydra_status si = hydra_factbank_read_info(path, &info);
    hydra_factbank *b = NULL;
    if (hydra_factbank_load(m, path, &b) != HYDRA_OK) return;
    if (si != HYDRA_OK) fz_fail("factbank_load accepts a file read_info refuses: %s", hydra_last_error());
    const hydra_mount_mode modes[] = {HYDRA_MOUNT_RESTORE, HYDRA_MOUNT_REPLACE, HYDRA_MOUNT_ADD};
    for (int i = 0; i < 3; i++) {
        hydra_state *s = NULL;
        if (hydra_state_create(m, &s) != HYDRA_OK) fz_fail("state_create: %s", hydra_last_error());
        if (hydra_factbank_mount(b, s, modes[i]) != HYDRA_OK) fz_fail("mount mode %d: %s", i, hydra_last_error());
        fz_feed(m, s);
        hydra_state_free(s);
    }
    hydra_factbank_free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_model("DS");
    const char *path = fz_input_file_fixed(data, size);
    if (size >= 8 && memcmp(data, "HYDRAVEC", 8) == 0)
        vector_level(path);
    else
        model_level(path);
    return 0;
}

/* fuzz_config.c — config JSON through hydra_config_from_json (over the
 * defaults). Invariants for an accepted config: it validates, its derived
 * sizes are positive, and it survives a round trip (to_json, from_json,
 * to_json gives the same text). */
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    hydra_config c = hydra_config_default(), back = hydra_config_default();
    char *j1 = NULL, *j2 = NULL;
    if (hydra_config_from_json(text, &c) == HYDRA_OK) {
        if (hydra_config_validate(&c) != HYDRA_OK) fz_fail("accepted config fails validate: %s", hydra_last_error());
        if (hydra_config_mlp_hidden(&c) < 1 || hydra_config_head_dim(&c) < 1) fz_fail("accepted config has a zero width");
        if (hydra_config_to_json(&c, &j1) != HYDRA_OK) fz_fail("to_json of an accepted config: %s", hydra_last_error());
        if (hydra_config_from_json(j1, &back) != HYDRA_OK) fz_fail("re-reading %s: %s", j1, hydra_last_error());
        if (hydra_config_to_json(&back, &j2) != HYDRA_OK || strcmp(j1, j2) != 0)
            fz_fail("round trip changed the config: %s -> %s", j1, j2 ? j2 : "(error)");
    }
    hydra_free(j1);
    hydra_free(j2);
    free(text);
    return 0;
}

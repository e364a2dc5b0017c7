/* fuzz_state.c — a session state file through hydra_state_load into states
 * of two small models, D/S/A (all three layer kinds: growing full-attention
 * caches in the payload) and D/S (no full attention: nothing but the
 * position bound limits the position); the fingerprint picks the one that
 * accepts it, which then takes two tokens. The checksum is fixed up
 * so mutations reach the checks behind it; built with FZ_RAW_CHECKSUM it is
 * left alone, and the harness fuzzes the checksum path itself. Invariant: a
 * refused file leaves the destination state untouched. */
#include "fuzz_util.h"
#include "hydralm_stream.h"

static void load_into(const hydra_model *m, const char *path) {
    hydra_state *s = NULL;
    if (hydra_state_create(m, &s) != HYDRA_OK) fz_fail("state_create: %s", hydra_last_error());
    hydra_status st = hydra_state_load(s, m, path);
    if (st == HYDRA_OK)
        fz_feed(m, s);
    else if (hydra_state_position(s) != 0)
        fz_fail("a refused state file moved the state to position %llu", (unsigned long long)hydra_state_position(s));
    hydra_state_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
#ifdef FZ_RAW_CHECKSUM
    const char *path = fz_input_file(data, size);
#else
    const char *path = fz_input_file_fixed(data, size);
#endif
    load_into(fz_model("DSA"), path);
    load_into(fz_model("DS"), path);
    return 0;
}

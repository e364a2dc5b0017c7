/* fuzz_checkpoint.c — a checkpoint (safetensors) through every load path:
 * hydra_model_load (f32), hydra_model_load_bf16 and hydra_model_load_quant
 * (as stored, and int8 at load); an accepted model then runs a forward step.
 * Invariants: the f32, bf16 and int8-at-load paths accept the same files with
 * the same fingerprint, and loading as stored accepts every file the f32 path
 * does (and the quantised files it refuses). No checksum guards this format. */
#include <stdlib.h>

#include "fuzz_util.h"
#include "hydralm_stream.h"

static void step(const hydra_model *m) {
    hydra_state *s = NULL;
    if (hydra_model_state_bytes(m) > ((size_t)64 << 20) || hydra_state_create(m, &s) != HYDRA_OK) return;
    fz_feed(m, s);
    hydra_state_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_model("D"); /* sets one thread */
    const char *path = fz_input_file(data, size);
    hydra_model *m = NULL, *h = NULL, *q = NULL, *a = NULL;
    hydra_status s32 = hydra_model_load(path, &m), s16 = hydra_model_load_bf16(path, &h);
    hydra_status sq = hydra_model_load_quant(path, HYDRA_QUANT_INT8, &q), sa = hydra_model_load_quant(path, HYDRA_QUANT_NONE, &a);
    if ((s32 == HYDRA_OK) != (s16 == HYDRA_OK) && s32 != HYDRA_ERR_NOMEM && s16 != HYDRA_ERR_NOMEM)
        fz_fail("f32 load %s but bf16 load %s (%s)", hydra_status_str(s32), hydra_status_str(s16), hydra_last_error());
    if (s32 == HYDRA_OK && (sa != HYDRA_OK || (sq != HYDRA_OK && sq != HYDRA_ERR_NOMEM)))
        fz_fail("f32 load accepted a file that load_quant refused (%s / %s)", hydra_status_str(sa), hydra_status_str(sq));
    if (m && h && hydra_model_fingerprint(m) != hydra_model_fingerprint(h)) fz_fail("f32 and bf16 fingerprints differ");
    if (m && q && hydra_model_fingerprint(m) != hydra_model_fingerprint(q)) fz_fail("f32 and int8 fingerprints differ");
    if (m) step(m);
    if (h) step(h);
    if (q) step(q);
    if (a && !m) step(a); /* a quantised file */
    hydra_model_free(m);
    hydra_model_free(h);
    hydra_model_free(q);
    hydra_model_free(a);
    return 0;
}

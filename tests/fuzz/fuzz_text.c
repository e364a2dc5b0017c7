/* fuzz_text.c — a text data file through hydra_text_data_load (validation
 * fraction from the file's length), then a batch sampled from each split
 * through the task interface. Invariant: every sampled id is a byte. */
#include <stdlib.h>

#include "fuzz_util.h"
#include "hydralm_train.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    hydra_text_data *d = NULL;
    double frac = (double)(size % 10) / 10.0;
    if (hydra_text_data_load(fz_input_file(data, size), frac, &d) != HYDRA_OK) return 0;
    if (hydra_text_data_size(d, 0) + hydra_text_data_size(d, 1) != size) fz_fail("split sizes do not add up");
    hydra_task t = hydra_text_data_task(d);
    hydra_rng rng;
    hydra_rng_seed(&rng, size);
    enum { B = 2, T = 8 };
    int32_t in[B * T], tg[B * T];
    uint8_t mask[B * T];
    for (int split = 0; split < 2; split++)
        if (t.sample(t.ctx, split, &rng, B, T, in, tg, mask) == HYDRA_OK)
            for (int i = 0; i < B * T; i++)
                if (in[i] < 0 || in[i] > 255 || tg[i] < 0 || tg[i] > 255) fz_fail("sampled id out of byte range");
    hydra_text_data_free(d);
    return 0;
}

/* hydra init — create a seeded model and save it as safetensors. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cmd_init(int argc, char **argv) {
    cli_spec s = {.usage = "hydra init [config options] --seed N --out m.safetensors",
                  .summary = "Creates a model with deterministic seeded weights (DESIGN §2 init) and\n"
                             "saves it. The same seed and config give the same file on every machine."};
    cli_config cc;
    uint64_t seed = 0;
    const char *out = NULL;
    cli_add_config_opts(&s, &cc);
    cli_add(&s, "seed", OPT_U64, &seed, "initialisation seed (default 0)");
    cli_add(&s, "out", OPT_STR, &out, "output checkpoint path (required)");
    int r = cli_parse(&s, argc, argv);
    if (r) return r > 0 ? 0 : 2;
    if (!out) {
        fprintf(stderr, "hydra init: --out is required (see --help)\n");
        return 2;
    }
    if (cli_config_resolve(&cc)) return 2;
    hydra_model *m = NULL;
    hydra_status st = hydra_model_create(&cc.cfg, seed, &m);
    if (st) return cli_fail("init", "creating the model", st);
    st = hydra_model_save(m, out);
    if (st) {
        hydra_model_free(m);
        return cli_fail("init", "saving", st);
    }
    char b[32];
    printf("wrote %s: %zu parameters (%s), seed %llu\n", out, hydra_model_n_params(m),
           cli_bytes(4.0 * (double)hydra_model_n_params(m), b, sizeof b), (unsigned long long)seed);
    hydra_model_free(m);
    return 0;
}

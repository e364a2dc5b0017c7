/* hydra quantize — write a quantised checkpoint (docs/quantization.md). */
#include "cli.h"

int cmd_quantize(int argc, char **argv) {
    cli_spec s = {.usage = "hydra quantize --model m.safetensors --quant int8|int4 --out q.safetensors",
                  .summary = "Quantises an f32 checkpoint's matrices (projections, MLP, head) to int8 or int4\n"
                             "with a bf16 scale per block of 32 and saves them (format_version 2, inference\n"
                             "only). generate / stream / eval load the result as it is; state files move\n"
                             "freely between it and the f32 model."};
    const char *model = NULL, *quant = NULL, *out = NULL;
    cli_add(&s, "model", OPT_STR, &model, "f32 checkpoint (required)");
    cli_add(&s, "quant", OPT_STR, &quant, "int8 or int4 (required)");
    cli_add(&s, "out", OPT_STR, &out, "output checkpoint path (required)");
    int r = cli_parse(&s, argc, argv);
    if (r) return r > 0 ? 0 : 2;
    if (!model || !quant || !out) {
        fprintf(stderr, "hydra quantize: --model, --quant and --out are required (see --help)\n");
        return 2;
    }
    if (cli_quant_check("quantize", quant, 0)) return 2;
    hydra_model *m = NULL;
    hydra_status st = cli_model_load(model, 0, quant, NULL, &m);
    if (st) return cli_fail("quantize", model, st);
    if ((st = hydra_model_save(m, out))) {
        hydra_model_free(m);
        return cli_fail("quantize", out, st);
    }
    char b[32];
    printf("wrote %s: %s matrices, %s of weights in memory, fingerprint %016llx (the f32 model's)\n", out,
           hydra_quant_name(hydra_model_quant(m)), cli_bytes((double)hydra_model_weight_bytes(m), b, sizeof b),
           (unsigned long long)hydra_model_fingerprint(m));
    hydra_model_free(m);
    return 0;
}

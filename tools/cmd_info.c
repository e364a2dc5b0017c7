/* hydra info — describe a checkpoint. */
#include <string.h>

#include "cli.h"

/* Which backends this build has and which GPUs it sees. */
static void print_backends(void) {
    printf("cpu           %s\n", hydra_blas_info());
    if (!hydra_cuda_compiled()) {
        printf("cuda          not in this build (no CUDA toolkit found when it was configured)\n");
        return;
    }
    int n = hydra_cuda_device_count();
    printf("cuda          built; %d device%s visible%s\n", n, n == 1 ? "" : "s", n ? "" : " (no GPU or no driver)");
    for (int i = 0; i < n; i++) {
        char name[256];
        if (hydra_cuda_device_name(i, name, sizeof name) == HYDRA_OK) printf("  cuda:%d      %s\n", i, name);
    }
}

int cmd_info(int argc, char **argv) {
    cli_spec s = {.usage = "hydra info [--tensors] [m.safetensors]",
                  .summary = "Prints the backends this build has (CPU BLAS, CUDA and the GPUs it sees); with a\n"
                             "checkpoint also its config, layer schedule, parameter count, state size per\n"
                             "sequence and model fingerprint."};
    int tensors = 0;
    cli_add(&s, "tensors", OPT_FLAG, &tensors, "also list every tensor with its shape");
    /* The checkpoint path is the one positional argument. */
    const char *path = NULL;
    char *rest[64];
    int n = 0;
    for (int i = 0; i < argc && n < 64; i++) {
        if (i > 0 && argv[i][0] != '-' && !path) path = argv[i];
        else rest[n++] = argv[i];
    }
    int r = cli_parse(&s, n, rest);
    if (r) return r > 0 ? 0 : 2;
    if (!path) {
        print_backends();
        return 0;
    }
    hydra_model *m = NULL;
    hydra_status st = hydra_model_load_quant(path, HYDRA_QUANT_NONE, &m); /* f32, or quantised as stored */
    if (st) return cli_fail("info", path, st);
    const hydra_config *c = hydra_model_config(m);
    char layers[HYDRA_MAX_LAYERS + 1], b1[32], b2[32];
    cli_schedule(c, layers);
    printf("checkpoint    %s\n", path);
    printf("d_model       %d\nn_layers      %d\nn_heads       %d\nhead_dim      %d\n", c->d_model,
           c->n_layers, c->n_heads, hydra_config_head_dim(c));
    printf("vocab_size    %d\nwindow        %d%s\nconv_width    %d\nmlp_hidden    %d\n", c->vocab_size,
           c->window, c->window ? "" : " (unbounded)", c->conv_width, hydra_config_mlp_hidden(c));
    printf("norm_eps      %g\nl2_eps        %g\ntied head     %s\ninit_std      %g\nrope_base     %g\n",
           c->norm_eps, c->l2_eps, c->tie_embeddings ? "yes" : "no", c->init_std, c->rope_base);
    printf("layers        %s  (D = Gated DeltaNet, S = sliding-window attention, A = full attention)\n", layers);
    printf("parameters    %zu (%s fp32)\n", hydra_model_n_params(m), cli_bytes(4.0 * (double)hydra_model_n_params(m), b1, sizeof b1));
    printf("state bytes   %zu (%s per sequence%s)\n", hydra_model_state_bytes(m),
           cli_bytes((double)hydra_model_state_bytes(m), b2, sizeof b2),
           strchr(layers, 'A') || (c->window == 0 && strchr(layers, 'S')) ? ", plus full-attention caches that grow with the context" : ", constant");
    if (hydra_model_quant(m))
        printf("matrices      %s-quantised (%s of weights in memory)\n", hydra_quant_name(hydra_model_quant(m)),
               cli_bytes((double)hydra_model_weight_bytes(m), b1, sizeof b1));
    printf("fingerprint   %016llx\n", (unsigned long long)hydra_model_fingerprint(m));
    if (tensors)
        for (int i = 0; i < hydra_model_n_tensors(m); i++) {
            hydra_tensor t;
            if (hydra_model_tensor(m, i, &t)) continue; /* held quantised only */
            if (t.ndim == 2) printf("  %-44s [%lld, %lld]\n", t.name, (long long)t.shape[0], (long long)t.shape[1]);
            else printf("  %-44s [%lld]\n", t.name, (long long)t.shape[0]);
        }
    print_backends();
    hydra_model_free(m);
    return 0;
}

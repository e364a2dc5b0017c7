/* make_seeds.c — writes the seed corpus (corpus/<format>/) and the
 * reproducers of the defects issue 21 fixed (crashes/<format>/) under the
 * directory given as argv[1] (tests/fuzz). The files are committed; rerun it
 * when a format changes:  build/tests/fuzz/fuzz_make_seeds tests/fuzz  */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_util.h"
#include "hydralm_factbank.h"
#include "hydralm_stream.h"

static const char *g_root;

static const char *out(const char *kind, const char *format, const char *name) {
    static char p[1024];
    snprintf(p, sizeof p, "%s/%s", g_root, kind);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/%s/%s", g_root, kind, format);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/%s/%s/%s", g_root, kind, format, name);
    return p;
}

static void ok(hydra_status st, const char *what) {
    if (st != HYDRA_OK) fz_fail("%s: %s", what, hydra_last_error());
}

static void text(const char *kind, const char *format, const char *name, const char *s) {
    if (fz_write_file(out(kind, format, name), s, strlen(s))) fz_fail("cannot write %s", name);
}

static void patch_u64(const char *src, const char *dst, size_t off, uint64_t v) {
    if (fz_patch_field(src, dst, off, 8, v)) fz_fail("cannot patch %s", src);
}

static void checkpoints(void) {
    ok(hydra_model_save(fz_model("DSA"), out("corpus", "checkpoint", "dsa.safetensors")), "save DSA");
    /* also the model the D/S state and bank seeds belong to (tests/hostile_cli.sh runs the CLI on them) */
    ok(hydra_model_save(fz_model("DS"), out("corpus", "checkpoint", "ds.safetensors")), "save DS");
    hydra_config c = fz_model_config("DS");
    c.tie_embeddings = 0;
    c.vocab_size = 16; /* small file; an untied head */
    hydra_model *m;
    ok(hydra_model_create(&c, FZ_MODEL_SEED, &m), "create untied");
    ok(hydra_model_save(m, out("corpus", "checkpoint", "ds-untied.safetensors")), "save untied");
    hydra_model_free(m);
    /* quantised checkpoints (format_version 2): untied int8, tied int4 */
    static const struct {
        const char *src, *dst;
        hydra_quant q;
    } qs[] = {{"ds-untied.safetensors", "ds-untied-int8.safetensors", HYDRA_QUANT_INT8},
              {"ds.safetensors", "ds-int4.safetensors", HYDRA_QUANT_INT4}};
    for (int i = 0; i < 2; i++) {
        char src[1024];
        snprintf(src, sizeof src, "%s", out("corpus", "checkpoint", qs[i].src));
        ok(hydra_model_load_quant(src, qs[i].q, &m), "quantise");
        ok(hydra_model_save(m, out("corpus", "checkpoint", qs[i].dst)), "save quantised");
        hydra_model_free(m);
    }
    /* defect 2: a small file whose config describes 830 MB of (conv-heavy) weights */
    if (fz_conv_heavy_checkpoint(out("crashes", "checkpoint", "conv-heavy-830MB.safetensors"), 256))
        fz_fail("cannot write the conv-heavy checkpoint");
}

static void states_and_banks(void) {
    const char *patterns[] = {"DSA", "DS"};
    int32_t toks[6] = {104, 101, 108, 108, 111, 10};
    for (int i = 0; i < 2; i++) {
        const hydra_model *m = fz_model(patterns[i]);
        hydra_state *s;
        char name[64];
        ok(hydra_state_create(m, &s), "state");
        snprintf(name, sizeof name, "%s-empty.hst", patterns[i]);
        ok(hydra_state_save(s, m, out("corpus", "state", name)), "save state");
        ok(hydra_forward(m, toks, 1, 6, &s, HYDRA_LOGITS_NONE, NULL), "feed");
        snprintf(name, sizeof name, "%s-6tokens.hst", patterns[i]);
        ok(hydra_state_save(s, m, out("corpus", "state", name)), "save state");
        hydra_state_free(s);
    }
    /* defect 1: a state of the D/S model (no full attention) at 2^63 - 1 */
    char src[1024];
    snprintf(src, sizeof src, "%s", out("corpus", "state", "DS-6tokens.hst"));
    patch_u64(src, out("crashes", "state", "DS-position-int64max.hst"), 20, INT64_MAX);

    const hydra_model *m = fz_model("DS");
    hydra_factbank *b;
    ok(hydra_factbank_create(m, &b), "bank");
    ok(hydra_factbank_write(b, toks, 6), "bank write");
    ok(hydra_factbank_save(b, out("corpus", "bank", "DS-6tokens.bnk")), "bank save");
    hydra_factbank_free(b);
    snprintf(src, sizeof src, "%s", out("corpus", "bank", "DS-6tokens.bnk"));
    patch_u64(src, out("crashes", "bank", "DS-position-int64max.bnk"), 20, INT64_MAX);

    hydra_vecmem_opts o = hydra_vecmem_opts_default(4, 4);
    o.n_heads = 2;
    for (int f = 0; f < 2; f++) {
        o.feature = f ? HYDRA_VECMEM_CUBIC : HYDRA_VECMEM_LINEAR;
        hydra_vecmem *vm;
        float k[8] = {1, 0, 0, 0, 0, 1, 0, 0}, v[8] = {0, 0, 1, 0, 0, 0, 0, 1};
        ok(hydra_vecmem_create(&o, &vm), "vecmem");
        ok(hydra_vecmem_memorize(vm, k, v, 2), "memorize");
        ok(hydra_vecmem_save(vm, out("corpus", "bank", f ? "vec-cubic.hvm" : "vec-linear.hvm")), "vecmem save");
        hydra_vecmem_free(vm);
    }
    /* defect 6: d_key 0 behind a valid checksum (the message was garbled) */
    snprintf(src, sizeof src, "%s", out("corpus", "bank", "vec-linear.hvm"));
    if (fz_patch_field(src, out("crashes", "bank", "vec-dkey-0.hvm"), 12, 4, 0)) fz_fail("cannot patch %s", src);
}

static void configs(void) {
    char *j;
    hydra_config c = hydra_config_default();
    ok(hydra_config_to_json(&c, &j), "to_json");
    text("corpus", "config", "default.json", j);
    hydra_free(j);
    c = fz_model_config("DSA");
    ok(hydra_config_to_json(&c, &j), "to_json");
    text("corpus", "config", "dsa.json", j);
    hydra_free(j);
    text("corpus", "config", "small.json", "{\"d_model\":64,\"n_heads\":4,\"head_dim\":0,\"swa_every\":2}");
    text("crashes", "config", "mlp-multiple-int32max.json", "{\"mlp_multiple\":2147483647}");
    text("crashes", "config", "rope-base-1e39.json", "{\"rope_base\":1e39}");
    text("crashes", "config", "window-4194304.json", "{\"window\":4194304}");
    text("crashes", "config", "odd-head-dim-with-attention.json",
         "{\"d_model\":6,\"n_layers\":2,\"n_heads\":2,\"head_dim\":3,\"pattern\":\"DS\"}");
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s tests/fuzz\n", argv[0]);
        return 2;
    }
    g_root = argv[1];
    checkpoints();
    states_and_banks();
    configs();
    text("corpus", "text", "hello.txt", "hello world\n");
    text("corpus", "text", "lines.txt", "The quick brown fox\njumps over the lazy dog.\n0123456789\n");
    printf("seeds written under %s\n", g_root);
    return 0;
}

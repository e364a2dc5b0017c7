/* test_factbank.c — FactBank: the vector memory (exact recall of orthogonal
 * keys, 1,000 random facts at d = 1,024, overwrite, constant bytes, files)
 * and the model-level bank (mount == having read the facts, bit for bit,
 * across processes; refusal of foreign / truncated / corrupt files). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/internal.h"
#include "hydralm_factbank.h"
#include "test_util.h"

static double cosine(const float *a, const float *b, int n) {
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return ab / (sqrt(aa * bb) + 1e-300);
}

static long file_size(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

static void flip_byte(const char *path, long off) {
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, off, SEEK_SET);
    int c = fgetc(f);
    fseek(f, off, SEEK_SET);
    fputc(c ^ 0x10, f);
    fclose(f);
}

static void truncate_to(const char *path, long n) { assert_int_equal(truncate(path, n), 0); }

/* ------------------------------------------------------- vector memory */
static void test_vecmem_orthogonal_exact(void **state) {
    (void)state;
    const int d = 64, dv = 48, n = 64;
    float *K = malloc(sizeof(float) * n * d), *V = malloc(sizeof(float) * n * dv), *R = malloc(sizeof(float) * n * dv);
    fill_normal(K, (size_t)n * d, 1.0f, 1);
    fill_normal(V, (size_t)n * dv, 1.0f, 2);
    /* Gram-Schmidt in double: n orthonormal (dense) keys, then scaled (norm is irrelevant). */
    for (int i = 0; i < n; i++) {
        for (int pass = 0; pass < 2; pass++)
            for (int j = 0; j < i; j++) {
                double dot = 0;
                for (int t = 0; t < d; t++) dot += (double)K[i * d + t] * K[j * d + t];
                for (int t = 0; t < d; t++) K[i * d + t] -= (float)(dot * K[j * d + t]);
            }
        double nn = 0;
        for (int t = 0; t < d; t++) nn += (double)K[i * d + t] * K[i * d + t];
        for (int t = 0; t < d; t++) K[i * d + t] = (float)(K[i * d + t] / sqrt(nn));
    }
    for (int i = 0; i < n; i++)
        for (int t = 0; t < d; t++) K[i * d + t] *= (float)(1 + i % 3);
    hydra_vecmem_opts o = hydra_vecmem_opts_default(d, dv);
    hydra_vecmem *vm;
    HY_OK(hydra_vecmem_create(&o, &vm));
    HY_OK(hydra_vecmem_memorize(vm, K, V, (size_t)n));
    HY_OK(hydra_vecmem_recall(vm, K, (size_t)n, R));
    double worst = 1;
    for (int i = 0; i < n; i++) worst = fmin(worst, cosine(R + i * dv, V + i * dv, dv));
    if (!(worst >= 1 - 1e-6)) fail_msg("orthogonal keys: worst cosine %.9f < 1 - 1e-6", worst);
    assert_int_equal(hydra_vecmem_count(vm), n);
    hydra_vecmem_free(vm);
    free(K), free(V), free(R);
}

/* The chunkwise write equals the token-by-token delta rule (reference op):
 * with linear features every head holds S_ref R_h^T, so recall(q) = S_ref q/|q|. */
static void test_vecmem_matches_delta_rule_ref(void **state) {
    (void)state;
    const int d = 24, dv = 20, n = 600;
    const float alpha = 0.97f, beta = 0.8f;
    float *K = malloc(sizeof(float) * n * d), *V = malloc(sizeof(float) * n * dv), *Q = malloc(sizeof(float) * 5 * d);
    float *g = malloc(sizeof(float) * n), *b = malloc(sizeof(float) * n), *o = malloc(sizeof(float) * n * dv);
    float *S = calloc((size_t)dv * d, sizeof(float)), *want = malloc(sizeof(float) * 5 * dv), *got = malloc(sizeof(float) * 5 * dv);
    fill_normal(K, (size_t)n * d, 1.0f, 31);
    fill_normal(V, (size_t)n * dv, 1.0f, 32);
    fill_normal(Q, (size_t)5 * d, 1.0f, 33);
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int t = 0; t < d; t++) s += (double)K[i * d + t] * K[i * d + t];
        for (int t = 0; t < d; t++) K[i * d + t] = (float)(K[i * d + t] / sqrt(s));
        g[i] = logf(alpha);
        b[i] = beta;
    }
    HY_OK(hydra_op_delta_rule_ref(n, 1, d, dv, K, K, V, g, b, S, o));
    for (int i = 0; i < 5; i++) {
        double s = 0;
        for (int t = 0; t < d; t++) s += (double)Q[i * d + t] * Q[i * d + t];
        for (int r = 0; r < dv; r++) {
            double acc = 0;
            for (int t = 0; t < d; t++) acc += (double)S[r * d + t] * Q[i * d + t];
            want[i * dv + r] = (float)(acc / sqrt(s));
        }
    }
    hydra_vecmem_opts opt = hydra_vecmem_opts_default(d, dv);
    opt.alpha = alpha;
    opt.beta = beta;
    opt.n_heads = 3;
    hydra_vecmem *vm;
    HY_OK(hydra_vecmem_create(&opt, &vm));
    HY_OK(hydra_vecmem_memorize(vm, K, V, 300)); /* two calls, several chunks, not aligned */
    HY_OK(hydra_vecmem_memorize(vm, K + 300 * d, V + 300 * dv, (size_t)n - 300));
    HY_OK(hydra_vecmem_recall(vm, Q, 5, got));
    ASSERT_REL(got, want, (size_t)5 * dv, 1e-4);
    hydra_vecmem_free(vm);
    free(K), free(V), free(Q), free(g), free(b), free(o), free(S), free(want), free(got);
}

/* top-1: the stored value nearest (cosine) to each recall is its own. */
static double top1(const float *R, const float *V, int n, int dv) {
    float *Vn = malloc(sizeof(float) * n * dv), *sc = malloc(sizeof(float) * n * n);
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int t = 0; t < dv; t++) s += (double)V[i * dv + t] * V[i * dv + t];
        for (int t = 0; t < dv; t++) Vn[i * dv + t] = (float)(V[i * dv + t] / sqrt(s));
    }
    HY_OK(hydra_op_matmul(n, n, dv, R, Vn, sc, 0)); /* sc [n, n] = R . Vn^T */
    int ok = 0;
    for (int i = 0; i < n; i++) {
        int best = 0;
        for (int j = 1; j < n; j++)
            if (sc[(size_t)i * n + j] > sc[(size_t)i * n + best]) best = j;
        ok += best == i;
    }
    free(Vn), free(sc);
    return (double)ok / n;
}

static void test_vecmem_1000_facts(void **state) {
    (void)state;
    const int d = 1024, n = 1000;
    float *K = malloc(sizeof(float) * n * d), *V = malloc(sizeof(float) * n * d), *R = malloc(sizeof(float) * n * d);
    fill_normal(K, (size_t)n * d, 1.0f, 11);
    fill_normal(V, (size_t)n * d, 1.0f, 12);
    hydra_vecmem_opts o = hydra_vecmem_opts_default(d, d);
    assert_int_equal(o.n_heads, 4);
    hydra_vecmem *vm;
    HY_OK(hydra_vecmem_create(&o, &vm));
    size_t bytes0 = hydra_vecmem_bytes(vm);
    HY_OK(hydra_vecmem_memorize(vm, K, V, (size_t)n));
    assert_int_equal(hydra_vecmem_bytes(vm), bytes0); /* bytes independent of facts written */
    assert_int_equal(bytes0, (size_t)4 * d * d * sizeof(float));
    HY_OK(hydra_vecmem_recall(vm, K, (size_t)n, R));
    double acc = top1(R, V, n, d);
    if (!(acc >= 0.99)) fail_msg("1000 facts at d=1024, 4 heads: top-1 %.4f < 0.99", acc);

    /* save / load: same recall bit for bit, same size whatever was written */
    char p1[512], p2[512];
    snprintf(p1, sizeof p1, "%s", tmp_path("vm1.hvm"));
    snprintf(p2, sizeof p2, "%s", tmp_path("vm2.hvm"));
    HY_OK(hydra_vecmem_save(vm, p1));
    hydra_vecmem *vm2;
    HY_OK(hydra_vecmem_load(p1, &vm2));
    assert_int_equal(hydra_vecmem_count(vm2), n);
    float *R2 = malloc(sizeof(float) * 8 * d);
    HY_OK(hydra_vecmem_recall(vm2, K, 8, R2));
    assert_memory_equal(R2, R, sizeof(float) * 8 * d);
    hydra_vecmem_reset(vm2);
    assert_int_equal(hydra_vecmem_count(vm2), 0);
    HY_OK(hydra_vecmem_memorize(vm2, K, V, 3));
    HY_OK(hydra_vecmem_save(vm2, p2));
    assert_int_equal(file_size(p1), file_size(p2));
    /* corrupt / truncated files are refused */
    hydra_vecmem *bad = NULL;
    flip_byte(p2, 100);
    assert_int_equal(hydra_vecmem_load(p2, &bad), HYDRA_ERR_FORMAT);
    assert_non_null(strstr(hydra_last_error(), "checksum"));
    truncate_to(p1, file_size(p1) - 5);
    assert_int_equal(hydra_vecmem_load(p1, &bad), HYDRA_ERR_FORMAT);
    assert_non_null(strstr(hydra_last_error(), "truncated"));
    assert_null(bad);
    unlink(p1), unlink(p2);
    hydra_vecmem_free(vm), hydra_vecmem_free(vm2);
    free(K), free(V), free(R), free(R2);
}

static void test_vecmem_overwrite(void **state) {
    (void)state;
    const int d = 256, n = 200;
    float *K = malloc(sizeof(float) * n * d), *V = malloc(sizeof(float) * n * d), *nv = malloc(sizeof(float) * d);
    float *r = malloc(sizeof(float) * d);
    fill_normal(K, (size_t)n * d, 1.0f, 21);
    fill_normal(V, (size_t)n * d, 1.0f, 22);
    fill_normal(nv, (size_t)d, 1.0f, 23);
    for (int f = 0; f < 2; f++) {
        hydra_vecmem_opts o = hydra_vecmem_opts_default(d, d);
        o.feature = f ? HYDRA_VECMEM_CUBIC : HYDRA_VECMEM_LINEAR;
        hydra_vecmem *vm;
        HY_OK(hydra_vecmem_create(&o, &vm));
        HY_OK(hydra_vecmem_memorize(vm, K, V, (size_t)n));
        HY_OK(hydra_vecmem_memorize(vm, K + 17 * d, nv, 1)); /* rewrite key 17 */
        HY_OK(hydra_vecmem_memorize(vm, K + 40 * d, V + 41 * d, 1)); /* and another fact after it */
        HY_OK(hydra_vecmem_recall(vm, K + 17 * d, 1, r));
        double cn = cosine(r, nv, d), co = cosine(r, V + 17 * d, d);
        if (!(cn >= 0.8 && co <= 0.2)) fail_msg("feature %d: overwrite: cos(new) %.3f cos(old) %.3f", f, cn, co);
        /* invalid input leaves the memory untouched */
        float z[256] = {0};
        uint64_t c = hydra_vecmem_count(vm);
        assert_int_equal(hydra_vecmem_memorize(vm, z, nv, 1), HYDRA_ERR_ARG);
        assert_int_equal(hydra_vecmem_count(vm), c);
        hydra_vecmem_free(vm);
    }
    hydra_vecmem_opts o = hydra_vecmem_opts_default(d, d);
    hydra_vecmem *vm = NULL;
    o.beta = 0;
    assert_int_equal(hydra_vecmem_create(&o, &vm), HYDRA_ERR_ARG);
    o = hydra_vecmem_opts_default(0, d);
    assert_int_equal(hydra_vecmem_create(&o, &vm), HYDRA_ERR_ARG);
    assert_null(vm);
    free(K), free(V), free(nv), free(r);
}

/* ------------------------------------------------------ model-level bank */
#define NF 40 /* fact tokens: longer than the tiny model's window (8) */
#define NP 6  /* prompt tokens */

static void make_tokens(int32_t *facts, int32_t *prompt, int V) {
    for (int i = 0; i < NF; i++) facts[i] = (int32_t)((i * 37 + 5) % V);
    for (int i = 0; i < NP; i++) prompt[i] = (int32_t)((i * 11 + 3) % V);
}

/* Child process: its own model from the seed, writes the bank, exits. */
static int child_write_bank(const char *path) {
    hydra_config c = tiny_config();
    hydra_model *m;
    if (hydra_model_create(&c, 7, &m)) return 1;
    int32_t facts[NF], prompt[NP];
    make_tokens(facts, prompt, c.vocab_size);
    hydra_factbank *b;
    if (hydra_factbank_create(m, &b) || hydra_factbank_write(b, facts, 25) || hydra_factbank_write(b, facts + 25, NF - 25) ||
        hydra_factbank_save(b, path))
        return 2;
    hydra_factbank_free(b);
    hydra_model_free(m);
    return 0;
}

static void test_bank_mount_equals_in_context(void **state) {
    (void)state;
    hydra_config c = tiny_config();
    const int V = c.vocab_size;
    hydra_model *m;
    HY_OK(hydra_model_create(&c, 7, &m));
    int32_t facts[NF], prompt[NP], all[NF + NP];
    make_tokens(facts, prompt, V);
    memcpy(all, facts, sizeof facts);
    memcpy(all + NF, prompt, sizeof prompt);
    char path[512];
    snprintf(path, sizeof path, "%s", tmp_path("bank.hbk"));

    /* Process A (this test binary run again, a fresh process) writes the bank
     * (two writes: 25 + 15 tokens). fork() alone is not enough: an OpenMP
     * runtime does not survive it, so the child execs. */
    fflush(NULL);
    char *args[] = {(char *)"test_factbank", (char *)"--write-bank", path, NULL};
    extern char **environ;
    pid_t pid;
    assert_int_equal(posix_spawn(&pid, "/proc/self/exe", NULL, NULL, args, environ), 0);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    /* Reference: this process reads the facts in context (same split), then the prompt. */
    hydra_state *ref;
    HY_OK(hydra_state_create(m, &ref));
    float *Lref = malloc(sizeof(float) * NP * V), *Lbank = malloc(sizeof(float) * NP * V);
    float *Lone = malloc(sizeof(float) * (NF + NP) * V);
    HY_OK(hydra_forward(m, facts, 1, 25, &ref, HYDRA_LOGITS_NONE, NULL));
    HY_OK(hydra_forward(m, facts + 25, 1, NF - 25, &ref, HYDRA_LOGITS_NONE, NULL));
    HY_OK(hydra_forward(m, prompt, 1, NP, &ref, HYDRA_LOGITS_ALL, Lref));

    /* Process B (here): load the bank, mount into a live state that held something else. */
    hydra_factbank_info info;
    HY_OK(hydra_factbank_read_info(path, &info));
    assert_int_equal(info.tokens, NF);
    assert_string_equal(info.schedule, "DDSD");
    assert_int_equal(info.fingerprint, hydra_model_fingerprint(m));
    hydra_factbank *b;
    HY_OK(hydra_factbank_load(m, path, &b));
    assert_int_equal(hydra_factbank_tokens(b), NF);
    hydra_state *live;
    HY_OK(hydra_state_create(m, &live));
    HY_OK(hydra_forward(m, prompt, 1, NP, &live, HYDRA_LOGITS_NONE, NULL)); /* unrelated earlier context */
    HY_OK(hydra_factbank_mount(b, live, HYDRA_MOUNT_RESTORE));
    assert_int_equal(hydra_state_position(live), NF);
    HY_OK(hydra_forward(m, prompt, 1, NP, &live, HYDRA_LOGITS_ALL, Lbank));
    assert_memory_equal(Lbank, Lref, sizeof(float) * NP * V); /* bit-exact */

    /* And against one forward over facts ++ prompt: equal up to fp32 rounding. */
    HY_OK(hydra_forward(m, all, 1, NF + NP, NULL, HYDRA_LOGITS_ALL, Lone));
    ASSERT_REL(Lbank, Lone + (size_t)NF * V, (size_t)NP * V, 1e-4);

    /* Generation after a mount equals generation after the facts in context. */
    hydra_gen_opts g = hydra_gen_opts_default();
    g.max_new_tokens = 8;
    g.sample.temperature = 0;
    int32_t o1[8], o2[8];
    size_t n1, n2;
    HY_OK(hydra_factbank_mount(b, live, HYDRA_MOUNT_RESTORE));
    HY_OK(hydra_generate(m, live, prompt, NP, &g, o1, 8, &n1));
    HY_OK(hydra_generate(m, NULL, all, NF + NP, &g, o2, 8, &n2));
    assert_int_equal(n1, n2);
    assert_memory_equal(o1, o2, n1 * sizeof *o1);

    hydra_state_free(ref), hydra_state_free(live);
    hydra_factbank_free(b);
    hydra_model_free(m);
    unlink(path);
    free(Lref), free(Lbank), free(Lone);
}

static void test_bank_modes_size_and_refusals(void **state) {
    (void)state;
    hydra_config c = tiny_config();
    hydra_model *m, *other;
    HY_OK(hydra_model_create(&c, 7, &m));
    HY_OK(hydra_model_create(&c, 8, &other));
    int32_t facts[NF], prompt[NP];
    make_tokens(facts, prompt, c.vocab_size);
    hydra_factbank *b;
    HY_OK(hydra_factbank_create(m, &b));
    size_t bytes0 = hydra_factbank_bytes(b);
    assert_int_equal(bytes0, hydra_model_state_bytes(m));
    HY_OK(hydra_factbank_write(b, facts, NF));
    assert_int_equal(hydra_factbank_bytes(b), bytes0);

    /* REPLACE: DeltaNet S from the bank, everything else live; ADD: S_live + S_bank. */
    hydra_state *live, *before;
    HY_OK(hydra_state_create(m, &live));
    HY_OK(hydra_state_create(m, &before));
    HY_OK(hydra_forward(m, prompt, 1, NP, &live, HYDRA_LOGITS_NONE, NULL));
    HY_OK(hydra_state_copy(before, live));
    HY_OK(hydra_factbank_mount(b, live, HYDRA_MOUNT_ADD));
    const hydra_state *bs = hydra_factbank_state(b);
    size_t sn = (size_t)c.n_heads * c.head_dim * c.head_dim;
    for (int i = 0; i < c.n_layers; i++) {
        if (hydra_config_layer_kind(&c, i) != HYDRA_LAYER_DELTANET) continue;
        for (size_t j = 0; j < sn; j++)
            assert_true(live->layers[i].S[j] == before->layers[i].S[j] + bs->layers[i].S[j]);
    }
    HY_OK(hydra_factbank_mount(b, live, HYDRA_MOUNT_REPLACE));
    assert_int_equal(hydra_state_position(live), NP);
    for (int i = 0; i < c.n_layers; i++) {
        if (hydra_config_layer_kind(&c, i) == HYDRA_LAYER_DELTANET) {
            assert_memory_equal(live->layers[i].S, bs->layers[i].S, sn * sizeof(float));
            assert_memory_equal(live->layers[i].conv, before->layers[i].conv,
                                (size_t)(c.conv_width - 1) * 3 * c.n_heads * c.head_dim * sizeof(float));
        } else {
            assert_memory_equal(live->layers[i].kc, before->layers[i].kc, live->layers[i].cap * 2 * c.n_heads * c.head_dim * sizeof(float));
        }
    }
    assert_int_equal(hydra_factbank_mount(b, live, (hydra_mount_mode)7), HYDRA_ERR_ARG);

    /* File size does not grow with facts written. */
    char p1[512], p2[512];
    snprintf(p1, sizeof p1, "%s", tmp_path("b1.hbk"));
    snprintf(p2, sizeof p2, "%s", tmp_path("b2.hbk"));
    HY_OK(hydra_factbank_save(b, p1));
    int32_t *many = malloc(sizeof(int32_t) * 1500);
    for (int i = 0; i < 1500; i++) many[i] = (int32_t)((i * 13 + 1) % c.vocab_size);
    HY_OK(hydra_factbank_write(b, many, 1500)); /* crosses the 512-token chunk */
    assert_int_equal(hydra_factbank_tokens(b), NF + 1500);
    HY_OK(hydra_factbank_save(b, p2));
    assert_int_equal(file_size(p1), file_size(p2));

    /* Refusals, with clear messages. */
    hydra_factbank *x = NULL;
    assert_int_equal(hydra_factbank_load(other, p1, &x), HYDRA_ERR_MISMATCH);
    assert_non_null(strstr(hydra_last_error(), "different model"));
    flip_byte(p2, 200);
    assert_int_equal(hydra_factbank_load(m, p2, &x), HYDRA_ERR_FORMAT);
    assert_non_null(strstr(hydra_last_error(), "checksum"));
    HY_OK(hydra_factbank_save(b, p2));
    truncate_to(p2, file_size(p2) - 1);
    assert_int_equal(hydra_factbank_load(m, p2, &x), HYDRA_ERR_FORMAT);
    assert_non_null(strstr(hydra_last_error(), "truncated"));
    truncate_to(p2, 30);
    assert_int_equal(hydra_factbank_load(m, p2, &x), HYDRA_ERR_FORMAT);
    flip_byte(p2, 0);
    assert_int_equal(hydra_factbank_load(m, p2, &x), HYDRA_ERR_FORMAT);
    assert_non_null(strstr(hydra_last_error(), "magic"));
    assert_int_equal(hydra_factbank_load(m, "/nonexistent/bank.hbk", &x), HYDRA_ERR_IO);
    assert_null(x);

    /* Bad ids write nothing; text needs a byte vocabulary; full attention is refused. */
    int32_t badtok[3] = {1, 2, c.vocab_size};
    uint64_t t0 = hydra_factbank_tokens(b);
    assert_int_equal(hydra_factbank_write(b, badtok, 3), HYDRA_ERR_ARG);
    assert_int_equal(hydra_factbank_tokens(b), t0);
    assert_int_equal(hydra_factbank_write_text(b, "abc", 3), HYDRA_ERR_ARG);
    hydra_factbank_reset(b);
    assert_int_equal(hydra_factbank_tokens(b), 0);
    hydra_config fa = tiny_config();
    snprintf(fa.pattern, sizeof fa.pattern, "DDAD");
    hydra_model *mfa;
    HY_OK(hydra_model_create(&fa, 1, &mfa));
    assert_int_equal(hydra_factbank_create(mfa, &x), HYDRA_ERR_ARG);
    hydra_model_free(mfa);

    unlink(p1), unlink(p2);
    free(many);
    hydra_state_free(live), hydra_state_free(before);
    hydra_factbank_free(b);
    hydra_model_free(m), hydra_model_free(other);
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--write-bank")) return child_write_bank(argv[2]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vecmem_orthogonal_exact),
        cmocka_unit_test(test_vecmem_matches_delta_rule_ref),
        cmocka_unit_test(test_vecmem_1000_facts),
        cmocka_unit_test(test_vecmem_overwrite),
        cmocka_unit_test(test_bank_mount_equals_in_context),
        cmocka_unit_test(test_bank_modes_size_and_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

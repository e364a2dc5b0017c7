/* test_quant.c — quantised weights (issue 20): quantise/dequantise error
 * bounds, every SIMD kernel against the plain reference, the kernel against
 * the f32 product; the model-level tests (load, save, refusals, state files,
 * quality) are in the second half. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/internal.h"
#include "hydralm_stream.h"
#include "hydralm_train.h"
#include "test_util.h"

static const hydra_quant FMTS[] = {HYDRA_QUANT_INT8, HYDRA_QUANT_INT4};
static const char *const SIMD[] = {"avx2", "vnni"};

typedef struct {
    uint8_t *q;
    uint16_t *d;
} qbuf;

static qbuf quantize(hydra_quant f, int N, int K, const float *W) {
    qbuf b = {malloc((size_t)N * hydra_quant_row_bytes(f, K) + 1),
              malloc((size_t)N * hydra_quant_row_blocks(K) * sizeof(uint16_t) + 2)};
    HY_OK(hydra_quantize_rows(f, N, K, W, b.q, b.d));
    return b;
}
static void qbuf_free(qbuf *b) {
    free(b->q);
    free(b->d);
}

/* Every element is within half a level of its block's scale (a full level
 * for the int4 value that lands on +8 and clips to 7), and the scale is at
 * most 2^-7 above max|w| / 127 (int8) or max|w| / 8 (int4). Covers K not a
 * multiple of 32, an all-zero block and large and tiny magnitudes. */
static void test_quantize_error_bound(void **st) {
    (void)st;
    const int N = 7, K = 100, nb = hydra_quant_row_blocks(K);
    float *W = malloc((size_t)N * K * sizeof *W), *R = malloc((size_t)N * K * sizeof *R);
    fill_normal(W, (size_t)N * K, 0.05f, 1);
    for (int k = 32; k < 64; k++) W[k] = 0.0f;         /* row 0, block 1: zeros */
    for (int k = 0; k < K; k++) W[K + k] *= 1e4f;      /* row 1: large */
    for (int k = 0; k < K; k++) W[2 * K + k] *= 1e-6f; /* row 2: tiny */
    for (size_t f = 0; f < 2; f++) {
        qbuf b = quantize(FMTS[f], N, K, W);
        HY_OK(hydra_dequantize_rows(FMTS[f], N, K, b.q, b.d, R));
        for (int n = 0; n < N; n++)
            for (int blk = 0; blk < nb; blk++) {
                float amax = 0, d;
                int k0 = blk * 32, k1 = k0 + 32 < K ? k0 + 32 : K;
                for (int k = k0; k < k1; k++) amax = fmaxf(amax, fabsf(W[(size_t)n * K + k]));
                uint32_t u = (uint32_t)b.d[n * nb + blk] << 16;
                memcpy(&d, &u, sizeof d);
                d = fabsf(d);
                float ideal = amax / (FMTS[f] == HYDRA_QUANT_INT8 ? 127.0f : 8.0f);
                assert_true(d >= ideal && d <= ideal * (1.0f + 1.0f / 128));
                for (int k = k0; k < k1; k++) {
                    float e = fabsf(R[(size_t)n * K + k] - W[(size_t)n * K + k]);
                    float bound = (FMTS[f] == HYDRA_QUANT_INT8 ? 0.5f : 1.0f) * d * (1 + 1e-6f);
                    if (e > bound) fail_msg("%s row %d k %d: error %g > %g", hydra_quant_name(FMTS[f]), n, k, e, bound);
                }
                if (amax == 0)
                    for (int k = k0; k < k1; k++) assert_true(R[(size_t)n * K + k] == 0.0f);
            }
        qbuf_free(&b);
    }
    /* int8 of Gaussian weights: rms error about 1% of the rms weight at most */
    qbuf b = quantize(HYDRA_QUANT_INT8, N, K, W);
    HY_OK(hydra_dequantize_rows(HYDRA_QUANT_INT8, N, K, b.q, b.d, R));
    assert_true(rel_err(R + 3 * K, W + 3 * K, (size_t)4 * K) < 0.01);
    qbuf_free(&b);
    free(W);
    free(R);
}

/* y from the kernel named `kernel` (NULL: whatever is selected). */
static void run_kernel(const char *kernel, hydra_quant f, int M, int N, int K, const float *x, const qbuf *b,
                       float *y, int acc) {
    if (kernel) HY_OK(hydra_quant_set_kernel(kernel));
    HY_OK(hydra_op_matmul_q(f, M, N, K, x, b->q, b->d, y, acc));
    HY_OK(hydra_quant_set_kernel("auto"));
}

/* Each SIMD kernel against the reference, over shapes that exercise the
 * 4-row tiles and their remainder, a partial last block, several inputs
 * (speculative verify) and accumulate; the integer block sums are exact in
 * both, so they differ only by the order of the f32 sums. */
static void test_simd_vs_reference(void **st) {
    (void)st;
    /* test_quant_ref runs this whole file with HYDRA_QUANT_REF=1: the models then use the reference */
    const char *env = getenv("HYDRA_QUANT_REF");
    if (env && strcmp(env, "1") == 0) assert_string_equal(hydra_quant_kernel(), "ref");
    else if (hydra_quant_kernel_supported("avx2")) assert_string_not_equal(hydra_quant_kernel(), "ref");
    static const int shapes[][3] = {{1, 64, 768}, {1, 37, 100}, {3, 13, 33}, {6, 130, 256}, {15, 8, 2048}, {1, 5, 7}};
    int ran = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *W = malloc((size_t)N * K * sizeof *W), *x = malloc((size_t)M * K * sizeof *x);
        float *yr = malloc((size_t)M * N * sizeof *yr), *ys = malloc((size_t)M * N * sizeof *ys);
        fill_normal(W, (size_t)N * K, 0.02f, 10 + s);
        fill_normal(x, (size_t)M * K, 1.0f, 20 + s);
        for (size_t f = 0; f < 2; f++) {
            qbuf b = quantize(FMTS[f], N, K, W);
            for (int acc = 0; acc < 2; acc++) {
                fill_normal(yr, (size_t)M * N, 0.1f, 30);
                fill_normal(ys, (size_t)M * N, 0.1f, 30);
                run_kernel("ref", FMTS[f], M, N, K, x, &b, yr, acc);
                for (size_t k = 0; k < 2; k++) {
                    if (!hydra_quant_kernel_supported(SIMD[k])) {
                        assert_int_equal(hydra_quant_set_kernel(SIMD[k]), HYDRA_ERR_ARG);
                        continue;
                    }
                    fill_normal(ys, (size_t)M * N, 0.1f, 30);
                    run_kernel(SIMD[k], FMTS[f], M, N, K, x, &b, ys, acc);
                    for (int i = 0; i < M * N; i++)
                        if (fabsf(ys[i] - yr[i]) > 1e-5f * (1 + fabsf(yr[i])))
                            fail_msg("%s %s M%d N%d K%d acc%d: y[%d] %g vs ref %g", SIMD[k],
                                     hydra_quant_name(FMTS[f]), M, N, K, acc, i, ys[i], yr[i]);
                    ran++;
                }
            }
            qbuf_free(&b);
        }
        free(W), free(x), free(yr), free(ys);
    }
    printf("quant kernel %s (auto); SIMD comparisons run: %d\n", hydra_quant_kernel(), ran);
    assert_int_equal(hydra_quant_set_kernel("nope"), HYDRA_ERR_ARG);
}

/* The small-M path, its rows split into one block per thread, at 1, 2 and 3
 * threads (ragged N, products above the one-thread cutoff, accumulate on):
 * the same bits. */
static void test_matmul_q_threads(void **st) {
    (void)st;
    const int N = 517, K = 704, nt0 = hydra_get_num_threads();
    float *W = malloc((size_t)N * K * sizeof *W), *x = malloc((size_t)3 * K * sizeof *x);
    float *y0 = malloc((size_t)3 * N * sizeof *y0), *ref = malloc((size_t)3 * N * sizeof *ref);
    float *got = malloc((size_t)3 * N * sizeof *got);
    fill_normal(W, (size_t)N * K, 0.02f, 5);
    fill_normal(x, (size_t)3 * K, 1.0f, 6);
    fill_normal(y0, (size_t)3 * N, 1.0f, 7);
    for (size_t f = 0; f < 2; f++) {
        qbuf b = quantize(FMTS[f], N, K, W);
        for (int M = 1; M <= 3; M += 2)
            for (int nt = 1; nt <= 3; nt++) {
                hydra_set_num_threads(nt);
                memcpy(got, y0, (size_t)M * N * sizeof *got);
                HY_OK(hydra_op_matmul_q(FMTS[f], M, N, K, x, b.q, b.d, got, 1));
                if (nt == 1) memcpy(ref, got, (size_t)M * N * sizeof *got);
                else assert_memory_equal(got, ref, (size_t)M * N * sizeof *got);
            }
        qbuf_free(&b);
    }
    hydra_set_num_threads(nt0);
    free(W), free(x), free(y0), free(ref), free(got);
}

/* Against the f32 product: the small-M path (int8 activations) and the
 * prefill path (dequantised weights, BLAS) both stay close to x . W^T, and the
 * prefill path equals the f32 product of the dequantised weights. */
static void test_matmul_q_vs_f32(void **st) {
    (void)st;
    const int N = 96, K = 320;
    for (int M = 1; M <= 32; M += 31) {
        float *W = malloc((size_t)N * K * sizeof *W), *R = malloc((size_t)N * K * sizeof *R);
        float *x = malloc((size_t)M * K * sizeof *x), *y = malloc((size_t)M * N * sizeof *y);
        float *yf = malloc((size_t)M * N * sizeof *yf), *yd = malloc((size_t)M * N * sizeof *yd);
        fill_normal(W, (size_t)N * K, 0.02f, 3);
        fill_normal(x, (size_t)M * K, 1.0f, 4);
        HY_OK(hydra_op_matmul(M, N, K, x, W, yf, 0));
        for (size_t f = 0; f < 2; f++) {
            qbuf b = quantize(FMTS[f], N, K, W);
            HY_OK(hydra_op_matmul_q(FMTS[f], M, N, K, x, b.q, b.d, y, 0));
            double tol = FMTS[f] == HYDRA_QUANT_INT8 ? 0.02 : 0.15;
            ASSERT_REL(y, yf, (size_t)M * N, tol);
            if (M >= 16) {
                HY_OK(hydra_dequantize_rows(FMTS[f], N, K, b.q, b.d, R));
                HY_OK(hydra_op_matmul(M, N, K, x, R, yd, 0));
                ASSERT_REL(y, yd, (size_t)M * N, 1e-5);
            }
            qbuf_free(&b);
        }
        free(W), free(R), free(x), free(y), free(yf), free(yd);
    }
    hydra_quant q;
    assert_int_equal(hydra_quant_parse("int3", &q), HYDRA_ERR_ARG);
    HY_OK(hydra_quant_parse("int4", &q));
    assert_int_equal(q, HYDRA_QUANT_INT4);
    float x1 = 1, y1;
    uint8_t q1[32] = {0};
    uint16_t d1 = 0;
    assert_int_equal(hydra_op_matmul_q((hydra_quant)7, 1, 1, 1, &x1, q1, &d1, &y1, 0), HYDRA_ERR_ARG);
}


/* ------------------------------------------------------------ models */
/* A tiny model (untied head too: both head paths) saved as f32 at path. */
static hydra_model *make_f32(const char *path, int tied) {
    hydra_config c = tiny_config();
    c.vocab_size = 256;
    c.tie_embeddings = tied;
    c.init_std = 0.05f; /* measured logit error: int8 0.010, int4 0.12-0.14 */
    hydra_model *m = NULL;
    HY_OK(hydra_model_create(&c, 5, &m));
    HY_OK(hydra_model_save(m, path));
    return m;
}

/* Last-position logits after stepping the tokens one at a time (the decode
 * path) or in one forward (the prefill path, T >= 16). */
static void run_logits(const hydra_model *m, const int32_t *tok, int T, int stepwise, float *logits) {
    hydra_state *s = NULL;
    HY_OK(hydra_state_create(m, &s));
    if (stepwise)
        for (int t = 0; t < T; t++) HY_OK(hydra_step(m, s, tok[t], logits));
    else
        HY_OK(hydra_forward(m, tok, 1, T, &s, HYDRA_LOGITS_LAST, logits));
    hydra_state_free(s);
}

/* Quantised models against f32 through both paths, both heads; a saved
 * quantised checkpoint loads back to the same model (same logits, bit for
 * bit, same fingerprint as the f32 file) and saves back to the same bytes. */
static void test_model_quality_and_round_trip(void **st) {
    (void)st;
    const int T = 24, V = 256;
    int32_t *tok = random_tokens(T, V, 9);
    float *ref = malloc(V * sizeof *ref), *a = malloc(V * sizeof *a), *b = malloc(V * sizeof *b);
    for (int tied = 0; tied < 2; tied++) {
        char f32p[256], qp[256], qp2[256];
        snprintf(f32p, sizeof f32p, "%s", tmp_path("qf32.safetensors"));
        snprintf(qp, sizeof qp, "%s", tmp_path("q.safetensors"));
        snprintf(qp2, sizeof qp2, "%s", tmp_path("q2.safetensors"));
        hydra_model *f = make_f32(f32p, tied);
        for (int stepwise = 0; stepwise < 2; stepwise++) {
            run_logits(f, tok, T, stepwise, ref);
            for (size_t k = 0; k < 2; k++) {
                hydra_model *q = NULL, *q2 = NULL;
                HY_OK(hydra_model_load_quant(f32p, FMTS[k], &q));
                assert_int_equal(hydra_model_quant(q), FMTS[k]);
                assert_true(hydra_model_fingerprint(q) == hydra_model_fingerprint(f));
                assert_true(hydra_model_weight_bytes(q) < hydra_model_weight_bytes(f) / 2);
                run_logits(q, tok, T, stepwise, a);
                ASSERT_REL(a, ref, V, FMTS[k] == HYDRA_QUANT_INT8 ? 0.03 : 0.3);
                HY_OK(hydra_model_save(q, qp));
                HY_OK(hydra_model_load_quant(qp, HYDRA_QUANT_NONE, &q2));
                assert_int_equal(hydra_model_quant(q2), FMTS[k]);
                assert_true(hydra_model_fingerprint(q2) == hydra_model_fingerprint(f));
                run_logits(q2, tok, T, stepwise, b);
                assert_memory_equal(a, b, V * sizeof *a);
                HY_OK(hydra_model_save(q2, qp2));
                FILE *x = fopen(qp, "rb"), *y = fopen(qp2, "rb");
                int cx, cy;
                do cx = fgetc(x), cy = fgetc(y);
                while (cx == cy && cx != EOF);
                assert_int_equal(cx, cy);
                fclose(x), fclose(y);
                hydra_model_free(q);
                hydra_model_free(q2);
            }
        }
        hydra_model_free(f);
        remove(f32p), remove(qp), remove(qp2);
    }
    free(tok), free(ref), free(a), free(b);
}

/* A whole file (malloc'd) and its safetensors header length. */
static unsigned char *slurp(const char *path, long *n, uint64_t *hlen) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)*n);
    assert_int_equal(fread(buf, 1, (size_t)*n, f), (size_t)*n);
    fclose(f);
    *hlen = 0;
    for (int i = 0; i < 8; i++) *hlen |= (uint64_t)buf[i] << (8 * i);
    return buf;
}

/* Rewrite the checkpoint's header with `edit` applied to its JSON (the
 * data region is kept; the header is re-padded). */
static void rewrite_header(const char *src, const char *dst, void (*edit)(json_t *root)) {
    long n;
    uint64_t hlen;
    unsigned char *buf = slurp(src, &n, &hlen);
    json_t *root = json_loadb((const char *)buf + 8, (size_t)hlen, 0, NULL);
    assert_non_null(root);
    edit(root);
    char *text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    size_t tl = strlen(text), pad = (tl + 7) & ~(size_t)7;
    FILE *f = fopen(dst, "wb");
    for (int i = 0; i < 8; i++) fputc((int)((pad >> (8 * i)) & 255), f);
    fwrite(text, 1, tl, f);
    for (size_t i = tl; i < pad; i++) fputc(' ', f);
    fwrite(buf + 8 + hlen, 1, (size_t)n - 8 - hlen, f);
    fclose(f);
    free(text);
    free(buf);
    json_decref(root);
}
static json_t *meta_of(json_t *root) { return json_object_get(root, "__metadata__"); }
static void edit_unknown_quant(json_t *r) { json_object_set_new(meta_of(r), "hydralm.quant", json_string("int3")); }
static void edit_version(json_t *r) { json_object_set_new(meta_of(r), "hydralm.format_version", json_string("3")); }
static void edit_no_fingerprint(json_t *r) { json_object_del(meta_of(r), "hydralm.fingerprint"); }
static void edit_dtype(json_t *r) {
    json_object_set_new(json_object_get(r, "blocks.0.mlp.down_proj.weight"), "dtype", json_string("I4"));
}
static void edit_f32_as_v1(json_t *r) { /* a quantised file claiming to be f32 */
    json_object_set_new(meta_of(r), "hydralm.format_version", json_string("1"));
}

static void expect_refused(const char *path, hydra_quant q, hydra_status want, const char *needle) {
    hydra_model *m = (hydra_model *)1;
    hydra_status got = q == (hydra_quant)-1 ? hydra_model_load(path, &m) : hydra_model_load_quant(path, q, &m);
    if (got != want || !strstr(hydra_last_error(), needle))
        fail_msg("%s: got %s \"%s\", want %s with \"%s\"", path, hydra_status_str(got), hydra_last_error(),
                 hydra_status_str(want), needle);
    assert_null(m);
}

/* Quantised checkpoints are refused by the f32 and bf16 loaders and by a
 * loader asked for the other format; unknown quantisations, versions and
 * dtypes, a missing fingerprint and out-of-range values are refused with a
 * clear error; so are training, the reference forward, reading a quantised
 * tensor and a bf16 stream over a quantised model. */
static void test_refusals(void **st) {
    (void)st;
    char f32p[256], qp[256], bad[256];
    snprintf(f32p, sizeof f32p, "%s", tmp_path("rf32.safetensors"));
    snprintf(qp, sizeof qp, "%s", tmp_path("rq.safetensors"));
    snprintf(bad, sizeof bad, "%s", tmp_path("rbad.safetensors"));
    hydra_model *f = make_f32(f32p, 1), *q = NULL, *b = NULL;
    HY_OK(hydra_model_load_quant(f32p, HYDRA_QUANT_INT8, &q));
    HY_OK(hydra_model_save(q, qp));
    expect_refused(qp, (hydra_quant)-1, HYDRA_ERR_MISMATCH, "int8-quantised");
    assert_int_equal(hydra_model_load_bf16(qp, &b), HYDRA_ERR_MISMATCH);
    expect_refused(qp, HYDRA_QUANT_INT4, HYDRA_ERR_MISMATCH, "loads only as it is");
    expect_refused(qp, (hydra_quant)9, HYDRA_ERR_ARG, "unknown quantisation");
    rewrite_header(qp, bad, edit_unknown_quant);
    expect_refused(bad, HYDRA_QUANT_NONE, HYDRA_ERR_FORMAT, "unknown quantisation \"int3\"");
    rewrite_header(qp, bad, edit_version);
    expect_refused(bad, HYDRA_QUANT_NONE, HYDRA_ERR_FORMAT, "format_version \"3\"");
    rewrite_header(qp, bad, edit_no_fingerprint);
    expect_refused(bad, HYDRA_QUANT_NONE, HYDRA_ERR_FORMAT, "fingerprint");
    rewrite_header(qp, bad, edit_dtype);
    expect_refused(bad, HYDRA_QUANT_NONE, HYDRA_ERR_FORMAT, "dtype I4");
    rewrite_header(qp, bad, edit_f32_as_v1); /* an older build sees I8 where it reads F32 */
    expect_refused(bad, (hydra_quant)-1, HYDRA_ERR_FORMAT, "dtype I8");
    /* an int8 value of -128 (outside the symmetric range the kernels assume) */
    {
        long n;
        uint64_t hlen;
        unsigned char *buf = slurp(qp, &n, &hlen);
        hydra_tensor t;
        HY_OK(hydra_model_find_tensor(f, "embed.weight", &t));
        /* embed is F32 and first; the next tensor is blocks.0.norm1, then q_proj's I8 values */
        buf[8 + hlen + t.numel * 4 + 32 * 4 + 3] = 0x80;
        FILE *x = fopen(bad, "wb");
        fwrite(buf, 1, (size_t)n, x);
        fclose(x);
        free(buf);
        expect_refused(bad, HYDRA_QUANT_NONE, HYDRA_ERR_FORMAT, "-128");
    }
    /* inference only */
    hydra_optimizer *opt = NULL;
    hydra_optim_opts oo = hydra_optim_opts_default(HYDRA_OPT_ADAMW);
    assert_int_equal(hydra_optimizer_create(q, &oo, &opt), HYDRA_ERR_ARG);
    assert_non_null(strstr(hydra_last_error(), "quantised to int8"));
    float lg[256];
    int32_t tk[2] = {1, 2};
    assert_int_equal(hydra_forward_reference(q, tk, 2, lg), HYDRA_ERR_ARG);
    hydra_tensor t;
    assert_int_equal(hydra_model_find_tensor(q, "blocks.0.mlp.down_proj.weight", &t), HYDRA_ERR_ARG);
    HY_OK(hydra_model_find_tensor(q, "blocks.0.norm1.weight", &t)); /* vectors stay f32 */
    /* no GPU upload: the f32 matrices it would copy do not exist (refused before any device is looked for) */
    assert_int_equal(hydra_model_to_device(q, "cuda", HYDRA_PRECISION_DEFAULT), HYDRA_ERR_ARG);
    assert_non_null(strstr(hydra_last_error(), "quantised model runs on the CPU only"));
    hydra_stream *s = NULL;
    hydra_stream_opts so = hydra_stream_opts_default();
    so.weights = HYDRA_WEIGHTS_BF16;
    assert_int_equal(hydra_stream_create(q, &so, &s), HYDRA_ERR_ARG);
    so.weights = HYDRA_WEIGHTS_F32;
    HY_OK(hydra_stream_create(q, &so, &s));
    hydra_stream_free(s);
    hydra_model_free(q);
    hydra_model_free(f);
    remove(f32p), remove(qp), remove(bad);
}

/* A state saved by a quantised session loads into f32, bf16 and the other
 * quantised sessions and back (the fingerprint is the f32 file's), and the
 * f32 session continues from it as if it had read the text itself, up to the
 * quantisation's difference in the state. */
static void test_state_interchange(void **st) {
    (void)st;
    char f32p[256], sp[256];
    snprintf(f32p, sizeof f32p, "%s", tmp_path("sf32.safetensors"));
    snprintf(sp, sizeof sp, "%s", tmp_path("s.hst"));
    const int T = 40, V = 256;
    int32_t *tok = random_tokens(T + 1, V, 4);
    hydra_model *m[4] = {make_f32(f32p, 1), NULL, NULL, NULL};
    HY_OK(hydra_model_load_bf16(f32p, &m[1]));
    HY_OK(hydra_model_load_quant(f32p, HYDRA_QUANT_INT8, &m[2]));
    HY_OK(hydra_model_load_quant(f32p, HYDRA_QUANT_INT4, &m[3]));
    float *ref = malloc(V * sizeof *ref), *lg = malloc(V * sizeof *lg);
    hydra_state *s0 = NULL;
    HY_OK(hydra_state_create(m[0], &s0));
    HY_OK(hydra_forward(m[0], tok, 1, T, &s0, HYDRA_LOGITS_NONE, NULL));
    HY_OK(hydra_step(m[0], s0, tok[T], ref));
    for (int w = 1; w < 4; w++) /* writer */
        for (int r = 0; r < 4; r++) { /* reader */
            hydra_state *sw = NULL, *sr = NULL;
            HY_OK(hydra_state_create(m[w], &sw));
            HY_OK(hydra_forward(m[w], tok, 1, T, &sw, HYDRA_LOGITS_NONE, NULL));
            HY_OK(hydra_state_save(sw, m[w], sp));
            HY_OK(hydra_state_create(m[r], &sr));
            HY_OK(hydra_state_load(sr, m[r], sp));
            if (r == 0) {
                HY_OK(hydra_step(m[0], sr, tok[T], lg));
                ASSERT_REL(lg, ref, V, w == 3 ? 0.3 : 0.03);
            }
            hydra_state_free(sw);
            hydra_state_free(sr);
        }
    hydra_state_free(s0);
    for (int i = 0; i < 4; i++) hydra_model_free(m[i]);
    free(tok), free(ref), free(lg);
    remove(f32p), remove(sp);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantize_error_bound),
        cmocka_unit_test(test_simd_vs_reference),
        cmocka_unit_test(test_matmul_q_vs_f32),
        cmocka_unit_test(test_matmul_q_threads),
        cmocka_unit_test(test_model_quality_and_round_trip),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_state_interchange),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

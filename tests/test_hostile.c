/* test_hostile.c — regression tests for the defects an outside fuzzing pass
 * found in the loaders (issue 21). Each test builds the hostile input the
 * fuzzer (or the reviewer) used and checks the library refuses it with a
 * clear message; on the code before the fixes each one crashes, allocates
 * what the file cannot back, hangs, or accepts a wrong value. */
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/internal.h"
#include "fuzz/fuzz_util.h"
#include "hydralm_factbank.h"
#include "hydralm_stream.h"
#include "hydralm_train.h"
#include "test_util.h"

/* st must be `code` and the message must contain every given fragment. */
static void expect_err_(hydra_status st, hydra_status code, const char *const *frags, const char *what) {
    if (st != code)
        fail_msg("%s: got %s (%s), expected %s", what, hydra_status_str(st), hydra_last_error(),
                 hydra_status_str(code));
    for (; *frags; frags++)
        if (!strstr(hydra_last_error(), *frags)) fail_msg("%s: message \"%s\" lacks \"%s\"", what, hydra_last_error(), *frags);
}
#define EXPECT_ERR(expr, code, ...) expect_err_((expr), (code), (const char *const[]){__VA_ARGS__, NULL}, #expr)

static long hwm_kib(void) { return hydra_process_memory_kib("VmHWM"); }

/* ----------------------------------------------- defect 2: table before arena */

/* Must run first (VmHWM is the process's peak). The old loader zero-filled
 * the whole arena (52 MB for 16 layers, 830 MB for 256) before reading the
 * tensor table. */
static void test_checkpoint_table_before_arena(void **state) {
    (void)state;
    const char *p = tmp_path("convheavy.safetensors");
    hydra_model *m = NULL;
    long before = hwm_kib();
    assert_int_equal(fz_conv_heavy_checkpoint(p, 16), 0); /* 52 MB of weights: under the up-front size check, so the table check refuses it */
    EXPECT_ERR(hydra_model_load(p, &m), HYDRA_ERR_MISMATCH, "embed.weight", "[2,2]", "[1, 1]");
    EXPECT_ERR(hydra_model_load_bf16(p, &m), HYDRA_ERR_MISMATCH, "embed.weight");
    assert_int_equal(fz_conv_heavy_checkpoint(p, 256), 0); /* 830 MB: refused by the exact size bound, conv weights included */
    EXPECT_ERR(hydra_model_load(p, &m), HYDRA_ERR_FORMAT, "describes", "bytes of weights", "truncated");
    EXPECT_ERR(hydra_model_load_bf16(p, &m), HYDRA_ERR_FORMAT, "describes");
    long grew = hwm_kib() - before;
    if (before > 0 && grew > 16 * 1024) fail_msg("refusing the hostile checkpoints raised peak RSS by %ld KiB", grew);
    assert_null(m);
    unlink(p);
}

/* ----------------------------------------------- defect 1: positions */

typedef struct {
    hydra_model *m;
    hydra_state *s;
} fixture;

static int setup(void **state) {
    fixture *fx = calloc(1, sizeof *fx);
    hydra_config c = tiny_config(); /* DDSD, window 8: no full-attention layer, where the range check was missing */
    if (hydra_model_create(&c, 7, &fx->m) || hydra_state_create(fx->m, &fx->s)) return -1;
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fixture *fx = *state;
    hydra_state_free(fx->s);
    hydra_model_free(fx->m);
    free(fx);
    return 0;
}

/* Set the u64 position at offset 20 of a state or bank file and fix its
 * checksum: the 60-byte-class reproducer of the crash. */
static void patch_position(const char *path, uint64_t pos) { assert_int_equal(fz_patch_field(path, path, 20, 8, pos), 0); }

static void test_state_file_position_bounded(void **state) {
    fixture *fx = *state;
    const char *p = tmp_path("pos.hst");
    int32_t toks[3] = {1, 2, 3};
    float logits[64];
    HY_OK(hydra_forward(fx->m, toks, 1, 3, &fx->s, HYDRA_LOGITS_NONE, NULL));
    HY_OK(hydra_state_save(fx->s, fx->m, p));
    hydra_state *dst;
    HY_OK(hydra_state_create(fx->m, &dst));
    uint64_t bad[] = {INT64_MAX, UINT64_MAX, HYDRA_MAX_POSITION + 1};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        patch_position(p, bad[i]);
        EXPECT_ERR(hydra_state_load(dst, fx->m, p), HYDRA_ERR_FORMAT, "position", "2^53");
        assert_int_equal(hydra_state_position(dst), 0); /* untouched */
    }
    /* The bound itself is a valid position; the next token is refused. */
    patch_position(p, HYDRA_MAX_POSITION);
    HY_OK(hydra_state_load(dst, fx->m, p));
    assert_true(hydra_state_position(dst) == HYDRA_MAX_POSITION);
    EXPECT_ERR(hydra_step(fx->m, dst, 1, logits), HYDRA_ERR_ARG, "2^53", "reset");
    hydra_state_free(dst);
    unlink(p);
}

static void test_bank_position_bounded(void **state) {
    fixture *fx = *state;
    const char *p = tmp_path("pos.bnk");
    hydra_factbank *b, *back = NULL;
    int32_t facts[4] = {5, 6, 7, 8};
    HY_OK(hydra_factbank_create(fx->m, &b));
    HY_OK(hydra_factbank_write(b, facts, 4));
    HY_OK(hydra_factbank_save(b, p));
    hydra_factbank_free(b);
    patch_position(p, INT64_MAX);
    hydra_factbank_info info;
    EXPECT_ERR(hydra_factbank_load(fx->m, p, &back), HYDRA_ERR_FORMAT, "position", "2^53");
    EXPECT_ERR(hydra_factbank_read_info(p, &info), HYDRA_ERR_FORMAT, "position");
    assert_null(back);
    unlink(p);
}

/* Feeding up to the bound works, past it fails and leaves the state as it
 * was; the ops refuse positions whose arithmetic would overflow. */
static void test_feed_stops_at_bound(void **state) {
    fixture *fx = *state;
    int32_t toks[3] = {1, 2, 3};
    hydra_state_reset(fx->s);
    fx->s->pos = HYDRA_MAX_POSITION - 2;
    EXPECT_ERR(hydra_forward(fx->m, toks, 1, 3, &fx->s, HYDRA_LOGITS_NONE, NULL), HYDRA_ERR_ARG, "2^53");
    assert_true(fx->s->pos == HYDRA_MAX_POSITION - 2);
    HY_OK(hydra_forward(fx->m, toks, 1, 2, &fx->s, HYDRA_LOGITS_NONE, NULL));
    assert_true(fx->s->pos == HYDRA_MAX_POSITION);
    EXPECT_ERR(hydra_forward(fx->m, toks, 1, 1, &fx->s, HYDRA_LOGITS_NONE, NULL), HYDRA_ERR_ARG, "2^53");

    float x[2 * 2 * 4] = {0}, o[2 * 2 * 4];
    EXPECT_ERR(hydra_op_rope(2, 2, 4, INT64_MAX, 10000.0, x), HYDRA_ERR_ARG, "2^53");
    EXPECT_ERR(hydra_op_attention(2, 2, 4, INT64_MAX, 4, x, x, x, x, x, o), HYDRA_ERR_ARG, "2^53");
    HY_OK(hydra_op_rope(2, 2, 4, (int64_t)HYDRA_MAX_POSITION - 2, 10000.0, x));
    hydra_state_reset(fx->s);
}

/* ----------------------------------------------- defects 3-5: config values */

static hydra_status from_json(const char *extra) {
    char buf[256];
    snprintf(buf, sizeof buf, "{\"d_model\":32,\"n_heads\":2,\"n_layers\":2,%s}", extra);
    hydra_config c = hydra_config_default();
    return hydra_config_from_json(buf, &c);
}

static void test_config_values_bounded(void **state) {
    (void)state;
    /* 3: mlp_multiple 2^31-1 wrapped to an MLP width of 0 */
    EXPECT_ERR(from_json("\"mlp_multiple\":2147483647"), HYDRA_ERR_CONFIG, "mlp_multiple");
    hydra_config c = hydra_config_default();
    c.mlp_multiple = INT32_MAX;
    assert_true(hydra_config_mlp_hidden(&c) >= 2048); /* no wrap even unvalidated */
    HY_OK(from_json("\"mlp_multiple\":65536"));
    /* 4: 1e39 became float infinity, then was dropped on save */
    EXPECT_ERR(from_json("\"rope_base\":1e39"), HYDRA_ERR_CONFIG, "rope_base", "finite");
    EXPECT_ERR(from_json("\"norm_eps\":-1e39"), HYDRA_ERR_CONFIG, "norm_eps");
    c = hydra_config_default();
    c.rope_base = INFINITY;
    EXPECT_ERR(hydra_config_validate(&c), HYDRA_ERR_CONFIG, "rope_base");
    char *json = (char *)"unset";
    EXPECT_ERR(hydra_config_to_json(&c, &json), HYDRA_ERR_CONFIG, "NaN or Inf");
    assert_null(json);
    /* 5: window had no upper bound */
    EXPECT_ERR(from_json("\"window\":4194304"), HYDRA_ERR_CONFIG, "window", "65536");
    EXPECT_ERR(from_json("\"window\":65537"), HYDRA_ERR_CONFIG, "window");
    HY_OK(from_json("\"window\":65536"));
    /* found while writing the harness invariant: an odd head dim with attention layers loaded, then every forward failed */
    EXPECT_ERR(from_json("\"head_dim\":3,\"pattern\":\"DS\""), HYDRA_ERR_CONFIG, "head_dim 3 is odd", "layer 1");
    HY_OK(from_json("\"head_dim\":3,\"pattern\":\"DD\"")); /* DeltaNet has no RoPE */
}

/* ----------------------------------------------- defect 6: message aliasing */

static void test_vecmem_header_message_intact(void **state) {
    (void)state;
    const char *p = tmp_path("bad.hvm");
    hydra_vecmem_opts o = hydra_vecmem_opts_default(8, 8);
    hydra_vecmem *vm = NULL;
    HY_OK(hydra_vecmem_create(&o, &vm));
    HY_OK(hydra_vecmem_save(vm, p));
    hydra_vecmem_free(vm);
    vm = NULL;
    assert_int_equal(fz_patch_field(p, p, 12, 4, 0), 0); /* d_key 0: the header check's inner message is the argument */
    EXPECT_ERR(hydra_vecmem_load(p, &vm), HYDRA_ERR_FORMAT, "invalid header: vecmem: d_key must be in [1, 65536] (got 0)");
    char want[600];
    snprintf(want, sizeof want, "vector memory file %s: invalid header: vecmem: d_key", p);
    assert_true(strncmp(hydra_last_error(), want, strlen(want)) == 0);
    assert_null(vm);
    unlink(p);
}

/* ----------------------------------------------- defect 7: not a regular file */

static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "a loader blocked on a FIFO for 20 s\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(1);
}

static void test_fifo_and_directory_refused(void **state) {
    fixture *fx = *state;
    char fifo[512], dir[512]; /* tmp_path's buffer is reused */
    snprintf(fifo, sizeof fifo, "%s", tmp_path("fifo"));
    snprintf(dir, sizeof dir, "%s", tmp_path("dir"));
    unlink(fifo);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    mkdir(dir, 0700);
    signal(SIGALRM, on_alarm);
    alarm(20); /* the old loaders block in fopen() forever */
    const char *paths[] = {fifo, dir};
    for (int i = 0; i < 2; i++) {
        const char *p = paths[i], *kind = i ? "a directory" : "a FIFO";
        hydra_model *m = NULL;
        hydra_factbank *b = NULL;
        hydra_vecmem *vm = NULL;
        hydra_text_data *d = NULL;
        hydra_config c = hydra_config_default();
        EXPECT_ERR(hydra_model_load(p, &m), HYDRA_ERR_IO, "not a regular file", kind);
        EXPECT_ERR(hydra_model_load_bf16(p, &m), HYDRA_ERR_IO, "not a regular file");
        EXPECT_ERR(hydra_state_load(fx->s, fx->m, p), HYDRA_ERR_IO, "not a regular file", kind);
        EXPECT_ERR(hydra_factbank_load(fx->m, p, &b), HYDRA_ERR_IO, "not a regular file", kind);
        EXPECT_ERR(hydra_vecmem_load(p, &vm), HYDRA_ERR_IO, "not a regular file", kind);
        EXPECT_ERR(hydra_config_load_json(p, &c), HYDRA_ERR_IO, "not a regular file", kind);
        EXPECT_ERR(hydra_text_data_load(p, 0.1, &d), HYDRA_ERR_IO, "not a regular file", kind); /* was "out of memory" */
    }
    alarm(0);
    unlink(fifo);
    rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checkpoint_table_before_arena), /* first: it reads the process's peak RSS */
        cmocka_unit_test(test_state_file_position_bounded),
        cmocka_unit_test(test_bank_position_bounded),
        cmocka_unit_test(test_feed_stops_at_bound),
        cmocka_unit_test(test_config_values_bounded),
        cmocka_unit_test(test_vecmem_header_message_intact),
        cmocka_unit_test(test_fifo_and_directory_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

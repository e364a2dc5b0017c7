/* test_train.c — the trainer: exact resume (10 + 10 steps == 20 straight, bit
 * for bit, for AdamW and Muon), loss falls on tinyshakespeare, data split and
 * sampling, checkpoint refusals. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/internal.h"
#include "hydralm_train.h"
#include "test_util.h"

/* shipped in the repository (data/README.md), found from the source dir */
static const char *shakespeare_path(void) { return source_path("data/tinyshakespeare.txt"); }

static hydra_config small_config(void) {
    hydra_config c = hydra_config_default();
    c.d_model = 32;
    c.n_layers = 2;
    c.n_heads = 2;
    c.head_dim = 16;
    c.window = 16;
    c.mlp_multiple = 16;
    snprintf(c.pattern, sizeof c.pattern, "DS");
    return c;
}

static hydra_train_opts train_opts(hydra_optimizer_kind kind, int steps) {
    hydra_train_opts o;
    memset(&o, 0, sizeof o);
    o.optim = hydra_optim_opts_default(kind);
    o.optim.total_steps = steps;
    o.optim.warmup_steps = 3;
    o.batch = 4;
    o.seq = 32;
    o.seed = 11;
    return o;
}

static void rm_dir(const char *dir) {
    char p[1024];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/trainer.bin", dir);
    unlink(p);
    rmdir(dir);
}

static void check_resume(hydra_optimizer_kind kind) {
    hydra_text_data *td;
    HY_OK(hydra_text_data_load(shakespeare_path(), 0.1, &td));
    hydra_task task = hydra_text_data_task(td);
    hydra_config c = small_config();
    hydra_train_opts o = train_opts(kind, 20);
    /* 20 steps straight */
    hydra_model *a;
    hydra_trainer *ta;
    HY_OK(hydra_model_create(&c, 3, &a));
    HY_OK(hydra_trainer_create(a, task, &o, &ta));
    for (int i = 0; i < 20; i++) HY_OK(hydra_trainer_step(ta, NULL));
    /* 10 steps, checkpoint, free everything, resume, 10 more */
    hydra_model *b;
    hydra_trainer *tb;
    HY_OK(hydra_model_create(&c, 3, &b));
    HY_OK(hydra_trainer_create(b, task, &o, &tb));
    for (int i = 0; i < 10; i++) HY_OK(hydra_trainer_step(tb, NULL));
    const char *dir = tmp_path(kind == HYDRA_OPT_MUON ? "ckpt_muon" : "ckpt_adamw");
    HY_OK(hydra_trainer_save(tb, dir));
    hydra_trainer_free(tb);
    hydra_model_free(b);
    HY_OK(hydra_trainer_resume(dir, task, &b, &tb));
    assert_int_equal(hydra_trainer_steps(tb), 10);
    for (int i = 0; i < 10; i++) HY_OK(hydra_trainer_step(tb, NULL));
    assert_int_equal(hydra_trainer_steps(tb), 20);
    assert_memory_equal(a->params, b->params, a->n_params * sizeof(float));
    hydra_trainer_free(ta), hydra_trainer_free(tb);
    hydra_model_free(a), hydra_model_free(b);
    rm_dir(dir);
    hydra_text_data_free(td);
}

static void test_resume_adamw(void **st) {
    (void)st;
    check_resume(HYDRA_OPT_ADAMW);
}
static void test_resume_muon(void **st) {
    (void)st;
    check_resume(HYDRA_OPT_MUON);
}

/* A short run must cut the validation loss well below the uniform ln(256). */
static void test_loss_decreases(void **st) {
    (void)st;
    hydra_text_data *td;
    HY_OK(hydra_text_data_load(shakespeare_path(), 0.1, &td));
    hydra_config c = small_config();
    hydra_train_opts o = train_opts(HYDRA_OPT_ADAMW, 80);
    o.optim.lr = 1e-2f;
    o.batch = 8;
    hydra_model *m;
    hydra_trainer *t;
    HY_OK(hydra_model_create(&c, 1, &m));
    HY_OK(hydra_trainer_create(m, hydra_text_data_task(td), &o, &t));
    double v0, v1;
    HY_OK(hydra_trainer_eval(t, 4, &v0));
    for (int i = 0; i < 80; i++) HY_OK(hydra_trainer_step(t, NULL));
    HY_OK(hydra_trainer_eval(t, 4, &v1));
    printf("validation loss %.3f -> %.3f after 80 steps\n", v0, v1);
    assert_true(fabs(v0 - log(256.0)) < 0.1); /* untrained: near uniform */
    assert_true(v1 < 3.0);                    /* learned byte statistics at least */
    hydra_trainer_free(t);
    hydra_model_free(m);
    hydra_text_data_free(td);
}

static void test_data(void **st) {
    (void)st;
    const char text[] = "abcdefghijklmnopqrstuvwxyz0123456789"; /* 36 bytes */
    hydra_text_data *d;
    HY_OK(hydra_text_data_from_memory(text, 36, 0.25, &d));
    assert_int_equal(hydra_text_data_size(d, 0), 27);
    assert_int_equal(hydra_text_data_size(d, 1), 9);
    hydra_task task = hydra_text_data_task(d);
    int32_t in[2 * 5], tg[2 * 5];
    uint8_t mk[2 * 5];
    hydra_rng r;
    hydra_rng_seed(&r, 1);
    HY_OK(task.sample(task.ctx, 0, &r, 2, 5, in, tg, mk));
    for (int i = 0; i < 10; i++) { /* windows lie in the training split; targets are the next byte */
        const char *at = strchr(text, (char)in[i]);
        assert_non_null(at);
        assert_true(at - text + 1 < 27);
        assert_int_equal(tg[i], at[1]);
        assert_int_equal(mk[i], 1);
    }
    /* the validation split never yields training bytes */
    HY_OK(task.sample(task.ctx, 1, &r, 2, 5, in, tg, mk));
    for (int i = 0; i < 10; i++) assert_true(strchr(text, (char)in[i]) - text >= 27);
    /* too short for the window */
    assert_int_equal(task.sample(task.ctx, 1, &r, 1, 9, in, tg, mk), HYDRA_ERR_ARG);
    hydra_text_data_free(d);
    assert_int_equal(hydra_text_data_load("/nonexistent/file.txt", 0.1, &d), HYDRA_ERR_IO);
    assert_int_equal(hydra_text_data_from_memory(text, 36, 1.0, &d), HYDRA_ERR_ARG);
}

static void test_checkpoint_refusals(void **st) {
    (void)st;
    hydra_text_data *td;
    HY_OK(hydra_text_data_load(shakespeare_path(), 0.1, &td));
    hydra_task task = hydra_text_data_task(td);
    hydra_config c = small_config();
    hydra_train_opts o = train_opts(HYDRA_OPT_ADAMW, 5);
    hydra_model *m, *m2 = NULL;
    hydra_trainer *t, *t2 = NULL;
    HY_OK(hydra_model_create(&c, 3, &m));
    HY_OK(hydra_trainer_create(m, task, &o, &t));
    HY_OK(hydra_trainer_step(t, NULL));
    const char *dir = tmp_path("ckpt_bad");
    HY_OK(hydra_trainer_save(t, dir));
    char p[1024];
    snprintf(p, sizeof p, "%s/trainer.bin", dir);
    /* flip one byte in the middle of trainer.bin */
    FILE *f = fopen(p, "r+b");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, len / 2, SEEK_SET);
    int ch = fgetc(f);
    fseek(f, len / 2, SEEK_SET);
    fputc(ch ^ 0x40, f);
    fclose(f);
    assert_int_equal(hydra_trainer_resume(dir, task, &m2, &t2), HYDRA_ERR_FORMAT);
    assert_non_null(strstr(hydra_last_error(), "checksum"));
    assert_null(m2);
    /* weights changed after the trainer file was written: fingerprint mismatch */
    HY_OK(hydra_trainer_save(t, dir));
    HY_OK(hydra_trainer_step(t, NULL));
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    HY_OK(hydra_model_save(m, p));
    assert_int_equal(hydra_trainer_resume(dir, task, &m2, &t2), HYDRA_ERR_FORMAT);
    assert_non_null(strstr(hydra_last_error(), "fingerprint"));
    /* truncated */
    HY_OK(hydra_trainer_save(t, dir));
    snprintf(p, sizeof p, "%s/trainer.bin", dir);
    assert_int_equal(truncate(p, 40), 0);
    assert_int_equal(hydra_trainer_resume(dir, task, &m2, &t2), HYDRA_ERR_FORMAT);
    assert_int_equal(hydra_trainer_resume("/nonexistent_dir", task, &m2, &t2), HYDRA_ERR_IO);
    rm_dir(dir);
    hydra_trainer_free(t);
    hydra_model_free(m);
    hydra_text_data_free(td);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_data),
        cmocka_unit_test(test_resume_adamw),
        cmocka_unit_test(test_resume_muon),
        cmocka_unit_test(test_loss_decreases),
        cmocka_unit_test(test_checkpoint_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

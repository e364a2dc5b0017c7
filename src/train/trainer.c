/* trainer.c — the training loop's state machine: sample a batch from a task,
 * loss + gradients, optimizer step; validation on fixed batches; training
 * checkpoints that resume bit-exactly (model, optimizer moments, step, data
 * RNG, options). */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <sys/stat.h>
#include <time.h>

#include "core/fileio.h"
#include "core/internal.h"
#include "hydralm_train.h"
#include "train/dist_internal.h"
#include "train/optim_internal.h"

struct hydra_trainer {
    hydra_model *m;       /* borrowed */
    hydra_task task;      /* borrowed */
    hydra_train_opts opts;
    hydra_optimizer *opt;
    hydra_rng rng;        /* training-batch stream: the data position */
    float *grads;         /* [n_params] */
    int32_t *inputs, *targets; /* [B, T] */
    uint8_t *mask;        /* [B, T] */
    hydra_dp *dp;         /* data-parallel: B is the global batch (dist.c); NULL in one process */
};

#define TRN_MAGIC "HYDRATRN"
#define TRN_VERSION 1u
/* Validation batches come from their own fixed stream, never the training one. */
#define VAL_SEED_SALT 0x5EED0F0A11DA7A11ULL

static json_t *opts_to_json(const hydra_train_opts *o);

static hydra_status create(hydra_model *m, hydra_task task, const hydra_train_opts *o, const hydra_dist_opts *d,
                           hydra_trainer **out) {
    if (!m || !o || !out || !task.sample) return hydra_set_error(HYDRA_ERR_ARG, "trainer: NULL argument");
    *out = NULL;
    HYDRA_CHECK(hydra_require_f32(m, "trainer"));
    if (o->batch < 1 || o->seq < 1)
        return hydra_set_error(HYDRA_ERR_ARG, "trainer: batch and seq must be >= 1 (got %d, %d)", o->batch, o->seq);
    if (m->cfg.vocab_size < task.min_vocab)
        return hydra_set_error(HYDRA_ERR_MISMATCH, "task '%s' needs a vocabulary of at least %d tokens; the model has %d",
                               task.name ? task.name : "?", task.min_vocab, m->cfg.vocab_size);
    hydra_trainer *t = calloc(1, sizeof *t);
    if (!t) return hydra_set_error(HYDRA_ERR_NOMEM, "out of memory");
    t->m = m;
    t->task = task;
    t->opts = *o;
    hydra_rng_seed(&t->rng, o->seed);
    size_t BT = (size_t)o->batch * (size_t)o->seq;
    t->grads = hydra_aligned_alloc(m->n_params * sizeof(float));
    t->inputs = malloc(BT * sizeof(int32_t));
    t->targets = malloc(BT * sizeof(int32_t));
    t->mask = malloc(BT);
    hydra_status st = (!t->grads || !t->inputs || !t->targets || !t->mask)
                          ? hydra_set_error(HYDRA_ERR_NOMEM, "trainer: out of memory")
                          : HYDRA_OK;
    if (st == HYDRA_OK && d && d->comm && m->dev) st = hydra_dp_device_check(d->comm, d->shard_optimizer, m);
    if (st == HYDRA_OK && d && d->comm) st = hydra_dp_create(d, m, o, &t->dp);
    if (st == HYDRA_OK && t->dp && t->dp->shard)
        st = hydra_optimizer_create_range(m, &o->optim, t->dp->bounds[t->dp->c.rank],
                                          t->dp->bounds[t->dp->c.rank + 1], &t->opt);
    else if (st == HYDRA_OK) st = hydra_optimizer_create(m, &o->optim, &t->opt);
    if (st != HYDRA_OK) {
        hydra_trainer_free(t);
        return st;
    }
    *out = t;
    return HYDRA_OK;
}

hydra_status hydra_trainer_create(hydra_model *m, hydra_task task, const hydra_train_opts *o,
                                  hydra_trainer **out) {
    return create(m, task, o, NULL, out);
}

/* The cross-rank start-up check: options, weights, step, and a hash of the
 * next training batch (drawn from a copy of the stream). */
static hydra_status dist_check(hydra_trainer *t) {
    hydra_rng r = t->rng;
    const size_t BT = (size_t)t->opts.batch * (size_t)t->opts.seq;
    hydra_status st = t->task.sample(t->task.ctx, 0, &r, t->opts.batch, t->opts.seq, t->inputs, t->targets, t->mask);
    uint64_t h = hydra_fnv1a(HYDRA_FNV_OFFSET, t->inputs, BT * sizeof(int32_t));
    h = hydra_fnv1a(h, t->targets, BT * sizeof(int32_t));
    h = hydra_fnv1a(h, t->mask, BT);
    HYDRA_CHECK(hydra_dist_agree(&t->dp->c, st, "sampling the first batch"));
    json_t *oj = opts_to_json(&t->opts);
    char *opts = oj ? json_dumps(oj, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
    json_decref(oj);
    st = opts ? hydra_dp_check(t->dp, t->m, opts, hydra_optimizer_steps(t->opt), h)
              : hydra_set_error(HYDRA_ERR_NOMEM, "out of memory");
    free(opts);
    return st;
}

hydra_status hydra_trainer_create_dist(hydra_model *m, hydra_task task, const hydra_train_opts *o,
                                       const hydra_dist_opts *d, hydra_trainer **out) {
    hydra_status st = create(m, task, o, d, out);
    if (st == HYDRA_OK && (*out)->dp && (st = dist_check(*out)) != HYDRA_OK) {
        hydra_trainer_free(*out);
        *out = NULL;
    }
    return st;
}

size_t hydra_trainer_memory_bytes(const hydra_trainer *t) {
    if (!t) return 0;
    size_t BT = (size_t)t->opts.batch * (size_t)t->opts.seq;
    return 2 * t->m->n_params * sizeof(float) + hydra_optimizer_state_bytes(t->opt) + BT * 9;
}

double hydra_trainer_comm_seconds(const hydra_trainer *t) { return t && t->dp ? t->dp->comm_s : 0.0; }

void hydra_trainer_free(hydra_trainer *t) {
    if (!t) return;
    hydra_dp_free(t->dp);
    hydra_optimizer_free(t->opt);
    hydra_aligned_free(t->grads);
    free(t->inputs);
    free(t->targets);
    free(t->mask);
    free(t);
}

int64_t hydra_trainer_steps(const hydra_trainer *t) { return t ? hydra_optimizer_steps(t->opt) : 0; }
const hydra_train_opts *hydra_trainer_opts(const hydra_trainer *t) { return t ? &t->opts : NULL; }

hydra_status hydra_trainer_step(hydra_trainer *t, hydra_step_info *info) {
    if (!t) return hydra_set_error(HYDRA_ERR_ARG, "trainer_step: NULL trainer");
    HYDRA_CHECK(hydra_check_cancel("trainer_step"));
    const int B = t->opts.batch, T = t->opts.seq;
    double t0 = hydra_now_seconds(), loss = 0;
    int64_t scored = 0;
    float gnorm = 0, lr = 0;
    int row0 = 0, b = B; /* data-parallel: this rank's rows of the global batch */
    if (t->dp) hydra_dp_rows(t->dp, B, &row0, &b);
    const size_t off = (size_t)row0 * (size_t)T;
    HYDRA_CHECK(t->task.sample(t->task.ctx, 0, &t->rng, B, T, t->inputs, t->targets, t->mask));
    float *grads = t->m->dev ? NULL : t->grads; /* on a GPU the gradients stay there */
    if (t->dp && t->m->dev) { /* GPU ranks: the scale is the global batch's count of scored positions */
        int64_t n_total = 0;
        for (size_t i = 0; i < (size_t)B * T; i++) n_total += t->mask[i] != 0;
        HYDRA_CHECK(hydra_dp_step_device(t->dp, t->opt, t->m, t->inputs + off, t->targets + off, t->mask + off, b, T,
                                         n_total, &loss, &scored, &gnorm, &lr));
    } else {
        HYDRA_CHECK(hydra_model_loss_grad(t->m, t->inputs + off, t->targets + off, t->mask + off, b, T, grads, &loss,
                                          &scored));
        if (t->dp) HYDRA_CHECK(hydra_dp_step(t->dp, t->opt, t->m, t->grads, &loss, &scored, &gnorm, &lr));
        else HYDRA_CHECK(hydra_optimizer_step(t->opt, t->m, grads, &gnorm, &lr));
    }
    if (info) {
        info->step = hydra_optimizer_steps(t->opt);
        info->loss = loss;
        info->grad_norm = gnorm;
        info->lr = lr;
        info->seconds = hydra_now_seconds() - t0;
        info->tokens = scored;
    }
    return HYDRA_OK;
}

hydra_status hydra_trainer_eval(hydra_trainer *t, int n_batches, double *loss) {
    if (!t || !loss) return hydra_set_error(HYDRA_ERR_ARG, "trainer_eval: NULL argument");
    if (n_batches < 1) return hydra_set_error(HYDRA_ERR_ARG, "trainer_eval: n_batches must be >= 1");
    hydra_rng r;
    hydra_rng_seed(&r, t->opts.seed ^ VAL_SEED_SALT);
    double sum[2] = {0, 0}; /* loss · scored, scored */
    int row0 = 0, b = t->opts.batch;
    if (t->dp) hydra_dp_rows(t->dp, t->opts.batch, &row0, &b);
    const size_t off = (size_t)row0 * (size_t)t->opts.seq;
    for (int i = 0; i < n_batches; i++) {
        double l = 0;
        int64_t n = 0;
        HYDRA_CHECK(t->task.sample(t->task.ctx, 1, &r, t->opts.batch, t->opts.seq, t->inputs, t->targets, t->mask));
        HYDRA_CHECK(hydra_model_loss(t->m, t->inputs + off, t->targets + off, t->mask + off, b, t->opts.seq, &l, &n));
        sum[0] += l * (double)n;
        sum[1] += (double)n;
    }
    if (t->dp) HYDRA_CHECK(hydra_dp_sum(t->dp, sum, 2));
    *loss = sum[1] > 0 ? sum[0] / sum[1] : 0.0;
    return HYDRA_OK;
}

/* ------------------------------------------------------------ checkpoints */
static json_t *opts_to_json(const hydra_train_opts *o) {
    const hydra_optim_opts *p = &o->optim;
    return json_pack("{s:i,s:i,s:I,s:i,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:i,s:i,s:i,s:i,s:i,s:i,s:f,s:f}",
                     "batch", o->batch, "seq", o->seq, "seed", (json_int_t)o->seed, "kind", (int)p->kind,
                     "lr", (double)p->lr, "beta1", (double)p->beta1, "beta2", (double)p->beta2, "eps",
                     (double)p->eps, "weight_decay", (double)p->weight_decay, "muon_lr", (double)p->muon_lr,
                     "muon_momentum", (double)p->muon_momentum, "muon_nesterov", p->muon_nesterov,
                     "muon_ns_steps", p->muon_ns_steps, "muon_rms_match", p->muon_rms_match, "warmup_steps",
                     p->warmup_steps, "total_steps", p->total_steps, "decay", (int)p->decay, "min_lr_ratio",
                     (double)p->min_lr_ratio, "grad_clip", (double)p->grad_clip);
}

static hydra_status opts_from_json(const char *text, size_t n, hydra_train_opts *o) {
    json_error_t e;
    json_t *j = json_loadb(text, n, 0, &e);
    if (!j) return hydra_set_error(HYDRA_ERR_FORMAT, "trainer options: %s", e.text);
    hydra_optim_opts *p = &o->optim;
    json_int_t seed = 0;
    int kind = 0, decay = 0;
    double lr, b1, b2, eps, wd, mlr, mm, minr, clip;
    int rc = json_unpack_ex(j, &e, JSON_STRICT, "{s:i,s:i,s:I,s:i,s:F,s:F,s:F,s:F,s:F,s:F,s:F,s:i,s:i,s:i,s:i,s:i,s:i,s:F,s:F}",
                            "batch", &o->batch, "seq", &o->seq, "seed", &seed, "kind", &kind, "lr", &lr,
                            "beta1", &b1, "beta2", &b2, "eps", &eps, "weight_decay", &wd, "muon_lr", &mlr,
                            "muon_momentum", &mm, "muon_nesterov", &p->muon_nesterov, "muon_ns_steps",
                            &p->muon_ns_steps, "muon_rms_match", &p->muon_rms_match, "warmup_steps",
                            &p->warmup_steps, "total_steps", &p->total_steps, "decay", &decay,
                            "min_lr_ratio", &minr, "grad_clip", &clip);
    json_decref(j);
    if (rc != 0) return hydra_set_error(HYDRA_ERR_FORMAT, "trainer options: %s", e.text);
    o->seed = (uint64_t)seed;
    p->kind = (hydra_optimizer_kind)kind;
    p->decay = (hydra_lr_decay)decay;
    /* floats were stored from floats: the double round trip is exact */
    p->lr = (float)lr, p->beta1 = (float)b1, p->beta2 = (float)b2, p->eps = (float)eps;
    p->weight_decay = (float)wd, p->muon_lr = (float)mlr, p->muon_momentum = (float)mm;
    p->min_lr_ratio = (float)minr, p->grad_clip = (float)clip;
    return hydra_optim_opts_validate(p);
}

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* full[i]: optimizer buffer i over the whole arena, gathered from the
 * shards (ZeRO-1); NULL: the optimizer's own (whole-arena) buffers. */
static hydra_status write_checkpoint(const hydra_trainer *t, const char *dir, float *const *full) {
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return hydra_set_error(HYDRA_ERR_IO, "cannot create directory %s: %s", dir, strerror(errno));
    char *mpath = join(dir, "model.safetensors"), *tpath = join(dir, "trainer.bin");
    char *opts = NULL;
    json_t *oj = opts_to_json(&t->opts);
    if (oj) opts = json_dumps(oj, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(oj);
    hydra_status st = (!mpath || !tpath || !opts) ? hydra_set_error(HYDRA_ERR_NOMEM, "out of memory") : HYDRA_OK;
    if (st == HYDRA_OK) st = hydra_model_save(t->m, mpath);
    hydra_afile a;
    if (st == HYDRA_OK && (st = hydra_afile_open(&a, tpath)) == HYDRA_OK) {
        hydra_afile_write(&a, TRN_MAGIC, 8);
        hydra_afile_u32(&a, TRN_VERSION);
        hydra_afile_u64(&a, hydra_model_fingerprint(t->m));
        hydra_afile_u64(&a, (uint64_t)hydra_optimizer_steps(t->opt));
        for (int i = 0; i < 4; i++) hydra_afile_u64(&a, t->rng.s[i]);
        hydra_afile_u32(&a, (uint32_t)strlen(opts));
        hydra_afile_write(&a, opts, strlen(opts));
        int nb = hydra_optimizer_n_buffers(t->opt);
        hydra_afile_u32(&a, (uint32_t)nb);
        for (int i = 0; i < nb && st == HYDRA_OK; i++) {
            const char *name;
            float *data;
            size_t numel;
            st = hydra_optimizer_buffer(t->opt, i, &name, &data, &numel);
            if (st != HYDRA_OK) break;
            if (full) data = full[i], numel = t->m->n_params;
            hydra_afile_u32(&a, (uint32_t)strlen(name));
            hydra_afile_write(&a, name, strlen(name));
            hydra_afile_u64(&a, numel);
            hydra_afile_write(&a, data, numel * sizeof(float));
        }
        uint64_t sum = a.hash;
        hydra_afile_u64(&a, sum);
        if (st == HYDRA_OK) st = hydra_afile_commit(&a);
        else hydra_afile_abort(&a);
    }
    free(mpath), free(tpath), free(opts);
    return st;
}

hydra_status hydra_trainer_save(const hydra_trainer *t, const char *dir) {
    if (!t || !dir) return hydra_set_error(HYDRA_ERR_ARG, "trainer_save: NULL argument");
    if (!t->dp) return write_checkpoint(t, dir, NULL);
    /* Data-parallel: check the replicas agree, gather the shards, rank 0 writes.
     * GPU ranks compare the trained weights, so they come to the host first. */
    if (t->m->dev) HYDRA_CHECK(hydra_dist_agree(&t->dp->c, hydra_dev_train_download(t->m), "copying the weights home"));
    HYDRA_CHECK(hydra_dp_check_weights(t->dp, t->m));
    float *full[3] = {NULL, NULL, NULL};
    int nb = hydra_optimizer_n_buffers(t->opt), sharded = t->dp->shard;
    hydra_status st = nb <= 3 ? HYDRA_OK : hydra_set_error(HYDRA_ERR_ARG, "trainer_save: too many optimizer buffers");
    for (int i = 0; sharded && st == HYDRA_OK && i < nb; i++) {
        float *local;
        st = hydra_optimizer_buffer(t->opt, i, NULL, &local, NULL);
        if (st == HYDRA_OK && t->dp->c.rank == 0 && !(full[i] = hydra_aligned_alloc(t->m->n_params * sizeof(float) + 64)))
            st = hydra_set_error(HYDRA_ERR_NOMEM, "trainer_save: out of memory");
        if (st == HYDRA_OK) st = hydra_dp_gather(t->dp, local, full[i]);
    }
    if (st == HYDRA_OK && t->dp->c.rank == 0) st = write_checkpoint(t, dir, sharded ? full : NULL);
    for (int i = 0; i < 3; i++) hydra_aligned_free(full[i]);
    return hydra_dist_agree(&t->dp->c, st, "writing the checkpoint");
}

/* Bounds-checked reader over the trainer file's bytes. */
typedef struct {
    const uint8_t *p;
    size_t n, off;
} reader;
static int rd(reader *r, void *dst, size_t n) {
    if (r->n - r->off < n) return 0;
    memcpy(dst, r->p + r->off, n);
    r->off += n;
    return 1;
}

hydra_status hydra_trainer_resume(const char *dir, hydra_task task, hydra_model **model_out,
                                  hydra_trainer **out) {
    return hydra_trainer_resume_dist(dir, task, NULL, model_out, out);
}

hydra_status hydra_trainer_resume_dist(const char *dir, hydra_task task, const hydra_dist_opts *d,
                                       hydra_model **model_out, hydra_trainer **out) {
    if (!dir || !model_out || !out) return hydra_set_error(HYDRA_ERR_ARG, "trainer_resume: NULL argument");
    if (d && !d->comm) d = NULL;
    if (d && !hydra_dp_comm_valid(d->comm))
        return hydra_set_error(HYDRA_ERR_ARG, "trainer_resume: the communicator is incomplete or its rank/size invalid");
    *model_out = NULL;
    *out = NULL;
    char *mpath = join(dir, "model.safetensors"), *tpath = join(dir, "trainer.bin");
    uint8_t *buf = NULL;
    size_t n = 0;
    hydra_model *m = NULL;
    hydra_trainer *t = NULL;
    hydra_status st = (!mpath || !tpath) ? hydra_set_error(HYDRA_ERR_NOMEM, "out of memory") : HYDRA_OK;
    if (st == HYDRA_OK) st = hydra_model_load(mpath, &m);
    if (st == HYDRA_OK) st = hydra_read_file(tpath, "trainer file", (size_t)1 << 40, &buf, &n);
    if (st != HYDRA_OK) goto done;
#define BAD(...) do { st = hydra_set_error(HYDRA_ERR_FORMAT, __VA_ARGS__); goto done; } while (0)
    if (n < 8 + 8 || memcmp(buf, TRN_MAGIC, 8) != 0) BAD("%s is not a hydra trainer file (bad magic)", tpath);
    uint64_t stored_sum;
    memcpy(&stored_sum, buf + n - 8, 8);
    if (hydra_fnv1a(HYDRA_FNV_OFFSET, buf, n - 8) != stored_sum) BAD("%s: checksum mismatch: the file is corrupt", tpath);
    reader r = {buf, n - 8, 8};
    uint32_t ver, olen, nb;
    uint64_t fp, step, rng[4];
    if (!rd(&r, &ver, 4) || ver != TRN_VERSION) BAD("%s: unsupported version", tpath);
    if (!rd(&r, &fp, 8) || !rd(&r, &step, 8) || !rd(&r, rng, 32) || !rd(&r, &olen, 4) || r.n - r.off < olen)
        BAD("%s is truncated", tpath);
    if (fp != hydra_model_fingerprint(m))
        BAD("%s belongs to different weights than %s (fingerprint mismatch)", tpath, mpath);
    hydra_train_opts o;
    memset(&o, 0, sizeof o);
    if ((st = opts_from_json((const char *)buf + r.off, olen, &o)) != HYDRA_OK) goto done;
    r.off += olen;
    if ((st = create(m, task, &o, d, &t)) != HYDRA_OK) goto done;
    size_t lo, hi; /* this rank's shard of the saved (whole-arena) buffers */
    hydra_optimizer_range(t->opt, &lo, &hi);
    if (!rd(&r, &nb, 4) || (int)nb != hydra_optimizer_n_buffers(t->opt)) BAD("%s: optimizer buffer count mismatch", tpath);
    for (uint32_t i = 0; i < nb; i++) {
        uint32_t len;
        uint64_t numel;
        char name[64];
        const char *want;
        float *data;
        size_t want_n;
        if ((st = hydra_optimizer_buffer(t->opt, (int)i, &want, &data, &want_n)) != HYDRA_OK) goto done;
        if (!rd(&r, &len, 4) || len >= sizeof name || !rd(&r, name, len)) BAD("%s is truncated", tpath);
        name[len] = '\0';
        if (strcmp(name, want) != 0) BAD("%s: expected optimizer buffer %s, found %s", tpath, want, name);
        if (!rd(&r, &numel, 8) || numel != m->n_params || want_n != hi - lo)
            BAD("%s: buffer %s has the wrong size", tpath, name);
        if (r.n - r.off < numel * sizeof(float)) BAD("%s is truncated", tpath);
        memcpy(data, r.p + r.off + lo * sizeof(float), want_n * sizeof(float));
        r.off += numel * sizeof(float);
    }
    if (r.off != r.n) BAD("%s has trailing bytes", tpath);
#undef BAD
    if ((st = hydra_optimizer_set_steps(t->opt, (int64_t)step)) != HYDRA_OK) goto done;
    memcpy(t->rng.s, rng, sizeof rng);
done:
    free(buf), free(mpath), free(tpath);
    if (d) { /* every rank learns if one could not read the checkpoint, then the checks */
        st = hydra_dist_agree(d->comm, st, "resuming the checkpoint");
        if (st == HYDRA_OK) st = dist_check(t);
    }
    if (st != HYDRA_OK) {
        hydra_trainer_free(t);
        hydra_model_free(m);
        return st;
    }
    *model_out = m;
    *out = t;
    return HYDRA_OK;
}

/* ------------------------------------------------------------------ eval */
hydra_status hydra_eval_stream_loss(const hydra_model *m, const int32_t *tokens, size_t n, int chunk,
                                    float *pos_loss) {
    return hydra_eval_stream_scores(m, tokens, n, chunk, pos_loss, NULL);
}

hydra_status hydra_eval_stream_scores(const hydra_model *m, const int32_t *tokens, size_t n, int chunk,
                                      float *pos_loss, uint8_t *pos_top1) {
    if (!m || !tokens || !pos_loss) return hydra_set_error(HYDRA_ERR_ARG, "eval_stream_loss: NULL argument");
    if (n < 2) return hydra_set_error(HYDRA_ERR_ARG, "eval_stream_loss: need at least 2 tokens");
    if (chunk < 1) return hydra_set_error(HYDRA_ERR_ARG, "eval_stream_loss: chunk must be >= 1");
    const int V = m->cfg.vocab_size;
    hydra_state *s = NULL;
    float *logits = malloc((size_t)chunk * V * sizeof(float));
    hydra_status st = logits ? hydra_state_create(m, &s) : hydra_set_error(HYDRA_ERR_NOMEM, "out of memory");
    for (size_t t0 = 0; st == HYDRA_OK && t0 < n - 1; t0 += (size_t)chunk) {
        int len = (int)((n - 1 - t0) < (size_t)chunk ? (n - 1 - t0) : (size_t)chunk);
        st = hydra_forward(m, tokens + t0, 1, len, &s, HYDRA_LOGITS_ALL, logits);
        for (int i = 0; st == HYDRA_OK && i < len; i++) {
            const float *row = logits + (size_t)i * V;
            int32_t y = tokens[t0 + (size_t)i + 1];
            if (y < 0 || y >= V) {
                st = hydra_set_error(HYDRA_ERR_ARG, "token id %d outside the vocabulary", y);
                break;
            }
            double mx = row[0], z = 0;
            for (int v = 1; v < V; v++) if (row[v] > mx) mx = row[v];
            for (int v = 0; v < V; v++) z += exp((double)row[v] - mx);
            pos_loss[t0 + (size_t)i] = (float)(log(z) + mx - row[y]);
            if (pos_top1) pos_top1[t0 + (size_t)i] = row[y] >= mx; /* the target is an argmax */
        }
    }
    hydra_state_free(s);
    free(logits);
    return st;
}

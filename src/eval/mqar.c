/* mqar.c — multi-query associative recall (Zoology protocol, with queries
 * spread over the whole sequence), as a trainer task and an evaluation. */
#include <math.h>
#include <string.h>
#include <time.h>

#include "core/internal.h"
#include "hydralm_eval.h"

struct hydra_mqar {
    hydra_mqar_opts o;
};

hydra_status hydra_mqar_create(const hydra_mqar_opts *o, hydra_mqar **out) {
    if (!o || !out) return hydra_set_error(HYDRA_ERR_ARG, "mqar: NULL argument");
    *out = NULL;
    if (o->n_pairs < 1) return hydra_set_error(HYDRA_ERR_ARG, "mqar: n_pairs must be >= 1");
    if (o->vocab / 2 - 1 < o->n_pairs)
        return hydra_set_error(HYDRA_ERR_ARG, "mqar: vocab %d has only %d keys for %d pairs", o->vocab, o->vocab / 2 - 1, o->n_pairs);
    if (o->seq_len < 4 * o->n_pairs)
        return hydra_set_error(HYDRA_ERR_ARG, "mqar: seq_len %d must be >= 4 * n_pairs (%d)", o->seq_len, 4 * o->n_pairs);
    hydra_mqar *t = calloc(1, sizeof *t);
    if (!t) return hydra_set_error(HYDRA_ERR_NOMEM, "out of memory");
    t->o = *o;
    *out = t;
    return HYDRA_OK;
}

void hydra_mqar_free(hydra_mqar *t) { free(t); }

static uint64_t below(hydra_rng *r, uint64_t n) { return hydra_rng_next(r) % n; }

hydra_status hydra_mqar_sample(const hydra_mqar *t, hydra_rng *rng, int B, int32_t *inputs,
                               int32_t *targets, uint8_t *mask, int32_t *distance) {
    if (!t || !rng || !inputs || !targets || !mask) return hydra_set_error(HYDRA_ERR_ARG, "mqar_sample: NULL argument");
    const int T = t->o.seq_len, N = t->o.n_pairs, half = t->o.vocab / 2;
    const int slots = (T - 2 * N) / 2; /* query slots of 2 tokens after the pairs */
    int *perm = malloc((size_t)(half > slots ? half : slots) * sizeof *perm);
    int32_t *keys = malloc((size_t)N * sizeof *keys), *vals = malloc((size_t)N * sizeof *vals);
    if (!perm || !keys || !vals) {
        free(perm), free(keys), free(vals);
        return hydra_set_error(HYDRA_ERR_NOMEM, "out of memory");
    }
    for (int b = 0; b < B; b++) {
        int32_t *in = inputs + (size_t)b * T, *tg = targets + (size_t)b * T;
        uint8_t *mk = mask + (size_t)b * T;
        int32_t *ds = distance ? distance + (size_t)b * T : NULL;
        /* N distinct keys from [1, half): partial Fisher-Yates */
        for (int i = 0; i < half - 1; i++) perm[i] = i + 1;
        for (int i = 0; i < N; i++) {
            int j = i + (int)below(rng, (uint64_t)(half - 1 - i));
            int tmp = perm[i];
            perm[i] = perm[j], perm[j] = tmp;
            keys[i] = perm[i];
            vals[i] = half + (int32_t)below(rng, (uint64_t)(t->o.vocab - half));
        }
        for (int i = 0; i < T; i++) in[i] = 0;
        for (int i = 0; i < N; i++) in[2 * i] = keys[i], in[2 * i + 1] = vals[i];
        /* each key queried once, in a random slot of the tail */
        for (int i = 0; i < slots; i++) perm[i] = i;
        for (int i = 0; i < N; i++) {
            int j = i + (int)below(rng, (uint64_t)(slots - i));
            int tmp = perm[i];
            perm[i] = perm[j], perm[j] = tmp;
            int p = 2 * N + 2 * perm[i];
            in[p] = keys[i];
            in[p + 1] = vals[i];
        }
        /* next-token targets; only the answers (value after a query key) are scored */
        for (int i = 0; i < T; i++) {
            tg[i] = i + 1 < T ? in[i + 1] : 0;
            mk[i] = 0;
            if (ds) ds[i] = 0;
        }
        for (int i = 0; i < N; i++) {
            int p = 2 * N + 2 * perm[i];
            mk[p] = 1;
            if (ds) ds[p] = p - 2 * i;
        }
    }
    free(perm), free(keys), free(vals);
    return HYDRA_OK;
}

static hydra_status mqar_task_sample(void *ctx, int split, hydra_rng *rng, int B, int T, int32_t *inputs,
                                     int32_t *targets, uint8_t *mask) {
    const hydra_mqar *t = ctx;
    (void)split; /* fresh random sequences: train and validation never repeat anyway */
    if (T != t->o.seq_len)
        return hydra_set_error(HYDRA_ERR_ARG, "mqar task: seq must equal the task's seq_len %d (got %d)", t->o.seq_len, T);
    return hydra_mqar_sample(t, rng, B, inputs, targets, mask, NULL);
}

hydra_task hydra_mqar_task(hydra_mqar *t) {
    hydra_task task = {"mqar", t, t ? t->o.vocab : 0, mqar_task_sample};
    return task;
}

hydra_status hydra_mqar_eval(const hydra_model *m, const hydra_mqar *t, uint64_t seed, int n_batches,
                             int B, int window, hydra_mqar_result *out) {
    if (!m || !t || !out) return hydra_set_error(HYDRA_ERR_ARG, "mqar_eval: NULL argument");
    if (n_batches < 1 || B < 1) return hydra_set_error(HYDRA_ERR_ARG, "mqar_eval: n_batches and B must be >= 1");
    if (m->cfg.vocab_size < t->o.vocab)
        return hydra_set_error(HYDRA_ERR_MISMATCH, "mqar_eval: model vocabulary %d < task vocabulary %d", m->cfg.vocab_size, t->o.vocab);
    const int T = t->o.seq_len, V = m->cfg.vocab_size;
    size_t BT = (size_t)B * T;
    int32_t *in = malloc(BT * sizeof *in), *tg = malloc(BT * sizeof *tg), *ds = malloc(BT * sizeof *ds);
    uint8_t *mk = malloc(BT);
    float *logits = malloc(BT * (size_t)V * sizeof(float));
    hydra_status st = (in && tg && ds && mk && logits) ? HYDRA_OK : hydra_set_error(HYDRA_ERR_NOMEM, "out of memory");
    hydra_rng r;
    hydra_rng_seed(&r, seed);
    int64_t n = 0, nb = 0, hit = 0, hitb = 0;
    double loss = 0;
    for (int it = 0; st == HYDRA_OK && it < n_batches; it++) {
        if ((st = hydra_mqar_sample(t, &r, B, in, tg, mk, ds)) != HYDRA_OK) break;
        if ((st = hydra_forward(m, in, B, T, NULL, HYDRA_LOGITS_ALL, logits)) != HYDRA_OK) break;
        for (size_t i = 0; i < BT; i++) {
            if (!mk[i]) continue;
            const float *row = logits + i * (size_t)V;
            int best = 0;
            double mx = row[0], z = 0;
            for (int v = 1; v < V; v++)
                if (row[v] > row[best]) best = v;
            mx = row[best];
            for (int v = 0; v < V; v++) z += exp((double)row[v] - mx);
            loss += log(z) + mx - row[tg[i]];
            int ok = best == tg[i];
            n++, hit += ok;
            if (ds[i] > window) nb++, hitb += ok;
        }
    }
    free(in), free(tg), free(ds), free(mk), free(logits);
    if (st != HYDRA_OK) return st;
    out->answers = n;
    out->answers_beyond = nb;
    out->accuracy = n ? (double)hit / (double)n : 0;
    out->accuracy_beyond = nb ? (double)hitb / (double)nb : 0;
    out->loss = n ? loss / (double)n : 0;
    return HYDRA_OK;
}

/* ------------------------------------------------ MQAR training recipe */
hydra_mqar_train_opts hydra_mqar_train_opts_default(void) {
    hydra_mqar_train_opts o;
    memset(&o, 0, sizeof o);
    o.cfg = hydra_config_default();
    o.task = (hydra_mqar_opts){.vocab = 64, .seq_len = 64, .n_pairs = 4};
    o.train.optim = hydra_optim_opts_default(HYDRA_OPT_ADAMW);
    o.train.batch = 64;
    o.steps = 1000;
    o.eval_batches = 8;
    o.eval_batch = 64;
    o.eval_seed = 0xE7A1;
    return o;
}

/* Progress shared by the stages of one run: evaluation points on the main
 * task every eval_every steps counted over all stages. */
typedef struct {
    const hydra_mqar_train_opts *o;
    const hydra_mqar *main_task;
    int done, total; /* steps so far, all stages' steps */
    double t0, loss_sum;
    int loss_n, stop;
    hydra_mqar_point pt;
} mqar_progress;

/* Train m on `task` for `steps` at batch B with optimizer settings `optim`. */
static hydra_status mqar_stage(hydra_model *m, const hydra_mqar_opts *task_opts, int steps, int B,
                               const hydra_optim_opts *optim, uint64_t seed, mqar_progress *p) {
    const hydra_mqar_train_opts *o = p->o;
    hydra_mqar *task = NULL;
    hydra_trainer *tr = NULL;
    hydra_train_opts to = o->train;
    to.optim = *optim;
    to.batch = B;
    to.seq = task_opts->seq_len;
    to.seed = seed;
    hydra_status st = hydra_mqar_create(task_opts, &task);
    if (!st && o->cfg.vocab_size < task_opts->vocab)
        st = hydra_set_error(HYDRA_ERR_MISMATCH, "mqar_train: model vocabulary %d < task vocabulary %d", o->cfg.vocab_size, task_opts->vocab);
    if (!st) st = hydra_trainer_create(m, hydra_mqar_task(task), &to, &tr);
    for (int s = 1; !st && !p->stop && s <= steps; s++) {
        hydra_step_info info;
        if ((st = hydra_trainer_step(tr, &info))) break;
        p->loss_sum += info.loss, p->loss_n++;
        const int g = ++p->done;
        if (g == p->total || (o->eval_every > 0 && g % o->eval_every == 0)) {
            p->pt.step = g;
            p->pt.train_loss = p->loss_sum / p->loss_n;
            p->loss_sum = 0, p->loss_n = 0;
            if ((st = hydra_mqar_eval(m, p->main_task, o->eval_seed, o->eval_batches, o->eval_batch, o->window, &p->pt.eval)))
                break;
            p->pt.seconds = hydra_now_seconds() - p->t0;
            if (o->on_point && o->on_point(&p->pt, o->user)) p->stop = 1;
        }
    }
    hydra_trainer_free(tr);
    hydra_mqar_free(task);
    return st;
}

hydra_status hydra_mqar_train(const hydra_mqar_train_opts *o, hydra_model **model_out, hydra_mqar_point *final) {
    if (!o) return hydra_set_error(HYDRA_ERR_ARG, "mqar_train: NULL options");
    if (model_out) *model_out = NULL;
    if (o->steps < 1 || o->eval_every < 0 || o->eval_batches < 1 || o->eval_batch < 1)
        return hydra_set_error(HYDRA_ERR_ARG, "mqar_train: steps, eval_batches and eval_batch must be >= 1, eval_every >= 0");
    if (o->n_stages < 0 || o->n_stages > HYDRA_MQAR_MAX_STAGES)
        return hydra_set_error(HYDRA_ERR_ARG, "mqar_train: n_stages must be in [0, %d]", HYDRA_MQAR_MAX_STAGES);
    mqar_progress p;
    memset(&p, 0, sizeof p);
    p.o = o;
    p.total = o->steps;
    for (int i = 0; i < o->n_stages; i++) {
        if (o->stages[i].steps < 1 || o->stages[i].batch < 1)
            return hydra_set_error(HYDRA_ERR_ARG, "mqar_train: curriculum stage %d needs steps and batch >= 1", i + 1);
        p.total += o->stages[i].steps;
    }
    hydra_mqar *task = NULL;
    hydra_model *m = NULL;
    hydra_status st = hydra_mqar_create(&o->task, &task);
    if (!st) st = hydra_model_create(&o->cfg, o->init_seed, &m);
    if (!st && o->device && strcmp(o->device, "cpu")) st = hydra_model_to_device(m, o->device, HYDRA_PRECISION_DEFAULT);
    p.main_task = task;
    p.t0 = hydra_now_seconds();
    for (int i = 0; !st && !p.stop && i < o->n_stages; i++) {
        /* each stage gets the main schedule's shape scaled to its length */
        hydra_optim_opts so = o->train.optim;
        so.total_steps = o->stages[i].steps;
        so.warmup_steps = (int)((int64_t)o->train.optim.warmup_steps * o->stages[i].steps / o->steps);
        st = mqar_stage(m, &o->stages[i].task, o->stages[i].steps, o->stages[i].batch, &so,
                        o->train.seed + 7919 * (uint64_t)(i + 1), &p);
    }
    if (!st && !p.stop) st = mqar_stage(m, &o->task, o->steps, o->train.batch, &o->train.optim, o->train.seed, &p);
    hydra_mqar_free(task);
    if (!st && final) *final = p.pt;
    if (!st && model_out) *model_out = m;
    else hydra_model_free(m);
    return st;
}

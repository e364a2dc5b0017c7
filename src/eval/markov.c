/* markov.c — the order-2 Markov source (hydralm_eval.h): predictable text for
 * measuring speculative decoding's speed without external data. */
#include <string.h>

#include "core/internal.h"
#include "hydralm_eval.h"

struct hydra_markov {
    hydra_markov_opts o;
    int32_t *next; /* [V * V] preferred next token of context (a, b) */
};

hydra_status hydra_markov_create(const hydra_markov_opts *o, hydra_markov **out) {
    if (!o || !out) return hydra_set_error(HYDRA_ERR_ARG, "markov: NULL argument");
    *out = NULL;
    if (o->vocab < 2 || o->vocab > 1024 || !(o->p_top >= 0 && o->p_top <= 1))
        return hydra_set_error(HYDRA_ERR_ARG, "markov: need vocab in [2, 1024] and p_top in [0, 1]");
    hydra_markov *mk = calloc(1, sizeof *mk);
    if (mk) mk->next = malloc((size_t)o->vocab * (size_t)o->vocab * sizeof *mk->next);
    if (!mk || !mk->next) {
        hydra_markov_free(mk);
        return hydra_set_error(HYDRA_ERR_NOMEM, "out of memory");
    }
    mk->o = *o;
    hydra_rng r;
    hydra_rng_seed(&r, o->seed);
    for (size_t i = 0; i < (size_t)o->vocab * (size_t)o->vocab; i++)
        mk->next[i] = (int32_t)(hydra_rng_next(&r) % (uint64_t)o->vocab);
    *out = mk;
    return HYDRA_OK;
}

void hydra_markov_free(hydra_markov *mk) {
    if (!mk) return;
    free(mk->next);
    free(mk);
}

int32_t hydra_markov_preferred(const hydra_markov *mk, int32_t a, int32_t b) {
    return mk->next[(size_t)a * (size_t)mk->o.vocab + (size_t)b];
}

hydra_status hydra_markov_generate(const hydra_markov *mk, hydra_rng *rng, int32_t *out, size_t n) {
    if (!mk || !rng || (!out && n)) return hydra_set_error(HYDRA_ERR_ARG, "markov_generate: NULL argument");
    const int V = mk->o.vocab;
    for (size_t i = 0; i < n; i++) {
        if (i < 2 || hydra_rng_uniform(rng) >= mk->o.p_top) out[i] = (int32_t)(hydra_rng_next(rng) % (uint64_t)V);
        else out[i] = hydra_markov_preferred(mk, out[i - 2], out[i - 1]);
    }
    return HYDRA_OK;
}

static hydra_status markov_sample(void *ctx, int split, hydra_rng *rng, int B, int T, int32_t *inputs,
                                  int32_t *targets, uint8_t *mask) {
    const hydra_markov *mk = ctx;
    (void)split; /* fresh random streams */
    int32_t *buf = malloc(((size_t)T + 1) * sizeof *buf);
    if (!buf) return hydra_set_error(HYDRA_ERR_NOMEM, "out of memory");
    hydra_status st = HYDRA_OK;
    for (int b = 0; b < B && !st; b++) {
        if ((st = hydra_markov_generate(mk, rng, buf, (size_t)T + 1))) break;
        memcpy(inputs + (size_t)b * T, buf, (size_t)T * sizeof *buf);
        memcpy(targets + (size_t)b * T, buf + 1, (size_t)T * sizeof *buf);
        memset(mask + (size_t)b * T, 1, (size_t)T);
    }
    free(buf);
    return st;
}

hydra_task hydra_markov_task(hydra_markov *mk) {
    hydra_task t = {"markov2", mk, mk ? mk->o.vocab : 0, markov_sample};
    return t;
}

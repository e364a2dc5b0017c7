/* cmd_mqar.c — `hydra mqar`: train a fresh model on multi-query associative
 * recall and print its held-out accuracy curve (the claim-2 recipe, exposed
 * so that users can sweep shapes and learning rates themselves). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "hydralm_eval.h"

typedef struct {
    FILE *csv;
    int quiet;
} mqar_cli;

static int on_point(const hydra_mqar_point *p, void *user) {
    mqar_cli *c = user;
    if (!c->quiet)
        fprintf(stderr, "step %6d | train loss %.4f | eval loss %.4f | acc %.4f | beyond-window acc %.4f (%lld) | %.1f s\n",
                p->step, p->train_loss, p->eval.loss, p->eval.accuracy, p->eval.accuracy_beyond,
                (long long)p->eval.answers_beyond, p->seconds);
    if (c->csv) {
        fprintf(c->csv, "%d,%.6f,%.6f,%.6f,%.6f,%.2f\n", p->step, p->train_loss, p->eval.loss, p->eval.accuracy,
                p->eval.accuracy_beyond, p->seconds);
        fflush(c->csv);
    }
    return 0;
}

/* "L:P:STEPS[:BATCH],..." -> stages (batch defaults to the main batch). */
static int parse_curriculum(const char *spec, int vocab, int batch, hydra_mqar_train_opts *o) {
    const char *p = spec;
    while (*p) {
        if (o->n_stages == HYDRA_MQAR_MAX_STAGES) {
            fprintf(stderr, "hydra mqar: --curriculum takes at most %d stages\n", HYDRA_MQAR_MAX_STAGES);
            return 2;
        }
        int len, pairs, steps, b = batch, n = 0;
        int k = sscanf(p, "%d:%d:%d%n:%d%n", &len, &pairs, &steps, &n, &b, &n);
        if (k < 3 || len < 1 || pairs < 1 || steps < 1 || b < 1 || (p[n] && p[n] != ',')) {
            fprintf(stderr, "hydra mqar: bad --curriculum stage '%s' (want L:PAIRS:STEPS[:BATCH], comma-separated)\n", p);
            return 2;
        }
        o->stages[o->n_stages++] = (hydra_mqar_stage){{.vocab = vocab, .seq_len = len, .n_pairs = pairs}, steps, b};
        p += n + (p[n] == ',');
    }
    return 0;
}

int cmd_mqar(int argc, char **argv) {
    cli_spec s = {.usage = "hydra mqar [config options] [--len L --pairs P --steps N --batch B --lr X] [--out M]",
                  .summary = "Trains a fresh model on MQAR (multi-query associative recall, Zoology protocol:\n"
                             "P key-value pairs, then each key queried once at a random later position; keys\n"
                             "and values from disjoint halves of the vocabulary; loss only on the answers)\n"
                             "and prints held-out accuracy every --eval-every steps, overall and for answers\n"
                             "more than --window tokens from their pair (only a recurrent state reaches them).\n"
                             "Defaults here are a small model: vocab 64, d_model 64, 2 heads x 32, 2 layers\n"
                             "'DS', window 16, conv 4, seq 64, 4 pairs."};
    cli_config cc;
    cli_optim co;
    const char *out = NULL, *csv_path = NULL, *curriculum = NULL, *device = NULL;
    int len = 64, pairs = 4, steps = 1000, batch = 64, eval_every = 100, eval_batches = 8, threads = 0, quiet = 0;
    uint64_t seed = 0;
    cli_add_config_opts(&s, &cc);
    cli_add_optim_opts(&s, &co);
    cli_add(&s, "len", OPT_INT, &len, "sequence length L (default 64)");
    cli_add(&s, "pairs", OPT_INT, &pairs, "key-value pairs per sequence (default 4)");
    cli_add(&s, "steps", OPT_INT, &steps, "optimisation steps (default 1000)");
    cli_add(&s, "batch", OPT_INT, &batch, "sequences per step (default 64)");
    cli_add(&s, "seed", OPT_U64, &seed, "model init and data seed (default 0)");
    cli_add(&s, "eval-every", OPT_INT, &eval_every, "evaluate every N steps (default 100)");
    cli_add(&s, "eval-batches", OPT_INT, &eval_batches, "held-out batches of 64 sequences (default 8)");
    cli_add(&s, "curriculum", OPT_STR, &curriculum,
            "easier tasks first: L:PAIRS:STEPS[:BATCH],... (fresh optimizer each)");
    cli_add(&s, "csv", OPT_STR, &csv_path, "write the accuracy curve as CSV");
    cli_add(&s, "out", OPT_STR, &out, "save the trained model (safetensors)");
    cli_add(&s, "threads", OPT_INT, &threads, "threads (default: the CPUs this process may use)");
    cli_add(&s, "device", OPT_STR, &device, "cpu (default) or cuda[:N]: train and evaluate there (bf16, as the claims do)");
    cli_add(&s, "quiet", OPT_FLAG, &quiet, "only the final line");
    /* small-model defaults (flags override) */
    cli_small_recall_config(&cc.cfg, 2, 16, "DS");
    int r = cli_parse(&s, argc, argv);
    if (r) return r > 0 ? 0 : 2;
    if (steps < 1 || batch < 1 || eval_every < 0 || eval_batches < 1) {
        fprintf(stderr, "hydra mqar: --steps, --batch, --eval-batches must be >= 1 and --eval-every >= 0\n");
        return 2;
    }
    if (cli_config_resolve(&cc)) return 2;
    hydra_mqar_train_opts o = hydra_mqar_train_opts_default();
    if (cli_optim_resolve(&co, steps, &o.train.optim)) return 2;
    if (threads > 0) hydra_set_num_threads(threads);
    o.cfg = cc.cfg;
    o.init_seed = seed;
    o.task = (hydra_mqar_opts){.vocab = cc.cfg.vocab_size, .seq_len = len, .n_pairs = pairs};
    o.train.batch = batch;
    o.train.seed = seed;
    o.steps = steps;
    o.eval_every = eval_every;
    o.eval_batches = eval_batches;
    o.window = cc.cfg.window;
    o.device = device;
    mqar_cli c = {NULL, quiet};
    if (csv_path) {
        if (!(c.csv = fopen(csv_path, "w"))) {
            perror(csv_path);
            return 1;
        }
        fprintf(c.csv, "step,train_loss,eval_loss,accuracy,accuracy_beyond_window,seconds\n");
    }
    if (curriculum && parse_curriculum(curriculum, cc.cfg.vocab_size, batch, &o)) return 2;
    o.on_point = on_point;
    o.user = &c;
    hydra_model *m = NULL;
    hydra_mqar_point fin;
    hydra_status st = hydra_mqar_train(&o, out ? &m : NULL, &fin);
    if (c.csv) fclose(c.csv);
    if (st) return cli_fail("mqar", "training", st);
    char sched[HYDRA_MAX_LAYERS + 1];
    printf("mqar %s L=%d P=%d V=%d window=%d: accuracy %.4f, beyond-window %.4f, loss %.4f after %d steps (%.1f s)\n",
           cli_schedule(&cc.cfg, sched), len, pairs, cc.cfg.vocab_size, cc.cfg.window, fin.eval.accuracy,
           fin.eval.accuracy_beyond, fin.eval.loss, fin.step, fin.seconds);
    if (out && (st = hydra_model_save(m, out))) {
        hydra_model_free(m);
        return cli_fail("mqar", out, st);
    }
    hydra_model_free(m);
    return 0;
}

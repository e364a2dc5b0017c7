/* hydra train — train a model on a byte-level text file, with a live progress
 * line, periodic validation and samples, a CSV log, a loss-curve SVG and
 * checkpoints that resume bit-exactly. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "comm_mpi.h"
#include "comm_nccl.h"
#include "hydralm_dist.h"
#include "hydralm_train.h"

typedef struct {
    double *step, *train, *vstep, *val;
    int n, nv, cap, vcap;
} loss_log;

static void log_push(double **xs, double **ys, int *n, int *cap, double x, double y) {
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 1024;
        *xs = realloc(*xs, (size_t)*cap * sizeof **xs);
        *ys = realloc(*ys, (size_t)*cap * sizeof **ys);
    }
    (*xs)[*n] = x;
    (*ys)[*n] = y;
    (*n)++;
}

/* Re-read an existing CSV up to `upto` steps (resume) and rewrite it, so the
 * log holds exactly the history of the checkpoint being continued. */
static FILE *open_csv(const char *path, int64_t upto, loss_log *lg) {
    FILE *old = upto > 0 ? fopen(path, "r") : NULL;
    char **keep = NULL;
    int nkeep = 0;
    if (old) {
        char line[512];
        while (fgets(line, sizeof line, old)) {
            long long s;
            double tl, vl;
            if (sscanf(line, "%lld,%lf,%lf", &s, &tl, &vl) < 2 || s > upto) continue;
            keep = realloc(keep, (size_t)(nkeep + 1) * sizeof *keep);
            keep[nkeep++] = strdup(line);
            log_push(&lg->step, &lg->train, &lg->n, &lg->cap, (double)s, tl);
            if (sscanf(line, "%lld,%lf,%lf", &s, &tl, &vl) == 3 && !isnan(vl))
                log_push(&lg->vstep, &lg->val, &lg->nv, &lg->vcap, (double)s, vl);
        }
        fclose(old);
    }
    FILE *f = fopen(path, "w");
    if (f) {
        fprintf(f, "step,train_loss,val_loss,lr,grad_norm,tokens_per_s,elapsed_s\n");
        for (int i = 0; i < nkeep; i++) fputs(keep[i], f);
        fflush(f);
    }
    for (int i = 0; i < nkeep; i++) free(keep[i]);
    free(keep);
    return f;
}

static void fmt_eta(double s, char *buf, size_t n) {
    if (s < 0 || !isfinite(s)) snprintf(buf, n, "?");
    else if (s < 60) snprintf(buf, n, "%.0fs", s);
    else if (s < 3600) snprintf(buf, n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else snprintf(buf, n, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

/* A short greedy-ish sample so the log shows what the model has learned. */
static void write_sample(const hydra_model *m, FILE *to, FILE *also, int64_t step, int len, uint64_t seed) {
    int32_t prompt[1] = {'\n'};
    int32_t *out = malloc((size_t)len * sizeof *out);
    size_t n = 0;
    hydra_gen_opts g = hydra_gen_opts_default();
    g.max_new_tokens = len;
    g.sample.temperature = 0.8f;
    g.sample.top_p = 0.95f;
    g.seed = seed;
    if (out && hydra_generate(m, NULL, prompt, 1, &g, out, (size_t)len, &n) == HYDRA_OK) {
        FILE *dst[2] = {to, also};
        for (int d = 0; d < 2; d++) {
            if (!dst[d]) continue;
            fprintf(dst[d], "--- sample at step %lld ---\n", (long long)step);
            for (size_t i = 0; i < n; i++) fputc(out[i] < 256 ? (int)out[i] : '?', dst[d]);
            fprintf(dst[d], "\n");
            fflush(dst[d]);
        }
    }
    free(out);
}

/* Hidden test hooks for the failure tests (tests/dist_cli.sh): on rank
 * HYDRA_TEST_FAULT_RANK, exit at step HYDRA_TEST_EXIT_AT_STEP, die of
 * SIGKILL at HYDRA_TEST_KILL_AT_STEP or hang from HYDRA_TEST_HANG_AT_STEP,
 * as a failing, crashed or stuck rank would. */
static void test_fault(int rank, int64_t step) {
    const char *fr = getenv("HYDRA_TEST_FAULT_RANK");
    if (!fr || atoi(fr) != rank) return;
    const char *ex = getenv("HYDRA_TEST_EXIT_AT_STEP"), *hang = getenv("HYDRA_TEST_HANG_AT_STEP");
    const char *kill = getenv("HYDRA_TEST_KILL_AT_STEP");
    if (kill && atoll(kill) == step) raise(SIGKILL);
    if (ex && atoll(ex) == step) {
        fprintf(stderr, "hydra train (rank %d): exiting on purpose at step %lld (HYDRA_TEST_EXIT_AT_STEP)\n", rank,
                (long long)step);
        _exit(3);
    }
    if (hang && atoll(hang) == step) {
        fprintf(stderr, "hydra train (rank %d): hanging on purpose at step %lld (HYDRA_TEST_HANG_AT_STEP)\n", rank,
                (long long)step);
        for (;;) pause();
    }
}

/* Data parallelism under mpirun: the communicator, this rank, and the
 * prefix of its messages. */
typedef struct {
    hydra_comm comm, host; /* comm: what the trainer uses (host's MPI, plus NCCL on GPU ranks) */
    int on, rank, size, local, nccl;
    char who[64]; /* "train" or "train (rank r of N)" */
} train_dist;

/* This rank's index among the ranks on its host (the launcher's variable,
 * else rank modulo ranks per host: mpirun fills hosts in rank order). */
static int local_rank(const train_dist *d) {
    static const char *const vars[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "PMI_LOCAL_RANK",
                                       "SLURM_LOCALID"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return atoi(getenv(vars[i]));
    return d->local > 0 ? d->rank % d->local : 0;
}

/* GPU ranks: --device cuda means cuda:<local rank> (one GPU per rank; an
 * explicit cuda:N is kept), and the gradients are summed by NCCL on the
 * devices. 0 ready, -1 reported. */
static int dist_gpu_setup(train_dist *d, cli_device *dev, char *name, size_t n, double timeout) {
    if (!d->on || !dev->device || strcmp(dev->device, "cpu") == 0) return 0;
    int idx = strcmp(dev->device, "cuda") == 0 ? local_rank(d) : atoi(dev->device + 5);
    snprintf(name, n, "cuda:%d", idx);
    dev->device = name;
    const int count = hydra_cuda_device_count();
    if (idx >= count) { /* every rank of a host without enough GPUs says so, before any collective */
        fprintf(stderr, "hydra %s: GPU ranks: %s is not there (%d CUDA device%s visible%s); one GPU per rank\n", d->who,
                name, count, count == 1 ? "" : "s", hydra_cuda_compiled() ? "" : ": this hydra was built without CUDA");
        return -1;
    }
    char err[400];
    d->host = d->comm;
    if (cli_nccl_init(&d->host, idx, timeout, &d->comm, err, sizeof err) != 0) {
        fprintf(stderr, "hydra %s: GPU ranks: %s\n", d->who, err);
        return -1;
    }
    d->nccl = 1;
    return 0;
}

/* 0: not under a launcher (or -np 1... with MPI: still data-parallel of
 * size 1); 1: ready; -1: refused with a message. */
static int dist_setup(train_dist *d, double timeout) {
    memset(d, 0, sizeof *d);
    d->size = 1;
    snprintf(d->who, sizeof d->who, "train");
    int n = cli_mpi_launched_size();
    if (n == 0) return 0;
    if (!cli_mpi_built()) {
        if (n == 1) return 0;
        fprintf(stderr, "hydra train: started by an MPI launcher with %d ranks, but this hydra was built without MPI "
                        "(install libopenmpi-dev, rebuild); refusing to train %d independent copies\n", n, n);
        return -1;
    }
    if (cli_mpi_init(NULL, NULL, timeout, &d->comm, &d->local) != 0) return -1;
    d->on = 1;
    d->rank = d->comm.rank;
    d->size = d->comm.size;
    snprintf(d->who, sizeof d->who, "train (rank %d of %d)", d->rank, d->size);
    return 1;
}

int cmd_train(int argc, char **argv) {
    cli_spec s = {.usage = "hydra train --data FILE --out DIR [config options] [--steps N --batch B --seq T\n"
                           "                   --optimizer adamw|muon --lr X --seed S] [--resume DIR]",
                  .summary = "Trains a model on a byte-level text file (the last --val-fraction of the file is\n"
                             "held out). Writes to DIR: model.safetensors + trainer.bin (a checkpoint every\n"
                             "--ckpt-every steps and at the end; --resume DIR continues bit-exactly),\n"
                             "loss.csv, loss.svg and samples.txt. Config options apply to a new model only.\n"
                             "Several processes: mpirun -np N hydra train ... runs N data-parallel ranks (MPI):\n"
                             "--batch is the global batch (divisible by N); rank 0 prints and writes; add\n"
                             "--shard-optimizer to split the optimizer state across ranks (ZeRO-1). Threads\n"
                             "default to cores / ranks on the host. With --device cuda each rank takes\n"
                             "cuda:<its rank on the host> and NCCL sums the gradients on the GPUs, layer by\n"
                             "layer while the backward goes on. docs/distributed.md has the details.\n"
                             "On a GPU: --device cuda trains there (bf16 tensor cores, f32 master weights\n"
                             "and moments; --precision f32 for tensor cores off); a batch that does not fit\n"
                             "runs as micro-batches whose gradients add up (--micro-batch forces a size).\n"
                             "Checkpoints are the same files on either device. docs/gpu.md \"Training\"."};
    cli_config cc;
    cli_optim co;
    const char *data = NULL, *out = NULL, *resume = NULL;
    int steps = 1000, batch = 16, seq = 256, eval_every = 100, eval_batches = 8;
    int ckpt_every = 500, sample_len = 200, threads = 0, log_every = 10;
    float val_fraction = 0.1f;
    uint64_t seed = 0;
    int shard = 0, micro = 0;
    float comm_timeout = 600;
    cli_device dev;
    cli_add_config_opts(&s, &cc);
    cli_add(&s, "data", OPT_STR, &data, "training text file (bytes are tokens) (required)");
    cli_add(&s, "out", OPT_STR, &out, "output directory (required)");
    cli_add(&s, "steps", OPT_INT, &steps, "total optimisation steps (default 1000)");
    cli_add(&s, "batch", OPT_INT, &batch, "sequences per step B (default 16)");
    cli_add(&s, "seq", OPT_INT, &seq, "tokens per sequence T (default 256)");
    cli_add_optim_opts(&s, &co);
    cli_add(&s, "seed", OPT_U64, &seed, "seed for the model init and the data sampling (default 0)");
    cli_add(&s, "val-fraction", OPT_FLOAT, &val_fraction, "held-out tail of the file (default 0.1)");
    cli_add(&s, "eval-every", OPT_INT, &eval_every, "validation + sample every N steps (default 100)");
    cli_add(&s, "eval-batches", OPT_INT, &eval_batches, "validation batches (default 8)");
    cli_add(&s, "ckpt-every", OPT_INT, &ckpt_every, "checkpoint every N steps (default 500)");
    cli_add(&s, "sample-len", OPT_INT, &sample_len, "length of the generated samples, 0 = none (default 200)");
    cli_add(&s, "log-every", OPT_INT, &log_every, "progress line every N steps when not on a terminal (default 10)");
    cli_add(&s, "resume", OPT_STR, &resume, "continue the checkpoint in this directory");
    cli_add(&s, "threads", OPT_INT, &threads, "threads per rank (default: usable CPUs / ranks on this host)");
    cli_add(&s, "shard-optimizer", OPT_FLAG, &shard, "under mpirun: shard the optimizer state across ranks (ZeRO-1)");
    cli_add_device_opts(&s, &dev, "");
    cli_add(&s, "micro-batch", OPT_INT, &micro,
            "on a GPU: sequences per forward/backward pass; the step still uses --batch (default: as many as fit)");
    cli_add(&s, "comm-timeout", OPT_FLOAT, &comm_timeout,
            "under mpirun: end the job if a collective waits longer than this many seconds, 0 = never (default 600)");
    int r = cli_parse(&s, argc, argv);
    if (r) return r > 0 ? 0 : 2;
    if (!data || !out) {
        fprintf(stderr, "hydra train: --data and --out are required (see --help)\n");
        return 2;
    }
    if (steps < 1 || batch < 1 || seq < 1 || eval_every < 1 || ckpt_every < 1 || eval_batches < 1 || log_every < 1) {
        fprintf(stderr, "hydra train: --steps, --batch, --seq, --eval-every, --ckpt-every, --eval-batches and --log-every must be >= 1\n");
        return 2;
    }
    if (cli_device_check("train", &dev)) return 2;
    if (micro < 0) {
        fprintf(stderr, "hydra train: --micro-batch must be >= 1\n");
        return 2;
    }
    if (micro > 0) { /* read by the GPU trainer (src/cuda/train.c) */
        char mb[32];
        snprintf(mb, sizeof mb, "%d", micro);
        setenv("HYDRA_CUDA_MICRO_BATCH", mb, 1);
    }
    train_dist dist;
    char devname[32];
    if (dist_setup(&dist, comm_timeout) < 0) return 2;
    if (dist_gpu_setup(&dist, &dev, devname, sizeof devname, comm_timeout) < 0) return 2;
    const char *who = dist.who;
    const int rank0 = dist.rank == 0;
    if (threads <= 0 && dist.local > 1) {
        long cpus = hydra_get_num_threads(); /* the CPUs this process may use (docs/threads.md) */
        threads = cpus / dist.local > 1 ? (int)(cpus / dist.local) : 1;
    }
    if (threads > 0) hydra_set_num_threads(threads);
    hydra_text_data *td = NULL;
    hydra_status st = hydra_text_data_load(data, val_fraction, &td);
    if (st) return cli_fail(who, data, st);
    hydra_task task = hydra_text_data_task(td);
    hydra_dist_opts dopts = {dist.on ? &dist.comm : NULL, shard,
                             (uint64_t)(hydra_text_data_size(td, 0) + hydra_text_data_size(td, 1))};
    hydra_model *m = NULL;
    hydra_trainer *tr = NULL;
    if (resume) {
        st = hydra_trainer_resume_dist(resume, task, &dopts, &m, &tr);
        if (st) {
            hydra_text_data_free(td);
            return cli_fail(who, resume, st);
        }
        if (rank0) fprintf(stderr, "resumed %s at step %lld\n", resume, (long long)hydra_trainer_steps(tr));
    } else {
        if (cli_config_resolve(&cc)) {
            hydra_text_data_free(td);
            return 2;
        }
        hydra_train_opts o;
        memset(&o, 0, sizeof o);
        if (cli_optim_resolve(&co, steps, &o.optim)) {
            hydra_text_data_free(td);
            return 2;
        }
        o.batch = batch;
        o.seq = seq;
        o.seed = seed;
        if ((st = hydra_model_create(&cc.cfg, seed, &m)) == HYDRA_OK)
            st = hydra_trainer_create_dist(m, task, &o, &dopts, &tr);
        if (st) {
            hydra_model_free(m);
            hydra_text_data_free(td);
            return cli_fail(who, "setting up", st);
        }
    }
    if ((st = cli_model_place(m, &dev)) != HYDRA_OK) {
        hydra_trainer_free(tr), hydra_model_free(m), hydra_text_data_free(td);
        return cli_fail(who, dev.device, st);
    }
    if (rank0 && cli_mkdir_p(out) != 0) {
        fprintf(stderr, "hydra train: cannot create %s: %s\n", out, strerror(errno));
        hydra_trainer_free(tr), hydra_model_free(m), hydra_text_data_free(td);
        return 1;
    }
    const hydra_train_opts *to = hydra_trainer_opts(tr);
    char path[4096], svg[4096];
    snprintf(path, sizeof path, "%s/loss.csv", out);
    snprintf(svg, sizeof svg, "%s/loss.svg", out);
    loss_log lg = {0};
    int64_t start = hydra_trainer_steps(tr);
    FILE *csv = rank0 ? open_csv(path, start, &lg) : NULL;
    snprintf(path, sizeof path, "%s/samples.txt", out);
    FILE *samples = rank0 ? fopen(path, start > 0 ? "a" : "w") : NULL;
    if (rank0 && (!csv || !samples)) {
        fprintf(stderr, "hydra train: cannot write logs in %s\n", out);
        st = HYDRA_ERR_IO;
    }
    int tty = rank0 && isatty(fileno(stderr));
    char b1s[32], b2s[32];
    cli_bytes((double)hydra_trainer_memory_bytes(tr), b2s, sizeof b2s);
    if (rank0)
        fprintf(stderr, "model: %zu parameters (%s); data: %zu train / %zu validation bytes; %s, B=%d T=%d, %lld steps\n",
                hydra_model_n_params(m), cli_bytes(4.0 * (double)hydra_model_n_params(m), b1s, sizeof b1s),
                hydra_text_data_size(td, 0), hydra_text_data_size(td, 1),
                to->optim.kind == HYDRA_OPT_MUON ? "Muon+AdamW" : "AdamW", to->batch, to->seq, (long long)steps);
    if (rank0 && strcmp(hydra_model_device(m), "cpu") != 0) {
        char name[256] = "";
        hydra_cuda_device_name(atoi(hydra_model_device(m) + 5), name, sizeof name);
        fprintf(stderr, "device: %s = %s, %s\n", hydra_model_device(m), name,
                hydra_model_precision(m) == HYDRA_PRECISION_F32 ? "f32 (tensor cores off)"
                                                                : "bf16 tensor cores, f32 master weights");
    }
    if (rank0 && dist.on)
        fprintf(stderr, "data-parallel: %d ranks (%s), %d sequences per rank, %d threads per rank, optimizer state %s; "
                        "%s per rank (weights, gradients, optimizer, batch)\n",
                dist.size, dist.nccl ? "MPI + NCCL, one GPU each" : "MPI", to->batch / dist.size,
                hydra_get_num_threads(),
                shard ? "sharded (ZeRO-1)" : "replicated", b2s);
    double t_start = hydra_now_seconds(), tok_window = 0, sec_window = 0, last_val = NAN;
    for (int64_t i = start; st == HYDRA_OK && i < steps; i++) {
        hydra_step_info info;
        test_fault(dist.rank, i);
        if ((st = hydra_trainer_step(tr, &info)) != HYDRA_OK) break;
        if (!isfinite(info.loss)) {
            fprintf(stderr, "\nhydra train: loss became %g at step %lld; stopping (lower --lr?)\n", info.loss, (long long)info.step);
            st = HYDRA_ERR_ARG;
            break;
        }
        tok_window = 0.9 * tok_window + (double)to->batch * to->seq;
        sec_window = 0.9 * sec_window + info.seconds;
        double tps = tok_window / sec_window;
        double val = NAN;
        int last = info.step == steps;
        if (info.step % eval_every == 0 || last) {
            if ((st = hydra_trainer_eval(tr, eval_batches, &val)) != HYDRA_OK) break;
            last_val = val;
            log_push(&lg.vstep, &lg.val, &lg.nv, &lg.vcap, (double)info.step, val);
        }
        log_push(&lg.step, &lg.train, &lg.n, &lg.cap, (double)info.step, info.loss);
        double elapsed = hydra_now_seconds() - t_start;
        if (info.step % ckpt_every == 0 || last) {
            if ((st = hydra_trainer_save(tr, out)) != HYDRA_OK) break;
        }
        if (!rank0) continue; /* only rank 0 prints, logs and samples */
        fprintf(csv, "%lld,%.6f,%.6f,%.6g,%.6g,%.1f,%.2f\n", (long long)info.step, info.loss, val, info.lr,
                info.grad_norm, tps, elapsed);
        fflush(csv);
        char eta[32];
        fmt_eta(elapsed / (double)(info.step - start) * (double)(steps - info.step), eta, sizeof eta);
        if (tty || info.step % log_every == 0 || !isnan(val) || last)
        {
            char vbuf[32] = "-";
            if (!isnan(last_val)) snprintf(vbuf, sizeof vbuf, "%.4f", last_val);
            char mem[48] = "";
            if (dist.on) snprintf(mem, sizeof mem, " | %s/rank", b2s);
            fprintf(stderr, "%sstep %lld/%lld | loss %.4f | val %s | lr %.2e | |g| %.2f | %.0f tok/s%s | ETA %s%s",
                    tty ? "\r\033[K" : "", (long long)info.step, (long long)steps, info.loss, vbuf, info.lr,
                    info.grad_norm, tps, mem, eta, tty ? "" : "\n");
        }
        if (!isnan(val)) {
            cli_write_loss_svg(svg, "hydra train", lg.step, lg.train, lg.n, lg.vstep, lg.val, lg.nv);
            if (sample_len > 0) {
                if (tty) fputc('\n', stderr);
                write_sample(m, samples, tty ? stderr : NULL, info.step, sample_len, (uint64_t)info.step);
            }
        }
    }
    if (tty) fputc('\n', stderr);
    double total_s = hydra_now_seconds() - t_start;
    if (st) cli_fail(who, "training", st);
    else if (rank0)
        fprintf(stderr, "done: %lld steps, final validation loss %.4f, %.1f s (%.0f tok/s incl. eval and checkpoints); "
                        "checkpoint in %s\n",
                (long long)hydra_trainer_steps(tr), last_val, total_s,
                (double)(steps - start) * to->batch * to->seq / total_s, out);
    if (st == HYDRA_OK && rank0 && dist.on)
        fprintf(stderr, "communication: %.2f s of %.2f s on rank 0 (%.1f%%)\n", hydra_trainer_comm_seconds(tr), total_s,
                100.0 * hydra_trainer_comm_seconds(tr) / total_s);
    if (csv) fclose(csv);
    if (samples) fclose(samples);
    free(lg.step), free(lg.train), free(lg.vstep), free(lg.val);
    hydra_trainer_free(tr);
    hydra_model_free(m);
    hydra_text_data_free(td);
    /* On failure, no MPI_Finalize (it would wait for ranks stuck in a
     * collective): the non-zero exit makes mpirun end the job. */
    if (dist.nccl && st == HYDRA_OK) cli_nccl_free(&dist.comm);
    if (dist.on && st == HYDRA_OK) cli_mpi_finalize();
    return st ? 1 : 0;
}

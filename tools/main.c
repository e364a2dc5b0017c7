/* main.c — the `hydra` command-line program: dispatches to one file per
 * subcommand. The CLI is the only part of the project that prints. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} k_commands[] = {
    {"init", cmd_init, "create a new model with seeded weights and save it"},
    {"generate", cmd_generate, "stream generated text from a model"},
    {"sample", cmd_sample, "write a corpus sampled from a model, many sequences at once (e.g. to distil a draft)"},
    {"quantize", cmd_quantize, "write an int8 / int4 quantised checkpoint for CPU decode"},
    {"info", cmd_info, "print a checkpoint's config, parameter count and state size"},
    {"stream", cmd_stream, "feed a long input at constant memory; continue, save or resume a session"},
    {"train", cmd_train, "train a model on a text file (AdamW or Muon), with exact resume"},
    {"eval", cmd_eval, "loss, perplexity and loss by position of a model on a text file"},
    {"factbank", cmd_factbank, "write facts into a bank file, ask with a bank mounted, inspect a bank"},
    {"mqar", cmd_mqar, "train a model on multi-query associative recall and print its accuracy curve"},
    {"claims", cmd_claims, "the claims gate: measure every headline claim against its thresholds"},
    {"bench", cmd_bench, "measure GEMM, prefill, decode and delta-rule kernel speed"},
};
#define N_COMMANDS (sizeof k_commands / sizeof k_commands[0])

static void usage(FILE *f) {
    fprintf(f,
            "hydra %s — hybrid Gated DeltaNet + sliding-window attention language model\n\n"
            "usage: hydra <command> [options]   (hydra <command> --help for details)\n\ncommands:\n",
            HYDRA_VERSION_STRING);
    for (size_t i = 0; i < N_COMMANDS; i++) fprintf(f, "  %-10s %s\n", k_commands[i].name, k_commands[i].help);
}

/* OpenMP threads that finish a parallel region spin before they sleep:
 * libgomp's default is ~300,000 spins (milliseconds). When another program
 * is busy on one of our cores, a spinning thread burns the time slice its
 * partner needs and the whole team waits a slice per region (measured on the
 * 2-vCPU VM: train at 0.15-0.3x of one thread; docs/threads.md). A short spin
 * (HYDRA_SPINCOUNT, ~0.1 ms) keeps back-to-back regions fast on a quiet
 * machine and lets a waiting thread yield its core on a busy one. libgomp
 * reads the setting once, when it is loaded, so the program re-executes
 * itself with it unless the user chose a wait policy. */
#define HYDRA_SPINCOUNT "2000"
static void tune_openmp_waits(char **argv) {
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return;
    if (setenv("GOMP_SPINCOUNT", HYDRA_SPINCOUNT, 1)) return;
    execv("/proc/self/exe", argv); /* returns only on failure: run on with the default */
    unsetenv("GOMP_SPINCOUNT");
}

int main(int argc, char **argv) {
    tune_openmp_waits(argv);
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("hydra %s\n", HYDRA_VERSION_STRING);
        return 0;
    }
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strcmp(argv[1], k_commands[i].name)) return k_commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "hydra: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}

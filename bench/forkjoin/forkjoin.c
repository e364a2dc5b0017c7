/* forkjoin.c — how much of a core shared with a busy loop can a fork-join
 * program use? (issue 20, part 1; bench/LOG.md "Session 17"). Not part of the
 * library: a model of its parallel regions with none of its code.
 *
 * Regions of `items` equal work items (schedule(dynamic, 1)), `region_ms` of
 * one thread's work each, separated by a serial gap of 1/16 of a region,
 * for about 3 s of one thread's work. Two CPUs A and B (default the first two
 * this process may use); the busy loop, when asked for, is a forked child
 * pinned to one of them. With `pin`, OpenMP thread i is pinned to the i-th of
 * A, B; otherwise both may run on either. Prints one line: seconds, the share
 * of items the second thread took, the share that ran on CPU B.
 *
 * Also `forkjoin slices CPU`: with a busy loop on CPU, spins on the clock
 * there for 3 s and prints how long it was kept off the CPU and where in
 * CLOCK_MONOTONIC the preemptions fall (the kernel's tick grid).
 *
 * Build and run: bench/forkjoin/run.sh (gcc -O2 -fopenmp). */
#define _GNU_SOURCE
#include <omp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void pin_self(int cpu) {
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    sched_setaffinity(0, sizeof s, &s);
}

static volatile double g_sink;
static void work(long n) { /* a dependent chain: compute-bound, no memory traffic */
    double s = 0;
    for (long i = 0; i < n; i++) s += (double)i * 1e-9 * s + 1;
    g_sink = s;
}

/* A busy loop pinned to `cpu`, gone when this process goes. */
static pid_t hog_start(int cpu) {
    pid_t p = fork();
    if (p == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        pin_self(cpu);
        alarm(60);
        volatile unsigned long x = 0;
        for (;;) x++;
    }
    usleep(50000);
    return p;
}

static void hog_stop(pid_t p) {
    if (p > 0) kill(p, SIGKILL), waitpid(p, NULL, 0);
}

static int slices(int cpu) {
    pid_t hog = hog_start(cpu);
    pin_self(cpu);
    int hist[16] = {0}, n = 0;
    double t0 = now(), last = t0, off = 0;
    for (double t; (t = now()) - t0 < 3.0; last = t)
        if (t - last > 50e-6) { /* kept off the CPU from `last` to `t` */
            off += t - last, n++;
            hist[(long long)(t * 4000.0) % 16]++; /* resume time mod 4 ms, in 0.25-ms bins */
        }
    hog_stop(hog);
    printf("CPU %d shared with a busy loop: %d preemptions in 3 s, %.2f ms off each on average\n", cpu, n,
           n ? off / n * 1e3 : 0.0);
    printf("resume time mod 4 ms (0.25-ms bins):");
    for (int i = 0; i < 16; i++) printf(" %d", hist[i]);
    printf("\n");
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "slices")) return slices(atoi(argv[2]));
    if (argc != 7) {
        fprintf(stderr, "usage: forkjoin THREADS HOG(none|A|B) PIN(0|1) REGION_MS ITEMS CPUS(A,B)\n"
                        "       forkjoin slices CPU\n");
        return 2;
    }
    const int nthr = atoi(argv[1]), pin = atoi(argv[3]), items = atoi(argv[5]);
    const double region_ms = atof(argv[4]);
    int cpu[2];
    if (sscanf(argv[6], "%d,%d", &cpu[0], &cpu[1]) != 2) return 2;
    cpu_set_t both;
    CPU_ZERO(&both);
    CPU_SET(cpu[0], &both);
    CPU_SET(cpu[1], &both);
    sched_setaffinity(0, sizeof both, &both);
    /* calibrate before any busy loop: iterations per ms of one thread */
    double t = now();
    work(20000000);
    const double per_ms = 20000000 / ((now() - t) * 1e3);
    const long it_item = (long)(per_ms * region_ms / items);
    pid_t hog = !strcmp(argv[2], "A") ? hog_start(cpu[0]) : !strcmp(argv[2], "B") ? hog_start(cpu[1]) : 0;
    omp_set_num_threads(nthr);
#pragma omp parallel
    if (pin) pin_self(cpu[omp_get_thread_num() % 2]);
    const int R = (int)(3000 / region_ms);
    long second = 0, on_b = 0;
    t = now();
    for (int r = 0; r < R; r++) {
#pragma omp parallel for schedule(dynamic, 1) reduction(+ : second, on_b)
        for (int i = 0; i < items; i++) {
            work(it_item);
            second += omp_get_thread_num() != 0;
            on_b += sched_getcpu() == cpu[1];
        }
        work(it_item * items / 16); /* the serial part between regions */
    }
    const double el = now() - t;
    hog_stop(hog);
    printf("%.3f s, second thread %.1f %% of items, %.1f %% of items on CPU B\n", el,
           100.0 * (double)second / ((double)R * items), 100.0 * (double)on_b / ((double)R * items));
    return 0;
}

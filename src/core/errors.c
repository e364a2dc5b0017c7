/* errors.c — thread-local last-error message and small shared utilities
 * (aligned allocation, FNV-1a, process memory, clock, median). */
#include <math.h>
#include <stdarg.h>
#include <time.h>

#include "core/internal.h"

static _Thread_local char g_last_error[512];

/* Formats into a local buffer first: a caller may pass hydra_last_error()
 * itself as an argument (to prefix context to an inner failure), and
 * vsnprintf into the buffer it is reading from is undefined behaviour. */
hydra_status hydra_set_error(hydra_status st, const char *fmt, ...) {
    char msg[sizeof g_last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    memcpy(g_last_error, msg, sizeof msg);
    return st;
}

void hydra_clear_error(void) { g_last_error[0] = '\0'; }

const char *hydra_last_error(void) { return g_last_error; }

static _Thread_local const volatile int *g_cancel_flag;

void hydra_set_cancel_flag(const volatile int *flag) { g_cancel_flag = flag; }

hydra_status hydra_check_cancel(const char *what) {
    if (g_cancel_flag && __atomic_load_n(g_cancel_flag, __ATOMIC_RELAXED))
        return hydra_set_error(HYDRA_ERR_CANCELLED, "%s: cancelled", what);
    return HYDRA_OK;
}

const char *hydra_status_str(hydra_status s) {
    switch (s) {
    case HYDRA_OK: return "ok";
    case HYDRA_ERR_ARG: return "invalid argument";
    case HYDRA_ERR_NOMEM: return "out of memory";
    case HYDRA_ERR_IO: return "I/O error";
    case HYDRA_ERR_FORMAT: return "bad file format";
    case HYDRA_ERR_CONFIG: return "invalid config";
    case HYDRA_ERR_MISMATCH: return "mismatch";
    case HYDRA_ERR_DEVICE: return "device error";
    case HYDRA_ERR_CANCELLED: return "cancelled";
    }
    return "unknown status";
}

void *hydra_aligned_alloc(size_t bytes) {
    void *p = NULL;
    if (bytes == 0) bytes = 64;
    if (posix_memalign(&p, 64, bytes) != 0) return NULL;
    return p;
}

void *hydra_aligned_calloc(size_t bytes) {
    void *p = hydra_aligned_alloc(bytes);
    if (p) memset(p, 0, bytes ? bytes : 64);
    return p;
}

void hydra_aligned_free(void *p) { free(p); }

void hydra_free(void *p) { free(p); }

uint64_t hydra_fnv1a(uint64_t h, const void *data, size_t n) {
    const unsigned char *b = data;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ULL;
    }
    return h;
}

long hydra_process_memory_kib(const char *field) {
    if (!field) return -1;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long v = -1;
    size_t kl = strlen(field);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, field, kl) && line[kl] == ':') {
            v = strtol(line + kl + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

double hydra_now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double hydra_median(double *x, int n) {
    if (n <= 0) return NAN;
    qsort(x, (size_t)n, sizeof *x, cmp_double);
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

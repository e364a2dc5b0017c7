/* vecmem.c — the delta-rule associative memory on its own (FactBank level 1).
 *
 * Shapes: n facts, H heads, dk key dim, dv value dim.
 *   S     [H, dv, dk]  one delta-rule memory per head (the op's layout)
 *   phi   [n, H, dk]   per-head key features phi_h(k) = L2norm(f(R_h k))
 * Writing is the delta rule over the facts as a sequence (g = log alpha, beta),
 * every head fed the same value, computed in the chunkwise WY form (GEMMs;
 * tested against hydra_op_delta_rule_ref); recall averages S_h phi_h(q).
 *
 * R_h is a seeded random rotation built as a network of Givens rotations:
 * `rounds` layers, each a random perfect pairing of the coordinates with a
 * uniformly random angle per pair, then random sign flips. Exactly orthogonal
 * for every d, O(d log d) to apply, and mixing (after ~2 log2 d random
 * pairings every output coordinate depends on every input). */
#include <math.h>

#include "core/fileio.h"
#include "core/internal.h"
#include "hydralm_factbank.h"

#define VM_MAGIC "HYDRAVEC"
#define VM_VERSION 1u
#define VM_CHUNK 256 /* facts per chunk of the WY form: few, large GEMMs */

typedef struct {
    int rounds;
    uint32_t *perm; /* [rounds, d]: pair i of round r is (perm[2i], perm[2i+1]) */
    float *cs;      /* [rounds, d/2, 2] cos, sin */
    float *sign;    /* [d] */
} rotation;

struct hydra_vecmem {
    hydra_vecmem_opts o;
    float *S;          /* [H, dv, dk] */
    rotation *rot;     /* [H] */
    uint64_t count;
};

hydra_vecmem_opts hydra_vecmem_opts_default(int d_key, int d_value) {
    hydra_vecmem_opts o = {.d_key = d_key, .d_value = d_value, .n_heads = 4, .alpha = 1.0f, .beta = 1.0f,
                           .feature = HYDRA_VECMEM_LINEAR, .seed = 0x5eed};
    return o;
}

hydra_status hydra_vecmem_opts_validate(const hydra_vecmem_opts *o) {
    if (!o) return hydra_set_error(HYDRA_ERR_ARG, "vecmem: options are NULL");
    if (o->d_key < 1 || o->d_key > (1 << 16))
        return hydra_set_error(HYDRA_ERR_ARG, "vecmem: d_key must be in [1, 65536] (got %d)", o->d_key);
    if (o->d_value < 1 || o->d_value > (1 << 16))
        return hydra_set_error(HYDRA_ERR_ARG, "vecmem: d_value must be in [1, 65536] (got %d)", o->d_value);
    if (o->n_heads < 1 || o->n_heads > 256)
        return hydra_set_error(HYDRA_ERR_ARG, "vecmem: n_heads must be in [1, 256] (got %d)", o->n_heads);
    if (!(o->alpha > 0.0f && o->alpha <= 1.0f))
        return hydra_set_error(HYDRA_ERR_ARG, "vecmem: alpha must be in (0, 1] (got %g)", (double)o->alpha);
    if (!(o->beta > 0.0f && o->beta <= 1.0f))
        return hydra_set_error(HYDRA_ERR_ARG, "vecmem: beta must be in (0, 1] (got %g)", (double)o->beta);
    if (o->feature != HYDRA_VECMEM_LINEAR && o->feature != HYDRA_VECMEM_CUBIC)
        return hydra_set_error(HYDRA_ERR_ARG, "vecmem: unknown feature map %d", (int)o->feature);
    size_t n;
    if (!hydra_mul_ok((size_t)o->n_heads * (size_t)o->d_value, (size_t)o->d_key * sizeof(float), &n) ||
        n > ((size_t)1 << 34))
        return hydra_set_error(HYDRA_ERR_ARG, "vecmem: %d heads x %d x %d is too large", o->n_heads, o->d_value,
                               o->d_key);
    return HYDRA_OK;
}

/* ------------------------------------------------------------ rotations */
static void rotation_free(rotation *r) {
    free(r->perm);
    free(r->cs);
    free(r->sign);
}

static hydra_status rotation_init(rotation *r, int d, hydra_rng *rng) {
    int lg = 0;
    while ((1 << lg) < d) lg++;
    r->rounds = d > 1 ? 2 * lg + 2 : 0;
    size_t R = (size_t)r->rounds, D = (size_t)d;
    r->perm = malloc((R * D + 1) * sizeof *r->perm);
    r->cs = malloc((R * D + 1) * sizeof *r->cs);
    r->sign = malloc(D * sizeof *r->sign);
    if (!r->perm || !r->cs || !r->sign) return hydra_set_error(HYDRA_ERR_NOMEM, "vecmem: out of memory");
    for (size_t k = 0; k < R; k++) {
        uint32_t *p = r->perm + k * D;
        for (size_t i = 0; i < D; i++) p[i] = (uint32_t)i;
        for (size_t i = D - 1; i > 0; i--) { /* Fisher-Yates */
            size_t j = (size_t)(hydra_rng_uniform(rng) * (double)(i + 1));
            if (j > i) j = i;
            uint32_t t = p[i];
            p[i] = p[j];
            p[j] = t;
        }
        for (size_t i = 0; i < D / 2; i++) {
            double th = 6.283185307179586 * hydra_rng_uniform(rng);
            r->cs[k * D + 2 * i] = (float)cos(th);
            r->cs[k * D + 2 * i + 1] = (float)sin(th);
        }
    }
    for (size_t i = 0; i < D; i++) r->sign[i] = (hydra_rng_next(rng) >> 63) ? -1.0f : 1.0f;
    return HYDRA_OK;
}

/* y = R x (in place on y after the copy); x, y: [d]. */
static void rotation_apply(const rotation *r, int d, const float *x, float *y) {
    memcpy(y, x, (size_t)d * sizeof *y);
    for (int k = 0; k < r->rounds; k++) {
        const uint32_t *p = r->perm + (size_t)k * d;
        const float *cs = r->cs + (size_t)k * d;
        for (int i = 0; i + 1 < d; i += 2) {
            float a = y[p[i]], b = y[p[i + 1]], c = cs[i], s = cs[i + 1];
            y[p[i]] = c * a - s * b;
            y[p[i + 1]] = s * a + c * b;
        }
    }
    for (int i = 0; i < d; i++) y[i] *= r->sign[i];
}

/* phi [n, H, dk] from keys [n, dk]. Returns 0 if some key has zero norm. */
static int features(const hydra_vecmem *vm, const float *keys, size_t n, float *phi) {
    const int H = vm->o.n_heads, dk = vm->o.d_key;
    int bad = 0;
#pragma omp parallel for schedule(dynamic, 16) reduction(| : bad) if (n * (size_t)H * dk > 65536)
    for (size_t r = 0; r < n * (size_t)H; r++) {
        size_t i = r / (size_t)H, h = r % (size_t)H;
        float *y = phi + r * (size_t)dk;
        rotation_apply(&vm->rot[h], dk, keys + i * (size_t)dk, y);
        if (vm->o.feature == HYDRA_VECMEM_CUBIC)
            for (int j = 0; j < dk; j++) y[j] = y[j] * y[j] * y[j];
        double ss = 0;
        for (int j = 0; j < dk; j++) ss += (double)y[j] * y[j];
        if (!(ss > 1e-30) || !isfinite(ss)) {
            bad = 1;
            continue;
        }
        float inv = (float)(1.0 / sqrt(ss));
        for (int j = 0; j < dk; j++) y[j] *= inv;
    }
    return !bad;
}

/* -------------------------------------------------------------- lifetime */
hydra_status hydra_vecmem_create(const hydra_vecmem_opts *o, hydra_vecmem **out) {
    if (!out) return hydra_set_error(HYDRA_ERR_ARG, "vecmem_create: out is NULL");
    *out = NULL;
    HYDRA_CHECK(hydra_vecmem_opts_validate(o));
    hydra_vecmem *vm = calloc(1, sizeof *vm);
    if (!vm) return hydra_set_error(HYDRA_ERR_NOMEM, "vecmem: out of memory");
    vm->o = *o;
    size_t sfl = (size_t)o->n_heads * o->d_value * o->d_key;
    vm->S = hydra_aligned_calloc(sfl * sizeof(float));
    vm->rot = calloc((size_t)o->n_heads, sizeof *vm->rot);
    if (!vm->S || !vm->rot) {
        hydra_vecmem_free(vm);
        return hydra_set_error(HYDRA_ERR_NOMEM, "vecmem: out of memory for %zu floats", sfl);
    }
    hydra_rng rng;
    hydra_rng_seed(&rng, o->seed);
    for (int h = 0; h < o->n_heads; h++) {
        hydra_status st = rotation_init(&vm->rot[h], o->d_key, &rng);
        if (st) {
            hydra_vecmem_free(vm);
            return st;
        }
    }
    *out = vm;
    return HYDRA_OK;
}

void hydra_vecmem_free(hydra_vecmem *vm) {
    if (!vm) return;
    if (vm->rot)
        for (int h = 0; h < vm->o.n_heads; h++) rotation_free(&vm->rot[h]);
    free(vm->rot);
    hydra_aligned_free(vm->S);
    free(vm);
}

const hydra_vecmem_opts *hydra_vecmem_get_opts(const hydra_vecmem *vm) { return vm ? &vm->o : NULL; }

void hydra_vecmem_reset(hydra_vecmem *vm) {
    if (!vm) return;
    memset(vm->S, 0, (size_t)vm->o.n_heads * vm->o.d_value * vm->o.d_key * sizeof(float));
    vm->count = 0;
}

uint64_t hydra_vecmem_count(const hydra_vecmem *vm) { return vm ? vm->count : 0; }

size_t hydra_vecmem_bytes(const hydra_vecmem *vm) {
    return vm ? (size_t)vm->o.n_heads * vm->o.d_value * vm->o.d_key * sizeof(float) : 0;
}

static size_t first_nonfinite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return i;
    return n;
}

/* ---------------------------------------------------------- write, read */
/* One chunk of m facts into head h's S (chunkwise / WY form of the delta rule
 * with constant g = log alpha, DESIGN §2), all products through BLAS:
 *   L = strictLower(beta * Gamma o (K K^T)), A = (I + L)^-1 (forward substitution),
 *   U = beta A V, W = beta A (gamma o K), V_new = U - W S^T,
 *   S <- gamma_m S + V_new^T ((gamma_m / gamma) o K)
 * with gamma_i = alpha^(i+1), Gamma_ij = alpha^(i-j). Equals m steps of the
 * token-by-token recurrence (hydra_op_delta_rule) up to fp32 rounding.
 * K [m, dk] at stride ldk; V [m, dv]; S [dv, dk]; scratch: A, KK [m, m],
 * Kg, Kd [m, dk], U [m, dv]. */
static hydra_status chunk_write(const hydra_vecmem *vm, int m, const float *K, int ldk, const float *V, float *S,
                                float *KK, float *A, float *Kg, float *Kd, float *U) {
    const int dk = vm->o.d_key, dv = vm->o.d_value;
    const double al = vm->o.alpha, be = vm->o.beta;
    HYDRA_CHECK(hydra_op_matmul_ex(0, 1, m, m, dk, K, ldk, K, ldk, KK, m, 0)); /* KK [m, m] */
    float pw[VM_CHUNK + 1]; /* pw[k] = alpha^k */
    pw[0] = 1.0f;
    for (int k = 1; k <= m; k++) pw[k] = (float)pow(al, k);
    for (int i = 0; i < m; i++) { /* A = (I + L)^-1, unit lower-triangular, row by row */
        float *Ai = A + (size_t)i * m;
        memset(Ai, 0, (size_t)m * sizeof *Ai);
        Ai[i] = 1.0f;
        for (int j = 0; j < i; j++) {
            float l = (float)be * pw[i - j] * KK[(size_t)i * m + j];
            if (l == 0.0f) continue;
            const float *Aj = A + (size_t)j * m;
            for (int t = 0; t <= j; t++) Ai[t] -= l * Aj[t];
        }
    }
    for (int i = 0; i < m; i++) {
        float gi = pw[i + 1], di = pw[m - 1 - i];
        for (int t = 0; t < dk; t++) {
            Kg[(size_t)i * dk + t] = -gi * K[(size_t)i * ldk + t]; /* -(gamma o K) */
            Kd[(size_t)i * dk + t] = di * K[(size_t)i * ldk + t];
        }
    }
    for (size_t i = 0; i < (size_t)m * m; i++) A[i] *= (float)be; /* A <- beta A */
    HYDRA_CHECK(hydra_op_matmul_ex(0, 0, m, dv, m, A, m, V, dv, U, dv, 0));          /* U = beta A V */
    HYDRA_CHECK(hydra_op_matmul_ex(0, 0, m, dk, m, A, m, Kg, dk, KK, dk, 0));         /* KK = -W */
    HYDRA_CHECK(hydra_op_matmul_ex(0, 1, m, dv, dk, KK, dk, S, dk, U, dv, 1));        /* V_new = U - W S^T */
    if (al != 1.0) {
        float gm = pw[m];
        for (size_t i = 0; i < (size_t)dv * dk; i++) S[i] *= gm;
    }
    return hydra_op_matmul_ex(1, 0, dv, dk, m, U, dv, Kd, dk, S, dk, 1); /* S += V_new^T Kd */
}

hydra_status hydra_vecmem_memorize(hydra_vecmem *vm, const float *keys, const float *values, size_t n) {
    if (!vm || (n && (!keys || !values))) return hydra_set_error(HYDRA_ERR_ARG, "vecmem_memorize: NULL argument");
    if (n == 0) return HYDRA_OK;
    const int H = vm->o.n_heads, dk = vm->o.d_key, dv = vm->o.d_value;
    if (first_nonfinite(keys, n * (size_t)dk) < n * (size_t)dk ||
        first_nonfinite(values, n * (size_t)dv) < n * (size_t)dv)
        return hydra_set_error(HYDRA_ERR_ARG, "vecmem_memorize: keys or values hold NaN or Inf");
    const size_t c = VM_CHUNK, mx = dk > (int)c ? (size_t)dk : c;
    float *phi = hydra_aligned_alloc(c * H * dk * sizeof(float)); /* [c, H, dk] */
    float *KK = hydra_aligned_alloc(c * mx * sizeof(float));       /* [c, c] Gram, then [c, dk] -W */
    float *A = hydra_aligned_alloc(c * c * sizeof(float));         /* [c, c] */
    float *Kg = hydra_aligned_alloc(c * dk * sizeof(float));       /* [c, dk] */
    float *Kd = hydra_aligned_alloc(c * dk * sizeof(float));       /* [c, dk] */
    float *U = hydra_aligned_alloc(c * dv * sizeof(float));        /* [c, dv] */
    hydra_status st = HYDRA_OK;
    if (!phi || !KK || !A || !Kg || !Kd || !U) {
        st = hydra_set_error(HYDRA_ERR_NOMEM, "vecmem_memorize: out of memory");
        goto done;
    }
    /* Check every key first so that a bad one leaves the memory untouched
     * (rotations keep norms, so a key's features vanish only if it does). */
    for (size_t i = 0; i < n; i++) {
        double ss = 0;
        for (int t = 0; t < dk; t++) ss += (double)keys[i * dk + t] * keys[i * dk + t];
        if (!(ss > 1e-30)) {
            st = hydra_set_error(HYDRA_ERR_ARG, "vecmem_memorize: key %zu has zero norm", i);
            goto done;
        }
    }
    for (size_t i0 = 0; i0 < n; i0 += c) {
        size_t m = n - i0 < c ? n - i0 : c;
        if (!features(vm, keys + i0 * dk, m, phi)) {
            st = hydra_set_error(HYDRA_ERR_ARG, "vecmem_memorize: a key in facts [%zu, %zu) has vanishing features",
                                 i0, i0 + m);
            goto done;
        }
        for (int h = 0; h < H && !st; h++)
            st = chunk_write(vm, (int)m, phi + (size_t)h * dk, H * dk, values + i0 * dv,
                             vm->S + (size_t)h * dv * dk, KK, A, Kg, Kd, U);
        if (st) goto done;
        vm->count += m;
    }
done:
    hydra_aligned_free(phi);
    hydra_aligned_free(KK);
    hydra_aligned_free(A);
    hydra_aligned_free(Kg);
    hydra_aligned_free(Kd);
    hydra_aligned_free(U);
    return st;
}

hydra_status hydra_vecmem_recall(const hydra_vecmem *vm, const float *queries, size_t n, float *out) {
    if (!vm || (n && (!queries || !out))) return hydra_set_error(HYDRA_ERR_ARG, "vecmem_recall: NULL argument");
    const int H = vm->o.n_heads, dk = vm->o.d_key, dv = vm->o.d_value;
    if (n > (size_t)INT32_MAX / 2) return hydra_set_error(HYDRA_ERR_ARG, "vecmem_recall: too many queries");
    if (n == 0) return HYDRA_OK;
    if (first_nonfinite(queries, n * (size_t)dk) < n * (size_t)dk)
        return hydra_set_error(HYDRA_ERR_ARG, "vecmem_recall: queries hold NaN or Inf");
    size_t c = n < 4096 ? n : 4096;
    float *phi = hydra_aligned_alloc(c * H * dk * sizeof(float)); /* [c, H, dk] */
    if (!phi) return hydra_set_error(HYDRA_ERR_NOMEM, "vecmem_recall: out of memory");
    hydra_status st = HYDRA_OK;
    for (size_t i0 = 0; i0 < n && !st; i0 += c) {
        size_t m = n - i0 < c ? n - i0 : c;
        float *y = out + i0 * dv; /* [m, dv] */
        if (!features(vm, queries + i0 * dk, m, phi)) {
            st = hydra_set_error(HYDRA_ERR_ARG, "vecmem_recall: a query in [%zu, %zu) has zero norm", i0, i0 + m);
            break;
        }
        /* y = sum_h phi_h [m, dk] . S_h^T [dk, dv] */
        for (int h = 0; h < H && !st; h++)
            st = hydra_op_matmul_ex(0, 1, (int)m, dv, dk, phi + (size_t)h * dk, H * dk,
                                    vm->S + (size_t)h * dv * dk, dk, y, dv, h > 0);
        float inv = 1.0f / (float)H;
        for (size_t i = 0; i < m * (size_t)dv && !st; i++) y[i] *= inv;
    }
    hydra_aligned_free(phi);
    return st;
}

/* ------------------------------------------------------------ save, load
 * Layout (little-endian):
 *   off  0 char[8] "HYDRAVEC" | 8 u32 version | 12 u32 d_key | 16 u32 d_value
 *   20 u32 n_heads | 24 u32 feature | 28 f32 alpha | 32 f32 beta | 36 u64 seed
 *   44 u64 facts written | 52 u64 payload bytes P | 60 P bytes S [H, dv, dk] f32
 *   60+P u64 FNV-1a 64 of bytes [0, 60+P)                                     */
#define VM_HEADER 60u

hydra_status hydra_vecmem_save(const hydra_vecmem *vm, const char *path) {
    if (!vm || !path || !path[0]) return hydra_set_error(HYDRA_ERR_ARG, "vecmem_save: NULL argument or empty path");
    hydra_afile a;
    HYDRA_CHECK(hydra_afile_open(&a, path));
    float al = vm->o.alpha, be = vm->o.beta;
    hydra_afile_write(&a, VM_MAGIC, 8);
    hydra_afile_u32(&a, VM_VERSION);
    hydra_afile_u32(&a, (uint32_t)vm->o.d_key);
    hydra_afile_u32(&a, (uint32_t)vm->o.d_value);
    hydra_afile_u32(&a, (uint32_t)vm->o.n_heads);
    hydra_afile_u32(&a, (uint32_t)vm->o.feature);
    hydra_afile_write(&a, &al, 4);
    hydra_afile_write(&a, &be, 4);
    hydra_afile_u64(&a, vm->o.seed);
    hydra_afile_u64(&a, vm->count);
    hydra_afile_u64(&a, (uint64_t)hydra_vecmem_bytes(vm));
    hydra_afile_write(&a, vm->S, hydra_vecmem_bytes(vm));
    hydra_afile_u64(&a, a.hash);
    return hydra_afile_commit(&a);
}

hydra_status hydra_vecmem_load(const char *path, hydra_vecmem **out) {
    if (!path || !out) return hydra_set_error(HYDRA_ERR_ARG, "vecmem_load: NULL argument");
    *out = NULL;
    uint8_t *buf = NULL;
    size_t n = 0;
    HYDRA_CHECK(hydra_read_file(path, "vector memory file", (size_t)1 << 36, &buf, &n));
    hydra_status st = HYDRA_OK;
    hydra_vecmem *vm = NULL;
#define VFAIL(code, ...)                          \
    do {                                          \
        st = hydra_set_error((code), __VA_ARGS__); \
        goto done;                                \
    } while (0)
    if (n >= 8 && memcmp(buf, VM_MAGIC, 8) != 0)
        VFAIL(HYDRA_ERR_FORMAT, "vector memory file %s: wrong magic (not a HydraLM vector memory file)", path);
    if (n < VM_HEADER + 8)
        VFAIL(HYDRA_ERR_FORMAT, "vector memory file %s: file is truncated (%zu bytes)", path, n);
    if (hydra_get_u32(buf + 8) != VM_VERSION)
        VFAIL(HYDRA_ERR_FORMAT, "vector memory file %s: unsupported version %u (this build reads %u)", path,
              hydra_get_u32(buf + 8), VM_VERSION);
    uint64_t plen = hydra_get_u64(buf + 52);
    if (plen > n || VM_HEADER + plen + 8 > n)
        VFAIL(HYDRA_ERR_FORMAT, "vector memory file %s: file is truncated (header announces %llu payload bytes, "
              "file has %zu bytes)", path, (unsigned long long)plen, n);
    if (VM_HEADER + plen + 8 < n)
        VFAIL(HYDRA_ERR_FORMAT, "vector memory file %s: %llu unexpected trailing bytes", path,
              (unsigned long long)(n - VM_HEADER - plen - 8));
    if (hydra_fnv1a(HYDRA_FNV_OFFSET, buf, VM_HEADER + plen) != hydra_get_u64(buf + VM_HEADER + plen))
        VFAIL(HYDRA_ERR_FORMAT, "vector memory file %s: checksum mismatch: file is corrupt", path);
    hydra_vecmem_opts o;
    o.d_key = (int)hydra_get_u32(buf + 12);
    o.d_value = (int)hydra_get_u32(buf + 16);
    o.n_heads = (int)hydra_get_u32(buf + 20);
    o.feature = (hydra_vecmem_feature)hydra_get_u32(buf + 24);
    memcpy(&o.alpha, buf + 28, 4);
    memcpy(&o.beta, buf + 32, 4);
    o.seed = hydra_get_u64(buf + 36);
    if (hydra_vecmem_opts_validate(&o) != HYDRA_OK)
        VFAIL(HYDRA_ERR_FORMAT, "vector memory file %s: invalid header: %s", path, hydra_last_error());
    if (plen != (uint64_t)o.n_heads * o.d_value * o.d_key * sizeof(float))
        VFAIL(HYDRA_ERR_FORMAT, "vector memory file %s: payload of %llu bytes does not match %d heads x %d x %d",
              path, (unsigned long long)plen, o.n_heads, o.d_value, o.d_key);
    if ((st = hydra_vecmem_create(&o, &vm))) goto done;
    memcpy(vm->S, buf + VM_HEADER, (size_t)plen);
    size_t nf = (size_t)plen / sizeof(float), bad = first_nonfinite(vm->S, nf);
    if (bad < nf) VFAIL(HYDRA_ERR_FORMAT, "vector memory file %s: value %zu is NaN or Inf", path, bad);
    vm->count = hydra_get_u64(buf + 44);
    *out = vm;
    vm = NULL;
done:
#undef VFAIL
    hydra_vecmem_free(vm);
    free(buf);
    return st;
}

hydra_status hydra_vecmem_score(const float *recalled, const float *values, size_t n, int d, double *top1,
                                double *mean_cos) {
    if (!recalled || !values || !top1) return hydra_set_error(HYDRA_ERR_ARG, "vecmem_score: NULL argument");
    if (n == 0 || d <= 0 || n > (size_t)1 << 20) return hydra_set_error(HYDRA_ERR_ARG, "vecmem_score: bad n or d");
    float *vn = malloc(n * (size_t)d * sizeof(float)), *sc = malloc(n * n * sizeof(float));
    if (!vn || !sc) {
        free(vn), free(sc);
        return hydra_set_error(HYDRA_ERR_NOMEM, "vecmem_score: out of memory");
    }
    for (size_t i = 0; i < n; i++) { /* unit values: dot = cosine up to the recall's norm */
        const float *v = values + i * (size_t)d;
        double s2 = 0;
        for (int t = 0; t < d; t++) s2 += (double)v[t] * v[t];
        float inv = (float)(1.0 / sqrt(s2 + 1e-30));
        for (int t = 0; t < d; t++) vn[i * (size_t)d + t] = v[t] * inv;
    }
    hydra_status st = hydra_op_matmul((int)n, (int)n, d, recalled, vn, sc, 0); /* sc [n, n] = R . Vn^T */
    if (st == HYDRA_OK) {
        size_t ok = 0;
        double cs = 0;
        for (size_t i = 0; i < n; i++) {
            const float *row = sc + i * n, *r = recalled + i * (size_t)d;
            size_t best = 0;
            for (size_t j = 1; j < n; j++)
                if (row[j] > row[best]) best = j;
            ok += best == i;
            double rn = 0;
            for (int t = 0; t < d; t++) rn += (double)r[t] * r[t];
            cs += row[i] / (sqrt(rn) + 1e-30);
        }
        *top1 = (double)ok / (double)n;
        if (mean_cos) *mean_cos = cs / (double)n;
    }
    free(vn), free(sc);
    return st;
}

/* model.c — the CUDA backend's host side: devices, the device copy of a
 * model (weights, workspace, GEMM plans, one stream), device mirrors of
 * states, and the forward over [B, T] tokens that mirrors
 * src/model/forward.c step by step (same workspace roles, same order).
 *
 * Precision (docs/gpu.md): in BF16 mode the matrices are bf16 and every GEMM
 * input (normed activations, mixer outputs, SwiGLU) is written in bf16 by the
 * kernel before it, with f32 accumulation and f32 GEMM outputs; the residual
 * stream, the recurrent state and everything between GEMMs stay f32. F32
 * mode keeps everything f32 with tensor cores off, for tests at ~1e-5. */
#include <math.h>
#include <stdio.h>

#include "backend/backend.h"
#include "cuda/common.h"
#include "cuda/gemm.h"
#include "cuda/kernels.h"
#include "cuda/model_internal.h"
#include "cuda/sample.h"

hydra_status hydra_cu_alloc(void **p, size_t bytes, const char *what) {
    *p = NULL;
    if (!bytes) return HYDRA_OK;
    cudaError_t e = cudaMalloc(p, bytes);
    if (e != cudaSuccess) {
        *p = NULL;
        cudaGetLastError(); /* clear the sticky-free error */
        return hydra_set_error(HYDRA_ERR_DEVICE, "cuda: cannot allocate %.1f MiB of device memory for %s (%s)",
                               (double)bytes / 1048576.0, what, cudaGetErrorString(e));
    }
    return HYDRA_OK;
}

/* ---------------------------------------------------------------- devices */
int hydra_dev_compiled(void) { return 1; }

int hydra_dev_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return n;
}

hydra_status hydra_dev_name(int device, char *buf, size_t cap) {
    struct cudaDeviceProp p;
    if (device < 0 || device >= hydra_dev_count())
        return hydra_set_error(HYDRA_ERR_DEVICE, "cuda:%d: no such device (%d visible)", device, hydra_dev_count());
    CU_CHECK(cudaGetDeviceProperties(&p, device));
    snprintf(buf, cap, "%s (sm_%d%d, %d SMs, %.1f GiB)", p.name, p.major, p.minor, p.multiProcessorCount,
             (double)p.totalGlobalMem / (1024.0 * 1024.0 * 1024.0));
    return HYDRA_OK;
}

/* ------------------------------------------------------------------ model */
int hydra_dev_model_device(const hydra_dev_model *d) { return d->device; }
hydra_precision hydra_dev_model_precision(const hydra_dev_model *d) { return d->precision; }
size_t hydra_dev_model_bytes(const hydra_dev_model *d) { return d ? d->weight_bytes + d->ws_bytes + d->gemm.ws_bytes : 0; }

static void graphs_free(hydra_dev_model *d) {
    for (int i = 0; i < d->n_graphs; i++)
        if (d->graphs[i].exec) cudaGraphExecDestroy(d->graphs[i].exec);
    d->n_graphs = 0;
}

static void workspace_free(hydra_dev_model *d) {
    graphs_free(d); /* they point into the workspace */
    if (d->ws) cudaFree(d->ws);
    if (d->h_logits) cudaFreeHost(d->h_logits);
    d->h_logits = NULL;
    if (d->h_tok) cudaFreeHost(d->h_tok);
    if (d->h_pos) cudaFreeHost(d->h_pos);
    if (d->h_ptrs) cudaFreeHost(d->h_ptrs);
    d->ws = NULL, d->h_tok = NULL, d->h_pos = NULL, d->h_ptrs = NULL;
    d->ws_rows = d->ws_b = d->ws_bytes = d->h_rows = d->h_b = 0;
}

static void sample_free(hydra_dev_model *d) {
    graphs_free(d); /* they point into the buffers */
    if (d->samp) cudaFree(d->samp);
    if (d->h_samp) cudaFreeHost(d->h_samp);
    d->samp = d->h_samp = NULL;
    d->samp_b = 0;
}

void hydra_dev_model_free(hydra_dev_model *d) {
    if (!d) return;
    cudaSetDevice(d->device);
    if (d->stream) cudaStreamSynchronize(d->stream);
    workspace_free(d);
    sample_free(d);
    hydra_gemm_free(&d->gemm);
    if (d->vec) cudaFree(d->vec);
    if (d->mat) cudaFree(d->mat);
    if (d->head16) cudaFree(d->head16);
    if (d->inv_freq) cudaFree(d->inv_freq);
    hydra_dev_train_free(d);
    if (d->stream) cudaStreamDestroy(d->stream);
    free(d->tensor);
    free(d->layers);
    free(d);
}

/* Host data of tensor i as f32 (converted from bf16 if held so) or bf16. */
static void host_tensor(const hydra_model *m, const hydra_param_info *p, int want_bf16, void *dst) {
    size_t n = p->numel;
    if (p->bf16) {
        const uint16_t *src = m->bf16 + p->store;
        if (want_bf16) memcpy(dst, src, n * 2);
        else
            for (size_t i = 0; i < n; i++) {
                uint32_t u = (uint32_t)src[i] << 16;
                memcpy((float *)dst + i, &u, 4);
            }
    } else {
        const float *src = m->params + p->store;
        if (!want_bf16) memcpy(dst, src, n * 4);
        else
            for (size_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = hydra_f32_to_bf16(src[i]);
    }
}

static int find_info(const hydra_model *m, const char *name) {
    for (int i = 0; i < m->n_info; i++)
        if (strcmp(m->info[i].name, name) == 0) return i;
    return -1;
}

/* Copies every tensor to the device; dev[i] is tensor i's device address. */
static hydra_status upload_weights(const hydra_model *m, hydra_dev_model *d, void **dev) {
    size_t nvec = 0, nmat = 0, maxn = 0;
    const size_t msz = d->bf16 ? 2 : 4;
    for (int i = 0; i < m->n_info; i++) {
        const hydra_param_info *p = &m->info[i];
        *(hydra_param_is_matrix(p->name) ? &nmat : &nvec) += p->numel;
        if (p->numel > maxn) maxn = p->numel;
    }
    HYDRA_CHECK(hydra_cu_alloc((void **)&d->vec, nvec * 4, "the model's vectors"));
    HYDRA_CHECK(hydra_cu_alloc(&d->mat, nmat * msz, "the model's matrices"));
    d->weight_bytes = nvec * 4 + nmat * msz;
    void *stage = malloc(maxn * 4);
    if (!stage) return hydra_set_error(HYDRA_ERR_NOMEM, "out of memory staging weights");
    size_t ov = 0, om = 0;
    hydra_status st = HYDRA_OK;
    for (int i = 0; i < m->n_info && st == HYDRA_OK; i++) {
        const hydra_param_info *p = &m->info[i];
        int is_mat = hydra_param_is_matrix(p->name);
        int as_bf16 = is_mat && d->bf16;
        host_tensor(m, p, as_bf16, stage);
        dev[i] = is_mat ? (char *)d->mat + om * msz : (void *)(d->vec + ov);
        if (cudaMemcpy(dev[i], stage, p->numel * (as_bf16 ? 2 : 4), cudaMemcpyHostToDevice) != cudaSuccess)
            st = hydra_set_error(HYDRA_ERR_DEVICE, "cuda: uploading %s failed", p->name);
        *(is_mat ? &om : &ov) += p->numel;
    }
    free(stage);
    return st;
}

static hydra_status bind_layers(const hydra_model *m, hydra_dev_model *d, void **dev) {
    const hydra_config *c = &m->cfg;
    char name[96];
#define DEV(...) (snprintf(name, sizeof name, __VA_ARGS__), find_info(m, name) < 0 ? NULL : dev[find_info(m, name)])
    for (int i = 0; i < c->n_layers; i++) {
        dev_layer *l = &d->layers[i];
        l->kind = m->layers[i].kind;
        const char *mx = l->kind == HYDRA_LAYER_DELTANET ? "gdn" : "attn";
        l->norm1 = DEV("blocks.%d.norm1.weight", i);
        l->norm2 = DEV("blocks.%d.norm2.weight", i);
        l->in_proj = DEV("blocks.%d.%s.q_proj.weight", i, mx);
        l->o_proj = DEV("blocks.%d.%s.o_proj.weight", i, mx);
        l->gate_up = DEV("blocks.%d.mlp.gate_proj.weight", i);
        l->down = DEV("blocks.%d.mlp.down_proj.weight", i);
        if (l->kind == HYDRA_LAYER_DELTANET) {
            l->A_log = DEV("blocks.%d.gdn.A_log", i);
            l->dt_bias = DEV("blocks.%d.gdn.dt_bias", i);
            l->conv = DEV("blocks.%d.gdn.q_conv.weight", i);
            l->o_norm = DEV("blocks.%d.gdn.o_norm.weight", i);
        }
        if (!l->norm1 || !l->norm2 || !l->in_proj || !l->o_proj || !l->gate_up || !l->down)
            return hydra_set_error(HYDRA_ERR_DEVICE, "cuda: layer %d's tensors are missing from the parameter table", i);
    }
    d->embed = DEV("embed.weight");
    d->norm_f = DEV("norm_f.weight");
    if (c->tie_embeddings) {
        if (d->bf16) { /* the head product wants the embedding as a bf16 matrix */
            size_t n = (size_t)c->vocab_size * (size_t)c->d_model;
            uint16_t *h = malloc(n * 2);
            if (!h) return hydra_set_error(HYDRA_ERR_NOMEM, "out of memory");
            host_tensor(m, &m->info[find_info(m, "embed.weight")], 1, h);
            hydra_status st = hydra_cu_alloc(&d->head16, n * 2, "the bf16 head");
            if (!st && cudaMemcpy(d->head16, h, n * 2, cudaMemcpyHostToDevice) != cudaSuccess)
                st = hydra_set_error(HYDRA_ERR_DEVICE, "cuda: uploading the head failed");
            free(h);
            HYDRA_CHECK(st);
            d->weight_bytes += n * 2;
            d->lm_head = d->head16;
        } else d->lm_head = d->embed;
    } else d->lm_head = DEV("lm_head.weight");
#undef DEV
    if (!d->embed || !d->norm_f || !d->lm_head) return hydra_set_error(HYDRA_ERR_DEVICE, "cuda: embedding or head missing");
    int half = m->dk / 2;
    double f[2048];
    for (int i = 0; i < half; i++) f[i] = pow((double)c->rope_base, -2.0 * i / m->dk);
    HYDRA_CHECK(hydra_cu_alloc((void **)&d->inv_freq, (size_t)half * sizeof(double), "RoPE frequencies"));
    CU_CHECK(cudaMemcpy(d->inv_freq, f, (size_t)half * sizeof(double), cudaMemcpyHostToDevice));
    return HYDRA_OK;
}

static hydra_status check_shapes(const hydra_model *m) {
    int d = m->dk;
    if (m->dk != m->dv) return hydra_set_error(HYDRA_ERR_DEVICE, "cuda: head dims dk %d != dv %d are not supported", m->dk, m->dv);
    if (d != 32 && d != 64 && d != 128)
        return hydra_set_error(HYDRA_ERR_DEVICE, "cuda: head_dim %d is not supported on the GPU (32, 64 or 128)", d);
    return HYDRA_OK;
}

hydra_status hydra_dev_model_create(const hydra_model *m, int device, hydra_precision precision, hydra_dev_model **out) {
    *out = NULL;
    HYDRA_CHECK(check_shapes(m));
    int n = hydra_dev_count();
    if (n == 0) return hydra_set_error(HYDRA_ERR_DEVICE, "cuda: no CUDA device is visible on this machine");
    if (device < 0 || device >= n) return hydra_set_error(HYDRA_ERR_DEVICE, "cuda:%d: no such device (%d visible)", device, n);
    CU_CHECK(cudaSetDevice(device));
    hydra_dev_model *d = calloc(1, sizeof *d);
    void **dev = calloc((size_t)m->n_info, sizeof *dev);
    if (d) d->layers = calloc((size_t)m->cfg.n_layers, sizeof *d->layers);
    if (!d || !dev || !d->layers) {
        free(dev);
        if (d) free(d->layers);
        free(d);
        return hydra_set_error(HYDRA_ERR_NOMEM, "out of memory");
    }
    d->device = device;
    d->precision = precision == HYDRA_PRECISION_F32 ? HYDRA_PRECISION_F32 : HYDRA_PRECISION_BF16;
    d->bf16 = d->precision == HYDRA_PRECISION_BF16;
    const char *g = getenv("HYDRA_CUDA_GRAPHS"); /* "0": launch every kernel (measuring what graphs save) */
    d->use_graphs = !(g && strcmp(g, "0") == 0);
    const char *sm = getenv("HYDRA_CUDA_SAMPLE"); /* "0": generation copies the logits and samples on the host */
    d->sample_on = !(sm && strcmp(sm, "0") == 0);
    const char *ch = getenv("HYDRA_CUDA_CHUNKED"); /* "0": token-by-token kernel at every length */
    d->chunk_min = (ch && strcmp(ch, "0") == 0) || (m->dk != 64 && m->dk != 128) ? 0 : 64;
    const char *fd = getenv("HYDRA_CUDA_FUSED_DECODE"); /* "0": a decode step's DeltaNet layers as three kernels */
    d->fused_decode = !(fd && strcmp(fd, "0") == 0) && (m->dk == 64 || m->dk == 128);
    const char *gu = getenv("HYDRA_CUDA_GU16"); /* "0": training keeps gate|up in f32 (for comparisons) */
    d->gu16 = d->bf16 && !(gu && strcmp(gu, "0") == 0);
    /* the product gradients a norm or SwiGLU backward reads, rounded to bf16 by their product: "dact"
     * (the default) the down product's, read by the SwiGLU backward; "dh" those before each RMSNorm
     * backward; "1" both; "0" neither. dh stays off by default: with both, Muon's bf16 loss curve left
     * test_train_50_steps' 5 % band at one step (8.1 %, session 13); with dact alone it stayed at 2.0 %
     * and with dh alone reached 4.1 % (session 14, H100) */
    const char *g16 = getenv("HYDRA_CUDA_GRAD16");
    d->grad16 = !d->gu16 ? 0
                : !g16 || strcmp(g16, "dact") == 0 ? HK_GRAD16_DACT
                : strcmp(g16, "1") == 0            ? HK_GRAD16_DACT | HK_GRAD16_DH
                : strcmp(g16, "dh") == 0           ? HK_GRAD16_DH
                                                   : 0;
    hydra_status st = HYDRA_OK;
    if (cudaStreamCreateWithFlags(&d->stream, cudaStreamNonBlocking) != cudaSuccess)
        st = hydra_set_error(HYDRA_ERR_DEVICE, "cuda: cannot create a stream on cuda:%d", device);
    if (!st) st = hydra_gemm_init(&d->gemm);
    if (!st) st = upload_weights(m, d, dev);
    if (!st) st = bind_layers(m, d, dev);
    d->tensor = dev; /* kept: training refreshes these copies from its master weights */
    if (st) {
        hydra_dev_model_free(d);
        return st;
    }
    *out = d;
    return HYDRA_OK;
}

/* Grow the workspace to `rows` rows and B sequences. */
static hydra_status workspace_reserve(const hydra_model *m, hydra_dev_model *d, size_t rows, size_t B) {
    if (rows <= d->ws_rows && B <= d->ws_b) return HYDRA_OK;
    if (rows < d->ws_rows) rows = d->ws_rows;
    if (B < d->ws_b) B = d->ws_b;
    CU_CHECK(cudaStreamSynchronize(d->stream));
    workspace_free(d);
    const hydra_config *c = &m->cfg;
    size_t C = (size_t)c->d_model, H = (size_t)c->n_heads, Hd = H * (size_t)m->dk, F = (size_t)m->F,
           V = (size_t)c->vocab_size, L = (size_t)c->n_layers;
    size_t P = (size_t)hydra_gdn_in_width(m);
    if (3 * Hd > P) P = 3 * Hd;
    if (2 * F > P) P = 2 * F;
    size_t G = C > Hd ? C : Hd;
    if (F > G) G = F;
    /* chunked delta rule: U, W, V_new [rows, Hd], G [rows, H], chunk states
     * [<= rows/64 + B chunks, H, d, d] (hk_delta_rule_chunked_scratch for any B x T <= rows) */
    size_t dsc = d->chunk_min ? (3 * rows * Hd + rows * H + (rows / 64 + B) * H * (size_t)m->dk * m->dk) * 4 : 0;
#define R64(n) (((n) + 63) & ~(size_t)63)
    size_t sizes[] = {R64(rows * C * 4), R64(rows * P * 4), R64(rows * Hd * 4), R64(rows * Hd * 4), R64(rows * Hd * 4),
                      R64(rows * Hd * 4), R64(rows * H * 4), R64(rows * H * 4), R64(B * C * 4), R64(rows * V * 4),
                      R64(rows * G * 4), R64(rows * 4), R64(B * 8), R64(L * 2 * B * sizeof(float *)), R64(dsc)};
    size_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) total += sizes[i];
    HYDRA_CHECK(hydra_cu_alloc(&d->ws, total, "the forward workspace"));
    void **dst[] = {(void **)&d->x, (void **)&d->proj, (void **)&d->q, (void **)&d->k, (void **)&d->v,
                    (void **)&d->o, (void **)&d->g, (void **)&d->beta, (void **)&d->last, (void **)&d->logits,
                    &d->gin, (void **)&d->tok, (void **)&d->pos, (void **)&d->ptrs, &d->dscratch};
    char *p = d->ws;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        *dst[i] = p;
        p += sizes[i];
    }
#undef R64
    d->ws_rows = rows, d->ws_b = B, d->ws_bytes = total;
    CU_CHECK(cudaMallocHost((void **)&d->h_tok, rows * 4));
    CU_CHECK(cudaMallocHost((void **)&d->h_pos, B * 8));
    CU_CHECK(cudaMallocHost((void **)&d->h_ptrs, L * 2 * B * sizeof(float *)));
    CU_CHECK(cudaMallocHost((void **)&d->h_logits, rows * V * 4));
    d->h_rows = rows, d->h_b = B;
    return HYDRA_OK;
}

/* ------------------------------------------------------------------ states */
int hydra_dev_state_device(const hydra_dev_state *d) { return d->device; }

void hydra_dev_state_free(hydra_dev_state *d) {
    if (!d) return;
    cudaSetDevice(d->device);
    cudaDeviceSynchronize();
    if (d->arena) cudaFree(d->arena);
    for (int i = 0; i < d->n_layers; i++) {
        if (d->kc[i]) cudaFree(d->kc[i]);
        if (d->vc[i]) cudaFree(d->vc[i]);
    }
    free(d->kc); /* kc, vc and cap are one allocation */
    free(d);
}

/* Full-attention caches hold >= positions positions (keeping the first `keep`). */
static hydra_status dev_state_reserve(hydra_state *s, size_t positions, size_t keep) {
    hydra_dev_state *d = s->dev;
    const hydra_config *c = &s->cfg;
    size_t Hd = (size_t)c->n_heads * (size_t)hydra_config_head_dim(c);
    for (int i = 0; i < c->n_layers; i++) {
        if (!hydra_layer_cache_unbounded(c, hydra_config_layer_kind(c, i)) || d->cap[i] >= positions) continue;
        size_t cap = d->cap[i] ? d->cap[i] : 256;
        while (cap < positions) cap *= 2;
        float *k = NULL, *v = NULL;
        hydra_status st = hydra_cu_alloc((void **)&k, cap * Hd * 4, "an attention cache");
        if (!st) st = hydra_cu_alloc((void **)&v, cap * Hd * 4, "an attention cache");
        if (!st && keep) {
            if (cudaMemcpy(k, d->kc[i], keep * Hd * 4, cudaMemcpyDeviceToDevice) != cudaSuccess ||
                cudaMemcpy(v, d->vc[i], keep * Hd * 4, cudaMemcpyDeviceToDevice) != cudaSuccess)
                st = hydra_set_error(HYDRA_ERR_DEVICE, "cuda: growing an attention cache failed");
        }
        if (st) {
            if (k) cudaFree(k);
            if (v) cudaFree(v);
            return st;
        }
        if (d->kc[i]) cudaFree(d->kc[i]);
        if (d->vc[i]) cudaFree(d->vc[i]);
        d->kc[i] = k, d->vc[i] = v, d->cap[i] = cap;
    }
    return HYDRA_OK;
}

static hydra_status dev_state_create(hydra_state *s, int device) {
    int L = s->cfg.n_layers;
    hydra_dev_state *d = calloc(1, sizeof *d);
    void *arrays = calloc((size_t)L, 2 * sizeof(float *) + sizeof(size_t));
    if (!d || !arrays) {
        free(d);
        free(arrays);
        return hydra_set_error(HYDRA_ERR_NOMEM, "out of memory");
    }
    d->device = device;
    d->n_layers = L;
    d->kc = arrays;
    d->vc = d->kc + L;
    d->cap = (size_t *)(d->vc + L);
    hydra_status st = hydra_cu_alloc((void **)&d->arena, s->arena_floats * 4, "a state");
    if (st) {
        free(arrays);
        free(d);
        return st;
    }
    s->dev = d;
    return HYDRA_OK;
}

/* Bytes of one full-attention K (or V) cache holding s's first s->pos positions. */
static size_t cache_bytes(const hydra_state *s) {
    return (size_t)s->pos * (size_t)s->cfg.n_heads * (size_t)hydra_config_head_dim(&s->cfg) * 4;
}

/* One layer's K and V caches, `bytes` each, in the direction `kind`. */
static hydra_status copy_kv(void *dk, void *dv, const void *sk, const void *sv, size_t bytes, enum cudaMemcpyKind kind) {
    CU_CHECK(cudaMemcpy(dk, sk, bytes, kind));
    CU_CHECK(cudaMemcpy(dv, sv, bytes, kind));
    return HYDRA_OK;
}

hydra_status hydra_dev_state_upload(hydra_state *s, int device) {
    CU_CHECK(cudaSetDevice(device));
    if (!s->dev) HYDRA_CHECK(dev_state_create(s, device));
    hydra_dev_state *d = s->dev;
    CU_CHECK(cudaMemcpy(d->arena, s->arena, s->arena_floats * 4, cudaMemcpyHostToDevice));
    if (s->pos) HYDRA_CHECK(dev_state_reserve(s, (size_t)s->pos, 0));
    for (int i = 0; i < s->cfg.n_layers; i++)
        if (d->kc[i] && s->pos)
            HYDRA_CHECK(copy_kv(d->kc[i], d->vc[i], s->layers[i].kc, s->layers[i].vc, cache_bytes(s), cudaMemcpyHostToDevice));
    return HYDRA_OK;
}

hydra_status hydra_dev_state_download(hydra_state *s) {
    hydra_dev_state *d = s->dev;
    CU_CHECK(cudaSetDevice(d->device));
    CU_CHECK(cudaDeviceSynchronize());
    CU_CHECK(cudaMemcpy(s->arena, d->arena, s->arena_floats * 4, cudaMemcpyDeviceToHost));
    HYDRA_CHECK(hydra_state_reserve(s, (size_t)s->pos));
    for (int i = 0; i < s->cfg.n_layers; i++)
        if (d->kc[i] && s->pos)
            HYDRA_CHECK(copy_kv(s->layers[i].kc, s->layers[i].vc, d->kc[i], d->vc[i], cache_bytes(s), cudaMemcpyDeviceToHost));
    return HYDRA_OK;
}

hydra_status hydra_dev_state_copy(hydra_state *dst, const hydra_state *src) {
    hydra_dev_state *a = dst->dev, *b = src->dev;
    CU_CHECK(cudaSetDevice(b->device));
    CU_CHECK(cudaDeviceSynchronize());
    CU_CHECK(cudaMemcpy(a->arena, b->arena, src->arena_floats * 4, cudaMemcpyDeviceToDevice));
    if (src->pos) HYDRA_CHECK(dev_state_reserve(dst, (size_t)src->pos, 0));
    for (int i = 0; i < src->cfg.n_layers; i++)
        if (b->kc[i] && src->pos)
            HYDRA_CHECK(copy_kv(a->kc[i], a->vc[i], b->kc[i], b->vc[i], cache_bytes(src), cudaMemcpyDeviceToDevice));
    return HYDRA_OK;
}

hydra_status hydra_dev_state_reset(hydra_state *s) {
    CU_CHECK(cudaSetDevice(s->dev->device));
    CU_CHECK(cudaMemset(s->dev->arena, 0, s->arena_floats * 4));
    return HYDRA_OK;
}

/* Device address of host pointer p inside s's arena. */
static float *dev_addr(const hydra_state *s, const float *p) { return s->dev->arena + (p - s->arena); }

/* ----------------------------------------------------------------- forward */
static hydra_status gdn_layer(const hydra_model *m, hydra_dev_model *d, const dev_layer *l, int li, int B, int T) {
    const hydra_config *c = &m->cfg;
    const int C = c->d_model, H = c->n_heads, dd = m->dk, K = c->conv_width;
    const int BT = B * T, Hd = H * dd, P = hydra_gdn_in_width(m);
    cudaStream_t s = d->stream;
    float *const *S = d->ptrs + (size_t)li * 2 * B, *const *tails = S + B;
    HYDRA_CHECK(hydra_gemm_in(&d->gemm, s, BT, P, C, HK_IN_RMSNORM, d->x, l->norm1, c->norm_eps, d->gin, l->in_proj,
                              d->proj, d->bf16, 0));
    if (T == 1 && d->fused_decode) { /* input stage, delta rule and gated norm in one kernel */
        cudaError_t e = hk_gdn_decode(s, B, H, dd, K, d->proj, P, l->conv, S, tails, l->A_log, l->dt_bias, c->l2_eps,
                                      l->o_norm, c->norm_eps, d->gin, d->bf16);
        if (e != cudaErrorNotSupported) { /* not supported (shape, alignment): the three kernels below */
            K_CHECK(e);
            return HYDRA_OK;
        }
    }
    K_CHECK(hk_gdn_prep(s, B, T, H, dd, K, d->proj, P, l->conv, tails, l->A_log, l->dt_bias, c->l2_eps, d->q, d->k,
                        d->v, d->g, d->beta));
    K_CHECK(hk_conv_tail(s, B, T, 3 * Hd, K, d->proj, P, tails));
    if (d->chunk_min && T >= d->chunk_min)
        K_CHECK(hk_delta_rule_chunked(s, B, T, H, dd, dd, d->q, d->k, d->v, d->g, d->beta, S, d->o, d->dscratch, d->bf16));
    else K_CHECK(hk_delta_rule_recurrent(s, B, T, H, dd, dd, d->q, d->k, d->v, d->g, d->beta, S, d->o));
    K_CHECK(hk_gated_onorm(s, BT, H, dd, d->o, d->proj, P, 3 * Hd, l->o_norm, c->norm_eps, d->gin, d->bf16));
    return HYDRA_OK;
}

static hydra_status attn_layer(const hydra_model *m, hydra_dev_model *d, const dev_layer *l, int li, int B, int T) {
    const hydra_config *c = &m->cfg;
    const int C = c->d_model, H = c->n_heads, dd = m->dk, BT = B * T, Hd = H * dd;
    const int window = l->kind == HYDRA_LAYER_ATTN ? 0 : c->window;
    cudaStream_t s = d->stream;
    float *const *kc = d->ptrs + (size_t)li * 2 * B, *const *vc = kc + B;
    HYDRA_CHECK(hydra_gemm_in(&d->gemm, s, BT, 3 * Hd, C, HK_IN_RMSNORM, d->x, l->norm1, c->norm_eps, d->gin,
                              l->in_proj, d->proj, d->bf16, 0));
    K_CHECK(hk_rope_qkv(s, B, T, H, dd, d->proj, d->pos, d->inv_freq, d->q, d->k, d->v, window, kc, vc));
    K_CHECK(hk_attention(s, B, T, H, dd, window, d->pos, d->q, d->k, d->v, kc, vc, d->gin, d->bf16));
    K_CHECK(hk_cache_write(s, B, T, H, dd, window, d->pos, d->k, d->v, kc, vc));
    return HYDRA_OK;
}

static hydra_status enqueue(const hydra_model *m, hydra_dev_model *d, int B, int T, hydra_logits_mode mode);
static hydra_status replay(const hydra_model *m, hydra_dev_model *d, int B, int T, hydra_logits_mode mode);

/* A forward whose last logits stay on the device and are sampled there
 * (hydra_dev_forward_sample); a graph key of its own. */
#define MODE_SAMPLE ((hydra_logits_mode)3)

/* The sampler's block: settings, then u[samp_b], then tok[samp_b]. */
static double *samp_u(void *base) { return (double *)((char *)base + sizeof(hk_sample_params)); }
static int32_t *samp_tok(const hydra_dev_model *d, void *base) { return (int32_t *)(samp_u(base) + d->samp_b); }

static hydra_status sample_reserve(hydra_dev_model *d, size_t B) {
    if (B <= d->samp_b) return HYDRA_OK;
    CU_CHECK(cudaStreamSynchronize(d->stream));
    sample_free(d);
    size_t bytes = sizeof(hk_sample_params) + B * (sizeof(double) + sizeof(int32_t));
    HYDRA_CHECK(hydra_cu_alloc(&d->samp, bytes, "the sampler's buffers"));
    CU_CHECK(cudaMallocHost(&d->h_samp, bytes));
    d->samp_b = B;
    return HYDRA_OK;
}

/* hydra_dev_forward, or with o (mode MODE_SAMPLE) hydra_dev_forward_sample. */
static hydra_status dev_forward(const hydra_model *m, const int32_t *tokens, int B, int T, hydra_state *const *states,
                                hydra_logits_mode mode, float *logits, const hydra_sample_opts *o, const double *u,
                                int32_t *next) {
    hydra_dev_model *d = m->dev;
    const hydra_config *c = &m->cfg;
    const int C = c->d_model, V = c->vocab_size, L = c->n_layers;
    const size_t BT = (size_t)B * T;
    if (BT > (size_t)INT32_MAX / (size_t)(V > C ? V : C))
        return hydra_set_error(HYDRA_ERR_ARG, "cuda forward: %zu rows are too many for one call", BT);
    CU_CHECK(cudaSetDevice(d->device));
    for (int b = 0; b < B; b++) {
        HYDRA_CHECK(hydra_state_to_device(states[b], d->device));
        HYDRA_CHECK(dev_state_reserve(states[b], (size_t)states[b]->pos + (size_t)T, (size_t)states[b]->pos));
    }
    HYDRA_CHECK(workspace_reserve(m, d, BT, (size_t)B));
    if (o) {
        HYDRA_CHECK(sample_reserve(d, (size_t)B));
        hk_sample_params *par = d->h_samp;
        par->temperature = o->temperature, par->top_k = o->top_k, par->top_p = o->top_p, par->unused = 0;
        memcpy(samp_u(d->h_samp), u, (size_t)B * sizeof *u);
    }
    /* stage tokens, positions and the state pointer table; one upload each */
    memcpy(d->h_tok, tokens, BT * 4);
    for (int b = 0; b < B; b++) {
        const hydra_state *st = states[b];
        d->h_pos[b] = (int64_t)st->pos;
        for (int li = 0; li < L; li++) {
            const hydra_layer_state *ls = &st->layers[li];
            float **row = d->h_ptrs + (size_t)li * 2 * B;
            if (d->layers[li].kind == HYDRA_LAYER_DELTANET) {
                row[b] = dev_addr(st, ls->S);
                row[B + b] = dev_addr(st, ls->conv);
            } else if (st->dev->kc[li]) {
                row[b] = st->dev->kc[li];
                row[B + b] = st->dev->vc[li];
            } else {
                row[b] = dev_addr(st, ls->kc);
                row[B + b] = dev_addr(st, ls->vc);
            }
        }
    }
    hydra_status st = HYDRA_OK;
    if (d->use_graphs && T <= 8) st = replay(m, d, B, T, mode);
    else st = enqueue(m, d, B, T, mode);
    HYDRA_CHECK(st);
    CU_CHECK(cudaStreamSynchronize(d->stream));
    if (mode == MODE_SAMPLE) memcpy(next, samp_tok(d, d->h_samp), (size_t)B * sizeof *next);
    else if (mode != HYDRA_LOGITS_NONE)
        memcpy(logits, d->h_logits, (mode == HYDRA_LOGITS_ALL ? BT : (size_t)B) * (size_t)V * 4);
    for (int b = 0; b < B; b++) {
        states[b]->pos += (uint64_t)T;
        states[b]->where = HYDRA_STATE_DEVICE;
    }
    for (int b = 0; mode == MODE_SAMPLE && b < B; b++)
        if (next[b] < 0) return hydra_set_error(HYDRA_ERR_ARG, "sample: row %d of the logits holds a NaN", b);
    return HYDRA_OK;
}

hydra_status hydra_dev_forward(const hydra_model *m, const int32_t *tokens, int B, int T, hydra_state *const *states,
                               hydra_logits_mode mode, float *logits) {
    return dev_forward(m, tokens, B, T, states, mode, logits, NULL, NULL, NULL);
}

/* The sampler after the head GEMM, inside the forward's stream (and graph):
 * settings and uniforms in, B token ids out. */
static hydra_status enqueue_sample(hydra_dev_model *d, int B, int V) {
    cudaStream_t s = d->stream;
    CU_CHECK(cudaMemcpyAsync(d->samp, d->h_samp, sizeof(hk_sample_params) + (size_t)B * sizeof(double),
                             cudaMemcpyHostToDevice, s));
    K_CHECK(hk_sample(s, B, V, d->logits, d->samp, samp_u(d->samp), samp_tok(d, d->samp)));
    CU_CHECK(cudaMemcpyAsync(samp_tok(d, d->h_samp), samp_tok(d, d->samp), (size_t)B * sizeof(int32_t),
                             cudaMemcpyDeviceToHost, s));
    return HYDRA_OK;
}

/* The whole forward on d's stream, from the staging uploads to the logits
 * download into d->h_logits; no synchronisation, so it can be captured. */
static hydra_status enqueue(const hydra_model *m, hydra_dev_model *d, int B, int T, hydra_logits_mode mode) {
    const hydra_config *c = &m->cfg;
    const int C = c->d_model, V = c->vocab_size, F = m->F, L = c->n_layers;
    const int Hd = c->n_heads * m->dk;
    const size_t BT = (size_t)B * T;
    cudaStream_t s = d->stream;
    CU_CHECK(cudaMemcpyAsync(d->tok, d->h_tok, BT * 4, cudaMemcpyHostToDevice, s));
    CU_CHECK(cudaMemcpyAsync(d->pos, d->h_pos, (size_t)B * 8, cudaMemcpyHostToDevice, s));
    CU_CHECK(cudaMemcpyAsync(d->ptrs, d->h_ptrs, (size_t)L * 2 * B * sizeof(float *), cudaMemcpyHostToDevice, s));

    K_CHECK(hk_embed(s, d->tok, (int)BT, d->embed, C, d->x));
    for (int li = 0; li < L; li++) {
        const dev_layer *l = &d->layers[li];
        if (l->kind == HYDRA_LAYER_DELTANET) HYDRA_CHECK(gdn_layer(m, d, l, li, B, T));
        else HYDRA_CHECK(attn_layer(m, d, l, li, B, T));
        HYDRA_CHECK(hydra_gemm(&d->gemm, s, (int)BT, C, Hd, d->gin, l->o_proj, d->x, d->bf16, 1));
        /* pre-norm and SwiGLU folded into the GEMMs' input reads at decode sizes */
        HYDRA_CHECK(hydra_gemm_in(&d->gemm, s, (int)BT, 2 * F, C, HK_IN_RMSNORM, d->x, l->norm2, c->norm_eps, d->gin,
                                  l->gate_up, d->proj, d->bf16, 0));
        HYDRA_CHECK(hydra_gemm_in(&d->gemm, s, (int)BT, C, F, HK_IN_SWIGLU, d->proj, NULL, 0.0f, d->gin, l->down, d->x,
                                  d->bf16, 1));
    }
    size_t out_rows = 0;
    const float *last = d->x;
    if (mode == HYDRA_LOGITS_ALL) {
        out_rows = BT;
    } else if (mode == HYDRA_LOGITS_LAST || mode == MODE_SAMPLE) {
        if (T > 1) { /* with T = 1 the rows of x already are the last positions */
            K_CHECK(hk_gather_last(s, B, T, C, d->x, d->last));
            last = d->last;
        }
        out_rows = (size_t)B;
    }
    if (out_rows) {
        HYDRA_CHECK(hydra_gemm_in(&d->gemm, s, (int)out_rows, V, C, HK_IN_RMSNORM, last, d->norm_f, c->norm_eps, d->gin,
                                  d->lm_head, d->logits, d->bf16, 0));
        if (mode == MODE_SAMPLE) HYDRA_CHECK(enqueue_sample(d, B, V));
        else CU_CHECK(cudaMemcpyAsync(d->h_logits, d->logits, out_rows * (size_t)V * 4, cudaMemcpyDeviceToHost, s));
    }
    return HYDRA_OK;
}

/* Decode-sized forwards (T <= 8: a token, a speculative verify) as one CUDA
 * graph launch instead of ~10 launches per layer: run eagerly the first time
 * a (B, T, mode) is seen (so GEMM plans are made and timed outside a
 * capture), captured the second time, replayed after. A capture that fails
 * falls back to plain launches for good. */
static hydra_status replay(const hydra_model *m, hydra_dev_model *d, int B, int T, hydra_logits_mode mode) {
    int slot = -1;
    for (int i = 0; i < d->n_graphs; i++)
        if (d->graphs[i].B == B && d->graphs[i].T == T && d->graphs[i].mode == (int)mode) slot = i;
    if (slot >= 0 && d->graphs[slot].exec) {
        CU_CHECK(cudaGraphLaunch(d->graphs[slot].exec, d->stream));
        return HYDRA_OK;
    }
    if (slot < 0) { /* first time: remember the key, run eagerly */
        if (d->n_graphs == 8) graphs_free(d);
        d->graphs[d->n_graphs].B = B, d->graphs[d->n_graphs].T = T, d->graphs[d->n_graphs].mode = (int)mode;
        d->graphs[d->n_graphs++].exec = NULL;
        return enqueue(m, d, B, T, mode);
    }
    cudaGraph_t graph = NULL;
    cudaGraphExec_t exec = NULL;
    CU_CHECK(cudaStreamBeginCapture(d->stream, cudaStreamCaptureModeThreadLocal));
    hydra_status st = enqueue(m, d, B, T, mode);
    cudaError_t e = cudaStreamEndCapture(d->stream, &graph);
    if (st == HYDRA_OK && e == cudaSuccess && cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess) {
        cudaGraphDestroy(graph);
        d->graphs[slot].exec = exec;
        CU_CHECK(cudaGraphLaunch(exec, d->stream));
        return HYDRA_OK;
    }
    if (graph) cudaGraphDestroy(graph);
    cudaGetLastError();
    d->use_graphs = 0;
    return enqueue(m, d, B, T, mode);
}

/* ---------------------------------------------------------------- sampling */
hydra_status hydra_dev_forward_sample(const hydra_model *m, const int32_t *tokens, int B, int T,
                                      hydra_state *const *states, const hydra_sample_opts *o, const double *u,
                                      int32_t *next) {
    return dev_forward(m, tokens, B, T, states, MODE_SAMPLE, NULL, o, u, next);
}

int hydra_dev_sampling(const hydra_dev_model *d) { return d && d->sample_on; }

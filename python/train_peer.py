#!/usr/bin/env python3
"""train_peer.py -- the PyTorch speed peer for HydraLM training (DESIGN.md §2).

A batched float32 PyTorch implementation of the same model and the same
training step that `hydra bench --train` times in C:

  forward over [B, T] from empty states, mean cross-entropy over all
  positions, backward, global-norm clip 1.0, torch.optim.AdamW step
  (lr 3e-3, betas 0.9/0.95, eps 1e-8, weight decay 0.1 on 2-D weights except
  the conv kernels -- the C defaults).

Model: embedding; L pre-norm blocks (layer i is SWA when (i+1) % 4 == 0,
else Gated DeltaNet); final RMSNorm; tied head. Gated DeltaNet: one fused
projection q|k|v|gate|a|b, causal depthwise conv K=4 + SiLU on q, k, v,
L2-norm q/k (q scaled by d^-1/2), beta = sigmoid(b), g = -exp(A_log) *
softplus(a + dt_bias), the gated delta rule, gated RMSNorm output with
SiLU(gate), o_proj. SWA: fused q|k|v, split-half RoPE (angles in float64),
masked full-score softmax with window W. SwiGLU MLP (fused gate|up),
F = round_up(ceil(8C/3), 64).

The gated delta rule is written the way one would for training: the
chunkwise WY/UT form (chunk 64) vectorised over batch and heads, the
(I + L)^{-1} applied by one batched unit-lower-triangular solve, and a loop
over the T/64 chunks only (see chunk_gated_delta_rule). The token-by-token
recurrence (recurrent_gated_delta_rule) is there for checking and as the
alternative the benchmark compares against (--gdr recurrent).

Usage:
  python3 python/train_peer.py --d-model 256 --n-layers 4 --n-heads 4 --head-dim 64 \
      --window 256 --batch 8 --seq 256 --threads 2 --steps 5 --warmup 1
      -> one JSON line: {"tokens_per_s": ..., "step_seconds_median": ..., ...}
  python3 python/train_peer.py --self-test
      -> checks the chunked rule against a float64 per-token loop (outputs and
         gradients) and the whole model against python/hydra_ref.py; exit 1 on failure.
  python3 python/train_peer.py ... --gdr compare
      -> times the step with both delta-rule forms, reports both.

The BLAS library torch uses (Debian: BLIS or OpenBLAS through libblas.so.3)
only picks its AVX-512 kernels on this CPU when told so in the environment
before it loads (DESIGN §7), so the script re-executes itself once with
BLIS_ARCH_TYPE=skx / OPENBLAS_CORETYPE=SkylakeX and the thread counts set
when the CPU has AVX-512 -- the peer is not handicapped by the trap.
"""
import argparse
import json
import math
import os
import sys
import time


def _cpu_has_avx512f():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return " avx512f " in line + " "
    except OSError:
        pass
    return False


def _ensure_blas_env(threads):
    """Re-exec once with the BLAS environment set (it is read when the library loads)."""
    if os.environ.get("HYDRA_PEER_ENV") == "1":
        return
    env = dict(os.environ)
    env["HYDRA_PEER_ENV"] = "1"
    if _cpu_has_avx512f():
        env.setdefault("BLIS_ARCH_TYPE", "skx")
        env.setdefault("OPENBLAS_CORETYPE", "SkylakeX")
    for v in ("OMP_NUM_THREADS", "BLIS_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[v] = str(threads)
    os.execve(sys.executable, [sys.executable] + sys.argv, env)


# --------------------------------------------------------------------------- args
def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--d-model", type=int, default=256)
    ap.add_argument("--n-layers", type=int, default=4)
    ap.add_argument("--n-heads", type=int, default=4)
    ap.add_argument("--head-dim", type=int, default=64)
    ap.add_argument("--vocab", type=int, default=256)
    ap.add_argument("--window", type=int, default=256, help="SWA window W (0 = unbounded)")
    ap.add_argument("--swa-every", type=int, default=4)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5, help="timed steps")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    ap.add_argument("--chunk", type=int, default=64)
    ap.add_argument("--gdr", choices=["chunk", "recurrent", "compare"], default="chunk",
                    help="delta-rule form for the step (compare: time both)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--self-test", action="store_true")
    return ap.parse_args(argv)


ARGS = parse_args()
_ensure_blas_env(ARGS.threads)

import torch  # noqa: E402  (after the environment is final)
import torch.nn.functional as Fn  # noqa: E402

# ------------------------------------------------------------------- delta rule


def recurrent_gated_delta_rule(q, k, v, g, beta):
    """Token-by-token recurrence. q, k: [B, H, T, dk]; v: [B, H, T, dv];
    g (log decay), beta: [B, H, T]. Returns o [B, H, T, dv]. S [B, H, dv, dk]:
    S' = e^g S; p = S' k; u = beta (v - p); S = S' + u k^T; o = S q."""
    B, H, T, dk = k.shape
    dv = v.shape[-1]
    S = q.new_zeros(B, H, dv, dk)
    alpha = g.exp()
    outs = []
    for t in range(T):
        kt = k[:, :, t]
        S = S * alpha[:, :, t, None, None]
        p = torch.einsum("bhij,bhj->bhi", S, kt)
        u = beta[:, :, t, None] * (v[:, :, t] - p)
        S = S + u[..., :, None] * kt[..., None, :]
        outs.append(torch.einsum("bhij,bhj->bhi", S, q[:, :, t]))
    return torch.stack(outs, 2)


def chunk_gated_delta_rule(q, k, v, g, beta, chunk=64):
    """Chunkwise WY/UT form (DESIGN §2), all batches and heads at once.
    Per chunk with start state S (here [dk, dv], o = q^T S):
      G = cumsum(g), Gamma_ij = exp(G_i - G_j) (i >= j, else 0),
      L = strictLower(diag(beta) (Gamma * K K^T)), A = (I + L)^{-1},
      U = A (beta V), W = A (beta e^G K)  -- one triangular solve for both,
      V_new = U - W S, O = (e^G Q) S + (Q K^T * Gamma) V_new,
      S_next = e^{G_C} S + ((e^{G_C - G}) K)^T V_new.
    T need not be a multiple of chunk (zero-padded: g = 0, beta = 0)."""
    B, H, T, dk = k.shape
    dv = v.shape[-1]
    pad = (-T) % chunk
    if pad:
        q, k, v = (Fn.pad(x, (0, 0, 0, pad)) for x in (q, k, v))
        g, beta = Fn.pad(g, (0, pad)), Fn.pad(beta, (0, pad))
    N = (T + pad) // chunk
    q = q.reshape(B, H, N, chunk, dk)
    k = k.reshape(B, H, N, chunk, dk)
    v = v.reshape(B, H, N, chunk, dv)
    G = g.reshape(B, H, N, chunk).cumsum(-1)                       # [B,H,N,c]
    beta = beta.reshape(B, H, N, chunk, 1)
    causal = torch.ones(chunk, chunk, dtype=torch.bool, device=q.device).tril()
    # mask before exp: above the diagonal G_i - G_j > 0 could overflow
    Gamma = (G[..., :, None] - G[..., None, :]).masked_fill(~causal, float("-inf")).exp()
    kb = k * beta
    L = (kb @ k.transpose(-1, -2) * Gamma).masked_fill(~causal.tril(-1), 0.0)
    rhs = torch.cat([v * beta, kb * G.exp()[..., None]], -1)      # [B,H,N,c,dv+dk]
    UW = torch.linalg.solve_triangular(L, rhs, upper=False, unitriangular=True)
    U, W = UW.split([dv, dk], -1)
    Aqk = q @ k.transpose(-1, -2) * Gamma                           # causal incl. diagonal
    qg = q * G.exp()[..., None]
    kd = k * (G[..., -1:] - G).exp()[..., None]                     # e^{G_C - G_i} k_i
    gC = G[..., -1].exp()                                           # [B,H,N]
    S = q.new_zeros(B, H, dk, dv)
    outs = []
    for n in range(N):
        vnew = U[:, :, n] - W[:, :, n] @ S
        outs.append(qg[:, :, n] @ S + Aqk[:, :, n] @ vnew)
        if n + 1 < N:
            S = S * gC[:, :, n, None, None] + kd[:, :, n].transpose(-1, -2) @ vnew
    o = torch.stack(outs, 2).reshape(B, H, N * chunk, dv)
    return o[:, :, :T] if pad else o


# ------------------------------------------------------------------------ model


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def mlp_hidden(C, multiple=64):
    f = -(-8 * C // 3)
    return -(-f // multiple) * multiple


class Peer(torch.nn.Module):
    """Parameters mirror the C table (fused in_proj / gate_up like the C model;
    `hydra_weights` exports them under the checkpoint names)."""

    def __init__(self, C, L, H, d, V, W, swa_every=4, K=4, gdr="chunk", chunk=64, seed=0):
        super().__init__()
        self.C, self.L, self.H, self.d, self.V, self.W, self.K = C, L, H, d, V, W, K
        self.F = mlp_hidden(C)
        self.gdr, self.chunk = gdr, chunk
        self.kinds = ["S" if swa_every > 0 and (i + 1) % swa_every == 0 else "D" for i in range(L)]
        gen = torch.Generator().manual_seed(seed)
        std, ostd = 0.02, 0.02 / math.sqrt(2 * L)
        Hd, F = H * d, self.F
        P = lambda *shape, s=std: torch.nn.Parameter(torch.randn(*shape, generator=gen) * s)  # noqa: E731
        self.embed = P(V, C)
        self.norm_f = torch.nn.Parameter(torch.ones(C))
        self.blocks = torch.nn.ModuleList()
        for kind in self.kinds:
            b = torch.nn.Module()
            b.norm1 = torch.nn.Parameter(torch.ones(C))
            b.norm2 = torch.nn.Parameter(torch.ones(C))
            b.gate_up = P(2 * F, C)
            b.down = P(C, F, s=ostd)
            b.o_proj = P(C, Hd, s=ostd)
            if kind == "D":
                b.in_proj = P(4 * Hd + 2 * H, C)
                b.conv = torch.nn.Parameter((torch.rand(3 * Hd, K, generator=gen) * 2 - 1) / math.sqrt(K))
                b.A_log = torch.nn.Parameter(torch.log(torch.rand(H, generator=gen) * 15 + 1))
                dt = torch.exp(torch.rand(H, generator=gen) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
                dt = dt.clamp(min=1e-4)
                b.dt_bias = torch.nn.Parameter(dt + torch.log(-torch.expm1(-dt)))
                b.o_norm = torch.nn.Parameter(torch.ones(d))
            else:
                b.in_proj = P(3 * Hd, C)
            self.blocks.append(b)
        self._rope = {}

    # -- mixers
    def _conv(self, x, w):
        """Causal depthwise conv over T: x [B, T, ch], w [ch, K]."""
        T, K = x.shape[1], w.shape[1]
        xp = Fn.pad(x, (0, 0, K - 1, 0))
        y = xp[:, 0:T] * w[:, 0]
        for j in range(1, K):
            y = y + xp[:, j:j + T] * w[:, j]
        return y

    def gdn(self, b, x):
        B, T, _ = x.shape
        H, d = self.H, self.d
        Hd = H * d
        proj = Fn.linear(x, b.in_proj)                                   # [B,T,4Hd+2H]
        qkv = Fn.silu(self._conv(proj[..., :3 * Hd], b.conv))          # [B,T,3Hd]
        z = proj[..., 3 * Hd:4 * Hd]
        a, bb = proj[..., 4 * Hd:4 * Hd + H], proj[..., 4 * Hd + H:]
        qkv = qkv.view(B, T, 3, H, d).permute(2, 0, 3, 1, 4)           # [3,B,H,T,d]
        q, k, v = qkv[0], qkv[1], qkv[2]
        q = q * torch.rsqrt(q.pow(2).sum(-1, keepdim=True) + 1e-6) * d ** -0.5
        k = k * torch.rsqrt(k.pow(2).sum(-1, keepdim=True) + 1e-6)
        beta = torch.sigmoid(bb).transpose(1, 2)                        # [B,H,T]
        g = (-b.A_log.exp() * Fn.softplus(a + b.dt_bias)).transpose(1, 2)
        if self.gdr == "recurrent":
            o = recurrent_gated_delta_rule(q, k, v, g, beta)
        else:
            o = chunk_gated_delta_rule(q, k, v, g, beta, self.chunk)
        o = o.transpose(1, 2)                                           # [B,T,H,d]
        y = rms_norm(o, b.o_norm, 1e-5) * Fn.silu(z.view(B, T, H, d))
        return Fn.linear(y.reshape(B, T, Hd), b.o_proj)

    def _rope_tables(self, T, dtype):
        key = (T, dtype)
        if key not in self._rope:
            half = self.d // 2
            pos = torch.arange(T, dtype=torch.float64)
            inv = 10000.0 ** (-2.0 * torch.arange(half, dtype=torch.float64) / self.d)
            ang = pos[:, None] * inv[None, :]
            self._rope[key] = (torch.cos(ang).to(dtype), torch.sin(ang).to(dtype))
        return self._rope[key]

    def _apply_rope(self, x):  # x [B,H,T,d]
        cos, sin = self._rope_tables(x.shape[2], x.dtype)
        h = self.d // 2
        a, b = x[..., :h], x[..., h:]
        return torch.cat([a * cos - b * sin, a * sin + b * cos], -1)

    def swa(self, b, x):
        B, T, _ = x.shape
        H, d = self.H, self.d
        qkv = Fn.linear(x, b.in_proj).view(B, T, 3, H, d).permute(2, 0, 3, 1, 4)
        q, k, v = self._apply_rope(qkv[0]), self._apply_rope(qkv[1]), qkv[2]
        s = q @ k.transpose(-1, -2) * d ** -0.5                         # [B,H,T,T]
        tq = torch.arange(T)[:, None]
        tk = torch.arange(T)[None, :]
        vis = tk <= tq
        if self.W > 0:
            vis = vis & (tk >= tq - self.W + 1)
        o = torch.softmax(s.masked_fill(~vis, float("-inf")), -1) @ v   # [B,H,T,d]
        return Fn.linear(o.transpose(1, 2).reshape(B, T, H * d), b.o_proj)

    def forward(self, tokens):
        x = Fn.embedding(tokens, self.embed)
        for kind, b in zip(self.kinds, self.blocks):
            h = rms_norm(x, b.norm1, 1e-5)
            x = x + (self.gdn(b, h) if kind == "D" else self.swa(b, h))
            gate, up = Fn.linear(rms_norm(x, b.norm2, 1e-5), b.gate_up).chunk(2, -1)
            x = x + Fn.linear(Fn.silu(gate) * up, b.down)
        return Fn.linear(rms_norm(x, self.norm_f, 1e-5), self.embed)  # tied head

    def hydra_weights(self):
        """{checkpoint name: tensor} (DESIGN §2 names), for python/hydra_ref.py."""
        Hd, F, H = self.H * self.d, self.F, self.H
        w = {"embed.weight": self.embed, "norm_f.weight": self.norm_f}
        for i, (kind, b) in enumerate(zip(self.kinds, self.blocks)):
            p = f"blocks.{i}."
            w[p + "norm1.weight"], w[p + "norm2.weight"] = b.norm1, b.norm2
            w[p + "mlp.gate_proj.weight"], w[p + "mlp.up_proj.weight"] = b.gate_up[:F], b.gate_up[F:]
            w[p + "mlp.down_proj.weight"] = b.down
            if kind == "D":
                g = p + "gdn."
                for j, n in enumerate("qkvg"):
                    w[g + n + "_proj.weight"] = b.in_proj[j * Hd:(j + 1) * Hd]
                w[g + "a_proj.weight"] = b.in_proj[4 * Hd:4 * Hd + H]
                w[g + "b_proj.weight"] = b.in_proj[4 * Hd + H:]
                for j, n in enumerate("qkv"):
                    w[g + n + "_conv.weight"] = b.conv[j * Hd:(j + 1) * Hd]
                w[g + "A_log"], w[g + "dt_bias"], w[g + "o_norm.weight"] = b.A_log, b.dt_bias, b.o_norm
                w[g + "o_proj.weight"] = b.o_proj
            else:
                a = p + "attn."
                for j, n in enumerate("qkv"):
                    w[a + n + "_proj.weight"] = b.in_proj[j * Hd:(j + 1) * Hd]
                w[a + "o_proj.weight"] = b.o_proj
        return w


def make_optimizer(model):
    """AdamW with the C defaults; decay on 2-D weights except the conv kernels."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.dim() == 2 and not name.endswith("conv") else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}]
    kw = dict(lr=3e-3, betas=(0.9, 0.95), eps=1e-8)
    try:
        return torch.optim.AdamW(groups, fused=False, **kw), "AdamW(fused=False)"
    except TypeError:  # torch 1.13's AdamW has no `fused` argument: this is its plain (non-fused) path
        return torch.optim.AdamW(groups, foreach=False, **kw), "AdamW(foreach=False)"


# -------------------------------------------------------------------- benchmark


def train_step(model, opt, inputs, targets):
    opt.zero_grad(set_to_none=True)
    logits = model(inputs)
    loss = Fn.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return float(loss)


def time_steps(a, gdr):
    torch.manual_seed(a.seed)
    model = Peer(a.d_model, a.n_layers, a.n_heads, a.head_dim, a.vocab, a.window, a.swa_every,
                 gdr=gdr, chunk=a.chunk, seed=a.seed)
    opt, opt_name = make_optimizer(model)
    gen = torch.Generator().manual_seed(a.seed + 1)
    data = torch.randint(0, a.vocab, (a.batch, a.seq + 1), generator=gen)
    inputs, targets = data[:, :-1].contiguous(), data[:, 1:].contiguous()
    losses, times, warm = [], [], []
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        losses.append(train_step(model, opt, inputs, targets))
        dt = time.perf_counter() - t0
        (times if i >= a.warmup else warm).append(dt)
    med = sorted(times)[len(times) // 2] if len(times) % 2 else 0.5 * sum(sorted(times)[len(times) // 2 - 1:len(times) // 2 + 1])
    n_params = sum(p.numel() for p in model.parameters())
    return {"tokens_per_s": a.batch * a.seq / med, "step_seconds_median": med, "step_seconds": times, "warmup_seconds": warm,
            "gdr": gdr, "params": n_params, "loss_first": losses[0], "loss_last": losses[-1],
            "optimizer": opt_name}


# -------------------------------------------------------------------- self-test


def rel_err(a, b):
    return float((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-30))


def self_test():
    ok = True
    torch.manual_seed(0)

    def inputs(B, H, T, d, dtype):
        q = torch.randn(B, H, T, d, dtype=torch.float64)
        k = torch.randn(B, H, T, d, dtype=torch.float64)
        q = q / q.norm(dim=-1, keepdim=True) * d ** -0.5
        k = k / k.norm(dim=-1, keepdim=True)
        v = torch.randn(B, H, T, d, dtype=torch.float64)
        g = -torch.rand(B, H, T, dtype=torch.float64) * 0.5
        beta = torch.rand(B, H, T, dtype=torch.float64)
        return [x.to(dtype) for x in (q, k, v, g, beta)]

    # 1. outputs: chunked float32 vs the float64 per-token loop, several chunk sizes / ragged T
    for (B, H, T, d, c) in [(2, 3, 256, 64, 64), (2, 2, 200, 32, 64), (1, 2, 77, 16, 16), (2, 1, 64, 64, 32)]:
        x64 = inputs(B, H, T, d, torch.float64)
        ref = recurrent_gated_delta_rule(*x64)
        out = chunk_gated_delta_rule(*[x.float() for x in x64], chunk=c)
        e = rel_err(out, ref)
        good = e <= 1e-4
        ok &= good
        print(f"chunk fp32 vs loop fp64  B={B} H={H} T={T} d={d} chunk={c}: max rel err {e:.2e} {'ok' if good else 'FAIL'}")
    # 2. gradients of both forms in float64 agree (a random linear functional of o)
    x64 = [x.requires_grad_(True) for x in inputs(2, 2, 100, 16, torch.float64)]
    w = torch.randn(2, 2, 100, 16, dtype=torch.float64)
    gr = torch.autograd.grad((recurrent_gated_delta_rule(*x64) * w).sum(), x64)
    gc = torch.autograd.grad((chunk_gated_delta_rule(*x64, chunk=32) * w).sum(), x64)
    for name, a, b in zip(("dq", "dk", "dv", "dg", "dbeta"), gc, gr):
        e = rel_err(a, b)
        good = e <= 1e-9
        ok &= good
        print(f"grad chunk vs loop fp64 {name}: max rel err {e:.2e} {'ok' if good else 'FAIL'}")
    # 3. the whole model against the independent reference python/hydra_ref.py (float64)
    try:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import hydra_ref
    except Exception as ex:  # pragma: no cover
        print(f"model vs hydra_ref: skipped ({ex})")
        return ok
    C, L, H, d, V, W, T = 64, 4, 2, 32, 256, 48, 100
    model = Peer(C, L, H, d, V, W, seed=3).double()
    with torch.no_grad():  # non-trivial norm gains so their wiring is checked too
        for p in model.parameters():
            if p.dim() == 1 and p.numel() in (C, d):
                p.add_(torch.randn_like(p) * 0.1)
    tokens = torch.randint(0, V, (2, T), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        ours = model(tokens)
        ref = object.__new__(hydra_ref.HydraRef)
        cfg = dict(hydra_ref.DEFAULTS)
        cfg.update(d_model=C, n_layers=L, n_heads=H, head_dim=d, vocab_size=V, window=W)
        ref.cfg, ref.kinds, ref.dtype = cfg, hydra_ref.layer_kinds(cfg), torch.float64
        ref.w = {n: t.detach().clone() for n, t in model.hydra_weights().items()}
        ref._check_shapes()
        for bi in range(2):
            e = rel_err(ours[bi], ref.forward(tokens[bi].tolist())[0])
            good = e <= 1e-10
            ok &= good
            print(f"model logits vs hydra_ref (fp64, seq {bi}, kinds {''.join(model.kinds)}, W={W}): "
                  f"max rel err {e:.2e} {'ok' if good else 'FAIL'}")
    return ok


def main():
    a = ARGS
    torch.set_num_threads(a.threads)
    if a.self_test:
        ok = self_test()
        print("self-test:", "PASS" if ok else "FAIL")
        return 0 if ok else 1
    info = {"torch": torch.__version__, "threads": a.threads, "batch": a.batch, "seq": a.seq,
            "d_model": a.d_model, "n_layers": a.n_layers, "n_heads": a.n_heads, "head_dim": a.head_dim,
            "window": a.window, "chunk": a.chunk, "blas_env": {v: os.environ.get(v) for v in
                                                             ("BLIS_ARCH_TYPE", "OPENBLAS_CORETYPE")}}
    if a.gdr == "compare":
        res = {f: time_steps(a, f) for f in ("chunk", "recurrent")}
        best = min(res, key=lambda f: res[f]["step_seconds_median"])
        out = dict(res[best])
        out.update(info)
        out["compare"] = {f: {"tokens_per_s": r["tokens_per_s"], "step_seconds_median": r["step_seconds_median"]}
                          for f, r in res.items()}
    else:
        out = time_steps(a, a.gdr)
        out.update(info)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

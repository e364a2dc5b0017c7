#!/usr/bin/env python3
"""hydra_ref.py -- an independent PyTorch reference of the HydraLM model (DESIGN.md §2).

It reads a safetensors checkpoint written by libhydralm (parsed here with
struct + json, no `safetensors` package needed), rebuilds the model from the
config stored in the header, and computes for one token sequence:

  * logits [T, V]
  * the final recurrent state S [H, dv, dk] of every Gated DeltaNet layer
    (S[h, i, j]: i over the value dim, j over the key dim; p = S k).

Everything is written for reading, not speed: whole-sequence matmuls for the
projections, explicit loops over conv taps and over time for the recurrence.

CLI (used by tests/test_torch_reference.c):

  python3 python/hydra_ref.py --model M.safetensors --tokens IN.bin --out OUT.bin [--dtype float64]
  python3 python/hydra_ref.py --grads --model M --tokens IN.bin --targets TG.bin [--mask MASK.bin]
          --batch B --out OUT.bin --dtype float64     (used by tests/test_grad_torch.c)

IN.bin is little-endian int32 token ids. OUT.bin is little-endian float32:
logits [T*V] followed by, for each DeltaNet layer in order, its final S [H*dv*dk].
With --grads, IN.bin holds B sequences [B*T], TG.bin int32 targets [B*T], MASK.bin
uint8 [B*T]; OUT.bin is little-endian float64: the mean cross-entropy over scored
positions, then the gradient of every parameter tensor in the C table order.

Shapes: T tokens, C d_model, H heads, d = dk = dv head dim, V vocab,
F SwiGLU hidden, K conv width, W attention window (0 = unbounded).
"""
import argparse
import json
import math
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as Fn

# ----------------------------------------------------------------- checkpoint

_DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16}


def load_safetensors(path):
    """Returns (tensors: dict name -> float64 numpy array, metadata: dict)."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        raise ValueError(f"{path}: header length {n} runs past the end of the file")
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = memoryview(blob)[8 + n:]
    meta = header.pop("__metadata__", {}) or {}
    tensors = {}
    for name, e in header.items():
        begin, end = e["data_offsets"]
        shape = tuple(e["shape"])
        if e["dtype"] == "BF16":  # bfloat16 = top half of a float32
            raw = np.frombuffer(data[begin:end], dtype="<u2").astype(np.uint32) << 16
            arr = raw.view(np.float32)
        elif e["dtype"] in _DTYPES:
            arr = np.frombuffer(data[begin:end], dtype=np.dtype(_DTYPES[e["dtype"]]).newbyteorder("<"))
        else:
            raise ValueError(f"{path}: tensor {name}: unsupported dtype {e['dtype']}")
        if arr.size != math.prod(shape):
            raise ValueError(f"{path}: tensor {name}: {arr.size} values for shape {shape}")
        tensors[name] = arr.reshape(shape).astype(np.float64)
    return tensors, meta


# --------------------------------------------------------------------- config

DEFAULTS = dict(d_model=768, n_layers=12, n_heads=12, head_dim=64, vocab_size=256,
                swa_every=4, pattern="", window=512, conv_width=4, mlp_multiple=64,
                norm_eps=1e-5, l2_eps=1e-6, tie_embeddings=1, rope_base=10000.0)


def layer_kinds(cfg):
    """'D' Gated DeltaNet, 'S' sliding-window attention, 'A' full attention."""
    L, pattern = cfg["n_layers"], cfg["pattern"]
    if pattern:  # an explicit pattern overrides swa_every; a short one repeats
        return [pattern[i % len(pattern)] for i in range(L)]
    e = cfg["swa_every"]
    return ["S" if e > 0 and (i + 1) % e == 0 else "D" for i in range(L)]


def head_dim(cfg):
    return cfg["head_dim"] if cfg["head_dim"] > 0 else cfg["d_model"] // cfg["n_heads"]


def mlp_hidden(cfg):
    """F = round_up(ceil(8C/3), mlp_multiple)."""
    m = max(cfg["mlp_multiple"], 1)
    f = -(-8 * cfg["d_model"] // 3)
    return -(-f // m) * m


# ------------------------------------------------------------------------ ops

def rms_norm(x, w, eps):
    """y = x / sqrt(mean(x^2) + eps) * w over the last dim."""
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def l2_norm(x, eps):
    """x / sqrt(sum(x^2) + eps) over the last dim."""
    return x * torch.rsqrt(x.pow(2).sum(-1, keepdim=True) + eps)


def causal_conv(x, w):
    """Depthwise causal conv, no bias. x [T, ch], w [ch, K]:
    y_t[c] = sum_j w[c, j] * x_{t-K+1+j}[c], zeros before t = 0."""
    T, K = x.shape[0], w.shape[1]
    xp = torch.cat([x.new_zeros(K - 1, x.shape[1]), x])  # [T+K-1, ch], xp[t+j] = x[t-K+1+j]
    return sum(w[:, j] * xp[j:j + T] for j in range(K))


def rope(x, base):
    """Split-half RoPE on x [T, H, d] at absolute positions 0..T-1.
    Angles pos * base^(-2i/d) are computed in float64."""
    T, d = x.shape[0], x.shape[-1]
    half = d // 2
    pos = torch.arange(T, dtype=torch.float64)
    inv_freq = float(base) ** (-2.0 * torch.arange(half, dtype=torch.float64) / d)
    ang = pos[:, None] * inv_freq[None, :]               # [T, half]
    cos = torch.cos(ang).to(x.dtype)[:, None, :]         # [T, 1, half]
    sin = torch.sin(ang).to(x.dtype)[:, None, :]
    a, b = x[..., :half], x[..., half:]
    return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)


# ---------------------------------------------------------------------- mixers

def gated_deltanet(x, p, cfg):
    """x [T, C] (already normed) -> (y [T, C], final S [H, dv, dk])."""
    T = x.shape[0]
    H, d = cfg["n_heads"], head_dim(cfg)
    q = Fn.silu(causal_conv(x @ p["q_proj.weight"].T, p["q_conv.weight"]))  # [T, H*d]
    k = Fn.silu(causal_conv(x @ p["k_proj.weight"].T, p["k_conv.weight"]))
    v = Fn.silu(causal_conv(x @ p["v_proj.weight"].T, p["v_conv.weight"]))
    q = l2_norm(q.view(T, H, d), cfg["l2_eps"]) * d ** -0.5               # [T, H, dk]
    k = l2_norm(k.view(T, H, d), cfg["l2_eps"])                           # [T, H, dk]
    v = v.view(T, H, d)                                                   # [T, H, dv]
    beta = torch.sigmoid(x @ p["b_proj.weight"].T)                        # [T, H]
    g = -torch.exp(p["A_log"]) * Fn.softplus(x @ p["a_proj.weight"].T + p["dt_bias"])  # [T, H]
    alpha = torch.exp(g)

    S = x.new_zeros(H, d, d)                                              # [H, dv, dk]
    o = x.new_zeros(T, H, d)                                              # [T, H, dv]
    for t in range(T):
        S = alpha[t, :, None, None] * S                                   # S' = alpha S
        pred = torch.einsum("hij,hj->hi", S, k[t])                        # p = S' k
        u = beta[t, :, None] * (v[t] - pred)                              # u = beta (v - p)
        S = S + u[:, :, None] * k[t][:, None, :]                          # S = S' + u k^T
        o[t] = torch.einsum("hij,hj->hi", S, q[t])                        # o = S q

    gate = Fn.silu(x @ p["g_proj.weight"].T).view(T, H, d)
    y = rms_norm(o, p["o_norm.weight"], cfg["norm_eps"]) * gate           # norm over dv per head
    return y.reshape(T, H * d) @ p["o_proj.weight"].T, S


def attention(x, p, cfg, window):
    """Causal softmax attention with RoPE; query t sees keys max(0, t-W+1)..t
    (W = 0: all keys 0..t). x [T, C] -> [T, C]."""
    T = x.shape[0]
    H, d = cfg["n_heads"], head_dim(cfg)
    q = rope((x @ p["q_proj.weight"].T).view(T, H, d), cfg["rope_base"])
    k = rope((x @ p["k_proj.weight"].T).view(T, H, d), cfg["rope_base"])
    v = (x @ p["v_proj.weight"].T).view(T, H, d)
    scores = torch.einsum("thd,shd->hts", q, k) * d ** -0.5               # [H, Tq, Tk]
    tq = torch.arange(T)[:, None]
    tk = torch.arange(T)[None, :]
    visible = tk <= tq
    if window > 0:
        visible &= tk >= tq - window + 1
    scores = scores.masked_fill(~visible, float("-inf"))
    o = torch.einsum("hts,shd->thd", torch.softmax(scores, dim=-1), v)    # [T, H, d]
    return o.reshape(T, H * d) @ p["o_proj.weight"].T


def swiglu(x, p):
    return (Fn.silu(x @ p["gate_proj.weight"].T) * (x @ p["up_proj.weight"].T)) @ p["down_proj.weight"].T


# ----------------------------------------------------------------------- model

class HydraRef:
    def __init__(self, path, dtype=torch.float32):
        arrays, meta = load_safetensors(path)
        if "hydralm.config" not in meta:
            raise ValueError(f"{path}: no hydralm.config in __metadata__")
        cfg = dict(DEFAULTS)
        cfg.update(json.loads(meta["hydralm.config"]))
        self.cfg = cfg
        self.kinds = layer_kinds(cfg)
        self.dtype = dtype
        self.w = {name: torch.from_numpy(a).to(dtype) for name, a in arrays.items()}
        self._check_shapes()

    def _check_shapes(self):
        c = self.cfg
        C, H, d, V, F, K = c["d_model"], c["n_heads"], head_dim(c), c["vocab_size"], mlp_hidden(c), c["conv_width"]
        want = {"embed.weight": (V, C), "norm_f.weight": (C,)}
        for i, kind in enumerate(self.kinds):
            b = f"blocks.{i}."
            want.update({b + "norm1.weight": (C,), b + "norm2.weight": (C,),
                         b + "mlp.gate_proj.weight": (F, C), b + "mlp.up_proj.weight": (F, C),
                         b + "mlp.down_proj.weight": (C, F)})
            if kind == "D":
                g = b + "gdn."
                want.update({g + n: (H * d, C) for n in ("q_proj.weight", "k_proj.weight", "v_proj.weight", "g_proj.weight")})
                want.update({g + "a_proj.weight": (H, C), g + "b_proj.weight": (H, C), g + "A_log": (H,),
                             g + "dt_bias": (H,), g + "o_norm.weight": (d,), g + "o_proj.weight": (C, H * d)})
                want.update({g + n: (H * d, K) for n in ("q_conv.weight", "k_conv.weight", "v_conv.weight")})
            else:
                a = b + "attn."
                want.update({a + n: (H * d, C) for n in ("q_proj.weight", "k_proj.weight", "v_proj.weight")})
                want[a + "o_proj.weight"] = (C, H * d)
        if not c["tie_embeddings"]:
            want["lm_head.weight"] = (V, C)
        for name, shape in want.items():
            if name not in self.w:
                raise ValueError(f"checkpoint lacks tensor {name}")
            if tuple(self.w[name].shape) != shape:
                raise ValueError(f"tensor {name}: shape {tuple(self.w[name].shape)}, expected {shape}")

    @torch.no_grad()
    def forward(self, tokens):
        """tokens: sequence of ints -> (logits [T, V], [S [H, dv, dk] per DeltaNet layer])."""
        return self.forward_graph(tokens)

    def forward_graph(self, tokens):
        """forward() with autograd enabled (for --grads)."""
        c = self.cfg
        tokens = torch.as_tensor(list(tokens), dtype=torch.long)
        if tokens.numel() == 0 or tokens.min() < 0 or tokens.max() >= c["vocab_size"]:
            raise ValueError("tokens must be a non-empty sequence of ids in [0, vocab_size)")
        x = self.w["embed.weight"][tokens]                                 # [T, C]
        states = []
        for i, kind in enumerate(self.kinds):
            b = f"blocks.{i}."
            h = rms_norm(x, self.w[b + "norm1.weight"], c["norm_eps"])
            if kind == "D":
                y, S = gated_deltanet(h, self._sub(b + "gdn."), c)
                states.append(S)
            else:
                y = attention(h, self._sub(b + "attn."), c, c["window"] if kind == "S" else 0)
            x = x + y
            x = x + swiglu(rms_norm(x, self.w[b + "norm2.weight"], c["norm_eps"]), self._sub(b + "mlp."))
        h = rms_norm(x, self.w["norm_f.weight"], c["norm_eps"])
        head = self.w.get("lm_head.weight", self.w["embed.weight"])        # tied unless lm_head exists
        return h @ head.T, states

    def _sub(self, prefix):
        return {n[len(prefix):]: t for n, t in self.w.items() if n.startswith(prefix)}

    def param_order(self):
        """Tensor names in the C parameter-table order (src/model/params.c)."""
        names = ["embed.weight"]
        for i, kind in enumerate(self.kinds):
            b = f"blocks.{i}."
            names.append(b + "norm1.weight")
            if kind == "D":
                names += [b + "gdn." + n for n in (
                    "q_proj.weight", "k_proj.weight", "v_proj.weight", "g_proj.weight", "a_proj.weight",
                    "b_proj.weight", "A_log", "dt_bias", "q_conv.weight", "k_conv.weight", "v_conv.weight",
                    "o_norm.weight", "o_proj.weight")]
            else:
                names += [b + "attn." + n for n in ("q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight")]
            names += [b + "norm2.weight"] + [b + "mlp." + n for n in ("gate_proj.weight", "up_proj.weight", "down_proj.weight")]
        names.append("norm_f.weight")
        if not self.cfg["tie_embeddings"]:
            names.append("lm_head.weight")
        return names

    def loss_and_grads(self, tokens, targets, mask):
        """tokens, targets: [B, T] ints; mask: [B, T] (1 = scored) or None.
        Returns (mean cross-entropy over scored positions, {name: gradient}) by
        torch autograd; every sequence starts from an empty state. The tied
        head shares embed.weight, so its gradient includes both uses."""
        names = self.param_order()
        for n in names:
            self.w[n].requires_grad_(True)
            self.w[n].grad = None
        tokens, targets = np.asarray(tokens), np.asarray(targets)
        mask = np.ones(tokens.shape, dtype=bool) if mask is None else np.asarray(mask).astype(bool)
        n_scored = int(mask.sum())
        total = self.w["embed.weight"].new_zeros(())
        for b in range(tokens.shape[0]):
            logits, _ = self.forward_graph(tokens[b].tolist())                   # [T, V]
            logp = torch.log_softmax(logits, dim=-1)
            tg = torch.as_tensor(targets[b].astype(np.int64).clip(0, logits.shape[1] - 1))
            nll = -logp.gather(1, tg[:, None])[:, 0]                            # [T]
            total = total + (nll * torch.as_tensor(mask[b], dtype=nll.dtype)).sum()
        if n_scored == 0:
            return 0.0, {n: torch.zeros_like(self.w[n]) for n in names}
        loss = total / n_scored
        loss.backward()
        grads = {n: (self.w[n].grad if self.w[n].grad is not None else torch.zeros_like(self.w[n])) for n in names}
        for n in names:
            self.w[n].requires_grad_(False)
        return float(loss), grads


# ------------------------------------------------------------------------- CLI

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="safetensors checkpoint written by libhydralm")
    ap.add_argument("--tokens", required=True, help="little-endian int32 token ids")
    ap.add_argument("--out", required=True, help="output: f32 logits [T*V] then S of each DeltaNet layer")
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                    help="compute precision (outputs are always written as float32)")
    ap.add_argument("--grads", action="store_true",
                    help="instead: loss and every parameter gradient (torch autograd) for a batch; "
                         "--tokens holds [B*T] inputs, needs --targets, --batch, optional --mask; "
                         "OUT.bin is float64: loss, then each gradient in the C parameter-table order")
    ap.add_argument("--targets", help="--grads: little-endian int32 targets [B*T]")
    ap.add_argument("--mask", help="--grads: uint8 mask [B*T], 1 = scored (default: all)")
    ap.add_argument("--batch", type=int, default=1, help="--grads: B (sequences in --tokens)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    model = HydraRef(args.model, getattr(torch, args.dtype))
    tokens = np.fromfile(args.tokens, dtype="<i4")
    if args.grads:
        if not args.targets:
            ap.error("--grads needs --targets")
        B = args.batch
        if B < 1 or tokens.size % B:
            ap.error(f"--batch {B} does not divide {tokens.size} tokens")
        targets = np.fromfile(args.targets, dtype="<i4")
        mask = np.fromfile(args.mask, dtype=np.uint8) if args.mask else None
        if targets.size != tokens.size or (mask is not None and mask.size != tokens.size):
            ap.error("--targets/--mask must have as many entries as --tokens")
        shape = (B, tokens.size // B)
        loss, grads = model.loss_and_grads(tokens.reshape(shape), targets.reshape(shape),
                                           None if mask is None else mask.reshape(shape))
        parts = [torch.tensor([loss], dtype=torch.float64)]
        parts += [grads[n].reshape(-1).to(torch.float64) for n in model.param_order()]
        torch.cat(parts).numpy().astype("<f8").tofile(args.out)
        return 0
    logits, states = model.forward(tokens.tolist())
    parts = [logits.reshape(-1)] + [S.reshape(-1) for S in states]
    out = torch.cat(parts).to(torch.float32).numpy().astype("<f4")
    out.tofile(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

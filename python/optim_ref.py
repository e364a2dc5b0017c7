#!/usr/bin/env python3
"""optim_ref.py -- PyTorch reference of one optimizer step of libhydralm (docs/optim.md).

AdamW tensors go through torch.optim.AdamW itself (foreach=False, the
single-tensor formula), with the moments and step count loaded from the input;
the explicit formula is evaluated too and must agree (a self-check).
Muon tensors follow Keller Jordan's formulation, written out:

    buf = mu * buf + g
    d   = g + mu * buf            (Nesterov)   or   d = buf
    O   = NewtonSchulz5(d)        X = d/(|d|_F + 1e-7), transposed if rows > cols,
                                  steps x: A = X X^T; B = b A + c A A; X = a X + B X
    p   = p * (1 - lr_muon * wd)  (decay tensors)
    p   = p - lr_muon * scale * O scale = sqrt(max(1, rows/cols)), or 0.2 sqrt(max(rows, cols))
                                  with --rms-match (then lr_muon = AdamW's lr)

Everything runs in float32 (the precision of the C code) unless --dtype float64.

CLI (used by tests/test_optim.c; one process for several jobs, torch imports once):

  optim_ref.py IN1.bin OUT1.bin [IN2.bin OUT2.bin ...] [--dtype float64]

Exit status 77 when torch or numpy cannot be imported (the test then skips).
Binary files are little-endian; the first int32 of an input says what it is.
step IN:  int32 1, t (1-based AdamW step, for bias correction), nesterov, ns_steps, rms_match,
          n_tensors; float64 lr (AdamW, at this step), muon_lr (at this step), beta1, beta2, eps,
          wd, momentum; then per tensor: int32 rows, cols (0 for 1-D), route (0 AdamW, 1 Muon),
          decay (0/1); float32 p, g, m, v, buf [numel each]
step OUT: per tensor float32 p_new, m_new, v_new, buf_new [numel each] (m, v, buf passed through
          unchanged where the route does not use them)
svd IN:   int32 2, rows, cols; float32 matrix [rows*cols]
svd OUT:  float32 singular values, descending [min(rows, cols)] (float64 SVD)
"""
import argparse
import math
import sys

try:
    import numpy as np
    import torch
except ImportError as e:  # the C test skips on this status
    print(f"optim_ref.py: {e}", file=sys.stderr)
    sys.exit(77)

NS_COEFFS = (3.4445, -4.7750, 2.0315)


def newton_schulz5(G, steps):
    """Keller Jordan's zeropower_via_newtonschulz5, in the dtype of G."""
    a, b, c = NS_COEFFS
    X = G.clone()
    tall = G.size(0) > G.size(1)
    if tall:
        X = X.T
    X = X / (X.norm() + 1e-7)
    for _ in range(steps):
        A = X @ X.T
        B = b * A + c * A @ A
        X = a * X + B @ X
    if tall:
        X = X.T
    return X


class Reader:
    def __init__(self, path):
        self.path, self.blob, self.pos = path, open(path, "rb").read(), 0

    def take(self, dtype, k):
        v = np.frombuffer(self.blob, dtype=dtype, count=k, offset=self.pos).copy()
        self.pos += np.dtype(dtype).itemsize * k
        return v

    def ints(self, k):
        return [int(x) for x in self.take("<i4", k)]

    def done(self):
        if self.pos != len(self.blob):
            raise ValueError(f"{self.path}: {len(self.blob) - self.pos} trailing bytes")


def read_step_input(r):
    """Hyperparameters (argparse-like namespace) and tensors of a step job."""
    t, nesterov, ns_steps, rms_match, n = r.ints(5)
    lr, muon_lr, beta1, beta2, eps, wd, momentum = (float(x) for x in r.take("<f8", 7))
    a = argparse.Namespace(t=t, nesterov=nesterov, ns_steps=ns_steps, rms_match=rms_match, lr=lr,
                           muon_lr=muon_lr, beta1=beta1, beta2=beta2, eps=eps, wd=wd, momentum=momentum)
    tensors = []
    for _ in range(n):
        rows, cols, route, decay = r.ints(4)
        numel = rows * (cols if cols > 0 else 1)
        shape = (rows, cols) if cols > 0 else (rows,)
        arrs = [r.take("<f4", numel).reshape(shape) for _ in range(5)]
        tensors.append(dict(rows=rows, cols=cols, route=route, decay=decay,
                            p=arrs[0], g=arrs[1], m=arrs[2], v=arrs[3], buf=arrs[4]))
    r.done()
    return a, tensors


def adamw_step(tensors, a, dtype):
    """torch.optim.AdamW on the AdamW-routed tensors; two groups (decay / none)."""
    idx = [i for i, t in enumerate(tensors) if t["route"] == 0]
    params = {i: torch.nn.Parameter(torch.tensor(tensors[i]["p"], dtype=dtype)) for i in idx}
    groups = [
        dict(params=[params[i] for i in idx if tensors[i]["decay"]], weight_decay=a.wd),
        dict(params=[params[i] for i in idx if not tensors[i]["decay"]], weight_decay=0.0),
    ]
    groups = [g for g in groups if g["params"]]
    if not groups:
        return {}
    opt = torch.optim.AdamW(groups, lr=a.lr, betas=(a.beta1, a.beta2), eps=a.eps, foreach=False)
    for i in idx:
        p = params[i]
        p.grad = torch.tensor(tensors[i]["g"], dtype=dtype)
        opt.state[p] = dict(step=torch.tensor(float(a.t - 1)),
                            exp_avg=torch.tensor(tensors[i]["m"], dtype=dtype),
                            exp_avg_sq=torch.tensor(tensors[i]["v"], dtype=dtype))
    opt.step()
    out = {}
    for i in idx:
        t, p = tensors[i], params[i]
        st = opt.state[p]
        # self-check: the explicit formula of docs/optim.md
        g = torch.tensor(t["g"], dtype=torch.float64)
        m = a.beta1 * torch.tensor(t["m"], dtype=torch.float64) + (1 - a.beta1) * g
        v = a.beta2 * torch.tensor(t["v"], dtype=torch.float64) + (1 - a.beta2) * g * g
        mhat, vhat = m / (1 - a.beta1 ** a.t), v / (1 - a.beta2 ** a.t)
        p0 = torch.tensor(t["p"], dtype=torch.float64)
        wd = a.wd if t["decay"] else 0.0
        pe = p0 - a.lr * wd * p0 - a.lr * mhat / (vhat.sqrt() + a.eps)
        got = p.detach().to(torch.float64)
        err = (got - pe).norm() / max(pe.norm(), 1e-30)
        if err > 1e-5:
            raise RuntimeError(f"torch AdamW and the explicit formula disagree: rel err {err:.3g}")
        out[i] = (p.detach(), st["exp_avg"], st["exp_avg_sq"])
    return out


def muon_step(t, a, dtype):
    p = torch.tensor(t["p"], dtype=dtype)
    g = torch.tensor(t["g"], dtype=dtype)
    buf = torch.tensor(t["buf"], dtype=dtype)
    rows, cols = t["rows"], t["cols"]
    buf = a.momentum * buf + g
    d = g + a.momentum * buf if a.nesterov else buf
    O = newton_schulz5(d, a.ns_steps)
    if a.rms_match:
        lr, scale = a.lr, 0.2 * math.sqrt(max(rows, cols))
    else:
        lr, scale = a.muon_lr, math.sqrt(max(1.0, rows / cols))
    if t["decay"]:
        p = p * (1 - lr * a.wd)
    p = p - lr * scale * O
    return p, buf


def run_step(r, out, dtype):
    a, tensors = read_step_input(r)
    adam = adamw_step(tensors, a, dtype)
    chunks = []
    for i, t in enumerate(tensors):
        m, v, buf = t["m"], t["v"], t["buf"]
        if t["route"] == 0:
            p, m, v = (x.numpy() for x in adam[i])
        elif t["route"] == 1:
            if t["cols"] <= 0:
                raise ValueError(f"tensor {i}: Muon needs a 2-D tensor")
            p, buf = (x.numpy() for x in muon_step(t, a, dtype))
        else:
            raise ValueError(f"tensor {i}: unknown route {t['route']}")
        for x in (p, m, v, buf):
            chunks.append(np.asarray(x, dtype="<f4").ravel())
    np.concatenate(chunks).tofile(out)


def run_svd(r, out):
    rows, cols = r.ints(2)
    X = r.take("<f4", rows * cols).reshape(rows, cols)
    r.done()
    s = torch.linalg.svdvals(torch.tensor(X, dtype=torch.float64)).numpy()
    np.asarray(s, dtype="<f4").tofile(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", help="IN OUT pairs")
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    a = ap.parse_args(argv)
    if len(a.files) % 2:
        ap.error("files come in IN OUT pairs")
    torch.set_num_threads(1)
    dtype = torch.float64 if a.dtype == "float64" else torch.float32
    for inp, out in zip(a.files[0::2], a.files[1::2]):
        r = Reader(inp)
        (kind,) = r.ints(1)
        if kind == 1:
            run_step(r, out, dtype)
        elif kind == 2:
            run_svd(r, out)
        else:
            raise ValueError(f"{inp}: unknown job kind {kind}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

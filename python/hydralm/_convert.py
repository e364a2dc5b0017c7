"""_convert.py — token ids and logits between Python and C.

Token ids come in as a list/tuple/range of ints, bytes (each byte one id), a
str (its UTF-8 bytes: the byte-level vocabulary), a NumPy integer array or a
torch integer tensor; outputs follow the input's kind (torch in -> torch out,
NumPy in -> NumPy out, otherwise lists). Wrong types raise TypeError, values
that cannot be 32-bit ids ValueError; the library itself checks the
vocabulary range and raises ValueError with its message.
"""
import array
import ctypes as C
import numbers
import sys

from ._lib import I32P, F32P

try:
    import numpy as np
except ImportError:  # NumPy is optional
    np = None

KIND_LIST, KIND_NUMPY, KIND_TORCH = "list", "numpy", "torch"


def _torch():
    return sys.modules.get("torch")


class Ids:
    """A C int32 buffer of token ids (kept alive with its source) and its shape."""

    def __init__(self, buf, n, shape, kind):
        self.buf, self.n, self.shape, self.kind = buf, n, shape, kind

    def ptr(self):
        if self.n == 0:
            return None
        if np is not None and isinstance(self.buf, np.ndarray):
            return self.buf.ctypes.data_as(I32P)
        return C.cast((C.c_int32 * self.n).from_buffer(self.buf), I32P)


def _from_numpy(a, what, ndims, kind):
    if a.dtype.kind not in "iu":
        raise TypeError("%s: token ids must be integers, got an array of dtype %s" % (what, a.dtype))
    if a.ndim not in ndims:
        raise ValueError("%s: expected a %s array of token ids, got shape %s" %
                         (what, " or ".join("%d-D" % d for d in ndims), a.shape))
    if a.size and (a.min() < -2**31 or a.max() >= 2**31):
        raise ValueError("%s: token id out of the 32-bit range" % what)
    a = np.ascontiguousarray(a, dtype=np.int32)
    return Ids(a, a.size, a.shape, kind)


def as_ids(x, what="tokens", ndims=(1,)):
    """Convert x to an Ids buffer (see the module comment)."""
    if x is None:
        raise TypeError("%s: expected token ids, got None" % what)
    torch = _torch()
    if torch is not None and isinstance(x, torch.Tensor):
        if x.dtype.is_floating_point or x.dtype.is_complex or x.dtype == torch.bool:
            raise TypeError("%s: token ids must be integers, got a tensor of dtype %s" % (what, x.dtype))
        x = x.detach().cpu()
        if np is not None:
            return _from_numpy(x.numpy(), what, ndims, KIND_TORCH)
        ids = as_ids(x.tolist(), what, ndims)
        ids.kind = KIND_TORCH
        return ids
    if np is not None and isinstance(x, np.ndarray):
        return _from_numpy(x, what, ndims, KIND_NUMPY)
    if isinstance(x, str):
        x = x.encode("utf-8")
    if isinstance(x, (bytes, bytearray, memoryview)):
        return Ids(array.array("i", list(bytes(x))), len(x), (len(x),), KIND_LIST)
    if isinstance(x, (list, tuple, range)):
        if len(x) and all(isinstance(r, (list, tuple)) for r in x):  # [B][T]
            if 2 not in ndims:
                raise ValueError("%s: expected a flat sequence of token ids" % what)
            T = len(x[0])
            if any(len(r) != T for r in x):
                raise ValueError("%s: rows of different lengths" % what)
            flat = [v for r in x for v in r]
            ids = as_ids(flat, what)
            ids.shape = (len(x), T)
            return ids
        for v in x:
            if isinstance(v, bool) or not isinstance(v, numbers.Integral):
                raise TypeError("%s: token ids must be integers, got %s" % (what, type(v).__name__))
        try:
            buf = array.array("i", [int(v) for v in x])
        except OverflowError:
            raise ValueError("%s: token id out of the 32-bit range" % what) from None
        return Ids(buf, len(buf), (len(buf),), KIND_LIST)
    raise TypeError("%s: expected token ids (list of ints, bytes, str, NumPy or torch integer array), got %s" %
                    (what, type(x).__name__))


def ids_out(buf, n, kind):
    """The first n ids of a C int32 buffer, in the caller's kind."""
    vals = list(buf[:n])
    if kind == KIND_NUMPY and np is not None:
        return np.array(vals, dtype=np.int32)
    if kind == KIND_TORCH:
        return _torch().tensor(vals, dtype=_torch().int64)
    return vals


class Floats:
    """A float32 output buffer of a given shape: a NumPy array when NumPy is
    present, else an array.array (returned as nested lists)."""

    def __init__(self, shape):
        self.shape = tuple(shape)
        n = 1
        for d in self.shape:
            n *= d
        self.n = n
        self.a = np.empty(self.shape, dtype=np.float32) if np is not None else array.array("f", bytes(4 * n))

    def ptr(self):
        if np is not None:
            return self.a.ctypes.data_as(F32P)
        return C.cast((C.c_float * self.n).from_buffer(self.a), F32P)

    def result(self, kind):
        if np is not None:
            return _torch().from_numpy(self.a) if kind == KIND_TORCH else self.a
        vals = list(self.a)
        for d in reversed(self.shape[1:]):
            vals = [vals[i:i + d] for i in range(0, len(vals), d)]
        return _torch().tensor(vals) if kind == KIND_TORCH else vals

"""_gen.py — sampling options and the token callback shared by
HydraLM.generate, StreamingEngine.extend_and_generate and
speculative_generate."""
import ctypes as C
import numbers

from . import _lib
from ._convert import as_ids, ids_out


def _number(name, v, kind):
    if isinstance(v, bool) or not isinstance(v, numbers.Real if kind is float else numbers.Integral):
        raise TypeError("%s must be %s, got %s" % (name, "a number" if kind is float else "an int",
                                                  type(v).__name__))
    return kind(v)


def fill_sampling(o, max_new_tokens, temperature, top_k, top_p, seed, stop_tokens):
    """Fill the common fields of a hydra_gen_opts / hydra_spec_opts (the
    library validates ranges and raises ValueError with its message)."""
    o.max_new_tokens = max(-1, min(_number("max_new_tokens", max_new_tokens, int), 2**31 - 1))
    o.sample.temperature = _number("temperature", temperature, float)
    o.sample.top_k = max(-1, min(_number("top_k", top_k, int), 2**31 - 1))
    o.sample.top_p = _number("top_p", top_p, float)
    seed = _number("seed", seed, int)
    if not 0 <= seed < 2**64:
        raise ValueError("seed must be in [0, 2**64)")
    o.seed = seed
    stops = [] if stop_tokens is None else list(stop_tokens)
    if len(stops) > 8:
        raise ValueError("at most 8 stop tokens (got %d)" % len(stops))
    for i, t in enumerate(stops):
        t = _number("stop_tokens[%d]" % i, t, int)
        if not -2**31 <= t < 2**31:
            raise ValueError("stop token %d is out of the 32-bit range" % t)
        o.stop_tokens[i] = t
    o.n_stop_tokens = len(stops)
    if o.max_new_tokens < 1:
        raise ValueError("max_new_tokens must be >= 1 (got %d)" % max_new_tokens)


class TokenCallback:
    """Wraps a Python on_token(token) -> bool (True stops) for the C library.
    An exception in the callback stops generation and is re-raised after the
    C call returns (ctypes would otherwise print and swallow it)."""

    def __init__(self, fn):
        if fn is not None and not callable(fn):
            raise TypeError("on_token must be callable")
        self.fn, self.error = fn, None
        self.c = _lib.TOKEN_CB(self._call) if fn is not None else _lib.TOKEN_CB()

    def _call(self, token, user):
        try:
            return 1 if self.fn(token) else 0
        except BaseException as e:
            self.error = e
            return 1

    def reraise(self):
        if self.error is not None:
            raise self.error


class Generation:
    """One generation call's C arguments: the prompt ids, the filled options
    struct (hydra_gen_opts or hydra_spec_opts) with its token callback, and the
    output buffer; result() gives the tokens (re-raising a callback's error)."""

    def __init__(self, opts, prompt, what, max_new_tokens, temperature, top_k, top_p, seed, stop_tokens, on_token):
        self.ids = as_ids(prompt, what)
        fill_sampling(opts, max_new_tokens, temperature, top_k, top_p, seed, stop_tokens)
        self.cb = TokenCallback(on_token)
        opts.on_token = self.cb.c
        self.opts, self.cap = opts, opts.max_new_tokens
        self.out, self.n = (C.c_int32 * self.cap)(), C.c_size_t()

    def result(self):
        self.cb.reraise()
        return ids_out(self.out, self.n.value, self.ids.kind)

"""spec.py — speculative decoding with the target's exact distribution
(hydra_spec_generate)."""
import ctypes as C
import dataclasses

from ._convert import as_ids, ids_out
from ._gen import TokenCallback, fill_sampling
from ._lib import SpecStats, check, lib, run_cancellable
from .model import HydraLM


@dataclasses.dataclass
class SpecOutput:
    tokens: list
    stats: dict  # hydra_spec_stats: rounds, proposed, accepted, acceptance_rate, alpha, ...


def speculative_generate(target, draft, prompt_ids, k=4, max_new_tokens=128, temperature=1.0, top_k=0, top_p=1.0,
                         seed=0, stop_tokens=(), min_draft_prob=0.0, on_token=None):
    """The draft proposes k tokens a round, the target verifies them in one
    forward; the output has exactly the distribution of target.generate with
    the same options (greedy: the same tokens). Returns SpecOutput(tokens, stats)."""
    for name, m in (("target", target), ("draft", draft)):
        if not isinstance(m, HydraLM):
            raise TypeError("speculative_generate: %s must be a HydraLM, got %s" % (name, type(m).__name__))
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError("k must be an int")
    t = as_ids(prompt_ids, "speculative_generate: prompt_ids")
    o = lib.hydra_spec_opts_default()
    fill_sampling(o, max_new_tokens, temperature, top_k, top_p, seed, stop_tokens)
    o.k = max(-1, min(k, 2**31 - 1))
    o.min_draft_prob = float(min_draft_prob)
    cb = TokenCallback(on_token)
    o.on_token = cb.c
    out, n, st = (C.c_int32 * o.max_new_tokens)(), C.c_size_t(), SpecStats()
    with target._use() as th, draft._use() as dh:
        run_cancellable(lambda: check(lib.hydra_spec_generate(th, dh, t.ptr(), t.n, C.byref(o), out,
                                                              o.max_new_tokens, C.byref(n), C.byref(st))))
    cb.reraise()
    return SpecOutput(ids_out(out, n.value, t.kind), {f: getattr(st, f) for f, _ in SpecStats._fields_})

"""spec.py — speculative decoding with the target's exact distribution
(hydra_spec_generate)."""
import ctypes as C
import dataclasses

from ._gen import Generation
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
    o = lib.hydra_spec_opts_default()
    o.k = max(-1, min(k, 2**31 - 1))
    o.min_draft_prob = float(min_draft_prob)
    g = Generation(o, prompt_ids, "speculative_generate: prompt_ids", max_new_tokens, temperature, top_k, top_p, seed,
                   stop_tokens, on_token)
    st = SpecStats()
    with target._use() as th, draft._use() as dh:
        run_cancellable(lambda: check(lib.hydra_spec_generate(th, dh, g.ids.ptr(), g.ids.n, C.byref(o), g.out, g.cap,
                                                              C.byref(g.n), C.byref(st))))
    return SpecOutput(g.result(), {f: getattr(st, f) for f, _ in SpecStats._fields_})

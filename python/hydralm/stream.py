"""stream.py — StreamingEngine: an unbounded token stream at constant memory
(hydra_stream_*), and its session state files."""
import ctypes as C
import dataclasses

from ._convert import Floats, as_ids
from ._gen import Generation
from ._handle import Owner
from ._lib import StreamStats as _CStats, check, lib, run_cancellable
from .model import HydraLM, check_device, fspath

_DTYPES = {"f32": 0, "float32": 0, "bf16": 1, "bfloat16": 1}


@dataclasses.dataclass
class StreamStats:
    tokens: int            # tokens processed by this engine since create/reset (fed + generated)
    chunks: int            # forward calls made
    position: int          # absolute position of the state (includes a loaded session)
    state_bytes: int       # bytes of the engine's state now
    peak_state_bytes: int  # largest state_bytes seen since create/reset
    seconds: float         # wall time inside feed / extend_and_generate
    tokens_per_s: float


@dataclasses.dataclass
class StreamOutput:
    """What extend_and_generate returns: the generated tokens and the engine's
    counters after them."""
    tokens: list
    tokens_processed: int
    peak_state_bytes: int
    state_bytes: int
    position: int


class StreamingEngine(Owner):
    """StreamingEngine(model, dtype="f32"|"bf16", chunk=512). Keeps the model
    alive while it lives. feed() any number of tokens in any split (same state
    as one forward); extend_and_generate() continues the stream."""

    _what = "StreamingEngine"

    def __init__(self, model, dtype="f32", chunk=512, device="cpu"):
        if not isinstance(model, HydraLM):
            raise TypeError("StreamingEngine(model): expected a HydraLM, got %s" % type(model).__name__)
        device = check_device(device)
        if device != model.device:
            model.to(device)
        if dtype not in _DTYPES:
            raise ValueError("dtype must be 'f32' or 'bf16', got %r" % (dtype,))
        if isinstance(chunk, bool) or not isinstance(chunk, int):
            raise TypeError("chunk must be an int")
        o = lib.hydra_stream_opts_default()
        o.chunk, o.weights = max(-1, min(chunk, 2**31 - 1)), _DTYPES[dtype]
        h = C.c_void_p()
        with model._use() as mh:
            check(lib.hydra_stream_create(mh, C.byref(o), C.byref(h)))
        super().__init__(h.value, lib.hydra_stream_free, parents=(model,))
        self.model, self.dtype, self.chunk = model, "bf16" if _DTYPES[dtype] else "f32", o.chunk

    def feed(self, tokens):
        """Consume tokens (ids in [0, V); all are checked first: on a bad id
        nothing is consumed). Returns the number fed. Ctrl-C stops between
        chunks (the chunks already consumed stay consumed)."""
        t = as_ids(tokens, "feed")
        with self._use(exclusive=True) as h:
            run_cancellable(lambda: check(lib.hydra_stream_feed(h, t.ptr(), t.n)))
        return t.n

    def last_logits(self):
        """Logits [V] after the last token consumed."""
        out = Floats((self.model.vocab_size,))
        with self._use(exclusive=True) as h:
            check(lib.hydra_stream_last_logits(h, out.ptr()))
        return out.result(None)

    def extend_and_generate(self, prompt=(), max_new=128, temperature=1.0, top_k=0, top_p=1.0, seed=0,
                            stop_tokens=(), on_token=None):
        """Feed prompt (may be empty once a token has been consumed), then sample
        up to max_new tokens exactly as HydraLM.generate would on the whole
        history; the generated tokens are fed back so the stream continues."""
        g = Generation(lib.hydra_gen_opts_default(), prompt, "extend_and_generate: prompt", max_new, temperature,
                       top_k, top_p, seed, stop_tokens, on_token)
        with self._use(exclusive=True) as h:
            run_cancellable(lambda: check(lib.hydra_stream_extend_and_generate(
                h, g.ids.ptr(), g.ids.n, C.byref(g.opts), g.out, g.cap, C.byref(g.n))))
        tokens, s = g.result(), self.stats()
        return StreamOutput(tokens, s.tokens, s.peak_state_bytes, s.state_bytes, s.position)

    def stats(self):
        st = _CStats()
        with self._use() as h:
            check(lib.hydra_stream_get_stats(h, C.byref(st)))
        return StreamStats(*(getattr(st, f) for f, _ in _CStats._fields_))

    @property
    def position(self):
        return self.stats().position

    def reset(self):
        """Empty state, zero stats, no last logits."""
        with self._use(exclusive=True) as h:
            lib.hydra_stream_reset(h)

    def save_state(self, path):
        """Session state file (the format of `hydra stream --save-state`)."""
        with self._use(exclusive=True) as h:
            check(lib.hydra_stream_save(h, fspath(path, "save_state")))

    def load_state(self, path):
        """Restore a session state file written for this model (by Python or
        `hydra stream --save-state`); feed a token before asking for logits."""
        with self._use(exclusive=True) as h:
            check(lib.hydra_stream_load(h, fspath(path, "load_state")))

    def _state_ptr(self, h):
        return lib.hydra_stream_state(h)

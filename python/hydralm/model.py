"""model.py — HydraLM (a libhydralm model) and State (a sequence's carried
state: DeltaNet matrices, SWA rings, position)."""
import ctypes as C
import os

from . import _lib
from ._convert import Floats, as_ids
from ._gen import Generation
from ._handle import Owner, c_property
from ._lib import check, lib, run_cancellable
from .config import HydraConfig

LOGITS_NONE, LOGITS_LAST, LOGITS_ALL = 0, 1, 2


def fspath(path, what):
    """A filesystem path as bytes for the C API (TypeError otherwise)."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError("%s: expected a path, got %s" % (what, type(path).__name__))
    return os.fsencode(path)


def check_device(device):
    """'cpu' (or None), 'cuda' or 'cuda:N' (a torch.device is accepted too);
    returns the name. Whether the GPU exists is the library's to say, when the
    model moves (HydraDeviceError otherwise)."""
    if device is None:
        return "cpu"
    if not isinstance(device, str) and type(device).__name__ == "device":  # torch.device
        device = str(device)
    if not isinstance(device, str):
        raise TypeError("device must be a str such as 'cpu' or 'cuda', got %s" % type(device).__name__)
    return device


class HydraLM(Owner):
    """A hybrid Gated DeltaNet / sliding-window-attention model held by libhydralm.

    HydraLM(cfg, seed=0) creates a seeded model (the CLI's `hydra init`);
    HydraLM.load(path) reads a safetensors checkpoint written by the CLI or by
    .save(). Inference only from Python's side: .eval() returns the model."""

    _what = "HydraLM"

    def __init__(self, cfg=None, seed=0, device="cpu", _handle=None):
        device = check_device(device)
        if _handle is None:
            cfg = HydraConfig() if cfg is None else cfg
            if not isinstance(cfg, HydraConfig):
                raise TypeError("HydraLM(cfg): expected a HydraConfig, got %s" % type(cfg).__name__)
            if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
                raise ValueError("seed must be an int in [0, 2**64)")
            h = C.c_void_p()
            check(lib.hydra_model_create(C.byref(cfg._to_c()), seed, C.byref(h)))
            _handle = h.value
        super().__init__(_handle, lib.hydra_model_free)
        self.device = "cpu"
        if device != "cpu":
            self.to(device)

    @classmethod
    def load(cls, path, dtype="f32", device="cpu"):
        """Load a checkpoint. dtype "bf16" keeps the matrices in bf16 only (half
        the memory; inference only, ~1e-2 relative logit error); "int8" / "int4"
        quantises them for CPU decode (docs/quantization.md; inference only);
        a quantised checkpoint loads with its own dtype."""
        device = check_device(device)
        loaders = {"f32": lib.hydra_model_load, "float32": lib.hydra_model_load, "bf16": lib.hydra_model_load_bf16,
                   "bfloat16": lib.hydra_model_load_bf16,
                   "int8": lambda p, h: lib.hydra_model_load_quant(p, 1, h),
                   "int4": lambda p, h: lib.hydra_model_load_quant(p, 2, h)}
        if dtype not in loaders:
            raise ValueError("dtype must be 'f32', 'bf16', 'int8' or 'int4', got %r" % (dtype,))
        h = C.c_void_p()
        check(loaders[dtype](fspath(path, "HydraLM.load"), C.byref(h)))
        return cls(_handle=h.value, device=device)

    def save(self, path):
        """Write a safetensors checkpoint (the CLI's format), atomically."""
        with self._use() as h:
            check(lib.hydra_model_save(h, fspath(path, "HydraLM.save")))

    def eval(self):
        """Inference mode (the model has no dropout or training switches): returns self."""
        return self

    def to(self, device, precision="bf16"):
        """Move the model to device ('cpu', 'cuda', 'cuda:N'). On a GPU,
        precision 'bf16' (tensor cores, f32 accumulation and state) or 'f32'
        (tensor cores off, matches the CPU to ~1e-5). States follow on first
        use. Raises HydraDeviceError without a GPU or a CUDA build."""
        device = check_device(device)
        if precision not in _lib.PRECISIONS:
            raise ValueError("precision must be 'bf16' or 'f32', got %r" % (precision,))
        if device != "cpu" and self.quant:
            raise ValueError("a %s-quantised model runs on the CPU only; load the f32 checkpoint for %s"
                             % (self.quant, device))
        with self._use() as h:
            check(lib.hydra_model_to_device(h, device.encode(), _lib.PRECISIONS[precision]))
            self.device = lib.hydra_model_device(h).decode()
        return self

    # ------------------------------------------------------------ properties
    @property
    def config(self):
        with self._use() as h:
            return HydraConfig._from_c(lib.hydra_model_config(h).contents)

    n_params = c_property(lib.hydra_model_n_params)
    fingerprint = c_property(lib.hydra_model_fingerprint,
                             "64-bit FNV-1a hash of the config and every weight (state and bank files carry it).")
    is_bf16 = c_property(lib.hydra_model_is_bf16, convert=bool)
    quant = c_property(lib.hydra_model_quant, convert=lambda q: {0: None, 1: "int8", 2: "int4"}[q])
    weight_bytes = c_property(lib.hydra_model_weight_bytes)
    state_bytes = c_property(lib.hydra_model_state_bytes, "Bytes of one sequence's state (constant, whatever the length).")
    vocab_size = c_property(lambda h: lib.hydra_model_config(h).contents.vocab_size)

    def __repr__(self):
        if self.closed:
            return "HydraLM(closed)"
        c = self.config
        return "HydraLM(d_model=%d, n_layers=%d, layers=%s, vocab=%d, params=%d)" % (
            c.d_model, c.n_layers, c.layer_kinds, c.vocab_size, self.n_params)

    def new_state(self):
        """An empty State for this model (carry context across calls)."""
        return State(self)

    # ---------------------------------------------------------- computation
    def forward(self, ids, state=None, last_only=False):
        """Logits of every position: ids [T] -> [T, V], ids [B, T] -> [B, T, V]
        (each row from an empty state), or only the last position's
        (last_only: [V] / [B, V]). With a State (one sequence), the state is
        read as the incoming context and advanced past ids. NumPy float32 out
        (torch for torch input; nested lists without NumPy)."""
        t = as_ids(ids, "forward", ndims=(1, 2))
        B, T = (1, t.shape[0]) if len(t.shape) == 1 else t.shape
        V = self.vocab_size
        shape = ((B,) if len(t.shape) == 2 else ()) + ((T,) if not last_only else ()) + (V,)
        out = Floats(shape)
        mode = LOGITS_LAST if last_only else LOGITS_ALL
        if state is not None and B != 1:
            raise ValueError("forward: a State carries one sequence; got %d rows" % B)
        with self._use() as h, _maybe_use(state, self) as sh:
            states = (C.c_void_p * 1)(sh) if sh else None
            check(lib.hydra_forward(h, t.ptr(), B, T, states, mode, out.ptr()))
        return out.result(t.kind)

    __call__ = forward

    def generate(self, prompt_ids, max_new_tokens=128, temperature=1.0, top_k=0, top_p=1.0, seed=0,
                 stop_tokens=(), on_token=None, state=None):
        """Prefill the prompt, then sample up to max_new_tokens tokens exactly as
        `hydra generate` does (same seed, same tokens). temperature 0 = greedy.
        Generation stops after a stop token, or when on_token(token) returns
        True. With a State the context continues from it and it ends holding
        prompt + output. Returns the generated ids (list; NumPy/torch for
        NumPy/torch input). Ctrl-C stops it (KeyboardInterrupt)."""
        g = Generation(lib.hydra_gen_opts_default(), prompt_ids, "generate: prompt_ids", max_new_tokens, temperature,
                       top_k, top_p, seed, stop_tokens, on_token)
        with self._use() as h, _maybe_use(state, self) as sh:
            run_cancellable(lambda: check(lib.hydra_generate(h, sh, g.ids.ptr(), g.ids.n, C.byref(g.opts), g.out,
                                                             g.cap, C.byref(g.n))))
        return g.result()

    def generate_iter(self, prompt_ids, **kw):
        """Like generate, but yields each token as it is produced (the C call
        runs on a helper thread; leaving the loop early stops it)."""
        from ._iterate import iterate_tokens
        return iterate_tokens(lambda on_token: self.generate(prompt_ids, on_token=on_token, **kw))


def _maybe_use(state, model):
    """Context manager giving a State's pointer (None without one), checking it
    belongs to model."""
    import contextlib
    if state is None:
        return contextlib.nullcontext(None)
    if not isinstance(state, State):
        raise TypeError("state must be a hydralm.State, got %s" % type(state).__name__)
    if state.model is not model:
        raise ValueError("state was created for another model")
    return state._use(exclusive=True)


class State(Owner):
    """The carried state of one sequence for one model: constant size for
    DeltaNet/SWA layers. Pass it to HydraLM.forward/generate to continue a
    context; save/load uses the session state file format of `hydra stream
    --save-state/--load-state`."""

    _what = "State"

    def __init__(self, model):
        if not isinstance(model, HydraLM):
            raise TypeError("State(model): expected a HydraLM, got %s" % type(model).__name__)
        h = C.c_void_p()
        with model._use() as mh:
            check(lib.hydra_state_create(mh, C.byref(h)))
        super().__init__(h.value, lib.hydra_state_free, parents=(model,))
        self.model = model

    position = c_property(lib.hydra_state_position, "Tokens consumed (the absolute position).")
    nbytes = c_property(lib.hydra_state_bytes)

    def reset(self):
        with self._use(exclusive=True) as h:
            lib.hydra_state_reset(h)

    def save(self, path):
        with self.model._use() as mh, self._use(exclusive=True) as h:
            check(lib.hydra_state_save(h, mh, fspath(path, "State.save")))

    def load(self, path):
        with self.model._use() as mh, self._use(exclusive=True) as h:
            check(lib.hydra_state_load(h, mh, fspath(path, "State.load")))

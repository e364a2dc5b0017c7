"""factbank.py — FactBank: facts run once through the model's recurrence into
a constant-size state, saved to a file and mounted later (hydra_factbank_*)."""
import ctypes as C

from ._convert import as_ids
from ._handle import Owner, c_property
from ._lib import FactbankInfo, check, lib
from .model import HydraLM, State, fspath
from .stream import StreamingEngine

MOUNT_MODES = {"restore": 0, "replace": 1, "add": 2}


class FactBank(Owner):
    """FactBank(model): an empty bank. write() facts (token ids, bytes or
    text), save(path); FactBank.load(model, path) in any later process (also
    files from `hydra factbank write`); mount() into a State, an engine, or a
    model (returning a fresh State with the facts)."""

    _what = "FactBank"

    def __init__(self, model, _handle=None):
        if not isinstance(model, HydraLM):
            raise TypeError("FactBank(model): expected a HydraLM, got %s" % type(model).__name__)
        if _handle is None:
            h = C.c_void_p()
            with model._use() as mh:
                check(lib.hydra_factbank_create(mh, C.byref(h)))
            _handle = h.value
        super().__init__(_handle, lib.hydra_factbank_free, parents=(model,))
        self.model = model

    @classmethod
    def load(cls, model, path):
        """A bank file written for this model (refused, OSError/ValueError, if
        damaged or another model's)."""
        if not isinstance(model, HydraLM):
            raise TypeError("FactBank.load(model, path): expected a HydraLM, got %s" % type(model).__name__)
        h = C.c_void_p()
        with model._use() as mh:
            check(lib.hydra_factbank_load(mh, fspath(path, "FactBank.load"), C.byref(h)))
        return cls(model, _handle=h.value)

    @staticmethod
    def info(path):
        """A bank file's checked header, without a model."""
        i = FactbankInfo()
        check(lib.hydra_factbank_read_info(fspath(path, "FactBank.info"), C.byref(i)))
        d = {f: getattr(i, f) for f, _ in FactbankInfo._fields_}
        d["schedule"] = d["schedule"].decode()
        return d

    def write(self, facts):
        """Append facts (continues where the last write stopped). Returns the tokens written."""
        t = as_ids(facts, "FactBank.write")
        with self._use(exclusive=True) as h:
            check(lib.hydra_factbank_write(h, t.ptr(), t.n))
        return t.n

    def reset(self):
        with self._use(exclusive=True) as h:
            lib.hydra_factbank_reset(h)

    tokens = c_property(lib.hydra_factbank_tokens, "Fact tokens written.")
    nbytes = c_property(lib.hydra_factbank_bytes, "Bytes of the bank (constant: one state).")

    def save(self, path):
        with self._use(exclusive=True) as h:
            check(lib.hydra_factbank_save(h, fspath(path, "FactBank.save")))

    def mount(self, target, mode="restore"):
        """Mount into a State or StreamingEngine of the bank's model (returns
        target), or into the model itself (returns a new State holding the
        facts). mode: "restore" (exactly as if the facts had just been read),
        "replace" (DeltaNet memories only) or "add" (superpose)."""
        if mode not in MOUNT_MODES:
            raise ValueError("mode must be one of %s, got %r" % (", ".join(MOUNT_MODES), mode))
        if isinstance(target, HydraLM):
            state = State(target)
            self.mount(state, mode)
            return state
        if not isinstance(target, (State, StreamingEngine)):
            raise TypeError("mount: expected a State, StreamingEngine or HydraLM, got %s" % type(target).__name__)
        if target.model is not self.model:
            raise ValueError("mount: the target belongs to another model than the bank")
        with self._use() as bh, target._use(exclusive=True) as th:
            live = target._state_ptr(th) if isinstance(target, StreamingEngine) else th
            check(lib.hydra_factbank_mount(bh, live, MOUNT_MODES[mode]))
        return target

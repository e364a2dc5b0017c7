"""config.py — HydraConfig: every field of the C hydra_config, with the C
defaults (hydra_config_default), validated and serialised by the library."""
import ctypes as C
import dataclasses
import json

from . import _lib
from ._lib import lib, check

_C_DEFAULT = lib.hydra_config_default()
_FIELDS = [name for name, _ in _lib.Config._fields_]


def _default_from(c, name):
    v = getattr(c, name)
    if isinstance(v, float):  # a C float: its shortest decimal (1e-05, not 9.999999747378752e-06)
        return float("%.7g" % v)
    return v.decode() if isinstance(v, bytes) else v


def _default(name):
    return _default_from(_C_DEFAULT, name)


@dataclasses.dataclass
class HydraConfig:
    """Model shape. `pattern` (e.g. "DDDS": D Gated DeltaNet, S sliding-window
    attention, A full attention) overrides `swa_every` when set. head_dim 0
    means d_model / n_heads. Defaults: the C defaults (d_model 768, 12 layers,
    12 heads x 64, every 4th layer SWA with a 512-token window, vocab 256)."""

    d_model: int = _default("d_model")
    n_layers: int = _default("n_layers")
    n_heads: int = _default("n_heads")
    head_dim: int = _default("head_dim")
    vocab_size: int = _default("vocab_size")
    swa_every: int = _default("swa_every")
    pattern: str = _default("pattern")
    window: int = _default("window")
    conv_width: int = _default("conv_width")
    mlp_multiple: int = _default("mlp_multiple")
    norm_eps: float = _default("norm_eps")
    l2_eps: float = _default("l2_eps")
    tie_embeddings: int = _default("tie_embeddings")
    init_std: float = _default("init_std")
    rope_base: float = _default("rope_base")
    init_dt_min: float = _default("init_dt_min")
    init_dt_max: float = _default("init_dt_max")

    def _to_c(self):
        c = _lib.Config()
        for name in _FIELDS:
            v = getattr(self, name)
            if name == "pattern":
                if v is None:
                    v = ""
                if not isinstance(v, str):
                    raise TypeError("HydraConfig.pattern must be a str, got %s" % type(v).__name__)
                v = v.encode("ascii", "replace")
                if len(v) > _lib.MAX_LAYERS:
                    raise ValueError("HydraConfig.pattern: at most %d layers" % _lib.MAX_LAYERS)
            elif isinstance(v, bool) or not isinstance(v, (int, float)):
                raise TypeError("HydraConfig.%s must be a number, got %s" % (name, type(v).__name__))
            try:
                setattr(c, name, v)
            except (TypeError, OverflowError) as e:
                raise ValueError("HydraConfig.%s: %s" % (name, e)) from None
        return c

    @classmethod
    def _from_c(cls, c):
        return cls(**{name: _default_from(c, name) for name in _FIELDS})

    def validate(self):
        """Raise ValueError (the library's message names the field) unless valid."""
        check(lib.hydra_config_validate(C.byref(self._to_c())))
        return self

    @property
    def layer_kinds(self):
        """The full layer schedule after pattern / swa_every, e.g. "DDDSDDDS"."""
        c = self._to_c()
        check(lib.hydra_config_validate(C.byref(c)))
        return "".join(lib.hydra_config_layer_kind(C.byref(c), i).decode() for i in range(self.n_layers))

    def to_json(self):
        c, out = self._to_c(), C.c_void_p()
        check(lib.hydra_config_to_json(C.byref(c), C.byref(out)))
        try:
            return C.string_at(out).decode()
        finally:
            lib.hydra_free(out)

    @classmethod
    def from_json(cls, text):
        """Parse a JSON object (a config file's text or a dict); missing keys keep the defaults."""
        if isinstance(text, dict):
            text = json.dumps(text)
        if not isinstance(text, str):
            raise TypeError("HydraConfig.from_json expects a str or dict")
        c = lib.hydra_config_default()
        st = lib.hydra_config_from_json(text.encode(), C.byref(c))
        if st == _lib.ERR_FORMAT:  # malformed text given as an argument: a bad value, not a bad file
            raise _lib.HydraValueError(str(_lib.error_for(st)), st)
        check(st)
        return cls._from_c(c)


"""hydralm — Python binding of libhydralm (a hybrid Gated DeltaNet /
sliding-window-attention language model in C). The library is the product:
this package only converts arguments, owns C objects and maps errors to
exceptions. See docs/python.md."""
from ._lib import Cancelled, HydraDeviceError, HydraError, HydraOSError, HydraValueError, LIBRARY_PATH, lib as _clib
from .config import HydraConfig
from .factbank import FactBank
from .model import HydraLM, State
from .spec import SpecOutput, speculative_generate
from .stream import StreamingEngine, StreamOutput, StreamStats
from .train import StepInfo, TextData, Trainer, train

__version__ = "0.1.0"


def encode(text):
    """Byte-level token ids of a str (UTF-8) or bytes."""
    if isinstance(text, str):
        text = text.encode("utf-8")
    if not isinstance(text, (bytes, bytearray)):
        raise TypeError("encode expects str or bytes")
    return list(text)


def decode(ids):
    """Text of byte-level token ids (invalid UTF-8 replaced)."""
    return bytes(int(i) & 0xFF for i in ids).decode("utf-8", "replace")


def set_num_threads(n):
    _clib.hydra_set_num_threads(int(n))


def get_num_threads():
    return _clib.hydra_get_num_threads()


def blas_info():
    return _clib.hydra_blas_info().decode()


__all__ = ["HydraConfig", "HydraLM", "State", "StreamingEngine", "StreamOutput", "StreamStats", "FactBank",
           "speculative_generate", "SpecOutput", "Trainer", "TextData", "StepInfo", "train", "encode", "decode",
           "set_num_threads", "get_num_threads", "blas_info", "HydraError", "HydraValueError", "HydraOSError", "HydraDeviceError",
           "Cancelled", "LIBRARY_PATH"]

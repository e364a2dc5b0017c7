"""train.py — training through the library's trainer (hydra_trainer_*): byte
text data, AdamW or Muon, schedule, clipping, exact-resume checkpoints."""
import ctypes as C
import dataclasses
import os

from ._handle import Owner
from ._lib import StepInfo as _CStep, TrainOpts, check, lib, run_cancellable
from .model import HydraLM, fspath

OPTIMIZERS = {"adamw": 0, "muon": 1}
DECAYS = {"cosine": 0, "linear": 1, "constant": 2}


@dataclasses.dataclass
class StepInfo:
    step: int         # steps completed, after this one
    loss: float       # training loss of this step's batch
    grad_norm: float  # pre-clip global gradient norm
    lr: float         # AdamW learning rate used
    seconds: float    # wall time of this step
    tokens: int       # scored tokens in this batch


class TextData(Owner):
    """Byte-level text (each byte a token); the last val_fraction is the
    validation split. From a file path, or from bytes / str in memory."""

    _what = "TextData"

    def __init__(self, source, val_fraction=0.1):
        h = C.c_void_p()
        if isinstance(source, str) and not os.path.exists(source) and "\n" in source:
            source = source.encode("utf-8")  # text, not a path
        if isinstance(source, (bytes, bytearray)):
            check(lib.hydra_text_data_from_memory(bytes(source), len(source), float(val_fraction), C.byref(h)))
        else:
            check(lib.hydra_text_data_load(fspath(source, "TextData"), float(val_fraction), C.byref(h)))
        super().__init__(h.value, lib.hydra_text_data_free)

    def size(self, split="train"):
        with self._use() as h:
            return lib.hydra_text_data_size(h, {"train": 0, "val": 1}[split])


def _optim_opts(optimizer, **kw):
    if optimizer not in OPTIMIZERS:
        raise ValueError("optimizer must be 'adamw' or 'muon', got %r" % (optimizer,))
    o = lib.hydra_optim_opts_default(OPTIMIZERS[optimizer])
    for name, v in kw.items():
        if v is None:
            continue
        if name == "decay":
            if v not in DECAYS:
                raise ValueError("decay must be one of %s" % ", ".join(DECAYS))
            v = DECAYS[v]
        if not hasattr(o, name):
            raise TypeError("unknown optimizer option %r" % name)
        try:
            setattr(o, name, v)
        except TypeError as e:
            raise TypeError("optimizer option %s: %s" % (name, e)) from None
    check(lib.hydra_optim_opts_validate(C.byref(o)))
    return o


class Trainer(Owner):
    """Trainer(model, data, batch=16, seq=128, steps=0, optimizer="adamw",
    lr=3e-3, seed=0, ...): data is a TextData, a text file path, or bytes.
    `steps` sets the schedule's length (warmup then decay; 0 holds the peak).
    Further options: warmup_steps, muon_lr, weight_decay, beta1, beta2,
    grad_clip, decay ("cosine"/"linear"/"constant"), min_lr_ratio,
    muon_rms_match. The trainer updates the model in place."""

    _what = "Trainer"

    def __init__(self, model, data, batch=16, seq=128, steps=0, optimizer="adamw", lr=None, seed=0,
                 val_fraction=0.1, _resume=None, **optim):
        if _resume is None and not isinstance(model, HydraLM):
            raise TypeError("Trainer(model, ...): expected a HydraLM, got %s" % type(model).__name__)
        self.data = data if isinstance(data, TextData) else TextData(data, val_fraction)
        with self.data._use() as dh:
            task = lib.hydra_text_data_task(dh)
        if _resume is not None:  # Trainer.resume
            mh, th = C.c_void_p(), C.c_void_p()
            check(lib.hydra_trainer_resume(fspath(_resume, "Trainer.resume"), task, C.byref(mh), C.byref(th)))
            model = HydraLM(_handle=mh.value)
            handle = th.value
        else:
            o = TrainOpts()
            o.optim = _optim_opts(optimizer, lr=lr, total_steps=steps, **optim)
            for name, v in (("batch", batch), ("seq", seq), ("seed", seed)):
                if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**31:
                    raise ValueError("%s must be a non-negative int" % name)
            o.batch, o.seq, o.seed = batch, seq, seed
            h = C.c_void_p()
            with model._use() as mh:
                check(lib.hydra_trainer_create(mh, task, C.byref(o), C.byref(h)))
            handle = h.value
        super().__init__(handle, lib.hydra_trainer_free, parents=(model, self.data))
        self.model = model

    @classmethod
    def resume(cls, directory, data, val_fraction=0.1):
        """Continue a checkpoint written by save() or `hydra train` (the next
        steps equal an uninterrupted run's, bit for bit). The model is .model."""
        return cls(None, data, val_fraction=val_fraction, _resume=directory)

    @property
    def steps_done(self):
        with self._use() as h:
            return lib.hydra_trainer_steps(h)

    def step(self):
        """One optimisation step on a fresh batch."""
        info = _CStep()
        with self._use(exclusive=True) as h:
            run_cancellable(lambda: check(lib.hydra_trainer_step(h, C.byref(info))))
        return StepInfo(*(getattr(info, f) for f, _ in _CStep._fields_))

    def train(self, steps, progress=None, eval_every=0, eval_batches=8):
        """Run `steps` steps; progress(info) is called after each (info.val_loss
        is set on evaluation steps when eval_every > 0). Returns the last
        StepInfo. The loop runs on one helper thread, so Ctrl-C stops it
        between or inside steps (KeyboardInterrupt; finished steps stay done)."""
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError("steps must be a non-negative int")
        if progress is not None and not callable(progress):
            raise TypeError("progress must be callable")
        last = [None]

        def loop():
            info = _CStep()
            for _ in range(steps):
                check(lib.hydra_trainer_step(h, C.byref(info)))
                s = StepInfo(*(getattr(info, f) for f, _ in _CStep._fields_))
                s.val_loss = None
                if eval_every and s.step % eval_every == 0:
                    s.val_loss = self._eval(h, eval_batches)
                last[0] = s
                if progress is not None:
                    progress(s)
            return last[0]

        with self._use(exclusive=True) as h:
            return run_cancellable(loop)

    @staticmethod
    def _eval(h, n_batches):
        loss = C.c_double()
        check(lib.hydra_trainer_eval(h, n_batches, C.byref(loss)))
        return loss.value

    def evaluate(self, n_batches=8):
        """Mean validation loss over n_batches fixed batches."""
        with self._use(exclusive=True) as h:
            return self._eval(h, n_batches)

    def save(self, directory):
        """model.safetensors + trainer.bin in directory (`hydra train`'s layout)."""
        with self._use(exclusive=True) as h:
            check(lib.hydra_trainer_save(h, fspath(directory, "Trainer.save")))


def train(model, data, steps, progress=None, **kw):
    """Train model in place for `steps` steps (schedule over those steps) and
    return the Trainer. kw: Trainer's options."""
    kw.setdefault("steps", steps)
    t = Trainer(model, data, **kw)
    t.train(steps, progress=progress)
    return t

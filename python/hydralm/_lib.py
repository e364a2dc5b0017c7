"""_lib.py — loads libhydralm and declares its C API for ctypes.

Everything the package calls goes through here: the structs mirror the C
headers (include/*.h; python/tests/test_layout.py checks every size against
the compiler's), each function gets argtypes/restype so ctypes converts and
checks arguments, and `check` turns a hydra_status into a Python exception
carrying hydra_last_error().

ctypes.CDLL releases the GIL for the duration of every call, so other Python
threads run while the library works. `run_cancellable` adds Ctrl-C: the call
runs on a helper thread with a cancel flag (hydra_set_cancel_flag); the main
thread waits interruptibly and, on KeyboardInterrupt, raises the flag, lets the
library stop at its next check (HYDRA_ERR_CANCELLED) and re-raises.
"""
import ctypes as C
import os
import queue
import threading

# ----------------------------------------------------------------- library
_HERE = os.path.dirname(os.path.abspath(__file__))


def _candidates():
    env = os.environ.get("HYDRALM_LIBRARY")
    if env:
        yield env
    yield os.path.join(_HERE, "libhydralm.so")  # copied in by `pip install .`
    root = os.path.dirname(os.path.dirname(_HERE))  # python/hydralm -> repository root
    yield os.path.join(root, "build", "libhydralm.so")


# OpenMP waits (docs/threads.md): a short spin before a waiting thread sleeps,
# as the hydra CLI sets it, unless the user chose; libgomp reads it once, when
# the library loads it.
if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["GOMP_SPINCOUNT"] = "2000"


def _load():
    tried = []
    for path in _candidates():
        if os.path.exists(path):
            return C.CDLL(path), path
        tried.append(path)
    raise OSError("libhydralm.so not found (tried %s); build it with ./scripts/build.sh or set "
                  "HYDRALM_LIBRARY" % ", ".join(tried))


lib, LIBRARY_PATH = _load()

# ------------------------------------------------------------------ status
OK, ERR_ARG, ERR_NOMEM, ERR_IO, ERR_FORMAT, ERR_CONFIG, ERR_MISMATCH, ERR_DEVICE, ERR_CANCELLED = range(9)


class HydraError(Exception):
    """A libhydralm call failed; .status is the hydra_status code."""

    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = status


class HydraValueError(HydraError, ValueError):
    """Invalid argument, configuration or mismatched objects."""


class HydraOSError(HydraError, OSError):
    """A file could not be read or written, or its contents are malformed."""


class HydraMemoryError(HydraError, MemoryError):
    """The library could not allocate memory."""


class HydraDeviceError(HydraError, RuntimeError):
    """A GPU call failed, no GPU is visible, or this libhydralm has no GPU backend."""


class Cancelled(HydraError):
    """A long call stopped because its cancel flag was raised (not by Ctrl-C,
    which re-raises KeyboardInterrupt)."""


_EXC = {ERR_ARG: HydraValueError, ERR_CONFIG: HydraValueError, ERR_MISMATCH: HydraValueError,
        ERR_IO: HydraOSError, ERR_FORMAT: HydraOSError, ERR_NOMEM: HydraMemoryError,
        ERR_CANCELLED: Cancelled, ERR_DEVICE: HydraDeviceError}


def error_for(status):
    """The exception for a non-zero status, with this thread's hydra_last_error()."""
    msg = lib.hydra_last_error().decode("utf-8", "replace")
    name = lib.hydra_status_str(status).decode()
    return _EXC.get(status, HydraError)("%s (%s)" % (msg, name) if msg else name, status)


def check(status):
    if status != OK:
        raise error_for(status)


# ----------------------------------------------------------------- structs
MAX_LAYERS = 256
i32, i64, u32, u64, f32, f64, sz = C.c_int32, C.c_int64, C.c_uint32, C.c_uint64, C.c_float, C.c_double, C.c_size_t
P = C.c_void_p


class Config(C.Structure):
    _fields_ = [("d_model", C.c_int), ("n_layers", C.c_int), ("n_heads", C.c_int), ("head_dim", C.c_int),
                ("vocab_size", C.c_int), ("swa_every", C.c_int), ("pattern", C.c_char * (MAX_LAYERS + 1)),
                ("window", C.c_int), ("conv_width", C.c_int), ("mlp_multiple", C.c_int), ("norm_eps", f32),
                ("l2_eps", f32), ("tie_embeddings", C.c_int), ("init_std", f32), ("rope_base", f32),
                ("init_dt_min", f32), ("init_dt_max", f32)]


class SampleOpts(C.Structure):
    _fields_ = [("temperature", f32), ("top_k", C.c_int), ("top_p", f32)]


TOKEN_CB = C.CFUNCTYPE(C.c_int, i32, P)


class GenOpts(C.Structure):
    _fields_ = [("sample", SampleOpts), ("max_new_tokens", C.c_int), ("seed", u64), ("stop_tokens", i32 * 8),
                ("n_stop_tokens", C.c_int), ("on_token", TOKEN_CB), ("user", P)]


class StreamOpts(C.Structure):
    _fields_ = [("chunk", C.c_int), ("weights", C.c_int)]


class StreamStats(C.Structure):
    _fields_ = [("tokens", u64), ("chunks", u64), ("position", u64), ("state_bytes", sz),
                ("peak_state_bytes", sz), ("seconds", f64), ("tokens_per_s", f64)]


class SpecOpts(C.Structure):
    _fields_ = [("k", C.c_int), ("min_draft_prob", f32), ("sample", SampleOpts), ("seed", u64),
                ("max_new_tokens", C.c_int), ("stop_tokens", i32 * 8), ("n_stop_tokens", C.c_int),
                ("on_token", TOKEN_CB), ("user", P)]


class SpecStats(C.Structure):
    _fields_ = [("rounds", u64), ("proposed", u64), ("accepted", u64), ("rejected", u64), ("generated", u64),
                ("acceptance_rate", f64), ("alpha", f64), ("tokens_per_target_forward", f64),
                ("target_forwards", u64), ("draft_steps", u64), ("draft_seconds", f64), ("verify_seconds", f64),
                ("accept_seconds", f64), ("prefill_seconds", f64)]


class OptimOpts(C.Structure):
    _fields_ = [("kind", C.c_int), ("lr", f32), ("beta1", f32), ("beta2", f32), ("eps", f32),
                ("weight_decay", f32), ("muon_lr", f32), ("muon_momentum", f32), ("muon_nesterov", C.c_int),
                ("muon_ns_steps", C.c_int), ("muon_rms_match", C.c_int), ("warmup_steps", C.c_int),
                ("total_steps", C.c_int), ("decay", C.c_int), ("min_lr_ratio", f32), ("grad_clip", f32)]


class TrainOpts(C.Structure):
    _fields_ = [("optim", OptimOpts), ("batch", C.c_int), ("seq", C.c_int), ("seed", u64)]


class StepInfo(C.Structure):
    _fields_ = [("step", i64), ("loss", f64), ("grad_norm", f32), ("lr", f32), ("seconds", f64), ("tokens", i64)]


class Task(C.Structure):
    _fields_ = [("name", C.c_char_p), ("ctx", P), ("min_vocab", C.c_int), ("sample", P)]


class FactbankInfo(C.Structure):
    _fields_ = [("version", u32), ("fingerprint", u64), ("tokens", u64), ("payload_bytes", u64),
                ("file_bytes", u64), ("n_layers", C.c_int), ("n_heads", C.c_int), ("head_dim", C.c_int),
                ("window", C.c_int), ("conv_width", C.c_int), ("schedule", C.c_char * (MAX_LAYERS + 1))]


CLAIMS_MAX, CLAIM_MAX_VALUES, CLAIM_MAX_CURVES, CLAIM_CURVE_POINTS = 16, 64, 12, 40


class ClaimValue(C.Structure):
    _fields_ = [("name", C.c_char * 40), ("value", f64), ("op", C.c_char * 4)]


class ClaimCurve(C.Structure):
    _fields_ = [("name", C.c_char * 64), ("n", C.c_int), ("x", f64 * CLAIM_CURVE_POINTS),
                ("y", f64 * CLAIM_CURVE_POINTS)]


class ClaimResult(C.Structure):
    _fields_ = [("name", C.c_char_p), ("description", C.c_char_p), ("status", C.c_int),
                ("summary", C.c_char * 256), ("seconds", f64),
                ("thresholds", ClaimValue * CLAIM_MAX_VALUES), ("n_thresholds", C.c_int),
                ("values", ClaimValue * CLAIM_MAX_VALUES), ("n_values", C.c_int),
                ("curves", ClaimCurve * CLAIM_MAX_CURVES), ("n_curves", C.c_int),
                ("n_refused", C.c_int), ("nonstandard", C.c_char * 200)]


CLAIMS_PROGRESS = C.CFUNCTYPE(None, C.c_char_p, C.c_char_p, P)
VECBANK_WRITER = C.CFUNCTYPE(C.c_int, C.c_char_p, u64, C.c_int, C.c_int, C.c_int, P)
BANK_WRITER = C.CFUNCTYPE(C.c_int, C.c_char_p, C.POINTER(i32), C.c_int, C.c_char_p, P)


class ClaimsOpts(C.Structure):
    _fields_ = [("budget", C.c_int), ("seed", u64), ("tmp_dir", C.c_char_p), ("progress", CLAIMS_PROGRESS),
                ("progress_user", P), ("device", C.c_char_p), ("lengen_steps", C.c_int), ("lengen_lr", f32),
                ("lengen_eval_len", C.c_int), ("lengen_streams", C.c_int), ("lengen_baseline", C.c_int),
                ("lengen_train_len", C.c_int), ("mqar_steps", C.c_int), ("mqar_size_div", C.c_int),
                ("muon_steps", C.c_int), ("muon_d_model", C.c_int), ("muon_layers", C.c_int), ("muon_seq", C.c_int),
                ("spec_train_steps", C.c_int), ("text_path", C.c_char_p),
                ("stream_tokens", i64), ("stream_chunk", C.c_int), ("stream_win", C.c_int),
                ("stream_test_leak", i64), ("spec_vocab", C.c_int),
                ("spec_tokens", C.c_int), ("spec_variant", C.c_int), ("vec_facts", C.c_int), ("vec_dim", C.c_int),
                ("vec_heads", C.c_int), ("vec_writer", VECBANK_WRITER), ("vec_writer_user", P),
                ("factbank_model", C.c_char_p), ("factbank_pairs", C.c_int), ("factbank_trials", C.c_int),
                ("bank_writer", BANK_WRITER), ("bank_writer_user", P)]


# ---------------------------------------------------------------- functions
I32P, F32P = C.POINTER(i32), C.POINTER(f32)
_S = C.c_int  # hydra_status
_SIGS = {
    # core
    "hydra_last_error": (C.c_char_p, []),
    "hydra_status_str": (C.c_char_p, [C.c_int]),
    "hydra_set_cancel_flag": (None, [C.POINTER(C.c_int)]),
    "hydra_config_default": (Config, []),
    "hydra_config_validate": (_S, [C.POINTER(Config)]),
    "hydra_config_layer_kind": (C.c_char, [C.POINTER(Config), C.c_int]),
    "hydra_config_head_dim": (C.c_int, [C.POINTER(Config)]),
    "hydra_config_mlp_hidden": (C.c_int, [C.POINTER(Config)]),
    "hydra_config_from_json": (_S, [C.c_char_p, C.POINTER(Config)]),
    "hydra_config_to_json": (_S, [C.POINTER(Config), C.POINTER(P)]),
    "hydra_free": (None, [P]),
    "hydra_set_num_threads": (None, [C.c_int]),
    "hydra_get_num_threads": (C.c_int, []),
    "hydra_blas_info": (C.c_char_p, []),
    # model
    "hydra_model_create": (_S, [C.POINTER(Config), u64, C.POINTER(P)]),
    "hydra_model_free": (None, [P]),
    "hydra_model_config": (C.POINTER(Config), [P]),
    "hydra_model_n_params": (sz, [P]),
    "hydra_model_fingerprint": (u64, [P]),
    "hydra_model_save": (_S, [P, C.c_char_p]),
    "hydra_model_load": (_S, [C.c_char_p, C.POINTER(P)]),
    "hydra_model_load_bf16": (_S, [C.c_char_p, C.POINTER(P)]),
    "hydra_model_is_bf16": (C.c_int, [P]),
    "hydra_model_load_quant": (_S, [C.c_char_p, C.c_int, C.POINTER(P)]),
    "hydra_model_quant": (C.c_int, [P]),
    "hydra_model_weight_bytes": (sz, [P]),
    "hydra_model_state_bytes": (sz, [P]),
    "hydra_forward": (_S, [P, I32P, C.c_int, C.c_int, C.POINTER(P), C.c_int, F32P]),
    "hydra_generate": (_S, [P, P, I32P, sz, C.POINTER(GenOpts), I32P, sz, C.POINTER(sz)]),
    "hydra_gen_opts_default": (GenOpts, []),
    # state, stream
    "hydra_state_create": (_S, [P, C.POINTER(P)]),
    "hydra_state_free": (None, [P]),
    "hydra_state_position": (u64, [P]),
    "hydra_state_bytes": (sz, [P]),
    "hydra_state_reset": (None, [P]),
    "hydra_state_save": (_S, [P, P, C.c_char_p]),
    "hydra_state_load": (_S, [P, P, C.c_char_p]),
    "hydra_stream_opts_default": (StreamOpts, []),
    "hydra_stream_create": (_S, [P, C.POINTER(StreamOpts), C.POINTER(P)]),
    "hydra_stream_free": (None, [P]),
    "hydra_stream_feed": (_S, [P, I32P, sz]),
    "hydra_stream_last_logits": (_S, [P, F32P]),
    "hydra_stream_extend_and_generate": (_S, [P, I32P, sz, C.POINTER(GenOpts), I32P, sz, C.POINTER(sz)]),
    "hydra_stream_get_stats": (_S, [P, C.POINTER(StreamStats)]),
    "hydra_stream_state": (P, [P]),
    "hydra_stream_reset": (None, [P]),
    "hydra_stream_save": (_S, [P, C.c_char_p]),
    "hydra_stream_load": (_S, [P, C.c_char_p]),
    # factbank
    "hydra_factbank_create": (_S, [P, C.POINTER(P)]),
    "hydra_factbank_free": (None, [P]),
    "hydra_factbank_write": (_S, [P, I32P, sz]),
    "hydra_factbank_reset": (None, [P]),
    "hydra_factbank_tokens": (u64, [P]),
    "hydra_factbank_bytes": (sz, [P]),
    "hydra_factbank_mount": (_S, [P, P, C.c_int]),
    "hydra_factbank_save": (_S, [P, C.c_char_p]),
    "hydra_factbank_load": (_S, [P, C.c_char_p, C.POINTER(P)]),
    "hydra_factbank_read_info": (_S, [C.c_char_p, C.POINTER(FactbankInfo)]),
    # spec
    "hydra_spec_opts_default": (SpecOpts, []),
    "hydra_spec_generate": (_S, [P, P, I32P, sz, C.POINTER(SpecOpts), I32P, sz, C.POINTER(sz),
                                 C.POINTER(SpecStats)]),
    # train
    "hydra_optim_opts_default": (OptimOpts, [C.c_int]),
    "hydra_optim_opts_validate": (_S, [C.POINTER(OptimOpts)]),
    "hydra_text_data_load": (_S, [C.c_char_p, f64, C.POINTER(P)]),
    "hydra_text_data_from_memory": (_S, [C.c_char_p, sz, f64, C.POINTER(P)]),
    "hydra_text_data_free": (None, [P]),
    "hydra_text_data_size": (sz, [P, C.c_int]),
    "hydra_text_data_task": (Task, [P]),
    "hydra_trainer_create": (_S, [P, Task, C.POINTER(TrainOpts), C.POINTER(P)]),
    "hydra_trainer_free": (None, [P]),
    "hydra_trainer_step": (_S, [P, C.POINTER(StepInfo)]),
    "hydra_trainer_eval": (_S, [P, C.c_int, C.POINTER(f64)]),
    "hydra_trainer_steps": (i64, [P]),
    "hydra_trainer_save": (_S, [P, C.c_char_p]),
    "hydra_trainer_resume": (_S, [C.c_char_p, Task, C.POINTER(P), C.POINTER(P)]),
    "hydra_train_free_cache": (None, []),
    # claims
    "hydra_claims_opts_default": (ClaimsOpts, [C.c_int, u64]),
    "hydra_claims_count": (C.c_int, []),
    "hydra_claim_name": (C.c_char_p, [C.c_int]),
    "hydra_claim_find": (C.c_int, [C.c_char_p]),
    "hydra_claim_paper_only": (C.c_int, [C.c_int]),
    "hydra_claims_run": (_S, [C.POINTER(ClaimsOpts), C.POINTER(C.c_char_p), C.c_int, C.POINTER(ClaimResult),
                              C.c_int, C.POINTER(C.c_int)]),
    "hydra_claims_all_passed": (C.c_int, [C.POINTER(ClaimResult), C.c_int]),
    "hydra_claim_status_str": (C.c_char_p, [C.c_int]),
    "hydra_claims_vecbank_write": (_S, [C.c_char_p, u64, C.c_int, C.c_int, C.c_int]),
    # devices (docs/gpu.md)
    "hydra_model_to_device": (_S, [P, C.c_char_p, C.c_int]),
    "hydra_model_device": (C.c_char_p, [P]),
    "hydra_cuda_compiled": (C.c_int, []),
    "hydra_cuda_device_count": (C.c_int, []),
}
for _name, (_res, _args) in _SIGS.items():
    _f = getattr(lib, _name)
    _f.restype, _f.argtypes = _res, _args

PRECISIONS = {None: 0, "f32": 1, "float32": 1, "bf16": 2, "bfloat16": 2}  # hydra_precision

# ------------------------------------------------------------ cancellation
_MAIN = threading.main_thread()
_worker_lock = threading.Lock()
_jobs = None


def _worker_loop(jobs):
    while True:
        fn, box, done = jobs.get()
        try:
            box["value"] = fn()
        except BaseException as e:  # handed to the waiting thread
            box["error"] = e
        done.set()


def _submit(fn):
    """Run fn on the one helper thread of the main thread (created once, so the
    library's per-thread caches persist between calls)."""
    global _jobs
    with _worker_lock:
        if _jobs is None:
            _jobs = queue.SimpleQueue()
            threading.Thread(target=_worker_loop, args=(_jobs,), name="hydralm-worker", daemon=True).start()
    box, done = {}, threading.Event()
    _jobs.put((fn, box, done))
    return box, done


def _wait_through_interrupts(done):
    """Wait for the helper to finish even if Ctrl-C is pressed again."""
    while True:
        try:
            while not done.wait(0.25):
                pass
            return
        except KeyboardInterrupt:
            continue


def run_cancellable(fn):
    """Call fn() (which makes library calls and raises on failure) so that
    Ctrl-C stops it: on the main thread fn runs on the helper thread while the
    main thread waits interruptibly; on KeyboardInterrupt the cancel flag is
    raised, the library returns HYDRA_ERR_CANCELLED at its next check, and
    KeyboardInterrupt is re-raised here once the call has returned (so no C
    call is left running on objects Python may free). Off the main thread
    (where Python delivers no Ctrl-C) fn runs directly."""
    flag = C.c_int(0)

    def job():
        # OpenMP's thread count is a per-thread setting: give this thread the
        # count hydra_set_num_threads last set (from whichever thread).
        lib.hydra_set_num_threads(lib.hydra_get_num_threads())
        lib.hydra_set_cancel_flag(C.byref(flag))
        try:
            return fn()
        finally:
            lib.hydra_set_cancel_flag(None)

    if threading.current_thread() is not _MAIN:
        return job()
    box, done = _submit(job)
    try:
        while not done.wait(0.25):
            pass
    except KeyboardInterrupt:
        flag.value = 1
        _wait_through_interrupts(done)
        raise
    if "error" in box:
        raise box["error"]
    return box.get("value")

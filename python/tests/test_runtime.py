"""Runtime behaviour: the GIL is released during library calls, Ctrl-C
interrupts long calls cleanly, C memory is freed on collection, a model used
by a live engine stays alive, concurrent misuse is refused, not raced."""
import gc
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import hydralm
from conftest import ROOT, env_for_child, small_config


def test_gil_released_during_generate():
    m = hydralm.HydraLM(small_config(d_model=128, n_layers=4, pattern="DDSD", head_dim=64), seed=1)
    done, count = threading.Event(), [0]

    def gen():
        m.generate([1, 2, 3], max_new_tokens=1500)  # pure C: no Python callback
        done.set()

    th = threading.Thread(target=gen)
    t0 = time.monotonic()
    th.start()
    while not done.is_set():
        count[0] += 1
    th.join()
    # With the GIL held for the whole call this loop could not run at all
    # until the call returned; released, it spins freely meanwhile.
    assert time.monotonic() - t0 > 0.05
    assert count[0] > 1000


CTRL_C_SCRIPT = textwrap.dedent("""
    import os, signal, sys, threading, time
    import hydralm
    hydralm.set_num_threads(1)
    m = hydralm.HydraLM(hydralm.HydraConfig(d_model=128, n_layers=4, n_heads=2, pattern="DDSD", window=64), seed=0)
    def interrupt_soon():
        time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGINT)
    e = hydralm.StreamingEngine(m, chunk=64)
    t = hydralm.Trainer(m, bytes(range(256)) * 400, batch=8, seq=64)
    calls = {
        "generate": lambda: m.generate([1, 2], max_new_tokens=10**6),
        "iterate": lambda: sum(1 for _ in m.generate_iter([1, 2], max_new_tokens=10**6)),
        "feed": lambda: e.feed([5] * 10**7),
        "stream_generate": lambda: e.extend_and_generate(prompt=[1], max_new=10**6),
        "train": lambda: t.train(10**6),
    }
    for name, call in calls.items():
        threading.Thread(target=interrupt_soon).start()
        t0 = time.monotonic()
        try:
            call()
            print(name, "NOT INTERRUPTED")
        except KeyboardInterrupt:
            print(name, "interrupted after %.2f s" % (time.monotonic() - t0))
    # everything still works afterwards
    print("after", len(m.generate([1, 2], max_new_tokens=5)), e.feed([1, 2, 3]), t.step().step > 0)
""")


def test_ctrl_c_interrupts_long_calls(tmp_path):
    script = tmp_path / "ctrl_c.py"
    script.write_text(CTRL_C_SCRIPT)
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                       env=env_for_child(), cwd=ROOT)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    for name in ("generate", "iterate", "feed", "stream_generate", "train"):
        line = [l for l in lines if l.startswith(name + " ")]
        assert line and "interrupted after" in line[0], r.stdout
        # the unbounded call stopped soon after the signal (0.5 s); generous for a loaded machine
        assert float(line[0].split()[3]) < 30
    assert "after 5 3 True" in lines[-1]


def test_cancelled_status_without_ctrl_c(model):
    # the library's cancel path itself: raise the flag from a callback
    from hydralm import _lib
    flag = _lib.C.c_int(0)
    _lib.lib.hydra_set_cancel_flag(_lib.C.byref(flag))
    try:
        def on_token(t):
            flag.value = 1
        with pytest.raises(hydralm.Cancelled, match="cancelled"):
            # called directly (not through run_cancellable, which would reset the flag)
            g = _lib.lib.hydra_gen_opts_default()
            g.max_new_tokens, cb = 10, _lib.TOKEN_CB(lambda t, u: on_token(t) or 0)
            g.on_token = cb
            out, n = (_lib.C.c_int32 * 10)(), _lib.C.c_size_t()
            with model._use() as h:
                _lib.check(_lib.lib.hydra_generate(h, None, (_lib.C.c_int32 * 1)(1), 1, _lib.C.byref(g), out, 10,
                                                   _lib.C.byref(n)))
        assert n.value == 1
    finally:
        _lib.lib.hydra_set_cancel_flag(None)


def test_memory_freed_when_collected():
    m = hydralm.HydraLM(small_config(), seed=1)
    fin = m._finalizer
    del m
    gc.collect()
    assert not fin.alive  # hydra_model_free ran


def test_engine_keeps_its_model_alive():
    m = hydralm.HydraLM(small_config(), seed=1)
    ref = m.forward([1, 2, 3], last_only=True)
    model_fin = m._finalizer
    e = hydralm.StreamingEngine(m)
    b = hydralm.FactBank(m)
    st = m.new_state()
    del m
    gc.collect()
    assert model_fin.alive
    e.feed([1, 2, 3])
    assert (e.last_logits() == ref).all() or abs(e.last_logits() - ref).max() < 1e-5
    with pytest.raises(ValueError, match="used by 3 open"):
        e.model.close()
    engine_fin, bank_fin = e._finalizer, b._finalizer
    del e, b, st
    gc.collect()
    assert not engine_fin.alive and not bank_fin.alive and not model_fin.alive


def test_close_refused_during_a_call_and_concurrent_engine_use_refused(model):
    e = hydralm.StreamingEngine(model)
    started, release = threading.Event(), threading.Event()

    def slow_callback(t):
        started.set()
        release.wait(10)
        return True

    th = threading.Thread(target=lambda: e.extend_and_generate(prompt=[1], max_new=5, on_token=slow_callback))
    th.start()
    assert started.wait(10)
    try:
        with pytest.raises(ValueError, match="busy"):
            e.feed([1])
        with pytest.raises(ValueError, match="in use"):
            e.close()
    finally:
        release.set()
        th.join()
    e.close()
    model.close()


def test_many_models_do_not_leak():
    import resource
    def rss():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(3):
        hydralm.HydraLM(small_config(d_model=256, n_layers=4, pattern="DDSD", head_dim=64)).forward([1])
    gc.collect()
    before = rss()
    for _ in range(30):  # ~30 x 13 MB without freeing
        m = hydralm.HydraLM(small_config(d_model=256, n_layers=4, pattern="DDSD", head_dim=64))
        m.forward([1])
        del m
    gc.collect()
    assert rss() - before < 100 * 1024  # KiB: far below 30 unfreed models


def test_thread_count_reaches_the_helper_thread(model):
    # OpenMP's thread count is per thread: the helper thread that runs long
    # calls must use what hydralm.set_num_threads set on the main thread.
    import ctypes
    gomp = ctypes.CDLL("libgomp.so.1")
    seen = []
    try:
        for n in (3, 1):
            hydralm.set_num_threads(n)
            model.generate([1], max_new_tokens=1, on_token=lambda t: seen.append(gomp.omp_get_max_threads()))
    finally:
        hydralm.set_num_threads(1)
    assert seen == [3, 1]

#!/usr/bin/python3
"""Binding overhead of the hydralm Python package against the hydra CLI
(issue 19), measured in one run so the ratios share the machine's load:

  generate  tokens/s of model.generate vs `hydra generate --stats` (same
            checkpoint, prompt, sampling options and seed; the same tokens),
            (prompt + generated) / wall time of the generate call on both sides
            (the CLI times its hydra_generate call; model load excluded).
  feed      tokens/s of engine.feed vs `hydra stream` on the same input: the
            CLI's engine time (it feeds 512-token reads), Python's wall time
            around its feed calls (conversion + binding included), fed in
            512-token pieces like the CLI and in one call.

Repetitions alternate CLI and Python; the table gives medians and the median
of the per-repetition ratios Python / CLI (1.00 = no overhead). Across two
processes on a loaded shared machine those ratios carry the load's drift, so
two in-process rows isolate the binding's own cost: model.generate against a
bare ctypes call of hydra_generate alternated in the same process, and
engine.feed's wall time against the engine's own C time for the same calls
(hydra_stream_get_stats seconds).

  bench/python_overhead.py [--reps 3] [--feed-reps 1] [--feed-tokens 1048576] [--default-feed-tokens 16384]
                           [--threads 1] [--out out/bench_py] [--models small,default]
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))
os.environ.setdefault("HYDRALM_LIBRARY", os.path.join(ROOT, "build", "libhydralm.so"))
import hydralm  # noqa: E402

CLI = os.path.join(ROOT, "build", "hydra")
MODELS = {"small": ["--d-model", "256", "--n-layers", "4", "--n-heads", "4"], "default": []}
PROMPT = "ROMEO: "


THREADS = ["--threads", "1"]


def sh(*args):
    r = subprocess.run([CLI] + [str(a) for a in args] + THREADS, capture_output=True, check=True)
    return r.stderr.decode("utf-8", "replace")  # stdout: sampled bytes, not necessarily UTF-8


def cli_generate(path, n):
    err = sh("generate", "--model", path, "--prompt", PROMPT, "-n", n, "--temperature", "0.8", "--top-p", "0.95",
             "--seed", "1", "--stats")
    m = re.search(r"\[(\d+) prompt \+ (\d+) generated tokens in ([\d.]+) s", err)
    return (int(m.group(1)) + int(m.group(2))) / float(m.group(3))


def py_generate(model, n, callback):
    ids = hydralm.encode(PROMPT)
    cb = (lambda t: False) if callback else None
    t0 = time.perf_counter()
    out = model.generate(ids, max_new_tokens=n, temperature=0.8, top_p=0.95, seed=1, on_token=cb)
    return (len(ids) + len(out)) / (time.perf_counter() - t0)


def raw_generate(model, n):
    """hydra_generate called through bare ctypes on this thread: no argument
    conversion, helper thread or exception mapping."""
    import ctypes as C
    from hydralm._lib import lib
    ids = (C.c_int32 * len(PROMPT))(*hydralm.encode(PROMPT))
    g = lib.hydra_gen_opts_default()
    g.max_new_tokens, g.sample.temperature, g.sample.top_p, g.seed = n, 0.8, 0.95, 1
    out, n_out = (C.c_int32 * n)(), C.c_size_t()
    with model._use() as h:
        t0 = time.perf_counter()
        assert lib.hydra_generate(h, None, ids, len(PROMPT), C.byref(g), out, n, C.byref(n_out)) == 0
        return (len(PROMPT) + n_out.value) / (time.perf_counter() - t0)


def cli_feed(path, inp):
    err = sh("stream", "--model", path, "--input", inp)
    return float(re.search(r"in ([\d.]+) s", err).group(1)), int(re.search(r"done: (\d+) tokens", err).group(1))


def py_feed(model, data, piece):
    e = hydralm.StreamingEngine(model)
    t0 = time.perf_counter()
    for i in range(0, len(data), piece):
        e.feed(data[i:i + piece])
    dt = time.perf_counter() - t0
    assert e.position == len(data)
    c_time = e.stats().seconds  # the engine's time inside hydra_stream_feed
    return len(data) / dt, len(data) / c_time


def row(name, cli, py):
    ratios = [p / c for p, c in zip(py, cli)]
    return "| %s | %.1f | %.1f | %.3f (%.3f-%.3f) |" % (name, statistics.median(cli), statistics.median(py),
                                                         statistics.median(ratios), min(ratios), max(ratios))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--gen-tokens", type=int, default=256)
    ap.add_argument("--feed-reps", type=int, default=1, help="repetitions of the feed runs (1M tokens each)")
    ap.add_argument("--feed-tokens", type=int, default=1 << 20)
    ap.add_argument("--default-feed-tokens", type=int, default=1 << 14)
    ap.add_argument("--out", default=os.path.join(ROOT, "out", "bench_py"))
    ap.add_argument("--models", default="small,default", help="which models to run: small, default or both")
    ap.add_argument("--threads", type=int, default=1, help="threads on both sides (default 1: on a shared "
                    "machine, OpenMP barriers under load would swamp the binding's cost)")
    a = ap.parse_args()
    THREADS[1] = str(a.threads)
    hydralm.set_num_threads(a.threads)
    os.makedirs(a.out, exist_ok=True)
    text = open(os.path.join(ROOT, "data", "tinyshakespeare.txt"), "rb").read()
    lines = ["| measurement | reference tok/s (hydra CLI unless named) | Python tok/s | Python / reference (range) |",
             "|---|---:|---:|---:|"]
    wanted = [m for m in a.models.split(",") if m]
    for m in wanted:
        if m not in MODELS:
            sys.exit(f"python_overhead.py: --models takes small and/or default, not {m!r}")
    for name, flags in ((n, MODELS[n]) for n in wanted):
        path = os.path.join(a.out, name + ".safetensors")
        if not os.path.exists(path):
            subprocess.run([CLI, "init", "--seed", "0", "--out", path] + flags, capture_output=True, check=True)
        model = hydralm.HydraLM.load(path)
        cli, py, pycb, raw = [], [], [], []
        for _ in range(a.reps):
            cli.append(cli_generate(path, a.gen_tokens))
            py.append(py_generate(model, a.gen_tokens, False))
            pycb.append(py_generate(model, a.gen_tokens, True))
            raw.append(raw_generate(model, a.gen_tokens))
        lines.append(row("%s: generate %d tokens" % (name, a.gen_tokens), cli, py))
        lines.append(row("%s: generate, Python on_token callback" % name, cli, pycb))
        lines.append(row("%s: generate vs bare ctypes hydra_generate, same process" % name, raw, py))
        n = a.feed_tokens if name == "small" else a.default_feed_tokens
        inp = os.path.join(a.out, "input_%d.txt" % n)
        data = (text * (n // len(text) + 1))[:n]
        with open(inp, "wb") as f:
            f.write(data)
        cli, py512, py1, c512 = [], [], [], []
        for _ in range(a.feed_reps):
            secs, tokens = cli_feed(path, inp)
            assert tokens == n
            cli.append(n / secs)
            wall, inside = py_feed(model, data, 512)
            py512.append(wall)
            c512.append(inside)
            py1.append(py_feed(model, data, n)[0])
        lines.append(row("%s: feed %d tokens, 512 per call" % (name, n), cli, py512))
        lines.append(row("%s: feed %d tokens, one call" % (name, n), cli, py1))
        lines.append(row("%s: feed, 512 per call, wall vs the engine's C time, same calls" % name, c512, py512))
        print("\n".join(lines[-6:]), flush=True)
    print("\n" + "\n".join(lines))
    print("\n%s; %s; %d repetitions (feed %d); %d thread(s) each side; load average %.1f %.1f %.1f at the end" % (
        os.uname().nodename, hydralm.blas_info(), a.reps, a.feed_reps, a.threads, *os.getloadavg()))


if __name__ == "__main__":
    main()

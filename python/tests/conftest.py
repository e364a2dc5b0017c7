"""Shared fixtures of the hydralm binding's tests.

The package is imported from the source tree (python/) and binds the library
named by $HYDRALM_LIBRARY (ctest sets it to the build's libhydralm.so) or
build/libhydralm.so. CLI comparisons use $HYDRA_CLI or build/hydra.
HYDRALM_NO_SKIPS=1 (set by ctest) turns every skipped test into a failure,
so a missing tool cannot make the suite pass by skipping."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("HYDRA_BINARY_DIR", os.path.join(ROOT, "build"))
os.environ.setdefault("HYDRALM_LIBRARY", os.path.join(BUILD, "libhydralm.so"))
sys.path.insert(0, os.path.join(ROOT, "python"))

import hydralm  # noqa: E402

CLI = os.environ.get("HYDRA_CLI", os.path.join(BUILD, "hydra"))
DATA = os.path.join(ROOT, "data", "tinyshakespeare.txt")

hydralm.set_num_threads(1)  # tiny models: threads cost more than they give on a shared 2-core machine


def small_config(**kw):
    c = dict(d_model=64, n_layers=3, n_heads=2, head_dim=32, pattern="DSD", window=16)
    c.update(kw)
    return hydralm.HydraConfig(**c)


@pytest.fixture
def model():
    return hydralm.HydraLM(small_config(), seed=7)


@pytest.fixture
def model_file(tmp_path, model):
    p = tmp_path / "m.safetensors"
    model.save(p)
    return str(p)


def hydra(*args, input=None):
    """Run the hydra CLI; returns stdout bytes (raises on a non-zero exit)."""
    r = subprocess.run([CLI] + [str(a) for a in args], input=input, capture_output=True)
    if r.returncode != 0:
        raise AssertionError("hydra %s failed (%d): %s" % (" ".join(map(str, args)), r.returncode,
                                                           r.stderr.decode(errors="replace")))
    return r.stdout


def env_for_child(**extra):
    """Environment for a child Python that imports hydralm from the source tree."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.join(ROOT, "python") + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


_skipped = []


def pytest_runtest_logreport(report):
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("HYDRALM_NO_SKIPS") == "1" and _skipped:
        print("\nHYDRALM_NO_SKIPS: %d test(s) skipped: %s" % (len(_skipped), ", ".join(_skipped)))
        session.exitstatus = 1

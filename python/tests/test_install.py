"""`pip install .` works offline with Debian's pip (no registry, no build
isolation) and the installed package finds its own copy of libhydralm."""
import os
import subprocess
import sys

from conftest import ROOT


def test_pip_install_offline(tmp_path):
    target = tmp_path / "site"
    env = dict(os.environ, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-build-isolation", "--no-deps", "--no-index",
                        "--quiet", "--target", str(target), ROOT], capture_output=True, text=True, env=env,
                       timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (target / "hydralm" / "libhydralm.so").exists()
    child_env = {k: v for k, v in os.environ.items() if k not in ("HYDRALM_LIBRARY", "PYTHONPATH")}
    child_env["PYTHONPATH"] = str(target)
    code = ("import hydralm; print(hydralm.LIBRARY_PATH); "
            "m = hydralm.HydraLM(hydralm.HydraConfig(d_model=32, n_layers=2, n_heads=2, pattern='DS')); "
            "print(len(m.generate([1, 2], max_new_tokens=3)))")
    r = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), capture_output=True, text=True, env=child_env)
    assert r.returncode == 0, r.stderr
    lib, n = r.stdout.split()
    assert lib.startswith(str(target)) and n == "3"

"""Compile and run small C programs against the same libhydralm the binding
loads: an independent caller to compare the binding with."""
import os
import shutil
import subprocess

from conftest import ROOT

LIB = os.path.realpath(os.environ["HYDRALM_LIBRARY"])


def compile_c(tmp_path, source, name="prog"):
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc, "a C compiler is needed (build-essential, installed by scripts/install-deps.sh)"
    src, exe = tmp_path / (name + ".c"), tmp_path / name
    src.write_text(source)
    subprocess.run([cc, "-std=gnu11", "-O1", "-I", os.path.join(ROOT, "include"), str(src), LIB,
                    "-Wl,-rpath," + os.path.dirname(LIB), "-o", str(exe)], check=True)
    return str(exe)


def run_c(exe, *args):
    return subprocess.run([exe] + [str(a) for a in args], check=True, capture_output=True).stdout

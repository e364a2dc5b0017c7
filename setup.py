"""Packaging hook for `pip install .`: puts libhydralm.so inside the installed
package. It uses $HYDRALM_LIBRARY if set, else build/libhydralm.so, building
it with CMake (the target `hydralm` only) when it is missing. Metadata lives
in pyproject.toml."""
import os
import shutil
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = os.path.dirname(os.path.abspath(__file__))


def find_or_build_library():
    env = os.environ.get("HYDRALM_LIBRARY")
    if env:
        return env
    lib = os.path.join(ROOT, "build", "libhydralm.so")
    if not os.path.exists(lib):
        subprocess.check_call(["cmake", "-S", ROOT, "-B", os.path.join(ROOT, "build"), "-DCMAKE_BUILD_TYPE=Release"])
        subprocess.check_call(["cmake", "--build", os.path.join(ROOT, "build"), "--target", "hydralm", "-j2"])
    return lib


class BuildPyWithLibrary(build_py):
    def run(self):
        super().run()
        dst = os.path.join(self.build_lib, "hydralm", "libhydralm.so")
        shutil.copyfile(os.path.realpath(find_or_build_library()), dst)


# setuptools works under build/python, apart from CMake's files in build/
setup(cmdclass={"build_py": BuildPyWithLibrary}, options={"build": {"build_base": os.path.join("build", "python")}})

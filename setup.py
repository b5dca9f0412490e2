"""Builds the extension mmfp4._mmfp4 with the project's CMake (the same build as `cmake -S . -B build`), so
`pip install .` needs no network and no build-time Python packages beyond setuptools. Environment:
MMFP4_CMAKE_ARGS (extra configure arguments, e.g. "-DMMFP4_CUDA=OFF"), CMAKE_BUILD_PARALLEL_LEVEL (jobs)."""

import os
import re
import shlex
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))


def version() -> str:
    with open(os.path.join(ROOT, "CMakeLists.txt")) as f:
        return re.search(r"project\(mmfp4 VERSION ([0-9.]+)", f.read()).group(1)


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        out_dir = os.path.dirname(os.path.abspath(self.get_ext_fullpath(ext.name)))  # <build_lib>/mmfp4
        build_dir = os.path.join(os.path.abspath(self.build_temp), "cmake")
        configure = ["cmake", "-S", ROOT, "-B", build_dir, "-DCMAKE_BUILD_TYPE=Release",
                     f"-DPython3_EXECUTABLE={sys.executable}", f"-DMMFP4_PYTHON_PACKAGE_DIR={out_dir}",
                     "-DMMFP4_PYTHON=ON", "-DMMFP4_TESTS=OFF", "-DMMFP4_BENCH=OFF"]
        configure += shlex.split(os.environ.get("MMFP4_CMAKE_ARGS", ""))
        subprocess.run(configure, check=True)
        subprocess.run(["cmake", "--build", build_dir, "--target", "mmfp4_python"], check=True)


setup(version=version(), ext_modules=[Extension("mmfp4._mmfp4", sources=[])], cmdclass={"build_ext": CMakeBuild})

"""Builds the one Cython extension, mgf._lstm; everything else is in pyproject.toml.

OpenMP (for MGF_NUM_THREADS > 1) is used where the compiler is GCC-compatible on Linux;
elsewhere the kernel builds single-threaded.  MGF_DEBUG_CYTHON=1 turns bounds checks back on.
"""
import os
import sys

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

openmp = sys.platform.startswith("linux")
debug = os.environ.get("MGF_DEBUG_CYTHON") == "1"

extension = Extension(
    "mgf._lstm",
    ["core/_lstm.pyx"],
    depends=["core/_lstm_math.h", "core/_lstm_isa.h", "core/_lstm_avx512.h", "core/_sample.h", "core/_generate.pxi"],
    include_dirs=[numpy.get_include(), "core"],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    extra_compile_args=["-O3"] + (["-fopenmp"] if openmp else []),
    extra_link_args=["-fopenmp"] if openmp else [],
)

setup(
    ext_modules=cythonize(
        [extension],
        compiler_directives={
            "language_level": 3,
            "boundscheck": debug,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": debug,
        },
    )
)

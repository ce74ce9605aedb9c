"""Builds the one Cython extension, mgf.kernel._native; everything else is in pyproject.toml.

The kernel's threads (MGF_NUM_THREADS > 1) are POSIX threads of its own (core/kernel/pool.h), on
Linux; elsewhere it runs single-threaded.  MGF_DEBUG_CYTHON=1 turns bounds checks back on.
"""
import os
import sys

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

threads = sys.platform.startswith("linux")
debug = os.environ.get("MGF_DEBUG_CYTHON") == "1"

extension = Extension(
    "mgf.kernel._native",
    ["core/kernel/_native.pyx"],
    depends=[f"core/kernel/{name}" for name in ("dispatch.h", "isa.h", "isa_avx512.h", "isa_amx.h", "pool.h", "rules.h",
                                                "choose.h", "isa_transformer.h", "weights.pxi", "step.pxi", "prime.pxi", "kernel.pxi",
                                                "rules.pxi", "choose.pxi", "generate.pxi", "transformer.pxi")],
    include_dirs=[numpy.get_include(), "core/kernel"],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    extra_compile_args=["-O3"] + (["-pthread"] if threads else []),
    extra_link_args=["-pthread"] if threads else [],
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

"""The kernel's tests again, on a build instrumented by AddressSanitizer and UBSan (issue 10).

The module runs without bounds checks, so an out-of-bounds read that happens to land in mapped
memory passes every numerical test; ASan makes it a failure.  The extension is built once into
a temporary directory with -fsanitize=address,undefined, then the numerical tests (against
the numpy reference and the quantisation simulations) and the argument checks run in a child
interpreter with libasan preloaded (Python itself is not instrumented) and that build first on
mgf's package path.  Leak detection is off: CPython keeps objects alive until exit by design.
"""

import os
import pathlib
import shlex
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
FLAGS = "-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
TESTS = ["tests/core/kernel/test_kernel.py", "tests/core/kernel/test_kernel_args.py", "tests/core/kernel/test_kernel_precision.py",
         "tests/core/kernel/test_rules.py", "tests/core/kernel/test_choose.py"]
REPORTS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer", "UndefinedBehaviorSanitizer")
BOOTSTRAP = """
import os, sys, mgf.kernel
mgf.kernel.__path__.insert(0, os.environ["MGF_TEST_KERNEL_DIR"])
from mgf.kernel import _native
assert _native.__file__.startswith(os.environ["MGF_TEST_KERNEL_DIR"]), _native.__file__
assert "libasan" in open("/proc/self/maps").read(), "libasan is not loaded"
import pytest
sys.exit(pytest.main(["-q", "-x", "-p", "no:cacheprovider", *sys.argv[1:]]))
"""


def sanitizer_runtime() -> str:
    """Path of gcc's libasan, or skip: without it the instrumented build cannot load."""
    gcc = shutil.which("gcc")
    if gcc is None or not sys.platform.startswith("linux"):
        pytest.skip("needs gcc on Linux for the sanitizer build")
    found = []
    for name in ("libasan.so", "libubsan.so"):
        path = subprocess.run([gcc, f"-print-file-name={name}"], capture_output=True, text=True, check=False).stdout.strip()
        if not os.path.isabs(path) or not os.path.exists(path):
            pytest.skip(f"gcc's sanitizer runtime {name} is not installed (e.g. apt-get install libasan8 libubsan1)")
        found.append(path)
    return os.path.realpath(found[0])


@pytest.fixture(scope="session")
def sanitized_build(tmp_path_factory):
    """Directory holding the instrumented mgf.kernel._native, and the libasan path to preload; built once a session.

    Compiled at -O1, which AddressSanitizer's documentation recommends: setup.py's -O3 took twice as long
    (51 s of the suite's slowest minute).  The compiler is gcc through a wrapper that puts -O1 last, where
    the last -O given counts."""
    libasan = sanitizer_runtime()
    out = tmp_path_factory.mktemp("sanitized")
    compiler = out / "cc"
    compiler.write_text(f'#!/bin/sh\nexec {shlex.quote(shutil.which("gcc"))} "$@" -O1\n')
    compiler.chmod(0o755)
    env = {**os.environ, "CC": str(compiler), "CFLAGS": FLAGS, "LDFLAGS": "-fsanitize=address,undefined"}
    done = subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "-b", str(out), "-t", str(out / "objects"), "-f"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (module,) = (out / "mgf" / "kernel").glob("_native*.so")
    assert b"__asan_report" in module.read_bytes() and b"__ubsan_handle" in module.read_bytes(), "not instrumented"
    return out / "mgf" / "kernel", libasan


def test_kernel_tests_pass_under_asan_and_ubsan(sanitized_build):
    directory, libasan = sanitized_build
    env = {
        **os.environ,
        "MGF_TEST_KERNEL_DIR": str(directory),
        "LD_PRELOAD": libasan,
        "ASAN_OPTIONS": "detect_leaks=0",
        "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1",
    }
    done = subprocess.run(
        [sys.executable, "-c", BOOTSTRAP, *TESTS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False,
    )
    output = done.stdout + done.stderr
    reports = [line for line in output.splitlines() if any(r in line for r in REPORTS)]
    assert not reports, "\n".join(reports[:20]) + "\n" + output[-4000:]
    assert done.returncode == 0, output[-4000:]
    assert " passed" in done.stdout and " failed" not in done.stdout

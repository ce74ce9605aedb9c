"""A 2-thread step when the other cores are busy: it must cost about a 1-thread step, never collapse.

Run ``pytest benchmarks/bench_contention.py``, or ``python benchmarks/report.py --only contention``.
Each shape is timed at 1 and 2 threads (int8 and fp32 weights) on an idle machine, and again
while one busy-looping process per core keeps every core loaded; the report compares medians
and means (a mean shows the rare long stalls a median hides).  With OpenMP's spinning barrier
a 2-thread step took 48 ms here under that load, against 17 us on one thread.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from mgf.contract.bundle import random_bundle
from mgf.plugins.backends.native import NativeModel

V, E = 130, 64
SHAPES = [(256, 1), (256, 8), (512, 1), (512, 8)]


@pytest.fixture(scope="module")
def busy():
    """Starts one busy-looping process per core on first use; stops them at the end of the module."""
    hogs: list[subprocess.Popen] = []

    def start():
        if not hogs:
            hogs.extend(subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1))

    yield start
    for hog in hogs:
        hog.kill()
        hog.wait()


def time_step(benchmark, hidden, batch, precision, threads, load):
    model = NativeModel(random_bundle(V, [hidden], E, seed=0), threads, precision)
    tokens = np.random.default_rng(batch).integers(0, V, batch, dtype=np.int32)
    state = model.initial_state(batch)

    def step():
        nonlocal state
        _, state = model.step(tokens, state)

    for _ in range(20):
        step()
    benchmark.group = f"contention-H{hidden}-B{batch}"
    benchmark.extra_info.update(hidden=hidden, batch=batch, precision=precision, threads=threads, load=load)
    benchmark(step)


CASES = pytest.mark.parametrize(("hidden", "batch", "precision", "threads"),
                                [(h, b, p, t) for h, b in SHAPES for p in ("int8", "fp32") for t in (1, 2)],
                                ids=lambda value: str(value))


@CASES
def test_step_idle(benchmark, hidden, batch, precision, threads):  # before any busy test: the hogs stay up
    time_step(benchmark, hidden, batch, precision, threads, "idle")


@CASES
def test_step_busy(benchmark, busy, hidden, batch, precision, threads):
    busy()
    time_step(benchmark, hidden, batch, precision, threads, "busy")

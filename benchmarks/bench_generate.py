"""End to end: what ``mgf.generate`` and the CLI deliver next to the bare step, on the shipped models.

Run ``pytest benchmarks/bench_generate.py``, or ``python benchmarks/report.py --only generate``.
``test_generate`` times ``mgf.generate`` of 2,000 tokens with temperature sampling (T=1, seed 0,
one output); ``test_step`` times the bare greedy step of the same model (batch 1), so the gap is
what the loop's sampling and checks cost per token.  Both use the native backend at one thread,
at each precision it declares, without the bundles' sampling defaults (temperature 1 exactly).
``test_shared_model`` runs ``mgf.generate`` from one and from two Python threads at once, sharing
one loaded model (a state each), as an embedder would.  ``test_cold_cli`` runs ``mgf generate
--repr midi --steps 1000`` as a fresh process: wall time (imports and model loading included; the page cache is warm after
one untimed run) and the child's peak resident memory, from ``os.wait4``'s resource usage of that
child alone (``RUSAGE_CHILDREN`` would pool every child this process ever waited for).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import mgf

sys.path.insert(0, str(Path(__file__).resolve().parent))  # pytest imports with --import-mode=importlib
from bench_peers import MgfStep, greedy, native_precisions

MODELS = ("notes", "midi", "audio")
TOKENS = 2000
BESIDE_STEPS = 256  # bare steps timed before each round of generation
CLI_ARGS = ["generate", "--repr", "midi", "--steps", "1000"]

_loaded: dict[tuple[str, str | None], mgf.Model] = {}


def shipped(name: str, precision: str | None) -> mgf.Model:
    """The shipped ``name`` model on the native backend, one thread, loaded once per module run."""
    if (name, precision) not in _loaded:
        path = mgf.packaged_model(f"{name}.safetensors")
        if not os.path.exists(path):
            pytest.skip(f"no shipped model at {path}")
        options = {} if precision is None else {"precision": precision}
        _loaded[name, precision] = mgf.load_model(path, backend="native", threads=1, **options)
        _loaded[name, precision].defaults = {}  # plain temperature sampling, as the issue measures it
    return _loaded[name, precision]


def label(precision: str | None) -> str:
    return precision or "fp32"


@pytest.mark.parametrize("precision", native_precisions(), ids=label)
@pytest.mark.parametrize("name", MODELS)
def test_generate(benchmark, name, precision):
    """``mgf.generate`` timed per round, and before each round (untimed) BESIDE_STEPS bare steps, so that the two
    rates are compared over the same minutes: on a shared machine a step's median moved by 25% from one
    benchmark to the next."""
    model = shipped(name, precision)
    step, beside = greedy(MgfStep(model, 1), 1), []

    def bare_steps():
        start = time.perf_counter()
        for _ in range(BESIDE_STEPS):
            step()
        beside.append((time.perf_counter() - start) / BESIDE_STEPS)
        return (model, TOKENS), {"temperature": 1.0, "seed": 0}

    benchmark.group = f"end-to-end-{name}"
    piece = benchmark.pedantic(mgf.generate, setup=bare_steps, rounds=15, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(kind="generate", model=name, precision=label(precision), tokens=TOKENS,
                                bare_step_s=statistics.median(beside))
    assert piece.shape == (TOKENS,)


@pytest.mark.parametrize("precision", native_precisions(), ids=label)
@pytest.mark.parametrize("name", MODELS)
def test_step(benchmark, name, precision):
    model = shipped(name, precision)
    benchmark.group = f"end-to-end-{name}"
    benchmark.extra_info.update(kind="step", model=name, precision=label(precision))
    benchmark(greedy(MgfStep(model, 1), 1))


@pytest.mark.parametrize("callers", [1, 2])
def test_shared_model(benchmark, callers):
    """``callers`` Python threads each generate TOKENS tokens from one shared model: the kernel drops the GIL."""
    model = shipped("notes", "fp32")  # as RESULTS measured it (the default is now the bundle's int8)

    def run():
        threads = [threading.Thread(target=mgf.generate, args=(model, TOKENS), kwargs={"seed": seed})
                   for seed in range(callers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    benchmark.group = "end-to-end-threads"
    benchmark.extra_info.update(kind="threads", callers=callers, tokens=TOKENS * callers)
    benchmark.pedantic(run, rounds=7, iterations=1, warmup_rounds=1)


STARTER = """
import os, subprocess, sys
process = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(process.pid, 0)
if os.waitstatus_to_exitcode(status):
    sys.exit(os.waitstatus_to_exitcode(status))
print(usage.ru_maxrss)
"""


def test_cold_cli(benchmark, tmp_path):
    executable = Path(sys.executable).with_name("mgf")
    command = [str(executable), *CLI_ARGS, "--seed", "0", "--quiet", "-o", str(tmp_path / "out.mid")]
    peak_kib = []

    # bytecode cached, as an installed mgf has it (pip compiles it): with PYTHONDONTWRITEBYTECODE set (as on
    # some CI machines) an editable install would compile its sources at every start, 80 ms of them
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

    def run():
        # started from a small Python, not from this process: a child's peak RSS counts the copy of its
        # parent it was forked as, and this pytest process (with TensorFlow and ONNX Runtime) is large
        result = subprocess.run([sys.executable, "-c", STARTER, *command], capture_output=True, text=True, env=env)
        assert result.returncode == 0, f"{' '.join(command)}: {result.stderr}"
        peak_kib.append(int(result.stdout.split()[-1]))  # KiB on Linux

    benchmark.group = "end-to-end-cli"
    benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(kind="cli", command="mgf " + " ".join(CLI_ARGS), peak_rss_mb=max(peak_kib) / 1024)

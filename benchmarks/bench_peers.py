"""mgf's step against its peers: ONNX Runtime on the same step graph, and the numpy reference.

Run ``pytest benchmarks/bench_peers.py``, or ``python benchmarks/report.py --only peers`` for the
tables.  Every method runs the same greedy loop on the same weights (V=130, E=64, one LSTM
layer): one step, then the argmax of its logits is the next input.  Methods: numpy (BLAS at one
thread), ``native`` at each precision its ``precision`` option declares (fp32 only if it declares
none) with 1 and 2 threads, and ONNX Runtime at 1 and 2 intra-op threads on the graph of
``onnx_step.py``, plain and with the embedding folded into a gate table, each stepped from
Python.  Each tool also runs the loop its own way, in one call for LOOP_STEPS steps:
``native-*-loop`` is ``mgf.generate`` with the greedy sampler (the loop in C), ``ort-loop`` an
ONNX ``Loop`` graph of the folded step and its argmax.  On a CPU with AMX, ``native-{bf16,int8}-avx512``
step with the same products on AVX-512 BF16/VNNI (``MGF_ISA=avx512``), beside the tiles.  The fp32 methods are checked against the
numpy reference before they are timed (the loops: their tokens against the stepped loop's).  A
shape's methods are timed interleaved, in rounds (:func:`test_peers`); the per-method medians are
in each benchmark's ``extra_info["medians"]`` (µs per step).  Without onnx and onnxruntime (the
``bench`` extra) the ONNX methods are left out.  ``--benchmark-disable`` runs the checks and one
round (seconds).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import mgf
from mgf.contract import bundle
from mgf.contract import registry
from mgf.kernel import _native
from mgf.kernel.reference import NumpyLSTM

sys.path.insert(0, str(Path(__file__).resolve().parent))  # pytest imports with --import-mode=importlib
from bench_step import probe
from onnx_step import OrtLoop, OrtStep

V, E = 130, 64
SHAPES = [(256, 1), (256, 8), (256, 64), (512, 1), (512, 8), (512, 64)]
THREADS = (1, 2)
WARMUP_STEPS = 50
CHECK_STEPS = 8
LOOP_STEPS = 256
ROUNDS = 9
BLOCK_SECONDS = 0.1  # a method's timed turn in a round, after a fifth of it untimed
GAP_SECONDS = 0.01  # idle before each turn: the last method's idle threads (ONNX Runtime's spin for a while) go to sleep


def native_precisions() -> tuple[str | None, ...]:
    """The choices of the native backend's ``precision`` option; ``(None,)`` (fp32, option not passed) if it has none."""
    option = next((o for o in registry.get("models", "native").options if o.name == "precision"), None)
    if option is None:
        return (None,)
    return tuple(option.choices) if option.choices else (option.default,)


def methods() -> list[str]:
    native = [f"native-{precision or 'fp32'}{loop}-{t}t" for precision in native_precisions() for loop in ("", "-loop")
              for t in THREADS]
    if _native.best_isa() == "amx":  # the same products without the tiles, side by side
        native += [f"native-{precision}-avx512-{t}t" for precision in ("bf16", "int8") if precision in native_precisions()
                   for t in THREADS]
    ort = [f"{graph}-{t}t" for graph in ("ort", "ort-folded", "ort-loop") for t in THREADS]
    return ["numpy-1t", *native, *ort]


class MgfStep:
    """An mgf model behind the same ``step(tokens) -> logits`` call as :class:`onnx_step.OrtStep`."""

    def __init__(self, model: mgf.Model, batch: int) -> None:
        self.model, self.state = model, model.initial_state(batch)

    def step(self, tokens: np.ndarray) -> np.ndarray:
        logits, self.state = self.model.step(tokens, self.state)
        return logits


def native_model(method: str, path) -> mgf.Model:
    """The native model of ``method`` (``native-<precision>[-loop|-avx512]-<threads>t``) on the bundle at ``path``;
    ``-avx512``: that instruction set (MGF_ISA) where the best is AMX."""
    precision, threads = method.split("-")[1], int(method.rsplit("-", 1)[1][:-1])
    options = {} if native_precisions() == (None,) else {"precision": precision}
    with mock.patch.dict(os.environ, {"MGF_ISA": "avx512"} if "-avx512-" in method else {}):
        return mgf.load_model(path, backend="native", threads=threads, **options)


def make_step(method: str, path, loaded: bundle.Bundle, batch: int):
    """The stepper of ``method`` (a stepped method of :func:`methods`) on the bundle at ``path``."""
    name, threads = method.rsplit("-", 1)
    threads = int(threads[:-1])
    if name.startswith("ort"):
        return OrtStep(loaded, batch, threads, fold=name == "ort-folded")
    if name == "numpy":
        return MgfStep(mgf.load_model(path, backend="numpy"), batch)
    return MgfStep(native_model(method, path), batch)


def make_loop(method: str, path, loaded: bundle.Bundle, batch: int):
    """A call that makes LOOP_STEPS greedy steps from a zero state and returns their tokens ``[LOOP_STEPS, B]``."""
    threads = int(method.rsplit("-", 1)[1][:-1])
    if method.startswith("ort"):
        return OrtLoop(loaded, batch, threads, LOOP_STEPS).run
    model = native_model(method, path)
    return lambda: mgf.generate(model, LOOP_STEPS, sampler="greedy", num_outputs=batch).reshape(batch, -1).T


def greedy(stepper, batch: int):
    """One step per call, its logits' argmax the next input; warmed up by ``WARMUP_STEPS`` calls."""
    tokens = np.zeros(batch, np.int64)

    def run():
        nonlocal tokens
        tokens = stepper.step(tokens).argmax(1)

    for _ in range(WARMUP_STEPS):
        run()
    return run


def is_fp32(method: str) -> bool:
    return method.startswith("ort") or "-fp32-" in method


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """``{hidden: (path, Bundle)}``: the same random weights for every method."""
    found = {}
    for hidden in sorted({h for h, _ in SHAPES}):
        path = tmp_path_factory.mktemp("peers") / f"H{hidden}.safetensors"
        bundle.write(bundle.random_bundle(V, [hidden], E, seed=0), path)
        found[hidden] = (path, bundle.read(path))
    return found


def check_against_reference(stepper, loaded: bundle.Bundle, batch: int) -> None:
    """Teacher-forced logits of ``stepper`` equal the numpy reference's (float32 rounding apart)."""
    reference = NumpyLSTM(loaded)
    state = reference.initial_state(batch)
    rng = np.random.default_rng(batch)
    for _ in range(CHECK_STEPS):
        tokens = rng.integers(0, V, batch)
        expected, state = reference.step(tokens, state)
        np.testing.assert_allclose(stepper.step(tokens), expected, rtol=1e-4, atol=1e-4)


def check_loop(run, loaded: bundle.Bundle, batch: int, first: int, forbidden: int | None) -> None:
    """A loop's tokens are the greedy tokens of the numpy reference fed ``first`` and then its own choices."""
    reference = NumpyLSTM(loaded)
    state, tokens = reference.initial_state(batch), np.full(batch, first)
    chosen = run()
    for step in range(16):  # beyond, a near-tie may part float32 sums added in different orders
        logits, state = reference.step(tokens, state)
        if forbidden is not None:
            logits[:, forbidden] = -np.inf
        tokens = logits.argmax(1)
        np.testing.assert_array_equal(chosen[step], tokens, err_msg=f"step {step}")


@pytest.fixture(scope="module")
def machine():
    """One core's fp32 peak and L3 bandwidth in this run (bench_step.probe), for the report's limits."""
    return probe()


def prepare(method: str, path, loaded: bundle.Bundle, batch: int):
    """``(call, steps per call)`` for ``method``, checked against the numpy reference if it is fp32."""
    if method.rsplit("-", 1)[0].endswith("loop"):
        run = make_loop(method, path, loaded, batch)
        if is_fp32(method):  # mgf.generate feeds the start token first and never chooses it; the ONNX loop starts at 0
            start = mgf.load_model(path, backend="numpy").representation.start_token
            check_loop(run, loaded, batch, *((start, start) if method.startswith("native") else (0, None)))
        run()
        return run, LOOP_STEPS
    stepper = make_step(method, path, loaded, batch)
    if is_fp32(method) and method != "numpy-1t":
        check_against_reference(stepper, loaded, batch)
    return greedy(stepper, batch), 1


def has_ort() -> bool:
    return all(importlib.util.find_spec(name) for name in ("onnx", "onnxruntime"))


@pytest.mark.parametrize(("hidden", "batch"), SHAPES, ids=[f"H{h}-B{b}" for h, b in SHAPES])
def test_peers(benchmark, bundles, machine, hidden, batch):
    """Every method on one shape, interleaved: a round times a block of each in turn (rotating the order), so
    that all methods' medians come from the same minutes (a step's median drifts by up to 25% between
    benchmarks minutes apart on a shared VM, more than some of the ratios compared)."""
    path, loaded = bundles[hidden]
    ort = has_ort()
    chosen = [m for m in methods() if ort or not m.startswith("ort")]
    benchmark.group = "peers"
    with threadpool_limits(1, user_api="blas"):
        runs = {method: prepare(method, path, loaded, batch) for method in chosen}
        calls = {}
        for method, (run, _) in runs.items():  # calls per block: about BLOCK_SECONDS of steps
            started = time.perf_counter()
            run()
            calls[method] = max(1, round(BLOCK_SECONDS / (time.perf_counter() - started)))
        times: dict[str, list[float]] = {method: [] for method in chosen}
        turn = 0

        def one_round():
            nonlocal turn
            for method in chosen[turn:] + chosen[:turn]:
                (run, steps), n = runs[method], calls[method]
                time.sleep(GAP_SECONDS)
                for _ in range(max(1, n // 5)):  # back to steady state: caches refilled, threads awake
                    run()
                started = time.perf_counter()
                for _ in range(n):
                    run()
                times[method].append((time.perf_counter() - started) / (n * steps) * 1e6)
            turn = (turn + 1) % len(chosen)

        one_round()  # warm-up, not counted
        for kept in times.values():
            kept.clear()
        benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
    benchmark.extra_info.update(hidden=hidden, batch=batch, rounds=len(times[chosen[0]]), block_seconds=BLOCK_SECONDS,
                                medians={m: float(np.median(t)) for m, t in times.items()}, **machine)

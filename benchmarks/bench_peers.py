"""mgf's step against its peers: ONNX Runtime on the same step graph, and the numpy reference.

Run ``pytest benchmarks/bench_peers.py``, or ``python benchmarks/report.py --only peers`` for the
tables.  Every method runs the same greedy loop on the same weights (V=130, E=64, one LSTM
layer): one step, then the argmax of its logits is the next input.  Methods: numpy (BLAS at one
thread), ``native`` at each precision its ``precision`` option declares (fp32 only if it declares
none) with 1 and 2 threads, and ONNX Runtime at 1 and 2 intra-op threads on the graph of
``onnx_step.py``, plain and with the embedding folded into a gate table.  The fp32 methods are
checked against the numpy reference before they are timed.  ``--benchmark-disable`` runs
the checks and a few untimed steps of each (seconds).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import mgf
from mgf import bundle, registry
from mgf.lstm import NumpyLSTM

sys.path.insert(0, str(Path(__file__).resolve().parent))  # pytest imports with --import-mode=importlib
from onnx_step import OrtStep

V, E = 130, 64
SHAPES = [(256, 1), (256, 8), (256, 64), (512, 1), (512, 8), (512, 64)]
THREADS = (1, 2)
WARMUP_STEPS = 50
CHECK_STEPS = 8


def native_precisions() -> tuple[str | None, ...]:
    """The choices of the native backend's ``precision`` option; ``(None,)`` (fp32, option not passed) if it has none."""
    option = next((o for o in registry.get("models", "native").options if o.name == "precision"), None)
    if option is None:
        return (None,)
    return tuple(option.choices) if option.choices else (option.default,)


def methods() -> list[str]:
    native = [f"native-{precision or 'fp32'}-{t}t" for precision in native_precisions() for t in THREADS]
    ort = [f"{graph}-{t}t" for graph in ("ort", "ort-folded") for t in THREADS]
    return ["numpy-1t", *native, *ort]


class MgfStep:
    """An mgf model behind the same ``step(tokens) -> logits`` call as :class:`onnx_step.OrtStep`."""

    def __init__(self, model: mgf.Model, batch: int) -> None:
        self.model, self.state = model, model.initial_state(batch)

    def step(self, tokens: np.ndarray) -> np.ndarray:
        logits, self.state = self.model.step(tokens, self.state)
        return logits


def make_step(method: str, path, loaded: bundle.Bundle, batch: int):
    """The stepper of ``method`` (a name from :func:`methods`) on the bundle at ``path``."""
    name, threads = method.rsplit("-", 1)
    threads = int(threads[:-1])
    if name.startswith("ort"):
        pytest.importorskip("onnx")
        pytest.importorskip("onnxruntime")
        return OrtStep(loaded, batch, threads, fold=name == "ort-folded")
    if name == "numpy":
        return MgfStep(mgf.load_model(path, backend="numpy"), batch)
    precision = name.removeprefix("native-")
    options = {} if native_precisions() == (None,) else {"precision": precision}
    return MgfStep(mgf.load_model(path, backend="native", threads=threads, **options), batch)


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


@pytest.mark.parametrize("method", methods())
@pytest.mark.parametrize(("hidden", "batch"), SHAPES, ids=[f"H{h}-B{b}" for h, b in SHAPES])
def test_peer_step(benchmark, bundles, method, hidden, batch):
    path, loaded = bundles[hidden]
    stepper = make_step(method, path, loaded, batch)
    if is_fp32(method) and method != "numpy-1t":
        check_against_reference(stepper, loaded, batch)
    benchmark.group = f"H{hidden}-B{batch}"
    benchmark.extra_info.update(method=method, hidden=hidden, batch=batch)
    with threadpool_limits(1, user_api="blas"):
        benchmark(greedy(stepper, batch))

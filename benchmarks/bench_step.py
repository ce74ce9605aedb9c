"""Latency of one ``model.step`` call: native kernel (fp32, and bf16/int8 weights) against the numpy reference (and Keras).

Run ``pytest benchmarks/bench_step.py``, or ``python benchmarks/report.py`` for the table.
Each benchmark records in ``extra_info`` its shape and a roofline limit computed from a probe
of this machine's bandwidth and FLOP rate, taken once per run.
"""

from __future__ import annotations

import contextlib
import os
import time

import numpy as np
import pytest
from mgf.contract.bundle import random_bundle
from threadpoolctl import threadpool_limits

V, E = 130, 64
HIDDEN = (256, 512)
BATCHES = (1, 8, 64)
METHODS = ("numpy", "native-1t", "native-1t-bf16", "native-1t-int8", "native-2t", "keras")
WARMUP_STEPS = 10


def _best_seconds(fn, repeat: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def matmul_gflops(m: int, k: int, n: int, repeat: int = 5) -> float:
    """Single-thread float32 rate of an ``[m, k] @ [k, n]`` matmul, GFLOP/s."""
    rng = np.random.default_rng(0)
    a, b = rng.random((m, k), np.float32), rng.random((k, n), np.float32)
    with threadpool_limits(1, user_api="blas"):
        return 2 * m * k * n / _best_seconds(lambda: a @ b, repeat) / 1e9


def gemv_bandwidth(rows: int, cols: int, repeat: int = 50) -> float:
    """Single-thread rate at which ``vector @ matrix`` streams a float32 ``[rows, cols]`` matrix, GB/s."""
    rng = np.random.default_rng(0)
    a, x = rng.random((rows, cols), np.float32), rng.random(rows, np.float32)
    with threadpool_limits(1, user_api="blas"):
        return a.nbytes / _best_seconds(lambda: x @ a, repeat) / 1e9


def probe() -> dict[str, float]:
    """This machine's single-core ceilings (well under a second).

    Bandwidth is measured on an 8 MB matrix: beyond L2, inside L3, where a step's weights
    (1.2 MB at H=256, 4.5 MB at H=512) stay between steps.  ``gemm_step_gflops`` is the rate of
    the H=256/B=64 recurrent matmul (64x256x1024), for comparison with ``peak_gflops``.
    """
    return {
        "bandwidth_gbs": gemv_bandwidth(2048, 1024),
        "peak_gflops": matmul_gflops(1024, 1024, 1024),
        "gemm_step_gflops": matmul_gflops(64, 256, 1024),
    }


def roofline(hidden: int, batch: int, bandwidth_gbs: float, peak_gflops: float, vocab: int = V) -> dict[str, float]:
    """Weights streamed, FLOPs, and the lower bound on one single-core step in microseconds."""
    streamed = 4 * (hidden * 4 * hidden + hidden * vocab + batch * 4 * hidden)
    flops = 2 * batch * (hidden * 4 * hidden + hidden * vocab)
    limit_us = max(streamed / bandwidth_gbs, flops / peak_gflops) / 1e3
    return {"bytes": streamed, "flops": flops, "limit_us": limit_us}


def keras_model(loaded):
    """A Keras ``LSTMCell`` step in a ``tf.function``, with the bundle's weights; skips without TensorFlow."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    tf = pytest.importorskip("tensorflow")
    with contextlib.suppress(RuntimeError):  # raised once TensorFlow has started; then keep its setting
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    t = loaded.tensors
    cell = tf.keras.layers.LSTMCell(loaded.arch.hidden[0])
    cell.build((None, loaded.arch.embedding_dim))
    cell.set_weights([t["lstm.0.kernel"], t["lstm.0.recurrent_kernel"], t["lstm.0.bias"]])
    embedding, dense_w, dense_b = (tf.constant(t[k]) for k in ("embedding", "dense.kernel", "dense.bias"))

    @tf.function
    def step(tokens, h, c):
        out, (h, c) = cell(tf.gather(embedding, tokens), [h, c])
        return tf.matmul(out, dense_w) + dense_b, h, c

    class KerasStep:
        def initial_state(self, batch):
            zeros = tf.zeros((batch, loaded.arch.hidden[0]))
            return zeros, zeros

        def step(self, tokens, state):
            logits, h, c = step(tokens, *state)
            return logits, (h, c)

    return KerasStep()


def make_model(method: str, loaded):
    if method == "numpy":
        from mgf.kernel.reference import NumpyLSTM

        return NumpyLSTM(loaded)
    if method == "keras":
        return keras_model(loaded)
    from mgf.plugins.backends.native import NativeModel

    _, threads, *precision = method.split("-")  # native-<threads>t[-<precision>]
    return NativeModel(loaded, int(threads[:-1]), precision[0] if precision else "fp32")


@pytest.fixture(scope="session")
def machine():
    return probe()


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("method", METHODS)
def test_step(benchmark, machine, method, hidden, batch):
    model = make_model(method, random_bundle(V, [hidden], E, seed=0))
    tokens = np.random.default_rng(batch).integers(0, V, batch, dtype=np.int32)
    state = model.initial_state(batch)

    def step():
        nonlocal state
        _, state = model.step(tokens, state)

    benchmark.group = f"H{hidden}-B{batch}"
    benchmark.extra_info.update(
        method=method, hidden=hidden, batch=batch, **machine,
        roofline_us=roofline(hidden, batch, machine["bandwidth_gbs"], machine["peak_gflops"])["limit_us"],
    )
    with threadpool_limits(1, user_api="blas"):
        for _ in range(WARMUP_STEPS):
            step()
        benchmark(step)

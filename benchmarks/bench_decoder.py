"""The Transformer's decode step with a KV cache: mgf's native kernel (fp32, bf16, int8) against ONNX Runtime
(onnx_decoder.py) and the numpy reference, and prefill per token against a decode step.

Run ``python benchmarks/bench_decoder.py [--rounds N] [--quick]``; it prints a Markdown table (a section of
RESULTS.md).  Random GPT-2-shaped bundles (learned positions, tied output, V = 130, MLP 4 d) of d = 256 / 4 blocks
and d = 512 / 8 blocks; each step is taken with ``context - 32`` positions already cached (a primer prefilled on
one row, then ``take`` to the batch), rounds interleaved, medians of wall time per step.  ONNX Runtime runs on 1
and 2 threads, and so does mgf's Transformer kernel (``threads=2``: each product's columns and attention's (row, head)
pairs split between the cores); the numpy reference on one BLAS thread.  Prefill: ``Model.prime`` of the primer at B = 1, per token,
against a decode step at B = 1 at the same precision.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from threadpoolctl import threadpool_limits

import mgf
from mgf.contract.bundle import random_bundle
from mgf.contract.transformer import Transformer
from onnx_decoder import OrtDecoder

SHAPES = ((256, 4), (512, 8))
CONTEXTS = (512, 2048)
BATCHES = (1, 16)
PRECISIONS = ("fp32", "bf16", "int8")
STEPS = 8  # per round: a round steps from the same cached state


def per_step(stepper, batch: int, steps: int = STEPS) -> float:
    tokens = np.zeros(batch, np.int32)
    started = time.perf_counter()
    for _ in range(steps):
        stepper(tokens)
    return (time.perf_counter() - started) / steps


def native_stepper(model, base, batch: int):
    """A step function over a fresh copy of ``base`` (a cached row) for ``batch`` rows, and how to refresh it."""
    box = {}

    def refresh():
        box["state"] = base.take(np.zeros(batch, np.intp))

    def step(tokens):
        _, box["state"] = model.step(tokens, box["state"])

    return step, refresh


def check_ort(loaded, reference, state, past: int) -> None:
    """The ONNX graph's logits, fed the reference's cache, are the reference's next logits (so it does the work)."""
    ort = OrtDecoder(loaded, 1, 1, past)
    for i in range(len(loaded.arch.hidden)):
        ort.feeds[f"past_k{i}"] = np.ascontiguousarray(state.keys[i][:, :, :past])
        ort.feeds[f"past_v{i}"] = np.ascontiguousarray(state.values[i][:, :, :past])
    expected, _ = reference.step(np.array([7]), state.take([0]))
    got = ort.step(np.array([7]))
    assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max(), "the ONNX graph is not the reference"


def state_for(model, primer):
    """``model``'s state after ``primer`` (one row)."""
    return model.prime(primer, model.initial_state(1))[1]


def cell(width: int, layers: int, context: int, batch: int, rounds: int, numpy_too: bool) -> dict[str, float]:
    loaded = random_bundle(130, (width,) * layers, seed=0,
                           transformer=Transformer(heads=width // 64, context=context, mlp=4 * width))
    past = context - STEPS * 4
    primer = np.random.default_rng(0).integers(0, 130, (1, past))
    runners, prefill = {}, {}
    for precision in PRECISIONS:
        model = mgf.load_model(loaded, backend="native", precision=precision)
        state = model.initial_state(1)
        started = time.perf_counter()
        _, state = model.prime(primer, state)
        prefill[precision] = (time.perf_counter() - started) / past
        runners[f"mgf {precision}"] = native_stepper(model, state, batch)
        threaded = mgf.load_model(loaded, backend="native", precision=precision, threads=2)
        runners[f"mgf {precision} 2t"] = native_stepper(threaded, state_for(threaded, primer), batch)
    if numpy_too:
        reference = mgf.load_model(loaded, backend="numpy")
        state = reference.initial_state(1)
        for token in primer[0]:
            _, state = reference.step(np.array([token]), state)
        runners["numpy"] = native_stepper(reference, state, batch)
    if numpy_too and batch == 1:
        check_ort(loaded, reference, state, past)
    for threads in (1, 2):
        ort = OrtDecoder(loaded, batch, threads, past)
        runners[f"ORT {threads}t"] = (ort.step, lambda: None)
    times = {name: [] for name in runners}
    for _ in range(rounds):
        for name, (step, refresh) in runners.items():
            refresh()
            with threadpool_limits(1, "blas"):
                times[name].append(per_step(step, batch, STEPS if name != "numpy" else 2))
    medians = {name: statistics.median(values) * 1e6 for name, values in times.items()}
    if batch == 1:
        for precision in PRECISIONS:
            medians[f"prefill {precision}"] = prefill[precision] * 1e6 / medians[f"mgf {precision}"]
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="d=256/4 blocks, context 512 only")
    args = parser.parse_args()
    probe = random_bundle(3, (64,), transformer=Transformer(heads=1, context=4, mlp=4))
    print(f"machine: {mgf.load_model(probe, backend='native').kernel.isa}")
    print("\n| d/blocks | context | B | ORT 1t | ORT 2t | numpy | mgf fp32 | bf16 | int8 | mgf 2t fp32 | bf16 | int8 "
          "| best vs ORT 1t | 2t vs ORT 2t | prefill/decode fp32, bf16, int8 |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|")
    for width, layers in SHAPES[:1] if args.quick else SHAPES:
        for context in CONTEXTS[:1] if args.quick else CONTEXTS:
            for batch in BATCHES:
                m = cell(width, layers, context, batch, args.rounds, numpy_too=width == 256)
                best = min(m[f"mgf {p}"] for p in PRECISIONS)
                best2 = min(m[f"mgf {p} 2t"] for p in PRECISIONS)
                prefill = ", ".join(f"{m[f'prefill {p}']:.2f}" for p in PRECISIONS) if batch == 1 else ""
                numpy = f"{m['numpy']:.0f}" if "numpy" in m else ""
                print(f"| {width}/{layers} | {context} | {batch} | {m['ORT 1t']:.0f} | {m['ORT 2t']:.0f} | {numpy} | "
                      + " | ".join(f"{m[f'mgf {p}{t}']:.0f}" for t in ("", " 2t") for p in PRECISIONS)
                      + f" | {m['ORT 1t'] / best:.2f}x | {m['ORT 2t'] / best2:.2f}x | {prefill} |", flush=True)


if __name__ == "__main__":
    main()

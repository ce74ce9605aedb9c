"""Batch generation by instruction set: ``mgf.generate(..., num_outputs=64)`` against the bare step at B=64.

Run ``python benchmarks/bench_batch.py [--rounds N] [--rows 64] [--steps 512] [--threads 1,2]``; it prints a Markdown
table (a section of RESULTS.md).  Each shipped model (``midi``, ``notes``) at int8, on one thread (the default) and on
two (``threads=2``: the step's rows and the sampling's split between the cores), with its bundle's defaults on
(constraints, sampling options), under each instruction set this CPU runs from ``avx512`` up (``MGF_ISA``; on an AMX
CPU: the products on AVX-512 VNNI, then on the tiles), interleaved by round: tokens per second of the whole call
(``--steps`` tokens for each of ``--rows`` outputs), of the bare step (``Model.step`` at B = ``--rows``, from Python),
and their ratio, the share of the step's rate that sampling, the constraints and the loop leave.  Medians of wall time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from unittest import mock

import numpy as np

import mgf
from mgf.kernel import _native

MODELS = ("midi", "notes")


def isas() -> list[str]:
    best = _native.ISAS.index(_native.best_isa())
    return list(_native.ISAS[_native.ISAS.index("avx512"):best + 1]) or [_native.best_isa()]


def load(name: str, isa: str, threads: int) -> mgf.Model:
    with mock.patch.dict(os.environ, {"MGF_ISA": isa}):
        return mgf.load_model(mgf.packaged_model(f"{name}.safetensors"), precision="int8", threads=threads)


def generating(model: mgf.Model, rows: int, steps: int, seed: int) -> float:
    started = time.perf_counter()
    mgf.generate(model, steps, num_outputs=rows, seed=seed)
    return rows * steps / (time.perf_counter() - started)


def stepping(model: mgf.Model, rows: int, steps: int) -> float:
    state, tokens = model.initial_state(rows), np.zeros(rows, np.int32)
    started = time.perf_counter()
    for _ in range(steps):
        _, state = model.step(tokens, state)
    return rows * steps / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--steps", type=int, default=512)
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    args = parser.parse_args()
    counts = [int(t) for t in args.threads.split(",")]
    models = {(name, isa, t): load(name, isa, t) for name in MODELS for t in counts for isa in isas()}
    rates: dict = {key: ([], []) for key in models}
    for model in models.values():  # warm up
        mgf.generate(model, 32, num_outputs=args.rows, seed=0)
    for round_ in range(args.rounds):
        for key, model in models.items():
            rates[key][0].append(generating(model, args.rows, args.steps, round_))
            rates[key][1].append(stepping(model, args.rows, args.steps))
    print(f"{args.rounds} rounds, int8, {args.rows} outputs x {args.steps} tokens; "
          f"1-min load average {os.getloadavg()[0]:.2f}")
    print("| model | threads | instructions | generate (tokens/s) | bare step (tokens/s) | generate / step "
          "| generate against the first row |")
    print("|---|--:|---|--:|--:|--:|--:|")
    for name in MODELS:
        first = None
        for t in counts:
            for isa in isas():
                generate, step = (statistics.median(values) for values in rates[name, isa, t])
                first = first or generate
                print(f"| {name} | {t} | {models[name, isa, t].kernel.isa} | {generate:,.0f} | {step:,.0f} "
                      f"| {generate / step:.2f} | {generate / first:.2f}x |")


if __name__ == "__main__":
    main()

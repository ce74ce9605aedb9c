"""Two bundles of one representation and corpus side by side (a Transformer against the shipped GRU, say).

    python benchmarks/compare_models.py core/models/notes.safetensors transformer.safetensors

For each: held-out cross-entropy of plain music as ``mgf train`` recorded it in the bundle (nats per token, on the
validation side of the split it made of the sources: the same pieces for bundles of the same sources), the marks of
``mgf.training.card`` at temperature 1 without constraints and under the first bundle's sampling defaults, and
``mgf.generate``'s tokens per second (B = 1, 1,000 tokens, no constraints, 1 thread, fp32 and int8; runs
interleaved, medians).  Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import mgf
from mgf.contract import bundle
from mgf.training import card

from model_quality import split


def marks(found: dict) -> int:
    return sum(card.passes(card.finite(row)) for row in found["metrics"].values())


def speed(paths: list[str], rounds: int = 5) -> dict[tuple[str, str], float]:
    rates = {}
    for precision in ("fp32", "int8"):
        models = {path: mgf.load_model(path, precision=precision, threads=1) for path in paths}
        times: dict[str, list[float]] = {path: [] for path in paths}
        for seed in range(rounds):
            for path, model in models.items():
                model.defaults = {}
                started = time.perf_counter()
                mgf.generate(model, 1000, seed=seed)
                times[path].append(time.perf_counter() - started)
        for path in paths:
            rates[path, precision] = 1000 / statistics.median(times[path])
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundles", nargs=2)
    parser.add_argument("--pieces", type=int, default=card.PIECES)
    args = parser.parse_args()
    first = mgf.load_model(args.bundles[0])
    defaults = dict(first.defaults)
    sources = bundle.read_metadata(args.bundles[0])["training"]["data"]
    held = split(first.representation, sources)[1].sequences
    rates = speed(args.bundles)
    print("| bundle | network | size | held-out CE | marks, temperature 1 | marks, the first's defaults | tokens/s fp32 "
          "| tokens/s int8 |")
    print("|---|---|--:|--:|--:|--:|--:|--:|")
    for path in args.bundles:
        model = mgf.load_model(path, precision="fp32")
        arch = model.arch
        network = (f"Transformer {len(arch.hidden)} x {arch.embedding_dim}" if arch.transformer is not None
                   else f"{arch.cell.upper()} {len(arch.hidden)} x {arch.hidden[0]}")
        ce = bundle.read_metadata(path)["training"]["validation_cross_entropy"]["model"]
        model.defaults = {}
        free = marks(card.measure_model(model, held, pieces=args.pieces, sampler="temperature", constraints=[]))
        model.defaults = defaults
        steered = marks(card.measure_model(model, held, pieces=args.pieces))
        print(f"| {os.path.basename(path)} | {network} | {os.path.getsize(path) / 2**20:.2f} MB | {ce:.3f} | {free}/10 | "
              f"{steered}/10 | {rates[path, 'fp32']:.0f} | {rates[path, 'int8']:.0f} |", flush=True)


if __name__ == "__main__":
    main()

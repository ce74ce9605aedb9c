"""Priming against generating: what feeding a long primer costs per token, next to what generating one costs.

Run ``python benchmarks/bench_prime.py [--rounds N]``; it prints a Markdown table (the priming
section of RESULTS.md).  The primer is real music: Bach chorales from music21's corpus, each
written as MIDI and encoded by the model's representation, end to end until 16,000 tokens.
The models: the shipped ``midi`` and ``notes`` models, and an LSTM of 512 units (one layer, random
weights, E=64) with the ``midi`` bundle's representation and defaults; each on the native backend,
one thread, one output (B=1), with its bundle's defaults on (constraints, sampling options).

- priming: ``mgf.generate`` of one token after the primer, per primer token: the constraints'
  preparation, ``Model.prime`` and the first choice;
- priming by stepping: the same with the contract's default ``Model.prime``, a step per token
  (what every primer cost before prefill);
- generating: ``mgf.generate`` of 2,001 tokens after a 1,000-token primer, less the same with
  one token, per token.

Every round measures all three, on the same machine minutes; the table gives medians of the
process's CPU time (``time.process_time``, one thread): on a machine shared with other work,
wall times of the same call varied 2x from one second to the next, CPU times by a few percent.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import tempfile
import time
from collections import defaultdict
from unittest import mock

import numpy as np

import mgf
from mgf import Model
from mgf.contract import bundle

LENGTHS = (8_000, 16_000)
GENERATED = 2_000
CONTEXT = 1_000  # primer tokens before the generated ones


def chorale_tokens(representation, count: int) -> np.ndarray:
    """At least ``count`` tokens of Bach chorales (music21's corpus) as ``representation`` encodes them."""
    import music21

    pieces, total = [], 0
    with tempfile.TemporaryDirectory() as folder:
        for index, score in enumerate(music21.corpus.chorales.Iterator(numberingSystem="riemenschneider")):
            path = os.path.join(folder, f"{index}.mid")
            try:
                score.write("midi", fp=path)
            except music21.exceptions21.Music21Exception:  # a few have repeats music21 cannot expand
                continue
            pieces.append(representation.read(path))
            total += len(pieces[-1])
            if total >= count:
                return np.concatenate(pieces).astype(np.int32)
    raise SystemExit(f"music21's chorales hold {total} tokens, fewer than {count}")


def _seconds(model: Model, steps: int, primer: np.ndarray) -> float:
    """CPU time of ``mgf.generate`` (seed 0) with the model's defaults."""
    start = time.process_time()
    mgf.generate(model, steps, primer=primer, seed=0)
    return time.process_time() - start


def lstm_512(folder: str) -> str:
    """The path of an LSTM of 512 units with random weights and the shipped midi bundle's representation and defaults."""
    shipped = bundle.read(mgf.packaged_model("midi.safetensors"))
    random = bundle.random_bundle(shipped.arch.vocab_size, (512,), 64, shipped.representation, seed=0)
    tensors = {**random.tensors, **{k: v for k, v in shipped.tensors.items() if k.startswith("repr.")}}
    path = os.path.join(folder, "lstm512.safetensors")
    bundle.write(dataclasses.replace(random, tensors=tensors, defaults=shipped.defaults), path)
    return path


def measure(path: str, precision: str, primer: np.ndarray, rounds: int) -> dict:
    """Median microseconds per token of each kind of work (see the module's docstring) over ``rounds``."""
    model = mgf.load_model(path, precision=precision, threads=1)
    samples = defaultdict(list)
    for _ in range(rounds):
        for length in LENGTHS:
            tokens = primer[:length]
            samples["prime", length].append(_seconds(model, 1, tokens) / length)
            with mock.patch.object(type(model), "prime", Model.prime):
                samples["stepping", length].append(_seconds(model, 1, tokens) / length)
        context = primer[:CONTEXT]
        long, short = _seconds(model, GENERATED + 1, context), _seconds(model, 1, context)
        samples["generate"].append((long - short) / GENERATED)
    return {key: 1e6 * statistics.median(values) for key, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        models = {"midi (GRU 2 x 256)": str(mgf.packaged_model("midi.safetensors")),
                  "notes (GRU 2 x 256)": str(mgf.packaged_model("notes.safetensors")),
                  "LSTM 512, midi's defaults": lstm_512(folder)}
        first = mgf.load_model(models["midi (GRU 2 x 256)"])
        print(f"{args.rounds} rounds, instructions: {first.kernel.isa}, 1-min load average {os.getloadavg()[0]:.2f}")
        print("| model | precision | primer tokens | priming (us/token) | priming by stepping (us/token) "
              "| generating (us/token) | priming / generating |")
        print("|---|---|--:|--:|--:|--:|--:|")
        primers = {}
        for name, path in models.items():
            representation = mgf.load_model(path).representation
            key = repr(representation)
            if key not in primers:
                primers[key] = chorale_tokens(representation, max(LENGTHS))
            for precision in ("fp32", "int8"):
                result = measure(path, precision, primers[key], args.rounds)
                for length in LENGTHS:
                    prime, generate = result["prime", length], result["generate"]
                    print(f"| {name} | {precision} | {length:,} | {prime:.1f} | {result['stepping', length]:.1f} "
                          f"| {generate:.1f} | {prime / generate:.2f}x |", flush=True)


if __name__ == "__main__":
    main()

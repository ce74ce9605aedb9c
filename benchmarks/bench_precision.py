"""What bf16 and int8 weights cost in accuracy and gain in speed, on the shipped models (issue 11).

    python benchmarks/bench_precision.py                 # notes, midi, audio; held-out CE for notes and midi
    python benchmarks/bench_precision.py --ce audio      # also audio's held-out CE (encoding its corpus takes minutes)
    python benchmarks/bench_precision.py --grid          # and the one-layer latency grid (V=130, E=64)
    python benchmarks/bench_precision.py --ce notes midi audio --prefer int8   # store int8 as the shipped bundles'
                                                         # preferred precision (mgf.precision), with the CEs measured

Per model: a 1,000-token piece sampled from the fp32 model is fed to every precision, and at
each step the logits are compared with fp32's: max |delta logit| and mean KL(fp32 || reduced)
in nats.  Cross-entropy (nats per token) is over the held-out pieces of the model's training
data (the validation side of the split ``mgf train`` makes), each piece fed from the zero state
and scored on its next tokens.  Latency: median of a bare ``step`` call, one thread.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import mgf
import numpy as np
from mgf.contract import bundle
from mgf.training.baselines import model_cross_entropy
from mgf.plugins.backends.native import NativeModel
from mgf.contract.representation import packaged_model

PRECISIONS = ("fp32", "bf16", "int8")
SAMPLED_STEPS = 1000


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z.astype(np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def logits_along(model, tokens: np.ndarray) -> np.ndarray:
    """Logits [steps, V] after each token of `tokens`, fed one by one from the zero state."""
    state, out = model.initial_state(1), []
    for token in tokens:
        logits, state = model.step(np.array([token], np.int32), state)
        out.append(logits[0])
    return np.array(out)


def divergence(name: str) -> dict[str, dict[str, float]]:
    """max |delta logit| and mean KL(fp32 || p) along a piece sampled from the fp32 model."""
    fp32 = mgf.load_model(packaged_model(f"{name}.safetensors"), precision="fp32")
    piece = mgf.generate(fp32, SAMPLED_STEPS, seed=0)
    loaded = bundle.read(packaged_model(f"{name}.safetensors"))
    reference = logits_along(NativeModel(loaded, 1, "fp32"), piece)
    log_p = log_softmax(reference)
    rows = {}
    for precision in PRECISIONS[1:]:
        logits = logits_along(NativeModel(loaded, 1, precision), piece)
        kl = (np.exp(log_p) * (log_p - log_softmax(logits))).sum(axis=1)
        rows[precision] = {"max_abs_dlogit": float(np.abs(logits - reference).max()), "mean_kl": float(kl.mean()),
                           "argmax_agree": float((logits.argmax(1) == reference.argmax(1)).mean())}
    return rows


def held_out_pieces(name: str) -> list[np.ndarray]:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from model_quality import split

    path = packaged_model(f"{name}.safetensors")
    representation = mgf.load_model(path).representation
    sources = bundle.read_metadata(path)["training"]["data"]
    return [np.asarray(s, np.int32) for s in split(representation, sources)[1].sequences]


def cross_entropy(model, pieces: list[np.ndarray]) -> float:
    """Mean next-token cross-entropy (nats) of the held-out pieces, as ``mgf train`` scores them (a conditioned model
    reading "any" at each bar, only the music counted): ``mgf.training.baselines.model_cross_entropy``."""
    return model_cross_entropy(model, pieces)


def median_step_us(model, batch: int, vocab: int, repeat: int = 400) -> float:
    tokens = np.random.default_rng(batch).integers(0, vocab, batch, dtype=np.int32)
    state = model.initial_state(batch)
    for _ in range(20):
        _, state = model.step(tokens, state)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        _, state = model.step(tokens, state)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["notes", "midi", "audio"])
    parser.add_argument("--ce", nargs="*", default=["notes", "midi"], help="models whose held-out CE to measure")
    parser.add_argument("--grid", action="store_true", help="also the one-layer latency grid")
    parser.add_argument("--prefer", choices=PRECISIONS, help="write this preferred precision and the held-out CEs "
                        "(fp32 and it) into the bundles of the --ce models (metadata only: the weights are unchanged)")
    args = parser.parse_args()

    print(f"isa: {NativeModel(bundle.random_bundle(3, (2,)), 1).kernel.isa}, 1 thread\n")
    print("| model | precision | max abs dlogit | mean KL (nats) | argmax agrees | held-out CE | CE vs fp32 "
          "| step B=1 (us) | vs fp32 |")
    print("|---|---|--:|--:|--:|--:|--:|--:|--:|")
    for name in args.models:
        loaded = bundle.read(packaged_model(f"{name}.safetensors"))
        rows = divergence(name)
        pieces = held_out_pieces(name) if name in args.ce else None
        base_ce = base_us = None
        scores = {}
        for precision in PRECISIONS:
            model = mgf.load_model(loaded, threads=1, precision=precision)  # with its representation, for the CE
            ce = cross_entropy(model, pieces) if pieces else float("nan")
            us = median_step_us(model, 1, loaded.arch.vocab_size)
            base_ce, base_us = (ce, us) if precision == "fp32" else (base_ce, base_us)
            scores[precision] = round(ce, 6)
            row = rows.get(precision, {"max_abs_dlogit": 0.0, "mean_kl": 0.0, "argmax_agree": 1.0})
            ce_cells = f"{ce:.4f} | {ce / base_ce - 1:+.3%}" if pieces else "n/a | n/a"
            print(f"| {name} | {precision} | {row['max_abs_dlogit']:.4f} | {row['mean_kl']:.2e} | "
                  f"{row['argmax_agree']:.1%} | {ce_cells} | {us:.1f} | {us / base_us:.2f}x |", flush=True)
        if args.prefer and pieces:
            loaded.precision = {"preferred": args.prefer,
                                "held_out_cross_entropy": {"fp32": scores["fp32"], args.prefer: scores[args.prefer]}}
            bundle.write(loaded, packaged_model(f"{name}.safetensors"))

    if args.grid:
        print("\nOne layer, V=130, E=64, 1 thread, median us per step")
        print("| precision | 256/1 | 256/8 | 256/64 | 512/1 | 512/8 | 512/64 |")
        print("|---|--:|--:|--:|--:|--:|--:|")
        loaded = {h: bundle.random_bundle(130, (h,), 64, seed=0) for h in (256, 512)}
        for precision in PRECISIONS:
            cells = [median_step_us(NativeModel(loaded[h], 1, precision), b, 130) for h in (256, 512) for b in (1, 8, 64)]
            print(f"| {precision} | " + " | ".join(f"{c:.1f}" for c in cells) + " |", flush=True)


if __name__ == "__main__":
    main()

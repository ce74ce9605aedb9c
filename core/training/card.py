"""Model cards: how close what a model writes is to the held-out music of its corpus, measured.

A card compares pieces generated from the start token with the held-out pieces of the model's
training data, each cut to as many tokens, on every metric of :mod:`mgf.music.metrics`: the two
means, their relative difference and the overlapping area of the two distributions (Yang &
Lerch, 2020).  ``mgf train`` puts one in every bundle it writes (``training["card"]``, with the
cross-entropies beside it) and ``mgf card`` prints it; a metric "meets the marks" when the means
are within :data:`WITHIN` of each other and the overlap is at least :data:`OVERLAP`.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from mgf.music import metrics
from mgf.generation.api import generate, generation_settings
from mgf.errors import InputError
from mgf.contract.model import Model

WITHIN = 0.15
OVERLAP = 0.6
PIECES = 50
SEED = 0


def piece_steps(held_out: Sequence[np.ndarray]) -> int:
    """Tokens per generated piece: the held-out pieces' first quartile of length (within 32 to 2,000).

    So most held-out pieces are cut to it, and few are shorter."""
    return int(np.clip(np.percentile([len(p) for p in held_out], 25), 32, 2000))


def measured(representation, pieces) -> list[dict[str, float]]:
    """:func:`mgf.music.metrics.measure` of each piece of tokens that has notes."""
    notes = [representation.to_notes(np.asarray(p)) for p in pieces]
    return [metrics.measure(n) for n in notes if n]


def measure_model(model: Model, held_out: Sequence[np.ndarray], steps: int | None = None, pieces: int = PIECES,
                  sampler: str | None = None, constraints: Sequence[str] | None = None, seed: int = SEED,
                  **options: Any) -> dict[str, Any]:
    """The card of ``model`` against ``held_out`` (token sequences of its corpus) under one way of generating.

    ``pieces`` pieces of ``steps`` tokens (default :func:`piece_steps`), ``seed`` (default :data:`SEED`), with
    ``sampler``, ``constraints`` and their ``options`` as for :func:`mgf.generate` (what is not
    given comes from the model's defaults; the card records what was used).  The result is
    JSON-ready (infinities become None).
    """
    if not held_out:
        raise InputError("a model card needs held-out pieces to compare with")
    representation = model.representation
    steps = steps or piece_steps(held_out)
    reference = measured(representation, [p[:steps] for p in held_out])
    sampler, constraints, options = generation_settings(model.defaults, sampler, constraints, options)
    tokens = generate(model, steps, sampler=sampler, seed=seed, num_outputs=pieces, constraints=constraints, **options)
    written = measured(representation, tokens.reshape(-1, tokens.shape[-1]))
    if not (reference and written):
        raise InputError("a model card needs pieces with notes on both sides")
    table = metrics.compare(written, reference)
    return finite({
        "measured": datetime.date.today().isoformat(),
        "generation": {"sampler": sampler, "constraints": list(constraints), "options": options, "seed": seed,
                       "steps": steps, "pieces": len(written)},
        "held_out_pieces": len(reference),
        "metrics": table,
        "meets_marks": sum(passes(row) for row in table.values()),
    })


def passes(row: dict[str, Any]) -> bool:
    """Whether one metric's row meets both marks."""
    relative = row["relative"]
    return relative is not None and abs(relative) <= WITHIN and row["overlap"] >= OVERLAP


def finite(value):
    """``value`` with infinite and NaN floats as None, so that it is strict JSON."""
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return None if isinstance(value, float) and not math.isfinite(value) else value


def describe_precision(precision: dict[str, Any]) -> str:
    """A bundle's ``mgf.precision`` as one line: the preferred precision and its held-out cross-entropy against fp32's."""
    preferred = precision.get("preferred", "fp32")
    line = (f"precision: prefers {preferred} (the native backend's default where the CPU has its fast products; "
            "--precision fp32: the numpy and keras backends' tokens)")
    scores = precision.get("held_out_cross_entropy", {})
    if preferred != "fp32" and {"fp32", preferred} <= set(scores):
        line += (f"; held-out cross-entropy {scores[preferred]:.4f} against {scores['fp32']:.4f} at fp32 "
                 f"({scores[preferred] / scores['fp32'] - 1:+.3%})")
    return line


def describe_infill(infill: dict[str, Any]) -> str:
    """A bundle's ``mgf.infill`` as one line: that the model fills gaps, how it learned to, and the ids that frame them."""
    gaps = "whole bars" if infill["gap"] == "bars" else "spans of time"
    tokens = infill["tokens"]
    return (f"infilling: yes (mgf infill): {infill['rate']:.0%} of its training windows were gaps of {gaps} to fill, with "
            f"up to {infill['context']} tokens of context each side (ids {tokens['suffix']}-{tokens['end']}: suffix, prefix, "
            "middle, end)")


def describe_controls(controls: list[dict[str, Any]], training: dict[str, Any]) -> list[str]:
    """A bundle's ``mgf.controls`` as lines: each control, its values (what ``--control NAME=VALUE`` takes) and how
    often training left it out."""
    from mgf.contract.controls import describe

    dropout = dict(training.get("controls", {}))
    lines = [f"controls: {', '.join(entry['name'] for entry in controls)} (mgf generate / mgf infill: --chords, --key, "
             "--density, --polyphony, --control NAME=VALUE; not given: any)"]
    for entry in controls:
        left = f", left out of {dropout[entry['name']]:.0%} of training windows" if entry["name"] in dropout else ""
        lines.append(f"  {entry['name']}: {describe(entry['values'], 40)}{left}")
    return lines


def _why_no_card(training: dict[str, Any]) -> str:
    if training.get("pieces", {}).get("validation") == 0:
        return ("no piece was held out to compare with (trained with --val-split 0, or on too few pieces to hold one "
                "out); train with held-out pieces for one")
    return "this bundle was not written by mgf train, which measures one in every bundle it writes"


def describe(training: dict[str, Any]) -> str:
    """A bundle's ``training`` metadata as text: data, command, cross-entropies, and its card's table."""
    lines = []
    if training.get("data"):
        pieces = training.get("pieces", {})
        lines.append(f"data: {', '.join(training['data'])} ({pieces.get('train', '?')} training pieces, "
                     f"{pieces.get('validation', '?')} held out)")
    if training.get("command"):
        lines.append(f"command: {training['command']}")
    if training.get("epochs") is not None:
        lines.append(f"trained: {training['epochs']} epochs in {training.get('train_seconds', 0) / 60:.1f} min")
    scores = training.get("validation_cross_entropy")
    if scores:
        lines.append("held-out cross-entropy (nats/token): " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()))
    card = training.get("card")
    if not card or "skipped" in card:
        lines.append(f"no model card: {card['skipped'] if card else _why_no_card(training)}")
        return "\n".join(lines)
    generation = card["generation"]
    how = ", ".join([generation["sampler"], *generation["constraints"],
                     *(f"{k.replace('_', '-')} {v}" for k, v in generation["options"].items())])
    lines += ["", f"{generation['pieces']} pieces of {generation['steps']} tokens ({how}; seed {generation['seed']}) "
                  f"against {card['held_out_pieces']} held-out pieces, measured {card['measured']}:",
              f"{'metric':<20} {'corpus':>8} {'generated':>10} {'difference':>10} {'overlap':>8}"]
    for name, row in card["metrics"].items():
        relative = "n/a" if row["relative"] is None else f"{row['relative']:+.0%}"
        mark = "  meets" if passes(row) else ""
        lines.append(f"{name:<20} {row['reference']:>8.3g} {row['generated']:>10.3g} {relative:>10} "
                     f"{row['overlap']:>8.2f}{mark}")
    lines.append(f"{card['meets_marks']} of {len(card['metrics'])} metrics within {WITHIN:.0%} of the corpus mean "
                 f"with overlap at least {OVERLAP}")
    if card["metrics"].get("velocity_spread", {}).get("reference") == 0:
        lines.append("velocity_spread 0: the corpus has no dynamics (every note at one velocity), so the model has "
                     "learned none")
    return "\n".join(lines)

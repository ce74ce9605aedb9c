"""A continuation task in the format of MIREX 2025's symbolic generation task: 4 bars of prompt, 12 bars to write.

    python benchmarks/continuation_task.py                                   # the shipped notes and midi models
    python benchmarks/continuation_task.py --models notes --bundle old=old.safetensors --pieces 200

For each held-out piece of a model's training data (the validation side of ``mgf train``'s split, as
benchmarks/model_quality.py finds it) that lasts 16 bars, bars 1-4 are the prompt and bars 5-16 the true continuation.
A bar is the clock's (``notes``: 16 steps of its 16th-note grid, as MIREX's grid); for a representation without bars
(``midi``), 2 seconds, a 4/4 bar at the 120 quarter notes a minute the chorales are rendered at.  Each method writes 12
bars after every prompt, cut at the 16th bar line: the model under its bundle's defaults (``mgf generate`` primed with
the prompt, seed 0), the model at temperature 1 without its defaults, each ``--bundle`` the same way as the first, a
conditioned model also asked the true continuation's chords and key (its controls: what a musician who knows the
harmony would ask for), and two baselines without a model: the prompt played three times over, and bars 5-16 of as
many training pieces (real music of the same corpus: how far two sets of real continuations lie apart).  Per metric of
``mgf.metrics``, each method's continuations against the true ones as ``docs/models.md`` compares pieces: mean
(difference from the truth's mean) and the overlap of the distributions; bold within 15% and overlap at least 0.6.
"""

from __future__ import annotations

import argparse

import numpy as np

import mgf
from mgf.contract import bundle
from mgf.contract.clock import clock_of
from mgf.contract.infill import gap_bounds, gap_bounds_seconds
from mgf.music import metrics
from mgf.training import card
from model_quality import split  # benchmarks/ is sys.path[0] when run as a script

PROMPT_BARS, BARS = 4, 16
BAR_SECONDS = 2.0  # a 4/4 bar at 120 qpm, for clocks without bars


def bounds(clock, tokens, first: int, stop: int) -> tuple[int, int]:
    """Tokens of bars [first, stop) (0-based) by the clock's bars, or by BAR_SECONDS where it has none."""
    if clock.steps_per_bar:
        return gap_bounds(clock, tokens, first, stop - 1)
    return gap_bounds_seconds(clock, tokens, first * BAR_SECONDS, stop * BAR_SECONDS)


def lasts(clock, tokens) -> bool:
    """Whether ``tokens`` reach the end of bar 16 (a token falls at or after its line)."""
    end = BARS * (clock.steps_per_bar or round(BAR_SECONDS / clock.step_seconds))
    return clock.steps(tokens)[-1] >= end


def tasks(representation, pieces) -> list[tuple[np.ndarray, np.ndarray]]:
    """(prompt, true continuation) of each piece that lasts 16 bars."""
    clock = clock_of(representation)
    found = []
    for piece in pieces:
        if not lasts(clock, piece):
            continue
        start, stop = bounds(clock, piece, PROMPT_BARS, BARS)
        found.append((piece[:start], piece[start:stop]))
    return found


def sample(found: list, count: int) -> list:
    """``count`` of ``found`` drawn at random (seed 0), in their order: the first ones come from one source only."""
    if len(found) <= count:
        return found
    return [found[i] for i in sorted(np.random.default_rng(0).choice(len(found), count, replace=False))]


def continued(model, prompts, truths, each=None, **options) -> list[np.ndarray]:
    """12 bars after each prompt, a call each (the prompts differ in length), seed 0, cut at the 16th bar line; ``each``:
    per prompt, more options (a conditioned model's controls)."""
    clock = clock_of(model.representation)
    longest = max(len(t) for t in truths)
    out = []
    for index, prompt in enumerate(prompts):
        extra = each[index] if each is not None else {}
        tokens = mgf.generate(model, 2 * longest + 16, primer=prompt, seed=0, **options, **extra)
        whole = np.concatenate([prompt, tokens])
        start, stop = bounds(clock, whole, PROMPT_BARS, BARS)
        out.append(whole[start:stop])
    return out


def true_controls(representation, prompts, truths) -> list[dict]:
    """Per task, the controls of its true continuation: the chords of bars 5-16 and the key of the whole, as a
    conditioned model is asked them (``mgf generate --chords ... --key ...``)."""
    found = []
    for prompt, truth in zip(prompts, truths):
        whole = np.concatenate([prompt, truth])
        rows = representation.extract(whole)
        asked = {}
        for column, family in enumerate(representation.families):
            labels = [family.values[i - family.first] for i in rows[PROMPT_BARS:BARS, column]]
            if family.control.name in ("chord", "key"):
                asked[family.control.name] = labels[0] if family.control.per_piece else labels
        found.append(asked)
    return found


def repeated(prompts) -> list[np.ndarray]:
    """The prompt three times over (12 bars), as tokens: its bars are whole, so the clock carries on."""
    return [np.tile(prompt, 3) for prompt in prompts]


def table(representation, methods: dict, truths) -> str:
    reference = card.measured(representation, truths)
    rows = {label: metrics.compare(card.measured(representation, found), reference) for label, found in methods.items()}
    lines = ["| metric | truth | " + " | ".join(rows) + " |", "|---|--:|" + "--:|" * len(rows)]
    for metric in metrics.METRICS:
        cells = []
        for found in rows.values():
            row = card.finite(found[metric])
            relative = "n/a" if row["relative"] is None else f"{row['relative']:+.0%}"
            cell = f"{row['generated']:.3g} ({relative}) {row['overlap']:.2f}"
            cells.append(f"**{cell}**" if card.passes(row) else cell)
        lines.append(f"| {metric} | {next(iter(rows.values()))[metric]['reference']:.3g} | " + " | ".join(cells) + " |")
    met = [f"{label}: {sum(card.passes(card.finite(r)) for r in found.values())}/{len(found)}"
           for label, found in rows.items()]
    return "\n".join(lines + ["", "Metrics that meet both marks: " + "; ".join(met) + "."])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["notes", "midi"], choices=["notes", "midi"])
    parser.add_argument("--bundle", action="append", default=[], metavar="LABEL=PATH",
                        help="another bundle of the first model's representation, side by side (repeatable)")
    parser.add_argument("--pieces", type=int, default=100, help="held-out pieces at most, drawn at random (default: 100)")
    args = parser.parse_args(argv)
    for name in args.models:
        path = mgf.packaged_model(f"{name}.safetensors")
        model = mgf.load_model(path)
        representation = model.representation
        train, held = split(representation, bundle.read_metadata(path)["training"]["data"])
        found = sample(tasks(representation, held.sequences), args.pieces)
        prompts, truths = [p for p, _ in found], [t for _, t in found]
        methods = {"the shipped model, its defaults": continued(model, prompts, truths),
                   "the shipped model, temperature 1, no defaults": continued(model, prompts, truths,
                                                                             sampler="temperature", constraints=[],
                                                                             temperature=1.0)}
        if isinstance(representation, mgf.Conditioned) and {"chord", "key"} & set(representation.names):
            methods["the shipped model, its defaults, the truth's chords and key"] = continued(
                model, prompts, truths, each=true_controls(representation, prompts, truths))
        if name == args.models[0]:
            for extra in args.bundle:
                label, _, other = extra.partition("=")
                methods[label] = continued(mgf.load_model(other), prompts, truths)
        methods["the prompt three times"] = repeated(prompts)
        methods["training pieces' bars 5-16"] = [t for _, t in sample(tasks(representation, train.sequences), len(found))]
        print(f"## `{name}`: {len(found)} held-out pieces of 16 bars or more; prompt bars 1-4, bars 5-16 written\n")
        print(table(representation, methods, truths) + "\n")


if __name__ == "__main__":
    main()

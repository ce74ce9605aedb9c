"""Report on the shipped default models: training, cross-entropy against baselines, and how close what they
write is to their corpus.

    python benchmarks/model_quality.py                       # the tables of docs/models.md (50 pieces a setting)
    python benchmarks/model_quality.py --card card.json      # also the figures as JSON, a card per setting
    python benchmarks/model_quality.py --write-cards         # store DEFAULTS, WRITING, their card in the bundles
    python benchmarks/model_quality.py --pieces 8 --models midi   # a quick look
    python benchmarks/model_quality.py --tune --models midi  # rank sampling settings against training pieces

Each setting is measured by :func:`mgf.training.card.measure_model`, as ``mgf train`` measures the models
it writes: generated pieces against the **held-out** pieces of the model's training data (the
validation side of ``mgf.training.sources.Dataset.split(0.1)`` over the sources named in the bundle's
``training`` metadata), each cut to the same number of tokens as a generated piece, so that
length-dependent metrics (pitch range, pitches used, repetition) compare like with like.  Per
metric of :mod:`mgf.music.metrics`: the generated and the corpus mean, their relative difference, and
the overlapping area of the two distributions (1: the same, 0: disjoint).  Generation: the
native backend, ``num_outputs`` pieces from the start token, seed 0, under the bundle's sampling
defaults (what ``mgf generate`` does; with ``--write-cards``, :data:`DEFAULTS`), then under each
setting of :data:`SETTINGS` without them.

Two checks keep the held-out pieces honest.  The defaults are chosen with ``--tune``, which scores
each setting of :data:`TUNING` against 300 *training* pieces (three generation seeds, 1 to 3), never against
the held-out ones the tables report.  And under each table, 50 real training pieces at a time (10
draws) are measured against the held-out pieces as a generated set would be: a mark that real
music of the same corpus rarely meets measures the split, not the model.
"""

from __future__ import annotations

import argparse
import json
import os
import warnings

import numpy as np

import mgf
from mgf.contract import bundle
from mgf.training import card
from mgf.training.sources import Dataset, files as source_files, load
from mgf.training.split import held_out_files
from mgf.contract.representation import packaged_model

#: close-notes at the chorales' own limits: 4 voices; notes end by 3 s (99.9% of chorale notes last at most 2.3 s)
CHORALE = {"max_polyphony": 4, "max_note_seconds": 3.0}
#: how each shipped model samples by default (its bundle's ``mgf.defaults``, written by --write-cards): the
#: setting --tune ranked first against training pieces (notes, since it was trained with --infill 0.25: the one
#: setting of the grid that met every mark, temperature 1.2, top-p 0.9, motifs bonus 3; the defaults of the model
#: before, temperature 1, top-p 0.95, bonus 2, met 7 and are a column below), and for `notes` under --sampler beam a
#: sampled beam (an exhaustive one collapses to held notes) with a smaller motifs bonus (a search amplifies it: at
#: 2, repetition +94% and 3 marks of 10), tuned the same way; `midi`: top-k instead of top-p (a nucleus cuts the
#: long, spread-out time shifts first: notes +15% too dense at every top-p of the grid), and motifs for the
#: chord progressions top-k makes wander.  `notes` also holds no note or rest longer than 2 bars (hold-limit: 31 holds
#: after its first step; 99.97% of the corpus's notes are within it), where 1.3% of the pieces of the README's example
#: held one for 4 bars or more
DEFAULTS = {
    # follow-chords, follow-key and follow-density do nothing until --chords / --key / --density ask for them
    "notes": {"constraints": ["motifs", "hold-limit", "follow-chords", "follow-key", "follow-density"],
              "options": {"temperature": 1.1, "top_p": 0.95, "length": 8, "bonus": 3.0, "max_run": 32, "max_holds": 31,
                          "chord_bonus": 2.0, "key_bonus": 1.5},
              "samplers": {"beam": {"options": {"branch_factor": 2, "steps_per_iteration": 8, "temperature": 1.2,
                                                "bonus": 0.75}}}},
    "midi": {"constraints": ["close-notes", "motifs"],
             "options": {**CHORALE, "temperature": 0.9, "top_k": 8, "length": 8, "bonus": 3.0}},
}
#: representation config the shipped bundles are written with (--write-cards): the chorales rendered to MIDI have no
#: dynamics (every note at velocity 80), so `midi` writes its pieces with metric accents and phrase swells
WRITING = {"midi": {"dynamics": "accents"}}
#: label -> (sampler, constraints, options) compared per model, each without the bundle's defaults; the
#: first row of the tables, "defaults", is what ``mgf generate`` does (the bundle's DEFAULTS)
SETTINGS = {
    "notes": {
        "the defaults without hold-limit": ("temperature", ("motifs",), {"temperature": 1.2, "top_p": 0.9,
                                                                          "bonus": 3.0}),
        "motifs, top-p 0.95, hold-limit (the defaults before)": ("temperature", ("motifs", "hold-limit"),
                                                                 {"top_p": 0.95, "max_holds": 31}),
        "temperature 1": ("temperature", (), {}),
        "top-p 0.95, no motifs": ("temperature", (), {"top_p": 0.95}),
        "motifs, bonus 3, max-run 16, top-p 0.95": ("temperature", ("motifs",), {"top_p": 0.95, "bonus": 3.0,
                                                                                "max_run": 16}),
        "motifs, temperature 1.1, top-p 0.9": ("temperature", ("motifs",), {"temperature": 1.1, "top_p": 0.9}),
        "beam 4, exhaustive": ("beam", (), {}),
        "beam 4, 2 branches, 8 steps, temperature 1.2, motifs bonus 0.75 (--sampler beam's defaults)": (
            "beam", ("motifs",), {"beam_size": 4, "branch_factor": 2, "steps_per_iteration": 8, "temperature": 1.2,
                                  "bonus": 0.75}),
        "the same without motifs": ("beam", (), {"beam_size": 4, "branch_factor": 2, "steps_per_iteration": 8,
                                                 "temperature": 1.2}),
    },
    "midi": {
        "temperature 1": ("temperature", (), {}),
        "close-notes, top-p 0.85 (the defaults before)": ("temperature", ("close-notes",), {**CHORALE, "top_p": 0.85}),
        "close-notes, top-p 0.8, 5 voices": ("temperature", ("close-notes",), {**CHORALE, "max_polyphony": 5,
                                                                                 "top_p": 0.8}),
        "close-notes, temperature 0.9, top-k 8, no motifs": ("temperature", ("close-notes",), {**CHORALE,
                                                                                               "temperature": 0.9,
                                                                                               "top_k": 8}),
    },
}


#: the settings --tune ranks per model: every combination of these option values (close-notes for midi)
TUNING = {
    "notes": {"constraints": ["motifs"], "grid": {"temperature": [0.9, 1.0, 1.1], "top_p": [0.9, 0.95, 1.0],
                                                 "bonus": [0.0, 1.5, 3.0], "max_run": [32]}},
    "midi": {"constraints": ["close-notes", "motifs"],
             "grid": {"temperature": [0.9, 1.0], "top_k": [8, 16], "bonus": [2.0, 3.0, 4.0], "length": [8],
                      "max_polyphony": [4], "max_note_seconds": [3.0]}},
}
#: real pieces per draw and draws, for the line under each table
FLOOR_PIECES, FLOOR_DRAWS = 50, 10


def split(representation, sources) -> tuple[Dataset, Dataset]:
    """The training and validation sides of the split ``mgf train`` makes of ``sources``, read whole.

    music21 gets an hour per file instead of ``max_read_seconds``' minute: on a busy machine the
    largest Essen files take longer, and would silently drop half the folk tunes.  The limit
    changes no token, so the split is the same.
    """
    config = representation.config()
    if any(option.name == "max_read_seconds" for option in type(representation).options):  # audio reads no scores
        config["max_read_seconds"] = 3600
    reader = mgf.get_representation(representation.name, **config)
    reader.load_tensors(representation.tensors())  # audio's codebook
    dataset = Dataset()
    for source in sources:
        loaded = load(reader, source, progress=False)
        if loaded.skipped:
            raise mgf.InputError(f"{source}: {len(loaded.skipped)} file(s) unreadable, e.g. {loaded.skipped[0][1]}")
        dataset.extend(loaded)
    return dataset.split(0.1)


def corpus_floor(representation, train, held, steps: int) -> dict[str, int]:
    """Per metric, in how many of FLOOR_DRAWS draws of FLOOR_PIECES training pieces the marks hold against ``held``."""
    rng = np.random.default_rng(0)
    reference = card.measured(representation, [p[:steps] for p in held])
    held_marks = {name: 0 for name in mgf.music.metrics.METRICS}
    for _ in range(FLOOR_DRAWS):
        pick = rng.choice(len(train), min(FLOOR_PIECES, len(train)), replace=False)
        sample = card.measured(representation, [train[i][:steps] for i in pick])
        for name, row in mgf.music.metrics.compare(sample, reference).items():
            held_marks[name] += card.passes(card.finite(row))
    return held_marks


def tune(name: str, seeds: int = 3) -> list[tuple[int, float, dict]]:
    """Every setting of TUNING[name] against 300 training pieces: (marks met, the largest |relative difference| of
    any metric, setting), best first.  Each setting generates 100 pieces per seed (seeds 1, 2, ...), and its metrics
    are averaged over the seeds: with 50 pieces a mean moves by up to 20% from one seed to the next."""
    import itertools

    path = packaged_model(f"{name}.safetensors")
    model = mgf.load_model(path)
    model.defaults = {}
    train, held = split(model.representation, bundle.read_metadata(path)["training"]["data"])
    steps = card.piece_steps(held.sequences)
    pick = np.random.default_rng(1).choice(len(train.sequences), min(300, len(train.sequences)), replace=False)
    tuning = [train.sequences[i] for i in pick]
    keys, values = zip(*TUNING[name]["grid"].items())
    ranked = []
    for combination in itertools.product(*values):
        options = dict(zip(keys, combination))
        found = [card.measure_model(model, tuning, steps=steps, pieces=100, sampler="temperature",
                                    constraints=TUNING[name]["constraints"], seed=1 + seed, **options)["metrics"]
                 for seed in range(seeds)]
        rows = {metric: {"relative": float(np.mean([f[metric]["relative"] if f[metric]["relative"] is not None
                                                   else np.inf for f in found])),
                         "overlap": float(np.mean([f[metric]["overlap"] for f in found]))} for metric in found[0]}
        marks = sum(card.passes(card.finite(row)) for row in rows.values())
        worst = max(abs(row["relative"]) for row in rows.values())
        ranked.append((marks, worst, options))
        print(f"{marks:2d} {worst:.3f} {options}", flush=True)
    return sorted(ranked, key=lambda r: (-r[0], r[1]))


def measure(model, held, pieces: int, sampler: str | None, constraints, options) -> dict:
    """One setting's card; an exhaustive beam search is deterministic, so it gives its ``beam_size`` best beams once."""
    if sampler == "beam" and options.get("branch_factor", 0) == 0:
        defaults = {option.name: option.default for option in mgf.plugin_class("samplers", "beam").options}
        pieces = min(pieces, options.get("beam_size", defaults["beam_size"]))
    return card.measure_model(model, held, pieces=pieces, sampler=sampler, constraints=constraints, **options)


def quality(name: str, pieces: int, defaults: dict) -> dict:
    """The card of each setting of ``name`` against its held-out corpus, the first with ``defaults``:
    ``{"sources": ..., "settings": {label: card}}``."""
    path = packaged_model(f"{name}.safetensors")
    model = mgf.load_model(path)
    sources = bundle.read_metadata(path)["training"]["data"]
    train, held = (side.sequences for side in split(model.representation, sources))
    found = {"model": os.path.basename(path), "sources": sources, "settings": {},
             "corpus_floor": corpus_floor(model.representation, train, held, card.piece_steps(held))}
    settings = {"defaults": (None, None, {}), **SETTINGS[name]}
    for label, (sampler, constraints, options) in settings.items():
        model.defaults = defaults if label == "defaults" else {}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            found["settings"][label] = measure(model, held, pieces, sampler, constraints, options)
        found["settings"][label]["warnings"] = [str(w.message) for w in caught]
    return found


def quality_table(cards: dict) -> str:
    """One row per metric; per setting the generated mean, its difference from the corpus mean and the overlap."""
    settings = cards["settings"]
    first = next(iter(settings.values()))
    lines = [
        (f"Generated ({first['generation']['steps']} tokens a piece, seed {first['generation']['seed']}, native "
         f"backend) against {first['held_out_pieces']} held-out pieces of {', '.join(cards['sources'])} (cut to as "
         f"many tokens).  Each cell: generated mean (difference from the corpus mean) overlapping area; "
         f"**bold**: within {card.WITHIN:.0%} and overlap at least {card.OVERLAP}."),
        "",
        "| metric | corpus | " + " | ".join(settings) + " |",
        "|---|--:|" + "--:|" * len(settings),
    ]
    for metric in first["metrics"]:
        cells = []
        for setting in settings.values():
            row = setting["metrics"][metric]
            relative = "n/a" if row["relative"] is None else f"{row['relative']:+.0%}"
            cell = f"{row['generated']:.3g} ({relative}) {row['overlap']:.2f}"
            cells.append(f"**{cell}**" if card.passes(row) else cell)
        lines.append(f"| {metric} | {first['metrics'][metric]['reference']:.3g} | " + " | ".join(cells) + " |")
    met = [f"{label}: {s['meets_marks']}/{len(s['metrics'])}" for label, s in settings.items()]
    lines += ["", "Metrics that meet both marks: " + "; ".join(met) + "."]
    floor = ", ".join(f"{metric} {count}" for metric, count in cards["corpus_floor"].items())
    lines += ["", f"Real music against the same held-out pieces: {FLOOR_PIECES} training pieces at a time, "
                  f"{FLOOR_DRAWS} draws, cut to as many tokens; draws in which each mark holds: {floor}."]
    for label, setting in settings.items():
        for message in dict.fromkeys(setting["warnings"]):
            lines.append(f"`{label}` warned: {message}")
    return "\n".join(lines)


def audio_quality(representation, pieces) -> str:
    """Encode -> decode against the original sound, on held-out pieces: the tokenizer's own loss."""
    from mgf.plugins.representations.audio import nearest, stft

    convergence, distance, codebook_error = [], [], []
    for name in pieces:
        for _, original in representation.sounds(name):
            frames = representation.log_mel(original)
            tokens = nearest(frames, representation.codebook.astype(np.float64))
            codebook_error.append(np.sqrt(np.mean((frames - representation.codebook[tokens]) ** 2)))
            decoded = representation.to_samples(tokens)
            n = min(len(original), len(decoded))
            X = np.abs(stft(original[:n], representation.n_fft, representation.hop))
            Y = np.abs(stft(decoded[:n], representation.n_fft, representation.hop))
            Y *= (X * Y).sum() / (Y * Y).sum()
            convergence.append(np.linalg.norm(X - Y) / np.linalg.norm(X))
            distance.append(np.mean(np.sqrt(np.mean((20 * np.log10((X + 1e-5) / (Y + 1e-5))) ** 2, axis=1))))
    return (f"Tokenizer on {len(pieces)} held-out chorales (encode -> decode against the rendered original): "
            f"spectral convergence {np.mean(convergence):.3f}, log-spectral distance {np.mean(distance):.1f} dB, "
            f"codebook reconstruction error {np.mean(codebook_error):.3f} (RMS, natural-log mel units).")


def training_section(name: str) -> list[str]:
    path = packaged_model(f"{name}.safetensors")
    meta = bundle.read_metadata(path)["training"]
    scores = meta.get("validation_cross_entropy", {})
    lines = [
        f"## `{name}`",
        "",
        (f"- data: {', '.join(meta['data'])} ({meta['pieces']['train']} training pieces, "
         f"{meta['pieces']['validation']} validation pieces, {meta['tokens']['train']:,} training tokens)"),
        f"- command: `{meta['command']}`",
        (f"- size: {os.path.getsize(path) / 1e6:.2f} MB; {meta['epochs']} epochs in "
         f"{meta['train_seconds'] / 60:.1f} min on this 2-core machine"),
        "",
        "| validation cross-entropy (nats/token) | value |",
        "|---|--:|",
        *(f"| {k} | {v:.3f} |" for k, v in scores.items()),
    ]
    if scores:
        lines += ["", f"The model beats the 5-gram by {scores['5-gram'] - scores['model']:.3f} nats/token "
                      f"({100 * (1 - scores['model'] / scores['5-gram']):.1f}% lower cross-entropy)."
                  if scores["model"] < scores["5-gram"] else
                  f"The model does NOT beat the 5-gram ({scores['model']:.3f} vs {scores['5-gram']:.3f})."]
    return lines


def report(name: str, pieces: int, cards: dict, write: bool) -> str:
    path = packaged_model(f"{name}.safetensors")
    if not os.path.exists(path):
        return f"## `{name}`\n\nno shipped model at {path}\n"
    lines = training_section(name)
    if name == "audio":
        representation = mgf.load_model(path).representation
        files = [f for source in bundle.read_metadata(path)["training"]["data"]
                 for f in source_files(source, representation.read_suffixes)]
        held = [f for f, out in held_out_files(files, 0.1).items() if out]  # a chorale file is one piece
        return "\n".join(lines + ["", audio_quality(representation, held[:8]), ""])
    cards[name] = quality(name, pieces, DEFAULTS.get(name, {}) if write else bundle.read_metadata(path)["defaults"])
    return "\n".join(lines + ["", quality_table(cards[name]), ""])


def write_card(name: str, found: dict) -> None:
    """Store DEFAULTS, WRITING and the card measured with them in the shipped bundle (weights untouched)."""
    path = packaged_model(f"{name}.safetensors")
    loaded = bundle.read(path)
    loaded.defaults = DEFAULTS.get(name, {})
    loaded.representation["config"].update(WRITING.get(name, {}))
    loaded.training["card"] = {k: v for k, v in found["settings"]["defaults"].items() if k != "warnings"}
    bundle.write(loaded, path)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pieces", type=int, default=card.PIECES, help=f"pieces generated per setting (default: {card.PIECES})")
    parser.add_argument("--models", nargs="+", default=["notes", "midi", "audio"], choices=["notes", "midi", "audio"])
    parser.add_argument("--card", help="also write the comparisons as JSON to this file")
    parser.add_argument("--tune", action="store_true",
                        help="rank the sampling settings of TUNING against training pieces instead (for DEFAULTS)")
    parser.add_argument("--write-cards", action="store_true",
                        help="store DEFAULTS, WRITING and the card measured with DEFAULTS in each shipped bundle")
    args = parser.parse_args(argv)
    if args.tune:
        for name in args.models:
            if name in TUNING:
                print(f"## {name}: best settings against training pieces")
                for marks, worst, options in tune(name)[:5]:
                    print(f"{marks:2d} marks, largest |difference| {worst:.3f}: {options}")
        return
    cards: dict = {}
    print("\n".join(report(name, args.pieces, cards, args.write_cards) for name in args.models))
    if args.card:
        with mgf.atomic_path(args.card) as tmp, open(tmp, "w") as handle:
            json.dump(cards, handle, indent=2)
    if args.write_cards:
        for name, found in cards.items():
            write_card(name, found)


if __name__ == "__main__":
    main()

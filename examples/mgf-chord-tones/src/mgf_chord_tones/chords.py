"""Chord symbols to pitch classes: ``C``, ``Am``, ``F#dim``, ``Bb+``, ``G7``, ``Dm7``, ``Cmaj7``, ``Bm7b5``, ``Edim7``."""

from __future__ import annotations

import re

import mgf

ROOTS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
ACCIDENTALS = {"#": 1, "♯": 1, "b": -1, "♭": -1, "": 0}
#: intervals above the root, by the suffix that names them (several spellings of each)
QUALITIES = {
    ("", "maj", "M"): (0, 4, 7),
    ("m", "min", "-"): (0, 3, 7),
    ("dim", "°", "o"): (0, 3, 6),
    ("aug", "+"): (0, 4, 8),
    ("7", "dom7"): (0, 4, 7, 10),
    ("maj7", "M7", "Δ7", "Δ"): (0, 4, 7, 11),
    ("m7", "min7", "-7"): (0, 3, 7, 10),
    ("mMaj7", "mM7", "minmaj7", "m(maj7)"): (0, 3, 7, 11),
    ("m7b5", "min7b5", "ø", "ø7"): (0, 3, 6, 10),
    ("dim7", "°7", "o7"): (0, 3, 6, 9),
    ("aug7", "+7", "7#5"): (0, 4, 8, 10),
}
INTERVALS = {suffix: intervals for suffixes, intervals in QUALITIES.items() for suffix in suffixes}
_CHORD = re.compile(r"^([A-G])([#♯b♭]?)(.*)$")


def chord(symbol: str) -> frozenset[int]:
    """The pitch classes (C = 0) of one chord symbol; ``ValueError`` naming what is wrong."""
    match = _CHORD.match(symbol)
    if not match:
        raise ValueError(f"{symbol!r} does not start with a root A-G")
    root, accidental, suffix = match.groups()
    if suffix not in INTERVALS:
        raise ValueError(f"{symbol!r}: unknown chord quality {suffix!r} (known: {', '.join(repr(s) for s in INTERVALS)})")
    return frozenset((ROOTS[root] + ACCIDENTALS[accidental] + step) % 12 for step in INTERVALS[suffix])


def progression(text: str, option: str = "chords") -> list[frozenset[int]]:
    """One chord per bar from ``"C G Am F"`` (bar lines ``|`` may separate them); a ``UsageError`` for anything else."""
    symbols = text.replace("|", " ").split()
    if not symbols:
        raise mgf.UsageError(f"option {option} of constraint 'chord-tones' is empty; give e.g. 'C G Am F'")
    try:
        return [chord(symbol) for symbol in symbols]
    except ValueError as error:
        raise mgf.UsageError(f"option {option} of constraint 'chord-tones': {error}") from None

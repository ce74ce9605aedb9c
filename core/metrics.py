"""Measures of a piece, computed from its notes ``[(pitch, velocity, start_seconds, end_seconds)]``.

After MusPy's metrics (Dong et al., 2020), defined on notes in seconds so that every
representation with ``to_notes`` can be measured the same way.
"""

from __future__ import annotations

import numpy as np

MAJOR = np.array([1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1], bool)


def pitch_class_histogram(notes) -> np.ndarray:
    """Share of notes on each pitch class C, C#, ..., B (sums to 1; zeros for no notes)."""
    counts = np.bincount([pitch % 12 for pitch, *_ in notes], minlength=12).astype(float)
    return counts / counts.sum() if counts.sum() else counts


def pitch_class_entropy(notes) -> float:
    """Entropy in bits of the pitch-class histogram: 0 for one pitch class, log2(12) for all equally."""
    p = pitch_class_histogram(notes)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def scale_consistency(notes) -> float:
    """Largest share of notes inside one major (or relative minor) scale, over the 12 transpositions."""
    counts = np.bincount([pitch % 12 for pitch, *_ in notes], minlength=12)
    if not counts.sum():
        return 0.0
    return float(max(counts[np.roll(MAJOR, k)].sum() for k in range(12)) / counts.sum())


def note_density(notes) -> float:
    """Notes per second, over the span from the first onset to the last end."""
    if not notes:
        return 0.0
    span = max(end for *_, end in notes) - min(start for *_, start, _ in notes)
    return len(notes) / span if span > 0 else 0.0


def polyphony(notes, resolution: float = 0.01) -> float:
    """Mean number of sounding notes over the moments at which at least one sounds."""
    if not notes:
        return 0.0
    steps = int(np.ceil(max(end for *_, end in notes) / resolution)) + 1
    sounding = np.zeros(steps, int)
    for _, _, start, end in notes:
        sounding[int(round(start / resolution)):max(int(round(end / resolution)), int(round(start / resolution)) + 1)] += 1
    active = sounding[sounding > 0]
    return float(active.mean()) if active.size else 0.0


def pitch_range(notes) -> int:
    """Highest minus lowest pitch, in semitones."""
    return int(max(p for p, *_ in notes) - min(p for p, *_ in notes)) if notes else 0


def pitches_used(notes) -> int:
    return len({p for p, *_ in notes})


def empty_beat_rate(notes, beat_seconds: float = 0.5) -> float:
    """Share of beats (0.5 s at 120 qpm) in which no note sounds, over the piece's length."""
    if not notes:
        return 0.0
    beats = int(np.ceil(max(end for *_, end in notes) / beat_seconds))
    busy = np.zeros(max(beats, 1), bool)
    for _, _, start, end in notes:
        busy[int(start // beat_seconds):max(int(np.ceil(end / beat_seconds)), int(start // beat_seconds) + 1)] = True
    return float(1.0 - busy.mean())


def repetition(notes, length: int = 4) -> float:
    """Share of the piece's pitch n-grams (of ``length`` successive onsets) that occurred before in it."""
    pitches = [p for p, *_ in sorted(notes, key=lambda n: (n[2], n[0]))]
    grams = [tuple(pitches[i:i + length]) for i in range(len(pitches) - length + 1)]
    if not grams:
        return 0.0
    seen, repeats = set(), 0
    for gram in grams:
        repeats += gram in seen
        seen.add(gram)
    return repeats / len(grams)


METRICS = {
    "pitch_range": pitch_range,
    "pitches_used": pitches_used,
    "pitch_class_entropy": pitch_class_entropy,
    "scale_consistency": scale_consistency,
    "note_density": note_density,
    "polyphony": polyphony,
    "empty_beat_rate": empty_beat_rate,
    "repetition": repetition,
}


def measure(notes) -> dict[str, float]:
    """Every metric of one piece."""
    return {name: float(fn(notes)) for name, fn in METRICS.items()}

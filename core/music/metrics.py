"""Measures of a piece, computed from its notes ``[(pitch, velocity, start_seconds, end_seconds)]``,
and distances between the distributions of a measure over two sets of pieces.

After MusPy's metrics (Dong et al., 2020), defined on notes in seconds so that every
representation with ``to_notes`` can be measured the same way.  Two sets (generated pieces, a
corpus) are compared per metric by the overlapping area of their kernel-density estimates (Yang &
Lerch, 2020): a difference of means hides a bimodal or spread-out set, the overlap does not.
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


def pitch_classes_used(notes) -> int:
    """Distinct pitch classes (0 to 12): a tonal piece uses about 7, a random one all 12."""
    return len({p % 12 for p, *_ in notes})


def velocity_spread(notes) -> float:
    """Standard deviation of the velocities: 0 when every note is played alike."""
    return float(np.std([v for _, v, *_ in notes])) if notes else 0.0


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
    "pitch_classes_used": pitch_classes_used,
    "pitch_class_entropy": pitch_class_entropy,
    "scale_consistency": scale_consistency,
    "note_density": note_density,
    "polyphony": polyphony,
    "empty_beat_rate": empty_beat_rate,
    "repetition": repetition,
    "velocity_spread": velocity_spread,
}


def measure(notes) -> dict[str, float]:
    """Every metric of one piece."""
    return {name: float(fn(notes)) for name, fn in METRICS.items()}


TAILS = 6.0  # bandwidths beyond the extreme values covered by the grid
POINTS_PER_BANDWIDTH = 4  # grid resolution: a kernel spans many points, so sums are integrals
MAX_POINTS = 20_000
CHUNK = 256  # values per block of the density sum: memory stays at MAX_POINTS * CHUNK floats


def scott_bandwidth(values) -> float:
    """Scott's rule for a Gaussian kernel in one dimension: sample standard deviation times ``n ** -0.2``."""
    values = np.asarray(values, float)
    return float(np.std(values, ddof=1) * len(values) ** -0.2) if len(values) > 1 else 0.0


def kde(values, grid, bandwidth: float) -> np.ndarray:
    """Gaussian kernel-density estimate of ``values`` at the points of ``grid``."""
    values, grid = np.asarray(values, float), np.asarray(grid, float)
    density = np.zeros(len(grid))
    for first in range(0, len(values), CHUNK):
        z = (grid[:, None] - values[None, first:first + CHUNK]) / bandwidth
        density += np.exp(-0.5 * z * z).sum(axis=1)
    return density / (len(values) * bandwidth * np.sqrt(2 * np.pi))


def densities(a, b) -> tuple[np.ndarray, np.ndarray] | None:
    """The two sets' densities as masses on the cells of one even grid (each sums to 1); ``None`` if all values are one.

    Each set has its own Scott bandwidth.  A set whose values are all equal (bandwidth 0) is
    smoothed like the other set, so that one value against a set that often takes it (an empty
    beat rate of 0 against a corpus mostly at 0) overlaps as much as the other set sits there;
    when both are constants, each gets 1/200 of the pooled range, and they barely overlap.
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    if not (a.size and b.size):
        raise ValueError("comparing distributions needs at least one value in each set")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("comparing distributions needs finite values")
    low, high = min(a.min(), b.min()), max(a.max(), b.max())
    if high == low:
        return None
    widths = [scott_bandwidth(v) for v in (a, b)]
    widths = [w or max(widths) or (high - low) / 200 for w in widths]
    low, high = low - TAILS * max(widths), high + TAILS * max(widths)
    points = int(np.clip(np.ceil(POINTS_PER_BANDWIDTH * (high - low) / min(widths)), 512, MAX_POINTS))
    grid = np.linspace(low, high, points)
    p, q = (kde(v, grid, w) for v, w in zip((a, b), widths))
    return p / p.sum(), q / q.sum()


def overlap_area(a, b) -> float:
    """Area under the pointwise minimum of the two sets' densities: 1 for equal distributions, 0 for disjoint ones."""
    found = densities(a, b)
    return 1.0 if found is None else float(min(1.0, np.minimum(*found).sum()))


def kl_divergence(a, b) -> float:
    """KL(P_a || P_b) in nats between the sets' densities: 0 for equal distributions, growing without bound.

    Densities are floored at 1e-12 of their peak, so that sets far apart give a large finite
    number instead of infinity.
    """
    found = densities(a, b)
    if found is None:
        return 0.0
    p, q = (np.maximum(d, 1e-12 * d.max()) for d in found)
    return float(max(0.0, (p * np.log(p / q)).sum()))


def compare(generated, reference) -> dict[str, dict[str, float]]:
    """Per metric, two sets of measured pieces (dicts of :func:`measure`) side by side.

    ``generated`` and ``reference`` means, ``relative`` difference of the means (against the
    reference; infinite when only the reference's is 0), ``overlap`` (:func:`overlap_area`) and
    ``kl`` (:func:`kl_divergence` of the reference from the generated set).
    """
    table = {}
    for name in METRICS:
        a, b = [m[name] for m in generated], [m[name] for m in reference]
        mean_a, mean_b = float(np.mean(a)), float(np.mean(b))
        relative = (mean_a - mean_b) / abs(mean_b) if mean_b else (0.0 if mean_a == 0 else float("inf"))
        table[name] = {"generated": mean_a, "reference": mean_b, "relative": relative,
                       "overlap": overlap_area(a, b), "kl": kl_divergence(b, a)}
    return table

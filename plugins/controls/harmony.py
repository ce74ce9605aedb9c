"""Built-in controls of harmony: ``chord`` (per bar) and ``key`` (per piece), found by template matching on the notes'
pitch classes weighted by how long they sound.

Why templates and not music21's chord analysis: it is the same method at its core (``chordify`` and the triad a bar's
pitch classes fit best), runs in microseconds per bar without importing music21 (controls are extracted for every
training piece each epoch, and at generation for the primer), and gives a melody, which has one note at a time, a
chord too: the triad that covers the most of the bar's sounding time.  The key is Krumhansl-Kessler's profile
correlation (Krumhansl 1990), which is also what music21's ``analyze('key')`` computes by default.
"""

from __future__ import annotations

import re

import numpy as np

from mgf import BarBias, Constraint, Control, Option, UsageError, hookimpl, token_pitches
from mgf.contract.controls import BarNotes, describe

#: the names the labels use, sharps but for the flats musicians write
NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
#: chord qualities: label suffix, intervals above the root
QUALITIES = (("", (0, 4, 7)), ("m", (0, 3, 7)))
#: the label of a bar with no note sounding
NO_CHORD = "N"
#: Krumhansl-Kessler key profiles, tonic first
KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
_CHORD = re.compile(r"^([A-Ga-g][#♯sb♭]*)(maj7|maj|M7|M|min7|min|m7|m|7)?$")
_KEY = re.compile(r"^([A-Ga-g][#♯sb♭]*)\s*(major|minor|Major|Minor|maj|min|m|M)?$")
_SUFFIXES = {None: "", "maj": "", "M": "", "7": "", "maj7": "", "M7": "", "m": "m", "min": "m", "m7": "m", "min7": "m"}


def pitch_class(name: str) -> int:
    """``C`` 0, ``F#`` 6, ``Eb`` 3, ``B#`` 0 (music21's ``-`` for flat too); ``ValueError`` for anything else."""
    match = re.fullmatch(r"([A-Ga-g])([#♯sb♭-]*)", name.strip())
    if not match:
        raise ValueError(name)
    letter, marks = match.groups()
    return (NAMES.index(letter.upper()) + sum(1 if c in "#♯s" else -1 for c in marks)) % 12


def _templates() -> np.ndarray:
    """float [24, 12]: per chord label (roots in ``NAMES`` order, major then minor), 1 on its tones."""
    out = np.zeros((len(NAMES) * len(QUALITIES), 12))
    for q, (_, intervals) in enumerate(QUALITIES):
        for root in range(12):
            out[q * 12 + root, [(root + i) % 12 for i in intervals]] = 1
    return out


TEMPLATES = _templates()
CHORD_LABELS = tuple(f"{NAMES[r]}{suffix}" for suffix, _ in QUALITIES for r in range(12)) + (NO_CHORD,)


def chord_index(profile: np.ndarray) -> int:
    """The chord label whose triad covers most of ``profile`` (steps per pitch class); ties go to the one whose root
    sounds longest, then to major.  ``NO_CHORD`` for silence."""
    if profile.sum() <= 0:
        return len(CHORD_LABELS) - 1
    roots = np.tile(np.arange(12), len(QUALITIES))
    score = TEMPLATES @ profile + 0.5 * profile[roots] - 1e-6 * np.arange(len(TEMPLATES))
    return int(np.argmax(score))


def chord_tones(label: str) -> tuple[int, ...]:
    """The pitch classes of a chord label of :data:`CHORD_LABELS` (none for ``N``)."""
    index = CHORD_LABELS.index(label)
    return () if label == NO_CHORD else tuple(np.flatnonzero(TEMPLATES[index]).tolist())


class Chord(Control):
    """The bar's chord: a major or minor triad on one of 12 roots (``Am``, ``F#``, ``Bb``), or ``N`` for silence.

    Sevenths name their triad (``G7`` is ``G``, ``Am7`` is ``Am``); flats and sharps are the same root (``A#`` is
    ``Bb``)."""

    name = "chord"
    description = "the bar's triad (root and major/minor) by template match; --chords \"Am F C G\""

    def values(self, clock):
        return CHORD_LABELS

    def extract(self, notes: BarNotes, values):
        return np.array([values.index(CHORD_LABELS[chord_index(notes.profile(bar))]) for bar in range(notes.bars)], np.int64)

    def parse(self, text, values):
        match = _CHORD.match(text.strip())
        if text.strip().upper() == NO_CHORD:
            label = NO_CHORD
        elif match and match.group(2) in _SUFFIXES:
            try:
                root = pitch_class(match.group(1))
            except ValueError:
                root = None
            label = None if root is None else NAMES[root] + _SUFFIXES[match.group(2)]
        else:
            label = None
        if label is None or label not in values:
            raise UsageError(f"control 'chord': {text!r:.40} is not a chord it knows ({describe(list(values))}; "
                             "sevenths name their triad: G7, Am7)")
        return list(values).index(label)


KEY_LABELS = tuple(f"{NAMES[t]} {mode}" for mode in ("major", "minor") for t in range(12))


def key_index(profile: np.ndarray) -> int:
    """The key of :data:`KEY_LABELS` whose Krumhansl-Kessler profile correlates best with ``profile``."""
    if profile.sum() <= 0 or np.ptp(profile) == 0:
        return 0
    scores = [np.corrcoef(profile, np.roll(kk, tonic))[0, 1] for kk in (KK_MAJOR, KK_MINOR) for tonic in range(12)]
    return int(np.argmax(scores))


def key_scale(label: str) -> tuple[int, ...]:
    """The pitch classes of a key label's scale (natural minor for minor)."""
    tonic, mode = label.split()
    steps = (0, 2, 4, 5, 7, 9, 11) if mode == "major" else (0, 2, 3, 5, 7, 8, 10)
    return tuple(sorted((NAMES.index(tonic) + s) % 12 for s in steps))


class Key(Control):
    """The piece's key, one of 24 (``A minor``, ``Eb major``; ``Am`` and ``a minor`` too), at every bar."""

    name = "key"
    description = "the piece's key (Krumhansl-Kessler), at every bar; --key \"A minor\""
    per_piece = True

    def values(self, clock):
        return KEY_LABELS

    def extract(self, notes: BarNotes, values):
        return np.full(notes.bars, values.index(KEY_LABELS[key_index(notes.profile())]), np.int64)

    def parse(self, text, values):
        match = _KEY.match(text.strip())
        label = None
        if match:
            try:
                tonic = pitch_class(match.group(1))
            except ValueError:
                tonic = None
            mode = "minor" if (match.group(2) or "").lower() in ("minor", "min", "m") and match.group(2) != "M" else "major"
            label = None if tonic is None else f"{NAMES[tonic]} {mode}"
        if label is None or label not in values:
            raise UsageError(f"control 'key': {text!r:.40} is not a key it knows ({describe(list(values))})")
        return list(values).index(label)


class FollowChords(Constraint):
    """Favour the chord's tones: in each bar, ``chord_bonus`` nats on the NOTE_ONs of its chord's pitch classes against
    the other NOTE_ONs (``--chords``, one a bar from the first bar generated, repeating), the soft form of forbidding
    them; the NOTE_ONs together keep their probability against holds and rests (a plain bonus made every step a new
    note, a plain malus made the music sparse).  Without ``--chords``, nothing.
    With a model trained with the ``chord`` control the same ``--chords`` also steers the model (the shipped ``notes``
    model runs both by default); without, this alone leans any model to them."""

    name = "follow-chords"
    options = (Option("chords", str, None, "one chord per bar, repeating: 'Am F C G' (major and minor triads; N: none)"),
               Option("chord_bonus", float, 2.0, "nats for each bar's chord tones against other notes (0: off)", low=0,
                      high=50))

    def rules(self, ctx):
        text = ctx.options["chords"]
        if not text or not ctx.options["chord_bonus"]:  # nothing asked: a model's default that waits for --chords
            return []
        control = Chord()
        labels = [CHORD_LABELS[control.parse(item, CHORD_LABELS)] for item in text.replace(",", " ").split()]
        if len(labels) > 4096:
            raise UsageError("constraint 'follow-chords': at most 4096 chords")
        pitches = token_pitches(ctx.representation, self.name)
        starts = pitches >= 0
        per_bar = ctx.representation.clock().steps_per_bar
        first = int(ctx.clock["step"][0]) // per_bar if ctx.clock is not None else 0  # the progression's first bar
        bias = np.zeros((len(labels), len(pitches)), np.float32)
        for bar in range(len(labels)):
            tones = chord_tones(labels[(bar - first) % len(labels)])
            bias[bar, starts & np.isin(pitches % 12, tones)] = ctx.options["chord_bonus"]
        return [BarBias(bias, keep=starts)]


@hookimpl
def register_controls(register):
    register(Chord)
    register(Key)


@hookimpl
def register_constraints(register):
    register(FollowChords)

"""Built-in controls of texture: ``density`` (notes that start in a bar) and ``polyphony`` (notes sounding at once).

Counts are exact up to where music is usually counted note by note, then binned (MIDI-GPT bins its per-bar density
the same way): a label is a count (``6``) or a range (``13-15``, ``48+``), and a number given at generation picks the
label it falls in.
"""

from __future__ import annotations

import numpy as np

from mgf import Control, UsageError, hookimpl
from mgf.contract.clock import TokenKind
from mgf.contract.controls import BarNotes, describe

#: the lower ends of the bins past the exact counts
DENSITY_BINS = (13, 16, 20, 24, 32, 48, 64)
POLYPHONY_BINS = (7,)


def _labels(exact: int, bins: tuple[int, ...]) -> tuple[str, ...]:
    """``0 .. exact``, then a range per bin (the last open)."""
    ranges = [f"{low}-{high - 1}" if high - 1 > low else str(low) for low, high in zip(bins, bins[1:])]
    return tuple(str(n) for n in range(exact + 1)) + tuple(ranges) + (f"{bins[-1]}+",)


def _bin(count: int, values) -> int:
    """The index of the label of ``values`` that ``count`` falls in."""
    for index in range(len(values) - 1, -1, -1):
        label = values[index]
        if count >= int(label.rstrip("+").split("-")[0]):
            return index
    return 0


def _number(name: str, text: str, values) -> int:
    """What a user typed (a count, or a label), as the index of the label it falls in; ``UsageError`` past the range."""
    text = str(text).strip()
    if text in values:
        return list(values).index(text)
    if not (text.isascii() and text.isdigit() and len(text) <= 6):
        raise UsageError(f"control {name!r}: {text!r:.40} is not a count it knows ({describe(list(values))})")
    count, top = int(text), values[-1]
    if not top.endswith("+") and count > int(top.split("-")[-1]):
        raise UsageError(f"control {name!r}: {count} is past its range ({describe(list(values))})")
    return _bin(count, values)


class Density(Control):
    """Notes that start in the bar: ``0`` to a bar's grid steps on a monophonic representation, counts to 12 then bins
    on a polyphonic one; ``--density 6``."""

    name = "density"
    description = "notes starting in the bar (counts, binned above 12); --density 6"

    def values(self, clock):
        polyphonic = bool((clock.kinds == TokenKind.NOTE_OFF).any())
        return _labels(12, DENSITY_BINS) if polyphonic else tuple(str(n) for n in range(min(clock.steps_per_bar, 64) + 1))

    def extract(self, notes: BarNotes, values):
        counts = np.bincount(notes.starts // notes.steps_per_bar, minlength=notes.bars)[:notes.bars]
        return np.array([_bin(int(c), values) for c in counts], np.int64)

    def parse(self, text, values):
        return _number(self.name, text, values)


class Polyphony(Control):
    """Notes sounding at once, on average over the steps of the bar where any sounds (rounded; 0: a silent bar), on a
    representation that sounds several at once; ``--polyphony 3``."""

    name = "polyphony"
    description = "notes sounding at once, bar average where any sounds (polyphonic representations); --polyphony 3"

    def supports(self, clock):
        if not (clock.kinds == TokenKind.NOTE_OFF).any():
            return "needs a representation that sounds several notes at once (NOTE_OFF tokens); this one is monophonic"
        return None

    def values(self, clock):
        return _labels(6, POLYPHONY_BINS)

    def extract(self, notes: BarNotes, values):
        per_bar, out = notes.steps_per_bar, np.zeros(notes.bars, np.int64)
        if not len(notes.starts):
            return out
        total = notes.bars * per_bar
        change = np.zeros(total + 1, np.int64)
        np.add.at(change, np.clip(notes.starts, 0, total), 1)
        np.add.at(change, np.clip(notes.ends, 0, total), -1)
        sounding = np.cumsum(change)[:total].reshape(notes.bars, per_bar)
        for bar, steps in enumerate(sounding):
            busy = steps[steps > 0]
            out[bar] = _bin(int(np.rint(busy.mean())) if busy.size else 0, values)
        return out

    def parse(self, text, values):
        return _number(self.name, text, values)


@hookimpl
def register_controls(register):
    register(Density)
    register(Polyphony)

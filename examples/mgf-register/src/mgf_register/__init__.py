"""``register``: an attribute control (mgf contract 3) for how high a bar sits: ``low``, ``middle`` or ``high``.

A control is an extractor (what a bar of music is) and a token family (its values): mgf interleaves the tokens at
bar starts for training (``mgf train --controls register``) and makes the model choose them at generation
(``mgf generate --control register=high``).  This one takes the bar's mean pitch, weighted by how long each note
sounds, against two boundaries; a bar with no note is ``silent``.
"""

import numpy as np

import mgf

#: the values, low to high, and the mean MIDI pitch each starts at (C4 is 60)
VALUES = ("silent", "low", "middle", "high")
BOUNDS = (60, 72)


def register_of(pitches: np.ndarray, steps: np.ndarray) -> str:
    """The register of notes of ``pitches`` that sound ``steps`` grid steps each."""
    if not steps.sum():
        return "silent"
    mean = float((pitches * steps).sum() / steps.sum())
    return VALUES[1 + int(np.searchsorted(BOUNDS, mean, side="right"))]


class Register(mgf.Control):
    """How high the bar sits: its mean pitch, weighted by duration, below C4, from C4, or from C5."""

    name = "register"
    description = "the bar's mean pitch: low (below C4), middle, high (C5 up), silent; --control register=high"

    def values(self, clock):
        return VALUES

    def extract(self, notes: mgf.BarNotes, values):
        return np.array([values.index(register_of(*notes.sounding(bar))) for bar in range(notes.bars)], np.int64)


@mgf.hookimpl
def register_controls(register):
    register(Register)

"""Dynamics for written MIDI: metric accents and phrase swells on the velocities of a piece.

A model trained on scores rendered to MIDI never heard dynamics: music21 plays every chorale note at
velocity 80, so the shipped ``midi`` model writes every note at 78 and its files sound flat.  With
``dynamics="accents"`` (the ``midi`` representation's config; the shipped bundle's, or ``mgf generate
--dynamics accents``) the velocities are shaped when a piece is written, in 4/4 on the piece's own pulse
(:func:`pulse`: the chorales play at their metronome marks, 96 qpm for some, 120 for most), counted from
its first onset:

* metric accents: a note starting on a bar's first beat gets ``DOWNBEAT`` more, on its third beat
  ``MIDBEAT`` more, on the other beats nothing, between beats ``OFFBEAT`` (less);
* phrase swells: over each phrase of ``PHRASE_BARS`` bars the level rises and falls again, a half sine
  from ``-SWELL`` at the phrase's edges to ``+SWELL`` in its middle.

Both are added to the model's own velocity and clipped to 1..127; the tokens are not changed, only
what is written.  ``"none"`` writes the model's velocities as they are.
"""

from __future__ import annotations

import math

import numpy as np

STYLES = ("none", "accents")
BEATS_PER_BAR = 4
DOWNBEAT, MIDBEAT, OFFBEAT = 12, 6, -8
PHRASE_BARS = 4
SWELL = 10
ON_BEAT = 0.125  # an onset this close to a beat (in beats) falls on it


def shape(notes, style: str):
    """``notes`` (``(pitch, velocity, start, end)``, seconds) with velocities shaped by ``style`` (one of STYLES)."""
    if style == "none" or not notes:
        return list(notes)
    first = min(start for _, _, start, _ in notes)
    beat = pulse([start - first for _, _, start, _ in notes])
    return [(pitch, velocity_at(velocity, (start - first) / beat), start, end) for pitch, velocity, start, end in notes]


def pulse(onsets) -> float:
    """The beat in seconds (0.4 to 1 s: 60 to 150 qpm) on which most ``onsets`` (seconds from the first) fall.

    Each candidate is scored by the share of onsets within ``ON_BEAT`` of one of its beats, less a
    little for faster beats (which catch more onsets by chance); ties go to the slower beat.
    """
    times = np.unique(np.asarray(onsets, np.float64))
    beats = np.arange(0.4, 1.0001, 0.005)
    position = times[None, :] / beats[:, None]
    on = (np.abs(position - np.round(position)) <= ON_BEAT).mean(axis=1) - 0.1 * (1 / beats)
    return float(beats[np.flatnonzero(on >= on.max() - 1e-9)[-1]])


def velocity_at(velocity: int, beats: float) -> int:
    """``velocity`` of a note starting ``beats`` beats into the piece, with its accent and the phrase's swell."""
    nearest = round(beats)
    if abs(beats - nearest) > ON_BEAT:
        accent = OFFBEAT
    else:
        accent = {0: DOWNBEAT, 2: MIDBEAT}.get(nearest % BEATS_PER_BAR, 0)
    phrase = (beats / (BEATS_PER_BAR * PHRASE_BARS)) % 1.0
    swell = SWELL * (2 * math.sin(math.pi * phrase) - 1)
    return int(min(127, max(1, round(velocity + accent + swell))))

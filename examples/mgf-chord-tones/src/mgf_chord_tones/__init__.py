"""Constraints on musical time, assembled from mgf's public rules so that they run inside the C loop.

``chord-tones``: a note may start in a bar only on a tone of that bar's chord (``--chords "C G Am F"``: one chord
per bar, the progression repeating).  ``max-notes-per-bar``: at most ``--max-notes`` notes start in one bar.
Both read where tokens fall from the representation's clock (``Representation.clock()``), so they work on any
representation that has one (``notes``, ``midi``, ...), and neither has an ``apply``: the core runs their rules.
"""

from __future__ import annotations

import numpy as np

import mgf

from .chords import progression


def note_starts(ctx: mgf.Context, constraint: str) -> tuple[mgf.Clock, np.ndarray]:
    """The representation's clock and bool ``[V]``: which tokens start a note; a ``UsageError`` without a clock."""
    clock = ctx.representation.clock()
    if clock is None:
        raise mgf.UsageError(f"constraint {constraint!r} needs to know where tokens fall in time, and representation "
                             f"{ctx.representation.name!r} has no clock (Representation.clock)")
    return clock, (clock.kinds == mgf.TokenKind.NOTE_ON) & (clock.pitches >= 0)


class ChordTones(mgf.Constraint):
    """In bar b, NOTE_ONs of pitches outside chord b (mod the progression's length) are forbidden."""

    name = "chord-tones"
    options = (mgf.Option("chords", str, "C G Am F", "one chord per bar, repeating: 'C G Am F', 'Dm7 G7 Cmaj7 Cmaj7', "
                                                      "'F#m Bb+ Edim Bm7b5'"),)

    def rules(self, ctx):
        clock, starts = note_starts(ctx, self.name)
        classes = np.where(starts, clock.pitches, 0) % 12
        masks = np.stack([starts & ~np.isin(classes, sorted(tones)) for tones in progression(ctx.options["chords"])])
        return [mgf.BarMask(masks, cycle=True)]


class MaxNotesPerBar(mgf.Constraint):
    """At most ``--max-notes`` notes start in one bar."""

    name = "max-notes-per-bar"
    options = (mgf.Option("max_notes", int, 8, "notes that may start in one bar", low=0, high=100_000),)

    def rules(self, ctx):
        _, starts = note_starts(ctx, self.name)
        return [mgf.BarBudget(starts, ctx.options["max_notes"])]


@mgf.hookimpl
def register_constraints(register):
    register(ChordTones)
    register(MaxNotesPerBar)

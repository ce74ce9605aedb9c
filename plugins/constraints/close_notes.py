"""``close-notes``: the performance rules an event model forgets, kept at generation time.

An event model must remember, for every note it starts, to end it: at temperature 1 the shipped
chorale model sometimes forgets, and a forgotten note rings on under every later chord (the
generated chorales sounded 8.6 notes at once against Bach's 4).  Decoding with the representation's
``max_note_seconds`` only shortens such a note afterwards; this constraint changes what the model
may say next, so the rest of the piece follows from notes that really ended:

- ``max_note_seconds``: no time advance may carry a sounding note past this length, and once a note
  has sounded this long only NOTE_OFFs of such notes may follow;
- ``max_polyphony``: while this many notes sound, no NOTE_ON of a pitch not sounding; the
  probability the model gave those NOTE_ONs goes to the NOTE_OFF of the longest-sounding note.

It is the public rule ``mgf.CloseNotes``, which reads note-ons, note-offs and time from the
representation's clock (``Representation.clock()``): no token ids are assumed, so it serves any
representation whose clock ends each note it starts with a NOTE_OFF (``midi``, and third-party ones).
"""

from __future__ import annotations

import numpy as np

from mgf import Constraint, Option, TokenKind, UsageError, hookimpl
from mgf import CloseNotes as CloseNotesRule

PITCHES = 128


class CloseNotes(Constraint):
    name = "close-notes"
    options = (
        Option("max_note_seconds", float, 4.0, "end a note held this long: only NOTE_OFFs may follow it", low=0.01,
               high=3600),
        Option("max_polyphony", int, None,
               "at most this many notes at once: a new one ends the longest-sounding (default: no limit)", low=1,
               high=PITCHES),
    )

    def rules(self, ctx):
        representation = ctx.representation
        clock = representation.clock()
        if clock is None:
            raise UsageError(f"constraint 'close-notes' needs to know which tokens start and end notes and move time, and "
                             f"representation {representation.name!r} has no clock (Representation.clock)")
        started = clock.pitches[clock.kinds == TokenKind.NOTE_ON]
        if not started.size:
            raise UsageError(f"constraint 'close-notes' ends notes, and representation {representation.name!r} "
                             f"starts none (no NOTE_ON in its clock)")
        if not np.isin(started, clock.pitches[clock.kinds == TokenKind.NOTE_OFF]).all():
            raise UsageError(f"constraint 'close-notes' ends notes with their NOTE_OFF, and representation "
                             f"{representation.name!r} has none for some pitch it starts")
        max_steps = max(1, round(ctx.options["max_note_seconds"] / clock.step_seconds))
        return [CloseNotesRule(max_steps, ctx.options["max_polyphony"])]


@hookimpl
def register_constraints(register):
    register(CloseNotes)

"""Built-in constraints on pitch: ``scale``, ``pitch-range``, ``no-repeat``; and ``hold-limit`` on any token.

The pitch constraints work on any representation that says which tokens start which pitch
(``Representation.token_pitches``); tokens that start no note (rests, holds, time shifts,
note-offs) are never touched.  Each is one public rule (``mgf.Forbid``, ``mgf.RunLimit``) that
the core applies in both loops, as it would a third-party constraint's.
"""

from __future__ import annotations

import re

import numpy as np

from mgf import BarBias, Conditioned, Constraint, Forbid, Option, RunLimit, UsageError, hookimpl, token_pitches

STEPS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
MODES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "ionian": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "aeolian": (0, 2, 3, 5, 7, 8, 10),
    "harmonic minor": (0, 2, 3, 5, 7, 8, 11),
    "melodic minor": (0, 2, 3, 5, 7, 9, 11),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "lydian": (0, 2, 4, 6, 7, 9, 11),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "locrian": (0, 1, 3, 5, 6, 8, 10),
    "pentatonic": (0, 2, 4, 7, 9),
    "major pentatonic": (0, 2, 4, 7, 9),
    "minor pentatonic": (0, 3, 5, 7, 10),
    "blues": (0, 3, 5, 6, 7, 10),
    "whole tone": (0, 2, 4, 6, 8, 10),
    "chromatic": tuple(range(12)),
}
_NOTE = re.compile(r"^([A-Ga-g])([#♯sb♭]*|-?)(-?\d+)?$")


def pitch_class(name: str) -> int:
    """``C`` 0, ``F#`` 6, ``Eb`` 3, ``B#`` 0; ``ValueError`` for anything else."""
    match = _NOTE.match(name.strip())
    if not match or match.group(3) is not None:
        raise ValueError(name)
    return (STEPS[match.group(1).upper()] + _accidental(match.group(2))) % 12


def _accidental(text: str) -> int:
    return sum(1 if c in "#♯s" else -1 for c in text if c in "#♯sb♭")


def scale_pitch_classes(key: str) -> tuple[int, ...]:
    """Pitch classes of a key such as ``"D minor"``, ``"F# dorian"``, ``"Eb pentatonic"`` (default mode: major)."""
    parts = key.strip().split(None, 1)
    if not parts:
        raise UsageError("option key of constraint 'scale' is empty; give e.g. 'D minor'")
    mode = parts[1].strip().lower() if len(parts) > 1 else "major"
    try:
        tonic = pitch_class(parts[0])
    except ValueError:
        raise UsageError(f"option key of constraint 'scale': {parts[0]!r} is not a note name (C, F#, Eb, ...)") from None
    if mode not in MODES:
        raise UsageError(f"option key of constraint 'scale': unknown mode {mode!r} (known: {', '.join(MODES)})")
    return tuple(sorted((tonic + step) % 12 for step in MODES[mode]))


def midi_number(text: str, option: str) -> int:
    """``C4`` 60 (scientific pitch: C4 is middle C), ``Bb3`` 58, ``C-1`` 0, or a MIDI number ``0..127``."""
    text = text.strip()
    if text.isascii() and text.isdigit() and len(text) <= 3:
        number = int(text)
    else:
        match = _NOTE.match(text)
        if not match or match.group(3) is None or len(match.group(3)) > 3:
            raise UsageError(f"option {option} of constraint 'pitch-range': {text!r} is neither a note name (C4, F#5) "
                             "nor a MIDI number")
        number = 12 * (int(match.group(3)) + 1) + STEPS[match.group(1).upper()] + _accidental(match.group(2))
    if not 0 <= number <= 127:
        raise UsageError(f"option {option} of constraint 'pitch-range': {text!r} is outside MIDI's 0..127")
    return number


class PitchMask(Constraint):
    """A constraint that forbids a fixed set of pitches: one ``Forbid`` rule over the tokens that start them."""

    def rules(self, ctx):
        pitches = token_pitches(ctx.representation, self.name)
        return [Forbid((pitches >= 0) & ~self.allowed_pitches(ctx.options)[np.clip(pitches, 0, 127)])]

    def allowed_pitches(self, options) -> np.ndarray:
        """bool ``[128]``: which MIDI pitches may start."""
        raise NotImplementedError


class Scale(PitchMask):
    """Only notes of one key, e.g. ``--key "D minor"``."""

    name = "scale"
    options = (Option("key", str, "C major", "tonic and mode: 'D minor', 'F# dorian', 'Eb pentatonic', ..."),)

    def allowed_pitches(self, options):
        return np.isin(np.arange(128) % 12, scale_pitch_classes(options["key"]))


class PitchRange(PitchMask):
    """Only notes between ``--low`` and ``--high`` (inclusive)."""

    name = "pitch-range"
    options = (
        Option("low", str, None, "lowest allowed note: a name (C3; C4 is middle C) or a MIDI number"),
        Option("high", str, None, "highest allowed note: a name (C6) or a MIDI number"),
    )

    def allowed_pitches(self, options):
        if options["low"] is None and options["high"] is None:
            raise UsageError("constraint 'pitch-range' needs --low, --high or both")
        low = 0 if options["low"] is None else midi_number(options["low"], "low")
        high = 127 if options["high"] is None else midi_number(options["high"], "high")
        if low > high:
            raise UsageError(f"constraint 'pitch-range': low ({low}) is above high ({high})")
        return (np.arange(128) >= low) & (np.arange(128) <= high)


class NoRepeat(Constraint):
    """The same pitch at most ``--max-repeats`` times in a row (counting note starts, whatever lies between)."""

    name = "no-repeat"
    options = (Option("max_repeats", int, 3, "how many times in a row one pitch may start", low=1, high=10_000),)

    def rules(self, ctx):
        return [RunLimit(self.groups(ctx), self.limit(ctx.options))]

    def groups(self, ctx) -> np.ndarray:
        """int ``[vocab]``: what a token repeats (its pitch; -1: nothing, such tokens are skipped)."""
        return token_pitches(ctx.representation, self.name)

    def limit(self, options) -> int:
        return options["max_repeats"]


class HoldLimit(NoRepeat):
    """The same token at most ``--max-holds`` times in a row: in ``notes``, a note or a rest held at most that many
    steps after its first (NO_EVENT is the hold token); ``no-repeat``'s rule with every token its own group."""

    name = "hold-limit"
    options = (Option("max_holds", int, 31, "how many times in a row one token may occur (notes: holds after a note or rest starts)",
                      low=1, high=10_000),)

    def groups(self, ctx):
        groups = np.arange(ctx.representation.vocab_size, dtype=np.int32)
        if isinstance(ctx.representation, Conditioned):  # a bar's control tokens neither count nor end a held note
            groups[ctx.representation.is_control(groups)] = -1
        return groups

    def limit(self, options):
        return options["max_holds"]


class FollowKey(Constraint):
    """Favour a key's scale: ``key_bonus`` nats on the NOTE_ONs of its pitch classes against the other NOTE_ONs, which
    together keep their probability against holds and rests (``mgf.BarBias`` with ``keep``): the soft form of
    ``scale``, with the same ``--key`` (a minor key as harmonic minor, its leading tone in).  Without ``--key``, nothing;
    with a model trained with the ``key`` control, the same ``--key`` also steers the model."""

    name = "follow-key"
    options = (Option("key", str, None, "tonic and mode: 'A minor', 'Eb major', 'D dorian', ..."),
               Option("key_bonus", float, 1.0, "nats for the key's scale against other notes (0: off)", low=0, high=50))

    def rules(self, ctx):
        key = ctx.options["key"]
        if not key or not ctx.options["key_bonus"]:
            return []
        parts = key.strip().split(None, 1)
        if len(parts) == 2 and parts[1].strip().lower() == "minor":
            key = f"{parts[0]} harmonic minor"
        pitches = token_pitches(ctx.representation, self.name)
        starts = pitches >= 0
        bias = np.where(starts & np.isin(pitches % 12, scale_pitch_classes(key)), ctx.options["key_bonus"], 0.0)
        return [BarBias(bias[None, :].astype(np.float32), keep=starts)]


@hookimpl
def register_constraints(register):
    for cls in (Scale, PitchRange, NoRepeat, HoldLimit, FollowKey):
        register(cls)

"""The musical clock: where each token of a representation falls in time, beats and bars.

A constraint sees token ids; "end at bar 8", "at most 6 notes in this bar" or "no note past 30 s"
need to know where a token falls.  Only the representation knows that, so it describes its tokens
once, as arrays (:meth:`mgf.Representation.clock`), and the core keeps each row's position as tokens
are chosen: in C for the rules of :mod:`mgf.rules`, in ``ctx.clock`` for Python plugins.  Arrays,
not a method called per token, so that the C loop can follow any representation, third-party
ones included, at the speed of the built-ins.

Time is counted in grid steps.  Each row starts at step 0 (the start token), and a token moves it:

* ``BAR``: the next bar begins: ``bar += 1`` and ``step = bar * steps_per_bar``, where ``bar`` is the
  bar the row is in, -1 before any token placed it in one (so the first ``BAR`` opens bar 0);
* ``POSITION``: ``step = max(bar, 0) * steps_per_bar + advance[token]`` (``advance`` holds the
  position within the bar), and ``bar = max(bar, 0)``;
* any other token: ``step += advance[token]``; when it moved time, ``bar = max(bar, step // steps_per_bar)``.

These are MidiTok's REMI rules (its ``Bar``/``Position``/``Rest`` decoding); for a representation
without ``BAR`` and ``POSITION`` tokens they reduce to a cumulative sum of ``advance``.  A token falls
where the row is before its own move: a note-on token that also moves time (``notes``) sounds first.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol

import numpy as np
from numpy.typing import ArrayLike

from mgf.errors import InputError, PluginError, UsageError


class TokenKind(IntEnum):
    """What a token does to the music; :attr:`Clock.kinds` holds one per token id."""

    OTHER = 0  #: none of the below (the start token, a program, a tempo, an audio frame, ...)
    NOTE_ON = 1  #: starts a note of ``pitches[token]``
    NOTE_OFF = 2  #: ends the sounding note of ``pitches[token]``
    TIME_SHIFT = 3  #: moves time on by ``advance[token]`` steps
    VELOCITY = 4  #: sets the loudness of the notes that follow
    HOLD = 5  #: keeps what sounds (a note or the silence) for ``advance[token]`` steps
    REST = 6  #: ends whatever note sounds; silence for ``advance[token]`` steps
    BAR = 7  #: the next bar begins
    POSITION = 8  #: moves to step ``advance[token]`` of the current bar


_KIND_VALUES = np.array([int(kind) for kind in TokenKind])


@dataclass(frozen=True, eq=False)
class Clock:
    """Per token id: its kind, the pitch it starts or ends, and how far it moves time; and the grid's meter.

    ``steps_per_beat`` and ``beats_per_bar`` are the meter the representation *writes* (a beat is a
    quarter note in x/4); both 0 when it has none (``audio``): then beats and bars are -1 and rules
    keyed on bars refuse the representation.  ``step_seconds`` is a step's length at the tempo the
    representation writes.  Bad arrays are a :class:`mgf.PluginError`: the representation built them.
    """

    kinds: np.ndarray  #: int8 ``[V]``: a :class:`TokenKind` per token id
    pitches: np.ndarray  #: int16 ``[V]``: the MIDI pitch a NOTE_ON starts / a NOTE_OFF ends, else -1
    advance: np.ndarray  #: int32 ``[V]``: steps the token moves time on (after it sounds); POSITION: the position
    step_seconds: float  #: seconds per grid step at the tempo the representation writes
    steps_per_beat: int  #: grid steps per beat; 0: no beats
    beats_per_bar: int  #: beats per bar (the x of the x/4 written); 0: no bars

    def __post_init__(self) -> None:
        kinds = _array("kinds", self.kinds, np.int8, None)
        size = len(kinds)
        pitches = _array("pitches", self.pitches, np.int16, size)
        advance = _array("advance", self.advance, np.int32, size)
        if size < 1:
            raise PluginError("clock: kinds must have one entry per token id, got none")
        if not np.isin(kinds, _KIND_VALUES).all():
            raise PluginError(f"clock: kinds must be TokenKind values, got {int(kinds[~np.isin(kinds, _KIND_VALUES)][0])}")
        if (advance < 0).any():
            raise PluginError(f"clock: advance must be >= 0, got {int(advance.min())}")
        noted = (kinds == TokenKind.NOTE_ON) | (kinds == TokenKind.NOTE_OFF)
        if ((pitches < 0) | (pitches > 127))[noted].any():
            raise PluginError("clock: every NOTE_ON and NOTE_OFF token needs a pitch in 0..127")
        if (pitches[~noted] != -1).any():
            raise PluginError("clock: pitches must be -1 for tokens that are neither NOTE_ON nor NOTE_OFF")
        if (advance[kinds == TokenKind.BAR] != 0).any():
            raise PluginError("clock: BAR tokens must have advance 0 (a BAR moves to the next bar line)")
        for name in ("steps_per_beat", "beats_per_bar"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value <= 2**31 - 1:
                raise PluginError(f"clock: {name} must be an int >= 0, got {value!r}")
        if (self.steps_per_beat == 0) != (self.beats_per_bar == 0):
            raise PluginError("clock: steps_per_beat and beats_per_bar are both 0 (no meter) or both > 0")
        if not self.steps_per_bar and np.isin(kinds, (TokenKind.BAR, TokenKind.POSITION)).any():
            raise PluginError("clock: BAR and POSITION tokens need bars (steps_per_beat and beats_per_bar > 0)")
        seconds = self.step_seconds
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float, np.floating)) or not 0 < seconds < np.inf:
            raise PluginError(f"clock: step_seconds must be a positive number, got {seconds!r}")
        for name, value in (("kinds", kinds), ("pitches", pitches), ("advance", advance)):
            value.flags.writeable = False
            object.__setattr__(self, name, value)
        object.__setattr__(self, "step_seconds", float(seconds))
        object.__setattr__(self, "steps_per_beat", int(self.steps_per_beat))
        object.__setattr__(self, "beats_per_bar", int(self.beats_per_bar))

    @property
    def vocab_size(self) -> int:
        """Token ids the clock describes: the representation's ``vocab_size``."""
        return len(self.kinds)

    @property
    def steps_per_bar(self) -> int:
        """Grid steps per bar; 0 without a meter."""
        return self.steps_per_beat * self.beats_per_bar

    def steps(self, tokens: ArrayLike) -> np.ndarray:
        """int64 ``[n + 1]``: the step at which each of ``tokens`` falls, then the step of the token after them.

        The reference for the rules in the module docstring (the C loop keeps the same per row).
        """
        tokens = np.asarray(tokens)
        if tokens.ndim != 1 or not (tokens.dtype.kind in "iu" or tokens.size == 0):
            raise InputError("clock: tokens must be a 1-D sequence of integer ids")
        tokens = tokens.astype(np.int64)
        if tokens.size and (tokens.min() < 0 or tokens.max() >= self.vocab_size):
            bad = tokens[(tokens < 0) | (tokens >= self.vocab_size)][0]
            raise InputError(f"clock: token id {int(bad)} is outside [0, {self.vocab_size})")
        moves = self.advance[tokens].astype(np.int64)
        kinds = self.kinds[tokens]
        if not np.isin(kinds, (TokenKind.BAR, TokenKind.POSITION)).any():
            return np.concatenate([[0], np.cumsum(moves)])
        out = np.empty(len(tokens) + 1, dtype=np.int64)
        step, bar, per_bar = 0, -1, self.steps_per_bar
        for index, (kind, move) in enumerate(zip(kinds.tolist(), moves.tolist())):
            out[index] = step
            if kind == TokenKind.BAR:
                bar += 1
                step = bar * per_bar
            elif kind == TokenKind.POSITION:
                bar = max(bar, 0)
                step = bar * per_bar + move
            elif move:
                step += move
                bar = max(bar, step // per_bar)
        out[-1] = step
        return out

    def beat_of(self, steps: ArrayLike) -> np.ndarray:
        """int64: the beat (counted from 0 at step 0) of each step; -1 without a meter."""
        steps = np.asarray(steps, dtype=np.int64)
        return steps // self.steps_per_beat if self.steps_per_beat else np.full_like(steps, -1)

    def bar_of(self, steps: ArrayLike) -> np.ndarray:
        """int64: the bar (counted from 0 at step 0) of each step; -1 without a meter."""
        steps = np.asarray(steps, dtype=np.int64)
        return steps // self.steps_per_bar if self.steps_per_bar else np.full_like(steps, -1)

    def seconds_of(self, steps: ArrayLike) -> np.ndarray:
        """float64: the time of each step in seconds, at the tempo the representation writes."""
        return np.asarray(steps, dtype=np.int64) * self.step_seconds


class Clocked(Protocol):
    """What :func:`clock_of` uses of a :class:`mgf.Representation` (named so, not imported: the representation imports this module)."""

    @property
    def name(self) -> str: ...

    @property
    def vocab_size(self) -> int: ...

    def clock(self) -> Clock | None: ...


def clock_of(representation: Clocked, needed_by: str | None = None) -> Clock | None:
    """``representation.clock()``, checked once for every caller: a :class:`Clock` of its ``vocab_size``, or None.

    With ``needed_by`` (a rule or constraint that cannot work without one) None is a ``UsageError`` naming it.
    """
    clock = representation.clock()
    if clock is not None and (not isinstance(clock, Clock) or clock.vocab_size != representation.vocab_size):
        got = f"a Clock of {clock.vocab_size} ids" if isinstance(clock, Clock) else type(clock).__name__
        raise PluginError(f"representation {representation.name!r}: clock() must give an mgf.Clock of its "
                          f"{representation.vocab_size} token ids or None, got {got}")
    if clock is None and needed_by is not None:
        raise UsageError(f"{needed_by} needs to know where tokens fall in time, and representation "
                         f"{representation.name!r} has no clock (Representation.clock())")
    return clock


def _array(name: str, value: ArrayLike, dtype: type, size: int | None) -> np.ndarray:
    """``value`` as a 1-D ``dtype`` array of ``size`` entries (a copy), if every entry fits."""
    array = np.asarray(value)
    if array.ndim != 1 or not (array.dtype.kind in "iu" or array.size == 0):
        raise PluginError(f"clock: {name} must be a 1-D integer array, got {array.dtype} of shape {array.shape}")
    if size is not None and len(array) != size:
        raise PluginError(f"clock: {name} has {len(array)} entries, kinds has {size}: one per token id")
    info = np.iinfo(dtype)
    if array.size and (array.min() < info.min or array.max() > info.max):
        raise PluginError(f"clock: {name} must fit {np.dtype(dtype).name}")
    return array.astype(dtype)

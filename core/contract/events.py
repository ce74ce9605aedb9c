"""Incremental decoding: tokens in, timed note events out, as the tokens arrive.

``to_notes`` turns a whole sequence into notes; live playback, a jam and a streaming server cannot
wait for the whole sequence: they need each note-on and note-off as soon as the tokens so far fix it.
A :class:`Decoder` (from :meth:`mgf.Representation.decoder`) takes one token at a time and gives the
:class:`Event`\\ s whose time and content are now certain; :meth:`Decoder.close` ends what still sounds.
All events of a sequence, fed token by token and closed, are the note-ons and note-offs of
``to_notes`` of the whole sequence.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import Counter
from typing import NamedTuple, Protocol

import numpy as np

from mgf.errors import InputError, MgfError, PluginError, UsageError


class Event(NamedTuple):
    """A note starting or ending: ``(seconds, kind, pitch, velocity)``; a note-off has velocity 0.

    Tuples order by time, then ``"note_off"`` before ``"note_on"``, as a MIDI file plays them.
    """

    seconds: float  #: from the start of the sequence, at the tempo the representation writes
    kind: str  #: ``"note_on"`` or ``"note_off"``
    pitch: int  #: MIDI pitch
    velocity: int  #: 1..127 for a note-on, 0 for a note-off


def note_events(notes) -> list[Event]:
    """The note-on and note-off events of ``to_notes``' ``[(pitch, velocity, start, end)]``, in time order."""
    events = []
    for pitch, velocity, start, end in notes:
        events.append(Event(float(start), "note_on", int(pitch), int(velocity)))
        events.append(Event(float(end), "note_off", int(pitch), 0))
    return sorted(events)


class Decodable(Protocol):
    """What a decoder uses of a :class:`mgf.Representation` (named so, not imported: the representation imports this module)."""

    @property
    def name(self) -> str: ...

    @property
    def vocab_size(self) -> int: ...

    def to_notes(self, tokens) -> list[tuple[int, int, float, float]]: ...


class Decoder(ABC):
    """One token in, the events it makes certain out (see the module docstring); one decoder per sequence.

    Subclasses implement :meth:`feed` and :meth:`close`, calling :meth:`check` on each token first.
    """

    def __init__(self, representation: Decodable) -> None:
        self.name, self.vocab_size = representation.name, representation.vocab_size
        self.closed = False

    @abstractmethod
    def feed(self, token: int) -> list[Event]:
        """The events that ``token`` (after the ones fed before) makes certain, in time order; ``InputError`` for a bad id."""

    @abstractmethod
    def close(self) -> list[Event]:
        """The events still open at the end: the note-offs of what sounds (and its note-ons if not given yet)."""

    def check(self, token: int) -> int:
        """``token`` as an int if it is a token id; ``InputError`` if not, ``UsageError`` after :meth:`close`."""
        if self.closed:
            raise UsageError(f"{self.name}: the decoder is closed; start another with decoder()")
        if type(token) is not int:  # numpy integers; not bool, float or str
            if isinstance(token, bool) or not hasattr(token, "__index__"):
                raise InputError(f"{self.name}: a token id must be an integer, got {token!r}")
            token = token.__index__()
        if not 0 <= token < self.vocab_size:
            raise InputError(f"{self.name}: token id {token} is outside [0, {self.vocab_size})")
        return token


class ReplayDecoder(Decoder):
    """The decoder of any representation with ``to_notes``: each token, the whole sequence is decoded again.

    It cannot know a third-party representation's rules, only its notes, so it relies on one property
    of music written in time order: no token changes what sounds before the latest note-on so far.  The
    events before that horizon are given once; those at or after it wait for a later note-on, or for
    :meth:`close`.  A representation that breaks the property (an event given earlier is no longer in
    the notes) is a ``PluginError``: it needs its own :meth:`mgf.Representation.decoder`.  A late event
    (a note placed before the horizon after all) is given when it appears, out of time order.

    Cost: one ``to_notes`` of the whole prefix per token, O(n) per token and O(n²) per sequence, since
    the notes of an unknown representation may depend on any earlier token; the built-ins give their own,
    O(1) decoders.
    """

    def __init__(self, representation: Decodable) -> None:
        super().__init__(representation)
        self.representation = representation
        self.tokens: list[int] = []
        self.horizon = -math.inf
        self.given: Counter[Event] = Counter()

    def feed(self, token: int) -> list[Event]:
        self.tokens.append(self.check(token))
        try:
            events = self._events()
        except MgfError:  # e.g. an InputError of to_notes: the decoder goes on as if the token had not come
            self.tokens.pop()
            raise
        self.horizon = max([self.horizon] + [event.seconds for event in events if event.kind == "note_on"])
        return self._give(events)

    def close(self) -> list[Event]:
        events = self._events() if self.tokens else []
        self.closed, self.horizon = True, math.inf
        return self._give(events)

    def _events(self) -> list[Event]:
        return note_events(self.representation.to_notes(np.asarray(self.tokens, dtype=np.int32)))

    def _give(self, events: list[Event]) -> list[Event]:
        known = Counter(event for event in events if event.seconds < self.horizon)
        if self.given - known:
            lost = min((self.given - known).elements())
            raise PluginError(f"representation {self.name!r}: to_notes no longer has {lost} after token {len(self.tokens) - 1}: "
                              "a later token changed earlier music, so it needs its own decoder() (Representation.decoder)")
        new, self.given = known - self.given, known
        return sorted(new.elements())

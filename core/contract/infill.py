"""Infilling: four token ids the framework appends to any representation, so that any model can fill a gap.

A model that can infill is trained on fill-in-the-middle examples (Bavarian et al., 2022, "Efficient Training of
Language Models to Fill in the Middle"), in their suffix-prefix-middle order::

    [start, SUFFIX, *after, PREFIX, *before, MIDDLE, *middle, END]

``before`` and ``after`` are the music on either side of the gap, ``middle`` the gap itself.  SPM order puts the
music before the gap right before the middle, so the middle continues it as plain generation does; the music after
the gap has been read by then.  The ids are ``V .. V + 3`` for a representation of ``V`` ids, the same for every
representation, so that no plugin writes code to infill: :class:`Infilling` wraps the representation, and the
bundle says so (``mgf.infill``, docs/bundle-format.md).

A gap is whole bars where the clock has bars (:func:`gap_bounds`), else a span of time (:func:`gap_bounds_seconds`):
training cuts its examples that way and generation fills them, so the middle always advances exactly the steps
from the gap's first token to the first token after it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from mgf.contract.clock import Clock
from mgf.contract.extension import Extension
from mgf.contract.representation import Representation
from mgf.errors import InputError, UsageError

#: how ``sequence`` orders an example; what ``mgf.infill`` records as its ``format``
FORMAT = "spm"
#: the ids' names, in the order they follow the representation's own ids
NAMES = ("suffix", "prefix", "middle", "end")


@dataclass(frozen=True)
class InfillTokens:
    """The four infilling ids of a representation of ``suffix`` ids: ``suffix = V``, ``prefix = V + 1``, ..."""

    suffix: int
    prefix: int
    middle: int
    end: int

    @classmethod
    def after(cls, vocab_size: int) -> InfillTokens:
        """The ids that follow a vocabulary of ``vocab_size`` ids."""
        return cls(*(int(vocab_size) + k for k in range(len(NAMES))))

    @property
    def base_vocab_size(self) -> int:
        """``V``: the ids below the first infilling one are the representation's own."""
        return self.suffix

    def as_dict(self) -> dict[str, int]:
        """``{"suffix": V, "prefix": V + 1, "middle": V + 2, "end": V + 3}``, as ``mgf.infill`` stores them."""
        return {name: getattr(self, name) for name in NAMES}


def sequence(tokens: InfillTokens, before: ArrayLike, after: ArrayLike, middle: ArrayLike = ()) -> np.ndarray:
    """int32 ``[SUFFIX, *after, PREFIX, *before, MIDDLE, *middle, END]`` (no start token: windows and generation add it).

    With ``middle`` empty it ends at MIDDLE: the prompt a model fills from.  ``InputError`` for an infilling id or a
    negative one (a conditioned model's control ids, after the infilling ones, are music's own here).
    """
    parts = [np.asarray(part, dtype=np.int64).reshape(-1) for part in (before, after, middle)]
    for name, part in zip(("before", "after", "middle"), parts):
        if part.size and (part.min() < 0 or ((part >= tokens.suffix) & (part <= tokens.end)).any()):
            raise InputError(f"infill: {name} must be token ids of music (below {tokens.base_vocab_size}, or a control's "
                             "after the infilling ones)")
    before_, after_, middle_ = parts
    closing = [[tokens.middle], middle_, [tokens.end]] if middle_.size else [[tokens.middle]]
    return np.concatenate([[tokens.suffix], after_, [tokens.prefix], before_, *closing]).astype(np.int32)


def gap_bounds(clock: Clock, tokens: ArrayLike, first_bar: int, last_bar: int) -> tuple[int, int]:
    """``(i, j)``: ``tokens[i:j]`` is the gap over bars ``first_bar..last_bar`` (0-based, inclusive).

    ``i`` is the first token that falls at or after the first bar's line, ``j`` the first at or after the line
    that ends the last bar (``len(tokens)`` if none); ``i == j`` when no token falls in those bars.
    ``UsageError`` for a clock without bars (use :func:`gap_bounds_seconds`) or bars out of order.
    """
    if not clock.steps_per_bar:
        raise UsageError("infill: this representation has no bars; give the gap in seconds")
    if not 0 <= first_bar <= last_bar:
        raise UsageError(f"infill: bars must run from 0 up, first to last, got {first_bar}-{last_bar}")
    per_bar = clock.steps_per_bar
    return _bounds(clock.steps(tokens), first_bar * per_bar, (last_bar + 1) * per_bar)


def gap_bounds_seconds(clock: Clock, tokens: ArrayLike, start: float, end: float) -> tuple[int, int]:
    """``(i, j)``: ``tokens[i:j]`` is the gap from ``start`` to ``end`` seconds, by the clock's ``step_seconds``.

    As :func:`gap_bounds`, with the gap's ends at the first grid steps at or after ``start`` and ``end``.
    """
    if not (math.isfinite(start) and math.isfinite(end) and 0 <= start < end):
        raise UsageError(f"infill: the gap must run from A to B seconds, 0 <= A < B, got {start}-{end}")
    # a hair under the quotient: 0.07 s / 0.01 s is 7.000000000000001, step 7 all the same
    first, stop = (math.ceil(seconds / clock.step_seconds - 1e-9) for seconds in (start, end))
    return _bounds(clock.steps(tokens), first, stop)


def _bounds(steps: np.ndarray, first: int, stop: int) -> tuple[int, int]:
    """The first token falling at or after step ``first``, and the first at or after ``stop`` (or the end)."""
    falls = steps[:-1]
    i = int(np.argmax(falls >= first)) if (falls >= first).any() else len(falls)
    later = np.flatnonzero(falls[i:] >= stop)
    return i, (i + int(later[0]) if later.size else len(falls))


class Infilling(Extension):
    """``base`` with the four infilling ids after its own: what a model trained with ``mgf train --infill`` scores.

    Its name, config, start token and files are the base's (a bundle stores the base); music with an infilling id
    in it cannot be written, rendered or decoded (``InputError``): those ids only frame a prompt.
    """

    def __init__(self, base: Representation, tokens: InfillTokens | None = None) -> None:
        if isinstance(base, Infilling):
            raise UsageError("infill: the representation already has infilling tokens")
        self.infill = tokens or InfillTokens.after(base.vocab_size)
        if self.infill != InfillTokens.after(base.vocab_size):
            raise UsageError(f"infill: tokens {self.infill.as_dict()} do not follow the {base.vocab_size} ids of "
                             f"representation {base.name!r}")
        super().__init__(base)

    @property
    def vocab_size(self) -> int:
        return self.infill.end + 1

    def transpose(self, tokens: np.ndarray, semitones: int) -> np.ndarray | None:
        """The music moved by the base, the infilling ids kept where they are."""
        tokens = np.asarray(tokens, dtype=np.int32)
        framing = tokens >= self.infill.suffix
        moved = self.base.transpose(tokens[~framing], semitones)
        if moved is None:
            return None
        out = tokens.copy()
        out[~framing] = moved
        return out

    def music(self, tokens: ArrayLike) -> np.ndarray:
        """``tokens`` if none of them is an infilling id, else ``InputError``."""
        array = np.asarray(tokens)
        if array.dtype.kind not in "iu":
            return array  # the base says what is wrong with it
        framing = array[(array >= self.infill.suffix) & (array < self.vocab_size)]
        if framing.size:
            token = int(framing[0])
            raise InputError(f"{self.name}: token {token} is an infilling token ({NAMES[token - self.infill.suffix]}), "
                             "not music: it frames a prompt and cannot be written")
        return array

    def __repr__(self) -> str:
        return f"Infilling({self.base!r})"

"""Fill-in-the-middle training examples (``mgf train --infill RATE``): pieces in, windows out, some of them gaps to fill.

Each epoch cuts the pieces into the windows of :func:`mgf.training.windows.windows` and turns a share ``rate`` of
them, drawn afresh from the epoch's generator, into one example each (:func:`mgf.contract.infill.sequence`, the start
token first): a gap that starts inside the window, with at most ``context`` tokens of music on either side.  One
example replaces one window, so an epoch has as many windows as without infilling (the pipeline declares its length
beforehand) and an example fits in its window: the gap is at most ``seq_len - 4 - 2 * context`` tokens.

A gap is 1 to :data:`MAX_GAP_BARS` whole bars where the clock has bars (the bars as :func:`mgf.contract.infill.gap_bounds`
finds them, so what a model learns to fill is what ``mgf infill`` asks of it), else a span of time, cut at the first
tokens at or after its two ends (:func:`mgf.contract.infill.gap_bounds_seconds`).  A window whose shortest gap does
not fit even with less context stays plain music.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mgf.contract.clock import Clock
from mgf.contract.infill import FORMAT, NAMES, InfillTokens, sequence
from mgf.errors import UsageError
from mgf.training.windows import windows as plain_windows

#: the longest gap in bars; the issue's gaps are 4 and 8 bars, and a window rarely holds more with its context
MAX_GAP_BARS = 8


@dataclass(frozen=True)
class Examples:
    """How ``mgf train --infill`` makes its examples: ``rate`` of the windows, ``context`` tokens each side at most."""

    tokens: InfillTokens
    clock: Clock
    rate: float
    context: int

    def __post_init__(self) -> None:
        if not 0 < self.rate <= 1:
            raise UsageError(f"--infill must be in (0, 1], got {self.rate}")
        if self.context < 1:
            raise UsageError(f"--infill-context must be a positive number of tokens, got {self.context}")
        if self.clock.vocab_size < self.tokens.base_vocab_size:  # more: a conditioned model's, controls after
            raise UsageError(f"infill: the clock has {self.clock.vocab_size} ids and the infilling ones follow "
                             f"{self.tokens.base_vocab_size}")

    @property
    def gap(self) -> str:
        """``"bars"`` (whole bars) or ``"tokens"`` (a span of time), as ``mgf.infill`` records it."""
        return "bars" if self.clock.steps_per_bar else "tokens"

    def metadata(self) -> dict[str, Any]:
        """The bundle's ``mgf.infill`` for a model trained on these examples."""
        return {"format": FORMAT, "tokens": self.tokens.as_dict(), "rate": self.rate, "context": self.context,
                "gap": self.gap}

    def windows(self, pieces: list[np.ndarray], start: int, length: int,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``windows(pieces, start, length)`` with a share ``rate`` of its rows replaced by examples drawn from ``rng``."""
        inputs, targets, weights = plain_windows(pieces, start, length)
        rows = [(piece, first) for piece, tokens in enumerate(pieces) for first in range(0, len(tokens), length)]
        chosen = np.flatnonzero(rng.random(len(rows)) < self.rate)
        steps: dict[int, np.ndarray] = {}
        for row in chosen.tolist():
            piece, first = rows[row]
            tokens = np.asarray(pieces[piece], dtype=np.int32)
            if piece not in steps:
                steps[piece] = np.maximum.accumulate(self.clock.steps(tokens)[:-1])
            example = self.example(tokens, steps[piece], first, length, rng)
            if example is not None:
                full = np.concatenate([[start], example])
                n = len(full) - 1
                inputs[row], targets[row], weights[row] = 0, 0, 0.0
                inputs[row, :n], targets[row, :n], weights[row, :n] = full[:-1], full[1:], 1.0
        return inputs, targets, weights

    def example(self, tokens: np.ndarray, reached: np.ndarray, first: int, length: int,
                rng: np.random.Generator) -> np.ndarray | None:
        """One example whose gap starts among ``tokens[first:first + length]``, or None if none fits in ``length``.

        ``reached[k]`` is the latest step any of ``tokens[:k + 1]`` falls at: the first token at or after a step is
        where ``reached`` first gets there.
        """
        room = length - len(NAMES)  # the tokens of music an example holds
        bounds = self._bars(tokens, reached, first, length, room, rng) if self.gap == "bars" else \
            self._span(tokens, reached, first, length, room, rng)
        if bounds is None:
            return None
        i, j = bounds
        before, after = min(i, self.context), min(len(tokens) - j, self.context)
        spare = room - (j - i)
        if before + after > spare:  # a long gap: less context, shared evenly where both sides have it
            before = min(before, max(spare // 2, spare - after))
            after = min(after, spare - before)
        return sequence(self.tokens, tokens[i - before:i], tokens[j:j + after], tokens[i:j])

    def _bars(self, tokens, reached, first, length, room, rng) -> tuple[int, int] | None:
        """A gap of whole bars: a bar line in the window, then 1 to :data:`MAX_GAP_BARS` bars that fit with the context."""
        n, per_bar = len(tokens), self.clock.steps_per_bar
        lines = np.searchsorted(reached, np.arange(int(reached[-1]) // per_bar + 2) * per_bar, "left")
        starts = np.flatnonzero((lines[:-1] >= first) & (lines[:-1] < min(n, first + length)))
        if not starts.size:
            return None
        bar = int(rng.choice(starts))
        i = int(lines[bar])
        ends = lines[bar + 1:bar + 1 + MAX_GAP_BARS]
        fits = [int(j) for j in ends if i < j and (j - i) + min(i, self.context) + min(n - j, self.context) <= room]
        if fits:
            return i, int(rng.choice(fits))
        shortest = next((int(j) for j in ends if j > i), None)  # fits only with less context, or not at all
        return (i, shortest) if shortest is not None and shortest - i <= room else None

    def _span(self, tokens, reached, first, length, room, rng) -> tuple[int, int] | None:
        """A gap of time: from a token in the window, as many steps as a random number of tokens takes, cut at steps."""
        n = len(tokens)
        i = int(rng.integers(first, min(n, first + length)))
        i = int(np.searchsorted(reached, reached[i], "left"))  # the first token at that step
        most = min(room - min(i, self.context) - self.context, n - i)
        if most < 1:
            return None
        end = i + int(rng.integers(1, most + 1))
        j = n if end == n else int(np.searchsorted(reached, reached[end], "left"))
        return (i, j) if j > i else None

"""Conditioned training windows (``mgf train --controls``): control tokens read, never predicted, and left out at times.

Pieces get their control tokens interleaved once they are read (:meth:`Conditioning.transform`: extracted after any
transposition, so a chord moves with its notes); windows (plain, or infilling's examples) are cut from them as
from any music.  A control token is never a target (weight 0): generation chooses it for the model
(:class:`mgf.BarTokens`), so the model spends nothing on predicting it.  In each training window each control is
replaced by its "any" token with its ``dropout`` probability, drawn afresh each epoch, so that the model also writes
without it; validation windows keep every control.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mgf.contract.controls import Conditioned, interleave
from mgf.errors import UsageError
from mgf.training.windows import windows as plain_windows


@dataclass(frozen=True)
class Conditioning:
    """The controls of ``conditioned`` and each one's ``dropout``; ``examples``: infilling's, or None."""

    conditioned: Conditioned
    dropout: tuple[float, ...]
    examples: Any = None

    def __post_init__(self) -> None:
        if len(self.dropout) != len(self.conditioned.families):
            raise UsageError("--controls: one dropout per control")
        for family, rate in zip(self.conditioned.families, self.dropout):
            if not 0 <= rate < 1:
                raise UsageError(f"--controls: the dropout of {family.control.name!r} must be in [0, 1), got {rate}")

    def transform(self, pieces: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Each piece with its control tokens before the first token of each bar."""
        clock = self.conditioned.clock()
        assert clock is not None
        return [interleave(clock, piece, self.conditioned.extract(piece)) for piece in pieces]

    def windows(self, pieces: list[np.ndarray], start: int, length: int,
                rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Windows of ``pieces`` (their controls interleaved): infilling's examples where it has them and ``rng``, the
        control targets weighted 0, and with ``rng`` each control of each window left out with its dropout."""
        if self.examples is not None and rng is not None:
            inputs, targets, weights = self.examples.windows(pieces, start, length, rng)
        else:
            inputs, targets, weights = plain_windows(pieces, start, length)
        weights[self.conditioned.is_control(targets)] = 0.0
        if rng is not None and len(inputs):
            for family, rate in zip(self.conditioned.families, self.dropout):
                left_out = rng.random(len(inputs)) < rate
                for array in (inputs, targets):
                    rows = array[left_out]
                    rows[(rows >= family.first) & (rows < family.any)] = family.any
                    array[left_out] = rows
        return inputs, targets, weights

    def metadata(self) -> dict[str, Any] | None:
        """Infilling's metadata, where it has examples (the bundle's ``mgf.infill``)."""
        return None if self.examples is None else self.examples.metadata()


def parse_controls(text: str, default_dropout: float) -> list[tuple[str, float]]:
    """``"chord,key=0.3,density"`` as ``[(name, dropout)]``: each control's own dropout, else ``default_dropout``."""
    out = []
    for part in text.split(","):
        name, _, rate = part.strip().partition("=")
        if not name:
            raise UsageError(f"--controls: give names separated by commas (chord,key,density), got {text!r:.60}")
        try:
            value = float(rate) if rate else default_dropout
        except ValueError:
            raise UsageError(f"--controls: {part!r:.40}: a dropout is a number in [0, 1)") from None
        out.append((name, value))
    return out

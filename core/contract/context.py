"""What a sampler or constraint sees of the generation in progress: :class:`Context`.

It is its own module, below both the plugin contracts (:mod:`mgf.contract.sampler`, :mod:`mgf.contract.constraint`)
and the run that fills it in (:mod:`mgf.generation.run`): the contracts name it, the run builds it,
and :class:`Driver` states what the run must offer, so neither side imports the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from mgf.contract.model import State
    from mgf.contract.representation import Representation


class Driver(Protocol):
    """The run behind a :class:`Context` (:class:`mgf.generation.run.Run` is the one the core uses)."""

    rng: np.random.Generator
    representation: Representation
    num_outputs: int
    primer: np.ndarray

    def search_prime(self, rows: int) -> tuple[np.ndarray, State]: ...

    def constrain(self, logits: np.ndarray, generated: np.ndarray) -> np.ndarray: ...


class Context:
    """What a sampler or constraint knows about the generation in progress.

    ``rng`` (the only source of randomness, so that a seed reproduces a run), ``options`` (this
    plugin's own options, resolved and validated), ``step`` (index of the token being chosen,
    0 for the first generated token), ``history`` (int32 ``[B, t]``: the primer without the
    start token, then the tokens chosen so far, one row per output or beam) and
    ``representation``.  A search also uses :meth:`prime` and :meth:`constrain`.
    """

    __slots__ = ("rng", "options", "step", "history", "representation", "num_outputs", "_run")

    def __init__(self, run: Driver, options: Mapping[str, Any]) -> None:
        self._run = run
        self.rng: np.random.Generator = run.rng
        self.options = dict(options)
        self.representation: Representation = run.representation
        self.num_outputs: int = run.num_outputs
        self.step = 0
        self.history: np.ndarray = run.primer[None, :]

    def prime(self, rows: int) -> tuple[np.ndarray, State]:
        """Feed the primer to ``rows`` fresh sequences; the logits of the first token to choose, constrained, and the state."""
        return self._run.search_prime(rows)

    def constrain(self, logits: np.ndarray, generated: np.ndarray) -> np.ndarray:
        """``logits`` ``[rows, V]`` with the start token and the constraints applied, for rows that generated ``generated`` so far.

        ``generated`` is int32 ``[rows, t]`` (without the primer).  Raises when a constraint
        leaves a row no token.
        """
        return self._run.constrain(logits, generated)

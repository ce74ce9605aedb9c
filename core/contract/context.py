"""What a sampler or constraint sees of the generation in progress: :class:`Context`.

It is its own module, below both the plugin contracts (:mod:`mgf.contract.sampler`,
:mod:`mgf.contract.constraint`) and the run that fills it in (:mod:`mgf.generation.run`).  It
holds data and the two functions a search calls, never the run itself: a plugin sees what the
contract documents and nothing it could come to depend on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from mgf.errors import UsageError

if TYPE_CHECKING:
    from mgf.contract.model import State
    from mgf.contract.representation import Representation


def _only_for_searches(*args: Any) -> Any:
    raise UsageError("ctx.prime and ctx.constrain are for a sampler's search; this context has none")


class Context:
    """What a sampler or constraint knows about the generation in progress.

    ``rng`` (the only source of randomness, so that a seed reproduces a run), ``options`` (this
    plugin's own options, resolved and validated), ``step`` (index of the token being chosen,
    0 for the first generated token), ``history`` (int32 ``[B, t]``: the primer without the
    start token, then the tokens chosen so far, one row per output or beam), ``representation``,
    ``num_outputs`` and ``clock`` (where the next token falls, when the run keeps a clock; else
    None).  A search also calls :attr:`prime` and :attr:`constrain`.
    """

    __slots__ = ("rng", "options", "step", "history", "representation", "num_outputs", "clock", "prime", "constrain")

    def __init__(self, *, rng: np.random.Generator, options: Mapping[str, Any], representation: Representation,
                 num_outputs: int, history: np.ndarray,
                 prime: Callable[[int], tuple[np.ndarray, State]] = _only_for_searches,
                 constrain: Callable[[np.ndarray, np.ndarray], np.ndarray] = _only_for_searches) -> None:
        self.rng = rng
        self.options = dict(options)
        self.representation = representation
        self.num_outputs = num_outputs
        self.step = 0
        self.history = history
        self.clock: Any = None
        #: ``prime(rows) -> (logits, state)``: feed the primer to ``rows`` fresh sequences; the logits of the first
        #: token to choose, with the start token, the constraints and the processors applied, and the state
        self.prime = prime
        #: ``constrain(logits, generated) -> logits``: ``logits`` ``[rows, V]`` with the start token, the constraints
        #: and the processors applied, for rows that generated ``generated`` (int32 ``[rows, t]``, without the primer);
        #: raises when a constraint leaves a row no token
        self.constrain = constrain

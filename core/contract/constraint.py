"""The contract of a constraint: edit each step's logits so that only allowed tokens can be chosen.

Constraints compose: the core applies them in the order given, after the start token is made
impossible and before the sampler chooses, for every sampler (beam search included) and every
row of a batch.  A row left with no allowed token stops generation with a one-line error
naming the constraint and the step, never garbage.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from mgf.errors import PluginError, UsageError
from mgf.contract.options import Option

if TYPE_CHECKING:
    from mgf.contract.representation import Representation
    from mgf.contract.context import Context


class Constraint(ABC):
    """Masks (sets to ``-inf``) or penalises logits, step by step.

    Class attributes: ``name`` (unique, used by ``--constrain``) and ``options`` (a tuple of
    :class:`mgf.Option`, resolved into ``ctx.options``).  A new instance serves one generation.
    """

    name: ClassVar[str]
    options: ClassVar[tuple[Option, ...]] = ()

    def prepare(self, ctx: Context) -> None:  # noqa: B027 - optional: nothing to prepare by default
        """Called once before the first step (``ctx.step == 0``): precompute masks, refuse a representation it cannot serve."""

    @abstractmethod
    def apply(self, logits: np.ndarray, ctx: Context) -> np.ndarray:
        """Constrained logits for step ``ctx.step``: float32 ``[B, V]``, row ``b`` continuing ``ctx.history[b]``.

        May edit ``logits`` in place and return it.  Forbidden tokens get ``-inf``; never
        NaN or ``+inf``.
        """

    @classmethod
    def _contract_problem(cls, subclass: type) -> str | None:
        """Why ``subclass`` cannot be registered as a constraint, or None."""
        return None


def token_pitches(representation: Representation, constraint: str) -> np.ndarray:
    """The representation's ``token_pitches()``, or a ``UsageError`` saying the constraint needs pitch."""
    pitches = representation.token_pitches()
    if pitches is None:
        raise UsageError(
            f"constraint {constraint!r} needs to know which tokens start which pitch, and representation "
            f"{representation.name!r} does not say (Representation.token_pitches)"
        )
    array = np.asarray(pitches)
    vocab = representation.vocab_size
    if array.shape != (vocab,) or array.dtype.kind not in "iu" or (vocab and (array.min() < -1 or array.max() > 127)):
        raise PluginError(
            f"representation {representation.name!r}: token_pitches() must be int [{vocab}] with values -1..127, "
            f"got {getattr(array, 'dtype', '?')} {list(array.shape)}"
        )
    return array.astype(np.int32)


"""The contract of a constraint: edit each step's logits so that only allowed tokens can be chosen.

A constraint says what it does as rules (:mod:`mgf.rules`, which the core runs in C, in both
loops) or, contract 2's way, as an ``apply`` in Python.  Constraints compose: the core applies
the start token rule, then every constraint's rules, then each ``apply``, in the order given,
before the processors and the sampler's choice, for every sampler (beam search included) and
every row of a batch.  A row left with no allowed token stops generation with a one-line error
naming the constraint and the step, never garbage.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from mgf.errors import PluginError, UsageError
from mgf.contract.options import Option

if TYPE_CHECKING:
    from mgf.contract.representation import Representation
    from mgf.contract.context import Context
    from mgf.generation.rules import Rule


class Constraint:
    """Forbids (sets to ``-inf``) or favours tokens, step by step: through rules, or through ``apply``.

    Class attributes: ``name`` (unique, used by ``--constrain``) and ``options`` (a tuple of
    :class:`mgf.Option`, resolved into ``ctx.options``).  A new instance serves one generation.
    Implement one of :meth:`rules` (contract 3: the core runs them, in C where the run can) and
    :meth:`apply` (contract 2: arbitrary Python, in the Python loop, with the same tokens for a seed).
    """

    name: ClassVar[str]
    options: ClassVar[tuple[Option, ...]] = ()

    def prepare(self, ctx: Context) -> None:  # noqa: B027 - optional: nothing to prepare by default
        """Called once before the first step (``ctx.step == 0``): precompute masks, refuse a representation it cannot serve."""

    def rules(self, ctx: Context) -> Sequence[Rule]:
        """The :mod:`mgf.rules` this constraint is made of, in the order applied; called once, after :meth:`prepare`.

        ``ctx.history`` holds the primer (one row per output); the rules' state then follows every
        row over the primer and each chosen token, in either loop.
        """
        raise NotImplementedError

    def apply(self, logits: np.ndarray, ctx: Context) -> np.ndarray:
        """Constrained logits for step ``ctx.step``: float32 ``[B, V]``, row ``b`` continuing ``ctx.history[b]``.

        May edit ``logits`` in place and return it.  Forbidden tokens get ``-inf``; never
        NaN or ``+inf``.  ``ctx.clock`` says where each row's next token falls (or is None).
        """
        raise NotImplementedError

    @classmethod
    def _contract_problem(cls, subclass: type) -> str | None:
        """Why ``subclass`` cannot be registered as a constraint, or None."""
        if not implements(subclass, "rules") and not implements(subclass, "apply"):
            return "it implements neither rules nor apply"
        return None


def implements(cls: type, method: str) -> bool:
    """Whether constraint class ``cls`` (guarded or not) overrides :class:`Constraint`'s ``method``."""
    return inspect.unwrap(getattr(cls, method)) is not getattr(Constraint, method)


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


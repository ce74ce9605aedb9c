"""The contract of a sampler: a :class:`Policy` chooses each step's tokens, a :class:`Search` branches.

The core owns priming, the loop, batching, option checks, the constraints, the processors
(:mod:`mgf.processors`) and the validation of what a sampler returns; a sampler is only the
decision that makes it different.  :class:`Sampler` is both bases' parent and contract 2's base
class: a plugin that subclasses it directly still works, with a deprecation warning.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from mgf.contract.context import Context
from mgf.contract.options import Option
from mgf.errors import ContractWarning

if TYPE_CHECKING:
    from mgf.generation.processors import Processor


class Sampler:
    """Chooses tokens: the parent of :class:`Policy` and :class:`Search`, and contract 2's base class.

    Class attributes: ``name`` (unique, used by ``--sampler``) and ``options`` (a tuple of
    :class:`mgf.Option`; the core validates given values against it before any work and passes
    the resolved values as ``ctx.options``).  A plugin that subclasses ``Sampler`` itself (contract
    2: ``choose`` or ``search``) is registered with a :class:`DeprecationWarning` naming the base
    to subclass instead.
    """

    name: ClassVar[str]
    options: ClassVar[tuple[Option, ...]] = ()
    #: True: "I am argmax", False: "I am the plain draw" (the core runs either, in C when it can, and never calls
    #: ``choose``); None: the core calls ``choose``
    greedy: ClassVar[bool | None] = None

    def choose(self, logits: np.ndarray, ctx: Context) -> np.ndarray:
        """One token per row (int32 ``[B]``) for step ``ctx.step``; see :class:`Policy`."""
        raise NotImplementedError

    #: a search overrides it with ``def search(self, model, ctx, steps) -> int32 [ctx.num_outputs, steps]``
    search: Any = None

    def processors(self, ctx: Context) -> Sequence[Processor]:
        """Processors this sampler's options stand for, run before the caller's (default: none).

        Called once per run, after the options are resolved (``ctx.options``).  The built-in
        ``temperature`` sampler returns ``Temperature``, ``TopK``, ``TopP`` from its options.
        """
        return ()

    @classmethod
    def _contract_problem(cls, subclass: Any) -> str | None:
        """Why ``subclass`` cannot be registered as a sampler, or None; warns once about a direct contract-2 subclass."""
        if issubclass(subclass, Search):
            return "it does not implement search" if subclass.search is Search.search else None
        if subclass.greedy not in (None, True, False):
            return f"greedy must be True, False or None, not {subclass.greedy!r}"
        chooses = subclass.greedy is not None or subclass.choose not in (Sampler.choose, Policy.choose)
        if issubclass(subclass, Policy):
            return None if chooses else "it implements no choose and sets no greedy"
        if not chooses and subclass.search is None:
            return "it implements neither choose nor search"
        base = "mgf.Search (it implements search)" if subclass.search is not None else "mgf.Policy (it implements choose)"
        warnings.warn(f"sampler {getattr(subclass, 'name', subclass.__name__)!r} ({subclass.__module__}) subclasses "
                      f"mgf.Sampler, contract 2: subclass {base}", ContractWarning, stacklevel=2)
        return None


class Policy(Sampler):
    """Chooses one token per row at each step.  Implement :meth:`choose`, or set ``greedy``.

    ``greedy = True`` (argmax, ties to the lowest id) or ``False`` (one draw from the softmax, by
    inverse CDF with one uniform per row from ``ctx.rng``) says the policy *is* that choice: the
    core then makes it itself, inside its C loop when every rule of the run allows, and never calls
    ``choose``.  The built-in ``greedy`` and ``temperature`` samplers are exactly that.
    """

    def choose(self, logits: np.ndarray, ctx: Context) -> np.ndarray:
        """One token per row (int32 ``[B]``) for step ``ctx.step``.

        ``logits`` is float32 ``[B, V]`` with the start token, every constraint and every
        processor already applied (forbidden or cut tokens are ``-inf``); it may be modified.
        Never choose a token whose logit is ``-inf``; the core checks.
        """
        raise NotImplementedError


class Search(Sampler):
    """Branches: drives the model itself and returns every output at once (beam search).  Implement :meth:`search`."""

    def search(self, model: Any, ctx: Context, steps: int) -> np.ndarray:  # type: ignore[override]
        """int ``[ctx.num_outputs, steps]``: the new tokens of every output, rows distinct where the search can make them so.

        ``model`` is the checked model (its ``step`` validates logits); ``ctx.prime(rows)`` feeds
        the primer and ``ctx.constrain(logits, generated)`` applies the start token, the
        constraints and the processors; call it after every ``model.step``.
        """
        raise NotImplementedError


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-probabilities, in float64 so that long sums stay exact enough to rank beams.

    ``-inf`` logits (forbidden tokens) stay ``-inf``.
    """
    z = logits.astype(np.float64)
    z -= z.max(axis=-1, keepdims=True)
    with np.errstate(divide="ignore"):
        return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))

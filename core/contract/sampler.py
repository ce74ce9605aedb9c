"""The contract of a sampler: a policy that chooses each step's tokens, or a search that branches.

The core owns priming, the loop, batching, option checks and the validation of what a sampler
returns (:mod:`mgf.generation.run`); a sampler is only the decision that makes it different.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from mgf.contract.context import Context
from mgf.contract.options import Option


class Sampler:
    """Chooses tokens.  Implement :meth:`choose` (a policy) or :meth:`search` (a branching search).

    Class attributes: ``name`` (unique, used by ``--sampler``) and ``options`` (a tuple of
    :class:`mgf.Option`; the core validates given values against it before any work and passes
    the resolved values as ``ctx.options``).
    """

    name: ClassVar[str]
    options: ClassVar[tuple[Option, ...]] = ()

    def choose(self, logits: np.ndarray, ctx: Context) -> np.ndarray:
        """One token per row (int32 ``[B]``) for step ``ctx.step``.

        ``logits`` is float32 ``[B, V]`` with the start token and every constraint already
        applied (forbidden tokens are ``-inf``); it may be modified.  Never choose a token whose
        logit is ``-inf``; the core checks.
        """
        raise NotImplementedError

    #: Override with ``def search(self, model, ctx, steps) -> int32 [ctx.num_outputs, steps]`` to branch:
    #: ``model`` is the checked model (its ``step`` validates logits), ``ctx.prime`` and ``ctx.constrain``
    #: feed the primer and apply the start token and constraints.  Rows must be distinct sequences
    #: where the search can make them so.
    search: Any = None

    @classmethod
    def _contract_problem(cls, subclass: Any) -> str | None:
        """Why ``subclass`` cannot be registered as a sampler, or None."""
        if subclass.choose is Sampler.choose and subclass.search is None:
            return "it implements neither choose nor search"
        return None


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-probabilities, in float64 so that long sums stay exact enough to rank beams.

    ``-inf`` logits (forbidden tokens) stay ``-inf``.
    """
    z = logits.astype(np.float64)
    z -= z.max(axis=-1, keepdims=True)
    with np.errstate(divide="ignore"):
        return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def allowed_probabilities(logits: np.ndarray, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> np.ndarray:
    """Row-wise float64 probabilities after temperature, top-k and top-p; tokens cut away (or at ``-inf``) get exactly 0."""
    z = logits.astype(np.float64) / temperature
    rows, vocab = z.shape
    if 0 < top_k < vocab:
        cut = np.argpartition(-z, top_k, axis=1)[:, top_k:]
        np.put_along_axis(z, cut, -np.inf, axis=1)
    z -= z.max(axis=1, keepdims=True)
    prob = np.exp(z)
    prob /= prob.sum(axis=1, keepdims=True)
    if top_p < 1.0:
        order = np.argsort(-prob, axis=1, kind="stable")
        ranked = np.take_along_axis(prob, order, axis=1)
        before = np.cumsum(ranked, axis=1) - ranked
        np.put_along_axis(prob, order, np.where(before < top_p, ranked, 0.0), axis=1)
        prob /= prob.sum(axis=1, keepdims=True)
    return prob


def draw(prob: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One index per row, drawn from ``prob`` by inverse CDF (one uniform per row); zero-probability tokens are never drawn."""
    cdf = np.cumsum(prob, axis=1)
    threshold = (1.0 - rng.random(prob.shape[0]))[:, None] * cdf[:, -1:]  # type: ignore[index]
    return (cdf < threshold).sum(axis=1).astype(np.int32)



def draw_from_logits(logits: np.ndarray, rng: np.random.Generator, temperature: float = 1.0, top_k: int = 0,
                     top_p: float = 1.0) -> np.ndarray:
    """One token per row drawn from softmax(logits / temperature) cut to top-k and top-p (int32 ``[B]``).

    One uniform per row from ``rng``.  Runs the native kernel's C routine when it is built, the
    same one its C generation loop uses, so the Python loop and the C loop draw the same tokens
    for a seed; else :func:`allowed_probabilities` and :func:`draw` in numpy.
    """
    uniforms = rng.random(len(logits))
    try:
        from mgf.kernel._native import draw_rows
    except ImportError:
        probabilities = allowed_probabilities(logits, temperature, top_k, top_p)
        return (np.cumsum(probabilities, axis=1) < ((1.0 - uniforms)[:, None] * probabilities.sum(axis=1, keepdims=True))
                ).sum(axis=1).astype(np.int32)
    return draw_rows(np.ascontiguousarray(logits, dtype=np.float32), uniforms, temperature, top_k, top_p)

"""Logits processors: temperature, top-k, top-p, min-p and the repetition penalty, as public values.

A processor reshapes a step's logits after the constraints and before the choice.  They compose:
the core applies them in the order given, for every sampler (the built-in policies, third-party
policies, beam search through ``ctx.constrain``), in both generation loops, by one routine in C
(``mgf.kernel._native.Chooser``), so that a seed gives the same tokens whichever loop runs.  The
classes here only say *what* to apply and check their values; Hugging Face's ``LogitsProcessor``
is the precedent, ordered composition included (``MinP`` before ``Temperature`` is not ``MinP``
after it: see docs/contract.md).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from mgf.errors import ContractWarning, UsageError

#: the largest ``k`` and ``window`` (no vocabulary or history that large is a setting), and the range of a
#: temperature or a penalty (beyond it a float32 logit only overflows or underflows)
_MOST = 1_000_000
_LOW, _HIGH = 1e-6, 1e6


def _number(owner: str, field: str, value: Any, integer: bool) -> float | int:
    """``value`` as a Python int (``integer``) or finite float, else a one-line ``UsageError``."""
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise UsageError(f"{owner}: {field} must be {'an integer' if integer else 'a number'}, got {value!r:.40}")
    number = int(value) if integer else float(value)
    if not integer and not math.isfinite(number):
        raise UsageError(f"{owner}: {field} must be a finite number, got {value!r}")
    return number


def _bounded(processor: Any, field: str, integer: bool, ok: Callable[[float], bool], allowed: str) -> None:
    """Store ``field`` converted; ``UsageError`` naming the processor, the field and ``allowed`` unless ``ok(value)``."""
    owner = type(processor).__name__
    value = _number(owner, field, getattr(processor, field), integer)
    if not ok(value):
        raise UsageError(f"{owner}: {field} must be {allowed}, got {getattr(processor, field)!r}")
    object.__setattr__(processor, field, value)


@dataclass(frozen=True)
class Temperature:
    """Divide every logit by ``value`` (in [1e-6, 1e6]): below 1 sharpens the distribution, above 1 flattens it."""

    value: float
    kind: ClassVar[str] = "temperature"

    def __post_init__(self) -> None:
        _bounded(self, "value", False, lambda v: _LOW <= v <= _HIGH, "in [1e-06, 1e+06]")


@dataclass(frozen=True)
class TopK:
    """Keep the ``k`` largest logits (ties at the k-th value: the lowest token ids), the others to ``-inf``; 0: off."""

    k: int
    kind: ClassVar[str] = "top_k"

    def __post_init__(self) -> None:
        _bounded(self, "k", True, lambda v: 0 <= v <= _MOST, f"in [0, {_MOST}]")


@dataclass(frozen=True)
class TopP:
    """Nucleus: keep the most probable tokens, in order, while the probability ranked before each is below ``p``.

    ``p`` in (0, 1]; 1 keeps every token.  The probabilities are the softmax of the logits as they
    reach this processor (after any processor before it).
    """

    p: float
    kind: ClassVar[str] = "top_p"

    def __post_init__(self) -> None:
        _bounded(self, "p", False, lambda v: 0 < v <= 1, "in (0, 1]")


@dataclass(frozen=True)
class MinP:
    """Keep the tokens whose probability is at least ``p`` times the largest one's, the others to ``-inf``.

    ``p`` in [0, 1]; 0 keeps every token.  Unlike top-p, the cut follows the model's confidence:
    a sure step keeps few tokens, an open one many (Nguyen et al. 2024, "min-p sampling").  The
    rule on logits is ``z >= max z + log p``, so a temperature before it changes what it keeps.
    """

    p: float
    kind: ClassVar[str] = "min_p"

    def __post_init__(self) -> None:
        _bounded(self, "p", False, lambda v: 0 <= v <= 1, "in [0, 1]")


@dataclass(frozen=True)
class RepetitionPenalty:
    """Push down the tokens a row already holds (Keskar et al. 2019, CTRL; Hugging Face's rule).

    For each distinct token among the row's last ``window`` tokens (primer included; 0: the whole
    history), a positive logit is divided by ``penalty`` and any other one multiplied by it, so a
    ``penalty`` above 1 makes repeats less likely and below 1 more likely.  In music some repetition
    is the point: a window of a bar or two and a penalty near 1.2 break loops without forbidding motifs.
    """

    penalty: float
    window: int = 0
    kind: ClassVar[str] = "repetition_penalty"

    def __post_init__(self) -> None:
        _bounded(self, "penalty", False, lambda v: _LOW <= v <= _HIGH, "in [1e-06, 1e+06]")
        _bounded(self, "window", True, lambda v: 0 <= v <= _MOST, f"in [0, {_MOST}]")


Processor = Temperature | TopK | TopP | MinP | RepetitionPenalty

#: every processor class by its ``kind`` (the command line's flag, with ``-`` for ``_``)
KINDS: dict[str, type] = {cls.kind: cls for cls in (Temperature, TopK, TopP, MinP, RepetitionPenalty)}
_INERT = (Temperature(1.0), TopK(0), TopP(1.0))


def checked(processors: Any) -> list[Processor]:
    """``processors`` as a list, each one a processor of this module; ``UsageError`` otherwise."""
    if processors is None:
        return []
    if isinstance(processors, (str, bytes)) or not hasattr(processors, "__iter__"):
        raise UsageError(f"processors must be a list of mgf processors (mgf.Temperature, mgf.MinP, ...), got {processors!r:.60}")
    found = list(processors)
    for processor in found:
        if type(processor) not in KINDS.values():
            raise UsageError(f"processors: {processor!r:.60} is not an mgf processor "
                             f"({', '.join(cls.__name__ for cls in KINDS.values())})")
    return found


def from_options(temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> list[Processor]:
    """The processors of the contract-2 options, in that order, leaving out the values that change nothing.

    The built-in ``temperature`` sampler turns its options into these, so ``temperature=0.8,
    top_k=20`` keeps working, and a bundle's default options with it.
    """
    found: list[Processor] = [Temperature(temperature), TopK(top_k), TopP(top_p)]
    return [p for p, inert in zip(found, _INERT) if p != inert]


def _chooser(processors: list, greedy: bool):
    from mgf.kernel._native import Chooser

    return Chooser(processors, greedy)


def _no_history(logits: np.ndarray) -> np.ndarray:
    return np.empty((len(logits), 0), np.int32)


def draw_from_logits(logits: np.ndarray, rng: np.random.Generator, temperature: float = 1.0, top_k: int = 0,
                     top_p: float = 1.0) -> np.ndarray:
    """One token per row drawn from softmax(logits / temperature) cut to top-k and top-p (int32 ``[B]``).

    One uniform per row from ``rng``.  It runs the native kernel's routine (the one its C
    generation loop runs), so a policy that draws through it gets the loop's tokens for a seed.
    A policy that only draws needs no code: ``greedy = False`` and processors given to the run.
    """
    logits = np.array(logits, dtype=np.float32, order="C")  # a copy: the kernel processes in place
    if logits.ndim != 2:
        raise UsageError(f"draw_from_logits: logits must be [rows, tokens], got shape {list(logits.shape)}")
    chooser = _chooser(from_options(temperature, top_k, top_p), False)
    return chooser.choose(logits, _no_history(logits), rng.random(len(logits)))


def allowed_probabilities(logits: np.ndarray, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> np.ndarray:
    """Deprecated (contract 2): row-wise float64 probabilities after temperature, top-k and top-p; cut tokens get 0.

    Kept so that contract-2 plugins run unchanged: the kernel's processors, then a softmax.  Give
    the run processors instead (``processors=[mgf.Temperature(t), mgf.TopK(k), mgf.TopP(p)]``).
    """
    warnings.warn("mgf.allowed_probabilities is deprecated (contract 3): give processors (mgf.Temperature, mgf.TopK, mgf.TopP, "
                  "mgf.MinP, ...) to the run and subclass mgf.Policy with greedy = False", ContractWarning, stacklevel=2)
    z = np.array(logits, dtype=np.float32, order="C")
    _chooser(from_options(temperature, top_k, top_p), False).process(z, _no_history(z))
    wide = z.astype(np.float64)
    wide -= wide.max(axis=1, keepdims=True)
    prob = np.exp(wide)
    return prob / prob.sum(axis=1, keepdims=True)


def draw(prob: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Deprecated (contract 2): one index per row drawn from ``prob`` by inverse CDF, one uniform per row.

    Kept so that contract-2 plugins run unchanged: the kernel's draw over ``log(prob)``, so an
    index of probability 0 is never drawn.  Use :func:`draw_from_logits`, or ``greedy = False``.
    """
    warnings.warn("mgf.draw is deprecated (contract 3): subclass mgf.Policy with greedy = False (the core draws) or call "
                  "mgf.draw_from_logits", ContractWarning, stacklevel=2)
    with np.errstate(divide="ignore"):
        logits = np.ascontiguousarray(np.log(np.asarray(prob, dtype=np.float64)), dtype=np.float32)
    return _chooser([], False).choose(logits, _no_history(logits), rng.random(len(logits)))

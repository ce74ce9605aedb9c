"""The contract of a sampler: choose the next tokens from a model's scores."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .errors import UsageError
from .model import Model


@dataclass(frozen=True)
class Option:
    """One option a sampler takes; the CLI exposes it as ``--name-with-dashes``."""

    name: str
    type: type
    default: Any
    help: str


class Sampler(ABC):
    """Generates tokens by stepping a model.

    ``sample`` receives a primer that always begins with the model's start token, starts the
    model from ``initial_state``, and returns only the ``steps`` new tokens (int32).  It must be
    deterministic for a given ``rng`` state.
    """

    #: unique name, used by ``--sampler``
    name: ClassVar[str]
    #: the options ``sample`` accepts, with defaults
    options: ClassVar[tuple[Option, ...]] = ()

    @abstractmethod
    def sample(
        self, model: Model, primer: np.ndarray, steps: int, rng: np.random.Generator, **options: Any
    ) -> np.ndarray:
        """``steps`` new tokens continuing ``primer``."""

    def sample_batch(
        self,
        model: Model,
        primer: np.ndarray,
        steps: int,
        num_outputs: int,
        rng: np.random.Generator,
        **options: Any,
    ) -> np.ndarray:
        """``[num_outputs, steps]`` tokens; override to run the outputs as one batch through the model."""
        return np.stack([self.sample(model, primer, steps, rng, **options) for _ in range(num_outputs)])

    def resolve_options(self, given: dict[str, Any]) -> dict[str, Any]:
        """Declared defaults updated with ``given``; an option this sampler lacks is a ``UsageError``."""
        declared = {option.name: option for option in self.options}
        unknown = sorted(set(given) - set(declared))
        if unknown:
            names = ", ".join(unknown)
            known = ", ".join(declared) or "none"
            raise UsageError(f"sampler {self.name!r} takes no option {names} (its options: {known})")
        resolved = {name: option.default for name, option in declared.items()}
        for name, value in given.items():
            try:
                resolved[name] = declared[name].type(value)
            except (TypeError, ValueError):
                raise UsageError(f"option {name} of sampler {self.name!r} must be {declared[name].type.__name__}, got {value!r}") from None
        return resolved


def prime(model: Model, primer: np.ndarray, batch_size: int):
    """Feed ``primer`` to ``batch_size`` fresh rows; return the last logits ``[B, V]`` and the state."""
    state = model.initial_state(batch_size)
    logits = None
    for token in primer:
        logits, state = model.step(np.full(batch_size, token, np.int32), state)
    if logits is None:
        raise UsageError("the primer must contain at least the start token")
    return logits, state


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-probabilities, in float64 so that long sums stay exact enough to rank beams."""
    z = logits.astype(np.float64)
    z -= z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))

"""The contract of a model backend: load a bundle, then step a batch of sequences token by token."""

from __future__ import annotations

import inspect
import warnings
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from mgf.contract.options import Option
from mgf.errors import ContractWarning

if TYPE_CHECKING:
    from mgf.contract.bundle import Bundle
    from mgf.contract.representation import Representation


class State(ABC):
    """Recurrent state of a batch of sequences, one row each.

    ``Model.step`` may update a state in place and return it: callers must use the state it
    returns and must not reuse the one they passed in.
    """

    @property
    @abstractmethod
    def batch_size(self) -> int:
        """Number of rows."""

    @abstractmethod
    def take(self, indices: np.ndarray) -> State:
        """A new state whose row ``i`` is a copy of row ``indices[i]`` (rows may repeat or drop)."""


class Model(ABC):
    """A loaded next-token model.  Safe to share between threads: all mutable data is in ``State``."""

    #: the representation the model was trained on; set by :func:`mgf.load_model`
    representation: Representation | None = None
    #: how the model is best sampled (a bundle's ``mgf.defaults``), set by :func:`mgf.load_model`; see
    #: :func:`mgf.generation_settings`.  Read only: mgf never changes it, and a new dict replaces it.
    defaults: dict[str, Any] = {}
    #: how the model learnt to fill gaps (a bundle's ``mgf.infill``: its ``context`` is the tokens it reads on
    #: each side), set by :func:`mgf.load_model`; None: it only continues.  Read only, as ``defaults``.
    infill: dict[str, Any] | None = None

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of token ids the model reads and scores."""

    @abstractmethod
    def initial_state(self, batch_size: int) -> State:
        """The state before any token, for ``batch_size`` sequences."""

    @abstractmethod
    def step(self, tokens: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """Feed one token per row (int32 ``[B]``); return float32 logits ``[B, vocab_size]`` and the new state.

        Token ids outside ``[0, vocab_size)`` raise :class:`mgf.InputError`.
        """

    def prime(self, tokens: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """Feed a primer, int ``[B, T]`` (T >= 1), column ``t`` at step ``t``; return the logits after the last
        column and the new state, as ``T`` calls of :meth:`step` give them.

        This default steps; a backend overrides it when it can do the same work faster (the native
        backend computes the input side of many tokens as one product and the output layer once).
        """
        array = np.asarray(tokens)
        if array.ndim != 2 or array.shape[1] < 1:
            from mgf.errors import InputError

            raise InputError(f"a primer must be token ids [B, T] with T >= 1, got shape {list(array.shape)}")
        for column in array.T:
            logits, state = self.step(np.ascontiguousarray(column), state)
        return logits, state


class ModelBackend(ABC):
    """Something that can turn a model into a :class:`Model`.

    It is constructed with its resolved ``options`` as keyword arguments (every declared
    option, defaults filled in); the base class keeps them as ``self.options``.
    """

    #: unique name, used by ``--model`` and ``mgf.load_model(..., backend=name)``
    name: ClassVar[str]
    #: the options this backend takes (``mgf.load_model(path, backend, **options)``, CLI flags)
    options: ClassVar[tuple[Option, ...]] = ()
    #: True: the backend runs mgf bundles; ``mgf.load_model`` reads and checks the bundle (once), hands ``load``
    #: the parsed :class:`mgf.contract.bundle.Bundle` and sets the model's representation from it.  False: the
    #: backend has its own file format, ``load`` gets the file's path, and the model it returns must carry its
    #: ``representation`` itself.
    reads_bundles: ClassVar[bool] = True

    def __init__(self, **options: Any) -> None:
        # on an instance, `options` holds the resolved values of the declarations on the class
        self.options = options  # type: ignore[misc, assignment]

    @classmethod
    def _contract_problem(cls, subclass: type[ModelBackend]) -> str | None:
        """Why ``subclass`` cannot be registered as a backend, or None; a contract-2 ``load(path)`` is warned about."""
        if subclass.reads_bundles and takes_path(subclass):
            warnings.warn(f"model backend {getattr(subclass, 'name', '?')!r} ({subclass.__module__}): load(path) is "
                          "contract 2 and reads the bundle a second time; contract 3 hands load the bundle mgf has read "
                          "and checked: def load(self, bundle) (docs/contract.md)", ContractWarning, stacklevel=2)
        return None

    @abstractmethod
    def load(self, bundle: Bundle) -> Model:
        """The model of ``bundle``, read and checked by :func:`mgf.load_model` (with ``reads_bundles = False``: the
        path of the backend's own file); raise :class:`mgf.BundleError` if it is not usable."""


def takes_path(backend: type[ModelBackend]) -> bool:
    """Whether ``backend.load`` takes a file's path rather than a read bundle: a backend with a file format of its
    own, or one on bundles written for contract 2, whose ``load(path)`` reads the file itself (its parameter is
    named ``path``, as contract 2 documented it)."""
    if not backend.reads_bundles:
        return True
    try:
        parameters = list(inspect.signature(backend.load).parameters)
    except (TypeError, ValueError):  # a callable without a signature: take it as contract 3's
        return False
    return parameters[1:2] == ["path"]


def as_tokens(tokens, batch_size: int, vocab_size: int) -> np.ndarray:
    """``tokens`` as a contiguous int32 ``[batch_size]`` array, or :class:`mgf.InputError`."""
    from mgf.errors import InputError

    array = np.asarray(tokens)
    if array.dtype.kind not in "iu":
        raise InputError(f"token ids must be integers, got {array.dtype}")
    if array.shape != (batch_size,):
        raise InputError(f"expected {batch_size} token id(s) (one per row), got shape {list(array.shape)}")
    if batch_size and (array.min() < 0 or array.max() >= vocab_size):
        bad = array[(array < 0) | (array >= vocab_size)][0]
        raise InputError(f"token id {bad} is outside the vocabulary [0, {vocab_size})")
    return np.ascontiguousarray(array, dtype=np.int32)

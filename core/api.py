"""The embedding API: load a bundle, generate tokens.  Imports no TensorFlow and no music21."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from . import bundle, registry
from .errors import BundleError, InputError, PluginError
from .model import Model
from .representation import Representation


def get_representation(name: str, **config: Any) -> Representation:
    """An instance of the representation registered as ``name``, configured with ``config``."""
    cls = registry.get("representations", name)
    try:
        return cls(**config)
    except TypeError as error:
        raise InputError(f"representation {name!r}: {error}") from None


def representation_of(path: str | os.PathLike) -> Representation:
    """The representation a bundle was trained with, rebuilt from its metadata and ``repr.*`` tensors."""
    spec = bundle.read_metadata(path)["representation"]
    try:
        representation = get_representation(spec["name"], **spec["config"])
    except PluginError:
        raise BundleError(
            f"{path}: needs the representation {spec['name']!r}, which is not installed (see `mgf plugins`)"
        ) from None
    except InputError as error:
        raise BundleError(f"{path}: bad representation config: {error}") from None
    representation.load_tensors(bundle.read_repr_tensors(path))
    return representation


def load_model(path: str | os.PathLike, backend: str = "native", **options: Any) -> Model:
    """Load the bundle at ``path`` with the model backend ``backend`` (options go to the backend).

    The returned model knows its representation (``model.representation``).
    """
    representation = representation_of(path)
    model = registry.get("models", backend)(**options).load(path)
    if model.vocab_size != representation.vocab_size:
        raise BundleError(
            f"{path}: the model scores {model.vocab_size} tokens but its representation "
            f"{representation.name!r} has {representation.vocab_size}"
        )
    model.representation = representation
    return model


def generate(
    model: Model,
    steps: int,
    sampler: str = "temperature",
    primer=None,
    seed: int | None = None,
    num_outputs: int | None = None,
    progress: bool | None = False,
    **options: Any,
) -> np.ndarray:
    """The primer (without the start token) followed by ``steps`` generated tokens, as int32.

    ``primer`` is a sequence of token ids of the model's representation.  The start token is
    never generated: samplers see it with probability 0.  With ``num_outputs``
    the result is 2-D, one row per output, generated as one batch.  ``options`` go to the
    sampler (e.g. ``temperature=0.9, top_k=20``).  Equal seeds give equal results.
    ``progress=None`` shows a bar of model steps on a terminal (the CLI's default), True always.
    """
    if model.representation is None:
        raise InputError("the model has no representation; load it with mgf.load_model")
    if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or steps < 1:
        raise InputError(f"steps must be a positive integer, got {steps!r}")
    if num_outputs is not None and (not isinstance(num_outputs, (int, np.integer)) or num_outputs < 1):
        raise InputError(f"num_outputs must be a positive integer, got {num_outputs!r}")
    user = _primer_tokens(primer, model)
    full = np.concatenate([[model.representation.start_token], user]).astype(np.int32)
    chosen = registry.get("samplers", sampler)()
    rng = np.random.default_rng(seed)
    bar = None
    if progress is not False:
        from tqdm import tqdm

        bar = tqdm(total=len(full) + int(steps) - 1, desc="generating", unit="step", leave=False,
                   disable=None if progress is None else False)
    model = _NoStartToken(model, bar)
    try:
        if num_outputs is None:
            new = np.asarray(chosen.sample(model, full, int(steps), rng, **options), dtype=np.int32)
            return np.concatenate([user, new])
        new = np.asarray(chosen.sample_batch(model, full, int(steps), int(num_outputs), rng, **options), dtype=np.int32)
        return np.concatenate([np.broadcast_to(user, (len(new), len(user))), new], axis=1)
    finally:
        if bar is not None:
            bar.close()


class _NoStartToken(Model):
    """The model with its start token made impossible, so that samplers never emit it mid-piece.

    It also advances the progress bar, if any: one tick per batched step, whatever the sampler.
    """

    def __init__(self, model: Model, bar=None) -> None:
        self.model, self.bar = model, bar
        self.representation = model.representation
        self.start = model.representation.start_token

    @property
    def vocab_size(self) -> int:
        return self.model.vocab_size

    def initial_state(self, batch_size: int):
        return self.model.initial_state(batch_size)

    def step(self, tokens, state):
        logits, state = self.model.step(tokens, state)
        logits[:, self.start] = -np.inf
        if self.bar is not None:
            self.bar.update()
        return logits, state


def _primer_tokens(primer, model: Model) -> np.ndarray:
    if primer is None:
        return np.empty(0, np.int32)
    array = np.asarray(primer)
    if array.size == 0:
        return np.empty(0, np.int32)
    if array.ndim != 1 or array.dtype.kind not in "iu":
        raise InputError("primer must be a 1-D sequence of integer token ids")
    if array.min() < 0 or array.max() >= model.vocab_size:
        raise InputError(f"primer token ids must lie in [0, {model.vocab_size})")
    return array.astype(np.int32)

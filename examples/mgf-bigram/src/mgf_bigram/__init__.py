"""``bigram``: the next token depends on the last one only; the model is a table of counts.

A model file is an ``.npz`` holding ``counts`` (float ``[V, V]``: how often token ``b`` followed
token ``a``, the start token counted as the token before each sequence) and ``representation``
(the JSON ``{"name", "config"}`` of the representation it was fitted on).  :func:`fit` makes one
from music files; the backend's ``smoothing`` option is added to every count when loading, so a
pair never seen keeps a small probability.
"""

import json
import os

import mgf
import numpy as np


def fit(representation: mgf.Representation, paths, out) -> None:
    """Count the token pairs of every piece in ``paths`` (read with ``representation``) and save them to ``out``."""
    vocab, start = representation.vocab_size, representation.start_token
    counts = np.zeros((vocab, vocab))
    for path in paths:
        for _, tokens in representation.read_pieces(path):
            sequence = np.concatenate([[start], tokens])
            np.add.at(counts, (sequence[:-1], sequence[1:]), 1.0)
    spec = json.dumps({"name": representation.name, "config": representation.config()})
    with mgf.atomic_path(out) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, counts=counts, representation=np.array(spec))


class BigramState(mgf.State):
    def __init__(self, last: np.ndarray) -> None:
        self.last = last

    @property
    def batch_size(self) -> int:
        return len(self.last)

    def take(self, indices) -> "BigramState":
        return BigramState(self.last[np.asarray(indices)].copy())


class BigramModel(mgf.Model):
    """Logits are log-probabilities of the smoothed counts; the state is each row's last token."""

    def __init__(self, counts: np.ndarray, smoothing: float, representation: mgf.Representation) -> None:
        smoothed = counts + smoothing
        self.log_p = np.log(smoothed / smoothed.sum(axis=1, keepdims=True)).astype(np.float32)
        self.representation = representation

    @property
    def vocab_size(self) -> int:
        return len(self.log_p)

    def initial_state(self, batch_size):
        return BigramState(np.full(batch_size, -1))

    def step(self, tokens, state):
        tokens = np.asarray(tokens)
        if tokens.dtype.kind not in "iu" or tokens.shape != (state.batch_size,):
            raise mgf.InputError(f"expected {state.batch_size} integer token id(s), got {tokens.dtype} {list(tokens.shape)}")
        if tokens.size and (tokens.min() < 0 or tokens.max() >= self.vocab_size):
            raise mgf.InputError(f"token ids must lie in [0, {self.vocab_size})")
        return self.log_p[tokens], BigramState(tokens.copy())


class BigramBackend(mgf.ModelBackend):
    name = "bigram"
    reads_bundles = False  # its own .npz files, which carry the representation
    options = (mgf.Option("smoothing", float, 0.1, "added to every count, so unseen pairs stay possible", low=1e-6, high=1e6),)

    def load(self, path):
        try:
            with np.load(os.fspath(path), allow_pickle=False) as data:
                counts, spec = data["counts"], json.loads(str(data["representation"]))
        except (OSError, ValueError, KeyError, EOFError) as error:
            raise mgf.BundleError(f"{path}: not a bigram model ({type(error).__name__}: {str(error)[:200]})") from None
        if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or not np.isfinite(counts).all() or (counts < 0).any():
            raise mgf.BundleError(f"{path}: counts must be a finite, non-negative [V, V] table")
        try:
            representation = mgf.get_representation(spec["name"], **spec["config"])
        except (mgf.UsageError, KeyError, TypeError) as error:
            raise mgf.BundleError(f"{path}: bad representation ({error})") from None
        if representation.vocab_size != len(counts):
            raise mgf.BundleError(f"{path}: {len(counts)} tokens, but {spec['name']!r} has {representation.vocab_size}")
        return BigramModel(counts, self.options["smoothing"], representation)


@mgf.hookimpl
def register_models(register):
    register(BigramBackend)

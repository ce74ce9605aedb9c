"""Plain numpy LSTM and GRU language models: the references the native kernel and Keras are tested against.

Written for clarity, straight from the Keras equations (LSTM gate order i, f, c, o; GRU gate
order z, r, h with ``reset_after=True``; sigmoid gates, tanh activations), with no
precomputation, so that they are independent oracles.
"""

from __future__ import annotations

import numpy as np

from mgf.contract.bundle import Bundle
from mgf.errors import InputError
from mgf.contract.model import Model, State, as_tokens


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic function written through tanh, which never overflows."""
    return 0.5 * (1.0 + np.tanh(0.5 * z))


class NumpyState(State):
    """Per-layer ``h`` and ``c``, each ``[B, H_l]``."""

    def __init__(self, h: list[np.ndarray], c: list[np.ndarray]) -> None:
        self.h, self.c = h, c

    @classmethod
    def zeros(cls, hidden, batch_size: int) -> NumpyState:
        """The state before any token: zeros for every layer of ``hidden`` units."""
        h = [np.zeros((batch_size, units), np.float32) for units in hidden]
        return cls(h, [z.copy() for z in h])

    @property
    def batch_size(self) -> int:
        return self.h[0].shape[0]

    def take(self, indices) -> NumpyState:
        indices = np.asarray(indices, dtype=np.intp)
        return NumpyState([h[indices] for h in self.h], [c[indices] for c in self.c])


class NumpyLSTM(Model):
    """Stacked LSTM language model evaluated with numpy, one step at a time."""

    def __init__(self, bundle: Bundle) -> None:
        t = bundle.tensors
        self.arch = bundle.arch
        self.embedding = t.get("embedding")
        self.layers = [
            (t[f"lstm.{i}.kernel"], t[f"lstm.{i}.recurrent_kernel"], t[f"lstm.{i}.bias"]) for i in range(len(self.arch.hidden))
        ]
        self.dense = (t["dense.kernel"], t["dense.bias"])

    @property
    def vocab_size(self) -> int:
        return self.arch.vocab_size

    def initial_state(self, batch_size: int) -> NumpyState:
        return NumpyState.zeros(self.arch.hidden, batch_size)

    def step(self, tokens, state: State) -> tuple[np.ndarray, NumpyState]:
        if not isinstance(state, NumpyState):
            raise InputError(f"the numpy model steps a NumpyState, not {type(state).__name__}")
        tokens = as_tokens(tokens, state.batch_size, self.vocab_size)
        if self.embedding is not None:
            x = self.embedding[tokens]
        else:
            x = np.eye(self.vocab_size, dtype=np.float32)[tokens]
        hs, cs = [], []
        for (kernel, recurrent, bias), h, c in zip(self.layers, state.h, state.c):
            z = x @ kernel + h @ recurrent + bias
            i, f, g, o = np.split(z, 4, axis=1)
            c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
            h = sigmoid(o) * np.tanh(c)
            hs.append(h)
            cs.append(c)
            x = h
        logits = x @ self.dense[0] + self.dense[1]
        return logits.astype(np.float32, copy=False), NumpyState(hs, cs)


class GRUState(State):
    """Per-layer ``h``, each ``[B, H_l]``: a GRU keeps no cell state beside its output."""

    def __init__(self, h: list[np.ndarray]) -> None:
        self.h = h

    @classmethod
    def zeros(cls, hidden, batch_size: int) -> GRUState:
        """The state before any token: zeros for every layer of ``hidden`` units."""
        return cls([np.zeros((batch_size, units), np.float32) for units in hidden])

    @property
    def batch_size(self) -> int:
        return self.h[0].shape[0]

    def take(self, indices) -> GRUState:
        indices = np.asarray(indices, dtype=np.intp)
        return GRUState([h[indices] for h in self.h])


class NumpyGRU(Model):
    """Stacked GRU language model (Keras ``GRU(reset_after=True)``) evaluated with numpy, one step at a time."""

    def __init__(self, bundle: Bundle) -> None:
        t = bundle.tensors
        self.arch = bundle.arch
        self.embedding = t.get("embedding")
        self.layers = [
            (t[f"gru.{i}.kernel"], t[f"gru.{i}.recurrent_kernel"], t[f"gru.{i}.bias"]) for i in range(len(self.arch.hidden))
        ]
        self.dense = (t["dense.kernel"], t["dense.bias"])

    @property
    def vocab_size(self) -> int:
        return self.arch.vocab_size

    def initial_state(self, batch_size: int) -> GRUState:
        return GRUState.zeros(self.arch.hidden, batch_size)

    def step(self, tokens, state: State) -> tuple[np.ndarray, GRUState]:
        if not isinstance(state, GRUState):
            raise InputError(f"the numpy GRU steps a GRUState, not {type(state).__name__}")
        tokens = as_tokens(tokens, state.batch_size, self.vocab_size)
        if self.embedding is not None:
            x = self.embedding[tokens]
        else:
            x = np.eye(self.vocab_size, dtype=np.float32)[tokens]
        hs = []
        for (kernel, recurrent, bias), h in zip(self.layers, state.h):
            x_z, x_r, x_h = np.split(x @ kernel + bias[0], 3, axis=1)
            h_z, h_r, h_h = np.split(h @ recurrent + bias[1], 3, axis=1)
            z, r = sigmoid(x_z + h_z), sigmoid(x_r + h_r)
            h = z * h + (1 - z) * np.tanh(x_h + r * h_h)
            hs.append(h)
            x = h
        logits = x @ self.dense[0] + self.dense[1]
        return logits.astype(np.float32, copy=False), GRUState(hs)

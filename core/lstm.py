"""Plain numpy LSTM language model: the reference the native kernel is tested against.

Written for clarity, straight from the Keras equations (gate order i, f, c, o; sigmoid gates,
tanh activations), with no precomputation, so that it is an independent oracle.
"""

from __future__ import annotations

import numpy as np

from .bundle import Bundle
from .errors import InputError
from .model import Model, State, as_tokens


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

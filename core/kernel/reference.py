"""Plain numpy LSTM, GRU and Transformer language models: the references the native kernel and Keras are tested against.

Written for clarity, straight from the Keras equations (LSTM gate order i, f, c, o; GRU gate
order z, r, h with ``reset_after=True``; sigmoid gates, tanh activations) and GPT-2's block (docs/bundle-format.md),
one token at a time, with no precomputation, so that they are independent oracles.
"""

from __future__ import annotations

import math

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


class TransformerState(State):
    """A Transformer's keys and values so far (per block, ``[B, heads, context, head width]``), how many positions
    they hold (the same for every row: rows step together) and the tokens behind them, ``[B, context]``, which a
    slide past the context reads again."""

    def __init__(self, keys: list[np.ndarray], values: list[np.ndarray], tokens: np.ndarray, length: int) -> None:
        self.keys, self.values, self.tokens, self.length = keys, values, tokens, length

    @classmethod
    def zeros(cls, arch, batch_size: int) -> TransformerState:
        d = arch.transformer
        shape = (batch_size, d.heads, d.context, arch.embedding_dim // d.heads)
        keys = [np.zeros(shape, np.float32) for _ in arch.hidden]
        return cls(keys, [k.copy() for k in keys], np.zeros((batch_size, d.context), np.int32), 0)

    @property
    def batch_size(self) -> int:
        return self.tokens.shape[0]

    def take(self, indices) -> TransformerState:
        indices = np.asarray(indices, dtype=np.intp)
        return TransformerState([k[indices] for k in self.keys], [v[indices] for v in self.values], self.tokens[indices],
                            self.length)


def layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, epsilon: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + epsilon) * gamma + beta


def gelu(x: np.ndarray, kind: str) -> np.ndarray:
    """GELU: GPT-2's tanh approximation (``gelu_tanh``) or exact, with erf (``gelu``)."""
    if kind == "gelu_tanh":
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
    erf = np.vectorize(math.erf, otypes=[np.float64])
    return (0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))).astype(x.dtype)


def rotate(x: np.ndarray, position: int, base: float) -> np.ndarray:
    """Rotary positions on ``x`` ``[..., head width]``: element ``i`` of the first half turns with ``i + half``
    by ``position * base ** (-2 i / head width)`` radians (LLaMA's rotate-half convention)."""
    half = x.shape[-1] // 2
    angle = position * base ** (-2.0 * np.arange(half) / x.shape[-1])
    cos, sin = np.cos(angle), np.sin(angle)
    first, second = x[..., :half], x[..., half:]
    return np.concatenate([first * cos - second * sin, second * cos + first * sin], axis=-1)


class NumpyTransformer(Model):
    """Decoder-only Transformer (GPT-2's block, docs/bundle-format.md) evaluated with numpy, one token at a time.

    Past the context: a sequence whose cache is full keeps its last ``context // 2`` tokens, reads them again from
    position 0, then takes the new token (so every token sees at least ``context // 2`` before it).
    """

    def __init__(self, bundle: Bundle) -> None:
        self.arch, self.tensors = bundle.arch, bundle.tensors
        self.shape = bundle.arch.transformer
        self.output = self.tensors["embedding"].T if self.shape.tied else self.tensors["dense.kernel"]

    @property
    def vocab_size(self) -> int:
        return self.arch.vocab_size

    def initial_state(self, batch_size: int) -> TransformerState:
        return TransformerState.zeros(self.arch, batch_size)

    def step(self, tokens, state: State) -> tuple[np.ndarray, TransformerState]:
        if not isinstance(state, TransformerState):
            raise InputError(f"the numpy transformer steps a TransformerState, not {type(state).__name__}")
        tokens = as_tokens(tokens, state.batch_size, self.vocab_size)
        context = self.shape.context
        if state.length == context:
            kept = state.tokens[:, context - context // 2:].copy()
            state.length = 0
            for column in kept.T:
                self._feed(column, state)
        return self._feed(tokens, state), state

    def _feed(self, tokens: np.ndarray, state: TransformerState) -> np.ndarray:
        """Logits after ``tokens`` at position ``state.length``, which it advances."""
        t, d, p = self.tensors, self.shape, state.length
        heads, width = d.heads, self.arch.embedding_dim
        size = width // heads
        x = t["embedding"][tokens]
        if d.positions == "learned":
            x = x + t["positions"][p]
        for i, (keys, values) in enumerate(zip(state.keys, state.values)):
            block = f"block.{i}"
            h = layer_norm(x, t[f"{block}.norm1.gamma"], t[f"{block}.norm1.beta"], d.norm_epsilon)
            qkv = h @ t[f"{block}.attention.qkv.kernel"] + t[f"{block}.attention.qkv.bias"]
            q, k, v = (part.reshape(-1, heads, size) for part in np.split(qkv, 3, axis=1))
            if d.positions == "rotary":
                q, k = rotate(q, p, d.rotary_base), rotate(k, p, d.rotary_base)
            keys[:, :, p], values[:, :, p] = k, v
            scores = np.einsum("bhs,bhts->bht", q, keys[:, :, :p + 1]) / math.sqrt(size)
            weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
            weights /= weights.sum(axis=-1, keepdims=True)
            attended = np.einsum("bht,bhts->bhs", weights, values[:, :, :p + 1]).reshape(-1, width)
            x = x + attended @ t[f"{block}.attention.out.kernel"] + t[f"{block}.attention.out.bias"]
            h = layer_norm(x, t[f"{block}.norm2.gamma"], t[f"{block}.norm2.beta"], d.norm_epsilon)
            up = gelu(h @ t[f"{block}.mlp.up.kernel"] + t[f"{block}.mlp.up.bias"], d.activation)
            x = x + up @ t[f"{block}.mlp.down.kernel"] + t[f"{block}.mlp.down.bias"]
        state.tokens[:, p] = tokens
        state.length = p + 1
        x = layer_norm(x, t["norm.gamma"], t["norm.beta"], d.norm_epsilon)
        return (x @ self.output + t["dense.bias"]).astype(np.float32, copy=False)

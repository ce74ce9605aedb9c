"""Keras side of mgf: the training network, its conversion to and from bundles, a one-step model.

Imported only when Keras is needed (``--model keras``, ``mgf train``, ``mgf export``), so
that the rest of mgf never pays for TensorFlow.
"""

from __future__ import annotations

import os

import numpy as np

from mgf import InputError, Model, as_tokens
from mgf.contract.bundle import Arch
from mgf.kernel.reference import GRUState, NumpyState

from mgf.plugins.keras import archive as keras_archive
from mgf.plugins.keras.archive import SUPPORTED


def _import_keras():
    """Import Keras with TensorFlow's start-up log lines (C++ writes them to fd 2) kept off the user's terminal."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TF logs harmless C++ errors during fit too
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import keras
        import tensorflow  # noqa: F401  (its import is what logs)
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return keras


keras = _import_keras()



_RECURRENT = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}  # bundle cell -> its Keras layer; one kind per model


def build(arch: Arch, dropout: float = 0.0) -> keras.Model:
    """The training network: tokens [B, T] -> logits [B, T, V]; dropout after each LSTM or GRU acts in training only
    (a Transformer's: mgf.plugins.keras.transformer)."""
    if arch.transformer is not None:
        from mgf.plugins.keras import transformer

        return transformer.build(arch, dropout)
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    if arch.embedding_dim:
        x = keras.layers.Embedding(arch.vocab_size, arch.embedding_dim, name="embedding")(tokens)
    else:
        x = keras.layers.CategoryEncoding(num_tokens=arch.vocab_size, output_mode="one_hot", name="one_hot")(tokens)
    recurrent = keras.layers.GRU if arch.cell == "gru" else keras.layers.LSTM  # Keras's GRU default: reset_after=True
    for i, units in enumerate(arch.hidden):
        x = recurrent(units, return_sequences=True, name=f"{arch.cell}_{i}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"dropout_{i}")(x)
    logits = keras.layers.Dense(arch.vocab_size, name="dense")(x)
    return keras.Model(tokens, logits, name=f"mgf_{arch.cell}")


def to_tensors(model: keras.Model) -> tuple[Arch, dict[str, np.ndarray]]:
    """Architecture and bundle tensors of a Keras model built like :func:`build` (by mgf or by hand; a Transformer:
    by mgf)."""
    from mgf.plugins.keras import transformer

    if transformer.built_here(model):
        return transformer.to_tensors(model)
    layers = [layer for layer in model.layers if not isinstance(layer, (keras.layers.InputLayer, keras.layers.Dropout))]
    tensors: dict[str, np.ndarray] = {}
    embedding_dim, vocab_size, hidden = None, None, []
    position = 0
    if layers and isinstance(layers[0], keras.layers.Embedding):
        if layers[0].mask_zero:
            raise InputError(f"layer {layers[0].name!r}: Embedding(mask_zero=True) is not supported (token 0 is a real token)")
        tensors["embedding"] = layers[0].get_weights()[0]
        vocab_size, embedding_dim = tensors["embedding"].shape
        position = 1
    elif layers and isinstance(layers[0], keras.layers.CategoryEncoding):
        if layers[0].output_mode != "one_hot":
            raise InputError(f"layer {layers[0].name!r}: CategoryEncoding must use output_mode='one_hot'")
        vocab_size = layers[0].num_tokens
        position = 1
    else:
        first = layers[0] if layers else None
        raise InputError(f"unsupported first layer {_describe(first)}: expected {SUPPORTED}")
    cell = "gru" if position < len(layers) and isinstance(layers[position], keras.layers.GRU) else "lstm"
    while position < len(layers) and isinstance(layers[position], _RECURRENT[cell]):
        layer = layers[position]
        _check_recurrent(layer, cell)
        kernel, recurrent, bias = layer.get_weights()
        i = len(hidden)
        tensors.update({f"{cell}.{i}.kernel": kernel, f"{cell}.{i}.recurrent_kernel": recurrent, f"{cell}.{i}.bias": bias})
        hidden.append(recurrent.shape[0])
        position += 1
    if position < len(layers) and isinstance(layers[position], tuple(_RECURRENT.values())):
        raise InputError(f"layer {layers[position].name!r}: LSTM and GRU layers cannot be mixed in one model")
    if not hidden:
        raise InputError(f"unsupported layer {_describe(layers[position] if position < len(layers) else None)}: expected {SUPPORTED}")
    if position != len(layers) - 1 or not isinstance(layers[position], keras.layers.Dense):
        raise InputError(f"unsupported layer {_describe(layers[position] if position < len(layers) else None)}: expected {SUPPORTED}")
    dense = layers[position]
    if dense.get_config()["activation"] not in ("linear", "softmax") or not dense.use_bias:
        raise InputError(f"layer {dense.name!r}: the output Dense must be linear or softmax, with a bias")
    tensors["dense.kernel"], tensors["dense.bias"] = dense.get_weights()
    arch = Arch(vocab_size=int(vocab_size), hidden=tuple(int(h) for h in hidden),
                embedding_dim=None if embedding_dim is None else int(embedding_dim), cell=cell)
    return arch, {name: np.asarray(value, dtype=np.float32) for name, value in tensors.items()}


def _check_recurrent(layer, cell: str) -> None:
    """Refuse what the bundle's equations (docs/bundle-format.md) do not compute: other activations, no bias, GRU v1."""
    config = layer.get_config()
    kind = type(layer).__name__
    if (config["activation"], config["recurrent_activation"], config["use_bias"]) != ("tanh", "sigmoid", True):
        raise InputError(f"layer {layer.name!r}: only {kind}(activation='tanh', recurrent_activation='sigmoid', "
                         "use_bias=True) is supported")
    if cell == "gru" and not config["reset_after"]:
        raise InputError(f"layer {layer.name!r}: only GRU(reset_after=True) is supported (Keras's default)")
    if config.get("go_backwards"):
        raise InputError(f"layer {layer.name!r}: go_backwards {kind}s cannot generate left to right")


def _describe(layer) -> str:
    return "(none)" if layer is None else f"{layer.name!r} ({type(layer).__name__})"


def load_keras(path: str, compile: bool = False) -> keras.Model:
    """A saved ``.keras`` model, loaded in safe mode (no Lambda code is ever deserialised); ``compile``
    also restores its optimizer with its state (a training checkpoint's).  The archive is checked first
    (:func:`keras_archive.check`): Keras trusts what it holds."""
    from mgf.plugins.keras import transformer  # noqa: F401 - registers its Positions layer, which a Transformer holds

    keras_archive.check(path)
    try:
        return keras.models.load_model(path, safe_mode=True, compile=compile)
    except Exception as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(f"{path}: not a loadable Keras model ({message})") from None


class KerasStepModel(Model):
    """One step of a bundle's network through Keras's own layers (Embedding, LSTMCell or GRUCell, Dense).

    Their weights are set from the bundle at once, so they start as zeros: Keras's default orthogonal
    initialiser of a recurrent kernel is a QR decomposition, seconds of uninterruptible C for 4,096 units.
    """

    def __init__(self, arch: Arch, tensors: dict[str, np.ndarray]) -> None:
        self.arch = arch
        if arch.embedding_dim:
            self.embed = keras.layers.Embedding(arch.vocab_size, arch.embedding_dim, embeddings_initializer="zeros")
            self.embed.build((None,))
            self.embed.set_weights([tensors["embedding"]])
        else:
            self.embed = keras.layers.CategoryEncoding(num_tokens=arch.vocab_size, output_mode="one_hot")
        self.cells = []
        make = keras.layers.GRUCell if arch.cell == "gru" else keras.layers.LSTMCell  # GRUCell: reset_after=True
        for i, units in enumerate(arch.hidden):
            cell = make(units, kernel_initializer="zeros", recurrent_initializer="zeros")
            cell.build((None, arch.input_dim(i)))
            cell.set_weights([tensors[f"{arch.cell}.{i}.{name}"] for name in ("kernel", "recurrent_kernel", "bias")])
            self.cells.append(cell)
        self.dense = keras.layers.Dense(arch.vocab_size, kernel_initializer="zeros")
        self.dense.build((None, arch.hidden[-1]))
        self.dense.set_weights([tensors["dense.kernel"], tensors["dense.bias"]])

    @property
    def vocab_size(self) -> int:
        return self.arch.vocab_size

    def initial_state(self, batch_size: int) -> NumpyState | GRUState:
        if self.arch.cell == "gru":
            return GRUState.zeros(self.arch.hidden, batch_size)
        return NumpyState.zeros(self.arch.hidden, batch_size)

    def step(self, tokens, state) -> tuple[np.ndarray, NumpyState | GRUState]:
        tokens = as_tokens(tokens, state.batch_size, self.vocab_size)
        x = self.embed(tokens)
        hs, cs = [], []
        if self.arch.cell == "gru":
            for cell, h in zip(self.cells, state.h):
                x, _ = cell(x, [h])
                hs.append(keras.ops.convert_to_numpy(x))
            after = GRUState(hs)
        else:
            for cell, h, c in zip(self.cells, state.h, state.c):
                x, (h, c) = cell(x, [h, c])
                hs.append(keras.ops.convert_to_numpy(h))
                cs.append(keras.ops.convert_to_numpy(c))
            after = NumpyState(hs, cs)
        logits = keras.ops.convert_to_numpy(self.dense(x)).astype(np.float32)
        return logits, after



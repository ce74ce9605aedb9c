"""The Keras side of a Transformer bundle: the training network (GPT-2's block in Keras's own layers) and its tensors.

Built from Keras's ``Embedding``, ``LayerNormalization``, ``MultiHeadAttention`` (causal) and ``Dense`` layers, plus
one small layer of mgf's own for learned positions, registered so that a saved model loads in safe mode.  The
MLP's GELU is Keras's (exact, with erf: the bundle's ``"gelu"``), and the output projection has its own weights
(``tied`` false).  Rotary positions are not trained here (the bundle format and the native kernel have them, for
imported models).
"""

from __future__ import annotations

import numpy as np

from mgf import InputError
from mgf.contract.bundle import Arch
from mgf.plugins.keras.net import keras

NAME = "mgf_transformer"


@keras.saving.register_keras_serializable(package="mgf")
class Positions(keras.layers.Layer):
    """Learned absolute positions (GPT-2's ``wpe``): ``x + table[:T]`` for ``x`` ``[B, T, width]``, T <= context."""

    def __init__(self, context: int, width: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.context, self.width = context, width

    def build(self, input_shape) -> None:
        self.table = self.add_weight(shape=(self.context, self.width), name="table",
                                     initializer=keras.initializers.RandomNormal(stddev=0.02))

    def call(self, x):
        return x + self.table[:keras.ops.shape(x)[1]]

    def get_config(self) -> dict:
        return {**super().get_config(), "context": self.context, "width": self.width}


def build(arch: Arch, dropout: float = 0.0) -> keras.Model:
    """Tokens [B, T] (T <= context) -> logits [B, T, V]; dropout on each block's two branches, in training only."""
    shape, width = arch.transformer, arch.embedding_dim
    if shape.positions != "learned" or shape.tied or shape.activation != "gelu":
        raise InputError("mgf trains Transformers with learned positions, an untied output and exact GELU")
    layers = keras.layers
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    x = layers.Embedding(arch.vocab_size, width, name="embedding",
                         embeddings_initializer=keras.initializers.RandomNormal(stddev=0.02))(tokens)
    x = Positions(shape.context, width, name="positions")(x)
    for i in range(len(arch.hidden)):
        h = layers.LayerNormalization(epsilon=shape.norm_epsilon, name=f"block_{i}_norm1")(x)
        a = layers.MultiHeadAttention(shape.heads, width // shape.heads, name=f"block_{i}_attention")(
            h, h, use_causal_mask=True)
        x = layers.Add(name=f"block_{i}_add1")([x, layers.Dropout(dropout, name=f"block_{i}_drop1")(a)])
        h = layers.LayerNormalization(epsilon=shape.norm_epsilon, name=f"block_{i}_norm2")(x)
        u = layers.Dense(shape.mlp, activation="gelu", name=f"block_{i}_up")(h)
        m = layers.Dense(width, name=f"block_{i}_down")(u)
        x = layers.Add(name=f"block_{i}_add2")([x, layers.Dropout(dropout, name=f"block_{i}_drop2")(m)])
    x = layers.LayerNormalization(epsilon=shape.norm_epsilon, name="norm")(x)
    return keras.Model(tokens, layers.Dense(arch.vocab_size, name="dense")(x), name=NAME)


def built_here(model: keras.Model) -> bool:
    """Whether ``model`` is a Transformer :func:`build` made (its positions layer tells; a loaded model's name may not)."""
    return any(isinstance(layer, Positions) for layer in model.layers)


def to_tensors(model: keras.Model) -> tuple[Arch, dict[str, np.ndarray]]:
    """Architecture and bundle tensors of a network :func:`build` made (found by its layers' names)."""
    embedding = model.get_layer("embedding").get_weights()[0]
    vocab, width = embedding.shape
    layers = sum(1 for layer in model.layers if layer.name.endswith("_attention"))
    attention = model.get_layer("block_0_attention")
    up = model.get_layer("block_0_up")
    positions = model.get_layer("positions")
    arch = Arch.of_transformer(int(vocab), int(width), layers, heads=int(attention.num_heads),
                               context=int(positions.context), mlp=int(up.units), positions="learned", tied=False,
                               norm_epsilon=float(model.get_layer("norm").epsilon), activation="gelu")
    tensors = {"embedding": embedding, "positions": positions.get_weights()[0]}
    for i in range(layers):
        block = f"block.{i}."
        q, qb, k, kb, v, vb, out, out_bias = model.get_layer(f"block_{i}_attention").get_weights()
        tensors[block + "attention.qkv.kernel"] = np.concatenate([w.reshape(width, width) for w in (q, k, v)], axis=1)
        tensors[block + "attention.qkv.bias"] = np.concatenate([b.reshape(width) for b in (qb, kb, vb)])
        tensors[block + "attention.out.kernel"] = out.reshape(width, width)
        tensors[block + "attention.out.bias"] = out_bias
        for ours, theirs in (("norm1", "norm1"), ("norm2", "norm2")):
            tensors[block + ours + ".gamma"], tensors[block + ours + ".beta"] = \
                model.get_layer(f"block_{i}_{theirs}").get_weights()
        tensors[block + "mlp.up.kernel"], tensors[block + "mlp.up.bias"] = model.get_layer(f"block_{i}_up").get_weights()
        tensors[block + "mlp.down.kernel"], tensors[block + "mlp.down.bias"] = \
            model.get_layer(f"block_{i}_down").get_weights()
    tensors["norm.gamma"], tensors["norm.beta"] = model.get_layer("norm").get_weights()
    tensors["dense.kernel"], tensors["dense.bias"] = model.get_layer("dense").get_weights()
    return arch, {name: np.asarray(value, dtype=np.float32) for name, value in tensors.items()}

"""One decode step of a Transformer bundle with a KV cache as an ONNX graph, run by ONNX Runtime: the peer of
mgf's native Transformer kernel (bench_decoder.py).

Written with ``onnx.helper`` from the bundle's tensors, as onnx_step.py writes the LSTM's: what
:class:`mgf.kernel.reference.NumpyTransformer` computes for one token at position ``P`` with learned positions,
in the layout of Hugging Face's GPT-2 export (opset 17, for LayerNormalization): inputs ``tokens [B]``,
``position [1]`` and per block ``past_k{i}``, ``past_v{i}`` ``[B, heads, P, size]``; outputs ``logits`` and
``present_k{i}``, ``present_v{i}`` (the past with the new position concatenated).  ONNX Runtime's graph optimiser
fuses LayerNorm, GELU and attention patterns it recognises (``ORT_ENABLE_ALL``).
"""

from __future__ import annotations

import math

import numpy as np

from mgf.contract.bundle import Bundle
from onnx_step import _constants, _model, _session


def decoder_graph(loaded: Bundle, batch: int):
    from onnx import TensorProto, helper

    arch, t = loaded.arch, loaded.tensors
    shape, d = arch.transformer, arch.embedding_dim
    heads, size = shape.heads, d // shape.heads
    node = helper.make_node
    init = {"embedding": t["embedding"], "positions": t["positions"], "norm.gamma": t["norm.gamma"],
            "norm.beta": t["norm.beta"], "dense.bias": t["dense.bias"],
            "output": np.ascontiguousarray(t["embedding"].T) if shape.tied else t["dense.kernel"],
            "heads_shape": np.array([batch, 1, heads, size], np.int64), "flat": np.array([batch, d], np.int64),
            "thirds": np.array([d, d, d], np.int64), "scale": np.array(1 / math.sqrt(size), np.float32),
            "half": np.array(0.5, np.float32), "one": np.array(1.0, np.float32),
            "cubic": np.array(0.044715, np.float32), "root": np.array(math.sqrt(2 / math.pi), np.float32)}
    inputs = [helper.make_tensor_value_info("tokens", TensorProto.INT64, [batch]),
              helper.make_tensor_value_info("position", TensorProto.INT64, [1])]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, arch.vocab_size])]
    nodes = [node("Gather", ["embedding", "tokens"], ["token_rows"]), node("Gather", ["positions", "position"], ["pos"]),
             node("Add", ["token_rows", "pos"], ["x0"])]
    x = "x0"
    for i in range(len(arch.hidden)):
        b, p = f"block.{i}.", f"l{i}_"
        for name in ("norm1.gamma", "norm1.beta", "attention.qkv.kernel", "attention.qkv.bias", "attention.out.kernel",
                     "attention.out.bias", "norm2.gamma", "norm2.beta", "mlp.up.kernel", "mlp.up.bias",
                     "mlp.down.kernel", "mlp.down.bias"):
            init[b + name] = t[b + name]
        for kind in "kv":
            inputs.append(helper.make_tensor_value_info(f"past_{kind}{i}", TensorProto.FLOAT, [batch, heads, "P", size]))
            outputs.append(helper.make_tensor_value_info(f"present_{kind}{i}", TensorProto.FLOAT,
                                                         [batch, heads, "P1", size]))
        nodes += [
            node("LayerNormalization", [x, b + "norm1.gamma", b + "norm1.beta"], [p + "h"], axis=-1,
                 epsilon=shape.norm_epsilon),
            node("MatMul", [p + "h", b + "attention.qkv.kernel"], [p + "qkv0"]),
            node("Add", [p + "qkv0", b + "attention.qkv.bias"], [p + "qkv"]),
            node("Split", [p + "qkv", "thirds"], [p + "q0", p + "k0", p + "v0"], axis=1),
        ]
        for part in "qkv":
            nodes += [node("Reshape", [p + part + "0", "heads_shape"], [p + part + "1"]),
                      node("Transpose", [p + part + "1"], [p + part], perm=[0, 2, 1, 3])]
        nodes += [
            node("Concat", [f"past_k{i}", p + "k"], [f"present_k{i}"], axis=2),
            node("Concat", [f"past_v{i}", p + "v"], [f"present_v{i}"], axis=2),
            node("Transpose", [f"present_k{i}"], [p + "kt"], perm=[0, 1, 3, 2]),
            node("MatMul", [p + "q", p + "kt"], [p + "s0"]),
            node("Mul", [p + "s0", "scale"], [p + "s"]),
            node("Softmax", [p + "s"], [p + "w"], axis=-1),
            node("MatMul", [p + "w", f"present_v{i}"], [p + "a0"]),
            node("Transpose", [p + "a0"], [p + "a1"], perm=[0, 2, 1, 3]),
            node("Reshape", [p + "a1", "flat"], [p + "a"]),
            node("MatMul", [p + "a", b + "attention.out.kernel"], [p + "o0"]),
            node("Add", [p + "o0", b + "attention.out.bias"], [p + "o"]),
            node("Add", [x, p + "o"], [p + "x1"]),
            node("LayerNormalization", [p + "x1", b + "norm2.gamma", b + "norm2.beta"], [p + "h2"], axis=-1,
                 epsilon=shape.norm_epsilon),
            node("MatMul", [p + "h2", b + "mlp.up.kernel"], [p + "u0"]),
            node("Add", [p + "u0", b + "mlp.up.bias"], [p + "u"]),
            # GPT-2's GELU: 0.5 u (1 + tanh(sqrt(2 / pi) (u + 0.044715 u^3)))
            node("Mul", [p + "u", p + "u"], [p + "u2"]), node("Mul", [p + "u2", p + "u"], [p + "u3"]),
            node("Mul", [p + "u3", "cubic"], [p + "g0"]), node("Add", [p + "u", p + "g0"], [p + "g1"]),
            node("Mul", [p + "g1", "root"], [p + "g2"]), node("Tanh", [p + "g2"], [p + "g3"]),
            node("Add", [p + "g3", "one"], [p + "g4"]), node("Mul", [p + "u", "half"], [p + "g5"]),
            node("Mul", [p + "g5", p + "g4"], [p + "g"]),
            node("MatMul", [p + "g", b + "mlp.down.kernel"], [p + "m0"]),
            node("Add", [p + "m0", b + "mlp.down.bias"], [p + "m"]),
            node("Add", [p + "x1", p + "m"], [p + "x"]),
        ]
        x = p + "x"
    nodes += [node("LayerNormalization", [x, "norm.gamma", "norm.beta"], ["final"], axis=-1,
                   epsilon=shape.norm_epsilon),
              node("MatMul", ["final", "output"], ["logits0"]), node("Add", ["logits0", "dense.bias"], ["logits"])]
    return _model(helper.make_graph(nodes, "mgf_transformer_step", inputs, outputs, _constants(init)))


class OrtDecoder:
    """An ONNX Runtime session of :func:`decoder_graph`, stepping at a fixed cache length ``past`` (the cache's
    contents do not change the work)."""

    def __init__(self, loaded: Bundle, batch: int, threads: int, past: int) -> None:
        shape = loaded.arch.transformer
        self.session = _session(decoder_graph(loaded, batch), threads)
        size = loaded.arch.embedding_dim // shape.heads
        rng = np.random.default_rng(0)
        self.feeds = {"tokens": np.zeros(batch, np.int64), "position": np.array([past], np.int64)}
        for i in range(len(loaded.arch.hidden)):
            for kind in "kv":
                self.feeds[f"past_{kind}{i}"] = rng.normal(0, 1, (batch, shape.heads, past, size)).astype(np.float32)

    def step(self, tokens: np.ndarray) -> np.ndarray:
        self.feeds["tokens"][:] = tokens
        return self.session.run(["logits"], self.feeds)[0]

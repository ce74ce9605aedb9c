"""One step of a bundle's stacked LSTM as an ONNX graph, run by ONNX Runtime: the peer to beat.

The graph is written with ``onnx.helper`` from the bundle's own tensors (no PyTorch, no export
tracing) and computes what :class:`mgf.kernel.reference.NumpyLSTM` computes: embedding gather, then per
layer ``z = x @ kernel + h @ recurrent_kernel + bias``, gates i, f, g, o, the c/h update, and
the dense logits.  Inputs ``tokens[B]`` (int64) and ``h{l}``, ``c{l}`` per layer; outputs
``logits`` and ``h{l}_out``, ``c{l}_out``.  ``fold=True`` gives ONNX Runtime the precomputation
mgf's kernel does: layer 0's embedding, input kernel and bias folded into one ``[V, 4H]`` table
that the step gathers rows from.  :func:`loop_graph` puts a whole greedy loop in one graph (an
ONNX ``Loop`` over the folded step and an ``ArgMax``), the peer of ``mgf.generate``'s loop in C.
"""

from __future__ import annotations

import numpy as np

from mgf.contract.bundle import Bundle

OPSET = 17  # Split takes its sizes as an input from 13 on; 17 is supported by every current ONNX Runtime


def _step_parts(loaded: Bundle, batch: int, fold: bool):
    """The nodes, initializers, inputs and outputs of one step (see the module docstring)."""
    from onnx import TensorProto, helper

    arch, t = loaded.arch, loaded.tensors
    vocab = arch.vocab_size
    embedding = t["embedding"] if arch.embedding_dim is not None else np.eye(vocab, dtype=np.float32)
    initializers = {"dense.kernel": t["dense.kernel"], "dense.bias": t["dense.bias"]}
    node = helper.make_node
    nodes, inputs, outputs = [], [helper.make_tensor_value_info("tokens", TensorProto.INT64, [batch])], []
    if fold:
        initializers["table"] = (embedding @ t["lstm.0.kernel"] + t["lstm.0.bias"]).astype(np.float32)
        nodes.append(node("Gather", ["table", "tokens"], ["zx0"]))
    else:
        initializers["embedding"] = embedding
        nodes.append(node("Gather", ["embedding", "tokens"], ["x0"]))
    x = "x0"  # what the next layer reads
    for layer, units in enumerate(arch.hidden):
        h, c = f"h{layer}", f"c{layer}"
        inputs += [helper.make_tensor_value_info(name, TensorProto.FLOAT, [batch, units]) for name in (h, c)]
        outputs += [helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, [batch, units]) for name in (h, c)]
        initializers[f"split{layer}"] = np.full(4, units, np.int64)
        initializers[f"recurrent{layer}"] = t[f"lstm.{layer}.recurrent_kernel"]
        nodes.append(node("MatMul", [h, f"recurrent{layer}"], [f"zh{layer}"]))
        if fold and layer == 0:
            nodes.append(node("Add", ["zx0", "zh0"], ["z0"]))
        else:
            initializers[f"kernel{layer}"], initializers[f"bias{layer}"] = t[f"lstm.{layer}.kernel"], t[f"lstm.{layer}.bias"]
            nodes += [
                node("MatMul", [x, f"kernel{layer}"], [f"zx{layer}"]),
                node("Add", [f"zx{layer}", f"zh{layer}"], [f"zs{layer}"]),
                node("Add", [f"zs{layer}", f"bias{layer}"], [f"z{layer}"]),
            ]
        zi, zf, zg, zo = (f"z{gate}{layer}" for gate in "ifgo")
        nodes += [
            node("Split", [f"z{layer}", f"split{layer}"], [zi, zf, zg, zo], axis=1),
            node("Sigmoid", [zi], [f"i{layer}"]),
            node("Sigmoid", [zf], [f"f{layer}"]),
            node("Tanh", [zg], [f"g{layer}"]),
            node("Sigmoid", [zo], [f"o{layer}"]),
            node("Mul", [f"f{layer}", c], [f"fc{layer}"]),
            node("Mul", [f"i{layer}", f"g{layer}"], [f"ig{layer}"]),
            node("Add", [f"fc{layer}", f"ig{layer}"], [f"{c}_out"]),
            node("Tanh", [f"{c}_out"], [f"tc{layer}"]),
            node("Mul", [f"o{layer}", f"tc{layer}"], [f"{h}_out"]),
        ]
        x = f"{h}_out"
    nodes += [node("MatMul", [x, "dense.kernel"], ["dense"]), node("Add", ["dense", "dense.bias"], ["logits"])]
    return nodes, initializers, inputs, outputs


def _model(graph):
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="mgf-benchmarks")
    onnx.checker.check_model(model, full_check=True)
    return model


def _constants(initializers: dict):
    from onnx import numpy_helper

    return [numpy_helper.from_array(np.ascontiguousarray(array), name) for name, array in initializers.items()]


def step_graph(loaded: Bundle, batch: int, fold: bool = False):
    """The ``onnx.ModelProto`` of one step at a fixed batch size (static shapes let ONNX Runtime plan its memory)."""
    from onnx import TensorProto, helper

    nodes, initializers, inputs, outputs = _step_parts(loaded, batch, fold)
    outputs.insert(0, helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, loaded.arch.vocab_size]))
    return _model(helper.make_graph(nodes, "mgf_lstm_step", inputs, outputs, _constants(initializers)))


def loop_graph(loaded: Bundle, batch: int, steps: int):
    """A greedy loop of ``steps`` folded steps in one graph: inputs as :func:`step_graph`'s, named ``*_first``,
    and output ``chosen`` [steps, B].

    The body is the step with the argmax of its logits as the next tokens; the weights are
    initializers of the outer graph, which the body reads by name.
    """
    from onnx import TensorProto, helper

    nodes, initializers, inputs, outputs = _step_parts(loaded, batch, fold=True)
    node = helper.make_node
    # the condition's shape is left open: the checker and ONNX Runtime agree on no declared one
    nodes += [node("ArgMax", ["logits"], ["next"], axis=1, keepdims=0), node("Identity", ["cond"], ["cond_out"]),
              node("Identity", ["next"], ["chosen_step"])]
    carried = [value.name for value in inputs[1:]]
    body = helper.make_graph(
        nodes, "greedy_step",
        [helper.make_tensor_value_info("iteration", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond", TensorProto.BOOL, None), *inputs],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, None),
         helper.make_tensor_value_info("next", TensorProto.INT64, [batch]), *outputs,
         helper.make_tensor_value_info("chosen_step", TensorProto.INT64, [batch])],
    )
    initializers["steps"] = np.array(steps, np.int64)
    initializers["true"] = np.array(True)
    first = [f"{value.name}_first" for value in inputs]  # a subgraph may not reuse a name of the outer graph
    loop = node("Loop", ["steps", "true", *first], ["last", *(f"{name}_final" for name in carried), "chosen"], body=body)
    outer_inputs = [helper.make_tensor_value_info(name, value.type.tensor_type.elem_type,
                                                  [d.dim_value for d in value.type.tensor_type.shape.dim])
                    for name, value in zip(first, inputs)]
    graph = helper.make_graph(
        [loop], "mgf_lstm_greedy_loop", outer_inputs,
        [helper.make_tensor_value_info("chosen", TensorProto.INT64, [steps, batch])], _constants(initializers),
    )
    return _model(graph)


def _session(model, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


class OrtLoop:
    """An ONNX Runtime session of :func:`loop_graph`: ``run()`` makes ``steps`` greedy steps from a zero state."""

    def __init__(self, loaded: Bundle, batch: int, threads: int, steps: int) -> None:
        self.session = _session(loop_graph(loaded, batch, steps), threads)
        self.feeds = {"tokens_first": np.zeros(batch, np.int64)}
        for layer, units in enumerate(loaded.arch.hidden):
            self.feeds[f"h{layer}_first"] = self.feeds[f"c{layer}_first"] = np.zeros((batch, units), np.float32)

    def run(self) -> np.ndarray:
        """The chosen tokens, ``[steps, B]``."""
        return self.session.run(["chosen"], self.feeds)[0]


class OrtStep:
    """An ONNX Runtime session of :func:`step_graph` whose inputs and outputs are bound once to preallocated arrays.

    The recurrent state lives in two sets of buffers used in turn (one read, the other written),
    so a step is one ``run_with_iobinding`` call with no allocation and no copy but the tokens'.
    """

    def __init__(self, loaded: Bundle, batch: int, threads: int, fold: bool = False) -> None:
        self.session = _session(step_graph(loaded, batch, fold), threads)
        self.tokens = np.zeros(batch, np.int64)
        self.logits = np.empty((batch, loaded.arch.vocab_size), np.float32)
        names = [f"{kind}{layer}" for layer in range(len(loaded.arch.hidden)) for kind in "hc"]
        units = [h for h in loaded.arch.hidden for _ in "hc"]
        self.states = [[np.zeros((batch, n), np.float32) for n in units] for _ in range(2)]
        self.bindings = [self._bind(names, self.states[k], self.states[1 - k]) for k in (0, 1)]
        self.turn = 0

    def _bind(self, names: list[str], read: list[np.ndarray], written: list[np.ndarray]):
        binding = self.session.io_binding()

        def bind(bind_fn, name, array):
            bind_fn(name, "cpu", 0, array.dtype.type, list(array.shape), array.ctypes.data)

        bind(binding.bind_input, "tokens", self.tokens)
        bind(binding.bind_output, "logits", self.logits)
        for name, source, target in zip(names, read, written):
            bind(binding.bind_input, name, source)
            bind(binding.bind_output, f"{name}_out", target)
        return binding

    def step(self, tokens: np.ndarray) -> np.ndarray:
        """Logits ``[B, V]`` after ``tokens``; the array is overwritten by the next step."""
        self.tokens[:] = tokens
        self.session.run_with_iobinding(self.bindings[self.turn])
        self.turn ^= 1
        return self.logits

# cython: language_level=3
"""Native forward step of a stacked LSTM language model (bundle format v1), for fast sampling.

Work done once, at load:
  * layer 0's input projection of every token, plus its bias, is a table [V, 4H]: a step
    gathers one row per sequence instead of multiplying by the embedding and the kernel;
  * each upper layer's kernel and recurrent kernel are stacked into one [H_below + H, 4H]
    matrix, read by one matrix product against the row [x | h] kept contiguous in the state;
  * gate columns are regrouped by thread chunk ([i f g o] for units u0..u1), and each chunk's
    columns become a matrix of their own, so that each thread's product and cell update touch
    contiguous memory, and its weights only;
  * with precision bf16 or int8, those matrices (not the table, a lookup) are converted to
    packed reduced-precision panels (see _lstm_math.h).

The module is compiled without bounds checks: every function reachable from Python checks its
arguments (layer indices, shapes, dtypes, sizes) with the GIL held, raising InputError, before
any pointer is taken.  A step then runs without the GIL, allocating nothing: all buffers live
in the state, which belongs to one sequence batch.  The state keeps two copies of each layer's
[x | h] row and alternates between them, so that a thread writing its new h never races with
another still reading the old one.
"""

from libc.stdint cimport int32_t, uint32_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy
from cython.parallel cimport prange

import operator
import os

import numpy as np

from .errors import InputError
from .model import as_tokens


cdef extern from "_lstm_math.h" nogil:
    ctypedef struct mgf_isa:
        void (*lstm_cell)(int rows, int units, const float *gates, long gate_stride, float *c, long c_stride,
                          float *h, long h_stride, float *h_out, long out_stride) noexcept nogil
    ctypedef struct mgf_matrix:
        int precision, k, n
        const float *w
        long ldw
        const uint32_t *packed
        const float *scale
        const int32_t *col_sums
    int MGF_PANEL
    int mgf_cpu_level()
    const char *mgf_isa_for(int level, mgf_isa *table)
    long mgf_scratch_floats(int rows, int k)
    void mgf_product(const mgf_isa *isa, const mgf_matrix *m, int rows, const float *x, long ldx, float *c,
                     long ldc, float *scratch)


PRECISIONS = ("fp32", "bf16", "int8")
ISAS = ("baseline", "avx2", "avx512")
_INT_MAX = 2**31 - 1


def _count(value, what):
    """`value` as an int >= 1, or InputError."""
    try:
        number = operator.index(value)
    except TypeError:
        raise InputError(f"{what} must be integers, got {value!r}") from None
    if number < 1:
        raise InputError(f"{what} must be at least 1, got {number}")
    return number


def best_isa():
    """The widest instruction set of ISAS this CPU runs."""
    return ISAS[mgf_cpu_level()]


def _isa_level(name):
    """The instruction-set level to run: `name` (default: MGF_ISA, else the best this CPU has)."""
    best = mgf_cpu_level()
    if name is None:
        name = os.environ.get("MGF_ISA") or ISAS[best]
    if name not in ISAS:
        raise InputError(f"MGF_ISA must be one of {', '.join(ISAS)}; got {name!r}")
    level = ISAS.index(name)
    if level > best:
        raise InputError(f"MGF_ISA={name} is not supported by this CPU (it runs up to {ISAS[best]})")
    return level


def _chunks(int size, int parts):
    """Bounds [0, ..., size] of `parts` near-equal contiguous chunks."""
    return [size * t // parts for t in range(parts + 1)]


def _gate_columns(int hidden, int u0, int u1):
    """Columns of units [u0, u1) of each gate, in Keras order [i | f | g | o]."""
    return [gate * hidden + u for gate in range(4) for u in range(u0, u1)]


def _checked_tensors(tensors, int vocab_size, tuple hidden):
    """The tensors a kernel reads, checked against the architecture, as float32 arrays."""
    if not isinstance(tensors, dict):
        raise InputError("tensors must be a dict of numpy arrays")
    embedding = tensors.get("embedding")
    if isinstance(embedding, np.ndarray) and embedding.ndim != 2:
        raise InputError(f"tensor 'embedding' must be 2-D, got shape {embedding.shape}")
    expected = {}
    if embedding is not None:
        expected["embedding"] = (vocab_size, embedding.shape[1] if isinstance(embedding, np.ndarray) else 0)
    below = expected["embedding"][1] if embedding is not None else vocab_size
    for l, units in enumerate(hidden):
        expected[f"lstm.{l}.kernel"] = (below, 4 * units)
        expected[f"lstm.{l}.recurrent_kernel"] = (units, 4 * units)
        expected[f"lstm.{l}.bias"] = (4 * units,)
        below = units
    expected["dense.kernel"] = (below, vocab_size)
    expected["dense.bias"] = (vocab_size,)
    checked = {}
    for key, shape in expected.items():
        if key not in tensors:
            raise InputError(f"missing tensor {key!r}")
        array = tensors[key]
        if not isinstance(array, np.ndarray):
            raise InputError(f"tensor {key!r} must be a numpy array, got {type(array).__name__}")
        if array.dtype.kind != "f":
            raise InputError(f"tensor {key!r} must hold floats, got {array.dtype}")
        if array.shape != shape:
            raise InputError(f"tensor {key!r} must have shape {shape}, got {array.shape}")
        checked[key] = array.astype(np.float32)
    for key in tensors:
        if key.startswith(("lstm.", "dense.")) and key not in expected:
            raise InputError(f"unexpected tensor {key!r}")
    return checked


def _bf16_bits(matrix):
    """float32 -> the nearest bf16 (ties to even) as uint32 bits in the low half."""
    bits = np.ascontiguousarray(matrix, np.float32).view(np.uint32)
    return (bits + np.uint32(0x7FFF) + ((bits >> 16) & 1)) >> 16


def _quantize_columns(matrix):
    """Symmetric int8 per column: (q, scale) with matrix ~ q * scale, scale = max |column| / 127."""
    top = np.abs(matrix).max(axis=0).astype(np.float32)
    inverse = np.divide(np.float32(127), top, out=np.zeros_like(top), where=top > 0)
    q = np.clip(np.rint(matrix * inverse), -127, 127).astype(np.int8)
    return q, top / np.float32(127)


def _panels(words):
    """[steps, columns] words -> [columns / PANEL, steps, PANEL], each panel contiguous."""
    steps, columns = words.shape
    return np.ascontiguousarray(words.reshape(steps, columns // MGF_PANEL, MGF_PANEL).transpose(1, 0, 2))


def _pack(matrix, str precision):
    """A [k, n] float32 matrix as the arrays mgf_matrix points to: (weights, scale, col_sums)."""
    if precision == "fp32":
        return np.ascontiguousarray(matrix, np.float32), None, None
    k, n = matrix.shape
    per_word = 2 if precision == "bf16" else 4
    steps, columns = -(-k // per_word), -(-n // MGF_PANEL) * MGF_PANEL
    if precision == "bf16":
        bits = np.zeros((steps * 2, columns), np.uint32)
        bits[:k, :n] = _bf16_bits(matrix)
        return _panels(bits[0::2] | (bits[1::2] << 16)), None, None
    q, scale = _quantize_columns(matrix)
    quads = np.zeros((steps, 4, columns), np.int8)
    quads.reshape(steps * 4, columns)[:k, :n] = q
    words = np.ascontiguousarray(quads.transpose(0, 2, 1)).view("<u4").reshape(steps, columns)
    scales, sums = np.zeros(columns, np.float32), np.zeros(columns, np.int32)
    scales[:n], sums[:n] = scale, q.sum(axis=0, dtype=np.int32)
    return _panels(words), scales, sums


cdef inline float *_data(array) except NULL:
    cdef float[:, ::1] view = array
    return &view[0, 0]


cdef class KernelState:
    """Per-batch buffers of one LSTMKernel: [x | h] rows (two copies), c, gate and product scratch."""

    cdef readonly int batch_size
    cdef int parity
    cdef LSTMKernel owner
    cdef list rows       # rows[p][l]: float32 [B, row_widths[l]]
    cdef list cells      # cells[l]: float32 [B, hidden_sizes[l]]
    cdef object gates    # float32 [B, 4 * max H]
    cdef object scratch  # float32 [threads, scratch_stride]: activations quantised for a product
    cdef long scratch_stride
    cdef float **row_ptr  # [2 * L]
    cdef float **cell_ptr  # [L]
    cdef float *gate_ptr
    cdef float *scratch_ptr

    def __cinit__(self, owner, batch_size, current=None, cells=None):
        """Zero state of `batch_size` rows, or copies of `current` ([x | h] rows) and `cells`, one array per layer."""
        cdef int l, p, n
        cdef LSTMKernel kernel
        if not isinstance(owner, LSTMKernel):
            raise InputError("a kernel state needs the LSTMKernel it belongs to")
        kernel = <LSTMKernel> owner
        n = kernel.n_layers
        size = _count(batch_size, "batch size")
        widest = max(4 * kernel.max_hidden, kernel.max_row_width + 2 * kernel.threads)
        if size * widest > _INT_MAX:
            raise InputError(f"batch size {size} is too large")
        if (current is None) != (cells is None):
            raise InputError("give both the [x | h] rows and the cells, or neither")
        widths = [kernel.row_widths[l] for l in range(n)]
        if current is None:
            current = [np.zeros((size, w), np.float32) for w in widths]
            cells = [np.zeros((size, kernel.hidden_sizes[l]), np.float32) for l in range(n)]
        else:
            current = _copies(current, "[x | h] rows", [(size, w) for w in widths])
            cells = _copies(cells, "cells", [(size, kernel.hidden_sizes[l]) for l in range(n)])
        self.owner = kernel
        self.batch_size = size
        self.parity = 0
        self.rows = [current, [np.zeros((size, w), np.float32) for w in widths]]
        self.cells = cells
        self.gates = np.zeros((size, 4 * kernel.max_hidden), np.float32)
        self.scratch_stride = mgf_scratch_floats(size, kernel.max_row_width) if kernel.precision != "fp32" else 1
        self.scratch = np.zeros((kernel.threads, self.scratch_stride), np.float32)
        self.row_ptr = <float **> calloc(2 * n, sizeof(float *))
        self.cell_ptr = <float **> calloc(n, sizeof(float *))
        if self.row_ptr == NULL or self.cell_ptr == NULL:
            raise MemoryError()
        for p in range(2):
            for l in range(n):
                self.row_ptr[p * n + l] = _data(self.rows[p][l])
        for l in range(n):
            self.cell_ptr[l] = _data(self.cells[l])
        self.gate_ptr = _data(self.gates)
        self.scratch_ptr = _data(self.scratch)

    def __dealloc__(self):
        free(self.row_ptr)
        free(self.cell_ptr)

    def take(self, indices):
        """A new state whose row i copies row indices[i] of this one."""
        index = np.asarray(indices)
        if index.size and index.dtype.kind not in "iu":
            raise InputError(f"state indices must be integers, got {index.dtype}")
        index = index.astype(np.intp)
        if index.ndim != 1:
            raise InputError("state indices must be 1-D")
        if index.size and (index.min() < 0 or index.max() >= self.batch_size):
            raise InputError(f"state indices must lie in [0, {self.batch_size})")
        current = [row[index] for row in self.rows[self.parity]]
        cells = [c[index] for c in self.cells]
        return KernelState(self.owner, index.size, current, cells)

    def h(self, layer):
        """Copy of layer `layer`'s hidden state [B, H]."""
        l = self._layer_index(layer)
        return self.rows[self.parity][l][:, self.owner.input_widths[l]:].copy()

    def c(self, layer):
        """Copy of layer `layer`'s cell state [B, H]."""
        return self.cells[self._layer_index(layer)].copy()

    cdef int _layer_index(self, layer) except -1:
        number = operator.index(layer)
        if not 0 <= number < self.owner.n_layers:
            raise InputError(f"layer {number} is out of range [0, {self.owner.n_layers})")
        return number


def _copies(arrays, str what, list shapes):
    """Private float32 copies of `arrays`, one per layer, each of the expected shape."""
    if not isinstance(arrays, (list, tuple)) or len(arrays) != len(shapes):
        got = len(arrays) if isinstance(arrays, (list, tuple)) else type(arrays).__name__
        raise InputError(f"expected {len(shapes)} arrays of {what} (one per layer), got {got}")
    copies = []
    for l, (array, shape) in enumerate(zip(arrays, shapes)):
        if not isinstance(array, np.ndarray):
            raise InputError(f"layer {l}'s {what} must be a numpy array, got {type(array).__name__}")
        if array.dtype != np.float32:
            raise InputError(f"layer {l}'s {what} must be float32, got {array.dtype}")
        if array.shape != shape:
            raise InputError(f"layer {l}'s {what} must have shape {shape}, got {array.shape}")
        copies.append(np.array(array, np.float32, order="C", copy=True))
    return copies


cdef class LSTMKernel:
    """Weights of one bundle laid out for the step; read-only after construction, shareable across threads."""

    cdef readonly int vocab_size, n_layers, max_hidden, max_row_width, threads
    cdef readonly str precision, isa
    cdef mgf_isa functions
    cdef int *hidden_sizes   # [L]
    cdef int *input_widths   # [L]: width of the x part of layer l's row [x | h]: 0 for layer 0
    cdef int *row_widths     # [L]: input_widths + hidden_sizes, the rows of layer l's matrix
    cdef int *unit_bounds    # [L * (threads + 1)]: units [u0, u1) of each thread
    cdef int *vocab_bounds   # [threads + 1]
    cdef mgf_matrix *matrices  # [(L + 1) * threads]: each layer's then the dense layer's, by thread
    cdef float **biases      # [L]: layer l's bias regrouped by thread chunk (l >= 1)
    cdef float *table        # [V, 4 H_0]: embedding @ kernel + bias, regrouped
    cdef float *dense_bias
    cdef list arrays         # keeps the buffers above alive

    def __cinit__(self, tensors, vocab_size, hidden, threads=1, precision="fp32", isa=None):
        """`precision` of the products' weights (PRECISIONS); `isa` one of ISAS (default: MGF_ISA, else the best)."""
        cdef int l, t, n, T
        vocab = _count(vocab_size, "vocabulary size")
        if not isinstance(hidden, (tuple, list)) or not hidden:
            raise InputError("the native kernel needs at least one layer")
        sizes = tuple(_count(units, "hidden sizes") for units in hidden)
        requested = _count(threads, "threads")
        if precision not in PRECISIONS:
            raise InputError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
        level = _isa_level(isa)
        checked = _checked_tensors(tensors, vocab, sizes)
        widths = [0] + list(sizes[:len(sizes) - 1])
        if max(w + h for w, h in zip(widths, sizes)) > 65536 or 4 * max(sizes) * vocab > _INT_MAX:
            raise InputError("layers wider than 65536 rows are not supported by the native kernel")
        n = len(sizes)
        T = min(requested, min(sizes), vocab)
        self.vocab_size, self.n_layers, self.threads = vocab, n, T
        self.max_hidden = max(sizes)
        self.max_row_width = max(w + h for w, h in zip(widths, sizes))
        self.precision = precision
        self.isa = mgf_isa_for(level, &self.functions).decode()
        self.hidden_sizes = <int *> calloc(n, sizeof(int))
        self.input_widths = <int *> calloc(n, sizeof(int))
        self.row_widths = <int *> calloc(n, sizeof(int))
        self.unit_bounds = <int *> calloc(n * (T + 1), sizeof(int))
        self.vocab_bounds = <int *> calloc(T + 1, sizeof(int))
        self.matrices = <mgf_matrix *> calloc((n + 1) * T, sizeof(mgf_matrix))
        self.biases = <float **> calloc(n, sizeof(float *))
        if (self.hidden_sizes == NULL or self.input_widths == NULL or self.row_widths == NULL
                or self.unit_bounds == NULL or self.vocab_bounds == NULL or self.matrices == NULL
                or self.biases == NULL):
            raise MemoryError()
        self.arrays = []
        for l in range(n):
            self.hidden_sizes[l] = sizes[l]
            self.input_widths[l] = widths[l]
            self.row_widths[l] = widths[l] + sizes[l]
            bounds = _chunks(sizes[l], T)
            kernel = checked[f"lstm.{l}.kernel"]
            recurrent = checked[f"lstm.{l}.recurrent_kernel"]
            bias = checked[f"lstm.{l}.bias"]
            order = [c for t in range(T) for c in _gate_columns(sizes[l], bounds[t], bounds[t + 1])]
            if l == 0:
                embedding = checked.get("embedding")
                projected = kernel if embedding is None else embedding.astype(np.float64) @ kernel
                self.table = self._keep((projected + bias)[:, order])
                stacked = recurrent
            else:
                stacked = np.vstack([kernel, recurrent])
                self.biases[l] = self._keep(bias[None, order])
            for t in range(T + 1):
                self.unit_bounds[l * (T + 1) + t] = bounds[t]
            for t in range(T):
                columns = _gate_columns(sizes[l], bounds[t], bounds[t + 1])
                self._set_matrix(&self.matrices[l * T + t], stacked[:, columns])
        bounds = _chunks(vocab, T)
        for t in range(T + 1):
            self.vocab_bounds[t] = bounds[t]
        for t in range(T):
            self._set_matrix(&self.matrices[n * T + t], checked["dense.kernel"][:, bounds[t]:bounds[t + 1]])
        self.dense_bias = self._keep(checked["dense.bias"][None, :])

    cdef int _set_matrix(self, mgf_matrix *matrix, weights) except -1:
        """Fills `matrix` with the packed form of the [k, n] float32 `weights`, kept alive by self."""
        packed, scale, sums = _pack(weights, self.precision)
        self.arrays.extend([packed, scale, sums])
        matrix.precision = PRECISIONS.index(self.precision)
        matrix.k, matrix.n = weights.shape
        cdef float[:, ::1] w32
        cdef uint32_t[:, :, ::1] panels
        cdef float[::1] scale_view
        cdef int32_t[::1] sums_view
        if self.precision == "fp32":
            w32 = packed
            matrix.w, matrix.ldw = &w32[0, 0], w32.shape[1]
        else:
            panels = packed
            matrix.packed = &panels[0, 0, 0]
        if scale is not None:
            scale_view, sums_view = scale, sums
            matrix.scale, matrix.col_sums = &scale_view[0], &sums_view[0]
        return 0

    cdef float *_keep(self, array) except NULL:
        array = np.ascontiguousarray(array, dtype=np.float32)
        self.arrays.append(array)
        return _data(array)

    def __dealloc__(self):
        free(self.hidden_sizes)
        free(self.input_widths)
        free(self.row_widths)
        free(self.unit_bounds)
        free(self.vocab_bounds)
        free(self.matrices)
        free(self.biases)

    def initial_state(self, batch_size):
        return KernelState(self, batch_size)

    def step(self, tokens, state):
        """Logits [B, V] (float32) after feeding tokens [B]; updates `state` in place and returns it."""
        if not isinstance(state, KernelState):
            raise InputError(f"step needs a state of this kernel, got {type(state).__name__}")
        cdef KernelState checked_state = <KernelState> state
        cdef int b, B = checked_state.batch_size
        if checked_state.owner is not self:
            raise InputError("this state belongs to another model")
        if not (type(tokens) is np.ndarray and tokens.dtype == np.int32 and tokens.ndim == 1
                and tokens.flags.c_contiguous):
            tokens = as_tokens(tokens, B, self.vocab_size)
        cdef const int[::1] ids = tokens
        if ids.shape[0] != B:
            raise InputError(f"expected {B} token id(s) (one per row), got {ids.shape[0]}")
        for b in range(B):
            if ids[b] < 0 or ids[b] >= self.vocab_size:
                raise InputError(f"token id {ids[b]} is outside the vocabulary [0, {self.vocab_size})")
        logits = np.empty((B, self.vocab_size), np.float32)
        cdef float *out = _data(logits)
        with nogil:
            self._step(B, &ids[0], checked_state, out)
        return logits, state

    cdef void _step(self, int B, const int *ids, KernelState state, float *out) noexcept nogil:
        """One step for checked arguments: B token ids in, B x V logits into `out`, the state advanced."""
        cdef int l, t, T = self.threads
        for l in range(self.n_layers):
            if T == 1:
                self._layer(l, 0, B, ids, state)
            else:
                for t in prange(T, num_threads=T, schedule="static"):
                    self._layer(l, t, B, ids, state)
        if T == 1:
            self._dense(0, B, out, state)
        else:
            for t in prange(T, num_threads=T, schedule="static"):
                self._dense(t, B, out, state)
        state.parity ^= 1

    cdef void _layer(self, int l, int t, int B, const int *ids, KernelState state) noexcept nogil:
        cdef int n = self.n_layers, bounds_per_layer = self.threads + 1
        cdef int u0 = self.unit_bounds[l * bounds_per_layer + t], u1 = self.unit_bounds[l * bounds_per_layer + t + 1]
        cdef int units = u1 - u0, width = 4 * units, g0 = 4 * u0
        cdef int gate_width = 4 * self.hidden_sizes[l], row_width = self.row_widths[l]
        cdef float *row = state.row_ptr[state.parity * n + l]
        cdef float *row_next = state.row_ptr[(state.parity ^ 1) * n + l]
        cdef float *gates = state.gate_ptr
        cdef float *above = NULL
        cdef int above_stride = 0, b
        if units == 0:
            return
        for b in range(B):
            if l == 0:
                memcpy(gates + b * gate_width + g0, self.table + ids[b] * gate_width + g0, width * sizeof(float))
            else:
                memcpy(gates + b * gate_width + g0, self.biases[l] + g0, width * sizeof(float))
        # layer 0's row is [h] alone: its input part went into the table
        mgf_product(&self.functions, &self.matrices[l * self.threads + t], B, row, row_width, gates + g0,
                    gate_width, state.scratch_ptr + t * state.scratch_stride)
        if l + 1 < n:
            above = state.row_ptr[state.parity * n + l + 1] + u0
            above_stride = self.row_widths[l + 1]
        self.functions.lstm_cell(B, units, gates + g0, gate_width, state.cell_ptr[l] + u0, self.hidden_sizes[l],
                                 row_next + self.input_widths[l] + u0, row_width, above, above_stride)

    cdef void _dense(self, int t, int B, float *out, KernelState state) noexcept nogil:
        cdef int last = self.n_layers - 1, V = self.vocab_size
        cdef int v0 = self.vocab_bounds[t], v1 = self.vocab_bounds[t + 1], width = v1 - v0, b
        cdef float *h = state.row_ptr[(state.parity ^ 1) * self.n_layers + last] + self.input_widths[last]
        if width == 0:
            return
        for b in range(B):
            memcpy(out + b * V + v0, self.dense_bias + v0, width * sizeof(float))
        mgf_product(&self.functions, &self.matrices[self.n_layers * self.threads + t], B, h, self.row_widths[last],
                    out + v0, V, state.scratch_ptr + t * state.scratch_stride)


include "_generate.pxi"

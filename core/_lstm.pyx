# cython: language_level=3
"""Native forward step of a stacked LSTM language model (bundle format v1), for fast sampling.

Work done once, at load:
  * layer 0's input projection of every token, plus its bias, is a table [V, 4H]: a step
    gathers one row per sequence instead of multiplying by the embedding and the kernel;
  * each upper layer's kernel and recurrent kernel are stacked into one [H_below + H, 4H]
    matrix, read by one matrix product against the row [x | h] kept contiguous in the state;
  * gate columns are regrouped by thread chunk ([i f g o] for units u0..u1, chunk after
    chunk), so that each thread's matrix product and cell update touch contiguous memory.

The arithmetic is in _lstm_math.h.

A step checks its inputs with the GIL held, then runs without it, allocating nothing: all
buffers live in the state, which belongs to one sequence batch.  The state keeps two copies of
each layer's [x | h] row and alternates between them, so that a thread writing its new h
never races with another still reading the old one.
"""

from libc.stdlib cimport free, malloc
from libc.string cimport memcpy
from cython.parallel cimport prange

import numpy as np

from .errors import InputError
from .model import as_tokens


cdef extern from "_lstm_math.h" nogil:
    void mgf_lstm_cell(int rows, int units, const float *gates, long gate_stride, float *c, long c_stride,
                       float *h, long h_stride, float *h_out, long out_stride)
    void mgf_matmul_acc(int rows, int n, int k, const float *x, long ldx, const float *w, long ldw,
                        float *c, long ldc)


def _chunks(int size, int parts):
    """Bounds [0, ..., size] of `parts` near-equal contiguous chunks."""
    return [size * t // parts for t in range(parts + 1)]


def _regroup(matrix, int hidden, bounds):
    """Columns in Keras order [i | f | g | o] -> [i f g o of chunk 0 | i f g o of chunk 1 | ...]."""
    order = []
    for t in range(len(bounds) - 1):
        for gate in range(4):
            order.extend(range(gate * hidden + bounds[t], gate * hidden + bounds[t + 1]))
    return np.ascontiguousarray(matrix[..., order], dtype=np.float32)


cdef class KernelState:
    """Per-batch buffers of one LSTMKernel: [x | h] rows (two copies), c, gate scratch."""

    cdef readonly int batch_size
    cdef int parity
    cdef object owner
    cdef list rows       # rows[p][l]: float32 [B, xin_l + H_l]
    cdef list cells      # cells[l]: float32 [B, H_l]
    cdef object gates    # float32 [B, 4 * max H]
    cdef float **row_ptr  # [2 * L]
    cdef float **cell_ptr
    cdef float *gate_ptr

    def __cinit__(self, LSTMKernel owner, int batch_size, list current=None, list cells=None):
        cdef int l, p, n = owner.n_layers
        self.owner = owner
        self.batch_size = batch_size
        self.parity = 0
        if current is None:
            current = [np.zeros((batch_size, owner.kdim[l]), np.float32) for l in range(n)]
            cells = [np.zeros((batch_size, owner.hid[l]), np.float32) for l in range(n)]
        self.rows = [current, [np.zeros((batch_size, owner.kdim[l]), np.float32) for l in range(n)]]
        self.cells = cells
        self.gates = np.zeros((batch_size, 4 * owner.max_hidden), np.float32)
        self.row_ptr = <float **> malloc(2 * n * sizeof(float *))
        self.cell_ptr = <float **> malloc(n * sizeof(float *))
        if self.row_ptr == NULL or self.cell_ptr == NULL:
            raise MemoryError()
        for p in range(2):
            for l in range(n):
                self.row_ptr[p * n + l] = _data(self.rows[p][l])
        for l in range(n):
            self.cell_ptr[l] = _data(self.cells[l])
        self.gate_ptr = _data(self.gates)

    def __dealloc__(self):
        free(self.row_ptr)
        free(self.cell_ptr)

    def take(self, indices):
        """A new state whose row i copies row indices[i] of this one."""
        cdef LSTMKernel owner = self.owner
        index = np.asarray(indices, dtype=np.intp)
        if index.ndim != 1:
            raise InputError("state indices must be 1-D")
        if index.size and (index.min() < 0 or index.max() >= self.batch_size):
            raise InputError(f"state indices must lie in [0, {self.batch_size})")
        current = [np.ascontiguousarray(row[index]) for row in self.rows[self.parity]]
        cells = [np.ascontiguousarray(c[index]) for c in self.cells]
        return KernelState(owner, index.size, current, cells)

    def h(self, int layer):
        """Copy of layer `layer`'s hidden state [B, H]."""
        cdef LSTMKernel owner = self.owner
        return self.rows[self.parity][layer][:, owner.xin[layer]:].copy()

    def c(self, int layer):
        """Copy of layer `layer`'s cell state [B, H]."""
        return self.cells[layer].copy()


cdef inline float *_data(array) except NULL:
    cdef float[:, ::1] view = array
    return &view[0, 0]


cdef class LSTMKernel:
    """Weights of one bundle laid out for the step; read-only after construction, shareable across threads."""

    cdef readonly int vocab_size, n_layers, max_hidden, threads
    cdef int hid[64]
    cdef int kdim[64]   # rows of the layer's stacked matrix: xin + H
    cdef int xin[64]    # width of the x part of [x | h]: 0 for layer 0
    cdef list arrays    # keeps the buffers below alive
    cdef float *table
    cdef float *weights[64]
    cdef float *biases[64]
    cdef float *dense_w
    cdef float *dense_b
    cdef int *unit_bounds   # [L * (threads + 1)]
    cdef int *vocab_bounds  # [threads + 1]

    def __cinit__(self, dict tensors, int vocab_size, tuple hidden, int threads=1):
        cdef int l, t
        cdef int n = len(hidden)
        if n < 1 or n > 64:
            raise InputError(f"the native kernel supports 1 to 64 layers, not {n}")
        self.vocab_size, self.n_layers = vocab_size, n
        self.max_hidden = max(hidden)
        self.threads = max(1, min(int(threads), min(hidden), vocab_size))
        self.unit_bounds = <int *> malloc(n * (self.threads + 1) * sizeof(int))
        self.vocab_bounds = <int *> malloc((self.threads + 1) * sizeof(int))
        if self.unit_bounds == NULL or self.vocab_bounds == NULL:
            raise MemoryError()
        self.arrays = []
        for l in range(n):
            self.hid[l] = hidden[l]
            self.xin[l] = 0 if l == 0 else hidden[l - 1]
            self.kdim[l] = self.xin[l] + hidden[l]
            bounds = _chunks(hidden[l], self.threads)
            for t in range(self.threads + 1):
                self.unit_bounds[l * (self.threads + 1) + t] = bounds[t]
            kernel = tensors[f"lstm.{l}.kernel"].astype(np.float32)
            recurrent = tensors[f"lstm.{l}.recurrent_kernel"].astype(np.float32)
            bias = tensors[f"lstm.{l}.bias"].astype(np.float32)
            if l == 0:
                embedding = tensors.get("embedding")
                projected = kernel if embedding is None else embedding.astype(np.float64) @ kernel
                table = _regroup(projected + bias, hidden[0], bounds)
                self.table = self._keep(table)
                stacked = recurrent
            else:
                stacked = np.vstack([kernel, recurrent])
            self.weights[l] = self._keep(_regroup(stacked, hidden[l], bounds))
            self.biases[l] = self._keep(_regroup(bias[None, :], hidden[l], bounds))
        bounds = _chunks(vocab_size, self.threads)
        for t in range(self.threads + 1):
            self.vocab_bounds[t] = bounds[t]
        self.dense_w = self._keep(tensors["dense.kernel"])
        self.dense_b = self._keep(tensors["dense.bias"][None, :])

    cdef float *_keep(self, array) except NULL:
        array = np.ascontiguousarray(array, dtype=np.float32)
        self.arrays.append(array)
        return _data(array)

    def __dealloc__(self):
        free(self.unit_bounds)
        free(self.vocab_bounds)

    def initial_state(self, int batch_size):
        if batch_size < 1:
            raise InputError(f"batch size must be at least 1, got {batch_size}")
        return KernelState(self, batch_size)

    def step(self, tokens, KernelState state not None):
        """Logits [B, V] (float32) after feeding tokens [B]; updates `state` in place and returns it."""
        cdef int b, l, t, B = state.batch_size
        if state.owner is not self:
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
        cdef const int *ids_ptr = &ids[0]
        cdef int T = self.threads
        with nogil:
            for l in range(self.n_layers):
                if T == 1:
                    self._layer(l, 0, B, ids_ptr, state)
                else:
                    for t in prange(T, num_threads=T, schedule="static"):
                        self._layer(l, t, B, ids_ptr, state)
            if T == 1:
                self._dense(0, B, out, state)
            else:
                for t in prange(T, num_threads=T, schedule="static"):
                    self._dense(t, B, out, state)
        state.parity ^= 1
        return logits, state

    cdef void _layer(self, int l, int t, int B, const int *ids, KernelState state) noexcept nogil:
        cdef int n = self.n_layers, T1 = self.threads + 1
        cdef int u0 = self.unit_bounds[l * T1 + t], u1 = self.unit_bounds[l * T1 + t + 1]
        cdef int units = u1 - u0, m = 4 * units, g0 = 4 * u0, G = 4 * self.hid[l], k = self.kdim[l]
        cdef float *row = state.row_ptr[state.parity * n + l]
        cdef float *row_next = state.row_ptr[(state.parity ^ 1) * n + l]
        cdef float *gates = state.gate_ptr
        cdef float *above = NULL
        cdef int above_stride = 0, b
        if units == 0:
            return
        for b in range(B):
            if l == 0:
                memcpy(gates + b * G + g0, self.table + ids[b] * G + g0, m * sizeof(float))
            else:
                memcpy(gates + b * G + g0, self.biases[l] + g0, m * sizeof(float))
        mgf_matmul_acc(B, m, k, row, k, self.weights[l] + g0, G, gates + g0, G)
        if l + 1 < n:
            above = state.row_ptr[state.parity * n + l + 1] + u0
            above_stride = self.kdim[l + 1]
        mgf_lstm_cell(B, units, gates + g0, G, state.cell_ptr[l] + u0, self.hid[l],
                      row_next + self.xin[l] + u0, k, above, above_stride)

    cdef void _dense(self, int t, int B, float *out, KernelState state) noexcept nogil:
        cdef int last = self.n_layers - 1, V = self.vocab_size
        cdef int v0 = self.vocab_bounds[t], v1 = self.vocab_bounds[t + 1], m = v1 - v0, b
        cdef int k = self.hid[last], ldb = self.kdim[last]
        cdef float *h = state.row_ptr[(state.parity ^ 1) * self.n_layers + last] + self.xin[last]
        if m == 0:
            return
        for b in range(B):
            memcpy(out + b * V + v0, self.dense_b + v0, m * sizeof(float))
        mgf_matmul_acc(B, m, k, h, ldb, self.dense_w + v0, V, out + v0, V)

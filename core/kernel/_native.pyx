# cython: language_level=3
"""Native forward step of a stacked LSTM or GRU language model (bundle format v1), for fast sampling.

Work done once, at load:
  * layer 0's input projection of every token, plus its input bias, is a table [V, G H] (G = 4
    gates for an LSTM, 3 for a GRU): a step gathers one row per sequence instead of multiplying
    by the embedding and the kernel;
  * LSTM: each upper layer's kernel and recurrent kernel are stacked into one [H_below + H, 4H]
    matrix, read by one product against the row [x | h] kept contiguous in the state.  GRU
    (Keras reset_after=True): the reset gate scales the recurrent part alone, so the two
    products stay apart, each over its part of the same row;
  * gate columns are regrouped by chunk ([i f g o] or [z r h] for units u0..u1), and each
    chunk's columns become a matrix of their own, so that the thread computing a chunk touches
    contiguous memory, and its weights only;
  * with precision bf16 or int8, those matrices (not the table, a lookup) are converted to
    packed reduced-precision panels (see dispatch.h).

Threads: a step runs each layer, then the dense layer, as one job of `threads` chunks on the
kernel's pool (pool.h); the generation loop adds a job that samples the rows.

Prefill (Kernel.prime) feeds a primer in blocks of tokens, layer by layer: a GRU's input gates of
a whole block are one matrix product, the recurrence runs token by token in C, and the dense
layer runs for the last token alone.  Each number is computed as the step computes it (the same
products, their additions in the same order), so the logits and states are the step's, bit for
bit; an LSTM's [x | h] product and bf16's one-row tile (which adds in another order than its
four-row tile) keep their per-token products.

The module is compiled without bounds checks: every function reachable from Python checks its
arguments (layer indices, shapes, dtypes, sizes) with the GIL held, raising InputError, before
any pointer is taken.  A step then runs without the GIL, allocating nothing: all buffers live
in the state, which belongs to one sequence batch.  The state keeps two copies of each layer's
[x | h] row and alternates between them, so that a thread writing its new h never races with
another still reading the old one.
"""

from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc
from libc.math cimport INFINITY
from libc.string cimport memcpy

import operator
import os

import numpy as np

from mgf.errors import InputError
from mgf.contract.model import as_tokens


cdef extern from "dispatch.h" nogil:
    ctypedef struct mgf_isa:
        void (*lstm_cell)(int rows, int units, const float *gates, long gate_stride, float *c, long c_stride,
                          float *h, long h_stride, float *h_out, long out_stride) noexcept nogil
        void (*gru_cell)(int rows, int units, const float *x_gates, const float *h_gates, long gate_stride,
                         const float *h_old, float *h, long h_stride, float *h_out, long out_stride) noexcept nogil
    ctypedef struct mgf_matrix:
        int precision, k, n
        const float *w
        long ldw
        const float *tail
        const uint32_t *packed
        const float *scale
        const int32_t *col_sums
    int MGF_PANEL
    int MGF_TAIL
    int mgf_cpu_level()
    const char *mgf_isa_for(int level, mgf_isa *table)
    long mgf_scratch_floats(int rows, int k)
    void mgf_product(const mgf_isa *isa, const mgf_matrix *m, int rows, const float *x, long ldx, float *c,
                     long ldc, float *scratch)


cdef extern from "pool.h" nogil:
    ctypedef struct mgf_pool:
        pass
    ctypedef void (*mgf_chunk_fn)(void *job, int chunk) noexcept nogil
    int MGF_POOL_THREADS
    mgf_pool *mgf_pool_start(int threads)
    void mgf_pool_stop(mgf_pool *pool)
    void mgf_pool_run(mgf_pool *pool, int threads, mgf_chunk_fn fn, void *job)


PRECISIONS = ("fp32", "bf16", "int8")
ISAS = ("baseline", "avx2", "avx512")
CELLS = ("lstm", "gru")
GATES = {"lstm": 4, "gru": 3}
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


def _gate_columns(matrix, int gates, int hidden, int u0, int u1):
    """The columns of units [u0, u1) of each of `gates` gates of `matrix` [k, gates * hidden], in Keras order
    ([i | f | g | o] or [z | r | h]), as one matrix (by slices: fancy indexing took milliseconds at load)."""
    return np.concatenate([matrix[:, gate * hidden + u0:gate * hidden + u1] for gate in range(gates)], axis=1)


def _regrouped(matrix, int gates, int hidden, list bounds):
    """`matrix` with its columns regrouped by chunk: the gate columns of each chunk's units side by side."""
    return np.concatenate([_gate_columns(matrix, gates, hidden, bounds[t], bounds[t + 1])
                           for t in range(len(bounds) - 1)], axis=1)


def _checked_tensors(tensors, int vocab_size, tuple hidden, str cell):
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
    gates = GATES[cell]
    for l, units in enumerate(hidden):
        expected[f"{cell}.{l}.kernel"] = (below, gates * units)
        expected[f"{cell}.{l}.recurrent_kernel"] = (units, gates * units)
        expected[f"{cell}.{l}.bias"] = (4 * units,) if cell == "lstm" else (2, 3 * units)
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
        if key.startswith(("lstm.", "gru.", "dense.")) and key not in expected:
            raise InputError(f"unexpected tensor {key!r}")
    return checked


def _project(embedding, kernel, int threads):
    """embedding @ kernel: by BLAS on one thread; with more, by einsum (10 ms instead of 1 for the largest shipped
    model), because OpenBLAS's threads spin for a while after a call, on the cores this kernel's threads need."""
    return embedding @ kernel if threads == 1 else np.einsum("ve,eg->vg", embedding, kernel)


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
    return _aligned(words.reshape(steps, columns // MGF_PANEL, MGF_PANEL).transpose(1, 0, 2))


def _aligned(array):
    """A C-contiguous copy of `array` whose data starts on a 64-byte boundary: a cache line, so that no
    vector load of a weight row straddles two (numpy's large arrays start 16 bytes past one)."""
    array = np.asarray(array)
    raw = np.empty(array.nbytes + 64, np.uint8)
    start = -raw.ctypes.data % 64
    copy = raw[start:start + array.nbytes].view(array.dtype).reshape(array.shape)
    copy[...] = array
    return copy


def _pack(matrix, str precision):
    """A [k, n] float32 matrix as the arrays mgf_matrix points to: (weights, scale, col_sums)."""
    if precision == "fp32":
        return _aligned(matrix.astype(np.float32, copy=False)), None, None
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


# -- the step, in C structs that chunk functions reach without the GIL ---------------------------

cdef struct Net:
    # what a step reads of a Kernel; the arrays are owned by the Kernel
    int gru                   # 0: LSTM, 1: GRU
    int vocab_size, n_layers, threads
    mgf_isa functions
    int *hidden_sizes         # [L]
    int *input_widths         # [L]: width of the x part of layer l's row [x | h]: 0 for layer 0
    int *row_widths           # [L]: input_widths + hidden_sizes
    int *gate_widths          # [L]: a row of layer l's gates: 4 H (LSTM), 6 H (GRU: x gates, then h gates)
    int *unit_bounds          # [L * (threads + 1)]: units [u0, u1) of each chunk
    int *vocab_bounds         # [threads + 1]
    long *work                # [L + 1]: multiply-adds per row of each layer's job, then the dense layer's
    mgf_matrix *matrices      # [(L + 1) * threads]: by layer then chunk, LSTM [x | h] or GRU h; dense last
    mgf_matrix *inputs        # [L * threads]: GRU layers >= 1, the x part
    float **biases            # [L]: LSTM bias, GRU input bias, regrouped by chunk (layers >= 1)
    float **recurrent_biases  # [L]: GRU recurrent bias, regrouped by chunk
    float *table              # [V, G H_0]: embedding @ kernel + (input) bias, regrouped
    float *dense_bias


cdef struct Buffers:
    # what a step writes: one KernelState's, for batch_size rows
    int batch_size, parity
    float **rows              # [2 * L]: rows[p * L + l], float32 [B, row_widths[l]]
    float **cells             # [L] (LSTM): float32 [B, hidden_sizes[l]]
    float *gates              # [B, max gate width]
    float *scratch            # [threads, scratch_stride]: activations quantised for a product
    long scratch_stride


cdef struct StepJob:
    const Net *net
    Buffers *buffers
    const int *ids
    float *out
    int rows, layer


cdef void _layer_rows(const Net *net, Buffers *s, int l, int t, int B, int parity, const int *ids,
                     const float *x_gates_in, long x_in_stride, float *above, long above_stride) noexcept nogil:
    """Chunk t of layer l for one token of B rows, from the state at `parity` to the state at parity ^ 1: its
    units' gates (the table, the bias, or `x_gates_in`: a GRU's input gates computed beforehand, by prefill),
    plus the products, then their cell update; the new h also goes to `above` (row stride above_stride) unless
    NULL."""
    cdef int n = net.n_layers, b
    cdef int u0 = net.unit_bounds[l * (net.threads + 1) + t], u1 = net.unit_bounds[l * (net.threads + 1) + t + 1]
    cdef int units = u1 - u0, gates = 3 if net.gru else 4, H = net.hidden_sizes[l]
    cdef int width = gates * units, g0 = gates * u0, gate_width = net.gate_widths[l], row_width = net.row_widths[l]
    cdef int input_width = net.input_widths[l]
    cdef float *row = s.rows[parity * n + l]
    cdef float *row_next = s.rows[(parity ^ 1) * n + l]
    cdef float *x_gates = s.gates + g0
    cdef float *h_gates = s.gates + gates * H + g0  # GRU only
    cdef float *scratch = s.scratch + t * s.scratch_stride
    if units == 0:
        return
    for b in range(B):
        if l == 0:
            memcpy(x_gates + b * gate_width, net.table + ids[b] * gates * H + g0, width * sizeof(float))
        elif x_gates_in != NULL:
            memcpy(x_gates + b * gate_width, x_gates_in + b * x_in_stride + g0, width * sizeof(float))
        else:
            memcpy(x_gates + b * gate_width, net.biases[l] + g0, width * sizeof(float))
        if net.gru:
            memcpy(h_gates + b * gate_width, net.recurrent_biases[l] + g0, width * sizeof(float))
    if above != NULL:
        above += u0
    if not net.gru:  # one product over [x | h] (layer 0's row is [h] alone: its input part went into the table)
        mgf_product(&net.functions, &net.matrices[l * net.threads + t], B, row, row_width, x_gates, gate_width,
                    scratch)
        net.functions.lstm_cell(B, units, x_gates, gate_width, s.cells[l] + u0, H,
                                row_next + input_width + u0, row_width, above, above_stride)
        return
    if l > 0 and x_gates_in == NULL:
        mgf_product(&net.functions, &net.inputs[l * net.threads + t], B, row, row_width, x_gates, gate_width,
                    scratch)
    mgf_product(&net.functions, &net.matrices[l * net.threads + t], B, row + input_width, row_width, h_gates,
                gate_width, scratch)
    net.functions.gru_cell(B, units, x_gates, h_gates, gate_width, row + input_width + u0,
                           row_next + input_width + u0, row_width, above, above_stride)


cdef void _layer_chunk(void *job, int t) noexcept nogil:
    """Chunk t of one layer of a step; the new h also goes into the x part of the layer above's row."""
    cdef StepJob *j = <StepJob *> job
    cdef const Net *net = j.net
    cdef Buffers *s = j.buffers
    cdef int l = j.layer, n = net.n_layers
    cdef float *above = NULL
    cdef int above_stride = 0
    if l + 1 < n:
        above = s.rows[s.parity * n + l + 1]
        above_stride = net.row_widths[l + 1]
    _layer_rows(net, s, l, t, j.rows, s.parity, j.ids, NULL, 0, above, above_stride)


cdef void _dense_chunk(void *job, int t) noexcept nogil:
    """Chunk t of the dense layer: logits of vocabulary columns [v0, v1)."""
    cdef StepJob *j = <StepJob *> job
    cdef const Net *net = j.net
    cdef Buffers *s = j.buffers
    cdef int last = net.n_layers - 1, V = net.vocab_size, b
    cdef int v0 = net.vocab_bounds[t], v1 = net.vocab_bounds[t + 1]
    cdef float *h = s.rows[(s.parity ^ 1) * net.n_layers + last] + net.input_widths[last]
    if v1 == v0:
        return
    for b in range(j.rows):
        memcpy(j.out + b * V + v0, net.dense_bias + v0, (v1 - v0) * sizeof(float))
    mgf_product(&net.functions, &net.matrices[net.n_layers * net.threads + t], j.rows, h, net.row_widths[last],
                j.out + v0, V, s.scratch + t * s.scratch_stride)


#: a job of fewer multiply-adds runs on the calling thread alone: a microsecond or less of work, less than
#: handing half of it to another core costs (the dense layer of a small vocabulary at batch 1)
cdef enum:
    SPLIT_MIN_WORK = 131072


cdef inline mgf_pool *_pool_for(const Net *net, mgf_pool *pool, int job, int rows) noexcept nogil:
    return pool if rows * net.work[job] >= SPLIT_MIN_WORK else NULL


cdef void net_step(const Net *net, mgf_pool *pool, Buffers *buffers, const int *ids, float *out) noexcept nogil:
    """One step for checked arguments: a token id per row in, rows x V logits into `out`, the buffers advanced."""
    cdef StepJob job
    cdef int l, B = buffers.batch_size
    job.net, job.buffers, job.ids, job.out, job.rows = net, buffers, ids, out, B
    for l in range(net.n_layers):
        job.layer = l
        mgf_pool_run(_pool_for(net, pool, l, B), net.threads, _layer_chunk, &job)
    mgf_pool_run(_pool_for(net, pool, net.n_layers, B), net.threads, _dense_chunk, &job)
    buffers.parity ^= 1


# -- prefill: a primer fed layer by layer, the dense layer for its last token only --------------

cdef struct PrimeJob:
    const Net *net
    Buffers *buffers
    int layer, rows, parity
    const int *ids            # one token's ids [rows] (layer 0)
    const float *below        # the layer below's outputs [rows, H below] (the projection)
    float *x_gates            # a GRU layer's input gates [rows, 3 H]: written by the projection, read by a token
    float *above              # where a token's new h goes [rows, H], or NULL (the last layer)
    float *scratch            # the projection's scratch: [threads, scratch_stride]
    long scratch_stride


cdef void _project_chunk(void *job, int t) noexcept nogil:
    """Chunk t of the input gates of a GRU layer >= 1 for many tokens at once: bias + below @ kernel, each row as
    the step computes it (the same product, the same order of additions), as one matrix product."""
    cdef PrimeJob *j = <PrimeJob *> job
    cdef const Net *net = j.net
    cdef int l = j.layer, r, H = net.hidden_sizes[l]
    cdef int u0 = net.unit_bounds[l * (net.threads + 1) + t], u1 = net.unit_bounds[l * (net.threads + 1) + t + 1]
    if u1 == u0:
        return
    for r in range(j.rows):
        memcpy(j.x_gates + r * 3 * H + 3 * u0, net.biases[l] + 3 * u0, 3 * (u1 - u0) * sizeof(float))
    mgf_product(&net.functions, &net.inputs[l * net.threads + t], j.rows, j.below, net.hidden_sizes[l - 1],
                j.x_gates + 3 * u0, 3 * H, j.scratch + t * j.scratch_stride)


cdef void _prime_chunk(void *job, int t) noexcept nogil:
    """Chunk t of one layer for one token of the primer."""
    cdef PrimeJob *j = <PrimeJob *> job
    cdef int l = j.layer
    _layer_rows(j.net, j.buffers, l, t, j.rows, j.parity, j.ids, j.x_gates, 3 * j.net.hidden_sizes[l], j.above,
                j.net.hidden_sizes[l])


cdef void net_prime(const Net *net, mgf_pool *pool, Buffers *s, const int *ids, int T, int block, bint project,
                    float *x_gates, float *outputs, long half, float *scratch, long scratch_stride,
                    float *out) noexcept nogil:
    """T steps for checked arguments (ids [T, B]), with the logits of the last alone into `out` [B, V].

    Blocks of `block` tokens go layer by layer: a layer's h of every token of the block goes into
    outputs[l % 2] ([block B, H], `half` floats apart), which the layer above reads; with `project`
    (a GRU), layers >= 1 compute their input gates of the whole block as one product into `x_gates`
    first.  Every number is the one T calls of net_step give.
    """
    cdef PrimeJob job
    cdef StepJob dense
    cdef int B = s.batch_size, n = net.n_layers, first, m = 0, l, i, b, below_width
    cdef bint projected
    cdef float *below
    job.net, job.buffers, job.scratch, job.scratch_stride = net, s, scratch, scratch_stride
    first = 0
    while first < T:  # (a range with a variable step would need the GIL)
        if first:
            s.parity ^= m & 1  # the previous block's steps
        m = min(block, T - first)
        for l in range(n):
            below, below_width = outputs + ((l + 1) % 2) * half, net.hidden_sizes[l - 1] if l else 0
            projected = project and l > 0
            job.layer = l
            if projected:
                job.rows, job.below, job.x_gates = m * B, below, x_gates
                mgf_pool_run(_pool_for(net, pool, l, m * B), net.threads, _project_chunk, &job)
            for i in range(m):
                job.parity, job.rows, job.ids = s.parity ^ (i & 1), B, ids + (first + i) * B
                if l > 0 and not projected:  # the step's row [x | h] gets this token's x
                    for b in range(B):
                        memcpy(s.rows[job.parity * n + l] + b * net.row_widths[l], below + (i * B + b) * below_width,
                               below_width * sizeof(float))
                job.x_gates = x_gates + i * B * 3 * net.hidden_sizes[l] if projected else NULL
                job.above = outputs + (l % 2) * half + i * B * net.hidden_sizes[l] if l + 1 < n else NULL
                mgf_pool_run(_pool_for(net, pool, l, B), net.threads, _prime_chunk, &job)
        first += m
    s.parity ^= (m - 1) & 1  # the last token's step: what _dense_chunk reads is its new h
    dense.net, dense.buffers, dense.out, dense.rows = net, s, out, B
    mgf_pool_run(_pool_for(net, pool, n, B), net.threads, _dense_chunk, &dense)
    s.parity ^= 1


#: primer tokens per block of prefill, times the batch size: enough rows for the products' register tiles, few
#: enough that a block's gates and outputs leave the L2 cache to the recurrent weights
PRIME_ROWS = 64


# -- Python objects: the state and the kernel ---------------------------------------------------

cdef class KernelState:
    """Per-batch buffers of one Kernel: [x | h] rows (two copies), c (LSTM), gate and product scratch."""

    cdef readonly int batch_size
    cdef Kernel owner
    cdef Buffers buffers
    cdef list rows       # rows[p][l]: float32 [B, row_widths[l]]
    cdef list cells      # cells[l]: float32 [B, hidden_sizes[l]]; empty for a GRU
    cdef object gates    # float32 [B, max gate width]
    cdef object scratch  # float32 [threads, scratch_stride]
    cdef object ids      # int32 [B]: the tokens of a step, checked

    def __cinit__(self, owner, batch_size, current=None, cells=None):
        """Zero state of `batch_size` rows, or copies of `current` ([x | h] rows) and `cells`, one array per layer."""
        cdef int l, p, n
        cdef Kernel kernel
        if not isinstance(owner, Kernel):
            raise InputError("a kernel state needs the Kernel it belongs to")
        kernel = <Kernel> owner
        n = kernel.n_layers
        size = _count(batch_size, "batch size")
        widest = max(kernel.max_gate_width, kernel.max_row_width + 2 * kernel.threads)
        if size * widest > _INT_MAX:
            raise InputError(f"batch size {size} is too large")
        if (current is None) != (cells is None):
            raise InputError("give both the [x | h] rows and the cells, or neither")
        widths = [kernel.net.row_widths[l] for l in range(n)]
        cell_shapes = [] if kernel.net.gru else [(size, kernel.net.hidden_sizes[l]) for l in range(n)]
        if current is None:
            current = [np.zeros((size, w), np.float32) for w in widths]
            cells = [np.zeros(shape, np.float32) for shape in cell_shapes]
        else:
            current = _copies(current, "[x | h] rows", [(size, w) for w in widths])
            cells = _copies(cells, "cells", cell_shapes)
        self.owner = kernel
        self.batch_size = size
        self.rows = [current, [np.zeros((size, w), np.float32) for w in widths]]
        self.cells = cells
        self.gates = np.zeros((size, kernel.max_gate_width), np.float32)
        stride = mgf_scratch_floats(size, kernel.max_row_width) if kernel.precision != "fp32" else 1
        self.scratch = np.zeros((kernel.threads, stride), np.float32)
        self.ids = np.zeros(size, np.int32)
        self.buffers.batch_size, self.buffers.parity, self.buffers.scratch_stride = size, 0, stride
        self.buffers.rows = <float **> calloc(2 * n, sizeof(float *))
        self.buffers.cells = <float **> calloc(n, sizeof(float *))
        if self.buffers.rows == NULL or self.buffers.cells == NULL:
            raise MemoryError()
        for p in range(2):
            for l in range(n):
                self.buffers.rows[p * n + l] = _data(self.rows[p][l])
        for l in range(len(cells)):
            self.buffers.cells[l] = _data(self.cells[l])
        self.buffers.gates = _data(self.gates)
        self.buffers.scratch = _data(self.scratch)

    def __dealloc__(self):
        free(self.buffers.rows)
        free(self.buffers.cells)

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
        current = [row[index] for row in self.rows[self.buffers.parity]]
        cells = [c[index] for c in self.cells]
        return KernelState(self.owner, index.size, current, cells)

    def h(self, layer):
        """Copy of layer `layer`'s hidden state [B, H]."""
        l = self._layer_index(layer)
        return self.rows[self.buffers.parity][l][:, self.owner.net.input_widths[l]:].copy()

    def c(self, layer):
        """Copy of layer `layer`'s cell state [B, H] (an LSTM's; a GRU has none)."""
        l = self._layer_index(layer)
        if self.owner.net.gru:
            raise InputError("a GRU has no cell state")
        return self.cells[l].copy()

    cdef int _layer_index(self, layer) except -1:
        number = operator.index(layer)
        if not 0 <= number < self.owner.n_layers:
            raise InputError(f"layer {number} is out of range [0, {self.owner.n_layers})")
        return number

    cdef const int *checked_ids(self, tokens) except NULL:
        """`tokens` as the state's int32 ids: one per row, inside the vocabulary (InputError otherwise)."""
        cdef int b, B = self.batch_size, V = self.owner.vocab_size
        cdef int[::1] ids = self.ids
        cdef const int32_t[::1] narrow
        cdef const int64_t[::1] wide
        if type(tokens) is np.ndarray and tokens.ndim == 1 and tokens.flags.c_contiguous and tokens.dtype == np.int32:
            narrow = tokens
        elif type(tokens) is np.ndarray and tokens.ndim == 1 and tokens.flags.c_contiguous and tokens.dtype == np.int64:
            wide = tokens  # what argmax returns: checked as int64, so that no id wraps into the vocabulary
            if wide.shape[0] != B:
                raise InputError(f"expected {B} token id(s) (one per row), got {wide.shape[0]}")
            for b in range(B):
                if wide[b] < 0 or wide[b] >= V:
                    raise InputError(f"token id {wide[b]} is outside the vocabulary [0, {V})")
                ids[b] = <int> wide[b]
            return &ids[0]
        else:
            narrow = as_tokens(tokens, B, V)
        if narrow.shape[0] != B:
            raise InputError(f"expected {B} token id(s) (one per row), got {narrow.shape[0]}")
        for b in range(B):
            if narrow[b] < 0 or narrow[b] >= V:
                raise InputError(f"token id {narrow[b]} is outside the vocabulary [0, {V})")
            ids[b] = narrow[b]
        return &ids[0]


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


cdef class Kernel:
    """Weights of one bundle laid out for the step; read-only after construction, shareable across threads."""

    cdef readonly int vocab_size, n_layers, max_hidden, max_row_width, max_gate_width, threads
    cdef readonly str precision, isa, cell
    cdef Net net
    cdef mgf_pool *pool
    cdef list arrays         # keeps the arrays net points to alive (the rest is freed by __dealloc__)

    def __cinit__(self, tensors, vocab_size, hidden, threads=1, precision="fp32", isa=None, cell="lstm"):
        """`precision` of the products' weights (PRECISIONS); `isa` one of ISAS (default: MGF_ISA, else the best)."""
        cdef int l, t, n, T
        vocab = _count(vocab_size, "vocabulary size")
        if not isinstance(hidden, (tuple, list)) or not hidden:
            raise InputError("the native kernel needs at least one layer")
        sizes = tuple(_count(units, "hidden sizes") for units in hidden)
        requested = _count(threads, "threads")
        if precision not in PRECISIONS:
            raise InputError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
        if cell not in CELLS:
            raise InputError(f"cell must be one of {', '.join(CELLS)}; got {cell!r}")
        level = _isa_level(isa)
        checked = _checked_tensors(tensors, vocab, sizes, cell)
        gates = GATES[cell]
        widths = [0] + list(sizes[:len(sizes) - 1])
        if max(w + h for w, h in zip(widths, sizes)) > 65536 or 2 * gates * max(sizes) * vocab > _INT_MAX:
            raise InputError("layers wider than 65536 rows are not supported by the native kernel")
        n = len(sizes)
        T = min(requested, min(sizes), vocab) if MGF_POOL_THREADS else 1
        self.vocab_size, self.n_layers, self.threads, self.cell = vocab, n, T, cell
        self.max_hidden = max(sizes)
        self.max_row_width = max(w + h for w, h in zip(widths, sizes))
        self.max_gate_width = (2 if cell == "gru" else 1) * gates * self.max_hidden
        self.precision = precision
        self.isa = mgf_isa_for(level, &self.net.functions).decode()
        self.net.gru, self.net.vocab_size, self.net.n_layers, self.net.threads = cell == "gru", vocab, n, T
        self.arrays = []
        self.net.hidden_sizes = self._ints(sizes)
        self.net.input_widths = self._ints(widths)
        self.net.row_widths = self._ints([w + h for w, h in zip(widths, sizes)])
        self.net.gate_widths = self._ints([(2 if cell == "gru" else 1) * gates * h for h in sizes])
        self.net.unit_bounds = self._ints([u for h in sizes for u in _chunks(h, T)])
        self.net.vocab_bounds = self._ints(_chunks(vocab, T))
        products = [(w + h) * gates * h for w, h in zip(widths, sizes)]  # a GRU's two products, an LSTM's one
        self.net.work = self._longs(products + [sizes[n - 1] * vocab])
        self.net.matrices = <mgf_matrix *> calloc((n + 1) * T, sizeof(mgf_matrix))
        self.net.inputs = <mgf_matrix *> calloc(n * T, sizeof(mgf_matrix))
        self.net.biases = <float **> calloc(n, sizeof(float *))
        self.net.recurrent_biases = <float **> calloc(n, sizeof(float *))
        if (self.net.matrices == NULL or self.net.inputs == NULL or self.net.biases == NULL
                or self.net.recurrent_biases == NULL):
            raise MemoryError()
        for l in range(n):
            bounds = _chunks(sizes[l], T)
            kernel = checked[f"{cell}.{l}.kernel"]
            recurrent = checked[f"{cell}.{l}.recurrent_kernel"]
            bias = checked[f"{cell}.{l}.bias"]
            input_bias, recurrent_bias = (bias, None) if cell == "lstm" else (bias[0], bias[1])
            if l == 0:
                embedding = checked.get("embedding")
                projected = kernel if embedding is None else _project(embedding.astype(np.float64), kernel, T)
                self.net.table = self._keep(_regrouped((projected + input_bias).astype(np.float32), gates, sizes[l],
                                                       bounds))
            else:
                self.net.biases[l] = self._keep(_regrouped(input_bias[None, :], gates, sizes[l], bounds))
            if recurrent_bias is not None:
                self.net.recurrent_biases[l] = self._keep(_regrouped(recurrent_bias[None, :], gates, sizes[l], bounds))
            stacked = np.vstack([kernel, recurrent]) if cell == "lstm" and l > 0 else recurrent
            for t in range(T):
                self._set_matrix(&self.net.matrices[l * T + t], _gate_columns(stacked, gates, sizes[l], bounds[t],
                                                                             bounds[t + 1]))
                if cell == "gru" and l > 0:
                    self._set_matrix(&self.net.inputs[l * T + t], _gate_columns(kernel, gates, sizes[l], bounds[t],
                                                                               bounds[t + 1]))
        bounds = _chunks(vocab, T)
        for t in range(T):
            self._set_matrix(&self.net.matrices[n * T + t], checked["dense.kernel"][:, bounds[t]:bounds[t + 1]])
        self.net.dense_bias = self._keep(checked["dense.bias"][None, :])
        self.pool = mgf_pool_start(T)
        if T > 1 and self.pool == NULL:
            raise MemoryError("could not start the kernel's threads")

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
            cols = matrix.n % MGF_TAIL
            if cols:
                tail = np.zeros((matrix.k, MGF_TAIL), np.float32)
                tail[:, :cols] = weights[:, matrix.n - cols:]
                matrix.tail = self._keep(tail)
        else:
            panels = packed
            matrix.packed = &panels[0, 0, 0]
        if scale is not None:
            scale_view, sums_view = scale, sums
            matrix.scale, matrix.col_sums = &scale_view[0], &sums_view[0]
        return 0

    cdef float *_keep(self, array) except NULL:
        array = _aligned(np.asarray(array, dtype=np.float32))
        self.arrays.append(array)
        return _data(array)

    cdef int *_ints(self, values) except NULL:
        cdef int[::1] view = np.array(values, np.int32)
        self.arrays.append(view)
        return &view[0]

    cdef long *_longs(self, values) except NULL:
        cdef long[::1] view = np.array(values, np.int_)
        self.arrays.append(view)
        return &view[0]

    def __dealloc__(self):
        mgf_pool_stop(self.pool)
        free(self.net.matrices)
        free(self.net.inputs)
        free(self.net.biases)
        free(self.net.recurrent_biases)

    def initial_state(self, batch_size):
        return KernelState(self, batch_size)

    def step(self, tokens, state):
        """Logits [B, V] (float32) after feeding tokens [B]; updates `state` in place and returns it."""
        if not isinstance(state, KernelState):
            raise InputError(f"step needs a state of this kernel, got {type(state).__name__}")
        cdef KernelState checked_state = <KernelState> state
        if checked_state.owner is not self:
            raise InputError("this state belongs to another model")
        cdef const int *ids = checked_state.checked_ids(tokens)
        logits = np.empty((checked_state.batch_size, self.vocab_size), np.float32)
        cdef float *out = _data(logits)
        with nogil:
            net_step(&self.net, self.pool, &checked_state.buffers, ids, out)
        return logits, state

    def prime(self, tokens, state):
        """Logits [B, V] after feeding tokens [B, T] (T >= 1), column t at step t: what T calls of step give,
        the same numbers, computed layer by layer (see net_prime); updates `state` in place and returns it."""
        if not isinstance(state, KernelState):
            raise InputError(f"prime needs a state of this kernel, got {type(state).__name__}")
        cdef KernelState checked_state = <KernelState> state
        if checked_state.owner is not self:
            raise InputError("this state belongs to another model")
        cdef int B = checked_state.batch_size, V = self.vocab_size
        array = np.asarray(tokens)
        if array.dtype.kind not in "iu":
            raise InputError(f"token ids must be integers, got {array.dtype}")
        if array.ndim != 2 or array.shape[0] != B or array.shape[1] < 1:
            raise InputError(f"expected token ids [{B}, T] (a row per sequence, T >= 1), got shape {list(array.shape)}")
        if array.min() < 0 or array.max() >= V:
            bad = array[(array < 0) | (array >= V)][0]
            raise InputError(f"token id {bad} is outside the vocabulary [0, {V})")
        if array.shape[1] > _INT_MAX // B:
            raise InputError(f"a primer of {array.shape[1]} tokens is too long")
        cdef const int[:, ::1] ids = np.ascontiguousarray(array.T, dtype=np.int32)  # [T, B]: a step's ids together
        cdef int T = ids.shape[0], block = max(1, PRIME_ROWS // B)
        cdef int rows = min(block, T) * B
        cdef bint project = self.net.gru and self.precision != "bf16"  # bf16's one-row tile adds in another order
        x_gates = np.empty((rows, 3 * self.max_hidden if project else 1), np.float32)
        outputs = np.empty((2, rows, self.max_hidden), np.float32)
        stride = mgf_scratch_floats(rows, self.max_row_width) if project and self.precision != "fp32" else 1
        scratch = np.empty((self.threads, stride), np.float32)
        logits = np.empty((B, V), np.float32)
        cdef float *x_gates_data = _data(x_gates)
        cdef float *outputs_data = _data(outputs.reshape(2 * rows, self.max_hidden))
        cdef float *scratch_data = _data(scratch)
        cdef float *out = _data(logits)
        cdef long half = rows * self.max_hidden
        with nogil:
            net_prime(&self.net, self.pool, &checked_state.buffers, &ids[0, 0], T, block, project, x_gates_data,
                      outputs_data, half, scratch_data, stride, out)
        return logits, state


include "generate.pxi"


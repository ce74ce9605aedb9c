# Included by _native.pyx: the Python objects, the state and the kernel.

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
        self.net.gate_stride = self.max_gate_width
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
        return _fill_matrix(matrix, weights, self.precision, self.arrays)

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

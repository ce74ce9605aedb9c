# Included by _native.pyx: checking a bundle's tensors and packing them into the kernel's layouts.

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


def _strided(matrix):
    """`matrix` [k, n] as float32 rows of an odd number of cache lines (zero-padded columns), 64-byte aligned: its row
    stride for the products.  With rows a power-of-two multiple of 4 KiB apart (n = 1024, 2048: H = 256 or 512 LSTM
    gates), a tile's column strip of the weights fell into a few cache sets and was evicted before its reuse:
    64 x 512 @ 512 x 2048 ran at 79 GFLOP/s, and at 130 with rows 64 bytes longer (Intel Xeon, AVX-512)."""
    k, n = matrix.shape
    lines = -(-n // 16)
    lines += 1 - lines % 2
    padded = _aligned_empty((k, 16 * lines), np.float32)
    padded[:, n:] = 0
    padded[:, :n] = matrix
    return padded


def _aligned_empty(shape, dtype):
    """An uninitialised C-contiguous array whose data starts on a 64-byte boundary: a cache line, so that no
    vector load of a weight row straddles two (numpy's large arrays start 16 bytes past one)."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    raw = np.empty(nbytes + 64, np.uint8)
    start = -raw.ctypes.data % 64
    return raw[start:start + nbytes].view(dtype).reshape(shape)


def _aligned(array):
    """A C-contiguous copy of `array` on a 64-byte boundary (see _aligned_empty)."""
    array = np.asarray(array)
    copy = _aligned_empty(array.shape, array.dtype)
    copy[...] = array
    return copy


def _pack(matrix, str precision):
    """A [k, n] float32 matrix as the arrays mgf_matrix points to: (weights, scale, col_sums)."""
    if precision == "fp32":
        return _strided(matrix), None, None
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


cdef int _fill_matrix(mgf_matrix *matrix, weights, str precision, list arrays) except -1:
    """Fills `matrix` with the packed form of the [k, n] float32 `weights` at `precision`; the arrays it points to are
    appended to `arrays`, which its owner keeps alive (a recurrent Kernel's and a TransformerKernel's matrices)."""
    packed, scale, sums = _pack(weights, precision)
    arrays.extend([packed, scale, sums])
    matrix.precision = PRECISIONS.index(precision)
    matrix.k, matrix.n = weights.shape
    cdef float[:, ::1] w32
    cdef uint32_t[:, :, ::1] panels
    cdef float[::1] scale_view
    cdef int32_t[::1] sums_view
    if precision == "fp32":
        w32 = packed
        matrix.w, matrix.ldw = &w32[0, 0], w32.shape[1]
        cols = matrix.n % MGF_TAIL
        if cols:
            tail = np.zeros((matrix.k, MGF_TAIL), np.float32)
            tail[:, :cols] = weights[:, matrix.n - cols:]
            tail = _aligned(tail)
            arrays.append(tail)
            matrix.tail = _data(tail)
    else:
        panels = packed
        matrix.packed = &panels[0, 0, 0]
    if scale is not None:
        scale_view, sums_view = scale, sums
        matrix.scale, matrix.col_sums = &scale_view[0], &sums_view[0]
    return 0

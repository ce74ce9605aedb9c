# Included by _native.pyx: a decoder-only Transformer (bundle cell "transformer", docs/bundle-format.md) with a KV cache.
#
# A step feeds one token per row at the state's position: its keys and values join the cache, its query attends
# over the cache's positions so far.  Prefill (prime) runs a block of tokens per row through each matrix product
# at once (rows = tokens x batch) and the output layer for the last token only.  The products are the recurrent
# kernel's (mgf_product: fp32, bf16 or int8 weights, per instruction set); LayerNorm, GELU and attention are
# isa_transformer.h's.  Past the context the cache keeps its last context // 2 tokens, read again from position 0
# (as mgf.kernel.reference.NumpyTransformer does).  Threads: each product's columns are split into one matrix per
# thread (whole 64-column panels), and attention's (row, head) pairs are split between them, as jobs on the
# kernel's pool (pool.h); LayerNorm and GELU run on the calling thread.

cdef struct Decoder:
    # what a step reads of a TransformerKernel; the arrays are owned by it
    int vocab_size, width, heads, size, layers, mlp, context, rotary, exact_gelu, threads
    int half_cache            # 1: the cache holds bf16 (uint16) keys and values, 0: float32
    float epsilon, scale
    mgf_isa functions
    const float *embedding    # [V, d]
    const float *positions    # [context, d], or NULL (rotary)
    const float *cos          # [context, size / 2] (rotary)
    const float *sin
    mgf_matrix *matrices      # [(4 L + 1) threads]: per block qkv, out, up, down, then the output layer; each split
                              # into `threads` matrices of its columns
    int *columns              # [(4 L + 1) (threads + 1)]: the first column of each part, then the width
    const float **vectors     # [10 L]: per block norm1 gamma, beta, qkv bias, out bias, norm2 gamma, beta, up bias,
                              # down bias (two spare)
    const float *dense_bias
    const float *norm_gamma
    const float *norm_beta


cdef struct Work:
    # the buffers of one pass of `rows` rows (tokens x batch), all [rows, width] but qkv [rows, 3 d] and up [rows, mlp]
    float *x
    float *h
    float *qkv
    float *attended
    float *up
    float *scratch            # [threads, scratch_stride]: the products' quantised activations, per thread
    long scratch_stride
    float *scores             # [threads, tokens per sequence in the pass, context]
    float *wide               # [threads, 2 size context]: a sequence's bf16 keys and values as float32 (a pass of
                              # several tokens), or NULL


cdef void _rotate(const Decoder *net, float *row, int position) noexcept nogil:
    """Rotary positions on each head of one row (q or k, [heads * size]): LLaMA's rotate-half."""
    cdef int head, i, half = net.size // 2
    cdef const float *cos = net.cos + <long> position * half
    cdef const float *sin = net.sin + <long> position * half
    cdef float *v
    cdef float a, b
    for head in range(net.heads):
        v = row + head * net.size
        for i in range(half):
            a, b = v[i], v[i + half]
            v[i] = a * cos[i] - b * sin[i]
            v[i + half] = b * cos[i] + a * sin[i]


cdef struct ProductJob:
    const Decoder *net
    int matrix, rows
    const float *x
    long ldx
    float *c
    long ldc
    Work *work


cdef void _product_chunk(void *raw, int t) noexcept nogil:
    cdef ProductJob *job = <ProductJob *> raw
    cdef const Decoder *net = job.net
    cdef const mgf_matrix *m = &net.matrices[job.matrix * net.threads + t]
    if m.n > 0:
        mgf_product(&net.functions, m, job.rows, job.x, job.ldx,
                    job.c + net.columns[job.matrix * (net.threads + 1) + t], job.ldc,
                    job.work.scratch + t * job.work.scratch_stride)


cdef void _product(const Decoder *net, mgf_pool *pool, int matrix, int rows, const float *x, long ldx, float *c,
                   long ldc, Work *w) noexcept nogil:
    """c[rows, n] += x @ matrix, its column parts on the pool's threads."""
    cdef ProductJob job
    job.net, job.matrix, job.rows, job.x, job.ldx, job.c, job.ldc, job.work = net, matrix, rows, x, ldx, c, ldc, w
    mgf_pool_run(pool, net.threads, _product_chunk, &job)


cdef struct AttentionJob:
    const Decoder *net
    void *keys
    void *values
    const float *qkv
    Work *work
    int B, R, start, layer


cdef void _attention_chunk(void *raw, int t) noexcept nogil:
    """Thread t's share of the queries: (row, head) pairs over an fp32 cache, each over the cache up to its own
    position; over a bf16 cache, (sequence, head) pairs, each with the pass's T queries together (one read of the
    cache for all of them)."""
    cdef AttentionJob *job = <AttentionJob *> raw
    cdef const Decoder *net = job.net
    cdef int T = job.R // job.B, groups = job.R if not net.half_cache else job.B
    cdef int pairs = groups * net.heads, first = <int> (<long> pairs * t // net.threads)
    cdef int last = <int> (<long> pairs * (t + 1) // net.threads), pair, r, b, head, d = net.width
    cdef long plane = <long> net.context * net.size, slot
    for pair in range(first, last):
        r, head = pair // net.heads, pair % net.heads
        b = r % job.B
        slot = ((<long> job.layer * job.B + b) * net.heads + head) * plane
        if net.half_cache:  # r = b: the sequence's first query is row b, the next ones B rows apart
            net.functions.attend_bf16(T, job.start + 1, net.size, job.qkv + <long> b * 3 * d + head * net.size,
                                      <long> 3 * d * job.B, <uint16_t *> job.keys + slot, net.context,
                                      <uint16_t *> job.values + slot, net.scale,
                                      job.work.scores + <long> t * T * net.context, net.context,
                                      job.work.attended + <long> b * d + head * net.size, <long> d * job.B,
                                      job.work.wide + <long> t * 2 * net.size * net.context if T > 1 else NULL)
        else:
            net.functions.attend(job.start + r // job.B + 1, net.size, job.qkv + <long> r * 3 * d + head * net.size,
                                 <float *> job.keys + slot, net.context, <float *> job.values + slot, net.scale,
                                 job.work.scores + <long> t * T * net.context,
                                 job.work.attended + <long> r * d + head * net.size)


cdef void decoder_pass(const Decoder *net, mgf_pool *pool, void *keys, void *values, int B, int T, int start,
                       const int *ids, Work *w, float *logits) noexcept nogil:
    """Feed tokens ids[t * B + b] (t < T) at positions start + t: their keys and values into the cache (keys
    transposed, [L, B, heads, size, context]; values [L, B, heads, context, size]), and the logits of the last
    token's rows into `logits` [B, V]."""
    cdef int R = B * T, d = net.width, m = net.mlp, l, r, t, b, head, j
    cdef long plane = <long> net.context * net.size, slot
    cdef const mgf_isa *isa = &net.functions
    cdef const float **vec
    cdef const float *source
    cdef float *q
    cdef AttentionJob attention
    for r in range(R):
        source = net.embedding + <long> ids[r] * d
        for j in range(d):
            w.x[<long> r * d + j] = source[j]
        if net.positions != NULL:
            source = net.positions + <long> (start + r // B) * d
            for j in range(d):
                w.x[<long> r * d + j] += source[j]
    attention.net, attention.keys, attention.values, attention.qkv, attention.work = net, keys, values, w.qkv, w
    attention.B, attention.R, attention.start = B, R, start
    for l in range(net.layers):
        vec = net.vectors + 10 * l
        isa.layer_norm(R, d, w.x, d, vec[0], vec[1], net.epsilon, w.h, d)
        _fill_rows(w.qkv, R, 3 * d, vec[2])
        _product(net, pool, 4 * l, R, w.h, d, w.qkv, 3 * d, w)
        for r in range(R):
            t, b = r // B, r % B
            q = w.qkv + <long> r * 3 * d
            if net.rotary:
                _rotate(net, q, start + t)
                _rotate(net, q + d, start + t)
            for head in range(net.heads):
                slot = ((<long> l * B + b) * net.heads + head) * plane
                if net.half_cache:
                    for j in range(net.size):  # keys transposed: [size, context]
                        (<uint16_t *> keys)[slot + <long> j * net.context + start + t] = \
                            mgf_bf16_bits(q[d + head * net.size + j])
                        (<uint16_t *> values)[slot + <long> (start + t) * net.size + j] = \
                            mgf_bf16_bits(q[2 * d + head * net.size + j])
                else:
                    for j in range(net.size):
                        (<float *> keys)[slot + <long> j * net.context + start + t] = q[d + head * net.size + j]
                    memcpy(<float *> values + slot + <long> (start + t) * net.size, q + 2 * d + head * net.size,
                           net.size * sizeof(float))
        attention.layer = l
        mgf_pool_run(pool, net.threads, _attention_chunk, &attention)
        _add_rows(w.x, R, d, vec[3])
        _product(net, pool, 4 * l + 1, R, w.attended, d, w.x, d, w)
        isa.layer_norm(R, d, w.x, d, vec[4], vec[5], net.epsilon, w.h, d)
        _fill_rows(w.up, R, m, vec[6])
        _product(net, pool, 4 * l + 2, R, w.h, d, w.up, m, w)
        isa.gelu(R, m, w.up, m, net.exact_gelu)
        _add_rows(w.x, R, d, vec[7])
        _product(net, pool, 4 * l + 3, R, w.up, m, w.x, d, w)
    isa.layer_norm(B, d, w.x + <long> (T - 1) * B * d, d, net.norm_gamma, net.norm_beta, net.epsilon, w.h, d)
    _fill_rows(logits, B, net.vocab_size, net.dense_bias)
    _product(net, pool, 4 * net.layers, B, w.h, d, logits, net.vocab_size, w)


cdef inline void _fill_rows(float *c, int rows, int n, const float *bias) noexcept nogil:
    cdef int r
    for r in range(rows):
        memcpy(c + <long> r * n, bias, n * sizeof(float))


cdef inline void _add_rows(float *c, int rows, int n, const float *bias) noexcept nogil:
    cdef int r, j
    for r in range(rows):
        for j in range(n):
            c[<long> r * n + j] += bias[j]


#: tokens x batch rows of one prefill pass: bounds its buffers (rows x (5 d + mlp) floats)
DECODER_PASS_ROWS = 256


cdef struct Cache:
    # what feeding writes of one TransformerState; the arrays are owned by the state
    void *keys                # [L, B, heads, size, context], float32 or bf16 (Decoder.half_cache)
    void *values              # [L, B, heads, context, size]
    int *tokens               # [B, context]: the tokens behind the cache, which a slide reads again
    int batch, length         # rows, and positions cached (the same for every row: rows step together)
    Work step                 # the buffers of a pass of one token (B rows)
    Work wide                 # of a pass of `per` tokens (per B rows): a primer's, a slide's; allocated on demand
    int per                   # 0 until `wide` is
    int *kept                 # [context / 2, B]: a slide's tokens, token-major (with `wide`)


cdef int _passes(const Decoder *net, mgf_pool *pool, Cache *c, const int *ids, int T, float *logits) noexcept nogil:
    """Feed ids [T, B] at the cache's length (T <= context - length) in passes of one token (c.step) or of c.per
    tokens (c.wide, once allocated); the last token's logits into `logits`."""
    cdef int B = c.batch, C = net.context, t0 = 0, count, t, b
    cdef int per = c.per if c.per > 0 else 1
    cdef Work *work = &c.wide if c.per > 0 and T > 1 else &c.step
    while t0 < T:
        count = min(per, T - t0) if work == &c.wide else 1
        for t in range(count):
            for b in range(B):
                c.tokens[<long> b * C + c.length + t] = ids[<long> (t0 + t) * B + b]
        decoder_pass(net, pool, c.keys, c.values, B, count, c.length, ids + <long> t0 * B, work, logits)
        c.length += count
        t0 += count
    return 0


cdef int transformer_feed(const Decoder *net, mgf_pool *pool, Cache *c, const int *ids, int T,
                          float *logits) noexcept nogil:
    """Feed ids [T, B] (checked), sliding whenever the cache is full: the last context // 2 tokens are read again
    from position 0 (c.kept holds them; without c.wide, no slide may be due: the caller makes sure)."""
    cdef int C = net.context, B = c.batch, done = 0, keep = net.context // 2, count, t, b
    while done < T:
        if c.length == C:
            for t in range(keep):
                for b in range(B):
                    c.kept[t * B + b] = c.tokens[<long> b * C + C - keep + t]
            c.length = 0
            _passes(net, pool, c, c.kept, keep, logits)
        count = min(T - done, C - c.length)
        _passes(net, pool, c, ids + <long> done * B, count, logits)
        done += count
    return 0


cdef class TransformerState:
    """The KV cache of a batch (keys [L, B, heads, size, context], values [L, B, heads, context, size]), its length
    (rows step together), the tokens behind it ([B, context]) and the buffers of its passes (see Cache)."""

    cdef readonly int batch_size
    cdef TransformerKernel owner
    cdef Cache cache
    cdef object keys, values, tokens, step_buffers, wide_buffers, kept

    def __cinit__(self, owner, batch_size):
        if not isinstance(owner, TransformerKernel):
            raise InputError("a transformer state needs the TransformerKernel it belongs to")
        self.owner = <TransformerKernel> owner
        size = _count(batch_size, "batch size")
        shape = self.owner.cache_shape(size)
        self.batch_size = size
        kind = np.uint16 if self.owner.net.half_cache else np.float32
        self.keys = np.zeros(shape[:3] + (shape[4], shape[3]), kind)
        self.values = np.zeros(shape, kind)
        self.tokens = np.zeros((size, shape[3]), np.int32)
        self.step_buffers = _work_buffers(size, self.owner.net.width, self.owner.net.mlp, self.owner.context,
                                          self.owner.threads, 1, self.owner.net.size)
        memset(&self.cache, 0, sizeof(Cache))
        self.cache.keys, self.cache.values = _bytes_of(self.keys), _bytes_of(self.values)
        self.cache.tokens, self.cache.batch = _ints_of(self.tokens), size
        _point(&self.cache.step, self.step_buffers)

    @property
    def length(self):
        """Positions the cache holds."""
        return self.cache.length

    cdef int widen(self) except -1:
        """Allocate the buffers of passes of several tokens and of a slide, once."""
        if self.cache.per:
            return 0
        per = max(1, DECODER_PASS_ROWS // self.batch_size)
        self.wide_buffers = _work_buffers(per * self.batch_size, self.owner.net.width, self.owner.net.mlp,
                                          self.owner.context, self.owner.threads, per, self.owner.net.size)
        self.kept = np.zeros(max(1, self.owner.context // 2) * self.batch_size, np.int32)
        _point(&self.cache.wide, self.wide_buffers)
        self.cache.kept = _ints_of(self.kept)
        self.cache.per = per
        return 0

    def take(self, indices):
        """A new state whose row i copies row indices[i] of this one."""
        index = np.asarray(indices)
        if index.size and index.dtype.kind not in "iu":
            raise InputError(f"state indices must be integers, got {index.dtype}")
        index = index.astype(np.intp)
        if index.ndim != 1 or not index.size:
            raise InputError("state indices must be 1-D and not empty")
        if index.min() < 0 or index.max() >= self.batch_size:
            raise InputError(f"state indices must lie in [0, {self.batch_size})")
        cdef int n = self.cache.length
        taken = TransformerState(self.owner, index.size)
        taken.keys[..., :n] = self.keys[:, index, ..., :n]
        taken.values[:, :, :, :n] = self.values[:, index, :, :n]
        taken.tokens[:] = self.tokens[index]
        taken.cache.length = n
        return taken


cdef inline void *_bytes_of(array) except NULL:
    """The data of a C-contiguous array of any shape and dtype."""
    cdef unsigned char[::1] view = array.reshape(-1).view(np.uint8)
    return &view[0]


cdef inline int *_ints_of(array) except NULL:
    """The data of a C-contiguous int32 array of any shape."""
    cdef int[::1] view = array.reshape(-1)
    return &view[0]


cdef class TransformerKernel:
    """A Transformer bundle's weights laid out for the products; read-only after construction, shareable across
    threads (every buffer is a state's or a call's)."""

    cdef readonly int vocab_size, threads, context
    cdef readonly str precision, isa, cell
    cdef Decoder net
    cdef mgf_pool *pool
    cdef list arrays

    cdef readonly str cache

    def __cinit__(self, tensors, arch, precision="fp32", isa=None, threads=1, cache=None):
        """`arch`: the bundle's mgf.contract.bundle.Arch (cell transformer); `precision` of the products' weights;
        `threads` at most one per 64 columns of the narrowest product; `cache`: the keys' and values' precision,
        fp32 or bf16 (default: fp32 with fp32 weights, the reference's numbers; bf16 with reduced ones)."""
        cdef int l, k
        shape = arch.transformer
        if shape is None:
            raise InputError("a TransformerKernel runs an arch of cell 'transformer'")
        if precision not in PRECISIONS:
            raise InputError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
        level = _isa_level(isa)
        cache = cache or ("fp32" if precision == "fp32" else "bf16")
        if cache not in ("fp32", "bf16"):
            raise InputError(f"cache must be fp32 or bf16; got {cache!r}")
        self.cache, self.net.half_cache = cache, cache == "bf16"
        expected = arch.tensor_shapes()
        for key, wanted in expected.items():
            array = tensors.get(key) if isinstance(tensors, dict) else None
            if not isinstance(array, np.ndarray) or array.dtype.kind != "f" or array.shape != wanted:
                raise InputError(f"tensor {key!r} must be a float array of shape {wanted}")
        d, L = arch.embedding_dim, len(arch.hidden)
        if d > 65536 or shape.mlp > 1 << 20 or max(3 * d, shape.mlp) * arch.vocab_size > _INT_MAX:
            raise InputError("this transformer is larger than the native kernel runs")
        narrowest = min(d, arch.vocab_size, shape.mlp)
        T = min(_count(threads, "threads"), max(1, -(-narrowest // MGF_PANEL))) if MGF_POOL_THREADS else 1
        self.vocab_size, self.threads, self.context, self.cell, self.precision = arch.vocab_size, T, shape.context, \
            "transformer", precision
        self.isa = mgf_isa_for(level, &self.net.functions).decode()
        self.arrays = []
        self.net.vocab_size, self.net.width, self.net.heads, self.net.layers = arch.vocab_size, d, shape.heads, L
        self.net.size, self.net.mlp, self.net.context = d // shape.heads, shape.mlp, shape.context
        self.net.rotary, self.net.exact_gelu = shape.positions == "rotary", shape.activation == "gelu"
        self.net.epsilon, self.net.scale = shape.norm_epsilon, 1.0 / np.sqrt(d // shape.heads)
        t = {key: np.ascontiguousarray(tensors[key], np.float32) for key in expected}
        self.net.embedding = self._keep(t["embedding"])
        self.net.positions = self._keep(t["positions"]) if shape.positions == "learned" else NULL
        if self.net.rotary:
            half = self.net.size // 2
            angles = np.arange(shape.context)[:, None] * shape.rotary_base ** (-2.0 * np.arange(half) / self.net.size)
            self.net.cos, self.net.sin = self._keep(np.cos(angles)), self._keep(np.sin(angles))
        self.net.threads = T
        self.net.matrices = <mgf_matrix *> calloc((4 * L + 1) * T, sizeof(mgf_matrix))
        self.net.vectors = <const float **> calloc(10 * L, sizeof(float *))
        if self.net.matrices == NULL or self.net.vectors == NULL:
            raise MemoryError()
        weights = [t[f"block.{l}.{name}.kernel"] for l in range(L)
                   for name in ("attention.qkv", "attention.out", "mlp.up", "mlp.down")]
        weights.append(t["embedding"].T if shape.tied else t["dense.kernel"])
        columns = []
        for k, matrix in enumerate(weights):
            n = matrix.shape[1]
            bounds = [min(n, MGF_PANEL * (-(-n // MGF_PANEL) * part // T)) for part in range(T)] + [n]
            columns += bounds
            for part in range(T):
                self._set_matrix(&self.net.matrices[k * T + part], matrix[:, bounds[part]:bounds[part + 1]])
        self.net.columns = self._ints(columns)
        for l in range(L):
            for k, name in enumerate(("norm1.gamma", "norm1.beta", "attention.qkv.bias", "attention.out.bias",
                                      "norm2.gamma", "norm2.beta", "mlp.up.bias", "mlp.down.bias")):
                self.net.vectors[10 * l + k] = self._keep(t[f"block.{l}.{name}"])
        self.net.dense_bias = self._keep(t["dense.bias"])
        self.net.norm_gamma, self.net.norm_beta = self._keep(t["norm.gamma"]), self._keep(t["norm.beta"])
        self.pool = mgf_pool_start(T)
        if T > 1 and self.pool == NULL:
            raise MemoryError("could not start the kernel's threads")

    def cache_shape(self, int batch_size):
        """The shape of a batch's values (its keys: the last two axes swapped), or InputError where it is too large
        to hold."""
        shape = (self.net.layers, batch_size, self.net.heads, self.net.context, self.net.size)
        if 2 * (2 if self.net.half_cache else 4) * int(np.prod(shape, dtype=object)) > MAX_CACHE_BYTES:
            raise InputError(f"a KV cache for {batch_size} row(s) of context {self.net.context} would take more than "
                             f"{MAX_CACHE_BYTES >> 30} GiB")
        return shape

    cdef int _set_matrix(self, mgf_matrix *matrix, weights) except -1:
        """Fills `matrix` with the packed form of the [k, n] `weights`, kept alive by self; n = 0 leaves it empty
        (a thread without columns)."""
        if weights.shape[1] == 0:
            matrix.n = 0
            return 0
        return _fill_matrix(matrix, np.ascontiguousarray(weights, np.float32), self.precision, self.arrays)

    cdef float *_keep(self, array) except NULL:
        array = _aligned(np.asarray(array, dtype=np.float32))
        self.arrays.append(array)
        return _flat(array)

    cdef int *_ints(self, values) except NULL:
        cdef int[::1] view = np.array(values, np.int32)
        self.arrays.append(view)
        return &view[0]

    def __dealloc__(self):
        mgf_pool_stop(self.pool)
        free(self.net.matrices)
        free(self.net.vectors)

    def initial_state(self, batch_size):
        return TransformerState(self, batch_size)

    cdef TransformerState _checked(self, state, str what):
        if not isinstance(state, TransformerState) or (<TransformerState> state).owner is not self:
            raise InputError(f"{what} needs a state of this transformer, got {type(state).__name__}")
        return <TransformerState> state

    def step(self, tokens, state):
        """Logits [B, V] after feeding tokens [B]; updates `state` in place and returns it."""
        cdef TransformerState s = self._checked(state, "step")
        ids = as_tokens(tokens, s.batch_size, self.vocab_size)
        return self._feed(ids.reshape(1, -1), s), state

    def prime(self, tokens, state):
        """Logits [B, V] after feeding tokens [B, T] (T >= 1), column t at step t: what T calls of step give, up to
        rounding, with the products of several tokens together; updates `state` in place and returns it."""
        cdef TransformerState s = self._checked(state, "prime")
        array = np.asarray(tokens)
        if array.dtype.kind not in "iu":
            raise InputError(f"token ids must be integers, got {array.dtype}")
        if array.ndim != 2 or array.shape[0] != s.batch_size or array.shape[1] < 1:
            raise InputError(f"expected token ids [{s.batch_size}, T] (a row per sequence, T >= 1), got shape "
                             f"{list(array.shape)}")
        if array.min() < 0 or array.max() >= self.vocab_size:
            bad = array[(array < 0) | (array >= self.vocab_size)][0]
            raise InputError(f"token id {bad} is outside the vocabulary [0, {self.vocab_size})")
        return self._feed(np.ascontiguousarray(array.T, np.int32), s), state

    cdef object _feed(self, ids, TransformerState s):
        """Feed ids [T, B] (checked), sliding the window whenever the cache is full; the last token's logits."""
        cdef int T = ids.shape[0]
        if T > 1 or s.cache.length == self.context:
            s.widen()
        logits = np.empty((s.batch_size, self.vocab_size), np.float32)
        cdef const int[:, ::1] all_ids = ids
        cdef float *out = _flat(logits)
        with nogil:
            transformer_feed(&self.net, self.pool, &s.cache, &all_ids[0, 0], T, out)
        return logits


#: the most a batch's KV cache may take: beyond, a state is refused in one line rather than swapping
MAX_CACHE_BYTES = 16 << 30


def _work_buffers(int rows, int d, int mlp, int context, int threads, int tokens, int size):
    """The float32 arrays of one pass of `rows` rows, `tokens` per sequence (see Work)."""
    return [np.zeros((rows, d), np.float32), np.zeros((rows, d), np.float32), np.zeros((rows, 3 * d), np.float32),
            np.zeros((rows, d), np.float32), np.zeros((rows, mlp), np.float32),
            np.zeros((threads, mgf_scratch_floats(rows, max(d, mlp))), np.float32),
            np.zeros((threads, tokens * context), np.float32),
            np.zeros((threads, 2 * size * context if tokens > 1 else 1), np.float32)]


cdef void _point(Work *work, list buffers):
    work.x, work.h, work.qkv = _flat(buffers[0]), _flat(buffers[1]), _flat(buffers[2])
    work.attended, work.up = _flat(buffers[3]), _flat(buffers[4])
    work.scratch, work.scores, work.wide = _flat(buffers[5]), _flat(buffers[6]), _flat(buffers[7])
    work.scratch_stride = buffers[5].shape[1]


cdef inline float *_flat(array) except NULL:
    """The data of a C-contiguous float32 array of any shape."""
    cdef float[::1] view = array.reshape(-1)
    return &view[0]

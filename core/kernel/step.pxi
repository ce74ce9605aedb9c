# Included by _native.pyx: one step of the network, in C structs that chunk functions reach without the GIL.

cdef struct Net:
    # what a step reads of a Kernel; the arrays are owned by the Kernel
    int gru                   # 0: LSTM, 1: GRU
    int vocab_size, n_layers, threads
    mgf_isa functions
    int *hidden_sizes         # [L]
    int *input_widths         # [L]: width of the x part of layer l's row [x | h]: 0 for layer 0
    int *row_widths           # [L]: input_widths + hidden_sizes
    int gate_stride           # a row of the gates buffer: the widest layer's gates, 4 H (LSTM) or 6 H (GRU: x gates,
                              # then h gates); one stride for every layer, as threads that split a batch by rows
                              # run different layers at once
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
                     const float *x_gates_in, long x_in_stride, float *above, long above_stride, int r0,
                     float *scratch) noexcept nogil:
    """Chunk t of layer l for one token of B rows from row r0 of the buffers, from the state at `parity` to the
    state at parity ^ 1: its units' gates (the table, the bias, or `x_gates_in`: a GRU's input gates computed
    beforehand, by prefill), plus the products, then their cell update; the new h also goes to `above` (row stride
    above_stride) unless NULL.  `ids`, `x_gates_in` and `above` start at row r0 already."""
    cdef int n = net.n_layers, b
    cdef int u0 = net.unit_bounds[l * (net.threads + 1) + t], u1 = net.unit_bounds[l * (net.threads + 1) + t + 1]
    cdef int units = u1 - u0, gates = 3 if net.gru else 4, H = net.hidden_sizes[l]
    cdef int width = gates * units, g0 = gates * u0, gate_width = net.gate_stride, row_width = net.row_widths[l]
    cdef int input_width = net.input_widths[l]
    cdef float *row = s.rows[parity * n + l] + r0 * row_width
    cdef float *row_next = s.rows[(parity ^ 1) * n + l] + r0 * row_width
    cdef float *x_gates = s.gates + r0 * gate_width + g0
    cdef float *h_gates = x_gates + gates * H  # GRU only
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
        net.functions.lstm_cell(B, units, x_gates, gate_width, s.cells[l] + r0 * H + u0, H,
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
    _layer_rows(net, s, l, t, j.rows, s.parity, j.ids, NULL, 0, above, above_stride, 0, s.scratch + t * s.scratch_stride)


cdef void _dense_rows(const Net *net, Buffers *s, int t, int B, int r0, float *out, float *scratch) noexcept nogil:
    """Chunk t of the dense layer for B rows from row r0: logits of vocabulary columns [v0, v1) into `out`
    (already at row r0)."""
    cdef int last = net.n_layers - 1, V = net.vocab_size, b
    cdef int v0 = net.vocab_bounds[t], v1 = net.vocab_bounds[t + 1]
    cdef float *h = s.rows[(s.parity ^ 1) * net.n_layers + last] + net.input_widths[last] + r0 * net.row_widths[last]
    if v1 == v0:
        return
    for b in range(B):
        memcpy(out + b * V + v0, net.dense_bias + v0, (v1 - v0) * sizeof(float))
    mgf_product(&net.functions, &net.matrices[net.n_layers * net.threads + t], B, h, net.row_widths[last], out + v0,
                V, scratch)


cdef void _dense_chunk(void *job, int t) noexcept nogil:
    """Chunk t of the dense layer: logits of vocabulary columns [v0, v1)."""
    cdef StepJob *j = <StepJob *> job
    _dense_rows(j.net, j.buffers, t, j.rows, 0, j.out, j.buffers.scratch + t * j.buffers.scratch_stride)


cdef void _rows_chunk(void *job, int t) noexcept nogil:
    """Rows chunk t of a whole step: every layer, then the dense layer, for rows [B t / T, B (t + 1) / T), each
    layer's column chunks in turn.  A batch split by rows sends no h from core to core; split by units, every
    layer's h went to the other core's products, and at 64 rows two threads took longer than one (int8 on AMX:
    97 against 82 us at H=256)."""
    cdef StepJob *j = <StepJob *> job
    cdef const Net *net = j.net
    cdef Buffers *s = j.buffers
    cdef int T = net.threads, n = net.n_layers, l, c
    cdef int r0 = <int> (<long> j.rows * t // T), r1 = <int> (<long> j.rows * (t + 1) // T)
    cdef float *scratch = s.scratch + t * s.scratch_stride
    cdef float *above
    if r1 == r0:
        return
    for l in range(n):
        above = s.rows[s.parity * n + l + 1] + r0 * net.row_widths[l + 1] if l + 1 < n else NULL
        for c in range(T):
            _layer_rows(net, s, l, c, r1 - r0, s.parity, j.ids + r0, NULL, 0, above,
                        net.row_widths[l + 1] if l + 1 < n else 0, r0, scratch)
    for c in range(T):
        _dense_rows(net, s, c, r1 - r0, r0, j.out + <long> r0 * net.vocab_size, scratch)


#: a job of fewer multiply-adds runs on the calling thread alone: a microsecond or less of work, less than
#: handing half of it to another core costs (the dense layer of a small vocabulary at batch 1)
cdef enum:
    SPLIT_MIN_WORK = 131072


cdef inline mgf_pool *_pool_for(const Net *net, mgf_pool *pool, int job, int rows) noexcept nogil:
    return pool if rows * net.work[job] >= SPLIT_MIN_WORK else NULL


#: from this many rows a step's threads split the batch by rows (_rows_chunk), below it every layer's units
cdef enum:
    ROW_SPLIT_MIN = 16


cdef void net_step(const Net *net, mgf_pool *pool, Buffers *buffers, const int *ids, float *out) noexcept nogil:
    """One step for checked arguments: a token id per row in, rows x V logits into `out`, the buffers advanced."""
    cdef StepJob job
    cdef int l, B = buffers.batch_size
    job.net, job.buffers, job.ids, job.out, job.rows = net, buffers, ids, out, B
    if net.threads > 1 and B >= ROW_SPLIT_MIN:
        mgf_pool_run(pool, net.threads, _rows_chunk, &job)
        buffers.parity ^= 1
        return
    for l in range(net.n_layers):
        job.layer = l
        mgf_pool_run(_pool_for(net, pool, l, B), net.threads, _layer_chunk, &job)
    mgf_pool_run(_pool_for(net, pool, net.n_layers, B), net.threads, _dense_chunk, &job)
    buffers.parity ^= 1

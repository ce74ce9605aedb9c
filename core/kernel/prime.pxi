# Included by _native.pyx: prefill, a primer fed layer by layer, the dense layer for its last token only.

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
                j.net.hidden_sizes[l], 0, j.buffers.scratch + t * j.buffers.scratch_stride)


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

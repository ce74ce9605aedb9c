# Included by _lstm.pyx: the generation loop in C and the per-row draw, both over _sample.h.
#
# The loop runs step, constraints, softmax and draw for all rows and steps without the GIL, in
# one call; the Python loop's `temperature` policy draws through draw_rows, the same C routine,
# so that one seed gives the same tokens either way.  Every argument is checked here, with the
# GIL, before the loop starts.

cdef extern from "_sample.h" nogil:
    ctypedef struct mgf_policy:
        int vocab, start, policy
        double temperature, top_p
        int top_k, n_constraints
        const int *kinds
        const unsigned char *masks
        const int *pitches
        int max_repeats
    ctypedef struct mgf_row_state:
        int last_pitch, run
    ctypedef struct mgf_ranked:
        double key
        int id
    int MGF_GREEDY, MGF_TEMPERATURE, MGF_MASK, MGF_NO_REPEAT, MGF_EMPTY, MGF_NONFINITE
    int mgf_choose(const mgf_policy *p, float *z, mgf_row_state *row, double u, double *prob, mgf_ranked *scratch,
                   int *failed) noexcept
    int mgf_draw(const mgf_policy *p, const float *z, double u, double *prob, mgf_ranked *scratch) noexcept


def draw_rows(const float[:, ::1] logits, const double[::1] uniforms, double temperature, int top_k, double top_p):
    """One token per row of `logits` drawn at `temperature`, cut to top-k and top-p, with one uniform per row (int32 [B])."""
    cdef int B = logits.shape[0], V = logits.shape[1], b
    if uniforms.shape[0] != B:
        raise InputError(f"draw_rows: {uniforms.shape[0]} uniforms for {B} rows")
    if not (temperature > 0 and top_k >= 0 and 0 < top_p <= 1) or V < 1:
        raise InputError("draw_rows: temperature must be > 0, top_k >= 0, top_p in (0, 1], and there must be tokens")
    cdef mgf_policy p
    p.vocab, p.start, p.policy = V, 0, MGF_TEMPERATURE
    p.temperature, p.top_k, p.top_p = temperature, top_k, top_p
    out = np.empty(B, np.int32)
    cdef int[::1] chosen = out
    cdef double *prob = <double *> malloc(V * sizeof(double))
    cdef mgf_ranked *scratch = <mgf_ranked *> malloc(V * sizeof(mgf_ranked))
    try:
        if prob == NULL or scratch == NULL:
            raise MemoryError()
        with nogil:
            for b in range(B):
                chosen[b] = mgf_draw(&p, &logits[b, 0], uniforms[b], prob, scratch)
    finally:
        free(prob)
        free(scratch)
    if (out < 0).any():
        raise InputError("draw_rows: a row has no allowed token")
    return out


def generate(LSTMKernel kernel not None, KernelState state not None, float[:, ::1] logits not None, int start,
             int policy, double temperature, int top_k, double top_p,
             const int[::1] kinds not None, const unsigned char[:, ::1] masks not None, const int[::1] pitches not None,
             int max_repeats, int[::1] last_pitch not None, int[::1] run not None,
             const double[:, ::1] uniforms not None, int[:, ::1] out not None, bint feed_last):
    """Choose out.shape[1] tokens per row, stepping the kernel after each (and after the last if feed_last).

    `logits` [B, V] holds the model's logits for the first token to choose and, on return, those
    after the last token fed.  `last_pitch`/`run` carry `no-repeat`'s per-row state between calls.
    Returns None, or (step, row, constraint) where constraint is the index of the one that left no
    token, or -2 for non-finite logits.
    """
    cdef int B = state.batch_size, V = kernel.vocab_size, K = kinds.shape[0], steps = out.shape[1]
    cdef int i, b, token, failed = -1, k
    if state.owner is not kernel:
        raise InputError("generate: this state belongs to another model")
    if logits.shape[0] != B or logits.shape[1] != V or out.shape[0] != B or last_pitch.shape[0] != B or run.shape[0] != B:
        raise InputError(f"generate: logits, out and row state must have {B} rows and logits {V} columns")
    if not 0 <= start < V or policy not in (MGF_GREEDY, MGF_TEMPERATURE):
        raise InputError("generate: bad start token or policy")
    if policy == MGF_TEMPERATURE and (uniforms.shape[0] != steps or uniforms.shape[1] != B
                                      or not (temperature > 0 and top_k >= 0 and 0 < top_p <= 1)):
        raise InputError("generate: temperature sampling needs [steps, B] uniforms and valid options")
    if masks.shape[0] != K or (K and masks.shape[1] != V) or pitches.shape[0] != V:
        raise InputError(f"generate: masks must be [{K}, {V}] and pitches [{V}]")
    for k in range(K):
        if kinds[k] not in (MGF_MASK, MGF_NO_REPEAT):
            raise InputError(f"generate: unknown constraint kind {kinds[k]}")
        if kinds[k] == MGF_NO_REPEAT and max_repeats < 1:
            raise InputError("generate: max_repeats must be >= 1")
    if steps == 0:
        return None
    cdef mgf_policy p
    p.vocab, p.start, p.policy = V, start, policy
    p.temperature, p.top_k, p.top_p = temperature, top_k, top_p
    p.n_constraints, p.kinds, p.masks, p.pitches, p.max_repeats = K, &kinds[0] if K else NULL, \
        &masks[0, 0] if K else NULL, &pitches[0], max_repeats
    cdef double *prob = <double *> malloc(V * sizeof(double))
    cdef mgf_ranked *scratch = <mgf_ranked *> malloc(V * sizeof(mgf_ranked))
    cdef mgf_row_state *rows = <mgf_row_state *> malloc(B * sizeof(mgf_row_state))
    cdef int *ids = <int *> malloc(B * sizeof(int))
    cdef int bad_step = -1, bad_row = -1
    try:
        if prob == NULL or scratch == NULL or rows == NULL or ids == NULL:
            raise MemoryError()
        for b in range(B):
            rows[b].last_pitch, rows[b].run = last_pitch[b], run[b]
        with nogil:
            for i in range(steps):
                for b in range(B):
                    token = mgf_choose(&p, &logits[b, 0], &rows[b],
                                       uniforms[i, b] if policy == MGF_TEMPERATURE else 0.0, prob, scratch, &failed)
                    if token < 0:
                        bad_step, bad_row = i, b
                        if token == MGF_NONFINITE:
                            failed = -2
                        break
                    out[b, i] = token
                    ids[b] = token
                if bad_step >= 0:
                    break
                if i + 1 < steps or feed_last:
                    kernel._step(B, ids, state, &logits[0, 0])
        for b in range(B):
            last_pitch[b], run[b] = rows[b].last_pitch, rows[b].run
    finally:
        free(prob)
        free(scratch)
        free(rows)
        free(ids)
    if bad_step >= 0:
        return bad_step, bad_row, failed
    return None

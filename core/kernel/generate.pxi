# Included by _native.pyx: the generation loop in C and the per-row draw, both over sample.h.
#
# The loop runs step, constraints, softmax and draw for all rows and steps without the GIL, in
# one call; the Python loop's `temperature` policy draws through draw_rows, the same C routine,
# so that one seed gives the same tokens either way.  Every argument is checked here, with the
# GIL, before the loop starts.

cdef extern from "sample.h" nogil:
    ctypedef struct mgf_policy:
        int vocab, start, policy
        double temperature, top_p
        int top_k, n_constraints
        const int *kinds
        const unsigned char *masks
        const int *pitches
        int max_repeats
        int shift0, shift_end, max_steps, max_polyphony
        int motif_length, motif_max_run
        float motif_bonus
    ctypedef struct mgf_row_state:
        int last_pitch, run
        int64_t now
        int64_t onsets[128]
        const int32_t *history
        int length
        uint64_t *keys
        int32_t *ends
        int capacity, indexed
        int motif_run, motif_next
    ctypedef struct mgf_ranked:
        double key
        int id
    int MGF_GREEDY, MGF_TEMPERATURE, MGF_MASK, MGF_NO_REPEAT, MGF_CLOSE_NOTES, MGF_MOTIFS, MGF_EMPTY, MGF_NONFINITE, MGF_PITCHES
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
    cdef int bad = -1, v
    with nogil:
        for b in range(B):
            for v in range(V):
                if logits[b, v] != logits[b, v] or logits[b, v] == INFINITY:
                    bad = b
                    break
            if bad >= 0:
                break
    if bad >= 0:
        raise InputError(f"draw_rows: row {bad} of the logits holds NaN or +inf (allowed: finite values and -inf)")
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


cdef struct ChooseJob:
    # one step's choice for every row, split into `parts` chunks of rows
    const mgf_policy *policy
    float *logits             # [B, V]
    mgf_row_state *rows       # [B]
    const double *uniforms    # [B], or NULL (greedy)
    int *ids                  # [B]: the tokens chosen
    double *prob              # [parts, V]
    mgf_ranked *scratch       # [parts, V]
    int *bad_row              # [parts]: the chunk's first row left with no token or non-finite logits, or -1
    int *failed               # [parts]: for that row, the constraint's index, or -2 for non-finite logits
    int batch, parts
    int length                # tokens in each row's history before this step's


cdef void _choose_chunk(void *job, int t) noexcept nogil:
    cdef ChooseJob *j = <ChooseJob *> job
    cdef int V = j.policy.vocab, b, token, failed
    j.bad_row[t] = -1
    for b in range(j.batch * t // j.parts, j.batch * (t + 1) // j.parts):
        failed = -1
        j.rows[b].length = j.length
        token = mgf_choose(j.policy, j.logits + b * V, &j.rows[b], j.uniforms[b] if j.uniforms != NULL else 0.0,
                           j.prob + t * V, j.scratch + t * V, &failed)
        if token < 0:
            j.bad_row[t], j.failed[t] = b, (-2 if token == MGF_NONFINITE else failed)
            return
        j.ids[b] = token


def generate(Kernel kernel not None, KernelState state not None, float[:, ::1] logits not None, int start,
             int policy, double temperature, int top_k, double top_p,
             const int[::1] kinds not None, const unsigned char[:, ::1] masks not None, const int[::1] pitches not None,
             int max_repeats, int[::1] last_pitch not None, int[::1] run not None,
             const int[::1] close not None, int64_t[:, ::1] onsets not None, int64_t[::1] now not None,
             int motif_length, double motif_bonus, int motif_max_run, int32_t[::1] motif_run not None,
             uint64_t[:, ::1] keys not None, int32_t[:, ::1] ends not None, int32_t[::1] indexed not None, const double[:, ::1] uniforms not None, int32_t[:, ::1] history not None,
             int position, int steps, bint feed_last):
    """Choose `steps` tokens per row into history[:, position:], stepping the kernel after each (and after the last
    if feed_last).

    `history` [B, N] holds each row's tokens: the primer and those chosen by earlier calls before
    `position`.  `logits` [B, V] holds the model's logits for the first token to choose and, on
    return, those after the last token fed.  Per-row state carried between calls: `last_pitch` and
    `run` for `no-repeat`; `onsets` [B, 128] and `now` [B] for `close-notes`, whose token layout and
    limits are `close` (first TIME_SHIFT token, the token after the last, steps a note may sound,
    most notes at once or 0; all 0 without close-notes); `motif_run` [B], `keys`, `ends` [B, C] (C a
    power of two above 2 N, zero at first) and `indexed` [B] for `motifs` (`motif_length` tokens,
    `motif_bonus`, `motif_max_run`).
    Returns None, or (step, row, constraint) where constraint is the index of the one that left no
    token, or -2 for non-finite logits.  Rows are chosen on the kernel's threads when there are
    enough of them to share.
    """
    cdef int B = state.batch_size, V = kernel.vocab_size, K = kinds.shape[0], N = history.shape[1]
    cdef int i, b, t, k, capacity = keys.shape[1]
    if state.owner is not kernel:
        raise InputError("generate: this state belongs to another model")
    if (logits.shape[0] != B or logits.shape[1] != V or history.shape[0] != B or last_pitch.shape[0] != B
            or run.shape[0] != B):
        raise InputError(f"generate: logits, history and row state must have {B} rows and logits {V} columns")
    if not (0 <= position and 0 <= steps and steps <= N - position):
        raise InputError(f"generate: {steps} steps from position {position} do not fit a history of {N} tokens")
    if not 0 <= start < V or policy not in (MGF_GREEDY, MGF_TEMPERATURE):
        raise InputError("generate: bad start token or policy")
    if policy == MGF_TEMPERATURE and (uniforms.shape[0] != steps or uniforms.shape[1] != B
                                      or not (temperature > 0 and top_k >= 0 and 0 < top_p <= 1)):
        raise InputError("generate: temperature sampling needs [steps, B] uniforms and valid options")
    if masks.shape[0] != K or (K and masks.shape[1] != V) or pitches.shape[0] != V:
        raise InputError(f"generate: masks must be [{K}, {V}] and pitches [{V}]")
    if close.shape[0] != 4 or onsets.shape[0] != B or onsets.shape[1] != MGF_PITCHES or now.shape[0] != B:
        raise InputError(f"generate: close must hold 4 numbers, onsets be [{B}, {MGF_PITCHES}] and now [{B}]")
    for k in range(K):
        if kinds[k] not in (MGF_MASK, MGF_NO_REPEAT, MGF_CLOSE_NOTES, MGF_MOTIFS):
            raise InputError(f"generate: unknown constraint kind {kinds[k]}")
        if kinds[k] == MGF_NO_REPEAT and max_repeats < 1:
            raise InputError("generate: max_repeats must be >= 1")
        if kinds[k] == MGF_CLOSE_NOTES and not (2 * MGF_PITCHES <= close[0] < close[1] <= V and close[2] >= 1
                                                and 0 <= close[3] <= MGF_PITCHES):
            raise InputError(f"generate: close-notes needs 256 <= shift0 < shift_end <= {V}, max_steps >= 1 and "
                             f"max_polyphony in [0, 128]; got {list(close)}")
        if kinds[k] == MGF_MOTIFS and not (
                1 <= motif_length and 0 <= motif_bonus <= 1e6 and 1 <= motif_max_run and motif_run.shape[0] == B
                and keys.shape[0] == B and ends.shape[0] == B
                and ends.shape[1] == capacity and indexed.shape[0] == B and capacity > 2 * N
                and capacity & (capacity - 1) == 0):
            raise InputError(f"generate: motifs needs length >= 1, a bonus in [0, 1e6] and [{B}, C] tables, C a power "
                             f"of two above {2 * N}")
    if steps == 0:
        return None
    cdef mgf_policy p
    p.vocab, p.start, p.policy = V, start, policy
    p.temperature, p.top_k, p.top_p = temperature, top_k, top_p
    p.n_constraints, p.kinds, p.masks, p.pitches, p.max_repeats = K, &kinds[0] if K else NULL, \
        &masks[0, 0] if K else NULL, &pitches[0], max_repeats
    p.shift0, p.shift_end, p.max_steps, p.max_polyphony = close[0], close[1], close[2], close[3]
    p.motif_length, p.motif_bonus, p.motif_max_run = motif_length, <float> motif_bonus, motif_max_run
    kinds_used = {kinds[k] for k in range(K)}
    if MGF_CLOSE_NOTES not in kinds_used:
        p.shift_end = 0  # no close-notes state to keep
    if MGF_MOTIFS not in kinds_used:
        p.motif_length = 0
    cdef int parts = kernel.threads if B >= 4 * kernel.threads else 1
    cdef mgf_pool *pool = kernel.pool if parts > 1 else NULL
    cdef ChooseJob job
    job.policy, job.logits, job.batch, job.parts = &p, &logits[0, 0], B, parts
    job.prob = <double *> calloc(parts * V, sizeof(double))
    job.scratch = <mgf_ranked *> calloc(parts * V, sizeof(mgf_ranked))
    job.rows = <mgf_row_state *> calloc(B, sizeof(mgf_row_state))
    job.ids = <int *> calloc(B, sizeof(int))
    job.bad_row = <int *> calloc(parts, sizeof(int))
    job.failed = <int *> calloc(parts, sizeof(int))
    cdef int bad_step = -1, bad_row = -1, failed = -1
    try:
        if not (job.prob and job.scratch and job.rows and job.ids and job.bad_row and job.failed):
            raise MemoryError()
        for b in range(B):
            job.rows[b].last_pitch, job.rows[b].run, job.rows[b].now = last_pitch[b], run[b], now[b]
            memcpy(job.rows[b].onsets, &onsets[b, 0], MGF_PITCHES * sizeof(int64_t))
            job.rows[b].history = &history[b, 0]
            if MGF_MOTIFS in kinds_used:
                job.rows[b].keys, job.rows[b].ends, job.rows[b].capacity = &keys[b, 0], &ends[b, 0], capacity
                job.rows[b].indexed = min(max(indexed[b], 0), position)
                job.rows[b].motif_run, job.rows[b].motif_next = motif_run[b], -1
        with nogil:
            for i in range(steps):
                job.uniforms = &uniforms[i, 0] if policy == MGF_TEMPERATURE else NULL
                job.length = position + i
                mgf_pool_run(pool, parts, _choose_chunk, &job)
                for t in range(parts):
                    if job.bad_row[t] >= 0:
                        bad_step, bad_row, failed = i, job.bad_row[t], job.failed[t]
                        break
                if bad_step >= 0:
                    break
                for b in range(B):
                    history[b, position + i] = job.ids[b]
                if i + 1 < steps or feed_last:
                    net_step(&kernel.net, kernel.pool, &state.buffers, job.ids, &logits[0, 0])
        for b in range(B):
            last_pitch[b], run[b], now[b] = job.rows[b].last_pitch, job.rows[b].run, job.rows[b].now
            memcpy(&onsets[b, 0], job.rows[b].onsets, MGF_PITCHES * sizeof(int64_t))
            if MGF_MOTIFS in kinds_used:
                indexed[b], motif_run[b] = job.rows[b].indexed, job.rows[b].motif_run
    finally:
        free(job.prob)
        free(job.scratch)
        free(job.rows)
        free(job.ids)
        free(job.bad_row)
        free(job.failed)
    if bad_step >= 0:
        return bad_step, bad_row, failed
    return None

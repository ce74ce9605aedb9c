# Included by _native.pyx: the generation loop in C, over rules.h and choose.h.
#
# The loop runs step, rules, processors and choice for all rows and steps without the GIL, in one call, through the
# same C functions that RuleSet and Chooser run for the Python loop, so that one seed gives the same tokens either
# way.  Every argument is checked here, with the GIL, before the loop starts.

cdef struct ChooseJob:
    # one step's choice for every row, split into `parts` chunks of rows
    const mgf_rules *rules
    mgf_rows *rows
    const mgf_chooser *chooser
    float *logits             # [B, V]
    const double *uniforms    # [B], or NULL (greedy)
    const int32_t *history    # [B, N]: each row's tokens, the primer first
    int *ids                  # [B]: the tokens chosen
    mgf_workspace *work       # [parts]
    int *bad_row              # [parts]: the chunk's first row left with no token or non-finite logits, or -1
    int *failed               # [parts]: for that row, the rule's index, -2 for non-finite logits, -3 nothing left
    int batch, parts, vocab, width
    int length                # tokens in each row's history before this step's


cdef void _choose_chunk(void *job, int t) noexcept nogil:
    cdef ChooseJob *j = <ChooseJob *> job
    cdef int V = j.vocab, b, token, failed
    cdef float *z
    j.bad_row[t] = -1
    for b in range(j.batch * t // j.parts, j.batch * (t + 1) // j.parts):
        z = j.logits + <int64_t> b * V
        if not mgf_all_finite(z, V):
            j.bad_row[t], j.failed[t] = b, -2
            return
        failed = mgf_rules_apply(j.rules, j.rows, b, z)
        if failed:
            j.bad_row[t], j.failed[t] = b, failed - 1
            return
        token = mgf_choose(j.chooser, z, V, j.history + <int64_t> b * j.width, j.length,
                           j.uniforms[b] if j.uniforms != NULL else 0.0, &j.work[t])
        if token < 0:
            j.bad_row[t], j.failed[t] = b, -3
            return
        mgf_rules_advance(j.rules, j.rows, b, token)
        j.ids[b] = token


def generate(kernel not None, state not None, float[:, ::1] logits not None,
             RuleSet ruleset not None, Chooser chooser not None, const double[:, ::1] uniforms not None,
             int32_t[:, ::1] history not None, int first, int count, bint more):
    """Choose `count` tokens per row into history[:, first:], stepping the kernel after each (and after the last if
    `more`).

    `history` [B, N] holds each row's tokens: the primer and those chosen by earlier calls before `first`, which
    `ruleset` has been fed (it is fed each token chosen here).  `logits` [B, V] holds the model's logits for the
    first token to choose and, on return, those after the last token fed.  `uniforms` is [count, B] for the draw
    (one per row and step), anything for a greedy chooser.  Returns None, or (step, row, rule) where rule is the
    index of the rule that left no token, -2 for non-finite logits.  Rows are chosen on the kernel's threads when
    there are enough of them to share.  `kernel`: a recurrent Kernel with its KernelState, or a TransformerKernel
    with its TransformerState.
    """
    cdef Kernel recurrent = None
    cdef KernelState recurrent_state = None
    cdef TransformerKernel transformer = None
    cdef TransformerState transformer_state = None
    cdef mgf_pool *kernel_pool
    if isinstance(kernel, Kernel) and isinstance(state, KernelState):
        recurrent, recurrent_state = <Kernel> kernel, <KernelState> state
        owner, kernel_pool = recurrent_state.owner, recurrent.pool
    elif isinstance(kernel, TransformerKernel) and isinstance(state, TransformerState):
        transformer, transformer_state = <TransformerKernel> kernel, <TransformerState> state
        owner, kernel_pool = transformer_state.owner, transformer.pool
    else:
        raise InputError(f"generate: a native kernel and its state, not {type(kernel).__name__} and "
                         f"{type(state).__name__}")
    cdef int B = state.batch_size, V = kernel.vocab_size, N = history.shape[1], i, b, t
    if owner is not kernel:
        raise InputError("generate: this state belongs to another model")
    if logits.shape[0] != B or logits.shape[1] != V or history.shape[0] != B or ruleset.batch_size != B:
        raise InputError(f"generate: logits, history and rules must have {B} rows and logits {V} columns")
    if ruleset.vocab_size != V:
        raise InputError(f"generate: the rules were compiled for {ruleset.vocab_size} tokens, the model has {V}")
    if not (0 <= first and 0 <= count and count <= N - first):
        raise InputError(f"generate: {count} steps from {first} do not fit a history of {N} tokens")
    if ruleset.tokens_fed != first:
        raise InputError(f"generate: the rules were fed {ruleset.tokens_fed} tokens, the history holds {first}")
    ruleset._check_room(count)
    if not chooser.greedy and (uniforms.shape[0] != count or uniforms.shape[1] != B):
        raise InputError(f"generate: the draw needs [{count}, {B}] uniforms")
    if count == 0:
        return None
    if not chooser.greedy:
        array = np.asarray(uniforms)
        if not ((array >= 0) & (array < 1)).all():
            raise InputError("generate: uniforms must lie in [0, 1)")
    if chooser.needs_history:
        _in_range(np.asarray(history[:, :first]), 0, V, "generate: history tokens")
    if transformer is not None and transformer_state.cache.length + count + more > transformer.context:
        transformer_state.widen()  # a slide is due within the loop
    cdef int parts = kernel.threads if B >= 4 * kernel.threads else 1
    cdef mgf_pool *pool = kernel_pool if parts > 1 else NULL
    cdef ChooseJob job
    memset(&job, 0, sizeof(job))
    job.rules, job.rows, job.chooser = &ruleset.compiled.rules, &ruleset.rows, &chooser.chooser
    job.logits, job.history, job.batch, job.parts, job.vocab, job.width = &logits[0, 0], &history[0, 0], B, parts, V, N
    job.work = <mgf_workspace *> calloc(parts, sizeof(mgf_workspace))
    job.ids = <int *> calloc(B, sizeof(int))
    job.bad_row = <int *> calloc(parts, sizeof(int))
    job.failed = <int *> calloc(parts, sizeof(int))
    cdef int bad_step = -1, bad_row = -1, failed = -1
    try:
        if not (job.work and job.ids and job.bad_row and job.failed):
            raise MemoryError()
        _workspaces(job.work, parts, V)
        with nogil:
            for i in range(count):
                job.uniforms = &uniforms[i, 0] if not chooser.chooser.greedy else NULL
                job.length = first + i
                mgf_pool_run(pool, parts, _choose_chunk, &job)
                for t in range(parts):
                    if job.bad_row[t] >= 0:
                        bad_step, bad_row, failed = i, job.bad_row[t], job.failed[t]
                        break
                if bad_step >= 0:
                    break
                for b in range(B):
                    history[b, first + i] = job.ids[b]
                if (i + 1 < count or more) and recurrent is not None:
                    net_step(&recurrent.net, recurrent.pool, &recurrent_state.buffers, job.ids, &logits[0, 0])
                elif i + 1 < count or more:
                    transformer_feed(&transformer.net, transformer.pool, &transformer_state.cache, job.ids, 1,
                                     &logits[0, 0])
    finally:
        if job.work:
            _free_workspaces(job.work, parts)
        free(job.work)
        free(job.ids)
        free(job.bad_row)
        free(job.failed)
    if bad_step >= 0:
        return bad_step, bad_row, failed
    return None

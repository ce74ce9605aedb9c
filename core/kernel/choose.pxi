# Included by _native.pyx: Chooser, the processors and the policy of a run compiled for choose.h.
#
# Processors are read by their `kind` attribute or, failing it, their class name (mgf.processors: Temperature,
# TopK, TopP, MinP, RepetitionPenalty) and their fields (`value`, `k`, `p`, `penalty`, `window`); every value and
# array is checked here, with the GIL, before the C functions run.

cdef extern from "choose.h" nogil:
    ctypedef struct mgf_processor:
        int kind
        double value
        int count
    ctypedef struct mgf_chooser:
        int n, greedy
        const mgf_processor *ops
    ctypedef struct mgf_ranked:
        double key
        int id
    ctypedef struct mgf_workspace:
        float *q
        mgf_ranked *ranked
        unsigned char *seen
    int MGF_TEMPERATURE, MGF_TOP_K, MGF_TOP_P, MGF_MIN_P, MGF_REPETITION_PENALTY, MGF_EMPTY
    void mgf_process(const mgf_chooser *c, float *z, int vocab, const int32_t *history, int length,
                     mgf_workspace *w) noexcept
    int mgf_choose(const mgf_chooser *c, float *z, int vocab, const int32_t *history, int length, double u,
                   mgf_workspace *w) noexcept
    int mgf_all_finite(const float *x, int n) noexcept


#: a processor's kind, from its ``kind`` attribute or its class name
PROCESSOR_KINDS = {"temperature": "temperature", "top_k": "top_k", "top_p": "top_p", "min_p": "min_p",
                   "repetition_penalty": "repetition_penalty", "Temperature": "temperature", "TopK": "top_k",
                   "TopP": "top_p", "MinP": "min_p", "RepetitionPenalty": "repetition_penalty"}


cdef int _workspaces(mgf_workspace *w, int count, int vocab) except -1:
    """``count`` workspaces of ``vocab`` entries each (free them with _free_workspaces, even after a failure)."""
    cdef int t
    for t in range(count):
        w[t].q = <float *> calloc(vocab, sizeof(float))
        w[t].ranked = <mgf_ranked *> calloc(vocab, sizeof(mgf_ranked))
        w[t].seen = <unsigned char *> calloc(vocab, 1)
        if w[t].q == NULL or w[t].ranked == NULL or w[t].seen == NULL:
            raise MemoryError()
    return 0


cdef void _free_workspaces(mgf_workspace *w, int count) noexcept:
    cdef int t
    for t in range(count):
        free(w[t].q)
        free(w[t].ranked)
        free(w[t].seen)


cdef class Chooser:
    """Logits processors applied in the order given, then greedy (argmax, ties: the lowest id) or the draw.

    ``process(logits, history)`` edits logits in place (what a policy that is not built in sees);
    ``choose(logits, history, uniforms)`` processes and chooses one token per row, the draw taking one uniform in
    [0, 1) per row.  ``history`` (int [rows, t], the primer included) feeds the repetition penalty; None is none.
    """

    cdef mgf_chooser chooser
    cdef mgf_processor *ops
    cdef readonly bint greedy
    cdef readonly bint needs_history

    def __cinit__(self, processors, greedy):
        cdef int i
        processors = list(processors)
        self.ops = <mgf_processor *> calloc(max(1, len(processors)), sizeof(mgf_processor))
        if self.ops == NULL:
            raise MemoryError()
        for i, processor in enumerate(processors):
            kind = PROCESSOR_KINDS.get(getattr(processor, "kind", None) or type(processor).__name__)
            if kind == "temperature":
                self.ops[i].kind, self.ops[i].value = MGF_TEMPERATURE, _real(processor.value, "Temperature.value")
            elif kind == "top_k":
                self.ops[i].kind, self.ops[i].count = MGF_TOP_K, min(_natural(processor.k, "TopK.k"), 2**31 - 1)
            elif kind == "top_p":
                self.ops[i].kind, self.ops[i].value = MGF_TOP_P, _real(processor.p, "TopP.p", high=1)
            elif kind == "min_p":
                self.ops[i].kind, self.ops[i].value = MGF_MIN_P, _real(processor.p, "MinP.p", low=0, high=1)
            elif kind == "repetition_penalty":
                self.ops[i].kind = MGF_REPETITION_PENALTY
                self.ops[i].value = _real(processor.penalty, "RepetitionPenalty.penalty")
                self.ops[i].count = min(_natural(processor.window, "RepetitionPenalty.window"), 2**31 - 1)
                self.needs_history = True
            else:
                raise InputError(f"processor {i}: {type(processor).__name__} is not a processor of mgf.processors")
        self.chooser.n, self.chooser.ops, self.chooser.greedy = len(processors), self.ops, bool(greedy)
        self.greedy = bool(greedy)

    def __dealloc__(self):
        free(self.ops)

    cdef tuple _checked(self, logits, history):
        """The logits as a writable float32 view and the history as an int32 array (empty without one), checked."""
        if not (isinstance(logits, np.ndarray) and logits.dtype == np.float32 and logits.ndim == 2
                and logits.shape[1] >= 1 and logits.flags.c_contiguous and logits.flags.writeable):
            raise InputError("a Chooser takes writable C-contiguous float32 logits [rows, V]")
        rows, vocab = logits.shape
        bad = np.flatnonzero(np.isnan(logits).any(axis=1) | np.isposinf(logits).any(axis=1))
        if bad.size:
            raise InputError(f"row {bad[0]} of the logits holds NaN or +inf (allowed: finite values and -inf)")
        if history is None or not self.needs_history:
            return logits, np.zeros((rows, 0), np.int32)
        tokens = np.asarray(history)
        if tokens.ndim != 2 or tokens.shape[0] != rows or tokens.dtype.kind not in "iu":
            raise InputError(f"a Chooser's history must be int [{rows}, t]")
        return logits, np.ascontiguousarray(_in_range(tokens, 0, vocab, "history tokens"), dtype=np.int32)

    def process(self, logits, history=None):
        """The processors over ``logits`` [rows, V], in place, the temperature applied."""
        logits, tokens = self._checked(logits, history)
        cdef float[:, ::1] z = logits
        cdef const int32_t[:, ::1] h = tokens
        cdef int b, B = z.shape[0], V = z.shape[1], t = h.shape[1]
        cdef mgf_workspace w
        memset(&w, 0, sizeof(w))
        try:
            _workspaces(&w, 1, V)
            with nogil:
                for b in range(B):
                    mgf_process(&self.chooser, &z[b, 0], V, &h[b, 0] if t else NULL, t, &w)
        finally:
            _free_workspaces(&w, 1)

    def choose(self, logits, history=None, uniforms=None):
        """Process ``logits`` [rows, V] in place, then one token per row (int32 [rows]); ``uniforms`` float64 [rows]
        for the draw."""
        logits, tokens = self._checked(logits, history)
        cdef float[:, ::1] z = logits
        cdef const int32_t[:, ::1] h = tokens
        cdef int b, B = z.shape[0], V = z.shape[1], t = h.shape[1]
        if not self.greedy:
            u_array = np.asarray(uniforms, dtype=np.float64) if uniforms is not None else None
            if u_array is None or u_array.shape != (B,) or not ((u_array >= 0) & (u_array < 1)).all():
                raise InputError(f"the draw takes {B} uniforms in [0, 1)")
        else:
            u_array = np.zeros(B)
        cdef const double[::1] u = np.ascontiguousarray(u_array)
        out = np.empty(B, np.int32)
        cdef int32_t[::1] chosen = out
        cdef mgf_workspace w
        memset(&w, 0, sizeof(w))
        try:
            _workspaces(&w, 1, V)
            with nogil:
                for b in range(B):
                    chosen[b] = mgf_choose(&self.chooser, &z[b, 0], V, &h[b, 0] if t else NULL, t, u[b], &w)
        finally:
            _free_workspaces(&w, 1)
        if (out < 0).any():
            raise InputError(f"row {np.flatnonzero(out < 0)[0]} of the logits has no allowed token")
        return out


def _real(value, what, low=None, high=float("inf")):
    """``value`` as a float in (0, high] (low None) or [low, high], finite, or InputError."""
    number = float(value)
    if not ((number > 0 if low is None else number >= low) and number <= high and np.isfinite(number)):
        bounds = "(0" if low is None else f"[{low}"
        raise InputError(f"{what} must lie in {bounds}, {high}], got {value!r}")
    return number

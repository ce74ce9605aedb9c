# Included by _native.pyx: RuleSet, the rules of a run (mgf.rules) compiled for rules.h, with every row's state.
#
# Every table is checked here, with the GIL, against the vocabulary and the clock, so that the C functions index
# nothing out of range; the rule objects are read by their `kind` and fields (core/generation/rules.py documents
# them), the kernel importing nothing above it.

cdef extern from "rules.h" nogil:
    ctypedef struct mgf_rule:
        int kind, slot
        const unsigned char *tokens
        const int32_t *table
        const float *bias
        int count
        int64_t limit
        int length
        float bonus
        int table_index
        int token
        int64_t within
        int64_t first, stop
    ctypedef struct mgf_rules:
        int vocab, start, n_ops, n_slots, n_tables
        const mgf_rule *ops
        const int32_t *advance
        const int32_t *kinds
        int64_t bar_steps
        const int32_t *on_pitch
        const int32_t *off_pitch
        const int32_t *on_tokens
        int n_on
        const int32_t *off_token
        int capacity, max_tokens
    ctypedef struct mgf_rows:
        int64_t *step
        int64_t *bar
        int64_t *length
        int64_t *slots
        int64_t *onsets
        int32_t *history
        uint64_t *keys
        int32_t *ends
    int MGF_FORBID, MGF_RUN_LIMIT, MGF_NGRAM_BONUS, MGF_CLOSE_NOTES, MGF_AUTOMATON, MGF_BAR_MASK, MGF_BAR_BUDGET
    int MGF_TIME_LIMIT, MGF_BAR_TOKENS, MGF_BAR_BIAS, MGF_PITCHES
    int mgf_rules_apply(const mgf_rules *r, mgf_rows *s, int b, float *z) noexcept
    void mgf_rules_advance(const mgf_rules *r, mgf_rows *s, int b, int token) noexcept


#: rule kind -> (C op, slots of per-row state, needs: 0 nothing, 1 a clock, 2 a clock with bars)
RULE_KINDS = {"forbid": (MGF_FORBID, 0, 0), "run_limit": (MGF_RUN_LIMIT, 2, 0),
              "ngram_bonus": (MGF_NGRAM_BONUS, 4, 0), "close_notes": (MGF_CLOSE_NOTES, 0, 1),
              "automaton": (MGF_AUTOMATON, 1, 0), "bar_mask": (MGF_BAR_MASK, 0, 2),
              "bar_budget": (MGF_BAR_BUDGET, 2, 2), "time_limit": (MGF_TIME_LIMIT, 1, 1),
              "bar_tokens": (MGF_BAR_TOKENS, 3, 2), "bar_bias": (MGF_BAR_BIAS, 0, 2)}
#: slots of n-gram hash tables one RuleSet may hold, all rows together (6 GiB of keys and ends)
MAX_TABLE_SLOTS = 1 << 29
#: the longest move for which TimeLimit.within is kept (a table of that many entries); beyond, within is not
MAX_MOVE = 1 << 16


cdef int32_t _NOTHING[1]


def _table(value, dtype, shape, what):
    """``value`` as a C-contiguous array of ``dtype`` and ``shape``, or InputError."""
    array = np.asarray(value)
    if array.dtype.kind in "iu" and array.size and (array.min() < -2**31 or array.max() >= 2**31):
        raise InputError(f"{what} must fit int32")
    if array.shape != shape:
        raise InputError(f"{what} must have shape {list(shape)}, got {list(array.shape)}")
    if dtype is np.bool_ and array.dtype != np.bool_ or dtype is not np.bool_ and array.dtype.kind not in (
            "f" if dtype is np.float32 else "iu"):
        raise InputError(f"{what} must be {np.dtype(dtype).name}, got {array.dtype}")
    return np.ascontiguousarray(array, dtype=np.uint8 if dtype is np.bool_ else dtype)


def _in_range(array, low, high, what):
    if array.size and (array.min() < low or array.max() >= high):
        raise InputError(f"{what} must lie in [{low}, {high})")
    return array


cdef class _Compiled:
    """The op list and its tables, shared by a RuleSet and the RuleSets its take() makes."""

    cdef mgf_rules rules
    cdef mgf_rule *ops
    cdef list arrays   # keeps every table the ops point to alive
    cdef readonly bint has_clock, needs_onsets
    cdef readonly int64_t beat_steps
    cdef readonly object kinds

    def __cinit__(self):
        self.ops = NULL

    def __dealloc__(self):
        free(self.ops)

    cdef const int32_t *_keep32(self, array) except NULL:
        cdef const int32_t[::1] view = array.reshape(-1)
        self.arrays.append(array)
        return &view[0] if array.size else &_NOTHING[0]  # never read

    cdef const unsigned char *_keep8(self, array) except NULL:
        cdef const unsigned char[::1] view = array.reshape(-1)
        self.arrays.append(array)
        return &view[0]


cdef _Compiled _compile(list rules, clock, int vocab, int start, int max_tokens):
    cdef _Compiled c = _Compiled()
    cdef int i, V = vocab, slots = 0, tables = 0
    cdef mgf_rule *op
    cdef const float[::1] bias
    c.arrays, c.kinds = [], []
    c.rules.vocab, c.rules.start, c.rules.max_tokens, c.rules.advance = V, start, max_tokens, NULL
    c.rules.bar_steps = c.beat_steps = 0
    c.has_clock = clock is not None
    if clock is not None:
        kinds = _in_range(_table(clock.kinds, np.int32, (V,), "clock.kinds"), 0, 9, "clock.kinds")
        pitches = _in_range(_table(clock.pitches, np.int32, (V,), "clock.pitches"), -1, MGF_PITCHES, "clock.pitches")
        advance = _in_range(_table(clock.advance, np.int32, (V,), "clock.advance"), 0, 1 << 30, "clock.advance")
        beat, bar = int(clock.steps_per_beat), int(clock.steps_per_beat) * int(clock.beats_per_bar)
        if not (0 <= beat <= 1 << 30 and 0 <= bar <= 1 << 40 and (beat == 0) == (bar == 0)):
            raise InputError("clock.steps_per_beat and beats_per_bar must both be 0 (no meter) or both >= 1")
        c.rules.advance, c.rules.kinds, c.beat_steps, c.rules.bar_steps = c._keep32(advance), c._keep32(kinds), beat, bar
        on = np.where(kinds == 1, pitches, -1).astype(np.int32)   # TokenKind.NOTE_ON
        off = np.where(kinds == 2, pitches, -1).astype(np.int32)  # TokenKind.NOTE_OFF
        off_token = np.full(MGF_PITCHES, -1, np.int32)
        ends = np.flatnonzero(off >= 0)[::-1]
        off_token[off[ends]] = ends  # the first NOTE_OFF of each pitch (written last)
        on_tokens = np.flatnonzero(on >= 0).astype(np.int32)
        c.rules.on_pitch, c.rules.off_pitch, c.rules.off_token = c._keep32(on), c._keep32(off), c._keep32(off_token)
        c.rules.on_tokens, c.rules.n_on = c._keep32(on_tokens), len(on_tokens)
    c.ops = <mgf_rule *> calloc(max(1, len(rules)), sizeof(mgf_rule))
    if c.ops == NULL:
        raise MemoryError()
    for i, rule in enumerate(rules):
        kind = getattr(rule, "kind", None)
        if kind not in RULE_KINDS:
            raise InputError(f"rule {i}: {type(rule).__name__} is not a rule of mgf.rules")
        op = &c.ops[i]
        code, width, needs = RULE_KINDS[kind]
        op.kind = code
        if needs and clock is None:
            raise InputError(f"rule {i} ({type(rule).__name__}) needs a musical clock, and there is none")
        if needs == 2 and c.rules.bar_steps == 0:
            raise InputError(f"rule {i} ({type(rule).__name__}) needs bars, and the clock has no meter")
        op.slot, slots = slots, slots + width
        c.kinds.append(kind)
        if kind == "forbid":
            op.tokens = c._keep8(_table(rule.tokens, np.bool_, (V,), f"rule {i}: Forbid.tokens"))
        elif kind == "run_limit":
            groups = _in_range(_table(rule.groups, np.int32, (V,), f"rule {i}: RunLimit.groups"), -1, 1 << 30,
                               f"rule {i}: RunLimit.groups")
            op.table, op.limit = c._keep32(groups), _positive(rule.max_run, f"rule {i}: RunLimit.max_run")
        elif kind == "ngram_bonus":
            op.length = _positive(rule.length, f"rule {i}: NgramBonus.length")
            op.limit = _positive(rule.max_run, f"rule {i}: NgramBonus.max_run")
            if not 0 <= rule.bonus <= 1e6:
                raise InputError(f"rule {i}: NgramBonus.bonus must lie in [0, 1e6]")
            op.bonus, op.table_index, tables = rule.bonus, tables, tables + 1
        elif kind == "close_notes":
            op.limit = _positive(rule.max_steps, f"rule {i}: CloseNotes.max_steps")
            polyphony = 0 if rule.max_polyphony is None else rule.max_polyphony
            if not 0 <= polyphony <= MGF_PITCHES:
                raise InputError(f"rule {i}: CloseNotes.max_polyphony must lie in [1, {MGF_PITCHES}] or be None")
            op.length = polyphony
            c.needs_onsets = True
        elif kind == "automaton":
            following = np.asarray(rule.next)
            states = following.shape[0] if following.ndim == 2 else 0
            op.count = _positive(states, f"rule {i}: Automaton.next (states)")
            op.table = c._keep32(_in_range(_table(following, np.int32, (states, V), f"rule {i}: Automaton.next"),
                                           0, states, f"rule {i}: Automaton.next"))
            if not 0 <= rule.start < states:
                raise InputError(f"rule {i}: Automaton.start must lie in [0, {states})")
            op.limit = rule.start
            if rule.forbid is not None:
                op.tokens = c._keep8(_table(rule.forbid, np.bool_, (states, V), f"rule {i}: Automaton.forbid"))
            if rule.bias is not None:
                table = _table(rule.bias, np.float32, (states, V), f"rule {i}: Automaton.bias")
                if not np.isfinite(table).all():
                    raise InputError(f"rule {i}: Automaton.bias must be finite")
                c.arrays.append(table)
                bias = table.reshape(-1)
                op.bias = &bias[0]
        elif kind == "bar_mask":
            masks = np.asarray(rule.masks)
            op.count = _positive(masks.shape[0] if masks.ndim == 2 else 0, f"rule {i}: BarMask.masks (bars)")
            op.tokens = c._keep8(_table(masks, np.bool_, (op.count, V), f"rule {i}: BarMask.masks"))
            op.limit = bool(rule.cycle)
        elif kind == "bar_bias":
            biases = np.asarray(rule.bias)
            op.count = _positive(biases.shape[0] if biases.ndim == 2 else 0, f"rule {i}: BarBias.bias (bars)")
            table = _table(biases, np.float32, (op.count, V), f"rule {i}: BarBias.bias")
            if not np.isfinite(table).all():
                raise InputError(f"rule {i}: BarBias.bias must be finite")
            c.arrays.append(table)
            bias = table.reshape(-1)
            op.bias = &bias[0]
            op.limit = bool(rule.cycle)
            if rule.keep is not None:
                op.tokens = c._keep8(_table(rule.keep, np.bool_, (V,), f"rule {i}: BarBias.keep"))
        elif kind == "bar_budget":
            op.tokens = c._keep8(_table(rule.tokens, np.bool_, (V,), f"rule {i}: BarBudget.tokens"))
            op.limit = _natural(rule.limit, f"rule {i}: BarBudget.limit")
        elif kind == "bar_tokens":
            _bar_tokens(c, op, rule, i, V, start)
        else:
            op.limit, op.token = _natural(rule.end, f"rule {i}: TimeLimit.end"), -1
            final = getattr(rule, "final", None)
            if final is not None:
                op.token = _in_range(np.array([operator.index(final)]), 0, V, f"rule {i}: TimeLimit.final")[0]
                if advance[op.token] != 0:
                    raise InputError(f"rule {i}: TimeLimit.final must be a token that does not move time")
                c.needs_onsets = True
                within = getattr(rule, "within", None)
                op.within = 0 if within is None else _positive(within, f"rule {i}: TimeLimit.within")
                plain = (kinds != 7) & (kinds != 8)  # TokenKind.BAR, POSITION: their moves depend on the bar
                sizes = np.unique(advance[plain & (advance > 0)])
                if op.within and sizes.size and sizes[-1] <= MAX_MOVE:
                    op.count = sizes[-1]
                    op.table = c._keep32(_longest_first(sizes))
            held = getattr(rule, "held", None)
            if held is not None:
                op.tokens = c._keep8(_table(held, np.bool_, (MGF_PITCHES,), f"rule {i}: TimeLimit.held"))
    c.rules.ops, c.rules.n_ops, c.rules.n_slots, c.rules.n_tables = c.ops, len(rules), slots, tables
    capacity = 1 << (2 * max_tokens + 1).bit_length() if tables else 0
    if capacity > MAX_TABLE_SLOTS:
        raise InputError(f"n-gram bonuses over rows of {max_tokens} tokens need more than {MAX_TABLE_SLOTS} table slots")
    c.rules.capacity = capacity
    return c


cdef _bar_tokens(_Compiled c, mgf_rule *op, rule, int i, int V, int start):
    """BarTokens: its lists [count, length] (ids in the vocabulary, never the start token, each list's -1s at its end),
    bars and reserved tokens."""
    lists = np.asarray(rule.tokens)
    op.count = _positive(lists.shape[0] if lists.ndim == 2 else 0, f"rule {i}: BarTokens.tokens (lists)")
    op.length = _positive(lists.shape[1] if lists.ndim == 2 else 0, f"rule {i}: BarTokens.tokens (entries)")
    table = _in_range(_table(lists, np.int32, (op.count, op.length), f"rule {i}: BarTokens.tokens"), -1, V,
                      f"rule {i}: BarTokens.tokens")
    if (table == start).any():
        raise InputError(f"rule {i}: BarTokens.tokens must not hold the start token {start}")
    if ((table[:, :-1] < 0) & (table[:, 1:] >= 0)).any():
        raise InputError(f"rule {i}: BarTokens.tokens must hold only -1s after a -1 (padding a list's end)")
    op.table, op.limit = c._keep32(table), bool(rule.cycle)
    op.first = _natural(rule.first, f"rule {i}: BarTokens.first")
    op.stop = -1 if rule.stop is None else _natural(rule.stop, f"rule {i}: BarTokens.stop")
    if rule.stop is not None and op.stop <= op.first:
        raise InputError(f"rule {i}: BarTokens.stop must be None or > first, got {op.stop} <= {op.first}")
    if rule.reserved is None:
        reserved = np.zeros(V, np.uint8)
        reserved[table[table >= 0]] = 1
    else:
        reserved = _table(rule.reserved, np.bool_, (V,), f"rule {i}: BarTokens.reserved")
    op.tokens = c._keep8(reserved)


def _longest_first(sizes):
    """int32 [sizes[-1]]: the moves that cover each shorter distance exactly, the longest that fits first; 2**20 where
    they cannot."""
    table = np.zeros(int(sizes[-1]), np.int32)
    for distance in range(1, len(table)):
        fits = sizes[sizes <= distance]
        table[distance] = 1 << 20 if not fits.size else min(1 << 20, 1 + table[distance - fits[-1]])
    return table


def _positive(value, what):
    number = operator.index(value)
    if not 1 <= number <= 1 << 30:
        raise InputError(f"{what} must lie in [1, 2**30], got {number}")
    return number


def _natural(value, what):
    number = operator.index(value)
    if not 0 <= number <= 1 << 62:
        raise InputError(f"{what} must be >= 0, got {number}")
    return number


cdef class RuleSet:
    """The rules of a run (mgf.rules), compiled, with the state of each of `rows` rows.

    ``feed`` advances every row over tokens (the primer, then each chosen token), ``apply`` edits logits in place
    (the start token forbidden first, then each rule in order), ``take`` reorders or copies rows (beam search),
    ``clock`` says where each row's next token falls.  A row holds at most ``max_tokens`` tokens.
    """

    cdef _Compiled compiled
    cdef mgf_rows rows
    cdef readonly int batch_size
    cdef object step, bar, length, slots, onsets, history, keys, ends  # the arrays mgf_rows points into

    def __init__(self, rules, clock, vocab, start, rows, max_tokens):
        vocab, start, rows, max_tokens = (operator.index(v) for v in (vocab, start, rows, max_tokens))
        if not (1 <= rows <= 1 << 20 and 1 <= vocab <= 1 << 30):
            raise InputError(f"a RuleSet holds 1 to 2**20 rows of a vocabulary of 1 to 2**30 tokens, got {rows}, {vocab}")
        if not (0 <= start < vocab and 0 <= max_tokens <= 1 << 30):
            raise InputError(f"a RuleSet needs a vocabulary >= 1, a start token inside it and max_tokens in [0, 2**30]; "
                             f"got {vocab}, {start}, {max_tokens}")
        self._allocate(_compile(list(rules), clock, vocab, start, max_tokens), rows)

    cdef _allocate(self, _Compiled compiled, int rows):
        cdef mgf_rules *r = &compiled.rules
        self.compiled, self.batch_size = compiled, rows
        if r.n_tables and <int64_t> rows * r.n_tables * r.capacity > MAX_TABLE_SLOTS:
            raise InputError(f"n-gram bonuses over {rows} rows of {r.max_tokens} tokens need more than "
                             f"{MAX_TABLE_SLOTS} table slots; generate fewer rows or tokens at once")
        self.step, self.bar, self.length = np.zeros(rows, np.int64), np.full(rows, -1, np.int64), np.zeros(rows, np.int64)
        self.slots = np.zeros((rows, max(1, r.n_slots)), np.int64)
        for i in range(r.n_ops):  # the state before any token
            if r.ops[i].kind == MGF_RUN_LIMIT:
                self.slots[:, r.ops[i].slot] = -1
            elif r.ops[i].kind == MGF_NGRAM_BONUS:
                self.slots[:, r.ops[i].slot + 1:r.ops[i].slot + 3] = -1
            elif r.ops[i].kind == MGF_AUTOMATON:
                self.slots[:, r.ops[i].slot] = r.ops[i].limit
            elif r.ops[i].kind == MGF_BAR_BUDGET:
                self.slots[:, r.ops[i].slot + 1] = -1
            elif r.ops[i].kind == MGF_BAR_TOKENS:  # no bar yet, none of a list chosen
                self.slots[:, r.ops[i].slot] = -1
                self.slots[:, r.ops[i].slot + 2] = -1
        self.onsets = np.full((rows, MGF_PITCHES), -1, np.int64) if compiled.needs_onsets else None
        self.history = np.zeros((rows, max(1, r.max_tokens)), np.int32) if r.n_tables else None
        shape = (int(rows), int(r.n_tables), int(r.capacity)) if r.n_tables else (1, 1, 1)
        self.keys, self.ends = np.zeros(shape, np.uint64), np.zeros(shape, np.int32)
        self._point()

    cdef _point(self):
        """mgf_rows at this RuleSet's arrays."""
        cdef int64_t[::1] step = self.step, bar = self.bar, length = self.length
        cdef int64_t[:, ::1] slots = self.slots, onsets
        cdef int32_t[:, ::1] history
        cdef uint64_t[:, :, ::1] keys = self.keys
        cdef int32_t[:, :, ::1] ends = self.ends
        self.rows.step, self.rows.bar, self.rows.length, self.rows.slots = &step[0], &bar[0], &length[0], &slots[0, 0]
        self.rows.onsets, self.rows.history = NULL, NULL
        if self.onsets is not None:
            onsets = self.onsets
            self.rows.onsets = &onsets[0, 0]
        if self.history is not None:
            history = self.history
            self.rows.history = &history[0, 0]
        self.rows.keys, self.rows.ends = &keys[0, 0, 0], &ends[0, 0, 0]

    @property
    def vocab_size(self):
        return self.compiled.rules.vocab

    @property
    def max_tokens(self):
        return self.compiled.rules.max_tokens

    @property
    def tokens_fed(self):
        """Tokens each row has been fed (all rows alike)."""
        return int(self.length[0])

    cdef int _check_room(self, int n) except -1:
        if self.tokens_fed + n > self.compiled.rules.max_tokens:
            raise InputError(f"a RuleSet of {self.compiled.rules.max_tokens} tokens per row cannot take "
                             f"{n} more after {self.tokens_fed}")
        return 0

    def feed(self, tokens):
        """Advance every row over ``tokens`` (int [rows, n], inside the vocabulary), in order."""
        array = np.asarray(tokens)
        if array.ndim != 2 or array.shape[0] != self.batch_size or array.dtype.kind not in "iu":
            raise InputError(f"feed takes int tokens [{self.batch_size}, n], got {array.dtype} {list(array.shape)}")
        _in_range(array, 0, self.compiled.rules.vocab, "fed tokens")
        self._check_room(array.shape[1])
        cdef const int32_t[:, ::1] ids = np.ascontiguousarray(array, dtype=np.int32)
        cdef int b, i, n = ids.shape[1]
        with nogil:
            for b in range(self.batch_size):
                for i in range(n):
                    mgf_rules_advance(&self.compiled.rules, &self.rows, b, ids[b, i])

    def apply(self, logits):
        """The rules over ``logits`` (float32 [rows, V], C-contiguous, writable), in place: None, or (row, rule) for
        the first row a rule left with no token."""
        cdef int V = self.compiled.rules.vocab, b, failed = 0
        if not (isinstance(logits, np.ndarray) and logits.dtype == np.float32 and logits.shape == (self.batch_size, V)
                and logits.flags.c_contiguous and logits.flags.writeable):
            raise InputError(f"apply takes writable C-contiguous float32 logits [{self.batch_size}, {V}]")
        cdef float[:, ::1] z = logits
        with nogil:
            for b in range(self.batch_size):
                failed = mgf_rules_apply(&self.compiled.rules, &self.rows, b, &z[b, 0])
                if failed:
                    break
        if failed:
            return b, failed - 1
        return None

    def take(self, indices):
        """A RuleSet whose row i is a copy of this one's row ``indices[i]``."""
        index = np.asarray(indices)
        if index.ndim != 1 or index.dtype.kind not in "iu" or not 1 <= len(index) <= 1 << 20:
            raise InputError("take's indices must be a non-empty 1-D int array")
        _in_range(index, 0, self.batch_size, "take's indices")
        cdef RuleSet out = RuleSet.__new__(RuleSet)
        out.compiled, out.batch_size = self.compiled, len(index)
        out.step, out.bar, out.length, out.slots = self.step[index], self.bar[index], self.length[index], self.slots[index]
        out.onsets = None if self.onsets is None else self.onsets[index]
        out.history = None if self.history is None else self.history[index]
        out.keys, out.ends = (self.keys[index], self.ends[index]) if self.history is not None else (self.keys, self.ends)
        out._point()
        return out

    def clock(self):
        """Where each row's next token falls: int64 ``step``, ``beat`` and ``bar`` [rows] (beats and bars counted from
        0 at step 0, -1 without a meter); None without a clock."""
        if not self.compiled.has_clock:
            return None
        step, beat, bar = self.step.copy(), self.compiled.beat_steps, self.compiled.rules.bar_steps
        return {"step": step, "beat": step // beat if beat else np.full_like(step, -1),
                "bar": step // bar if bar else np.full_like(step, -1)}

/* The rules a constraint may be assembled from (mgf.rules), in C: one op list per run, per-row state, and two
 * calls, mgf_rules_apply (edit a row's logits) and mgf_rules_advance (a token was chosen).  The same functions
 * serve the generation loop in C (generate.pxi, no GIL) and the step-by-step Python loop (RuleSet, rules.pxi), so
 * one seed gives the same tokens on both.  What each rule does is documented once, in core/generation/rules.py.
 *
 * A row's state: its clock position (grid steps of the representation's Clock), its tokens so far (for n-gram
 * bonuses), the step each pitch started at (-1: silent; for close-notes), and a few integers per op ("slots").
 * Every table was checked by RuleSet with the GIL held: token ids, states, pitches and groups are in range.
 */
#ifndef MGF_RULES_H
#define MGF_RULES_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__) /* as in choose.h: loops over the vocabulary vectorise */
#pragma GCC push_options
#pragma GCC optimize("no-wrapv", "no-trapping-math")
#endif

enum { MGF_NOTE_ON = 1, MGF_NOTE_OFF = 2, MGF_REST = 6, MGF_BAR = 7, MGF_POSITION = 8 }; /* TokenKind (mgf.Clock) */
enum { MGF_FORBID = 0, MGF_RUN_LIMIT, MGF_NGRAM_BONUS, MGF_CLOSE_NOTES, MGF_AUTOMATON, MGF_BAR_MASK, MGF_BAR_BUDGET,
       MGF_TIME_LIMIT, MGF_BAR_TOKENS, MGF_BAR_BIAS };
#define MGF_PITCHES 128

typedef struct {
    int kind;
    int slot;                       /* first of this op's slots in a row's slots */
    const unsigned char *tokens;    /* FORBID, BAR_BUDGET: [V]; BAR_MASK: [count, V]; AUTOMATON: forbid [count, V] or NULL;
                                       TIME_LIMIT: held pitches [128] or NULL; BAR_TOKENS: reserved [V]; BAR_BIAS: keep
                                       [V] or NULL */
    const int32_t *table;           /* RUN_LIMIT: groups [V]; AUTOMATON: next [count, V]; TIME_LIMIT: [count] the
                                       longest-first moves that cover each distance below count; BAR_TOKENS: the
                                       lists [count, length], token ids, then -1s */
    const float *bias;              /* AUTOMATON: [count, V] or NULL; BAR_BIAS: [count, V] */
    int count;                      /* BAR_MASK, BAR_TOKENS: masks, lists; AUTOMATON: states; TIME_LIMIT: the longest
                                       move (not a BAR's or POSITION's) */
    int64_t limit;                  /* RUN_LIMIT, NGRAM_BONUS: max_run; CLOSE_NOTES: max_steps; BAR_BUDGET: limit;
                                       TIME_LIMIT: end; AUTOMATON: start state; BAR_MASK, BAR_TOKENS: cycle */
    int length;                     /* NGRAM_BONUS: tokens matched; CLOSE_NOTES: max_polyphony (0: any); BAR_TOKENS:
                                       entries of a list */
    float bonus;                    /* NGRAM_BONUS */
    int table_index;                /* NGRAM_BONUS: which of a row's hash tables */
    int token;                      /* TIME_LIMIT: final, or -1 */
    int64_t within;                 /* TIME_LIMIT: the row's tokens by which it chooses final (0: no bound) */
    int64_t first, stop;            /* BAR_TOKENS: the bars [first, stop) that have a list (stop -1: no end) */
} mgf_rule;

typedef struct {
    int vocab, start, n_ops, n_slots, n_tables;
    const mgf_rule *ops;
    /* the Clock (NULL advance: no clock, every token at step 0) and what close-notes derives from it */
    const int32_t *advance;         /* [V] grid steps a token moves time on; a POSITION token: where in the bar */
    const int32_t *kinds;           /* [V] TokenKind */
    int64_t bar_steps;              /* grid steps per bar; 0: no meter (no rule keyed on bars runs then) */
    const int32_t *on_pitch;        /* [V] pitch a NOTE_ON token starts, else -1 */
    const int32_t *off_pitch;       /* [V] pitch a NOTE_OFF token ends, else -1 */
    const int32_t *on_tokens;       /* [n_on] the NOTE_ON tokens, in id order */
    int n_on;
    const int32_t *off_token;       /* [128] the first NOTE_OFF token of each pitch, or -1 */
    int capacity;                   /* slots of a hash table: a power of two above twice max_tokens */
    int max_tokens;
} mgf_rules;

typedef struct {       /* every row's state; row b's parts at b * (their width) */
    int64_t *step;     /* [rows] the clock position of the next token */
    int64_t *bar;      /* [rows] the bar BAR and POSITION tokens count from (-1 before any placed the row in one) */
    int64_t *length;   /* [rows] tokens fed so far */
    int64_t *slots;    /* [rows, n_slots] */
    int64_t *onsets;   /* [rows, 128] or NULL */
    int32_t *history;  /* [rows, max_tokens] or NULL (no n-gram op) */
    uint64_t *keys;    /* [rows, n_tables, capacity]: hash of a window, 0 empty */
    int32_t *ends;     /* [rows, n_tables, capacity]: the end of the window's most recent occurrence */
} mgf_rows;

/* FNV-1a over a window's token ids; never 0, which marks an empty slot. */
static inline uint64_t mgf_window_hash(const int32_t *window, int length)
{
    uint64_t hash = 14695981039346656037ULL;
    for (int i = 0; i < length; i++) {
        hash ^= (uint32_t)window[i];
        hash *= 1099511628211ULL;
    }
    return hash | 1;
}

static inline int mgf_same_window(const int32_t *a, const int32_t *b, int length)
{
    return memcmp(a, b, sizeof(int32_t) * (size_t)length) == 0;
}

/* n-gram bonus: the token after the most recent window equal to the row's last L tokens that ends before they begin
 * (end e: h[e - L, e) followed by h[e]), or -1; found through the row's table of window hashes (indexed up to the
 * windows that have left the last L tokens), checked token by token, on a hash collision by a scan back. */
static int mgf_ngram_next(const mgf_rules *r, const mgf_rule *op, mgf_rows *s, int b)
{
    int L = op->length, n = (int)s->length[b], mask = r->capacity - 1, end = -1;
    const int32_t *h = s->history + (int64_t)b * r->max_tokens;
    size_t table = ((size_t)b * r->n_tables + op->table_index) * r->capacity;
    uint64_t *keys = s->keys + table;
    int32_t *ends = s->ends + table;
    int64_t *indexed = s->slots + (int64_t)b * r->n_slots + op->slot + 3;
    if (n < 2 * L)
        return -1;
    for (; *indexed <= n - L; (*indexed)++) {
        int e = (int)*indexed;
        if (e < L)
            continue;
        uint64_t key = mgf_window_hash(h + e - L, L);
        int slot = (int)(key & (uint64_t)mask), probes = 0;
        while (keys[slot] != 0 && keys[slot] != key && ++probes < r->capacity) /* bounded; the table is never full */
            slot = (slot + 1) & mask;
        keys[slot] = key;
        ends[slot] = e;
    }
    uint64_t key = mgf_window_hash(h + n - L, L);
    int slot = (int)(key & (uint64_t)mask);
    for (int probes = 0; keys[slot] != 0 && probes < r->capacity; probes++, slot = (slot + 1) & mask)
        if (keys[slot] == key) {
            end = ends[slot];
            break;
        }
    if (end >= 0 && !(end >= L && end <= n - L && mgf_same_window(h + end - L, h + n - L, L)))
        for (end = n - L; end >= L && !mgf_same_window(h + end - L, h + n - L, L); end--)
            ;
    return end >= L ? h[end] : -1;
}

/* numpy's logaddexp, for the same float64 result. */
static inline double mgf_logaddexp(double x, double y)
{
    if (x == y)
        return x + 0.693147180559945309417232121458176568;
    double d = x - y;
    if (d > 0)
        return x + log1p(exp(-d));
    if (d <= 0)
        return y + log1p(exp(d));
    return d;
}

/* close-notes: no token carries a sounding note past max_steps; once one has sounded that long only the NOTE_OFFs of
 * such notes (and RESTs, which end every note) remain; with max_polyphony notes sounding, the NOTE_ONs of silent pitches are forbidden and their
 * probability (a log-sum-exp in eight running sums, numpy's order) goes to the NOTE_OFF of the longest-sounding
 * note (the lowest pitch among equals). */
static void mgf_close_notes(const mgf_rules *r, const mgf_rule *op, const mgf_rows *s, int b, float *z)
{
    const int64_t *onsets = s->onsets + (int64_t)b * MGF_PITCHES, now = s->step[b];
    int64_t oldest = -1, max_steps = op->limit;
    int count = 0, oldest_pitch = 0, v, q, i;
    for (q = 0; q < MGF_PITCHES; q++)
        if (onsets[q] >= 0) {
            count++;
            if (now - onsets[q] > oldest) {
                oldest = now - onsets[q];
                oldest_pitch = q;
            }
        }
    if (oldest >= 0) /* a REST ends the notes before its time passes */
        for (v = 0; v < r->vocab; v++)
            if (r->advance[v] > 0 && r->advance[v] > max_steps - oldest && r->kinds[v] != MGF_REST)
                z[v] = -INFINITY;
    if (oldest >= max_steps)
        for (v = 0; v < r->vocab; v++) {
            q = r->off_pitch[v];
            if (!(q >= 0 && onsets[q] >= 0 && now - onsets[q] >= max_steps) && r->kinds[v] != MGF_REST)
                z[v] = -INFINITY;
        }
    if (op->length > 0 && count >= op->length) {
        double peak = -INFINITY, sums[8] = {0};
        for (i = 0; i < r->n_on; i++)
            if (onsets[r->on_pitch[r->on_tokens[i]]] < 0 && z[r->on_tokens[i]] > peak)
                peak = z[r->on_tokens[i]];
        double shift = isfinite(peak) ? peak : 0.0;
        for (i = 0; i < r->n_on; i++) {
            v = r->on_tokens[i];
            sums[i % 8] += onsets[r->on_pitch[v]] < 0 ? exp((double)z[v] - shift) : 0.0;
        }
        double mass = peak + log(((sums[0] + sums[1]) + (sums[2] + sums[3])) + ((sums[4] + sums[5]) + (sums[6] + sums[7])));
        int off = r->off_token[oldest_pitch];
        if (off >= 0 && isfinite(z[off]))
            z[off] = (float)mgf_logaddexp(z[off], mass);
        for (i = 0; i < r->n_on; i++)
            if (onsets[r->on_pitch[r->on_tokens[i]]] < 0)
                z[r->on_tokens[i]] = -INFINITY;
    }
}

static inline void mgf_forbid(float *z, const unsigned char *tokens, int vocab)
{
    for (int v = 0; v < vocab; v++)
        if (tokens[v])
            z[v] = -INFINITY;
}

static inline int mgf_any_allowed(const float *z, int vocab)
{
    for (int v = 0; v < vocab; v++)
        if (z[v] > -INFINITY)
            return 1;
    return 0;
}

/* The step row b moves to with token v (the clock's rules, core/contract/clock.py). */
static inline int64_t mgf_step_after(const mgf_rules *r, const mgf_rows *s, int b, int v)
{
    int64_t bar = s->bar[b];
    if (r->kinds[v] == MGF_BAR)
        return (bar + 1) * r->bar_steps;
    if (r->kinds[v] == MGF_POSITION)
        return (bar > 0 ? bar : 0) * r->bar_steps + r->advance[v];
    return s->step[b] + r->advance[v];
}

/* time-limit's notes to close at `end`: those sounding that have a NOTE_OFF, but the held ones. */
static inline int mgf_open_notes(const mgf_rules *r, const mgf_rule *op, const int64_t *onsets)
{
    int open = 0;
    for (int q = 0; q < MGF_PITCHES; q++)
        open += onsets[q] >= 0 && r->off_token[q] >= 0 && !(op->tokens && op->tokens[q]);
    return open;
}

/* time-limit's within: whether row b could still, after token v, reach `end` by the longest moves that fit, close its
 * notes there (`open` now) and choose `final`, within `left` tokens after v. */
static inline int mgf_in_time(const mgf_rules *r, const mgf_rule *op, const int64_t *onsets, int64_t next, int v,
                              int open, int64_t left)
{
    int q = r->on_pitch[v], p = r->off_pitch[v];
    int64_t distance = op->limit - next;
    if (r->kinds[v] == MGF_REST)
        open = 0;
    else if (q >= 0 && onsets[q] < 0 && r->off_token[q] >= 0 && !(op->tokens && op->tokens[q]))
        open++;
    else if (p >= 0 && onsets[p] >= 0 && !(op->tokens && op->tokens[p]))
        open--;
    return left >= distance / op->count + op->table[distance % op->count] + open + 1;
}

/* time-limit: nothing moves the row past `end`; with a final token, at `end` the NOTE_OFFs of the pitches sounding
 * there (but the held ones) come first, then only `final`, which is forbidden before (slot: the row chose it), and
 * always allowed after.  With `within`, no token after which the row could not end in time (if any could). */
static void mgf_time_limit(const mgf_rules *r, const mgf_rule *op, const mgf_rows *s, int b, const int64_t *slot,
                           float *z)
{
    int v, q, open = -1, timely = 0;
    int64_t now = s->step[b], left = op->within - s->length[b] - 1;
    const int64_t *onsets = s->onsets ? s->onsets + (int64_t)b * MGF_PITCHES : NULL;
    if (op->token >= 0 && (slot[0] || now >= op->limit)) {
        int closing = !slot[0] && mgf_open_notes(r, op, onsets) > 0;
        for (v = 0; v < r->vocab; v++) {
            q = r->off_pitch[v];
            if (closing ? !(q >= 0 && onsets[q] >= 0 && !(op->tokens && op->tokens[q])) : v != op->token)
                z[v] = -INFINITY;
        }
        if (slot[0] && z[op->token] == -INFINITY) /* after final comes padding, whatever the rules before say */
            z[op->token] = 0.0f;
        return;
    }
    if (op->token >= 0)
        z[op->token] = -INFINITY;
    if (op->token >= 0 && op->within > 0 && op->count > 0)
        open = mgf_open_notes(r, op, onsets);
    for (v = 0; v < r->vocab; v++) {
        int64_t next = mgf_step_after(r, s, b, v);
        if (next > op->limit && next != now)
            z[v] = -INFINITY;
        else if (open >= 0 && z[v] > -INFINITY)
            timely |= mgf_in_time(r, op, onsets, next, v, open, left);
    }
    if (timely)
        for (v = 0; v < r->vocab; v++) {
            if (z[v] > -INFINITY && !mgf_in_time(r, op, onsets, mgf_step_after(r, s, b, v), v, open, left))
                z[v] = -INFINITY;
        }
}

/* bar-tokens: where in op->table the entry row b must choose next is, when its next token falls in `bar`, or -1 (the
 * bar's list is done, was passed by, or is empty; the bar has none).  slot: the latest bar whose list is done or that
 * had a token not of its list (-1: none yet), the entries of a list chosen, in which bar (-1: none). */
static inline int64_t mgf_bar_entry(const mgf_rule *op, const int64_t *slot, int64_t bar)
{
    int64_t k = bar - op->first, done = slot[2] == bar ? slot[1] : 0;
    if (bar <= slot[0] || k < 0 || (op->stop >= 0 && bar >= op->stop) || done < 0 || done >= op->length)
        return -1;
    k = op->limit ? k % op->count : (k < op->count - 1 ? k : op->count - 1);
    return op->table[k * op->length + done] >= 0 ? k * op->length + done : -1;
}

/* bar-bias: bar's row of op->bias added to z; with keep (op->tokens), the kept tokens then shifted together so that
 * their total probability (a log-sum-exp in double) is what it was: the bias moves mass among them only. */
static void mgf_bar_bias(const mgf_rule *op, int64_t bar, float *z, int V)
{
    int64_t k = op->limit ? bar % op->count : (bar < op->count - 1 ? bar : op->count - 1);
    const float *add = op->bias + k * V;
    const unsigned char *keep = op->tokens;
    float shift = 0.0f;
    int v;
    if (keep) {
        double before = -INFINITY, after = -INFINITY, sb = 0.0, sa = 0.0;
        for (v = 0; v < V; v++)
            if (keep[v] && z[v] > -INFINITY) {
                before = z[v] > before ? z[v] : before;
                after = (double)(z[v] + add[v]) > after ? (double)(z[v] + add[v]) : after;
            }
        if (isfinite(before)) {
            for (v = 0; v < V; v++)
                if (keep[v] && z[v] > -INFINITY) {
                    sb += exp((double)z[v] - before);
                    sa += exp((double)(z[v] + add[v]) - after);
                }
            shift = (float)((before + log(sb)) - (after + log(sa)));
        }
    }
    for (v = 0; v < V; v++)
        z[v] = z[v] + (keep && keep[v] ? add[v] + shift : add[v]);
}

/* Row b's logits z [V], in place: the start token, then each op in order.  0, or 1 + the index of the op that left
 * the row no token. */
static int mgf_rules_apply(const mgf_rules *r, mgf_rows *s, int b, float *z)
{
    int V = r->vocab, v;
    int64_t *slots = s->slots + (int64_t)b * r->n_slots, now = s->step[b];
    z[r->start] = -INFINITY;
    for (int i = 0; i < r->n_ops; i++) {
        const mgf_rule *op = r->ops + i;
        int64_t *slot = slots + op->slot;
        switch (op->kind) {
        case MGF_FORBID:
            mgf_forbid(z, op->tokens, V);
            break;
        case MGF_RUN_LIMIT: /* slot: the group started last, how many times in a row */
            if (slot[1] >= op->limit && slot[0] >= 0)
                for (v = 0; v < V; v++)
                    if (op->table[v] == slot[0])
                        z[v] = -INFINITY;
            break;
        case MGF_NGRAM_BONUS: { /* slot: run of favoured tokens, the token favoured, at which length, windows indexed */
            int next = mgf_ngram_next(r, op, s, b);
            slot[1] = next;
            slot[2] = s->length[b];
            if (next >= 0 && slot[0] < op->limit)
                z[next] += op->bonus;
            break;
        }
        case MGF_CLOSE_NOTES:
            mgf_close_notes(r, op, s, b, z);
            break;
        case MGF_AUTOMATON: { /* slot: the state */
            int64_t row = slot[0] * V;
            if (op->tokens)
                mgf_forbid(z, op->tokens + row, V);
            if (op->bias)
                for (v = 0; v < V; v++)
                    z[v] += op->bias[row + v];
            break;
        }
        case MGF_BAR_MASK: { /* steps are never negative */
            int64_t bar = now / r->bar_steps;
            int64_t k = op->limit ? bar % op->count : (bar < op->count - 1 ? bar : op->count - 1);
            mgf_forbid(z, op->tokens + k * V, V);
            break;
        }
        case MGF_BAR_BIAS: /* as BAR_MASK's bar; -inf stays -inf */
            mgf_bar_bias(op, now / r->bar_steps, z, V);
            break;
        case MGF_BAR_BUDGET: /* slot: tokens counted, in which bar */
            if ((slot[1] == now / r->bar_steps ? slot[0] : 0) >= op->limit)
                mgf_forbid(z, op->tokens, V);
            break;
        case MGF_TIME_LIMIT:
            mgf_time_limit(r, op, s, b, slot, z);
            break;
        case MGF_BAR_TOKENS: { /* the bar's next entry alone (allowed whatever the rules before said), else no reserved */
            int64_t entry = mgf_bar_entry(op, slot, now / r->bar_steps);
            if (entry >= 0) {
                int token = op->table[entry];
                float keep = isfinite(z[token]) ? z[token] : 0.0f;
                for (v = 0; v < V; v++)
                    z[v] = -INFINITY;
                z[token] = keep;
            } else
                mgf_forbid(z, op->tokens, V);
            break;
        }
        }
        if (!mgf_any_allowed(z, V))
            return i + 1;
    }
    return 0;
}

/* Row b chose (or was fed) `token`: each op's state, then the pitches sounding, the clock and the history. */
static void mgf_rules_advance(const mgf_rules *r, mgf_rows *s, int b, int token)
{
    int64_t *slots = s->slots + (int64_t)b * r->n_slots, now = s->step[b];
    for (int i = 0; i < r->n_ops; i++) {
        const mgf_rule *op = r->ops + i;
        int64_t *slot = slots + op->slot;
        switch (op->kind) {
        case MGF_RUN_LIMIT: {
            int group = op->table[token];
            if (group >= 0) {
                slot[1] = group == slot[0] ? slot[1] + 1 : 1;
                slot[0] = group;
            }
            break;
        }
        case MGF_NGRAM_BONUS:
            if (slot[2] != s->length[b]) { /* not applied at this length (the primer): look the favoured token up */
                slot[1] = mgf_ngram_next(r, op, s, b);
                slot[2] = s->length[b];
            }
            slot[0] = slot[1] >= 0 && token == slot[1] ? slot[0] + 1 : 0;
            break;
        case MGF_AUTOMATON:
            slot[0] = op->table[slot[0] * r->vocab + token];
            break;
        case MGF_BAR_BUDGET: {
            int64_t bar = now / r->bar_steps;
            if (bar != slot[1]) {
                slot[1] = bar;
                slot[0] = 0;
            }
            slot[0] += op->tokens[token] != 0;
            break;
        }
        case MGF_TIME_LIMIT:
            slot[0] |= token == op->token;
            break;
        case MGF_BAR_TOKENS: { /* the token fell at `now`, in `bar` */
            int64_t bar = now / r->bar_steps, entry = mgf_bar_entry(op, slot, bar);
            if (bar <= slot[0])
                break;
            if (entry >= 0 && token == op->table[entry] && (entry + 1) % op->length != 0 && op->table[entry + 1] >= 0) {
                slot[1] = entry % op->length + 1; /* more of the list to come */
                slot[2] = bar;
            } else { /* the list is done, or the bar has none, or the token is not of it (a primer's) */
                slot[0] = bar;
                slot[1] = 0;
                slot[2] = -1;
            }
            break;
        }
        }
    }
    if (s->onsets) {
        int64_t *onsets = s->onsets + (int64_t)b * MGF_PITCHES;
        if (r->on_pitch[token] >= 0)
            onsets[r->on_pitch[token]] = now;
        if (r->off_pitch[token] >= 0)
            onsets[r->off_pitch[token]] = -1;
        if (r->kinds[token] == MGF_REST)
            for (int q = 0; q < MGF_PITCHES; q++)
                onsets[q] = -1;
    }
    if (r->advance) { /* the clock's rules (core/contract/clock.py) */
        int64_t move = r->advance[token], *bar = s->bar + b;
        if (r->kinds[token] == MGF_BAR) {
            *bar += 1;
            s->step[b] = *bar * r->bar_steps;
        } else if (r->kinds[token] == MGF_POSITION) {
            *bar = *bar > 0 ? *bar : 0;
            s->step[b] = *bar * r->bar_steps + move;
        } else if (move) {
            s->step[b] = now + move;
            if (r->bar_steps && s->step[b] / r->bar_steps > *bar)
                *bar = s->step[b] / r->bar_steps;
        }
    }
    if (s->history)
        s->history[(int64_t)b * r->max_tokens + s->length[b]] = token;
    s->length[b]++;
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

#endif

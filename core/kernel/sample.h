/* Choosing a token from one row of logits: the built-in constraints and policies, in C.
 *
 * One code path serves both ways of generating: the whole loop in C (Kernel.generate, no
 * GIL, one call for all steps) and the step-by-step Python loop (the `greedy` and `temperature`
 * policies call mgf_choose per row), so the same seed gives the same tokens on both.
 *
 * Semantics match the Python plugins: the start token is forbidden; the constraints apply in
 * the order given (a mask forbids tokens outright, `no-repeat` forbids the tokens of the pitch
 * that has just started max_repeats times in a row, `close-notes` ends the notes of the `midi`
 * representation that sound too long or too many at once: plugins/constraints/close_notes.py, whose
 * float64 arithmetic it repeats; `motifs` adds a bonus to the token that followed the last
 * earlier occurrence of the row's last tokens: plugins/constraints/motifs.py); temperature
 * divides the logits, top-k keeps
 * the k largest (ties: lower id first), top-p keeps the most probable tokens whose probability
 * before them is < p (ranked by probability, ties: lower id first); the draw takes the first
 * token whose cumulative probability reaches (1 - u) * total, u uniform in [0, 1).
 */
#ifndef MGF_SAMPLE_H
#define MGF_SAMPLE_H

#include <math.h>
#include <stdint.h>

#include "dispatch.h" /* mgf_exp_baseline */
#include <string.h>
#include <stdlib.h>

/* The loops over a vocabulary vectorise only without -fwrapv (which Python's build adds) and without
 * -ftrapping-math (a float comparison may not then be made branch-free), as in dispatch.h, whose
 * exponential the draw uses; nothing here relies on either. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("no-wrapv", "no-trapping-math")
#endif

enum { MGF_GREEDY = 0, MGF_TEMPERATURE = 1 };
enum { MGF_MASK = 0, MGF_NO_REPEAT = 1, MGF_CLOSE_NOTES = 2, MGF_MOTIFS = 3 };
#define MGF_PITCHES 128 /* close-notes: NOTE_ON p is token p, NOTE_OFF p is token 128 + p (docs/tokens.md) */
/* mgf_choose returns a token id >= 0, or one of these */
enum { MGF_EMPTY = -1, MGF_NONFINITE = -2 };

typedef struct {
    int vocab, start;
    int policy;                   /* MGF_GREEDY or MGF_TEMPERATURE */
    double temperature, top_p;
    int top_k;
    int n_constraints;
    const int *kinds;             /* [n_constraints]: MGF_MASK, MGF_NO_REPEAT or MGF_CLOSE_NOTES */
    const unsigned char *masks;   /* [n_constraints, vocab]: 1 = forbidden (rows of MGF_MASK constraints) */
    const int *pitches;           /* [vocab]: pitch a token starts, -1 for none (used by MGF_NO_REPEAT) */
    int max_repeats;
    /* close-notes: the first TIME_SHIFT token and the first token after them (a shift of
     * token - shift0 + 1 time steps), the steps a note may sound, the most notes at once (0: any) */
    int shift0, shift_end, max_steps, max_polyphony;
    /* motifs: the tokens that must match (0: no motifs), what the token after a match gets added to its
     * logit, and for how many tokens in a row */
    int motif_length, motif_max_run;
    float motif_bonus;
} mgf_policy;

/* Where a row stands: for `no-repeat`, the pitch started last and how many times in a row; for
 * `close-notes`, the time in steps and the step each pitch started at (-1: silent); for `motifs`,
 * the row's tokens so far (primer first) and an open-addressing table from the hash of each
 * window of motif_length tokens to the end of its most recent occurrence (keys 0: empty). */
typedef struct {
    int last_pitch, run;
    int64_t now;
    int64_t onsets[MGF_PITCHES];
    const int32_t *history;
    int length;                   /* tokens in history */
    uint64_t *keys;               /* [capacity], a power of two above twice the tokens a row will hold */
    int32_t *ends;                /* [capacity] */
    int capacity, indexed;        /* windows ending before `indexed` are in the table */
    int motif_run, motif_next;    /* tokens in a row that continued a passage; what the last step favoured (-1) */
} mgf_row_state;

static inline void mgf_row_advance(const mgf_policy *p, mgf_row_state *row, int token)
{
    if (p->motif_length > 0)
        row->motif_run = row->motif_next >= 0 && token == row->motif_next ? row->motif_run + 1 : 0;
    if (p->shift_end > 0) {
        if (token < MGF_PITCHES)
            row->onsets[token] = row->now;
        else if (token < 2 * MGF_PITCHES)
            row->onsets[token - MGF_PITCHES] = -1;
        else if (token >= p->shift0 && token < p->shift_end)
            row->now += token - p->shift0 + 1;
    }
    int pitch = p->pitches ? p->pitches[token] : -1;
    if (pitch < 0)
        return;
    if (pitch == row->last_pitch) {
        row->run++;
    } else {
        row->last_pitch = pitch;
        row->run = 1;
    }
}

static inline int mgf_any_allowed(const float *z, int vocab)
{
    for (int v = 0; v < vocab; v++)
        if (z[v] > -INFINITY)
            return 1;
    return 0;
}

/* Order (descending by key, ties by lower id) for qsort over a scratch of (key, id) pairs. */
typedef struct {
    double key;
    int id;
} mgf_ranked;

static int mgf_by_key_desc(const void *a, const void *b)
{
    const mgf_ranked *x = (const mgf_ranked *)a, *y = (const mgf_ranked *)b;
    if (x->key != y->key)
        return x->key > y->key ? -1 : 1;
    return x->id - y->id;
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

/* close-notes on one row: no TIME_SHIFT carries a sounding note past max_steps; once one has
 * sounded that long only the NOTE_OFFs of such notes remain; with max_polyphony notes sounding,
 * the NOTE_ONs of silent pitches are forbidden and their probability (a log-sum-exp, summed in
 * numpy's order: eight running sums) goes to the NOTE_OFF of the longest-sounding note. */
static inline void mgf_close_notes(const mgf_policy *p, float *z, const mgf_row_state *row)
{
    int64_t oldest = -1;
    int count = 0, oldest_pitch = 0, v, q;
    for (q = 0; q < MGF_PITCHES; q++)
        if (row->onsets[q] >= 0) {
            int64_t age = row->now - row->onsets[q];
            count++;
            if (age > oldest) {
                oldest = age;
                oldest_pitch = q;
            }
        }
    int64_t room = oldest >= 0 ? p->max_steps - oldest : p->shift_end - p->shift0;
    for (v = p->shift0; v < p->shift_end; v++)
        if (v - p->shift0 + 1 > room)
            z[v] = -INFINITY;
    if (oldest >= p->max_steps)
        for (v = 0; v < p->vocab; v++) {
            q = v - MGF_PITCHES;
            if (!(q >= 0 && q < MGF_PITCHES && row->onsets[q] >= 0 && row->now - row->onsets[q] >= p->max_steps))
                z[v] = -INFINITY;
        }
    if (p->max_polyphony > 0 && count >= p->max_polyphony) {
        double peak = -INFINITY, sums[8] = {0}, off = z[MGF_PITCHES + oldest_pitch];
        for (q = 0; q < MGF_PITCHES; q++)
            if (row->onsets[q] < 0 && z[q] > peak)
                peak = z[q];
        double shift = isfinite(peak) ? peak : 0.0;
        for (q = 0; q < MGF_PITCHES; q++)
            sums[q % 8] += row->onsets[q] < 0 ? exp((double)z[q] - shift) : 0.0;
        double mass = peak + log(((sums[0] + sums[1]) + (sums[2] + sums[3])) + ((sums[4] + sums[5]) + (sums[6] + sums[7])));
        if (isfinite(off))
            z[MGF_PITCHES + oldest_pitch] = (float)mgf_logaddexp(off, mass);
        for (q = 0; q < MGF_PITCHES; q++)
            if (row->onsets[q] < 0)
                z[q] = -INFINITY;
    }
}

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

/* motifs on one row: the most recent window equal to the last motif_length tokens that ends before
 * they begin (end e: history[e - L, e) followed by history[e]), found through the table, checked
 * token by token, and on a hash collision by a scan back; its next token gets the bonus while the
 * restatement has run for fewer than motif_max_run tokens. */
static inline void mgf_motifs(const mgf_policy *p, float *z, mgf_row_state *row)
{
    int L = p->motif_length, n = row->length, mask = row->capacity - 1, end = -1;
    const int32_t *h = row->history;
    row->motif_next = -1;
    if (n < 2 * L)
        return;
    for (; row->indexed <= n - L; row->indexed++) { /* the windows that have left the last L tokens */
        int e = row->indexed;
        if (e < L)
            continue;
        uint64_t key = mgf_window_hash(h + e - L, L);
        int slot = (int)(key & (uint64_t)mask), probes = 0;
        while (row->keys[slot] != 0 && row->keys[slot] != key && ++probes < row->capacity) /* bounded: the table */
            slot = (slot + 1) & mask;                                                     /* is never full */
        row->keys[slot] = key;
        row->ends[slot] = e;
    }
    uint64_t key = mgf_window_hash(h + n - L, L);
    int slot = (int)(key & (uint64_t)mask);
    for (int probes = 0; row->keys[slot] != 0 && probes < row->capacity; probes++, slot = (slot + 1) & mask)
        if (row->keys[slot] == key) {
            end = row->ends[slot];
            break;
        }
    if (end >= 0 && !(end >= L && end <= n - L && mgf_same_window(h + end - L, h + n - L, L)))
        for (end = n - L; end >= L && !mgf_same_window(h + end - L, h + n - L, L); end--)
            ;
    if (end >= L && h[end] >= 0 && h[end] < p->vocab) {
        row->motif_next = h[end];
        if (row->motif_run < p->motif_max_run)
            z[h[end]] += p->motif_bonus;
    }
}

/* Apply the constraints to z (in place); 0, or 1 + the index of the constraint that left no token. */
static inline int mgf_constrain(const mgf_policy *p, float *z, mgf_row_state *row)
{
    z[p->start] = -INFINITY;
    for (int c = 0; c < p->n_constraints; c++) {
        if (p->kinds[c] == MGF_MASK) {
            const unsigned char *mask = p->masks + (long)c * p->vocab;
            for (int v = 0; v < p->vocab; v++)
                if (mask[v])
                    z[v] = -INFINITY;
        } else if (p->kinds[c] == MGF_CLOSE_NOTES) {
            mgf_close_notes(p, z, row);
        } else if (p->kinds[c] == MGF_MOTIFS) {
            mgf_motifs(p, z, row);
        } else if (row->run >= p->max_repeats) {
            for (int v = 0; v < p->vocab; v++)
                if (p->pitches[v] == row->last_pitch)
                    z[v] = -INFINITY;
        }
        if (!mgf_any_allowed(z, p->vocab))
            return c + 1;
    }
    return 0;
}

static inline int mgf_argmax(const float *z, int vocab)
{
    int best = 0;
    for (int v = 1; v < vocab; v++)
        if (z[v] > z[best])
            best = v;
    return best;
}

/* Moves the k greatest of ranked[0:n] (by key, ties: lower id first) to ranked[0:k], in some order: quickselect,
 * O(n) where sorting the whole vocabulary for a top-k was O(n log n). */
static void mgf_select(mgf_ranked *ranked, int n, int k)
{
    int low = 0, high = n - 1;
    while (low < high) {
        mgf_ranked pivot = ranked[low + (high - low) / 2], t;
        int i = low, j = high;
        while (i <= j) {
            while (i < high && mgf_by_key_desc(&ranked[i], &pivot) < 0) /* bounded even if a key were NaN */
                i++;
            while (j > low && mgf_by_key_desc(&ranked[j], &pivot) > 0)
                j--;
            if (i <= j) {
                t = ranked[i];
                ranked[i++] = ranked[j];
                ranked[j--] = t;
            }
        }
        if (k <= j)
            high = j;
        else if (k >= i)
            low = i;
        else
            return;
    }
}

/* The largest of x[0:n] (n >= 1; no NaN), in four running maxima. */
static inline float mgf_max(const float *x, int n)
{
    float m[4] = {x[0], x[0], x[0], x[0]};
    int i = 0;
    for (; i + 4 <= n; i += 4)
        for (int k = 0; k < 4; k++)
            m[k] = x[i + k] > m[k] ? x[i + k] : m[k];
    for (; i < n; i++)
        m[0] = x[i] > m[0] ? x[i] : m[0];
    float a = m[0] > m[1] ? m[0] : m[1], b = m[2] > m[3] ? m[2] : m[3];
    return a > b ? a : b;
}

/* The sum of x[0:n] in double, in four running sums. */
static inline double mgf_sum(const float *x, int n)
{
    double s[4] = {0.0, 0.0, 0.0, 0.0};
    int i = 0;
    for (; i + 4 <= n; i += 4)
        for (int k = 0; k < 4; k++)
            s[k] += x[i + k];
    for (; i < n; i++)
        s[0] += x[i];
    return (s[0] + s[1]) + (s[2] + s[3]);
}

/* The power-of-two bucket of a probability in (0, 1]: 0 for [1/2, 1], b for [2^-(b+1), 2^-b), 63 below. */
static inline int mgf_bucket(float x)
{
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    int b = 126 - (int)(bits >> 23);
    return b < 0 ? 0 : (b > 63 ? 63 : b);
}

/* Draw from softmax(z / T) cut to top-k and top-p.  scratch: vocab mgf_ranked; prob: vocab doubles, used as
 * floats.  Probabilities are float32 exponentials summed in double: a draw differs from exact arithmetic
 * only when its uniform falls within about 1e-7 of a boundary between two tokens. */
static inline int mgf_draw(const mgf_policy *p, const float *z, double u, double *prob, mgf_ranked *scratch)
{
    int vocab = p->vocab, v, n = 0;
    float *q = (float *)prob, top = -INFINITY, inverse = (float)(1.0 / p->temperature);
    double total = 0.0, threshold, cumulative = 0.0;
    top = mgf_max(z, vocab);
    if (top == -INFINITY)
        return MGF_EMPTY;
    memcpy(q, z, sizeof(float) * vocab);
    if (p->top_k > 0 && p->top_k < vocab) {
        for (v = 0; v < vocab; v++) {
            scratch[v].key = z[v];
            scratch[v].id = v;
        }
        mgf_select(scratch, vocab, p->top_k);
        for (v = p->top_k; v < vocab; v++)
            q[scratch[v].id] = -INFINITY;
    }
    for (v = 0; v < vocab; v++) /* -inf gives 0; no branch, so the loop vectorises (exp at about 2 ulp) */
        q[v] = mgf_exp_baseline((q[v] - top) * inverse);
    total = mgf_sum(q, vocab);
    if (p->top_p < 1.0) {
        /* Only the most probable tokens can be in the nucleus: bucket the probabilities by power of two, and
         * keep the buckets, from the top, until they hold a share of the total above top_p (with a margin for
         * rounding); every token of a later bucket is less probable than all of them, so the mass ranked
         * before it reaches top_p and it is cut, as a sort of the whole vocabulary would find. */
        double mass[64] = {0}, kept = 0.0;
        int last = 63;
        for (v = 0; v < vocab; v++)
            mass[mgf_bucket(q[v])] += q[v];
        for (int b = 0; b < 64; b++) {
            kept += mass[b];
            if (kept >= p->top_p * total * (1.0 + 1e-9)) {
                last = b;
                break;
            }
        }
        for (v = 0; v < vocab; v++)
            if (q[v] > 0.0f && mgf_bucket(q[v]) <= last) {
                scratch[n].key = q[v];
                scratch[n].id = v;
                n++;
            } else {
                q[v] = 0.0f;
            }
        qsort(scratch, n, sizeof(mgf_ranked), mgf_by_key_desc);
        for (v = 0; v < n; v++) {
            if (cumulative / total >= p->top_p)
                q[scratch[v].id] = 0.0f;
            cumulative += scratch[v].key;
        }
        total = mgf_sum(q, vocab);
    }
    threshold = (1.0 - u) * total;
    cumulative = 0.0;
    for (v = 0; v + 16 <= vocab; v += 16) { /* whole blocks first, then the token inside the block */
        double block = mgf_sum(q + v, 16);
        if (cumulative + block >= threshold)
            break;
        cumulative += block;
    }
    for (; v < vocab; v++) {
        cumulative += q[v];
        if (q[v] > 0.0f && cumulative >= threshold)
            return v;
    }
    for (v = vocab - 1; v >= 0; v--) /* rounding left the threshold above the last sum: the last allowed token */
        if (q[v] > 0.0f)
            return v;
    return MGF_EMPTY;
}

/* One row: check, constrain, choose, advance.  Returns the token, MGF_NONFINITE, or MGF_EMPTY with
 * *failed set to the index of the constraint that left no token (-1: the start token rule alone). */
static inline int mgf_choose(const mgf_policy *p, float *z, mgf_row_state *row, double u, double *prob,
                             mgf_ranked *scratch, int *failed)
{
    int v, token, which;
    for (v = 0; v < p->vocab; v++)
        if (!isfinite(z[v]))
            return MGF_NONFINITE;
    which = mgf_constrain(p, z, row);
    if (which) {
        *failed = which - 1;
        return MGF_EMPTY;
    }
    token = p->policy == MGF_GREEDY ? mgf_argmax(z, p->vocab) : mgf_draw(p, z, u, prob, scratch);
    if (token >= 0)
        mgf_row_advance(p, row, token);
    return token;
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

#endif

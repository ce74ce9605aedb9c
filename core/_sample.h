/* Choosing a token from one row of logits: the built-in constraints and policies, in C.
 *
 * One code path serves both ways of generating: the whole loop in C (Kernel.generate, no
 * GIL, one call for all steps) and the step-by-step Python loop (the `greedy` and `temperature`
 * policies call mgf_choose per row), so the same seed gives the same tokens on both.
 *
 * Semantics match the Python plugins: the start token is forbidden; the constraints apply in
 * the order given (a mask forbids tokens outright, `no-repeat` forbids the tokens of the pitch
 * that has just started max_repeats times in a row); temperature divides the logits, top-k keeps
 * the k largest (ties: lower id first), top-p keeps the most probable tokens whose probability
 * before them is < p (ranked by probability, ties: lower id first); the draw takes the first
 * token whose cumulative probability reaches (1 - u) * total, u uniform in [0, 1).
 */
#ifndef MGF_SAMPLE_H
#define MGF_SAMPLE_H

#include <math.h>
#include <stdlib.h>

enum { MGF_GREEDY = 0, MGF_TEMPERATURE = 1 };
enum { MGF_MASK = 0, MGF_NO_REPEAT = 1 };
/* mgf_choose returns a token id >= 0, or one of these */
enum { MGF_EMPTY = -1, MGF_NONFINITE = -2 };

typedef struct {
    int vocab, start;
    int policy;                   /* MGF_GREEDY or MGF_TEMPERATURE */
    double temperature, top_p;
    int top_k;
    int n_constraints;
    const int *kinds;             /* [n_constraints]: MGF_MASK or MGF_NO_REPEAT */
    const unsigned char *masks;   /* [n_constraints, vocab]: 1 = forbidden (rows of MGF_MASK constraints) */
    const int *pitches;           /* [vocab]: pitch a token starts, -1 for none (used by MGF_NO_REPEAT) */
    int max_repeats;
} mgf_policy;

/* Where a row stands for `no-repeat`: the pitch started last and how many times in a row. */
typedef struct {
    int last_pitch, run;
} mgf_row_state;

static inline void mgf_row_advance(const mgf_policy *p, mgf_row_state *row, int token)
{
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

/* Apply the constraints to z (in place); 0, or 1 + the index of the constraint that left no token. */
static inline int mgf_constrain(const mgf_policy *p, float *z, const mgf_row_state *row)
{
    z[p->start] = -INFINITY;
    for (int c = 0; c < p->n_constraints; c++) {
        if (p->kinds[c] == MGF_MASK) {
            const unsigned char *mask = p->masks + (long)c * p->vocab;
            for (int v = 0; v < p->vocab; v++)
                if (mask[v])
                    z[v] = -INFINITY;
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

/* Draw from softmax(z / T) cut to top-k and top-p.  scratch: vocab mgf_ranked; prob: vocab doubles. */
static inline int mgf_draw(const mgf_policy *p, const float *z, double u, double *prob, mgf_ranked *scratch)
{
    int vocab = p->vocab, v, n = 0;
    double top = -INFINITY, total = 0.0, threshold, cumulative = 0.0;
    for (v = 0; v < vocab; v++) {
        prob[v] = z[v] > -INFINITY ? (double)z[v] / p->temperature : -INFINITY;
        if (prob[v] > top)
            top = prob[v];
    }
    if (p->top_k > 0 && p->top_k < vocab) {
        for (v = 0; v < vocab; v++) {
            scratch[v].key = prob[v];
            scratch[v].id = v;
        }
        qsort(scratch, vocab, sizeof(mgf_ranked), mgf_by_key_desc);
        for (v = p->top_k; v < vocab; v++)
            prob[scratch[v].id] = -INFINITY;
    }
    for (v = 0; v < vocab; v++) {
        prob[v] = prob[v] > -INFINITY ? exp(prob[v] - top) : 0.0;
        total += prob[v];
    }
    if (p->top_p < 1.0) {
        for (v = 0; v < vocab; v++)
            if (prob[v] > 0.0) {
                scratch[n].key = prob[v];
                scratch[n].id = v;
                n++;
            }
        qsort(scratch, n, sizeof(mgf_ranked), mgf_by_key_desc);
        for (v = 0; v < n; v++) {
            if (cumulative / total >= p->top_p)
                prob[scratch[v].id] = 0.0;
            cumulative += scratch[v].key;
        }
        total = 0.0;
        for (v = 0; v < vocab; v++)
            total += prob[v];
    }
    threshold = (1.0 - u) * total;
    cumulative = 0.0;
    for (v = 0; v < vocab; v++) {
        cumulative += prob[v];
        if (prob[v] > 0.0 && cumulative >= threshold)
            return v;
    }
    for (v = vocab - 1; v >= 0; v--) /* rounding left the threshold above the last sum: the last allowed token */
        if (prob[v] > 0.0)
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

#endif

/* Logits processors and the choice of a token, in C: the same functions serve the generation loop in C (generate.pxi)
 * and the Python loop (Chooser, choose.pxi), so one seed gives the same tokens on both.
 *
 * Processors run in the order given (core/generation/processors.py documents each): temperature multiplies the
 * logits by 1/T (kept pending until probabilities are needed, so that the draw computes exp((z - max) / T) as the
 * draw always did), top-k keeps the k largest (ties: lower id first), top-p keeps the most probable tokens whose
 * probability before them is < p (ranked by probability, ties: lower id first), min-p keeps the tokens whose
 * probability is at least p times the largest, the repetition penalty divides a positive logit of each distinct
 * token of the row's last `window` tokens by the penalty and multiplies another (Hugging Face/CTRL).  Then greedy
 * takes the largest (ties: lowest id), or the draw takes the first token whose cumulative probability reaches
 * (1 - u) * total, u uniform in [0, 1).
 */
#ifndef MGF_CHOOSE_H
#define MGF_CHOOSE_H

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch.h" /* mgf_exp_baseline */
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* The loops over a vocabulary vectorise only without -fwrapv (which Python's build adds) and without
 * -ftrapping-math (a float comparison may not then be made branch-free), as in dispatch.h, whose exponential the
 * draw uses; nothing here relies on either. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("no-wrapv", "no-trapping-math")
#endif

enum { MGF_TEMPERATURE = 0, MGF_TOP_K, MGF_TOP_P, MGF_MIN_P, MGF_REPETITION_PENALTY };
enum { MGF_EMPTY = -1 }; /* mgf_choose: no allowed token */

typedef struct {
    int kind;
    double value; /* temperature T, top-p's or min-p's p, the penalty */
    int count;    /* top-k's k (0: off), the penalty's window (0: the whole history) */
} mgf_processor;

typedef struct {
    int n, greedy;
    const mgf_processor *ops;
} mgf_chooser;

typedef struct {
    double key;
    int id;
} mgf_ranked;

typedef struct { /* one thread's scratch, each [V] */
    float *q;
    mgf_ranked *ranked;
    unsigned char *seen;
} mgf_workspace;

/* Where a row's processing stands: the temperature not yet applied, whether q holds exp((z - max) * inverse) with its
 * sum, and, when `kept` > 0, that every token not in ranked[0:kept].id is forbidden (after a small top-k). */
typedef struct {
    float inverse;
    double scale;
    int valid;
    double total;
    int kept;
} mgf_pending;

static int mgf_by_key_desc(const void *a, const void *b)
{
    const mgf_ranked *x = (const mgf_ranked *)a, *y = (const mgf_ranked *)b;
    if (x->key != y->key)
        return x->key > y->key ? -1 : 1;
    return x->id - y->id;
}

/* Moves the k greatest of ranked[0:n] (by key, ties: lower id first) to ranked[0:k], in some order: quickselect. */
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

/* Whether x[0:n] holds no NaN and no infinity; no early exit, so that the loop vectorises. */
static inline int mgf_all_finite(const float *x, int n)
{
    int bad = 0;
    for (int i = 0; i < n; i++)
        bad |= !(fabsf(x[i]) <= FLT_MAX);
    return !bad;
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

/* q = exp((z - max z) * inverse), float32 exponentials summed in double: a draw differs from exact arithmetic only
 * when its uniform falls within about 1e-7 of a boundary between two tokens.  0 when every token is forbidden. */
static int mgf_probabilities(const float *z, int vocab, mgf_workspace *w, mgf_pending *p)
{
    if (p->kept > 0) { /* the same numbers, only where they can be other than 0 */
        float top = -INFINITY;
        for (int i = 0; i < p->kept; i++)
            top = z[w->ranked[i].id] > top ? z[w->ranked[i].id] : top;
        if (top == -INFINITY)
            return 0;
        memset(w->q, 0, sizeof(float) * vocab);
        for (int i = 0; i < p->kept; i++)
            w->q[w->ranked[i].id] = mgf_exp_baseline((z[w->ranked[i].id] - top) * p->inverse);
    } else {
        float top = mgf_max(z, vocab);
        if (top == -INFINITY)
            return 0;
        for (int v = 0; v < vocab; v++) /* -inf gives 0; no branch, so the loop vectorises (exp at about 2 ulp) */
            w->q[v] = mgf_exp_baseline((z[v] - top) * p->inverse);
    }
    p->total = mgf_sum(w->q, vocab);
    p->valid = 1;
    return 1;
}

/* The k-th greatest of z (ties: lower id first) as (*key, *id), for small k: one pass that keeps the k best so far in
 * order; as the scan goes up the ids, a later token is better than a kept one only if its logit is strictly greater
 * (a quickselect over the vocabulary took 1.4 us of a 6.5 us token at V = 389, k = 8, B = 64).  The pass sees only
 * the logits not below a floor: the k-th greatest of the maxima of blocks of MGF_TOP_K_BLOCK logits, found in a
 * vectorised pass, which k blocks reach, so that at least k logits do and none below it can be kept.  Without the
 * floor the pass's branch was mispredicted on the early logits of every row (mgf_kth: 16% of a midi batch of 64). */
#define MGF_TOP_K_SCAN 32
#define MGF_TOP_K_BLOCK 8

/* The k best of z[ids[i]] for i < count (ids ascending; all of z: ids NULL, count = vocab) kept in order, ties by
 * id; returns the k-th's key and id. */
static void mgf_kth_scan(const float *z, const int *ids_in, int count, int k, float *key, int *id)
{
    float keys[MGF_TOP_K_SCAN];
    int ids[MGF_TOP_K_SCAN], filled = 0;
    for (int i = 0; i < count; i++) {
        int v = ids_in ? ids_in[i] : i;
        float x = z[v];
        if (filled == k && !(x > keys[k - 1]))
            continue;
        int j = filled < k ? filled++ : k - 1;
        for (; j > 0 && x > keys[j - 1]; j--) {
            keys[j] = keys[j - 1];
            ids[j] = ids[j - 1];
        }
        keys[j] = x;
        ids[j] = v;
    }
    *key = keys[k - 1];
    *id = ids[k - 1];
}

/* The ids v of z, ascending, with !(z[v] < floor), into out[<= limit]; returns their number, or -1 past limit.  Four
 * logits per compare, sixteen per branch: few pass. */
static int mgf_not_below(const float *z, int vocab, float floor, int *out, int limit)
{
    int n = 0, v = 0;
#ifdef __SSE2__
    __m128 f = _mm_set1_ps(floor);
    for (; v + 16 <= vocab; v += 16) {
        int bits = _mm_movemask_ps(_mm_cmpnlt_ps(_mm_loadu_ps(z + v), f))
                   | _mm_movemask_ps(_mm_cmpnlt_ps(_mm_loadu_ps(z + v + 4), f)) << 4
                   | _mm_movemask_ps(_mm_cmpnlt_ps(_mm_loadu_ps(z + v + 8), f)) << 8
                   | _mm_movemask_ps(_mm_cmpnlt_ps(_mm_loadu_ps(z + v + 12), f)) << 12;
        for (; bits; bits &= bits - 1) {
            if (n == limit)
                return -1;
            out[n++] = v + __builtin_ctz((unsigned)bits);
        }
    }
#endif
    for (; v < vocab; v++)
        if (!(z[v] < floor)) {
            if (n == limit)
                return -1;
            out[n++] = v;
        }
    return n;
}

static void mgf_kth(const float *z, int vocab, int k, float *key, int *id)
{
    float maxima[256];
    int blocks = vocab / MGF_TOP_K_BLOCK, passed[256], count, unused;
    if (blocks >= 2 * k && blocks <= 256) {
        for (int b = 0; b < blocks; b++)
            maxima[b] = mgf_max(z + b * MGF_TOP_K_BLOCK, MGF_TOP_K_BLOCK);
        float floor;
        mgf_kth_scan(maxima, NULL, blocks, k, &floor, &unused);
        if ((count = mgf_not_below(z, vocab, floor, passed, 256)) >= 0) {
            mgf_kth_scan(z, passed, count, k, key, id);
            return;
        }
    }
    mgf_kth_scan(z, NULL, vocab, k, key, id);
}

static void mgf_cut(float *z, int v, mgf_workspace *w, mgf_pending *p)
{
    if (w->q && p->valid)
        w->q[v] = 0.0f;
    z[v] = -INFINITY;
}

static void mgf_top_k(float *z, int vocab, int k, mgf_workspace *w, mgf_pending *p)
{
    if (k <= 0 || k >= vocab)
        return;
    if (k <= MGF_TOP_K_SCAN) {
        float key;
        int id;
        mgf_kth(z, vocab, k, &key, &id);
        p->kept = 0;
        for (int v = 0; v < vocab; v++)
            if (z[v] < key || (z[v] == key && v > id))
                mgf_cut(z, v, w, p);
            else
                w->ranked[p->kept++].id = v; /* for mgf_probabilities */
    } else {
        for (int v = 0; v < vocab; v++) {
            w->ranked[v].key = z[v];
            w->ranked[v].id = v;
        }
        mgf_select(w->ranked, vocab, k);
        for (int v = k; v < vocab; v++)
            mgf_cut(z, w->ranked[v].id, w, p);
        p->kept = 0;
    }
    if (p->valid)
        p->total = mgf_sum(w->q, vocab);
}

/* Only the most probable tokens can be in the nucleus: bucket the probabilities by power of two, and keep the buckets,
 * from the top, until they hold a share of the total above p (with a margin for rounding); every token of a later
 * bucket is less probable than all of them, so the mass ranked before it reaches p and it is cut, as a sort of the
 * whole vocabulary would find. */
static void mgf_top_p(float *z, int vocab, double top_p, mgf_workspace *w, mgf_pending *p)
{
    double mass[64] = {0}, kept = 0.0, cumulative = 0.0;
    int last = 63, n = 0, v;
    float *q = w->q;
    if (top_p >= 1.0 || (!p->valid && !mgf_probabilities(z, vocab, w, p)))
        return;
    p->kept = 0; /* ranked is reused below */
    for (v = 0; v < vocab; v++)
        mass[mgf_bucket(q[v])] += q[v];
    for (int b = 0; b < 64; b++) {
        kept += mass[b];
        if (kept >= top_p * p->total * (1.0 + 1e-9)) {
            last = b;
            break;
        }
    }
    for (v = 0; v < vocab; v++)
        if (q[v] > 0.0f && mgf_bucket(q[v]) <= last) {
            w->ranked[n].key = q[v];
            w->ranked[n].id = v;
            n++;
        } else if (q[v] > 0.0f) {
            q[v] = 0.0f;
            z[v] = -INFINITY;
        }
    qsort(w->ranked, n, sizeof(mgf_ranked), mgf_by_key_desc);
    for (v = 0; v < n; v++) {
        if (cumulative / p->total >= top_p) {
            q[w->ranked[v].id] = 0.0f;
            z[w->ranked[v].id] = -INFINITY;
        }
        cumulative += w->ranked[v].key;
    }
    p->total = mgf_sum(q, vocab);
}

/* Probability at least min_p times the largest (whose q is exp(0) = 1). */
static void mgf_min_p(float *z, int vocab, double min_p, mgf_workspace *w, mgf_pending *p)
{
    if (min_p <= 0.0 || (!p->valid && !mgf_probabilities(z, vocab, w, p)))
        return;
    for (int v = 0; v < vocab; v++)
        if (w->q[v] < min_p) {
            w->q[v] = 0.0f;
            z[v] = -INFINITY;
        }
    p->total = mgf_sum(w->q, vocab);
}

static void mgf_repetition_penalty(float *z, const int32_t *history, int length, int window, double penalty,
                                   mgf_workspace *w)
{
    int first = window > 0 && window < length ? length - window : 0, i;
    float factor = (float)penalty;
    for (i = first; i < length; i++) {
        int t = history[i];
        if (w->seen[t])
            continue;
        w->seen[t] = 1;
        z[t] = z[t] > 0.0f ? z[t] / factor : z[t] * factor;
    }
    for (i = first; i < length; i++)
        w->seen[history[i]] = 0;
}

/* The processors over z (in place), the temperature left pending in *p. */
static void mgf_process_pending(const mgf_chooser *c, float *z, int vocab, const int32_t *history, int length,
                                mgf_workspace *w, mgf_pending *p)
{
    p->inverse = 1.0f;
    p->scale = 1.0;
    p->valid = 0;
    p->kept = 0;
    for (int i = 0; i < c->n; i++) {
        const mgf_processor *op = c->ops + i;
        switch (op->kind) {
        case MGF_TEMPERATURE:
            p->scale *= 1.0 / op->value;
            p->inverse = (float)p->scale;
            p->valid = 0;
            break;
        case MGF_TOP_K:
            mgf_top_k(z, vocab, op->count, w, p);
            break;
        case MGF_TOP_P:
            mgf_top_p(z, vocab, op->value, w, p);
            break;
        case MGF_MIN_P:
            mgf_min_p(z, vocab, op->value, w, p);
            break;
        case MGF_REPETITION_PENALTY:
            mgf_repetition_penalty(z, history, length, op->count, op->value, w);
            p->valid = 0;
            break;
        }
    }
}

/* The processors over z, in place, the temperature applied: what a policy that is not built in then sees. */
static void mgf_process(const mgf_chooser *c, float *z, int vocab, const int32_t *history, int length, mgf_workspace *w)
{
    mgf_pending p;
    mgf_process_pending(c, z, vocab, history, length, w, &p);
    if (p.inverse != 1.0f)
        for (int v = 0; v < vocab; v++)
            z[v] *= p.inverse;
}

/* The processors, then greedy or the draw with uniform u: a token, or MGF_EMPTY. */
static int mgf_choose(const mgf_chooser *c, float *z, int vocab, const int32_t *history, int length, double u,
                      mgf_workspace *w)
{
    mgf_pending p;
    int v;
    mgf_process_pending(c, z, vocab, history, length, w, &p);
    if (c->greedy) {
        int best = 0;
        for (v = 1; v < vocab; v++)
            if (z[v] > z[best])
                best = v;
        return z[best] > -INFINITY ? best : MGF_EMPTY;
    }
    if (!p.valid && !mgf_probabilities(z, vocab, w, &p))
        return MGF_EMPTY;
    const float *q = w->q;
    double threshold = (1.0 - u) * p.total, cumulative = 0.0;
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

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

#endif

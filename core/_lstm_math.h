/* The step's arithmetic, written in plain C loops that GCC vectorises.
 *
 * Matrix products: the batches a sampler runs (1 to 64 rows) are too short for BLAS, whose
 * sgemm/sgemv reached 30-80 GFLOP/s here against 110 for these register-tiled loops (measured
 * on the 2-core AMD EPYC development machine, see benchmarks/RESULTS.md).  Each tile keeps 16
 * vector accumulators in registers while one pass over k streams the weights once.
 *
 * The cell: expf from libm is scalar and dominated a step at small H, so exp is evaluated with
 * the Cephes polynomial (about 2 ulp in float32), branch-free.  Every looping function is
 * compiled for AVX-512, AVX2 and baseline x86-64, picked at load time (target_clones).
 */
#ifndef MGF_LSTM_MATH_H
#define MGF_LSTM_MATH_H

#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define MGF_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MGF_CLONES
#endif
#define MGF_INLINE static inline __attribute__((always_inline))

/* Python builds extensions with -fwrapv, which stops GCC from vectorising these loops (the
 * one-row product ran 4.5x slower); nothing here relies on signed overflow wrapping. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("no-wrapv")
#endif

/* C[r, j0:j0+WIDTH] += X[r, :k] @ W[:k, j0:j0+WIDTH] for r < R, accumulating in registers. */
#define MGF_TILE(R, WIDTH)                                                                                     \
    MGF_INLINE void mgf_tile_##R(int j0, int k, const float *restrict x, long ldx, const float *restrict w,    \
                                 long ldw, float *restrict c, long ldc)                                        \
    {                                                                                                          \
        float acc[R][WIDTH];                                                                                   \
        for (int r = 0; r < R; r++)                                                                            \
            for (int t = 0; t < WIDTH; t++)                                                                    \
                acc[r][t] = c[r * ldc + j0 + t];                                                               \
        for (int p = 0; p < k; p++) {                                                                          \
            const float *wp = w + (long)p * ldw + j0;                                                          \
            for (int r = 0; r < R; r++) {                                                                      \
                float xv = x[r * ldx + p];                                                                     \
                for (int t = 0; t < WIDTH; t++)                                                                \
                    acc[r][t] += xv * wp[t];                                                                   \
            }                                                                                                  \
        }                                                                                                      \
        for (int r = 0; r < R; r++)                                                                            \
            for (int t = 0; t < WIDTH; t++)                                                                    \
                c[r * ldc + j0 + t] = acc[r][t];                                                               \
    }
MGF_TILE(8, 32)
MGF_TILE(4, 64)
MGF_TILE(2, 128)

/* c[j0:j0+WIDTH] += x[p:p+4] @ W[p:p+4, j0:j0+WIDTH]: four rows of W per pass over c. */
#define MGF_ROW_TILE(WIDTH)                                                                                    \
    MGF_INLINE void mgf_row_tile_##WIDTH(int j0, int p, const float *restrict x, const float *restrict w,      \
                                         long ldw, float *restrict c)                                          \
    {                                                                                                          \
        float acc[WIDTH];                                                                                      \
        for (int t = 0; t < WIDTH; t++)                                                                        \
            acc[t] = c[j0 + t];                                                                                \
        for (int q = 0; q < 4; q++) {                                                                          \
            float xv = x[p + q];                                                                               \
            const float *wp = w + (long)(p + q) * ldw + j0;                                                    \
            for (int t = 0; t < WIDTH; t++)                                                                    \
                acc[t] += xv * wp[t];                                                                          \
        }                                                                                                      \
        for (int t = 0; t < WIDTH; t++)                                                                        \
            c[j0 + t] = acc[t];                                                                                \
    }
MGF_ROW_TILE(64)
MGF_ROW_TILE(16)

/* One row, c[:n] += x[:k] @ W[:k, :n]: the weights stream once, four rows at a time, in order;
 * memory-bound, which is why it beats re-reading W in 256-column tiles.  Not inlined: inside
 * mgf_matmul_acc GCC allocated its registers worse (16.3 instead of 13.0 us at 1024 x 256). */
MGF_CLONES __attribute__((noinline))
static void mgf_vector_acc(int n, int k, const float *restrict x, const float *restrict w, long ldw, float *restrict c)
{
    int p = 0;
    for (; p + 4 <= k; p += 4) {
        int j = 0;
        for (; j + 64 <= n; j += 64)
            mgf_row_tile_64(j, p, x, w, ldw, c);
        for (; j + 16 <= n; j += 16)
            mgf_row_tile_16(j, p, x, w, ldw, c);
        for (; j < n; j++)
            for (int q = p; q < p + 4; q++)
                c[j] += x[q] * w[(long)q * ldw + j];
    }
    for (; p < k; p++)
        for (int j = 0; j < n; j++)
            c[j] += x[p] * w[(long)p * ldw + j];
}

/* Rows [0, rows) in blocks of R, whole tiles of WIDTH columns; the columns past the last whole
 * tile go row by row.  Blocks go column tile by column tile, so a tile's slice of W
 * (k x WIDTH floats) is reused from cache by every block. */
#define MGF_BLOCKS(R, WIDTH)                                                                                   \
    {                                                                                                          \
        int blocks = rows / R, whole = n / WIDTH * WIDTH;                                                      \
        for (int j = 0; j < whole; j += WIDTH)                                                                 \
            for (int b = 0; b < blocks; b++)                                                                   \
                mgf_tile_##R(j, k, x + (long)R * b * ldx, ldx, w, ldw, c + (long)R * b * ldc, ldc);            \
        for (int r = 0; r < R * blocks; r++)                                                                   \
            mgf_vector_acc(n - whole, k, x + r * ldx, w + whole, ldw, c + r * ldc + whole);                    \
        x += (long)R * blocks * ldx;                                                                           \
        c += (long)R * blocks * ldc;                                                                           \
        rows -= R * blocks;                                                                                    \
    }

/* Row-major C[rows, n] += X[rows, k] @ W[k, n] (row strides ldx, ldw, ldc).  Tiles hold 16
 * vector accumulators (8 x 32, 4 x 64 or 2 x 128 floats); a last single row streams W. */
MGF_CLONES
static void mgf_matmul_acc(int rows, int n, int k, const float *restrict x, long ldx, const float *restrict w,
                           long ldw, float *restrict c, long ldc)
{
    MGF_BLOCKS(8, 32)
    MGF_BLOCKS(4, 64)
    MGF_BLOCKS(2, 128)
    if (rows == 1)
        mgf_vector_acc(n, k, x, w, ldw, c);
}

MGF_INLINE float mgf_exp(float x)
{
    const float round_magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    float n = (x * 1.44269504088896341f + round_magic) - round_magic;
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

MGF_INLINE float mgf_sigmoid(float x) { return 1.0f / (1.0f + mgf_exp(-x)); }

MGF_INLINE float mgf_tanh(float x) { return 2.0f / (1.0f + mgf_exp(-2.0f * x)) - 1.0f; }

/* One LSTM cell update for `rows` sequences and `units` hidden units.
 * Row b of `gates` holds the pre-activations [i | f | g | o], `units` each; c and h are updated
 * in place (c_new = sig(f) c + sig(i) tanh(g), h = sig(o) tanh(c_new)) and h is also copied to
 * `h_out` (the next layer's input slot) when that is not NULL. */
MGF_CLONES
static void mgf_lstm_cell(int rows, int units, const float *restrict gates, long gate_stride, float *restrict c,
                          long c_stride, float *restrict h, long h_stride, float *restrict h_out, long out_stride)
{
    for (int b = 0; b < rows; b++) {
        const float *gi = gates + b * gate_stride;
        const float *gf = gi + units, *gg = gi + 2 * units, *go = gi + 3 * units;
        float *cb = c + b * c_stride, *hb = h + b * h_stride;
        for (int j = 0; j < units; j++) {
            float cn = mgf_sigmoid(gf[j]) * cb[j] + mgf_sigmoid(gi[j]) * mgf_tanh(gg[j]);
            cb[j] = cn;
            hb[j] = mgf_sigmoid(go[j]) * mgf_tanh(cn);
        }
        if (h_out)
            memcpy(h_out + b * out_stride, hb, sizeof(float) * units);
    }
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

#endif

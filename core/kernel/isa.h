/* The step's arithmetic for one instruction set, in plain C loops that GCC vectorises.
 *
 * dispatch.h includes this file once per instruction set, with MGF_ISA_NAME(name) giving
 * each function its suffixed name and #pragma GCC target the instructions; the tile sizes
 * below are chosen so that a tile's accumulators fit the registers of that set (AVX-512: 32
 * vectors of 16 floats; AVX2: 16 of 8; SSE2: 16 of 4), since a spilled accumulator costs a
 * store and a load per multiply-add.
 *
 * Matrix products: the batches a sampler runs (1 to 64 rows) are too short for BLAS, whose
 * sgemm/sgemv reached 30-80 GFLOP/s here against 110 for these register-tiled loops (measured
 * on the 2-core AMD EPYC development machine).  Each tile keeps its accumulators in
 * registers while one pass over k streams the weights once.
 *
 * The cell: expf from libm is scalar and dominated a step at small H, so exp is evaluated with
 * the Cephes polynomial (about 2 ulp in float32), branch-free.  The AVX-512 builds replace
 * these cells with isa_avx512.h's, in intrinsics.
 */

/* fp32 tiles R x WIDTH (three shapes, from many rows to few) and the one-row strip width. */
#if MGF_ISA_LEVEL == 2
#define MGF_TA 8, 32
#define MGF_TB 4, 64
#define MGF_TC 2, 128
#define MGF_ROW_WIDTH 64
#define MGF_ROW_K 8
#define MGF_Q_ROWS 4
#elif MGF_ISA_LEVEL == 1
#define MGF_TA 4, 24
#define MGF_TB 2, 48
#define MGF_TC 1, 96
#define MGF_ROW_WIDTH 64
#define MGF_ROW_K 4
#define MGF_Q_ROWS 4
#else
#define MGF_TA 4, 12
#define MGF_TB 2, 24
#define MGF_TC 1, 48
#define MGF_ROW_WIDTH 32
#define MGF_ROW_K 4
#define MGF_Q_ROWS 2
#endif

/* C[r, j0:j0+WIDTH] += X[r, :k] @ W[:k, j0:j0+WIDTH] for r < R, accumulating in registers.  The slice of W
 * eight rows ahead is prefetched: its rows lie a weight row apart (8 KiB at n = 2048), a stride the hardware
 * prefetchers do not follow, and a slice the first block reads from L3 had each row's lines wait for memory
 * (8 x 512 @ 512 x 2048: 215-241 against 163-171 us with the prefetch). */
#define MGF_TILE_FN(R, WIDTH) MGF_ISA_NAME(mgf_tile_##R##x##WIDTH)
#define MGF_TILE(R, WIDTH)                                                                                     \
    MGF_INLINE void MGF_TILE_FN(R, WIDTH)(int j0, int k, const float *restrict x, long ldx,                    \
                                           const float *restrict w, long ldw, float *restrict c, long ldc)     \
    {                                                                                                          \
        float acc[R][WIDTH];                                                                                   \
        for (int r = 0; r < R; r++)                                                                            \
            for (int t = 0; t < WIDTH; t++)                                                                    \
                acc[r][t] = c[r * ldc + j0 + t];                                                               \
        for (int p = 0; p < k; p++) {                                                                          \
            const float *wp = w + (long)p * ldw + j0;                                                          \
            for (int t = 0; t < WIDTH; t += 16)                                                                \
                __builtin_prefetch(wp + 8 * ldw + t, 0, 3);                                                    \
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
#define MGF_TILE_(shape) MGF_TILE(shape)
MGF_TILE_(MGF_TA)
MGF_TILE_(MGF_TB)
MGF_TILE_(MGF_TC)

/* c[j0:j0+WIDTH] += x[p:p+MGF_ROW_K] @ W[p:p+MGF_ROW_K, j0:j0+WIDTH]: MGF_ROW_K rows of W per pass over c. */
#define MGF_ROW_TILE(WIDTH)                                                                                    \
    MGF_INLINE void MGF_ISA_NAME(mgf_row_tile_##WIDTH)(int j0, int p, const float *restrict x,                 \
                                                       const float *restrict w, long ldw, float *restrict c)   \
    {                                                                                                          \
        float acc[WIDTH];                                                                                      \
        for (int t = 0; t < WIDTH; t++)                                                                        \
            acc[t] = c[j0 + t];                                                                                \
        for (int q = 0; q < MGF_ROW_K; q++) {                                                                  \
            float xv = x[p + q];                                                                               \
            const float *wp = w + (long)(p + q) * ldw + j0;                                                    \
            for (int t = 0; t < WIDTH; t++)                                                                    \
                acc[t] += xv * wp[t];                                                                          \
        }                                                                                                      \
        for (int t = 0; t < WIDTH; t++)                                                                        \
            c[j0 + t] = acc[t];                                                                                \
    }
#define MGF_ROW_TILE_(width) MGF_ROW_TILE(width)
#define MGF_ROW_TILE_FN_(width) MGF_ISA_NAME(mgf_row_tile_##width)
#define MGF_ROW_TILE_FN(width) MGF_ROW_TILE_FN_(width)
MGF_ROW_TILE_(MGF_ROW_WIDTH)
MGF_ROW_TILE(16)

/* One row, c[:n] += x[:k] @ W[:k, :n]: the weights stream once, four rows at a time, in order;
 * memory-bound, which is why it beats re-reading W in column tiles.  Not inlined: inside the
 * matmul GCC allocated its registers worse (16.3 instead of 13.0 us at 1024 x 256). */
__attribute__((noinline)) static void MGF_ISA_NAME(mgf_vector_acc)(int n, int k, const float *restrict x,
                                                                  const float *restrict w, long ldw,
                                                                  float *restrict c)
{
    int p = 0;
    for (; p + MGF_ROW_K <= k; p += MGF_ROW_K) {
        int j = 0;
        for (; j + MGF_ROW_WIDTH <= n; j += MGF_ROW_WIDTH)
            MGF_ROW_TILE_FN(MGF_ROW_WIDTH)(j, p, x, w, ldw, c);
        for (; j + 16 <= n; j += 16)
            MGF_ISA_NAME(mgf_row_tile_16)(j, p, x, w, ldw, c);
        for (; j < n; j++)
            for (int q = p; q < p + MGF_ROW_K; q++)
                c[j] += x[q] * w[(long)q * ldw + j];
    }
    for (; p < k; p++)
        for (int j = 0; j < n; j++)
            c[j] += x[p] * w[(long)p * ldw + j];
}

/* Rows [0, rows) in blocks of R, whole tiles of WIDTH columns; the columns past the last whole
 * tile go row by row.  Blocks go column tile by column tile, so a tile's slice of W is reused
 * from L1 by every block, and k goes in chunks of 8192 / WIDTH, so that a slice (32 KiB) fits L1:
 * at k = 512 a whole slice did not, and every block read it from L2 with a stride of a weight row
 * (64 x 512 @ 512 x 2048 ran at 77 GFLOP/s against 140 for k = 256).  The chunks add in the
 * order of one pass, so the sums are the same. */
#define MGF_BLOCKS(R, WIDTH)                                                                                   \
    {                                                                                                          \
        int blocks = rows / R, whole = n / WIDTH * WIDTH;                                                      \
        for (int p0 = 0; p0 < k; p0 += 8192 / WIDTH) {                                                         \
            int chunk = k - p0 < 8192 / WIDTH ? k - p0 : 8192 / WIDTH;                                         \
            for (int j = 0; j < whole; j += WIDTH)                                                             \
                for (int b = 0; b < blocks; b++)                                                               \
                    MGF_TILE_FN(R, WIDTH)(j, chunk, x + (long)R * b * ldx + p0, ldx, w + (long)p0 * ldw, ldw,  \
                                          c + (long)R * b * ldc, ldc);                                         \
        }                                                                                                      \
        for (int r = 0; r < R * blocks; r++)                                                                   \
            MGF_ISA_NAME(mgf_vector_acc)(n - whole, k, x + r * ldx, w + whole, ldw, c + r * ldc + whole);      \
        x += (long)R * blocks * ldx;                                                                           \
        c += (long)R * blocks * ldc;                                                                           \
        rows -= R * blocks;                                                                                    \
    }
#define MGF_BLOCKS_(shape) MGF_BLOCKS(shape)

/* c[r, :cols] += acc[r, :cols] for r < rows, acc [rows][16]. */
MGF_INLINE void MGF_ISA_NAME(mgf_add_tile)(int rows, int cols, const float *restrict acc, float *restrict c,
                                           long ldc)
{
    for (int r = 0; r < rows; r++)
        for (int t = 0; t < cols; t++)
            c[r * ldc + t] += acc[r * 16 + t];
}

/* Written with GCC vector types of the register's width (MGF_LANES floats), the tiles vectorise
 * along the columns; as plain loops over rows and columns GCC vectorised along the rows and
 * broadcast every weight (20x slower), and with 16-lane types on AVX2 it went through memory. */
#if MGF_ISA_LEVEL == 2
#define MGF_LANES 16
#elif MGF_ISA_LEVEL == 1
#define MGF_LANES 8
#else
#define MGF_LANES 4
#endif
#define MGF_VECTORS (16 / MGF_LANES)
typedef float MGF_ISA_NAME(mgf_floats) __attribute__((vector_size(4 * MGF_LANES), aligned(4), may_alias));
typedef int32_t MGF_ISA_NAME(mgf_ints) __attribute__((vector_size(4 * MGF_LANES), aligned(4), may_alias));

/* C[r, :cols] += X[r, :k] @ T[:k, :cols] for r < R, T a zero-padded [k, MGF_TAIL] panel (see
 * mgf_matrix): the last columns of an fp32 matrix in vector tiles, not scalar loops over strided
 * rows (6% of a step at V = 130, B = 8 or 64). */
#define MGF_TAIL_TILE(R)                                                                                       \
    MGF_INLINE void MGF_ISA_NAME(mgf_tail_tile_##R)(int cols, int k, const float *restrict x, long ldx,        \
                                                    const float *restrict tail, float *restrict c, long ldc)   \
    {                                                                                                          \
        typedef MGF_ISA_NAME(mgf_floats) floats;                                                               \
        floats acc[R][MGF_VECTORS];                                                                            \
        for (int r = 0; r < R; r++)                                                                            \
            for (int v = 0; v < MGF_VECTORS; v++)                                                              \
                acc[r][v] = (floats){0};                                                                       \
        for (int p = 0; p < k; p++) {                                                                          \
            floats w[MGF_VECTORS];                                                                             \
            for (int v = 0; v < MGF_VECTORS; v++)                                                              \
                w[v] = *(const floats *)(tail + (long)p * MGF_TAIL + v * MGF_LANES);                           \
            for (int r = 0; r < R; r++) {                                                                      \
                float xv = x[r * ldx + p];                                                                     \
                for (int v = 0; v < MGF_VECTORS; v++)                                                          \
                    acc[r][v] += xv * w[v];                                                                    \
            }                                                                                                  \
        }                                                                                                      \
        MGF_ISA_NAME(mgf_add_tile)(R, cols, (const float *)acc, c, ldc);                                       \
    }
#define MGF_TAIL_TILE_(r) MGF_TAIL_TILE(r)
#define MGF_TAIL_TILE_FN_(r) MGF_ISA_NAME(mgf_tail_tile_##r)
#define MGF_TAIL_TILE_FN(r) MGF_TAIL_TILE_FN_(r)
MGF_TAIL_TILE_(MGF_Q_ROWS)
MGF_TAIL_TILE(1)

/* C[:rows, :cols] += X[:rows, :k] @ T (see the tiles above).  Not inlined, as mgf_vector_acc. */
__attribute__((noinline)) static void MGF_ISA_NAME(mgf_tail_acc)(int rows, int cols, int k, const float *restrict x,
                                                                long ldx, const float *restrict tail,
                                                                float *restrict c, long ldc)
{
    int r = 0;
    for (; r + MGF_Q_ROWS <= rows; r += MGF_Q_ROWS)
        MGF_TAIL_TILE_FN(MGF_Q_ROWS)(cols, k, x + (long)r * ldx, ldx, tail, c + (long)r * ldc, ldc);
    for (; r < rows; r++)
        MGF_ISA_NAME(mgf_tail_tile_1)(cols, k, x + (long)r * ldx, ldx, tail, c + (long)r * ldc, ldc);
}

/* Row-major C[rows, n] += X[rows, k] @ W[k, n] (row strides ldx, ldw, ldc); with `tail` (see
 * mgf_matrix), its last n % MGF_TAIL columns come from there. */
static void MGF_ISA_NAME(mgf_matmul_f32)(int rows, int n, int k, const float *restrict x, long ldx,
                                         const float *restrict w, long ldw, const float *restrict tail,
                                         float *restrict c, long ldc)
{
    int cols = tail ? n % MGF_TAIL : 0;
    if (cols) {
        n -= cols;
        MGF_ISA_NAME(mgf_tail_acc)(rows, cols, k, x, ldx, tail, c + n, ldc);
    }
    MGF_BLOCKS_(MGF_TA)
    MGF_BLOCKS_(MGF_TB)
    MGF_BLOCKS_(MGF_TC)
    for (int r = 0; r < rows; r++)
        MGF_ISA_NAME(mgf_vector_acc)(n, k, x + r * ldx, w, ldw, c + r * ldc);
}

/* Reduced precision, portable loops (the AVX-512 BF16/VNNI versions are in isa_avx512.h).
 * Weights are packed in panels of MGF_PANEL columns, each [k/2][64] (bf16 pairs) or [k/4][64]
 * (int8 quads) 32-bit words; a tile covers R rows and 16 columns of one panel. */
MGF_INLINE float MGF_ISA_NAME(mgf_bf16_lo)(uint32_t word)
{
    uint32_t bits = word << 16;
    float value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

MGF_INLINE float MGF_ISA_NAME(mgf_bf16_hi)(uint32_t word)
{
    uint32_t bits = word & 0xFFFF0000u;
    float value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

#define MGF_BF16_TILE(R)                                                                                       \
    MGF_INLINE void MGF_ISA_NAME(mgf_bf16_tile_##R)(int cols, int pairs, const uint32_t *restrict x, long ldq, \
                                                    const uint32_t *restrict w, float *restrict c, long ldc)   \
    {                                                                                                          \
        typedef MGF_ISA_NAME(mgf_floats) floats;                                                               \
        typedef MGF_ISA_NAME(mgf_ints) ints;                                                                   \
        floats acc[R][MGF_VECTORS];                                                                            \
        for (int r = 0; r < R; r++)                                                                            \
            for (int v = 0; v < MGF_VECTORS; v++)                                                              \
                acc[r][v] = (floats){0};                                                                       \
        for (int q = 0; q < pairs; q++) {                                                                      \
            floats even[MGF_VECTORS], odd[MGF_VECTORS];                                                        \
            for (int v = 0; v < MGF_VECTORS; v++) {                                                            \
                ints words = *(const ints *)(w + (long)q * MGF_PANEL + v * MGF_LANES);                         \
                even[v] = (floats)(words << 16);                                                               \
                odd[v] = (floats)(words & (int32_t)0xFFFF0000u);                                               \
            }                                                                                                  \
            for (int r = 0; r < R; r++) {                                                                      \
                float x0 = MGF_ISA_NAME(mgf_bf16_lo)(x[r * ldq + q]);                                          \
                float x1 = MGF_ISA_NAME(mgf_bf16_hi)(x[r * ldq + q]);                                          \
                for (int v = 0; v < MGF_VECTORS; v++) {                                                        \
                    acc[r][v] += x0 * even[v];                                                                 \
                    acc[r][v] += x1 * odd[v];                                                                  \
                }                                                                                              \
            }                                                                                                  \
        }                                                                                                      \
        MGF_ISA_NAME(mgf_add_tile)(R, cols, (const float *)acc, c, ldc);                                       \
    }
#define MGF_BF16_TILE_(r) MGF_BF16_TILE(r)
#define MGF_BF16_TILE_FN_(r) MGF_ISA_NAME(mgf_bf16_tile_##r)
#define MGF_BF16_TILE_FN(r) MGF_BF16_TILE_FN_(r)
MGF_BF16_TILE_(MGF_Q_ROWS)
MGF_BF16_TILE(1)

/* C[rows, n] += X @ W for bf16 pairs X [rows][pairs] (row stride ldq) and W in panels. */
static void MGF_ISA_NAME(mgf_matmul_bf16)(int rows, int n, int pairs, const uint32_t *restrict x, long ldq,
                                          const uint32_t *restrict w, float *restrict c, long ldc)
{
    for (int j = 0; j < n; j += 16) {
        const uint32_t *panel = w + (long)(j / MGF_PANEL) * pairs * MGF_PANEL + j % MGF_PANEL;
        int cols = n - j < 16 ? n - j : 16, r = 0;
        for (; r + MGF_Q_ROWS <= rows; r += MGF_Q_ROWS)
            MGF_BF16_TILE_FN(MGF_Q_ROWS)(cols, pairs, x + r * ldq, ldq, panel, c + r * ldc + j, ldc);
        for (; r < rows; r++)
            MGF_ISA_NAME(mgf_bf16_tile_1)(cols, pairs, x + r * ldq, ldq, panel, c + r * ldc + j, ldc);
    }
}

#define MGF_INT8_TILE(R)                                                                                       \
    MGF_INLINE void MGF_ISA_NAME(mgf_int8_tile_##R)(int cols, int quads, const uint32_t *restrict x, long ldq, \
                                                    const float *restrict x_scale, const uint32_t *restrict w, \
                                                    const float *restrict w_scale, float *restrict c, long ldc) \
    {                                                                                                          \
        typedef MGF_ISA_NAME(mgf_ints) ints;                                                                   \
        ints acc[R][MGF_VECTORS];                                                                              \
        for (int r = 0; r < R; r++)                                                                            \
            for (int v = 0; v < MGF_VECTORS; v++)                                                              \
                acc[r][v] = (ints){0};                                                                         \
        for (int q = 0; q < quads; q++) {                                                                      \
            ints bytes[4][MGF_VECTORS];                                                                        \
            for (int v = 0; v < MGF_VECTORS; v++) {                                                            \
                ints words = *(const ints *)(w + (long)q * MGF_PANEL + v * MGF_LANES);                         \
                bytes[0][v] = (words << 24) >> 24;                                                             \
                bytes[1][v] = (words << 16) >> 24;                                                             \
                bytes[2][v] = (words << 8) >> 24;                                                              \
                bytes[3][v] = words >> 24;                                                                     \
            }                                                                                                  \
            for (int r = 0; r < R; r++) {                                                                      \
                uint32_t xq = x[r * ldq + q];                                                                  \
                for (int b = 0; b < 4; b++) {                                                                  \
                    int32_t xb = (int32_t)((xq >> (8 * b)) & 0xFF) - 128;                                      \
                    for (int v = 0; v < MGF_VECTORS; v++)                                                      \
                        acc[r][v] += xb * bytes[b][v];                                                         \
                }                                                                                              \
            }                                                                                                  \
        }                                                                                                      \
        float values[R][16];                                                                                   \
        const int32_t *exact = (const int32_t *)acc;                                                           \
        for (int r = 0; r < R; r++)                                                                            \
            for (int t = 0; t < 16; t++)                                                                       \
                values[r][t] = (float)exact[r * 16 + t] * (x_scale[r] * w_scale[t]);                           \
        MGF_ISA_NAME(mgf_add_tile)(R, cols, &values[0][0], c, ldc);                                            \
    }
#define MGF_INT8_TILE_(r) MGF_INT8_TILE(r)
#define MGF_INT8_TILE_FN_(r) MGF_ISA_NAME(mgf_int8_tile_##r)
#define MGF_INT8_TILE_FN(r) MGF_INT8_TILE_FN_(r)
MGF_INT8_TILE_(MGF_Q_ROWS)
MGF_INT8_TILE(1)

/* C[rows, n] += dequantised X @ W for u8 quads X [rows][quads] (value - 128, times x_scale[row])
 * and s8 quads W in panels (times w_scale[column]).  col_sums is used by the VNNI version only. */
static void MGF_ISA_NAME(mgf_matmul_int8)(int rows, int n, int quads, const uint32_t *restrict x, long ldq,
                                          const float *restrict x_scale, const uint32_t *restrict w,
                                          const float *restrict w_scale, const int32_t *restrict col_sums,
                                          float *restrict c, long ldc)
{
    (void)col_sums;
    for (int j = 0; j < n; j += 16) {
        const uint32_t *panel = w + (long)(j / MGF_PANEL) * quads * MGF_PANEL + j % MGF_PANEL;
        int cols = n - j < 16 ? n - j : 16, r = 0;
        for (; r + MGF_Q_ROWS <= rows; r += MGF_Q_ROWS)
            MGF_INT8_TILE_FN(MGF_Q_ROWS)(cols, quads, x + r * ldq, ldq, x_scale + r, panel, w_scale + j,
                                         c + r * ldc + j, ldc);
        for (; r < rows; r++)
            MGF_ISA_NAME(mgf_int8_tile_1)(cols, quads, x + r * ldq, ldq, x_scale + r, panel, w_scale + j,
                                          c + r * ldc + j, ldc);
    }
}

/* e^x, about 2 ulp; 0 below -87 (where e^x leaves float's normal range), so that -inf gives 0. */
MGF_INLINE float MGF_ISA_NAME(mgf_exp)(float x)
{
    const float round_magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float c = x < -87.0f ? -87.0f : x;
    c = c > 88.0f ? 88.0f : c;
    float n = (c * 1.44269504088896341f + round_magic) - round_magic;
    float r = c - n * 0.693359375f;
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
    return x < -87.0f ? 0.0f : p * scale;
}

MGF_INLINE float MGF_ISA_NAME(mgf_sigmoid)(float x) { return 1.0f / (1.0f + MGF_ISA_NAME(mgf_exp)(-x)); }

MGF_INLINE float MGF_ISA_NAME(mgf_tanh)(float x) { return 2.0f / (1.0f + MGF_ISA_NAME(mgf_exp)(-2.0f * x)) - 1.0f; }

/* One LSTM cell update for `rows` sequences and `units` hidden units.
 * Row b of `gates` holds the pre-activations [i | f | g | o], `units` each; c and h are updated
 * in place (c_new = sig(f) c + sig(i) tanh(g), h = sig(o) tanh(c_new)) and h is also copied to
 * `h_out` (the next layer's input slot) when that is not NULL. */
static void MGF_ISA_NAME(mgf_lstm_cell)(int rows, int units, const float *restrict gates, long gate_stride,
                                        float *restrict c, long c_stride, float *restrict h, long h_stride,
                                        float *restrict h_out, long out_stride)
{
    for (int b = 0; b < rows; b++) {
        const float *gi = gates + b * gate_stride;
        const float *gf = gi + units, *gg = gi + 2 * units, *go = gi + 3 * units;
        float *cb = c + b * c_stride, *hb = h + b * h_stride;
        for (int j = 0; j < units; j++) {
            float cn = MGF_ISA_NAME(mgf_sigmoid)(gf[j]) * cb[j]
                       + MGF_ISA_NAME(mgf_sigmoid)(gi[j]) * MGF_ISA_NAME(mgf_tanh)(gg[j]);
            cb[j] = cn;
            hb[j] = MGF_ISA_NAME(mgf_sigmoid)(go[j]) * MGF_ISA_NAME(mgf_tanh)(cn);
        }
        if (h_out)
            memcpy(h_out + b * out_stride, hb, sizeof(float) * units);
    }
}

/* One GRU cell update (Keras reset_after=True) for `rows` sequences and `units` hidden units.
 * Row b of `x_gates` and `h_gates` holds the input and recurrent pre-activations [z | r | h],
 * `units` each, biases included: z = sig(xz + hz), r = sig(xr + hr), n = tanh(xh + r hh) and
 * h = z h_old + (1 - z) n, written to `h` (h_old and h: row stride h_stride) and to `h_out`
 * when that is not NULL. */
static void MGF_ISA_NAME(mgf_gru_cell)(int rows, int units, const float *restrict x_gates,
                                       const float *restrict h_gates, long gate_stride, const float *restrict h_old,
                                       float *restrict h, long h_stride, float *restrict h_out, long out_stride)
{
    for (int b = 0; b < rows; b++) {
        const float *xz = x_gates + b * gate_stride, *hz = h_gates + b * gate_stride;
        const float *xr = xz + units, *hr = hz + units, *xh = xz + 2 * units, *hh = hz + 2 * units;
        const float *old = h_old + b * h_stride;
        float *hb = h + b * h_stride;
        for (int j = 0; j < units; j++) {
            float z = MGF_ISA_NAME(mgf_sigmoid)(xz[j] + hz[j]);
            float r = MGF_ISA_NAME(mgf_sigmoid)(xr[j] + hr[j]);
            float n = MGF_ISA_NAME(mgf_tanh)(xh[j] + r * hh[j]);
            hb[j] = z * old[j] + (1.0f - z) * n;
        }
        if (h_out)
            memcpy(h_out + b * out_stride, hb, sizeof(float) * units);
    }
}

/* Activations of one product, per row: bf16 pairs (round to nearest even) ... */
static void MGF_ISA_NAME(mgf_pack_bf16)(int rows, int k, const float *restrict x, long ldx, uint32_t *restrict out,
                                        long ldq)
{
    for (int r = 0; r < rows; r++) {
        const float *xr = x + r * ldx;
        uint32_t *o = out + r * ldq;
        for (int q = 0; q < k / 2; q++)
            o[q] = mgf_bf16_bits(xr[2 * q]) | (uint32_t)mgf_bf16_bits(xr[2 * q + 1]) << 16;
        if (k % 2)
            o[k / 2] = mgf_bf16_bits(xr[k - 1]);
    }
}

/* ... or u8 quads: symmetric scale max|x| / 127 per row, stored with an offset of 128.  Written
 * byte by byte (a quad's bytes are little-endian in its word), with the maximum taken over the
 * bits of |x| as integers (their order for non-negative floats), so that GCC vectorises both
 * loops: assembled word by word, with a float maximum, they ran scalar (3.2 us for 8 x 256). */
static void MGF_ISA_NAME(mgf_pack_int8)(int rows, int k, const float *restrict x, long ldx, uint32_t *restrict out,
                                        long ldq, float *restrict scale)
{
    for (int r = 0; r < rows; r++) {
        const float *xr = x + r * ldx;
        uint8_t *o = (uint8_t *)(out + r * ldq);
        int32_t top_bits = 0;
        for (int p = 0; p < k; p++) {
            int32_t bits;
            memcpy(&bits, xr + p, sizeof bits);
            bits &= 0x7FFFFFFF;
            top_bits = bits > top_bits ? bits : top_bits;
        }
        float top;
        memcpy(&top, &top_bits, sizeof top);
        float inverse = top > 0 ? 127.0f / top : 0.0f;
        scale[r] = top / 127.0f;
        for (int p = 0; p < k; p++)
            o[p] = (uint8_t)(mgf_quantize(xr[p] * inverse) + 128);
        for (int p = k; p < 4 * ((k + 3) / 4); p++)
            o[p] = 128;
    }
}

#include "isa_transformer.h"

static const mgf_isa MGF_ISA_NAME(mgf_isa_table) = {
    MGF_ISA_NAME(mgf_matmul_f32), MGF_ISA_NAME(mgf_matmul_bf16), MGF_ISA_NAME(mgf_matmul_int8),
    MGF_ISA_NAME(mgf_lstm_cell), MGF_ISA_NAME(mgf_gru_cell), MGF_ISA_NAME(mgf_pack_bf16),
    MGF_ISA_NAME(mgf_pack_int8), MGF_ISA_NAME(mgf_layer_norm), MGF_ISA_NAME(mgf_gelu), MGF_ISA_NAME(mgf_attend),
    MGF_ISA_NAME(mgf_attend_bf16),
};

#undef MGF_TA
#undef MGF_TB
#undef MGF_TC
#undef MGF_ROW_WIDTH
#undef MGF_ROW_K
#undef MGF_Q_ROWS
#undef MGF_LANES
#undef MGF_VECTORS

/* Reduced-precision products with AVX-512 BF16 (vdpbf16ps) and VNNI (vpdpbusd).
 *
 * One instruction multiplies 16 columns by 2 (bf16) or 4 (int8) consecutive k at once, twice
 * or four times the multiply-adds of an fp32 FMA, on weights half or a quarter the size.  The
 * weights are the panels of isa.h: per 64 columns, one 64-byte vector per 16 columns and
 * k pair (quad), so a tile reads its weights in order.  Tiles: 4 rows x 64 columns (16
 * accumulators), and one row with two accumulators per vector over alternate k, which keeps 8
 * independent chains in flight while the weights stream from L2.
 */

#define MGF_AVX512_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx512vnni")))

/* The mask of the first `cols` (<= 16) lanes. */
MGF_AVX512_TARGET MGF_INLINE __mmask16 mgf_lanes(int cols) { return cols >= 16 ? 0xFFFF : (__mmask16)((1u << cols) - 1); }

/* A tile's body: `ROWS` rows x 4 vectors of one panel; BODY(acc, x_word, w_vector) accumulates. */
#define MGF_PANEL_TILE(NAME, ACC_T, ZERO, BODY, FINISH)                                                      \
    MGF_AVX512_TARGET MGF_INLINE void NAME##_4(int cols, int steps, const uint32_t *restrict x, long ldq,      \
                                               const uint32_t *restrict w, float *restrict c, long ldc,        \
                                               const float *x_scale, const float *w_scale,                     \
                                               const int32_t *col_sums)                                        \
    {                                                                                                          \
        ACC_T acc[4][4];                                                                                       \
        for (int r = 0; r < 4; r++)                                                                            \
            for (int v = 0; v < 4; v++)                                                                        \
                acc[r][v] = ZERO;                                                                              \
        for (int q = 0; q < steps; q++) {                                                                      \
            const uint32_t *wq = w + (long)q * MGF_PANEL;                                                      \
            __m512i w0 = _mm512_loadu_si512(wq), w1 = _mm512_loadu_si512(wq + 16);                             \
            __m512i w2 = _mm512_loadu_si512(wq + 32), w3 = _mm512_loadu_si512(wq + 48);                        \
            for (int r = 0; r < 4; r++) {                                                                      \
                __m512i xr = _mm512_set1_epi32((int)x[r * ldq + q]);                                           \
                acc[r][0] = BODY(acc[r][0], xr, w0);                                                           \
                acc[r][1] = BODY(acc[r][1], xr, w1);                                                           \
                acc[r][2] = BODY(acc[r][2], xr, w2);                                                           \
                acc[r][3] = BODY(acc[r][3], xr, w3);                                                           \
            }                                                                                                  \
        }                                                                                                      \
        for (int r = 0; r < 4; r++)                                                                            \
            for (int v = 0; v < 4 && 16 * v < cols; v++)                                                       \
                FINISH(acc[r][v], cols - 16 * v, c + r * ldc + 16 * v, x_scale + r, w_scale + 16 * v,          \
                       col_sums + 16 * v);                                                                     \
    }                                                                                                          \
    MGF_AVX512_TARGET MGF_INLINE void NAME##_1(int cols, int steps, const uint32_t *restrict x, long ldq,      \
                                               const uint32_t *restrict w, float *restrict c, long ldc,        \
                                               const float *x_scale, const float *w_scale,                     \
                                               const int32_t *col_sums)                                        \
    {                                                                                                          \
        (void)ldq;                                                                                             \
        (void)ldc;                                                                                             \
        ACC_T acc[2][4];                                                                                       \
        for (int s = 0; s < 2; s++)                                                                            \
            for (int v = 0; v < 4; v++)                                                                        \
                acc[s][v] = ZERO;                                                                              \
        int q = 0;                                                                                             \
        for (; q + 2 <= steps; q += 2)                                                                         \
            for (int s = 0; s < 2; s++) {                                                                      \
                const uint32_t *wq = w + (long)(q + s) * MGF_PANEL;                                            \
                __m512i xr = _mm512_set1_epi32((int)x[q + s]);                                                 \
                for (int v = 0; v < 4; v++)                                                                    \
                    acc[s][v] = BODY(acc[s][v], xr, _mm512_loadu_si512(wq + 16 * v));                          \
            }                                                                                                  \
        if (q < steps) {                                                                                       \
            const uint32_t *wq = w + (long)q * MGF_PANEL;                                                      \
            __m512i xr = _mm512_set1_epi32((int)x[q]);                                                         \
            for (int v = 0; v < 4; v++)                                                                        \
                acc[0][v] = BODY(acc[0][v], xr, _mm512_loadu_si512(wq + 16 * v));                              \
        }                                                                                                      \
        for (int v = 0; v < 4 && 16 * v < cols; v++)                                                           \
            FINISH(MGF_ADD_##ACC_T(acc[0][v], acc[1][v]), cols - 16 * v, c + 16 * v, x_scale, w_scale + 16 * v, \
                   col_sums + 16 * v);                                                                         \
    }

#define MGF_ADD___m512(a, b) _mm512_add_ps(a, b)
#define MGF_ADD___m512i(a, b) _mm512_add_epi32(a, b)

#define MGF_BF16_BODY(acc, x, w) _mm512_dpbf16_ps(acc, (__m512bh)(x), (__m512bh)(w))
#define MGF_BF16_FINISH(acc, cols, c, x_scale, w_scale, col_sums)                                              \
    do {                                                                                                       \
        __mmask16 m_ = mgf_lanes(cols);                                                                        \
        _mm512_mask_storeu_ps(c, m_, _mm512_add_ps(_mm512_maskz_loadu_ps(m_, c), acc));                        \
    } while (0)

/* The unsigned x carries an offset of 128: sum((x - 128) w) = sum(x w) - 128 sum(w). */
#define MGF_INT8_BODY(acc, x, w) _mm512_dpbusd_epi32(acc, x, w)
#define MGF_INT8_FINISH(acc, cols, c, x_scale, w_scale, col_sums)                                              \
    do {                                                                                                       \
        __mmask16 m_ = mgf_lanes(cols);                                                                        \
        __m512i exact_ = _mm512_sub_epi32(acc, _mm512_slli_epi32(_mm512_maskz_loadu_epi32(m_, col_sums), 7));  \
        __m512 scale_ = _mm512_mul_ps(_mm512_set1_ps(*(x_scale)), _mm512_maskz_loadu_ps(m_, w_scale));         \
        __m512 value_ = _mm512_mul_ps(_mm512_cvtepi32_ps(exact_), scale_);                                     \
        _mm512_mask_storeu_ps(c, m_, _mm512_add_ps(_mm512_maskz_loadu_ps(m_, c), value_));                     \
    } while (0)

MGF_PANEL_TILE(mgf_bf16_avx512_tile, __m512, _mm512_setzero_ps(), MGF_BF16_BODY, MGF_BF16_FINISH)
MGF_PANEL_TILE(mgf_int8_avx512_tile, __m512i, _mm512_setzero_si512(), MGF_INT8_BODY, MGF_INT8_FINISH)

/* Panel by panel, rows in blocks of 4 then one by one; same contracts as the portable versions. */
#define MGF_PANEL_LOOP(TILE, SCALES)                                                                           \
    for (int j = 0; j < n; j += MGF_PANEL) {                                                                   \
        const uint32_t *panel = w + (long)(j / MGF_PANEL) * steps * MGF_PANEL;                                 \
        int cols = n - j < MGF_PANEL ? n - j : MGF_PANEL, r = 0;                                               \
        for (; r + 4 <= rows; r += 4)                                                                          \
            TILE##_4(cols, steps, x + r * ldq, ldq, panel, c + r * ldc + j, ldc, SCALES);                      \
        for (; r < rows; r++)                                                                                  \
            TILE##_1(cols, steps, x + r * ldq, ldq, panel, c + r * ldc + j, ldc, SCALES);                      \
    }

MGF_AVX512_TARGET static void mgf_matmul_bf16_avx512bf16(int rows, int n, int steps, const uint32_t *restrict x,
                                                         long ldq, const uint32_t *restrict w, float *restrict c,
                                                         long ldc)
{
    MGF_PANEL_LOOP(mgf_bf16_avx512_tile, NULL MGF_COMMA NULL MGF_COMMA NULL)
}

MGF_AVX512_TARGET static void mgf_matmul_int8_avx512vnni(int rows, int n, int steps, const uint32_t *restrict x,
                                                         long ldq, const float *restrict x_scale,
                                                         const uint32_t *restrict w, const float *restrict w_scale,
                                                         const int32_t *restrict col_sums, float *restrict c,
                                                         long ldc)
{
    MGF_PANEL_LOOP(mgf_int8_avx512_tile, x_scale + r MGF_COMMA w_scale + j MGF_COMMA col_sums + j)
}

/* The cells and the int8 activations in intrinsics.  GCC vectorised isa.h's cells, a vdivps per sigmoid and tanh;
 * here 1 / (1 + 2^t) is VRCP14PS refined by one Newton step (relative error about 2^-23, as the division's
 * rounding), 2^t is Cephes' exp2f polynomial (1.7e-7) scaled by VSCALEFPS, and t is clamped to +-58 (e^+-40):
 * beyond, sigmoid is 1 in float or below 5e-18, and its products in the cell would be subnormal floats, each a
 * microcode assist of a hundred cycles or more (isa.h's cell took 17x longer on gates of +-200 than of +-3). */

/* 1 / (1 + 2^(k x)): sigmoid for k = -log2(e), and (tanh + 1) / 2 for k = -2 log2(e). */
MGF_AVX512_TARGET MGF_INLINE __m512 mgf_logistic16(__m512 x, float k)
{
    __m512 t = _mm512_mul_ps(x, _mm512_set1_ps(k));
    t = _mm512_min_ps(_mm512_max_ps(t, _mm512_set1_ps(-58.0f)), _mm512_set1_ps(58.0f));
    __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 f = _mm512_sub_ps(t, n);
    __m512 p = _mm512_set1_ps(1.535336188319500e-4f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.339887440266574e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.618437357674640e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.550332471162809e-2f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.402264791363012e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.931472028550421e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    __m512 y = _mm512_add_ps(_mm512_scalef_ps(p, n), _mm512_set1_ps(1.0f));
    __m512 r = _mm512_rcp14_ps(y);
    return _mm512_mul_ps(r, _mm512_fnmadd_ps(y, r, _mm512_set1_ps(2.0f)));
}

#define MGF_SIGMOID16(x) mgf_logistic16(x, -1.44269504088896341f)
#define MGF_TANH16(x) _mm512_fmsub_ps(mgf_logistic16(x, -2.88539008177792681f), _mm512_set1_ps(2.0f), _mm512_set1_ps(1.0f))

/* isa.h's mgf_lstm_cell: the same contract, 16 units at a time (the last ones masked). */
MGF_AVX512_TARGET static void mgf_lstm_cell_avx512x(int rows, int units, const float *restrict gates,
                                                    long gate_stride, float *restrict c, long c_stride,
                                                    float *restrict h, long h_stride, float *restrict h_out,
                                                    long out_stride)
{
    for (int b = 0; b < rows; b++) {
        const float *gi = gates + b * gate_stride;
        float *cb = c + b * c_stride, *hb = h + b * h_stride, *ob = h_out ? h_out + b * out_stride : NULL;
        for (int j = 0; j < units; j += 16) {
            __mmask16 m = mgf_lanes(units - j);
            __m512 i = MGF_SIGMOID16(_mm512_maskz_loadu_ps(m, gi + j));
            __m512 f = MGF_SIGMOID16(_mm512_maskz_loadu_ps(m, gi + units + j));
            __m512 g = MGF_TANH16(_mm512_maskz_loadu_ps(m, gi + 2 * units + j));
            __m512 o = MGF_SIGMOID16(_mm512_maskz_loadu_ps(m, gi + 3 * units + j));
            __m512 cn = _mm512_fmadd_ps(f, _mm512_maskz_loadu_ps(m, cb + j), _mm512_mul_ps(i, g));
            __m512 hn = _mm512_mul_ps(o, MGF_TANH16(cn));
            _mm512_mask_storeu_ps(cb + j, m, cn);
            _mm512_mask_storeu_ps(hb + j, m, hn);
            if (ob)
                _mm512_mask_storeu_ps(ob + j, m, hn);
        }
    }
}

/* isa.h's mgf_gru_cell, 16 units at a time. */
MGF_AVX512_TARGET static void mgf_gru_cell_avx512x(int rows, int units, const float *restrict x_gates,
                                                   const float *restrict h_gates, long gate_stride,
                                                   const float *restrict h_old, float *restrict h, long h_stride,
                                                   float *restrict h_out, long out_stride)
{
    for (int b = 0; b < rows; b++) {
        const float *xz = x_gates + b * gate_stride, *hz = h_gates + b * gate_stride;
        const float *old = h_old + b * h_stride;
        float *hb = h + b * h_stride, *ob = h_out ? h_out + b * out_stride : NULL;
        for (int j = 0; j < units; j += 16) {
            __mmask16 m = mgf_lanes(units - j);
            __m512 z = MGF_SIGMOID16(_mm512_add_ps(_mm512_maskz_loadu_ps(m, xz + j), _mm512_maskz_loadu_ps(m, hz + j)));
            __m512 r = MGF_SIGMOID16(_mm512_add_ps(_mm512_maskz_loadu_ps(m, xz + units + j),
                                                   _mm512_maskz_loadu_ps(m, hz + units + j)));
            __m512 n = MGF_TANH16(_mm512_fmadd_ps(r, _mm512_maskz_loadu_ps(m, hz + 2 * units + j),
                                                  _mm512_maskz_loadu_ps(m, xz + 2 * units + j)));
            __m512 hn = _mm512_fmadd_ps(z, _mm512_sub_ps(_mm512_maskz_loadu_ps(m, old + j), n), n);
            _mm512_mask_storeu_ps(hb + j, m, hn);
            if (ob)
                _mm512_mask_storeu_ps(ob + j, m, hn);
        }
    }
}

/* isa.h's mgf_pack_int8, 16 values at a time, the same numbers (VCVTPS2DQ rounds to nearest even, as
 * mgf_quantize does); the masked lanes past k read 0, so the padding of the last quad comes out as 128. */
MGF_AVX512_TARGET static void mgf_pack_int8_avx512x(int rows, int k, const float *restrict x, long ldx,
                                                    uint32_t *restrict out, long ldq, float *restrict scale)
{
    int padded = 4 * ((k + 3) / 4);
    for (int r = 0; r < rows; r++) {
        const float *xr = x + r * ldx;
        uint8_t *o = (uint8_t *)(out + r * ldq);
        __m512i top_bits = _mm512_setzero_si512();
        for (int p = 0; p < k; p += 16)
            top_bits = _mm512_max_epi32(top_bits, _mm512_and_si512(_mm512_maskz_loadu_epi32(mgf_lanes(k - p), xr + p),
                                                                    _mm512_set1_epi32(0x7FFFFFFF)));
        int32_t bits = _mm512_reduce_max_epi32(top_bits);
        float top;
        memcpy(&top, &bits, sizeof top);
        float inverse = top > 0 ? 127.0f / top : 0.0f;
        scale[r] = top / 127.0f;
        __m512 factor = _mm512_set1_ps(inverse), low = _mm512_set1_ps(-127.0f), high = _mm512_set1_ps(127.0f);
        for (int p = 0; p < padded; p += 16) {
            __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(mgf_lanes(k - p), xr + p), factor);
            __m512i q = _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(v, low), high));
            _mm512_mask_cvtepi32_storeu_epi8(o + p, mgf_lanes(padded - p), _mm512_add_epi32(q, _mm512_set1_epi32(128)));
        }
    }
}

/* The functions above in `table`, an AVX-512 build's. */
static void mgf_avx512_intrinsics(mgf_isa *table)
{
    table->lstm_cell = mgf_lstm_cell_avx512x;
    table->gru_cell = mgf_gru_cell_avx512x;
    table->pack_int8 = mgf_pack_int8_avx512x;
}

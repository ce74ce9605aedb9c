/* Reduced-precision products on the AMX tiles (TDPBUSD for int8, TDPBF16PS for bf16).
 *
 * A tile instruction multiplies a 16 x 64-byte block of activations by a 16 x 64-byte block of
 * weights into 16 x 16 fp32 or int32 sums: 16,384 int8 multiply-adds in one instruction (6.3 TOP/s
 * on one core of the Xeon this was written on, from registers; with the loads and the finishing
 * below, int8 64 x 256 @ 256 x 1024 takes 21 us against VNNI's 68).  The weights need no new layout:
 * a panel of isa.h, 64 words per k quad (pair), read with a stride of 256 bytes, is exactly the
 * tiles' "VNNI layout" of 16 columns, so bundles load as for the AVX-512 build.
 *
 * A tile instruction costs the same for 1 row as for 16, so a single row of int8 stays on VNNI (2.0 against
 * 2.3 us for 1 x 256 @ 256 x 1024 here, as llama.cpp found), but from 2 rows the tiles win (2.5 against 3.1 us;
 * 8 rows: 4.4 against 9.6), and bf16 wins on the tiles from 1 row (4.0 against 5.8 us: VDPBF16PS does half
 * VNNI's multiply-adds per instruction).  Each call loads its own tile configuration (the configuration is per thread, so the
 * kernel's pool threads need nothing else) and releases the tiles at the end, so that a thread
 * that stops using them does not carry their 8 KiB state through every context switch.
 *
 * The k beyond the last whole block of 16 quads (pairs), and the finishing (int8: the offset
 * correction and the scales; both: the sum into C), run on AVX-512 from the tiles' stored sums,
 * with the macros of isa_avx512.h: int8 results are the VNNI build's, bit for bit.
 */

#include <sys/syscall.h>
#include <unistd.h>

#define MGF_AMX_TARGET                                                                                         \
    __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx512vnni,amx-tile,amx-int8,amx-bf16")))
enum { MGF_AMX_MIN_ROWS_INT8 = 2, MGF_AMX_MIN_ROWS_BF16 = 1 };

/* The 64-byte operand of LDTILECFG (palette 1). */
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t bytes_per_row[16];
    uint8_t rows[16];
} mgf_tile_config;

/* Whether this CPU has AMX (tiles, int8, bf16) beside AVX-512 BF16/VNNI, and Linux lets this process use the
 * tiles' state (arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA), asked once; a refusal means no). */
static int mgf_amx_usable(void)
{
    static int usable = -1; /* racing first calls ask twice, harmlessly */
    if (usable < 0) {
        __builtin_cpu_init();
        usable = __builtin_cpu_supports("amx-tile") && __builtin_cpu_supports("amx-int8")
                 && __builtin_cpu_supports("amx-bf16") && __builtin_cpu_supports("x86-64-v4")
                 && __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512vnni")
                 && syscall(SYS_arch_prctl, 0x1023, 18) == 0;
    }
    return usable;
}

/* Tiles 0-3: sums for rows block a (of two, 16 rows each) and columns block b (of two, 16 columns each) in
 * tile 2a + b; tiles 4 and 5: the activations of row blocks 0 and 1; tiles 6 and 7: the weights of column blocks
 * 0 and 1.  `second` rows in block 1 (0: that block's tiles are left unconfigured and unused). */
MGF_AMX_TARGET static void mgf_amx_configure(int first, int second)
{
    mgf_tile_config config;
    memset(&config, 0, sizeof config);
    config.palette = 1;
    int rows[2] = {first, second};
    for (int a = 0; a < 2; a++) {
        config.rows[2 * a] = config.rows[2 * a + 1] = config.rows[4 + a] = (uint8_t)rows[a];
        config.bytes_per_row[2 * a] = config.bytes_per_row[2 * a + 1] = config.bytes_per_row[4 + a] = rows[a] ? 64 : 0;
    }
    config.rows[6] = config.rows[7] = 16;
    config.bytes_per_row[6] = config.bytes_per_row[7] = 64;
    /* not _tile_loadconfig: GCC 12's declares that it reads 8 bytes, so the rest of `config` was never stored */
    __asm__ volatile("ldtilecfg %0" ::"m"(config));
}

/* The products of rows [r, r + 32) and columns [j, j + 32) over the first `whole` steps (a multiple of 16), left in
 * tiles 0-3; DOT is _tile_dpbusd or _tile_dpbf16ps. */
#define MGF_AMX_BLOCK(DOT, j)                                                                                  \
    do {                                                                                                       \
        const uint32_t *panel_ = w + (long)((j) / MGF_PANEL) * steps * MGF_PANEL + (j) % MGF_PANEL;            \
        _tile_zero(0);                                                                                         \
        _tile_zero(1);                                                                                         \
        if (second) {                                                                                          \
            _tile_zero(2);                                                                                     \
            _tile_zero(3);                                                                                     \
        }                                                                                                      \
        for (int q = 0; q < whole; q += 16) {                                                                  \
            _tile_loadd(4, x + (long)r * ldq + q, ldq * 4);                                                    \
            _tile_loadd(6, panel_ + (long)q * MGF_PANEL, MGF_PANEL * 4);                                       \
            _tile_loadd(7, panel_ + (long)q * MGF_PANEL + 16, MGF_PANEL * 4);                                  \
            DOT(0, 4, 6);                                                                                      \
            DOT(1, 4, 7);                                                                                      \
            if (second) {                                                                                      \
                _tile_loadd(5, x + (long)(r + 16) * ldq + q, ldq * 4);                                         \
                DOT(2, 5, 6);                                                                                  \
                DOT(3, 5, 7);                                                                                  \
            }                                                                                                  \
        }                                                                                                      \
    } while (0)

/* Tiles 0-3 into sums[32][32]. */
#define MGF_AMX_STORE(sums)                                                                                    \
    do {                                                                                                       \
        _tile_stored(0, &(sums)[0][0], sizeof(sums)[0]);                                                       \
        _tile_stored(1, &(sums)[0][16], sizeof(sums)[0]);                                                      \
        if (second) {                                                                                          \
            _tile_stored(2, &(sums)[16][0], sizeof(sums)[0]);                                                  \
            _tile_stored(3, &(sums)[16][16], sizeof(sums)[0]);                                                 \
        }                                                                                                      \
    } while (0)

/* Rows in blocks of 32 (two row tiles), columns in blocks of 32 (half a panel), k on the tiles in blocks of 16
 * steps; then FINISH(done, r, count, j0, cols) each block: its remaining steps and the sum into C.  A block's
 * finish runs while the tiles compute the next block (two buffers of sums). */
#define MGF_AMX_LOOP(SUM_T, DOT, FINISH)                                                                       \
    int whole = steps / 16 * 16, configured = -1;                                                              \
    SUM_T sums[2][32][32] __attribute__((aligned(64)));                                                        \
    for (int r = 0; r < rows; r += 32) {                                                                       \
        int first = rows - r < 16 ? rows - r : 16, second = rows - r - 16;                                     \
        second = second < 0 ? 0 : second > 16 ? 16 : second;                                                  \
        if (configured != 32 * first + second) {                                                               \
            mgf_amx_configure(first, second);                                                                  \
            configured = 32 * first + second;                                                                  \
        }                                                                                                      \
        for (int j = 0; j < n + 32; j += 32) {                                                                 \
            if (j < n)                                                                                         \
                MGF_AMX_BLOCK(DOT, j);                                                                         \
            if (j > 0)                                                                                         \
                FINISH(sums[((j - 32) / 32) % 2], r, first + second, j - 32, n - j + 32 < 32 ? n - j + 32 : 32); \
            if (j < n)                                                                                         \
                MGF_AMX_STORE(sums[(j / 32) % 2]);                                                             \
        }                                                                                                      \
    }                                                                                                          \
    _tile_release();

/* The k past `whole` of row i, 16 columns v of a block: BODY on AVX-512, as isa_avx512.h's tiles. */
#define MGF_AMX_REST(acc, BODY, i, v)                                                                          \
    for (int q = whole; q < steps; q++)                                                                        \
        acc = BODY(acc, _mm512_set1_epi32((int)x[(long)(r + (i)) * ldq + q]),                                  \
                   _mm512_loadu_si512(panel + (long)q * MGF_PANEL + 16 * (v)));

MGF_AMX_TARGET MGF_INLINE void mgf_amx_finish_bf16(float (*done)[32], int r, int count, int j0, int cols, int whole,
                                                   int steps, const uint32_t *restrict x, long ldq,
                                                   const uint32_t *restrict w, float *restrict c, long ldc)
{
    const uint32_t *panel = w + (long)(j0 / MGF_PANEL) * steps * MGF_PANEL + j0 % MGF_PANEL;
    for (int i = 0; i < count; i++)
        for (int v = 0; v < 2 && 16 * v < cols; v++) {
            __m512 acc = _mm512_load_ps(&done[i][16 * v]);
            MGF_AMX_REST(acc, MGF_BF16_BODY, i, v)
            MGF_BF16_FINISH(acc, cols - 16 * v, c + (long)(r + i) * ldc + j0 + 16 * v, NULL, NULL, NULL);
        }
}

/* MGF_INT8_FINISH's arithmetic, bit for bit, with the columns' offsets and scales loaded once per block (and the
 * rows without remaining steps in a loop of their own: with the k loop inside, it ran 25% slower). */
MGF_AMX_TARGET MGF_INLINE void mgf_amx_finish_int8(int32_t (*done)[32], int r, int count, int j0, int cols,
                                                   int whole, int steps, const uint32_t *restrict x, long ldq,
                                                   const float *restrict x_scale, const uint32_t *restrict w,
                                                   const float *restrict w_scale, const int32_t *restrict col_sums,
                                                   float *restrict c, long ldc)
{
    const uint32_t *panel = w + (long)(j0 / MGF_PANEL) * steps * MGF_PANEL + j0 % MGF_PANEL;
    __mmask16 m0 = mgf_lanes(cols), m1 = cols > 16 ? mgf_lanes(cols - 16) : 0;
    __m512i offset0 = _mm512_slli_epi32(_mm512_maskz_loadu_epi32(m0, col_sums + j0), 7);
    __m512i offset1 = _mm512_slli_epi32(_mm512_maskz_loadu_epi32(m1, col_sums + j0 + 16), 7);
    __m512 scale0 = _mm512_maskz_loadu_ps(m0, w_scale + j0), scale1 = _mm512_maskz_loadu_ps(m1, w_scale + j0 + 16);
    for (int i = 0; i < count; i++) {
        __m512i acc0 = _mm512_load_si512(&done[i][0]), acc1 = _mm512_load_si512(&done[i][16]);
        if (whole < steps) {
            MGF_AMX_REST(acc0, MGF_INT8_BODY, i, 0)
            MGF_AMX_REST(acc1, MGF_INT8_BODY, i, 1)
        }
        __m512 row_scale = _mm512_set1_ps(x_scale[r + i]);
        float *ci = c + (long)(r + i) * ldc + j0;
        __m512 value0 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc0, offset0)),
                                      _mm512_mul_ps(row_scale, scale0));
        __m512 value1 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc1, offset1)),
                                      _mm512_mul_ps(row_scale, scale1));
        _mm512_mask_storeu_ps(ci, m0, _mm512_add_ps(_mm512_maskz_loadu_ps(m0, ci), value0));
        _mm512_mask_storeu_ps(ci + 16, m1, _mm512_add_ps(_mm512_maskz_loadu_ps(m1, ci + 16), value1));
    }
}

#define MGF_AMX_INT8_DOT(dst, a, b) _tile_dpbusd(dst, a, b)
#define MGF_AMX_BF16_DOT(dst, a, b) _tile_dpbf16ps(dst, a, b)
#define MGF_AMX_BF16_FINISH(done, r, count, j0, cols)                                                          \
    mgf_amx_finish_bf16(done, r, count, j0, cols, whole, steps, x, ldq, w, c, ldc)
#define MGF_AMX_INT8_FINISH(done, r, count, j0, cols)                                                          \
    mgf_amx_finish_int8(done, r, count, j0, cols, whole, steps, x, ldq, x_scale, w, w_scale, col_sums, c, ldc)

MGF_AMX_TARGET static void mgf_matmul_bf16_amx(int rows, int n, int steps, const uint32_t *restrict x, long ldq,
                                               const uint32_t *restrict w, float *restrict c, long ldc)
{
    if (rows < MGF_AMX_MIN_ROWS_BF16 || steps < 16) {
        mgf_matmul_bf16_avx512bf16(rows, n, steps, x, ldq, w, c, ldc);
        return;
    }
    MGF_AMX_LOOP(float, MGF_AMX_BF16_DOT, MGF_AMX_BF16_FINISH)
}

MGF_AMX_TARGET static void mgf_matmul_int8_amx(int rows, int n, int steps, const uint32_t *restrict x, long ldq,
                                               const float *restrict x_scale, const uint32_t *restrict w,
                                               const float *restrict w_scale, const int32_t *restrict col_sums,
                                               float *restrict c, long ldc)
{
    if (rows < MGF_AMX_MIN_ROWS_INT8 || steps < 16) {
        mgf_matmul_int8_avx512vnni(rows, n, steps, x, ldq, x_scale, w, w_scale, col_sums, c, ldc);
        return;
    }
    MGF_AMX_LOOP(int32_t, MGF_AMX_INT8_DOT, MGF_AMX_INT8_FINISH)
}

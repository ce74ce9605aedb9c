/* Reduced-precision products on the AMX tiles (TDPBUSD for int8, TDPBF16PS for bf16).
 *
 * A tile instruction multiplies a 16 x 64-byte block of activations by a 16 x 64-byte block of
 * weights into 16 x 16 fp32 or int32 sums: 16,384 int8 multiply-adds in one instruction (6.3 TOP/s
 * on one core of the Xeon this was written on, from registers; with the loads and the finishing
 * below, int8 64 x 256 @ 256 x 1024 takes 21 us against VNNI's 68).  The weights need no new layout:
 * a panel of isa.h, 64 words per k quad (pair), read with a stride of 256 bytes, is exactly the
 * tiles' "VNNI layout" of 16 columns, so bundles load as for the AVX-512 build.
 *
 * Tiles pay off only with enough rows (batches, beams, prefill's projections): below
 * MGF_AMX_MIN_ROWS rows the products stay on VNNI/BF16, as llama.cpp found AMX slower than VNNI at
 * batch 1.  Each call loads its own tile configuration (the configuration is per thread, so the
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
#define MGF_AMX_MIN_ROWS 16

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
 * steps; then per row and 16 columns of a block: its remaining steps with BODY, and FINISH (isa_avx512.h).  A
 * block's finish runs while the tiles compute the next block (two buffers of sums). */
#define MGF_AMX_LOOP(SUM_T, ACC_T, LOAD, DOT, BODY, FINISH, SCALES)                                            \
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
            if (j > 0) { /* the finish of block j - 32 */                                                      \
                int j0 = j - 32, cols = n - j0 < 32 ? n - j0 : 32;                                             \
                const uint32_t *panel = w + (long)(j0 / MGF_PANEL) * steps * MGF_PANEL + j0 % MGF_PANEL;       \
                SUM_T(*done)[32] = sums[(j0 / 32) % 2];                                                        \
                for (int i = 0; i < first + second; i++)                                                       \
                    for (int v = 0; v < 2 && 16 * v < cols; v++) {                                             \
                        ACC_T acc = LOAD(&done[i][16 * v]);                                                    \
                        for (int q = whole; q < steps; q++)                                                    \
                            acc = BODY(acc, _mm512_set1_epi32((int)x[(long)(r + i) * ldq + q]),                 \
                                       _mm512_loadu_si512(panel + (long)q * MGF_PANEL + 16 * v));              \
                        FINISH(acc, cols - 16 * v, c + (long)(r + i) * ldc + j0 + 16 * v, SCALES);             \
                    }                                                                                          \
            }                                                                                                  \
            if (j < n)                                                                                         \
                MGF_AMX_STORE(sums[(j / 32) % 2]);                                                             \
        }                                                                                                      \
    }                                                                                                          \
    _tile_release();

#define MGF_AMX_INT8_DOT(dst, a, b) _tile_dpbusd(dst, a, b)
#define MGF_AMX_BF16_DOT(dst, a, b) _tile_dpbf16ps(dst, a, b)

MGF_AMX_TARGET static void mgf_matmul_bf16_amx(int rows, int n, int steps, const uint32_t *restrict x, long ldq,
                                               const uint32_t *restrict w, float *restrict c, long ldc)
{
    if (rows < MGF_AMX_MIN_ROWS || steps < 16) {
        mgf_matmul_bf16_avx512bf16(rows, n, steps, x, ldq, w, c, ldc);
        return;
    }
    MGF_AMX_LOOP(float, __m512, _mm512_load_ps, MGF_AMX_BF16_DOT, MGF_BF16_BODY, MGF_BF16_FINISH,
                 NULL MGF_COMMA NULL MGF_COMMA NULL)
}

MGF_AMX_TARGET static void mgf_matmul_int8_amx(int rows, int n, int steps, const uint32_t *restrict x, long ldq,
                                               const float *restrict x_scale, const uint32_t *restrict w,
                                               const float *restrict w_scale, const int32_t *restrict col_sums,
                                               float *restrict c, long ldc)
{
    if (rows < MGF_AMX_MIN_ROWS || steps < 16) {
        mgf_matmul_int8_avx512vnni(rows, n, steps, x, ldq, x_scale, w, w_scale, col_sums, c, ldc);
        return;
    }
    MGF_AMX_LOOP(int32_t, __m512i, _mm512_load_si512, MGF_AMX_INT8_DOT, MGF_INT8_BODY, MGF_INT8_FINISH,
                 x_scale + r + i MGF_COMMA w_scale + j0 + 16 * v MGF_COMMA col_sums + j0 + 16 * v)
}

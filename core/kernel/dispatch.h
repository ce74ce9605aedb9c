/* The step's arithmetic: matrix products in fp32, bf16 or int8 weights, and the LSTM cell.
 *
 * Every function comes in three builds, one per instruction set (AVX-512, AVX2, baseline
 * x86-64), from the one template isa.h; the AVX-512 build of the reduced-precision
 * products uses BF16/VNNI instructions (isa_avx512.h) where the CPU has them, and the AMX
 * level is that build with the reduced-precision products of several rows on the tiles
 * (isa_amx.h); both take the cells and the int8 activations from isa_avx512.h's intrinsics.  A kernel
 * picks its table once, at load (mgf_isa_for), so that a test can run every build on one
 * machine (MGF_ISA) and a step pays no dispatch.
 *
 * Reduced precision changes only the weights of the products and the activations fed to them;
 * the products accumulate in fp32 (bf16) or exactly in int32 (int8), and gates, cells and
 * hidden states stay fp32.
 */
#ifndef MGF_LSTM_MATH_H
#define MGF_LSTM_MATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#define MGF_INLINE static inline __attribute__((always_inline))
#define MGF_PANEL 64 /* columns per panel of packed reduced-precision weights */
#define MGF_TAIL 16  /* columns of an fp32 matrix's tail panel: its last n % 16, zero-padded */
#define MGF_COMMA ,

enum { MGF_FP32 = 0, MGF_BF16 = 1, MGF_INT8 = 2 };
enum { MGF_BASELINE = 0, MGF_AVX2 = 1, MGF_AVX512 = 2, MGF_AMX = 3 };

typedef struct {
    void (*matmul_f32)(int rows, int n, int k, const float *x, long ldx, const float *w, long ldw, const float *tail,
                       float *c, long ldc);
    void (*matmul_bf16)(int rows, int n, int pairs, const uint32_t *x, long ldq, const uint32_t *w, float *c,
                        long ldc);
    void (*matmul_int8)(int rows, int n, int quads, const uint32_t *x, long ldq, const float *x_scale,
                        const uint32_t *w, const float *w_scale, const int32_t *col_sums, float *c, long ldc);
    void (*lstm_cell)(int rows, int units, const float *gates, long gate_stride, float *c, long c_stride, float *h,
                      long h_stride, float *h_out, long out_stride);
    void (*gru_cell)(int rows, int units, const float *x_gates, const float *h_gates, long gate_stride,
                     const float *h_old, float *h, long h_stride, float *h_out, long out_stride);
    void (*pack_bf16)(int rows, int k, const float *x, long ldx, uint32_t *out, long ldq);
    void (*pack_int8)(int rows, int k, const float *x, long ldx, uint32_t *out, long ldq, float *scale);
    /* a Transformer's (isa_transformer.h) */
    void (*layer_norm)(int rows, int width, const float *x, long ldx, const float *gamma, const float *beta,
                       float epsilon, float *y, long ldy);
    void (*gelu)(int rows, int n, float *x, long ldx, int exact);
    void (*attend)(int length, int size, const float *q, const float *keys_t, long ldk, const float *values,
                   float scale, float *scores, float *out);
    void (*attend_bf16)(int count, int length0, int size, const float *q, long ldq, const uint16_t *keys_t, long ldk,
                        const uint16_t *values, float scale, float *scores, long lds, float *out, long ldo, float *wide);
} mgf_isa;

/* The bf16 nearest to x (ties to even), as its 16 bits; the inputs are finite. */
MGF_INLINE uint16_t mgf_bf16_bits(float x)
{
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    return (uint16_t)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}

/* v rounded to the nearest integer (ties to even) and clamped to [-127, 127]. */
MGF_INLINE int mgf_quantize(float v)
{
    const float round_magic = 12582912.0f; /* 1.5 * 2^23 */
    v = v < -127.0f ? -127.0f : v;
    v = v > 127.0f ? 127.0f : v;
    return (int)((v + round_magic) - round_magic);
}

/* Python builds extensions with -fwrapv, which stops GCC from vectorising these loops (the
 * one-row product ran 4.5x slower), and -ftrapping-math keeps a float comparison from becoming a
 * select (a loop with a clamp did not vectorise); nothing here relies on either. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("no-wrapv", "no-trapping-math")
#endif

#if defined(__GNUC__) && defined(__x86_64__)
#define MGF_X86 1
#include <immintrin.h>
#define MGF_ISA_NAME(name) name##_avx512
#define MGF_ISA_LEVEL 2
#pragma GCC push_options
#pragma GCC target("arch=x86-64-v4")
#include "isa.h"
#pragma GCC pop_options
#undef MGF_ISA_NAME
#undef MGF_ISA_LEVEL

#define MGF_ISA_NAME(name) name##_avx2
#define MGF_ISA_LEVEL 1
#pragma GCC push_options
#pragma GCC target("arch=x86-64-v3")
#include "isa.h"
#pragma GCC pop_options
#undef MGF_ISA_NAME
#undef MGF_ISA_LEVEL

#include "isa_avx512.h"
#ifdef __linux__
#define MGF_AMX_BUILD 1
#include "isa_amx.h"
#endif
#endif

#define MGF_ISA_NAME(name) name##_baseline
#define MGF_ISA_LEVEL 0
#include "isa.h"
#undef MGF_ISA_NAME
#undef MGF_ISA_LEVEL

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

/* The best level this CPU (and, for AMX, the operating system) runs: an MGF_* level. */
static int mgf_cpu_level(void)
{
#ifdef MGF_X86
    __builtin_cpu_init();
#ifdef MGF_AMX_BUILD
    if (mgf_amx_usable())
        return MGF_AMX;
#endif
    if (__builtin_cpu_supports("x86-64-v4"))
        return MGF_AVX512;
    if (__builtin_cpu_supports("x86-64-v3"))
        return MGF_AVX2;
#endif
    return MGF_BASELINE;
}

/* The functions of `level` (at most mgf_cpu_level()), copied into *table; returns a short
 * description of the reduced-precision instructions used. */
static const char *mgf_isa_for(int level, mgf_isa *table)
{
#ifdef MGF_X86
#ifdef MGF_AMX_BUILD
    if (level == MGF_AMX) { /* mgf_amx_usable() said the CPU has BF16 and VNNI too */
        *table = mgf_isa_table_avx512;
        mgf_avx512_intrinsics(table);
        table->matmul_bf16 = mgf_matmul_bf16_amx;
        table->matmul_int8 = mgf_matmul_int8_amx;
        return "amx (int8 from 2 rows, bf16; 1 row of int8: avx512 vnni)";
    }
#endif
    if (level == MGF_AVX512) {
        *table = mgf_isa_table_avx512;
        mgf_avx512_intrinsics(table);
        __builtin_cpu_init();
        int bf16 = __builtin_cpu_supports("avx512bf16"), vnni = __builtin_cpu_supports("avx512vnni");
        if (bf16)
            table->matmul_bf16 = mgf_matmul_bf16_avx512bf16;
        if (vnni)
            table->matmul_int8 = mgf_matmul_int8_avx512vnni;
        return bf16 && vnni ? "avx512 (bf16, vnni)" : bf16 ? "avx512 (bf16)" : vnni ? "avx512 (vnni)" : "avx512";
    }
    if (level == MGF_AVX2) {
        *table = mgf_isa_table_avx2;
        return "avx2";
    }
#endif
    (void)level;
    *table = mgf_isa_table_baseline;
    return "baseline";
}

/* One weight matrix [k, n] as a product reads it: fp32 rows (w, ldw), with its last n % 16 columns
 * also as a zero-padded [k, MGF_TAIL] panel (tail; NULL where 16 divides n) so that they too run in
 * vector tiles, or packed panels (bf16 pairs or int8 quads, with per-column scales and column sums
 * for int8). */
typedef struct {
    int precision, k, n;
    const float *w;
    long ldw;
    const float *tail;
    const uint32_t *packed;
    const float *scale;
    const int32_t *col_sums;
} mgf_matrix;

/* Floats of scratch a product of `rows` rows by a matrix of `k` rows needs. */
static inline long mgf_scratch_floats(int rows, int k) { return (long)rows * (k + 2); }

/* C[rows, n] += X[rows, k] @ M; reduced precisions first quantise X into `scratch`. */
static inline void mgf_product(const mgf_isa *isa, const mgf_matrix *m, int rows, const float *x, long ldx, float *c,
                               long ldc, float *scratch)
{
    if (m->precision == MGF_BF16) {
        long pairs = (m->k + 1) / 2;
        uint32_t *packed = (uint32_t *)scratch;
        isa->pack_bf16(rows, m->k, x, ldx, packed, pairs);
        isa->matmul_bf16(rows, m->n, (int)pairs, packed, pairs, m->packed, c, ldc);
    } else if (m->precision == MGF_INT8) {
        long quads = (m->k + 3) / 4;
        uint32_t *packed = (uint32_t *)(scratch + rows);
        isa->pack_int8(rows, m->k, x, ldx, packed, quads, scratch);
        isa->matmul_int8(rows, m->n, (int)quads, packed, quads, scratch, m->packed, m->scale, m->col_sums, c, ldc);
    } else {
        isa->matmul_f32(rows, m->n, m->k, x, ldx, m->w, m->ldw, m->tail, c, ldc);
    }
}

#endif

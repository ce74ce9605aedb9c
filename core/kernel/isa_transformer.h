/* A Transformer block's arithmetic besides its matrix products, for one instruction set: LayerNorm, GELU and
 * attention of one query over cached keys and values (transformer.pxi runs the block).
 *
 * Included by isa.h, so built once per instruction set as the products are.  Sums run in MGF_SUMS
 * partial sums (the compiler may not reorder a float sum by itself, and a sum in one accumulator does
 * not vectorise), so their order, and so their rounding, differs from numpy's; the references agree
 * within float32's precision (tests/core/kernel/test_transformer.py).
 */

#define MGF_SUMS 16

/* The sum of x[0..n) in MGF_SUMS partial sums. */
MGF_INLINE float MGF_ISA_NAME(mgf_sum)(int n, const float *x)
{
    float part[MGF_SUMS] = {0};
    int j = 0;
    for (; j + MGF_SUMS <= n; j += MGF_SUMS)
        for (int l = 0; l < MGF_SUMS; l++)
            part[l] += x[j + l];
    float total = 0.0f;
    for (; j < n; j++)
        total += x[j];
    for (int l = 0; l < MGF_SUMS; l++)
        total += part[l];
    return total;
}

/* The dot product of a[0..n) and b[0..n), in MGF_SUMS partial sums. */
MGF_INLINE float MGF_ISA_NAME(mgf_dot)(int n, const float *a, const float *b)
{
    float part[MGF_SUMS] = {0};
    int j = 0;
    for (; j + MGF_SUMS <= n; j += MGF_SUMS)
        for (int l = 0; l < MGF_SUMS; l++)
            part[l] += a[j + l] * b[j + l];
    float total = 0.0f;
    for (; j < n; j++)
        total += a[j] * b[j];
    for (int l = 0; l < MGF_SUMS; l++)
        total += part[l];
    return total;
}

/* scores[0..length) = softmax(scores * scale), in place. */
MGF_INLINE void MGF_ISA_NAME(mgf_softmax)(int length, float *scores, float scale)
{
    float part[MGF_SUMS];
    for (int l = 0; l < MGF_SUMS; l++)
        part[l] = -INFINITY;
    int t = 0;
    for (; t + MGF_SUMS <= length; t += MGF_SUMS)
        for (int l = 0; l < MGF_SUMS; l++)
            part[l] = scores[t + l] > part[l] ? scores[t + l] : part[l];
    float top = -INFINITY;
    for (; t < length; t++)
        top = scores[t] > top ? scores[t] : top;
    for (int l = 0; l < MGF_SUMS; l++)
        top = part[l] > top ? part[l] : top;
    for (t = 0; t < length; t++)
        scores[t] = MGF_ISA_NAME(mgf_exp)((scores[t] - top) * scale);
    float inverse = 1.0f / MGF_ISA_NAME(mgf_sum)(length, scores);
    for (t = 0; t < length; t++)
        scores[t] *= inverse;
}

/* The float32 whose high half is the bf16 `bits`. */
MGF_INLINE float MGF_ISA_NAME(mgf_bf16_float)(uint16_t bits)
{
    uint32_t word = (uint32_t)bits << 16;
    float value;
    memcpy(&value, &word, sizeof value);
    return value;
}

/* y = (x - mean) / sqrt(variance + epsilon) * gamma + beta, row by row, over `width` columns. */
static void MGF_ISA_NAME(mgf_layer_norm)(int rows, int width, const float *x, long ldx, const float *gamma,
                                         const float *beta, float epsilon, float *y, long ldy)
{
    for (int r = 0; r < rows; r++) {
        const float *xr = x + r * ldx;
        float *yr = y + r * ldy;
        float mean = MGF_ISA_NAME(mgf_sum)(width, xr) / (float)width;
        for (int j = 0; j < width; j++)
            yr[j] = xr[j] - mean;
        float variance = MGF_ISA_NAME(mgf_dot)(width, yr, yr) / (float)width;
        float inverse = 1.0f / sqrtf(variance + epsilon);
        for (int j = 0; j < width; j++)
            yr[j] = yr[j] * inverse * gamma[j] + beta[j];
    }
}

/* x = GELU(x) in place: GPT-2's tanh approximation, or with `exact` the erf form (libm's erff, scalar). */
static void MGF_ISA_NAME(mgf_gelu)(int rows, int n, float *x, long ldx, int exact)
{
    for (int r = 0; r < rows; r++) {
        float *xr = x + r * ldx;
        if (exact) {
            for (int j = 0; j < n; j++)
                xr[j] = 0.5f * xr[j] * (1.0f + erff(xr[j] * 0.70710678118654752f));
        } else {
            for (int j = 0; j < n; j++) {
                float v = xr[j];
                xr[j] = 0.5f * v * (1.0f + MGF_ISA_NAME(mgf_tanh)(0.79788456080286536f * (v + 0.044715f * v * v * v)));
            }
        }
    }
}

/* out[0..size) = softmax(q . k_t * scale over t < length) weighted sum of values[t]: two one-row products
 * (mgf_matmul_f32, which streams the cache once in register tiles), the keys transposed, keys_t[s * ldk + t],
 * the values [length, size] rows; `scores` room for `length` floats. */
static void MGF_ISA_NAME(mgf_attend)(int length, int size, const float *q, const float *keys_t, long ldk,
                                     const float *values, float scale, float *scores, float *out)
{
    for (int t = 0; t < length; t++)
        scores[t] = 0.0f;
    MGF_ISA_NAME(mgf_matmul_f32)(1, length, size, q, size, keys_t, ldk, NULL, scores, length);
    MGF_ISA_NAME(mgf_softmax)(length, scores, scale);
    for (int s = 0; s < size; s++)
        out[s] = 0.0f;
    MGF_ISA_NAME(mgf_matmul_f32)(1, size, length, scores, length, values, size, NULL, out, size);
}

/* mgf_attend for `count` queries of consecutive positions over a cache held as bf16 (the high halves of float32s):
 * query i (q + i * ldq) sees the first length0 + i positions and writes out + i * ldo; its scores go to
 * scores + i * lds.  The cache holds half the bytes of an fp32 one.  One query (a step) reads it as it goes; several
 * (a primer's pass) convert the sequence's keys and values to float32 once, into `wide` (2 size (length0 + count - 1)
 * floats), and run the two products as register-tiled matrix products (mgf_matmul_f32) over all the queries. */
static void MGF_ISA_NAME(mgf_attend_bf16)(int count, int length0, int size, const float *q, long ldq,
                                          const uint16_t *keys_t, long ldk, const uint16_t *values, float scale,
                                          float *scores, long lds, float *out, long ldo, float *wide)
{
    int last = length0 + count - 1;
    if (count > 1) {
        float *k32 = wide, *v32 = wide + (long)size * last;
        for (int s = 0; s < size; s++)
            for (int t = 0; t < last; t++)
                k32[(long)s * last + t] = MGF_ISA_NAME(mgf_bf16_float)(keys_t[(long)s * ldk + t]);
        for (long e = 0; e < (long)last * size; e++)
            v32[e] = MGF_ISA_NAME(mgf_bf16_float)(values[e]);
        for (int i = 0; i < count; i++)
            for (int t = 0; t < last; t++)
                scores[i * lds + t] = 0.0f;
        MGF_ISA_NAME(mgf_matmul_f32)(count, last, size, q, ldq, k32, last, NULL, scores, lds);
        for (int i = 0; i < count; i++) {
            float *sc = scores + i * lds;
            int length = length0 + i;
            MGF_ISA_NAME(mgf_softmax)(length, sc, scale);
            for (int t = length; t < last; t++)
                sc[t] = 0.0f;
            for (int e = 0; e < size; e++)
                out[i * ldo + e] = 0.0f;
        }
        MGF_ISA_NAME(mgf_matmul_f32)(count, size, last, scores, lds, v32, size, NULL, out, ldo);
        return;
    }
    for (int t = 0; t < length0; t++)
        scores[t] = 0.0f;
    for (int s = 0; s < size; s++) {
        const uint16_t *row = keys_t + (long)s * ldk;
        float qs = q[s];
        for (int t = 0; t < length0; t++)
            scores[t] += qs * MGF_ISA_NAME(mgf_bf16_float)(row[t]);
    }
    MGF_ISA_NAME(mgf_softmax)(length0, scores, scale);
    for (int e = 0; e < size; e++)
        out[e] = 0.0f;
    for (int t = 0; t < length0; t++) {
        const uint16_t *v = values + (long)t * size;
        for (int e = 0; e < size; e++)
            out[e] += scores[t] * MGF_ISA_NAME(mgf_bf16_float)(v[e]);
    }
}

#undef MGF_SUMS

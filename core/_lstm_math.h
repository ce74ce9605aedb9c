/* The LSTM cell's element-wise part, written so that GCC vectorises it.
 *
 * expf from libm is scalar and dominates a step at small H, so exp is evaluated here with the
 * Cephes polynomial (about 2 ulp in float32), branch-free, and every function that loops is
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

#endif

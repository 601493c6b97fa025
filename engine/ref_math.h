/* ref_math.h: the f32 math kernels of the CPU references, shared by the target's (ref.c) and the
 * MTP assistant's (ref_mtp.c) so the two can never drift apart. Static inlines, no state. */
#ifndef NB_REF_MATH_H
#define NB_REF_MATH_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Dot product with 8 independent partial sums (vectorizable, and more accurate than one sum). */
static inline float nb_rm_dot(const float *a, const float *b, size_t n)
{
    float s[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            s[j] += a[i + j] * b[i + j];
    float r = 0;
    for (; i < n; i++)
        r += a[i] * b[i];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])) + r;
}

/* y = x / sqrt(mean(x^2) + eps) * w  (w NULL: no weight). y may alias x. */
static inline void nb_rm_rmsnorm(float *y, const float *x, const float *w, size_t n, float eps)
{
    double ss = 0;
    for (size_t i = 0; i < n; i++)
        ss += (double)x[i] * x[i];
    float s = (float)(1.0 / sqrt(ss / (double)n + eps));
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] * s * (w ? w[i] : 1.0f);
}

/* GELU, tanh approximation: 0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3))). */
static inline float nb_rm_gelu(float x)
{
    const float c = 0.79788456080286535588f; /* sqrt(2/pi) */
    return 0.5f * x * (1.0f + tanhf(c * (x + 0.044715f * x * x * x)));
}

/* cs[n_rot/2][2]: cos/sin of theta_i = pos * base^(-2i/n_rot) / factor_i for the n_rot/2 pairs.
 * A huge factor (1e30) gives theta ~ 0, i.e. no rotation. */
static inline void nb_rm_rope_angles(float *cs, int pos, uint32_t n_rot, float base,
                                     const float *factors)
{
    for (uint32_t i = 0; i < n_rot / 2; i++) {
        double theta = pos * pow((double)base, -2.0 * i / (double)n_rot);
        if (factors) theta /= factors[i];
        cs[2 * i] = (float)cos(theta);
        cs[2 * i + 1] = (float)sin(theta);
    }
}

/* NeoX rotation of x[n_heads][hd] by the angles cs (nb_rm_rope_angles): pairs (i, i + n_rot/2);
 * dims >= n_rot untouched. */
static inline void nb_rm_rope(float *x, uint32_t n_heads, uint32_t hd, uint32_t n_rot,
                              const float *cs)
{
    uint32_t half = n_rot / 2;
    for (uint32_t h = 0; h < n_heads; h++) {
        float *p = x + (size_t)h * hd;
        for (uint32_t i = 0; i < half; i++) {
            float x0 = p[i], x1 = p[i + half], c = cs[2 * i], s = cs[2 * i + 1];
            p[i] = x0 * c - x1 * s;
            p[i + half] = x0 * s + x1 * c;
        }
    }
}

/* One head's attention over cached positions [lo, hi): out[hd] = softmax(scale * q . K[j]) . V[j].
 * K and V are [n_ctx][kvd] with the head's values at offset koff of a row; scores is [>= hi]
 * scratch. hi > lo. */
static inline void nb_rm_attend(float *out, const float *q, const float *K, const float *V,
                                size_t kvd, size_t koff, uint32_t hd, int lo, int hi, float scale,
                                float *scores)
{
    float mx = -INFINITY;
    for (int j = lo; j < hi; j++) {
        float s = nb_rm_dot(q, K + (size_t)j * kvd + koff, hd) * scale;
        scores[j] = s;
        if (s > mx) mx = s;
    }
    double sum = 0;
    for (int j = lo; j < hi; j++) {
        scores[j] = expf(scores[j] - mx);
        sum += scores[j];
    }
    memset(out, 0, hd * sizeof(float));
    for (int j = lo; j < hi; j++) {
        float p = (float)(scores[j] / sum);
        const float *vj = V + (size_t)j * kvd + koff;
        for (uint32_t i = 0; i < hd; i++)
            out[i] += p * vj[i];
    }
}

#endif

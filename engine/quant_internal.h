/* quant_internal: what quant.c (the dispatch table and the 32-element types) shares with
 * quant_k.c (the 256-element K-quants and the IQ4 types). Not part of the engine's API.
 *
 * Every block function converts `nb` whole blocks, reads and writes byte by byte (any
 * alignment) and mirrors ggml's reference code expression for expression, so its float results
 * are the same bits as ggml-quants.c's on the same input (tests/test_quant.c checks this against
 * fixtures written by ggml itself, tools/gen-quant-fixtures.c). That only holds while the
 * compiler does not contract a * b + c into a fused multiply-add: GCC in ISO C mode (-std=c11,
 * as CMake builds us) does not, and the x86-64 baseline has no FMA instruction anyway.
 */
#ifndef NB_QUANT_INTERNAL_H
#define NB_QUANT_INTERNAL_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "quant.h"

static inline uint16_t nbq_ld16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline void nbq_st16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8); }
static inline float nbq_h(const uint8_t *p) { return nb_f16_to_f32(nbq_ld16(p)); }

/* ggml's nearest_int: round to nearest, ties to even, by adding 1.5 * 2^23 and reading the
 * mantissa. Exact for |f| <= 2^22 - 1; beyond that it returns what ggml's does (garbage, but
 * the same garbage), which is why it is not rintf(). */
static inline int nbq_nearest_int(float f)
{
    float v = f + 12582912.f;
    int32_t i;
    memcpy(&i, &v, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

/* The 16 levels of IQ4_NL and IQ4_XS (ggml-common.h kvalues_iq4nl). */
/* The largest magnitude of x[0..n) (0 for none); *max gets the signed value that has it (the
 * first such, as ggml's loops keep it). */
static inline float nbq_absmax(const float *x, int n, float *max)
{
    float amax = 0, m = 0;
    for (int i = 0; i < n; i++)
        if (amax < fabsf(x[i])) amax = fabsf(x[i]), m = x[i];
    *max = m;
    return amax;
}

extern const int8_t nbq_iq4nl_values[16];

typedef void (*nbq_dequant_fn)(const uint8_t *src, float *dst, uint64_t nblocks);
typedef void (*nbq_quant_fn)(const float *src, uint8_t *dst, uint64_t nblocks);

/* quant_k.c: 256-element super-blocks (Q2_K..Q6_K, IQ4_XS) and IQ4_NL (32). */
void nbq_dq_q2_k(const uint8_t *s, float *y, uint64_t nb);
void nbq_dq_q3_k(const uint8_t *s, float *y, uint64_t nb);
void nbq_dq_q4_k(const uint8_t *s, float *y, uint64_t nb);
void nbq_dq_q5_k(const uint8_t *s, float *y, uint64_t nb);
void nbq_dq_q6_k(const uint8_t *s, float *y, uint64_t nb);
void nbq_dq_iq4_nl(const uint8_t *s, float *y, uint64_t nb);
void nbq_dq_iq4_xs(const uint8_t *s, float *y, uint64_t nb);
void nbq_q_q2_k(const float *x, uint8_t *o, uint64_t nb);
void nbq_q_q3_k(const float *x, uint8_t *o, uint64_t nb);
void nbq_q_q4_k(const float *x, uint8_t *o, uint64_t nb);
void nbq_q_q5_k(const float *x, uint8_t *o, uint64_t nb);
void nbq_q_q6_k(const float *x, uint8_t *o, uint64_t nb);
void nbq_q_iq4_nl(const float *x, uint8_t *o, uint64_t nb);
void nbq_q_iq4_xs(const float *x, uint8_t *o, uint64_t nb);

#endif

/* quant.c: fp16/bf16 conversion, row dequantization and reference quantizers (see quant.h).
 *
 * Each tensor type is one pair of functions over whole blocks, registered in `ops` below (the one
 * table of every type); the 32-element types live here, the K-quants and IQ4 types in
 * quant_k.c. Inputs are read byte by byte, so rows may sit at any alignment inside a mapped
 * file. Float results are bit-exact with ggml's reference code (quant_internal.h).
 */
#include "quant_internal.h"

#include <float.h>
#include <math.h>

/* ---------------------------------------------------------------------------------------------
 * fp16 / bf16
 */

static uint32_t f32_bits(float f)
{
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    return b;
}

static float f32_from(uint32_t b)
{
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

float nb_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0) { /* zero or subnormal: man * 2^-24, exact in f32 */
        float v = (float)man * 0x1p-24f;
        return sign ? -v : v;
    }
    if (exp == 31) return f32_from(sign | 0x7f800000u | man << 13); /* inf / NaN */
    return f32_from(sign | (exp + 112) << 23 | man << 13);
}

/* Right shift of m by s (1..31) rounding to nearest, ties to even. */
static uint32_t shr_rne(uint32_t m, uint32_t s)
{
    uint32_t q = m >> s, rem = m & ((1u << s) - 1), half = 1u << (s - 1);
    return q + (rem > half || (rem == half && (q & 1)));
}

uint16_t nb_f32_to_f16(float f)
{
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return sign | 0x7e00 | (uint16_t)((ax >> 13) & 0x3ff); /* NaN: quiet */
    if (ax >= 0x477ff000u) return sign | 0x7c00; /* >= 65520 (or inf) rounds to inf */
    if (ax >= 0x38800000u) /* normal fp16: rebias the exponent, round the mantissa; a carry out
                            * of the mantissa correctly bumps the exponent */
        return sign | (uint16_t)shr_rne(ax - (112u << 23), 13);
    if (ax < 0x33000000u) return sign; /* below 2^-25: rounds to zero */
    /* Subnormal fp16: value = m * 2^(e-150) with the implicit bit; in units of 2^-24 that is
     * m >> (126 - e), for e in 102..112. The result may round up to the smallest normal. */
    uint32_t e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u;
    return sign | (uint16_t)shr_rne(m, 126 - e);
}

float nb_bf16_to_f32(uint16_t h)
{
    return f32_from((uint32_t)h << 16);
}

uint16_t nb_f32_to_bf16(float f)
{
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40); /* quiet NaN */
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}

/* ---------------------------------------------------------------------------------------------
 * Per-type block functions: `nb` blocks from src to dst
 */


static void dq_f32(const uint8_t *s, float *y, uint64_t nb) { memcpy(y, s, nb * 4); }
static void dq_f16(const uint8_t *s, float *y, uint64_t nb)
{
    for (uint64_t i = 0; i < nb; i++) y[i] = nb_f16_to_f32(nbq_ld16(s + 2 * i));
}
static void dq_bf16(const uint8_t *s, float *y, uint64_t nb)
{
    for (uint64_t i = 0; i < nb; i++) y[i] = nb_bf16_to_f32(nbq_ld16(s + 2 * i));
}

/* Q4_0 block: fp16 d, then 16 bytes; byte j = element j (low nibble) | element j+16 (high). */
static void dq_q4_0(const uint8_t *s, float *y, uint64_t nb)
{
    for (uint64_t b = 0; b < nb; b++, s += 18, y += 32) {
        float d = nb_f16_to_f32(nbq_ld16(s));
        for (int j = 0; j < 16; j++) {
            y[j] = (float)((s[2 + j] & 0x0f) - 8) * d;
            y[j + 16] = (float)((s[2 + j] >> 4) - 8) * d;
        }
    }
}

/* Q8_0 block: fp16 d, then 32 signed bytes. */
static void dq_q8_0(const uint8_t *s, float *y, uint64_t nb)
{
    for (uint64_t b = 0; b < nb; b++, s += 34, y += 32) {
        float d = nb_f16_to_f32(nbq_ld16(s));
        for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)s[2 + j] * d;
    }
}

/* Q4_1 block: fp16 d, fp16 m, then 16 bytes as Q4_0's; x = q * d + m. */
static void dq_q4_1(const uint8_t *s, float *y, uint64_t nb)
{
    for (uint64_t b = 0; b < nb; b++, s += 20, y += 32) {
        float d = nbq_h(s), m = nbq_h(s + 2);
        for (int j = 0; j < 16; j++) {
            y[j] = (float)(s[4 + j] & 0x0f) * d + m;
            y[j + 16] = (float)(s[4 + j] >> 4) * d + m;
        }
    }
}

/* The fifth bits of a Q5_0 / Q5_1 block: bit j of the little-endian u32 is element j's. */
static uint32_t ld32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Q5_0 block: fp16 d, u32 qh, 16 bytes as Q4_0's; x = ((nibble | fifth bit << 4) - 16) * d. */
static void dq_q5_0(const uint8_t *s, float *y, uint64_t nb)
{
    for (uint64_t b = 0; b < nb; b++, s += 22, y += 32) {
        float d = nbq_h(s);
        uint32_t qh = ld32(s + 2);
        for (int j = 0; j < 16; j++) {
            int x0 = ((s[6 + j] & 0x0f) | ((qh >> j) & 1) << 4) - 16;
            int x1 = ((s[6 + j] >> 4) | ((qh >> (j + 16)) & 1) << 4) - 16;
            y[j] = (float)x0 * d;
            y[j + 16] = (float)x1 * d;
        }
    }
}

/* Q5_1 block: fp16 d, fp16 m, u32 qh, 16 bytes; x = q * d + m with q as in Q5_0 less the 16. */
static void dq_q5_1(const uint8_t *s, float *y, uint64_t nb)
{
    for (uint64_t b = 0; b < nb; b++, s += 24, y += 32) {
        float d = nbq_h(s), m = nbq_h(s + 2);
        uint32_t qh = ld32(s + 4);
        for (int j = 0; j < 16; j++) {
            int x0 = (s[8 + j] & 0x0f) | ((qh >> j) & 1) << 4;
            int x1 = (s[8 + j] >> 4) | ((qh >> (j + 16)) & 1) << 4;
            y[j] = (float)x0 * d + m;
            y[j + 16] = (float)x1 * d + m;
        }
    }
}

static void q_f32(const float *x, uint8_t *d, uint64_t nb) { memcpy(d, x, nb * 4); }
static void q_f16(const float *x, uint8_t *d, uint64_t nb)
{
    for (uint64_t i = 0; i < nb; i++) nbq_st16(d + 2 * i, nb_f32_to_f16(x[i]));
}
static void q_bf16(const float *x, uint8_t *d, uint64_t nb)
{
    for (uint64_t i = 0; i < nb; i++) nbq_st16(d + 2 * i, nb_f32_to_bf16(x[i]));
}

/* ggml's reference Q4_0 rounding: the signed value of largest magnitude maps to -8. */
static void q_q4_0(const float *x, uint8_t *o, uint64_t nb)
{
    for (uint64_t b = 0; b < nb; b++, x += 32, o += 18) {
        float max;
        nbq_absmax(x, 32, &max);
        float d = max / -8, id = d != 0 ? 1.0f / d : 0.0f;
        nbq_st16(o, nb_f32_to_f16(d));
        for (int j = 0; j < 16; j++) {
            float t0 = x[j] * id + 8.5f, t1 = x[j + 16] * id + 8.5f;
            /* Finite input keeps t in [0.5, 16.5]; the clamps only guard inf/NaN input. */
            int q0 = t0 >= 0 ? (t0 < 15 ? (int)t0 : 15) : 0;
            int q1 = t1 >= 0 ? (t1 < 15 ? (int)t1 : 15) : 0;
            o[2 + j] = (uint8_t)(q0 | q1 << 4);
        }
    }
}

static void q_q8_0(const float *x, uint8_t *o, uint64_t nb)
{
    for (uint64_t b = 0; b < nb; b++, x += 32, o += 34) {
        float max, amax = nbq_absmax(x, 32, &max);
        float d = amax / 127, id = d != 0 ? 1.0f / d : 0.0f;
        nbq_st16(o, nb_f32_to_f16(d));
        for (int j = 0; j < 32; j++) {
            float q = roundf(x[j] * id);
            q = q >= -127 ? (q <= 127 ? q : 127) : (q == q ? -127 : 0); /* NaN -> 0 */
            o[2 + j] = (uint8_t)(int8_t)q;
        }
    }
}

/* ggml stores (int8_t)(float) and (uint8_t)(float), which x86-64 compiles as a truncating
 * conversion to int32 (0x80000000 for NaN and out-of-range values) and then keeps the low
 * byte. These do the same without undefined behaviour for any input. */
static int8_t to_i8(float f) { return fabsf(f) < 0x1p31f ? (int8_t)(int32_t)f : 0; }
static uint8_t to_u8(float f) { return fabsf(f) < 0x1p31f ? (uint8_t)(int32_t)f : 0; }
static int min_i(int a, int b) { return a < b ? a : b; }

/* ggml's reference Q4_1: d = (max - min) / 15, m = min,
 * q = min(15, (int8)((x - min) / d + 0.5)). */
static void q_q4_1(const float *x, uint8_t *o, uint64_t nb)
{
    for (uint64_t b = 0; b < nb; b++, x += 32, o += 20) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < 32; j++) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        float d = (max - min) / 15, id = d != 0 ? 1.0f / d : 0.0f;
        nbq_st16(o, nb_f32_to_f16(d));
        nbq_st16(o + 2, nb_f32_to_f16(min));
        for (int j = 0; j < 16; j++) {
            uint8_t q0 = (uint8_t)min_i(15, to_i8((x[j] - min) * id + 0.5f));
            uint8_t q1 = (uint8_t)min_i(15, to_i8((x[j + 16] - min) * id + 0.5f));
            o[4 + j] = (uint8_t)(q0 | q1 << 4);
        }
    }
}

/* ggml's reference Q5_0: as Q4_0 with d = max / -16 and q = min(31, (int8)(x / d + 16.5)). */
static void q_q5_0(const float *x, uint8_t *o, uint64_t nb)
{
    for (uint64_t b = 0; b < nb; b++, x += 32, o += 22) {
        float max;
        nbq_absmax(x, 32, &max);
        float d = max / -16, id = d != 0 ? 1.0f / d : 0.0f;
        nbq_st16(o, nb_f32_to_f16(d));
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            uint8_t q0 = (uint8_t)min_i(31, to_i8(x[j] * id + 16.5f));
            uint8_t q1 = (uint8_t)min_i(31, to_i8(x[j + 16] * id + 16.5f));
            o[6 + j] = (uint8_t)((q0 & 0x0f) | (q1 & 0x0f) << 4);
            qh |= (uint32_t)(q0 >> 4 & 1) << j | (uint32_t)(q1 >> 4 & 1) << (j + 16);
        }
        for (int k = 0; k < 4; k++) o[2 + k] = (uint8_t)(qh >> 8 * k);
    }
}

/* ggml's reference Q5_1: d = (max - min) / 31, m = min, q = (uint8)((x - min) / d + 0.5). */
static void q_q5_1(const float *x, uint8_t *o, uint64_t nb)
{
    for (uint64_t b = 0; b < nb; b++, x += 32, o += 24) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < 32; j++) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        float d = (max - min) / 31, id = d != 0 ? 1.0f / d : 0.0f;
        nbq_st16(o, nb_f32_to_f16(d));
        nbq_st16(o + 2, nb_f32_to_f16(min));
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            uint8_t q0 = to_u8((x[j] - min) * id + 0.5f);
            uint8_t q1 = to_u8((x[j + 16] - min) * id + 0.5f);
            o[8 + j] = (uint8_t)((q0 & 0x0f) | (q1 & 0x0f) << 4);
            qh |= (uint32_t)(q0 >> 4 & 1) << j | (uint32_t)(q1 >> 4 & 1) << (j + 16);
        }
        for (int k = 0; k < 4; k++) o[4 + k] = (uint8_t)(qh >> 8 * k);
    }
}

/* ---------------------------------------------------------------------------------------------
 * Dispatch table
 */

static const struct {
    nbq_dequant_fn dq;
    nbq_quant_fn q;
} ops[GGML_TYPE_MAX] = {
    [GGML_F32] = {dq_f32, q_f32},
    [GGML_F16] = {dq_f16, q_f16},
    [GGML_BF16] = {dq_bf16, q_bf16},
    [GGML_Q4_0] = {dq_q4_0, q_q4_0},
    [GGML_Q4_1] = {dq_q4_1, q_q4_1},
    [GGML_Q5_0] = {dq_q5_0, q_q5_0},
    [GGML_Q5_1] = {dq_q5_1, q_q5_1},
    [GGML_Q8_0] = {dq_q8_0, q_q8_0},
    [GGML_Q2_K] = {nbq_dq_q2_k, nbq_q_q2_k},
    [GGML_Q3_K] = {nbq_dq_q3_k, nbq_q_q3_k},
    [GGML_Q4_K] = {nbq_dq_q4_k, nbq_q_q4_k},
    [GGML_Q5_K] = {nbq_dq_q5_k, nbq_q_q5_k},
    [GGML_Q6_K] = {nbq_dq_q6_k, nbq_q_q6_k},
    [GGML_IQ4_NL] = {nbq_dq_iq4_nl, nbq_q_iq4_nl},
    [GGML_IQ4_XS] = {nbq_dq_iq4_xs, nbq_q_iq4_xs},
};

static bool known(enum ggml_type t) { return (unsigned)t < GGML_TYPE_MAX && ggml_blck_size(t); }

bool nb_dequant_supported(enum ggml_type t) { return known(t) && ops[t].dq; }
bool nb_quant_supported(enum ggml_type t) { return known(t) && ops[t].q; }

int nb_dequant_row(enum ggml_type t, const void *src, float *dst, uint64_t n)
{
    if (!nb_dequant_supported(t) || n % ggml_blck_size(t)) return -1;
    ops[t].dq(src, dst, n / ggml_blck_size(t));
    return 0;
}

int nb_quant_row(enum ggml_type t, const float *src, void *dst, uint64_t n)
{
    if (!nb_quant_supported(t) || n % ggml_blck_size(t)) return -1;
    ops[t].q(src, dst, n / ggml_blck_size(t));
    return 0;
}

/* quant_k.c: the K-quants (Q2_K..Q6_K) and the non-linear 4-bit types (IQ4_NL, IQ4_XS):
 * whole-block dequantization and ggml's reference quantizers (see quant.h for the layouts,
 * quant_internal.h for the bit-exactness contract).
 *
 * Each function is our own transcription of the arithmetic of ggml-quants.c's
 * dequantize_row_* / quantize_row_*_ref, keeping ggml's operand order where it decides the
 * float result (d * sc * q is (d * sc) * q; a K-quant value is d1 * q - m1 with d1 = d * sc).
 */
#include "quant_internal.h"

#include <math.h>

const int8_t nbq_iq4nl_values[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                     1,    13,   25,  38,  53,  69,  89,  113};

/* ---------------------------------------------------------------------------------------------
 * Dequantization
 */

/* Q2_K, 84 bytes: u8 scales[16] @0 (low nibble: scale, high nibble: min, one per 16 elements),
 * u8 qs[64] @16 (2 bits each), fp16 d @80, fp16 dmin @82. Element 128h + 32j' + 16s + l (half
 * h, 2-bit plane j', 16-group s) is bits 2j'..2j'+1 of qs[32h + 16s + l], with scale byte
 * 8h + 2j' + s. */
void nbq_dq_q2_k(const uint8_t *s, float *y, uint64_t nb)
{
    for (uint64_t b = 0; b < nb; b++, s += 84) {
        float d = nbq_h(s + 80), min = nbq_h(s + 82);
        const uint8_t *q = s + 16, *sc = s;
        for (int h = 0; h < 2; h++, q += 32)
            for (int shift = 0; shift < 8; shift += 2)
                for (int g = 0; g < 2; g++) {
                    uint8_t c = *sc++;
                    float dl = d * (c & 0xF), ml = min * (c >> 4);
                    for (int l = 0; l < 16; l++) *y++ = dl * ((q[16 * g + l] >> shift) & 3) - ml;
                }
    }
}

/* The 16 six-bit scales of a Q3_K block, 0..63 (the caller subtracts 32): low 4 bits from
 * byte j (j < 8) or the high nibble of byte j - 8, high 2 bits from byte 8 + j % 4 at bit
 * 2 * (j / 4). */
static int q3k_scale(const uint8_t *sc, int j)
{
    int lo = j < 8 ? sc[j] & 0xF : sc[j - 8] >> 4;
    return lo | ((sc[8 + j % 4] >> (2 * (j / 4))) & 3) << 4;
}

/* Q3_K, 110 bytes: u8 hmask[32] @0, u8 qs[64] @32, u8 scales[12] @96 (16 six-bit scales,
 * q3k_scale), fp16 d @108. The 2 low bits sit as in Q2_K; the high bit of element
 * 128h + 32j' + l is bit 4h + j' of hmask[l], and a clear bit means "minus 4". */
void nbq_dq_q3_k(const uint8_t *s, float *y, uint64_t nb)
{
    for (uint64_t b = 0; b < nb; b++, s += 110) {
        float d = nbq_h(s + 108);
        const uint8_t *hm = s, *q = s + 32, *sc = s + 96;
        int is = 0;
        uint8_t m = 1;
        for (int h = 0; h < 2; h++, q += 32)
            for (int shift = 0; shift < 8; shift += 2, m <<= 1)
                for (int g = 0; g < 2; g++) {
                    float dl = d * (q3k_scale(sc, is++) - 32);
                    for (int l = 16 * g; l < 16 * g + 16; l++)
                        *y++ = dl * (((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4));
                }
    }
}

/* Scale and min j (0..7) of a Q4_K / Q5_K block, 6 bits each, in 12 bytes: j < 4 in the low 6
 * bits of bytes j and j + 4; j >= 4 in the nibbles of byte j + 4 with their top 2 bits in the
 * spare top bits of bytes j - 4 and j. */
static void k4_scale_min(const uint8_t *q, int j, uint8_t *sc, uint8_t *m)
{
    if (j < 4) {
        *sc = q[j] & 63, *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0xF) | (q[j - 4] >> 6) << 4);
        *m = (uint8_t)((q[j + 4] >> 4) | (q[j] >> 6) << 4);
    }
}

/* Q4_K, 144 bytes: fp16 d @0, fp16 dmin @2, scales[12] @4 (k4_scale_min), u8 qs[128] @16.
 * Each 64 elements take 32 bytes: the low nibbles are the first 32 (scale 2i), the high
 * nibbles the next 32 (scale 2i + 1); x = d * sc * q - dmin * m. */
void nbq_dq_q4_k(const uint8_t *s, float *y, uint64_t nb)
{
    for (uint64_t b = 0; b < nb; b++, s += 144) {
        float d = nbq_h(s), min = nbq_h(s + 2);
        const uint8_t *q = s + 16;
        for (int i = 0; i < 8; i += 2, q += 32) {
            uint8_t sc, m;
            k4_scale_min(s + 4, i, &sc, &m);
            float d1 = d * sc, m1 = min * m;
            k4_scale_min(s + 4, i + 1, &sc, &m);
            float d2 = d * sc, m2 = min * m;
            for (int l = 0; l < 32; l++) *y++ = d1 * (q[l] & 0xF) - m1;
            for (int l = 0; l < 32; l++) *y++ = d2 * (q[l] >> 4) - m2;
        }
    }
}

/* Q5_K, 176 bytes: as Q4_K with u8 qh[32] @16 and qs[128] @48; the fifth bit of element
 * 32k + l (k = 0..7) is bit k of qh[l]. */
void nbq_dq_q5_k(const uint8_t *s, float *y, uint64_t nb)
{
    for (uint64_t b = 0; b < nb; b++, s += 176) {
        float d = nbq_h(s), min = nbq_h(s + 2);
        const uint8_t *qh = s + 16, *ql = s + 48;
        uint8_t u1 = 1, u2 = 2;
        for (int i = 0; i < 8; i += 2, ql += 32, u1 <<= 2, u2 <<= 2) {
            uint8_t sc, m;
            k4_scale_min(s + 4, i, &sc, &m);
            float d1 = d * sc, m1 = min * m;
            k4_scale_min(s + 4, i + 1, &sc, &m);
            float d2 = d * sc, m2 = min * m;
            for (int l = 0; l < 32; l++) *y++ = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; l++) *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
        }
    }
}

/* Q6_K, 210 bytes: u8 ql[128] @0, u8 qh[64] @128, i8 scales[16] @192, fp16 d @208. Per 128
 * elements (64 ql, 32 qh, 8 scales): element 32k + l (k = 0..3, l = 0..31) has low nibble
 * ql[l + 32 (k & 1)] >> 4 (k >> 1), high 2 bits qh[l] >> 2k, scale 2k + l / 16; x =
 * d * sc * (q - 32), evaluated as (d * sc) * q. */
void nbq_dq_q6_k(const uint8_t *s, float *y, uint64_t nb)
{
    for (uint64_t b = 0; b < nb; b++, s += 210) {
        float d = nbq_h(s + 208);
        const uint8_t *ql = s, *qh = s + 128;
        const int8_t *sc = (const int8_t *)(s + 192);
        for (int h = 0; h < 2; h++, y += 128, ql += 64, qh += 32, sc += 8)
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int q1 = ((ql[l] & 0xF) | ((qh[l] >> 0) & 3) << 4) - 32;
                int q2 = ((ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4) - 32;
                int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
                int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
                y[l] = d * sc[is] * q1;
                y[l + 32] = d * sc[is + 2] * q2;
                y[l + 64] = d * sc[is + 4] * q3;
                y[l + 96] = d * sc[is + 6] * q4;
            }
    }
}

/* IQ4_NL, 18 bytes: fp16 d, 16 bytes as Q4_0's (element j low nibble, j + 16 high); x = d *
 * values[nibble]. */
void nbq_dq_iq4_nl(const uint8_t *s, float *y, uint64_t nb)
{
    for (uint64_t b = 0; b < nb; b++, s += 18, y += 32) {
        float d = nbq_h(s);
        for (int j = 0; j < 16; j++) {
            y[j] = d * nbq_iq4nl_values[s[2 + j] & 0xF];
            y[j + 16] = d * nbq_iq4nl_values[s[2 + j] >> 4];
        }
    }
}

/* IQ4_XS, 136 bytes: fp16 d @0, u16 scales_h @2, u8 scales_l[4] @4, qs[128] @8. Sub-block i
 * (32 elements, 16 bytes laid out as IQ4_NL's) has the 6-bit scale ls = nibble i of scales_l |
 * bits 2i..2i+1 of scales_h << 4; x = (d * (ls - 32)) * values[nibble]. */
void nbq_dq_iq4_xs(const uint8_t *s, float *y, uint64_t nb)
{
    for (uint64_t b = 0; b < nb; b++, s += 136) {
        float d = nbq_h(s);
        uint16_t sh = nbq_ld16(s + 2);
        const uint8_t *qs = s + 8;
        for (int i = 0; i < 8; i++, y += 32, qs += 16) {
            int ls = ((s[4 + i / 2] >> 4 * (i % 2)) & 0xF) | ((sh >> 2 * i) & 3) << 4;
            float dl = d * (ls - 32);
            for (int j = 0; j < 16; j++) {
                y[j] = dl * nbq_iq4nl_values[qs[j] & 0xF];
                y[j + 16] = dl * nbq_iq4nl_values[qs[j] >> 4];
            }
        }
    }
}

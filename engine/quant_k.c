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

/* ---------------------------------------------------------------------------------------------
 * Reference quantizers: ggml's quantize_row_*_ref, search loops and all
 */

#define GROUP_MAX_EPS 1e-15f /* ggml: a group whose largest magnitude is below this is zero */

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* One trial of the symmetric fits below: the levels l = round(iscale * x) in -nmax..nmax-1, the
 * weighted (x^2) sums of x l (returned) and of l^2 (*suml2); L, when given, gets l + off. */
static float sym_fit(int n, int nmax, const float *x, float iscale, int8_t *L, int off,
                     float *suml2)
{
    float sumlx = 0, sl2 = 0;
    for (int i = 0; i < n; i++) {
        int l = clampi(nbq_nearest_int(iscale * x[i]), -nmax, nmax - 1);
        if (L) L[i] = (int8_t)(l + off);
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        sl2 += w * l * l;
    }
    *suml2 = sl2;
    return sumlx;
}

/* ggml's make_qx_quants with rmse_type 1 (weights x^2), the only use the reference quantizers
 * make of it (Q6_K): symmetric levels -nmax..nmax-1 stored + nmax in L, the scale from a
 * weighted least-squares fit, tried at 19 trial inverse scales around -nmax / max. */
static float qx_quants(int n, int nmax, const float *x, int8_t *L)
{
    float max, amax = nbq_absmax(x, n, &max);
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float suml2, sumlx = sym_fit(n, nmax, x, -nmax / max, L, nmax, &suml2);
    float scale = suml2 ? sumlx / suml2 : 0.0f, best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        float iscale = -(nmax + 0.1f * is) / max;
        sumlx = sym_fit(n, nmax, x, iscale, NULL, 0, &suml2);
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            sym_fit(n, nmax, x, iscale, L, nmax, &suml2);
            scale = sumlx / suml2, best = scale * sumlx;
        }
    }
    return scale;
}

/* ggml's make_q3_quants with do_rmse (Q3_K): levels -nmax..nmax-1, then up to 5 passes that
 * move single elements to the level that improves the weighted (x^2) fit. */
static float q3_quants(int n, int nmax, const float *x, int8_t *L)
{
    float max, amax = nbq_absmax(x, n, &max);
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float suml2, sumlx = sym_fit(n, nmax, x, -nmax / max, L, 0, &suml2);
    for (int itry = 0; itry < 5; itry++) {
        int n_changed = 0;
        for (int i = 0; i < n; i++) {
            float w = x[i] * x[i], slx = sumlx - w * x[i] * L[i];
            if (slx > 0) {
                float sl2 = suml2 - w * L[i] * L[i];
                int new_l = clampi(nbq_nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
                if (new_l != L[i]) {
                    slx += w * x[i] * new_l;
                    sl2 += w * new_l * new_l;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (int8_t)new_l, sumlx = slx, suml2 = sl2;
                        n_changed++;
                    }
                }
            }
        }
        if (!n_changed) break;
    }
    for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* ggml's make_qkx2_quants (Q2_K, Q4_K, Q5_K): x ~ scale * L - the_min with L in 0..nmax and
 * min <= 0, by weighted least squares over nstep + 1 trial inverse scales; error measured as
 * |diff| (use_mad) or diff^2. Laux is scratch of n. */
static float qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L,
                         float *the_min, uint8_t *Laux, float rmin, float rdelta, int nstep,
                         bool use_mad)
{
    float min = x[0], max = x[0], sum_w = weights[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min), scale = 1 / iscale, best_error = 0;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)clampi(nbq_nearest_int(iscale * (x[i] - min)), 0, nmax);
        float diff = scale * L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        best_error += weights[i] * diff;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = clampi(nbq_nearest_int(iscale * (x[i] - min)), 0, nmax);
            Laux[i] = (uint8_t)l;
            float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                diff = use_mad ? fabsf(diff) : diff * diff;
                cur_error += weights[i] * diff;
            }
            if (cur_error < best_error) {
                memcpy(L, Laux, (size_t)n);
                best_error = cur_error, scale = this_scale, min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

/* Packs 256 2-bit values as Q2_K and Q3_K store them: qs[32h + l] holds elements 128h + l,
 * +32, +64, +96 at bits 0, 2, 4, 6. */
static void pack_2bit(const uint8_t *L, uint8_t *qs)
{
    for (int j = 0; j < 256; j += 128)
        for (int l = 0; l < 32; l++)
            qs[j / 4 + l] = (uint8_t)(L[j + l] | L[j + l + 32] << 2 | L[j + l + 64] << 4 |
                                      L[j + l + 96] << 6);
}

void nbq_q_q2_k(const float *x, uint8_t *o, uint64_t nb)
{
    uint8_t L[256], Laux[16];
    float weights[16], mins[16], scales[16];
    for (uint64_t b = 0; b < nb; b++, x += 256, o += 84) {
        float max_scale = 0, max_min = 0; /* the min is subtracted: scales are positive */
        for (int j = 0; j < 16; j++) {
            for (int l = 0; l < 16; l++) weights[l] = fabsf(x[16 * j + l]);
            scales[j] = qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f,
                                    0.1f, 15, true);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        uint8_t *sc = o;
        if (max_scale > 0) {
            float iscale = 15.f / max_scale;
            for (int j = 0; j < 16; j++) sc[j] = (uint8_t)nbq_nearest_int(iscale * scales[j]);
            nbq_st16(o + 80, nb_f32_to_f16(max_scale / 15.f));
        } else {
            memset(sc, 0, 16);
            nbq_st16(o + 80, nb_f32_to_f16(0.f));
        }
        if (max_min > 0) {
            float iscale = 15.f / max_min;
            for (int j = 0; j < 16; j++)
                sc[j] = (uint8_t)(sc[j] | (unsigned)nbq_nearest_int(iscale * mins[j]) << 4);
            nbq_st16(o + 82, nb_f32_to_f16(max_min / 15.f));
        } else {
            nbq_st16(o + 82, nb_f32_to_f16(0.f));
        }
        /* Re-round every element against the scales as stored (fp16 d, 4-bit sc). */
        for (int j = 0; j < 16; j++) {
            float d = nbq_h(o + 80) * (sc[j] & 0xF);
            if (!d) continue;
            float dm = nbq_h(o + 82) * (sc[j] >> 4);
            for (int i = 0; i < 16; i++)
                L[16 * j + i] = (uint8_t)clampi(nbq_nearest_int((x[16 * j + i] + dm) / d), 0, 3);
        }
        pack_2bit(L, o + 16);
    }
}

void nbq_q_q3_k(const float *x, uint8_t *o, uint64_t nb)
{
    int8_t L[256];
    float scales[16];
    for (uint64_t b = 0; b < nb; b++, x += 256, o += 110) {
        for (int j = 0; j < 16; j++)
            scales[j] = q3_quants(16, 4, x + 16 * j, L + 16 * j);
        float max_scale;
        nbq_absmax(scales, 16, &max_scale);
        uint8_t *sc = o + 96;
        memset(sc, 0, 12);
        if (max_scale) {
            float iscale = -32.f / max_scale;
            for (int j = 0; j < 16; j++) {
                int8_t l = (int8_t)nbq_nearest_int(iscale * scales[j]); /* ggml's int8 first */
                l = (int8_t)(clampi(l, -32, 31) + 32);
                if (j < 8) sc[j] = l & 0xF;
                else sc[j - 8] = (uint8_t)(sc[j - 8] | (l & 0xF) << 4);
                sc[j % 4 + 8] = (uint8_t)(sc[j % 4 + 8] | (l >> 4) << (2 * (j / 4)));
            }
            nbq_st16(o + 108, nb_f32_to_f16(1 / iscale));
        } else {
            nbq_st16(o + 108, nb_f32_to_f16(0.f));
        }
        for (int j = 0; j < 16; j++) {
            float d = nbq_h(o + 108) * (int8_t)(q3k_scale(sc, j) - 32);
            if (!d) continue;
            for (int i = 0; i < 16; i++)
                L[16 * j + i] = (int8_t)(clampi(nbq_nearest_int(x[16 * j + i] / d), -4, 3) + 4);
        }
        /* The high bit of element 32k + l goes to bit k of hmask[l]; qs keeps the low 2. */
        uint8_t *hmask = o, low[256];
        memset(hmask, 0, 32);
        for (int j = 0; j < 256; j++) {
            if (L[j] > 3) hmask[j % 32] = (uint8_t)(hmask[j % 32] | 1 << (j / 32));
            low[j] = (uint8_t)(L[j] > 3 ? L[j] - 4 : L[j]);
        }
        pack_2bit(low, o + 32);
    }
}

/* Q4_K and Q5_K share everything but the level count (15 or 31) and the search range. */
static void k45_quant(const float *x, uint8_t *o, uint8_t *L, int nmax, float rmin, int nstep)
{
    uint8_t Laux[32];
    float weights[32], mins[8], scales[8], max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        const float *xb = x + 32 * j;
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++) sum_x2 += xb[l] * xb[l];
        float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++) weights[l] = av_x + fabsf(xb[l]);
        scales[j] = qkx2_quants(32, nmax, xb, weights, L + 32 * j, &mins[j], Laux, rmin, 0.1f,
                                nstep, false);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    uint8_t *sc = o + 4;
    for (int j = 0; j < 8; j++) {
        uint8_t ls = (uint8_t)nbq_nearest_int(inv_scale * scales[j]); /* ggml's u8, then min */
        uint8_t lm = (uint8_t)nbq_nearest_int(inv_min * mins[j]);
        ls = ls < 63 ? ls : 63, lm = lm < 63 ? lm : 63;
        if (j < 4) {
            sc[j] = ls, sc[j + 4] = lm;
        } else {
            sc[j + 4] = (uint8_t)((ls & 0xF) | (lm & 0xF) << 4);
            sc[j - 4] = (uint8_t)(sc[j - 4] | (ls >> 4) << 6);
            sc[j] = (uint8_t)(sc[j] | (lm >> 4) << 6);
        }
    }
    nbq_st16(o, nb_f32_to_f16(max_scale / 63.f));
    nbq_st16(o + 2, nb_f32_to_f16(max_min / 63.f));
    for (int j = 0; j < 8; j++) {
        uint8_t s, m;
        k4_scale_min(sc, j, &s, &m);
        float d = nbq_h(o) * s;
        if (!d) continue;
        float dm = nbq_h(o + 2) * m;
        for (int i = 0; i < 32; i++)
            L[32 * j + i] = (uint8_t)clampi(nbq_nearest_int((x[32 * j + i] + dm) / d), 0, nmax);
    }
}

void nbq_q_q4_k(const float *x, uint8_t *o, uint64_t nb)
{
    uint8_t L[256];
    for (uint64_t b = 0; b < nb; b++, x += 256, o += 144) {
        k45_quant(x, o, L, 15, -1.f, 20);
        uint8_t *q = o + 16;
        for (int j = 0; j < 256; j += 64, q += 32)
            for (int l = 0; l < 32; l++) q[l] = (uint8_t)(L[j + l] | L[j + l + 32] << 4);
    }
}

void nbq_q_q5_k(const float *x, uint8_t *o, uint64_t nb)
{
    uint8_t L[256];
    for (uint64_t b = 0; b < nb; b++, x += 256, o += 176) {
        k45_quant(x, o, L, 31, -0.5f, 15);
        uint8_t *qh = o + 16, *ql = o + 48;
        memset(qh, 0, 32);
        for (int j = 0; j < 256; j += 64, ql += 32)
            for (int l = 0; l < 32; l++) {
                int l1 = L[j + l], l2 = L[j + l + 32], k = j / 32; /* groups k and k + 1 */
                if (l1 > 15) l1 -= 16, qh[l] = (uint8_t)(qh[l] | 1 << k);
                if (l2 > 15) l2 -= 16, qh[l] = (uint8_t)(qh[l] | 2 << k);
                ql[l] = (uint8_t)(l1 | l2 << 4);
            }
    }
}

void nbq_q_q6_k(const float *x, uint8_t *o, uint64_t nb)
{
    int8_t L[256];
    float scales[16];
    for (uint64_t b = 0; b < nb; b++, x += 256, o += 210) {
        float max_scale = 0, max_abs_scale = 0;
        for (int ib = 0; ib < 16; ib++) {
            scales[ib] = qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
            if (fabsf(scales[ib]) > max_abs_scale)
                max_abs_scale = fabsf(scales[ib]), max_scale = scales[ib];
        }
        if (max_abs_scale < GROUP_MAX_EPS) {
            memset(o, 0, 210);
            continue;
        }
        float iscale = -128.f / max_scale;
        nbq_st16(o + 208, nb_f32_to_f16(1 / iscale));
        int8_t *sc = (int8_t *)(o + 192);
        for (int ib = 0; ib < 16; ib++) {
            int l = nbq_nearest_int(iscale * scales[ib]);
            sc[ib] = (int8_t)(l < 127 ? l : 127);
        }
        for (int j = 0; j < 16; j++) {
            float d = nbq_h(o + 208) * sc[j];
            if (!d) continue;
            for (int i = 0; i < 16; i++)
                L[16 * j + i] = (int8_t)(clampi(nbq_nearest_int(x[16 * j + i] / d), -32, 31) + 32);
        }
        uint8_t *ql = o, *qh = o + 128;
        for (int j = 0; j < 256; j += 128, ql += 64, qh += 32)
            for (int l = 0; l < 32; l++) {
                int l0 = L[j + l], l1 = L[j + l + 32], l2 = L[j + l + 64], l3 = L[j + l + 96];
                ql[l] = (uint8_t)((l0 & 0xF) | (l2 & 0xF) << 4);
                ql[l + 32] = (uint8_t)((l1 & 0xF) | (l3 & 0xF) << 4);
                qh[l] = (uint8_t)(l0 >> 4 | (l1 >> 4) << 2 | (l2 >> 4) << 4 | (l3 >> 4) << 6);
            }
    }
}

/* ggml's best_index_int8: the index of the level nearest x (ties to the upper one), by
 * bisection over the sorted levels. */
static int iq4_index(float x)
{
    const int8_t *v = nbq_iq4nl_values;
    if (x <= v[0]) return 0;
    if (x >= v[15]) return 15;
    int ml = 0, mu = 15;
    while (mu - ml > 1) {
        int mav = (ml + mu) / 2;
        if (x < v[mav]) mu = mav;
        else ml = mav;
    }
    return x - v[mu - 1] < v[mu] - x ? mu - 1 : mu;
}

/* The scale of one 32-element IQ4 group (ggml's quantize_row_iq4_nl_impl without importance
 * weights): weights x^2, start at d = max / values[0] (with the sign flipped when ntry > 0),
 * least-squares fit, then for ntry > 0 the inverse scales (itry + values[0]) / max, itry in
 * -ntry..ntry, keeping the best fit. L gets the levels of the starting d; an all-zero group
 * returns 0 and leaves L alone. */
static float iq4_group(const float *xb, uint8_t *L, int ntry)
{
    const int8_t *v = nbq_iq4nl_values;
    float weight[32], max, amax = nbq_absmax(xb, 32, &max);
    for (int j = 0; j < 32; j++) weight[j] = xb[j] * xb[j];
    if (amax < GROUP_MAX_EPS) return 0;
    float d = ntry > 0 ? -max / v[0] : max / v[0], id = 1 / d, sumqx = 0, sumq2 = 0;
    for (int j = 0; j < 32; j++) {
        int l = iq4_index(id * xb[j]);
        L[j] = (uint8_t)l;
        float q = v[l], w = weight[j];
        sumqx += w * q * xb[j];
        sumq2 += w * q * q;
    }
    d = sumq2 > 0 ? sumqx / sumq2 : 0.f;
    float best = d * sumqx;
    for (int itry = -ntry; itry <= ntry; itry++) {
        id = (itry + v[0]) / max;
        sumqx = sumq2 = 0;
        for (int j = 0; j < 32; j++) {
            float q = v[iq4_index(id * xb[j])], w = weight[j];
            sumqx += w * q * xb[j];
            sumq2 += w * q * q;
        }
        if (sumq2 > 0 && sumqx * sumqx > best * sumq2) d = sumqx / sumq2, best = d * sumqx;
    }
    return d;
}

/* Nibbles of 32 levels as IQ4_NL stores them (byte j = j | j+16). */
static void pack_iq4(const uint8_t *L, uint8_t *q)
{
    for (int j = 0; j < 16; j++) q[j] = (uint8_t)(L[j] | L[16 + j] << 4);
}

/* quantize_row_iq4_nl_ref: ntry = -1, so d is the fit at max / -127 and no search. ggml leaves
 * the nibbles of an all-zero block as whatever its scratch array held (the previous block's
 * levels, or uninitialized stack); we write level 8 (value 1, the level nearest 0, what ggml's
 * searching quantize_iq4_nl writes). The block dequantizes to zeros either way, but its bytes
 * are not ggml's: the one place these quantizers are not byte-exact. */
void nbq_q_iq4_nl(const float *x, uint8_t *o, uint64_t nb)
{
    uint8_t L[32];
    for (uint64_t b = 0; b < nb; b++, x += 32, o += 18) {
        memset(L, 8, sizeof L);
        nbq_st16(o, nb_f32_to_f16(iq4_group(x, L, -1)));
        pack_iq4(L, o + 2);
    }
}

/* quantize_row_iq4_xs_ref (ggml's quantize_iq4_xs, ntry = 7, no importance weights): a scale
 * per group, then d = -max_scale / 32 and 6-bit group scales; every element is re-rounded to
 * the group's scale d * l as the unrounded floats (ggml stores fp16 d but rounds with the
 * float). */
void nbq_q_iq4_xs(const float *x, uint8_t *o, uint64_t nb)
{
    uint8_t L[256];
    float scales[8];
    for (uint64_t b = 0; b < nb; b++, x += 256, o += 136) {
        float max_scale = 0, amax_scale = 0;
        for (int ib = 0; ib < 8; ib++) {
            scales[ib] = iq4_group(x + 32 * ib, L + 32 * ib, 7);
            if (fabsf(scales[ib]) > amax_scale)
                amax_scale = fabsf(scales[ib]), max_scale = scales[ib];
        }
        float d = -max_scale / 32, id = d ? 1 / d : 0.f;
        nbq_st16(o, nb_f32_to_f16(d));
        uint16_t sh = 0;
        for (int ib = 0; ib < 8; ib++) {
            int l = clampi(nbq_nearest_int(id * scales[ib]), -32, 31);
            float dl = d * l, idl = dl ? 1 / dl : 0.f;
            for (int j = 0; j < 32; j++) L[32 * ib + j] = (uint8_t)iq4_index(idl * x[32 * ib + j]);
            l += 32;
            if (ib % 2 == 0) o[4 + ib / 2] = (uint8_t)(l & 0xF);
            else o[4 + ib / 2] = (uint8_t)(o[4 + ib / 2] | (l & 0xF) << 4);
            sh = (uint16_t)(sh | (l >> 4) << 2 * ib);
        }
        nbq_st16(o + 2, sh);
        for (int i = 0; i < 8; i++) pack_iq4(L + 32 * i, o + 8 + 16 * i);
    }
}

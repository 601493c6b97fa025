/* gtensor_pack.c: GGUF blocks -> the two-plane device layout (see gtensor_pack.h).
 *
 * The GGUF block layouts (ggml-common.h), byte offsets:
 *   Q4_0   d 0, qs[16] 2            Q8_0   d 0, qs[32] 2
 *   Q4_1   d 0, m 2, qs[16] 4       Q5_0   d 0, qh[4] 2, qs[16] 6
 *   Q5_1   d 0, m 2, qh[4] 4, qs 8  IQ4_NL d 0, qs[16] 2
 *   Q2_K   scales[16] 0, qs[64] 16, d 80, dmin 82
 *   Q3_K   hmask[32] 0, qs[64] 32, scales[12] 96, d 108
 *   Q4_K   d 0, dmin 2, scales[12] 4, qs[128] 16
 *   Q5_K   d 0, dmin 2, scales[12] 4, qh[32] 16, qs[128] 48
 *   Q6_K   ql[128] 0, qh[64] 128, scales[16] 192, d 208
 *   IQ4_XS d 0, scales_h 2, scales_l[4] 4, qs[128] 8
 * Element order inside the 256-element K-quant blocks follows ggml's dequantize_row_* (cited at
 * each function); every unit below is 32 consecutive elements of the row.
 */
#include "gtensor_pack.h"

#include <string.h>

bool nb_pack_info(enum ggml_type t, struct nb_pack_info *pi)
{
    struct nb_pack_info v;
    switch (t) {
    case GGML_Q4_0: v = (struct nb_pack_info){32, 16, 2}; break;
    case GGML_Q8_0: v = (struct nb_pack_info){32, 32, 2}; break;
    case GGML_Q4_1: v = (struct nb_pack_info){32, 16, 4}; break;
    case GGML_Q5_0: v = (struct nb_pack_info){32, 16, 8}; break;
    case GGML_Q5_1: v = (struct nb_pack_info){32, 16, 8}; break;
    case GGML_IQ4_NL: v = (struct nb_pack_info){32, 16, 2}; break;
    case GGML_Q2_K: v = (struct nb_pack_info){256, 8, 20}; break;
    case GGML_Q3_K: v = (struct nb_pack_info){256, 8, 48}; break;
    case GGML_Q4_K: v = (struct nb_pack_info){256, 16, 16}; break;
    case GGML_Q5_K: v = (struct nb_pack_info){256, 16, 48}; break;
    case GGML_Q6_K: v = (struct nb_pack_info){256, 16, 84}; break;
    case GGML_IQ4_XS: v = (struct nb_pack_info){256, 16, 8}; break;
    default: return false;
    }
    if (pi) *pi = v;
    return true;
}

/* A 4-bit unit in Q4_0's order from its 32 values v[e] < 16: byte j = v[j] | v[j + 16] << 4. */
static void put_nibbles(const uint8_t *v, uint8_t *out)
{
    for (int j = 0; j < 16; j++)
        out[j] = (uint8_t)(v[j] | v[j + 16] << 4);
}

/* An 8-byte unit from 32 values v[e] < 4: v[e] at bit 2 * (e % 16) of the little-endian word
 * e / 16. */
static void put_2bit(const uint8_t *v, uint8_t *out)
{
    memset(out, 0, 8);
    for (int e = 0; e < 32; e++)
        out[(e / 16) * 4 + (e % 16) / 4] |= (uint8_t)(v[e] << (2 * (e % 4)));
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}

static uint32_t get32(const uint8_t *p)
{
    return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Bit `bit` of each of 32 bytes as one word: bit e from p[e]. */
static uint32_t gather_bits(const uint8_t *p, int bit)
{
    uint32_t w = 0;
    for (int e = 0; e < 32; e++)
        w |= (uint32_t)((p[e] >> bit) & 1) << e;
    return w;
}

/* A 5th-bit word (bit e: element e) in byte-lane order: element e = 4i + b at bit 8b + i, so
 * the shader finds the bits of elements 4i..4i+3 one per byte with one shift and mask. */
static uint32_t lane_bits(uint32_t h)
{
    uint32_t w = 0;
    for (int e = 0; e < 32; e++)
        w |= ((h >> e) & 1u) << (8 * (e % 4) + e / 4);
    return w;
}

/* The 2 high bits v[e] < 4 of a Q6_K unit as two words (elements 0..15, 16..31), byte-lane
 * order: element 16h + 4i + b at bits 8b + 2i of word h. */
static void put_2bit_lanes(const uint8_t *v, uint8_t *out)
{
    uint32_t w[2] = {0, 0};
    for (int e = 0; e < 32; e++)
        w[e / 16] |= (uint32_t)v[e] << (8 * (e % 4) + 2 * ((e % 16) / 4));
    put32(out, w[0]);
    put32(out + 4, w[1]);
}


/* Q4_K / Q5_K low nibbles: 64-element chunk c = s / 2 holds qs[32c + l], low nibble for unit
 * 2c, high for 2c + 1 (dequantize_row_q4_K). */
static void k4_units(const uint8_t *qs, uint8_t *units)
{
    uint8_t v[32];
    for (int s = 0; s < 8; s++) {
        for (int e = 0; e < 32; e++)
            v[e] = (qs[32 * (s / 2) + e] >> (4 * (s & 1))) & 15;
        put_nibbles(v, units + 16 * s);
    }
}

void nb_pack_block(enum ggml_type t, const uint8_t *b, uint8_t *units, uint8_t *blk)
{
    uint8_t v[32];
    switch (t) {
    case GGML_Q4_0:
    case GGML_IQ4_NL:
        memcpy(blk, b, 2);
        memcpy(units, b + 2, 16);
        break;
    case GGML_Q8_0:
        memcpy(blk, b, 2);
        memcpy(units, b + 2, 32);
        break;
    case GGML_Q4_1:
        memcpy(blk, b, 4);
        memcpy(units, b + 4, 16);
        break;
    case GGML_Q5_0: /* GGUF's little-endian qh word (bit e: element e) in byte-lane order */
        memcpy(blk, b, 2);
        memset(blk + 2, 0, 2);
        put32(blk + 4, lane_bits(get32(b + 2)));
        memcpy(units, b + 6, 16);
        break;
    case GGML_Q5_1:
        memcpy(blk, b, 4);
        put32(blk + 4, lane_bits(get32(b + 4)));
        memcpy(units, b + 8, 16);
        break;
    case GGML_Q2_K: /* unit s = 4n + j: element l is bits 2j of qs[32n + l] (dequantize_row_q2_K) */
        memcpy(blk, b + 80, 4);
        memcpy(blk + 4, b, 16);
        for (int s = 0; s < 8; s++) {
            for (int e = 0; e < 32; e++)
                v[e] = (b[16 + 32 * (s / 4) + e] >> (2 * (s % 4))) & 3;
            put_2bit(v, units + 8 * s);
        }
        break;
    case GGML_Q3_K: /* as Q2_K, and the high bit of element l of unit s is bit s of hmask[l] */
        memcpy(blk, b + 108, 2);
        memset(blk + 2, 0, 2);
        memcpy(blk + 4, b + 96, 12);
        for (int s = 0; s < 8; s++) {
            for (int e = 0; e < 32; e++)
                v[e] = (b[32 + 32 * (s / 4) + e] >> (2 * (s % 4))) & 3;
            put_2bit(v, units + 8 * s);
            put32(blk + 16 + 4 * s, gather_bits(b, s));
        }
        break;
    case GGML_Q4_K:
        memcpy(blk, b, 16);
        k4_units(b + 16, units);
        break;
    case GGML_Q5_K: /* the 5th bit of element l of unit s is bit s of qh[l] */
        memcpy(blk, b, 16);
        k4_units(b + 48, units);
        for (int s = 0; s < 8; s++)
            put32(blk + 16 + 4 * s, lane_bits(gather_bits(b + 16, s)));
        break;
    case GGML_Q6_K: /* unit s = 4n + k, element l: ql[64n + 32(k & 1) + l] nibble k >> 1, high bits
                     * (qh[32n + l] >> 2k) & 3 (dequantize_row_q6_K) */
        memcpy(blk, b + 208, 2);
        memset(blk + 2, 0, 2);
        memcpy(blk + 4, b + 192, 16);
        for (int s = 0; s < 8; s++) {
            int n = s / 4, k = s % 4;
            const uint8_t *ql = b + 64 * n + 32 * (k & 1), *qh = b + 128 + 32 * n;
            for (int e = 0; e < 32; e++)
                v[e] = (ql[e] >> (4 * (k >> 1))) & 15;
            put_nibbles(v, units + 16 * s);
            for (int e = 0; e < 32; e++)
                v[e] = (qh[e] >> (2 * k)) & 3;
            put_2bit_lanes(v, blk + 20 + 8 * s);
        }
        break;
    case GGML_IQ4_XS: /* qs[16 ib + j]: element j low, j + 16 high: Q4_0's order already */
        memcpy(blk, b, 8);
        memcpy(units, b + 8, 128);
        break;
    default:
        break;
    }
}

void nb_pack_place(enum ggml_type t, const struct nb_pack_info *pi, bool grouped, uint64_t si,
                   const uint8_t *blk, uint8_t *d)
{
    if (!grouped || (t != GGML_Q5_K && t != GGML_Q6_K)) {
        memcpy(d + si * pi->sb, blk, pi->sb);
        return;
    }
    uint64_t hb = t == GGML_Q6_K ? 20 : 16, qb = t == GGML_Q6_K ? 8 : 4; /* head, unit's high bits */
    uint64_t i = si % 8;
    uint8_t *g = d + si / 8 * 8 * pi->sb; /* the group of 8 entries */
    memcpy(g + i * hb, blk, hb);
    for (uint64_t s = 0; s < 8; s++)
        memcpy(g + 8 * hb + (8 * s + i) * qb, blk + hb + s * qb, qb);
}

// quant_k.glsl: the 256-element super-block types (K-quants and IQ4_XS; included by
// quant_unit.glsl). A block is 8 units of 32 elements; plane A holds each unit's low bits
// (4-bit in Q4_0's order, or 2-bit for Q2_K/Q3_K), plane B per block (engine/gtensor_pack.h):
//   Q2_K   20 bytes: f16 d, f16 dmin | scales[16]        unit s, half j: sc = scales[2s + j],
//                    value = d * (sc & 15) * q - dmin * (sc >> 4)
//   Q3_K   48 bytes: f16 d, 0 | scales[12] (16 packed 6-bit) | hm[8] (word s: high bits)
//                    value = d * (sc - 32) * (q + 4 * hm bit e) - 4 d (sc - 32)
//   Q4_K   16 bytes: f16 d, f16 dmin | scales[12] (8 packed 6-bit scale, min pairs)
//                    value = d * sc * q - dmin * m
//   Q5_K   48 bytes: as Q4_K | qh[8] (word s: 5th bits, byte-lane order as Q5_0's)
//   Q6_K   84 bytes: f16 d, 0 | scales[16] (int8) | qh[16] (2 high bits, byte-lane order)
//                    value = d * sc * (q + 16 * high) - 32 d sc
//   IQ4_XS  8 bytes: f16 d, u16 scales_h | scales_l[4]   value = d * (ls - 32) * iq4 level q
// (ggml's dequantize_row_q2_K ... q6_K, iq4_xs; scale products as ggml forms them.)
#ifndef NB_QUANT_K_GLSL
#define NB_QUANT_K_GLSL

// Byte i (< 16) of the 4 words a..d.
uint byte4(uvec4 words, uint i)
{
    return (words[i / 4u] >> (8u * (i % 4u))) & 0xFFu;
}

// Plane B words per entry.
const uint KPER = TYPE == NB_T_Q2_K ? 5u : TYPE == NB_T_Q4_K ? 4u : TYPE == NB_T_IQ4_XS ? 2u
                : TYPE == NB_T_Q6_K ? 21u : 12u;
// Q5_K and Q6_K: words of an entry's head (d, dmin or 0, scales) and of a unit's high bits.
const uint KHW = TYPE == NB_T_Q6_K ? 5u : 4u;
const uint KQW = TYPE == NB_T_Q6_K ? 2u : 1u;
// Whether plane B comes in transposed groups of 8 entries (gtensor_pack.h): Q5_K and Q6_K in row
// tiles of 1 << ts >= 8 rows.
bool wq_k_grouped(uint ts)
{
    return ts >= 3u && (TYPE == NB_T_Q5_K || TYPE == NB_T_Q6_K);
}
// Word of entry si's head (its first word; plane B at word dbase).
uint wq_k_head_at(uint si, uint ts, uint dbase)
{
    if (wq_k_grouped(ts)) return dbase + (si >> 3u) * 8u * KPER + (si & 7u) * KHW;
    return dbase + si * KPER;
}
// Word of the high bits of unit s (< 8) in entry si (Q3_K, Q5_K, Q6_K).
uint wq_k_high_at(uint si, uint s, uint ts, uint dbase)
{
    if (wq_k_grouped(ts))
        return dbase + (si >> 3u) * 8u * KPER + 8u * KHW + (8u * s + (si & 7u)) * KQW;
    return dbase + si * KPER + KHW + s * KQW;
}
// A unit's high bits (wunit's h) from its first high-bit word qw.
uvec2 wq_k_high(uint qw)
{
    if (TYPE == NB_T_Q6_K) return uvec2(wword(qw), wword(qw + 1u));
    if (TYPE == NB_T_Q5_K || TYPE == NB_T_Q3_K) return uvec2(wword(qw), 0u);
    return uvec2(0u);
}

// The part of a plane B entry (head at word bw) that all 8 units of a block share, for the types
// whose matrix-vector product takes it once per block (matvec.comp, accum_kb): Q4_K and Q5_K the
// first 16 bytes (d, dmin, the 12 packed scale bytes: one aligned texel) in e; Q6_K its first 5
// words (d, the 16 int8 scales) in e and f.
struct khead {
    uvec4 e;
    uint f;
};
khead wq_k_head(uint bw)
{
    if (TYPE == NB_T_Q6_K)
        return khead(uvec4(wword(bw), wword(bw + 1u), wword(bw + 2u), wword(bw + 3u)),
                     wword(bw + 4u));
    return khead(wquad(bw >> 2u), 0u);
}
// Fills w.s of unit s (< 8) of the block whose entry begins with kh (Q4_K, Q5_K, Q6_K).
void wq_k_unit(inout wunit w, khead kh, uint s)
{
    vec2 dm = nb_unpack_half(kh.e.x);
    if (TYPE == NB_T_Q6_K) {
        uint j = s / 2u; // int8 scales[2s], [2s + 1] in word 1 + j
        uint sw = (j < 3u ? kh.e[1u + j] : kh.f) >> (16u * (s & 1u));
        vec2 dl = dm.x * vec2(float(int(sw << 24u) >> 24), float(int(sw << 16u) >> 24));
        w.s = vec4(dl, -32.0 * dl);
        return;
    }
    // Q4_K, Q5_K: ggml's get_scale_min_k4(s): s < 4: scale = b[s] & 63, min = b[s + 4] & 63;
    // else scale = (b[s + 4] & 15) | (b[s - 4] >> 6) << 4, min = (b[s + 4] >> 4) | (b[s] >> 6) << 4.
    uvec4 sw = uvec4(kh.e.yzw, 0u);
    uint sc, mn;
    if (s < 4u) {
        sc = byte4(sw, s) & 63u;
        mn = byte4(sw, s + 4u) & 63u;
    } else {
        uint b4 = byte4(sw, s + 4u);
        sc = (b4 & 15u) | (byte4(sw, s - 4u) >> 6u) << 4u;
        mn = (b4 >> 4u) | (byte4(sw, s) >> 6u) << 4u;
    }
    float d1 = dm.x * float(sc), m1 = dm.y * float(mn);
    w.s = vec4(d1, d1, -m1, -m1);
}

// Fills w.h and w.s for unit s (< 8) of the block whose plane B entry is si (plane B at word
// dbase; rows in tiles of 1 << ts).
void wq_load_k(inout wunit w, uint si, uint s, uint ts, uint dbase)
{
    uint bw = wq_k_head_at(si, ts, dbase);
    if (TYPE == NB_T_Q4_K || TYPE == NB_T_Q5_K || TYPE == NB_T_Q6_K) {
        wq_k_unit(w, wq_k_head(bw), s);
        w.h = wq_k_high(wq_k_high_at(si, s, ts, dbase));
        return;
    }
    uint w0 = wword(bw); // (d, dmin) or (d, 0)
    vec2 dm = nb_unpack_half(w0);
    if (TYPE == NB_T_Q2_K) {
        uint sw = wword(bw + 1u + s / 2u) >> (16u * (s & 1u)); // scales[2s], scales[2s + 1]
        vec2 sc = vec2(sw & 0xFu, (sw >> 8u) & 0xFu), mn = vec2((sw >> 4u) & 0xFu, (sw >> 12u) & 0xFu);
        w.s = vec4(dm.x * sc, -(dm.y * mn));
    } else if (TYPE == NB_T_Q3_K) {
        // 16 6-bit scales: low 4 bits in bytes 0..7 (j < 8 low nibble, j >= 8 high nibble of
        // byte j % 8), high 2 bits in bytes 8..11 (byte j % 4, bits 2 * (j / 4))
        uvec4 sw = uvec4(wword(bw + 1u), wword(bw + 2u), wword(bw + 3u), 0u);
        uint j = 2u * s;
        uint lo = (byte4(sw, j % 8u) >> (4u * (j / 8u))) & 0xFu;
        uint lo1 = (byte4(sw, (j + 1u) % 8u) >> (4u * (j / 8u))) & 0xFu;
        uint hi = (byte4(sw, 8u + j % 4u) >> (2u * (j / 4u))) & 3u;
        uint hi1 = (byte4(sw, 8u + (j + 1u) % 4u) >> (2u * (j / 4u))) & 3u;
        vec2 dl = dm.x * vec2(float(int(lo | hi << 4u) - 32), float(int(lo1 | hi1 << 4u) - 32));
        w.h = wq_k_high(wq_k_high_at(si, s, ts, dbase));
        w.s = vec4(dl, -4.0 * dl);
    } else { // IQ4_XS: 6-bit ls = scales_l nibble s | (scales_h >> 2s & 3) << 4
        uint ls = ((wword(bw + 1u) >> (4u * s)) & 0xFu) | ((w0 >> (16u + 2u * s)) & 3u) << 4u;
        float dl = dm.x * float(int(ls) - 32);
        w.s = vec4(dl, dl, 0.0, 0.0);
    }
}

#endif

// quant_unit.glsl: one 32-element unit of a quantized weight row, for every quantized type but
// Q4_0 and Q8_0 (whose own code in matvec.comp, matmul.comp and embed.comp is tuned for them).
//
// A unit's value of element e (< 32) is  s.x * q[e] + s.z  for e < 16 and  s.y * q[e] + s.w
// for e >= 16, with q[e] a small integer made from the unit's bits: every type's dequantization
// fits that shape (a scale per 16 or 32 elements, an offset or minimum per 16 or 32), so a
// dequantized vec4 is one multiply-add (wq_value4).
//
// Include after the shader has declared the spec constant TYPE and the weight accessors
// uvec4 wquad(uint i) (the piece's 16-byte unit i) and uint wword(uint i) (its 32-bit word i).
#ifndef NB_QUANT_UNIT_GLSL
#define NB_QUANT_UNIT_GLSL

struct wunit {
    uvec4 q; // the low bits: 4-bit values in Q4_0's order, or two words of 2-bit values (.xy)
    uvec2 h; // high bits in byte-lane order (gtensor_pack.h): Q5_0/Q5_1/Q5_K element 4i + b at
             // bit 8b + i of h.x; Q6_K 2 bits of element 16j + 4i + b at bit 8b + 2i of h[j];
             // Q3_K bit e of h.x
    vec4 s;  // (scale of elements 0..15, scale of 16..31, offset of 0..15, offset of 16..31)
};
const wunit WQ_ZERO = wunit(uvec4(0u), uvec2(0u), vec4(0.0));

// Plane A at unit index bi: 16 bytes (qu = 16) or 8 (qu = 8, in .xy).
uvec4 wq_quad(uint bi)
{
    if (TYPE == NB_T_Q2_K || TYPE == NB_T_Q3_K) {
        uvec4 t = wquad(bi >> 1u);
        return (bi & 1u) != 0u ? t.zwxy : t;
    }
    return wquad(bi);
}

#include "quant_legacy.glsl"
#include "quant_k.glsl"

// Unit u (of nb = K / 32 per row) of piece-local row r; rows in tiles of 1 << ts; plane B at
// word dbase.
wunit wq_load(uint r, uint u, uint nb, uint ts, uint dbase)
{
    bool k = TYPE == NB_T_Q2_K || TYPE == NB_T_Q3_K || TYPE == NB_T_Q4_K || TYPE == NB_T_Q5_K ||
             TYPE == NB_T_Q6_K || TYPE == NB_T_IQ4_XS;
    uint upb = k ? 8u : 1u; // units per block
    wunit w = WQ_ZERO;
    w.q = wq_quad(q_block(r, u, nb, ts));
    uint si = q_scale(r, u / upb, nb / upb, ts); // plane B entry
    if (k)
        wq_load_k(w, si, u % upb, ts, dbase);
    else
        wq_load_legacy(w, si, dbase);
    return w;
}

// Q4_K, Q5_K or Q6_K: unit u (= 8 b + s) of row r (tiles of 1 << ts rows) whose plane B entry
// begins with kh (wq_k_head) and whose high bits are h (wq_k_high): wq_load with the block's
// shared part and the high bits already at hand.
wunit wq_k_row(uint r, uint u, uint nb, uint ts, khead kh, uint s, uvec2 h)
{
    wunit w = WQ_ZERO;
    w.q = wquad(q_block(r, u, nb, ts));
    wq_k_unit(w, kh, s);
    w.h = h;
    return w;
}

// The integer values q[4i..4i+3] of a unit, i < 8.
vec4 wq_q(wunit w, uint i)
{
    uint word = i < 4u ? w.q[i] : w.q[i - 4u];
    if (TYPE == NB_T_Q2_K || TYPE == NB_T_Q3_K) { // 2-bit: element e at bit 2 * (e % 16)
        uvec4 v = (uvec4(i < 4u ? w.q.x : w.q.y) >> (8u * (i % 4u) + uvec4(0u, 2u, 4u, 6u))) & 3u;
        if (TYPE == NB_T_Q3_K) v += 4u * ((uvec4(w.h.x) >> (4u * i + uvec4(0u, 1u, 2u, 3u))) & 1u);
        return vec4(v);
    }
    uvec4 n = (uvec4(word) >> (uvec4(0u, 8u, 16u, 24u) + (i < 4u ? 0u : 4u))) & 0xFu;
    if (TYPE == NB_T_IQ4_NL || TYPE == NB_T_IQ4_XS)
        return iq4_values(n);
    if (TYPE == NB_T_Q5_0 || TYPE == NB_T_Q5_1 || TYPE == NB_T_Q5_K)
        n += 16u * ((uvec4(w.h.x) >> (uvec4(0u, 8u, 16u, 24u) + i)) & 1u);
    if (TYPE == NB_T_Q6_K)
        n += 16u * ((uvec4(i < 4u ? w.h.x : w.h.y) >> (uvec4(0u, 8u, 16u, 24u) + 2u * (i % 4u))) & 3u);
    return vec4(n);
}

// The masked form of matvec's decode (NTOK = 1): for the types whose values are s * q + o with
// q a 4- to 6-bit integer in Q4_0's nibble order (Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K), q of
// elements 4i..4i+3 come out as q * 256^b in lane b (masked in place, as q4m_lo does for Q4_0),
// to be dotted with x prescaled by WQ_MLO (i < 4) or WQ_MHI (i >= 4); the high bits join the
// nibbles in their bytes (byte-lane order, gtensor_pack.h) with a shift, a mask and an or.
const bool WQ_MASKED = TYPE == NB_T_Q4_1 || TYPE == NB_T_Q5_0 || TYPE == NB_T_Q5_1 ||
                       TYPE == NB_T_Q4_K || TYPE == NB_T_Q5_K || TYPE == NB_T_Q6_K;
const bool WQ_PURE4 = TYPE == NB_T_Q4_1 || TYPE == NB_T_Q4_K; // no high bits: q4m_hi as is
const vec4 WQ_MLO = Q4M_LO;
const vec4 WQ_MHI = WQ_PURE4 ? Q4M_HI : Q4M_LO;
// The WQ_MASKED types' q of elements 4i..4i+3 as 4 bytes (byte b: element 4i + b): the nibbles
// and the high bits joined in place. wq_m masks them out as floats; matvec_int8.comp multiplies
// them as packed bytes (OpSDot).
uint wq_p8(wunit w, uint i)
{
    uint n = (i < 4u ? w.q[i] : w.q[i - 4u] >> 4u) & 0x0F0F0F0Fu; // nibbles at bits 8b
    if (WQ_PURE4) return n;
    uint hb; // the high bits at bits 8b + 4
    if (TYPE == NB_T_Q6_K) {
        uint j = i % 4u, hw = i < 4u ? w.h.x : w.h.y; // element 4i + b's pair at 8b + 2j
        hb = (j < 3u ? hw << (4u - 2u * j) : hw >> 2u) & 0x30303030u;
    } else { // bit 8b + i
        hb = (i < 4u ? w.h.x << (4u - i) : w.h.x >> (i - 4u)) & 0x10101010u;
    }
    return n | hb;
}
vec4 wq_m(wunit w, uint i)
{
    if (WQ_PURE4) return i < 4u ? q4m_lo(w.q[i]) : q4m_hi(w.q[i - 4u]);
    return vec4(ivec4(uvec4(wq_p8(w, i)) & uvec4(0x3Fu, 0x3F00u, 0x3F0000u, 0x3F000000u)));
}
// Sum over the unit of value(e) * x(e), x prescaled as wq_m wants in v0..v7 (elements 4i..4i+3
// in vi), sx = (sum of x over elements 0..15, over 16..31) unscaled.
float wq_dot_m(wunit w, vec4 v0, vec4 v1, vec4 v2, vec4 v3, vec4 v4, vec4 v5, vec4 v6, vec4 v7,
               vec2 sx)
{
    float lo = (dot(wq_m(w, 0u), v0) + dot(wq_m(w, 1u), v1)) +
               (dot(wq_m(w, 2u), v2) + dot(wq_m(w, 3u), v3));
    float hi = (dot(wq_m(w, 4u), v4) + dot(wq_m(w, 5u), v5)) +
               (dot(wq_m(w, 6u), v6) + dot(wq_m(w, 7u), v7));
    return (w.s.x * lo + w.s.y * hi) + (w.s.z * sx.x + w.s.w * sx.y);
}

// Dequantized elements 4i..4i+3 of a unit, i < 8.
vec4 wq_value4(wunit w, uint i)
{
    return i < 4u ? w.s.x * wq_q(w, i) + w.s.z : w.s.y * wq_q(w, i) + w.s.w;
}

#endif

// quant_legacy.glsl: the 32-element block types besides Q4_0 and Q8_0 (included by
// quant_unit.glsl). Plane A holds the 4-bit values in Q4_0's order (byte j: element j low,
// element j+16 high); plane B per block (engine/gtensor_pack.h):
//   Q4_1    4 bytes: f16 d, f16 m              value = d * q + m
//   Q5_0    8 bytes: f16 d, 0 | u32 qh          value = d * (q + 16 * h) - 16 d
//   Q5_1    8 bytes: f16 d, f16 m | u32 qh      value = d * (q + 16 * h) + m
//   (h: element 4i + b's 5th bit, bit 8b + i of qh: byte-lane order)
//   IQ4_NL  2 bytes: f16 d                      value = d * iq4 level q
// (ggml's dequantize_row_q4_1, _q5_0, _q5_1, _iq4_nl.)
#ifndef NB_QUANT_LEGACY_GLSL
#define NB_QUANT_LEGACY_GLSL

// The 16 levels of IQ4_NL and IQ4_XS (ggml's kvalues_iq4nl: -127, -104, -83, -65, -49, -35, -22,
// -10, 1, 13, 25, 38, 53, 69, 89, 113) as signed bytes, 4 per word: a vector indexed at run time
// compiles to one extract, where a constant array would be copied to memory at every lookup.
const uvec4 IQ4_PACKED = uvec4(0xBFAD9881u, 0xF6EADDCFu, 0x26190D01u, 0x71594535u);
vec4 iq4_values(uvec4 n)
{
    ivec4 b = ivec4(uvec4(IQ4_PACKED[n.x >> 2u], IQ4_PACKED[n.y >> 2u], IQ4_PACKED[n.z >> 2u],
                          IQ4_PACKED[n.w >> 2u]) << (24u - 8u * (n & 3u)));
    return vec4(b >> 24);
}

// Fills w.h and w.s from plane B entry si (plane B at word dbase).
void wq_load_legacy(inout wunit w, uint si, uint dbase)
{
    if (TYPE == NB_T_IQ4_NL) { // 2-byte entries: half si of the plane
        float d = half_of(wword(dbase + si / 2u), si);
        w.s = vec4(d, d, 0.0, 0.0);
        return;
    }
    uint bw = dbase + si * (TYPE == NB_T_Q4_1 ? 1u : 2u); // the entry's first word
    vec2 dm = nb_unpack_half(wword(bw));
    if (TYPE == NB_T_Q5_0 || TYPE == NB_T_Q5_1) w.h.x = wword(bw + 1u);
    float off = TYPE == NB_T_Q5_0 ? -16.0 * dm.x : dm.y;
    w.s = vec4(dm.x, dm.x, off, off);
}

#endif

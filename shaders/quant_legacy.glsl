// quant_legacy.glsl: the 32-element block types besides Q4_0 and Q8_0 (included by
// quant_unit.glsl). Plane A holds the 4-bit values in Q4_0's order (byte j: element j low,
// element j+16 high); plane B per block (engine/gtensor_pack.h):
//   Q4_1    4 bytes: f16 d, f16 m              value = d * q + m
//   Q5_0    8 bytes: f16 d, 0 | u32 qh          value = d * (q + 16 * qh bit e) - 16 d
//   Q5_1    8 bytes: f16 d, f16 m | u32 qh      value = d * (q + 16 * qh bit e) + m
//   IQ4_NL  2 bytes: f16 d                      value = d * IQ4_VALUES[q]
// (ggml's dequantize_row_q4_1, _q5_0, _q5_1, _iq4_nl.)
#ifndef NB_QUANT_LEGACY_GLSL
#define NB_QUANT_LEGACY_GLSL

// The 16 levels of IQ4_NL and IQ4_XS (ggml's kvalues_iq4nl).
const float IQ4_VALUES[16] = float[16](-127.0, -104.0, -83.0, -65.0, -49.0, -35.0, -22.0, -10.0,
                                       1.0, 13.0, 25.0, 38.0, 53.0, 69.0, 89.0, 113.0);

// Fills w.h and w.s from plane B entry si (plane B at word dbase).
void wq_load_legacy(inout wunit w, uint si, uint dbase)
{
    if (TYPE == NB_T_IQ4_NL) { // 2-byte entries: half si of the plane
        float d = half_of(wword(dbase + si / 2u), si);
        w.s = vec4(d, d, 0.0, 0.0);
        return;
    }
    uint bw = dbase + si * (TYPE == NB_T_Q4_1 ? 1u : 2u); // the entry's first word
    vec2 dm = unpackHalf2x16(wword(bw));
    if (TYPE == NB_T_Q5_0 || TYPE == NB_T_Q5_1) w.h.x = wword(bw + 1u);
    float off = TYPE == NB_T_Q5_0 ? -16.0 * dm.x : dm.y;
    w.s = vec4(dm.x, dm.x, off, off);
}

#endif

#version 450
// embed.comp: out[t][k] = dequant(E[ids[t]])[k] * scale for the rows of one table piece.
// A token whose id lies outside [row0, row0 + nrows) is left to the dispatch of another piece;
// the dispatch with row0 == 0 writes zeros for an id past the whole table (total_rows).
// Grid: x covers the row elements (WG per group), y the tokens. Weight formats: see quant.glsl
// (UNIT: the types of quant_unit.glsl).
#extension GL_GOOGLE_include_directive : require
#include "shared.h"
#include "quant.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint TYPE = NB_T_Q4_0;

layout(std430, binding = 0) readonly buffer W1 { uint w1[]; };
layout(std430, binding = 0) readonly buffer W4 { uvec4 w4[]; };
uvec4 wquad(uint i) { return w4[i]; }
uint wword(uint i) { return w1[i]; }
layout(std430, binding = 1) readonly buffer Ids { uint ids[]; };
layout(std430, binding = 2) writeonly buffer Out { float o[]; };
layout(push_constant) uniform Push { nb_push_embed p; };
#if UNIT
#include "quant_unit.glsl"
#endif

void main()
{
    uint k = gl_GlobalInvocationID.x;
    uint t = gl_WorkGroupID.y + p.tok0;
    if (k >= p.K) return;
    uint id = ids[t];
    uint oi = t * p.out_stride + k;
    if (id >= p.total_rows) {
        if (p.row0 == 0u) o[oi] = 0.0;
        return;
    }
    if (id < p.row0 || id >= p.row0 + p.nrows) return;
    uint r = id - p.row0;
    float v;
#if UNIT // the types of quant_unit.glsl
    wunit wu = wq_load(r, k / 32u, p.K / 32u, p.wtile, p.dbase);
    v = wq_value4(wu, (k % 32u) / 4u)[k % 4u];
#else
    if (TYPE == NB_T_Q4_0) {
        uint bi = q_block(r, k / 32u, p.K / 32u, p.wtile), j = k % 32u;
        uint si = q_scale(r, k / 32u, p.K / 32u, p.wtile);
        uint byte = j % 16u;
        uint qw = w1[bi * 4u + byte / 4u];
        uint q = (qw >> (8u * (byte % 4u) + (j >= 16u ? 4u : 0u))) & 0xFu;
        v = half_of(w1[p.dbase + si / 2u], si) * (float(q) - 8.0);
    } else if (TYPE == NB_T_Q8_0) {
        uint bi = q_block(r, k / 32u, p.K / 32u, p.wtile), j = k % 32u;
        uint si = q_scale(r, k / 32u, p.K / 32u, p.wtile);
        uint qw = w1[bi * 8u + j / 4u];
        v = half_of(w1[p.dbase + si / 2u], si) * float(int(qw << (24u - 8u * (j % 4u))) >> 24);
    } else if (TYPE != NB_T_F32) {
        uint e = r * p.K + k;
        v = f16x_of(w1[e / 2u], e, TYPE == NB_T_BF16);
    } else {
        v = uintBitsToFloat(w1[r * p.K + k]);
    }
#endif
    o[oi] = v * p.scale;
}

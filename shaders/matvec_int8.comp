#version 450
// matvec_int8.comp: y[t][r] (+)= sum_k W[r][k] * x[t][k] for the rows of one weight piece, t <
// ntok <= NTOK (decode), with 4x8-bit packed integer dot products (OpSDot, SPV_KHR_integer_dot_
// product) against activations quantized to 8-bit blocks by quant_act.comp (its layout there).
//
// Every weight type taken here has values s * q + o per half unit (16 elements) with q a small
// integer (Q4_0 0..15 with o = -8 s; Q8_0 -128..127 with o = 0; Q4_K, Q5_K, Q6_K and the legacy
// Q4_1, Q5_0, Q5_1 0..63 with the offsets of quant_unit.glsl), and x = d2 * (128 qx + rx) (the
// 8-bit value and its remainder, quant_act.comp), so a unit's sum is
//   d2 * (s.x * (128 idot(q, qx) + idot(q, rx))[0..15] + s.y * (...)[16..31])
//     + s.z * D0 + s.w * D1
// with each integer dot four OpSDot and the block sums D0, D1 from quant_act.comp.
//
// With MV_ID (MoE experts, NTOK = 1): for each pair (token t, slot s) in grid z,
//   y[t*n_slots+s][m] (+)= W[ids[t][s]][m] . x[t or t*n_slots+s]
// (the block rows of xq one per token, or one per pair with x_per_slot), as matvec.comp's MV_ID.
//
// Work split (the GPU shape of matvec.comp): a workgroup owns ROWS consecutive rows; groups of
// threads (a subgroup with USE_SUBGROUP, else TPR threads reduced through shared memory) take NR
// rows at a time, their lanes one 32-element unit each per step. The UNIT variant takes the types
// of quant_unit.glsl (Q4_1 ... Q6_K), the plain one Q4_0 and Q8_0. Weights in row tiles
// (p.wtile) are read through q_block / q_scale as everywhere.
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_spirv_intrinsics : require
#if USE_SUBGROUP
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif
#include "shared.h"
#include "quant.glsl"

// OpSDot (4450) on two 32-bit words of 4 signed bytes each (PackedVectorFormat4x8Bit = 0);
// capabilities DotProduct (6019) and DotProductInput4x8BitPacked (6018). glslang 11-12 lack
// GL_EXT_integer_dot_product: see ../shared/docs/toolchain.md.
spirv_instruction(extensions = ["SPV_KHR_integer_dot_product"], capabilities = [6019, 6018],
                  id = 4450)
int sdot4x8(uint a, uint b, spirv_literal int fmt);
int dp4(uint a, uint b) { return sdot4x8(a, b, 0); }

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint TYPE = NB_T_Q4_0;
layout(constant_id = 2) const uint NR = 2;   // rows per group per pass (1..2)
layout(constant_id = 3) const uint NTOK = 1; // tokens per z slice (1, 2, 4, 8)
layout(constant_id = 4) const uint TPR = 32; // threads per group (no-subgroup variant)
layout(constant_id = 5) const uint ROWS = 8; // rows per workgroup

layout(push_constant) uniform Push { nb_push_matvec_i8 p; };

layout(std430, binding = 0) readonly buffer W1 { uint w1[]; };
layout(std430, binding = 0) readonly buffer W4 { uvec4 w4[]; };
uvec4 wquad(uint i) { return w4[i]; }
uint wword(uint i) { return w1[i]; }
layout(std430, binding = 1) readonly buffer XQ { uvec4 xq[]; };
layout(std430, binding = 2) buffer Y { float y[]; };
#if MV_ID
layout(std430, binding = 3) readonly buffer Ids { uint ids[]; };
#endif
#if UNIT
#include "quant_unit.glsl"
#endif

#if !USE_SUBGROUP
shared float red[gl_WorkGroupSize.x * NTOK * NR];
#endif

// One unit of a weight row as packed bytes: elements 0..15 in lo (element 4i + j in byte j of
// lo[i]), 16..31 in hi, and the unit's (scale 0..15, scale 16..31, offset 0..15, offset 16..31).
struct unit8 {
    uvec4 lo, hi;
    vec4 s;
};

// Unit u (of nb per row) of piece-local row r.
unit8 wload8(uint r, uint u, uint nb)
{
    unit8 o;
#if UNIT
    wunit w = wq_load(r, u, nb, p.wtile, p.dbase); // q as bytes: quant_unit.glsl's wq_p8
    o.lo = uvec4(wq_p8(w, 0u), wq_p8(w, 1u), wq_p8(w, 2u), wq_p8(w, 3u));
    o.hi = uvec4(wq_p8(w, 4u), wq_p8(w, 5u), wq_p8(w, 6u), wq_p8(w, 7u));
    o.s = w.s;
#else
    uint bi = q_block(r, u, nb, p.wtile), si = q_scale(r, u, nb, p.wtile);
    float d = half_of(wword(p.dbase + si / 2u), si);
    if (TYPE == NB_T_Q4_0) {
        uvec4 q = wquad(bi);
        o.lo = q & 0x0F0F0F0Fu;
        o.hi = (q >> 4u) & 0x0F0F0F0Fu;
        o.s = vec4(d, d, -8.0 * d, -8.0 * d);
    } else { // Q8_0
        o.lo = wquad(bi * 2u);
        o.hi = wquad(bi * 2u + 1u);
        o.s = vec4(d, d, 0.0, 0.0);
    }
#endif
    return o;
}

// 16 bytes of weights against 16 of activations: four OpSDot.
int dot16(uvec4 w, uvec4 x)
{
    return (dp4(w.x, x.x) + dp4(w.y, x.y)) + (dp4(w.z, x.z) + dp4(w.w, x.w));
}

// One unit against a block of quant_act.comp: xb its first uvec4. |128 idot + idot| stays below
// 16 * 128 * 127 * 129 < 2^31.
float unit_dot(unit8 w, uint xb)
{
    int il = 128 * dot16(w.lo, xq[xb]) + dot16(w.lo, xq[xb + 2u]);
    int ih = 128 * dot16(w.hi, xq[xb + 1u]) + dot16(w.hi, xq[xb + 3u]);
    vec4 xs = uintBitsToFloat(xq[xb + 4u]);
    return xs.x * (w.s.x * float(il) + w.s.y * float(ih)) + (w.s.z * xs.y + w.s.w * xs.z);
}

void main()
{
    const uint WG = gl_WorkGroupSize.x;
    uint nb = p.K / 32u;
    uint wg = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    uint row_first = wg * ROWS;
#if MV_ID
    uint pair = p.pair0 + gl_WorkGroupID.z;
    uint e = ids[pair];
    if (e < p.e0 || e >= p.e1) return; // expert held by another piece (or none)
    uint nrows = p.m_rows, rbase = (e - p.e0) * p.m_rows; // the expert's rows in the piece
    uint tz = p.x_per_slot != 0u ? pair : pair / p.n_slots; // its block row in xq
    uint ntok = 1u, ybase = pair * p.y_stride;
#else
    uint nrows = p.nrows, rbase = 0u;
    uint tz = gl_WorkGroupID.z * NTOK; // first token of this z slice
    uint ntok = min(NTOK, p.ntok - tz), ybase = tz * p.y_stride + p.row0;
#endif
    if (row_first >= nrows) return;
#if USE_SUBGROUP
    uint group = gl_SubgroupID, ngroups = gl_NumSubgroups;
    uint lane = gl_SubgroupInvocationID, glen = gl_SubgroupSize;
#else
    uint group = gl_LocalInvocationID.x / TPR, ngroups = WG / TPR;
    uint lane = gl_LocalInvocationID.x % TPR, glen = TPR;
#endif
    for (uint rr = group * NR; rr < ROWS; rr += ngroups * NR) {
        float acc[NTOK * NR]; // [t * NR + i]
        for (uint j = 0u; j < NTOK * NR; j++)
            acc[j] = 0.0;
        for (uint u = lane; u < nb; u += glen) {
            unit8 w[NR];
            for (uint i = 0u; i < NR; i++) // rows past the end: the last one (not written)
                w[i] = wload8(rbase + min(row_first + rr + i, nrows - 1u), u, nb);
            for (uint t = 0u; t < NTOK; t++) { // tokens past ntok repeat the last (not written)
                uint xb = p.xq0 + ((tz + min(t, ntok - 1u)) * nb + u) * 5u;
                for (uint i = 0u; i < NR; i++)
                    acc[t * NR + i] += unit_dot(w[i], xb);
            }
        }
#if USE_SUBGROUP
        for (uint j = 0u; j < NTOK * NR; j++)
            acc[j] = subgroupAdd(acc[j]);
        bool writer = subgroupElect();
#else
        uint tid = gl_LocalInvocationID.x;
        for (uint j = 0u; j < NTOK * NR; j++)
            red[j * WG + tid] = acc[j];
        barrier();
        for (uint s = TPR / 2u; s > 0u; s >>= 1u) {
            if (lane < s)
                for (uint j = 0u; j < NTOK * NR; j++)
                    red[j * WG + tid] += red[j * WG + tid + s];
            barrier();
        }
        for (uint j = 0u; j < NTOK * NR; j++)
            acc[j] = red[j * WG + tid];
        barrier(); // red[] is reused by the next pass
        bool writer = lane == 0u;
#endif
        if (writer) {
            // constant bounds and a condition, so acc[] is never indexed at run time (a GPU
            // compiler would put such an array in scratch memory)
            for (uint t = 0u; t < NTOK; t++)
                for (uint i = 0u; i < NR; i++) {
                    uint r = row_first + rr + i;
                    if (t < ntok && r < nrows) {
                        uint yi = ybase + t * p.y_stride + r;
                        float v = acc[t * NR + i];
                        y[yi] = p.accumulate != 0u ? y[yi] + v : v;
                    }
                }
        }
    }
}

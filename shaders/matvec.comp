#version 450
// matvec.comp: y[t][r] (+)= sum_k W[r][k] * x[t][k] for the rows of one weight piece, t < ntok
// (decode: 1..NTOK tokens share each weight read). With MV_ID (MoE experts): for each pair
// (token t, slot s), y[t*n_slots+s][m] (+)= W[ids[t][s]][m] . x[t or t*n_slots+s] (NTOK = 1).
//
// Work split: a workgroup owns ROWS consecutive rows; groups of threads (a subgroup with
// USE_SUBGROUP, else TPR threads reduced through shared memory) each take NR rows at a time and
// split the K dimension between their lanes, one unit (a 32-element block for Q4_0/Q8_0, 4
// elements for F32/F16) per lane per step. Weight formats: see quant.glsl.
#extension GL_GOOGLE_include_directive : require
#if USE_SUBGROUP
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif
#include "shared.h"
#include "quant.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint TYPE = NB_T_Q4_0;
layout(constant_id = 2) const uint NR = 2;    // rows per group per pass
layout(constant_id = 3) const uint NTOK = 1;  // tokens per dispatch at most
layout(constant_id = 4) const uint TPR = 32;  // threads per group (no-subgroup variant)
layout(constant_id = 5) const uint ROWS = 8;  // rows per workgroup (fallback: WG / TPR * NR)

layout(std430, binding = 0) readonly buffer W1 { uint w1[]; };
layout(std430, binding = 0) readonly buffer W4 { uvec4 w4[]; };
layout(std430, binding = 1) readonly buffer X1 { float x1[]; };
layout(std430, binding = 1) readonly buffer X4 { vec4 x4[]; };
layout(std430, binding = 2) buffer Y { float y[]; };
#if MV_ID
layout(std430, binding = 3) readonly buffer Ids { uint ids[]; };
#endif
layout(push_constant) uniform Push { nb_push_matvec p; };

#if !USE_SUBGROUP
shared float red[gl_WorkGroupSize.x * NR * NTOK];
#endif

float acc[NR * NTOK];

// Adds unit u of row r (piece-local) times x into acc[i*NTOK + t] for t < ntok.
void accum(uint i, uint r, uint u, uint xbase, uint ntok)
{
    if (TYPE == NB_T_Q4_0) {
        uint nb = p.K / 32u;
        uint bi = r * nb + u;
        uvec4 q = w4[bi];
        float d = half_of(w1[p.dbase + bi / 2u], bi);
        vec4 l0 = q4_lo(q.x), l1 = q4_lo(q.y), l2 = q4_lo(q.z), l3 = q4_lo(q.w);
        vec4 h0 = q4_hi(q.x), h1 = q4_hi(q.y), h2 = q4_hi(q.z), h3 = q4_hi(q.w);
        for (uint t = 0; t < NTOK; t++) {
            if (t < ntok) {
                uint xb = (xbase + t * p.x_stride + u * 32u) / 4u;
                float s = dot(l0, x4[xb]) + dot(l1, x4[xb + 1u]) + dot(l2, x4[xb + 2u]) +
                          dot(l3, x4[xb + 3u]) + dot(h0, x4[xb + 4u]) + dot(h1, x4[xb + 5u]) +
                          dot(h2, x4[xb + 6u]) + dot(h3, x4[xb + 7u]);
                acc[i * NTOK + t] += d * s;
            }
        }
    } else if (TYPE == NB_T_Q8_0) {
        uint nb = p.K / 32u;
        uint bi = r * nb + u;
        uvec4 qa = w4[bi * 2u], qb = w4[bi * 2u + 1u];
        float d = half_of(w1[p.dbase + bi / 2u], bi);
        vec4 a0 = q8_vec(qa.x), a1 = q8_vec(qa.y), a2 = q8_vec(qa.z), a3 = q8_vec(qa.w);
        vec4 b0 = q8_vec(qb.x), b1 = q8_vec(qb.y), b2 = q8_vec(qb.z), b3 = q8_vec(qb.w);
        for (uint t = 0; t < NTOK; t++) {
            if (t < ntok) {
                uint xb = (xbase + t * p.x_stride + u * 32u) / 4u;
                float s = dot(a0, x4[xb]) + dot(a1, x4[xb + 1u]) + dot(a2, x4[xb + 2u]) +
                          dot(a3, x4[xb + 3u]) + dot(b0, x4[xb + 4u]) + dot(b1, x4[xb + 5u]) +
                          dot(b2, x4[xb + 6u]) + dot(b3, x4[xb + 7u]);
                acc[i * NTOK + t] += d * s;
            }
        }
    } else { // F32, F16: 4 elements, any K
        uint k0 = u * 4u;
        uint e = r * p.K + k0; // element index in the piece
        vec4 wv;
        uint nk = min(4u, p.K - k0);
        if (TYPE == NB_T_F32) {
            wv = vec4(uintBitsToFloat(w1[e]), nk > 1u ? uintBitsToFloat(w1[e + 1u]) : 0.0,
                      nk > 2u ? uintBitsToFloat(w1[e + 2u]) : 0.0,
                      nk > 3u ? uintBitsToFloat(w1[e + 3u]) : 0.0);
        } else {
            wv = vec4(half_of(w1[e / 2u], e), nk > 1u ? half_of(w1[(e + 1u) / 2u], e + 1u) : 0.0,
                      nk > 2u ? half_of(w1[(e + 2u) / 2u], e + 2u) : 0.0,
                      nk > 3u ? half_of(w1[(e + 3u) / 2u], e + 3u) : 0.0);
        }
        for (uint t = 0; t < NTOK; t++) {
            if (t < ntok) {
                uint xb = xbase + t * p.x_stride + k0;
                vec4 xv = vec4(x1[xb], nk > 1u ? x1[xb + 1u] : 0.0, nk > 2u ? x1[xb + 2u] : 0.0,
                               nk > 3u ? x1[xb + 3u] : 0.0);
                acc[i * NTOK + t] += dot(wv, xv);
            }
        }
    }
}

void main()
{
    const uint WG = gl_WorkGroupSize.x;
    uint units = (TYPE == NB_T_Q4_0 || TYPE == NB_T_Q8_0) ? p.K / 32u : (p.K + 3u) / 4u;
    uint wg = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;

#if MV_ID
    // Pairs (token, slot) in z, row groups in x (spilling into y).
    uint pair = p.pair0 + gl_WorkGroupID.z;
    uint e = ids[pair];
    if (e < p.e0 || e >= p.e1) return; // expert held by another piece
    uint row_first = wg * ROWS;
    if (row_first >= p.m_rows) return;
    uint row_end = p.m_rows;
    uint rbase = (e - p.e0) * p.m_rows; // first row of the expert in the piece
    uint tok = pair / p.n_slots;
    uint xbase = (p.x_per_slot != 0u ? pair : tok) * p.x_stride;
    uint ntok = 1u;
#else
    uint row_first = wg * ROWS;
    if (row_first >= p.nrows) return;
    uint row_end = p.nrows;
    uint rbase = 0u;
    uint xbase = p.tok0 * p.x_stride;
    uint ntok = p.ntok;
#endif

#if USE_SUBGROUP
    uint group = gl_SubgroupID, ngroups = gl_NumSubgroups;
    uint lane = gl_SubgroupInvocationID, glen = gl_SubgroupSize;
#else
    uint group = gl_LocalInvocationID.x / TPR, ngroups = WG / TPR;
    uint lane = gl_LocalInvocationID.x % TPR, glen = TPR;
#endif

    for (uint rr = group * NR; rr < ROWS; rr += ngroups * NR) {
        for (uint j = 0; j < NR * NTOK; j++) acc[j] = 0.0;
        for (uint u = lane; u < units; u += glen) {
            for (uint i = 0; i < NR; i++) {
                uint r = min(row_first + rr + i, row_end - 1u); // clamp: extra rows not written
                accum(i, rbase + r, u, xbase, ntok);
            }
        }
#if USE_SUBGROUP
        for (uint j = 0; j < NR * NTOK; j++) acc[j] = subgroupAdd(acc[j]);
        bool writer = subgroupElect();
#else
        // Tree reduction inside each group of TPR threads (uniform: ROWS == ngroups * NR).
        uint tid = gl_LocalInvocationID.x;
        for (uint j = 0; j < NR * NTOK; j++) red[j * WG + tid] = acc[j];
        barrier();
        for (uint s = TPR / 2u; s > 0u; s >>= 1u) {
            if (lane < s)
                for (uint j = 0; j < NR * NTOK; j++) red[j * WG + tid] += red[j * WG + tid + s];
            barrier();
        }
        for (uint j = 0; j < NR * NTOK; j++) acc[j] = red[j * WG + tid];
        bool writer = lane == 0u;
#endif
        if (writer) {
            for (uint i = 0; i < NR; i++) {
                uint r = row_first + rr + i;
                if (r >= row_end) continue;
                for (uint t = 0; t < NTOK; t++) {
                    if (t >= ntok) continue;
#if MV_ID
                    uint yi = pair * p.y_stride + r;
#else
                    uint yi = (p.tok0 + t) * p.y_stride + p.row0 + r;
#endif
                    float v = acc[i * NTOK + t];
                    y[yi] = p.accumulate != 0u ? y[yi] + v : v;
                }
            }
        }
#if !USE_SUBGROUP
        barrier(); // red[] is reused by the next pass
#endif
    }
}

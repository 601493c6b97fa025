#version 450
// matmul.comp: prefill matrix product for the rows of one weight piece:
//   y[n][row0 + m] (+)= sum_k W[m][k] * x[n][k],  m < nrows, n < ntok.
// A workgroup computes a BM (weight rows) x BN (tokens) tile of y, walking K in steps of 32 (one
// unit of the quantized types): W is dequantized while it is staged into shared memory, x is staged as is,
// and each thread accumulates a TM x TN sub-tile in f32 registers. Shared memory:
// 32 * (BM + 1 + BN + 1) floats (BM = BN = 64: 16.6 KB; 12.5 KB with MM_F16). Weight formats:
// see quant.glsl.
// With MM_ID (MoE prefill, tokens grouped by expert): grid z = expert of the piece; the tokens
// of a tile are (token, slot) pairs gathered through the expert's row list written by
// moe_group.comp (binding 3: counts [n_exp], then lists [n_exp][cap]); x rows are gathered,
// y rows scattered: y[pair][m] (+)= W[e][m] . x[pair or pair / n_slots]. Workgroups past the
// expert's count exit; grid y strides over the list when it is longer than the grid.
// With MM_F16 (devices with shaderFloat16, for quantized and F16 weights): the dequantized
// weight tile is held in f16 (half the shared memory: 32 * (BM + 1) halves), products and
// accumulators stay f32. A quantized value d * q rounds to the nearest half (relative error
// below 2^-11); F16 weights are exact.
#extension GL_GOOGLE_include_directive : require
#if MM_F16
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#define WS_T float16_t
#else
#define WS_T float
#endif
#include "shared.h"
#include "quant.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint TYPE = NB_T_Q4_0;
layout(constant_id = 2) const uint BM = 64;
layout(constant_id = 3) const uint BN = 64;
// Each thread owns 4 weight rows (tx + i*MT) x 4 tokens (ty + j*NT): WG = (BM / 4) * (BN / 4).
// Accumulators are 4 vec4 (one per token, rows as components), written out without arrays so
// no register array is indexed at run time.
#define TM 4u
#define TN 4u

#define BK 32u

layout(std430, binding = 0) readonly buffer W1 { uint w1[]; };
layout(std430, binding = 0) readonly buffer W4 { uvec4 w4[]; };
uvec4 wquad(uint i) { return w4[i]; }
uint wword(uint i) { return w1[i]; }
layout(std430, binding = 1) readonly buffer X1 { float x1[]; };
layout(std430, binding = 2) buffer Y { float y[]; };
#if MM_ID
layout(std430, binding = 3) readonly buffer G { uint grp[]; };
layout(push_constant) uniform Push { nb_push_matmul_id p; };
shared uint prs[BN]; // pair of each tile token
#else
layout(push_constant) uniform Push { nb_push_matmul p; };
#endif

#if UNIT
#include "quant_unit.glsl"
#endif

shared WS_T ws[BK * (BM + 1u)]; // [k][m]
shared float xs[BK * (BN + 1u)]; // [k][n]

// One BM x BN tile: weight rows rbase + [m_first, m_first + BM) clamped below rbase + nrows,
// tokens [n_first, n_first + BN) below ntok.
void tile(uint m_first, uint n_first, uint ntok, uint rbase, uint nrows)
{
    const uint WG = gl_WorkGroupSize.x;
    const uint tid = gl_LocalInvocationID.x;
    const uint MT = BM / TM; // threads along m
    uint tx = tid % MT, ty = tid / MT;

    const uint NT = WG / MT; // threads along n
    vec4 C0 = vec4(0.0), C1 = vec4(0.0), C2 = vec4(0.0), C3 = vec4(0.0);

    uint nb = p.K / 32u;
    uint nkt = (p.K + BK - 1u) / BK;
    for (uint kt = 0; kt < nkt; kt++) {
        uint k0 = kt * BK;
        // Stage W: BM rows x 32 elements, dequantized.
#if UNIT // the types of quant_unit.glsl: a thread stages half a unit of a row
        for (uint idx = tid; idx < BM * 2u; idx += WG) {
            uint m = idx / 2u, h = idx % 2u;
            uint r = rbase + min(m_first + m, nrows - 1u);
            wunit wu = wq_load(r, kt, nb, 0u, p.dbase);
            for (uint i = 0; i < 4u; i++) {
                vec4 v = wq_value4(wu, 4u * h + i);
                for (uint c = 0; c < 4u; c++)
                    ws[(16u * h + 4u * i + c) * (BM + 1u) + m] = WS_T(v[c]);
            }
        }
#else
        if (TYPE == NB_T_Q4_0) {
            for (uint idx = tid; idx < BM * 4u; idx += WG) {
                uint m = idx / 4u, q = idx % 4u;
                uint r = rbase + min(m_first + m, nrows - 1u);
                uint bi = r * nb + kt;
                uint qw = w1[bi * 4u + q];
                float d = half_of(w1[p.dbase + bi / 2u], bi);
                vec4 lo = d * q4_lo(qw), hi = d * q4_hi(qw);
                for (uint c = 0; c < 4u; c++) {
                    ws[(4u * q + c) * (BM + 1u) + m] = WS_T(lo[c]);
                    ws[(16u + 4u * q + c) * (BM + 1u) + m] = WS_T(hi[c]);
                }
            }
        } else if (TYPE == NB_T_Q8_0) {
            for (uint idx = tid; idx < BM * 8u; idx += WG) {
                uint m = idx / 8u, q = idx % 8u;
                uint r = rbase + min(m_first + m, nrows - 1u);
                uint bi = r * nb + kt;
                float d = half_of(w1[p.dbase + bi / 2u], bi);
                vec4 v = d * q8_vec(w1[bi * 8u + q]);
                for (uint c = 0; c < 4u; c++) ws[(4u * q + c) * (BM + 1u) + m] = WS_T(v[c]);
            }
        } else {
            for (uint idx = tid; idx < BM * BK; idx += WG) {
                uint m = idx / BK, kk = idx % BK;
                uint r = rbase + min(m_first + m, nrows - 1u);
                uint k = k0 + kk;
                float v = 0.0;
                if (k < p.K) {
                    uint e = r * p.K + k;
                    v = TYPE == NB_T_F32 ? uintBitsToFloat(w1[e])
                                         : f16x_of(w1[e / 2u], e, TYPE == NB_T_BF16);
                }
                ws[kk * (BM + 1u) + m] = WS_T(v);
            }
        }
#endif
        // Stage x: BN tokens x 32 elements.
        for (uint idx = tid; idx < BN * BK; idx += WG) {
            uint n = idx / BK, kk = idx % BK;
            uint tok = n_first + n, k = k0 + kk;
#if MM_ID
            uint xr = tok < ntok ? (p.x_per_slot != 0u ? prs[n] : prs[n] / p.n_slots) : 0u;
#else
            uint xr = tok;
#endif
            xs[kk * (BN + 1u) + n] = (tok < ntok && k < p.K) ? x1[xr * p.x_stride + k] : 0.0;
        }
        barrier();
        for (uint kk = 0; kk < BK; kk++) {
            uint wo = kk * (BM + 1u) + tx, xo = kk * (BN + 1u) + ty;
            vec4 a = vec4(float(ws[wo]), float(ws[wo + MT]), float(ws[wo + 2u * MT]),
                          float(ws[wo + 3u * MT]));
            C0 += a * xs[xo];
            C1 += a * xs[xo + NT];
            C2 += a * xs[xo + 2u * NT];
            C3 += a * xs[xo + 3u * NT];
        }
        barrier();
    }

#if MM_ID
#define YROW(n) prs[(n) - n_first]
#define YCOL0 0u
#else
#define YROW(n) (n)
#define YCOL0 p.row0
#endif
#define PUT(j, C)                                                                                \
    {                                                                                            \
        uint n = n_first + ty + uint(j) * NT;                                                    \
        if (n < ntok) {                                                                          \
            for (uint i = 0; i < TM; i++) {                                                      \
                uint m = m_first + tx + i * MT;                                                  \
                if (m >= nrows) break;                                                           \
                uint yi = YROW(n) * p.y_stride + YCOL0 + m;                                      \
                float v = C[i];                                                                  \
                y[yi] = p.accumulate != 0u ? y[yi] + v : v;                                      \
            }                                                                                    \
        }                                                                                        \
    }
    PUT(0, C0) PUT(1, C1) PUT(2, C2) PUT(3, C3)
}

void main()
{
#if MM_ID
    uint e = p.e0 + gl_WorkGroupID.z;
    uint count = min(grp[e], p.cap);
    uint list = p.n_exp + e * p.cap;
    for (uint n0 = gl_WorkGroupID.y * BN; n0 < count; n0 += gl_NumWorkGroups.y * BN) {
        for (uint i = gl_LocalInvocationID.x; i < BN; i += gl_WorkGroupSize.x)
            prs[i] = n0 + i < count ? grp[list + n0 + i] : 0u;
        barrier();
        tile(gl_WorkGroupID.x * BM, n0, count, gl_WorkGroupID.z * p.m_rows, p.m_rows);
        barrier(); // prs[] is rewritten by the next pass
    }
#else
    tile(gl_WorkGroupID.x * BM, gl_WorkGroupID.y * BN, p.ntok, 0u, p.nrows);
#endif
}

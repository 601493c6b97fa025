#version 450
// matmul.comp: prefill matrix product for the rows of one weight piece:
//   y[n][row0 + m] (+)= sum_k W[m][k] * x[n][k],  m < nrows, n < ntok.
// A workgroup computes a BM (weight rows) x BN (tokens) tile of y, walking K in steps of 32 (one
// Q4_0/Q8_0 block): W is dequantized while it is staged into shared memory, x is staged as is,
// and each thread accumulates a TM x TN sub-tile in f32 registers. Shared memory:
// 32 * (BM + 1 + BN + 1) floats (BM = BN = 64: 16.6 KB). Weight formats: see quant.glsl.
#extension GL_GOOGLE_include_directive : require
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
layout(std430, binding = 1) readonly buffer X1 { float x1[]; };
layout(std430, binding = 2) buffer Y { float y[]; };
layout(push_constant) uniform Push { nb_push_matmul p; };

shared float ws[BK * (BM + 1u)]; // [k][m]
shared float xs[BK * (BN + 1u)]; // [k][n]

void main()
{
    const uint WG = gl_WorkGroupSize.x;
    const uint tid = gl_LocalInvocationID.x;
    const uint MT = BM / TM; // threads along m
    uint tx = tid % MT, ty = tid / MT;
    uint m_first = gl_WorkGroupID.x * BM;
    uint n_first = gl_WorkGroupID.y * BN;

    const uint NT = WG / MT; // threads along n
    vec4 C0 = vec4(0.0), C1 = vec4(0.0), C2 = vec4(0.0), C3 = vec4(0.0);

    uint nb = p.K / 32u;
    uint nkt = (p.K + BK - 1u) / BK;
    for (uint kt = 0; kt < nkt; kt++) {
        uint k0 = kt * BK;
        // Stage W: BM rows x 32 elements, dequantized.
        if (TYPE == NB_T_Q4_0) {
            for (uint idx = tid; idx < BM * 4u; idx += WG) {
                uint m = idx / 4u, q = idx % 4u;
                uint r = min(m_first + m, p.nrows - 1u);
                uint bi = r * nb + kt;
                uint qw = w1[bi * 4u + q];
                float d = half_of(w1[p.dbase + bi / 2u], bi);
                vec4 lo = d * q4_lo(qw), hi = d * q4_hi(qw);
                for (uint c = 0; c < 4u; c++) {
                    ws[(4u * q + c) * (BM + 1u) + m] = lo[c];
                    ws[(16u + 4u * q + c) * (BM + 1u) + m] = hi[c];
                }
            }
        } else if (TYPE == NB_T_Q8_0) {
            for (uint idx = tid; idx < BM * 8u; idx += WG) {
                uint m = idx / 8u, q = idx % 8u;
                uint r = min(m_first + m, p.nrows - 1u);
                uint bi = r * nb + kt;
                float d = half_of(w1[p.dbase + bi / 2u], bi);
                vec4 v = d * q8_vec(w1[bi * 8u + q]);
                for (uint c = 0; c < 4u; c++) ws[(4u * q + c) * (BM + 1u) + m] = v[c];
            }
        } else {
            for (uint idx = tid; idx < BM * BK; idx += WG) {
                uint m = idx / BK, kk = idx % BK;
                uint r = min(m_first + m, p.nrows - 1u);
                uint k = k0 + kk;
                float v = 0.0;
                if (k < p.K) {
                    uint e = r * p.K + k;
                    v = TYPE == NB_T_F32 ? uintBitsToFloat(w1[e]) : half_of(w1[e / 2u], e);
                }
                ws[kk * (BM + 1u) + m] = v;
            }
        }
        // Stage x: BN tokens x 32 elements.
        for (uint idx = tid; idx < BN * BK; idx += WG) {
            uint n = idx / BK, kk = idx % BK;
            uint tok = n_first + n, k = k0 + kk;
            xs[kk * (BN + 1u) + n] = (tok < p.ntok && k < p.K) ? x1[tok * p.x_stride + k] : 0.0;
        }
        barrier();
        for (uint kk = 0; kk < BK; kk++) {
            uint wo = kk * (BM + 1u) + tx, xo = kk * (BN + 1u) + ty;
            vec4 a = vec4(ws[wo], ws[wo + MT], ws[wo + 2u * MT], ws[wo + 3u * MT]);
            C0 += a * xs[xo];
            C1 += a * xs[xo + NT];
            C2 += a * xs[xo + 2u * NT];
            C3 += a * xs[xo + 3u * NT];
        }
        barrier();
    }

#define PUT(j, C)                                                                                \
    {                                                                                            \
        uint n = n_first + ty + uint(j) * NT;                                                    \
        if (n < p.ntok) {                                                                        \
            for (uint i = 0; i < TM; i++) {                                                      \
                uint m = m_first + tx + i * MT;                                                  \
                if (m >= p.nrows) break;                                                         \
                uint yi = n * p.y_stride + p.row0 + m;                                           \
                float v = C[i];                                                                  \
                y[yi] = p.accumulate != 0u ? y[yi] + v : v;                                      \
            }                                                                                    \
        }                                                                                        \
    }
    PUT(0, C0) PUT(1, C1) PUT(2, C2) PUT(3, C3)
}

#version 450
// matvec.comp: y[t][r] (+)= sum_k W[r][k] * x[t][k] for the rows of one weight piece, t < ntok
// (decode: 1..NTOK tokens share each weight read; grid z walks groups of NTOK tokens).
// With MV_ID (MoE experts): for each pair (token t, slot s),
//   y[t*n_slots+s][m] (+)= W[ids[t][s]][m] . x[t or t*n_slots+s]   (NTOK = 1).
//
// Work split: a workgroup owns ROWS consecutive rows; groups of threads (a subgroup with
// USE_SUBGROUP, else TPR threads reduced through shared memory; TPR = 1: whole rows per thread,
// the CPU-device shape) each take NR rows at a time and split the K dimension between their
// lanes, one unit (32 elements for the quantized types, 4 for F32/F16/BF16) per lane per step.
// Whole rows per thread on weights in row tiles (p.wtile, gtensor.h): the threads of one CPU
// vector take the rows of one tile, so their loads are neighbouring bytes, and with NR = 8 a
// thread's 8 scales are one load (see main).
// Weight formats: see quant.glsl; the UNIT variants take the types of quant_unit.glsl (TYPE one
// of them), the others F32, F16, BF16, Q4_0 and Q8_0. With TEXEL the weight piece and x are read through uniform
// texel buffers of uvec4 texels, x from texel p.xtex on (a CPU device such as lavapipe fetches a
// texel with one vector load per lane but loads from a storage buffer one scalar at a time in a
// loop; Adreno's fastest GEMVs read weights through the texture path too).
#extension GL_GOOGLE_include_directive : require
#if USE_SUBGROUP
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif
#include "shared.h"
#include "quant.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint TYPE = NB_T_Q4_0;
layout(constant_id = 2) const uint NR = 2;    // rows per group per pass (1..4; 8: TPR 1, NTOK <= 4)
layout(constant_id = 3) const uint NTOK = 1;  // tokens per dispatch (1 <= ntok <= NTOK <= 8)
layout(constant_id = 4) const uint TPR = 32;  // threads per group (no-subgroup variant)
layout(constant_id = 5) const uint ROWS = 8;  // rows per workgroup (fallback: WG / TPR * NR)

layout(push_constant) uniform Push { nb_push_matvec p; };

#if TEXEL
layout(binding = 0) uniform usamplerBuffer wt;
uvec4 wquad(uint i) { return texelFetch(wt, int(i)); }             // 16-byte unit i
uint wword(uint i) { return texelFetch(wt, int(i >> 2u))[i & 3u]; } // 32-bit word i
layout(binding = 1) uniform usamplerBuffer xt;
vec4 xquad(uint i) { return uintBitsToFloat(texelFetch(xt, int(p.xtex + i))); } // x[4i..4i+3]
float xword(uint i) { return uintBitsToFloat(texelFetch(xt, int(p.xtex + (i >> 2u)))[i & 3u]); }
#else
layout(std430, binding = 0) readonly buffer W1 { uint w1[]; };
layout(std430, binding = 0) readonly buffer W4 { uvec4 w4[]; };
uvec4 wquad(uint i) { return w4[i]; }
uint wword(uint i) { return w1[i]; }
layout(std430, binding = 1) readonly buffer X1 { float x1[]; };
layout(std430, binding = 1) readonly buffer X4 { vec4 x4[]; };
vec4 xquad(uint i) { return x4[i]; }
float xword(uint i) { return x1[i]; }
#endif
layout(std430, binding = 2) buffer Y { float y[]; };
#if UNIT
#include "quant_unit.glsl"
#endif
#if MV_ID
layout(std430, binding = 3) readonly buffer Ids { uint ids[]; };
#endif

#if !USE_SUBGROUP
shared vec4 red[gl_WorkGroupSize.x * NTOK];
#endif

// Accumulators: A<t>[i] = row i (< 4) of token t (< NTOK <= 8); with NR = 8 (whole rows per
// thread, NTOK <= 4) rows 4..7 of token t go to A<t+4> (AH). Written out with macros so no
// register array is indexed at run time (a CPU device would spill such an array to memory); the
// conditions on the spec constants fold away when the pipeline is built.
vec4 A0, A1, A2, A3, A4, A5, A6, A7, AX;
#define AH(t) AH_##t
#define AH_0 A4
#define AH_1 A5
#define AH_2 A6
#define AH_3 A7
#define AH_4 AX
#define AH_5 AX
#define AH_6 AX
#define AH_7 AX

// Q4_0: v0..v7 come scaled by Q4M_LO / Q4M_HI and sx is the block's sum of x (q4m_lo).
#define Q4DOT(q) (dot(q4m_lo(q.x), v0) + dot(q4m_lo(q.y), v1) + dot(q4m_lo(q.z), v2) + \
                  dot(q4m_lo(q.w), v3) + dot(q4m_hi(q.x), v4) + dot(q4m_hi(q.y), v5) + \
                  dot(q4m_hi(q.z), v6) + dot(q4m_hi(q.w), v7) - 8.0 * sx)
#define Q8DOT(q, r) (dot(q8_vec(q.x), v0) + dot(q8_vec(q.y), v1) + dot(q8_vec(q.z), v2) + \
                     dot(q8_vec(q.w), v3) + dot(q8_vec(r.x), v4) + dot(q8_vec(r.y), v5) + \
                     dot(q8_vec(r.z), v6) + dot(q8_vec(r.w), v7))
#define QDOT(i) (TYPE == NB_T_Q4_0 ? Q4DOT(qa##i) : Q8DOT(qa##i, qb##i))

// One token of a quantized unit: x block -> v0..v7, then the NR row dots.
#define QTOK(t)                                                                                  \
    if (t < NTOK) {                                                                              \
        uint xb = (xbase + min(uint(t), ntok - 1u) * p.x_stride + u * 32u) / 4u;                    \
        vec4 v0 = xquad(xb), v1 = xquad(xb + 1u), v2 = xquad(xb + 2u), v3 = xquad(xb + 3u);     \
        vec4 v4 = xquad(xb + 4u), v5 = xquad(xb + 5u), v6 = xquad(xb + 6u);                     \
        vec4 v7 = xquad(xb + 7u);                                                                \
        float sx = 0.0;                                                                          \
        if (TYPE == NB_T_Q4_0) {                                                                 \
            vec4 s4 = ((v0 + v1) + (v2 + v3)) + ((v4 + v5) + (v6 + v7));                        \
            sx = (s4.x + s4.y) + (s4.z + s4.w);                                                  \
            v0 *= Q4M_LO, v1 *= Q4M_LO, v2 *= Q4M_LO, v3 *= Q4M_LO;                              \
            v4 *= Q4M_HI, v5 *= Q4M_HI, v6 *= Q4M_HI, v7 *= Q4M_HI;                              \
        }                                                                                        \
        A##t += vec4(d0 * QDOT(0), NR > 1u ? d1 * QDOT(1) : 0.0, NR > 2u ? d2 * QDOT(2) : 0.0, \
                     NR > 3u ? d3 * QDOT(3) : 0.0);                                              \
        if (NR > 4u) AH(t) += vec4(d4 * QDOT(4), d5 * QDOT(5), d6 * QDOT(6), d7 * QDOT(7));      \
    }

// The types of quant_unit.glsl: row i's unit is dequantized once into W<i>0..W<i>7 (elements
// 4j..4j+3 in W<i>j), then each token's x takes 8 dot products per row (the type's decoding is
// not repeated per token, and the shader stays small).
#define GDECL(i) vec4 W##i##0 = vec4(0.0), W##i##1 = W##i##0, W##i##2 = W##i##0, W##i##3 = W##i##0, \
                      W##i##4 = W##i##0, W##i##5 = W##i##0, W##i##6 = W##i##0, W##i##7 = W##i##0;
#define GLOAD(i)                                                                                 \
    if (i < NR) {                                                                                \
        wunit wu = wq_load(min(r0 + uint(i) * rstep, rend - 1u), u, nb, p.wtile, p.dbase);       \
        W##i##0 = wq_value4(wu, 0u), W##i##1 = wq_value4(wu, 1u), W##i##2 = wq_value4(wu, 2u);   \
        W##i##3 = wq_value4(wu, 3u), W##i##4 = wq_value4(wu, 4u), W##i##5 = wq_value4(wu, 5u);   \
        W##i##6 = wq_value4(wu, 6u), W##i##7 = wq_value4(wu, 7u);                                \
    }
#define GDOT(i)                                                                                  \
    (((dot(W##i##0, v0) + dot(W##i##1, v1)) + (dot(W##i##2, v2) + dot(W##i##3, v3))) +           \
     ((dot(W##i##4, v4) + dot(W##i##5, v5)) + (dot(W##i##6, v6) + dot(W##i##7, v7))))
#define GTOK(t)                                                                                  \
    if (t < NTOK) {                                                                              \
        uint xb = (xbase + min(uint(t), ntok - 1u) * p.x_stride + u * 32u) / 4u;                    \
        vec4 v0 = xquad(xb), v1 = xquad(xb + 1u), v2 = xquad(xb + 2u), v3 = xquad(xb + 3u);     \
        vec4 v4 = xquad(xb + 4u), v5 = xquad(xb + 5u), v6 = xquad(xb + 6u);                     \
        vec4 v7 = xquad(xb + 7u);                                                                \
        A##t += vec4(GDOT(0), NR > 1u ? GDOT(1) : 0.0, NR > 2u ? GDOT(2) : 0.0,                  \
                     NR > 3u ? GDOT(3) : 0.0);                                                   \
        if (NR > 4u) AH(t) += vec4(GDOT(4), GDOT(5), GDOT(6), GDOT(7));                          \
    }

#define QLOAD(i)                                                                                 \
    if (i < NR) {                                                                                \
        uint ri = min(r0 + uint(i) * rstep, rend - 1u);                                          \
        uint bi = q_block(ri, u, nb, p.wtile);                                                   \
        if (TYPE == NB_T_Q4_0) {                                                                 \
            qa##i = wquad(bi);                                                                   \
        } else {                                                                                 \
            qa##i = wquad(bi * 2u);                                                              \
            qb##i = wquad(bi * 2u + 1u);                                                         \
        }                                                                                        \
        if (!scales8) {                                                                          \
            uint si = q_scale(ri, u, nb, p.wtile);                                               \
            d##i = half_of(wword(p.dbase + si / 2u), si);                                        \
        }                                                                                        \
    }

#if UNIT
// One token's x for unit u in the masked form (quant_unit.glsl, wq_dot_m): v0..v7 prescaled, sx
// the sums of its halves.
#define MX_LOAD                                                                                  \
    uint xb = (xbase + u * 32u) / 4u;                                                            \
    vec4 v0 = xquad(xb), v1 = xquad(xb + 1u), v2 = xquad(xb + 2u), v3 = xquad(xb + 3u);         \
    vec4 v4 = xquad(xb + 4u), v5 = xquad(xb + 5u), v6 = xquad(xb + 6u), v7 = xquad(xb + 7u);     \
    vec4 slo = (v0 + v1) + (v2 + v3), shi = (v4 + v5) + (v6 + v7);                              \
    vec2 sx = vec2((slo.x + slo.y) + (slo.z + slo.w), (shi.x + shi.y) + (shi.z + shi.w));        \
    v0 *= WQ_MLO, v1 *= WQ_MLO, v2 *= WQ_MLO, v3 *= WQ_MLO;                                      \
    v4 *= WQ_MHI, v5 *= WQ_MHI, v6 *= WQ_MHI, v7 *= WQ_MHI;

// Whole rows per thread, one token, Q4_K, Q5_K or Q6_K: the 8 units of super-block b of rows
// r0 + i * rstep (i < NR) read the part of each row's plane B entry they share (wq_k_head) once,
// not once per unit (a CPU device gathers every lane's load one by one).
#if USE_SUBGROUP
const bool KB = false;
#else
const bool KB = TPR == 1u && NTOK == 1u &&
                (TYPE == NB_T_Q4_K || TYPE == NB_T_Q5_K || TYPE == NB_T_Q6_K);
#endif
// The 8 rows of a thread are one group of 8 plane B entries (TEXEL pipelines get weights in
// tiles of >= 8 rows; Q5_K and Q6_K keep such groups transposed, gtensor_pack.h).
#if TEXEL
// In accum_kb (KB: TPR 1, one token, Q4_K/Q5_K/Q6_K). A macro of one && (glslang 11 turns
// longer chains of spec-constant && and || inside a function into an OpPhi that a spec-constant
// op then uses, which spirv-val refuses).
#define G8 (NR == 8u && TYPE != NB_T_Q4_K)
#else
#define G8 false
#endif
void accum_kb(uint r0, uint rstep, uint rend, uint b, uint xbase)
{
    uint nb = p.K / 32u, ts = p.wtile;
#define KHEAD(i)                                                                                 \
    uint R##i = min(r0 + uint(i) * rstep, rend - 1u);                                            \
    uint S##i = q_scale(R##i, b, nb / 8u, ts);                                                   \
    khead H##i = khead(uvec4(0u), 0u);                                                           \
    if (G8) {} else if (i < NR) H##i = wq_k_head(wq_k_head_at(S##i, ts, p.dbase));
    KHEAD(0) KHEAD(1) KHEAD(2) KHEAD(3) KHEAD(4) KHEAD(5) KHEAD(6) KHEAD(7)
    // G8: the 8 rows' entries are one transposed group (gtensor_pack.h) starting at word g (a
    // whole texel): Q6_K's 8 heads are 10 texels, then each unit's high bits 4 (Q5_K 2)
    uint g = G8 ? wq_k_head_at(S0, ts, p.dbase) : 0u;
    if (G8 && TYPE == NB_T_Q6_K) {
        uvec4 T[10];
        for (uint k = 0u; k < 10u; k++) T[k] = wquad(g / 4u + k);
#define TW(k) T[(k) / 4][(k) % 4]
#define KH6(i) H##i = khead(uvec4(TW(5 * i), TW(5 * i + 1), TW(5 * i + 2), TW(5 * i + 3)), TW(5 * i + 4));
        KH6(0) KH6(1) KH6(2) KH6(3) KH6(4) KH6(5) KH6(6) KH6(7)
    } else if (G8) { // Q5_K: one texel per head, as before
#define KH5(i) H##i = khead(wquad(g / 4u + uint(i)), 0u);
        KH5(0) KH5(1) KH5(2) KH5(3) KH5(4) KH5(5) KH5(6) KH5(7)
    }
    for (uint s = 0u; s < 8u; s++) {
        uint u = b * 8u + s;
        MX_LOAD
        uvec4 Q[4]; // G8: the 8 rows' high bits of unit s
        if (G8) {
            uint q0 = (g + 8u * KHW + 8u * KQW * s) / 4u;
            Q[0] = wquad(q0), Q[1] = wquad(q0 + 1u);
            if (TYPE == NB_T_Q6_K) Q[2] = wquad(q0 + 2u), Q[3] = wquad(q0 + 3u);
        }
#define KHIGH(i)                                                                                 \
        uvec2 h##i = uvec2(0u);                                                                  \
        if (G8 && TYPE == NB_T_Q6_K)                                                             \
            h##i = uvec2(Q[(i) / 2][2 * ((i) % 2)], Q[(i) / 2][2 * ((i) % 2) + 1]);              \
        else if (G8)                                                                             \
            h##i = uvec2(Q[(i) / 4][(i) % 4], 0u);                                               \
        else if (i < NR)                                                                         \
            h##i = wq_k_high(wq_k_high_at(S##i, s, ts, p.dbase));
        KHIGH(0) KHIGH(1) KHIGH(2) KHIGH(3) KHIGH(4) KHIGH(5) KHIGH(6) KHIGH(7)
#define KROW(i) (i < NR ? wq_dot_m(wq_k_row(R##i, u, nb, ts, H##i, s, h##i), v0, v1, v2, v3, v4, \
                                   v5, v6, v7, sx) : 0.0)
        A0 += vec4(KROW(0), KROW(1), KROW(2), KROW(3));
        if (NR > 4u) A4 += vec4(KROW(4), KROW(5), KROW(6), KROW(7));
    }
}
#endif

// F32/F16/BF16: 4 weights of row i at element e (nk of them valid).
vec4 wload(uint e, uint nk)
{
    if (TYPE == NB_T_F32)
        return vec4(uintBitsToFloat(wword(e)), nk > 1u ? uintBitsToFloat(wword(e + 1u)) : 0.0,
                    nk > 2u ? uintBitsToFloat(wword(e + 2u)) : 0.0,
                    nk > 3u ? uintBitsToFloat(wword(e + 3u)) : 0.0);
    bool bf = TYPE == NB_T_BF16;
    return vec4(f16x_of(wword(e / 2u), e, bf),
                nk > 1u ? f16x_of(wword((e + 1u) / 2u), e + 1u, bf) : 0.0,
                nk > 2u ? f16x_of(wword((e + 2u) / 2u), e + 2u, bf) : 0.0,
                nk > 3u ? f16x_of(wword((e + 3u) / 2u), e + 3u, bf) : 0.0);
}

#define FLOAD(i)                                                                                 \
    if (i < NR) wv##i = wload(min(r0 + uint(i) * rstep, rend - 1u) * p.K + k0, nk);
#define FDOT(i) dot(wv##i, xv)

#define FTOK(t)                                                                                  \
    if (t < NTOK) {                                                                              \
        uint xb = xbase + min(uint(t), ntok - 1u) * p.x_stride + k0;                                \
        vec4 xv = vec4(xword(xb), nk > 1u ? xword(xb + 1u) : 0.0,                                \
                       nk > 2u ? xword(xb + 2u) : 0.0, nk > 3u ? xword(xb + 3u) : 0.0);          \
        A##t += vec4(FDOT(0), NR > 1u ? FDOT(1) : 0.0, NR > 2u ? FDOT(2) : 0.0,                \
                     NR > 3u ? FDOT(3) : 0.0);                                                   \
        if (NR > 4u) AH(t) += vec4(FDOT(4), FDOT(5), FDOT(6), FDOT(7));                          \
    }

// Adds unit u of rows r0 + i * rstep, i < NR (piece-local, clamped below rend) times x. The
// weights of the NR rows are loaded once, then each x vector once for all rows. Tokens past ntok
// repeat the last one (computed, never written). scales8: the 8 rows are rows l + i * T/8 of one
// tile of T >= 8 rows (whole rows per thread, NR = 8): their scales are the 8 halves at
// q_scale(first row) (quant.glsl), one load for all; a row past rend reads those of the last
// tile it may touch (computed, never written).
void accum(uint r0, uint rstep, uint rend, uint u, uint xbase, uint ntok, bool scales8)
{
#if UNIT // the types of quant_unit.glsl: one 32-element unit
    uint nb = p.K / 32u;
    if (NTOK == 1u && WQ_MASKED) { // one token: x prescaled once, each row's q masked in place
        MX_LOAD
#define MROW(i) (i < NR ? wq_dot_m(wq_load(min(r0 + uint(i) * rstep, rend - 1u), u, nb, p.wtile, \
                                           p.dbase), v0, v1, v2, v3, v4, v5, v6, v7, sx) : 0.0)
        A0 += vec4(MROW(0), MROW(1), MROW(2), MROW(3));
        if (NR > 4u) A4 += vec4(MROW(4), MROW(5), MROW(6), MROW(7));
        return;
    }
    GDECL(0) GDECL(1) GDECL(2) GDECL(3) GDECL(4) GDECL(5) GDECL(6) GDECL(7)
    GLOAD(0) GLOAD(1) GLOAD(2) GLOAD(3) GLOAD(4) GLOAD(5) GLOAD(6) GLOAD(7)
    GTOK(0) GTOK(1) GTOK(2) GTOK(3) GTOK(4) GTOK(5) GTOK(6) GTOK(7)
#else
    if (TYPE == NB_T_Q4_0 || TYPE == NB_T_Q8_0) {
        uint nb = p.K / 32u;
        uvec4 qa0 = uvec4(0), qa1 = qa0, qa2 = qa0, qa3 = qa0, qa4 = qa0, qa5 = qa0, qa6 = qa0;
        uvec4 qa7 = qa0, qb0 = qa0, qb1 = qa0, qb2 = qa0, qb3 = qa0, qb4 = qa0, qb5 = qa0;
        uvec4 qb6 = qa0, qb7 = qa0;
        float d0 = 0.0, d1 = 0.0, d2 = 0.0, d3 = 0.0, d4 = 0.0, d5 = 0.0, d6 = 0.0, d7 = 0.0;
        if (scales8) {
            uint ts = p.wtile, per = 1u << (ts - 3u), l = r0 & (per - 1u); // texels per block
            uvec4 sq = wquad(p.dbase / 4u + ((min(r0, rend - 1u) >> ts) * nb + u) * per + l);
            vec2 s01 = nb_unpack_half(sq.x), s23 = nb_unpack_half(sq.y);
            vec2 s45 = nb_unpack_half(sq.z), s67 = nb_unpack_half(sq.w);
            d0 = s01.x, d1 = s01.y, d2 = s23.x, d3 = s23.y, d4 = s45.x, d5 = s45.y, d6 = s67.x;
            d7 = s67.y;
        }
        QLOAD(0) QLOAD(1) QLOAD(2) QLOAD(3) QLOAD(4) QLOAD(5) QLOAD(6) QLOAD(7)
        QTOK(0) QTOK(1) QTOK(2) QTOK(3) QTOK(4) QTOK(5) QTOK(6) QTOK(7)
    } else { // F32, F16, BF16: 4 elements, any K
        uint k0 = u * 4u;
        uint nk = min(4u, p.K - k0);
        vec4 wv0 = vec4(0.0), wv1 = wv0, wv2 = wv0, wv3 = wv0, wv4 = wv0, wv5 = wv0, wv6 = wv0;
        vec4 wv7 = wv0;
        FLOAD(0) FLOAD(1) FLOAD(2) FLOAD(3) FLOAD(4) FLOAD(5) FLOAD(6) FLOAD(7)
        FTOK(0) FTOK(1) FTOK(2) FTOK(3) FTOK(4) FTOK(5) FTOK(6) FTOK(7)
    }
#endif
}

// Accumulator of token t (t < NTOK).
vec4 acc_get(uint t)
{
    return t == 0u ? A0 : t == 1u ? A1 : t == 2u ? A2 : t == 3u ? A3 : t == 4u ? A4 : t == 5u ? A5
         : t == 6u ? A6 : A7;
}

void main()
{
    const uint WG = gl_WorkGroupSize.x;
    uint units = t_float(TYPE) ? (p.K + 3u) / 4u : p.K / 32u;
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
    // z slices of NTOK tokens: one dispatch covers any token count
    uint tok0 = p.tok0 + gl_WorkGroupID.z * NTOK;
    uint ntok = min(NTOK, p.ntok - gl_WorkGroupID.z * NTOK);
    uint xbase = tok0 * p.x_stride;
#endif

#if USE_SUBGROUP
    uint group = gl_SubgroupID, ngroups = gl_NumSubgroups;
    uint lane = gl_SubgroupInvocationID, glen = gl_SubgroupSize;
#else
    uint group = gl_LocalInvocationID.x / TPR, ngroups = WG / TPR;
    uint lane = gl_LocalInvocationID.x % TPR, glen = TPR;
#endif

    // Whole rows per thread (TPR = 1) on weights in row tiles of T = 1 << wtile rows: NR rows
    // of each of S = T / NR neighbouring threads (one CPU vector: the host makes T = NR x its
    // lanes) fill a tile, thread g owning rows (g / S) * T + i * S + g % S, i < NR (the host
    // keeps ROWS a multiple of T), so the S threads' loads of row i touch neighbouring bytes and
    // a thread's NR = 8 scales are neighbours too (q_scale). Otherwise a group owns NR
    // consecutive rows per pass.
#if USE_SUBGROUP
    uint tsz = 1u; // the lanes of a subgroup split the units of a row
#else
    uint tsz = TPR == 1u ? max((1u << p.wtile) / NR, 1u) : 1u;
#endif
    // One load for a thread's 8 scales: TEXEL pipelines are the CPU shape and the host gives them
    // only weights in tiles of >= 8 rows (a run-time condition would not do: a CPU device runs
    // both sides of a branch under a mask)
#if TEXEL
    const bool scales8 = TPR == 1u && NR == 8u && (TYPE == NB_T_Q4_0 || TYPE == NB_T_Q8_0);
#else
    const bool scales8 = false;
#endif
    for (uint rr = group * NR; rr < ROWS; rr += ngroups * NR) {
        uint g = rr / NR;
        uint rr0 = (g / tsz) * NR * tsz + g % tsz; // rows rr0 + i * tsz (tsz = 1: rr)
        A0 = A1 = A2 = A3 = A4 = A5 = A6 = A7 = AX = vec4(0.0);
        // rows past row_end are clamped to the last one (computed, not written)
#if UNIT
        if (KB) {
            for (uint b = 0u; b < units / 8u; b++)
                accum_kb(rbase + row_first + rr0, tsz, rbase + row_end, b, xbase);
        } else
#endif
        for (uint u = lane; u < units; u += glen)
            accum(rbase + row_first + rr0, tsz, rbase + row_end, u, xbase, ntok, scales8);
#if USE_SUBGROUP
#define SG_RED(t) if (t < NTOK) A##t = subgroupAdd(A##t);
        SG_RED(0) SG_RED(1) SG_RED(2) SG_RED(3) SG_RED(4) SG_RED(5) SG_RED(6) SG_RED(7)
        bool writer = subgroupElect();
#else
        // Tree reduction inside each group of TPR threads (uniform: ROWS == ngroups * NR).
        uint tid = gl_LocalInvocationID.x;
        if (TPR > 1u) {
#define SH_PUT(t) if (t < NTOK) red[uint(t) * WG + tid] = A##t;
#define SH_GET(t) if (t < NTOK) A##t = red[uint(t) * WG + tid];
            SH_PUT(0) SH_PUT(1) SH_PUT(2) SH_PUT(3) SH_PUT(4) SH_PUT(5) SH_PUT(6) SH_PUT(7)
            barrier();
            for (uint s = TPR / 2u; s > 0u; s >>= 1u) {
                if (lane < s)
                    for (uint t = 0; t < NTOK; t++) red[t * WG + tid] += red[t * WG + tid + s];
                barrier();
            }
            SH_GET(0) SH_GET(1) SH_GET(2) SH_GET(3) SH_GET(4) SH_GET(5) SH_GET(6) SH_GET(7)
            barrier(); // red[] is reused by the next pass
        }
        bool writer = lane == 0u;
#endif
        if (writer) {
            for (uint t = 0; t < ntok; t++) {
                vec4 a = acc_get(t), ah = NR > 4u ? acc_get(t + 4u) : a;
                for (uint i = 0; i < NR; i++) {
                    uint r = row_first + rr0 + i * tsz;
                    if (r >= row_end) break;
#if MV_ID
                    uint yi = pair * p.y_stride + r;
#else
                    uint yi = (tok0 + t) * p.y_stride + p.row0 + r;
#endif
                    float v = i < 4u ? a[i] : ah[i - 4u];
                    y[yi] = p.accumulate != 0u ? y[yi] + v : v;
                }
            }
        }
    }
}

#version 450
// Attention over the KV cache (flash-attention style, online softmax in f32), for prefill and
// decode alike. See engine/op_attn.h for the host side.
//
// Workgroup (split c, row group y, KV head g): BR query rows x DS threads per row. A row is one
// (token t, query head h) pair of the GQA group of KV head g: row = t * group + (h - g*group), so
// the group's query heads share every K/V row the workgroup reads. Each thread holds q and the
// output accumulator for head_dim/(4*DS) quads of its row (quad k*DS + s: adjacent threads read
// adjacent 8-byte f16 quads). Keys go in tiles of BC: partial q.k per thread, summed over the DS
// threads of the row (subgroup shuffles, or shared memory in the plain variant), online softmax
// per row, then o += p * v.
//
// Masking: key position kp is visible to the query at position qp iff kp <= qp and (window == 0
// or qp - kp < window). The key range comes from the pos buffer at run time (so a recorded decode
// step replays as the context grows); split c covers one chunk of the workgroup's key range, and
// chunks past the range exit early. With n_split > 1 the partial (o, m, l) go to the scratch
// buffers and attn_combine.comp finishes; with n_split == 1 the output is written directly.
//
// ATTN_F16 (f16 cache, devices with shaderFloat16): q is held in f16 registers, K and V quads
// are read as f16 vectors, the q.k products are f16 (packed pairs on GPUs) and summed in f32;
// the softmax, the p * v products and the output accumulators stay f32. (An f16 dot product per
// quad, as llama.cpp's Vulkan flash attention takes, moved the dense golden's mean logit
// difference to llama.cpp's CPU backend to the edge of its spread: 0.0926 of 0.0926; f32 sums:
// 0.0924.)
#extension GL_GOOGLE_include_directive : require
#if ATTN_F16
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#endif
#ifdef USE_SUBGROUP
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#endif
#include "shared.h"
#include "half.glsl"

layout(local_size_x_id = 0) in;             // BR * DS
layout(constant_id = 1) const uint BR = 16; // query rows per workgroup
layout(constant_id = 2) const uint DS = 8;  // threads per row, a power of two (<= subgroup size)
layout(constant_id = 3) const uint NQ = 16; // quads per thread the registers hold (>= head_dim/4/DS)
layout(constant_id = 4) const uint BC = 4;  // keys per tile
const float NEG_BIG = -1.0e30;              // "minus infinity" that keeps exp() and sums finite

layout(std430, binding = 0) readonly buffer Q { vec4 q[]; };          // [T][n_head][hd/4] f32
#ifdef TEXEL  // K and V through uniform texel views of uvec4 texels (CPU devices: one vector load
              // per lane where a storage buffer is a loop over lanes; f16: two quads per texel)
layout(binding = 1) uniform usamplerBuffer kt;
layout(binding = 2) uniform usamplerBuffer vt;
#ifdef KV_F32
vec4 kc_(uint i) { return uintBitsToFloat(texelFetch(kt, int(i))); }
vec4 vc_(uint i) { return uintBitsToFloat(texelFetch(vt, int(i))); }
#else
uvec2 kc_(uint i) { uvec4 t = texelFetch(kt, int(i >> 1)); return (i & 1u) != 0u ? t.zw : t.xy; }
uvec2 vc_(uint i) { uvec4 t = texelFetch(vt, int(i >> 1)); return (i & 1u) != 0u ? t.zw : t.xy; }
#endif
#elif defined(KV_F32) // f32 cache: a quad is a vec4
layout(std430, binding = 1) readonly buffer KC { vec4 kc[]; };        // [n_kv][n_slots][hd/4] f32
layout(std430, binding = 2) readonly buffer VC { vec4 vc[]; };        // [n_kv][n_slots][hd/4] f32
#else         // f16 cache: a quad is two packed f16 pairs
layout(std430, binding = 1) readonly buffer KC { uvec2 kc[]; };       // [n_kv][n_slots][hd/4] f16
layout(std430, binding = 2) readonly buffer VC { uvec2 vc[]; };       // [n_kv][n_slots][hd/4] f16
#endif
#ifndef TEXEL
#define kc_(i) kc[i]
#define vc_(i) vc[i]
#endif
layout(std430, binding = 3) readonly buffer Pos { uint pos[]; };      // [T]
layout(std430, binding = 4) writeonly buffer Out { vec4 o_out[]; };   // [T][n_head][hd/4]
layout(std430, binding = 5) writeonly buffer PO { vec4 part_o[]; };   // [n_split][T*n_head][hd/4]
layout(std430, binding = 6) writeonly buffer PML { vec2 part_ml[]; }; // [n_split][T*n_head] (m, l)
layout(push_constant) uniform Push { nb_push_attn p; };

#ifndef USE_SUBGROUP
shared float red[gl_WorkGroupSize.x * BC]; // [BR*DS][BC] partial dot products
#endif

#ifdef KV_F32
vec4 unpack4(vec4 u) { return u; }
#else
vec4 unpack4(uvec2 u) { return vec4(nb_unpack_half(u.x), nb_unpack_half(u.y)); }
#endif
#if ATTN_F16
#define Q_T f16vec4
f16vec4 half4(uvec2 u) { return f16vec4(unpackFloat2x16(u.x), unpackFloat2x16(u.y)); }
float qk4(f16vec4 q, uvec2 k)
{
    vec4 pr = vec4(q * half4(k));
    return (pr.x + pr.y) + (pr.z + pr.w);
}
#define V4(u) vec4(half4(u))
#else
#define Q_T vec4
#define qk4(q, k) dot(q, unpack4(k))
#define V4(u) unpack4(u)
#endif

// Key range [lo, hi] of the query at position qp.
void key_range(uint qp, out int lo, out int hi)
{
    hi = int(qp);
    if (p.window == 0u)
        hi = min(hi, int(p.n_slots) - 1); // a full layer holds positions < n_slots only
    lo = p.window == 0u ? 0 : max(0, int(qp) - int(p.window) + 1);
}

void main()
{
    const uint tid = gl_LocalInvocationID.x;
    const uint r = tid / DS, s = tid % DS;
    const uint split = gl_WorkGroupID.x, g = gl_WorkGroupID.z;
    const uint rows = p.n_tokens * p.group;
    const uint row0 = gl_WorkGroupID.y * BR;
    const uint hd4 = p.head_dim / 4u;
    const uint nq = hd4 / DS; // quads per thread in use (head_dim is a multiple of 32)

    // Union of the key ranges of the workgroup's rows (the same value in every thread).
    int lo_u = 0x7fffffff, hi_u = -1;
    const uint t_end = (min(row0 + BR, rows) + p.group - 1u) / p.group;
    for (uint t = row0 / p.group; t < t_end; t++) {
        int lo, hi;
        key_range(pos[t], lo, hi);
        lo_u = min(lo_u, lo);
        hi_u = max(hi_u, hi);
    }
    // This split's chunk of that range, a multiple of BC keys.
    const int span = max(hi_u - lo_u + 1, 0);
    const int chunk = int(((uint(span) + p.n_split - 1u) / p.n_split + BC - 1u) / BC * BC);
    const int k_begin = lo_u + int(split) * chunk;
    const int k_end = min(hi_u + 1, k_begin + chunk);

    // This thread's row.
    const uint row = row0 + r;
    const bool valid = row < rows;
    const uint t = valid ? row / p.group : 0u;
    const uint h = g * p.group + (valid ? row % p.group : 0u);
    const uint orow = t * p.n_head + h; // row of q / out
    int lo_r = 1, hi_r = 0;             // empty for padding rows
    if (valid)
        key_range(pos[t], lo_r, hi_r);

    if (k_begin >= k_end) { // nothing to do in this chunk: an empty partial
        if (valid && s == 0u && p.n_split > 1u)
            part_ml[split * p.n_tokens * p.n_head + orow] = vec2(NEG_BIG, 0.0);
        return;
    }

    // Quads k >= nq (a head_dim below the pipeline's NQ) get q = 0 and re-read quad nq-1: no
    // branches in the inner loops, and their o[k] is never stored.
    Q_T qv[NQ];
    vec4 o[NQ];
    uint qoff[NQ];
    for (uint k = 0; k < NQ; k++) {
        qoff[k] = min(k, nq - 1u) * DS;
        qv[k] = Q_T((k < nq && valid) ? q[orow * hd4 + k * DS + s] * p.scale : vec4(0.0));
        o[k] = vec4(0.0);
    }
    float m = NEG_BIG, l = 0.0;
    const uint head_base = g * p.n_slots * hd4 + s;

    for (int kb = k_begin; kb < k_end; kb += int(BC)) {
        const uint nk = uint(min(int(BC), k_end - kb));
        float sc[BC];
        uint base[BC];
        for (uint j = 0; j < BC; j++) {
            sc[j] = 0.0;
            const uint kp = uint(kb) + j;
            base[j] = head_base + (p.window != 0u ? kp % p.n_slots : kp) * hd4;
            if (j < nk)
                for (uint k = 0; k < NQ; k++)
                    sc[j] += qk4(qv[k], kc_(base[j] + qoff[k]));
        }
        // Sum the partial dot products over the DS threads of each row.
#ifdef USE_SUBGROUP
        for (uint off = DS / 2u; off > 0u; off >>= 1)
            for (uint j = 0; j < BC; j++)
                sc[j] += subgroupShuffleXor(sc[j], off);
#else
        barrier(); // the previous tile's reads of red[] are done
        for (uint j = 0; j < BC; j++)
            red[tid * BC + j] = sc[j];
        barrier();
        for (uint j = 0; j < BC; j++) {
            float a = 0.0;
            for (uint i = 0; i < DS; i++)
                a += red[(r * DS + i) * BC + j];
            sc[j] = a;
        }
#endif
        // Online softmax for this row (loops over all BC keys so sc[] stays in registers).
        float mt = m;
        bool vis[BC];
        for (uint j = 0; j < BC; j++) {
            const int kp = kb + int(j);
            vis[j] = j < nk && kp >= lo_r && kp <= hi_r;
            mt = vis[j] ? max(mt, sc[j]) : mt;
        }
        const float alpha = exp(m - mt);
        l *= alpha;
        for (uint k = 0; k < NQ; k++)
            o[k] *= alpha;
        for (uint j = 0; j < BC; j++) {
            const float pj = vis[j] ? exp(sc[j] - mt) : 0.0;
            l += pj;
            if (j < nk) // uniform: keys past the range may lie past the buffer
                for (uint k = 0; k < NQ; k++)
                    o[k] += pj * V4(vc_(base[j] + qoff[k]));
        }
        m = mt;
    }

    if (!valid)
        return;
    if (p.n_split == 1u) {
        const float inv = l > 0.0 ? 1.0 / l : 0.0;
        for (uint k = 0; k < NQ; k++)
            if (k < nq)
                o_out[orow * hd4 + k * DS + s] = o[k] * inv;
    } else {
        const uint prow = split * p.n_tokens * p.n_head + orow;
        for (uint k = 0; k < NQ; k++)
            if (k < nq)
                part_o[prow * hd4 + k * DS + s] = o[k];
        if (s == 0u)
            part_ml[prow] = vec2(m, l);
    }
}

#version 450
// Writes K and V of a batch of tokens into one layer's KV cache, converting f32 -> f16 (or
// storing f32 as is in the KV_F32 variant).
// Token t goes to slot pos[t] (full layer, pos < n_slots; larger positions are dropped) or
// pos[t] % n_slots (sliding layer, ring buffer). Cache layout [kv_head][slot][head_dim], stored
// as packed f16 pairs in uint words (no 16-bit storage feature needed). One thread per quad.
#extension GL_GOOGLE_include_directive : require
#include "shared.h"

layout(local_size_x_id = 0) in;

layout(std430, binding = 0) readonly buffer KI { vec4 k_in[]; };   // [T][n_kv*hd/4] f32
layout(std430, binding = 1) readonly buffer VI { vec4 v_in[]; };   // [T][n_kv*hd/4] f32
layout(std430, binding = 2) readonly buffer Pos { uint pos[]; };   // [T]
#ifdef KV_F32 // f32 cache (KV_F32 variant): stored as is
layout(std430, binding = 3) writeonly buffer KC { vec4 kc[]; };    // [n_kv][n_slots][hd/4] f32
layout(std430, binding = 4) writeonly buffer VC { vec4 vc[]; };    // [n_kv][n_slots][hd/4] f32
vec4 pack4(vec4 v) { return v; }
#else
layout(std430, binding = 3) writeonly buffer KC { uvec2 kc[]; };   // [n_kv][n_slots][hd/4] f16
layout(std430, binding = 4) writeonly buffer VC { uvec2 vc[]; };   // [n_kv][n_slots][hd/4] f16
uvec2 pack4(vec4 v) { return uvec2(packHalf2x16(v.xy), packHalf2x16(v.zw)); }
#endif
layout(push_constant) uniform Push { nb_push_kv_store p; };

void main()
{
    const uint i = gl_GlobalInvocationID.x; // quad within the token's row
    const uint t = gl_WorkGroupID.y;
    const uint w4 = p.width / 4u, hd4 = p.head_dim / 4u;
    if (i >= w4)
        return;
    const uint kp = pos[t];
    if (p.ring == 0u && kp >= p.n_slots)
        return;
    const uint slot = p.ring != 0u ? kp % p.n_slots : kp;
    const uint head = i / hd4, d = i % hd4;
    const uint dst = (head * p.n_slots + slot) * hd4 + d;
    kc[dst] = pack4(k_in[t * w4 + i]);
    vc[dst] = pack4(v_in[t * w4 + i]);
}

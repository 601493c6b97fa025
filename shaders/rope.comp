#version 450
// NeoX RoPE in place on x[off + t*stride + h*hd + i]: pairs (i, i + n_rot/2) for i < n_rot/2
// rotate by theta_i = pos[t] * base^(-2i/n_rot) / factors[i]; dims >= n_rot are untouched.
// Invocation (q, t) with q = h * n_rot/2 + i; the angle comes from rope.glsl (double-float).
#extension GL_GOOGLE_include_directive : require
#include "shared.h"

layout(local_size_x_id = 0) in;
#include "rope.glsl"

layout(std430, binding = 0) buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer P { uint pos[]; };       // [n_tokens]
layout(std430, binding = 2) readonly buffer F { float factors[]; };  // [n_rot/2]
layout(push_constant) uniform Push { nb_push_rope p; };

void main()
{
    uint half_rot = p.n_rot / 2;
    uint q = gl_GlobalInvocationID.x, t = gl_WorkGroupID.y;
    if (q >= half_rot * p.n_heads) return;
    uint h = q / half_rot, i = q % half_rot;
    bool use_f = (p.flags & NB_NORM_FACTORS) != 0u;
    vec2 cs = rope_cos_sin(pos[t], rope_freq(vec2(p.th_hi, p.th_lo), i, use_f,
                                             use_f ? factors[i] : 1.0));
    uint b = p.off + t * p.stride + h * p.hd + i;
    float a0 = x[b], a1 = x[b + half_rot];
    x[b] = a0 * cs.x - a1 * cs.y;
    x[b + half_rot] = a1 * cs.x + a0 * cs.y;
}

#version 450
// RMSNorm over rows: y = x * (mean(x^2) + eps)^-0.5 [* w] * mul, optionally added to y
// (post-norm + residual), then scaled by a device scalar (layer_output_scale), and optionally
// followed by NeoX RoPE (fused q/k norm + rope). One workgroup per row: workgroup (h, t) takes
// row x[x_off + t*x_stride + h*n .. +n) and writes y[y_off + t*y_stride + h*n ..]. y may be x.
// With NB_NORM_NEXT (one head, no RoPE) the row it wrote is normed again into z[t*n ..] with
// weight w2: post-norm + residual and the next block's pre-norm in one dispatch.
//
// Each invocation owns the pairs (i, i + n_rot/2) for i = lid, lid+WG, ... < n_rot/2 and the
// elements j = n_rot + lid, ... < n, so the rope needs no exchange between invocations.
#extension GL_GOOGLE_include_directive : require
#include "shared.h"

layout(local_size_x_id = 0) in;
#include "reduce.glsl"
#include "rope.glsl"

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer W { float w[]; };        // [n]
layout(std430, binding = 2) buffer Y { float y[]; };
layout(std430, binding = 3) readonly buffer S { float s[]; };        // [1]
layout(std430, binding = 4) readonly buffer P { uint pos[]; };       // [n_tokens]
layout(std430, binding = 5) readonly buffer F { float factors[]; };  // [n_rot/2]
layout(std430, binding = 6) readonly buffer W2 { float w2[]; };      // [n]
layout(std430, binding = 7) writeonly buffer Z { float z[]; };       // [n_tokens][n]
layout(push_constant) uniform Push { nb_push_rmsnorm p; };

void main()
{
    const uint WG = gl_WorkGroupSize.x;
    uint lid = gl_LocalInvocationID.x;
    uint h = gl_WorkGroupID.x, t = gl_WorkGroupID.y;
    uint xb = p.x_off + t * p.x_stride + h * p.n;
    uint yb = p.y_off + t * p.y_stride + h * p.n;
    uint half_rot = p.n_rot / 2;

    float ss = 0.0;
    for (uint i = lid; i < p.n; i += WG) {
        float v = x[xb + i];
        ss += v * v;
    }
    float r = inversesqrt(wg_sum(ss) / float(p.n) + p.eps) * p.mul;
    bool has_w = (p.flags & NB_NORM_W) != 0u;
    bool add = (p.flags & NB_NORM_ADD) != 0u;
    float sc = (p.flags & NB_NORM_SCALE) != 0u ? s[0] : 1.0;

    if ((p.flags & NB_NORM_ROPE) != 0u) {
        uint ps = pos[t];
        vec2 th = vec2(p.th_hi, p.th_lo);
        bool use_f = (p.flags & NB_NORM_FACTORS) != 0u;
        for (uint i = lid; i < half_rot; i += WG) {
            float a = x[xb + i] * r, b = x[xb + i + half_rot] * r;
            if (has_w) {
                a *= w[i];
                b *= w[i + half_rot];
            }
            vec2 cs = rope_cos_sin(ps, rope_freq(th, i, use_f, use_f ? factors[i] : 1.0));
            float ra = a * cs.x - b * cs.y, rb = b * cs.x + a * cs.y;
            if (add) {
                ra += y[yb + i];
                rb += y[yb + i + half_rot];
            }
            y[yb + i] = ra * sc;
            y[yb + i + half_rot] = rb * sc;
        }
    }
    uint j0 = (p.flags & NB_NORM_ROPE) != 0u ? p.n_rot : 0u;
    float ss2 = 0.0;
    for (uint j = j0 + lid; j < p.n; j += WG) {
        float v = x[xb + j] * r;
        if (has_w) v *= w[j];
        if (add) v += y[yb + j];
        v *= sc;
        y[yb + j] = v;
        ss2 += v * v;
    }
    if ((p.flags & NB_NORM_NEXT) != 0u) { // each invocation reads back only what it wrote
        float r2 = inversesqrt(wg_sum(ss2) / float(p.n) + p.eps);
        for (uint j = lid; j < p.n; j += WG)
            z[t * p.n + j] = y[yb + j] * r2 * w2[j];
    }
}

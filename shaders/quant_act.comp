#version 450
// quant_act.comp: activations to 8-bit blocks for the integer dot-product matvec
// (matvec_int8.comp), as llama.cpp's quantize_q8_1 shader does: x f32 [ntok][x_stride] (K
// elements a token, K a multiple of 32) -> xq, per token and 32-element block b three uvec4 at
// p.xq0 + (t * K/32 + b) * 3:
//   [0], [1]: the 32 int8 q[e] = round(x[e] / d) (half away from zero), 4 to a word, element
//             4i + j in byte j of word i (words 0..3 in [0], 4..7 in [1]);
//   [2]:      float bits of (d, d * sum q[0..15], d * sum q[16..31], 0), d = max|x| / 127.
// The half sums let a weight with an offset per 16 elements (Q4_0's -8, K-quant minimums) take
// it as one multiply-add. One invocation per block; grid y = token.
#extension GL_GOOGLE_include_directive : require
#include "shared.h"

layout(local_size_x_id = 0) in;
layout(push_constant) uniform Push { nb_push_quant_act p; };
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer XQ { uvec4 xq[]; };

void main()
{
    uint nb = p.K / 32u, b = gl_GlobalInvocationID.x, t = gl_WorkGroupID.y;
    if (b >= nb) return;
    uint base = t * p.x_stride + b * 32u;
    float amax = 0.0;
    for (uint e = 0u; e < 32u; e++)
        amax = max(amax, abs(x[base + e]));
    float d = amax / 127.0, id = d != 0.0 ? 1.0 / d : 0.0;
    uint w[8];
    int s0 = 0, s1 = 0;
    for (uint i = 0u; i < 8u; i++) {
        uint word = 0u;
        for (uint j = 0u; j < 4u; j++) {
            float v = x[base + 4u * i + j] * id;
            int q = clamp(int(trunc(v + (v < 0.0 ? -0.5 : 0.5))), -127, 127);
            word |= uint(q & 0xFF) << (8u * j);
            if (i < 4u) s0 += q; else s1 += q;
        }
        w[i] = word;
    }
    uint o = p.xq0 + (t * nb + b) * 3u;
    xq[o] = uvec4(w[0], w[1], w[2], w[3]);
    xq[o + 1u] = uvec4(w[4], w[5], w[6], w[7]);
    xq[o + 2u] = uvec4(floatBitsToUint(d), floatBitsToUint(d * float(s0)),
                       floatBitsToUint(d * float(s1)), 0u);
}

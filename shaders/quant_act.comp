#version 450
// quant_act.comp: activations to 8-bit blocks for the integer dot-product matvec
// (matvec_int8.comp): x f32 [ntok][x_stride] (K elements a token, K a multiple of 32) -> xq, per
// token and 32-element block b five uvec4 at p.xq0 + (t * K/32 + b) * 5:
//   [0], [1]: the 32 int8 q[e] = round(x[e] / d) (half away from zero), d = max|x| / 127
//             (llama.cpp's q8_0/q8_1 rounding), 4 to a word, element 4i + j in byte j of word i
//             (words 0..3 in [0], 4..7 in [1]);
//   [2], [3]: the same for the remainders, r[e] = round((x[e] - d q[e]) / (d / 128)) in
//             -64..64, so x[e] = (d / 128) (128 q[e] + r[e]) to within d / 256: 15 bits a block
//             where q alone keeps 8 (one rounding of 8 bits per product put the int8 decode
//             outside llama.cpp's CPU-Vulkan spread on the goldens: README, integer dot products);
//   [4]:      float bits of (d / 128, D0, D1, 0), D0 = (d / 128) sum (128 q + r)[0..15] and
//             D1 the same over 16..31 (the block's sums of x as the products see it).
// The half sums let a weight with an offset per 16 elements (Q4_0's -8, K-quant minimums) take
// it as one multiply-add. One invocation per block; grid y = token.
#extension GL_GOOGLE_include_directive : require
#include "shared.h"

layout(local_size_x_id = 0) in;
layout(push_constant) uniform Push { nb_push_quant_act p; };
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer XQ { uvec4 xq[]; };

int round_away(float v) { return int(trunc(v + (v < 0.0 ? -0.5 : 0.5))); }

void main()
{
    uint nb = p.K / 32u, b = gl_GlobalInvocationID.x, t = gl_WorkGroupID.y;
    if (b >= nb) return;
    uint base = t * p.x_stride + b * 32u;
    float amax = 0.0;
    for (uint e = 0u; e < 32u; e++)
        amax = max(amax, abs(x[base + e]));
    float d = amax / 127.0, id = d != 0.0 ? 1.0 / d : 0.0;
    uint w[8], wr[8];
    int s0 = 0, s1 = 0;
    for (uint i = 0u; i < 8u; i++) {
        uint word = 0u, wrem = 0u;
        for (uint j = 0u; j < 4u; j++) {
            float xv = x[base + 4u * i + j];
            int q = clamp(round_away(xv * id), -127, 127);
            int r = clamp(round_away((xv - d * float(q)) * id * 128.0), -127, 127);
            word |= uint(q & 0xFF) << (8u * j);
            wrem |= uint(r & 0xFF) << (8u * j);
            if (i < 4u) s0 += 128 * q + r; else s1 += 128 * q + r;
        }
        w[i] = word;
        wr[i] = wrem;
    }
    float d2 = d * (1.0 / 128.0);
    uint o = p.xq0 + (t * nb + b) * 5u;
    xq[o] = uvec4(w[0], w[1], w[2], w[3]);
    xq[o + 1u] = uvec4(w[4], w[5], w[6], w[7]);
    xq[o + 2u] = uvec4(wr[0], wr[1], wr[2], wr[3]);
    xq[o + 3u] = uvec4(wr[4], wr[5], wr[6], wr[7]);
    xq[o + 4u] = uvec4(floatBitsToUint(d2), floatBitsToUint(d2 * float(s0)),
                       floatBitsToUint(d2 * float(s1)), 0u);
}

#version 450
// Bandwidth probe for the host layer (vkx_probe_bandwidth): MODE 0 copies src to dst, MODE 1
// only reads src. Invocation i touches vec4s i, i + stride, ... (per of them), so neighbouring
// invocations read neighbouring 16-byte words.
#extension GL_GOOGLE_include_directive : require
#include "shared.h"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint MODE = 0;

layout(std430, binding = 0) readonly buffer Src { uvec4 s[]; };
layout(std430, binding = 1) buffer Dst { uvec4 d[]; };
layout(push_constant) uniform Push { nb_push_bw p; };

void main()
{
    uint i = gl_GlobalInvocationID.x;
    uvec4 acc = uvec4(0);
    for (uint k = 0; k < p.per; k++) {
        uint j = i + k * p.stride;
        if (j >= p.n) break;
        if (MODE == 0)
            d[j] = s[j];
        else
            acc ^= s[j];
    }
    // never true for the probe's data (all bytes equal): keeps the reads alive
    if (MODE == 1 && acc.x == p.magic && acc.y != acc.x)
        d[0] = acc;
}

#version 450
// Bandwidth probe for the host layer (vkx_probe_bandwidth): MODE 0 copies src to dst, MODE 1
// only reads src. Invocation i touches elements i, i + stride, ... (per of them), so
// neighbouring invocations read neighbouring elements. The element is a 16-byte uvec4, or with
// BW_U32 a 4-byte uint, or with BW_U64 a 16-byte u64vec2 (two 64-bit loads: CPU devices such as
// lavapipe load one scalar per lane and component, so wider components move more per load). With
// BW_TEXEL the source is a uniform texel buffer of uvec4 texels (texelFetch).
#extension GL_GOOGLE_include_directive : require
#if BW_U64
#extension GL_ARB_gpu_shader_int64 : require
#define ELEM u64vec2
#define ZERO u64vec2(0)
#define LOW(a) uint(a.x)
#define OTHER(a) uint(a.y)
#elif BW_U32
#define ELEM uint
#define ZERO 0u
#define LOW(a) a
#define OTHER(a) (a ^ 1u)
#else
#define ELEM uvec4
#define ZERO uvec4(0)
#define LOW(a) a.x
#define OTHER(a) a.y
#endif
#include "shared.h"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint MODE = 0;

#if BW_TEXEL
layout(binding = 0) uniform usamplerBuffer src;
#define LOAD(j) texelFetch(src, int(j))
#else
layout(std430, binding = 0) readonly buffer Src { ELEM s[]; };
#define LOAD(j) s[j]
#endif
layout(std430, binding = 1) buffer Dst { ELEM d[]; };
layout(push_constant) uniform Push { nb_push_bw p; };

void main()
{
    uint i = gl_GlobalInvocationID.x;
    ELEM acc = ZERO;
    for (uint k = 0; k < p.per; k++) {
        uint j = i + k * p.stride;
        if (j >= p.n) break;
        if (MODE == 0)
            d[j] = LOAD(j);
        else
            acc ^= LOAD(j);
    }
    // never true for the probe's data (all bytes equal): keeps the reads alive
    if (MODE == 1 && LOW(acc) == p.magic && OTHER(acc) != LOW(acc))
        d[0] = acc;
}

#version 450
// Test shader for shaders/half.glsl (test_quirks): out[i] = the two floats of nb_unpack_half of
// the word holding halves 2i and 2i+1, for all 65536 halves, so the host compares every one
// with the CPU conversion, with the spec constant NB_SOFT_HALF as the context sets it.
#extension GL_GOOGLE_include_directive : require
#include "half.glsl"

layout(local_size_x = 64) in;
layout(std430, binding = 0) writeonly buffer Out { uvec2 data[]; } dst; // [32768] float bits

void main()
{
    uint i = gl_GlobalInvocationID.x;
    if (i < 32768u) dst.data[i] = floatBitsToUint(nb_unpack_half((2u * i) | ((2u * i + 1u) << 16)));
}

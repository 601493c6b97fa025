#version 450
// Trivial shader for the host-layer tests: out[i] = base + i * mul + SPEC_ADD for i < n.
// Exercises a specialization constant (workgroup size, SPEC_ADD) and push constants.
#extension GL_GOOGLE_include_directive : require
#include "shared.h"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint SPEC_ADD = 0;

layout(std430, binding = 0) writeonly buffer Out { uint data[]; } dst;
layout(push_constant) uniform Push { nb_push_test_fill p; };

void main()
{
    uint i = gl_GlobalInvocationID.x;
    if (i < p.n)
        dst.data[i] = p.base + i * p.mul + SPEC_ADD;
}

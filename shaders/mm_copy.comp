#version 450
// mm_copy.comp: plain copy dst[i] = src[i] over uvec4 words, i < n (grid-stride loop). Only the
// matvec bandwidth benchmark in tests/test_op_matmul.c uses it, as the memory-speed yardstick.
layout(local_size_x_id = 0) in;
layout(std430, binding = 0) readonly buffer Src { uvec4 src[]; };
layout(std430, binding = 1) writeonly buffer Dst { uvec4 dst[]; };
layout(push_constant) uniform Push { uint n; } p;

void main()
{
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint i = gl_GlobalInvocationID.x; i < p.n; i += stride) dst[i] = src[i];
}

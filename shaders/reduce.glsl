// Workgroup reductions for the "ops" shaders (rmsnorm, sample, moe_router).
// Include after `layout(local_size_x_id = 0) in;`. With SUBGROUP defined, reduces within each
// subgroup first (GL_KHR_shader_subgroup_arithmetic) and then across subgroups in shared memory;
// otherwise a plain shared-memory tree (any workgroup size, no subgroup ops).
#ifdef SUBGROUP
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif

shared float red_sum_[gl_WorkGroupSize.x];

// Sum of v over the workgroup, returned to every invocation. Call from uniform control flow.
float wg_sum(float v)
{
#ifdef SUBGROUP
    float s = subgroupAdd(v);
    if (subgroupElect()) red_sum_[gl_SubgroupID] = s;
    barrier();
    float t = 0.0;
    for (uint i = 0; i < gl_NumSubgroups; i++) t += red_sum_[i];
    barrier();
    return t;
#else
    uint l = gl_LocalInvocationID.x;
    red_sum_[l] = v;
    barrier();
    // fold the part above the largest power of two, then halve
    uint p = 1;
    while (p * 2 <= gl_WorkGroupSize.x) p *= 2;
    if (l + p < gl_WorkGroupSize.x) red_sum_[l] += red_sum_[l + p];
    barrier();
    for (uint s = p / 2; s > 0; s >>= 1) {
        if (l < s) red_sum_[l] += red_sum_[l + s];
        barrier();
    }
    float t = red_sum_[0];
    barrier();
    return t;
#endif
}

// Workgroup arg-best for the "ops" shaders (sample, moe_router): order is larger value first,
// ties to the lower index. Include after `layout(local_size_x_id = 0) in;`. With SUBGROUP defined
// (and GL_KHR_shader_subgroup_arithmetic enabled) it reduces within subgroups first.
struct cand { float v; uint i; };

shared float best_v_[gl_WorkGroupSize.x];
shared uint best_i_[gl_WorkGroupSize.x];
#ifdef SUBGROUP
shared float best_res_v_;
shared uint best_res_i_;
#endif

bool better(float av, uint ai, float bv, uint bi) { return av > bv || (av == bv && ai < bi); }

// best (v, i) over the workgroup, returned to every invocation; call from uniform control flow
cand wg_best(cand c)
{
#ifdef SUBGROUP
    float m = subgroupMax(c.v);
    uint mi = subgroupMin(c.v == m ? c.i : 0xFFFFFFFFu);
    if (subgroupElect()) {
        best_v_[gl_SubgroupID] = m;
        best_i_[gl_SubgroupID] = mi;
    }
    barrier();
    if (gl_SubgroupID == 0) { // the first subgroup reduces the per-subgroup results
        cand r = cand(uintBitsToFloat(0xff800000u), 0xFFFFFFFFu);
        for (uint s = gl_SubgroupInvocationID; s < gl_NumSubgroups; s += gl_SubgroupSize)
            if (better(best_v_[s], best_i_[s], r.v, r.i)) r = cand(best_v_[s], best_i_[s]);
        m = subgroupMax(r.v);
        mi = subgroupMin(r.v == m ? r.i : 0xFFFFFFFFu);
        if (subgroupElect()) {
            best_res_v_ = m;
            best_res_i_ = mi;
        }
    }
    barrier();
    return cand(best_res_v_, best_res_i_);
#else
    uint l = gl_LocalInvocationID.x;
    best_v_[l] = c.v;
    best_i_[l] = c.i;
    barrier();
    uint pw = 1;
    while (pw * 2 <= gl_WorkGroupSize.x) pw *= 2;
    if (l + pw < gl_WorkGroupSize.x &&
        better(best_v_[l + pw], best_i_[l + pw], best_v_[l], best_i_[l])) {
        best_v_[l] = best_v_[l + pw];
        best_i_[l] = best_i_[l + pw];
    }
    barrier();
    for (uint s = pw / 2; s > 0; s >>= 1) {
        if (l < s && better(best_v_[l + s], best_i_[l + s], best_v_[l], best_i_[l])) {
            best_v_[l] = best_v_[l + s];
            best_i_[l] = best_i_[l + s];
        }
        barrier();
    }
    cand r = cand(best_v_[0], best_i_[0]);
    barrier();
    return r;
#endif
}

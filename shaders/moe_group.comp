#version 450
// moe_group.comp: groups the (token, slot) pairs of a MoE batch by expert for matmul.comp MM_ID.
// One workgroup per expert e scans ids [n_pairs] (uint, the router's choices) and writes
//   g[e] = number of pairs choosing e (may exceed cap; readers clamp),
//   g[n_exp + e * cap + i] = the i-th such pair (order not specified), i < cap.
// Plain shared-memory atomics, no subgroup operations (runs on every device).
#extension GL_GOOGLE_include_directive : require
#include "shared.h"

layout(local_size_x_id = 0) in;

layout(std430, binding = 0) readonly buffer Ids { uint ids[]; };
layout(std430, binding = 1) buffer G { uint g[]; };
layout(push_constant) uniform Push { nb_push_moe_group p; };

shared uint cnt;

void main()
{
    uint e = gl_WorkGroupID.x;
    uint tid = gl_LocalInvocationID.x;
    if (tid == 0u) cnt = 0u;
    barrier();
    uint list = p.n_exp + e * p.cap;
    for (uint i = tid; i < p.n_pairs; i += gl_WorkGroupSize.x) {
        if (ids[i] == e) {
            uint j = atomicAdd(cnt, 1u);
            if (j < p.cap) g[list + j] = i;
        }
    }
    barrier();
    if (tid == 0u) g[e] = cnt;
}

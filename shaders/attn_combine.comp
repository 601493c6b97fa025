#version 450
// Merges the split-K partial results of attn.comp: per row (token, query head)
//   M = max_c m_c,  out = sum_c exp(m_c - M) o_c / sum_c exp(m_c - M) l_c
// over the chunks c that saw at least one key (l_c > 0). One workgroup per row, threads over
// the head_dim quads.
#extension GL_GOOGLE_include_directive : require
#include "shared.h"

layout(local_size_x_id = 0) in;

layout(std430, binding = 0) readonly buffer PO { vec4 part_o[]; };   // [n_split][n_rows][hd/4]
layout(std430, binding = 1) readonly buffer PML { vec2 part_ml[]; }; // [n_split][n_rows] (m, l)
layout(std430, binding = 2) writeonly buffer Out { vec4 o_out[]; };  // [n_rows][hd/4]
layout(push_constant) uniform Push { nb_push_attn_combine p; };

void main()
{
    const uint row = gl_WorkGroupID.x;
    const uint hd4 = p.head_dim / 4u;
    float mx = -3.0e38;
    for (uint c = 0; c < p.n_split; c++) {
        const vec2 ml = part_ml[c * p.n_rows + row];
        if (ml.y > 0.0)
            mx = max(mx, ml.x);
    }
    float l = 0.0;
    for (uint c = 0; c < p.n_split; c++) {
        const vec2 ml = part_ml[c * p.n_rows + row];
        if (ml.y > 0.0)
            l += exp(ml.x - mx) * ml.y;
    }
    const float inv = l > 0.0 ? 1.0 / l : 0.0;
    for (uint i = gl_LocalInvocationID.x; i < hd4; i += gl_WorkGroupSize.x) {
        vec4 a = vec4(0.0);
        for (uint c = 0; c < p.n_split; c++) {
            const vec2 ml = part_ml[c * p.n_rows + row];
            if (ml.y > 0.0)
                a += exp(ml.x - mx) * part_o[(c * p.n_rows + row) * hd4 + i];
        }
        o_out[row * hd4 + i] = a * inv;
    }
}

#version 450
// MoE (Gemma 4 26B-A4B) routing from router logits, one workgroup per token t:
//   p = softmax(logits[t][0..E)); top-k of p (ties to the lower expert id);
//   w_s = p_s / max(sum of the k, 6.1035e-5) [* expert_scale[id_s]] (ffn_down_exps.scale)
//   ids[t][s] = id_s, weights[t][s] = w_s.
// With COMBINE defined: out[t][j] = sum_s weights[t][s] * y[t*k + s][j], j < H (dispatch (j, t)).
#extension GL_GOOGLE_include_directive : require
#include "shared.h"

layout(local_size_x_id = 0) in;
layout(push_constant) uniform Push { nb_push_moe p; };

#ifdef COMBINE
layout(std430, binding = 0) readonly buffer Y { float y[]; };        // [T*k][y_stride]
layout(std430, binding = 1) readonly buffer Wt { float wts[]; };     // [T][k]
layout(std430, binding = 2) writeonly buffer O { float o[]; };       // [T][H]

void main()
{
    uint j = gl_GlobalInvocationID.x, t = gl_WorkGroupID.y;
    if (j >= p.n) return;
    float acc = 0.0;
    for (uint s = 0; s < p.k; s++)
        acc += wts[t * p.k + s] * y[(t * p.k + s) * p.y_stride + j];
    o[t * p.n + j] = acc;
}
#else
#include "reduce.glsl"
#include "best.glsl"

layout(std430, binding = 0) readonly buffer L { float logits[]; };   // [T][E]
layout(std430, binding = 1) readonly buffer Sc { float escale[]; };  // [E]
layout(std430, binding = 2) writeonly buffer I { uint ids[]; };      // [T][k]
layout(std430, binding = 3) writeonly buffer Wt { float wts[]; };    // [T][k]

const uint MAX_K = 32;
shared float sel_v[MAX_K];
shared uint sel_i[MAX_K];

void main()
{
    const float NEG_INF = uintBitsToFloat(0xff800000u);
    const uint NONE = 0xFFFFFFFFu;
    uint lid = gl_LocalInvocationID.x, t = gl_WorkGroupID.x;
    uint E = p.n, lb = t * E;

    cand mine = cand(NEG_INF, NONE);
    for (uint e = lid; e < E; e += gl_WorkGroupSize.x) {
        float v = logits[lb + e];
        if (!isnan(v) && better(v, e, mine.v, mine.i)) mine = cand(v, e);
    }
    float mx = wg_best(mine).v;
    float se = 0.0;
    for (uint e = lid; e < E; e += gl_WorkGroupSize.x) {
        float v = logits[lb + e];
        se += isnan(v) ? 0.0 : exp(v - mx);
    }
    float inv = 1.0 / wg_sum(se);

    cand last = cand(NEG_INF, NONE);
    for (uint s = 0; s < p.k; s++) {
        cand best = cand(NEG_INF, NONE);
        for (uint e = lid; e < E; e += gl_WorkGroupSize.x) {
            float v = logits[lb + e];
            float pe = isnan(v) ? 0.0 : exp(v - mx) * inv;
            if ((s == 0 || better(last.v, last.i, pe, e)) && better(pe, e, best.v, best.i))
                best = cand(pe, e);
        }
        last = wg_best(best);
        if (lid == 0) {
            sel_v[s] = last.v;
            sel_i[s] = last.i;
        }
    }
    if (lid != 0) return;
    float sum = 0.0;
    for (uint s = 0; s < p.k; s++) sum += sel_v[s];
    sum = max(sum, 6.1035e-5);
    for (uint s = 0; s < p.k; s++) {
        uint e = sel_i[s];
        float wv = sel_v[s] / sum;
        if ((p.flags & 1u) != 0u) wv *= escale[e];
        ids[t * p.k + s] = e;
        wts[t * p.k + s] = wv;
    }
}
#endif

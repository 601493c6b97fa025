#version 450
// Token choice on the device from a row of n logits: greedy (k = 1) or top-k / temperature /
// top-p sampling with a uniform draw from hash(seed, rng[0]) (rng: a device counter, e.g. the
// decode position, so a recorded step replays with a fresh draw). Two passes:
//   PASS 0: n_lists invocations; invocation l keeps the top k of logits l, l + n_lists, ... in
//           private arrays (insertion, no barriers) and writes them, best first, to part[l*k..].
//   With k > 1 a cheaper PASS 0 runs first with k = 1 (the maximum of each list), PASS 2 (one
//   workgroup) takes the k-th best of those maxima as a threshold, and the full PASS 0 skips
//   everything ranked below it, so few elements reach the insertion sort.
//   PASS 1: one workgroup merges the sorted lists (invocation l owns list l, n_lists <= WG), then
//           one invocation does softmax(v/T) over the k, the top-p cut and the draw, and writes
//           the token id to out[out_off].
// Order: larger value first, ties to the lower index; NaN counts as -inf.
#extension GL_GOOGLE_include_directive : require
#ifdef SUBGROUP
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif
#include "shared.h"

// default size 64, PASS 0's: with the default of 1 every value of PASS 0 is uniform, and RADV
// compiling the shader with default constants put the private top-k arrays in scalar registers
// and spilled 800-1000 of them
layout(local_size_x_id = 0, local_size_x = 64) in;
layout(constant_id = 1) const uint PASS = 0;
#include "best.glsl"

layout(std430, binding = 0) readonly buffer L { float logits[]; };   // [n]
layout(std430, binding = 1) buffer Part { uvec2 part[]; };  // [n_lists][k] (v bits, i); threshold at [n_lists*64]
layout(std430, binding = 2) buffer Out { uint out_ids[]; };
layout(std430, binding = 3) readonly buffer R { uint rng[]; };       // [1]
layout(push_constant) uniform Push { nb_push_sample p; };

const uint MAX_K = 64;
const uint NONE = 0xFFFFFFFFu;
shared float cand_v[MAX_K];
shared uint cand_i[MAX_K];
// PASS 1's probabilities, in shared memory although one invocation uses them: as a private
// array they took 64 registers of every invocation, which a 1024-wide workgroup does not have
// on wave64 GCN parts (RADV spilled 77 VGPRs to 2 KB of scratch on polaris10 and renoir)
shared float cand_p[MAX_K];

cand load_part(uint e)
{
    uvec2 q = part[e];
    return cand(uintBitsToFloat(q.x), q.y);
}

uint hash32(uint x)
{
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

void main()
{
    const float NEG_INF = uintBitsToFloat(0xff800000u);
    uint lid = gl_LocalInvocationID.x;
    if (PASS == 0) {
        // invocation l keeps the top k of logits l, l + L, l + 2L, ... (L = n_lists), sorted,
        // in private arrays: no barriers, coalesced reads
        uint l = gl_GlobalInvocationID.x;
        if (l >= p.n_lists) return;
        float lv[MAX_K];
        uint li[MAX_K];
        // with flags & 1, elements ranked below the threshold element from PASS 2 are skipped
        cand th = (p.flags & 1u) != 0u ? load_part(p.n_lists * MAX_K) : cand(NEG_INF, NONE);
        uint cnt = 0;
        float tv = NEG_INF; // the last kept element once the list is full (else below all)
        uint ti = NONE;
        bool full = false;
        for (uint j = l; j < p.n; j += p.n_lists) {
            float v = logits[j];
            if (isnan(v)) v = NEG_INF;
            if (full && !better(v, j, tv, ti)) continue;
            if (better(th.v, th.i, v, j)) continue;
            uint q = cnt < p.k ? cnt++ : p.k - 1;
            while (q > 0 && better(v, j, lv[q - 1], li[q - 1])) {
                lv[q] = lv[q - 1];
                li[q] = li[q - 1];
                q--;
            }
            lv[q] = v;
            li[q] = j;
            full = cnt == p.k;
            tv = lv[p.k - 1];
            ti = li[p.k - 1];
        }
        for (uint q = 0; q < p.k; q++)
            part[l * p.k + q] = q < cnt ? uvec2(floatBitsToUint(lv[q]), li[q])
                                        : uvec2(floatBitsToUint(NEG_INF), NONE);
        return;
    }

    if (PASS == 2) {
        // the k-th best of the list maxima (part[l], from PASS 0 with k = 1): at least k
        // elements rank at or above it, so the final top k does too
        cand cur = cand(NEG_INF, NONE);
        if (lid < p.n_lists) cur = load_part(lid);
        cand kth = cand(NEG_INF, NONE);
        for (uint k = 0; k < p.k; k++) {
            kth = wg_best(cur);
            if (lid < p.n_lists && kth.i != NONE && cur.i == kth.i) cur = cand(NEG_INF, NONE);
        }
        if (lid == 0) part[p.n_lists * MAX_K] = uvec2(floatBitsToUint(kth.v), kth.i);
        return;
    }

    // PASS 1: merge
    uint head = 0;
    cand cur = cand(NEG_INF, NONE);
    if (lid < p.n_lists) cur = load_part(lid * p.k);
    for (uint k = 0; k < p.k; k++) {
        cand best = wg_best(cur);
        if (lid < p.n_lists && best.i != NONE && cur.i == best.i) {
            head++;
            cur = head < p.k ? load_part(lid * p.k + head) : cand(NEG_INF, NONE);
        }
        if (lid == 0) {
            cand_v[k] = best.v;
            cand_i[k] = best.i;
        }
    }
    barrier();
    if (lid != 0) return;
    uint id = cand_i[0];
    if (p.k > 1 && p.inv_temp > 0.0 && cand_v[0] != NEG_INF) {
        float sum = 0.0;
        for (uint k = 0; k < p.k; k++) {
            cand_p[k] = cand_i[k] == NONE ? 0.0 : exp((cand_v[k] - cand_v[0]) * p.inv_temp);
            sum += cand_p[k];
        }
        float cum = 0.0;
        uint m = 0;
        for (uint k = 0; k < p.k; k++) {
            cand_p[k] /= sum;
            cum += cand_p[k];
            m = k + 1;
            if (cum >= p.top_p) break;
        }
        float u = float(hash32(p.seed ^ hash32(rng[0] + 0x9e3779b9u)) >> 8) * (1.0 / 16777216.0);
        float target = u * cum, acc = 0.0;
        id = cand_i[m - 1];
        for (uint k = 0; k < m; k++) {
            acc += cand_p[k];
            if (target < acc) {
                id = cand_i[k];
                break;
            }
        }
    }
    out_ids[p.out_off] = id;
}

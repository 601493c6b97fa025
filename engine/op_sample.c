/* op_sample: token choice on the device (argmax and top-k/top-p/temperature sampling with
 * sample.comp) and its CPU reference. See op_misc.h. */
#include "op_misc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "shared.h"

static uint32_t hash32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

/* 1/temp for the shader and the reference, and top_p made safe for any caller (the public API
 * refuses out-of-range values first, nibble_sampler_check): a temperature that is NaN, not
 * positive or so small that 1/temp overflows gives 0, greedy (the limit as temp -> 0, where the
 * shader would compute 0 * inf); top_p NaN or above 1 is 1 (off), below 0 is 0. */
static float safe_inv_temp(float temp, float *top_p)
{
    if (!(*top_p >= 0.0f)) *top_p = isnan(*top_p) ? 1.0f : 0.0f;
    if (*top_p > 1.0f) *top_p = 1.0f;
    float inv = temp > 0.0f ? 1.0f / temp : 0.0f;
    return isfinite(inv) ? inv : 0.0f;
}

float nb_sample_uniform(uint32_t seed, uint32_t counter)
{
    return (float)(hash32(seed ^ hash32(counter + 0x9e3779b9u)) >> 8) * (1.0f / 16777216.0f);
}

/* Records [list maxima, threshold,] pass 1 (top k of strided subsets), pass 2 (merge and choose),
 * with barriers between them. */
static void record(struct nb_op_misc *o, struct vkx_ctx *vk, struct vkx_cmd *c,
                   struct vkx_view logits, uint32_t n, uint32_t k, float inv_temp, float top_p,
                   uint32_t seed, struct vkx_view rng, struct vkx_view out, uint32_t out_off)
{
    if (n == 0) return;
    if (k < 1) k = 1;
    if (k > NB_SAMPLE_MAX_K) k = NB_SAMPLE_MAX_K;
    if (k > n) k = n;
    /* pass-1 invocations (= merge lists): about 512 logits each, at most one list per pass-2
     * invocation */
    uint32_t lists = vkx_ceil_div(n, 512);
    if (lists > o->sample_wg) lists = o->sample_wg;
    struct nb_push_sample p = {
        .n = n,
        .k = k,
        .n_lists = lists,
        .seed = seed,
        .out_off = out_off,
        .inv_temp = inv_temp,
        .top_p = top_p,
    };
    struct vkx_view b[4] = {logits, vkx_whole(&o->sample_part), out, rng.buf ? rng : out};
    uint32_t g1 = vkx_ceil_div(lists, o->sample1_wg);
    if (k > 1 && lists > k) {
        /* list maxima, then their k-th best as a threshold for the collecting pass */
        struct nb_push_sample p1 = p;
        p1.k = 1;
        vkx_cmd_dispatch(vk, c, &o->sample[0], b, 4, &p1, sizeof p1, g1, 1, 1);
        vkx_cmd_barrier(c);
        vkx_cmd_dispatch(vk, c, &o->sample[2], b, 4, &p, sizeof p, 1, 1, 1);
        vkx_cmd_barrier(c);
        p.flags = 1;
    }
    vkx_cmd_dispatch(vk, c, &o->sample[0], b, 4, &p, sizeof p, g1, 1, 1);
    vkx_cmd_barrier(c);
    vkx_cmd_dispatch(vk, c, &o->sample[1], b, 4, &p, sizeof p, 1, 1, 1);
}

void nb_op_argmax(struct nb_op_misc *o, struct vkx_ctx *vk, struct vkx_cmd *c,
                  struct vkx_view logits, uint32_t n, struct vkx_view out, uint32_t out_off)
{
    struct vkx_view none = {0};
    record(o, vk, c, logits, n, 1, 0.0f, 1.0f, 0, none, out, out_off);
}

void nb_op_sample(struct nb_op_misc *o, struct vkx_ctx *vk, struct vkx_cmd *c,
                  struct vkx_view logits, uint32_t n, uint32_t k, float temp, float top_p,
                  uint32_t seed, struct vkx_view rng, struct vkx_view out, uint32_t out_off)
{
    float inv_temp = safe_inv_temp(temp, &top_p);
    if (inv_temp == 0.0f) k = 1;
    record(o, vk, c, logits, n, k, inv_temp, top_p, seed, rng, out, out_off);
}

/* ---- CPU reference ----------------------------------------------------------------------------- */

struct cand {
    float v;
    uint32_t i;
};

static int better(struct cand a, struct cand b) { return a.v > b.v || (a.v == b.v && a.i < b.i); }

uint32_t nb_sample_ref(const float *logits, uint32_t n, uint32_t k, float temp, float top_p,
                       uint32_t seed, uint32_t counter, float *margin)
{
    if (margin) *margin = 1.0f;
    if (n == 0) return 0;
    float inv_temp = safe_inv_temp(temp, &top_p);
    if (inv_temp == 0.0f || k < 1) k = 1;
    if (k > NB_SAMPLE_MAX_K) k = NB_SAMPLE_MAX_K;
    if (k > n) k = n;
    /* top k by insertion into a sorted list */
    struct cand top[NB_SAMPLE_MAX_K];
    uint32_t m = 0;
    for (uint32_t i = 0; i < n; i++) {
        struct cand e = {isnan(logits[i]) ? -INFINITY : logits[i], i};
        if (m == k && !better(e, top[k - 1])) continue;
        uint32_t j = m < k ? m++ : k - 1;
        while (j > 0 && better(e, top[j - 1])) {
            top[j] = top[j - 1];
            j--;
        }
        top[j] = e;
    }
    if (k == 1 || top[0].v == -INFINITY) return top[0].i;

    float pr[NB_SAMPLE_MAX_K], sum = 0.0f;
    for (uint32_t j = 0; j < k; j++) {
        pr[j] = expf((top[j].v - top[0].v) * inv_temp);
        sum += pr[j];
    }
    float cum = 0.0f;
    uint32_t keep = 0;
    for (uint32_t j = 0; j < k; j++) {
        pr[j] /= sum;
        cum += pr[j];
        keep = j + 1;
        if (margin && fabsf(cum - top_p) < *margin) *margin = fabsf(cum - top_p);
        if (cum >= top_p) break;
    }
    float target = nb_sample_uniform(seed, counter) * cum, acc = 0.0f;
    uint32_t id = top[keep - 1].i;
    for (uint32_t j = 0; j < keep; j++) {
        float prev = acc;
        acc += pr[j];
        if (margin) {
            float d = fminf(fabsf(target - prev), fabsf(acc - target));
            if (target >= prev && target < acc && d < *margin) *margin = d;
        }
        if (target < acc) {
            id = top[j].i;
            break;
        }
    }
    return id;
}

/* op_misc: the small GPU ops of the forward pass: RMSNorm (plain, per head, fused with a residual
 * add, a device-scalar scale and RoPE), RoPE, elementwise ops (GEGLU, GELU, mul, add, scale,
 * softcap), token choice on the device (argmax, top-k/top-p/temperature sampling) and the MoE
 * router and combine.
 *
 * Activations are f32 row-major [n_tokens][width]; offsets and strides are in elements (so a
 * view can start at a buffer's beginning and the op can still address q/k/v inside a fused
 * buffer). Every function records its dispatch(es) into c and NO barrier before or after: the
 * caller puts vkx_cmd_barrier() between a dispatch and one that reads its output. Sampling
 * records two dispatches with a barrier between them. A view whose .buf is NULL means "absent".
 *
 * Implementation: op_norm.c (norm, rope), op_eltwise.c, op_sample.c, op_moe.c, op_misc.c
 * (pipelines). Shaders: rmsnorm.comp, rope.comp, eltwise.comp, sample.comp, moe_router.comp.
 */
#ifndef NB_OP_MISC_H
#define NB_OP_MISC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vkx.h"

#define NB_SAMPLE_MAX_K 64      /* candidates of top-k sampling */
#define NB_SAMPLE_MAX_LISTS 1024 /* pass-1 invocations of sampling (scratch rows) */
#define NB_MOE_MAX_K 32         /* experts per token in the router */

struct nb_op_misc {
    struct vkx_pipeline norm;       /* rmsnorm, wide workgroup (rows > 1024) */
    struct vkx_pipeline norm_small; /* rmsnorm, narrow workgroup (heads, small rows) */
    struct vkx_pipeline rope, elt, router, combine;
    struct vkx_pipeline sample[3];  /* sample.comp passes: collect, merge+choose, threshold */
    struct vkx_buffer sample_part;  /* [NB_SAMPLE_MAX_LISTS * NB_SAMPLE_MAX_K + 1] (f32 bits, u32) */
    bool subgroup;                  /* rmsnorm reduces with subgroup arithmetic */
    bool sample_subgroup;           /* the sampling merge likewise */
    uint32_t norm_wg, norm_small_wg, rope_wg, elt_wg, sample_wg, sample1_wg, router_wg, combine_wg;
};

int nb_op_misc_create(struct nb_op_misc *o, struct vkx_ctx *vk, char *err, size_t errlen);
void nb_op_misc_destroy(struct nb_op_misc *o, struct vkx_ctx *vk);

/* ---- RMSNorm ---------------------------------------------------------------------------------
 * For every token t < n_tokens and head h < n_heads, with row x_t,h = x[x_off + t*x_stride + h*n
 * .. +n) and y_t,h likewise:
 *     r = x_t,h * (mean(x_t,h^2) + eps)^-0.5 * w[n] * mul
 *     r = rope(r, pos[t])                     if n_rot (NeoX pairs (i, i + n_rot/2), see nb_op_rope)
 *     y_t,h = (add ? y_t,h + r : r) * scale[0] (scale: device scalar, absent = 1)
 *     z[t] = rmsnorm(y_t) * w2                 if z (one head, no RoPE; z dense [n_tokens][n])
 * y may be the same buffer as x (in place). n_heads 0 counts as 1, strides 0 as n*n_heads,
 * mul 0 as 1. Examples:
 *   pre-norm          {x=h, y=xn, w=attn_norm}
 *   q/k norm + rope   {x=q, y=q, n=hd, n_heads=nh, w=q_norm, n_rot, rope_base, pos, factors}
 *   v norm            {x=v, y=v, n=hd, n_heads=nkv} (no weight)
 *   post-norm + add   {x=attn_out, y=h, w=post_norm, add=true}
 *   ... + layer scale {..., add=true, scale=layer_output_scale}
 *   ... + next pre-norm {..., add=true, w2=ffn_norm, z=xn} (one dispatch for two steps)
 *   router input      {x=r, y=z, w=router_scale, mul=1/sqrt(H)} */
struct nb_norm_args {
    uint32_t n, n_heads, n_tokens;
    struct vkx_view x;      /* f32 */
    uint32_t x_off, x_stride;
    struct vkx_view y;      /* f32 */
    uint32_t y_off, y_stride;
    struct vkx_view w;      /* f32 [n], or absent */
    float eps, mul;
    bool add;
    struct vkx_view scale;  /* f32 [1], or absent */
    /* fused RoPE (n_rot 0 = none) */
    uint32_t n_rot;         /* even, <= n */
    double rope_base;
    struct vkx_view pos;    /* uint32 [n_tokens] */
    struct vkx_view factors; /* f32 [n_rot/2], or absent */
    struct vkx_view w2, z;   /* f32 [n] and [n_tokens][n]: the next norm of y, or absent */
};
void nb_op_rmsnorm(struct nb_op_misc *o, struct vkx_ctx *vk, struct vkx_cmd *c,
                   const struct nb_norm_args *a);

/* y[t] = rmsnorm(x[t]) * w, x and y [n_rows][n] dense, w [n] or absent. */
void nb_op_norm(struct nb_op_misc *o, struct vkx_ctx *vk, struct vkx_cmd *c, struct vkx_view x,
                struct vkx_view w, struct vkx_view y, uint32_t n, uint32_t n_rows, float eps);
/* h[t] = (h[t] + rmsnorm(x[t]) * w) * scale[0]; x and h [n_rows][n]; scale f32 [1] or absent. */
void nb_op_norm_add(struct nb_op_misc *o, struct vkx_ctx *vk, struct vkx_cmd *c,
                    struct vkx_view x, struct vkx_view w, struct vkx_view h, uint32_t n,
                    uint32_t n_rows, float eps, struct vkx_view scale);
/* The same, then z[t] = rmsnorm(h[t]) * w2 (the next block's pre-norm) in the same dispatch;
 * w2 absent: nb_op_norm_add. z [n_rows][n]. */
void nb_op_norm_add_next(struct nb_op_misc *o, struct vkx_ctx *vk, struct vkx_cmd *c,
                         struct vkx_view x, struct vkx_view w, struct vkx_view h, uint32_t n,
                         uint32_t n_rows, float eps, struct vkx_view scale, struct vkx_view w2,
                         struct vkx_view z);

/* ---- RoPE ------------------------------------------------------------------------------------
 * In place on x[x_off + t*stride + h*hd + i] (t < n_tokens, h < n_heads): the NeoX pairs
 * (i, i + n_rot/2), i < n_rot/2, rotate by theta_i = pos[t] * base^(-2i/n_rot) / factors[i]
 * (factors f32 [n_rot/2] or absent; a factor >= 1e20 means "no rotation"). Dims >= n_rot are
 * untouched. The angle is formed in double-float arithmetic and reduced to [-pi, pi] before
 * sin/cos, good to ~1e-6 rad for any position < 2^24. stride 0 = n_heads*hd. */
void nb_op_rope(struct nb_op_misc *o, struct vkx_ctx *vk, struct vkx_cmd *c, struct vkx_view x,
                uint32_t x_off, uint32_t stride, uint32_t n_heads, uint32_t hd, uint32_t n_tokens,
                uint32_t n_rot, double base, struct vkx_view pos, struct vkx_view factors);

/* ---- elementwise -----------------------------------------------------------------------------
 * o[o_off + r*o_stride + j] = f(a[a_off + r*a_stride + j], b[b_off + r*b_stride + j]), j < n,
 * r < rows, op = NB_ELT_* from shaders/shared.h:
 *   GEGLU gelu_tanh(a)*b, GELU gelu_tanh(a), MUL a*b, ADD a+b, SCALE a*c, SCALE_DEV a*s[0],
 *   SOFTCAP c*tanh(a/c).
 * o may be a or b (in place). Strides 0 = n. b and s absent when the op does not read them. */
struct nb_elt_args {
    uint32_t op, n, rows;
    struct vkx_view a, b, o, s;
    uint32_t a_off, a_stride, b_off, b_stride, o_off, o_stride;
    float c;
};
void nb_op_eltwise(struct nb_op_misc *o, struct vkx_ctx *vk, struct vkx_cmd *c,
                   const struct nb_elt_args *a);

/* out [rows][n] = gelu_tanh(gate) * up from a fused gate_up [rows][2n] (gate first: MoE and a
 * fused dense FFN), or from separate g and u [rows][n] (u absent: fused). */
void nb_op_geglu(struct nb_op_misc *o, struct vkx_ctx *vk, struct vkx_cmd *c, struct vkx_view g,
                 struct vkx_view u, struct vkx_view out, uint32_t n, uint32_t rows);
/* x[i] = c * tanh(x[i] / c), in place, i < n (final logit softcap). */
void nb_op_softcap(struct nb_op_misc *o, struct vkx_ctx *vk, struct vkx_cmd *c, struct vkx_view x,
                   uint32_t n, float cap);
/* x[i] *= s[0] in place, i < n (layer_output_scale, a 1-element device tensor). */
void nb_op_scale_dev(struct nb_op_misc *o, struct vkx_ctx *vk, struct vkx_cmd *c,
                     struct vkx_view x, struct vkx_view s, uint32_t n);

/* ---- token choice ----------------------------------------------------------------------------
 * Both write one uint32 token id into out[out_off] and use o->sample_part as scratch (so two
 * samplings in one recording need a barrier between them). Argmax records 2 dispatches,
 * sampling with k > 1 up to 4, with barriers between them. Order: larger logit first, ties to
 * the lower id, NaN counts as -inf. */
/* Greedy: the id of the largest of logits[0..n). */
void nb_op_argmax(struct nb_op_misc *o, struct vkx_ctx *vk, struct vkx_cmd *c,
                  struct vkx_view logits, uint32_t n, struct vkx_view out, uint32_t out_off);
/* Sampling: the top k (1..64) logits, p = softmax(v / temp) over them, the shortest prefix with
 * cumulative p >= top_p (top_p >= 1: all k), then a draw u = nb_sample_uniform(seed, rng[0]),
 * rng a device uint32 [1] (e.g. the decode position buffer, so a replayed recording draws anew).
 * temp <= 0 or k == 1 is greedy. Same result as nb_sample_ref on the same logits. */
void nb_op_sample(struct nb_op_misc *o, struct vkx_ctx *vk, struct vkx_cmd *c,
                  struct vkx_view logits, uint32_t n, uint32_t k, float temp, float top_p,
                  uint32_t seed, struct vkx_view rng, struct vkx_view out, uint32_t out_off);
/* The draw in [0, 1) used by nb_op_sample (24 bits). */
float nb_sample_uniform(uint32_t seed, uint32_t counter);
/* CPU reference of nb_op_sample (k clamped to 1..64 and n). If margin is given, it receives the
 * distance of the draw from the nearest boundary between tokens (in probability; tiny values
 * mean GPU and CPU rounding may pick neighbours). */
uint32_t nb_sample_ref(const float *logits, uint32_t n, uint32_t k, float temp, float top_p,
                       uint32_t seed, uint32_t counter, float *margin);

/* ---- MoE -------------------------------------------------------------------------------------
 * Router, per token t < n_tokens: p = softmax(logits[t][0..E)), the top k of p (ties to the lower
 * expert), w_s = p_s / max(sum of the k, 6.1035e-5) * escale[id_s] (escale f32 [E]
 * = ffn_down_exps.scale, or absent), ids uint32 [n_tokens][k], weights f32 [n_tokens][k].
 * The router logits come from a matvec of router_proj with z = rmsnorm(r) * router_scale * H^-0.5
 * (nb_op_rmsnorm with w = router scale, mul = 1/sqrt(H)). k <= min(E, 32). */
void nb_op_moe_router(struct nb_op_misc *o, struct vkx_ctx *vk, struct vkx_cmd *c,
                      struct vkx_view logits, struct vkx_view escale, struct vkx_view ids,
                      struct vkx_view weights, uint32_t n_expert, uint32_t k, uint32_t n_tokens);
/* out[t][j] = sum_s weights[t][s] * y[t*k + s][j], j < n; y [n_tokens*k][y_stride] (0 = n),
 * weights [n_tokens][k], out [n_tokens][n]. */
void nb_op_moe_combine(struct nb_op_misc *o, struct vkx_ctx *vk, struct vkx_cmd *c,
                       struct vkx_view y, struct vkx_view weights, struct vkx_view out, uint32_t n,
                       uint32_t k, uint32_t n_tokens, uint32_t y_stride);

#endif

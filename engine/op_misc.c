/* op_misc: pipelines of the small ops, and the RMSNorm, RoPE, elementwise and MoE recorders
 * (sampling is in op_sample.c). See op_misc.h. */
#include "op_misc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nb_shaders.h"
#include "shared.h"

static int mkpipe(struct vkx_ctx *vk, struct vkx_pipeline *p, enum nb_spv_id id,
                  uint32_t n_bindings, uint32_t push_size, uint32_t wg, uint32_t spec1,
                  char *err, size_t errlen)
{
    struct vkx_pipeline_desc d = {
        .name = nb_spv[id].name,
        .spv = nb_spv[id].code,
        .spv_size = *nb_spv[id].size,
        .n_bindings = n_bindings,
        .push_size = push_size,
        .n_spec = 2,
        .spec = {wg, spec1},
    };
    return vkx_pipeline_create(vk, p, &d, err, errlen);
}

static uint32_t min_u32(uint32_t a, uint32_t b) { return a < b ? a : b; }
static uint32_t max_u32(uint32_t a, uint32_t b) { return a > b ? a : b; }

/* Largest power of two <= want that the device allows in one workgroup. */
static uint32_t pick_wg(const struct vkx_ctx *vk, uint32_t want)
{
    uint32_t lim = min_u32(vk->caps.max_wg_invocations, vk->caps.max_wg_size[0]);
    uint32_t wg = 1;
    while (wg * 2 <= want && wg * 2 <= lim) wg *= 2;
    return wg;
}

int nb_op_misc_create(struct nb_op_misc *o, struct vkx_ctx *vk, char *err, size_t errlen)
{
    memset(o, 0, sizeof *o);
    uint32_t sg = vk->caps.subgroup_size ? vk->caps.subgroup_size : 1;
    o->norm_wg = pick_wg(vk, max_u32(256, sg));
    o->norm_small_wg = pick_wg(vk, min_u32(max_u32(64, sg), 256));
    o->rope_wg = pick_wg(vk, 64);
    o->elt_wg = pick_wg(vk, 256);
    o->sample_wg = pick_wg(vk, NB_SAMPLE_MAX_LISTS);
    o->sample1_wg = pick_wg(vk, 64);
    o->router_wg = pick_wg(vk, 64);
    o->combine_wg = pick_wg(vk, 256);

    /* subgroup reductions need whole subgroups in the workgroup */
    o->subgroup = vkx_has(vk, VKX_FEAT_SUBGROUP) && vk->caps.subgroup_arith &&
                  o->norm_small_wg % sg == 0 && o->norm_wg % sg == 0;
    const uint32_t norm_push = sizeof(struct nb_push_rmsnorm);
    if (o->subgroup) {
        char e2[256];
        if (mkpipe(vk, &o->norm, NB_SPV_RMSNORM_SG, 8, norm_push, o->norm_wg, 0, e2,
                   sizeof e2) != 0 ||
            mkpipe(vk, &o->norm_small, NB_SPV_RMSNORM_SG, 8, norm_push, o->norm_small_wg, 0, e2,
                   sizeof e2) != 0) {
            fprintf(stderr, "nibble: rmsnorm with subgroups refused (%s); using shared memory\n",
                    e2);
            vkx_pipeline_destroy(vk, &o->norm);
            vkx_pipeline_destroy(vk, &o->norm_small);
            memset(&o->norm, 0, sizeof o->norm);
            memset(&o->norm_small, 0, sizeof o->norm_small);
            o->subgroup = false;
        }
    }
    if (!o->subgroup &&
        (mkpipe(vk, &o->norm, NB_SPV_RMSNORM, 8, norm_push, o->norm_wg, 0, err, errlen) != 0 ||
         mkpipe(vk, &o->norm_small, NB_SPV_RMSNORM, 8, norm_push, o->norm_small_wg, 0, err,
                errlen) != 0))
        goto fail;
    if (mkpipe(vk, &o->rope, NB_SPV_ROPE, 3, sizeof(struct nb_push_rope), o->rope_wg, 0, err,
               errlen) != 0 ||
        mkpipe(vk, &o->elt, NB_SPV_ELTWISE, 4, sizeof(struct nb_push_eltwise), o->elt_wg, 0, err,
               errlen) != 0 ||
        mkpipe(vk, &o->sample[0], NB_SPV_SAMPLE, 4, sizeof(struct nb_push_sample),
               o->sample1_wg, 0, err, errlen) != 0 ||
        mkpipe(vk, &o->router, NB_SPV_MOE_ROUTER, 4, sizeof(struct nb_push_moe), o->router_wg, 0,
               err, errlen) != 0 ||
        mkpipe(vk, &o->combine, NB_SPV_MOE_COMBINE, 3, sizeof(struct nb_push_moe),
               o->combine_wg, 0, err, errlen) != 0)
        goto fail;
    /* the merge pass, with subgroup reductions when it can */
    o->sample_subgroup = vkx_has(vk, VKX_FEAT_SUBGROUP) && vk->caps.subgroup_arith &&
                         o->sample_wg % sg == 0;
    if (o->sample_subgroup) {
        char e2[256];
        if (mkpipe(vk, &o->sample[1], NB_SPV_SAMPLE_SG, 4, sizeof(struct nb_push_sample),
                   o->sample_wg, 1, e2, sizeof e2) != 0 ||
            mkpipe(vk, &o->sample[2], NB_SPV_SAMPLE_SG, 4, sizeof(struct nb_push_sample),
                   o->sample_wg, 2, e2, sizeof e2) != 0) {
            fprintf(stderr, "nibble: sampling with subgroups refused (%s); using shared memory\n",
                    e2);
            for (int i = 1; i < 3; i++) {
                if (o->sample[i].pipe) vkx_pipeline_destroy(vk, &o->sample[i]);
                memset(&o->sample[i], 0, sizeof o->sample[i]);
            }
            o->sample_subgroup = false;
        }
    }
    if (!o->sample_subgroup &&
        (mkpipe(vk, &o->sample[1], NB_SPV_SAMPLE, 4, sizeof(struct nb_push_sample), o->sample_wg,
                1, err, errlen) != 0 ||
         mkpipe(vk, &o->sample[2], NB_SPV_SAMPLE, 4, sizeof(struct nb_push_sample), o->sample_wg,
                2, err, errlen) != 0))
        goto fail;
    /* pass 1 writes (value, id) pairs [lists][k], the threshold pass one more pair */
    if (vkx_buffer_create(vk, &o->sample_part,
                          ((VkDeviceSize)NB_SAMPLE_MAX_LISTS * NB_SAMPLE_MAX_K + 1) * 8,
                          VKX_MEM_DEVICE, err, errlen) != 0)
        goto fail;
    return 0;
fail:
    nb_op_misc_destroy(o, vk);
    return -1;
}

void nb_op_misc_destroy(struct nb_op_misc *o, struct vkx_ctx *vk)
{
    struct vkx_pipeline *ps[] = {&o->norm,      &o->norm_small, &o->rope,   &o->elt,
                                 &o->sample[0], &o->sample[1],  &o->sample[2], &o->router,
                                 &o->combine};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++)
        if (ps[i]->pipe) vkx_pipeline_destroy(vk, ps[i]);
    if (o->sample_part.buf) vkx_buffer_destroy(vk, &o->sample_part);
    memset(o, 0, sizeof *o);
}

/* An absent view is bound as `fallback` (the shader does not read it). */
static struct vkx_view or_view(struct vkx_view v, struct vkx_view fallback)
{
    return v.buf ? v : fallback;
}

/* base^(-2/n_rot) as a double-float pair */
static void rope_theta(double base, uint32_t n_rot, float *hi, float *lo)
{
    double th = pow(base, -2.0 / (double)n_rot);
    *hi = (float)th;
    *lo = (float)(th - (double)*hi);
}

/* ---- RMSNorm ---------------------------------------------------------------------------------- */

void nb_op_rmsnorm(struct nb_op_misc *o, struct vkx_ctx *vk, struct vkx_cmd *c,
                   const struct nb_norm_args *a)
{
    uint32_t heads = a->n_heads ? a->n_heads : 1;
    if (a->n == 0 || a->n_tokens == 0) return;
    struct nb_push_rmsnorm p = {
        .n = a->n,
        .x_off = a->x_off,
        .x_stride = a->x_stride ? a->x_stride : a->n * heads,
        .y_off = a->y_off,
        .y_stride = a->y_stride ? a->y_stride : a->n * heads,
        .flags = (a->w.buf ? NB_NORM_W : 0) | (a->add ? NB_NORM_ADD : 0) |
                 (a->scale.buf ? NB_NORM_SCALE : 0) | (a->z.buf ? NB_NORM_NEXT : 0),
        .eps = a->eps,
        .mul = a->mul != 0.0f ? a->mul : 1.0f,
    };
    if (a->n_rot) {
        p.flags |= NB_NORM_ROPE | (a->factors.buf ? NB_NORM_FACTORS : 0);
        p.n_rot = (a->n_rot < a->n ? a->n_rot : a->n) & ~1u;
        rope_theta(a->rope_base, p.n_rot, &p.th_hi, &p.th_lo);
    }
    if (a->z.buf && (heads > 1 || a->n_rot || !a->w2.buf)) {
        fprintf(stderr, "nibble: %s:%d: rmsnorm: a next norm (z) needs one head, no RoPE and its "
                "weight w2\n", __FILE__, __LINE__);
        abort();
    }
    struct vkx_view b[8] = {a->x,
                            or_view(a->w, a->x),
                            a->y,
                            or_view(a->scale, a->x),
                            or_view(a->pos, a->x),
                            or_view(a->factors, a->x),
                            or_view(a->w2, a->x),
                            or_view(a->z, a->y)};
    const struct vkx_pipeline *pl = a->n > 1024 ? &o->norm : &o->norm_small;
    vkx_cmd_dispatch(vk, c, pl, b, 8, &p, sizeof p, heads, a->n_tokens, 1);
}

void nb_op_norm(struct nb_op_misc *o, struct vkx_ctx *vk, struct vkx_cmd *c, struct vkx_view x,
                struct vkx_view w, struct vkx_view y, uint32_t n, uint32_t n_rows, float eps)
{
    struct nb_norm_args a = {.n = n, .n_tokens = n_rows, .x = x, .y = y, .w = w, .eps = eps};
    nb_op_rmsnorm(o, vk, c, &a);
}

void nb_op_norm_add(struct nb_op_misc *o, struct vkx_ctx *vk, struct vkx_cmd *c,
                    struct vkx_view x, struct vkx_view w, struct vkx_view h, uint32_t n,
                    uint32_t n_rows, float eps, struct vkx_view scale)
{
    struct vkx_view none = {0};
    nb_op_norm_add_next(o, vk, c, x, w, h, n, n_rows, eps, scale, none, none);
}

void nb_op_norm_add_next(struct nb_op_misc *o, struct vkx_ctx *vk, struct vkx_cmd *c,
                         struct vkx_view x, struct vkx_view w, struct vkx_view h, uint32_t n,
                         uint32_t n_rows, float eps, struct vkx_view scale, struct vkx_view w2,
                         struct vkx_view z)
{
    struct nb_norm_args a = {
        .n = n, .n_tokens = n_rows, .x = x, .y = h, .w = w, .eps = eps, .add = true,
        .scale = scale, .w2 = w2, .z = w2.buf ? z : w2};
    nb_op_rmsnorm(o, vk, c, &a);
}

/* ---- RoPE ------------------------------------------------------------------------------------- */

void nb_op_rope(struct nb_op_misc *o, struct vkx_ctx *vk, struct vkx_cmd *c, struct vkx_view x,
                uint32_t x_off, uint32_t stride, uint32_t n_heads, uint32_t hd, uint32_t n_tokens,
                uint32_t n_rot, double base, struct vkx_view pos, struct vkx_view factors)
{
    struct nb_push_rope p = {
        .n_heads = n_heads,
        .hd = hd,
        .off = x_off,
        .stride = stride ? stride : n_heads * hd,
        .n_rot = (n_rot < hd ? n_rot : hd) & ~1u,
        .flags = factors.buf ? NB_NORM_FACTORS : 0,
    };
    if (p.n_rot == 0 || n_tokens == 0) return;
    rope_theta(base, p.n_rot, &p.th_hi, &p.th_lo);
    struct vkx_view b[3] = {x, pos, or_view(factors, x)};
    uint32_t gx = vkx_ceil_div((uint64_t)n_heads * (p.n_rot / 2), o->rope_wg);
    vkx_cmd_dispatch(vk, c, &o->rope, b, 3, &p, sizeof p, gx, n_tokens, 1);
}

/* ---- elementwise ------------------------------------------------------------------------------ */

void nb_op_eltwise(struct nb_op_misc *o, struct vkx_ctx *vk, struct vkx_cmd *c,
                   const struct nb_elt_args *a)
{
    struct nb_push_eltwise p = {
        .op = a->op,
        .n = a->n,
        .a_off = a->a_off,
        .a_stride = a->a_stride ? a->a_stride : a->n,
        .b_off = a->b_off,
        .b_stride = a->b_stride ? a->b_stride : a->n,
        .o_off = a->o_off,
        .o_stride = a->o_stride ? a->o_stride : a->n,
        .c = a->c,
    };
    if (a->n == 0 || a->rows == 0) return;
    struct vkx_view b[4] = {a->a, or_view(a->b, a->a), a->o, or_view(a->s, a->a)};
    /* column and row blocks that fit the grid limits (one dispatch for the usual shapes) */
    uint32_t max_cols = min_u32(vk->caps.max_wg_count[0], 65535) * o->elt_wg;
    uint32_t max_rows = min_u32(vk->caps.max_wg_count[1], 65535);
    for (uint32_t r0 = 0; r0 < a->rows; r0 += max_rows)
        for (uint32_t c0 = 0; c0 < a->n; c0 += max_cols) {
            struct nb_push_eltwise q = p;
            uint32_t nr = min_u32(max_rows, a->rows - r0);
            q.n = min_u32(max_cols, a->n - c0);
            q.a_off += r0 * p.a_stride + c0;
            q.b_off += r0 * p.b_stride + c0;
            q.o_off += r0 * p.o_stride + c0;
            vkx_cmd_dispatch(vk, c, &o->elt, b, 4, &q, sizeof q, vkx_ceil_div(q.n, o->elt_wg),
                             nr, 1);
        }
}

void nb_op_geglu(struct nb_op_misc *o, struct vkx_ctx *vk, struct vkx_cmd *c, struct vkx_view g,
                 struct vkx_view u, struct vkx_view out, uint32_t n, uint32_t rows)
{
    struct nb_elt_args a = {.op = NB_ELT_GEGLU, .n = n, .rows = rows, .a = g, .o = out};
    if (u.buf) {
        a.b = u;
    } else { /* fused [rows][2n], gate first */
        a.b = g;
        a.a_stride = a.b_stride = 2 * n;
        a.b_off = n;
    }
    nb_op_eltwise(o, vk, c, &a);
}

void nb_op_softcap(struct nb_op_misc *o, struct vkx_ctx *vk, struct vkx_cmd *c, struct vkx_view x,
                   uint32_t n, float cap)
{
    struct nb_elt_args a = {.op = NB_ELT_SOFTCAP, .n = n, .rows = 1, .a = x, .o = x, .c = cap};
    nb_op_eltwise(o, vk, c, &a);
}

void nb_op_scale_dev(struct nb_op_misc *o, struct vkx_ctx *vk, struct vkx_cmd *c,
                     struct vkx_view x, struct vkx_view s, uint32_t n)
{
    struct nb_elt_args a = {.op = NB_ELT_SCALE_DEV, .n = n, .rows = 1, .a = x, .o = x, .s = s};
    nb_op_eltwise(o, vk, c, &a);
}

/* ---- MoE -------------------------------------------------------------------------------------- */

void nb_op_moe_router(struct nb_op_misc *o, struct vkx_ctx *vk, struct vkx_cmd *c,
                      struct vkx_view logits, struct vkx_view escale, struct vkx_view ids,
                      struct vkx_view weights, uint32_t n_expert, uint32_t k, uint32_t n_tokens)
{
    if (k > n_expert) k = n_expert;
    if (k > NB_MOE_MAX_K) k = NB_MOE_MAX_K;
    if (k == 0 || n_tokens == 0) return;
    struct nb_push_moe p = {.n = n_expert, .k = k, .flags = escale.buf ? 1u : 0u};
    struct vkx_view b[4] = {logits, or_view(escale, logits), ids, weights};
    vkx_cmd_dispatch(vk, c, &o->router, b, 4, &p, sizeof p, n_tokens, 1, 1);
}

void nb_op_moe_combine(struct nb_op_misc *o, struct vkx_ctx *vk, struct vkx_cmd *c,
                       struct vkx_view y, struct vkx_view weights, struct vkx_view out, uint32_t n,
                       uint32_t k, uint32_t n_tokens, uint32_t y_stride)
{
    if (n == 0 || n_tokens == 0) return;
    struct nb_push_moe p = {.n = n, .k = k, .y_stride = y_stride ? y_stride : n};
    struct vkx_view b[3] = {y, weights, out};
    vkx_cmd_dispatch(vk, c, &o->combine, b, 3, &p, sizeof p, vkx_ceil_div(n, o->combine_wg),
                     n_tokens, 1);
}

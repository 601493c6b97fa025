/* op_int8.c: pipelines and dispatches of the integer dot-product decode product (op_int8.h). */
#include "op_int8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nb_shaders.h"
#include "op_matmul.h"
#include "shared.h"

/* Type slots, the SPIR-V of each (Q4_0 and Q8_0 the plain variant, the rest quant_unit.glsl's)
 * and the pipeline names (they must outlive the pipelines: timestamp labels). */
static const enum ggml_type i8_type[NB_I8_NTYPES] = {GGML_Q4_0, GGML_Q8_0, GGML_Q4_1, GGML_Q5_0,
                                                     GGML_Q5_1, GGML_Q4_K, GGML_Q5_K, GGML_Q6_K};
#define I8_NAMES(op)                                                                             \
    {                                                                                            \
        op "_q4_0", op "_q8_0", op "_q4_1", op "_q5_0", op "_q5_1", op "_q4_k", op "_q5_k",      \
            op "_q6_k"                                                                           \
    }
static const char *const i8_names[NB_I8_VARIANTS][NB_I8_NTYPES] = {
    I8_NAMES("matvec_i8"), I8_NAMES("matvec2_i8"), I8_NAMES("matvec4_i8"),
    I8_NAMES("matvec8_i8")};
static const char *const i8_id_names[NB_I8_NTYPES] = I8_NAMES("matvec_id_i8");

#define XQ_BLOCK_BYTES 80u /* quant_act.comp: 5 uvec4 per 32 elements */

static int i8_slot(enum ggml_type t)
{
    for (int i = 0; i < NB_I8_NTYPES; i++)
        if (i8_type[i] == t) return i;
    return -1;
}

bool nb_op_int8_wanted(const struct vkx_ctx *vk)
{
    const struct vkx_caps *c = &vk->caps;
    if (!c->int_dot || (c->disabled & VKX_FEAT_INT8)) return false;
    const char *force = getenv("NIBBLE_INT8");
    return c->int_dot_4x8_accel || (force && !strcmp(force, "1"));
}

static int make(struct vkx_ctx *vk, struct vkx_pipeline *p, enum nb_spv_id id, const char *name,
                uint32_t push_size, const uint32_t *spec, uint32_t n_spec, uint32_t sg_size,
                char *err, size_t errlen)
{
    struct vkx_pipeline_desc d;
    memset(&d, 0, sizeof d);
    d.name = name;
    d.subgroup_size = sg_size;
    d.full_subgroups = sg_size != 0;
    d.spv = nb_spv[id].code;
    d.spv_size = *nb_spv[id].size;
    bool mv_id = id == NB_SPV_MATVEC_I8_ID || id == NB_SPV_MATVEC_I8_ID_SG ||
                 id == NB_SPV_MATVEC_I8_ID_U || id == NB_SPV_MATVEC_I8_ID_U_SG;
    d.n_bindings = id == NB_SPV_QUANT_ACT ? 2 : mv_id ? 4 : 3;
    d.push_size = push_size;
    d.n_spec = n_spec;
    memcpy(d.spec, spec, n_spec * sizeof *spec);
    return vkx_pipeline_create(vk, p, &d, err, errlen);
}

int nb_op_int8_create(struct nb_op_int8 *o, struct vkx_ctx *vk, uint32_t types, bool subgroup,
                      uint32_t sg_size, uint32_t max_tokens, char *err, size_t errlen)
{
    memset(o, 0, sizeof *o);
    if (!vk->caps.int_dot || (vk->caps.disabled & VKX_FEAT_INT8)) {
        snprintf(err, errlen, "the device has no integer dot product (or int8 is disabled)");
        return -1;
    }
    /* the GPU shape of matvec.comp: 128 threads, 32 lanes a row (a subgroup, or 32 threads and
     * shared memory), 2 rows per group, 1 from 4 tokens on (registers) */
    uint32_t wg = 128;
    if (wg > vk->caps.max_wg_invocations) wg = vk->caps.max_wg_invocations;
    uint32_t tpr = 32;
    while (tpr > wg)
        tpr /= 2;
    if (subgroup && sg_size && wg % sg_size) sg_size = 0;
    uint32_t sgs = sg_size ? sg_size : vk->caps.subgroup_size ? vk->caps.subgroup_size : 32;
    o->subgroup = subgroup;
    o->sg_size = subgroup ? sg_size : 0;
    o->qact_wg = 64;
    uint32_t qspec[1] = {o->qact_wg};
    if (make(vk, &o->qact, NB_SPV_QUANT_ACT, "quant_act", sizeof(struct nb_push_quant_act), qspec,
             1, 0, err, errlen) != 0)
        goto fail;
    o->nvar = 1;
    while (o->nvar < NB_I8_VARIANTS && (1u << o->nvar) <= max_tokens)
        o->nvar++;
    for (uint32_t k = 0; k < o->nvar; k++) {
        uint32_t ntok = 1u << k, nr = ntok >= 4 ? 1 : 2;
        uint32_t ngroups = subgroup ? (wg / sgs ? wg / sgs : 1) : wg / tpr;
        o->rows[k] = ngroups * nr;
        for (int ts = 0; ts < NB_I8_NTYPES; ts++) {
            enum ggml_type t = i8_type[ts];
            if (!(types & NB_MM_TYPE_BIT(t))) continue;
            bool unit = t != GGML_Q4_0 && t != GGML_Q8_0;
            enum nb_spv_id id = unit ? (subgroup ? NB_SPV_MATVEC_I8_U_SG : NB_SPV_MATVEC_I8_U)
                                     : (subgroup ? NB_SPV_MATVEC_I8_SG : NB_SPV_MATVEC_I8);
            uint32_t spec[6] = {wg, (uint32_t)t, nr, ntok, tpr, o->rows[k]};
            if (make(vk, &o->mv[ts][k], id, i8_names[k][ts], sizeof(struct nb_push_matvec_i8),
                     spec, 6, o->sg_size, err, errlen) != 0)
                goto fail;
            o->types |= NB_MM_TYPE_BIT(t);
        }
    }
    for (int ts = 0; ts < NB_I8_NTYPES && (types & NB_MM_EXPERTS); ts++) {
        enum ggml_type t = i8_type[ts];
        if (!(types & NB_MM_TYPE_BIT(t))) continue;
        bool unit = t != GGML_Q4_0 && t != GGML_Q8_0;
        enum nb_spv_id id = unit ? (subgroup ? NB_SPV_MATVEC_I8_ID_U_SG : NB_SPV_MATVEC_I8_ID_U)
                                 : (subgroup ? NB_SPV_MATVEC_I8_ID_SG : NB_SPV_MATVEC_I8_ID);
        uint32_t spec[6] = {wg, (uint32_t)t, 2, 1, tpr, o->rows[0]};
        if (make(vk, &o->mv_id[ts], id, i8_id_names[ts], sizeof(struct nb_push_matvec_i8), spec,
                 6, o->sg_size, err, errlen) != 0)
            goto fail;
    }
    return 0;
fail:
    nb_op_int8_destroy(o, vk);
    return -1;
}

void nb_op_int8_destroy(struct nb_op_int8 *o, struct vkx_ctx *vk)
{
    if (o->qact.pipe) vkx_pipeline_destroy(vk, &o->qact);
    for (int ts = 0; ts < NB_I8_NTYPES; ts++)
        for (int k = 0; k < NB_I8_VARIANTS; k++)
            if (o->mv[ts][k].pipe) vkx_pipeline_destroy(vk, &o->mv[ts][k]);
    for (int ts = 0; ts < NB_I8_NTYPES; ts++)
        if (o->mv_id[ts].pipe) vkx_pipeline_destroy(vk, &o->mv_id[ts]);
    if (o->xq.buf) vkx_buffer_destroy(vk, &o->xq);
    for (uint32_t i = 0; i < o->n_old; i++)
        vkx_buffer_destroy(vk, &o->old[i]);
    memset(o, 0, sizeof *o);
}

/* Scratch for n x rows of K elements in each of the two slots: false when none can be had. */
static bool scratch(struct nb_op_int8 *o, struct vkx_ctx *vk, uint32_t K, uint32_t n)
{
    uint64_t need = (uint64_t)n * (K / 32) * XQ_BLOCK_BYTES;
    if (o->xq.buf && need <= o->slot_bytes) return true;
    if (o->xq.buf && o->n_old == NB_I8_MAX_OLD) return false;
    uint64_t slot = 8ull * 512 * XQ_BLOCK_BYTES; /* rows up to 16384 from the start */
    while (slot < need)
        slot *= 2;
    if (2 * slot > vk->caps.max_storage_range) return false;
    struct vkx_buffer b;
    char err[256];
    if (vkx_buffer_create(vk, &b, 2 * slot, VKX_MEM_DEVICE, err, sizeof err) != 0) return false;
    if (o->xq.buf) o->old[o->n_old++] = o->xq;
    o->xq = b;
    o->slot_bytes = slot;
    return true;
}

/* Records the quantization of n rows of x (K elements each, x_stride apart; 0: K) into the next
 * scratch slot and a barrier; returns the slot's first uvec4. The caller's label
 * (vkx_cmd_label) names the quantization, the step's first dispatch: the products that follow
 * count in the same step (tools/benchutil.c). */
static uint32_t quantize(struct nb_op_int8 *o, struct vkx_ctx *vk, struct vkx_cmd *c,
                         struct vkx_view x, uint32_t K, uint32_t n, uint32_t x_stride)
{
    uint32_t xq0 = (uint32_t)(o->next_slot * (o->slot_bytes / 16));
    o->next_slot ^= 1u;
    struct nb_push_quant_act qp = {.K = K, .x_stride = x_stride ? x_stride : K, .xq0 = xq0};
    struct vkx_view qb[2] = {x, vkx_whole(&o->xq)};
    vkx_cmd_dispatch(vk, c, &o->qact, qb, 2, &qp, sizeof qp, vkx_ceil_div(K / 32, o->qact_wg), n,
                     1);
    vkx_cmd_barrier(c);
    return xq0;
}

bool nb_op_int8_matvec(struct nb_op_int8 *o, struct vkx_ctx *vk, struct vkx_cmd *c,
                       const struct nb_gtensor *w, struct vkx_view x, struct vkx_view y,
                       uint32_t n_tokens, uint32_t x_stride, uint32_t y_stride, bool accumulate)
{
    int ts = i8_slot(w->type);
    uint32_t K = (uint32_t)w->ne[0];
    if (!o->on || ts < 0 || !(o->types & NB_MM_TYPE_BIT(w->type)) || n_tokens == 0 ||
        n_tokens > 8 || K % 32 != 0 || !scratch(o, vk, K, 8))
        return false;
    uint32_t xq0 = quantize(o, vk, c, x, K, n_tokens, x_stride);
    uint32_t k = 0;
    while (k + 1 < o->nvar && (1u << k) < n_tokens)
        k++;
    uint32_t ntok = 1u << k, M = (uint32_t)w->rows;
    uint32_t maxx = vk->caps.max_wg_count[0] ? vk->caps.max_wg_count[0] : 65535;
    for (uint32_t pi = 0; pi < w->data.n; pi++) {
        uint32_t prow = (uint32_t)nb_gtensor_piece_rows(w, pi);
        uint32_t groups = vkx_ceil_div(prow, o->rows[k]);
        uint32_t gx = groups < maxx ? groups : maxx, gy = vkx_ceil_div(groups, gx);
        struct nb_push_matvec_i8 p = {
            .K = K,
            .nrows = prow,
            .row0 = pi * (uint32_t)w->rows_per_piece,
            .ntok = n_tokens,
            .y_stride = y_stride ? y_stride : M,
            .accumulate = accumulate,
            .dbase = nb_gtensor_dbase(w, pi),
            .wtile = w->tile_shift,
            .xq0 = xq0,
        };
        struct vkx_view b[3] = {vkx_whole(&w->data.b[pi]), vkx_whole(&o->xq), y};
        vkx_cmd_dispatch(vk, c, &o->mv[ts][k], b, 3, &p, sizeof p, gx, gy,
                         vkx_ceil_div(n_tokens, ntok));
    }
    return true;
}

bool nb_op_int8_matvec_id(struct nb_op_int8 *o, struct vkx_ctx *vk, struct vkx_cmd *c,
                          const struct nb_gtensor *w, struct vkx_view x, struct vkx_view y,
                          struct vkx_view ids, uint32_t n_tokens, uint32_t n_slots,
                          bool x_per_slot, uint32_t x_stride, uint32_t y_stride, bool accumulate)
{
    int ts = i8_slot(w->type);
    uint32_t K = (uint32_t)w->ne[0], M = (uint32_t)w->ne[1], pairs = n_tokens * n_slots;
    uint32_t nx = x_per_slot ? pairs : n_tokens; /* x rows */
    if (!o->on || ts < 0 || !o->mv_id[ts].pipe || n_tokens == 0 || n_tokens > 8 ||
        n_slots == 0 || K % 32 != 0 || !scratch(o, vk, K, nx))
        return false;
    uint32_t xq0 = quantize(o, vk, c, x, K, nx, x_stride);
    uint32_t per_piece = (uint32_t)(w->rows_per_piece / M); /* experts per piece */
    uint32_t n_exp = (uint32_t)(w->rows / M);
    uint32_t maxx = vk->caps.max_wg_count[0] ? vk->caps.max_wg_count[0] : 65535;
    uint32_t maxz = vk->caps.max_wg_count[2] ? vk->caps.max_wg_count[2] : 65535;
    uint32_t groups = vkx_ceil_div(M, o->rows[0]);
    uint32_t gx = groups < maxx ? groups : maxx, gy = vkx_ceil_div(groups, gx);
    for (uint32_t pi = 0; pi < w->data.n; pi++)
        for (uint32_t p0 = 0; p0 < pairs; p0 += maxz) {
            uint32_t e0 = pi * per_piece;
            struct nb_push_matvec_i8 p = {
                .K = K,
                .nrows = M,
                .ntok = 1,
                .y_stride = y_stride ? y_stride : M,
                .accumulate = accumulate,
                .dbase = nb_gtensor_dbase(w, pi),
                .wtile = w->tile_shift,
                .xq0 = xq0,
                .n_slots = n_slots,
                .x_per_slot = x_per_slot,
                .e0 = e0,
                .e1 = e0 + per_piece < n_exp ? e0 + per_piece : n_exp,
                .pair0 = p0,
                .m_rows = M,
            };
            struct vkx_view b[4] = {vkx_whole(&w->data.b[pi]), vkx_whole(&o->xq), y, ids};
            uint32_t nz = pairs - p0 < maxz ? pairs - p0 : maxz;
            vkx_cmd_dispatch(vk, c, &o->mv_id[ts], b, 4, &p, sizeof p, gx, gy, nz);
        }
    return true;
}

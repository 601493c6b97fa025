/* op_matmul.c: pipelines and dispatch recording for the weight products (see op_matmul.h). */
#include "op_matmul.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nb_shaders.h"
#include "shared.h"

/* Type slots of the pipeline tables; the shaders take the ggml id as spec constant TYPE. */
static const enum ggml_type slot_type[NB_MM_NTYPES] = {
    GGML_F32,  GGML_F16,  GGML_BF16, GGML_Q4_0, GGML_Q4_1,   GGML_Q5_0,  GGML_Q5_1,  GGML_Q8_0,
    GGML_Q2_K, GGML_Q3_K, GGML_Q4_K, GGML_Q5_K, GGML_Q6_K, GGML_IQ4_NL, GGML_IQ4_XS};

/* Pipeline names (they must outlive the pipelines: timestamp labels), in slot order. */
#define TYPE_NAMES(op)                                                                           \
    {                                                                                            \
        op "_f32", op "_f16", op "_bf16", op "_q4_0", op "_q4_1", op "_q5_0", op "_q5_1",        \
            op "_q8_0", op "_q2_k", op "_q3_k", op "_q4_k", op "_q5_k", op "_q6_k", op "_iq4_nl", \
            op "_iq4_xs"                                                                         \
    }

static bool quantized(enum ggml_type t)
{
    return t != GGML_F32 && t != GGML_F16 && t != GGML_BF16;
}

/* Whether the shaders read t through quant_unit.glsl (their UNIT variants). */
static bool unit_type(enum ggml_type t)
{
    return quantized(t) && t != GGML_Q4_0 && t != GGML_Q8_0;
}

/* The SPIR-V of shader `id` (a plain variant) for weights of type t. */
static enum nb_spv_id spv_for(enum nb_spv_id id, enum ggml_type t)
{
    if (!unit_type(t)) return id;
    switch (id) {
    case NB_SPV_MATVEC: return NB_SPV_MATVEC_U;
    case NB_SPV_MATVEC_SG: return NB_SPV_MATVEC_U_SG;
    case NB_SPV_MATVEC_ID: return NB_SPV_MATVEC_ID_U;
    case NB_SPV_MATVEC_ID_SG: return NB_SPV_MATVEC_ID_U_SG;
    case NB_SPV_MATVEC_TX: return NB_SPV_MATVEC_U_TX;
    case NB_SPV_MATVEC_ID_TX: return NB_SPV_MATVEC_ID_U_TX;
    case NB_SPV_MATMUL: return NB_SPV_MATMUL_U;
    case NB_SPV_MATMUL_ID: return NB_SPV_MATMUL_ID_U;
    case NB_SPV_MATMUL_H: return NB_SPV_MATMUL_U_H;
    case NB_SPV_MATMUL_ID_H: return NB_SPV_MATMUL_ID_U_H;
    case NB_SPV_EMBED: return NB_SPV_EMBED_U;
    default: return id;
    }
}

static int type_slot(enum ggml_type t)
{
    for (int i = 0; i < NB_MM_NTYPES; i++)
        if (slot_type[i] == t) return i;
    return -1;
}

bool nb_op_matmul_supports(enum ggml_type t)
{
    return type_slot(t) >= 0;
}

/* The slot of a weight about to be multiplied: -1 for an unsupported type (nothing recorded);
 * a supported type whose pipelines were not built is a caller's bug. */
static int slot_of(const struct nb_op_matmul *o, enum ggml_type t)
{
    int ts = type_slot(t);
    if (ts >= 0 && !(o->types & NB_MM_TYPE_BIT(t))) {
        fprintf(stderr, "nibble: %s:%d: no matrix pipelines built for weight type %s\n",
                __FILE__, __LINE__, ggml_type_name(t));
        abort();
    }
    return ts;
}

/* p, which must have been built (see nb_op_matmul_create_for). */
static const struct vkx_pipeline *built(const struct vkx_pipeline *p, const char *what)
{
    if (!p->pipe) {
        fprintf(stderr, "nibble: %s:%d: the %s pipeline was not built for this model\n",
                __FILE__, __LINE__, what);
        abort();
    }
    return p;
}

/* Whether a matvec of weight w on x reads both through texel views: the op reads them, w has
 * views and comes in tiles of >= 8 rows (the texel shader loads a thread's 8 scales at once), and
 * x's buffer has one (at a whole texel; the shader starts at texel x.off / 16). */
static bool mv_texel(const struct nb_op_matmul *o, const struct nb_gtensor *w, struct vkx_view x)
{
    return o->texel && w->texel && w->tile_shift >= 3 && x.buf && x.buf->texel && x.off % 16 == 0;
}

/* The matvec pipeline: `tx` when mv_texel, else the storage-buffer one. */
static const struct vkx_pipeline *mv_pipe(bool texel, const struct vkx_pipeline *tx,
                                          const struct vkx_pipeline *plain, const char *what)
{
    return built(texel ? tx : plain, what);
}

/* x as a texel binding (the whole view; p->xtex says where x starts) when texel, else as is. */
static struct vkx_view mv_x(bool texel, struct vkx_view x, struct nb_push_matvec *p)
{
    if (!texel) return x;
    p->xtex = (uint32_t)(x.off / 16);
    return vkx_whole(x.buf);
}

/* A pipeline from embedded SPIR-V; `texel`: bit i makes binding i a uniform texel buffer. */
static int make_ex(struct vkx_ctx *vk, struct vkx_pipeline *p, enum nb_spv_id id,
                   const char *name, uint32_t n_bindings, uint32_t texel, uint32_t push_size,
                   const uint32_t *spec, uint32_t n_spec, uint32_t sg_size, char *err,
                   size_t errlen)
{
    struct vkx_pipeline_desc d;
    memset(&d, 0, sizeof d);
    d.name = name;
    d.subgroup_size = sg_size; /* 0: any */
    d.full_subgroups = sg_size != 0;
    d.spv = nb_spv[id].code;
    d.spv_size = *nb_spv[id].size;
    d.n_bindings = n_bindings;
    d.texel_bindings = texel;
    d.push_size = push_size;
    d.n_spec = n_spec;
    memcpy(d.spec, spec, n_spec * sizeof *spec);
    return vkx_pipeline_create(vk, p, &d, err, errlen);
}

static int make(struct vkx_ctx *vk, struct vkx_pipeline *p, enum nb_spv_id id, const char *name,
                uint32_t n_bindings, uint32_t push_size, const uint32_t *spec, uint32_t n_spec,
                char *err, size_t errlen)
{
    return make_ex(vk, p, id, name, n_bindings, 0, push_size, spec, n_spec, 0, err, errlen);
}

static const char *const mv_names[NB_MV_VARIANTS + 1][NB_MM_NTYPES] = {
    TYPE_NAMES("matvec"), TYPE_NAMES("matvec2"), TYPE_NAMES("matvec4"), TYPE_NAMES("matvec8"),
    TYPE_NAMES("matvec_id")};
static const char *const mm_names[NB_MM_NTYPES] = TYPE_NAMES("matmul");
static const char *const mm_id_names[NB_MM_NTYPES] = TYPE_NAMES("matmul_id");
static const char *const mm_h_names[NB_MM_NTYPES] = TYPE_NAMES("matmul_h");
static const char *const mm_id_h_names[NB_MM_NTYPES] = TYPE_NAMES("matmul_id_h");
static const char *const embed_names[NB_MM_NTYPES] = TYPE_NAMES("embed");

/* A matmul (id: matmul_id) pipeline for weights of type t: with f16 tiles (matmul.comp MM_F16)
 * for quantized and F16 weights when o->fp16, else f32 (F32 and BF16 always: f16 would round
 * F32 weights and overflow BF16 ones). A refused f16 pipeline falls back to f32. */
static int make_mm(struct nb_op_matmul *o, struct vkx_ctx *vk, struct vkx_pipeline *p, bool id,
                   enum ggml_type t, const char *h_name, const char *name, uint32_t push_size,
                   const uint32_t *spec, char *err, size_t errlen)
{
    uint32_t nb = id ? 4 : 3;
    if (o->fp16 && (quantized(t) || t == GGML_F16)) {
        enum nb_spv_id h = spv_for(id ? NB_SPV_MATMUL_ID_H : NB_SPV_MATMUL_H, t);
        if (make(vk, p, h, h_name, nb, push_size, spec, 4, err, errlen) == 0) return 0;
        fprintf(stderr, "nibble: %s refused (%s); using f32 tiles\n", h_name, err);
    }
    enum nb_spv_id f = spv_for(id ? NB_SPV_MATMUL_ID : NB_SPV_MATMUL, t);
    return make(vk, p, f, name, nb, push_size, spec, 4, err, errlen);
}

/* The matvec family (4 token counts, matvec_id) with or without subgroups.
 * Tuning: on a CPU device (lavapipe) every load costs per lane (a texel fetch is some 40
 * instructions for 8 lanes), so each x vector loaded serves 8 rows (4 with subgroups or for 8
 * tokens), and without subgroups each thread takes whole rows (no shared-memory reduction);
 * GPUs take 2 rows per group and reduce over 32 threads. */
static int make_matvec(struct nb_op_matmul *o, struct vkx_ctx *vk, bool sg, bool gpu_shape,
                       bool lean, char *err, size_t errlen)
{
    bool cpu = vk->tune_cpu && !gpu_shape;
    /* whole rows per thread: 32 threads x 8 rows = 256 rows per workgroup (128 for 8 tokens),
     * so small matrices still spread over the CPU's threads */
    uint32_t wg = cpu && !sg ? 32 : 128;
    if (wg > vk->caps.max_wg_invocations) wg = vk->caps.max_wg_invocations;
    uint32_t tpr = cpu ? 1 : 32; /* fallback: threads per row group, a power of two <= wg */
    while (tpr > wg)
        tpr /= 2;
    /* The subgroup variant was written for 32 lanes per row, like the fallback's TPR: where the
     * device lets a pipeline require a size, it requires the one nearest 32 (RDNA: 32 rather
     * than the default 64, whose lanes a row of K < 2048 leaves partly idle) */
    o->mv_sg_size = sg ? vkx_subgroup_size_pick(vk, 32) : 0;
    if (o->mv_sg_size && wg % o->mv_sg_size) o->mv_sg_size = 0; /* whole subgroups only */
    uint32_t sgs = o->mv_sg_size           ? o->mv_sg_size
                   : vk->caps.subgroup_size ? vk->caps.subgroup_size
                                            : 32;
    o->subgroup = sg;
    o->mv_wg = wg;
    /* lavapipe: 4 tokens per matvec dispatch beat both 8 and the tiled matmul for prefill */
    /* "wide" off (small register files, vkx_quirks.c): at most 2 tokens per GPU dispatch */
    bool wide = vkx_has(vk, VKX_FEAT_WIDE);
    o->mv_chunk = cpu ? 4 : wide ? NB_MATVEC_MAX_TOKENS : 2;
    o->prefill_matvec = cpu;
    /* lavapipe fetches a texel with one vector load per lane but loads a storage buffer one
     * scalar per lane and component, in a loop: weights and x come through texel views (GPUs:
     * not measured yet, so they keep storage buffers) */
    o->texel = cpu && !sg && vkx_has(vk, VKX_FEAT_TEXEL);
    /* whole rows per thread, 8 of them (4 for 8 tokens: registers), so each x vector loaded
     * serves 8 rows; the weights in tiles of 8 rows for each lane of a vector (lavapipe: 8 lanes
     * x 8 rows = 64), which every workgroup's rows (wg x 4 at least) hold whole: a vector's
     * loads of one row each are neighbouring bytes, and a thread's 8 scales one load (lavapipe
     * tiny-h1024 decode, matrix steps: 38% of the copy bandwidth with tiles of 8 rows, 4 rows
     * per thread and a load per scale; 48% with a load for 4 scales; 58% with 8 rows) */
    o->tile_shift = 0;
    while (cpu && !sg && (2u << o->tile_shift) <= sgs * 8u && o->tile_shift < 8 &&
           (wg * 4u) % (2u << o->tile_shift) == 0)
        o->tile_shift++;
    for (int k = 0; k <= NB_MV_VARIANTS; k++) {
        uint32_t ntok = k < NB_MV_VARIANTS ? 1u << k : 1;
        /* GPUs: 2 rows per group, 1 from 4 tokens on (RADV: 2 rows of 8 tokens took all 256
         * VGPRs on every AMD family, one wave per SIMD; 1 row: 84-128, 2-3 waves) */
        uint32_t nr = cpu ? (!sg && ntok <= 4 ? 8 : 4)           /* 8: whole rows */
                          : (ntok >= 4 || !wide ? 1 : 2); /* "wide" off: 1 row */
        uint32_t ngroups = sg ? (wg / sgs ? wg / sgs : 1) : wg / tpr;
        uint32_t rows = ngroups * nr;
        o->mv_rows[k] = rows;
        /* lean: only what the forward pass dispatches (mv_chunk tokens at most, MoE with experts) */
        if (lean && ((k < NB_MV_VARIANTS && ntok > o->mv_chunk) ||
                     (k == NB_MV_VARIANTS && !(o->types & NB_MM_EXPERTS))))
            continue;
        for (int ts = 0; ts < NB_MM_NTYPES; ts++) {
            if (!(o->types & NB_MM_TYPE_BIT(slot_type[ts]))) continue;
            uint32_t spec[6] = {wg, (uint32_t)slot_type[ts], nr, ntok, tpr, rows};
            struct vkx_pipeline *p = k < NB_MV_VARIANTS ? &o->mv[ts][k] : &o->mv_id[ts];
            enum nb_spv_id id = k < NB_MV_VARIANTS ? (sg ? NB_SPV_MATVEC_SG : NB_SPV_MATVEC)
                                                   : (sg ? NB_SPV_MATVEC_ID_SG : NB_SPV_MATVEC_ID);
            if (make_ex(vk, p, spv_for(id, slot_type[ts]), mv_names[k][ts],
                        k < NB_MV_VARIANTS ? 3 : 4, 0, sizeof(struct nb_push_matvec), spec, 6,
                        o->mv_sg_size, err, errlen) != 0)
                return -1;
            if (!o->texel || !quantized(slot_type[ts])) continue;
            struct vkx_pipeline *pt = k < NB_MV_VARIANTS ? &o->mv_tx[ts][k] : &o->mv_id_tx[ts];
            /* the same reading the weights (binding 0) and x (1) through texel views */
            if (make_ex(vk, pt,
                        spv_for(k < NB_MV_VARIANTS ? NB_SPV_MATVEC_TX : NB_SPV_MATVEC_ID_TX,
                                slot_type[ts]),
                        mv_names[k][ts], k < NB_MV_VARIANTS ? 3 : 4, 3u,
                        sizeof(struct nb_push_matvec), spec, 6, 0, err, errlen) != 0) {
                fprintf(stderr, "nibble: matvec with texel buffers refused (%s); using storage "
                        "buffers\n", err);
                o->texel = false;
            }
        }
    }
    return 0;
}

static void destroy_matvec(struct nb_op_matmul *o, struct vkx_ctx *vk)
{
    for (int ts = 0; ts < NB_MM_NTYPES; ts++) {
        for (int k = 0; k < NB_MV_VARIANTS; k++) {
            if (o->mv[ts][k].pipe) vkx_pipeline_destroy(vk, &o->mv[ts][k]);
            if (o->mv_tx[ts][k].pipe) vkx_pipeline_destroy(vk, &o->mv_tx[ts][k]);
        }
        if (o->mv_id[ts].pipe) vkx_pipeline_destroy(vk, &o->mv_id[ts]);
        if (o->mv_id_tx[ts].pipe) vkx_pipeline_destroy(vk, &o->mv_id_tx[ts]);
    }
}

/* NB_MM_TYPE_BIT of every slot type. */
static uint32_t all_types(void)
{
    uint32_t m = 0;
    for (int i = 0; i < NB_MM_NTYPES; i++)
        m |= NB_MM_TYPE_BIT(slot_type[i]);
    return m;
}

static int create(struct nb_op_matmul *o, struct vkx_ctx *vk, int subgroup, uint32_t types,
                  bool lean, char *err, size_t errlen);

int nb_op_matmul_create(struct nb_op_matmul *o, struct vkx_ctx *vk, char *err, size_t errlen)
{
    return create(o, vk, -1, all_types() | NB_MM_EXPERTS, false, err, errlen);
}

int nb_op_matmul_create_for(struct nb_op_matmul *o, struct vkx_ctx *vk, uint32_t types,
                            char *err, size_t errlen)
{
    return create(o, vk, -1, types & (all_types() | NB_MM_EXPERTS), true, err, errlen);
}

int nb_op_matmul_create_ex(struct nb_op_matmul *o, struct vkx_ctx *vk, int subgroup,
                           uint32_t types, char *err, size_t errlen)
{
    types = types ? types & (all_types() | NB_MM_EXPERTS) : all_types() | NB_MM_EXPERTS;
    return create(o, vk, subgroup, types, false, err, errlen);
}

static int create(struct nb_op_matmul *o, struct vkx_ctx *vk, int subgroup, uint32_t types,
                  bool lean, char *err, size_t errlen)
{
    memset(o, 0, sizeof *o);
    o->types = types;
    /* f16 tiles where the device has f16 arithmetic and converts halves natively (a driver that
     * cannot compile unpackHalf2x16, vkx_quirks.c, gets none) */
    o->fp16 = vkx_has(vk, VKX_FEAT_FP16) && vkx_has(vk, VKX_FEAT_HALFCVT);
    bool can = vkx_has(vk, VKX_FEAT_SUBGROUP) && vk->caps.subgroup_arith;
    /* A CPU device runs whole rows per thread faster than subgroup reductions (measured on
     * lavapipe: 6.1 vs 8.7 ms for a 4096 x 4096 Q4_0 matvec). */
    bool sg =
        can && (subgroup == 1 || (subgroup < 0 && !vk->tune_cpu));
    if (make_matvec(o, vk, sg, subgroup == 2, lean, err, errlen) != 0) {
        destroy_matvec(o, vk);
        if (!sg) return -1;
        fprintf(stderr, "nibble: matvec with subgroups refused (%s); using shared memory\n", err);
        if (make_matvec(o, vk, false, subgroup == 2, lean, err, errlen) != 0) {
            destroy_matvec(o, vk);
            return -1;
        }
    }
    /* matmul tile: BM x BN with 4 x 4 per thread: 64 x 64 (256 threads, 16.9 KB of shared
     * memory with the MM_ID pair list) where the device allows, else 32 x 32 (64 threads). */
    uint32_t bm = 64, bn = 64;
    if (vk->caps.max_wg_invocations < 256 ||
        (32 * (bm + 1 + bn + 1) + bn) * 4 > vk->caps.max_shared)
        bm = bn = 32;
    o->mm_bm = bm;
    o->mm_bn = bn;
    o->mm_id_bn = bn;
    o->embed_wg = 64;
    o->group_wg = 64;
    /* lean: the tiled (prefill) products only where the forward pass uses them */
    bool tiles = !lean || !o->prefill_matvec;
    bool moe = tiles && (o->types & NB_MM_EXPERTS);
    uint32_t gspec[1] = {o->group_wg};
    if (moe && make(vk, &o->group, NB_SPV_MOE_GROUP, "moe_group", 2,
                    sizeof(struct nb_push_moe_group), gspec, 1, err, errlen) != 0) {
        nb_op_matmul_destroy(o, vk);
        return -1;
    }
    for (int ts = 0; ts < NB_MM_NTYPES; ts++) {
        if (!(o->types & NB_MM_TYPE_BIT(slot_type[ts]))) continue;
        uint32_t spec[4] = {(bm / 4) * (bn / 4), (uint32_t)slot_type[ts], bm, bn};
        uint32_t espec[2] = {o->embed_wg, (uint32_t)slot_type[ts]};
        uint32_t idspec[4] = {(bm / 4) * (o->mm_id_bn / 4), (uint32_t)slot_type[ts], bm,
                              o->mm_id_bn};
        enum ggml_type t = slot_type[ts];
        if ((tiles && make_mm(o, vk, &o->mm[ts], false, t, mm_h_names[ts], mm_names[ts],
                              sizeof(struct nb_push_matmul), spec, err, errlen) != 0) ||
            (moe && make_mm(o, vk, &o->mm_id[ts], true, t, mm_id_h_names[ts], mm_id_names[ts],
                            sizeof(struct nb_push_matmul_id), idspec, err, errlen) != 0) ||
            make(vk, &o->embed[ts], spv_for(NB_SPV_EMBED, t), embed_names[ts], 3,
                 sizeof(struct nb_push_embed),
                 espec, 2, err, errlen) != 0) {
            nb_op_matmul_destroy(o, vk);
            return -1;
        }
    }
    /* the integer dot-product decode where the device accelerates it (op_int8.h); the tests'
     * explicit shapes (subgroup >= 0) turn it on themselves */
    if (subgroup < 0 && nb_op_int8_wanted(vk) &&
        nb_op_matmul_set_int8(o, vk, true, err, errlen) != 0)
        fprintf(stderr, "nibble: int8 products refused (%s); using f32\n", err);
    return 0;
}

int nb_op_matmul_set_int8(struct nb_op_matmul *o, struct vkx_ctx *vk, bool on, char *err,
                          size_t errlen)
{
    if (on && !o->i8.qact.pipe &&
        nb_op_int8_create(&o->i8, vk, o->types, o->subgroup, o->mv_sg_size, NB_MATVEC_MAX_TOKENS,
                          err, errlen) != 0)
        return -1;
    o->i8.on = on;
    return 0;
}

void nb_op_matmul_destroy(struct nb_op_matmul *o, struct vkx_ctx *vk)
{
    nb_op_int8_destroy(&o->i8, vk);
    destroy_matvec(o, vk);
    if (o->group.pipe) vkx_pipeline_destroy(vk, &o->group);
    for (int ts = 0; ts < NB_MM_NTYPES; ts++) {
        if (o->mm[ts].pipe) vkx_pipeline_destroy(vk, &o->mm[ts]);
        if (o->mm_id[ts].pipe) vkx_pipeline_destroy(vk, &o->mm_id[ts]);
        if (o->embed[ts].pipe) vkx_pipeline_destroy(vk, &o->embed[ts]);
    }
    memset(o, 0, sizeof *o);
}

/* matmul.comp reads plain rows only (the CPU shape that tiles weights never dispatches it). */
static void need_plain_rows(const struct nb_gtensor *w, const char *what)
{
    if (w->tile_shift) {
        fprintf(stderr, "nibble: %s:%d: %s given weights in row tiles\n", __FILE__, __LINE__, what);
        abort();
    }
}

/* Splits `groups` workgroups over x and y within the device's grid limits. */
static void grid2(struct vkx_ctx *vk, uint32_t groups, uint32_t *gx, uint32_t *gy)
{
    uint32_t maxx = vk->caps.max_wg_count[0] ? vk->caps.max_wg_count[0] : 65535;
    *gx = groups < maxx ? groups : maxx;
    if (*gx == 0) *gx = 1;
    *gy = vkx_ceil_div(groups, *gx);
}

static uint32_t max_z(struct vkx_ctx *vk)
{
    return vk->caps.max_wg_count[2] ? vk->caps.max_wg_count[2] : 65535;
}

static uint32_t max_y(struct vkx_ctx *vk)
{
    return vk->caps.max_wg_count[1] ? vk->caps.max_wg_count[1] : 65535;
}

/* matvec.comp (also MV_ID, which reads neither nrows nor row0) and matmul.comp take the same
 * eight leading push fields for a weight piece: nb_push_matmul is the head of nb_push_matvec.
 * One place fills them; M is the y stride when y_stride is 0. */
#define SAME_OFFSET(f) (offsetof(struct nb_push_matvec, f) == offsetof(struct nb_push_matmul, f))
_Static_assert(SAME_OFFSET(K) && SAME_OFFSET(nrows) && SAME_OFFSET(row0) && SAME_OFFSET(ntok) &&
                   SAME_OFFSET(x_stride) && SAME_OFFSET(y_stride) && SAME_OFFSET(accumulate) &&
                   SAME_OFFSET(dbase),
               "nb_push_matmul must stay the head of nb_push_matvec");
#undef SAME_OFFSET

static struct nb_push_matmul piece_push(const struct nb_gtensor *w, uint32_t pi, uint32_t M,
                                        uint32_t ntok, uint32_t x_stride, uint32_t y_stride,
                                        bool accumulate)
{
    uint32_t K = (uint32_t)w->ne[0];
    struct nb_push_matmul p = {
        .K = K,
        .nrows = (uint32_t)nb_gtensor_piece_rows(w, pi),
        .row0 = pi * (uint32_t)w->rows_per_piece,
        .ntok = ntok,
        .x_stride = x_stride ? x_stride : K,
        .y_stride = y_stride ? y_stride : M,
        .accumulate = accumulate,
        .dbase = nb_gtensor_dbase(w, pi),
    };
    return p;
}

/* piece_push's fields at the head of a matvec push, the matvec-only fields zero. */
static struct nb_push_matvec matvec_push(const struct nb_gtensor *w, uint32_t pi, uint32_t M,
                                         uint32_t ntok, uint32_t x_stride, uint32_t y_stride,
                                         bool accumulate)
{
    struct nb_push_matvec p;
    memset(&p, 0, sizeof p);
    struct nb_push_matmul head = piece_push(w, pi, M, ntok, x_stride, y_stride, accumulate);
    memcpy(&p, &head, sizeof head);
    p.wtile = w->tile_shift;
    return p;
}

void nb_op_matvec(struct nb_op_matmul *o, struct vkx_ctx *vk, struct vkx_cmd *c,
                  const struct nb_gtensor *w, struct vkx_view x, struct vkx_view y,
                  uint32_t n_tokens, uint32_t x_stride, uint32_t y_stride, bool accumulate)
{
    int ts = slot_of(o, w->type);
    if (ts < 0 || n_tokens == 0) return;
    if (o->i8.on && nb_op_int8_matvec(&o->i8, vk, c, w, x, y, n_tokens, x_stride, y_stride,
                                      accumulate))
        return;
    uint32_t M = (uint32_t)w->rows;
    bool tx = mv_texel(o, w, x);
    for (uint32_t pi = 0; pi < w->data.n; pi++) {
        uint32_t prow = (uint32_t)nb_gtensor_piece_rows(w, pi);
        /* one variant for the whole call: chunks of 2^k tokens, one per grid z slice */
        uint32_t m = n_tokens < o->mv_chunk ? n_tokens : o->mv_chunk;
        int k = m == 1 ? 0 : m == 2 ? 1 : m <= 4 ? 2 : 3;
        uint32_t ntok = 1u << k, per_dispatch = ntok * max_z(vk);
        uint32_t gx, gy;
        grid2(vk, vkx_ceil_div(prow, o->mv_rows[k]), &gx, &gy);
        for (uint32_t t0 = 0; t0 < n_tokens; t0 += per_dispatch) {
            uint32_t nt = n_tokens - t0 < per_dispatch ? n_tokens - t0 : per_dispatch;
            struct nb_push_matvec p = matvec_push(w, pi, M, nt, x_stride, y_stride, accumulate);
            p.tok0 = t0;
            struct vkx_view b[3] = {vkx_whole(&w->data.b[pi]), mv_x(tx, x, &p), y};
            vkx_cmd_dispatch(vk, c, mv_pipe(tx, &o->mv_tx[ts][k], &o->mv[ts][k], "matvec"), b, 3,
                             &p, sizeof p, gx, gy, vkx_ceil_div(nt, ntok));
        }
    }
}

void nb_op_matmul(struct nb_op_matmul *o, struct vkx_ctx *vk, struct vkx_cmd *c,
                  const struct nb_gtensor *w, struct vkx_view x, struct vkx_view y,
                  uint32_t n_tokens, uint32_t x_stride, uint32_t y_stride, bool accumulate)
{
    int ts = slot_of(o, w->type);
    if (ts < 0 || n_tokens == 0) return;
    need_plain_rows(w, "matmul");
    uint32_t M = (uint32_t)w->rows;
    uint32_t gy = vkx_ceil_div(n_tokens, o->mm_bn);
    if (gy > max_y(vk)) { /* 4 million tokens at 64 per tile: far beyond any batch */
        fprintf(stderr, "nibble: matmul of %u tokens exceeds the grid\n", n_tokens);
        return;
    }
    for (uint32_t pi = 0; pi < w->data.n; pi++) {
        uint32_t prow = (uint32_t)nb_gtensor_piece_rows(w, pi);
        struct nb_push_matmul p = piece_push(w, pi, M, n_tokens, x_stride, y_stride, accumulate);
        struct vkx_view b[3] = {vkx_whole(&w->data.b[pi]), x, y};
        vkx_cmd_dispatch(vk, c, built(&o->mm[ts], "matmul"), b, 3, &p, sizeof p,
                         vkx_ceil_div(prow, o->mm_bm), gy, 1);
    }
}

void nb_op_mul(struct nb_op_matmul *o, struct vkx_ctx *vk, struct vkx_cmd *c,
               const struct nb_gtensor *w, struct vkx_view x, struct vkx_view y, uint32_t n_tokens,
               uint32_t x_stride, uint32_t y_stride, bool accumulate)
{
    if (n_tokens <= NB_MATVEC_MAX_TOKENS || o->prefill_matvec)
        nb_op_matvec(o, vk, c, w, x, y, n_tokens, x_stride, y_stride, accumulate);
    else
        nb_op_matmul(o, vk, c, w, x, y, n_tokens, x_stride, y_stride, accumulate);
}

void nb_op_embed(struct nb_op_matmul *o, struct vkx_ctx *vk, struct vkx_cmd *c,
                 const struct nb_gtensor *e, struct vkx_view ids, struct vkx_view out,
                 uint32_t n_tokens, uint32_t out_stride, float scale)
{
    int ts = slot_of(o, e->type);
    if (ts < 0 || n_tokens == 0) return;
    uint32_t K = (uint32_t)e->ne[0];
    uint32_t gx = vkx_ceil_div(K, o->embed_wg);
    for (uint32_t pi = 0; pi < e->data.n; pi++) {
        struct vkx_view b[3] = {vkx_whole(&e->data.b[pi]), ids, out};
        for (uint32_t t0 = 0; t0 < n_tokens; t0 += max_y(vk)) {
            uint32_t nt = n_tokens - t0 < max_y(vk) ? n_tokens - t0 : max_y(vk);
            struct nb_push_embed p;
            memset(&p, 0, sizeof p);
            p.K = K;
            p.nrows = (uint32_t)nb_gtensor_piece_rows(e, pi);
            p.row0 = pi * (uint32_t)e->rows_per_piece;
            p.total_rows = (uint32_t)e->rows;
            p.out_stride = out_stride ? out_stride : K;
            p.dbase = nb_gtensor_dbase(e, pi);
            p.tok0 = t0;
            p.scale = scale;
            p.wtile = e->tile_shift;
            vkx_cmd_dispatch(vk, c, &o->embed[ts], b, 3, &p, sizeof p, gx, nt, 1);
        }
    }
}

void nb_op_matvec_id(struct nb_op_matmul *o, struct vkx_ctx *vk, struct vkx_cmd *c,
                     const struct nb_gtensor *w, struct vkx_view x, struct vkx_view y,
                     struct vkx_view ids, uint32_t n_tokens, uint32_t n_slots, bool x_per_slot,
                     uint32_t x_stride, uint32_t y_stride, bool accumulate)
{
    int ts = slot_of(o, w->type);
    if (ts < 0 || n_tokens == 0 || n_slots == 0) return;
    if (o->i8.on && nb_op_int8_matvec_id(&o->i8, vk, c, w, x, y, ids, n_tokens, n_slots,
                                         x_per_slot, x_stride, y_stride, accumulate))
        return;
    uint32_t M = (uint32_t)w->ne[1];
    uint32_t per_piece = (uint32_t)(w->rows_per_piece / M); /* experts per piece */
    uint32_t n_exp = (uint32_t)(w->rows / M);
    uint32_t pairs = n_tokens * n_slots;
    uint32_t gx, gy;
    grid2(vk, vkx_ceil_div(M, o->mv_rows[NB_MV_VARIANTS]), &gx, &gy);
    bool tx = mv_texel(o, w, x);
    for (uint32_t pi = 0; pi < w->data.n; pi++) {
        for (uint32_t p0 = 0; p0 < pairs; p0 += max_z(vk)) {
            struct nb_push_matvec p = matvec_push(w, pi, M, 1, x_stride, y_stride, accumulate);
            p.n_slots = n_slots;
            p.x_per_slot = x_per_slot;
            p.m_rows = M;
            p.e0 = pi * per_piece;
            p.e1 = p.e0 + per_piece < n_exp ? p.e0 + per_piece : n_exp;
            p.pair0 = p0;
            uint32_t nz = pairs - p0 < max_z(vk) ? pairs - p0 : max_z(vk);
            struct vkx_view b[4] = {vkx_whole(&w->data.b[pi]), mv_x(tx, x, &p), y, ids};
            vkx_cmd_dispatch(vk, c, mv_pipe(tx, &o->mv_id_tx[ts], &o->mv_id[ts], "matvec_id"), b,
                             4, &p, sizeof p, gx, gy, nz);
        }
    }
}

uint64_t nb_op_matmul_id_scratch_bytes(uint32_t n_exp, uint32_t n_tokens, uint32_t n_slots)
{
    return 4 * ((uint64_t)n_exp + (uint64_t)n_exp * n_tokens * n_slots);
}

void nb_op_matmul_id(struct nb_op_matmul *o, struct vkx_ctx *vk, struct vkx_cmd *c,
                     const struct nb_gtensor *w, struct vkx_view x, struct vkx_view y,
                     struct vkx_view ids, struct vkx_view scratch, uint32_t n_tokens,
                     uint32_t n_slots, bool x_per_slot, uint32_t x_stride, uint32_t y_stride,
                     bool accumulate)
{
    int ts = slot_of(o, w->type);
    if (ts < 0 || n_tokens == 0 || n_slots == 0) return;
    need_plain_rows(w, "matmul_id");
    uint32_t K = (uint32_t)w->ne[0], M = (uint32_t)w->ne[1];
    uint32_t per_piece = (uint32_t)(w->rows_per_piece / M); /* experts per piece */
    uint32_t n_exp = (uint32_t)(w->rows / M);
    uint32_t pairs = n_tokens * n_slots;
    uint32_t maxx = vk->caps.max_wg_count[0] ? vk->caps.max_wg_count[0] : 65535;
    if (n_exp > maxx || (per_piece < n_exp ? per_piece : n_exp) > max_z(vk)) {
        fprintf(stderr, "nibble: matmul_id of %u experts exceeds the grid\n", n_exp);
        return;
    }
    /* pass 1: per-expert lists of pairs (scratch: counts [n_exp], lists [n_exp][pairs]) */
    struct nb_push_moe_group gp = {.n_pairs = pairs, .n_exp = n_exp, .cap = pairs};
    struct vkx_view gb[2] = {ids, scratch};
    vkx_cmd_dispatch(vk, c, built(&o->group, "moe_group"), gb, 2, &gp, sizeof gp, n_exp, 1, 1);
    vkx_cmd_barrier(c);
    /* pass 2: tiles of (expert rows x listed pairs); distinct experts per token give at most
     * n_tokens pairs per expert, longer lists are strided over grid y */
    uint32_t gy = vkx_ceil_div(n_tokens, o->mm_id_bn);
    if (gy > max_y(vk)) gy = max_y(vk);
    for (uint32_t pi = 0; pi < w->data.n; pi++) {
        struct nb_push_matmul_id p;
        memset(&p, 0, sizeof p);
        p.K = K;
        p.m_rows = M;
        p.x_stride = x_stride ? x_stride : K;
        p.y_stride = y_stride ? y_stride : M;
        p.accumulate = accumulate;
        p.dbase = nb_gtensor_dbase(w, pi);
        p.n_slots = n_slots;
        p.x_per_slot = x_per_slot;
        p.e0 = pi * per_piece;
        p.n_exp = n_exp;
        p.cap = pairs;
        uint32_t ne = (uint32_t)(nb_gtensor_piece_rows(w, pi) / M);
        struct vkx_view b[4] = {vkx_whole(&w->data.b[pi]), x, y, scratch};
        vkx_cmd_dispatch(vk, c, built(&o->mm_id[ts], "matmul_id"), b, 4, &p, sizeof p,
                         vkx_ceil_div(M, o->mm_bm), gy, ne);
    }
}

/* op_attn: KV-cache store and attention, see op_attn.h and shaders/attn.comp. */
#include "op_attn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nb_shaders.h"
#include "shared.h"

#define ATTN_BC 16 /* keys per tile in attn.comp, at most */
static const uint32_t attn_hd_max[NB_ATTN_NQ_BUCKETS] = {128, 256, 512};

static int make_pipe_ex(struct vkx_ctx *vk, struct vkx_pipeline *p, enum nb_spv_id id,
                        uint32_t n_bindings, uint32_t texel, uint32_t push_size,
                        const uint32_t *spec, uint32_t n_spec, uint32_t subgroup_size, char *err,
                        size_t errlen)
{
    struct vkx_pipeline_desc d = {
        .texel_bindings = texel,
        .subgroup_size = subgroup_size,
        .name = nb_spv[id].name,
        .spv = nb_spv[id].code,
        .spv_size = *nb_spv[id].size,
        .n_bindings = n_bindings,
        .push_size = push_size,
        .n_spec = n_spec,
    };
    memcpy(d.spec, spec, n_spec * sizeof *spec);
    return vkx_pipeline_create(vk, p, &d, err, errlen);
}

static int make_pipe(struct vkx_ctx *vk, struct vkx_pipeline *p, enum nb_spv_id id,
                     uint32_t n_bindings, uint32_t push_size, const uint32_t *spec,
                     uint32_t n_spec, uint32_t subgroup_size, char *err, size_t errlen)
{
    return make_pipe_ex(vk, p, id, n_bindings, 0, push_size, spec, n_spec, subgroup_size, err,
                        errlen);
}

/* The attention pipelines of one variant into set[2][buckets]; texel: K and V are bindings of
 * texel views (the _TX variants). */
static int make_attn_set(struct nb_op_attn *o, struct vkx_ctx *vk, enum nb_spv_id id, bool sg,
                         bool texel, struct vkx_pipeline set[2][NB_ATTN_NQ_BUCKETS], char *err,
                         size_t errlen)
{
    for (int b = 0; b < 2; b++)
        for (int h = 0; h < NB_ATTN_NQ_BUCKETS; h++) {
            if (h > 0 && o->hd_max && o->hd_max <= attn_hd_max[h - 1]) break; /* not served */
            /* keys per tile: BC * NQ = 64 bounds the unrolled inner loops (registers, and the
             * compile time on lavapipe), head_dim 128: 16 keys, 256: 8, 512: 4 */
            uint32_t nq = attn_hd_max[h] / 4 / o->ds, bc = 64 / nq;
            uint32_t spec[5] = {o->rows[b] * o->ds, o->rows[b], o->ds, nq, bc < 4 ? 4 : bc};
            if (make_pipe_ex(vk, &set[b][h], id, 7, texel ? 6u : 0u, sizeof(struct nb_push_attn),
                             spec, 5, sg ? o->sg_size : 0, err, errlen))
                return -1;
        }
    return 0;
}

/* id's f16-arithmetic variant (ATTN_F16) when o->fp16; f16 caches only. */
static enum nb_spv_id half_id(const struct nb_op_attn *o, enum nb_spv_id id)
{
    if (!o->fp16) return id;
    switch (id) {
    case NB_SPV_ATTN: return NB_SPV_ATTN_H;
    case NB_SPV_ATTN_SG: return NB_SPV_ATTN_SG_H;
    case NB_SPV_ATTN_TX: return NB_SPV_ATTN_H_TX;
    case NB_SPV_ATTN_SG_TX: return NB_SPV_ATTN_SG_H_TX;
    default: return id;
    }
}

/* The storage-buffer attention pipelines for an f16 or f32 cache (o->subgroup and o->fp16 pick
 * the variant). */
static int make_attn_storage(struct nb_op_attn *o, struct vkx_ctx *vk, bool f32, char *err,
                             size_t errlen)
{
    bool sg = o->subgroup;
    enum nb_spv_id id = f32 ? (sg ? NB_SPV_ATTN_SG_F32 : NB_SPV_ATTN_F32)
                            : half_id(o, sg ? NB_SPV_ATTN_SG : NB_SPV_ATTN);
    return make_attn_set(o, vk, id, sg, false, f32 ? o->attn32 : o->attn, err, errlen);
}

/* The attention pipelines for an f16 or f32 cache: on a texel-reading CPU device (o->texel)
 * the texel ones only (each set costs lavapipe about 0.3 s to build; a cache without views gets
 * the storage ones when first dispatched), else the storage ones. */
static int make_attn(struct nb_op_attn *o, struct vkx_ctx *vk, bool f32, char *err,
                     size_t errlen)
{
    bool sg = o->subgroup;
    if (o->texel) {
        enum nb_spv_id id = f32 ? (sg ? NB_SPV_ATTN_SG_F32_TX : NB_SPV_ATTN_F32_TX)
                                : half_id(o, sg ? NB_SPV_ATTN_SG_TX : NB_SPV_ATTN_TX);
        if (make_attn_set(o, vk, id, sg, true, f32 ? o->attn32_tx : o->attn_tx, err,
                          errlen) == 0)
            return 0;
        fprintf(stderr, "nibble: attn with texel reads refused (%s); using storage buffers\n",
                err);
        o->texel = false;
    }
    return make_attn_storage(o, vk, f32, err, errlen);
}

static void destroy_attn(struct nb_op_attn *o, struct vkx_ctx *vk)
{
    for (int b = 0; b < 2; b++)
        for (int h = 0; h < NB_ATTN_NQ_BUCKETS; h++) {
            if (o->attn[b][h].pipe) vkx_pipeline_destroy(vk, &o->attn[b][h]);
            if (o->attn32[b][h].pipe) vkx_pipeline_destroy(vk, &o->attn32[b][h]);
            if (o->attn_tx[b][h].pipe) vkx_pipeline_destroy(vk, &o->attn_tx[b][h]);
            if (o->attn32_tx[b][h].pipe) vkx_pipeline_destroy(vk, &o->attn32_tx[b][h]);
        }
    memset(o->attn, 0, sizeof o->attn);
    memset(o->attn32, 0, sizeof o->attn32);
    memset(o->attn_tx, 0, sizeof o->attn_tx);
    memset(o->attn32_tx, 0, sizeof o->attn32_tx);
}

int nb_op_attn_enable_f32(struct nb_op_attn *o, struct vkx_ctx *vk, char *err, size_t errlen)
{
    if (o->store32.pipe) return 0;
    uint32_t wg = 64;
    if (make_attn(o, vk, true, err, errlen) ||
        make_pipe(vk, &o->store32, NB_SPV_KV_STORE_F32, 5, sizeof(struct nb_push_kv_store), &wg,
                  1, 0, err, errlen))
        return -1;
    return 0;
}

int nb_op_attn_prepare(struct nb_op_attn *o, struct vkx_ctx *vk, const struct nb_kvcache *kv,
                       char *err, size_t errlen)
{
    if (!o->texel || (kv->f32 ? o->attn32 : o->attn)[0][0].pipe) return 0;
    for (uint32_t l = 0; l < kv->n_layer; l++) {
        const struct nb_kv_layer *S = nb_kvcache_src(kv, l);
        if (!S->k.texel || !S->v.texel) return make_attn_storage(o, vk, kv->f32, err, errlen);
    }
    return 0;
}

int nb_op_attn_create(struct nb_op_attn *o, struct vkx_ctx *vk, char *err, size_t errlen)
{
    return nb_op_attn_create_for(o, vk, 0, err, errlen);
}

int nb_op_attn_create_for(struct nb_op_attn *o, struct vkx_ctx *vk, uint32_t hd_max, char *err,
                          size_t errlen)
{
    memset(o, 0, sizeof *o);
    o->hd_max = hd_max;
    o->ds = 8; /* 8 threads share a query row: head_dim 32..512 is 1..16 quads per thread */
    /* rows per workgroup: 4 (decode) and 16 (prefill), at least one full subgroup */
    uint32_t sg_rows = vk->caps.subgroup_size / o->ds;
    o->rows[0] = sg_rows > 4 ? sg_rows : 4;
    o->rows[1] = o->rows[0] > 16 ? o->rows[0] : 16;
    while (o->rows[1] * o->ds > vk->caps.max_wg_invocations && o->rows[1] > 1) o->rows[1] /= 2;
    while (o->rows[0] * o->ds > vk->caps.max_wg_invocations && o->rows[0] > 1) o->rows[0] /= 2;
    o->subgroup = vkx_has(vk, VKX_FEAT_SUBGROUP) && vk->caps.subgroup_shuffle &&
                  vk->caps.subgroup_size >= o->ds;
    /* The shuffles reduce over ds adjacent invocations, so a subgroup must hold at least ds:
     * where the driver may pick a smaller size, require the default one. */
    if (vk->caps.subgroup_size_control && vk->caps.subgroup_min < o->ds)
        o->sg_size = vk->caps.subgroup_size;
    /* CPU devices read K and V through texel views (lavapipe, tiny-h1024 decode at depth 2048:
     * attention 12.1 -> 5.9 ms a token; GPUs: not measured, storage buffers) */
    o->texel = vk->tune_cpu && vkx_has(vk, VKX_FEAT_TEXEL);
    /* f16 arithmetic on GPUs that have it and convert halves natively (a driver that cannot
     * compile unpackHalf2x16, vkx_quirks.c, gets none). A CPU device emulates it: lavapipe's
     * LLVM rounds every f16 operation through f32 (prefill of h1024-q4_0 7.5 and 6.9 against
     * 11.0 and 8.4 tok/s in f32), so a CPU-shaped device keeps f32 (NIBBLE_TUNE=gpu: f16). */
    o->fp16 = !vk->tune_cpu && vkx_has(vk, VKX_FEAT_FP16) && vkx_has(vk, VKX_FEAT_HALFCVT);
    int rc = make_attn(o, vk, false, err, errlen);
    if (rc && o->fp16) {
        fprintf(stderr, "nibble: attn: f16 variant refused (%s), using f32\n", err);
        destroy_attn(o, vk);
        o->fp16 = false;
        rc = make_attn(o, vk, false, err, errlen);
    }
    if (rc && o->subgroup) {
        fprintf(stderr, "nibble: attn: subgroup variant refused (%s), using the plain one\n", err);
        destroy_attn(o, vk);
        o->subgroup = false;
        rc = make_attn(o, vk, false, err, errlen);
    }
    if (rc) goto fail;
    uint32_t wg = 64;
    if (make_pipe(vk, &o->combine, NB_SPV_ATTN_COMBINE, 3, sizeof(struct nb_push_attn_combine),
                  &wg, 1, 0, err, errlen))
        goto fail;
    if (make_pipe(vk, &o->store, NB_SPV_KV_STORE, 5, sizeof(struct nb_push_kv_store), &wg, 1, 0,
                  err, errlen))
        goto fail;
    /* A CPU device runs a few workgroups at a time; a GPU wants hundreds in flight. */
    o->target_wgs = vk->tune_cpu ? 16 : 256;
    o->min_chunk = 128;
    o->max_split = 32;
    return 0;
fail:
    nb_op_attn_destroy(o, vk);
    return -1;
}

void nb_op_attn_destroy(struct nb_op_attn *o, struct vkx_ctx *vk)
{
    destroy_attn(o, vk);
    if (o->combine.pipe) vkx_pipeline_destroy(vk, &o->combine);
    if (o->store.pipe) vkx_pipeline_destroy(vk, &o->store);
    if (o->store32.pipe) vkx_pipeline_destroy(vk, &o->store32);
    memset(o, 0, sizeof *o);
}

static size_t split_o_bytes(uint32_t n_split, uint32_t n_rows, uint32_t head_dim)
{
    return ((size_t)n_split * n_rows * head_dim * 4 + 255) & ~(size_t)255;
}

static size_t split_bytes(uint32_t n_split, uint32_t n_rows, uint32_t head_dim)
{
    return split_o_bytes(n_split, n_rows, head_dim) + (size_t)n_split * n_rows * 8;
}

/* Splits for rows (token, query head) pairs over n_kv KV heads with keys spanning at most
 * `span` positions: enough workgroups for the device, chunks of at least min_chunk keys, at most
 * max_split. Fixed at record time; the shader divides the actual key range among them. */
static uint32_t want_split(const struct nb_op_attn *o, uint32_t rows, uint32_t n_kv,
                           uint64_t span)
{
    const uint32_t br = rows >= o->rows[1] ? o->rows[1] : o->rows[0];
    uint32_t n = vkx_ceil_div(o->target_wgs, (uint64_t)vkx_ceil_div(rows, br) * n_kv);
    uint64_t cap = span / (o->min_chunk > ATTN_BC ? o->min_chunk : ATTN_BC);
    if (n > cap) n = (uint32_t)cap;
    if (n > o->max_split) n = o->max_split;
    return n ? n : 1;
}

size_t nb_op_attn_scratch_bytes(const struct nb_op_attn *o, uint32_t n_tokens, uint32_t n_head,
                                uint32_t head_dim)
{
    /* the most any batch up to n_tokens uses (one KV head: the most splits); more tokens mean
     * more workgroups and fewer splits, so this stays small for big batches */
    size_t most = 0;
    for (uint32_t t = 1; t <= n_tokens; t++) {
        uint32_t n = want_split(o, t * n_head, 1, UINT64_MAX);
        size_t b = n > 1 ? split_bytes(n, t * n_head, head_dim) : 0;
        if (b > most) most = b;
        if (n == 1) break; /* larger batches split no more */
    }
    return most;
}

static VkDeviceSize view_size(struct vkx_view v)
{
    if (!v.buf) return 0;
    return v.size ? v.size : v.buf->size - v.off;
}

void nb_op_kv_store(struct nb_op_attn *o, struct vkx_ctx *vk, struct vkx_cmd *c,
                    const struct nb_kvcache *kv, uint32_t layer, struct vkx_view k,
                    struct vkx_view v, struct vkx_view pos, uint32_t n_tokens)
{
    const struct nb_kv_layer *L = &kv->layers[layer];
    if (L->d.src != layer) {
        fprintf(stderr, "nibble: kv_store: layer %u shares layer %u's cache, nothing stored\n",
                layer, L->d.src);
        return;
    }
    if (L->d.is_swa && n_tokens > kv->max_batch) { /* the ring would lose keys still needed */
        fprintf(stderr, "nibble: kv_store: %u tokens, the cache was made for batches of %u\n",
                n_tokens, kv->max_batch);
        return;
    }
    struct nb_push_kv_store p = {
        .n_tokens = n_tokens,
        .width = L->d.n_kv_head * L->d.head_dim,
        .head_dim = L->d.head_dim,
        .n_slots = L->n_slots,
        .ring = L->d.is_swa,
    };
    struct vkx_view b[5] = {k, v, pos, vkx_whole(&L->k), vkx_whole(&L->v)};
    vkx_cmd_dispatch(vk, c, kv->f32 ? &o->store32 : &o->store, b, 5, &p, sizeof p,
                     vkx_ceil_div(p.width / 4, 64),
                     n_tokens, 1);
}

void nb_op_attn(struct nb_op_attn *o, struct vkx_ctx *vk, struct vkx_cmd *c,
                const struct nb_kvcache *kv, uint32_t layer, struct vkx_view q,
                struct vkx_view out, struct vkx_view pos, uint32_t n_tokens, uint32_t n_head,
                float scale, struct vkx_view scratch)
{
    const struct nb_kv_layer *L = &kv->layers[layer];
    const struct nb_kv_layer *S = nb_kvcache_src(kv, layer);
    const uint32_t n_kv = L->d.n_kv_head, hd = L->d.head_dim;
    if (n_tokens == 0) return;
    if (n_head % n_kv) {
        fprintf(stderr, "nibble: attn: layer %u: %u query heads for %u KV heads\n", layer,
                n_head, n_kv);
        return;
    }
    const uint32_t group = n_head / n_kv, rows = n_tokens * group;
    const int b = rows >= o->rows[1] ? 1 : 0;
    int hb = 0;
    while (hd > attn_hd_max[hb]) hb++;
    const uint32_t row_groups = vkx_ceil_div(rows, o->rows[b]);

    /* the longest key range this layer can have, then as many splits as the scratch holds */
    uint64_t span = L->d.is_swa ? (uint64_t)kv->window + n_tokens - 1 : S->n_slots;
    if (span > S->n_slots) span = S->n_slots;
    uint32_t n_split = want_split(o, rows, n_kv, span);
    const uint32_t orows = n_tokens * n_head;
    while (n_split > 1 && split_bytes(n_split, orows, hd) > view_size(scratch)) n_split--;

    struct nb_push_attn p = {
        .n_tokens = n_tokens,
        .n_head = n_head,
        .group = group,
        .head_dim = hd,
        .n_slots = S->n_slots,
        .window = L->d.is_swa ? kv->window : 0,
        .scale = scale,
        .n_split = n_split,
    };
    struct vkx_view po = out, pml = out; /* unused when not split */
    if (n_split > 1) {
        size_t ob = split_o_bytes(n_split, orows, hd);
        po = (struct vkx_view){scratch.buf, scratch.off, ob};
        pml = (struct vkx_view){scratch.buf, scratch.off + ob, (VkDeviceSize)n_split * orows * 8};
    }
    struct vkx_view bind[7] = {q, vkx_whole(&S->k), vkx_whole(&S->v), pos, out, po, pml};
    bool tx = o->texel && S->k.texel && S->v.texel;
    const struct vkx_pipeline *pl = kv->f32 ? (tx ? &o->attn32_tx[b][hb] : &o->attn32[b][hb])
                                            : (tx ? &o->attn_tx[b][hb] : &o->attn[b][hb]);
    if (!pl->pipe) { /* a cache without texel views needs nb_op_attn_prepare first */
        fprintf(stderr, "nibble: %s:%d: attn: layer %u: no pipeline for this cache "
                "(nb_op_attn_prepare not called) or head_dim %u (above hd_max %u)\n", __FILE__,
                __LINE__, layer, hd, o->hd_max);
        abort();
    }
    vkx_cmd_dispatch(vk, c, pl, bind, 7, &p, sizeof p, n_split, row_groups, n_kv);
    if (n_split == 1) return;

    vkx_cmd_barrier(c); /* the partials are complete before the merge reads them */
    struct nb_push_attn_combine pc = {.n_rows = orows, .head_dim = hd, .n_split = n_split};
    struct vkx_view cb[3] = {po, pml, out};
    vkx_cmd_dispatch(vk, c, &o->combine, cb, 3, &pc, sizeof pc, orows, 1, 1);
}

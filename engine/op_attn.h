/* op_attn: KV-cache store and attention (GQA, causal, sliding window, f32 softmax).
 *
 * Record functions record dispatches only, with no barrier before or after (the caller puts
 * vkx_cmd_barrier() between a dispatch and the ones that read its output, e.g. kv_store -> attn).
 * nb_op_attn records its own internal barrier when it splits the keys (attn -> combine).
 *
 * Replay: both ops read the token positions from a device buffer at run time, and the key range
 * of each query comes from its position, so a recorded decode step stays valid as the context
 * grows: only the pos buffer (and the inputs) change between submissions.
 */
#ifndef NB_OP_ATTN_H
#define NB_OP_ATTN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvcache.h"
#include "vkx.h"

#define NB_ATTN_NQ_BUCKETS 3 /* head_dim <= 128, <= 256, <= 512 */

struct nb_op_attn {
    struct vkx_pipeline attn[2][NB_ATTN_NQ_BUCKETS]; /* [rows[0] | rows[1] per workgroup][hd] */
    struct vkx_pipeline combine;                       /* split-K merge */
    struct vkx_pipeline store;                         /* kv_store */
    /* the same for an f32 cache, made by nb_op_attn_enable_f32 (NULL handles until then) */
    struct vkx_pipeline attn32[2][NB_ATTN_NQ_BUCKETS], store32;
    /* CPU devices with texel buffers (`texel`): the same reading K and V through the caches'
     * texel views, built instead of the storage ones (those follow on the first dispatch on a
     * cache without views; NIBBLE_DISABLE=texel: storage only) */
    struct vkx_pipeline attn_tx[2][NB_ATTN_NQ_BUCKETS], attn32_tx[2][NB_ATTN_NQ_BUCKETS];
    bool texel;
    bool subgroup;       /* attn uses subgroup shuffles (else a shared-memory reduction) */
    /* f16 caches: q in f16 registers, f16 q.k products summed in f32, f32 softmax and output
     * (the _h variants of attn.comp): GPU-shaped devices with shaderFloat16 (NIBBLE_DISABLE=fp16:
     * f32) */
    bool fp16;
    uint32_t ds;         /* threads per query row */
    uint32_t sg_size;    /* subgroup size the subgroup variant requires (0: any) */
    uint32_t rows[2];    /* query rows per workgroup of attn[0] (decode) and attn[1] (prefill) */
    uint32_t hd_max;     /* largest head_dim served: buckets above it are not built (0: all) */
    /* Tuning, set by _create from the device, may be changed before recording: */
    uint32_t target_wgs; /* split the keys until about this many workgroups run */
    uint32_t min_chunk;  /* fewest keys per split */
    uint32_t max_split;  /* most splits (sizes the scratch) */
};

int nb_op_attn_create(struct nb_op_attn *o, struct vkx_ctx *vk, char *err, size_t errlen);
/* The same for head_dim <= hd_max only (a model's largest head): the pipelines of larger
 * buckets are not built (those of head_dim 512 hold 16 quads of q and output per thread, which
 * spill on small register files: Mali's compiler takes minutes over each under qemu). */
int nb_op_attn_create_for(struct nb_op_attn *o, struct vkx_ctx *vk, uint32_t hd_max, char *err,
                          size_t errlen);
void nb_op_attn_destroy(struct nb_op_attn *o, struct vkx_ctx *vk);
/* Builds the pipelines for f32 caches (struct nb_kvcache.f32); idempotent. 0 or -1 + message. */
int nb_op_attn_enable_f32(struct nb_op_attn *o, struct vkx_ctx *vk, char *err, size_t errlen);

/* Builds the storage-buffer pipelines kv needs where a texel-reading device got a cache (or
 * part of one) without texel views (out of memory for them); idempotent. Call after creating
 * the cache and before recording attention over it. 0 or -1 + message. */
int nb_op_attn_prepare(struct nb_op_attn *o, struct vkx_ctx *vk, const struct nb_kvcache *kv,
                       char *err, size_t errlen);

/* Scratch bytes nb_op_attn needs to split the keys of n_tokens queries of n_head heads of
 * head_dim (size it for the largest layer and batch; less scratch means fewer splits). */
size_t nb_op_attn_scratch_bytes(const struct nb_op_attn *o, uint32_t n_tokens, uint32_t n_head,
                                uint32_t head_dim);

/* Writes the K and V of n_tokens tokens into layer's cache (the layer must own its cache, and
 * n_tokens <= the cache's max_batch on sliding layers),
 * converting to f16; token t goes to position pos[t] (slot pos[t] % n_slots on sliding layers).
 *   k, v: f32 [n_tokens][n_kv_head * head_dim] (K already normed and roped)
 *   pos:  uint32 [n_tokens]                                                              */
void nb_op_kv_store(struct nb_op_attn *o, struct vkx_ctx *vk, struct vkx_cmd *c,
                    const struct nb_kvcache *kv, uint32_t layer, struct vkx_view k,
                    struct vkx_view v, struct vkx_view pos, uint32_t n_tokens);

/* Attention of n_tokens queries at positions pos[t] over layer's cache (its source's on a
 * KV-sharing layer), which must already hold every key position up to max(pos): keys kp with
 * kp <= qp (and qp - kp < window on sliding layers) are visible.
 *   q:   f32 [n_tokens][n_head * head_dim], multiplied by `scale` (1.0 for Gemma 4)
 *   out: f32 [n_tokens][n_head * head_dim]
 *   pos: uint32 [n_tokens]
 *   scratch: split-K partials, nb_op_attn_scratch_bytes() for the most splits; its offset a
 *     multiple of 256; size 0 / NULL buffer: no split (one pass over all keys).
 * n_head must be a multiple of the layer's n_kv_head. */
void nb_op_attn(struct nb_op_attn *o, struct vkx_ctx *vk, struct vkx_cmd *c,
                const struct nb_kvcache *kv, uint32_t layer, struct vkx_view q,
                struct vkx_view out, struct vkx_view pos, uint32_t n_tokens, uint32_t n_head,
                float scale, struct vkx_view scratch);

#endif

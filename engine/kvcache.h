/* kvcache: the per-layer K/V cache on the device.
 *
 * Every layer that owns K/V (desc.src == its own index) gets two buffers, K and V, each laid out
 * [n_kv_head][n_slots][head_dim] in f16 (packed in pairs into uint32 words with packHalf2x16, so
 * no 16-bit-storage feature is needed and every Vulkan device gets the f16 cache). A layer that
 * shares K/V (Gemma 4 E2B/E4B) names its source layer in desc.src and gets no storage; the ops
 * read the source's buffers with the sharing layer's own mask type (the source has the same
 * type: the caller's mapping must respect that, it is checked).
 *
 * Slots: a full-attention layer holds n_ctx positions, position p in slot p. A sliding layer holds
 * a ring of n_slots = min(n_ctx, window + max_batch) positions, p in slot p % n_slots: the extra
 * max_batch slots let a whole prefill chunk be written before it attends, without overwriting the
 * oldest keys its first query still needs (that needs window + T - 1 slots for a chunk of T).
 *
 * A layer whose K (or V) buffer would exceed the device's storage-buffer range is refused at
 * creation with an error naming the largest n_ctx that fits (no splitting: 128 MiB holds 131072
 * positions of one 512-wide f16 head, the whole context of E2B's full layers).
 */
#ifndef NB_KVCACHE_H
#define NB_KVCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vkx.h"

/* What the caller says about layer l. */
struct nb_kv_layer_desc {
    uint32_t n_kv_head;
    uint32_t head_dim; /* a multiple of 32, at most 512 */
    bool is_swa;       /* sliding-window layer (ring buffer of window + max_batch slots) */
    uint32_t src;      /* layer whose cache l uses: l itself when l owns K/V, else an earlier
                          layer of the same type, head count and head dim that owns its own */
};

struct nb_kv_layer {
    struct nb_kv_layer_desc d;
    uint32_t n_slots;       /* positions held per KV head (n_ctx, or the ring size) */
    struct vkx_buffer k, v; /* [n_kv_head][n_slots][head_dim] f16; only when d.src == l */
};

struct nb_kvcache {
    uint32_t n_layer;
    uint32_t n_ctx;     /* positions 0 .. n_ctx-1 can be stored */
    uint32_t window;    /* sliding window (positions, the query included) */
    uint32_t max_batch; /* most tokens written by one kv_store before their attention */
    struct nb_kv_layer *layers; /* [n_layer] */
    uint64_t bytes;     /* device memory of all K/V buffers */
    bool f32;           /* f32 cache (nb_kvcache_create_f32) instead of packed f16 */
};

/* Creates the cache (zero-filled). Returns 0, or -1 with a one-line message in err (bad layer
 * description, a layer larger than the storage range, out of device memory). */
int nb_kvcache_create(struct vkx_ctx *vk, struct nb_kvcache *kv, uint32_t n_layer,
                      const struct nb_kv_layer_desc *desc, uint32_t n_ctx, uint32_t window,
                      uint32_t max_batch, char *err, size_t errlen);
/* The same with f32 elements (twice the memory; the attention ops need
 * nb_op_attn_enable_f32): for exact comparisons and for models whose activations f16 cannot
 * hold. */
int nb_kvcache_create_f32(struct vkx_ctx *vk, struct nb_kvcache *kv, uint32_t n_layer,
                          const struct nb_kv_layer_desc *desc, uint32_t n_ctx, uint32_t window,
                          uint32_t max_batch, bool f32, char *err, size_t errlen);
void nb_kvcache_destroy(struct vkx_ctx *vk, struct nb_kvcache *kv);
/* Device bytes of the cache. */
uint64_t nb_kvcache_bytes(const struct nb_kvcache *kv);
/* The layer that holds layer l's K/V (l itself or its source). */
static inline const struct nb_kv_layer *nb_kvcache_src(const struct nb_kvcache *kv, uint32_t l)
{
    return &kv->layers[kv->layers[l].d.src];
}

#endif

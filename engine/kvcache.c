/* kvcache: the per-layer K/V cache on the device, see kvcache.h. */
#include "kvcache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_desc(const struct nb_kv_layer_desc *desc, uint32_t n_layer, uint32_t l,
                      char *err, size_t errlen)
{
    const struct nb_kv_layer_desc *d = &desc[l];
    if (d->n_kv_head == 0 || d->head_dim == 0 || d->head_dim % 32 || d->head_dim > 512) {
        snprintf(err, errlen, "kvcache: layer %u: head_dim %u (must be a multiple of 32, <= 512), "
                 "n_kv_head %u", l, d->head_dim, d->n_kv_head);
        return -1;
    }
    if (d->src == l) return 0;
    if (d->src >= n_layer || desc[d->src].src != d->src) {
        snprintf(err, errlen, "kvcache: layer %u shares the cache of layer %u, which does not own one",
                 l, d->src);
        return -1;
    }
    const struct nb_kv_layer_desc *s = &desc[d->src];
    if (s->is_swa != d->is_swa || s->n_kv_head != d->n_kv_head || s->head_dim != d->head_dim) {
        snprintf(err, errlen, "kvcache: layer %u (%s, %u x %u) cannot share layer %u (%s, %u x %u)",
                 l, d->is_swa ? "sliding" : "full", d->n_kv_head, d->head_dim, d->src,
                 s->is_swa ? "sliding" : "full", s->n_kv_head, s->head_dim);
        return -1;
    }
    return 0;
}

int nb_kvcache_create(struct vkx_ctx *vk, struct nb_kvcache *kv, uint32_t n_layer,
                      const struct nb_kv_layer_desc *desc, uint32_t n_ctx, uint32_t window,
                      uint32_t max_batch, char *err, size_t errlen)
{
    return nb_kvcache_create_f32(vk, kv, n_layer, desc, n_ctx, window, max_batch, false, err,
                                 errlen);
}

int nb_kvcache_create_f32(struct vkx_ctx *vk, struct nb_kvcache *kv, uint32_t n_layer,
                          const struct nb_kv_layer_desc *desc, uint32_t n_ctx, uint32_t window,
                          uint32_t max_batch, bool f32, char *err, size_t errlen)
{
    memset(kv, 0, sizeof *kv);
    if (n_layer == 0 || n_ctx == 0 || max_batch == 0) {
        snprintf(err, errlen, "kvcache: n_layer %u, n_ctx %u, max_batch %u must be > 0", n_layer,
                 n_ctx, max_batch);
        return -1;
    }
    for (uint32_t l = 0; l < n_layer; l++) {
        if (check_desc(desc, n_layer, l, err, errlen)) return -1;
        if (desc[l].is_swa && window == 0) {
            snprintf(err, errlen, "kvcache: layer %u is sliding but the window is 0", l);
            return -1;
        }
    }
    kv->layers = calloc(n_layer, sizeof *kv->layers);
    if (!kv->layers) {
        snprintf(err, errlen, "kvcache: out of memory");
        return -1;
    }
    kv->n_layer = n_layer;
    kv->n_ctx = n_ctx;
    kv->window = window;
    kv->max_batch = max_batch;
    kv->f32 = f32;

    struct vkx_cmd c;
    vkx_cmd_create(vk, &c, 1, false);
    vkx_cmd_begin(vk, &c);
    int rc = 0;
    for (uint32_t l = 0; l < n_layer && rc == 0; l++) {
        struct nb_kv_layer *L = &kv->layers[l];
        L->d = desc[l];
        uint64_t ring = (uint64_t)window + max_batch;
        L->n_slots = desc[l].is_swa && ring < n_ctx ? (uint32_t)ring : n_ctx;
        if (desc[l].src != l) continue;
        uint64_t row = (uint64_t)desc[l].n_kv_head * desc[l].head_dim * (f32 ? 4 : 2); /* per slot */
        uint64_t bytes = row * L->n_slots;
        if (bytes > vk->caps.max_storage_range) {
            snprintf(err, errlen, "kvcache: layer %u needs %llu MiB per K buffer, above the "
                     "device's %llu MiB storage range: use a context of at most %llu",
                     l, (unsigned long long)((bytes + (1u << 20) - 1) >> 20),
                     (unsigned long long)(vk->caps.max_storage_range >> 20),
                     (unsigned long long)(vk->caps.max_storage_range / row));
            rc = -1;
            break;
        }
        if (vkx_buffer_create(vk, &L->k, bytes, VKX_MEM_DEVICE, err, errlen) ||
            vkx_buffer_create(vk, &L->v, bytes, VKX_MEM_DEVICE, err, errlen)) {
            rc = -1;
            break;
        }
        /* texel views where the device has them (CPU devices read K/V through them, see
         * op_attn.h); a cache too large for one is read through storage bindings */
        if (vkx_has(vk, VKX_FEAT_TEXEL) && bytes % 16 == 0) {
            char ignored[256]; /* the op wants both views: V only when K has one */
            if (vkx_buffer_texel_view(vk, &L->k, ignored, sizeof ignored) == 0)
                (void)vkx_buffer_texel_view(vk, &L->v, ignored, sizeof ignored);
        }
        kv->bytes += 2 * bytes;
        /* zeros: slots never written hold finite values, whatever a shader reads */
        vkx_cmd_fill(&c, vkx_whole(&L->k), 0);
        vkx_cmd_fill(&c, vkx_whole(&L->v), 0);
    }
    vkx_cmd_end(vk, &c);
    if (rc == 0) vkx_cmd_submit_wait(vk, &c);
    vkx_cmd_destroy(vk, &c);
    if (rc) nb_kvcache_destroy(vk, kv);
    return rc;
}

void nb_kvcache_destroy(struct vkx_ctx *vk, struct nb_kvcache *kv)
{
    if (kv->layers) {
        for (uint32_t l = 0; l < kv->n_layer; l++) {
            if (kv->layers[l].k.buf) vkx_buffer_destroy(vk, &kv->layers[l].k);
            if (kv->layers[l].v.buf) vkx_buffer_destroy(vk, &kv->layers[l].v);
        }
        free(kv->layers);
    }
    memset(kv, 0, sizeof *kv);
}

uint64_t nb_kvcache_bytes(const struct nb_kvcache *kv) { return kv->bytes; }

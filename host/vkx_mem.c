/* vkx_mem.c: buffers (one VkDeviceMemory each), upload/download through a small staging ring or
 * a direct memcpy on mapped memory, and split buffers for tensors over the storage range. */
#include <stdlib.h>
#include <string.h>

#include "vkx_internal.h"

#define MIB(x) ((double)(x) / (1024.0 * 1024.0))

uint32_t vkx_find_mem_type(const struct vkx_ctx *ctx, uint32_t bits, VkMemoryPropertyFlags need,
                           VkMemoryPropertyFlags want, VkMemoryPropertyFlags avoid)
{
    /* Never: protected memory, lazily allocated memory, AMD's device-coherent types (they need
     * features we do not enable and are slow). */
    const VkMemoryPropertyFlags never = VK_MEMORY_PROPERTY_PROTECTED_BIT |
                                        VK_MEMORY_PROPERTY_LAZILY_ALLOCATED_BIT |
                                        VK_MEMORY_PROPERTY_DEVICE_COHERENT_BIT_AMD |
                                        VK_MEMORY_PROPERTY_DEVICE_UNCACHED_BIT_AMD;
    VkPhysicalDeviceMemoryProperties mp;
    vkGetPhysicalDeviceMemoryProperties(ctx->phys, &mp);
    uint32_t best = UINT32_MAX;
    int best_score = -1;
    for (uint32_t t = 0; t < mp.memoryTypeCount; t++) {
        VkMemoryPropertyFlags f = mp.memoryTypes[t].propertyFlags;
        if (!(bits & (1u << t)) || (f & need) != need || (f & never)) continue;
        int score = ((f & avoid) == 0 ? 4 : 0) + ((f & want) == want ? 2 : 0);
        if (score > best_score) {
            best_score = score;
            best = t;
        }
    }
    return best;
}

/* vkx_buffer_create, also giving the failed call's VkResult in *why (untouched for the other
 * failures). */
static int buffer_make(struct vkx_ctx *ctx, struct vkx_buffer *b, VkDeviceSize size,
                       enum vkx_mem mem, char *err, size_t errlen, VkResult *why)
{
    vkx_use(ctx);
    memset(b, 0, sizeof *b);
    if (size == 0) {
        vkx_errf(err, errlen, "cannot create a buffer of 0 bytes");
        return -1;
    }
    if (size > ctx->caps.max_alloc) {
        vkx_errf(err, errlen,
                 "buffer of %llu bytes (%.1f MiB) exceeds the device's maxMemoryAllocationSize "
                 "(%llu bytes)",
                 (unsigned long long)size, MIB(size), (unsigned long long)ctx->caps.max_alloc);
        return -1;
    }
    VkBufferCreateInfo bi = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
                             .size = size,
                             .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT |
                                      VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                                      VK_BUFFER_USAGE_TRANSFER_DST_BIT |
                                      (vkx_has(ctx, VKX_FEAT_TEXEL)
                                           ? VK_BUFFER_USAGE_UNIFORM_TEXEL_BUFFER_BIT
                                           : 0),
                             .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
    VkResult cr = VKX_CALL(vkCreateBuffer(ctx->dev, &bi, NULL, &b->buf));
    if (cr != VK_SUCCESS) { /* out of host or device memory */
        b->buf = VK_NULL_HANDLE;
        *why = cr;
        vkx_errf(err, errlen, "creating a buffer of %.1f MiB failed: %s", MIB(size),
                 vkx_result_name(cr));
        return -1;
    }
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(ctx->dev, b->buf, &req);

    const VkMemoryPropertyFlags dl = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT,
                                hv = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT,
                                hc = VK_MEMORY_PROPERTY_HOST_COHERENT_BIT,
                                cached = VK_MEMORY_PROPERTY_HOST_CACHED_BIT;
    uint32_t type;
    bool map;
    if (mem == VKX_MEM_HOST) {
        type = vkx_find_mem_type(ctx, req.memoryTypeBits, hv | hc, cached, 0);
        map = true;
    } else if (ctx->mem_uma != UINT32_MAX) {
        type = vkx_find_mem_type(ctx, req.memoryTypeBits, dl | hv | hc, cached, 0);
        map = true;
        if (type == UINT32_MAX) {
            type = vkx_find_mem_type(ctx, req.memoryTypeBits, dl, 0, hv);
            map = false;
        }
    } else {
        type = vkx_find_mem_type(ctx, req.memoryTypeBits, dl, 0, hv);
        map = false;
    }
    if (type == UINT32_MAX) {
        vkDestroyBuffer(ctx->dev, b->buf, NULL);
        b->buf = VK_NULL_HANDLE;
        vkx_errf(err, errlen, "no memory type for a %s buffer of %.1f MiB",
                 mem == VKX_MEM_HOST ? "host" : "device", MIB(size));
        return -1;
    }
    VkMemoryAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
                               .allocationSize = req.size,
                               .memoryTypeIndex = type};
    VkResult r = VKX_CALL(vkAllocateMemory(ctx->dev, &ai, NULL, &b->mem));
    if (r != VK_SUCCESS) *why = r;
    if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY) {
        VkPhysicalDeviceMemoryProperties mp;
        vkGetPhysicalDeviceMemoryProperties(ctx->phys, &mp);
        uint32_t heap = mp.memoryTypes[type].heapIndex;
        vkDestroyBuffer(ctx->dev, b->buf, NULL);
        memset(b, 0, sizeof *b);
        vkx_errf(err, errlen,
                 "out of %s memory (%s): asked for %.1f MiB; heap %u has %.1f MiB, of which "
                 "nibble already holds %.1f MiB",
                 r == VK_ERROR_OUT_OF_DEVICE_MEMORY ? "device" : "host", vkx_result_name(r),
                 MIB(req.size), heap,
                 MIB(mp.memoryHeaps[heap].size), MIB(ctx->allocated_bytes));
        return -1;
    }
    const char *what = "vkAllocateMemory";
    if (r != VK_SUCCESS) b->mem = VK_NULL_HANDLE;
    if (r == VK_SUCCESS) {
        what = "vkBindBufferMemory";
        r = VKX_CALL(vkBindBufferMemory(ctx->dev, b->buf, b->mem, 0));
    }
    if (r == VK_SUCCESS && map) {
        what = "vkMapMemory";
        r = VKX_CALL(vkMapMemory(ctx->dev, b->mem, 0, VK_WHOLE_SIZE, 0, &b->map));
    }
    if (r != VK_SUCCESS) { /* device lost, or memory that cannot be mapped */
        *why = r;
        vkDestroyBuffer(ctx->dev, b->buf, NULL);
        if (b->mem) vkFreeMemory(ctx->dev, b->mem, NULL);
        memset(b, 0, sizeof *b);
        vkx_errf(err, errlen, "a %.1f MiB buffer: %s failed: %s", MIB(req.size), what,
                 vkx_result_name(r));
        return -1;
    }
    b->size = size;
    ctx->allocated_bytes += size;
    if (ctx->allocated_bytes > ctx->peak_allocated_bytes)
        ctx->peak_allocated_bytes = ctx->allocated_bytes;
    return 0;
}

int vkx_buffer_create(struct vkx_ctx *ctx, struct vkx_buffer *b, VkDeviceSize size,
                      enum vkx_mem mem, char *err, size_t errlen)
{
    VkResult why;
    return buffer_make(ctx, b, size, mem, err, errlen, &why);
}

void vkx_buffer_destroy(struct vkx_ctx *ctx, struct vkx_buffer *b)
{
    vkx_use(ctx);
    if (b->texel) vkDestroyBufferView(ctx->dev, b->texel, NULL);
    if (b->buf) vkDestroyBuffer(ctx->dev, b->buf, NULL);
    if (b->mem) vkFreeMemory(ctx->dev, b->mem, NULL); /* unmaps too */
    if (b->buf) ctx->allocated_bytes -= b->size;
    memset(b, 0, sizeof *b);
}

int vkx_buffer_texel_view(struct vkx_ctx *ctx, struct vkx_buffer *b, char *err, size_t errlen)
{
    vkx_use(ctx);
    if (b->texel) return 0;
    if (!vkx_has(ctx, VKX_FEAT_TEXEL)) {
        vkx_errf(err, errlen, "texel buffers are off or missing on this device");
        return -1;
    }
    if (b->size % 16 || b->size / 16 > ctx->caps.max_texel_elements) {
        vkx_errf(err, errlen, "texel view of %llu bytes: not whole texels or over the device's "
                 "%u texels", (unsigned long long)b->size, ctx->caps.max_texel_elements);
        return -1;
    }
    VkBufferViewCreateInfo vi = {.sType = VK_STRUCTURE_TYPE_BUFFER_VIEW_CREATE_INFO,
                                 .buffer = b->buf,
                                 .format = VK_FORMAT_R32G32B32A32_UINT,
                                 .range = b->size};
    VkResult r = VKX_CALL(vkCreateBufferView(ctx->dev, &vi, NULL, &b->texel));
    if (r != VK_SUCCESS) { /* out of memory: the caller goes on without the view */
        b->texel = VK_NULL_HANDLE;
        vkx_errf(err, errlen, "texel view: %s", vkx_result_name(r));
        return -1;
    }
    return 0;
}

/* ---- staging ------------------------------------------------------------------------------- */

/* The staging ring, made on first use; NULL after a failure (kept by VKX_OK: see vkx_cmd.c). */
static struct vkx_staging *staging_get(struct vkx_ctx *ctx)
{
    if (ctx->staging) return ctx->staging;
    struct vkx_staging *s = calloc(1, sizeof *s);
    VkResult why = VK_ERROR_OUT_OF_HOST_MEMORY;
    char err[256];
    if (!s || buffer_make(ctx, &s->buf, VKX_STAGING_BYTES, VKX_MEM_HOST, err, sizeof err,
                          &why) != 0) {
        free(s);
        vkx_ok(why, "staging buffer", __FILE__, __LINE__);
        return NULL;
    }
    ctx->staging = s; /* from here vkx_staging_destroy frees what was made */
    VkCommandBufferAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                      .commandPool = ctx->cmd_pool,
                                      .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                      .commandBufferCount = 2};
    bool ok = VKX_OK(vkAllocateCommandBuffers(ctx->dev, &ai, s->cb));
    if (!ok) s->cb[0] = s->cb[1] = VK_NULL_HANDLE;
    VkFenceCreateInfo fi = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    for (int i = 0; i < 2 && ok; i++) {
        ok = VKX_OK(vkCreateFence(ctx->dev, &fi, NULL, &s->fence[i]));
        if (!ok) s->fence[i] = VK_NULL_HANDLE;
    }
    if (!ok) vkx_staging_destroy(ctx);
    return ctx->staging;
}

void vkx_staging_destroy(struct vkx_ctx *ctx)
{
    struct vkx_staging *s = ctx->staging;
    if (!s) return;
    for (int i = 0; i < 2; i++) {
        /* a failure (a lost device) leaves nothing to wait for: destroyed all the same */
        if (s->busy[i]) (void)vkWaitForFences(ctx->dev, 1, &s->fence[i], VK_TRUE, UINT64_MAX);
        if (s->fence[i]) vkDestroyFence(ctx->dev, s->fence[i], NULL);
    }
    if (s->cb[0]) vkFreeCommandBuffers(ctx->dev, ctx->cmd_pool, 2, s->cb);
    vkx_buffer_destroy(ctx, &s->buf);
    free(s);
    ctx->staging = NULL;
}

/* Waits for half h's copy; false after a failure (kept: see VKX_OK), the half still busy. */
static bool staging_wait(struct vkx_ctx *ctx, struct vkx_staging *s, int h)
{
    if (!s->busy[h]) return true;
    if (!VKX_OK(vkWaitForFences(ctx->dev, 1, &s->fence[h], VK_TRUE, UINT64_MAX)) ||
        !VKX_OK(vkResetFences(ctx->dev, 1, &s->fence[h])))
        return false;
    s->busy[h] = false;
    return true;
}

/* After a failure: waits for the copies still in flight (the caller may free their buffer next;
 * a lost device has nothing left to wait for) and returns -1. */
static int staging_fail(struct vkx_ctx *ctx, struct vkx_staging *s)
{
    for (int h = 0; h < 2; h++)
        if (s->busy[h] &&
            vkWaitForFences(ctx->dev, 1, &s->fence[h], VK_TRUE, UINT64_MAX) == VK_SUCCESS &&
            vkResetFences(ctx->dev, 1, &s->fence[h]) == VK_SUCCESS)
            s->busy[h] = false;
    return -1;
}

static void mem_barrier(VkCommandBuffer cb, VkPipelineStageFlags src, VkAccessFlags src_access,
                        VkPipelineStageFlags dst, VkAccessFlags dst_access)
{
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                          .srcAccessMask = src_access,
                          .dstAccessMask = dst_access};
    vkCmdPipelineBarrier(cb, src, dst, 0, 1, &mb, 0, NULL, 0, NULL);
}

/* Records and submits one copy between half h of the staging buffer and `b`; false after a
 * failure (kept: see VKX_OK). */
static bool staging_copy(struct vkx_ctx *ctx, struct vkx_staging *s, int h, struct vkx_buffer *b,
                         VkDeviceSize off, VkDeviceSize n, bool to_device)
{
    const VkPipelineStageFlags work =
        VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
    const VkAccessFlags writes = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
    const VkAccessFlags all = writes | VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_TRANSFER_READ_BIT;
    VkCommandBuffer cb = s->cb[h];
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                   .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    if (!VKX_OK(vkBeginCommandBuffer(cb, &bi))) return false;
    VkDeviceSize half = VKX_STAGING_BYTES / 2;
    if (to_device) {
        /* earlier GPU work on b finishes (reads and writes) before the copy overwrites it */
        mem_barrier(cb, work, writes, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT);
        VkBufferCopy r = {.srcOffset = h * half, .dstOffset = off, .size = n};
        vkCmdCopyBuffer(cb, s->buf.buf, b->buf, 1, &r);
        /* later submissions (shaders, copies) see the data */
        mem_barrier(cb, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT, work, all);
    } else {
        /* earlier GPU writes to b are visible to the copy */
        mem_barrier(cb, work, writes, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_READ_BIT);
        VkBufferCopy r = {.srcOffset = off, .dstOffset = h * half, .size = n};
        vkCmdCopyBuffer(cb, b->buf, s->buf.buf, 1, &r);
        /* the host reads the staging buffer after the fence */
        mem_barrier(cb, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT,
                    VK_PIPELINE_STAGE_HOST_BIT, VK_ACCESS_HOST_READ_BIT);
    }
    if (!VKX_OK(vkEndCommandBuffer(cb))) return false;
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
                       .commandBufferCount = 1,
                       .pCommandBuffers = &cb};
    if (!VKX_OK(vkQueueSubmit(ctx->queue, 1, &si, s->fence[h]))) return false;
    s->busy[h] = true;
    return true;
}

static void check_range(const struct vkx_buffer *b, VkDeviceSize off, size_t n, const char *what)
{
    if (off > b->size || n > b->size - off)
        vkx_die("%s of %zu bytes at offset %llu is outside a buffer of %llu bytes", what, n,
                (unsigned long long)off, (unsigned long long)b->size);
}

int vkx_upload(struct vkx_ctx *ctx, struct vkx_buffer *b, VkDeviceSize off, const void *src,
               size_t n)
{
    vkx_use(ctx);
    check_range(b, off, n, "upload");
    if (!n) return 0;
    if (b->map) { /* host-visible and coherent: the next submission sees the write */
        memcpy((char *)b->map + off, src, n);
        return 0;
    }
    struct vkx_staging *s = vkx_caught() ? NULL : staging_get(ctx);
    if (!s) return -1;
    const size_t half = VKX_STAGING_BYTES / 2;
    int h = 0;
    for (size_t pos = 0; pos < n; pos += half, h ^= 1) {
        size_t len = n - pos < half ? n - pos : half;
        if (!staging_wait(ctx, s, h)) return staging_fail(ctx, s);
        memcpy((char *)s->buf.map + (size_t)h * half, (const char *)src + pos, len);
        if (!staging_copy(ctx, s, h, b, off + pos, len, true)) return staging_fail(ctx, s);
    }
    return staging_wait(ctx, s, 0) && staging_wait(ctx, s, 1) ? 0 : staging_fail(ctx, s);
}

int vkx_download(struct vkx_ctx *ctx, struct vkx_buffer *b, VkDeviceSize off, void *dst,
                 size_t n)
{
    vkx_use(ctx);
    check_range(b, off, n, "download");
    if (!n) return 0;
    if (b->map) {
        memcpy(dst, (const char *)b->map + off, n);
        return 0;
    }
    struct vkx_staging *s = vkx_caught() ? NULL : staging_get(ctx);
    if (!s) return -1;
    const size_t half = VKX_STAGING_BYTES / 2;
    size_t pend_pos[2] = {0, 0}, pend_len[2] = {0, 0};
    int h = 0;
    /* chunk i copies into half h while the host drains chunk i-1 from the other half */
    for (size_t pos = 0; pos <= n; pos += half, h ^= 1) {
        size_t len = pos < n ? (n - pos < half ? n - pos : half) : 0;
        if (len) {
            if (!staging_wait(ctx, s, h) || /* drained below on the previous round */
                !staging_copy(ctx, s, h, b, off + pos, len, false))
                return staging_fail(ctx, s);
            pend_pos[h] = pos;
            pend_len[h] = len;
        }
        int o = h ^ 1;
        if (pend_len[o]) {
            if (!staging_wait(ctx, s, o)) return staging_fail(ctx, s);
            memcpy((char *)dst + pend_pos[o], (const char *)s->buf.map + (size_t)o * half,
                   pend_len[o]);
            pend_len[o] = 0;
        }
        if (!len) break;
    }
    for (int i = 0; i < 2; i++) {
        if (!pend_len[i]) continue;
        if (!staging_wait(ctx, s, i)) return staging_fail(ctx, s);
        memcpy((char *)dst + pend_pos[i], (const char *)s->buf.map + (size_t)i * half,
               pend_len[i]);
    }
    return 0;
}

/* ---- split buffers ------------------------------------------------------------------------- */

static VkDeviceSize gcd64(VkDeviceSize a, VkDeviceSize b)
{
    while (b) {
        VkDeviceSize t = a % b;
        a = b;
        b = t;
    }
    return a;
}

int vkx_split_create(struct vkx_ctx *ctx, struct vkx_split *s, VkDeviceSize size,
                     VkDeviceSize unit, VkDeviceSize max_piece, enum vkx_mem mem, char *err,
                     size_t errlen)
{
    memset(s, 0, sizeof *s);
    if (!unit) unit = 1;
    VkDeviceSize limit = max_piece ? max_piece : ctx->caps.max_storage_range;
    if (limit > ctx->caps.max_alloc) limit = ctx->caps.max_alloc;
    VkDeviceSize piece = limit / unit * unit;
    if (!max_piece) { /* also a multiple of 256 bytes when a piece that large fits */
        VkDeviceSize lcm = unit / gcd64(unit, 256) * 256;
        if (limit >= lcm) piece = limit / lcm * lcm;
    }
    if (!piece) {
        vkx_errf(err, errlen, "a row of %llu bytes exceeds the largest binding (%llu bytes)",
                 (unsigned long long)unit, (unsigned long long)limit);
        return -1;
    }
    if (!size) {
        vkx_errf(err, errlen, "cannot create a split buffer of 0 bytes");
        return -1;
    }
    if (size % unit) {
        vkx_errf(err, errlen, "split buffer of %llu bytes is not a whole number of %llu-byte rows",
                 (unsigned long long)size, (unsigned long long)unit);
        return -1;
    }
    uint64_t n = (size + piece - 1) / piece;
    if (n > VKX_MAX_PIECES) {
        vkx_errf(err, errlen, "a tensor of %.1f MiB needs %llu pieces of %.1f MiB (at most %d)",
                 MIB(size), (unsigned long long)n, MIB(piece), VKX_MAX_PIECES);
        return -1;
    }
    s->size = size;
    s->piece = piece;
    s->unit = unit;
    for (uint32_t i = 0; i < n; i++) {
        VkDeviceSize len = size - i * piece < piece ? size - i * piece : piece;
        /* whole 16-byte texels where that stays within the limit (texel views, vkx.h) */
        if ((len + 15) / 16 * 16 <= limit) len = (len + 15) / 16 * 16;
        if (vkx_buffer_create(ctx, &s->b[i], len, mem, err, errlen) != 0) {
            vkx_split_destroy(ctx, s);
            return -1;
        }
        s->n = i + 1;
    }
    return 0;
}

void vkx_split_destroy(struct vkx_ctx *ctx, struct vkx_split *s)
{
    for (uint32_t i = 0; i < s->n; i++) vkx_buffer_destroy(ctx, &s->b[i]);
    memset(s, 0, sizeof *s);
}

/* Calls upload or download for each piece that [off, off+n) touches; -1 at the first that
 * fails. */
static int split_io(struct vkx_ctx *ctx, struct vkx_split *s, VkDeviceSize off, char *host,
                     size_t n, bool up)
{
    if (off > s->size || n > s->size - off)
        vkx_die("split %s of %zu bytes at offset %llu is outside %llu bytes", up ? "upload" : "download",
                n, (unsigned long long)off, (unsigned long long)s->size);
    while (n) {
        uint32_t i = (uint32_t)(off / s->piece);
        VkDeviceSize in = off - (VkDeviceSize)i * s->piece;
        size_t len = s->piece - in < n ? (size_t)(s->piece - in) : n;
        if ((up ? vkx_upload(ctx, &s->b[i], in, host, len)
                : vkx_download(ctx, &s->b[i], in, host, len)) != 0)
            return -1;
        off += len;
        host += len;
        n -= len;
    }
    return 0;
}

int vkx_split_upload(struct vkx_ctx *ctx, struct vkx_split *s, VkDeviceSize off, const void *src,
                     size_t n)
{
    return split_io(ctx, s, off, (char *)(uintptr_t)src, n, true);
}

int vkx_split_download(struct vkx_ctx *ctx, struct vkx_split *s, VkDeviceSize off, void *dst,
                       size_t n)
{
    return split_io(ctx, s, off, dst, n, false);
}

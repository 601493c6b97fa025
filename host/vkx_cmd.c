/* vkx_cmd.c: command recording (push descriptors or a descriptor-pool fallback), barriers,
 * copies and fills, submission, and per-dispatch GPU timestamps. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vkx_internal.h"

/* ---- recoverable failures ---------------------------------------------------------------------
 * Normally a failed Vulkan call of a recording, a submission or an upload aborts (VKX_OK
 * outside a catch). Between vkx_cmd_catch(true) and vkx_cmd_catch(false) (nibble.c does this
 * around nibble_context_create's, nibble_eval's and nibble_sample's work, gpu_model.c around the
 * weight upload) the first failure of a creation (command buffer, fence, descriptor pool or set,
 * query pool), of a recording's begin or end, of a submission or wait, or of a staging upload or
 * download (vkx_mem.c) is kept instead: later recording, submissions and uploads are skipped,
 * and vkx_cmd_catch(false) returns it: the caller reports it and treats what the failed work
 * wrote as garbage. Device loss and out-of-memory reach an app this way. Thread-local: a
 * vkx_ctx is used from one thread at a time. vkx.h declares vkx_cmd_catch and the test hooks. */
static _Thread_local struct {
    bool on;
    VkResult r;         /* the first failure while on */
    VkResult inject;    /* test hook: a failure to report ... */
    uint32_t after;     /* ... at the submission after this many more */
    VkResult cinject;   /* test hook: a failure to make ... */
    uint32_t cafter;    /* ... the hooked call after this many more ... */
    char cname[48];     /* ... of this Vulkan function ("": any) */
    bool trace;         /* counting the hooked calls by name (vkx_call_trace) */
    uint32_t n_names;
    char names[VKX_MAX_TRACE][48];
    uint32_t counts[VKX_MAX_TRACE];
} fault;
_Thread_local VkResult vkx_hook_r_;

VkResult vkx_cmd_catch(bool on)
{
    VkResult r = fault.r;
    fault.on = on;
    fault.r = VK_SUCCESS;
    return r;
}

VkResult vkx_cmd_caught(void) { return fault.on ? fault.r : VK_SUCCESS; }

/* For tests: the submission after `after` more ones reports r (after doing its work, so the
 * device stays consistent), as a lost device or a full memory would. */
void vkx_cmd_inject_fault(VkResult r, uint32_t after)
{
    fault.inject = r;
    fault.after = after;
}

void vkx_inject_call_fault(const char *name, VkResult r, uint32_t after)
{
    fault.cinject = r;
    fault.cafter = after;
    snprintf(fault.cname, sizeof fault.cname, "%s", name ? name : "");
}

void vkx_call_trace(bool on)
{
    fault.trace = on;
    if (on) fault.n_names = 0;
}

uint32_t vkx_call_trace_get(uint32_t i, const char **name)
{
    if (i >= fault.n_names) return 0;
    *name = fault.names[i];
    return fault.counts[i];
}

VkResult vkx_hook(const char *call)
{
    size_t len = strcspn(call, "(");
    if (fault.trace) {
        uint32_t i = 0;
        while (i < fault.n_names && (strlen(fault.names[i]) != len ||
                                     strncmp(fault.names[i], call, len) != 0))
            i++;
        if (i == fault.n_names && i < VKX_MAX_TRACE && len < sizeof fault.names[i]) {
            memcpy(fault.names[i], call, len);
            fault.names[i][len] = 0;
            fault.counts[i] = 0;
            fault.n_names++;
        }
        if (i < fault.n_names) fault.counts[i]++;
    }
    if (fault.cinject == VK_SUCCESS) return VK_SUCCESS;
    if (fault.cname[0] &&
        (strlen(fault.cname) != len || strncmp(fault.cname, call, len) != 0))
        return VK_SUCCESS;
    if (fault.cafter > 0) {
        fault.cafter--;
        return VK_SUCCESS;
    }
    VkResult r = fault.cinject;
    fault.cinject = VK_SUCCESS;
    return r;
}

bool vkx_ok(VkResult r, const char *call, const char *file, int line)
{
    if (r == VK_SUCCESS) return true;
    if (!fault.on) vkx_fatal(file, line, call, r);
    if (fault.r == VK_SUCCESS) fault.r = r;
    return false;
}

bool vkx_caught(void) { return fault.on && fault.r != VK_SUCCESS; }

/* A failure this file found itself (no call to hook): kept or fatal as VKX_OK's. */
#define CMD_OK(r) vkx_ok((r), #r, __FILE__, __LINE__)

#define STAGE_WORK (VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT)
#define ACCESS_WRITES (VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT)
#define ACCESS_ALL                                                                                 \
    (ACCESS_WRITES | VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_TRANSFER_READ_BIT)

void vkx_cmd_create(struct vkx_ctx *ctx, struct vkx_cmd *c, uint32_t max_dispatches,
                    bool timestamps)
{
    vkx_use(ctx);
    memset(c, 0, sizeof *c);
    c->max_dispatches = max_dispatches ? max_dispatches : 1;
    c->push_desc = vkx_has(ctx, VKX_FEAT_PUSHDESC);
    c->timestamps = timestamps && ctx->caps.timestamps;
    VkCommandBufferAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                      .commandPool = ctx->cmd_pool,
                                      .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                      .commandBufferCount = 1};
    if (!VKX_OK(vkAllocateCommandBuffers(ctx->dev, &ai, &c->cb))) {
        c->cb = VK_NULL_HANDLE;
        return;
    }
    VkFenceCreateInfo fi = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    if (!VKX_OK(vkCreateFence(ctx->dev, &fi, NULL, &c->fence))) return;
    if (!c->push_desc) { /* one set per dispatch, freed all at once by vkx_cmd_begin */
        VkDescriptorPoolSize ps[2] = {{.type = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                       .descriptorCount = c->max_dispatches * VKX_MAX_BINDINGS},
                                      {.type = VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER,
                                       .descriptorCount = c->max_dispatches * 2}};
        VkDescriptorPoolCreateInfo pci = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
                                          .maxSets = c->max_dispatches,
                                          .poolSizeCount = 2,
                                          .pPoolSizes = ps};
        if (!VKX_OK(vkCreateDescriptorPool(ctx->dev, &pci, NULL, &c->pool))) return;
    }
    if (c->timestamps) { /* query 0 before the first dispatch, query i+1 after dispatch i */
        VkQueryPoolCreateInfo qci = {.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
                                     .queryType = VK_QUERY_TYPE_TIMESTAMP,
                                     .queryCount = c->max_dispatches + 1};
        if (!VKX_OK(vkCreateQueryPool(ctx->dev, &qci, NULL, &c->queries))) return;
    }
    c->labels = calloc(c->max_dispatches, sizeof *c->labels);
    if (!c->labels) CMD_OK(VK_ERROR_OUT_OF_HOST_MEMORY);
}

void vkx_cmd_destroy(struct vkx_ctx *ctx, struct vkx_cmd *c)
{
    vkx_use(ctx);
    if (c->cb) vkFreeCommandBuffers(ctx->dev, ctx->cmd_pool, 1, &c->cb);
    if (c->fence) vkDestroyFence(ctx->dev, c->fence, NULL);
    if (c->pool) vkDestroyDescriptorPool(ctx->dev, c->pool, NULL);
    if (c->queries) vkDestroyQueryPool(ctx->dev, c->queries, NULL);
    free(c->labels);
    memset(c, 0, sizeof *c);
}

void vkx_cmd_begin(struct vkx_ctx *ctx, struct vkx_cmd *c)
{
    vkx_use(ctx);
    c->n_dispatches = 0;
    c->next_label = NULL;
    c->bound = VK_NULL_HANDLE;
    if (vkx_caught()) return;
    if (c->pool && !VKX_OK(vkResetDescriptorPool(ctx->dev, c->pool, 0))) return;
    /* no ONE_TIME_SUBMIT: a recording is replayed many times (one per decoded token) */
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    if (!VKX_OK(vkBeginCommandBuffer(c->cb, &bi))) return; /* resets: the pool allows it */
    if (c->timestamps) {
        vkCmdResetQueryPool(c->cb, c->queries, 0, c->max_dispatches + 1);
        vkCmdWriteTimestamp(c->cb, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, c->queries, 0);
    }
}

void vkx_cmd_label(struct vkx_cmd *c, const char *label) { c->next_label = label; }

void vkx_cmd_dispatch(struct vkx_ctx *ctx, struct vkx_cmd *c, const struct vkx_pipeline *p,
                      const struct vkx_view *binds, uint32_t n_binds, const void *push,
                      uint32_t push_size, uint32_t gx, uint32_t gy, uint32_t gz)
{
    vkx_use(ctx);
    if (c->n_dispatches >= c->max_dispatches)
        vkx_die("%s: more than %u dispatches in one recording", p->name, c->max_dispatches);
    if (n_binds != p->n_bindings || push_size != p->push_size)
        vkx_die("%s: dispatched with %u bindings and %u push bytes; the pipeline has %u and %u",
                p->name, n_binds, push_size, p->n_bindings, p->push_size);
    if (vkx_caught()) return;
    VkCommandBuffer cb = c->cb;
    if (c->bound != p->pipe) {
        vkCmdBindPipeline(cb, VK_PIPELINE_BIND_POINT_COMPUTE, p->pipe);
        c->bound = p->pipe;
    }
    union vkx_desc bi[VKX_MAX_BINDINGS];
    for (uint32_t i = 0; i < n_binds; i++) {
        const struct vkx_view *v = &binds[i];
        if (vkx_binding_type(p, i) == VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER) {
            if (!v->buf->texel || v->off)
                vkx_die("%s: binding %u wants a buffer with a texel view, at offset 0", p->name, i);
            bi[i].texel = v->buf->texel;
            continue;
        }
        bi[i].buf.buffer = v->buf->buf;
        bi[i].buf.offset = v->off;
        bi[i].buf.range = v->size ? v->size : v->buf->size - v->off;
    }
    if (n_binds && c->push_desc) {
        vkCmdPushDescriptorSetWithTemplateKHR(cb, p->tmpl, p->layout, 0, bi);
    } else if (n_binds) {
        VkDescriptorSetAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                          .descriptorPool = c->pool,
                                          .descriptorSetCount = 1,
                                          .pSetLayouts = &p->dsl};
        VkDescriptorSet set;
        if (!VKX_OK(vkAllocateDescriptorSets(ctx->dev, &ai, &set))) return;
        VkWriteDescriptorSet w[VKX_MAX_BINDINGS];
        for (uint32_t i = 0; i < n_binds; i++)
            w[i] = (VkWriteDescriptorSet){.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
                                          .dstSet = set,
                                          .dstBinding = i,
                                          .descriptorCount = 1,
                                          .descriptorType = vkx_binding_type(p, i),
                                          .pBufferInfo = &bi[i].buf,
                                          .pTexelBufferView = &bi[i].texel};
        vkUpdateDescriptorSets(ctx->dev, n_binds, w, 0, NULL);
        vkCmdBindDescriptorSets(cb, VK_PIPELINE_BIND_POINT_COMPUTE, p->layout, 0, 1, &set, 0,
                                NULL);
    }
    if (push_size)
        vkCmdPushConstants(cb, p->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, push_size, push);
    vkCmdDispatch(cb, gx, gy, gz);
    c->labels[c->n_dispatches] = c->next_label ? c->next_label : p->name;
    c->next_label = NULL;
    c->n_dispatches++;
    if (c->timestamps)
        vkCmdWriteTimestamp(cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, c->queries, c->n_dispatches);
}

static void barrier(VkCommandBuffer cb, VkPipelineStageFlags src, VkAccessFlags src_access,
                    VkPipelineStageFlags dst, VkAccessFlags dst_access)
{
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                          .srcAccessMask = src_access,
                          .dstAccessMask = dst_access};
    vkCmdPipelineBarrier(cb, src, dst, 0, 1, &mb, 0, NULL, 0, NULL);
}

void vkx_cmd_barrier(struct vkx_cmd *c)
{
    if (vkx_caught()) return;
    /* compute -> compute: reads and writes after it see the writes before it (and a write
     * after it waits for reads before it) */
    barrier(c->cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_WRITE_BIT,
            VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
            VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT);
}

void vkx_cmd_copy(struct vkx_cmd *c, struct vkx_view dst, struct vkx_view src)
{
    VkDeviceSize n = src.size ? src.size : src.buf->size - src.off;
    if (dst.off > dst.buf->size || n > dst.buf->size - dst.off || (dst.size && dst.size < n))
        vkx_die("copy of %llu bytes does not fit the destination", (unsigned long long)n);
    if (vkx_caught()) return;
    barrier(c->cb, STAGE_WORK, ACCESS_WRITES, VK_PIPELINE_STAGE_TRANSFER_BIT,
            VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT);
    VkBufferCopy r = {.srcOffset = src.off, .dstOffset = dst.off, .size = n};
    vkCmdCopyBuffer(c->cb, src.buf->buf, dst.buf->buf, 1, &r);
    barrier(c->cb, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT, STAGE_WORK,
            ACCESS_ALL);
}

void vkx_cmd_fill(struct vkx_cmd *c, struct vkx_view dst, uint32_t value)
{
    if (vkx_caught()) return;
    barrier(c->cb, STAGE_WORK, ACCESS_WRITES, VK_PIPELINE_STAGE_TRANSFER_BIT,
            VK_ACCESS_TRANSFER_WRITE_BIT);
    /* size 0: to the end of the buffer (VK_WHOLE_SIZE rounds down to a multiple of 4) */
    vkCmdFillBuffer(c->cb, dst.buf->buf, dst.off, dst.size ? dst.size : VK_WHOLE_SIZE, value);
    barrier(c->cb, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT, STAGE_WORK,
            ACCESS_ALL);
}

void vkx_cmd_end(struct vkx_ctx *ctx, struct vkx_cmd *c)
{
    vkx_use(ctx);
    if (vkx_caught()) return;
    /* the host reads mapped results after the fence */
    barrier(c->cb, STAGE_WORK, ACCESS_WRITES, VK_PIPELINE_STAGE_HOST_BIT, VK_ACCESS_HOST_READ_BIT);
    VKX_OK(vkEndCommandBuffer(c->cb));
}

void vkx_cmd_submit_wait(struct vkx_ctx *ctx, struct vkx_cmd *c)
{
    vkx_use(ctx);
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
                       .commandBufferCount = 1,
                       .pCommandBuffers = &c->cb};
    if (vkx_caught()) return; /* after a caught failure: nothing more */
    if (!VKX_OK(vkQueueSubmit(ctx->queue, 1, &si, c->fence)) ||
        !VKX_OK(vkWaitForFences(ctx->dev, 1, &c->fence, VK_TRUE, UINT64_MAX)) ||
        !VKX_OK(vkResetFences(ctx->dev, 1, &c->fence))) {
        (void)vkQueueWaitIdle(ctx->queue); /* nothing left in flight for vkx_cmd_destroy */
        return;
    }
    if (fault.inject != VK_SUCCESS && fault.after-- == 0) {
        VkResult r = fault.inject;
        fault.inject = VK_SUCCESS;
        CMD_OK(r);
    }
}

uint32_t vkx_cmd_read_times(struct vkx_ctx *ctx, struct vkx_cmd *c, double *ns, uint32_t max)
{
    vkx_use(ctx);
    uint32_t n = c->n_dispatches < max ? c->n_dispatches : max;
    if (!c->timestamps || !n) {
        for (uint32_t i = 0; i < n; i++) ns[i] = 0;
        return n;
    }
    uint64_t *t = malloc((n + 1) * sizeof *t); /* profiling only: not on the hot path */
    VkResult r = t ? vkGetQueryPoolResults(ctx->dev, c->queries, 0, n + 1, (n + 1) * sizeof *t, t,
                                           sizeof *t,
                                           VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT)
                   : VK_ERROR_OUT_OF_HOST_MEMORY;
    if (!CMD_OK(r)) { /* caught: no times */
        free(t);
        for (uint32_t i = 0; i < n; i++) ns[i] = 0;
        return n;
    }
    uint64_t mask = ctx->timestamp_bits >= 64 ? ~0ull : (1ull << ctx->timestamp_bits) - 1;
    for (uint32_t i = 0; i < n; i++)
        ns[i] = (double)((t[i + 1] - t[i]) & mask) * (double)ctx->caps.timestamp_period_ns;
    free(t);
    return n;
}

/* vkx_pipeline.c: compute pipelines from embedded SPIR-V (specialization constants, required
 * subgroup size, push-descriptor templates) and the on-disk pipeline cache. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "platform.h"
#include "vkx_internal.h"
#include "vkx_selftest.h"

/* ---- on-disk pipeline cache ----------------------------------------------------------------
 * File <dir>/pipelines-<pipelineCacheUUID hex>.bin: our header, then the driver's cache data.
 * The driver data starts with Vulkan's own header (size, version, vendor, device, UUID); both
 * headers are checked before the data is handed to the driver, and a file that fails any check
 * is ignored (and replaced on exit). */

#define PCACHE_MAGIC 0x4350424eu /* "NBPC" little-endian */
#define PCACHE_VERSION 1u

struct pcache_hdr {
    uint32_t magic, version;
    uint32_t vendor_id, device_id, driver_version, pad;
    uint8_t uuid[VK_UUID_SIZE];
    uint64_t data_size; /* bytes of driver data after this header */
    uint64_t sum;       /* FNV-1a of the driver data */
};

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Checks a cache file's contents against this device; returns the driver data or NULL. */
static const uint8_t *pcache_check(const struct vkx_caps *c, const uint8_t *f, size_t n,
                                   size_t *data_size, uint64_t *sum)
{
    struct pcache_hdr h;
    if (n < sizeof h) return NULL;
    memcpy(&h, f, sizeof h);
    if (h.magic != PCACHE_MAGIC || h.version != PCACHE_VERSION || h.vendor_id != c->vendor_id ||
        h.device_id != c->device_id || h.driver_version != c->driver_version ||
        memcmp(h.uuid, c->pipeline_uuid, VK_UUID_SIZE) != 0 || h.data_size != n - sizeof h)
        return NULL;
    const uint8_t *d = f + sizeof h;
    size_t dn = (size_t)h.data_size;
    /* Vulkan's header: headerSize, headerVersion, vendorID, deviceID, pipelineCacheUUID */
    if (dn < 16 + VK_UUID_SIZE || rd32(d) < 16 + VK_UUID_SIZE || rd32(d) > dn ||
        rd32(d + 4) != VK_PIPELINE_CACHE_HEADER_VERSION_ONE || rd32(d + 8) != c->vendor_id ||
        rd32(d + 12) != c->device_id || memcmp(d + 16, c->pipeline_uuid, VK_UUID_SIZE) != 0)
        return NULL;
    if (fnv1a(d, dn) != h.sum) return NULL;
    *data_size = dn;
    *sum = h.sum;
    return d;
}

int vkx_pcache_open(struct vkx_ctx *ctx, const char *dir, char *err, size_t errlen)
{
    const struct vkx_caps *c = &ctx->caps;
    ctx->pipeline_cache_path[0] = 0;
    if (dir && *dir) {
        char hex[2 * VK_UUID_SIZE + 1];
        for (unsigned i = 0; i < VK_UUID_SIZE; i++) snprintf(hex + 2 * i, 3, "%02x", c->pipeline_uuid[i]);
        int w = snprintf(ctx->pipeline_cache_path, sizeof ctx->pipeline_cache_path,
                         "%s/pipelines-%s.bin", dir, hex);
        if (w < 0 || (size_t)w >= sizeof ctx->pipeline_cache_path) ctx->pipeline_cache_path[0] = 0;
    }
    struct plat_map m = {0};
    char ignored[256];
    const uint8_t *data = NULL;
    size_t data_size = 0;
    if (ctx->pipeline_cache_path[0] &&
        plat_map_file(&m, ctx->pipeline_cache_path, ignored, sizeof ignored) == 0)
        data = pcache_check(c, m.data, m.size, &data_size, &ctx->pcache_sum);
    VkPipelineCacheCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO,
                                    .initialDataSize = data ? data_size : 0,
                                    .pInitialData = data};
    VkResult r = VKX_CALL(vkCreatePipelineCache(ctx->dev, &ci, NULL, &ctx->pipeline_cache));
    if (r != VK_SUCCESS && data) { /* the driver refused the data: start empty */
        ci.initialDataSize = 0;
        ci.pInitialData = NULL;
        data = NULL;
        r = vkCreatePipelineCache(ctx->dev, &ci, NULL, &ctx->pipeline_cache);
    }
    if (r != VK_SUCCESS) { /* out of memory, a lost device */
        ctx->pipeline_cache = VK_NULL_HANDLE;
        plat_unmap(&m);
        vkx_errf(err, errlen, "vkCreatePipelineCache failed: %s", vkx_result_name(r));
        return -1;
    }
    /* "loaded" means pipelines were loaded: lavapipe, for one, keeps no pipelines in its cache
     * and writes only Vulkan's header */
    ctx->pcache_loaded = data != NULL && data_size > rd32(data);
    if (!data) ctx->pcache_sum = 0;
    plat_unmap(&m);
    return 0;
}

/* Writes the cache to a temporary file and renames it over the old one (atomic for readers). */
static void pcache_save(struct vkx_ctx *ctx)
{
    size_t n = 0;
    if (vkGetPipelineCacheData(ctx->dev, ctx->pipeline_cache, &n, NULL) != VK_SUCCESS || !n) return;
    uint8_t *buf = malloc(sizeof(struct pcache_hdr) + n);
    if (!buf) return;
    uint8_t *d = buf + sizeof(struct pcache_hdr);
    VkResult r = vkGetPipelineCacheData(ctx->dev, ctx->pipeline_cache, &n, d);
    if (r != VK_SUCCESS) { /* VK_INCOMPLETE cannot happen: nothing was added in between */
        free(buf);
        return;
    }
    const struct vkx_caps *c = &ctx->caps;
    struct pcache_hdr h = {.magic = PCACHE_MAGIC,
                           .version = PCACHE_VERSION,
                           .vendor_id = c->vendor_id,
                           .device_id = c->device_id,
                           .driver_version = c->driver_version,
                           .data_size = n,
                           .sum = fnv1a(d, n)};
    memcpy(h.uuid, c->pipeline_uuid, VK_UUID_SIZE);
    if (ctx->pcache_loaded && h.sum == ctx->pcache_sum) { /* unchanged since loading */
        free(buf);
        return;
    }
    memcpy(buf, &h, sizeof h);
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp%llu", ctx->pipeline_cache_path,
             (unsigned long long)(plat_now_ns() % 1000000000ull));
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        free(buf);
        return; /* a read-only cache folder is not an error */
    }
    bool ok = fwrite(buf, 1, sizeof h + n, f) == sizeof h + n;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, ctx->pipeline_cache_path) != 0) remove(tmp);
    free(buf);
}

bool vkx_pipeline_cache_effective(struct vkx_ctx *ctx)
{
    vkx_use(ctx);
    size_t n = 0;
    if (vkGetPipelineCacheData(ctx->dev, ctx->pipeline_cache, &n, NULL) != VK_SUCCESS || !n)
        return false;
    uint8_t *d = malloc(n);
    if (!d) return false;
    bool more = vkGetPipelineCacheData(ctx->dev, ctx->pipeline_cache, &n, d) == VK_SUCCESS &&
                n >= 4 && n > rd32(d);
    free(d);
    return more;
}

void vkx_pcache_close(struct vkx_ctx *ctx)
{
    if (!ctx->pipeline_cache) return;
    if (ctx->pipeline_cache_path[0]) pcache_save(ctx);
    vkDestroyPipelineCache(ctx->dev, ctx->pipeline_cache, NULL);
    ctx->pipeline_cache = VK_NULL_HANDLE;
}

/* ---- pipelines ----------------------------------------------------------------------------- */

static vkx_spv_override_fn spv_override;
static void *spv_override_user;

void vkx_set_spv_override(vkx_spv_override_fn fn, void *user)
{
    spv_override = fn;
    spv_override_user = user;
}

uint32_t vkx_subgroup_size_pick(const struct vkx_ctx *ctx, uint32_t want)
{
    const struct vkx_caps *c = &ctx->caps;
    if (!vkx_has(ctx, VKX_FEAT_SGSIZE) || !c->subgroup_min || c->subgroup_max < c->subgroup_min)
        return 0;
    uint32_t s = c->subgroup_min; /* a power of two, as is max */
    while (s < want && s * 2 <= c->subgroup_max)
        s *= 2;
    return s;
}

/* A layout object the device could not make (out of host or device memory, a lost device): p
 * destroyed, -1 with a message. */
static int object_failed(struct vkx_ctx *ctx, struct vkx_pipeline *p, const char *name,
                         const char *call, VkResult r, char *err, size_t errlen)
{
    vkx_errf(err, errlen, "pipeline %s: %s failed: %s", name, call, vkx_result_name(r));
    vkx_pipeline_destroy(ctx, p);
    return -1;
}

int vkx_pipeline_create(struct vkx_ctx *ctx, struct vkx_pipeline *p,
                        const struct vkx_pipeline_desc *d, char *err, size_t errlen)
{
    vkx_use(ctx);
    const struct vkx_caps *c = &ctx->caps;
    memset(p, 0, sizeof *p);
    const char *name = d->name ? d->name : "(unnamed)";
    p->name = name;
    if (d->n_bindings > VKX_MAX_BINDINGS || d->n_spec > VKX_MAX_SPEC || d->push_size > 128 ||
        d->push_size % 4 || d->push_size > c->max_push_constants || !d->spv || !d->spv_size ||
        d->spv_size % 4) {
        vkx_errf(err, errlen, "pipeline %s: bad description (bindings %u, spec %u, push %u bytes, "
                              "spir-v %zu bytes)", name, d->n_bindings, d->n_spec, d->push_size,
                 d->spv_size);
        return -1;
    }
    if (vkx_fault("nobuild", name)) {
        vkx_errf(err, errlen, "pipeline %s: refused by the driver (NIBBLE_FAULT=nobuild:%s)",
                 name, name);
        return -1;
    }
    if (d->subgroup_size && !c->subgroup_size_control) {
        vkx_errf(err, errlen, "pipeline %s: needs subgroup size %u but the device cannot require "
                              "one (default size %u)", name, d->subgroup_size, c->subgroup_size);
        return -1;
    }
    if (d->subgroup_size && (d->subgroup_size < c->subgroup_min || d->subgroup_size > c->subgroup_max)) {
        vkx_errf(err, errlen, "pipeline %s: subgroup size %u outside the device's %u..%u", name,
                 d->subgroup_size, c->subgroup_min, c->subgroup_max);
        return -1;
    }
    bool push = vkx_has(ctx, VKX_FEAT_PUSHDESC) && d->n_bindings > 0;
    p->n_bindings = d->n_bindings;
    p->push_size = d->push_size;
    p->texel_bindings = d->texel_bindings;

    VkDescriptorSetLayoutBinding lb[VKX_MAX_BINDINGS];
    for (uint32_t i = 0; i < d->n_bindings; i++)
        lb[i] = (VkDescriptorSetLayoutBinding){.binding = i,
                                               .descriptorType = vkx_binding_type(p, i),
                                               .descriptorCount = 1,
                                               .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT};
    VkDescriptorSetLayoutCreateInfo dci = {
        .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
        .flags = push ? VK_DESCRIPTOR_SET_LAYOUT_CREATE_PUSH_DESCRIPTOR_BIT_KHR : 0,
        .bindingCount = d->n_bindings,
        .pBindings = lb};
    VkResult lr = VKX_CALL(vkCreateDescriptorSetLayout(ctx->dev, &dci, NULL, &p->dsl));
    if (lr != VK_SUCCESS) {
        p->dsl = VK_NULL_HANDLE;
        return object_failed(ctx, p, name, "vkCreateDescriptorSetLayout", lr, err, errlen);
    }
    VkPushConstantRange pr = {.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT, .size = d->push_size};
    VkPipelineLayoutCreateInfo lci = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
                                      .setLayoutCount = 1,
                                      .pSetLayouts = &p->dsl,
                                      .pushConstantRangeCount = d->push_size ? 1 : 0,
                                      .pPushConstantRanges = &pr};
    lr = VKX_CALL(vkCreatePipelineLayout(ctx->dev, &lci, NULL, &p->layout));
    if (lr != VK_SUCCESS) {
        p->layout = VK_NULL_HANDLE;
        return object_failed(ctx, p, name, "vkCreatePipelineLayout", lr, err, errlen);
    }

    const uint32_t *code = d->spv;
    size_t code_size = d->spv_size, alt_size = 0;
    const uint32_t *alt = spv_override ? spv_override(spv_override_user, name, d->spv,
                                                      d->spv_size, &alt_size)
                                       : NULL;
    if (alt && alt_size && alt_size % 4 == 0) {
        code = alt;
        code_size = alt_size;
    }
    VkShaderModuleCreateInfo mci = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
                                    .codeSize = code_size,
                                    .pCode = code};
    VkShaderModule mod;
    VkResult r = VKX_CALL(vkCreateShaderModule(ctx->dev, &mci, NULL, &mod));
    if (r != VK_SUCCESS) {
        vkx_errf(err, errlen, "pipeline %s: vkCreateShaderModule failed: %s", name,
                 vkx_result_name(r));
        vkx_pipeline_destroy(ctx, p);
        return -1;
    }

    /* The caller's constants 0..n_spec-1, then NB_SOFT_HALF (shaders/half.glsl; a module
       without that constant ignores it). */
    VkSpecializationMapEntry se[VKX_MAX_SPEC + 1];
    uint32_t sv[VKX_MAX_SPEC + 1];
    for (uint32_t i = 0; i < d->n_spec; i++) {
        se[i] = (VkSpecializationMapEntry){.constantID = i, .offset = 4 * i, .size = 4};
        sv[i] = d->spec[i];
    }
    se[d->n_spec] = (VkSpecializationMapEntry){
        .constantID = VKX_SPEC_SOFT_HALF, .offset = 4 * d->n_spec, .size = sizeof(VkBool32)};
    sv[d->n_spec] = vkx_has(ctx, VKX_FEAT_HALFCVT) ? VK_FALSE : VK_TRUE;
    VkSpecializationInfo si = {.mapEntryCount = d->n_spec + 1,
                               .pMapEntries = se,
                               .dataSize = 4 * ((size_t)d->n_spec + 1),
                               .pData = sv};
    VkPipelineShaderStageRequiredSubgroupSizeCreateInfo rs = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_REQUIRED_SUBGROUP_SIZE_CREATE_INFO,
        .requiredSubgroupSize = d->subgroup_size};
    VkPipelineCreationFeedback fb = {0}, fb_stage = {0};
    VkPipelineCreationFeedbackCreateInfo fbi = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_CREATION_FEEDBACK_CREATE_INFO,
        .pPipelineCreationFeedback = &fb,
        .pipelineStageCreationFeedbackCount = 1,
        .pPipelineStageCreationFeedbacks = &fb_stage};
    VkComputePipelineCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .pNext = ctx->creation_feedback ? &fbi : NULL,
        .flags = vkx_pstats_flags(ctx),
        .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                  .pNext = d->subgroup_size ? &rs : NULL,
                  .flags = d->full_subgroups && ctx->full_subgroups
                               ? VK_PIPELINE_SHADER_STAGE_CREATE_REQUIRE_FULL_SUBGROUPS_BIT
                               : 0,
                  .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                  .module = mod,
                  .pName = "main",
                  .pSpecializationInfo = &si},
        .layout = p->layout};
    r = VKX_CALL(vkCreateComputePipelines(ctx->dev, ctx->pipeline_cache, 1, &ci, NULL, &p->pipe));
    vkDestroyShaderModule(ctx->dev, mod, NULL);
    if (r != VK_SUCCESS) {
        p->pipe = VK_NULL_HANDLE;
        vkx_errf(err, errlen, "pipeline %s: the driver refused it: %s", name, vkx_result_name(r));
        vkx_pipeline_destroy(ctx, p);
        return -1;
    }
    /* Compiled unless the driver says the cache hit; without feedback, guess from whether the
     * cache had data when it was loaded. */
    bool hit = ctx->pcache_loaded;
    if (ctx->creation_feedback && (fb.flags & VK_PIPELINE_CREATION_FEEDBACK_VALID_BIT))
        hit = fb.flags & VK_PIPELINE_CREATION_FEEDBACK_APPLICATION_PIPELINE_CACHE_HIT_BIT;
    if (!hit) ctx->pipelines_compiled++;
    ctx->pipelines_created++;
    vkx_pstats_capture(ctx, p->pipe, d);

    if (push) {
        VkDescriptorUpdateTemplateEntry te[VKX_MAX_BINDINGS];
        for (uint32_t i = 0; i < d->n_bindings; i++)
            te[i] = (VkDescriptorUpdateTemplateEntry){
                .dstBinding = i,
                .descriptorCount = 1,
                .descriptorType = vkx_binding_type(p, i),
                .offset = i * sizeof(union vkx_desc),
                .stride = sizeof(union vkx_desc)};
        VkDescriptorUpdateTemplateCreateInfo tci = {
            .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_UPDATE_TEMPLATE_CREATE_INFO,
            .descriptorUpdateEntryCount = d->n_bindings,
            .pDescriptorUpdateEntries = te,
            .templateType = VK_DESCRIPTOR_UPDATE_TEMPLATE_TYPE_PUSH_DESCRIPTORS_KHR,
            .descriptorSetLayout = p->dsl,
            .pipelineBindPoint = VK_PIPELINE_BIND_POINT_COMPUTE,
            .pipelineLayout = p->layout,
            .set = 0};
        lr = VKX_CALL(vkCreateDescriptorUpdateTemplate(ctx->dev, &tci, NULL, &p->tmpl));
        if (lr != VK_SUCCESS) {
            p->tmpl = VK_NULL_HANDLE;
            return object_failed(ctx, p, name, "vkCreateDescriptorUpdateTemplate", lr, err,
                                 errlen);
        }
    }
    return 0;
}

void vkx_pipeline_destroy(struct vkx_ctx *ctx, struct vkx_pipeline *p)
{
    vkx_use(ctx);
    if (p->tmpl) vkDestroyDescriptorUpdateTemplate(ctx->dev, p->tmpl, NULL);
    vkx_pstats_forget(ctx, p->pipe);
    if (p->pipe) vkDestroyPipeline(ctx->dev, p->pipe, NULL);
    if (p->layout) vkDestroyPipelineLayout(ctx->dev, p->layout, NULL);
    if (p->dsl) vkDestroyDescriptorSetLayout(ctx->dev, p->dsl, NULL);
    memset(p, 0, sizeof *p);
}

/* vkx_caps.c: the capability probe of a physical device (vkx_internal.h): which feature
 * structs and extensions its Vulkan version offers, its features, limits, subgroup and integer
 * dot product properties, memory heaps and compute queue, into struct vkx_caps. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vkx_internal.h"

#define VKX_EXT_COOPMAT "VK_KHR_cooperative_matrix" /* newer than our headers */

static uint32_t min_u32(uint32_t a, uint32_t b) { return a < b ? a : b; }

bool vkx_has_ext(const VkExtensionProperties *e, uint32_t n, const char *name)
{
    for (uint32_t i = 0; i < n; i++)
        if (!strcmp(e[i].extensionName, name)) return true;
    return false;
}

void vkx_feats_chain(struct vkx_feats *f, const struct vkx_devinfo *di)
{
    void **next = &f->f2.pNext;
    f->f2.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2;
    f->s16.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES;
    *next = &f->s16;
    next = &f->s16.pNext;
    if (di->s8) {
        f->s8.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_8BIT_STORAGE_FEATURES;
        *next = &f->s8;
        next = &f->s8.pNext;
    }
    if (di->f16i8) {
        f->f16i8.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES;
        *next = &f->f16i8;
        next = &f->f16i8.pNext;
    }
    if (di->ssc) {
        f->ssc.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES;
        *next = &f->ssc;
        next = &f->ssc.pNext;
    }
    if (di->idot) {
        f->idot.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES;
        *next = &f->idot;
        next = &f->idot.pNext;
    }
    *next = NULL;
}

int vkx_devinfo_init(struct vkx_devinfo *di, VkPhysicalDevice pd, uint32_t inst_api, char *err,
                     size_t errlen)
{
    memset(di, 0, sizeof *di);
    VkPhysicalDeviceProperties p;
    vkGetPhysicalDeviceProperties(pd, &p);
    di->api = min_u32(min_u32(p.apiVersion, inst_api), VKX_API_MAX);
    VkResult r = VKX_CALL(vkEnumerateDeviceExtensionProperties(pd, NULL, &di->n_ext, NULL));
    di->ext = r ? NULL : calloc(di->n_ext ? di->n_ext : 1, sizeof *di->ext);
    if (!r) r = di->ext ? vkEnumerateDeviceExtensionProperties(pd, NULL, &di->n_ext, di->ext)
                        : VK_ERROR_OUT_OF_HOST_MEMORY;
    if (r != VK_SUCCESS) { /* VK_INCOMPLETE: the list changed in between */
        vkx_errf(err, errlen, "vkEnumerateDeviceExtensionProperties failed: %s",
                 vkx_result_name(r));
        free(di->ext);
        di->ext = NULL;
        return -1;
    }
    const uint32_t v12 = VK_API_VERSION_1_2, v13 = VK_API_VERSION_1_3;
#define PROBE(field, ver, name)                                                                    \
    di->field##_ext = di->api < (ver) && vkx_has_ext(di->ext, di->n_ext, name);                    \
    di->field = di->api >= (ver) || di->field##_ext;
    PROBE(s8, v12, VK_KHR_8BIT_STORAGE_EXTENSION_NAME)
    PROBE(f16i8, v12, VK_KHR_SHADER_FLOAT16_INT8_EXTENSION_NAME)
    PROBE(driver_props, v12, VK_KHR_DRIVER_PROPERTIES_EXTENSION_NAME)
    PROBE(ssc, v13, VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME)
    PROBE(idot, v13, VK_KHR_SHADER_INTEGER_DOT_PRODUCT_EXTENSION_NAME)
    PROBE(feedback, v13, VK_EXT_PIPELINE_CREATION_FEEDBACK_EXTENSION_NAME)
#undef PROBE
    return 0;
}

void vkx_caps_probe(struct vkx_caps *c, struct vkx_feats *f, const struct vkx_devinfo *di,
                    VkPhysicalDevice pd, uint32_t *queue_family, uint32_t *ts_bits)
{
    memset(c, 0, sizeof *c);
    memset(f, 0, sizeof *f);
    vkx_feats_chain(f, di);
    vkGetPhysicalDeviceFeatures2(pd, &f->f2);

    VkPhysicalDeviceSubgroupProperties sg = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
    VkPhysicalDeviceMaintenance3Properties m3 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES, .pNext = &sg};
    VkPhysicalDeviceDriverProperties drv = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
    VkPhysicalDeviceSubgroupSizeControlProperties sscp = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_PROPERTIES};
    VkPhysicalDeviceShaderIntegerDotProductProperties idp = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_PROPERTIES};
    VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2,
                                      .pNext = &m3};
    void **next = &sg.pNext;
    if (di->driver_props) {
        *next = &drv;
        next = &drv.pNext;
    }
    if (di->ssc) {
        *next = &sscp;
        next = &sscp.pNext;
    }
    if (di->idot) {
        *next = &idp;
        next = &idp.pNext;
    }
    vkGetPhysicalDeviceProperties2(pd, &p2);
    const VkPhysicalDeviceProperties *p = &p2.properties;
    const VkPhysicalDeviceLimits *l = &p->limits;

    snprintf(c->name, sizeof c->name, "%s", p->deviceName);
    c->type = p->deviceType;
    c->vendor_id = p->vendorID;
    c->device_id = p->deviceID;
    c->api_version = p->apiVersion;
    c->driver_version = p->driverVersion;
    memcpy(c->pipeline_uuid, p->pipelineCacheUUID, VK_UUID_SIZE);
    if (di->driver_props) {
        c->driver_id = drv.driverID;
        snprintf(c->driver_name, sizeof c->driver_name, "%s", drv.driverName);
        snprintf(c->driver_info, sizeof c->driver_info, "%s", drv.driverInfo);
    }

    bool compute_sg = sg.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT;
    c->subgroup_size = sg.subgroupSize;
    c->subgroup_basic = compute_sg && (sg.supportedOperations & VK_SUBGROUP_FEATURE_BASIC_BIT);
    c->subgroup_vote = compute_sg && (sg.supportedOperations & VK_SUBGROUP_FEATURE_VOTE_BIT);
    c->subgroup_arith =
        compute_sg && (sg.supportedOperations & VK_SUBGROUP_FEATURE_ARITHMETIC_BIT);
    c->subgroup_ballot = compute_sg && (sg.supportedOperations & VK_SUBGROUP_FEATURE_BALLOT_BIT);
    c->subgroup_shuffle =
        compute_sg && (sg.supportedOperations & VK_SUBGROUP_FEATURE_SHUFFLE_BIT);
    c->subgroup_size_control = di->ssc && f->ssc.subgroupSizeControl &&
                               (sscp.requiredSubgroupSizeStages & VK_SHADER_STAGE_COMPUTE_BIT);
    c->subgroup_min = c->subgroup_size_control ? sscp.minSubgroupSize : sg.subgroupSize;
    c->subgroup_max = c->subgroup_size_control ? sscp.maxSubgroupSize : sg.subgroupSize;

    c->fp16 = di->f16i8 && f->f16i8.shaderFloat16;
    c->int8 = di->f16i8 && f->f16i8.shaderInt8;
    c->int16 = f->f2.features.shaderInt16;
    c->int64 = f->f2.features.shaderInt64;
    c->storage16 = f->s16.storageBuffer16BitAccess;
    c->storage8 = di->s8 && f->s8.storageBuffer8BitAccess;
    c->int_dot = di->idot && f->idot.shaderIntegerDotProduct;
    /* the signed form: the one the int8 products use (OpSDot, shaders/matvec_int8.comp) */
    c->int_dot_4x8_accel = c->int_dot && idp.integerDotProduct4x8BitPackedSignedAccelerated;
    c->coopmat = vkx_has_ext(di->ext, di->n_ext, VKX_EXT_COOPMAT);
    c->push_desc = vkx_has_ext(di->ext, di->n_ext, VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME);

    c->max_shared = l->maxComputeSharedMemorySize;
    c->max_wg_invocations = l->maxComputeWorkGroupInvocations;
    for (int i = 0; i < 3; i++) {
        c->max_wg_size[i] = l->maxComputeWorkGroupSize[i];
        c->max_wg_count[i] = l->maxComputeWorkGroupCount[i];
    }
    c->max_storage_range = l->maxStorageBufferRange;
    c->max_texel_elements = l->maxTexelBufferElements;
    VkFormatProperties fp;
    vkGetPhysicalDeviceFormatProperties(pd, VK_FORMAT_R32G32B32A32_UINT, &fp);
    c->texel_u32x4 = (fp.bufferFeatures & VK_FORMAT_FEATURE_UNIFORM_TEXEL_BUFFER_BIT) != 0;
    c->max_alloc = m3.maxMemoryAllocationSize;
    c->min_storage_align = (uint32_t)l->minStorageBufferOffsetAlignment;
    c->max_push_constants = l->maxPushConstantsSize;

    VkPhysicalDeviceMemoryProperties mp;
    vkGetPhysicalDeviceMemoryProperties(pd, &mp);
    uint32_t big = UINT32_MAX;
    for (uint32_t h = 0; h < mp.memoryHeapCount; h++)
        if ((mp.memoryHeaps[h].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) &&
            mp.memoryHeaps[h].size > c->device_local_bytes) {
            c->device_local_bytes = mp.memoryHeaps[h].size;
            big = h;
        }
    /* UMA: device-local memory the host can map, on the main heap. A discrete GPU with
     * resizable BAR has such types too, but reading them from the host crawls: not UMA. */
    const VkMemoryPropertyFlags uma_flags = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT |
                                            VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT |
                                            VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    for (uint32_t t = 0; t < mp.memoryTypeCount; t++)
        if ((mp.memoryTypes[t].propertyFlags & uma_flags) == uma_flags &&
            mp.memoryTypes[t].heapIndex == big && c->type != VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU)
            c->uma = true;

    /* The queue: the first family with compute (usually the universal one). */
    uint32_t nq = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &nq, NULL);
    VkQueueFamilyProperties qf[32];
    nq = min_u32(nq, 32);
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &nq, qf);
    *queue_family = UINT32_MAX;
    for (uint32_t i = 0; i < nq && *queue_family == UINT32_MAX; i++)
        if (qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT) *queue_family = i;
    *ts_bits = *queue_family != UINT32_MAX ? qf[*queue_family].timestampValidBits : 0;
    c->timestamps = *ts_bits > 0 && l->timestampPeriod > 0;
    c->timestamp_period_ns = l->timestampPeriod;
}

/* vkx_internal.h: what the vkx_*.c files share and nobody else needs. */
#ifndef NB_VKX_INTERNAL_H
#define NB_VKX_INTERNAL_H

#include "vkx.h"

/* The staging ring used by vkx_upload/vkx_download for buffers that are not mapped: two halves
 * so the host fills (or drains) one while the GPU copies the other. */
#define VKX_STAGING_BYTES (8u << 20) /* both halves together */
struct vkx_staging {
    struct vkx_buffer buf; /* (VKX_STAGING_BYTES) host-visible, mapped */
    VkCommandBuffer cb[2];
    VkFence fence[2];
    bool busy[2]; /* half i has a submission in flight */
};

/* volk keeps one set of device-level function pointers. With several contexts alive (tests make
 * a second one with features disabled) each vkx call that reaches the device first makes sure the
 * pointers are its own device's: a pointer compare when nothing changed. */
extern VkDevice vkx_loaded_dev_;
static inline void vkx_use(const struct vkx_ctx *ctx)
{
    if (vkx_loaded_dev_ != ctx->dev) {
        volkLoadDevice(ctx->dev);
        vkx_loaded_dev_ = ctx->dev;
    }
}

/* What a dispatch hands the driver per binding (push-descriptor template data). */
union vkx_desc {
    VkDescriptorBufferInfo buf; /* storage buffers */
    VkBufferView texel;         /* uniform texel buffers */
};
static inline VkDescriptorType vkx_binding_type(const struct vkx_pipeline *p, uint32_t i)
{
    return (p->texel_bindings >> i) & 1u ? VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER
                                         : VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
}

/* Fault handling (vkx_cmd.c). Every Vulkan call that can fail with a result an app may meet
 * (out of memory, a lost device) is made through VKX_CALL, which hands it to the test hooks
 * first (vkx_inject_call_fault may fail it without making it; vkx_call_trace counts it by
 * name). VKX_OK(call) is VKX_CALL(call) == VK_SUCCESS, where a failure aborts through
 * vkx_fatal, or under vkx_cmd_catch(true) is kept (the first one) and returns false;
 * vkx_caught() is true once one was kept: recording, submission and uploads are skipped. */
extern _Thread_local VkResult vkx_hook_r_;
VkResult vkx_hook(const char *call);
bool vkx_ok(VkResult r, const char *call, const char *file, int line);
bool vkx_caught(void);
#define VKX_CALL(call) ((vkx_hook_r_ = vkx_hook(#call)) != VK_SUCCESS ? vkx_hook_r_ : (call))
#define VKX_OK(call) vkx_ok(VKX_CALL(call), #call, __FILE__, __LINE__)

/* Formats a one-line message into err (which may be NULL). */
void vkx_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Aborts with a message: for programming errors (wrong binding count, size out of range). */
_Noreturn void vkx_die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A memory type index among `bits` with all of `need`, preferring `want`, avoiding `avoid`
 * where possible; UINT32_MAX if none has `need`. */
uint32_t vkx_find_mem_type(const struct vkx_ctx *ctx, uint32_t bits, VkMemoryPropertyFlags need,
                           VkMemoryPropertyFlags want, VkMemoryPropertyFlags avoid);

/* The capability probe (vkx_caps.c). */
#define VKX_API_MAX VK_MAKE_API_VERSION(0, 1, 3, 0) /* the newest version nibble asks for */
/* Feature structs, chained only where the device's version or an extension provides them. */
struct vkx_feats {
    VkPhysicalDeviceFeatures2 f2;
    VkPhysicalDevice16BitStorageFeatures s16;
    VkPhysicalDevice8BitStorageFeatures s8;
    VkPhysicalDeviceShaderFloat16Int8Features f16i8;
    VkPhysicalDeviceSubgroupSizeControlFeatures ssc;
    VkPhysicalDeviceShaderIntegerDotProductFeatures idot;
};

/* Which structs (and extensions) this device has, decided once from version and extensions. */
struct vkx_devinfo {
    uint32_t api; /* min(device, instance, 1.3) */
    VkExtensionProperties *ext;
    uint32_t n_ext;
    bool s8, f16i8, ssc, idot, driver_props, feedback; /* struct or extension usable */
    bool s8_ext, f16i8_ext, ssc_ext, idot_ext, driver_props_ext, feedback_ext; /* need the ext */
};

bool vkx_has_ext(const VkExtensionProperties *e, uint32_t n, const char *name);
/* Chains into f->f2 the feature structs di has (their sType and pNext set, nothing else). */
void vkx_feats_chain(struct vkx_feats *f, const struct vkx_devinfo *di);
/* Fills di for pd (di->ext malloc'd: the caller frees it); 0, or -1 with a message. */
int vkx_devinfo_init(struct vkx_devinfo *di, VkPhysicalDevice pd, uint32_t inst_api, char *err,
                     size_t errlen);
/* Reads pd's features into f and its capabilities into c; the first queue family with compute
 * into *queue_family (UINT32_MAX: none) and its timestamp bits into *ts_bits. */
void vkx_caps_probe(struct vkx_caps *c, struct vkx_feats *f, const struct vkx_devinfo *di,
                    VkPhysicalDevice pd, uint32_t *queue_family, uint32_t *ts_bits);

/* Pipeline cache (vkx_pipeline.c): loads <dir>/pipelines-<uuid>.bin into ctx->pipeline_cache
 * (0, or -1 with a message when the device cannot make a cache), and writes it back. */
int vkx_pcache_open(struct vkx_ctx *ctx, const char *dir, char *err, size_t errlen);
void vkx_pcache_close(struct vkx_ctx *ctx);

/* Compiler statistics (vkx_pipeline_stats.c): init allocates ctx->pstats (opts.pipeline_stats);
 * enable adds the extension to exts[*n] and its feature struct to *chain where offered; flags is
 * the pipeline creation flag to use; capture keeps the statistics of a pipeline just built and
 * forget drops them when it is destroyed. All do nothing without ctx->pstats. */
int vkx_pstats_init(struct vkx_ctx *ctx);
void vkx_pstats_free(struct vkx_ctx *ctx);
void vkx_pstats_enable(struct vkx_ctx *ctx, const VkExtensionProperties *ext, uint32_t n_ext,
                       const char **exts, uint32_t *n, void **chain);
VkPipelineCreateFlags vkx_pstats_flags(const struct vkx_ctx *ctx);
void vkx_pstats_capture(struct vkx_ctx *ctx, VkPipeline pipe, const struct vkx_pipeline_desc *d);
void vkx_pstats_forget(struct vkx_ctx *ctx, VkPipeline pipe);

/* Staging (vkx_mem.c): frees ctx->staging. */
void vkx_staging_destroy(struct vkx_ctx *ctx);

#endif

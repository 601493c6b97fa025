/* vkx_device.c: Vulkan instance, device choice, feature enabling (the capability probe is
 * vkx_caps.c), NIBBLE_DISABLE, the validation messenger, the device line and the capability
 * list. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "platform.h"
#include "vkx_internal.h"
#include "vkx_quirks.h"

#define VKX_API_MIN VK_MAKE_API_VERSION(0, 1, 1, 0)
#define VKX_EXT_PORTABILITY_SUBSET "VK_KHR_portability_subset"

/* ---- validation messenger ------------------------------------------------------------------ */

static atomic_uint val_msgs;
VkDevice vkx_loaded_dev_;

uint32_t vkx_validation_messages(void) { return atomic_load(&val_msgs); }

static VKAPI_ATTR VkBool32 VKAPI_CALL debug_cb(VkDebugUtilsMessageSeverityFlagBitsEXT sev,
                                               VkDebugUtilsMessageTypeFlagsEXT type,
                                               const VkDebugUtilsMessengerCallbackDataEXT *d,
                                               void *user)
{
    (void)user;
    if (!(sev & (VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
                 VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT)))
        return VK_FALSE;
    const char *id = d && d->pMessageIdName ? d->pMessageIdName : "";
    const char *msg = d && d->pMessage ? d->pMessage : "(no message)";
    /* The loader's own messages ("Found no drivers!", a broken implicit layer elsewhere on the
     * system such as Mesa's device_select) say nothing about our use of Vulkan, and what matters
     * of them reaches the user as vkx_create's one-line error: neither print nor count them. */
    if (!strcmp(id, "Loader Message")) return VK_FALSE;
    atomic_fetch_add(&val_msgs, 1);
    fprintf(stderr, "vulkan %s%s: %s\n",
            type & VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT ? "performance " : "",
            sev & VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT ? "error" : "warning", msg);
    return VK_FALSE;
}

static VkDebugUtilsMessengerCreateInfoEXT messenger_info(void)
{
    VkDebugUtilsMessengerCreateInfoEXT mi = {
        .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
        .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
                           VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT,
        .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT,
        .pfnUserCallback = debug_cb,
    };
    return mi;
}

/* ---- small helpers ------------------------------------------------------------------------- */

static const char *type_name(VkPhysicalDeviceType t)
{
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return "discrete";
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return "integrated";
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return "virtual";
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return "cpu";
    default: return "other";
    }
}

/* Default preference: discrete > integrated > virtual > CPU > other. */
static int type_rank(VkPhysicalDeviceType t)
{
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return 4;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return 3;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return 2;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return 1;
    default: return 0;
    }
}

/* NIBBLE_DISABLE / opts.disable: "fp16,int8,subgroup,pushdesc,uma,texel,fuse,replay,sgsize,
 * halfcvt", any subset (names from vkx_quirks.c). */
static unsigned parse_disable(const char *s)
{
    unsigned bits = 0;
    while (s && *s) {
        while (*s == ',' || *s == ' ') s++;
        size_t n = strcspn(s, ", ");
        if (!n) break;
        bool found = false;
        for (unsigned b = 1; b; b <<= 1) {
            const char *name = vkx_feature_name(b);
            if (name && strlen(name) == n && !strncmp(s, name, n)) {
                bits |= b;
                found = true;
            }
        }
        if (!found)
            fprintf(stderr,
                    "nibble: NIBBLE_DISABLE: unknown feature '%.*s' ignored "
                    "(known: fp16,int8,subgroup,pushdesc,uma,texel,fuse,replay,sgsize,halfcvt,"
                    "wide)\n",
                    (int)n, s);
        s += n;
    }
    return bits;
}

/* ---- instance ------------------------------------------------------------------------------ */

/* "VK_DRIVER_FILES=..." or "VK_ICD_FILENAMES=..." (whichever the loader reads), for messages. */
static const char *icd_env(void)
{
    static char buf[600];
    const char *s = getenv("VK_DRIVER_FILES"), *name = "VK_DRIVER_FILES";
    if (!s || !*s) {
        s = getenv("VK_ICD_FILENAMES");
        name = "VK_ICD_FILENAMES";
    }
    snprintf(buf, sizeof buf, "%s=%s", name, s && *s ? s : "unset");
    return buf;
}

/* Creates the instance (and the messenger when validation is on). Returns 0 or -1. */
static int instance_create(bool validation, VkInstance *inst, VkDebugUtilsMessengerEXT *msgr,
                           uint32_t *api, char *err, size_t errlen)
{
    *inst = VK_NULL_HANDLE;
    *msgr = VK_NULL_HANDLE;
    if (volkInitialize() != VK_SUCCESS) {
        vkx_errf(err, errlen, "no Vulkan loader found (libvulkan.so.1: is a Vulkan loader "
                              "installed, e.g. the libvulkan1 package?)");
        return -1;
    }
    uint32_t ver = VK_API_VERSION_1_0;
    if (vkEnumerateInstanceVersion) vkEnumerateInstanceVersion(&ver);
    if (ver < VKX_API_MIN) {
        vkx_errf(err, errlen, "the Vulkan loader supports only Vulkan %u.%u; nibble needs 1.1",
                 VK_API_VERSION_MAJOR(ver), VK_API_VERSION_MINOR(ver));
        return -1;
    }
    *api = ver > VKX_API_MAX ? VKX_API_MAX : ver;

    const char *layers[1];
    uint32_t n_layers = 0;
    if (validation) {
        uint32_t n = 0;
        vkEnumerateInstanceLayerProperties(&n, NULL);
        VkLayerProperties *lp = calloc(n ? n : 1, sizeof *lp);
        if (!lp) n = 0; /* out of host memory: as if there were no layers */
        if (lp) vkEnumerateInstanceLayerProperties(&n, lp);
        for (uint32_t i = 0; i < n; i++)
            if (!strcmp(lp[i].layerName, "VK_LAYER_KHRONOS_validation"))
                layers[n_layers++] = "VK_LAYER_KHRONOS_validation";
        free(lp);
        if (!n_layers)
            fprintf(stderr, "nibble: warning: validation requested but VK_LAYER_KHRONOS_validation "
                            "is not installed; continuing without it\n");
    }

    uint32_t n_ext = 0;
    vkEnumerateInstanceExtensionProperties(NULL, &n_ext, NULL);
    VkExtensionProperties *ep = calloc(n_ext ? n_ext : 1, sizeof *ep);
    if (!ep) {
        vkx_errf(err, errlen, "out of host memory");
        return -1;
    }
    vkEnumerateInstanceExtensionProperties(NULL, &n_ext, ep);
    const char *exts[2];
    uint32_t n_exts = 0;
    bool debug_utils = n_layers && vkx_has_ext(ep, n_ext, VK_EXT_DEBUG_UTILS_EXTENSION_NAME);
    if (n_layers && !debug_utils) { /* the layer brings the extension itself */
        uint32_t n = 0;
        vkEnumerateInstanceExtensionProperties("VK_LAYER_KHRONOS_validation", &n, NULL);
        VkExtensionProperties *lp = calloc(n ? n : 1, sizeof *lp);
        if (!lp) n = 0;
        if (lp) vkEnumerateInstanceExtensionProperties("VK_LAYER_KHRONOS_validation", &n, lp);
        debug_utils = vkx_has_ext(lp, n, VK_EXT_DEBUG_UTILS_EXTENSION_NAME);
        free(lp);
    }
    if (debug_utils) exts[n_exts++] = VK_EXT_DEBUG_UTILS_EXTENSION_NAME;
    VkInstanceCreateFlags flags = 0;
    if (vkx_has_ext(ep, n_ext, VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME)) {
        exts[n_exts++] = VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME; /* MoltenVK */
        flags |= VK_INSTANCE_CREATE_ENUMERATE_PORTABILITY_BIT_KHR;
    }
    free(ep);

    VkDebugUtilsMessengerCreateInfoEXT mi = messenger_info();
    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
                             .pApplicationName = "nibble",
                             .pEngineName = "nibble",
                             .apiVersion = *api};
    VkInstanceCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
                               .pNext = debug_utils ? &mi : NULL,
                               .flags = flags,
                               .pApplicationInfo = &app,
                               .enabledLayerCount = n_layers,
                               .ppEnabledLayerNames = layers,
                               .enabledExtensionCount = n_exts,
                               .ppEnabledExtensionNames = exts};
    VkResult r = VKX_CALL(vkCreateInstance(&ci, NULL, inst));
    if (r == VK_ERROR_INCOMPATIBLE_DRIVER || r == VK_ERROR_INITIALIZATION_FAILED) {
        vkx_errf(err, errlen,
                 "no Vulkan device found (is a Vulkan driver installed? %s)",
                 icd_env());
        *inst = VK_NULL_HANDLE;
        return -1;
    }
    if (r != VK_SUCCESS) {
        vkx_errf(err, errlen, "vkCreateInstance failed: %s", vkx_result_name(r));
        *inst = VK_NULL_HANDLE;
        return -1;
    }
    volkLoadInstance(*inst);
    r = debug_utils ? VKX_CALL(vkCreateDebugUtilsMessengerEXT(*inst, &mi, NULL, msgr)) : 0;
    if (r != VK_SUCCESS) {
        vkDestroyInstance(*inst, NULL);
        *inst = VK_NULL_HANDLE;
        *msgr = VK_NULL_HANDLE;
        vkx_errf(err, errlen, "vkCreateDebugUtilsMessengerEXT failed: %s", vkx_result_name(r));
        return -1;
    }
    return 0;
}

static void instance_destroy(VkInstance inst, VkDebugUtilsMessengerEXT msgr)
{
    /* volk holds the instance functions of the instance loaded last: one made without
     * validation has no debug-utils functions, so this instance's own is looked up */
    PFN_vkDestroyDebugUtilsMessengerEXT destroy_msgr =
        msgr ? (PFN_vkDestroyDebugUtilsMessengerEXT)vkGetInstanceProcAddr(
                   inst, "vkDestroyDebugUtilsMessengerEXT")
             : NULL;
    if (destroy_msgr) destroy_msgr(inst, msgr, NULL);
    if (inst) vkDestroyInstance(inst, NULL);
}

/* Physical devices of the instance (malloc'd, *n of them); NULL with a message when none. */
static VkPhysicalDevice *devices(VkInstance inst, uint32_t *n, char *err, size_t errlen)
{
    *n = 0;
    VkResult r = vkEnumeratePhysicalDevices(inst, n, NULL);
    if (r != VK_SUCCESS || *n == 0) {
        vkx_errf(err, errlen,
                 "no Vulkan device found (is a Vulkan driver installed? %s)",
                 icd_env());
        return NULL;
    }
    VkPhysicalDevice *pd = calloc(*n, sizeof *pd);
    r = pd ? VKX_CALL(vkEnumeratePhysicalDevices(inst, n, pd)) : VK_ERROR_OUT_OF_HOST_MEMORY;
    if (r != VK_SUCCESS && r != VK_INCOMPLETE) {
        vkx_errf(err, errlen, "vkEnumeratePhysicalDevices failed: %s", vkx_result_name(r));
        free(pd);
        return NULL;
    }
    return pd;
}

/* The device nibble uses by default: best type, then the first. */
static uint32_t default_device(const VkPhysicalDevice *pd, uint32_t n)
{
    uint32_t best = 0;
    int best_rank = -1;
    for (uint32_t i = 0; i < n; i++) {
        VkPhysicalDeviceProperties p;
        vkGetPhysicalDeviceProperties(pd[i], &p);
        int rank = p.apiVersion >= VKX_API_MIN ? type_rank(p.deviceType) : -1;
        if (rank > best_rank) {
            best_rank = rank;
            best = i;
        }
    }
    return best;
}

/* ---- create / destroy ---------------------------------------------------------------------- */

static int device_create(struct vkx_ctx *ctx, const struct vkx_devinfo *di,
                         const struct vkx_feats *have, char *err, size_t errlen)
{
    const struct vkx_caps *c = &ctx->caps;
    const char *exts[16];
    uint32_t n = 0;
    if (c->push_desc && !(c->disabled & VKX_FEAT_PUSHDESC))
        exts[n++] = VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME;
    if (di->s8_ext) exts[n++] = VK_KHR_8BIT_STORAGE_EXTENSION_NAME;
    if (di->f16i8_ext) exts[n++] = VK_KHR_SHADER_FLOAT16_INT8_EXTENSION_NAME;
    if (di->driver_props_ext) exts[n++] = VK_KHR_DRIVER_PROPERTIES_EXTENSION_NAME;
    if (di->ssc_ext) exts[n++] = VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME;
    if (di->idot_ext) exts[n++] = VK_KHR_SHADER_INTEGER_DOT_PRODUCT_EXTENSION_NAME;
    if (di->feedback_ext) exts[n++] = VK_EXT_PIPELINE_CREATION_FEEDBACK_EXTENSION_NAME;
    if (vkx_has_ext(di->ext, di->n_ext, VKX_EXT_PORTABILITY_SUBSET))
        exts[n++] = VKX_EXT_PORTABILITY_SUBSET; /* required where present (MoltenVK) */

    /* Enable what the shaders use, when present; leave disabled features off so the validation
     * layer catches a pipeline that uses one anyway. */
    struct vkx_feats en;
    memset(&en, 0, sizeof en);
    vkx_feats_chain(&en, di);
    bool fp16_ok = !(c->disabled & VKX_FEAT_FP16), int8_ok = !(c->disabled & VKX_FEAT_INT8);
    en.f2.features.shaderInt16 = have->f2.features.shaderInt16;
    en.f2.features.shaderInt64 = have->f2.features.shaderInt64;
    en.s16.storageBuffer16BitAccess = have->s16.storageBuffer16BitAccess;
    en.s16.uniformAndStorageBuffer16BitAccess = have->s16.uniformAndStorageBuffer16BitAccess;
    en.s8.storageBuffer8BitAccess = have->s8.storageBuffer8BitAccess;
    en.s8.uniformAndStorageBuffer8BitAccess = have->s8.uniformAndStorageBuffer8BitAccess;
    en.f16i8.shaderFloat16 = have->f16i8.shaderFloat16 && fp16_ok;
    en.f16i8.shaderInt8 = have->f16i8.shaderInt8 && int8_ok;
    en.ssc.subgroupSizeControl = have->ssc.subgroupSizeControl;
    en.ssc.computeFullSubgroups = have->ssc.computeFullSubgroups;
    en.idot.shaderIntegerDotProduct = have->idot.shaderIntegerDotProduct && int8_ok;
    vkx_pstats_enable(ctx, di->ext, di->n_ext, exts, &n, &en.f2.pNext);
    ctx->full_subgroups = en.ssc.computeFullSubgroups;
    ctx->creation_feedback = di->feedback;

    float prio = 1.0f;
    VkDeviceQueueCreateInfo qci = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
                                   .queueFamilyIndex = ctx->queue_family,
                                   .queueCount = 1,
                                   .pQueuePriorities = &prio};
    VkDeviceCreateInfo dci = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
                              .pNext = &en.f2,
                              .queueCreateInfoCount = 1,
                              .pQueueCreateInfos = &qci,
                              .enabledExtensionCount = n,
                              .ppEnabledExtensionNames = exts};
    VkResult r = VKX_CALL(vkCreateDevice(ctx->phys, &dci, NULL, &ctx->dev));
    if (r != VK_SUCCESS) {
        ctx->dev = VK_NULL_HANDLE;
        vkx_errf(err, errlen, "%s: vkCreateDevice failed: %s", c->name, vkx_result_name(r));
        return -1;
    }
    volkLoadDevice(ctx->dev);
    vkx_loaded_dev_ = ctx->dev;
    vkGetDeviceQueue(ctx->dev, ctx->queue_family, 0, &ctx->queue);
    return 0;
}

static void pick_memory_types(struct vkx_ctx *ctx)
{
    const VkMemoryPropertyFlags dl = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT,
                                hv = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT,
                                hc = VK_MEMORY_PROPERTY_HOST_COHERENT_BIT,
                                cached = VK_MEMORY_PROPERTY_HOST_CACHED_BIT;
    ctx->mem_device = vkx_find_mem_type(ctx, ~0u, dl, 0, hv);
    ctx->mem_host = vkx_find_mem_type(ctx, ~0u, hv | hc, cached, 0);
    ctx->mem_uma = UINT32_MAX;
    if (ctx->caps.uma && !(ctx->caps.disabled & VKX_FEAT_UMA))
        ctx->mem_uma = vkx_find_mem_type(ctx, ~0u, dl | hv | hc, cached, 0);
}

/* The driver workarounds of vkx_quirks.c that match this driver (or NIBBLE_FAKE_DRIVER) turn
 * their features off, unless NIBBLE_QUIRKS=0. */
static int apply_quirks(struct vkx_caps *c, char *err, size_t errlen)
{
    const char *env = getenv("NIBBLE_QUIRKS");
    if (env && !strcmp(env, "0")) return 0;
    struct vkx_driver_key key;
    if (vkx_quirk_key(c, getenv("NIBBLE_FAKE_DRIVER"), &key, err, errlen) != 0) return -1;
    c->n_quirks = vkx_quirks_match(&key, c->quirks, sizeof c->quirks / sizeof c->quirks[0]);
    for (unsigned i = 0; i < c->n_quirks; i++) c->quirk_disabled |= c->quirks[i]->features;
    c->disabled |= c->quirk_disabled;
    return 0;
}

int vkx_create(struct vkx_ctx *ctx, const struct vkx_opts *opts, char *err, size_t errlen)
{
    memset(ctx, 0, sizeof *ctx);
    struct vkx_opts def = {.device_index = -1};
    if (!opts) opts = &def;
    const char *ve = getenv("NIBBLE_VALIDATE");
    bool validation = opts->validation || (ve && *ve && strcmp(ve, "0") != 0);
    unsigned disabled = parse_disable(opts->disable ? opts->disable : getenv("NIBBLE_DISABLE"));

    uint32_t api = 0;
    if (instance_create(validation, &ctx->instance, &ctx->messenger, &api, err, errlen) != 0)
        return -1;
    uint32_t n = 0;
    VkPhysicalDevice *pd = devices(ctx->instance, &n, err, errlen);
    if (!pd) goto fail;

    long idx = opts->device_index;
    if (idx < 0) {
        const char *de = getenv("NIBBLE_DEVICE");
        if (de && *de) {
            uint64_t v;
            if (plat_parse_u64(de, 0, INT32_MAX, &v) == 0) {
                idx = (long)v;
            } else {
                vkx_errf(err, errlen, "NIBBLE_DEVICE=%s: not a device index (see nibble info --all)",
                         de);
                free(pd);
                goto fail;
            }
        }
    }
    if (idx >= (long)n) {
        vkx_errf(err, errlen, "device %ld requested but only %u Vulkan device(s) exist "
                              "(see nibble info --all)", idx, n);
        free(pd);
        goto fail;
    }
    ctx->phys = pd[idx < 0 ? default_device(pd, n) : (uint32_t)idx];
    free(pd);

    struct vkx_devinfo di;
    if (vkx_devinfo_init(&di, ctx->phys, api, err, errlen) != 0) goto fail;
    struct vkx_feats have;
    vkx_caps_probe(&ctx->caps, &have, &di, ctx->phys, &ctx->queue_family, &ctx->timestamp_bits);
    ctx->caps.disabled = disabled;
    if (apply_quirks(&ctx->caps, err, errlen) != 0) {
        free(di.ext);
        goto fail;
    }
    ctx->api_version = di.api;
    const char *tune = opts->tune ? opts->tune : getenv("NIBBLE_TUNE");
    ctx->tune_cpu = ctx->caps.type == VK_PHYSICAL_DEVICE_TYPE_CPU;
    if (tune && *tune) {
        if (strcmp(tune, "cpu") != 0 && strcmp(tune, "gpu") != 0) {
            vkx_errf(err, errlen, "NIBBLE_TUNE=%s: expected cpu or gpu", tune);
            free(di.ext);
            goto fail;
        }
        ctx->tune_cpu = tune[0] == 'c';
    }
    if (di.api < VKX_API_MIN) {
        vkx_errf(err, errlen, "%s supports only Vulkan %u.%u; nibble needs 1.1", ctx->caps.name,
                 VK_API_VERSION_MAJOR(di.api), VK_API_VERSION_MINOR(di.api));
        free(di.ext);
        goto fail;
    }
    if (ctx->queue_family == UINT32_MAX) {
        vkx_errf(err, errlen, "%s has no compute queue", ctx->caps.name);
        free(di.ext);
        goto fail;
    }
    int rc = opts->pipeline_stats ? vkx_pstats_init(ctx) : 0;
    if (rc != 0) vkx_errf(err, errlen, "out of host memory");
    if (rc == 0) rc = device_create(ctx, &di, &have, err, errlen);
    free(di.ext);
    if (rc != 0) goto fail;
    pick_memory_types(ctx);

    VkCommandPoolCreateInfo pci = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                   .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                   .queueFamilyIndex = ctx->queue_family};
    VkResult r = VKX_CALL(vkCreateCommandPool(ctx->dev, &pci, NULL, &ctx->cmd_pool));
    if (r != VK_SUCCESS) {
        ctx->cmd_pool = VK_NULL_HANDLE;
        vkx_errf(err, errlen, "vkCreateCommandPool failed: %s", vkx_result_name(r));
        vkx_destroy(ctx);
        return -1;
    }
    char dir[1024] = "";
    const char *d = opts->pipeline_cache_dir;
    if (!d) d = getenv("NIBBLE_CACHE_DIR");
    if (d && *d && plat_mkdir_p(d) != 0) d = ""; /* unwritable: memory-only cache */
    if (!d && plat_cache_dir(dir, sizeof dir) == 0) d = dir;
    if (vkx_pcache_open(ctx, d ? d : "", err, errlen) != 0) {
        vkx_destroy(ctx);
        return -1;
    }
    return 0;

fail:
    vkx_pstats_free(ctx);
    instance_destroy(ctx->instance, ctx->messenger);
    memset(ctx, 0, sizeof *ctx);
    return -1;
}

void vkx_destroy(struct vkx_ctx *ctx)
{
    if (ctx->dev) {
        vkx_use(ctx);
        /* a lost device (or no memory left to wait with) has nothing more to finish: the
         * objects are destroyed all the same */
        (void)vkDeviceWaitIdle(ctx->dev);
        vkx_staging_destroy(ctx);
        vkx_pcache_close(ctx);
        if (ctx->cmd_pool) vkDestroyCommandPool(ctx->dev, ctx->cmd_pool, NULL);
        vkDestroyDevice(ctx->dev, NULL);
        vkx_loaded_dev_ = VK_NULL_HANDLE;
    }
    vkx_pstats_free(ctx);
    instance_destroy(ctx->instance, ctx->messenger);
    memset(ctx, 0, sizeof *ctx);
}

bool vkx_has(const struct vkx_ctx *ctx, enum vkx_feature f)
{
    const struct vkx_caps *c = &ctx->caps;
    if (c->disabled & f) return false;
    switch (f) {
    case VKX_FEAT_FP16: return c->fp16;
    case VKX_FEAT_INT8: return c->int8;
    case VKX_FEAT_SUBGROUP: return c->subgroup_basic && c->subgroup_arith && c->subgroup_shuffle;
    case VKX_FEAT_PUSHDESC: return c->push_desc;
    case VKX_FEAT_UMA: return c->uma;
    case VKX_FEAT_TEXEL: return c->texel_u32x4 && c->max_texel_elements > 0;
    case VKX_FEAT_FUSE: return true;
    case VKX_FEAT_REPLAY: return true;
    case VKX_FEAT_SGSIZE: return c->subgroup_size_control;
    case VKX_FEAT_HALFCVT: return true;
    case VKX_FEAT_WIDE: return true;
    }
    return false;
}

/* ---- reporting ----------------------------------------------------------------------------- */

/* "1", "0", or "off" when present but disabled. */
static const char *onoff(const struct vkx_ctx *ctx, bool present, enum vkx_feature f)
{
    if (!present) return "0";
    return (ctx->caps.disabled & f) ? "off" : "1";
}

void vkx_device_line(const struct vkx_ctx *ctx, char *buf, size_t n)
{
    const struct vkx_caps *c = &ctx->caps;
    bool sg = c->subgroup_basic && c->subgroup_arith && c->subgroup_shuffle;
    snprintf(buf, n,
             "%s (%s) | %s | vulkan %u.%u | uma: %s | fp16: %s | int8: %s | int dot: %s%s | "
             "matrix cores: %s | subgroup: %u (%u..%u) ops: %s | push desc: %s | shared: %u KiB | "
             "storage range: %llu MiB",
             c->name, c->driver_name[0] ? c->driver_name : "unknown driver", type_name(c->type),
             VK_API_VERSION_MAJOR(ctx->api_version), VK_API_VERSION_MINOR(ctx->api_version),
             onoff(ctx, c->uma, VKX_FEAT_UMA), onoff(ctx, c->fp16, VKX_FEAT_FP16),
             onoff(ctx, c->int8, VKX_FEAT_INT8), onoff(ctx, c->int_dot, VKX_FEAT_INT8),
             c->int_dot && !c->int_dot_4x8_accel ? " (not accelerated)" : "",
             c->coopmat ? "KHR_coopmat" : "none", c->subgroup_size, c->subgroup_min,
             c->subgroup_max, onoff(ctx, sg, VKX_FEAT_SUBGROUP),
             onoff(ctx, c->push_desc, VKX_FEAT_PUSHDESC), c->max_shared / 1024,
             (unsigned long long)(c->max_storage_range >> 20));
}

void vkx_caps_print(const struct vkx_ctx *ctx, FILE *out)
{
    const struct vkx_caps *c = &ctx->caps;
    fprintf(out, "name: %s\n", c->name);
    fprintf(out, "type: %s\n", type_name(c->type));
    fprintf(out, "vendor id: 0x%04x\ndevice id: 0x%04x\n", c->vendor_id, c->device_id);
    fprintf(out, "device api: %u.%u.%u\n", VK_API_VERSION_MAJOR(c->api_version),
            VK_API_VERSION_MINOR(c->api_version), VK_API_VERSION_PATCH(c->api_version));
    fprintf(out, "api in use: %u.%u\n", VK_API_VERSION_MAJOR(ctx->api_version),
            VK_API_VERSION_MINOR(ctx->api_version));
    fprintf(out, "driver: %s (id %d)\n", c->driver_name, (int)c->driver_id);
    fprintf(out, "driver info: %s\n", c->driver_info);
    fprintf(out, "driver version: 0x%08x\n", c->driver_version);
    fprintf(out, "pipeline cache uuid: ");
    for (unsigned i = 0; i < VK_UUID_SIZE; i++) fprintf(out, "%02x", c->pipeline_uuid[i]);
    fprintf(out, "\n");
    fprintf(out, "subgroup size: %u\n", c->subgroup_size);
    fprintf(out, "subgroup size control: %s (min %u, max %u, full subgroups %d)\n",
            onoff(ctx, c->subgroup_size_control, VKX_FEAT_SGSIZE), c->subgroup_min,
            c->subgroup_max, ctx->full_subgroups);
    fprintf(out, "subgroup ops: basic %d, vote %d, arithmetic %d, ballot %d, shuffle %d%s\n",
            c->subgroup_basic, c->subgroup_vote, c->subgroup_arith, c->subgroup_ballot,
            c->subgroup_shuffle, (c->disabled & VKX_FEAT_SUBGROUP) ? " (disabled)" : "");
    fprintf(out, "fp16 arithmetic: %s\n", onoff(ctx, c->fp16, VKX_FEAT_FP16));
    fprintf(out, "int8 arithmetic: %s\n", onoff(ctx, c->int8, VKX_FEAT_INT8));
    fprintf(out, "int16 arithmetic: %d\nint64 arithmetic: %d\n", c->int16, c->int64);
    fprintf(out, "16-bit storage: %d\n8-bit storage: %d\n", c->storage16, c->storage8);
    fprintf(out, "integer dot product: %s (4x8 packed accelerated: %d)\n",
            onoff(ctx, c->int_dot, VKX_FEAT_INT8), c->int_dot_4x8_accel);
    fprintf(out, "cooperative matrix (KHR): %d\n", c->coopmat);
    fprintf(out, "push descriptors: %s\n", onoff(ctx, c->push_desc, VKX_FEAT_PUSHDESC));
    fprintf(out, "uniform texel buffers (R32G32B32A32_UINT): %s, max %u texels\n",
            onoff(ctx, c->texel_u32x4, VKX_FEAT_TEXEL), c->max_texel_elements);
    fprintf(out, "pipeline creation feedback: %d\n", ctx->creation_feedback);
    fprintf(out, "kernel shapes: %s\n", ctx->tune_cpu ? "cpu" : "gpu");
    fprintf(out, "timestamps: %d (period %g ns, %u valid bits)\n", c->timestamps,
            (double)c->timestamp_period_ns, ctx->timestamp_bits);
    fprintf(out, "max shared memory: %u bytes\n", c->max_shared);
    fprintf(out, "max workgroup invocations: %u\n", c->max_wg_invocations);
    fprintf(out, "max workgroup size: %u %u %u\n", c->max_wg_size[0], c->max_wg_size[1],
            c->max_wg_size[2]);
    fprintf(out, "max workgroup count: %u %u %u\n", c->max_wg_count[0], c->max_wg_count[1],
            c->max_wg_count[2]);
    fprintf(out, "max storage buffer range: %llu bytes\n",
            (unsigned long long)c->max_storage_range);
    fprintf(out, "max memory allocation: %llu bytes\n", (unsigned long long)c->max_alloc);
    fprintf(out, "min storage buffer offset alignment: %u\n", c->min_storage_align);
    fprintf(out, "max push constants: %u bytes\n", c->max_push_constants);
    fprintf(out, "device-local memory: %llu MiB\n",
            (unsigned long long)(c->device_local_bytes >> 20));
    fprintf(out, "uma: %s\n", onoff(ctx, c->uma, VKX_FEAT_UMA));
    fprintf(out, "memory types: device %d, host %d, uma %d\n", (int)ctx->mem_device,
            (int)ctx->mem_host, (int)ctx->mem_uma);
    fprintf(out, "pipeline cache file: %s\n",
            ctx->pipeline_cache_path[0] ? ctx->pipeline_cache_path : "(none)");
    char off[128];
    vkx_feature_names(c->disabled, off, sizeof off);
    fprintf(out, "features off: %s\n", off[0] ? off : "none");
    vkx_quirks_print(c->quirks, c->n_quirks, out);
}

int vkx_list_devices(FILE *out, char *err, size_t errlen)
{
    VkInstance inst;
    VkDebugUtilsMessengerEXT msgr;
    uint32_t api, n = 0;
    if (instance_create(false, &inst, &msgr, &api, err, errlen) != 0) return -1;
    VkPhysicalDevice *pd = devices(inst, &n, err, errlen);
    if (!pd) {
        instance_destroy(inst, msgr);
        return -1;
    }
    uint32_t def = default_device(pd, n);
    for (uint32_t i = 0; i < n; i++) {
        VkPhysicalDeviceProperties p;
        vkGetPhysicalDeviceProperties(pd[i], &p);
        fprintf(out, "%c %u: %s (%s, Vulkan %u.%u.%u)\n", i == def ? '*' : ' ', i, p.deviceName,
                type_name(p.deviceType), VK_API_VERSION_MAJOR(p.apiVersion),
                VK_API_VERSION_MINOR(p.apiVersion), VK_API_VERSION_PATCH(p.apiVersion));
    }
    free(pd);
    instance_destroy(inst, msgr);
    return 0;
}

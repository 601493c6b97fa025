/* vkx_pipeline_stats.c: compiler statistics of each pipeline (VK_KHR_pipeline_executable_
 * properties) when vkx_opts.pipeline_stats asks for them: the extension and its
 * pipelineExecutableInfo feature are enabled at device creation where the driver offers them,
 * pipelines are then created with VK_PIPELINE_CREATE_CAPTURE_STATISTICS_BIT_KHR (only then:
 * drivers may bypass their caches for it) and every statistic of every executable is copied
 * right after creation. RADV, ANV and turnip offer them; lavapipe does not. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vkx_internal.h"

#define PSTATS_EXT "VK_KHR_pipeline_executable_properties"
#define AMD_CORE_EXT "VK_AMD_shader_core_properties"

struct vkx_pstats {
    bool offered; /* the device has the extension and the feature, and they are enabled */
    VkPhysicalDevicePipelineExecutablePropertiesFeaturesKHR feat; /* chained at vkCreateDevice */
    uint32_t max_waves;  /* VK_AMD_shader_core_properties: wavefronts per SIMD (0: unknown) */
    uint32_t n, cap;
    struct vkx_pipeline_stats *p; /* [cap], n in use */
    VkPipeline *handle;           /* [cap] the pipeline of each record */
};

int vkx_pstats_init(struct vkx_ctx *ctx)
{
    ctx->pstats = calloc(1, sizeof *ctx->pstats);
    return ctx->pstats ? 0 : -1;
}

void vkx_pstats_free(struct vkx_ctx *ctx)
{
    if (!ctx->pstats) return;
    free(ctx->pstats->p);
    free(ctx->pstats->handle);
    free(ctx->pstats);
    ctx->pstats = NULL;
}

void vkx_pstats_enable(struct vkx_ctx *ctx, const VkExtensionProperties *ext, uint32_t n_ext,
                       const char **exts, uint32_t *n, void **chain)
{
    struct vkx_pstats *s = ctx->pstats;
    if (!s) return;
    bool has = false, amd = false;
    for (uint32_t i = 0; i < n_ext; i++) {
        has = has || !strcmp(ext[i].extensionName, PSTATS_EXT);
        amd = amd || !strcmp(ext[i].extensionName, AMD_CORE_EXT);
    }
    if (amd) { /* properties of a device extension can be read without enabling it */
        VkPhysicalDeviceShaderCorePropertiesAMD core = {
            .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_CORE_PROPERTIES_AMD};
        VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2,
                                          .pNext = &core};
        vkGetPhysicalDeviceProperties2(ctx->phys, &p2);
        s->max_waves = core.wavefrontsPerSimd;
    }
    if (!has) return;
    VkPhysicalDevicePipelineExecutablePropertiesFeaturesKHR f = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PIPELINE_EXECUTABLE_PROPERTIES_FEATURES_KHR};
    VkPhysicalDeviceFeatures2 f2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2,
                                    .pNext = &f};
    vkGetPhysicalDeviceFeatures2(ctx->phys, &f2);
    if (!f.pipelineExecutableInfo) return;
    s->feat = f;
    s->feat.pNext = *chain;
    *chain = &s->feat;
    exts[(*n)++] = PSTATS_EXT;
    s->offered = true;
}

VkPipelineCreateFlags vkx_pstats_flags(const struct vkx_ctx *ctx)
{
    return ctx->pstats && ctx->pstats->offered ? VK_PIPELINE_CREATE_CAPTURE_STATISTICS_BIT_KHR
                                               : 0;
}

int vkx_pstats_state(const struct vkx_ctx *ctx)
{
    return !ctx->pstats ? -1 : ctx->pstats->offered ? 1 : 0;
}

uint32_t vkx_pstats_count(const struct vkx_ctx *ctx)
{
    return ctx->pstats ? ctx->pstats->n : 0;
}

const struct vkx_pipeline_stats *vkx_pstats_get(const struct vkx_ctx *ctx, uint32_t i)
{
    return ctx->pstats && i < ctx->pstats->n ? &ctx->pstats->p[i] : NULL;
}

static double stat_value(const VkPipelineExecutableStatisticKHR *st)
{
    switch (st->format) {
    case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_BOOL32_KHR: return st->value.b32 ? 1 : 0;
    case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_INT64_KHR: return (double)st->value.i64;
    case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_UINT64_KHR: return (double)st->value.u64;
    case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_FLOAT64_KHR: return st->value.f64;
    default: return 0;
    }
}

/* The statistics nibble reads by meaning, under the names drivers give them (RADV; ANV's
 * "Scratch Memory Size"/"Workgroup Memory Size"; turnip's "Max Waves Per Core" and "STP Count"). */
static void known(struct vkx_pipeline_stats *r, const char *name, double v)
{
    static const struct {
        const char *name;
        size_t off;
    } k[] = {
        {"VGPRs", offsetof(struct vkx_pipeline_stats, vgprs)},
        {"SGPRs", offsetof(struct vkx_pipeline_stats, sgprs)},
        {"Spilled VGPRs", offsetof(struct vkx_pipeline_stats, spilled_vgprs)},
        {"Spilled SGPRs", offsetof(struct vkx_pipeline_stats, spilled_sgprs)},
        {"LDS size", offsetof(struct vkx_pipeline_stats, lds_bytes)},
        {"Workgroup Memory Size", offsetof(struct vkx_pipeline_stats, lds_bytes)},
        {"Scratch size", offsetof(struct vkx_pipeline_stats, scratch_bytes)},
        {"Scratch Memory Size", offsetof(struct vkx_pipeline_stats, scratch_bytes)},
        {"Subgroups per SIMD", offsetof(struct vkx_pipeline_stats, waves_per_simd)},
        {"Max Waves Per Core", offsetof(struct vkx_pipeline_stats, waves_per_simd)},
        /* turnip (ir3): store-private instructions, i.e. registers spilled to private memory */
        {"STP Count", offsetof(struct vkx_pipeline_stats, spilled_vgprs)},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        if (!strcmp(name, k[i].name)) *(double *)((char *)r + k[i].off) = v;
}

void vkx_pstats_capture(struct vkx_ctx *ctx, VkPipeline pipe, const struct vkx_pipeline_desc *d)
{
    struct vkx_pstats *s = ctx->pstats;
    if (!s || !s->offered) return;
    if (s->n == s->cap) {
        uint32_t cap = s->cap ? 2 * s->cap : 64;
        struct vkx_pipeline_stats *p = realloc(s->p, cap * sizeof *p);
        if (p) s->p = p;
        VkPipeline *h = realloc(s->handle, cap * sizeof *h);
        if (h) s->handle = h;
        if (!p || !h) return; /* out of host memory: this pipeline's statistics are missing */
        s->cap = cap;
    }
    struct vkx_pipeline_stats *r = &s->p[s->n];
    memset(r, 0, sizeof *r);
    const char *nm = d->name ? d->name : "(unnamed)";
    size_t nl = strlen(nm) < sizeof r->name - 1 ? strlen(nm) : sizeof r->name - 1;
    memcpy(r->name, nm, nl); /* r was zeroed: NUL-terminated */
    r->n_spec = d->n_spec;
    memcpy(r->spec, d->spec, d->n_spec * sizeof *d->spec);
    r->texel = d->texel_bindings != 0;
    r->vgprs = r->sgprs = r->spilled_vgprs = r->spilled_sgprs = r->lds_bytes = r->scratch_bytes =
        r->waves_per_simd = -1;

    VkPipelineInfoKHR pi = {.sType = VK_STRUCTURE_TYPE_PIPELINE_INFO_KHR, .pipeline = pipe};
    uint32_t ne = 0;
    if (vkGetPipelineExecutablePropertiesKHR(ctx->dev, &pi, &ne, NULL) != VK_SUCCESS) return;
    VkPipelineExecutablePropertiesKHR ep[4];
    for (uint32_t i = 0; i < 4; i++)
        ep[i] = (VkPipelineExecutablePropertiesKHR){
            .sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_PROPERTIES_KHR};
    if (ne > 4) ne = 4;
    VkResult res = vkGetPipelineExecutablePropertiesKHR(ctx->dev, &pi, &ne, ep);
    if (res != VK_SUCCESS && res != VK_INCOMPLETE) return;
    /* a compute pipeline has one executable; should a driver split it, the first one counts */
    if (ne == 0) return;
    r->subgroup_size = ep[0].subgroupSize;
    r->max_waves = s->max_waves;
    VkPipelineExecutableInfoKHR ei = {.sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_INFO_KHR,
                                      .pipeline = pipe,
                                      .executableIndex = 0};
    uint32_t ns = 0;
    if (vkGetPipelineExecutableStatisticsKHR(ctx->dev, &ei, &ns, NULL) != VK_SUCCESS) return;
    VkPipelineExecutableStatisticKHR *st = calloc(ns ? ns : 1, sizeof *st);
    if (!st) return;
    for (uint32_t i = 0; i < ns; i++)
        st[i].sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_STATISTIC_KHR;
    res = vkGetPipelineExecutableStatisticsKHR(ctx->dev, &ei, &ns, st);
    if (res == VK_SUCCESS || res == VK_INCOMPLETE) {
        for (uint32_t i = 0; i < ns && r->n < VKX_MAX_STATS; i++) {
            struct vkx_stat *o = &r->s[r->n++];
            memcpy(o->name, st[i].name, sizeof o->name - 1); /* NUL-terminated, cut at 47 */
            o->name[sizeof o->name - 1] = 0;
            o->value = stat_value(&st[i]);
            known(r, st[i].name, o->value);
        }
    }
    free(st);
    /* RADV counts a wave64 as two wave32 slots on hardware that runs both (RDNA) */
    if (s->max_waves && r->waves_per_simd > 0 && ctx->caps.subgroup_min == 32 &&
        r->subgroup_size == 64)
        r->waves_per_simd /= 2;
    s->handle[s->n++] = pipe;
}

void vkx_pstats_forget(struct vkx_ctx *ctx, VkPipeline pipe)
{
    struct vkx_pstats *s = ctx->pstats;
    if (!s || !pipe) return;
    for (uint32_t i = 0; i < s->n; i++)
        if (s->handle[i] == pipe) {
            memmove(&s->p[i], &s->p[i + 1], (s->n - i - 1) * sizeof *s->p);
            memmove(&s->handle[i], &s->handle[i + 1], (s->n - i - 1) * sizeof *s->handle);
            s->n--;
            return;
        }
}

/* vkx_budget.c: VK_EXT_memory_budget for the largest device-local heap (see vkx_budget.h). */
#include "vkx_budget.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "platform.h"

static bool has_budget_ext(VkPhysicalDevice pd)
{
    uint32_t n = 0;
    if (vkEnumerateDeviceExtensionProperties(pd, NULL, &n, NULL) != VK_SUCCESS || !n) return false;
    VkExtensionProperties *e = malloc(n * sizeof *e);
    bool have = false;
    if (e && vkEnumerateDeviceExtensionProperties(pd, NULL, &n, e) == VK_SUCCESS)
        for (uint32_t i = 0; i < n && !have; i++)
            have = !strcmp(e[i].extensionName, VK_EXT_MEMORY_BUDGET_EXTENSION_NAME);
    free(e);
    return have;
}

/* NIBBLE_FAKE_BUDGET=BUDGET_MB:USAGE_MB: a budget as if the driver had said it (tests). */
static int fake_budget(const struct vkx_ctx *ctx, const char *env, struct vkx_budget *b)
{
    double bu = 0, us = 0;
    const char *colon = strchr(env, ':');
    char num[64];
    if (!colon || (size_t)(colon - env) >= sizeof num) return -2;
    memcpy(num, env, (size_t)(colon - env));
    num[colon - env] = 0;
    if (plat_parse_f64(num, 0, 1e12, &bu) || plat_parse_f64(colon + 1, 0, 1e12, &us)) return -2;
    b->heap = ctx->caps.device_local_bytes;
    b->budget = (uint64_t)(bu * 1048576.0);
    b->usage = (uint64_t)(us * 1048576.0);
    b->avail = b->budget > b->usage ? b->budget - b->usage : 0;
    return 0;
}

int vkx_memory_budget(const struct vkx_ctx *ctx, struct vkx_budget *b)
{
    memset(b, 0, sizeof *b);
    const char *env = getenv("NIBBLE_FAKE_BUDGET");
    if (env && *env) return fake_budget(ctx, env, b);
    if (!ctx->phys || !vkGetPhysicalDeviceMemoryProperties2 || !has_budget_ext(ctx->phys))
        return -1;
    VkPhysicalDeviceMemoryBudgetPropertiesEXT bp = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_BUDGET_PROPERTIES_EXT};
    VkPhysicalDeviceMemoryProperties2 mp = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_PROPERTIES_2, .pNext = &bp};
    vkGetPhysicalDeviceMemoryProperties2(ctx->phys, &mp);
    const VkPhysicalDeviceMemoryProperties *m = &mp.memoryProperties;
    uint32_t best = UINT32_MAX;
    for (uint32_t h = 0; h < m->memoryHeapCount; h++)
        if ((m->memoryHeaps[h].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) &&
            (best == UINT32_MAX || m->memoryHeaps[h].size > m->memoryHeaps[best].size))
            best = h;
    if (best == UINT32_MAX || !bp.heapBudget[best]) return -1; /* a driver that fills nothing */
    b->heap = m->memoryHeaps[best].size;
    b->budget = bp.heapBudget[best];
    b->usage = bp.heapUsage[best];
    b->avail = b->budget > b->usage ? b->budget - b->usage : 0;
    return 0;
}

/* vkx_budget: the device memory this process can still get, from VK_EXT_memory_budget. */
#ifndef NB_VKX_BUDGET_H
#define NB_VKX_BUDGET_H

#include <stdint.h>

#include "vkx.h"

/* Of the largest DEVICE_LOCAL heap (the one caps.device_local_bytes names), in bytes. */
struct vkx_budget {
    uint64_t heap;   /* the heap's size */
    uint64_t budget; /* what the driver says this process may use of it (its usage included) */
    uint64_t usage;  /* what this process uses of it now */
    uint64_t avail;  /* budget - usage (0 when usage is over) */
};

/* 0 and b filled, or -1 when the device lacks VK_EXT_memory_budget (b zeroed), or -2 for a
 * malformed NIBBLE_FAKE_BUDGET=BUDGET_MB:USAGE_MB (which, for tests, stands for the driver's
 * figures on any device). */
int vkx_memory_budget(const struct vkx_ctx *ctx, struct vkx_budget *b);

#endif

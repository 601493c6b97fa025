/* vkx_probe.c: the bandwidth probe, a plain copy shader and a plain read shader (bw.comp) timed
 * on the device: the ceiling a memory-bound kernel can hope for on this device. */
#include <string.h>

#include "nb_shaders.h"
#include "platform.h"
#include "shared.h"
#include "vkx_internal.h"

#define PROBE_WG 256 /* invocations per workgroup */
#define PROBE_PER 4  /* vec4s per invocation, at least */

/* Best time in ns of `reps` replays of a recording holding one dispatch. */
static double best_ns(struct vkx_ctx *ctx, struct vkx_cmd *c, uint32_t reps, bool *gpu)
{
    double best = 0;
    for (uint32_t r = 0; r < reps; r++) {
        uint64_t t0 = plat_now_ns();
        vkx_cmd_submit_wait(ctx, c);
        double ns = (double)(plat_now_ns() - t0);
        double gpu_ns = 0;
        if (c->timestamps) vkx_cmd_read_times(ctx, c, &gpu_ns, 1);
        *gpu = gpu_ns > 0;
        if (gpu_ns > 0) ns = gpu_ns;
        if (r == 0 || ns < best) best = ns;
    }
    return best;
}

int vkx_probe_bandwidth(struct vkx_ctx *ctx, uint64_t bytes, uint32_t reps,
                        struct vkx_bandwidth *bw, char *err, size_t errlen)
{
    memset(bw, 0, sizeof *bw);
    if (!bytes) bytes = 64u << 20;
    if (!reps) reps = 5;
    if (bytes > ctx->caps.max_storage_range) bytes = ctx->caps.max_storage_range;
    if (bytes > ctx->caps.max_alloc) bytes = ctx->caps.max_alloc;
    bytes = bytes / 16 * 16;
    if (bytes < 16 * PROBE_WG) {
        vkx_errf(err, errlen, "bandwidth probe: %llu bytes is too small",
                 (unsigned long long)bytes);
        return -1;
    }
    uint32_t n = (uint32_t)(bytes / 16); /* vec4s */
    /* PROBE_PER vec4s per invocation (more when the workgroup count runs out) */
    uint32_t per = vkx_ceil_div(n, (uint64_t)PROBE_WG * ctx->caps.max_wg_count[0]);
    if (per < PROBE_PER) per = PROBE_PER;
    uint32_t groups = vkx_ceil_div(n, (uint64_t)PROBE_WG * per);

    struct vkx_buffer src, dst; /* (bytes) each */
    if (vkx_buffer_create(ctx, &src, bytes, VKX_MEM_DEVICE, err, errlen) != 0) return -1;
    if (vkx_buffer_create(ctx, &dst, bytes, VKX_MEM_DEVICE, err, errlen) != 0) {
        vkx_buffer_destroy(ctx, &src);
        return -1;
    }
    struct vkx_cmd c;
    vkx_cmd_create(ctx, &c, 1, true);
    vkx_cmd_begin(ctx, &c); /* every byte 0x5a: the read shader's XOR never equals `magic` */
    vkx_cmd_fill(&c, vkx_whole(&src), 0x5a5a5a5au);
    vkx_cmd_end(ctx, &c);
    vkx_cmd_submit_wait(ctx, &c);

    const struct nb_spv_entry *e = &nb_spv[NB_SPV_BW];
    struct nb_push_bw pc = {.n = n, .stride = groups * PROBE_WG, .per = per, .magic = 1};
    struct vkx_view views[2] = {vkx_whole(&src), vkx_whole(&dst)};
    double ns[2] = {0, 0};
    int rc = 0;
    for (uint32_t mode = 0; mode < 2 && rc == 0; mode++) {
        struct vkx_pipeline_desc d = {.name = mode ? "bw_read" : "bw_copy",
                                      .spv = e->code,
                                      .spv_size = *e->size,
                                      .n_bindings = 2,
                                      .push_size = sizeof pc,
                                      .n_spec = 2,
                                      .spec = {PROBE_WG, mode}};
        struct vkx_pipeline p;
        if (vkx_pipeline_create(ctx, &p, &d, err, errlen) != 0) {
            rc = -1;
            break;
        }
        vkx_cmd_begin(ctx, &c);
        vkx_cmd_dispatch(ctx, &c, &p, views, 2, &pc, sizeof pc, groups, 1, 1);
        vkx_cmd_end(ctx, &c);
        ns[mode] = best_ns(ctx, &c, reps, &bw->gpu_timed);
        vkx_pipeline_destroy(ctx, &p);
    }
    vkx_cmd_destroy(ctx, &c);
    vkx_buffer_destroy(ctx, &dst);
    vkx_buffer_destroy(ctx, &src);
    if (rc) return rc;
    bw->bytes = bytes;
    bw->copy_ms = ns[0] / 1e6;
    bw->read_ms = ns[1] / 1e6;
    bw->copy_gbs = ns[0] > 0 ? 2.0 * (double)bytes / ns[0] : 0;
    bw->read_gbs = ns[1] > 0 ? (double)bytes / ns[1] : 0;
    return 0;
}

/* vkx_probe.c: the bandwidth probe, plain copy and read shaders (bw.comp: storage-buffer uvec4,
 * uint, u64vec2 elements, texel-buffer reads) timed on the device: the ceiling a memory-bound
 * kernel can hope for; and a transfer copy. */
#include <stdio.h>
#include <string.h>

#include "nb_shaders.h"
#include "platform.h"
#include "shared.h"
#include "vkx_internal.h"

#define PROBE_WG 256 /* invocations per workgroup */
#define PROBE_PER 4  /* elements per invocation, at least */

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

/* The shader shapes: element type (bw.comp variant) and its size. */
static const struct {
    const char *name;
    enum nb_spv_id spv;
    uint32_t elem;
    bool int64, texel; /* needs shaderInt64; reads a uniform texel buffer */
} shapes[] = {
    {"uvec4", NB_SPV_BW, 16, false, false},
    {"uint", NB_SPV_BW_U32, 4, false, false},
    {"u64vec2", NB_SPV_BW_U64, 16, true, false},
    {"texel", NB_SPV_BW_TEXEL, 16, false, true},
};

/* Best ns of one shader shape in one mode (0 copy, 1 read) into *ns (0 when the device lacks
 * what the shape needs). -1 with a message when the driver refuses the pipeline. */
static int time_shape(struct vkx_ctx *ctx, struct vkx_cmd *c, struct vkx_view views[2],
                      uint64_t bytes, int s, uint32_t mode, uint32_t reps, double *ns, bool *gpu,
                      char *err, size_t errlen)
{
    *ns = 0;
    if (shapes[s].int64 && !ctx->caps.int64) return 0;
    if (shapes[s].texel && !views[0].buf->texel) return 0;
    uint32_t n = (uint32_t)(bytes / shapes[s].elem);
    /* PROBE_PER elements per invocation (more when the workgroup count runs out) */
    uint32_t per = vkx_ceil_div(n, (uint64_t)PROBE_WG * ctx->caps.max_wg_count[0]);
    if (per < PROBE_PER) per = PROBE_PER;
    uint32_t groups = vkx_ceil_div(n, (uint64_t)PROBE_WG * per);
    const struct nb_spv_entry *e = &nb_spv[shapes[s].spv];
    struct nb_push_bw pc = {.n = n, .stride = groups * PROBE_WG, .per = per, .magic = 1};
    struct vkx_pipeline_desc d = {.name = mode ? "bw_read" : "bw_copy",
                                  .spv = e->code,
                                  .spv_size = *e->size,
                                  .n_bindings = 2,
                                  .texel_bindings = shapes[s].texel ? 1u : 0u,
                                  .push_size = sizeof pc,
                                  .n_spec = 2,
                                  .spec = {PROBE_WG, mode}};
    struct vkx_pipeline p;
    if (vkx_pipeline_create(ctx, &p, &d, err, errlen) != 0) return -1;
    vkx_cmd_begin(ctx, c);
    vkx_cmd_dispatch(ctx, c, &p, views, 2, &pc, sizeof pc, groups, 1, 1);
    vkx_cmd_end(ctx, c);
    *ns = best_ns(ctx, c, reps, gpu);
    vkx_pipeline_destroy(ctx, &p);
    return 0;
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

    /* the texel shape reads src through a texel view (skipped when the device has none or the
     * probe exceeds its texel limit) */
    char ignored[128];
    (void)vkx_buffer_texel_view(ctx, &src, ignored, sizeof ignored);
    struct vkx_view views[2] = {vkx_whole(&src), vkx_whole(&dst)};
    double best[2] = {0, 0}; /* ns: copy, read */
    bool copy_timed = false;   /* the best copy ran with GPU timestamps */
    /* a shape the driver refuses is skipped; the probe fails only when no shape ran */
    bool refused = false;
    for (int s = 0; s < (int)(sizeof shapes / sizeof shapes[0]); s++) {
        for (uint32_t mode = 0; mode < 2; mode++) {
            double ns;
            bool gpu = false;
            if (time_shape(ctx, &c, views, bytes, s, mode, reps, &ns, &gpu, err, errlen) != 0) {
                refused = true;
                continue;
            }
            if (ns > 0 && (best[mode] == 0 || ns < best[mode])) {
                best[mode] = ns;
                if (!mode) copy_timed = gpu;
                char *win = mode ? bw->read_shape : bw->copy_shape;
                snprintf(win, sizeof bw->copy_shape, "%s", shapes[s].name);
            }
        }
    }
    int rc = best[0] > 0 && best[1] > 0 ? 0 : -1;
    if (rc != 0 && !refused) /* else err holds the last refusal */
        vkx_errf(err, errlen, "bandwidth probe: no copy or read shape could be timed");
    if (rc == 0) { /* the transfer engine's copy, host timed (it carries no timestamp) */
        vkx_cmd_begin(ctx, &c);
        vkx_cmd_copy(&c, views[1], views[0]);
        vkx_cmd_end(ctx, &c);
        bool gpu = false;
        double ns = best_ns(ctx, &c, reps, &gpu);
        bw->transfer_gbs = ns > 0 ? 2.0 * (double)bytes / ns : 0;
    }
    vkx_cmd_destroy(ctx, &c);
    vkx_buffer_destroy(ctx, &dst);
    vkx_buffer_destroy(ctx, &src);
    if (rc) return rc;
    bw->bytes = bytes;
    bw->copy_ms = best[0] / 1e6;
    bw->read_ms = best[1] / 1e6;
    bw->copy_gbs = best[0] > 0 ? 2.0 * (double)bytes / best[0] : 0;
    bw->read_gbs = best[1] > 0 ? (double)bytes / best[1] : 0;
    bw->gpu_timed = copy_timed;
    return 0;
}

/* nibble info --pipelines [-m MODEL] [--csv]: loads the model on the device with every pipeline
 * it uses, and prints the driver's compiler statistics of each (VK_KHR_pipeline_executable_
 * properties): registers, spills, LDS, scratch, subgroups per SIMD and the occupancy they imply.
 * The pipeline cache is bypassed (statistics come from a compile) and left untouched. */
#include <stdio.h>
#include <string.h>

#include "forward.h"
#include "info_model.h"

/* "v" or "-" when the driver gave no such statistic. */
static const char *num(double v, char *buf, size_t n)
{
    if (v < 0) snprintf(buf, n, "-");
    else snprintf(buf, n, "%.0f", v);
    return buf;
}

static double stat(const struct vkx_pipeline_stats *s, const char *name)
{
    for (uint32_t i = 0; i < s->n; i++)
        if (!strcmp(s->s[i].name, name)) return s->s[i].value;
    return -1;
}

/* The specialization constants, separated by `sep`. */
static void spec_str(const struct vkx_pipeline_stats *s, char sep, char *buf, size_t n)
{
    size_t w = 0;
    buf[0] = 0;
    for (uint32_t i = 0; i < s->n_spec && w + 12 < n; i++)
        w += (size_t)snprintf(buf + w, n - w, "%.*s%u", i ? 1 : 0, &sep, s->spec[i]);
}

/* Occupancy in percent: resident subgroups per SIMD over the most a SIMD holds; -1: unknown. */
static double occupancy(const struct vkx_pipeline_stats *s)
{
    if (s->waves_per_simd < 0 || !s->max_waves) return -1;
    double o = 100.0 * s->waves_per_simd / s->max_waves;
    return o > 100 ? 100 : o;
}

int nb_info_pipelines(const char *model, bool csv)
{
    char err[512];
    struct nb_gpu_model g;
    struct vkx_opts vo = {.device_index = -1, .pipeline_cache_dir = "", .pipeline_stats = true};
    if (nb_gpu_model_load(&g, model, &vo, err, sizeof err) != 0) {
        fprintf(stderr, "nibble info: %s\n", err);
        return 1;
    }
    const struct vkx_caps *c = &g.vk.caps;
    if (vkx_pstats_state(&g.vk) != 1) {
        printf("pipeline statistics: not offered by this driver (%s, %s: no "
               "VK_KHR_pipeline_executable_properties)\n",
               c->name, c->driver_name[0] ? c->driver_name : "unknown driver");
        nb_gpu_model_free(&g);
        return 0;
    }
    uint32_t n = vkx_pstats_count(&g.vk);
    if (csv) {
        /* one row per pipeline, the spec constants separated by spaces */
        printf("pipeline,spec,texel,subgroup,vgprs,sgprs,spilled_vgprs,spilled_sgprs,lds_bytes,"
               "scratch_bytes,waves_per_simd,max_waves,occupancy_pct,latency,inv_throughput\n");
    } else {
        char dev[1024];
        vkx_device_line(&g.vk, dev, sizeof dev);
        printf("device: %s\n", dev);
        printf("model: %s: %u pipelines, compiled with statistics (occupancy: waves per SIMD "
               "over the most a SIMD holds)\n", model, n);
        printf("\n| pipeline | spec | tx | subgroup | VGPRs | SGPRs | spilled VGPRs | "
               "spilled SGPRs | LDS B | scratch B | waves/SIMD | occupancy | latency | "
               "inv. throughput |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
               "---:|---:|\n");
    }
    uint32_t spilling = 0;
    for (uint32_t i = 0; i < n; i++) {
        const struct vkx_pipeline_stats *s = vkx_pstats_get(&g.vk, i);
        char sp[160], b[10][32];
        spec_str(s, csv ? ' ' : ',', sp, sizeof sp);
        double occ = occupancy(s);
        if (s->spilled_vgprs > 0 || s->spilled_sgprs > 0 || s->scratch_bytes > 0) spilling++;
        if (csv)
            printf("%s,%s,%d,%u,%s,%s,%s,%s,%s,%s,%s,%u,%s,%s,%s\n", s->name, sp, s->texel,
                   s->subgroup_size, num(s->vgprs, b[0], 32),
                   num(s->sgprs, b[1], 32), num(s->spilled_vgprs, b[2], 32),
                   num(s->spilled_sgprs, b[3], 32), num(s->lds_bytes, b[4], 32),
                   num(s->scratch_bytes, b[5], 32), num(s->waves_per_simd, b[6], 32), s->max_waves,
                   num(occ, b[7], 32), num(stat(s, "Latency"), b[8], 32),
                   num(stat(s, "Inverse Throughput"), b[9], 32));
        else
            printf("| %s | %s | %s | %u | %s | %s | %s | %s | %s | %s | %s | %s%s | %s | %s |\n",
                   s->name, sp, s->texel ? "tx" : "", s->subgroup_size,
                   num(s->vgprs, b[0], 32), num(s->sgprs, b[1], 32),
                   num(s->spilled_vgprs, b[2], 32), num(s->spilled_sgprs, b[3], 32),
                   num(s->lds_bytes, b[4], 32), num(s->scratch_bytes, b[5], 32),
                   num(s->waves_per_simd, b[6], 32), num(occ, b[7], 32), occ >= 0 ? "%" : "",
                   num(stat(s, "Latency"), b[8], 32), num(stat(s, "Inverse Throughput"), b[9], 32));
    }
    if (!csv)
        printf("\n%u of %u pipelines spill registers to scratch memory\n", spilling, n);
    nb_gpu_model_free(&g);
    return 0;
}

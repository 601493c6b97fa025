/* nibble info: the Vulkan device nibble would use (device line, then every capability),
 * every device with --all, a model file's contents with -m MODEL (no Vulkan needed), or the
 * compiler statistics of a model's pipelines with --pipelines [-m MODEL] [--csv]. */
#include <stdio.h>
#include <string.h>

#include "cmds.h"
#include "info_model.h"
#include "vkx.h"

#ifndef NB_DEFAULT_MODEL
#define NB_DEFAULT_MODEL "models/default.gguf"
#endif

static void usage(FILE *f)
{
    fprintf(f, "usage: nibble info [--all] [--bandwidth] [-m MODEL] [--pipelines [--csv]]\n"
               "  (no option)  the Vulkan device nibble uses and its capabilities\n"
               "  --all        list every Vulkan device (NIBBLE_DEVICE=N picks one)\n"
               "  --bandwidth  also measure copy and read bandwidth with plain shaders\n"
               "  -m MODEL     the model's architecture, configuration and tensors\n"
               "  --pipelines  the driver's compiler statistics of every pipeline the model\n"
               "               (default: the default model) uses: registers, spills, LDS,\n"
               "               scratch, subgroups per SIMD, occupancy; --csv as CSV\n");
}

int cmd_info(int argc, char **argv)
{
    bool all = false, bandwidth = false, pipelines = false, csv = false;
    const char *model = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--all")) {
            all = true;
        } else if (!strcmp(argv[i], "--bandwidth")) {
            bandwidth = true;
        } else if (!strcmp(argv[i], "--pipelines")) {
            pipelines = true;
        } else if (!strcmp(argv[i], "--csv")) {
            csv = true;
        } else if (!strcmp(argv[i], "-m") && i + 1 < argc) {
            model = argv[++i];
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "nibble info: unknown option '%s' (try nibble info --help)\n", argv[i]);
            return 2;
        }
    }
    if (csv && !pipelines) {
        fprintf(stderr, "nibble info: --csv goes with --pipelines\n");
        return 2;
    }
    if (pipelines) return nb_info_pipelines(model ? model : NB_DEFAULT_MODEL, csv);
    if (model) return nb_info_model(model);

    char err[512];
    if (all) {
        if (vkx_list_devices(stdout, err, sizeof err) != 0) {
            fprintf(stderr, "nibble info: %s\n", err);
            return 1;
        }
        return 0;
    }
    struct vkx_ctx ctx;
    struct vkx_opts opts = {.device_index = -1};
    if (vkx_create(&ctx, &opts, err, sizeof err) != 0) {
        fprintf(stderr, "nibble info: %s\n", err);
        return 1;
    }
    char line[1024];
    vkx_device_line(&ctx, line, sizeof line);
    printf("%s\n\n", line);
    vkx_caps_print(&ctx, stdout);
    int rc = 0;
    struct vkx_bandwidth bw;
    if (bandwidth && vkx_probe_bandwidth(&ctx, 0, 0, &bw, err, sizeof err) != 0) {
        fprintf(stderr, "nibble info: %s\n", err);
        rc = 1;
    } else if (bandwidth) {
        printf("bandwidth copy: %.2f GB/s (read + write, %llu MiB, best shape %s, %s)\n",
               bw.copy_gbs, (unsigned long long)(bw.bytes >> 20), bw.copy_shape,
               bw.gpu_timed ? "GPU timed" : "host timed");
        printf("bandwidth read: %.2f GB/s (best shape %s)\n", bw.read_gbs, bw.read_shape);
        printf("bandwidth transfer copy: %.2f GB/s (vkCmdCopyBuffer, host timed)\n",
               bw.transfer_gbs);
    }
    vkx_destroy(&ctx);
    return rc;
}

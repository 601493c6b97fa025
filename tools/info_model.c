/* nibble info -m MODEL: architecture, configuration, tensor counts by type, bytes and parameter
 * count. Reads the file only (no Vulkan). */
#include <stdio.h>
#include <string.h>

#include "info_model.h"
#include "model.h"

int nb_info_model(const char *path)
{
    struct nb_model m;
    char err[512];
    if (nb_model_load(&m, path, err, sizeof err) != 0) {
        if (strstr(err, path))
            fprintf(stderr, "nibble info: %s\n", err);
        else
            fprintf(stderr, "nibble info: %s: %s\n", path, err);
        return 1;
    }
    printf("model                %s\n", path);
    nb_config_print(&m.cfg, stdout);

    const struct gguf *g = m.gguf;
    uint64_t count[GGML_TYPE_MAX] = {0}, bytes[GGML_TYPE_MAX] = {0}, params = 0, total = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const struct gguf_tensor *t = &g->tensors[i];
        uint64_t n = 1;
        for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++)
            n *= t->ne[d];
        params += n;
        total += t->nbytes;
        if ((unsigned)t->type < GGML_TYPE_MAX) {
            count[t->type]++;
            bytes[t->type] += t->nbytes;
        }
    }
    printf("tensors              %llu\n", (unsigned long long)g->n_tensors);
    for (int t = 0; t < GGML_TYPE_MAX; t++) {
        if (!count[t]) continue;
        const char *name = ggml_type_name((enum ggml_type)t);
        printf("  %-19s%llu tensors, %.2f MiB\n", name ? name : "?", (unsigned long long)count[t],
               (double)bytes[t] / (1024.0 * 1024.0));
    }
    printf("tensor bytes         %llu (%.2f MiB)\n", (unsigned long long)total,
           (double)total / (1024.0 * 1024.0));
    printf("parameters           %llu (%.3f M)\n", (unsigned long long)params,
           (double)params / 1e6);
    nb_model_free(&m);
    return 0;
}

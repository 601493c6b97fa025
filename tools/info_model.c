/* nibble info -m MODEL: architecture, configuration, the type mix (tensors and bytes per type),
 * bytes and parameter count, and the load-time self-test's cached verdicts on the default device
 * (engine/selftest.h; opens the device but builds nothing). */
#include <stdio.h>
#include <string.h>

#include "info_model.h"
#include "model.h"
#include "selftest.h"

/* Decimal units, as model sizes are usually given: "2.60 GB", "1.14 MB", "12.3 kB", "40 B". */
static const char *size_str(uint64_t b, char *buf, size_t n)
{
    if (b >= 1000000000ull) snprintf(buf, n, "%.2f GB", (double)b / 1e9);
    else if (b >= 1000000ull) snprintf(buf, n, "%.2f MB", (double)b / 1e6);
    else if (b >= 1000ull) snprintf(buf, n, "%.1f kB", (double)b / 1e3);
    else snprintf(buf, n, "%llu B", (unsigned long long)b);
    return buf;
}

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
    /* the type mix on one line, largest share of the bytes first:
     * "types                q4_0 278 tensors 2.60 GB, f32 263 tensors 1.14 MB" */
    printf("types               ");
    for (int k = 0;; k++) {
        int best = -1;
        for (int t = 0; t < GGML_TYPE_MAX; t++)
            if (count[t] && (best < 0 || bytes[t] > bytes[best])) best = t;
        if (best < 0) break;
        const char *name = ggml_type_name((enum ggml_type)best);
        char sz[32];
        printf("%s %s %llu tensor%s %s", k ? "," : "", name ? name : "?",
               (unsigned long long)count[best], count[best] == 1 ? "" : "s",
               size_str(bytes[best], sz, sizeof sz));
        count[best] = 0;
    }
    printf("\n");
    printf("tensor bytes         %llu (%.2f MiB)\n", (unsigned long long)total,
           (double)total / (1024.0 * 1024.0));
    printf("parameters           %llu (%.3f M)\n", (unsigned long long)params,
           (double)params / 1e6);
    (void)nb_selftest_info(&m, stdout); /* "no Vulkan device" is a line, not an error here */
    nb_model_free(&m);
    return 0;
}

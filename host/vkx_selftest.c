/* vkx_selftest.c: what the engine's load-time self-test (engine/selftest.c) needs from the host
 * layer: a store of verdicts next to the on-disk pipeline cache, and fault injection
 * (NIBBLE_FAULT) for testing the fallbacks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vkx_selftest.h"

/* <dir>/selftest-<uuid>.txt beside <dir>/pipelines-<uuid>.bin; false when the cache is off. */
static bool verdict_path(const struct vkx_ctx *ctx, char *buf, size_t n)
{
    const char *p = ctx->pipeline_cache_path, *s = NULL;
    for (const char *q = strstr(p, "pipelines-"); q; q = strstr(q + 1, "pipelines-")) s = q;
    const char *dot = s ? strrchr(s, '.') : NULL;
    if (!p[0] || !s || !dot) return false;
    int w = snprintf(buf, n, "%.*sselftest-%.*s.txt", (int)(s - p), p,
                     (int)(dot - s - strlen("pipelines-")), s + strlen("pipelines-"));
    return w > 0 && (size_t)w < n;
}

int vkx_verdict_get(const struct vkx_ctx *ctx, const char *key, char *val, size_t n)
{
    char path[1100], line[1024];
    if (!verdict_path(ctx, path, sizeof path)) return 0;
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t kl = strlen(key);
    int found = 0;
    while (fgets(line, sizeof line, f)) { /* the last line of a key wins */
        if (strncmp(line, key, kl) != 0 || line[kl] != ' ') continue;
        line[strcspn(line, "\r\n")] = 0;
        snprintf(val, n, "%s", line + kl + 1);
        found = 1;
    }
    fclose(f);
    return found;
}

void vkx_verdict_put(const struct vkx_ctx *ctx, const char *key, const char *val)
{
    char path[1100];
    if (!verdict_path(ctx, path, sizeof path)) return;
    FILE *f = fopen(path, "a"); /* one short line: appends from two processes do not mix */
    if (!f) return;             /* a read-only cache folder is not an error */
    fprintf(f, "%s %s\n", key, val);
    fclose(f);
}

bool vkx_verdict_path(const struct vkx_ctx *ctx, char *buf, size_t n)
{
    return verdict_path(ctx, buf, n);
}

/* ---- fault injection ----------------------------------------------------------------------- */

#define FAULT_MAX 8
static unsigned fault_fired; /* bit i: entry i of NIBBLE_FAULT has fired (per process) */

int vkx_fault_check(char *err, size_t errlen)
{
    const char *env = getenv("NIBBLE_FAULT");
    if (!env || !*env) return 0;
    const char *p = env;
    for (int i = 0; *p; i++) {
        size_t len = strcspn(p, ",");
        bool ok = i < FAULT_MAX &&
                  ((!strncmp(p, "corrupt:", 8) && len > 8) || (!strncmp(p, "nobuild:", 8) && len > 8)) &&
                  !(p[len] == ',' && !p[len + 1]);
        if (!ok) {
            snprintf(err, errlen, "NIBBLE_FAULT=%s: expected up to %d of corrupt:PIPELINE or "
                     "nobuild:PIPELINE, comma-separated", env, FAULT_MAX);
            return -1;
        }
        p += len + (p[len] == ',');
    }
    return 0;
}

bool vkx_fault(const char *kind, const char *name)
{
    const char *p = getenv("NIBBLE_FAULT");
    if (!p || !name) return false;
    size_t kl = strlen(kind), nl = strlen(name);
    for (int i = 0; *p && i < FAULT_MAX; i++) {
        size_t len = strcspn(p, ",");
        if (len == kl + 1 + nl && !strncmp(p, kind, kl) && p[kl] == ':' &&
            !strncmp(p + kl + 1, name, nl) && !(fault_fired & (1u << i))) {
            fault_fired |= 1u << i;
            return true;
        }
        p += len + (p[len] == ',');
    }
    return false;
}

void vkx_fault_reset(void) { fault_fired = 0; }

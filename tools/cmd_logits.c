/* nibble logits -m MODEL --ids "2 17 ..." -o OUT.f32 [--decode] [-c CTX]
 *
 * Writes n x n_vocab little-endian float32 logits: row i after ids[0..i]. Without --decode all
 * ids go in one prefill batch (every row kept); with --decode one id per step. This is how
 * nibble is compared with other engines. --kv picks the KV cache type (default: f32 for models
 * with F32 K/V projections, else f16). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmds.h"
#include "nibble.h"

static int usage(void)
{
    fprintf(stderr, "usage: nibble logits -m MODEL --ids \"2 17 ...\" -o OUT.f32 [--decode] "
                    "[-c CTX] [--kv f16|f32]\n");
    return 2;
}

/* Parses space-separated ids; returns the count or -1. */
static int parse_ids(const char *s, int32_t **out)
{
    int cap = 64, n = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    while (ids && *s) {
        while (*s == ' ' || *s == ',' || *s == '\t' || *s == '\n')
            s++;
        if (!*s) break;
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (end == s || errno || v < 0 || v > 0x7fffffff) {
            free(ids);
            return -1;
        }
        if (n == cap) {
            int32_t *t = realloc(ids, (size_t)(cap *= 2) * sizeof *ids);
            if (!t) break;
            ids = t;
        }
        ids[n++] = (int32_t)v;
        s = end;
    }
    *out = ids;
    return ids ? n : -1;
}

int cmd_logits(int argc, char **argv)
{
    const char *model = NULL, *ids_s = NULL, *out = NULL;
    bool decode = false;
    unsigned ctx = 0;
    enum nibble_kv_type kv = NIBBLE_KV_AUTO;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-m") && i + 1 < argc)
            model = argv[++i];
        else if (!strcmp(argv[i], "--ids") && i + 1 < argc)
            ids_s = argv[++i];
        else if (!strcmp(argv[i], "-o") && i + 1 < argc)
            out = argv[++i];
        else if (!strcmp(argv[i], "-c") && i + 1 < argc)
            ctx = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--kv") && i + 1 < argc && !strcmp(argv[i + 1], "f16") && ++i)
            kv = NIBBLE_KV_F16;
        else if (!strcmp(argv[i], "--kv") && i + 1 < argc && !strcmp(argv[i + 1], "f32") && ++i)
            kv = NIBBLE_KV_F32;
        else if (!strcmp(argv[i], "--decode"))
            decode = true;
        else
            return usage();
    }
    if (!model || !ids_s || !out) return usage();
    int32_t *ids;
    int n = parse_ids(ids_s, &ids);
    if (n <= 0) {
        fprintf(stderr, "nibble logits: --ids: expected non-negative integers\n");
        if (n == 0) free(ids);
        return 2;
    }
    char err[512];
    struct nibble_model *m = nibble_model_load(model, NULL, err, sizeof err);
    if (!m) {
        fprintf(stderr, "nibble logits: %s\n", err);
        free(ids);
        return 1;
    }
    struct nibble_context_params cp = nibble_context_default_params();
    cp.n_ctx = ctx ? ctx : (unsigned)n;
    cp.n_batch = decode ? 1 : (unsigned)n;
    cp.kv_type = kv;
    struct nibble_context *c = nibble_context_create(m, &cp, err, sizeof err);
    FILE *f = NULL;
    int rc = 1;
    if (!c) {
        fprintf(stderr, "nibble logits: %s\n", err);
        goto done;
    }
    f = fopen(out, "wb");
    if (!f) {
        fprintf(stderr, "nibble logits: %s: %s\n", out, strerror(errno));
        goto done;
    }
    size_t V = (size_t)nibble_n_vocab(m);
    if (decode) {
        for (int i = 0; i < n; i++) {
            if (nibble_eval(c, &ids[i], 1, false, err, sizeof err) != 0) {
                fprintf(stderr, "nibble logits: %s\n", err);
                goto done;
            }
            fwrite(nibble_logits(c, -1), sizeof(float), V, f);
        }
    } else {
        if (nibble_eval(c, ids, n, true, err, sizeof err) != 0) {
            fprintf(stderr, "nibble logits: %s\n", err);
            goto done;
        }
        for (int i = 0; i < n; i++)
            fwrite(nibble_logits(c, i), sizeof(float), V, f);
    }
    rc = 0;
done:
    if (f && fclose(f) != 0 && rc == 0) {
        fprintf(stderr, "nibble logits: %s: write failed\n", out);
        rc = 1;
    }
    nibble_context_destroy(c);
    nibble_model_free(m);
    free(ids);
    return rc;
}

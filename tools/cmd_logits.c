/* nibble logits -m MODEL --ids "2 17 ..." -o OUT.f32 [--decode] [-c CTX]
 *
 * Writes n x n_vocab little-endian float32 logits: row i after ids[0..i]. Without --decode all
 * ids go in one prefill batch (every row kept); with --decode one id per step. This is how
 * nibble is compared with other engines. --kv picks the KV cache type (default: f32 for models
 * with F32 K/V projections, else f16). OUT is written whole or not at all (a temporary renamed
 * over it; a device such as /dev/stdout is written in place), every write checked. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cmds.h"
#include "nibble.h"
#include "platform.h"

#define USAGE "nibble logits -m MODEL --ids \"2 17 ...\" -o OUT.f32 [--decode] [-c CTX] [--kv f16|f32]"

static int usage(void)
{
    fprintf(stderr, "usage: " USAGE "\n");
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
        char *end = (char *)s;
        errno = 0;
        long v = *s >= '0' && *s <= '9' ? strtol(s, &end, 10) : -1;
        if (end == s || errno || v < 0 || v > 0x7fffffff ||
            (*end && !strchr(" ,\t\n", *end))) {
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
    uint32_t ctx = 0;
    enum nibble_kv_type kv = NIBBLE_KV_AUTO;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--decode")) {
            decode = true;
            continue;
        }
        if (strcmp(a, "-m") && strcmp(a, "--ids") && strcmp(a, "-o") && strcmp(a, "-c") &&
            strcmp(a, "--kv"))
            return args_unknown("logits", a, USAGE);
        if (!(v = args_value("logits", argc, argv, &i))) return 2;
        if (!strcmp(a, "-m")) {
            model = v;
        } else if (!strcmp(a, "--ids")) {
            ids_s = v;
        } else if (!strcmp(a, "-o")) {
            out = v;
        } else if (!strcmp(a, "-c")) {
            if (args_u32("logits", a, v, 1, 1u << 24, &ctx) != 0) return 2;
        } else if (!strcmp(v, "f16") || !strcmp(v, "f32")) {
            kv = v[1] == '1' ? NIBBLE_KV_F16 : NIBBLE_KV_F32;
        } else {
            fprintf(stderr, "nibble logits: --kv: '%s' is not f16 or f32\n", v);
            return 2;
        }
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
    size_t V = (size_t)nibble_n_vocab(m);
    struct nibble_context_params cp = nibble_context_default_params();
    cp.n_ctx = args_ctx("logits", ctx ? ctx : (uint32_t)n, (uint32_t)nibble_n_ctx_train(m));
    cp.n_batch = decode ? 1 : (unsigned)n;
    cp.kv_type = kv;
    struct nibble_context *c = NULL;
    struct plat_out f = {0};
    int rc = 1;
    for (int i = 0; i < n; i++) /* the index in --ids, whichever way they are evaluated */
        if ((size_t)ids[i] >= V) {
            fprintf(stderr, "nibble logits: --ids: id %d at index %d is outside the vocabulary "
                    "of %zu\n", ids[i], i, V);
            goto done;
        }
    c = nibble_context_create(m, &cp, err, sizeof err);
    if (!c) {
        fprintf(stderr, "nibble logits: %s\n", err);
        goto done;
    }
    if (plat_out_open(&f, out, err, sizeof err) != 0) {
        fprintf(stderr, "nibble logits: %s\n", err);
        goto done;
    }
    bool wrote = true;
    if (decode) {
        for (int i = 0; i < n && wrote; i++) {
            if (nibble_eval(c, &ids[i], 1, false, err, sizeof err) != 0) {
                fprintf(stderr, "nibble logits: at --ids index %d: %s\n", i, err);
                goto done;
            }
            wrote = plat_out_write(&f, nibble_logits(c, -1), V * sizeof(float)) == 0;
        }
    } else {
        if (nibble_eval(c, ids, n, true, err, sizeof err) != 0) {
            fprintf(stderr, "nibble logits: %s\n", err);
            goto done;
        }
        for (int i = 0; i < n && wrote; i++)
            wrote = plat_out_write(&f, nibble_logits(c, i), V * sizeof(float)) == 0;
    }
    rc = 0;
done:
    if (f.f && plat_out_close(&f, rc == 0, err, sizeof err) != 0 && rc == 0) {
        fprintf(stderr, "nibble logits: %s\n", err);
        rc = 1;
    }
    nibble_context_destroy(c);
    nibble_model_free(m);
    free(ids);
    return rc;
}

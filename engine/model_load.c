/* model_load.c: architecture keys and tensor checks of a GGUF, one-line errors (model_load.h). */
#include "model_load.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>

#include "gtensor_pack.h"
#include "model.h"
#include "quant.h"

int nb_loader_fail(struct nb_loader *L, const char *fmt, ...)
{
    if (L->failed) return -1; /* keep the first error */
    L->failed = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(L->err, L->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* Finds ARCH.suffix, its full name in key[128]; NULL when absent (an error when required). */
static const struct gguf_kv *find(struct nb_loader *L, const char *suffix, char *key, bool required)
{
    snprintf(key, 128, "%s.%s", L->arch, suffix);
    const struct gguf_kv *kv = gguf_find(L->g, key);
    if (!kv && required) nb_loader_fail(L, "missing key %s", key);
    return kv;
}

int nb_key_u32(struct nb_loader *L, const char *suffix, uint32_t *out, bool required)
{
    char key[128];
    const struct gguf_kv *kv = find(L, suffix, key, required);
    if (!kv) return required ? -1 : 0;
    if (gguf_get_u32(L->g, key, out) != 0)
        return nb_loader_fail(L, "key %s: expected an unsigned 32-bit integer, got %s", key,
                              gguf_vtype_name(kv->type));
    return 1;
}

int nb_key_f32(struct nb_loader *L, const char *suffix, float *out, bool required)
{
    char key[128];
    const struct gguf_kv *kv = find(L, suffix, key, required);
    if (!kv) return required ? -1 : 0;
    if (gguf_get_f32(L->g, key, out) != 0 || !isfinite(*out))
        return nb_loader_fail(L, "key %s: expected a finite float, got %s", key,
                              gguf_vtype_name(kv->type));
    return 1;
}

int nb_key_layers_u32(struct nb_loader *L, const char *suffix, uint32_t n, uint32_t *out,
                      bool required)
{
    char key[128];
    const struct gguf_kv *kv = find(L, suffix, key, required);
    if (!kv) return required ? -1 : 0;
    if (kv->type == GGUF_ARRAY) {
        if (kv->arr_n != n)
            return nb_loader_fail(L, "key %s: array has %llu entries, expected %u (one per layer)",
                                  key, (unsigned long long)kv->arr_n, n);
        for (uint32_t i = 0; i < n; i++)
            if (gguf_get_arr_u32(kv, i, &out[i]) != 0)
                return nb_loader_fail(
                    L, "key %s: entry %u is not an unsigned 32-bit integer (array of %s)", key, i,
                    gguf_vtype_name(kv->arr_type));
        return 1;
    }
    uint32_t v;
    if (gguf_get_u32(L->g, key, &v) != 0)
        return nb_loader_fail(L, "key %s: expected an integer or an array of %u integers, got %s",
                              key, n, gguf_vtype_name(kv->type));
    for (uint32_t i = 0; i < n; i++)
        out[i] = v;
    return 1;
}

/* ---- tensors ------------------------------------------------------------------------------- */

static void fmt_shape(char *buf, size_t n, const uint64_t *ne, uint32_t nd)
{
    size_t o = (size_t)snprintf(buf, n, "{");
    for (uint32_t i = 0; i < nd && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%llu", i ? ", " : "", (unsigned long long)ne[i]);
    if (o < n) snprintf(buf + o, n - o, "}");
}

const struct gguf_tensor *nb_loader_tensor(struct nb_loader *L, const char *name,
                                           enum nb_tclass cls, bool required, uint32_t nd,
                                           uint64_t e0, uint64_t e1, uint64_t e2)
{
    if (L->failed) return NULL;
    const struct gguf_tensor *t = gguf_find_tensor(L->g, name);
    if (!t) {
        if (required) nb_loader_fail(L, "missing tensor %s", name);
        return NULL;
    }
    bool ok = cls == NB_TVEC ? nb_type_ok_vector(t->type) : nb_type_ok_matrix(t->type);
    if (!ok) {
        const char *tn = ggml_type_name(t->type);
        char tbuf[24];
        if (!tn) {
            snprintf(tbuf, sizeof tbuf, "type %d", (int)t->type);
            tn = tbuf;
        }
        nb_loader_fail(L, "%s: unsupported type %s (%s)", name, tn,
                       cls == NB_TVEC ? "norms and scales must be f32, f16 or bf16"
                                      : "supported matrix types: " NB_WEIGHT_TYPES);
        return NULL;
    }
    uint64_t want[GGUF_MAX_DIMS] = {e0, e1, e2, 1};
    for (uint32_t i = nd; i < GGUF_MAX_DIMS; i++)
        want[i] = 1;
    for (uint32_t i = 0; i < GGUF_MAX_DIMS; i++)
        if (t->ne[i] != want[i]) {
            char a[96], b[96];
            fmt_shape(a, sizeof a, want, nd);
            fmt_shape(b, sizeof b, t->ne, t->n_dims > nd ? t->n_dims : nd);
            nb_loader_fail(L, "%s: expected shape %s, got %s", name, a, b);
            return NULL;
        }
    if (t->ne[0] % ggml_blck_size(t->type)) {
        nb_loader_fail(L, "%s: row length %llu is not a multiple of the %s block size", name,
                       (unsigned long long)t->ne[0], ggml_type_name(t->type));
        return NULL;
    }
    return t;
}

const struct gguf_tensor *nb_loader_blk(struct nb_loader *L, uint32_t l, const char *suffix,
                                        enum nb_tclass cls, bool required, uint32_t nd, uint64_t e0,
                                        uint64_t e1, uint64_t e2)
{
    char name[96];
    snprintf(name, sizeof name, "blk.%u.%s", l, suffix);
    return nb_loader_tensor(L, name, cls, required, nd, e0, e1, e2);
}

const struct gguf_tensor *nb_loader_token_embd(struct nb_loader *L, uint64_t H, uint32_t *n_vocab)
{
    if (L->failed) return NULL;
    const struct gguf_tensor *te = gguf_find_tensor(L->g, "token_embd.weight");
    if (!te) {
        nb_loader_fail(L, "missing tensor token_embd.weight");
        return NULL;
    }
    if (te->n_dims != 2 || te->ne[1] == 0 || te->ne[1] > INT32_MAX) {
        char b[96];
        fmt_shape(b, sizeof b, te->ne, te->n_dims);
        nb_loader_fail(L, "token_embd.weight: expected shape {%llu, n_vocab}, got %s",
                       (unsigned long long)H, b);
        return NULL;
    }
    *n_vocab = (uint32_t)te->ne[1];
    return nb_loader_tensor(L, "token_embd.weight", NB_TMAT, true, 2, H, *n_vocab, 1);
}

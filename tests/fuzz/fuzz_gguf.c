/* fuzz_gguf: libFuzzer target for the GGUF reader (build with -DNIBBLE_FUZZ=ON and clang).
 *
 * Opens the input with gguf_open_memory; a rejected input must come with a one-line
 * "gguf: offset N: ..." message. An accepted one is walked completely: every key through the
 * lookups and typed getters, every array element, every tensor by name, and the first row of
 * each tensor nb_dequant_row supports is converted. ASan/UBSan report any read outside the
 * input, and the checks below abort on any broken invariant.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "quant.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_gguf: check failed: %s (line %d)\n", #c, __LINE__);              \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static volatile float sink;

/* A C string copy of a file string, or NULL when it holds a NUL byte or is too long. */
static char *cstr(struct gguf_str s, char *buf, size_t n)
{
    if (s.n >= n || memchr(s.p, 0, (size_t)s.n)) return NULL;
    memcpy(buf, s.p, (size_t)s.n);
    buf[s.n] = 0;
    return buf;
}

static void walk_kv(const struct gguf *g, const struct gguf_kv *kv)
{
    char key[512], sbuf[64];
    uint32_t u32;
    uint64_t u64;
    float f;
    bool b;
    unsigned acc = 0;
    for (uint64_t i = 0; i < kv->key.n; i++) acc += (unsigned char)kv->key.p[i];
    if (cstr(kv->key, key, sizeof key)) {
        CHECK(gguf_find(g, key) == kv);
        gguf_get_u32(g, key, &u32);
        gguf_get_u64(g, key, &u64);
        gguf_get_f32(g, key, &f);
        gguf_get_bool(g, key, &b);
        gguf_get_str(g, key, sbuf, sizeof sbuf);
    }
    CHECK((unsigned)kv->type < GGUF_VTYPE_COUNT);
    if (kv->type == GGUF_STRING)
        for (uint64_t i = 0; i < kv->v.str.n; i++) acc += (unsigned char)kv->v.str.p[i];
    if (kv->type == GGUF_ARRAY) {
        CHECK(kv->arr_type != GGUF_ARRAY && (unsigned)kv->arr_type < GGUF_VTYPE_COUNT);
        if (kv->arr_type == GGUF_STRING) {
            for (uint64_t i = 0; i < kv->arr_n; i++)
                for (uint64_t j = 0; j < kv->strs[i].n; j++) acc += (unsigned char)kv->strs[i].p[j];
        } else {
            for (uint64_t i = 0; i < kv->arr_n; i++) {
                if (gguf_get_arr_u32(kv, i, &u32) == 0) acc += u32;
                if (gguf_get_arr_f32(kv, i, &f) == 0) sink = f;
            }
            CHECK(gguf_get_arr_u32(kv, kv->arr_n, &u32) == -1);
        }
    }
    sink = (float)acc;
}

static void walk_tensor(const struct gguf *g, const struct gguf_tensor *t)
{
    char name[512];
    if (cstr(t->name, name, sizeof name)) {
        CHECK(gguf_find_tensor(g, name) == t);
        CHECK(gguf_str_eq(t->name, name));
    }
    CHECK(ggml_type_name(t->type) && ggml_type_size(t->type));
    CHECK(t->n_dims >= 1 && t->n_dims <= GGUF_MAX_DIMS);
    CHECK(ggml_blck_size(t->type) && t->ne[0] % ggml_blck_size(t->type) == 0);
    uint64_t rows = t->ne[1] * t->ne[2] * t->ne[3];
    CHECK(t->nbytes == ggml_row_size(t->type, t->ne[0]) * rows);
    CHECK(t->offset >= g->data_offset && t->offset % g->alignment == (g->data_offset % g->alignment));
    CHECK(t->offset <= g->size && t->nbytes <= g->size - t->offset);
    CHECK(t->data == g->base + t->offset);
    if (!nb_dequant_supported(t->type)) return;
    float *row = malloc((size_t)t->ne[0] * sizeof *row);
    if (!row) return;
    CHECK(nb_dequant_row(t->type, t->data, row, t->ne[0]) == 0);
    float s = 0;
    for (uint64_t i = 0; i < t->ne[0]; i++) s += row[i];
    sink = s;
    free(row);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    err[0] = 0;
    struct gguf *g = gguf_open_memory(data, size, err, sizeof err);
    if (!g) {
        CHECK(strncmp(err, "gguf: offset ", 13) == 0 && !strchr(err, '\n'));
        return 0;
    }
    CHECK(g->alignment && !(g->alignment & (g->alignment - 1)));
    CHECK(g->data_offset <= g->size);
    for (uint64_t i = 0; i < g->n_kv; i++) walk_kv(g, &g->kv[i]);
    for (uint64_t i = 0; i < g->n_tensors; i++) walk_tensor(g, &g->tensors[i]);
    gguf_close(g);
    return 0;
}

/* gguf_writer.c: the test GGUF builder declared in gguf_writer.h. */
#include "gguf_writer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"

/* A growable byte buffer; `bad` sticks after an allocation failure. */
struct buf {
    uint8_t *p;
    size_t n, cap;
    bool bad;
};

static void put(struct buf *b, const void *src, size_t n)
{
    if (b->bad) return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->bad = true;
            return;
        }
        b->p = p, b->cap = cap;
    }
    if (src) memcpy(b->p + b->n, src, n);
    else memset(b->p + b->n, 0, n);
    b->n += n;
}

static void put_u32(struct buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(b, x, 4);
}

static void put_u64(struct buf *b, uint64_t v)
{
    put_u32(b, (uint32_t)v);
    put_u32(b, (uint32_t)(v >> 32));
}

static void put_str(struct buf *b, const char *s)
{
    size_t n = strlen(s);
    put_u64(b, n);
    put(b, s, n);
}

struct gw_tensor {
    char *name;
    uint32_t type, n_dims;
    uint64_t ne[8];
    uint8_t *data; /* NULL = zeros */
    uint64_t nbytes;
    bool forced;
    uint64_t offset;
};

struct gw {
    uint32_t version, alignment;
    uint64_t n_kv;
    struct buf kv;
    struct gw_tensor *t;
    int n_t, cap_t;
    bool bad;
};

struct gw *gw_create(void)
{
    struct gw *w = calloc(1, sizeof *w);
    if (w) w->version = 3, w->alignment = 32;
    return w;
}

void gw_destroy(struct gw *w)
{
    if (!w) return;
    for (int i = 0; i < w->n_t; i++) free(w->t[i].name), free(w->t[i].data);
    free(w->t);
    free(w->kv.p);
    free(w);
}

void gw_set_version(struct gw *w, uint32_t version) { w->version = version; }
void gw_set_alignment(struct gw *w, uint32_t alignment) { w->alignment = alignment ? alignment : 1; }

void gw_kv_raw(struct gw *w, const char *key, uint32_t type, const void *bytes, size_t n)
{
    put_str(&w->kv, key);
    put_u32(&w->kv, type);
    put(&w->kv, bytes, n);
    w->n_kv++;
}

/* Scalars: v holds the value's little-endian bytes (the host is little-endian). */
#define GW_SCALAR(fn, ctype, vt)                                                                   \
    void fn(struct gw *w, const char *key, ctype v) { gw_kv_raw(w, key, vt, &v, sizeof v); }
GW_SCALAR(gw_kv_u8, uint8_t, GGUF_U8)
GW_SCALAR(gw_kv_i8, int8_t, GGUF_I8)
GW_SCALAR(gw_kv_u16, uint16_t, GGUF_U16)
GW_SCALAR(gw_kv_i16, int16_t, GGUF_I16)
GW_SCALAR(gw_kv_u32, uint32_t, GGUF_U32)
GW_SCALAR(gw_kv_i32, int32_t, GGUF_I32)
GW_SCALAR(gw_kv_u64, uint64_t, GGUF_U64)
GW_SCALAR(gw_kv_i64, int64_t, GGUF_I64)
GW_SCALAR(gw_kv_f32, float, GGUF_F32)
GW_SCALAR(gw_kv_f64, double, GGUF_F64)
#undef GW_SCALAR

void gw_kv_bool(struct gw *w, const char *key, bool v)
{
    uint8_t b = v ? 1 : 0;
    gw_kv_raw(w, key, GGUF_BOOL, &b, 1);
}

void gw_kv_str(struct gw *w, const char *key, const char *v)
{
    put_str(&w->kv, key);
    put_u32(&w->kv, GGUF_STRING);
    put_str(&w->kv, v);
    w->n_kv++;
}

static size_t vtype_bytes(enum gguf_vtype t)
{
    switch (t) {
    case GGUF_U8: case GGUF_I8: case GGUF_BOOL: return 1;
    case GGUF_U16: case GGUF_I16: return 2;
    case GGUF_U32: case GGUF_I32: case GGUF_F32: return 4;
    case GGUF_U64: case GGUF_I64: case GGUF_F64: return 8;
    default: return 0;
    }
}

void gw_kv_arr(struct gw *w, const char *key, enum gguf_vtype elem, const void *data, uint64_t n)
{
    put_str(&w->kv, key);
    put_u32(&w->kv, GGUF_ARRAY);
    put_u32(&w->kv, elem);
    put_u64(&w->kv, n);
    put(&w->kv, data, (size_t)(n * vtype_bytes(elem)));
    w->n_kv++;
}

void gw_kv_arr_str(struct gw *w, const char *key, const char *const *strs, uint64_t n)
{
    put_str(&w->kv, key);
    put_u32(&w->kv, GGUF_ARRAY);
    put_u32(&w->kv, GGUF_STRING);
    put_u64(&w->kv, n);
    for (uint64_t i = 0; i < n; i++) put_str(&w->kv, strs[i]);
    w->n_kv++;
}

int gw_tensor_raw(struct gw *w, const char *name, uint32_t type, uint32_t n_dims,
                  const uint64_t *ne, const void *data, uint64_t nbytes)
{
    if (w->n_t == w->cap_t) {
        int cap = w->cap_t ? 2 * w->cap_t : 16;
        struct gw_tensor *t = realloc(w->t, (size_t)cap * sizeof *t);
        if (!t) {
            w->bad = true;
            return -1;
        }
        w->t = t, w->cap_t = cap;
    }
    struct gw_tensor *t = &w->t[w->n_t];
    memset(t, 0, sizeof *t);
    t->name = malloc(strlen(name) + 1);
    if (!t->name) {
        w->bad = true;
        return -1;
    }
    strcpy(t->name, name);
    t->type = type;
    t->n_dims = n_dims;
    for (uint32_t d = 0; d < n_dims && d < 8; d++) t->ne[d] = ne[d];
    t->nbytes = nbytes;
    if (data && nbytes) {
        t->data = malloc((size_t)nbytes);
        if (!t->data) {
            w->bad = true;
            return -1;
        }
        memcpy(t->data, data, (size_t)nbytes);
    }
    return w->n_t++;
}

/* Bytes of a well-formed tensor (0 if the type is unknown or ne[0] is not a whole row). */
static uint64_t tensor_bytes(enum ggml_type type, uint32_t n_dims, const uint64_t *ne)
{
    uint64_t nb = ggml_row_size(type, ne[0]);
    for (uint32_t d = 1; d < n_dims; d++) nb *= ne[d];
    return nb;
}

int gw_tensor(struct gw *w, const char *name, enum ggml_type type, uint32_t n_dims,
              const uint64_t *ne, const void *data)
{
    return gw_tensor_raw(w, name, type, n_dims, ne, data, tensor_bytes(type, n_dims, ne));
}

int gw_tensor_f32(struct gw *w, const char *name, enum ggml_type type, uint32_t n_dims,
                  const uint64_t *ne, const float *values)
{
    uint64_t nb = tensor_bytes(type, n_dims, ne), rows = 1, rs = ggml_row_size(type, ne[0]);
    for (uint32_t d = 1; d < n_dims; d++) rows *= ne[d];
    uint8_t *q = malloc(nb ? (size_t)nb : 1);
    if (!q || !nb) {
        free(q);
        w->bad = true;
        return -1;
    }
    for (uint64_t r = 0; r < rows; r++)
        if (nb_quant_row(type, values + r * ne[0], q + r * rs, ne[0])) {
            free(q);
            w->bad = true;
            return -1;
        }
    int i = gw_tensor_raw(w, name, type, n_dims, ne, q, nb);
    free(q);
    return i;
}

void gw_tensor_offset(struct gw *w, int i, uint64_t rel_offset)
{
    if (i < 0 || i >= w->n_t) return;
    w->t[i].forced = true;
    w->t[i].offset = rel_offset;
}

void *gw_serialize(struct gw *w, size_t *size)
{
    struct buf b = {0};
    uint64_t a = w->alignment, pos = 0;
    /* Place the data of every tensor whose offset is not forced. */
    for (int i = 0; i < w->n_t; i++) {
        if (w->t[i].forced) continue;
        w->t[i].offset = pos;
        pos = (pos + w->t[i].nbytes + a - 1) / a * a;
    }
    put(&b, "GGUF", 4);
    put_u32(&b, w->version);
    put_u64(&b, (uint64_t)w->n_t);
    put_u64(&b, w->n_kv);
    put(&b, w->kv.p, w->kv.n);
    for (int i = 0; i < w->n_t; i++) {
        const struct gw_tensor *t = &w->t[i];
        put_str(&b, t->name);
        put_u32(&b, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims && d < 8; d++) put_u64(&b, t->ne[d]);
        put_u32(&b, t->type);
        put_u64(&b, t->offset);
    }
    if (w->n_t) put(&b, NULL, (size_t)((b.n + a - 1) / a * a - b.n));
    size_t data_start = b.n;
    for (int i = 0; i < w->n_t; i++) {
        const struct gw_tensor *t = &w->t[i];
        if (t->forced) continue;
        put(&b, NULL, data_start + (size_t)t->offset - b.n); /* padding up to the offset */
        put(&b, t->data, (size_t)t->nbytes);
    }
    if (b.bad || w->bad || w->kv.bad) {
        free(b.p);
        return NULL;
    }
    *size = b.n;
    return b.p;
}

int gw_write_file(struct gw *w, const char *path)
{
    size_t n;
    void *p = gw_serialize(w, &n);
    if (!p) return -1;
    FILE *f = fopen(path, "wb");
    int rc = f && fwrite(p, 1, n, f) == n ? 0 : -1;
    if (f && fclose(f)) rc = -1;
    free(p);
    return rc;
}

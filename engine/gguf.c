/* gguf.c: the bounds-checked GGUF v2/v3 reader declared in gguf.h.
 *
 * File layout (all little-endian):
 *   "GGUF" | u32 version | u64 n_tensors | u64 n_kv
 *   n_kv x      { str key | u32 vtype | value }
 *   n_tensors x { str name | u32 n_dims | u64 ne[n_dims] | u32 ggml_type | u64 offset }
 *   padding to general.alignment (default 32)
 *   tensor data; each tensor's offset is relative to the start of this section
 * where str = { u64 len | len bytes } and an array value = { u32 elem vtype | u64 n | elems }.
 *
 * Parsing is one forward pass with a cursor that refuses to move past the end of the buffer.
 * Every count read from the file is checked against the bytes that remain before anything is
 * allocated for it, so a 100-byte file can never make us allocate more than a few KB.
 */
#include "gguf.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "platform.h"

#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_KEY_LEN 65535u   /* keys and tensor names longer than this are rejected */
#define GGUF_MAX_COUNT 0x7fffffffu /* n_kv / n_tensors above this are rejected */
/* Smallest possible encodings, used to bound counts before allocating. */
#define GGUF_MIN_KV_BYTES 13u     /* u64 key len (key may not be empty: +1) + u32 type; value >= 0 */
#define GGUF_MIN_TENSOR_BYTES 33u /* u64 name len + 1 byte name + u32 n_dims + u64 ne + u32 type + u64 off */

/* ---------------------------------------------------------------------------------------------
 * ggml type facts
 */

struct type_info {
    const char *name;
    uint32_t blck; /* elements per block */
    uint32_t size; /* bytes per block */
};

/* Ids and sizes of every ggml type that has ever been written into GGUF files (gemma4.md §4.2,
 * gguf-py GGML_QUANT_SIZES). Ids 4, 5 (Q4_2, Q4_3), 31-33 and 36-38 were removed upstream and
 * stay unknown here. */
static const struct type_info type_table[GGML_TYPE_MAX] = {
    [0] = {"f32", 1, 4},        [1] = {"f16", 1, 2},        [2] = {"q4_0", 32, 18},
    [3] = {"q4_1", 32, 20},     [6] = {"q5_0", 32, 22},     [7] = {"q5_1", 32, 24},
    [8] = {"q8_0", 32, 34},     [9] = {"q8_1", 32, 36},     [10] = {"q2_k", 256, 84},
    [11] = {"q3_k", 256, 110},  [12] = {"q4_k", 256, 144},  [13] = {"q5_k", 256, 176},
    [14] = {"q6_k", 256, 210},  [15] = {"q8_k", 256, 292},  [16] = {"iq2_xxs", 256, 66},
    [17] = {"iq2_xs", 256, 74}, [18] = {"iq3_xxs", 256, 98}, [19] = {"iq1_s", 256, 50},
    [20] = {"iq4_nl", 32, 18},  [21] = {"iq3_s", 256, 110}, [22] = {"iq2_s", 256, 82},
    [23] = {"iq4_xs", 256, 136}, [24] = {"i8", 1, 1},       [25] = {"i16", 1, 2},
    [26] = {"i32", 1, 4},       [27] = {"i64", 1, 8},       [28] = {"f64", 1, 8},
    [29] = {"iq1_m", 256, 56},  [30] = {"bf16", 1, 2},      [34] = {"tq1_0", 256, 54},
    [35] = {"tq2_0", 256, 66},  [39] = {"mxfp4", 32, 17},   [40] = {"nvfp4", 64, 36},
    [41] = {"q1_0", 128, 18},   [42] = {"q2_0", 64, 18},
};

static const struct type_info *type_get(enum ggml_type t)
{
    if ((unsigned)t >= GGML_TYPE_MAX || !type_table[t].name) return NULL;
    return &type_table[t];
}

uint32_t ggml_blck_size(enum ggml_type t)
{
    const struct type_info *ti = type_get(t);
    return ti ? ti->blck : 0;
}

uint32_t ggml_type_size(enum ggml_type t)
{
    const struct type_info *ti = type_get(t);
    return ti ? ti->size : 0;
}

const char *ggml_type_name(enum ggml_type t)
{
    const struct type_info *ti = type_get(t);
    return ti ? ti->name : NULL;
}

uint64_t ggml_row_size(enum ggml_type t, uint64_t ne0)
{
    const struct type_info *ti = type_get(t);
    if (!ti || ne0 % ti->blck) return 0;
    return ne0 / ti->blck * ti->size;
}

static const char *const vtype_names[GGUF_VTYPE_COUNT] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64",
};
/* Bytes of a scalar value; 0 for string and array. */
static const uint8_t vtype_size[GGUF_VTYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

const char *gguf_vtype_name(enum gguf_vtype t)
{
    return (unsigned)t < GGUF_VTYPE_COUNT ? vtype_names[t] : "?";
}

/* ---------------------------------------------------------------------------------------------
 * Little-endian loads (the file may sit at any alignment; never cast pointers into it)
 */

static uint16_t ld16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t ld32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t ld64(const uint8_t *p) { return (uint64_t)ld32(p) | (uint64_t)ld32(p + 4) << 32; }

static float f32_from_bits(uint32_t b)
{
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

static double f64_from_bits(uint64_t b)
{
    double f;
    memcpy(&f, &b, sizeof f);
    return f;
}

/* ---------------------------------------------------------------------------------------------
 * Cursor over the file
 */

struct rd {
    const uint8_t *p;
    uint64_t size, off;
    char *err;
    size_t errlen;
};

/* Writes "gguf: offset AT: <message>" into the error buffer; always returns -1. */
static int fail(struct rd *r, uint64_t at, const char *fmt, ...)
{
    if (!r->err || !r->errlen) return -1;
    int n = snprintf(r->err, r->errlen, "gguf: offset %" PRIu64 ": ", at);
    if (n >= 0 && (size_t)n < r->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->err + n, r->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* A printable, one-line, shortened copy of a file string for error messages. */
static const char *show(struct gguf_str s, char buf[80])
{
    size_t n = 0;
    for (uint64_t i = 0; i < s.n && n < 72; i++) {
        unsigned char c = (unsigned char)s.p[i];
        buf[n++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (s.n > 72) buf[n++] = '.', buf[n++] = '.', buf[n++] = '.';
    buf[n] = 0;
    return buf;
}

/* Takes n bytes; fails naming `what` if fewer remain. */
static int take(struct rd *r, uint64_t n, const uint8_t **out, const char *what)
{
    *out = NULL;
    if (n > r->size - r->off)
        return fail(r, r->off, "%s needs %" PRIu64 " bytes but only %" PRIu64
                    " remain (file size %" PRIu64 ")", what, n, r->size - r->off, r->size);
    *out = r->p + r->off;
    r->off += n;
    return 0;
}

static int rd_u32(struct rd *r, uint32_t *v, const char *what)
{
    const uint8_t *b;
    if (take(r, 4, &b, what)) return -1;
    *v = ld32(b);
    return 0;
}

static int rd_u64(struct rd *r, uint64_t *v, const char *what)
{
    const uint8_t *b;
    if (take(r, 8, &b, what)) return -1;
    *v = ld64(b);
    return 0;
}

static int rd_str(struct rd *r, struct gguf_str *s, uint64_t maxlen, const char *what)
{
    uint64_t at = r->off, n;
    const uint8_t *b;
    if (rd_u64(r, &n, what)) return -1;
    if (n > r->size - r->off)
        return fail(r, at, "%s length %" PRIu64 " runs past end of file (%" PRIu64
                    " bytes remain)", what, n, r->size - r->off);
    if (n > maxlen) return fail(r, at, "%s length %" PRIu64 " exceeds %" PRIu64, what, n, maxlen);
    if (take(r, n, &b, what)) return -1;
    s->p = (const char *)b;
    s->n = n;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Name index: open addressing over FNV-1a, slots hold index+1 (0 = empty)
 */

struct index {
    uint32_t *slot;
    uint64_t mask;
};

static uint32_t hash_bytes(const char *p, uint64_t n)
{
    uint32_t h = 2166136261u;
    for (uint64_t i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 16777619u;
    return h;
}

static int index_init(struct index *ix, uint64_t n)
{
    uint64_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    ix->slot = calloc(cap, sizeof *ix->slot);
    ix->mask = cap - 1;
    return ix->slot ? 0 : -1;
}

/* Finds the slot for (p, n) among names[]: returns the slot position; *found is the index + 1
 * of an equal name already present, or 0. `stride` steps through an array of structs whose
 * first member is a struct gguf_str. */
static uint64_t index_probe(const struct index *ix, const char *p, uint64_t n, const void *names,
                            size_t stride, uint32_t *found)
{
    uint64_t i = hash_bytes(p, n) & ix->mask;
    for (;; i = (i + 1) & ix->mask) {
        uint32_t v = ix->slot[i];
        *found = v;
        if (!v) return i;
        const struct gguf_str *s = (const struct gguf_str *)((const char *)names + (v - 1) * stride);
        if (s->n == n && memcmp(s->p, p, n) == 0) return i;
    }
}

/* The public struct plus what the reader keeps privately; struct gguf comes first so the two
 * pointers convert. */
struct gguf_full {
    struct gguf g;
    struct plat_map map;
    struct index kv_ix, t_ix;
    struct gguf_str *strs; /* storage for every string array, in one block */
};

/* ---------------------------------------------------------------------------------------------
 * Metadata
 */

/* Reads one scalar of type t into kv->v. */
static void scalar_from(struct gguf_kv *kv, enum gguf_vtype t, const uint8_t *b)
{
    switch (t) {
    case GGUF_U8: case GGUF_BOOL: kv->v.u = b[0]; break;
    case GGUF_I8: kv->v.i = (int8_t)b[0]; break;
    case GGUF_U16: kv->v.u = ld16(b); break;
    case GGUF_I16: kv->v.i = (int16_t)ld16(b); break;
    case GGUF_U32: kv->v.u = ld32(b); break;
    case GGUF_I32: kv->v.i = (int32_t)ld32(b); break;
    case GGUF_U64: kv->v.u = ld64(b); break;
    case GGUF_I64: kv->v.i = (int64_t)ld64(b); break;
    case GGUF_F32: kv->v.f = f32_from_bits(ld32(b)); break;
    case GGUF_F64: kv->v.f = f64_from_bits(ld64(b)); break;
    default: break;
    }
}

/* Parses the value of kv (type already read). String arrays get their gguf_str storage from
 * *strs_used within f->strs (sized by the first pass, see count_str_elems). */
static int read_value(struct rd *r, struct gguf_full *f, struct gguf_kv *kv, uint64_t *strs_used,
                      uint64_t strs_cap, const char *key)
{
    uint64_t at = r->off;
    const uint8_t *b;
    if (kv->type == GGUF_STRING) return rd_str(r, &kv->v.str, UINT64_MAX, "string value");
    if (kv->type != GGUF_ARRAY) {
        if (take(r, vtype_size[kv->type], &b, "value")) return -1;
        if (kv->type == GGUF_BOOL && b[0] > 1)
            return fail(r, at, "key '%s': bool value %u is not 0 or 1", key, b[0]);
        scalar_from(kv, kv->type, b);
        return 0;
    }
    uint32_t et;
    uint64_t n;
    if (rd_u32(r, &et, "array element type")) return -1;
    if (et >= GGUF_VTYPE_COUNT) return fail(r, at, "key '%s': unknown array element type %u", key, et);
    if (et == GGUF_ARRAY) return fail(r, at, "key '%s': nested arrays are not supported", key);
    at = r->off;
    if (rd_u64(r, &n, "array length")) return -1;
    kv->arr_type = (enum gguf_vtype)et;
    kv->arr_n = n;
    uint64_t left = r->size - r->off;
    if (et != GGUF_STRING) {
        uint64_t es = vtype_size[et];
        if (n > left / es)
            return fail(r, at, "key '%s': array of %" PRIu64 " %s runs past end of file (%" PRIu64
                        " bytes remain)", key, n, vtype_names[et], left);
        if (take(r, n * es, &b, "array")) return -1;
        kv->arr_data = b;
        if (et == GGUF_BOOL)
            for (uint64_t i = 0; i < n; i++)
                if (b[i] > 1)
                    return fail(r, at + 8 + i, "key '%s': bool element %" PRIu64 " is %u", key, i, b[i]);
        return 0;
    }
    if (n > left / 8)
        return fail(r, at, "key '%s': array of %" PRIu64 " strings runs past end of file (%" PRIu64
                    " bytes remain)", key, n, left);
    if (n > strs_cap - *strs_used) return fail(r, at, "key '%s': internal string count mismatch", key);
    if (n == 0) return 0; /* an empty string array: strs stays NULL */
    struct gguf_str *s = f->strs + *strs_used;
    *strs_used += n;
    kv->strs = s;
    for (uint64_t i = 0; i < n; i++)
        if (rd_str(r, &s[i], UINT64_MAX, "array string")) return -1;
    return 0;
}

/* First pass over the metadata that only counts string-array elements (so one allocation holds
 * them all) and finds where the metadata ends. Returns -1 on a malformed section, in which case
 * the second pass reports the precise error. */
static int count_str_elems(struct rd r, uint64_t n_kv, uint64_t *total)
{
    char dummy[1];
    r.err = dummy, r.errlen = 0;
    *total = 0;
    for (uint64_t k = 0; k < n_kv; k++) {
        struct gguf_str s;
        uint32_t t, et;
        uint64_t n;
        const uint8_t *b;
        if (rd_str(&r, &s, GGUF_MAX_KEY_LEN, "") || rd_u32(&r, &t, "")) return -1;
        if (t >= GGUF_VTYPE_COUNT) return -1;
        if (t == GGUF_STRING) {
            if (rd_str(&r, &s, UINT64_MAX, "")) return -1;
        } else if (t != GGUF_ARRAY) {
            if (take(&r, vtype_size[t], &b, "")) return -1;
        } else {
            if (rd_u32(&r, &et, "") || et >= GGUF_VTYPE_COUNT || et == GGUF_ARRAY) return -1;
            if (rd_u64(&r, &n, "")) return -1;
            if (et != GGUF_STRING) {
                if (n > (r.size - r.off) / vtype_size[et] || take(&r, n * vtype_size[et], &b, ""))
                    return -1;
                continue;
            }
            if (n > (r.size - r.off) / 8) return -1;
            *total += n; /* counted before reading, so a failed pass still sizes the storage */
            for (uint64_t i = 0; i < n; i++)
                if (rd_str(&r, &s, UINT64_MAX, "")) return -1;
        }
    }
    return 0;
}

static int read_metadata(struct rd *r, struct gguf_full *f)
{
    struct gguf *g = &f->g;
    uint64_t n_strs = 0, used = 0;
    count_str_elems(*r, g->n_kv, &n_strs); /* errors are reported precisely by the pass below */
    if (n_strs) {
        /* Each array's count was checked against the bytes left (8 per string), so n_strs is at
         * most twice the file size / 8. */
        f->strs = calloc(n_strs, sizeof *f->strs);
        if (!f->strs) return fail(r, r->off, "out of memory for %" PRIu64 " strings", n_strs);
    }
    g->kv = calloc(g->n_kv ? g->n_kv : 1, sizeof *g->kv);
    if (!g->kv || index_init(&f->kv_ix, g->n_kv)) return fail(r, r->off, "out of memory");
    for (uint64_t k = 0; k < g->n_kv; k++) {
        struct gguf_kv *kv = &g->kv[k];
        uint64_t at = r->off;
        uint32_t t;
        char name[80];
        if (rd_str(r, &kv->key, GGUF_MAX_KEY_LEN, "key")) return -1;
        if (kv->key.n == 0) return fail(r, at, "key %" PRIu64 " is empty", k);
        show(kv->key, name);
        uint32_t dup;
        uint64_t pos = index_probe(&f->kv_ix, kv->key.p, kv->key.n, g->kv, sizeof *kv, &dup);
        if (dup) return fail(r, at, "duplicate key '%s'", name);
        uint64_t tat = r->off;
        if (rd_u32(r, &t, "value type")) return -1;
        if (t >= GGUF_VTYPE_COUNT) return fail(r, tat, "key '%s' has unknown value type %u", name, t);
        kv->type = (enum gguf_vtype)t;
        if (read_value(r, f, kv, &used, n_strs, name)) return -1;
        f->kv_ix.slot[pos] = (uint32_t)(k + 1);
    }
    return 0;
}

/* general.alignment: optional, an integer that is a non-zero power of two fitting in u32. */
static int read_alignment(struct rd *r, struct gguf *g)
{
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    const struct gguf_kv *kv = gguf_find(g, "general.alignment");
    if (!kv) return 0;
    uint64_t a;
    if (gguf_get_u64(g, "general.alignment", &a))
        return fail(r, r->off, "general.alignment has type %s, expected an unsigned integer",
                    gguf_vtype_name(kv->type));
    if (a == 0 || (a & (a - 1)) || a > UINT32_MAX)
        return fail(r, r->off, "general.alignment %" PRIu64 " is not a power of two in [1, 2^31]", a);
    g->alignment = a;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Tensors
 */

static int read_tensor_info(struct rd *r, struct gguf_full *f, uint64_t k, uint64_t *rel_off,
                            uint64_t *info_at)
{
    struct gguf *g = &f->g;
    struct gguf_tensor *t = &g->tensors[k];
    uint64_t at = r->off;
    uint32_t nd, ty;
    char name[80];
    *info_at = at;
    if (rd_str(r, &t->name, GGUF_MAX_KEY_LEN, "tensor name")) return -1;
    if (t->name.n == 0) return fail(r, at, "tensor %" PRIu64 " has an empty name", k);
    show(t->name, name);
    uint32_t dup;
    uint64_t pos = index_probe(&f->t_ix, t->name.p, t->name.n, g->tensors, sizeof *t, &dup);
    if (dup) return fail(r, at, "duplicate tensor name '%s'", name);
    uint64_t dat = r->off;
    if (rd_u32(r, &nd, "tensor n_dims")) return -1;
    if (nd < 1 || nd > GGUF_MAX_DIMS)
        return fail(r, dat, "tensor '%s' has %u dimensions (expected 1 to %d)", name, nd, GGUF_MAX_DIMS);
    t->n_dims = nd;
    uint64_t nel = 1;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
        t->ne[d] = 1;
        if (d >= nd) continue;
        uint64_t eat = r->off;
        if (rd_u64(r, &t->ne[d], "tensor dimension")) return -1;
        if (t->ne[d] == 0) return fail(r, eat, "tensor '%s' has ne[%u] = 0", name, d);
        if (t->ne[d] > (uint64_t)INT64_MAX / nel)
            return fail(r, eat, "tensor '%s' element count overflows (ne[%u] = %" PRIu64 ")", name,
                        d, t->ne[d]);
        nel *= t->ne[d];
    }
    uint64_t tat = r->off;
    if (rd_u32(r, &ty, "tensor type")) return -1;
    const struct type_info *ti = ty < GGML_TYPE_MAX ? type_get((enum ggml_type)ty) : NULL;
    if (!ti) return fail(r, tat, "tensor '%s' has unknown ggml type id %u", name, ty);
    t->type = (enum ggml_type)ty;
    if (t->ne[0] % ti->blck)
        return fail(r, dat, "tensor '%s': ne[0] = %" PRIu64 " is not a multiple of the %s block size %u",
                    name, t->ne[0], ti->name, ti->blck);
    if (t->ne[0] / ti->blck > (uint64_t)INT64_MAX / ti->size)
        return fail(r, dat, "tensor '%s' byte size overflows", name);
    uint64_t nb = t->ne[0] / ti->blck * ti->size;
    for (uint32_t d = 1; d < nd; d++) {
        if (t->ne[d] > (uint64_t)INT64_MAX / nb)
            return fail(r, dat, "tensor '%s' byte size overflows", name);
        nb *= t->ne[d];
    }
    t->nbytes = nb;
    if (rd_u64(r, rel_off, "tensor offset")) return -1;
    f->t_ix.slot[pos] = (uint32_t)(k + 1);
    return 0;
}

static uint64_t sat_add(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }

struct span {
    uint64_t start, end, k;
};

static int span_cmp(const void *a, const void *b)
{
    const struct span *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start ? 1 : 0;
}

static int read_tensors(struct rd *r, struct gguf_full *f)
{
    struct gguf *g = &f->g;
    uint64_t n = g->n_tensors;
    g->tensors = calloc(n ? n : 1, sizeof *g->tensors);
    uint64_t *rel = calloc(n ? 2 * n : 1, sizeof *rel); /* [rel_off, info_at] per tensor */
    struct span *sp = calloc(n ? n : 1, sizeof *sp);
    int rc = -1;
    if (!g->tensors || !rel || !sp || index_init(&f->t_ix, n)) {
        fail(r, r->off, "out of memory for %" PRIu64 " tensors", n);
        goto out;
    }
    for (uint64_t k = 0; k < n; k++)
        if (read_tensor_info(r, f, k, &rel[2 * k], &rel[2 * k + 1])) goto out;

    /* The data section starts at the next multiple of the alignment. */
    uint64_t a = g->alignment, end = r->off;
    if (end > UINT64_MAX - (a - 1)) {
        fail(r, end, "data section offset overflows");
        goto out;
    }
    g->data_offset = (end + a - 1) / a * a;
    if (!n && g->data_offset > g->size) g->data_offset = g->size; /* no data section needed */
    if (g->data_offset > g->size) {
        fail(r, end, "data section at %" PRIu64 " starts past end of file (size %" PRIu64 ")",
             g->data_offset, g->size);
        goto out;
    }
    for (uint64_t k = 0; k < n; k++) {
        struct gguf_tensor *t = &g->tensors[k];
        uint64_t ro = rel[2 * k];
        uint64_t at = rel[2 * k + 1] + 8 + t->name.n + 4 + 8 * t->n_dims + 4; /* its offset field */
        char name[80];
        show(t->name, name);
        if (ro % a) {
            fail(r, at, "tensor '%s' offset %" PRIu64 " is not a multiple of the alignment %" PRIu64,
                 name, ro, a);
            goto out;
        }
        uint64_t room = g->size - g->data_offset;
        if (ro > room || t->nbytes > room - ro) {
            uint64_t s0 = sat_add(g->data_offset, ro);
            fail(r, at, "tensor '%s' data [%" PRIu64 ", %" PRIu64 ") runs past end of file (size %"
                 PRIu64 ")", name, s0, sat_add(s0, t->nbytes), g->size);
            goto out;
        }
        t->offset = g->data_offset + ro;
        t->data = g->base + t->offset;
        sp[k] = (struct span){t->offset, t->offset + t->nbytes, k};
    }
    qsort(sp, n, sizeof *sp, span_cmp);
    for (uint64_t k = 1; k < n; k++) {
        if (sp[k].start >= sp[k - 1].end) continue;
        char n1[80], n2[80];
        const struct gguf_tensor *t1 = &g->tensors[sp[k - 1].k], *t2 = &g->tensors[sp[k].k];
        fail(r, rel[2 * sp[k].k + 1], "tensor '%s' data [%" PRIu64 ", %" PRIu64 ") overlaps tensor '%s' [%"
             PRIu64 ", %" PRIu64 ")", show(t2->name, n2), sp[k].start, sp[k].end,
             show(t1->name, n1), sp[k - 1].start, sp[k - 1].end);
        goto out;
    }
    rc = 0;
out:
    free(rel);
    free(sp);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Open / close
 */

static struct gguf *parse(struct gguf_full *f, const void *data, size_t size, char *err, size_t errlen)
{
    struct gguf *g = &f->g;
    struct rd r = {data, size, 0, err, errlen};
    const uint8_t *b;
    g->base = data;
    g->size = size;
    if (size < 4 || !data) {
        fail(&r, 0, "file too small for a GGUF header (%zu bytes)", size);
        goto bad;
    }
    take(&r, 4, &b, "magic");
    if (memcmp(b, "GGUF", 4) != 0) {
        fail(&r, 0, "bad magic %02x %02x %02x %02x (expected 'GGUF')", b[0], b[1], b[2], b[3]);
        goto bad;
    }
    if (rd_u32(&r, &g->version, "version")) goto bad;
    if (g->version == 1) {
        fail(&r, 4, "GGUF version 1 is not supported (only versions 2 and 3)");
        goto bad;
    }
    if (g->version != 2 && g->version != 3) {
        if (g->version && (g->version & 0xffff) == 0)
            fail(&r, 4, "version field 0x%08x looks big-endian; only little-endian GGUF is supported",
                 g->version);
        else
            fail(&r, 4, "unsupported GGUF version %u (only versions 2 and 3)", g->version);
        goto bad;
    }
    if (rd_u64(&r, &g->n_tensors, "tensor count") || rd_u64(&r, &g->n_kv, "metadata count")) goto bad;
    uint64_t left = size - r.off;
    if (g->n_kv > GGUF_MAX_COUNT || g->n_kv > left / GGUF_MIN_KV_BYTES) {
        fail(&r, 16, "metadata count %" PRIu64 " is impossible for the %" PRIu64 " bytes that remain",
             g->n_kv, left);
        goto bad;
    }
    if (g->n_tensors > GGUF_MAX_COUNT ||
        g->n_tensors > (left - g->n_kv * GGUF_MIN_KV_BYTES) / GGUF_MIN_TENSOR_BYTES) {
        fail(&r, 8, "tensor count %" PRIu64 " is impossible for the %" PRIu64 " bytes that remain",
             g->n_tensors, left);
        goto bad;
    }
    if (read_metadata(&r, f) || read_alignment(&r, g) || read_tensors(&r, f)) goto bad;
    return g;
bad:
    gguf_close(g);
    return NULL;
}

struct gguf *gguf_open_memory(const void *data, size_t size, char *err, size_t errlen)
{
    if (err && errlen) err[0] = 0;
    struct gguf_full *f = calloc(1, sizeof *f);
    if (!f) {
        if (err && errlen) snprintf(err, errlen, "gguf: out of memory");
        return NULL;
    }
    return parse(f, data, size, err, errlen);
}

struct gguf *gguf_open(const char *path, char *err, size_t errlen)
{
    if (err && errlen) err[0] = 0;
    struct gguf_full *f = calloc(1, sizeof *f);
    if (!f) {
        if (err && errlen) snprintf(err, errlen, "gguf: out of memory");
        return NULL;
    }
    if (plat_map_file(&f->map, path, err, errlen)) {
        free(f);
        return NULL;
    }
    f->g.map_ = &f->map;
    return parse(f, f->map.data, f->map.size, err, errlen);
}

void gguf_close(struct gguf *g)
{
    if (!g) return;
    struct gguf_full *f = (struct gguf_full *)g;
    if (g->map_) plat_unmap(&f->map);
    free(f->kv_ix.slot);
    free(f->t_ix.slot);
    free(f->strs);
    free(g->kv);
    free(g->tensors);
    free(f);
}

/* ---------------------------------------------------------------------------------------------
 * Lookup and typed getters
 */

const struct gguf_kv *gguf_find(const struct gguf *g, const char *key)
{
    const struct gguf_full *f = (const struct gguf_full *)g;
    if (!g || !key || !f->kv_ix.slot) return NULL;
    uint32_t found;
    index_probe(&f->kv_ix, key, strlen(key), g->kv, sizeof *g->kv, &found);
    return found ? &g->kv[found - 1] : NULL;
}

const struct gguf_tensor *gguf_find_tensor(const struct gguf *g, const char *name)
{
    const struct gguf_full *f = (const struct gguf_full *)g;
    if (!g || !name || !f->t_ix.slot) return NULL;
    uint32_t found;
    index_probe(&f->t_ix, name, strlen(name), g->tensors, sizeof *g->tensors, &found);
    return found ? &g->tensors[found - 1] : NULL;
}

bool gguf_str_eq(struct gguf_str s, const char *c)
{
    size_t n = strlen(c);
    return s.n == n && memcmp(s.p, c, n) == 0;
}

static bool is_unsigned(enum gguf_vtype t)
{
    return t == GGUF_U8 || t == GGUF_U16 || t == GGUF_U32 || t == GGUF_U64;
}

static bool is_signed(enum gguf_vtype t)
{
    return t == GGUF_I8 || t == GGUF_I16 || t == GGUF_I32 || t == GGUF_I64;
}

/* An integer kv as u64, or -1 for negative values and non-integer types. */
static int as_u64(const struct gguf_kv *kv, uint64_t *out)
{
    if (is_unsigned(kv->type)) {
        *out = kv->v.u;
        return 0;
    }
    if (is_signed(kv->type) && kv->v.i >= 0) {
        *out = (uint64_t)kv->v.i;
        return 0;
    }
    return -1;
}

int gguf_get_u64(const struct gguf *g, const char *key, uint64_t *out)
{
    const struct gguf_kv *kv = gguf_find(g, key);
    return kv ? as_u64(kv, out) : -1;
}

int gguf_get_u32(const struct gguf *g, const char *key, uint32_t *out)
{
    uint64_t v;
    if (gguf_get_u64(g, key, &v) || v > UINT32_MAX) return -1;
    *out = (uint32_t)v;
    return 0;
}

int gguf_get_f32(const struct gguf *g, const char *key, float *out)
{
    const struct gguf_kv *kv = gguf_find(g, key);
    if (!kv) return -1;
    if (kv->type == GGUF_F32 || kv->type == GGUF_F64) *out = (float)kv->v.f;
    else if (is_unsigned(kv->type)) *out = (float)kv->v.u;
    else if (is_signed(kv->type)) *out = (float)kv->v.i;
    else return -1;
    return 0;
}

int gguf_get_bool(const struct gguf *g, const char *key, bool *out)
{
    const struct gguf_kv *kv = gguf_find(g, key);
    if (!kv || kv->type != GGUF_BOOL) return -1;
    *out = kv->v.u != 0;
    return 0;
}

int gguf_get_str(const struct gguf *g, const char *key, char *buf, size_t n)
{
    const struct gguf_kv *kv = gguf_find(g, key);
    if (!kv || kv->type != GGUF_STRING || n == 0) return -1;
    size_t m = kv->v.str.n < n - 1 ? (size_t)kv->v.str.n : n - 1;
    memcpy(buf, kv->v.str.p, m);
    buf[m] = 0;
    return 0;
}

/* Element i of a non-string array decoded into a scalar kv (so the scalar rules apply). */
static int arr_elem(const struct gguf_kv *kv, uint64_t i, struct gguf_kv *e)
{
    if (!kv || kv->type != GGUF_ARRAY || kv->arr_type == GGUF_STRING || i >= kv->arr_n) return -1;
    memset(e, 0, sizeof *e);
    e->type = kv->arr_type;
    scalar_from(e, e->type, (const uint8_t *)kv->arr_data + i * vtype_size[e->type]);
    return 0;
}

int gguf_get_arr_u32(const struct gguf_kv *kv, uint64_t i, uint32_t *out)
{
    struct gguf_kv e;
    uint64_t v;
    if (arr_elem(kv, i, &e)) return -1;
    if (e.type == GGUF_BOOL) v = e.v.u;
    else if (as_u64(&e, &v)) return -1;
    if (v > UINT32_MAX) return -1;
    *out = (uint32_t)v;
    return 0;
}

int gguf_get_arr_f32(const struct gguf_kv *kv, uint64_t i, float *out)
{
    struct gguf_kv e;
    if (arr_elem(kv, i, &e)) return -1;
    if (e.type == GGUF_F32 || e.type == GGUF_F64) *out = (float)e.v.f;
    else if (is_unsigned(e.type)) *out = (float)e.v.u;
    else if (is_signed(e.type)) *out = (float)e.v.i;
    else return -1;
    return 0;
}

/* test_gguf: the GGUF reader on valid, golden and deliberately broken files. Every broken file
 * is built here with gguf_writer (or by patching bytes of a valid one) and must be rejected with
 * a one-line error naming the byte offset. CPU only. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "gguf_writer.h"
#include "platform.h"
#include "quant.h"
#include "testutil.h"

/* ---------------------------------------------------------------------------------------------
 * helpers
 */

/* Opens a copy of exactly n bytes (so ASan sees any over-read). */
static struct gguf *open_copy(const void *p, size_t n, char *err, size_t errlen, void **copy)
{
    *copy = malloc(n ? n : 1);
    assert_non_null(*copy);
    memcpy(*copy, p, n);
    return gguf_open_memory(*copy, n, err, errlen);
}

/* Asserts that the bytes are rejected with a one-line "gguf: offset N: ..." message that
 * contains `needle` (if given). */
static void expect_reject(const void *p, size_t n, const char *needle)
{
    char err[256] = "";
    void *copy;
    struct gguf *g = open_copy(p, n, err, sizeof err, &copy);
    if (g) {
        gguf_close(g);
        free(copy);
        fail_msg("accepted a broken file (expected an error containing '%s')", needle ? needle : "");
    }
    free(copy);
    if (strncmp(err, "gguf: offset ", 13) != 0 || strchr(err, '\n'))
        fail_msg("bad error format: '%s'", err);
    if (needle && !strstr(err, needle)) fail_msg("error '%s' lacks '%s'", err, needle);
    printf("#   ok: %s\n", err);
}

static void *build(struct gw *w, size_t *n)
{
    void *p = gw_serialize(w, n);
    assert_non_null(p);
    gw_destroy(w);
    return p;
}

/* A small valid file with a bit of everything: 6 keys, 3 tensors. */
static void *small_file(size_t *n)
{
    struct gw *w = gw_create();
    static const char *const toks[] = {"<pad>", "a", "bc"};
    int32_t kvh[3] = {2, 2, 1};
    float x[64];
    for (int i = 0; i < 64; i++) x[i] = (float)i / 8 - 4;
    gw_kv_str(w, "general.architecture", "gemma4");
    gw_kv_u32(w, "general.alignment", 32);
    gw_kv_u32(w, "gemma4.block_count", 3);
    gw_kv_f32(w, "gemma4.rope.freq_base", 10000.0f);
    gw_kv_arr(w, "gemma4.attention.head_count_kv", GGUF_I32, kvh, 3);
    gw_kv_arr_str(w, "tokenizer.ggml.tokens", toks, 3);
    gw_tensor_f32(w, "a.weight", GGML_F32, 1, (uint64_t[]){16}, x);
    gw_tensor_f32(w, "b.weight", GGML_Q4_0, 2, (uint64_t[]){32, 2}, x);
    gw_tensor_f32(w, "c.weight", GGML_Q8_0, 1, (uint64_t[]){32}, x);
    return build(w, n);
}

static void put_u64_at(uint8_t *p, size_t off, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[off + i] = (uint8_t)(v >> (8 * i));
}

/* ---------------------------------------------------------------------------------------------
 * valid files
 */

static void test_valid_roundtrip(void **state)
{
    (void)state;
    struct gw *w = gw_create();
    float x[4096];
    nb_test_seed(1);
    for (int i = 0; i < 4096; i++) x[i] = nb_test_randf();
    int16_t i16 = -3;
    uint8_t bools[3] = {1, 0, 1};
    gw_kv_u8(w, "k.u8", 200);
    gw_kv_i8(w, "k.i8", -5);
    gw_kv_u16(w, "k.u16", 65000);
    gw_kv_i16(w, "k.i16", i16);
    gw_kv_u32(w, "k.u32", 4000000000u);
    gw_kv_i32(w, "k.i32", -7);
    gw_kv_u64(w, "k.u64", 1ull << 40);
    gw_kv_i64(w, "k.i64", 12345);
    gw_kv_f32(w, "k.f32", 1.5f);
    gw_kv_f64(w, "k.f64", 0.25);
    gw_kv_bool(w, "k.bool", true);
    gw_kv_str(w, "k.str", "hello world");
    gw_kv_arr(w, "k.bools", GGUF_BOOL, bools, 3);
    gw_kv_arr(w, "k.f32s", GGUF_F32, x, 5);
    gw_kv_u32(w, "general.alignment", 64);
    gw_set_alignment(w, 64);
    gw_tensor_f32(w, "t.f32", GGML_F32, 2, (uint64_t[]){64, 3}, x);
    gw_tensor_f32(w, "t.f16", GGML_F16, 1, (uint64_t[]){100}, x);
    gw_tensor_f32(w, "t.bf16", GGML_BF16, 1, (uint64_t[]){7}, x);
    gw_tensor_f32(w, "t.q4", GGML_Q4_0, 3, (uint64_t[]){64, 2, 2}, x);
    gw_tensor_f32(w, "t.q8", GGML_Q8_0, 4, (uint64_t[]){32, 2, 1, 3}, x);
    gw_tensor(w, "t.q4k", GGML_Q4_K, 1, (uint64_t[]){256}, NULL); /* a K-quant block */
    size_t n;
    void *p = build(w, &n), *copy;
    char err[256];
    struct gguf *g = open_copy(p, n, err, sizeof err, &copy);
    if (!g) fail_msg("%s", err);
    assert_int_equal(g->version, 3);
    assert_int_equal(g->n_kv, 15);
    assert_int_equal(g->n_tensors, 6);
    assert_int_equal(g->alignment, 64);
    assert_int_equal(g->data_offset % 64, 0);

    uint32_t u32 = 0;
    uint64_t u64 = 0;
    float f = 0;
    bool b = false;
    char s[6];
    assert_int_equal(gguf_get_u32(g, "k.u8", &u32), 0), assert_int_equal(u32, 200);
    assert_int_equal(gguf_get_u32(g, "k.u16", &u32), 0), assert_int_equal(u32, 65000);
    assert_int_equal(gguf_get_u32(g, "k.u32", &u32), 0), assert_int_equal(u32, 4000000000u);
    assert_int_equal(gguf_get_u32(g, "k.i64", &u32), 0), assert_int_equal(u32, 12345);
    assert_int_equal(gguf_get_u32(g, "k.u64", &u32), -1); /* out of range */
    assert_int_equal(gguf_get_u32(g, "k.i8", &u32), -1);  /* negative */
    assert_int_equal(gguf_get_u32(g, "k.str", &u32), -1);
    assert_int_equal(gguf_get_u32(g, "nope", &u32), -1);
    assert_int_equal(u32, 12345); /* untouched on failure */
    assert_int_equal(gguf_get_u64(g, "k.u64", &u64), 0), assert_true(u64 == 1ull << 40);
    assert_int_equal(gguf_find(g, "k.i16")->v.i, -3);
    assert_int_equal(gguf_find(g, "k.i32")->v.i, -7);
    assert_int_equal(gguf_get_f32(g, "k.f32", &f), 0), assert_true(f == 1.5f);
    assert_int_equal(gguf_get_f32(g, "k.f64", &f), 0), assert_true(f == 0.25f);
    assert_int_equal(gguf_get_f32(g, "k.u8", &f), 0), assert_true(f == 200.0f);
    assert_int_equal(gguf_get_f32(g, "k.str", &f), -1);
    assert_int_equal(gguf_get_bool(g, "k.bool", &b), 0), assert_true(b);
    assert_int_equal(gguf_get_bool(g, "k.u8", &b), -1);
    assert_int_equal(gguf_get_str(g, "k.str", s, sizeof s), 0), assert_string_equal(s, "hello");
    assert_int_equal(gguf_get_str(g, "k.u8", s, sizeof s), -1);
    assert_true(gguf_str_eq(gguf_find(g, "k.str")->v.str, "hello world"));
    assert_string_equal(gguf_vtype_name(gguf_find(g, "k.bools")->type), "array");

    const struct gguf_kv *kb = gguf_find(g, "k.bools"), *kf = gguf_find(g, "k.f32s");
    assert_int_equal(kb->arr_type, GGUF_BOOL), assert_int_equal(kb->arr_n, 3);
    assert_int_equal(gguf_get_arr_u32(kb, 2, &u32), 0), assert_int_equal(u32, 1);
    assert_int_equal(gguf_get_arr_u32(kb, 3, &u32), -1);
    assert_int_equal(gguf_get_arr_f32(kf, 4, &f), 0), assert_true(f == x[4]);
    assert_int_equal(gguf_get_arr_u32(kf, 0, &u32), -1);
    assert_int_equal(gguf_get_arr_u32(gguf_find(g, "k.u8"), 0, &u32), -1); /* not an array */

    /* Tensors: found by name, data inside the file at aligned offsets, values round-trip. */
    const char *names[] = {"t.f32", "t.f16", "t.bf16", "t.q4", "t.q8", "t.q4k"};
    for (int i = 0; i < 6; i++) {
        const struct gguf_tensor *t = gguf_find_tensor(g, names[i]);
        assert_non_null(t);
        assert_ptr_equal(t, &g->tensors[i]);
        assert_int_equal(t->offset % 64, 0);
        assert_true(t->offset + t->nbytes <= g->size);
        assert_ptr_equal(t->data, g->base + t->offset);
    }
    assert_null(gguf_find_tensor(g, "t.f3"));
    assert_null(gguf_find_tensor(g, "t.f32x"));
    const struct gguf_tensor *t = gguf_find_tensor(g, "t.q8");
    assert_int_equal(t->n_dims, 4), assert_int_equal(t->ne[3], 3), assert_int_equal(t->nbytes, 6 * 34);
    t = gguf_find_tensor(g, "t.q4");
    assert_int_equal(t->ne[3], 1), assert_int_equal(t->nbytes, 4 * 2 * 18);
    float row[100];
    assert_int_equal(nb_dequant_row(GGML_F32, gguf_find_tensor(g, "t.f32")->data + 256, row, 64), 0);
    assert_int_equal(nb_test_compare("f32 row 1", row, x + 64, 64, 0, 0), 0);
    assert_int_equal(nb_dequant_row(GGML_F16, gguf_find_tensor(g, "t.f16")->data, row, 100), 0);
    assert_int_equal(nb_test_compare("f16 row", row, x, 100, 0, 1e-3f), 0);
    assert_int_equal(nb_dequant_row(GGML_BF16, gguf_find_tensor(g, "t.bf16")->data, row, 7), 0);
    assert_int_equal(nb_test_compare("bf16 row", row, x, 7, 0, 8e-3f), 0);
    assert_int_equal(nb_dequant_row((enum ggml_type)16, gguf_find_tensor(g, "t.q4k")->data, row, 256),
                     -1); /* IQ2_XXS: no dequantizer */
    assert_string_equal(ggml_type_name(gguf_find_tensor(g, "t.q4k")->type), "q4_k");
    gguf_close(g);
    free(copy);
    free(p);
}

static void test_valid_edge_files(void **state)
{
    (void)state;
    char err[256];
    void *copy;
    size_t n;
    /* No keys, no tensors: just the 24-byte header. */
    void *p = build(gw_create(), &n);
    assert_int_equal(n, 24);
    struct gguf *g = open_copy(p, n, err, sizeof err, &copy);
    if (!g) fail_msg("%s", err);
    assert_int_equal(g->n_kv, 0), assert_int_equal(g->n_tensors, 0);
    assert_null(gguf_find(g, "x")), assert_null(gguf_find_tensor(g, "x"));
    gguf_close(g), free(copy), free(p);
    /* Version 2 reads like version 3. */
    struct gw *w = gw_create();
    gw_set_version(w, 2);
    gw_kv_str(w, "general.architecture", "gemma4");
    gw_kv_arr_str(w, "empty.strs", NULL, 0);
    gw_kv_arr(w, "empty.u8s", GGUF_U8, NULL, 0);
    gw_tensor(w, "x", GGML_F16, 1, (uint64_t[]){3}, NULL);
    p = build(w, &n);
    g = open_copy(p, n, err, sizeof err, &copy);
    if (!g) fail_msg("%s", err);
    assert_int_equal(g->version, 2), assert_int_equal(g->tensors[0].nbytes, 6);
    assert_int_equal(gguf_find(g, "empty.strs")->arr_n, 0);
    assert_int_equal(gguf_find(g, "empty.u8s")->arr_n, 0);
    gguf_close(g), free(copy), free(p);
    /* Many tensors: lookup stays correct (and the hash handles collisions). */
    w = gw_create();
    char name[32];
    for (int i = 0; i < 2000; i++) {
        snprintf(name, sizeof name, "blk.%d.attn_q.weight", i);
        gw_tensor(w, name, GGML_F32, 1, (uint64_t[]){1}, NULL);
    }
    p = build(w, &n);
    g = open_copy(p, n, err, sizeof err, &copy);
    if (!g) fail_msg("%s", err);
    for (int i = 0; i < 2000; i++) {
        snprintf(name, sizeof name, "blk.%d.attn_q.weight", i);
        assert_ptr_equal(gguf_find_tensor(g, name), &g->tensors[i]);
    }
    gguf_close(g), free(copy), free(p);
}

static void test_open_file(void **state)
{
    (void)state;
    char path[1024], err[512];
    snprintf(path, sizeof path, "%s/gguf-small.gguf", NB_TEST_TMP);
    size_t n;
    void *p = small_file(&n);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
    free(p);
    struct gguf *g = gguf_open(path, err, sizeof err);
    if (!g) fail_msg("%s", err);
    assert_int_equal(g->size, n);
    uint32_t bc;
    assert_int_equal(gguf_get_u32(g, "gemma4.block_count", &bc), 0), assert_int_equal(bc, 3);
    gguf_close(g);
    snprintf(path, sizeof path, "%s/no-such-file.gguf", NB_TEST_TMP);
    assert_null(gguf_open(path, err, sizeof err));
    assert_non_null(strstr(err, "no-such-file.gguf"));
    assert_null(gguf_open(NB_TEST_TMP, err, sizeof err)); /* a folder */
    printf("#   ok: %s\n", err);
}

/* ---------------------------------------------------------------------------------------------
 * broken files
 */

static void test_truncated_everywhere(void **state)
{
    (void)state;
    size_t n;
    uint8_t *p = small_file(&n);
    char err[256];
    printf("# truncating a %zu-byte file at every length\n", n);
    for (size_t len = 0; len < n; len++) {
        void *copy;
        err[0] = 0;
        struct gguf *g = open_copy(p, len, err, sizeof err, &copy);
        if (g) fail_msg("accepted the file truncated to %zu of %zu bytes", len, n);
        if (strncmp(err, "gguf: offset ", 13) != 0 || strchr(err, '\n'))
            fail_msg("truncated to %zu: bad error '%s'", len, err);
        free(copy);
    }
    expect_reject(p, 0, "too small");
    expect_reject(p, 30, "remain");
    expect_reject(p, n - 1, "runs past end of file");
    free(p);
}

static void test_bad_header(void **state)
{
    (void)state;
    size_t n;
    uint8_t *p = small_file(&n);
    uint8_t *q = malloc(n);
    memcpy(q, p, n), q[0] = 'g';
    expect_reject(q, n, "magic");
    memcpy(q, p, n), q[4] = 1;
    expect_reject(q, n, "version 1 is not supported");
    memcpy(q, p, n), q[4] = 99;
    expect_reject(q, n, "version 99");
    memcpy(q, p, n), q[4] = 0, q[7] = 3;
    expect_reject(q, n, "big-endian");
    memcpy(q, p, n), put_u64_at(q, 16, 1ull << 62);
    expect_reject(q, n, "metadata count");
    memcpy(q, p, n), put_u64_at(q, 8, 1ull << 62);
    expect_reject(q, n, "tensor count");
    memcpy(q, p, n), put_u64_at(q, 8, UINT64_MAX);
    expect_reject(q, n, "tensor count");
    memcpy(q, p, n), put_u64_at(q, 16, 7); /* one more key than present: tensor info read as kv */
    expect_reject(q, n, NULL);
    /* The first key's length (at 24): absurd, all ones, and just one too many. */
    memcpy(q, p, n), put_u64_at(q, 24, 1ull << 63);
    expect_reject(q, n, "key length");
    memcpy(q, p, n), put_u64_at(q, 24, UINT64_MAX);
    expect_reject(q, n, "key length");
    memcpy(q, p, n), put_u64_at(q, 24, n - 32 + 1);
    expect_reject(q, n, "runs past end of file");
    memcpy(q, p, n), put_u64_at(q, 24, 0);
    expect_reject(q, n, "empty");
    /* The first value: string "gemma4" whose length field sits after key + type. */
    size_t voff = 24 + 8 + strlen("general.architecture") + 4;
    memcpy(q, p, n), put_u64_at(q, voff, 1ull << 62);
    expect_reject(q, n, "string value length");
    memcpy(q, p, n), q[voff - 4] = 13; /* value type 13 */
    expect_reject(q, n, "unknown value type 13");
    free(q);
    free(p);
}

static void reject_kv(const char *what, void (*add)(struct gw *), const char *needle)
{
    struct gw *w = gw_create();
    gw_kv_str(w, "general.architecture", "gemma4");
    add(w);
    gw_tensor(w, "t", GGML_F32, 1, (uint64_t[]){8}, NULL);
    size_t n;
    void *p = build(w, &n);
    printf("# %s\n", what);
    expect_reject(p, n, needle);
    free(p);
}

static void kv_arr_huge(struct gw *w)
{
    uint8_t b[12] = {GGUF_U32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x40}; /* u32 x 2^62 */
    gw_kv_raw(w, "x.arr", GGUF_ARRAY, b, sizeof b);
}
static void kv_arr_wrap(struct gw *w)
{
    uint8_t b[12] = {GGUF_U64, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x20}; /* u64 x (2^61+1): n*8 wraps */
    gw_kv_raw(w, "x.arr", GGUF_ARRAY, b, sizeof b);
}
static void kv_arr_strs(struct gw *w)
{
    uint8_t b[12] = {GGUF_STRING, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10}; /* 2^60 strings */
    gw_kv_raw(w, "x.arr", GGUF_ARRAY, b, sizeof b);
}
static void kv_arr_str_len(struct gw *w)
{
    uint8_t b[20] = {GGUF_STRING, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff,
                     0xff, 0xff, 0x7f}; /* one string of length 2^63-1 */
    gw_kv_raw(w, "x.arr", GGUF_ARRAY, b, sizeof b);
}
static void kv_arr_nested(struct gw *w)
{
    uint8_t b[24] = {GGUF_ARRAY, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, GGUF_U8, 0, 0, 0, 0};
    gw_kv_raw(w, "x.arr", GGUF_ARRAY, b, sizeof b);
}
static void kv_arr_elem99(struct gw *w)
{
    uint8_t b[12] = {99, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0};
    gw_kv_raw(w, "x.arr", GGUF_ARRAY, b, sizeof b);
}
static void kv_bool2(struct gw *w) { gw_kv_raw(w, "x.bool", GGUF_BOOL, (uint8_t[]){2}, 1); }
static void kv_dup(struct gw *w) { gw_kv_str(w, "general.architecture", "llama"); }
static void kv_align0(struct gw *w) { gw_kv_u32(w, "general.alignment", 0); }
static void kv_align3(struct gw *w) { gw_kv_u32(w, "general.alignment", 3); }
static void kv_align_str(struct gw *w) { gw_kv_str(w, "general.alignment", "32"); }
static void kv_align_huge(struct gw *w) { gw_kv_u64(w, "general.alignment", 1ull << 40); }

static void test_bad_metadata(void **state)
{
    (void)state;
    reject_kv("array count 2^62", kv_arr_huge, "runs past end of file");
    reject_kv("array count whose byte size wraps", kv_arr_wrap, "runs past end of file");
    reject_kv("string array count 2^60", kv_arr_strs, "strings runs past end");
    reject_kv("string in array of length 2^63-1", kv_arr_str_len, "array string length");
    reject_kv("nested array", kv_arr_nested, "nested");
    reject_kv("array element type 99", kv_arr_elem99, "element type 99");
    reject_kv("bool 2", kv_bool2, "bool value 2");
    reject_kv("duplicate key", kv_dup, "duplicate key 'general.architecture'");
    reject_kv("alignment 0", kv_align0, "general.alignment 0");
    reject_kv("alignment 3", kv_align3, "general.alignment 3");
    reject_kv("alignment as a string", kv_align_str, "general.alignment has type string");
    reject_kv("alignment 2^40", kv_align_huge, "power of two");
}

/* A file with one 256-element F32 tensor "big" plus one tensor described by the arguments. */
static void reject_tensor(const char *what, uint32_t type, uint32_t n_dims, const uint64_t *ne,
                          uint64_t nbytes, int64_t force_off, const char *needle)
{
    struct gw *w = gw_create();
    gw_kv_str(w, "general.architecture", "gemma4");
    gw_tensor(w, "big", GGML_F32, 1, (uint64_t[]){256}, NULL);
    int i = gw_tensor_raw(w, "blk.0.attn_q.weight", type, n_dims, ne, NULL, nbytes);
    if (force_off >= 0) gw_tensor_offset(w, i, (uint64_t)force_off);
    size_t n;
    void *p = build(w, &n);
    printf("# %s\n", what);
    expect_reject(p, n, needle);
    free(p);
}

static void test_bad_tensors(void **state)
{
    (void)state;
    const uint64_t ne8[5] = {8, 1, 1, 1, 1};
    reject_tensor("data past the end", GGML_F32, 1, ne8, 0, 4096, "runs past end of file");
    reject_tensor("offset near 2^64", GGML_F32, 1, ne8, 0, (int64_t)(1ull << 62),
                  "runs past end of file");
    reject_tensor("overlap", GGML_F32, 1, ne8, 32, 64, "overlaps tensor 'big'");
    reject_tensor("misaligned", GGML_F32, 1, ne8, 32, 4, "not a multiple of the alignment 32");
    reject_tensor("n_dims 0", GGML_F32, 0, ne8, 32, -1, "0 dimensions");
    reject_tensor("n_dims 5", GGML_F32, 5, ne8, 32, -1, "5 dimensions");
    reject_tensor("ne 0", GGML_F32, 2, (uint64_t[]){8, 0}, 0, -1, "ne[1] = 0");
    reject_tensor("ne 2^40 x 2^40", GGML_F32, 2, (uint64_t[]){1ull << 40, 1ull << 40}, 0, -1,
                  "overflows");
    reject_tensor("ne 2^63", GGML_F32, 1, (uint64_t[]){1ull << 63}, 0, -1, "overflows");
    reject_tensor("bytes overflow", GGML_F32, 2, (uint64_t[]){1ull << 61, 2}, 0, -1, "overflows");
    reject_tensor("type 99", 99, 1, ne8, 32, -1, "'blk.0.attn_q.weight' has unknown ggml type id 99");
    reject_tensor("removed type 4", 4, 1, ne8, 32, -1, "unknown ggml type id 4");
    reject_tensor("type 2^31", 0x80000000u, 1, ne8, 32, -1, "unknown ggml type id");
    reject_tensor("q4_0 with ne0 48", GGML_Q4_0, 1, (uint64_t[]){48}, 27, -1,
                  "not a multiple of the q4_0 block size 32");
    reject_tensor("huge tensor", GGML_Q4_0, 2, (uint64_t[]){4096, 4096}, 0, -1,
                  "runs past end of file");

    /* Duplicate tensor names; an empty name. */
    struct gw *w = gw_create();
    gw_tensor(w, "x", GGML_F32, 1, ne8, NULL);
    gw_tensor(w, "x", GGML_F32, 1, ne8, NULL);
    size_t n;
    void *p = build(w, &n);
    expect_reject(p, n, "duplicate tensor name 'x'");
    free(p);
    w = gw_create();
    gw_tensor(w, "", GGML_F32, 1, ne8, NULL);
    p = build(w, &n);
    expect_reject(p, n, "empty name");
    free(p);
    /* A name with control characters is printed safely on one line. */
    w = gw_create();
    gw_tensor(w, "bad\nname", 77, 1, ne8, NULL);
    p = build(w, &n);
    expect_reject(p, n, "'bad?name'");
    free(p);
}

/* ---------------------------------------------------------------------------------------------
 * golden models
 */

static void test_golden_models(void **state)
{
    (void)state;
    const char *files[] = {"dense.gguf", "moe.gguf", "ple.gguf", "dense-q8.gguf", "dense-f32.gguf",
                           "moe-f32.gguf", "ple-f32.gguf", "gemma-vocab.gguf"};
    int opened = 0;
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        const char *path = nb_test_file(files[i]);
        if (!path) {
            printf("# %s: not found, skipped\n", files[i]);
            continue;
        }
        char err[512], arch[32];
        uint64_t t0 = 0;
        struct gguf *g = gguf_open(path, err, sizeof err);
        if (!g) fail_msg("%s: %s", files[i], err);
        opened++;
        assert_int_equal(gguf_get_str(g, "general.architecture", arch, sizeof arch), 0);
        assert_string_equal(arch, "gemma4");
        uint32_t blocks = 0, h = 0;
        assert_int_equal(gguf_get_u32(g, "gemma4.block_count", &blocks), 0);
        assert_int_equal(gguf_get_u32(g, "gemma4.embedding_length", &h), 0);
        assert_true(blocks >= 1 && blocks <= 64);
        const struct gguf_kv *tok = gguf_find(g, "tokenizer.ggml.tokens");
        assert_non_null(tok);
        assert_int_equal(tok->type, GGUF_ARRAY), assert_int_equal(tok->arr_type, GGUF_STRING);
        assert_true(tok->arr_n == 1024 || tok->arr_n == 262144);
        float eps = 0;
        assert_int_equal(gguf_get_f32(g, "gemma4.attention.layer_norm_rms_epsilon", &eps), 0);
        assert_true(eps > 0 && eps < 1e-3f);
        for (uint64_t k = 0; k < g->n_kv; k++) {
            char key[256];
            snprintf(key, sizeof key, "%.*s", (int)g->kv[k].key.n, g->kv[k].key.p);
            assert_ptr_equal(gguf_find(g, key), &g->kv[k]);
        }
        uint64_t by_type[GGML_TYPE_MAX] = {0};
        for (uint64_t k = 0; k < g->n_tensors; k++) {
            const struct gguf_tensor *t = &g->tensors[k];
            char name[256];
            snprintf(name, sizeof name, "%.*s", (int)t->name.n, t->name.p);
            assert_ptr_equal(gguf_find_tensor(g, name), t);
            assert_true(nb_dequant_supported(t->type));
            by_type[t->type]++;
        }
        const struct gguf_tensor *emb = gguf_find_tensor(g, "token_embd.weight");
        assert_non_null(emb);
        assert_int_equal(emb->ne[0], h), assert_int_equal(emb->ne[1], tok->arr_n);
        t0 = plat_now_ns();
        int found = 0;
        for (int rep = 0; rep < 100; rep++)
            for (uint32_t l = 0; l < blocks; l++) {
                char name[64];
                snprintf(name, sizeof name, "blk.%u.attn_norm.weight", l);
                found += gguf_find_tensor(g, name) != NULL;
            }
        assert_int_equal(found, 100 * (int)blocks);
        printf("# %s: v%u, %" PRIu64 " keys, %" PRIu64 " tensors (f32 %" PRIu64 ", q4_0 %" PRIu64
               ", q8_0 %" PRIu64 "), %u blocks, %" PRIu64 " tokens, %.0f ns per lookup\n",
               files[i], g->version, g->n_kv, g->n_tensors, by_type[GGML_F32], by_type[GGML_Q4_0],
               by_type[GGML_Q8_0], blocks, tok->arr_n,
               (double)(plat_now_ns() - t0) / (100.0 * blocks));
        gguf_close(g);
    }
    if (!opened) skip();
}

/* ---------------------------------------------------------------------------------------------
 * conversions and dequantization
 */

static uint32_t bits(float f)
{
    uint32_t b;
    memcpy(&b, &f, 4);
    return b;
}

static float from_bits(uint32_t b)
{
    float f;
    memcpy(&f, &b, 4);
    return f;
}

static void test_fp16_bf16(void **state)
{
    (void)state;
    static const struct { float f; uint16_t h; } cases[] = {
        {0.0f, 0x0000}, {-0.0f, 0x8000}, {1.0f, 0x3c00}, {-2.0f, 0xc000}, {65504.0f, 0x7bff},
        {65519.99f, 0x7bff}, {65520.0f, 0x7c00}, {1e10f, 0x7c00}, {-1e10f, 0xfc00},
        {0x1p-14f, 0x0400}, {0x1p-24f, 0x0001}, {0x1p-25f, 0x0000}, {0x1.0002p-25f, 0x0001},
        {0x3p-25f, 0x0002}, {0x5p-25f, 0x0002}, {0x3ffp-24f, 0x03ff}, {0x7ffp-25f, 0x0400},
        {0x1p-30f, 0x0000}, {-0x1p-30f, 0x8000}, {1.0f + 0x1p-11f, 0x3c00},
        {1.0f + 0x3p-11f, 0x3c02}, {1.0f + 0x1.8p-11f, 0x3c01}, {0.1f, 0x2e66}, {-0.333333f, 0xb555},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        uint16_t h = nb_f32_to_f16(cases[i].f);
        if (h != cases[i].h) fail_msg("f16(%a) = 0x%04x, expected 0x%04x", cases[i].f, h, cases[i].h);
    }
    assert_int_equal(nb_f32_to_f16(from_bits(0x7f800000u)), 0x7c00);
    assert_int_equal(nb_f32_to_f16(from_bits(0xff800000u)), 0xfc00);
    uint16_t hn = nb_f32_to_f16(from_bits(0x7fc00000u));
    assert_true((hn & 0x7c00) == 0x7c00 && (hn & 0x3ff));
    hn = nb_f32_to_f16(from_bits(0xff800001u)); /* signalling NaN with a low payload bit */
    assert_true((hn & 0x7c00) == 0x7c00 && (hn & 0x3ff) && (hn & 0x8000));
    /* Every half converts to float and back unchanged (NaNs stay NaN). */
    for (uint32_t h = 0; h < 65536; h++) {
        float f = nb_f16_to_f32((uint16_t)h);
        bool nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
        if (nan) {
            assert_true(f != f);
            continue;
        }
        if (nb_f32_to_f16(f) != h) fail_msg("f16 0x%04x -> %a -> 0x%04x", h, f, nb_f32_to_f16(f));
    }
    assert_true(nb_f16_to_f32(0x0001) == 0x1p-24f);
    assert_true(nb_f16_to_f32(0x8001) == -0x1p-24f);
    assert_true(nb_f16_to_f32(0x7bff) == 65504.0f);
    assert_true(nb_f16_to_f32(0x7c00) > 1e38f);
    /* Midpoints between adjacent normal halves round to the even one. */
    for (uint32_t h = 0x0400; h < 0x7bff; h += 97) {
        float lo = nb_f16_to_f32((uint16_t)h), hi = nb_f16_to_f32((uint16_t)(h + 1));
        float mid = lo + (hi - lo) / 2;
        assert_int_equal(nb_f32_to_f16(mid), (h & 1) ? h + 1 : h);
        assert_int_equal(nb_f32_to_f16(from_bits(bits(mid) + 1)), h + 1);
        assert_int_equal(nb_f32_to_f16(from_bits(bits(mid) - 1)), h);
    }

    assert_int_equal(nb_f32_to_bf16(1.0f), 0x3f80);
    assert_int_equal(nb_f32_to_bf16(from_bits(0x3f808000u)), 0x3f80); /* tie -> even */
    assert_int_equal(nb_f32_to_bf16(from_bits(0x3f818000u)), 0x3f82); /* tie -> even */
    assert_int_equal(nb_f32_to_bf16(from_bits(0x3f808001u)), 0x3f81);
    assert_int_equal(nb_f32_to_bf16(from_bits(0x7f7fffffu)), 0x7f80); /* FLT_MAX -> inf */
    assert_int_equal(nb_f32_to_bf16(from_bits(0xff800000u)), 0xff80);
    assert_int_equal(nb_f32_to_bf16(from_bits(0x00000001u)), 0x0000); /* tiny subnormal */
    assert_int_equal(nb_f32_to_bf16(from_bits(0x00018000u)), 0x0002);
    uint16_t bn = nb_f32_to_bf16(from_bits(0x7f800001u)); /* NaN whose payload is in low bits */
    assert_true((bn & 0x7f80) == 0x7f80 && (bn & 0x7f));
    for (uint32_t h = 0; h < 65536; h++) {
        float f = nb_bf16_to_f32((uint16_t)h);
        if ((h & 0x7f80) == 0x7f80 && (h & 0x7f)) {
            assert_true(f != f);
            assert_true((nb_f32_to_bf16(f) & 0x7f) != 0);
            continue;
        }
        assert_int_equal(nb_f32_to_bf16(f), h);
    }
}

static void test_dequant_layout(void **state)
{
    (void)state;
    /* Q4_0: d = 1.0, byte j = (j) | (15 - j) << 4 -> element j = j - 8, element j+16 = 7 - j. */
    uint8_t q4[18] = {0x00, 0x3c};
    for (int j = 0; j < 16; j++) q4[2 + j] = (uint8_t)(j | (15 - j) << 4);
    float y[64];
    assert_int_equal(nb_dequant_row(GGML_Q4_0, q4, y, 32), 0);
    for (int j = 0; j < 16; j++) {
        assert_true(y[j] == (float)(j - 8));
        assert_true(y[j + 16] == (float)(7 - j));
    }
    /* Q8_0: d = 0.5, qs[j] = j - 16. */
    uint8_t q8[34] = {0x00, 0x38};
    for (int j = 0; j < 32; j++) q8[2 + j] = (uint8_t)(int8_t)(j - 16);
    assert_int_equal(nb_dequant_row(GGML_Q8_0, q8, y, 32), 0);
    for (int j = 0; j < 32; j++) assert_true(y[j] == 0.5f * (float)(j - 16));
    /* Bad arguments. */
    assert_int_equal(nb_dequant_row(GGML_Q4_0, q4, y, 31), -1);
    assert_int_equal(nb_dequant_row(GGML_Q6_K, q4, y, 255), -1);
    assert_int_equal(nb_dequant_row((enum ggml_type)99, q4, y, 32), -1);
    assert_int_equal(nb_quant_row(GGML_Q8_0, y, q8, 33), -1);
    assert_true(nb_dequant_supported(GGML_Q4_1));
    assert_false(nb_dequant_supported((enum ggml_type)19)); /* IQ1_S */
    assert_true(nb_dequant_supported(GGML_BF16));
    assert_int_equal(ggml_row_size(GGML_Q4_0, 4096), 4096 / 32 * 18);
    assert_int_equal(ggml_row_size(GGML_Q6_K, 4096), 16 * 210);
    assert_int_equal(ggml_row_size(GGML_Q4_K, 100), 0);
    assert_int_equal(ggml_blck_size((enum ggml_type)5), 0);
    assert_null(ggml_type_name((enum ggml_type)64));
}

/* Quantize random rows and back: every element within the block's scale bound. */
static void roundtrip(enum ggml_type t, uint64_t n, float bound_in_d)
{
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
    uint8_t *q = malloc(ggml_row_size(t, n));
    for (uint64_t i = 0; i < n; i++) x[i] = nb_test_randf() * (1 + (float)(i % 7));
    if (n >= 64) x[5] = 0, x[40] = 3.0f; /* a lone max in the middle of block 1 */
    assert_int_equal(nb_quant_row(t, x, q, n), 0);
    assert_int_equal(nb_dequant_row(t, q, y, n), 0);
    double worst = 0;
    for (uint64_t b = 0; b < n / 32; b++) {
        float amax = 0, d = fabsf(nb_f16_to_f32((uint16_t)(q[b * ggml_type_size(t)] |
                                                            q[b * ggml_type_size(t) + 1] << 8)));
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[b * 32 + j]));
        for (int j = 0; j < 32; j++) {
            float e = fabsf(y[b * 32 + j] - x[b * 32 + j]);
            if (e > bound_in_d * d + 1e-6f)
                fail_msg("%s n=%" PRIu64 " block %" PRIu64 " elem %d: %g vs %g (d %g)",
                         ggml_type_name(t), n, b, j, y[b * 32 + j], x[b * 32 + j], d);
            if (d > 0 && e / d > worst) worst = e / d;
        }
        /* The element of largest magnitude is reproduced up to fp16 rounding of d. */
        for (int j = 0; j < 32; j++)
            if (fabsf(x[b * 32 + j]) == amax)
                assert_true(fabsf(y[b * 32 + j] - x[b * 32 + j]) <= amax * 2e-3f);
    }
    printf("# %s n=%" PRIu64 ": worst error %.3f x d\n", ggml_type_name(t), n, worst);
    free(x), free(y), free(q);
}

static void test_quant_roundtrip(void **state)
{
    (void)state;
    nb_test_seed(42);
    const uint64_t lens[] = {32, 64, 4096};
    for (int i = 0; i < 3; i++) {
        roundtrip(GGML_Q4_0, lens[i], 1.01f); /* x*id in [7.5, 8] clamps to 15: error <= d */
        roundtrip(GGML_Q8_0, lens[i], 0.57f); /* 0.5 d + 127 * fp16 rounding of d */
    }
    /* All-zero and constant blocks. */
    float z[32] = {0}, y[32];
    uint8_t q[34];
    assert_int_equal(nb_quant_row(GGML_Q4_0, z, q, 32), 0);
    assert_int_equal(nb_dequant_row(GGML_Q4_0, q, y, 32), 0);
    for (int j = 0; j < 32; j++) assert_true(y[j] == 0);
    for (int j = 0; j < 32; j++) z[j] = -2.5f;
    assert_int_equal(nb_quant_row(GGML_Q8_0, z, q, 32), 0);
    assert_int_equal(nb_dequant_row(GGML_Q8_0, q, y, 32), 0);
    for (int j = 0; j < 32; j++) assert_true(fabsf(y[j] + 2.5f) < 2e-3f);
    /* Non-finite input does not crash (values are unspecified). */
    z[3] = from_bits(0x7fc00000u), z[4] = from_bits(0x7f800000u);
    assert_int_equal(nb_quant_row(GGML_Q4_0, z, q, 32), 0);
    assert_int_equal(nb_quant_row(GGML_Q8_0, z, q, 32), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_roundtrip),
        cmocka_unit_test(test_valid_edge_files),
        cmocka_unit_test(test_open_file),
        cmocka_unit_test(test_truncated_everywhere),
        cmocka_unit_test(test_bad_header),
        cmocka_unit_test(test_bad_metadata),
        cmocka_unit_test(test_bad_tensors),
        cmocka_unit_test(test_golden_models),
        cmocka_unit_test(test_fp16_bf16),
        cmocka_unit_test(test_dequant_layout),
        cmocka_unit_test(test_quant_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

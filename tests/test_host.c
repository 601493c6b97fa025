/* test_host: the Vulkan host layer (vkx): device line, upload/download round trips (mapped and
 * staged, split buffers over the storage range), dispatches with specialization and push
 * constants (push descriptors and the descriptor-pool fallback, features disabled), timestamps,
 * the on-disk pipeline cache, and the expected-failure paths. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nb_shaders.h"
#include "platform.h"
#include "shared.h"
#include "testutil.h"

/* Byte i of the test pattern (so nothing large is kept in host memory). */
static uint8_t pattern(uint64_t i, uint32_t seed)
{
    uint64_t x = (i + seed) * 0x9E3779B97F4A7C15ull;
    return (uint8_t)(x >> 56 ^ x >> 29);
}

static void fill_pattern(uint8_t *p, uint64_t off, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) p[i] = pattern(off + i, seed);
}

static size_t check_pattern(const uint8_t *p, uint64_t off, size_t n, uint32_t seed)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        if (p[i] != pattern(off + i, seed)) {
            if (!bad)
                printf("# byte %llu: got %u want %u\n", (unsigned long long)(off + i), p[i],
                       pattern(off + i, seed));
            bad++;
        }
    return bad;
}

/* A second context with some features disabled; NULL (test skipped) without a device. */
static struct vkx_ctx *ctx_with(struct vkx_ctx *ctx, const char *disable, const char *cache_dir)
{
    char err[512];
    struct vkx_opts o = {.device_index = -1,
                         .validation = true,
                         .disable = disable,
                         .pipeline_cache_dir = cache_dir};
    if (vkx_create(ctx, &o, err, sizeof err) != 0) {
        printf("# no Vulkan device: %s\n", err);
        return NULL;
    }
    return ctx;
}

static void test_device_line(void **state)
{
    (void)state;
    struct vkx_ctx *ctx = nb_test_vk();
    if (!ctx) skip();
    char line[1024];
    vkx_device_line(ctx, line, sizeof line);
    assert_non_null(strstr(line, ctx->caps.name));
    assert_non_null(strstr(line, "subgroup:"));
    assert_true(ctx->caps.subgroup_size > 0);
    assert_true(ctx->caps.max_storage_range >= (64u << 10));
    assert_true(ctx->caps.max_alloc > 0);
    assert_true(ctx->mem_device != UINT32_MAX && ctx->mem_host != UINT32_MAX);
    vkx_caps_print(ctx, stdout);
    nb_test_check_validation();
}

/* Round trips of odd sizes at odd offsets, device and host buffers. */
static void roundtrips(struct vkx_ctx *ctx)
{
    uint64_t held = ctx->allocated_bytes;
    static const size_t sizes[] = {1, 4095, 4096 + 3, (5u << 20) + 7}; /* last > staging */
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
        for (int mem = 0; mem < 2; mem++) {
            size_t n = sizes[si];
            char err[256];
            struct vkx_buffer b;
            assert_int_equal(vkx_buffer_create(ctx, &b, n + 13, (enum vkx_mem)mem, err, sizeof err), 0);
            uint8_t *src = malloc(n), *dst = malloc(n);
            assert_non_null(src);
            assert_non_null(dst);
            fill_pattern(src, 0, n, (uint32_t)si);
            vkx_upload(ctx, &b, 13, src, n);
            memset(dst, 0, n);
            vkx_download(ctx, &b, 13, dst, n);
            assert_int_equal(check_pattern(dst, 0, n, (uint32_t)si), 0);
            free(src);
            free(dst);
            vkx_buffer_destroy(ctx, &b);
        }
    assert_true(ctx->allocated_bytes <= held + (16u << 20)); /* only the staging buffer stays */
    assert_true(ctx->peak_allocated_bytes > 0);
}

static void test_roundtrip_small(void **state)
{
    (void)state;
    struct vkx_ctx *ctx = nb_test_vk();
    if (!ctx) skip();
    roundtrips(ctx);
    nb_test_check_validation();
    /* the staging path, even on a UMA device */
    struct vkx_ctx c2;
    if (!ctx_with(&c2, "uma", NULL)) skip();
    assert_false(vkx_has(&c2, VKX_FEAT_UMA));
    roundtrips(&c2);
    vkx_destroy(&c2);
    nb_test_check_validation();
}

/* 3 x 128 MiB + 7 bytes through a split buffer with unit 1, piece by piece in odd chunks that
 * straddle the pieces. */
static void split_roundtrip(struct vkx_ctx *ctx)
{
    const VkDeviceSize size = 3ull * (128u << 20) + 7;
    char err[256];
    struct vkx_split s;
    if (vkx_split_create(ctx, &s, size, 1, 0, VKX_MEM_DEVICE, err, sizeof err) != 0) {
        printf("# %s\n", err);
        fail_msg("split create failed");
    }
    VkDeviceSize range = ctx->caps.max_storage_range;
    assert_true(s.piece <= range && s.piece % 256 == 0);
    assert_int_equal(s.n, (size + s.piece - 1) / s.piece);
    const size_t up_chunk = (5u << 20) + 3, down_chunk = (7u << 20) + 1;
    uint8_t *buf = malloc(down_chunk);
    assert_non_null(buf);
    for (VkDeviceSize off = 0; off < size; off += up_chunk) {
        size_t n = size - off < up_chunk ? (size_t)(size - off) : up_chunk;
        fill_pattern(buf, off, n, 77);
        vkx_split_upload(ctx, &s, off, buf, n);
    }
    size_t bad = 0;
    for (VkDeviceSize off = 0; off < size; off += down_chunk) {
        size_t n = size - off < down_chunk ? (size_t)(size - off) : down_chunk;
        vkx_split_download(ctx, &s, off, buf, n);
        bad += check_pattern(buf, off, n, 77);
    }
    assert_int_equal(bad, 0);
    /* the last 7 bytes on their own */
    vkx_split_download(ctx, &s, size - 7, buf, 7);
    assert_int_equal(check_pattern(buf, size - 7, 7, 77), 0);
    free(buf);
    vkx_split_destroy(ctx, &s);
}

static void test_split_big(void **state)
{
    (void)state;
    struct vkx_ctx *ctx = nb_test_vk();
    if (!ctx) skip();
    split_roundtrip(ctx);
    nb_test_check_validation();
    struct vkx_ctx c2;
    if (!ctx_with(&c2, "uma", NULL)) skip();
    split_roundtrip(&c2);
    vkx_destroy(&c2);
    nb_test_check_validation();
}

/* Builds test_fill with workgroup size wg and SPEC_ADD add. */
static void fill_pipeline(struct vkx_ctx *ctx, struct vkx_pipeline *p, uint32_t wg, uint32_t add,
                          uint32_t subgroup_size, bool full)
{
    const struct nb_spv_entry *e = &nb_spv[NB_SPV_TEST_FILL];
    struct vkx_pipeline_desc d = {.name = e->name,
                                  .spv = e->code,
                                  .spv_size = *e->size,
                                  .n_bindings = 1,
                                  .push_size = sizeof(struct nb_push_test_fill),
                                  .n_spec = 2,
                                  .spec = {wg, add},
                                  .subgroup_size = subgroup_size,
                                  .full_subgroups = full};
    char err[256];
    if (vkx_pipeline_create(ctx, p, &d, err, sizeof err) != 0) {
        printf("# %s\n", err);
        fail_msg("pipeline create failed");
    }
}

/* Dispatches test_fill for several sizes and workgroup sizes into one buffer each, checks the
 * values and that nothing past n was written, then replays the same recording. */
static void fill_dispatches(struct vkx_ctx *ctx, enum vkx_mem mem)
{
    static const uint32_t sizes[] = {1, 31, 33, 1000};
    enum { NS = sizeof sizes / sizeof sizes[0], PAD = 8 };
    static const uint32_t wgs[2] = {33, 1};
    struct vkx_pipeline p[2];
    for (int w = 0; w < 2; w++) fill_pipeline(ctx, &p[w], wgs[w], 1000 + (uint32_t)w, 0, false);
    struct vkx_buffer b[2][NS];
    char err[256];
    struct vkx_cmd c;
    vkx_cmd_create(ctx, &c, 2 * NS, true);
    vkx_cmd_begin(ctx, &c);
    for (int w = 0; w < 2; w++)
        for (int i = 0; i < NS; i++) {
            assert_int_equal(vkx_buffer_create(ctx, &b[w][i], (sizes[i] + PAD) * 4, mem, err,
                                               sizeof err), 0);
            vkx_cmd_fill(&c, vkx_whole(&b[w][i]), 0xdeadbeefu);
        }
    for (int w = 0; w < 2; w++)
        for (int i = 0; i < NS; i++) {
            struct nb_push_test_fill pc = {.n = sizes[i], .base = 7u + (uint32_t)i, .mul = 3};
            struct vkx_view v = vkx_whole(&b[w][i]);
            if (i == 2) vkx_cmd_label(&c, "fill-33");
            vkx_cmd_dispatch(ctx, &c, &p[w], &v, 1, &pc, sizeof pc, vkx_ceil_div(sizes[i], wgs[w]),
                             1, 1);
        }
    vkx_cmd_end(ctx, &c);
    assert_string_equal(c.labels[2], "fill-33");
    assert_string_equal(c.labels[0], "test_fill");
    for (int round = 0; round < 2; round++) {
        vkx_cmd_submit_wait(ctx, &c);
        for (int w = 0; w < 2; w++)
            for (int i = 0; i < NS; i++) {
                uint32_t n = sizes[i], got[1000 + PAD];
                vkx_download(ctx, &b[w][i], 0, got, (n + PAD) * 4);
                size_t bad = 0;
                for (uint32_t k = 0; k < n + PAD; k++) {
                    uint32_t want = k < n ? 7u + (uint32_t)i + k * 3 + 1000 + (uint32_t)w : 0xdeadbeefu;
                    if (got[k] != want && bad++ < 3)
                        printf("# wg %u n %u [%u]: got %u want %u\n", wgs[w], n, k, got[k], want);
                }
                assert_int_equal(bad, 0);
                if (round == 0) { /* scribble: the replay must rewrite everything */
                    uint32_t zero[1000 + PAD] = {0};
                    vkx_upload(ctx, &b[w][i], 0, zero, (n + PAD) * 4);
                }
            }
    }
    double ns[2 * NS];
    assert_int_equal(vkx_cmd_read_times(ctx, &c, ns, 2 * NS), 2 * NS);
    if (ctx->caps.timestamps) {
        double total = 0;
        for (int i = 0; i < 2 * NS; i++) {
            assert_true(ns[i] >= 0);
            total += ns[i];
        }
        printf("# %d dispatches: %.1f us in all\n", 2 * NS, total / 1e3);
        assert_true(total > 0);
    }
    vkx_cmd_destroy(ctx, &c);
    for (int w = 0; w < 2; w++) {
        vkx_pipeline_destroy(ctx, &p[w]);
        for (int i = 0; i < NS; i++) vkx_buffer_destroy(ctx, &b[w][i]);
    }
}

static void test_dispatch(void **state)
{
    (void)state;
    struct vkx_ctx *ctx = nb_test_vk();
    if (!ctx) skip();
    fill_dispatches(ctx, VKX_MEM_DEVICE);
    fill_dispatches(ctx, VKX_MEM_HOST);
    nb_test_check_validation();
}

static void test_dispatch_disabled(void **state)
{
    (void)state;
    struct vkx_ctx c2;
    if (!ctx_with(&c2, "subgroup,fp16,uma", NULL)) skip();
    assert_false(vkx_has(&c2, VKX_FEAT_SUBGROUP));
    assert_false(vkx_has(&c2, VKX_FEAT_FP16));
    char line[1024];
    vkx_device_line(&c2, line, sizeof line);
    printf("# %s\n", line);
    if (c2.caps.fp16) assert_non_null(strstr(line, "fp16: off"));
    fill_dispatches(&c2, VKX_MEM_DEVICE);
    vkx_destroy(&c2);
    nb_test_check_validation();

    if (!ctx_with(&c2, "pushdesc", NULL)) skip();
    assert_false(vkx_has(&c2, VKX_FEAT_PUSHDESC));
    fill_dispatches(&c2, VKX_MEM_DEVICE);
    fill_dispatches(&c2, VKX_MEM_HOST);
    vkx_destroy(&c2);
    nb_test_check_validation();
}

/* A texel binding: bw.comp's texel variant copies n uvec4 texels through texelFetch. */
static void texel_copies(struct vkx_ctx *ctx)
{
    static const uint32_t sizes[] = {1, 31, 33, 1000};
    char err[256];
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        uint32_t n = sizes[k];
        struct vkx_buffer src, dst; /* (n * 16 bytes) each */
        assert_int_equal(vkx_buffer_create(ctx, &src, n * 16, VKX_MEM_DEVICE, err, sizeof err), 0);
        assert_int_equal(vkx_buffer_create(ctx, &dst, n * 16, VKX_MEM_DEVICE, err, sizeof err), 0);
        uint8_t *want = malloc(n * 16), *got = malloc(n * 16);
        for (uint32_t i = 0; i < n * 16; i++) want[i] = pattern(i, 5);
        vkx_upload(ctx, &src, 0, want, n * 16);
        assert_int_equal(vkx_buffer_texel_view(ctx, &src, err, sizeof err), 0);
        const struct nb_spv_entry *e = &nb_spv[NB_SPV_BW_TEXEL];
        struct vkx_pipeline_desc d = {.name = "bw_texel", .spv = e->code, .spv_size = *e->size,
                                      .n_bindings = 2, .texel_bindings = 1,
                                      .push_size = sizeof(struct nb_push_bw), .n_spec = 2,
                                      .spec = {64, 0}};
        struct vkx_pipeline p;
        assert_int_equal(vkx_pipeline_create(ctx, &p, &d, err, sizeof err), 0);
        uint32_t groups = (n + 63) / 64;
        struct nb_push_bw pc = {.n = n, .stride = groups * 64, .per = 1, .magic = 1};
        struct vkx_view views[2] = {vkx_whole(&src), vkx_whole(&dst)};
        struct vkx_cmd c;
        vkx_cmd_create(ctx, &c, 1, false);
        vkx_cmd_begin(ctx, &c);
        vkx_cmd_dispatch(ctx, &c, &p, views, 2, &pc, sizeof pc, groups, 1, 1);
        vkx_cmd_end(ctx, &c);
        vkx_cmd_submit_wait(ctx, &c);
        vkx_download(ctx, &dst, 0, got, n * 16);
        assert_memory_equal(got, want, n * 16);
        vkx_cmd_destroy(ctx, &c);
        vkx_pipeline_destroy(ctx, &p);
        vkx_buffer_destroy(ctx, &dst);
        vkx_buffer_destroy(ctx, &src);
        free(want);
        free(got);
    }
}

static void test_texel(void **state)
{
    (void)state;
    struct vkx_ctx *ctx = nb_test_vk();
    if (!ctx) skip();
    if (!vkx_has(ctx, VKX_FEAT_TEXEL)) {
        printf("# no uniform texel buffers of R32G32B32A32_UINT on this device\n");
        skip();
    }
    texel_copies(ctx); /* push descriptors where the device has them */
    nb_test_check_validation();
    struct vkx_ctx c2;
    if (!ctx_with(&c2, "pushdesc", NULL)) skip();
    texel_copies(&c2); /* descriptor-pool fallback */
    vkx_destroy(&c2);
    nb_test_check_validation();
    /* NIBBLE_DISABLE=texel: no texel views, one clear message */
    if (!ctx_with(&c2, "texel", NULL)) skip();
    assert_false(vkx_has(&c2, VKX_FEAT_TEXEL));
    struct vkx_buffer b;
    char err[256];
    assert_int_equal(vkx_buffer_create(&c2, &b, 64, VKX_MEM_DEVICE, err, sizeof err), 0);
    assert_int_equal(vkx_buffer_texel_view(&c2, &b, err, sizeof err), -1);
    printf("# texel off: %s\n", err);
    vkx_buffer_destroy(&c2, &b);
    vkx_destroy(&c2);
    nb_test_check_validation();
}

static void test_subgroup_size(void **state)
{
    (void)state;
    struct vkx_ctx *ctx = nb_test_vk();
    if (!ctx) skip();
    const struct vkx_caps *c = &ctx->caps;
    const struct nb_spv_entry *e = &nb_spv[NB_SPV_TEST_FILL];
    struct vkx_pipeline_desc d = {.name = "odd-subgroup", .spv = e->code, .spv_size = *e->size,
                                  .n_bindings = 1, .push_size = 16, .n_spec = 2, .spec = {64, 0},
                                  .subgroup_size = 3};
    struct vkx_pipeline p;
    char err[256] = "";
    assert_int_equal(vkx_pipeline_create(ctx, &p, &d, err, sizeof err), -1);
    printf("# expected: %s\n", err);
    assert_non_null(strstr(err, "odd-subgroup"));
    if (!c->subgroup_size_control) {
        nb_test_check_validation();
        skip();
    }
    /* a required size with full subgroups: 64 threads, a multiple of every subgroup size */
    fill_pipeline(ctx, &p, 64, 5, c->subgroup_min, true);
    struct vkx_buffer b;
    assert_int_equal(vkx_buffer_create(ctx, &b, 200 * 4, VKX_MEM_HOST, err, sizeof err), 0);
    struct vkx_cmd cmd;
    vkx_cmd_create(ctx, &cmd, 1, false);
    vkx_cmd_begin(ctx, &cmd);
    struct nb_push_test_fill pc = {.n = 200, .base = 1, .mul = 2};
    struct vkx_view v = vkx_whole(&b);
    vkx_cmd_dispatch(ctx, &cmd, &p, &v, 1, &pc, sizeof pc, vkx_ceil_div(200, 64), 1, 1);
    vkx_cmd_end(ctx, &cmd);
    vkx_cmd_submit_wait(ctx, &cmd);
    const uint32_t *out = b.map;
    for (uint32_t i = 0; i < 200; i++) assert_int_equal(out[i], 1 + 2 * i + 5);
    vkx_cmd_destroy(ctx, &cmd);
    vkx_buffer_destroy(ctx, &b);
    vkx_pipeline_destroy(ctx, &p);
    nb_test_check_validation();
}

static bool file_exists(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
}

static void test_pipeline_cache(void **state)
{
    (void)state;
    char dir[512], path[1024];
    snprintf(dir, sizeof dir, "%s/pcache-test-%llu", NB_TEST_TMP,
             (unsigned long long)plat_now_ns());
    struct vkx_ctx c2;
    struct vkx_pipeline p;
    if (!ctx_with(&c2, NULL, dir)) skip();
    snprintf(path, sizeof path, "%s", c2.pipeline_cache_path);
    printf("# cache file %s\n", path);
    assert_false(c2.pcache_loaded);
    fill_pipeline(&c2, &p, 33, 0, 0, false);
    assert_int_equal(c2.pipelines_compiled, 1);
    bool effective = vkx_pipeline_cache_effective(&c2);
    vkx_pipeline_destroy(&c2, &p);
    vkx_destroy(&c2);
    assert_true(file_exists(path));

    /* second start: the same pipeline compiles nothing (where the driver caches at all) */
    if (!ctx_with(&c2, NULL, dir)) skip();
    assert_int_equal(c2.pcache_loaded, effective);
    fill_pipeline(&c2, &p, 33, 0, 0, false);
    if (effective) {
        assert_int_equal(c2.pipelines_compiled, 0);
    } else {
        printf("# the driver keeps no pipelines in its cache: every start compiles\n");
        assert_int_equal(c2.pipelines_compiled, 1);
    }
    vkx_pipeline_destroy(&c2, &p);
    vkx_destroy(&c2);
    nb_test_check_validation();

    /* a damaged file is ignored (and replaced) */
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, 60, SEEK_SET);
    fputc(0x5a, f);
    fclose(f);
    if (!ctx_with(&c2, NULL, dir)) skip();
    assert_false(c2.pcache_loaded);
    fill_pipeline(&c2, &p, 33, 0, 0, false);
    assert_int_equal(c2.pipelines_compiled, 1);
    vkx_pipeline_destroy(&c2, &p);
    vkx_destroy(&c2);
    if (!ctx_with(&c2, NULL, dir)) skip();
    assert_int_equal(c2.pcache_loaded, effective);
    vkx_destroy(&c2);

    /* a garbage file of the right name */
    f = fopen(path, "wb");
    assert_non_null(f);
    fputs("not a cache", f);
    fclose(f);
    if (!ctx_with(&c2, NULL, dir)) skip();
    assert_false(c2.pcache_loaded);
    vkx_destroy(&c2);
    remove(path);
    nb_test_check_validation();
}

static void test_errors(void **state)
{
    (void)state;
    struct vkx_ctx *ctx = nb_test_vk();
    if (!ctx) skip();
    char err[512] = "";
    struct vkx_buffer b;
    assert_int_equal(vkx_buffer_create(ctx, &b, ctx->caps.max_alloc + 1, VKX_MEM_DEVICE, err,
                                       sizeof err), -1);
    printf("# expected: %s\n", err);
    assert_non_null(strstr(err, "maxMemoryAllocationSize"));
    assert_int_equal(vkx_buffer_create(ctx, &b, 0, VKX_MEM_DEVICE, err, sizeof err), -1);
    struct vkx_split s;
    assert_int_equal(vkx_split_create(ctx, &s, 1ull << 40, 1, 1u << 20, VKX_MEM_DEVICE, err,
                                      sizeof err), -1);
    printf("# expected: %s\n", err);
    assert_int_equal(vkx_split_create(ctx, &s, 1000, 300, 200, VKX_MEM_DEVICE, err, sizeof err),
                     -1);
    printf("# expected: %s\n", err);
    /* a split whose rows do not straddle pieces */
    assert_int_equal(vkx_split_create(ctx, &s, 10 * 300, 300, 1000, VKX_MEM_HOST, err, sizeof err),
                     0);
    assert_int_equal(s.piece, 900);
    assert_int_equal(s.n, 4);
    vkx_split_destroy(ctx, &s);
    /* unknown NIBBLE_DISABLE names: a warning, nothing else */
    struct vkx_ctx c2;
    if (!ctx_with(&c2, "fp16, bogus", "")) skip();
    assert_false(vkx_has(&c2, VKX_FEAT_FP16));
    assert_string_equal(c2.pipeline_cache_path, "");
    vkx_destroy(&c2);
    /* a device index that does not exist */
    struct vkx_opts o = {.device_index = 99, .validation = true};
    assert_int_equal(vkx_create(&c2, &o, err, sizeof err), -1);
    printf("# expected: %s\n", err);
    nb_test_check_validation();
}

static void test_bandwidth(void **state)
{
    (void)state;
    struct vkx_ctx *ctx = nb_test_vk();
    if (!ctx) skip();
    struct vkx_bandwidth bw;
    char err[256];
    assert_int_equal(vkx_probe_bandwidth(ctx, 16u << 20, 3, &bw, err, sizeof err), 0);
    printf("# bandwidth (%llu MiB, %s): copy %.2f GB/s (%.3f ms, %s), read %.2f GB/s (%.3f ms, "
           "%s), transfer copy %.2f GB/s\n",
           (unsigned long long)(bw.bytes >> 20), bw.gpu_timed ? "GPU timestamps" : "host clock",
           bw.copy_gbs, bw.copy_ms, bw.copy_shape, bw.read_gbs, bw.read_ms, bw.read_shape,
           bw.transfer_gbs);
    assert_true(bw.copy_gbs > 0 && bw.read_gbs > 0 && bw.transfer_gbs > 0);
    assert_true(bw.copy_shape[0] != 0 && bw.read_shape[0] != 0);
    assert_int_equal(bw.bytes, 16u << 20);
    nb_test_check_validation();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_device_line),     cmocka_unit_test(test_roundtrip_small),
        cmocka_unit_test(test_split_big),       cmocka_unit_test(test_dispatch),
        cmocka_unit_test(test_dispatch_disabled), cmocka_unit_test(test_subgroup_size),
        cmocka_unit_test(test_pipeline_cache),  cmocka_unit_test(test_errors),
        cmocka_unit_test(test_bandwidth),       cmocka_unit_test(test_texel),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    nb_test_vk_done();
    return rc;
}

/* test_quirks: the driver workaround table (host/vkx_quirks.c). Matching by vendor, driver id,
 * version range and CPU on made-up drivers; a context on a faked driver (NIBBLE_FAKE_DRIVER)
 * turns the entry's features off, NIBBLE_QUIRKS=0 ignores the table, NIBBLE_DISABLE still adds
 * its own; `nibble info` lists the entries that apply. The f16 conversion that the arm64
 * lavapipe entry turns on (shaders/half.glsl in integer operations) is checked on all 65536
 * halves against the CPU's, and against the device's own conversion where it has one. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nb_shaders.h"
#include "quant.h"
#include "testutil.h"
#include "vkx_quirks.h"

static struct vkx_caps llvmpipe(const char *info)
{
    struct vkx_caps c;
    memset(&c, 0, sizeof c);
    c.vendor_id = 0x10005;
    c.driver_id = VK_DRIVER_ID_MESA_LLVMPIPE;
    c.driver_version = 1;
    snprintf(c.driver_info, sizeof c.driver_info, "%s", info);
    return c;
}

/* Number of table entries matching caps with `fake` over it; *first the first one's id. */
static unsigned hits(const struct vkx_caps *c, const char *fake, const char **first)
{
    struct vkx_driver_key k;
    char err[256];
    assert_int_equal(vkx_quirk_key(c, fake, &k, err, sizeof err), 0);
    const struct vkx_quirk *h[VKX_MAX_QUIRKS];
    unsigned n = vkx_quirks_match(&k, h, VKX_MAX_QUIRKS);
    *first = n ? h[0]->id : "";
    return n;
}

static void test_table(void **state)
{
    (void)state;
    const char *id;
    struct vkx_caps c = llvmpipe("Mesa 22.3.6 (LLVM 15.0.6)");
    struct vkx_driver_key k;
    char err[256];
    assert_int_equal(vkx_quirk_key(&c, NULL, &k, err, sizeof err), 0);
    assert_int_equal(k.version, VKX_VER(22, 3, 6));
    assert_int_equal(hits(&c, "arch=aarch64", &id), 1);
    assert_string_equal(id, "llvmpipe-aarch64-f16");
    assert_int_equal(hits(&c, "arch=x86_64", &id), 0);
    assert_int_equal(hits(&c, "arch=aarch64,version=25.0.7", &id), 0);
    assert_int_equal(hits(&c, "arch=aarch64,version=24.3", &id), 1);
    assert_int_equal(hits(&c, "arch=aarch64,driver=3", &id), 0); /* RADV */
    struct vkx_caps m = llvmpipe("Mesa 25.0.7-1~bpo12+1 (LLVM 19.1.4)");
    assert_int_equal(hits(&m, "arch=aarch64", &id), 0);
    struct vkx_caps z = llvmpipe("");
    assert_int_equal(hits(&z, "arch=aarch64", &id), 1); /* unknown version: driverVersion 0.0.1 */
    /* Imagination's proprietary driver, any version: subgroup off */
    assert_int_equal(hits(&c, "vendor=0x1010,driver=7,version=1.600.0", &id), 1);
    assert_string_equal(id, "imagination-subgroup-matvec");
    /* panvk (Mali), any version: subgroup reductions off */
    assert_int_equal(hits(&c, "vendor=0x13b5,driver=20,version=25.0.7", &id), 1);
    assert_string_equal(id, "panvk-subgroup-reduce");
    /* Adreno 618 under turnip, by device id (740's limits are the same): "wide" off */
    assert_int_equal(hits(&c, "vendor=0x5143,driver=18,device=0x060108ff,version=25.0.7", &id), 1);
    assert_string_equal(id, "adreno618-matvec-regs");
    assert_int_equal(hits(&c, "vendor=0x5143,driver=18,device=0x43050a01,version=25.0.7", &id), 0);
    /* malformed fakes are refused with the field named */
    static const char *const bad[] = {"arch", "version=1.x", "driver=-1", "vendor=", "colour=red",
                                      "version=1.2.3.4", "arch=aarch64,,x=1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        assert_int_equal(vkx_quirk_key(&c, bad[i], &k, err, sizeof err), -1);
        assert_non_null(strstr(err, "NIBBLE_FAKE_DRIVER"));
    }
    /* every entry names its symptom, source and at least one known feature */
    unsigned n;
    const struct vkx_quirk *t = vkx_quirk_table(&n);
    assert_true(n >= 2);
    for (unsigned i = 0; i < n; i++) {
        char names[128];
        vkx_feature_names(t[i].features, names, sizeof names);
        assert_true(t[i].id && t[i].symptom && t[i].source && names[0]);
        assert_true(t[i].ver_min <= t[i].ver_max);
    }
    char names[128];
    vkx_feature_names(VKX_FEAT_TEXEL | VKX_FEAT_HALFCVT | VKX_FEAT_WIDE, names, sizeof names);
    assert_string_equal(names, "texel,halfcvt,wide");
}

/* A context with the environment variables given (NULL: unset), restored afterwards. */
static int ctx_env(struct vkx_ctx *ctx, const char *fake, const char *quirks, const char *disable)
{
    const char *names[3] = {"NIBBLE_FAKE_DRIVER", "NIBBLE_QUIRKS", "NIBBLE_DISABLE"};
    const char *vals[3] = {fake, quirks, disable};
    for (int i = 0; i < 3; i++) {
        if (vals[i]) setenv(names[i], vals[i], 1);
        else unsetenv(names[i]);
    }
    char err[512];
    struct vkx_opts o = {.device_index = -1, .validation = true};
    int rc = vkx_create(ctx, &o, err, sizeof err);
    if (rc) printf("# %s\n", err);
    for (int i = 0; i < 3; i++) unsetenv(names[i]);
    return rc;
}

static void test_fake_driver(void **state)
{
    (void)state;
    struct vkx_ctx *base = nb_test_vk();
    if (!base) skip();
    char fake[128];
    snprintf(fake, sizeof fake, "vendor=0x%x,driver=%d,version=22.3.6,arch=aarch64",
             base->caps.vendor_id, VK_DRIVER_ID_MESA_LLVMPIPE);
    struct vkx_ctx c;
    assert_int_equal(ctx_env(&c, fake, NULL, NULL), 0);
    assert_int_equal(c.caps.n_quirks, 1);
    assert_string_equal(c.caps.quirks[0]->id, "llvmpipe-aarch64-f16");
    assert_false(vkx_has(&c, VKX_FEAT_HALFCVT));
    assert_int_equal(c.caps.quirk_disabled, VKX_FEAT_HALFCVT);
    vkx_destroy(&c);
    /* NIBBLE_DISABLE adds its features to the workaround's */
    assert_int_equal(ctx_env(&c, fake, NULL, "pushdesc"), 0);
    assert_false(vkx_has(&c, VKX_FEAT_HALFCVT));
    assert_false(vkx_has(&c, VKX_FEAT_PUSHDESC));
    vkx_destroy(&c);
    /* NIBBLE_QUIRKS=0: the table is ignored */
    assert_int_equal(ctx_env(&c, fake, "0", NULL), 0);
    assert_int_equal(c.caps.n_quirks, 0);
    assert_true(vkx_has(&c, VKX_FEAT_HALFCVT));
    vkx_destroy(&c);
    /* Imagination: subgroup off */
    assert_int_equal(ctx_env(&c, "driver=7", NULL, NULL), 0);
    assert_false(vkx_has(&c, VKX_FEAT_SUBGROUP));
    vkx_destroy(&c);
    /* a malformed fake fails the context with one message */
    assert_int_equal(ctx_env(&c, "driver=x", NULL, NULL), -1);
    nb_test_check_validation();
}

/* Runs test_half on ctx: out[2i + j] = the float of half 2i + j as the device converts it. */
static void run_half(struct vkx_ctx *ctx, uint32_t *out)
{
    const struct nb_spv_entry *e = &nb_spv[NB_SPV_TEST_HALF];
    struct vkx_pipeline_desc d = {.name = e->name, .spv = e->code, .spv_size = *e->size,
                                  .n_bindings = 1};
    char err[256];
    struct vkx_pipeline p;
    if (vkx_pipeline_create(ctx, &p, &d, err, sizeof err) != 0) fail_msg("%s", err);
    struct vkx_buffer b;
    assert_int_equal(vkx_buffer_create(ctx, &b, 65536 * 4, VKX_MEM_HOST, err, sizeof err), 0);
    struct vkx_cmd c;
    vkx_cmd_create(ctx, &c, 1, false);
    vkx_cmd_begin(ctx, &c);
    struct vkx_view v = vkx_whole(&b);
    vkx_cmd_dispatch(ctx, &c, &p, &v, 1, NULL, 0, 32768 / 64, 1, 1);
    vkx_cmd_end(ctx, &c);
    vkx_cmd_submit_wait(ctx, &c);
    vkx_download(ctx, &b, 0, out, 65536 * 4);
    vkx_cmd_destroy(ctx, &c);
    vkx_buffer_destroy(ctx, &b);
    vkx_pipeline_destroy(ctx, &p);
}

/* Halves whose device value differs from the CPU's; subnormals may flush to zero when
 * `flush_ok` (a driver's own conversion), NaNs only need to stay NaN. */
static unsigned half_mismatches(const uint32_t *got, bool flush_ok)
{
    unsigned bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float want = nb_f16_to_f32((uint16_t)h), g;
        memcpy(&g, &got[h], 4);
        uint32_t wb;
        memcpy(&wb, &want, 4);
        bool ok = isnan(want) ? isnan(g) : got[h] == wb;
        if (!ok && flush_ok && (h & 0x7C00u) == 0 && g == 0.0f) ok = true;
        if (!ok && bad++ < 4) printf("# half 0x%04x: got %08x want %08x\n", h, got[h], wb);
    }
    return bad;
}

static void test_soft_half(void **state)
{
    (void)state;
    struct vkx_ctx *base = nb_test_vk();
    if (!base) skip();
    uint32_t *out = malloc(65536 * 4);
    assert_non_null(out);
    /* the integer conversion: exact for every half */
    struct vkx_ctx c;
    assert_int_equal(ctx_env(&c, NULL, NULL, "halfcvt"), 0);
    run_half(&c, out);
    assert_int_equal(half_mismatches(out, false), 0);
    vkx_destroy(&c);
    /* the device's unpackHalf2x16, unless a workaround turned it off */
    if (vkx_has(base, VKX_FEAT_HALFCVT)) {
        run_half(base, out);
        assert_int_equal(half_mismatches(out, true), 0);
    } else {
        printf("# halfcvt off on this driver (%s): the device conversion is not run\n",
               base->caps.driver_info);
    }
    free(out);
    nb_test_check_validation();
}

/* `nibble info` on a faked arm64 Mesa 22.3 lavapipe lists the entry and the feature it turns
 * off; on the real driver with the table ignored it lists none. */
static void test_info(void **state)
{
    (void)state;
    if (!nb_test_vk()) skip();
    char cmd[1024], buf[16384];
    snprintf(cmd, sizeof cmd,
             "NIBBLE_FAKE_DRIVER=driver=13,version=22.3.6,arch=aarch64 '%s' info 2>&1", NB_CLI);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(buf, 1, sizeof buf - 1, p);
    buf[n] = 0;
    assert_int_equal(pclose(p), 0);
    assert_non_null(strstr(buf, "driver workaround: llvmpipe-aarch64-f16: "));
    assert_non_null(strstr(buf, "; off: halfcvt; source: "));
    assert_non_null(strstr(buf, "features off: halfcvt"));
    snprintf(cmd, sizeof cmd, "NIBBLE_QUIRKS=0 '%s' info 2>&1", NB_CLI);
    p = popen(cmd, "r");
    assert_non_null(p);
    n = fread(buf, 1, sizeof buf - 1, p);
    buf[n] = 0;
    assert_int_equal(pclose(p), 0);
    assert_non_null(strstr(buf, "driver workarounds: none"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_fake_driver),
        cmocka_unit_test(test_soft_half),
        cmocka_unit_test(test_info),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    nb_test_vk_done();
    return rc;
}

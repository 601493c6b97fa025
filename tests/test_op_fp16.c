/* test_op_fp16: the f16 paths (issue 15) against the CPU and against their f32 fallbacks.
 *
 * The prefill matmul with its dequantized weight tile held in f16 (matmul.comp MM_F16, chosen
 * where the device has shaderFloat16) for Q4_0, Q8_0, F16, Q4_K and Q6_K weights in awkward
 * shapes (rows and tokens off the 64 x 64 tile, one-unit rows, accumulation), checked against a
 * double-precision CPU product with the bound f16 rounding allows: 2^-11 of sum |w x| per output
 * (a dequantized weight rounds to the nearest half), plus the f32 path's own tolerance. F32 and
 * BF16 weights keep f32 tiles. The same on the forced-fallback context (NIBBLE_DISABLE=fp16,...),
 * which must pick the f32 pipelines; and NIBBLE_DISABLE=fp16 alone turns both ops' f16 variants
 * off (the choice a device without shaderFloat16, such as the fake polaris10, gets). Attention's
 * f16 variant is checked by test_op_attn (normal and fallback groups).
 */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gtensor.h"
#include "op_attn.h"
#include "op_matmul.h"

static const enum ggml_type types[] = {GGML_Q4_0, GGML_Q8_0, GGML_F16, GGML_Q4_K,
                                       GGML_Q6_K, GGML_F32,  GGML_BF16};
#define NTYPES (int)(sizeof types / sizeof *types)

static bool half_tiles(enum ggml_type t) { return t != GGML_F32 && t != GGML_BF16; }

static uint32_t type_mask(void)
{
    uint32_t m = 0;
    for (int i = 0; i < NTYPES; i++) m |= NB_MM_TYPE_BIT(types[i]);
    return m;
}

/* y = W x (+ y0) through nb_op_matmul on op; returns the outputs off by more than the bound. */
static size_t check(struct vkx_ctx *vk, struct nb_op_matmul *op, enum ggml_type type, uint32_t K,
                    uint32_t M, uint32_t ntok, bool acc)
{
    void *raw;
    float *wref;
    nb_test_weights(type, K, M, &raw, &wref);
    char err[256];
    struct nb_gtensor w;
    uint64_t ne[4] = {K, M, 1, 1};
    assert_int_equal(nb_gtensor_from_host_tiled(vk, &w, type, ne, raw, 0, 0, err, sizeof err), 0);
    size_t nx = (size_t)K * ntok, ny = (size_t)M * ntok;
    float *x = malloc(sizeof(float) * nx), *y0 = malloc(sizeof(float) * ny);
    float *got = malloc(sizeof(float) * ny);
    double *ref = malloc(sizeof(double) * ny), *mag = malloc(sizeof(double) * ny);
    for (size_t i = 0; i < nx; i++) x[i] = nb_test_randf();
    for (size_t i = 0; i < ny; i++) y0[i] = nb_test_randf();
    nb_test_mul_ref(wref, x, acc ? y0 : NULL, K, M, ntok, ref, mag);
    struct vkx_buffer xb, yb;
    nb_test_dev_buf(vk, &xb, sizeof(float) * nx, x);
    nb_test_dev_buf(vk, &yb, sizeof(float) * ny, y0);
    struct vkx_cmd c;
    vkx_cmd_create(vk, &c, 8, false);
    vkx_cmd_begin(vk, &c);
    nb_op_matmul(op, vk, &c, &w, vkx_whole(&xb), vkx_whole(&yb), ntok, 0, 0, acc);
    vkx_cmd_end(vk, &c);
    vkx_cmd_submit_wait(vk, &c);
    vkx_download(vk, &yb, 0, got, sizeof(float) * ny);
    bool h = op->fp16 && half_tiles(type);
    size_t bad = 0;
    double worst = 0.0; /* largest error / (sum |w x|) */
    for (size_t i = 0; i < ny; i++) {
        double e = fabs(got[i] - ref[i]);
        double tol = 2e-4 * sqrt((double)K) + 1e-4 * fabs(ref[i]) + (h ? mag[i] / 2048.0 : 0.0);
        if (mag[i] > 0 && e / mag[i] > worst) worst = e / mag[i];
        if (!(e <= tol) && bad++ < 4)
            printf("# matmul %s K=%u M=%u n=%u [%zu]: got %g want %g (tol %g)\n",
                   ggml_type_name(type), K, M, ntok, i, got[i], ref[i], tol);
    }
    printf("# matmul %s K=%u M=%u n=%u%s (%s tile): worst error %.2e of sum |w x|\n",
           ggml_type_name(type), K, M, ntok, acc ? " acc" : "", h ? "f16" : "f32", worst);
    vkx_cmd_destroy(vk, &c);
    vkx_buffer_destroy(vk, &xb);
    vkx_buffer_destroy(vk, &yb);
    nb_gtensor_destroy(vk, &w);
    free(raw), free(wref), free(x), free(y0), free(got), free(ref), free(mag);
    nb_test_check_validation();
    return bad;
}

/* Every type in awkward shapes on vk; `want_fp16`: whether the op must have chosen f16 tiles. */
static void run_matmul(struct vkx_ctx *vk, bool want_fp16)
{
    struct nb_op_matmul op;
    char err[512];
    assert_int_equal(nb_op_matmul_create_ex(&op, vk, 0, type_mask(), err, sizeof err), 0);
    printf("# matmul tiles: %s\n", op.fp16 ? "f16" : "f32");
    assert_int_equal(op.fp16, want_fp16);
    size_t bad = 0;
    for (int i = 0; i < NTYPES; i++) {
        enum ggml_type t = types[i];
        /* the pipeline name says which tile: matmul_h_* (f16) or matmul_* */
        char h[64], f[64];
        snprintf(h, sizeof h, "matmul_h_%s", ggml_type_name(t));
        snprintf(f, sizeof f, "matmul_%s", ggml_type_name(t));
        const char *name = NULL;
        for (int s = 0; s < NB_MM_NTYPES; s++)
            if (op.mm[s].pipe && (!strcmp(op.mm[s].name, h) || !strcmp(op.mm[s].name, f)))
                name = op.mm[s].name;
        assert_non_null(name);
        printf("# %s: %s\n", ggml_type_name(t), name);
        assert_int_equal(strncmp(name, "matmul_h_", 9) == 0, want_fp16 && half_tiles(t));
        bad += check(vk, &op, t, nb_test_klen(t, 1, 32), 1, 1, false);
        bad += check(vk, &op, t, nb_test_klen(t, 3, 96), 33, 9, true);
        bad += check(vk, &op, t, nb_test_klen(t, 10, 320), 70, 67, false);
        bad += check(vk, &op, t, nb_test_klen(t, 16, 512), 130, 13, true);
    }
    nb_op_matmul_destroy(&op, vk);
    assert_int_equal(bad, 0);
}

static void test_matmul_fp16(void **state)
{
    (void)state;
    struct vkx_ctx *vk = nb_test_vk();
    if (!vk) skip();
    bool has = vkx_has(vk, VKX_FEAT_FP16) && vkx_has(vk, VKX_FEAT_HALFCVT);
    if (!has) printf("# no shaderFloat16 here: the f32 tiles only\n");
    nb_test_seed(11);
    run_matmul(vk, has);
}

static void test_matmul_fallback(void **state)
{
    (void)state;
    struct vkx_ctx own;
    if (!nb_test_vk()) skip();
    assert_int_equal(nb_test_vk_fallback(&own), 0);
    nb_test_seed(11);
    run_matmul(&own, false);
    vkx_destroy(&own);
    nb_test_check_validation();
}

/* NIBBLE_DISABLE=fp16 alone: the device keeps everything else, both ops pick f32. */
static void test_disable_fp16(void **state)
{
    (void)state;
    if (!nb_test_vk()) skip();
    struct vkx_ctx vk;
    char err[512];
    struct vkx_opts o = {.device_index = -1, .validation = true, .disable = "fp16"};
    assert_int_equal(vkx_create(&vk, &o, err, sizeof err), 0);
    assert_false(vkx_has(&vk, VKX_FEAT_FP16));
    struct nb_op_matmul mm;
    assert_int_equal(nb_op_matmul_create_ex(&mm, &vk, 0, NB_MM_TYPE_BIT(GGML_Q4_0), err,
                                            sizeof err),
                     0);
    assert_false(mm.fp16);
    assert_string_equal(mm.mm[3].name, "matmul_q4_0");
    nb_op_matmul_destroy(&mm, &vk);
    struct nb_op_attn at;
    assert_int_equal(nb_op_attn_create(&at, &vk, err, sizeof err), 0);
    assert_false(at.fp16);
    const struct vkx_pipeline *p = at.texel ? &at.attn_tx[1][1] : &at.attn[1][1];
    printf("# attention without fp16: %s\n", p->name);
    assert_null(strstr(p->name, "_h"));
    nb_op_attn_destroy(&at, &vk);
    vkx_destroy(&vk);
    nb_test_check_validation();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul_fp16),
        cmocka_unit_test(test_matmul_fallback),
        cmocka_unit_test(test_disable_fp16),
    };
    int rc = cmocka_run_group_tests_name("fp16", tests, NULL, NULL);
    nb_test_vk_done();
    return rc;
}

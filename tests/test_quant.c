/* test_quant: engine/quant.c against ggml itself, bit for bit, for every tensor type nibble
 * converts. The fixtures in tests/data/quant/ were written by tools/gen-quant-fixtures.c, which
 * links llama.cpp's ggml (see its header for the file layout); this test needs only the files.
 * Plus round trips (quantize then dequantize stays within a per-type error) and argument checks.
 * CPU only. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "quant.h"
#include "testutil.h"

static const enum ggml_type all_types[] = {
    GGML_F16,  GGML_BF16, GGML_Q4_0, GGML_Q4_1, GGML_Q5_0,   GGML_Q5_1,   GGML_Q8_0,
    GGML_Q2_K, GGML_Q3_K, GGML_Q4_K, GGML_Q5_K, GGML_Q6_K, GGML_IQ4_NL, GGML_IQ4_XS,
};
#define N_TYPES (sizeof all_types / sizeof all_types[0])

/* One fixture file, pointers into `file`. */
struct fixture {
    uint8_t *file;
    uint32_t nq, ndq;
    const float *qin, *dqout; /* unaligned in the file: read them through memcpy only */
    const uint8_t *qout, *dqin;
};

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void load(enum ggml_type t, struct fixture *fx)
{
    char name[64];
    snprintf(name, sizeof name, "quant/%s.bin", ggml_type_name(t));
    size_t size = 0;
    fx->file = nb_test_read(nb_test_file(name), &size);
    if (!fx->file) fail_msg("missing fixture tests/data/%s (tools/gen-quant-fixtures.c)", name);
    assert_true(size >= 16);
    assert_memory_equal(fx->file, "NBQF", 4);
    assert_int_equal(rd32(fx->file + 4), (uint32_t)t);
    fx->nq = rd32(fx->file + 8), fx->ndq = rd32(fx->file + 12);
    size_t qb = ggml_row_size(t, fx->nq), dqb = ggml_row_size(t, fx->ndq);
    assert_int_equal(size, 16 + 4 * (size_t)fx->nq + qb + dqb + 4 * (size_t)fx->ndq);
    const uint8_t *p = fx->file + 16;
    fx->qin = (const float *)(const void *)p, p += 4 * (size_t)fx->nq;
    fx->qout = p, p += qb;
    fx->dqin = p, p += dqb;
    fx->dqout = (const float *)(const void *)p;
}

/* A copy of n floats from the file (which may sit at any alignment). */
static float *floats(const float *src, size_t n)
{
    float *f = malloc(n * sizeof *f);
    assert_non_null(f);
    memcpy(f, src, n * sizeof *f);
    return f;
}

/* Dequantization of random block bytes: the same float bits as ggml's. */
static void test_dequant_bits(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_TYPES; i++) {
        enum ggml_type t = all_types[i];
        struct fixture fx;
        load(t, &fx);
        float *want = floats(fx.dqout, fx.ndq), *got = malloc(fx.ndq * sizeof *got);
        assert_true(nb_dequant_supported(t));
        assert_int_equal(nb_dequant_row(t, fx.dqin, got, fx.ndq), 0);
        for (uint32_t j = 0; j < fx.ndq; j++)
            if (memcmp(&got[j], &want[j], 4))
                fail_msg("%s dequant: element %u (block %u): %a, ggml %a", ggml_type_name(t), j,
                         j / ggml_blck_size(t), got[j], want[j]);
        printf("# %s: %u dequantized elements bit-exact\n", ggml_type_name(t), fx.ndq);
        free(want), free(got), free(fx.file);
    }
}

/* The reference quantizers on awkward inputs: the same bytes as ggml's. */
static void test_quant_bytes(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_TYPES; i++) {
        enum ggml_type t = all_types[i];
        if (!nb_quant_supported(t)) continue; /* quantizers land type by type */
        struct fixture fx;
        load(t, &fx);
        float *x = floats(fx.qin, fx.nq);
        size_t nbytes = ggml_row_size(t, fx.nq), bs = ggml_type_size(t);
        uint8_t *got = malloc(nbytes);
        assert_int_equal(nb_quant_row(t, x, got, fx.nq), 0);
        for (size_t j = 0; j < nbytes; j++)
            if (got[j] != fx.qout[j])
                fail_msg("%s quant: block %zu byte %zu: %02x, ggml %02x", ggml_type_name(t),
                         j / bs, j % bs, got[j], fx.qout[j]);
        printf("# %s: %u quantized elements bit-exact\n", ggml_type_name(t), fx.nq);
        free(x), free(got), free(fx.file);
    }
}

/* A row of n bell-shaped values at several scales; quantize, dequantize, and the error relative
 * to the row's RMS stays under each type's bound (ggml's own quantizers land well inside). */
static void test_roundtrip(void **state)
{
    (void)state;
    static const struct {
        enum ggml_type t;
        double nrmse; /* sqrt(sum (y - x)^2 / sum x^2) */
    } bound[] = {
        {GGML_F16, 1e-3},   {GGML_BF16, 5e-3},  {GGML_Q8_0, 0.01},  {GGML_Q6_K, 0.025},
        {GGML_Q5_0, 0.05},  {GGML_Q5_1, 0.05},  {GGML_Q5_K, 0.05},  {GGML_Q4_0, 0.12},
        {GGML_Q4_1, 0.12},   {GGML_Q4_K, 0.12},   {GGML_IQ4_NL, 0.12}, {GGML_IQ4_XS, 0.12},
        {GGML_Q3_K, 0.2},   {GGML_Q2_K, 0.4},
    };
    const uint64_t n = 4096;
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
    uint8_t *q = malloc(n * 4);
    for (size_t i = 0; i < sizeof bound / sizeof bound[0]; i++) {
        enum ggml_type t = bound[i].t;
        if (!nb_quant_supported(t)) continue;
        nb_test_seed(7 + i);
        for (uint64_t j = 0; j < n; j++) {
            float s = (j / 512) % 2 ? 0.02f : 3.0f; /* runs of weights-like and larger values */
            x[j] = s * (nb_test_randf() + nb_test_randf() + nb_test_randf()) / 3;
        }
        assert_int_equal(nb_quant_row(t, x, q, n), 0);
        assert_int_equal(nb_dequant_row(t, q, y, n), 0);
        /* Per 512-run, so the small-valued runs count as much as the large ones. */
        double worst = 0;
        for (uint64_t r = 0; r < n; r += 512) {
            double se = 0, sx = 0;
            for (uint64_t j = r; j < r + 512; j++) {
                assert_true(isfinite(y[j]));
                se += ((double)y[j] - x[j]) * ((double)y[j] - x[j]), sx += (double)x[j] * x[j];
            }
            if (sqrt(se / sx) > worst) worst = sqrt(se / sx);
        }
        printf("# %s: round-trip relative RMS error %.4f (bound %.3f)\n", ggml_type_name(t),
               worst, bound[i].nrmse);
        if (worst > bound[i].nrmse) fail_msg("%s: round-trip error %g", ggml_type_name(t), worst);
    }
    free(x), free(y), free(q);
}

/* n not a multiple of the block, unknown types: -1 and the destination untouched. */
static void test_bad_args(void **state)
{
    (void)state;
    float x[600] = {0}, y[600];
    uint8_t q[2400];
    for (size_t i = 0; i < N_TYPES; i++) {
        enum ggml_type t = all_types[i];
        uint32_t bs = ggml_blck_size(t);
        if (bs == 1) continue;
        const uint64_t bad[] = {1, bs / 2, bs - 1, bs + 1, 2 * bs + 16};
        for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
            memset(y, 0x5a, sizeof y), memset(q, 0x5a, sizeof q);
            assert_int_equal(nb_dequant_row(t, q, y, bad[k]), -1);
            assert_int_equal(nb_quant_row(t, x, q, bad[k]), -1);
            for (size_t j = 0; j < sizeof q; j++) assert_int_equal(q[j], 0x5a);
            for (size_t j = 0; j < 600; j++) assert_int_equal(((uint8_t *)y)[4 * j], 0x5a);
        }
        assert_int_equal(nb_dequant_row(t, q, y, 0), 0);
    }
    /* Types with no conversion (Q8_K, IQ2_XXS, I32) and ids outside the table. */
    const int unsupported[] = {15, 16, 26, 5, 63, 64, -1};
    for (size_t k = 0; k < sizeof unsupported / sizeof unsupported[0]; k++) {
        enum ggml_type t = (enum ggml_type)unsupported[k];
        assert_false(nb_dequant_supported(t));
        assert_false(nb_quant_supported(t));
        assert_int_equal(nb_dequant_row(t, q, y, 256), -1);
        assert_int_equal(nb_quant_row(t, x, q, 256), -1);
    }
}

/* Non-finite and extreme input: every quantizer returns and writes only its row (the values
 * are unspecified, as ggml's are). */
static void test_nonfinite(void **state)
{
    (void)state;
    float x[512];
    uint8_t q[2048 + 16];
    for (int i = 0; i < 512; i++) x[i] = (float)(i % 13) - 6.0f;
    x[3] = NAN, x[40] = INFINITY, x[77] = -INFINITY, x[300] = 3e38f, x[301] = -3e38f;
    x[400] = 1e-45f, x[401] = -1e-40f;
    for (size_t i = 0; i < N_TYPES; i++) {
        enum ggml_type t = all_types[i];
        size_t nbytes = ggml_row_size(t, 512);
        memset(q, 0x5a, sizeof q);
        assert_int_equal(nb_quant_row(t, x, q, 512), 0);
        for (size_t j = nbytes; j < sizeof q; j++) assert_int_equal(q[j], 0x5a);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dequant_bits),
        cmocka_unit_test(test_quant_bytes),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_nonfinite),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

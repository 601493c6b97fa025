/* test_op_sample: token choice on the GPU (argmax, top-k/top-p/temperature sampling) against the
 * CPU reference nb_sample_ref, with ties, NaN, tiny and vocabulary-sized rows, a replayed
 * recording drawing anew from a device counter, values the API refuses made safe, in the normal
 * and the forced-fallback configuration. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op_misc.h"

struct cfg {
    struct nb_test_fixture fx; /* first: *state points at both */
    struct nb_op_misc op;
};

#define SKIP_IF_NO_GPU(g)                                                                          \
    struct cfg *g = *state;                                                                        \
    if (!g) skip()

static void dev_buf(struct vkx_ctx *vk, struct vkx_buffer *b, size_t bytes, const void *init,
                    enum vkx_mem mem)
{
    char err[256];
    assert_int_equal(vkx_buffer_create(vk, b, bytes, mem, err, sizeof err), 0);
    if (init) vkx_upload(vk, b, 0, init, bytes);
}

/* logits with a few planted maxima and ties: kind 0 random, 1 ties at the top, 2 with NaNs */
static float *make_logits(uint32_t n, int kind)
{
    float *l = malloc(sizeof(float) * n);
    assert_non_null(l);
    for (uint32_t i = 0; i < n; i++) l[i] = nb_test_randf() * 8.0f;
    if (kind == 1)
        for (uint32_t j = 0; j < 5 && n > 2; j++) l[nb_test_randu() % n] = 9.5f; /* tied best */
    if (kind == 2)
        for (uint32_t j = 0; j < 3; j++) l[nb_test_randu() % n] = NAN;
    return l;
}

/* runs argmax and one sampling per (k, temp, top_p) set on the same logits */
static void check_row(struct cfg *g, uint32_t n, int kind)
{
    struct vkx_ctx *vk = g->fx.vk;
    float *l = make_logits(n, kind);
    static const struct { uint32_t k; float temp, top_p; } sets[] = {
        {1, 1.0f, 1.0f}, {8, 0.8f, 1.0f}, {40, 1.0f, 0.9f}, {64, 1.5f, 0.95f}, {64, 0.0f, 1.0f},
        {5, 30.0f, 0.5f},
    };
    const uint32_t nsets = sizeof sets / sizeof sets[0];
    struct vkx_buffer bl, bo, br;
    uint32_t counter = 12345 + n;
    dev_buf(vk, &bl, (size_t)n * 4, l, VKX_MEM_DEVICE);
    dev_buf(vk, &bo, 4 * (nsets + 1), NULL, VKX_MEM_DEVICE);
    dev_buf(vk, &br, 4, &counter, VKX_MEM_DEVICE);
    struct vkx_cmd c;
    vkx_cmd_create(vk, &c, 32, false);
    vkx_cmd_begin(vk, &c);
    nb_op_argmax(&g->op, vk, &c, vkx_whole(&bl), n, vkx_whole(&bo), 0);
    for (uint32_t s = 0; s < nsets; s++) {
        vkx_cmd_barrier(&c); /* the scratch is shared */
        nb_op_sample(&g->op, vk, &c, vkx_whole(&bl), n, sets[s].k, sets[s].temp, sets[s].top_p,
                     777 + s, vkx_whole(&br), vkx_whole(&bo), 1 + s);
    }
    vkx_cmd_end(vk, &c);
    vkx_cmd_submit_wait(vk, &c);
    vkx_cmd_destroy(vk, &c);
    nb_test_check_validation();
    uint32_t got[16];
    vkx_download(vk, &bo, 0, got, 4 * (nsets + 1));

    uint32_t want = nb_sample_ref(l, n, 1, 0.0f, 1.0f, 0, 0, NULL);
    if (got[0] != want) fail_msg("argmax n=%u kind=%d: got %u, want %u", n, kind, got[0], want);
    for (uint32_t s = 0; s < nsets; s++) {
        float margin;
        want = nb_sample_ref(l, n, sets[s].k, sets[s].temp, sets[s].top_p, 777 + s, counter,
                             &margin);
        if (got[1 + s] != want && margin > 1e-5f)
            fail_msg("sample n=%u kind=%d k=%u T=%g p=%g: got %u, want %u (margin %g)", n, kind,
                     sets[s].k, (double)sets[s].temp, (double)sets[s].top_p, got[1 + s], want,
                     (double)margin);
    }
    vkx_buffer_destroy(vk, &bl);
    vkx_buffer_destroy(vk, &bo);
    vkx_buffer_destroy(vk, &br);
    free(l);
}

static void test_rows(void **state)
{
    SKIP_IF_NO_GPU(g);
    nb_test_seed(11);
    static const uint32_t ns[] = {1, 2, 31, 33, 257, 1025, 5376, 262144};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
        for (int kind = 0; kind < 3; kind++) check_row(g, ns[i], kind);
}

/* The CPU reference itself: greedy picks, top_p tiny = greedy, and the draw spreads over tokens. */
static void test_reference(void **state)
{
    (void)state;
    float l[6] = {1.0f, 3.0f, 3.0f, NAN, -2.0f, 0.5f};
    assert_int_equal(nb_sample_ref(l, 6, 1, 1.0f, 1.0f, 1, 1, NULL), 1);
    assert_int_equal(nb_sample_ref(l, 6, 6, 0.0f, 1.0f, 1, 1, NULL), 1);
    assert_int_equal(nb_sample_ref(l, 6, 6, 1.0f, 1e-6f, 5, 9, NULL), 1);
    uint32_t hits[6] = {0};
    for (uint32_t i = 0; i < 2000; i++) hits[nb_sample_ref(l, 6, 6, 1.0f, 1.0f, 3, i, NULL)]++;
    assert_true(hits[1] > 500 && hits[2] > 500 && hits[0] > 50 && hits[3] == 0);
    for (uint32_t i = 0; i < 1000; i++) {
        float u = nb_sample_uniform(42, i);
        assert_true(u >= 0.0f && u < 1.0f);
    }
}

/* Values the public API refuses, from a caller inside the engine: a temperature that is NaN,
 * negative, infinite or so small that 1/temp overflows samples greedily (no 0 * inf in the
 * shader), top_p NaN or above 1 is off and below 0 keeps the best; the device agrees with the
 * reference. */
static void test_unsafe_params(void **state)
{
    SKIP_IF_NO_GPU(g);
    struct vkx_ctx *vk = g->fx.vk;
    nb_test_seed(14);
    const uint32_t n = 300;
    float *l = make_logits(n, 0);
    static const struct { float temp, top_p; bool greedy; } sets[] = {
        {NAN, 1.0f, true},    {-1.0f, 1.0f, true}, {INFINITY, 1.0f, true},
        {1e-40f, 1.0f, true}, {1.0f, NAN, false},  {1.0f, 2.0f, false},
        {1.0f, -1.0f, true},
    };
    const uint32_t nsets = sizeof sets / sizeof sets[0];
    uint32_t counter = 7;
    struct vkx_buffer bl, bo, br;
    dev_buf(vk, &bl, (size_t)n * 4, l, VKX_MEM_DEVICE);
    dev_buf(vk, &bo, 4 * nsets, NULL, VKX_MEM_DEVICE);
    dev_buf(vk, &br, 4, &counter, VKX_MEM_DEVICE);
    struct vkx_cmd c;
    vkx_cmd_create(vk, &c, 32, false);
    vkx_cmd_begin(vk, &c);
    for (uint32_t s = 0; s < nsets; s++) {
        if (s) vkx_cmd_barrier(&c);
        nb_op_sample(&g->op, vk, &c, vkx_whole(&bl), n, 8, sets[s].temp, sets[s].top_p, 31 + s,
                     vkx_whole(&br), vkx_whole(&bo), s);
    }
    vkx_cmd_end(vk, &c);
    vkx_cmd_submit_wait(vk, &c);
    vkx_cmd_destroy(vk, &c);
    nb_test_check_validation();
    uint32_t got[8];
    vkx_download(vk, &bo, 0, got, 4 * nsets);
    uint32_t best = nb_sample_ref(l, n, 1, 0.0f, 1.0f, 0, 0, NULL);
    for (uint32_t s = 0; s < nsets; s++) {
        float margin;
        uint32_t want = nb_sample_ref(l, n, 8, sets[s].temp, sets[s].top_p, 31 + s, counter,
                                      &margin);
        if (sets[s].greedy) assert_int_equal(want, best);
        if (got[s] != want && margin > 1e-5f)
            fail_msg("T=%g p=%g: got %u, want %u", (double)sets[s].temp, (double)sets[s].top_p,
                     got[s], want);
    }
    vkx_buffer_destroy(vk, &bl);
    vkx_buffer_destroy(vk, &bo);
    vkx_buffer_destroy(vk, &br);
    free(l);
}

/* A recording replayed with only the device counter changed draws like the reference. */
static void test_replay(void **state)
{
    SKIP_IF_NO_GPU(g);
    struct vkx_ctx *vk = g->fx.vk;
    nb_test_seed(12);
    const uint32_t n = 4099;
    float *l = make_logits(n, 0);
    struct vkx_buffer bl, bo, br;
    dev_buf(vk, &bl, (size_t)n * 4, l, VKX_MEM_DEVICE);
    dev_buf(vk, &bo, 4, NULL, VKX_MEM_HOST);
    dev_buf(vk, &br, 4, NULL, VKX_MEM_HOST);
    struct vkx_cmd c;
    vkx_cmd_create(vk, &c, 8, true);
    vkx_cmd_begin(vk, &c);
    nb_op_sample(&g->op, vk, &c, vkx_whole(&bl), n, 64, 3.0f, 1.0f, 99, vkx_whole(&br),
                 vkx_whole(&bo), 0);
    vkx_cmd_end(vk, &c);
    uint32_t distinct = 0, prev = UINT32_MAX;
    for (uint32_t step = 0; step < 16; step++) {
        vkx_upload(vk, &br, 0, &step, 4);
        vkx_cmd_submit_wait(vk, &c);
        uint32_t got;
        vkx_download(vk, &bo, 0, &got, 4);
        float margin;
        uint32_t want = nb_sample_ref(l, n, 64, 3.0f, 1.0f, 99, step, &margin);
        if (got != want && margin > 1e-5f)
            fail_msg("replay step %u: got %u, want %u", step, got, want);
        distinct += got != prev;
        prev = got;
        if (step == 15) {
            double ns[4] = {0}, tot = 0;
            uint32_t nd = vkx_cmd_read_times(vk, &c, ns, 4);
            for (uint32_t i = 0; i < nd; i++) tot += ns[i];
            printf("# sample n=%u k=64: %u dispatches, %.1f us\n", n, nd, tot / 1e3);
        }
    }
    assert_true(distinct > 4);
    nb_test_check_validation();
    vkx_cmd_destroy(vk, &c);
    vkx_buffer_destroy(vk, &bl);
    vkx_buffer_destroy(vk, &bo);
    vkx_buffer_destroy(vk, &br);
    free(l);
}

/* Timings of argmax and sampling over a vocabulary-sized row (printed, not checked). */
static void test_bench(void **state)
{
    SKIP_IF_NO_GPU(g);
    struct vkx_ctx *vk = g->fx.vk;
    nb_test_seed(13);
    const uint32_t n = 262144;
    float *l = make_logits(n, 0);
    struct vkx_buffer bl, bo;
    dev_buf(vk, &bl, (size_t)n * 4, l, VKX_MEM_DEVICE);
    dev_buf(vk, &bo, 4, NULL, VKX_MEM_DEVICE);
    static const uint32_t ks[] = {1, 8, 64};
    for (size_t q = 0; q < 3; q++) {
        struct vkx_cmd c;
        vkx_cmd_create(vk, &c, 8, true);
        vkx_cmd_begin(vk, &c);
        nb_op_sample(&g->op, vk, &c, vkx_whole(&bl), n, ks[q], 1.0f, 1.0f, 5, vkx_whole(&bo),
                     vkx_whole(&bo), 0);
        vkx_cmd_end(vk, &c);
        vkx_cmd_submit_wait(vk, &c);
        vkx_cmd_submit_wait(vk, &c);
        double ns[4] = {0}, tot = 0;
        uint32_t nd = vkx_cmd_read_times(vk, &c, ns, 4);
        for (uint32_t i = 0; i < nd; i++) tot += ns[i];
        printf("# bench sample n=%u k=%u: %u dispatches, %.1f us (%.2f GB/s of logits)\n", n,
               ks[q], nd, tot / 1e3, tot > 0 ? n * 4.0 / tot : 0.0);
        vkx_cmd_destroy(vk, &c);
    }
    nb_test_check_validation();
    vkx_buffer_destroy(vk, &bl);
    vkx_buffer_destroy(vk, &bo);
    free(l);
}

static int op_create(void *op, struct vkx_ctx *vk, char *err, size_t errlen)
{
    return nb_op_misc_create(op, vk, err, errlen);
}
static void op_destroy(void *op, struct vkx_ctx *vk) { nb_op_misc_destroy(op, vk); }

static int setup(void **state, bool fallback)
{
    static struct cfg g;
    return nb_test_fixture_setup(state, &g.fx, fallback, &g.op, op_create, op_destroy);
}
static int setup_normal(void **state) { return setup(state, false); }
static int setup_fallback(void **state) { return setup(state, true); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference),
        cmocka_unit_test(test_rows),
        cmocka_unit_test(test_replay),
        cmocka_unit_test(test_unsafe_params),
        cmocka_unit_test(test_bench),
    };
    int rc = cmocka_run_group_tests_name("normal", tests, setup_normal, nb_test_fixture_teardown);
    rc |= cmocka_run_group_tests_name("fallback", tests, setup_fallback, nb_test_fixture_teardown);
    nb_test_vk_done();
    return rc;
}

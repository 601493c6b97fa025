/* test_selftest: the numeric self-test at load (engine/selftest.h) on the default model: a clean
 * device passes and the second load reads the cached verdicts; fault injection (NIBBLE_FAULT)
 * corrupting one kernel's result or refusing one pipeline's build makes that family fall back to
 * its plain variant, whose logits match the clean load's, and the fallback is cached too; a plain
 * variant that is wrong fails the load with one line; bad switches are refused. And the device
 * memory check before uploading (VK_EXT_memory_budget, faked by NIBBLE_FAKE_BUDGET). */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forward.h"
#include "vkx_selftest.h"

#define MODEL NB_TEST_DATA "/../../models/default.gguf"
#define CACHE NB_TEST_TMP "/selftest"

static const int32_t prompt[] = {2, 818, 2058, 1176}; /* any ids below the vocabulary */
#define NP (sizeof prompt / sizeof prompt[0])

static float *clean_logits; /* [V] of the clean load, for the fallbacks to match */

/* Loads a model with validation on; 0 or -1 (err filled). */
static int load_model(struct nb_gpu_model *g, const char *path, char *err, size_t errlen)
{
    struct vkx_opts o = {.device_index = -1, .validation = true, .pipeline_cache_dir = CACHE};
    return nb_gpu_model_load(g, path, &o, err, errlen);
}

static int load(struct nb_gpu_model *g, char *err, size_t errlen)
{
    return load_model(g, MODEL, err, errlen);
}

/* Removes this device's verdicts, so the next load checks again. */
static void forget(struct nb_gpu_model *g)
{
    char path[1100];
    if (vkx_verdict_path(&g->vk, path, sizeof path)) remove(path);
}

/* The last-row logits of the prompt (malloc'd [V]). */
static float *logits(struct nb_gpu_model *g)
{
    struct nb_fwd f;
    char err[512];
    int rc = nb_fwd_create(&f, g, 32, 8, false, false, err, sizeof err);
    if (rc) printf("# %s\n", err);
    assert_int_equal(rc, 0);
    nb_fwd_run(&f, prompt, NP, 0, false);
    uint32_t V = g->m.cfg.n_vocab;
    float *l = malloc(sizeof(float) * V);
    assert_non_null(l);
    memcpy(l, f.logits.map, sizeof(float) * V);
    nb_fwd_destroy(&f);
    return l;
}

static void match(struct nb_gpu_model *g, const float *clean)
{
    float *l = logits(g);
    uint32_t V = g->m.cfg.n_vocab;
    double top1, mean, max;
    nb_test_logits_compare(l, clean, 1, V, &top1, &mean, &max);
    printf("# against the clean load: top-1 %.0f%%, max |diff| %.3g\n", top1 * 100, max);
    assert_true(top1 == 1.0);
    assert_true(max < 2e-2);
    free(l);
}

static void match_clean(struct nb_gpu_model *g) { match(g, clean_logits); }

static void set_env(const char *fault, const char *disable)
{
    if (fault) setenv("NIBBLE_FAULT", fault, 1);
    else unsetenv("NIBBLE_FAULT");
    if (disable) setenv("NIBBLE_DISABLE", disable, 1);
    else unsetenv("NIBBLE_DISABLE");
    vkx_fault_reset();
}

static void test_clean(void **state)
{
    (void)state;
    struct nb_gpu_model g;
    char err[512];
    set_env(NULL, NULL);
    assert_int_equal(load(&g, err, sizeof err), 0);
    forget(&g);
    nb_gpu_model_free(&g);
    assert_int_equal(load(&g, err, sizeof err), 0); /* cold */
    printf("# cold: %u dispatches checked in %.1f ms, plain 0x%x\n", g.st.checked, g.st.ms,
           g.st.plain);
    assert_true(g.st.ran);
    assert_true(g.st.checked >= 8);
    assert_int_equal(g.st.plain, 0);
    assert_string_equal(g.st.note, "");
    clean_logits = logits(&g);
    nb_gpu_model_free(&g);
    assert_int_equal(load(&g, err, sizeof err), 0); /* warm */
    printf("# warm: %u dispatches checked in %.1f ms\n", g.st.checked, g.st.ms);
    assert_false(g.st.ran);
    assert_int_equal(g.st.checked, 0);
    assert_int_equal(g.st.plain, 0);
    nb_gpu_model_free(&g);
    nb_test_check_validation();
}

/* A fault that makes family `fam` fall back: at the first load the check (or the build) finds
 * it, at the second the cached verdict applies it without a check. */
static void check_fallback(const char *fault, unsigned fam, bool ran_expected)
{
    struct nb_gpu_model g;
    char err[512];
    if (!clean_logits) skip();
    set_env(fault, NULL);
    for (int pass = 0; pass < 2; pass++) {
        int rc = load(&g, err, sizeof err);
        if (rc) printf("# %s\n", err);
        assert_int_equal(rc, 0);
        if (pass == 0) {
            forget(&g); /* a fresh check */
            nb_gpu_model_free(&g);
            vkx_fault_reset();
            assert_int_equal(load(&g, err, sizeof err), 0);
        }
        printf("# %s, %s: plain 0x%x, ran %d: %s\n", fault, pass ? "warm" : "cold", g.st.plain,
               g.st.ran, g.st.note);
        assert_int_equal(g.st.plain, 1u << fam);
        assert_true((g.vk.caps.disabled & VKX_FEAT_HALFCVT) != 0);
        assert_non_null(strstr(g.st.note, strchr(fault, ':') + 1));
        if (pass == 0) assert_int_equal(g.st.ran, ran_expected);
        else assert_false(g.st.ran), assert_non_null(strstr(g.st.note, "(cached)"));
        match_clean(&g);
        nb_gpu_model_free(&g);
    }
    set_env(NULL, NULL);
    nb_test_check_validation();
}

static void test_corrupt_matvec(void **state)
{
    (void)state;
    check_fallback("corrupt:matvec_q4_0", NB_ST_MATRIX, true);
}

static void test_corrupt_rope(void **state)
{
    (void)state;
    check_fallback("corrupt:rope", NB_ST_MISC, true);
}

/* split-K attention's merge (attn_combine), checked on a decode step split over the keys */
static void test_corrupt_combine(void **state)
{
    (void)state;
    check_fallback("corrupt:attn_combine", NB_ST_ATTN, true);
}

/* The MoE expert products (matvec_id; matmul_id where prefill groups by expert) on the MoE
 * golden model: clean, then one corrupted, which falls back with logits as clean. */
static void test_corrupt_experts(void **state)
{
    (void)state;
    struct nb_gpu_model g;
    char err[512];
    const char *moe = NB_TEST_DATA "/moe.gguf";
    set_env(NULL, NULL);
    assert_int_equal(load_model(&g, moe, err, sizeof err), 0);
    forget(&g);
    nb_gpu_model_free(&g);
    assert_int_equal(load_model(&g, moe, err, sizeof err), 0);
    printf("# moe cold: %u dispatches checked, plain 0x%x\n", g.st.checked, g.st.plain);
    assert_true(g.st.ran);
    assert_int_equal(g.st.plain, 0);
    float *clean = logits(&g);
    nb_gpu_model_free(&g);
    set_env("corrupt:matvec_id_q4_0", NULL);
    assert_int_equal(load_model(&g, moe, err, sizeof err), 0);
    forget(&g);
    nb_gpu_model_free(&g);
    vkx_fault_reset();
    assert_int_equal(load_model(&g, moe, err, sizeof err), 0);
    printf("# corrupt:matvec_id_q4_0: plain 0x%x: %s\n", g.st.plain, g.st.note);
    assert_int_equal(g.st.plain, 1u << NB_ST_MATRIX);
    assert_non_null(strstr(g.st.note, "matvec_id_q4_0"));
    match(&g, clean);
    nb_gpu_model_free(&g);
    free(clean);
    set_env(NULL, NULL);
    nb_test_check_validation();
}

static void test_nobuild_embed(void **state)
{
    (void)state;
    check_fallback("nobuild:embed_q4_0", NB_ST_MATRIX, true);
}

static void test_nobuild_rope(void **state)
{
    (void)state;
    check_fallback("nobuild:rope", NB_ST_MISC, true);
}

/* With every optional feature already off there is no plainer variant: a wrong result fails
 * the load with one line, a refused build with the driver's message. */
static void test_plain_wrong(void **state)
{
    (void)state;
    struct nb_gpu_model g;
    char err[512];
    const char *all = "subgroup,texel,sgsize,halfcvt,fp16,int8";
    set_env("corrupt:eltwise", all);
    assert_int_equal(load(&g, err, sizeof err), -1);
    printf("# %s\n", err);
    assert_non_null(strstr(err, "self-test: eltwise"));
    assert_non_null(strstr(err, "plain variant"));
    assert_null(strchr(err, '\n'));
    set_env("nobuild:rope", all);
    assert_int_equal(load(&g, err, sizeof err), -1);
    printf("# %s\n", err);
    assert_non_null(strstr(err, "rope"));
    set_env("corrupt:eltwise", all); /* NIBBLE_SELFTEST=0 loads anyway */
    setenv("NIBBLE_SELFTEST", "0", 1);
    assert_int_equal(load(&g, err, sizeof err), 0);
    assert_true(g.st.off && !g.st.ran);
    nb_gpu_model_free(&g);
    unsetenv("NIBBLE_SELFTEST");
    set_env(NULL, NULL);
    nb_test_check_validation();
}

static void test_bad_switches(void **state)
{
    (void)state;
    struct nb_gpu_model g;
    char err[512];
    static const char *const faults[] = {"corrupt", "corrupt:", "break:rope", "nobuild:rope,",
                                         ",corrupt:rope"};
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++) {
        set_env(faults[i], NULL);
        assert_int_equal(load(&g, err, sizeof err), -1);
        assert_non_null(strstr(err, "NIBBLE_FAULT="));
    }
    set_env(NULL, NULL);
    setenv("NIBBLE_SELFTEST", "yes", 1);
    assert_int_equal(load(&g, err, sizeof err), -1);
    assert_non_null(strstr(err, "NIBBLE_SELFTEST=yes"));
    unsetenv("NIBBLE_SELFTEST");
}

/* The memory check before uploading, with a budget as VK_EXT_memory_budget would give it. */
static void test_budget(void **state)
{
    (void)state;
    struct nb_gpu_model g;
    char err[512];
    set_env(NULL, NULL);
    setenv("NIBBLE_FAKE_BUDGET", "100:10", 1);
    assert_int_equal(load(&g, err, sizeof err), 0);
    assert_true(g.mem_budget);
    assert_true(g.mem_need > 1000000 && g.mem_need < 10000000); /* the 2.6 MiB of weights */
    assert_true(g.mem_avail == 90ull << 20);
    nb_gpu_model_free(&g);
    setenv("NIBBLE_FAKE_BUDGET", "3:1", 1); /* 2 MiB free: too little */
    assert_int_equal(load(&g, err, sizeof err), -1);
    printf("# %s\n", err);
    assert_non_null(strstr(err, "the device can give 2.0 MiB (VK_EXT_memory_budget"));
    assert_null(strchr(err, '\n'));
    setenv("NIBBLE_FAKE_BUDGET", "3", 1);
    assert_int_equal(load(&g, err, sizeof err), -1);
    assert_non_null(strstr(err, "NIBBLE_FAKE_BUDGET=3"));
    unsetenv("NIBBLE_FAKE_BUDGET");
    assert_int_equal(load(&g, err, sizeof err), 0); /* the device's own figures, or the heap */
    assert_true(g.mem_avail >= g.mem_need);
    nb_gpu_model_free(&g);
    nb_test_check_validation();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clean),          cmocka_unit_test(test_corrupt_matvec),
        cmocka_unit_test(test_corrupt_rope),   cmocka_unit_test(test_corrupt_combine),
        cmocka_unit_test(test_corrupt_experts), cmocka_unit_test(test_nobuild_embed),
        cmocka_unit_test(test_nobuild_rope),   cmocka_unit_test(test_plain_wrong),
        cmocka_unit_test(test_bad_switches),   cmocka_unit_test(test_budget),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    free(clean_logits);
    return rc;
}

/* test_truncate: nibble_truncate, the KV cache rolled back, on the dense, MoE and PLE test models
 * (sliding window 16, a ring of 16 + 8 slots in a 128-token context; the PLE model's last five
 * layers read the KV of earlier ones):
 * - eval A + B, truncate to |A|, eval C gives the logits of eval A + C from scratch (the same
 *   kernels: equal up to rounding) and of the CPU reference (engine/ref.c) on A + C, with the
 *   window crossed in A, B and C and B evaluated in one chunk;
 * - a rollback deeper than the ring still holds is refused with a message and changes nothing;
 *   one inside the last chunk succeeds; n_keep above n_past is refused;
 * - the logits row of position n_keep - 1 survives a truncate inside an all-logits eval, and
 *   nibble_tokens follows eval and truncate. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "nibble.h"
#include "ref.h"

enum { NA = 40, NB = 6, NC = 10, NCTX = 128, NBATCH = 8 };

static struct nibble_model *load(const char *path)
{
    struct nibble_model_params mp = nibble_model_default_params();
    mp.validation = true;
    char err[512];
    struct nibble_model *m = nibble_model_load(path, &mp, err, sizeof err);
    if (!m) fail_msg("%s: %s", path, err);
    return m;
}

static struct nibble_context *ctx(struct nibble_model *m)
{
    struct nibble_context_params cp = nibble_context_default_params();
    cp.n_ctx = NCTX;
    cp.n_batch = NBATCH;
    char err[512];
    struct nibble_context *c = nibble_context_create(m, &cp, err, sizeof err);
    if (!c) fail_msg("%s", err);
    return c;
}

static void eval_ok(struct nibble_context *c, const int32_t *ids, int n, bool all)
{
    char err[512];
    if (nibble_eval(c, ids, n, all, err, sizeof err) != 0) fail_msg("eval: %s", err);
}

/* C one token at a time after the cache holds A: the logits of every step into out [NC][V]. */
static void eval_c(struct nibble_context *c, const int32_t *ids_c, float *out, size_t V)
{
    for (int i = 0; i < NC; i++) {
        eval_ok(c, &ids_c[i], 1, false);
        memcpy(out + i * V, nibble_logits(c, -1), V * sizeof(float));
    }
}

static void check_model(const char *name)
{
    const char *p = nb_test_file(name);
    if (!p) {
        printf("# %s absent: skipped\n", name);
        return;
    }
    char path[2048], err[512];
    snprintf(path, sizeof path, "%s", p);
    int32_t a[NA], b[NB + 30], cc[NC];
    nb_test_seed(11);
    a[0] = 2;
    for (int i = 1; i < NA; i++)
        a[i] = 3 + (int32_t)(nb_test_randu() % 900);
    for (int i = 0; i < NB + 30; i++)
        b[i] = 3 + (int32_t)(nb_test_randu() % 900);
    for (int i = 0; i < NC; i++)
        cc[i] = 3 + (int32_t)(nb_test_randu() % 900);

    struct nibble_model *m = load(path);
    size_t V = (size_t)nibble_n_vocab(m);
    float *got = malloc(NC * V * sizeof(float)), *fresh = malloc(NC * V * sizeof(float));
    float *ref = malloc(NC * V * sizeof(float)), *row = malloc(V * sizeof(float));

    /* A + B (one chunk), truncate to |A|, C */
    struct nibble_context *c = ctx(m);
    eval_ok(c, a, NA, false);
    eval_ok(c, b, NB, true);
    memcpy(row, nibble_logits(c, 2), V * sizeof(float));
    assert_int_equal(nibble_truncate(c, NA + 3, err, sizeof err), 0);
    assert_int_equal(nibble_n_past(c), NA + 3);
    const float *kept = nibble_logits(c, -1); /* the row of position NA + 2 survives */
    assert_non_null(kept);
    assert_memory_equal(kept, row, V * sizeof(float));
    assert_null(nibble_logits(c, 3));
    assert_int_equal(nibble_truncate(c, NA, err, sizeof err), 0);
    assert_null(nibble_logits(c, -1)); /* position NA - 1 was not in the last eval */
    assert_int_equal(nibble_sample(c, &(struct nibble_sampler){0, 1, 1.0f, 1}), -1);
    assert_int_equal(nibble_n_past(c), NA);
    assert_memory_equal(nibble_tokens(c), a, sizeof a);
    eval_c(c, cc, got, V);
    assert_memory_equal(nibble_tokens(c) + NA, cc, sizeof cc);

    /* deeper than the ring: C's 10 single steps wrote 16 + 8 slots past position 25, which the
     * window of position NA needs; two steps less is fine */
    assert_int_equal(nibble_truncate(c, NA, err, sizeof err), -1);
    printf("# %s: %s\n", name, err);
    assert_non_null(strstr(err, "sliding-window"));
    assert_int_equal(nibble_n_past(c), NA + NC);
    assert_int_equal(nibble_truncate(c, NA + 2, err, sizeof err), 0);
    eval_ok(c, b, NB + 30, false); /* chunks of 8, the last one of 4 */
    assert_int_equal(nibble_truncate(c, NA + 2, err, sizeof err), -1);
    assert_int_equal(nibble_truncate(c, NA + 2 + NB + 30 - 4, err, sizeof err), 0);
    assert_int_equal(nibble_truncate(c, NCTX, err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot keep"));
    nibble_context_destroy(c);

    /* A + C from scratch */
    c = ctx(m);
    eval_ok(c, a, NA, false);
    eval_c(c, cc, fresh, V);
    nibble_context_destroy(c);
    nibble_model_free(m);
    nb_test_check_validation();

    /* the CPU reference on A + C, with A + B first and C written over B's positions */
    struct nb_model rm;
    assert_int_equal(nb_model_load(&rm, path, err, sizeof err), 0);
    struct nb_ref *r = nb_ref_create(&rm, NCTX, err, sizeof err);
    assert_non_null(r);
    assert_int_equal(nb_ref_eval(r, a, NA, 0, NULL, true, err, sizeof err), 0);
    assert_int_equal(nb_ref_eval(r, b, NB, NA, NULL, true, err, sizeof err), 0);
    assert_int_equal(nb_ref_eval(r, cc, NC, NA, ref, false, err, sizeof err), 0);
    nb_ref_destroy(r);
    nb_model_free(&rm);

    double top1, mean, max;
    nb_test_logits_compare(got, fresh, NC, V, &top1, &mean, &max);
    printf("# %s: truncated vs from scratch: top1 %.3f mean %.2g max %.2g\n", name, top1, mean,
           max);
    assert_true(top1 >= 1.0);
    assert_true(max < 1e-3);
    nb_test_logits_compare(got, ref, NC, V, &top1, &mean, &max);
    printf("# %s: truncated vs CPU reference: top1 %.3f mean %.4f max %.3f\n", name, top1, mean,
           max);
    assert_true(top1 >= 0.9);
    assert_true(mean < 0.05);
    free(got);
    free(fresh);
    free(ref);
    free(row);
}

static void test_dense(void **state)
{
    (void)state;
    check_model("dense.gguf");
}

static void test_moe(void **state)
{
    (void)state;
    check_model("moe.gguf");
}

static void test_ple(void **state)
{
    (void)state;
    check_model("ple.gguf");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dense),
        cmocka_unit_test(test_moe),
        cmocka_unit_test(test_ple),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

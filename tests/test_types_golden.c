/* test_types_golden: the GPU forward pass on every weight type against llama.cpp.
 *
 * tests/data/types holds small Gemma 4 models (dense, MoE, PLE with KV sharing) quantized by
 * llama.cpp's own quantizer with per-tensor types (tests/data/types/README.md,
 * tools/make-type-goldens.sh): dense holds every type nibble reads beyond Q4_0/Q8_0/F16 (Q4_1,
 * Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS, BF16) in different roles (fused q|k|v
 * and gate|up of one type or mixed, the tied embedding, K=256 and K=512), moe four of them on its
 * experts, ple the other seven on its per-layer tables and projections; with llama.cpp's logits on
 * its CPU and Vulkan backends. Each run (prefill and decode mode) must be at least as close to
 * each llama.cpp file as the two are to each other (top-1 agreement, mean abs difference), like
 * test_forward's goldens; some runs use the GPU kernel shapes (NIBBLE_TUNE=gpu) or the forced
 * fallbacks (NIBBLE_DISABLE=fp16,subgroup,int8,texel,fuse,halfcvt).
 *
 * A file whose types nibble refuses to load ("unsupported type ...") is skipped, saying which.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "nibble.h"
#include "testutil.h"

#define MAX_IDS 64

/* One run: a file of tests/data/types under one NIBBLE_DISABLE / NIBBLE_TUNE setting. */
struct run {
    const char *file;    /* types/FILE.gguf, FILE.llamacpp-{cpu,vulkan}.f32 */
    const char *disable; /* "" : none */
    const char *tune;    /* NULL: the device's kernel shapes; "gpu": a GPU's */
    bool int8;           /* NIBBLE_INT8=1: the int8 decode products (engine/op_int8.h) */
};

#define FALLBACK "fp16,subgroup,int8,texel,fuse,halfcvt"
/* Each load compiles the pipelines of the file's types (lavapipe: about 1 s of CPU per type and
 * kernel family, twice that with validation), so the runs are few: each file with the device's
 * kernels; dense (every type) and moe (experts) with a GPU's (subgroup matvec, tiled prefill
 * matmul, experts grouped); ple, which holds a type of each family (K-quants, 32-blocks, BF16),
 * with the forced fallbacks; dense also with the int8 decode products (NIBBLE_INT8=1, a GPU's
 * shapes). */
static const struct run runs[] = {
    {"dense", "", NULL, false}, {"dense", "", "gpu", false}, {"moe", "", NULL, false},
    {"moe", "", "gpu", false},  {"ple", "", NULL, false},    {"ple", FALLBACK, NULL, false},
    {"dense", "", "gpu", true},
};
#define N_RUNS (sizeof runs / sizeof runs[0])

/* The types beyond Q4_0/Q8_0/F16 that nibble reads. */
static const enum ggml_type new_types[] = {GGML_Q4_1,   GGML_Q5_0,   GGML_Q5_1, GGML_Q2_K,
                                           GGML_Q3_K,   GGML_Q4_K,   GGML_Q5_K, GGML_Q6_K,
                                           GGML_IQ4_NL, GGML_IQ4_XS, GGML_BF16};
#define N_NEW (sizeof new_types / sizeof new_types[0])

/* What each file must hold (the README's table): dense every new type; moe four of them on the
 * experts (the rest Q4_0); ple the other seven on its embedding tables, inp_gate and proj. */
static const struct expect {
    const char *file;
    const char *only_in; /* the types must be on tensors whose name contains this (NULL: any) */
    enum ggml_type types[N_NEW];
    int n;
} expect[] = {
    {"dense",
     NULL,
     {GGML_Q4_1, GGML_Q5_0, GGML_Q5_1, GGML_Q2_K, GGML_Q3_K, GGML_Q4_K, GGML_Q5_K, GGML_Q6_K,
      GGML_IQ4_NL, GGML_IQ4_XS, GGML_BF16},
     11},
    {"moe", "_exps", {GGML_Q4_K, GGML_Q6_K, GGML_IQ4_XS, GGML_Q5_0}, 4},
    {"ple",
     NULL,
     {GGML_Q2_K, GGML_Q3_K, GGML_Q5_K, GGML_Q4_1, GGML_Q5_1, GGML_IQ4_NL, GGML_BF16},
     7},
};



static char paths[3][2048];
static const char *path_of(int slot, const char *name, const char *ext)
{
    char n[256];
    snprintf(n, sizeof n, "types/%s%s", name, ext);
    const char *p = nb_test_file(n);
    if (!p) return NULL;
    snprintf(paths[slot], sizeof paths[slot], "%s", p);
    return paths[slot];
}

static int read_ids(int32_t *ids)
{
    const char *p = nb_test_file("types/types.ids");
    FILE *f = p ? fopen(p, "r") : NULL;
    int n = 0;
    if (!f) return 0;
    while (n < MAX_IDS && fscanf(f, "%d", &ids[n]) == 1)
        n++;
    fclose(f);
    return n;
}

/* The data itself: llama.cpp wrote what the README says, and the files hold every new type. */
static void test_files(void **state)
{
    (void)state;
    bool seen[GGML_TYPE_MAX] = {false};
    for (size_t f = 0; f < sizeof expect / sizeof expect[0]; f++) {
        const struct expect *e = &expect[f];
        const char *path = path_of(0, e->file, ".gguf");
        assert_non_null(path);
        char err[512];
        struct gguf *g = gguf_open(path, err, sizeof err);
        if (!g) fail_msg("%s", err);
        unsigned count[GGML_TYPE_MAX] = {0}, where[GGML_TYPE_MAX] = {0};
        for (uint64_t i = 0; i < g->n_tensors; i++) {
            const struct gguf_tensor *t = &g->tensors[i];
            char name[128];
            snprintf(name, sizeof name, "%.*s", (int)t->name.n, t->name.p);
            if (t->type >= GGML_TYPE_MAX) continue;
            count[t->type]++;
            where[t->type] += !e->only_in || strstr(name, e->only_in) != NULL;
        }
        printf("# types/%s.gguf:", e->file);
        for (int t = 0; t < GGML_TYPE_MAX; t++)
            if (count[t]) printf(" %s x%u", ggml_type_name((enum ggml_type)t), count[t]);
        printf("\n");
        for (int k = 0; k < e->n; k++) {
            if (!where[e->types[k]])
                fail_msg("types/%s.gguf holds no %s%s%s", e->file, ggml_type_name(e->types[k]),
                         e->only_in ? " on a tensor named *" : "", e->only_in ? e->only_in : "");
            seen[e->types[k]] = true;
        }
        gguf_close(g);
    }
    for (size_t k = 0; k < N_NEW; k++)
        if (!seen[new_types[k]]) fail_msg("no file holds %s", ggml_type_name(new_types[k]));
}

static void test_run(void **state)
{
    const struct run *r = *state;
    int32_t ids[MAX_IDS];
    int n = read_ids(ids);
    assert_true(n >= 16);
    const char *model = path_of(0, r->file, ".gguf");
    assert_non_null(model);

    struct nibble_model_params mp = nibble_model_default_params();
    mp.validation = true;
    mp.disable = r->disable;
    char err[512];
    if (r->tune) setenv("NIBBLE_TUNE", r->tune, 1);
    if (r->int8) setenv("NIBBLE_INT8", "1", 1);
    struct nibble_model *m = nibble_model_load(model, &mp, err, sizeof err);
    unsetenv("NIBBLE_TUNE");
    unsetenv("NIBBLE_INT8");
    if (!m && strstr(err, "unsupported type")) {
        /* the file is right, the engine does not read one of its types yet: say which, no pass */
        printf("# SKIP types/%s.gguf disable=%s%s: %s\n", r->file, r->disable,
               r->tune ? " tune=gpu" : "", err);
        nb_test_check_validation();
        skip();
    }
    if (!m) fail_msg("types/%s.gguf: %s", r->file, err);

    size_t V = (size_t)nibble_n_vocab(m);
    const char *refs[2] = {".llamacpp-cpu.f32", ".llamacpp-vulkan.f32"};
    float *ref[2];
    for (int k = 0; k < 2; k++) {
        size_t sz = 0;
        ref[k] = nb_test_read(path_of(1, r->file, refs[k]), &sz);
        assert_non_null(ref[k]);
        assert_int_equal(sz, (size_t)n * V * sizeof(float));
    }
    double s_top1, s_mean, s_max;
    nb_test_logits_compare(ref[0], ref[1], (size_t)n, V, &s_top1, &s_mean, &s_max);

    float *got = malloc((size_t)n * V * sizeof(float));
    assert_non_null(got);
    int bad = 0;
    for (int mode = 0; mode < 2; mode++) {
        struct nibble_context_params cp = {.n_ctx = (uint32_t)n, .n_batch = mode ? 1 : (uint32_t)n};
        struct nibble_context *c = nibble_context_create(m, &cp, err, sizeof err);
        if (!c) fail_msg("%s", err);
        if (mode == 0) {
            assert_int_equal(nibble_eval(c, ids, n, true, err, sizeof err), 0);
            for (int i = 0; i < n; i++)
                memcpy(got + (size_t)i * V, nibble_logits(c, i), V * sizeof(float));
        } else {
            for (int i = 0; i < n; i++) {
                assert_int_equal(nibble_eval(c, &ids[i], 1, false, err, sizeof err), 0);
                memcpy(got + (size_t)i * V, nibble_logits(c, -1), V * sizeof(float));
            }
        }
        nibble_context_destroy(c);
        for (int k = 0; k < 2; k++) {
            double top1, mean, max;
            nb_test_logits_compare(got, ref[k], (size_t)n, V, &top1, &mean, &max);
            bool ok = top1 >= s_top1 && mean <= s_mean;
            printf("# types/%-5s %-7s disable=%-29s%s%s vs %-6s top1 %.3f mean %.5f max %.3f "
                   "(llama.cpp cpu-vulkan: %.3f / %.5f / %.3f)%s\n",
                   r->file, mode ? "decode" : "prefill", r->disable, r->tune ? " tune=gpu" : "",
                   r->int8 ? " int8" : "", k ? "vulkan" : "cpu", top1, mean, max, s_top1, s_mean, s_max,
                   ok ? "" : "  <-- outside");
            bad += !ok;
        }
    }
    free(got);
    free(ref[0]);
    free(ref[1]);
    nibble_model_free(m);
    nb_test_check_validation();
    assert_int_equal(bad, 0);
}

int main(void)
{
    static char names[N_RUNS][96];
    struct CMUnitTest tests[N_RUNS + 1];
    tests[0] = (struct CMUnitTest)cmocka_unit_test(test_files);
    for (size_t i = 0; i < N_RUNS; i++) {
        snprintf(names[i], sizeof names[i], "%s%s%s%s%s", runs[i].file,
                 runs[i].disable[0] ? " disable=" : "", runs[i].disable,
                 runs[i].tune ? " tune=gpu" : "", runs[i].int8 ? " int8" : "");
        tests[i + 1] = (struct CMUnitTest){names[i], test_run, NULL, NULL, (void *)&runs[i]};
    }
    return _cmocka_run_group_tests("test_types_golden", tests, N_RUNS + 1, NULL, NULL);
}

/* test_forward: the GPU forward pass end to end.
 *
 * - Golden logits: every model of ../shared/golden (the quantized ones are in tests/data) in
 *   prefill and decode mode, with the fast paths (fused q|k|v and gate|up products among them),
 *   the Q4_0 ones also with NIBBLE_DISABLE=fp16,subgroup,int8,texel,fuse,halfcvt and with the GPU
 *   kernel shapes (NIBBLE_TUNE=gpu), at least as close to each llama.cpp file as llama.cpp's
 *   two backends are to each other; the quantized dense ones and the MoE one also with the int8
 *   decode products (NIBBLE_INT8=1).
 * - Layer by layer: the residual stream after every layer against the CPU reference.
 * - Per-layer embeddings read from the mapped file by the host (the default) against the
 *   device table (NIBBLE_PLE=device, also in the golden and layer checks).
 * - A 4096-token context crossing the sliding window many times against the CPU reference,
 *   with the device's kernel shapes and with the GPU ones.
 * - A prompt longer than the context, and a model larger than the device, give clear errors.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forward.h"
#include "nibble.h"
#include "ref.h"
#include "testutil.h"

/* The golden models; the tolerance is the spread of llama.cpp's own two backends (CPU and
 * Vulkan files), computed from the files themselves (the README's table rounds it). */
static const char *golden[] = {"dense", "dense-f32", "dense-q8", "moe", "moe-f32", "ple", "ple-f32"};



static int read_ids(const char *path, int32_t *ids, int max)
{
    FILE *f = fopen(path, "r");
    int n = 0;
    if (!f) return 0;
    while (n < max && fscanf(f, "%d", &ids[n]) == 1)
        n++;
    fclose(f);
    return n;
}

static char path_buf[3][2048];

/* Models kept for later tests (loading compiles a model's pipelines, most of what a golden run
 * costs on lavapipe): the dense model with the device's and with a GPU's kernel shapes, used by
 * test_errors, test_golden and test_long_context; freed by main. */
static struct kept {
    char key[2400]; /* path, NIBBLE_DISABLE, tune, NIBBLE_PLE, NIBBLE_INT8 */
    struct nibble_model *m;
} kept[2];

static void model_key(char *key, size_t n, const char *path, const char *disable, const char *tune)
{
    const char *d = disable ? disable : getenv("NIBBLE_DISABLE"), *ple = getenv("NIBBLE_PLE");
    const char *i8 = getenv("NIBBLE_INT8");
    snprintf(key, n, "%s|%s|%s|%s|%s", path, d ? d : "", tune ? tune : "", ple ? ple : "",
             i8 ? i8 : "");
}

/* A model loaded with validation on, NIBBLE_DISABLE `disable` (NULL: the environment's) and the
 * kernels shaped for the device or (tune "gpu") for a GPU; fails the test when it does not load.
 * keep: the model stays loaded for later calls with the same arguments and environment (give
 * it back with release_model all the same). */
static struct nibble_model *load_model_kept(const char *path, const char *disable,
                                            const char *tune, bool keep)
{
    char key[2400];
    model_key(key, sizeof key, path, disable, tune);
    struct kept *slot = NULL;
    for (size_t i = 0; keep && i < sizeof kept / sizeof kept[0]; i++) {
        if (kept[i].m && !strcmp(kept[i].key, key)) return kept[i].m;
        if (!kept[i].m && !slot) slot = &kept[i];
    }
    struct nibble_model_params mp = nibble_model_default_params();
    mp.validation = true;
    mp.disable = disable;
    char err[512];
    if (tune) setenv("NIBBLE_TUNE", tune, 1);
    struct nibble_model *m = nibble_model_load(path, &mp, err, sizeof err);
    unsetenv("NIBBLE_TUNE");
    if (!m) fail_msg("%s: %s", path, err);
    if (slot) {
        snprintf(slot->key, sizeof slot->key, "%s", key);
        slot->m = m;
    }
    return m;
}

static struct nibble_model *load_model(const char *path, const char *disable, const char *tune)
{
    return load_model_kept(path, disable, tune, false);
}

/* Frees a model unless it is kept. */
static void release_model(struct nibble_model *m)
{
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++)
        if (kept[i].m == m) return;
    nibble_model_free(m);
}

static void free_kept(void)
{
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++) {
        nibble_model_free(kept[i].m);
        kept[i].m = NULL;
    }
}

static const char *file3(int slot, const char *name, const char *ext)
{
    char n[256];
    snprintf(n, sizeof n, "%s%s", name, ext);
    const char *p = nb_test_file(n);
    if (!p) return NULL;
    snprintf(path_buf[slot], sizeof path_buf[slot], "%s", p);
    return path_buf[slot];
}

/* One golden model in both modes under one NIBBLE_DISABLE setting, with the kernels shaped for
 * the device or (tune "gpu") for a GPU whatever the device. Returns the number of comparisons
 * outside the tolerance (0 also when the files are absent). */
static int check_golden(const char *name, const char *disable, const char *tune, int *ran)
{
    const char *model = file3(0, name, ".gguf");
    if (!model) return 0;
    char ids_name[256];
    snprintf(ids_name, sizeof ids_name, "%s.ids", name);
    int32_t ids[64];
    int n = read_ids(nb_test_file(ids_name), ids, 64);
    assert_int_equal(n, 64);

    char err[512];
    bool keep = !strcmp(name, "dense") && !*disable && !getenv("NIBBLE_INT8");
    struct nibble_model *m = load_model_kept(model, disable, tune, keep);
    size_t V = (size_t)nibble_n_vocab(m);
    const char *refs[2] = {".llamacpp-cpu.f32", ".llamacpp-vulkan.f32"};
    float *ref[2];
    for (int r = 0; r < 2; r++) {
        size_t sz = 0;
        ref[r] = nb_test_read(file3(1, name, refs[r]), &sz);
        assert_non_null(ref[r]);
        assert_int_equal(sz, 64 * V * sizeof(float));
    }
    double s_top1, s_mean, s_max;
    nb_test_logits_compare(ref[0], ref[1], 64, V, &s_top1, &s_mean, &s_max);
    float *got = malloc(64 * V * sizeof(float));
    int bad = 0;
    for (int mode = 0; mode < 2; mode++) {
        struct nibble_context_params cp = {.n_ctx = 64, .n_batch = mode ? 1 : 64};
        struct nibble_context *c = nibble_context_create(m, &cp, err, sizeof err);
        if (!c) fail_msg("%s", err);
        if (mode == 0) {
            assert_int_equal(nibble_eval(c, ids, n, true, err, sizeof err), 0);
            for (int i = 0; i < n; i++)
                memcpy(got + i * V, nibble_logits(c, i), V * sizeof(float));
        } else {
            for (int i = 0; i < n; i++) {
                assert_int_equal(nibble_eval(c, &ids[i], 1, false, err, sizeof err), 0);
                memcpy(got + i * V, nibble_logits(c, -1), V * sizeof(float));
            }
        }
        nibble_context_destroy(c);
        for (int r = 0; r < 2; r++) {
            double top1, mean, max;
            nb_test_logits_compare(got, ref[r], 64, V, &top1, &mean, &max);
            const char *ple = getenv("NIBBLE_PLE"), *i8 = getenv("NIBBLE_INT8");
            bool ok = top1 >= s_top1 && mean <= s_mean;
            printf("# %-9s %-7s disable=%-24s%s%s%s vs %-6s top1 %.3f mean %.4f max %.3f "
                   "(llama.cpp cpu-vulkan: %.3f / %.4f / %.3f)%s\n",
                   name, mode ? "decode" : "prefill", disable, tune ? " tune=gpu" : "",
                   ple ? " ple=device" : "", i8 ? " int8" : "", r ? "vulkan" : "cpu", top1, mean,
                   max, s_top1, s_mean, s_max, ok ? "" : "  <-- outside");
            bad += !ok;
        }
    }
    free(ref[0]);
    free(ref[1]);
    free(got);
    release_model(m);
    nb_test_check_validation();
    (*ran)++;
    return bad;
}

static void test_golden(void **state)
{
    (void)state;
    int ran = 0, bad = 0;
    /* NIBBLE_TEST_GOLDEN=dense,moe: only these models, in the device's own configuration (the
     * arm64 stage under an emulator, tools/arm64.sh) */
    const char *only = getenv("NIBBLE_TEST_GOLDEN");
    for (size_t i = 0; i < sizeof golden / sizeof golden[0]; i++) {
        if (only) {
            size_t n = strlen(golden[i]);
            const char *at = only;
            while ((at = strstr(at, golden[i])) && ((at > only && at[-1] != ',') ||
                                                    (at[n] && at[n] != ',')))
                at += n;
            if (at) bad += check_golden(golden[i], "", NULL, &ran);
            continue;
        }
        /* the Q4_0 models of each architecture; their f32 and Q8_0 copies differ only in the
         * weight products, which test_op_matmul checks for every type in every configuration */
        bool q4 = !strcmp(golden[i], "dense") || !strcmp(golden[i], "moe") ||
                  !strcmp(golden[i], "ple");
        bad += check_golden(golden[i], "", NULL, &ran);
        /* the forced fallbacks */
        if (q4) bad += check_golden(golden[i], "fp16,subgroup,int8,texel,fuse,halfcvt", NULL, &ran);
        /* the GPU kernel shapes (subgroup matvec, tiled prefill matmul, MoE grouped by expert,
         * wide attention splits) also on a CPU device such as lavapipe */
        if (q4) bad += check_golden(golden[i], "", "gpu", &ran);
        /* the per-layer embeddings on the device too (read by an embed dispatch), where by
         * default the host reads their rows from the mapped file */
        if (!strncmp(golden[i], "ple", 3)) {
            setenv("NIBBLE_PLE", "device", 1);
            bad += check_golden(golden[i], "", NULL, &ran);
            if (q4)
                bad += check_golden(golden[i], "fp16,subgroup,int8,texel,fuse,halfcvt", NULL, &ran);
            unsetenv("NIBBLE_PLE");
        }
        /* the int8 decode products (engine/op_int8.h; lavapipe exposes the integer dot product
         * without accelerating it, NIBBLE_INT8=1 takes it all the same) in a GPU's shapes; the
         * prefill batch stays f32; the MoE model's experts too (nb_op_int8_matvec_id) */
        if (!strcmp(golden[i], "dense") || !strcmp(golden[i], "dense-q8") ||
            !strcmp(golden[i], "moe")) {
            setenv("NIBBLE_INT8", "1", 1);
            bad += check_golden(golden[i], "", "gpu", &ran);
            unsetenv("NIBBLE_INT8");
        }
    }
    if (!ran) skip();
    assert_int_equal(bad, 0);
}

/* ---- layer by layer against the CPU reference ------------------------------------------------- */

struct capture {
    float *h; /* [n_layer + 2][T][H]: slot 0 the embedding, l+1 after layer l */
    int T, H;
};

static void on_layer(void *user, int layer, int pos, const float *h)
{
    struct capture *c = user;
    if (layer + 1 >= 0 && pos < c->T)
        memcpy(c->h + ((size_t)(layer + 1) * c->T + pos) * c->H, h, c->H * sizeof(float));
}

static void check_layers(const char *name)
{
    const char *model = file3(0, name, ".gguf");
    if (!model) return;
    char ids_name[256], err[512];
    snprintf(ids_name, sizeof ids_name, "%s.ids", name);
    int32_t ids[64];
    int T = read_ids(nb_test_file(ids_name), ids, 64);
    struct vkx_opts o = {.device_index = -1, .validation = true};
    struct nb_gpu_model *g = calloc(1, sizeof *g);
    if (nb_gpu_model_load(g, model, &o, err, sizeof err) != 0) fail_msg("%s", err);
    const struct nb_config *cf = &g->m.cfg;
    /* the per-layer embeddings stay in the mapped file unless NIBBLE_PLE=device */
    bool ple_device = getenv("NIBBLE_PLE") && !strcmp(getenv("NIBBLE_PLE"), "device");
    assert_true(!g->ple_host == (!cf->n_embd_ple || ple_device));
    assert_true(!g->per_layer_token_embd.rows == !(cf->n_embd_ple && ple_device));
    int H = (int)cf->n_embd, L = (int)cf->n_layer;

    struct nb_fwd f;
    if (nb_fwd_create(&f, g, (uint32_t)T, (uint32_t)T, true, false, err, sizeof err) != 0)
        fail_msg("%s", err);
    nb_fwd_run(&f, ids, (uint32_t)T, 0, false);
    const float *gpu = f.cap.map;

    struct capture cap = {calloc((size_t)(L + 2) * T * H, sizeof(float)), T, H};
    struct nb_ref *r = nb_ref_create(&g->m, T, err, sizeof err);
    assert_non_null(r);
    struct nb_ref_hooks hk = {.user = &cap, .on_layer = on_layer};
    nb_ref_set_hooks(r, &hk);
    assert_int_equal(nb_ref_eval(r, ids, T, 0, NULL, true, err, sizeof err), 0);

    for (int l = 0; l <= L; l++) {
        /* relative error of the residual stream, over all tokens */
        double num = 0, den = 0, mx = 0;
        for (int t = 0; t < T; t++)
            for (int i = 0; i < H; i++) {
                double a = gpu[((size_t)l * f.n_batch + t) * H + i];
                double b = cap.h[((size_t)l * T + t) * H + i];
                num += (a - b) * (a - b);
                den += b * b;
                if (fabs(a - b) > mx) mx = fabs(a - b);
            }
        double rel = sqrt(num / (den > 0 ? den : 1));
        printf("# %s%s layer %2d: relative rms error %.2e, max abs %.3e\n", name,
               ple_device ? " (ple=device)" : "", l - 1, rel, mx);
        assert_true(rel < 2e-2);
    }
    nb_ref_destroy(r);
    free(cap.h);
    nb_fwd_destroy(&f);
    nb_gpu_model_free(g);
    free(g);
    nb_test_check_validation();
}

static void test_layers(void **state)
{
    (void)state;
    const char *names[] = {"dense", "dense-q8", "moe", "ple", "dense-f32", "moe-f32", "ple-f32"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        check_layers(names[i]);
    setenv("NIBBLE_PLE", "device", 1);
    check_layers("ple");
    check_layers("ple-f32");
    unsetenv("NIBBLE_PLE");
}

/* ---- per-layer embeddings in host memory against the device table ---------------------------- */

/* Logits [48][V] of a PLE model: a prefill of 32 tokens in chunks of 16 (rows of several
 * batches), then 16 decode steps (the recorded step replayed); ple "device" or NULL (host). */
static float *ple_logits(const char *path, const int32_t *ids, const char *ple, size_t *V,
                         uint64_t *dev_bytes)
{
    char err[512];
    if (ple) setenv("NIBBLE_PLE", ple, 1);
    struct nibble_model *m = load_model(path, NULL, NULL);
    unsetenv("NIBBLE_PLE");
    *V = (size_t)nibble_n_vocab(m);
    struct nibble_context_params cp = {.n_ctx = 64, .n_batch = 16};
    struct nibble_context *c = nibble_context_create(m, &cp, err, sizeof err);
    if (!c) fail_msg("%s", err);
    float *got = malloc(48 * *V * sizeof(float));
    for (int i = 0; i < 32; i += 16) {
        assert_int_equal(nibble_eval(c, ids + i, 16, true, err, sizeof err), 0);
        for (int r = 0; r < 16; r++)
            memcpy(got + (i + r) * *V, nibble_logits(c, r), *V * sizeof(float));
    }
    for (int i = 32; i < 48; i++) {
        assert_int_equal(nibble_eval(c, &ids[i], 1, false, err, sizeof err), 0);
        memcpy(got + i * *V, nibble_logits(c, -1), *V * sizeof(float));
    }
    nibble_device_bytes(m, dev_bytes);
    nibble_context_destroy(c);
    nibble_model_free(m);
    return got;
}

static void test_ple_host(void **state)
{
    (void)state;
    const char *names[] = {"ple", "ple-f32"};
    int ran = 0;
    for (size_t k = 0; k < 2; k++) {
        const char *model = file3(0, names[k], ".gguf");
        if (!model) continue;
        char path[2048], ids_name[256], err[512];
        snprintf(path, sizeof path, "%s", model);
        snprintf(ids_name, sizeof ids_name, "%s.ids", names[k]);
        int32_t ids[64];
        assert_int_equal(read_ids(nb_test_file(ids_name), ids, 64), 64);
        size_t V, V2;
        uint64_t dev_host, dev_device;
        float *host = ple_logits(path, ids, NULL, &V, &dev_host);
        float *device = ple_logits(path, ids, "device", &V2, &dev_device);
        assert_int_equal(V, V2);
        double top1, mean, max;
        nb_test_logits_compare(host, device, 48, V, &top1, &mean, &max);
        /* the same rows, dequantized by the host instead of the embed shader */
        struct nb_model rm;
        assert_int_equal(nb_model_load(&rm, path, err, sizeof err), 0);
        uint64_t table = rm.w.per_layer_token_embd->nbytes;
        nb_model_free(&rm);
        printf("# %s: host rows vs device table: top1 %.3f mean %.2e max %.2e; peak device "
               "memory %llu vs %llu bytes (table %llu)\n",
               names[k], top1, mean, max, (unsigned long long)dev_host,
               (unsigned long long)dev_device, (unsigned long long)table);
        assert_true(top1 >= 1.0);
        assert_true(max < 1e-3);
        assert_true(dev_host + table <= dev_device);
        free(host);
        free(device);
        ran++;
    }
    /* a value that is neither host nor device is one clear error */
    const char *model = file3(0, "ple", ".gguf");
    if (model) {
        char path[2048], err[512];
        snprintf(path, sizeof path, "%s", model);
        setenv("NIBBLE_PLE", "gpu", 1);
        struct nibble_model *m = nibble_model_load(path, NULL, err, sizeof err);
        unsetenv("NIBBLE_PLE");
        assert_null(m);
        printf("# %s\n", err);
        assert_non_null(strstr(err, "NIBBLE_PLE=gpu: expected host or device"));
    }
    nb_test_check_validation();
    if (!ran) skip();
}

/* ---- a long context: 4096 tokens crossing the sliding window (16) many times ------------------ */

/* The GPU logits of positions N-TAIL-1 .. N-1 ([TAIL+1][V]) after a prefill of N-TAIL tokens in
 * chunks of 512 and TAIL decode steps, kernels shaped for the device or (tune "gpu") for a GPU. */
static float *long_context_gpu(const char *path, const int32_t *ids, int N, int TAIL,
                               const char *tune, size_t *V)
{
    char err[512];
    struct nibble_model *m = load_model_kept(path, NULL, tune, true);
    *V = (size_t)nibble_n_vocab(m);
    struct nibble_context_params cp = {.n_ctx = (uint32_t)N, .n_batch = 512};
    struct nibble_context *c = nibble_context_create(m, &cp, err, sizeof err);
    if (!c) fail_msg("%s", err);
    assert_int_equal(nibble_eval(c, ids, N - TAIL, false, err, sizeof err), 0);
    float *got = malloc((TAIL + 1) * *V * sizeof(float));
    memcpy(got, nibble_logits(c, -1), *V * sizeof(float));
    for (int i = 0; i < TAIL; i++) {
        assert_int_equal(nibble_eval(c, &ids[N - TAIL + i], 1, false, err, sizeof err), 0);
        memcpy(got + (i + 1) * *V, nibble_logits(c, -1), *V * sizeof(float));
    }
    /* the context is full: one more token is refused with a clear message */
    int32_t one = 5;
    assert_int_equal(nibble_eval(c, &one, 1, false, err, sizeof err), -1);
    printf("# full context: %s\n", err);
    assert_non_null(strstr(err, "context"));
    nibble_context_destroy(c);
    release_model(m);
    nb_test_check_validation();
    return got;
}

static void test_long_context(void **state)
{
    (void)state;
    const char *model = nb_test_file("dense.gguf");
    if (!model) skip();
    char path[2048], err[512];
    snprintf(path, sizeof path, "%s", model);
    enum { N = 4096, TAIL = 8 };
    int32_t *ids = malloc(N * sizeof *ids);
    nb_test_seed(7);
    ids[0] = 2;
    for (int i = 1; i < N; i++)
        ids[i] = 3 + (int32_t)(nb_test_randu() % 1000);

    /* the CPU reference: logits of position N-TAIL-1 .. N-1 */
    struct nb_model rm;
    assert_int_equal(nb_model_load(&rm, path, err, sizeof err), 0);
    size_t V = rm.cfg.n_vocab;
    struct nb_ref *r = nb_ref_create(&rm, N, err, sizeof err);
    assert_non_null(r);
    float *ref = malloc((TAIL + 1) * V * sizeof(float));
    assert_int_equal(nb_ref_eval(r, ids, N - TAIL, 0, ref, true, err, sizeof err), 0);
    for (int i = 0; i < TAIL; i++)
        assert_int_equal(nb_ref_eval(r, &ids[N - TAIL + i], 1, N - TAIL + i, ref + (i + 1) * V,
                                     true, err, sizeof err),
                         0);
    nb_ref_destroy(r);
    nb_model_free(&rm);

    /* the device's own kernel shapes, then the GPU shapes (tiled prefill, wide attention splits) */
    const char *tunes[2] = {NULL, "gpu"};
    for (int k = 0; k < 2; k++) {
        size_t gv = 0;
        float *got = long_context_gpu(path, ids, N, TAIL, tunes[k], &gv);
        assert_int_equal(gv, V);
        double top1, mean, max;
        nb_test_logits_compare(got, ref, TAIL + 1, V, &top1, &mean, &max);
        printf("# 4096-token context%s vs CPU reference: top1 %.3f mean %.4f max %.3f\n",
               tunes[k] ? " (tune=gpu)" : "", top1, mean, max);
        assert_true(top1 >= 1.0);
        assert_true(mean < 0.05);
        free(got);
    }
    free(ref);
    free(ids);
}

/* ---- errors ------------------------------------------------------------------------------------ */

static void test_errors(void **state)
{
    (void)state;
    const char *model = nb_test_file("dense.gguf");
    if (!model) skip();
    char path[2048], err[512];
    snprintf(path, sizeof path, "%s", model);
    struct nibble_model *m = load_model_kept(path, NULL, NULL, true);
    struct nibble_context_params cp = {.n_ctx = 32, .n_batch = 16};
    struct nibble_context *c = nibble_context_create(m, &cp, err, sizeof err);
    assert_non_null(c);
    int32_t ids[40];
    for (int i = 0; i < 40; i++)
        ids[i] = 2 + i;
    assert_int_equal(nibble_eval(c, ids, 40, false, err, sizeof err), -1);
    printf("# prompt too long: %s\n", err);
    assert_non_null(strstr(err, "exceed the context of 32"));
    assert_int_equal(nibble_n_past(c), 0);
    ids[0] = 1 << 20;
    assert_int_equal(nibble_eval(c, ids, 1, false, err, sizeof err), -1);
    assert_non_null(strstr(err, "vocabulary"));
    nibble_context_destroy(c);
    release_model(m);

    /* a device with less memory than the model needs (emulated) */
    struct nibble_model_params mp = nibble_model_default_params();
    mp.validation = true;
    setenv("NIBBLE_DEVICE_MEMORY_MB", "1", 1);
    m = nibble_model_load(path, &mp, err, sizeof err);
    unsetenv("NIBBLE_DEVICE_MEMORY_MB");
    assert_null(m);
    printf("# too large: %s\n", err);
    assert_non_null(strstr(err, "needs"));
    assert_non_null(strstr(err, "MiB"));
    nb_test_check_validation();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_golden),
        cmocka_unit_test(test_layers),
        cmocka_unit_test(test_ple_host),
        cmocka_unit_test(test_long_context),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    free_kept();
    return rc;
}

/* test_api: the public API (engine/nibble.h) as an app meets it, on the default model: a NULL
 * `err` everywhere, files that are not regular (a FIFO as the model and as the pipeline cache:
 * refused or skipped, never waited on; alarm() fails a hang), NIBBLE_DEVICE_MEMORY_MB checked,
 * a context above the trained one refused with the real limit, nibble_logits only for rows that
 * exist, nibble_token_to_piece's snprintf contract, the sampler's checks, its full-vocabulary
 * path (top_k 0: no 64-candidate cap; top_p keeps the right nucleus), the 64-bit seed, and
 * device failures injected into nibble_model_load, nibble_context_create, nibble_eval and
 * nibble_sample with the app going on. */
#include "testutil.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nibble.h"

#define MODEL NB_TEST_DATA "/../../models/default.gguf"

static struct nibble_model *model;

static int setup(void **state)
{
    (void)state;
    char err[512];
    struct nibble_model_params mp = nibble_model_default_params();
    mp.validation = true;
    model = nibble_model_load(MODEL, &mp, err, sizeof err);
    if (!model) printf("# no model: %s\n", err);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    nibble_model_free(model);
    nb_test_check_validation();
    return 0;
}

#define NEED_MODEL()                                                                               \
    do {                                                                                           \
        (void)state;                                                                               \
        if (!model) skip();                                                                        \
    } while (0)

static struct nibble_context *ctx(uint32_t n_ctx)
{
    struct nibble_context_params cp = nibble_context_default_params();
    cp.n_ctx = n_ctx;
    char err[512];
    struct nibble_context *c = nibble_context_create(model, &cp, err, sizeof err);
    if (!c) fail_msg("%s", err);
    return c;
}

/* The prompt "And God said" evaluated in c (logits of the last row only). */
static void prompt(struct nibble_context *c)
{
    int32_t ids[16];
    int n = nibble_tokenize(model, "And God said", ids, 16, true);
    assert_true(n > 1 && n <= 16);
    assert_int_equal(nibble_eval(c, ids, n, false, NULL, 0), 0);
}

/* A hang in a FIFO fails the test instead of stalling the suite. */
static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "test_api: blocked (alarm)\n";
    if (write(2, msg, sizeof msg - 1) < 0) _exit(3);
    _exit(3);
}

static void test_null_err(void **state)
{
    (void)state;
    assert_null(nibble_model_load("/nonexistent.gguf", NULL, NULL, 0));
    assert_null(nibble_model_load("/nonexistent.gguf", NULL, NULL, 256)); /* errlen ignored */
    assert_null(nibble_model_load(NULL, NULL, NULL, 0));
    char err[256] = "";
    assert_null(nibble_model_load("/nonexistent.gguf", NULL, err, sizeof err));
    assert_non_null(strstr(err, "/nonexistent.gguf"));
    if (!model) skip();
    struct nibble_context_params cp = {.n_ctx = 1u << 30};
    assert_null(nibble_context_create(model, &cp, NULL, 0));
    struct nibble_context *c = ctx(16);
    int32_t bad = -5;
    assert_int_equal(nibble_eval(c, &bad, 1, false, NULL, 0), -1);
    assert_int_equal(nibble_eval(c, NULL, 0, false, NULL, 0), -1);
    nibble_context_destroy(c);
}

static void test_fifo_model(void **state)
{
    (void)state;
    const char *path = NB_TEST_TMP "/api-fifo.gguf";
    unlink(path);
    assert_int_equal(mkfifo(path, 0600), 0);
    signal(SIGALRM, on_alarm);
    alarm(60);
    char err[256] = "";
    assert_null(nibble_model_load(path, NULL, err, sizeof err));
    alarm(0);
    printf("# %s\n", err);
    assert_non_null(strstr(err, "FIFO"));
    unlink(path);
}

/* A FIFO where the pipeline cache lives: the cache is skipped (not read, not waited on) and the
 * file replaced when the cache is written back. */
static void test_fifo_pipeline_cache(void **state)
{
    (void)state;
    const char *dir = NB_TEST_TMP "/api-pcache";
    mkdir(dir, 0755);
    struct vkx_opts o = {.device_index = -1, .pipeline_cache_dir = dir};
    struct vkx_ctx vk;
    char err[512];
    if (vkx_create(&vk, &o, err, sizeof err) != 0) skip();
    char path[1100];
    snprintf(path, sizeof path, "%s", vk.pipeline_cache_path);
    vkx_destroy(&vk);
    assert_true(path[0] != 0);
    unlink(path);
    assert_int_equal(mkfifo(path, 0600), 0);
    signal(SIGALRM, on_alarm);
    alarm(60);
    assert_int_equal(vkx_create(&vk, &o, err, sizeof err), 0);
    alarm(0);
    assert_false(vk.pcache_loaded);
    vkx_destroy(&vk);
    unlink(path);
}

static void test_memory_env(void **state)
{
    (void)state;
    const char *bad[] = {"abc", "12x", "-5", "0", "nan", "", " 5", "1e13", "0x10"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv("NIBBLE_DEVICE_MEMORY_MB", bad[i], 1);
        char err[256] = "";
        assert_null(nibble_model_load(MODEL, NULL, err, sizeof err));
        if (!strstr(err, "NIBBLE_DEVICE_MEMORY_MB")) fail_msg("'%s': %s", bad[i], err);
    }
    unsetenv("NIBBLE_DEVICE_MEMORY_MB");
    /* NIBBLE_DEVICE: digits only (strtol took "1x" as 1 and " 0" as 0) */
    const char *dev[] = {"1x", "-1", " 0", "+0", "0x0", "99999999999"};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++) {
        setenv("NIBBLE_DEVICE", dev[i], 1);
        char err[256] = "";
        assert_null(nibble_model_load(MODEL, NULL, err, sizeof err));
        if (!strstr(err, "not a device index")) fail_msg("NIBBLE_DEVICE='%s': %s", dev[i], err);
    }
    unsetenv("NIBBLE_DEVICE");
}

static void test_context_limits(void **state)
{
    NEED_MODEL();
    uint32_t train = (uint32_t)nibble_n_ctx_train(model);
    assert_true(train > 0);
    struct nibble_context_params cp = {.n_ctx = train + 1};
    char err[256] = "", want[64];
    assert_null(nibble_context_create(model, &cp, err, sizeof err));
    printf("# %s\n", err);
    snprintf(want, sizeof want, "use at most %u", train);
    assert_non_null(strstr(err, want));
    struct nibble_context *c = ctx(0);
    assert_int_equal(nibble_n_ctx(c), train < 4096 ? train : 4096);
    nibble_context_destroy(c);
}

static void test_logits_rows(void **state)
{
    NEED_MODEL();
    struct nibble_context *c = ctx(64);
    assert_null(nibble_logits(c, -1));
    int32_t ids[4] = {2, 10, 11, 12};
    assert_int_equal(nibble_eval(c, ids, 4, false, NULL, 0), 0);
    assert_non_null(nibble_logits(c, -1));
    for (int i = -3; i < 5; i++)
        if (i != -1) assert_null(nibble_logits(c, i)); /* only the last row was computed */
    nibble_reset(c);
    assert_int_equal(nibble_eval(c, ids, 4, true, NULL, 0), 0);
    for (int i = 0; i < 4; i++) assert_non_null(nibble_logits(c, i));
    assert_ptr_equal(nibble_logits(c, -1), nibble_logits(c, 3));
    assert_null(nibble_logits(c, 4));
    assert_null(nibble_logits(c, -2));
    nibble_reset(c);
    assert_null(nibble_logits(c, -1));
    assert_null(nibble_logits(c, 0));
    nibble_context_destroy(c);
}

static void test_token_to_piece(void **state)
{
    NEED_MODEL();
    /* a token of 3+ bytes */
    int32_t id = -1;
    char full[64];
    for (int32_t t = 0; t < nibble_n_vocab(model) && id < 0; t++) {
        int n = nibble_token_to_piece(model, t, full, sizeof full);
        if (n >= 3 && n < (int)sizeof full) id = t;
    }
    assert_true(id >= 0);
    int len = (int)strlen(full);
    assert_int_equal(nibble_token_to_piece(model, id, NULL, 0), len);
    char buf[4] = "xyz";
    assert_int_equal(nibble_token_to_piece(model, id, buf, 1), len);
    assert_string_equal(buf, "");
    assert_int_equal(nibble_token_to_piece(model, id, buf, 3), len);
    assert_int_equal(buf[2], 0);
    assert_memory_equal(buf, full, 2);
    memcpy(buf, "xyz", 4);
    assert_int_equal(nibble_token_to_piece(model, nibble_n_vocab(model), buf, sizeof buf), -1);
    assert_string_equal(buf, "");
    assert_int_equal(nibble_token_to_piece(model, 0, NULL, 5), -1);
}

static void test_sampler_checks(void **state)
{
    NEED_MODEL();
    struct nibble_sampler d = nibble_sampler_default_params();
    assert_int_equal(nibble_sampler_check(&d, NULL, 0), 0);
    assert_true(d.temp > 0 && d.top_k == 40 && d.top_p > 0 && d.top_p < 1);
    struct nibble_context *c = ctx(32);
    assert_int_equal(nibble_sample(c, &d), -1); /* nothing evaluated */
    prompt(c);
    const struct nibble_sampler bad[] = {
        {NAN, 40, 0.9f, 1},  {-0.5f, 40, 0.9f, 1}, {INFINITY, 40, 0.9f, 1}, {2e6f, 40, 0.9f, 1},
        {0.8f, -1, 0.9f, 1}, {0.8f, 40, NAN, 1},   {0.8f, 40, 1.5f, 1},     {0.8f, 40, -0.1f, 1},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[128] = "";
        assert_int_equal(nibble_sampler_check(&bad[i], err, sizeof err), -1);
        assert_true(err[0] != 0);
        assert_int_equal(nibble_sample(c, &bad[i]), -1);
    }
    assert_true(nibble_sample(c, &d) >= 0);
    nibble_context_destroy(c);
}

/* rank of each id in row (0: the largest logit; ties to the lower id) */
static uint32_t rank_of(const float *row, uint32_t V, uint32_t id)
{
    uint32_t r = 0;
    for (uint32_t i = 0; i < V; i++)
        r += row[i] > row[id] || (row[i] == row[id] && i < id);
    return r;
}

/* top_k 0 is the whole vocabulary (a hot temperature reaches far below rank 64), top_k 100 stops
 * at rank 100, the device's top_k 64 at rank 64; top_p keeps exactly the nucleus, drawn in
 * proportion. */
static void test_sample_full_vocab(void **state)
{
    NEED_MODEL();
    struct nibble_context *c = ctx(32);
    prompt(c);
    uint32_t V = (uint32_t)nibble_n_vocab(model);
    float *row = malloc(V * sizeof *row);
    assert_non_null(row);
    memcpy(row, nibble_logits(c, -1), V * sizeof *row);
    const struct { int k; uint32_t below; bool reach; } cases[] = {
        {0, V, true}, {100, 100, true}, {64, 64, true}, {8, 8, false}};
    for (size_t q = 0; q < sizeof cases / sizeof cases[0]; q++) {
        struct nibble_sampler s = {50.0f, cases[q].k, 1.0f, 7};
        uint32_t deepest = 0;
        for (int i = 0; i < 400; i++) {
            int32_t t = nibble_sample(c, &s);
            assert_true(t >= 0 && (uint32_t)t < V);
            uint32_t r = rank_of(row, V, (uint32_t)t);
            if (r > deepest) deepest = r;
        }
        printf("# top_k %d: deepest rank drawn %u\n", cases[q].k, deepest);
        assert_true(deepest < cases[q].below);
        if (cases[q].k == 0) assert_true(deepest >= 64);
        if (cases[q].k == 100) assert_true(deepest >= 64);
    }
    /* top_p 0.6 at temperature 3 over the whole vocabulary: the nucleus in rank order */
    double *p = malloc(V * sizeof *p), mx = -INFINITY, sum = 0;
    uint32_t *order = malloc(V * sizeof *order);
    uint32_t *hits = calloc(V, sizeof *hits);
    assert_true(p && order && hits);
    for (uint32_t i = 0; i < V; i++) mx = row[i] > mx ? row[i] : mx;
    for (uint32_t i = 0; i < V; i++) sum += (p[i] = exp((row[i] - mx) / 3.0));
    for (uint32_t i = 0; i < V; i++) order[rank_of(row, V, i)] = i;
    uint32_t m = 0;
    double cum = 0;
    while (m < V && cum < 0.6 * sum) cum += p[order[m++]];
    const int draws = 3000;
    struct nibble_sampler s = {3.0f, 0, 0.6f, 99};
    for (int i = 0; i < draws; i++) hits[nibble_sample(c, &s)]++;
    for (uint32_t r = 0; r < V; r++) {
        uint32_t id = order[r];
        if (r >= m) {
            if (hits[id]) fail_msg("rank %u (outside the nucleus of %u) drawn %u times", r, m,
                                   hits[id]);
            continue;
        }
        double want = draws * p[id] / cum, sd = sqrt(want) + 1;
        if (fabs(hits[id] - want) > 5 * sd)
            fail_msg("rank %u: %u draws, expected %.1f", r, hits[id], want);
    }
    printf("# top_p 0.6: nucleus of %u tokens\n", m);
    assert_true(m >= 8);
    free(p);
    free(order);
    free(hits);
    free(row);
    nibble_context_destroy(c);
}

/* The same seed repeats a run; seeds differing only above bit 31 do not. */
static void test_seed_64(void **state)
{
    NEED_MODEL();
    const uint64_t seeds[3] = {42, 42, 42 + (1ull << 32)};
    int32_t got[3][40];
    for (int r = 0; r < 3; r++) {
        struct nibble_context *c = ctx(32);
        prompt(c);
        struct nibble_sampler s = {5.0f, 0, 1.0f, seeds[r]};
        for (int i = 0; i < 40; i++) got[r][i] = nibble_sample(c, &s);
        nibble_context_destroy(c);
    }
    assert_memory_equal(got[0], got[1], sizeof got[0]);
    assert_memory_not_equal(got[0], got[2], sizeof got[0]);
    /* the device path too (top_k 64) */
    for (int r = 0; r < 3; r++) {
        struct nibble_context *c = ctx(32);
        prompt(c);
        struct nibble_sampler s = {5.0f, 64, 1.0f, seeds[r]};
        for (int i = 0; i < 40; i++) got[r][i] = nibble_sample(c, &s);
        nibble_context_destroy(c);
    }
    assert_memory_equal(got[0], got[1], sizeof got[0]);
    assert_memory_not_equal(got[0], got[2], sizeof got[0]);
}

/* A device loss or an out-of-memory at a submission inside nibble_eval / nibble_sample: -1 and a
 * message, the context unusable, and the app goes on with a new context. */
static void test_device_faults(void **state)
{
    NEED_MODEL();
    const VkResult faults[2] = {VK_ERROR_DEVICE_LOST, VK_ERROR_OUT_OF_DEVICE_MEMORY};
    const char *names[2] = {"VK_ERROR_DEVICE_LOST", "VK_ERROR_OUT_OF_DEVICE_MEMORY"};
    int32_t ids[3] = {2, 10, 11};
    struct nibble_sampler s = nibble_sampler_default_params();
    for (int f = 0; f < 2; f++) {
        for (uint32_t after = 0; after < 3; after++) { /* prefill, decode (recording), replay */
            struct nibble_context *c = ctx(32);
            char err[256] = "";
            vkx_cmd_inject_fault(faults[f], after);
            int rc = nibble_eval(c, ids, 3, false, err, sizeof err);
            for (int i = 0; rc == 0 && i < 2; i++)
                rc = nibble_eval(c, &ids[i], 1, false, err, sizeof err);
            assert_int_equal(rc, -1);
            printf("# %s\n", err);
            assert_non_null(strstr(err, names[f]));
            assert_null(nibble_logits(c, -1));
            assert_int_equal(nibble_sample(c, &s), -1);
            assert_int_equal(nibble_eval(c, ids, 1, false, err, sizeof err), -1);
            assert_non_null(strstr(err, "unusable"));
            nibble_context_destroy(c);
        }
        /* in nibble_sample (the device sampler's submission) */
        struct nibble_context *c = ctx(32);
        prompt(c);
        vkx_cmd_inject_fault(faults[f], 0);
        assert_int_equal(nibble_sample(c, &s), -1);
        char err[256] = "";
        assert_int_equal(nibble_eval(c, ids, 1, false, err, sizeof err), -1);
        assert_non_null(strstr(err, names[f]));
        nibble_context_destroy(c);
    }
    /* the app goes on */
    struct nibble_context *c = ctx(32);
    prompt(c);
    assert_true(nibble_sample(c, &s) >= 0);
    nibble_context_destroy(c);
}

/* The hooked Vulkan calls (vkx.h: vkx_inject_call_fault) made by fn(arg): how many, by name. */
struct calls {
    uint32_t n, total;
    char name[VKX_MAX_TRACE][48];
    uint32_t count[VKX_MAX_TRACE];
};
static void trace_calls(struct calls *t, void (*fn)(void *), void *arg)
{
    vkx_call_trace(true);
    fn(arg);
    vkx_call_trace(false);
    memset(t, 0, sizeof *t);
    const char *name;
    for (uint32_t c; t->n < VKX_MAX_TRACE && (c = vkx_call_trace_get(t->n, &name)) > 0; t->n++) {
        snprintf(t->name[t->n], sizeof t->name[t->n], "%s", name);
        t->count[t->n] = c;
        t->total += c;
    }
}

static const VkResult fault_r[2] = {VK_ERROR_OUT_OF_DEVICE_MEMORY, VK_ERROR_DEVICE_LOST};
static const char *fault_names[2] = {"VK_ERROR_OUT_OF_DEVICE_MEMORY", "VK_ERROR_DEVICE_LOST"};

static void make_context(void *arg)
{
    struct nibble_context *c = nibble_context_create(model, arg, NULL, 0);
    assert_non_null(c);
    nibble_context_destroy(c);
}

/* An out-of-memory or a device loss at each hooked call (buffers and their memory, command
 * buffers, fences, descriptor and query pools, recording, the submission clearing the KV cache)
 * of nibble_context_create, and at the recording in nibble_eval and nibble_sample: NULL or -1
 * with the VkResult named, never an abort, and the app goes on. A context may also go on
 * without what failed (a texel view: storage-buffer reads instead). */
static void test_create_faults(void **state)
{
    NEED_MODEL();
    int32_t ids[3] = {2, 10, 11};
    struct nibble_sampler s = nibble_sampler_default_params();
    struct nibble_context_params cp = nibble_context_default_params();
    cp.n_ctx = 32;
    struct calls t;
    trace_calls(&t, make_context, &cp);
    for (int f = 0; f < 2; f++) {
        uint32_t refused = 0;
        for (uint32_t k = 0; k < t.total; k++) { /* the k-th hooked call fails */
            char err[256] = "";
            vkx_inject_call_fault(NULL, fault_r[f], k);
            struct nibble_context *c = nibble_context_create(model, &cp, err, sizeof err);
            vkx_inject_call_fault(NULL, VK_SUCCESS, 0);
            if (c) { /* it went on without */
                nibble_context_destroy(c);
                continue;
            }
            if (!refused++) printf("# %s\n", err);
            assert_non_null(strstr(err, fault_names[f]));
        }
        printf("# %s at each of %u calls in nibble_context_create: NULL at %u\n",
               fault_names[f], t.total, refused);
        assert_true(refused > 2);
        for (uint32_t after = 0; after < 2; after++) { /* prefill recording, decode recording */
            struct nibble_context *c = ctx(32);
            char err[256] = "";
            vkx_inject_call_fault(NULL, fault_r[f], after);
            int rc = nibble_eval(c, ids, 3, false, err, sizeof err);
            for (int i = 0; rc == 0 && i < 2; i++)
                rc = nibble_eval(c, &ids[i], 1, false, err, sizeof err);
            vkx_inject_call_fault(NULL, VK_SUCCESS, 0);
            assert_int_equal(rc, -1);
            assert_non_null(strstr(err, fault_names[f]));
            assert_null(nibble_logits(c, -1));
            assert_int_equal(nibble_sample(c, &s), -1);
            nibble_context_destroy(c);
        }
        struct nibble_context *c = ctx(32); /* the sampler's recording */
        prompt(c);
        vkx_inject_call_fault(NULL, fault_r[f], 0);
        int32_t tok = nibble_sample(c, &s);
        vkx_inject_call_fault(NULL, VK_SUCCESS, 0);
        assert_int_equal(tok, -1);
        nibble_context_destroy(c);
    }
    struct nibble_context *c = ctx(32);
    prompt(c);
    assert_true(nibble_sample(c, &s) >= 0);
    nibble_context_destroy(c);
}

static void load_model(void *arg)
{
    struct nibble_model *m = nibble_model_load(MODEL, arg, NULL, 0);
    assert_non_null(m);
    nibble_model_free(m);
}

/* A prompt and a few tokens on model m. */
static void generate(struct nibble_model *m)
{
    struct nibble_context_params cp = nibble_context_default_params();
    cp.n_ctx = 32;
    struct nibble_context *c = nibble_context_create(m, &cp, NULL, 0);
    assert_non_null(c);
    int32_t ids[16];
    int n = nibble_tokenize(m, "And God said", ids, 16, true);
    assert_int_equal(nibble_eval(c, ids, n, false, NULL, 0), 0);
    struct nibble_sampler sp = nibble_sampler_default_params();
    for (int i = 0; i < 3; i++) {
        int32_t t = nibble_sample(c, &sp);
        assert_true(t >= 0);
        assert_int_equal(nibble_eval(c, &t, 1, false, NULL, 0), 0);
    }
    nibble_context_destroy(c);
}

/* nibble_model_load with each kind of hooked Vulkan call failing (instance, device, pools, the
 * pipeline cache, pipelines and their layouts, buffers, memory, mapping, texel views, and the
 * staging path's command buffers, fences, recording, submissions and waits: "uma" off makes
 * lavapipe upload through it), at its first and at its last call, out of memory and device
 * loss taking turns: NULL with the VkResult named, or a model that went on without (a plainer
 * pipeline, storage-buffer reads) and generates, never an abort; everything made is freed
 * (ASan) and another model loads and generates. */
static void test_load_faults(void **state)
{
    NEED_MODEL();
    const char *disable[2] = {NULL, "uma"};
    uint32_t kinds = 0, loads = 0, refused = 0;
    char seen[2 * VKX_MAX_TRACE][48];
    for (int d = 0; d < 2; d++) {
        struct nibble_model_params mp = nibble_model_default_params();
        mp.validation = true;
        mp.disable = disable[d];
        struct calls t;
        trace_calls(&t, load_model, &mp);
        for (uint32_t i = 0; i < t.n; i++) {
            bool dup = false;
            for (uint32_t j = 0; j < kinds && !dup; j++)
                dup = !strcmp(seen[j], t.name[i]);
            if (dup) continue;
            snprintf(seen[kinds++], sizeof seen[0], "%s", t.name[i]);
            uint32_t at[2] = {0, t.count[i] - 1};
            for (int a = 0; a < (at[1] > 0 ? 2 : 1); a++) {
                int f = (int)((i + (uint32_t)a) & 1);
                char err[512] = "";
                vkx_inject_call_fault(t.name[i], fault_r[f], at[a]);
                struct nibble_model *m = nibble_model_load(MODEL, &mp, err, sizeof err);
                vkx_inject_call_fault(NULL, VK_SUCCESS, 0);
                loads++;
                printf("# %s %s at %u of %u: %s\n", t.name[i], fault_names[f], at[a] + 1,
                       t.count[i], m ? "went on" : err);
                if (m) { /* what it went on without is not needed either */
                    generate(m);
                    nibble_model_free(m);
                    continue;
                }
                refused++;
                assert_non_null(strstr(err, fault_names[f]));
            }
        }
        printf("# disable=%s: %u calls of %u kinds\n", disable[d] ? disable[d] : "", t.total,
               t.n);
    }
    printf("# %u kinds of call failed in %u loads: NULL %u times\n", kinds, loads, refused);
    assert_true(kinds >= 15 && refused > kinds);
    /* and a model loads and generates */
    struct nibble_model *m = nibble_model_load(MODEL, NULL, NULL, 0);
    assert_non_null(m);
    generate(m);
    nibble_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_null_err),
        cmocka_unit_test(test_fifo_model),
        cmocka_unit_test(test_fifo_pipeline_cache),
        cmocka_unit_test(test_memory_env),
        cmocka_unit_test(test_context_limits),
        cmocka_unit_test(test_logits_rows),
        cmocka_unit_test(test_token_to_piece),
        cmocka_unit_test(test_sampler_checks),
        cmocka_unit_test(test_sample_full_vocab),
        cmocka_unit_test(test_seed_64),
        cmocka_unit_test(test_device_faults),
        cmocka_unit_test(test_create_faults),
        cmocka_unit_test(test_load_faults),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

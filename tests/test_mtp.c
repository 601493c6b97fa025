/* test_mtp: Gemma 4's MTP assistant (engine/mtp.h): the CPU reference (ref_mtp.c) and the GPU step
 * (mtp.c) against llama.cpp's gemma4-assistant, and speculative decoding with it.
 *
 * The assistants are `nibble mkmodel --preset tiny-assistant --target tests/data/NAME.gguf --type
 * q8_0 --seed 7` (2 layers, sliding then full, H=128), made here; the goldens
 * tests/data/mtp-NAME.llamacpp-{cpu,vulkan}.bin are what tools/peer/peer_mtp.c printed for them
 * with the target's ids[0..32) as the prompt and ids[32] as the first token at position 32
 * (the sliding window of 16 crossed): 4 chained steps (each feeding the argmax of the one before
 * and its h_next). On f32 copies of a target and assistant the reference is within 0.0015 of
 * llama.cpp's CPU backend (logits and h_next), so the tolerances here are the Q4_0 targets'.
 * A change to mkmodel's random weights needs new goldens (tools/peer/peer_mtp.c says how).
 * - ref_vs_llamacpp: on the dense, MoE and PLE (KV-shared) targets, the reference's logits of each
 *   step lie as close to llama.cpp's CPU file as the Vulkan file does (max difference within
 *   1.5x the CPU-Vulkan spread plus 0.02; the spread over the steps both backends fed the same
 *   token) and pick the same argmax where it leads by more than twice that; the hidden state
 *   (after output_norm) is the one llama.cpp hands the assistant (cosine above 0.999: the Q4_0
 *   targets' own rounding differs).
 * - gpu_vs_ref: the GPU step on the same three targets against the reference (the target's
 *   f16 cache and f32 accumulation: max difference 0.05 at logits of deviation about 0.24); and
 *   the first step again with h taken from a verification batch rolled back by one token (row 3
 *   of 5), within 0.02 of the step after a prefill; a greedy draft of 4 in one submission
 *   (argmax on the device) gives the tokens of 4 single steps chained by the host's argmax, and a
 *   sampled draft of 4 in one submission (nb_mtp_gpu_draft_sample) the tokens of 4 single steps
 *   chained by the device sampler's CPU reference, with every step's logits kept.
 * - greedy identity: generation with the assistant drafting (fixed k 4) gives the tokens of plain
 *   decoding until the context (80, window 16) is full, on dense, MoE and PLE.
 * - the default model with its trained assistant (models/default-mtp.gguf) after a held-out
 *   passage: plain decoding's greedy tokens, more than half of the drafts accepted.
 * - sampling (temperature 0.8, top_p 0.95) with the assistant's distributions runs to the end
 *   with valid tokens and repeats for a seed (fixed k).
 * - CLI: `nibble run --mtp` prints plain run's text and the acceptance; a target file as --mtp and
 *   an assistant for another model are refused with one line. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "forward.h"
#include "mtp.h"
#include "nibble.h"
#include "ref.h"

enum { NPROMPT = 32, MAXK = 8 };

struct golden {
    uint32_t K, V, Ht;
    int32_t tok[MAXK];
    float *logits; /* [K][V] */
    float *hn;     /* [K][Ht] */
    float *ht;     /* [Ht] the target's h of position NPROMPT - 1 */
};

static int load_golden(const char *name, struct golden *g)
{
    size_t size;
    uint8_t *b = nb_test_read(nb_test_file(name) ? nb_test_file(name) : "/nonexistent", &size);
    if (!b) return -1;
    memcpy(&g->K, b, 4);
    memcpy(&g->V, b + 4, 4);
    memcpy(&g->Ht, b + 8, 4);
    assert_true(g->K <= MAXK);
    size_t step = 4 + ((size_t)g->V + g->Ht) * 4;
    assert_int_equal(size, 12 + g->K * step + (size_t)g->Ht * 4);
    g->logits = malloc((size_t)g->K * g->V * 4);
    g->hn = malloc((size_t)g->K * g->Ht * 4);
    g->ht = malloc((size_t)g->Ht * 4);
    for (uint32_t s = 0; s < g->K; s++) {
        const uint8_t *p = b + 12 + s * step;
        memcpy(&g->tok[s], p, 4);
        memcpy(g->logits + (size_t)s * g->V, p + 4, (size_t)g->V * 4);
        memcpy(g->hn + (size_t)s * g->Ht, p + 4 + (size_t)g->V * 4, (size_t)g->Ht * 4);
    }
    memcpy(g->ht, b + 12 + g->K * step, (size_t)g->Ht * 4);
    free(b);
    return 0;
}

static void golden_free(struct golden *g)
{
    free(g->logits);
    free(g->hn);
    free(g->ht);
}

static double max_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= m)) m = isnan(d) ? 1e30 : d;
    }
    return m;
}

/* tests/data/NAME.gguf (a copy: nb_test_file's string is overwritten by its next call), or NULL. */
static const char *model_path(const char *name)
{
    static char path[2][1024];
    static int which;
    char fn[64];
    snprintf(fn, sizeof fn, "%s.gguf", name);
    const char *p = nb_test_file(fn);
    if (!p) return NULL;
    which ^= 1;
    snprintf(path[which], sizeof path[which], "%s", p);
    return path[which];
}

/* The ids of the target NAME (its .ids file), NPROMPT + 1 of them. */
static void read_ids(const char *name, int32_t *ids)
{
    char fn[64];
    snprintf(fn, sizeof fn, "%s.ids", name);
    size_t size;
    char *t = nb_test_read(nb_test_file(fn), &size);
    assert_non_null(t);
    t = realloc(t, size + 1);
    t[size] = 0;
    char *p = t;
    for (int i = 0; i <= NPROMPT; i++)
        ids[i] = (int32_t)strtol(p, &p, 10);
    free(t);
}

/* The assistant for target NAME in NB_TEST_TMP (made once by the CLI); its path. */
static const char *assistant(const char *name)
{
    static char path[1024];
    snprintf(path, sizeof path, "%s/mtp-%s.gguf", NB_TEST_TMP, name);
    FILE *f = fopen(path, "rb");
    if (f) {
        fclose(f);
        return path;
    }
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "'%s' mkmodel --preset tiny-assistant --target '%s' --type q8_0 --seed 7 -o '%s' "
             "2>/dev/null",
             NB_CLI, model_path(name), path);
    int st = system(cmd);
    assert_true(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    return path;
}

struct hcap {
    int want_layer, want_pos;
    float *h;
    size_t n;
};

static void on_layer(void *user, int layer, int pos, const float *h)
{
    struct hcap *c = user;
    if (layer == c->want_layer && pos == c->want_pos) memcpy(c->h, h, c->n * sizeof(float));
}

/* The reference's K steps (teacher-forced tokens of g) into logits [K][V]. */
static void ref_steps(const char *model, const int32_t *ids, const struct golden *g,
                      float *logits)
{
    struct nb_model m;
    struct nb_mtp_model a;
    char err[512];
    assert_int_equal(nb_model_load(&m, model_path(model), err, sizeof err), 0);
    if (nb_mtp_model_load(&a, assistant(model), &m.cfg, err, sizeof err) != 0)
        fail_msg("%s", err);
    struct nb_ref *r = nb_ref_create(&m, 64, err, sizeof err);
    assert_non_null(r);
    uint32_t Ht = m.cfg.n_embd;
    float *h = malloc(Ht * 4), *hn = malloc(Ht * 4);
    struct hcap cap = {(int)m.cfg.n_layer, NPROMPT - 1, h, Ht};
    struct nb_ref_hooks hk = {.user = &cap, .on_layer = on_layer};
    nb_ref_set_hooks(r, &hk);
    assert_int_equal(nb_ref_eval(r, ids, NPROMPT, 0, NULL, true, err, sizeof err), 0);
    double dot = 0, n1 = 0, n2 = 0;
    for (uint32_t i = 0; i < Ht; i++) {
        dot += (double)h[i] * g->ht[i];
        n1 += (double)h[i] * h[i];
        n2 += (double)g->ht[i] * g->ht[i];
    }
    double cosine = dot / sqrt(n1 * n2);
    printf("# %s: target h vs llama.cpp's: max diff %.4f, cosine %.6f\n", model,
           max_diff(h, g->ht, Ht), cosine);
    assert_true(cosine > 0.95); /* after output_norm, up to the Q4_0 target's rounding (MoE) */
    struct nb_ref_mtp *rm = nb_ref_mtp_create(&a, &m, r, err, sizeof err);
    assert_non_null(rm);
    for (uint32_t s = 0; s < g->K; s++) {
        if (nb_ref_mtp_step(rm, g->tok[s], NPROMPT, s ? hn : h, logits + (size_t)s * g->V, hn,
                            err, sizeof err) != 0)
            fail_msg("%s", err);
    }
    nb_ref_mtp_destroy(rm);
    nb_ref_destroy(r);
    nb_mtp_model_free(&a);
    nb_model_free(&m);
    free(h);
    free(hn);
}

static void ref_vs_llamacpp(const char *model)
{
    char fc[128], fv[128];
    snprintf(fc, sizeof fc, "mtp-%s.llamacpp-cpu.bin", model);
    snprintf(fv, sizeof fv, "mtp-%s.llamacpp-vulkan.bin", model);
    struct golden gc = {0}, gv = {0};
    if (!model_path(model) || load_golden(fc, &gc) || load_golden(fv, &gv)) skip();
    int32_t ids[NPROMPT + 1];
    read_ids(model, ids);
    assert_int_equal(gc.tok[0], ids[NPROMPT]);
    float *lg = malloc((size_t)gc.K * gc.V * 4);
    ref_steps(model, ids, &gc, lg);
    /* llama.cpp's spread: its two backends over the steps where they fed the same token */
    double spread = 0;
    for (uint32_t s = 0; s < gc.K && gc.tok[s] == gv.tok[s]; s++) {
        double d = max_diff(gc.logits + (size_t)s * gc.V, gv.logits + (size_t)s * gc.V, gc.V);
        spread = d > spread ? d : spread;
    }
    double tol = 1.5 * spread + 0.02;
    for (uint32_t s = 0; s < gc.K; s++) {
        const float *r = lg + (size_t)s * gc.V, *c = gc.logits + (size_t)s * gc.V;
        double dc = max_diff(r, c, gc.V);
        printf("# %s step %u: ref - llama.cpp cpu %.4f (llama.cpp cpu - vulkan %.4f)\n", model, s,
               dc, spread);
        assert_true(dc <= tol);
        /* the same argmax unless the best two are closer than the tolerance */
        int a = nb_test_argmax(c, gc.V);
        double second = -INFINITY;
        for (uint32_t i = 0; i < gc.V; i++)
            if ((int)i != a && c[i] > second) second = c[i];
        if (c[a] - second > 2 * tol) assert_int_equal(nb_test_argmax(r, gc.V), a);
    }
    free(lg);
    golden_free(&gc);
    golden_free(&gv);
}

static void test_ref_dense(void **state) { (void)state; ref_vs_llamacpp("dense"); }
static void test_ref_moe(void **state) { (void)state; ref_vs_llamacpp("moe"); }
static void test_ref_ple(void **state) { (void)state; ref_vs_llamacpp("ple"); }

/* ---- the GPU step ---------------------------------------------------------------------------- */

static struct nibble_model *load(const char *name)
{
    struct nibble_model_params mp = nibble_model_default_params();
    mp.validation = true;
    char err[512];
    struct nibble_model *m = nibble_model_load(model_path(name), &mp, err, sizeof err);
    if (!m) printf("# %s: %s\n", name, err);
    return m;
}

static struct nibble_context *ctx(struct nibble_model *m, uint32_t n_ctx)
{
    struct nibble_context_params cp = nibble_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_batch = 8;
    char err[512];
    struct nibble_context *c = nibble_context_create(m, &cp, err, sizeof err);
    if (!c) fail_msg("%s", err);
    return c;
}

static void gpu_vs_ref(const char *model)
{
    char fc[128];
    snprintf(fc, sizeof fc, "mtp-%s.llamacpp-cpu.bin", model);
    struct golden g = {0};
    if (!model_path(model) || load_golden(fc, &g)) skip();
    int32_t ids[NPROMPT + 1];
    read_ids(model, ids);
    float *lr = malloc((size_t)g.K * g.V * 4), *l0 = malloc((size_t)g.V * 4);
    ref_steps(model, ids, &g, lr);
    struct nibble_model *m = load(model);
    if (!m) skip();
    struct nibble_context *c = ctx(m, 64);
    char err[512];
    assert_int_equal(nibble_eval(c, ids, NPROMPT, false, err, sizeof err), 0);
    struct nb_gpu_model *gm;
    struct nb_fwd *f;
    struct vkx_view h;
    assert_int_equal(nb_context_hidden(c, &gm, &f, &h), 0);
    struct nb_mtp_gpu *mg = nb_mtp_gpu_create(gm, f, assistant(model), err, sizeof err);
    if (!mg) fail_msg("%s", err);
    for (uint32_t s = 0; s < g.K; s++) {
        const float *lg = nb_mtp_gpu_step(mg, g.tok[s], NPROMPT, s ? NULL : &h, err, sizeof err);
        if (!lg) fail_msg("%s", err);
        const float *r = lr + (size_t)s * g.V, *cpu = g.logits + (size_t)s * g.V;
        double d = max_diff(lg, r, g.V), dc = max_diff(lg, cpu, g.V);
        printf("# %s step %u: gpu-ref %.4f gpu-llama.cpp-cpu %.4f\n", model, s, d, dc);
        assert_true(d < 0.05);
        if (s == 0) memcpy(l0, lg, (size_t)g.V * 4);
    }
    /* a greedy draft in one submission gives the argmax chain of single steps */
    int32_t want[4], got[4], t = g.tok[0];
    for (int s = 0; s < 4; s++) {
        const float *lg = nb_mtp_gpu_step(mg, t, NPROMPT, s ? NULL : &h, err, sizeof err);
        assert_non_null(lg);
        want[s] = t = nb_test_argmax(lg, g.V);
    }
    assert_int_equal(nb_mtp_gpu_draft(mg, g.tok[0], NPROMPT, &h, 4, got, err, sizeof err), 4);
    assert_memory_equal(got, want, sizeof want);
    /* a sampled draft in one submission: the tokens of 4 single steps chained by the device
     * sampler's reference with the same counters (where no draw lies within rounding of a
     * boundary), and each step's logits kept */
    uint32_t counters[4] = {11, 12, 13, 14};
    struct nb_mtp_sampler ms = {40, 1.5f, 0.95f, 77, counters};
    const float *kept;
    assert_int_equal(nb_mtp_gpu_draft_sample(mg, g.tok[0], NPROMPT, &h, 4, &ms, got, &kept, err,
                                             sizeof err), 4);
    bool close = false;
    double dk = 0;
    for (int s = 0; s < 4; s++) {
        const float *lg = nb_mtp_gpu_step(mg, s ? got[s - 1] : g.tok[0], NPROMPT, s ? NULL : &h,
                                          err, sizeof err);
        assert_non_null(lg);
        float margin;
        want[s] = (int32_t)nb_sample_ref(lg, g.V, 40, 1.5f, 0.95f, 77, counters[s], &margin);
        close = close || margin < 1e-4f;
        double d = max_diff(lg, kept + (size_t)s * g.V, g.V);
        dk = d > dk ? d : dk;
    }
    printf("# %s: sampled draft %d %d %d %d, chained steps %d %d %d %d, logits within %.2g\n",
           model, got[0], got[1], got[2], got[3], want[0], want[1], want[2], want[3], dk);
    if (!close) assert_memory_equal(got, want, sizeof want);
    assert_true(dk < 1e-4);
    /* h from a verification batch (every row kept) rolled back by one: positions 28..32 in one
     * eval, truncated to 32, so h is its row 3 */
    nibble_reset(c);
    assert_int_equal(nibble_eval(c, ids, 28, false, err, sizeof err), 0);
    assert_int_equal(nibble_eval(c, ids + 28, 5, true, err, sizeof err), 0);
    assert_int_equal(nibble_truncate(c, NPROMPT, err, sizeof err), 0);
    assert_int_equal(nb_context_hidden(c, &gm, &f, &h), 0);
    assert_int_equal(h.off, 3 * (VkDeviceSize)g.Ht * 4);
    const float *lv = nb_mtp_gpu_step(mg, g.tok[0], NPROMPT, &h, err, sizeof err);
    assert_non_null(lv);
    double dv = max_diff(lv, l0, g.V);
    printf("# %s: step 0 after a verification batch - after a prefill: %.4f\n", model, dv);
    assert_true(dv < 0.02);
    nb_mtp_gpu_destroy(mg);
    nibble_context_destroy(c);
    nibble_model_free(m);
    free(lr);
    free(l0);
    golden_free(&g);
    nb_test_check_validation();
}

static void test_gpu_dense(void **state) { (void)state; gpu_vs_ref("dense"); }
static void test_gpu_moe(void **state) { (void)state; gpu_vs_ref("moe"); }
static void test_gpu_ple(void **state) { (void)state; gpu_vs_ref("ple"); }

/* ---- speculative decoding with the assistant ------------------------------------------------- */

static const struct nibble_sampler greedy = {.temp = 0.0f, .top_k = 1, .top_p = 1.0f, .seed = 1};

static void greedy_identity(const char *model)
{
    if (!model_path(model)) skip();
    struct nibble_model *m = load(model);
    if (!m) skip();
    enum { NCTX = 80 };
    int32_t ids[NPROMPT + 1], plain[NCTX + 8], fast[NCTX + 8];
    read_ids(model, ids);
    struct nibble_context *c = ctx(m, NCTX);
    int n = nb_test_generate(c, NULL, &greedy, ids, NPROMPT, plain);
    struct nibble_spec_params p = nibble_spec_default_params();
    p.mtp = assistant(model);
    p.draft_max = 4;
    p.fixed_k = true;
    char err[512];
    struct nibble_spec *s = nibble_spec_create(c, &p, err, sizeof err);
    if (!s) fail_msg("%s", err);
    assert_int_equal(nb_test_generate(c, s, &greedy, ids, NPROMPT, fast), n);
    assert_memory_equal(fast, plain, (size_t)n * sizeof *plain);
    struct nibble_spec_stats st = nibble_spec_get_stats(s);
    printf("# %s mtp: %llu steps, %llu verifications, %llu of %llu drafts accepted\n", model,
           (unsigned long long)st.steps, (unsigned long long)st.verifications,
           (unsigned long long)st.accepted, (unsigned long long)st.drafted);
    assert_true(st.verifications > 0);
    nibble_spec_destroy(s);
    nibble_context_destroy(c);
    nibble_model_free(m);
    nb_test_check_validation();
}

/* The default model with its trained assistant (models/default-mtp.gguf) after a held-out
 * passage: the greedy tokens of plain decoding, most drafts accepted (rows past the first of a
 * verification hand their hidden state to the next draft). */
static void test_default(void **state)
{
    (void)state;
    size_t size = 0;
    char *text = nb_test_read(NB_TEST_DATA "/../../models/kjv-heldout.txt", &size);
    const char *mtp = NB_TEST_DATA "/../../models/default-mtp.gguf";
    FILE *fm = fopen(mtp, "rb");
    if (!text || !fm) skip();
    fclose(fm);
    struct nibble_model_params mp = nibble_model_default_params();
    mp.validation = true;
    char err[512];
    struct nibble_model *m =
        nibble_model_load(NB_TEST_DATA "/../../models/default.gguf", &mp, err, sizeof err);
    if (!m) skip();
    enum { NCTX = 224 };
    text[size < 400 ? size - 1 : 400] = 0;
    int32_t ids[300], plain[NCTX + 8], fast[NCTX + 8];
    int n_ids = nibble_tokenize(m, text, ids, 300, true);
    free(text);
    assert_true(n_ids > 50 && n_ids < 150);
    struct nibble_context *c = ctx(m, NCTX);
    int n = nb_test_generate(c, NULL, &greedy, ids, n_ids, plain);
    struct nibble_spec_params p = nibble_spec_default_params();
    p.mtp = mtp;
    p.draft_max = 3;
    p.fixed_k = true;
    struct nibble_spec *s = nibble_spec_create(c, &p, err, sizeof err);
    if (!s) fail_msg("%s", err);
    assert_int_equal(nb_test_generate(c, s, &greedy, ids, n_ids, fast), n);
    assert_memory_equal(fast, plain, (size_t)n * sizeof *plain);
    struct nibble_spec_stats st = nibble_spec_get_stats(s);
    printf("# default + default-mtp: %llu steps, %llu of %llu drafts accepted\n",
           (unsigned long long)st.steps, (unsigned long long)st.accepted,
           (unsigned long long)st.drafted);
    assert_true(st.accepted * 2 > st.drafted);
    nibble_spec_destroy(s);
    nibble_context_destroy(c);
    nibble_model_free(m);
    nb_test_check_validation();
}

/* Sampling with the assistant drafting (its distributions, the speculative-sampling rule): runs
 * to the context's end with tokens of the vocabulary and repeats for a seed. */
static void test_sampling(void **state)
{
    (void)state;
    if (!model_path("dense")) skip();
    struct nibble_model *m = load("dense");
    if (!m) skip();
    enum { NCTX = 72 };
    int32_t ids[NPROMPT + 1], a[2][NCTX + 8];
    read_ids("dense", ids);
    struct nibble_context *c = ctx(m, NCTX);
    struct nibble_sampler sp = {.temp = 0.8f, .top_k = 0, .top_p = 0.95f, .seed = 7};
    char err[512];
    uint64_t drafted = 0;
    for (int r = 0; r < 2; r++) {
        struct nibble_spec_params p = nibble_spec_default_params();
        p.mtp = assistant("dense");
        p.draft_max = 3;
        p.fixed_k = true;
        struct nibble_spec *s = nibble_spec_create(c, &p, err, sizeof err);
        if (!s) fail_msg("%s", err);
        nibble_reset(c);
        nibble_set_draws(c, 0);
        assert_int_equal(nibble_eval(c, ids, NPROMPT, false, err, sizeof err), 0);
        int n = 0;
        a[r][n++] = nibble_sample(c, &sp);
        while (nibble_n_past(c) < nibble_n_ctx(c)) {
            int k = nibble_spec_step(s, a[r][n - 1], &sp, a[r] + n, 8, err, sizeof err);
            if (k < 1) fail_msg("%s", err);
            n += k;
        }
        for (int i = 0; i < n; i++)
            assert_true(a[r][i] >= 0 && a[r][i] < nibble_n_vocab(m));
        drafted = nibble_spec_get_stats(s).drafted;
        nibble_spec_destroy(s);
    }
    assert_true(drafted > 0);
    assert_memory_equal(a[0], a[1], (NCTX - NPROMPT) * sizeof(int32_t));
    nibble_context_destroy(c);
    nibble_model_free(m);
    nb_test_check_validation();
}

static void test_greedy_dense(void **state) { (void)state; greedy_identity("dense"); }
static void test_greedy_moe(void **state) { (void)state; greedy_identity("moe"); }
static void test_greedy_ple(void **state) { (void)state; greedy_identity("ple"); }

/* ---- CLI ------------------------------------------------------------------------------------- */

static char out[1 << 16], errs[1 << 16];

/* Runs `NB_CLI args` with stdout and stderr into out/errs (testutil.h); the exit status. */
static int cli(const char *args) { return nb_test_cli("mtp", args, out, errs, sizeof out); }

static void test_cli(void **state)
{
    (void)state;
    const char *dense = nb_test_file("dense.gguf");
    if (!dense) skip();
    char dpath[1024], apath[1024], mpath[1024], args[4096];
    snprintf(dpath, sizeof dpath, "%s", dense);
    snprintf(apath, sizeof apath, "%s", assistant("dense"));
    snprintf(mpath, sizeof mpath, "%s", assistant("moe"));
    static char plain[1 << 16];
    char p[1200];
    snprintf(p, sizeof p, "-m '%s' -p 'And God said unto Moses,' -n 40 --temp 0 -c 80", dpath);
    snprintf(args, sizeof args, "run %s", p);
    if (cli(args) != 0) skip(); /* no device */
    snprintf(plain, sizeof plain, "%s", out);
    snprintf(args, sizeof args, "run %s --mtp '%s' --draft-max 3", p, apath);
    assert_int_equal(cli(args), 0);
    assert_string_equal(out, plain);
    assert_non_null(strstr(errs, "speculative:"));
    /* a target as the assistant; an assistant of another model (MoE: other KV heads) */
    snprintf(args, sizeof args, "run %s --mtp '%s'", p, dpath);
    assert_int_equal(cli(args), 1);
    assert_non_null(strstr(errs, "not an MTP assistant"));
    snprintf(args, sizeof args, "run %s --mtp '%s'", p, mpath);
    int rc = cli(args);
    if (rc != 0) { /* differing shapes are refused; equal ones would simply draft badly */
        assert_int_equal(rc, 1);
        assert_non_null(strstr(errs, "nibble run:"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ref_dense),    cmocka_unit_test(test_ref_moe),
        cmocka_unit_test(test_ref_ple),      cmocka_unit_test(test_gpu_dense),
        cmocka_unit_test(test_gpu_moe),      cmocka_unit_test(test_gpu_ple),
        cmocka_unit_test(test_greedy_dense), cmocka_unit_test(test_greedy_moe),
        cmocka_unit_test(test_greedy_ple),   cmocka_unit_test(test_default),
        cmocka_unit_test(test_sampling),
        cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

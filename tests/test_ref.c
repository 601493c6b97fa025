/* test_ref: the model loader (config from metadata, checked weight table, clear errors for bad
 * files) and the CPU reference forward against llama.cpp's logits on the golden models, in
 * prefill (one batch of 64) and decode (one token at a time) mode. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf_writer.h"
#include "model.h"
#include "quant.h"
#include "ref.h"
#include "testutil.h"

#define N_IDS 64

/* ---- golden logits ------------------------------------------------------------------------- */

/* Our logits must be at least as close to each llama.cpp file as the two files are to each other
 * (their spread, measured here from the files; the README table rounds it): top-1 agreement,
 * mean abs diff and, except for MoE where routing flips amplify tiny differences, max abs diff.
 * On the F32 models the CPU file is exact and we aim for cpu_mean. */
struct golden {
    const char *name;
    bool moe;
    double cpu_mean;
};

struct stats {
    int agree; /* rows of 64 with the same argmax */
    double mean, max;
};

static const struct golden goldens[] = {
    {"dense", false, 0},       {"dense-f32", false, 0.003}, {"dense-q8", false, 0},
    {"moe", true, 0},          {"moe-f32", true, 0.004},    {"ple", false, 0},
    {"ple-f32", false, 0.012},
};

static int argmax(const float *x, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

static int read_ids(const char *path, int32_t *ids, int n)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int i = 0;
    while (i < n && fscanf(f, "%d", &ids[i]) == 1)
        i++;
    fclose(f);
    return i == n ? 0 : -1;
}

static struct stats diff(const float *a, const float *b, int V)
{
    struct stats s = {0, 0, 0};
    for (int i = 0; i < N_IDS; i++) {
        const float *x = a + (size_t)i * V, *y = b + (size_t)i * V;
        s.agree += argmax(x, V) == argmax(y, V);
        for (int j = 0; j < V; j++) {
            double d = fabs((double)x[j] - y[j]);
            s.mean += d;
            if (!(d <= s.max)) s.max = d; /* NaN propagates */
        }
    }
    s.mean /= (double)N_IDS * V;
    return s;
}

static float *read_logits(const char *name, const char *backend, int V)
{
    char file[128];
    snprintf(file, sizeof file, "%s.llamacpp-%s.f32", name, backend);
    size_t size = 0;
    float *p = nb_test_read(nb_test_file(file), &size);
    assert_non_null(p);
    assert_int_equal(size, (size_t)N_IDS * V * sizeof(float));
    return p;
}

/* Compares our logits with one llama.cpp file and checks them against the spread. */
static void compare(const struct golden *g, const char *mode, const char *backend,
                    const float *ours, const float *ref, struct stats sp, int V)
{
    struct stats s = diff(ours, ref, V);
    printf("# %-9s %-7s vs %-6s: top-1 %.3f (%d/64)  mean %.4f  max %.3f   (llama.cpp spread: "
           "%.3f / %.4f / %.3f)\n",
           g->name, mode, backend, s.agree / 64.0, s.agree, s.mean, s.max, sp.agree / 64.0, sp.mean,
           sp.max);
    assert_true(s.agree >= sp.agree);
    assert_true(s.mean <= sp.mean);
    if (!g->moe) assert_true(s.max <= sp.max);
    if (g->cpu_mean > 0 && !strcmp(backend, "cpu")) assert_true(s.mean <= g->cpu_mean);
}

static int layer_calls;
static void count_layers(void *user, int layer, int pos, const float *h)
{
    (void)user, (void)layer, (void)pos, (void)h;
    layer_calls++;
}

static void run_golden(const struct golden *g)
{
    char file[128];
    snprintf(file, sizeof file, "%s.gguf", g->name);
    const char *path = nb_test_file(file);
    if (!path) {
        printf("# %s: not found, skipped\n", file);
        skip();
    }
    char err[512];
    struct nb_model m;
    if (nb_model_load(&m, path, err, sizeof err) != 0) fail_msg("%s", err);
    int32_t ids[N_IDS];
    snprintf(file, sizeof file, "%s.ids", g->name);
    assert_int_equal(read_ids(nb_test_file(file), ids, N_IDS), 0);
    int V = (int)m.cfg.n_vocab;
    float *pre = malloc(sizeof(float) * N_IDS * V), *dec = malloc(sizeof(float) * N_IDS * V);
    float *last = malloc(sizeof(float) * V);
    assert_non_null(pre && dec && last);
    struct nb_ref *r = nb_ref_create(&m, N_IDS, err, sizeof err);
    if (!r) fail_msg("%s", err);

    /* prefill: all 64 ids in one call (two internal chunks) */
    if (nb_ref_eval(r, ids, N_IDS, 0, pre, false, err, sizeof err) != 0) fail_msg("%s", err);
    /* decode: one id at a time, with the layer hook on */
    struct nb_ref_hooks hk = {.on_layer = count_layers};
    nb_ref_set_hooks(r, &hk);
    layer_calls = 0;
    for (int i = 0; i < N_IDS; i++)
        if (nb_ref_eval(r, ids + i, 1, i, dec + (size_t)i * V, false, err, sizeof err) != 0)
            fail_msg("%s", err);
    assert_int_equal(layer_calls, N_IDS * ((int)m.cfg.n_layer + 2));
    nb_ref_set_hooks(r, NULL);
    /* last_only restarting at position 40 must reproduce row 63 */
    if (nb_ref_eval(r, ids + 40, N_IDS - 40, 40, last, true, err, sizeof err) != 0)
        fail_msg("%s", err);

    double dmax = 0;
    for (size_t i = 0; i < (size_t)N_IDS * V; i++) {
        double d = fabs((double)pre[i] - dec[i]);
        if (!(d <= dmax)) dmax = d;
    }
    printf("# %-9s prefill vs decode: max abs diff %g\n", g->name, dmax);
    assert_true(dmax == 0);
    assert_memory_equal(last, pre + (size_t)(N_IDS - 1) * V, sizeof(float) * V);

    float *cpu = read_logits(g->name, "cpu", V), *vk = read_logits(g->name, "vulkan", V);
    struct stats sp = diff(cpu, vk, V);
    compare(g, "prefill", "cpu", pre, cpu, sp, V);
    compare(g, "prefill", "vulkan", pre, vk, sp, V);
    compare(g, "decode", "cpu", dec, cpu, sp, V);
    compare(g, "decode", "vulkan", dec, vk, sp, V);
    free(cpu);
    free(vk);

    /* bad input gives an error, not a crash */
    int32_t bad = V;
    assert_int_equal(nb_ref_eval(r, &bad, 1, 0, NULL, false, err, sizeof err), -1);
    printf("# expected error: %s\n", err);
    assert_int_equal(nb_ref_eval(r, ids, 2, N_IDS - 1, NULL, false, err, sizeof err), -1);
    printf("# expected error: %s\n", err);

    nb_ref_destroy(r);
    nb_model_free(&m);
    free(pre);
    free(dec);
    free(last);
}

static void test_golden_dense(void **s)
{
    (void)s;
    run_golden(&goldens[0]);
}
static void test_golden_dense_f32(void **s)
{
    (void)s;
    run_golden(&goldens[1]);
}
static void test_golden_dense_q8(void **s)
{
    (void)s;
    run_golden(&goldens[2]);
}
static void test_golden_moe(void **s)
{
    (void)s;
    run_golden(&goldens[3]);
}
static void test_golden_moe_f32(void **s)
{
    (void)s;
    run_golden(&goldens[4]);
}
static void test_golden_ple(void **s)
{
    (void)s;
    run_golden(&goldens[5]);
}
static void test_golden_ple_f32(void **s)
{
    (void)s;
    run_golden(&goldens[6]);
}

/* ---- configuration of the golden models ---------------------------------------------------- */

static void load_golden(struct nb_model *m, const char *file)
{
    const char *path = nb_test_file(file);
    if (!path) skip();
    char err[512];
    if (nb_model_load(m, path, err, sizeof err) != 0) fail_msg("%s", err);
}

static void test_config_dense(void **s)
{
    (void)s;
    struct nb_model m;
    load_golden(&m, "dense.gguf");
    const struct nb_config *c = &m.cfg;
    nb_config_print(c, stdout);
    assert_int_equal(c->arch, NB_ARCH_GEMMA4);
    assert_int_equal(c->n_embd, 256);
    assert_int_equal(c->n_layer, 6);
    assert_int_equal(c->n_head, 4);
    assert_int_equal(c->n_vocab, 1024);
    assert_int_equal(c->head_dim, 128);
    assert_int_equal(c->head_dim_swa, 64);
    assert_int_equal(c->sliding_window, 16);
    assert_true(c->final_softcap == 30.0f);
    assert_true(c->attn_scale == 1.0f);
    assert_true(c->rope_base == 1e6f && c->rope_base_swa == 1e4f);
    assert_int_equal(c->n_rot, 128);
    assert_int_equal(c->n_rope_pairs_full, 16); /* 0.25 of the full head rotates */
    assert_true(c->rope_factors_simple);
    assert_true(c->tied_output && m.w.output == m.w.token_embd);
    assert_true(c->has_layer_scale);
    assert_int_equal(c->n_embd_ple, 0);
    assert_int_equal(c->n_expert, 0);
    for (int l = 0; l < 6; l++) {
        const struct nb_layer_config *lc = &c->layer[l];
        assert_int_equal(lc->is_swa, l < 5);
        assert_int_equal(lc->n_head_kv, l < 5 ? 2 : 1);
        assert_int_equal(lc->head_dim, l < 5 ? 64 : 128);
        assert_int_equal(lc->n_ff, 512);
        assert_true(lc->has_kv && lc->has_v && !lc->is_moe);
        assert_int_equal(lc->kv_source, l);
        assert_non_null(m.w.layer[l].attn_v);
    }
    nb_model_free(&m);
}

static void test_config_ple(void **s)
{
    (void)s;
    struct nb_model m;
    load_golden(&m, "ple.gguf");
    const struct nb_config *c = &m.cfg;
    nb_config_print(c, stdout);
    assert_int_equal(c->n_layer, 10);
    assert_int_equal(c->n_embd_ple, 32);
    assert_int_equal(c->n_kv_shared, 5);
    static const int src[10] = {0, 1, 2, 3, 4, 3, 3, 3, 3, 4};
    for (int l = 0; l < 10; l++) {
        const struct nb_layer_config *lc = &c->layer[l];
        assert_int_equal(lc->is_swa, l != 4 && l != 9);
        assert_int_equal(lc->n_ff, l < 5 ? 256 : 512);
        assert_int_equal(lc->has_kv, l < 5);
        assert_int_equal(lc->kv_source, src[l]);
        assert_int_equal(lc->n_head_kv, 1);
        assert_true((m.w.layer[l].attn_k != NULL) == (l < 5));
        assert_non_null(m.w.layer[l].inp_gate);
    }
    assert_non_null(m.w.per_layer_token_embd);
    nb_model_free(&m);
}

static void test_config_moe(void **s)
{
    (void)s;
    struct nb_model m;
    load_golden(&m, "moe.gguf");
    const struct nb_config *c = &m.cfg;
    nb_config_print(c, stdout);
    assert_int_equal(c->n_expert, 16);
    assert_int_equal(c->n_expert_used, 4);
    assert_int_equal(c->n_ff_exp, 64);
    assert_true(c->moe_fused_gate_up);
    for (int l = 0; l < 6; l++) {
        assert_true(c->layer[l].is_moe);
        assert_int_equal(c->layer[l].has_v, l < 5); /* K=V on the full layer */
        assert_non_null(m.w.layer[l].ffn_gate_up_exps);
        assert_non_null(m.w.layer[l].ffn_down_exps_scale);
    }
    nb_model_free(&m);
}

/* ---- tiny synthetic models ----------------------------------------------------------------- */

/* A tiny valid gemma4 model (H=32, layers [sliding, full], 2 heads, 1 KV head, head dims 16/32,
 * F=64, vocab 64, weights in every accepted type) with one thing changed: a breakage, or a
 * variant that must give the same logits as the plain model (MoE split vs fused experts, layer
 * pattern as a period). */
enum tiny {
    B_NONE,
    B_ARCH,
    B_MISSING,
    B_SHAPE,
    B_TYPE,
    B_NORM_TYPE,
    B_KV_ARRAY,
    V_PERIOD,
    V_MOE_FUSED,
    V_MOE_SPLIT
};
#define TH 32  /* H */
#define TE 4   /* experts */
#define TFE 32 /* expert width */

/* Deterministic weight value i of the tensor whose name hashes to seed, in [-0.5, 0.5). */
static float wval(uint32_t seed, uint64_t i)
{
    uint64_t x = (seed + 1) * 0x9E3779B97F4A7C15ull + i * 0xD1B54A32D192ED03ull;
    x ^= x >> 29;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 32;
    return (float)(x & 0xFFFFFF) / 16777216.0f - 0.5f;
}

static uint32_t hash_name(const char *s)
{
    uint32_t h = 2166136261u;
    while (*s)
        h = (h ^ (uint8_t)*s++) * 16777619u;
    return h;
}

/* Adds a tensor of nd dims {e0, e1, e2} filled from wval (norms and scales: 1 + 0.2 wval). */
static void add_t3(struct gw *w, const char *name, enum ggml_type type, uint32_t nd, uint64_t e0,
                   uint64_t e1, uint64_t e2)
{
    uint64_t ne[3] = {e0, e1, e2}, n = e0 * e1 * e2;
    if (!nb_quant_supported(type)) {
        gw_tensor(w, name, type, nd, ne, NULL); /* zeros in a type we do not take */
        return;
    }
    float *v = malloc(n * sizeof(float));
    assert_non_null(v);
    uint32_t seed = hash_name(name);
    for (uint64_t i = 0; i < n; i++)
        v[i] = nd == 1 ? 1.0f + 0.2f * wval(seed, i) : 0.5f * wval(seed, i);
    gw_tensor_f32(w, name, type, nd, ne, v);
    free(v);
}

static void add_t(struct gw *w, const char *name, enum ggml_type type, uint32_t nd, uint64_t e0,
                  uint64_t e1)
{
    add_t3(w, name, type, nd, e0, e1, 1);
}

/* Expert gate/up weights, the same numbers in the fused {H, 2Fe, E} and split {H, Fe, E} forms. */
static void add_experts(struct gw *w, int l, bool fused)
{
    char n[64];
    uint32_t sg = 1000u + (uint32_t)l, su = 2000u + (uint32_t)l;
    float *v = malloc(sizeof(float) * TH * 2 * TFE * TE);
    assert_non_null(v);
    if (fused) {
        for (int e = 0; e < TE; e++)
            for (int r = 0; r < 2 * TFE; r++)
                for (int c = 0; c < TH; c++)
                    v[((size_t)e * 2 * TFE + r) * TH + c] =
                        0.5f * wval(r < TFE ? sg : su, ((size_t)e * TFE + r % TFE) * TH + c);
        uint64_t ne[3] = {TH, 2 * TFE, TE};
        snprintf(n, sizeof n, "blk.%d.ffn_gate_up_exps.weight", l);
        gw_tensor_f32(w, n, GGML_Q8_0, 3, ne, v);
    } else {
        uint64_t ne[3] = {TH, TFE, TE};
        for (int k = 0; k < 2; k++) {
            for (size_t i = 0; i < (size_t)TH * TFE * TE; i++)
                v[i] = 0.5f * wval(k ? su : sg, i);
            snprintf(n, sizeof n, "blk.%d.ffn_%s_exps.weight", l, k ? "up" : "gate");
            gw_tensor_f32(w, n, GGML_Q8_0, 3, ne, v);
        }
    }
    free(v);
}

/* One metadata override for the next tiny_model: key (without "gemma4.") and its u32 value. */
static const char *ov_key;
static uint32_t ov_val;

static void kv_u32(struct gw *w, const char *key, uint32_t v)
{
    char full[96];
    snprintf(full, sizeof full, "gemma4.%s", key);
    gw_kv_u32(w, full, ov_key && !strcmp(ov_key, key) ? ov_val : v);
}

static void *tiny_model(enum tiny b, size_t *size)
{
    struct gw *w = gw_create();
    bool moe = b == V_MOE_FUSED || b == V_MOE_SPLIT;
    gw_kv_str(w, "general.architecture", b == B_ARCH ? "llama" : "gemma4");
    kv_u32(w, "embedding_length", TH);
    kv_u32(w, "block_count", 2);
    kv_u32(w, "feed_forward_length", 64);
    kv_u32(w, "attention.head_count", 2);
    int32_t kv[3] = {1, 1, 1};
    gw_kv_arr(w, "gemma4.attention.head_count_kv", GGUF_I32, kv, b == B_KV_ARRAY ? 3 : 2);
    kv_u32(w, "attention.key_length", 32);
    kv_u32(w, "attention.value_length", 32);
    kv_u32(w, "attention.key_length_swa", 16);
    kv_u32(w, "attention.value_length_swa", 16);
    gw_kv_f32(w, "gemma4.attention.layer_norm_rms_epsilon", 1e-6f);
    kv_u32(w, "attention.sliding_window", 4);
    uint8_t pat[2] = {1, 0};
    if (b == V_PERIOD)
        kv_u32(w, "attention.sliding_window_pattern", 2);
    else
        gw_kv_arr(w, "gemma4.attention.sliding_window_pattern", GGUF_BOOL, pat, 2);
    gw_kv_f32(w, "gemma4.rope.freq_base", 1e6f);
    gw_kv_f32(w, "gemma4.rope.freq_base_swa", 1e4f);
    kv_u32(w, "rope.dimension_count", 32);
    kv_u32(w, "rope.dimension_count_swa", 16);
    gw_kv_f32(w, "gemma4.final_logit_softcapping", 30.0f);
    if (ov_key && !strcmp(ov_key, "embedding_length_per_layer_input"))
        kv_u32(w, "embedding_length_per_layer_input", 0);
    if (ov_key && !strcmp(ov_key, "attention.shared_kv_layers"))
        kv_u32(w, "attention.shared_kv_layers", 0);
    if (ov_key && !strcmp(ov_key, "expert_count")) kv_u32(w, "expert_count", 0);
    if (moe) {
        kv_u32(w, "expert_count", TE);
        kv_u32(w, "expert_used_count", 2);
        kv_u32(w, "expert_feed_forward_length", TFE);
    }
    add_t(w, "token_embd.weight", GGML_Q8_0, 2, TH, 64);
    add_t(w, "output_norm.weight", GGML_F32, 1, TH, 1);
    for (int l = 0; l < 2; l++) {
        char n[64];
        uint64_t hd = l == 0 ? 16 : 32;
#define T(suffix, type, nd, e0, e1)                                                                \
    do {                                                                                           \
        snprintf(n, sizeof n, "blk.%d.%s", l, suffix);                                             \
        add_t(w, n, type, nd, e0, e1);                                                             \
    } while (0)
        T("attn_norm.weight", b == B_NORM_TYPE && l == 1 ? GGML_Q8_0 : GGML_F32, 1, TH, 1);
        T("attn_q.weight", GGML_Q8_0, 2, TH, 2 * hd);
        T("attn_k.weight", b == B_TYPE && l == 0 ? (enum ggml_type)39 /* MXFP4 */ : GGML_Q4_0, 2, TH,
          b == B_SHAPE && l == 1 ? hd / 2 : hd);
        T("attn_v.weight", GGML_F16, 2, TH, hd);
        T("attn_q_norm.weight", GGML_F32, 1, hd, 1);
        T("attn_k_norm.weight", GGML_BF16, 1, hd, 1);
        T("attn_output.weight", GGML_F32, 2, 2 * hd, TH);
        T("post_attention_norm.weight", GGML_F16, 1, TH, 1);
        T("ffn_norm.weight", GGML_F32, 1, TH, 1);
        T("ffn_gate.weight", GGML_Q4_0, 2, TH, 64);
        if (!(b == B_MISSING && l == 0)) T("ffn_up.weight", GGML_Q4_0, 2, TH, 64);
        T("ffn_down.weight", GGML_BF16, 2, 64, TH);
        T("post_ffw_norm.weight", GGML_F32, 1, TH, 1);
        T("layer_output_scale.weight", GGML_F32, 1, 1, 1);
        if (moe) {
            T("ffn_gate_inp.weight", GGML_F32, 2, TH, TE);
            T("ffn_gate_inp.scale", GGML_F32, 1, TH, 1);
            T("pre_ffw_norm_2.weight", GGML_F32, 1, TH, 1);
            T("post_ffw_norm_1.weight", GGML_F32, 1, TH, 1);
            T("post_ffw_norm_2.weight", GGML_F32, 1, TH, 1);
            T("ffn_down_exps.scale", GGML_F32, 1, TE, 1);
            snprintf(n, sizeof n, "blk.%d.ffn_down_exps.weight", l);
            add_t3(w, n, GGML_Q8_0, 3, TFE, TH, TE);
            add_experts(w, l, b == V_MOE_FUSED);
        }
#undef T
    }
    void *p = gw_serialize(w, size);
    gw_destroy(w);
    return p;
}

/* Loads a tiny model and, if it loads, runs 6 tokens through it (logits to lg[6][64] if not
 * NULL). Returns 0 or -1 with the message in err. */
static int load_tiny(enum tiny b, char *err, size_t errlen, float *lg_out)
{
    size_t size = 0;
    void *bytes = tiny_model(b, &size);
    assert_non_null(bytes);
    struct gguf *g = gguf_open_memory(bytes, size, err, errlen);
    if (!g) fail_msg("tiny model not readable: %s", err);
    struct nb_model m;
    int rc = nb_model_from_gguf(&m, g, err, errlen); /* m owns g now, even on error */
    if (rc == 0) {
        float lg[6 * 64];
        int32_t ids[6] = {2, 17, 5, 63, 17, 40}; /* 6 > window 4: the sliding mask is crossed */
        struct nb_ref *r = nb_ref_create(&m, 8, err, errlen);
        assert_non_null(r);
        assert_int_equal(nb_ref_eval(r, ids, 6, 0, lg, false, err, errlen), 0);
        for (int i = 0; i < 6 * 64; i++)
            assert_true(isfinite(lg[i]) && fabsf(lg[i]) <= 30.0f);
        if (lg_out) memcpy(lg_out, lg, sizeof lg);
        nb_ref_destroy(r);
        nb_model_free(&m);
    }
    free(bytes);
    return rc;
}

static void expect_error(enum tiny b, const char *want)
{
    char err[512] = "";
    assert_int_equal(load_tiny(b, err, sizeof err, NULL), -1);
    printf("# error: %s\n", err);
    if (!strstr(err, want)) fail_msg("expected an error containing \"%s\", got \"%s\"", want, err);
}

static void test_tiny_variants(void **s)
{
    (void)s;
    char err[512] = "";
    static float plain[6 * 64], period[6 * 64], fused[6 * 64], split[6 * 64];
    if (load_tiny(B_NONE, err, sizeof err, plain) != 0) fail_msg("%s", err);
    if (load_tiny(V_PERIOD, err, sizeof err, period) != 0) fail_msg("%s", err);
    assert_memory_equal(plain, period, sizeof plain);
    if (load_tiny(V_MOE_FUSED, err, sizeof err, fused) != 0) fail_msg("%s", err);
    if (load_tiny(V_MOE_SPLIT, err, sizeof err, split) != 0) fail_msg("%s", err);
    assert_memory_equal(fused, split, sizeof fused);
    double d = 0; /* the experts must change something */
    for (int i = 0; i < 6 * 64; i++)
        d += fabs((double)fused[i] - plain[i]);
    printf("# tiny: period == array, split == fused experts; moe vs dense mean diff %.4f\n",
           d / (6 * 64));
    assert_true(d > 0);
}

static void test_errors(void **s)
{
    (void)s;
    expect_error(B_ARCH, "unsupported architecture 'llama' (nibble runs gemma4)");
    expect_error(B_MISSING, "missing tensor blk.0.ffn_up.weight");
    expect_error(B_SHAPE, "blk.1.attn_k.weight: expected shape {32, 32}, got {32, 16}");
    expect_error(B_TYPE, "blk.0.attn_k.weight: unsupported type mxfp4 (supported matrix types: f32, "
                         "f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q2_k, q3_k, q4_k, q5_k, q6_k, "
                         "iq4_nl, iq4_xs)");
    expect_error(B_NORM_TYPE, "blk.1.attn_norm.weight: unsupported type q8_0");
    expect_error(B_KV_ARRAY, "gemma4.attention.head_count_kv: array has 3 entries, expected 2");
    char err[512];
    struct nb_model m;
    assert_int_equal(nb_model_load(&m, "/nonexistent/model.gguf", err, sizeof err), -1);
    printf("# error: %s\n", err);
    nb_model_free(&m); /* harmless after a failed load */
}

/* Bad metadata values give a one-line error, never a crash. */
static void test_bad_metadata(void **s)
{
    (void)s;
    static const struct {
        const char *key;
        uint32_t val;
        const char *want;
    } cases[] = {
        {"block_count", 0, "block_count 0: must be 1..128"},
        {"block_count", 1000, "block_count 1000: must be 1..128"},
        {"block_count", 3, "array has 2 entries, expected 3 (one per layer)"},
        {"attention.head_count", 0, "attention.head_count 0: must be > 0"},
        {"attention.head_count", 3, "blk.0.attn_q.weight: expected shape {32, 48}, got {32, 32}"},
        {"embedding_length", 64, "token_embd.weight: expected shape {64, 64}, got {32, 64}"},
        {"attention.key_length", 0, "differs from key_length"},
        {"rope.dimension_count", 31, "must be even"},
        {"rope.dimension_count", 64, "must be even and at most the head dim"},
        {"attention.shared_kv_layers", 2, "shared_kv_layers 2: must be less than block_count 2"},
        {"attention.shared_kv_layers", 1, "layer 1 shares KV but no earlier full layer"},
        {"attention.sliding_window", 0, "sliding_window is 0"},
        {"feed_forward_length", 0, "gemma4.feed_forward_length: layer 0 has 0"},
        {"expert_count", 4, "missing key gemma4.expert_used_count"},
        {"embedding_length_per_layer_input", 8, "missing tensor per_layer_token_embd.weight"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ov_key = cases[i].key;
        ov_val = cases[i].val;
        printf("# %s = %u: ", ov_key, ov_val);
        expect_error(B_NONE, cases[i].want);
    }
    ov_key = NULL;
}

/* Random byte changes in the metadata and tensor infos of a tiny MoE model: every outcome is an
 * error message or a model the reference runs, never a crash (run it under ASan to be sure). */
static void test_mutations(void **s)
{
    (void)s;
    size_t size = 0;
    uint8_t *orig = tiny_model(V_MOE_FUSED, &size);
    assert_non_null(orig);
    char err[512];
    struct gguf *g0 = gguf_open_memory(orig, size, err, sizeof err);
    assert_non_null(g0);
    size_t head = (size_t)g0->data_offset; /* mutate only before the tensor data */
    gguf_close(g0);
    uint8_t *buf = malloc(size);
    assert_non_null(buf);
    int n_gguf = 0, n_model = 0, n_ok = 0;
    nb_test_seed(7);
    for (int it = 0; it < 400; it++) {
        memcpy(buf, orig, size);
        int nm = 1 + (int)(nb_test_randu() % 3);
        for (int k = 0; k < nm; k++) {
            size_t at = nb_test_randu() % head;
            uint32_t how = nb_test_randu() % 4;
            buf[at] = how == 0   ? 0
                      : how == 1 ? 0xFF
                      : how == 2 ? (uint8_t)(buf[at] + 1)
                                 : (uint8_t)nb_test_randu();
        }
        struct gguf *g = gguf_open_memory(buf, size, err, sizeof err);
        if (!g) {
            n_gguf++;
            continue;
        }
        struct nb_model m;
        if (nb_model_from_gguf(&m, g, err, sizeof err) != 0) {
            n_model++;
            continue;
        }
        n_ok++;
        struct nb_ref *r = nb_ref_create(&m, 4, err, sizeof err);
        if (r) {
            float *lg = malloc(sizeof(float) * 3 * m.cfg.n_vocab);
            int32_t ids[3] = {2, 1, 0};
            assert_non_null(lg);
            assert_int_equal(nb_ref_eval(r, ids, 3, 0, lg, false, err, sizeof err), 0);
            free(lg);
            nb_ref_destroy(r);
        }
        nb_model_free(&m);
    }
    printf("# 400 mutated files: %d rejected by gguf, %d by the model loader, %d ran\n", n_gguf,
           n_model, n_ok);
    free(buf);
    free(orig);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_dense),     cmocka_unit_test(test_config_ple),
        cmocka_unit_test(test_config_moe),       cmocka_unit_test(test_tiny_variants),
        cmocka_unit_test(test_errors),           cmocka_unit_test(test_bad_metadata),
        cmocka_unit_test(test_mutations),        cmocka_unit_test(test_golden_dense),
        cmocka_unit_test(test_golden_dense_f32), cmocka_unit_test(test_golden_dense_q8),
        cmocka_unit_test(test_golden_moe),       cmocka_unit_test(test_golden_moe_f32),
        cmocka_unit_test(test_golden_ple),       cmocka_unit_test(test_golden_ple_f32),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

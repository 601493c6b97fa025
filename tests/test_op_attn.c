/* Tests of the KV cache and the attention op (engine/kvcache.h, engine/op_attn.h) against a CPU
 * reference: f32 softmax attention with the same causal / sliding-window mask, reading K/V
 * rounded through f16 like the cache. Each case is a "session": one attention layer (plus a
 * second layer sharing its cache) fed chunks of tokens at growing positions, each chunk stored
 * then attended; every case runs on the normal device and with NIBBLE_DISABLE=fp16,subgroup,int8,texel.
 * The GPU shape runs them once more, on a device with shaderFloat16 with attn.comp's f16 variant
 * (f16 q.k products) within the same tolerance (a CPU-shaped device keeps f32 by default).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op_attn.h"
#include "quant.h"
#include "testutil.h"

/* ---- fixture: the attention op on the normal and on the forced-fallback context ----------- */

struct cfg {
    struct nb_test_fixture fx; /* first: *state points at both */
    struct nb_op_attn op;
};

static int op_create(void *op, struct vkx_ctx *vk, char *err, size_t errlen)
{
    return nb_op_attn_create(op, vk, err, errlen);
}
static void op_destroy(void *op, struct vkx_ctx *vk) { nb_op_attn_destroy(op, vk); }

static int setup(void **state, bool fallback)
{
    static struct cfg g;
    int rc = nb_test_fixture_setup(state, &g.fx, fallback, &g.op, op_create, op_destroy);
    if (rc != 0 || !*state) return rc;
    printf("# attn (%s): %s reduction, K/V through %s, %s q.k\n",
           fallback ? "fallback" : g.fx.vk->tune_cpu ? "normal" : "gpu shape",
           g.op.subgroup ? "subgroup" : "shared-memory",
           g.op.texel ? "texel views" : "storage buffers", g.op.fp16 ? "f16" : "f32");
    /* the fallback forgoes all three; a CPU device with texel buffers reads K/V through them;
     * f16 arithmetic wherever the device has it, on GPU-shaped devices */
    if (fallback && (g.op.subgroup || g.op.texel || g.op.fp16)) return -1;
    if (!fallback && g.op.fp16 != (!g.fx.vk->tune_cpu && vkx_has(g.fx.vk, VKX_FEAT_FP16) &&
                                   vkx_has(g.fx.vk, VKX_FEAT_HALFCVT)))
        return -1;
    if (!fallback && g.fx.vk->tune_cpu && vkx_has(g.fx.vk, VKX_FEAT_TEXEL) && !g.op.texel)
        return -1;
    return 0;
}
static int setup_normal(void **state) { return setup(state, false); }
static int setup_fallback(void **state) { return setup(state, true); }
/* The GPU shape (NIBBLE_TUNE=gpu: storage buffers, wide splits) with f16 arithmetic where the
 * device has it, also on a CPU device (which keeps f32 by default). */
static int setup_gpu(void **state)
{
    struct vkx_ctx *vk = nb_test_vk();
    bool cpu = vk && vk->tune_cpu;
    if (vk) vk->tune_cpu = false; /* read by nb_op_attn_create only */
    int rc = setup(state, false);
    if (vk) vk->tune_cpu = cpu;
    return rc;
}

/* ---- a session: one layer (and a second one sharing its cache) ---------------------------- */

struct sess {
    uint32_t n_head, n_kv, hd, window, n_ctx, max_batch;
    float scale;
    struct vkx_ctx *vk;
    struct nb_op_attn *op;
    struct nb_kvcache kv;
    float *kh, *vh;  /* [n_ctx][n_kv*hd] every position's K/V so far, rounded through f16 */
    uint32_t n_pos;  /* positions stored so far */
    struct vkx_buffer q, k, v, out, pos, scratch;
    float *hq, *hk, *hv, *hout, *ref; /* host copies, [max_batch][width] */
    size_t bad;
    uint32_t n_split_runs; /* recordings where attention split the keys (3 dispatches) */
};

static void sess_init(struct sess *s, void **state, uint32_t n_head, uint32_t n_kv, uint32_t hd,
                      uint32_t window, uint32_t n_ctx, uint32_t max_batch, float scale)
{
    memset(s, 0, sizeof *s);
    struct cfg *g = *state;
    if (!g) skip();
    s->vk = g->fx.vk;
    s->op = &g->op;
    s->n_head = n_head, s->n_kv = n_kv, s->hd = hd, s->window = window, s->n_ctx = n_ctx;
    s->max_batch = max_batch, s->scale = scale;
    /* layer 0 owns its cache, layer 1 reads layer 0's (KV sharing) */
    struct nb_kv_layer_desc d[2] = {{n_kv, hd, window > 0, 0}, {n_kv, hd, window > 0, 0}};
    char err[512];
    if (nb_kvcache_create(s->vk, &s->kv, 2, d, n_ctx, window ? window : 1, max_batch, err,
                          sizeof err))
        fail_msg("%s", err);
    const size_t qw = (size_t)n_head * hd, kw = (size_t)n_kv * hd;
    s->kh = calloc((size_t)n_ctx * kw, sizeof(float));
    s->vh = calloc((size_t)n_ctx * kw, sizeof(float));
    s->hq = calloc(max_batch * qw, sizeof(float));
    s->hout = calloc(max_batch * qw, sizeof(float));
    s->ref = calloc(max_batch * qw, sizeof(float));
    s->hk = calloc(max_batch * kw, sizeof(float));
    s->hv = calloc(max_batch * kw, sizeof(float));
    assert_non_null(s->kh && s->vh && s->hq && s->hout && s->ref && s->hk && s->hv ? s : NULL);
    assert_int_equal(vkx_buffer_create(s->vk, &s->q, max_batch * qw * 4, VKX_MEM_HOST, err, sizeof err), 0);
    assert_int_equal(vkx_buffer_create(s->vk, &s->out, max_batch * qw * 4, VKX_MEM_HOST, err, sizeof err), 0);
    assert_int_equal(vkx_buffer_create(s->vk, &s->k, max_batch * kw * 4, VKX_MEM_HOST, err, sizeof err), 0);
    assert_int_equal(vkx_buffer_create(s->vk, &s->v, max_batch * kw * 4, VKX_MEM_HOST, err, sizeof err), 0);
    assert_int_equal(vkx_buffer_create(s->vk, &s->pos, max_batch * 4, VKX_MEM_HOST, err, sizeof err), 0);
    size_t sb = nb_op_attn_scratch_bytes(s->op, max_batch, n_head, hd);
    if (sb < 256) sb = 256;
    assert_int_equal(vkx_buffer_create(s->vk, &s->scratch, sb, VKX_MEM_DEVICE, err, sizeof err), 0);
}

static void sess_free(struct sess *s)
{
    struct vkx_buffer *b[] = {&s->q, &s->k, &s->v, &s->out, &s->pos, &s->scratch};
    for (size_t i = 0; i < sizeof b / sizeof *b; i++) vkx_buffer_destroy(s->vk, b[i]);
    nb_kvcache_destroy(s->vk, &s->kv);
    free(s->kh), free(s->vh), free(s->hq), free(s->hout), free(s->ref), free(s->hk), free(s->hv);
    nb_test_check_validation();
}

/* New random q, k, v for T tokens at positions n_pos.., uploaded; the history gets K/V. */
static void sess_inputs(struct sess *s, uint32_t T)
{
    const size_t qw = (size_t)s->n_head * s->hd, kw = (size_t)s->n_kv * s->hd;
    uint32_t pos[64];
    assert_true(T <= s->max_batch && T <= 64 && s->n_pos + T <= s->n_ctx);
    for (size_t i = 0; i < T * qw; i++) s->hq[i] = nb_test_randf();
    for (size_t i = 0; i < T * kw; i++) {
        s->hk[i] = nb_test_randf();
        s->hv[i] = nb_test_randf();
    }
    for (uint32_t t = 0; t < T; t++) {
        pos[t] = s->n_pos + t;
        for (size_t i = 0; i < kw; i++) {
            s->kh[(size_t)pos[t] * kw + i] = nb_f16_to_f32(nb_f32_to_f16(s->hk[t * kw + i]));
            s->vh[(size_t)pos[t] * kw + i] = nb_f16_to_f32(nb_f32_to_f16(s->hv[t * kw + i]));
        }
    }
    vkx_upload(s->vk, &s->q, 0, s->hq, T * qw * 4);
    vkx_upload(s->vk, &s->k, 0, s->hk, T * kw * 4);
    vkx_upload(s->vk, &s->v, 0, s->hv, T * kw * 4);
    vkx_upload(s->vk, &s->pos, 0, pos, T * 4);
}

/* CPU reference for the T tokens at positions n_pos.. (history already holds them). */
static void sess_ref(struct sess *s, uint32_t T)
{
    const size_t qw = (size_t)s->n_head * s->hd, kw = (size_t)s->n_kv * s->hd;
    const uint32_t group = s->n_head / s->n_kv;
    double *sc = malloc(s->n_ctx * sizeof(double));
    for (uint32_t t = 0; t < T; t++) {
        const int qp = (int)(s->n_pos + t);
        const int lo = s->window ? (qp - (int)s->window + 1 > 0 ? qp - (int)s->window + 1 : 0) : 0;
        for (uint32_t h = 0; h < s->n_head; h++) {
            const float *q = &s->hq[t * qw + (size_t)h * s->hd];
            const size_t koff = (size_t)(h / group) * s->hd;
            double mx = -1e300, sum = 0;
            for (int kp = lo; kp <= qp; kp++) {
                const float *k = &s->kh[(size_t)kp * kw + koff];
                double d = 0;
                for (uint32_t i = 0; i < s->hd; i++) d += (double)(q[i] * s->scale) * k[i];
                sc[kp] = d;
                if (d > mx) mx = d;
            }
            for (int kp = lo; kp <= qp; kp++) sum += (sc[kp] = exp(sc[kp] - mx));
            float *o = &s->ref[t * qw + (size_t)h * s->hd];
            for (uint32_t i = 0; i < s->hd; i++) {
                double a = 0;
                for (int kp = lo; kp <= qp; kp++) a += sc[kp] * s->vh[(size_t)kp * kw + koff + i];
                o[i] = (float)(a / sum);
            }
        }
    }
    free(sc);
}

static void sess_check(struct sess *s, uint32_t T, const char *what)
{
    const size_t qw = (size_t)s->n_head * s->hd;
    vkx_download(s->vk, &s->out, 0, s->hout, T * qw * 4);
    sess_ref(s, T);
    char name[128];
    snprintf(name, sizeof name, "%s pos %u+%u", what, s->n_pos, T);
    s->bad += nb_test_compare(name, s->hout, s->ref, T * qw, 2e-4f, 2e-3f);
    s->n_pos += T;
}

/* Records store + attention for T tokens (through layer `layer`: 0 owns, 1 shares). */
static void sess_record(struct sess *s, struct vkx_cmd *c, uint32_t T, uint32_t layer)
{
    const size_t qw = (size_t)s->n_head * s->hd, kw = (size_t)s->n_kv * s->hd;
    struct vkx_view q = {&s->q, 0, T * qw * 4}, out = {&s->out, 0, T * qw * 4};
    struct vkx_view k = {&s->k, 0, T * kw * 4}, v = {&s->v, 0, T * kw * 4};
    struct vkx_view pos = {&s->pos, 0, T * 4};
    vkx_cmd_begin(s->vk, c);
    nb_op_kv_store(s->op, s->vk, c, &s->kv, 0, k, v, pos, T);
    vkx_cmd_barrier(c); /* the cache holds the chunk before it attends */
    nb_op_attn(s->op, s->vk, c, &s->kv, layer, q, out, pos, T, s->n_head, s->scale,
               vkx_whole(&s->scratch));
    vkx_cmd_end(s->vk, c);
    s->n_split_runs += c->n_dispatches == 3;
}

/* Runs chunks of the given sizes (0 ends the list). */
static void sess_run(struct sess *s, const uint32_t *chunks, const char *what)
{
    struct vkx_cmd c;
    vkx_cmd_create(s->vk, &c, 8, false);
    for (uint32_t i = 0; chunks[i]; i++) {
        sess_inputs(s, chunks[i]);
        sess_record(s, &c, chunks[i], i % 2);
        vkx_cmd_submit_wait(s->vk, &c);
        sess_check(s, chunks[i], what);
    }
    vkx_cmd_destroy(s->vk, &c);
    nb_test_check_validation();
}

/* ---- cases -------------------------------------------------------------------------------- */

/* Decode, full attention, GQA 4:2, head_dim 64: contexts 1..40, split-K from 32 keys on. */
static void test_decode_full(void **state)
{
    struct sess s;
    sess_init(&s, state, 4, 2, 64, 0, 64, 1, 0.125f);
    uint32_t saved = s.op->min_chunk;
    s.op->min_chunk = 16;
    uint32_t chunks[41];
    for (int i = 0; i < 40; i++) chunks[i] = 1;
    chunks[40] = 0;
    sess_run(&s, chunks, "decode_full");
    assert_true(s.n_split_runs > 0);
    s.op->min_chunk = saved;
    assert_int_equal(s.bad, 0);
    sess_free(&s);
}

/* A cache without texel views (as on a device whose texel limit the cache exceeds, or out of
 * memory for them): nb_op_attn_prepare builds a texel-reading op's storage-buffer pipelines,
 * which give the same results. */
static void test_decode_no_views(void **state)
{
    struct sess s;
    sess_init(&s, state, 4, 2, 64, 0, 64, 1, 0.125f);
    struct nb_kv_layer *L = &s.kv.layers[0];
    VkBufferView kt = L->k.texel, vt = L->v.texel; /* put back before the cache goes */
    L->k.texel = L->v.texel = VK_NULL_HANDLE;
    char err[256];
    assert_int_equal(nb_op_attn_prepare(s.op, s.vk, &s.kv, err, sizeof err), 0);
    uint32_t chunks[9] = {1, 1, 1, 1, 1, 1, 1, 1, 0};
    sess_run(&s, chunks, "decode_no_views");
    assert_int_equal(s.bad, 0);
    assert_true(s.op->attn[0][0].pipe != VK_NULL_HANDLE); /* built by prepare, or from the start */
    L->k.texel = kt, L->v.texel = vt;
    sess_free(&s);
}

/* Prefill chunks after earlier chunks, sliding window 16, GQA 4:1, head_dim 128: 112 positions
 * through a ring of 56 slots. */
static void test_prefill_swa(void **state)
{
    struct sess s;
    sess_init(&s, state, 4, 1, 128, 16, 256, 40, 1.0f / sqrtf(128.0f));
    const uint32_t chunks[] = {31, 33, 1, 40, 7, 0};
    sess_run(&s, chunks, "prefill_swa");
    assert_int_equal(s.bad, 0);
    sess_free(&s);
}

/* Decode with a sliding window, GQA 8:1, head_dim 256: 100+ positions through a ring of 20
 * slots, single tokens and batches of 4 (16 keys: no split). */
static void test_decode_swa(void **state)
{
    struct sess s;
    sess_init(&s, state, 8, 1, 256, 16, 512, 4, 1.0f / 16.0f);
    uint32_t chunks[80], n = 0;
    for (int i = 0; i < 70; i++) chunks[n++] = 1;
    for (int i = 0; i < 9; i++) chunks[n++] = i % 3 ? 4 : 3;
    chunks[n] = 0;
    sess_run(&s, chunks, "decode_swa");
    assert_int_equal(s.bad, 0);
    sess_free(&s);
}

/* head_dim 512 with few heads (2:1), full attention: prefill, decode, prefill, all split-K
 * (the prefill chunks over 16-row workgroups). */
static void test_hd512(void **state)
{
    struct sess s;
    sess_init(&s, state, 2, 1, 512, 0, 128, 33, 1.0f / 32.0f);
    uint32_t saved = s.op->min_chunk;
    s.op->min_chunk = 16;
    const uint32_t chunks[] = {33, 1, 1, 1, 31, 1, 0};
    sess_run(&s, chunks, "hd512");
    assert_true(s.n_split_runs > 0);
    s.op->min_chunk = saved;
    assert_int_equal(s.bad, 0);
    sess_free(&s);
}

/* A decode step recorded once and submitted 100 times; only the contents of the pos buffer and
 * the inputs change. Sliding window 40 (a ring of 41 slots wraps twice), GQA 4:2, head_dim 128,
 * keys split in two. */
static void test_replay(void **state)
{
    struct sess s;
    sess_init(&s, state, 4, 2, 128, 40, 128, 1, 1.0f / sqrtf(128.0f));
    uint32_t saved = s.op->min_chunk;
    s.op->min_chunk = 16;
    struct vkx_cmd c;
    vkx_cmd_create(s.vk, &c, 8, false);
    sess_record(&s, &c, 1, 1);
    for (int i = 0; i < 100; i++) {
        sess_inputs(&s, 1);
        vkx_cmd_submit_wait(s.vk, &c);
        sess_check(&s, 1, "replay");
    }
    assert_int_equal(s.n_split_runs, 1);
    vkx_cmd_destroy(s.vk, &c);
    s.op->min_chunk = saved;
    assert_int_equal(s.bad, 0);
    sess_free(&s);
}

/* Cache creation: sizes, ring slots, refusals with a message. */
static void test_kvcache(void **st)
{
    (void)st;
    struct vkx_ctx *vk = nb_test_vk();
    if (!vk) skip();
    char err[512];
    struct nb_kvcache kv;
    /* E2B-like: sliding, full, then two layers sharing them */
    struct nb_kv_layer_desc d[4] = {{1, 256, true, 0}, {1, 512, false, 1}, {1, 256, true, 0},
                                    {1, 512, false, 1}};
    assert_int_equal(nb_kvcache_create(vk, &kv, 4, d, 1000, 512, 64, err, sizeof err), 0);
    assert_int_equal(kv.layers[0].n_slots, 576);
    assert_int_equal(kv.layers[1].n_slots, 1000);
    assert_int_equal(nb_kvcache_bytes(&kv), 2ull * 2 * (576 * 256 + 1000 * 512));
    assert_ptr_equal(nb_kvcache_src(&kv, 3), &kv.layers[1]);
    nb_kvcache_destroy(vk, &kv);
    /* a short context caps the ring */
    assert_int_equal(nb_kvcache_create(vk, &kv, 4, d, 100, 512, 64, err, sizeof err), 0);
    assert_int_equal(kv.layers[0].n_slots, 100);
    nb_kvcache_destroy(vk, &kv);

    struct nb_kv_layer_desc bad_hd[1] = {{2, 48, false, 0}};
    assert_int_equal(nb_kvcache_create(vk, &kv, 1, bad_hd, 64, 0, 1, err, sizeof err), -1);
    printf("# refused: %s\n", err);
    struct nb_kv_layer_desc bad_share[2] = {{1, 256, true, 0}, {1, 512, false, 0}};
    assert_int_equal(nb_kvcache_create(vk, &kv, 2, bad_share, 64, 16, 1, err, sizeof err), -1);
    printf("# refused: %s\n", err);
    uint64_t too_many = vk->caps.max_storage_range / (8 * 512 * 2) + 1;
    struct nb_kv_layer_desc big[1] = {{8, 512, false, 0}};
    if (too_many < 0xffffffffu) {
        assert_int_equal(nb_kvcache_create(vk, &kv, 1, big, (uint32_t)too_many, 0, 1, err,
                                           sizeof err), -1);
        printf("# refused: %s\n", err);
        assert_non_null(strstr(err, "storage range"));
    }
    nb_test_check_validation();
}

int main(void)
{
    const struct CMUnitTest normal[] = {
        cmocka_unit_test(test_kvcache),    cmocka_unit_test(test_decode_full),
        cmocka_unit_test(test_prefill_swa), cmocka_unit_test(test_decode_swa),
        cmocka_unit_test(test_hd512),      cmocka_unit_test(test_replay),
        cmocka_unit_test(test_decode_no_views),
    };
    const struct CMUnitTest fallback[] = {
        cmocka_unit_test(test_decode_full), cmocka_unit_test(test_prefill_swa),
        cmocka_unit_test(test_decode_swa),  cmocka_unit_test(test_hd512),
        cmocka_unit_test(test_replay),
    };
    int rc = cmocka_run_group_tests_name("normal", normal, setup_normal, nb_test_fixture_teardown);
    rc |= cmocka_run_group_tests_name("fallback", fallback, setup_fallback,
                                      nb_test_fixture_teardown);
    rc |= cmocka_run_group_tests_name("gpu-shape", fallback, setup_gpu, nb_test_fixture_teardown);
    nb_test_vk_done();
    return rc;
}

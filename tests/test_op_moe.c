/* test_op_moe: nb_op_matmul_id (MoE prefill, tokens grouped by expert on the device) against a
 * CPU reference and against nb_op_matvec_id, for Q4_0, Q8_0, F16 and F32 experts and the
 * K-quant / legacy types MoE files carry (Q4_K, Q5_K, Q6_K, Q5_0, BF16), awkward token
 * counts (1, 9, 31, 33, 100), 4..16 experts, 1..4 slots, K 64..288, x shared or per slot,
 * accumulate, forced weight splits, ids past the expert count and lists longer than the token
 * count, in the normal and the forced-fallback (fp16,subgroup,int8,texel disabled) configuration. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gtensor.h"
#include "op_matmul.h"

struct cfg {
    struct nb_test_fixture fx; /* first: *state points at both */
    struct nb_op_matmul op;
};

static void dev_buf(struct vkx_ctx *vk, struct vkx_buffer *b, size_t bytes, const void *init)
{
    char err[256];
    assert_int_equal(vkx_buffer_create(vk, b, bytes, VKX_MEM_DEVICE, err, sizeof err), 0);
    if (init) vkx_upload(vk, b, 0, init, bytes);
}

/* ids: distinct experts per token (as the router gives them); dup: every pair picks expert 0
 * (lists longer than n_tokens); oob: some pairs pick an expert past E (rows left untouched). */
enum idmode { DISTINCT, DUP, OOB };

struct moecase {
    enum ggml_type type;
    uint32_t K, M, E, ntok, ns;
    bool per_slot, acc, split;
    enum idmode im;
};

/* The expert weight types under test. */
static const enum ggml_type types[] = {GGML_Q4_0, GGML_Q8_0, GGML_F32,  GGML_F16, GGML_Q4_K,
                                       GGML_Q5_K, GGML_Q6_K, GGML_Q5_0, GGML_BF16};

/* NIBBLE_TEST_TYPES=q4_0,q4_k,...: only those types' cases (the same cases as in a whole run;
 * .ci/sanitize runs a few under ASan). Unset: all. */
static bool picked(enum ggml_type t)
{
    const char *only = getenv("NIBBLE_TEST_TYPES"), *n = ggml_type_name(t);
    size_t len = strlen(n);
    for (const char *h = only; h && (h = strstr(h, n)) != NULL; h += len)
        if ((h == only || h[-1] == ',') && (h[len] == 0 || h[len] == ','))
            return true;
    return !only;
}

static void check(struct cfg *g, const struct moecase *mc)
{
    struct vkx_ctx *vk = g->fx.vk;
    uint32_t K = mc->K, M = mc->M, E = mc->E, nt = mc->ntok, ns = mc->ns, np = nt * ns;
    void *raw;
    float *wref;
    nb_test_weights(mc->type, K, (uint64_t)M * E, &raw, &wref);
    char err[256];
    struct nb_gtensor w;
    uint64_t ne[4] = {K, M, E, 1};
    uint64_t mp = mc->split ? nb_gtensor_row_bytes(mc->type, K) * M * 3 : 0;
    assert_int_equal(nb_gtensor_from_host(vk, &w, mc->type, ne, raw, mp, err, sizeof err), 0);
    if (mc->split) assert_true(w.data.n > 1);

    uint32_t *ids = malloc(sizeof(uint32_t) * np);
    for (uint32_t t = 0; t < nt; t++) {
        uint32_t perm[16];
        for (uint32_t e = 0; e < E; e++)
            perm[e] = e;
        for (uint32_t s = 0; s < ns; s++) { /* partial Fisher-Yates: distinct per token */
            uint32_t j = s + nb_test_randu() % (E - s), tmp = perm[s];
            perm[s] = perm[j];
            perm[j] = tmp;
            ids[t * ns + s] = mc->im == DUP ? 0 : perm[s];
        }
        if (mc->im == OOB && t % 3 == 1) ids[t * ns + (t / 3) % ns] = E + t;
    }
    uint32_t nx = mc->per_slot ? np : nt;
    size_t ny = (size_t)np * M;
    float *x = malloc(sizeof(float) * K * nx), *y0 = malloc(sizeof(float) * ny);
    float *ref = malloc(sizeof(float) * ny), *got = malloc(sizeof(float) * ny);
    float *got_mv = malloc(sizeof(float) * ny);
    for (size_t i = 0; i < (size_t)K * nx; i++)
        x[i] = nb_test_randf();
    for (size_t i = 0; i < ny; i++)
        y0[i] = nb_test_randf();
    double sabs = 0; /* the largest sum |w x| of an output */
    for (uint32_t pr = 0; pr < np; pr++) {
        const float *xv = x + (size_t)(mc->per_slot ? pr : pr / ns) * K;
        for (uint32_t m = 0; m < M; m++) {
            float *r = &ref[(size_t)pr * M + m];
            if (ids[pr] >= E) { /* untouched */
                *r = y0[(size_t)pr * M + m];
                continue;
            }
            double s = 0, a = 0;
            const float *wr = wref + ((size_t)ids[pr] * M + m) * K;
            for (uint32_t k = 0; k < K; k++) {
                s += (double)wr[k] * xv[k];
                a += fabs((double)wr[k] * xv[k]);
            }
            if (a > sabs) sabs = a;
            *r = (float)s + (mc->acc ? y0[(size_t)pr * M + m] : 0.0f);
        }
    }

    struct vkx_buffer ib, xb, yb, yb2, sb;
    dev_buf(vk, &ib, sizeof(uint32_t) * np, ids);
    dev_buf(vk, &xb, sizeof(float) * K * nx, x);
    dev_buf(vk, &yb, sizeof(float) * ny, y0);
    dev_buf(vk, &yb2, sizeof(float) * ny, y0);
    dev_buf(vk, &sb, nb_op_matmul_id_scratch_bytes(E, nt, ns), NULL);
    struct vkx_cmd c;
    vkx_cmd_create(vk, &c, 64, false);
    vkx_cmd_begin(vk, &c);
    nb_op_matmul_id(&g->op, vk, &c, &w, vkx_whole(&xb), vkx_whole(&yb), vkx_whole(&ib),
                    vkx_whole(&sb), nt, ns, mc->per_slot, 0, 0, mc->acc);
    nb_op_matvec_id(&g->op, vk, &c, &w, vkx_whole(&xb), vkx_whole(&yb2), vkx_whole(&ib), nt, ns,
                    mc->per_slot, 0, 0, mc->acc);
    vkx_cmd_end(vk, &c);
    vkx_cmd_submit_wait(vk, &c);
    vkx_download(vk, &yb, 0, got, sizeof(float) * ny);
    vkx_download(vk, &yb2, 0, got_mv, sizeof(float) * ny);
    char what[160];
    snprintf(what, sizeof what, "matmul_id %s K%u M%u E%u tok%u k%u%s%s%s%s",
             ggml_type_name(mc->type), K, M, E, nt, ns, mc->per_slot ? " per-slot" : "",
             mc->acc ? " acc" : "", mc->split ? " split" : "",
             mc->im == DUP ? " dup" : mc->im == OOB ? " oob" : "");
    /* matmul_id with f16 tiles (op.fp16; quantized and F16 weights) rounds each weight to a
     * half: within 2^-11 of sum |w x| more (test_op_fp16 checks that bound on its own) */
    float tol = 2e-3f;
    if (g->op.fp16 && mc->type != GGML_F32 && mc->type != GGML_BF16) tol += (float)(sabs / 2048.0);
    size_t bad = nb_test_compare(what, got, ref, ny, tol, 1e-4f);
    char what2[176];
    snprintf(what2, sizeof what2, "%s vs matvec_id", what);
    bad += nb_test_compare(what2, got, got_mv, ny, tol, 1e-4f);
    vkx_cmd_destroy(vk, &c);
    vkx_buffer_destroy(vk, &ib);
    vkx_buffer_destroy(vk, &xb);
    vkx_buffer_destroy(vk, &yb);
    vkx_buffer_destroy(vk, &yb2);
    vkx_buffer_destroy(vk, &sb);
    nb_gtensor_destroy(vk, &w);
    free(raw), free(wref), free(ids), free(x), free(y0), free(ref), free(got), free(got_mv);
    nb_test_check_validation();
    assert_int_equal(bad, 0);
}

static void test_matmul_id(void **state)
{
    struct cfg *g = *state;
    if (!g) skip();
    nb_test_seed(11);
    static const uint32_t toks[5] = {1, 9, 31, 33, 100};
    static const uint32_t Ks[4] = {64, 96, 288, 160};
    static const uint32_t Ms[4] = {33, 31, 70, 1};
    static const uint32_t Es[4] = {4, 16, 7, 5};
    int i = 0;
    for (int ti = 0; ti < (int)(sizeof types / sizeof *types); ti++)
        for (int ni = 0; ni < 5; ni++, i++) {
            if (!picked(types[ti])) continue;
            struct moecase mc = {.type = types[ti], .ntok = toks[ni]};
            mc.K = Ks[(ti + ni) % 4];
            if (mc.type == GGML_F32 || mc.type == GGML_F16 || mc.type == GGML_BF16)
                mc.K += (uint32_t)(ni % 2) * 2 + 2;
            if (ggml_blck_size(mc.type) == 256) mc.K = 256 * (1 + (uint32_t)(ni % 2));
            mc.M = Ms[(i * 3) % 4];
            mc.E = Es[(i + ti) % 4];
            mc.ns = 1 + (uint32_t)(i % 4);
            if (mc.ns > mc.E) mc.ns = mc.E;
            mc.per_slot = i % 2;
            mc.acc = (i / 2) % 2;
            mc.split = i % 5 == 3;
            mc.im = i % 7 == 2 ? OOB : DISTINCT;
            check(g, &mc);
        }
    /* every pair on expert 0: lists longer than the token count (strided grid y) */
    struct moecase dup = {.type = GGML_Q4_0, .K = 64, .M = 70, .E = 4, .ntok = 100, .ns = 3,
                          .im = DUP};
    if (picked(dup.type)) check(g, &dup);
}

static int op_create(void *op, struct vkx_ctx *vk, char *err, size_t errlen)
{
    uint32_t mask = NB_MM_EXPERTS; /* only the types under test: fewer pipelines to build */
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
        if (picked(types[i])) mask |= NB_MM_TYPE_BIT(types[i]);
    return nb_op_matmul_create_ex(op, vk, -1, mask, err, errlen);
}
static void op_destroy(void *op, struct vkx_ctx *vk) { nb_op_matmul_destroy(op, vk); }

static int setup(void **state, bool fallback)
{
    static struct cfg g;
    return nb_test_fixture_setup(state, &g.fx, fallback, &g.op, op_create, op_destroy);
}
static int setup_normal(void **state) { return setup(state, false); }
static int setup_fallback(void **state) { return setup(state, true); }

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_matmul_id)};
    int rc = cmocka_run_group_tests_name("normal", tests, setup_normal, nb_test_fixture_teardown);
    rc |= cmocka_run_group_tests_name("fallback", tests, setup_fallback, nb_test_fixture_teardown);
    nb_test_vk_done();
    return rc;
}

/* test_op_matmul: GPU weight products (matvec, matmul, embed, MoE matvec_id) against CPU
 * references, for every weight type, awkward shapes, forced weight splits, plain rows and row
 * tiles, in the normal and the forced-fallback (NIBBLE_DISABLE=fp16,subgroup,int8,texel)
 * configuration. The groups run twice: on F32, F16, Q4_0 and Q8_0 (the types with their own
 * shader code), then on the types read through quant_unit.glsl (BF16, Q4_1 ... IQ4_XS), each
 * time with only those types' pipelines built: every such type in the normal group, a type of
 * each reader family (types_cover) in the others (NIBBLE_TEST_TYPES=q6_k,bf16,...: those types
 * in every group). Building the pipelines is nearly all a group costs on lavapipe. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gtensor.h"
#include "nb_shaders.h"
#include "op_matmul.h"

struct cfg {
    struct nb_test_fixture fx; /* first: *state points at both */
    struct nb_op_matmul op;
};

static void rand_vec(float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        v[i] = nb_test_randf();
}

/* Row tiles (log2) the weights of matvec, matvec_id and embed checks are uploaded in: the tests
 * run with plain rows and with tiles of 8, 32 and 64 rows (lavapipe's own: 8 lanes x 8 rows; the
 * CPU-shaped matvec loads a thread's 8 scales at once from any of them), whatever the op
 * prefers. */
static uint32_t wtile;

/* An x buffer as the forward pass makes them: `bytes` at an offset (a whole texel, and the
 * storage-buffer alignment), with a texel view when the op reads x through one. */
static struct vkx_view x_buf(struct cfg *g, struct vkx_buffer *b, size_t bytes, const void *init)
{
    struct vkx_ctx *vk = g->fx.vk;
    VkDeviceSize off = vk->caps.min_storage_align > 16 ? vk->caps.min_storage_align : 16;
    char err[256];
    VkDeviceSize size = (off + bytes + 15) / 16 * 16; /* whole texels */
    assert_int_equal(vkx_buffer_create(vk, b, size, VKX_MEM_DEVICE, err, sizeof err), 0);
    if (init) vkx_upload(vk, b, off, init, bytes);
    if (g->op.texel) assert_int_equal(vkx_buffer_texel_view(vk, b, err, sizeof err), 0);
    struct vkx_view v = {b, off, bytes};
    return v;
}

enum which { MATVEC, MATMUL };

/* y = W x (+ y0 when acc) for one configuration, checked against the CPU. */
static void check_mul(struct cfg *g, enum which op, enum ggml_type type, uint32_t K, uint32_t M,
                      uint32_t ntok, bool acc, uint64_t max_piece)
{
    struct vkx_ctx *vk = g->fx.vk;
    void *raw;
    float *wref;
    nb_test_weights(type, K, M, &raw, &wref);
    char err[256];
    struct nb_gtensor w;
    uint64_t ne[4] = {K, M, 1, 1};
    int rc = nb_gtensor_from_host_tiled(vk, &w, type, ne, raw, max_piece,
                                        op == MATVEC ? wtile : 0, err, sizeof err);
    if (rc) printf("# %s\n", err);
    assert_int_equal(rc, 0);
    if (max_piece) assert_true(w.data.n > 1);

    float *x = malloc(sizeof(float) * K * ntok), *y0 = malloc(sizeof(float) * M * ntok);
    float *ref = malloc(sizeof(float) * M * ntok), *got = malloc(sizeof(float) * M * ntok);
    double *dref = malloc(sizeof(double) * M * ntok), *mag = malloc(sizeof(double) * M * ntok);
    rand_vec(x, (size_t)K * ntok);
    rand_vec(y0, (size_t)M * ntok);
    nb_test_mul_ref(wref, x, acc ? y0 : NULL, K, M, ntok, dref, mag);
    double sabs = 0; /* the largest sum |w x| of an output */
    for (size_t i = 0; i < (size_t)M * ntok; i++) {
        ref[i] = (float)dref[i];
        if (mag[i] > sabs) sabs = mag[i];
    }
    struct vkx_buffer xb, yb;
    struct vkx_view xv = x_buf(g, &xb, sizeof(float) * K * ntok, x);
    nb_test_dev_buf(vk, &yb, sizeof(float) * M * ntok, y0);
    struct vkx_cmd c;
    vkx_cmd_create(vk, &c, 64, false);
    vkx_cmd_begin(vk, &c);
    if (op == MATVEC)
        nb_op_matvec(&g->op, vk, &c, &w, xv, vkx_whole(&yb), ntok, 0, 0, acc);
    else
        nb_op_matmul(&g->op, vk, &c, &w, xv, vkx_whole(&yb), ntok, 0, 0, acc);
    vkx_cmd_end(vk, &c);
    vkx_cmd_submit_wait(vk, &c);
    vkx_download(vk, &yb, 0, got, sizeof(float) * M * ntok);
    char what[128];
    snprintf(what, sizeof what, "%s %s K=%u M=%u n=%u%s%s tile %u",
             op == MATVEC ? "matvec" : "matmul", ggml_type_name(type), K, M, ntok,
             acc ? " acc" : "", w.data.n > 1 ? " split" : "", 1u << w.tile_shift);
    /* a matmul with f16 tiles (op.fp16; quantized and F16 weights) rounds each weight to a half:
     * within 2^-11 of sum |w x| more (test_op_fp16 checks that bound on its own) */
    float tol = 2e-4f * sqrtf((float)K);
    if (op != MATVEC && g->op.fp16 && type != GGML_F32 && type != GGML_BF16)
        tol += (float)(sabs / 2048.0);
    size_t bad = nb_test_compare(what, got, ref, (size_t)M * ntok, tol, 1e-4f);
    vkx_cmd_destroy(vk, &c);
    vkx_buffer_destroy(vk, &xb);
    vkx_buffer_destroy(vk, &yb);
    nb_gtensor_destroy(vk, &w);
    free(raw), free(wref), free(x), free(y0), free(ref), free(got), free(dref), free(mag);
    nb_test_check_validation();
    assert_int_equal(bad, 0);
}

/* The types under test (main picks one of the two lists) and how many. */
static const enum ggml_type *types;
static int ntypes;
static const enum ggml_type types_own[] = {GGML_Q4_0, GGML_Q8_0, GGML_F16, GGML_F32};
static const enum ggml_type types_unit[] = {GGML_Q6_K,  GGML_Q4_K,   GGML_Q5_K, GGML_Q2_K,
                                            GGML_Q3_K,  GGML_IQ4_XS, GGML_Q4_1, GGML_Q5_0,
                                            GGML_Q5_1,  GGML_IQ4_NL, GGML_BF16};

/* A type of each quant_unit.glsl reader family, for the groups after normal-unit: K-quants with
 * high bits and 8 scale heads (Q6_K), with minimums (Q4_K), without the masked one-token path
 * (Q3_K); 32-element blocks with high bits (Q5_0); the lookup table in 256-element blocks
 * (IQ4_XS); the float path (BF16). The others run through these shapes end to end in
 * test_types_golden: every type with a GPU's kernel shapes (types/dense, NIBBLE_TUNE=gpu), Q5_K,
 * Q5_1, Q4_1, Q2_K and IQ4_NL with the forced fallbacks (types/ple). */
static const enum ggml_type types_cover[] = {GGML_Q6_K, GGML_Q4_K,   GGML_Q3_K,
                                             GGML_Q5_0, GGML_IQ4_XS, GGML_BF16};

static bool is_q(enum ggml_type t)
{
    return t != GGML_F32 && t != GGML_F16 && t != GGML_BF16;
}

static void test_matvec(void **state)
{
    struct cfg *g = *state;
    if (!g) skip();
    nb_test_seed(1);
    for (int ti = 0; ti < 4 * ntypes; ti++) {
        static const uint32_t tiles[4] = {0, 3, 5, 6};
        wtile = tiles[ti / ntypes];
        enum ggml_type t = types[ti % ntypes];
        bool q = is_q(t);
        if (wtile && !q) continue; /* only quantized weights come in tiles */
        check_mul(g, MATVEC, t, nb_test_klen(t, 1, 2), 1, 1, false, 0);
        check_mul(g, MATVEC, t, nb_test_klen(t, 3, 34), 31, 1, false, 0);
        check_mul(g, MATVEC, t, nb_test_klen(t, 10, 66), 33, 3, false, 0);
        check_mul(g, MATVEC, t, nb_test_klen(t, 8, 130), 67, 8, true, 0);
        check_mul(g, MATVEC, t, nb_test_klen(t, 5, 62), 29, 11, false, 0); /* 8 + 3 tokens */
        if (t == GGML_F32) {
            check_mul(g, MATVEC, t, 1, 5, 2, false, 0);
            check_mul(g, MATVEC, t, 33, 31, 1, false, 0);
        }
        /* forced split: pieces of a few rows (whole tiles) */
        uint64_t rb = nb_gtensor_row_bytes(t, nb_test_klen(t, 3, 34));
        check_mul(g, MATVEC, t, nb_test_klen(t, 3, 34), wtile == 6 ? 150 : 53, 2, false,
                  rb * (wtile >= 5 ? 1u << wtile : 16));
        /* every token-count variant, whatever chunk this device prefers */
        uint32_t chunk = g->op.mv_chunk;
        g->op.mv_chunk = NB_MATVEC_MAX_TOKENS;
        check_mul(g, MATVEC, t, nb_test_klen(t, 2, 18), 37, 6, true, 0);
        check_mul(g, MATVEC, t, nb_test_klen(t, 2, 18), 37, 19, false, 0);
        g->op.mv_chunk = chunk;
    }
    wtile = 0;
}

static void test_matmul(void **state)
{
    struct cfg *g = *state;
    if (!g) skip();
    nb_test_seed(2);
    for (int ti = 0; ti < ntypes; ti++) {
        enum ggml_type t = types[ti];
        check_mul(g, MATMUL, t, nb_test_klen(t, 1, 2), 1, 1, false, 0);
        check_mul(g, MATMUL, t, nb_test_klen(t, 3, 34), 33, 9, false, 0);
        check_mul(g, MATMUL, t, nb_test_klen(t, 2, 30), 70, 31, true, 0);
        check_mul(g, MATMUL, t, nb_test_klen(t, 8, 66), 130, 67, false, 0);
        if (t == GGML_F32) check_mul(g, MATMUL, t, 33, 65, 65, false, 0);
        uint64_t rb = nb_gtensor_row_bytes(t, nb_test_klen(t, 3, 34));
        check_mul(g, MATMUL, t, nb_test_klen(t, 3, 34), 150, 17, false, rb * 64);
    }
}

/* A 300000-row table: more row groups than maxComputeWorkGroupCount[0] on small devices. */
static void test_matvec_big_rows(void **state)
{
    struct cfg *g = *state;
    if (!g || types != types_own) skip();
    nb_test_seed(3);
    wtile = g->op.tile_shift;
    check_mul(g, MATVEC, GGML_Q4_0, 32, 300000, 1, false, 0);
    wtile = 0;
}

static void test_embed(void **state)
{
    struct cfg *g = *state;
    if (!g) skip();
    struct vkx_ctx *vk = g->fx.vk;
    nb_test_seed(4);
    for (int ti = 0; ti < ntypes; ti++) {
        enum ggml_type t = types[ti];
        uint32_t K = nb_test_klen(t, 3, 66), rows = 37, ntok = 7;
        for (int mode = 0; mode < 4; mode++) { /* bit 0: split, bit 1: row tiles */
            bool split = mode & 1;
            void *raw;
            float *wref;
            nb_test_weights(t, K, rows, &raw, &wref);
            char err[256];
            struct nb_gtensor e;
            uint64_t ne[4] = {K, rows, 1, 1};
            uint64_t mp = split ? nb_gtensor_row_bytes(t, K) * 8 : 0;
            assert_int_equal(nb_gtensor_from_host_tiled(vk, &e, t, ne, raw, mp, mode & 2 ? 3 : 0,
                                                        err, sizeof err),
                             0);
            uint32_t ids[7] = {0, 36, 5, 8, 36, 17, 1000}; /* 1000: past the table -> zeros */
            uint32_t stride = K + 3;
            float *ref = calloc((size_t)stride * ntok, sizeof(float));
            float *got = malloc(sizeof(float) * stride * ntok);
            for (uint32_t i = 0; i < ntok; i++)
                for (uint32_t k = 0; k < K; k++)
                    ref[i * stride + k] = ids[i] < rows ? wref[ids[i] * K + k] * 1.5f : 0.0f;
            struct vkx_buffer ib, ob;
            nb_test_dev_buf(vk, &ib, sizeof ids, ids);
            nb_test_dev_buf(vk, &ob, sizeof(float) * stride * ntok, ref); /* gap columns keep ref */
            struct vkx_cmd c;
            vkx_cmd_create(vk, &c, 64, false);
            vkx_cmd_begin(vk, &c);
            nb_op_embed(&g->op, vk, &c, &e, vkx_whole(&ib), vkx_whole(&ob), ntok, stride, 1.5f);
            vkx_cmd_end(vk, &c);
            vkx_cmd_submit_wait(vk, &c);
            vkx_download(vk, &ob, 0, got, sizeof(float) * stride * ntok);
            size_t bad = nb_test_compare("embed", got, ref, (size_t)stride * ntok, 1e-6f, 1e-6f);
            vkx_cmd_destroy(vk, &c);
            vkx_buffer_destroy(vk, &ib);
            vkx_buffer_destroy(vk, &ob);
            nb_gtensor_destroy(vk, &e);
            free(raw), free(wref), free(ref), free(got);
            nb_test_check_validation();
            assert_int_equal(bad, 0);
        }
    }
}

static void test_matvec_id(void **state)
{
    struct cfg *g = *state;
    if (!g) skip();
    struct vkx_ctx *vk = g->fx.vk;
    nb_test_seed(5);
    for (int ti = 0; ti < ntypes; ti++) {
        enum ggml_type t = types[ti];
        bool q = is_q(t);
        uint32_t K = nb_test_klen(t, 2, 34), E = 5, ntok = 3, ns = 2;
        /* bit 0: x per slot, bit 1: split, bit 2: row tiles of 8 (experts of 40 rows) */
        for (int mode = 0; mode < 8; mode++) {
            bool per_slot = mode & 1;
            uint32_t M = mode & 4 ? 40 : 33;
            void *raw;
            float *wref;
            nb_test_weights(t, K, (uint64_t)M * E, &raw, &wref);
            char err[256];
            struct nb_gtensor w;
            uint64_t ne[4] = {K, M, E, 1};
            uint64_t mp = (mode & 2) ? nb_gtensor_row_bytes(t, K) * M * 2 : 0;
            assert_int_equal(nb_gtensor_from_host_tiled(vk, &w, t, ne, raw, mp, mode & 4 ? 3 : 0,
                                                        err, sizeof err),
                             0);
            if (mode & 2) assert_int_equal(w.data.n, 3);
            if (mode & 4) assert_int_equal(w.tile_shift, q ? 3 : 0);
            uint32_t ids[6] = {4, 0, 2, 2, 1, 3};
            uint32_t nx = per_slot ? ntok * ns : ntok;
            float *x = malloc(sizeof(float) * K * nx);
            rand_vec(x, (size_t)K * nx);
            float *ref = malloc(sizeof(float) * M * ntok * ns);
            float *got = malloc(sizeof(float) * M * ntok * ns);
            for (uint32_t pr = 0; pr < ntok * ns; pr++) {
                const float *xv = x + (size_t)(per_slot ? pr : pr / ns) * K;
                for (uint32_t m = 0; m < M; m++) {
                    double s = 0;
                    const float *wr = wref + ((size_t)ids[pr] * M + m) * K;
                    for (uint32_t k = 0; k < K; k++)
                        s += (double)wr[k] * xv[k];
                    ref[pr * M + m] = (float)s;
                }
            }
            struct vkx_buffer ib, xb, yb;
            nb_test_dev_buf(vk, &ib, sizeof ids, ids);
            struct vkx_view xv = x_buf(g, &xb, sizeof(float) * K * nx, x);
            nb_test_dev_buf(vk, &yb, sizeof(float) * M * ntok * ns, NULL);
            struct vkx_cmd c;
            vkx_cmd_create(vk, &c, 64, false);
            vkx_cmd_begin(vk, &c);
            nb_op_matvec_id(&g->op, vk, &c, &w, xv, vkx_whole(&yb), vkx_whole(&ib), ntok, ns,
                            per_slot, 0, 0, false);
            vkx_cmd_end(vk, &c);
            vkx_cmd_submit_wait(vk, &c);
            vkx_download(vk, &yb, 0, got, sizeof(float) * M * ntok * ns);
            char what[96];
            snprintf(what, sizeof what, "matvec_id %s mode %d", ggml_type_name(t), mode);
            size_t bad = nb_test_compare(what, got, ref, (size_t)M * ntok * ns, 2e-3f, 1e-4f);
            vkx_cmd_destroy(vk, &c);
            vkx_buffer_destroy(vk, &ib);
            vkx_buffer_destroy(vk, &xb);
            vkx_buffer_destroy(vk, &yb);
            nb_gtensor_destroy(vk, &w);
            free(raw), free(wref), free(x), free(ref), free(got);
            nb_test_check_validation();
            assert_int_equal(bad, 0);
        }
    }
}

static void test_bad_input(void **state)
{
    struct cfg *g = *state;
    if (!g) skip();
    char err[256] = "";
    struct nb_gtensor w;
    uint8_t data[80] = {0};
    uint64_t ne[4] = {48, 1, 1, 1}; /* Q4_0 rows must be multiples of 32 */
    assert_int_equal(nb_gtensor_from_host(g->fx.vk, &w, GGML_Q4_0, ne, data, 0, err, sizeof err),
                     -1);
    assert_true(strlen(err) > 0);
    struct gguf_tensor t;
    memset(&t, 0, sizeof t);
    t.name.p = "blk.0.x";
    t.name.n = 7;
    t.type = (enum ggml_type)16; /* IQ2_XXS: no device layout */
    t.ne[0] = 256;
    t.ne[1] = t.ne[2] = t.ne[3] = 1;
    t.data = data;
    t.nbytes = 66;
    assert_int_equal(nb_gtensor_upload(g->fx.vk, &w, &t, err, sizeof err), -1);
    printf("# expected error: %s\n", err);
    t.type = GGML_F32;
    t.ne[0] = 16;
    t.nbytes = 60; /* short */
    assert_int_equal(nb_gtensor_upload(g->fx.vk, &w, &t, err, sizeof err), -1);
    printf("# expected error: %s\n", err);
}

/* Best GPU time in ns of the single dispatch recorded in c over `reps` submits. */
static double best_ns(struct vkx_ctx *vk, struct vkx_cmd *c, int reps)
{
    double best = 1e30;
    for (int i = 0; i < reps; i++) {
        vkx_cmd_submit_wait(vk, c);
        double ns[64];
        uint32_t n = vkx_cmd_read_times(vk, c, ns, 64);
        double sum = 0;
        for (uint32_t j = 0; j < n; j++)
            sum += ns[j];
        if (n && sum < best) best = sum;
    }
    return best;
}

/* Bandwidth of a Q4_0 4096 x 4096 matvec against a plain copy (NIBBLE_BENCH=1 only). */
static void test_bench(void **state)
{
    struct cfg *g = *state;
    if (!g || !getenv("NIBBLE_BENCH") || types != types_own) skip();
    struct vkx_ctx *vk = g->fx.vk;
    const char *env_k = getenv("NIBBLE_BENCH_K"), *env_m = getenv("NIBBLE_BENCH_M");
    uint32_t K = env_k ? (uint32_t)atoi(env_k) : 4096, M = env_m ? (uint32_t)atoi(env_m) : 4096;
    nb_test_seed(9);
    char err[256];
    struct vkx_cmd c;
    vkx_cmd_create(vk, &c, 8, true);
    /* copy yardstick: as many bytes as the weights */
    size_t wbytes = (size_t)ggml_row_size(GGML_Q4_0, K) * M;
    struct vkx_pipeline cp;
    struct vkx_pipeline_desc d = {.name = "mm_copy",
                                  .spv = nb_spv[NB_SPV_MM_COPY].code,
                                  .spv_size = *nb_spv[NB_SPV_MM_COPY].size,
                                  .n_bindings = 2,
                                  .push_size = 4,
                                  .n_spec = 1,
                                  .spec = {64}};
    assert_int_equal(vkx_pipeline_create(vk, &cp, &d, err, sizeof err), 0);
    struct vkx_buffer a, b;
    nb_test_dev_buf(vk, &a, wbytes, NULL);
    nb_test_dev_buf(vk, &b, wbytes, NULL);
    uint32_t n16 = (uint32_t)(wbytes / 16);
    struct vkx_view cv[2] = {vkx_whole(&a), vkx_whole(&b)};
    vkx_cmd_begin(vk, &c);
    vkx_cmd_dispatch(vk, &c, &cp, cv, 2, &n16, 4, vkx_ceil_div(n16, 64 * 16), 1, 1);
    vkx_cmd_end(vk, &c);
    double cns = best_ns(vk, &c, 5);
    printf("# copy %zu bytes: %.3f ms, %.2f GB/s read (%.2f GB/s read+write)\n", wbytes, cns * 1e-6,
           wbytes / cns, 2.0 * wbytes / cns);
    vkx_buffer_destroy(vk, &a);
    vkx_buffer_destroy(vk, &b);
    vkx_pipeline_destroy(vk, &cp);

    void *raw;
    float *wref;
    nb_test_weights(GGML_Q4_0, K, M, &raw, &wref);
    struct nb_gtensor w;
    uint64_t ne[4] = {K, M, 1, 1};
    assert_int_equal(nb_gtensor_from_host(vk, &w, GGML_Q4_0, ne, raw, 0, err, sizeof err), 0);
    struct vkx_buffer xb, yb;
    uint32_t maxt = 64;
    float *x = malloc(sizeof(float) * K * maxt);
    rand_vec(x, (size_t)K * maxt);
    nb_test_dev_buf(vk, &xb, sizeof(float) * K * maxt, x);
    nb_test_dev_buf(vk, &yb, sizeof(float) * M * maxt, NULL);
    uint32_t toks[4] = {1, 4, 8, 64};
    int ntoks = getenv("NIBBLE_BENCH_ALL") ? 4 : 1;
    for (int i = getenv("NIBBLE_BENCH_MM") ? 3 : 0; i < ntoks; i++) {
        vkx_cmd_begin(vk, &c);
        nb_op_mul(&g->op, vk, &c, &w, vkx_whole(&xb), vkx_whole(&yb), toks[i], 0, 0, false);
        vkx_cmd_end(vk, &c);
        double ns = best_ns(vk, &c, 5);
        printf("# q4_0 %s %ux%u, %u token(s): %.3f ms, %.2f GB/s weights (%.0f%% of copy read), "
               "%.1f GFLOP/s\n",
               toks[i] <= NB_MATVEC_MAX_TOKENS ? "matvec" : "nb_op_mul", M, K, toks[i], ns * 1e-6,
               wbytes / ns, 100.0 * cns / ns, 2.0 * K * M * toks[i] / ns);
    }
    vkx_cmd_destroy(vk, &c);
    vkx_buffer_destroy(vk, &xb);
    vkx_buffer_destroy(vk, &yb);
    nb_gtensor_destroy(vk, &w);
    free(raw), free(wref), free(x);
    nb_test_check_validation();
}

static int mv_subgroup; /* the matvec shape op_create asks nb_op_matmul_create_ex for */

static int op_create(void *op, struct vkx_ctx *vk, char *err, size_t errlen)
{
    uint32_t mask = NB_MM_EXPERTS;
    for (int i = 0; i < ntypes; i++)
        mask |= NB_MM_TYPE_BIT(types[i]);
    return nb_op_matmul_create_ex(op, vk, mv_subgroup, mask, err, errlen);
}
static void op_destroy(void *op, struct vkx_ctx *vk) { nb_op_matmul_destroy(op, vk); }

/* The normal context three times: matvec as the device prefers it (subgroup -1), with subgroups
 * forced on (1: a CPU device prefers whole rows per thread, GPUs run the subgroup variant) and
 * the GPU shape without subgroups (2); the fallback context as the device prefers. */
static int setup(void **state, bool fallback, int subgroup)
{
    static struct cfg g;
    mv_subgroup = subgroup;
    int rc = nb_test_fixture_setup(state, &g.fx, fallback, &g.op, op_create, op_destroy);
    if (rc != 0 || !*state) return rc;
    printf("# %s (subgroup %s): subgroup %d, texel %d, matvec wg %u rows %u, matmul tile %ux%u\n",
           fallback ? "fallback" : "normal",
           subgroup == 2  ? "off, GPU shape"
           : subgroup > 0 ? "forced"
                          : "auto",
           g.op.subgroup, g.op.texel, g.op.mv_wg, g.op.mv_rows[0], g.op.mm_bm, g.op.mm_bn);
    /* a CPU-shaped matvec reads quantized weights through texel views where the device has
     * them (lavapipe does); the fallback context has them off */
    if (fallback) assert_false(g.op.texel);
    /* the subgroup matvec requires the size of the device's range nearest 32 where it may
     * (lavapipe: 8 of 8..8), none with NIBBLE_DISABLE=sgsize or without size control */
    const struct vkx_caps *c = &g.fx.vk->caps;
    uint32_t want = 0;
    if (g.op.subgroup && vkx_has(g.fx.vk, VKX_FEAT_SGSIZE)) {
        want = c->subgroup_min;
        while (want < 32 && want * 2 <= c->subgroup_max) want *= 2;
        if (g.op.mv_wg % want) want = 0;
    }
    printf("# subgroup matvec requires subgroup size %u (device %u..%u)\n", g.op.mv_sg_size,
           c->subgroup_min, c->subgroup_max);
    assert_int_equal(g.op.mv_sg_size, want);
    if (g.op.subgroup && want && types == types_own) {
        /* the switch: the same shape with the size left to the driver (one type's pipelines:
         * the choice does not depend on the types) */
        struct nb_op_matmul any;
        char err[512];
        g.fx.vk->caps.disabled |= VKX_FEAT_SGSIZE;
        int rc2 = nb_op_matmul_create_ex(&any, g.fx.vk, mv_subgroup, NB_MM_TYPE_BIT(GGML_Q4_0), err,
                                         sizeof err);
        g.fx.vk->caps.disabled &= ~(unsigned)VKX_FEAT_SGSIZE;
        assert_int_equal(rc2, 0);
        assert_true(any.subgroup);
        assert_int_equal(any.mv_sg_size, 0);
        nb_op_matmul_destroy(&any, g.fx.vk);
    }
    if (!fallback && g.fx.vk->tune_cpu && !g.op.subgroup && subgroup != 2 &&
        vkx_has(g.fx.vk, VKX_FEAT_TEXEL))
        assert_true(g.op.texel);
    return fallback && g.op.subgroup ? -1 : 0;
}
static int setup_normal(void **state) { return setup(state, false, -1); }
static int setup_subgroup(void **state) { return setup(state, false, 1); }
static int setup_gpu_shape(void **state) { return setup(state, false, 2); }
static int setup_fallback(void **state) { return setup(state, true, -1); }

int main(void)
{
    const struct CMUnitTest normal[] = {
        cmocka_unit_test(test_bad_input), cmocka_unit_test(test_matvec),
        cmocka_unit_test(test_matmul),    cmocka_unit_test(test_embed),
        cmocka_unit_test(test_matvec_id), cmocka_unit_test(test_matvec_big_rows),
        cmocka_unit_test(test_bench),
    };
    const struct CMUnitTest fallback[] = {
        cmocka_unit_test(test_matvec),          cmocka_unit_test(test_matmul),
        cmocka_unit_test(test_embed),           cmocka_unit_test(test_matvec_id),
        cmocka_unit_test(test_matvec_big_rows), cmocka_unit_test(test_bench),
    };
    const struct CMUnitTest subgroup[] = {
        cmocka_unit_test(test_matvec),
        cmocka_unit_test(test_matvec_id),
        cmocka_unit_test(test_matvec_big_rows),
        cmocka_unit_test(test_bench),
    };
    int (*teardown)(void **) = nb_test_fixture_teardown;
    types = types_own, ntypes = 4;
    int rc = cmocka_run_group_tests_name("normal", normal, setup_normal, teardown);
    rc |= cmocka_run_group_tests_name("subgroup", subgroup, setup_subgroup, teardown);
    rc |= cmocka_run_group_tests_name("gpu-shape", subgroup, setup_gpu_shape, teardown);
    rc |= cmocka_run_group_tests_name("fallback", fallback, setup_fallback, teardown);
    /* the types of quant_unit.glsl (NIBBLE_TEST_TYPES=q6_k,bf16,...: only those) */
    types = types_unit, ntypes = (int)(sizeof types_unit / sizeof *types_unit);
    static enum ggml_type picked[16];
    const char *only = getenv("NIBBLE_TEST_TYPES");
    if (only) {
        ntypes = 0;
        for (int i = 0; i < (int)(sizeof types_unit / sizeof *types_unit); i++) {
            const char *n = ggml_type_name(types_unit[i]), *hit = strstr(only, n);
            if (hit && (hit[strlen(n)] == 0 || hit[strlen(n)] == ',')) picked[ntypes++] = types_unit[i];
        }
        types = picked;
    }
    rc |= cmocka_run_group_tests_name("normal-unit", normal, setup_normal, teardown);
    /* the other shapes on a type of each reader family unless NIBBLE_TEST_TYPES picked some:
     * their pipelines' compilation is what these groups cost, the readers are the same code */
    if (!only) types = types_cover, ntypes = (int)(sizeof types_cover / sizeof *types_cover);
    rc |= cmocka_run_group_tests_name("subgroup-unit", subgroup, setup_subgroup, teardown);
    rc |= cmocka_run_group_tests_name("gpu-shape-unit", subgroup, setup_gpu_shape, teardown);
    rc |= cmocka_run_group_tests_name("fallback-unit", fallback, setup_fallback, teardown);
    nb_test_vk_done();
    return rc;
}

/* test_op_int8: the integer dot-product decode product (engine/op_int8.h) against the CPU, on
 * lavapipe (which exposes VK_KHR_shader_integer_dot_product without accelerating it, so the op
 * turns the path on itself), with the subgroup and the shared-memory reduction, plain rows and
 * row tiles, forced weight splits, 1..8 tokens, accumulation, rows longer than the first scratch:
 * - exactness: activations on the 8-bit grid of their block (x = q * s, one |q| = 127 per block)
 *   quantize without loss, so the product must equal the exact one as closely as the f32 path;
 * - rounding: on random activations (8-bit values and their remainders, 15 bits a block) the
 *   result is within the f32 path's tolerance of the exact product (the 8-bit values alone, d =
 *   max|x| / 127 as llama.cpp rounds them, would be some 10 times outside it), and quant_act's
 *   blocks match the host's byte for byte (but for a rare off-by-one where x / d lands on a
 *   half);
 * - the MoE expert product (nb_op_int8_matvec_id): x per token and per pair, experts split over
 *   pieces, an id past the experts (its y row untouched), accumulation, against the CPU;
 * - the switch: nb_op_matmul_set_int8(false) gives the f32 product again; NIBBLE_DISABLE=int8
 *   refuses the path; nb_op_int8_wanted follows NIBBLE_INT8.
 */
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

static const enum ggml_type i8_types[] = {GGML_Q4_0, GGML_Q8_0, GGML_Q4_K, GGML_Q6_K,
                                          GGML_Q4_1, GGML_Q5_0, GGML_Q5_1, GGML_Q5_K};
#define N_TYPES (int)(sizeof i8_types / sizeof *i8_types)

/* x of one token, K elements: on the grid (exact) or uniform in [-1, 1). */
static void make_x(float *x, uint32_t K, bool grid)
{
    for (uint32_t b = 0; b < K / 32; b++) {
        float s = ldexpf(1.0f + nb_test_randf() * 0.5f, -(int)(nb_test_randu() % 8) - 6);
        uint32_t top = nb_test_randu() % 32;
        for (uint32_t e = 0; e < 32; e++) {
            float *v = &x[b * 32 + e];
            if (!grid) {
                *v = nb_test_randf();
                continue;
            }
            int q = (int)(nb_test_randu() % 255) - 127;
            if (e == top) q = nb_test_randu() & 1 ? 127 : -127;
            *v = (float)q * s;
        }
    }
}

static int round_away(float v) { return (int)truncf(v + (v < 0.0f ? -0.5f : 0.5f)); }
static int clamp127(int v) { return v < -127 ? -127 : v > 127 ? 127 : v; }

/* The host's quant_act: per block of 32, q = round(x / d) (d = max|x| / 127) and the remainder
 * r = round((x - d q) / (d / 128)); d2_out[b] = d / 128, so x ~ d2 (128 q + r). */
static void quant_host(const float *x, uint32_t K, int8_t *q_out, int8_t *r_out, float *d2_out)
{
    for (uint32_t b = 0; b < K / 32; b++) {
        float amax = 0.0f;
        for (uint32_t e = 0; e < 32; e++)
            amax = fmaxf(amax, fabsf(x[b * 32 + e]));
        float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        for (uint32_t e = 0; e < 32; e++) {
            float xv = x[b * 32 + e];
            int q = clamp127(round_away(xv * id));
            q_out[b * 32 + e] = (int8_t)q;
            r_out[b * 32 + e] = (int8_t)clamp127(round_away((xv - d * (float)q) * id * 128.0f));
        }
        d2_out[b] = d * (1.0f / 128.0f);
    }
}

static void dev_buf(struct vkx_ctx *vk, struct vkx_buffer *b, size_t bytes, const void *init)
{
    char err[256];
    assert_int_equal(vkx_buffer_create(vk, b, bytes, VKX_MEM_DEVICE, err, sizeof err), 0);
    if (init) vkx_upload(vk, b, 0, init, bytes);
}

/* One product's inputs, references and device buffers. */
struct prod {
    struct nb_gtensor w;
    uint32_t K, M, ntok;
    bool acc;
    float *x, *y0, *ref;
    struct vkx_buffer xb, yb;
};

static void prod_make(struct cfg *g, struct prod *p, enum ggml_type t, uint32_t K, uint32_t M,
                      uint32_t ntok, bool acc, bool grid, uint64_t max_piece, uint32_t tile)
{
    struct vkx_ctx *vk = g->fx.vk;
    memset(p, 0, sizeof *p);
    p->K = K, p->M = M, p->ntok = ntok, p->acc = acc;
    void *raw;
    float *wref;
    nb_test_weights(t, K, M, &raw, &wref);
    char err[256];
    uint64_t ne[4] = {K, M, 1, 1};
    int rc = nb_gtensor_from_host_tiled(vk, &p->w, t, ne, raw, max_piece, tile, err, sizeof err);
    if (rc) printf("# %s\n", err);
    assert_int_equal(rc, 0);
    if (max_piece) assert_true(p->w.data.n > 1);
    size_t nx = (size_t)K * ntok, ny = (size_t)M * ntok;
    p->x = malloc(sizeof(float) * nx), p->y0 = malloc(sizeof(float) * ny);
    p->ref = malloc(sizeof(float) * ny);
    for (uint32_t tk = 0; tk < ntok; tk++)
        make_x(p->x + (size_t)tk * K, K, grid);
    for (size_t i = 0; i < ny; i++)
        p->y0[i] = nb_test_randf();
    for (uint32_t tk = 0; tk < ntok; tk++)
        for (uint32_t m = 0; m < M; m++) {
            double s = acc ? p->y0[tk * M + m] : 0.0;
            for (uint32_t k = 0; k < K; k++)
                s += (double)wref[(size_t)m * K + k] * p->x[(size_t)tk * K + k];
            p->ref[tk * M + m] = (float)s;
        }
    dev_buf(vk, &p->xb, sizeof(float) * nx, p->x);
    dev_buf(vk, &p->yb, sizeof(float) * ny, p->y0);
    free(raw), free(wref);
}

static void prod_record(struct cfg *g, struct vkx_cmd *c, struct prod *p)
{
    nb_op_matvec(&g->op, g->fx.vk, c, &p->w, vkx_whole(&p->xb), vkx_whole(&p->yb), p->ntok, 0, 0,
                 p->acc);
}

/* Downloads y and checks it against ref with the f32 path's tolerance (grid inputs exactly,
 * random ones to within the 15-bit rounding, far below it). */
static size_t prod_check(struct cfg *g, struct prod *p, const char *what)
{
    size_t ny = (size_t)p->M * p->ntok;
    float *got = malloc(sizeof(float) * ny);
    vkx_download(g->fx.vk, &p->yb, 0, got, sizeof(float) * ny);
    size_t bad = nb_test_compare(what, got, p->ref, ny, 2e-4f * sqrtf((float)p->K), 1e-4f);
    free(got);
    return bad;
}

static void prod_free(struct cfg *g, struct prod *p)
{
    vkx_buffer_destroy(g->fx.vk, &p->xb);
    vkx_buffer_destroy(g->fx.vk, &p->yb);
    nb_gtensor_destroy(g->fx.vk, &p->w);
    free(p->x), free(p->y0), free(p->ref);
}

/* One product recorded and checked alone. */
static void check(struct cfg *g, enum ggml_type t, uint32_t K, uint32_t M, uint32_t ntok,
                  bool acc, bool grid, uint64_t max_piece, uint32_t tile)
{
    struct vkx_ctx *vk = g->fx.vk;
    struct prod p;
    prod_make(g, &p, t, K, M, ntok, acc, grid, max_piece, tile);
    struct vkx_cmd c;
    vkx_cmd_create(vk, &c, 64, false);
    vkx_cmd_begin(vk, &c);
    prod_record(g, &c, &p);
    vkx_cmd_end(vk, &c);
    vkx_cmd_submit_wait(vk, &c);
    char what[128];
    snprintf(what, sizeof what, "int8 %s K=%u M=%u n=%u%s%s tile %u %s", ggml_type_name(t), K, M,
             ntok, acc ? " acc" : "", p.w.data.n > 1 ? " split" : "", 1u << tile,
             grid ? "grid" : "random");
    size_t bad = prod_check(g, &p, what);
    vkx_cmd_destroy(vk, &c);
    prod_free(g, &p);
    nb_test_check_validation();
    assert_int_equal(bad, 0);
}

/* A row length near n32 units of 32: whole blocks of t. */
static uint32_t klen(enum ggml_type t, uint32_t n32)
{
    uint32_t bs = ggml_blck_size(t), k = n32 * 32;
    return k < bs ? bs : (k + bs - 1) / bs * bs;
}

static void test_exact(void **state)
{
    struct cfg *g = *state;
    if (!g) skip();
    assert_true(g->op.i8.on);
    nb_test_seed(11);
    for (int ti = 0; ti < N_TYPES; ti++) {
        enum ggml_type t = i8_types[ti];
        check(g, t, klen(t, 1), 1, 1, false, true, 0, 0);
        check(g, t, klen(t, 3), 31, 1, false, true, 0, 3);
        check(g, t, klen(t, 10), 33, 3, true, true, 0, 0);
        check(g, t, klen(t, 8), 67, 8, true, true, 0, 6);
        check(g, t, klen(t, 5), 29, 5, false, true, 0, 5);
        check(g, t, klen(t, 2), 37, 2, false, true, 0, 0);
        uint64_t rb = nb_gtensor_row_bytes(t, klen(t, 3));
        check(g, t, klen(t, 3), 53, 2, false, true, rb * 16, 0); /* split into pieces */
    }
}

static void test_rounding(void **state)
{
    struct cfg *g = *state;
    if (!g) skip();
    nb_test_seed(12);
    for (int ti = 0; ti < N_TYPES; ti++) {
        enum ggml_type t = i8_types[ti];
        check(g, t, klen(t, 24), 45, 1, false, false, 0, 0);
        check(g, t, klen(t, 16), 21, 4, true, false, 0, 3);
    }
}

/* quant_act's blocks against the host's, read back from the op's scratch. */
static void test_quant_act(void **state)
{
    struct cfg *g = *state;
    if (!g) skip();
    struct vkx_ctx *vk = g->fx.vk;
    nb_test_seed(13);
    struct prod p;
    uint32_t K = 1024, ntok = 3;
    prod_make(g, &p, GGML_Q8_0, K, 8, ntok, false, false, 0, 0);
    g->op.i8.next_slot = 0;
    struct vkx_cmd c;
    vkx_cmd_create(vk, &c, 64, false);
    vkx_cmd_begin(vk, &c);
    prod_record(g, &c, &p);
    vkx_cmd_end(vk, &c);
    vkx_cmd_submit_wait(vk, &c);
    size_t nbk = (size_t)ntok * K / 32;
    uint32_t *xq = malloc(80 * nbk);
    vkx_download(vk, &g->op.i8.xq, 0, xq, 80 * nbk);
    int8_t *q = malloc(K * ntok), *r = malloc(K * ntok);
    float *d2 = malloc(sizeof(float) * nbk);
    for (uint32_t tk = 0; tk < ntok; tk++)
        quant_host(p.x + (size_t)tk * K, K, q + (size_t)tk * K, r + (size_t)tk * K,
                   d2 + (size_t)tk * K / 32);
    size_t off_by_one = 0, bad = 0;
    for (size_t b = 0; b < nbk; b++) {
        const uint32_t *blk = xq + b * 20;
        int s0 = 0, s1 = 0;
        for (uint32_t e = 0; e < 32; e++) {
            int gq = (int8_t)(blk[e / 4] >> (8 * (e % 4)));
            int gr = (int8_t)(blk[8 + e / 4] >> (8 * (e % 4)));
            /* one step off in q moves r by 128 the other way: compare the 15-bit values */
            int gv = 128 * gq + gr, hv = 128 * q[b * 32 + e] + r[b * 32 + e];
            if (gv != hv) *(abs(gv - hv) == 1 ? &off_by_one : &bad) += 1;
            if (gr < -64 || gr > 64) bad++;
            if (e < 16) s0 += gv; else s1 += gv;
        }
        float gd, gs0, gs1;
        memcpy(&gd, &blk[16], 4), memcpy(&gs0, &blk[17], 4), memcpy(&gs1, &blk[18], 4);
        if (fabsf(gd - d2[b]) > 1e-6f * d2[b] ||
            fabsf(gs0 - gd * (float)s0) > 1e-6f * 128.0f * fabsf(gd) ||
            fabsf(gs1 - gd * (float)s1) > 1e-6f * 128.0f * fabsf(gd)) {
            printf("# block %zu: d/128 %g (host %g), sums %g %g (of its values: %g %g)\n", b,
                   (double)gd, (double)d2[b], (double)gs0, (double)gs1,
                   (double)(gd * (float)s0), (double)(gd * (float)s1));
            bad++;
        }
    }
    printf("# quant_act: %zu blocks, %zu values off by one step (x / d on a half)\n", nbk,
           off_by_one);
    assert_int_equal(bad, 0);
    assert_true(off_by_one * 1000 < nbk * 32);
    free(xq), free(q), free(r), free(d2);
    vkx_cmd_destroy(vk, &c);
    prod_free(g, &p);
    nb_test_check_validation();
}

/* Products recorded back to back without barriers (reading the same weights, different x), one
 * of rows longer than the first scratch (it grows mid-recording), and the recording replayed. */
static void test_sequence(void **state)
{
    struct cfg *g = *state;
    if (!g) skip();
    struct vkx_ctx *vk = g->fx.vk;
    nb_test_seed(14);
    struct prod p[4];
    prod_make(g, &p[0], GGML_Q4_0, 512, 40, 2, false, true, 0, 0);
    prod_make(g, &p[1], GGML_Q4_K, 768, 24, 1, false, true, 0, 0);
    prod_make(g, &p[2], GGML_Q8_0, 17408, 3, 1, false, true, 0, 0); /* > 16384: grows */
    prod_make(g, &p[3], GGML_Q4_0, 512, 40, 8, true, true, 0, 0);
    struct vkx_cmd c;
    vkx_cmd_create(vk, &c, 64, false);
    vkx_cmd_begin(vk, &c);
    for (int i = 0; i < 4; i++)
        prod_record(g, &c, &p[i]);
    vkx_cmd_end(vk, &c);
    for (int rep = 0; rep < 2; rep++) {
        if (rep) /* the replay: the accumulating product starts from y0 again */
            vkx_upload(vk, &p[3].yb, 0, p[3].y0, sizeof(float) * p[3].M * p[3].ntok);
        vkx_cmd_submit_wait(vk, &c);
        for (int i = 0; i < 4; i++) {
            char what[64];
            snprintf(what, sizeof what, "sequence %d, submit %d", i, rep);
            assert_int_equal(prod_check(g, &p[i], what), 0);
        }
    }
    assert_true(g->op.i8.n_old >= 1);
    vkx_cmd_destroy(vk, &c);
    for (int i = 0; i < 4; i++)
        prod_free(g, &p[i]);
    nb_test_check_validation();
}

/* One expert product: W {K, M, E} of type t in pieces of at most pe experts (0: one piece), ids
 * [n_tok][n_slots] (one of them E: no expert), x per token or per pair, with o8's pipelines. */
static void check_id(struct cfg *g, struct nb_op_int8 *o8, enum ggml_type t, uint32_t K,
                     uint32_t M, uint32_t E, uint32_t pe, uint32_t n_tok, uint32_t n_slots,
                     bool per_slot, bool acc)
{
    struct vkx_ctx *vk = g->fx.vk;
    uint32_t pairs = n_tok * n_slots, nx = per_slot ? pairs : n_tok;
    void *raw;
    float *wref;
    nb_test_weights(t, K, (uint64_t)M * E, &raw, &wref);
    struct nb_gtensor w;
    char err[256];
    uint64_t ne[4] = {K, M, E, 1};
    uint64_t piece = pe ? pe * M * nb_gtensor_row_bytes(t, K) : 0;
    int rc = nb_gtensor_from_host(vk, &w, t, ne, raw, piece, err, sizeof err);
    if (rc) printf("# %s\n", err);
    assert_int_equal(rc, 0);
    if (pe) assert_true(w.data.n > 1);
    float *x = malloc(sizeof(float) * K * nx), *y0 = malloc(sizeof(float) * M * pairs);
    float *ref = malloc(sizeof(float) * M * pairs), *got = malloc(sizeof(float) * M * pairs);
    uint32_t *ids = malloc(sizeof(uint32_t) * pairs);
    for (uint32_t i = 0; i < nx; i++)
        make_x(x + (size_t)i * K, K, false);
    for (uint32_t i = 0; i < M * pairs; i++)
        y0[i] = nb_test_randf();
    for (uint32_t i = 0; i < pairs; i++)
        ids[i] = i == pairs / 2 ? E : (i * 7 + 3) % E;
    for (uint32_t pr = 0; pr < pairs; pr++)
        for (uint32_t m = 0; m < M; m++) {
            double v = acc || ids[pr] >= E ? y0[pr * M + m] : 0.0;
            const float *xr = x + (size_t)(per_slot ? pr : pr / n_slots) * K;
            for (uint32_t k = 0; ids[pr] < E && k < K; k++)
                v += (double)wref[((size_t)ids[pr] * M + m) * K + k] * xr[k];
            ref[pr * M + m] = (float)v;
        }
    struct vkx_buffer xb, yb, ib;
    dev_buf(vk, &xb, sizeof(float) * K * nx, x);
    dev_buf(vk, &yb, sizeof(float) * M * pairs, y0);
    dev_buf(vk, &ib, sizeof(uint32_t) * pairs, ids);
    struct vkx_cmd c;
    vkx_cmd_create(vk, &c, 64, false);
    vkx_cmd_begin(vk, &c);
    assert_true(nb_op_int8_matvec_id(o8, vk, &c, &w, vkx_whole(&xb), vkx_whole(&yb),
                                     vkx_whole(&ib), n_tok, n_slots, per_slot, 0, 0, acc));
    vkx_cmd_end(vk, &c);
    vkx_cmd_submit_wait(vk, &c);
    vkx_download(vk, &yb, 0, got, sizeof(float) * M * pairs);
    char what[128];
    snprintf(what, sizeof what, "int8 experts %s K=%u M=%u E=%u pieces %u, %u x %u%s%s",
             ggml_type_name(t), K, M, E, w.data.n, n_tok, n_slots, per_slot ? " per slot" : "",
             acc ? " acc" : "");
    size_t bad = nb_test_compare(what, got, ref, (size_t)M * pairs, 2e-4f * sqrtf((float)K), 1e-4f);
    vkx_cmd_destroy(vk, &c);
    vkx_buffer_destroy(vk, &xb), vkx_buffer_destroy(vk, &yb), vkx_buffer_destroy(vk, &ib);
    nb_gtensor_destroy(vk, &w);
    free(raw), free(wref), free(x), free(y0), free(ref), free(got), free(ids);
    nb_test_check_validation();
    assert_int_equal(bad, 0);
}

/* The MoE expert products, with pipelines of their own for one plain and one unit type (the
 * group's reduction). */
static void test_experts(void **state)
{
    struct cfg *g = *state;
    if (!g) skip();
    struct vkx_ctx *vk = g->fx.vk;
    nb_test_seed(16);
    struct nb_op_int8 o8;
    char err[256];
    uint32_t types = NB_MM_TYPE_BIT(GGML_Q4_0) | NB_MM_TYPE_BIT(GGML_Q6_K) | NB_MM_EXPERTS;
    assert_int_equal(nb_op_int8_create(&o8, vk, types, g->op.i8.subgroup, g->op.i8.sg_size, 1,
                                       err, sizeof err),
                     0);
    o8.on = true;
    check_id(g, &o8, GGML_Q4_0, 96, 37, 5, 0, 3, 2, false, false);
    check_id(g, &o8, GGML_Q4_0, 160, 9, 7, 2, 2, 4, true, true); /* 4 pieces */
    check_id(g, &o8, GGML_Q6_K, 512, 19, 3, 0, 2, 3, true, true);
    check_id(g, &o8, GGML_Q6_K, 256, 33, 4, 3, 1, 4, false, false); /* 2 pieces */
    /* a type without an expert pipeline: left to the f32 path */
    struct nb_gtensor w = {.type = GGML_Q8_0};
    assert_false(nb_op_int8_matvec_id(&o8, vk, NULL, &w, (struct vkx_view){0},
                                      (struct vkx_view){0}, (struct vkx_view){0}, 1, 2, false, 0,
                                      0, false));
    nb_op_int8_destroy(&o8, vk);
}

/* Off again: the f32 products (exact on random x); on once more for the next group. */
static void test_switch(void **state)
{
    struct cfg *g = *state;
    if (!g) skip();
    char err[256];
    nb_test_seed(15);
    assert_int_equal(nb_op_matmul_set_int8(&g->op, g->fx.vk, false, err, sizeof err), 0);
    check(g, GGML_Q4_0, 256, 19, 1, false, false, 0, 0);
    check(g, GGML_Q6_K, 512, 19, 3, true, false, 0, 0);
    assert_int_equal(nb_op_matmul_set_int8(&g->op, g->fx.vk, true, err, sizeof err), 0);
}

/* NIBBLE_DISABLE=int8 (the fallback context): the path is refused; NIBBLE_INT8 decides on a
 * device that does not accelerate the dot product. */
static void test_disabled(void **state)
{
    (void)state;
    struct vkx_ctx *vk = nb_test_vk();
    if (!vk) skip();
    struct vkx_ctx own;
    assert_int_equal(nb_test_vk_fallback(&own), 0);
    assert_false(nb_op_int8_wanted(&own));
    struct nb_op_matmul o;
    char err[256];
    assert_int_equal(nb_op_matmul_create_ex(&o, &own, -1, NB_MM_TYPE_BIT(GGML_Q4_0), err,
                                            sizeof err),
                     0);
    assert_int_not_equal(nb_op_matmul_set_int8(&o, &own, true, err, sizeof err), 0);
    printf("# NIBBLE_DISABLE=int8: %s\n", err);
    assert_false(o.i8.on);
    nb_op_matmul_destroy(&o, &own);
    vkx_destroy(&own);
    if (vk->caps.int_dot && !vk->caps.int_dot_4x8_accel) {
        setenv("NIBBLE_INT8", "1", 1);
        assert_true(nb_op_int8_wanted(vk));
        unsetenv("NIBBLE_INT8");
        assert_false(nb_op_int8_wanted(vk));
    }
    nb_test_check_validation();
}

static int mode; /* nb_op_matmul_create_ex's subgroup argument */

static int op_create(void *op, struct vkx_ctx *vk, char *err, size_t errlen)
{
    uint32_t mask = 0;
    for (int i = 0; i < N_TYPES; i++)
        mask |= NB_MM_TYPE_BIT(i8_types[i]);
    if (nb_op_matmul_create_ex(op, vk, mode, mask, err, errlen) != 0) return -1;
    struct nb_op_matmul *o = op;
    if (nb_op_matmul_set_int8(o, vk, true, err, errlen) != 0) {
        nb_op_matmul_destroy(o, vk);
        return -1;
    }
    printf("# int8 matvec: %s reduction (subgroup size %u), rows per workgroup %u/%u/%u/%u\n",
           o->i8.subgroup ? "subgroup" : "shared-memory", o->i8.sg_size, o->i8.rows[0],
           o->i8.rows[1], o->i8.rows[2], o->i8.rows[3]);
    return 0;
}
static void op_destroy(void *op, struct vkx_ctx *vk) { nb_op_matmul_destroy(op, vk); }

static int setup(void **state, int m)
{
    static struct cfg g;
    struct vkx_ctx *vk = nb_test_vk();
    *state = NULL;
    if (!vk) return 0;
    if (!vk->caps.int_dot) {
        printf("# the device has no integer dot product: skipped\n");
        return 0;
    }
    mode = m;
    return nb_test_fixture_setup(state, &g.fx, false, &g.op, op_create, op_destroy);
}
static int setup_subgroup(void **state) { return setup(state, 1); }
static int setup_shared(void **state) { return setup(state, 2); }

int main(void)
{
    const struct CMUnitTest all[] = {
        cmocka_unit_test(test_exact),    cmocka_unit_test(test_rounding),
        cmocka_unit_test(test_quant_act), cmocka_unit_test(test_sequence),
        cmocka_unit_test(test_experts),   cmocka_unit_test(test_switch),
    };
    const struct CMUnitTest once[] = {cmocka_unit_test(test_disabled)};
    int (*teardown)(void **) = nb_test_fixture_teardown;
    int rc = cmocka_run_group_tests_name("subgroup", all, setup_subgroup, teardown);
    rc |= cmocka_run_group_tests_name("shared-memory", all, setup_shared, teardown);
    rc |= cmocka_run_group_tests_name("disabled", once, NULL, NULL);
    nb_test_vk_done();
    return rc;
}

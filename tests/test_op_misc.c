/* test_op_misc: RMSNorm (plain, no weight, per head, + residual + device scale, fused RoPE),
 * RoPE, elementwise ops and the MoE router/combine on the GPU against double-precision CPU
 * references, with awkward shapes, in the normal and the forced-fallback
 * (NIBBLE_DISABLE=fp16,subgroup,int8,texel) configuration. Sampling is in test_op_sample.c. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op_misc.h"
#include "shared.h"

struct cfg {
    struct nb_test_fixture fx; /* first: *state points at both */
    struct nb_op_misc op;
};

/* ---- helpers ---------------------------------------------------------------------------------- */

static float *rand_vec(size_t n, float scale)
{
    float *v = malloc(sizeof(float) * (n ? n : 1));
    assert_non_null(v);
    for (size_t i = 0; i < n; i++) v[i] = nb_test_randf() * scale;
    return v;
}

static void dev_buf(struct vkx_ctx *vk, struct vkx_buffer *b, size_t bytes, const void *init)
{
    char err[256];
    assert_int_equal(vkx_buffer_create(vk, b, bytes ? bytes : 4, VKX_MEM_DEVICE, err, sizeof err),
                     0);
    if (init) vkx_upload(vk, b, 0, init, bytes);
}

static float *download(struct vkx_ctx *vk, struct vkx_buffer *b, size_t n)
{
    float *v = malloc(sizeof(float) * n);
    assert_non_null(v);
    vkx_download(vk, b, 0, v, sizeof(float) * n);
    return v;
}

static void cmd_start(struct vkx_ctx *vk, struct vkx_cmd *c)
{
    vkx_cmd_create(vk, c, 32, false);
    vkx_cmd_begin(vk, c);
}

static void cmd_finish(struct vkx_ctx *vk, struct vkx_cmd *c)
{
    vkx_cmd_end(vk, c);
    vkx_cmd_submit_wait(vk, c);
    vkx_cmd_destroy(vk, c);
    nb_test_check_validation();
}

#define SKIP_IF_NO_GPU(g)                                                                          \
    struct cfg *g = *state;                                                                        \
    if (!g) skip()

/* ---- RMSNorm ---------------------------------------------------------------------------------- */

/* double-precision reference of nb_op_rmsnorm on dense host copies */
static void ref_norm(const float *x, const float *w, float *y, const struct nb_norm_args *a,
                     const float *scale, const uint32_t *pos, const float *factors,
                     const float *w2, float *z)
{
    uint32_t heads = a->n_heads ? a->n_heads : 1;
    uint32_t xs = a->x_stride ? a->x_stride : a->n * heads;
    uint32_t ys = a->y_stride ? a->y_stride : a->n * heads;
    double mul = a->mul != 0.0f ? a->mul : 1.0;
    double *r = malloc(sizeof(double) * a->n);
    assert_non_null(r);
    for (uint32_t t = 0; t < a->n_tokens; t++)
        for (uint32_t h = 0; h < heads; h++) {
            const float *xr = x + a->x_off + (size_t)t * xs + (size_t)h * a->n;
            float *yr = y + a->y_off + (size_t)t * ys + (size_t)h * a->n;
            double ss = 0;
            for (uint32_t i = 0; i < a->n; i++) ss += (double)xr[i] * xr[i];
            double inv = 1.0 / sqrt(ss / a->n + a->eps) * mul;
            for (uint32_t i = 0; i < a->n; i++) r[i] = xr[i] * inv * (w ? w[i] : 1.0);
            uint32_t half = a->n_rot / 2;
            for (uint32_t i = 0; i < half; i++) {
                double th = pos[t] * pow(a->rope_base, -2.0 * i / a->n_rot);
                if (factors) th /= factors[i];
                double c = cos(th), s = sin(th), p0 = r[i], p1 = r[i + half];
                r[i] = p0 * c - p1 * s;
                r[i + half] = p1 * c + p0 * s;
            }
            for (uint32_t i = 0; i < a->n; i++)
                yr[i] = (float)(((a->add ? yr[i] : 0.0) + r[i]) * (scale ? *scale : 1.0));
            if (!z) continue; /* the next norm, of the row just written (one head) */
            double s2 = 0;
            for (uint32_t i = 0; i < a->n; i++) s2 += (double)yr[i] * yr[i];
            double inv2 = 1.0 / sqrt(s2 / a->n + a->eps);
            for (uint32_t i = 0; i < a->n; i++)
                z[(size_t)t * a->n + i] = (float)(yr[i] * inv2 * w2[i]);
        }
    free(r);
}

struct norm_case {
    uint32_t n, heads, tokens;
    uint32_t x_pad, y_pad; /* extra elements per token row, and the offset of the row */
    bool weight, add, scale;
    bool next; /* then z = rmsnorm(y) * w2 */
    float mul;
    uint32_t n_rot, pos_max;
    double base;
    uint32_t n_factors_on; /* pairs with factor 1.0; the rest get 1e30 (0 = no factors) */
};

static void check_norm(struct cfg *g, const struct norm_case *k)
{
    struct vkx_ctx *vk = g->fx.vk;
    uint32_t heads = k->heads ? k->heads : 1, row = k->n * heads;
    struct nb_norm_args a = {
        .n = k->n, .n_heads = heads, .n_tokens = k->tokens,
        .x_off = k->x_pad, .x_stride = row + k->x_pad,
        .y_off = k->y_pad, .y_stride = row + k->y_pad,
        .eps = 1e-6f, .mul = k->mul, .add = k->add,
        .n_rot = k->n_rot, .rope_base = k->base};
    size_t nx = (size_t)a.x_stride * k->tokens + k->x_pad;
    size_t ny = (size_t)a.y_stride * k->tokens + k->y_pad;
    float *x = rand_vec(nx, 2.0f), *y = rand_vec(ny, 1.0f), *w = rand_vec(k->n, 1.5f);
    float *w2 = rand_vec(k->n, 1.5f), *z = rand_vec((size_t)k->n * k->tokens, 1.0f);
    float *zref = malloc(sizeof(float) * k->n * k->tokens);
    assert_non_null(zref);
    float *yref = malloc(sizeof(float) * ny);
    assert_non_null(yref);
    memcpy(yref, y, sizeof(float) * ny);
    float scale = 0.75f;
    uint32_t *pos = malloc(sizeof(uint32_t) * k->tokens);
    for (uint32_t t = 0; t < k->tokens; t++)
        pos[t] = t == 0 ? k->pos_max : nb_test_randu() % (k->pos_max + 1);
    float *fac = NULL;
    if (k->n_factors_on) {
        fac = malloc(sizeof(float) * (k->n_rot / 2));
        for (uint32_t i = 0; i < k->n_rot / 2; i++) fac[i] = i < k->n_factors_on ? 1.0f : 1e30f;
    }

    struct vkx_buffer bx, by, bw, bs, bp, bf, bw2, bz;
    dev_buf(vk, &bx, nx * 4, x);
    dev_buf(vk, &by, ny * 4, y);
    dev_buf(vk, &bw, k->n * 4, w);
    dev_buf(vk, &bs, 4, &scale);
    dev_buf(vk, &bp, k->tokens * 4, pos);
    dev_buf(vk, &bf, fac ? k->n_rot / 2 * 4 : 4, fac);
    dev_buf(vk, &bw2, k->n * 4, w2);
    dev_buf(vk, &bz, (size_t)k->n * k->tokens * 4, z);
    a.x = vkx_whole(&bx);
    a.y = vkx_whole(&by);
    if (k->weight) a.w = vkx_whole(&bw);
    if (k->scale) a.scale = vkx_whole(&bs);
    if (k->n_rot) a.pos = vkx_whole(&bp);
    if (fac) a.factors = vkx_whole(&bf);
    if (k->next) a.w2 = vkx_whole(&bw2), a.z = vkx_whole(&bz);

    struct vkx_cmd c;
    cmd_start(vk, &c);
    nb_op_rmsnorm(&g->op, vk, &c, &a);
    cmd_finish(vk, &c);
    float *got = download(vk, &by, ny);
    ref_norm(x, k->weight ? w : NULL, yref, &a, k->scale ? &scale : NULL, pos, fac, w2,
             k->next ? zref : NULL);
    char what[160];
    snprintf(what, sizeof what, "norm n=%u heads=%u tok=%u w=%d add=%d sc=%d rot=%u pos=%u%s",
             k->n, heads, k->tokens, k->weight, k->add, k->scale, k->n_rot, k->pos_max,
             k->next ? " next" : "");
    assert_int_equal(nb_test_compare(what, got, yref, ny, 2e-5f, 2e-5f), 0);
    if (k->next) {
        float *zgot = download(vk, &bz, (size_t)k->n * k->tokens);
        assert_int_equal(nb_test_compare(what, zgot, zref, (size_t)k->n * k->tokens, 2e-5f,
                                         2e-5f), 0);
        free(zgot);
    }

    vkx_buffer_destroy(vk, &bx);
    vkx_buffer_destroy(vk, &by);
    vkx_buffer_destroy(vk, &bw);
    vkx_buffer_destroy(vk, &bs);
    vkx_buffer_destroy(vk, &bp);
    vkx_buffer_destroy(vk, &bf);
    vkx_buffer_destroy(vk, &bw2);
    vkx_buffer_destroy(vk, &bz);
    free(x), free(y), free(w), free(yref), free(got), free(pos), free(fac);
    free(w2), free(z), free(zref);
}

static void test_norm(void **state)
{
    SKIP_IF_NO_GPU(g);
    nb_test_seed(1);
    static const uint32_t widths[] = {1, 31, 33, 257, 1025, 5376};
    static const uint32_t toks[] = {1, 3, 2, 33, 5, 4};
    for (size_t i = 0; i < sizeof widths / sizeof widths[0]; i++) {
        struct norm_case k = {.n = widths[i], .tokens = toks[i], .weight = true};
        check_norm(g, &k);
        k.weight = false; /* V-norm style */
        check_norm(g, &k);
        k.weight = true, k.add = true; /* post-norm + residual */
        check_norm(g, &k);
        k.next = true; /* ... and the next block's pre-norm */
        check_norm(g, &k);
        k.next = false, k.scale = true; /* ... * layer_output_scale */
        check_norm(g, &k);
        k.next = true;
        check_norm(g, &k);
        k.next = false;
        k.add = false, k.mul = 0.0625f; /* router input: scale * H^-0.5 */
        check_norm(g, &k);
    }
    /* per head inside a wider (fused) buffer, with offsets */
    struct norm_case h1 = {.n = 64, .heads = 3, .tokens = 5, .x_pad = 7, .y_pad = 3, .weight = true};
    check_norm(g, &h1);
    struct norm_case h2 = {.n = 256, .heads = 8, .tokens = 2, .x_pad = 512, .weight = true};
    check_norm(g, &h2);
    struct norm_case h3 = {.n = 512, .heads = 2, .tokens = 3, .weight = false};
    check_norm(g, &h3);
}

static void test_norm_rope(void **state)
{
    SKIP_IF_NO_GPU(g);
    nb_test_seed(2);
    /* sliding layer: hd 256, all rotate, base 1e4 */
    struct norm_case s = {.n = 256, .heads = 8, .tokens = 3, .weight = true, .n_rot = 256,
                          .base = 10000.0, .pos_max = 131071};
    check_norm(g, &s);
    /* full layer: hd 512, proportional (64 pairs on, 192 off), base 1e6 */
    struct norm_case f = {.n = 512, .heads = 2, .tokens = 4, .x_pad = 5, .weight = true,
                          .n_rot = 512, .base = 1e6, .pos_max = 262143, .n_factors_on = 64};
    check_norm(g, &f);
    /* partial rotation, odd head count, small positions */
    struct norm_case p = {.n = 64, .heads = 3, .tokens = 33, .weight = true, .n_rot = 32,
                          .base = 10000.0, .pos_max = 40};
    check_norm(g, &p);
}

/* ---- RoPE ------------------------------------------------------------------------------------- */

static void check_rope(struct cfg *g, uint32_t hd, uint32_t heads, uint32_t tokens, uint32_t n_rot,
                       double base, uint32_t pos_max, uint32_t factors_on, uint32_t pad)
{
    struct vkx_ctx *vk = g->fx.vk;
    uint32_t stride = heads * hd + pad;
    size_t nx = (size_t)stride * tokens + pad;
    float *x = rand_vec(nx, 3.0f), *ref = malloc(sizeof(float) * nx);
    assert_non_null(ref);
    memcpy(ref, x, sizeof(float) * nx);
    uint32_t *pos = malloc(sizeof(uint32_t) * tokens);
    for (uint32_t t = 0; t < tokens; t++)
        pos[t] = t == 0 ? pos_max : t == 1 ? 0 : nb_test_randu() % (pos_max + 1);
    float *fac = NULL;
    if (factors_on) {
        fac = malloc(sizeof(float) * (n_rot / 2));
        for (uint32_t i = 0; i < n_rot / 2; i++) fac[i] = i < factors_on ? 1.0f : 1e30f;
        fac[0] = 1.0f;
        if (factors_on > 2) fac[1] = 2.5f; /* a plain factor too */
    }
    uint32_t half = n_rot / 2;
    for (uint32_t t = 0; t < tokens; t++)
        for (uint32_t h = 0; h < heads; h++) {
            float *r = ref + pad + (size_t)t * stride + (size_t)h * hd;
            for (uint32_t i = 0; i < half; i++) {
                double th = pos[t] * pow(base, -2.0 * i / n_rot);
                if (fac) th /= fac[i];
                double c = cos(th), s = sin(th), p0 = r[i], p1 = r[i + half];
                r[i] = (float)(p0 * c - p1 * s);
                r[i + half] = (float)(p1 * c + p0 * s);
            }
        }
    struct vkx_buffer bx, bp, bf;
    dev_buf(vk, &bx, nx * 4, x);
    dev_buf(vk, &bp, tokens * 4, pos);
    dev_buf(vk, &bf, fac ? half * 4 : 4, fac);
    struct vkx_view none = {0};
    struct vkx_cmd c;
    cmd_start(vk, &c);
    nb_op_rope(&g->op, vk, &c, vkx_whole(&bx), pad, stride, heads, hd, tokens, n_rot, base,
               vkx_whole(&bp), fac ? vkx_whole(&bf) : none);
    cmd_finish(vk, &c);
    float *got = download(vk, &bx, nx);
    char what[128];
    snprintf(what, sizeof what, "rope hd=%u heads=%u tok=%u rot=%u base=%g pos=%u", hd, heads,
             tokens, n_rot, base, pos_max);
    assert_int_equal(nb_test_compare(what, got, ref, nx, 1e-5f, 1e-5f), 0);
    double maxe = 0;
    for (size_t i = 0; i < nx; i++) maxe = fmax(maxe, fabs((double)got[i] - ref[i]));
    printf("# %s: max abs error %.3g\n", what, maxe);
    vkx_buffer_destroy(vk, &bx);
    vkx_buffer_destroy(vk, &bp);
    vkx_buffer_destroy(vk, &bf);
    free(x), free(ref), free(pos), free(fac), free(got);
}

static void test_rope(void **state)
{
    SKIP_IF_NO_GPU(g);
    nb_test_seed(3);
    check_rope(g, 256, 8, 5, 256, 10000.0, 131071, 0, 0);
    check_rope(g, 512, 2, 3, 512, 1e6, 262143, 64, 3);
    check_rope(g, 64, 3, 33, 32, 10000.0, 1000, 0, 1);
    check_rope(g, 2, 1, 1, 2, 10000.0, 7, 0, 0);
    check_rope(g, 128, 31, 2, 128, 500000.0, 16777215, 0, 0);
}

/* ---- elementwise ------------------------------------------------------------------------------ */

static double gelu_ref(double v)
{
    return 0.5 * v * (1.0 + tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
}

static void check_elt(struct cfg *g, uint32_t op, uint32_t n, uint32_t rows, bool fused, float c)
{
    struct vkx_ctx *vk = g->fx.vk;
    uint32_t as = fused ? 2 * n : n + 3, bs = fused ? 2 * n : n, os = n + 1;
    uint32_t ao = 2, bo = fused ? 2 + n : 0, oo = 5;
    size_t na = (size_t)as * rows + ao + (fused ? n : 0), nb = (size_t)bs * rows + bo;
    size_t no = (size_t)os * rows + oo;
    float big = op == NB_ELT_SOFTCAP ? 200.0f : op == NB_ELT_GEGLU || op == NB_ELT_GELU ? 6.0f
                                                                                       : 1.0f;
    float *a = rand_vec(na, big), *b = rand_vec(nb, 1.0f), *o = rand_vec(no, 1.0f);
    float s = -1.25f;
    float *ref = malloc(sizeof(float) * no);
    memcpy(ref, o, sizeof(float) * no);
    const float *bsrc = fused ? a : b;
    for (uint32_t r = 0; r < rows; r++)
        for (uint32_t j = 0; j < n; j++) {
            double va = a[ao + r * as + j], vb = bsrc[bo + r * bs + j], res;
            switch (op) {
            case NB_ELT_GEGLU: res = gelu_ref(va) * vb; break;
            case NB_ELT_GELU: res = gelu_ref(va); break;
            case NB_ELT_MUL: res = va * vb; break;
            case NB_ELT_ADD: res = va + vb; break;
            case NB_ELT_SCALE: res = va * c; break;
            case NB_ELT_SCALE_DEV: res = va * s; break;
            default: res = c * tanh(va / c); break;
            }
            ref[oo + r * os + j] = (float)res;
        }
    struct vkx_buffer ba, bb, bo_, bsc;
    dev_buf(vk, &ba, na * 4, a);
    dev_buf(vk, &bb, nb * 4, b);
    dev_buf(vk, &bo_, no * 4, o);
    dev_buf(vk, &bsc, 4, &s);
    struct nb_elt_args e = {
        .op = op, .n = n, .rows = rows, .a = vkx_whole(&ba), .b = vkx_whole(fused ? &ba : &bb),
        .o = vkx_whole(&bo_), .s = vkx_whole(&bsc), .a_off = ao, .a_stride = as, .b_off = bo,
        .b_stride = bs, .o_off = oo, .o_stride = os, .c = c};
    struct vkx_cmd cm;
    cmd_start(vk, &cm);
    nb_op_eltwise(&g->op, vk, &cm, &e);
    cmd_finish(vk, &cm);
    float *got = download(vk, &bo_, no);
    char what[96];
    snprintf(what, sizeof what, "eltwise op=%u n=%u rows=%u fused=%d", op, n, rows, fused);
    assert_int_equal(nb_test_compare(what, got, ref, no, 2e-6f, 2e-6f), 0);
    vkx_buffer_destroy(vk, &ba);
    vkx_buffer_destroy(vk, &bb);
    vkx_buffer_destroy(vk, &bo_);
    vkx_buffer_destroy(vk, &bsc);
    free(a), free(b), free(o), free(ref), free(got);
}

static void test_eltwise(void **state)
{
    SKIP_IF_NO_GPU(g);
    nb_test_seed(4);
    static const uint32_t widths[] = {1, 31, 33, 257, 5376};
    static const uint32_t rows[] = {1, 33, 3, 2, 3};
    for (uint32_t op = NB_ELT_GEGLU; op <= NB_ELT_SOFTCAP; op++)
        for (size_t i = 0; i < sizeof widths / sizeof widths[0]; i++)
            check_elt(g, op, widths[i], rows[i], false, op == NB_ELT_SOFTCAP ? 30.0f : 0.37f);
    check_elt(g, NB_ELT_GEGLU, 704, 8, true, 0);
    check_elt(g, NB_ELT_GEGLU, 33, 5, true, 0);
}

/* the convenience wrappers: fused GEGLU, in-place softcap and device scale over long vectors */
static void test_eltwise_wrappers(void **state)
{
    SKIP_IF_NO_GPU(g);
    struct vkx_ctx *vk = g->fx.vk;
    nb_test_seed(5);
    const uint32_t F = 257, T = 3, N = 262144 + 77;
    float *gu = rand_vec(2 * F * T, 4.0f), *x = rand_vec(N, 100.0f), s = 0.5f;
    float *ref = malloc(sizeof(float) * N), *gref = malloc(sizeof(float) * F * T);
    for (uint32_t t = 0; t < T; t++)
        for (uint32_t j = 0; j < F; j++)
            gref[t * F + j] = (float)(gelu_ref(gu[t * 2 * F + j]) * gu[t * 2 * F + F + j]);
    for (uint32_t i = 0; i < N; i++) ref[i] = (float)(30.0 * tanh(x[i] / 30.0) * s);
    struct vkx_buffer bgu, bo, bx, bs;
    dev_buf(vk, &bgu, 2 * F * T * 4, gu);
    dev_buf(vk, &bo, F * T * 4, NULL);
    dev_buf(vk, &bx, (size_t)N * 4, x);
    dev_buf(vk, &bs, 4, &s);
    struct vkx_view none = {0};
    struct vkx_cmd c;
    cmd_start(vk, &c);
    nb_op_geglu(&g->op, vk, &c, vkx_whole(&bgu), none, vkx_whole(&bo), F, T);
    nb_op_softcap(&g->op, vk, &c, vkx_whole(&bx), N, 30.0f);
    vkx_cmd_barrier(&c);
    nb_op_scale_dev(&g->op, vk, &c, vkx_whole(&bx), vkx_whole(&bs), N);
    cmd_finish(vk, &c);
    float *got = download(vk, &bo, F * T), *gx = download(vk, &bx, N);
    assert_int_equal(nb_test_compare("geglu fused", got, gref, F * T, 2e-6f, 2e-6f), 0);
    assert_int_equal(nb_test_compare("softcap*scale", gx, ref, N, 4e-6f, 2e-6f), 0);
    vkx_buffer_destroy(vk, &bgu);
    vkx_buffer_destroy(vk, &bo);
    vkx_buffer_destroy(vk, &bx);
    vkx_buffer_destroy(vk, &bs);
    free(gu), free(x), free(ref), free(gref), free(got), free(gx);
}

/* ---- MoE -------------------------------------------------------------------------------------- */

static void ref_router(const float *l, const float *sc, uint32_t E, uint32_t k, uint32_t *ids,
                       float *w)
{
    double mx = -INFINITY, sum = 0;
    for (uint32_t e = 0; e < E; e++) mx = fmax(mx, l[e]);
    double *p = malloc(sizeof(double) * E);
    for (uint32_t e = 0; e < E; e++) sum += p[e] = exp(l[e] - mx);
    for (uint32_t e = 0; e < E; e++) p[e] /= sum;
    double tot = 0;
    for (uint32_t s = 0; s < k; s++) {
        uint32_t best = UINT32_MAX;
        for (uint32_t e = 0; e < E; e++) {
            bool taken = false;
            for (uint32_t q = 0; q < s; q++) taken |= ids[q] == e;
            if (!taken && (best == UINT32_MAX || p[e] > p[best])) best = e;
        }
        ids[s] = best;
        tot += p[best];
    }
    tot = fmax(tot, 6.1035e-5);
    for (uint32_t s = 0; s < k; s++) w[s] = (float)(p[ids[s]] / tot * (sc ? sc[ids[s]] : 1.0));
    free(p);
}

static void check_router(struct cfg *g, uint32_t E, uint32_t k, uint32_t T, bool scale, bool ties)
{
    struct vkx_ctx *vk = g->fx.vk;
    float *l = rand_vec((size_t)E * T, 4.0f), *sc = rand_vec(E, 1.0f);
    if (ties) /* quantised logits: many exact ties, resolved to the lower expert */
        for (size_t i = 0; i < (size_t)E * T; i++) l[i] = roundf(l[i]);
    uint32_t *ids = malloc(4 * k * T), *rids = malloc(4 * k * T);
    float *rw = malloc(4 * k * T);
    for (uint32_t t = 0; t < T; t++)
        ref_router(l + (size_t)t * E, scale ? sc : NULL, E, k, rids + t * k, rw + t * k);
    struct vkx_buffer bl, bs, bi, bw;
    dev_buf(vk, &bl, (size_t)E * T * 4, l);
    dev_buf(vk, &bs, E * 4, sc);
    dev_buf(vk, &bi, k * T * 4, NULL);
    dev_buf(vk, &bw, k * T * 4, NULL);
    struct vkx_view none = {0};
    struct vkx_cmd c;
    cmd_start(vk, &c);
    nb_op_moe_router(&g->op, vk, &c, vkx_whole(&bl), scale ? vkx_whole(&bs) : none,
                     vkx_whole(&bi), vkx_whole(&bw), E, k, T);
    cmd_finish(vk, &c);
    vkx_download(vk, &bi, 0, ids, 4 * k * T);
    float *w = download(vk, &bw, k * T);
    for (uint32_t i = 0; i < k * T; i++)
        if (ids[i] != rids[i]) fail_msg("router E=%u k=%u: ids[%u] = %u, want %u", E, k, i, ids[i],
                                        rids[i]);
    char what[64];
    snprintf(what, sizeof what, "router E=%u k=%u T=%u", E, k, T);
    assert_int_equal(nb_test_compare(what, w, rw, k * T, 1e-6f, 1e-5f), 0);
    vkx_buffer_destroy(vk, &bl);
    vkx_buffer_destroy(vk, &bs);
    vkx_buffer_destroy(vk, &bi);
    vkx_buffer_destroy(vk, &bw);
    free(l), free(sc), free(ids), free(rids), free(rw), free(w);
}

static void test_moe_router(void **state)
{
    SKIP_IF_NO_GPU(g);
    nb_test_seed(6);
    check_router(g, 128, 8, 1, true, false);
    check_router(g, 128, 8, 33, true, false);
    check_router(g, 128, 8, 9, false, true);
    check_router(g, 33, 5, 7, true, true);
    check_router(g, 1, 1, 2, true, false);
    check_router(g, 257, 32, 3, true, false);
}

static void test_moe_combine(void **state)
{
    SKIP_IF_NO_GPU(g);
    struct vkx_ctx *vk = g->fx.vk;
    nb_test_seed(7);
    static const uint32_t shapes[][4] = {{257, 8, 3, 260}, {2816, 8, 1, 0}, {31, 1, 33, 0}};
    for (size_t q = 0; q < 3; q++) {
        uint32_t H = shapes[q][0], k = shapes[q][1], T = shapes[q][2], ys = shapes[q][3];
        uint32_t yst = ys ? ys : H;
        float *y = rand_vec((size_t)T * k * yst, 2.0f), *w = rand_vec((size_t)T * k, 1.0f);
        float *ref = malloc(sizeof(float) * T * H);
        for (uint32_t t = 0; t < T; t++)
            for (uint32_t j = 0; j < H; j++) {
                double acc = 0;
                for (uint32_t s = 0; s < k; s++)
                    acc += (double)w[t * k + s] * y[(size_t)(t * k + s) * yst + j];
                ref[t * H + j] = (float)acc;
            }
        struct vkx_buffer by, bw, bo;
        dev_buf(vk, &by, (size_t)T * k * yst * 4, y);
        dev_buf(vk, &bw, (size_t)T * k * 4, w);
        dev_buf(vk, &bo, (size_t)T * H * 4, NULL);
        struct vkx_cmd c;
        cmd_start(vk, &c);
        nb_op_moe_combine(&g->op, vk, &c, vkx_whole(&by), vkx_whole(&bw), vkx_whole(&bo), H, k, T,
                          ys);
        cmd_finish(vk, &c);
        float *got = download(vk, &bo, (size_t)T * H);
        assert_int_equal(nb_test_compare("moe combine", got, ref, (size_t)T * H, 1e-5f, 1e-5f), 0);
        vkx_buffer_destroy(vk, &by);
        vkx_buffer_destroy(vk, &bw);
        vkx_buffer_destroy(vk, &bo);
        free(y), free(w), free(ref), free(got);
    }
}

/* ---- timings (printed, not checked) ------------------------------------------------------------ */

static void test_bench(void **state)
{
    SKIP_IF_NO_GPU(g);
    struct vkx_ctx *vk = g->fx.vk;
    const uint32_t H = 5376, T = 64, F = 21504, NH = 32, HD = 256;
    size_t big = (size_t)F * 2 * 8; /* the largest buffer: gate_up of 8 tokens */
    if ((size_t)H * T > big) big = (size_t)H * T;
    struct vkx_buffer bx, by, bw, bp;
    dev_buf(vk, &bx, big * 4, NULL);
    dev_buf(vk, &by, big * 4, NULL);
    dev_buf(vk, &bw, H * 4, NULL);
    dev_buf(vk, &bp, T * 4, NULL);
    struct vkx_cmd c;
    vkx_cmd_create(vk, &c, 16, true);
    vkx_cmd_begin(vk, &c);
    vkx_cmd_fill(&c, vkx_whole(&bx), 0x3f800000u);
    vkx_cmd_fill(&c, vkx_whole(&by), 0x3f000000u);
    vkx_cmd_fill(&c, vkx_whole(&bw), 0x3f800000u);
    vkx_cmd_fill(&c, vkx_whole(&bp), 100000u);
    nb_op_norm(&g->op, vk, &c, vkx_whole(&bx), vkx_whole(&bw), vkx_whole(&by), H, 1, 1e-6f);
    vkx_cmd_barrier(&c);
    nb_op_norm(&g->op, vk, &c, vkx_whole(&bx), vkx_whole(&bw), vkx_whole(&by), H, T, 1e-6f);
    vkx_cmd_barrier(&c);
    nb_op_norm_add(&g->op, vk, &c, vkx_whole(&bx), vkx_whole(&bw), vkx_whole(&by), H, T, 1e-6f,
                   vkx_whole(&bw));
    struct nb_norm_args qa = {.n = HD, .n_heads = NH, .n_tokens = 8, .x = vkx_whole(&bx),
                              .y = vkx_whole(&bx), .w = vkx_whole(&bw), .eps = 1e-6f,
                              .n_rot = HD, .rope_base = 1e4, .pos = vkx_whole(&bp)};
    nb_op_rmsnorm(&g->op, vk, &c, &qa);
    vkx_cmd_barrier(&c);
    struct vkx_view none = {0};
    nb_op_rope(&g->op, vk, &c, vkx_whole(&bx), 0, 0, NH, HD, 8, HD, 1e4, vkx_whole(&bp), none);
    vkx_cmd_barrier(&c);
    nb_op_geglu(&g->op, vk, &c, vkx_whole(&bx), none, vkx_whole(&by), F, 8);
    vkx_cmd_end(vk, &c);
    vkx_cmd_submit_wait(vk, &c);
    vkx_cmd_submit_wait(vk, &c);
    double ns[16] = {0};
    uint32_t nt = vkx_cmd_read_times(vk, &c, ns, 16);
    static const char *names[] = {"norm H=5376 T=1", "norm H=5376 T=64", "norm_add+scale T=64",
                                  "q_norm+rope 32x256 T=8", "rope 32x256 T=8", "geglu F=21504 T=8"};
    const double bytes[] = {2.0 * H * 4, 2.0 * H * T * 4, 3.0 * H * T * 4, 2.0 * NH * HD * 8 * 4,
                            2.0 * NH * HD * 8 * 4, 3.0 * F * 8 * 4};
    for (uint32_t i = 0; i < 6 && i < nt; i++)
        printf("# bench %-24s %9.1f us %7.2f GB/s\n", names[i], ns[i] / 1e3,
               ns[i] > 0 ? bytes[i] / ns[i] : 0.0);
    nb_test_check_validation();
    vkx_cmd_destroy(vk, &c);
    vkx_buffer_destroy(vk, &bx);
    vkx_buffer_destroy(vk, &by);
    vkx_buffer_destroy(vk, &bw);
    vkx_buffer_destroy(vk, &bp);
}

/* ---- setup ------------------------------------------------------------------------------------ */

static int op_create(void *op, struct vkx_ctx *vk, char *err, size_t errlen)
{
    return nb_op_misc_create(op, vk, err, errlen);
}
static void op_destroy(void *op, struct vkx_ctx *vk) { nb_op_misc_destroy(op, vk); }

static int setup(void **state, bool fallback)
{
    static struct cfg g;
    int rc = nb_test_fixture_setup(state, &g.fx, fallback, &g.op, op_create, op_destroy);
    if (rc != 0 || !*state) return rc;
    printf("# %s: subgroup %d, norm wg %u/%u\n", fallback ? "fallback" : "normal", g.op.subgroup,
           g.op.norm_wg, g.op.norm_small_wg);
    return fallback && g.op.subgroup ? -1 : 0;
}
static int setup_normal(void **state) { return setup(state, false); }
static int setup_fallback(void **state) { return setup(state, true); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_norm),        cmocka_unit_test(test_norm_rope),
        cmocka_unit_test(test_rope),        cmocka_unit_test(test_eltwise),
        cmocka_unit_test(test_eltwise_wrappers), cmocka_unit_test(test_moe_router),
        cmocka_unit_test(test_moe_combine), cmocka_unit_test(test_bench),
    };
    int rc = cmocka_run_group_tests_name("normal", tests, setup_normal, nb_test_fixture_teardown);
    rc |= cmocka_run_group_tests_name("fallback", tests, setup_fallback, nb_test_fixture_teardown);
    nb_test_vk_done();
    return rc;
}

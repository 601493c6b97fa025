/* selftest.c: the op pipelines built with fallbacks, and the numeric self-test at load (see
 * selftest.h). */
#include "selftest.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "forward.h"
#include "nb_shaders.h"
#include "platform.h"
#include "quant.h"
#include "vkx_selftest.h"

static const char *const family_name[NB_ST_NFAMILY] = {"matrix", "attention",
                                                       "norm/rope/eltwise/sampling"};

/* ---- the comparisons --------------------------------------------------------------------- */

struct probe {
    struct nb_gpu_model *g;
    struct vkx_ctx *vk;
    uint64_t rng;
    char bad[96];      /* the first pipeline that differed ("" when none) */
    double bad_err;    /* its largest difference */
    uint32_t checked;  /* dispatches compared */
};

static float randf(struct probe *P)
{
    P->rng ^= P->rng << 13;
    P->rng ^= P->rng >> 7;
    P->rng ^= P->rng << 17;
    return (float)((P->rng >> 16) & 0xFFFFFF) / 8388608.0f - 1.0f; /* [-1, 1) */
}

static void fill(struct probe *P, float *v, size_t n)
{
    for (size_t i = 0; i < n; i++) v[i] = randf(P);
}

/* got against ref, n values, |got - ref| <= atol + rtol |ref|; NIBBLE_FAULT=corrupt:NAME
 * falsifies got first. Records the first pipeline that differs. */
static void compare(struct probe *P, const char *name, const char *what, float *got,
                    const float *ref, size_t n, float atol, float rtol)
{
    if (vkx_fault("corrupt", name))
        for (size_t i = 0; i < n; i++) got[i] = got[i] * 2.0f + 1.0f;
    double worst = 0;
    bool bad = false;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        if (!(d <= atol + rtol * fabsf(ref[i]))) bad = true; /* NaN too */
        if (!(d <= worst)) worst = d;
    }
    P->checked++;
    if (bad && !P->bad[0]) {
        snprintf(P->bad, sizeof P->bad, "%s (%s)", name, what);
        P->bad_err = worst;
    }
}

/* A host-visible buffer of n bytes, mapped. */
static int hbuf(struct probe *P, struct vkx_buffer *b, size_t n, char *err, size_t errlen)
{
    return vkx_buffer_create(P->vk, b, n, VKX_MEM_HOST, err, errlen);
}

static void submit(struct probe *P, struct vkx_cmd *c)
{
    vkx_cmd_end(P->vk, c);
    vkx_cmd_submit_wait(P->vk, c);
}

/* Matrix products: per weight type of the model, a 64 x 256 weight (rows in the model's tiles)
 * times 8 random tokens: matvec for each token count the model dispatches, the tiled matmul
 * where the model uses it, and 3 embedding rows; with experts (NB_MM_EXPERTS) the same weight as
 * 4 experts of 16 rows: the decode expert product of 2 tokens x 2 slots and, where the model
 * groups prefill by expert, the grouped product of the 8 tokens x 2 slots. */
static int check_matrix(struct probe *P, char *err, size_t errlen)
{
    struct nb_op_matmul *o = &P->g->mm;
    struct vkx_ctx *vk = P->vk;
    enum { K = 256, M = 64, T = 8, NE = 3, REGION = 4096, NX = 4, MX = M / NX, SL = 2 };
    static const uint32_t ids[NE] = {5, 0, 63};
    static const uint32_t eids[T * SL] = {3, 0, 1, 3, 2, 2, 0, 1, 3, 1, 0, 2, 1, 0, 2, 3};
    bool experts = (o->types & NB_MM_EXPERTS) != 0, grouped = experts && !o->prefill_matvec;
    float *wf = malloc(sizeof(float) * K * M), *wr = malloc(sizeof(float) * K * M);
    float *x = malloc(sizeof(float) * K * T), *ref = malloc(sizeof(float) * K * T);
    float *xq = malloc(sizeof(float) * K * T), *refq = malloc(sizeof(float) * K * T);
    uint8_t *raw = malloc(4 * K * M);
    struct vkx_buffer xb = {0}, yb = {0}, ib = {0}, eb = {0}, sb = {0};
    int rc = -1;
    if (!wf || !wr || !x || !ref || !xq || !refq || !raw) {
        snprintf(err, errlen, "self-test: out of host memory");
        goto done;
    }
    fill(P, x, (size_t)K * T);
    /* x as the forward pass has it: device memory at an aligned offset, with a texel view when
     * the ops read x through one */
    VkDeviceSize xoff = vk->caps.min_storage_align > 16 ? vk->caps.min_storage_align : 16;
    if (vkx_buffer_create(vk, &xb, (xoff + sizeof(float) * K * T + 15) / 16 * 16,
                          VKX_MEM_DEVICE, err, errlen) ||
        hbuf(P, &yb, 8 * REGION, err, errlen) || hbuf(P, &ib, sizeof ids, err, errlen) ||
        (experts && (hbuf(P, &eb, sizeof eids, err, errlen) ||
                     hbuf(P, &sb, nb_op_matmul_id_scratch_bytes(NX, T, SL), err, errlen))))
        goto done;
    if (experts) memcpy(eb.map, eids, sizeof eids);
    vkx_upload(vk, &xb, xoff, x, sizeof(float) * K * T);
    char ignored[256]; /* none after a plain rebuild: the ops read x as a storage buffer */
    if (o->texel) (void)vkx_buffer_texel_view(vk, &xb, ignored, sizeof ignored);
    memcpy(ib.map, ids, sizeof ids);
    struct vkx_view xv = {&xb, xoff, sizeof(float) * K * T};
    for (int t = 0; t < 31; t++) {
        if (!(o->types & NB_MM_TYPE_BIT(t))) continue;
        enum ggml_type ty = (enum ggml_type)t;
        uint64_t rb = ggml_row_size(ty, K);
        fill(P, wf, (size_t)K * M);
        for (uint32_t m = 0; m < M; m++)
            if (nb_quant_row(ty, wf + m * K, raw + m * rb, K) ||
                nb_dequant_row(ty, raw + m * rb, wr + m * K, K)) {
                snprintf(err, errlen, "self-test: cannot make %s weights", ggml_type_name(ty));
                goto done;
            }
        struct nb_gtensor w;
        uint64_t ne[4] = {K, M, 1, 1};
        if (nb_gtensor_from_host_tiled(vk, &w, ty, ne, raw, 0, o->tile_shift, err, errlen))
            goto done;
        struct vkx_cmd c;
        vkx_cmd_create(vk, &c, 32, false);
        vkx_cmd_begin(vk, &c);
        for (int k = 0; k < NB_MV_VARIANTS; k++)
            if ((1u << k) <= o->mv_chunk)
                nb_op_matvec(o, vk, &c, &w, xv, (struct vkx_view){&yb, k * REGION, 0}, 1u << k,
                             0, 0, false);
        bool mm = !o->prefill_matvec && w.tile_shift == 0;
        if (mm) nb_op_matmul(o, vk, &c, &w, xv, (struct vkx_view){&yb, 4 * REGION, 0}, T, 0, 0,
                             false);
        nb_op_embed(o, vk, &c, &w, vkx_whole(&ib), (struct vkx_view){&yb, 5 * REGION, 0}, NE,
                    K, 1.5f);
        struct nb_gtensor wx = {0}; /* the same rows as NX experts {K, MX, NX} */
        uint64_t nex[4] = {K, MX, NX, 1};
        if (experts && nb_gtensor_from_host_tiled(vk, &wx, ty, nex, raw, 0, o->tile_shift, err,
                                                  errlen)) {
            vkx_cmd_destroy(vk, &c);
            nb_gtensor_destroy(vk, &w);
            goto done;
        }
        if (experts)
            nb_op_matvec_id(o, vk, &c, &wx, xv, (struct vkx_view){&yb, 6 * REGION, 0},
                            vkx_whole(&eb), 2, SL, false, 0, 0, false);
        if (grouped && wx.tile_shift == 0)
            nb_op_matmul_id(o, vk, &c, &wx, xv, (struct vkx_view){&yb, 7 * REGION, 0},
                            vkx_whole(&eb), vkx_whole(&sb), T, SL, false, 0, 0, false);
        submit(P, &c);
        vkx_cmd_destroy(vk, &c);
        nb_gtensor_destroy(vk, &w);
        bool mmx = grouped && wx.tile_shift == 0;
        if (experts) nb_gtensor_destroy(vk, &wx);
        /* the int8 decode path (op_int8.h) multiplies x rounded to 8-bit blocks of 32 and
         * their remainders (15 bits a block) as shaders/quant_act.comp rounds it */
        bool i8 = o->i8.on && (o->i8.types & NB_MM_TYPE_BIT(t));
        for (uint32_t i = 0; i < K * T && i8; i += 32) {
            float amax = 0;
            for (uint32_t j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[i + j]));
            float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
            for (uint32_t j = 0; j < 32; j++) {
                float v = x[i + j] * id;
                int q = (int)truncf(v + (v < 0.0f ? -0.5f : 0.5f));
                q = q < -127 ? -127 : q > 127 ? 127 : q;
                float rv = (x[i + j] - d * (float)q) * id * 128.0f;
                int r = (int)truncf(rv + (rv < 0.0f ? -0.5f : 0.5f));
                xq[i + j] = (float)(128 * q + r) * (d * (1.0f / 128.0f));
            }
        }
        for (int pass = 0; pass < 2; pass++) /* ref: x; refq: x as the matvecs read it */
            for (uint32_t tk = 0; tk < T; tk++)
                for (uint32_t m = 0; m < M; m++) {
                    const float *xs = pass && i8 ? xq : x;
                    double s = 0;
                    for (uint32_t i = 0; i < K; i++) s += (double)wr[m * K + i] * xs[tk * K + i];
                    (pass ? refq : ref)[tk * M + m] = (float)s;
                }
        char name[64], what[64];
        const char *tn = ggml_type_name(ty);
        for (int k = 0; k <= NB_MV_VARIANTS; k++) {
            uint32_t n = k < NB_MV_VARIANTS ? 1u << k : T;
            if ((k < NB_MV_VARIANTS && n > o->mv_chunk) || (k == NB_MV_VARIANTS && !mm)) continue;
            if (k == NB_MV_VARIANTS) snprintf(name, sizeof name, "matmul_%s", tn);
            else if (k == 0) snprintf(name, sizeof name, "matvec_%s", tn);
            else snprintf(name, sizeof name, "matvec%u_%s", n, tn);
            snprintf(what, sizeof what, "%u x %u, %u token%s", M, K, n, n > 1 ? "s" : "");
            if (i8 && k < NB_MV_VARIANTS) strncat(what, ", int8", sizeof what - strlen(what) - 1);
            /* matmul: f16 tiles where the device has fp16 (op_matmul.c), 2^-11 of sum |w x|
             * (at most 256 / 2048 here) */
            compare(P, name, what, (float *)((char *)yb.map + k * REGION),
                    k < NB_MV_VARIANTS ? refq : ref, (size_t)n * M,
                    k < NB_MV_VARIANTS ? 2e-4f * 16.0f : 0.125f, 1e-4f);
        }
        /* experts: pair (t, s) is expert eids[t * SL + s]'s MX rows times token t: refq's row
         * (x as the decode product reads it) and ref's (the grouped product's f32 or f16 tiles) */
        for (int g = 0; experts && g < 2; g++) {
            uint32_t nt = g ? T : 2;
            if (g && !mmx) break;
            float *out = (float *)((char *)yb.map + (6 + g) * REGION);
            const float *full = g ? ref : refq; /* [token][M] */
            float *want = wf; /* [pair][MX], scratch: wf is not needed any more */
            for (uint32_t pr = 0; pr < nt * SL; pr++)
                for (uint32_t m = 0; m < MX; m++)
                    want[pr * MX + m] = full[(pr / SL) * M + eids[pr] * MX + m];
            snprintf(name, sizeof name, "%s_%s", g ? "matmul_id" : "matvec_id", tn);
            snprintf(what, sizeof what, "%u experts of %u x %u, %u tokens x %u slots", NX, MX, K,
                     nt, SL);
            compare(P, name, what, out, want, (size_t)nt * SL * MX, g ? 0.125f : 2e-4f * 16.0f,
                    1e-4f);
        }
        for (uint32_t e = 0; e < NE; e++)
            for (uint32_t i = 0; i < K; i++) ref[e * K + i] = wr[ids[e] * K + i] * 1.5f;
        snprintf(name, sizeof name, "embed_%s", tn);
        compare(P, name, "3 rows", (float *)((char *)yb.map + 5 * REGION), ref, (size_t)NE * K,
                1e-5f, 1e-5f);
    }
    rc = 0;
done:
    if (xb.buf) vkx_buffer_destroy(vk, &xb);
    if (yb.buf) vkx_buffer_destroy(vk, &yb);
    if (ib.buf) vkx_buffer_destroy(vk, &ib);
    if (eb.buf) vkx_buffer_destroy(vk, &eb);
    if (sb.buf) vkx_buffer_destroy(vk, &sb);
    free(wf), free(wr), free(x), free(ref), free(xq), free(refq), free(raw);
    return rc;
}

/* Attention at each head size of the model, 4 query heads on one KV head over NK = 64 keys
 * stored by kv_store (f16) at positions 0..63: the last 8 positions' queries as one prefill
 * batch, the last one as one decode step, and that step split over the keys (split-K, chunks of
 * 16 keys merged by attn_combine). */
static int check_attn(struct probe *P, char *err, size_t errlen)
{
    struct nb_gpu_model *g = P->g;
    struct vkx_ctx *vk = P->vk;
    enum { T = 8, NH = 4, NK = 64 };
    uint32_t done_hd[8] = {0}, n_done = 0;
    /* the cache's element type a context gets by default (f32 for F32 K/V projections) */
    bool f32 = nb_fwd_kv_f32_auto(&g->m);
    if (f32 && nb_op_attn_enable_f32(&g->at, vk, err, errlen)) return -1;
    for (uint32_t l = 0; l < g->m.cfg.n_layer; l++) {
        uint32_t hd = g->m.cfg.layer[l].head_dim;
        bool seen = false;
        for (uint32_t i = 0; i < n_done; i++) seen |= done_hd[i] == hd;
        if (seen || n_done == 8) continue;
        done_hd[n_done++] = hd;
        struct nb_kv_layer_desc d = {1, hd, false, 0};
        struct nb_kvcache kv;
        if (nb_kvcache_create_f32(vk, &kv, 1, &d, NK, NK, NK, f32, err, errlen)) return -1;
        size_t qn = (size_t)T * NH * hd;
        struct vkx_buffer kb = {0}, vb = {0}, qb = {0}, pb = {0}, pq = {0}, p1 = {0}, ob = {0};
        struct vkx_buffer o1 = {0}, o2 = {0}, sb = {0};
        /* split-K for the third step: chunks of 16 keys (ATTN_BC) instead of min_chunk's */
        const uint32_t min_chunk = g->at.min_chunk;
        g->at.min_chunk = 16;
        size_t sbytes = nb_op_attn_scratch_bytes(&g->at, 1, NH, hd);
        int rc = -1;
        float *ref = malloc(sizeof(float) * qn), *kf = malloc(sizeof(float) * NK * hd),
              *vf = malloc(sizeof(float) * NK * hd), *s = malloc(sizeof(float) * NK);
        if (!ref || !kf || !vf || !s) {
            snprintf(err, errlen, "self-test: out of host memory");
            goto next;
        }
        if (hbuf(P, &kb, sizeof(float) * NK * hd, err, errlen) || /* [NK][hd] */
            hbuf(P, &vb, sizeof(float) * NK * hd, err, errlen) || /* [NK][hd] */
            hbuf(P, &qb, sizeof(float) * qn, err, errlen) ||      /* [T][NH][hd] */
            hbuf(P, &pb, 4 * NK, err, errlen) || hbuf(P, &pq, 4 * T, err, errlen) ||
            hbuf(P, &p1, 4, err, errlen) ||
            hbuf(P, &ob, sizeof(float) * qn, err, errlen) ||      /* [T][NH][hd] */
            hbuf(P, &o1, sizeof(float) * NH * hd, err, errlen) || /* [NH][hd] */
            hbuf(P, &o2, sizeof(float) * NH * hd, err, errlen) || /* [NH][hd] */
            hbuf(P, &sb, sbytes ? sbytes : 16, err, errlen) ||    /* split-K partials */
            nb_op_attn_prepare(&g->at, vk, &kv, err, errlen))
            goto next;
        float *k = kb.map, *v = vb.map, *q = qb.map;
        fill(P, k, (size_t)NK * hd);
        fill(P, v, (size_t)NK * hd);
        fill(P, q, qn);
        for (uint32_t t = 0; t < NK; t++) ((uint32_t *)pb.map)[t] = t;
        for (uint32_t t = 0; t < T; t++) ((uint32_t *)pq.map)[t] = NK - T + t;
        *(uint32_t *)p1.map = NK - 1;
        const float scale = 1.0f / sqrtf((float)hd);
        struct vkx_view none = {NULL, 0, 0};
        struct vkx_cmd c;
        vkx_cmd_create(vk, &c, 16, false);
        vkx_cmd_begin(vk, &c);
        nb_op_kv_store(&g->at, vk, &c, &kv, 0, vkx_whole(&kb), vkx_whole(&vb), vkx_whole(&pb), NK);
        vkx_cmd_barrier(&c);
        nb_op_attn(&g->at, vk, &c, &kv, 0, vkx_whole(&qb), vkx_whole(&ob), vkx_whole(&pq), T, NH,
                   scale, none);
        struct vkx_view qlast = {&qb, sizeof(float) * (T - 1) * NH * hd, sizeof(float) * NH * hd};
        nb_op_attn(&g->at, vk, &c, &kv, 0, qlast, vkx_whole(&o1), vkx_whole(&p1), 1, NH, scale,
                   none);
        nb_op_attn(&g->at, vk, &c, &kv, 0, qlast, vkx_whole(&o2), vkx_whole(&p1), 1, NH, scale,
                   vkx_whole(&sb));
        submit(P, &c);
        vkx_cmd_destroy(vk, &c);
        for (size_t i = 0; i < (size_t)NK * hd; i++) { /* as the cache holds them */
            kf[i] = f32 ? k[i] : nb_f16_to_f32(nb_f32_to_f16(k[i]));
            vf[i] = f32 ? v[i] : nb_f16_to_f32(nb_f32_to_f16(v[i]));
        }
        for (uint32_t t = 0; t < T; t++)
            for (uint32_t h = 0; h < NH; h++) {
                const float *qr = q + ((size_t)t * NH + h) * hd;
                const uint32_t last = NK - T + t; /* the query's position: keys 0..last */
                double mx = -INFINITY, sum = 0;
                for (uint32_t j = 0; j <= last; j++) {
                    double dot = 0;
                    for (uint32_t i = 0; i < hd; i++) dot += (double)qr[i] * kf[j * hd + i];
                    s[j] = (float)(dot * scale);
                    if (s[j] > mx) mx = s[j];
                }
                for (uint32_t j = 0; j <= last; j++) sum += exp(s[j] - mx);
                float *r = ref + ((size_t)t * NH + h) * hd;
                for (uint32_t i = 0; i < hd; i++) {
                    double a = 0;
                    for (uint32_t j = 0; j <= last; j++) a += exp(s[j] - mx) * vf[j * hd + i];
                    r[i] = (float)(a / sum);
                }
            }
        /* the pipelines nb_op_attn picked (the same rule as op_attn.c's) */
        const struct nb_kv_layer *L = &kv.layers[0];
        bool tx = g->at.texel && L->k.texel && L->v.texel;
        int hb = hd <= 128 ? 0 : hd <= 256 ? 1 : 2;
        char what[64];
        for (int dec = 0; dec < 2; dec++) {
            int b = (dec ? NH : T * NH) >= g->at.rows[1] ? 1 : 0;
            const struct vkx_pipeline(*set)[NB_ATTN_NQ_BUCKETS] =
                f32 ? (tx ? g->at.attn32_tx : g->at.attn32) : (tx ? g->at.attn_tx : g->at.attn);
            const struct vkx_pipeline *pl = &set[b][hb];
            snprintf(what, sizeof what, "head size %u, %s%s", hd, dec ? "decode" : "8 tokens",
                     f32 ? ", f32 cache" : "");
            compare(P, pl->name ? pl->name : "attn", what, dec ? o1.map : ob.map,
                    dec ? ref + (size_t)(T - 1) * NH * hd : ref,
                    dec ? (size_t)NH * hd : qn, 2e-3f, 1e-3f);
        }
        snprintf(what, sizeof what, "head size %u, decode split over the keys", hd);
        compare(P, g->at.combine.name ? g->at.combine.name : "attn_combine", what, o2.map,
                ref + (size_t)(T - 1) * NH * hd, (size_t)NH * hd, 2e-3f, 1e-3f);
        rc = 0;
    next:
        g->at.min_chunk = min_chunk;
        {
            struct vkx_buffer *all[] = {&kb, &vb, &qb, &pb, &pq, &p1, &ob, &o1, &o2, &sb};
            for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
                if (all[i]->buf) vkx_buffer_destroy(vk, all[i]);
        }
        nb_kvcache_destroy(vk, &kv);
        free(ref), free(kf), free(vf), free(s);
        if (rc) return -1;
    }
    return 0;
}

/* RMSNorm (a row over 1024 and short rows), RoPE, GEGLU and argmax. */
static int check_misc(struct probe *P, char *err, size_t errlen)
{
    struct nb_op_misc *o = &P->g->mi;
    struct vkx_ctx *vk = P->vk;
    enum { NW = 2048, NS = 128, HD = 64, NV = 1000, NG = 256 };
    enum { NB = 19, NX = 8, KX = 2, NC = 64 }; /* MoE: experts, slots, combined width */
    struct vkx_buffer b[NB] = {{0}};
    /* 0 x wide [2][NW], 1 w [NW], 2 y wide [2][NW], 3 x small [4][NS], 4 y small [4][NS],
     * 5 rope x [2][2][HD], 6 pos [2], 7 geglu g|u [2][NG] x 2, 8 geglu out [2][NG],
     * 9 logits [NV], 10 argmax, sampled [2], 11 the sampler's draw counter [1],
     * 12 router logits [2][NX], 13 expert scales [NX], 14 router ids [2][KX],
     * 15 router weights [2][KX], 16 combine y [2 * KX][NC], 17 combine weights [2][KX],
     * 18 combine out [2][NC] */
    const size_t sz[NB] = {8 * NW,  4 * NW,  8 * NW,  16 * NS, 16 * NS,      16 * HD, 8,
                           16 * NG, 8 * NG,  4 * NV,  8,       4,            8 * NX,  4 * NX,
                           8 * KX,  8 * KX,  8 * KX * NC,      8 * KX,       8 * NC};
    float *ref = malloc(sizeof(float) * 2 * NW);
    int rc = -1;
    if (!ref) {
        snprintf(err, errlen, "self-test: out of host memory");
        goto done;
    }
    for (int i = 0; i < NB; i++)
        if (hbuf(P, &b[i], sz[i], err, errlen)) goto done;
    float *xw = b[0].map, *w = b[1].map, *xs = b[3].map, *rx = b[5].map, *gu = b[7].map;
    float *lg = b[9].map;
    fill(P, xw, 2 * NW), fill(P, w, NW), fill(P, xs, 4 * NS), fill(P, rx, 4 * HD);
    fill(P, gu, 4 * NG), fill(P, lg, NV);
    float *rl = b[12].map, *es = b[13].map, *cy = b[16].map, *cw = b[17].map;
    fill(P, rl, 2 * NX), fill(P, es, NX), fill(P, cy, 2 * KX * NC), fill(P, cw, 2 * KX);
    float rx0[4 * HD];
    memcpy(rx0, rx, sizeof rx0);
    ((uint32_t *)b[6].map)[0] = 3, ((uint32_t *)b[6].map)[1] = 17;
    const float eps = 1e-6f;
    struct vkx_view none = {NULL, 0, 0};
    struct vkx_cmd c;
    vkx_cmd_create(vk, &c, 24, false);
    vkx_cmd_begin(vk, &c);
    nb_op_norm(o, vk, &c, vkx_whole(&b[0]), vkx_whole(&b[1]), vkx_whole(&b[2]), NW, 2, eps);
    nb_op_norm(o, vk, &c, vkx_whole(&b[3]), none, vkx_whole(&b[4]), NS, 4, eps);
    nb_op_rope(o, vk, &c, vkx_whole(&b[5]), 0, 0, 2, HD, 2, HD, 10000.0, vkx_whole(&b[6]), none);
    struct vkx_view g = {&b[7], 0, 8 * NG}, u = {&b[7], 8 * NG, 8 * NG};
    nb_op_geglu(o, vk, &c, g, u, vkx_whole(&b[8]), NG, 2);
    nb_op_argmax(o, vk, &c, vkx_whole(&b[9]), NV, vkx_whole(&b[10]), 0);
    /* sampling (top-k 40, temp 0.8, top-p 0.95) with a draw far from every boundary between
     * tokens, where the device's and the reference's rounding cannot pick neighbours */
    enum { SK = 40, SEED = 1234 };
    uint32_t draw = 0;
    float margin = 0;
    while (draw < 64 && (nb_sample_ref(lg, NV, SK, 0.8f, 0.95f, SEED, draw, &margin),
                         margin < 1e-3f))
        draw++;
    *(uint32_t *)b[11].map = draw;
    nb_op_moe_router(o, vk, &c, vkx_whole(&b[12]), vkx_whole(&b[13]), vkx_whole(&b[14]),
                     vkx_whole(&b[15]), NX, KX, 2);
    nb_op_moe_combine(o, vk, &c, vkx_whole(&b[16]), vkx_whole(&b[17]), vkx_whole(&b[18]), NC, KX,
                      2, 0);
    vkx_cmd_barrier(&c); /* argmax and the sampler share their scratch */
    nb_op_sample(o, vk, &c, vkx_whole(&b[9]), NV, SK, 0.8f, 0.95f, SEED, vkx_whole(&b[11]),
                 vkx_whole(&b[10]), 1);
    submit(P, &c);
    vkx_cmd_destroy(vk, &c);

    const uint32_t rows[2] = {2, 4}, ns[2] = {NW, NS};
    const float *xs2[2] = {xw, xs};
    for (int v = 0; v < 2; v++) {
        for (uint32_t r = 0; r < rows[v]; r++) {
            const float *xr = xs2[v] + (size_t)r * ns[v];
            double ss = 0;
            for (uint32_t i = 0; i < ns[v]; i++) ss += (double)xr[i] * xr[i];
            double inv = 1.0 / sqrt(ss / ns[v] + eps);
            for (uint32_t i = 0; i < ns[v]; i++)
                ref[r * ns[v] + i] = (float)(xr[i] * inv * (v == 0 ? w[i] : 1.0));
        }
        const struct vkx_pipeline *pl = v == 0 ? &o->norm : &o->norm_small;
        compare(P, pl->name, v == 0 ? "row of 2048" : "rows of 128", v == 0 ? b[2].map : b[4].map,
                ref, (size_t)rows[v] * ns[v], 1e-5f, 1e-4f);
    }
    for (uint32_t t = 0; t < 2; t++)
        for (uint32_t h = 0; h < 2; h++)
            for (uint32_t i = 0; i < HD / 2; i++) {
                const float *xr = rx0 + (t * 2 + h) * HD;
                double th = ((uint32_t *)b[6].map)[t] * pow(10000.0, -2.0 * i / HD);
                float *r = ref + (t * 2 + h) * HD;
                r[i] = (float)(xr[i] * cos(th) - xr[i + HD / 2] * sin(th));
                r[i + HD / 2] = (float)(xr[i + HD / 2] * cos(th) + xr[i] * sin(th));
            }
    compare(P, o->rope.name, "2 tokens, 2 heads of 64", rx, ref, 4 * HD, 1e-5f, 1e-4f);
    for (uint32_t i = 0; i < 2 * NG; i++) {
        double a = gu[i], bu = gu[2 * NG + i];
        double ge = 0.5 * a * (1.0 + tanh(0.7978845608028654 * (a + 0.044715 * a * a * a)));
        ref[i] = (float)(ge * bu);
    }
    compare(P, o->elt.name, "geglu", b[8].map, ref, 2 * NG, 1e-5f, 1e-4f);
    uint32_t best = 0;
    for (uint32_t i = 1; i < NV; i++)
        if (lg[i] > lg[best]) best = i;
    float got = (float)*(uint32_t *)b[10].map, want = (float)best;
    compare(P, o->sample[0].name, "argmax of 1000", &got, &want, 1, 0.0f, 0.0f);
    /* router: softmax over the experts, the top KX (ties to the lower), weights over their sum
     * times the expert's scale; ids compared as floats */
    float rref[4 * KX], rgot[4 * KX];
    for (uint32_t t = 0; t < 2; t++) {
        const float *l = rl + t * NX;
        float mx = l[0], p[NX], sum = 0, ksum = 0;
        for (uint32_t e = 1; e < NX; e++) mx = fmaxf(mx, l[e]);
        for (uint32_t e = 0; e < NX; e++) sum += p[e] = expf(l[e] - mx);
        bool taken[NX] = {false};
        for (uint32_t s = 0; s < KX; s++) {
            uint32_t bi = NX;
            for (uint32_t e = 0; e < NX; e++)
                if (!taken[e] && (bi == NX || p[e] > p[bi])) bi = e;
            taken[bi] = true;
            rref[t * KX + s] = (float)bi;
            rref[2 * KX + t * KX + s] = p[bi] / sum;
            ksum += p[bi] / sum;
        }
        for (uint32_t s = 0; s < KX; s++) {
            float *w8 = &rref[2 * KX + t * KX + s];
            *w8 = *w8 / fmaxf(ksum, 6.1035e-5f) * es[(uint32_t)rref[t * KX + s]];
        }
    }
    for (uint32_t i = 0; i < 2 * KX; i++) {
        rgot[i] = (float)((uint32_t *)b[14].map)[i];
        rgot[2 * KX + i] = ((float *)b[15].map)[i];
    }
    compare(P, o->router.name, "2 tokens, top 2 of 8 experts", rgot, rref, 4 * KX, 1e-5f, 1e-4f);
    for (uint32_t t = 0; t < 2; t++)
        for (uint32_t j = 0; j < NC; j++) {
            double a = 0;
            for (uint32_t s = 0; s < KX; s++)
                a += (double)cw[t * KX + s] * cy[(t * KX + s) * NC + j];
            ref[t * NC + j] = (float)a;
        }
    compare(P, o->combine.name, "2 tokens, 2 slots of 64", b[18].map, ref, 2 * NC, 1e-5f, 1e-4f);
    got = (float)((uint32_t *)b[10].map)[1];
    want = (float)nb_sample_ref(lg, NV, SK, 0.8f, 0.95f, SEED, draw, NULL);
    compare(P, o->sample[1].name, "top-k 40 of 1000, temp 0.8, top-p 0.95", &got, &want, 1, 0.0f,
            0.0f);
    rc = 0;
done:
    for (int i = 0; i < NB; i++)
        if (b[i].buf) vkx_buffer_destroy(vk, &b[i]);
    free(ref);
    return rc;
}

/* ---- building, the verdicts ---------------------------------------------------------------- */

static int build(struct nb_gpu_model *g, int f, uint32_t types, char *err, size_t errlen)
{
    switch (f) {
    case NB_ST_MATRIX: return nb_op_matmul_create_for(&g->mm, &g->vk, types, err, errlen);
    case NB_ST_ATTN: {
        uint32_t hd_max = 0; /* only the head-dim buckets the model uses */
        for (uint32_t l = 0; l < g->m.cfg.n_layer; l++)
            if (g->m.cfg.layer[l].head_dim > hd_max) hd_max = g->m.cfg.layer[l].head_dim;
        return nb_op_attn_create_for(&g->at, &g->vk, hd_max, err, errlen);
    }
    default: return nb_op_misc_create(&g->mi, &g->vk, err, errlen);
    }
}

static void unbuild(struct nb_gpu_model *g, int f)
{
    if (f == NB_ST_MATRIX && g->mm.types) nb_op_matmul_destroy(&g->mm, &g->vk);
    if (f == NB_ST_ATTN && g->at.store.pipe) nb_op_attn_destroy(&g->at, &g->vk);
    if (f == NB_ST_MISC && g->mi.norm.pipe) nb_op_misc_destroy(&g->mi, &g->vk);
    if (f == NB_ST_MATRIX) memset(&g->mm, 0, sizeof g->mm);
    if (f == NB_ST_ATTN) memset(&g->at, 0, sizeof g->at);
    if (f == NB_ST_MISC) memset(&g->mi, 0, sizeof g->mi);
}

static int check_family(struct probe *P, int f, char *err, size_t errlen)
{
    P->bad[0] = 0;
    switch (f) {
    case NB_ST_MATRIX: return check_matrix(P, err, errlen);
    case NB_ST_ATTN: return check_attn(P, err, errlen);
    default: return check_misc(P, err, errlen);
    }
}

/* The check with the device's failures (a lost device, out of memory) caught: 0, or -1 with a
 * message naming the VkResult. */
static int check(struct probe *P, int f, char *err, size_t errlen)
{
    vkx_cmd_catch(true);
    int rc = check_family(P, f, err, errlen);
    VkResult r = vkx_cmd_catch(false);
    if (r != VK_SUCCESS) {
        snprintf(err, errlen, "self-test: the device failed: %s", vkx_result_name(r));
        return -1;
    }
    return rc;
}

/* A build failure that is the device's state, not the pipeline's: no fallback, no verdict. */
static bool transient(const char *err)
{
    return strstr(err, "VK_ERROR_DEVICE_LOST") || strstr(err, "VK_ERROR_OUT_OF_DEVICE_MEMORY") ||
           strstr(err, "VK_ERROR_OUT_OF_HOST_MEMORY");
}

/* The optional features a plain rebuild would turn off ("" when none is on). */
static void plain_names(const struct vkx_ctx *vk, char *buf, size_t n)
{
    static const struct { unsigned f; const char *name; } feats[] = {
        {VKX_FEAT_SUBGROUP, "subgroup"}, {VKX_FEAT_TEXEL, "texel"}, {VKX_FEAT_SGSIZE, "sgsize"},
        {VKX_FEAT_HALFCVT, "halfcvt"},   {VKX_FEAT_FP16, "fp16"},   {VKX_FEAT_INT8, "int8"}};
    size_t w = 0;
    buf[0] = 0;
    for (size_t i = 0; i < sizeof feats / sizeof feats[0]; i++)
        if (vkx_has(vk, (enum vkx_feature)feats[i].f) && w < n)
            w += (size_t)snprintf(buf + w, n - w, "%s%s", w ? "," : "", feats[i].name);
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    for (size_t i = 0; i < n; i++) h = (h ^ ((const uint8_t *)p)[i]) * 0x100000001b3ull;
    return h;
}

#ifndef NB_SELFTEST_CODE_SUM /* set by CMakeLists.txt: a checksum of this file and its references */
#define NB_SELFTEST_CODE_SUM "unknown"
#endif

/* The verdict keys of the three families: device, driver version, build, switches, and what
 * the family's pipelines are for this model. */
static void make_keys(const struct vkx_ctx *vk, const struct nb_model *m, uint32_t types,
                      char keys[NB_ST_NFAMILY][128])
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (int i = 0; i < NB_SPV_COUNT; i++) h = fnv(h, nb_spv[i].code, *nb_spv[i].size);
    h = fnv(h, NB_SELFTEST_CODE_SUM, sizeof NB_SELFTEST_CODE_SUM); /* the judging C code */
    /* switches that change which pipelines run beyond the disabled mask */
    static const char *const envs[] = {"NIBBLE_FAULT", "NIBBLE_INT8"};
    for (size_t i = 0; i < sizeof envs / sizeof envs[0]; i++) {
        const char *v = getenv(envs[i]);
        h = fnv(h, v ? v : "", v ? strlen(v) + 1 : 0);
    }
    const struct vkx_caps *c = &vk->caps;
    char dev[96];
    snprintf(dev, sizeof dev, "%04x:%04x:%08x:%016llx:%x:%d", c->vendor_id, c->device_id,
             c->driver_version, (unsigned long long)h, c->disabled, vk->tune_cpu);
    uint64_t hds = 0xcbf29ce484222325ull;
    for (uint32_t l = 0; l < m->cfg.n_layer; l++)
        hds = fnv(hds, &m->cfg.layer[l].head_dim, sizeof m->cfg.layer[l].head_dim);
    snprintf(keys[NB_ST_MATRIX], 128, "%s:matrix:%08x", dev, types);
    snprintf(keys[NB_ST_ATTN], 128, "%s:attn:%08llx", dev, (unsigned long long)(hds >> 32));
    snprintf(keys[NB_ST_MISC], 128, "%s:misc", dev);
}

/* Rebuilds family f in its plain variant (and everything built later); 0 or -1. */
static int go_plain(struct nb_gpu_model *g, int f, uint32_t types, char *err, size_t errlen)
{
    unbuild(g, f);
    g->vk.caps.disabled |= NB_SELFTEST_PLAIN;
    g->st.plain |= 1u << f;
    return build(g, f, types, err, errlen);
}

/* Appends one family's message to st->note. */
static void note(struct nb_selftest *st, const char *msg)
{
    size_t w = strlen(st->note);
    snprintf(st->note + w, sizeof st->note - w, "%s%s", w ? "; " : "", msg);
}

int nb_selftest_build(struct nb_gpu_model *g, uint32_t types, char *err, size_t errlen)
{
    struct nb_selftest *st = &g->st;
    struct vkx_ctx *vk = &g->vk;
    memset(st, 0, sizeof *st);
    const char *env = getenv("NIBBLE_SELFTEST");
    if (env && *env && strcmp(env, "0") && strcmp(env, "1")) {
        snprintf(err, errlen, "NIBBLE_SELFTEST=%s: expected 0 or 1", env);
        return -1;
    }
    st->off = env && !strcmp(env, "0");
    if (vkx_fault_check(err, errlen)) return -1;
    char keys[NB_ST_NFAMILY][128], val[512], feats[96];
    feats[0] = 0;
    make_keys(vk, &g->m, types, keys);
    bool known[NB_ST_NFAMILY] = {false};
    for (int f = 0; f < NB_ST_NFAMILY && !st->off; f++) {
        known[f] = vkx_verdict_get(vk, keys[f], val, sizeof val) == 1;
        if (known[f] && !strncmp(val, "plain ", 6)) {
            st->plain |= 1u << f;
            note(st, val + 6);
        }
    }
    if (st->plain) vk->caps.disabled |= NB_SELFTEST_PLAIN;
    char msg[400];
    for (int f = 0; f < NB_ST_NFAMILY; f++) {
        if (build(g, f, types, err, errlen) == 0) continue;
        plain_names(vk, feats, sizeof feats);
        if (!feats[0] || transient(err)) {
            unbuild(g, f);
            return -1;
        }
        snprintf(msg, sizeof msg, "%s pipelines failed to build (%s): built without %s",
                 family_name[f], err, feats);
        if (go_plain(g, f, types, err, errlen) != 0) return -1;
        note(st, msg);
        if (!st->off) {
            snprintf(val, sizeof val, "plain %s (cached)", msg);
            vkx_verdict_put(vk, keys[f], val);
            known[f] = true;
        }
    }
    uint64_t t0 = plat_now_ns();
    struct probe P = {.g = g, .vk = vk, .rng = 0x9E3779B97F4A7C15ull};
    for (int f = 0; f < NB_ST_NFAMILY && !st->off; f++) {
        if (known[f]) continue;
        st->ran = true;
        if (check(&P, f, err, errlen) != 0) return -1;
        snprintf(val, sizeof val, "ok");
        if (P.bad[0]) {
            char bad[96], e[32];
            snprintf(bad, sizeof bad, "%s", P.bad);
            snprintf(e, sizeof e, "%.3g", P.bad_err);
            plain_names(vk, feats, sizeof feats);
            if (!feats[0] || go_plain(g, f, types, err, errlen) != 0 ||
                check(&P, f, err, errlen) != 0 || P.bad[0]) {
                if (P.bad[0]) {
                    snprintf(bad, sizeof bad, "%s", P.bad);
                    snprintf(e, sizeof e, "%.3g", P.bad_err);
                }
                if (!feats[0] || P.bad[0])
                    snprintf(err, errlen, "self-test: %s differs from the CPU reference "
                             "(largest difference %s) in its plain variant: this driver "
                             "computes it wrongly (NIBBLE_SELFTEST=0 loads anyway)", bad, e);
                return -1;
            }
            snprintf(msg, sizeof msg, "%s differs from the CPU reference (largest difference "
                     "%s): %s pipelines built without %s", bad, e, family_name[f], feats);
            note(st, msg);
            snprintf(val, sizeof val, "plain %s (cached)", msg);
        }
        vkx_verdict_put(vk, keys[f], val);
    }
    st->checked = P.checked;
    st->ms = (double)(plat_now_ns() - t0) / 1e6;
    if (st->note[0]) fprintf(stderr, "nibble: self-test: %s\n", st->note);
    return 0;
}

uint32_t nb_selftest_types(const struct nb_model *m, const struct gguf_tensor *ple_host)
{
    uint32_t types = 0;
    for (uint64_t i = 0; i < m->gguf->n_tensors; i++) {
        const struct gguf_tensor *t = &m->gguf->tensors[i];
        if (t == ple_host) continue; /* read on the host */
        if (t->n_dims >= 2 && nb_op_matmul_supports(t->type)) types |= NB_MM_TYPE_BIT(t->type);
        if (t->n_dims >= 3 && t->ne[2] > 1) types |= NB_MM_EXPERTS;
    }
    return types;
}

int nb_selftest_info(const struct nb_model *m, FILE *out)
{
    struct vkx_ctx vk;
    char err[256], keys[NB_ST_NFAMILY][128], val[512];
    if (vkx_create(&vk, NULL, err, sizeof err) != 0) {
        fprintf(out, "self-test            no Vulkan device (%s)\n", err);
        return -1;
    }
    /* the per-layer token embeddings stay on the host unless NIBBLE_PLE=device (gpu_model.c) */
    const struct gguf_tensor *ple = m->w.per_layer_token_embd;
    const char *env = getenv("NIBBLE_PLE");
    if (ple && ((env && !strcmp(env, "device")) || !nb_dequant_supported(ple->type))) ple = NULL;
    make_keys(&vk, m, nb_selftest_types(m, ple), keys);
    fprintf(out, "self-test            %s:", vk.caps.name);
    for (int f = 0; f < NB_ST_NFAMILY; f++) {
        const char *v = vkx_verdict_get(&vk, keys[f], val, sizeof val) ? val : "not run yet";
        fprintf(out, "%s %s %s", f ? "," : "", family_name[f],
                !strncmp(v, "plain ", 6) ? "plain variant" : v);
    }
    fprintf(out, "\n");
    for (int f = 0; f < NB_ST_NFAMILY; f++)
        if (vkx_verdict_get(&vk, keys[f], val, sizeof val) && !strncmp(val, "plain ", 6))
            fprintf(out, "self-test            %s\n", val + 6);
    vkx_destroy(&vk);
    return 0;
}

/* mtp.c: the MTP assistant's step on the GPU (mtp.h), recorded once, one dispatch per line, in
 * the order of ref_mtp.c. It reads the target context's KV cache of the target's last sliding and
 * last full layer with the attention op: the query sits at position p but the target holds keys
 * 0 .. p-1 only (position p is written by the next verification), so the op runs with the
 * position p - 1 (keys up to p - 1) and, on sliding layers, a window one shorter (keys
 * p - window + 1 .. p - 1, as at position p); RoPE takes p itself. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forward.h"
#include "mtp.h"
#include "quant.h"

#define F4 sizeof(float)
#define NB_MTP_CHAINS 8

/* host/vkx_cmd.c (see nibble.c) */
VkResult vkx_cmd_catch(bool on);

struct mtp_layer {
    struct vkx_buffer attn_norm, attn_q_norm, post_attention_norm, ffn_norm, post_ffw_norm;
    struct vkx_buffer scale;     /* f32 [1], absent: buf NULL */
    struct nb_gtensor attn_q;    /* {Ha, nh*hd} */
    struct nb_gtensor attn_output; /* {nh*hd, Ha} */
    struct nb_gtensor gate_up;   /* {Ha, 2F} gate|up rows (when they stack) */
    struct nb_gtensor gate, up;  /* {Ha, F} otherwise */
    struct nb_gtensor down;      /* {F, Ha} */
};

struct nb_mtp_gpu {
    struct nb_gpu_model *g;
    struct nb_fwd *f;
    struct nb_mtp_model a;
    struct nb_op_matmul own; /* pipelines for weight types the target lacks (own.types 0: none) */
    struct nb_op_matmul *mm;
    struct nb_gtensor token_embd; /* {Ha, V} */
    struct nb_gtensor pre, post;  /* {2Ht, Ha}, {Ha, Ht} */
    struct vkx_buffer output_norm; /* f32 [Ha] */
    struct vkx_buffer factors;     /* f32 [n_rot/2] */
    struct mtp_layer *layer;       /* [n_layer] */
    struct nb_kvcache kvw;         /* the target's cache with the window one shorter */
    /* inputs (host-visible) */
    struct vkx_buffer ids;      /* u32 [1] */
    struct vkx_buffer pos_rope; /* u32 [1] p */
    struct vkx_buffer pos_attn; /* u32 [1] p - 1 */
    /* scratch */
    struct vkx_buffer xh;   /* f32 [2Ht] concat(E_t[tok] * sqrt(Ht), h) */
    struct vkx_buffer cur;  /* f32 [Ha] residual */
    struct vkx_buffer x;    /* f32 [Ha] normed block input */
    struct vkx_buffer o;    /* f32 [Ha] block output */
    struct vkx_buffer q;    /* f32 [nh*hd_max] */
    struct vkx_buffer att;  /* f32 [nh*hd_max] */
    struct vkx_buffer gu;   /* f32 [2F_max] gate|up (or gate) */
    struct vkx_buffer up;   /* f32 [F_max] (unstacked) */
    struct vkx_buffer act;  /* f32 [F_max] */
    struct vkx_buffer scratch; /* attention split-K partials */
    struct vkx_buffer hn;   /* f32 [Ht] h_next (unless hn_direct) */
    struct vkx_buffer logits; /* f32 [V] host-visible */
    struct vkx_buffer drafted; /* u32 host-visible: a draft's tokens, one per draw_stride bytes */
    struct vkx_buffer draws;   /* u32 host-visible: a sampled draft's draw counters, likewise */
    VkDeviceSize draw_stride;  /* the storage offset alignment (at least 4): step j + 1's embed
                                  reads step j's pick where it was written */
    bool hn_direct;            /* post_proj writes h_next into xh[Ht..2Ht) (the offset is
                                  aligned), else into hn and a copy follows */
    struct vkx_buffer qlog;    /* f32 [NB_MTP_MAX_DRAFT][V] host-visible: a sampled draft's
                                  logits of every step */
    struct vkx_cmd step, seed; /* one step (recorded once); h's copy */
    /* drafts, recorded once per (h's buffer and offset, k, sampler) and replayed: the h row
     * differs with the last step's accepted count, so a few are kept, the least recently used
     * re-recorded */
    struct vkx_cmd chain[NB_MTP_CHAINS];
    struct chain_key {
        VkBuffer buf;
        VkDeviceSize off;
        int k;
        uint32_t top_k; /* 0: greedy (argmax) */
        float temp, top_p;
        uint32_t seed;
        uint64_t used;
    } chain_key[NB_MTP_CHAINS];
    uint64_t clock;
    bool recorded;
};

static struct vkx_view W(const struct vkx_buffer *b) { return vkx_whole(b); }
static struct vkx_view NONE(void)
{
    struct vkx_view v = {0};
    return v;
}
static struct vkx_view OPT(const struct vkx_buffer *b) { return b->buf ? vkx_whole(b) : NONE(); }

const struct nb_mtp_model *nb_mtp_gpu_model(const struct nb_mtp_gpu *m) { return &m->a; }

/* ---- upload ---------------------------------------------------------------------------------- */

static int mat(struct nb_mtp_gpu *m, struct nb_gtensor *gt, const struct gguf_tensor *t,
               char *err, size_t errlen)
{
    return nb_gtensor_upload_file(&m->g->vk, gt, t, NULL, m->g->mm.tile_shift, err, errlen);
}

static int vec(struct nb_mtp_gpu *m, struct vkx_buffer *b, const float *src, uint64_t n,
               char *err, size_t errlen)
{
    if (vkx_buffer_create(&m->g->vk, b, n * F4, VKX_MEM_DEVICE, err, errlen) != 0) return -1;
    vkx_upload(&m->g->vk, b, 0, src, n * F4);
    return 0;
}

static int vec_t(struct nb_mtp_gpu *m, struct vkx_buffer *b, const struct gguf_tensor *t,
                 char *err, size_t errlen)
{
    if (!t) return 0;
    uint64_t n = t->ne[0];
    float *tmp = malloc(n * F4);
    if (!tmp) {
        snprintf(err, errlen, "out of host memory");
        return -1;
    }
    nb_dequant_row(t->type, t->data, tmp, n);
    int rc = vec(m, b, tmp, n, err, errlen);
    free(tmp);
    return rc;
}

static int upload(struct nb_mtp_gpu *m, char *err, size_t errlen)
{
    const struct nb_mtp_model *a = &m->a;
    const struct nb_mtp_config *c = &a->cfg;
    if (mat(m, &m->token_embd, a->w.token_embd, err, errlen) ||
        mat(m, &m->pre, a->w.pre_proj, err, errlen) ||
        mat(m, &m->post, a->w.post_proj, err, errlen) ||
        vec_t(m, &m->output_norm, a->w.output_norm, err, errlen) ||
        vec(m, &m->factors, c->rope_factors, c->n_rot / 2 ? c->n_rot / 2 : 1, err, errlen))
        return -1;
    for (uint32_t l = 0; l < c->n_layer; l++) {
        const struct nb_mtp_layer_weights *w = &a->w.layer[l];
        struct mtp_layer *d = &m->layer[l];
        const struct gguf_tensor *gu[] = {w->ffn_gate, w->ffn_up};
        bool stack = vkx_has(&m->g->vk, VKX_FEAT_FUSE) &&
                     nb_gtensor_can_stack(gu, 2, m->g->mm.tile_shift);
        if (vec_t(m, &d->attn_norm, w->attn_norm, err, errlen) ||
            vec_t(m, &d->attn_q_norm, w->attn_q_norm, err, errlen) ||
            vec_t(m, &d->post_attention_norm, w->post_attention_norm, err, errlen) ||
            vec_t(m, &d->ffn_norm, w->ffn_norm, err, errlen) ||
            vec_t(m, &d->post_ffw_norm, w->post_ffw_norm, err, errlen) ||
            vec_t(m, &d->scale, w->layer_output_scale, err, errlen) ||
            mat(m, &d->attn_q, w->attn_q, err, errlen) ||
            mat(m, &d->attn_output, w->attn_output, err, errlen) ||
            mat(m, &d->down, w->ffn_down, err, errlen))
            return -1;
        if (stack) {
            if (nb_gtensor_upload_stack(&m->g->vk, &d->gate_up, gu, 2, NULL, m->g->mm.tile_shift,
                                        err, errlen))
                return -1;
        } else if (mat(m, &d->gate, w->ffn_gate, err, errlen) ||
                   mat(m, &d->up, w->ffn_up, err, errlen)) {
            return -1;
        }
    }
    return 0;
}

/* ---- the step -------------------------------------------------------------------------------- */

/* One step into c (recording): reads the token id at `ids` (ids[0], or the step before's pick in
 * a draft), xh[Ht..2Ht) (h) and the positions; writes logits and h_next into xh[Ht..2Ht) for the
 * next step (straight from post_proj where that offset suits a storage binding, else through hn
 * and a copy). */
static void rec_step(struct nb_mtp_gpu *m, struct vkx_cmd *c, struct vkx_view ids)
{
    struct nb_gpu_model *g = m->g;
    struct vkx_ctx *vk = &g->vk;
    const struct nb_mtp_config *cf = &m->a.cfg;
    uint32_t Ha = cf->n_embd, Ht = cf->n_embd_out, nh = cf->n_head;
    float eps = cf->rms_eps;

    /* embed: xh[0..Ht) = E_target[tok] * sqrt(Ht) (xh[Ht..2Ht) holds h) */
    vkx_cmd_label(c, "mtp_embed");
    nb_op_embed(&g->mm, vk, c, &g->token_embd, ids, W(&m->xh), 1, 0, sqrtf((float)Ht));
    vkx_cmd_barrier(c);
    /* pre_proj, then attn_norm of layer 0 */
    vkx_cmd_label(c, "mtp_pre_proj");
    nb_op_mul(m->mm, vk, c, &m->pre, W(&m->xh), W(&m->cur), 1, 0, 0, false);
    vkx_cmd_barrier(c);
    vkx_cmd_label(c, "mtp_attn_norm");
    nb_op_norm(&g->mi, vk, c, W(&m->cur), W(&m->layer[0].attn_norm), W(&m->x), Ha, 1, eps);
    vkx_cmd_barrier(c);
    for (uint32_t l = 0; l < cf->n_layer; l++) {
        const struct nb_mtp_layer_config *lc = &cf->layer[l];
        struct mtp_layer *d = &m->layer[l];
        uint32_t F = lc->n_ff;
        /* attn_q, q_norm + rope_q at p */
        vkx_cmd_label(c, "mtp_attn_q");
        nb_op_mul(m->mm, vk, c, &d->attn_q, W(&m->x), W(&m->q), 1, 0, 0, false);
        vkx_cmd_barrier(c);
        struct nb_norm_args qa = {.n = lc->head_dim, .n_heads = nh, .n_tokens = 1, .x = W(&m->q),
                                  .y = W(&m->q), .w = W(&d->attn_q_norm), .eps = eps,
                                  .n_rot = lc->n_rot, .rope_base = lc->rope_base,
                                  .pos = W(&m->pos_rope),
                                  .factors = lc->is_swa ? NONE() : W(&m->factors)};
        vkx_cmd_label(c, "mtp_q_norm_rope");
        nb_op_rmsnorm(&g->mi, vk, c, &qa);
        vkx_cmd_barrier(c);
        /* attention over the target's cache (keys 0 .. p-1) */
        vkx_cmd_label(c, "mtp_attention");
        nb_op_attn(&g->at, vk, c, &m->kvw, lc->target_layer, W(&m->q), W(&m->att),
                   W(&m->pos_attn), 1, nh, 1.0f, W(&m->scratch));
        vkx_cmd_barrier(c);
        /* attn_out, post_attn_norm + residual, ffn_norm */
        vkx_cmd_label(c, "mtp_attn_out");
        nb_op_mul(m->mm, vk, c, &d->attn_output, W(&m->att), W(&m->o), 1, 0, 0, false);
        vkx_cmd_barrier(c);
        vkx_cmd_label(c, "mtp_post_attn_norm+ffn_norm");
        nb_op_norm_add_next(&g->mi, vk, c, W(&m->o), W(&d->post_attention_norm), W(&m->cur), Ha,
                            1, eps, NONE(), W(&d->ffn_norm), W(&m->x));
        vkx_cmd_barrier(c);
        /* ffn_gate_up, geglu, ffn_down */
        bool fused = d->gate_up.data.n != 0;
        vkx_cmd_label(c, "mtp_ffn_gate_up");
        if (fused) {
            nb_op_mul(m->mm, vk, c, &d->gate_up, W(&m->x), W(&m->gu), 1, 0, 0, false);
        } else {
            nb_op_mul(m->mm, vk, c, &d->gate, W(&m->x), W(&m->gu), 1, 0, 0, false);
            nb_op_mul(m->mm, vk, c, &d->up, W(&m->x), W(&m->up), 1, 0, 0, false);
        }
        vkx_cmd_barrier(c);
        vkx_cmd_label(c, "mtp_geglu");
        nb_op_geglu(&g->mi, vk, c, W(&m->gu), fused ? NONE() : W(&m->up), W(&m->act), F, 1);
        vkx_cmd_barrier(c);
        vkx_cmd_label(c, "mtp_ffn_down");
        nb_op_mul(m->mm, vk, c, &d->down, W(&m->act), W(&m->o), 1, 0, 0, false);
        vkx_cmd_barrier(c);
        /* post_ffw_norm + residual, layer_scale, then the next attn_norm (after the last
         * layer output_norm) */
        vkx_cmd_label(c, "mtp_post_ffw_norm+layer_scale");
        bool next = l + 1 < cf->n_layer;
        nb_op_norm_add_next(&g->mi, vk, c, W(&m->o), W(&d->post_ffw_norm), W(&m->cur), Ha, 1, eps,
                            OPT(&d->scale),
                            next ? W(&m->layer[l + 1].attn_norm) : W(&m->output_norm), W(&m->x));
        vkx_cmd_barrier(c);
    }
    /* logits (tied) and h_next from the output_norm'd x */
    struct vkx_view hnext = {&m->xh, (VkDeviceSize)Ht * F4, (VkDeviceSize)Ht * F4};
    vkx_cmd_label(c, "mtp_output");
    nb_op_mul(m->mm, vk, c, &m->token_embd, W(&m->x), W(&m->logits), 1, 0, 0, false);
    vkx_cmd_label(c, "mtp_post_proj");
    nb_op_mul(m->mm, vk, c, &m->post, W(&m->x), m->hn_direct ? hnext : W(&m->hn), 1, 0, 0, false);
    vkx_cmd_barrier(c);
    if (!m->hn_direct) /* the next step's h */
        vkx_cmd_copy(c, hnext, W(&m->hn));
}

static void record(struct nb_mtp_gpu *m)
{
    vkx_cmd_begin(&m->g->vk, &m->step);
    rec_step(m, &m->step, W(&m->ids));
    vkx_cmd_end(&m->g->vk, &m->step);
}

/* h (the target's row) into xh[Ht..2Ht) */
static void rec_seed(struct nb_mtp_gpu *m, struct vkx_cmd *c, const struct vkx_view *h)
{
    VkDeviceSize n = (VkDeviceSize)m->a.cfg.n_embd_out * F4;
    struct vkx_view dst = {&m->xh, n, n}, src = *h;
    src.size = n;
    vkx_cmd_copy(c, dst, src);
}

static bool same_key(const struct chain_key *a, const struct chain_key *b)
{
    return a->buf == b->buf && a->off == b->off && a->k == b->k && a->top_k == b->top_k &&
           a->temp == b->temp && a->top_p == b->top_p && a->seed == b->seed;
}

/* A draft of k tokens in one submission, each step's token chosen on the device: by argmax
 * (s NULL) or drawn with s (its logits kept in qlog). */
static int draft(struct nb_mtp_gpu *m, int32_t tok, uint32_t pos, const struct vkx_view *h, int k,
                 const struct nb_mtp_sampler *s, int32_t *out, char *err, size_t errlen)
{
    struct vkx_ctx *vk = &m->g->vk;
    const struct nb_mtp_config *cf = &m->a.cfg;
    if (tok < 0 || (uint32_t)tok >= cf->n_vocab || pos < 1 || pos > m->f->n_ctx || k < 1 ||
        k > NB_MTP_MAX_DRAFT ||
        (s && (s->top_k < 2 || s->top_k > NB_MTP_SAMPLE_MAX_K || !(s->temp > 0) ||
               !s->counters))) {
        snprintf(err, errlen, "MTP draft: token %d at position %u, %d tokens", tok, pos, k);
        return -1;
    }
    *(uint32_t *)m->ids.map = (uint32_t)tok;
    *(uint32_t *)m->pos_rope.map = pos;
    *(uint32_t *)m->pos_attn.map = pos - 1;
    if (s)
        for (int j = 0; j < k; j++)
            *(uint32_t *)((char *)m->draws.map + (size_t)j * m->draw_stride) = s->counters[j];
    struct chain_key key = {h->buf->buf, h->off, k, s ? s->top_k : 0, s ? s->temp : 0,
                            s ? s->top_p : 0, s ? s->seed : 0, 0};
    vkx_cmd_catch(true);
    int slot = 0;
    for (int i = 0; i < NB_MTP_CHAINS; i++) {
        if (m->chain_key[i].used && same_key(&m->chain_key[i], &key)) {
            slot = i;
            break;
        }
        if (m->chain_key[i].used < m->chain_key[slot].used) slot = i;
    }
    struct vkx_cmd *c = &m->chain[slot];
    bool hit = m->chain_key[slot].used && same_key(&m->chain_key[slot], &key);
    key.used = ++m->clock;
    m->chain_key[slot] = key;
    if (hit && vkx_has(vk, VKX_FEAT_REPLAY)) goto submit;
    if (!c->cb) vkx_cmd_create(vk, c, 8 + NB_MTP_MAX_DRAFT * (80 + cf->n_layer * 32), false);
    vkx_cmd_begin(vk, c);
    rec_seed(m, c, h);
    VkDeviceSize row = (VkDeviceSize)cf->n_vocab * F4;
    for (int j = 0; j < k; j++) {
        /* the token: ids[0], then the one the step before picked (at drafted[j - 1]) */
        struct vkx_view ids = {&m->drafted, (VkDeviceSize)(j - 1) * m->draw_stride, 4};
        rec_step(m, c, j ? ids : W(&m->ids));
        uint32_t at = (uint32_t)(j * m->draw_stride / 4); /* where step j's pick goes */
        if (s) { /* the step's logits kept, a token drawn from them with counter j */
            struct vkx_view keep = {&m->qlog, (VkDeviceSize)j * row, row};
            vkx_cmd_copy(c, keep, W(&m->logits));
            struct vkx_view rng = {&m->draws, (VkDeviceSize)j * m->draw_stride, 4};
            vkx_cmd_label(c, "mtp_sample");
            nb_op_sample(&m->g->mi, vk, c, W(&m->logits), cf->n_vocab, s->top_k, s->temp,
                         s->top_p, s->seed, rng, W(&m->drafted), at);
        } else {
            vkx_cmd_label(c, "mtp_argmax");
            nb_op_argmax(&m->g->mi, vk, c, W(&m->logits), cf->n_vocab, W(&m->drafted), at);
        }
        vkx_cmd_barrier(c); /* the pick, before the next step's embed reads it */
    }
    vkx_cmd_end(vk, c);
submit:
    vkx_cmd_submit_wait(vk, c);
    VkResult r = vkx_cmd_catch(false);
    if (r != VK_SUCCESS) {
        memset(m->chain_key, 0, sizeof m->chain_key);
        snprintf(err, errlen, "MTP draft: the device failed (%s)", vkx_result_name(r));
        return -1;
    }
    for (int j = 0; j < k; j++)
        out[j] = *(const int32_t *)((const char *)m->drafted.map + (size_t)j * m->draw_stride);
    return k;
}

int nb_mtp_gpu_draft(struct nb_mtp_gpu *m, int32_t tok, uint32_t pos, const struct vkx_view *h,
                     int k, int32_t *out, char *err, size_t errlen)
{
    return draft(m, tok, pos, h, k, NULL, out, err, errlen);
}

int nb_mtp_gpu_draft_sample(struct nb_mtp_gpu *m, int32_t tok, uint32_t pos,
                            const struct vkx_view *h, int k, const struct nb_mtp_sampler *s,
                            int32_t *out, const float **logits, char *err, size_t errlen)
{
    int rc = draft(m, tok, pos, h, k, s, out, err, errlen);
    *logits = rc > 0 ? m->qlog.map : NULL;
    return rc;
}

const float *nb_mtp_gpu_step(struct nb_mtp_gpu *m, int32_t tok, uint32_t pos,
                             const struct vkx_view *h, char *err, size_t errlen)
{
    struct vkx_ctx *vk = &m->g->vk;
    const struct nb_mtp_config *cf = &m->a.cfg;
    if (tok < 0 || (uint32_t)tok >= cf->n_vocab || pos < 1 || pos > m->f->n_ctx) {
        snprintf(err, errlen, "MTP step: token %d at position %u", tok, pos);
        return NULL;
    }
    *(uint32_t *)m->ids.map = (uint32_t)tok;
    *(uint32_t *)m->pos_rope.map = pos;
    *(uint32_t *)m->pos_attn.map = pos - 1;
    vkx_cmd_catch(true);
    if (h) { /* the target's row into xh[Ht..2Ht) */
        vkx_cmd_begin(vk, &m->seed);
        rec_seed(m, &m->seed, h);
        vkx_cmd_end(vk, &m->seed);
        vkx_cmd_submit_wait(vk, &m->seed);
    }
    if (!m->recorded) {
        record(m);
        m->recorded = true;
    }
    vkx_cmd_submit_wait(vk, &m->step);
    VkResult r = vkx_cmd_catch(false);
    if (r != VK_SUCCESS) {
        snprintf(err, errlen, "MTP step: the device failed (%s)", vkx_result_name(r));
        return NULL;
    }
    return m->logits.map;
}

void nb_mtp_gpu_h_next(struct nb_mtp_gpu *m, float *out)
{
    size_t n = (size_t)m->a.cfg.n_embd_out * F4;
    if (m->hn_direct) vkx_download(&m->g->vk, &m->xh, n, out, n);
    else vkx_download(&m->g->vk, &m->hn, 0, out, n);
}

/* ---- create / destroy ------------------------------------------------------------------------ */

/* The weight types of the assistant's matrices (NB_MM_TYPE_BIT), 0 when one is unsupported. */
static uint32_t mat_types(const struct nb_mtp_model *a)
{
    uint32_t types = 0;
    for (uint64_t i = 0; i < a->gguf->n_tensors; i++) {
        const struct gguf_tensor *t = &a->gguf->tensors[i];
        if (t->n_dims < 2) continue;
        if (!nb_op_matmul_supports(t->type)) return 0;
        types |= NB_MM_TYPE_BIT(t->type);
    }
    return types;
}

struct nb_mtp_gpu *nb_mtp_gpu_create(struct nb_gpu_model *g, struct nb_fwd *f, const char *path,
                                     char *err, size_t errlen)
{
    struct nb_mtp_gpu *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errlen, "out of host memory");
        return NULL;
    }
    m->g = g;
    m->f = f;
    if (nb_mtp_model_load(&m->a, path, &g->m.cfg, err, errlen) != 0) {
        free(m);
        return NULL;
    }
    const struct nb_mtp_config *c = &m->a.cfg;
    struct vkx_ctx *vk = &g->vk;
    char e[400] = "";
    uint32_t types = mat_types(&m->a);
    if (!types) {
        snprintf(err, errlen, "%s: a matrix type the GPU path does not support", path);
        goto fail;
    }
    if (f->kv.window < 2) {
        snprintf(err, errlen, "%s: the target's sliding window %u is too short", path,
                 f->kv.window);
        goto fail;
    }
    m->mm = &g->mm;
    if ((g->mm.types & types) != types) { /* pipelines for the types the target lacks */
        if (nb_op_matmul_create_for(&m->own, vk, types, e, sizeof e) != 0) {
            snprintf(err, errlen, "%s: %s", path, e);
            goto fail;
        }
        m->mm = &m->own;
    }
    m->layer = calloc(c->n_layer, sizeof *m->layer);
    if (!m->layer) {
        snprintf(err, errlen, "out of host memory");
        goto fail;
    }
    if (upload(m, e, sizeof e) != 0) {
        snprintf(err, errlen, "%s: loading weights: %s", path, e);
        goto fail;
    }
    m->kvw = f->kv;
    m->kvw.window = f->kv.window - 1;
    m->draw_stride = vk->caps.min_storage_align > 4 ? vk->caps.min_storage_align : 4;
    m->hn_direct = ((uint64_t)c->n_embd_out * F4) % m->draw_stride == 0;
    uint64_t Ha = c->n_embd, Ht = c->n_embd_out, nq = (uint64_t)c->n_head * c->max_head_dim;
    uint64_t F = c->max_n_ff, sc = nb_op_attn_scratch_bytes(&g->at, 1, c->n_head,
                                                            c->max_head_dim);
    struct {
        struct vkx_buffer *b;
        uint64_t bytes;
        enum vkx_mem mem;
    } bufs[] = {
        {&m->ids, 4, VKX_MEM_HOST},          {&m->pos_rope, 4, VKX_MEM_HOST},
        {&m->pos_attn, 4, VKX_MEM_HOST},     {&m->xh, 2 * Ht * F4, VKX_MEM_DEVICE},
        {&m->cur, Ha * F4, VKX_MEM_DEVICE},  {&m->x, Ha * F4, VKX_MEM_DEVICE},
        {&m->o, Ha * F4, VKX_MEM_DEVICE},    {&m->q, nq * F4, VKX_MEM_DEVICE},
        {&m->att, nq * F4, VKX_MEM_DEVICE},  {&m->gu, 2 * F * F4, VKX_MEM_DEVICE},
        {&m->up, F * F4, VKX_MEM_DEVICE},    {&m->act, F * F4, VKX_MEM_DEVICE},
        {&m->scratch, sc > 256 ? sc : 256, VKX_MEM_DEVICE},
        {&m->hn, Ht * F4, VKX_MEM_DEVICE},   {&m->logits, (uint64_t)c->n_vocab * F4, VKX_MEM_HOST},
        {&m->drafted, NB_MTP_MAX_DRAFT * m->draw_stride, VKX_MEM_HOST},
        {&m->draws, NB_MTP_MAX_DRAFT * m->draw_stride, VKX_MEM_HOST},
        {&m->qlog, (uint64_t)NB_MTP_MAX_DRAFT * c->n_vocab * F4, VKX_MEM_HOST},
    };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        if (vkx_buffer_create(vk, bufs[i].b, bufs[i].bytes, bufs[i].mem, e, sizeof e) != 0) {
            snprintf(err, errlen, "%s: %s", path, e);
            goto fail;
        }
        char ignored[256]; /* CPU devices: matvecs read x through texel views too */
        if (m->mm->texel && bufs[i].mem == VKX_MEM_DEVICE && bufs[i].bytes % 16 == 0)
            (void)vkx_buffer_texel_view(vk, bufs[i].b, ignored, sizeof ignored);
    }
    vkx_cmd_create(vk, &m->step, 64 + c->n_layer * 32, false);
    vkx_cmd_create(vk, &m->seed, 4, false);
    return m;
fail:
    nb_mtp_gpu_destroy(m);
    return NULL;
}

static void free_mat(struct vkx_ctx *vk, struct nb_gtensor *t)
{
    if (t->data.n) nb_gtensor_destroy(vk, t);
}

static void free_buf(struct vkx_ctx *vk, struct vkx_buffer *b)
{
    if (b->buf) vkx_buffer_destroy(vk, b);
}

void nb_mtp_gpu_destroy(struct nb_mtp_gpu *m)
{
    if (!m) return;
    struct vkx_ctx *vk = &m->g->vk;
    vkDeviceWaitIdle(vk->dev);
    if (m->step.cb) vkx_cmd_destroy(vk, &m->step);
    if (m->seed.cb) vkx_cmd_destroy(vk, &m->seed);
    for (int i = 0; i < NB_MTP_CHAINS; i++)
        if (m->chain[i].cb) vkx_cmd_destroy(vk, &m->chain[i]);
    if (m->layer)
        for (uint32_t l = 0; l < m->a.cfg.n_layer; l++) {
            struct mtp_layer *d = &m->layer[l];
            struct vkx_buffer *vs[] = {&d->attn_norm, &d->attn_q_norm, &d->post_attention_norm,
                                       &d->ffn_norm, &d->post_ffw_norm, &d->scale};
            struct nb_gtensor *ms[] = {&d->attn_q, &d->attn_output, &d->gate_up, &d->gate,
                                       &d->up, &d->down};
            for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++)
                free_buf(vk, vs[i]);
            for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++)
                free_mat(vk, ms[i]);
        }
    free(m->layer);
    free_mat(vk, &m->token_embd);
    free_mat(vk, &m->pre);
    free_mat(vk, &m->post);
    struct vkx_buffer *bs[] = {&m->output_norm, &m->factors, &m->ids, &m->pos_rope,
                               &m->pos_attn, &m->xh, &m->cur, &m->x, &m->o, &m->q, &m->att,
                               &m->gu, &m->up, &m->act, &m->scratch, &m->hn, &m->logits,
                               &m->drafted, &m->draws, &m->qlog};
    for (size_t i = 0; i < sizeof bs / sizeof bs[0]; i++)
        free_buf(vk, bs[i]);
    if (m->own.types) nb_op_matmul_destroy(&m->own, vk);
    nb_mtp_model_free(&m->a);
    free(m);
}

/* ref_mtp.c: the CPU f32 reference of one MTP assistant step (mtp.h), in the order of llama.cpp's
 * src/models/gemma4-assistant.cpp, over the K/V cache of the target's reference (ref.c). The
 * kernels are ref.c's (ref_math.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mtp.h"
#include "quant.h"
#include "ref.h"
#include "ref_math.h"

struct nb_ref_mtp {
    const struct nb_mtp_model *a;
    const struct nb_model *t;
    const struct nb_ref *tref;
    float *xh;     /* [2Ht]  concat(E_target[tok] * sqrt(Ht), h) */
    float *cur;    /* [Ha]   residual stream */
    float *x;      /* [Ha]   normed input of a block */
    float *o;      /* [Ha]   block output */
    float *q;      /* [nh*hd_max] */
    float *att;    /* [nh*hd_max] */
    float *gate;   /* [F_max] */
    float *up;     /* [F_max] */
    float *row;    /* [max ne0] one dequantized weight row */
    float *wv;     /* [max(Ha, hd)] a norm vector */
    float *scores; /* [n positions] */
    float *cs;     /* [hd_max/2][2] */
    size_t n_scores;
};

static const float *vec(struct nb_ref_mtp *r, const struct gguf_tensor *t)
{
    nb_dequant_row(t->type, t->data, r->wv, t->ne[0]);
    return r->wv;
}

/* y[j] = W[j] . x, j < ne[1] */
static void matvec(struct nb_ref_mtp *r, const struct gguf_tensor *w, const float *x, float *y)
{
    uint64_t n_in = w->ne[0], rs = ggml_row_size(w->type, n_in);
    for (uint64_t j = 0; j < w->ne[1]; j++) {
        nb_dequant_row(w->type, w->data + j * rs, r->row, n_in);
        y[j] = nb_rm_dot(r->row, x, n_in);
    }
}

static size_t zmax(size_t a, size_t b) { return a > b ? a : b; }

struct nb_ref_mtp *nb_ref_mtp_create(const struct nb_mtp_model *a, const struct nb_model *target,
                                     const struct nb_ref *tref, char *err, size_t errlen)
{
    const struct nb_mtp_config *c = &a->cfg;
    struct nb_ref_mtp *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "MTP reference: out of host memory");
        return NULL;
    }
    r->a = a;
    r->t = target;
    r->tref = tref;
    size_t Ha = c->n_embd, Ht = c->n_embd_out, nq = (size_t)c->n_head * c->max_head_dim;
    size_t F = c->max_n_ff;
    r->n_scores = target->cfg.n_ctx_train ? target->cfg.n_ctx_train : 1;
    size_t ne0 = zmax(zmax(2 * Ht, Ha), zmax(nq, F));
    r->xh = calloc(2 * Ht, sizeof(float));
    r->cur = calloc(Ha, sizeof(float));
    r->x = calloc(Ha, sizeof(float));
    r->o = calloc(Ha, sizeof(float));
    r->q = calloc(nq, sizeof(float));
    r->att = calloc(nq, sizeof(float));
    r->gate = calloc(F, sizeof(float));
    r->up = calloc(F, sizeof(float));
    r->row = calloc(ne0, sizeof(float));
    r->wv = calloc(zmax(Ha, c->max_head_dim), sizeof(float));
    r->scores = calloc(r->n_scores, sizeof(float));
    r->cs = calloc(c->max_head_dim + 2, sizeof(float));
    if (!r->xh || !r->cur || !r->x || !r->o || !r->q || !r->att || !r->gate || !r->up ||
        !r->row || !r->wv || !r->scores || !r->cs) {
        nb_ref_mtp_destroy(r);
        snprintf(err, errlen, "MTP reference: out of host memory");
        return NULL;
    }
    return r;
}

void nb_ref_mtp_destroy(struct nb_ref_mtp *r)
{
    if (!r) return;
    float *b[] = {r->xh, r->cur, r->x, r->o, r->q, r->att, r->gate, r->up, r->row, r->wv,
                  r->scores, r->cs};
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++)
        free(b[i]);
    free(r);
}

/* attention of the nh heads of r->q at position pos over the target cache of layer l's target
 * layer: keys lo .. pos-1 -> r->att */
static void attention(struct nb_ref_mtp *r, const struct nb_mtp_layer_config *lc, int pos)
{
    const struct nb_mtp_config *c = &r->a->cfg;
    const float *K, *V;
    int n_past;
    nb_ref_kv(r->tref, lc->target_layer, &K, &V, &n_past);
    uint32_t nh = c->n_head, hd = lc->head_dim, nkv = lc->n_head_kv, group = nh / nkv;
    size_t kvd = (size_t)nkv * hd;
    int lo = lc->is_swa && pos - (int)c->sliding_window + 1 > 0 ? pos - (int)c->sliding_window + 1
                                                                 : 0;
    for (uint32_t h = 0; h < nh; h++) /* scale 1 */
        nb_rm_attend(r->att + (size_t)h * hd, r->q + (size_t)h * hd, K, V, kvd,
                     (size_t)(h / group) * hd, hd, lo, pos, 1.0f, r->scores);
}

int nb_ref_mtp_step(struct nb_ref_mtp *r, int32_t tok, int pos, const float *h, float *logits,
                    float *h_next, char *err, size_t errlen)
{
    const struct nb_mtp_model *a = r->a;
    const struct nb_mtp_config *c = &a->cfg;
    uint32_t Ha = c->n_embd, Ht = c->n_embd_out;
    const float *K, *V;
    int n_past;
    nb_ref_kv(r->tref, 0, &K, &V, &n_past);
    if (tok < 0 || (uint32_t)tok >= c->n_vocab || pos < 1 || pos > n_past ||
        (size_t)pos > r->n_scores) {
        snprintf(err, errlen, "MTP reference: token %d at position %d (the target holds %d)", tok,
                 pos, n_past);
        return -1;
    }
    /* embed (the target's table, scaled by sqrt(Ht)), concat with h */
    const struct gguf_tensor *te = r->t->w.token_embd;
    nb_dequant_row(te->type, te->data + (uint64_t)tok * ggml_row_size(te->type, Ht), r->xh, Ht);
    float es = sqrtf((float)Ht);
    for (uint32_t i = 0; i < Ht; i++)
        r->xh[i] *= es;
    memcpy(r->xh + Ht, h, Ht * sizeof(float));
    /* pre_proj */
    matvec(r, a->w.pre_proj, r->xh, r->cur);

    for (uint32_t l = 0; l < c->n_layer; l++) {
        const struct nb_mtp_layer_config *lc = &c->layer[l];
        const struct nb_mtp_layer_weights *w = &a->w.layer[l];
        uint32_t hd = lc->head_dim, nh = c->n_head, F = lc->n_ff;
        /* attn_norm, attn_q, q_norm, rope_q */
        nb_rm_rmsnorm(r->x, r->cur, vec(r, w->attn_norm), Ha, c->rms_eps);
        matvec(r, w->attn_q, r->x, r->q);
        const float *qn = vec(r, w->attn_q_norm);
        for (uint32_t hh = 0; hh < nh; hh++)
            nb_rm_rmsnorm(r->q + (size_t)hh * hd, r->q + (size_t)hh * hd, qn, hd, c->rms_eps);
        nb_rm_rope_angles(r->cs, pos, lc->n_rot, lc->rope_base,
                          lc->is_swa ? NULL : c->rope_factors);
        nb_rm_rope(r->q, nh, hd, lc->n_rot, r->cs);
        /* attention over the target's cache, attn_out, post_attn_norm, residual */
        attention(r, lc, pos);
        matvec(r, w->attn_output, r->att, r->o);
        nb_rm_rmsnorm(r->o, r->o, vec(r, w->post_attention_norm), Ha, c->rms_eps);
        for (uint32_t i = 0; i < Ha; i++)
            r->cur[i] += r->o[i];
        /* ffn_norm, gate/up, geglu, down, post_ffw_norm, residual, layer_scale */
        nb_rm_rmsnorm(r->x, r->cur, vec(r, w->ffn_norm), Ha, c->rms_eps);
        matvec(r, w->ffn_gate, r->x, r->gate);
        matvec(r, w->ffn_up, r->x, r->up);
        for (uint32_t i = 0; i < F; i++)
            r->gate[i] = nb_rm_gelu(r->gate[i]) * r->up[i];
        matvec(r, w->ffn_down, r->gate, r->o);
        nb_rm_rmsnorm(r->o, r->o, vec(r, w->post_ffw_norm), Ha, c->rms_eps);
        float s = w->layer_output_scale ? vec(r, w->layer_output_scale)[0] : 1.0f;
        for (uint32_t i = 0; i < Ha; i++)
            r->cur[i] = (r->cur[i] + r->o[i]) * s;
    }
    /* output_norm, logits (tied), h_next from the normed state */
    nb_rm_rmsnorm(r->x, r->cur, vec(r, a->w.output_norm), Ha, c->rms_eps);
    if (logits) matvec(r, a->w.token_embd, r->x, logits);
    if (h_next) matvec(r, a->w.post_proj, r->x, h_next);
    return 0;
}

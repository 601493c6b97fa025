/* ref.c: the CPU f32 reference forward (see ref.h). Tokens are processed in chunks of up to
 * REF_CHUNK; inside a chunk every step runs for all its tokens before the next step, and each
 * token's arithmetic is independent of the chunk size, so prefill and decode agree exactly. */
#include "ref.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"
#include "ref_math.h"

#define REF_CHUNK 32

struct nb_ref {
    const struct nb_model *m;
    int n_ctx;
    int n_past; /* positions [0, n_past) hold valid K/V */
    struct nb_ref_hooks hooks;
    float *k_cache[NB_MAX_LAYERS]; /* [n_ctx][nkv*hd] roped, normed K (has_kv layers only) */
    float *v_cache[NB_MAX_LAYERS]; /* [n_ctx][nkv*hd] normed V */
    /* scratch for one chunk of T <= REF_CHUNK tokens */
    float *h;       /* [T][H]  residual stream */
    float *x;       /* [T][H]  normed input of a block */
    float *o;       /* [T][H]  block output (attention, MLP, PLE) */
    float *f2;      /* [T][H]  MoE branch output */
    float *q;       /* [T][nh*hd_max] */
    float *k;       /* [T][nkv*hd max] */
    float *v;       /* [T][nkv*hd max] */
    float *att;     /* [T][nh*hd_max]  attention output before attn_output */
    float *gate;    /* [T][max(F, 2*Fe, P)] */
    float *up;      /* [T][max(F, Fe)] */
    float *ple;     /* [T][L*P]  per-layer inputs */
    float *ple_tok; /* [L*P]     per_layer_token_embd row */
    float *row;     /* [max ne0]  one dequantized weight row */
    float *wv;      /* [max(H, hd, P, E)]  a dequantized norm/scale vector */
    float *scores;  /* [n_ctx]  attention scores of one head */
    float *cs;      /* [hd_max/2][2]  cos/sin of one position */
    float *probs;   /* [E]  router probabilities */
    float *ez;      /* [H]  router input, then the expert input x2 (one token) */
    float *ey;      /* [H]  one expert's output (one token) */
    int *sel;       /* [E]  expert order for top-k */
    size_t max_ne0;
};

/* ---- weight access ------------------------------------------------------------------------- */

/* Dequantizes a whole small tensor (norm weight, scale) into r->wv; returns r->wv. */
static const float *vec(struct nb_ref *r, const struct gguf_tensor *t)
{
    nb_dequant_row(t->type, t->data, r->wv, t->ne[0]);
    return r->wv;
}

/* y[t][j] = sum_i W[row0 + j][i] * x[t][i] for j < n_out, t < T; rows of W have ne[0] values.
 * Each weight row is dequantized once and used for all T tokens. */
static void matmul(struct nb_ref *r, const struct gguf_tensor *w, uint64_t row0, uint32_t n_out,
                   const float *x, size_t ldx, float *y, size_t ldy, int T)
{
    uint64_t n_in = w->ne[0];
    uint64_t rs = ggml_row_size(w->type, n_in);
    for (uint32_t j = 0; j < n_out; j++) {
        nb_dequant_row(w->type, w->data + (row0 + j) * rs, r->row, n_in);
        for (int t = 0; t < T; t++)
            y[(size_t)t * ldy + j] = nb_rm_dot(r->row, x + (size_t)t * ldx, n_in);
    }
}

static void hook(struct nb_ref *r, const char *step, int layer, int pos0, const float *x, size_t ld,
                 int n, int T)
{
    if (!r->hooks.on_step) return;
    for (int t = 0; t < T; t++)
        r->hooks.on_step(r->hooks.user, step, layer, pos0 + t, x + (size_t)t * ld, n);
}

/* ---- create / destroy ---------------------------------------------------------------------- */

static float *alloc_f(size_t n, bool *ok)
{
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p) *ok = false;
    return p;
}

static size_t max_z(size_t a, size_t b)
{
    return a > b ? a : b;
}

struct nb_ref *nb_ref_create(const struct nb_model *m, int n_ctx, char *err, size_t errlen)
{
    const struct nb_config *c = &m->cfg;
    if (n_ctx <= 0) {
        snprintf(err, errlen, "reference forward: context size %d must be > 0", n_ctx);
        return NULL;
    }
    struct nb_ref *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "reference forward: out of memory");
        return NULL;
    }
    r->m = m;
    r->n_ctx = n_ctx;
    bool ok = true;
    size_t H = c->n_embd, T = REF_CHUNK, nq = (size_t)c->n_head * c->max_head_dim, kv_max = 0;
    for (uint32_t l = 0; l < c->n_layer; l++) {
        const struct nb_layer_config *lc = &c->layer[l];
        size_t kvd = (size_t)lc->n_head_kv * lc->head_dim;
        kv_max = max_z(kv_max, kvd);
        if (!lc->has_kv) continue;
        r->k_cache[l] = alloc_f((size_t)n_ctx * kvd, &ok);
        r->v_cache[l] = alloc_f((size_t)n_ctx * kvd, &ok);
    }
    size_t P = c->n_embd_ple, LP = (size_t)c->n_layer * P, E = c->n_expert, Fe = c->n_ff_exp;
    size_t F = c->max_n_ff;
    r->max_ne0 = max_z(max_z(H, nq), max_z(max_z(F, Fe), P));
    r->h = alloc_f(T * H, &ok);
    r->x = alloc_f(T * H, &ok);
    r->o = alloc_f(T * H, &ok);
    r->f2 = alloc_f(T * H, &ok);
    r->q = alloc_f(T * nq, &ok);
    r->k = alloc_f(T * kv_max, &ok);
    r->v = alloc_f(T * kv_max, &ok);
    r->att = alloc_f(T * nq, &ok);
    r->gate = alloc_f(T * max_z(max_z(F, 2 * Fe), P), &ok);
    r->up = alloc_f(T * max_z(F, Fe), &ok);
    r->ple = alloc_f(T * LP, &ok);
    r->ple_tok = alloc_f(LP, &ok);
    r->row = alloc_f(r->max_ne0, &ok);
    r->wv = alloc_f(max_z(max_z(H, c->max_head_dim), max_z(P, E)), &ok);
    r->scores = alloc_f((size_t)n_ctx, &ok);
    r->cs = alloc_f(c->max_head_dim + 2, &ok);
    r->probs = alloc_f(E, &ok);
    r->ez = alloc_f(H, &ok);
    r->ey = alloc_f(H, &ok);
    r->sel = calloc(E ? E : 1, sizeof(int));
    if (!ok || !r->sel) {
        nb_ref_destroy(r);
        snprintf(err, errlen, "reference forward: out of memory for a context of %d", n_ctx);
        return NULL;
    }
    return r;
}

void nb_ref_destroy(struct nb_ref *r)
{
    if (!r) return;
    for (int l = 0; l < NB_MAX_LAYERS; l++) {
        free(r->k_cache[l]);
        free(r->v_cache[l]);
    }
    float *bufs[] = {r->h,      r->x,    r->o,     r->f2,  r->q,       r->k,   r->v,
                     r->att,    r->gate, r->up,    r->ple, r->ple_tok, r->row, r->wv,
                     r->scores, r->cs,   r->probs, r->ez,  r->ey};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        free(bufs[i]);
    free(r->sel);
    free(r);
}

void nb_ref_set_hooks(struct nb_ref *r, const struct nb_ref_hooks *hooks)
{
    if (hooks)
        r->hooks = *hooks;
    else
        memset(&r->hooks, 0, sizeof r->hooks);
}

/* ---- forward steps ------------------------------------------------------------------------- */

/* ple_inputs: ple[t][l][:] = (RMSNorm_w((W_plmp . h0[t]) / sqrt(H))[l] + E_ple[tok][l] * sqrt(P))
 * / sqrt(2), from the scaled embeddings h0 = r->h. */
static void ple_inputs(struct nb_ref *r, const int32_t *tok, int T, int pos0)
{
    const struct nb_model *m = r->m;
    const struct nb_config *c = &m->cfg;
    uint32_t P = c->n_embd_ple, LP = c->n_layer * P;
    const struct gguf_tensor *te = m->w.per_layer_token_embd;
    matmul(r, m->w.per_layer_model_proj, 0, LP, r->h, c->n_embd, r->ple, LP, T);
    const float *nw = vec(r, m->w.per_layer_proj_norm);
    float in_scale = 1.0f / sqrtf((float)c->n_embd), tok_scale = sqrtf((float)P);
    float mix = 0.70710678118654752440f; /* 1/sqrt(2) */
    for (int t = 0; t < T; t++) {
        float *p = r->ple + (size_t)t * LP;
        nb_dequant_row(te->type, te->data + (uint64_t)tok[t] * ggml_row_size(te->type, LP),
                       r->ple_tok, LP);
        for (uint32_t i = 0; i < LP; i++)
            p[i] *= in_scale;
        for (uint32_t l = 0; l < c->n_layer; l++) {
            nb_rm_rmsnorm(p + l * P, p + l * P, nw, P, c->rms_eps);
            for (uint32_t i = 0; i < P; i++)
                p[l * P + i] = (p[l * P + i] + r->ple_tok[l * P + i] * tok_scale) * mix;
        }
    }
    hook(r, "ple_inputs", -1, pos0, r->ple, LP, (int)LP, T);
}

/* Attention block of layer l for the chunk: r->x (normed input) -> r->o (after post_attn_norm). */
static void attention_block(struct nb_ref *r, uint32_t l, int T, int pos0)
{
    const struct nb_config *c = &r->m->cfg;
    const struct nb_layer_config *lc = &c->layer[l];
    const struct nb_layer_weights *w = &r->m->w.layer[l];
    uint32_t H = c->n_embd, nh = c->n_head, hd = lc->head_dim, nkv = lc->n_head_kv;
    uint32_t nq = nh * hd, kvd = nkv * hd;
    const float *factors = lc->is_swa ? NULL : c->rope_factors;

    /* attn_q, q_norm (per head, with weight), rope_q */
    matmul(r, w->attn_q, 0, nq, r->x, H, r->q, nq, T);
    hook(r, "attn_q", (int)l, pos0, r->q, nq, (int)nq, T);
    const float *qn = vec(r, w->attn_q_norm);
    for (int t = 0; t < T; t++)
        for (uint32_t h = 0; h < nh; h++) {
            float *p = r->q + (size_t)t * nq + h * hd;
            nb_rm_rmsnorm(p, p, qn, hd, c->rms_eps);
        }
    hook(r, "q_norm", (int)l, pos0, r->q, nq, (int)nq, T);
    for (int t = 0; t < T; t++) {
        nb_rm_rope_angles(r->cs, pos0 + t, lc->n_rot, lc->rope_base, factors);
        nb_rm_rope(r->q + (size_t)t * nq, nh, hd, lc->n_rot, r->cs);
    }
    hook(r, "rope_q", (int)l, pos0, r->q, nq, (int)nq, T);

    if (lc->has_kv) {
        /* attn_k, attn_v (K=V: V is the raw K projection), k_norm, v_norm (no weight), rope_k */
        matmul(r, w->attn_k, 0, kvd, r->x, H, r->k, kvd, T);
        hook(r, "attn_k", (int)l, pos0, r->k, kvd, (int)kvd, T);
        if (lc->has_v)
            matmul(r, w->attn_v, 0, kvd, r->x, H, r->v, kvd, T);
        else
            memcpy(r->v, r->k, (size_t)T * kvd * sizeof(float));
        hook(r, "attn_v", (int)l, pos0, r->v, kvd, (int)kvd, T);
        const float *kn = vec(r, w->attn_k_norm);
        for (int t = 0; t < T; t++)
            for (uint32_t h = 0; h < nkv; h++) {
                float *p = r->k + (size_t)t * kvd + h * hd;
                nb_rm_rmsnorm(p, p, kn, hd, c->rms_eps);
                p = r->v + (size_t)t * kvd + h * hd;
                nb_rm_rmsnorm(p, p, NULL, hd, c->rms_eps);
            }
        hook(r, "k_norm", (int)l, pos0, r->k, kvd, (int)kvd, T);
        hook(r, "v_norm", (int)l, pos0, r->v, kvd, (int)kvd, T);
        for (int t = 0; t < T; t++) {
            nb_rm_rope_angles(r->cs, pos0 + t, lc->n_rot, lc->rope_base, factors);
            nb_rm_rope(r->k + (size_t)t * kvd, nkv, hd, lc->n_rot, r->cs);
        }
        hook(r, "rope_k", (int)l, pos0, r->k, kvd, (int)kvd, T);
        /* kv_store: the whole chunk goes into the cache before any token attends */
        memcpy(r->k_cache[l] + (size_t)pos0 * kvd, r->k, (size_t)T * kvd * sizeof(float));
        memcpy(r->v_cache[l] + (size_t)pos0 * kvd, r->v, (size_t)T * kvd * sizeof(float));
    }

    /* attention: softmax(q.k * scale + causal/sliding mask) . v, GQA, cache of kv_source */
    const float *K = r->k_cache[lc->kv_source], *V = r->v_cache[lc->kv_source];
    uint32_t group = nh / nkv;
    for (int t = 0; t < T; t++) {
        int pos = pos0 + t;
        int lo = lc->is_swa && pos - (int)c->sliding_window + 1 > 0
                     ? pos - (int)c->sliding_window + 1
                     : 0;
        for (uint32_t h = 0; h < nh; h++)
            nb_rm_attend(r->att + (size_t)t * nq + h * hd, r->q + (size_t)t * nq + h * hd, K, V,
                         kvd, (size_t)(h / group) * hd, hd, lo, pos + 1, c->attn_scale, r->scores);
    }
    hook(r, "attention", (int)l, pos0, r->att, nq, (int)nq, T);

    /* attn_out, post_attn_norm */
    matmul(r, w->attn_output, 0, H, r->att, nq, r->o, H, T);
    hook(r, "attn_out", (int)l, pos0, r->o, H, (int)H, T);
    const float *pn = vec(r, w->post_attention_norm);
    for (int t = 0; t < T; t++)
        nb_rm_rmsnorm(r->o + (size_t)t * H, r->o + (size_t)t * H, pn, H, c->rms_eps);
    hook(r, "post_attn_norm", (int)l, pos0, r->o, H, (int)H, T);
}

/* Dense GELU-tanh MLP: out = down(gelu(gate . x) * (up . x)) for T tokens of width H. */
static void mlp(struct nb_ref *r, const struct nb_layer_weights *w, uint32_t F, const float *x,
                float *out, int T, int layer, int pos0)
{
    uint32_t H = r->m->cfg.n_embd;
    matmul(r, w->ffn_gate, 0, F, x, H, r->gate, F, T);
    matmul(r, w->ffn_up, 0, F, x, H, r->up, F, T);
    hook(r, "ffn_gate_up", layer, pos0, r->gate, F, (int)F, T);
    for (size_t i = 0; i < (size_t)T * F; i++)
        r->gate[i] = nb_rm_gelu(r->gate[i]) * r->up[i];
    hook(r, "geglu", layer, pos0, r->gate, F, (int)F, T);
    matmul(r, w->ffn_down, 0, H, r->gate, F, out, H, T);
    hook(r, "ffn_down", layer, pos0, out, H, (int)H, T);
}

/* MoE branch for one token: router on the residual h, experts on RMSNorm(h, pre_ffw_norm_2).
 * out[H] = sum over the top-k experts of weight_k * scale_e * down_e(gelu(gate_e x) * up_e x). */
static void moe_token(struct nb_ref *r, const struct nb_layer_weights *w, const float *h,
                      float *out, int layer, int pos)
{
    const struct nb_config *c = &r->m->cfg;
    uint32_t H = c->n_embd, E = c->n_expert, K = c->n_expert_used, Fe = c->n_ff_exp;
    float *z = r->ez, *y = r->ey;

    /* router: z = RMSNorm(h) * scale * H^-0.5; p = softmax(W_r . z); top-k; renormalise */
    nb_rm_rmsnorm(z, h, NULL, H, c->rms_eps);
    const float *sc = vec(r, w->ffn_gate_inp_scale);
    float hs = 1.0f / sqrtf((float)H);
    for (uint32_t i = 0; i < H; i++)
        z[i] = z[i] * sc[i] * hs;
    matmul(r, w->ffn_gate_inp, 0, E, z, H, r->probs, E, 1);
    float mx = -INFINITY;
    for (uint32_t e = 0; e < E; e++)
        mx = r->probs[e] > mx ? r->probs[e] : mx;
    double sum = 0;
    for (uint32_t e = 0; e < E; e++)
        sum += r->probs[e] = expf(r->probs[e] - mx);
    for (uint32_t e = 0; e < E; e++)
        r->probs[e] = (float)(r->probs[e] / sum);
    if (r->hooks.on_step) r->hooks.on_step(r->hooks.user, "router", layer, pos, r->probs, (int)E);
    for (uint32_t e = 0; e < E; e++)
        r->sel[e] = (int)e;
    for (uint32_t k = 0; k < K; k++) /* partial selection sort: highest first, lowest id on ties */
        for (uint32_t e = k + 1; e < E; e++)
            if (r->probs[r->sel[e]] > r->probs[r->sel[k]]) {
                int s = r->sel[k];
                r->sel[k] = r->sel[e];
                r->sel[e] = s;
            }
    float wsum = 0;
    for (uint32_t k = 0; k < K; k++)
        wsum += r->probs[r->sel[k]];
    if (wsum < 6.103515625e-5f) wsum = 6.103515625e-5f;

    /* moe_experts: x2 = RMSNorm(h, pre_ffw_norm_2) in z */
    nb_rm_rmsnorm(z, h, vec(r, w->pre_ffw_norm_2), H, c->rms_eps);
    memset(out, 0, H * sizeof(float));
    for (uint32_t k = 0; k < K; k++) {
        int e = r->sel[k];
        if (w->ffn_gate_up_exps) {
            matmul(r, w->ffn_gate_up_exps, (uint64_t)e * 2 * Fe, 2 * Fe, z, H, r->gate, 2 * Fe, 1);
        } else {
            matmul(r, w->ffn_gate_exps, (uint64_t)e * Fe, Fe, z, H, r->gate, Fe, 1);
            matmul(r, w->ffn_up_exps, (uint64_t)e * Fe, Fe, z, H, r->gate + Fe, Fe, 1);
        }
        for (uint32_t i = 0; i < Fe; i++)
            r->up[i] = nb_rm_gelu(r->gate[i]) * r->gate[Fe + i];
        matmul(r, w->ffn_down_exps, (uint64_t)e * H, H, r->up, Fe, y, H, 1);
        float s = r->probs[e] / wsum;
        if (w->ffn_down_exps_scale) s *= vec(r, w->ffn_down_exps_scale)[e];
        for (uint32_t i = 0; i < H; i++)
            out[i] += s * y[i];
    }
    if (r->hooks.on_step) r->hooks.on_step(r->hooks.user, "moe_experts", layer, pos, out, (int)H);
}

/* FFN block of layer l: r->h (residual after attention) -> r->o (after post_ffw_norm). */
static void ffn_block(struct nb_ref *r, uint32_t l, int T, int pos0)
{
    const struct nb_config *c = &r->m->cfg;
    const struct nb_layer_config *lc = &c->layer[l];
    const struct nb_layer_weights *w = &r->m->w.layer[l];
    uint32_t H = c->n_embd;

    /* ffn_norm, then the dense MLP (ffn_gate_up, geglu, ffn_down) */
    const float *fn = vec(r, w->ffn_norm);
    for (int t = 0; t < T; t++)
        nb_rm_rmsnorm(r->x + (size_t)t * H, r->h + (size_t)t * H, fn, H, c->rms_eps);
    hook(r, "ffn_norm", (int)l, pos0, r->x, H, (int)H, T);
    mlp(r, w, lc->n_ff, r->x, r->o, T, (int)l, pos0);

    if (lc->is_moe) {
        /* post_ffw_norm_1 on the dense branch; router + moe_experts + post_ffw_norm_2 on the
         * expert branch; the two are summed */
        const float *n1 = vec(r, w->post_ffw_norm_1);
        for (int t = 0; t < T; t++)
            nb_rm_rmsnorm(r->o + (size_t)t * H, r->o + (size_t)t * H, n1, H, c->rms_eps);
        hook(r, "post_ffw_norm_1", (int)l, pos0, r->o, H, (int)H, T);
        for (int t = 0; t < T; t++)
            moe_token(r, w, r->h + (size_t)t * H, r->f2 + (size_t)t * H, (int)l, pos0 + t);
        const float *n2 = vec(r, w->post_ffw_norm_2);
        for (int t = 0; t < T; t++)
            nb_rm_rmsnorm(r->f2 + (size_t)t * H, r->f2 + (size_t)t * H, n2, H, c->rms_eps);
        hook(r, "post_ffw_norm_2", (int)l, pos0, r->f2, H, (int)H, T);
        for (size_t i = 0; i < (size_t)T * H; i++)
            r->o[i] += r->f2[i];
    }

    /* post_ffw_norm */
    const float *pn = vec(r, w->post_ffw_norm);
    for (int t = 0; t < T; t++)
        nb_rm_rmsnorm(r->o + (size_t)t * H, r->o + (size_t)t * H, pn, H, c->rms_eps);
    hook(r, "post_ffw_norm", (int)l, pos0, r->o, H, (int)H, T);
}

/* PLE block of layer l: h += RMSNorm(W_proj . (gelu(W_gate . h) * ple[l]), post_norm). */
static void ple_block(struct nb_ref *r, uint32_t l, int T, int pos0)
{
    const struct nb_config *c = &r->m->cfg;
    const struct nb_layer_weights *w = &r->m->w.layer[l];
    uint32_t H = c->n_embd, P = c->n_embd_ple, LP = c->n_layer * P;

    /* ple_gate */
    matmul(r, w->inp_gate, 0, P, r->h, H, r->gate, P, T);
    for (int t = 0; t < T; t++)
        for (uint32_t i = 0; i < P; i++) {
            float *g = r->gate + (size_t)t * P + i;
            *g = nb_rm_gelu(*g) * r->ple[(size_t)t * LP + l * P + i];
        }
    hook(r, "ple_gate", (int)l, pos0, r->gate, P, (int)P, T);
    /* ple_proj, post_norm */
    matmul(r, w->proj, 0, H, r->gate, P, r->o, H, T);
    hook(r, "ple_proj", (int)l, pos0, r->o, H, (int)H, T);
    const float *pn = vec(r, w->post_norm);
    for (int t = 0; t < T; t++)
        nb_rm_rmsnorm(r->o + (size_t)t * H, r->o + (size_t)t * H, pn, H, c->rms_eps);
    hook(r, "post_norm", (int)l, pos0, r->o, H, (int)H, T);
    for (size_t i = 0; i < (size_t)T * H; i++)
        r->h[i] += r->o[i];
}

static void layer_hook(struct nb_ref *r, int layer, int pos0, int T)
{
    if (!r->hooks.on_layer) return;
    uint32_t H = r->m->cfg.n_embd;
    for (int t = 0; t < T; t++)
        r->hooks.on_layer(r->hooks.user, layer, pos0 + t, r->h + (size_t)t * H);
}

/* One chunk: tokens tok[0..T) at positions pos0... The logits of tokens t >= first_logit go to
 * row t - first_logit of `logits` (NULL: none). */
static void forward_chunk(struct nb_ref *r, const int32_t *tok, int T, int pos0, float *logits,
                          int first_logit)
{
    const struct nb_model *m = r->m;
    const struct nb_config *c = &m->cfg;
    uint32_t H = c->n_embd, V = c->n_vocab;

    /* embed: h = E[tok] * sqrt(H) */
    const struct gguf_tensor *te = m->w.token_embd;
    for (int t = 0; t < T; t++) {
        float *h = r->h + (size_t)t * H;
        nb_dequant_row(te->type, te->data + (uint64_t)tok[t] * ggml_row_size(te->type, H), h, H);
        for (uint32_t i = 0; i < H; i++)
            h[i] *= c->embd_scale;
    }
    hook(r, "embed", -1, pos0, r->h, H, (int)H, T);
    layer_hook(r, -1, pos0, T);
    if (c->n_embd_ple) ple_inputs(r, tok, T, pos0);

    for (uint32_t l = 0; l < c->n_layer; l++) {
        const struct nb_layer_weights *w = &m->w.layer[l];
        /* attn_norm */
        const float *an = vec(r, w->attn_norm);
        for (int t = 0; t < T; t++)
            nb_rm_rmsnorm(r->x + (size_t)t * H, r->h + (size_t)t * H, an, H, c->rms_eps);
        hook(r, "attn_norm", (int)l, pos0, r->x, H, (int)H, T);
        attention_block(r, l, T, pos0);
        /* residual */
        for (size_t i = 0; i < (size_t)T * H; i++)
            r->h[i] += r->o[i];
        hook(r, "residual", (int)l, pos0, r->h, H, (int)H, T);
        ffn_block(r, l, T, pos0);
        for (size_t i = 0; i < (size_t)T * H; i++)
            r->h[i] += r->o[i];
        if (c->n_embd_ple) ple_block(r, l, T, pos0);
        /* layer_scale */
        if (w->layer_output_scale) {
            float s = vec(r, w->layer_output_scale)[0];
            for (size_t i = 0; i < (size_t)T * H; i++)
                r->h[i] *= s;
        }
        hook(r, "layer_scale", (int)l, pos0, r->h, H, (int)H, T);
        layer_hook(r, (int)l, pos0, T);
    }

    /* output_norm */
    const float *on = vec(r, m->w.output_norm);
    for (int t = 0; t < T; t++)
        nb_rm_rmsnorm(r->x + (size_t)t * H, r->h + (size_t)t * H, on, H, c->rms_eps);
    hook(r, "output_norm", -1, pos0, r->x, H, (int)H, T);
    if (r->hooks.on_layer)
        for (int t = 0; t < T; t++)
            r->hooks.on_layer(r->hooks.user, (int)c->n_layer, pos0 + t, r->x + (size_t)t * H);
    if (!logits || first_logit >= T) return;

    /* output (tied: token_embd), softcap */
    int n = T - first_logit;
    float *out = logits;
    matmul(r, m->w.output, 0, V, r->x + (size_t)first_logit * H, H, out, V, n);
    hook(r, "output", -1, pos0 + first_logit, out, V, (int)V, n);
    if (c->final_softcap > 0) {
        float cap = c->final_softcap;
        for (size_t i = 0; i < (size_t)n * V; i++)
            out[i] = cap * tanhf(out[i] / cap);
        hook(r, "softcap", -1, pos0 + first_logit, out, V, (int)V, n);
    }
}

int nb_ref_eval(struct nb_ref *r, const int32_t *tokens, int n, int pos0, float *logits,
                bool last_only, char *err, size_t errlen)
{
    const struct nb_config *c = &r->m->cfg;
    if (n <= 0 || pos0 < 0 || pos0 > r->n_past || n > r->n_ctx - pos0) {
        snprintf(err, errlen,
                 "reference forward: positions %d..%d do not fit (context %d, %d filled)", pos0,
                 pos0 + n - 1, r->n_ctx, r->n_past);
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || (uint32_t)tokens[i] >= c->n_vocab) {
            snprintf(err, errlen,
                     "reference forward: token %d at index %d is outside the vocabulary "
                     "of %u",
                     tokens[i], i, c->n_vocab);
            return -1;
        }
    for (int c0 = 0; c0 < n; c0 += REF_CHUNK) {
        int T = n - c0 < REF_CHUNK ? n - c0 : REF_CHUNK;
        float *lg = NULL;
        int first = 0;
        if (logits && !last_only) {
            lg = logits + (size_t)c0 * c->n_vocab;
        } else if (logits && c0 + T == n) { /* last chunk: only its last token */
            lg = logits;
            first = T - 1;
        }
        forward_chunk(r, tokens + c0, T, pos0 + c0, lg, first);
        r->n_past = pos0 + c0 + T;
    }
    return 0;
}

void nb_ref_kv(const struct nb_ref *r, uint32_t layer, const float **k, const float **v,
               int *n_past)
{
    int32_t src = r->m->cfg.layer[layer].kv_source;
    *k = r->k_cache[src];
    *v = r->v_cache[src];
    *n_past = r->n_past;
}

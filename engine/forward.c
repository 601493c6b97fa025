/* forward.c: the Gemma 4 forward pass on the GPU, recorded one dispatch per line.
 *
 * nb_fwd_record() reads like engine/ref.c: the same steps, in the same order, with the same
 * names. Every op records dispatches only; a vkx_cmd_barrier() stands before each step that reads
 * what an earlier step wrote (steps that read the same input and write different outputs, such
 * as q/k/v or gate/up, share one barrier). */
#include "forward.h"
#include "quant.h"
#include "shared.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define F4 sizeof(float)

static struct vkx_view W(const struct vkx_buffer *b) { return vkx_whole(b); }
static struct vkx_view NONE(void)
{
    struct vkx_view v = {0};
    return v;
}
/* A view of an optional vector buffer: absent when it is NULL or was never created. */
static struct vkx_view OPT(const struct vkx_buffer *b)
{
    return b && b->buf ? vkx_whole(b) : NONE();
}

static void label(struct vkx_cmd *c, const char *name) { vkx_cmd_label(c, name); }

/* ---- one layer -------------------------------------------------------------------------------- */

/* Attention block: f->h -> f->h + post_attn_norm(attn_out(attention(...))), from f->x =
 * attn_norm(h) (written by the step before); leaves f->x = ffn_norm(h) for the FFN block. */
static void attention_block(struct nb_fwd *f, struct vkx_cmd *c, uint32_t l, uint32_t n)
{
    struct nb_gpu_model *g = f->g;
    struct vkx_ctx *vk = &g->vk;
    const struct nb_config *cf = &g->m.cfg;
    const struct nb_layer_config *lc = &cf->layer[l];
    struct nb_gpu_layer *w = &g->layer[l];
    uint32_t H = cf->n_embd, nh = cf->n_head, hd = lc->head_dim, nkv = lc->n_head_kv;
    struct vkx_view factors = lc->is_swa ? NONE() : OPT(&g->rope_factors);

    /* attn_qkv: q|k|v in one product where they are stacked (K=V: V is the raw K projection) */
    uint32_t nq = nh * hd, nk = nkv * hd;
    bool fused = w->attn_qkv.data.n != 0;
    if (fused) {
        label(c, "attn_qkv");
        nb_op_mul(&g->mm, vk, c, &w->attn_qkv, W(&f->x), W(&f->qkv), n, 0, 0, false);
    } else {
        label(c, "attn_q");
        nb_op_mul(&g->mm, vk, c, &w->attn_q, W(&f->x), W(&f->q), n, 0, 0, false);
        if (lc->has_kv) {
            label(c, "attn_k");
            nb_op_mul(&g->mm, vk, c, &w->attn_k, W(&f->x), W(&f->k), n, 0, 0, false);
            if (lc->has_v) {
                label(c, "attn_v");
                nb_op_mul(&g->mm, vk, c, &w->attn_v, W(&f->x), W(&f->v), n, 0, 0, false);
            }
        }
    }
    vkx_cmd_barrier(c);
    if (!fused && lc->has_kv && !lc->has_v) { /* V = raw K, before k_norm changes k in place */
        struct vkx_view dst = {&f->v, 0, (VkDeviceSize)n * nk * F4};
        struct vkx_view src = {&f->k, 0, (VkDeviceSize)n * nk * F4};
        vkx_cmd_copy(c, dst, src);
    }
    /* where the norms read q, k and v: rows of [n][q|k|v] fused, else their own buffers */
    struct vkx_view qx = fused ? W(&f->qkv) : W(&f->q), kx = fused ? W(&f->qkv) : W(&f->k);
    struct vkx_view vx = fused ? W(&f->qkv) : W(&f->v);
    uint32_t stride = fused ? (uint32_t)w->attn_qkv.rows : 0, k_off = fused ? nq : 0;
    uint32_t v_off = fused && lc->has_v ? nq + nk : k_off;
    /* q_norm + rope_q, k_norm + rope_k, v_norm (per head, fused RoPE; into q, k, v) */
    struct nb_norm_args qa = {.n = hd, .n_heads = nh, .n_tokens = n, .x = qx, .x_stride = stride,
                              .y = W(&f->q), .w = W(&w->attn_q_norm), .eps = cf->rms_eps,
                              .n_rot = lc->n_rot, .rope_base = lc->rope_base, .pos = W(&f->pos),
                              .factors = factors};
    label(c, "q_norm_rope");
    nb_op_rmsnorm(&g->mi, vk, c, &qa);
    if (lc->has_kv) {
        struct nb_norm_args ka = qa;
        ka.n_heads = nkv;
        ka.x = kx;
        ka.x_off = k_off;
        ka.y = W(&f->k);
        ka.w = W(&w->attn_k_norm);
        label(c, "k_norm_rope");
        nb_op_rmsnorm(&g->mi, vk, c, &ka);
        struct nb_norm_args va = {.n = hd, .n_heads = nkv, .n_tokens = n, .x = vx,
                                  .x_off = v_off, .x_stride = stride, .y = W(&f->v),
                                  .eps = cf->rms_eps};
        label(c, "v_norm");
        nb_op_rmsnorm(&g->mi, vk, c, &va);
        vkx_cmd_barrier(c);
        /* kv_store */
        label(c, "kv_store");
        nb_op_kv_store(&g->at, vk, c, &f->kv, l, W(&f->k), W(&f->v), W(&f->pos), n);
    }
    vkx_cmd_barrier(c);
    /* attention (the cache of kv_source on KV-shared layers) */
    label(c, "attention");
    nb_op_attn(&g->at, vk, c, &f->kv, l, W(&f->q), W(&f->att), W(&f->pos), n, nh, cf->attn_scale,
               W(&f->attn_scratch));
    vkx_cmd_barrier(c);
    /* attn_out */
    label(c, "attn_out");
    nb_op_mul(&g->mm, vk, c, &w->attn_output, W(&f->att), W(&f->o), n, 0, 0, false);
    vkx_cmd_barrier(c);
    /* post_attn_norm + residual, then ffn_norm (one dispatch) */
    label(c, "post_attn_norm+ffn_norm");
    nb_op_norm_add_next(&g->mi, vk, c, W(&f->o), W(&w->post_attention_norm), W(&f->h), H, n,
                        cf->rms_eps, NONE(), W(&w->ffn_norm), W(&f->x));
    vkx_cmd_barrier(c);
}

/* Dense GELU-tanh MLP: out = down(gelu(gate . x) * (up . x)). */
static void mlp(struct nb_fwd *f, struct vkx_cmd *c, struct nb_gpu_layer *w, uint32_t F,
                struct vkx_view x, struct vkx_view out, uint32_t n)
{
    struct nb_gpu_model *g = f->g;
    struct vkx_ctx *vk = &g->vk;
    /* ffn_gate_up: one product into gate|up where they are stacked */
    bool fused = w->ffn_gate_up.data.n != 0;
    if (fused) {
        label(c, "ffn_gate_up");
        nb_op_mul(&g->mm, vk, c, &w->ffn_gate_up, x, W(&f->gu), n, 0, 0, false);
    } else {
        label(c, "ffn_gate");
        nb_op_mul(&g->mm, vk, c, &w->ffn_gate, x, W(&f->gate), n, 0, 0, false);
        label(c, "ffn_up");
        nb_op_mul(&g->mm, vk, c, &w->ffn_up, x, W(&f->up), n, 0, 0, false);
    }
    vkx_cmd_barrier(c);
    /* geglu (into gate) */
    label(c, "geglu");
    if (fused)
        nb_op_geglu(&g->mi, vk, c, W(&f->gu), NONE(), W(&f->gate), F, n);
    else
        nb_op_geglu(&g->mi, vk, c, W(&f->gate), W(&f->up), W(&f->gate), F, n);
    vkx_cmd_barrier(c);
    /* ffn_down */
    label(c, "ffn_down");
    nb_op_mul(&g->mm, vk, c, &w->ffn_down, W(&f->gate), out, n, 0, 0, false);
    vkx_cmd_barrier(c);
}

/* Whether experts() groups n tokens by expert (through f->egroup) rather than reading the
 * weights once per (token, slot): for prefill (n > 8), except on CPU devices, where the matvec is
 * faster for any count (lavapipe, moe.gguf pp64: 213 against 82 tok/s), as nb_op_mul decides for
 * dense weights. */
static bool experts_grouped(const struct nb_gpu_model *g, uint32_t n)
{
    return n > NB_MATVEC_MAX_TOKENS && !g->mm.prefill_matvec;
}

/* Expert products y[t*K+s] = W[eids[t][s]] . x[t or t*K+s] (see experts_grouped). */
static void experts(struct nb_fwd *f, struct vkx_cmd *c, const struct nb_gtensor *w,
                    struct vkx_view x, struct vkx_view y, uint32_t n, uint32_t K, bool per_slot)
{
    struct nb_gpu_model *g = f->g;
    if (experts_grouped(g, n))
        nb_op_matmul_id(&g->mm, &g->vk, c, w, x, y, W(&f->eids), W(&f->egroup), n, K, per_slot,
                        0, 0, false);
    else
        nb_op_matvec_id(&g->mm, &g->vk, c, w, x, y, W(&f->eids), n, K, per_slot, 0, 0, false);
}

/* MoE branch: router on the residual h, experts on rmsnorm(h, pre_ffw_norm_2), added to the
 * dense branch in f->o. */
static void moe(struct nb_fwd *f, struct vkx_cmd *c, uint32_t l, uint32_t n)
{
    struct nb_gpu_model *g = f->g;
    struct vkx_ctx *vk = &g->vk;
    const struct nb_config *cf = &g->m.cfg;
    struct nb_gpu_layer *w = &g->layer[l];
    uint32_t H = cf->n_embd, E = cf->n_expert, K = cf->n_expert_used, Fe = cf->n_ff_exp;

    /* router: z = rmsnorm(h) * scale * H^-0.5 (into f2); logits = W_r z; top-k */
    struct nb_norm_args ra = {.n = H, .n_tokens = n, .x = W(&f->h), .y = W(&f->f2),
                              .w = W(&w->ffn_gate_inp_scale), .eps = cf->rms_eps,
                              .mul = 1.0f / sqrtf((float)H)};
    label(c, "router_norm");
    nb_op_rmsnorm(&g->mi, vk, c, &ra);
    vkx_cmd_barrier(c);
    label(c, "router");
    nb_op_mul(&g->mm, vk, c, &w->ffn_gate_inp, W(&f->f2), W(&f->rlogits), n, 0, 0, false);
    vkx_cmd_barrier(c);
    label(c, "router_topk");
    nb_op_moe_router(&g->mi, vk, c, W(&f->rlogits), OPT(&w->ffn_down_exps_scale), W(&f->eids),
                     W(&f->ew), E, K, n);
    /* moe_experts: x2 = rmsnorm(h, pre_ffw_norm_2) (into f2 again, after the router read it) */
    vkx_cmd_barrier(c);
    label(c, "pre_ffw_norm_2");
    nb_op_norm(&g->mi, vk, c, W(&f->h), W(&w->pre_ffw_norm_2), W(&f->f2), H, n, cf->rms_eps);
    vkx_cmd_barrier(c);
    if (w->ffn_gate_up_exps.data.n) {
        label(c, "moe_gate_up");
        experts(f, c, &w->ffn_gate_up_exps, W(&f->f2), W(&f->egu), n, K, false);
        vkx_cmd_barrier(c);
        label(c, "moe_geglu");
        nb_op_geglu(&g->mi, vk, c, W(&f->egu), NONE(), W(&f->eact), Fe, n * K);
    } else {
        label(c, "moe_gate");
        experts(f, c, &w->ffn_gate_exps, W(&f->f2), W(&f->egu), n, K, false);
        if (experts_grouped(g, n)) /* f->egroup is reused */
            vkx_cmd_barrier(c);
        label(c, "moe_up");
        experts(f, c, &w->ffn_up_exps, W(&f->f2), W(&f->eup), n, K, false);
        vkx_cmd_barrier(c);
        label(c, "moe_geglu");
        nb_op_geglu(&g->mi, vk, c, W(&f->egu), W(&f->eup), W(&f->eact), Fe, n * K);
    }
    vkx_cmd_barrier(c);
    label(c, "moe_down");
    experts(f, c, &w->ffn_down_exps, W(&f->eact), W(&f->edown), n, K, true);
    vkx_cmd_barrier(c);
    /* weighted sum of the k experts (routing weight x per-expert scale) */
    label(c, "moe_combine");
    nb_op_moe_combine(&g->mi, vk, c, W(&f->edown), W(&f->ew), W(&f->f2), H, K, n, 0);
    vkx_cmd_barrier(c);
    /* post_ffw_norm_2, added to the dense branch: o += rmsnorm(f2) * post_ffw_norm_2 */
    label(c, "post_ffw_norm_2");
    nb_op_norm_add(&g->mi, vk, c, W(&f->f2), W(&w->post_ffw_norm_2), W(&f->o), H, n, cf->rms_eps,
                   NONE());
}

/* FFN block: f->h -> f->h + post_ffw_norm(ffn(...)) [* layer scale when there is no PLE], from
 * f->x = ffn_norm(h); with next (the following layer's attn_norm, when no PLE block comes
 * between) it also leaves f->x = next(h). */
static void ffn_block(struct nb_fwd *f, struct vkx_cmd *c, uint32_t l, uint32_t n,
                      const struct vkx_buffer *next)
{
    struct nb_gpu_model *g = f->g;
    struct vkx_ctx *vk = &g->vk;
    const struct nb_config *cf = &g->m.cfg;
    const struct nb_layer_config *lc = &cf->layer[l];
    struct nb_gpu_layer *w = &g->layer[l];
    uint32_t H = cf->n_embd;

    /* dense MLP (on f->x = ffn_norm(h)) */
    mlp(f, c, w, lc->n_ff, W(&f->x), W(&f->o), n);
    if (lc->is_moe) {
        /* post_ffw_norm_1 on the dense branch, the expert branch, their sum */
        label(c, "post_ffw_norm_1");
        nb_op_norm(&g->mi, vk, c, W(&f->o), W(&w->post_ffw_norm_1), W(&f->o), H, n,
                   cf->rms_eps);
        moe(f, c, l, n);
        vkx_cmd_barrier(c);
    }
    /* post_ffw_norm + residual (+ layer_scale here when no PLE block follows), then the next
     * layer's attn_norm (one dispatch) */
    bool scale_here = cf->n_embd_ple == 0;
    label(c, next ? "post_ffw_norm+attn_norm" : "post_ffw_norm");
    nb_op_norm_add_next(&g->mi, vk, c, W(&f->o), W(&w->post_ffw_norm), W(&f->h), H, n,
                        cf->rms_eps, scale_here ? OPT(&w->layer_output_scale) : NONE(), OPT(next),
                        W(&f->x));
    vkx_cmd_barrier(c);
}

/* PLE block: h = (h + post_norm(proj(gelu(inp_gate . h) * ple[l]))) * layer_scale; with next
 * (the following layer's attn_norm) it also leaves f->x = next(h). */
static void ple_block(struct nb_fwd *f, struct vkx_cmd *c, uint32_t l, uint32_t n,
                      const struct vkx_buffer *next)
{
    struct nb_gpu_model *g = f->g;
    struct vkx_ctx *vk = &g->vk;
    const struct nb_config *cf = &g->m.cfg;
    struct nb_gpu_layer *w = &g->layer[l];
    uint32_t H = cf->n_embd, P = cf->n_embd_ple, LP = cf->n_layer * P;

    /* ple_gate: g = gelu(inp_gate . h) * ple[:, l, :] */
    label(c, "ple_gate");
    nb_op_mul(&g->mm, vk, c, &w->inp_gate, W(&f->h), W(&f->gate), n, 0, 0, false);
    vkx_cmd_barrier(c);
    struct nb_elt_args ge = {.op = NB_ELT_GEGLU, .n = P, .rows = n, .a = W(&f->gate),
                             .b = W(&f->ple), .b_off = l * P, .b_stride = LP, .o = W(&f->gate)};
    label(c, "ple_geglu");
    nb_op_eltwise(&g->mi, vk, c, &ge);
    vkx_cmd_barrier(c);
    /* ple_proj */
    label(c, "ple_proj");
    nb_op_mul(&g->mm, vk, c, &w->proj, W(&f->gate), W(&f->o), n, 0, 0, false);
    vkx_cmd_barrier(c);
    /* post_norm + residual + layer_scale, then the next layer's attn_norm (one dispatch) */
    label(c, next ? "post_norm+attn_norm" : "post_norm");
    nb_op_norm_add_next(&g->mi, vk, c, W(&f->o), W(&w->post_norm), W(&f->h), H, n, cf->rms_eps,
                        OPT(&w->layer_output_scale), OPT(next), W(&f->x));
    vkx_cmd_barrier(c);
}

/* ple_inputs: ple[t][l] = (rmsnorm(W_plmp . h0[t] / sqrt(H))[l] * proj_norm + E_ple[tok][l] *
 * sqrt(P)) / sqrt(2), from the scaled embeddings h0 = f->h. */
static void ple_inputs(struct nb_fwd *f, struct vkx_cmd *c, uint32_t n)
{
    struct nb_gpu_model *g = f->g;
    struct vkx_ctx *vk = &g->vk;
    const struct nb_config *cf = &g->m.cfg;
    uint32_t P = cf->n_embd_ple, LP = cf->n_layer * P;

    /* ple_embed: ple_tok = E_ple[ids] * sqrt(P); with the table in host memory nb_fwd_run has
     * written these rows before the submit (ple_rows) */
    if (!g->ple_host) {
        label(c, "ple_embed");
        nb_op_embed(&g->mm, vk, c, &g->per_layer_token_embd, W(&f->ids), W(&f->ple_tok), n, 0,
                    sqrtf((float)P));
    }
    label(c, "ple_proj_in");
    nb_op_mul(&g->mm, vk, c, &g->per_layer_model_proj, W(&f->h), W(&f->ple), n, 0, 0, false);
    vkx_cmd_barrier(c);
    struct nb_elt_args sc = {.op = NB_ELT_SCALE, .n = LP * n, .rows = 1, .a = W(&f->ple),
                             .o = W(&f->ple), .c = 1.0f / sqrtf((float)cf->n_embd)};
    label(c, "ple_scale");
    nb_op_eltwise(&g->mi, vk, c, &sc);
    vkx_cmd_barrier(c);
    struct nb_norm_args na = {.n = P, .n_heads = cf->n_layer, .n_tokens = n, .x = W(&f->ple),
                              .y = W(&f->ple), .w = W(&g->per_layer_proj_norm),
                              .eps = cf->rms_eps};
    label(c, "ple_norm");
    nb_op_rmsnorm(&g->mi, vk, c, &na);
    vkx_cmd_barrier(c);
    struct nb_elt_args add = {.op = NB_ELT_ADD, .n = LP * n, .rows = 1, .a = W(&f->ple),
                              .b = W(&f->ple_tok), .o = W(&f->ple)};
    label(c, "ple_add");
    nb_op_eltwise(&g->mi, vk, c, &add);
    vkx_cmd_barrier(c);
    sc.c = 0.70710678118654752440f; /* 1/sqrt(2) */
    label(c, "ple_mix");
    nb_op_eltwise(&g->mi, vk, c, &sc);
    vkx_cmd_barrier(c);
}

static void capture(struct nb_fwd *f, struct vkx_cmd *c, int slot, uint32_t n)
{
    if (!f->capture) return;
    VkDeviceSize row = (VkDeviceSize)f->g->m.cfg.n_embd * F4;
    struct vkx_view dst = {&f->cap, (VkDeviceSize)slot * f->n_batch * row, n * row};
    struct vkx_view src = {&f->h, 0, n * row};
    vkx_cmd_copy(c, dst, src);
}

/* ---- the whole pass --------------------------------------------------------------------------- */

void nb_fwd_record(struct nb_fwd *f, struct vkx_cmd *c, uint32_t n, bool all_logits)
{
    struct nb_gpu_model *g = f->g;
    struct vkx_ctx *vk = &g->vk;
    const struct nb_config *cf = &g->m.cfg;
    uint32_t H = cf->n_embd, V = cf->n_vocab;

    vkx_cmd_begin(vk, c);
    /* embed: h = E[ids] * sqrt(H) */
    label(c, "embed");
    nb_op_embed(&g->mm, vk, c, &g->token_embd, W(&f->ids), W(&f->h), n, 0, cf->embd_scale);
    vkx_cmd_barrier(c);
    capture(f, c, 0, n);
    /* ple_inputs */
    if (cf->n_embd_ple) ple_inputs(f, c, n);

    /* attn_norm of layer 0; each later one comes with the step before it (ffn_block, ple_block) */
    label(c, "attn_norm");
    nb_op_norm(&g->mi, vk, c, W(&f->h), W(&g->layer[0].attn_norm), W(&f->x), H, n, cf->rms_eps);
    vkx_cmd_barrier(c);
    for (uint32_t l = 0; l < cf->n_layer; l++) {
        const struct vkx_buffer *next = l + 1 < cf->n_layer ? &g->layer[l + 1].attn_norm : NULL;
        attention_block(f, c, l, n);
        ffn_block(f, c, l, n, cf->n_embd_ple ? NULL : next);
        if (cf->n_embd_ple) ple_block(f, c, l, n, next);
        capture(f, c, (int)l + 1, n);
    }

    /* output_norm (every row, or the last one) */
    uint32_t rows = all_logits ? n : 1;
    struct vkx_view xin = W(&f->x);
    if (all_logits) {
        label(c, "output_norm");
        nb_op_norm(&g->mi, vk, c, W(&f->h), W(&g->output_norm), W(&f->x), H, n, cf->rms_eps);
    } else {
        struct nb_norm_args oa = {.n = H, .n_tokens = 1, .x = W(&f->h), .x_off = (n - 1) * H,
                                  .y = W(&f->xlast), .w = W(&g->output_norm), .eps = cf->rms_eps};
        label(c, "output_norm");
        nb_op_rmsnorm(&g->mi, vk, c, &oa);
        xin = W(&f->xlast);
    }
    vkx_cmd_barrier(c);
    /* output (tied: token_embd), softcap */
    label(c, "output");
    nb_op_mul(&g->mm, vk, c, g->output_is_embd ? &g->token_embd : &g->output, xin, W(&f->logits),
              rows, 0, 0, false);
    if (cf->final_softcap > 0) {
        vkx_cmd_barrier(c);
        label(c, "softcap");
        nb_op_softcap(&g->mi, vk, c, W(&f->logits), rows * V, cf->final_softcap);
    }
    vkx_cmd_end(vk, c);
}

/* ---- context ---------------------------------------------------------------------------------- */

static uint32_t umax(uint32_t a, uint32_t b) { return a > b ? a : b; }

int nb_fwd_create(struct nb_fwd *f, struct nb_gpu_model *g, uint32_t n_ctx, uint32_t n_batch,
                  bool capture_layers, bool timestamps, char *err, size_t errlen)
{
    return nb_fwd_create_kv(f, g, n_ctx, n_batch, capture_layers, timestamps, -1, err, errlen);
}

bool nb_fwd_kv_f32_auto(const struct nb_model *m)
{
    for (uint32_t l = 0; l < m->cfg.n_layer; l++) {
        const struct nb_layer_weights *w = &m->w.layer[l];
        if ((w->attn_k && w->attn_k->type != GGML_F32) ||
            (w->attn_v && w->attn_v->type != GGML_F32))
            return false;
    }
    return true;
}

int nb_fwd_create_kv(struct nb_fwd *f, struct nb_gpu_model *g, uint32_t n_ctx, uint32_t n_batch,
                     bool capture_layers, bool timestamps, int kv_f32, char *err, size_t errlen)
{
    memset(f, 0, sizeof *f);
    f->g = g;
    struct vkx_ctx *vk = &g->vk;
    const struct nb_config *cf = &g->m.cfg;
    uint32_t L = cf->n_layer, H = cf->n_embd, V = cf->n_vocab;
    if (n_batch > n_ctx) n_batch = n_ctx;
    if (n_batch == 0) n_batch = 1;
    f->n_ctx = n_ctx;
    f->n_batch = n_batch;
    f->capture = capture_layers;

    /* KV cache */
    struct nb_kv_layer_desc *desc = calloc(L, sizeof *desc);
    if (!desc) {
        snprintf(err, errlen, "out of host memory");
        return -1;
    }
    uint32_t kv_max = 0;
    for (uint32_t l = 0; l < L; l++) {
        const struct nb_layer_config *lc = &cf->layer[l];
        desc[l] = (struct nb_kv_layer_desc){lc->n_head_kv, lc->head_dim, lc->is_swa,
                                            (uint32_t)lc->kv_source};
        kv_max = umax(kv_max, lc->n_head_kv * lc->head_dim);
    }
    bool f32 = kv_f32 < 0 ? nb_fwd_kv_f32_auto(&g->m) : kv_f32 > 0;
    if (f32 && nb_op_attn_enable_f32(&g->at, vk, err, errlen) != 0) {
        free(desc);
        return -1;
    }
    int rc = nb_kvcache_create_f32(vk, &f->kv, L, desc, n_ctx, cf->sliding_window, n_batch, f32,
                                   err, errlen);
    free(desc);
    if (rc) return -1;
    if (nb_op_attn_prepare(&g->at, vk, &f->kv, err, errlen) != 0) {
        nb_fwd_destroy(f);
        return -1;
    }

    /* logits rows: every row of a batch when it fits one binding, else prefill with all_logits
     * runs in smaller chunks (nb_fwd_run) */
    uint64_t row_bytes = (uint64_t)V * F4;
    uint64_t fit = vk->caps.max_storage_range / row_bytes;
    f->n_logits = (uint32_t)(fit < n_batch ? (fit ? fit : 1) : n_batch);

    uint64_t B = n_batch, nq = (uint64_t)cf->n_head * cf->max_head_dim;
    uint64_t E = cf->n_expert, K = cf->n_expert_used, Fe = cf->n_ff_exp, P = cf->n_embd_ple;
    uint64_t FF = umax(cf->max_n_ff, (uint32_t)P);
    /* fused products' outputs, and up only where some layer's gate/up stay separate */
    uint64_t qkv_max = 0, gu_max = 0;
    bool up_sep = false;
    for (uint32_t l = 0; l < L; l++) {
        const struct nb_gpu_layer *gl = &g->layer[l];
        if (gl->attn_qkv.data.n) qkv_max = umax((uint32_t)qkv_max, (uint32_t)gl->attn_qkv.rows);
        if (gl->ffn_gate_up.data.n) gu_max = umax((uint32_t)gu_max, (uint32_t)gl->ffn_gate_up.rows);
        up_sep = up_sep || gl->ffn_up.data.n;
    }
    struct {
        struct vkx_buffer *b;
        uint64_t bytes;
        enum vkx_mem mem;
    } bufs[] = {
        {&f->ids, B * 4, VKX_MEM_HOST},
        {&f->pos, B * 4, VKX_MEM_HOST},
        {&f->h, B * H * F4, VKX_MEM_DEVICE},
        {&f->x, B * H * F4, VKX_MEM_DEVICE},
        {&f->o, B * H * F4, VKX_MEM_DEVICE},
        {&f->f2, B * H * F4, VKX_MEM_DEVICE},
        {&f->q, B * nq * F4, VKX_MEM_DEVICE},
        {&f->k, B * kv_max * F4, VKX_MEM_DEVICE},
        {&f->v, B * kv_max * F4, VKX_MEM_DEVICE},
        {&f->att, B * nq * F4, VKX_MEM_DEVICE},
        {&f->gate, B * FF * F4, VKX_MEM_DEVICE},
        {&f->up, up_sep ? B * FF * F4 : 4, VKX_MEM_DEVICE},
        {&f->qkv, qkv_max ? B * qkv_max * F4 : 4, VKX_MEM_DEVICE},
        {&f->gu, gu_max ? B * gu_max * F4 : 4, VKX_MEM_DEVICE},
        {&f->ple, P ? B * L * P * F4 : 4, VKX_MEM_DEVICE},
        {&f->ple_tok, P ? B * L * P * F4 : 4, g->ple_host ? VKX_MEM_HOST : VKX_MEM_DEVICE},
        {&f->attn_scratch, umax(256, (uint32_t)nb_op_attn_scratch_bytes(&g->at, (uint32_t)B,
                                                                      cf->n_head,
                                                                      cf->max_head_dim)),
         VKX_MEM_DEVICE},
        {&f->rlogits, E ? B * E * F4 : 4, VKX_MEM_DEVICE},
        {&f->eids, K ? B * K * 4 : 4, VKX_MEM_DEVICE},
        {&f->ew, K ? B * K * F4 : 4, VKX_MEM_DEVICE},
        {&f->egu, K ? B * K * 2 * Fe * F4 : 4, VKX_MEM_DEVICE},
        {&f->eup, K ? B * K * Fe * F4 : 4, VKX_MEM_DEVICE},
        {&f->eact, K ? B * K * Fe * F4 : 4, VKX_MEM_DEVICE},
        {&f->edown, K ? B * K * H * F4 : 4, VKX_MEM_DEVICE},
        {&f->egroup, /* only where experts() groups them (not on CPU devices) */
         K && !g->mm.prefill_matvec
             ? nb_op_matmul_id_scratch_bytes((uint32_t)E, (uint32_t)B, (uint32_t)K)
             : 4,
         VKX_MEM_DEVICE},
        {&f->xlast, H * F4, VKX_MEM_DEVICE},
        {&f->logits, f->n_logits * row_bytes, VKX_MEM_HOST},
        {&f->sampled, 4, VKX_MEM_HOST},
        {&f->cap, capture_layers ? (uint64_t)(L + 1) * B * H * F4 : 4, VKX_MEM_HOST},
    };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        if (vkx_buffer_create(vk, bufs[i].b, bufs[i].bytes, bufs[i].mem, err, errlen) != 0) {
            nb_fwd_destroy(f);
            return -1;
        }
        /* CPU devices: matvecs read x through texel views too (without one: storage reads) */
        char ignored[256];
        if (g->mm.texel && bufs[i].mem == VKX_MEM_DEVICE && bufs[i].bytes % 16 == 0)
            (void)vkx_buffer_texel_view(vk, bufs[i].b, ignored, sizeof ignored);
    }

    if (g->ple_host && !(f->ple_row = malloc(L * P * F4))) {
        snprintf(err, errlen, "out of host memory");
        nb_fwd_destroy(f);
        return -1;
    }

    /* dispatches per recording: a generous bound from the layer count (about 30 steps per
     * layer; pieces of split weights and split attention add a few) */
    f->max_dispatches = 256 + L * 128;
    vkx_cmd_create(vk, &f->cmd, f->max_dispatches, timestamps);
    vkx_cmd_create(vk, &f->dec, f->max_dispatches, timestamps);
    vkx_cmd_create(vk, &f->smp, 8, false);
    return 0;
}

void nb_fwd_destroy(struct nb_fwd *f)
{
    if (!f->g) return;
    struct vkx_ctx *vk = &f->g->vk;
    vkDeviceWaitIdle(vk->dev);
    if (f->cmd.cb) vkx_cmd_destroy(vk, &f->cmd);
    if (f->dec.cb) vkx_cmd_destroy(vk, &f->dec);
    if (f->smp.cb) vkx_cmd_destroy(vk, &f->smp);
    for (int i = 0; i <= NB_MATVEC_MAX_TOKENS; i++)
        if (f->ver[i].cb) vkx_cmd_destroy(vk, &f->ver[i]);
    struct vkx_buffer *bs[] = {&f->ids,   &f->pos,     &f->h,     &f->x,     &f->o,
                               &f->f2,    &f->q,       &f->k,     &f->v,     &f->att,
                               &f->gate,  &f->up,      &f->qkv,   &f->gu,
                               &f->ple,   &f->ple_tok,
                               &f->attn_scratch,       &f->rlogits, &f->eids, &f->ew,
                               &f->egu,   &f->eup,     &f->eact,  &f->edown, &f->egroup,
                               &f->xlast, &f->logits,  &f->sampled, &f->cap};
    for (size_t i = 0; i < sizeof bs / sizeof bs[0]; i++)
        if (bs[i]->buf) vkx_buffer_destroy(vk, bs[i]);
    if (f->kv.layers) nb_kvcache_destroy(vk, &f->kv);
    free(f->ple_row);
    memset(f, 0, sizeof *f);
}

/* ple_rows: ple_tok[t] = E_ple[ids[t]] * sqrt(P), dequantized on the host from the table in the
 * mapped file (only the pages of rows in use are ever read), as llama.cpp keeps its input layer
 * on the CPU. Every path gives the ids from the host: prefill, and decode too, since
 * nibble_sample reads the device-sampled id back (the text is streamed from it) before the next
 * nibble_eval hands it in, so this costs no device round trip. The submit that follows makes
 * these host writes visible to the device, and nb_fwd_run waits for the batch before the next
 * call writes the rows again, so one buffer serves every batch and the recorded decode step. */
static void ple_rows(struct nb_fwd *f, const int32_t *ids, uint32_t n)
{
    const struct gguf_tensor *t = f->g->ple_host;
    uint64_t LP = t->ne[0], row = ggml_row_size(t->type, LP);
    float scale = sqrtf((float)f->g->m.cfg.n_embd_ple), *dst = f->ple_tok.map;
    for (uint32_t i = 0; i < n; i++, dst += LP) {
        /* dequantize into host scratch, scale into the mapped buffer (which may be uncached
         * write-combined memory: written once, never read back) */
        if ((uint64_t)ids[i] < t->ne[1])
            nb_dequant_row(t->type, t->data + (uint64_t)ids[i] * row, f->ple_row, LP);
        else
            memset(f->ple_row, 0, LP * F4); /* out of the vocabulary: callers check (nibble_eval) */
        for (uint64_t j = 0; j < LP; j++)
            dst[j] = f->ple_row[j] * scale;
    }
}

void nb_fwd_run(struct nb_fwd *f, const int32_t *ids, uint32_t n, uint32_t pos0, bool all_logits)
{
    uint32_t *pi = f->ids.map, *pp = f->pos.map;
    for (uint32_t i = 0; i < n; i++) {
        pi[i] = (uint32_t)ids[i];
        pp[i] = pos0 + i;
    }
    if (f->g->ple_host) ple_rows(f, ids, n);
    struct vkx_ctx *vk = &f->g->vk;
    if (n == 1 && !f->capture) {
        if (!f->dec_recorded) {
            nb_fwd_record(f, &f->dec, 1, false);
            f->dec_recorded = true;
        }
        vkx_cmd_submit_wait(vk, &f->dec);
        return;
    }
    /* a verification batch of speculative decoding: matvec-shaped like the decode step (weights
     * read once for up to 8 tokens) and, like it, recorded once and replayed */
    if (all_logits && n <= NB_MATVEC_MAX_TOKENS && !f->capture &&
        vkx_has(vk, VKX_FEAT_REPLAY)) {
        struct vkx_cmd *vc = &f->ver[n];
        if (!vc->cb) {
            vkx_cmd_create(vk, vc, f->max_dispatches, false);
            nb_fwd_record(f, vc, n, true);
        }
        vkx_cmd_submit_wait(vk, vc);
        return;
    }
    nb_fwd_record(f, &f->cmd, n, all_logits);
    vkx_cmd_submit_wait(vk, &f->cmd);
}

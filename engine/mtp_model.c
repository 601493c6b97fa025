/* mtp_model.c: loads a gemma4-assistant GGUF (see mtp.h) and checks it against its target. The
 * keys and tensors are those llama.cpp's gemma4-assistant reads (src/models/gemma4-assistant.cpp,
 * src/llama-model.cpp). */
#include "mtp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_load.h"
#include "quant.h"

#define ARCH "gemma4-assistant"

static int load_config(struct nb_loader *L, struct nb_mtp_config *c, const struct nb_config *t)
{
    uint32_t n = 0, hd = 0, hd_swa = 0, vl = 0, vl_swa = 0, rot = 0, rot_swa = 0;
    nb_key_u32(L, "embedding_length", &c->n_embd, true);
    nb_key_u32(L, "embedding_length_out", &c->n_embd_out, true);
    nb_key_u32(L, "block_count", &n, true);
    nb_key_u32(L, "attention.head_count", &c->n_head, true);
    nb_key_u32(L, "attention.key_length", &hd, true);
    vl = hd;
    nb_key_u32(L, "attention.value_length", &vl, false);
    hd_swa = hd;
    nb_key_u32(L, "attention.key_length_swa", &hd_swa, false);
    vl_swa = hd_swa;
    nb_key_u32(L, "attention.value_length_swa", &vl_swa, false);
    nb_key_f32(L, "attention.layer_norm_rms_epsilon", &c->rms_eps, true);
    if (L->failed) return -1;
    if (n == 0 || n > NB_MTP_MAX_LAYERS)
        return nb_loader_fail(L, ARCH ".block_count %u: must be 1..%d", n, NB_MTP_MAX_LAYERS);
    if (c->n_embd == 0 || c->n_head == 0)
        return nb_loader_fail(L, ARCH ": zero width or head count");
    if (c->n_embd_out != t->n_embd)
        return nb_loader_fail(L, ARCH ".embedding_length_out %u: the target's width is %u",
                              c->n_embd_out, t->n_embd);
    if (c->n_embd == c->n_embd_out) /* llama.cpp refuses these too */
        return nb_loader_fail(L,
                              ARCH ": embedding_length %u equals embedding_length_out (llama.cpp "
                                   "requires them to differ)",
                              c->n_embd);
    if (vl != hd || vl_swa != hd_swa)
        return nb_loader_fail(L, ARCH ": value_length differs from key_length (not supported)");
    c->n_layer = n;
    rot = hd;
    rot_swa = hd_swa;
    nb_key_u32(L, "rope.dimension_count", &rot, false);
    nb_key_u32(L, "rope.dimension_count_swa", &rot_swa, false);
    float base = 10000.0f, base_swa = 10000.0f;
    nb_key_f32(L, "rope.freq_base", &base, false);
    nb_key_f32(L, "rope.freq_base_swa", &base_swa, false);
    uint32_t swa[NB_MTP_MAX_LAYERS], nkv[NB_MTP_MAX_LAYERS], ff[NB_MTP_MAX_LAYERS];
    nb_key_layers_u32(L, "attention.sliding_window_pattern", n, swa, true);
    for (uint32_t l = 0; l < n; l++)
        nkv[l] = c->n_head;
    nb_key_layers_u32(L, "attention.head_count_kv", n, nkv, false);
    nb_key_layers_u32(L, "feed_forward_length", n, ff, true);
    if (L->failed) return -1;
    if (rot % 2 || rot > hd || rot_swa % 2 || rot_swa > hd_swa || !(base > 0 && base_swa > 0))
        return nb_loader_fail(L, ARCH ": bad rope.dimension_count or rope.freq_base");
    c->n_rot = rot;
    bool any_swa = false;
    for (uint32_t l = 0; l < n; l++)
        any_swa |= swa[l] != 0;
    if (any_swa) {
        nb_key_u32(L, "attention.sliding_window", &c->sliding_window, true);
        if (L->failed) return -1;
        if (c->sliding_window != t->sliding_window)
            return nb_loader_fail(L,
                                  ARCH
                                  ".attention.sliding_window %u: the target's is %u (nibble "
                                  "reads the target's sliding cache, which holds its own window)",
                                  c->sliding_window, t->sliding_window);
    }
    /* the target layers read: L-2 (sliding) and L-1 (full), as llama.cpp's share() maps them */
    if (t->n_layer < 2 || t->layer[t->n_layer - 1].is_swa || !t->layer[t->n_layer - 2].is_swa)
        return nb_loader_fail(
            L, "the target's last layer must be full and the one before it sliding (the "
               "layers an assistant reads)");
    for (uint32_t l = 0; l < n; l++) {
        struct nb_mtp_layer_config *lc = &c->layer[l];
        lc->is_swa = swa[l] != 0;
        lc->target_layer = t->n_layer - (lc->is_swa ? 2 : 1);
        const struct nb_layer_config *tl = &t->layer[lc->target_layer];
        lc->head_dim = lc->is_swa ? hd_swa : hd;
        lc->n_rot = lc->is_swa ? rot_swa : rot;
        lc->rope_base = lc->is_swa ? base_swa : base;
        lc->n_head_kv = nkv[l];
        lc->n_ff = ff[l];
        if (lc->head_dim != tl->head_dim || lc->n_head_kv != tl->n_head_kv)
            return nb_loader_fail(
                L,
                "assistant layer %u reads target layer %u (%u KV heads of %u) but has "
                "%u KV heads of %u",
                l, lc->target_layer, tl->n_head_kv, tl->head_dim, lc->n_head_kv, lc->head_dim);
        if (c->n_head % lc->n_head_kv)
            return nb_loader_fail(
                L, ARCH ": head_count %u is not a multiple of layer %u's %u KV heads", c->n_head, l,
                lc->n_head_kv);
        if (lc->n_ff == 0) return nb_loader_fail(L, ARCH ".feed_forward_length: layer %u has 0", l);
        if (lc->head_dim > c->max_head_dim) c->max_head_dim = lc->head_dim;
        if (lc->n_ff > c->max_n_ff) c->max_n_ff = lc->n_ff;
    }
    return 0;
}

static int load_weights(struct nb_loader *L, struct nb_mtp_model *a)
{
    struct nb_mtp_config *c = &a->cfg;
    struct nb_mtp_weights *w = &a->w;
    uint32_t Ha = c->n_embd, Ht = c->n_embd_out;
    w->token_embd = nb_loader_token_embd(L, Ha, &c->n_vocab);
    w->output_norm = nb_loader_tensor(L, "output_norm.weight", NB_TVEC, true, 1, Ha, 1, 1);
    w->pre_proj = nb_loader_tensor(L, "nextn.pre_projection.weight", NB_TMAT, true, 2,
                                   2 * (uint64_t)Ht, Ha, 1);
    w->post_proj = nb_loader_tensor(L, "nextn.post_projection.weight", NB_TMAT, true, 2, Ha, Ht, 1);
    bool any_full = false;
    for (uint32_t l = 0; l < c->n_layer; l++)
        any_full |= !c->layer[l].is_swa;
    w->rope_freqs =
        nb_loader_tensor(L, "rope_freqs.weight", NB_TVEC, any_full, 1, c->n_rot / 2, 1, 1);
    for (uint32_t l = 0; l < c->n_layer; l++) {
        struct nb_mtp_layer_weights *lw = &w->layer[l];
        uint64_t hd = c->layer[l].head_dim, nq = c->n_head * hd, F = c->layer[l].n_ff;
        lw->attn_norm = nb_loader_blk(L, l, "attn_norm.weight", NB_TVEC, true, 1, Ha, 1, 1);
        lw->attn_q = nb_loader_blk(L, l, "attn_q.weight", NB_TMAT, true, 2, Ha, nq, 1);
        lw->attn_q_norm = nb_loader_blk(L, l, "attn_q_norm.weight", NB_TVEC, true, 1, hd, 1, 1);
        lw->attn_output = nb_loader_blk(L, l, "attn_output.weight", NB_TMAT, true, 2, nq, Ha, 1);
        lw->post_attention_norm =
            nb_loader_blk(L, l, "post_attention_norm.weight", NB_TVEC, true, 1, Ha, 1, 1);
        lw->ffn_norm = nb_loader_blk(L, l, "ffn_norm.weight", NB_TVEC, true, 1, Ha, 1, 1);
        lw->ffn_gate = nb_loader_blk(L, l, "ffn_gate.weight", NB_TMAT, true, 2, Ha, F, 1);
        lw->ffn_up = nb_loader_blk(L, l, "ffn_up.weight", NB_TMAT, true, 2, Ha, F, 1);
        lw->ffn_down = nb_loader_blk(L, l, "ffn_down.weight", NB_TMAT, true, 2, F, Ha, 1);
        lw->post_ffw_norm = nb_loader_blk(L, l, "post_ffw_norm.weight", NB_TVEC, true, 1, Ha, 1, 1);
        lw->layer_output_scale =
            nb_loader_blk(L, l, "layer_output_scale.weight", NB_TVEC, false, 1, 1, 1, 1);
    }
    if (L->failed) return -1;
    uint32_t np = c->n_rot / 2;
    c->rope_factors = malloc((np ? np : 1) * sizeof(float));
    if (!c->rope_factors) return nb_loader_fail(L, "out of host memory");
    for (uint32_t i = 0; i < np; i++)
        c->rope_factors[i] = 1.0f;
    if (w->rope_freqs)
        nb_dequant_row(w->rope_freqs->type, w->rope_freqs->data, c->rope_factors, np);
    for (uint32_t i = 0; i < np; i++)
        if (!(c->rope_factors[i] > 0))
            return nb_loader_fail(L, "rope_freqs.weight: factor %u <= 0", i);
    return 0;
}

int nb_mtp_model_load(struct nb_mtp_model *a, const char *path, const struct nb_config *target,
                      char *err, size_t errlen)
{
    memset(a, 0, sizeof *a);
    char e[400] = "";
    struct gguf *g = gguf_open(path, e, sizeof e);
    if (!g) {
        snprintf(err, errlen, "%s", e);
        return -1;
    }
    a->gguf = g;
    struct nb_loader L = {.g = g, .arch = ARCH, .err = e, .errlen = sizeof e};
    char arch[64] = "";
    if (gguf_get_str(g, "general.architecture", arch, sizeof arch) != 0)
        nb_loader_fail(&L, "missing key general.architecture");
    else if (strcmp(arch, ARCH) != 0)
        nb_loader_fail(&L, "architecture '%s' is not an MTP assistant (" ARCH ")", arch);
    if (!L.failed) load_config(&L, &a->cfg, target);
    if (!L.failed) load_weights(&L, a);
    if (!L.failed && a->cfg.n_vocab != target->n_vocab)
        nb_loader_fail(&L, "the assistant's vocabulary has %u tokens, the target's %u",
                       a->cfg.n_vocab, target->n_vocab);
    if (L.failed) {
        snprintf(err, errlen, "%s: %s", path, e);
        nb_mtp_model_free(a);
        return -1;
    }
    return 0;
}

void nb_mtp_model_free(struct nb_mtp_model *a)
{
    if (a->gguf) gguf_close(a->gguf);
    free(a->cfg.rope_factors);
    memset(a, 0, sizeof *a);
}

/* mtp_model.c: loads a gemma4-assistant GGUF (see mtp.h) and checks it against its target. The
 * keys and tensors are those llama.cpp's gemma4-assistant reads (src/models/gemma4-assistant.cpp,
 * src/llama-model.cpp). */
#include "mtp.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"

#define ARCH "gemma4-assistant"

struct loader {
    const struct gguf *g;
    char *err;
    size_t errlen;
    bool failed;
};

static int fail(struct loader *L, const char *fmt, ...)
{
    if (L->failed) return -1;
    L->failed = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(L->err, L->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* ARCH.suffix as u32: 1 present, 0 absent (an error when required), -1 wrong type. */
static int key_u32(struct loader *L, const char *suffix, uint32_t *out, bool required)
{
    char key[128];
    snprintf(key, sizeof key, ARCH ".%s", suffix);
    const struct gguf_kv *kv = gguf_find(L->g, key);
    if (!kv) {
        if (required) fail(L, "missing key %s", key);
        return required ? -1 : 0;
    }
    if (gguf_get_u32(L->g, key, out) != 0)
        return fail(L, "key %s: expected an unsigned 32-bit integer, got %s", key,
                    gguf_vtype_name(kv->type));
    return 1;
}

static int key_f32(struct loader *L, const char *suffix, float *out, bool required)
{
    char key[128];
    snprintf(key, sizeof key, ARCH ".%s", suffix);
    const struct gguf_kv *kv = gguf_find(L->g, key);
    if (!kv) {
        if (required) fail(L, "missing key %s", key);
        return required ? -1 : 0;
    }
    if (gguf_get_f32(L->g, key, out) != 0 || !isfinite(*out))
        return fail(L, "key %s: expected a finite float, got %s", key, gguf_vtype_name(kv->type));
    return 1;
}

/* A scalar for every layer or an array of n (integers or bools). */
static int key_layers(struct loader *L, const char *suffix, uint32_t n, uint32_t *out,
                      bool required)
{
    char key[128];
    snprintf(key, sizeof key, ARCH ".%s", suffix);
    const struct gguf_kv *kv = gguf_find(L->g, key);
    if (!kv) {
        if (required) fail(L, "missing key %s", key);
        return required ? -1 : 0;
    }
    if (kv->type == GGUF_ARRAY) {
        if (kv->arr_n != n)
            return fail(L, "key %s: array has %llu entries, expected %u (one per layer)", key,
                        (unsigned long long)kv->arr_n, n);
        for (uint32_t i = 0; i < n; i++)
            if (gguf_get_arr_u32(kv, i, &out[i]) != 0)
                return fail(L, "key %s: entry %u is not an integer", key, i);
        return 1;
    }
    uint32_t v;
    if (gguf_get_u32(L->g, key, &v) != 0)
        return fail(L, "key %s: expected an integer or an array of %u", key, n);
    for (uint32_t i = 0; i < n; i++)
        out[i] = v;
    return 1;
}

static int load_config(struct loader *L, struct nb_mtp_config *c, const struct nb_config *t)
{
    uint32_t n = 0, hd = 0, hd_swa = 0, vl = 0, vl_swa = 0, rot = 0, rot_swa = 0;
    key_u32(L, "embedding_length", &c->n_embd, true);
    key_u32(L, "embedding_length_out", &c->n_embd_out, true);
    key_u32(L, "block_count", &n, true);
    key_u32(L, "attention.head_count", &c->n_head, true);
    key_u32(L, "attention.key_length", &hd, true);
    vl = hd;
    key_u32(L, "attention.value_length", &vl, false);
    hd_swa = hd;
    key_u32(L, "attention.key_length_swa", &hd_swa, false);
    vl_swa = hd_swa;
    key_u32(L, "attention.value_length_swa", &vl_swa, false);
    key_f32(L, "attention.layer_norm_rms_epsilon", &c->rms_eps, true);
    if (L->failed) return -1;
    if (n == 0 || n > NB_MTP_MAX_LAYERS)
        return fail(L, ARCH ".block_count %u: must be 1..%d", n, NB_MTP_MAX_LAYERS);
    if (c->n_embd == 0 || c->n_head == 0) return fail(L, ARCH ": zero width or head count");
    if (c->n_embd_out != t->n_embd)
        return fail(L, ARCH ".embedding_length_out %u: the target's width is %u", c->n_embd_out,
                    t->n_embd);
    if (c->n_embd == c->n_embd_out) /* llama.cpp refuses these too */
        return fail(L, ARCH ": embedding_length %u equals embedding_length_out (llama.cpp "
                    "requires them to differ)", c->n_embd);
    if (vl != hd || vl_swa != hd_swa)
        return fail(L, ARCH ": value_length differs from key_length (not supported)");
    c->n_layer = n;
    rot = hd;
    rot_swa = hd_swa;
    key_u32(L, "rope.dimension_count", &rot, false);
    key_u32(L, "rope.dimension_count_swa", &rot_swa, false);
    float base = 10000.0f, base_swa = 10000.0f;
    key_f32(L, "rope.freq_base", &base, false);
    key_f32(L, "rope.freq_base_swa", &base_swa, false);
    uint32_t swa[NB_MTP_MAX_LAYERS], nkv[NB_MTP_MAX_LAYERS], ff[NB_MTP_MAX_LAYERS];
    key_layers(L, "attention.sliding_window_pattern", n, swa, true);
    for (uint32_t l = 0; l < n; l++)
        nkv[l] = c->n_head;
    key_layers(L, "attention.head_count_kv", n, nkv, false);
    key_layers(L, "feed_forward_length", n, ff, true);
    if (L->failed) return -1;
    if (rot % 2 || rot > hd || rot_swa % 2 || rot_swa > hd_swa || !(base > 0 && base_swa > 0))
        return fail(L, ARCH ": bad rope.dimension_count or rope.freq_base");
    c->n_rot = rot;
    bool any_swa = false;
    for (uint32_t l = 0; l < n; l++)
        any_swa |= swa[l] != 0;
    if (any_swa) {
        key_u32(L, "attention.sliding_window", &c->sliding_window, true);
        if (L->failed) return -1;
        if (c->sliding_window != t->sliding_window)
            return fail(L, ARCH ".attention.sliding_window %u: the target's is %u (nibble "
                        "reads the target's sliding cache, which holds its own window)",
                        c->sliding_window, t->sliding_window);
    }
    /* the target layers read: L-2 (sliding) and L-1 (full), as llama.cpp's share() maps them */
    if (t->n_layer < 2 || t->layer[t->n_layer - 1].is_swa || !t->layer[t->n_layer - 2].is_swa)
        return fail(L, "the target's last layer must be full and the one before it sliding (the "
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
            return fail(L, "assistant layer %u reads target layer %u (%u KV heads of %u) but has "
                        "%u KV heads of %u", l, lc->target_layer, tl->n_head_kv, tl->head_dim,
                        lc->n_head_kv, lc->head_dim);
        if (c->n_head % lc->n_head_kv)
            return fail(L, ARCH ": head_count %u is not a multiple of layer %u's %u KV heads",
                        c->n_head, l, lc->n_head_kv);
        if (lc->n_ff == 0) return fail(L, ARCH ".feed_forward_length: layer %u has 0", l);
        if (lc->head_dim > c->max_head_dim) c->max_head_dim = lc->head_dim;
        if (lc->n_ff > c->max_n_ff) c->max_n_ff = lc->n_ff;
    }
    return 0;
}

static const struct gguf_tensor *tensor(struct loader *L, const char *name, bool matrix,
                                        bool required, uint64_t e0, uint64_t e1)
{
    if (L->failed) return NULL;
    const struct gguf_tensor *t = gguf_find_tensor(L->g, name);
    if (!t) {
        if (required) fail(L, "missing tensor %s", name);
        return NULL;
    }
    if (!(matrix ? nb_type_ok_matrix(t->type) : nb_type_ok_vector(t->type))) {
        fail(L, "%s: unsupported type %s", name,
             ggml_type_name(t->type) ? ggml_type_name(t->type) : "?");
        return NULL;
    }
    if (t->ne[0] != e0 || t->ne[1] != e1 || t->ne[2] != 1 || t->ne[3] != 1) {
        fail(L, "%s: expected shape {%llu, %llu}, got {%llu, %llu, %llu}", name,
             (unsigned long long)e0, (unsigned long long)e1, (unsigned long long)t->ne[0],
             (unsigned long long)t->ne[1], (unsigned long long)t->ne[2]);
        return NULL;
    }
    if (t->ne[0] % ggml_blck_size(t->type)) {
        fail(L, "%s: row length %llu is not a multiple of the block size", name,
             (unsigned long long)t->ne[0]);
        return NULL;
    }
    return t;
}

static int load_weights(struct loader *L, struct nb_mtp_model *a)
{
    struct nb_mtp_config *c = &a->cfg;
    struct nb_mtp_weights *w = &a->w;
    uint32_t Ha = c->n_embd, Ht = c->n_embd_out;
    w->token_embd = gguf_find_tensor(L->g, "token_embd.weight");
    if (!w->token_embd) return fail(L, "missing tensor token_embd.weight");
    c->n_vocab = (uint32_t)w->token_embd->ne[1];
    w->token_embd = tensor(L, "token_embd.weight", true, true, Ha, c->n_vocab);
    w->output_norm = tensor(L, "output_norm.weight", false, true, Ha, 1);
    w->pre_proj = tensor(L, "nextn.pre_projection.weight", true, true, 2 * (uint64_t)Ht, Ha);
    w->post_proj = tensor(L, "nextn.post_projection.weight", true, true, Ha, Ht);
    bool any_full = false;
    for (uint32_t l = 0; l < c->n_layer; l++)
        any_full |= !c->layer[l].is_swa;
    w->rope_freqs = tensor(L, "rope_freqs.weight", false, any_full, c->n_rot / 2, 1);
    char nm[96];
#define T(field, suffix, mat, req, e0, e1)                                                         \
    do {                                                                                           \
        snprintf(nm, sizeof nm, "blk.%u." suffix, l);                                              \
        lw->field = tensor(L, nm, mat, req, e0, e1);                                               \
    } while (0)
    for (uint32_t l = 0; l < c->n_layer; l++) {
        struct nb_mtp_layer_weights *lw = &w->layer[l];
        uint32_t nq = c->n_head * c->layer[l].head_dim, F = c->layer[l].n_ff;
        T(attn_norm, "attn_norm.weight", false, true, Ha, 1);
        T(attn_q, "attn_q.weight", true, true, Ha, nq);
        T(attn_q_norm, "attn_q_norm.weight", false, true, c->layer[l].head_dim, 1);
        T(attn_output, "attn_output.weight", true, true, nq, Ha);
        T(post_attention_norm, "post_attention_norm.weight", false, true, Ha, 1);
        T(ffn_norm, "ffn_norm.weight", false, true, Ha, 1);
        T(ffn_gate, "ffn_gate.weight", true, true, Ha, F);
        T(ffn_up, "ffn_up.weight", true, true, Ha, F);
        T(ffn_down, "ffn_down.weight", true, true, F, Ha);
        T(post_ffw_norm, "post_ffw_norm.weight", false, true, Ha, 1);
        T(layer_output_scale, "layer_output_scale.weight", false, false, 1, 1);
    }
#undef T
    if (L->failed) return -1;
    uint32_t np = c->n_rot / 2;
    c->rope_factors = malloc((np ? np : 1) * sizeof(float));
    if (!c->rope_factors) return fail(L, "out of host memory");
    for (uint32_t i = 0; i < np; i++)
        c->rope_factors[i] = 1.0f;
    if (w->rope_freqs)
        nb_dequant_row(w->rope_freqs->type, w->rope_freqs->data, c->rope_factors, np);
    for (uint32_t i = 0; i < np; i++)
        if (!(c->rope_factors[i] > 0)) return fail(L, "rope_freqs.weight: factor %u <= 0", i);
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
    struct loader L = {.g = g, .err = e, .errlen = sizeof e};
    char arch[64] = "";
    if (gguf_get_str(g, "general.architecture", arch, sizeof arch) != 0)
        fail(&L, "missing key general.architecture");
    else if (strcmp(arch, ARCH) != 0)
        fail(&L, "architecture '%s' is not an MTP assistant (" ARCH ")", arch);
    if (!L.failed) load_config(&L, &a->cfg, target);
    if (!L.failed) load_weights(&L, a);
    if (!L.failed && a->cfg.n_vocab != target->n_vocab)
        fail(&L, "the assistant's vocabulary has %u tokens, the target's %u", a->cfg.n_vocab,
             target->n_vocab);
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

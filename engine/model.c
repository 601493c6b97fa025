/* model.c: reads the Gemma 4 configuration from gemma4.* metadata and builds the weight table,
 * checking every tensor's presence, type and exact shape (see model.h). Spec:
 * ../shared/docs/gemma4.md sections 1.3, 2, 3.2 and 3.3. */
#include "model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gtensor_pack.h"
#include "model_load.h"
#include "quant.h"

const char *nb_arch_name(enum nb_arch a)
{
    switch (a) {
    case NB_ARCH_GEMMA4:
        return "gemma4";
    case NB_ARCH_GEMMA3:
        return "gemma3";
    }
    return "?";
}

bool nb_type_ok_vector(enum ggml_type t)
{
    return t == GGML_F32 || t == GGML_F16 || t == GGML_BF16;
}

bool nb_type_ok_matrix(enum ggml_type t)
{
    return nb_type_ok_vector(t) || nb_pack_info(t, NULL);
}

/* ---- metadata ------------------------------------------------------------------------------ */

static int load_config(struct nb_loader *L, struct nb_config *c)
{
    uint32_t n = 0;
    nb_key_u32(L, "embedding_length", &c->n_embd, true);
    nb_key_u32(L, "block_count", &n, true);
    nb_key_u32(L, "attention.head_count", &c->n_head, true);
    if (L->failed) return -1;
    if (c->n_embd == 0 || c->n_head == 0)
        return nb_loader_fail(L, "%s.embedding_length %u, attention.head_count %u: must be > 0",
                              L->arch, c->n_embd, c->n_head);
    if (n == 0 || n > NB_MAX_LAYERS)
        return nb_loader_fail(L, "%s.block_count %u: must be 1..%d", L->arch, n, NB_MAX_LAYERS);
    c->n_layer = n;
    nb_key_u32(L, "context_length", &c->n_ctx_train, false);

    nb_key_u32(L, "attention.key_length", &c->head_dim, true);
    uint32_t vlen = c->head_dim;
    nb_key_u32(L, "attention.value_length", &vlen, false);
    c->head_dim_swa = c->head_dim;
    nb_key_u32(L, "attention.key_length_swa", &c->head_dim_swa, false);
    uint32_t vlen_swa = c->head_dim_swa;
    nb_key_u32(L, "attention.value_length_swa", &vlen_swa, false);
    if (L->failed) return -1;
    if (vlen != c->head_dim || vlen_swa != c->head_dim_swa)
        return nb_loader_fail(
            L,
            "%s.attention.value_length %u/%u (full/swa) differs from key_length %u/%u "
            "(not supported)",
            L->arch, vlen, vlen_swa, c->head_dim, c->head_dim_swa);
    if (c->head_dim == 0 || c->head_dim_swa == 0)
        return nb_loader_fail(L, "%s.attention.key_length must be > 0", L->arch);

    c->n_rot = c->head_dim;
    c->n_rot_swa = c->head_dim_swa;
    nb_key_u32(L, "rope.dimension_count", &c->n_rot, false);
    nb_key_u32(L, "rope.dimension_count_swa", &c->n_rot_swa, false);
    if (L->failed) return -1;
    if (c->n_rot % 2 || c->n_rot > c->head_dim || c->n_rot_swa % 2 ||
        c->n_rot_swa > c->head_dim_swa)
        return nb_loader_fail(
            L,
            "%s.rope.dimension_count %u/%u (full/swa): must be even and at most the head "
            "dim %u/%u",
            L->arch, c->n_rot, c->n_rot_swa, c->head_dim, c->head_dim_swa);
    c->rope_base = 10000.0f;
    c->rope_base_swa = 10000.0f;
    nb_key_f32(L, "rope.freq_base", &c->rope_base, false);
    nb_key_f32(L, "rope.freq_base_swa", &c->rope_base_swa, false);
    nb_key_f32(L, "attention.layer_norm_rms_epsilon", &c->rms_eps, true);
    nb_key_f32(L, "final_logit_softcapping", &c->final_softcap, false);
    if (L->failed) return -1;
    if (!(c->rope_base > 0 && c->rope_base_swa > 0))
        return nb_loader_fail(L, "%s.rope.freq_base must be > 0", L->arch);
    if (!(c->rms_eps >= 0) || c->final_softcap < 0)
        return nb_loader_fail(
            L, "%s: layer_norm_rms_epsilon and final_logit_softcapping must be >= 0", L->arch);

    /* Layer pattern: a bool array (true = sliding) or, as in gemma3 files, a period p (layer l
     * is sliding iff l % p < p - 1). */
    uint32_t v[NB_MAX_LAYERS];
    char key[128];
    snprintf(key, sizeof key, "%s.attention.sliding_window_pattern", L->arch);
    const struct gguf_kv *kv = gguf_find(L->g, key);
    if (kv && kv->type != GGUF_ARRAY) {
        uint32_t p = 0;
        if (nb_key_u32(L, "attention.sliding_window_pattern", &p, true) < 0) return -1;
        for (uint32_t l = 0; l < n; l++)
            v[l] = p > 0 && l % p < p - 1;
    } else if (nb_key_layers_u32(L, "attention.sliding_window_pattern", n, v, true) < 0) {
        return -1;
    }
    bool any_swa = false;
    for (uint32_t l = 0; l < n; l++) {
        c->layer[l].is_swa = v[l] != 0;
        any_swa |= v[l] != 0;
    }
    if (any_swa) {
        nb_key_u32(L, "attention.sliding_window", &c->sliding_window, true);
        if (L->failed) return -1;
        if (c->sliding_window == 0)
            return nb_loader_fail(L, "%s.attention.sliding_window is 0", L->arch);
    }

    for (uint32_t l = 0; l < n; l++)
        v[l] = c->n_head;
    if (nb_key_layers_u32(L, "attention.head_count_kv", n, v, false) < 0) return -1;
    for (uint32_t l = 0; l < n; l++) {
        if (v[l] == 0 || c->n_head % v[l])
            return nb_loader_fail(
                L,
                "%s.attention.head_count_kv: layer %u has %u, which does not divide head_count %u",
                L->arch, l, v[l], c->n_head);
        c->layer[l].n_head_kv = v[l];
    }
    if (nb_key_layers_u32(L, "feed_forward_length", n, v, true) < 0) return -1;
    for (uint32_t l = 0; l < n; l++) {
        if (v[l] == 0)
            return nb_loader_fail(L, "%s.feed_forward_length: layer %u has 0", L->arch, l);
        c->layer[l].n_ff = v[l];
        if (v[l] > c->max_n_ff) c->max_n_ff = v[l];
    }

    nb_key_u32(L, "attention.shared_kv_layers", &c->n_kv_shared, false);
    nb_key_u32(L, "embedding_length_per_layer_input", &c->n_embd_ple, false);
    nb_key_u32(L, "expert_count", &c->n_expert, false);
    if (L->failed) return -1;
    if (c->n_kv_shared >= n)
        return nb_loader_fail(L,
                              "%s.attention.shared_kv_layers %u: must be less than block_count %u",
                              L->arch, c->n_kv_shared, n);
    if (c->n_expert > 0) {
        nb_key_u32(L, "expert_used_count", &c->n_expert_used, true);
        nb_key_u32(L, "expert_feed_forward_length", &c->n_ff_exp, true);
        if (L->failed) return -1;
        if (c->n_expert > NB_MAX_EXPERTS)
            return nb_loader_fail(L, "%s.expert_count %u: at most %d supported", L->arch,
                                  c->n_expert, NB_MAX_EXPERTS);
        if (c->n_expert_used == 0 || c->n_expert_used > c->n_expert || c->n_ff_exp == 0)
            return nb_loader_fail(
                L,
                "%s: expert_used_count %u / expert_feed_forward_length %u invalid for %u "
                "experts",
                L->arch, c->n_expert_used, c->n_ff_exp, c->n_expert);
    }

    /* Per-layer geometry and KV sharing: layers >= n - n_kv_shared read the cache of the last
     * non-shared layer of the same type. */
    uint32_t first_shared = n - c->n_kv_shared;
    for (uint32_t l = 0; l < n; l++) {
        struct nb_layer_config *lc = &c->layer[l];
        lc->head_dim = lc->is_swa ? c->head_dim_swa : c->head_dim;
        lc->n_rot = lc->is_swa ? c->n_rot_swa : c->n_rot;
        lc->rope_base = lc->is_swa ? c->rope_base_swa : c->rope_base;
        if (lc->head_dim > c->max_head_dim) c->max_head_dim = lc->head_dim;
        lc->has_kv = l < first_shared;
        lc->kv_source = (int32_t)l;
        if (lc->has_kv) continue;
        lc->kv_source = -1;
        for (uint32_t s = first_shared; s-- > 0;)
            if (c->layer[s].is_swa == lc->is_swa) {
                lc->kv_source = (int32_t)s;
                break;
            }
        if (lc->kv_source < 0)
            return nb_loader_fail(L, "layer %u shares KV but no earlier %s layer has its own", l,
                                  lc->is_swa ? "sliding" : "full");
        if (c->layer[lc->kv_source].n_head_kv != lc->n_head_kv)
            return nb_loader_fail(
                L, "layer %u shares the KV of layer %d but has %u KV heads instead of %u", l,
                lc->kv_source, lc->n_head_kv, c->layer[lc->kv_source].n_head_kv);
    }
    return L->failed ? -1 : 0;
}

/* ---- tensors ------------------------------------------------------------------------------- */

static void load_layer(struct nb_loader *L, struct nb_config *c, struct nb_layer_weights *w,
                       uint32_t l)
{
    struct nb_layer_config *lc = &c->layer[l];
    uint64_t H = c->n_embd, hd = lc->head_dim, nq = (uint64_t)c->n_head * hd;
    uint64_t nkv = (uint64_t)lc->n_head_kv * hd, F = lc->n_ff, P = c->n_embd_ple;
    uint64_t E = c->n_expert, Fe = c->n_ff_exp;

    w->attn_norm = nb_loader_blk(L, l, "attn_norm.weight", NB_TVEC, true, 1, H, 1, 1);
    w->attn_q = nb_loader_blk(L, l, "attn_q.weight", NB_TMAT, true, 2, H, nq, 1);
    w->attn_q_norm = nb_loader_blk(L, l, "attn_q_norm.weight", NB_TVEC, true, 1, hd, 1, 1);
    if (lc->has_kv) { /* K/V tensors of KV-shared layers may exist; they are ignored */
        w->attn_k = nb_loader_blk(L, l, "attn_k.weight", NB_TMAT, true, 2, H, nkv, 1);
        w->attn_v = nb_loader_blk(L, l, "attn_v.weight", NB_TMAT, false, 2, H, nkv, 1);
        w->attn_k_norm = nb_loader_blk(L, l, "attn_k_norm.weight", NB_TVEC, true, 1, hd, 1, 1);
        lc->has_v = w->attn_v != NULL;
    }
    w->attn_output = nb_loader_blk(L, l, "attn_output.weight", NB_TMAT, true, 2, nq, H, 1);
    w->post_attention_norm =
        nb_loader_blk(L, l, "post_attention_norm.weight", NB_TVEC, true, 1, H, 1, 1);
    w->ffn_norm = nb_loader_blk(L, l, "ffn_norm.weight", NB_TVEC, true, 1, H, 1, 1);
    w->ffn_gate = nb_loader_blk(L, l, "ffn_gate.weight", NB_TMAT, true, 2, H, F, 1);
    w->ffn_up = nb_loader_blk(L, l, "ffn_up.weight", NB_TMAT, true, 2, H, F, 1);
    w->ffn_down = nb_loader_blk(L, l, "ffn_down.weight", NB_TMAT, true, 2, F, H, 1);
    w->post_ffw_norm = nb_loader_blk(L, l, "post_ffw_norm.weight", NB_TVEC, true, 1, H, 1, 1);
    w->layer_output_scale =
        nb_loader_blk(L, l, "layer_output_scale.weight", NB_TVEC, false, 1, 1, 1, 1);
    if (w->layer_output_scale) c->has_layer_scale = true;

    if (P) {
        w->inp_gate = nb_loader_blk(L, l, "inp_gate.weight", NB_TMAT, true, 2, H, P, 1);
        w->proj = nb_loader_blk(L, l, "proj.weight", NB_TMAT, true, 2, P, H, 1);
        w->post_norm = nb_loader_blk(L, l, "post_norm.weight", NB_TVEC, true, 1, H, 1, 1);
    }
    if (E) {
        w->ffn_gate_inp = nb_loader_blk(L, l, "ffn_gate_inp.weight", NB_TMAT, false, 2, H, E, 1);
        lc->is_moe = w->ffn_gate_inp != NULL;
    }
    if (!lc->is_moe) return;
    w->ffn_gate_inp_scale = nb_loader_blk(L, l, "ffn_gate_inp.scale", NB_TVEC, true, 1, H, 1, 1);
    w->pre_ffw_norm_2 = nb_loader_blk(L, l, "pre_ffw_norm_2.weight", NB_TVEC, true, 1, H, 1, 1);
    w->post_ffw_norm_1 = nb_loader_blk(L, l, "post_ffw_norm_1.weight", NB_TVEC, true, 1, H, 1, 1);
    w->post_ffw_norm_2 = nb_loader_blk(L, l, "post_ffw_norm_2.weight", NB_TVEC, true, 1, H, 1, 1);
    w->ffn_gate_up_exps =
        nb_loader_blk(L, l, "ffn_gate_up_exps.weight", NB_TMAT, false, 3, H, 2 * Fe, E);
    if (!w->ffn_gate_up_exps) {
        w->ffn_gate_exps = nb_loader_blk(L, l, "ffn_gate_exps.weight", NB_TMAT, true, 3, H, Fe, E);
        w->ffn_up_exps = nb_loader_blk(L, l, "ffn_up_exps.weight", NB_TMAT, true, 3, H, Fe, E);
    }
    if (l == 0 || !c->moe_fused_gate_up == !w->ffn_gate_up_exps)
        c->moe_fused_gate_up = w->ffn_gate_up_exps != NULL;
    else
        nb_loader_fail(L, "blk.%u: mixes fused and split expert gate/up tensors across layers", l);
    w->ffn_down_exps = nb_loader_blk(L, l, "ffn_down_exps.weight", NB_TMAT, true, 3, Fe, H, E);
    w->ffn_down_exps_scale = nb_loader_blk(L, l, "ffn_down_exps.scale", NB_TVEC, false, 1, E, 1, 1);
}

/* Copies rope_freqs into cfg->rope_factors (f32) and classifies them. */
static int load_rope_factors(struct nb_loader *L, struct nb_model *m)
{
    struct nb_config *c = &m->cfg;
    uint32_t n = c->n_rot / 2;
    c->rope_factors = malloc((n ? n : 1) * sizeof(float));
    if (!c->rope_factors) return nb_loader_fail(L, "out of memory");
    for (uint32_t i = 0; i < n; i++)
        c->rope_factors[i] = 1.0f;
    if (m->w.rope_freqs)
        nb_dequant_row(m->w.rope_freqs->type, m->w.rope_freqs->data, c->rope_factors, n);
    c->n_rope_pairs_full = 0;
    while (c->n_rope_pairs_full < n && c->rope_factors[c->n_rope_pairs_full] < NB_ROPE_FACTOR_OFF)
        c->n_rope_pairs_full++;
    c->rope_factors_simple = true;
    for (uint32_t i = 0; i < n; i++) {
        float f = c->rope_factors[i];
        if (!(f > 0))
            return nb_loader_fail(L, "rope_freqs.weight: factor %u is %g (must be > 0)", i,
                                  (double)f);
        if (i < c->n_rope_pairs_full ? f != 1.0f : f < NB_ROPE_FACTOR_OFF)
            c->rope_factors_simple = false;
    }
    return L->failed ? -1 : 0;
}

static int load_weights(struct nb_loader *L, struct nb_model *m)
{
    struct nb_config *c = &m->cfg;
    struct nb_weights *w = &m->w;
    uint64_t H = c->n_embd;
    w->token_embd = nb_loader_token_embd(L, H, &c->n_vocab);
    if (!w->token_embd) return -1;
    uint64_t V = c->n_vocab, LP = (uint64_t)c->n_layer * c->n_embd_ple;
    w->output = nb_loader_tensor(L, "output.weight", NB_TMAT, false, 2, H, V, 1);
    c->tied_output = w->output == NULL;
    if (c->tied_output) w->output = w->token_embd;
    w->output_norm = nb_loader_tensor(L, "output_norm.weight", NB_TVEC, true, 1, H, 1, 1);
    w->rope_freqs = nb_loader_tensor(L, "rope_freqs.weight", NB_TVEC, false, 1, c->n_rot / 2, 1, 1);
    if (c->n_embd_ple) {
        w->per_layer_token_embd =
            nb_loader_tensor(L, "per_layer_token_embd.weight", NB_TMAT, true, 2, LP, V, 1);
        w->per_layer_model_proj =
            nb_loader_tensor(L, "per_layer_model_proj.weight", NB_TMAT, true, 2, H, LP, 1);
        w->per_layer_proj_norm = nb_loader_tensor(L, "per_layer_proj_norm.weight", NB_TVEC, true, 1,
                                                  c->n_embd_ple, 1, 1);
    }
    for (uint32_t l = 0; l < c->n_layer && !L->failed; l++)
        load_layer(L, c, &w->layer[l], l);
    if (!L->failed) load_rope_factors(L, m);
    return L->failed ? -1 : 0;
}

int nb_model_from_gguf(struct nb_model *m, struct gguf *g, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    m->gguf = g;
    struct nb_loader L = {.g = g, .err = err, .errlen = errlen};
    char arch[64] = "";
    if (gguf_get_str(g, "general.architecture", arch, sizeof arch) != 0) {
        nb_loader_fail(&L, "missing key general.architecture");
    } else if (strcmp(arch, "gemma4") != 0) {
        nb_loader_fail(&L, "unsupported architecture '%s' (nibble runs gemma4)", arch);
    } else {
        m->cfg.arch = NB_ARCH_GEMMA4;
        L.arch = "gemma4";
        m->cfg.attn_scale = 1.0f;
        gguf_get_str(g, "general.name", m->cfg.name, sizeof m->cfg.name);
        load_config(&L, &m->cfg);
        if (!L.failed) m->cfg.embd_scale = sqrtf((float)m->cfg.n_embd);
        if (!L.failed) load_weights(&L, m);
    }
    if (L.failed) {
        nb_model_free(m);
        return -1;
    }
    return 0;
}

int nb_model_load(struct nb_model *m, const char *path, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    struct gguf *g = gguf_open(path, err, errlen);
    if (!g) return -1;
    return nb_model_from_gguf(m, g, err, errlen);
}

void nb_model_free(struct nb_model *m)
{
    if (m->gguf) gguf_close(m->gguf);
    free(m->cfg.rope_factors);
    memset(m, 0, sizeof *m);
}

/* ---- printing ------------------------------------------------------------------------------ */

/* Prints per-layer values run-length encoded: "2 x5, 1". */
static void print_runs(FILE *f, const char *label, const uint32_t *v, uint32_t n)
{
    fprintf(f, "  %-19s", label);
    for (uint32_t i = 0; i < n;) {
        uint32_t j = i;
        while (j < n && v[j] == v[i])
            j++;
        fprintf(f, "%s%u", i ? ", " : "", v[i]);
        if (j - i > 1) fprintf(f, " x%u", j - i);
        i = j;
    }
    fprintf(f, "\n");
}

void nb_config_print(const struct nb_config *c, FILE *f)
{
    uint32_t n = c->n_layer, v[NB_MAX_LAYERS] = {0};
    fprintf(f, "architecture         %s%s%s%s\n", nb_arch_name(c->arch), c->name[0] ? " (" : "",
            c->name, c->name[0] ? ")" : "");
    fprintf(f, "  n_embd             %u\n  n_layer            %u\n  n_head             %u\n",
            c->n_embd, n, c->n_head);
    fprintf(f, "  n_vocab            %u\n  context_length     %u\n", c->n_vocab, c->n_ctx_train);
    fprintf(f, "  layer pattern      ");
    for (uint32_t l = 0; l < n; l++)
        fputc(c->layer[l].is_swa ? 'S' : 'F', f);
    fprintf(f, "  (S sliding, F full)\n");
    fprintf(f, "  head dim           %u full, %u sliding\n", c->head_dim, c->head_dim_swa);
    for (uint32_t l = 0; l < n; l++)
        v[l] = c->layer[l].n_head_kv;
    print_runs(f, "n_head_kv", v, n);
    for (uint32_t l = 0; l < n; l++)
        v[l] = c->layer[l].n_ff;
    print_runs(f, "n_ff", v, n);
    if (c->sliding_window) fprintf(f, "  sliding window     %u\n", c->sliding_window);
    fprintf(f, "  rope               base %g full, %g sliding; dims %u full, %u sliding\n",
            (double)c->rope_base, (double)c->rope_base_swa, c->n_rot, c->n_rot_swa);
    fprintf(f, "  rope full layers   %u of %u pairs rotate%s\n", c->n_rope_pairs_full, c->n_rot / 2,
            c->rope_factors_simple ? "" : " (non-trivial factors)");
    fprintf(f, "  rms eps            %g\n  attention scale    %g\n", (double)c->rms_eps,
            (double)c->attn_scale);
    if (c->n_kv_shared) {
        fprintf(f, "  shared kv layers   %u:", c->n_kv_shared);
        for (uint32_t l = n - c->n_kv_shared; l < n; l++)
            fprintf(f, " %u->%d", l, c->layer[l].kv_source);
        fprintf(f, "\n");
    }
    bool kv_eq = false;
    for (uint32_t l = 0; l < n; l++)
        kv_eq |= c->layer[l].has_kv && !c->layer[l].has_v;
    if (kv_eq) {
        fprintf(f, "  K=V (no attn_v)    layers");
        for (uint32_t l = 0; l < n; l++)
            if (c->layer[l].has_kv && !c->layer[l].has_v) fprintf(f, " %u", l);
        fprintf(f, "\n");
    }
    if (c->n_embd_ple) fprintf(f, "  per-layer embd     %u\n", c->n_embd_ple);
    if (c->n_expert) {
        uint32_t nm = 0;
        for (uint32_t l = 0; l < n; l++)
            nm += c->layer[l].is_moe;
        fprintf(f, "  experts            %u, top %u, width %u, %s gate/up, on %u of %u layers\n",
                c->n_expert, c->n_expert_used, c->n_ff_exp,
                c->moe_fused_gate_up ? "fused" : "split", nm, n);
    }
    fprintf(f, "  layer output scale %s\n", c->has_layer_scale ? "yes" : "no");
    if (c->final_softcap > 0)
        fprintf(f, "  final softcap      %g\n", (double)c->final_softcap);
    else
        fprintf(f, "  final softcap      none\n");
    fprintf(f, "  output             %s\n", c->tied_output ? "tied (token_embd)" : "output.weight");
}

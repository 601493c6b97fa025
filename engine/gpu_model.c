/* gpu_model.c: a model's weights on the device and the op pipelines (struct nb_gpu_model).
 *
 * Matrices go up as gtensors straight from the mapped file (repacked in chunks, so host memory
 * stays far below the model size); vectors (norms, scales) are dequantized to f32 buffers. The
 * file's pages are released as soon as they are on the device (every chunk of a matrix, every
 * vector), and the header's (metadata, vocabulary) once the weights are up: host memory while
 * loading is one chunk of the file beyond what the driver holds. The per-layer token embeddings
 * (PLE models) are not uploaded: they stay in the mapping and the host dequantizes the rows of
 * each batch (forward.c's ple_rows), which saves their size in device memory (E2B: ~1.3 GB in
 * Q4_0) at the cost of one row per token. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forward.h"
#include "platform.h"
#include "vkx_budget.h"
#include "quant.h"

struct loader {
    struct nb_gpu_model *g;
    char *err;
    size_t errlen;
    int failed;
};

/* The model's file mapping (gguf.c's map_), for releasing pages once they are on the device;
 * NULL when the GGUF is not a file mapping (then nothing may be released). */
static const struct plat_map *file_map(const struct nb_gpu_model *g)
{
    return (const struct plat_map *)g->m.gguf->map_;
}

static void mat(struct loader *L, struct nb_gtensor *gt, const struct gguf_tensor *t)
{
    if (L->failed || !t) return;
    if (nb_gtensor_upload_file(&L->g->vk, gt, t, file_map(L->g), L->g->mm.tile_shift, L->err,
                               L->errlen) != 0) {
        L->failed = 1;
        return;
    }
    L->g->weight_bytes += gt->data.size;
}

/* One tensor of the n matrices (same input) when they stack and fusing is on; else false. */
static bool stacked(struct loader *L, struct nb_gtensor *gt, const struct gguf_tensor *const *ts,
                    uint32_t n)
{
    if (L->failed || n < 2 || !vkx_has(&L->g->vk, VKX_FEAT_FUSE) ||
        !nb_gtensor_can_stack(ts, n, L->g->mm.tile_shift))
        return false;
    if (nb_gtensor_upload_stack(&L->g->vk, gt, ts, n, file_map(L->g), L->g->mm.tile_shift,
                                L->err, L->errlen) != 0) {
        L->failed = 1;
        return true;
    }
    L->g->weight_bytes += gt->data.size;
    return true;
}

/* A vector tensor (any float type) as an f32 buffer of n values. */
static void vec(struct loader *L, struct vkx_buffer *b, const struct gguf_tensor *t)
{
    if (L->failed || !t) return;
    uint64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    float *tmp = malloc(n * sizeof(float));
    if (!tmp) {
        snprintf(L->err, L->errlen, "out of host memory for tensor %.*s", (int)t->name.n,
                 t->name.p);
        L->failed = 1;
        return;
    }
    nb_dequant_row(t->type, t->data, tmp, n);
    if (vkx_buffer_create(&L->g->vk, b, n * sizeof(float), VKX_MEM_DEVICE, L->err, L->errlen)) {
        free(tmp);
        L->failed = 1;
        return;
    }
    int up = vkx_upload(&L->g->vk, b, 0, tmp, n * sizeof(float));
    free(tmp);
    if (up != 0) { /* inside vkx_cmd_catch: nb_gpu_model_load names the failure */
        snprintf(L->err, L->errlen, "tensor %.*s: uploading failed", (int)t->name.n, t->name.p);
        L->failed = 1;
        return;
    }
    L->g->weight_bytes += n * sizeof(float);
    if (file_map(L->g)) plat_map_release(file_map(L->g), (size_t)t->offset, (size_t)t->nbytes);
}

static void upload_layer(struct loader *L, uint32_t l)
{
    const struct nb_layer_weights *w = &L->g->m.w.layer[l];
    struct nb_gpu_layer *d = &L->g->layer[l];
    vec(L, &d->attn_norm, w->attn_norm);
    /* q|k|v as one product where the layer has its own K (and V) */
    const struct gguf_tensor *qkv[] = {w->attn_q, w->attn_k, w->attn_v};
    if (!w->attn_k || !stacked(L, &d->attn_qkv, qkv, w->attn_v ? 3 : 2)) {
        mat(L, &d->attn_q, w->attn_q);
        mat(L, &d->attn_k, w->attn_k);
        mat(L, &d->attn_v, w->attn_v);
    }
    vec(L, &d->attn_q_norm, w->attn_q_norm);
    vec(L, &d->attn_k_norm, w->attn_k_norm);
    mat(L, &d->attn_output, w->attn_output);
    vec(L, &d->post_attention_norm, w->post_attention_norm);
    vec(L, &d->ffn_norm, w->ffn_norm);
    const struct gguf_tensor *gu[] = {w->ffn_gate, w->ffn_up};
    if (!w->ffn_gate || !stacked(L, &d->ffn_gate_up, gu, 2)) {
        mat(L, &d->ffn_gate, w->ffn_gate);
        mat(L, &d->ffn_up, w->ffn_up);
    }
    mat(L, &d->ffn_down, w->ffn_down);
    vec(L, &d->post_ffw_norm, w->post_ffw_norm);
    vec(L, &d->layer_output_scale, w->layer_output_scale);
    mat(L, &d->inp_gate, w->inp_gate);
    mat(L, &d->proj, w->proj);
    vec(L, &d->post_norm, w->post_norm);
    mat(L, &d->ffn_gate_inp, w->ffn_gate_inp);
    vec(L, &d->ffn_gate_inp_scale, w->ffn_gate_inp_scale);
    vec(L, &d->pre_ffw_norm_2, w->pre_ffw_norm_2);
    vec(L, &d->post_ffw_norm_1, w->post_ffw_norm_1);
    vec(L, &d->post_ffw_norm_2, w->post_ffw_norm_2);
    mat(L, &d->ffn_gate_up_exps, w->ffn_gate_up_exps);
    mat(L, &d->ffn_gate_exps, w->ffn_gate_exps);
    mat(L, &d->ffn_up_exps, w->ffn_up_exps);
    mat(L, &d->ffn_down_exps, w->ffn_down_exps);
    vec(L, &d->ffn_down_exps_scale, w->ffn_down_exps_scale);
}

/* Bytes the weights will take on the device (about: the file's tensor bytes but the ones that
 * stay on the host). */
static uint64_t weight_bytes_needed(const struct nb_gpu_model *g)
{
    const struct gguf *gg = g->m.gguf;
    uint64_t n = 0;
    for (uint64_t i = 0; i < gg->n_tensors; i++)
        if (&gg->tensors[i] != g->ple_host) n += gg->tensors[i].nbytes;
    return n;
}

/* Where the per-layer token embeddings live (see nb_gpu_model.ple_host): in the mapped file
 * unless NIBBLE_PLE=device or nb_dequant_row cannot read their type. 0, or -1 for a bad value. */
static int place_ple(struct nb_gpu_model *g, const char *path, char *err, size_t errlen)
{
    const struct gguf_tensor *t = g->m.w.per_layer_token_embd;
    const char *env = getenv("NIBBLE_PLE");
    if (env && *env && strcmp(env, "host") && strcmp(env, "device")) {
        snprintf(err, errlen, "%s: NIBBLE_PLE=%s: expected host or device", path, env);
        return -1;
    }
    bool device = env && !strcmp(env, "device");
    g->ple_host = t && !device && nb_dequant_supported(t->type) ? t : NULL;
    g->host_weight_bytes = g->ple_host ? t->nbytes : 0;
    return 0;
}

int nb_gpu_model_load(struct nb_gpu_model *g, const char *path, const struct vkx_opts *opts,
                      char *err, size_t errlen)
{
    memset(g, 0, sizeof *g);
    if (nb_model_load(&g->m, path, err, errlen) != 0) {
        if (strncmp(err, path, strlen(path)) != 0) { /* parse errors do not name the file */
            char tmp[512];
            snprintf(tmp, sizeof tmp, "%s: %s", path, err);
            snprintf(err, errlen, "%s", tmp);
        }
        return -1;
    }
    const struct nb_config *c = &g->m.cfg;
    for (uint32_t l = 0; l < c->n_layer; l++) {
        const struct nb_layer_weights *w = &g->m.w.layer[l];
        const struct gguf_tensor *ts[] = {w->attn_q, w->attn_k, w->attn_v, w->attn_output,
                                          w->ffn_gate, w->ffn_up, w->ffn_down, w->inp_gate,
                                          w->proj, w->ffn_gate_inp, w->ffn_gate_up_exps,
                                          w->ffn_gate_exps, w->ffn_up_exps, w->ffn_down_exps};
        for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
            if (ts[i] && !nb_op_matmul_supports(ts[i]->type)) {
                snprintf(err, errlen, "%s: tensor %.*s has type %s, which the GPU path does not "
                         "support yet (F32, F16, Q4_0, Q8_0)", path, (int)ts[i]->name.n,
                         ts[i]->name.p, ggml_type_name(ts[i]->type));
                nb_model_free(&g->m);
                return -1;
            }
    }
    if (place_ple(g, path, err, errlen) != 0 || vkx_create(&g->vk, opts, err, errlen) != 0) {
        nb_model_free(&g->m);
        return -1;
    }
    /* Refuse early when the weights cannot fit, saying how much is needed and available. */
    /* NIBBLE_DEVICE_MEMORY_MB emulates a device with less memory (tests, capacity planning). */
    uint64_t need = weight_bytes_needed(g), have = g->vk.caps.device_local_bytes;
    const char *lim = getenv("NIBBLE_DEVICE_MEMORY_MB");
    double mb = 0;
    if (lim && (plat_parse_f64(lim, 0, 1e12, &mb) != 0 || !(mb > 0))) {
        snprintf(err, errlen, "NIBBLE_DEVICE_MEMORY_MB=%s: not a number of MiB above 0 (at most "
                 "1e12)", lim);
        nb_gpu_model_free(g);
        return -1;
    }
    if (lim) have = (uint64_t)(mb * 1048576.0);
    /* with VK_EXT_memory_budget: what the driver lets this process have now (other apps' and
     * the system's use taken off) */
    struct vkx_budget bud;
    int brc = lim ? -1 : vkx_memory_budget(&g->vk, &bud);
    if (brc == -2) {
        snprintf(err, errlen, "NIBBLE_FAKE_BUDGET=%s: expected BUDGET_MB:USAGE_MB",
                 getenv("NIBBLE_FAKE_BUDGET"));
        nb_gpu_model_free(g);
        return -1;
    }
    g->mem_budget = brc == 0;
    if (g->mem_budget) have = bud.avail;
    g->mem_need = need;
    g->mem_avail = have;
    if (g->mem_budget && need > have) {
        snprintf(err, errlen, "%s: the model needs %.1f MiB of device memory, the device can give "
                 "%.1f MiB (VK_EXT_memory_budget: a budget of %.1f MiB of the %.1f MiB heap, "
                 "%.1f MiB in use)", path, need / 1048576.0, have / 1048576.0,
                 bud.budget / 1048576.0, bud.heap / 1048576.0, bud.usage / 1048576.0);
        nb_gpu_model_free(g);
        return -1;
    }
    if (have && need > have) {
        snprintf(err, errlen, "%s: the model needs %.1f MiB of device memory, the device has "
                 "%.1f MiB", path, need / 1048576.0, have / 1048576.0);
        nb_gpu_model_free(g);
        return -1;
    }
    /* matrix pipelines only for the model's weight types (and MoE ones only with experts): each
     * pipeline costs the driver memory and build time */
    uint32_t types = nb_selftest_types(&g->m, g->ple_host);
    /* the pipelines, with fallbacks, checked against the CPU (selftest.h) */
    if (nb_selftest_build(g, types, err, errlen) != 0) {
        nb_gpu_model_free(g);
        return -1;
    }
    g->layer = calloc(c->n_layer, sizeof *g->layer);
    if (!g->layer) {
        snprintf(err, errlen, "out of host memory");
        nb_gpu_model_free(g);
        return -1;
    }

    /* The header (metadata, vocabulary) is parsed: its pages can go (a later tokenizer re-reads
     * them from the page cache). */
    if (file_map(g)) plat_map_release(file_map(g), 0, (size_t)g->m.gguf->data_offset);
    struct loader L = {g, err, errlen, 0};
    const struct nb_weights *w = &g->m.w;
    vkx_cmd_catch(true); /* a failed upload (out of memory, a lost device) is reported */
    mat(&L, &g->token_embd, w->token_embd);
    g->output_is_embd = w->output == w->token_embd;
    if (!g->output_is_embd) mat(&L, &g->output, w->output);
    vec(&L, &g->output_norm, w->output_norm);
    if (!L.failed && c->n_rot >= 2) {
        uint32_t n = c->n_rot / 2;
        if (vkx_buffer_create(&g->vk, &g->rope_factors, n * sizeof(float), VKX_MEM_DEVICE, err,
                              errlen) != 0)
            L.failed = 1;
        else if (vkx_upload(&g->vk, &g->rope_factors, 0, c->rope_factors, n * sizeof(float))) {
            snprintf(err, errlen, "rope factors: uploading failed");
            L.failed = 1;
        }
    }
    if (!g->ple_host) mat(&L, &g->per_layer_token_embd, w->per_layer_token_embd);
    mat(&L, &g->per_layer_model_proj, w->per_layer_model_proj);
    vec(&L, &g->per_layer_proj_norm, w->per_layer_proj_norm);
    for (uint32_t l = 0; l < c->n_layer && !L.failed; l++)
        upload_layer(&L, l);
    VkResult r = vkx_cmd_catch(false);
    if (r != VK_SUCCESS && !L.failed) snprintf(err, errlen, "uploading failed");
    if (r != VK_SUCCESS && !strstr(err, vkx_result_name(r))) {
        size_t n = strlen(err);
        snprintf(err + n, errlen - n, ": %s", vkx_result_name(r));
    }
    L.failed |= r != VK_SUCCESS;
    if (L.failed) {
        char tmp[512];
        snprintf(tmp, sizeof tmp, "%s: loading weights: %s", path, err);
        snprintf(err, errlen, "%s", tmp);
        nb_gpu_model_free(g);
        return -1;
    }
    return 0;
}

static void free_vec(struct vkx_ctx *vk, struct vkx_buffer *b)
{
    if (b->buf) vkx_buffer_destroy(vk, b);
}

static void free_mat(struct vkx_ctx *vk, struct nb_gtensor *t)
{
    if (t->data.n) nb_gtensor_destroy(vk, t);
}

void nb_gpu_model_free(struct nb_gpu_model *g)
{
    struct vkx_ctx *vk = &g->vk;
    if (vk->dev) {
        vkDeviceWaitIdle(vk->dev);
        if (g->layer)
            for (uint32_t l = 0; l < g->m.cfg.n_layer; l++) {
                struct nb_gpu_layer *d = &g->layer[l];
                struct vkx_buffer *vs[] = {&d->attn_norm, &d->attn_q_norm, &d->attn_k_norm,
                                           &d->post_attention_norm, &d->ffn_norm,
                                           &d->post_ffw_norm, &d->layer_output_scale,
                                           &d->post_norm, &d->ffn_gate_inp_scale,
                                           &d->pre_ffw_norm_2, &d->post_ffw_norm_1,
                                           &d->post_ffw_norm_2, &d->ffn_down_exps_scale};
                struct nb_gtensor *ms[] = {&d->attn_q, &d->attn_k, &d->attn_v, &d->attn_output,
                                           &d->ffn_gate, &d->ffn_up, &d->ffn_down, &d->inp_gate,
                                           &d->proj, &d->ffn_gate_inp, &d->ffn_gate_up_exps,
                                           &d->ffn_gate_exps, &d->ffn_up_exps,
                                           &d->ffn_down_exps, &d->attn_qkv,
                                           &d->ffn_gate_up};
                for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++)
                    free_vec(vk, vs[i]);
                for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++)
                    free_mat(vk, ms[i]);
            }
        free_mat(vk, &g->token_embd);
        free_mat(vk, &g->output);
        free_vec(vk, &g->output_norm);
        free_vec(vk, &g->rope_factors);
        free_mat(vk, &g->per_layer_token_embd);
        free_mat(vk, &g->per_layer_model_proj);
        free_vec(vk, &g->per_layer_proj_norm);
        if (g->mm.types) nb_op_matmul_destroy(&g->mm, vk);
        if (g->at.store.pipe) nb_op_attn_destroy(&g->at, vk);
        if (g->mi.norm.pipe) nb_op_misc_destroy(&g->mi, vk);
        vkx_destroy(vk);
    }
    free(g->layer);
    nb_model_free(&g->m);
    memset(g, 0, sizeof *g);
}

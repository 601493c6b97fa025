/* benchutil: bandwidth limit (cached per device), weight bytes per token, per-step bytes/FLOPs. */
#include "benchutil.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "platform.h"

/* ---- bandwidth, cached in NIBBLE_CACHE_DIR (or the platform cache) per device --------------- */

static int cache_path(const struct vkx_ctx *vk, uint32_t mib, char *path, size_t n)
{
    char dir[768];
    const char *env = getenv("NIBBLE_CACHE_DIR");
    if (env && *env) {
        snprintf(dir, sizeof dir, "%s", env);
        if (plat_mkdir_p(dir) != 0) return -1;
    } else if (plat_cache_dir(dir, sizeof dir) != 0) {
        return -1;
    }
    char id[2 * VK_UUID_SIZE + 1];
    for (unsigned i = 0; i < VK_UUID_SIZE; i++)
        snprintf(id + 2 * i, 3, "%02x", vk->caps.pipeline_uuid[i]);
    snprintf(path, n, "%s/bandwidth-%s-%08x-%umib.txt", dir, id, vk->caps.driver_version, mib);
    return 0;
}

int bu_bandwidth(struct vkx_ctx *vk, uint32_t mib, bool fresh, struct vkx_bandwidth *bw,
                 char *err, size_t errlen)
{
    char path[1024];
    bool have_path = cache_path(vk, mib, path, sizeof path) == 0;
    memset(bw, 0, sizeof *bw);
    if (have_path && !fresh) { /* a file that is missing, odd or not a regular file: probe */
        char *data = NULL, e[256];
        size_t n = 0;
        if (plat_read_file(path, 4096, &data, &n, e, sizeof e) == 0) {
            int timed = 0, used = 0;
            /* files of older probes lack the shape names: probe again */
            int ok = sscanf(data, "%lf %lf %d %15s %15s %lf %n", &bw->copy_gbs, &bw->read_gbs,
                            &timed, bw->copy_shape, bw->read_shape, &bw->transfer_gbs,
                            &used) == 6 && (size_t)used == n;
            free(data);
            if (ok && isfinite(bw->copy_gbs) && bw->copy_gbs > 0) {
                bw->gpu_timed = timed;
                bw->bytes = (uint64_t)mib << 20;
                return 0;
            }
            memset(bw, 0, sizeof *bw);
        }
    }
    if (vkx_probe_bandwidth(vk, (uint64_t)mib << 20, 0, bw, err, errlen) != 0) return -1;
    if (have_path) { /* whole or not at all; a cache that cannot be written is only slower */
        char line[256], e[256];
        int n = snprintf(line, sizeof line, "%.4f %.4f %d %s %s %.4f\n", bw->copy_gbs,
                         bw->read_gbs, bw->gpu_timed ? 1 : 0, bw->copy_shape, bw->read_shape,
                         bw->transfer_gbs);
        struct plat_out o;
        if (n > 0 && (size_t)n < sizeof line && plat_out_open(&o, path, e, sizeof e) == 0)
            (void)plat_out_close(&o, plat_out_write(&o, line, (size_t)n) == 0, e, sizeof e);
    }
    return 0;
}

/* ---- sizes ------------------------------------------------------------------------------------ */

uint64_t bu_gt_bytes(const struct nb_gtensor *t) { return t->row_bytes * t->rows; }

uint64_t bu_params(const struct nb_gpu_model *g)
{
    uint64_t n = 0;
    const struct gguf *f = g->m.gguf;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        uint64_t e = 1;
        for (uint32_t d = 0; d < f->tensors[i].n_dims; d++) e *= f->tensors[i].ne[d];
        n += e;
    }
    return n;
}

/* Bytes of the rows of n tokens in a table {K, V} of row_bytes per row (at most the table). */
static uint64_t rows_read(uint64_t row_bytes, uint64_t V, uint32_t n)
{
    return row_bytes * (n < V ? n : V);
}

uint64_t bu_batch_bytes(const struct nb_gpu_model *g, uint32_t n)
{
    const struct nb_config *cf = &g->m.cfg;
    uint64_t b = g->weight_bytes;
    /* embedding tables: n rows instead of the table (unless it is also the output) */
    const struct nb_gtensor *te = &g->token_embd, *pe = &g->per_layer_token_embd;
    if (!g->output_is_embd) b -= bu_gt_bytes(te) - rows_read(te->row_bytes, te->rows, n);
    if (pe->rows) b -= bu_gt_bytes(pe) - rows_read(pe->row_bytes, pe->rows, n);
    /* the per-layer embeddings kept in the mapped file: n rows read by the host */
    const struct gguf_tensor *ph = g->ple_host;
    if (ph) b += rows_read(ggml_row_size(ph->type, ph->ne[0]), ph->ne[1], n);
    /* experts: the expected share of the E touched by n tokens routed to k each */
    if (cf->n_expert) {
        double touched = 1.0 - pow(1.0 - (double)cf->n_expert_used / cf->n_expert, n);
        for (uint32_t l = 0; l < cf->n_layer; l++) {
            const struct nb_gpu_layer *w = &g->layer[l];
            uint64_t e = bu_gt_bytes(&w->ffn_gate_up_exps) + bu_gt_bytes(&w->ffn_gate_exps) +
                         bu_gt_bytes(&w->ffn_up_exps) + bu_gt_bytes(&w->ffn_down_exps);
            b -= e - (uint64_t)llround((double)e * touched);
        }
    }
    return b;
}

const char *bu_size(uint64_t bytes, char *buf, size_t n)
{
    if (bytes >= (1ull << 30)) snprintf(buf, n, "%.2f GiB", bytes / 1073741824.0);
    else snprintf(buf, n, "%.1f MiB", bytes / 1048576.0);
    return buf;
}

/* ---- per-step bytes and FLOPs ----------------------------------------------------------------- */

/* The step names nb_fwd_record gives (engine/forward.c). Other labels are pipeline names of a
 * step's further dispatches (weight pieces, second passes). */
static const char *const step_names[] = {
    "embed", "ple_embed", "ple_proj_in", "ple_scale", "ple_norm", "ple_add", "ple_mix",
    "attn_norm", "attn_qkv", "attn_q", "attn_k", "attn_v", "q_norm_rope", "k_norm_rope", "v_norm",
    "kv_store", "attention", "attn_out", "post_attn_norm+ffn_norm", "ffn_gate_up", "ffn_gate", "ffn_up", "geglu", "ffn_down", "post_ffw_norm_1", "router_norm",
    "router", "router_topk", "pre_ffw_norm_2", "moe_gate_up", "moe_gate", "moe_up", "moe_geglu",
    "moe_down", "moe_combine", "post_ffw_norm_2", "moe_add", "post_ffw_norm",
    "post_ffw_norm+attn_norm", "ple_gate", "ple_geglu", "ple_proj", "post_norm",
    "post_norm+attn_norm", "output_norm", "output", "softcap"};

static const char *known(const char *label)
{
    for (size_t i = 0; i < sizeof step_names / sizeof step_names[0]; i++)
        if (label && !strcmp(label, step_names[i])) return step_names[i];
    return NULL;
}

/* The weight a step multiplies by (NULL: none) and whether it is an expert weight. */
static const struct nb_gtensor *step_weight(const struct nb_gpu_model *g, const char *s, int l,
                                            bool *experts)
{
    *experts = false;
    if (!strcmp(s, "output")) return g->output_is_embd ? &g->token_embd : &g->output;
    if (!strcmp(s, "ple_proj_in")) return &g->per_layer_model_proj;
    if (l < 0 || (uint32_t)l >= g->m.cfg.n_layer) return NULL;
    const struct nb_gpu_layer *w = &g->layer[l];
    static const struct {
        const char *name;
        size_t off;
        bool exp;
    } map[] = {
        {"attn_qkv", offsetof(struct nb_gpu_layer, attn_qkv), false},
        {"attn_q", offsetof(struct nb_gpu_layer, attn_q), false},
        {"attn_k", offsetof(struct nb_gpu_layer, attn_k), false},
        {"attn_v", offsetof(struct nb_gpu_layer, attn_v), false},
        {"attn_out", offsetof(struct nb_gpu_layer, attn_output), false},
        {"ffn_gate_up", offsetof(struct nb_gpu_layer, ffn_gate_up), false},
        {"ffn_gate", offsetof(struct nb_gpu_layer, ffn_gate), false},
        {"ffn_up", offsetof(struct nb_gpu_layer, ffn_up), false},
        {"ffn_down", offsetof(struct nb_gpu_layer, ffn_down), false},
        {"router", offsetof(struct nb_gpu_layer, ffn_gate_inp), false},
        {"moe_gate_up", offsetof(struct nb_gpu_layer, ffn_gate_up_exps), true},
        {"moe_gate", offsetof(struct nb_gpu_layer, ffn_gate_exps), true},
        {"moe_up", offsetof(struct nb_gpu_layer, ffn_up_exps), true},
        {"moe_down", offsetof(struct nb_gpu_layer, ffn_down_exps), true},
        {"ple_gate", offsetof(struct nb_gpu_layer, inp_gate), false},
        {"ple_proj", offsetof(struct nb_gpu_layer, proj), false},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(s, map[i].name)) {
            *experts = map[i].exp;
            return (const struct nb_gtensor *)((const char *)w + map[i].off);
        }
    return NULL;
}

static const char *type_name(enum ggml_type t)
{
    const char *n = ggml_type_name(t);
    return n ? n : "?";
}

uint32_t bu_steps(const struct nb_gpu_model *g, const struct vkx_cmd *c, uint32_t n_tokens,
                  struct bu_step *steps, uint32_t max)
{
    const struct nb_config *cf = &g->m.cfg;
    double n = n_tokens, H = cf->n_embd;
    int layer = -1;
    const char *cur = "?";
    uint32_t cnt = c->n_dispatches < max ? c->n_dispatches : max;
    for (uint32_t i = 0; i < cnt; i++) {
        struct bu_step *s = &steps[i];
        memset(s, 0, sizeof *s);
        const char *k = known(c->labels[i]);
        /* a layer starts with its q (k, v) product: attn_norm comes with the step before it */
        if (k && (!strcmp(k, "attn_qkv") || !strcmp(k, "attn_q"))) layer++;
        if (k && !strcmp(k, "output_norm")) layer = -1;
        s->first = k != NULL;
        if (k) cur = k;
        s->label = cur;
        s->layer = layer;
        if (!s->first) continue; /* bytes and FLOPs go to the step's first dispatch */
        bool exp;
        const struct nb_gtensor *w = step_weight(g, cur, layer, &exp);
        if (w && w->rows) {
            double K = (double)w->ne[0], M = (double)w->ne[1], E = (double)w->ne[2];
            double wb = (double)bu_gt_bytes(w), routes = 1;
            if (exp && E > 1) {
                double kk = cf->n_expert_used;
                wb *= 1.0 - pow(1.0 - kk / E, n); /* expected share of experts touched */
                routes = kk;
            }
            double rows = !strcmp(cur, "output") ? 1 : n; /* decode/bench: last row's logits */
            s->bytes = wb + rows * routes * (K + M) * 4;
            s->flops = 2.0 * rows * routes * K * M;
            snprintf(s->shape, sizeof s->shape, "%.0fx%.0f%s%s %s", K, M, exp ? "x" : "",
                     exp ? "E" : "", type_name(w->type));
        } else if (!strcmp(cur, "embed")) {
            s->bytes = n * ((double)g->token_embd.row_bytes + H * 4);
        } else if (!strcmp(cur, "ple_embed")) {
            s->bytes = n * ((double)g->per_layer_token_embd.row_bytes +
                            (double)g->per_layer_token_embd.ne[0] * 4);
        } else if (strstr(cur, "norm") || !strcmp(cur, "moe_add")) {
            s->bytes = 2 * n * H * 4; /* read and write one row per token (about) */
        }
    }
    return cnt;
}

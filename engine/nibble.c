/* nibble.c: the public API (nibble.h) over the GPU forward pass, the tokenizer and the device
 * sampler. */
#include "nibble.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forward.h"
#include "tokenizer.h"

struct nibble_model {
    struct nb_gpu_model g;
    struct nb_tok *tok;
    char device_line[1024];
};

struct nibble_context {
    struct nibble_model *m;
    struct nb_fwd f;
    uint32_t n_past;
    uint32_t last_rows;    /* rows of logits the last eval kept in f.logits */
    bool last_all;         /* the last eval kept every row */
    uint32_t sample_count; /* draws so far (feeds the device RNG) */
    struct vkx_buffer rng; /* u32 [1] host-visible: the draw counter */
};

struct nibble_model_params nibble_model_default_params(void)
{
    struct nibble_model_params p = {.device_index = -1, .disable = NULL, .validation = false};
    return p;
}

struct nibble_context_params nibble_context_default_params(void)
{
    struct nibble_context_params p = {.n_ctx = 0, .n_batch = 0, .kv_type = NIBBLE_KV_AUTO};
    return p;
}

struct nibble_model *nibble_model_load(const char *path, const struct nibble_model_params *p,
                                       char *err, size_t errlen)
{
    struct nibble_model_params d = nibble_model_default_params();
    if (!p) p = &d;
    struct nibble_model *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errlen, "out of host memory");
        return NULL;
    }
    struct vkx_opts o = {.device_index = p->device_index, .validation = p->validation,
                         .disable = p->disable};
    if (nb_gpu_model_load(&m->g, path, &o, err, errlen) != 0) {
        free(m);
        return NULL;
    }
    char terr[256];
    m->tok = nb_tok_from_gguf(m->g.m.gguf, terr, sizeof terr);
    if (!m->tok) {
        snprintf(err, errlen, "%s: tokenizer: %s", path, terr);
        nb_gpu_model_free(&m->g);
        free(m);
        return NULL;
    }
    vkx_device_line(&m->g.vk, m->device_line, sizeof m->device_line);
    return m;
}

void nibble_model_free(struct nibble_model *m)
{
    if (!m) return;
    nb_tok_destroy(m->tok);
    nb_gpu_model_free(&m->g);
    free(m);
}

int nibble_n_vocab(const struct nibble_model *m) { return (int)m->g.m.cfg.n_vocab; }
int nibble_n_ctx_train(const struct nibble_model *m) { return (int)m->g.m.cfg.n_ctx_train; }
const char *nibble_device_line(const struct nibble_model *m) { return m->device_line; }

uint64_t nibble_device_bytes(const struct nibble_model *m, uint64_t *peak)
{
    if (peak) *peak = m->g.vk.peak_allocated_bytes;
    return m->g.vk.allocated_bytes;
}

int nibble_tokenize(const struct nibble_model *m, const char *text, int32_t *ids, int max,
                    bool add_bos)
{
    unsigned flags = NB_TOK_PARSE_SPECIAL | (add_bos ? NB_TOK_ADD_SPECIAL : 0);
    int64_t n = nb_tok_encode(m->tok, text, strlen(text), flags, ids, max > 0 ? (size_t)max : 0);
    return n < 0 || n > 0x7fffffff ? -1 : (int)n;
}

int nibble_token_to_piece(const struct nibble_model *m, int32_t id, char *buf, int n)
{
    if (n <= 0) return -1;
    return nb_tok_piece(m->tok, id, buf, (size_t)n, 0);
}

bool nibble_token_is_eog(const struct nibble_model *m, int32_t id)
{
    return nb_tok_is_eog(m->tok, id);
}

int32_t nibble_token_bos(const struct nibble_model *m) { return nb_tok_bos(m->tok); }

struct nibble_context *nibble_context_create(struct nibble_model *m,
                                             const struct nibble_context_params *p, char *err,
                                             size_t errlen)
{
    struct nibble_context_params d = nibble_context_default_params();
    if (!p) p = &d;
    uint32_t n_ctx = p->n_ctx, n_batch = p->n_batch ? p->n_batch : 512;
    uint32_t train = m->g.m.cfg.n_ctx_train;
    if (n_ctx == 0) n_ctx = train && train < 4096 ? train : 4096;
    struct nibble_context *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of host memory");
        return NULL;
    }
    c->m = m;
    int kv = p->kv_type == NIBBLE_KV_F32 ? 1 : p->kv_type == NIBBLE_KV_F16 ? 0 : -1;
    if (nb_fwd_create_kv(&c->f, &m->g, n_ctx, n_batch, false, false, kv, err, errlen) != 0) {
        free(c);
        return NULL;
    }
    if (vkx_buffer_create(&m->g.vk, &c->rng, 4, VKX_MEM_HOST, err, errlen) != 0) {
        nb_fwd_destroy(&c->f);
        free(c);
        return NULL;
    }
    return c;
}

void nibble_context_destroy(struct nibble_context *c)
{
    if (!c) return;
    vkx_buffer_destroy(&c->m->g.vk, &c->rng);
    nb_fwd_destroy(&c->f);
    free(c);
}

uint32_t nibble_n_ctx(const struct nibble_context *c) { return c->f.n_ctx; }
uint32_t nibble_n_past(const struct nibble_context *c) { return c->n_past; }

int nibble_eval(struct nibble_context *c, const int32_t *ids, int n, bool all_logits, char *err,
                size_t errlen)
{
    uint32_t V = c->m->g.m.cfg.n_vocab;
    if (n <= 0) {
        snprintf(err, errlen, "nothing to evaluate (%d tokens)", n);
        return -1;
    }
    if ((uint64_t)c->n_past + (uint64_t)n > c->f.n_ctx) {
        snprintf(err, errlen, "%d tokens after %u exceed the context of %u tokens", n, c->n_past,
                 c->f.n_ctx);
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || (uint32_t)ids[i] >= V) {
            snprintf(err, errlen, "token id %d at index %d is outside the vocabulary of %u",
                     ids[i], i, V);
            return -1;
        }
    /* chunks of n_batch (of what the logits buffer holds when every row is kept) */
    uint32_t chunk = c->f.n_batch;
    if (all_logits && chunk > c->f.n_logits) chunk = c->f.n_logits;
    if (all_logits && (uint32_t)n > chunk) {
        snprintf(err, errlen, "all logits of %d tokens do not fit (at most %u per eval)", n, chunk);
        return -1;
    }
    for (uint32_t i = 0; i < (uint32_t)n; i += chunk) {
        uint32_t t = (uint32_t)n - i < chunk ? (uint32_t)n - i : chunk;
        nb_fwd_run(&c->f, ids + i, t, c->n_past, all_logits);
        c->n_past += t;
        c->last_rows = all_logits ? t : 1;
    }
    c->last_all = all_logits;
    return 0;
}

const float *nibble_logits(struct nibble_context *c, int i)
{
    const float *base = c->f.logits.map;
    uint32_t V = c->m->g.m.cfg.n_vocab;
    if (c->last_rows == 0) return NULL; /* nothing evaluated since create/reset */
    if (i < 0) return base + (size_t)(c->last_rows - 1) * V;
    if ((uint32_t)i >= c->last_rows) return NULL;
    return base + (size_t)i * V;
}

int32_t nibble_sample(struct nibble_context *c, const struct nibble_sampler *s)
{
    struct nb_gpu_model *g = &c->m->g;
    struct vkx_ctx *vk = &g->vk;
    uint32_t V = g->m.cfg.n_vocab;
    if (c->last_rows == 0) return -1; /* no logits to sample from */
    VkDeviceSize row = (VkDeviceSize)V * sizeof(float);
    struct vkx_view lg = {&c->f.logits, (VkDeviceSize)(c->last_rows - 1) * row, row};
    *(uint32_t *)c->rng.map = c->sample_count++;
    vkx_cmd_begin(vk, &c->f.smp);
    if (s->temp <= 0 || s->top_k == 1)
        nb_op_argmax(&g->mi, vk, &c->f.smp, lg, V, vkx_whole(&c->f.sampled), 0);
    else
        nb_op_sample(&g->mi, vk, &c->f.smp, lg, V,
                     s->top_k > 0 && s->top_k < NB_SAMPLE_MAX_K ? (uint32_t)s->top_k
                                                                : NB_SAMPLE_MAX_K,
                     s->temp, s->top_p, (uint32_t)s->seed, vkx_whole(&c->rng),
                     vkx_whole(&c->f.sampled), 0);
    vkx_cmd_end(vk, &c->f.smp);
    vkx_cmd_submit_wait(vk, &c->f.smp);
    return (int32_t) * (const uint32_t *)c->f.sampled.map;
}

void nibble_reset(struct nibble_context *c)
{
    c->n_past = 0;
    c->last_rows = 0;
}

/* nibble.c: the public API (nibble.h) over the GPU forward pass, the tokenizer and the device
 * sampler (with a full-vocabulary sampler on the host for top_k 0 or above 64). */
#include "nibble.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "forward.h"
#include "mtp.h"
#include "platform.h"
#include "tokenizer.h"

/* host/vkx_cmd.c: failures of submissions and waits kept instead of aborting between
 * vkx_cmd_catch(true) and vkx_cmd_catch(false), which returns the first (declared here rather
 * than in vkx.h; see vkx_cmd.c). */
VkResult vkx_cmd_catch(bool on);

struct nibble_model {
    struct nb_gpu_model g;
    struct nb_tok *tok;
    char device_line[1024];
};

/* a candidate of the host sampler */
struct cand {
    float v;  /* logit (NaN as -inf) */
    uint32_t i;
    double w; /* unnormalized probability */
};

struct nibble_context {
    struct nibble_model *m;
    struct nb_fwd f;
    uint32_t n_past;
    uint32_t last_n;       /* tokens of the last eval */
    uint32_t last_rows;    /* rows of logits the last eval kept in f.logits (0: none) */
    uint32_t last_pos0;    /* position of the token whose logits are row 0 */
    bool last_all;         /* the last eval kept every row */
    int32_t *tokens;       /* [n_ctx] the ids at positions 0 .. n_past-1 */
    int64_t *ring;         /* [ring_slots] the position last written to each slot of the
                              sliding-window rings (-1: none); NULL when no ring wraps */
    uint32_t ring_slots;   /* slots of every sliding layer's ring (window + n_batch) */
    uint32_t sample_count; /* draws so far (feeds the device RNG) */
    struct vkx_buffer rng; /* u32 [1] host-visible: the draw counter */
    VkResult fault;        /* a Vulkan failure made the context unusable (VK_SUCCESS: none) */
    struct cand *cand;     /* [n_vocab] the host sampler's scratch, made on first use */
};

void nb_seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int nb_api_need(const void *from, const char *what, char *err, size_t errlen)
{
    if (from) return 0;
    nb_seterr(err, errlen, "no %s", what);
    return -1;
}

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

struct nibble_sampler nibble_sampler_default_params(void)
{
    struct nibble_sampler s = {.temp = 0.8f, .top_k = 40, .top_p = 0.95f, .seed = 42};
    return s;
}

int nibble_sampler_check(const struct nibble_sampler *s, char *err, size_t errlen)
{
    if (!s) {
        nb_seterr(err, errlen, "no sampler");
        return -1;
    }
    if (!(s->temp >= 0.0f && s->temp <= 1e6f)) {
        nb_seterr(err, errlen, "temperature %g is not in [0, 1e6]", (double)s->temp);
        return -1;
    }
    if (!(s->top_p >= 0.0f && s->top_p <= 1.0f)) {
        nb_seterr(err, errlen, "top_p %g is not in [0, 1]", (double)s->top_p);
        return -1;
    }
    if (s->top_k < 0) {
        nb_seterr(err, errlen, "top_k %d is negative (0 turns it off)", s->top_k);
        return -1;
    }
    return 0;
}

/* NIBBLE_DEVICE_MEMORY_MB, when set, must be a plain number above 0 (MiB). */
static int check_memory_env(char *err, size_t errlen)
{
    const char *v = getenv("NIBBLE_DEVICE_MEMORY_MB");
    if (!v) return 0;
    double mb;
    if (plat_parse_f64(v, 0, 1e12, &mb) != 0 || !(mb > 0)) {
        nb_seterr(err, errlen, "NIBBLE_DEVICE_MEMORY_MB=%s: not a number of MiB above 0 (at most "
                  "1e12)", v);
        return -1;
    }
    return 0;
}

struct nibble_model *nibble_model_load(const char *path, const struct nibble_model_params *p,
                                       char *err, size_t errlen)
{
    struct nibble_model_params d = nibble_model_default_params();
    if (!p) p = &d;
    if (nb_api_need(path, "model path", err, errlen) != 0) return NULL;
    if (check_memory_env(err, errlen) != 0) return NULL;
    struct nibble_model *m = calloc(1, sizeof *m);
    if (!m) {
        nb_seterr(err, errlen, "out of host memory");
        return NULL;
    }
    char e[512] = ""; /* the layers below always get a buffer */
    struct vkx_opts o = {.device_index = p->device_index, .validation = p->validation,
                         .disable = p->disable};
    if (nb_gpu_model_load(&m->g, path, &o, e, sizeof e) != 0) {
        nb_seterr(err, errlen, "%s", e);
        free(m);
        return NULL;
    }
    m->tok = nb_tok_from_gguf(m->g.m.gguf, e, sizeof e);
    if (!m->tok) {
        nb_seterr(err, errlen, "%s: tokenizer: %s", path, e);
        nb_gpu_model_free(&m->g);
        free(m);
        return NULL;
    }
    vkx_device_line(&m->g.vk, m->device_line, sizeof m->device_line);
    size_t dl = strlen(m->device_line); /* the memory check before uploading (forward.h) */
    snprintf(m->device_line + dl, sizeof m->device_line - dl,
             " | weights: %.1f MiB of %.1f MiB %s", m->g.mem_need / 1048576.0,
             m->g.mem_avail / 1048576.0, m->g.mem_budget ? "free (memory budget)" : "(heap)");
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
    if (!text || (max > 0 && !ids)) return -1;
    unsigned flags = NB_TOK_PARSE_SPECIAL | (add_bos ? NB_TOK_ADD_SPECIAL : 0);
    int64_t n = nb_tok_encode(m->tok, text, strlen(text), flags, ids, max > 0 ? (size_t)max : 0);
    return n < 0 || n > 0x7fffffff ? -1 : (int)n;
}

int nibble_token_to_piece(const struct nibble_model *m, int32_t id, char *buf, int n)
{
    if (n < 0 || (n > 0 && !buf)) return -1;
    int len = nb_tok_piece(m->tok, id, n > 0 ? buf : NULL, n > 0 ? (size_t)n - 1 : 0, 0);
    if (n > 0) buf[len < 0 ? 0 : len < n ? len : n - 1] = 0;
    return len;
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
    if (nb_api_need(m, "model", err, errlen) != 0) return NULL;
    uint32_t n_ctx = p->n_ctx, n_batch = p->n_batch ? p->n_batch : 512;
    uint32_t train = m->g.m.cfg.n_ctx_train;
    if (n_ctx == 0) n_ctx = train && train < 4096 ? train : 4096;
    if (train && n_ctx > train) {
        nb_seterr(err, errlen, "a context of %u tokens is longer than the model's trained context "
                  "of %u: use at most %u", n_ctx, train, train);
        return NULL;
    }
    struct nibble_context *c = calloc(1, sizeof *c);
    if (!c) {
        nb_seterr(err, errlen, "out of host memory");
        return NULL;
    }
    c->m = m;
    char e[512] = "";
    int kv = p->kv_type == NIBBLE_KV_F32 ? 1 : p->kv_type == NIBBLE_KV_F16 ? 0 : -1;
    vkx_cmd_catch(true); /* object creation and the submission clearing the KV cache */
    int rc = nb_fwd_create_kv(&c->f, &m->g, n_ctx, n_batch, false, false, kv, e, sizeof e);
    VkResult r = vkx_cmd_catch(false);
    if (rc == 0 && r != VK_SUCCESS) {
        snprintf(e, sizeof e, "creating the context failed: %s", vkx_result_name(r));
        nb_fwd_destroy(&c->f);
        rc = -1;
    }
    if (rc != 0) {
        nb_seterr(err, errlen, "%s", e);
        free(c);
        return NULL;
    }
    if (vkx_buffer_create(&m->g.vk, &c->rng, 4, VKX_MEM_HOST, e, sizeof e) != 0) {
        nb_seterr(err, errlen, "%s", e);
        nb_fwd_destroy(&c->f);
        free(c);
        return NULL;
    }
    /* the rings of sliding layers (all of one size): which position each slot holds */
    for (uint32_t l = 0; l < c->f.kv.n_layer; l++) {
        const struct nb_kv_layer *L = &c->f.kv.layers[l];
        if (L->d.is_swa && L->d.src == l && L->n_slots < n_ctx) c->ring_slots = L->n_slots;
    }
    c->tokens = malloc((size_t)n_ctx * sizeof *c->tokens);
    c->ring = c->ring_slots ? malloc((size_t)c->ring_slots * sizeof *c->ring) : NULL;
    if (!c->tokens || (c->ring_slots && !c->ring)) {
        nb_seterr(err, errlen, "out of host memory");
        nibble_context_destroy(c);
        return NULL;
    }
    for (uint32_t i = 0; i < c->ring_slots; i++)
        c->ring[i] = -1;
    return c;
}

void nibble_context_destroy(struct nibble_context *c)
{
    if (!c) return;
    vkx_buffer_destroy(&c->m->g.vk, &c->rng);
    nb_fwd_destroy(&c->f);
    free(c->cand);
    free(c->tokens);
    free(c->ring);
    free(c);
}

uint32_t nibble_n_ctx(const struct nibble_context *c) { return c->f.n_ctx; }
uint32_t nibble_n_past(const struct nibble_context *c) { return c->n_past; }
uint32_t nibble_n_batch(const struct nibble_context *c) { return c->f.n_batch; }
struct nibble_model *nibble_context_model(const struct nibble_context *c) { return c->m; }

/* Marks the context unusable after a caught Vulkan failure and says so. */
static int failed(struct nibble_context *c, VkResult r, char *err, size_t errlen)
{
    c->fault = r;
    c->last_rows = 0;
    nb_seterr(err, errlen, "the device failed (%s); the context is unusable: destroy it%s",
              vkx_result_name(r), r == VK_ERROR_DEVICE_LOST ? " and its model" : "");
    return -1;
}

int nibble_eval(struct nibble_context *c, const int32_t *ids, int n, bool all_logits, char *err,
                size_t errlen)
{
    if (c->fault != VK_SUCCESS) {
        nb_seterr(err, errlen, "the context is unusable after a device failure (%s)",
                  vkx_result_name(c->fault));
        return -1;
    }
    uint32_t V = c->m->g.m.cfg.n_vocab;
    if (n <= 0 || !ids) {
        nb_seterr(err, errlen, "nothing to evaluate (%d tokens)", n);
        return -1;
    }
    if ((uint64_t)c->n_past + (uint64_t)n > c->f.n_ctx) {
        nb_seterr(err, errlen, "%d tokens after %u exceed the context of %u tokens", n, c->n_past,
                  c->f.n_ctx);
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || (uint32_t)ids[i] >= V) {
            nb_seterr(err, errlen, "token id %d at index %d is outside the vocabulary of %u",
                      ids[i], i, V);
            return -1;
        }
    /* chunks of n_batch (of what the logits buffer holds when every row is kept) */
    uint32_t chunk = c->f.n_batch;
    if (all_logits && chunk > c->f.n_logits) chunk = c->f.n_logits;
    if (all_logits && (uint32_t)n > chunk) {
        nb_seterr(err, errlen, "all logits of %d tokens do not fit (at most %u per eval)", n,
                  chunk);
        return -1;
    }
    for (uint32_t i = 0; i < (uint32_t)n; i += chunk) {
        uint32_t t = (uint32_t)n - i < chunk ? (uint32_t)n - i : chunk;
        vkx_cmd_catch(true);
        nb_fwd_run(&c->f, ids + i, t, c->n_past, all_logits);
        VkResult r = vkx_cmd_catch(false);
        if (r != VK_SUCCESS) return failed(c, r, err, errlen);
        for (uint32_t j = 0; j < t; j++) {
            uint32_t p = c->n_past + j;
            c->tokens[p] = ids[i + j];
            if (c->ring) c->ring[p % c->ring_slots] = p;
        }
        c->n_past += t;
        c->last_rows = all_logits ? t : 1;
        c->last_pos0 = all_logits ? c->n_past - t : c->n_past - 1;
    }
    c->last_n = (uint32_t)n;
    c->last_all = all_logits;
    return 0;
}

int nibble_truncate(struct nibble_context *c, uint32_t n_keep, char *err, size_t errlen)
{
    if (c->fault != VK_SUCCESS) {
        nb_seterr(err, errlen, "the context is unusable after a device failure (%s)",
                  vkx_result_name(c->fault));
        return -1;
    }
    if (n_keep > c->n_past) {
        nb_seterr(err, errlen, "cannot keep %u tokens: the cache holds %u", n_keep, c->n_past);
        return -1;
    }
    if (n_keep == c->n_past) return 0;
    /* the next query (at n_keep) sees keys n_keep - window + 1 .. n_keep - 1: every one must
     * still be in its ring slot, not overwritten by a later position */
    uint32_t W = c->f.kv.window;
    for (uint32_t j = n_keep >= W ? n_keep - W + 1 : 0; c->ring && j < n_keep; j++)
        if (c->ring[j % c->ring_slots] != (int64_t)j) {
            nb_seterr(err, errlen, "cannot roll back to %u tokens: the sliding-window cache no "
                      "longer holds position %u (overwritten by position %lld); evaluate again "
                      "from an earlier point", n_keep, j, (long long)c->ring[j % c->ring_slots]);
            return -1;
        }
    c->n_past = n_keep;
    /* rows of logits past the new end are gone; the row of position n_keep - 1 stays */
    if (c->last_rows && c->last_all && n_keep > c->last_pos0 &&
        n_keep - c->last_pos0 <= c->last_rows)
        c->last_rows = n_keep - c->last_pos0;
    else
        c->last_rows = 0;
    return 0;
}

const int32_t *nibble_tokens(const struct nibble_context *c) { return c->tokens; }

struct nb_gpu_model *nb_context_gpu_model(struct nibble_context *c) { return &c->m->g; }
struct nb_fwd *nb_context_fwd(struct nibble_context *c) { return &c->f; }

/* mtp.h: the normed hidden state of position n_past - 1: row n_past - 1 - last_pos0 of f.x after
 * an eval that kept every row, f.xlast after one that kept the last */
int nb_context_hidden(struct nibble_context *c, struct nb_gpu_model **g, struct nb_fwd **f,
                      struct vkx_view *h)
{
    if (c->fault != VK_SUCCESS || c->last_rows == 0 || c->n_past == 0) return -1;
    uint32_t row = c->n_past - 1 - c->last_pos0;
    VkDeviceSize H = (VkDeviceSize)c->m->g.m.cfg.n_embd * sizeof(float);
    *g = &c->m->g;
    *f = &c->f;
    if (c->last_all) {
        if (row >= c->last_rows) return -1;
        *h = (struct vkx_view){&c->f.x, row * H, H};
    } else {
        if (row != 0) return -1;
        *h = (struct vkx_view){&c->f.xlast, 0, H};
    }
    return 0;
}

const float *nibble_logits(struct nibble_context *c, int i)
{
    const float *base = c->f.logits.map;
    uint32_t V = c->m->g.m.cfg.n_vocab;
    if (c->last_rows == 0) return NULL; /* nothing evaluated since create/reset, or a failure */
    if (i == -1) return base + (size_t)(c->last_rows - 1) * V;
    if (!c->last_all || i < 0 || (uint32_t)i >= c->last_rows) return NULL;
    return base + (size_t)i * V;
}

/* ---- sampling ------------------------------------------------------------------------------
 * Greedy and top_k in 2..NB_SAMPLE_MAX_K run on the device (sample.comp keeps at most 64
 * candidates). top_k 0 (off) or above 64 runs here on the host over the whole mapped logits row,
 * in O(n_vocab): selections by partitioning, no sort. Both use the same order (larger logit
 * first, ties to the lower id, NaN as -inf), the same top-k then top-p cut and the same draw. */

/* The device's 32-bit draw key: the seed's low half XOR a hash of its high half (the hash of 0 is
 * 0), so seeds below 2^32 keep their streams and every bit of a larger seed counts. */
static uint32_t seed_key(uint64_t seed)
{
    uint32_t h = (uint32_t)(seed >> 32);
    h ^= h >> 16;
    h *= 0x7feb352du;
    h ^= h >> 15;
    h *= 0x846ca68bu;
    h ^= h >> 16;
    return (uint32_t)seed ^ h;
}

static bool before(const struct cand *a, const struct cand *b)
{
    return a->v > b->v || (a->v == b->v && a->i < b->i);
}

static void swap(struct cand *a, struct cand *b)
{
    struct cand t = *a;
    *a = *b;
    *b = t;
}

/* Partitions a[0..n) (n > 0) around its middle element; returns the pivot's place p: a[0..p)
 * rank before it, a(p..n) after. Keys are distinct (ties go by id), so this cannot degenerate
 * on equal values. */
static size_t partition(struct cand *a, size_t n)
{
    swap(&a[n / 2], &a[n - 1]);
    size_t s = 0;
    for (size_t j = 0; j + 1 < n; j++)
        if (before(&a[j], &a[n - 1])) swap(&a[s++], &a[j]);
    swap(&a[s], &a[n - 1]);
    return s;
}

/* Moves the k first in rank order to a[0..k) (in no particular order). */
static void select_top(struct cand *a, size_t n, size_t k)
{
    while (k > 0 && k < n) {
        size_t p = partition(a, n);
        if (p == k || p + 1 == k) return;
        if (p > k) {
            n = p;
        } else {
            a += p + 1;
            n -= p + 1;
            k -= p + 1;
        }
    }
}

/* The smallest m such that the m first of a[0..n) in rank order weigh at least target (> 0),
 * moved to a[0..m); n when all of them weigh less (rounding). */
static size_t select_mass(struct cand *a, size_t n, double target)
{
    size_t lo = 0, hi = n; /* a[0..lo) are in, weighing acc < target; the cut is in (lo, hi] */
    double acc = 0;
    while (hi - lo > 1) {
        size_t p = lo + partition(a + lo, hi - lo);
        double left = 0;
        for (size_t j = lo; j < p; j++) left += a[j].w;
        if (acc + left >= target) {
            hi = p;
        } else if (acc + left + a[p].w >= target) {
            return p + 1;
        } else {
            acc += left + a[p].w;
            lo = p + 1;
        }
    }
    return lo < hi ? lo + 1 : hi;
}

static int32_t sample_host(struct nibble_context *c, const struct nibble_sampler *s,
                           uint32_t key, uint32_t counter)
{
    uint32_t V = c->m->g.m.cfg.n_vocab;
    const float *row = nibble_logits(c, -1);
    if (!c->cand) c->cand = malloc((size_t)V * sizeof *c->cand);
    if (!c->cand || !row) return -1;
    struct cand *a = c->cand;
    float mx = -INFINITY;
    uint32_t best = 0;
    for (uint32_t i = 0; i < V; i++) {
        float v = isnan(row[i]) ? -INFINITY : row[i];
        a[i] = (struct cand){v, i, 0.0};
        if (v > mx) {
            mx = v;
            best = i;
        }
    }
    if (mx == -INFINITY) return (int32_t)best; /* nothing to weigh: the first id, as the device */
    size_t k = s->top_k == 0 || (uint32_t)s->top_k > V ? V : (size_t)s->top_k;
    select_top(a, V, k);
    double inv_temp = 1.0 / s->temp, sum = 0;
    for (size_t j = 0; j < k; j++) {
        a[j].w = exp(((double)a[j].v - mx) * inv_temp);
        sum += a[j].w;
    }
    size_t m = k;
    if (s->top_p < 1.0f) {
        m = s->top_p > 0.0f ? select_mass(a, k, s->top_p * sum) : (select_top(a, k, 1), 1);
        sum = 0;
        for (size_t j = 0; j < m; j++) sum += a[j].w;
    }
    double target = nb_sample_uniform(key, counter) * sum, acc = 0;
    for (size_t j = 0; j < m; j++) {
        acc += a[j].w;
        if (target < acc) return (int32_t)a[j].i;
    }
    return (int32_t)a[m - 1].i;
}

int32_t nibble_sample(struct nibble_context *c, const struct nibble_sampler *s)
{
    struct nb_gpu_model *g = &c->m->g;
    struct vkx_ctx *vk = &g->vk;
    uint32_t V = g->m.cfg.n_vocab;
    if (c->fault != VK_SUCCESS || c->last_rows == 0) return -1; /* no logits to sample from */
    if (nibble_sampler_check(s, NULL, 0) != 0) return -1;
    uint32_t counter = c->sample_count++, key = seed_key(s->seed);
    bool greedy = s->temp == 0.0f || s->top_k == 1;
    if (!greedy && (s->top_k == 0 || s->top_k > NB_SAMPLE_MAX_K))
        return sample_host(c, s, key, counter);
    VkDeviceSize row = (VkDeviceSize)V * sizeof(float);
    struct vkx_view lg = {&c->f.logits, (VkDeviceSize)(c->last_rows - 1) * row, row};
    *(uint32_t *)c->rng.map = counter;
    vkx_cmd_catch(true);
    vkx_cmd_begin(vk, &c->f.smp);
    if (greedy)
        nb_op_argmax(&g->mi, vk, &c->f.smp, lg, V, vkx_whole(&c->f.sampled), 0);
    else
        nb_op_sample(&g->mi, vk, &c->f.smp, lg, V, (uint32_t)s->top_k, s->temp, s->top_p, key,
                     vkx_whole(&c->rng), vkx_whole(&c->f.sampled), 0);
    vkx_cmd_end(vk, &c->f.smp);
    vkx_cmd_submit_wait(vk, &c->f.smp);
    VkResult r = vkx_cmd_catch(false);
    if (r != VK_SUCCESS) {
        failed(c, r, NULL, 0);
        return -1;
    }
    return (int32_t) * (const uint32_t *)c->f.sampled.map;
}

void nibble_set_draws(struct nibble_context *c, uint32_t n) { c->sample_count = n; }

void nibble_reset(struct nibble_context *c)
{
    c->n_past = 0;
    c->last_n = 0;
    c->last_rows = 0;
    c->last_all = false;
}

/* spec.c: speculative decoding over the public API (nibble.h): the drafters (prompt lookup, a
 * draft model's context, an MTP assistant: mtp.h), verification of a draft in one batch, the
 * acceptance rule (spec.h) and the rollback of rejected tokens with nibble_truncate. */
#include "spec.h"
#include "api.h"
#include "forward.h"
#include "mtp.h"
#include "platform.h"
#include "vkx.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SPEC_MAX_DRAFT 7 /* a draft and the token before it: one batch of 8, one weight read */
#define SPEC_MAX_LOOKUP 8
#define SPEC_EXPLORE 32  /* plain steps before a draft of one token is tried regardless ... */
#define SPEC_EXPLORE_MAX 1024 /* ... doubling up to this while those tries accept nothing */

struct nibble_spec {
    struct nibble_context *c, *draft;
    struct nb_mtp_gpu *mtp; /* the MTP assistant, or NULL */
    int lookup, draft_max;
    bool fixed_k;
    uint32_t V;
    /* adaptive k: the measured seconds of a step that evaluates n tokens (drafting included;
     * 0: not measured yet) and the decayed counts of drafted tokens tried and accepted */
    double cost[SPEC_MAX_DRAFT + 2];
    bool warm[SPEC_MAX_DRAFT + 2]; /* the first step of each size ran (it records commands) */
    double tried, taken;
    int idle;          /* plain steps since the last draft */
    int busy;          /* drafting steps since the last plain one */
    int explore_every; /* plain steps before a try (SPEC_EXPLORE .. SPEC_EXPLORE_MAX) */
    bool exploring;    /* this step's draft is such a try */
    uint64_t rng;  /* the acceptance draws (splitmix64), seeded from the sampler */
    uint64_t rng_seed;
    bool rng_set;
    struct nibble_spec_stats st;
    int32_t *hist;          /* [n_ctx + 1] the target's tokens and `last` */
    struct nb_dist p;       /* the target's distribution of one row */
    struct nb_dist q[SPEC_MAX_DRAFT]; /* the draft model's, per drafted token (n 0: point mass) */
    double *dense;          /* [V] zeros: scratch of nb_spec_accept */
};

/* ---- distributions (spec.h) ------------------------------------------------------------------ */

void nb_dist_free(struct nb_dist *d)
{
    free(d->ids);
    free(d->pr);
    memset(d, 0, sizeof *d);
}

static int dist_reserve(struct nb_dist *d, uint32_t n)
{
    if (n <= d->cap) return 0;
    int32_t *ids = realloc(d->ids, n * sizeof *ids);
    if (ids) d->ids = ids;
    double *pr = realloc(d->pr, n * sizeof *pr);
    if (pr) d->pr = pr;
    if (!ids || !pr) return -1;
    d->cap = n;
    return 0;
}

static float key_of(float v) { return isnan(v) ? -INFINITY : v; }

/* a ranks before b: larger logit first, ties to the lower id */
static bool ranks_before(float va, int32_t ia, float vb, int32_t ib)
{
    return va > vb || (va == vb && ia < ib);
}

int32_t nb_argmax(const float *logits, uint32_t V)
{
    int32_t best = 0;
    float bv = key_of(logits[0]);
    for (uint32_t i = 1; i < V; i++) {
        float v = key_of(logits[i]);
        if (v > bv) {
            bv = v;
            best = (int32_t)i;
        }
    }
    return best;
}

struct ranked {
    float v; /* the logit, NaN as -inf */
    int32_t id;
};

static int cmp_rank(const void *a, const void *b)
{
    const struct ranked *x = a, *y = b;
    return ranks_before(x->v, x->id, y->v, y->id) ? -1 : ranks_before(y->v, y->id, x->v, x->id);
}

int nb_dist_from_logits(struct nb_dist *d, const float *logits, uint32_t V,
                        const struct nibble_sampler *s)
{
    bool greedy = s->temp == 0.0f || s->top_k == 1;
    uint32_t k = greedy ? 1 : s->top_k == 0 || (uint32_t)s->top_k > V ? V : (uint32_t)s->top_k;
    if (dist_reserve(d, k) != 0) return -1;
    d->n = 0;
    if (greedy) {
        d->ids[0] = nb_argmax(logits, V);
        d->pr[0] = 1.0;
        d->n = 1;
        return 0;
    }
    if (k == V) { /* the whole vocabulary in rank order */
        struct ranked *r = malloc((size_t)V * sizeof *r);
        if (!r) return -1;
        for (uint32_t i = 0; i < V; i++)
            r[i] = (struct ranked){key_of(logits[i]), (int32_t)i};
        qsort(r, V, sizeof *r, cmp_rank);
        for (uint32_t i = 0; i < V; i++)
            d->ids[i] = r[i].id;
        free(r);
        d->n = V;
    } else { /* the k best by insertion (the k-th best so far rejects most at once) */
        for (uint32_t i = 0; i < V; i++) {
            float v = key_of(logits[i]);
            if (d->n == k && !ranks_before(v, (int32_t)i, key_of(logits[d->ids[k - 1]]),
                                           d->ids[k - 1]))
                continue;
            uint32_t j = d->n < k ? d->n++ : k - 1;
            while (j > 0 && ranks_before(v, (int32_t)i, key_of(logits[d->ids[j - 1]]),
                                         d->ids[j - 1])) {
                d->ids[j] = d->ids[j - 1];
                j--;
            }
            d->ids[j] = (int32_t)i;
        }
    }
    float mx = key_of(logits[d->ids[0]]);
    if (mx == -INFINITY) { /* nothing to weigh: the first id, as the device */
        d->ids[0] = 0;
        d->pr[0] = 1.0;
        d->n = 1;
        return 0;
    }
    double inv_temp = 1.0 / s->temp, sum = 0;
    for (uint32_t j = 0; j < d->n; j++) {
        d->pr[j] = exp(((double)key_of(logits[d->ids[j]]) - mx) * inv_temp);
        sum += d->pr[j];
    }
    if (s->top_p < 1.0f) { /* the smallest prefix weighing at least top_p */
        double target = s->top_p * sum, acc = 0;
        uint32_t m = 0;
        while (m < d->n && (m == 0 || acc < target))
            acc += d->pr[m++];
        d->n = m;
        sum = acc;
    }
    for (uint32_t j = 0; j < d->n; j++)
        d->pr[j] /= sum;
    return 0;
}

int32_t nb_dist_draw(const struct nb_dist *d, double u)
{
    double acc = 0;
    for (uint32_t j = 0; j < d->n; j++) {
        acc += d->pr[j];
        if (u < acc) return d->ids[j];
    }
    return d->ids[d->n - 1];
}

double nb_dist_prob(const struct nb_dist *d, int32_t t)
{
    for (uint32_t j = 0; j < d->n; j++)
        if (d->ids[j] == t) return d->pr[j];
    return 0;
}

int32_t nb_spec_accept(const struct nb_dist *p, const struct nb_dist *q, int32_t drafted,
                       double u_accept, double u_resample, double *dense, bool *accepted)
{
    double pd = nb_dist_prob(p, drafted), qd = q ? nb_dist_prob(q, drafted) : 1.0;
    /* accept with min(1, p/q): q(d) > 0 for a token drawn from q */
    if (qd > 0 && u_accept * qd < pd) {
        *accepted = true;
        return drafted;
    }
    *accepted = false;
    /* the residual max(0, p - q) over p's support (where p is 0 the residual is too) */
    if (q)
        for (uint32_t j = 0; j < q->n; j++)
            dense[q->ids[j]] = q->pr[j];
    else
        dense[drafted] = 1.0;
    double sum = 0;
    for (uint32_t j = 0; j < p->n; j++) {
        double r = p->pr[j] - dense[p->ids[j]];
        sum += r > 0 ? r : 0;
    }
    int32_t t = p->ids[0];
    if (sum > 0) {
        double target = u_resample * sum, acc = 0;
        for (uint32_t j = 0; j < p->n; j++) {
            double r = p->pr[j] - dense[p->ids[j]];
            if (r <= 0) continue;
            acc += r;
            t = p->ids[j];
            if (target < acc) break;
        }
    } else { /* p == q up to rounding: a rejection has probability ~0; draw from p */
        t = nb_dist_draw(p, u_resample);
    }
    if (q)
        for (uint32_t j = 0; j < q->n; j++)
            dense[q->ids[j]] = 0;
    else
        dense[drafted] = 0;
    return t;
}

/* ---- the generator --------------------------------------------------------------------------- */

/* The draft length worth trying, at most kmax: the k that maximises the expected tokens of a step,
 * (1 - a^(k+1)) / (1 - a) for a per-token acceptance a, per second of a step of k + 1 tokens
 * (measured, and taken as at least 10% more per token than a plain step; before that a guess of
 * 15% more per token, as on a GPU where a batch of 8 reads the weights once; the first two steps
 * are plain, to measure one token). 0 when plain decoding is
 * faster, except after explore_every plain steps: then 1, so acceptance and cost are measured
 * again. Drafts that are always rejected cost one such try (a batch of 2, and the draft model's
 * catching up) per 32, 64, .. 1024 steps: each try that accepts nothing doubles the wait. While
 * drafts pay, every 32nd step is plain anyway, to measure one token's cost again. */
static int choose_k(struct nibble_spec *s, int kmax)
{
    if (s->cost[1] <= 0) return 0; /* plain steps first: they measure the cost of one token */
    double a = (s->taken + 1) / (s->tried + 2), c1 = s->cost[1];
    double best = 1 / c1, e = 1, ak = 1;
    int k_best = 0;
    for (int k = 1; k <= kmax; k++) {
        ak *= a;
        e += ak; /* 1 + a + .. + a^k */
        double c = s->cost[k + 1] > 0 ? s->cost[k + 1] : c1 * (1 + 0.15 * k);
        /* never below a plain step and 10% per drafted token: the two are measured at different
         * times, and on a loaded machine a stale c1 can exceed a later batch's cost, which
         * would keep drafts that are all rejected going (seen with an untrained assistant) */
        if (c < c1 * (1 + 0.1 * k)) c = c1 * (1 + 0.1 * k);
        if (e / c > best) {
            best = e / c;
            k_best = k;
        }
    }
    s->exploring = false;
    if (k_best == 0 && kmax > 0 && ++s->idle >= s->explore_every) {
        k_best = 1;
        s->exploring = true;
    }
    if (k_best > 0) s->idle = 0;
    /* a plain step every SPEC_EXPLORE drafting ones: the cost of one token is measured again (a
     * load spike during the first plain steps would otherwise make drafts look cheap for good) */
    if (k_best > 0 && !s->exploring && ++s->busy >= SPEC_EXPLORE) k_best = 0;
    if (k_best == 0) s->busy = 0;
    return k_best;
}

/* The seconds of a step of n tokens since t0, into the average (the first of each size is left
 * out: it records the command buffers). */
static void note_cost(struct nibble_spec *s, int n, uint64_t t0)
{
    double t = (plat_now_ns() - t0) / 1e9;
    if (!s->warm[n]) {
        s->warm[n] = true;
        return;
    }
    /* one token's cost falls at once to a faster sample (load spikes and first-use work only add
     * time, and an inflated baseline makes every draft look cheap); the others average */
    if (n == 1 && s->cost[1] > 0 && t < s->cost[1])
        s->cost[1] = t;
    else
        s->cost[n] = s->cost[n] > 0 ? 0.7 * s->cost[n] + 0.3 * t : t;
}

struct nibble_spec_params nibble_spec_default_params(void)
{
    struct nibble_spec_params p = {.lookup = 0, .draft_max = 0, .draft = NULL};
    return p;
}

struct nibble_spec *nibble_spec_create(struct nibble_context *c,
                                       const struct nibble_spec_params *p, char *err,
                                       size_t errlen)
{
    struct nibble_spec_params d = nibble_spec_default_params();
    if (!p) p = &d;
    if (nb_api_need(c, "context", err, errlen) != 0) return NULL;
    if (p->lookup < 0 || p->lookup > SPEC_MAX_LOOKUP) {
        nb_seterr(err, errlen, "lookup n-grams of %d tokens: use 0 (off) to %d", p->lookup,
                  SPEC_MAX_LOOKUP);
        return NULL;
    }
    if (p->draft_max < 0 || p->draft_max > SPEC_MAX_DRAFT) {
        nb_seterr(err, errlen, "draft_max %d is not in 1..%d (0: %d)", p->draft_max, SPEC_MAX_DRAFT,
                  SPEC_MAX_DRAFT);
        return NULL;
    }
    uint32_t V = (uint32_t)nibble_n_vocab(nibble_context_model(c));
    if (p->draft) {
        uint32_t dv = (uint32_t)nibble_n_vocab(nibble_context_model(p->draft));
        if (dv != V) {
            nb_seterr(err, errlen, "the draft model's vocabulary has %u tokens, the model's %u: "
                      "they must be the same", dv, V);
            return NULL;
        }
        if (nibble_n_ctx(p->draft) < nibble_n_ctx(c)) {
            nb_seterr(err, errlen, "the draft context of %u tokens is shorter than the context of "
                      "%u", nibble_n_ctx(p->draft), nibble_n_ctx(c));
            return NULL;
        }
        if (p->draft == c) {
            nb_seterr(err, errlen, "the draft context is the context itself");
            return NULL;
        }
    }
    struct nibble_spec *s = calloc(1, sizeof *s);
    if (!s) {
        nb_seterr(err, errlen, "out of host memory");
        return NULL;
    }
    if (p->mtp) {
        char e[512] = "";
        s->mtp = nb_mtp_gpu_create(nb_context_gpu_model(c), nb_context_fwd(c), p->mtp, e,
                                   sizeof e);
        if (!s->mtp) {
            nb_seterr(err, errlen, "%s", e);
            free(s);
            return NULL;
        }
    }
    s->c = c;
    s->draft = p->draft;
    s->lookup = p->lookup;
    s->fixed_k = p->fixed_k;
    s->explore_every = SPEC_EXPLORE;
    s->V = V;
    uint32_t nb = nibble_n_batch(c);
    s->draft_max = p->draft_max ? p->draft_max : SPEC_MAX_DRAFT;
    if ((uint32_t)s->draft_max > nb - 1) s->draft_max = (int)nb - 1;
    s->hist = malloc(((size_t)nibble_n_ctx(c) + 1) * sizeof *s->hist);
    s->dense = calloc(V, sizeof *s->dense);
    if (!s->hist || !s->dense) {
        nb_seterr(err, errlen, "out of host memory");
        nibble_spec_destroy(s);
        return NULL;
    }
    return s;
}

void nibble_spec_destroy(struct nibble_spec *s)
{
    if (!s) return;
    nb_dist_free(&s->p);
    for (int i = 0; i < SPEC_MAX_DRAFT; i++)
        nb_dist_free(&s->q[i]);
    nb_mtp_gpu_destroy(s->mtp);
    free(s->hist);
    free(s->dense);
    free(s);
}

struct nibble_spec_stats nibble_spec_get_stats(const struct nibble_spec *s) { return s->st; }

/* uniform in [0, 1) from the spec's stream (splitmix64, 53 bits) */
static double uniform(struct nibble_spec *s)
{
    uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

/* Prompt lookup: the tokens after the latest earlier occurrence of the last n of h[0..len)
 * (n = lookup .. 1), at most k; returns how many were written to out. */
static int draft_lookup(const struct nibble_spec *s, const int32_t *h, uint32_t len, int k,
                        int32_t *out)
{
    for (int n = s->lookup; n >= 1; n--) {
        if ((uint32_t)n >= len) continue;
        const int32_t *tail = h + len - n;
        for (uint32_t i = len - n; i-- > 0;) { /* an occurrence at h[i .. i+n) */
            if (h[i] != tail[0] || memcmp(h + i, tail, n * sizeof *h) != 0) continue;
            int m = 0;
            for (uint32_t j = i + n; j < len && m < k; j++)
                out[m++] = h[j];
            if (m > 0) return m;
        }
    }
    return 0;
}

/* The draft model: its cache brought to h[0..len) (the common prefix kept, the rest evaluated),
 * then k tokens drafted one decode step at a time with the sampler (distributions kept in s->q).
 * Returns how many were drafted (k), or -1 with a message. */
static int draft_model(struct nibble_spec *s, const int32_t *h, uint32_t len, int k,
                       const struct nibble_sampler *sp, int32_t *out, char *err, size_t errlen)
{
    struct nibble_context *d = s->draft;
    const int32_t *have = nibble_tokens(d);
    uint32_t np = nibble_n_past(d), common = 0;
    while (common < np && common < len && have[common] == h[common]) common++;
    if (common == len) common--; /* the last token is evaluated again for its logits */
    if (nibble_truncate(d, common, NULL, 0) != 0) { /* the ring lost what the window needs */
        nibble_reset(d);
        common = 0;
    }
    if (nibble_eval(d, h + common, (int)(len - common), false, err, errlen) != 0) return -1;
    bool greedy = sp->temp == 0.0f || sp->top_k == 1;
    for (int i = 0; i < k; i++) {
        const float *lg = nibble_logits(d, -1);
        if (greedy) {
            out[i] = nb_argmax(lg, s->V);
            s->q[i].n = 0; /* a point mass */
        } else {
            if (nb_dist_from_logits(&s->q[i], lg, s->V, sp) != 0) {
                nb_seterr(err, errlen, "out of host memory");
                return -1;
            }
            out[i] = nb_dist_draw(&s->q[i], uniform(s));
        }
        if (i + 1 < k && nibble_eval(d, &out[i], 1, false, err, errlen) != 0) return -1;
    }
    return k;
}

/* The MTP assistant: k steps at position P (where `last` goes), the first from the target's
 * hidden state of position P - 1, each next from the previous step's; tokens by argmax (greedy)
 * or drawn with the sampler. A drawn draft's distribution q is any the drafter likes (the
 * acceptance rule keeps the target's distribution for every q): here the sampler's with top_k at
 * most the device's 64 (0: 64), kept in s->q from the logits of every step.
 * On a GPU the k steps are one submission with each token chosen on the device (no logits cross
 * to the host, one wait). On a CPU device (kernel shapes "cpu", NIBBLE_TUNE) host and device are
 * the same cores and memory: the host picks a token from the mapped logits in microseconds where
 * the device's argmax or sampler costs dispatches (lavapipe, default model, 3 steps: 5.5 ms as
 * single steps with the host's choice, 9 ms as one submission with the device's argmax, 30 ms
 * with its sampler), so there each step is its own submission. Returns how many were drafted
 * (k, or 0 when the target kept no hidden state for P - 1), -1 with a message on a device
 * failure. */
static int draft_mtp(struct nibble_spec *s, int32_t last, uint32_t P, int k,
                     const struct nibble_sampler *sp, int32_t *out, char *err, size_t errlen)
{
    struct nb_gpu_model *g;
    struct nb_fwd *f;
    struct vkx_view h;
    if (P == 0 || nb_context_hidden(s->c, &g, &f, &h) != 0) return 0;
    bool greedy = sp->temp == 0.0f || sp->top_k == 1;
    struct nibble_sampler qs = *sp;
    if (qs.top_k == 0 || qs.top_k > NB_MTP_SAMPLE_MAX_K) qs.top_k = NB_MTP_SAMPLE_MAX_K;
    if (g->vk.tune_cpu) { /* single steps, the token chosen on the host */
        for (int i = 0; i < k; i++) {
            const float *lg = nb_mtp_gpu_step(s->mtp, i ? out[i - 1] : last, P, i ? NULL : &h,
                                              err, errlen);
            if (!lg) return -1;
            if (greedy) {
                out[i] = nb_argmax(lg, s->V);
                s->q[i].n = 0; /* a point mass */
                continue;
            }
            if (nb_dist_from_logits(&s->q[i], lg, s->V, &qs) != 0) {
                nb_seterr(err, errlen, "out of host memory");
                return -1;
            }
            out[i] = nb_dist_draw(&s->q[i], uniform(s));
        }
        return k;
    }
    if (greedy) { /* argmax on the device */
        if (nb_mtp_gpu_draft(s->mtp, last, P, &h, k, out, err, errlen) != k) return -1;
        for (int i = 0; i < k; i++)
            s->q[i].n = 0; /* point masses */
        return k;
    }
    uint32_t counters[SPEC_MAX_DRAFT];
    for (int i = 0; i < k; i++)
        counters[i] = (uint32_t)(uniform(s) * 4294967296.0);
    struct nb_mtp_sampler ms = {(uint32_t)qs.top_k, qs.temp, qs.top_p,
                                (uint32_t)(sp->seed ^ (sp->seed >> 32)), counters};
    const float *lg;
    if (nb_mtp_gpu_draft_sample(s->mtp, last, P, &h, k, &ms, out, &lg, err, errlen) != k)
        return -1;
    for (int i = 0; i < k; i++)
        if (nb_dist_from_logits(&s->q[i], lg + (size_t)i * s->V, s->V, &qs) != 0) {
            nb_seterr(err, errlen, "out of host memory");
            return -1;
        }
    return k;
}

int nibble_spec_step(struct nibble_spec *s, int32_t last, const struct nibble_sampler *sp,
                     int32_t *out, int max, char *err, size_t errlen)
{
    struct nibble_context *c = s->c;
    uint32_t P = nibble_n_past(c), n_ctx = nibble_n_ctx(c);
    if (max < 1 || !out) {
        nb_seterr(err, errlen, "no room for a token (max %d)", max);
        return -1;
    }
    if (nibble_sampler_check(sp, err, errlen) != 0) return -1;
    if (P >= n_ctx) {
        nb_seterr(err, errlen, "the context of %u tokens is full", n_ctx);
        return -1;
    }
    if (!s->rng_set || s->rng_seed != sp->seed) {
        s->rng = s->rng_seed = sp->seed;
        s->rng_set = true;
    }
    s->st.steps++;
    bool greedy = sp->temp == 0.0f || sp->top_k == 1;

    /* draft: at most draft_max, the room left in out and in the context, and what pays */
    uint64_t t0 = plat_now_ns();
    int k = s->lookup || s->draft || s->mtp ? s->draft_max : 0;
    if (k > max - 1) k = max - 1;
    if ((int64_t)k > (int64_t)n_ctx - P - 1) k = (int)(n_ctx - P - 1);
    if (!s->fixed_k) k = choose_k(s, k);
    int32_t batch[1 + SPEC_MAX_DRAFT];
    batch[0] = last;
    int nd = 0;
    bool from_model = false;
    if (k > 0) {
        memcpy(s->hist, nibble_tokens(c), P * sizeof *s->hist);
        s->hist[P] = last;
        if (s->lookup) nd = draft_lookup(s, s->hist, P + 1, k, batch + 1);
        if (nd == 0 && s->mtp) {
            nd = draft_mtp(s, last, P, k, sp, batch + 1, err, errlen);
            if (nd < 0) return -1;
            from_model = nd > 0;
        }
        if (nd == 0 && s->draft) {
            nd = draft_model(s, s->hist, P + 1, k, sp, batch + 1, err, errlen);
            if (nd < 0) return -1;
            from_model = true;
        }
    }

    uint64_t t1 = plat_now_ns();
    if (nd == 0) { /* a plain decode step */
        if (nibble_eval(c, &last, 1, false, err, errlen) != 0) return -1;
        int32_t t = nibble_sample(c, sp);
        if (t < 0) {
            nb_seterr(err, errlen, "sampling failed");
            return -1;
        }
        out[0] = t;
        s->st.tokens++;
        s->st.plain_s += (plat_now_ns() - t0) / 1e9;
        note_cost(s, 1, t0);
        return 1;
    }

    /* verify: last and the draft in one batch, the logits of every row */
    if (nibble_eval(c, batch, nd + 1, true, err, errlen) != 0) return -1;
    int m = 0;
    int32_t next = -1;
    for (; m < nd; m++) {
        const float *lg = nibble_logits(c, m);
        int32_t d = batch[1 + m];
        if (greedy) {
            int32_t t = nb_argmax(lg, s->V);
            if (t != d) {
                next = t;
                break;
            }
        } else {
            if (nb_dist_from_logits(&s->p, lg, s->V, sp) != 0) {
                nb_seterr(err, errlen, "out of host memory");
                return -1;
            }
            const struct nb_dist *q = from_model && s->q[m].n ? &s->q[m] : NULL;
            bool ok;
            double ua = uniform(s), ur = uniform(s);
            int32_t t = nb_spec_accept(&s->p, q, d, ua, ur, s->dense, &ok);
            if (!ok) {
                next = t;
                break;
            }
        }
    }
    if (m == nd) { /* every draft accepted: the target's own next token from the last row */
        const float *lg = nibble_logits(c, nd);
        if (greedy) {
            next = nb_argmax(lg, s->V);
        } else {
            if (nb_dist_from_logits(&s->p, lg, s->V, sp) != 0) {
                nb_seterr(err, errlen, "out of host memory");
                return -1;
            }
            next = nb_dist_draw(&s->p, uniform(s));
        }
    }
    /* keep last and the accepted drafts: a rollback inside the last eval, always possible */
    if (nibble_truncate(c, P + 1 + (uint32_t)m, err, errlen) != 0) return -1;
    for (int i = 0; i < m; i++)
        out[i] = batch[1 + i];
    out[m] = next;

    s->st.verifications++;
    s->st.drafted += (uint64_t)nd;
    s->st.accepted += (uint64_t)m;
    s->st.tokens += (uint64_t)m + 1;
    s->st.draft_s += (t1 - t0) / 1e9;
    s->st.verify_s += (plat_now_ns() - t1) / 1e9;
    /* acceptance: m successes in m + 1 tries (m in nd when all were accepted), decayed */
    s->tried = 0.95 * s->tried + m + (m < nd);
    s->taken = 0.95 * s->taken + m;
    if (s->exploring)
        s->explore_every = m > 0                                 ? SPEC_EXPLORE
                           : s->explore_every * 2 > SPEC_EXPLORE_MAX ? SPEC_EXPLORE_MAX
                                                                     : s->explore_every * 2;
    note_cost(s, nd + 1, t0);
    return m + 1;
}

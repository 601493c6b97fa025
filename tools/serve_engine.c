/* serve_engine.c: the slots of `nibble serve` and the one thread that runs them (see serve.h).
 *
 * A slot is a nibble_context plus a copy of the ids its KV cache holds. A new job goes to the
 * free slot whose cache shares the longest prefix with its prompt, counting only caches of which
 * the job keeps at least half or that hold three quarters of its prompt (of equal ones, the
 * least recently used slot, so recent conversations stay cached longest); that prefix is kept
 * (nibble_truncate rolls the cache back to it when the slot holds more) and only the rest is
 * prefilled: the multi-turn chat case, where each request repeats the conversation so far. When
 * the cache cannot be rolled back (a sliding-window ring already overwrote what the prefix needs)
 * the slot starts over (nibble_reset). The prefix reuse is reported as usage's cached tokens. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "platform.h"
#include "serve.h"

#define SRV_PREFILL_CHUNK 128 /* prompt tokens per engine step while other slots are busy: a
                                 long prompt does not stall their streams for its whole prefill
                                 (alone, a slot prefills the rest in one eval) */

struct slot {
    struct nibble_context *c;
    int32_t *toks;       /* [n_ctx] the ids at positions 0 .. n_toks-1 of the KV cache */
    uint32_t n_toks;
    struct srv_job *job; /* NULL: free */
    uint32_t pos;        /* next prompt id to prefill */
    int32_t pending;     /* sampled, shown, not evaluated yet (-1: none) */
    struct strbuf piece; /* this step's text for the job */
    uint64_t last_used;  /* when it last took a job (a counter): the oldest cache goes first */
};

struct srv {
    struct nibble_model *m;
    mtx_t model_mu;      /* every nibble_* call on m and its contexts */
    mtx_t mu;            /* the queue, the jobs' engine fields, the slots' job pointers */
    cnd_t work;          /* signalled when a job is queued or cancelled, or on shutdown */
    struct srv_job *head, *tail; /* FIFO of queued jobs */
    struct slot *slots;  /* [n_slots] */
    uint32_t n_slots, n_ctx;
    bool down;           /* srv_shutdown: fail everything */
    bool quit;           /* srv_destroy: the engine thread ends */
    thrd_t thread;
    bool thread_ok;
    uint64_t n_started;  /* jobs bound to slots so far */
};

static void job_unref_locked(struct srv_job *j)
{
    if (--j->refs > 0) return;
    free(j->ids);
    for (int i = 0; i < j->n_stop; i++)
        free(j->stop[i]);
    sb_free(&j->text);
    cnd_destroy(&j->cv);
    free(j);
}

struct srv_job *srv_job_new(void)
{
    struct srv_job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    if (cnd_init(&j->cv) != thrd_success) {
        free(j);
        return NULL;
    }
    j->refs = 1;
    return j;
}

/* Ends a job (under mu): done, waiters woken, the engine's reference dropped. */
static void job_finish(struct srv_job *j, const char *finish, int status, const char *err)
{
    j->state = SRV_DONE;
    j->finish = finish;
    if (err) {
        j->err_status = status;
        snprintf(j->err, sizeof j->err, "%s", err);
    }
    j->ready = j->text.n;
    j->t_done = plat_now_ns();
    /* one line per request: what the slot reused and how fast it went */
    double ttft = j->t_first ? (j->t_first - j->t_submit) / 1e6 : 0;
    double tps = j->n_gen > 1 && j->t_first ? (j->n_gen - 1) / ((j->t_done - j->t_first) / 1e9) : 0;
    fprintf(stderr, "nibble serve: %s: prompt %u tokens (%u cached), generated %u, %s, first token "
            "%.1f ms, %.1f tok/s\n", j->id[0] ? j->id : "request", j->n_ids, j->n_cached, j->n_gen,
            j->cancel ? "cancelled (the client left)" : err ? err : finish, ttft, tps);
    cnd_broadcast(&j->cv);
    job_unref_locked(j);
}

/* The longest suffix of text that is a proper prefix of a stop sequence: held back until the
 * next piece tells whether the stop completes. */
static size_t stop_holdback(const struct srv_job *j)
{
    size_t best = 0;
    for (int i = 0; i < j->n_stop; i++) {
        size_t L = strlen(j->stop[i]);
        for (size_t k = L - 1 < j->text.n ? L - 1 : j->text.n; k > best; k--)
            if (!memcmp(j->text.s + j->text.n - k, j->stop[i], k)) {
                best = k;
                break;
            }
    }
    return best;
}

/* Adds a piece to the job's text (under mu); true when a stop sequence ended it. */
static bool job_add_text(struct srv_job *j, const char *p, size_t n)
{
    sb_add(&j->text, p, n);
    if (j->text.oom) return false;
    size_t maxl = 0;
    for (int i = 0; i < j->n_stop; i++)
        if (strlen(j->stop[i]) > maxl) maxl = strlen(j->stop[i]);
    size_t from = j->scanned + 1 > maxl ? j->scanned + 1 - maxl : 0;
    size_t cut = SIZE_MAX;
    for (int i = 0; i < j->n_stop; i++) {
        size_t L = strlen(j->stop[i]);
        for (size_t k = from; k + L <= j->text.n && k < cut; k++)
            if (!memcmp(j->text.s + k, j->stop[i], L)) {
                cut = k;
                break;
            }
    }
    if (cut != SIZE_MAX) {
        sb_cut(&j->text, cut);
        return true;
    }
    j->scanned = j->text.n;
    size_t r = utf8_complete(j->text.s, j->text.n - stop_holdback(j));
    if (r > j->ready) j->ready = r;
    return false;
}

static uint32_t common_prefix(const int32_t *a, uint32_t na, const int32_t *b, uint32_t nb)
{
    uint32_t i = 0;
    while (i < na && i < nb && a[i] == b[i]) i++;
    return i;
}

/* Binds a queued job to a free slot (under mu and model_mu): keeps the cached prefix. */
static void slot_start(struct slot *sl, struct srv_job *j)
{
    uint32_t keep = common_prefix(sl->toks, sl->n_toks, j->ids, j->n_ids);
    if (keep >= j->n_ids) keep = j->n_ids - 1; /* the last prompt id is evaluated for logits */
    if (keep < sl->n_toks && nibble_truncate(sl->c, keep, NULL, 0) != 0) {
        nibble_reset(sl->c);
        keep = 0;
    }
    sl->n_toks = keep;
    sl->pos = keep;
    sl->pending = -1;
    sl->job = j;
    nibble_set_draws(sl->c, 0); /* a seeded request repeats whatever ran on the slot before */
    j->n_cached = keep;
    j->state = SRV_RUNNING;
}

/* Evaluates ids and records them as cached; -1 with the message in err. */
static int slot_eval(struct slot *sl, const int32_t *ids, uint32_t n, char *err, size_t errlen)
{
    if (nibble_eval(sl->c, ids, (int)n, false, err, errlen) != 0) {
        nibble_reset(sl->c);
        sl->n_toks = 0;
        return -1;
    }
    memcpy(sl->toks + sl->n_toks, ids, n * sizeof *ids);
    sl->n_toks += n;
    return 0;
}

enum step { STEP_MORE, STEP_EOG, STEP_LENGTH, STEP_FAIL };

/* One engine step of a slot (under model_mu only): a prefill chunk, or one token sampled into
 * sl->piece. j's fields read here (ids, sampler, max_tokens, n_gen) are not written by others. */
static enum step slot_step(struct srv *s, struct slot *sl, bool alone, char *err, size_t errlen)
{
    struct srv_job *j = sl->job;
    sb_cut(&sl->piece, 0);
    if (sl->pos < j->n_ids) {
        uint32_t n = j->n_ids - sl->pos;
        if (!alone && n > SRV_PREFILL_CHUNK) n = SRV_PREFILL_CHUNK;
        if (slot_eval(sl, j->ids + sl->pos, n, err, errlen) != 0) return STEP_FAIL;
        sl->pos += n;
        if (sl->pos < j->n_ids) return STEP_MORE;
    }
    if (sl->pending >= 0) {
        int32_t t = sl->pending;
        sl->pending = -1;
        if (slot_eval(sl, &t, 1, err, errlen) != 0) return STEP_FAIL;
    }
    int32_t t = nibble_sample(sl->c, &j->sp);
    if (t < 0) {
        snprintf(err, errlen, "sampling failed");
        return STEP_FAIL;
    }
    if (nibble_token_is_eog(s->m, t)) return STEP_EOG;
    char buf[256];
    int len = nibble_token_to_piece(s->m, t, buf, sizeof buf);
    if (len > 0) sb_add(&sl->piece, buf, len < (int)sizeof buf ? (size_t)len : sizeof buf - 1);
    sl->pending = t;
    return STEP_MORE;
}

/* Engine thread. */
static int engine_main(void *arg)
{
    struct srv *s = arg;
    char err[256];
    uint32_t rr = 0; /* round-robin start */
    mtx_lock(&s->mu);
    while (!s->quit) {
        /* queued jobs to free slots, first come first served */
        while (s->head) {
            struct srv_job *j = s->head;
            if (j->cancel || s->down) {
                s->head = j->next;
                job_finish(j, "stop", 503, s->down ? "the server is shutting down" : NULL);
                continue;
            }
            struct slot *best = NULL;
            int64_t best_len = 0;
            for (uint32_t i = 0; i < s->n_slots; i++) {
                struct slot *sl = &s->slots[i];
                if (sl->job) continue;
                /* a cache counts when the job keeps at least half of it or it holds three
                 * quarters of the prompt; the others (a <bos> and a turn's opening in common)
                 * rank below, so they are not overwritten while an unused slot is free */
                uint32_t l = common_prefix(sl->toks, sl->n_toks, j->ids, j->n_ids);
                bool counts = 2 * (uint64_t)l >= sl->n_toks || 4 * (uint64_t)l >= 3 * j->n_ids;
                int64_t rank = counts ? (int64_t)l : -1;
                bool older = best && rank == best_len && sl->last_used < best->last_used;
                if (!best || rank > best_len || older) best = sl, best_len = rank;
            }
            if (!best) break;
            s->head = j->next;
            if (!s->head) s->tail = NULL;
            best->last_used = ++s->n_started;
            mtx_lock(&s->model_mu);
            slot_start(best, j);
            mtx_unlock(&s->model_mu);
        }
        bool any = false;
        uint32_t busy = 0;
        for (uint32_t k = 0; k < s->n_slots; k++)
            busy += s->slots[k].job != NULL;
        for (uint32_t k = 0; k < s->n_slots; k++) {
            struct slot *sl = &s->slots[(rr + k) % s->n_slots];
            struct srv_job *j = sl->job;
            if (!j) continue;
            any = true;
            if (j->cancel || s->down) {
                sl->job = NULL;
                job_finish(j, "stop", 503, s->down ? "the server is shutting down" : NULL);
                continue;
            }
            mtx_unlock(&s->mu);
            mtx_lock(&s->model_mu);
            err[0] = 0;
            enum step st = slot_step(s, sl, busy == 1, err, sizeof err);
            mtx_unlock(&s->model_mu);
            mtx_lock(&s->mu);
            if (st == STEP_FAIL) {
                sl->job = NULL;
                job_finish(j, "stop", 500, err);
                continue;
            }
            if (st == STEP_EOG) {
                sl->job = NULL;
                job_finish(j, "stop", 0, NULL);
                continue;
            }
            if (sl->pending < 0) continue; /* a prefill chunk */
            if (!j->t_first) j->t_first = plat_now_ns();
            j->n_gen++;
            bool stopped = job_add_text(j, sl->piece.s ? sl->piece.s : "", sl->piece.n);
            if (j->text.oom) {
                sl->job = NULL;
                job_finish(j, "stop", 500, "out of host memory");
            } else if (stopped) {
                sl->job = NULL;
                job_finish(j, "stop", 0, NULL);
            } else if ((j->max_tokens && j->n_gen >= j->max_tokens) || sl->n_toks >= s->n_ctx) {
                sl->job = NULL; /* the last token is shown, not evaluated */
                job_finish(j, "length", 0, NULL);
            } else {
                cnd_broadcast(&j->cv);
            }
        }
        rr++;
        if (!any && !s->head && !s->quit) cnd_wait(&s->work, &s->mu);
    }
    mtx_unlock(&s->mu);
    return 0;
}

struct srv *srv_create(struct nibble_model *m, uint32_t n_par, uint32_t n_ctx, char *err,
                       size_t errlen)
{
    struct srv *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of host memory");
        return NULL;
    }
    s->m = m;
    s->n_slots = n_par;
    if (mtx_init(&s->mu, mtx_plain) != thrd_success ||
        mtx_init(&s->model_mu, mtx_plain) != thrd_success ||
        cnd_init(&s->work) != thrd_success) {
        snprintf(err, errlen, "cannot create a lock");
        free(s);
        return NULL;
    }
    s->slots = calloc(n_par, sizeof *s->slots);
    if (!s->slots) {
        snprintf(err, errlen, "out of host memory");
        srv_destroy(s);
        return NULL;
    }
    struct nibble_context_params cp = nibble_context_default_params();
    cp.n_ctx = n_ctx;
    for (uint32_t i = 0; i < n_par; i++) {
        struct slot *sl = &s->slots[i];
        sl->pending = -1;
        sl->c = nibble_context_create(m, &cp, err, errlen);
        if (!sl->c) {
            srv_destroy(s);
            return NULL;
        }
        s->n_ctx = nibble_n_ctx(sl->c);
        sl->toks = malloc((size_t)s->n_ctx * sizeof *sl->toks);
        if (!sl->toks) {
            snprintf(err, errlen, "out of host memory");
            srv_destroy(s);
            return NULL;
        }
    }
    if (thrd_create(&s->thread, engine_main, s) != thrd_success) {
        snprintf(err, errlen, "cannot start the engine thread");
        srv_destroy(s);
        return NULL;
    }
    s->thread_ok = true;
    return s;
}

void srv_shutdown(struct srv *s)
{
    mtx_lock(&s->mu);
    s->down = true;
    cnd_broadcast(&s->work);
    mtx_unlock(&s->mu);
}

void srv_destroy(struct srv *s)
{
    if (!s) return;
    if (s->thread_ok) {
        mtx_lock(&s->mu);
        s->down = s->quit = true;
        cnd_broadcast(&s->work);
        mtx_unlock(&s->mu);
        thrd_join(s->thread, NULL);
    }
    /* jobs still queued or running (none after srv_shutdown and the HTTP threads) */
    while (s->head) {
        struct srv_job *j = s->head;
        s->head = j->next;
        job_finish(j, "stop", 503, "the server is shutting down");
    }
    for (uint32_t i = 0; s->slots && i < s->n_slots; i++) {
        struct slot *sl = &s->slots[i];
        if (sl->job) job_finish(sl->job, "stop", 503, "the server is shutting down");
        if (sl->c) nibble_context_destroy(sl->c);
        free(sl->toks);
        sb_free(&sl->piece);
    }
    free(s->slots);
    cnd_destroy(&s->work);
    mtx_destroy(&s->mu);
    mtx_destroy(&s->model_mu);
    free(s);
}

uint32_t srv_n_ctx(const struct srv *s) { return s->n_ctx; }
uint32_t srv_n_slots(const struct srv *s) { return s->n_slots; }

int srv_tokenize(struct srv *s, const char *text, bool add_bos, int32_t **ids)
{
    *ids = NULL;
    mtx_lock(&s->model_mu);
    int n = nibble_tokenize(s->m, text, NULL, 0, add_bos);
    if (n >= 0) {
        *ids = malloc(((size_t)n + 1) * sizeof **ids);
        if (*ids)
            nibble_tokenize(s->m, text, *ids, n, add_bos);
        else
            n = -1;
    }
    mtx_unlock(&s->model_mu);
    return n;
}

int srv_detokenize(struct srv *s, const int32_t *ids, size_t n, struct strbuf *out, size_t *bad)
{
    int rc = 0;
    mtx_lock(&s->model_mu);
    for (size_t i = 0; i < n; i++) {
        char buf[256];
        int len = nibble_token_to_piece(s->m, ids[i], buf, sizeof buf);
        if (len < 0) {
            *bad = i;
            rc = -1;
            break;
        }
        sb_add(out, buf, len < (int)sizeof buf ? (size_t)len : sizeof buf - 1);
    }
    mtx_unlock(&s->model_mu);
    return rc;
}

void srv_submit(struct srv *s, struct srv_job *j)
{
    mtx_lock(&s->mu);
    j->refs++;
    j->state = SRV_QUEUED;
    j->t_submit = plat_now_ns();
    j->next = NULL;
    if (s->down) {
        job_finish(j, "stop", 503, "the server is shutting down");
    } else {
        if (s->tail)
            s->tail->next = j;
        else
            s->head = j;
        s->tail = j;
        cnd_signal(&s->work);
    }
    mtx_unlock(&s->mu);
}

size_t srv_job_poll(struct srv *s, struct srv_job *j, size_t sent, unsigned ms,
                    struct strbuf *delta, struct srv_view *v)
{
    mtx_lock(&s->mu);
    if (j->state != SRV_DONE && j->ready <= sent && ms) {
        struct timespec ts;
        timespec_get(&ts, TIME_UTC);
        ts.tv_sec += ms / 1000;
        ts.tv_nsec += (long)(ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        while (j->state != SRV_DONE && j->ready <= sent)
            if (cnd_timedwait(&j->cv, &s->mu, &ts) != thrd_success) break;
    }
    if (j->ready > sent) {
        if (delta) sb_add(delta, j->text.s + sent, j->ready - sent);
        sent = j->ready;
    }
    v->done = j->state == SRV_DONE;
    v->finish = j->finish;
    v->err = j->err[0] ? j->err : NULL;
    v->err_status = j->err_status;
    v->n_prompt = j->n_ids;
    v->n_gen = j->n_gen;
    v->n_cached = j->n_cached;
    mtx_unlock(&s->mu);
    return sent;
}

void srv_job_release(struct srv *s, struct srv_job *j)
{
    if (!j) return;
    mtx_lock(&s->mu);
    if (j->state != SRV_DONE && !j->cancel) {
        j->cancel = true;
        cnd_signal(&s->work);
    }
    job_unref_locked(j);
    mtx_unlock(&s->mu);
}

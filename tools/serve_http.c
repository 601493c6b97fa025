/* serve_http.c: the HTTP side of `nibble serve` over libmicrohttpd, one thread per connection.
 *
 * Routes: POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health,
 * POST /tokenize, POST /detokenize. Errors are JSON in OpenAI's shape
 * ({"error":{"message","type","code"}}): 400 malformed or ill-typed requests and prompts longer
 * than the context, 401 a missing or wrong API key (every route but /health), 404 unknown
 * routes, 405 a known route with another method, 413 a body over the limit, 500/503 engine
 * failures and shutdown. A streaming reply (server-sent events) is written as the engine makes
 * it; when the client goes away the next write fails, libmicrohttpd frees the response and the
 * job is cancelled, which frees its slot at the engine's next step. */
#include <microhttpd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "platform.h"
#include "serve.h"

struct srv_http {
    struct MHD_Daemon *d;
    struct srv *s;
    struct srv_http_opts o;
    uint16_t port;
    long created;
    atomic_ulong next_id;
    atomic_int in_flight; /* requests between their headers and their end */
};

/* One request (libmicrohttpd's *con_cls): its body as it arrives. */
struct req {
    struct strbuf body;
    bool too_big;
};

/* The state of one streaming reply. */
struct stream {
    struct srv_http *h;
    struct srv_job *j;
    struct api_req r;
    char id[48];
    long created;
    size_t sent;         /* bytes of the job's text sent */
    struct strbuf out;   /* frames not yet handed to libmicrohttpd */
    size_t out_off;
    bool first, ended;
};

enum route { R_CHAT, R_COMPLETIONS, R_MODELS, R_HEALTH, R_TOKENIZE, R_DETOKENIZE };
static const struct {
    const char *path, *method;
} routes[] = {
    [R_CHAT] = {"/v1/chat/completions", "POST"}, [R_COMPLETIONS] = {"/v1/completions", "POST"},
    [R_MODELS] = {"/v1/models", "GET"},          [R_HEALTH] = {"/health", "GET"},
    [R_TOKENIZE] = {"/tokenize", "POST"},        [R_DETOKENIZE] = {"/detokenize", "POST"},
};

static enum MHD_Result send_body(struct MHD_Connection *conn, unsigned status,
                                 const struct strbuf *b, const char *allow)
{
    struct MHD_Response *rs = MHD_create_response_from_buffer(
        b->n, b->s ? b->s : (void *)"", MHD_RESPMEM_MUST_COPY);
    if (!rs) return MHD_NO;
    MHD_add_response_header(rs, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (allow) MHD_add_response_header(rs, MHD_HTTP_HEADER_ALLOW, allow);
    enum MHD_Result r = MHD_queue_response(conn, status, rs);
    MHD_destroy_response(rs);
    return r;
}

static enum MHD_Result send_error(struct MHD_Connection *conn, unsigned status, const char *msg,
                                  const char *allow)
{
    struct strbuf b = {0};
    api_error(&b, (int)status, msg);
    enum MHD_Result r = b.oom ? MHD_NO : send_body(conn, status, &b, allow);
    sb_free(&b);
    return r;
}

static enum MHD_Result send_json(struct MHD_Connection *conn, struct strbuf *b)
{
    enum MHD_Result r = b->oom ? send_error(conn, 500, "out of host memory", NULL)
                               : send_body(conn, MHD_HTTP_OK, b, NULL);
    sb_free(b);
    return r;
}

/* "Bearer KEY", compared in constant time for a given length. */
static bool key_ok(struct MHD_Connection *conn, const char *key)
{
    const char *a = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (!a || strncmp(a, "Bearer ", 7)) return false;
    a += 7;
    size_t n = strlen(key);
    if (strlen(a) != n) return false;
    unsigned char diff = 0;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(a[i] ^ key[i]);
    return diff == 0;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct stream *st = cls;
    while (st->out_off >= st->out.n) {
        if (st->ended) return MHD_CONTENT_READER_END_OF_STREAM;
        sb_cut(&st->out, 0);
        st->out_off = 0;
        struct strbuf delta = {0};
        struct srv_view v;
        st->sent = srv_job_poll(st->h->s, st->j, st->sent, 1000, &delta, &v);
        if (v.done && v.err) {
            sb_adds(&st->out, "data: ");
            api_error(&st->out, v.err_status, v.err);
            sb_adds(&st->out, "\n\ndata: [DONE]\n\n");
            st->ended = true;
        } else if (delta.n || v.done) {
            api_chunk(&st->out, &st->r, st->id, st->created, delta.s, delta.n, st->first,
                      v.done ? &v : NULL);
            st->first = false;
            st->ended = v.done;
        } else {
            sb_adds(&st->out, ": keep-alive\n\n"); /* also finds a client that has gone */
        }
        sb_free(&delta);
        if (st->out.oom || delta.oom) return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = st->out.n - st->out_off < max ? st->out.n - st->out_off : max;
    memcpy(buf, st->out.s + st->out_off, n);
    st->out_off += n;
    return (ssize_t)n;
}

static void stream_free(void *cls)
{
    struct stream *st = cls;
    srv_job_release(st->h->s, st->j); /* cancels it when the client left before the end */
    api_req_free(&st->r);
    sb_free(&st->out);
    free(st);
}

static enum MHD_Result do_completion(struct srv_http *h, struct MHD_Connection *conn,
                                     enum api_kind kind, struct req *q)
{
    char err[320];
    struct api_req r;
    if (api_parse(kind, q->body.s ? q->body.s : "", q->body.n, &r, err, sizeof err) != 0)
        return send_error(conn, 400, err, NULL);
    if (!r.model[0]) snprintf(r.model, sizeof r.model, "%s", h->o.model_name);
    int32_t *ids;
    int n = srv_tokenize(h->s, r.prompt.s, true, &ids);
    if (n < 0 || (uint32_t)n >= srv_n_ctx(h->s)) {
        if (n >= 0)
            snprintf(err, sizeof err, "the prompt is %d tokens, more than the context of %u "
                     "leaves room for", n, srv_n_ctx(h->s));
        free(ids);
        api_req_free(&r);
        return send_error(conn, n < 0 ? 500 : 400, n < 0 ? "tokenizing failed" : err, NULL);
    }
    struct srv_job *j = srv_job_new();
    if (!j) {
        free(ids);
        api_req_free(&r);
        return send_error(conn, 500, "out of host memory", NULL);
    }
    j->ids = ids;
    j->n_ids = (uint32_t)n;
    j->sp = r.sp;
    j->max_tokens = r.max_tokens;
    for (int i = 0; i < r.n_stop; i++)
        j->stop[i] = r.stop[i];
    j->n_stop = r.n_stop;
    r.n_stop = 0; /* the job owns them now */
    char id[48];
    snprintf(id, sizeof id, "%s-%lu", kind == API_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long)atomic_fetch_add(&h->next_id, 1));
    long created = (long)time(NULL);
    snprintf(j->id, sizeof j->id, "%s", id);
    srv_submit(h->s, j);
    if (!r.stream) {
        struct strbuf text = {0}, out = {0};
        struct srv_view v;
        size_t sent = 0;
        /* a client that leaves before the reply is whole cancels it too */
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        do {
            sent = srv_job_poll(h->s, j, sent, 250, &text, &v);
            if (!v.done && ci && plat_socket_gone(ci->connect_fd)) {
                srv_job_release(h->s, j);
                sb_free(&text);
                api_req_free(&r);
                return MHD_NO; /* closes the connection */
            }
        } while (!v.done);
        enum MHD_Result rc;
        if (v.err) {
            rc = send_error(conn, (unsigned)v.err_status, v.err, NULL);
        } else {
            api_reply(&out, &r, id, created, text.s, text.n, &v);
            rc = send_json(conn, &out);
        }
        sb_free(&text);
        sb_free(&out);
        srv_job_release(h->s, j);
        api_req_free(&r);
        return rc;
    }
    struct stream *st = calloc(1, sizeof *st);
    struct MHD_Response *rs =
        st ? MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, st,
                                               stream_free)
           : NULL;
    if (!rs) {
        free(st);
        srv_job_release(h->s, j);
        api_req_free(&r);
        return send_error(conn, 500, "out of host memory", NULL);
    }
    st->h = h;
    st->j = j;
    st->r = r;
    st->created = created;
    st->first = true;
    snprintf(st->id, sizeof st->id, "%s", id);
    MHD_add_response_header(rs, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(rs, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    enum MHD_Result rc = MHD_queue_response(conn, MHD_HTTP_OK, rs);
    MHD_destroy_response(rs); /* stream_free runs when libmicrohttpd is done with it */
    return rc;
}

static enum MHD_Result do_route(struct srv_http *h, struct MHD_Connection *conn, enum route rt,
                                struct req *q)
{
    struct strbuf out = {0};
    char err[320];
    const char *body = q->body.s ? q->body.s : "";
    switch (rt) {
    case R_CHAT:
        return do_completion(h, conn, API_CHAT, q);
    case R_COMPLETIONS:
        return do_completion(h, conn, API_COMPLETION, q);
    case R_MODELS:
        api_models(&out, h->o.model_name, h->created);
        return send_json(conn, &out);
    case R_HEALTH:
        sb_adds(&out, "{\"status\":\"ok\"}");
        return send_json(conn, &out);
    case R_TOKENIZE: {
        char *text;
        bool special;
        if (api_parse_tokenize(body, q->body.n, &text, &special, err, sizeof err) != 0)
            return send_error(conn, 400, err, NULL);
        int32_t *ids;
        int n = srv_tokenize(h->s, text, special, &ids);
        free(text);
        if (n < 0) return send_error(conn, 500, "tokenizing failed", NULL);
        api_tokens(&out, ids, (size_t)n);
        free(ids);
        return send_json(conn, &out);
    }
    case R_DETOKENIZE: {
        int32_t *ids;
        size_t n, bad;
        if (api_parse_detokenize(body, q->body.n, &ids, &n, err, sizeof err) != 0)
            return send_error(conn, 400, err, NULL);
        struct strbuf text = {0};
        int rc = srv_detokenize(h->s, ids, n, &text, &bad);
        if (rc != 0) snprintf(err, sizeof err, "tokens[%zu] = %d is not in the vocabulary", bad,
                              ids[bad]);
        free(ids);
        if (rc != 0) {
            sb_free(&text);
            return send_error(conn, 400, err, NULL);
        }
        api_content(&out, text.s, text.n);
        sb_free(&text);
        return send_json(conn, &out);
    }
    }
    return send_error(conn, 500, "unknown route", NULL);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload, size_t *upload_size, void **con_cls)
{
    (void)version;
    struct srv_http *h = cls;
    struct req *q = *con_cls;
    size_t rt = 0;
    while (rt < sizeof routes / sizeof routes[0] && strcmp(url, routes[rt].path)) rt++;
    if (!q) { /* the headers: answer what needs no body at once */
        char msg[160];
        if (rt == sizeof routes / sizeof routes[0]) {
            snprintf(msg, sizeof msg, "no route %.100s", url);
            return send_error(conn, 404, msg, NULL);
        }
        if (strcmp(method, routes[rt].method)) {
            snprintf(msg, sizeof msg, "%.100s takes %s, not %.16s", url, routes[rt].method,
                     method);
            return send_error(conn, 405, msg, routes[rt].method);
        }
        if (h->o.api_key && rt != R_HEALTH && !key_ok(conn, h->o.api_key))
            return send_error(conn, 401, "a missing or wrong API key (Authorization: Bearer "
                              "KEY)", NULL);
        const char *cl =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > h->o.max_body) {
            snprintf(msg, sizeof msg, "the request body is larger than %zu bytes",
                     h->o.max_body);
            return send_error(conn, 413, msg, NULL);
        }
        if (!(q = calloc(1, sizeof *q))) return MHD_NO;
        *con_cls = q;
        atomic_fetch_add(&h->in_flight, 1);
        return MHD_YES;
    }
    if (*upload_size) {
        if (!q->too_big && q->body.n + *upload_size > h->o.max_body) {
            q->too_big = true;
            sb_free(&q->body);
        }
        if (!q->too_big) sb_add(&q->body, upload, *upload_size);
        *upload_size = 0;
        return q->body.oom ? MHD_NO : MHD_YES;
    }
    if (q->too_big) {
        char msg[96];
        snprintf(msg, sizeof msg, "the request body is larger than %zu bytes", h->o.max_body);
        return send_error(conn, 413, msg, NULL);
    }
    return do_route(h, conn, (enum route)rt, q);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)conn;
    (void)toe;
    struct srv_http *h = cls;
    struct req *q = *con_cls;
    if (!q) return;
    atomic_fetch_sub(&h->in_flight, 1);
    sb_free(&q->body);
    free(q);
    *con_cls = NULL;
}

struct srv_http *srv_http_start(struct srv *s, const struct srv_http_opts *o, char *err,
                                size_t errlen)
{
    _Alignas(16) unsigned char sa[128];
    size_t salen;
    int fam = plat_sockaddr(o->host, o->port, sa, &salen, err, errlen);
    if (fam < 0) return NULL;
    struct srv_http *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "out of host memory");
        return NULL;
    }
    h->s = s;
    h->o = *o;
    h->created = (long)time(NULL);
    atomic_init(&h->next_id, 1);
    atomic_init(&h->in_flight, 0);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_POLL | MHD_USE_ITC | (fam == 6 ? MHD_USE_IPv6 : 0);
    h->d = MHD_start_daemon(flags, o->port, NULL, NULL, on_request, h,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)sa,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)256,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)600, MHD_OPTION_END);
    if (!h->d) {
        snprintf(err, errlen, "cannot listen on %s port %u (in use, or not an address here?)",
                 o->host, (unsigned)o->port);
        free(h);
        return NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_LISTEN_FD);
    h->port = di ? plat_socket_port(di->listen_fd) : o->port;
    return h;
}

uint16_t srv_http_port(const struct srv_http *h) { return h->port; }

void srv_http_stop(struct srv_http *h)
{
    if (!h) return;
    /* no new connections; the requests under way get their replies (503 after srv_shutdown)
     * for up to 2 s before the connections are closed */
    MHD_socket ls = MHD_quiesce_daemon(h->d);
    for (int i = 0; i < 200 && atomic_load(&h->in_flight) > 0; i++) plat_sleep_ms(10);
    MHD_stop_daemon(h->d);
    if (ls != MHD_INVALID_SOCKET) plat_socket_close(ls);
    free(h);
}

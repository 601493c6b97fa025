/* serve_api.c: the JSON of `nibble serve` (OpenAI's chat/completions and completions shapes,
 * llama-server's /tokenize and /detokenize) through cJSON. Unknown fields are ignored; a field
 * of the wrong type or out of range is an error naming it. Text sent back is UTF-8: an ill-formed
 * byte the model produced becomes U+FFFD. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chatfmt.h"
#include "serve.h"

static cJSON *parse(const char *body, size_t n, char *err, size_t errlen)
{
    if (!utf8_valid(body, n)) {
        snprintf(err, errlen, "the request body is not valid UTF-8");
        return NULL;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, n + 1, &end, 1); /* body[n] is the NUL */
    if (!root) {
        size_t at = end && end >= body ? (size_t)(end - body) : 0;
        snprintf(err, errlen, "malformed JSON in the request body (near byte %zu)", at);
        return NULL;
    }
    if (!cJSON_IsObject(root)) {
        snprintf(err, errlen, "the request body must be a JSON object");
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

/* A whole number in [lo, hi]: 0 (stored), 1 when absent or null, -1 with a message. */
static int get_int(const cJSON *o, const char *name, double lo, double hi, double *out, char *err,
                   size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v || cJSON_IsNull(v)) return 1;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo ||
        v->valuedouble > hi) {
        snprintf(err, errlen, "'%s' must be a whole number from %.0f to %.0f", name, lo, hi);
        return -1;
    }
    *out = v->valuedouble;
    return 0;
}

static int get_num(const cJSON *o, const char *name, double lo, double hi, double *out, char *err,
                   size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v || cJSON_IsNull(v)) return 1;
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi)) {
        snprintf(err, errlen, "'%s' must be a number from %g to %g", name, lo, hi);
        return -1;
    }
    *out = v->valuedouble;
    return 0;
}

static int get_bool(const cJSON *o, const char *name, bool *out, char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v || cJSON_IsNull(v)) return 1;
    if (!cJSON_IsBool(v)) {
        snprintf(err, errlen, "'%s' must be true or false", name);
        return -1;
    }
    *out = cJSON_IsTrue(v);
    return 0;
}

/* The text of a message's content: a string, or an array of {"type":"text","text":...} parts. */
static int content_text(const cJSON *c, struct strbuf *out, int idx, char *err, size_t errlen)
{
    if (!c || cJSON_IsNull(c)) return 0;
    if (cJSON_IsString(c)) {
        sb_adds(out, c->valuestring);
        return 0;
    }
    if (cJSON_IsArray(c)) {
        const cJSON *p;
        cJSON_ArrayForEach(p, c)
        {
            const cJSON *type = cJSON_GetObjectItemCaseSensitive(p, "type");
            const cJSON *text = cJSON_GetObjectItemCaseSensitive(p, "text");
            if (!cJSON_IsObject(p) || !cJSON_IsString(type) || strcmp(type->valuestring, "text") ||
                !cJSON_IsString(text)) {
                snprintf(err, errlen, "messages[%d].content: only text parts "
                         "({\"type\":\"text\",\"text\":\"...\"}) are supported", idx);
                return -1;
            }
            sb_adds(out, text->valuestring);
        }
        return 0;
    }
    snprintf(err, errlen, "messages[%d].content must be a string or an array of text parts", idx);
    return -1;
}

/* messages -> the Gemma 4 turn format, ending with the opening of the model's reply. */
static int chat_prompt(const cJSON *root, struct strbuf *prompt, char *err, size_t errlen)
{
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(root, "messages");
    if (!msgs) {
        snprintf(err, errlen, "'messages' is required");
        return -1;
    }
    if (!cJSON_IsArray(msgs) || cJSON_GetArraySize(msgs) == 0) {
        snprintf(err, errlen, "'messages' must be a non-empty array");
        return -1;
    }
    int i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, msgs)
    {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        if (!cJSON_IsObject(m) || !cJSON_IsString(role)) {
            snprintf(err, errlen, "messages[%d] must be an object with a string 'role'", i);
            return -1;
        }
        const char *r = role->valuestring, *turn;
        if (!strcmp(r, "system") || !strcmp(r, "developer"))
            turn = "system";
        else if (!strcmp(r, "user"))
            turn = "user";
        else if (!strcmp(r, "assistant"))
            turn = "model";
        else {
            snprintf(err, errlen, "messages[%d].role '%.40s' is not system, developer, user or "
                     "assistant", i, r);
            return -1;
        }
        struct strbuf text = {0};
        if (content_text(cJSON_GetObjectItemCaseSensitive(m, "content"), &text, i, err,
                         errlen) != 0) {
            sb_free(&text);
            return -1;
        }
        chatfmt_turn(prompt, turn, text.s ? text.s : "", text.n);
        sb_free(&text);
        i++;
    }
    sb_adds(prompt, CHATFMT_REPLY);
    return 0;
}

static int add_stop(struct api_req *r, const cJSON *e, char *err, size_t errlen)
{
    if (!cJSON_IsString(e)) {
        snprintf(err, errlen, "'stop' must be a string or an array of strings");
        return -1;
    }
    if (!e->valuestring[0]) return 0; /* an empty stop never matches */
    if (!(r->stop[r->n_stop] = strdup(e->valuestring))) {
        snprintf(err, errlen, "out of host memory");
        return -1;
    }
    r->n_stop++;
    return 0;
}

static int get_stop(const cJSON *root, struct api_req *r, char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "stop"), *e;
    if (!v || cJSON_IsNull(v)) return 0;
    if (cJSON_IsString(v)) return add_stop(r, v, err, errlen);
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) > SRV_MAX_STOP) {
        snprintf(err, errlen, "'stop' must be a string or an array of at most %d strings",
                 SRV_MAX_STOP);
        return -1;
    }
    cJSON_ArrayForEach(e, v)
    {
        if (add_stop(r, e, err, errlen) != 0) return -1;
    }
    return 0;
}

int api_parse(enum api_kind kind, const char *body, size_t n, struct api_req *r, char *err,
              size_t errlen)
{
    memset(r, 0, sizeof *r);
    r->kind = kind;
    r->sp = nibble_sampler_default_params();
    cJSON *root = parse(body, n, err, errlen);
    if (!root) return -1;
    int rc = -1;
    double d;
    int k;
    if (kind == API_CHAT) {
        if (chat_prompt(root, &r->prompt, err, errlen) != 0) goto out;
    } else {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "prompt");
        if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1) p = cJSON_GetArrayItem(p, 0);
        if (!p) {
            snprintf(err, errlen, "'prompt' is required");
            goto out;
        }
        if (!cJSON_IsString(p)) {
            snprintf(err, errlen, "'prompt' must be a string (or an array of one string)");
            goto out;
        }
        sb_adds(&r->prompt, p->valuestring);
        if (!r->prompt.s) sb_adds(&r->prompt, "");
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (model && !cJSON_IsString(model) && !cJSON_IsNull(model)) {
        snprintf(err, errlen, "'model' must be a string");
        goto out;
    }
    if (cJSON_IsString(model)) snprintf(r->model, sizeof r->model, "%s", model->valuestring);
    if ((k = get_int(root, "n", 1, 1, &d, err, errlen)) < 0) {
        snprintf(err, errlen, "'n' must be 1 (one choice per request)");
        goto out;
    }
    const char *mt = cJSON_GetObjectItemCaseSensitive(root, "max_completion_tokens")
                         ? "max_completion_tokens"
                         : "max_tokens";
    if ((k = get_int(root, mt, 1, 1 << 30, &d, err, errlen)) < 0) goto out;
    if (k == 0) r->max_tokens = (uint32_t)d;
    if ((k = get_num(root, "temperature", 0, 1e6, &d, err, errlen)) < 0) goto out;
    if (k == 0) r->sp.temp = (float)d;
    if ((k = get_num(root, "top_p", 0, 1, &d, err, errlen)) < 0) goto out;
    if (k == 0) r->sp.top_p = (float)d;
    if ((k = get_int(root, "top_k", 0, 2147483647.0, &d, err, errlen)) < 0) goto out;
    if (k == 0) r->sp.top_k = (int)d;
    if ((k = get_int(root, "seed", -9223372036854775808.0, 18446744073709551615.0, &d, err,
                     errlen)) < 0)
        goto out;
    if (k == 0) r->sp.seed = d < 0 ? (uint64_t)(int64_t)d : d >= 18446744073709551615.0
                                                                ? UINT64_MAX
                                                                : (uint64_t)d;
    if (get_bool(root, "stream", &r->stream, err, errlen) < 0) goto out;
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(root, "stream_options");
    if (so && !cJSON_IsNull(so)) {
        if (!cJSON_IsObject(so)) {
            snprintf(err, errlen, "'stream_options' must be an object");
            goto out;
        }
        if (get_bool(so, "include_usage", &r->include_usage, err, errlen) < 0) goto out;
    }
    if (get_stop(root, r, err, errlen) != 0) goto out;
    if (nibble_sampler_check(&r->sp, err, errlen) != 0) goto out;
    if (r->prompt.oom) {
        snprintf(err, errlen, "out of host memory");
        goto out;
    }
    rc = 0;
out:
    cJSON_Delete(root);
    if (rc) api_req_free(r);
    return rc;
}

void api_req_free(struct api_req *r)
{
    sb_free(&r->prompt);
    for (int i = 0; i < r->n_stop; i++)
        free(r->stop[i]);
    r->n_stop = 0;
}

/* Appends the printed JSON of o (deleted) to out. */
static void emit(struct strbuf *out, cJSON *o)
{
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    if (s)
        sb_adds(out, s);
    else
        out->oom = true;
    free(s);
    cJSON_Delete(o);
}

/* A string from bytes that may be ill-formed UTF-8. */
static cJSON *text_item(const char *text, size_t n)
{
    struct strbuf b = {0};
    sb_add_utf8(&b, text ? text : "", n);
    cJSON *s = cJSON_CreateString(b.s ? b.s : "");
    sb_free(&b);
    return s;
}

void api_error(struct strbuf *out, int status, const char *msg)
{
    const char *type = status == 401   ? "authentication_error"
                       : status == 404 ? "not_found_error"
                       : status == 503 ? "unavailable_error"
                       : status >= 500 ? "server_error"
                                       : "invalid_request_error";
    cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddItemToObject(e, "message", text_item(msg, strlen(msg)));
    cJSON_AddStringToObject(e, "type", type);
    cJSON_AddNumberToObject(e, "code", status);
    emit(out, o);
}

static void add_usage(cJSON *o, const struct srv_view *v)
{
    cJSON *u = cJSON_AddObjectToObject(o, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", v->n_prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", v->n_gen);
    cJSON_AddNumberToObject(u, "total_tokens", (double)v->n_prompt + v->n_gen);
    cJSON *d = cJSON_AddObjectToObject(u, "prompt_tokens_details");
    cJSON_AddNumberToObject(d, "cached_tokens", v->n_cached);
}

static cJSON *head(const struct api_req *r, const char *id, long created, bool chunk)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "object", r->kind == API_COMPLETION ? "text_completion"
                                         : chunk                  ? "chat.completion.chunk"
                                                                  : "chat.completion");
    cJSON_AddNumberToObject(o, "created", (double)created);
    cJSON_AddItemToObject(o, "model", text_item(r->model, strlen(r->model)));
    return o;
}

void api_reply(struct strbuf *out, const struct api_req *r, const char *id, long created,
               const char *text, size_t n, const struct srv_view *v)
{
    cJSON *o = head(r, id, created, false);
    cJSON *ch = cJSON_AddArrayToObject(o, "choices"), *c = cJSON_CreateObject();
    cJSON_AddItemToArray(ch, c);
    cJSON_AddNumberToObject(c, "index", 0);
    if (r->kind == API_CHAT) {
        cJSON *msg = cJSON_AddObjectToObject(c, "message");
        cJSON_AddStringToObject(msg, "role", "assistant");
        cJSON_AddItemToObject(msg, "content", text_item(text, n));
    } else {
        cJSON_AddItemToObject(c, "text", text_item(text, n));
        cJSON_AddNullToObject(c, "logprobs");
    }
    cJSON_AddStringToObject(c, "finish_reason", v->finish ? v->finish : "stop");
    add_usage(o, v);
    emit(out, o);
}

void api_chunk(struct strbuf *out, const struct api_req *r, const char *id, long created,
               const char *text, size_t n, bool first, const struct srv_view *v)
{
    cJSON *o = head(r, id, created, true);
    cJSON *ch = cJSON_AddArrayToObject(o, "choices"), *c = cJSON_CreateObject();
    cJSON_AddItemToArray(ch, c);
    cJSON_AddNumberToObject(c, "index", 0);
    if (r->kind == API_CHAT) {
        cJSON *d = cJSON_AddObjectToObject(c, "delta");
        if (first) cJSON_AddStringToObject(d, "role", "assistant");
        if (!v || n) cJSON_AddItemToObject(d, "content", text_item(text, n));
    } else {
        cJSON_AddItemToObject(c, "text", text_item(text, n));
        cJSON_AddNullToObject(c, "logprobs");
    }
    if (v)
        cJSON_AddStringToObject(c, "finish_reason", v->finish ? v->finish : "stop");
    else
        cJSON_AddNullToObject(c, "finish_reason");
    sb_adds(out, "data: ");
    emit(out, o);
    sb_adds(out, "\n\n");
    if (!v) return;
    if (r->include_usage) {
        cJSON *u = head(r, id, created, true);
        cJSON_AddArrayToObject(u, "choices");
        add_usage(u, v);
        sb_adds(out, "data: ");
        emit(out, u);
        sb_adds(out, "\n\n");
    }
    sb_adds(out, "data: [DONE]\n\n");
}

void api_models(struct strbuf *out, const char *name, long created)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON *d = cJSON_AddArrayToObject(o, "data"), *m = cJSON_CreateObject();
    cJSON_AddItemToArray(d, m);
    cJSON_AddStringToObject(m, "id", name);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)created);
    cJSON_AddStringToObject(m, "owned_by", "nibble");
    emit(out, o);
}

int api_parse_tokenize(const char *body, size_t n, char **text, bool *add_special, char *err,
                       size_t errlen)
{
    *text = NULL;
    *add_special = false;
    cJSON *root = parse(body, n, err, errlen);
    if (!root) return -1;
    int rc = -1;
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(root, "content");
    if (!cJSON_IsString(c))
        snprintf(err, errlen, "'content' (a string) is required");
    else if (get_bool(root, "add_special", add_special, err, errlen) >= 0 &&
             !(*text = strdup(c->valuestring)))
        snprintf(err, errlen, "out of host memory");
    else if (*text)
        rc = 0;
    cJSON_Delete(root);
    return rc;
}

int api_parse_detokenize(const char *body, size_t n, int32_t **ids, size_t *n_ids, char *err,
                         size_t errlen)
{
    *ids = NULL;
    *n_ids = 0;
    cJSON *root = parse(body, n, err, errlen);
    if (!root) return -1;
    int rc = -1;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "tokens"), *e;
    if (!cJSON_IsArray(t)) {
        snprintf(err, errlen, "'tokens' (an array of token ids) is required");
        goto out;
    }
    *ids = malloc(((size_t)cJSON_GetArraySize(t) + 1) * sizeof **ids);
    if (!*ids) {
        snprintf(err, errlen, "out of host memory");
        goto out;
    }
    cJSON_ArrayForEach(e, t)
    {
        if (!cJSON_IsNumber(e) || e->valuedouble != floor(e->valuedouble) || e->valuedouble < 0 ||
            e->valuedouble > 2147483647.0) {
            snprintf(err, errlen, "tokens[%zu] is not a token id", *n_ids);
            goto out;
        }
        (*ids)[(*n_ids)++] = (int32_t)e->valuedouble;
    }
    rc = 0;
out:
    if (rc) {
        free(*ids);
        *ids = NULL;
    }
    cJSON_Delete(root);
    return rc;
}

void api_tokens(struct strbuf *out, const int32_t *ids, size_t n)
{
    sb_adds(out, "{\"tokens\":[");
    for (size_t i = 0; i < n; i++)
        sb_printf(out, "%s%d", i ? "," : "", ids[i]);
    sb_adds(out, "]}");
}

void api_content(struct strbuf *out, const char *text, size_t n)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "content", text_item(text, n));
    emit(out, o);
}

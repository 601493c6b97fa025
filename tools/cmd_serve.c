/* nibble serve [-m MODEL] [--host 127.0.0.1] [--port 8080] [--parallel N] [--api-key KEY] [-c N]
 *              [--max-body BYTES]
 *
 * An OpenAI-compatible HTTP server (see serve.h). It binds to loopback unless --host says
 * otherwise, prints "nibble serve: listening on http://HOST:PORT" on stderr once it accepts
 * requests (--port 0 takes a free port and names it there), and stops cleanly on SIGINT or
 * SIGTERM: queued and running requests are answered 503, connections closed, exit status 0. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cmds.h"
#include "nibble.h"
#include "platform.h"

#ifndef NB_DEFAULT_MODEL
#define NB_DEFAULT_MODEL "models/default.gguf"
#endif

#define USAGE                                                                                      \
    "nibble serve [-m MODEL] [--host 127.0.0.1] [--port 8080] [--parallel N] [--api-key KEY] "    \
    "[-c CTX] [--max-body BYTES]"

#ifndef NB_HAVE_SERVE
int cmd_serve(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "nibble serve: this nibble was built without libmicrohttpd and cJSON "
            "(install libmicrohttpd-dev and libcjson-dev, then configure again)\n");
    return 1;
}
#else
#include "serve.h"

/* The model's name in /v1/models and replies: the file name without folders and .gguf. */
static void model_name(const char *path, char *out, size_t n)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    size_t len = strlen(b);
    if (len > 5 && !strcmp(b + len - 5, ".gguf")) len -= 5;
    snprintf(out, n, "%.*s", (int)len, b);
}

int cmd_serve(int argc, char **argv)
{
    const char *model = NULL, *host = "127.0.0.1", *key = NULL;
    uint32_t port = 8080, par = 1, ctx = 0, max_body = 4u << 20;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int bad = 0;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: " USAGE "\n");
            return 0;
        }
        static const char *const flags[] = {"-m",        "--host", "--port",    "--parallel",
                                            "--api-key", "-c",     "--max-body"};
        if (!(v = args_flag_value("serve", flags, ARGS_COUNT(flags), argc, argv, &i, USAGE)))
            return 2;
        if (!strcmp(a, "-m"))
            model = v;
        else if (!strcmp(a, "--host"))
            host = v;
        else if (!strcmp(a, "--api-key"))
            key = v;
        else if (!strcmp(a, "--port"))
            bad = args_u32("serve", a, v, 0, 65535, &port);
        else if (!strcmp(a, "--parallel"))
            bad = args_u32("serve", a, v, 1, 64, &par);
        else if (!strcmp(a, "-c"))
            bad = args_u32("serve", a, v, 1, 1u << 24, &ctx);
        else
            bad = args_u32("serve", a, v, 1024, 1u << 30, &max_body);
        if (bad) return 2;
    }
    if (key && !*key) {
        fprintf(stderr, "nibble serve: --api-key is empty\n");
        return 2;
    }
    if (!model) model = NB_DEFAULT_MODEL;
    if (plat_interrupt_catch() != 0) {
        fprintf(stderr, "nibble serve: cannot catch SIGINT/SIGTERM\n");
        return 1;
    }
    char err[512], name[128];
    model_name(model, name, sizeof name);
    struct nibble_model *m = nibble_model_load(model, NULL, err, sizeof err);
    if (!m) {
        fprintf(stderr, "nibble serve: %s\n", err);
        return 1;
    }
    fprintf(stderr, "device: %s\n", nibble_device_line(m));
    int rc = 1;
    struct srv_http *h = NULL;
    struct srv *s = srv_create(m, par, args_ctx("serve", ctx, (uint32_t)nibble_n_ctx_train(m)),
                               err, sizeof err);
    if (!s) {
        fprintf(stderr, "nibble serve: %s\n", err);
        goto done;
    }
    struct srv_http_opts o = {.host = host, .port = (uint16_t)port, .api_key = key,
                              .model_name = name, .max_body = max_body};
    if (!(h = srv_http_start(s, &o, err, sizeof err))) {
        fprintf(stderr, "nibble serve: %s\n", err);
        goto done;
    }
    const char *br = strchr(host, ':') ? "[" : "", *bk = strchr(host, ':') ? "]" : "";
    fprintf(stderr, "nibble serve: %s, %u slot%s of %u tokens, listening on http://%s%s%s:%u\n",
            name, par, par == 1 ? "" : "s", srv_n_ctx(s), br, host, bk,
            (unsigned)srv_http_port(h));
    while (plat_interrupts() == 0) plat_sleep_ms(100);
    fprintf(stderr, "nibble serve: stopping\n");
    rc = 0;
done:
    if (s) srv_shutdown(s); /* waiting requests answered 503 */
    srv_http_stop(h);       /* connection threads end */
    srv_destroy(s);
    nibble_model_free(m);
    return rc;
}
#endif

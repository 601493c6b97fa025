/* nibble chat [-m MODEL] [--system TEXT] [-n N] [--temp T] [--top-k K] [--top-p P] [--seed S]
 *             [-c CTX]
 *
 * An interactive session in the Gemma 4 turn format (tools/chatfmt.h). Each line read is a user
 * turn; the reply streams to stdout. The KV cache is kept across turns: a turn prefills only its
 * own tokens (the previous reply's "<turn|>\n", the user turn and the opening of the reply), and
 * a line on stderr says how many, how many were cached, and the speeds:
 *     [prefill 14 tokens (53 cached), 310.2 tok/s | reply 40 tokens, 150.3 tok/s]
 * Ctrl-C stops the current reply (what was said stays in the session); at the prompt it only
 * reminds how to leave. End of input (Ctrl-D, or the end of a pipe) ends the session.
 * Commands: /clear (forget the turns, keep the system prompt), /save FILE (the transcript in the
 * turn format), /load FILE (replaces the session by a saved transcript and reads it in),
 * /help, /quit.
 * A full context: before a turn that would not fit (with room for a reply of min(N, CTX/4)
 * tokens) the oldest turns are dropped, a user turn with its reply at a time, the system prompt
 * kept, and the rest is read in again, with a line saying so; a reply that reaches the end of the
 * context is cut there. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "chatfmt.h"
#include "cmds.h"
#include "nibble.h"
#include "platform.h"
#include "strbuf.h"

#ifndef NB_DEFAULT_MODEL
#define NB_DEFAULT_MODEL "models/default.gguf"
#endif

#define USAGE                                                                                      \
    "nibble chat [-m MODEL] [--system TEXT] [-n N] [--temp T] [--top-k K] [--top-p P] "          \
    "[--seed S] [-c CTX]"

struct turn {
    char role[8]; /* "system", "user", "model" */
    char *text;
};

struct chat {
    struct nibble_model *m;
    struct nibble_context *c;
    struct nibble_sampler sp;
    uint32_t n_reply;      /* most tokens of one reply */
    struct turn *turns;    /* [n_turns] the transcript; a system turn only first */
    size_t n_turns, cap;
    bool open_reply;       /* the cache ends inside a reply: "<turn|>\n" goes first next time */
    int32_t pending;       /* a reply's last token, shown but not in the cache (-1: none) */
};

static void turns_clear(struct chat *ch, size_t from)
{
    for (size_t i = from; i < ch->n_turns; i++)
        free(ch->turns[i].text);
    ch->n_turns = from;
}

static int turn_add(struct chat *ch, const char *role, const char *text, size_t n)
{
    if (ch->n_turns == ch->cap) {
        size_t cap = ch->cap ? 2 * ch->cap : 16;
        struct turn *t = realloc(ch->turns, cap * sizeof *t);
        if (!t) return -1;
        ch->turns = t;
        ch->cap = cap;
    }
    struct turn *t = &ch->turns[ch->n_turns];
    snprintf(t->role, sizeof t->role, "%s", role);
    if (!(t->text = malloc(n + 1))) return -1;
    memcpy(t->text, text, n);
    t->text[n] = 0;
    ch->n_turns++;
    return 0;
}

static size_t n_system(const struct chat *ch)
{
    return ch->n_turns && !strcmp(ch->turns[0].role, "system") ? 1 : 0;
}

/* The transcript from turn `from` on (the system turn always) in the turn format. */
static void transcript(const struct chat *ch, size_t from, struct strbuf *b)
{
    for (size_t i = 0; i < ch->n_turns; i++)
        if (i < n_system(ch) || i >= from)
            chatfmt_turn(b, ch->turns[i].role, ch->turns[i].text, strlen(ch->turns[i].text));
}

/* Tokenizes text (malloc'd ids, count returned; -1 on failure). */
static int tokenize(struct chat *ch, const char *text, bool bos, int32_t **ids)
{
    int n = nibble_tokenize(ch->m, text, NULL, 0, bos);
    *ids = n >= 0 ? malloc(((size_t)n + 2) * sizeof **ids) : NULL;
    if (!*ids) return -1;
    nibble_tokenize(ch->m, text, *ids + 1, n, bos); /* room for a pending id in front */
    return n;
}

static int out(const char *p, size_t n)
{
    errno = 0;
    if (fwrite(p, 1, n, stdout) == n && fflush(stdout) == 0) return 0;
    fprintf(stderr, "\nnibble chat: writing the output failed: %s\n",
            errno ? strerror(errno) : "write error");
    return -1;
}

/* Reads the whole transcript in again from turn `from` on (after a reset), with `extra` (the
 * new user turn and the reply's opening, or "") at the end. Returns the ids evaluated, -1. */
static int reread(struct chat *ch, size_t from, const char *extra, double *secs)
{
    struct strbuf b = {0};
    transcript(ch, from, &b);
    sb_adds(&b, extra);
    int32_t *ids;
    int n = b.oom ? -1 : tokenize(ch, b.s ? b.s : "", true, &ids);
    sb_free(&b);
    if (n < 0) return -1;
    char err[256];
    nibble_reset(ch->c);
    uint64_t t0 = plat_now_ns();
    int rc = n ? nibble_eval(ch->c, ids + 1, n, false, err, sizeof err) : 0;
    *secs = (plat_now_ns() - t0) / 1e9;
    free(ids);
    if (rc) {
        fprintf(stderr, "nibble chat: %s\n", err);
        return -1;
    }
    ch->open_reply = false;
    ch->pending = -1;
    return n;
}

/* One user turn: prefill, then the streamed reply. 0, or -1 on a failure that ends the session. */
static int chat_turn(struct chat *ch, const char *line)
{
    unsigned irq = plat_interrupts(); /* a Ctrl-C from here on stops this turn's reply */
    uint32_t n_ctx = nibble_n_ctx(ch->c), past = nibble_n_past(ch->c);
    uint32_t reserve = ch->n_reply < n_ctx / 4 ? ch->n_reply : n_ctx / 4;
    struct strbuf b = {0};
    if (past == 0) transcript(ch, 0, &b); /* a fresh cache: the system prompt first */
    if (ch->open_reply) sb_adds(&b, CHATFMT_CLOSE);
    chatfmt_turn(&b, "user", line, strlen(line));
    sb_adds(&b, CHATFMT_REPLY);
    int32_t *ids = NULL;
    int n = b.oom ? -1 : tokenize(ch, b.s, past == 0, &ids);
    sb_free(&b);
    if (n < 0) {
        fprintf(stderr, "nibble chat: tokenizing failed\n");
        return -1;
    }
    int32_t *first = ids + 1;
    if (ch->pending >= 0) { /* the last reply's last token goes in first */
        ids[0] = ch->pending;
        first = ids;
        n++;
    }
    char err[256];
    double secs;
    uint32_t cached = past;
    int n_pre = n;
    if (past + (uint32_t)n + reserve > n_ctx) {
        /* the context policy: drop the oldest turns (a user turn and its reply at a time), keep
         * the system prompt, read the rest in again */
        struct strbuf extra = {0};
        chatfmt_turn(&extra, "user", line, strlen(line));
        sb_adds(&extra, CHATFMT_REPLY);
        size_t from = n_system(ch), dropped = 0;
        for (;;) {
            struct strbuf all = {0};
            transcript(ch, from, &all);
            sb_adds(&all, extra.s);
            int k = nibble_tokenize(ch->m, all.s ? all.s : "", NULL, 0, true);
            sb_free(&all);
            if (k >= 0 && (uint32_t)k + reserve <= n_ctx) break;
            if (from >= ch->n_turns) {
                fprintf(stderr, "nibble chat: this turn is %d tokens: with the system prompt and "
                        "room for a reply it does not fit the context of %u tokens (-c)\n", n,
                        n_ctx);
                sb_free(&extra);
                free(ids);
                nibble_reset(ch->c); /* the next turn starts from the transcript */
                ch->open_reply = false;
                ch->pending = -1;
                return 0;
            }
            from++;
            dropped++;
            if (from < ch->n_turns && !strcmp(ch->turns[from].role, "model")) from++, dropped++;
        }
        free(ids);
        ids = NULL;
        /* drop them from the transcript */
        size_t s0 = n_system(ch);
        for (size_t i = s0; i < from; i++)
            free(ch->turns[i].text);
        memmove(ch->turns + s0, ch->turns + from, (ch->n_turns - from) * sizeof *ch->turns);
        ch->n_turns -= from - s0;
        n_pre = reread(ch, 0, extra.s, &secs);
        sb_free(&extra);
        if (n_pre < 0) return -1;
        fprintf(stderr, "[context full: dropped the %zu oldest turn%s, read %d tokens in again]\n",
                dropped, dropped == 1 ? "" : "s", n_pre);
        cached = 0;
    } else {
        uint64_t t0 = plat_now_ns();
        int rc = nibble_eval(ch->c, first, n, false, err, sizeof err);
        secs = (plat_now_ns() - t0) / 1e9;
        free(ids);
        if (rc) {
            fprintf(stderr, "nibble chat: %s\n", err);
            return -1;
        }
    }
    ch->pending = -1;
    ch->open_reply = true;
    if (turn_add(ch, "user", line, strlen(line)) != 0) return -1;

    /* the reply */
    struct strbuf reply = {0};
    uint32_t n_gen = 0;
    const char *why = NULL;
    uint64_t t1 = plat_now_ns();
    char piece[256];
    int rc = 0;
    for (;;) {
        if (plat_interrupts() != irq) {
            why = "stopped";
            break;
        }
        int32_t t = nibble_sample(ch->c, &ch->sp);
        if (t < 0) {
            fprintf(stderr, "\nnibble chat: sampling failed\n");
            rc = -1;
            break;
        }
        if (nibble_token_is_eog(ch->m, t)) break;
        int len = nibble_token_to_piece(ch->m, t, piece, sizeof piece);
        if (len > (int)sizeof piece - 1) len = sizeof piece - 1;
        if (len > 0) {
            sb_add(&reply, piece, (size_t)len);
            if (out(piece, (size_t)len) != 0) {
                rc = -1;
                break;
            }
        }
        n_gen++;
        if (n_gen >= ch->n_reply) {
            ch->pending = t;
            why = "reply cut at -n tokens";
            break;
        }
        if (nibble_n_past(ch->c) >= n_ctx) { /* shown, not evaluated: the next turn rereads */
            why = "context full: reply cut; the next turn drops the oldest turns";
            break;
        }
        if (nibble_eval(ch->c, &t, 1, false, err, sizeof err) != 0) {
            fprintf(stderr, "\nnibble chat: %s\n", err);
            rc = -1;
            break;
        }
    }
    double gsecs = (plat_now_ns() - t1) / 1e9;
    if (rc == 0 && out("\n", 1) != 0) rc = -1;
    if (turn_add(ch, "model", reply.s ? reply.s : "", reply.n) != 0) rc = -1;
    sb_free(&reply);
    if (why) fprintf(stderr, "[%s]\n", why);
    fprintf(stderr, "[prefill %d tokens (%u cached), %.1f tok/s | reply %u tokens, %.1f tok/s]\n",
            n_pre, cached, secs > 0 ? n_pre / secs : 0.0, n_gen, gsecs > 0 ? n_gen / gsecs : 0.0);
    return rc;
}

/* /save FILE: the transcript in the turn format, written whole or not at all. */
static void chat_save(struct chat *ch, const char *path)
{
    struct strbuf b = {0};
    transcript(ch, 0, &b);
    char err[512];
    struct plat_out o;
    if (b.oom || plat_out_open(&o, path, err, sizeof err) != 0) {
        fprintf(stderr, "nibble chat: /save: %s\n", b.oom ? "out of memory" : err);
    } else {
        int w = plat_out_write(&o, b.s ? b.s : "", b.n);
        if (plat_out_close(&o, w == 0, err, sizeof err) != 0)
            fprintf(stderr, "nibble chat: /save: %s\n", err);
        else
            fprintf(stderr, "[saved %zu turns to %s]\n", ch->n_turns, path);
    }
    sb_free(&b);
}

/* /load FILE: a transcript /save wrote replaces the session and is read in. */
static int chat_load(struct chat *ch, const char *path)
{
    char *data, err[512];
    size_t size;
    if (plat_read_file(path, 64u << 20, &data, &size, err, sizeof err) != 0) {
        fprintf(stderr, "nibble chat: /load: %s\n", err);
        return 0;
    }
    struct chat tmp = {0};
    const char *p = data, *end = data + size;
    int bad = 0;
    while (p < end && !bad) {
        size_t lo = strlen(CHATFMT_OPEN), lc = strlen(CHATFMT_CLOSE);
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if ((size_t)(end - p) < lo || memcmp(p, CHATFMT_OPEN, lo) || !nl) {
            bad = 1;
            break;
        }
        char role[8] = "";
        snprintf(role, sizeof role, "%.*s", (int)(nl - p - lo), p + lo);
        const char *q = nl + 1, *c = q;
        while (c + lc <= end && memcmp(c, CHATFMT_CLOSE, lc)) c++;
        bool known = !strcmp(role, "system") || !strcmp(role, "user") || !strcmp(role, "model");
        if (c + lc > end || !known || (!strcmp(role, "system") && tmp.n_turns) ||
            turn_add(&tmp, role, q, (size_t)(c - q)) != 0)
            bad = 1;
        p = c + lc;
    }
    free(data);
    if (bad) {
        fprintf(stderr, "nibble chat: /load: %s is not a transcript /save wrote\n", path);
        turns_clear(&tmp, 0);
        free(tmp.turns);
        return 0;
    }
    turns_clear(ch, 0);
    free(ch->turns);
    ch->turns = tmp.turns;
    ch->n_turns = tmp.n_turns;
    ch->cap = tmp.cap;
    double secs;
    int n = reread(ch, 0, "", &secs);
    if (n < 0) return -1;
    if ((uint32_t)n >= nibble_n_ctx(ch->c)) {
        fprintf(stderr, "nibble chat: /load: %d tokens do not fit the context of %u\n", n,
                nibble_n_ctx(ch->c));
        nibble_reset(ch->c);
        return 0;
    }
    fprintf(stderr, "[loaded %zu turns, read %d tokens in, %.1f tok/s]\n", ch->n_turns, n,
            secs > 0 ? n / secs : 0.0);
    return 0;
}

/* A line starting with '/': 1 to go on, 0 to end, -1 on failure. */
static int command(struct chat *ch, char *line)
{
    char *arg = strchr(line, ' ');
    if (arg) {
        *arg++ = 0;
        while (*arg == ' ') arg++;
    }
    if (!strcmp(line, "/quit") || !strcmp(line, "/exit")) return 0;
    if (!strcmp(line, "/clear")) {
        turns_clear(ch, n_system(ch));
        nibble_reset(ch->c);
        ch->open_reply = false;
        ch->pending = -1;
        fprintf(stderr, "[cleared]\n");
    } else if ((!strcmp(line, "/save") || !strcmp(line, "/load")) && (!arg || !*arg)) {
        fprintf(stderr, "nibble chat: %s needs a file name\n", line);
    } else if (!strcmp(line, "/save")) {
        chat_save(ch, arg);
    } else if (!strcmp(line, "/load")) {
        if (chat_load(ch, arg) != 0) return -1;
    } else {
        fprintf(stderr, "commands: /clear, /save FILE, /load FILE, /quit (or Ctrl-D); Ctrl-C "
                "stops a reply\n");
    }
    return 1;
}

int cmd_chat(int argc, char **argv)
{
    const char *model = NULL, *system = NULL;
    uint32_t n_reply = 512, ctx = 0, top_k = 40;
    double temp = 0.8, top_p = 0.95;
    uint64_t seed = 42;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int bad = 0;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: " USAGE "\n");
            return 0;
        }
        static const char *const flags[] = {"-m",      "--system", "-n",     "--temp",
                                            "--top-k", "--top-p",  "--seed", "-c"};
        if (!(v = args_flag_value("chat", flags, ARGS_COUNT(flags), argc, argv, &i, USAGE)))
            return 2;
        if (!strcmp(a, "-m"))
            model = v;
        else if (!strcmp(a, "--system"))
            system = v;
        else if (!strcmp(a, "-n"))
            bad = args_u32("chat", a, v, 1, 1u << 30, &n_reply);
        else if (!strcmp(a, "--temp"))
            bad = args_f64("chat", a, v, 0, 1e6, &temp);
        else if (!strcmp(a, "--top-k"))
            bad = args_u32("chat", a, v, 0, 0x7fffffff, &top_k);
        else if (!strcmp(a, "--top-p"))
            bad = args_f64("chat", a, v, 0, 1, &top_p);
        else if (!strcmp(a, "--seed"))
            bad = args_u64("chat", a, v, 0, UINT64_MAX, &seed);
        else
            bad = args_u32("chat", a, v, 16, 1u << 24, &ctx);
        if (bad) return 2;
    }
    if (!model) model = NB_DEFAULT_MODEL;
    if (plat_interrupt_catch() != 0) {
        fprintf(stderr, "nibble chat: cannot catch Ctrl-C\n");
        return 1;
    }
    char err[512];
    struct chat ch = {.pending = -1, .n_reply = n_reply};
    ch.sp = (struct nibble_sampler){(float)temp, (int)top_k, (float)top_p, seed};
    if (nibble_sampler_check(&ch.sp, err, sizeof err) != 0) {
        fprintf(stderr, "nibble chat: %s\n", err);
        return 2;
    }
    if (!(ch.m = nibble_model_load(model, NULL, err, sizeof err))) {
        fprintf(stderr, "nibble chat: %s\n", err);
        return 1;
    }
    int rc = 1;
    struct nibble_context_params cp = nibble_context_default_params();
    cp.n_ctx = args_ctx("chat", ctx, (uint32_t)nibble_n_ctx_train(ch.m));
    if (!(ch.c = nibble_context_create(ch.m, &cp, err, sizeof err))) {
        fprintf(stderr, "nibble chat: %s\n", err);
        goto done;
    }
    if (system && turn_add(&ch, "system", system, strlen(system)) != 0) goto done;
    bool tty = plat_is_terminal(0);
    if (tty)
        fprintf(stderr, "nibble chat: %s, a context of %u tokens; /help for commands, Ctrl-D "
                "ends\n", model, nibble_n_ctx(ch.c));
    char *line = NULL;
    size_t cap = 0;
    for (;;) {
        if (tty) fputs("> ", stdout), fflush(stdout);
        errno = 0;
        ssize_t len = getline(&line, &cap, stdin);
        if (len < 0) {
            if (errno == EINTR) { /* Ctrl-C at the prompt */
                clearerr(stdin);
                fprintf(stderr, "\n(Ctrl-D or /quit ends the session)\n");
                continue;
            }
            if (tty) fputc('\n', stdout);
            rc = 0;
            break;
        }
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (len == 0) continue;
        int k = line[0] == '/' ? command(&ch, line) : chat_turn(&ch, line) == 0 ? 1 : -1;
        if (k <= 0) {
            rc = k < 0 ? 1 : 0;
            break;
        }
    }
    free(line);
done:
    turns_clear(&ch, 0);
    free(ch.turns);
    nibble_context_destroy(ch.c);
    nibble_model_free(ch.m);
    return rc;
}

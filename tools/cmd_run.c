/* nibble run -m MODEL -p PROMPT [-n N] [--temp T] [--top-k K] [--top-p P] [--seed S] [-c CTX]
 *            [-b BATCH] [--chat]
 *
 * Streams the generated text as it comes and ends with one line: prompt tokens and tok/s,
 * generated tokens and tok/s, peak device memory. Without -m it runs the model shipped in
 * models/default.gguf. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmds.h"
#include "nibble.h"
#include "platform.h"

#ifndef NB_DEFAULT_MODEL
#define NB_DEFAULT_MODEL "models/default.gguf"
#endif

static int usage(void)
{
    fprintf(stderr,
            "usage: nibble run [-m MODEL] -p PROMPT [-n N] [--temp T] [--top-k K] [--top-p P]\n"
            "                  [--seed S] [-c CTX] [-b BATCH] [--chat]\n");
    return 2;
}

/* Wraps the prompt in the Gemma 4 turn format (the tokenizer adds <bos>). */
static char *chat_wrap(const char *p)
{
    static const char pre[] = "<|turn>user\n", post[] = "<turn|>\n<|turn>model\n";
    size_t n = strlen(pre) + strlen(p) + strlen(post) + 1;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s%s%s", pre, p, post);
    return s;
}

static int parse_num(const char *s, double lo, double hi, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v >= lo && v <= hi)) return -1;
    *out = v;
    return 0;
}

int cmd_run(int argc, char **argv)
{
    const char *model = NULL, *prompt = NULL;
    double n_gen = 128, temp = 0.8, top_k = 40, top_p = 0.95, seed = 42, ctx = 0, batch = 512;
    bool chat = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (!strcmp(a, "-m") && v)
            model = argv[++i];
        else if (!strcmp(a, "-p") && v)
            prompt = argv[++i];
        else if (!strcmp(a, "-n") && v)
            bad = parse_num(argv[++i], 0, 1e9, &n_gen);
        else if (!strcmp(a, "--temp") && v)
            bad = parse_num(argv[++i], 0, 100, &temp);
        else if (!strcmp(a, "--top-k") && v)
            bad = parse_num(argv[++i], 0, 1e9, &top_k);
        else if (!strcmp(a, "--top-p") && v)
            bad = parse_num(argv[++i], 0, 1, &top_p);
        else if (!strcmp(a, "--seed") && v)
            bad = parse_num(argv[++i], 0, 4294967295.0, &seed);
        else if (!strcmp(a, "-c") && v)
            bad = parse_num(argv[++i], 1, 1 << 24, &ctx);
        else if (!strcmp(a, "-b") && v)
            bad = parse_num(argv[++i], 1, 1 << 16, &batch);
        else if (!strcmp(a, "--chat"))
            chat = true;
        else
            return usage();
        if (bad) {
            fprintf(stderr, "nibble run: bad value for %s: '%s'\n", a, argv[i]);
            return 2;
        }
    }
    if (!prompt) return usage();
    if (!model) model = NB_DEFAULT_MODEL;

    char err[512];
    struct nibble_model *m = nibble_model_load(model, NULL, err, sizeof err);
    if (!m) {
        fprintf(stderr, "nibble run: %s\n", err);
        return 1;
    }
    fprintf(stderr, "device: %s\n", nibble_device_line(m));
    char *text = chat ? chat_wrap(prompt) : NULL;
    const char *in = text ? text : prompt;
    int n_prompt = nibble_tokenize(m, in, NULL, 0, true);
    int32_t *ids = n_prompt > 0 ? malloc((size_t)n_prompt * sizeof *ids) : NULL;
    struct nibble_context *c = NULL;
    int rc = 1;
    if (!ids) {
        fprintf(stderr, "nibble run: could not tokenize the prompt\n");
        goto done;
    }
    nibble_tokenize(m, in, ids, n_prompt, true);

    struct nibble_context_params cp = nibble_context_default_params();
    cp.n_ctx = (uint32_t)ctx;
    cp.n_batch = (uint32_t)batch;
    c = nibble_context_create(m, &cp, err, sizeof err);
    if (!c) {
        fprintf(stderr, "nibble run: %s\n", err);
        goto done;
    }
    if ((uint32_t)n_prompt >= nibble_n_ctx(c)) {
        fprintf(stderr, "nibble run: the prompt is %d tokens, longer than the context of %u\n",
                n_prompt, nibble_n_ctx(c));
        goto done;
    }
    /* echo the prompt as the model sees it */
    fputs(prompt, stdout);
    fflush(stdout);

    uint64_t t0 = plat_now_ns();
    if (nibble_eval(c, ids, n_prompt, false, err, sizeof err) != 0) {
        fprintf(stderr, "\nnibble run: %s\n", err);
        goto done;
    }
    uint64_t t1 = plat_now_ns();
    struct nibble_sampler sp = {(float)temp, (int)top_k, (float)top_p, (uint64_t)seed};
    int n_done = 0;
    char piece[256];
    while (n_done < (int)n_gen && nibble_n_past(c) < nibble_n_ctx(c)) {
        int32_t t = nibble_sample(c, &sp);
        if (nibble_token_is_eog(m, t)) break;
        int len = nibble_token_to_piece(m, t, piece, sizeof piece);
        if (len > 0) fwrite(piece, 1, (size_t)(len < (int)sizeof piece ? len : (int)sizeof piece),
                            stdout);
        fflush(stdout);
        n_done++;
        if (nibble_eval(c, &t, 1, false, err, sizeof err) != 0) {
            fprintf(stderr, "\nnibble run: %s\n", err);
            goto done;
        }
    }
    uint64_t t2 = plat_now_ns();
    uint64_t peak;
    nibble_device_bytes(m, &peak);
    double pp = n_prompt / ((t1 - t0) / 1e9), tg = n_done ? n_done / ((t2 - t1) / 1e9) : 0;
    printf("\n");
    fflush(stdout); /* the text's end before the stats line, also when stdout is a pipe */
    fprintf(stderr, "prompt: %d tokens, %.1f tok/s | generated: %d tokens, %.1f tok/s | "
            "peak device memory: %.1f MiB\n",
            n_prompt, pp, n_done, tg, peak / 1048576.0);
    rc = 0;
done:
    nibble_context_destroy(c);
    nibble_model_free(m);
    free(ids);
    free(text);
    return rc;
}

/* nibble perplexity -m MODEL -f TEXT [-c CTX]
 *
 * Perplexity as llama-perplexity computes it, so the two compare number for number: the whole
 * text is tokenized once (BOS first), cut into non-overlapping windows of CTX tokens; each
 * window starts with BOS (its first token replaced), runs in one pass with every row's logits
 * kept, and its second half is scored: the logits of position i predict token i+1 for
 * i in [CTX/2, CTX-1). Prints the running estimate per window and
 * "Final estimate: PPL = X +/- Y" (standard error of the mean log-likelihood, propagated).
 * TEXT may be a pipe (-f /dev/stdin): it is read to its end. CTX above the model's trained
 * context is clamped to it with a note. */
#include <math.h>
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

#define USAGE "nibble perplexity [-m MODEL] -f TEXT [-c CTX (default 512)]"

static int usage(void)
{
    fprintf(stderr, "usage: " USAGE "\n");
    return 2;
}

/* -log softmax(logits)[tok] in double precision */
static double nll_of(const float *lg, int n_vocab, int tok)
{
    double mx = lg[0];
    for (int v = 1; v < n_vocab; v++)
        if (lg[v] > mx) mx = lg[v];
    double se = 0;
    for (int v = 0; v < n_vocab; v++)
        se += exp(lg[v] - mx);
    return -(lg[tok] - mx - log(se));
}

int cmd_perplexity(int argc, char **argv)
{
    const char *model = NULL, *file = NULL;
    uint32_t ctx32 = 512;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (strcmp(a, "-m") && strcmp(a, "-f") && strcmp(a, "-c"))
            return args_unknown("perplexity", a, USAGE);
        if (!(v = args_value("perplexity", argc, argv, &i))) return 2;
        if (!strcmp(a, "-m"))
            model = v;
        else if (!strcmp(a, "-f"))
            file = v;
        else if (args_u32("perplexity", a, v, 4, 1u << 20, &ctx32) != 0)
            return 2;
    }
    if (!file) return usage();
    if (!model) model = NB_DEFAULT_MODEL;
    char err[512];
    char *text;
    size_t text_len;
    if (plat_read_file(file, (size_t)1 << 30, &text, &text_len, err, sizeof err) != 0) {
        fprintf(stderr, "nibble perplexity: %s\n", err);
        return 1;
    }
    if (text_len == 0) { /* also a FIFO that nothing writes to */
        fprintf(stderr, "nibble perplexity: %s is empty\n", file);
        free(text);
        return 1;
    }
    struct nibble_model *m = nibble_model_load(model, NULL, err, sizeof err);
    if (!m) {
        fprintf(stderr, "nibble perplexity: %s\n", err);
        free(text);
        return 1;
    }
    long ctx = args_ctx("perplexity", ctx32, (uint32_t)nibble_n_ctx_train(m));
    int rc = 1;
    struct nibble_context *c = NULL;
    int n = nibble_tokenize(m, text, NULL, 0, true);
    int32_t *ids = n > 0 ? malloc((size_t)n * sizeof *ids) : NULL;
    if (!ids) {
        fprintf(stderr, "nibble perplexity: could not tokenize %s\n", file);
        goto done;
    }
    nibble_tokenize(m, text, ids, n, true);
    int n_win = n / (int)ctx;
    if (n_win == 0) {
        fprintf(stderr, "nibble perplexity: %s has %d tokens, fewer than one window of %ld\n",
                file, n, ctx);
        goto done;
    }
    struct nibble_context_params cp = {.n_ctx = (uint32_t)ctx, .n_batch = (uint32_t)ctx};
    c = nibble_context_create(m, &cp, err, sizeof err);
    if (!c) {
        fprintf(stderr, "nibble perplexity: %s\n", err);
        goto done;
    }
    fprintf(stderr, "device: %s\n", nibble_device_line(m));
    fprintf(stderr, "%d tokens, %d windows of %ld, scoring the second half of each\n", n, n_win,
            ctx);
    int V = nibble_n_vocab(m);
    int32_t *win = malloc((size_t)ctx * sizeof *win);
    double nll = 0, nll2 = 0;
    long cnt = 0;
    uint64_t t0 = plat_now_ns();
    for (int w = 0; w < n_win && win; w++) {
        memcpy(win, ids + (size_t)w * ctx, (size_t)ctx * sizeof *win);
        win[0] = nibble_token_bos(m);
        nibble_reset(c);
        if (nibble_eval(c, win, (int)ctx, true, err, sizeof err) != 0) {
            fprintf(stderr, "\nnibble perplexity: %s\n", err);
            free(win);
            goto done;
        }
        for (long i = ctx / 2; i < ctx - 1; i++) {
            double l = nll_of(nibble_logits(c, (int)i), V, ids[(size_t)w * ctx + i + 1]);
            nll += l;
            nll2 += l * l;
            cnt++;
        }
        printf("[%d]%.4f,", w + 1, exp(nll / cnt));
        fflush(stdout);
    }
    free(win);
    double secs = (plat_now_ns() - t0) / 1e9;
    double mean = nll / cnt, var = nll2 / cnt - mean * mean;
    double ppl = exp(mean), se = var > 0 ? ppl * sqrt(var / cnt) : 0;
    printf("\nFinal estimate: PPL = %.4f +/- %.5f\n", ppl, se);
    fprintf(stderr, "scored %ld tokens in %.1f s (%.1f tok/s evaluated)\n", cnt, secs,
            n_win * ctx / secs);
    rc = 0;
done:
    nibble_context_destroy(c);
    nibble_model_free(m);
    free(ids);
    free(text);
    return rc;
}

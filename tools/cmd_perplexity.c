/* nibble perplexity -m MODEL -f TEXT [-c CTX] [-b BATCH]
 *
 * Perplexity as llama-perplexity computes it, so the two compare number for number: the whole
 * text is tokenized once (BOS first), cut into non-overlapping windows of CTX tokens; each
 * window starts with BOS (its first token replaced), runs in one pass with every row's logits
 * kept, and its second half is scored: the logits of position i predict token i+1 for
 * i in [CTX/2, CTX-1). Prints the running estimate per window and
 * "Final estimate: PPL = X +/- Y" (standard error of the mean log-likelihood, propagated). */
#include <errno.h>
#include <math.h>
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
    fprintf(stderr, "usage: nibble perplexity [-m MODEL] -f TEXT [-c CTX (default 512)]\n");
    return 2;
}

static char *read_text(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!s || fread(s, 1, (size_t)n, f) != (size_t)n) {
        snprintf(err, errlen, "%s: cannot read", path);
        free(s);
        fclose(f);
        return NULL;
    }
    s[n] = 0;
    fclose(f);
    return s;
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
    long ctx = 512;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-m") && i + 1 < argc)
            model = argv[++i];
        else if (!strcmp(argv[i], "-f") && i + 1 < argc)
            file = argv[++i];
        else if (!strcmp(argv[i], "-c") && i + 1 < argc)
            ctx = strtol(argv[++i], NULL, 10);
        else
            return usage();
    }
    if (!file) return usage();
    if (ctx < 4 || ctx > (1 << 20)) {
        fprintf(stderr, "nibble perplexity: -c must be between 4 and 1048576\n");
        return 2;
    }
    if (!model) model = NB_DEFAULT_MODEL;
    char err[512];
    char *text = read_text(file, err, sizeof err);
    if (!text) {
        fprintf(stderr, "nibble perplexity: %s\n", err);
        return 1;
    }
    struct nibble_model *m = nibble_model_load(model, NULL, err, sizeof err);
    if (!m) {
        fprintf(stderr, "nibble perplexity: %s\n", err);
        free(text);
        return 1;
    }
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

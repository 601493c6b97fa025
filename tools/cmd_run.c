/* nibble run -m MODEL -p PROMPT [-n N] [--temp T] [--top-k K] [--top-p P] [--seed S] [-c CTX]
 *            [-b BATCH] [--chat] [--lookup N] [--draft FILE] [--mtp FILE] [--draft-max K]
 *
 * Streams the generated text as it comes and ends with one line: prompt tokens and tok/s,
 * generated tokens and tok/s, peak device memory. Without -m it runs the model shipped in
 * models/default.gguf. -c above the model's trained context is clamped to it with a note; when
 * the context fills before N tokens a note says so. A failed write to stdout (a full disk, a
 * closed stdout) stops the run with exit status 1.
 * --lookup N (prompt lookup with n-grams up to N), --draft FILE (a draft model of the same
 * vocabulary) and --mtp FILE (the model's Gemma 4 MTP assistant) decode speculatively
 * (nibble_spec_*, at most --draft-max tokens per verification): the same text for greedy
 * sampling, the same distribution otherwise; the last line then adds the acceptance. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "chatfmt.h"
#include "cmds.h"
#include "nibble.h"
#include "platform.h"

#ifndef NB_DEFAULT_MODEL
#define NB_DEFAULT_MODEL "models/default.gguf"
#endif

#define USAGE                                                                                      \
    "nibble run [-m MODEL] -p PROMPT [-n N] [--temp T] [--top-k K] [--top-p P] [--seed S] "     \
    "[-c CTX] [-b BATCH] [--chat] [--lookup N] [--draft FILE] [--mtp FILE] [--draft-max K]"

/* Writes a piece of text to stdout; 0, or -1 after saying why the output failed. */
static int emit(const char *p, size_t n)
{
    errno = 0;
    if (fwrite(p, 1, n, stdout) == n && fflush(stdout) == 0) return 0;
    fprintf(stderr, "\nnibble run: writing the output failed: %s\n",
            errno ? strerror(errno) : "write error");
    return -1;
}

int cmd_run(int argc, char **argv)
{
    const char *model = NULL, *prompt = NULL, *draft = NULL, *mtp = NULL;
    uint32_t n_gen = 128, ctx = 0, batch = 512, top_k = 40, lookup = 0, draft_max = 0;
    double temp = 0.8, top_p = 0.95;
    uint64_t seed = 42;
    bool chat = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        int bad = 0;
        if (!strcmp(a, "--chat")) {
            chat = true;
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: " USAGE "\n");
            return 0;
        }
        const char *flags[] = {"-m",     "-p", "-n", "--temp",   "--top-k", "--top-p",
                               "--seed", "-c", "-b", "--lookup", "--draft", "--draft-max",
                               "--mtp"};
        size_t f = 0;
        while (f < sizeof flags / sizeof flags[0] && strcmp(a, flags[f])) f++;
        if (f == sizeof flags / sizeof flags[0]) return args_unknown("run", a, USAGE);
        if (!(v = args_value("run", argc, argv, &i))) return 2;
        if (!strcmp(a, "-m"))
            model = v;
        else if (!strcmp(a, "-p"))
            prompt = v;
        else if (!strcmp(a, "-n"))
            bad = args_u32("run", a, v, 0, 1u << 30, &n_gen);
        else if (!strcmp(a, "--temp"))
            bad = args_f64("run", a, v, 0, 1e6, &temp);
        else if (!strcmp(a, "--top-k"))
            bad = args_u32("run", a, v, 0, 0x7fffffff, &top_k);
        else if (!strcmp(a, "--top-p"))
            bad = args_f64("run", a, v, 0, 1, &top_p);
        else if (!strcmp(a, "--seed"))
            bad = args_u64("run", a, v, 0, UINT64_MAX, &seed);
        else if (!strcmp(a, "-c"))
            bad = args_u32("run", a, v, 1, 1u << 24, &ctx);
        else if (!strcmp(a, "--lookup"))
            bad = args_u32("run", a, v, 0, 8, &lookup);
        else if (!strcmp(a, "--draft-max"))
            bad = args_u32("run", a, v, 1, 7, &draft_max);
        else if (!strcmp(a, "--draft"))
            draft = v;
        else if (!strcmp(a, "--mtp"))
            mtp = v;
        else
            bad = args_u32("run", a, v, 1, 1u << 16, &batch);
        if (bad) return 2;
    }
    if (!prompt) {
        fprintf(stderr, "nibble run: -p PROMPT is required (usage: " USAGE ")\n");
        return 2;
    }
    if (!model) model = NB_DEFAULT_MODEL;

    char err[512];
    struct nibble_model *m = nibble_model_load(model, NULL, err, sizeof err);
    if (!m) {
        fprintf(stderr, "nibble run: %s\n", err);
        return 1;
    }
    fprintf(stderr, "device: %s\n", nibble_device_line(m));
    char *text = chat ? chatfmt_user_prompt(prompt) : NULL; /* Gemma 4 turn format */
    const char *in = text ? text : prompt;
    int n_prompt = nibble_tokenize(m, in, NULL, 0, true);
    int32_t *ids = n_prompt > 0 ? malloc((size_t)n_prompt * sizeof *ids) : NULL;
    struct nibble_context *c = NULL, *dc = NULL;
    struct nibble_model *dm = NULL;
    struct nibble_spec *spec = NULL;
    int rc = 1;
    if (!ids) {
        fprintf(stderr, "nibble run: could not tokenize the prompt\n");
        goto done;
    }
    nibble_tokenize(m, in, ids, n_prompt, true);

    struct nibble_context_params cp = nibble_context_default_params();
    cp.n_ctx = args_ctx("run", ctx, (uint32_t)nibble_n_ctx_train(m));
    cp.n_batch = batch;
    c = nibble_context_create(m, &cp, err, sizeof err);
    if (!c) {
        fprintf(stderr, "nibble run: %s\n", err);
        goto done;
    }
    if (draft) { /* the draft model: its own context of the same size */
        if (!(dm = nibble_model_load(draft, NULL, err, sizeof err)) ||
            !(dc = nibble_context_create(dm, &cp, err, sizeof err))) {
            fprintf(stderr, "nibble run: --draft %s: %s\n", draft, err);
            goto done;
        }
    }
    if (lookup || draft || mtp) {
        struct nibble_spec_params spp = nibble_spec_default_params();
        spp.lookup = (int)lookup;
        spp.draft_max = (int)draft_max;
        spp.draft = dc;
        spp.mtp = mtp;
        if (!(spec = nibble_spec_create(c, &spp, err, sizeof err))) {
            fprintf(stderr, "nibble run: %s\n", err);
            goto done;
        }
    }
    if ((uint32_t)n_prompt >= nibble_n_ctx(c)) {
        fprintf(stderr, "nibble run: the prompt is %d tokens, longer than the context of %u\n",
                n_prompt, nibble_n_ctx(c));
        goto done;
    }
    /* echo the prompt as the model sees it */
    if (emit(prompt, strlen(prompt)) != 0) goto done;

    uint64_t t0 = plat_now_ns();
    if (nibble_eval(c, ids, n_prompt, false, err, sizeof err) != 0) {
        fprintf(stderr, "\nnibble run: %s\n", err);
        goto done;
    }
    uint64_t t1 = plat_now_ns();
    struct nibble_sampler sp = {(float)temp, (int)top_k, (float)top_p, seed};
    if (nibble_sampler_check(&sp, err, sizeof err) != 0) {
        fprintf(stderr, "\nnibble run: %s\n", err);
        goto done;
    }
    uint32_t n_done = 0;
    bool full = false; /* stopped at the end of the context */
    char piece[256];
    /* tokens chosen and not shown yet: one per decode step, or the accepted drafts and the next
     * token of a speculative step; the last one shown is evaluated when more are needed */
    int32_t q[8];
    int nq = 1, qi = 0;
    if ((q[0] = nibble_sample(c, &sp)) < 0) {
        fprintf(stderr, "\nnibble run: sampling failed\n");
        goto done;
    }
    while (n_done < n_gen) {
        if (qi == nq) {
            if (nibble_n_past(c) == nibble_n_ctx(c)) { /* the last token is shown, not evaluated */
                full = true;
                break;
            }
            int32_t last = q[nq - 1];
            if (spec) {
                nq = nibble_spec_step(spec, last, &sp, q, 8, err, sizeof err);
            } else {
                nq = nibble_eval(c, &last, 1, false, err, sizeof err) == 0 ? 1 : -1;
                if (nq == 1 && (q[0] = nibble_sample(c, &sp)) < 0)
                    snprintf(err, sizeof err, "sampling failed"), nq = -1;
            }
            if (nq < 0) {
                fprintf(stderr, "\nnibble run: %s\n", err);
                goto done;
            }
            qi = 0;
        }
        int32_t t = q[qi++];
        if (nibble_token_is_eog(m, t)) break;
        int len = nibble_token_to_piece(m, t, piece, sizeof piece);
        if (len > 0 && emit(piece, len < (int)sizeof piece ? (size_t)len : sizeof piece - 1) != 0)
            goto done;
        n_done++;
    }
    uint64_t t2 = plat_now_ns();
    uint64_t peak;
    nibble_device_bytes(m, &peak);
    double pp = n_prompt / ((t1 - t0) / 1e9), tg = n_done ? n_done / ((t2 - t1) / 1e9) : 0;
    /* the text's end before the stats line, also when stdout is a pipe */
    if (emit("\n", 1) != 0) goto done;
    if (full) {
        uint32_t train = (uint32_t)nibble_n_ctx_train(m);
        fprintf(stderr, "nibble run: stopped at the end of the context (%u tokens): generated %u "
                "of the %u asked for%s\n", nibble_n_ctx(c), n_done, n_gen,
                nibble_n_ctx(c) < train ? "; -c raises the context" : "");
    }
    fprintf(stderr, "prompt: %d tokens, %.1f tok/s | generated: %u tokens, %.1f tok/s | "
            "peak device memory: %.1f MiB\n",
            n_prompt, pp, n_done, tg, peak / 1048576.0);
    if (spec) {
        struct nibble_spec_stats st = nibble_spec_get_stats(spec);
        fprintf(stderr, "speculative: %llu of %llu drafted tokens accepted (%.1f%%), %.2f accepted "
                "per verification, %llu of %llu steps verified a draft\n",
                (unsigned long long)st.accepted, (unsigned long long)st.drafted,
                st.drafted ? 100.0 * st.accepted / st.drafted : 0.0,
                st.verifications ? (double)st.accepted / st.verifications
                                 : 0.0,
                (unsigned long long)st.verifications, (unsigned long long)st.steps);
    }
    rc = 0;
done:
    nibble_spec_destroy(spec);
    nibble_context_destroy(dc);
    nibble_model_free(dm);
    nibble_context_destroy(c);
    nibble_model_free(m);
    free(ids);
    free(text);
    return rc;
}

/* nibble bench -m MODEL (--lookup N | --draft FILE | --mtp FILE) [--draft-max K]
 *              [-f TEXT | --prompt TEXT] [-n 128] [-r 2] [-c CTX] [--temp T] [--seed S]
 *
 * Speculative decoding against plain decoding in one run, through the public API: after the
 * prompt (not timed; a draft model gets it too), n tokens by plain decode steps (eval + sample)
 * and n tokens by nibble_spec_step, r rounds (plain first, then speculative first, alternating).
 * Prints tok/s of each (the median), the speedup, the acceptance rate (accepted / drafted), the
 * mean drafts accepted per verification and the share of steps that verified a draft; with a
 * greedy sampler (the default, --temp 0) also whether both produced the same tokens; then where
 * the speculative run's time went (plain steps, verifications, drafting), also in units of the
 * plain run's time per token. Without -f/--prompt the prompt asks the model to repeat a passage
 * (Genesis 1:1-5, KJV), the case prompt lookup is for. */
#include "bench_spec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "nibble.h"
#include "platform.h"

#define PASSAGE                                                                                    \
    "In the beginning God created the heaven and the earth. And the earth was without form, and " \
    "void; and darkness was upon the face of the deep. And the Spirit of God moved upon the face " \
    "of the waters. And God said, Let there be light: and there was light. And God saw the "      \
    "light, that it was good: and God divided the light from the darkness. And God called the "   \
    "light Day, and the darkness he called Night. And the evening and the morning were the first " \
    "day."
#define DEFAULT_PROMPT PASSAGE "\n\n" PASSAGE "\n\n" PASSAGE "\n\nIn the beginning"

#define USAGE                                                                                      \
    "nibble bench -m MODEL (--lookup N | --draft FILE | --mtp FILE) [--draft-max K] "           \
    "[-f TEXT | --prompt TEXT] "                                                                   \
    "[-n 128] [-r 2] [-c CTX] [--temp T] [--seed S]"

bool bench_spec_wanted(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--lookup") || !strcmp(argv[i], "--draft") ||
            !strcmp(argv[i], "--mtp"))
            return true;
    return false;
}

struct run {
    double tps;
    struct nibble_spec_stats st;
};

static int cmp_run(const void *a, const void *b)
{
    double x = ((const struct run *)a)->tps, y = ((const struct run *)b)->tps;
    return x < y ? -1 : x > y;
}

/* One generation of n tokens after the prompt: plain (spec NULL) or speculative. Tokens to out
 * [n + 8]; returns how many were made (>= n unless the context ends), -1 on error. */
static int generate(struct nibble_context *c, struct nibble_context *dc, struct nibble_spec *spec,
                    const struct nibble_sampler *sp, const int32_t *ids, int n_ids, int n,
                    int32_t *out, double *tps)
{
    char err[512];
    nibble_reset(c);
    if (nibble_eval(c, ids, n_ids, false, err, sizeof err) != 0 ||
        (dc && (nibble_reset(dc), nibble_eval(dc, ids, n_ids, false, err, sizeof err)) != 0)) {
        fprintf(stderr, "nibble bench: %s\n", err);
        return -1;
    }
    uint64_t t0 = plat_now_ns();
    int made = 0;
    out[made++] = nibble_sample(c, sp);
    while (made < n && nibble_n_past(c) < nibble_n_ctx(c)) {
        int k;
        if (spec) {
            k = nibble_spec_step(spec, out[made - 1], sp, out + made, 8, err, sizeof err);
        } else {
            k = nibble_eval(c, &out[made - 1], 1, false, err, sizeof err) == 0 ? 1 : -1;
            if (k == 1) out[made] = nibble_sample(c, sp);
        }
        if (k < 0) {
            fprintf(stderr, "nibble bench: %s\n", err);
            return -1;
        }
        made += k;
    }
    *tps = made / ((plat_now_ns() - t0) / 1e9);
    return made;
}

int bench_spec(int argc, char **argv)
{
    const char *model = NULL, *draft = NULL, *mtp = NULL, *file = NULL, *prompt = DEFAULT_PROMPT;
    uint32_t lookup = 0, draft_max = 0, n = 128, reps = 2, ctx = 0;
    double temp = 0;
    uint64_t seed = 42;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        const char *flags[] = {"-m", "--lookup", "--draft", "--draft-max", "-f", "--prompt",
                               "-n", "-r",       "-c",      "--temp",      "--seed", "--mtp"};
        size_t f = 0;
        while (f < sizeof flags / sizeof flags[0] && strcmp(a, flags[f])) f++;
        if (f == sizeof flags / sizeof flags[0]) return args_unknown("bench", a, USAGE);
        if (!(v = args_value("bench", argc, argv, &i))) return 2;
        int bad = 0;
        if (!strcmp(a, "-m")) model = v;
        else if (!strcmp(a, "--draft")) draft = v;
        else if (!strcmp(a, "--mtp")) mtp = v;
        else if (!strcmp(a, "-f")) file = v;
        else if (!strcmp(a, "--prompt")) prompt = v;
        else if (!strcmp(a, "--lookup")) bad = args_u32("bench", a, v, 1, 8, &lookup);
        else if (!strcmp(a, "--draft-max")) bad = args_u32("bench", a, v, 1, 7, &draft_max);
        else if (!strcmp(a, "-n")) bad = args_u32("bench", a, v, 1, 1u << 20, &n);
        else if (!strcmp(a, "-r")) bad = args_u32("bench", a, v, 1, 1000, &reps);
        else if (!strcmp(a, "-c")) bad = args_u32("bench", a, v, 1, 1u << 24, &ctx);
        else if (!strcmp(a, "--temp")) bad = args_f64("bench", a, v, 0, 1e6, &temp);
        else bad = args_u64("bench", a, v, 0, UINT64_MAX, &seed);
        if (bad) return 2;
    }
    if (!model) {
        fprintf(stderr, "nibble bench: -m MODEL is required (usage: " USAGE ")\n");
        return 2;
    }
    char *text = NULL;
    if (file) {
        size_t size = 0;
        char e[256];
        if (plat_read_file(file, (size_t)1 << 26, &text, &size, e, sizeof e) != 0) {
            fprintf(stderr, "nibble bench: -f %s: %s\n", file, e);
            return 1;
        }
        prompt = text;
    }

    char err[512];
    int rc = 1;
    struct nibble_model *m = NULL, *dm = NULL;
    struct nibble_context *c = NULL, *dc = NULL;
    struct nibble_spec *spec = NULL;
    int32_t *ids = NULL, *plain = NULL, *fast = NULL;
    struct run *pr = calloc(reps, sizeof *pr), *sr = calloc(reps, sizeof *sr);
    if (!(m = nibble_model_load(model, NULL, err, sizeof err)) ||
        (draft && !(dm = nibble_model_load(draft, NULL, err, sizeof err)))) {
        fprintf(stderr, "nibble bench: %s\n", err);
        goto done;
    }
    int n_ids = nibble_tokenize(m, prompt, NULL, 0, true);
    ids = n_ids > 0 ? malloc((size_t)n_ids * sizeof *ids) : NULL;
    plain = malloc((n + 8) * sizeof *plain);
    fast = malloc((n + 8) * sizeof *fast);
    if (!ids || !plain || !fast || !pr || !sr) {
        fprintf(stderr, "nibble bench: could not tokenize the prompt\n");
        goto done;
    }
    nibble_tokenize(m, prompt, ids, n_ids, true);
    struct nibble_context_params cp = nibble_context_default_params();
    uint32_t want = ctx ? ctx : (uint32_t)n_ids + n + 8;
    cp.n_ctx = args_ctx("bench", want, (uint32_t)nibble_n_ctx_train(m));
    if (!(c = nibble_context_create(m, &cp, err, sizeof err)) ||
        (dm && !(dc = nibble_context_create(dm, &cp, err, sizeof err)))) {
        fprintf(stderr, "nibble bench: %s\n", err);
        goto done;
    }
    struct nibble_sampler sp = {(float)temp, temp == 0 ? 1 : 40, temp == 0 ? 1.0f : 0.95f, seed};
    struct nibble_spec_params spp = nibble_spec_default_params();
    spp.lookup = (int)lookup;
    spp.draft_max = (int)draft_max;
    spp.draft = dc;
    spp.mtp = mtp;
    printf("device: %s\n", nibble_device_line(m));
    printf("prompt: %d tokens, generating %u tokens, %s sampling, %u rounds\n", n_ids, n,
           temp == 0 ? "greedy" : "temperature", reps);
    int made_p = 0, made_s = 0;
    bool same = true;
    for (uint32_t r = 0; r < reps; r++) {
        for (int j = 0; j < 2; j++) { /* plain first in even rounds, speculative first in odd */
            if ((j == 0) == (r % 2 == 0)) {
                made_p = generate(c, NULL, NULL, &sp, ids, n_ids, (int)n, plain, &pr[r].tps);
                if (made_p < 0) goto done;
                continue;
            }
            nibble_spec_destroy(spec);
            if (!(spec = nibble_spec_create(c, &spp, err, sizeof err))) {
                fprintf(stderr, "nibble bench: %s\n", err);
                goto done;
            }
            made_s = generate(c, dc, spec, &sp, ids, n_ids, (int)n, fast, &sr[r].tps);
            if (made_s < 0) goto done;
            sr[r].st = nibble_spec_get_stats(spec);
        }
        int k = made_p < made_s ? made_p : made_s;
        same = same && memcmp(plain, fast, (size_t)k * sizeof *plain) == 0;
    }
    qsort(pr, reps, sizeof *pr, cmp_run);
    qsort(sr, reps, sizeof *sr, cmp_run);
    struct run *ps = &pr[reps / 2], *ss = &sr[reps / 2];
    char mode[512];
    int w = 0;
    if (lookup)
        w += snprintf(mode + w, sizeof mode - w, "lookup %u%s", lookup,
                      draft || mtp ? " + " : "");
    if (mtp) w += snprintf(mode + w, sizeof mode - w, "mtp %s%s", mtp, draft ? " + " : "");
    if (draft) w += snprintf(mode + w, sizeof mode - w, "draft %s", draft);
    snprintf(mode + w, sizeof mode - w, ", k <= %u", draft_max ? draft_max : 7);
    printf("| decoding | tokens | tok/s | speedup | accepted / drafted | acceptance | "
           "accepted per verification | steps verifying a draft |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    printf("| plain | %d | %.1f | 1.00x | | | | |\n", made_p, ps->tps);
    const struct nibble_spec_stats *st = &ss->st;
    printf("| %s | %d | %.1f | %.2fx | %llu / %llu | %.1f%% | %.2f | %llu / %llu |\n", mode,
           made_s, ss->tps, ss->tps / ps->tps, (unsigned long long)st->accepted,
           (unsigned long long)st->drafted,
           st->drafted ? 100.0 * (double)st->accepted / (double)st->drafted : 0.0,
           st->verifications ? (double)st->accepted / (double)st->verifications : 0.0,
           (unsigned long long)st->verifications, (unsigned long long)st->steps);
    /* where the speculative run's time went, in units of the plain run's time per token */
    double unit = 1e3 / ps->tps; /* ms */
    uint64_t plain_steps = st->steps - st->verifications;
    if (plain_steps)
        printf("plain steps in the speculative run: %llu, %.2f ms each (%.2f plain tokens)\n",
               (unsigned long long)plain_steps, 1e3 * st->plain_s / plain_steps,
               1e3 * st->plain_s / plain_steps / unit);
    if (st->verifications) {
        double nv = (double)st->verifications, batch = (st->drafted + nv) / nv;
        printf("verifications: %llu of %.2f tokens on average, %.2f ms each (%.2f plain tokens); "
               "drafting %.2f ms per verification, %.2f ms per drafted token (%.2f plain tokens)"
               "\n", (unsigned long long)st->verifications, batch, 1e3 * st->verify_s / nv,
               1e3 * st->verify_s / nv / unit, 1e3 * st->draft_s / nv,
               1e3 * st->draft_s / (double)st->drafted, 1e3 * st->draft_s / st->drafted / unit);
    }
    if (temp == 0) printf("greedy tokens identical to plain decoding: %s\n", same ? "yes" : "NO");
    rc = temp == 0 && !same ? 1 : 0;
done:
    nibble_spec_destroy(spec);
    nibble_context_destroy(dc);
    nibble_context_destroy(c);
    nibble_model_free(dm);
    nibble_model_free(m);
    free(ids);
    free(plain);
    free(fast);
    free(pr);
    free(sr);
    free(text);
    return rc;
}

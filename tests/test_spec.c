/* test_spec: speculative decoding (nibble_spec_*, engine/spec.c).
 *
 * - The acceptance rule on its own (pure C, no device): over 200,000 seeded trials on a 6-token
 *   vocabulary, drafts drawn from q and passed through nb_spec_accept come out distributed as the
 *   target p within 0.006 per token (about 5 standard deviations of a frequency at 200,000
 *   trials), for a draft distribution, for a point mass (a deterministic drafter) on a likely and
 *   on an impossible token, and for q == p (every draft accepted).
 * - The host distribution (nb_dist_from_logits) keeps the sampler's top_k / top_p / temp cut, and
 *   is the one nibble_sample draws from: 4,000 draws on the default model's logits after a verse
 *   (device sampler: top_k 40; host sampler: top_k 0) within 5 standard deviations per token.
 * - Greedy identity: generation until the context is full gives the same tokens as plain
 *   decoding on the dense, MoE and PLE test models (sliding window 16 crossed during
 *   speculation, KV-shared layers, the last drafts cut at the context's end) with prompt lookup
 *   (some drafts rejected), with the model itself as draft model (all accepted), with another
 *   model of the same vocabulary, and with the verification batches recorded per call
 *   (NIBBLE_DISABLE=replay); and on the default model over held-out Bible text (window 128
 *   crossed) with lookup and with the PTQ model drafting (about half the drafts rejected).
 * - Sampling with speculation runs to the end with valid tokens and repeats for a seed (fixed k).
 * - A draft model of another vocabulary is refused naming both sizes.
 * - The CLI: `nibble run --lookup` prints the text plain `run` prints (greedy) and the acceptance;
 *   `nibble bench --lookup` reports identical tokens; bad flags and a mismatched draft fail. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nibble.h"
#include "spec.h"

/* ---- the acceptance rule ------------------------------------------------------------------- */

enum { SV = 6, TRIALS = 200000 };

static double urand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

static void set_dist(struct nb_dist *d, const double *pr)
{
    d->n = 0;
    d->ids = malloc(SV * sizeof *d->ids);
    d->pr = malloc(SV * sizeof *d->pr);
    d->cap = SV;
    for (int i = 0; i < SV; i++)
        if (pr[i] > 0) {
            d->ids[d->n] = i;
            d->pr[d->n++] = pr[i];
        }
}

/* The largest |frequency - p| of the emitted tokens; drafted < 0: drafts drawn from q. */
static double run_rule(const double *p, const double *q, int drafted, double *acc_rate)
{
    struct nb_dist dp = {0}, dq = {0};
    set_dist(&dp, p);
    if (q) set_dist(&dq, q);
    double dense[SV] = {0}, count[SV] = {0}, accepted = 0;
    uint64_t rng = 12345;
    for (int t = 0; t < TRIALS; t++) {
        int32_t d = drafted >= 0 ? drafted : nb_dist_draw(&dq, urand(&rng));
        bool ok;
        int32_t tok = nb_spec_accept(&dp, q ? &dq : NULL, d, urand(&rng), urand(&rng), dense, &ok);
        assert_true(tok >= 0 && tok < SV);
        count[tok]++;
        accepted += ok;
    }
    for (int i = 0; i < SV; i++)
        assert_true(dense[i] == 0); /* the scratch is left clean */
    double worst = 0;
    for (int i = 0; i < SV; i++) {
        double e = fabs(count[i] / TRIALS - p[i]);
        if (e > worst) worst = e;
        if (p[i] == 0) assert_true(count[i] == 0); /* never a token the target excludes */
    }
    *acc_rate = accepted / TRIALS;
    nb_dist_free(&dp);
    if (q) nb_dist_free(&dq);
    return worst;
}

static void test_accept_rule(void **state)
{
    (void)state;
    const double p[SV] = {0.40, 0.25, 0.15, 0.12, 0.08, 0.0};
    const double q[SV] = {0.10, 0.30, 0.05, 0.05, 0.20, 0.30}; /* q puts mass where p has none */
    double acc, worst;
    worst = run_rule(p, q, -1, &acc);
    /* expected acceptance: sum min(p, q) */
    double expect = 0;
    for (int i = 0; i < SV; i++)
        expect += p[i] < q[i] ? p[i] : q[i];
    printf("# draft q: max |freq - p| %.4f, acceptance %.4f (expected %.4f)\n", worst, acc,
           expect);
    assert_true(worst < 0.006);
    assert_true(fabs(acc - expect) < 0.006);
    worst = run_rule(p, NULL, 1, &acc); /* point mass on token 1: accepted with p(1) */
    printf("# point mass on a likely token: max |freq - p| %.4f, acceptance %.4f\n", worst, acc);
    assert_true(worst < 0.006);
    assert_true(fabs(acc - p[1]) < 0.006);
    worst = run_rule(p, NULL, 5, &acc); /* point mass on a token p excludes: never accepted */
    printf("# point mass on an excluded token: max |freq - p| %.4f, acceptance %.4f\n", worst,
           acc);
    assert_true(worst < 0.006);
    assert_true(acc == 0);
    worst = run_rule(p, p, -1, &acc); /* q == p: always accepted */
    assert_true(worst < 0.006);
    assert_true(acc == 1.0);
}

static void test_dist(void **state)
{
    (void)state;
    float lg[8] = {1.0f, 3.0f, 2.0f, NAN, 3.0f, -1.0f, 0.5f, 2.5f};
    struct nb_dist d = {0};
    struct nibble_sampler s = {.temp = 1.0f, .top_k = 3, .top_p = 1.0f, .seed = 1};
    assert_int_equal(nb_dist_from_logits(&d, lg, 8, &s), 0);
    assert_int_equal(d.n, 3); /* 1 and 4 tie at 3.0: the lower id first */
    assert_int_equal(d.ids[0], 1);
    assert_int_equal(d.ids[1], 4);
    assert_int_equal(d.ids[2], 7);
    double z = 2 * exp(0.0) + exp(-0.5);
    assert_true(fabs(d.pr[0] - 1 / z) < 1e-12 && fabs(d.pr[2] - exp(-0.5) / z) < 1e-12);
    s.top_k = 0;
    s.top_p = 0.5f; /* the two tied best weigh 2/(2+...) > 0.5 together, one alone less */
    assert_int_equal(nb_dist_from_logits(&d, lg, 8, &s), 0);
    assert_int_equal(d.n, 2);
    s.temp = 0.0f; /* greedy: the argmax alone */
    assert_int_equal(nb_dist_from_logits(&d, lg, 8, &s), 0);
    assert_int_equal(d.n, 1);
    assert_int_equal(d.ids[0], 1);
    assert_int_equal(nb_argmax(lg, 8), 1);
    nb_dist_free(&d);
}

/* The frequencies of n draws of nibble_sample against nb_dist_from_logits of the same row. */
static void draws_match(struct nibble_context *c, const struct nibble_sampler *sp, int n)
{
    uint32_t V = (uint32_t)nibble_n_vocab(nibble_context_model(c));
    struct nb_dist d = {0};
    assert_int_equal(nb_dist_from_logits(&d, nibble_logits(c, -1), V, sp), 0);
    double *count = calloc(V, sizeof *count);
    for (int i = 0; i < n; i++) {
        int32_t t = nibble_sample(c, sp);
        assert_true(t >= 0 && (uint32_t)t < V);
        count[t]++;
    }
    double worst = 0;
    for (uint32_t t = 0; t < V; t++) {
        double p = nb_dist_prob(&d, (int32_t)t), f = count[t] / n;
        double tol = 5 * sqrt(p * (1 - p) / n) + 2.0 / n; /* 5 sigma, and a draw of rounding */
        if (p == 0) assert_true(count[t] == 0); /* outside the cut: never drawn */
        if (fabs(f - p) / tol > worst) worst = fabs(f - p) / tol;
    }
    printf("# top_k %d top_p %.2f temp %.2f: %u tokens in the cut, worst |freq - p| %.2f of the "
           "tolerance\n", sp->top_k, (double)sp->top_p, (double)sp->temp, d.n, worst);
    assert_true(worst <= 1.0);
    assert_true(d.n > 3); /* a distribution, not a point */
    free(count);
    nb_dist_free(&d);
}

static void test_dist_device(void **state)
{
    (void)state;
    struct nibble_model_params mp = nibble_model_default_params();
    mp.validation = true;
    char err[512];
    struct nibble_model *m =
        nibble_model_load(NB_TEST_DATA "/../../models/default.gguf", &mp, err, sizeof err);
    if (!m) skip();
    struct nibble_context_params cp = nibble_context_default_params();
    cp.n_ctx = 64;
    struct nibble_context *c = nibble_context_create(m, &cp, err, sizeof err);
    assert_non_null(c);
    int32_t ids[64];
    int n = nibble_tokenize(m, "And it came to pass, when the", ids, 64, true);
    assert_int_equal(nibble_eval(c, ids, n, false, err, sizeof err), 0);
    draws_match(c, &(struct nibble_sampler){.temp = 0.8f, .top_k = 40, .top_p = 0.95f, .seed = 3},
                4000);
    draws_match(c, &(struct nibble_sampler){.temp = 1.2f, .top_k = 0, .top_p = 0.9f, .seed = 4},
                4000);
    nibble_context_destroy(c);
    nibble_model_free(m);
    nb_test_check_validation();
}

/* ---- generation on the test models ----------------------------------------------------------- */

enum { NCTX = 80, NBATCH = 8, NPROMPT = 37, KJV_CTX = 256 };

static struct nibble_model *load(const char *name, const char *disable)
{
    const char *p = strchr(name, '/') ? name : nb_test_file(name);
    if (!p) return NULL;
    struct nibble_model_params mp = nibble_model_default_params();
    mp.validation = true;
    mp.disable = disable;
    char err[512];
    struct nibble_model *m = nibble_model_load(p, &mp, err, sizeof err);
    if (!m) fail_msg("%s: %s", name, err);
    return m;
}

static struct nibble_context *ctx(struct nibble_model *m, uint32_t n_ctx)
{
    struct nibble_context_params cp = nibble_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_batch = NBATCH;
    char err[512];
    struct nibble_context *c = nibble_context_create(m, &cp, err, sizeof err);
    if (!c) fail_msg("%s", err);
    return c;
}

/* A prompt of a 12-token phrase three times (lookup finds it), BOS first; with a token `mix`
 * >= 0 every other token is mix instead, the last one not (the random test models keep answering
 * one token: after the first, lookup drafts what followed it in the prompt, which the model
 * rejects; later it drafts the repeated token, which it accepts). */
static void prompt(int32_t *ids, int32_t mix)
{
    nb_test_seed(5);
    ids[0] = 2;
    for (int i = 1; i < 13; i++)
        ids[i] = 3 + (int32_t)(nb_test_randu() % 900);
    for (int i = 13; i < NPROMPT; i++)
        ids[i] = ids[i - 12];
    for (int i = 1; mix >= 0 && i < NPROMPT; i += 2)
        ids[i] = mix;
}

static struct nibble_spec_stats print_stats(const char *what, const struct nibble_spec *s)
{
    struct nibble_spec_stats st = nibble_spec_get_stats(s);
    printf("# %s: %llu steps, %llu verifications, %llu of %llu drafts accepted\n", what,
           (unsigned long long)st.steps, (unsigned long long)st.verifications,
           (unsigned long long)st.accepted, (unsigned long long)st.drafted);
    return st;
}

static const struct nibble_sampler greedy = {.temp = 0.0f, .top_k = 1, .top_p = 1.0f, .seed = 1};

/* Greedy after ids[0..n_ids) in a context of n_ctx: plain tokens == lookup tokens == the tokens
 * with each draft model (NULL ends the list; the name `name` is the model itself). Returns the
 * lookup's statistics. */
static struct nibble_spec_stats greedy_identity(const char *name, const char *disable,
                                                const int32_t *ids, int n_ids, uint32_t n_ctx,
                                                const char *const *drafts)
{
    struct nibble_spec_stats look = {0};
    struct nibble_model *m = load(name, disable);
    if (!m) {
        printf("# %s absent: skipped\n", name);
        return look;
    }
    int32_t *plain = malloc((n_ctx + 8) * sizeof *plain), *spec = malloc((n_ctx + 8) * 4);
    char err[512], what[512];
    struct nibble_context *c = ctx(m, n_ctx);
    int n = nb_test_generate(c, NULL, &greedy, ids, n_ids, plain);
    assert_int_equal(n, (int)n_ctx - n_ids + 1);

    /* prompt lookup */
    struct nibble_spec_params p = nibble_spec_default_params();
    p.lookup = 3;
    p.fixed_k = true; /* the statistics below do not depend on timing */
    struct nibble_spec *s = nibble_spec_create(c, &p, err, sizeof err);
    assert_non_null(s);
    assert_int_equal(nb_test_generate(c, s, &greedy, ids, n_ids, spec), n);
    assert_memory_equal(spec, plain, n * sizeof *plain);
    snprintf(what, sizeof what, "%s lookup%s%s", strrchr(name, '/') ? strrchr(name, '/') + 1 : name,
             disable ? " disable=" : "", disable ? disable : "");
    look = print_stats(what, s);
    assert_true(look.verifications > 0);
    nibble_spec_destroy(s);

    for (int i = 0; drafts && drafts[i]; i++) {
        struct nibble_model *dm = !strcmp(drafts[i], name) ? m : load(drafts[i], NULL);
        if (!dm) continue;
        struct nibble_context *dc = ctx(dm, n_ctx);
        p = nibble_spec_default_params();
        p.draft = dc;
        p.draft_max = 4;
        p.fixed_k = i == 0; /* the model itself with fixed k, the other one adaptive */
        s = nibble_spec_create(c, &p, err, sizeof err);
        assert_non_null(s);
        assert_int_equal(nb_test_generate(c, s, &greedy, ids, n_ids, spec), n);
        assert_memory_equal(spec, plain, n * sizeof *plain);
        snprintf(what, sizeof what, "drafted by %s", drafts[i]);
        struct nibble_spec_stats st = print_stats(what, s);
        if (dm == m) assert_true(st.accepted == st.drafted && st.drafted > 0);
        assert_int_equal(st.tokens + 1, (uint64_t)n); /* the first token came from nibble_sample */
        nibble_spec_destroy(s);
        nibble_context_destroy(dc);
        if (dm != m) nibble_model_free(dm);
    }
    nibble_context_destroy(c);
    nibble_model_free(m);
    free(plain);
    free(spec);
    nb_test_check_validation();
    return look;
}

/* The test models with the prompt mixed with the token they answer (see prompt()). */
static void greedy_model(const char *name, const char *other, const char *disable)
{
    struct nibble_model *m = load(name, NULL);
    if (!m) {
        printf("# %s absent: skipped\n", name);
        return;
    }
    int32_t ids[NPROMPT], out[NCTX];
    prompt(ids, -1);
    struct nibble_context *c = ctx(m, NPROMPT + 1);
    nb_test_generate(c, NULL, &greedy, ids, NPROMPT, out);
    nibble_context_destroy(c);
    nibble_model_free(m);
    prompt(ids, out[0]);
    const char *drafts[3] = {name, other, NULL};
    struct nibble_spec_stats st =
        greedy_identity(name, disable, ids, NPROMPT, NCTX, disable ? NULL : drafts);
    assert_true(st.accepted > 0 && st.accepted < st.drafted); /* some drafts rejected */
}

static void test_greedy_dense(void **state)
{
    (void)state;
    greedy_model("dense.gguf", "dense-q8.gguf", NULL);
    greedy_model("dense.gguf", NULL, "replay");
}

static void test_greedy_moe(void **state)
{
    (void)state;
    greedy_model("moe.gguf", "dense.gguf", NULL);
}

static void test_greedy_ple(void **state)
{
    (void)state;
    greedy_model("ple.gguf", "dense.gguf", NULL);
}

/* The default model on held-out Bible text (window 128 crossed: a ring of 136 slots in 256),
 * drafted by lookup and by the same model quantized after training (PTQ). */
static void test_greedy_kjv(void **state)
{
    (void)state;
    size_t size = 0;
    char *text = nb_test_read(NB_TEST_DATA "/../../models/kjv-heldout.txt", &size);
    struct nibble_model *m = load(NB_TEST_DATA "/../../models/default.gguf", NULL);
    if (!text || !m) skip();
    text[size < 600 ? size - 1 : 600] = 0;
    int32_t ids[400];
    int n = nibble_tokenize(m, text, ids, 400, true);
    nibble_model_free(m);
    free(text);
    assert_true(n > 100 && n < 200);
    const char *drafts[2] = {NB_TEST_DATA "/../../models/kjv-ptq-q4_0.gguf", NULL};
    struct nibble_spec_stats st =
        greedy_identity(NB_TEST_DATA "/../../models/default.gguf", NULL, ids, n, KJV_CTX, drafts);
    assert_true(st.accepted > 0 && st.accepted < st.drafted);
}

/* Sampling: valid tokens to the end, the same for the same seed; with a draft model of its own. */
static void test_sampling(void **state)
{
    (void)state;
    struct nibble_model *m = load("dense.gguf", NULL), *dm = load("dense-q8.gguf", NULL);
    if (!m || !dm) skip();
    const struct nibble_sampler sp = {.temp = 0.8f, .top_k = 40, .top_p = 0.95f, .seed = 9};
    char err[512];
    struct nibble_context *c = ctx(m, NCTX), *dc = ctx(dm, NCTX);
    struct nibble_spec_params p = nibble_spec_default_params();
    p.lookup = 2;
    p.draft = dc;
    p.fixed_k = true; /* adaptive k follows time: the draws would differ between runs */
    int32_t a[NCTX], b[NCTX];
    for (int r = 0; r < 2; r++) {
        struct nibble_spec *s = nibble_spec_create(c, &p, err, sizeof err);
        assert_non_null(s);
        int32_t ids[NPROMPT];
        prompt(ids, -1);
        int n = nb_test_generate(c, s, &sp, ids, NPROMPT, r ? b : a);
        assert_int_equal(n, NCTX - NPROMPT + 1);
        for (int i = 0; i < n; i++)
            assert_true((r ? b : a)[i] >= 0 && (r ? b : a)[i] < nibble_n_vocab(m));
        if (r) assert_memory_equal(a, b, n * sizeof *a);
        print_stats("dense sampled, lookup + dense-q8", s);
        nibble_spec_destroy(s);
    }
    nibble_context_destroy(dc);
    nibble_context_destroy(c);
    nibble_model_free(dm);
    nibble_model_free(m);
    nb_test_check_validation();
}

static void test_errors(void **state)
{
    (void)state;
    struct nibble_model *m = load("dense.gguf", NULL);
    if (!m) skip();
    char err[512];
    struct nibble_context *c = ctx(m, NCTX);
    struct nibble_model_params mp = nibble_model_default_params();
    mp.validation = true;
    struct nibble_model *dm =
        nibble_model_load(NB_TEST_DATA "/../../models/default.gguf", &mp, err, sizeof err);
    if (dm) {
        struct nibble_context *dc = ctx(dm, NCTX);
        struct nibble_spec_params p = nibble_spec_default_params();
        p.draft = dc;
        assert_null(nibble_spec_create(c, &p, err, sizeof err));
        printf("# %s\n", err);
        assert_non_null(strstr(err, "4096"));
        assert_non_null(strstr(err, "1024"));
        nibble_context_destroy(dc);
        nibble_model_free(dm);
    }
    struct nibble_spec_params p = nibble_spec_default_params();
    p.draft_max = 9;
    assert_null(nibble_spec_create(c, &p, err, sizeof err));
    p.draft_max = 0;
    p.lookup = -1;
    assert_null(nibble_spec_create(c, &p, err, sizeof err));
    /* a full context: the step says so */
    p.lookup = 2;
    struct nibble_spec *s = nibble_spec_create(c, &p, err, sizeof err);
    int32_t ids[NCTX], out[8];
    for (int i = 0; i < NCTX; i++)
        ids[i] = 3 + i;
    assert_int_equal(nibble_eval(c, ids, NCTX, false, err, sizeof err), 0);
    const struct nibble_sampler g = {.temp = 0.0f, .top_k = 1, .top_p = 1.0f, .seed = 1};
    assert_int_equal(nibble_spec_step(s, 5, &g, out, 8, err, sizeof err), -1);
    assert_non_null(strstr(err, "full"));
    nibble_spec_destroy(s);
    nibble_context_destroy(c);
    nibble_model_free(m);
    nb_test_check_validation();
}

/* ---- the command line ------------------------------------------------------------------------ */

static char out[1 << 16], errs[1 << 16];

/* Runs `NB_CLI args` with stdout and stderr into out/errs (testutil.h); the exit status. */
static int cli(const char *args) { return nb_test_cli("spec", args, out, errs, sizeof out); }

static void test_cli(void **state)
{
    (void)state;
    const char *dense = nb_test_file("dense.gguf");
    if (!dense) skip();
    char dpath[2048], args[4096];
    snprintf(dpath, sizeof dpath, "%s", dense);
    static char plain[1 << 16];
    const char *p = "-p 'And God said unto Moses, And God said unto Moses,' -n 48 --temp 0 -c 96";
    snprintf(args, sizeof args, "run %s", p);
    if (cli(args) != 0) skip(); /* no device */
    snprintf(plain, sizeof plain, "%s", out);
    snprintf(args, sizeof args, "run %s --lookup 3 --draft-max 4", p);
    assert_int_equal(cli(args), 0);
    assert_string_equal(out, plain);
    assert_non_null(strstr(errs, "speculative:"));
    snprintf(args, sizeof args, "run %s --draft " NB_TEST_DATA "/../../models/kjv-ptq-q4_0.gguf",
             p);
    assert_int_equal(cli(args), 0);
    assert_string_equal(out, plain);
    assert_int_equal(cli("bench -m " NB_TEST_DATA "/../../models/default.gguf --lookup 3 -n 24 "
                         "-r 1"),
                     0);
    assert_non_null(strstr(out, "identical to plain decoding: yes"));
    assert_non_null(strstr(out, "| lookup 3, k <= 7 |"));
    /* errors: a draft model of another vocabulary, flags out of range */
    snprintf(args, sizeof args, "run %s --draft '%s'", p, dpath);
    assert_int_equal(cli(args), 1);
    assert_non_null(strstr(errs, "vocabulary"));
    snprintf(args, sizeof args, "run %s --lookup 9", p);
    assert_int_equal(cli(args), 2);
    assert_non_null(strstr(errs, "--lookup"));
    snprintf(args, sizeof args, "run %s --draft-max 0", p);
    assert_int_equal(cli(args), 2);
    assert_int_equal(cli("bench -m " NB_TEST_DATA "/../../models/default.gguf --lookup 2 --x 1"),
                     2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_rule),  cmocka_unit_test(test_dist),
        cmocka_unit_test(test_dist_device),
        cmocka_unit_test(test_greedy_dense), cmocka_unit_test(test_greedy_moe),
        cmocka_unit_test(test_greedy_ple),   cmocka_unit_test(test_greedy_kjv),
        cmocka_unit_test(test_sampling),
        cmocka_unit_test(test_errors),       cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

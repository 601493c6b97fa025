/* nibble profile -m MODEL [-p N] [-n N] [-b N] [--csv] [--min] [--probe-mb MIB] [--fresh-probe]
 * [--shaders DIR]
 *
 * GPU timestamps for every dispatch of a prefill of p tokens and of n decode steps (the recorded
 * step, averaged), grouped by forward step and weight shape: count, total and mean µs, share of
 * the pass, bytes moved, GB/s, % of the device's measured copy bandwidth, GFLOP/s. A summary line
 * gives the matrix steps together (the Q4_0 matrix-vector share of the bandwidth in decode).
 * --min takes each decode dispatch's fastest of the n steps instead of the mean (steadier on a
 * shared machine). --csv prints the raw rows (one per dispatch) instead. --shaders DIR compiles
 * DIR's GLSL (a copy of shaders/ with its CMakeLists.txt table) at run time instead of the
 * embedded SPIR-V. -b N (2..8) also profiles a speculative decoding verification batch of N tokens
 * (every row's logits) at the same depth, n times, next to the decode step; every table of
 * repeated steps ends with the wall time of one submit-and-wait (mean and fastest), the cost a
 * caller sees. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "benchutil.h"
#include "cmds.h"
#include "forward.h"
#include "platform.h"
#include "shader_rt.h"

struct group {
    const char *label;
    char shape[48];
    uint32_t count, dispatches;
    double ns, bytes, flops;
};

#define USAGE                                                                                      \
    "nibble profile -m MODEL [-p 128] [-n 16] [-b 4] [--csv] [--min] [--probe-mb 64] "             \
    "[--fresh-probe] [--shaders DIR]"

static int usage(void)
{
    fprintf(stderr, "usage: " USAGE "\n");
    return 2;
}

/* Groups dispatches by (label, shape) in order of first appearance. Returns the group count. */
static uint32_t group(const struct bu_step *st, const double *ns, uint32_t n, struct group *g)
{
    uint32_t ng = 0;
    const char *shape = "";
    for (uint32_t i = 0; i < n; i++) {
        if (st[i].first) shape = st[i].shape;
        uint32_t k = 0;
        while (k < ng && !(g[k].label == st[i].label && !strcmp(g[k].shape, shape))) k++;
        if (k == ng) {
            memset(&g[ng], 0, sizeof g[ng]);
            g[ng].label = st[i].label;
            snprintf(g[ng].shape, sizeof g[ng].shape, "%s", shape);
            ng++;
        }
        g[k].count += st[i].first;
        g[k].dispatches++;
        g[k].ns += ns[i];
        g[k].bytes += st[i].bytes;
        g[k].flops += st[i].flops;
    }
    return ng;
}

static void table(const char *title, const struct bu_step *st, const double *ns, uint32_t n,
                  double copy_gbs, struct group *g)
{
    uint32_t ng = group(st, ns, n, g);
    double total = 0, mbytes = 0, mns = 0;
    for (uint32_t i = 0; i < n; i++) total += ns[i];
    for (uint32_t k = 0; k < ng; k++)
        if (g[k].flops > 0) {
            mbytes += g[k].bytes;
            mns += g[k].ns;
        }
    printf("\n### %s: %.1f us GPU, %u dispatches\n\n", title, total / 1e3, n);
    printf("| step | shape | count | total us | mean us | share | MB | GB/s | %% of copy bw | "
           "GFLOP/s |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (uint32_t k = 0; k < ng; k++) {
        struct group *x = &g[k];
        double gbs = x->ns > 0 ? x->bytes / x->ns : 0;
        printf("| %s | %s | %u | %.1f | %.2f | %.1f%% | ", x->label, x->shape, x->count,
               x->ns / 1e3, x->count ? x->ns / 1e3 / x->count : 0, 100 * x->ns / total);
        if (x->bytes > 0)
            printf("%.2f | %.2f | %.1f | ", x->bytes / 1e6, gbs,
                   copy_gbs > 0 ? 100 * gbs / copy_gbs : 0);
        else
            printf("- | - | - | ");
        if (x->flops > 0) printf("%.2f |\n", x->ns > 0 ? x->flops / x->ns : 0);
        else printf("- |\n");
    }
    if (mns > 0)
        printf("\nmatrix steps: %.1f%% of the time, %.2f MB at %.2f GB/s = %.1f%% of the copy "
               "bandwidth (%.2f GB/s)\n",
               100 * mns / total, mbytes / 1e6, mbytes / mns,
               copy_gbs > 0 ? 100 * (mbytes / mns) / copy_gbs : 0, copy_gbs);
}

static void csv(const char *phase, const struct bu_step *st, const double *ns, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        printf("%s,%u,%s,%d,%s,%d,%.0f,%.0f,%.0f\n", phase, i, st[i].label, st[i].layer,
               st[i].shape, st[i].first, ns[i], st[i].bytes, st[i].flops);
}

/* the ids and positions of a batch of n tokens at pos0.. (nb_fwd_run's inputs; a PLE model's
 * per-layer rows are left as the last run wrote them: the times do not depend on them) */
static void write_batch(struct nb_fwd *f, const int32_t *ids, uint32_t n, uint32_t pos0)
{
    uint32_t *pi = f->ids.map, *pp = f->pos.map;
    for (uint32_t i = 0; i < n; i++) {
        pi[i] = (uint32_t)ids[i];
        pp[i] = pos0 + i;
    }
}

/* The wall time of one submit-and-wait of a batch of n tokens at pos0 (the decode recording for
 * n 1, f->cmd as last recorded otherwise), over reps runs: mean and fastest. */
static void wall(const char *what, struct nb_fwd *f, const int32_t *ids, uint32_t n,
                 uint32_t pos0, uint32_t reps)
{
    if (!f || !reps) return;
    double sum = 0, best = 0;
    for (uint32_t s = 0; s < reps; s++) {
        write_batch(f, ids, n, pos0);
        uint64_t t0 = plat_now_ns();
        vkx_cmd_submit_wait(&f->g->vk, n == 1 ? &f->dec : &f->cmd);
        double t = (plat_now_ns() - t0) / 1e3;
        sum += t;
        if (s == 0 || t < best) best = t;
    }
    printf("\nwall time of one %s of %u token%s (submit and wait, %u runs): mean %.1f us, fastest "
           "%.1f us\n", what, n, n == 1 ? "" : "s", reps, sum / reps, best);
}

int cmd_profile(int argc, char **argv)
{
    const char *model = NULL;
    uint32_t p = 128, n = 16, probe = 64, b = 0;
    bool as_csv = false, fresh = false, use_min = false;
    const char *shaders = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--csv")) {
            as_csv = true;
            continue;
        }
        if (!strcmp(a, "--min")) {
            use_min = true;
            continue;
        }
        if (!strcmp(a, "--fresh-probe")) {
            fresh = true;
            continue;
        }
        if (strcmp(a, "-m") && strcmp(a, "-p") && strcmp(a, "-n") && strcmp(a, "-b") &&
            strcmp(a, "--probe-mb") &&
            strcmp(a, "--shaders"))
            return args_unknown("profile", a, USAGE);
        if (!(v = args_value("profile", argc, argv, &i))) return 2;
        int bad = 0;
        if (!strcmp(a, "-m")) model = v;
        else if (!strcmp(a, "-p")) bad = args_u32("profile", a, v, 0, 1 << 16, &p);
        else if (!strcmp(a, "-n")) bad = args_u32("profile", a, v, 0, 1 << 16, &n);
        else if (!strcmp(a, "-b"))
            bad = args_u32("profile", a, v, 2, NB_MATVEC_MAX_TOKENS, &b);
        else if (!strcmp(a, "--probe-mb")) bad = args_u32("profile", a, v, 0, 4096, &probe);
        else shaders = v;
        if (bad) return 2;
    }
    if (!model || (p == 0 && n == 0)) return usage();

    char err[512];
    int n_sh = 0;
    if (shaders && nb_shaders_from_dir(shaders, &n_sh, err, sizeof err) != 0) {
        fprintf(stderr, "nibble profile: --shaders %s: %s\n", shaders, err);
        return 1;
    }
    struct nb_gpu_model g;
    struct vkx_opts vo = {.device_index = -1, .pipeline_cache_dir = shaders ? "" : NULL};
    if (nb_gpu_model_load(&g, model, &vo, err, sizeof err) != 0) {
        fprintf(stderr, "nibble profile: %s\n", err);
        return 1;
    }
    int rc = 1;
    struct nb_fwd f = {0};
    double *ns = NULL, *acc = NULL;
    struct bu_step *st = NULL;
    struct group *gr = NULL;
    int32_t *ids = NULL;
    if (!g.vk.caps.timestamps) {
        fprintf(stderr, "nibble profile: the device has no compute timestamps\n");
        goto out;
    }
    uint32_t n_ctx = p + n + b + 1, V = g.m.cfg.n_vocab;
    uint32_t nbatch = p > b ? p : b ? b : 1;
    if (nb_fwd_create(&f, &g, n_ctx, nbatch, false, true, err, sizeof err) != 0) {
        fprintf(stderr, "nibble profile: %s\n", err);
        goto out;
    }
    /* the model's pipelines, counted before the probe makes its own */
    uint32_t pipes = g.vk.pipelines_created, compiled = g.vk.pipelines_compiled;
    struct vkx_bandwidth bw = {0};
    if (probe && bu_bandwidth(&g.vk, probe, fresh, &bw, err, sizeof err) != 0)
        fprintf(stderr, "nibble profile: bandwidth probe: %s\n", err);
    uint32_t maxd = f.max_dispatches;
    ns = calloc(maxd, sizeof *ns);
    acc = calloc(maxd, sizeof *acc);
    st = calloc(maxd, sizeof *st);
    gr = calloc(maxd, sizeof *gr);
    ids = malloc(n_ctx * sizeof *ids);
    if (!ns || !acc || !st || !gr || !ids) {
        fprintf(stderr, "nibble profile: out of host memory\n");
        goto out;
    }
    for (uint32_t i = 0; i < n_ctx; i++) ids[i] = (int32_t)((i * 2654435761u) % V);

    char dev[1024];
    vkx_device_line(&g.vk, dev, sizeof dev);
    if (!as_csv) {
        printf("device: %s\n", dev);
        if (shaders) printf("shaders: %d variants compiled from %s\n", n_sh, shaders);
        printf("pipelines: %u created, %u compiled (no hit in the pipeline cache%s%s)\n", pipes,
               compiled,
               g.vk.pipeline_cache_path[0] ? " " : ", which is off",
               g.vk.pipeline_cache_path);
        if (bw.copy_gbs > 0)
            printf("bandwidth: copy %.2f GB/s (%s), read %.2f GB/s (%s), transfer copy %.2f GB/s\n",
                   bw.copy_gbs, bw.copy_shape, bw.read_gbs, bw.read_shape, bw.transfer_gbs);
    } else {
        printf("phase,index,label,layer,shape,first,ns,bytes,flops\n");
    }
    if (p > 1) {
        nb_fwd_run(&f, ids, p, 0, false); /* warm-up */
        nb_fwd_run(&f, ids, p, 0, false);
        uint32_t k = vkx_cmd_read_times(&g.vk, &f.cmd, ns, maxd);
        uint32_t m = bu_steps(&g, &f.cmd, p, st, k);
        char title[64];
        snprintf(title, sizeof title, "prefill p%u", p);
        if (as_csv) csv("prefill", st, ns, m);
        else table(title, st, ns, m, bw.copy_gbs, gr);
    }
    if (n) {
        uint32_t k = 0;
        nb_fwd_run(&f, ids + p, 1, p, false); /* warm-up, records the step */
        for (uint32_t s = 0; s < n; s++) {
            nb_fwd_run(&f, ids + p + s, 1, p + s, false);
            k = vkx_cmd_read_times(&g.vk, &f.dec, ns, maxd);
            for (uint32_t i = 0; i < k; i++)
                acc[i] = !use_min ? acc[i] + ns[i] / n : s == 0 || ns[i] < acc[i] ? ns[i] : acc[i];
        }
        uint32_t m = bu_steps(&g, &f.dec, 1, st, k);
        char title[64];
        snprintf(title, sizeof title, "decode (%s of %u steps at depth %u)",
                 use_min ? "fastest of each dispatch" : "mean", n, p);
        if (as_csv) csv("decode", st, acc, m);
        else table(title, st, acc, m, bw.copy_gbs, gr);
        if (!as_csv) wall("decode step", &f, ids + p, 1, p, n);
    }
    if (n && b) { /* a verification batch of b tokens at depth p (the same positions, rewritten) */
        uint32_t k = 0;
        memset(acc, 0, maxd * sizeof *acc);
        nb_fwd_record(&f, &f.cmd, b, true);
        for (uint32_t s = 0; s <= n; s++) { /* the first submit is a warm-up */
            write_batch(&f, ids + p, b, p);
            vkx_cmd_submit_wait(&g.vk, &f.cmd);
            if (s == 0) continue;
            k = vkx_cmd_read_times(&g.vk, &f.cmd, ns, maxd);
            for (uint32_t i = 0; i < k; i++)
                acc[i] = !use_min ? acc[i] + ns[i] / n : s == 1 || ns[i] < acc[i] ? ns[i] : acc[i];
        }
        uint32_t m = bu_steps(&g, &f.cmd, b, st, k);
        char title[80];
        snprintf(title, sizeof title, "verification of %u tokens (%s of %u at depth %u)", b,
                 use_min ? "fastest of each dispatch" : "mean", n, p);
        if (as_csv) csv("verify", st, acc, m);
        else table(title, st, acc, m, bw.copy_gbs, gr);
        if (!as_csv) wall("verification", &f, ids + p, b, p, n);
    }
    rc = 0;
out:
    if (f.g) nb_fwd_destroy(&f);
    free(ns);
    free(acc);
    free(st);
    free(gr);
    free(ids);
    nb_gpu_model_free(&g);
    return rc;
}

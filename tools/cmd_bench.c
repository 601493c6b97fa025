/* nibble bench -m MODEL [-p 512] [-n 128] [-r REPS] [-d DEPTH] [-b BATCH] [-o md|json]
 *              [--probe-mb MIB] [--fresh-probe] [--load-only]
 *
 * Like llama-bench: prompt processing of p tokens (one eval, in chunks of BATCH) and generation
 * of n tokens (n decode steps, the recorded step replayed), each after a warm-up and repeated r
 * times, at depth d (d tokens already in the KV cache). Reports tok/s (median and mean ±
 * standard deviation), the effective weight bandwidth (the weight bytes a step reads x tok/s:
 * bu_batch_bytes, one row of each embedding table per token and only the experts routed to;
 * for pp each chunk's) and its share of the device's measured copy bandwidth, then the host
 * time per decoded token against its GPU time (a second pass with timestamps) and the peak host
 * memory while loading against the file size. --load-only stops after loading (no probe, no forward
 * pass), so `/usr/bin/time -v nibble bench --load-only -m MODEL` measures loading alone.
 * Token ids are fixed pseudo-random ids; no sampling is timed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "bench_spec.h"
#include "benchutil.h"
#include "cmds.h"
#include "forward.h"
#include "platform.h"

struct opts {
    const char *model, *fmt;
    uint32_t p, n, r, d, b, probe_mib;
    bool fresh, load_only;
};

struct result {
    const char *kind; /* "pp" or "tg" */
    uint32_t n;
    double med, mean, sd, best; /* tok/s */
    double gbs;           /* effective weight bandwidth at the median */
};

static int usage(void)
{
    fprintf(stderr, "usage: nibble bench -m MODEL [-p 512] [-n 128] [-r 5] [-d 0] [-b 512]\n"
                    "                    [-o md|json] [--probe-mb 64] [--fresh-probe] [--load-only]\n");
    return 2;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void stats(double *v, uint32_t n, struct result *r)
{
    double s = 0, s2 = 0;
    for (uint32_t i = 0; i < n; i++) s += v[i];
    r->mean = s / n;
    for (uint32_t i = 0; i < n; i++) s2 += (v[i] - r->mean) * (v[i] - r->mean);
    r->sd = n > 1 ? sqrt(s2 / (n - 1)) : 0;
    qsort(v, n, sizeof *v, cmp_d);
    r->med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    r->best = v[n - 1];
}

/* Pseudo-random ordinary token ids (past the specials and byte tokens when the vocabulary allows). */
static uint32_t token_id(uint32_t i, uint32_t V)
{
    uint32_t h = i * 2654435761u;
    return V > 600 ? h % (V - 300) + 263 : h % V;
}

/* Prefill n tokens at pos0.. in chunks of f->n_batch (last row's logits). */
static void prefill(struct nb_fwd *f, uint32_t n, uint32_t pos0, int32_t *ids)
{
    for (uint32_t i = 0; i < n; i += f->n_batch) {
        uint32_t t = n - i < f->n_batch ? n - i : f->n_batch;
        nb_fwd_run(f, ids + pos0 + i, t, pos0 + i, false);
    }
}

/* Host time vs GPU time of decode steps, with timestamps on. */
static int host_vs_gpu(struct nb_gpu_model *g, const struct opts *o, uint32_t n_ctx,
                       int32_t *ids, double *host_us, double *gpu_us, char *err, size_t errlen)
{
    struct nb_fwd f;
    if (nb_fwd_create(&f, g, n_ctx, o->b, false, true, err, errlen) != 0) return -1;
    double *ns = malloc(f.max_dispatches * sizeof *ns);
    if (!ns) {
        nb_fwd_destroy(&f);
        snprintf(err, errlen, "out of host memory");
        return -1;
    }
    if (o->d) prefill(&f, o->d, 0, ids);
    uint32_t steps = o->n < 32 ? o->n : 32;
    nb_fwd_run(&f, ids + o->d, 1, o->d, false); /* warm-up, records the step */
    double wall = 0, gpu = 0;
    for (uint32_t i = 0; i < steps; i++) {
        uint64_t t0 = plat_now_ns();
        nb_fwd_run(&f, ids + o->d + i, 1, o->d + i, false);
        wall += (double)(plat_now_ns() - t0);
        uint32_t k = vkx_cmd_read_times(&g->vk, &f.dec, ns, f.max_dispatches);
        for (uint32_t j = 0; j < k; j++) gpu += ns[j];
    }
    *host_us = (wall - gpu) / steps / 1e3;
    *gpu_us = gpu / steps / 1e3;
    free(ns);
    nb_fwd_destroy(&f);
    return 0;
}

/* Memory of the load, measured right after it (device memory: the weights' buffers). On a CPU
 * device, device memory is host memory, and an integrated GPU's is mapped and written by the
 * loader (the UMA path): either way it counts in RSS, and the share without it is what loading
 * costs on top of the weights (driver, pipelines, the loader's own buffers and file pages). */
struct load_mem {
    double s;
    uint64_t rss, dev, file; /* peak RSS while loading, device memory, file size (bytes) */
    uint64_t host_weights;   /* weights left in the mapped file (per-layer embeddings) */
    bool dev_in_rss;
};

static void print_load(const struct load_mem *m)
{
    char a[32], b[32], c[32];
    double f = m->file ? 100.0 / (double)m->file : 0;
    printf("load: %.2f s; peak RSS %s while loading = %.1f%% of the %s file; device memory %s\n",
           m->s, bu_size(m->rss, a, sizeof a), f * (double)m->rss, bu_size(m->file, b, sizeof b),
           bu_size(m->dev, c, sizeof c));
    if (m->host_weights)
        printf("per-layer embeddings left in the mapped file (not in device memory): %s\n",
               bu_size(m->host_weights, a, sizeof a));
    if (m->dev_in_rss)
        printf("load without device memory (host memory on this device, counted in RSS): %s = "
               "%.1f%% of the file\n",
               bu_size(m->rss > m->dev ? m->rss - m->dev : 0, a, sizeof a),
               f * ((double)m->rss - (double)m->dev));
}

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20) printf("\\u%04x", *s);
        else putchar(*s);
    }
    putchar('"');
}

int cmd_bench(int argc, char **argv)
{
    if (bench_spec_wanted(argc, argv)) return bench_spec(argc, argv); /* tools/bench_spec.c */
    struct opts o = {NULL, "md", 512, 128, 5, 0, 512, 64, false, false};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (!strcmp(a, "-m") && v) o.model = argv[++i];
        else if (!strcmp(a, "-o") && v) o.fmt = argv[++i];
        else if (!strcmp(a, "-p") && v) bad = args_u32("bench", a, argv[++i], 0, 1 << 20, &o.p);
        else if (!strcmp(a, "-n") && v) bad = args_u32("bench", a, argv[++i], 0, 1 << 20, &o.n);
        else if (!strcmp(a, "-r") && v) bad = args_u32("bench", a, argv[++i], 1, 1000, &o.r);
        else if (!strcmp(a, "-d") && v) bad = args_u32("bench", a, argv[++i], 0, 1 << 22, &o.d);
        else if (!strcmp(a, "-b") && v) bad = args_u32("bench", a, argv[++i], 1, 1 << 16, &o.b);
        else if (!strcmp(a, "--probe-mb") && v)
            bad = args_u32("bench", a, argv[++i], 0, 4096, &o.probe_mib);
        else if (!strcmp(a, "--fresh-probe")) o.fresh = true;
        else if (!strcmp(a, "--load-only")) o.load_only = true;
        else return usage();
        if (bad) return 2; /* args_u32 named the flag */
    }
    if (!o.model || (strcmp(o.fmt, "md") && strcmp(o.fmt, "json"))) return usage();
    bool json = !strcmp(o.fmt, "json");

    char err[512];
    struct nb_gpu_model g;
    struct vkx_opts vo = {.device_index = -1};
    uint64_t t_load = plat_now_ns();
    if (nb_gpu_model_load(&g, o.model, &vo, err, sizeof err) != 0) {
        fprintf(stderr, "nibble bench: %s\n", err);
        return 1;
    }
    struct load_mem lm = {(plat_now_ns() - t_load) / 1e9, plat_peak_rss(),
                          g.vk.peak_allocated_bytes, g.m.gguf->size, g.host_weight_bytes,
                          g.vk.caps.type == VK_PHYSICAL_DEVICE_TYPE_CPU ||
                              (g.vk.caps.type == VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU &&
                               g.vk.mem_uma != UINT32_MAX)};
    const struct nb_config *cf = &g.m.cfg;
    char dev[1024];
    vkx_device_line(&g.vk, dev, sizeof dev);
    const char *base = strrchr(o.model, '/') ? strrchr(o.model, '/') + 1 : o.model;
    if (o.load_only) {
        if (json) {
            printf("{\"model\": ");
            json_str(base);
            printf(", \"test\": \"load\", \"load_s\": %.4f, \"load_rss\": %llu, "
                   "\"device_bytes\": %llu, \"host_weight_bytes\": %llu, \"file_size\": %llu, "
                   "\"device_in_rss\": %s, \"device\": ",
                   lm.s, (unsigned long long)lm.rss, (unsigned long long)lm.dev,
                   (unsigned long long)lm.host_weights, (unsigned long long)lm.file,
                   lm.dev_in_rss ? "true" : "false");
            json_str(dev);
            printf("}\n");
        } else {
            printf("device: %s\n", dev);
            print_load(&lm);
        }
        fflush(stdout);
        nb_gpu_model_free(&g);
        return 0;
    }
    struct vkx_bandwidth bw = {0};
    if (o.probe_mib && bu_bandwidth(&g.vk, o.probe_mib, o.fresh, &bw, err, sizeof err) != 0) {
        fprintf(stderr, "nibble bench: bandwidth probe: %s\n", err);
        bw.copy_gbs = 0;
    }
    uint32_t n_ctx = o.d + (o.p > o.n ? o.p : o.n) + 1;
    uint32_t need = o.p > o.d ? o.p : o.d; /* no larger batch than any prefill needs */
    if (o.b > (need ? need : 1)) o.b = need ? need : 1;
    int32_t *ids = malloc((size_t)n_ctx * sizeof *ids);
    double *tps = malloc((size_t)o.r * sizeof *tps);
    struct nb_fwd f;
    int rc = 1;
    if (!ids || !tps) {
        fprintf(stderr, "nibble bench: out of host memory\n");
        goto out;
    }
    for (uint32_t i = 0; i < n_ctx; i++) ids[i] = (int32_t)token_id(i, cf->n_vocab);
    if (nb_fwd_create(&f, &g, n_ctx, o.b, false, false, err, sizeof err) != 0) {
        fprintf(stderr, "nibble bench: %s\n", err);
        goto out;
    }
    if (o.d) prefill(&f, o.d, 0, ids);

    /* bytes one decoded token reads; the model's weights, on the device and left on the host */
    uint64_t tok_bytes = bu_batch_bytes(&g, 1), model_bytes = g.weight_bytes + g.host_weight_bytes;
    struct result res[2];
    int nres = 0;
    if (o.p) {
        prefill(&f, o.p, o.d, ids); /* warm-up */
        for (uint32_t r = 0; r < o.r; r++) {
            uint64_t t0 = plat_now_ns();
            prefill(&f, o.p, o.d, ids);
            tps[r] = o.p / ((plat_now_ns() - t0) / 1e9);
        }
        struct result *x = &res[nres++];
        x->kind = "pp";
        x->n = o.p;
        stats(tps, o.r, x);
        double bytes = 0; /* what the chunks of the prefill read, each all its weights */
        for (uint32_t i = 0; i < o.p; i += f.n_batch)
            bytes += (double)bu_batch_bytes(&g, o.p - i < f.n_batch ? o.p - i : f.n_batch);
        x->gbs = bytes / (o.p / x->med) / 1e9;
    }
    if (o.n) {
        nb_fwd_run(&f, ids + o.d, 1, o.d, false); /* warm-up, records the step */
        for (uint32_t r = 0; r < o.r; r++) {
            uint64_t t0 = plat_now_ns();
            for (uint32_t i = 0; i < o.n; i++) nb_fwd_run(&f, ids + o.d + i, 1, o.d + i, false);
            tps[r] = o.n / ((plat_now_ns() - t0) / 1e9);
        }
        struct result *x = &res[nres++];
        x->kind = "tg";
        x->n = o.n;
        stats(tps, o.r, x);
        x->gbs = (double)tok_bytes * x->med / 1e9;
    }
    nb_fwd_destroy(&f);

    double host_us = 0, gpu_us = 0;
    bool have_hg = o.n && g.vk.caps.timestamps &&
                   host_vs_gpu(&g, &o, n_ctx, ids, &host_us, &gpu_us, err, sizeof err) == 0;

    uint64_t params = bu_params(&g), peak_rss = plat_peak_rss();
    char sz[32];
    if (!json) {
        printf("device: %s\n", dev);
        if (bw.copy_gbs > 0)
            printf("bandwidth: copy %.2f GB/s (%s), read %.2f GB/s (%s), transfer copy %.2f GB/s "
                   "(%u MiB probe, %s)\n",
                   bw.copy_gbs, bw.copy_shape, bw.read_gbs, bw.read_shape, bw.transfer_gbs,
                   o.probe_mib, bw.gpu_timed ? "GPU timed" : "host timed");
        printf("weights read per decoded token: %s of %s", bu_size(tok_bytes, sz, sizeof sz),
               bu_size(model_bytes, (char[32]){0}, 32));
        if (g.host_weight_bytes)
            printf(" (%s of them per-layer embeddings in host memory, one row per token)",
                   bu_size(g.host_weight_bytes, sz, sizeof sz));
        printf("\n\n");
        printf("| model | size | params | test | t/s (median) | t/s (mean ± sd) | weights GB/s | "
               "%% of copy bw |\n|---|---:|---:|---|---:|---:|---:|---:|\n");
    }
    for (int i = 0; i < nres; i++) {
        struct result *x = &res[i];
        char test[32];
        if (o.d) snprintf(test, sizeof test, "%s%u @ d%u", x->kind, x->n, o.d);
        else snprintf(test, sizeof test, "%s%u", x->kind, x->n);
        double pct = bw.copy_gbs > 0 ? 100 * x->gbs / bw.copy_gbs : 0;
        if (!json) {
            printf("| %s | %s | %.2f M | %s | %.2f | %.2f ± %.2f | %.2f | %.1f |\n", base,
                   bu_size(model_bytes, sz, sizeof sz), params / 1e6, test, x->med, x->mean,
                   x->sd, x->gbs, pct);
            continue;
        }
        printf("{\"model\": ");
        json_str(base);
        printf(", \"model_size\": %llu, \"model_n_params\": %llu, \"test\": ",
               (unsigned long long)model_bytes, (unsigned long long)params);
        snprintf(test, sizeof test, "%s%u", x->kind, x->n);
        json_str(test);
        printf(", \"n_prompt\": %u, \"n_gen\": %u, \"n_depth\": %u, \"n_batch\": %u, \"reps\": %u"
               ", \"avg_ts\": %.4f, \"stddev_ts\": %.4f, \"median_ts\": %.4f, \"max_ts\": %.4f"
               ", \"weights_gbs\": %.4f, \"copy_gbs\": %.4f, \"bw_pct\": %.2f",
               x->kind[0] == 'p' ? x->n : 0, x->kind[0] == 't' ? x->n : 0, o.d, o.b, o.r,
               x->mean, x->sd, x->med, x->best, x->gbs, bw.copy_gbs, pct);
        if (x->kind[0] == 't' && have_hg)
            printf(", \"host_us_per_token\": %.2f, \"gpu_us_per_token\": %.2f", host_us, gpu_us);
        printf(", \"load_rss\": %llu, \"peak_rss\": %llu, \"device_bytes\": %llu"
               ", \"file_size\": %llu, \"device\": ",
               (unsigned long long)lm.rss, (unsigned long long)peak_rss,
               (unsigned long long)lm.dev, (unsigned long long)lm.file);
        json_str(dev);
        printf("}\n");
    }
    if (!json) {
        printf("\n");
        if (have_hg)
            printf("decode step: GPU %.1f us, host %.1f us per token (%.2f%% of the GPU time)\n",
                   gpu_us, host_us, gpu_us > 0 ? 100 * host_us / gpu_us : 0);
        print_load(&lm);
        printf("peak RSS at the end: %s\n", bu_size(peak_rss, sz, sizeof sz));
    }
    fflush(stdout);
    rc = 0;
out:
    free(ids);
    free(tps);
    nb_gpu_model_free(&g);
    return rc;
}

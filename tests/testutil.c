/* testutil.c: see testutil.h. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "nibble.h"
#include "quant.h"

/* NIBBLE_TEST_FILTER=PATTERN runs only the tests of a program whose names match (cmocka's
 * pattern, '*' and '?'), before main runs them: the arm64 stage runs test_forward's goldens
 * only (tools/arm64.sh). */
__attribute__((constructor)) static void nb_test_filter(void)
{
    const char *f = getenv("NIBBLE_TEST_FILTER");
    if (f && *f) cmocka_set_test_filter(f);
}

const char *nb_test_file(const char *name)
{
    static char path[2048];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", NB_TEST_DATA, name);
    if (stat(path, &st) == 0) return path;
    snprintf(path, sizeof path, "%s/%s", NB_GOLDEN_DIR, name);
    if (stat(path, &st) == 0) return path;
    return NULL;
}

void *nb_test_read(const char *path, size_t *size)
{
    FILE *f = path ? fopen(path, "rb") : NULL;
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *p = malloc(n > 0 ? (size_t)n : 1);
    if (p && n > 0 && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    fclose(f);
    if (p && size) *size = (size_t)n;
    return p;
}

static struct vkx_ctx vk;
static int vk_state; /* 0 untried, 1 ok, -1 none */

struct vkx_ctx *nb_test_vk(void)
{
    if (vk_state == 0) {
        char err[512];
        struct vkx_opts o = {.device_index = -1, .validation = true};
        if (vkx_create(&vk, &o, err, sizeof err) != 0) {
            fprintf(stderr, "no Vulkan device: %s\n", err);
            vk_state = -1;
        } else {
            char line[1024];
            vkx_device_line(&vk, line, sizeof line);
            printf("# Vulkan device: %s\n", line);
            vk_state = 1;
        }
    }
    return vk_state == 1 ? &vk : NULL;
}

static uint32_t seen_msgs;

void nb_test_check_validation(void)
{
    uint32_t n = vkx_validation_messages();
    uint32_t new_msgs = n - seen_msgs;
    seen_msgs = n;
    if (new_msgs) fail_msg("%u validation message(s), see above", new_msgs);
}

void nb_test_vk_done(void)
{
    if (vk_state == 1) vkx_destroy(&vk);
    vk_state = 0;
}

int nb_test_vk_fallback(struct vkx_ctx *own)
{
    char err[256];
    struct vkx_opts o = {.device_index = -1,
                         .validation = true,
                         .disable = "fp16,subgroup,int8,texel,halfcvt"};
    if (vkx_create(own, &o, err, sizeof err) != 0) {
        printf("# fallback ctx: %s\n", err);
        return -1;
    }
    return 0;
}

int nb_test_fixture_setup(void **state, struct nb_test_fixture *f, bool fallback, void *op,
                          nb_test_op_create_fn create, nb_test_op_destroy_fn destroy)
{
    memset(f, 0, sizeof *f);
    *state = NULL;
    f->vk = nb_test_vk();
    if (!f->vk) return 0;
    if (fallback) {
        if (nb_test_vk_fallback(&f->own) != 0) return -1;
        f->have_own = true;
        f->vk = &f->own;
    }
    char err[512];
    if (create(op, f->vk, err, sizeof err) != 0) {
        printf("# create: %s\n", err);
        if (f->have_own) vkx_destroy(&f->own);
        f->have_own = false;
        return -1;
    }
    f->op = op;
    f->destroy = destroy;
    *state = f;
    return 0;
}

int nb_test_fixture_teardown(void **state)
{
    struct nb_test_fixture *f = *state;
    if (f) {
        if (f->op) f->destroy(f->op, f->vk);
        if (f->have_own) vkx_destroy(&f->own);
        f->op = NULL;
        f->have_own = false;
    }
    nb_test_check_validation();
    return 0;
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
void nb_test_seed(uint64_t s) { rng = s * 0x9E3779B97F4A7C15ull + 1; }
uint32_t nb_test_randu(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}
float nb_test_randf(void) { return (float)(nb_test_randu() & 0xFFFFFF) / 8388608.0f - 1.0f; }

size_t nb_test_compare(const char *what, const float *got, const float *ref, size_t n, float abs_tol,
                       float rel_tol)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        float t = abs_tol + rel_tol * fabsf(ref[i]);
        if (!(fabsf(got[i] - ref[i]) <= t)) { /* also catches NaN */
            if (bad < 10)
                printf("# %s[%zu]: got %g, want %g (tol %g)\n", what, i, (double)got[i],
                       (double)ref[i], (double)t);
            bad++;
        }
    }
    if (bad) printf("# %s: %zu of %zu values out of tolerance\n", what, bad, n);
    return bad;
}

/* A random normal half of magnitude [2^(e0-15), 2^(e0-10)) (a quant block scale). */
static uint16_t rand_scale(uint32_t e0)
{
    return (uint16_t)(((nb_test_randu() & 1) << 15) | ((e0 + nb_test_randu() % 5) << 10) |
                      (nb_test_randu() & 1023));
}

/* Byte offsets of the f16 scale fields of a GGUF block of `type` (ggml-common.h), the scale
 * exponent that keeps the block's values around 1 (rand_scale), and how many there are. */
static int scale_fields(enum ggml_type type, uint32_t off[2], uint32_t *e0)
{
    switch (type) {
    case GGML_Q4_0: *e0 = 9, off[0] = 0; return 1;
    case GGML_Q8_0: *e0 = 6, off[0] = 0; return 1;
    case GGML_Q4_1: *e0 = 9, off[0] = 0, off[1] = 2; return 2;
    case GGML_Q5_0: *e0 = 8, off[0] = 0; return 1;
    case GGML_Q5_1: *e0 = 8, off[0] = 0, off[1] = 2; return 2;
    case GGML_IQ4_NL: *e0 = 4, off[0] = 0; return 1;
    case GGML_Q2_K: *e0 = 7, off[0] = 80, off[1] = 82; return 2;
    case GGML_Q3_K: *e0 = 5, off[0] = 108; return 1;
    case GGML_Q4_K: *e0 = 5, off[0] = 0, off[1] = 2; return 2;
    case GGML_Q5_K: *e0 = 4, off[0] = 0, off[1] = 2; return 2;
    case GGML_Q6_K: *e0 = 1, off[0] = 208; return 1;
    case GGML_IQ4_XS: *e0 = 1, off[0] = 0; return 1;
    default: return 0;
    }
}

/* Random weights of `type`, rows x K: GGUF layout (*raw) and dequantized (*ref). Quantized
 * blocks are random bytes with finite scales of a size that keeps values around 1; *ref comes
 * from nb_dequant_row (checked against ggml itself by test_quant). */
void nb_test_weights(enum ggml_type type, uint64_t K, uint64_t rows, void **raw, float **ref)
{
    size_t rb = (size_t)ggml_row_size(type, K);
    uint8_t *w = malloc(rb * rows);
    float *f = malloc(sizeof(float) * K * rows);
    assert_non_null(w);
    assert_non_null(f);
    uint32_t off[2], e0 = 0;
    int nsc = scale_fields(type, off, &e0);
    uint32_t bs = ggml_blck_size(type), bb = ggml_type_size(type);
    for (uint64_t r = 0; r < rows; r++) {
        uint8_t *row = w + r * rb;
        float *fr = f + r * K;
        if (type == GGML_F32) {
            for (uint64_t k = 0; k < K; k++)
                fr[k] = nb_test_randf();
            memcpy(row, fr, K * 4);
            continue;
        }
        if (type == GGML_F16 || type == GGML_BF16) {
            for (uint64_t k = 0; k < K; k++) { /* |value| < 1 */
                uint16_t h = (uint16_t)(nb_test_randu() & (type == GGML_F16 ? 0xBBFF : 0xBF7F));
                memcpy(row + k * 2, &h, 2);
            }
        } else {
            assert_true(nsc > 0);
            for (size_t i = 0; i < rb; i++)
                row[i] = (uint8_t)nb_test_randu();
            for (uint64_t b = 0; b < K / bs; b++)
                for (int i = 0; i < nsc; i++) {
                    uint16_t d = rand_scale(e0);
                    memcpy(row + b * bb + off[i], &d, 2);
                }
        }
        assert_int_equal(nb_dequant_row(type, row, fr, K), 0);
    }
    *raw = w;
    *ref = f;
}

int nb_test_argmax(const float *x, size_t n)
{
    size_t b = 0;
    for (size_t i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return (int)b;
}

void nb_test_logits_compare(const float *a, const float *b, size_t rows, size_t n, double *top1,
                            double *mean, double *max)
{
    size_t agree = 0;
    double sum = 0, mx = 0;
    for (size_t r = 0; r < rows; r++) {
        agree += nb_test_argmax(a + r * n, n) == nb_test_argmax(b + r * n, n);
        for (size_t i = 0; i < n; i++) {
            double d = fabs((double)a[r * n + i] - b[r * n + i]);
            if (!(d <= 1e30)) d = 1e30;
            sum += d;
            if (d > mx) mx = d;
        }
    }
    *top1 = (double)agree / rows;
    *mean = sum / (rows * n);
    *max = mx;
}

uint32_t nb_test_klen(enum ggml_type t, uint32_t n32, uint32_t f)
{
    if (t == GGML_F32 || t == GGML_F16 || t == GGML_BF16) return f;
    uint32_t bs = ggml_blck_size(t), k = n32 * 32;
    return k < bs ? bs : (k + bs - 1) / bs * bs;
}

void nb_test_mul_ref(const float *w, const float *x, const float *y0, uint32_t K, uint32_t M,
                     uint32_t ntok, double *ref, double *mag)
{
    for (uint32_t t = 0; t < ntok; t++)
        for (uint32_t m = 0; m < M; m++) {
            double s = y0 ? y0[(size_t)t * M + m] : 0.0, a = 0.0;
            for (uint32_t k = 0; k < K; k++) {
                double p = (double)w[(size_t)m * K + k] * x[(size_t)t * K + k];
                s += p;
                a += fabs(p);
            }
            ref[(size_t)t * M + m] = s;
            if (mag) mag[(size_t)t * M + m] = a;
        }
}

void nb_test_dev_buf(struct vkx_ctx *vk, struct vkx_buffer *b, size_t bytes, const void *init)
{
    char err[256];
    assert_int_equal(vkx_buffer_create(vk, b, bytes, VKX_MEM_DEVICE, err, sizeof err), 0);
    if (init) vkx_upload(vk, b, 0, init, bytes);
}

int nb_test_sh(const char *tag, const char *cmd, char *out, char *err, size_t cap)
{
    char full[8192], path[1024];
    setenv("NB", NB_CLI, 1);
    snprintf(full, sizeof full, "( %s ) > '%s/%s.out' 2> '%s/%s.err'", cmd, NB_TEST_TMP, tag,
             NB_TEST_TMP, tag);
    int st = system(full);
    assert_true(st != -1 && WIFEXITED(st));
    char *bufs[2] = {out, err};
    const char *ext[2] = {"out", "err"};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s.%s", NB_TEST_TMP, tag, ext[i]);
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        size_t n = fread(bufs[i], 1, cap - 1, f);
        bufs[i][n] = 0;
        fclose(f);
    }
    return WEXITSTATUS(st);
}

int nb_test_cli(const char *tag, const char *args, char *out, char *err, size_t cap)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "\"$NB\" %s", args);
    return nb_test_sh(tag, cmd, out, err, cap);
}

int nb_test_generate(struct nibble_context *c, struct nibble_spec *s,
                     const struct nibble_sampler *sp, const int32_t *ids, int n_ids, int32_t *out)
{
    char err[512];
    nibble_reset(c);
    if (nibble_eval(c, ids, n_ids, false, err, sizeof err) != 0) fail_msg("%s", err);
    int n = 0;
    out[n++] = nibble_sample(c, sp);
    while (nibble_n_past(c) < nibble_n_ctx(c)) {
        if (!s) {
            if (nibble_eval(c, &out[n - 1], 1, false, err, sizeof err) != 0) fail_msg("%s", err);
            out[n++] = nibble_sample(c, sp);
            continue;
        }
        int32_t got[8];
        int k = nibble_spec_step(s, out[n - 1], sp, got, 8, err, sizeof err);
        if (k < 1) fail_msg("spec step: %s", err);
        for (int i = 0; i < k; i++)
            out[n++] = got[i];
    }
    assert_int_equal(nibble_n_past(c), nibble_n_ctx(c));
    return n;
}

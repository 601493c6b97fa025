/* gen-quant-fixtures: writes tests/data/quant/<type>.bin, what ggml itself computes for every
 * tensor type nibble converts, so tests/test_quant.c can check engine/quant.c bit for bit
 * without llama.cpp. A development tool: CMake compiles every .c file of tools/ into the nibble
 * binary, so all of this one sits behind NB_GEN_QUANT_FIXTURES and compiles to nothing there.
 *
 * Build and run against llama.cpp's prebuilt ggml (sh ../shared/tools/setup_peer.sh unpacks it):
 *
 *   P=/tmp/nibble-peer; L=$P/vk/package/bins/linux-x64-vulkan
 *   cc -std=c11 -O2 -DNB_GEN_QUANT_FIXTURES -I$P/src/ggml/include tools/gen-quant-fixtures.c \
 *      -L$L -lggml-base -Wl,-rpath,$L -lm -o /tmp/gen-quant-fixtures
 *   /tmp/gen-quant-fixtures tests/data/quant
 *
 * The output is a function of the seed below and of ggml's code alone (re-running it gives the
 * same bytes). File layout, all little-endian:
 *
 *   char magic[4] "NBQF"; u32 ggml type; u32 nq; u32 ndq   (element counts, whole blocks)
 *   f32 qin[nq]                  quantizer input: groups of awkward values (see fill())
 *   u8  qout[row_size(nq)]       ggml's reference quantizer on qin (type traits from_float_ref,
 *                                i.e. quantize_row_<type>_ref)
 *   u8  dqin[row_size(ndq)]      random block bytes; every fp16 / bf16 field finite
 *   f32 dqout[ndq]               ggml's dequantizer on dqin (type traits to_float)
 *
 * One exception is written in place of ggml's bytes: quantize_row_iq4_nl_ref leaves the nibbles
 * of an all-zero block (d = 0) as whatever its scratch array held, so for such a block the
 * generator writes nibble 8 (the level nearest 0, what ggml's searching quantizer
 * quantize_iq4_nl writes there) and says so on stdout. Such a block dequantizes to zeros either
 * way.
 */
#ifdef NB_GEN_QUANT_FIXTURES

#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml.h"

static uint64_t rng_state = 0x6e6962626c65ull; /* "nibble" */
static uint64_t rng_next(void)                  /* splitmix64 */
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static float uni(void) { return (float)((rng_next() >> 40) * 0x1p-24); } /* [0, 1) */
static float sym(void) { return 2.0f * uni() - 1.0f; }                   /* [-1, 1) */

/* Group g of n values (n = 32 or one 256 super-block), kind k, overall scale s. */
static void fill(float *x, int n, int k, float s)
{
    switch (k) {
    case 0: /* bell-shaped, sum of four uniforms */
        for (int i = 0; i < n; i++) x[i] = s * (sym() + sym() + sym() + sym());
        break;
    case 1: /* like the weights mkmodel writes: uniform, standard deviation 0.02 */
        for (int i = 0; i < n; i++) x[i] = s * 0.034641f * sym();
        break;
    case 2: /* all zeros */
        for (int i = 0; i < n; i++) x[i] = 0.0f;
        break;
    case 3: { /* one huge value among small ones */
        for (int i = 0; i < n; i++) x[i] = s * 0.01f * sym();
        x[rng_next() % (uint64_t)n] = rng_next() & 1 ? 1e4f : -1e4f;
        break;
    }
    case 4: /* negatives only */
        for (int i = 0; i < n; i++) x[i] = -s * (0.001f + 3.0f * uni());
        break;
    case 5: /* positives only, away from zero (the K-quants' min is clamped to 0) */
        for (int i = 0; i < n; i++) x[i] = s * (5.0f + uni());
        break;
    case 6: /* sparse: mostly zeros, some values below ggml's GROUP_MAX_EPS (1e-15) */
        for (int i = 0; i < n; i++) {
            uint64_t r = rng_next() % 8;
            x[i] = r == 0 ? s * sym() : r == 1 ? 1e-20f * sym() : 0.0f;
        }
        for (int i = 0; i < n / 2 && n > 32; i++) x[i] = 0.0f; /* whole zero sub-blocks */
        break;
    case 7: /* constant */
        for (int i = 0; i < n; i++) x[i] = s * 0.37f;
        break;
    case 8: /* tiny: fp16 scales become subnormal */
        for (int i = 0; i < n; i++) x[i] = 1e-6f * s * sym();
        break;
    default: /* sub-blocks of 16 at scales 10^-3 .. 10^1 */
        for (int i = 0; i < n; i += 16) {
            float m = s * powf(10.0f, -3.0f + 4.0f * uni());
            for (int j = i; j < i + 16 && j < n; j++) x[j] = m * sym();
        }
        break;
    }
}
#define N_KINDS 10

/* Byte offsets of the fp16 fields of one block (-1 ends the list). */
static const int *half_fields(enum ggml_type t)
{
    static const int at0[] = {0, -1}, at01[] = {0, 2, -1}, q2k[] = {80, 82, -1}, q3k[] = {108, -1},
                     q6k[] = {208, -1};
    switch (t) {
    case GGML_TYPE_Q4_1:
    case GGML_TYPE_Q5_1:
    case GGML_TYPE_Q4_K:
    case GGML_TYPE_Q5_K: return at01;
    case GGML_TYPE_Q2_K: return q2k;
    case GGML_TYPE_Q3_K: return q3k;
    case GGML_TYPE_Q6_K: return q6k;
    default: return at0; /* Q4_0, Q5_0, Q8_0, IQ4_NL, IQ4_XS; F16 / BF16 are all fields */
    }
}

/* Keeps a random fp16 (5-bit exponent at bit 10) or bf16 (8-bit at bit 7) finite. */
static void make_finite(uint8_t *p, int bf16)
{
    uint16_t h = (uint16_t)(p[0] | p[1] << 8);
    uint16_t em = bf16 ? 0x7f80 : 0x7c00;
    if ((h & em) == em) h &= 0xbfff; /* clear the exponent's top bit */
    p[0] = (uint8_t)h, p[1] = (uint8_t)(h >> 8);
}

static int write_all(FILE *f, const void *p, size_t n) { return fwrite(p, 1, n, f) == n ? 0 : -1; }

static int gen(const char *dir, enum ggml_type t)
{
    const struct ggml_type_traits *tr = ggml_get_type_traits(t);
    int bs = (int)ggml_blck_size(t), small = bs <= 32;
    int G = bs < 32 ? 32 : bs;         /* elements per fill() group */
    int rounds = small && bs > 1 ? 3 : 1;
    static const float round_scale[3] = {1.0f, 1e-5f, 300.0f};
    uint32_t nq = (uint32_t)(G * N_KINDS * rounds);
    uint32_t ndq = bs == 1 ? 256u : small ? 32u * 32u : 4u * 256u;
    size_t qbytes = ggml_row_size(t, nq), dqbytes = ggml_row_size(t, ndq);
    float *qin = malloc(nq * sizeof *qin), *dqout = malloc(ndq * sizeof *dqout);
    uint8_t *qout = calloc(1, qbytes), *dqin = malloc(dqbytes);
    if (!qin || !dqout || !qout || !dqin) return -1;

    for (int r = 0; r < rounds; r++)
        for (int k = 0; k < N_KINDS; k++) fill(qin + (r * N_KINDS + k) * G, G, k, round_scale[r]);
    tr->from_float_ref(qin, qout, nq);
    if (t == GGML_TYPE_IQ4_NL)
        for (uint32_t b = 0; b < nq / 32; b++) {
            uint8_t *blk = qout + b * 18;
            if (blk[0] || blk[1]) continue;
            int zero = 1;
            for (int j = 0; j < 32; j++) zero &= fabsf(qin[b * 32 + j]) < 1e-15f;
            if (!zero) continue;
            memset(blk + 2, 0x88, 16);
            printf("iq4_nl: all-zero block %u: nibbles written as 8 (ggml leaves them unset)\n", b);
        }

    for (size_t i = 0; i < dqbytes; i++) dqin[i] = (uint8_t)rng_next();
    size_t tsz = ggml_type_size(t);
    for (size_t b = 0; b < dqbytes / tsz; b++) {
        if (bs == 1) {
            make_finite(dqin + b * tsz, t == GGML_TYPE_BF16);
            continue;
        }
        for (const int *o = half_fields(t); *o >= 0; o++) make_finite(dqin + b * tsz + *o, 0);
    }
    tr->to_float(dqin, dqout, ndq);

    char name[32], path[512];
    snprintf(name, sizeof name, "%s", ggml_type_name(t));
    for (char *c = name; *c; c++) *c = (char)tolower((unsigned char)*c);
    snprintf(path, sizeof path, "%s/%s.bin", dir, name);
    FILE *f = fopen(path, "wb");
    uint32_t hdr[3] = {(uint32_t)t, nq, ndq};
    int rc = !f || write_all(f, "NBQF", 4) || write_all(f, hdr, sizeof hdr) ||
             write_all(f, qin, nq * 4) || write_all(f, qout, qbytes) ||
             write_all(f, dqin, dqbytes) || write_all(f, dqout, ndq * 4);
    if (f && fclose(f)) rc = -1;
    printf("%s: %u quantized, %u dequantized elements%s\n", path, nq, ndq,
           rc ? ": WRITE ERROR" : "");
    free(qin), free(dqout), free(qout), free(dqin);
    return rc ? -1 : 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen-quant-fixtures OUTDIR\n");
        return 2;
    }
    static const enum ggml_type types[] = {
        GGML_TYPE_F16,  GGML_TYPE_BF16, GGML_TYPE_Q4_0, GGML_TYPE_Q4_1,   GGML_TYPE_Q5_0,
        GGML_TYPE_Q5_1, GGML_TYPE_Q8_0, GGML_TYPE_Q2_K, GGML_TYPE_Q3_K,   GGML_TYPE_Q4_K,
        GGML_TYPE_Q5_K, GGML_TYPE_Q6_K, GGML_TYPE_IQ4_NL, GGML_TYPE_IQ4_XS,
    };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (gen(argv[1], types[i])) return 1;
    return 0;
}

#else
typedef int nb_gen_quant_fixtures_is_a_dev_tool; /* ISO C wants a non-empty translation unit */
#endif

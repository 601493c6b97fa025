/* nibble mkmodel --preset NAME -o FILE [--seed S] [--type TYPE]
 *
 * Writes a Gemma 4 GGUF with seeded random weights and the real shapes of a published variant (or
 * a cut-down one), so speed work needs no download. Every key and tensor llama.cpp reads is
 * written (gemma4.md §3.2, §3.3), plus a minimal gemma4 BPE vocabulary of the right size
 * (specials, 256 byte tokens, ASCII, a few merges, filler). Weights: matrices uniform with
 * standard deviation 0.02, quantized row by row with ggml's reference quantizer of TYPE (any type
 * nb_quant_row writes, default q4_0) and streamed to the file (memory stays at one row); norms,
 * router and expert scales and layer_output_scale are 1.0 and f32. A matrix whose rows are not a
 * whole number of TYPE's blocks takes llama-quantize's fallback type (fit_type). The K-quant and
 * IQ4_XS quantizers search their scales as ggml's do: 10-70x slower than q4_0 (on this machine
 * about 0.2 us per weight for q4_k, 0.6 for iq4_xs): tens of minutes for a full-size preset.
 * The *-assistant presets write Gemma 4 MTP assistants (gemma4-assistant, engine/mtp.h) for a
 * target preset, or with --target MODEL for that model's shapes (tiny-assistant needs it). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cmds.h"
#include "gguf.h"
#include "model.h"
#include "platform.h"
#include "quant.h"

/* ---- presets ---------------------------------------------------------------------------------- */

struct preset {
    const char *name, *what;
    uint32_t H, L, nh;
    uint32_t nkv_swa, nkv_full;  /* kv heads of sliding / full layers (array key when they differ) */
    uint32_t hd_swa, hd_full;    /* head dims */
    uint32_t ff, ff_shared;      /* dense MLP width; on KV-shared layers (0: same) */
    uint32_t P;                  /* per-layer embedding width (PLE), 0: none */
    uint32_t shared;             /* trailing KV-shared layers */
    uint32_t period;             /* layer l is full when (l + 1) % period == 0 (and the last one) */
    uint32_t window;             /* sliding window */
    uint32_t E, K, Fe;           /* experts, used, expert width (0: dense) */
    bool k_eq_v;                 /* full layers have no attn_v */
    uint32_t V, ctx;
};

#define V262K 262144u
static const struct preset presets[] = {
    {"e2b", "Gemma 4 E2B", 1536, 35, 8, 1, 1, 256, 512, 6144, 12288, 256, 20, 5, 512, 0, 0, 0,
     false, V262K, 131072},
    {"e4b", "Gemma 4 E4B", 2560, 42, 8, 2, 2, 256, 512, 10240, 0, 256, 18, 6, 512, 0, 0, 0, false,
     V262K, 131072},
    {"12b", "Gemma 4 12B", 3840, 48, 16, 8, 1, 256, 512, 15360, 0, 0, 0, 6, 1024, 0, 0, 0, true,
     V262K, 131072},
    {"26b-a4b", "Gemma 4 26B-A4B (MoE)", 2816, 30, 16, 8, 2, 256, 512, 2112, 0, 0, 0, 6, 1024, 128,
     8, 704, true, V262K, 262144},
    {"31b", "Gemma 4 31B", 5376, 60, 32, 16, 4, 256, 512, 21504, 0, 0, 0, 6, 1024, 0, 0, 0, true,
     V262K, 262144},
    /* cut-down: the same layer shapes, fewer layers */
    {"e2b-10l", "E2B shapes, 10 layers (5 KV-shared)", 1536, 10, 8, 1, 1, 256, 512, 6144, 12288,
     256, 5, 5, 512, 0, 0, 0, false, V262K, 131072},
    {"e4b-12l", "E4B shapes, 12 layers (6 KV-shared)", 2560, 12, 8, 2, 2, 256, 512, 10240, 0, 256,
     6, 6, 512, 0, 0, 0, false, V262K, 131072},
    {"12b-6l", "12B shapes, 6 layers", 3840, 6, 16, 8, 1, 256, 512, 15360, 0, 0, 0, 6, 1024, 0, 0,
     0, true, V262K, 131072},
    {"26b-a4b-2l", "26B-A4B shapes, 2 layers (sliding, full)", 2816, 2, 16, 8, 2, 256, 512, 2112,
     0, 0, 0, 6, 1024, 128, 8, 704, true, V262K, 262144},
    {"26b-a4b-6l", "26B-A4B shapes, 6 layers", 2816, 6, 16, 8, 2, 256, 512, 2112, 0, 0, 0, 6, 1024,
     128, 8, 704, true, V262K, 262144},
    {"31b-2l", "31B shapes, 2 layers (sliding, full)", 5376, 2, 32, 16, 4, 256, 512, 21504, 0, 0,
     0, 6, 1024, 0, 0, 0, true, V262K, 262144},
    /* small dense models */
    {"1b", "Gemma-3-1B-sized dense Gemma 4", 1152, 26, 4, 1, 1, 256, 512, 6912, 0, 0, 0, 6, 512, 0,
     0, 0, false, V262K, 32768},
    {"tiny-h1024", "dense H=1024, 8 layers, 32k vocabulary (the lavapipe target)", 1024, 8, 8, 2, 1,
     128, 256, 4096, 0, 0, 0, 4, 512, 0, 0, 0, false, 32768, 32768},
    {"tiny-h256", "dense H=256, 2 layers, 4k vocabulary (tests)", 256, 2, 4, 2, 1, 64, 128, 512, 0,
     0, 0, 2, 64, 0, 0, 0, false, 4096, 4096},
    {"tiny-ple", "PLE + KV sharing (E2B structure) H=256, 10 layers, 5 shared, 4k vocabulary",
     256, 10, 4, 1, 1, 64, 128, 256, 512, 32, 5, 5, 64, 0, 0, 0, false, 4096, 4096},
    {"tiny-moe", "MoE H=256, 2 layers, 16 experts top-4, 4k vocabulary (tests)", 256, 2, 4, 2, 1,
     64, 128, 256, 0, 0, 0, 2, 64, 16, 4, 64, true, 4096, 4096},
    /* the weight-type goldens (tests/data/types): H, FF, Fe, L*P in whole 256-blocks, 512 tokens */
    {"types-dense", "dense H=256, 2 layers (sliding, full), 512 tokens (type goldens)", 256, 2, 4,
     2, 1, 64, 128, 256, 0, 0, 0, 2, 8, 0, 0, 0, false, 512, 512},
    {"types-moe", "MoE H=256, 2 layers, 4 experts of 256 top-2, 512 tokens (type goldens)", 256, 2,
     4, 2, 1, 64, 128, 256, 0, 0, 0, 2, 8, 4, 2, 256, true, 512, 512},
    {"types-ple", "PLE (P=64) + KV sharing, 4 layers, 2 shared, 512 tokens (type goldens)", 256, 4,
     4, 1, 1, 64, 128, 256, 512, 64, 2, 2, 8, 0, 0, 0, false, 512, 512},
};
#define N_PRESETS (sizeof presets / sizeof presets[0])

/* Gemma 4 MTP assistants (llama.cpp arch gemma4-assistant, see engine/mtp.h) for a target preset:
 * layers 0..L-2 sliding, the last full; K/V heads and head dims are the target's (the assistant
 * reads the target's cache of its last sliding and last full layer). The published assistants
 * have 4 layers; their widths here are estimates (the 31B one has about 0.47 B parameters, most
 * of them its tied {Ha, V} embedding). */
struct apreset {
    const char *name, *what, *target;
    uint32_t Ha, L, nh, ff;
};
static const struct apreset apresets[] = {
    {"e2b-assistant", "MTP assistant for e2b (4 layers, H=256)", "e2b", 256, 4, 4, 2048},
    {"e4b-assistant", "MTP assistant for e4b (4 layers, H=256)", "e4b", 256, 4, 4, 2048},
    {"26b-a4b-assistant", "MTP assistant for 26b-a4b (4 layers, H=1024)", "26b-a4b", 1024, 4, 16,
     8192},
    {"31b-assistant", "MTP assistant for 31b (4 layers, H=1024)", "31b", 1024, 4, 32, 8192},
    {"tiny-h256-assistant", "MTP assistant for tiny-h256 (2 layers, H=128)", "tiny-h256", 128, 2,
     4, 256},
    {"tiny-ple-assistant", "MTP assistant for tiny-ple (2 layers, H=128)", "tiny-ple", 128, 2, 4,
     256},
    {"tiny-moe-assistant", "MTP assistant for tiny-moe (2 layers, H=128)", "tiny-moe", 128, 2, 4,
     256},
    {"tiny-assistant", "MTP assistant (2 layers, H=128) for the model given by --target FILE", NULL,
     128, 2, 4, 256},
};
#define N_APRESETS (sizeof apresets / sizeof apresets[0])

static bool layer_full(const struct preset *p, uint32_t l)
{
    return (l + 1) % p->period == 0 || l + 1 == p->L;
}
static bool layer_has_kv(const struct preset *p, uint32_t l) { return l < p->L - p->shared; }
static uint32_t layer_ff(const struct preset *p, uint32_t l)
{
    return !layer_has_kv(p, l) && p->ff_shared ? p->ff_shared : p->ff;
}

/* ---- a streaming GGUF writer: header and tensor infos in memory, data row by row -------------- */

struct buf {
    uint8_t *p;
    size_t n, cap;
    bool oom;
    uint64_t n_kv; /* keys written */
};
static void put(struct buf *b, const void *src, size_t n)
{
    if (b->oom) return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1 << 16;
        while (cap < b->n + n) cap *= 2;
        uint8_t *q = realloc(b->p, cap);
        if (!q) {
            b->oom = true;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void put_u32(struct buf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(struct buf *b, uint64_t v) { put(b, &v, 8); }
static void put_str(struct buf *b, const char *s)
{
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}
static void key(struct buf *b, const char *k, enum gguf_vtype t)
{
    put_str(b, k);
    put_u32(b, (uint32_t)t);
    b->n_kv++;
}
static void kv_u32(struct buf *b, const char *k, uint32_t v)
{
    key(b, k, GGUF_U32);
    put_u32(b, v);
}
static void kv_f32(struct buf *b, const char *k, float v)
{
    key(b, k, GGUF_F32);
    put(b, &v, 4);
}
static void kv_bool(struct buf *b, const char *k, bool v)
{
    key(b, k, GGUF_BOOL);
    uint8_t x = v;
    put(b, &x, 1);
}
static void kv_str(struct buf *b, const char *k, const char *v)
{
    key(b, k, GGUF_STRING);
    put_str(b, v);
}
static void arr_head(struct buf *b, const char *k, enum gguf_vtype elem, uint64_t n)
{
    key(b, k, GGUF_ARRAY);
    put_u32(b, (uint32_t)elem);
    put_u64(b, n);
}

#define MAX_TENSORS 2048
#define ALIGN 32
enum fill { FILL_RAND, FILL_ONE, FILL_ROPE };
struct tinfo {
    char name[64];
    uint32_t nd;
    uint64_t ne[3];
    enum ggml_type type;
    enum fill fill;
    uint64_t off, bytes;
};
struct writer {
    struct tinfo t[MAX_TENSORS];
    uint32_t n;
    uint64_t data_size;
    uint32_t n_rope_on; /* rope_freqs: pairs that rotate */
};

/* The type a row of ne0 elements gets when `type` was asked for, as llama-quantize chooses it
 * (llama-quant.cpp tensor_type_fallback): a 256-element type whose block does not divide the
 * row falls back to a 32-element one, and a row that fits no block of 32 to f16. E.g. the
 * 26B-A4B expert rows of 704 and a 2112-wide ffn_down take Q5_0 under --type q4_k. */
static enum ggml_type fit_type(enum ggml_type type, uint64_t ne0)
{
    if (ne0 % ggml_blck_size(type) == 0) return type;
    switch (type) {
    case GGML_Q2_K:
    case GGML_Q3_K: type = GGML_Q4_0; break;
    case GGML_Q4_K: type = GGML_Q5_0; break;
    case GGML_Q5_K: type = GGML_Q5_1; break;
    case GGML_Q6_K: type = GGML_Q8_0; break;
    case GGML_IQ4_XS: type = GGML_IQ4_NL; break;
    default: break;
    }
    return ne0 % ggml_blck_size(type) == 0 ? type : GGML_F16;
}

static void tensor(struct writer *w, const char *name, enum ggml_type type, enum fill fill,
                   uint32_t nd, uint64_t ne0, uint64_t ne1, uint64_t ne2)
{
    if (w->n >= MAX_TENSORS) return;
    type = fit_type(type, ne0);
    struct tinfo *t = &w->t[w->n++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->nd = nd;
    t->ne[0] = ne0;
    t->ne[1] = ne1;
    t->ne[2] = ne2;
    t->type = type;
    t->fill = fill;
    t->bytes = ggml_row_size(type, ne0) * ne1 * ne2;
    t->off = w->data_size;
    w->data_size = (t->off + t->bytes + ALIGN - 1) / ALIGN * ALIGN;
}

/* The tensor table of a preset (gemma4.md §3.3), in llama.cpp's order. */
static void tensors(struct writer *w, const struct preset *p, enum ggml_type mt)
{
    char nm[64];
    uint32_t H = p->H, L = p->L;
    tensor(w, "token_embd.weight", mt, FILL_RAND, 2, H, p->V, 1);
    tensor(w, "output_norm.weight", GGML_F32, FILL_ONE, 1, H, 1, 1);
    tensor(w, "rope_freqs.weight", GGML_F32, FILL_ROPE, 1, p->hd_full / 2, 1, 1);
    w->n_rope_on = p->hd_full / 8; /* partial_rotary_factor 0.25 */
    if (p->P) {
        tensor(w, "per_layer_token_embd.weight", mt, FILL_RAND, 2, (uint64_t)L * p->P, p->V, 1);
        tensor(w, "per_layer_model_proj.weight", mt, FILL_RAND, 2, H, (uint64_t)L * p->P, 1);
        tensor(w, "per_layer_proj_norm.weight", GGML_F32, FILL_ONE, 1, p->P, 1, 1);
    }
#define T(suffix, type, fill, nd, a, b, c)                                                         \
    do {                                                                                           \
        snprintf(nm, sizeof nm, "blk.%u." suffix, l);                                              \
        tensor(w, nm, type, fill, nd, a, b, c);                                                    \
    } while (0)
    for (uint32_t l = 0; l < L; l++) {
        bool full = layer_full(p, l), kv = layer_has_kv(p, l);
        uint32_t hd = full ? p->hd_full : p->hd_swa, nkv = full ? p->nkv_full : p->nkv_swa;
        uint32_t F = layer_ff(p, l);
        T("attn_norm.weight", GGML_F32, FILL_ONE, 1, H, 1, 1);
        T("attn_q.weight", mt, FILL_RAND, 2, H, p->nh * hd, 1);       /* {H, nh*hd} */
        if (kv) {
            T("attn_k.weight", mt, FILL_RAND, 2, H, nkv * hd, 1);     /* {H, nkv*hd} */
            if (!(full && p->k_eq_v)) T("attn_v.weight", mt, FILL_RAND, 2, H, nkv * hd, 1);
            T("attn_k_norm.weight", GGML_F32, FILL_ONE, 1, hd, 1, 1);
        }
        T("attn_q_norm.weight", GGML_F32, FILL_ONE, 1, hd, 1, 1);
        T("attn_output.weight", mt, FILL_RAND, 2, p->nh * hd, H, 1);  /* {nh*hd, H} */
        T("post_attention_norm.weight", GGML_F32, FILL_ONE, 1, H, 1, 1);
        T("ffn_norm.weight", GGML_F32, FILL_ONE, 1, H, 1, 1);
        T("ffn_gate.weight", mt, FILL_RAND, 2, H, F, 1);              /* {H, F} */
        T("ffn_up.weight", mt, FILL_RAND, 2, H, F, 1);                /* {H, F} */
        T("ffn_down.weight", mt, FILL_RAND, 2, F, H, 1);              /* {F, H} */
        T("post_ffw_norm.weight", GGML_F32, FILL_ONE, 1, H, 1, 1);
        T("layer_output_scale.weight", GGML_F32, FILL_ONE, 1, 1, 1, 1);
        if (p->E) {
            T("ffn_gate_inp.weight", GGML_F32, FILL_RAND, 2, H, p->E, 1); /* {H, E} router */
            T("ffn_gate_inp.scale", GGML_F32, FILL_ONE, 1, H, 1, 1);
            T("pre_ffw_norm_2.weight", GGML_F32, FILL_ONE, 1, H, 1, 1);
            T("post_ffw_norm_1.weight", GGML_F32, FILL_ONE, 1, H, 1, 1);
            T("post_ffw_norm_2.weight", GGML_F32, FILL_ONE, 1, H, 1, 1);
            T("ffn_gate_up_exps.weight", mt, FILL_RAND, 3, H, 2 * p->Fe, p->E); /* {H, 2Fe, E} */
            T("ffn_down_exps.weight", mt, FILL_RAND, 3, p->Fe, H, p->E);       /* {Fe, H, E} */
            T("ffn_down_exps.scale", GGML_F32, FILL_ONE, 1, p->E, 1, 1);
        }
        if (p->P) {
            T("inp_gate.weight", mt, FILL_RAND, 2, H, p->P, 1);       /* {H, P} */
            T("proj.weight", mt, FILL_RAND, 2, p->P, H, 1);           /* {P, H} */
            T("post_norm.weight", GGML_F32, FILL_ONE, 1, H, 1, 1);
        }
    }
#undef T
}

/* The gemma4 metadata (gemma4.md §3.2). */
static void metadata(struct buf *b, const struct preset *p)
{
    char nm[96];
    snprintf(nm, sizeof nm, "nibble-mkmodel-%s", p->name);
    kv_str(b, "general.architecture", "gemma4");
    kv_str(b, "general.name", nm);
    kv_u32(b, "general.alignment", ALIGN);
    kv_u32(b, "gemma4.context_length", p->ctx);
    kv_u32(b, "gemma4.embedding_length", p->H);
    kv_u32(b, "gemma4.block_count", p->L);
    if (p->ff_shared && p->shared) {
        arr_head(b, "gemma4.feed_forward_length", GGUF_I32, p->L);
        for (uint32_t l = 0; l < p->L; l++) put_u32(b, layer_ff(p, l));
    } else {
        kv_u32(b, "gemma4.feed_forward_length", p->ff);
    }
    kv_u32(b, "gemma4.attention.head_count", p->nh);
    if (p->nkv_swa != p->nkv_full) {
        arr_head(b, "gemma4.attention.head_count_kv", GGUF_I32, p->L);
        for (uint32_t l = 0; l < p->L; l++) put_u32(b, layer_full(p, l) ? p->nkv_full : p->nkv_swa);
    } else {
        kv_u32(b, "gemma4.attention.head_count_kv", p->nkv_swa);
    }
    kv_u32(b, "gemma4.attention.key_length", p->hd_full);
    kv_u32(b, "gemma4.attention.value_length", p->hd_full);
    kv_u32(b, "gemma4.attention.key_length_swa", p->hd_swa);
    kv_u32(b, "gemma4.attention.value_length_swa", p->hd_swa);
    kv_f32(b, "gemma4.attention.layer_norm_rms_epsilon", 1e-6f);
    kv_u32(b, "gemma4.attention.sliding_window", p->window);
    arr_head(b, "gemma4.attention.sliding_window_pattern", GGUF_BOOL, p->L);
    for (uint32_t l = 0; l < p->L; l++) {
        uint8_t s = !layer_full(p, l);
        put(b, &s, 1);
    }
    kv_u32(b, "gemma4.attention.shared_kv_layers", p->shared);
    kv_u32(b, "gemma4.embedding_length_per_layer_input", p->P);
    kv_f32(b, "gemma4.rope.freq_base", 1e6f);
    kv_f32(b, "gemma4.rope.freq_base_swa", 1e4f);
    kv_u32(b, "gemma4.rope.dimension_count", p->hd_full);
    kv_u32(b, "gemma4.rope.dimension_count_swa", p->hd_swa);
    kv_f32(b, "gemma4.final_logit_softcapping", 30.0f);
    if (p->E) {
        kv_u32(b, "gemma4.expert_count", p->E);
        kv_u32(b, "gemma4.expert_used_count", p->K);
        kv_u32(b, "gemma4.expert_feed_forward_length", p->Fe);
    }
}

/* The target layer an assistant layer reads K/V from: the target's last layer (full) or the one
 * before it (sliding); its K/V heads. */
static uint32_t a_nkv(const struct preset *t, bool full)
{
    return full ? t->nkv_full : t->nkv_swa;
}

/* An assistant's tensor table (engine/mtp.h), over target preset t. */
static void tensors_assistant(struct writer *w, const struct apreset *a, const struct preset *t,
                              enum ggml_type mt)
{
    char nm[64];
    uint32_t H = a->Ha;
    tensor(w, "token_embd.weight", mt, FILL_RAND, 2, H, t->V, 1);
    tensor(w, "output_norm.weight", GGML_F32, FILL_ONE, 1, H, 1, 1);
    tensor(w, "rope_freqs.weight", GGML_F32, FILL_ROPE, 1, t->hd_full / 2, 1, 1);
    w->n_rope_on = t->hd_full / 8;
    tensor(w, "nextn.pre_projection.weight", mt, FILL_RAND, 2, 2 * t->H, H, 1); /* {2Ht, Ha} */
    tensor(w, "nextn.post_projection.weight", mt, FILL_RAND, 2, H, t->H, 1);    /* {Ha, Ht} */
#define T(suffix, type, fill, nd, x, y)                                                            \
    do {                                                                                           \
        snprintf(nm, sizeof nm, "blk.%u." suffix, l);                                              \
        tensor(w, nm, type, fill, nd, x, y, 1);                                                    \
    } while (0)
    for (uint32_t l = 0; l < a->L; l++) {
        uint32_t hd = l + 1 == a->L ? t->hd_full : t->hd_swa;
        T("attn_norm.weight", GGML_F32, FILL_ONE, 1, H, 1);
        T("attn_q.weight", mt, FILL_RAND, 2, H, a->nh * hd);
        T("attn_q_norm.weight", GGML_F32, FILL_ONE, 1, hd, 1);
        T("attn_output.weight", mt, FILL_RAND, 2, a->nh * hd, H);
        T("post_attention_norm.weight", GGML_F32, FILL_ONE, 1, H, 1);
        T("ffn_norm.weight", GGML_F32, FILL_ONE, 1, H, 1);
        T("ffn_gate.weight", mt, FILL_RAND, 2, H, a->ff);
        T("ffn_up.weight", mt, FILL_RAND, 2, H, a->ff);
        T("ffn_down.weight", mt, FILL_RAND, 2, a->ff, H);
        T("post_ffw_norm.weight", GGML_F32, FILL_ONE, 1, H, 1);
        T("layer_output_scale.weight", GGML_F32, FILL_ONE, 1, 1, 1);
    }
#undef T
}

/* The gemma4-assistant metadata (what llama.cpp's gemma4-assistant reads). */
static void metadata_assistant(struct buf *b, const struct apreset *a, const struct preset *t)
{
    char nm[96];
    snprintf(nm, sizeof nm, "nibble-mkmodel-%s", a->name);
    kv_str(b, "general.architecture", "gemma4-assistant");
    kv_str(b, "general.name", nm);
    kv_u32(b, "general.alignment", ALIGN);
#define K(s) "gemma4-assistant." s
    kv_u32(b, K("context_length"), t->ctx);
    kv_u32(b, K("embedding_length"), a->Ha);
    kv_u32(b, K("embedding_length_out"), t->H);
    kv_u32(b, K("block_count"), a->L);
    kv_u32(b, K("nextn_predict_layers"), a->L);
    kv_u32(b, K("feed_forward_length"), a->ff);
    kv_u32(b, K("attention.head_count"), a->nh);
    arr_head(b, K("attention.head_count_kv"), GGUF_I32, a->L);
    for (uint32_t l = 0; l < a->L; l++) put_u32(b, a_nkv(t, l + 1 == a->L));
    kv_u32(b, K("attention.key_length"), t->hd_full);
    kv_u32(b, K("attention.value_length"), t->hd_full);
    kv_u32(b, K("attention.key_length_swa"), t->hd_swa);
    kv_u32(b, K("attention.value_length_swa"), t->hd_swa);
    kv_f32(b, K("attention.layer_norm_rms_epsilon"), 1e-6f);
    kv_u32(b, K("attention.sliding_window"), t->window);
    arr_head(b, K("attention.sliding_window_pattern"), GGUF_BOOL, a->L);
    for (uint32_t l = 0; l < a->L; l++) {
        uint8_t s = l + 1 < a->L;
        put(b, &s, 1);
    }
    kv_f32(b, K("rope.freq_base"), 1e6f);
    kv_f32(b, K("rope.freq_base_swa"), 1e4f);
    kv_u32(b, K("rope.dimension_count"), t->hd_full);
    kv_u32(b, K("rope.dimension_count_swa"), t->hd_swa);
#undef K
}

/* A minimal gemma4 BPE vocabulary of V tokens: 7 specials, 256 byte tokens, '▁' and printable
 * ASCII and '\n', a few merges and their results, then filler (a few <unusedN>, then plain
 * tokens nothing produces). Token types: 1 normal, 2 unknown, 3 control, 5 user, 6 byte. */
static const char *const merges[] = {"t h", "th e", "▁ the", "a n", "an d", "▁ and", "i n",
                                     "in g", "▁ ing", "e r", "▁ er", "▁ th", "h e", "▁ he",
                                     "▁ in", "▁ an", "r e", "▁ re", "o n", "▁ on"};
#define N_MERGES (sizeof merges / sizeof merges[0])

static void vocab_token(uint32_t i, char *s, size_t n, int32_t *type)
{
    static const char *const spec[] = {"<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<|turn>",
                                       "<turn|>"};
    static const int32_t spec_type[] = {3, 3, 3, 2, 1, 3, 3};
    *type = 1;
    if (i < 7) {
        snprintf(s, n, "%s", spec[i]);
        *type = spec_type[i];
        return;
    }
    i -= 7;
    if (i < 256) {
        snprintf(s, n, "<0x%02X>", i);
        *type = 6;
        return;
    }
    i -= 256;
    if (i == 0) {
        snprintf(s, n, "\xe2\x96\x81"); /* U+2581, the space */
        return;
    }
    if (i < 95) { /* 0x21..0x7e */
        snprintf(s, n, "%c", (char)(0x20 + i));
        return;
    }
    if (i == 95) {
        snprintf(s, n, "\n");
        return;
    }
    i -= 96;
    if (i < N_MERGES) { /* the merge result: the pair without its space */
        const char *m = merges[i], *sp = strchr(m, ' ');
        snprintf(s, n, "%.*s%s", (int)(sp - m), m, sp + 1);
        return;
    }
    i -= N_MERGES;
    if (i < 64) {
        snprintf(s, n, "<unused%u>", i);
        *type = 5;
        return;
    }
    snprintf(s, n, "<nb_filler_%u>", i - 64);
}

static void vocabulary(struct buf *b, uint32_t V)
{
    char s[64];
    int32_t t;
    kv_str(b, "tokenizer.ggml.model", "gemma4");
    kv_str(b, "tokenizer.ggml.pre", "gemma4");
    arr_head(b, "tokenizer.ggml.tokens", GGUF_STRING, V);
    for (uint32_t i = 0; i < V; i++) {
        vocab_token(i, s, sizeof s, &t);
        put_str(b, s);
    }
    arr_head(b, "tokenizer.ggml.scores", GGUF_F32, V);
    for (uint32_t i = 0; i < V; i++) {
        float z = 0;
        put(b, &z, 4);
    }
    arr_head(b, "tokenizer.ggml.token_type", GGUF_I32, V);
    for (uint32_t i = 0; i < V; i++) {
        vocab_token(i, s, sizeof s, &t);
        put_u32(b, (uint32_t)t);
    }
    arr_head(b, "tokenizer.ggml.merges", GGUF_STRING, N_MERGES);
    for (size_t i = 0; i < N_MERGES; i++) put_str(b, merges[i]);
    kv_u32(b, "tokenizer.ggml.bos_token_id", 2);
    kv_u32(b, "tokenizer.ggml.eos_token_id", 1);
    kv_u32(b, "tokenizer.ggml.unknown_token_id", 3);
    kv_u32(b, "tokenizer.ggml.padding_token_id", 0);
    kv_bool(b, "tokenizer.ggml.add_bos_token", true);
    kv_bool(b, "tokenizer.ggml.add_space_prefix", false);
}

/* ---- data ------------------------------------------------------------------------------------- */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}
/* Uniform in [-a, a] with a = 0.02 * sqrt(3): standard deviation 0.02. */
static float rng_weight(uint64_t *s)
{
    return (float)((double)(rng_next(s) >> 40) / (double)(1u << 24) * 2.0 - 1.0) * 0.034641f;
}

static int write_tensor(struct plat_out *f, const struct tinfo *t, uint32_t n_rope_on,
                        uint64_t *rng, float *row, uint8_t *q)
{
    uint64_t rows = t->ne[1] * t->ne[2], n = t->ne[0];
    size_t rb = (size_t)ggml_row_size(t->type, n);
    for (uint64_t r = 0; r < rows; r++) {
        for (uint64_t i = 0; i < n; i++)
            row[i] = t->fill == FILL_RAND ? rng_weight(rng)
                   : t->fill == FILL_ROPE ? (i < n_rope_on ? 1.0f : 1e30f)
                                          : 1.0f;
        if (nb_quant_row(t->type, row, q, n) != 0 || plat_out_write(f, q, rb) != 0) return -1;
    }
    return 0;
}

/* The --type names, ggml's type names (the tensor types nb_quant_row writes). */
static const enum ggml_type mk_types[] = {
    GGML_Q4_0, GGML_Q4_1, GGML_Q5_0,   GGML_Q5_1,   GGML_Q8_0, GGML_Q2_K, GGML_Q3_K, GGML_Q4_K,
    GGML_Q5_K, GGML_Q6_K, GGML_IQ4_NL, GGML_IQ4_XS, GGML_F16,  GGML_BF16, GGML_F32,
};
#define N_MK_TYPES (sizeof mk_types / sizeof mk_types[0])

static void type_names(FILE *out, const char *sep)
{
    for (size_t i = 0; i < N_MK_TYPES; i++)
        fprintf(out, "%s%s", i ? sep : "", ggml_type_name(mk_types[i]));
}

/* An assistant's target shapes from a target model file (--target). 0, or -1 after saying why. */
static int target_preset(const char *path, struct preset *t)
{
    struct nb_model m;
    char e[512];
    if (nb_model_load(&m, path, e, sizeof e) != 0) {
        fprintf(stderr, "nibble mkmodel: --target %s: %s\n", path, e);
        return -1;
    }
    const struct nb_config *c = &m.cfg;
    if (c->n_layer < 2 || c->layer[c->n_layer - 1].is_swa || !c->layer[c->n_layer - 2].is_swa) {
        fprintf(stderr, "nibble mkmodel: --target %s: the last layer must be full and the one "
                "before it sliding\n", path);
        nb_model_free(&m);
        return -1;
    }
    memset(t, 0, sizeof *t);
    t->H = c->n_embd;
    t->nkv_swa = c->layer[c->n_layer - 2].n_head_kv;
    t->nkv_full = c->layer[c->n_layer - 1].n_head_kv;
    t->hd_swa = c->head_dim_swa;
    t->hd_full = c->head_dim;
    t->window = c->sliding_window;
    t->V = c->n_vocab;
    t->ctx = c->n_ctx_train ? c->n_ctx_train : 4096;
    nb_model_free(&m);
    return 0;
}

static int usage(FILE *out)
{
    fprintf(out, "usage: nibble mkmodel --preset NAME -o FILE [--seed S] [--type TYPE] "
                 "[--target MODEL]\n"
                 "(--target: an assistant's shapes from that model instead of its preset's)\n"
                 "types (default q4_0): ");
    type_names(out, ", ");
    fprintf(out, "\npresets:\n");
    for (size_t i = 0; i < N_PRESETS; i++)
        fprintf(out, "  %-12s %s\n", presets[i].name, presets[i].what);
    for (size_t i = 0; i < N_APRESETS; i++)
        fprintf(out, "  %-12s %s\n", apresets[i].name, apresets[i].what);
    return out == stdout ? 0 : 2;
}

int cmd_mkmodel(int argc, char **argv)
{
    const char *pname = NULL, *out = NULL, *tname = "q4_0", *target = NULL;
    uint64_t seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return usage(stdout);
        if (!strcmp(a, "--preset") && v) pname = argv[++i];
        else if (!strcmp(a, "-o") && v) out = argv[++i];
        else if (!strcmp(a, "--type") && v) tname = argv[++i];
        else if (!strcmp(a, "--target") && v) target = argv[++i];
        else if (!strcmp(a, "--seed") && v) {
            if (args_u64("mkmodel", a, argv[++i], 0, UINT64_MAX, &seed) != 0) return 2;
        } else
            return usage(stderr);
    }
    if (!pname || !out) return usage(stderr);
    const struct preset *p = NULL;
    const struct apreset *ap = NULL; /* an assistant: p is then its target */
    for (size_t i = 0; i < N_APRESETS; i++)
        if (!strcmp(apresets[i].name, pname)) ap = &apresets[i];
    for (size_t i = 0; i < N_PRESETS; i++)
        if (!strcmp(presets[i].name, ap ? (ap->target ? ap->target : "") : pname))
            p = &presets[i];
    struct preset tp;
    if (ap && (target || !ap->target)) {
        if (!target) {
            fprintf(stderr, "nibble mkmodel: preset '%s' needs --target MODEL\n", pname);
            return 2;
        }
        if (target_preset(target, &tp) != 0) return 1;
        p = &tp;
    } else if (target) {
        fprintf(stderr, "nibble mkmodel: --target is for assistant presets\n");
        return 2;
    }
    if (!p) {
        fprintf(stderr, "nibble mkmodel: unknown preset '%s' (nibble mkmodel --help lists them)\n",
                pname);
        return 2;
    }
    enum ggml_type mt = GGML_TYPE_MAX;
    for (size_t i = 0; i < N_MK_TYPES; i++)
        if (!strcmp(tname, ggml_type_name(mk_types[i]))) mt = mk_types[i];
    if (mt == GGML_TYPE_MAX) {
        fprintf(stderr, "nibble mkmodel: unknown type '%s' (", tname);
        type_names(stderr, ", ");
        fprintf(stderr, ")\n");
        return 2;
    }

    struct writer *w = calloc(1, sizeof *w);
    struct buf kvb = {0}, hdr = {0};
    float *row = NULL;
    uint8_t *q = NULL;
    struct plat_out f;
    bool opened = false;
    char e[512];
    int rc = 1;
    if (!w) goto oom;
    if (ap) {
        tensors_assistant(w, ap, p, mt);
        metadata_assistant(&kvb, ap, p);
    } else {
        tensors(w, p, mt);
        metadata(&kvb, p);
    }
    vocabulary(&kvb, p->V);

    put(&hdr, "GGUF", 4);
    put_u32(&hdr, 3);
    put_u64(&hdr, w->n);
    put_u64(&hdr, kvb.n_kv);
    put(&hdr, kvb.p, kvb.n);
    uint64_t max_row = 0;
    for (uint32_t i = 0; i < w->n; i++) {
        const struct tinfo *t = &w->t[i];
        put_str(&hdr, t->name);
        put_u32(&hdr, t->nd);
        for (uint32_t d = 0; d < t->nd; d++) put_u64(&hdr, t->ne[d]);
        put_u32(&hdr, (uint32_t)t->type);
        put_u64(&hdr, t->off);
        if (t->ne[0] > max_row) max_row = t->ne[0];
    }
    static const uint8_t zeros[ALIGN];
    put(&hdr, zeros, (ALIGN - hdr.n % ALIGN) % ALIGN);
    row = malloc(max_row * sizeof *row);
    q = malloc(max_row * sizeof *row);
    if (kvb.oom || hdr.oom || !row || !q) goto oom;

    if (plat_out_open(&f, out, e, sizeof e) != 0) {
        fprintf(stderr, "nibble mkmodel: %s\n", e);
        goto done;
    }
    opened = true;
    uint64_t t0 = plat_now_ns(), params = 0, pos = 0;
    if (plat_out_write(&f, hdr.p, hdr.n) != 0) goto io;
    uint64_t rng = seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
    for (uint32_t i = 0; i < w->n; i++) {
        const struct tinfo *t = &w->t[i];
        if (pos < t->off && plat_out_write(&f, zeros, t->off - pos) != 0) goto io;
        if (write_tensor(&f, t, w->n_rope_on, &rng, row, q) != 0) goto io;
        pos = t->off + t->bytes;
        params += t->ne[0] * t->ne[1] * t->ne[2];
    }
    opened = false;
    if (plat_out_close(&f, true, e, sizeof e) != 0) {
        fprintf(stderr, "nibble mkmodel: %s\n", e);
        goto done;
    }
    fprintf(stderr, "nibble mkmodel: %s: %s, %u tensors, %.3f B parameters, %.1f MiB, %.1f s\n",
            out, ap ? ap->name : p->name, w->n, params / 1e9, (hdr.n + w->data_size) / 1048576.0,
            (plat_now_ns() - t0) / 1e9);
    rc = 0;
    goto done;
io: /* the temporary is removed: the destination stays as it was */
    opened = false;
    if (f.err) { /* a failed write: plat_out_close names its reason */
        (void)plat_out_close(&f, true, e, sizeof e);
    } else {
        (void)plat_out_close(&f, false, e, sizeof e);
        snprintf(e, sizeof e, "%s: a tensor could not be quantized", out);
    }
    fprintf(stderr, "nibble mkmodel: %s\n", e);
    goto done;
oom:
    fprintf(stderr, "nibble mkmodel: out of host memory\n");
done:
    if (opened) (void)plat_out_close(&f, false, e, sizeof e);
    free(row);
    free(q);
    free(kvb.p);
    free(hdr.p);
    free(w);
    return rc;
}

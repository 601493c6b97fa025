/* mtp: Gemma 4's multi-token-prediction assistant ("drafter"; llama.cpp arch gemma4-assistant,
 * src/models/gemma4-assistant.cpp), a small stack of layers that drafts the target's next tokens
 * from the target's own state. One draft step, token t at position p with h[Ht] (Ht = the
 * target's width, Ha = the assistant's):
 *   x    = E_target[t] * sqrt(Ht)                       the TARGET's embedding
 *   cur  = W_pre . concat(x, h)                         nextn.pre_projection {2Ht, Ha}
 *   per layer: attn_norm, attn_q, q_norm + rope at p, attention (scale 1) over the TARGET's KV
 *     cache (sliding layers: the target's layer L-2, full layers: L-1, through their KV source;
 *     keys 0 .. p-1, sliding ones only p - k < window: the target has not evaluated p yet),
 *     attn_output, post_attn_norm + residual, ffn_norm, gelu-tanh gated MLP, post_ffw_norm +
 *     residual, layer_output_scale
 *   n    = rmsnorm(cur) * output_norm
 *   logits = E_assistant . n                            tied {Ha, V}, no softcap
 *   h_next = W_post . n                                 nextn.post_projection {Ha, Ht}
 * The first step of a draft takes t = the target's sampled token and h = the target's hidden state
 * after its output_norm at position p - 1 (the row whose logits chose t); step j takes the token
 * drafted by step j - 1, ITS h_next and the same position p (llama.cpp common/speculative.cpp
 * for assistants sharing the target's cache). The assistant writes no K/V.
 *
 * Files: mtp_model.c (loading and checks against the target), ref_mtp.c (CPU reference, f32, step
 * for step as above), mtp.c (the GPU step, one dispatch per line). Layout of the file:
 * /tmp/mtp-format.md while this is written, then README's "MTP assistant" section.
 */
#ifndef NB_MTP_H
#define NB_MTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"

#define NB_MTP_MAX_LAYERS 16
#define NB_MTP_MAX_DRAFT 8 /* tokens of one greedy draft (nb_mtp_gpu_draft) */

struct nb_mtp_layer_config {
    bool is_swa;
    uint32_t n_head_kv;    /* nkv: the target layer's */
    uint32_t head_dim;     /* hd: the target layer's */
    uint32_t n_rot;
    float rope_base;
    uint32_t n_ff;         /* F */
    uint32_t target_layer; /* the target layer whose cache it reads (L-2 sliding, L-1 full) */
};

struct nb_mtp_config {
    uint32_t n_embd;      /* Ha */
    uint32_t n_embd_out;  /* Ht: the target's width (embedding_length_out) */
    uint32_t n_layer;
    uint32_t n_head;      /* nh */
    uint32_t n_vocab;     /* V */
    uint32_t sliding_window;
    float rms_eps;
    uint32_t n_rot;       /* full layers (rope_freqs has n_rot/2 factors) */
    float *rope_factors;  /* [n_rot/2], all 1 when rope_freqs is absent */
    uint32_t max_head_dim, max_n_ff;
    struct nb_mtp_layer_config layer[NB_MTP_MAX_LAYERS];
};

struct nb_mtp_layer_weights {
    const struct gguf_tensor *attn_norm;           /* {Ha} */
    const struct gguf_tensor *attn_q;              /* {Ha, nh*hd} */
    const struct gguf_tensor *attn_q_norm;         /* {hd} */
    const struct gguf_tensor *attn_output;         /* {nh*hd, Ha} */
    const struct gguf_tensor *post_attention_norm; /* {Ha} */
    const struct gguf_tensor *ffn_norm;            /* {Ha} */
    const struct gguf_tensor *ffn_gate, *ffn_up;   /* {Ha, F} */
    const struct gguf_tensor *ffn_down;            /* {F, Ha} */
    const struct gguf_tensor *post_ffw_norm;       /* {Ha} */
    const struct gguf_tensor *layer_output_scale;  /* {1} or NULL */
};

struct nb_mtp_weights {
    const struct gguf_tensor *token_embd;  /* {Ha, V} also the output head */
    const struct gguf_tensor *output_norm; /* {Ha} */
    const struct gguf_tensor *rope_freqs;  /* {n_rot/2} or NULL */
    const struct gguf_tensor *pre_proj;    /* {2Ht, Ha} nextn.pre_projection */
    const struct gguf_tensor *post_proj;   /* {Ha, Ht}  nextn.post_projection */
    struct nb_mtp_layer_weights layer[NB_MTP_MAX_LAYERS];
};

struct nb_mtp_model {
    struct gguf *gguf;
    struct nb_mtp_config cfg;
    struct nb_mtp_weights w;
};

/* Opens a gemma4-assistant GGUF and checks it against the target's configuration (width, vocab,
 * the head counts and dims of the layers it reads, the window). 0, or -1 with one line in err (a
 * is then empty). */
int nb_mtp_model_load(struct nb_mtp_model *a, const char *path, const struct nb_config *target,
                      char *err, size_t errlen);
void nb_mtp_model_free(struct nb_mtp_model *a);

/* ---- CPU reference (ref_mtp.c) --------------------------------------------------------------- */
struct nb_ref;
struct nb_ref_mtp;
/* A reference runner for assistant a over the target reference tref (its KV cache is read, never
 * written). Both must outlive it. NULL with a message when out of memory. */
struct nb_ref_mtp *nb_ref_mtp_create(const struct nb_mtp_model *a, const struct nb_model *target,
                                     const struct nb_ref *tref, char *err, size_t errlen);
void nb_ref_mtp_destroy(struct nb_ref_mtp *r);
/* One step: token tok at position pos (1 <= pos <= the positions tref holds), h [Ht]; writes
 * logits [V] and h_next [Ht] (either may be NULL). 0, or -1 with a message. */
int nb_ref_mtp_step(struct nb_ref_mtp *r, int32_t tok, int pos, const float *h, float *logits,
                    float *h_next, char *err, size_t errlen);

/* ---- GPU (mtp.c) ------------------------------------------------------------------------------
 * The assistant's weights on the target's device and one recorded step reading the target
 * context's KV cache. Matrices take the target's matvec pipelines (or their own when the
 * assistant has other weight types). */
struct nb_gpu_model;
struct nb_fwd;
struct vkx_view;
struct nb_mtp_gpu;
/* Loads the assistant at path for the target context f of model g (both must outlive it). NULL
 * with one line in err (a file that is no assistant for this target, device memory). */
struct nb_mtp_gpu *nb_mtp_gpu_create(struct nb_gpu_model *g, struct nb_fwd *f, const char *path,
                                     char *err, size_t errlen);
void nb_mtp_gpu_destroy(struct nb_mtp_gpu *m);
const struct nb_mtp_model *nb_mtp_gpu_model(const struct nb_mtp_gpu *m);
/* One step: token tok at position pos (1 <= pos; the context holds positions 0 .. pos-1), h the
 * target's hidden-state row of position pos-1 (a device view of Ht floats, e.g. from
 * nb_context_hidden) or NULL for the previous step's h_next. Returns the host-visible logits [V]
 * (valid until the next step), or NULL with a message (a device failure). */
const float *nb_mtp_gpu_step(struct nb_mtp_gpu *m, int32_t tok, uint32_t pos,
                             const struct vkx_view *h, char *err, size_t errlen);
/* A greedy draft of k (1..NB_MTP_MAX_DRAFT) tokens in one submission: the first step as
 * nb_mtp_gpu_step with h, each next one fed the argmax of the step before (chosen on the device,
 * ties to the lower id as nb_argmax) and its h_next. Writes the k tokens to out; k, or -1 with a
 * message. */
int nb_mtp_gpu_draft(struct nb_mtp_gpu *m, int32_t tok, uint32_t pos, const struct vkx_view *h,
                     int k, int32_t *out, char *err, size_t errlen);
/* The drafter's sampler of nb_mtp_gpu_draft_sample: the device's top-k/top-p/temperature draw
 * (nb_op_sample: top_k 2..NB_MTP_SAMPLE_MAX_K, temp > 0) with key `seed` and the draw counter
 * counters[j] for step j. */
#define NB_MTP_SAMPLE_MAX_K 64
struct nb_mtp_sampler {
    uint32_t top_k;
    float temp, top_p;
    uint32_t seed;
    const uint32_t *counters; /* [k] */
};
/* A draft of k tokens drawn with sampler s in one submission: as nb_mtp_gpu_draft, but each step's
 * token is drawn on the device from its logits (so speculative sampling needs no read-back per
 * step) and every step's logits are kept: *logits points to them, [k][V] host-visible, valid until
 * the next draft. k, or -1 with a message. */
int nb_mtp_gpu_draft_sample(struct nb_mtp_gpu *m, int32_t tok, uint32_t pos,
                            const struct vkx_view *h, int k, const struct nb_mtp_sampler *s,
                            int32_t *out, const float **logits, char *err, size_t errlen);
/* The h_next [Ht] of the last step, copied to out (tests). */
void nb_mtp_gpu_h_next(struct nb_mtp_gpu *m, float *out);

/* nibble.c: the model and forward state of context c, and a device view of the target's hidden
 * state after output_norm at position n_past - 1 (in the last eval's rows). 0, or -1 when the
 * last eval did not keep that row (no eval yet, a reset, a rollback past it). */
struct nibble_context;
struct nb_gpu_model *nb_context_gpu_model(struct nibble_context *c);
struct nb_fwd *nb_context_fwd(struct nibble_context *c);
int nb_context_hidden(struct nibble_context *c, struct nb_gpu_model **g, struct nb_fwd **f,
                      struct vkx_view *h);

#endif

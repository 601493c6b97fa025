/* forward: the Gemma 4 forward pass on the GPU (internal API behind nibble.h).
 *
 * struct nb_gpu_model holds a model's weights on the device and the pipelines of every op;
 * struct nb_fwd holds one context: the KV cache, the scratch buffers of one batch and the
 * recorded command buffers. nb_fwd_record() records the whole forward pass of a batch of
 * n tokens, one dispatch per line, reading token ids, positions and (PLE models) the tokens'
 * per-layer embedding rows from host-visible buffers; a decode step (n = 1) is recorded once and
 * replayed with only those buffers changed.
 *
 * The steps and their names mirror engine/ref.c, so GPU and CPU can be compared layer by layer
 * (nb_fwd.capture copies the residual stream after every layer to a host-visible buffer).
 */
#ifndef NB_FORWARD_H
#define NB_FORWARD_H

#include <stdbool.h>
#include <stdint.h>

#include "gtensor.h"
#include "kvcache.h"
#include "model.h"
#include "op_attn.h"
#include "op_matmul.h"
#include "op_misc.h"
#include "selftest.h"
#include "vkx.h"

/* Device copies of one layer's weights. Matrices are gtensors (any supported type); vectors
 * (norm weights, scales) are f32 buffers. Shapes as in model.h. */
struct nb_gpu_layer {
    struct vkx_buffer attn_norm;           /* f32 [H] */
    struct nb_gtensor attn_q;              /* {H, nh*hd} */
    struct nb_gtensor attn_k;              /* {H, nkv*hd}  has_kv */
    struct nb_gtensor attn_v;              /* {H, nkv*hd}  has_kv && has_v */
    struct vkx_buffer attn_q_norm;         /* f32 [hd] */
    struct vkx_buffer attn_k_norm;         /* f32 [hd]     has_kv */
    struct nb_gtensor attn_output;         /* {nh*hd, H} */
    struct vkx_buffer post_attention_norm; /* f32 [H] */
    struct vkx_buffer ffn_norm;            /* f32 [H] */
    struct nb_gtensor ffn_gate, ffn_up;    /* {H, F} */
    /* Fused products (NIBBLE_DISABLE=fuse: none), one dispatch where the file has several
     * matrices of one input; the separate ones above are then empty (data.n == 0): */
    struct nb_gtensor attn_qkv;            /* {H, (nh + 2*nkv)*hd}: q|k|v rows (q|k without V) */
    struct nb_gtensor ffn_gate_up;         /* {H, 2F}: gate|up rows */
    struct nb_gtensor ffn_down;            /* {F, H} */
    struct vkx_buffer post_ffw_norm;       /* f32 [H] */
    struct vkx_buffer layer_output_scale;  /* f32 [1]      (absent: buf == VK_NULL_HANDLE) */
    /* PLE */
    struct nb_gtensor inp_gate;            /* {H, P} */
    struct nb_gtensor proj;                /* {P, H} */
    struct vkx_buffer post_norm;           /* f32 [H] */
    /* MoE */
    struct nb_gtensor ffn_gate_inp;        /* {H, E} router */
    struct vkx_buffer ffn_gate_inp_scale;  /* f32 [H] */
    struct vkx_buffer pre_ffw_norm_2, post_ffw_norm_1, post_ffw_norm_2; /* f32 [H] */
    struct nb_gtensor ffn_gate_up_exps;    /* {H, 2*Fe, E} (fused) */
    struct nb_gtensor ffn_gate_exps, ffn_up_exps; /* {H, Fe, E} (split form) */
    struct nb_gtensor ffn_down_exps;       /* {Fe, H, E} */
    struct vkx_buffer ffn_down_exps_scale; /* f32 [E] (absent: 1) */
};

struct nb_gpu_model {
    struct vkx_ctx vk;
    struct nb_model m; /* configuration and the mapped GGUF */
    struct nb_op_matmul mm;
    struct nb_op_attn at;
    struct nb_op_misc mi;
    struct nb_gtensor token_embd;           /* {H, V} */
    struct nb_gtensor output;               /* {H, V} (the same tensor as token_embd when tied) */
    bool output_is_embd;
    struct vkx_buffer output_norm;          /* f32 [H] */
    struct vkx_buffer rope_factors;         /* f32 [n_rot/2] full layers */
    /* The per-layer token embeddings {L*P, V} (E2B: 262144 x 35*256 weights, of which a token
     * reads one row) stay in the mapped file: ple_host is the file's tensor and the gtensor is
     * empty. NIBBLE_PLE=device (or a type nb_dequant_row lacks) puts them on the device instead
     * (ple_host NULL, read by an embed dispatch). */
    const struct gguf_tensor *ple_host;     /* {L*P, V} in the mapping, or NULL */
    struct nb_gtensor per_layer_token_embd; /* {L*P, V} on the device (empty with ple_host) */
    struct nb_gtensor per_layer_model_proj; /* {H, L*P} */
    struct vkx_buffer per_layer_proj_norm;  /* f32 [P] */
    struct nb_gpu_layer *layer;             /* [n_layer] */
    uint64_t weight_bytes;                  /* device bytes of all weights */
    uint64_t host_weight_bytes;             /* file bytes of the weights left on the host */
    struct nb_selftest st;                  /* the self-test at load (selftest.h) */
    /* checked before uploading: device bytes the weights need, and what the device can give
     * (VK_EXT_memory_budget's budget less this process's use when mem_budget, else the heap or
     * NIBBLE_DEVICE_MEMORY_MB) */
    uint64_t mem_need, mem_avail;
    bool mem_budget;
};

/* Loads the model file and uploads every weight. 0, or -1 with one line in err. */
int nb_gpu_model_load(struct nb_gpu_model *g, const char *path, const struct vkx_opts *opts,
                      char *err, size_t errlen);
void nb_gpu_model_free(struct nb_gpu_model *g);

/* One context: KV cache, scratch for batches of up to n_batch tokens, command buffers. */
struct nb_fwd {
    struct nb_gpu_model *g;
    uint32_t n_ctx, n_batch;
    uint32_t n_logits;       /* rows the logits buffer holds */
    struct nb_kvcache kv;
    /* inputs (host-visible, written before each submit) */
    struct vkx_buffer ids;   /* u32 [n_batch] token ids */
    struct vkx_buffer pos;   /* u32 [n_batch] positions */
    /* scratch, B = n_batch */
    struct vkx_buffer h;     /* f32 [B][H] residual stream */
    struct vkx_buffer x;     /* f32 [B][H] normed input of a block */
    struct vkx_buffer o;     /* f32 [B][H] block output */
    struct vkx_buffer f2;    /* f32 [B][H] MoE branch output / router input */
    struct vkx_buffer q;     /* f32 [B][nh*hd_max] */
    struct vkx_buffer k, v;  /* f32 [B][nkv*hd max] */
    struct vkx_buffer att;   /* f32 [B][nh*hd_max] attention output */
    struct vkx_buffer gate, up; /* f32 [B][max(F, P)] (up: only for unfused gate/up) */
    struct vkx_buffer qkv;   /* f32 [B][nq + 2*nkv*hd max] fused q|k|v (or 4 bytes) */
    struct vkx_buffer gu;    /* f32 [B][2F max] fused gate|up (or 4 bytes) */
    struct vkx_buffer ple;   /* f32 [B][L*P] per-layer inputs */
    struct vkx_buffer ple_tok; /* f32 [B][L*P] E_ple[ids] * sqrt(P): with g->ple_host a
                                  host-visible buffer nb_fwd_run fills from the mapped file,
                                  else device memory the ple_embed dispatch writes */
    float *ple_row;            /* f32 [L*P] host scratch: one dequantized row (ple_host) */
    struct vkx_buffer attn_scratch; /* split-K partials of attention */
    /* MoE scratch */
    struct vkx_buffer rlogits;  /* f32 [B][E] router logits */
    struct vkx_buffer eids;     /* u32 [B][k] chosen experts */
    struct vkx_buffer ew;       /* f32 [B][k] their weights */
    struct vkx_buffer egu;      /* f32 [B*k][2*Fe] expert gate|up */
    struct vkx_buffer eup;      /* f32 [B*k][Fe]   expert up (split form) */
    struct vkx_buffer eact;     /* f32 [B*k][Fe]   geglu */
    struct vkx_buffer edown;    /* f32 [B*k][H]    expert outputs */
    struct vkx_buffer egroup;   /* u32 [E] + [E][B*k] pairs per expert (nb_op_matmul_id) */
    /* outputs */
    struct vkx_buffer xlast;    /* f32 [H] normed last row */
    struct vkx_buffer logits;   /* f32 [n_logits][V], host-visible */
    struct vkx_buffer sampled;  /* u32 [1], host-visible */
    /* layer capture for tests: f32 [n_layer + 1][B][H] (embedding, then after each layer) */
    bool capture;
    struct vkx_buffer cap;
    /* command buffers */
    struct vkx_cmd cmd;         /* prefill chunks, re-recorded per chunk */
    struct vkx_cmd dec;         /* the decode step, recorded once */
    bool dec_recorded;
    struct vkx_cmd smp;         /* sampling */
    /* verification batches (speculative decoding): 2..NB_MATVEC_MAX_TOKENS tokens with every
     * row's logits, each size recorded on first use and replayed like the decode step
     * (NIBBLE_DISABLE=replay: recorded per call); ver[n], cb NULL until then */
    struct vkx_cmd ver[NB_MATVEC_MAX_TOKENS + 1];
    uint32_t max_dispatches;
};

int nb_fwd_create(struct nb_fwd *f, struct nb_gpu_model *g, uint32_t n_ctx, uint32_t n_batch,
                  bool capture, bool timestamps, char *err, size_t errlen);
/* The same with the KV cache's element type: kv_f32 < 0 picks f32 for models whose K/V
 * projections are F32 (reference models: f16 would be the largest error) and f16 otherwise. */
int nb_fwd_create_kv(struct nb_fwd *f, struct nb_gpu_model *g, uint32_t n_ctx, uint32_t n_batch,
                     bool capture, bool timestamps, int kv_f32, char *err, size_t errlen);
void nb_fwd_destroy(struct nb_fwd *f);
/* kv_f32 < 0's choice: true when every K/V projection is F32. */
bool nb_fwd_kv_f32_auto(const struct nb_model *m);

/* Records the forward pass of n (1..n_batch) tokens into c: ids/pos buffers hold the tokens and
 * their positions. all_logits: logits of every row into f->logits; else of the last row only
 * (row 0). */
void nb_fwd_record(struct nb_fwd *f, struct vkx_cmd *c, uint32_t n, bool all_logits);

/* Runs n tokens at positions pos0.. (n <= n_batch; n == 1 replays the decode recording, and
 * 2..NB_MATVEC_MAX_TOKENS with all_logits a verification recording of that size): writes
 * the ids, positions and (ple_host) per-layer token embeddings of the batch, submits and waits.
 * ids must be < n_vocab. */
void nb_fwd_run(struct nb_fwd *f, const int32_t *ids, uint32_t n, uint32_t pos0, bool all_logits);

#endif

/* model: the Gemma 4 configuration (from gemma4.* GGUF metadata) and the weight table (pointers to
 * the GGUF tensors, every one checked for presence, type and exact shape at load time).
 *
 * Notation in the shape comments (ggml order, ne[0] first = the contiguous input dimension):
 * H = n_embd, V = n_vocab, L = n_layer, nh = n_head, nkv = n_head_kv of the layer, hd = head dim
 * of the layer (head_dim for full layers, head_dim_swa for sliding ones), F = n_ff of the layer,
 * P = n_embd_ple, E = n_expert, Fe = n_ff_exp, R = n_rot of full layers.
 *
 * Ownership: nb_model_load fills a caller-owned struct nb_model; it owns the struct gguf (the file
 * mapping) and the rope factor array until nb_model_free. Every tensor pointer lives as long.
 */
#ifndef NB_MODEL_H
#define NB_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "gguf.h"

#define NB_MAX_LAYERS 128
#define NB_MAX_EXPERTS 1024

/* Model families. Only gemma4 loads today; gemma3 is the planned second one (its GGUFs already
 * have the norm "+1" baked in, so the forward is the same "multiply by the stored weight"; it
 * needs attn_scale = 1/sqrt(query_pre_attn_scalar) and no PLE/MoE/KV sharing). */
enum nb_arch { NB_ARCH_GEMMA4 = 0, NB_ARCH_GEMMA3 = 1 };

/* A factor at or above this in rope_freqs means "this pair does not rotate" (llama.cpp writes
 * 1e30 for the pairs proportional RoPE leaves alone). */
#define NB_ROPE_FACTOR_OFF 1e10f

struct nb_layer_config {
    bool is_swa;        /* sliding-window attention (else full/global) */
    bool has_kv;        /* computes and caches its own K/V (false on KV-shared layers) */
    bool has_v;         /* attn_v present; false: V = the raw K projection (K=V) */
    bool is_moe;        /* ffn_gate_inp present: dense MLP + experts */
    int32_t kv_source;  /* layer whose K/V cache this layer reads (itself when has_kv) */
    uint32_t n_head_kv; /* nkv */
    uint32_t head_dim;  /* hd: head_dim (full) or head_dim_swa (sliding), for K, V and Q */
    uint32_t n_rot;     /* rotated dims per head (NeoX pairs (i, i + n_rot/2)) */
    float rope_base;    /* theta base: rope_base (full) or rope_base_swa (sliding) */
    uint32_t n_ff;      /* F: width of the dense MLP */
};

struct nb_config {
    enum nb_arch arch;
    char name[96];         /* general.name, "" if absent */
    uint32_t n_embd;       /* H */
    uint32_t n_layer;      /* L */
    uint32_t n_head;       /* nh (all layers) */
    uint32_t n_vocab;      /* V = token_embd ne[1] */
    uint32_t n_ctx_train;  /* context_length */
    uint32_t head_dim;     /* key_length = value_length (full layers) */
    uint32_t head_dim_swa; /* key_length_swa = value_length_swa (sliding layers) */
    uint32_t n_rot;        /* rope.dimension_count (full layers) */
    uint32_t n_rot_swa;    /* rope.dimension_count_swa (sliding layers) */
    float rope_base;       /* rope.freq_base (full layers) */
    float rope_base_swa;   /* rope.freq_base_swa (sliding layers) */
    /* Per-pair frequency factors of full layers (rope_freqs tensor, [n_rot/2], always allocated;
     * all 1.0 when the tensor is absent): theta_i = pos * base^(-2i/n_rot) / factor_i. Sliding
     * layers use no factors. n_rope_pairs_full = how many leading pairs have a factor below
     * NB_ROPE_FACTOR_OFF (= n_rot/2 when every pair rotates); rope_factors_simple says the factors
     * are exactly [1.0] * n_rope_pairs_full + [off] * rest, so a GPU kernel may rotate only the
     * first n_rope_pairs_full pairs with plain frequencies. */
    float *rope_factors; /* [n_rot/2] */
    uint32_t n_rope_pairs_full;
    bool rope_factors_simple;
    uint32_t sliding_window; /* keys with q_pos - k_pos >= window are masked on sliding layers */
    float rms_eps;
    float attn_scale;       /* multiplies q.k; 1.0 for gemma4 (QK-norm replaces 1/sqrt(hd)) */
    float embd_scale;       /* sqrt(H): token embeddings are multiplied by it */
    uint32_t n_kv_shared;   /* attention.shared_kv_layers: the last n layers reuse K/V */
    uint32_t n_embd_ple;    /* P: per-layer embedding width, 0 = no PLE */
    uint32_t n_expert;      /* E, 0 = no MoE */
    uint32_t n_expert_used; /* top-k */
    uint32_t n_ff_exp;      /* Fe */
    bool moe_fused_gate_up; /* ffn_gate_up_exps (gate rows first) instead of split gate/up */
    float final_softcap;    /* logits = c * tanh(logits / c); 0 = none */
    bool tied_output;       /* no output.weight: the output matrix is token_embd */
    bool has_layer_scale;   /* layer_output_scale on some layer (others: 1) */
    uint32_t max_head_dim;  /* max over layers of hd (scratch sizing) */
    uint32_t max_n_ff;      /* max over layers of F */
    struct nb_layer_config layer[NB_MAX_LAYERS];
};

struct nb_layer_weights {
    const struct gguf_tensor *attn_norm;           /* {H} */
    const struct gguf_tensor *attn_q;              /* {H, nh*hd} */
    const struct gguf_tensor *attn_k;              /* {H, nkv*hd}    NULL unless has_kv */
    const struct gguf_tensor *attn_v;              /* {H, nkv*hd}    NULL unless has_kv && has_v */
    const struct gguf_tensor *attn_q_norm;         /* {hd} */
    const struct gguf_tensor *attn_k_norm;         /* {hd}           NULL unless has_kv */
    const struct gguf_tensor *attn_output;         /* {nh*hd, H} */
    const struct gguf_tensor *post_attention_norm; /* {H} */
    const struct gguf_tensor *ffn_norm;            /* {H} */
    const struct gguf_tensor *ffn_gate;            /* {H, F} */
    const struct gguf_tensor *ffn_up;              /* {H, F} */
    const struct gguf_tensor *ffn_down;            /* {F, H} */
    const struct gguf_tensor *post_ffw_norm;       /* {H} */
    const struct gguf_tensor *layer_output_scale;  /* {1}            NULL if absent */
    /* PLE (n_embd_ple > 0) */
    const struct gguf_tensor *inp_gate;  /* {H, P} */
    const struct gguf_tensor *proj;      /* {P, H} */
    const struct gguf_tensor *post_norm; /* {H} */
    /* MoE (is_moe) */
    const struct gguf_tensor *ffn_gate_inp;       /* {H, E}   router */
    const struct gguf_tensor *ffn_gate_inp_scale; /* {H}      router input scale */
    const struct gguf_tensor *pre_ffw_norm_2;     /* {H} */
    const struct gguf_tensor *post_ffw_norm_1;    /* {H} */
    const struct gguf_tensor *post_ffw_norm_2;    /* {H} */
    const struct gguf_tensor *ffn_gate_up_exps;   /* {H, 2*Fe, E}  fused: gate rows, then up rows */
    const struct gguf_tensor *ffn_gate_exps;      /* {H, Fe, E}    split form (when not fused) */
    const struct gguf_tensor *ffn_up_exps;        /* {H, Fe, E} */
    const struct gguf_tensor *ffn_down_exps;      /* {Fe, H, E} */
    const struct gguf_tensor *ffn_down_exps_scale; /* {E}      per-expert scale, NULL = 1 */
};

struct nb_weights {
    const struct gguf_tensor *token_embd;           /* {H, V} */
    const struct gguf_tensor *output;               /* {H, V}  = token_embd when tied */
    const struct gguf_tensor *output_norm;          /* {H} */
    const struct gguf_tensor *rope_freqs;           /* {R/2}   NULL if absent */
    const struct gguf_tensor *per_layer_token_embd; /* {L*P, V}  PLE only */
    const struct gguf_tensor *per_layer_model_proj; /* {H, L*P}  PLE only */
    const struct gguf_tensor *per_layer_proj_norm;  /* {P}       PLE only */
    struct nb_layer_weights layer[NB_MAX_LAYERS];
};

struct nb_model {
    struct gguf *gguf;
    struct nb_config cfg;
    struct nb_weights w;
};

/* Opens a GGUF file and fills m. Returns 0, or -1 with one line in err (m is then empty and
 * nb_model_free on it is harmless). */
int nb_model_load(struct nb_model *m, const char *path, char *err, size_t errlen);
/* Same over an already opened struct gguf, which m then owns (closed on error too). */
int nb_model_from_gguf(struct nb_model *m, struct gguf *g, char *err, size_t errlen);
void nb_model_free(struct nb_model *m);

const char *nb_arch_name(enum nb_arch a);
/* Prints the configuration, several lines, the per-layer pattern compactly. */
void nb_config_print(const struct nb_config *c, FILE *f);

/* Tensor type classes the model accepts: vectors (norms, scales, rope_freqs) and matrices. */
bool nb_type_ok_vector(enum ggml_type t);
bool nb_type_ok_matrix(enum ggml_type t);

#endif

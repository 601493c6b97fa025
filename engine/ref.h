/* ref: a plain-C f32 reference forward pass of Gemma 4 for one sequence, step for step as in
 * ../shared/docs/gemma4.md section 1.4. Slow and simple; the GPU forward is checked against it.
 *
 * Weights are dequantized row by row on the fly (nb_dequant_row), activations and the KV cache are
 * f32 on the host. Decode (one token per call) and prefill (many tokens per call) give the same
 * numbers bit for bit: every token's arithmetic is the same whatever the batch.
 *
 * Step names used in comments and in the on_step hook, in order (the GPU forward mirrors them):
 * embed, ple_inputs, then per layer attn_norm, attn_q, q_norm, rope_q, attn_k, attn_v, k_norm,
 * v_norm, rope_k, kv_store, attention, attn_out, post_attn_norm, residual, ffn_norm, ffn_gate_up,
 * geglu, ffn_down, [moe: post_ffw_norm_1, router, moe_experts, post_ffw_norm_2], post_ffw_norm,
 * ple_gate, ple_proj, post_norm, layer_scale; then output_norm, output, softcap.
 */
#ifndef NB_REF_H
#define NB_REF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"

struct nb_ref;

/* Observation hooks, all optional. Called once per token, in token order within each step.
 * on_layer: the residual stream h[H] after layer `layer` (after layer_scale); layer -1 is the
 *   scaled embedding, layer n_layer is the output of output_norm.
 * on_step: the output of step `step` (a name from the list above) for token position `pos` in
 *   layer `layer` (-1 outside layers): n floats (per-head steps give all heads, nh*hd or
 *   nkv*hd; router gives the E router probabilities; attention gives nh*hd). */
struct nb_ref_hooks {
    void *user;
    void (*on_layer)(void *user, int layer, int pos, const float *h);
    void (*on_step)(void *user, const char *step, int layer, int pos, const float *x, int n);
};

/* Creates a reference runner with a KV cache of n_ctx positions. The model must outlive it.
 * NULL with a one-line message in err on failure (bad n_ctx, out of memory). */
struct nb_ref *nb_ref_create(const struct nb_model *m, int n_ctx, char *err, size_t errlen);
void nb_ref_destroy(struct nb_ref *r);
void nb_ref_set_hooks(struct nb_ref *r, const struct nb_ref_hooks *hooks);

/* Runs tokens[0..n) at positions pos0..pos0+n-1 (pos0 <= the number of positions already in the
 * cache; later positions are overwritten, so pos0 = 0 restarts the sequence). Writes the logits
 * (after softcap) of every token, [n][n_vocab], or of the last token only when last_only,
 * [n_vocab]; logits may be NULL. Returns 0, or -1 with a one-line message in err (bad token id,
 * positions outside the context). */
int nb_ref_eval(struct nb_ref *r, const int32_t *tokens, int n, int pos0, float *logits,
                bool last_only, char *err, size_t errlen);

/* The f32 cache layer `layer` attends (its KV source's), [n_ctx][nkv*hd] each (K normed and
 * roped, V normed), and the positions filled (for the MTP assistant's reference, ref_mtp.c). */
void nb_ref_kv(const struct nb_ref *r, uint32_t layer, const float **k, const float **v,
               int *n_past);

#endif

/* op_matmul: weight products on the GPU: decode matrix-vector (1..8 tokens per weight read),
 * prefill matrix-matrix, embedding lookup, the MoE expert matrix-vector and the expert-grouped
 * MoE prefill matrix-matrix (nb_op_matmul_id).
 *
 * Weights are nb_gtensor (NB_WEIGHT_TYPES), activations f32 row-major [tokens][width].
 * Every function records one dispatch per weight piece (more only past 65535 grid slices of
 * tokens or pairs) and NO barrier before or after: the caller puts vkx_cmd_barrier() between a
 * dispatch and the one that reads its output. `accumulate` adds into y instead of overwriting it
 * (residual adds). Strides of 0 mean dense rows (x: K, y: M).
 */
#ifndef NB_OP_MATMUL_H
#define NB_OP_MATMUL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gtensor.h"
#include "op_int8.h"
#include "vkx.h"

#define NB_MATVEC_MAX_TOKENS 8 /* tokens sharing one weight read in nb_op_matvec */
#define NB_MM_NTYPES 15        /* F32, F16, BF16 and the 12 quantized types of gtensor_pack.h */

#define NB_MV_VARIANTS 4 /* matvec pipelines for 1, 2, 4, 8 tokens */

struct nb_op_matmul {
    struct vkx_pipeline mv[NB_MM_NTYPES][NB_MV_VARIANTS]; /* matvec [type][2^k tokens] */
    struct vkx_pipeline mv_id[NB_MM_NTYPES];              /* MoE matvec */
    /* the same reading quantized weights through texel views (gtensor.texel), when `texel` */
    struct vkx_pipeline mv_tx[NB_MM_NTYPES][NB_MV_VARIANTS], mv_id_tx[NB_MM_NTYPES];
    bool texel; /* CPU-device shape on a device with texel buffers (NIBBLE_DISABLE=texel: off) */
    struct vkx_pipeline mm[NB_MM_NTYPES];                 /* prefill matmul */
    struct vkx_pipeline mm_id[NB_MM_NTYPES];              /* MoE prefill matmul (MM_ID) */
    /* fp16: the matmul/matmul_id of quantized and F16 weights hold the dequantized tile in f16
     * (matmul_h*; f32 products and sums): devices with shaderFloat16 (NIBBLE_DISABLE=fp16) */
    bool fp16;
    struct vkx_pipeline group;                            /* moe_group: pairs by expert */
    uint32_t group_wg;
    uint32_t mm_id_bn; /* matmul_id tile: pairs per tile (rows: mm_bm) */
    struct vkx_pipeline embed[NB_MM_NTYPES];
    bool subgroup;  /* matvec reduces with subgroup arithmetic (else shared memory) */
    uint32_t mv_wg; /* matvec workgroup size */
    uint32_t mv_sg_size; /* subgroup size the subgroup matvec requires (0: the driver picks) */
    uint32_t mv_rows[NB_MV_VARIANTS + 1]; /* rows per workgroup: matvec [k], matvec_id [4] */
    uint32_t mm_bm, mm_bn;                /* matmul tile: weight rows x tokens */
    uint32_t embed_wg;
    uint32_t types;      /* NB_MM_TYPE_BIT of the weight types with pipelines */
    uint32_t mv_chunk;   /* tokens per matvec dispatch (8; 4 on CPU devices) */
    bool prefill_matvec; /* nb_op_mul uses matvec chunks for any n_tokens (CPU devices) */
    /* Row tiles (gtensor.h) the weights should be uploaded in: log2 of the lanes of a CPU
     * device's vector for its whole-rows-per-thread matvec, else 0. matvec, matvec_id and embed
     * read any tiling; matmul and matmul_id need plain rows (CPU devices never use them). */
    uint32_t tile_shift;
    /* Decode products with 4x8-bit integer dot products (op_int8.h), on when i8.on: chosen by
     * nb_op_matmul_create/_create_for from the device (nb_op_int8_wanted); never by _create_ex
     * unless nb_op_matmul_set_int8 turns it on. */
    struct nb_op_int8 i8;
};

#define NB_MM_TYPE_BIT(t) (1u << (unsigned)(t)) /* ggml type ids of the supported types < 32 */
#define NB_MM_EXPERTS (1u << 31) /* with the types: the model has expert (MoE) tensors */

/* Pipelines for every supported weight type. */
int nb_op_matmul_create(struct nb_op_matmul *o, struct vkx_ctx *vk, char *err, size_t errlen);

/* Only the pipelines the forward pass uses, for the weight types in `types` (NB_MM_TYPE_BIT mask,
 * plus NB_MM_EXPERTS for the MoE ones): a model's own types, and on a CPU-shaped device no tiled
 * matmul and no 8-token matvec. That saves the driver memory and build time of the others. A
 * product needing a pipeline that was not built aborts. */
int nb_op_matmul_create_for(struct nb_op_matmul *o, struct vkx_ctx *vk, uint32_t types,
                            char *err, size_t errlen);
/* Same with the matvec shape chosen, for tests: subgroup -1 decides from the device (what
 * nb_op_matmul_create does), 1 uses subgroup arithmetic when the device has it, 0 never, 2 never
 * and with the GPU shape even on a CPU device (shared-memory reduction over 32 threads); every
 * pipeline (all token counts, matmul) for the types in `types` (NB_MM_TYPE_BIT mask, 0: all). */
int nb_op_matmul_create_ex(struct nb_op_matmul *o, struct vkx_ctx *vk, int subgroup,
                           uint32_t types, char *err, size_t errlen);
void nb_op_matmul_destroy(struct nb_op_matmul *o, struct vkx_ctx *vk);
/* Turns the integer dot-product decode path on (building its pipelines for o's types the first
 * time) or off. 0, or -1 with a message when the device cannot run it (nothing changed). */
int nb_op_matmul_set_int8(struct nb_op_matmul *o, struct vkx_ctx *vk, bool on, char *err,
                          size_t errlen);

/* Whether the ops handle this weight type. */
bool nb_op_matmul_supports(enum ggml_type t);

/* y[t][m] (+)= sum_k W[m][k] x[t][k]; W {K, M}, x [n_tokens][x_stride], y [n_tokens][y_stride].
 * Any n_tokens, one dispatch per weight piece (groups of up to mv_chunk tokens share a weight
 * read; prefer nb_op_mul, which switches to nb_op_matmul for prefill where that is faster). */
void nb_op_matvec(struct nb_op_matmul *o, struct vkx_ctx *vk, struct vkx_cmd *c,
                  const struct nb_gtensor *w, struct vkx_view x, struct vkx_view y,
                  uint32_t n_tokens, uint32_t x_stride, uint32_t y_stride, bool accumulate);

/* Same product, tiled for many tokens (prefill). Any n_tokens >= 1. */
void nb_op_matmul(struct nb_op_matmul *o, struct vkx_ctx *vk, struct vkx_cmd *c,
                  const struct nb_gtensor *w, struct vkx_view x, struct vkx_view y,
                  uint32_t n_tokens, uint32_t x_stride, uint32_t y_stride, bool accumulate);

/* Picks nb_op_matvec (n_tokens <= 8, or any count on CPU devices where it is faster) or
 * nb_op_matmul. */
void nb_op_mul(struct nb_op_matmul *o, struct vkx_ctx *vk, struct vkx_cmd *c,
               const struct nb_gtensor *w, struct vkx_view x, struct vkx_view y, uint32_t n_tokens,
               uint32_t x_stride, uint32_t y_stride, bool accumulate);

/* out[t][k] = E[ids[t]][k] * scale, k < K; E {K, rows}; ids uint32 [n_tokens]; out
 * [n_tokens][out_stride]. An id >= rows gives a row of zeros. */
void nb_op_embed(struct nb_op_matmul *o, struct vkx_ctx *vk, struct vkx_cmd *c,
                 const struct nb_gtensor *e, struct vkx_view ids, struct vkx_view out,
                 uint32_t n_tokens, uint32_t out_stride, float scale);

/* MoE experts: W {K, M, E}; ids uint32 [n_tokens][n_slots] (expert per token and slot, on the
 * device); x [n_tokens][x_stride] (x_per_slot false: gate/up, shared per token) or
 * [n_tokens * n_slots][x_stride] (x_per_slot true: down); y [n_tokens * n_slots][y_stride]:
 *   y[t*n_slots+s][m] (+)= sum_k W[ids[t][s]][m][k] x[t or t*n_slots+s][k].
 * One weight read per (token, slot); routing weights, per-expert scales and the sum over slots
 * are left to the caller. An id >= E leaves its y row untouched. Any n_tokens. */
void nb_op_matvec_id(struct nb_op_matmul *o, struct vkx_ctx *vk, struct vkx_cmd *c,
                     const struct nb_gtensor *w, struct vkx_view x, struct vkx_view y,
                     struct vkx_view ids, uint32_t n_tokens, uint32_t n_slots, bool x_per_slot,
                     uint32_t x_stride, uint32_t y_stride, bool accumulate);

/* Scratch bytes of nb_op_matmul_id for E experts and n_tokens x n_slots pairs:
 * u32 counts [E] then u32 lists [E][n_tokens * n_slots]. */
uint64_t nb_op_matmul_id_scratch_bytes(uint32_t n_exp, uint32_t n_tokens, uint32_t n_slots);

/* Same product and contract as nb_op_matvec_id, for prefill: tokens grouped by expert on the
 * device. Records a grouping pass (one workgroup per expert writes the list of its pairs into
 * scratch, nb_op_matmul_id_scratch_bytes), an internal barrier, then one tiled matmul dispatch
 * per weight piece with grid z = expert, gathering x rows and scattering y rows through the
 * lists. No read-back to the host. scratch is rewritten by every call: two calls sharing it
 * need a barrier between them (the second must not overwrite the lists the first still reads). */
void nb_op_matmul_id(struct nb_op_matmul *o, struct vkx_ctx *vk, struct vkx_cmd *c,
                     const struct nb_gtensor *w, struct vkx_view x, struct vkx_view y,
                     struct vkx_view ids, struct vkx_view scratch, uint32_t n_tokens,
                     uint32_t n_slots, bool x_per_slot, uint32_t x_stride, uint32_t y_stride,
                     bool accumulate);

#endif

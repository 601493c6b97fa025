/* op_int8: the decode matrix-vector product with 4x8-bit integer dot products (DP4a class,
 * VK_KHR_shader_integer_dot_product), the way llama.cpp's Vulkan backend does it where the device
 * accelerates them: the activations are quantized on the device to blocks of 32 int8 with an f32
 * scale and half sums (shaders/quant_act.comp), then each weight unit's packed bytes meet them in
 * OpSDot (shaders/matvec_int8.comp).
 *
 * nb_op_matvec (op_matmul.h) takes this path for up to 8 tokens of the weight types below when
 * nb_op_matmul's int8 is on: by default where the device reports the packed signed 4x8 dot
 * product accelerated (caps.int_dot_4x8_accel); NIBBLE_INT8=1 also where it is only exposed
 * (lavapipe: for tests); NIBBLE_DISABLE=int8 never (f32 products). nb_op_matvec_id (the MoE
 * experts of up to 8 tokens) takes it too, for a model with experts. Prefill (matmul, matmul_id)
 * stays f32.
 *
 * Accuracy: x is rounded to 8 bits per 32-element block (amax / 127 steps, as llama.cpp rounds
 * its Q8_0/Q8_1 activations) and the remainders once more to 8 bits (steps of amax / 16256), two
 * OpSDot per 4 elements; the integer sums are exact. With the 8-bit values alone the decode
 * logits of the goldens sat outside llama.cpp's CPU-Vulkan spread (dense 1.01x, dense-q8 1.04x,
 * MoE 1.43x from the CPU file: that rounding is as large as llama.cpp's CPU backend's own and
 * only partly follows it); with the remainders they are as close as the f32 products'.
 */
#ifndef NB_OP_INT8_H
#define NB_OP_INT8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gtensor.h"
#include "vkx.h"

#define NB_I8_NTYPES 8   /* Q4_0, Q8_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K */
#define NB_I8_VARIANTS 4 /* 1, 2, 4, 8 tokens per z slice */
#define NB_I8_MAX_OLD 8

struct nb_op_int8 {
    bool on;        /* nb_op_matvec takes this path (for the types built) */
    uint32_t types; /* NB_MM_TYPE_BIT (op_matmul.h) of the weight types with pipelines */
    struct vkx_pipeline qact;
    struct vkx_pipeline mv[NB_I8_NTYPES][NB_I8_VARIANTS];
    struct vkx_pipeline mv_id[NB_I8_NTYPES]; /* MoE experts (types with NB_MM_EXPERTS) */
    uint32_t qact_wg;
    uint32_t rows[NB_I8_VARIANTS]; /* rows per workgroup (mv_id: rows[0]) */
    uint32_t nvar;                 /* variants built: 1 .. 1 << (nvar - 1) tokens */
    bool subgroup;                 /* subgroup reduction (else shared memory) */
    uint32_t sg_size;              /* subgroup size required (0: the driver's) */
    /* Scratch for the quantized activations: two slots of slot_bytes (the most x rows of the
     * longest row so far, 80 bytes per 32 elements), used in turn so a product's quantization never
     * overwrites what the previous product, with no barrier between them, still reads (the
     * product before that is behind the previous product's own barrier). Grown when a longer row
     * comes; the old buffers stay alive for recordings that use them until destroy. One model's
     * contexts share it: their submissions wait for each other (nibble.h). */
    struct vkx_buffer xq;
    uint64_t slot_bytes;
    uint32_t next_slot;
    struct vkx_buffer old[NB_I8_MAX_OLD];
    uint32_t n_old;
};

/* Whether the device should use this path: the integer dot product exposed and not disabled
 * (NIBBLE_DISABLE=int8), and accelerated or forced by NIBBLE_INT8=1. */
bool nb_op_int8_wanted(const struct vkx_ctx *vk);

/* Pipelines for the weight types in `types` (NB_MM_TYPE_BIT mask; the others are left to the
 * f32 products; with NB_MM_EXPERTS also the MoE expert products), up to max_tokens tokens per z slice (1..8), reducing with subgroups (sg_size:
 * the subgroup size to require, 0: any) or shared memory. 0, or -1 with a message (the device
 * lacks the integer dot product, or a pipeline was refused). Leaves on false. */
int nb_op_int8_create(struct nb_op_int8 *o, struct vkx_ctx *vk, uint32_t types, bool subgroup,
                      uint32_t sg_size, uint32_t max_tokens, char *err, size_t errlen);
void nb_op_int8_destroy(struct nb_op_int8 *o, struct vkx_ctx *vk);

/* y = W x (+ y) as nb_op_matvec when o->on, the type is built and n_tokens <= 8: records the
 * quantization of x, a barrier and the products, and returns true; else records nothing and
 * returns false (also when no scratch could be had). */
bool nb_op_int8_matvec(struct nb_op_int8 *o, struct vkx_ctx *vk, struct vkx_cmd *c,
                       const struct nb_gtensor *w, struct vkx_view x, struct vkx_view y,
                       uint32_t n_tokens, uint32_t x_stride, uint32_t y_stride, bool accumulate);

/* The same for nb_op_matvec_id (op_matmul.h: W {K, M, E}, ids [n_tokens][n_slots], x per token
 * or per pair) when o->on, the type's expert pipeline is built and n_tokens <= 8: records the
 * quantization of the x rows, a barrier and one product per (token, slot) pair, and returns
 * true; else records nothing and returns false. */
bool nb_op_int8_matvec_id(struct nb_op_int8 *o, struct vkx_ctx *vk, struct vkx_cmd *c,
                          const struct nb_gtensor *w, struct vkx_view x, struct vkx_view y,
                          struct vkx_view ids, uint32_t n_tokens, uint32_t n_slots,
                          bool x_per_slot, uint32_t x_stride, uint32_t y_stride, bool accumulate);

#endif

/* gtensor_pack: the device layout of each quantized weight type (shaders/quant.glsl reads it).
 *
 * Every quantized type is split into two planes per piece of whole rows (gtensor.h):
 *   plane A, the "unit" plane: per 32-element unit, QU bytes of its low bits (16: 4-bit values
 *     in Q4_0's order, byte j = element j | element j+16 << 4; 32: Q8_0's int8 values; 8:
 *     2-bit values, element e at bit 2*(e % 16) of word e / 16);
 *   plane B, the "block" plane: per GGUF block (32 or 256 elements), SB bytes of its scales and
 *     high bits, fields word aligned.
 * The table (per block; BE elements):
 *   type    BE  QU  SB  plane B
 *   Q4_0    32  16   2  d
 *   Q8_0    32  32   2  d
 *   Q4_1    32  16   4  d, m
 *   Q5_0    32  16   8  d, 0 | qh (5th bits in byte-lane order: element 4i + b at bit 8b + i)
 *   Q5_1    32  16   8  d, m | qh
 *   IQ4_NL  32  16   2  d
 *   Q2_K   256   8  20  d, dmin | scales[16]
 *   Q3_K   256   8  48  d, 0 | scales[12] (GGUF's packed 6-bit) | hm[8] (word s, bit e: the
 *                       high bit of element e of unit s)
 *   Q4_K   256  16  16  d, dmin | scales[12] (packed 6-bit)
 *   Q5_K   256  16  48  d, dmin | scales[12] | qh[8] (word s: unit s's 5th bits, byte-lane
 *                       order as Q5_0)
 *   Q6_K   256  16  84  d, 0 | scales[16] (int8) | qh[16] (words 2s, 2s+1: the 2 high bits of
 *                       elements 0..15 and 16..31 of unit s; element 16h + 4i + b at bits
 *                       8b + 2i of word 2s + h)
 *   IQ4_XS 256  16   8  d, scales_h | scales_l[4]
 * Byte-lane order puts the high bits of elements 4i..4i+3 one per byte (byte b: element 4i + b),
 * where the low nibbles of Q4_0's order sit, so the matrix-vector shader joins them with a shift,
 * a mask and an or per 4 elements (quant_unit.glsl, wq_m).
 * Groups of 8 (Q5_K, Q6_K in row tiles of >= 8 rows): the 8 plane B entries of one block that
 * the 8 rows of a CPU-shaped matrix-vector thread read (quant.glsl's q_scale puts them side by
 * side) are stored transposed: the 8 heads (Q5_K d, dmin, scales: 16 bytes; Q6_K d, 0, scales:
 * 20 bytes), then per unit s the 8 entries' high bits (Q5_K one word, Q6_K two), so the thread
 * reads the 8 rows' high bits of a unit as 2 or 4 aligned 16-byte loads instead of 8 or 16 words
 * (quant_k.glsl, wq_k_head_at / wq_k_high_at).
 * Bytes per weight stay GGUF's except where a field is padded to a word (Q5_0, Q3_K, Q6_K: 1-2
 * bytes per block). The repack is exact: no value changes, only where bits sit.
 */
#ifndef NB_GTENSOR_PACK_H
#define NB_GTENSOR_PACK_H

#include <stdbool.h>
#include <stdint.h>

#include "gguf.h"

/* Every weight type nibble reads (matrices and embeddings), for messages. */
#define NB_WEIGHT_TYPES                                                                          \
    "f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q2_k, q3_k, q4_k, q5_k, q6_k, iq4_nl, iq4_xs"

struct nb_pack_info {
    uint32_t be; /* elements per GGUF block (32 or 256) */
    uint32_t qu; /* plane A bytes per 32-element unit */
    uint32_t sb; /* plane B bytes per block */
};

/* Whether `t` is a quantized type with a two-plane device layout; fills *pi when pi != NULL. */
bool nb_pack_info(enum ggml_type t, struct nb_pack_info *pi);

/* Repacks one GGUF block `src` of type t into be / 32 units of qu bytes at units (contiguous,
 * unit by unit) and sb bytes at blk. */
void nb_pack_block(enum ggml_type t, const uint8_t *src, uint8_t *units, uint8_t *blk);

/* Writes plane B entry si (pi's sb bytes at blk, from nb_pack_block) into the plane B at d: at
 * d + si * sb, or, with `grouped` (Q5_K and Q6_K in row tiles of >= 8 rows; d the start of whole
 * groups), transposed within its group of 8 as described above. */
void nb_pack_place(enum ggml_type t, const struct nb_pack_info *pi, bool grouped, uint64_t si,
                   const uint8_t *blk, uint8_t *d);

#endif

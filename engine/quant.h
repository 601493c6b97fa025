/* quant: scalar conversions between f32 and the storage formats of GGUF tensors.
 *
 * fp16 / bf16 conversion (round to nearest even), dequantization of one row of a tensor to f32,
 * and reference quantizers (the rounding ggml's reference code uses, so our files and
 * llama.cpp's agree bit for bit). CPU only, no allocation; used by the CPU reference forward
 * pass, the tests and the tools.
 *
 * Block layouts (gemma4.md §4.3, ggml-common.h), all little-endian, blocks along ne[0]; "byte j
 * = j | j+16" means byte j holds element j in its low nibble and element j+16 in its high one.
 * 32-element blocks:
 *   Q4_0:   18 bytes { fp16 d; u8 qs[16] }: byte j = j | j+16; x = (nibble - 8) * d.
 *   Q4_1:   20 bytes { fp16 d, m; u8 qs[16] }: as Q4_0; x = nibble * d + m.
 *   Q5_0:   22 bytes { fp16 d; u32 qh; u8 qs[16] }: as Q4_0, fifth bit of element j is bit j
 *           of qh; x = (q - 16) * d.
 *   Q5_1:   24 bytes { fp16 d, m; u32 qh; u8 qs[16] }: as Q5_0; x = q * d + m.
 *   Q8_0:   34 bytes { fp16 d; i8 qs[32] }: x = qs[j] * d.
 *   IQ4_NL: 18 bytes { fp16 d; u8 qs[16] }: as Q4_0; x = d * kvalues[nibble], the 16
 *           non-linear levels -127 .. 113.
 * 256-element super-blocks:
 *   Q2_K: 84 bytes { u8 scales[16]; u8 qs[64]; fp16 d, dmin }: 16 groups of 16, scale byte =
 *         sc | m << 4; 2-bit q; x = d * sc * q - dmin * m.
 *   Q3_K: 110 bytes { u8 hmask[32]; u8 qs[64]; u8 scales[12]; fp16 d }: 16 groups of 16 with
 *         6-bit scales (stored + 32); 2 low bits as Q2_K plus a high bit in hmask (clear: -4);
 *         x = d * (sc - 32) * q, q in -4..3.
 *   Q4_K: 144 bytes { fp16 d, dmin; u8 scales[12]; u8 qs[128] }: 8 groups of 32 with 6-bit
 *         scale and min; each 32 bytes hold two groups (low nibbles, then high);
 *         x = d * sc * q - dmin * m.
 *   Q5_K: 176 bytes { fp16 d, dmin; u8 scales[12]; u8 qh[32]; u8 qs[128] }: as Q4_K plus a
 *         fifth bit (bit g of qh[l] for element 32g + l).
 *   Q6_K: 210 bytes { u8 ql[128]; u8 qh[64]; i8 scales[16]; fp16 d }: 16 groups of 16, 4 low
 *         bits in ql and 2 high in qh; x = d * sc * (q - 32).
 *   IQ4_XS: 136 bytes { fp16 d; u16 scales_h; u8 scales_l[4]; u8 qs[128] }: 8 groups of 32 as
 *         IQ4_NL with 6-bit scales (stored + 32); x = d * (ls - 32) * kvalues[nibble].
 * quant_k.c spells out the exact bit positions of the K-quants at each function.
 */
#ifndef NB_QUANT_H
#define NB_QUANT_H

#include <stdbool.h>
#include <stdint.h>

#include "gguf.h"

/* IEEE half <-> float. nb_f32_to_f16 rounds to nearest even; values from 65520 up become inf,
 * NaN stays NaN (quiet, sign kept), tiny values become fp16 subnormals or signed zero. */
float nb_f16_to_f32(uint16_t h);
uint16_t nb_f32_to_f16(float f);
/* bfloat16 (the top 16 bits of a float) <-> float. nb_f32_to_bf16 rounds to nearest even and
 * keeps NaN a (quiet) NaN. */
float nb_bf16_to_f32(uint16_t h);
uint16_t nb_f32_to_bf16(float f);

/* Whether nb_dequant_row handles this type (F32, F16, BF16 and every layout above). */
bool nb_dequant_supported(enum ggml_type t);
/* Converts n elements (a multiple of ggml_blck_size(t)) starting at src, which holds
 * ggml_row_size(t, n) bytes at any alignment, to f32. Returns 0, or -1 for an unsupported type
 * or a bad n (dst untouched). */
int nb_dequant_row(enum ggml_type t, const void *src, float *dst, uint64_t n);

/* Whether nb_quant_row handles this type (F32, F16, BF16 and every layout above). */
bool nb_quant_supported(enum ggml_type t);
/* Quantizes n f32 values (a multiple of the block size) into ggml_row_size(t, n) bytes at dst
 * with ggml's reference quantizer of the type (quantize_row_<type>_ref), byte for byte: e.g.
 * Q4_0: the value of largest magnitude `max` gives d = max / -8, q = min(15, (int)(x / d +
 * 8.5)); Q8_0: d = amax / 127, q = round(x / d); the K-quants and IQ4_XS search their scales
 * (quant_k.c). One exception: IQ4_NL's all-zero blocks, whose nibbles ggml leaves unset (we
 * write 8; see nbq_q_iq4_nl). Non-finite input gives unspecified bytes. Returns 0 or -1 (a bad
 * type or n; dst untouched). */
int nb_quant_row(enum ggml_type t, const float *src, void *dst, uint64_t n);

#endif

/* quant: scalar conversions between f32 and the storage formats of GGUF tensors.
 *
 * fp16 / bf16 conversion (round to nearest even), dequantization of one row of a tensor to f32,
 * and reference quantizers (the rounding ggml's reference code uses, so our files and
 * llama.cpp's agree bit for bit). CPU only, no allocation; used by the CPU reference forward
 * pass, the tests and the tools.
 *
 * Block layouts (gemma4.md §4.3), all little-endian, blocks of 32 along ne[0]:
 *   Q4_0: 18 bytes { fp16 d; u8 qs[16] }: byte j holds element j in its low nibble and element
 *         j+16 in its high nibble; x = (nibble - 8) * d.
 *   Q8_0: 34 bytes { fp16 d; i8 qs[32] }: x = qs[j] * d.
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

/* Whether nb_dequant_row handles this type (F32, F16, BF16, Q4_0, Q8_0). */
bool nb_dequant_supported(enum ggml_type t);
/* Converts n elements (a multiple of ggml_blck_size(t)) starting at src, which holds
 * ggml_row_size(t, n) bytes at any alignment, to f32. Returns 0, or -1 for an unsupported type
 * or a bad n (dst untouched). */
int nb_dequant_row(enum ggml_type t, const void *src, float *dst, uint64_t n);

/* Whether nb_quant_row handles this type (F32, F16, BF16, Q4_0, Q8_0). */
bool nb_quant_supported(enum ggml_type t);
/* Quantizes n f32 values (a multiple of the block size) into ggml_row_size(t, n) bytes at dst.
 * Q4_0: per block the value with the largest magnitude `max` gives d = max / -8,
 * q = min(15, (int)(x / d + 8.5)); Q8_0: d = amax / 127, q = round(x / d). Returns 0 or -1. */
int nb_quant_row(enum ggml_type t, const float *src, void *dst, uint64_t n);

#endif

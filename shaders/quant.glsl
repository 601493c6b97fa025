// quant.glsl: weight-format helpers shared by matvec.comp, matmul.comp and embed.comp.
//
// Device layout of a weight tensor (written by engine/gtensor.c), per piece of whole rows:
//   F32:  the GGUF rows as is (uint words, uintBitsToFloat)
//   F16, BF16: the GGUF rows as is (two halves per uint word, element i in word i/2)
//   Quantized types: two planes (the per-type table is in engine/gtensor_pack.h):
//     A, units [rows][nb][qu bytes], nb = K/32 units of 32 elements: 4-bit values in Q4_0's
//        order (qu = 16, one uvec4: byte j holds element j in its low nibble and element j+16 in
//        its high one), Q8_0's int8 (qu = 32, two uvec4) or 2-bit values (qu = 8, Q2_K/Q3_K);
//     B, blocks [rows][nbb][sb bytes] at word p.dbase, nbb = K/32 (legacy types) or K/256
//        (K-quants, IQ4_XS) blocks: scales, minimums, high bits. Q4_0 and Q8_0: sb = 2, the f16 d
//        (value = d * (q - 8) and d * q); the other types: quant_legacy.glsl, quant_k.glsl.
//   Row tiles (push field wtile > 0, for CPU devices): in both planes the units and blocks come
//   as [rows / T][n][T] with T = 1 << wtile, the T rows of a tile side by side (q_block); inside
//   a tile of T >= 8 rows the plane B entries of one block are in groups of 8 rows (q_scale).
// The weight type is the spec constant TYPE with the ggml ids below.
#ifndef NB_QUANT_GLSL
#define NB_QUANT_GLSL
#include "half.glsl"

#define NB_T_F32 0
#define NB_T_F16 1
#define NB_T_Q4_0 2
#define NB_T_Q4_1 3
#define NB_T_Q5_0 6
#define NB_T_Q5_1 7
#define NB_T_Q8_0 8
#define NB_T_Q2_K 10
#define NB_T_Q3_K 11
#define NB_T_Q4_K 12
#define NB_T_Q5_K 13
#define NB_T_Q6_K 14
#define NB_T_IQ4_NL 20
#define NB_T_IQ4_XS 23
#define NB_T_BF16 30

// Whether type t is stored as rows of floats (F32, F16, BF16) rather than in the two planes.
bool t_float(uint t)
{
    return t == NB_T_F32 || t == NB_T_F16 || t == NB_T_BF16;
}
// Element e of a row of 16-bit floats (F16 or BF16) whose word e / 2 is w.
float f16x_of(uint w, uint e, bool bf16)
{
    if (bf16) return uintBitsToFloat((e & 1u) != 0u ? (w & 0xFFFF0000u) : (w << 16));
    vec2 v = nb_unpack_half(w);
    return (e & 1u) != 0u ? v.y : v.x;
}

// Elements j..j+3 (low nibbles) of the 4 bytes in q, minus 8.
vec4 q4_lo(uint q)
{
    return vec4(uvec4(q, q >> 8, q >> 16, q >> 24) & 0xFu) - 8.0;
}
// Elements j+16..j+19 (high nibbles) of the 4 bytes in q, minus 8.
vec4 q4_hi(uint q)
{
    return vec4(uvec4(q >> 4, q >> 12, q >> 20, q >> 28) & 0xFu) - 8.0;
}
// The same nibbles masked in place, without shifts (4 ALU operations per 8 elements fewer):
// element j as q & 0xF, j+1 as q & 0xF00 (256 times the nibble), ..., exact as floats; the x
// they multiply carry the inverse powers of two (Q4M_LO, Q4M_HI) and the -8 comes off once per
// block as 8 * sum(x). Elements j+3 and j+19 use the top byte, which a signed conversion of a
// mask would read as negative, so j+19 shifts down and j+3 stops at bit 27.
vec4 q4m_lo(uint q)
{
    return vec4(ivec4(uvec4(q) & uvec4(0xFu, 0xF00u, 0xF0000u, 0xF000000u)));
}
vec4 q4m_hi(uint q)
{
    return vec4(ivec4(uvec4(q, q, q, q >> 28) & uvec4(0xF0u, 0xF000u, 0xF00000u, 0xFu)));
}
const vec4 Q4M_LO = vec4(1.0, 1.0 / 256.0, 1.0 / 65536.0, 1.0 / 16777216.0);
const vec4 Q4M_HI = vec4(1.0 / 16.0, 1.0 / 4096.0, 1.0 / 1048576.0, 1.0);
// The 4 signed bytes of q.
vec4 q8_vec(uint q)
{
    return vec4(ivec4(int(q) << 24, int(q) << 16, int(q) << 8, int(q)) >> 24);
}
// Index of block u (of nb per row) of piece-local row r in either plane, rows in tiles of
// 1 << ts rows (ts = 0: plain rows, r * nb + u).
uint q_block(uint r, uint u, uint nb, uint ts)
{
    return (((r >> ts) * nb + u) << ts) + (r & ((1u << ts) - 1u));
}
// Index (in halves) of the scale of block u of piece-local row r: as q_block, but inside a tile
// of T = 1 << ts >= 8 rows row j = i * (T / 8) + l (i < 8) sits at 8 * l + i, so the thread of
// the CPU-shaped matvec that holds rows l, l + T/8, ..., l + 7T/8 of a tile finds their 8
// scales in one 16-byte unit (matvec.comp).
uint q_scale(uint r, uint u, uint nb, uint ts)
{
    uint j = r & ((1u << ts) - 1u);
    if (ts >= 3u) j = (j & ((1u << (ts - 3u)) - 1u)) * 8u + (j >> (ts - 3u));
    return (((r >> ts) * nb + u) << ts) + j;
}
// Half number h of a packed array whose word is w (h & 1 selects the half).
float half_of(uint w, uint h)
{
    vec2 v = nb_unpack_half(w);
    return (h & 1u) != 0u ? v.y : v.x;
}

#endif

// quant.glsl: weight-format helpers shared by matvec.comp, matmul.comp and embed.comp.
//
// Device layout of a weight tensor (written by engine/gtensor.c), per piece of whole rows:
//   F32:  the GGUF rows as is (uint words, uintBitsToFloat)
//   F16:  the GGUF rows as is (two halves per uint word, element i in word i/2)
//   Q4_0: repacked into two planes: nibbles [rows][nb][16 bytes] (uvec4 per block, 16-byte
//         aligned), then scales [rows][nb] f16; nb = K/32 blocks per row. Inside a block byte j
//         holds element j (low nibble) and element j+16 (high nibble), value = d * (q - 8).
//   Q8_0: two planes: quants [rows][nb][32 int8] (2 uvec4 per block), then scales [rows][nb] f16.
// The weight type is the spec constant TYPE with the ggml ids below.
#ifndef NB_QUANT_GLSL
#define NB_QUANT_GLSL

#define NB_T_F32 0
#define NB_T_F16 1
#define NB_T_Q4_0 2
#define NB_T_Q8_0 8

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
// The 4 signed bytes of q.
vec4 q8_vec(uint q)
{
    return vec4(ivec4(int(q) << 24, int(q) << 16, int(q) << 8, int(q)) >> 24);
}
// Half number h of a packed array whose word is w (h & 1 selects the half).
float half_of(uint w, uint h)
{
    vec2 v = unpackHalf2x16(w);
    return (h & 1u) != 0u ? v.y : v.x;
}

#endif

// half.glsl: nb_unpack_half(w), the two f16 halves of a uint word as floats: unpackHalf2x16, or
// the same conversion in integer operations when the host sets the spec constant NB_SOFT_HALF
// (constant_id 64, VKX_SPEC_SOFT_HALF in host/vkx.h: set on every pipeline, meaningful where
// this file is included). The host sets it where the feature "halfcvt" is off: by NIBBLE_DISABLE,
// or by a driver workaround (host/vkx_quirks.c: Mesa 22.3's lavapipe on aarch64, whose LLVM 15
// aborts compiling unpackHalf2x16, "Cannot select: v4f32 = AArch64ISD::VLSHR"). The branch is
// decided when the pipeline is built, so a driver never sees the instruction it cannot compile.
// Both give the same bits for every finite half, subnormals included; infinities stay infinite.
#ifndef NB_HALF_GLSL
#define NB_HALF_GLSL

layout(constant_id = 64) const bool NB_SOFT_HALF = false;

// The f16 in the low 16 bits of h as a float: the exponent and mantissa moved into an f32 and
// scaled by 2^112 (exact for normal and subnormal halves), exponent 31 kept infinite or NaN.
float nb_half_soft(uint h)
{
    float f = uintBitsToFloat((h & 0x7FFFu) << 13) * 5.192296858534828e33; // 2^112
    if ((h & 0x7C00u) == 0x7C00u) f = uintBitsToFloat(0x7F800000u | ((h & 0x3FFu) << 13));
    return (h & 0x8000u) != 0u ? -f : f;
}

vec2 nb_unpack_half(uint w)
{
    if (NB_SOFT_HALF) return vec2(nb_half_soft(w & 0xFFFFu), nb_half_soft(w >> 16));
    return unpackHalf2x16(w);
}

#endif

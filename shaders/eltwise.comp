#version 450
// Elementwise ops over rows: o[o_off + r*o_stride + j] = f(a[a_off + r*a_stride + j],
// b[b_off + r*b_stride + j]) for j < n, row r = workgroup y. The op is a push constant (NB_ELT_*:
// GEGLU, GELU, MUL, ADD, SCALE, SCALE_DEV, SOFTCAP), a uniform branch. o may alias a or b.
// A fused [T][2F] gate_up buffer is a = b = that buffer, a_off = 0, b_off = F, strides 2F.
#extension GL_GOOGLE_include_directive : require
#include "shared.h"

layout(local_size_x_id = 0) in;

layout(std430, binding = 0) readonly buffer A { float a[]; };
layout(std430, binding = 1) readonly buffer B { float b[]; };
layout(std430, binding = 2) writeonly buffer O { float o[]; };
layout(std430, binding = 3) readonly buffer S { float s[]; };  // [1]
layout(push_constant) uniform Push { nb_push_eltwise p; };

// tanh with the argument clamped, so implementations built on exp() never see inf/inf
float safe_tanh(float v) { return tanh(clamp(v, -15.0, 15.0)); }

float gelu_tanh(float v)
{
    return 0.5 * v * (1.0 + safe_tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
}

void main()
{
    uint j = gl_GlobalInvocationID.x, r = gl_WorkGroupID.y;
    if (j >= p.n) return;
    float va = a[p.a_off + r * p.a_stride + j];
    float res;
    switch (p.op) {
    case NB_ELT_GEGLU: res = gelu_tanh(va) * b[p.b_off + r * p.b_stride + j]; break;
    case NB_ELT_GELU: res = gelu_tanh(va); break;
    case NB_ELT_MUL: res = va * b[p.b_off + r * p.b_stride + j]; break;
    case NB_ELT_ADD: res = va + b[p.b_off + r * p.b_stride + j]; break;
    case NB_ELT_SCALE: res = va * p.c; break;
    case NB_ELT_SCALE_DEV: res = va * s[0]; break;
    default: res = p.c * safe_tanh(va / p.c); break; // NB_ELT_SOFTCAP
    }
    o[p.o_off + r * p.o_stride + j] = res;
}

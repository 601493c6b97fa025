/* Push-constant structs shared by the C host and the GLSL shaders.
 *
 * Included from C (host and engine) and from GLSL (with GL_GOOGLE_include_directive). Use only
 * 32-bit scalar members (uint, int, float) so the std430 push-constant layout equals the C layout;
 * the C side checks every size with a static assert. One struct per shader family, named
 * nb_push_<shader>.
 */
#ifndef NB_SHARED_H
#define NB_SHARED_H

#if defined(VULKAN) && !defined(__STDC__) /* GLSL (glslang defines VULKAN) */
#define NB_U32 uint
#define NB_I32 int
#define NB_F32 float
#define NB_STRUCT(name) struct name
#define NB_STATIC_SIZE(name, bytes)
#else /* C */
#include <stdint.h>
#define NB_U32 uint32_t
#define NB_I32 int32_t
#define NB_F32 float
#define NB_STRUCT(name) struct name
#define NB_STATIC_SIZE(name, bytes) _Static_assert(sizeof(struct name) == (bytes), #name " size");
#endif

/* test_fill.comp: dst[i] = base + i * mul + SPEC_ADD, i < n */
NB_STRUCT(nb_push_test_fill) {
    NB_U32 n;
    NB_U32 base;
    NB_U32 mul;
    NB_U32 pad;
};
NB_STATIC_SIZE(nb_push_test_fill, 16)

/* bw.comp (host bandwidth probe): element i, i + stride, ... (per of them) below n */
NB_STRUCT(nb_push_bw) {
    NB_U32 n;      /* elements (uvec4, uint or u64vec2) in the buffers */
    NB_U32 stride; /* invocations in the dispatch */
    NB_U32 per;    /* elements per invocation */
    NB_U32 magic;  /* read mode: a value the data never XORs to */
};
NB_STATIC_SIZE(nb_push_bw, 16)

/* ---- "ops" helper: rmsnorm.comp, rope.comp, eltwise.comp, sample.comp, moe_router.comp ---- */

/* rmsnorm.comp flags */
#define NB_NORM_W 1u        /* multiply by w[n] */
#define NB_NORM_ADD 2u      /* y += result (else y = result) */
#define NB_NORM_SCALE 4u    /* then y *= s[0] (device scalar) */
#define NB_NORM_ROPE 8u     /* NeoX RoPE on the normalised row before storing */
#define NB_NORM_FACTORS 16u /* RoPE frequencies divided by factors[n_rot/2] */
#define NB_NORM_NEXT 32u    /* then z[t][n] = rmsnorm(y row) * w2 (one head, no RoPE) */
/* rmsnorm.comp: workgroup (h, t) normalises row x[x_off + t*x_stride + h*n .. +n) */
NB_STRUCT(nb_push_rmsnorm) {
    NB_U32 n;        /* row width */
    NB_U32 x_off;    /* elements */
    NB_U32 x_stride; /* elements between tokens */
    NB_U32 y_off;
    NB_U32 y_stride;
    NB_U32 flags;    /* NB_NORM_* */
    NB_F32 eps;
    NB_F32 mul;      /* extra constant factor */
    NB_U32 n_rot;    /* RoPE dims (even, <= n), 0 = none */
    NB_F32 th_hi;    /* base^(-2/n_rot) as a double-float hi + lo */
    NB_F32 th_lo;
    NB_U32 pad;
};
NB_STATIC_SIZE(nb_push_rmsnorm, 48)

/* rope.comp: in place on x[off + t*stride + h*hd + i], pairs (i, i + n_rot/2) */
NB_STRUCT(nb_push_rope) {
    NB_U32 n_heads;
    NB_U32 hd;
    NB_U32 off;
    NB_U32 stride;
    NB_U32 n_rot;
    NB_U32 flags;   /* NB_NORM_FACTORS */
    NB_F32 th_hi;
    NB_F32 th_lo;
};
NB_STATIC_SIZE(nb_push_rope, 32)

/* eltwise.comp ops: o[r][j] = f(a[r][j], b[r][j]) over rows r (dispatch y), columns j < n */
#define NB_ELT_GEGLU 0u   /* gelu_tanh(a) * b */
#define NB_ELT_GELU 1u    /* gelu_tanh(a) */
#define NB_ELT_MUL 2u     /* a * b */
#define NB_ELT_ADD 3u     /* a + b */
#define NB_ELT_SCALE 4u   /* a * c */
#define NB_ELT_SCALE_DEV 5u /* a * s[0] */
#define NB_ELT_SOFTCAP 6u /* c * tanh(a / c) */
NB_STRUCT(nb_push_eltwise) {
    NB_U32 op;
    NB_U32 n;
    NB_U32 a_off;
    NB_U32 a_stride;
    NB_U32 b_off;
    NB_U32 b_stride;
    NB_U32 o_off;
    NB_U32 o_stride;
    NB_F32 c;
    NB_U32 pad0, pad1, pad2;
};
NB_STATIC_SIZE(nb_push_eltwise, 48)

/* sample.comp: pass 1 (top k of strided subsets), pass 2 (merge, softmax, top-p, draw) */
NB_STRUCT(nb_push_sample) {
    NB_U32 n;        /* logits */
    NB_U32 k;        /* candidates, 1..64 (1 = argmax) */
    NB_U32 n_lists;  /* pass-1 invocations, each keeping the top k of a strided subset */
    NB_U32 flags;    /* pass 1: 1 = skip elements below the threshold from the threshold pass */
    NB_U32 seed;
    NB_U32 out_off;  /* element of out[] written */
    NB_F32 inv_temp; /* 1/temperature; 0 = greedy */
    NB_F32 top_p;    /* 1 = off */
};
NB_STATIC_SIZE(nb_push_sample, 32)

/* moe_router.comp: one workgroup per token; moe_combine: o[t] = sum_s w[t][s] * y[t][s] */
NB_STRUCT(nb_push_moe) {
    NB_U32 n;        /* router: experts E; combine: width H */
    NB_U32 k;        /* experts per token */
    NB_U32 flags;    /* router: 1 = multiply by per-expert scale */
    NB_U32 y_stride; /* combine: elements between y rows [T*k][y_stride] */
};
NB_STATIC_SIZE(nb_push_moe, 16)

/* matvec.comp (matvec and the MoE matvec_id variant), see engine/op_matmul.h. */
NB_STRUCT(nb_push_matvec) {
    NB_U32 K;          /* elements per weight row */
    NB_U32 nrows;      /* rows held by this piece */
    NB_U32 row0;       /* matvec: global index of the piece's first row (column of y) */
    NB_U32 ntok;       /* matvec: tokens in this dispatch (z slices of NTOK) */
    NB_U32 x_stride;   /* elements between consecutive x vectors */
    NB_U32 y_stride;   /* elements between consecutive y vectors */
    NB_U32 accumulate; /* 1: y += W x, 0: y = W x */
    NB_U32 dbase;      /* Q4_0/Q8_0: uint index of the scale plane in the piece */
    NB_U32 n_slots;    /* matvec_id: experts per token (ids is [tokens][n_slots]) */
    NB_U32 x_per_slot; /* matvec_id: 1: x is [tokens*n_slots][K], 0: x is [tokens][K] */
    NB_U32 m_rows;     /* matvec_id: rows per expert */
    NB_U32 e0;         /* matvec_id: experts [e0, e1) are held by this piece */
    NB_U32 e1;
    NB_U32 pair0;      /* matvec_id: first (token, slot) pair of this dispatch */
    NB_U32 tok0;       /* matvec: first token of this dispatch */
    NB_U32 wtile;      /* Q4_0/Q8_0: the weight's row tiles are 1 << wtile rows (quant.glsl) */
    NB_U32 xtex;       /* TEXEL: x starts at this texel of its buffer's view (its offset / 16) */
    NB_U32 pad0, pad1, pad2;
};
NB_STATIC_SIZE(nb_push_matvec, 80)

/* quant_act.comp: x f32 [ntok][x_stride] -> 8-bit blocks at uvec4 xq0 of xq (engine/op_int8.h). */
NB_STRUCT(nb_push_quant_act) {
    NB_U32 K;        /* elements per token, a multiple of 32 */
    NB_U32 x_stride; /* elements between tokens in x */
    NB_U32 xq0;      /* first uvec4 written */
    NB_U32 pad0;
};
NB_STATIC_SIZE(nb_push_quant_act, 16)

/* matvec_int8.comp: decode matvec on quant_act.comp's blocks (engine/op_int8.h). */
NB_STRUCT(nb_push_matvec_i8) {
    NB_U32 K;          /* elements per weight row */
    NB_U32 nrows;      /* rows held by this piece */
    NB_U32 row0;       /* global index of the piece's first row (column of y) */
    NB_U32 ntok;       /* tokens (z slices of NTOK) */
    NB_U32 y_stride;   /* elements between consecutive y vectors */
    NB_U32 accumulate; /* 1: y += W x, 0: y = W x */
    NB_U32 dbase;      /* uint index of the block plane in the piece */
    NB_U32 wtile;      /* the weight's row tiles are 1 << wtile rows (quant.glsl) */
    NB_U32 xq0;        /* uvec4 index of token 0's blocks in xq */
    NB_U32 n_slots;    /* MV_ID: slots per token */
    NB_U32 x_per_slot; /* MV_ID: 1: an x row (block row in xq) per pair, 0: per token */
    NB_U32 e0;         /* MV_ID: experts [e0, e1) are held by this piece */
    NB_U32 e1;
    NB_U32 pair0;      /* MV_ID: first (token, slot) pair of this dispatch */
    NB_U32 m_rows;     /* MV_ID: rows per expert */
    NB_U32 pad0;
};
NB_STATIC_SIZE(nb_push_matvec_i8, 64)

/* matmul.comp: prefill matrix product, see engine/op_matmul.h. */
NB_STRUCT(nb_push_matmul) {
    NB_U32 K;          /* elements per weight row */
    NB_U32 nrows;      /* rows held by this piece */
    NB_U32 row0;       /* global index of the piece's first row (column of y) */
    NB_U32 ntok;       /* tokens (rows of x and y) */
    NB_U32 x_stride;   /* elements between tokens in x */
    NB_U32 y_stride;   /* elements between tokens in y */
    NB_U32 accumulate; /* 1: y += W x, 0: y = W x */
    NB_U32 dbase;      /* Q4_0/Q8_0: uint index of the scale plane in the piece */
};
NB_STATIC_SIZE(nb_push_matmul, 32)

/* matmul.comp MM_ID: MoE prefill with tokens grouped by expert, see nb_op_matmul_id. */
NB_STRUCT(nb_push_matmul_id) {
    NB_U32 K;          /* elements per weight row */
    NB_U32 m_rows;     /* rows per expert */
    NB_U32 x_stride;   /* elements between x vectors */
    NB_U32 y_stride;   /* elements between y vectors */
    NB_U32 accumulate; /* 1: y += W x, 0: y = W x */
    NB_U32 dbase;      /* Q4_0/Q8_0: uint index of the scale plane in the piece */
    NB_U32 n_slots;    /* experts per token */
    NB_U32 x_per_slot; /* 1: x is [tokens*n_slots][K], 0: x is [tokens][K] */
    NB_U32 e0;         /* first expert of this piece (grid z = expert - e0) */
    NB_U32 n_exp;      /* experts of the whole tensor (length of the count array) */
    NB_U32 cap;        /* entries per expert list */
    NB_U32 pad0;
};
NB_STATIC_SIZE(nb_push_matmul_id, 48)

/* moe_group.comp: per-expert lists of (token, slot) pairs, see nb_op_matmul_id. */
NB_STRUCT(nb_push_moe_group) {
    NB_U32 n_pairs; /* tokens * slots (entries of ids) */
    NB_U32 n_exp;   /* experts (one workgroup each) */
    NB_U32 cap;     /* entries per expert list */
    NB_U32 pad0;
};
NB_STATIC_SIZE(nb_push_moe_group, 16)

/* embed.comp: embedding lookup, see engine/op_matmul.h. */
NB_STRUCT(nb_push_embed) {
    NB_U32 K;          /* elements per row */
    NB_U32 nrows;      /* rows held by this piece */
    NB_U32 row0;       /* global index of the piece's first row */
    NB_U32 total_rows; /* rows of the whole table (ids past it give zeros) */
    NB_U32 out_stride; /* elements between tokens in out */
    NB_U32 dbase;      /* Q4_0/Q8_0: uint index of the scale plane in the piece */
    NB_U32 tok0;       /* first token of this dispatch */
    NB_F32 scale;
    NB_U32 wtile;      /* Q4_0/Q8_0: the table's row tiles are 1 << wtile rows (quant.glsl) */
    NB_U32 pad0, pad1, pad2;
};
NB_STATIC_SIZE(nb_push_embed, 48)

/* attn.comp: attention over the KV cache, see engine/op_attn.h. */
NB_STRUCT(nb_push_attn) {
    NB_U32 n_tokens;  /* query tokens T */
    NB_U32 n_head;    /* query heads */
    NB_U32 group;     /* query heads per KV head (GQA) */
    NB_U32 head_dim;  /* multiple of 32, <= 512 */
    NB_U32 n_slots;   /* cache positions per KV head (ring size on sliding layers) */
    NB_U32 window;    /* sliding window in positions; 0: full causal attention */
    NB_F32 scale;     /* applied to q (1.0 for Gemma 4) */
    NB_U32 n_split;   /* key chunks (split-K); 1: write the normalised output directly */
};
NB_STATIC_SIZE(nb_push_attn, 32)

/* attn_combine.comp: merges the split-K partial results of attn.comp. */
NB_STRUCT(nb_push_attn_combine) {
    NB_U32 n_rows;    /* T * n_head */
    NB_U32 head_dim;
    NB_U32 n_split;
    NB_U32 pad;
};
NB_STATIC_SIZE(nb_push_attn_combine, 16)

/* kv_store.comp: writes K and V of a batch into the cache. */
NB_STRUCT(nb_push_kv_store) {
    NB_U32 n_tokens;
    NB_U32 width;     /* n_kv_head * head_dim */
    NB_U32 head_dim;
    NB_U32 n_slots;   /* positions per KV head in the cache */
    NB_U32 ring;      /* 1: slot = pos % n_slots (sliding layer); 0: slot = pos, pos < n_slots */
    NB_U32 pad0, pad1, pad2;
};
NB_STATIC_SIZE(nb_push_kv_store, 32)

#endif

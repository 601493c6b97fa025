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

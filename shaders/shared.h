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

#endif

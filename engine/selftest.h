/* selftest: building a model's op pipelines with fallbacks, and the numeric self-test at load.
 *
 * The op pipelines come in three families (matrix products; attention; norm, rope, elementwise
 * and token choice), each built by its op module (op_matmul.c, op_attn.c, op_misc.c) with the
 * device's optional features: subgroup operations, texel buffers, required subgroup sizes,
 * unpackHalf2x16, fp16 and int8 arithmetic. Its plain variant is the same family built with all
 * of them off (NB_SELFTEST_PLAIN, as NIBBLE_DISABLE=subgroup,texel,sgsize,halfcvt,fp16,int8
 * would).
 *
 * nb_selftest_build builds the families; one the driver refuses to build is built again in its
 * plain variant instead of failing the load. Then every pipeline the model will use runs once on
 * a tiny input (matrices of 64 x 256 in each weight type of the model, for every token count the
 * model dispatches; embedding rows; RMSNorm wide and narrow; RoPE; GEGLU; argmax; KV store and
 * attention at each head size of the model, decode and prefill) and is compared with a CPU
 * reference. A family that differs is rebuilt in its plain variant and checked again; a plain
 * variant that still differs fails the load (the driver computes it wrong). Once one family
 * needed its plain variant, every pipeline built later (e.g. f32 attention at context creation)
 * is plain too. Either is said in one line on stderr, at every load it applies to.
 *
 * The verdicts are cached per device, driver version, nibble build (a checksum of the shaders),
 * NIBBLE_DISABLE/NIBBLE_FAULT and the model's pipeline set (weight types, head sizes), beside
 * the pipeline cache (vkx_verdict_*): a second start runs no check. NIBBLE_SELFTEST=0 skips the
 * check (builds with fallback only; for drivers whose submissions do nothing, e.g. Mesa's no-op
 * DRM shims). Not covered yet: the MoE pipelines (matvec_id, matmul_id, moe_group, router,
 * combine), split-K attention's combine pass, sampling beyond argmax, f32 KV caches.
 */
#ifndef NB_SELFTEST_H
#define NB_SELFTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "vkx.h"

#define NB_SELFTEST_PLAIN                                                                         \
    (VKX_FEAT_SUBGROUP | VKX_FEAT_TEXEL | VKX_FEAT_SGSIZE | VKX_FEAT_HALFCVT | VKX_FEAT_FP16 |   \
     VKX_FEAT_INT8)

enum nb_selftest_family { NB_ST_MATRIX, NB_ST_ATTN, NB_ST_MISC, NB_ST_NFAMILY };

struct nb_selftest {
    bool off;          /* NIBBLE_SELFTEST=0 */
    bool ran;          /* the numeric check ran at this load (else cached or off) */
    unsigned plain;    /* bit f: family f uses its plain variant */
    uint32_t checked;  /* dispatches compared at this load */
    double ms;         /* time of the check and of any rebuild after it, ms */
    char note[512];    /* what fell back and why ("" when nothing did) */
};

struct nb_gpu_model;

/* Builds g->mm (for the NB_MM_TYPE_BIT mask `types`), g->at and g->mi on g->vk, then the
 * self-test (g->st). 0, or -1 with one line in err (a plain variant refused or wrong, a bad
 * NIBBLE_SELFTEST or NIBBLE_FAULT, out of memory); on -1 the families built so far stay for
 * nb_gpu_model_free. */
int nb_selftest_build(struct nb_gpu_model *g, uint32_t types, char *err, size_t errlen);

/* The NB_MM_TYPE_BIT mask of the weight types the matrix pipelines are built for (plus
 * NB_MM_EXPERTS for a MoE model): every matrix but ple_host (read on the host, or NULL). */
struct nb_model;
struct gguf_tensor;
uint32_t nb_selftest_types(const struct nb_model *m, const struct gguf_tensor *ple_host);

/* nibble info -m: the cached verdicts for model m on the default device ("not run yet" when
 * none). Prints one "self-test ..." line; 0, or -1 when no Vulkan device could be opened
 * (printed as such). */
int nb_selftest_info(const struct nb_model *m, FILE *out);

#endif

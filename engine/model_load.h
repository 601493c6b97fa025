/* model_load: what the target's loader (model.c) and the MTP assistant's (mtp_model.c) share:
 * reading a GGUF's architecture keys ("ARCH.suffix") and checking its tensors, with one-line
 * errors, the first error kept. Not part of the engine's API. */
#ifndef NB_MODEL_LOAD_H
#define NB_MODEL_LOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf.h"

/* Loading state: the file, the architecture prefix of the keys and the first error. */
struct nb_loader {
    const struct gguf *g;
    const char *arch; /* key prefix, e.g. "gemma4" */
    char *err;
    size_t errlen;
    bool failed;
};

/* Records a formatted one-line error unless one is recorded already; returns -1. */
int nb_loader_fail(struct nb_loader *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reads ARCH.suffix as u32. Returns 1 if present, 0 if absent (then *out keeps its default when
 * not required), -1 on error (recorded in L). */
int nb_key_u32(struct nb_loader *L, const char *suffix, uint32_t *out, bool required);
/* The same for a finite f32. */
int nb_key_f32(struct nb_loader *L, const char *suffix, float *out, bool required);
/* A per-layer value that is either a scalar (same for all n layers) or an array of n entries
 * (integers or bools), into out[n]. Same return convention as nb_key_u32. */
int nb_key_layers_u32(struct nb_loader *L, const char *suffix, uint32_t n, uint32_t *out,
                      bool required);

/* Finds a tensor and checks its type class (NB_TVEC: a norm or scale, f32/f16/bf16; NB_TMAT: any
 * weight type nibble reads) and exact shape (nd dims e0..e2, the rest 1). Absent: NULL, an error
 * only when required. NULL without a look once L has failed. */
enum nb_tclass { NB_TVEC, NB_TMAT };
const struct gguf_tensor *nb_loader_tensor(struct nb_loader *L, const char *name,
                                           enum nb_tclass cls, bool required, uint32_t nd,
                                           uint64_t e0, uint64_t e1, uint64_t e2);
/* The same for layer l's "blk.L.suffix". */
const struct gguf_tensor *nb_loader_blk(struct nb_loader *L, uint32_t l, const char *suffix,
                                        enum nb_tclass cls, bool required, uint32_t nd, uint64_t e0,
                                        uint64_t e1, uint64_t e2);
/* token_embd.weight, {H, n_vocab}: *n_vocab from the file (1..INT32_MAX), then checked as above. */
const struct gguf_tensor *nb_loader_token_embd(struct nb_loader *L, uint64_t H, uint32_t *n_vocab);

#endif

/* gguf_writer: a tiny GGUF v3 builder for tests, the fuzzer's seed corpus and broken-file cases.
 *
 * Usage:
 *     struct gw *w = gw_create();
 *     gw_kv_str(w, "general.architecture", "gemma4");
 *     gw_kv_u32(w, "gemma4.block_count", 2);
 *     uint64_t ne[2] = {256, 1024};             // ne[0] = the contiguous (row) dimension
 *     gw_tensor_f32(w, "token_embd.weight", GGML_Q4_0, 2, ne, values);  // quantizes rows
 *     void *bytes = gw_serialize(w, &size);     // or gw_write_file(w, path)
 *     gw_destroy(w);
 *
 * Valid by default: keys and tensors are written in the order added, tensor data placed at the
 * next multiple of the alignment (32 unless gw_set_alignment). To build broken files the raw
 * calls write whatever they are given (n_dims 0 or 5, unknown type ids, huge ne, any value
 * bytes), and gw_tensor_offset forces a tensor's offset field. Nothing here checks its input
 * beyond what it needs to not crash itself. Errors (out of memory) make gw_serialize return NULL.
 */
#ifndef NB_GGUF_WRITER_H
#define NB_GGUF_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf.h"

struct gw;

struct gw *gw_create(void);
void gw_destroy(struct gw *w);

/* Header version field (default 3). */
void gw_set_version(struct gw *w, uint32_t version);
/* Alignment used to lay out the data section (default 32). Does NOT write general.alignment:
 * add that key yourself (gw_kv_u32) so broken values can be tested. */
void gw_set_alignment(struct gw *w, uint32_t alignment);

/* Metadata, one call per key. */
void gw_kv_u8(struct gw *w, const char *key, uint8_t v);
void gw_kv_i8(struct gw *w, const char *key, int8_t v);
void gw_kv_u16(struct gw *w, const char *key, uint16_t v);
void gw_kv_i16(struct gw *w, const char *key, int16_t v);
void gw_kv_u32(struct gw *w, const char *key, uint32_t v);
void gw_kv_i32(struct gw *w, const char *key, int32_t v);
void gw_kv_u64(struct gw *w, const char *key, uint64_t v);
void gw_kv_i64(struct gw *w, const char *key, int64_t v);
void gw_kv_f32(struct gw *w, const char *key, float v);
void gw_kv_f64(struct gw *w, const char *key, double v);
void gw_kv_bool(struct gw *w, const char *key, bool v);
void gw_kv_str(struct gw *w, const char *key, const char *v);
/* Array of n scalars of type `elem` packed little-endian at data (e.g. int32_t[] for GGUF_I32,
 * uint8_t 0/1 for GGUF_BOOL). */
void gw_kv_arr(struct gw *w, const char *key, enum gguf_vtype elem, const void *data, uint64_t n);
void gw_kv_arr_str(struct gw *w, const char *key, const char *const *strs, uint64_t n);
/* Raw: key, then the u32 `type` field, then `n` value bytes exactly as given. */
void gw_kv_raw(struct gw *w, const char *key, uint32_t type, const void *bytes, size_t n);

/* A tensor of n_dims dimensions ne[0..n_dims-1] with data already in the type's format
 * (ggml_row_size(type, ne[0]) * ne[1] * ... bytes; NULL = zeros). Returns the tensor's index. */
int gw_tensor(struct gw *w, const char *name, enum ggml_type type, uint32_t n_dims,
              const uint64_t *ne, const void *data);
/* Same from f32 values, converted with nb_quant_row (F32, F16, BF16, Q4_0, Q8_0). */
int gw_tensor_f32(struct gw *w, const char *name, enum ggml_type type, uint32_t n_dims,
                  const uint64_t *ne, const float *values);
/* Raw tensor info: any n_dims (0..8 entries of ne written), any type id, `nbytes` bytes of data
 * (may be 0 or anything; NULL data = zeros). */
int gw_tensor_raw(struct gw *w, const char *name, uint32_t type, uint32_t n_dims,
                  const uint64_t *ne, const void *data, uint64_t nbytes);
/* Forces tensor i's offset field (relative to the data section) instead of the computed one;
 * its data is then not written. */
void gw_tensor_offset(struct gw *w, int i, uint64_t rel_offset);

/* The whole file in malloc'd memory (caller frees); NULL on error. */
void *gw_serialize(struct gw *w, size_t *size);
/* Writes the file; 0 or -1. */
int gw_write_file(struct gw *w, const char *path);

#endif

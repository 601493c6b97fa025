/* gguf: a bounds-checked reader for GGUF v2/v3 files over a memory-mapped file.
 *
 * Every length, count, offset, dimension and type is checked against the file. On any
 * inconsistency gguf_open returns NULL and writes one line into `err` naming the byte offset and
 * what was wrong. It never aborts, never reads past the file and never allocates an amount taken
 * from the file without checking it against the file size first.
 *
 * Ownership: a struct gguf owns its mapping; every pointer it hands out (keys, strings, array
 * data, tensor data) lives until gguf_close. Not thread-safe for close; reads are.
 */
#ifndef NB_GGUF_H
#define NB_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* GGUF metadata value types (file format). */
enum gguf_vtype {
    GGUF_U8 = 0, GGUF_I8 = 1, GGUF_U16 = 2, GGUF_I16 = 3, GGUF_U32 = 4, GGUF_I32 = 5,
    GGUF_F32 = 6, GGUF_BOOL = 7, GGUF_STRING = 8, GGUF_ARRAY = 9, GGUF_U64 = 10, GGUF_I64 = 11,
    GGUF_F64 = 12,
    GGUF_VTYPE_COUNT
};

/* ggml tensor types (ids from ggml.h). Only the ones nibble reads are listed by name. */
enum ggml_type {
    GGML_F32 = 0, GGML_F16 = 1, GGML_Q4_0 = 2, GGML_Q4_1 = 3, GGML_Q5_0 = 6, GGML_Q5_1 = 7,
    GGML_Q8_0 = 8, GGML_Q2_K = 10, GGML_Q3_K = 11, GGML_Q4_K = 12, GGML_Q5_K = 13,
    GGML_Q6_K = 14, GGML_IQ4_NL = 20, GGML_IQ4_XS = 23, GGML_BF16 = 30,
    GGML_TYPE_MAX = 64
};

/* A string inside the file: not NUL-terminated. */
struct gguf_str {
    const char *p;
    uint64_t n;
};

struct gguf_kv {
    struct gguf_str key;
    enum gguf_vtype type;
    /* scalars: the value; strings: str; arrays: elem type, count and a pointer to the packed
     * elements (for string arrays, `strs` holds the n strings). */
    union {
        uint64_t u; /* U8..U64, BOOL (0/1) */
        int64_t i;  /* I8..I64 */
        double f;   /* F32, F64 */
        struct gguf_str str;
    } v;
    enum gguf_vtype arr_type;
    uint64_t arr_n;
    const void *arr_data;      /* packed little-endian elements (non-string arrays) */
    const struct gguf_str *strs; /* string arrays */
};

#define GGUF_MAX_DIMS 4
struct gguf_tensor {
    struct gguf_str name;
    uint32_t n_dims;
    uint64_t ne[GGUF_MAX_DIMS]; /* ne[0] is the contiguous (input) dimension; unused dims = 1 */
    enum ggml_type type;
    uint64_t offset;            /* from the start of the file */
    uint64_t nbytes;
    const uint8_t *data;        /* inside the mapping */
};

struct gguf {
    uint32_t version;
    uint64_t n_kv, n_tensors;
    struct gguf_kv *kv;
    struct gguf_tensor *tensors;
    uint64_t alignment;
    uint64_t data_offset;       /* start of the tensor data section */
    const uint8_t *base;        /* the whole file */
    uint64_t size;
    void *map_;                 /* private: the platform mapping (NULL for gguf_open_memory) */
};

/* Opens and validates a file. NULL on error with a one-line message in err: "PATH: reason" when
 * the file cannot be mapped, else "gguf: offset N: what is wrong" (without the path: callers add
 * it). Tensors of every known ggml type are accepted here; which ones a model may use is the
 * model loader's decision. */
struct gguf *gguf_open(const char *path, char *err, size_t errlen);
/* Same over a caller-owned buffer (must outlive the struct gguf). Used by the fuzzer. */
struct gguf *gguf_open_memory(const void *data, size_t size, char *err, size_t errlen);
void gguf_close(struct gguf *g);

/* Lookup; NULL when absent. */
const struct gguf_kv *gguf_find(const struct gguf *g, const char *key);
const struct gguf_tensor *gguf_find_tensor(const struct gguf *g, const char *name);

/* Typed getters with range-checked conversion between integer types. Return 0 on success, -1 if
 * the key is absent or of an incompatible type (and then leave *out untouched). */
int gguf_get_u32(const struct gguf *g, const char *key, uint32_t *out);
int gguf_get_u64(const struct gguf *g, const char *key, uint64_t *out);
int gguf_get_f32(const struct gguf *g, const char *key, float *out);
int gguf_get_bool(const struct gguf *g, const char *key, bool *out);
/* Copies a string value into buf (NUL-terminated, truncated to n-1). */
int gguf_get_str(const struct gguf *g, const char *key, char *buf, size_t n);
/* Element i of an integer/bool array as u32 (range-checked). */
int gguf_get_arr_u32(const struct gguf_kv *kv, uint64_t i, uint32_t *out);
int gguf_get_arr_f32(const struct gguf_kv *kv, uint64_t i, float *out);

bool gguf_str_eq(struct gguf_str s, const char *c);
const char *gguf_vtype_name(enum gguf_vtype t);

/* ggml type facts: block size in elements and bytes; name ("q4_0"). 0/NULL for unknown types. */
uint32_t ggml_blck_size(enum ggml_type t);
uint32_t ggml_type_size(enum ggml_type t);
const char *ggml_type_name(enum ggml_type t);
/* Bytes of a row of ne0 elements (ne0 must be a multiple of the block size). */
uint64_t ggml_row_size(enum ggml_type t, uint64_t ne0);

#endif

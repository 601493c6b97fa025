/* Helpers shared by the cmocka tests. */
#ifndef NB_TESTUTIL_H
#define NB_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "gguf.h"
#include "vkx.h"

/* Path of a test data file: tests/data/NAME, else ../shared/golden/NAME; NULL if neither exists.
 * The string is static storage (valid until the next call). */
const char *nb_test_file(const char *name);
/* Reads a whole file into malloc'd memory; NULL if missing. */
void *nb_test_read(const char *path, size_t *size);

/* A Vulkan context for GPU tests, with validation on. Prints the device line once.
 * Returns NULL (and the test should skip()) when no Vulkan device exists. */
struct vkx_ctx *nb_test_vk(void);
/* Fails the current test if the validation layer reported anything since the last call. */
void nb_test_check_validation(void);
void nb_test_vk_done(void);
/* A second context on the same device with NIBBLE_DISABLE=fp16,subgroup,int8 and validation on,
 * for the forced-fallback runs of the op tests. 0, or -1 after printing why. */
int nb_test_vk_fallback(struct vkx_ctx *own);

/* Random numbers for test inputs (deterministic per seed). */
void nb_test_seed(uint64_t s);
float nb_test_randf(void); /* uniform in [-1, 1) */
uint32_t nb_test_randu(void);

/* Random weights of a GGUF type (F32, F16, Q4_0, Q8_0), rows x K (K a multiple of 32 for the
 * quantized types): the GGUF bytes in *raw and their exact dequantized values in *ref (malloc'd). */
void nb_test_weights(enum ggml_type type, uint64_t K, uint64_t rows, void **raw, float **ref);

/* Compares arrays with tolerance abs + rel*|ref|; prints the first mismatches. Returns the
 * number of mismatches. */
size_t nb_test_compare(const char *what, const float *got, const float *ref, size_t n, float abs_tol,
                       float rel_tol);

#endif

/* Helpers shared by the cmocka tests. */
#ifndef NB_TESTUTIL_H
#define NB_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
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
/* A second context on the same device with NIBBLE_DISABLE=fp16,subgroup,int8,texel,halfcvt and
 * validation on, for the forced-fallback runs of the op tests. 0, or -1 after printing why. */
int nb_test_vk_fallback(struct vkx_ctx *own);

/* An op family's create and destroy for nb_test_fixture: thin wrappers in the test over
 * nb_op_<family>_create/_destroy, op being that family's struct. */
typedef int (*nb_test_op_create_fn)(void *op, struct vkx_ctx *vk, char *err, size_t errlen);
typedef void (*nb_test_op_destroy_fn)(void *op, struct vkx_ctx *vk);

/* The group state of an op test: the context (the shared nb_test_vk(), or a forced-fallback
 * context of its own) and one op family object created on it. A test embeds it as the first
 * member of its own struct next to the op, so *state points at both. */
struct nb_test_fixture {
    struct vkx_ctx *vk; /* the group's context: nb_test_vk() or &own */
    struct vkx_ctx own; /* the fallback context, when have_own */
    bool have_own;
    void *op; /* the op object (the test's storage), NULL until created */
    nb_test_op_destroy_fn destroy;
};

/* cmocka group setup: the context (fallback: nb_test_vk_fallback) and create(op, vk) into *f,
 * then *state = f. No Vulkan device: *state = NULL and 0 (the tests skip()). -1 after printing
 * why when a context or the op cannot be made. */
int nb_test_fixture_setup(void **state, struct nb_test_fixture *f, bool fallback, void *op,
                          nb_test_op_create_fn create, nb_test_op_destroy_fn destroy);
/* cmocka group teardown: destroys the op and the own context, then nb_test_check_validation(). */
int nb_test_fixture_teardown(void **state);

/* Random numbers for test inputs (deterministic per seed). */
void nb_test_seed(uint64_t s);
float nb_test_randf(void); /* uniform in [-1, 1) */
uint32_t nb_test_randu(void);

/* Index of the largest of x[0..n). */
int nb_test_argmax(const float *x, size_t n);
/* Top-1 agreement and mean / max absolute difference of two rows x n logit arrays (a NaN counts
 * as 1e30 off). */
void nb_test_logits_compare(const float *a, const float *b, size_t rows, size_t n, double *top1,
                            double *mean, double *max);
/* Random weights of a GGUF type (any type nibble reads), rows x K (K whole blocks of the type):
 * the GGUF bytes in *raw and their exact dequantized values in *ref (malloc'd). */
void nb_test_weights(enum ggml_type type, uint64_t K, uint64_t rows, void **raw, float **ref);
/* A row length near n32 units of 32 for a quantized type: whole blocks (256 for K-quants), at
 * least one; f: the float types' (F32, F16, BF16) own length. */
uint32_t nb_test_klen(enum ggml_type t, uint32_t n32, uint32_t f);
/* The CPU product in double: ref[t][m] = y0[t][m] (0 when y0 is NULL) + sum_k w[m][k] x[t][k]
 * and mag[t][m] = sum_k |w[m][k] x[t][k]| (mag may be NULL), for w [M][K], x [ntok][K]. */
void nb_test_mul_ref(const float *w, const float *x, const float *y0, uint32_t K, uint32_t M,
                     uint32_t ntok, double *ref, double *mag);

/* A device-local buffer of `bytes`, filled from init when not NULL; fails the test otherwise. */
void nb_test_dev_buf(struct vkx_ctx *vk, struct vkx_buffer *b, size_t bytes, const void *init);

/* Compares arrays with tolerance abs + rel*|ref|; prints the first mismatches. Returns the
 * number of mismatches. */
size_t nb_test_compare(const char *what, const float *got, const float *ref, size_t n, float abs_tol,
                       float rel_tol);

/* Runs the shell command cmd (the CLI as "$NB", which is NB_CLI) with stdout into out and stderr
 * into err, cap bytes each (NUL-terminated, cut at cap - 1; a redirection inside cmd wins),
 * through the files NB_TEST_TMP/TAG.out and TAG.err; returns the exit status. */
int nb_test_sh(const char *tag, const char *cmd, char *out, char *err, size_t cap);
/* nb_test_sh of `"$NB" args`. */
int nb_test_cli(const char *tag, const char *args, char *out, char *err, size_t cap);

struct nibble_context;
struct nibble_spec;
struct nibble_sampler;
/* Generates after ids[0..n_ids) (from an empty context) until c's context is full, sampling with
 * sp: plain decoding (s NULL) or speculative steps of s. Writes the tokens to out and returns how
 * many (n_ctx - n_ids + 1: the last one is not evaluated); fails the test on an error. */
int nb_test_generate(struct nibble_context *c, struct nibble_spec *s,
                     const struct nibble_sampler *sp, const int32_t *ids, int n_ids, int32_t *out);

#endif

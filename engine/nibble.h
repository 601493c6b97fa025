/* nibble.h: the public C API of the nibble inference engine.
 *
 * Typical use:
 *
 *     char err[256];
 *     struct nibble_model *m = nibble_model_load("model.gguf", NULL, err, sizeof err);
 *     struct nibble_context *c = nibble_context_create(m, NULL, err, sizeof err);
 *     int32_t ids[512];
 *     int n = nibble_tokenize(m, "Hello", ids, 512, true);
 *     nibble_eval(c, ids, n, false, err, sizeof err);          // prefill, logits of the last row
 *     struct nibble_sampler sp = nibble_sampler_default_params();
 *     for (;;) {
 *         int32_t t = nibble_sample(c, &sp);                   // on the device
 *         if (nibble_token_is_eog(m, t)) break;
 *         nibble_eval(c, &t, 1, false, err, sizeof err);       // one decode step (replayed)
 *     }
 *     nibble_context_destroy(c);
 *     nibble_model_free(m);
 *
 * Ownership: every object is created and destroyed by the pair of functions named for it; a
 * context must be destroyed before its model. Pointers returned by getters (logits, strings)
 * stay valid until the next call on the same object.
 *
 * Threading: a model and its contexts share one Vulkan device and queue; use a model and all of
 * its contexts from one thread at a time. Separate models may live in separate threads.
 *
 * Errors: functions that can fail take `err`/`errlen` and return NULL or a negative value with a
 * one-line message there (bad file, unsupported model, no Vulkan device, out of device memory,
 * prompt longer than the context). `err` may be NULL (errlen is then ignored): the message is
 * dropped. Files that are not regular (FIFO, device, directory) are refused without blocking.
 *
 * Device failures: a Vulkan failure an app can meet (VK_ERROR_DEVICE_LOST, out of device or
 * host memory) anywhere in nibble_model_load (instance, device, pipelines, buffers, the weight
 * upload's staging, submissions and waits) makes it return NULL with a message naming the call
 * or tensor and the VkResult, having freed what it made: the app may load again. One while
 * nibble_context_create makes its buffers, command buffers, fences and pools, or while
 * nibble_eval or nibble_sample record, submit or wait, makes that call return NULL or -1 (with a
 * message naming the VkResult; nibble_sample has none) and the context unusable: every later
 * eval and sample on it returns -1. Destroy it; after a device loss destroy the model too and
 * load it again. Destroying after a device loss is safe. Where the device merely lacks room for
 * something optional (a texel view, a faster pipeline variant), nibble goes on without it.
 * What still aborts (with file, line and a message), all programming errors inside the engine:
 * a recording with more dispatches than it was sized for, a binding or push-constant size that
 * does not match its pipeline, a copy or upload outside its buffer, an op given weights in a
 * layout it does not read or a weight type whose pipelines were not built. (A KV cache that got
 * no texel views on a device that reads them has its storage-buffer attention pipelines built by
 * nibble_context_create, which fails cleanly when it cannot.) Passing NULL for a model or
 * context is a programming error.
 */
#ifndef NIBBLE_H
#define NIBBLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct nibble_model;
struct nibble_context;

struct nibble_model_params {
    int device_index;    /* -1: NIBBLE_DEVICE or the default choice */
    const char *disable; /* NULL: NIBBLE_DISABLE; else e.g. "fp16,subgroup,int8" */
    bool validation;     /* Khronos validation layer (also NIBBLE_VALIDATE=1) */
};
/* Defaults: device_index -1, disable NULL, validation false. */
struct nibble_model_params nibble_model_default_params(void);

/* Loads a GGUF model onto the Vulkan device. NULL on error (message in err): also when
 * NIBBLE_DEVICE_MEMORY_MB is set to anything but a number of MiB above 0. */
struct nibble_model *nibble_model_load(const char *path, const struct nibble_model_params *p,
                                       char *err, size_t errlen);
void nibble_model_free(struct nibble_model *m);

int nibble_n_vocab(const struct nibble_model *m);
int nibble_n_ctx_train(const struct nibble_model *m);
/* One line naming the Vulkan device and its capabilities. */
const char *nibble_device_line(const struct nibble_model *m);
/* Bytes of device memory held now and at most since load. */
uint64_t nibble_device_bytes(const struct nibble_model *m, uint64_t *peak);

/* Tokenizer: returns the number of ids (it may exceed max; then only max are written), or -1.
 * add_bos adds BOS when the model asks for it; special tokens in text are always parsed. */
int nibble_tokenize(const struct nibble_model *m, const char *text, int32_t *ids, int max,
                    bool add_bos);
/* The text of one token (byte-fallback tokens give their byte), like snprintf: writes at most
 * n - 1 bytes and a terminating NUL when n > 0 (buf may be NULL when n is 0) and returns the
 * piece's full length without the NUL, so a return >= n means it was truncated. -1 for an id
 * outside the vocabulary (buf then holds ""). A piece may hold a NUL byte (token <0x00>): use
 * the length, not strlen. */
int nibble_token_to_piece(const struct nibble_model *m, int32_t id, char *buf, int n);
bool nibble_token_is_eog(const struct nibble_model *m, int32_t id);
int32_t nibble_token_bos(const struct nibble_model *m);

enum nibble_kv_type {
    NIBBLE_KV_AUTO = 0, /* f32 for models with F32 K/V projections, else f16 */
    NIBBLE_KV_F16 = 1,
    NIBBLE_KV_F32 = 2,
};

struct nibble_context_params {
    uint32_t n_ctx;   /* context length in tokens; 0: min(model's, 4096); more than the model's
                         trained context (nibble_n_ctx_train) is refused */
    uint32_t n_batch; /* prefill chunk; 0: 512 */
    enum nibble_kv_type kv_type; /* KV cache element type */
};
struct nibble_context_params nibble_context_default_params(void);

struct nibble_context *nibble_context_create(struct nibble_model *m,
                                             const struct nibble_context_params *p, char *err,
                                             size_t errlen);
void nibble_context_destroy(struct nibble_context *c);
uint32_t nibble_n_ctx(const struct nibble_context *c);
uint32_t nibble_n_past(const struct nibble_context *c); /* tokens in the KV cache */
uint32_t nibble_n_batch(const struct nibble_context *c); /* most tokens of one prefill chunk */
struct nibble_model *nibble_context_model(const struct nibble_context *c);

/* Appends n tokens at positions n_past.. and computes logits: of every row when all_logits,
 * else of the last row only. n == 1 replays the recorded decode step, and 2..8 tokens with
 * all_logits (a speculative draft's verification) a recording of that size; larger n runs
 * prefill in chunks of n_batch. Returns 0, or -1 (e.g. "prompt of 5000 tokens exceeds the
 * context of 4096"). */
int nibble_eval(struct nibble_context *c, const int32_t *ids, int n, bool all_logits, char *err,
                size_t errlen);
/* Logits (n_vocab floats) of row i of the last eval: i in [0, n) with all_logits, and i = -1 for
 * the last row either way. NULL when there is no such row: any other i, nothing evaluated since
 * create or reset, or a device failure. */
const float *nibble_logits(struct nibble_context *c, int i);

/* Token choice: top_k, then top_p over those, then a draw from softmax(logits / temp). Greedy
 * (argmax; temp 0 or top_k 1) and top_k 2..64 run on the device; top_k 0 or above 64 on the host
 * over the whole vocabulary (O(n_vocab) per token: slower on a large vocabulary). Order: larger
 * logit first, ties to the lower id, NaN as -inf. */
struct nibble_sampler {
    float temp;    /* [0, 1e6]; 0: greedy (argmax) */
    int top_k;     /* >= 0; 0 (or n_vocab and above): off, the whole vocabulary */
    float top_p;   /* [0, 1]; 1: off; 0: only the most likely of the top_k */
    uint64_t seed; /* all 64 bits count: the draw's 32-bit key is the low half XOR a hash of the
                      high half, so seeds below 2^32 are the key itself; two random seeds share
                      a key with chance 2^-32 */
};
/* Defaults: temp 0.8, top_k 40, top_p 0.95, seed 42. */
struct nibble_sampler nibble_sampler_default_params(void);
/* 0 when every field is in range, else -1 with a message (NaN is out of every range). */
int nibble_sampler_check(const struct nibble_sampler *s, char *err, size_t errlen);
/* Samples the next token from the last row's logits. The n-th draw of a context (counted from
 * its creation) uses the same uniform number for a given seed, so a seeded run repeats. -1
 * before any eval, for a sampler nibble_sampler_check refuses, or after a device failure. */
int32_t nibble_sample(struct nibble_context *c, const struct nibble_sampler *s);
/* Sets the draw counter: the next nibble_sample is draw n. A context reused for independent
 * requests (a server's slot) sets 0 at the start of each, so a seeded request repeats whatever
 * the context ran before. */
void nibble_set_draws(struct nibble_context *c, uint32_t n);
/* Empties the KV cache (n_past = 0). */
void nibble_reset(struct nibble_context *c);

/* Rolls the KV cache back to its first n_keep tokens: n_past becomes n_keep and the next eval
 * writes from position n_keep on (e.g. past the rejected tokens of a speculative draft, or to
 * the common prefix of a cached prompt). The logits row of position n_keep - 1 stays when the
 * last eval computed it (nibble_logits(c, -1) and nibble_sample use it; rows past it are gone),
 * else there are no logits until the next eval. KV-shared layers read their source's cache and
 * need nothing more; full-attention layers keep every position.
 * Sliding-window layers keep only the last window + n_batch positions, in a ring, so a position
 * the window of the query at n_keep needs (n_keep - window + 1 .. n_keep - 1) may have been
 * overwritten. Rolling back at most the tokens of the last eval, when that eval was one chunk
 * (at most n_batch tokens), is always safe; so is any rollback when n_ctx <= window + n_batch.
 * Beyond that it succeeds while the ring still holds those positions; else -1 with a message
 * and nothing changes (evaluate again from an earlier point, or reset). n_keep > n_past: -1. */
int nibble_truncate(struct nibble_context *c, uint32_t n_keep, char *err, size_t errlen);
/* The ids at positions 0 .. nibble_n_past(c) - 1 (what the cache holds); the array lives as long
 * as the context, its contents change with eval, truncate and reset. */
const int32_t *nibble_tokens(const struct nibble_context *c);

/* ---- speculative decoding -------------------------------------------------------------------
 * A drafter guesses the next k tokens; the target evaluates the current token and the k guesses in
 * one batch with the logits of every row (batches of up to 8 read each weight once, like a decode
 * step, and are recorded once and replayed), keeps the longest prefix it agrees with plus its own
 * next token, and rolls the rest back (nibble_truncate).
 * Exact output: a greedy sampler (temp 0 or top_k 1) gives the tokens plain decoding gives (the
 * argmax of each row; a batch sums in another order than the decode step, so logits that tie
 * within rounding could differ). Other samplers keep the distribution by the speculative-sampling
 * rule: drafted token d is accepted with probability min(1, p(d) / q(d)) (p: the target's
 * distribution after temp/top_k/top_p, q: the drafter's; q(d) = 1 for prompt lookup), else the
 * token is drawn from max(0, p - q) normalised. Those draws come from the step's own stream
 * (seeded by the sampler's seed), other draws than plain decoding's: a seeded run repeats with
 * fixed_k (adaptive k follows measured time, and what is drafted changes which draws are made).
 * Drafters: prompt lookup (the tokens that followed the latest earlier occurrence of the context's
 * last n tokens, n = lookup .. 1; no model), a draft model's context (same vocabulary, drafting
 * with the same sampler) and a Gemma 4 MTP assistant (mtp: a few layers over the model's own KV
 * cache and hidden state, drafting with the same sampler, its top_k at most 64, all k steps in
 * one submission with each token chosen on the device). Lookup first; when it finds nothing,
 * the assistant, else the draft model.
 * Adaptive k: each step drafts the k (0 .. draft_max) that maximises the expected tokens of the
 * step, (1 - a^(k+1)) / (1 - a) for the recent per-token acceptance a, per second of a step of
 * k + 1 tokens as measured (drafting included); k = 0 is a plain decode step. So drafts are made
 * only where they pay on this device (a GPU reads the weights once for up to 8 tokens; a CPU
 * device computes each). Drafts that are always rejected cost one retry (a batch of 2 tokens,
 * and the draft model catching up) per 32 plain steps, then 64, .. 1024 while retries accept
 * nothing. fixed_k drafts draft_max whenever it can. */
struct nibble_spec_params {
    int lookup;    /* prompt lookup with n-grams of up to this many tokens (1..8); 0: off */
    int draft_max; /* most tokens drafted per verification, 1..7 (0: 7), and < n_batch */
    struct nibble_context *draft; /* a draft model's context or NULL: the same vocabulary, an
                                     n_ctx of at least the target's; used by no one else */
    bool fixed_k;  /* no adaptation: draft_max tokens (or what lookup finds) on every step */
    const char *mtp; /* a Gemma 4 MTP assistant (gemma4-assistant GGUF) made for the context's
                        model, or NULL: it drafts from the model's own KV cache and last hidden
                        state; loaded onto the model's device by nibble_spec_create */
};
/* Defaults: lookup 0, draft_max 0, draft NULL, fixed_k false, mtp NULL (no drafter: every step a
 * plain decode step). */
struct nibble_spec_params nibble_spec_default_params(void);
struct nibble_spec;
/* A speculative generator over context c (which must outlive it). NULL with a message for bad
 * parameters (a draft model whose vocabulary differs, names both sizes; an MTP file that is not
 * an assistant for this model). */
struct nibble_spec *nibble_spec_create(struct nibble_context *c,
                                       const struct nibble_spec_params *p, char *err,
                                       size_t errlen);
void nibble_spec_destroy(struct nibble_spec *s);
/* One step: `last` is the token chosen last and not yet evaluated (after the prompt's eval, the
 * first nibble_sample). Evaluates it with the drafted tokens, writes the accepted drafts and then
 * the next token to out (the next token is not evaluated: pass it as `last` to the next step) and
 * returns how many (1 .. max). -1 with a message: no room for `last` (n_past == n_ctx), max < 1,
 * a sampler nibble_sampler_check refuses, a failed eval. Drafts never pass the context's end.
 * Stop at the first end-of-generation token of out; the cache may hold the ones after it. */
int nibble_spec_step(struct nibble_spec *s, int32_t last, const struct nibble_sampler *sp,
                     int32_t *out, int max, char *err, size_t errlen);
struct nibble_spec_stats {
    uint64_t steps;         /* nibble_spec_step calls */
    uint64_t verifications; /* steps that verified a draft (the others were plain decode steps) */
    uint64_t drafted;       /* tokens drafted */
    uint64_t accepted;      /* drafted tokens accepted */
    uint64_t tokens;        /* tokens returned */
    /* wall seconds: of the plain steps (eval and sample), of drafting (lookup, the draft model,
     * the assistant) and of the verifications (the batch's eval, acceptance and rollback) */
    double plain_s, draft_s, verify_s;
};
struct nibble_spec_stats nibble_spec_get_stats(const struct nibble_spec *s);

#ifdef __cplusplus
}
#endif
#endif

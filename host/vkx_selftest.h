/* vkx_selftest: what the engine's load-time self-test (engine/selftest.h) needs from the host
 * layer: a store of verdicts beside the pipeline cache, and fault injection (NIBBLE_FAULT). */
#ifndef NB_VKX_SELFTEST_H
#define NB_VKX_SELFTEST_H

#include <stdbool.h>
#include <stddef.h>

#include "vkx.h"

/* Verdicts of the engine's load-time self-test, kept as "KEY VALUE" lines in
 * selftest-<pipeline uuid>.txt beside the on-disk pipeline cache (nothing when that is off).
 * get: 1 and the value of the key's last line in val, or 0. put appends a line. */
int vkx_verdict_get(const struct vkx_ctx *ctx, const char *key, char *val, size_t n);
void vkx_verdict_put(const struct vkx_ctx *ctx, const char *key, const char *val);
bool vkx_verdict_path(const struct vkx_ctx *ctx, char *buf, size_t n); /* false: no file */
/* Fault injection for tests, NIBBLE_FAULT=KIND:PIPELINE[,...] with KIND corrupt (the self-test
 * falsifies that pipeline's result) or nobuild (vkx_pipeline_create refuses it): each entry fires
 * once per process, on the first vkx_fault(kind, name) that matches it. vkx_fault_check: 0, or
 * -1 with a message for a malformed NIBBLE_FAULT; vkx_fault_reset re-arms every entry. */
int vkx_fault_check(char *err, size_t errlen);
bool vkx_fault(const char *kind, const char *name);
void vkx_fault_reset(void);

#endif

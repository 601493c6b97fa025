/* benchutil: what `nibble bench` and `nibble profile` share: the device's bandwidth limit (probed
 * once per device and cached), the weight bytes a decoded token reads, parameter counts, and a
 * table of per-step bytes and FLOPs for the dispatches of a recorded forward pass. */
#ifndef NB_BENCHUTIL_H
#define NB_BENCHUTIL_H

#include <stdbool.h>
#include <stdint.h>

#include "forward.h"

/* The device's copy/read bandwidth: from the cache file (per device, per probe size) unless
 * `fresh`, else probed with buffers of `mib` MiB and cached. 0, or -1 with a message. */
int bu_bandwidth(struct vkx_ctx *vk, uint32_t mib, bool fresh, struct vkx_bandwidth *bw,
                 char *err, size_t errlen);

uint64_t bu_gt_bytes(const struct nb_gtensor *t);        /* device bytes of a weight */
uint64_t bu_params(const struct nb_gpu_model *g);        /* elements of every GGUF tensor */
/* Weight bytes a batch of n tokens reads (n = 1: a decode step), on the device and (the
 * per-layer embedding rows) on the host: every matrix once, but of each embedding table only
 * the n rows looked up (the token table whole when it is also the output) and of the experts
 * only the expected share routed to (k of E per MoE layer for one token, 1 - (1 - k/E)^n for
 * n). The file's bytes, not f32 activations. */
uint64_t bu_batch_bytes(const struct nb_gpu_model *g, uint32_t n);

/* One dispatch of a recording, tied to its forward step. */
struct bu_step {
    const char *label;  /* the step name (continuation dispatches carry their step's name) */
    int layer;          /* -1 outside the layers */
    bool first;         /* the step's first dispatch (later ones are pieces / second passes) */
    char shape[48];     /* "K x M type" for weight steps, else "" */
    double bytes;       /* weights read + activations in/out (estimate; 0 when unknown) */
    double flops;       /* 2 * n * K * M for matrix steps, else 0 */
};
/* Fills steps[0..n_dispatches) for a recording of n tokens made by nb_fwd_record with the labels
 * in c->labels. Returns the number filled. */
uint32_t bu_steps(const struct nb_gpu_model *g, const struct vkx_cmd *c, uint32_t n_tokens,
                  struct bu_step *steps, uint32_t max);

/* Formats a byte count as "1.23 GiB" / "45.6 MiB". */
const char *bu_size(uint64_t bytes, char *buf, size_t n);

#endif

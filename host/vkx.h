/* vkx: nibble's Vulkan host layer.
 *
 * Device choice and capability probe, buffers (split at the storage-range limit), upload and
 * download, compute pipelines from embedded SPIR-V with specialization constants and an on-disk
 * pipeline cache, command recording with push descriptors (or a descriptor-pool fallback), and
 * GPU timestamps. It knows nothing about models.
 *
 * Errors: failures (no device, a missing feature, out of host or device memory, a lost device,
 * a buffer or pipeline the driver refuses) return -1 and write a one-line message into `err`
 * naming the call and VkResult. Command recording, submission and staged uploads/downloads,
 * which return nothing or are called in long runs, abort through vkx_fatal (file, line,
 * VkResult) unless the caller catches their failures (vkx_cmd_catch). Programming errors (a
 * dispatch that does not match its pipeline, a copy outside a buffer) abort through vkx_die.
 * vkx_destroy goes on after a lost device.
 *
 * Threading: a vkx_ctx and everything created from it is used from one thread at a time.
 */
#ifndef NB_VKX_H
#define NB_VKX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <volk.h>

/* ---- errors ------------------------------------------------------------------------------- */

const char *vkx_result_name(VkResult r);
_Noreturn void vkx_fatal(const char *file, int line, const char *call, VkResult r);

static inline uint32_t vkx_ceil_div(uint64_t a, uint64_t b) { return (uint32_t)((a + b - 1) / b); }

/* ---- device and capabilities -------------------------------------------------------------- */

/* Features the engine can be told to ignore (NIBBLE_DISABLE=fp16,int8,subgroup,pushdesc,...). */
enum vkx_feature {
    VKX_FEAT_FP16 = 1u << 0,     /* shaderFloat16 arithmetic */
    VKX_FEAT_INT8 = 1u << 1,     /* shaderInt8 arithmetic and integer dot product */
    VKX_FEAT_SUBGROUP = 1u << 2, /* subgroup arithmetic/shuffle in compute */
    VKX_FEAT_PUSHDESC = 1u << 3, /* VK_KHR_push_descriptor */
    VKX_FEAT_UMA = 1u << 4,      /* map device-local memory on UMA devices ("uma": tests the
                                    staging path on a UMA device) */
    VKX_FEAT_TEXEL = 1u << 5,    /* uniform texel buffers of R32G32B32A32_UINT ("texel") */
    VKX_FEAT_FUSE = 1u << 6,     /* not a device feature: the caller's fused dispatches ("fuse":
                                    one dispatch per step, for tests) */
    VKX_FEAT_REPLAY = 1u << 7,   /* not a device feature: the caller replays recordings of small
                                    batches ("replay": recorded per call instead) */
    VKX_FEAT_SGSIZE = 1u << 8,   /* subgroup size control: pipelines require the subgroup size
                                    they were written for ("sgsize": the driver picks one) */
    VKX_FEAT_HALFCVT = 1u << 9,  /* unpackHalf2x16 ("halfcvt"); off: shaders/half.glsl converts
                                    f16 in integer operations (spec constant VKX_SPEC_SOFT_HALF) */
    VKX_FEAT_WIDE = 1u << 10,    /* not a device feature: GPU-shaped decode matvecs of up to 8
                                    tokens with 2 rows per group ("wide"; off: 1 row, at most 2
                                    tokens per dispatch, for small register files) */
};
/* constant_id of shaders/half.glsl's NB_SOFT_HALF, set on every pipeline: 1 when "halfcvt" is
 * off. */
#define VKX_SPEC_SOFT_HALF 64

struct vkx_caps {
    char name[256];             /* VkPhysicalDeviceProperties.deviceName */
    VkPhysicalDeviceType type;
    uint32_t vendor_id, device_id, api_version, driver_version;
    VkDriverId driver_id;
    char driver_name[256], driver_info[256];
    uint8_t pipeline_uuid[VK_UUID_SIZE]; /* keys the on-disk pipeline cache */

    /* subgroups (compute stage) */
    uint32_t subgroup_size;              /* default size */
    uint32_t subgroup_min, subgroup_max; /* with size control, else = subgroup_size */
    bool subgroup_size_control;          /* can require a size per pipeline */
    bool subgroup_basic, subgroup_vote, subgroup_arith, subgroup_ballot, subgroup_shuffle;

    /* arithmetic and storage */
    bool fp16, int8, int16, int64;
    bool storage16, storage8;      /* 16/8-bit storage buffer access */
    bool int_dot, int_dot_4x8_accel; /* VK_KHR_shader_integer_dot_product, 4x8 packed accelerated */
    bool coopmat;                  /* VK_KHR_cooperative_matrix */
    bool push_desc;                /* VK_KHR_push_descriptor */
    bool timestamps;               /* compute queue supports timestamps */
    float timestamp_period_ns;

    /* limits */
    uint32_t max_shared;           /* maxComputeSharedMemorySize, bytes */
    uint32_t max_wg_invocations;
    uint32_t max_wg_size[3], max_wg_count[3];
    uint64_t max_storage_range;    /* maxStorageBufferRange, bytes */
    uint32_t max_texel_elements;   /* maxTexelBufferElements */
    bool texel_u32x4;              /* R32G32B32A32_UINT works as a uniform texel buffer */
    uint64_t max_alloc;            /* maxMemoryAllocationSize, bytes */
    uint32_t min_storage_align;    /* minStorageBufferOffsetAlignment */
    uint32_t max_push_constants;
    uint64_t device_local_bytes;   /* size of the largest DEVICE_LOCAL heap */
    bool uma;                      /* a DEVICE_LOCAL|HOST_VISIBLE type on the device-local heap */

    unsigned disabled;             /* enum vkx_feature bits forced off by NIBBLE_DISABLE or by
                                      the driver workarounds below */
    unsigned quirk_disabled;       /* the bits the workarounds turned off (vkx_quirks.c) */
    const struct vkx_quirk *quirks[8]; /* the workarounds that apply to this driver */
    unsigned n_quirks;
};

struct vkx_opts {
    int device_index;  /* -1: NIBBLE_DEVICE or default choice (discrete > integrated > CPU) */
    bool validation;   /* enable VK_LAYER_KHRONOS_validation (also NIBBLE_VALIDATE=1) */
    const char *disable; /* feature list like "fp16,subgroup"; NULL: read NIBBLE_DISABLE */
    const char *pipeline_cache_dir; /* NULL: NIBBLE_CACHE_DIR or the platform cache folder;
                                       "" disables the on-disk cache */
    const char *tune; /* "cpu", "gpu" or NULL (NIBBLE_TUNE, else by device type): see tune_cpu */
    bool pipeline_stats; /* keep every pipeline's compiler statistics (vkx_pstats_*) where the
                            driver offers them; off by default: capturing them can keep the
                            driver from caching the pipelines */
};

struct vkx_pstats; /* opaque */

struct vkx_staging; /* opaque */

struct vkx_ctx {
    VkInstance instance;
    VkDebugUtilsMessengerEXT messenger;
    VkPhysicalDevice phys;
    VkDevice dev;
    VkQueue queue;
    uint32_t queue_family;
    struct vkx_caps caps;
    VkPipelineCache pipeline_cache;
    char pipeline_cache_path[1024]; /* "" when the on-disk cache is off */
    VkCommandPool cmd_pool;
    struct vkx_staging *staging;
    uint32_t mem_device, mem_host, mem_uma; /* memory type indices (UINT32_MAX: none) */
    uint64_t allocated_bytes, peak_allocated_bytes; /* device memory held by vkx buffers */
    /* Kernel shapes for a CPU device (whole rows per thread, matrix-vector prefill, few
     * workgroups) rather than for a GPU: the device type unless NIBBLE_TUNE=cpu|gpu says
     * otherwise, so the GPU shapes are testable on lavapipe and the CPU ones anywhere. */
    bool tune_cpu;
    uint32_t pipelines_created;  /* pipelines created so far */
    uint32_t pipelines_compiled; /* of those, created without a pipeline-cache hit */

    /* set by vkx_create, read by the other vkx files */
    uint32_t api_version;     /* Vulkan version in use: min(instance, device, 1.3) */
    uint32_t timestamp_bits;  /* timestampValidBits of the queue family (0: no timestamps) */
    bool creation_feedback;   /* VK_EXT_pipeline_creation_feedback (or 1.3) is usable */
    bool full_subgroups;      /* computeFullSubgroups is enabled */
    bool pcache_loaded;       /* the on-disk pipeline cache held pipelines at vkx_create */
    uint64_t pcache_sum;      /* checksum of the cache data loaded (skips rewriting it) */
    struct vkx_pstats *pstats; /* compiler statistics (opts.pipeline_stats), else NULL */
};

/* Fills ctx; returns 0, or -1 with a one-line message (no Vulkan loader, no device, device lacks
 * a required feature). Prints nothing. */
int vkx_create(struct vkx_ctx *ctx, const struct vkx_opts *opts, char *err, size_t errlen);
void vkx_destroy(struct vkx_ctx *ctx); /* writes the pipeline cache back to disk */

/* One line like llama.cpp's: "NAME (DRIVER) | uma: 0 | fp16: 1 | ... | subgroup: 32 | ...". */
void vkx_device_line(const struct vkx_ctx *ctx, char *buf, size_t n);
/* The full capability list, one "key: value" per line. */
void vkx_caps_print(const struct vkx_ctx *ctx, FILE *out);
/* Lists every physical device (index, name, type); returns 0 or -1 with a message. */
int vkx_list_devices(FILE *out, char *err, size_t errlen);
/* True when the feature is present and not disabled. */
bool vkx_has(const struct vkx_ctx *ctx, enum vkx_feature f);
/* Number of validation warnings/errors reported since vkx_create (validation on only). */
uint32_t vkx_validation_messages(void);

/* ---- buffers ------------------------------------------------------------------------------ */

enum vkx_mem {
    VKX_MEM_DEVICE,   /* device-local; filled with vkx_upload or by shaders */
    VKX_MEM_HOST,     /* host-visible, coherent, mapped: read-back and host-written inputs */
};

struct vkx_buffer {
    VkBuffer buf;
    VkDeviceMemory mem;
    VkDeviceSize size;
    void *map; /* mapped pointer when host-visible (always for VKX_MEM_HOST and on UMA) */
    VkBufferView texel; /* whole-buffer uniform texel view (vkx_buffer_texel_view), or null */
};

/* Creates a buffer of `size` bytes (<= caps.max_storage_range if used as one binding).
 * Returns 0, or -1 with a message naming the size and the available memory. */
int vkx_buffer_create(struct vkx_ctx *ctx, struct vkx_buffer *b, VkDeviceSize size,
                      enum vkx_mem mem, char *err, size_t errlen);
/* Gives b a uniform texel view of R32G32B32A32_UINT (16-byte texels) over the whole buffer, for
 * texel bindings (destroyed with the buffer). Needs VKX_FEAT_TEXEL, a size that is a multiple of
 * 16 and at most caps.max_texel_elements texels. Returns 0, or -1 with a message. */
int vkx_buffer_texel_view(struct vkx_ctx *ctx, struct vkx_buffer *b, char *err, size_t errlen);
void vkx_buffer_destroy(struct vkx_ctx *ctx, struct vkx_buffer *b);

/* Copies host memory into / out of a buffer: chunked through a small staging buffer, or a direct
 * write/read when the buffer is mapped. Blocks until done. Returns 0; a failure of the staging
 * path (out of memory, a lost device) aborts, or inside vkx_cmd_catch(true) returns -1 (as every
 * later staged copy does) and is kept for vkx_cmd_catch(false). */
int vkx_upload(struct vkx_ctx *ctx, struct vkx_buffer *b, VkDeviceSize off, const void *src,
               size_t n);
int vkx_download(struct vkx_ctx *ctx, struct vkx_buffer *b, VkDeviceSize off, void *dst,
                 size_t n);

/* A tensor larger than the storage-buffer range: consecutive pieces of `piece` bytes (the last
 * may be shorter), each its own buffer and binding. `unit` (a row's bytes) divides `piece` so no
 * row straddles two pieces. */
#define VKX_MAX_PIECES 64
struct vkx_split {
    uint32_t n;
    VkDeviceSize size, piece, unit;
    struct vkx_buffer b[VKX_MAX_PIECES];
};
/* max_piece 0 means caps.max_storage_range (rounded down to unit and to 256 bytes). Each piece's
 * buffer is padded to whole 16-byte texels where that stays within the limit. */
int vkx_split_create(struct vkx_ctx *ctx, struct vkx_split *s, VkDeviceSize size,
                     VkDeviceSize unit, VkDeviceSize max_piece, enum vkx_mem mem, char *err,
                     size_t errlen);
void vkx_split_destroy(struct vkx_ctx *ctx, struct vkx_split *s);
/* vkx_upload / vkx_download across the pieces: 0, or -1 at the first that fails. */
int vkx_split_upload(struct vkx_ctx *ctx, struct vkx_split *s, VkDeviceSize off, const void *src,
                     size_t n);
int vkx_split_download(struct vkx_ctx *ctx, struct vkx_split *s, VkDeviceSize off, void *dst,
                       size_t n);

/* A binding: a range of a buffer. size 0 means "to the end of the buffer". */
struct vkx_view {
    const struct vkx_buffer *buf;
    VkDeviceSize off, size; /* texel bindings: the buffer's whole texel view (off 0) */
};
static inline struct vkx_view vkx_whole(const struct vkx_buffer *b)
{
    struct vkx_view v = {b, 0, 0};
    return v;
}

/* ---- pipelines ---------------------------------------------------------------------------- */

#define VKX_MAX_SPEC 16
#define VKX_MAX_BINDINGS 16

struct vkx_pipeline_desc {
    const char *name;
    const uint32_t *spv;
    size_t spv_size;        /* bytes */
    uint32_t n_bindings;    /* bindings 0..n-1 in set 0: storage buffers unless texel_bindings */
    uint32_t texel_bindings; /* bit i: binding i is a uniform texel buffer (usamplerBuffer) */
    uint32_t push_size;     /* bytes of push constants (0..128) */
    uint32_t n_spec;
    uint32_t spec[VKX_MAX_SPEC]; /* constant_id i <- spec[i] (uint/int/float bits, 4 bytes each) */
    uint32_t subgroup_size; /* 0: any; else require this size (needs size control) */
    bool full_subgroups;    /* require full subgroups: local_size_x must be a multiple of the
                               subgroup size (ignored when the device lacks computeFullSubgroups) */
};

struct vkx_pipeline {
    const char *name;
    VkPipeline pipe;
    VkDescriptorSetLayout dsl;
    VkPipelineLayout layout;
    VkDescriptorUpdateTemplate tmpl; /* push-descriptor template, when push descriptors are used */
    uint32_t n_bindings, push_size;
    uint32_t texel_bindings; /* as in vkx_pipeline_desc */
};

/* The subgroup size a pipeline written for `want` lanes should require: the power of two of the
 * device's range (VK_EXT_subgroup_size_control) nearest `want` (RDNA 32 of 32..64, Adreno 64 of
 * 64..128, lavapipe 8 of 8..8), or 0 (no requirement: the driver picks) without size control or
 * with NIBBLE_DISABLE=sgsize. */
uint32_t vkx_subgroup_size_pick(const struct vkx_ctx *ctx, uint32_t want);
/* Builds a compute pipeline through the pipeline cache. Returns 0, or -1 with a message when the
 * driver refuses it (so the caller can fall back to a plainer variant). */
int vkx_pipeline_create(struct vkx_ctx *ctx, struct vkx_pipeline *p,
                        const struct vkx_pipeline_desc *d, char *err, size_t errlen);
void vkx_pipeline_destroy(struct vkx_ctx *ctx, struct vkx_pipeline *p);
/* Run-time shader replacement (nibble profile --shaders DIR): when set, vkx_pipeline_create asks
 * fn for a replacement of every SPIR-V module it builds (by the embedded code it was given);
 * fn returns NULL to keep that one, or code that stays valid until the pipeline is built, with
 * *size in bytes. Process-wide; NULL unsets. */
typedef const uint32_t *(*vkx_spv_override_fn)(void *user, const char *name, const uint32_t *spv,
                                               size_t spv_size, size_t *size);
void vkx_set_spv_override(vkx_spv_override_fn fn, void *user);
/* True when the driver keeps pipelines in the pipeline cache (its data grew past the header
 * after a pipeline was built). lavapipe keeps none: every start compiles again there. */
bool vkx_pipeline_cache_effective(struct vkx_ctx *ctx);

/* ---- compiler statistics (VK_KHR_pipeline_executable_properties) -------------------------- */

#define VKX_MAX_STATS 48
struct vkx_stat {
    char name[48]; /* the driver's name for it ("VGPRs", "Spilled VGPRs", "Latency", ...) */
    double value;  /* booleans as 0/1 */
};
struct vkx_pipeline_stats {
    char name[48];               /* the pipeline's name */
    uint32_t n_spec;
    uint32_t spec[VKX_MAX_SPEC]; /* its specialization constants */
    bool texel;                  /* it has uniform texel bindings (the _tx variants) */
    uint32_t subgroup_size;      /* the executable's subgroup size (0: not said) */
    uint32_t n;
    struct vkx_stat s[VKX_MAX_STATS]; /* every statistic of the executable, in the driver's order */
    /* the ones nibble checks, -1 where the driver gives none: registers per lane, registers
     * spilled to scratch, LDS and scratch bytes, subgroups (waves) resident per SIMD (RADV's
     * "Subgroups per SIMD" counts a wave64 as two on wave32 hardware: halved here) */
    double vgprs, sgprs, spilled_vgprs, spilled_sgprs, lds_bytes, scratch_bytes, waves_per_simd;
    /* the most waves a SIMD holds (VK_AMD_shader_core_properties' wavefrontsPerSimd; 0: the
     * device does not say): occupancy = waves_per_simd / max_waves */
    uint32_t max_waves;
};
/* -1: opts.pipeline_stats was off; 0: asked for but this driver does not offer them; 1: kept. */
int vkx_pstats_state(const struct vkx_ctx *ctx);
/* The statistics of the pipelines alive now, in creation order. */
uint32_t vkx_pstats_count(const struct vkx_ctx *ctx);
const struct vkx_pipeline_stats *vkx_pstats_get(const struct vkx_ctx *ctx, uint32_t i);

/* ---- command recording, submission, timestamps -------------------------------------------- */

struct vkx_cmd {
    VkCommandBuffer cb;
    VkFence fence;
    VkDescriptorPool pool;   /* fallback when push descriptors are off */
    VkQueryPool queries;     /* timestamps, when enabled */
    uint32_t max_dispatches; /* capacity for descriptor sets and timestamps */
    uint32_t n_dispatches;
    bool timestamps;
    const char **labels;     /* [max_dispatches] label of each dispatch (pipeline name default) */
    const char *next_label;
    VkPipeline bound;        /* pipeline bound last in this recording */
    bool push_desc;          /* push descriptors in use (else sets from `pool`) */
};

/* max_dispatches bounds the dispatches per recording; timestamps adds a query per dispatch. */
void vkx_cmd_create(struct vkx_ctx *ctx, struct vkx_cmd *c, uint32_t max_dispatches,
                    bool timestamps);
void vkx_cmd_destroy(struct vkx_ctx *ctx, struct vkx_cmd *c);
void vkx_cmd_begin(struct vkx_ctx *ctx, struct vkx_cmd *c); /* resets and starts recording */
/* Names the next dispatch in timestamp reports (the string must outlive the recording). */
void vkx_cmd_label(struct vkx_cmd *c, const char *label);
/* Records one dispatch of `groups` workgroups with the given bindings (n == p->n_bindings) and
 * push constants (push_size == p->push_size). */
void vkx_cmd_dispatch(struct vkx_ctx *ctx, struct vkx_cmd *c, const struct vkx_pipeline *p,
                      const struct vkx_view *binds, uint32_t n_binds, const void *push,
                      uint32_t push_size, uint32_t gx, uint32_t gy, uint32_t gz);
/* Compute-to-compute memory barrier: later dispatches see earlier writes. */
void vkx_cmd_barrier(struct vkx_cmd *c);
/* Buffer copy and fill, with the barriers they need around them. */
void vkx_cmd_copy(struct vkx_cmd *c, struct vkx_view dst, struct vkx_view src);
void vkx_cmd_fill(struct vkx_cmd *c, struct vkx_view dst, uint32_t value);
void vkx_cmd_end(struct vkx_ctx *ctx, struct vkx_cmd *c);
/* Submits the recorded commands and waits. A recording may be submitted many times. */
void vkx_cmd_submit_wait(struct vkx_ctx *ctx, struct vkx_cmd *c);
/* After a submit with timestamps on: GPU nanoseconds of dispatch i (0 when unavailable). */
uint32_t vkx_cmd_read_times(struct vkx_ctx *ctx, struct vkx_cmd *c, double *ns, uint32_t max);

/* Failures an app can meet (a lost device, out of host or device memory) in vkx_cmd_create,
 * vkx_cmd_begin, a descriptor-set allocation, vkx_cmd_end, vkx_cmd_submit_wait,
 * vkx_cmd_read_times and the staging path of vkx_upload / vkx_download abort through vkx_fatal,
 * except between vkx_cmd_catch(true) and vkx_cmd_catch(false) (this thread): there the first
 * one is kept, every later recording, submission and staged copy is skipped (uploads and
 * downloads return -1), and vkx_cmd_catch(false) returns it (VK_SUCCESS when none). The caller
 * reports it and treats the work since vkx_cmd_catch(true) as garbage. Not nested. */
VkResult vkx_cmd_catch(bool on);
/* The failure kept so far inside a catch (VK_SUCCESS: none, or not catching). */
VkResult vkx_cmd_caught(void);
/* Test hooks (this thread). vkx_cmd_inject_fault: the vkx_cmd_submit_wait after `after` more
 * ones reports r, having done its work. vkx_inject_call_fault: the call of the Vulkan function
 * `name` ("vkAllocateMemory"; NULL: any) after `after` more such calls reports r without being
 * made; every call that can fail with out-of-memory or a lost device is hooked: object and
 * memory creation, mapping, recording, submission and waits, in vkx_create, buffers, staging,
 * pipelines and commands. VK_SUCCESS disarms. vkx_call_trace(true) forgets earlier counts and
 * counts the hooked calls by function name from then on, false stops counting;
 * vkx_call_trace_get(i, &name) gives the i-th name seen and its count (0 past the last). */
#define VKX_MAX_TRACE 48
void vkx_cmd_inject_fault(VkResult r, uint32_t after);
void vkx_inject_call_fault(const char *name, VkResult r, uint32_t after);
void vkx_call_trace(bool on);
uint32_t vkx_call_trace_get(uint32_t i, const char **name);

/* ---- bandwidth probe ----------------------------------------------------------------------- */

/* What plain shaders reach on this device: the ceiling to compare kernels against. GB/s count
 * every byte moved (a copy of n bytes moves 2n). Best of the repetitions and of the shapes:
 * shaders moving uvec4, uint or (with shaderInt64) u64vec2 elements of storage buffers, or
 * reading uvec4 texels of a uniform texel buffer (VKX_FEAT_TEXEL). The transfer engine's copy
 * (vkCmdCopyBuffer, host timed) is reported beside it: on a CPU device it is a memcpy, and shows
 * how far the driver's shader code stays from the memory system. */
struct vkx_bandwidth {
    uint64_t bytes;   /* size of each buffer */
    double copy_gbs;  /* best shader copy, read + write */
    double read_gbs;  /* best shader that only reads */
    double copy_ms, read_ms; /* best times */
    char copy_shape[16], read_shape[16]; /* the winners: "uvec4", "uint", "u64vec2", "texel" */
    double transfer_gbs; /* vkCmdCopyBuffer, read + write (0: not measured) */
    bool gpu_timed;   /* GPU timestamps (else the host clock around each submission) */
};
/* Runs the probe on buffers of `bytes` (0: 64 MiB; clamped to the storage range), `reps` times
 * each (0: 5). Returns 0, or -1 with a message (out of memory, pipeline refused). */
int vkx_probe_bandwidth(struct vkx_ctx *ctx, uint64_t bytes, uint32_t reps,
                        struct vkx_bandwidth *bw, char *err, size_t errlen);

#endif

/* gtensor: a GGUF weight tensor on the device.
 *
 * The data lives in a vkx_split whose pieces hold whole rows (whole experts for a 3-D tensor),
 * so a tensor larger than maxStorageBufferRange (Gemma's 262144 x 2560 token embedding) becomes
 * several buffers; the ops in op_matmul.h dispatch once per piece.
 *
 * Device layout, per piece (see shaders/quant.glsl):
 *   F32, F16, BF16: the GGUF rows unchanged (F16, BF16 need an even ne0).
 *   Quantized types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K, IQ4_NL, IQ4_XS): a unit plane
 *         [rows][nb][qu bytes] (nb = ne0 / 32 units of 32 elements; 16-byte aligned units for
 *         qu >= 16, so the shaders load them as uvec4) followed by a block plane [rows][nbb][sb
 *         bytes] of scales and high bits (nbb = ne0 / 32 or / 256); gtensor_pack.h has the
 *         per-type table (Q4_0: nibbles | f16 d; Q8_0: int8 | f16 d; ...).
 * When sb is 2 and nbb is odd each row carries 2 bytes of padding (at the end of the piece) so
 * the block plane can be read as whole 32-bit words.
 * Row tiles (quantized types with tile_shift > 0, for CPU devices): both planes hold tiles of
 * T = 1 << tile_shift rows, unit (block) u of the tile's rows side by side ([rows/T][nb][T]
 * units, [rows/T][nbb][T] blocks), so the lanes of a CPU device's vector, one row each, read
 * neighbouring bytes; inside a tile of T >= 8 rows a block's plane B entries come in groups of 8
 * rows (row i * T/8 + l at 8 * l + i), the 8 rows one thread takes. A piece's rows are padded to
 * whole tiles (the padding is never read).
 */
#ifndef NB_GTENSOR_H
#define NB_GTENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "gtensor_pack.h"
#include "vkx.h"

struct plat_map;

struct nb_gtensor {
    enum ggml_type type;
    uint64_t ne[4];     /* ne[0] = K (contiguous), ne[1] = rows (per expert), ne[2] = experts */
    uint64_t row_bytes; /* device bytes per row (GGUF row size + padding, see above) */
    uint64_t rows;      /* ne[1] * ne[2] * ne[3] */
    uint64_t rows_per_piece; /* rows of every piece but the last (a multiple of ne[1] if 3-D) */
    struct vkx_split data;   /* data.n pieces */
    bool texel; /* quantized: every piece has a texel view (vkx_buffer_texel_view) */
    uint32_t tile_shift; /* quantized: rows come in tiles of 1 << tile_shift (see above); 0: plain */
};


/* Uploads a tensor from the mapped file (t->data, t->nbytes), repacking quantized types in
 * chunks (no full host copy). Types: NB_WEIGHT_TYPES. Returns 0, or -1 with a one-line
 * message naming the tensor. */
int nb_gtensor_upload(struct vkx_ctx *vk, struct nb_gtensor *gt, const struct gguf_tensor *t,
                      char *err, size_t errlen);
/* Same, and t->data lies inside the read-only file mapping `file`: the file pages of each chunk
 * are released (plat_map_release) as soon as the chunk is on the device, so loading holds one
 * chunk of the file in memory, not one tensor. A quantized tensor is laid out in row tiles of
 * 1 << tile_shift rows (0: plain rows; 3-D tensors whose expert rows are not whole tiles stay
 * plain). */
int nb_gtensor_upload_file(struct vkx_ctx *vk, struct nb_gtensor *gt, const struct gguf_tensor *t,
                           const struct plat_map *file, uint32_t tile_shift, char *err,
                           size_t errlen);
/* Whether ts[0..n) can be uploaded as one tensor stacked by rows (nb_gtensor_upload_stack): all
 * 2-D, of one type and row length, each part's rows whole row tiles of 1 << tile_shift. */
bool nb_gtensor_can_stack(const struct gguf_tensor *const *ts, uint32_t n, uint32_t tile_shift);
/* Uploads ts[0..n) as one tensor {K, sum of rows}: the rows of ts[0], then of ts[1], ... (one
 * product computes them all: fused q|k|v, gate|up). The rest as nb_gtensor_upload_file. */
int nb_gtensor_upload_stack(struct vkx_ctx *vk, struct nb_gtensor *gt,
                            const struct gguf_tensor *const *ts, uint32_t n,
                            const struct plat_map *file, uint32_t tile_shift, char *err,
                            size_t errlen);
/* For tests: a tensor from host memory in GGUF layout (ggml_row_size(type, ne[0]) bytes per
 * row), in pieces of at most max_piece bytes (0: the device limit; tests force splits); unused
 * ne entries must be 1. */
int nb_gtensor_from_host(struct vkx_ctx *vk, struct nb_gtensor *gt, enum ggml_type type,
                         const uint64_t ne[4], const void *data, uint64_t max_piece, char *err,
                         size_t errlen);
/* Same in row tiles of 1 << tile_shift rows (see nb_gtensor_upload_file). */
int nb_gtensor_from_host_tiled(struct vkx_ctx *vk, struct nb_gtensor *gt, enum ggml_type type,
                               const uint64_t ne[4], const void *data, uint64_t max_piece,
                               uint32_t tile_shift, char *err, size_t errlen);
void nb_gtensor_destroy(struct vkx_ctx *vk, struct nb_gtensor *gt);

/* Rows held by piece i. */
uint64_t nb_gtensor_piece_rows(const struct nb_gtensor *gt, uint32_t i);
/* Device bytes per row of a K-element row of `type` in the layout above. */
uint64_t nb_gtensor_row_bytes(enum ggml_type type, uint64_t K);
/* Quantized types: index (in 32-bit words) of the block plane inside piece i; 0 for others. */
uint32_t nb_gtensor_dbase(const struct nb_gtensor *gt, uint32_t i);

#endif

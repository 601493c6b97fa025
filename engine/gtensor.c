/* gtensor.c: weight tensors on the device (see gtensor.h for the layout). */
#include "gtensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gtensor_pack.h"
#include "platform.h"

/* Source bytes per upload step: the repack buffer's size (when the device memory is not mapped)
 * and the file pages held at once when the source is a file mapping. */
#define CHUNK_BYTES (4u << 20)

static bool is_quant(enum ggml_type t)
{
    return nb_pack_info(t, NULL);
}
/* The type's two-plane layout (gtensor_pack.h); zeros for F32/F16/BF16. */
static struct nb_pack_info pack_of(enum ggml_type t)
{
    struct nb_pack_info pi = {0, 0, 0};
    nb_pack_info(t, &pi);
    return pi;
}

uint64_t nb_gtensor_piece_rows(const struct nb_gtensor *gt, uint32_t i)
{
    uint64_t r0 = (uint64_t)i * gt->rows_per_piece;
    if (r0 >= gt->rows) return 0;
    uint64_t n = gt->rows - r0;
    return n < gt->rows_per_piece ? n : gt->rows_per_piece;
}

uint64_t nb_gtensor_row_bytes(enum ggml_type type, uint64_t K)
{
    struct nb_pack_info pi = pack_of(type);
    if (!pi.be) return ggml_row_size(type, K);
    uint64_t nbb = K / pi.be; /* blocks: a 2-byte plane B entry pads an odd count to a word */
    return K / 32 * pi.qu + nbb * pi.sb + (pi.sb == 2 && (nbb & 1) ? 2 : 0);
}

/* Rows piece i's planes are laid out for: its rows rounded up to whole tiles. */
static uint64_t piece_rows_padded(const struct nb_gtensor *gt, uint32_t i)
{
    uint64_t t = (uint64_t)1 << gt->tile_shift;
    return (nb_gtensor_piece_rows(gt, i) + t - 1) / t * t;
}

uint32_t nb_gtensor_dbase(const struct nb_gtensor *gt, uint32_t i)
{
    struct nb_pack_info pi = pack_of(gt->type);
    if (!pi.be) return 0;
    return (uint32_t)(piece_rows_padded(gt, i) * (gt->ne[0] / 32) * pi.qu / 4);
}

/* Index of unit u (of nb per row) of piece-local row r in plane A (gtensor.h; quant.glsl's
 * q_block). */
static uint64_t block_index(const struct nb_gtensor *gt, uint64_t r, uint64_t u, uint64_t nb)
{
    uint32_t s = gt->tile_shift;
    return (((r >> s) * nb + u) << s) + (r & (((uint64_t)1 << s) - 1));
}

/* Index of block u (of nb per row) of piece-local row r in plane B (quant.glsl's q_scale): as
 * block_index, but inside a tile of T >= 8 rows row j = i * (T/8) + l sits at 8 * l + i. */
static uint64_t scale_index(const struct nb_gtensor *gt, uint64_t r, uint64_t u, uint64_t nb)
{
    uint32_t s = gt->tile_shift;
    uint64_t j = r & (((uint64_t)1 << s) - 1);
    if (s >= 3) j = (j & (((uint64_t)1 << (s - 3)) - 1)) * 8 + (j >> (s - 3));
    return (((r >> s) * nb + u) << s) + j;
}

/* Linux maps up to 64 KiB of cached file pages around a faulting page ("fault-around"), so
 * reading a chunk maps back some pages just before it: each release reaches back that far. */
#define FAULT_AROUND (64u << 10)

/* Gives back the file pages under [p, p+n) once they are on the device (no-op without a file). */
static void release_src(const struct plat_map *file, const uint8_t *p, uint64_t n)
{
    if (!file) return;
    size_t off = (size_t)(p - (const uint8_t *)file->data);
    size_t back = off < FAULT_AROUND ? off : FAULT_AROUND;
    plat_map_release(file, off - back, (size_t)n + back);
}

/* Repacks rows [r0, r0+n) of piece `pi` (GGUF blocks at src; r0 a whole number of tiles) into
 * the two planes: straight into the mapped device memory when the piece is mapped, else through
 * qbuf/dbuf (room for n rows rounded up to whole tiles) and vkx_upload (-1 when that fails). */
static int upload_quant_rows(struct vkx_ctx *vk, struct nb_gtensor *gt, uint32_t pi, uint64_t r0,
                              uint64_t n, const uint8_t *src, uint8_t *qbuf, uint8_t *dbuf)
{
    struct nb_pack_info pk = pack_of(gt->type);
    uint64_t nb = gt->ne[0] / 32, nbb = gt->ne[0] / pk.be, upb = pk.be / 32;
    uint64_t bb = ggml_type_size(gt->type); /* GGUF bytes per block */
    uint64_t t = (uint64_t)1 << gt->tile_shift;
    uint64_t rows = (n + t - 1) / t * t; /* the rows' whole tiles: one run in each plane */
    struct vkx_buffer *buf = &gt->data.b[pi];
    uint64_t qoff = r0 * nb * pk.qu, doff = (uint64_t)nb_gtensor_dbase(gt, pi) * 4 + r0 * nbb * pk.sb;
    uint8_t *q = qbuf, *d = dbuf;
    if (buf->map) { /* host-visible and coherent: the next submission sees the writes */
        q = (uint8_t *)buf->map + qoff;
        d = (uint8_t *)buf->map + doff;
    } else if (n % t) { /* the padding rows of a last tile: defined bytes, never read */
        memset(qbuf, 0, (size_t)(rows * nb * pk.qu));
        memset(dbuf, 0, (size_t)(rows * nbb * pk.sb));
    }
    uint8_t units[8 * 32], blk[128]; /* one block's units (<= 8 x 32 bytes) and plane B entry */
    for (uint64_t r = 0; r < n; r++)
        for (uint64_t b = 0; b < nbb; b++) {
            nb_pack_block(gt->type, src + (r * nbb + b) * bb, units, blk);
            for (uint64_t s = 0; s < upb; s++) {
                uint64_t i = block_index(gt, r0 + r, b * upb + s, nb) - r0 * nb; /* r0: a tile */
                memcpy(q + i * pk.qu, units + s * pk.qu, pk.qu);
            }
            uint64_t si = scale_index(gt, r0 + r, b, nbb) - r0 * nbb;
            nb_pack_place(gt->type, &pk, gt->tile_shift >= 3, si, blk, d);
        }
    if (buf->map) return 0;
    if (vkx_upload(vk, buf, qoff, qbuf, (size_t)(rows * nb * pk.qu)) != 0) return -1;
    return vkx_upload(vk, buf, doff, dbuf, (size_t)(rows * nbb * pk.sb));
}

/* A failed upload (inside vkx_cmd_catch: see vkx.h): the tensor freed, -1 with a message. */
static int upload_failed(struct vkx_ctx *vk, struct nb_gtensor *gt, const char *name, char *err,
                         size_t errlen)
{
    VkResult r = vkx_cmd_caught();
    snprintf(err, errlen, "tensor %s: uploading failed: %s", name,
             r != VK_SUCCESS ? vkx_result_name(r) : "?");
    nb_gtensor_destroy(vk, gt);
    return -1;
}

static int upload(struct vkx_ctx *vk, struct nb_gtensor *gt, const struct gguf_tensor *const *ts,
                  uint32_t nparts, uint64_t max_piece, uint32_t tile_shift,
                  const struct plat_map *file, char *err, size_t errlen);

int nb_gtensor_upload_file(struct vkx_ctx *vk, struct nb_gtensor *gt, const struct gguf_tensor *t,
                           const struct plat_map *file, uint32_t tile_shift, char *err,
                           size_t errlen)
{
    return upload(vk, gt, &t, 1, 0, tile_shift, file, err, errlen);
}

/* Row tiles a tensor of this type and shape gets for a requested tile_shift: quantized types
 * only; a 3-D tensor's experts must be whole tiles, so they get the largest tiles up to the
 * request, of 4 rows at least, that divide them, or none. */
static uint32_t tiles_for(enum ggml_type ty, const uint64_t *ne, uint32_t tile_shift)
{
    uint64_t e = ne[2] ? ne[2] : 1;
    if (tile_shift > 8 || !is_quant(ty)) return 0;
    while (e > 1 && tile_shift >= 2 && ne[1] % (1u << tile_shift))
        tile_shift--;
    return e > 1 && tile_shift < 2 ? 0 : tile_shift;
}

bool nb_gtensor_can_stack(const struct gguf_tensor *const *ts, uint32_t n, uint32_t tile_shift)
{
    if (n == 0 || !ts[0]) return false;
    uint32_t s = tiles_for(ts[0]->type, ts[0]->ne, tile_shift);
    for (uint32_t i = 0; i < n; i++) {
        const struct gguf_tensor *t = ts[i];
        if (!t || t->type != ts[0]->type || t->ne[0] != ts[0]->ne[0] || t->n_dims > 2 ||
            (t->ne[1] % (1u << s)))
            return false;
    }
    return true;
}

int nb_gtensor_upload_stack(struct vkx_ctx *vk, struct nb_gtensor *gt,
                            const struct gguf_tensor *const *ts, uint32_t n,
                            const struct plat_map *file, uint32_t tile_shift, char *err,
                            size_t errlen)
{
    if (!nb_gtensor_can_stack(ts, n, tile_shift)) {
        snprintf(err, errlen, "tensors %.*s...: not stackable (type, row length or rows differ)",
                 ts[0] ? (int)(ts[0]->name.n < 80 ? ts[0]->name.n : 80) : 0,
                 ts[0] && ts[0]->name.p ? ts[0]->name.p : "");
        return -1;
    }
    return upload(vk, gt, ts, n, 0, tile_shift, file, err, errlen);
}

/* Uploads ts[0..nparts) stacked by rows (nparts > 1: 2-D tensors that nb_gtensor_can_stack). */
static int upload(struct vkx_ctx *vk, struct nb_gtensor *gt, const struct gguf_tensor *const *ts,
                  uint32_t nparts, uint64_t max_piece, uint32_t tile_shift,
                  const struct plat_map *file, char *err, size_t errlen)
{
    memset(gt, 0, sizeof *gt);
    const struct gguf_tensor *t = ts[0];
    char name[112];
    snprintf(name, sizeof name, "%.*s%s", (int)(t->name.n < 80 ? t->name.n : 80),
             t->name.p ? t->name.p : "", nparts > 1 ? " (stacked with the next)" : "");
    enum ggml_type ty = t->type;
    if (ty != GGML_F32 && ty != GGML_F16 && ty != GGML_BF16 && !is_quant(ty)) {
        const char *tn = ggml_type_name(ty);
        snprintf(err, errlen, "tensor %s: type %s is not supported on the GPU (%s)", name,
                 tn ? tn : "?", NB_WEIGHT_TYPES);
        return -1;
    }
    uint64_t K = t->ne[0], rows = 0;
    for (uint32_t i = 0; i < nparts; i++) {
        uint64_t r = 1;
        for (int d = 1; d < GGUF_MAX_DIMS; d++)
            r *= ts[i]->ne[d] ? ts[i]->ne[d] : 1;
        rows += r;
    }
    if (K == 0 || rows == 0 || K > 0x7FFFFFFFu || rows > 0xFFFFFFFFu) {
        snprintf(err, errlen, "tensor %s: shape %llu x %llu out of range", name,
                 (unsigned long long)K, (unsigned long long)rows);
        return -1;
    }
    struct nb_pack_info pk = pack_of(ty);
    if ((pk.be && K % pk.be) || ((ty == GGML_F16 || ty == GGML_BF16) && K % 2)) {
        snprintf(err, errlen, "tensor %s: row length %llu does not suit type %s on the GPU", name,
                 (unsigned long long)K, ggml_type_name(ty));
        return -1;
    }
    uint64_t src_row = ggml_row_size(ty, K);
    for (uint32_t i = 0; i < nparts; i++) {
        uint64_t want = src_row * (nparts > 1 ? ts[i]->ne[1] : rows);
        if (!ts[i]->data || ts[i]->nbytes != want) {
            snprintf(err, errlen, "tensor %s: %llu bytes, expected %llu", name,
                     (unsigned long long)ts[i]->nbytes, (unsigned long long)want);
            return -1;
        }
    }
    uint64_t nb = K / 32, nbb = pk.be ? K / pk.be : 0; /* units, blocks per row */
    gt->type = ty;
    for (int d = 0; d < 4; d++)
        gt->ne[d] = t->ne[d] ? t->ne[d] : 1;
    gt->ne[1] = nparts > 1 ? rows : gt->ne[1];
    gt->rows = rows;
    gt->row_bytes = nb_gtensor_row_bytes(ty, K);
    /* row tiles: quantized only, and 3-D tensors only when an expert is whole tiles */
    tile_shift = tiles_for(ty, gt->ne, tile_shift);
    gt->tile_shift = tile_shift;
    uint64_t tile = (uint64_t)1 << tile_shift;
    /* pieces hold whole experts (3-D tensors) and whole tiles */
    uint64_t unit_rows = gt->ne[2] > 1 ? gt->ne[1] : tile;
    uint64_t unit = unit_rows * gt->row_bytes;
    uint64_t limit = max_piece ? max_piece : vk->caps.max_storage_range;
    if (limit > vk->caps.max_storage_range) limit = vk->caps.max_storage_range;
    if (unit > limit) {
        snprintf(err, errlen,
                 "tensor %s: one %s of %llu bytes exceeds the %llu-byte binding "
                 "limit",
                 name, gt->ne[2] > 1 ? "expert" : tile > 1 ? "row tile" : "row",
                 (unsigned long long)unit,
                 (unsigned long long)limit);
        return -1;
    }
    uint64_t size = (rows + tile - 1) / tile * tile * gt->row_bytes; /* whole tiles */
    if (vkx_split_create(vk, &gt->data, size, unit, max_piece, VKX_MEM_DEVICE, err, errlen) != 0)
        return -1;
    if (gt->data.piece % gt->row_bytes || (gt->data.piece / gt->row_bytes) % unit_rows) {
        snprintf(err, errlen, "tensor %s: split piece of %llu bytes does not hold whole rows", name,
                 (unsigned long long)gt->data.piece);
        vkx_split_destroy(vk, &gt->data);
        return -1;
    }
    gt->rows_per_piece = gt->data.piece / gt->row_bytes;

    if (!is_quant(ty)) { /* the GGUF layout is the device layout */
        uint64_t at = 0; /* device offset of the part */
        for (uint32_t i = 0; i < nparts; i++) {
            const struct gguf_tensor *pt = ts[i];
            for (uint64_t off = 0; off < pt->nbytes; off += CHUNK_BYTES) {
                uint64_t n = pt->nbytes - off < CHUNK_BYTES ? pt->nbytes - off : CHUNK_BYTES;
                if (vkx_split_upload(vk, &gt->data, at + off, pt->data + off, (size_t)n) != 0)
                    return upload_failed(vk, gt, name, err, errlen);
                release_src(file, pt->data + off, n);
            }
            at += pt->nbytes;
        }
        return 0;
    }
    /* quantized pieces are also readable as uvec4 texels where the device has texel buffers (the
     * CPU-device matrix-vector shader reads them so); a piece that cannot have a view leaves the
     * tensor on storage-buffer reads */
    gt->texel = vkx_has(vk, VKX_FEAT_TEXEL);
    for (uint32_t pi = 0; pi < gt->data.n && gt->texel; pi++) {
        char ignored[256];
        gt->texel = vkx_buffer_texel_view(vk, &gt->data.b[pi], ignored, sizeof ignored) == 0;
    }
    uint64_t chunk_rows = CHUNK_BYTES / src_row / tile * tile; /* whole tiles */
    if (chunk_rows == 0) chunk_rows = tile;
    uint8_t *qbuf = NULL, *dbuf = NULL; /* (chunk_rows x nb x qu), (chunk_rows x nbb x sb) */
    bool mapped = true;
    for (uint32_t pi = 0; pi < gt->data.n; pi++)
        mapped = mapped && gt->data.b[pi].map;
    if (!mapped) {
        qbuf = malloc((size_t)(chunk_rows * nb * pk.qu));
        dbuf = malloc((size_t)(chunk_rows * nbb * pk.sb));
        if (!qbuf || !dbuf) {
            free(qbuf);
            free(dbuf);
            vkx_split_destroy(vk, &gt->data);
            snprintf(err, errlen, "tensor %s: out of host memory for the repack buffer", name);
            return -1;
        }
    }
    /* chunks of whole tiles that stay inside one part and one piece (every part but the last
     * is whole tiles, so each chunk starts a tile) */
    uint64_t g = 0; /* global row of the part's first row */
    for (uint32_t i = 0; i < nparts; i++) {
        uint64_t prows = ts[i]->nbytes / src_row;
        for (uint64_t r = 0; r < prows;) {
            uint32_t pi = (uint32_t)((g + r) / gt->rows_per_piece);
            uint64_t local = g + r - (uint64_t)pi * gt->rows_per_piece;
            uint64_t n = prows - r < chunk_rows ? prows - r : chunk_rows;
            if (n > gt->rows_per_piece - local) n = gt->rows_per_piece - local;
            const uint8_t *src = ts[i]->data + r * src_row;
            if (upload_quant_rows(vk, gt, pi, local, n, src, qbuf, dbuf) != 0) {
                free(qbuf);
                free(dbuf);
                return upload_failed(vk, gt, name, err, errlen);
            }
            release_src(file, src, n * src_row);
            r += n;
        }
        g += prows;
    }
    free(qbuf);
    free(dbuf);
    return 0;
}

int nb_gtensor_upload(struct vkx_ctx *vk, struct nb_gtensor *gt, const struct gguf_tensor *t,
                      char *err, size_t errlen)
{
    return upload(vk, gt, &t, 1, 0, 0, NULL, err, errlen);
}

int nb_gtensor_from_host(struct vkx_ctx *vk, struct nb_gtensor *gt, enum ggml_type type,
                         const uint64_t ne[4], const void *data, uint64_t max_piece, char *err,
                         size_t errlen)
{
    return nb_gtensor_from_host_tiled(vk, gt, type, ne, data, max_piece, 0, err, errlen);
}

int nb_gtensor_from_host_tiled(struct vkx_ctx *vk, struct nb_gtensor *gt, enum ggml_type type,
                               const uint64_t ne[4], const void *data, uint64_t max_piece,
                               uint32_t tile_shift, char *err, size_t errlen)
{
    struct gguf_tensor t;
    memset(&t, 0, sizeof t);
    t.name.p = "host";
    t.name.n = 4;
    t.n_dims = 4;
    t.type = type;
    uint64_t rows = 1;
    for (int d = 0; d < 4; d++) {
        t.ne[d] = ne[d] ? ne[d] : 1;
        if (d) rows *= t.ne[d];
    }
    uint32_t bs = ggml_blck_size(type);
    if (!bs || t.ne[0] % bs) {
        snprintf(err, errlen, "host tensor: bad type or row length");
        return -1;
    }
    t.nbytes = ggml_row_size(type, t.ne[0]) * rows;
    t.data = data;
    const struct gguf_tensor *tp = &t;
    return upload(vk, gt, &tp, 1, max_piece, tile_shift, NULL, err, errlen);
}

void nb_gtensor_destroy(struct vkx_ctx *vk, struct nb_gtensor *gt)
{
    if (gt->data.n) vkx_split_destroy(vk, &gt->data);
    memset(gt, 0, sizeof *gt);
}

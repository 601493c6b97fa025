/* gtensor.c: weight tensors on the device (see gtensor.h for the layout). */
#include "gtensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK_BYTES (4u << 20) /* repack staging: host memory used per upload step */

static bool is_quant(enum ggml_type t)
{
    return t == GGML_Q4_0 || t == GGML_Q8_0;
}
/* Bytes of one block's quants (Q4_0: 16, Q8_0: 32). */
static uint32_t qs_bytes(enum ggml_type t)
{
    return t == GGML_Q4_0 ? 16u : 32u;
}

uint64_t nb_gtensor_piece_rows(const struct nb_gtensor *gt, uint32_t i)
{
    uint64_t r0 = (uint64_t)i * gt->rows_per_piece;
    if (r0 >= gt->rows) return 0;
    uint64_t n = gt->rows - r0;
    return n < gt->rows_per_piece ? n : gt->rows_per_piece;
}

uint32_t nb_gtensor_dbase(const struct nb_gtensor *gt, uint32_t i)
{
    if (!is_quant(gt->type)) return 0;
    uint64_t nb = gt->ne[0] / 32;
    return (uint32_t)(nb_gtensor_piece_rows(gt, i) * nb * qs_bytes(gt->type) / 4);
}

/* Repacks rows [r0, r0+n) of piece `pi` (GGUF blocks at src) into the two planes. */
static void upload_quant_rows(struct vkx_ctx *vk, struct nb_gtensor *gt, uint32_t pi, uint64_t r0,
                              uint64_t n, const uint8_t *src, uint8_t *qbuf, uint8_t *dbuf)
{
    uint64_t nb = gt->ne[0] / 32, qsb = qs_bytes(gt->type), bb = qsb + 2;
    uint64_t blocks = n * nb;
    for (uint64_t b = 0; b < blocks; b++) {
        memcpy(dbuf + b * 2, src + b * bb, 2);
        memcpy(qbuf + b * qsb, src + b * bb + 2, qsb);
    }
    uint64_t prow = nb_gtensor_piece_rows(gt, pi);
    struct vkx_buffer *buf = &gt->data.b[pi];
    vkx_upload(vk, buf, r0 * nb * qsb, qbuf, (size_t)(blocks * qsb));
    vkx_upload(vk, buf, prow * nb * qsb + r0 * nb * 2, dbuf, (size_t)(blocks * 2));
}

int nb_gtensor_upload_split(struct vkx_ctx *vk, struct nb_gtensor *gt, const struct gguf_tensor *t,
                            uint64_t max_piece, char *err, size_t errlen)
{
    memset(gt, 0, sizeof *gt);
    char name[96];
    snprintf(name, sizeof name, "%.*s", (int)(t->name.n < 80 ? t->name.n : 80),
             t->name.p ? t->name.p : "");
    enum ggml_type ty = t->type;
    if (ty != GGML_F32 && ty != GGML_F16 && ty != GGML_Q4_0 && ty != GGML_Q8_0) {
        const char *tn = ggml_type_name(ty);
        snprintf(err, errlen,
                 "tensor %s: type %s is not supported on the GPU (F32, F16, Q4_0, "
                 "Q8_0)",
                 name, tn ? tn : "?");
        return -1;
    }
    uint64_t K = t->ne[0], rows = 1;
    for (int d = 1; d < GGUF_MAX_DIMS; d++)
        rows *= t->ne[d] ? t->ne[d] : 1;
    if (K == 0 || rows == 0 || K > 0x7FFFFFFFu || rows > 0xFFFFFFFFu) {
        snprintf(err, errlen, "tensor %s: shape %llu x %llu out of range", name,
                 (unsigned long long)K, (unsigned long long)rows);
        return -1;
    }
    if ((is_quant(ty) && K % 32) || (ty == GGML_F16 && K % 2)) {
        snprintf(err, errlen, "tensor %s: row length %llu does not suit type %s on the GPU", name,
                 (unsigned long long)K, ggml_type_name(ty));
        return -1;
    }
    uint64_t src_row = ggml_row_size(ty, K);
    if (!t->data || t->nbytes != src_row * rows) {
        snprintf(err, errlen, "tensor %s: %llu bytes, expected %llu", name,
                 (unsigned long long)t->nbytes, (unsigned long long)(src_row * rows));
        return -1;
    }
    uint64_t nb = K / 32;
    gt->type = ty;
    for (int d = 0; d < 4; d++)
        gt->ne[d] = t->ne[d] ? t->ne[d] : 1;
    gt->rows = rows;
    gt->row_bytes = src_row + (is_quant(ty) && (nb & 1) ? 2 : 0);
    /* 3-D tensors (experts): pieces hold whole experts. */
    uint64_t unit_rows = gt->ne[2] > 1 ? gt->ne[1] : 1;
    uint64_t unit = unit_rows * gt->row_bytes;
    uint64_t limit = max_piece ? max_piece : vk->caps.max_storage_range;
    if (limit > vk->caps.max_storage_range) limit = vk->caps.max_storage_range;
    if (unit > limit) {
        snprintf(err, errlen,
                 "tensor %s: one %s of %llu bytes exceeds the %llu-byte binding "
                 "limit",
                 name, unit_rows > 1 ? "expert" : "row", (unsigned long long)unit,
                 (unsigned long long)limit);
        return -1;
    }
    uint64_t size = rows * gt->row_bytes;
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
        vkx_split_upload(vk, &gt->data, 0, t->data, (size_t)t->nbytes);
        return 0;
    }
    uint64_t chunk_rows = CHUNK_BYTES / src_row;
    if (chunk_rows == 0) chunk_rows = 1;
    uint8_t *qbuf = malloc((size_t)(chunk_rows * nb * qs_bytes(ty)));
    uint8_t *dbuf = malloc((size_t)(chunk_rows * nb * 2));
    if (!qbuf || !dbuf) {
        free(qbuf);
        free(dbuf);
        vkx_split_destroy(vk, &gt->data);
        snprintf(err, errlen, "tensor %s: out of host memory for the repack buffer", name);
        return -1;
    }
    for (uint32_t pi = 0; pi < gt->data.n; pi++) {
        uint64_t prow = nb_gtensor_piece_rows(gt, pi);
        uint64_t g0 = (uint64_t)pi * gt->rows_per_piece;
        for (uint64_t r = 0; r < prow; r += chunk_rows) {
            uint64_t n = prow - r < chunk_rows ? prow - r : chunk_rows;
            upload_quant_rows(vk, gt, pi, r, n, t->data + (g0 + r) * src_row, qbuf, dbuf);
        }
    }
    free(qbuf);
    free(dbuf);
    return 0;
}

int nb_gtensor_upload(struct vkx_ctx *vk, struct nb_gtensor *gt, const struct gguf_tensor *t,
                      char *err, size_t errlen)
{
    return nb_gtensor_upload_split(vk, gt, t, 0, err, errlen);
}

int nb_gtensor_from_host(struct vkx_ctx *vk, struct nb_gtensor *gt, enum ggml_type type,
                         const uint64_t ne[4], const void *data, uint64_t max_piece, char *err,
                         size_t errlen)
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
    return nb_gtensor_upload_split(vk, gt, &t, max_piece, err, errlen);
}

void nb_gtensor_destroy(struct vkx_ctx *vk, struct nb_gtensor *gt)
{
    if (gt->data.n) vkx_split_destroy(vk, &gt->data);
    memset(gt, 0, sizeof *gt);
}

/* test_gtensor_file: nb_gtensor_upload_file and nb_gtensor_upload_stack, the loader's paths
 * from a mapped file.
 *
 * Tensors of every GPU type, larger than one upload chunk (4 MiB) and with an odd block count
 * per row (the padded Q4_0/Q8_0 layout), are written to a file at an offset that is not page
 * aligned, mapped, uploaded with per-chunk page release, and compared byte for byte with the
 * device layout built here and with the same bytes uploaded from host memory
 * (nb_gtensor_from_host). The mapping must still read the
 * file's bytes after its pages were released. Runs on the default context (direct writes into
 * mapped device memory on a UMA device) and with NIBBLE_DISABLE=uma (the staging path). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gtensor.h"
#include "platform.h"
#include "testutil.h"

#define PREFIX 100 /* bytes before the tensor in the file: not page aligned */

struct shape {
    enum ggml_type type;
    uint64_t K, rows, experts;
};

static const struct shape shapes[] = {
    {GGML_Q4_0, 96, 100000, 1}, /* 5.4 MB: two chunks, nb = 3 (padded rows) */
    {GGML_Q8_0, 32, 150000, 1}, /* 5.1 MB, nb = 1 */
    {GGML_Q4_0, 64, 20000, 4},  /* experts */
    {GGML_F16, 64, 40000, 1},   /* 5.1 MB, copied as is in chunks */
    {GGML_F32, 32, 40000, 1},
};

static void *download(struct vkx_ctx *vk, struct nb_gtensor *gt)
{
    void *p = malloc(gt->data.size);
    assert_non_null(p);
    vkx_split_download(vk, &gt->data, 0, p, (size_t)gt->data.size);
    return p;
}

/* The device layout of gtensor.h built here from the GGUF bytes: per piece, Q4_0/Q8_0 as a
 * quant plane then a scale plane, F16/F32 unchanged. */
static uint8_t *expected(const struct nb_gtensor *gt, const uint8_t *raw)
{
    uint8_t *w = calloc(1, gt->data.size);
    assert_non_null(w);
    uint64_t src_row = ggml_row_size(gt->type, gt->ne[0]);
    bool quant = gt->type == GGML_Q4_0 || gt->type == GGML_Q8_0;
    uint64_t nb = gt->ne[0] / 32, qsb = gt->type == GGML_Q4_0 ? 16 : 32;
    for (uint32_t i = 0; i < gt->data.n; i++) {
        uint64_t prow = nb_gtensor_piece_rows(gt, i), r0 = (uint64_t)i * gt->rows_per_piece;
        uint8_t *piece = w + (uint64_t)i * gt->data.piece;
        const uint8_t *src = raw + r0 * src_row;
        if (!quant) {
            memcpy(piece, src, (size_t)(prow * src_row));
            continue;
        }
        for (uint64_t b = 0; b < prow * nb; b++) {
            memcpy(piece + prow * nb * qsb + b * 2, src + b * (qsb + 2), 2);
            memcpy(piece + b * qsb, src + b * (qsb + 2) + 2, (size_t)qsb);
        }
    }
    return w;
}

static void run_shape(struct vkx_ctx *vk, const struct shape *s, int idx)
{
    uint64_t rows = s->rows * s->experts;
    void *raw;
    float *ref;
    nb_test_seed(100 + (uint64_t)idx);
    nb_test_weights(s->type, s->K, rows, &raw, &ref);
    free(ref);
    uint64_t nbytes = ggml_row_size(s->type, s->K) * rows;

    char path[512];
    snprintf(path, sizeof path, "%s/gtensor-file-%d.bin", NB_TEST_TMP, idx);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    char pre[PREFIX] = {0};
    assert_int_equal(fwrite(pre, 1, PREFIX, f), PREFIX);
    assert_int_equal(fwrite(raw, 1, nbytes, f), nbytes);
    assert_int_equal(fclose(f), 0);

    char err[512];
    struct plat_map m;
    assert_int_equal(plat_map_file(&m, path, err, sizeof err), 0);
    struct gguf_tensor t;
    memset(&t, 0, sizeof t);
    t.name.p = "file";
    t.name.n = 4;
    t.n_dims = s->experts > 1 ? 3 : 2;
    t.type = s->type;
    t.ne[0] = s->K;
    t.ne[1] = s->rows;
    t.ne[2] = s->experts;
    t.ne[3] = 1;
    t.offset = PREFIX;
    t.nbytes = nbytes;
    t.data = (const uint8_t *)m.data + PREFIX;

    struct nb_gtensor a, b;
    assert_int_equal(nb_gtensor_upload_file(vk, &a, &t, &m, 0, err, sizeof err), 0);
    uint64_t ne[4] = {s->K, s->rows, s->experts, 1};
    assert_int_equal(nb_gtensor_from_host(vk, &b, s->type, ne, raw, 0, err, sizeof err), 0);
    assert_int_equal(a.data.size, b.data.size);
    assert_int_equal(a.data.n, b.data.n);
    uint8_t *pa = download(vk, &a), *pb = download(vk, &b);
    uint8_t *want = expected(&a, raw);
    /* every piece but its row padding (odd block counts: 2 bytes a row at the end, unwritten) */
    uint64_t used = ggml_row_size(s->type, s->K);
    for (uint32_t i = 0; i < a.data.n; i++) {
        uint64_t at = (uint64_t)i * a.data.piece, n = nb_gtensor_piece_rows(&a, i) * used;
        for (uint64_t j = 0; j < n; j++)
            if (pa[at + j] != want[at + j] || pb[at + j] != want[at + j])
                fail_msg("shape %d (%s %llu x %llu x %llu): piece %u byte %llu of %llu: file "
                         "%u, host %u, expected %u", idx, ggml_type_name(s->type),
                         (unsigned long long)s->K, (unsigned long long)s->rows,
                         (unsigned long long)s->experts, i, (unsigned long long)j,
                         (unsigned long long)n, pa[at + j], pb[at + j], want[at + j]);
    }
    free(want);
    /* released pages read back from the file */
    assert_memory_equal(t.data, raw, (size_t)nbytes);
    free(pa);
    free(pb);
    nb_gtensor_destroy(vk, &a);
    nb_gtensor_destroy(vk, &b);
    plat_unmap(&m);
    remove(path);
    free(raw);
}

static void run_all(struct vkx_ctx *vk)
{
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        run_shape(vk, &shapes[i], (int)i);
    nb_test_check_validation();
}

static void test_upload_file(void **state)
{
    (void)state;
    struct vkx_ctx *vk = nb_test_vk();
    if (!vk) skip();
    run_all(vk);
}

static void test_upload_file_staged(void **state)
{
    (void)state;
    if (!nb_test_vk()) skip();
    struct vkx_ctx own;
    char err[512];
    struct vkx_opts o = {.device_index = -1, .validation = true, .disable = "uma"};
    if (vkx_create(&own, &o, err, sizeof err) != 0) fail_msg("context without uma: %s", err);
    run_all(&own);
    vkx_destroy(&own);
    nb_test_check_validation();
}

/* nb_gtensor_upload_stack: three tensors of one file (q, k, v of 200, 64 and 72 rows) stacked in
 * row tiles of 8 give the same bytes as the 336 rows uploaded as one, for
 * each quantized type and F16, with every chunk's file pages released; tensors that differ in
 * type, row length or whole tiles do not stack. */
static void test_upload_stack(void **state)
{
    (void)state;
    struct vkx_ctx *vk = nb_test_vk();
    if (!vk) skip();
    static const enum ggml_type types[] = {GGML_Q4_0, GGML_Q8_0, GGML_F16};
    const uint64_t K = 96, part_rows[3] = {200, 64, 72}, rows = 336;
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        void *raw;
        float *ref;
        nb_test_seed(300 + ti);
        nb_test_weights(types[ti], K, rows, &raw, &ref);
        free(ref);
        uint64_t row = ggml_row_size(types[ti], K), nbytes = row * rows;
        char path[512], err[512];
        snprintf(path, sizeof path, "%s/gtensor-stack.bin", NB_TEST_TMP);
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(raw, 1, nbytes, f), nbytes);
        assert_int_equal(fclose(f), 0);
        struct plat_map m;
        assert_int_equal(plat_map_file(&m, path, err, sizeof err), 0);
        struct gguf_tensor t[3];
        const struct gguf_tensor *tp[3];
        uint64_t at = 0;
        for (int i = 0; i < 3; i++) {
            memset(&t[i], 0, sizeof t[i]);
            t[i].name.p = "part";
            t[i].name.n = 4;
            t[i].n_dims = 2;
            t[i].type = types[ti];
            t[i].ne[0] = K;
            t[i].ne[1] = part_rows[i];
            t[i].ne[2] = t[i].ne[3] = 1;
            t[i].offset = at;
            t[i].nbytes = part_rows[i] * row;
            t[i].data = (const uint8_t *)m.data + at;
            at += t[i].nbytes;
            tp[i] = &t[i];
        }
        assert_true(nb_gtensor_can_stack(tp, 3, 3));
        struct nb_gtensor a, b;
        assert_int_equal(nb_gtensor_upload_stack(vk, &a, tp, 3, &m, 3, err, sizeof err), 0);
        uint64_t ne[4] = {K, rows, 1, 1};
        assert_int_equal(nb_gtensor_from_host_tiled(vk, &b, types[ti], ne, raw, 0, 3, err,
                                                    sizeof err), 0);
        assert_int_equal(a.rows, rows);
        assert_int_equal(a.ne[1], rows);
        assert_int_equal(a.tile_shift, b.tile_shift);
        assert_int_equal(a.data.size, b.data.size);
        uint8_t *pa = download(vk, &a), *pb = download(vk, &b);
        /* both planes (336 rows are whole tiles), not the unwritten padding after them */
        uint64_t used = types[ti] == GGML_F16 ? nbytes : rows * (K / 32) * (row / (K / 32));
        assert_memory_equal(pa, pb, (size_t)used);
        assert_memory_equal(t[0].data, raw, (size_t)nbytes); /* released pages read back */
        free(pa);
        free(pb);
        nb_gtensor_destroy(vk, &a);
        nb_gtensor_destroy(vk, &b);

        /* what does not stack: rows not whole tiles (quantized types), another row length,
         * another type, a 3-D part */
        t[2].ne[1] = 70;
        assert_true(nb_gtensor_can_stack(tp, 3, 3) == (types[ti] == GGML_F16));
        t[2].ne[1] = 72;
        t[1].ne[0] = K * 2;
        assert_false(nb_gtensor_can_stack(tp, 3, 0));
        t[1].ne[0] = K;
        t[1].type = types[ti] == GGML_F16 ? GGML_F32 : GGML_F16;
        assert_false(nb_gtensor_can_stack(tp, 3, 0));
        t[1].type = types[ti];
        t[1].n_dims = 3;
        assert_false(nb_gtensor_can_stack(tp, 3, 0));
        plat_unmap(&m);
        remove(path);
        free(raw);
    }
    nb_test_check_validation();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_upload_file),
        cmocka_unit_test(test_upload_file_staged),
        cmocka_unit_test(test_upload_stack),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    nb_test_vk_done();
    return rc;
}

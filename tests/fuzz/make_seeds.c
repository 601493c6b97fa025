/* make_seeds: writes the fuzz_gguf seed corpus, a few small valid GGUF files built with
 * tests/gguf_writer.c, into the folder given as argv[1]. */
#include <stdio.h>
#include <string.h>

#include "gguf_writer.h"

static int save(struct gw *w, const char *dir, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int rc = gw_write_file(w, path);
    gw_destroy(w);
    if (rc) fprintf(stderr, "make_seeds: cannot write %s\n", path);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds DIR\n");
        return 2;
    }
    const char *dir = argv[1];
    float x[256];
    for (int i = 0; i < 256; i++) x[i] = (float)((i * 37) % 101) / 25.0f - 2.0f;
    int rc = 0;

    /* Every tensor type nibble dequantizes, plus one it only describes. */
    struct gw *w = gw_create();
    gw_kv_str(w, "general.architecture", "gemma4");
    gw_kv_u32(w, "gemma4.block_count", 1);
    gw_tensor_f32(w, "f32", GGML_F32, 2, (uint64_t[]){8, 2}, x);
    gw_tensor_f32(w, "f16", GGML_F16, 1, (uint64_t[]){8}, x);
    gw_tensor_f32(w, "bf16", GGML_BF16, 1, (uint64_t[]){8}, x);
    gw_tensor_f32(w, "q4_0", GGML_Q4_0, 2, (uint64_t[]){32, 2}, x);
    gw_tensor_f32(w, "q8_0", GGML_Q8_0, 3, (uint64_t[]){32, 1, 2}, x);
    gw_tensor(w, "q6_k", GGML_Q6_K, 1, (uint64_t[]){256}, NULL);
    rc |= save(w, dir, "types.gguf");

    /* Every metadata type. */
    w = gw_create();
    static const char *const toks[] = {"<pad>", "<eos>", "a", "bc", ""};
    int32_t i32s[4] = {1, -2, 3, 4};
    uint8_t bools[3] = {1, 0, 1};
    gw_kv_u8(w, "u8", 1), gw_kv_i8(w, "i8", -1), gw_kv_u16(w, "u16", 2), gw_kv_i16(w, "i16", -2);
    gw_kv_u32(w, "u32", 3), gw_kv_i32(w, "i32", -3), gw_kv_u64(w, "u64", 4), gw_kv_i64(w, "i64", -4);
    gw_kv_f32(w, "f32", 0.5f), gw_kv_f64(w, "f64", 0.25), gw_kv_bool(w, "bool", true);
    gw_kv_str(w, "str", "gemma4");
    gw_kv_arr(w, "arr.i32", GGUF_I32, i32s, 4);
    gw_kv_arr(w, "arr.bool", GGUF_BOOL, bools, 3);
    gw_kv_arr(w, "arr.f32", GGUF_F32, x, 4);
    gw_kv_arr_str(w, "arr.str", toks, 5);
    rc |= save(w, dir, "kv.gguf");

    /* Alignment 64, version 2. */
    w = gw_create();
    gw_set_version(w, 2);
    gw_set_alignment(w, 64);
    gw_kv_u32(w, "general.alignment", 64);
    gw_tensor_f32(w, "a", GGML_F32, 1, (uint64_t[]){4}, x);
    gw_tensor_f32(w, "b", GGML_Q4_0, 4, (uint64_t[]){32, 1, 1, 1}, x);
    rc |= save(w, dir, "align64-v2.gguf");

    /* A gemma-like miniature: the key and tensor names a model file has. */
    w = gw_create();
    gw_kv_str(w, "general.architecture", "gemma4");
    gw_kv_u32(w, "general.alignment", 32);
    gw_kv_u32(w, "gemma4.embedding_length", 32);
    gw_kv_arr(w, "gemma4.attention.head_count_kv", GGUF_I32, i32s, 2);
    gw_kv_f32(w, "gemma4.attention.layer_norm_rms_epsilon", 1e-6f);
    gw_kv_arr_str(w, "tokenizer.ggml.tokens", toks, 4);
    gw_tensor_f32(w, "token_embd.weight", GGML_Q4_0, 2, (uint64_t[]){32, 4}, x);
    gw_tensor_f32(w, "blk.0.attn_norm.weight", GGML_F32, 1, (uint64_t[]){32}, x);
    gw_tensor_f32(w, "blk.0.attn_q.weight", GGML_Q8_0, 2, (uint64_t[]){32, 2}, x);
    rc |= save(w, dir, "mini-model.gguf");

    rc |= save(gw_create(), dir, "empty.gguf");
    return rc ? 1 : 0;
}

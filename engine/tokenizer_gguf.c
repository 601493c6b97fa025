/* tokenizer_gguf: builds a struct nb_tok from the tokenizer.ggml.* keys of a GGUF file. */
#include <stdio.h>
#include <stdlib.h>

#include "gguf.h"
#include "tokenizer.h"

/* The strings of a string array key; NULL (with err set) when absent or of the wrong type. */
static const struct gguf_str *str_array(const struct gguf *g, const char *key, uint32_t *n,
                                        char *err, size_t errlen)
{
    static const struct gguf_str none = {"", 0};
    const struct gguf_kv *kv = gguf_find(g, key);
    *n = 0;
    if (!kv) {
        snprintf(err, errlen, "tokenizer: %s missing", key);
        return NULL;
    }
    if (kv->type != GGUF_ARRAY || kv->arr_type != GGUF_STRING || (kv->arr_n && !kv->strs)) {
        snprintf(err, errlen, "tokenizer: %s is not an array of strings", key);
        return NULL;
    }
    if (kv->arr_n >= INT32_MAX) {
        snprintf(err, errlen, "tokenizer: %s has too many entries (%llu)", key,
                 (unsigned long long)kv->arr_n);
        return NULL;
    }
    *n = (uint32_t)kv->arr_n;
    return kv->arr_n ? kv->strs : &none;
}

static int32_t token_id(const struct gguf *g, const char *key)
{
    uint32_t v;
    return gguf_get_u32(g, key, &v) || v >= INT32_MAX ? -1 : (int32_t)v;
}

struct nb_tok *nb_tok_from_gguf(const struct gguf *g, char *err, size_t errlen)
{
    const struct gguf_kv *model = gguf_find(g, "tokenizer.ggml.model");
    const struct gguf_kv *pre = gguf_find(g, "tokenizer.ggml.pre");
    if (!model || model->type != GGUF_STRING) {
        snprintf(err, errlen, "tokenizer: no tokenizer in the file (tokenizer.ggml.model missing)");
        return NULL;
    }
    bool pre_gemma4 = pre && pre->type == GGUF_STRING && gguf_str_eq(pre->v.str, "gemma4");
    if (!gguf_str_eq(model->v.str, "gemma4") && !(gguf_str_eq(model->v.str, "llama") && pre_gemma4)) {
        snprintf(err, errlen, "tokenizer: unsupported tokenizer model '%.*s' (nibble reads gemma4)",
                 (int)(model->v.str.n < 64 ? model->v.str.n : 64), model->v.str.p);
        return NULL;
    }

    struct nb_tok_vocab v = {.model = NB_TOK_MODEL_GEMMA4};
    int32_t *types = NULL;
    struct nb_tok *t = NULL;
    v.tokens = str_array(g, "tokenizer.ggml.tokens", &v.n_tokens, err, errlen);
    if (!v.tokens) goto done;
    v.merges = str_array(g, "tokenizer.ggml.merges", &v.n_merges, err, errlen);
    if (!v.merges) goto done;

    const struct gguf_kv *tt = gguf_find(g, "tokenizer.ggml.token_type");
    if (tt) {
        enum gguf_vtype at = tt->arr_type;
        bool integer = at == GGUF_U8 || at == GGUF_I8 || at == GGUF_U16 || at == GGUF_I16 ||
                       at == GGUF_U32 || at == GGUF_I32 || at == GGUF_U64 || at == GGUF_I64;
        if (tt->type != GGUF_ARRAY || !integer || tt->arr_n < v.n_tokens) {
            snprintf(err, errlen, "tokenizer: token_type is not an integer array of %u entries",
                     v.n_tokens);
            goto done;
        }
        types = malloc(sizeof *types * v.n_tokens);
        if (!types) {
            snprintf(err, errlen, "tokenizer: out of memory");
            goto done;
        }
        for (uint32_t i = 0; i < v.n_tokens; i++) {
            uint32_t ty; /* negative or unknown types are UNDEFINED, as in llama.cpp */
            types[i] = !gguf_get_arr_u32(tt, i, &ty) && ty <= NB_TOK_BYTE ? (int32_t)ty
                                                                           : NB_TOK_UNDEFINED;
        }
    }
    v.types = types;
    v.bos = token_id(g, "tokenizer.ggml.bos_token_id");
    v.eos = token_id(g, "tokenizer.ggml.eos_token_id");
    v.unk = token_id(g, "tokenizer.ggml.unknown_token_id");
    v.pad = token_id(g, "tokenizer.ggml.padding_token_id");
    v.add_bos = true; /* llama.cpp forces it for gemma4; tokenizer.ggml.add_bos_token says true */
    t = nb_tok_create(&v, err, errlen);
done:
    free(types);
    return t;
}

/* libFuzzer target for the tokenizer (engine/tokenizer.c) on a small built-in vocabulary:
 * encoding any bytes must not crash, must agree with itself when the output buffer is too
 * small, and decoding must give strict UTF-8 text (without a literal ▁) back exactly.
 * The first input byte picks the flags; the rest is the text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "tokenizer.h"

static struct nb_tok *tok;

static struct nb_tok *make_vocab(void)
{
    static const char *const normal[] = {"\xe2\x96\x81", "a", "b", "c", "ab", "bc", "abc",
                                         ("\xe2\x96\x81" "ab"), "\n", "\n\n", "aa", "<", ">",
                                         "\xef\xbf\xbd", "\xc3\xa9", "\xe4\xb8\xad"};
    static const char *const merges[] = {"a b", "b c", "ab c", "\xe2\x96\x81 ab", "\n \n", "a a"};
    static const char *const special[] = {"<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>",
                                          "<end_of_turn>", "<turn|>", "<|turn>", "<u>"};
    enum { NS = 9, NN = 16, NM = 6, N = NS + 256 + NN };
    static struct gguf_str toks[N], mer[NM];
    static int32_t types[N];
    static char bytes[256][8];
    for (int i = 0; i < NS; i++) {
        toks[i] = (struct gguf_str){special[i], strlen(special[i])};
        types[i] = i == NS - 1 ? NB_TOK_USER_DEFINED : i == 3 ? NB_TOK_UNKNOWN : NB_TOK_CONTROL;
    }
    for (int b = 0; b < 256; b++) {
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        toks[NS + b] = (struct gguf_str){bytes[b], 6};
        types[NS + b] = NB_TOK_BYTE;
    }
    for (int i = 0; i < NN; i++) {
        toks[NS + 256 + i] = (struct gguf_str){normal[i], strlen(normal[i])};
        types[NS + 256 + i] = NB_TOK_NORMAL;
    }
    for (int i = 0; i < NM; i++) mer[i] = (struct gguf_str){merges[i], strlen(merges[i])};
    struct nb_tok_vocab v = {.model = NB_TOK_MODEL_GEMMA4, .n_tokens = N, .tokens = toks,
                             .types = types, .n_merges = NM, .merges = mer, .bos = 2, .eos = 1,
                             .unk = 3, .pad = 0, .add_bos = true};
    char err[256];
    struct nb_tok *t = nb_tok_create(&v, err, sizeof err);
    if (!t) {
        fprintf(stderr, "%s\n", err);
        abort();
    }
    return t;
}

/* Strict UTF-8 without ▁: the texts that must come back exactly. */
static int round_trips(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t l = p[i] < 0x80 ? 1 : p[i] >= 0xc2 && p[i] < 0xe0 ? 2 : p[i] >= 0xe0 && p[i] < 0xf0 ? 3
                                   : p[i] >= 0xf0 && p[i] < 0xf5 ? 4 : 0;
        if (!l || i + l > n) return 0;
        for (size_t k = 1; k < l; k++)
            if ((p[i + k] & 0xc0) != 0x80) return 0;
        if ((l == 3 && p[i] == 0xe0 && p[i + 1] < 0xa0) || (l == 3 && p[i] == 0xed && p[i + 1] >= 0xa0) ||
            (l == 4 && p[i] == 0xf0 && p[i + 1] < 0x90) || (l == 4 && p[i] == 0xf4 && p[i + 1] >= 0x90) ||
            (l == 3 && p[i] == 0xe2 && p[i + 1] == 0x96 && p[i + 2] == 0x81))
            return 0;
        i += l;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!tok) tok = make_vocab();
    if (!size) return 0;
    unsigned flags = data[0] & 3;
    const char *text = (const char *)data + 1;
    size_t len = size - 1, cap = nb_tok_max_ids(len);
    int32_t *ids = malloc(sizeof *ids * cap), few[3];
    int64_t n = nb_tok_encode(tok, text, len, flags, ids, cap);
    if (n < 0 || (size_t)n > cap) abort();
    int64_t m = nb_tok_encode(tok, text, len, flags, few, 3);
    if (m != n || memcmp(few, ids, sizeof *ids * (size_t)(n < 3 ? n : 3))) abort();
    size_t skip = (flags & NB_TOK_ADD_SPECIAL) ? 1 : 0;
    size_t need = nb_tok_decode(tok, ids + skip, (size_t)n - skip, NULL, 0, NB_TOK_RENDER_SPECIAL);
    char *out = malloc(need + 1);
    if (nb_tok_decode(tok, ids + skip, (size_t)n - skip, out, need + 1, NB_TOK_RENDER_SPECIAL) != need)
        abort();
    /* without PARSE_SPECIAL a control token's text is spelled in bytes: still a round trip */
    if (round_trips(data + 1, len) && (need != len || memcmp(out, text, len))) abort();
    free(out);
    free(ids);
    return 0;
}

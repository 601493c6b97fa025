/* tokenizer: the Gemma 4 tokenizer (llama.cpp's `gemma4` BPE), text <-> token ids.
 *
 * What it does, in order (llama.cpp's behaviour is the reference):
 *   1. special tokens (types CONTROL, USER_DEFINED, UNKNOWN) are cut out of the text first, the
 *      longest token texts first, and emitted as their ids (only with NB_TOK_PARSE_SPECIAL);
 *   2. each remaining piece of text: spaces become U+2581 "▁", the bytes are read as UTF-8 (an
 *      invalid byte becomes U+FFFD, like llama.cpp), then split into runs of '\n' and runs of
 *      everything else;
 *   3. each run is merged by BPE: start from single characters, repeatedly merge the adjacent
 *      pair with the lowest merge rank (leftmost first on ties). A run made only of newlines that
 *      is itself a token stays whole. A final piece that is not a token becomes <0xXX> byte
 *      tokens (byte fallback);
 *   4. BOS first when NB_TOK_ADD_SPECIAL and the model asks for it (always for gemma4).
 *
 * The core takes plain arrays (struct nb_tok_vocab) so it can be tested without a GGUF file;
 * nb_tok_from_gguf reads the tokenizer.ggml.* keys. The tokenizer copies what it needs: the
 * vocabulary (or GGUF file) can be freed once nb_tok_create returns.
 *
 * Threading: a struct nb_tok is read-only after creation; encode/decode from any thread.
 */
#ifndef NB_TOKENIZER_H
#define NB_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gguf;
struct gguf_str; /* { const char *p; uint64_t n; } from gguf.h: a string, not NUL-terminated */

/* Token types, the values of tokenizer.ggml.token_type (llama.cpp's llama_token_type). */
enum nb_tok_type {
    NB_TOK_UNDEFINED = 0,
    NB_TOK_NORMAL = 1,
    NB_TOK_UNKNOWN = 2,
    NB_TOK_CONTROL = 3,
    NB_TOK_USER_DEFINED = 4,
    NB_TOK_UNUSED = 5,
    NB_TOK_BYTE = 6,
};

/* Tokenizer algorithms. Only gemma4 today. */
enum nb_tok_model { NB_TOK_MODEL_GEMMA4 = 0 };

/* Everything the tokenizer is built from; all pointers are read during nb_tok_create only.
 * Strings are struct gguf_str (gguf.h) so the arrays of a GGUF file pass without a copy. */
struct nb_tok_vocab {
    enum nb_tok_model model;
    uint32_t n_tokens;
    const struct gguf_str *tokens;    /* [n_tokens] token text (▁ for spaces, "<0x0A>" bytes) */
    const float *scores;             /* [n_tokens] or NULL: not used by gemma4 BPE */
    const int32_t *types;            /* [n_tokens] enum nb_tok_type, or NULL: all NORMAL */
    uint32_t n_merges;
    const struct gguf_str *merges;    /* [n_merges] "left right"; rank = index, lowest first */
    int32_t bos, eos, unk, pad;      /* ids, or -1 when the model has none */
    bool add_bos;                    /* forced true for gemma4, as llama.cpp does */
};

struct nb_tok;

/* Builds a tokenizer. NULL on error with one line in err (bad ids, out of memory). */
struct nb_tok *nb_tok_create(const struct nb_tok_vocab *v, char *err, size_t errlen);
/* Reads tokenizer.ggml.{model,pre,tokens,scores,token_type,merges,*_token_id,add_bos_token}.
 * Accepts model "gemma4", and "llama" with pre "gemma4" (what Ollama writes). */
struct nb_tok *nb_tok_from_gguf(const struct gguf *g, char *err, size_t errlen);
void nb_tok_destroy(struct nb_tok *t);

/* Encode flags. llama.cpp's `tokenize TEXT` (and nibble's) uses both. */
#define NB_TOK_ADD_SPECIAL 1u   /* BOS first, when the model asks for it */
#define NB_TOK_PARSE_SPECIAL 2u /* "<start_of_turn>" etc. in the text become their ids */

/* Upper bound on the ids nb_tok_encode makes from len bytes of text (BOS included). */
size_t nb_tok_max_ids(size_t len);
/* Tokenizes text[0..len). Returns the number of ids the text makes; writes the first
 * min(that, cap) into ids. -1 only when out of memory or len > 1 GiB. Any bytes are accepted
 * (invalid UTF-8 and NULs included); text may be NULL when len is 0. */
int64_t nb_tok_encode(const struct nb_tok *t, const char *text, size_t len, unsigned flags,
                      int32_t *ids, size_t cap);

/* Decode flag: CONTROL and UNKNOWN tokens ("<bos>", "<start_of_turn>") render as their text;
 * without it they render as nothing. USER_DEFINED tokens always render as their text. */
#define NB_TOK_RENDER_SPECIAL 1u

/* The bytes of one token: ▁ becomes a space, a byte token its single byte. Writes at most n
 * bytes (no NUL) and returns the piece's full length, or -1 for an id out of range. */
int nb_tok_piece(const struct nb_tok *t, int32_t id, char *buf, size_t n, unsigned flags);
/* Concatenates the pieces of ids[0..n) (ids out of range are skipped), so byte tokens join back
 * into whole UTF-8 characters. Writes at most size-1 bytes plus a NUL (when size > 0) and
 * returns the full length, like snprintf. */
size_t nb_tok_decode(const struct nb_tok *t, const int32_t *ids, size_t n, char *buf, size_t size,
                     unsigned flags);

uint32_t nb_tok_n_vocab(const struct nb_tok *t);
int32_t nb_tok_bos(const struct nb_tok *t); /* -1 if none */
int32_t nb_tok_eos(const struct nb_tok *t);
bool nb_tok_add_bos(const struct nb_tok *t);
/* End of generation: EOS and the tokens llama.cpp treats so ("<eos>", "<end_of_turn>",
 * "<turn|>", "<|tool_response>", ...). */
bool nb_tok_is_eog(const struct nb_tok *t, int32_t id);
/* Type of a token (after llama.cpp's fix-ups, e.g. EOG texts become CONTROL); UNDEFINED for an
 * id out of range. */
enum nb_tok_type nb_tok_type(const struct nb_tok *t, int32_t id);
/* The raw vocabulary text of a token (▁ not replaced, not NUL-terminated); NULL if out of range. */
const char *nb_tok_text(const struct nb_tok *t, int32_t id, size_t *len);
/* The id whose text is exactly s[0..n), or -1. */
int32_t nb_tok_find(const struct nb_tok *t, const char *s, size_t n);

#endif

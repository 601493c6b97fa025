/* chatfmt: the Gemma 4 chat turn format, one place for `run --chat`, `chat` and `serve`:
 *
 *     <bos><|turn>system\nTEXT<turn|>\n<|turn>user\nTEXT<turn|>\n<|turn>model\nTEXT<turn|>\n
 *     ... <|turn>model\n                                  (the reply follows; <turn|> ends it)
 *
 * The tokenizer adds <bos>; roles are "system", "user" and "model". */
#ifndef NB_CHATFMT_H
#define NB_CHATFMT_H

#include <stddef.h>

#include "strbuf.h"

#define CHATFMT_OPEN "<|turn>"
#define CHATFMT_CLOSE "<turn|>\n"
#define CHATFMT_REPLY "<|turn>model\n"

/* Appends one whole turn: <|turn>ROLE\nTEXT<turn|>\n. */
void chatfmt_turn(struct strbuf *b, const char *role, const char *text, size_t n);
/* A single user turn and the opening of the model's reply (malloc'd; NULL when out of memory). */
char *chatfmt_user_prompt(const char *text);

#endif

/* chatfmt.c: see chatfmt.h. */
#include "chatfmt.h"

#include <string.h>

void chatfmt_turn(struct strbuf *b, const char *role, const char *text, size_t n)
{
    sb_adds(b, CHATFMT_OPEN);
    sb_adds(b, role);
    sb_adds(b, "\n");
    sb_add(b, text, n);
    sb_adds(b, CHATFMT_CLOSE);
}

char *chatfmt_user_prompt(const char *text)
{
    struct strbuf b = {0};
    chatfmt_turn(&b, "user", text, strlen(text));
    sb_adds(&b, CHATFMT_REPLY);
    if (b.oom) sb_free(&b);
    return b.s;
}

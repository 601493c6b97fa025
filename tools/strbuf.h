/* strbuf: a growable byte string for the tools (chat transcripts, JSON bodies, SSE frames).
 * Always NUL-terminated once anything was added; an allocation failure sets oom and later adds
 * do nothing, so callers check oom once at the end. */
#ifndef NB_STRBUF_H
#define NB_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

struct strbuf {
    char *s;    /* [cap] bytes, s[n] == 0 (NULL until the first add) */
    size_t n;   /* bytes held, without the NUL */
    size_t cap;
    bool oom;
};

void sb_add(struct strbuf *b, const void *p, size_t n);
void sb_adds(struct strbuf *b, const char *s);
void sb_printf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Keeps the first n bytes (n <= b->n). */
void sb_cut(struct strbuf *b, size_t n);
void sb_free(struct strbuf *b);

/* The length of the longest prefix of s[0..n) that ends on a UTF-8 character boundary: bytes of
 * a multi-byte character still incomplete at the end are held back (a broken sequence is not). */
size_t utf8_complete(const char *s, size_t n);
/* 1 when s[0..n) is well-formed UTF-8 (no overlongs, surrogates or code points above U+10FFFF). */
bool utf8_valid(const char *s, size_t n);
/* Appends s[0..n) with each ill-formed byte replaced by U+FFFD. */
void sb_add_utf8(struct strbuf *b, const char *s, size_t n);

#endif

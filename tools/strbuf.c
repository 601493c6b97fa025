/* strbuf.c: see strbuf.h. */
#include "strbuf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool grow(struct strbuf *b, size_t more)
{
    if (b->oom) return false;
    if (b->n + more + 1 <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + more + 1) {
        if (cap > SIZE_MAX / 2) {
            b->oom = true;
            return false;
        }
        cap *= 2;
    }
    char *s = realloc(b->s, cap);
    if (!s) {
        b->oom = true;
        return false;
    }
    b->s = s;
    b->cap = cap;
    return true;
}

void sb_add(struct strbuf *b, const void *p, size_t n)
{
    if (!grow(b, n)) return;
    if (n) memcpy(b->s + b->n, p, n);
    b->n += n;
    b->s[b->n] = 0;
}

void sb_adds(struct strbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

void sb_printf(struct strbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (k < 0 || !grow(b, (size_t)k)) return;
    va_start(ap, fmt);
    vsnprintf(b->s + b->n, (size_t)k + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)k;
}

void sb_cut(struct strbuf *b, size_t n)
{
    if (n < b->n) {
        b->n = n;
        b->s[n] = 0;
    }
}

void sb_free(struct strbuf *b)
{
    free(b->s);
    memset(b, 0, sizeof *b);
}

/* The length of the well-formed UTF-8 sequence at s[0..n): 1..4, 0 when ill-formed, and -k when
 * s holds the first k < 4 bytes of one that may still complete. */
static int seq_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    int len;
    unsigned lo = 0x80, hi = 0xBF; /* the range of the second byte */
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else
        return 0;
    for (int i = 1; i < len; i++) {
        if ((size_t)i >= n) return -i;
        if (s[i] < (i == 1 ? lo : 0x80) || s[i] > (i == 1 ? hi : 0xBF)) return 0;
    }
    return len;
}

size_t utf8_complete(const char *s, size_t n)
{
    size_t back = n > 3 ? n - 3 : 0;
    for (size_t i = n; i > back; i--) {
        const unsigned char *p = (const unsigned char *)s + i - 1;
        if (*p < 0x80) return n;                    /* ASCII: complete */
        if (*p >= 0xC0) return seq_len(p, n - (i - 1)) < 0 ? i - 1 : n; /* a lead byte */
    }
    return n;
}

bool utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        int k = seq_len(p + i, n - i);
        if (k <= 0) return false;
        i += (size_t)k;
    }
    return true;
}

void sb_add_utf8(struct strbuf *b, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t run = 0; /* start of the well-formed run being collected */
    for (size_t i = 0; i < n;) {
        int k = seq_len(p + i, n - i);
        if (k > 0) {
            i += (size_t)k;
            continue;
        }
        sb_add(b, s + run, i - run);
        sb_adds(b, "\xEF\xBF\xBD");
        run = ++i;
    }
    sb_add(b, s + run, n - run);
}

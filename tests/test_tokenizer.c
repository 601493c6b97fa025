/* Tests for the Gemma 4 tokenizer (engine/tokenizer.h): BPE rules on tiny hand-made vocabularies,
 * then the real 262,144-token vocabulary (gemma-vocab.gguf) against ids from llama.cpp:
 *   tokenizer-cases.txt/.ids  the golden cases (escapes such as \n are literal text there);
 *   tokenizer-extra.txt/.ids  harder cases generated with the llama.cpp peer; in this file the
 *                             escapes \n \t \r \\ \xHH ARE decoded (runs of newlines, invalid
 *                             UTF-8), everything else is literal UTF-8;
 *   tokenizer-random.txt/.ids 150 random mixes (specials, CJK, emoji, ▁, spaces, newlines,
 *                             random bytes), same escapes, ids from the llama.cpp peer;
 *   tokenizer-dense.txt/.ids  the same for the 1024-token vocabulary of dense.gguf.
 * Plus round trips, every special token, NUL bytes, speed and a CLI smoke check. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gguf.h"
#include "platform.h"
#include "testutil.h"
#include "tokenizer.h"

#define ALL (NB_TOK_ADD_SPECIAL | NB_TOK_PARSE_SPECIAL)

/* ---- helpers ---------------------------------------------------------------------------- */

/* Encodes and returns a malloc'd array (count in *n). */
static int32_t *enc(const struct nb_tok *t, const char *s, size_t len, unsigned flags, size_t *n)
{
    size_t cap = nb_tok_max_ids(len);
    int32_t *ids = malloc(sizeof *ids * cap);
    assert_non_null(ids);
    int64_t k = nb_tok_encode(t, s, len, flags, ids, cap);
    assert_true(k >= 0 && (size_t)k <= cap);
    *n = (size_t)k;
    return ids;
}

static void expect_ids(const struct nb_tok *t, const char *s, unsigned flags, const int32_t *want,
                       size_t nwant)
{
    size_t n;
    int32_t *ids = enc(t, s, strlen(s), flags, &n);
    bool ok = n == nwant && !memcmp(ids, want, n * sizeof *ids);
    if (!ok) {
        fprintf(stderr, "text '%s': got", s);
        for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, ", want");
        for (size_t i = 0; i < nwant; i++) fprintf(stderr, " %d", want[i]);
        fprintf(stderr, "\n");
    }
    free(ids);
    assert_true(ok);
}
#define EXPECT(t, s, flags, ...)                                                                   \
    do {                                                                                           \
        const int32_t w_[] = {__VA_ARGS__};                                                        \
        expect_ids(t, s, flags, w_, sizeof w_ / sizeof w_[0]);                                     \
    } while (0)

/* Decodes ids and checks the result is exactly want[0..wn). */
static void expect_decode(const struct nb_tok *t, const int32_t *ids, size_t n, unsigned flags,
                          const char *want, size_t wn)
{
    size_t need = nb_tok_decode(t, ids, n, NULL, 0, flags);
    char *buf = malloc(need + 1);
    assert_non_null(buf);
    assert_int_equal(nb_tok_decode(t, ids, n, buf, need + 1, flags), need);
    bool ok = need == wn && !memcmp(buf, want, wn);
    if (!ok) fprintf(stderr, "decode: got '%.*s' (%zu), want '%.*s' (%zu)\n", (int)need, buf, need,
                     (int)wn, want, wn);
    free(buf);
    assert_true(ok);
}

/* ---- a tiny hand-made vocabulary -------------------------------------------------------- */

#define SP "\xe2\x96\x81" /* ▁ */

static struct nb_tok *tiny(const char *const *extra, size_t n_extra, const char *const *merges,
                           size_t n_merges)
{
    /* 0..4 control, 5 user-defined, 6..261 bytes <0x00>..<0xFF>, then the extra normal tokens */
    static const char *const head[] = {"<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>",
                                       "<start>"};
    size_t n = 6 + 256 + n_extra;
    struct gguf_str *tok = calloc(n, sizeof *tok);
    int32_t *types = calloc(n, sizeof *types);
    struct gguf_str *mer = calloc(n_merges + 1, sizeof *mer);
    char(*bytes)[8] = calloc(256, 8);
    assert_true(tok && types && mer && bytes);
    for (int i = 0; i < 6; i++) {
        tok[i] = (struct gguf_str){head[i], strlen(head[i])};
        types[i] = i == 5 ? NB_TOK_USER_DEFINED : NB_TOK_CONTROL;
    }
    for (int b = 0; b < 256; b++) {
        snprintf(bytes[b], 8, "<0x%02X>", b);
        tok[6 + b] = (struct gguf_str){bytes[b], 6};
        types[6 + b] = NB_TOK_BYTE;
    }
    for (size_t i = 0; i < n_extra; i++) {
        tok[262 + i] = (struct gguf_str){extra[i], strlen(extra[i])};
        types[262 + i] = NB_TOK_NORMAL;
    }
    for (size_t i = 0; i < n_merges; i++) mer[i] = (struct gguf_str){merges[i], strlen(merges[i])};
    struct nb_tok_vocab v = {.model = NB_TOK_MODEL_GEMMA4, .n_tokens = (uint32_t)n, .tokens = tok,
                             .types = types, .n_merges = (uint32_t)n_merges, .merges = mer,
                             .bos = 2, .eos = 1, .unk = 3, .pad = 0, .add_bos = true};
    char err[256] = "";
    struct nb_tok *t = nb_tok_create(&v, err, sizeof err);
    if (!t) fprintf(stderr, "%s\n", err);
    assert_non_null(t);
    free(tok); /* the tokenizer keeps its own copies */
    free(types);
    free(mer);
    free(bytes);
    return t;
}

/* extra token ids start at 262 */
enum { A = 262, B, C, S, AB, BC, ABC, SAB, NL, NL2, AA, CC };
static const char *const tiny_tokens[] = {"a", "b", "c", SP, "ab", "bc", "abc", SP "ab", "\n",
                                          "\n\n", "aa", "cc"};

static void test_tiny_bpe(void **state)
{
    (void)state;
    /* "a b" ranks before "b c": abc -> ab c -> abc */
    const char *m1[] = {"a b", "b c", "ab c", SP " ab", "a a"};
    struct nb_tok *t = tiny(tiny_tokens, 12, m1, 5);
    EXPECT(t, "abc", 0, ABC);
    EXPECT(t, "abc", ALL, 2, ABC);
    EXPECT(t, "bc", 0, BC);
    EXPECT(t, " ab c", 0, SAB, S, C);         /* spaces become ▁ and merge */
    EXPECT(t, "aaa", 0, AA, A);               /* equal ranks: leftmost first */
    EXPECT(t, "aaaa", 0, AA, AA);
    EXPECT(t, "abz", 0, AB, 6 + 'z');         /* byte fallback */
    EXPECT(t, "\xc3\xa9", 0, 6 + 0xc3, 6 + 0xa9); /* a 2-byte character with no token */
    EXPECT(t, "\xff", 0, 6 + 0xef, 6 + 0xbf, 6 + 0xbd); /* invalid byte -> U+FFFD -> bytes */
    EXPECT(t, "", ALL, 2);
    assert_int_equal(nb_tok_encode(t, "", 0, 0, NULL, 0), 0);
    nb_tok_destroy(t);

    /* "b c" ranks first: abc -> a bc, and "a bc" is no merge */
    const char *m2[] = {"b c", "a b", "ab c"};
    t = tiny(tiny_tokens, 12, m2, 3);
    EXPECT(t, "abc", 0, A, BC);
    EXPECT(t, "abcc", 0, A, BC, C);
    nb_tok_destroy(t);
}

static void test_tiny_newlines_specials(void **state)
{
    (void)state;
    const char *m[] = {"a b", "b c", "ab c", SP " ab", "\n \n", "a a"};
    struct nb_tok *t = tiny(tiny_tokens, 12, m, 6);
    /* newline runs are their own words: no merge crosses them */
    EXPECT(t, "a\nb", 0, A, NL, B);
    EXPECT(t, "ab\n\nc", 0, AB, NL2, C);
    EXPECT(t, "\n\n\n", 0, NL2, NL); /* not a token: BPE inside the run */
    EXPECT(t, "a\n\n\n\nb", 0, A, NL2, NL2, B);
    /* specials, longest first; CONTROL only with PARSE_SPECIAL, USER_DEFINED always */
    EXPECT(t, "<start_of_turn>ab<start>", NB_TOK_PARSE_SPECIAL, 4, AB, 5);
    EXPECT(t, "<start>", 0, 5);
    EXPECT(t, "<bos>", NB_TOK_PARSE_SPECIAL, 2);
    EXPECT(t, "<bos>", ALL, 2, 2); /* BOS added even before a literal <bos>, as llama.cpp */
    EXPECT(t, "a<eos>", 0, A, 6 + '<', 6 + 'e', 6 + 'o', 6 + 's', 6 + '>');
    EXPECT(t, "<<bos>>", NB_TOK_PARSE_SPECIAL, 6 + '<', 2, 6 + '>');

    /* decoding */
    const int32_t ids[] = {2, SAB, S, C, NL, 6 + 0xc3, 6 + 0xa9, 4, 5};
    const char *plain = " ab c\n\xc3\xa9<start>";
    const char *special = "<bos> ab c\n\xc3\xa9<start_of_turn><start>";
    expect_decode(t, ids, 9, 0, plain, strlen(plain));
    expect_decode(t, ids, 9, NB_TOK_RENDER_SPECIAL, special, strlen(special));
    char small[4];
    assert_int_equal(nb_tok_decode(t, ids, 9, small, sizeof small, 0), strlen(plain));
    assert_string_equal(small, " ab");
    assert_int_equal(nb_tok_piece(t, SAB, small, sizeof small, 0), 3);
    assert_int_equal(nb_tok_piece(t, -1, small, sizeof small, 0), -1);
    assert_int_equal(nb_tok_piece(t, 1 << 30, small, sizeof small, 0), -1);
    const int32_t bad[] = {-5, A, 999999};
    expect_decode(t, bad, 3, 0, "a", 1);

    /* lookups */
    assert_int_equal(nb_tok_find(t, "abc", 3), ABC);
    assert_int_equal(nb_tok_find(t, "abd", 3), -1);
    assert_int_equal(nb_tok_bos(t), 2);
    assert_true(nb_tok_is_eog(t, 1));
    assert_false(nb_tok_is_eog(t, 2));
    assert_int_equal(nb_tok_type(t, 1), NB_TOK_CONTROL);
    assert_int_equal(nb_tok_type(t, 9999), NB_TOK_UNDEFINED);
    /* ids past cap are counted, not written */
    int32_t two[2] = {-1, -1};
    assert_int_equal(nb_tok_encode(t, "ab ab ab", 8, ALL, two, 2), 4);
    assert_int_equal(two[0], 2);
    assert_int_equal(two[1], AB);
    assert_int_equal(nb_tok_encode(t, "ab", 2, ALL, NULL, 0), 2);
    assert_int_equal(nb_tok_encode(t, NULL, 0, ALL, NULL, 0), 1);
    nb_tok_destroy(t);
}

static void test_bad_vocab(void **state)
{
    (void)state;
    char err[256] = "";
    struct nb_tok_vocab v = {.model = NB_TOK_MODEL_GEMMA4};
    assert_null(nb_tok_create(&v, err, sizeof err));
    assert_true(strlen(err) > 0 && !strchr(err, '\n'));
    struct gguf_str toks[3] = {{"a", 1}, {"b", 1}, {"a", 1}}; /* duplicate text: first id wins */
    struct gguf_str merges[3] = {{"a b", 3}, {"nospace", 7}, {"x y", 3}}; /* bad ones dropped */
    v = (struct nb_tok_vocab){.model = NB_TOK_MODEL_GEMMA4, .n_tokens = 3, .tokens = toks,
                              .n_merges = 3, .merges = merges, .bos = 7, .eos = -1, .unk = -1,
                              .pad = -1};
    assert_null(nb_tok_create(&v, err, sizeof err)); /* adds BOS but bos out of range */
    assert_non_null(strstr(err, "bos"));
    v.bos = 1;
    struct nb_tok *t = nb_tok_create(&v, err, sizeof err);
    assert_non_null(t);
    assert_int_equal(nb_tok_find(t, "a", 1), 0);
    EXPECT(t, "ab", ALL, 1, 0, 1); /* no byte tokens, "ab" no token: a b */
    EXPECT(t, "q", ALL, 1);        /* no token, no byte token: dropped as llama.cpp does */
    nb_tok_destroy(t);
}

/* ---- the real vocabulary ---------------------------------------------------------------- */

static struct nb_tok *g_tok;

static int load_real(void **state)
{
    (void)state;
    const char *path = nb_test_file("gemma-vocab.gguf");
    if (!path) return 0;
    char err[512];
    uint64_t t0 = plat_now_ns();
    struct gguf *g = gguf_open(path, err, sizeof err);
    if (!g) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    uint64_t t1 = plat_now_ns();
    clock_t c1 = clock();
    g_tok = nb_tok_from_gguf(g, err, sizeof err);
    clock_t c2 = clock();
    uint64_t t2 = plat_now_ns();
    gguf_close(g);
    if (!g_tok) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    printf("gemma-vocab.gguf: gguf_open %.1f ms, nb_tok_from_gguf %.1f ms (CPU %.1f ms; %u "
           "tokens)\n", (t1 - t0) / 1e6, (t2 - t1) / 1e6, (c2 - c1) * 1e3 / CLOCKS_PER_SEC,
           nb_tok_n_vocab(g_tok));
    return 0;
}

static int free_real(void **state)
{
    (void)state;
    nb_tok_destroy(g_tok);
    g_tok = NULL;
    return 0;
}

/* Lines of a file, in place (the buffer is kept by the caller). */
static size_t split_lines(char *buf, size_t size, char **lines, size_t max)
{
    size_t n = 0;
    for (char *p = buf, *end = buf + size; p < end && n < max;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) nl = end;
        *nl = 0;
        lines[n++] = p;
        p = nl + 1;
    }
    return n;
}

static size_t parse_ids(const char *s, int32_t *ids, size_t max)
{
    size_t n = 0;
    char *e;
    for (long v; n < max && (v = strtol(s, &e, 10), e != s); s = e) ids[n++] = (int32_t)v;
    return n;
}

/* \n \t \r \\ \xHH -> bytes, in place; returns the new length. */
static size_t unescape(char *s)
{
    size_t w = 0;
    for (size_t i = 0; s[i]; i++) {
        char c = s[i];
        if (c == '\\' && s[i + 1]) {
            char e = s[++i];
            if (e == 'n') c = '\n';
            else if (e == 't') c = '\t';
            else if (e == 'r') c = '\r';
            else if (e == 'x' && s[i + 1] && s[i + 2]) {
                char hex[3] = {s[i + 1], s[i + 2], 0};
                c = (char)strtol(hex, NULL, 16);
                i += 2;
            } else c = e;
        }
        s[w++] = c;
    }
    return w;
}

/* True when decoding should give the text back exactly: valid UTF-8 (strict) and no literal ▁. */
static bool round_trips(const char *s, size_t n)
{
    const uint8_t *p = (const uint8_t *)s;
    for (size_t i = 0; i < n;) {
        size_t l = p[i] < 0x80 ? 1 : p[i] >= 0xc2 && p[i] < 0xe0 ? 2 : p[i] >= 0xe0 && p[i] < 0xf0 ? 3
                                   : p[i] >= 0xf0 && p[i] < 0xf5 ? 4 : 0;
        if (!l || i + l > n) return false;
        for (size_t k = 1; k < l; k++)
            if ((p[i + k] & 0xc0) != 0x80) return false;
        if (l == 3 && p[i] == 0xe0 && p[i + 1] < 0xa0) return false;                   /* overlong */
        if (l == 3 && p[i] == 0xed && p[i + 1] >= 0xa0) return false;                  /* surrogate */
        if (l == 4 && p[i] == 0xf0 && p[i + 1] < 0x90) return false;                   /* overlong */
        if (l == 4 && p[i] == 0xf4 && p[i + 1] >= 0x90) return false;                  /* > U+10FFFF */
        if (l == 3 && !memcmp(p + i, SP, 3)) return false;
        i += l;
    }
    return true;
}

/* Checks every line of NAME.txt against NAME.ids; returns the number of cases. */
static size_t check_file(const struct nb_tok *t, const char *name, bool escapes)
{
    char path[512], tp[1024], ip[1024];
    snprintf(path, sizeof path, "%s.txt", name);
    const char *f = nb_test_file(path); /* static storage: copy it */
    if (!f) return 0;
    snprintf(tp, sizeof tp, "%s", f);
    snprintf(path, sizeof path, "%s.ids", name);
    if (!(f = nb_test_file(path))) return 0;
    snprintf(ip, sizeof ip, "%s", f);
    size_t ts, is;
    char *txt = nb_test_read(tp, &ts), *idt = nb_test_read(ip, &is);
    assert_true(txt && idt);
    char *tl[256], *il[256];
    size_t nt = split_lines(txt, ts, tl, 256), ni = split_lines(idt, is, il, 256);
    assert_int_equal(nt, ni);
    size_t fails = 0;
    int32_t *want = malloc(sizeof *want * 40000);
    assert_non_null(want);
    for (size_t c = 0; c < nt; c++) {
        size_t len = escapes ? unescape(tl[c]) : strlen(tl[c]);
        size_t nw = parse_ids(il[c], want, 40000), n;
        int32_t *ids = enc(t, tl[c], len, ALL, &n);
        if (n != nw || memcmp(ids, want, n * sizeof *ids)) {
            fails++;
            fprintf(stderr, "%s line %zu: got %zu ids, want %zu:", name, c + 1, n, nw);
            for (size_t i = 0; i < n && i < 24; i++)
                fprintf(stderr, " %d%s", ids[i], i < nw && ids[i] == want[i] ? "" : "*");
            fprintf(stderr, "\n");
        }
        /* decoding the ids after BOS gives the text back (specials rendered) */
        if (round_trips(tl[c], len) && n > 0)
            expect_decode(t, ids + 1, n - 1, NB_TOK_RENDER_SPECIAL, tl[c], len);
        free(ids);
    }
    free(want);
    free(txt);
    free(idt);
    assert_int_equal(fails, 0);
    return nt;
}

static void test_golden_cases(void **state)
{
    (void)state;
    if (!g_tok) skip();
    size_t n = check_file(g_tok, "tokenizer-cases", false);
    if (!n) skip();
    printf("tokenizer-cases: %zu cases match llama.cpp\n", n);
}

static void test_extra_cases(void **state)
{
    (void)state;
    if (!g_tok) skip();
    size_t n = check_file(g_tok, "tokenizer-extra", true);
    if (!n) skip();
    printf("tokenizer-extra: %zu cases match llama.cpp\n", n);
    n = check_file(g_tok, "tokenizer-random", true);
    printf("tokenizer-random: %zu cases match llama.cpp\n", n);
}

/* The 1024-token vocabulary of the small test models: UNKNOWN and UNUSED token types, the
 * Gemma 4 chat tokens <|turn> and <turn|>, few merges, most text through byte fallback. */
static void test_small_vocab(void **state)
{
    (void)state;
    const char *path = nb_test_file("dense.gguf");
    if (!path) skip();
    char err[512];
    struct gguf *g = gguf_open(path, err, sizeof err);
    assert_non_null(g);
    struct nb_tok *t = nb_tok_from_gguf(g, err, sizeof err);
    gguf_close(g);
    assert_non_null(t);
    assert_true(nb_tok_is_eog(t, nb_tok_find(t, "<turn|>", 7)));
    assert_int_equal(nb_tok_type(t, nb_tok_find(t, "<unused0>", 9)), NB_TOK_UNUSED);
    size_t n = check_file(t, "tokenizer-dense", true);
    nb_tok_destroy(t);
    if (!n) skip();
    printf("tokenizer-dense: %zu cases match llama.cpp\n", n);
}

static void test_real_specials_and_bytes(void **state)
{
    (void)state;
    struct nb_tok *t = g_tok;
    if (!t) skip();
    assert_int_equal(nb_tok_bos(t), 2);
    assert_int_equal(nb_tok_eos(t), 1);
    assert_true(nb_tok_add_bos(t));
    assert_true(nb_tok_is_eog(t, 1));
    assert_true(nb_tok_is_eog(t, nb_tok_find(t, "<end_of_turn>", 13)));
    /* every special token parses as itself and renders back */
    size_t n_special = 0;
    for (uint32_t id = 0; id < nb_tok_n_vocab(t); id++) {
        enum nb_tok_type ty = nb_tok_type(t, (int32_t)id);
        if (ty != NB_TOK_CONTROL && ty != NB_TOK_USER_DEFINED && ty != NB_TOK_UNKNOWN) continue;
        size_t len;
        const char *s = nb_tok_text(t, (int32_t)id, &len);
        char buf[128];
        assert_true(len < sizeof buf);
        memcpy(buf, s, len);
        buf[len] = 0;
        const int32_t want[] = {(int32_t)id};
        expect_ids(t, buf, NB_TOK_PARSE_SPECIAL, want, 1);
        expect_decode(t, want, 1, NB_TOK_RENDER_SPECIAL, buf, len);
        n_special++;
    }
    assert_true(n_special >= 8);
    /* every byte value alone comes back through byte tokens or U+FFFD */
    for (int b = 1; b < 256; b++) {
        char s[2] = {(char)b, 0};
        size_t n;
        int32_t *ids = enc(t, s, 1, 0, &n);
        assert_true(n >= 1 && n <= 3);
        char out[8];
        size_t k = nb_tok_decode(t, ids, n, out, sizeof out, 0);
        if (b < 0x80 && b != ' ') assert_true(k == 1 && (uint8_t)out[0] == b);
        if (b >= 0x80) assert_memory_equal(out, "\xef\xbf\xbd", 3);
        free(ids);
    }
    /* inputs that make llama.cpp abort: a code point above U+10FFFF (here: four invalid bytes,
     * four U+FFFD) and an overlong space (here: a raw space byte, not ▁) */
    size_t m;
    int32_t *big = enc(t, "\xf4\x90\x80\x80", 4, 0, &m);
    expect_decode(t, big, m, 0, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 12);
    free(big);
    big = enc(t, "a\xc0\xa0", 3, 0, &m);
    expect_decode(t, big, m, 0, "a ", 2);
    free(big);
    /* NUL bytes are text like any other */
    size_t n;
    int32_t *ids = enc(t, "a\0b\0\0c", 6, 0, &n);
    expect_decode(t, ids, n, 0, "a\0b\0\0c", 6);
    free(ids);
}

/* Random mixes of ASCII, spaces, newlines, CJK, emoji and specials round-trip and never crash;
 * random bytes never crash. Also measures speed on a 100 KB text. */
static void test_real_random_and_speed(void **state)
{
    (void)state;
    struct nb_tok *t = g_tok;
    if (!t) skip();
    static const char *const parts[] = {"a", "e", "the", " ", "  ", "\n", "\n\n", "\t", "x",
                                        "\xe4\xb8\xad", "\xe6\x96\x87", "\xf0\x9f\x98\x80",
                                        "\xc3\xa9", "<start_of_turn>", "<bos>", "0", "42", ".",
                                        "\xe2\x80\x8b", "Q", "\r\n", "\xed\x95\x9c"};
    const size_t np = sizeof parts / sizeof parts[0];
    nb_test_seed(11);
    char *buf = malloc(200000);
    assert_non_null(buf);
    for (int it = 0; it < 200; it++) {
        size_t len = 0, want = nb_test_randu() % 300;
        while (len < want) {
            const char *p = parts[nb_test_randu() % np];
            memcpy(buf + len, p, strlen(p));
            len += strlen(p);
        }
        size_t n;
        int32_t *ids = enc(t, buf, len, ALL, &n);
        assert_true(n >= 1 && ids[0] == 2);
        expect_decode(t, ids + 1, n - 1, NB_TOK_RENDER_SPECIAL, buf, len);
        free(ids);
        for (size_t i = 0; i < len; i++) buf[i] = (char)nb_test_randu(); /* random bytes */
        ids = enc(t, buf, len, ALL, &n);
        free(ids);
    }
    /* speed: 100 KB of prose-like text */
    static const char *const words[] = {"the ", "quick ", "brown ", "fox ", "jumps ", "over ",
                                        "lazy ", "dogs", ". ", "\n", "Quantization ", "aware ",
                                        "training, ", "2026 ", "\xe6\x97\xa5\xe6\x9c\xac "};
    size_t len = 0;
    while (len < 100000) {
        const char *w = words[nb_test_randu() % (sizeof words / sizeof words[0])];
        memcpy(buf + len, w, strlen(w));
        len += strlen(w);
    }
    uint64_t t0 = plat_now_ns();
    clock_t c0 = clock();
    size_t n;
    int32_t *ids = enc(t, buf, len, ALL, &n);
    clock_t c1 = clock();
    uint64_t t1 = plat_now_ns();
    printf("encode %zu bytes of prose -> %zu ids in %.1f ms (CPU %.1f ms)\n", len, n,
           (t1 - t0) / 1e6, (c1 - c0) * 1e3 / CLOCKS_PER_SEC);
    expect_decode(t, ids + 1, n - 1, 0, buf, len);
    free(ids);
    /* one 100 KB line without spaces or newlines: a single BPE word */
    for (size_t i = 0; i < 100000; i++) buf[i] = "abcdefghij"[nb_test_randu() % 10];
    t0 = plat_now_ns();
    c0 = clock();
    ids = enc(t, buf, 100000, 0, &n);
    c1 = clock();
    t1 = plat_now_ns();
    printf("encode one 100000-byte word -> %zu ids in %.1f ms (CPU %.1f ms)\n", n,
           (t1 - t0) / 1e6, (c1 - c0) * 1e3 / CLOCKS_PER_SEC);
    expect_decode(t, ids, n, 0, buf, 100000);
    free(ids);
    free(buf);
}

/* The CLI prints the ids on one line; bad input gives one line on stderr and a non-zero exit. */
static void test_cli(void **state)
{
    (void)state;
    const char *path = nb_test_file("gemma-vocab.gguf");
    if (!path) skip();
    char cmd[2048], line[256] = "";
    snprintf(cmd, sizeof cmd, "'%s' tokenize -m '%s' 'Hello world' 2>&1", NB_CLI, path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    if (!fgets(line, sizeof line, p)) line[0] = 0;
    assert_int_equal(pclose(p), 0);
    assert_string_equal(line, "2 9259 1902\n");
    snprintf(cmd, sizeof cmd, "'%s' tokenize -m /nonexistent.gguf 'x' 2>&1", NB_CLI);
    p = popen(cmd, "r");
    assert_non_null(p);
    int lines = 0;
    while (fgets(line, sizeof line, p)) lines++;
    assert_int_not_equal(pclose(p), 0);
    assert_int_equal(lines, 1);
    snprintf(cmd, sizeof cmd, "'%s' tokenize -m '%s' 2>&1", NB_CLI, path);
    p = popen(cmd, "r");
    assert_non_null(p);
    lines = 0;
    while (fgets(line, sizeof line, p)) lines++;
    assert_int_not_equal(pclose(p), 0);
    assert_int_equal(lines, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tiny_bpe),
        cmocka_unit_test(test_tiny_newlines_specials),
        cmocka_unit_test(test_bad_vocab),
        cmocka_unit_test(test_golden_cases),
        cmocka_unit_test(test_extra_cases),
        cmocka_unit_test(test_small_vocab),
        cmocka_unit_test(test_real_specials_and_bytes),
        cmocka_unit_test(test_real_random_and_speed),
        cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, load_real, free_real);
}
